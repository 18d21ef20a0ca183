/* daemon/thread-waits.c -- see thread-waits.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>

#include "blocking-call.h"
#include "clock.h"
#include "hashmap.h"
#include "macro.h"
#include "procfs.h"
#include "target-memory.h"
#include "thread-waits.h"

/* The syscall a thread is blocked in, from the stop's registers or, for a thread the
 * snapshot did not stop, from /proc. A call our stop interrupted goes on as
 * restart_syscall with the call's own argument registers: its number is the one its libc
 * wrapper names, or else the one the dump remembered. False when it is in none. */
static bool thread_syscall(const ThreadCapture *c, const Stack *stack, int *ret_nr, uint64_t args[6]) {
        if (c->error != 0)
                return false;
        if (!c->unchanged) {
                const struct user_regs_struct *r = &c->regs;
                if ((int64_t) r->orig_rax < 0)
                        return false;
                *ret_nr = (int) r->orig_rax;
                uint64_t a[6] = { r->rdi, r->rsi, r->rdx, r->r10, r->r8, r->r9 };
                memcpy(args, a, sizeof a);
        } else {
                if (!c->info.place.known)
                        return false;
                *ret_nr = c->info.place.nr;
                memcpy(args, c->info.place.args, sizeof c->info.place.args);
        }
        if (*ret_nr == SYS_restart_syscall) {
                /* The wrapper on the stack is where it is now; the number remembered from
                 * an earlier snapshot only when the stack does not say. */
                int nr = wait_restarted_syscall(stack);
                if (nr < 0 && c->info.syscall >= 0 && c->info.syscall != SYS_restart_syscall)
                        nr = c->info.syscall;
                if (nr < 0)
                        return false;
                *ret_nr = nr;
        }
        return true;
}

static uint64_t thread_sp(const ThreadCapture *c) {
        if (c->error != 0)
                return 0;
        return c->unchanged ? (c->info.place.known ? c->info.place.sp : 0) : c->regs.rsp;
}

/* Reads and decodes the object of SITE. */
static void read_object(pid_t pid, const WaitSite *site, WaitObject *ret) {
        uint8_t bytes[WAIT_WINDOW_MAX];
        MemoryWindow w = wait_site_window(site);
        size_t len = 0;
        if (w.len > 0 && w.len <= sizeof bytes && target_memory_read(pid, w.addr, bytes, w.len) == 0)
                len = w.len;
        wait_object_decode(site, bytes, w.addr, len, ret);
}

typedef struct NsTid {
        pid_t ns_tid;                   /* as the target's memory records it */
        size_t index;
} NsTid;

static int ns_tid_cmp(const void *a, const void *b) {
        pid_t x = ((const NsTid *) a)->ns_tid, y = ((const NsTid *) b)->ns_tid;
        return x < y ? -1 : x > y;
}

static size_t find_thread(const NsTid *by_ns, size_t n, pid_t ns_tid) {
        NsTid key = { .ns_tid = ns_tid };
        const NsTid *found = bsearch(&key, by_ns, n, sizeof *by_ns, ns_tid_cmp);
        return found ? found->index : SIZE_MAX;
}

/* A thread of PID, not in the snapshot (created since), whose id in the target's pid
 * namespace is NS_TID: its host tid, or 0. */
static pid_t find_live_thread(pid_t pid, pid_t ns_tid, bool other_namespace) {
        ThreadInfo info;
        if (!other_namespace)
                return procfs_read_thread_stat(pid, ns_tid, &info) == 0 && info.state != 'Z' && info.state != 'X' ?
                        ns_tid : 0;
        pid_t *tids = NULL, found = 0;
        size_t n = 0;
        if (procfs_list_threads(pid, &tids, &n) < 0)
                return 0;
        for (size_t i = 0; i < n && !found; i++) {
                pid_t t;
                if (procfs_read_ns_tid(pid, tids[i], &t) == 0 && t == ns_tid)
                        found = tids[i];
        }
        free(tids);
        return found;
}

