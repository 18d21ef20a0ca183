/* tests/test-discover.c -- following processes by program and by cgroup: selectors are
 * validated; scans find exactly our own copies of /bin/sleep by exe (including ones
 * started later, and one whose binary was deleted) and a renamed child by comm; a cgroup
 * (and its sub-cgroups) and a fake systemd unit find the children moved into them; the
 * unit lookup rules hold; and a pidfd handle refuses a pid whose start time differs and
 * reports exit.
 *
 * Runs as root on a host with a writable cgroup v2 tree (unified at /sys/fs/cgroup, or
 * hybrid at /sys/fs/cgroup/unified). Whatever happens, every child is killed and every
 * directory and cgroup it made is removed: at exit, on a failed assertion (which exits),
 * and on SIGTERM/SIGINT (meson's timeout). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "discover.h"
#include "macro.h"
#include "procfs.h"
#include "tiny-test.h"

/* ---- what the test made, undone at exit on every path ---- */

#define CHILDREN_MAX 32
#define PATHS_MAX 32
static pid_t children[CHILDREN_MAX];
static char dirs[PATHS_MAX][PATH_MAX];  /* removed in reverse order of creation */
static int n_dirs;
static char files[PATHS_MAX][PATH_MAX];
static int n_files;
static char tmpdir[PATH_MAX];           /* realpath of our mkdtemp directory, once made */

/* Only async-signal-safe calls: this also runs from a signal handler. */
static void cleanup(void) {
        for (int i = 0; i < CHILDREN_MAX; i++)
                if (children[i] > 0) {
                        (void) kill(children[i], SIGKILL);
                        (void) waitpid(children[i], NULL, 0);
                        children[i] = 0;
                }
        for (int i = 0; i < n_files; i++)
                (void) unlink(files[i]);
        n_files = 0;
        for (int i = n_dirs - 1; i >= 0; i--)
                /* A cgroup whose last process was just reaped can be busy a moment longer. */
                for (int tries = 0; rmdir(dirs[i]) < 0 && errno == EBUSY && tries < 200; tries++) {
                        struct timespec ts = { 0, 10 * 1000 * 1000 };
                        nanosleep(&ts, NULL);
                }
        n_dirs = 0;
        tmpdir[0] = 0;
}

static void on_signal(int sig) {
        cleanup();
        _exit(128 + sig);
}

__attribute__((constructor)) static void setup_cleanup(void) {
        atexit(cleanup);
        struct sigaction sa = { .sa_handler = on_signal };
        sigaction(SIGTERM, &sa, NULL);
        sigaction(SIGINT, &sa, NULL);
        sigaction(SIGHUP, &sa, NULL);
}

static void track_child(pid_t pid) {
        for (int i = 0; i < CHILDREN_MAX; i++)
                if (children[i] == 0) {
                        children[i] = pid;
                        return;
                }
        (void) kill(pid, SIGKILL);
        (void) waitpid(pid, NULL, 0);
        TINY_FAIL("too many children");
}

/* Kills PID and, when REAP, waits for it; it is forgotten either way unless not reaped. */
static void kill_child(pid_t pid, bool reap) {
        ASSERT_EQ(kill(pid, SIGKILL), 0);
        if (!reap)
                return;
        ASSERT_EQ(waitpid(pid, NULL, 0), pid);
        for (int i = 0; i < CHILDREN_MAX; i++)
                if (children[i] == pid)
                        children[i] = 0;
}

static void track_dir(const char *path) {
        if (n_dirs >= PATHS_MAX)
                TINY_FAIL("too many directories");
        snprintf(dirs[n_dirs++], PATH_MAX, "%s", path);
}

static void make_dir(const char *path) {
        if (mkdir(path, 0755) < 0)
                TINY_FAIL("mkdir %s: %m", path);
        track_dir(path);
}

/* Removes PATH, made by make_dir(), now rather than at exit. */
static void remove_dir(const char *path) {
        int i = n_dirs - 1;
        while (i >= 0 && strcmp(dirs[i], path) != 0)
                i--;
        ASSERT_GE(i, 0);
        int tries = 0;
        while (rmdir(path) < 0) {
                if (errno != EBUSY || ++tries > 200)
                        TINY_FAIL("rmdir %s: %m", path);
                usleep(10 * 1000);
        }
        memmove(dirs[i], dirs[i + 1], (size_t) (n_dirs - i - 1) * sizeof dirs[0]);
        n_dirs--;
}

static void track_file(const char *path) {
        if (n_files >= PATHS_MAX)
                TINY_FAIL("too many files");
        snprintf(files[n_files++], PATH_MAX, "%s", path);
}

/* snprintf into a PATH_MAX buffer; a path that does not fit is a test failure. */
_printf_(2, 3) static void fmt_path(char *buf, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(buf, PATH_MAX, fmt, ap);
        va_end(ap);
        if (n < 0 || n >= PATH_MAX)
                TINY_FAIL("path too long: %s", fmt);
}

/* ---- fixtures ---- */

