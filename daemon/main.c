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
#include "heap-tracker.h"
#include "service.h"
#include "table.h"
#include "targets.h"
#include "worker.h"

#define TARGETS_MAX 64
#define STRAGGLER_REAP_INTERVAL_MS 250
#define SHUTDOWN_DRAIN_MS 5000          /* for the last replies to reach slow clients */

/* What the command line and the configuration file decide together. The pointers point
 * into argv, into Daemon.config, or at Daemon.listen. */
typedef struct Settings {
        const char *listen;
        mode_t listen_mode;
        const char *token_file;
        bool allow_remote;
        Schedule schedule;
        size_t max_targets;
        size_t stack_max;               /* 0: the snapshot default */
        int log_level;
        HttpLimits limits;
} Settings;

/* Which settings the command line gave: those win over the file, at start and at every
 * reload. */
typedef struct CommandLine {
        bool listen, listen_mode, token_file, allow_remote, interval, history, max_targets, stack_max,
             log_level, max_seconds, max_requests, max_profiles, max_connections, header_timeout, selectors;
} CommandLine;

typedef struct Daemon {
        struct event_base *base;
        Targets targets;
        Metrics metrics;
        Worker *worker;
        Scheduler *scheduler;
        Service service;
        HttpServer *server;
        bool reaping;                   /* a straggler reap is queued on the worker */

        const char *config_path;        /* NULL: started without --config */
        Config config;                  /* the file as last loaded */
        Settings cli;                   /* the command line, defaults where it said nothing */
        CommandLine set;
        Settings settings;              /* in force */
        char *listen;                   /* the address listened on, for the whole run */
        bool reloading;                 /* a reload waits for the worker */
        bool reload_again;              /* SIGHUP came meanwhile */
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
                "  -l, --listen ADDR         HOST:PORT or unix:/PATH to listen on (default\n"
                "                            127.0.0.1:6060; port 0 picks a free port)\n"
                "      --listen-mode MODE    permissions of a unix socket, octal (default 0600)\n"
                "      --token-file FILE     require \"Authorization: Bearer TOKEN\" on every request,\n"
                "                            TOKEN the first line of FILE (mode 0600 or stricter)\n"
                "      --allow-remote        listen on an address that is not loopback without a\n"
                "                            token (refused otherwise)\n"
                "      --max-requests N      requests in progress at once (default %u)\n"
                "      --max-profiles N      CPU and wall profiles running at once (default %u)\n"
                "      --max-connections N   client connections open at once (default %u)\n"
                "      --max-seconds N       profiles' seconds=N must stay below N (default %u)\n"
                "      --header-timeout DURATION  a request must arrive whole within this long of its\n"
                "                            connection opening or the previous reply (default %us)\n"
                "      --interval DURATION   periodic snapshots (default 10s; 0 turns them off)\n"
                "      --history N|SIZE      snapshots kept per target: a count (default %u)\n"
                "                            or a memory budget such as 64M\n"
                "      --max-targets N       live targets followed at most (default %u)\n"
                "      --stack-max BYTES     stack bytes copied per thread (default %u, max %u)\n"
                "      --cpu-stack-size BYTES  user stack copied per CPU sample (default %u)\n"
                "      --no-wait-decoding    do not read what blocked threads wait on (lock\n"
                "                            objects, fds, sleeps): bare syscall names\n"
                "      --heap                track the heap of every target from the start (else\n"
                "                            from the first heap or allocs request)\n"
                "      --heap-rate BYTES     mean bytes between heap samples (default %u)\n"
                "      --heap-agent PATH     the agent library cprofd loads into targets\n"
                "      --heap-uprobes        track the heap with uprobes instead of the agent\n"
                "                            (every call traps: for programs that allocate little)\n"
                "      --block               track blocking (the block profile) of every target from\n"
                "                            the start (else from the first block request)\n"
                "      --mutex               the same for lock holders (the mutex profile)\n"
                "      --threadcreate        the same for thread creations (threadcreate)\n"
                "      --block-rate NS       record every wait of NS or more, shorter ones with\n"
                "                            probability wait/NS, scaled (default %u; 1: all)\n"
                "      --mutex-fraction N    record one lock wake-up in N, scaled (default %u)\n"
                "      --trace-events-max N  events a trace holds at most (default 1000000);\n"
                "                            past it the file is marked truncated\n"
                "      --sched-stack-size BYTES  user stack copied per block or mutex event\n"
                "                            (default %u)\n"
                "      --log-level LEVEL     err, warning, notice, info (default) or debug\n"
                "      --config FILE         settings from FILE; the command line wins; SIGHUP\n"
                "                            reloads it\n"
                "      --list-profiles       print the profiles served, one per line (tab-separated:\n"
                "                            name, kind, deltas, json, source, description, count)\n"
                "  -h, --help                show this help\n"
                "  -V, --version             show the version\n",
                HTTP_MAX_PENDING_DEFAULT, HTTP_MAX_PROFILES_DEFAULT, HTTP_MAX_CONNECTIONS_DEFAULT,
                HTTP_MAX_SECONDS_DEFAULT, HTTP_HEADER_TIMEOUT_DEFAULT, HISTORY_SNAPSHOTS_DEFAULT, TARGETS_MAX_DEFAULT,
                SNAPSHOT_STACK_MAX_DEFAULT, SNAPSHOT_STACK_MAX_LIMIT, PERF_STACK_BYTES_DEFAULT, HEAP_RATE_DEFAULT,
                SCHED_BLOCK_RATE_DEFAULT, SCHED_MUTEX_FRACTION_DEFAULT, SCHED_STACK_BYTES_DEFAULT);
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

