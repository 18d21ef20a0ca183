/* attach/blocking-call.c -- see blocking-call.h.
 *
 * Cost per context: one readlink per fd (plus one getxattr for a socket, which names the
 * one table to look in), each /proc/PID/net table read and indexed by inode at most once,
 * an epoll fd's fdinfo counted at most once. A dump of 1000 threads blocked in read() on
 * sockets reads /proc/PID/net/tcp once, and each fd's link once.
 *
 * Fds are read through /proc/PID/task/TID/, not /proc/PID/: a process whose main thread
 * has exited (a zombie leader) lists no fds there. The net tables are read through
 * /proc/PID/net, which the kernel serves from a live thread in that case. */
#include <arpa/inet.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <time.h>

#include "blocking-call.h"
#include "clock.h"
#include "hashmap.h"
#include "macro.h"
#include "procfs-internal.h"
#include "procfs.h"
#include "target-memory.h"

#define NET_TABLE_MAX (32u * 1024u * 1024u)     /* ~200k sockets of /proc/net/tcp */
#define EPOLL_FDINFO_MAX (4u * 1024u * 1024u)   /* ~50k "tfd:" lines of ~80 bytes */
#define EPOLL_FDINFO_CHUNK (64u * 1024u)
#define SMALL_FILE_MAX 4096u                    /* stat, a pidfd's fdinfo */
#define FD_LINK_MAX 4096                        /* PATH_MAX */
#define FD_WHAT_MAX 512                         /* a described fd, truncated */

#ifndef TIMER_ABSTIME
#define TIMER_ABSTIME 1
#endif
#ifndef P_PIDFD
#define P_PIDFD 3
#endif

typedef enum NetKind {
        NET_TCP,
        NET_TCP6,
        NET_UDP,
        NET_UDP6,
        NET_UNIX,
        _NET_KIND_MAX,
} NetKind;

static const char *const net_file[_NET_KIND_MAX] = { "tcp", "tcp6", "udp", "udp6", "unix" };

typedef struct NetTable {
        bool read;              /* tried once: an unreadable table is not retried */
        char *text;             /* as read, lines cut in place */
        U64Map by_inode;        /* socket inode → its line in text */
} NetTable;

typedef struct FdEntry {
        bool counted;           /* epoll: watched counted (or found uncountable) */
        long watched;           /* epoll: "tfd:" lines of its fdinfo, -1 unreadable */
        bool watched_capped;    /* stopped counting at EPOLL_FDINFO_MAX */
        char what[];            /* "" when the fd could not be read */
} FdEntry;

struct BlockingCallContext {
        pid_t pid;
        NetTable net[_NET_KIND_MAX];
        U64Map fds;             /* fd → FdEntry */
        int pidfd;              /* for the peers of unix sockets: -1 not opened, -2 failed */
        int same_time_ns;       /* the target sees our CLOCK_MONOTONIC: -1 not checked */
};

int blocking_call_context_new(pid_t pid, BlockingCallContext **ret) {
        BlockingCallContext *c = calloc(1, sizeof *c);
        if (!c)
                return -ENOMEM;
        c->pid = pid;
        c->pidfd = -1;
        c->same_time_ns = -1;
        *ret = c;
        return 0;
}

BlockingCallContext *blocking_call_context_free(BlockingCallContext *c) {
        if (!c)
                return NULL;
        for (size_t i = 0; i < ARRAY_SIZE(c->net); i++) {
                u64map_done(&c->net[i].by_inode, NULL);
                free(c->net[i].text);
        }
        u64map_done(&c->fds, free);
        if (c->pidfd >= 0)
                close(c->pidfd);
        free(c);
        return NULL;
}

/* ---- output ---- */

/* BUF of SIZE > 0, always NUL-terminated; what does not fit is dropped. */
typedef struct Out {
        char *buf;
        size_t size, len;
} Out;