static void name_object(const ThreadDump *d, const Snapshot *s, AddressSpace *as, const uint64_t *stack_starts,
                        const uint64_t *sps, ThreadWait *w) {
        uint64_t addr = w->object.address;
        if (address_space_data_name(as, addr, w->name, sizeof w->name) == 0)
                return;
        const MapEntry *e = maps_find(&s->maps, addr);
        if (!e) {
                snprintf(w->name, sizeof w->name, "%#llx", (unsigned long long) addr);
                return;
        }
        /* Stacks without guard pages share one mapping: the thread whose frames hold ADDR
         * has the nearest sp below it. */
        size_t owner = SIZE_MAX;
        for (size_t i = 0; i < d->n_threads; i++)
                if (stack_starts[i] == e->start && sps[i] <= addr && (owner == SIZE_MAX || sps[i] > sps[owner]))
                        owner = i;
        if (owner != SIZE_MAX) {
                snprintf(w->name, sizeof w->name, "stack of thread %d %#llx", (int) d->threads[owner].tid,
                         (unsigned long long) addr);
                return;
        }
        if (!e->path || strcmp(e->path, "[heap]") == 0)
                snprintf(w->name, sizeof w->name, "heap %#llx", (unsigned long long) addr);
        else if (strcmp(e->path, "/dev/zero") == 0 && e->shared)      /* mmap(MAP_SHARED | MAP_ANONYMOUS) */
                snprintf(w->name, sizeof w->name, "shared memory %#llx", (unsigned long long) addr);
        else
                snprintf(w->name, sizeof w->name, "%.100s+%#llx", e->path,
                         (unsigned long long) (addr - e->start + e->offset));
}

/* What an owner absent from the dump turned out to be, per dump: many threads may wait on
 * one lock whose holder is new or gone, and /proc is asked once. */
#define OWNER_ORPHANED UINTPTR_MAX

/* Fills W's holder from the owner the object records. */
static void resolve_holder(const ThreadDump *d, const NsTid *by_ns, bool other_namespace, const WaitSite *site,
                           U64Map *absent, ThreadWait *w) {
        w->holder_index = SIZE_MAX;
        if (w->object.holder != WAIT_HOLDER_THREAD)
                return;
        size_t k = find_thread(by_ns, d->n_threads, w->object.owner);
        if (k != SIZE_MAX) {
                w->holder_index = k;
                w->holder_tid = d->threads[k].tid;
                return;
        }
        if (site->shared) {
                /* A process-shared object's holder may be a thread of another process: named
                 * when /proc shows it (in our pid namespace), never taken for a gone one. */
                pid_t tgid;
                if (!other_namespace && procfs_read_tgid(w->object.owner, &tgid) == 0) {
                        w->holder_tid = w->object.owner;
                        w->holder_pid = tgid != d->pid ? tgid : 0;
                } else
                        w->object.holder = WAIT_HOLDER_UNKNOWN;
                return;
        }
        uintptr_t known = (uintptr_t) u64map_get(absent, (uint64_t) w->object.owner);
        if (known == OWNER_ORPHANED) {
                w->orphaned = true;
                w->owner_ns = other_namespace;
                return;
        }
        if (known > 0) {
                w->holder_tid = (pid_t) (known - 1);
                return;
        }
        pid_t live = find_live_thread(d->pid, w->object.owner, other_namespace);
        if (live > 0) {
                w->holder_tid = live;
                u64map_put(absent, (uint64_t) w->object.owner, (void *) (uintptr_t) (live + 1));
                return;
        }
        /* No such thread: orphaned, if the object still says so now that we know. */
        WaitObject again;
        read_object(d->pid, site, &again);
        if (again.holder == WAIT_HOLDER_THREAD && again.owner == w->object.owner &&
            find_live_thread(d->pid, w->object.owner, other_namespace) == 0) {
                w->orphaned = true;
                w->owner_ns = other_namespace;
                u64map_put(absent, (uint64_t) w->object.owner, (void *) OWNER_ORPHANED);
        } else
                w->object.holder = WAIT_HOLDER_UNKNOWN;
}

/* Whether thread TID is blocked in the futex wait on FUTEX: its run time, in *RET_RUN_NS.
 * *RET_RUNNABLE tells a thread that is runnable (state R): maybe on its way back into the
 * wait it was stopped in. */
