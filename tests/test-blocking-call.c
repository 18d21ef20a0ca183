/* tests/test-blocking-call.c -- what blocked threads wait on, against real objects. A child
 * process inherits a pipe, TCP listeners and a connected pair, unix sockets, an eventfd,
 * a UDP socket and an epoll set, and has one thread blocked on each, in raw syscalls (so
 * the syscall is the one named, whatever libc wraps it in); each description is made from
 * the arguments /proc shows for that thread and checked exactly. The test process itself
 * holds the objects of the checks that need no blocked thread: files, formats of
 * durations, caching, bounds. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "blocking-call.h"
#include "clock.h"
#include "macro.h"
#include "procfs.h"
#include "tiny-test.h"

static char *describe(BlockingCallContext *c, pid_t tid, int nr, const uint64_t args[6], uint64_t waited_ns) {
        static char buf[512];
        if (!blocking_call_describe(c, tid, nr, args, waited_ns, 0, buf, sizeof buf))
                return NULL;
        ASSERT_LT(strlen(buf), sizeof buf);
        return buf;
}

/* A syscall on fd FD of the test process itself. */
static char *describe_own_fd(BlockingCallContext *c, int nr, int fd) {
        uint64_t args[6] = { (uint64_t) fd };
        return describe(c, gettid(), nr, args, 0);
}

static uint64_t inode_of(int fd) {
        struct stat st;
        ASSERT_EQ(fstat(fd, &st), 0);
        return st.st_ino;
}

static unsigned port_of(int fd) {
        struct sockaddr_storage sa;
        socklen_t len = sizeof sa;
        ASSERT_EQ(getsockname(fd, (struct sockaddr *) &sa, &len), 0);
        return ntohs(sa.ss_family == AF_INET6 ? ((struct sockaddr_in6 *) &sa)->sin6_port
                                              : ((struct sockaddr_in *) &sa)->sin_port);
}

static int tcp_listener(uint32_t addr) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(addr) };
        ASSERT_GE(fd, 0);
        ASSERT_EQ(bind(fd, (struct sockaddr *) &sa, sizeof sa), 0);
        ASSERT_EQ(listen(fd, 8), 0);
        return fd;
}

/* A connected pair over loopback: *CLIENT and *SERVER; the listener is closed again. */
static void tcp_pair(int *client, int *server) {
        int l = tcp_listener(INADDR_LOOPBACK);
        struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
                                  .sin_port = htons((uint16_t) port_of(l)) };
        *client = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        ASSERT_GE(*client, 0);
        ASSERT_EQ(connect(*client, (struct sockaddr *) &sa, sizeof sa), 0);
        *server = accept4(l, NULL, NULL, SOCK_CLOEXEC);
        ASSERT_GE(*server, 0);
        close(l);
}

static int unix_listener(const char *path) {
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        ASSERT_GE(fd, 0);
        ASSERT_LT(strlen(path), sizeof sa.sun_path);
        strcpy(sa.sun_path, path);
        ASSERT_EQ(bind(fd, (struct sockaddr *) &sa, sizeof sa), 0);
        ASSERT_EQ(listen(fd, 8), 0);
        return fd;
}

static int unix_connect(const char *path) {
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        ASSERT_GE(fd, 0);
        strcpy(sa.sun_path, path);
        ASSERT_EQ(connect(fd, (struct sockaddr *) &sa, sizeof sa), 0);
        return fd;
}

/* Short, so that the paths made in it fit sockaddr_un and the expected strings. */
static char tmp_dir[64];

static void make_tmp_dir(void) {
        char t[] = "/tmp/cprofd-test-blocking-XXXXXX", real[PATH_MAX];
        ASSERT_TRUE(mkdtemp(t) != NULL);
        ASSERT_TRUE(realpath(t, real) != NULL);         /* the fd links name the real path */
        ASSERT_LT(strlen(real), sizeof tmp_dir);
        strcpy(tmp_dir, real);
}

static void remove_tmp_dir(void) {
        char cmd[128];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp_dir);
        ASSERT_EQ(system(cmd), 0);
}

/* ---- threads blocked in a child ---- */