_printf_(2, 3) static void out_printf(Out *o, const char *fmt, ...) {
        size_t room = o->size - o->len;
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(o->buf + o->len, room, fmt, ap);
        va_end(ap);
        if (n > 0)
                o->len += MIN((size_t) n, room - 1);
}

/* Bytes the target chose (paths): control bytes become '?', so the text stays one line,
 * and a UTF-8 sequence is written whole or not at all. */
static void out_text(Out *o, const char *s, size_t n) {
        const unsigned char *p = (const unsigned char *) s;
        for (size_t i = 0; i < n;) {
                unsigned char ch = p[i];
                if (ch < 0x20 || ch == 0x7f) {
                        if (o->len + 1 >= o->size)
                                break;
                        o->buf[o->len++] = '?';
                        i++;
                        continue;
                }
                size_t l = MIN(ch >= 0xf0 ? 4u : ch >= 0xe0 ? 3u : ch >= 0xc0 ? 2u : 1u, n - i);
                if (o->len + l >= o->size)
                        break;
                memcpy(o->buf + o->len, p + i, l);
                o->len += l;
                i += l;
        }
        o->buf[o->len] = 0;
}

static void out_str(Out *o, const char *s) {
        out_text(o, s, strlen(s));
}

/* One decimal, rounded down, ".0" omitted: 7.2s, 10s. */
static void out_decimal(Out *o, uint64_t ns, uint64_t unit, const char *suffix) {
        uint64_t whole = ns / unit, tenth = ns % unit * 10 / unit;
        if (tenth)
                out_printf(o, "%" PRIu64 ".%" PRIu64 "%s", whole, tenth, suffix);
        else
                out_printf(o, "%" PRIu64 "%s", whole, suffix);
}

/* Go-like short durations, rounded down (see blocking-call.h). */
static void out_duration(Out *o, uint64_t ns) {
        if (ns == 0)
                out_printf(o, "0s");
        else if (ns < NSEC_PER_USEC)
                out_printf(o, "%" PRIu64 "ns", ns);
        else if (ns < NSEC_PER_MSEC)
                out_decimal(o, ns, NSEC_PER_USEC, "us");
        else if (ns < NSEC_PER_SEC)
                out_decimal(o, ns, NSEC_PER_MSEC, "ms");
        else if (ns < 60 * NSEC_PER_SEC)
                out_decimal(o, ns, NSEC_PER_SEC, "s");
        else {
                uint64_t s = ns / NSEC_PER_SEC;
                if (s < 3600)
                        out_printf(o, "%" PRIu64 "m%" PRIu64 "s", s / 60, s % 60);
                else
                        out_printf(o, "%" PRIu64 "h%" PRIu64 "m", s / 3600, s % 3600 / 60);
        }
}

/* ---- reading /proc ---- */

/* Exactly DIGITS hex digits. */
static bool parse_hex_fixed(const char **p, int digits, uint32_t *ret) {
        uint32_t v = 0;
        for (int i = 0; i < digits; i++) {
                int d = hex_digit_value((*p)[i]);
                if (d < 0)
                        return false;
                v = v << 4 | (uint32_t) d;
        }
        *p += digits;
        *ret = v;
        return true;
}

/* The start of space-separated token I of LINE, or NULL. */
static const char *nth_token(const char *line, unsigned i) {
        const char *p = line;
        for (;;) {
                while (*p == ' ' || *p == '\t')
                        p++;
                if (!*p)
                        return NULL;
                if (i-- == 0)
                        return p;
                while (*p && *p != ' ' && *p != '\t')
                        p++;
        }
}

/* ---- /proc/PID/net tables ---- */

/* The inode column: 10th of tcp/udp (sl local rem st tx:rx tr:tm retrnsmt uid timeout
 * inode), 7th of unix (Num RefCount Protocol Flags Type St Inode Path). */
static unsigned inode_column(NetKind k) {
        return k == NET_UNIX ? 6 : 9;
}

