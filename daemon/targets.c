/* daemon/targets.c -- see targets.h. The only place that joins a snapshot (attach/) to the
 * unwinder and symbolizer (symbolize/) and hands the result to the encoders (profile/). */
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "macro.h"
#include "heap-tracker.h"
#include "locks.h"
#include "log.h"
#include "targets.h"
#include "thread-waits.h"

/* A snapshot of a process caught in execve() or exit_group() is taken again this many
 * times, this far apart: long enough for either to finish, short for a request. */
#define SNAPSHOT_ATTEMPTS 5
#define SNAPSHOT_RETRY_NS (20 * NSEC_PER_MSEC)

const char thread_state_letters[THREAD_STATES] = { 'R', 'S', 'D', 'T', 'Z', '?' };

Target *target_ref(Target *t) {
        t->refs++;
        return t;
}

Target *target_unref(Target *t) {
        if (!t || --t->refs > 0)
                return NULL;
        address_space_free(t->as);
        history_free(t->history);
        u64map_done(&t->last_syscall, NULL);
        thread_cache_done(&t->thread_cache);
        heap_tracker_stop(t->heap);
        sched_target_done(&t->sched);
        free(t->logged_cycles);
        free(t->exe);
        process_handle_close(&t->handle);
        free(t);
        return NULL;
}

static size_t targets_live(const Targets *t) {
        size_t n = 0;
        for (size_t i = 0; i < t->n; i++)
                n += !atomic_load(&t->items[i]->exited);
        return n;
}

int targets_add(Targets *t, pid_t pid, uint64_t start_time_ticks, size_t selector) {
        ThreadInfo info;
        int r = procfs_read_thread(pid, pid, &info);
        if (r < 0)
                return r;
        if (info.state == 'Z' || info.state == 'X')
                return -ESRCH;
        if (start_time_ticks == 0)
                start_time_ticks = info.start_time_ticks;
        for (size_t i = 0; i < t->n; i++)
                if (t->items[i]->pid == pid && t->items[i]->start_time_ticks == start_time_ticks)
                        return -EEXIST;
        if (targets_live(t) >= t->max)
                return -E2BIG;

        Target **items = realloc(t->items, (t->n + 1) * sizeof *items);
        if (!items)
                return -ENOMEM;
        t->items = items;
        Target *target = calloc(1, sizeof *target);
        if (!target)
                return -ENOMEM;
        *target = (Target) { .refs = 1, .pid = pid, .start_time_ticks = start_time_ticks, .last_threads = -1,
                             .selector = selector, .handle = { .pidfd = -EBADF } };
        /* The pidfd first, the start time checked after: nothing can slip in between. */
        r = process_handle_open(pid, start_time_ticks, &target->handle);
        if (r < 0 && r != -ENOSYS) {
                free(target);
                return r;
        }
        (void) procfs_read_exe(pid, &target->exe);      /* unknown without permission */
        if (procfs_read_comm(pid, target->comm) < 0)
                snprintf(target->comm, sizeof target->comm, "%s", info.name);
        r = address_space_new(t->symbolizer, pid, &target->as);
        if (r < 0) {
                target_unref(target);
                return r;
        }
        t->items[t->n++] = target;
        return 0;
}

Target *targets_find(Targets *t, pid_t pid) {
        Target *exited = NULL;
        for (size_t i = 0; i < t->n; i++)
                if (t->items[i]->pid == pid) {
                        if (!target_check_exited(t->items[i]))
                                return t->items[i];
                        exited = t->items[i];
                }
        return exited;
}

size_t targets_merge(Targets *t, const DiscoveredProcess *found, size_t n, uint64_t now_ns) {
        size_t added = 0;
        for (size_t i = 0; i < n; i++)
                if (targets_add(t, found[i].pid, found[i].start_time_ticks, found[i].selector) == 0)
                        added++;

        /* Exited targets stay listed (marked) for a while, then go. */
        size_t kept = 0;
        for (size_t i = 0; i < t->n; i++) {
                Target *x = t->items[i];
                if (target_check_exited(x) && x->exited_ns == 0)
                        x->exited_ns = now_ns;
                if (x->exited_ns > 0 && now_ns - x->exited_ns > TARGET_EXITED_KEEP_NS) {
                        target_unref(x);
                        continue;
                }
                t->items[kept++] = x;
        }
        t->n = kept;
        return added;
}

