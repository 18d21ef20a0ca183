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
#include "config-file.h"
#include "durations.h"
#include "metrics.h"
#include "notify.h"
#include "perf.h"
#include "scheduler.h"
#include "server.h"
#include "service.h"
#include "targets.h"
#include "worker.h"

#define TARGETS_MAX 64
#define STRAGGLER_REAP_INTERVAL_MS 250
#define SHUTDOWN_DRAIN_MS 5000          /* for the last replies to reach slow clients */

typedef struct Daemon {
        struct event_base *base;
        Targets targets;
        Metrics metrics;
        Worker *worker;
        Scheduler *scheduler;
        Service service;
        HttpServer *server;
        bool reaping;                   /* a straggler reap is queued on the worker */
} Daemon;

static void usage(FILE *f) {
        fprintf(f,
                "Usage: cprofd TARGET... [OPTIONS]\n"
                "\n"
                "Attach to running native processes and serve their thread dumps and profiles in\n"
                "the formats of Go's net/http/pprof: curl localhost:6060/debug/pprof/goroutine?debug=2,\n"
                "go tool pprof http://localhost:6060/debug/pprof/profile\n"
                "\n"
                "Targets (repeatable; the first live one is the default, every one is also under\n"
                "/pid/PID/debug/pprof/):\n"
                "  -p, --pid PID             a process\n"
                "      --exe PATH            every process running this executable\n"
                "      --comm NAME           every process with this name\n"
                "      --cgroup PATH         the processes of a cgroup (v2) and those below it\n"
                "      --unit NAME.service   the processes of a systemd unit\n"
                "\n"
                "Options:\n"
                "  -l, --listen ADDR         HOST:PORT to listen on (default 127.0.0.1:6060;\n"
                "                            port 0 picks a free port)\n"
                "      --interval DURATION   periodic snapshots (default 10s; 0 turns them off)\n"
                "      --history N|SIZE      snapshots kept per target: a count (default %u)\n"
                "                            or a memory budget such as 64M\n"
                "      --max-targets N       live targets followed at most (default %u)\n"
                "      --stack-max BYTES     stack bytes copied per thread (default %u, max %u)\n"
                "      --cpu-stack-size BYTES  user stack copied per CPU sample (default %u)\n"
                "      --log-level LEVEL     err, warning, notice, info (default) or debug\n"
                "  -h, --help                show this help\n"
                "  -V, --version             show the version\n",
                HISTORY_SNAPSHOTS_DEFAULT, TARGETS_MAX_DEFAULT, SNAPSHOT_STACK_MAX_DEFAULT, SNAPSHOT_STACK_MAX_LIMIT,
                PERF_STACK_BYTES_DEFAULT);
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
        (void) notify_send("STOPPING=1");
        event_base_loopbreak(d->base);
}

/* Reloading the configuration in place is not supported yet: say so instead of dying
 * (SIGHUP's default action) or pretending. */
static void on_hangup(evutil_socket_t sig, short events, void *userdata) {
        log_warning("Received SIGHUP: reloading the configuration is not supported yet; restart cprofd to apply "
                    "changes. Still serving.");
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
        enum { OPT_STACK_MAX = 0x100, OPT_LOG_LEVEL, OPT_EXE, OPT_COMM, OPT_CGROUP, OPT_UNIT, OPT_INTERVAL,
               OPT_HISTORY, OPT_MAX_TARGETS, OPT_CPU_STACK, OPT_CONFIG };
        static const struct option options[] = {
                { "pid", required_argument, NULL, 'p' },
                { "exe", required_argument, NULL, OPT_EXE },
                { "comm", required_argument, NULL, OPT_COMM },
                { "cgroup", required_argument, NULL, OPT_CGROUP },
                { "unit", required_argument, NULL, OPT_UNIT },
                { "interval", required_argument, NULL, OPT_INTERVAL },
                { "history", required_argument, NULL, OPT_HISTORY },
                { "max-targets", required_argument, NULL, OPT_MAX_TARGETS },
                { "cpu-stack-size", required_argument, NULL, OPT_CPU_STACK },
                { "config", required_argument, NULL, OPT_CONFIG },
                { "listen", required_argument, NULL, 'l' },
                { "stack-max", required_argument, NULL, OPT_STACK_MAX },
                { "log-level", required_argument, NULL, OPT_LOG_LEVEL },
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, 'V' },
                {},
        };
        TargetSelector selectors[TARGETS_MAX];
        size_t n_selectors = 0;
        SelectorKind kind;
        Schedule schedule = { .interval_ns = INTERVAL_DEFAULT_NS, .history_snapshots = HISTORY_SNAPSHOTS_DEFAULT,
                              .history_bytes = HISTORY_BYTES_DEFAULT };
        size_t max_targets = TARGETS_MAX_DEFAULT;
        uint32_t cpu_stack_bytes = 0;
        const char *listen = "127.0.0.1:6060";
        SnapshotOptions snapshot_options = {};
        const char *config_path = NULL;
        bool listen_set = false, interval_set = false, history_set = false, max_targets_set = false,
             stack_max_set = false, log_level_set = false;
        _cleanup_(config_free) Config config = {};
        HttpLimits http_limits = { .max_seconds = HTTP_MAX_SECONDS_DEFAULT, .max_pending = HTTP_MAX_PENDING_DEFAULT };
        int c, r, level;
        unsigned long long v;

        /* Usage errors and --help leave before the selectors are handed over. */
