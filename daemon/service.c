/* daemon/service.c -- see service.h.
 *
 * A request's life: backend_profile() (loop) queues collect() for the worker; collect()
 * fills the reply or, for the first half of a delta, keeps profile p0; collected() (loop)
 * either answers or arms the delta timer, whose expiry queues collect() again for p1.
 * Cancellation only sets a flag the worker checks, or disarms the timer: a job in the
 * worker's hands is always freed by collected(), on the loop, so nothing is freed twice. */
#include <event2/event.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "locks.h"
#include "log.h"
#include "macro.h"
#include "pprof.h"
#include "profiles.h"
#include "service.h"
#include "wall.h"

struct PendingProfile {
        PendingProfile *prev, *next;    /* while waiting for the delta timer */
        Service *service;
        Request *req;
        Target *target;
        char name[32];
        char filename[48];
        int debug;
        bool json;
        unsigned seconds;
        atomic_bool cancelled;
        Profile *p0;                    /* first half of a delta */
        Reply reply;                    /* the answer, once there is one */
        bool answered;
        struct event *timer;
};

static const ProfileInfo profiles[] = {
        {
                .name = "allocs",
                .description = "A sampling of every allocation since heap tracking began (at the first heap or "
                               "allocs request, or at attach with --heap), by call stack; alloc_space by "
                               "default. Count: allocation records (stack and size), not objects or bytes.",
                .supports_delta = true,
        },
        {
                .name = "goroutine",
                .description = "Stack traces of all current threads of the target. "
                               "Count: the threads it has right now.",
                .supports_delta = true,
        },
        {
                .name = "heap",
                .description = "A sampling of the memory still allocated (inuse_space by default) and of every "
                               "allocation since heap tracking began, by call stack, through an agent cprofd "
                               "loads into the target. Count: allocation records (stack and size), not objects "
                               "or bytes.",
                .supports_delta = true,
        },
        {
                .name = "locks",
                .description = "Every synchronization object some thread waits on, most waiters first: its "
                               "kind, name and holder, with the stacks of holder and waiters; deadlocks first. "
                               "debug=1 text, format=json for scripts, debug=0 the waiters' stacks as pprof. "
                               "Count: objects waited on at the last snapshot.",
                .supports_json = true,
        },
        {
                .name = "threadgrowth",
                .description = "Stack groups whose thread count grew over the snapshot history "
                               "(--interval), largest growth first; counts are the growth. "
                               "Count: the groups that grew.",
        },
};

static void pending_free(PendingProfile *p) {
        target_unref(p->target);
        if (p->timer)
                event_free(p->timer);
        profile_free(p->p0);
        buf_done(&p->reply.body);
        free(p);
}

static void pending_link(Service *s, PendingProfile *p) {
        p->next = s->pending;
        if (p->next)
                p->next->prev = p;
        s->pending = p;
}

static void pending_unlink(Service *s, PendingProfile *p) {
        if (p->prev)
                p->prev->next = p->next;
        else if (s->pending == p)
                s->pending = p->next;
        if (p->next)
                p->next->prev = p->prev;
        p->prev = p->next = NULL;
}

static void finish(PendingProfile *p) {
        request_finish(p->req, &p->reply);
        pending_free(p);
}

void reply_thread_dump_error(Reply *reply, pid_t pid, int r, pid_t tracer) {
        if (r == -ESRCH) {
                reply_error(reply, 410, "target pid %d has exited", (int) pid);
                return;
        }
        if (r == -EPERM && tracer > 0) {
                char comm[THREAD_NAME_MAX] = "?";
                (void) procfs_read_comm(tracer, comm);
                reply_error(reply, 503,
                            "pid %d is traced by process %d (%s): cprofd can stop its threads once that tracer detaches",
                            (int) pid, (int) tracer, comm);
                return;
        }
        if (r == -EAGAIN) {
                reply_error(reply, 503, "pid %d is in the middle of an execve() or exit: no thread could be "
                            "stopped; try again", (int) pid);
                return;
        }
        reply_error(reply, 503, "cannot take a thread dump of pid %d: %s", (int) pid, strerror(-r));
}