static const char *get_tmpdir(void) {
        if (!tmpdir[0]) {
                char tmpl[] = "/tmp/cprofd-test-discover-XXXXXX";
                if (!mkdtemp(tmpl))
                        TINY_FAIL("mkdtemp: %m");
                track_dir(tmpl);
                if (!realpath(tmpl, tmpdir))
                        TINY_FAIL("realpath %s: %m", tmpl);
        }
        return tmpdir;
}

/* Copies /bin/sleep to our temp dir as NAME (unique, ≤ 15 bytes so that it is also the
 * comm): only our children run it, so EXE and COMM selectors match nothing else. */
static void copy_sleep(const char *name, char ret[PATH_MAX]) {
        fmt_path(ret, "%s/%s", get_tmpdir(), name);
        int in = open("/bin/sleep", O_RDONLY | O_CLOEXEC);
        int out = open(ret, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0755);
        if (in < 0 || out < 0)
                TINY_FAIL("copy /bin/sleep to %s: %m", ret);
        track_file(ret);
        char buf[65536];
        ssize_t n;
        while ((n = read(in, buf, sizeof buf)) > 0)
                if (write(out, buf, (size_t) n) != n)
                        TINY_FAIL("write %s: %m", ret);
        ASSERT_EQ(n, 0);
        close(in);
        ASSERT_EQ(close(out), 0);
}

/* The child dies with us, even if we are SIGKILLed before cleanup() runs. */
static void child_die_with_parent(pid_t parent) {
        (void) prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
                _exit(1);
}

/* Runs PATH 600 and returns once it has exec'd (the close-on-exec pipe closes). */
static pid_t spawn_exec(const char *path) {
        int fds[2];
        pid_t parent = getpid();
        ASSERT_EQ(pipe2(fds, O_CLOEXEC), 0);
        pid_t pid = fork();
        if (pid < 0)
                TINY_FAIL("fork: %m");
        if (pid == 0) {
                child_die_with_parent(parent);
                execl(path, path, "600", (char *) NULL);
                int e = errno;
                (void) !write(fds[1], &e, sizeof e);
                _exit(127);
        }
        track_child(pid);
        close(fds[1]);
        int e = 0;
        ssize_t n = read(fds[0], &e, sizeof e);
        close(fds[0]);
        if (n != 0)
                TINY_FAIL("exec %s: %s", path, strerror(e));
        return pid;
}

/* A forked child (no exec) that renames itself to NAME, as a server naming itself would. */
static pid_t spawn_renamed(const char *name) {
        int fds[2];
        pid_t parent = getpid();
        ASSERT_EQ(pipe2(fds, O_CLOEXEC), 0);
        pid_t pid = fork();
        if (pid < 0)
                TINY_FAIL("fork: %m");
        if (pid == 0) {
                child_die_with_parent(parent);
                (void) prctl(PR_SET_NAME, name);
                (void) !write(fds[1], "x", 1);
                for (;;)
                        pause();
        }
        track_child(pid);
        close(fds[1]);
        char c;
        ASSERT_EQ(read(fds[0], &c, 1), 1);
        close(fds[0]);
        return pid;
}

static uint64_t start_time_of(pid_t pid) {
        ThreadInfo info;
        ASSERT_EQ(procfs_read_thread(pid, pid, &info), 0);
        return info.start_time_ticks;
}

static char state_of(pid_t pid) {
        ThreadInfo info;
        return procfs_read_thread(pid, pid, &info) == 0 ? info.state : '?';
}

/* comm is set a moment after the exec's close-on-exec fds are closed. */
static void wait_for_comm(pid_t pid, const char *name) {
        char comm[THREAD_NAME_MAX] = "";
        for (int i = 0; i < 5000; i++) {
                if (procfs_read_comm(pid, comm) == 0 && strcmp(comm, name) == 0)
                        return;
                usleep(1000);
        }
        TINY_FAIL("comm of %d is \"%s\", not \"%s\"", (int) pid, comm, name);
}

static void wait_for_state(pid_t pid, char state) {
        for (int i = 0; i < 5000 && state_of(pid) != state; i++)
                usleep(1000);
        ASSERT_EQ(state_of(pid), state);
}

static void parse(SelectorKind kind, const char *text, TargetSelector *ret) {
        int r = selector_parse(kind, text, ret);
        if (r < 0)
                TINY_FAIL("selector_parse(%s, \"%s\"): %s", selector_kind_to_string(kind), text, strerror(-r));
}

typedef struct Scan {
        DiscoveredProcess *p;
        size_t n;
} Scan;

static Scan scan(const TargetSelector *sels, size_t n) {
        Scan s = { NULL, 0 };
        int r = discover_scan(sels, n, &s.p, &s.n);
        if (r != 0)
                TINY_FAIL("discover_scan: %d (%s)", r, r < 0 ? strerror(-r) : "truncated");
        for (size_t i = 1; i < s.n; i++)
                ASSERT_LT(s.p[i - 1].pid, s.p[i].pid);
        return s;
}

static void scan_done(Scan *s) {
        discovered_free(s->p, s->n);
        *s = (Scan) { NULL, 0 };
}