/* The command line's settings, then the file's where the command line said nothing. */
static void settings_merge(const Settings *cli, const CommandLine *set, const Config *c, Settings *ret) {
        *ret = *cli;
        if (!c)
                return;
        if (!set->listen && c->listen_line)
                ret->listen = c->listen;
        if (!set->listen_mode && c->listen_mode_line)
                ret->listen_mode = c->listen_mode;
        if (!set->token_file && c->token_file_line)
                ret->token_file = c->token_file;
        if (!set->allow_remote && c->allow_remote_line)
                ret->allow_remote = c->allow_remote;
        if (!set->interval && c->interval_line)
                ret->schedule.interval_ns = c->interval_ns;
        if (!set->history && c->history_snapshots_line)
                ret->schedule.history_snapshots = c->history_snapshots;
        if (!set->history && c->history_bytes_line)
                ret->schedule.history_bytes = c->history_bytes;
        if (!set->max_targets && c->max_targets_line)
                ret->max_targets = c->max_targets;
        if (!set->stack_max && c->stack_max_line)
                ret->stack_max = c->stack_max;
        if (!set->log_level && c->log_level_line)
                ret->log_level = c->log_level;
        if (!set->max_seconds && c->max_seconds_line)
                ret->limits.max_seconds = c->max_seconds;
        if (!set->max_requests && c->max_requests_line)
                ret->limits.max_pending = c->max_requests;
        if (!set->max_profiles && c->max_profiles_line)
                ret->limits.max_profiles = c->max_profiles;
        if (!set->max_connections && c->max_connections_line)
                ret->limits.max_connections = c->max_connections;
        if (!set->header_timeout && c->header_timeout_line)
                ret->limits.header_timeout_sec = c->header_timeout_sec;
}

/* Listening beyond this host without a token must be asked for. 0, or -EPERM with a
 * one-line reason in ERR. An unparsable address passes: binding it reports that. */
static int check_remote(const Settings *s, bool have_token, char *err, size_t size) {
        if (have_token || s->allow_remote || http_listen_is_local(s->listen) != 0)
                return 0;
        snprintf(err, size, "refusing to listen on %s, which is not a loopback address, without a token: give "
                 "--token-file FILE (token-file = FILE), or --allow-remote (allow-remote = yes) to serve "
                 "anyone who can connect", s->listen);
        return -EPERM;
}

static bool streq(const char *a, const char *b) {
        return strcmp(a, b) == 0;
}

static bool selector_same(const TargetSelector *a, const TargetSelector *b) {
        return a->kind == b->kind && streq(a->value, b->value);
}

/* ---- SIGHUP: reload the configuration file ---- */

/* What a reload changes that the worker reads: swapped in on the worker, between jobs. */
typedef struct Reload {
        Daemon *d;
        TargetSelector *selectors;      /* new ones to swap in; NULL: unchanged */
        size_t n_selectors;
        HistoryLimits history_limits;
        SnapshotOptions snapshot_options;
        Target **targets;               /* referenced: their histories get the new bounds */
        size_t n_targets;
        size_t n_dropped;               /* the first ones: gone from the configuration */
} Reload;

static void reload_free(Reload *rl) {
        for (size_t i = 0; i < rl->n_selectors; i++)
                selector_done(&rl->selectors[i]);
        free(rl->selectors);
        for (size_t i = 0; i < rl->n_targets; i++)
                target_unref(rl->targets[i]);
        free(rl->targets);
        free(rl);
}