static void write_partial_note(const ThreadDump *d, int debug, Buf *out) {
        if (!d->partial)
                return;
        size_t missing = 0;
        for (size_t i = 0; i < d->n_threads; i++)
                missing += d->threads[i].error != 0;
        buf_printf(out, "%s# partial: %zu of %zu threads not captured%s\n", debug == 2 ? "\n" : "", missing,
                   d->n_threads, d->exited ? " (the target exited during the snapshot)" : "");
}

/* [worker] The thread growth over the target's history: text or pprof. */
static void collect_growth(PendingProfile *p) {
        Target *target = p->target;
        _cleanup_(history_growth_freep) HistoryGrowth *g = NULL;
        _cleanup_(profile_freep) Profile *profile = NULL;
        Maps maps = {};
        int r;

        p->answered = true;
        if (!target->history) {
                reply_error(&p->reply, 503, "no snapshot of pid %d yet: growth needs periodic snapshots "
                            "(--interval) or earlier dumps", (int) target->pid);
                return;
        }
        r = history_growth(target->history, UINT64_MAX, &g);
        if (r < 0) {
                reply_error(&p->reply, 500, "cannot compute the growth of pid %d: %s", (int) target->pid,
                            strerror(-r));
                return;
        }
        if (p->debug > 0) {
                history_growth_write_text(g, &p->reply.body);
                return;
        }
        r = profile_new(NULL, &profile);
        if (r == 0 && procfs_read_maps(target->pid, &maps) == 0) {
                (void) address_space_update(target->as, &maps);
                r = profile_add_target_mappings(profile, &maps, target->as, target->exe);
                maps_done(&maps);
        }
        if (r == 0)
                r = history_growth_profile(g, profile);
        if (r == 0)
                r = profile_encode(profile, 0, &p->reply.body);
        if (r < 0) {
                buf_reset(&p->reply.body);
                reply_error(&p->reply, 500, "cannot encode the growth of pid %d: %s", (int) target->pid,
                            strerror(-r));
                return;
        }
        p->reply.content_type = "application/octet-stream";
        p->reply.filename = "threadgrowth";
}

/* [worker] One collection: a text dump, a profile, or p0 of a delta. */
static void collect(void *userdata) {
        PendingProfile *p = userdata;
        Service *s = p->service;
        ThreadDump dump = {};
        Maps maps = {};
        pid_t tracer = 0;

        if (atomic_load(&p->cancelled))
                return;
        if (strcmp(p->name, "threadgrowth") == 0) {
                collect_growth(p);
                return;
        }
        Profile *profile = NULL;
        int r;
        bool heap = strcmp(p->name, "heap") == 0, allocs = strcmp(p->name, "allocs") == 0;
        if (heap || allocs) {
                heap_collect(s, p->target, allocs, p->debug, &p->reply, &profile);
                if (!profile) {
                        p->answered = true;
                        return;
                }
                r = 0;
                goto have_profile;
        }
        r = target_thread_dump(s->targets, p->target, SNAPSHOT_STOP_ALL, DUMP_WAITS_ALL, &dump,
                               p->debug == 0 ? &maps : NULL, &tracer);
        if (r < 0) {
                if (r != -ESRCH && r != -EAGAIN && !(r == -EPERM && tracer > 0))
                        log_warning_errno(r, "Failed to take a thread dump of pid %d: %m", (int) p->target->pid);
                reply_thread_dump_error(&p->reply, p->target->pid, r, tracer);
                p->answered = true;
                return;
        }

        bool locks = strcmp(p->name, "locks") == 0;
        if (locks && p->json) {
                locks_write_json(&dump, &p->reply.body);
                p->reply.content_type = "application/json";
                p->answered = true;
                goto finish;
        }
        if (p->debug > 0) {
                if (locks)
                        locks_write_debug1(&dump, &p->reply.body);
                else if (p->debug == 2)
                        thread_dump_write_debug2(&dump, &p->reply.body);
                else
                        thread_dump_write_debug1(&dump, &p->reply.body);
                write_partial_note(&dump, p->debug, &p->reply.body);
                p->answered = true;
                goto finish;
        }

        r = goroutine_profile_build(&dump, &maps, p->target->as, p->target->exe, locks, &profile);
        if (r < 0) {
                reply_error(&p->reply, 500, "cannot build the profile of pid %d: %s", (int) p->target->pid,
                            strerror(-r));
                p->answered = true;
                goto finish;
        }
have_profile:
        if (p->seconds > 0 && !p->p0) {
                p->p0 = profile;        /* the timer comes next */
                goto finish;
        }
        if (p->p0) {
                Profile *delta = NULL;
                r = profile_delta(p->p0, profile, &delta);
                profile_free(profile);
                profile = delta;
        }
        if (r == 0)
                r = profile_encode(profile, 0, &p->reply.body);
        profile_free(profile);
        if (r < 0) {
                buf_reset(&p->reply.body);
                reply_error(&p->reply, 500, "cannot encode the profile of pid %d: %s", (int) p->target->pid,
                            strerror(-r));
        } else {
                p->reply.content_type = "application/octet-stream";
                snprintf(p->filename, sizeof p->filename, "%s%s", p->name, p->p0 ? "-delta" : "");
                p->reply.filename = p->filename;
        }
        p->answered = true;
finish:
        maps_done(&maps);
        thread_dump_done(&dump);
}