static const DiscoveredProcess *scan_find(const Scan *s, pid_t pid) {
        for (size_t i = 0; i < s->n; i++)
                if (s->p[i].pid == pid)
                        return &s->p[i];
        return NULL;
}

/* Asserts the scan holds exactly the N pids given (in any order). */
static void assert_pids(const Scan *s, size_t n, const pid_t *pids) {
        for (size_t i = 0; i < n; i++)
                if (!scan_find(s, pids[i]))
                        TINY_FAIL("pid %d not found (found %zu)", (int) pids[i], s->n);
        if (s->n != n) {
                for (size_t i = 0; i < s->n; i++)
                        fprintf(stderr, "  found %d \"%s\" %s\n", (int) s->p[i].pid, s->p[i].comm,
                                s->p[i].exe ? s->p[i].exe : "(no exe)");
                TINY_FAIL("found %zu processes, expected %zu", s->n, n);
        }
}

#define ASSERT_PIDS(s, ...)                                                     \
        do {                                                                    \
                const pid_t _p[] = { __VA_ARGS__ };                             \
                assert_pids(s, ARRAY_SIZE(_p), _p);                             \
        } while (0)

static const char *cgroup_root(void) {
        const char *root;
        int r = cgroup2_root(&root);
        if (r < 0)
                TINY_FAIL("no cgroup v2 hierarchy at /sys/fs/cgroup or /sys/fs/cgroup/unified: %s",
                          strerror(-r));
        return root;
}

static void cgroup_move(const char *dir, pid_t pid) {
        char path[PATH_MAX], num[16];
        fmt_path(path, "%s/cgroup.procs", dir);
        int fd = open(path, O_WRONLY | O_CLOEXEC);
        if (fd < 0)
                TINY_FAIL("open %s: %m", path);
        int len = snprintf(num, sizeof num, "%d", (int) pid);
        if (write(fd, num, (size_t) len) != len)
                TINY_FAIL("move %d into %s: %m", (int) pid, dir);
        close(fd);
}

static void *thread_sleep(void *arg) {
        pid_t *tid = arg;
        __atomic_store_n(tid, (pid_t) syscall(SYS_gettid), __ATOMIC_SEQ_CST);
        for (;;)
                pause();
        return NULL;
}

/* A second thread of this process, and its tid; it lives until the test exits. */
static pid_t own_thread(void) {
        static pid_t tid;
        static pthread_t t;
        if (tid == 0) {
                ASSERT_EQ(pthread_create(&t, NULL, thread_sleep, &tid), 0);
                while (__atomic_load_n(&tid, __ATOMIC_SEQ_CST) == 0)
                        usleep(1000);
        }
        return tid;
}

/* Some kernel thread's pid (kthreadd is 2 on a host; a container may show none), or 0. */
static pid_t find_kernel_thread(void) {
        DIR *d = opendir("/proc");
        ASSERT_TRUE(d);
        pid_t found = 0;
        struct dirent *de;
        while (!found && (de = readdir(d))) {
                char path[300], buf[1024];
                unsigned long flags;
                snprintf(path, sizeof path, "/proc/%s/stat", de->d_name);
                FILE *f = fopen(path, "re");
                if (!f)
                        continue;
                size_t n = fread(buf, 1, sizeof buf - 1, f);
                fclose(f);
                buf[n] = 0;
                const char *p = strrchr(buf, ')');
                if (p && sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %lu", &flags) == 1 && (flags & 0x00200000ul))
                        found = atoi(de->d_name);
        }
        closedir(d);
        return found;
}

/* ---- tests ---- */

TEST(selectors_reject_bad_input) {
        TargetSelector s;
        static const struct {
                SelectorKind kind;
                const char *text;
        } bad[] = {
                { SELECTOR_PID, "" },  { SELECTOR_PID, "0" },  { SELECTOR_PID, "-1" },
                { SELECTOR_PID, "abc" }, { SELECTOR_PID, "12abc" }, { SELECTOR_PID, " 12" },
                { SELECTOR_PID, "+12" }, { SELECTOR_PID, "2147483648" }, { SELECTOR_PID, "99999999999999999999" },
                { SELECTOR_EXE, "" }, { SELECTOR_EXE, "bin/sleep" }, { SELECTOR_EXE, "sleep" },
                { SELECTOR_COMM, "" }, { SELECTOR_COMM, "abcdefghijklmnop" },
                { SELECTOR_CGROUP, "" }, { SELECTOR_CGROUP, "system.slice" },
                { SELECTOR_CGROUP, "/system.slice/../x" }, { SELECTOR_CGROUP, "/sys/fs/cgroup/.." },
                { SELECTOR_CGROUP, "/a/b/.." },
                { SELECTOR_UNIT, "" }, { SELECTOR_UNIT, "foo" }, { SELECTOR_UNIT, "foo.txt" },
                { SELECTOR_UNIT, "foo.socket" }, { SELECTOR_UNIT, ".service" },
                { SELECTOR_UNIT, "foo bar.service" }, { SELECTOR_UNIT, "foo/bar.service" },
                { SELECTOR_UNIT, "foo@.service" }, { SELECTOR_UNIT, "@1.service" },
                { SELECTOR_UNIT, "foo.service\n" }, { SELECTOR_UNIT, "../x.service" },
                { _SELECTOR_KIND_MAX, "1" }, { (SelectorKind) -1, "1" },
        };
        for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
                s = (TargetSelector) { .kind = SELECTOR_PID, .pid = 4242 };
                int r = selector_parse(bad[i].kind, bad[i].text, &s);
                if (r != -EINVAL)
                        TINY_FAIL("selector_parse(%d, \"%s\") = %d, expected -EINVAL", (int) bad[i].kind,
                                  bad[i].text, r);
                ASSERT_EQ(s.pid, 4242);         /* untouched on failure */
        }
        char unit[UNIT_NAME_MAX + 2];
        memset(unit, 'a', sizeof unit);
        strcpy(unit + UNIT_NAME_MAX + 1 - strlen(".service"), ".service");
        ASSERT_EQ(strlen(unit), UNIT_NAME_MAX + 1);
        ASSERT_EQ(selector_parse(SELECTOR_UNIT, unit, &s), -EINVAL);
        char *huge = malloc(PATH_MAX + 1);
        ASSERT_TRUE(huge);
        memset(huge, 'a', PATH_MAX);
        huge[0] = '/';
        huge[PATH_MAX] = 0;
        ASSERT_EQ(selector_parse(SELECTOR_EXE, huge, &s), -ENAMETOOLONG);
        free(huge);

        ASSERT_STREQ(selector_kind_to_string(SELECTOR_UNIT), "unit");
        ASSERT_EQ(selector_kind_from_string("cgroup"), SELECTOR_CGROUP);
        ASSERT_EQ(selector_kind_from_string("pids"), -EINVAL);
        ASSERT_TRUE(selector_kind_to_string(_SELECTOR_KIND_MAX) == NULL);
        selector_done(NULL);
}

