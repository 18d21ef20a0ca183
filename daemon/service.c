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

#include "log.h"
#include "macro.h"
#include "pprof.h"
#include "service.h"
#include "table.h"

struct PendingProfile {
        PendingProfile *prev, *next;    /* while waiting for the delta timer */
        Service *service;
        Request *req;
        Target *target;
        const ProfileInfo *info;        /* a row of the table */
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

/* [worker] One collection by the profile's source: a reply now, or a profile to encode,
 * or p0 of a delta. */
static void collect(void *userdata) {
        PendingProfile *p = userdata;
        Profile *profile = NULL;
        int r = 0;

        if (atomic_load(&p->cancelled))
                return;
        Collection c = { .info = p->info, .debug = p->debug, .json = p->json };
        profile_source(p->info)->collect(p->service, p->target, &c, &p->reply, &profile);
        if (!profile) {
                p->answered = true;
                return;
        }
        if (p->seconds > 0 && !p->p0) {
                p->p0 = profile;        /* the timer comes next */
                return;
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
                snprintf(p->filename, sizeof p->filename, "%s%s", p->info->name, p->p0 ? "-delta" : "");
                p->reply.filename = p->filename;
        }
        p->answered = true;
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

static void backend_profile(void *userdata, Request *req, const ProfileRequest *pr) {
        Service *s = userdata;
        Reply reply = {};
        Target *target = targets_find(s->targets, pr->pid);
        s->profile_requests[profile_table_index(pr->info)]++;
        if (!target || !profile_source(pr->info)->collect) {
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
        p->info = pr->info;
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

static void backend_window_profile(void *userdata, Request *req, const WindowProfileRequest *p) {
        Service *s = userdata;
        s->profile_requests[profile_table_index(p->info)]++;
        const ProfileSource *src = profile_source(p->info);
        if (!src->start_window) {
                Reply reply = {};
                reply_error(&reply, 404, "Unknown profile");
                request_finish(req, &reply);
                return;
        }
        src->start_window(s, req, p);
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

static long backend_profile_count(void *userdata, pid_t pid, const ProfileInfo *info) {
        Service *s = userdata;
        Target *t = targets_find(s->targets, pid);
        const ProfileSource *src = profile_source(info);
        return t && src->count ? src->count(s, t, info) : -1;
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
        buf_puts(out, "# HELP cprofd_profile_requests_total Requests for each profile.\n"
                      "# TYPE cprofd_profile_requests_total counter\n");
        for (size_t i = 0; i < profile_table_size; i++)
                buf_printf(out, "cprofd_profile_requests_total{profile=\"%s\"} %llu\n", profile_table[i].name,
                           (unsigned long long) s->profile_requests[i]);
        for (size_t i = 0; i < profile_sources_size; i++)
                if (profile_sources[i]->write_metrics)
                        profile_sources[i]->write_metrics(s, out);
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
                .profiles = profile_table,
                .n_profiles = profile_table_size,
                .list_targets = backend_list_targets,
                .profile_count = backend_profile_count,
                .profile = backend_profile,
                .symbol = backend_symbol,
                .window_profile = backend_window_profile,
                .cmdline = backend_cmdline,
                .metrics = backend_metrics,
        };
}

void *service_request_new(Service *s, Request *req, pid_t pid, size_t size, Target **ret_target) {
        Reply reply = {};
        Target *target = targets_find(s->targets, pid);
        void *r = target ? calloc(1, size) : NULL;
        if (!r) {
                if (target)
                        reply_error(&reply, 503, "out of memory");
                else
                        reply_error(&reply, 404, "unknown target pid %d", (int) pid);
                request_finish(req, &reply);
                return NULL;
        }
        *ret_target = target;
        return r;
}

int service_start(Service *s) {
        for (size_t i = 0; i < profile_sources_size; i++)
                if (profile_sources[i]->start) {
                        int r = profile_sources[i]->start(s);
                        if (r < 0)
                                return r;
                }
        return 0;
}

void service_shutdown(Service *s) {
        for (size_t i = 0; i < profile_sources_size; i++)
                if (profile_sources[i]->shutdown)
                        profile_sources[i]->shutdown(s);
        while (s->pending) {
                PendingProfile *p = s->pending;
                pending_unlink(s, p);
                buf_reset(&p->reply.body);
                reply_error(&p->reply, 503, "cprofd is shutting down");
                finish(p);
        }
}