typedef struct Blocker {
        const char *name;               /* the thread's comm, to find it */
        long nr;
        long args[6];
        char expect[256];               /* the description */
        uint64_t waited_ns;
        char expect_waited[256];        /* with WAITED_NS, when set */
} Blocker;

#define BLOCKERS_MAX 24
static Blocker blockers[BLOCKERS_MAX];
static size_t n_blockers;
static char scratch[64];
static struct epoll_event events[8];
static struct iovec scratch_iov = { scratch, sizeof scratch };
static struct msghdr scratch_msg = { .msg_iov = &scratch_iov, .msg_iovlen = 1 };

static Blocker *add_blocker(const char *name, long nr, long a0, long a1, long a2, long a3) {
        ASSERT_LT(n_blockers, BLOCKERS_MAX);
        Blocker *b = &blockers[n_blockers++];
        *b = (Blocker) { .name = name, .nr = nr, .args = { a0, a1, a2, a3 } };
        return b;
}

static void *blocker_main(void *arg) {
        Blocker *b = arg;
        pthread_setname_np(pthread_self(), b->name);
        syscall(b->nr, b->args[0], b->args[1], b->args[2], b->args[3], b->args[4], b->args[5]);
        return NULL;
}

/* Forks the child: it starts a grandchild (sent to REPORT_FD; the wait4 blocker waits for
 * it), starts every blocker and sleeps until killed. */
static pid_t start_child(Blocker *wait4_blocker, int *ret_grandchild) {
        int report[2];
        ASSERT_EQ(pipe2(report, O_CLOEXEC), 0);
        pid_t pid = fork();
        ASSERT_GE(pid, 0);
        if (pid == 0) {
                prctl(PR_SET_PDEATHSIG, SIGKILL);
                pid_t g = fork();
                if (g == 0) {
                        prctl(PR_SET_PDEATHSIG, SIGKILL);
                        for (;;)
                                pause();
                }
                wait4_blocker->args[0] = g;
                if (write(report[1], &g, sizeof g) != sizeof g)
                        _exit(1);
                for (size_t i = 0; i < n_blockers; i++) {
                        pthread_t t;
                        if (pthread_create(&t, NULL, blocker_main, &blockers[i]) != 0)
                                _exit(1);
                }
                for (;;)
                        pause();
        }
        pid_t g;
        ASSERT_EQ(read(report[0], &g, sizeof g), (ssize_t) sizeof g);
        close(report[0]);
        close(report[1]);
        *ret_grandchild = g;
        return pid;
}

/* The thread of PID named NAME once it sits in syscall NR (5 s at most). */
static pid_t find_blocked(pid_t pid, const char *name, long nr, ThreadInfo *ret) {
        for (int attempt = 0; attempt < 500; attempt++) {
                pid_t *tids;
                size_t n;
                ASSERT_EQ(procfs_list_threads(pid, &tids, &n), 0);
                for (size_t i = 0; i < n; i++) {
                        ThreadInfo info;
                        if (procfs_read_thread(pid, tids[i], &info) == 0 && strcmp(info.name, name) == 0 &&
                            info.place.known && info.place.nr == nr) {
                                pid_t tid = tids[i];
                                free(tids);
                                *ret = info;
                                return tid;
                        }
                }
                free(tids);
                usleep(10000);
        }
        TINY_FAIL("thread \"%s\" never blocked in syscall %ld", name, nr);
}

