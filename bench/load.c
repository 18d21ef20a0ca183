/* bench/load.c (load-client) -- many concurrent HTTP clients against cprofd, while profiles run.
 *
 *   load-client --port PORT [--host 127.0.0.1] | --unix PATH
 *        [--clients 200] [--seconds 10] [--profiles 2] [--profile-path PATH]
 *        [--daemon-pid PID] [--token TOKEN] [--timeout 120]
 *
 * CLIENTS connections each send GET requests back to back (keep-alive, a new connection
 * when the server closes one), cycling through the index, goroutine?debug=1 and
 * goroutine?debug=2, for SECONDS; meanwhile PROFILES more connections each ask for
 * PROFILE_PATH (default /debug/pprof/profile?seconds=5) again and again. One thread,
 * epoll, non-blocking sockets: the client costs little next to the server it measures.
 *
 * Prints, per endpoint: replies, 200s, 503s (cprofd's answer when a limit is reached),
 * errors (anything else: another status, a reset, a connection refused or closed before
 * the reply, a reply that took longer than --timeout) and the latency p50/p99/max of
 * its 200 replies (a 503 is quick and says nothing of the work); then, with --daemon-pid, cprofd's VmRSS before and after and its VmHWM
 * (the peak), from /proc/PID/status. The last line is "errors N unanswered N", and the
 * exit status is 1 when either is not 0, so that a test can run it as is. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define RESPONSE_HEAD_MAX 8192
#define ENDPOINTS_MAX 4

typedef struct Endpoint {
        const char *name;
        const char *path;
        uint64_t replies, ok, unavailable, errors;
        double *latency_ms;             /* of every 200 */
        size_t n, cap;
} Endpoint;

typedef enum State { CONNECTING, SENDING, READING_HEAD, READING_BODY, IDLE } State;

typedef struct Client {
        int fd;
        State state;
        bool profile;                   /* asks for the profile endpoint only */
        unsigned next;                  /* next endpoint in the cycle */
        Endpoint *ep;                   /* of the request in flight */
        char request[512];
        size_t req_len, req_sent;
        char head[RESPONSE_HEAD_MAX];
        size_t head_len;
        int status;
        long long body_left;            /* -1: until the connection closes */
        bool close_after;
        double started;                 /* of the request in flight, ms */
} Client;

static struct {
        struct sockaddr_storage addr;
        socklen_t addr_len;
        int epfd;
        const char *token;
        double timeout_ms;
        bool stopping;
        unsigned unanswered;
} g;

static Endpoint endpoints[ENDPOINTS_MAX];
static size_t n_endpoints;

static double now_ms(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double) ts.tv_sec * 1e3 + (double) ts.tv_nsec / 1e6;
}

static void record(Endpoint *e, int status, double ms) {
        e->replies++;
        if (status == 503)
                e->unavailable++;
        if (status != 200) {
                e->errors += status != 503;
                return;
        }
        e->ok++;
        if (e->n == e->cap) {
                e->cap = e->cap ? 2 * e->cap : 1024;
                e->latency_ms = realloc(e->latency_ms, e->cap * sizeof *e->latency_ms);
                if (!e->latency_ms) {
                        perror("realloc");
                        exit(2);
                }
        }
        e->latency_ms[e->n++] = ms;
}

static void client_close(Client *c) {
        if (c->fd >= 0) {
                (void) epoll_ctl(g.epfd, EPOLL_CTL_DEL, c->fd, NULL);
                close(c->fd);
        }
        c->fd = -1;
}

static int client_watch(Client *c, uint32_t events, int op) {
        struct epoll_event ev = { .events = events, .data.ptr = c };
        return epoll_ctl(g.epfd, op, c->fd, &ev);
}

static void client_start(Client *c);

/* The request in flight failed: an error for its endpoint, a new connection. */
static void client_fail(Client *c) {
        if (c->ep) {
                c->ep->errors++;
                c->ep = NULL;
        }
        client_close(c);
        client_start(c);
}

static void client_request(Client *c) {
        Endpoint *e = c->profile ? &endpoints[n_endpoints - 1] : &endpoints[c->next++ % (n_endpoints - 1)];
        int n = snprintf(c->request, sizeof c->request,
                         "GET %s HTTP/1.1\r\nHost: cprofd\r\n%s%s%s\r\n", e->path,
                         g.token ? "Authorization: Bearer " : "", g.token ? g.token : "", g.token ? "\r\n" : "");
        c->req_len = (size_t) n;
        c->req_sent = 0;
        c->head_len = 0;
        c->status = 0;
        c->ep = e;
        c->started = now_ms();
        c->state = SENDING;
}

