/* daemon/main.c -- cprofd: attach to running native processes and serve their thread
 * dumps the way Go's net/http/pprof serves goroutine dumps.
 *
 * The command line, the event loop, and the Backend that http/ calls. The only place that
 * logs errors. */
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <event2/thread.h>

#include "config.h"
#include "log.h"
#include "macro.h"
#include "metrics.h"
#include "server.h"
#include "service.h"
#include "targets.h"
#include "worker.h"

#define TARGETS_MAX 64
#define STRAGGLER_REAP_INTERVAL_MS 250

typedef struct Daemon {
        struct event_base *base;
        Targets targets;
        Metrics metrics;
        Worker *worker;
        Service service;
        HttpServer *server;
        bool reaping;                   /* a straggler reap is queued on the worker */
} Daemon;

static void usage(FILE *f) {
        fprintf(f,
                "Usage: cprofd --pid PID [--pid PID ...] [OPTIONS]\n"
                "\n"
                "Attach to running native processes and serve their thread dumps in the formats\n"
                "of Go's net/http/pprof: curl localhost:6060/debug/pprof/goroutine?debug=2\n"
                "\n"
                "Options:\n"
                "  -p, --pid PID          process to serve (repeatable; the first is the default,\n"
                "                         the others are under /pid/PID/debug/pprof/)\n"
                "  -l, --listen ADDR      HOST:PORT to listen on (default 127.0.0.1:6060;\n"
                "                         port 0 picks a free port)\n"
                "      --stack-max BYTES  stack bytes copied per thread (default %u, max %u)\n"
                "      --log-level LEVEL  err, warning, notice, info (default) or debug\n"
                "  -h, --help             show this help\n"
                "  -V, --version          show the version\n",
                SNAPSHOT_STACK_MAX_DEFAULT, SNAPSHOT_STACK_MAX_LIMIT);
}

/* A strictly decimal number in [min, max]: no sign, no junk, no overflow. */
static int parse_number(const char *s, unsigned long long min, unsigned long long max, unsigned long long *ret) {
        if (!s || *s < '0' || *s > '9')
                return -EINVAL;
        char *end;
        errno = 0;
        unsigned long long v = strtoull(s, &end, 10);
        if (errno || *end || v < min || v > max)
                return -EINVAL;
        *ret = v;
        return 0;
}

static void on_terminate(evutil_socket_t sig, short events, void *userdata) {
        Daemon *d = userdata;
        log_info("Received %s, exiting.", strsignal((int) sig));
        event_base_loopbreak(d->base);
}

/* [worker] Only the thread that seized a tracee may detach it. */
static void reap_stragglers(void *userdata) {
        size_t pending = snapshot_reap_stragglers();
        if (pending > 0)
                log_warning("%zu thread(s) did not stop in time and are still waiting to be released", pending);
}

static void reaped(void *userdata) {
        Daemon *d = userdata;
        d->reaping = false;
}

static void on_reap_timer(evutil_socket_t fd, short events, void *userdata) {
        Daemon *d = userdata;
        if (!d->reaping && worker_submit(d->worker, reap_stragglers, reaped, d) == 0)
                d->reaping = true;
}