static bool still_waiting(pid_t pid, pid_t tid, uint64_t futex, uint64_t *ret_run_ns, bool *ret_runnable) {
        ThreadInfo info = {};
        if (procfs_read_thread_stat(pid, tid, &info) < 0)
                return false;
        if (info.state == 'R') {
                *ret_runnable = true;
                return false;
        }
        procfs_read_thread_wait(pid, tid, &info);
        if (!info.place.known || info.place.nr != SYS_futex || info.place.args[0] != futex)
                return false;
        /* 0: a kernel without schedstats, which proves nothing. */
        if (procfs_read_thread_run_ns(pid, tid, &info) < 0 || info.run_ns == RUN_NS_UNKNOWN || info.run_ns == 0)
                return false;
        *ret_run_ns = info.run_ns;
        return true;
}

/* See thread-waits.h: every member blocked and not running across a fresh read of every
 * object of the cycle, which names the same holders. *RET_RUNNABLE: a member was found
 * runnable, which a moment later may be settled in its wait again. */
static bool cycle_confirmed(const ThreadDump *d, const WaitSite *sites, const WaitCycle *c, bool *ret_runnable) {
        uint64_t *before = calloc(c->n, sizeof *before);
        bool ok = before != NULL;
        for (size_t k = 0; ok && k < c->n; k++) {
                size_t i = c->threads[k];
                ok = still_waiting(d->pid, d->threads[i].tid, sites[i].futex, &before[k], ret_runnable);
        }
        for (size_t k = 0; ok && k < c->n; k++) {
                size_t i = c->threads[k];
                WaitObject again;
                read_object(d->pid, &sites[i], &again);
                ok = again.holder == WAIT_HOLDER_THREAD && again.owner == d->threads[i].sync->object.owner;
        }
        for (size_t k = 0; ok && k < c->n; k++) {
                size_t i = c->threads[k];
                uint64_t after;
                ok = still_waiting(d->pid, d->threads[i].tid, sites[i].futex, &after, ret_runnable) &&
                     after == before[k];
        }
        free(before);
        return ok;
}

/* A thread just released by the snapshot goes back into its wait on its own time: on a
 * loaded machine it may still wait for a CPU (state R) a few milliseconds later. A cycle
 * that fails only because a member is runnable is looked at again, briefly. */
#define CONFIRM_ATTEMPTS 3
#define CONFIRM_RETRY_NS (5 * NSEC_PER_MSEC)

static bool cycle_confirmed_settled(const ThreadDump *d, const WaitSite *sites, const WaitCycle *c) {
        for (int attempt = 0; attempt < CONFIRM_ATTEMPTS; attempt++) {
                bool runnable = false;
                if (cycle_confirmed(d, sites, c, &runnable))
                        return true;
                if (!runnable)
                        return false;
                struct timespec ts = { 0, (long) CONFIRM_RETRY_NS };
                (void) nanosleep(&ts, NULL);
        }
        return false;
}