#define EXIT_EARLY(status)                                       \
        do {                                                     \
                for (size_t _i = 0; _i < n_selectors; _i++)      \
                        selector_done(&selectors[_i]);           \
                return (status);                                 \
        } while (0)

        while ((c = getopt_long(argc, argv, "p:l:hV", options, NULL)) >= 0)
                switch (c) {
                case 'p':
                        kind = SELECTOR_PID;
                        goto selector;
                case OPT_EXE:
                        kind = SELECTOR_EXE;
                        goto selector;
                case OPT_COMM:
                        kind = SELECTOR_COMM;
                        goto selector;
                case OPT_CGROUP:
                        kind = SELECTOR_CGROUP;
                        goto selector;
                case OPT_UNIT:
                        kind = SELECTOR_UNIT;
                selector:
                        if (n_selectors == TARGETS_MAX) {
                                fprintf(stderr, "cprofd: too many targets given (at most %d)\n", TARGETS_MAX);
                                EXIT_EARLY(2);
                        }
                        r = selector_parse(kind, optarg, &selectors[n_selectors]);
                        if (r < 0) {
                                if (kind == SELECTOR_PID)
                                        fprintf(stderr, "cprofd: invalid pid \"%s\": expected a positive process id\n",
                                                optarg);
                                else
                                        fprintf(stderr, "cprofd: invalid --%s \"%s\": %s\n", selector_kind_to_string(kind),
                                                optarg, strerror(-r));
                                EXIT_EARLY(2);
                        }
                        n_selectors++;
                        break;
                case OPT_INTERVAL:
                        interval_set = true;
                        if (parse_duration(optarg, &schedule.interval_ns) < 0 ||
                            (schedule.interval_ns > 0 && schedule.interval_ns < INTERVAL_MIN_NS)) {
                                fprintf(stderr, "cprofd: invalid --interval \"%s\": expected 0 (off) or a duration "
                                        "from 100ms, like 10s or 1m\n", optarg);
                                EXIT_EARLY(2);
                        }
                        break;
                case OPT_HISTORY:
                        history_set = true;
                        if (parse_history(optarg, &schedule.history_snapshots, &schedule.history_bytes) < 0) {
                                fprintf(stderr, "cprofd: invalid --history \"%s\": expected a number of snapshots "
                                        "(1..%u) or a memory budget like 64M\n", optarg, HISTORY_SNAPSHOTS_MAX);
                                EXIT_EARLY(2);
                        }
                        break;
                case OPT_CPU_STACK:
                        if (parse_number(optarg, 1024, PERF_STACK_BYTES_MAX, &v) < 0 || v % 8 != 0) {
                                fprintf(stderr, "cprofd: invalid --cpu-stack-size \"%s\": expected a multiple of 8 "
                                        "from 1024 to %u bytes\n", optarg, PERF_STACK_BYTES_MAX);
                                EXIT_EARLY(2);
                        }
                        cpu_stack_bytes = (uint32_t) v;
                        break;
                case OPT_MAX_TARGETS:
                        if (parse_number(optarg, 1, 4096, &v) < 0) {
                                fprintf(stderr, "cprofd: invalid --max-targets \"%s\": expected 1..4096\n", optarg);
                                EXIT_EARLY(2);
                        }
                        max_targets = (size_t) v;
                        max_targets_set = true;
                        break;
                case 'l':
                        listen = optarg;
                        listen_set = true;
                        break;
                case OPT_CONFIG:
                        config_path = optarg;
                        break;
                case OPT_STACK_MAX:
                        if (parse_number(optarg, 4096, SNAPSHOT_STACK_MAX_LIMIT, &v) < 0) {
                                fprintf(stderr, "cprofd: invalid --stack-max \"%s\": expected %u..%u bytes\n",
                                        optarg, 4096u, SNAPSHOT_STACK_MAX_LIMIT);
                                EXIT_EARLY(2);
                        }
                        snapshot_options.stack_max = (size_t) v;
                        stack_max_set = true;
                        break;
                case OPT_LOG_LEVEL:
                        if (log_level_from_string(optarg, &level) < 0) {
                                fprintf(stderr, "cprofd: invalid --log-level \"%s\"\n", optarg);
                                EXIT_EARLY(2);
                        }
                        log_set_max_level(level);
                        log_level_set = true;
                        break;
                case 'h':
                        usage(stdout);
                        EXIT_EARLY(0);
                case 'V':
                        printf("cprofd %s\n", CPROFD_VERSION);
                        EXIT_EARLY(0);
                default:
                        fprintf(stderr, "Try 'cprofd --help'.\n");
                        EXIT_EARLY(2);
                }
        if (optind < argc) {
                fprintf(stderr, "cprofd: unexpected argument \"%s\"\nTry 'cprofd --help'.\n", argv[optind]);
                EXIT_EARLY(2);
        }
        if (config_path) {
                char err[512];
                r = config_load(config_path, &config, err, sizeof err);
                if (r < 0) {
                        fprintf(stderr, "cprofd: %s\n", err);
                        EXIT_EARLY(2);
                }
                /* The command line wins over the file, setting by setting; targets given
                 * on the command line replace the file's. */
                if (config.token_file_line || config.listen_mode_line || config.allow_remote_line) {
                        fprintf(stderr, "cprofd: %s:%u: token-file, listen-mode and allow-remote are not "
                                "supported by this version\n", config_path,
                                config.token_file_line ?: config.listen_mode_line ?: config.allow_remote_line);
                        EXIT_EARLY(2);
                }
                if (!listen_set && config.listen_line)
                        listen = config.listen;
                if (!interval_set && config.interval_line)
                        schedule.interval_ns = config.interval_ns;
                if (!history_set && config.history_snapshots_line)
                        schedule.history_snapshots = config.history_snapshots;
                if (!history_set && config.history_bytes_line)
                        schedule.history_bytes = config.history_bytes;
                if (!max_targets_set && config.max_targets_line)
                        max_targets = config.max_targets;
                if (!stack_max_set && config.stack_max_line)
                        snapshot_options.stack_max = config.stack_max;
                if (!log_level_set && config.log_level_line)
                        log_set_max_level(config.log_level);
                if (config.max_seconds_line)
                        http_limits.max_seconds = config.max_seconds;
                if (config.max_requests_line)
                        http_limits.max_pending = config.max_requests;
                if (n_selectors == 0) {
                        for (size_t i = 0; i < config.n_selectors && n_selectors < TARGETS_MAX; i++) {
                                selectors[n_selectors++] = config.selectors[i];
                                config.selectors[i] = (TargetSelector) {};      /* moved */
                        }
                }
        }
        if (n_selectors == 0) {
                fprintf(stderr, "cprofd: no target: give --pid PID (or --exe, --comm, --cgroup, --unit)\n"
                                "Try 'cprofd --help'.\n");
                EXIT_EARLY(2);
        }

