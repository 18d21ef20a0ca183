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

#include "config.h"
#include "log.h"
#include "macro.h"
#include "metrics.h"
#include "server.h"
#include "targets.h"

#define TARGETS_MAX 64
#define STRAGGLER_REAP_INTERVAL_MS 250

typedef struct Daemon {
        struct event_base *base;
        Targets targets;
        Metrics metrics;
        HttpServer *server;
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

static size_t backend_list_targets(void *userdata, TargetSummary *ret, size_t max) {
        Daemon *d = userdata;
        for (size_t i = 0; i < d->targets.n && i < max; i++) {
                Target *t = &d->targets.items[i];
                TargetSummary *s = &ret[i];
                *s = (TargetSummary) { .pid = t->pid, .exited = target_check_exited(t), .threads = -1 };
                snprintf(s->comm, sizeof s->comm, "%s", t->comm);
                pid_t *tids;
                size_t n;
                if (!s->exited && procfs_list_threads(t->pid, &tids, &n) == 0) {
                        s->threads = (long) n;
                        free(tids);
                }
        }
        return d->targets.n;
}

static void backend_goroutine(void *userdata, pid_t pid, int debug, Reply *reply) {
        Daemon *d = userdata;
        Target *target = targets_find(&d->targets, pid);
        if (!target) {
                reply_error(reply, 404, "unknown target pid %d", (int) pid);
                return;
        }
        ThreadDump dump;
        pid_t tracer = 0;
        int r = target_thread_dump(&d->targets, target, &dump, &tracer);
        if (r == -ESRCH) {
                reply_error(reply, 410, "target pid %d has exited", (int) pid);
                return;
        }
        if (r == -EPERM && tracer > 0) {
                char comm[THREAD_NAME_MAX] = "?";
                (void) procfs_read_comm(tracer, comm);
                log_warning("pid %d is traced by pid %d (%s); no thread could be stopped", (int) pid, (int) tracer,
                            comm);
                reply_error(reply, 503,
                            "pid %d is traced by process %d (%s): cprofd can stop its threads once that tracer detaches",
                            (int) pid, (int) tracer, comm);
                return;
        }
        if (r < 0) {
                log_warning_errno(r, "Failed to take a thread dump of pid %d: %m", (int) pid);
                reply_error(reply, 503, "cannot take a thread dump of pid %d: %s", (int) pid, strerror(-r));
                return;
        }
        if (debug == 2)
                thread_dump_write_debug2(&dump, &reply->body);
        else
                thread_dump_write_debug1(&dump, &reply->body);
        if (dump.partial) {
                size_t missing = 0;
                for (size_t i = 0; i < dump.n_threads; i++)
                        missing += dump.threads[i].error != 0;
                buf_printf(&reply->body, "%s# partial: %zu of %zu threads not captured%s\n", debug == 2 ? "\n" : "",
                           missing, dump.n_threads, dump.exited ? " (the target exited during the snapshot)" : "");
        }
        thread_dump_done(&dump);
}

static void backend_cmdline(void *userdata, pid_t pid, Reply *reply) {
        Daemon *d = userdata;
        Target *target = targets_find(&d->targets, pid);
        if (!target) {
                reply_error(reply, 404, "unknown target pid %d", (int) pid);
                return;
        }
        char *text;
        size_t len;
        int r = target_check_exited(target) ? -ESRCH : procfs_read_cmdline(pid, &text, &len);
        if (r == -ESRCH) {
                reply_error(reply, 410, "target pid %d has exited", (int) pid);
                return;
        }
        if (r < 0) {
                reply_error(reply, 503, "cannot read the command line of pid %d: %s", (int) pid, strerror(-r));
                return;
        }
        buf_append(&reply->body, text, len);
        free(text);
}

static void backend_metrics(void *userdata, Buf *out) {
        Daemon *d = userdata;
        Metrics *m = &d->metrics;
        buf_printf(out,
                   "# HELP cprofd_snapshots_total Thread snapshots taken.\n"
                   "# TYPE cprofd_snapshots_total counter\n"
                   "cprofd_snapshots_total %llu\n"
                   "# HELP cprofd_snapshot_errors_total Snapshots that failed as a whole.\n"
                   "# TYPE cprofd_snapshot_errors_total counter\n"
                   "cprofd_snapshot_errors_total %llu\n"
                   "# HELP cprofd_threads_captured_total Threads stopped and copied.\n"
                   "# TYPE cprofd_threads_captured_total counter\n"
                   "cprofd_threads_captured_total %llu\n"
                   "# HELP cprofd_threads_not_captured_total Threads listed but not captured.\n"
                   "# TYPE cprofd_threads_not_captured_total counter\n"
                   "cprofd_threads_not_captured_total %llu\n",
                   (unsigned long long) m->snapshots_total, (unsigned long long) m->snapshot_errors_total,
                   (unsigned long long) m->threads_captured_total,
                   (unsigned long long) m->threads_not_captured_total);
        histogram_write(&m->snapshot_duration, "cprofd_snapshot_duration_seconds",
                        "Time to snapshot every thread of a target (stop, copy, release).", out);
        histogram_write(&m->thread_pause, "cprofd_thread_pause_seconds",
                        "How long each thread was held stopped (interrupt to detach).", out);
        buf_puts(out, "# HELP cprofd_target_threads Threads of the target at its last snapshot.\n"
                      "# TYPE cprofd_target_threads gauge\n");
        for (size_t i = 0; i < d->targets.n; i++)
                buf_printf(out, "cprofd_target_threads{pid=\"%d\"} %ld\n", (int) d->targets.items[i].pid,
                           MAX(d->targets.items[i].last_threads, 0L));
        buf_puts(out, "# HELP cprofd_target_up Whether the target process is alive.\n"
                      "# TYPE cprofd_target_up gauge\n");
        for (size_t i = 0; i < d->targets.n; i++)
                buf_printf(out, "cprofd_target_up{pid=\"%d\"} %d\n", (int) d->targets.items[i].pid,
                           !target_check_exited(&d->targets.items[i]));
        SymbolizerStats st;
        symbolizer_get_stats(d->targets.symbolizer, &st);
        buf_printf(out,
                   "# HELP cprofd_symbolizer_modules Distinct modules (by build-id) in the cache.\n"
                   "# TYPE cprofd_symbolizer_modules gauge\n"
                   "cprofd_symbolizer_modules %llu\n"
                   "# HELP cprofd_symbolizer_locations Distinct symbolized locations in the cache.\n"
                   "# TYPE cprofd_symbolizer_locations gauge\n"
                   "cprofd_symbolizer_locations %llu\n",
                   (unsigned long long) st.modules, (unsigned long long) st.locations);
}

static void on_terminate(evutil_socket_t sig, short events, void *userdata) {
        Daemon *d = userdata;
        log_info("Received %s, exiting.", strsignal((int) sig));
        event_base_loopbreak(d->base);
}

static void on_reap_stragglers(evutil_socket_t fd, short events, void *userdata) {
        size_t pending = snapshot_reap_stragglers();
        if (pending > 0)
                log_warning("%zu thread(s) did not stop in time and are still waiting to be released", pending);
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

        d.base = event_base_new();
        if (!d.base) {
                log_error("Failed to create the event loop.");
                goto finish;
        }
        Backend backend = {
                .userdata = &d,
                .list_targets = backend_list_targets,
                .goroutine = backend_goroutine,
                .cmdline = backend_cmdline,
                .metrics = backend_metrics,
        };
        r = http_server_new(d.base, listen, &backend, &d.server);
        if (r < 0) {
                fprintf(stderr, "cprofd: cannot listen on %s: %s\n", listen, strerror(-r));
                goto finish;
        }
        struct event *sigterm = evsignal_new(d.base, SIGTERM, on_terminate, &d);
        struct event *sigint = evsignal_new(d.base, SIGINT, on_terminate, &d);
        struct event *reaper = event_new(d.base, -1, EV_PERSIST, on_reap_stragglers, &d);
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
        d.server = http_server_free(d.server);
        if (d.base)
                event_base_free(d.base);
        targets_done(&d.targets);
        symbolizer_free(d.targets.symbolizer);
        metrics_done(&d.metrics);
        return ret;
}
