/* attach/thread-cache.c -- see thread-cache.h. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/user.h>

#include "macro.h"
#include "thread-cache.h"

static void entry_done(ThreadCacheEntry *e) {
        free(e->stack.frames);
        e->stack = (Stack) {};
}

void thread_cache_done(ThreadCache *c) {
        for (size_t i = 0; i < c->n; i++)
                entry_done(&c->entries[i]);
        free(c->entries);
        c->entries = NULL;
        c->n = 0;
}

static ThreadCacheEntry *find(const ThreadCache *c, pid_t tid) {
        size_t lo = 0, hi = c->n;
        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                if (c->entries[mid].tid == tid)
                        return &c->entries[mid];
                if (c->entries[mid].tid < tid)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        return NULL;
}

const ThreadCacheEntry *thread_cache_find(const ThreadCache *c, pid_t tid) {
        return find(c, tid);
}

static bool same_place(const SyscallPlace *a, const SyscallPlace *b) {
        return a->known && b->known && a->nr == b->nr && a->sp == b->sp && a->pc == b->pc &&
               memcmp(a->args, b->args, sizeof a->args) == 0;
}

static bool fresh(const ThreadCache *c, const ThreadCacheEntry *e) {
        return e && c->now_ns >= e->stopped_ns && c->now_ns - e->stopped_ns < THREAD_CACHE_REFRESH_NS;
}

bool thread_cache_known(void *userdata, pid_t tid) {
        ThreadCache *c = userdata;
        return fresh(c, find(c, tid));
}

bool thread_cache_unchanged(void *userdata, pid_t tid, const ThreadInfo *info) {
        ThreadCache *c = userdata;
        ThreadCacheEntry *e = find(c, tid);

        if (!fresh(c, e) || e->start_time_ticks != info->start_time_ticks || info->run_ns == RUN_NS_UNKNOWN)
                return false;
        if (e->run_ns != RUN_NS_UNKNOWN)
                return info->run_ns == e->run_ns;
        /* No baseline yet: the thread is where the stop left it only if /proc shows it back
         * in the same syscall. The run time read before that becomes the baseline; if the
         * thread ran in between, it differs next time, and we stop the thread again. */
        if (!same_place(&info->place, &e->place))
                return false;
        e->run_ns = info->run_ns;
        return true;
}

bool thread_cache_place_from_regs(const struct user_regs_struct *regs, SyscallPlace *ret) {
        int nr = tracee_restarted_syscall(regs);

        if (nr < 0)
                return false;
        /* The argument registers, sp and the pc after the syscall instruction are what the
         * restart leaves them. */
        *ret = (SyscallPlace) {
                .known = true,
                .nr = nr,
                .args = { regs->rdi, regs->rsi, regs->rdx, regs->r10, regs->r8, regs->r9 },
                .sp = regs->rsp,
                .pc = regs->rip,
        };
        return true;
}

int stack_copy(const Stack *src, Stack *ret) {
        Stack s = { .n = src->n, .end = src->end };
        if (src->n > 0) {
                s.frames = malloc(src->n * sizeof *s.frames);
                if (!s.frames)
                        return -ENOMEM;
                memcpy(s.frames, src->frames, src->n * sizeof *s.frames);
        }
        *ret = s;
        return 0;
}

int thread_cache_update(ThreadCache *c, const Snapshot *s, const Stack *const *stacks) {
        ThreadCacheEntry *fresh = calloc(MAX(s->n_threads, 1u), sizeof *fresh);
        size_t n = 0;

        if (!fresh) {
                thread_cache_done(c);
                return -ENOMEM;
        }
        for (size_t i = 0; i < s->n_threads; i++) {
                const ThreadCapture *t = &s->threads[i];
                ThreadCacheEntry *old = find(c, t->tid);

                if (t->unchanged) {
                        if (old) {
                                fresh[n++] = *old;
                                old->stack = (Stack) {};        /* moved */
                        }
                        continue;
                }
                const Stack *stack = stacks ? stacks[i] : NULL;
                SyscallPlace place;
                if (t->error != 0 || t->reinjected_signal != 0 || !stack || stack->n == 0 ||
                    !thread_cache_place_from_regs(&t->regs, &place))
                        continue;
                ThreadCacheEntry *e = &fresh[n];
                *e = (ThreadCacheEntry) {
                        .tid = t->tid,
                        .start_time_ticks = t->info.start_time_ticks,
                        .stopped_ns = c->now_ns,
                        .run_ns = RUN_NS_UNKNOWN,
                        .place = place,
                        .syscall = t->info.syscall,
                };
                if (stack_copy(stack, &e->stack) < 0)
                        continue;
                n++;
        }
        thread_cache_done(c);
        c->entries = fresh;
        c->n = n;
        return 0;
}