TEST(threads_blocked_in_a_child) {
        int p[2], tcp_client, tcp_server, l4, l6, u, uc, us, ev, udp, ep;
        char path[96], peer_path[96];

        make_tmp_dir();
        n_blockers = 0;

        ASSERT_EQ(pipe2(p, O_CLOEXEC), 0);
        snprintf(add_blocker("b-pipe", SYS_read, p[0], (long) scratch, 1, 0)->expect, 256,
                 "read fd %d pipe:[%" PRIu64 "]", p[0], inode_of(p[0]));

        l4 = tcp_listener(INADDR_LOOPBACK);
        snprintf(add_blocker("b-accept", SYS_accept, l4, 0, 0, 0)->expect, 256,
                 "accept fd %d tcp 127.0.0.1:%u", l4, port_of(l4));

        tcp_pair(&tcp_client, &tcp_server);
        snprintf(add_blocker("b-recv", SYS_recvfrom, tcp_client, (long) scratch, 1, 0)->expect, 256,
                 "recvfrom fd %d tcp 127.0.0.1:%u->127.0.0.1:%u", tcp_client, port_of(tcp_client),
                 port_of(tcp_server));
        snprintf(add_blocker("b-recv-srv", SYS_read, tcp_server, (long) scratch, 1, 0)->expect, 256,
                 "read fd %d tcp 127.0.0.1:%u->127.0.0.1:%u", tcp_server, port_of(tcp_server),
                 port_of(tcp_client));

        /* IPv6 where loopback has it. */
        l6 = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_in6 sa6 = { .sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT };
        if (l6 >= 0 && bind(l6, (struct sockaddr *) &sa6, sizeof sa6) == 0 && listen(l6, 8) == 0)
                snprintf(add_blocker("b-accept6", SYS_accept4, l6, 0, 0, 0)->expect, 256,
                         "accept4 fd %d tcp [::1]:%u", l6, port_of(l6));
        else
                fprintf(stderr, "no IPv6 loopback: not checked\n");

        snprintf(path, sizeof path, "%s/listen.sock", tmp_dir);
        u = unix_listener(path);
        snprintf(add_blocker("b-accept-unix", SYS_accept4, u, 0, 0, 0)->expect, 256,
                 "accept4 fd %d unix %s", u, path);

        /* A connection to another listener: the client is unnamed (its peer's path is
         * shown), the accepted socket shares the listener's path. */
        snprintf(peer_path, sizeof peer_path, "%s/peer.sock", tmp_dir);
        int ul = unix_listener(peer_path);
        uc = unix_connect(peer_path);
        us = accept4(ul, NULL, NULL, SOCK_CLOEXEC);
        ASSERT_GE(us, 0);
        snprintf(add_blocker("b-unix-client", SYS_read, uc, (long) scratch, 1, 0)->expect, 256,
                 "read fd %d unix ->%s", uc, peer_path);
        snprintf(add_blocker("b-unix-server", SYS_recvmsg, us, (long) &scratch_msg, 0, 0)->expect, 256,
                 "recvmsg fd %d unix %s", us, peer_path);

        ev = eventfd(0, EFD_CLOEXEC);
        ASSERT_GE(ev, 0);
        snprintf(add_blocker("b-eventfd", SYS_read, ev, (long) scratch, 8, 0)->expect, 256,
                 "read fd %d eventfd", ev);

        udp = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        struct sockaddr_in any = { .sin_family = AF_INET };
        ASSERT_GE(udp, 0);
        ASSERT_EQ(bind(udp, (struct sockaddr *) &any, sizeof any), 0);
        snprintf(add_blocker("b-udp", SYS_recvfrom, udp, (long) scratch, 1, 0)->expect, 256,
                 "recvfrom fd %d udp 0.0.0.0:%u", udp, port_of(udp));

        ep = epoll_create1(EPOLL_CLOEXEC);
        ASSERT_GE(ep, 0);
        int watched[] = { p[0], ev, udp };
        for (size_t i = 0; i < ARRAY_SIZE(watched); i++) {
                struct epoll_event e = { .events = EPOLLIN, .data.fd = watched[i] };
                ASSERT_EQ(epoll_ctl(ep, EPOLL_CTL_ADD, watched[i], &e), 0);
        }
        snprintf(add_blocker("b-epoll", SYS_epoll_wait, ep, (long) events, 8, -1)->expect, 256,
                 "epoll_wait fd %d (3 fds)", ep);

        static struct timespec ten_seconds = { 10, 0 }, an_hour = { 3600, 0 }, deadline;
        Blocker *b = add_blocker("b-nanosleep", SYS_nanosleep, (long) &ten_seconds, 0, 0, 0);
        strcpy(b->expect, "nanosleep 10s");
        b->waited_ns = 3 * NSEC_PER_SEC;
        strcpy(b->expect_waited, "nanosleep 10s, 7s left");

        b = add_blocker("b-clock-rel", SYS_clock_nanosleep, CLOCK_MONOTONIC, 0, (long) &an_hour, 0);
        strcpy(b->expect, "clock_nanosleep 1h0m");
        b->waited_ns = 1500 * NSEC_PER_MSEC;
        strcpy(b->expect_waited, "clock_nanosleep 1h0m, 59m58s left");

        /* Absolute, 100.5 s from now: 1m40s left, or 1m39s once a little time has passed. */
        clock_gettime(CLOCK_MONOTONIC, &deadline);
        deadline.tv_sec += 100;
        deadline.tv_nsec += 500 * 1000 * 1000;
        if (deadline.tv_nsec >= 1000 * 1000 * 1000) {
                deadline.tv_sec++;
                deadline.tv_nsec -= 1000 * 1000 * 1000;
        }
        Blocker *abs_sleep = add_blocker("b-clock-abs", SYS_clock_nanosleep, CLOCK_MONOTONIC, TIMER_ABSTIME,
                                         (long) &deadline, 0);

        Blocker *w4 = add_blocker("b-wait4", SYS_wait4, 0, 0, 0, 0);    /* args[0]: the grandchild */
        /* Not started before the fork: a futex wait says nothing here. */

        int grandchild;
        pid_t child = start_child(w4, &grandchild);
        snprintf(w4->expect, 256, "wait4 child %d", grandchild);

        BlockingCallContext *c;
        ASSERT_EQ(blocking_call_context_new(child, &c), 0);
        for (size_t i = 0; i < n_blockers; i++) {
                ThreadInfo info;
                Blocker *bl = &blockers[i];
                pid_t tid = find_blocked(child, bl->name, bl->nr, &info);
                char *d = describe(c, tid, info.place.nr, info.place.args, 0);
                if (bl == abs_sleep) {
                        ASSERT_TRUE(d != NULL);
                        if (strcmp(d, "clock_nanosleep 1m40s left") != 0)
                                ASSERT_STREQ(d, "clock_nanosleep 1m39s left");
                        continue;
                }
                ASSERT_STREQ(d, bl->expect);
                if (bl->waited_ns)
                        ASSERT_STREQ(describe(c, tid, info.place.nr, info.place.args, bl->waited_ns),
                                     bl->expect_waited);
                /* Waited longer than asked for: nothing is left to say. */
                if (bl->nr == SYS_nanosleep)
                        ASSERT_STREQ(describe(c, tid, info.place.nr, info.place.args, 11 * NSEC_PER_SEC),
                                     "nanosleep 10s");
        }
        /* Every description again, from the cache: the same. */
        for (size_t i = 0; i < n_blockers; i++) {
                ThreadInfo info;
                if (&blockers[i] == abs_sleep)
                        continue;
                pid_t tid = find_blocked(child, blockers[i].name, blockers[i].nr, &info);
                ASSERT_STREQ(describe(c, tid, info.place.nr, info.place.args, 0), blockers[i].expect);
        }
        blocking_call_context_free(c);

        kill(grandchild, SIGKILL);
        kill(child, SIGKILL);
        ASSERT_EQ(waitpid(child, NULL, 0), child);
        int fds[] = { p[0], p[1], tcp_client, tcp_server, l4, u, ul, uc, us, ev, udp, ep };
        for (size_t i = 0; i < ARRAY_SIZE(fds); i++)
                close(fds[i]);
        if (l6 >= 0)
                close(l6);
        remove_tmp_dir();
}

