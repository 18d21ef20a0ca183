/* attach/procfs.c -- parse /proc/PID/{maps,task,stat,syscall,wchan,cmdline,status}.
 *
 * Nothing here stops or signals the target. Every file is read with one bounded read loop
 * and parsed defensively: the content is written by the kernel, but names inside it (comm,
 * paths) are chosen by the target. The parsers are separate from the reads and declared in
 * procfs-internal.h, so that fuzz/fuzz-procfs.c can feed them any text. */
#include <ctype.h>
#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "macro.h"
#include "procfs-internal.h"

#define MAPS_READ_MAX (64u * 1024u * 1024u)
#define CMDLINE_MAX (128u * 1024u)

/* Reads at most MAX bytes of PATH (relative to DIRFD) into a malloc'ed, NUL-terminated
 * buffer. A missing /proc entry of a vanished process reads as -ESRCH. */
static int read_file_at(int dirfd, const char *path, size_t max, char **ret, size_t *ret_len) {
        _cleanup_close_ int fd = openat(dirfd, path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return errno == ENOENT ? -ESRCH : -errno;

        size_t cap = MIN((size_t) 4096, max), len = 0;
        _cleanup_free_ char *buf = malloc(cap + 1);
        if (!buf)
                return -ENOMEM;
        for (;;) {
                if (len == cap) {
                        if (cap >= max)
                                break;
                        size_t ncap = MIN(cap * 2, max);
                        char *p = realloc(buf, ncap + 1);
                        if (!p)
                                return -ENOMEM;
                        buf = p;
                        cap = ncap;
                }
                ssize_t n = read(fd, buf + len, cap - len);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return errno == ENOENT ? -ESRCH : -errno;
                }
                if (n == 0)
                        break;
                len += (size_t) n;
        }
        buf[len] = 0;
        *ret = TAKE_PTR(buf);
        if (ret_len)
                *ret_len = len;
        return 0;
}

int procfs_read_file(const char *path, size_t max, char **ret, size_t *ret_len) {
        return read_file_at(AT_FDCWD, path, max, ret, ret_len);
}

