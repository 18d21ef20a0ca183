/* attach/discover.h -- find the processes to follow: by pid, by program (executable path or
 * comm) and by cgroup (a path or a systemd unit), and hold each one by a pidfd.
 *
 * Discovery only reads /proc and the cgroup v2 tree; it never stops, signals or ptraces
 * anything. The daemon calls discover_scan() once per interval and diffs the result
 * against the targets it holds: new (pid, start time) pairs are attached, targets whose
 * handle reports exit are dropped. Everything read here is untrusted (comm and paths are
 * chosen by the processes) and every count is capped: a host may run 100k processes. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "procfs.h"

#define DISCOVER_MATCHES_MAX 65536      /* processes returned by one scan, at most */
#define DISCOVER_CANDIDATES_MAX (1u << 20) /* pids read from cgroup.procs files per scan */
#define DISCOVER_PROC_ENTRIES_MAX (1u << 22) /* /proc entries looked at: PID_MAX_LIMIT */
#define CGROUP_WALK_DIRS_MAX 16384      /* cgroup directories visited per walk */
#define CGROUP_WALK_DEPTH_MAX 32        /* levels below the walk's start */
#define DISCOVER_SELECTORS_MAX 4096     /* selectors per scan */
#define COMM_MAX 15                     /* TASK_COMM_LEN - 1: what prctl(PR_SET_NAME) keeps */
#define UNIT_NAME_MAX 255               /* systemd's limit, without the NUL */

typedef enum SelectorKind {
        SELECTOR_PID,
        SELECTOR_EXE,
        SELECTOR_COMM,
        SELECTOR_CGROUP,
        SELECTOR_UNIT,
        _SELECTOR_KIND_MAX,
} SelectorKind;

/* "pid", "exe", "comm", "cgroup", "unit" (the command-line flag without "--"); NULL for an
 * invalid kind. selector_kind_from_string() is the inverse: the kind, or -EINVAL. */
const char *selector_kind_to_string(SelectorKind kind);
int selector_kind_from_string(const char *s);

/* One --pid/--exe/--comm/--cgroup/--unit argument, validated and resolved.
 *
 * The cgroup of CGROUP and UNIT is kept twice: `cgroup`, its path inside the cgroup v2
 * hierarchy as /proc/PID/cgroup spells it ("/system.slice/foo.service", "/" for the root),
 * and `cgroup_dir`, that directory in the mounted tree (cgroup2_root() + cgroup). */
typedef struct TargetSelector {
        SelectorKind kind;
        char *value;                    /* the argument as given */
        pid_t pid;                      /* PID: > 0 */
        char *exe;                      /* EXE: realpath() of value, taken once at parse
                                           time; value itself when it does not resolve
                                           (a deleted binary, one not installed yet) */
        char comm[COMM_MAX + 1];        /* COMM */
        char *cgroup;                   /* CGROUP, UNIT: see above; NULL for a unit that was
                                           not found at parse time */
        char *cgroup_dir;               /* CGROUP, UNIT: NULL when no cgroup v2 hierarchy is
                                           mounted (matching then reads /proc/PID/cgroup) or
                                           the unit was not found */
} TargetSelector;

/* Parses TEXT as a selector of KIND into *RET (release with selector_done()). Rules:
 *   PID     decimal digits only, 1 … INT32_MAX.
 *   EXE     an absolute path; resolved with realpath() now, so a symlink (python3 →
 *           python3.11) matches the binary it points to today.
 *   COMM    1 … 15 bytes (the kernel truncates comm to 15).
 *   CGROUP  an absolute path, with or without the mount prefix: "/sys/fs/cgroup/a/b"
 *           and "/a/b" both mean cgroup "/a/b"; so does "/sys/fs/cgroup/unified/a/b"
 *           where that is the v2 mount (cgroup2_root()). "." and repeated '/' are
 *           dropped; ".." is refused. The cgroup need not exist yet: a missing one holds
 *           no processes.
 *   UNIT    a systemd unit name: [A-Za-z0-9:_.\-@]+ (backslash included, for systemd's
 *           \x2d escapes), at most 255 bytes, ending in .service, .scope or .slice; an
 *           instance needs a non-empty prefix and instance ("a@1.service", not
 *           "@1.service" nor the template "a@.service"). It is resolved with
 *           cgroup_find_unit() under cgroup2_root(); a unit not found (not running yet)
 *           is accepted unresolved and looked for again by every scan.
 * 0; -EINVAL for a malformed TEXT or kind; -ENAMETOOLONG for a path ≥ PATH_MAX;
 * -ENOTUNIQ when a unit name matches several cgroups (pass --cgroup instead); -ENOMEM.
 * Other errors while looking for a unit leave it unresolved, as if not found.
 * *ret is untouched on failure. */
int selector_parse(SelectorKind kind, const char *text, TargetSelector *ret);
/* Frees what *s owns and zeroes it; a zeroed selector is accepted. */
void selector_done(TargetSelector *s);

/* Where the cgroup v2 hierarchy is mounted, as systemd mounts it: "/sys/fs/cgroup" (the
 * unified layout, Debian ≥ 11) or "/sys/fs/cgroup/unified" (the hybrid layout, where
 * /sys/fs/cgroup is a tmpfs holding v1 hierarchies); recognized by statfs() magic. *ret
 * points to a static string. 0, or -ENOMEDIUM when neither is a cgroup2 mount. */
int cgroup2_root(const char **ret);