static NetTable *net_table(BlockingCallContext *c, NetKind k) {
        NetTable *t = &c->net[k];
        char path[64];
        size_t len;

        if (t->read)
                return t;
        t->read = true;
        snprintf(path, sizeof path, "/proc/%d/net/%s", (int) c->pid, net_file[k]);
        if (procfs_read_file(path, NET_TABLE_MAX, &t->text, &len) < 0)
                return t;
        /* Only whole lines: the last one of a table cut at NET_TABLE_MAX could carry a
         * truncated inode, which would name another socket. */
        char *end = memrchr(t->text, '\n', len);
        *(end ? end : t->text) = 0;
        bool header = true;
        for (char *line = t->text, *next; *line; line = next) {
                next = strchr(line, '\n');
                if (next)
                        *next++ = 0;
                else
                        next = line + strlen(line);
                if (header) {
                        header = false;
                        continue;
                }
                const char *p = nth_token(line, inode_column(k));
                uint64_t inode;
                if (!p || !procfs_parse_dec(&p, &inode) || (*p != ' ' && *p != 0) || inode == 0)
                        continue;       /* inode 0: TIME_WAIT and other ownerless entries */
                if (!u64map_get(&t->by_inode, inode))
                        u64map_put(&t->by_inode, inode, line);
        }
        return t;
}

static const char *net_find(BlockingCallContext *c, NetKind k, uint64_t inode) {
        return u64map_get(&net_table(c, k)->by_inode, inode);
}

typedef struct InetEndpoint {
        int family;
        unsigned char addr[16];
        unsigned port;
} InetEndpoint;

/* "0100007F:1F90" or 32 hex digits and a port: each 32-bit word of the address as the
 * kernel's %08X of the network-order word in host order, the port in host order. */
static bool parse_inet_endpoint(const char *p, int family, InetEndpoint *ret) {
        size_t words = family == AF_INET ? 1 : 4;
        uint32_t word, port;

        *ret = (InetEndpoint) { .family = family };
        for (size_t w = 0; w < words; w++) {
                if (!parse_hex_fixed(&p, 8, &word))
                        return false;
                memcpy(ret->addr + 4 * w, &word, sizeof word);
        }
        if (*p++ != ':' || !parse_hex_fixed(&p, 4, &port) || (*p != ' ' && *p != 0))
                return false;
        ret->port = port;
        return true;
}

static bool endpoint_is_any(const InetEndpoint *e) {
        static const unsigned char zero[16];
        return memcmp(e->addr, zero, e->family == AF_INET ? 4 : 16) == 0;
}

static void out_endpoint(Out *o, const InetEndpoint *e, bool star_for_any) {
        char a[INET6_ADDRSTRLEN];
        if (star_for_any && endpoint_is_any(e))
                out_printf(o, "*:%u", e->port);
        else if (!inet_ntop(e->family, e->addr, a, sizeof a))
                out_printf(o, "?:%u", e->port);
        else if (e->family == AF_INET6)
                out_printf(o, "[%s]:%u", a, e->port);
        else
                out_printf(o, "%s:%u", a, e->port);
}

#define TCP_STATE_LISTEN 0x0a

static bool out_inet_socket(Out *o, const char *line, NetKind k) {
        int family = k == NET_TCP6 || k == NET_UDP6 ? AF_INET6 : AF_INET;
        bool tcp = k == NET_TCP || k == NET_TCP6;
        const char *local_p = nth_token(line, 1), *remote_p = nth_token(line, 2), *state_p = nth_token(line, 3);
        InetEndpoint local, remote;
        uint32_t state;

        if (!local_p || !remote_p || !state_p || !parse_inet_endpoint(local_p, family, &local) ||
            !parse_inet_endpoint(remote_p, family, &remote) || !parse_hex_fixed(&state_p, 2, &state))
                return false;
        out_printf(o, "%s ", tcp ? "tcp" : "udp");
        if (tcp && state == TCP_STATE_LISTEN) {
                out_endpoint(o, &local, true);
                return true;
        }
        out_endpoint(o, &local, false);
        if (remote.port != 0 || !endpoint_is_any(&remote)) {
                out_printf(o, "->");
                out_endpoint(o, &remote, false);
        }
        return true;
}