TEST(selectors_accept_and_normalize) {
        TargetSelector s;
        parse(SELECTOR_PID, "2147483647", &s);
        ASSERT_EQ(s.pid, 2147483647);
        ASSERT_STREQ(s.value, "2147483647");
        selector_done(&s);
        selector_done(&s);                      /* a done selector is zeroed */

        parse(SELECTOR_COMM, "abcdefghijklmno", &s);       /* 15 bytes: the most comm keeps */
        ASSERT_STREQ(s.comm, "abcdefghijklmno");
        selector_done(&s);

        /* EXE goes through realpath: /bin is a symlink to usr/bin on Debian. */
        char expected[PATH_MAX];
        ASSERT_TRUE(realpath("/bin/sleep", expected));
        parse(SELECTOR_EXE, "/bin/../bin//sleep", &s);
        ASSERT_STREQ(s.exe, expected);
        ASSERT_STREQ(s.value, "/bin/../bin//sleep");
        selector_done(&s);
        parse(SELECTOR_EXE, "/nonexistent/cprofd-test", &s);     /* deleted or not yet installed */
        ASSERT_STREQ(s.exe, "/nonexistent/cprofd-test");
        selector_done(&s);

        const char *root = cgroup_root();
        char dir[PATH_MAX];
        static const struct {
                const char *text, *cgroup;
        } cg[] = {
                { "/sys/fs/cgroup/system.slice/foo.service", "/system.slice/foo.service" },
                { "/system.slice/foo.service", "/system.slice/foo.service" },
                { "//system.slice/./foo.service/", "/system.slice/foo.service" },
                { "/sys/fs/cgroup", "/" },
                { "/sys/fs/cgroup/", "/" },
                { "/", "/" },
                { "/sys/fs/cgroupx/a", "/sys/fs/cgroupx/a" },      /* components, not bytes */
                { "/a/..b/c..", "/a/..b/c.." },
        };
        for (size_t i = 0; i < ARRAY_SIZE(cg); i++) {
                parse(SELECTOR_CGROUP, cg[i].text, &s);
                ASSERT_STREQ(s.cgroup, cg[i].cgroup);
                fmt_path(dir, "%s%s", root, strcmp(cg[i].cgroup, "/") == 0 ? "" : cg[i].cgroup);
                ASSERT_STREQ(s.cgroup_dir, dir);
                selector_done(&s);
        }
        /* The mount point itself is a prefix too (the hybrid layout's /sys/fs/cgroup/unified). */
        fmt_path(dir, "%s/x.slice", root);
        parse(SELECTOR_CGROUP, dir, &s);
        ASSERT_STREQ(s.cgroup, "/x.slice");
        ASSERT_STREQ(s.cgroup_dir, dir);
        selector_done(&s);

        /* Valid unit names that run nowhere: accepted, unresolved. */
        static const char *const units[] = {
                "cprofd-none-1.service", "cprofd-none@inst.service", "cprofd\\x2dnone.scope",
                "cprofd:none_2.slice", "a.b.service",
        };
        for (size_t i = 0; i < ARRAY_SIZE(units); i++) {
                parse(SELECTOR_UNIT, units[i], &s);
                ASSERT_TRUE(s.cgroup == NULL && s.cgroup_dir == NULL);
                ASSERT_STREQ(s.value, units[i]);
                selector_done(&s);
        }
}

