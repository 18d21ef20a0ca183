/* sources/heap-tracker.c -- see heap-tracker.h.
 *
 * Everything in the shared memory is the target's to scribble on: head is bounded by the
 * ring, every record is copied out before it is looked at, and its sizes are checked
 * against what was copied. A record that does not add up ends the drain; the next one
 * starts again from the agent's head. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/user.h>
#include <unistd.h>

#include "clock.h"
#include "config.h"
#include "agent-ring.h"
#include "heap-tracker.h"
#include "inject.h"
#include "log.h"
#include "macro.h"
#include "procfs.h"

#define RECORD_MAX (sizeof(AgentAlloc) + AGENT_STACK_COPY_MAX)
#define CHECK_EVERY_NS (NSEC_PER_SEC)
#define RESCAN_CALL_EVERY_NS (5 * NSEC_PER_SEC)

static char agent_path[PATH_MAX];

const char *heap_agent_default_path(void) {
        char exe[PATH_MAX];
        ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
        if (n > 0) {
                exe[n] = 0;
                char *slash = strrchr(exe, '/');
                if (slash) {
                        *slash = 0;
                        char candidate[PATH_MAX + 32], resolved[PATH_MAX];
                        snprintf(candidate, sizeof candidate, "%s/../agent/libcprofd-agent.so", exe);
                        if (realpath(candidate, resolved) && access(resolved, R_OK) == 0) {
                                snprintf(agent_path, sizeof agent_path, "%s", resolved);
                                return agent_path;
                        }
                }
        }
        return CPROFD_AGENT_PATH;
}

/* A digest of the executable file mappings in MAPS: it changes when a module is loaded
 * or unloaded. */
static uint64_t modules_signature(const Maps *maps) {
        uint64_t sig = UINT64_C(0xcbf29ce484222325);
        for (size_t i = 0; i < maps->n; i++) {
                const MapEntry *e = &maps->entries[i];
                if (e->executable && e->path && e->path[0] == '/')
                        sig = (sig ^ e->start ^ (e->inode << 17)) * UINT64_C(0x100000001b3);
        }
        return sig;
}

int heap_tracker_start(pid_t pid, const char *path, uint64_t rate, HeapTracker **ret, char *err, size_t errlen) {
        char resolved[PATH_MAX];
        if (!realpath(path, resolved)) {
                snprintf(err, errlen, "the heap agent %s is missing: %s", path, strerror(errno));
                return -ENOENT;
        }
        InjectRequest req = {
                .agent_path = resolved,
                .start_symbol = AGENT_START_SYMBOL,
                .args = { (uint64_t) getpid(), rate, AGENT_RING_SIZE_DEFAULT },
                /* Our pid means nothing (or another process) in a container's pid namespace. */
                .hangup_pipe = procfs_same_namespace(pid, "pid") == 0,
        };
        InjectResult res = { 0 };
        int r = inject_agent(pid, &req, &res, err, errlen);
        if (r < 0)
                return r;
        /* Closed on the way out unless the tracker keeps it. */
        _cleanup_close_ int hangup_fd = res.hangup_fd;
        if (res.start_result < 0) {
                r = (int) res.start_result;
                if (r == -EBUSY)
                        snprintf(err, errlen, "pid %d is already heap-tracked by another cprofd", (int) pid);
                else if (r == -ENOSYS)
                        snprintf(err, errlen, "pid %d's allocator does not export every allocation function",
                                 (int) pid);
                else
                        snprintf(err, errlen, "the agent could not start in pid %d: %s", (int) pid, strerror(-r));
                return r;
        }

        /* The memfd is the target's: open it through /proc, as a debugger may. */
        char fdpath[64];
        snprintf(fdpath, sizeof fdpath, "/proc/%d/fd/%d", (int) pid, (int) res.start_result);
        int fd = open(fdpath, O_RDWR | O_CLOEXEC);
        struct stat st;
        if (fd < 0 || fstat(fd, &st) < 0 || (size_t) st.st_size < AGENT_HEADER_SIZE + AGENT_RING_SIZE_MIN ||
            (size_t) st.st_size > AGENT_HEADER_SIZE + AGENT_RING_SIZE_MAX) {
                snprintf(err, errlen, "cannot open the agent's shared memory in pid %d", (int) pid);
                if (fd >= 0)
                        close(fd);
                return -EIO;
        }
        size_t size = (size_t) st.st_size;
        uint64_t ino = (uint64_t) st.st_ino;
        void *mem = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        close(fd);
        if (mem == MAP_FAILED) {
                snprintf(err, errlen, "cannot map the agent's shared memory: %s", strerror(errno));
                return -errno;
        }
        AgentHeader *h = mem;
        if (h->magic != AGENT_MAGIC || h->version != AGENT_VERSION || h->header_size != AGENT_HEADER_SIZE ||
            h->ring_size != size - AGENT_HEADER_SIZE) {
                munmap(mem, size);
                snprintf(err, errlen, "the agent in pid %d speaks another protocol", (int) pid);
                return -EPROTO;
        }
        /* The start call returns once the hooks are in place. */
        if (__atomic_load_n(&h->state, __ATOMIC_ACQUIRE) != AGENT_STATE_ACTIVE) {
                snprintf(err, errlen, "the agent did not start in pid %d", (int) pid);
                h->command = AGENT_COMMAND_STOP;
                munmap(mem, size);
                return -EIO;
        }
        HeapTracker *t = calloc(1, sizeof *t);
        if (!t) {
                h->command = AGENT_COMMAND_STOP;
                munmap(mem, size);
                return -ENOMEM;
        }
        *t = (HeapTracker) {
                .pid = pid,
                .shm = h,
                .shm_size = size,
                .started_ns = now_realtime_ns(),
                .agent_fd = (int) res.start_result,
                .agent_ino = ino,
                .last_check_ns = now_monotonic_ns(),
                .hangup_fd = TAKE_FD(hangup_fd),
        };
        snprintf(t->agent_path, sizeof t->agent_path, "%s", resolved);
        snprintf(t->agent_module, sizeof t->agent_module, "%s", res.agent_module);
        Maps maps;
        if (procfs_read_maps(pid, &maps) == 0) {       /* what the agent has just hooked */
                t->modules_signature = modules_signature(&maps);
                maps_done(&maps);
        }
        heap_init(&t->heap, rate);
        log_info("Heap tracking of pid %d started: agent loaded by thread %d in %.1f ms, %u modules, %llu GOT "
                 "entries redirected", (int) pid, (int) res.tid, (double) res.pause_ns / 1e6,
                 h->hooked_modules, (unsigned long long) h->hooked_slots);
        *ret = t;
        return 0;
}

