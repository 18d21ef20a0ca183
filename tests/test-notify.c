/* tests/test-notify.c -- daemon/notify.c against a socket that plays systemd: messages
 * arrive whole on a path socket and on an abstract one ('@'), carry our pid in their
 * credentials (what systemd checks for NotifyAccess=main) also when sent from another
 * thread, and a missing, malformed or unreachable $NOTIFY_SOCKET gives what notify.h
 * says. */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "macro.h"
#include "notify.h"
#include "tiny-test.h"

static char tmpdir[PATH_MAX];
static char sock_path[PATH_MAX + 32];

static void cleanup(void) {
        if (sock_path[0])
                (void) unlink(sock_path);
        if (tmpdir[0])
                (void) rmdir(tmpdir);
}

/* A datagram socket bound to NAME ("/path" or "@abstract") that receives credentials, as
 * systemd's notify socket does. */
static int listen_on(const char *name) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        size_t len = strlen(name);
        ASSERT_LT(len, sizeof sa.sun_path);
        memcpy(sa.sun_path, name, len);
        if (name[0] == '@')
                sa.sun_path[0] = 0;
        int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        ASSERT_GE(fd, 0);
        int one = 1;
        ASSERT_EQ(setsockopt(fd, SOL_SOCKET, SO_PASSCRED, &one, sizeof one), 0);
        socklen_t salen = (socklen_t) (offsetof(struct sockaddr_un, sun_path) + len + (name[0] != '@'));
        if (bind(fd, (struct sockaddr *) &sa, salen) < 0)
                TINY_FAIL("bind %s: %m", name);
        struct timeval tv = { .tv_sec = 5 };
        ASSERT_EQ(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv), 0);
        return fd;
}

/* The next datagram on FD, NUL-terminated into BUF; *ret_pid its sender's pid. */
static size_t receive(int fd, char *buf, size_t size, pid_t *ret_pid) {
        union {
                struct cmsghdr h;
                char space[CMSG_SPACE(sizeof(struct ucred))];
        } control = {};
        struct iovec iov = { buf, size - 1 };
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = &control,
                             .msg_controllen = sizeof control };
        ssize_t n = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC);
        if (n < 0)
                TINY_FAIL("recvmsg: %m");
        ASSERT_FALSE(mh.msg_flags & MSG_TRUNC);
        buf[n] = 0;
        *ret_pid = 0;
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
                if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_CREDENTIALS) {
                        struct ucred uc;
                        memcpy(&uc, CMSG_DATA(c), sizeof uc);
                        *ret_pid = uc.pid;
                }
        return (size_t) n;
}

static void *send_from_thread(void *arg) {
        return (void *) (intptr_t) notify_send("STATUS=from a thread");
}

static void round_trip(const char *name) {
        char buf[NOTIFY_MESSAGE_MAX + 2];
        pid_t pid;
        _cleanup_close_ int fd = listen_on(name);
        ASSERT_EQ(setenv("NOTIFY_SOCKET", name, 1), 0);

        const char *ready = "READY=1\nSTATUS=Serving 2 target(s) on 127.0.0.1:6060";
        ASSERT_EQ(notify_send(ready), 1);
        ASSERT_EQ(receive(fd, buf, sizeof buf, &pid), strlen(ready));
        ASSERT_STREQ(buf, ready);
        ASSERT_EQ(pid, getpid());

        ASSERT_EQ(notify_sendf("STATUS=%d targets", 3), 1);
        receive(fd, buf, sizeof buf, &pid);
        ASSERT_STREQ(buf, "STATUS=3 targets");

        /* Another thread: the kernel still names the process, which is what systemd's
         * NotifyAccess=main compares with MainPID. */
        pthread_t t;
        void *result;
        ASSERT_EQ(pthread_create(&t, NULL, send_from_thread, NULL), 0);
        ASSERT_EQ(pthread_join(t, &result), 0);
        ASSERT_EQ((intptr_t) result, 1);
        receive(fd, buf, sizeof buf, &pid);
        ASSERT_STREQ(buf, "STATUS=from a thread");
        ASSERT_EQ(pid, getpid());

        /* The largest message arrives whole. */
        static char big[NOTIFY_MESSAGE_MAX + 1];
        memcpy(big, "STATUS=", 7);
        memset(big + 7, 'x', NOTIFY_MESSAGE_MAX - 7);
        ASSERT_EQ(notify_send(big), 1);
        ASSERT_EQ(receive(fd, buf, sizeof buf, &pid), NOTIFY_MESSAGE_MAX);
        ASSERT_STREQ(buf, big);
        ASSERT_EQ(notify_send("STOPPING=1"), 1);
        receive(fd, buf, sizeof buf, &pid);
        ASSERT_STREQ(buf, "STOPPING=1");
}