TEST(exe_finds_exactly_our_copies_and_follows_them) {
        char name[16], copy[PATH_MAX];
        snprintf(name, sizeof name, "cpdsc%d", (int) getpid());
        copy_sleep(name, copy);

        pid_t a = spawn_exec(copy), b = spawn_exec(copy);
        pid_t other = spawn_exec("/bin/sleep");         /* same program, other path */
        wait_for_comm(a, name);
        wait_for_comm(b, name);

        TargetSelector sel;
        parse(SELECTOR_EXE, copy, &sel);
        Scan s = scan(&sel, 1);
        ASSERT_PIDS(&s, a, b);
        const DiscoveredProcess *p = scan_find(&s, a);
        ASSERT_EQ(p->start_time_ticks, start_time_of(a));
        ASSERT_STREQ(p->comm, name);
        ASSERT_STREQ(p->exe, copy);
        ASSERT_FALSE(p->exe_deleted);
        ASSERT_EQ(p->selector, 0);
        scan_done(&s);

        /* A copy started after the first scan is in the next one. */
        pid_t c = spawn_exec(copy);
        s = scan(&sel, 1);
        ASSERT_PIDS(&s, a, b, c);
        scan_done(&s);

        /* One that exited and was reaped is gone... */
        kill_child(b, true);
        s = scan(&sel, 1);
        ASSERT_PIDS(&s, a, c);
        scan_done(&s);

        /* ...and so is a zombie nobody reaped yet. */
        kill_child(c, false);
        wait_for_state(c, 'Z');
        s = scan(&sel, 1);
        ASSERT_PIDS(&s, a);
        scan_done(&s);
        kill_child(c, true);

        /* The same copies by comm (the exec'd basename). */
        TargetSelector by_comm;
        parse(SELECTOR_COMM, name, &by_comm);
        s = scan(&by_comm, 1);
        ASSERT_PIDS(&s, a);
        scan_done(&s);
        selector_done(&by_comm);

        kill_child(a, true);
        kill_child(other, true);
        s = scan(&sel, 1);
        ASSERT_EQ(s.n, 0);
        ASSERT_TRUE(s.p == NULL);
        scan_done(&s);
        selector_done(&sel);
}

TEST(exe_of_a_deleted_binary_still_matches) {
        char name[16], copy[PATH_MAX];
        snprintf(name, sizeof name, "cpdel%d", (int) getpid());
        copy_sleep(name, copy);
        pid_t d = spawn_exec(copy);

        TargetSelector before, after;
        parse(SELECTOR_EXE, copy, &before);
        ASSERT_EQ(unlink(copy), 0);             /* as a package upgrade replaces a binary */
        parse(SELECTOR_EXE, copy, &after);      /* no longer resolves: taken as given */
        ASSERT_STREQ(after.exe, copy);

        const TargetSelector both[] = { before, after };
        for (size_t i = 0; i < ARRAY_SIZE(both); i++) {
                Scan s = scan(&both[i], 1);
                ASSERT_PIDS(&s, d);
                ASSERT_STREQ(s.p[0].exe, copy);
                ASSERT_TRUE(s.p[0].exe_deleted);
                scan_done(&s);
        }
        kill_child(d, true);
        selector_done(&before);
        selector_done(&after);
}