static void client_start(Client *c) {
        if (g.stopping) {
                c->state = IDLE;
                return;
        }
        c->fd = socket(g.addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (c->fd < 0) {
                perror("socket");
                exit(2);
        }
        if (g.addr.ss_family != AF_UNIX) {
                int one = 1;
                (void) setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        }
        client_request(c);
        if (connect(c->fd, (struct sockaddr *) &g.addr, g.addr_len) < 0 && errno != EINPROGRESS) {
                c->ep->errors++;
                c->ep = NULL;
                close(c->fd);
                c->fd = -1;
                c->state = IDLE;        /* refused: tried again at the next sweep */
                return;
        }
        c->state = CONNECTING;
        if (client_watch(c, EPOLLOUT, EPOLL_CTL_ADD) < 0) {
                perror("epoll_ctl");
                exit(2);
        }
}

/* A whole reply arrived. */
static void client_done(Client *c) {
        record(c->ep, c->status, now_ms() - c->started);
        c->ep = NULL;
        if (c->close_after || g.stopping) {
                client_close(c);
                client_start(c);
                return;
        }
        client_request(c);
        if (client_watch(c, EPOLLOUT, EPOLL_CTL_MOD) < 0)
                client_fail(c);
}

static bool header_is(const char *line, size_t len, const char *name) {
        size_t n = strlen(name);
        return len > n && strncasecmp(line, name, n) == 0 && line[n] == ':';
}

/* Parses the status line and the headers we need; false when malformed. */
static bool parse_head(Client *c, size_t head_end) {
        if (sscanf(c->head, "HTTP/1.%*d %d", &c->status) != 1)
                return false;
        c->body_left = -1;
        c->close_after = false;
        const char *p = strstr(c->head, "\r\n") + 2, *end = c->head + head_end;
        while (p < end) {
                const char *eol = strstr(p, "\r\n");
                size_t len = (size_t) (eol - p);
                if (header_is(p, len, "Content-Length"))
                        c->body_left = strtoll(p + strlen("Content-Length:"), NULL, 10);
                else if (header_is(p, len, "Connection") && strstr(p, "close") && strstr(p, "close") < eol)
                        c->close_after = true;
                p = eol + 2;
        }
        if (c->body_left < 0)
                c->close_after = true;  /* the body ends with the connection */
        return true;
}

static void client_readable(Client *c) {
        char buf[65536];
        for (;;) {
                ssize_t n = recv(c->fd, buf, sizeof buf, 0);
                if (n < 0 && (errno == EAGAIN || errno == EINTR))
                        return;
                if (n <= 0) {
                        if (c->state == READING_BODY && c->body_left < 0) {
                                c->close_after = true;
                                client_done(c);
                        } else if (c->state == READING_HEAD && c->head_len == 0 && !c->ep) {
                                client_close(c);
                                client_start(c);
                        } else
                                client_fail(c);
                        return;
                }
                size_t off = 0;
                if (c->state == READING_HEAD) {
                        size_t take = (size_t) n < sizeof c->head - 1 - c->head_len ? (size_t) n
                                                                                    : sizeof c->head - 1 - c->head_len;
                        memcpy(c->head + c->head_len, buf, take);
                        c->head_len += take;
                        c->head[c->head_len] = 0;
                        char *e = strstr(c->head, "\r\n\r\n");
                        if (!e) {
                                if (c->head_len == sizeof c->head - 1) {
                                        client_fail(c);
                                        return;
                                }
                                continue;
                        }
                        size_t head_end = (size_t) (e - c->head) + 4;
                        if (!parse_head(c, head_end)) {
                                client_fail(c);
                                return;
                        }
                        /* What came after the head in this read is body. */
                        off = take - (c->head_len - head_end);
                        c->state = READING_BODY;
                }
                if (c->body_left >= 0) {
                        c->body_left -= (long long) ((size_t) n - off);
                        if (c->body_left < 0) {
                                client_fail(c);         /* more than announced */
                                return;
                        }
                        if (c->body_left == 0) {
                                client_done(c);
                                return;
                        }
                }
        }
}

static void client_event(Client *c, uint32_t events) {
        if (c->state == CONNECTING) {
                int err = 0;
                socklen_t len = sizeof err;
                if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0 || err != 0) {
                        client_fail(c);
                        return;
                }
                c->state = SENDING;
        }
        if (c->state == SENDING) {
                ssize_t n = send(c->fd, c->request + c->req_sent, c->req_len - c->req_sent, MSG_NOSIGNAL);
                if (n < 0 && errno == EAGAIN)
                        return;
                if (n < 0) {
                        client_fail(c);
                        return;
                }
                c->req_sent += (size_t) n;
                if (c->req_sent < c->req_len)
                        return;
                c->state = READING_HEAD;
                if (client_watch(c, EPOLLIN | EPOLLRDHUP, EPOLL_CTL_MOD) < 0) {
                        client_fail(c);
                        return;
                }
                return;
        }
        if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
                client_readable(c);
}