/* The path of the socket unix_line describes ("" when unnamed). */
static const char *unix_line_path(const char *line) {
        const char *p = nth_token(line, inode_column(NET_UNIX));
        uint64_t inode;
        if (!p || !procfs_parse_dec(&p, &inode) || *p != ' ')
                return "";
        return p + 1;   /* one space, then the path as bound, spaces and all */
}

/* The bound path of the peer of the unnamed unix socket FD, from a copy of the fd
 * (pidfd_getfd) and getpeername(): the kernel lists no peer in /proc/net/unix. The copy
 * is closed at once; receiving a socket retags its cgroup net_cls/net_prio data, which
 * unix sockets never use. */
static bool unix_peer_path(BlockingCallContext *c, unsigned fd, uint64_t inode, Out *o) {
#if defined(SYS_pidfd_open) && defined(SYS_pidfd_getfd)
        if (c->pidfd == -1) {
                c->pidfd = (int) syscall(SYS_pidfd_open, c->pid, 0);
                if (c->pidfd < 0)
                        c->pidfd = -2;
        }
        if (c->pidfd < 0)
                return false;
        _cleanup_close_ int copy = (int) syscall(SYS_pidfd_getfd, c->pidfd, fd, 0);
        struct stat st;
        /* The fd may have been closed and reused since its link was read. */
        if (copy < 0 || fstat(copy, &st) < 0 || !S_ISSOCK(st.st_mode) || st.st_ino != inode)
                return false;
        struct sockaddr_un sa;
        socklen_t len = sizeof sa;
        if (getpeername(copy, (struct sockaddr *) &sa, &len) < 0 || sa.sun_family != AF_UNIX ||
            len <= offsetof(struct sockaddr_un, sun_path))
                return false;
        size_t n = MIN((size_t) len - offsetof(struct sockaddr_un, sun_path), sizeof sa.sun_path);
        if (sa.sun_path[0] == 0) {
                /* Abstract: spelled as /proc/net/unix does, '@' for every NUL. */
                for (size_t i = 0; i < n; i++)
                        if (sa.sun_path[i] == 0)
                                sa.sun_path[i] = '@';
        } else
                n = strnlen(sa.sun_path, n);
        if (n == 0)
                return false;
        out_printf(o, "unix ->");
        out_text(o, sa.sun_path, n);
        return true;
#else
        return false;
#endif
}

static bool out_unix_socket(BlockingCallContext *c, Out *o, const char *line, unsigned fd, uint64_t inode) {
        const char *path = unix_line_path(line);
        if (*path) {
                out_printf(o, "unix ");
                out_str(o, path);
                return true;
        }
        if (unix_peer_path(c, fd, inode, o))
                return true;
        out_printf(o, "unix socket:[%" PRIu64 "]", inode);
        return true;
}

/* The tables that can list the socket at LINK: the protocol its inode names (an xattr of
 * sockfs, "TCPv6", "UNIX-STREAM", …), or all of them when it does not say. */
static size_t socket_tables(const char *fd_path, NetKind kinds[static _NET_KIND_MAX]) {
        char proto[32];
        ssize_t n = getxattr(fd_path, "system.sockprotoname", proto, sizeof proto - 1);
        if (n < 0) {
                for (size_t i = 0; i < _NET_KIND_MAX; i++)
                        kinds[i] = (NetKind) i;
                return _NET_KIND_MAX;
        }
        proto[n] = 0;
        if (strcmp(proto, "TCP") == 0)
                kinds[0] = NET_TCP;
        else if (strcmp(proto, "TCPv6") == 0)
                kinds[0] = NET_TCP6;
        else if (strcmp(proto, "UDP") == 0)
                kinds[0] = NET_UDP;
        else if (strcmp(proto, "UDPv6") == 0)
                kinds[0] = NET_UDP6;
        else if (startswith(proto, "UNIX"))
                kinds[0] = NET_UNIX;
        else
                return 0;       /* netlink, packet, …: in none of the tables read here */
        return 1;
}