TEST(comm_and_pid_selectors) {
        char name[16];
        snprintf(name, sizeof name, "cpdcm%d", (int) getpid());
        pid_t r = spawn_renamed(name);
        pid_t plain = spawn_renamed("cprofd-other");

        TargetSelector sels[2];
        parse(SELECTOR_COMM, name, &sels[0]);
        Scan s = scan(sels, 1);
        ASSERT_PIDS(&s, r);
        ASSERT_STREQ(s.p[0].comm, name);
        char self_exe[PATH_MAX];
        ASSERT_TRUE(realpath("/proc/self/exe", self_exe));
        ASSERT_STREQ(s.p[0].exe, self_exe);     /* forked, not exec'd: our own binary */
        ASSERT_EQ(s.p[0].start_time_ticks, start_time_of(r));
        scan_done(&s);

        /* Several selectors: each process once, with the first selector it matches. */
        char num[16];
        snprintf(num, sizeof num, "%d", (int) plain);
        parse(SELECTOR_PID, num, &sels[1]);
        s = scan(sels, 2);
        ASSERT_PIDS(&s, r, plain);
        ASSERT_EQ(scan_find(&s, r)->selector, 0);
        ASSERT_EQ(scan_find(&s, plain)->selector, 1);
        scan_done(&s);
        selector_done(&sels[1]);
        snprintf(num, sizeof num, "%d", (int) r);
        parse(SELECTOR_PID, num, &sels[1]);
        s = scan(sels, 2);
        ASSERT_PIDS(&s, r);
        ASSERT_EQ(s.p[0].selector, 0);
        scan_done(&s);

        /* PID selectors alone do not list /proc; they find live processes only. */
        s = scan(&sels[1], 1);
        ASSERT_PIDS(&s, r);
        scan_done(&s);
        selector_done(&sels[1]);
        selector_done(&sels[0]);

        /* Never found: kernel threads (by comm or pid), ourselves, a thread that is not a
         * process, a pid that does not exist. */
        static const char *const kthread_comm = "kthreadd";
        parse(SELECTOR_COMM, kthread_comm, &sels[0]);
        s = scan(sels, 1);
        ASSERT_EQ(s.n, 0);
        scan_done(&s);
        selector_done(&sels[0]);
        pid_t kthread = find_kernel_thread();
        pid_t never[] = { getpid(), own_thread(), kthread ? kthread : getpid() };
        for (size_t i = 0; i < ARRAY_SIZE(never); i++) {
                snprintf(num, sizeof num, "%d", (int) never[i]);
                parse(SELECTOR_PID, num, &sels[0]);
                s = scan(sels, 1);
                if (s.n != 0)
                        TINY_FAIL("pid %d was found", (int) never[i]);
                scan_done(&s);
                selector_done(&sels[0]);
        }
        kill_child(r, true);
        snprintf(num, sizeof num, "%d", (int) r);
        parse(SELECTOR_PID, num, &sels[0]);
        s = scan(sels, 1);
        ASSERT_EQ(s.n, 0);
        scan_done(&s);
        selector_done(&sels[0]);
        kill_child(plain, true);

        s = scan(NULL, 0);
        ASSERT_EQ(s.n, 0);
        TargetSelector one = {};
        DiscoveredProcess sentinel, *p = &sentinel;
        size_t n = 7;
        ASSERT_EQ(discover_scan(&one, DISCOVER_SELECTORS_MAX + 1, &p, &n), -E2BIG);
        ASSERT_TRUE(p == &sentinel && n == 7);  /* untouched */
}

TEST(cgroup_finds_members_and_descendants) {
        const char *root = cgroup_root();
        char top[PATH_MAX], sub[PATH_MAX], rel[PATH_MAX], text[PATH_MAX], name[16], copy[PATH_MAX];
        fmt_path(rel, "/cprofd-test-%d", (int) getpid());
        fmt_path(top, "%s%s", root, rel);
        fmt_path(sub, "%s/sub", top);
        make_dir(top);
        make_dir(sub);
        snprintf(name, sizeof name, "cpdcg%d", (int) getpid());
        copy_sleep(name, copy);
        pid_t e = spawn_exec(copy), f = spawn_exec(copy), outside = spawn_exec(copy);
        cgroup_move(top, e);
        cgroup_move(sub, f);

        /* The same cgroup spelled three ways. */
        TargetSelector sel;
        const char *spellings[] = { rel, text, top };
        fmt_path(text, "/sys/fs/cgroup%s", rel);
        for (size_t i = 0; i < ARRAY_SIZE(spellings); i++) {
                parse(SELECTOR_CGROUP, spellings[i], &sel);
                ASSERT_STREQ(sel.cgroup, rel);
                Scan s = scan(&sel, 1);
                ASSERT_PIDS(&s, e, f);
                ASSERT_EQ(scan_find(&s, e)->start_time_ticks, start_time_of(e));
                scan_done(&s);
                selector_done(&sel);
        }

        /* A sub-cgroup holds only its own. */
        parse(SELECTOR_CGROUP, sub, &sel);
        Scan s = scan(&sel, 1);
        ASSERT_PIDS(&s, f);
        scan_done(&s);
        selector_done(&sel);

        /* Without cgroup.procs (here: as if no v2 mount), /proc/PID/cgroup says the same. */
        parse(SELECTOR_CGROUP, rel, &sel);
        char *dir = sel.cgroup_dir;
        sel.cgroup_dir = NULL;
        s = scan(&sel, 1);
        ASSERT_PIDS(&s, e, f);
        scan_done(&s);
        /* A cgroup.procs that cannot be read makes the scan fall back, too. */
        sel.cgroup_dir = strdup("/dev/null");
        s = scan(&sel, 1);
        ASSERT_PIDS(&s, e, f);
        scan_done(&s);
        free(sel.cgroup_dir);
        sel.cgroup_dir = dir;

        /* With a program selector: each once, credited to the first selector listed. */
        TargetSelector two[2];
        parse(SELECTOR_EXE, copy, &two[0]);
        two[1] = sel;
        s = scan(two, 2);
        ASSERT_PIDS(&s, e, f, outside);
        ASSERT_EQ(scan_find(&s, e)->selector, 0);
        scan_done(&s);
        two[1] = two[0];
        two[0] = sel;
        s = scan(two, 2);
        ASSERT_PIDS(&s, e, f, outside);
        ASSERT_EQ(scan_find(&s, e)->selector, 0);
        ASSERT_EQ(scan_find(&s, f)->selector, 0);
        ASSERT_EQ(scan_find(&s, outside)->selector, 1);
        scan_done(&s);
        selector_done(&two[1]);

        /* The root cgroup holds every process. */
        TargetSelector all;
        parse(SELECTOR_CGROUP, "/", &all);
        s = scan(&all, 1);
        ASSERT_TRUE(scan_find(&s, e) && scan_find(&s, f) && scan_find(&s, outside));
        ASSERT_TRUE(scan_find(&s, getpid()) == NULL);
        scan_done(&s);
        selector_done(&all);

        /* Members that exit leave; a cgroup removed holds nobody. */
        kill_child(e, true);
        s = scan(&sel, 1);
        ASSERT_PIDS(&s, f);
        scan_done(&s);
        kill_child(f, true);
        kill_child(outside, true);
        remove_dir(sub);
        remove_dir(top);
        s = scan(&sel, 1);
        ASSERT_EQ(s.n, 0);
        scan_done(&s);
        selector_done(&sel);
}