static int parse_address(const char *host, const char *port, const char *unix_path) {
        memset(&g.addr, 0, sizeof g.addr);
        if (unix_path) {
                struct sockaddr_un *sa = (struct sockaddr_un *) &g.addr;
                if (strlen(unix_path) >= sizeof sa->sun_path)
                        return -1;
                sa->sun_family = AF_UNIX;
                strcpy(sa->sun_path, unix_path);
                g.addr_len = sizeof *sa;
                return 0;
        }
        if (!port)
                return -1;
        struct sockaddr_in *in = (struct sockaddr_in *) &g.addr;
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *) &g.addr;
        int p = atoi(port);
        if (p <= 0 || p > 65535)
                return -1;
        if (inet_pton(AF_INET, host, &in->sin_addr) == 1) {
                in->sin_family = AF_INET;
                in->sin_port = htons((uint16_t) p);
                g.addr_len = sizeof *in;
        } else if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
                in6->sin6_family = AF_INET6;
                in6->sin6_port = htons((uint16_t) p);
                g.addr_len = sizeof *in6;
        } else
                return -1;
        return 0;
}

/* VmRSS or VmHWM of PID in KiB; -1 when unknown. */
static long status_kib(pid_t pid, const char *field) {
        char path[64], line[256];
        long v = -1;
        snprintf(path, sizeof path, "/proc/%d/status", (int) pid);
        FILE *f = fopen(path, "re");
        if (!f)
                return -1;
        while (fgets(line, sizeof line, f))
                if (strncmp(line, field, strlen(field)) == 0 && line[strlen(field)] == ':') {
                        v = strtol(line + strlen(field) + 1, NULL, 10);
                        break;
                }
        fclose(f);
        return v;
}

static int cmp_double(const void *a, const void *b) {
        double x = *(const double *) a, y = *(const double *) b;
        return (x > y) - (x < y);
}

static double percentile(const double *v, size_t n, double p) {
        if (n == 0)
                return 0;
        size_t i = (size_t) (p * (double) (n - 1) + 0.5);
        return v[i < n ? i : n - 1];
}

static void usage(FILE *f) {
        fprintf(f, "usage: load-client --port PORT [--host ADDR] | --unix PATH  [--clients N] [--seconds N]\n"
                   "                   [--profiles N] [--profile-path PATH] [--daemon-pid PID] [--token TOKEN]\n"
                   "                   [--timeout SECONDS]\n");
}