/* Finds the cgroup of unit NAME below ROOT (any directory tree; cgroup2_root() in real
 * use). The rule, in order:
 *   1. ROOT/system.slice/NAME, where systemd puts system services;
 *   2. otherwise a bounded breadth-first walk (CGROUP_WALK_DIRS_MAX directories,
 *      CGROUP_WALK_DEPTH_MAX levels) for a directory named NAME; the shallowest one wins
 *      ("user.slice/user-1000.slice/session-2.scope" is found at depth 3). Directories
 *      named NAME are not descended into.
 * On success *ret_cgroup is the malloc'ed path relative to ROOT with a leading '/'
 * ("/system.slice/NAME"). 0; -ENOENT when there is none; -ENOTUNIQ when the shallowest
 * level holds several (one unit per user: pass a --cgroup); -E2BIG when the walk hit its
 * caps before finding one; other negative errno from opening ROOT. */
int cgroup_find_unit(const char *root, const char *name, char **ret_cgroup);

typedef struct DiscoveredProcess {
        pid_t pid;
        uint64_t start_time_ticks;      /* /proc/PID/stat field 22: with the pid, the
                                           process's identity (see ProcessHandle) */
        char comm[THREAD_NAME_MAX];
        char *exe;                      /* readlink of /proc/PID/exe, " (deleted)" stripped;
                                           NULL when not readable (no ptrace access) */
        bool exe_deleted;               /* the binary was deleted or replaced on disk */
        size_t selector;                /* index in SELS of the first selector matched */
} DiscoveredProcess;

/* One pass over /proc (numeric entries only, at most DISCOVER_PROC_ENTRIES_MAX) returning
 * every process that matches any of the N selectors, sorted by pid, each once:
 *   PID     the process with that pid (a thread id that is not a process matches nothing);
 *   EXE     the executable path, " (deleted)" stripped, equals the selector's resolved
 *           path: a binary deleted or replaced on disk (a package upgrade) still matches
 *           by the path it was started from;
 *   COMM    comm equals the name exactly (a prctl(PR_SET_NAME) rename counts);
 *   CGROUP, UNIT
 *           the process is in the cgroup or any cgroup below it: read from cgroup.procs
 *           of the directory and its descendants (a bounded walk, as cgroup_find_unit()),
 *           which is much cheaper than /proc/PID/cgroup of every process. When that cannot
 *           be done (no v2 mount, unreadable cgroup.procs, a threaded cgroup, the walk's
 *           caps hit), the "0::/path" line of /proc/PID/cgroup is matched instead.
 *           A missing cgroup directory holds no processes; an unresolved or vanished
 *           unit is looked for again (one bounded walk per scan while it is missing).
 * Never returned: kernel threads (PF_KTHREAD, kthreadd's children, no exe), zombies
 * (including a process whose main thread called pthread_exit(): /proc shows it as a
 * zombie), and the calling process. Processes that vanish during the scan are skipped.
 * When only PID, CGROUP and UNIT selectors are given (and no cgroup needs the /proc/PID/
 * cgroup fallback), /proc is not listed at all: only the candidate pids are read. Cost
 * (2 vCPUs, 5000 processes): ~4–7 µs per process for a pass over /proc (one readlink or
 * one read of comm each), ~10 µs per process returned.
 * On success *ret is a malloc'ed array of *ret_n entries (NULL when none), released with
 * discovered_free(). Returns 0, or 1 when the result was capped at DISCOVER_MATCHES_MAX
 * (or cgroup.procs held more than DISCOVER_CANDIDATES_MAX pids): the rest are missing.
 * Negative errno (-E2BIG for more than DISCOVER_SELECTORS_MAX selectors, -ENOMEM, or
 * opening /proc failed) leaves *ret and *ret_n untouched. */
int discover_scan(const TargetSelector *sels, size_t n, DiscoveredProcess **ret, size_t *ret_n);
/* Accepts NULL. */
void discovered_free(DiscoveredProcess *p, size_t n);

/* A process held by its pidfd, so that a pid reused by another process is never mistaken
 * for it.
 *
 * Why both a pidfd and the start time: a pidfd refers to one process forever, but
 * pidfd_open(pid) takes whatever process holds PID *at that moment*. Between the scan
 * that saw (PID, START_TIME) and pidfd_open(), the process may have exited and the pid
 * been reused; the new pidfd would then name the newcomer. So open first, check after:
 * if /proc/PID/stat still shows START_TIME once the pidfd exists, the pidfd was taken
 * while the original process held PID and names it. (Checking first and opening after
 * leaves the window open: the reuse can fall between the two.) From then on the pidfd
 * alone answers "has it exited?", whatever happens to the pid. The start time is in clock
 * ticks (10 ms): only a pid reused within the same tick could fool it, which needs the
 * whole pid space to wrap in 10 ms.
 *
 * Without pidfd_open() (kernels before 5.3) pidfd is -EBADF and exit is detected by the
 * start time alone. */
typedef struct ProcessHandle {
        pid_t pid;
        uint64_t start_time_ticks;
        int pidfd;                      /* O_CLOEXEC; -EBADF when closed or unavailable */
} ProcessHandle;

/* Opens a handle on the process PID that started at START_TIME_TICKS. 0; -ESRCH when it
 * has exited (a zombie included) or PID now names another process; -EINVAL when PID ≤ 0
 * or names a thread that is not a process; other negative errno (-EMFILE). *ret is
 * untouched on failure. */
int process_handle_open(pid_t pid, uint64_t start_time_ticks, ProcessHandle *ret);
/* 1 when the process has exited (a zombie not yet reaped counts as exited), 0 while it
 * runs; never blocks. Negative errno when it cannot tell. */
int process_handle_exited(const ProcessHandle *h);
/* Closes the pidfd and sets it to -EBADF: idempotent. (A zeroed handle is not a closed one:
 * fd 0 is stdin. Initialize with .pidfd = -EBADF.) */
void process_handle_close(ProcessHandle *h);