void targets_done(Targets *t) {
        for (size_t i = 0; i < t->n; i++)
                target_unref(t->items[i]);
        free(t->items);
        t->items = NULL;
        t->n = 0;
        for (size_t i = 0; i < t->n_selectors; i++)
                selector_done(&t->selectors[i]);
        free(t->selectors);
        t->selectors = NULL;
        t->n_selectors = 0;
}

bool target_check_exited(Target *target) {
        if (atomic_load(&target->exited))
                return true;
        bool exited;
        if (target->handle.pidfd >= 0)
                exited = process_handle_exited(&target->handle) > 0;
        else {
                ThreadInfo info;
                int r = procfs_read_thread(target->pid, target->pid, &info);
                exited = r == -ESRCH || (r == 0 && (info.start_time_ticks != target->start_time_ticks ||
                                                    info.state == 'Z' || info.state == 'X'));
        }
        if (exited) {
                atomic_store(&target->exited, true);
                atomic_store(&target->last_threads, 0);
        }
        return exited;
}

void thread_dump_done(ThreadDump *d) {
        thread_dump_waits_done(d);
        for (size_t i = 0; i < d->n_threads; i++) {
                free((char *) d->threads[i].name);
                free((char *) d->threads[i].wait);
                free(d->threads[i].stack.frames);
        }
        free(d->threads);
        *d = (ThreadDump) {};
}

/* A sleep interrupted by a stop (ours, a debugger's, a signal's) resumes as
 * restart_syscall(2): report the syscall the thread was in when we last saw it, so that
 * looking at a thread does not change what it appears to wait in. Rebuilt every snapshot,
 * so it holds only live threads. */
static void remember_syscalls(Target *target, ThreadCapture *threads, size_t n) {
        U64Map seen = {};
        for (size_t i = 0; i < n; i++) {
                ThreadInfo *info = &threads[i].info;
                if (info->syscall == SYS_restart_syscall) {
                        void *v = u64map_get(&target->last_syscall, (uint64_t) threads[i].tid);
                        if (v)
                                info->syscall = (int) (uintptr_t) v - 1;
                }
                if (info->syscall >= 0)
                        u64map_put(&seen, (uint64_t) threads[i].tid, (void *) (uintptr_t) (info->syscall + 1));
        }
        u64map_done(&target->last_syscall, NULL);
        target->last_syscall = seen;
}

/* [worker] Adds the dump to the target's history, which gives every thread its wait time
 * (how long it has been seen with this stack and state), and publishes what the loop
 * shows: thread growth and threads by state. */
static void record_history(Targets *t, Target *target, ThreadDump *d, const Snapshot *s) {
        long by_state[THREAD_STATES] = {};
        HistoryThreadInfo *info = calloc(MAX(d->n_threads, 1u), sizeof *info);
        uint64_t *wait = calloc(MAX(d->n_threads, 1u), sizeof *wait);
        if (!info || !wait)
                goto finish;
        for (size_t i = 0; i < d->n_threads; i++) {
                const ThreadInfo *ti = &s->threads[i].info;
                info[i] = (HistoryThreadInfo) { .start_time_ticks = ti->start_time_ticks, .state = ti->state };
                const char *p = memchr(thread_state_letters, ti->state, THREAD_STATES - 1);
                by_state[p ? p - thread_state_letters : THREAD_STATES - 1]++;
        }
        if (!target->history && history_new(&t->history_limits, &target->history) < 0)
                goto finish;
        /* A running thread is not waiting, whatever its pc did between snapshots. */
        if (history_add(target->history, d, info, now_monotonic_ns(), wait) == 0)
                for (size_t i = 0; i < d->n_threads; i++)
                        d->threads[i].wait_ns = info[i].state == 'R' ? 0 : wait[i];

        int64_t delta = 0;
        uint64_t covered = 0;
        if (history_thread_count_change(target->history, UINT64_MAX, &delta, &covered) == 0) {
                atomic_store(&target->growth_delta, (long) delta);
                atomic_store(&target->growth_window_ns, covered);
        }
        HistoryGrowth *g = NULL;
        if (history_growth(target->history, UINT64_MAX, &g) == 0) {
                atomic_store(&target->growing_groups, (long) g->n_groups);
                history_growth_free(g);
        }
        for (size_t i = 0; i < THREAD_STATES; i++)
                atomic_store(&target->threads_by_state[i], by_state[i]);
finish:
        free(info);
        free(wait);
}