static void out_socket(BlockingCallContext *c, Out *o, const char *fd_path, unsigned fd, uint64_t inode) {
        NetKind kinds[_NET_KIND_MAX];
        size_t n = socket_tables(fd_path, kinds);
        for (size_t i = 0; i < n; i++) {
                const char *line = net_find(c, kinds[i], inode);
                if (!line)
                        continue;
                size_t start = o->len;
                if (kinds[i] == NET_UNIX ? out_unix_socket(c, o, line, fd, inode) : out_inet_socket(o, line, kinds[i]))
                        return;
                o->len = start;
                o->buf[start] = 0;
        }
        out_printf(o, "socket:[%" PRIu64 "]", inode);
}

/* ---- fds ---- */

static void fd_path(char path[static 96], pid_t pid, pid_t tid, const char *dir, unsigned fd) {
        snprintf(path, 96, "/proc/%d/task/%d/%s/%u", (int) pid, (int) tid, dir, fd);
}

/* What FD is, from its link: a path, "pipe:[N]", a socket's addresses, "eventfd". */
static void describe_fd(BlockingCallContext *c, pid_t tid, unsigned fd, Out *o) {
        char path[96], link[FD_LINK_MAX + 1];

        fd_path(path, c->pid, tid, "fd", fd);
        ssize_t n = readlink(path, link, FD_LINK_MAX);
        if (n <= 0)
                return;
        link[n] = 0;

        const char *p = link;
        uint64_t inode;
        if (startswith(link, "socket:[") && (p += strlen("socket:["), procfs_parse_dec(&p, &inode)) &&
            strcmp(p, "]") == 0) {
                out_socket(c, o, path, fd, inode);
                return;
        }
        if (startswith(link, "anon_inode:")) {
                /* "anon_inode:[eventfd]", "anon_inode:inotify" */
                const char *name = link + strlen("anon_inode:");
                size_t len = strlen(name);
                if (len >= 2 && name[0] == '[' && name[len - 1] == ']') {
                        name++;
                        len -= 2;
                }
                if (len == strlen("eventpoll") && strncmp(name, "eventpoll", len) == 0)
                        out_str(o, "epoll");
                else
                        out_text(o, name, len);
                return;
        }
        out_text(o, link, (size_t) n);
}

/* The cached entry of FD, described now if this is its first time; NULL only when out of
 * memory. */
static FdEntry *fd_entry(BlockingCallContext *c, pid_t tid, unsigned fd) {
        FdEntry *e = u64map_get(&c->fds, fd);
        if (e)
                return e;
        char what[FD_WHAT_MAX];
        Out o = { what, sizeof what, 0 };
        what[0] = 0;
        describe_fd(c, tid, fd, &o);
        e = malloc(sizeof *e + o.len + 1);
        if (!e)
                return NULL;
        *e = (FdEntry) { .watched = -1 };
        memcpy(e->what, what, o.len + 1);
        u64map_put(&c->fds, fd, e);
        return e;
}

/* "tfd:" lines of FD's fdinfo, one per watched fd, counted in chunks: an epoll set of
 * 50k fds needs no 4 MiB buffer. */