/* ---- objects of the test process ---- */

TEST(files_and_locks) {
        char path[96], odd[96], expect[256];
        BlockingCallContext *c;

        make_tmp_dir();
        ASSERT_EQ(blocking_call_context_new(getpid(), &c), 0);

        snprintf(path, sizeof path, "%s/x.log", tmp_dir);
        int f = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        ASSERT_GE(f, 0);
        snprintf(expect, sizeof expect, "read fd %d %s", f, path);
        ASSERT_STREQ(describe_own_fd(c, SYS_read, f), expect);
        snprintf(expect, sizeof expect, "pwritev2 fd %d %s", f, path);
        ASSERT_STREQ(describe_own_fd(c, SYS_pwritev2, f), expect);
        snprintf(expect, sizeof expect, "flock fd %d %s", f, path);
        ASSERT_STREQ(describe_own_fd(c, SYS_flock, f), expect);

        uint64_t args[6] = { (uint64_t) f, F_SETLKW };
        snprintf(expect, sizeof expect, "fcntl fd %d %s", f, path);
        ASSERT_STREQ(describe(c, gettid(), SYS_fcntl, args, 0), expect);
        args[1] = F_OFD_SETLKW;
        ASSERT_STREQ(describe(c, gettid(), SYS_fcntl, args, 0), expect);
        args[1] = F_GETFL;      /* does not block */
        ASSERT_TRUE(describe(c, gettid(), SYS_fcntl, args, 0) == NULL);

        /* A name with a newline comes out on one line. */
        snprintf(odd, sizeof odd, "%s/a\nb.log", tmp_dir);
        int g = open(odd, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        ASSERT_GE(g, 0);
        snprintf(expect, sizeof expect, "write fd %d %s/a?b.log", g, tmp_dir);
        ASSERT_STREQ(describe_own_fd(c, SYS_write, g), expect);

        int n = open("/dev/null", O_RDONLY | O_CLOEXEC);
        ASSERT_GE(n, 0);
        snprintf(expect, sizeof expect, "readv fd %d /dev/null", n);
        ASSERT_STREQ(describe_own_fd(c, SYS_readv, n), expect);

        /* Deleted: the link says so. */
        ASSERT_EQ(unlink(path), 0);
        BlockingCallContext *fresh;
        ASSERT_EQ(blocking_call_context_new(getpid(), &fresh), 0);
        snprintf(expect, sizeof expect, "read fd %d %s (deleted)", f, path);
        ASSERT_STREQ(describe_own_fd(fresh, SYS_read, f), expect);
        blocking_call_context_free(fresh);

        /* Not open: the bare fd. Out of range for an int: the same. */
        ASSERT_STREQ(describe_own_fd(c, SYS_read, 987654), "read fd 987654");
        uint64_t big[6] = { UINT64_C(0xffffffff) };
        ASSERT_STREQ(describe(c, gettid(), SYS_read, big, 0), "read fd 4294967295");

        /* Anonymous inodes lose their decoration. */
        int e = epoll_create1(EPOLL_CLOEXEC);
        ASSERT_GE(e, 0);
        snprintf(expect, sizeof expect, "read fd %d epoll", e);
        ASSERT_STREQ(describe_own_fd(c, SYS_read, e), expect);
        snprintf(expect, sizeof expect, "epoll_pwait fd %d (0 fds)", e);
        ASSERT_STREQ(describe_own_fd(c, SYS_epoll_pwait, e), expect);
        /* epoll_wait on something that is no epoll: described as an fd. */
        snprintf(expect, sizeof expect, "epoll_wait fd %d /dev/null", n);
        ASSERT_STREQ(describe_own_fd(c, SYS_epoll_wait, n), expect);

        close(e);
        close(n);
        close(g);
        close(f);
        blocking_call_context_free(c);
        remove_tmp_dir();
}

TEST(sockets_of_the_test_process) {
        char expect[256];
        BlockingCallContext *c;
        /* Made before the context first reads the unix table. */
        int sp[2];
        ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp), 0);
        ASSERT_EQ(blocking_call_context_new(getpid(), &c), 0);

        int any = tcp_listener(INADDR_ANY);
        snprintf(expect, sizeof expect, "accept fd %d tcp *:%u", any, port_of(any));
        ASSERT_STREQ(describe_own_fd(c, SYS_accept, any), expect);

        /* Bound, neither listening nor connected: /proc/net/tcp lists no such socket. */
        int bound = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_in lo = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        ASSERT_EQ(bind(bound, (struct sockaddr *) &lo, sizeof lo), 0);
        snprintf(expect, sizeof expect, "connect fd %d socket:[%" PRIu64 "]", bound, inode_of(bound));
        ASSERT_STREQ(describe_own_fd(c, SYS_connect, bound), expect);

        /* Abstract unix names, as /proc/net/unix spells them. */
        int a = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        int len = snprintf(sa.sun_path + 1, sizeof sa.sun_path - 1, "cprofd-test-%d", (int) getpid());
        ASSERT_EQ(bind(a, (struct sockaddr *) &sa, (socklen_t) (offsetof(struct sockaddr_un, sun_path) + 1 + len)), 0);
        snprintf(expect, sizeof expect, "recvmsg fd %d unix @cprofd-test-%d", a, (int) getpid());
        ASSERT_STREQ(describe_own_fd(c, SYS_recvmsg, a), expect);

        /* A socketpair: both ends unnamed. */
        snprintf(expect, sizeof expect, "sendmsg fd %d unix socket:[%" PRIu64 "]", sp[0], inode_of(sp[0]));
        ASSERT_STREQ(describe_own_fd(c, SYS_sendmsg, sp[0]), expect);

        /* No table lists netlink sockets. */
        int nl = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, 0);
        ASSERT_GE(nl, 0);
        snprintf(expect, sizeof expect, "recvfrom fd %d socket:[%" PRIu64 "]", nl, inode_of(nl));
        ASSERT_STREQ(describe_own_fd(c, SYS_recvfrom, nl), expect);

        /* The context read /proc/PID/net/tcp once: a listener made since is not in its
         * copy (and the fds it described are kept), a fresh context sees it. */
        int later = tcp_listener(INADDR_ANY);
        snprintf(expect, sizeof expect, "accept fd %d socket:[%" PRIu64 "]", later, inode_of(later));
        ASSERT_STREQ(describe_own_fd(c, SYS_accept, later), expect);
        BlockingCallContext *fresh;
        ASSERT_EQ(blocking_call_context_new(getpid(), &fresh), 0);
        snprintf(expect, sizeof expect, "accept fd %d tcp *:%u", later, port_of(later));
        ASSERT_STREQ(describe_own_fd(fresh, SYS_accept, later), expect);
        blocking_call_context_free(fresh);

        /* Poll of one fd names it; of more, counts them. */
        struct pollfd one = { .fd = any, .events = POLLIN };
        uint64_t pargs[6] = { (uint64_t) (uintptr_t) &one, 1, 1000 };
        snprintf(expect, sizeof expect, "poll fd %d tcp *:%u", any, port_of(any));
        ASSERT_STREQ(describe(c, gettid(), SYS_poll, pargs, 0), expect);
        pargs[1] = 3;
        ASSERT_STREQ(describe(c, gettid(), SYS_poll, pargs, 0), "poll 3 fds");
        ASSERT_STREQ(describe(c, gettid(), SYS_ppoll, pargs, 0), "ppoll 3 fds");
        pargs[0] = 0;   /* unreadable */
        pargs[1] = 1;
        ASSERT_STREQ(describe(c, gettid(), SYS_poll, pargs, 0), "poll 1 fds");
        uint64_t sargs[6] = { 12 };
        ASSERT_STREQ(describe(c, gettid(), SYS_select, sargs, 0), "select 12 fds");
        ASSERT_STREQ(describe(c, gettid(), SYS_pselect6, sargs, 0), "pselect6 12 fds");

        int fds[] = { any, bound, a, sp[0], sp[1], nl, later };
        for (size_t i = 0; i < ARRAY_SIZE(fds); i++)
                close(fds[i]);
        blocking_call_context_free(c);
}