#undef EXIT_EARLY

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
        d.targets.max = max_targets;
        d.targets.history_limits = history_limits_default;
        d.targets.history_limits.max_snapshots = schedule.history_snapshots;
        d.targets.history_limits.max_bytes = (size_t) schedule.history_bytes;
        d.targets.selectors = malloc(n_selectors * sizeof *selectors);
        if (!d.targets.selectors) {
                log_error("Out of memory.");
                goto finish;
        }
        memcpy(d.targets.selectors, selectors, n_selectors * sizeof *selectors);
        d.targets.n_selectors = n_selectors;
        for (size_t i = 0; i < n_selectors; i++) {
                const TargetSelector *sel = &selectors[i];
                if (sel->kind != SELECTOR_PID) {
                        d.targets.follow = true;
                        if (sel->kind == SELECTOR_UNIT && !sel->cgroup)
                                log_notice("Unit %s has no cgroup yet: following it once it starts.", sel->value);
                        continue;
                }
                r = targets_add(&d.targets, sel->pid, 0, i);
                if (r == -ESRCH) {
                        fprintf(stderr, "cprofd: no such process: %d\n", (int) sel->pid);
                        goto finish;
                }
                if (r < 0 && r != -EEXIST) {
                        fprintf(stderr, "cprofd: cannot attach to pid %d: %s\n", (int) sel->pid, strerror(-r));
                        goto finish;
                }
        }
        if (d.targets.follow) {
                DiscoveredProcess *found;
                size_t n_found;
                r = discover_scan(d.targets.selectors, d.targets.n_selectors, &found, &n_found);
                if (r < 0) {
                        log_error_errno(r, "Failed to look for the processes to follow: %m");
                        goto finish;
                }
                (void) targets_merge(&d.targets, found, n_found, now_monotonic_ns());
                discovered_free(found, n_found);
                log_info("Following %zu process(es) now; looking for more every %s.", d.targets.n,
                         schedule.interval_ns ? "interval" : "request");
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
        d.service.cpu.stack_bytes = cpu_stack_bytes;
        Backend backend;
        service_backend(&d.service, &backend);
        r = http_server_new(d.base, listen, &backend, &http_limits, &d.server);
        if (r < 0) {
                fprintf(stderr, "cprofd: cannot listen on %s: %s\n", listen, strerror(-r));
                goto finish;
        }
        struct event *sigterm = evsignal_new(d.base, SIGTERM, on_terminate, &d);
        struct event *sigint = evsignal_new(d.base, SIGINT, on_terminate, &d);
        struct event *sighup = evsignal_new(d.base, SIGHUP, on_hangup, &d);
        d.service.server = d.server;
        r = scheduler_new(d.base, d.worker, &d.targets, &schedule, &d.scheduler);
        if (r < 0) {
                log_error_errno(r, "Failed to start the periodic snapshots: %m");
                goto finish;
        }
        struct event *reaper = event_new(d.base, -1, EV_PERSIST, on_reap_timer, &d);
        struct timeval reap_every = { 0, STRAGGLER_REAP_INTERVAL_MS * 1000 };
        if (!sigterm || !sigint || !sighup || !reaper || evsignal_add(sigterm, NULL) < 0 ||
            evsignal_add(sigint, NULL) < 0 || evsignal_add(sighup, NULL) < 0 ||
            event_add(reaper, &reap_every) < 0) {
                log_error("Failed to set up signal handling.");
                goto finish;
        }

        printf("listening on %s\n", http_server_address(d.server));
        fflush(stdout);
        log_info("Serving %zu target(s) on http://%s/debug/pprof/", d.targets.n, http_server_address(d.server));
        r = notify_sendf("READY=1\nSTATUS=Serving %zu target(s) on http://%s/debug/pprof/", d.targets.n,
                         http_server_address(d.server));
        if (r < 0)
                log_warning_errno(r, "Failed to tell the service manager that we are ready: %m");

        if (event_base_dispatch(d.base) < 0)
                log_error("The event loop failed.");
        else
                ret = 0;

        event_free(sigterm);
        event_free(sigint);
        event_free(sighup);
        event_free(reaper);
finish:
        /* No new work; let the worker finish what it holds and deliver its results, answer
         * whatever still waits on a timer, and only then close the connections. */
        scheduler_stop(d.scheduler);
        worker_stop(d.worker);
        if (d.base)
                (void) event_base_loop(d.base, EVLOOP_NONBLOCK);
        service_shutdown(&d.service);
        /* The answers are only queued so far: write them out before the connections go. */
        http_server_drain(d.server, SHUTDOWN_DRAIN_MS);
        d.server = http_server_free(d.server);
        d.scheduler = scheduler_free(d.scheduler);
        d.worker = worker_free(d.worker);
        if (d.base)
                event_base_free(d.base);
        targets_done(&d.targets);
        symbolizer_free(d.targets.symbolizer);
        metrics_done(&d.metrics);
        return ret;
}