static void count_epoll_watched(BlockingCallContext *c, pid_t tid, unsigned fd, FdEntry *e) {
        static const char prefix[] = "tfd:";
        char path[96];

        e->counted = true;
        fd_path(path, c->pid, tid, "fdinfo", fd);
        _cleanup_close_ int f = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        _cleanup_free_ char *chunk = malloc(EPOLL_FDINFO_CHUNK);
        if (f < 0 || !chunk)
                return;
        long count = 0;
        size_t col = 0, total = 0;
        bool match = true;
        for (;;) {
                if (total >= EPOLL_FDINFO_MAX) {
                        e->watched_capped = true;
                        break;
                }
                ssize_t n = read(f, chunk, MIN((size_t) EPOLL_FDINFO_CHUNK, EPOLL_FDINFO_MAX - total));
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return;
                if (n == 0)
                        break;
                total += (size_t) n;
                for (ssize_t i = 0; i < n; i++) {
                        if (chunk[i] == '\n') {
                                col = 0;
                                match = true;
                        } else if (col < sizeof prefix - 1) {
                                match = match && chunk[i] == prefix[col];
                                if (++col == sizeof prefix - 1 && match)
                                        count++;
                        }
                }
        }
        e->watched = count;
}

/* "SYSCALL fd N WHAT", or "SYSCALL fd N" when the fd could not be read. */
static void out_fd_wait(BlockingCallContext *c, Out *o, pid_t tid, const char *name, uint64_t fd_arg) {
        /* The kernel takes an unsigned int; a larger register value names the same fd. */
        unsigned fd = (unsigned) fd_arg;
        out_printf(o, "%s fd %u", name, fd);
        const FdEntry *e = fd <= INT32_MAX ? fd_entry(c, tid, fd) : NULL;
        if (e && e->what[0]) {
                out_printf(o, " ");
                out_str(o, e->what);
        }
}

static void out_epoll_wait(BlockingCallContext *c, Out *o, pid_t tid, const char *name, uint64_t fd_arg) {
        unsigned fd = (unsigned) fd_arg;
        FdEntry *e = fd <= INT32_MAX ? fd_entry(c, tid, fd) : NULL;
        if (!e || strcmp(e->what, "epoll") != 0) {
                out_fd_wait(c, o, tid, name, fd_arg);
                return;
        }
        if (!e->counted)
                count_epoll_watched(c, tid, fd, e);
        out_printf(o, "%s fd %u", name, fd);
        if (e->watched >= 0)
                out_printf(o, " (%ld%s fds)", e->watched, e->watched_capped ? "+" : "");
}

static void out_poll(BlockingCallContext *c, Out *o, pid_t tid, const char *name, const uint64_t args[6]) {
        unsigned nfds = (unsigned) args[1];
        struct pollfd pfd;
        /* One fd, the common case of a blocking call with a timeout: say which. */
        if (nfds == 1 && target_memory_read(c->pid, args[0], &pfd, sizeof pfd) == 0 && pfd.fd >= 0) {
                out_fd_wait(c, o, tid, name, (uint64_t) pfd.fd);
                return;
        }
        out_printf(o, "%s %u fds", name, nfds);
}

/* ---- sleeps ---- */

static bool read_timespec_ns(pid_t pid, uint64_t addr, uint64_t *ret) {
        struct { int64_t sec, nsec; } ts;      /* x86-64 struct timespec */
        if (target_memory_read(pid, addr, &ts, sizeof ts) < 0)
                return false;
        if (ts.sec < 0 || ts.nsec < 0 || ts.nsec >= (int64_t) NSEC_PER_SEC ||
            (uint64_t) ts.sec > UINT64_MAX / NSEC_PER_SEC - 1)
                return false;
        *ret = (uint64_t) ts.sec * NSEC_PER_SEC + (uint64_t) ts.nsec;
        return true;
}

/* "D" and, when the wait has been seen for less than D on a clock that runs with wall
 * time, ", L left". A sleep whose remainder goes back into its own request (sleep(3)
 * passes one timespec as both) had it rewritten by the kernel at the thread's last stop:
 * what is read then is the time left at that stop, "L left". */