void thread_dump_decode_waits(ThreadDump *d, const Snapshot *s, AddressSpace *as) {
        size_t n = MIN(d->n_threads, s->n_threads);
        WaitSite *sites = calloc(MAX(n, 1u), sizeof *sites);
        NsTid *by_ns = calloc(MAX(n, 1u), sizeof *by_ns);
        uint64_t *stack_starts = calloc(MAX(n, 1u), sizeof *stack_starts);
        uint64_t *sps = calloc(MAX(n, 1u), sizeof *sps);
        const ThreadWait **edges = calloc(MAX(n, 1u), sizeof *edges);
        d->waits = calloc(MAX(n, 1u), sizeof *d->waits);
        if (!sites || !by_ns || !stack_starts || !sps || !edges || !d->waits)
                goto finish;

        bool other_namespace = d->other_pid_namespace;
        U64Map absent_owners = {}, read_at = {};
        for (size_t i = 0; i < n; i++) {
                const ThreadRecord *t = &d->threads[i];
                /* In another pid namespace a thread whose id there is unknown matches no
                 * recorded owner: its host tid would be a wrong name. */
                pid_t key = t->ns_tid > 0 ? t->ns_tid : other_namespace ? 0 : t->tid;
                by_ns[i] = (NsTid) { .ns_tid = key, .index = i };
                sps[i] = thread_sp(&s->threads[i]);
                const MapEntry *e = maps_find(&s->maps, sps[i]);
                stack_starts[i] = e ? e->start : UINT64_MAX;
        }
        qsort(by_ns, n, sizeof *by_ns, ns_tid_cmp);

        for (size_t i = 0; i < n; i++) {
                ThreadRecord *t = &d->threads[i];
                ThreadWait *w = &d->waits[i];
                int nr;
                uint64_t args[6];
                if (!thread_syscall(&s->threads[i], t->error == 0 ? &t->stack : NULL, &nr, args) ||
                    !wait_site_classify(t->error == 0 ? &t->stack : NULL, nr, args, &sites[i]))
                        continue;
                /* One read per object and dump, so that all its waiters name one holder. */
                uintptr_t first = (uintptr_t) u64map_get(&read_at, sites[i].futex);
                const WaitSite *f = first ? &sites[first - 1] : NULL;
                if (f && f->kind == sites[i].kind && f->futex_cmd == sites[i].futex_cmd &&
                    f->futex_val == sites[i].futex_val && f->shared == sites[i].shared) {
                        *w = d->waits[first - 1];
                } else {
                        read_object(d->pid, &sites[i], &w->object);
                        resolve_holder(d, by_ns, other_namespace, &sites[i], &absent_owners, w);
                        name_object(d, s, as, stack_starts, sps, w);
                        if (!first)
                                u64map_put(&read_at, sites[i].futex, (void *) (uintptr_t) (i + 1));
                }
                t->sync = w;
                edges[i] = w;
        }

        u64map_done(&absent_owners, NULL);
        u64map_done(&read_at, NULL);

        WaitCycle *cycles = NULL;
        size_t n_cycles = 0;
        if (wait_cycles_find(edges, n, &cycles, &n_cycles) < 0)
                goto finish;
        size_t kept = 0;
        for (size_t c = 0; c < n_cycles; c++) {
                if (cycle_confirmed_settled(d, sites, &cycles[c])) {
                        cycles[kept++] = cycles[c];
                        continue;
                }
                /* A thread that seems to wait for itself took the lock after the stop. */
                if (cycles[c].n == 1) {
                        ThreadWait *w = &d->waits[cycles[c].threads[0]];
                        w->object.holder = WAIT_HOLDER_UNKNOWN;
                        w->holder_index = SIZE_MAX;
                        w->holder_tid = 0;
                }
                free(cycles[c].threads);
        }
        d->deadlocks = cycles;
        d->n_deadlocks = kept;
        if (kept == 0) {
                free(cycles);
                d->deadlocks = NULL;
        }
finish:
        free(sites);
        free(by_ns);
        free(stack_starts);
        free(sps);
        free(edges);
}

void thread_dump_waits_done(ThreadDump *d) {
        wait_cycles_free(d->deadlocks, d->n_deadlocks);
        free(d->waits);
        d->waits = NULL;
        d->deadlocks = NULL;
        d->n_deadlocks = 0;
        for (size_t i = 0; i < d->n_threads; i++)
                d->threads[i].sync = NULL;
}

void thread_dump_describe_calls(ThreadDump *d, const Snapshot *s, const ThreadCache *cache) {
        BlockingCallContext *ctx = NULL;
        size_t n = MIN(d->n_threads, s->n_threads);
        for (size_t i = 0; i < n; i++) {
                ThreadRecord *t = &d->threads[i];
                int nr;
                uint64_t args[6];
                char text[256];
                if (t->sync || !thread_syscall(&s->threads[i], t->error == 0 ? &t->stack : NULL, &nr, args))
                        continue;
                if (!ctx && blocking_call_context_new(d->pid, &ctx) < 0)
                        break;
                const char *name = syscall_name(nr);
                /* A thread not stopped for this dump was last stopped when its cache entry
                 * was filled. */
                const ThreadCacheEntry *e = s->threads[i].unchanged ? thread_cache_find(cache, t->tid) : NULL;
                uint64_t since_stop = e && cache->now_ns > e->stopped_ns ? cache->now_ns - e->stopped_ns : 0;
                if (blocking_call_describe(ctx, t->tid, nr, args, t->wait_ns, since_stop, text, sizeof text))
                        name = text;
                char *copy = name ? strdup(name) : NULL;
                if (copy) {
                        free((char *) t->wait);
                        t->wait = copy;
                }
        }
        blocking_call_context_free(ctx);
}