/* [worker] */
static void reload_job(void *userdata) {
        Reload *rl = userdata;
        Targets *t = &rl->d->targets;

        if (rl->selectors) {
                TargetSelector *old = t->selectors;
                size_t n_old = t->n_selectors;
                t->selectors = rl->selectors;
                t->n_selectors = rl->n_selectors;
                rl->selectors = old;    /* freed with RL */
                rl->n_selectors = n_old;
        }
        t->history_limits = rl->history_limits;
        t->snapshot_options = rl->snapshot_options;
        /* A heap agent in a target dropped alive is stopped here, by a borrowed thread:
         * ptrace work is the worker's, never the event loop's. */
        for (size_t i = 0; i < rl->n_dropped; i++)
                rl->targets[i]->heap = heap_tracker_stop(rl->targets[i]->heap);
        for (size_t i = 0; i < rl->n_targets; i++)
                if (rl->targets[i]->history)
                        history_set_bounds(rl->targets[i]->history, rl->history_limits.max_snapshots,
                                           rl->history_limits.max_bytes);
}

static void reload(Daemon *d);

static void reload_done(void *userdata) {
        Reload *rl = userdata;
        Daemon *d = rl->d;

        reload_free(rl);
        d->reloading = false;
        (void) notify_sendf("READY=1\nSTATUS=Serving %zu target(s) on %s", d->targets.n,
                            http_server_address(d->server));
        if (d->reload_again) {
                d->reload_again = false;
                reload(d);
        }
}

/* [loop] Brings the targets in line with SELECTORS (moved into RL): targets found by a
 * selector that stays keep their history and are not attached again; those of a
 * selector that went are dropped (handed to RL, whose job stops their heap tracking); new --pid targets are attached now, other new
 * selectors at the next discovery. */
static void reload_targets(Daemon *d, Reload *rl, TargetSelector *selectors, size_t n) {
        Targets *t = &d->targets;
        size_t kept = 0;

        for (size_t i = 0; i < t->n; i++) {
                Target *x = t->items[i];
                size_t j = 0;
                while (j < n && !(x->selector < t->n_selectors && selector_same(&t->selectors[x->selector], &selectors[j])))
                        j++;
                if (j == n) {
                        log_info("No longer serving pid %d (%s): its selector is gone from the configuration.",
                                 (int) x->pid, x->comm);
                        rl->targets[rl->n_targets++] = x;       /* our reference, let go after the job */
                        rl->n_dropped++;
                        continue;
                }
                x->selector = j;
                t->items[kept++] = x;
        }
        t->n = kept;
        t->generation++;        /* discovery results of the old selectors are dropped */
        t->follow = false;
        for (size_t j = 0; j < n; j++) {
                bool known = false;
                for (size_t i = 0; i < t->n_selectors && !known; i++)
                        known = selector_same(&t->selectors[i], &selectors[j]);
                if (selectors[j].kind != SELECTOR_PID) {
                        t->follow = true;
                        if (!known)
                                log_info("Now following --%s %s.", selector_kind_to_string(selectors[j].kind),
                                         selectors[j].value);
                        continue;
                }
                if (known)
                        continue;
                int r = targets_add(t, selectors[j].pid, 0, j);
                if (r == 0)
                        log_info("Now serving pid %d.", (int) selectors[j].pid);
                else if (r != -EEXIST)
                        log_warning_errno(r, "Cannot attach to pid %d named in %s: %m", (int) selectors[j].pid,
                                          d->config_path);
        }
        rl->selectors = selectors;
        rl->n_selectors = n;
}