TEST(path_socket) {
        snprintf(tmpdir, sizeof tmpdir, "/tmp/cprofd-test-notify-XXXXXX");
        ASSERT_TRUE(mkdtemp(tmpdir));
        atexit(cleanup);
        snprintf(sock_path, sizeof sock_path, "%s/notify", tmpdir);
        round_trip(sock_path);
}

TEST(abstract_socket) {
        char name[64];
        snprintf(name, sizeof name, "@cprofd-test-notify/%d", (int) getpid());
        round_trip(name);
}

TEST(no_socket_is_not_an_error) {
        ASSERT_EQ(unsetenv("NOTIFY_SOCKET"), 0);
        ASSERT_EQ(notify_send("READY=1"), 0);
        ASSERT_EQ(notify_sendf("STATUS=%s", "x"), 0);
        ASSERT_EQ(setenv("NOTIFY_SOCKET", "", 1), 0);
        ASSERT_EQ(notify_send("READY=1"), 0);
}

TEST(bad_socket_or_message) {
        ASSERT_EQ(setenv("NOTIFY_SOCKET", "run/systemd/notify", 1), 0);
        ASSERT_EQ(notify_send("READY=1"), -EAFNOSUPPORT);
        ASSERT_EQ(setenv("NOTIFY_SOCKET", "vsock:2:1234", 1), 0);
        ASSERT_EQ(notify_send("READY=1"), -EAFNOSUPPORT);

        char name[sizeof(((struct sockaddr_un *) NULL)->sun_path) + 2];
        memset(name, 'a', sizeof name - 1);
        name[sizeof name - 1] = 0;
        name[0] = '/';                                  /* 109 bytes: too long */
        ASSERT_EQ(setenv("NOTIFY_SOCKET", name, 1), 0);
        ASSERT_EQ(notify_send("READY=1"), -EINVAL);
        name[sizeof name - 2] = 0;                      /* 108: no room for the NUL */
        ASSERT_EQ(setenv("NOTIFY_SOCKET", name, 1), 0);
        ASSERT_EQ(notify_send("READY=1"), -EINVAL);

        /* Nobody listens there. */
        char path[128];
        snprintf(path, sizeof path, "@cprofd-test-notify-nobody/%d", (int) getpid());
        ASSERT_EQ(setenv("NOTIFY_SOCKET", path, 1), 0);
        ASSERT_EQ(notify_send("READY=1"), -ECONNREFUSED);
        ASSERT_EQ(setenv("NOTIFY_SOCKET", "/nonexistent/notify", 1), 0);
        ASSERT_EQ(notify_send("READY=1"), -ENOENT);

        /* Messages: empty, and one byte over the cap, sent or formatted. */
        ASSERT_EQ(notify_send(""), -EINVAL);
        static char big[NOTIFY_MESSAGE_MAX + 2];
        memset(big, 'x', NOTIFY_MESSAGE_MAX + 1);
        ASSERT_EQ(notify_send(big), -EMSGSIZE);
        ASSERT_EQ(notify_sendf("%s", big), -EMSGSIZE);
}

int main(int argc, char **argv) { return tiny_main(argc, argv); }
