/* attach/discover.c -- find processes by pid, executable, comm, cgroup or unit, and hold
 * them by pidfd. See discover.h for the contract.
 *
 * Only /proc and the cgroup v2 tree are read; nothing is stopped or signalled. A scan is
 * one readdir of /proc plus, per process, only what its selectors need (the exe link for
 * EXE, comm for COMM); cgroup selectors read cgroup.procs rather than /proc/PID/cgroup of
 * every process. What a result says about a process (start time, comm, exe, the match) is
 * read through its /proc/PID directory fd, which pins that process: if it exits and the
 * pid is reused mid-scan, reads fail instead of describing the newcomer, so a result never
 * pairs one process's exe with another's start time. Every list and walk is capped
 * (discover.h). */
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/vfs.h>

#include "discover.h"
#include "macro.h"

#ifndef CGROUP2_SUPER_MAGIC
#define CGROUP2_SUPER_MAGIC 0x63677270
#endif
#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif

#define PF_KTHREAD 0x00200000ul         /* include/linux/sched.h */
#define KTHREADD_PID 2
#define CGROUP_PROCS_READ_MAX (8u << 20) /* one cgroup.procs: ~1M pids */
#define READ_CHUNK 65536
#define PROC_CGROUP_READ_MAX 65536      /* /proc/PID/cgroup: a line per hierarchy */
#define NO_SELECTOR SIZE_MAX

static const char *const selector_kind_table[_SELECTOR_KIND_MAX] = {
        [SELECTOR_PID] = "pid",
        [SELECTOR_EXE] = "exe",
        [SELECTOR_COMM] = "comm",
        [SELECTOR_CGROUP] = "cgroup",
        [SELECTOR_UNIT] = "unit",
};

const char *selector_kind_to_string(SelectorKind kind) {
        if ((unsigned) kind >= _SELECTOR_KIND_MAX)
                return NULL;
        return selector_kind_table[kind];
}

int selector_kind_from_string(const char *s) {
        for (int k = 0; k < _SELECTOR_KIND_MAX; k++)
                if (s && strcmp(s, selector_kind_table[k]) == 0)
                        return k;
        return -EINVAL;
}

/* Decimal digits only (no sign, no spaces), 1 … INT32_MAX. */
static int parse_pid(const char *s, pid_t *ret) {
        uint64_t v = 0;
        if (!*s)
                return -EINVAL;
        for (const char *p = s; *p; p++) {
                if (*p < '0' || *p > '9')
                        return -EINVAL;
                v = v * 10 + (uint64_t) (*p - '0');
                if (v > INT32_MAX)
                        return -EINVAL;
        }
        if (v == 0)
                return -EINVAL;
        *ret = (pid_t) v;
        return 0;
}

/* The part of PATH below PREFIX ("" or starting with '/'), or NULL when PATH is neither
 * PREFIX nor below it. Whole components only: "/sys/fs/cgroupx" is not below
 * "/sys/fs/cgroup". */
static const char *path_below(const char *path, const char *prefix) {
        size_t n = strlen(prefix);
        if (strncmp(path, prefix, n) != 0 || (path[n] != 0 && path[n] != '/'))
                return NULL;
        return path + n;
}

/* "", "/a//b/./c/" → "/", "/a/b/c". ".." is refused: a selector must not climb out of
 * the hierarchy (and lexical ".." would disagree with what the kernel reports). */
static int cgroup_path_normalize(const char *p, char **ret) {
        char *out = malloc(strlen(p) + 2);
        if (!out)
                return -ENOMEM;
        size_t o = 0;
        for (;;) {
                while (*p == '/')
                        p++;
                if (!*p)
                        break;
                const char *e = strchrnul(p, '/');
                size_t n = (size_t) (e - p);
                if (n == 2 && p[0] == '.' && p[1] == '.') {
                        free(out);
                        return -EINVAL;
                }
                if (!(n == 1 && p[0] == '.')) {
                        out[o++] = '/';
                        memcpy(out + o, p, n);
                        o += n;
                }
                p = e;
        }
        if (o == 0)
                out[o++] = '/';
        out[o] = 0;
        *ret = out;
        return 0;
}

/* ROOT + CGROUP as a directory path ("/" is ROOT itself). */
static char *cgroup_dir_join(const char *root, const char *cgroup) {
        char *s;
        if (asprintf(&s, "%s%s", root, strcmp(cgroup, "/") == 0 ? "" : cgroup) < 0)
                return NULL;
        return s;
}