static void out_relative_sleep(Out *o, const char *name, uint64_t requested, uint64_t waited, bool wall,
                               bool rewritten, uint64_t since_stop) {
        out_printf(o, "%s ", name);
        if (rewritten && wall) {
                out_duration(o, requested > since_stop ? requested - since_stop : 0);
                out_printf(o, " left");
                return;
        }
        out_duration(o, requested);
        if (wall && waited > 0 && waited < requested) {
                out_printf(o, ", ");
                out_duration(o, requested - waited);
                out_printf(o, " left");
        }
}

/* The clock of ours that shows what the target's clock ID shows, or -1: CPU-time clocks
 * and unknown ids have none; CLOCK_MONOTONIC and CLOCK_BOOTTIME are shifted in another
 * time namespace. */
static clockid_t comparable_clock(BlockingCallContext *c, int id) {
        switch (id) {
        case CLOCK_REALTIME:
        case CLOCK_REALTIME_ALARM:
                return CLOCK_REALTIME;
        case CLOCK_TAI:
                return CLOCK_TAI;
        case CLOCK_MONOTONIC:
        case CLOCK_BOOTTIME:
        case CLOCK_BOOTTIME_ALARM:
                if (c->same_time_ns < 0)
                        /* No /proc/PID/ns/time: a kernel without time namespaces. */
                        c->same_time_ns = procfs_same_namespace(c->pid, "time") != 0;
                if (!c->same_time_ns)
                        return -1;
                return id == CLOCK_MONOTONIC ? CLOCK_MONOTONIC : CLOCK_BOOTTIME;
        default:
                return -1;
        }
}

static bool is_wall_clock(int id) {
        return id == CLOCK_REALTIME || id == CLOCK_REALTIME_ALARM || id == CLOCK_TAI || id == CLOCK_MONOTONIC ||
               id == CLOCK_BOOTTIME || id == CLOCK_BOOTTIME_ALARM;
}

static bool out_clock_nanosleep(BlockingCallContext *c, Out *o, const char *name, const uint64_t args[6],
                                uint64_t waited, uint64_t since_stop) {
        int clock = (int) args[0];
        uint64_t t;
        if (!read_timespec_ns(c->pid, args[2], &t))
                return false;
        if (!((int) args[1] & TIMER_ABSTIME)) {
                out_relative_sleep(o, name, t, waited, is_wall_clock(clock), args[3] == args[2], since_stop);
                return true;
        }
        clockid_t ours = comparable_clock(c, clock);
        if (ours < 0)
                return false;
        uint64_t now = clock_ns(ours);
        out_printf(o, "%s ", name);
        out_duration(o, t > now ? t - now : 0);
        out_printf(o, " left");
        return true;
}

/* ---- waits for children ---- */

/* The process group of TID, or 0. */
static pid_t read_pgrp(pid_t pid, pid_t tid) {
        ThreadInfo info;
        return procfs_read_thread_stat(pid, tid, &info) == 0 ? info.pgrp : 0;
}

static void out_process_group(Out *o, BlockingCallContext *c, pid_t tid, const char *name, int64_t group) {
        if (group == 0)
                group = read_pgrp(c->pid, tid);
        if (group > 0)
                out_printf(o, "%s process group %" PRId64, name, group);
        else
                out_printf(o, "%s own process group", name);
}

/* The "Pid:" of a pidfd's fdinfo, or 0. */
static pid_t pidfd_pid(BlockingCallContext *c, pid_t tid, unsigned fd) {
        char path[96];
        _cleanup_free_ char *text = NULL;
        size_t len;
        uint64_t v;
        fd_path(path, c->pid, tid, "fdinfo", fd);
        if (procfs_read_file(path, SMALL_FILE_MAX, &text, &len) < 0)
                return 0;
        const char *p = strstr(text, "\nPid:\t");
        if (!p)
                return 0;
        p += strlen("\nPid:\t");
        if (!procfs_parse_dec(&p, &v) || v == 0 || v > INT32_MAX)
                return 0;      /* -1: the process is gone */
        return (pid_t) v;
}