static void collected(void *userdata);

static void on_delta_timer(evutil_socket_t fd, short events, void *userdata) {
        PendingProfile *p = userdata;
        pending_unlink(p->service, p);
        if (worker_submit(p->service->worker, collect, collected, p) < 0) {
                reply_error(&p->reply, 503, "out of memory");
                finish(p);
        }
}

/* [loop] After collect(). */
static void collected(void *userdata) {
        PendingProfile *p = userdata;
        if (atomic_load(&p->cancelled) || p->answered) {
                finish(p);
                return;
        }
        if (!p->p0) {                   /* cancelled before the worker started */
                finish(p);
                return;
        }
        /* First half of a delta: wait on the loop, holding nothing but p0. */
        p->timer = evtimer_new(p->service->base, on_delta_timer, p);
        struct timeval tv = { .tv_sec = p->seconds };
        if (!p->timer || evtimer_add(p->timer, &tv) < 0) {
                reply_error(&p->reply, 503, "out of memory");
                finish(p);
                return;
        }
        pending_link(p->service, p);
}

/* [loop] The client went away. */
static void on_cancel(void *userdata) {
        PendingProfile *p = userdata;
        atomic_store(&p->cancelled, true);
        if (p->timer && evtimer_pending(p->timer, NULL)) {
                /* Waiting between the two halves of a delta: nobody else holds it. */
                evtimer_del(p->timer);
                pending_unlink(p->service, p);
                finish(p);
        }
}

static bool profile_served(const char *name) {
        for (size_t i = 0; i < ARRAY_SIZE(profiles); i++)
                if (strcmp(profiles[i].name, name) == 0)
                        return true;
        return false;
}

static void backend_profile(void *userdata, Request *req, const ProfileRequest *pr) {
        Service *s = userdata;
        Reply reply = {};
        Target *target = targets_find(s->targets, pr->pid);
        if (!target || !profile_served(pr->name)) {
                reply_error(&reply, 404, target ? "Unknown profile" : "unknown target pid %d", (int) pr->pid);
                request_finish(req, &reply);
                return;
        }
        PendingProfile *p = calloc(1, sizeof *p);
        if (!p) {
                reply_error(&reply, 503, "out of memory");
                request_finish(req, &reply);
                return;
        }
        p->service = s;
        p->req = req;
        p->target = target_ref(target);
        snprintf(p->name, sizeof p->name, "%s", pr->name);
        p->debug = pr->debug;
        p->json = pr->json;
        p->seconds = pr->seconds;
        request_set_cancel_callback(req, on_cancel, p);
        if (worker_submit(s->worker, collect, collected, p) < 0) {
                request_set_cancel_callback(req, NULL, NULL);
                reply_error(&p->reply, 503, "out of memory");
                finish(p);
        }
}