/* nanosleep of a timespec in our own memory. */
static char *describe_sleep(BlockingCallContext *c, int64_t sec, int64_t nsec, uint64_t waited) {
        static struct { int64_t sec, nsec; } ts;
        ts.sec = sec;
        ts.nsec = nsec;
        uint64_t args[6] = { (uint64_t) (uintptr_t) &ts };
        return describe(c, gettid(), SYS_nanosleep, args, waited);
}

TEST(durations) {
        BlockingCallContext *c;
        ASSERT_EQ(blocking_call_context_new(getpid(), &c), 0);
        ASSERT_STREQ(describe_sleep(c, 0, 0, 0), "nanosleep 0s");
        ASSERT_STREQ(describe_sleep(c, 0, 850, 0), "nanosleep 850ns");
        ASSERT_STREQ(describe_sleep(c, 0, 12000, 0), "nanosleep 12us");
        ASSERT_STREQ(describe_sleep(c, 0, 1500000, 0), "nanosleep 1.5ms");
        ASSERT_STREQ(describe_sleep(c, 0, 250000000, 0), "nanosleep 250ms");
        ASSERT_STREQ(describe_sleep(c, 7, 299999999, 0), "nanosleep 7.2s");     /* rounded down */
        ASSERT_STREQ(describe_sleep(c, 190, 0, 0), "nanosleep 3m10s");
        ASSERT_STREQ(describe_sleep(c, 180, 0, 0), "nanosleep 3m0s");
        ASSERT_STREQ(describe_sleep(c, 7500, 0, 0), "nanosleep 2h5m");
        ASSERT_STREQ(describe_sleep(c, 7200, 0, 0), "nanosleep 2h0m");
        ASSERT_STREQ(describe_sleep(c, 10, 0, 2800 * NSEC_PER_MSEC), "nanosleep 10s, 7.2s left");
        ASSERT_STREQ(describe_sleep(c, 10, 0, 10 * NSEC_PER_SEC), "nanosleep 10s");
        /* Not a valid timespec: the kernel would have refused it, nothing to say. */
        ASSERT_TRUE(describe_sleep(c, 1, 1000000000, 0) == NULL);
        ASSERT_TRUE(describe_sleep(c, -1, 0, 0) == NULL);
        ASSERT_TRUE(describe_sleep(c, INT64_MAX, 0, 0) == NULL);
        uint64_t null_args[6] = { 0 };
        ASSERT_TRUE(describe(c, gettid(), SYS_nanosleep, null_args, 0) == NULL);

        /* sleep(3)'s one timespec for request and remainder holds the time left at the
         * last stop, SINCE_STOP_NS ago. */
        static struct timespec left = { 50, 500000000 };
        uint64_t rargs[6] = { (uint64_t) (uintptr_t) &left, (uint64_t) (uintptr_t) &left };
        char buf[256];
        ASSERT_TRUE(blocking_call_describe(c, gettid(), SYS_nanosleep, rargs, 9 * NSEC_PER_SEC, 0, buf, sizeof buf));
        ASSERT_STREQ(buf, "nanosleep 50.5s left");
        ASSERT_TRUE(blocking_call_describe(c, gettid(), SYS_nanosleep, rargs, 9 * NSEC_PER_SEC, 500 * NSEC_PER_MSEC,
                                           buf, sizeof buf));
        ASSERT_STREQ(buf, "nanosleep 50s left");
        uint64_t cnargs[6] = { CLOCK_REALTIME, 0, (uint64_t) (uintptr_t) &left, (uint64_t) (uintptr_t) &left };
        ASSERT_TRUE(blocking_call_describe(c, gettid(), SYS_clock_nanosleep, cnargs, 0, 60 * NSEC_PER_SEC,
                                           buf, sizeof buf));
        ASSERT_STREQ(buf, "clock_nanosleep 0s left");

        /* A CPU-time clock runs at its own pace: no time left from the wall-clock wait. */
        static struct timespec five = { 5, 0 };
        uint64_t cargs[6] = { CLOCK_PROCESS_CPUTIME_ID, 0, (uint64_t) (uintptr_t) &five };
        ASSERT_STREQ(describe(c, gettid(), SYS_clock_nanosleep, cargs, NSEC_PER_SEC), "clock_nanosleep 5s");
        /* Absolute in the past. */
        cargs[0] = CLOCK_REALTIME;
        cargs[1] = TIMER_ABSTIME;
        ASSERT_STREQ(describe(c, gettid(), SYS_clock_nanosleep, cargs, 0), "clock_nanosleep 0s left");
        blocking_call_context_free(c);
}