static uint64_t cycle_signature(const ThreadDump *d, const WaitCycle *c) {
        uint64_t h = 1469598103934665603u;
        for (size_t k = 0; k < c->n; k++) {
                const ThreadRecord *t = &d->threads[c->threads[k]];
                uint64_t parts[2] = { (uint64_t) t->tid, t->sync ? t->sync->object.address : 0 };
                h = (h ^ hash_bytes(parts, sizeof parts)) * 1099511628211u;
        }
        return h;
}

/* [worker] Publishes what the dump's waits show, and logs each deadlock once: a cycle is
 * logged again only after a dump without it. */
static void publish_waits(Target *target, const ThreadDump *d) {
        long deadlocked = 0, lock_waiters = 0;
        for (size_t c = 0; c < d->n_deadlocks; c++)
                deadlocked += (long) d->deadlocks[c].n;
        for (size_t i = 0; i < d->n_threads; i++) {
                const ThreadWait *w = d->threads[i].sync;
                WaitKind k = w ? w->object.kind : WAIT_KIND_NONE;
                lock_waiters += k == WAIT_KIND_MUTEX || k == WAIT_KIND_RWLOCK_READ || k == WAIT_KIND_RWLOCK_WRITE ||
                        k == WAIT_KIND_LOCK;
        }
        atomic_store(&target->deadlocked_threads, deadlocked);
        atomic_store(&target->lock_waiters, lock_waiters);
        atomic_store(&target->waited_objects, (long) locks_count(d));

        uint64_t *signatures = calloc(MAX(d->n_deadlocks, 1u), sizeof *signatures);
        if (!signatures)
                return;
        for (size_t c = 0; c < d->n_deadlocks; c++) {
                signatures[c] = cycle_signature(d, &d->deadlocks[c]);
                bool logged = false;
                for (size_t k = 0; k < target->n_logged_cycles && !logged; k++)
                        logged = target->logged_cycles[k] == signatures[c];
                if (logged)
                        continue;
                _cleanup_buf_ Buf text = {};
                ThreadDump one = *d;
                one.deadlocks = &one.deadlocks[c];
                one.n_deadlocks = 1;
                thread_dump_write_deadlocks(&one, "", &text);
                log_warning("pid %d: %s", (int) target->pid, buf_str(&text));
        }
        free(target->logged_cycles);
        target->logged_cycles = signatures;
        target->n_logged_cycles = d->n_deadlocks;
}

static char *thread_wait_description(const ThreadInfo *info) {
        const char *name = info->syscall >= 0 ? syscall_name(info->syscall) : NULL;
        if (name)
                return strdup(name);
        if (info->syscall >= 0) {
                char buf[32];
                snprintf(buf, sizeof buf, "syscall %d", info->syscall);
                return strdup(buf);
        }
        if (info->wchan[0])
                return strdup(info->wchan);
        return NULL;
}

/* Unchanged threads were not stopped, so /proc was not asked what they wait in: the
 * cache knows. */
static void fill_unchanged_syscalls(const ThreadCache *cache, ThreadCapture *threads, size_t n) {
        for (size_t i = 0; i < n; i++)
                if (threads[i].unchanged && threads[i].info.syscall < 0) {
                        const ThreadCacheEntry *e = thread_cache_find(cache, threads[i].tid);
                        if (e)
                                threads[i].info.syscall = e->syscall;
                }
}