static void reload(Daemon *d) {
        _cleanup_(config_free) Config config = {};
        _cleanup_free_ char *token = NULL;
        char err[1024];
        Settings s;
        int r;

        (void) notify_send("RELOADING=1");
        log_info("Reloading %s.", d->config_path);
        r = config_load(d->config_path, &config, err, sizeof err);
        if (r < 0) {
                log_error("Failed to reload the configuration, keeping the running one: %s", err);
                goto ready;
        }
        settings_merge(&d->cli, &d->set, &config, &s);
        if (s.token_file) {
                r = token_file_read(s.token_file, &token, err, sizeof err);
                if (r < 0) {
                        log_error("Failed to reload the configuration, keeping the running one: %s", err);
                        goto ready;
                }
        }
        if (!streq(s.listen, d->settings.listen) || s.listen_mode != d->settings.listen_mode)
                log_warning("The listening address or socket mode changed in %s: that takes a restart of cprofd; "
                            "still listening on %s.", d->config_path, http_server_address(d->server));
        s.listen = d->settings.listen;
        s.listen_mode = d->settings.listen_mode;
        r = check_remote(&s, token, err, sizeof err);
        if (r < 0) {
                log_error("Failed to reload the configuration, keeping the running one: %s", err);
                goto ready;
        }

        Reload *rl = calloc(1, sizeof *rl);
        if (!rl) {
                log_error("Failed to reload the configuration, keeping the running one: out of memory");
                goto ready;
        }
        rl->d = d;
        /* Room for the targets now and the pids the file may add. */
        rl->targets = calloc(d->targets.n + config.n_selectors + 1, sizeof *rl->targets);
        if (!rl->targets) {
                free(rl);
                log_error("Failed to reload the configuration, keeping the running one: out of memory");
                goto ready;
        }
        r = http_server_set_token(d->server, token);
        if (r < 0) {
                free(rl->targets);
                free(rl);
                log_error_errno(r, "Failed to reload the configuration, keeping the running one: the token: %m");
                goto ready;
        }

        /* From here on, nothing fails: the new configuration is the one in force. */
        log_set_max_level(s.log_level);
        http_server_set_limits(d->server, &s.limits);
        d->targets.max = s.max_targets;
        if (!d->set.selectors) {
                TargetSelector *selectors = config.selectors;
                size_t n = config.n_selectors;
                config.selectors = NULL;
                config.n_selectors = 0;
                reload_targets(d, rl, selectors, n);
        }
        rl->history_limits = d->targets.history_limits;
        rl->history_limits.max_snapshots = s.schedule.history_snapshots;
        rl->history_limits.max_bytes = (size_t) s.schedule.history_bytes;
        rl->snapshot_options = d->targets.snapshot_options;
        rl->snapshot_options.stack_max = s.stack_max;
        for (size_t i = 0; i < d->targets.n; i++)
                rl->targets[rl->n_targets++] = target_ref(d->targets.items[i]);
        r = scheduler_set_schedule(d->scheduler, &s.schedule);
        if (r < 0)
                log_warning_errno(r, "Failed to change the snapshot interval: %m");
        config_free(&d->config);
        d->config = config;
        config = (Config) {};
        s.token_file = NULL;            /* read already; it pointed into the old file */
        d->settings = s;
        log_info("Reloaded %s: %zu target(s), %s.", d->config_path, d->targets.n,
                 token ? "a token is required" : "no token required");

        if (worker_submit(d->worker, reload_job, reload_done, rl) < 0) {
                reload_free(rl);
                goto ready;
        }
        d->reloading = true;
        return;

ready:
        (void) notify_sendf("READY=1\nSTATUS=Serving %zu target(s) on %s", d->targets.n,
                            http_server_address(d->server));
}

static void on_hangup(evutil_socket_t sig, short events, void *userdata) {
        Daemon *d = userdata;

        if (!d->config_path) {
                log_warning("Received SIGHUP, but cprofd was started without --config: nothing to reload.");
                return;
        }
        if (d->reloading) {
                d->reload_again = true;
                return;
        }
        reload(d);
}