TEST(waits_for_children_and_the_rest) {
        BlockingCallContext *c;
        ASSERT_EQ(blocking_call_context_new(getpid(), &c), 0);
        char expect[64];
        uint64_t args[6] = { (uint64_t) -77 };
        ASSERT_STREQ(describe(c, gettid(), SYS_wait4, args, 0), "wait4 process group 77");
        args[0] = (uint64_t) -1;
        ASSERT_STREQ(describe(c, gettid(), SYS_wait4, args, 0), "wait4 any child");
        args[0] = 0;
        snprintf(expect, sizeof expect, "wait4 process group %d", (int) getpgrp());
        ASSERT_STREQ(describe(c, gettid(), SYS_wait4, args, 0), expect);
        args[0] = (uint32_t) INT32_MIN;
        ASSERT_TRUE(describe(c, gettid(), SYS_wait4, args, 0) == NULL);

        uint64_t wargs[6] = { P_ALL };
        ASSERT_STREQ(describe(c, gettid(), SYS_waitid, wargs, 0), "waitid any child");
        wargs[0] = P_PID;
        wargs[1] = 1234;
        ASSERT_STREQ(describe(c, gettid(), SYS_waitid, wargs, 0), "waitid child 1234");
        wargs[0] = P_PGID;
        wargs[1] = 55;
        ASSERT_STREQ(describe(c, gettid(), SYS_waitid, wargs, 0), "waitid process group 55");
        pid_t kid = fork();
        ASSERT_GE(kid, 0);
        if (kid == 0) {
                pause();
                _exit(0);
        }
        int pidfd = (int) syscall(SYS_pidfd_open, kid, 0);
        if (pidfd >= 0) {
                wargs[0] = P_PIDFD;
                wargs[1] = (uint64_t) pidfd;
                snprintf(expect, sizeof expect, "waitid child %d", (int) kid);
                ASSERT_STREQ(describe(c, gettid(), SYS_waitid, wargs, 0), expect);
                close(pidfd);
        }
        kill(kid, SIGKILL);
        waitpid(kid, NULL, 0);

        /* Not ours: locks, signals, syscalls with nothing to wait on. */
        uint64_t none[6] = { 0 };
        ASSERT_TRUE(describe(c, gettid(), SYS_futex, none, 0) == NULL);
        ASSERT_TRUE(describe(c, gettid(), SYS_pause, none, 0) == NULL);
        ASSERT_TRUE(describe(c, gettid(), SYS_rt_sigsuspend, none, 0) == NULL);
        ASSERT_TRUE(describe(c, gettid(), SYS_getpid, none, 0) == NULL);
        ASSERT_TRUE(describe(c, gettid(), 4095, none, 0) == NULL);
        ASSERT_TRUE(describe(c, gettid(), -1, none, 0) == NULL);
        blocking_call_context_free(c);
        ASSERT_TRUE(blocking_call_context_free(NULL) == NULL);
}