/* The stack of the thread captured in C: unwound, or the cached one if it was unchanged. */
static int thread_stack(Target *target, const ThreadCapture *c, Stack *ret) {
        if (c->unchanged) {
                const ThreadCacheEntry *e = thread_cache_find(&target->thread_cache, c->tid);
                return e ? stack_copy(&e->stack, ret) : -ESTALE;
        }
        return address_space_unwind(target->as, c, ret);
}

static void update_thread_cache(Target *target, const Snapshot *s, const ThreadDump *d) {
        const Stack **stacks = calloc(MAX(s->n_threads, 1u), sizeof *stacks);
        if (!stacks) {
                thread_cache_done(&target->thread_cache);
                return;
        }
        for (size_t i = 0; i < s->n_threads && i < d->n_threads; i++)
                stacks[i] = d->threads[i].error == 0 ? &d->threads[i].stack : NULL;
        (void) thread_cache_update(&target->thread_cache, s, stacks);
        free(stacks);
}

/* Whether a snapshot that stopped no thread of a live process may do better in a moment:
 * the process may be in the middle of an execve() (the old threads are dying, the
 * leader's tid changes hands, the new image has not started) or of an exit_group(), which
 * take milliseconds. Its threads then look gone (-ESRCH), refuse the seize as they exit
 * (-EPERM), or the old leader is still a zombie we trace (TracerPid names the tracing
 * thread: this one, the worker). Not when another tracer holds it: that lasts. */
static bool snapshot_worth_retrying(int r, const Snapshot *s) {
        if (r == -ESRCH)
                return true;
        return r == 0 && s->n_captured == 0 && (s->tracer == 0 || s->tracer == gettid());
}

/* After the retries, whether what stopped the snapshot was such a change, rather than a
 * lasting refusal (-EPERM from a security module, say). */
static bool snapshot_saw_change(const Snapshot *s) {
        if (s->tracer == gettid() || s->n_threads == 0)
                return true;
        for (size_t i = 0; i < s->n_threads; i++)
                if (s->threads[i].error == -ESRCH)
                        return true;
        return false;
}