typedef struct SymbolJob {
        Service *service;
        Request *req;
        Target *target;
        uint64_t *addrs;
        size_t n;
        atomic_bool cancelled;
        Reply reply;
} SymbolJob;

/* [worker] Names for addresses, as pprof's remote symbolization asks for them: the
 * addresses are Location addresses, already pc − 1 for return addresses. */
static void resolve_symbols(void *userdata) {
        SymbolJob *j = userdata;
        Maps maps;
        if (atomic_load(&j->cancelled))
                return;
        int r = procfs_read_maps(j->target->pid, &maps);
        if (r == 0) {
                r = address_space_update(j->target->as, &maps);
                maps_done(&maps);
        }
        /* A target that is gone still resolves through the modules it had. */
        for (size_t i = 0; i < j->n; i++) {
                const SymLoc *loc = address_space_resolve(j->target->as, j->addrs[i]);
                if (loc->n_frames > 0 && loc->frames[0].function)
                        buf_printf(&j->reply.body, "%#llx %s\n", (unsigned long long) j->addrs[i],
                                   loc->frames[0].function);
        }
}

static void symbols_resolved(void *userdata) {
        SymbolJob *j = userdata;
        target_unref(j->target);
        request_finish(j->req, &j->reply);
        buf_done(&j->reply.body);
        free(j->addrs);
        free(j);
}

static void on_symbol_cancel(void *userdata) {
        SymbolJob *j = userdata;
        atomic_store(&j->cancelled, true);
}

static void backend_symbol(void *userdata, Request *req, pid_t pid, const uint64_t *addrs, size_t n) {
        Service *s = userdata;
        Reply reply = {};
        Target *target = targets_find(s->targets, pid);
        SymbolJob *j = target ? calloc(1, sizeof *j) : NULL;
        if (j)
                j->addrs = malloc(MAX(n, 1u) * sizeof *addrs);
        if (!j || !j->addrs) {
                if (j)
                        free(j);
                if (target)
                        reply_error(&reply, 503, "out of memory");
                else
                        reply_error(&reply, 404, "unknown target pid %d", (int) pid);
                request_finish(req, &reply);
                return;
        }
        *j = (SymbolJob) { .service = s, .req = req, .target = target_ref(target), .addrs = j->addrs, .n = n };
        memcpy(j->addrs, addrs, n * sizeof *addrs);
        request_set_cancel_callback(req, on_symbol_cancel, j);
        if (worker_submit(s->worker, resolve_symbols, symbols_resolved, j) < 0) {
                request_set_cancel_callback(req, NULL, NULL);
                symbols_resolved(j);
        }
}

static void backend_cpu_profile(void *userdata, Request *req, const CpuProfileRequest *p) {
        cpu_profile_start(userdata, req, p);
}

static void backend_wall_profile(void *userdata, Request *req, const CpuProfileRequest *p) {
        wall_profile_start(userdata, req, p);
}

/* Live targets first, in the order they were found, then the exited ones: the default
 * target (the first) is always a live one while there is any, so unprefixed URLs keep
 * working when a followed service restarts. */
static size_t backend_list_targets(void *userdata, TargetSummary *ret, size_t max) {
        Service *s = userdata;
        size_t k = 0;
        for (int pass = 0; pass < 2; pass++)
                for (size_t i = 0; i < s->targets->n; i++) {
                        Target *t = s->targets->items[i];
                        bool exited = target_check_exited(t);
                        if (exited != (pass == 1))
                                continue;
                        if (k < max) {
                                TargetSummary *sum = &ret[k];
                                *sum = (TargetSummary) { .pid = t->pid, .exited = exited, .threads = -1,
                                                         .growth = atomic_load(&t->growth_delta),
                                                         .growth_window_ns = atomic_load(&t->growth_window_ns),
                                                         .deadlocked_threads = exited ? 0 :
                                                                 atomic_load(&t->deadlocked_threads) };
                                snprintf(sum->comm, sizeof sum->comm, "%s", t->comm);
                                /* The name it has now: an execve() changes it. */
                                if (!exited)
                                        (void) procfs_read_comm(t->pid, sum->comm);
                                pid_t *tids;
                                size_t n;
                                if (!exited && procfs_list_threads(t->pid, &tids, &n) == 0) {
                                        sum->threads = (long) n;
                                        free(tids);
                                }
                        }
                        k++;
                }
        return k;
}