int main(int argc, char **argv) {
        enum { OPT_STACK_MAX = 0x100, OPT_LOG_LEVEL };
        static const struct option options[] = {
                { "pid", required_argument, NULL, 'p' },
                { "listen", required_argument, NULL, 'l' },
                { "stack-max", required_argument, NULL, OPT_STACK_MAX },
                { "log-level", required_argument, NULL, OPT_LOG_LEVEL },
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, 'V' },
                {},
        };
        pid_t pids[TARGETS_MAX];
        size_t n_pids = 0;
        const char *listen = "127.0.0.1:6060";
        SnapshotOptions snapshot_options = {};
        HttpLimits http_limits = { .max_seconds = HTTP_MAX_SECONDS_DEFAULT, .max_pending = HTTP_MAX_PENDING_DEFAULT };
        int c, r, level;
        unsigned long long v;

        while ((c = getopt_long(argc, argv, "p:l:hV", options, NULL)) >= 0)
                switch (c) {
                case 'p':
                        if (parse_number(optarg, 1, INT_MAX, &v) < 0) {
                                fprintf(stderr, "cprofd: invalid pid \"%s\": expected a positive process id\n", optarg);
                                return 2;
                        }
                        if (n_pids == TARGETS_MAX) {
                                fprintf(stderr, "cprofd: too many --pid (at most %d)\n", TARGETS_MAX);
                                return 2;
                        }
                        pids[n_pids++] = (pid_t) v;
                        break;
                case 'l':
                        listen = optarg;
                        break;
                case OPT_STACK_MAX:
                        if (parse_number(optarg, 4096, SNAPSHOT_STACK_MAX_LIMIT, &v) < 0) {
                                fprintf(stderr, "cprofd: invalid --stack-max \"%s\": expected %u..%u bytes\n",
                                        optarg, 4096u, SNAPSHOT_STACK_MAX_LIMIT);
                                return 2;
                        }
                        snapshot_options.stack_max = (size_t) v;
                        break;
                case OPT_LOG_LEVEL:
                        if (log_level_from_string(optarg, &level) < 0) {
                                fprintf(stderr, "cprofd: invalid --log-level \"%s\"\n", optarg);
                                return 2;
                        }
                        log_set_max_level(level);
                        break;
                case 'h':
                        usage(stdout);
                        return 0;
                case 'V':
                        printf("cprofd %s\n", CPROFD_VERSION);
                        return 0;
                default:
                        fprintf(stderr, "Try 'cprofd --help'.\n");
                        return 2;
                }
        if (optind < argc) {
                fprintf(stderr, "cprofd: unexpected argument \"%s\"\nTry 'cprofd --help'.\n", argv[optind]);
                return 2;
        }
        if (n_pids == 0) {
                fprintf(stderr, "cprofd: no target: give --pid PID\nTry 'cprofd --help'.\n");
                return 2;
        }

        /* Snapshots sleep on SIGCHLD; writes to closed sockets must not kill us. */
        sigset_t chld;
        sigemptyset(&chld);
        sigaddset(&chld, SIGCHLD);
        pthread_sigmask(SIG_BLOCK, &chld, NULL);
        signal(SIGPIPE, SIG_IGN);

        Daemon d = {};
        metrics_init(&d.metrics);
        d.targets.metrics = &d.metrics;
        d.targets.snapshot_options = snapshot_options;
        r = symbolizer_new(&d.targets.symbolizer);
        if (r < 0) {
                log_error_errno(r, "Failed to set up the symbolizer: %m");
                return 1;
        }
        int ret = 1;
        for (size_t i = 0; i < n_pids; i++) {
                r = targets_add(&d.targets, pids[i]);
                if (r == -ESRCH) {
                        fprintf(stderr, "cprofd: no such process: %d\n", (int) pids[i]);
                        goto finish;
                }
                if (r < 0) {
                        fprintf(stderr, "cprofd: cannot attach to pid %d: %s\n", (int) pids[i], strerror(-r));
                        goto finish;
                }
        }

        /* The worker thread wakes the loop with event_active(): libevent must lock. */
        if (evthread_use_pthreads() < 0) {
                log_error("Failed to set up libevent for threads.");
                goto finish;
        }
        d.base = event_base_new();
        if (!d.base) {
                log_error("Failed to create the event loop.");
                goto finish;
        }
        r = worker_new(d.base, &d.worker);
        if (r < 0) {
                log_error_errno(r, "Failed to start the worker thread: %m");
                goto finish;
        }
        d.service = (Service) { .base = d.base, .worker = d.worker, .targets = &d.targets, .metrics = &d.metrics };
        Backend backend;
        service_backend(&d.service, &backend);
        r = http_server_new(d.base, listen, &backend, &http_limits, &d.server);
        if (r < 0) {
                fprintf(stderr, "cprofd: cannot listen on %s: %s\n", listen, strerror(-r));
                goto finish;
        }
        struct event *sigterm = evsignal_new(d.base, SIGTERM, on_terminate, &d);
        struct event *sigint = evsignal_new(d.base, SIGINT, on_terminate, &d);
        d.service.server = d.server;
        struct event *reaper = event_new(d.base, -1, EV_PERSIST, on_reap_timer, &d);
        struct timeval reap_every = { 0, STRAGGLER_REAP_INTERVAL_MS * 1000 };
        if (!sigterm || !sigint || !reaper || evsignal_add(sigterm, NULL) < 0 || evsignal_add(sigint, NULL) < 0 ||
            event_add(reaper, &reap_every) < 0) {
                log_error("Failed to set up signal handling.");
                goto finish;
        }

        printf("listening on %s\n", http_server_address(d.server));
        fflush(stdout);
        log_info("Serving %zu target(s) on http://%s/debug/pprof/", d.targets.n, http_server_address(d.server));

        if (event_base_dispatch(d.base) < 0)
                log_error("The event loop failed.");
        else
                ret = 0;

        event_free(sigterm);
        event_free(sigint);
        event_free(reaper);
finish:
        /* Let the worker finish what it holds, deliver its results, answer whatever still
         * waits for a delta timer, and only then close the connections. */
        d.worker = worker_free(d.worker);
        if (d.base)
                (void) event_base_loop(d.base, EVLOOP_NONBLOCK);
        service_shutdown(&d.service);
        d.server = http_server_free(d.server);
        if (d.base)
                event_base_free(d.base);
        targets_done(&d.targets);
        symbolizer_free(d.targets.symbolizer);
        metrics_done(&d.metrics);
        return ret;
}