/* systemd's unit_name_is_valid(), restricted to the unit types that hold processes. */
static bool unit_name_valid(const char *s) {
        static const char *const suffixes[] = { ".service", ".scope", ".slice" };
        static const char valid[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789:_.-@\\";
        size_t len = strlen(s);
        if (len == 0 || len > UNIT_NAME_MAX || strspn(s, valid) != len)
                return false;
        const char *dot = strrchr(s, '.');
        if (!dot || dot == s)
                return false;
        bool known = false;
        for (size_t i = 0; i < ARRAY_SIZE(suffixes); i++)
                known = known || strcmp(dot, suffixes[i]) == 0;
        if (!known)
                return false;
        /* An instance "a@i.service" needs both parts; "a@.service" is a template, which
         * never runs and has no cgroup. */
        const char *at = strchr(s, '@');
        if (at && (at == s || at + 1 == dot))
                return false;
        return true;
}

int cgroup2_root(const char **ret) {
        /* Where systemd mounts it in the unified and the hybrid layouts. */
        static const char *const candidates[] = { "/sys/fs/cgroup", "/sys/fs/cgroup/unified" };
        for (size_t i = 0; i < ARRAY_SIZE(candidates); i++) {
                struct statfs fs;
                if (statfs(candidates[i], &fs) == 0 && (uint64_t) fs.f_type == CGROUP2_SUPER_MAGIC) {
                        *ret = candidates[i];
                        return 0;
                }
        }
        return -ENOMEDIUM;
}

/* d_type where the file system gives it (cgroupfs does), else an lstat. */
static bool dirent_is_dir(DIR *d, const struct dirent *de) {
        if (de->d_type != DT_UNKNOWN)
                return de->d_type == DT_DIR;
        struct stat st;
        return fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode);
}

static bool dot_or_dotdot(const char *name) {
        return name[0] == '.' && (name[1] == 0 || (name[1] == '.' && name[2] == 0));
}

typedef struct PathList {
        char **items;
        size_t n, cap;
} PathList;

static void path_list_done(PathList *l) {
        for (size_t i = 0; i < l->n; i++)
                free(l->items[i]);
        free(l->items);
        *l = (PathList) {};
}

/* Takes S, also on failure. */
static int path_list_push(PathList *l, char *s) {
        if (l->n == l->cap) {
                size_t ncap = l->cap ? l->cap * 2 : 16;
                char **p = realloc(l->items, ncap * sizeof *p);
                if (!p) {
                        free(s);
                        return -ENOMEM;
                }
                l->items = p;
                l->cap = ncap;
        }
        l->items[l->n++] = s;
        return 0;
}