/* Small files (stat, syscall, wchan) into a caller buffer: no allocation on the hot path. */
static ssize_t read_small_at(int dirfd, const char *path, char *buf, size_t size) {
        _cleanup_close_ int fd = openat(dirfd, path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return errno == ENOENT ? -ESRCH : -errno;
        ssize_t n;
        do
                n = read(fd, buf, size - 1);
        while (n < 0 && errno == EINTR);
        if (n < 0)
                return errno == ENOENT ? -ESRCH : -errno;
        buf[n] = 0;
        return n;
}

static int open_proc_dir(pid_t pid, const char *sub) {
        char path[64];
        snprintf(path, sizeof path, "/proc/%d%s%s", (int) pid, sub ? "/" : "", sub ? sub : "");
        int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                return errno == ENOENT ? -ESRCH : -errno;
        return fd;
}

static bool parse_hex(const char **p, uint64_t *ret) {
        const char *s = *p;
        uint64_t v = 0;
        int digits = 0;
        for (; isxdigit((unsigned char) *s); s++, digits++) {
                if (digits >= 16)
                        return false;
                int c = tolower((unsigned char) *s);
                v = v * 16 + (uint64_t) (c <= '9' ? c - '0' : c - 'a' + 10);
        }
        if (digits == 0)
                return false;
        *p = s;
        *ret = v;
        return true;
}

bool procfs_parse_dec(const char **p, uint64_t *ret) {
        const char *s = *p;
        uint64_t v = 0;
        int digits = 0;
        for (; isdigit((unsigned char) *s); s++, digits++) {
                if (digits >= 19)
                        return false;
                v = v * 10 + (uint64_t) (*s - '0');
        }
        if (digits == 0)
                return false;
        *p = s;
        *ret = v;
        return true;
}

static bool skip_char(const char **p, char c) {
        if (**p != c)
                return false;
        (*p)++;
        return true;
}

static void skip_spaces(const char **p) {
        while (**p == ' ' || **p == '\t')
                (*p)++;
}

/* One maps line: "start-end perms offset major:minor inode   path". */
static int parse_maps_line(const char *line, MapEntry *e) {
        const char *p = line;
        uint64_t major, minor;
        *e = (MapEntry) {};
        if (!parse_hex(&p, &e->start) || !skip_char(&p, '-') || !parse_hex(&p, &e->end) || !skip_char(&p, ' '))
                return -EINVAL;
        if (strlen(p) < 5 || p[4] != ' ')
                return -EINVAL;
        e->readable = p[0] == 'r';
        e->writable = p[1] == 'w';
        e->executable = p[2] == 'x';
        e->shared = p[3] == 's';
        p += 5;
        if (!parse_hex(&p, &e->offset) || !skip_char(&p, ' ') || !parse_hex(&p, &major) || !skip_char(&p, ':') ||
            !parse_hex(&p, &minor) || !skip_char(&p, ' ') || !procfs_parse_dec(&p, &e->inode))
                return -EINVAL;
        if (e->end <= e->start || major > UINT32_MAX || minor > UINT32_MAX)
                return -EINVAL;
        e->dev_major = (uint32_t) major;
        e->dev_minor = (uint32_t) minor;
        skip_spaces(&p);
        if (*p) {
                size_t len = strlen(p);
                static const char deleted[] = " (deleted)";
                if (len > sizeof deleted - 1 && strcmp(p + len - (sizeof deleted - 1), deleted) == 0) {
                        e->deleted = true;
                        len -= sizeof deleted - 1;
                }
                e->path = strndup(p, len);
                if (!e->path)
                        return -ENOMEM;
        }
        return 0;
}

void maps_done(Maps *m) {
        for (size_t i = 0; i < m->n; i++)
                free(m->entries[i].path);
        free(m->entries);
        *m = (Maps) {};
}

const MapEntry *maps_find_module(const Maps *maps, bool (*match)(const char *path, const void *arg),
                                 const void *arg) {
        for (size_t i = 0; i < maps->n; i++) {
                const MapEntry *e = &maps->entries[i];
                if (e->path && e->offset == 0 && !e->deleted && match(e->path, arg))
                        return e;
        }
        return NULL;
}

bool module_is_libc(const char *path, const void *arg) {
        (void) arg;
        const char *base = strrchr(path, '/');
        base = base ? base + 1 : path;
        size_t n = strlen(base);
        return strncmp(base, "libc.so.", 8) == 0 || (strncmp(base, "libc-", 5) == 0 && n > 3 &&
                                                     strcmp(base + n - 3, ".so") == 0);
}

bool module_is_path(const char *path, const void *arg) {
        return strcmp(path, (const char *) arg) == 0;
}

void procfs_map_files_path(pid_t pid, const MapEntry *m, char *buf, size_t size) {
        snprintf(buf, size, "/proc/%d/map_files/%" PRIx64 "-%" PRIx64, (int) pid, m->start, m->end);
}

int procfs_parse_maps(char *text, Maps *ret) {
        Maps m = {};
        size_t cap = 0;
        int r;

        for (char *line = text, *next; line && *line; line = next) {
                next = strchr(line, '\n');
                if (next)
                        *next++ = 0;
                if (m.n >= MAPS_MAX_ENTRIES)
                        break;
                MapEntry e;
                r = parse_maps_line(line, &e);
                if (r == -ENOMEM) {
                        maps_done(&m);
                        return r;
                }
                if (r < 0)
                        continue;
                /* The kernel lists mappings sorted; keep the invariant even if a line is
                 * odd, since maps_find() relies on it. */
                if (m.n > 0 && e.start < m.entries[m.n - 1].end) {
                        free(e.path);
                        continue;
                }
                if (m.n == cap) {
                        size_t ncap = cap ? cap * 2 : 64;
                        MapEntry *p = realloc(m.entries, ncap * sizeof *p);
                        if (!p) {
                                free(e.path);
                                maps_done(&m);
                                return -ENOMEM;
                        }
                        m.entries = p;
                        cap = ncap;
                }
                m.entries[m.n++] = e;
        }
        if (m.n == 0) {
                /* A zombie or a kernel thread has no maps. */
                maps_done(&m);
                return -ESRCH;
        }
        *ret = m;
        return 0;
}

int procfs_read_maps(pid_t pid, Maps *ret) {
        _cleanup_close_ int dirfd = open_proc_dir(pid, NULL);
        if (dirfd < 0)
                return dirfd;
        _cleanup_free_ char *text = NULL;
        int r = read_file_at(dirfd, "maps", MAPS_READ_MAX, &text, NULL);
        if (r < 0)
                return r;
        return procfs_parse_maps(text, ret);
}

int maps_copy(const Maps *src, Maps *ret) {
        Maps m = { .entries = calloc(MAX(src->n, 1u), sizeof(MapEntry)) };
        if (!m.entries)
                return -ENOMEM;
        for (size_t i = 0; i < src->n; i++) {
                m.entries[i] = src->entries[i];
                m.entries[i].path = NULL;
                m.n++;
                if (src->entries[i].path && !(m.entries[i].path = strdup(src->entries[i].path))) {
                        maps_done(&m);
                        return -ENOMEM;
                }
        }
        *ret = m;
        return 0;
}

const MapEntry *maps_find(const Maps *m, uint64_t addr) {
        size_t lo = 0, hi = m->n;
        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                const MapEntry *e = &m->entries[mid];
                if (addr < e->start)
                        hi = mid;
                else if (addr >= e->end)
                        lo = mid + 1;
                else
                        return e;
        }
        return NULL;
}