static bool out_wait4(BlockingCallContext *c, Out *o, pid_t tid, const char *name, int pid) {
        if (pid > 0)
                out_printf(o, "%s child %d", name, pid);
        else if (pid == -1)
                out_printf(o, "%s any child", name);
        else if (pid == INT32_MIN)
                return false;   /* the kernel refuses it at once */
        else
                out_process_group(o, c, tid, name, -(int64_t) pid);
        return true;
}

static bool out_waitid(BlockingCallContext *c, Out *o, pid_t tid, const char *name, const uint64_t args[6]) {
        int which = (int) args[0], id = (int) args[1];
        switch (which) {
        case P_ALL:
                out_printf(o, "%s any child", name);
                return true;
        case P_PID:
                if (id <= 0)
                        return false;
                out_printf(o, "%s child %d", name, id);
                return true;
        case P_PGID:
                if (id < 0)
                        return false;
                out_process_group(o, c, tid, name, id);
                return true;
        case P_PIDFD: {
                pid_t child = id >= 0 ? pidfd_pid(c, tid, (unsigned) id) : 0;
                if (child > 0)
                        out_printf(o, "%s child %d", name, (int) child);
                else
                        out_printf(o, "%s pidfd %d", name, id);
                return true;
        }
        default:
                return false;
        }
}

/* ---- the syscalls ---- */

bool blocking_call_describe(BlockingCallContext *c, pid_t tid, int nr, const uint64_t args[6],
                            uint64_t waited_ns, uint64_t since_stop_ns, char *buf, size_t size) {
        const char *name = syscall_name(nr);
        uint64_t t;

        if (!c || !args || !buf || size == 0 || !name)
                return false;
        Out o = { buf, size, 0 };
        buf[0] = 0;

        switch (nr) {
        case SYS_read: case SYS_readv: case SYS_pread64: case SYS_preadv: case SYS_preadv2:
        case SYS_write: case SYS_writev: case SYS_pwrite64: case SYS_pwritev: case SYS_pwritev2:
        case SYS_recvfrom: case SYS_recvmsg: case SYS_recvmmsg:
        case SYS_sendto: case SYS_sendmsg: case SYS_sendmmsg:
        case SYS_accept: case SYS_accept4: case SYS_connect:
        case SYS_flock:
                out_fd_wait(c, &o, tid, name, args[0]);
                return true;
        case SYS_fcntl:
                if ((int) args[1] != F_SETLKW && (int) args[1] != F_OFD_SETLKW)
                        return false;
                out_fd_wait(c, &o, tid, name, args[0]);
                return true;
        case SYS_poll: case SYS_ppoll:
                out_poll(c, &o, tid, name, args);
                return true;
        case SYS_select: case SYS_pselect6:
                if ((int) args[0] < 0)
                        return false;
                out_printf(&o, "%s %d fds", name, (int) args[0]);
                return true;
        case SYS_epoll_wait: case SYS_epoll_pwait:
#ifdef SYS_epoll_pwait2
        case SYS_epoll_pwait2:
#endif
                out_epoll_wait(c, &o, tid, name, args[0]);
                return true;
        case SYS_nanosleep:
                if (!read_timespec_ns(c->pid, args[0], &t))
                        return false;
                out_relative_sleep(&o, name, t, waited_ns, true, args[1] == args[0], since_stop_ns);
                return true;
        case SYS_clock_nanosleep:
                return out_clock_nanosleep(c, &o, name, args, waited_ns, since_stop_ns);
        case SYS_wait4:
                return out_wait4(c, &o, tid, name, (int) args[0]);
        case SYS_waitid:
                return out_waitid(c, &o, tid, name, args);
        default:
                /* futex (locks are decoded elsewhere), pause, rt_sigsuspend, … */
                return false;
        }
}