TEST(unit_resolves_to_its_cgroup) {
        const char *root = cgroup_root();
        char slice[PATH_MAX], parent[PATH_MAX], unit[64], late[64], unit_dir[PATH_MAX], late_dir[PATH_MAX];
        char expected[PATH_MAX], name[16], copy[PATH_MAX];
        snprintf(unit, sizeof unit, "cprofd-test-%d.service", (int) getpid());
        snprintf(late, sizeof late, "cprofd-test-%d-late.service", (int) getpid());

        /* Under the real system.slice when there is one; otherwise in a system.slice of our
         * own, below a unique parent, so that no stray top-level slice is left to confuse
         * a systemd started later. */
        fmt_path(slice, "%s/system.slice", root);
        struct stat st;
        if (stat(slice, &st) == 0 && S_ISDIR(st.st_mode))
                fmt_path(expected, "/system.slice/%s", unit);
        else {
                fmt_path(parent, "%s/cprofd-test-%d.slice", root, (int) getpid());
                make_dir(parent);
                fmt_path(slice, "%s/system.slice", parent);
                make_dir(slice);
                fmt_path(expected, "/cprofd-test-%d.slice/system.slice/%s", (int) getpid(), unit);
        }
        fmt_path(unit_dir, "%s/%s", slice, unit);
        make_dir(unit_dir);

        TargetSelector sel, later;
        parse(SELECTOR_UNIT, unit, &sel);
        ASSERT_STREQ(sel.cgroup, expected);
        ASSERT_STREQ(sel.cgroup_dir, unit_dir);
        parse(SELECTOR_UNIT, late, &later);     /* not "running" yet */
        ASSERT_TRUE(later.cgroup == NULL);

        snprintf(name, sizeof name, "cpdun%d", (int) getpid());
        copy_sleep(name, copy);
        pid_t g = spawn_exec(copy), h = spawn_exec(copy);
        cgroup_move(unit_dir, g);
        Scan s = scan(&sel, 1);
        ASSERT_PIDS(&s, g);
        scan_done(&s);
        s = scan(&later, 1);
        ASSERT_EQ(s.n, 0);
        scan_done(&s);

        /* The late unit starts: the next scan finds it without parsing again. */
        fmt_path(late_dir, "%s/%s", slice, late);
        make_dir(late_dir);
        cgroup_move(late_dir, h);
        s = scan(&later, 1);
        ASSERT_PIDS(&s, h);
        scan_done(&s);
        const TargetSelector both[] = { later, sel };
        s = scan(both, 2);
        ASSERT_PIDS(&s, g, h);
        ASSERT_EQ(scan_find(&s, g)->selector, 1);
        ASSERT_EQ(scan_find(&s, h)->selector, 0);
        scan_done(&s);

        /* It stops (its cgroup goes away): nothing left to find. */
        kill_child(h, true);
        remove_dir(late_dir);
        s = scan(&later, 1);
        ASSERT_EQ(s.n, 0);
        scan_done(&s);

        kill_child(g, true);
        selector_done(&sel);
        selector_done(&later);
        cleanup();                              /* the cgroups now, not at exit */
}