int target_thread_dump(Targets *t, Target *target, SnapshotMode mode, DumpWaits waits, ThreadDump *ret,
                       Maps *ret_maps, pid_t *ret_tracer) {
        if (target_check_exited(target))
                return -ESRCH;

        SnapshotOptions options = t->snapshot_options;
        target->thread_cache.now_ns = now_monotonic_ns();
        if (mode == SNAPSHOT_REUSE_UNCHANGED) {
                options.unchanged = thread_cache_unchanged;
                options.known = thread_cache_known;
                options.userdata = &target->thread_cache;
        }
        Snapshot *s = NULL;
        int r;
        for (unsigned attempt = 1;; attempt++) {
                r = snapshot_take(target->pid, &options, &s);
                if (!snapshot_worth_retrying(r, s) || attempt == SNAPSHOT_ATTEMPTS || target_check_exited(target))
                        break;
                s = snapshot_free(s);
                (void) nanosleep(&(struct timespec) { .tv_nsec = SNAPSHOT_RETRY_NS }, NULL);
        }
        if (r < 0) {
                metrics_lock(t->metrics);
                t->metrics->snapshot_errors_total++;
                metrics_unlock(t->metrics);
                /* Only the pidfd knows the process is gone; a live one was changing. */
                if (r == -ESRCH && !target_check_exited(target))
                        r = -EAGAIN;
                return r;
        }
        atomic_fetch_add(&target->snapshots, 1);
        atomic_fetch_add(&target->snapshot_ns_total, s->duration_ns);
        for (size_t i = 0; i < s->n_threads; i++)
                if (s->threads[i].error == 0 && !s->threads[i].unchanged) {
                        atomic_fetch_add(&target->pause_ns_total, s->threads[i].pause_ns);
                        atomic_fetch_add(&target->pauses, 1);
                }
        metrics_lock(t->metrics);
        t->metrics->snapshots_total++;
        histogram_observe(&t->metrics->snapshot_duration, s->duration_ns);
        for (size_t i = 0; i < s->n_threads; i++)
                if (s->threads[i].unchanged)
                        t->metrics->threads_unchanged_total++;
                else if (s->threads[i].error == 0) {
                        histogram_observe(&t->metrics->thread_pause, s->threads[i].pause_ns);
                        t->metrics->threads_captured_total++;
                } else
                        t->metrics->threads_not_captured_total++;
        metrics_unlock(t->metrics);
        target->last_threads = (long) s->n_threads;
        fill_unchanged_syscalls(&target->thread_cache, s->threads, s->n_threads);
        remember_syscalls(target, s->threads, s->n_threads);

        if (s->n_captured == 0) {
                if (target_check_exited(target))
                        r = -ESRCH;
                else if (s->tracer > 0 && s->tracer != gettid())
                        r = -EPERM;
                else if (snapshot_saw_change(s))
                        r = -EAGAIN;
                else
                        r = s->n_threads > 0 ? s->threads[0].error : -EAGAIN;
                if (ret_tracer)
                        *ret_tracer = s->tracer;
                snapshot_free(s);
                return r;
        }

        r = address_space_update(target->as, &s->maps);
        if (r < 0) {
                snapshot_free(s);
                return r;
        }
        char *exe = NULL;
        if (procfs_read_exe(target->pid, &exe) == 0 && (!target->exe || strcmp(exe, target->exe) != 0)) {
                free(target->exe);
                target->exe = TAKE_PTR(exe);
        }
        free(exe);

        ThreadDump d = {
                .pid = target->pid,
                .time_ns = s->time_ns,
                .partial = s->partial,
                .exited = s->exited,
                .threads = calloc(MAX(s->n_threads, 1u), sizeof(ThreadRecord)),
        };
        if (!d.threads) {
                snapshot_free(s);
                return -ENOMEM;
        }
        /* A container's threads have ids of their own there, which its logs print. */
        bool other_pid_namespace = procfs_same_namespace(target->pid, "pid") == 0;
        d.other_pid_namespace = other_pid_namespace;
        for (size_t i = 0; i < s->n_threads; i++) {
                const ThreadCapture *c = &s->threads[i];
                ThreadRecord *rec = &d.threads[d.n_threads++];
                rec->tid = c->tid;
                pid_t ns_tid;
                if (other_pid_namespace && procfs_read_ns_tid(target->pid, c->tid, &ns_tid) == 0 && ns_tid != c->tid)
                        rec->ns_tid = ns_tid;
                rec->name = strdup(c->info.name);
                rec->state = thread_state_description(c->info.state);
                rec->wait = thread_wait_description(&c->info);
                rec->error = c->error;
                rec->tls = c->error == 0 && !c->unchanged ? c->regs.fs_base : 0;
                if (c->error == 0) {
                        int q = thread_stack(target, c, &rec->stack);
                        if (q < 0)
                                rec->error = q;
                }
        }
        update_thread_cache(target, s, &d);
        if (t->no_wait_decoding)
                waits = DUMP_WAITS_NONE;
        if (waits >= DUMP_WAITS_LOCKS) {
                thread_dump_decode_waits(&d, s, target->as);
                publish_waits(target, &d);
        }
        SymbolizerStats st;
        symbolizer_get_stats(t->symbolizer, &st);
        metrics_lock(t->metrics);
        t->metrics->symbolizer_modules = st.modules;
        t->metrics->symbolizer_locations = st.locations;
        t->metrics->debuginfod_started = st.debuginfod_started;
        t->metrics->debuginfod_succeeded = st.debuginfod_succeeded;
        t->metrics->debuginfod_failed = st.debuginfod_failed;
        metrics_unlock(t->metrics);
        record_history(t, target, &d, s);
        if (waits >= DUMP_WAITS_ALL)
                thread_dump_describe_calls(&d, s, &target->thread_cache);
        if (ret_maps) {
                *ret_maps = s->maps;
                s->maps = (Maps) {};
        }
        snapshot_free(s);
        *ret = d;
        return 0;
}