static int cmp_pid(const void *a, const void *b) {
        pid_t x = *(const pid_t *) a, y = *(const pid_t *) b;
        return (x > y) - (x < y);
}

int procfs_list_threads(pid_t pid, pid_t **ret_tids, size_t *ret_n) {
        int fd = open_proc_dir(pid, "task");
        if (fd < 0)
                return fd;
        DIR *d = fdopendir(fd);
        if (!d) {
                int r = -errno;
                close(fd);
                return r;
        }
        pid_t *tids = NULL;
        size_t n = 0, cap = 0;
        struct dirent *de;
        while ((de = readdir(d)) && n < THREADS_MAX) {
                const char *p = de->d_name;
                uint64_t v;
                if (!procfs_parse_dec(&p, &v) || *p || v == 0 || v > INT32_MAX)
                        continue;
                if (n == cap) {
                        size_t ncap = cap ? cap * 2 : 64;
                        pid_t *q = realloc(tids, ncap * sizeof *q);
                        if (!q) {
                                free(tids);
                                closedir(d);
                                return -ENOMEM;
                        }
                        tids = q;
                        cap = ncap;
                }
                tids[n++] = (pid_t) v;
        }
        closedir(d);
        if (n == 0) {
                free(tids);
                return -ESRCH;
        }
        qsort(tids, n, sizeof *tids, cmp_pid);
        *ret_tids = tids;
        *ret_n = n;
        return 0;
}

/* Parses /proc/…/stat: "tid (comm) S f4 f5 …". comm may hold spaces and parentheses, so
 * the name ends at the *last* ')'. */
int procfs_parse_stat(const char *text, ThreadInfo *info) {
        const char *open = strchr(text, '(');
        const char *close = strrchr(text, ')');
        if (!open || !close || close < open)
                return -EINVAL;
        size_t len = MIN((size_t) (close - open - 1), sizeof info->name - 1);
        memcpy(info->name, open + 1, len);
        info->name[len] = 0;

        const char *p = close + 1;
        skip_spaces(&p);
        if (!*p)
                return -EINVAL;
        info->state = *p++;
        /* Fields 4.. are numbers (some negative); we need 5, 14, 15 and 22. */
        for (int field = 4; field <= 22; field++) {
                skip_spaces(&p);
                const char *start = p;
                if (*p == '-')
                        p++;
                uint64_t v;
                if (!procfs_parse_dec(&p, &v))
                        return -EINVAL;
                if (*start == '-')
                        v = 0;
                if (field == 5)
                        info->pgrp = v <= INT32_MAX ? (pid_t) v : 0;
                else if (field == 14)
                        info->utime_ticks = v;
                else if (field == 15)
                        info->stime_ticks = v;
                else if (field == 22)
                        info->start_time_ticks = v;
        }
        return 0;
}

int procfs_parse_syscall(const char *text) {
        const char *p = text;
        uint64_t nr;
        if (procfs_parse_dec(&p, &nr) && nr < 4096)
                return (int) nr;
        return -1;
}

static bool parse_prefixed_hex(const char **p, uint64_t *ret) {
        return skip_char(p, '0') && skip_char(p, 'x') && parse_hex(p, ret);
}

void procfs_parse_syscall_place(const char *text, SyscallPlace *place) {
        SyscallPlace pl = {};
        const char *p = text;
        uint64_t nr;

        *place = pl;
        if (!procfs_parse_dec(&p, &nr) || nr >= 4096)
                return;
        pl.nr = (int) nr;
        for (size_t i = 0; i < ARRAY_SIZE(pl.args); i++)
                if (!skip_char(&p, ' ') || !parse_prefixed_hex(&p, &pl.args[i]))
                        return;
        if (!skip_char(&p, ' ') || !parse_prefixed_hex(&p, &pl.sp) || !skip_char(&p, ' ') ||
            !parse_prefixed_hex(&p, &pl.pc))
                return;
        if (*p != 0 && *p != '\n')
                return;
        pl.known = true;
        *place = pl;
}