int heap_tracker_start_uprobes(pid_t pid, uint64_t rate, HeapTracker **ret, char *err, size_t errlen) {
        HeapTracker *t = calloc(1, sizeof *t);
        if (!t)
                return -ENOMEM;
        int r = heap_uprobes_start(pid, rate, &t->uprobes, err, errlen);
        if (r < 0) {
                free(t);
                return r;
        }
        t->pid = pid;
        t->hangup_fd = -1;
        t->started_ns = now_realtime_ns();
        heap_init(&t->heap, rate);
        log_info("Heap tracking of pid %d started with uprobes", (int) pid);
        *ret = t;
        return 0;
}

/* Leading frames in the agent (the hook, its sampling function) are cprofd's, not the
 * program's. */
static void drop_agent_frames(const HeapTracker *t, Stack *s) {
        size_t k = 0;
        while (k < s->n && s->frames[k].loc && s->frames[k].loc->module &&
               strcmp(s->frames[k].loc->module, t->agent_module) == 0)
                k++;
        stack_drop_leaf_frames(s, k);
}

typedef struct DrainContext {
        HeapTracker *t;
        DrainMaps *maps;
} DrainContext;

static int on_record(uint32_t type, const uint8_t *rec, size_t size, void *userdata) {
        DrainContext *ctx = userdata;
        HeapTracker *t = ctx->t;
        if (type == AGENT_RECORD_FREE && size >= sizeof(AgentFree)) {
                AgentFree f;
                memcpy(&f, rec, sizeof f);
                heap_free(&t->heap, f.address);
                return 0;
        }
        AgentAlloc a;
        ThreadCapture c;
        if (type != AGENT_RECORD_ALLOC || agent_alloc_parse(rec, size, &a, &c) < 0)
                return 0;       /* the target's to scribble on: skipped */
        (void) drain_maps_get(ctx->maps);
        Stack stack = {};
        if (address_space_unwind(ctx->maps->as, &c, &stack) < 0)
                return 0;
        drop_agent_frames(t, &stack);
        if (heap_alloc(&t->heap, a.address, a.bytes, &stack) == 0)
                t->samples++;
        return 0;
}

/* Whether the target still holds the agent's memfd: an exec closes it (and drops the
 * agent with the old image), an exit too. */
static bool agent_held(const HeapTracker *t) {
        char path[64];
        struct stat st;
        snprintf(path, sizeof path, "/proc/%d/fd/%d", (int) t->pid, t->agent_fd);
        return stat(path, &st) == 0 && (uint64_t) st.st_ino == t->agent_ino;
}

/* The agent hooks modules loaded since it started at its next sample, which never comes
 * when all the allocating goes through the new module. Given a second for that, cprofd
 * has a borrowed thread do it (once in RESCAN_CALL_EVERY_NS at most). */