static long backend_profile_count(void *userdata, pid_t pid, const char *name) {
        Service *s = userdata;
        Target *t = targets_find(s->targets, pid);
        pid_t *tids;
        size_t n;
        if (t && strcmp(name, "threadgrowth") == 0)
                return atomic_load(&t->growing_groups);
        if (t && strcmp(name, "locks") == 0)
                return atomic_load(&t->waited_objects);
        if (t && (strcmp(name, "heap") == 0 || strcmp(name, "allocs") == 0))
                return atomic_load(&t->heap_tracking) ? atomic_load(&t->heap_sites) : 0;
        if (!t || strcmp(name, "goroutine") != 0 || target_check_exited(t) || procfs_list_threads(pid, &tids, &n) < 0)
                return -1;
        free(tids);
        return (long) n;
}

static void backend_cmdline(void *userdata, pid_t pid, Reply *reply) {
        Service *s = userdata;
        Target *target = targets_find(s->targets, pid);
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

/* Per-target series, labelled by pid: at most METRICS_TARGETS_MAX targets, so a daemon
 * following many short-lived processes keeps a bounded number of series. */
#define METRICS_TARGETS_MAX 64

static void write_target_metrics(Targets *targets, Buf *out) {
        size_t n = MIN(targets->n, (size_t) METRICS_TARGETS_MAX);
        buf_puts(out, "# HELP cprofd_target_up Whether the target process is alive.\n"
                      "# TYPE cprofd_target_up gauge\n");
        for (size_t i = 0; i < n; i++)
                buf_printf(out, "cprofd_target_up{pid=\"%d\"} %d\n", (int) targets->items[i]->pid,
                           !target_check_exited(targets->items[i]));
        buf_puts(out, "# HELP cprofd_target_threads Threads of the target at its last snapshot.\n"
                      "# TYPE cprofd_target_threads gauge\n");
        for (size_t i = 0; i < n; i++)
                buf_printf(out, "cprofd_target_threads{pid=\"%d\"} %ld\n", (int) targets->items[i]->pid,
                           MAX(atomic_load(&targets->items[i]->last_threads), 0L));
        buf_puts(out, "# HELP cprofd_target_threads_by_state Threads by /proc state at the last snapshot.\n"
                      "# TYPE cprofd_target_threads_by_state gauge\n");
        for (size_t i = 0; i < n; i++)
                for (size_t k = 0; k < THREAD_STATES; k++)
                        buf_printf(out, "cprofd_target_threads_by_state{pid=\"%d\",state=\"%c\"} %ld\n",
                                   (int) targets->items[i]->pid, thread_state_letters[k],
                                   atomic_load(&targets->items[i]->threads_by_state[k]));
        buf_puts(out, "# HELP cprofd_target_thread_growth Thread count change over the snapshot history.\n"
                      "# TYPE cprofd_target_thread_growth gauge\n");
        for (size_t i = 0; i < n; i++)
                buf_printf(out, "cprofd_target_thread_growth{pid=\"%d\"} %ld\n", (int) targets->items[i]->pid,
                           atomic_load(&targets->items[i]->growth_delta));
        buf_puts(out, "# HELP cprofd_deadlocked_threads Threads in deadlock cycles at the last snapshot.\n"
                      "# TYPE cprofd_deadlocked_threads gauge\n");
        for (size_t i = 0; i < n; i++)
                buf_printf(out, "cprofd_deadlocked_threads{pid=\"%d\"} %ld\n", (int) targets->items[i]->pid,
                           atomic_load(&targets->items[i]->deadlocked_threads));
        buf_puts(out, "# HELP cprofd_lock_waiters Threads waiting on a mutex, rwlock or libc lock at the last "
                      "snapshot.\n"
                      "# TYPE cprofd_lock_waiters gauge\n");
        for (size_t i = 0; i < n; i++)
                buf_printf(out, "cprofd_lock_waiters{pid=\"%d\"} %ld\n", (int) targets->items[i]->pid,
                           atomic_load(&targets->items[i]->lock_waiters));
        static const struct {
                const char *name, *help;
                size_t field;
                bool seconds;
        } counters[] = {
                { "cprofd_target_snapshots_total", "Snapshots of the target.", offsetof(Target, snapshots), false },
                { "cprofd_target_snapshot_seconds_total", "Time spent in snapshots of the target.",
                  offsetof(Target, snapshot_ns_total), true },
                { "cprofd_target_pause_seconds_total", "Time the target's threads were held stopped, summed.",
                  offsetof(Target, pause_ns_total), true },
                { "cprofd_target_pauses_total", "Thread pauses of the target.", offsetof(Target, pauses), false },
        };
        for (size_t c = 0; c < ARRAY_SIZE(counters); c++) {
                buf_printf(out, "# HELP %s %s\n# TYPE %s counter\n", counters[c].name, counters[c].help,
                           counters[c].name);
                for (size_t i = 0; i < n; i++) {
                        atomic_uint_least64_t *v = (atomic_uint_least64_t *) ((char *) targets->items[i] +
                                                                              counters[c].field);
                        uint64_t x = atomic_load(v);
                        if (counters[c].seconds)
                                buf_printf(out, "%s{pid=\"%d\"} %.9f\n", counters[c].name,
                                           (int) targets->items[i]->pid, (double) x / 1e9);
                        else
                                buf_printf(out, "%s{pid=\"%d\"} %llu\n", counters[c].name,
                                           (int) targets->items[i]->pid, (unsigned long long) x);
                }
        }
}

static void backend_metrics(void *userdata, Buf *out) {
        Service *s = userdata;
        Metrics *m = s->metrics;
        metrics_write(m, out);
        write_target_metrics(s->targets, out);
        buf_printf(out,
                   "# HELP cprofd_requests_in_progress HTTP requests awaiting their answer.\n"
                   "# TYPE cprofd_requests_in_progress gauge\n"
                   "cprofd_requests_in_progress %u\n"
                   "# HELP cprofd_worker_backlog Jobs queued or running on the worker thread.\n"
                   "# TYPE cprofd_worker_backlog gauge\n"
                   "cprofd_worker_backlog %u\n"
                   "# HELP cprofd_http_connections Client connections open.\n"
                   "# TYPE cprofd_http_connections gauge\n"
                   "cprofd_http_connections %u\n",
                   s->server ? http_server_pending(s->server) : 0, worker_backlog(s->worker),
                   s->server ? http_server_connections(s->server) : 0);
}

void service_backend(Service *s, Backend *ret) {
        *ret = (Backend) {
                .userdata = s,
                .profiles = profiles,
                .n_profiles = ARRAY_SIZE(profiles),
                .list_targets = backend_list_targets,
                .profile_count = backend_profile_count,
                .profile = backend_profile,
                .symbol = backend_symbol,
                .cpu_profile = backend_cpu_profile,
                .wall_profile = backend_wall_profile,
                .cmdline = backend_cmdline,
                .metrics = backend_metrics,
        };
}

void service_shutdown(Service *s) {
        heap_service_stop(s);
        cpu_profiles_shutdown(s);
        wall_profiles_shutdown(s);
        while (s->pending) {
                PendingProfile *p = s->pending;
                pending_unlink(s, p);
                buf_reset(&p->reply.body);
                reply_error(&p->reply, 503, "cprofd is shutting down");
                finish(p);
        }
}