TEST(small_buffers_and_gone_processes) {
        BlockingCallContext *c;
        char small[8];
        int p[2];
        ASSERT_EQ(pipe2(p, O_CLOEXEC), 0);
        ASSERT_EQ(blocking_call_context_new(getpid(), &c), 0);
        uint64_t args[6] = { (uint64_t) p[0] };
        ASSERT_TRUE(blocking_call_describe(c, gettid(), SYS_read, args, 0, 0, small, sizeof small));
        ASSERT_STREQ(small, "read fd");
        ASSERT_FALSE(blocking_call_describe(c, gettid(), SYS_read, args, 0, 0, small, 0));
        /* Truncation keeps UTF-8 characters whole. */
        char dir[64], path[96];
        make_tmp_dir();
        snprintf(dir, sizeof dir, "%s", tmp_dir);
        snprintf(path, sizeof path, "%s/\xc3\xa9\xc3\xa9", dir);
        int f = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        ASSERT_GE(f, 0);
        char expect[256], buf[256];
        int n = snprintf(expect, sizeof expect, "read fd %d %s/\xc3\xa9", f, dir);
        args[0] = (uint64_t) f;
        /* Room for one é and one byte of the next. */
        ASSERT_TRUE(blocking_call_describe(c, gettid(), SYS_read, args, 0, 0, buf, (size_t) n + 2));
        ASSERT_STREQ(buf, expect);
        close(f);
        remove_tmp_dir();
        blocking_call_context_free(c);

        /* A process that is gone: every fd unreadable. */
        pid_t kid = fork();
        ASSERT_GE(kid, 0);
        if (kid == 0)
                _exit(0);
        ASSERT_EQ(waitpid(kid, NULL, 0), kid);
        ASSERT_EQ(blocking_call_context_new(kid, &c), 0);
        char gone[32];
        snprintf(gone, sizeof gone, "read fd %d", f);
        ASSERT_STREQ(describe(c, kid, SYS_read, args, 0), gone);
        static struct timespec ts = { 1, 0 };
        uint64_t sargs[6] = { (uint64_t) (uintptr_t) &ts };
        ASSERT_TRUE(describe(c, kid, SYS_nanosleep, sargs, 0) == NULL);
        blocking_call_context_free(c);
        close(p[0]);
        close(p[1]);
}

int main(int argc, char **argv) {
        return tiny_main(argc, argv);
}
