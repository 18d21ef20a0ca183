/* daemon/targets.c -- see targets.h. The only place that joins a snapshot (attach/) to the
 * unwinder and symbolizer (symbolize/) and hands the result to the encoders (profile/). */
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>

#include "clock.h"
#include "macro.h"
#include "targets.h"

static int pidfd_open_compat(pid_t pid) {
#ifdef SYS_pidfd_open
        return (int) syscall(SYS_pidfd_open, pid, 0);
#else
        errno = ENOSYS;
        return -1;
#endif
}

int targets_add(Targets *t, pid_t pid) {
        if (targets_find(t, pid))
                return 0;
        ThreadInfo info;
        int r = procfs_read_thread(pid, pid, &info);
        if (r < 0)
                return r;
        if (info.state == 'Z' || info.state == 'X')
                return -ESRCH;

        Target *items = realloc(t->items, (t->n + 1) * sizeof *items);
        if (!items)
                return -ENOMEM;
        t->items = items;
        Target *target = &t->items[t->n];
        *target = (Target) { .pid = pid, .start_time_ticks = info.start_time_ticks, .last_threads = -1 };
        target->pidfd = pidfd_open_compat(pid);
        (void) procfs_read_exe(pid, &target->exe);      /* unknown without permission */
        if (procfs_read_comm(pid, target->comm) < 0)
                snprintf(target->comm, sizeof target->comm, "%s", info.name);
        r = address_space_new(t->symbolizer, pid, &target->as);
        if (r < 0) {
                if (target->pidfd >= 0)
                        close(target->pidfd);
                free(target->exe);
                return r;
        }
        t->n++;
        return 0;
}

Target *targets_find(Targets *t, pid_t pid) {
        for (size_t i = 0; i < t->n; i++)
                if (t->items[i].pid == pid)
                        return &t->items[i];
        return NULL;
}

void targets_done(Targets *t) {
        for (size_t i = 0; i < t->n; i++) {
                address_space_free(t->items[i].as);
                u64map_done(&t->items[i].last_syscall, NULL);
                free(t->items[i].exe);
                if (t->items[i].pidfd >= 0)
                        close(t->items[i].pidfd);
        }
        free(t->items);
        t->items = NULL;
        t->n = 0;
}

bool target_check_exited(Target *target) {
        if (target->exited)
                return true;
        if (target->pidfd >= 0) {
                /* A pidfd polls readable once the process has exited. */
                struct pollfd p = { .fd = target->pidfd, .events = POLLIN };
                if (poll(&p, 1, 0) > 0)
                        target->exited = true;
        } else if (kill(target->pid, 0) < 0 && errno == ESRCH)
                target->exited = true;
        if (!target->exited) {
                ThreadInfo info;
                int r = procfs_read_thread(target->pid, target->pid, &info);
                if (r == -ESRCH || (r == 0 && info.start_time_ticks != target->start_time_ticks))
                        target->exited = true;
        }
        if (target->exited)
                target->last_threads = 0;
        return target->exited;
}

void thread_dump_done(ThreadDump *d) {
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

int target_thread_dump(Targets *t, Target *target, ThreadDump *ret, Maps *ret_maps, pid_t *ret_tracer) {
        if (target_check_exited(target))
                return -ESRCH;

        Snapshot *s = NULL;
        int r = snapshot_take(target->pid, &t->snapshot_options, &s);
        if (r < 0) {
                metrics_lock(t->metrics);
                t->metrics->snapshot_errors_total++;
                metrics_unlock(t->metrics);
                if (r == -ESRCH)
                        (void) target_check_exited(target);
                return r;
        }
        metrics_lock(t->metrics);
        t->metrics->snapshots_total++;
        histogram_observe(&t->metrics->snapshot_duration, s->duration_ns);
        for (size_t i = 0; i < s->n_threads; i++)
                if (s->threads[i].error == 0) {
                        histogram_observe(&t->metrics->thread_pause, s->threads[i].pause_ns);
                        t->metrics->threads_captured_total++;
                } else
                        t->metrics->threads_not_captured_total++;
        metrics_unlock(t->metrics);
        target->last_threads = (long) s->n_threads;
        remember_syscalls(target, s->threads, s->n_threads);

        if (s->n_captured == 0) {
                r = s->exited ? -ESRCH : s->tracer > 0 ? -EPERM : s->n_threads > 0 ? s->threads[0].error : -ESRCH;
                if (s->exited)
                        target->exited = true;
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
        for (size_t i = 0; i < s->n_threads; i++) {
                const ThreadCapture *c = &s->threads[i];
                ThreadRecord *rec = &d.threads[d.n_threads++];
                rec->tid = c->tid;
                rec->name = strdup(c->info.name);
                rec->state = thread_state_description(c->info.state);
                rec->wait = thread_wait_description(&c->info);
                rec->error = c->error;
                if (c->error == 0) {
                        int q = address_space_unwind(target->as, c, &rec->stack);
                        if (q < 0)
                                rec->error = q;
                }
        }
        SymbolizerStats st;
        symbolizer_get_stats(t->symbolizer, &st);
        metrics_lock(t->metrics);
        t->metrics->symbolizer_modules = st.modules;
        t->metrics->symbolizer_locations = st.locations;
        metrics_unlock(t->metrics);
        if (ret_maps) {
                *ret_maps = s->maps;
                s->maps = (Maps) {};
        }
        snapshot_free(s);
        *ret = d;
        return 0;
}