int main(int argc, char **argv) {
        static const struct option options[] = {
                { "host", required_argument, NULL, 'H' },
                { "port", required_argument, NULL, 'p' },
                { "unix", required_argument, NULL, 'u' },
                { "clients", required_argument, NULL, 'c' },
                { "seconds", required_argument, NULL, 's' },
                { "profiles", required_argument, NULL, 'P' },
                { "profile-path", required_argument, NULL, 'f' },
                { "daemon-pid", required_argument, NULL, 'd' },
                { "token", required_argument, NULL, 't' },
                { "timeout", required_argument, NULL, 'T' },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        const char *host = "127.0.0.1", *port = NULL, *unix_path = NULL;
        const char *profile_path = "/debug/pprof/profile?seconds=5";
        int clients = 200, seconds = 10, profiles = 2, timeout_s = 120, opt;
        pid_t daemon_pid = 0;

        while ((opt = getopt_long(argc, argv, "h", options, NULL)) >= 0)
                switch (opt) {
                case 'H': host = optarg; break;
                case 'p': port = optarg; break;
                case 'u': unix_path = optarg; break;
                case 'c': clients = atoi(optarg); break;
                case 's': seconds = atoi(optarg); break;
                case 'P': profiles = atoi(optarg); break;
                case 'f': profile_path = optarg; break;
                case 'd': daemon_pid = (pid_t) atoi(optarg); break;
                case 't': g.token = optarg; break;
                case 'T': timeout_s = atoi(optarg); break;
                case 'h': usage(stdout); return 0;
                default: usage(stderr); return 2;
                }
        if (parse_address(host, port, unix_path) < 0 || clients < 1 || clients > 10000 || seconds < 1 ||
            profiles < 0 || profiles > 1000 || timeout_s < 1) {
                usage(stderr);
                return 2;
        }
        g.timeout_ms = timeout_s * 1e3;
        signal(SIGPIPE, SIG_IGN);

        endpoints[n_endpoints++] = (Endpoint) { .name = "index", .path = "/debug/pprof/" };
        endpoints[n_endpoints++] = (Endpoint) { .name = "goroutine?debug=1", .path = "/debug/pprof/goroutine?debug=1" };
        endpoints[n_endpoints++] = (Endpoint) { .name = "goroutine?debug=2", .path = "/debug/pprof/goroutine?debug=2" };
        endpoints[n_endpoints++] = (Endpoint) { .name = "profile", .path = profile_path };

        long rss_before = daemon_pid ? status_kib(daemon_pid, "VmRSS") : -1, rss_max = rss_before;
        g.epfd = epoll_create1(EPOLL_CLOEXEC);
        size_t n_clients = (size_t) clients + (size_t) profiles;
        Client *cl = calloc(n_clients, sizeof *cl);
        if (g.epfd < 0 || !cl) {
                perror("setup");
                return 2;
        }
        /* The profiles first, so that they run while the others hammer. */
        for (size_t i = 0; i < n_clients; i++) {
                cl[i].fd = -1;
                cl[i].profile = i < (size_t) profiles;
                cl[i].next = (unsigned) i;
                client_start(&cl[i]);
        }

        double start = now_ms(), end = start + seconds * 1e3, last_sweep = start;
        struct epoll_event events[256];
        for (;;) {
                double t = now_ms();
                if (!g.stopping && t >= end)
                        g.stopping = true;      /* requests in flight are still awaited */
                size_t busy = 0;
                bool sweep = t - last_sweep >= 100;
                if (sweep) {
                        last_sweep = t;
                        if (daemon_pid) {
                                long r = status_kib(daemon_pid, "VmRSS");
                                if (r > rss_max)
                                        rss_max = r;
                        }
                }
                for (size_t i = 0; i < n_clients; i++) {
                        Client *c = &cl[i];
                        if (sweep && c->state == IDLE && c->fd < 0 && !g.stopping)
                                client_start(c);        /* refused before: try again */
                        if (c->ep) {
                                if (t - c->started > g.timeout_ms) {
                                        client_fail(c);
                                        continue;
                                }
                                busy++;
                        }
                }
                if (g.stopping && busy == 0)
                        break;
                if (g.stopping && t > end + g.timeout_ms) {
                        g.unanswered = (unsigned) busy;
                        break;
                }
                int n = epoll_wait(g.epfd, events, (int) (sizeof events / sizeof events[0]), 100);
                if (n < 0 && errno != EINTR) {
                        perror("epoll_wait");
                        return 2;
                }
                for (int i = 0; i < n; i++)
                        client_event(events[i].data.ptr, events[i].events);
        }
        double elapsed = (now_ms() - start) / 1e3;
        long rss_after = daemon_pid ? status_kib(daemon_pid, "VmRSS") : -1;
        long hwm = daemon_pid ? status_kib(daemon_pid, "VmHWM") : -1;

        uint64_t errors = 0, total = 0;
        printf("%d clients + %d profile clients for %d s (%.1f s with the last replies)\n", clients, profiles,
               seconds, elapsed);
        printf("%-20s %8s %8s %8s %7s %9s %9s %9s %8s\n", "endpoint", "replies", "200", "503", "errors",
               "p50 ms", "p99 ms", "max ms", "req/s");
        printf("%-20s %8s %8s %8s %7s %29s\n", "", "", "", "", "", "(latency of the 200s)");
        for (size_t i = 0; i < n_endpoints; i++) {
                Endpoint *e = &endpoints[i];
                qsort(e->latency_ms, e->n, sizeof *e->latency_ms, cmp_double);
                printf("%-20s %8llu %8llu %8llu %7llu %9.1f %9.1f %9.1f %8.1f\n", e->name,
                       (unsigned long long) e->replies, (unsigned long long) e->ok,
                       (unsigned long long) e->unavailable, (unsigned long long) e->errors,
                       percentile(e->latency_ms, e->n, 0.50), percentile(e->latency_ms, e->n, 0.99),
                       e->n ? e->latency_ms[e->n - 1] : 0.0, (double) e->replies / elapsed);
                errors += e->errors;
                total += e->replies;
                free(e->latency_ms);
        }
        if (daemon_pid)
                printf("cprofd RSS: before %.1f MB, after %.1f MB, max sampled %.1f MB, peak (VmHWM) %.1f MB\n",
                       rss_before / 1024.0, rss_after / 1024.0, rss_max / 1024.0, hwm / 1024.0);
        printf("replies %llu errors %llu unanswered %u\n", (unsigned long long) total, (unsigned long long) errors,
               g.unanswered);
        for (size_t i = 0; i < n_clients; i++)
                client_close(&cl[i]);
        free(cl);
        close(g.epfd);
        return errors > 0 || g.unanswered > 0 ? 1 : 0;
}