TEST(unit_lookup_rules) {
        /* The walk works on any directory tree: the rules on a plain one. */
        char tree[PATH_MAX], path[PATH_MAX];
        fmt_path(tree, "%s/tree", get_tmpdir());
        make_dir(tree);
        static const char *const layout[] = {
                "a.slice", "a.slice/x.service", "a.slice/dup.service",
                "b.slice", "b.slice/dup.service", "b.slice/c.slice", "b.slice/c.slice/y.service",
                "d.slice", "d.slice/y.service",
                "z.service", "system.slice", "system.slice/z.service",
                "e.slice", "e.slice/f.slice", "e.slice/f.slice/deep.scope",
        };
        for (size_t i = 0; i < ARRAY_SIZE(layout); i++) {
                fmt_path(path, "%s/%s", tree, layout[i]);
                make_dir(path);
        }
        static const struct {
                const char *unit, *cgroup;
                int r;
        } cases[] = {
                { "x.service", "/a.slice/x.service", 0 },
                { "y.service", "/d.slice/y.service", 0 },          /* the shallowest */
                { "z.service", "/system.slice/z.service", 0 },     /* system.slice first */
                { "deep.scope", "/e.slice/f.slice/deep.scope", 0 },
                { "a.slice", "/a.slice", 0 },
                { "dup.service", NULL, -ENOTUNIQ },
                { "missing.service", NULL, -ENOENT },
                { "bad name.service", NULL, -EINVAL },
        };
        for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
                char *cg = (char *) "untouched";
                int r = cgroup_find_unit(tree, cases[i].unit, &cg);
                if (r != cases[i].r)
                        TINY_FAIL("cgroup_find_unit(%s) = %d, expected %d", cases[i].unit, r, cases[i].r);
                if (r == 0) {
                        ASSERT_STREQ(cg, cases[i].cgroup);
                        free(cg);
                } else
                        ASSERT_STREQ(cg, "untouched");
        }
        char *cg;
        ASSERT_EQ(cgroup_find_unit("/nonexistent-cprofd", "x.service", &cg), -ENOENT);
        cleanup();
}

TEST(process_handle_refuses_reuse_and_sees_exit) {
        pid_t k = spawn_renamed("cprofd-handle");
        uint64_t start = start_time_of(k);
        ProcessHandle h = { .pidfd = -EBADF };

        /* The pid is right but the start time is another process's: as after reuse. */
        ASSERT_EQ(process_handle_open(k, start + 1, &h), -ESRCH);
        ASSERT_EQ(h.pidfd, -EBADF);             /* untouched */
        ASSERT_EQ(process_handle_open(0, start, &h), -EINVAL);
        ASSERT_EQ(process_handle_open(-1, start, &h), -EINVAL);
        pid_t tid = own_thread();
        ASSERT_EQ(process_handle_open(tid, start_time_of(getpid()), &h), -EINVAL);

        ASSERT_EQ(process_handle_open(k, start, &h), 0);
        ASSERT_EQ(h.pid, k);
        ASSERT_EQ(h.start_time_ticks, start);
        ASSERT_GE(h.pidfd, 0);
        ASSERT_TRUE(fcntl(h.pidfd, F_GETFD) & FD_CLOEXEC);
        ASSERT_EQ(process_handle_exited(&h), 0);

        kill_child(k, false);
        int exited = 0;
        for (int i = 0; i < 5000 && (exited = process_handle_exited(&h)) == 0; i++)
                usleep(1000);
        ASSERT_EQ(exited, 1);                   /* a zombie has exited */
        kill_child(k, true);
        ASSERT_EQ(process_handle_exited(&h), 1);
        ASSERT_EQ(process_handle_open(k, start, &h), -ESRCH);     /* reaped: gone */
        process_handle_close(&h);
        ASSERT_EQ(h.pidfd, -EBADF);
        process_handle_close(&h);
        process_handle_close(NULL);

        /* Without a pidfd, the start time alone tells. */
        pid_t m = spawn_renamed("cprofd-nopidfd");
        ProcessHandle old = { .pid = m, .start_time_ticks = start_time_of(m), .pidfd = -EBADF };
        ASSERT_EQ(process_handle_exited(&old), 0);
        old.start_time_ticks++;
        ASSERT_EQ(process_handle_exited(&old), 1);
        old.start_time_ticks--;
        kill_child(m, true);
        ASSERT_EQ(process_handle_exited(&old), 1);
}

static double now_ms(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double) ts.tv_sec * 1e3 + (double) ts.tv_nsec / 1e6;
}

/* Not a speed test (shared machines are noisy): prints what one scan costs here. */
TEST(scan_cost) {
        size_t procs = 0;
        DIR *d = opendir("/proc");
        ASSERT_TRUE(d);
        struct dirent *de;
        while ((de = readdir(d)))
                procs += de->d_name[0] >= '1' && de->d_name[0] <= '9';
        closedir(d);

        TargetSelector sels[3];
        parse(SELECTOR_EXE, "/nonexistent/cprofd-test", &sels[0]);
        parse(SELECTOR_COMM, "cprofd-nothing", &sels[1]);
        parse(SELECTOR_CGROUP, "/", &sels[2]);
        static const char *const what[] = {
                "exe (full /proc pass)", "comm (full /proc pass)", "cgroup / (every process)",
        };
        for (size_t i = 0; i < ARRAY_SIZE(sels); i++) {
                Scan s = scan(&sels[i], 1);     /* warm the dentry cache */
                scan_done(&s);
                double t0 = now_ms();
                const int rounds = 20;
                size_t found = 0;
                for (int j = 0; j < rounds; j++) {
                        s = scan(&sels[i], 1);
                        found = s.n;
                        scan_done(&s);
                }
                fprintf(stderr, "scan by %s: %.3f ms for %zu processes in /proc, %zu found\n", what[i],
                        (now_ms() - t0) / rounds, procs, found);
                selector_done(&sels[i]);
        }
}

int main(int argc, char **argv) { return tiny_main(argc, argv); }
