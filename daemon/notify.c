/* daemon/notify.c -- see notify.h. A socket per message: they are rare (start, reload,
 * stop), and holding none means there is nothing to leak or to inherit. */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>

#include "notify.h"

int notify_send(const char *state) {
        const char *e = getenv("NOTIFY_SOCKET");
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        socklen_t salen;

        if (!e || !*e)
                return 0;
        if (!state || !*state)
                return -EINVAL;
        size_t n = strlen(state), len = strlen(e);
        if (n > NOTIFY_MESSAGE_MAX)
                return -EMSGSIZE;
        if (e[0] != '/' && e[0] != '@')
                return -EAFNOSUPPORT;
        if (len > sizeof sa.sun_path || (e[0] == '/' && len == sizeof sa.sun_path))
                return -EINVAL;         /* a path needs its NUL; an abstract name does not */
        memcpy(sa.sun_path, e, len);
        if (e[0] == '@')
                sa.sun_path[0] = 0;     /* abstract: the length, not a NUL, ends the name */
        salen = (socklen_t) (offsetof(struct sockaddr_un, sun_path) + len + (e[0] == '/'));

        _cleanup_close_ int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        /* Blocking, so a busy PID 1 (a full receive queue) delays READY=1 rather than
         * losing it -- which would fail the start -- but bounded. */
        struct timeval tv = { .tv_sec = NOTIFY_SEND_TIMEOUT_SEC };
        if (setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) < 0)
                return -errno;
        if (sendto(fd, state, n, MSG_NOSIGNAL, (const struct sockaddr *) &sa, salen) < 0)
                return -errno;
        return 1;
}

int notify_sendf(const char *fmt, ...) {
        char buf[NOTIFY_MESSAGE_MAX + 1];
        va_list ap;

        va_start(ap, fmt);
        int n = vsnprintf(buf, sizeof buf, fmt, ap);
        va_end(ap);
        if (n < 0)
                return -EINVAL;
        if ((size_t) n >= sizeof buf)
                return -EMSGSIZE;
        return notify_send(buf);
}