int main(int argc, char **argv) {
        enum { OPT_STACK_MAX = 0x100, OPT_LOG_LEVEL, OPT_EXE, OPT_COMM, OPT_CGROUP, OPT_UNIT, OPT_INTERVAL,
               OPT_HISTORY, OPT_MAX_TARGETS, OPT_CPU_STACK, OPT_CONFIG, OPT_LISTEN_MODE, OPT_TOKEN_FILE,
               OPT_ALLOW_REMOTE, OPT_MAX_REQUESTS, OPT_MAX_PROFILES, OPT_MAX_CONNECTIONS, OPT_MAX_SECONDS,
               OPT_HEADER_TIMEOUT, OPT_HEAP, OPT_HEAP_RATE, OPT_HEAP_AGENT, OPT_HEAP_UPROBES,
               OPT_NO_WAIT_DECODING, OPT_LIST_PROFILES, OPT_BLOCK, OPT_MUTEX, OPT_THREADCREATE, OPT_BLOCK_RATE,
               OPT_MUTEX_FRACTION, OPT_SCHED_STACK, OPT_TRACE_EVENTS_MAX };
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
                { "no-wait-decoding", no_argument, NULL, OPT_NO_WAIT_DECODING },
                { "heap", no_argument, NULL, OPT_HEAP },
                { "heap-rate", required_argument, NULL, OPT_HEAP_RATE },
                { "heap-agent", required_argument, NULL, OPT_HEAP_AGENT },
                { "heap-uprobes", no_argument, NULL, OPT_HEAP_UPROBES },
                { "block", no_argument, NULL, OPT_BLOCK },
                { "mutex", no_argument, NULL, OPT_MUTEX },
                { "threadcreate", no_argument, NULL, OPT_THREADCREATE },
                { "block-rate", required_argument, NULL, OPT_BLOCK_RATE },
                { "mutex-fraction", required_argument, NULL, OPT_MUTEX_FRACTION },
                { "sched-stack-size", required_argument, NULL, OPT_SCHED_STACK },
                { "trace-events-max", required_argument, NULL, OPT_TRACE_EVENTS_MAX },
                { "config", required_argument, NULL, OPT_CONFIG },
                { "listen", required_argument, NULL, 'l' },
                { "listen-mode", required_argument, NULL, OPT_LISTEN_MODE },
                { "token-file", required_argument, NULL, OPT_TOKEN_FILE },
                { "allow-remote", no_argument, NULL, OPT_ALLOW_REMOTE },
                { "max-requests", required_argument, NULL, OPT_MAX_REQUESTS },
                { "max-profiles", required_argument, NULL, OPT_MAX_PROFILES },
                { "max-connections", required_argument, NULL, OPT_MAX_CONNECTIONS },
                { "max-seconds", required_argument, NULL, OPT_MAX_SECONDS },
                { "header-timeout", required_argument, NULL, OPT_HEADER_TIMEOUT },
                { "stack-max", required_argument, NULL, OPT_STACK_MAX },
                { "log-level", required_argument, NULL, OPT_LOG_LEVEL },
                { "list-profiles", no_argument, NULL, OPT_LIST_PROFILES },
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, 'V' },
                {},
        };
        TargetSelector selectors[TARGETS_MAX];
        size_t n_selectors = 0;
        SelectorKind kind;
        uint32_t cpu_stack_bytes = 0;
        size_t trace_events_max = 0;
        HeapOptions heap = { .rate = HEAP_RATE_DEFAULT };
        SchedService sched = { .options = { .block_rate_ns = SCHED_BLOCK_RATE_DEFAULT,
                                            .mutex_fraction = SCHED_MUTEX_FRACTION_DEFAULT,
                                            .stack_bytes = SCHED_STACK_BYTES_DEFAULT } };
        Daemon d = {
                .cli = {
                        .listen = "127.0.0.1:6060",
                        .listen_mode = 0600,
                        .schedule = { .interval_ns = INTERVAL_DEFAULT_NS,
                                      .history_snapshots = HISTORY_SNAPSHOTS_DEFAULT,
                                      .history_bytes = HISTORY_BYTES_DEFAULT },
                        .max_targets = TARGETS_MAX_DEFAULT,
                        .log_level = log_get_max_level(),
                        .limits = { .max_seconds = HTTP_MAX_SECONDS_DEFAULT, .max_pending = HTTP_MAX_PENDING_DEFAULT,
                                    .max_profiles = HTTP_MAX_PROFILES_DEFAULT,
                                    .max_connections = HTTP_MAX_CONNECTIONS_DEFAULT,
                                    .header_timeout_sec = HTTP_HEADER_TIMEOUT_DEFAULT },
                },
        };
        Settings *cli = &d.cli;
        CommandLine *set = &d.set;
        _cleanup_free_ char *token = NULL;
        char err[1024];
        int c, r, level;
        unsigned long long v;
        uint64_t ns;

        /* Usage errors and --help leave before the selectors are handed over. */