int procfs_parse_schedstat(const char *text, uint64_t *ret) {
        const char *p = text;
        uint64_t v;
        if (!procfs_parse_dec(&p, &v) || (*p != ' ' && *p != '\n' && *p != 0))
                return -EINVAL;
        *ret = v;
        return 0;
}

void procfs_parse_wchan(const char *text, char ret[static 64]) {
        size_t i = 0;
        if (strcmp(text, "0") != 0)
                for (; text[i] && i < 64 - 1; i++)
                        ret[i] = isgraph((unsigned char) text[i]) ? text[i] : '?';
        ret[i] = 0;
}

/* "/proc/PID/task/TID/LEAF": full paths rather than a directory fd, as one open per file
 * is the whole cost, and this runs for every thread of every snapshot. */
static void thread_file_path(char path[static 96], pid_t pid, pid_t tid, const char *leaf) {
        snprintf(path, 96, "/proc/%d/task/%d/%s", (int) pid, (int) tid, leaf);
}

int procfs_read_thread_stat(pid_t pid, pid_t tid, ThreadInfo *ret) {
        char path[96], buf[1024];
        ThreadInfo info = { .syscall = -1, .run_ns = RUN_NS_UNKNOWN };

        thread_file_path(path, pid, tid, "stat");
        ssize_t k = read_small_at(AT_FDCWD, path, buf, sizeof buf);
        if (k < 0)
                return (int) k;
        if (procfs_parse_stat(buf, &info) < 0)
                return -EIO;
        *ret = info;
        return 0;
}

void procfs_read_thread_wait(pid_t pid, pid_t tid, ThreadInfo *info) {
        char path[96], buf[1024];

        if (info->state == 'R')
                return;
        /* "running", "-1 SP PC" (blocked outside a syscall) or "NR ARG… SP PC". Needs
         * ptrace read access; without it the syscall stays unknown. */
        thread_file_path(path, pid, tid, "syscall");
        if (read_small_at(AT_FDCWD, path, buf, sizeof buf) > 0) {
                info->syscall = procfs_parse_syscall(buf);
                procfs_parse_syscall_place(buf, &info->place);
        }
        /* The wait channel only matters when no syscall explains the wait. */
        thread_file_path(path, pid, tid, "wchan");
        if (info->syscall < 0 && read_small_at(AT_FDCWD, path, buf, sizeof buf) > 0)
                procfs_parse_wchan(buf, info->wchan);
}

int procfs_read_thread(pid_t pid, pid_t tid, ThreadInfo *ret) {
        int r = procfs_read_thread_stat(pid, tid, ret);
        if (r < 0)
                return r;
        procfs_read_thread_wait(pid, tid, ret);
        return 0;
}

int procfs_read_thread_run_ns(pid_t pid, pid_t tid, ThreadInfo *info) {
        char path[96], buf[128];

        thread_file_path(path, pid, tid, "schedstat");
        ssize_t k = read_small_at(AT_FDCWD, path, buf, sizeof buf);
        if (k < 0)
                return (int) k;
        return procfs_parse_schedstat(buf, &info->run_ns);
}

int procfs_read_cmdline(pid_t pid, char **ret, size_t *ret_len) {
        _cleanup_close_ int dirfd = open_proc_dir(pid, NULL);
        if (dirfd < 0)
                return dirfd;
        char *text;
        size_t len;
        int r = read_file_at(dirfd, "cmdline", CMDLINE_MAX, &text, &len);
        if (r < 0)
                return r;
        if (len > 0 && text[len - 1] == 0)
                len--;
        *ret = text;
        *ret_len = len;
        return 0;
}

int procfs_read_exe(pid_t pid, char **ret) {
        char path[64], buf[4096 + 1];
        snprintf(path, sizeof path, "/proc/%d/exe", (int) pid);
        ssize_t n = readlink(path, buf, sizeof buf - 1);
        if (n < 0)
                return errno == ENOENT ? -ESRCH : -errno;
        buf[n] = 0;
        static const char deleted[] = " (deleted)";
        size_t len = (size_t) n;
        if (len > sizeof deleted - 1 && strcmp(buf + len - (sizeof deleted - 1), deleted) == 0)
                buf[len - (sizeof deleted - 1)] = 0;
        char *p = strdup(buf);
        if (!p)
                return -ENOMEM;
        *ret = p;
        return 0;
}