int cgroup_find_unit(const char *root, const char *name, char **ret_cgroup) {
        _cleanup_free_ char *direct = NULL;
        struct stat st;
        int r;

        if (!unit_name_valid(name))
                return -EINVAL;
        if (asprintf(&direct, "%s/system.slice/%s", root, name) < 0)
                return -ENOMEM;
        if (stat(direct, &st) == 0 && S_ISDIR(st.st_mode)) {
                char *cg;
                if (asprintf(&cg, "/system.slice/%s", name) < 0)
                        return -ENOMEM;
                *ret_cgroup = cg;
                return 0;
        }

        _cleanup_close_ int rootfd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (rootfd < 0)
                return -errno;

        /* Breadth first, one level at a time, so that the shallowest match wins and a tie
         * at that level is seen as one. Paths are relative to ROOT, "" for ROOT. */
        PathList level = {}, next = {};
        char *found = NULL;
        size_t n_found = 0, visited = 0;
        bool capped = false;
        r = path_list_push(&level, strdup(""));
        if (r < 0 || !level.items[0]) {
                path_list_done(&level);
                return -ENOMEM;
        }
        for (unsigned depth = 0; r >= 0 && level.n > 0 && n_found == 0; depth++) {
                for (size_t i = 0; i < level.n && r >= 0; i++) {
                        if (visited >= CGROUP_WALK_DIRS_MAX) {
                                capped = true;
                                break;
                        }
                        visited++;
                        int fd = openat(rootfd, level.items[i][0] ? level.items[i] + 1 : ".",
                                        O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
                        if (fd < 0)
                                continue;       /* removed meanwhile, or unreadable */
                        DIR *d = fdopendir(fd);
                        if (!d) {
                                close(fd);
                                continue;
                        }
                        struct dirent *de;
                        while (r >= 0 && (de = readdir(d))) {
                                if (dot_or_dotdot(de->d_name) || !dirent_is_dir(d, de))
                                        continue;
                                bool match = strcmp(de->d_name, name) == 0;
                                if (!match && (depth + 1 >= CGROUP_WALK_DEPTH_MAX ||
                                               visited + next.n >= CGROUP_WALK_DIRS_MAX)) {
                                        capped = true;
                                        continue;
                                }
                                char *child;
                                if (asprintf(&child, "%s/%s", level.items[i], de->d_name) < 0) {
                                        r = -ENOMEM;
                                        break;
                                }
                                if (strlen(child) >= PATH_MAX) {
                                        free(child);
                                        continue;
                                }
                                if (match) {
                                        /* Not descended into: a unit's cgroup does not
                                         * nest a cgroup of the same name. */
                                        if (n_found++ == 0)
                                                found = child;
                                        else
                                                free(child);
                                } else
                                        r = path_list_push(&next, child);
                        }
                        closedir(d);
                }
                path_list_done(&level);
                level = next;
                next = (PathList) {};
                if (capped)
                        break;
        }
        path_list_done(&level);
        path_list_done(&next);
        if (r < 0) {
                free(found);
                return r;
        }
        if (n_found > 1) {
                free(found);
                return -ENOTUNIQ;
        }
        if (n_found == 1) {
                *ret_cgroup = found;
                return 0;
        }
        return capped ? -E2BIG : -ENOENT;
}

static int selector_parse_cgroup(const char *text, TargetSelector *sel) {
        const char *root = NULL, *rest = NULL;
        if (text[0] != '/')
                return -EINVAL;
        (void) cgroup2_root(&root);             /* none: match by /proc/PID/cgroup */
        if (root)
                rest = path_below(text, root);
        if (!rest)
                rest = path_below(text, "/sys/fs/cgroup");
        if (!rest)
                rest = text;
        int r = cgroup_path_normalize(rest, &sel->cgroup);
        if (r < 0)
                return r;
        if (root && !(sel->cgroup_dir = cgroup_dir_join(root, sel->cgroup)))
                return -ENOMEM;
        return 0;
}

static int selector_parse_unit(const char *text, TargetSelector *sel) {
        const char *root;
        if (!unit_name_valid(text))
                return -EINVAL;
        if (cgroup2_root(&root) < 0)
                return 0;
        int r = cgroup_find_unit(root, text, &sel->cgroup);
        if (r == -ENOMEM || r == -ENOTUNIQ)
                return r;
        if (r < 0)
                return 0;                       /* not running yet: every scan looks again */
        if (!(sel->cgroup_dir = cgroup_dir_join(root, sel->cgroup)))
                return -ENOMEM;
        return 0;
}

int selector_parse(SelectorKind kind, const char *text, TargetSelector *ret) {
        TargetSelector sel = { .kind = kind };
        int r = 0;

        if (!text || (unsigned) kind >= _SELECTOR_KIND_MAX)
                return -EINVAL;
        if (strlen(text) >= PATH_MAX)
                return -ENAMETOOLONG;
        sel.value = strdup(text);
        if (!sel.value)
                return -ENOMEM;

        switch (kind) {
        case SELECTOR_PID:
                r = parse_pid(text, &sel.pid);
                break;
        case SELECTOR_EXE:
                if (text[0] != '/') {
                        r = -EINVAL;
                        break;
                }
                sel.exe = realpath(text, NULL);
                if (!sel.exe && errno == ENOMEM)
                        r = -ENOMEM;
                else if (!sel.exe && !(sel.exe = strdup(text)))
                        r = -ENOMEM;
                break;
        case SELECTOR_COMM:
                if (text[0] == 0 || strlen(text) > COMM_MAX)
                        r = -EINVAL;
                else
                        strcpy(sel.comm, text);
                break;
        case SELECTOR_CGROUP:
                r = selector_parse_cgroup(text, &sel);
                break;
        case SELECTOR_UNIT:
                r = selector_parse_unit(text, &sel);
                break;
        default:
                r = -EINVAL;
        }
        if (r < 0) {
                selector_done(&sel);
                return r;
        }
        *ret = sel;
        return 0;
}

void selector_done(TargetSelector *s) {
        if (!s)
                return;
        free(s->value);
        free(s->exe);
        free(s->cgroup);
        free(s->cgroup_dir);
        *s = (TargetSelector) {};
}

/* ---- one process, read through its /proc/PID directory ---- */

typedef struct ProcStat {
        char state;
        pid_t ppid;
        uint64_t flags;
        uint64_t start_time_ticks;
        char comm[THREAD_NAME_MAX];
} ProcStat;

/* "pid (comm) S ppid pgrp session tty tpgid flags … starttime(22) …". comm may hold
 * spaces and parentheses (the process chooses it), so it ends at the *last* ')'. */
static int parse_proc_stat(const char *text, ProcStat *ret) {
        const char *open = strchr(text, '('), *close = strrchr(text, ')');
        ProcStat st = {};
        if (!open || !close || close < open)
                return -EIO;
        size_t len = MIN((size_t) (close - open - 1), sizeof st.comm - 1);
        memcpy(st.comm, open + 1, len);
        st.comm[len] = 0;

        const char *p = close + 1;
        if (*p++ != ' ' || !*p)
                return -EIO;
        st.state = *p++;
        for (int field = 4; field <= 22; field++) {
                if (*p++ != ' ')
                        return -EIO;
                bool negative = *p == '-';
                if (negative)
                        p++;
                uint64_t v = 0;
                int digits = 0;
                for (; *p >= '0' && *p <= '9'; p++, digits++) {
                        if (digits >= 20)
                                return -EIO;
                        v = v * 10 + (uint64_t) (*p - '0');
                }
                if (digits == 0)
                        return -EIO;
                if (negative)
                        v = 0;
                if (field == 4)
                        st.ppid = v <= INT32_MAX ? (pid_t) v : 0;
                else if (field == 9)
                        st.flags = v;
                else if (field == 22)
                        st.start_time_ticks = v;
        }
        *ret = st;
        return 0;
}

/* Reads at most SIZE-1 bytes of PATH under DIRFD, NUL-terminated. A vanished process
 * reads as -ESRCH. */
static ssize_t read_small_at(int dir_fd, const char *path, char *buf, size_t size) {
        _cleanup_close_ int fd = openat(dir_fd, path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return errno == ENOENT ? -ESRCH : -errno;
        size_t len = 0;
        while (len < size - 1) {
                ssize_t n = read(fd, buf + len, size - 1 - len);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return errno == ENOENT ? -ESRCH : -errno;
                if (n == 0)
                        break;
                len += (size_t) n;
        }
        buf[len] = 0;
        return (ssize_t) len;
}

static int read_proc_stat_at(int dir_fd, const char *path, ProcStat *ret) {
        char buf[2048];                 /* 52 fields of ≤ 20 digits and a 64-byte comm */
        ssize_t n = read_small_at(dir_fd, path, buf, sizeof buf);
        if (n < 0)
                return (int) n;
        return parse_proc_stat(buf, ret);
}

/* What the scan knows about the process being looked at; each part read at most once.
 *
 * Matching reads "/proc/PID/…" by path: one syscall per probe, which is what a pass over
 * every process costs. Those reads may straddle a pid reuse, so a process that matches is
 * then *pinned* (its /proc/PID directory opened: reads through that fd fail once the
 * process is gone, whoever gets the pid next), re-read and matched again; everything
 * returned comes from the pinned reads. */
typedef struct ProcView {
        pid_t pid;
        int proc_fd;                    /* /proc */
        int dir_fd;                     /* /proc/PID once pinned, else -EBADF */
        int stat_r, comm_r, exe_r, cgroup_r; /* 1: not read yet; 0: read; < 0: errno */
        ProcStat stat;
        char comm[THREAD_NAME_MAX];
        char exe[PATH_MAX + 16];        /* room for " (deleted)" */
        bool exe_deleted;
        char *cgroup;                   /* the "0::" path, inside cgroup_buf */
        char *cgroup_buf;               /* PROC_CGROUP_READ_MAX, owned by the scan */
} ProcView;

static void view_forget(ProcView *v) {
        v->stat_r = v->comm_r = v->exe_r = v->cgroup_r = 1;
        v->cgroup = NULL;
}

static void view_reset(ProcView *v, pid_t pid) {
        if (v->dir_fd >= 0)
                close(v->dir_fd);
        v->pid = pid;
        v->dir_fd = -EBADF;
        view_forget(v);
}

/* From here on, every read is of this process or fails. 0, or -ESRCH when gone. */
static int view_pin(ProcView *v) {
        char name[16];
        snprintf(name, sizeof name, "%d", (int) v->pid);
        v->dir_fd = openat(v->proc_fd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (v->dir_fd < 0)
                return errno == ENOENT ? -ESRCH : -errno;
        view_forget(v);
        return 0;
}

/* The directory fd and relative path to reach LEAF of the process. */
static int view_at(const ProcView *v, const char *leaf, char path[static 32]) {
        if (v->dir_fd >= 0) {
                snprintf(path, 32, "%s", leaf);
                return v->dir_fd;
        }
        snprintf(path, 32, "%d/%s", (int) v->pid, leaf);
        return v->proc_fd;
}

static int view_stat(ProcView *v) {
        if (v->stat_r == 1) {
                char path[32];
                int fd = view_at(v, "stat", path);
                v->stat_r = read_proc_stat_at(fd, path, &v->stat);
        }
        return v->stat_r;
}

/* comm alone: /proc/PID/comm is cheaper for the kernel to produce than stat (which also
 * gathers memory and CPU figures), and it is read for every process by a COMM scan. */
static int view_comm(ProcView *v) {
        if (v->comm_r == 1) {
                char path[32];
                int fd = view_at(v, "comm", path);
                ssize_t n = read_small_at(fd, path, v->comm, sizeof v->comm);
                if (n < 0)
                        return (v->comm_r = (int) n);
                if (n > 0 && v->comm[n - 1] == '\n')
                        v->comm[n - 1] = 0;
                v->comm_r = 0;
        }
        return v->comm_r;
}

static int view_exe(ProcView *v) {
        if (v->exe_r == 1) {
                char path[32];
                int fd = view_at(v, "exe", path);
                ssize_t n = readlinkat(fd, path, v->exe, sizeof v->exe);
                if (n < 0)
                        /* No exe: a kernel thread, or a process past exit_mm(). */
                        v->exe_r = errno == ENOENT ? -ESRCH : -errno;
                else if ((size_t) n >= sizeof v->exe)
                        v->exe_r = -ENAMETOOLONG;
                else {
                        static const char deleted[] = " (deleted)";
                        size_t len = (size_t) n, dl = sizeof deleted - 1;
                        v->exe[len] = 0;
                        v->exe_deleted = len > dl && strcmp(v->exe + len - dl, deleted) == 0;
                        if (v->exe_deleted)
                                v->exe[len - dl] = 0;
                        v->exe_r = 0;
                }
        }
        return v->exe_r;
}

/* The cgroup v2 path of the process: the "0::/path" line of /proc/PID/cgroup. */
static int view_cgroup(ProcView *v) {
        if (v->cgroup_r == 1) {
                char path[32];
                int fd = view_at(v, "cgroup", path);
                ssize_t n = read_small_at(fd, path, v->cgroup_buf, PROC_CGROUP_READ_MAX);
                if (n < 0)
                        return (v->cgroup_r = (int) n);
                v->cgroup_r = -ENOENT;
                for (char *line = v->cgroup_buf, *next; line && *line; line = next) {
                        next = strchr(line, '\n');
                        if (next)
                                *next++ = 0;
                        if (strncmp(line, "0::", 3) == 0) {
                                v->cgroup = line + 3;
                                v->cgroup_r = 0;
                                break;
                        }
                }
        }
        return v->cgroup_r;
}

/* Tgid from PATH (a /proc/PID/status) under DIR_FD. */
static int read_tgid_at(int dir_fd, const char *path, pid_t *ret) {
        char buf[2048];                 /* Tgid is the fourth line; Name is ≤ 64 escaped bytes */
        ssize_t n = read_small_at(dir_fd, path, buf, sizeof buf);
        if (n < 0)
                return (int) n;
        const char *p = strstr(buf, "\nTgid:");
        if (!p)
                return -EIO;
        pid_t tgid;
        p += strlen("\nTgid:");
        p += strspn(p, " \t");
        char num[16];
        size_t len = strspn(p, "0123456789");
        if (len == 0 || len >= sizeof num)
                return -EIO;
        memcpy(num, p, len);
        num[len] = 0;
        if (parse_pid(num, &tgid) < 0)
                return -EIO;
        *ret = tgid;
        return 0;
}

/* 1 when V is a process, 0 when a thread of another: a thread id also has a /proc entry
 * (unlisted). Negative errno when it cannot tell. */
static int view_is_process(ProcView *v) {
        char path[32];
        pid_t tgid;
        int fd = view_at(v, "status", path);
        int r = read_tgid_at(fd, path, &tgid);
        if (r < 0)
                return r;
        return tgid == v->pid;
}

/* ---- candidates from cgroup.procs ---- */

typedef struct Candidate {
        pid_t pid;
        uint32_t sel;
} Candidate;

typedef struct Candidates {
        Candidate *items;
        size_t n, cap;
        bool truncated;
} Candidates;

static int candidates_add(Candidates *c, pid_t pid, uint32_t sel) {
        if (c->n >= DISCOVER_CANDIDATES_MAX) {
                c->truncated = true;
                return 0;
        }
        if (c->n == c->cap) {
                size_t ncap = c->cap ? c->cap * 2 : 256;
                Candidate *p = realloc(c->items, ncap * sizeof *p);
                if (!p)
                        return -ENOMEM;
                c->items = p;
                c->cap = ncap;
        }
        c->items[c->n++] = (Candidate) { pid, sel };
        return 0;
}

static int cmp_candidate(const void *a, const void *b) {
        const Candidate *x = a, *y = b;
        if (x->pid != y->pid)
                return (x->pid > y->pid) - (x->pid < y->pid);
        return (x->sel > y->sel) - (x->sel < y->sel);
}

/* Sorts by pid and keeps each pid once, with its lowest selector. */
static void candidates_finish(Candidates *c) {
        if (c->n == 0)
                return;
        qsort(c->items, c->n, sizeof *c->items, cmp_candidate);
        size_t o = 1;
        for (size_t i = 1; i < c->n; i++)
                if (c->items[i].pid != c->items[o - 1].pid)
                        c->items[o++] = c->items[i];
        c->n = o;
}

static size_t candidates_lookup(const Candidates *c, pid_t pid) {
        size_t lo = 0, hi = c->n;
        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                if (c->items[mid].pid < pid)
                        lo = mid + 1;
                else if (c->items[mid].pid > pid)
                        hi = mid;
                else
                        return c->items[mid].sel;
        }
        return NO_SELECTOR;
}

typedef struct CgroupWalk {
        Candidates *candidates;
        char *buf;                      /* READ_CHUNK bytes */
        uint32_t sel;
        size_t dirs;
        bool incomplete;                /* part of the subtree was not read: fall back */
} CgroupWalk;

/* Adds the pids listed in DIR_FD/cgroup.procs, read in chunks: no allocation per file. */
static int read_cgroup_procs(CgroupWalk *w, int dir_fd) {
        _cleanup_close_ int fd = openat(dir_fd, "cgroup.procs", O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return -errno;
        uint64_t v = 0;
        int digits = 0;
        bool bad = false;
        size_t total = 0;
        for (;;) {
                ssize_t n = read(fd, w->buf, READ_CHUNK);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return -errno;
                if (n == 0)
                        break;
                for (ssize_t i = 0; i < n; i++) {
                        char ch = w->buf[i];
                        if (ch >= '0' && ch <= '9') {
                                if (++digits > 10)
                                        bad = true;
                                else
                                        v = v * 10 + (uint64_t) (ch - '0');
                        } else if (ch == '\n') {
                                if (digits > 0 && !bad && v > 0 && v <= INT32_MAX) {
                                        int r = candidates_add(w->candidates, (pid_t) v, w->sel);
                                        if (r < 0)
                                                return r;
                                }
                                v = 0;
                                digits = 0;
                                bad = false;
                        } else
                                bad = true;
                }
                total += (size_t) n;
                if (total >= CGROUP_PROCS_READ_MAX) {
                        w->candidates->truncated = true;
                        return 0;
                }
        }
        /* The kernel ends every line with '\n'; a partial last token is dropped. */
        return 0;
}

/* Depth first through DIR_FD and the cgroups below it. Holds two fds per level. */
static int cgroup_walk(CgroupWalk *w, int dir_fd, unsigned depth) {
        if (w->dirs >= CGROUP_WALK_DIRS_MAX) {
                w->incomplete = true;
                return 0;
        }
        w->dirs++;

        int r = read_cgroup_procs(w, dir_fd);
        if (r == -ENOMEM)
                return r;
        if (r == -ENOENT || r == -ENODEV)
                return 0;                       /* being removed: holds no process */
        if (r == -EOPNOTSUPP && depth > 0)
                return 0;                       /* threaded: the domain above lists them */
        if (r < 0) {
                w->incomplete = true;
                return 0;
        }

        int fd = openat(dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0) {
                w->incomplete = true;
                return 0;
        }
        DIR *d = fdopendir(fd);
        if (!d) {
                close(fd);
                w->incomplete = true;
                return 0;
        }
        struct dirent *de;
        r = 0;
        while (r >= 0 && (de = readdir(d))) {
                if (dot_or_dotdot(de->d_name) || !dirent_is_dir(d, de))
                        continue;
                if (depth + 1 > CGROUP_WALK_DEPTH_MAX) {
                        w->incomplete = true;
                        break;
                }
                _cleanup_close_ int sub = openat(dir_fd, de->d_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
                if (sub < 0) {
                        if (errno != ENOENT)
                                w->incomplete = true;
                        continue;
                }
                r = cgroup_walk(w, sub, depth + 1);
        }
        closedir(d);
        return r;
}

/* ---- the scan ---- */

typedef struct SelectorScan {
        const char *cgroup;             /* CGROUP, UNIT: for /proc/PID/cgroup matching */
        char *cgroup_owned;             /* a unit found again by this scan */
        bool fallback;                  /* match this selector by /proc/PID/cgroup */
} SelectorScan;

typedef struct Results {
        DiscoveredProcess *items;
        size_t n, cap;
        bool truncated;
} Results;

/* Walks the cgroup of selector I into C, or marks it for /proc/PID/cgroup matching. */
static int scan_cgroup_selector(const TargetSelector *sel, uint32_t i, SelectorScan *ss, Candidates *c, char *buf) {
        _cleanup_free_ char *dir_owned = NULL;
        const char *dir = sel->cgroup_dir;
        _cleanup_close_ int fd = -EBADF;
        int r;

        ss->cgroup = sel->cgroup;
        if (dir) {
                fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
                if (fd < 0 && errno != ENOENT) {
                        ss->fallback = true;
                        return 0;
                }
        }
        if (fd < 0 && sel->kind == SELECTOR_UNIT) {
                /* Not running at parse time, or stopped since: it may be (again) now,
                 * possibly in another slice. */
                const char *root;
                if (cgroup2_root(&root) < 0)
                        return 0;
                r = cgroup_find_unit(root, sel->value, &ss->cgroup_owned);
                if (r == -ENOMEM)
                        return r;
                if (r < 0)
                        return 0;
                ss->cgroup = ss->cgroup_owned;
                dir_owned = cgroup_dir_join(root, ss->cgroup);
                if (!dir_owned)
                        return -ENOMEM;
                fd = open(dir_owned, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
                if (fd < 0 && errno != ENOENT) {
                        ss->fallback = true;
                        return 0;
                }
        } else if (!dir && sel->cgroup) {
                ss->fallback = true;            /* no cgroup2 mount */
                return 0;
        }
        if (fd < 0)
                return 0;                       /* no such cgroup (yet): empty */

        CgroupWalk w = { .candidates = c, .buf = buf, .sel = i };
        r = cgroup_walk(&w, fd, 0);
        if (r < 0)
                return r;
        ss->fallback = w.incomplete;
        return 0;
}

/* Whether the process in V matches selector I by what it reads of the process itself
 * (PID and walked cgroups are matched through the candidates instead). */
static bool matches_directly(const TargetSelector *sel, const SelectorScan *ss, ProcView *v) {
        switch (sel->kind) {
        case SELECTOR_EXE:
                return view_exe(v) == 0 && strcmp(v->exe, sel->exe) == 0;
        case SELECTOR_COMM:
                return view_comm(v) == 0 && strcmp(v->comm, sel->comm) == 0;
        case SELECTOR_CGROUP:
        case SELECTOR_UNIT:
                if (!ss->fallback || !ss->cgroup || view_cgroup(v) < 0)
                        return false;
                return strcmp(ss->cgroup, "/") == 0 || path_below(v->cgroup, ss->cgroup);
        default:
                return false;
        }
}

/* Adds the process in V, matched by selector SEL, unless it is not a live user process.
 * DIRECT: SEL matched by unpinned reads, to be confirmed. LISTED: V's pid came from a
 * listing of processes (/proc, cgroup.procs), not from a --pid. */
static int accept_process(const TargetSelector *sels, const SelectorScan *ss, size_t sel, bool direct, bool listed,
                          ProcView *v, Results *out) {
        if (view_pin(v) < 0)
                return 0;                       /* gone */
        if (direct && !matches_directly(&sels[sel], &ss[sel], v))
                return 0;                       /* the pid changed hands since the probe */
        if (view_stat(v) < 0)
                return 0;
        const ProcStat *st = &v->stat;
        if (st->state == 'Z' || st->state == 'X' || (st->flags & PF_KTHREAD) || v->pid == KTHREADD_PID ||
            st->ppid == KTHREADD_PID)
                return 0;
        /* /proc and cgroup.procs list processes only; a --pid may name a thread. */
        if (!listed && sels[sel].kind == SELECTOR_PID && view_is_process(v) != 1)
                return 0;
        int r = view_exe(v);
        if (r == -ESRCH)
                return 0;                       /* gone, or a kernel thread after all */
        if (out->n >= DISCOVER_MATCHES_MAX) {
                out->truncated = true;
                return 0;
        }
        if (out->n == out->cap) {
                size_t ncap = out->cap ? out->cap * 2 : 16;
                DiscoveredProcess *p = realloc(out->items, ncap * sizeof *p);
                if (!p)
                        return -ENOMEM;
                out->items = p;
                out->cap = ncap;
        }
        DiscoveredProcess *d = &out->items[out->n];
        *d = (DiscoveredProcess) {
                .pid = v->pid,
                .start_time_ticks = st->start_time_ticks,
                .exe_deleted = r == 0 && v->exe_deleted,
                .selector = sel,
        };
        memcpy(d->comm, st->comm, sizeof d->comm);
        if (r == 0 && !(d->exe = strdup(v->exe)))
                return -ENOMEM;
        out->n++;
        return 0;
}

static int cmp_discovered(const void *a, const void *b) {
        pid_t x = ((const DiscoveredProcess *) a)->pid, y = ((const DiscoveredProcess *) b)->pid;
        return (x > y) - (x < y);
}

void discovered_free(DiscoveredProcess *p, size_t n) {
        if (!p)
                return;
        for (size_t i = 0; i < n; i++)
                free(p[i].exe);
        free(p);
}

int discover_scan(const TargetSelector *sels, size_t n, DiscoveredProcess **ret, size_t *ret_n) {
        Candidates cands = {};
        Results out = {};
        SelectorScan *ss = NULL;
        ProcView *view = NULL;
        char *buf = NULL;
        DIR *d = NULL;
        int proc_fd = -EBADF, r = 0;
        bool listing = false;
        pid_t self = getpid();

        if (n > DISCOVER_SELECTORS_MAX)
                return -E2BIG;
        if (n == 0) {
                *ret = NULL;
                *ret_n = 0;
                return 0;
        }

        ss = calloc(n, sizeof *ss);
        view = calloc(1, sizeof *view);
        if (view)
                view->dir_fd = view->proc_fd = -EBADF;
        buf = malloc(MAX(READ_CHUNK, PROC_CGROUP_READ_MAX));
        if (!ss || !view || !buf) {
                r = -ENOMEM;
                goto finish;
        }
        view->cgroup_buf = buf;         /* the cgroup walks are over before it is used */

        for (size_t i = 0; i < n; i++) {
                switch (sels[i].kind) {
                case SELECTOR_PID:
                        r = candidates_add(&cands, sels[i].pid, (uint32_t) i);
                        break;
                case SELECTOR_EXE:
                case SELECTOR_COMM:
                        listing = true;
                        break;
                case SELECTOR_CGROUP:
                case SELECTOR_UNIT:
                        r = scan_cgroup_selector(&sels[i], (uint32_t) i, &ss[i], &cands, buf);
                        listing = listing || ss[i].fallback;
                        break;
                default:
                        break;
                }
                if (r < 0)
                        goto finish;
        }
        candidates_finish(&cands);

        proc_fd = open("/proc", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (proc_fd < 0) {
                r = -errno;
                goto finish;
        }
        view->proc_fd = proc_fd;

        if (!listing) {
                /* Only known pids: no need to list /proc at all. */
                for (size_t i = 0; i < cands.n && r >= 0; i++) {
                        if (cands.items[i].pid == self)
                                continue;
                        /* cgroup.procs was read a moment ago; a pid reused since would
                         * need the whole pid space to wrap meanwhile. */
                        view_reset(view, cands.items[i].pid);
                        r = accept_process(sels, ss, cands.items[i].sel, false, false, view, &out);
                }
                goto finish;
        }

        int list_fd = openat(proc_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (list_fd < 0 || !(d = fdopendir(list_fd))) {
                r = -errno;
                if (list_fd >= 0)
                        close(list_fd);
                goto finish;
        }
        size_t entries = 0;
        struct dirent *de;
        while (r >= 0 && entries < DISCOVER_PROC_ENTRIES_MAX && (de = readdir(d))) {
                pid_t pid;
                if (de->d_name[0] < '1' || de->d_name[0] > '9' || parse_pid(de->d_name, &pid) < 0)
                        continue;
                entries++;
                if (pid == self)
                        continue;
                /* The first selector that matches: walked cgroups and pids first (no
                 * read needed), then the ones that read the process, in order. */
                size_t best = candidates_lookup(&cands, pid);
                bool direct = false;
                view_reset(view, pid);
                for (size_t i = 0; i < n && i < best; i++)
                        if (matches_directly(&sels[i], &ss[i], view)) {
                                best = i;
                                direct = true;
                                break;
                        }
                if (best != NO_SELECTOR)
                        r = accept_process(sels, ss, best, direct, true, view, &out);
        }

finish:
        if (d)
                closedir(d);
        if (view)
                view_reset(view, 0);
        if (proc_fd >= 0)
                close(proc_fd);
        if (ss)
                for (size_t i = 0; i < n; i++)
                        free(ss[i].cgroup_owned);
        free(ss);
        free(view);
        free(buf);
        bool truncated = cands.truncated || out.truncated;
        free(cands.items);
        if (r < 0) {
                discovered_free(out.items, out.n);
                return r;
        }
        if (out.n > 0)
                qsort(out.items, out.n, sizeof *out.items, cmp_discovered);
        else {
                free(out.items);
                out.items = NULL;
        }
        *ret = out.items;
        *ret_n = out.n;
        return truncated ? 1 : 0;
}

/* ---- pidfd handles ---- */

int process_handle_open(pid_t pid, uint64_t start_time_ticks, ProcessHandle *ret) {
        char path[32];
        ProcStat st;
        int r;

        if (pid <= 0)
                return -EINVAL;
        /* Open first, check after: see discover.h. */
        _cleanup_close_ int fd = (int) syscall(SYS_pidfd_open, pid, 0);
        if (fd < 0 && (errno == EINVAL || errno == ENOENT)) {
                /* A thread that is not a process: EINVAL, or ENOENT from newer kernels
                 * (6.18 here), so ask /proc which one it is. */
                pid_t tgid;
                snprintf(path, sizeof path, "/proc/%d/status", (int) pid);
                r = read_tgid_at(AT_FDCWD, path, &tgid);
                return r == 0 && tgid != pid ? -EINVAL : -ESRCH;
        }
        if (fd < 0 && errno != ENOSYS)
                return -errno;
        if (fd < 0)
                fd = -EBADF;
        snprintf(path, sizeof path, "/proc/%d/stat", (int) pid);
        r = read_proc_stat_at(AT_FDCWD, path, &st);
        if (r < 0)
                return r;
        if (st.start_time_ticks != start_time_ticks || st.state == 'Z' || st.state == 'X')
                return -ESRCH;
        *ret = (ProcessHandle) { .pid = pid, .start_time_ticks = start_time_ticks, .pidfd = TAKE_FD(fd) };
        return 0;
}

int process_handle_exited(const ProcessHandle *h) {
        if (h->pidfd >= 0) {
                /* Readable once the whole thread group has exited, reaped or not. */
                struct pollfd p = { .fd = h->pidfd, .events = POLLIN };
                int k;
                do
                        k = poll(&p, 1, 0);
                while (k < 0 && errno == EINTR);
                if (k < 0)
                        return -errno;
                return k > 0 && (p.revents & (POLLIN | POLLHUP | POLLERR)) ? 1 : 0;
        }
        /* No pidfd (old kernel): the start time alone tells the pid's owner apart. */
        char path[32];
        ProcStat st;
        snprintf(path, sizeof path, "/proc/%d/stat", (int) h->pid);
        int r = read_proc_stat_at(AT_FDCWD, path, &st);
        if (r == -ESRCH)
                return 1;
        if (r < 0)
                return r;
        return st.start_time_ticks != h->start_time_ticks || st.state == 'Z' || st.state == 'X';
}

void process_handle_close(ProcessHandle *h) {
        if (h && h->pidfd >= 0)
                close(h->pidfd);
        if (h)
                h->pidfd = -EBADF;
}