#define EXIT_EARLY(status)                                       \
        do {                                                     \
                for (size_t _i = 0; _i < n_selectors; _i++)      \
                        selector_done(&selectors[_i]);           \
                config_free(&d.config);                          \
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
                        set->selectors = true;
                        break;
                case OPT_INTERVAL:
                        set->interval = true;
                        if (parse_duration(optarg, &cli->schedule.interval_ns) < 0 ||
                            (cli->schedule.interval_ns > 0 && cli->schedule.interval_ns < INTERVAL_MIN_NS)) {
                                fprintf(stderr, "cprofd: invalid --interval \"%s\": expected 0 (off) or a duration "
                                        "from 100ms, like 10s or 1m\n", optarg);
                                EXIT_EARLY(2);
                        }
                        break;
                case OPT_HISTORY:
                        set->history = true;
                        if (parse_history(optarg, &cli->schedule.history_snapshots, &cli->schedule.history_bytes) < 0) {
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
                case OPT_HEAP:
                        heap.at_attach = true;
                        break;
                case OPT_NO_WAIT_DECODING:
                        d.targets.no_wait_decoding = true;
                        break;
                case OPT_HEAP_RATE:
                        if (parse_number(optarg, 1, 1ull << 40, &v) < 0) {
                                fprintf(stderr, "cprofd: invalid --heap-rate \"%s\": expected bytes from 1 to "
                                        "2^40\n", optarg);
                                EXIT_EARLY(2);
                        }
                        heap.rate = v;
                        break;
                case OPT_HEAP_UPROBES:
                        heap.uprobes = true;
                        break;
                case OPT_BLOCK:
                        sched.at_attach[SCHED_BLOCK] = true;
                        break;
                case OPT_MUTEX:
                        sched.at_attach[SCHED_MUTEX] = true;
                        break;
                case OPT_THREADCREATE:
                        sched.at_attach[SCHED_THREADCREATE] = true;
                        break;
                case OPT_BLOCK_RATE:
                        if (parse_number(optarg, 1, 60 * NSEC_PER_SEC, &v) < 0) {
                                fprintf(stderr, "cprofd: invalid --block-rate \"%s\": expected nanoseconds from 1 "
                                        "to 60000000000\n", optarg);
                                EXIT_EARLY(2);
                        }
                        sched.options.block_rate_ns = v;
                        break;
                case OPT_MUTEX_FRACTION:
                        if (parse_number(optarg, 1, 1000000, &v) < 0) {
                                fprintf(stderr, "cprofd: invalid --mutex-fraction \"%s\": expected an integer "
                                        "from 1 to 1000000\n", optarg);
                                EXIT_EARLY(2);
                        }
                        sched.options.mutex_fraction = (unsigned) v;
                        break;
                case OPT_TRACE_EVENTS_MAX:
                        if (parse_number(optarg, 10, 100000000, &v) < 0) {
                                fprintf(stderr, "cprofd: invalid --trace-events-max \"%s\": expected an integer "
                                        "from 10 to 100000000\n", optarg);
                                EXIT_EARLY(2);
                        }
                        trace_events_max = (size_t) v;
                        break;
                case OPT_SCHED_STACK:
                        if (parse_number(optarg, 1024, PERF_STACK_BYTES_MAX, &v) < 0 || v % 8 != 0) {
                                fprintf(stderr, "cprofd: invalid --sched-stack-size \"%s\": expected a multiple "
                                        "of 8 from 1024 to %u bytes\n", optarg, PERF_STACK_BYTES_MAX);
                                EXIT_EARLY(2);
                        }
                        sched.options.stack_bytes = (uint32_t) v;
                        break;
                case OPT_HEAP_AGENT:
                        if (optarg[0] != '/' || access(optarg, R_OK) < 0) {
                                fprintf(stderr, "cprofd: invalid --heap-agent \"%s\": expected the absolute path "
                                        "of a readable file\n", optarg);
                                EXIT_EARLY(2);
                        }
                        heap.agent_path = optarg;
                        break;
                case OPT_MAX_TARGETS:
                        if (parse_number(optarg, 1, 4096, &v) < 0) {
                                fprintf(stderr, "cprofd: invalid --max-targets \"%s\": expected 1..4096\n", optarg);
                                EXIT_EARLY(2);
                        }
                        cli->max_targets = (size_t) v;
                        set->max_targets = true;
                        break;
                case 'l':
                        cli->listen = optarg;
                        set->listen = true;
                        break;
                case OPT_LISTEN_MODE:
                        if (parse_mode(optarg, &cli->listen_mode) < 0) {
                                fprintf(stderr, "cprofd: invalid --listen-mode \"%s\": expected an octal mode like "
                                        "0660\n", optarg);
                                EXIT_EARLY(2);
                        }
                        set->listen_mode = true;
                        break;
                case OPT_TOKEN_FILE:
                        if (optarg[0] != '/') {
                                fprintf(stderr, "cprofd: invalid --token-file \"%s\": expected an absolute path\n",
                                        optarg);
                                EXIT_EARLY(2);
                        }
                        cli->token_file = optarg;
                        set->token_file = true;
                        break;
                case OPT_ALLOW_REMOTE:
                        cli->allow_remote = true;
                        set->allow_remote = true;
                        break;
                case OPT_MAX_REQUESTS:
                case OPT_MAX_PROFILES:
                        if (parse_number(optarg, 1, CONFIG_MAX_REQUESTS_MAX, &v) < 0) {
                                fprintf(stderr, "cprofd: invalid --%s \"%s\": expected 1..%u\n",
                                        c == OPT_MAX_REQUESTS ? "max-requests" : "max-profiles", optarg,
                                        CONFIG_MAX_REQUESTS_MAX);
                                EXIT_EARLY(2);
                        }
                        if (c == OPT_MAX_REQUESTS) {
                                cli->limits.max_pending = (unsigned) v;
                                set->max_requests = true;
                        } else {
                                cli->limits.max_profiles = (unsigned) v;
                                set->max_profiles = true;
                        }
                        break;
                case OPT_MAX_CONNECTIONS:
                        if (parse_number(optarg, 1, CONFIG_MAX_CONNECTIONS_MAX, &v) < 0) {
                                fprintf(stderr, "cprofd: invalid --max-connections \"%s\": expected 1..%u\n", optarg,
                                        CONFIG_MAX_CONNECTIONS_MAX);
                                EXIT_EARLY(2);
                        }
                        cli->limits.max_connections = (unsigned) v;
                        set->max_connections = true;
                        break;
                case OPT_MAX_SECONDS:
                        if (parse_number(optarg, 1, CONFIG_MAX_SECONDS_MAX, &v) < 0) {
                                fprintf(stderr, "cprofd: invalid --max-seconds \"%s\": expected 1..%u\n", optarg,
                                        CONFIG_MAX_SECONDS_MAX);
                                EXIT_EARLY(2);
                        }
                        cli->limits.max_seconds = (unsigned) v;
                        set->max_seconds = true;
                        break;
                case OPT_HEADER_TIMEOUT:
                        if (parse_duration(optarg, &ns) < 0 || ns < NSEC_PER_SEC || ns % NSEC_PER_SEC != 0 ||
                            ns > (uint64_t) CONFIG_HEADER_TIMEOUT_MAX_SEC * NSEC_PER_SEC) {
                                fprintf(stderr, "cprofd: invalid --header-timeout \"%s\": expected whole seconds from "
                                        "1s to 1h, like 10s\n", optarg);
                                EXIT_EARLY(2);
                        }
                        cli->limits.header_timeout_sec = (unsigned) (ns / NSEC_PER_SEC);
                        set->header_timeout = true;
                        break;
                case OPT_CONFIG:
                        d.config_path = optarg;
                        break;
                case OPT_STACK_MAX:
                        if (parse_number(optarg, 4096, SNAPSHOT_STACK_MAX_LIMIT, &v) < 0) {
                                fprintf(stderr, "cprofd: invalid --stack-max \"%s\": expected %u..%u bytes\n",
                                        optarg, 4096u, SNAPSHOT_STACK_MAX_LIMIT);
                                EXIT_EARLY(2);
                        }
                        cli->stack_max = (size_t) v;
                        set->stack_max = true;
                        break;
                case OPT_LOG_LEVEL:
                        if (log_level_from_string(optarg, &level) < 0) {
                                fprintf(stderr, "cprofd: invalid --log-level \"%s\"\n", optarg);
                                EXIT_EARLY(2);
                        }
                        cli->log_level = level;
                        set->log_level = true;
                        break;
                case 'h':
                        usage(stdout);
                        EXIT_EARLY(0);
                case 'V':
                        printf("cprofd %s\n", CPROFD_VERSION);
                        EXIT_EARLY(0);
                case OPT_LIST_PROFILES: {
                        _cleanup_buf_ Buf table = {};
                        profile_table_write(&table);
                        fwrite(table.data, 1, table.len, stdout);
                        EXIT_EARLY(0);
                }
                default:
                        fprintf(stderr, "Try 'cprofd --help'.\n");
                        EXIT_EARLY(2);
                }
        if (optind < argc) {
                fprintf(stderr, "cprofd: unexpected argument \"%s\"\nTry 'cprofd --help'.\n", argv[optind]);
                EXIT_EARLY(2);
        }
        if (d.config_path) {
                r = config_load(d.config_path, &d.config, err, sizeof err);
                if (r < 0) {
                        fprintf(stderr, "cprofd: %s\n", err);
                        EXIT_EARLY(2);
                }
                /* Targets given on the command line replace the file's. */
                if (n_selectors == 0) {
                        for (size_t i = 0; i < d.config.n_selectors && n_selectors < TARGETS_MAX; i++) {
                                selectors[n_selectors++] = d.config.selectors[i];
                                d.config.selectors[i] = (TargetSelector) {};    /* moved */
                        }
                }
        }
        settings_merge(cli, set, d.config_path ? &d.config : NULL, &d.settings);
        log_set_max_level(d.settings.log_level);
        if (n_selectors == 0) {
                fprintf(stderr, "cprofd: no target: give --pid PID (or --exe, --comm, --cgroup, --unit)\n"
                                "Try 'cprofd --help'.\n");
                EXIT_EARLY(2);
        }
        if (d.settings.token_file) {
                r = token_file_read(d.settings.token_file, &token, err, sizeof err);
                if (r < 0) {
                        fprintf(stderr, "cprofd: %s\n", err);
                        EXIT_EARLY(2);
                }
        }
        if (check_remote(&d.settings, token, err, sizeof err) < 0) {
                fprintf(stderr, "cprofd: %s\n", err);
                EXIT_EARLY(2);
        }
        d.listen = strdup(d.settings.listen);
        if (!d.listen) {
                fprintf(stderr, "cprofd: out of memory\n");
                EXIT_EARLY(1);
        }
        d.settings.listen = d.listen;
        d.settings.token_file = NULL;   /* read; a reload reads it again */

#undef EXIT_EARLY

        /* Snapshots sleep on SIGCHLD; writes to closed sockets must not kill us. */
        sigset_t chld;
        sigemptyset(&chld);
        sigaddset(&chld, SIGCHLD);
        pthread_sigmask(SIG_BLOCK, &chld, NULL);
        signal(SIGPIPE, SIG_IGN);

        metrics_init(&d.metrics);
        d.targets.metrics = &d.metrics;
        d.targets.snapshot_options.stack_max = d.settings.stack_max;
        r = symbolizer_new(&d.targets.symbolizer);
        if (r < 0) {
                log_error_errno(r, "Failed to set up the symbolizer: %m");
                for (size_t i = 0; i < n_selectors; i++)
                        selector_done(&selectors[i]);
                config_free(&d.config);
                free(d.listen);
                return 1;
        }
        r = symbolizer_enable_debuginfod(d.targets.symbolizer);
        if (r < 0)
                log_warning_errno(r, "Failed to start fetching debug files from debuginfod servers: %m");
        else if (r > 0)
                log_info("Fetching missing debug files from %s in the background.", getenv("DEBUGINFOD_URLS"));
        int ret = 1;
        d.targets.max = d.settings.max_targets;
        d.targets.history_limits = history_limits_default;
        d.targets.history_limits.max_snapshots = d.settings.schedule.history_snapshots;
        d.targets.history_limits.max_bytes = (size_t) d.settings.schedule.history_bytes;
        d.targets.selectors = malloc(n_selectors * sizeof *selectors);
        if (!d.targets.selectors) {
                log_error("Out of memory.");
                for (size_t i = 0; i < n_selectors; i++)
                        selector_done(&selectors[i]);
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
                         d.settings.schedule.interval_ns ? "interval" : "request");
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
        d.service.heap = heap;
        d.service.sched = sched;
        d.service.trace_events_max = trace_events_max;
        if (!d.service.heap.agent_path)
                d.service.heap.agent_path = heap_agent_default_path();
        Backend backend;
        service_backend(&d.service, &backend);
        r = http_server_new(d.base, d.listen, d.settings.listen_mode, &backend, &d.settings.limits, &d.server);
        if (r == -EEXIST) {
                fprintf(stderr, "cprofd: cannot listen on %s: the path exists and is not a socket\n", d.listen);
                goto finish;
        }
        if (r == -EADDRINUSE && strncmp(d.listen, "unix:", 5) == 0) {
                fprintf(stderr, "cprofd: cannot listen on %s: another process accepts connections there\n",
                        d.listen);
                goto finish;
        }
        if (r < 0) {
                fprintf(stderr, "cprofd: cannot listen on %s: %s\n", d.listen, strerror(-r));
                goto finish;
        }
        if (token) {
                r = http_server_set_token(d.server, token);
                if (r < 0) {
                        fprintf(stderr, "cprofd: cannot use the token: %s\n", strerror(-r));
                        goto finish;
                }
        }
        struct event *sigterm = evsignal_new(d.base, SIGTERM, on_terminate, &d);
        struct event *sigint = evsignal_new(d.base, SIGINT, on_terminate, &d);
        struct event *sighup = evsignal_new(d.base, SIGHUP, on_hangup, &d);
        d.service.server = d.server;
        r = scheduler_new(d.base, d.worker, &d.targets, &d.settings.schedule, &d.scheduler);
        if (r < 0) {
                log_error_errno(r, "Failed to start the periodic snapshots: %m");
                goto finish;
        }
        r = service_start(&d.service);
        if (r < 0) {
                log_error_errno(r, "Failed to start profiling: %m");
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
        log_info("Serving %zu target(s) on %s%s.", d.targets.n, http_server_address(d.server),
                 token ? ", a token required" : "");
        r = notify_sendf("READY=1\nSTATUS=Serving %zu target(s) on %s", d.targets.n, http_server_address(d.server));
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
        config_free(&d.config);
        free(d.listen);
        return ret;
}