void procfs_parse_comm(const char *text, size_t len, char ret[static THREAD_NAME_MAX]) {
        if (len > 0 && text[len - 1] == '\n')
                len--;
        /* Found by fuzz/fuzz-procfs: THREAD_NAME_MAX bytes without a newline (the most
         * procfs_read_comm reads) wrote the NUL one byte past RET. Truncate instead. */
        len = MIN(len, (size_t) THREAD_NAME_MAX - 1);
        memcpy(ret, text, len);
        ret[len] = 0;
}

int procfs_read_comm(pid_t pid, char ret[THREAD_NAME_MAX]) {
        _cleanup_close_ int dirfd = open_proc_dir(pid, NULL);
        if (dirfd < 0)
                return dirfd;
        char buf[THREAD_NAME_MAX + 1];
        ssize_t n = read_small_at(dirfd, "comm", buf, sizeof buf);
        if (n < 0)
                return (int) n;
        procfs_parse_comm(buf, (size_t) n, ret);
        return 0;
}

int procfs_same_namespace(pid_t pid, const char *ns) {
        char theirs[64], ours[64];
        struct stat a, b;
        snprintf(theirs, sizeof theirs, "/proc/%d/ns/%s", (int) pid, ns);
        snprintf(ours, sizeof ours, "/proc/self/ns/%s", ns);
        if (stat(theirs, &a) < 0 || stat(ours, &b) < 0)
                return -errno;
        return a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

/* /proc/PID/status, NUL-terminated, into *RET (freed by the caller). */
static int read_status(pid_t pid, char **ret) {
        _cleanup_close_ int dirfd = open_proc_dir(pid, NULL);
        if (dirfd < 0)
                return dirfd;
        return read_file_at(dirfd, "status", 64 * 1024, ret, NULL);
}

int procfs_read_tracer(pid_t pid, pid_t *ret) {
        _cleanup_free_ char *text = NULL;
        int r = read_status(pid, &text);
        if (r < 0)
                return r;
        return procfs_parse_tracer(text, ret);
}

/* The decimal after "\nFIELD:" of a status text. */
static int parse_status_pid(const char *text, const char *field, pid_t *ret) {
        const char *p = strstr(text, field);
        if (!p)
                return -EIO;
        p += strlen(field);
        skip_spaces(&p);
        uint64_t v;
        if (!procfs_parse_dec(&p, &v) || v > INT32_MAX)
                return -EIO;
        *ret = (pid_t) v;
        return 0;
}

int procfs_parse_tracer(const char *text, pid_t *ret) {
        return parse_status_pid(text, "\nTracerPid:", ret);
}

int procfs_read_tgid(pid_t tid, pid_t *ret) {
        _cleanup_free_ char *text = NULL;
        int r = read_status(tid, &text);
        if (r < 0)
                return r;
        return parse_status_pid(text, "\nTgid:", ret);
}

int procfs_read_ns_tid(pid_t pid, pid_t tid, pid_t *ret) {
        char path[96];
        thread_file_path(path, pid, tid, "status");
        _cleanup_free_ char *text = NULL;
        int r = read_file_at(AT_FDCWD, path, 64 * 1024, &text, NULL);
        if (r < 0)
                return r;
        return procfs_parse_ns_tid(text, ret);
}

int procfs_read_nspid(pid_t pid, pid_t *ret) {
        _cleanup_free_ char *text = NULL;
        int r = read_status(pid, &text);
        if (r < 0)
                return r;
        if (procfs_parse_ns_tid(text, ret) < 0)
                *ret = pid;
        return 0;
}

int procfs_parse_ns_tid(const char *text, pid_t *ret) {
        const char *p = strstr(text, "\nNSpid:");
        if (!p)
                return -EIO;
        p += strlen("\nNSpid:");
        uint64_t v = 0;
        int n = 0;
        /* One id per nested namespace, outermost first; the kernel nests 32 at most. */
        for (;;) {
                skip_spaces(&p);
                if (*p == '\n' || *p == 0)
                        break;
                if (++n > 32 || !procfs_parse_dec(&p, &v) || v == 0 || v > INT32_MAX)
                        return -EIO;
        }
        if (n == 0)
                return -EIO;
        *ret = (pid_t) v;
        return 0;
}

const char *thread_state_description(char state) {
        switch (state) {
        case 'R': return "R (running)";
        case 'S': return "S (sleeping)";
        case 'D': return "D (disk sleep)";
        case 'T': return "T (stopped)";
        case 't': return "t (tracing stop)";
        case 'X': return "X (dead)";
        case 'Z': return "Z (zombie)";
        case 'P': return "P (parked)";
        case 'I': return "I (idle)";
        default: return "? (unknown)";
        }
}