static void check_modules(HeapTracker *t, DrainMaps *maps, uint64_t now) {
        const Maps *m = drain_maps_get(maps);
        if (!m)
                return;
        uint64_t sig = modules_signature(m);
        if (sig != t->modules_signature) {
                if (t->modules_signature != 0 && t->modules_changed_ns == 0)
                        t->modules_changed_ns = now_realtime_ns();
                t->modules_signature = sig;
                return;
        }
        if (t->modules_changed_ns == 0)
                return;
        if (__atomic_load_n(&t->shm->scanned_ns, __ATOMIC_ACQUIRE) >= t->modules_changed_ns) {
                t->modules_changed_ns = 0;
                return;
        }
        if (t->rescan_called_ns && now - t->rescan_called_ns < RESCAN_CALL_EVERY_NS)
                return;
        t->rescan_called_ns = now;
        InjectRequest req = { .agent_path = t->agent_path, .start_symbol = AGENT_RESCAN_SYMBOL };
        InjectResult res = { 0 };
        char err[256];
        if (inject_agent(t->pid, &req, &res, err, sizeof err) < 0 || res.start_result < 0) {
                log_debug("Heap agent in pid %d: new modules not hooked yet (%s)", (int) t->pid,
                          res.start_result < 0 ? "busy" : err);
                return;
        }
        t->modules_changed_ns = 0;
        log_info("Heap agent in pid %d hooked the modules loaded since, on thread %d in %.1f ms", (int) t->pid,
                 (int) res.tid, (double) res.pause_ns / 1e6);
}

/* Whether the agent is still there (it may stop on its own, and it is gone with the
 * target's image), and whether it has hooked every module. */
static void check_agent(HeapTracker *t, DrainMaps *maps) {
        uint64_t now = now_monotonic_ns();
        if (now - t->last_check_ns < CHECK_EVERY_NS)
                return;
        t->last_check_ns = now;
        if (__atomic_load_n(&t->shm->state, __ATOMIC_ACQUIRE) != AGENT_STATE_ACTIVE || !agent_held(t)) {
                t->gone = true;
                return;
        }
        check_modules(t, maps, now);
}

void heap_tracker_drain(HeapTracker *t, DrainMaps *maps) {
        static uint8_t rec[RECORD_MAX];
        if (t->gone)
                return;
        if (t->uprobes) {
                /* Its target's exit is the caller's to see (target_check_exited). */
                t->samples += heap_uprobes_drain(t->uprobes, maps, &t->heap);
                return;
        }
        const uint8_t *ring = (const uint8_t *) t->shm + AGENT_HEADER_SIZE;
        uint64_t head = __atomic_load_n(&t->shm->head, __ATOMIC_ACQUIRE);
        DrainContext ctx = { .t = t, .maps = maps };
        /* A record that does not add up ends the drain (see above). */
        (void) agent_ring_read(ring, t->shm_size - AGENT_HEADER_SIZE, head, &t->tail, rec, sizeof rec, on_record,
                               &ctx);
        __atomic_store_n(&t->shm->tail, t->tail, __ATOMIC_RELEASE);
        t->heap.lost = __atomic_load_n(&t->shm->lost, __ATOMIC_RELAXED) +
                       __atomic_load_n(&t->shm->untracked, __ATOMIC_RELAXED);
        check_agent(t, maps);
}

HeapTracker *heap_tracker_stop(HeapTracker *t) {
        if (!t)
                return NULL;
        if (t->uprobes) {
                heap_uprobes_free(t->uprobes);
                heap_done(&t->heap);
                free(t);
                return NULL;
        }
        if (!t->gone && agent_held(t)) {
                /* The command alone is seen at the agent's next sample, which an idle
                 * target may never take: a borrowed thread stops it now. */
                __atomic_store_n(&t->shm->command, AGENT_COMMAND_STOP, __ATOMIC_RELEASE);
                InjectRequest req = { .agent_path = t->agent_path, .start_symbol = AGENT_STOP_SYMBOL };
                InjectResult res = { 0 };
                char err[256];
                if (inject_agent(t->pid, &req, &res, err, sizeof err) < 0)
                        log_info("Heap agent in pid %d stops at its next sample (%s)", (int) t->pid, err);
                else if (res.start_result < 0)
                        log_info("Heap agent in pid %d stops at its next sample (busy)", (int) t->pid);
                else
                        log_info("Heap agent in pid %d stopped by thread %d in %.1f ms", (int) t->pid, (int) res.tid,
                                 (double) res.pause_ns / 1e6);
        }
        munmap(t->shm, t->shm_size);
        if (t->hangup_fd >= 0)
                close(t->hangup_fd);
        heap_done(&t->heap);
        free(t);
        return NULL;
}
