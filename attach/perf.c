/* attach/perf.c -- CPU sampling of one process with perf_event_open: events per (thread,
 * CPU), one shared ring buffer per CPU, and a parser of what the kernel writes there.
 *
 * Only this file calls perf_event_open(2). Every fd opened is owned by the sampler as soon
 * as it exists and is closed by perf_sampler_free() or by the rollback of a failed open;
 * events are disabled before they are closed, and closing an inherited parent event makes
 * the kernel remove its children from the target's threads, so nothing is left behind.
 *
 * The ring buffers are written by the kernel, but every length in them is still checked
 * against the record that holds it (and every record against data_head) before it is
 * used: a bug in here must never turn into a read outside the mapping.
 *
 * Why the choices (see perf.h for the contract):
 * - cpu-clock, not task-clock or a hardware counter: it works in VMs without a PMU and its
 *   period is plain nanoseconds of the thread's CPU time, which is what pprof's
 *   cpu/nanoseconds period means. A fixed sample_period (not attr.freq) keeps that period
 *   exact.
 * - per (thread, CPU) events: the kernel allows neither mmap of an inherited cpu = -1
 *   event nor SET_OUTPUT across tasks for cpu = -1 events (tested on 6.18; `perf record -p`
 *   opens per-CPU events for the same reason).
 * - attr.task = 1 for PERF_RECORD_FORK/EXIT: the only way to know that a new thread was
 *   inherited and must not be opened again; PERF_SAMPLE_IDENTIFIER to drop the samples of
 *   a thread that got both (see sample_is_duplicate()).
 * - Newer attributes (PERF_FORMAT_LOST 6.0, inherit_thread 5.13, use_clockid 4.1) are
 *   dropped one by one, newest first, when the kernel says EINVAL on the first open. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <asm/perf_regs.h>

#include "clock.h"
#include "hashmap.h"
#include "macro.h"
#include "perf.h"
#include "procfs.h"

#define CPUS_MAX 4096                   /* CPU numbers beyond this are ignored */
#define CPU_LIST_MAX 4096               /* bytes of /sys/devices/system/cpu/online read */

typedef enum ThreadState {
        THREAD_LIVE = 1,
        THREAD_EXITED,
} ThreadState;

/* A thread we opened events for. */
typedef struct ThreadEntry {
        pid_t tid;
        ThreadState state;
        uint64_t enabled_ns;            /* monotonic time just before its events were
                                           enabled (0: enabled with the first batch) */
} ThreadEntry;

/* One per online CPU: the buffer every event of that CPU writes into. */
typedef struct Ring {
        int cpu;
        int fd;                         /* borrowed: the event that was mmapped (in fds) */
        void *map;                      /* NULL until the first event of this CPU */
        size_t map_size;
        size_t data_size;               /* wanted, then actual */
        struct perf_event_mmap_page *meta;
} Ring;

/* One buffer's unread records, for the merge by time. */
typedef struct RingCursor {
        struct perf_event_mmap_page *meta;
        const uint8_t *data;
        uint64_t size, head, tail;
        uint64_t next_time;             /* of the record at tail */
        int cpu;
        struct perf_event_header next;
} RingCursor;

struct PerfSampler {
        pid_t pid;
        struct perf_event_attr attr;    /* as the kernel accepted it once probed */
        const char *filter;             /* the tracepoint filter set on every event */
        bool time_ordered;              /* drains merge the buffers by time */
        RingCursor *cursors;            /* n_cpus, for time_ordered drains */
        bool probed;
        bool mmap_refused;              /* a buffer was refused with EPERM (mlock limit) */
        uint64_t period_ns;

        Ring *rings;                    /* n_cpus */
        size_t n_cpus;

        int *fds;                       /* every event we opened */
        size_t n_fds, cap_fds;

        U64Map threads;                 /* tid -> ThreadEntry*: opened by us */
        U64Map forked;                  /* tid -> THREAD_LIVE/THREAD_EXITED cast to a
                                           pointer: announced by PERF_RECORD_FORK */
        U64Map id_owner;                /* event id -> tid cast to a pointer */
        U64Map names;                   /* tid -> char[THREAD_NAME_MAX] from COMM records */

        uint8_t *bounce;                /* PERF_RECORD_MAX bytes */
        PerfSamplerStats stats;
};

static int sys_perf_event_open(struct perf_event_attr *attr, pid_t pid, int cpu, int group,
                               unsigned long flags) {
        return (int) syscall(SYS_perf_event_open, attr, pid, cpu, group, flags);
}

/* ---- online CPUs ---- */

/* Parses a kernel CPU list ("0-3,6,8-9\n") into ascending CPU numbers < CPUS_MAX. */
static int parse_cpu_list(const char *s, int **ret, size_t *ret_n) {
        _cleanup_free_ int *cpus = NULL;
        size_t n = 0, cap = 0;
        const char *p = s;

        while (*p && *p != '\n') {
                char *end;
                errno = 0;
                long a = strtol(p, &end, 10), b;
                if (errno || end == p || a < 0)
                        return -EINVAL;
                p = end;
                b = a;
                if (*p == '-') {
                        p++;
                        b = strtol(p, &end, 10);
                        if (errno || end == p || b < a)
                                return -EINVAL;
                        p = end;
                }
                for (long c = a; c <= b && c < CPUS_MAX; c++) {
                        if (n == cap) {
                                size_t ncap = cap ? cap * 2 : 16;
                                int *q = realloc(cpus, ncap * sizeof *q);
                                if (!q)
                                        return -ENOMEM;
                                cpus = q;
                                cap = ncap;
                        }
                        if (n > 0 && cpus[n - 1] >= c)
                                return -EINVAL;
                        cpus[n++] = (int) c;
                }
                if (*p == ',')
                        p++;
                else if (*p && *p != '\n')
                        return -EINVAL;
        }
        if (n == 0)
                return -EINVAL;
        *ret = TAKE_PTR(cpus);
        *ret_n = n;
        return 0;
}

static int online_cpus(int **ret, size_t *ret_n) {
        char buf[CPU_LIST_MAX];
        _cleanup_close_ int fd = open("/sys/devices/system/cpu/online", O_RDONLY | O_CLOEXEC);
        if (fd >= 0) {
                ssize_t n = read(fd, buf, sizeof buf - 1);
                if (n > 0) {
                        buf[n] = 0;
                        if (parse_cpu_list(buf, ret, ret_n) == 0)
                                return 0;
                }
        }
        /* No sysfs (a sandbox): assume CPUs 0..n-1 are online. */
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        if (n <= 0)
                return -ENOENT;
        n = MIN(n, (long) CPUS_MAX);
        int *cpus = calloc((size_t) n, sizeof *cpus);
        if (!cpus)
                return -ENOMEM;
        for (long i = 0; i < n; i++)
                cpus[i] = (int) i;
        *ret = cpus;
        *ret_n = (size_t) n;
        return 0;
}

/* ---- events ---- */

int perf_uprobe_pmu(uint32_t *ret_type, unsigned *ret_return_bit) {
        /* Read once: a sampler on every allocation function asks for it. */
        static int r = 1;
        static uint32_t type;
        static unsigned bit;
        if (r == 1) {
                char buf[64] = "";
                FILE *f = fopen("/sys/bus/event_source/devices/uprobe/type", "re");
                unsigned t = 0, b = 0;
                bool ok = f && fgets(buf, sizeof buf, f) && sscanf(buf, "%u", &t) == 1;
                if (f)
                        fclose(f);
                f = fopen("/sys/bus/event_source/devices/uprobe/format/retprobe", "re");
                if (f) {
                        if (!fgets(buf, sizeof buf, f) || sscanf(buf, "config:%u", &b) != 1 || b > 63)
                                ok = false;
                        fclose(f);
                }
                type = t;
                bit = b;
                r = ok ? 0 : -EOPNOTSUPP;
        }
        if (r == 0) {
                *ret_type = type;
                *ret_return_bit = bit;
        }
        return r;
}

static void attr_init(struct perf_event_attr *a, uint64_t period_ns, uint32_t stack_bytes,
                      bool kernel_callchain) {
        *a = (struct perf_event_attr) {
                .size = sizeof *a,
                .type = PERF_TYPE_SOFTWARE,
                .config = PERF_COUNT_SW_CPU_CLOCK,
                .sample_period = period_ns,
                .sample_type = PERF_SAMPLER_SAMPLE_TYPE,
                .read_format = PERF_FORMAT_LOST,
                .disabled = 1,
                .inherit = 1,
                .inherit_thread = 1,
                .exclude_hv = 1,
                .exclude_callchain_kernel = !kernel_callchain,
                .exclude_callchain_user = 0,
                .comm = 1,
                .task = 1,
                .context_switch = 0,
                .use_clockid = 1,
                .clockid = CLOCK_MONOTONIC,
                .sample_regs_user = PERF_SAMPLER_REGS_MASK,
                .sample_stack_user = stack_bytes,
        };
}

/* Opens one event. The first successful open settles which attributes this kernel and
 * these privileges accept; later opens use them as they are. */
static int event_open(PerfSampler *s, pid_t tid, int cpu) {
        for (;;) {
                int fd = sys_perf_event_open(&s->attr, tid, cpu, -1, PERF_FLAG_FD_CLOEXEC);
                if (fd >= 0) {
                        s->probed = true;
                        return fd;
                }
                int r = -errno;
                if (s->probed || r == -ESRCH)
                        return r;
                /* Not for a tracepoint: it fires in the kernel, so exclude_kernel would
                 * silence it altogether. */
                if ((r == -EACCES || r == -EPERM) && !s->attr.exclude_kernel &&
                    s->attr.type != PERF_TYPE_TRACEPOINT) {
                        /* perf_event_paranoid ≥ 2 without CAP_PERFMON: user space only. */
                        s->attr.exclude_kernel = 1;
                        s->attr.exclude_callchain_kernel = 1;
                        continue;
                }
                if (r == -EINVAL || r == -E2BIG) {
                        if (s->attr.read_format & PERF_FORMAT_LOST) {
                                s->attr.read_format &= ~(uint64_t) PERF_FORMAT_LOST;
                                continue;
                        }
                        if (s->attr.inherit_thread) {
                                s->attr.inherit_thread = 0;
                                continue;
                        }
                        if (s->attr.use_clockid) {
                                s->attr.use_clockid = 0;
                                s->attr.clockid = 0;
                                continue;
                        }
                }
                return r;
        }
}

static int fds_reserve(PerfSampler *s, size_t more) {
        if (s->n_fds + more > PERF_EVENTS_MAX)
                return -E2BIG;
        if (s->n_fds + more <= s->cap_fds)
                return 0;
        size_t cap = MAX(s->cap_fds * 2, s->n_fds + more);
        cap = MAX(cap, (size_t) 64);
        int *p = realloc(s->fds, cap * sizeof *p);
        if (!p)
                return -ENOMEM;
        s->fds = p;
        s->cap_fds = cap;
        return 0;
}

static int ring_map(PerfSampler *s, Ring *ring, int fd) {
        size_t page = (size_t) sysconf(_SC_PAGESIZE);
        void *m = mmap(NULL, page + ring->data_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);

        if (m == MAP_FAILED) {
                /* EPERM: over perf_event_mlock_kb × CPUs + RLIMIT_MEMLOCK without
                 * CAP_IPC_LOCK. */
                if (errno == EPERM)
                        s->mmap_refused = true;
                return -errno;
        }
        ring->map = m;
        ring->map_size = page + ring->data_size;
        ring->meta = m;
        ring->fd = fd;
        s->stats.rings++;
        s->stats.ring_bytes_total += ring->data_size;
        return 0;
}

static void ring_unmap(PerfSampler *s, Ring *ring) {
        if (!ring->map)
                return;
        (void) munmap(ring->map, ring->map_size);
        s->stats.rings--;
        s->stats.ring_bytes_total -= ring->data_size;
        ring->map = NULL;
        ring->meta = NULL;
        ring->fd = -EBADF;
}

/* Closes the fds from index FROM on (a failed thread open), unmapping a buffer whose
 * event is among them. */
static void fds_rollback(PerfSampler *s, size_t from) {
        for (size_t i = from; i < s->n_fds; i++) {
                for (size_t c = 0; c < s->n_cpus; c++)
                        if (s->rings[c].map && s->rings[c].fd == s->fds[i])
                                ring_unmap(s, &s->rings[c]);
                (void) ioctl(s->fds[i], PERF_EVENT_IOC_DISABLE, 0);
                (void) close(s->fds[i]);
        }
        s->n_fds = from;
}

/* Opens TID's event on every online CPU, attaches each to its CPU's buffer and, when
 * ENABLE, enables them. 0, -ESRCH when the thread is gone, or negative errno; on failure
 * nothing of this thread stays open. */
static int thread_open(PerfSampler *s, pid_t tid, bool enable) {
        size_t from = s->n_fds;
        uint64_t enabled_ns = 0;
        int r;

        r = fds_reserve(s, s->n_cpus);
        if (r < 0)
                return r;

        for (size_t c = 0; c < s->n_cpus; c++) {
                int fd = event_open(s, tid, s->rings[c].cpu);
                if (fd < 0) {
                        if (fd == -ENODEV)
                                continue;       /* the CPU went offline meanwhile */
                        r = fd;
                        goto fail;
                }
                s->fds[s->n_fds++] = fd;

                Ring *ring = &s->rings[c];
                if (!ring->map)
                        r = ring_map(s, ring, fd);
                else if (ioctl(fd, PERF_EVENT_IOC_SET_OUTPUT, ring->fd) < 0)
                        r = -errno;
                if (r < 0)
                        goto fail;

                if (s->filter && ioctl(fd, PERF_EVENT_IOC_SET_FILTER, s->filter) < 0) {
                        r = -errno;
                        goto fail;
                }
                uint64_t id;
                if (ioctl(fd, PERF_EVENT_IOC_ID, &id) < 0) {
                        r = -errno;
                        goto fail;
                }
                (void) u64map_put(&s->id_owner, id, (void *) (uintptr_t) tid);
        }
        if (s->n_fds == from) {
                r = -ENODEV;
                goto fail;
        }

        if (enable) {
                enabled_ns = now_monotonic_ns();
                for (size_t i = from; i < s->n_fds; i++)
                        if (ioctl(s->fds[i], PERF_EVENT_IOC_ENABLE, 0) < 0) {
                                r = -errno;
                                goto fail;
                        }
        }

        ThreadEntry *t = u64map_get(&s->threads, (uint64_t) tid);
        if (!t) {
                t = malloc(sizeof *t);
                if (!t) {
                        r = -ENOMEM;
                        goto fail;
                }
                (void) u64map_put(&s->threads, (uint64_t) tid, t);
        } else
                s->stats.threads_opened--;      /* a reused tid, counted again below */
        *t = (ThreadEntry) { .tid = tid, .state = THREAD_LIVE, .enabled_ns = enabled_ns };
        s->stats.threads_opened++;
        s->stats.events = s->n_fds;
        return 0;

fail:
        fds_rollback(s, from);
        s->stats.events = s->n_fds;
        return r;
}

static bool thread_is_known(const PerfSampler *s, pid_t tid) {
        const ThreadEntry *t = u64map_get(&s->threads, (uint64_t) tid);
        if (t && t->state == THREAD_LIVE)
                return true;
        return u64map_get(&s->forked, (uint64_t) tid) == (void *) (uintptr_t) THREAD_LIVE;
}

static void rings_peek_forks(PerfSampler *s);

/* Opens every listed thread not known yet. Returns how many were opened. */
static int open_new_threads(PerfSampler *s, bool enable) {
        _cleanup_free_ pid_t *tids = NULL;
        size_t n_tids;
        int r, opened = 0;

        r = procfs_list_threads(s->pid, &tids, &n_tids);
        if (r < 0)
                return r;
        /* A thread is listed a moment before the kernel announces it (copy_process()
         * makes it visible, then calls perf_event_fork()): look for announcements not
         * drained yet only now, after listing. */
        if (enable)
                rings_peek_forks(s);
        for (size_t i = 0; i < n_tids; i++) {
                if (thread_is_known(s, tids[i]))
                        continue;
                r = thread_open(s, tids[i], enable);
                if (r == -ESRCH)
                        continue;
                if (r < 0)
                        return r;
                opened++;
        }
        return opened;
}

static void free_value(void *p) {
        free(p);
}

PerfSampler *perf_sampler_free(PerfSampler *s) {
        if (!s)
                return NULL;
        /* Disable first, so no event keeps writing while the others are torn down. */
        for (size_t i = 0; i < s->n_fds; i++)
                (void) ioctl(s->fds[i], PERF_EVENT_IOC_DISABLE, 0);
        for (size_t c = 0; c < s->n_cpus; c++)
                ring_unmap(s, &s->rings[c]);
        for (size_t i = 0; i < s->n_fds; i++)
                (void) close(s->fds[i]);
        free(s->fds);
        free(s->rings);
        free(s->cursors);
        u64map_done(&s->threads, free_value);
        u64map_done(&s->forked, NULL);
        u64map_done(&s->id_owner, NULL);
        u64map_done(&s->names, free_value);
        free(s->bounce);
        free(s);
        return NULL;
}

DEFINE_POINTER_CLEANUP(PerfSampler, perf_sampler_free);

/* Sets up a sampler with PER_CPU data bytes per buffer. */
static int sampler_setup(pid_t pid, const PerfSamplerOptions *o, const int *cpus, size_t n_cpus,
                         size_t per_cpu, PerfSampler **ret, bool *ret_mmap_refused) {
        _cleanup_(perf_sampler_freep) PerfSampler *s = NULL;
        int r;

        s = calloc(1, sizeof *s);
        if (!s)
                return -ENOMEM;
        s->pid = pid;
        s->period_ns = NSEC_PER_SEC / o->frequency_hz;
        s->bounce = aligned_alloc(8, PERF_RECORD_MAX);
        s->rings = calloc(n_cpus, sizeof *s->rings);
        if (!s->bounce || !s->rings)
                return -ENOMEM;
        s->n_cpus = n_cpus;
        for (size_t c = 0; c < n_cpus; c++)
                s->rings[c] = (Ring) { .cpu = cpus[c], .fd = -EBADF, .data_size = per_cpu };
        attr_init(&s->attr, s->period_ns, o->stack_bytes, !o->exclude_kernel_callchain);
        if (o->probe_path) {
                uint32_t type;
                unsigned return_bit;
                r = perf_uprobe_pmu(&type, &return_bit);
                if (r < 0)
                        return r;
                s->attr.type = type;
                s->attr.config = o->probe_return ? UINT64_C(1) << return_bit : 0;
                s->attr.config1 = (uint64_t) (uintptr_t) o->probe_path;  /* read at open only */
                s->attr.config2 = o->probe_offset;
                s->attr.sample_period = 1;
        } else if (o->tracepoint_id) {
                s->attr.type = PERF_TYPE_TRACEPOINT;
                s->attr.config = o->tracepoint_id;
                s->attr.sample_period = 1;
                s->attr.sample_type = (PERF_SAMPLER_SAMPLE_TYPE & ~(uint64_t) PERF_SAMPLE_CALLCHAIN) |
                                      PERF_SAMPLE_RAW;
                s->filter = o->tracepoint_filter;
        }
        s->time_ordered = o->time_ordered;
        if (s->time_ordered && !(s->cursors = calloc(n_cpus, sizeof *s->cursors)))
                return -ENOMEM;
        if (o->context_switches) {
                s->attr.context_switch = 1;
                s->attr.sample_id_all = 1;      /* switch records carry tid, time and id */
        }

        /* Open every thread, disabled; then enable them all at once. */
        r = open_new_threads(s, false);
        if (r == 0)
                r = -ESRCH;
        if (r < 0) {
                *ret_mmap_refused = s->mmap_refused;
                return r;
        }
        for (size_t i = 0; i < s->n_fds; i++)
                if (ioctl(s->fds[i], PERF_EVENT_IOC_ENABLE, 0) < 0)
                        return -errno;

        /* Threads created while we were opening: those made by an opened thread inherited
         * disabled events that the enable above switched on (and would be deduplicated if
         * opened again); those made by a thread not opened yet are only found here. */
        r = open_new_threads(s, true);
        if (r < 0)
                return r;

        s->stats.period_ns = s->period_ns;
        s->stats.kernel_excluded = s->attr.exclude_kernel;
        s->stats.monotonic_time = s->attr.use_clockid;
        *ret = TAKE_PTR(s);
        return 0;
}

int perf_sampler_new(pid_t pid, const PerfSamplerOptions *opts, PerfSampler **ret) {
        PerfSamplerOptions o = opts ? *opts : (PerfSamplerOptions) {};
        _cleanup_free_ int *cpus = NULL;
        size_t n_cpus;
        int r;

        if (pid <= 0 || !ret)
                return -EINVAL;
        if (o.frequency_hz == 0)
                o.frequency_hz = PERF_FREQUENCY_DEFAULT;
        if (o.frequency_hz > PERF_FREQUENCY_MAX)
                return -EINVAL;
        if (o.stack_bytes == 0)
                o.stack_bytes = PERF_STACK_BYTES_DEFAULT;
        if (o.stack_bytes > PERF_STACK_BYTES_MAX || o.stack_bytes % 8 != 0)
                return -EINVAL;
        if (o.ring_bytes > PERF_RING_BYTES_MAX)
                return -EINVAL;
        bool ring_default = o.ring_bytes == 0 || o.ring_may_shrink;
        if (o.ring_bytes == 0)
                o.ring_bytes = PERF_RING_BYTES_DEFAULT;

        r = online_cpus(&cpus, &n_cpus);
        if (r < 0)
                return r;

        /* Split the data bytes between CPUs: a power of two of pages each, at least the
         * minimum (one buffer must hold a few of the largest records). */
        size_t page = (size_t) sysconf(_SC_PAGESIZE);
        size_t per_cpu = o.ring_bytes / n_cpus, pages = 1;
        while (pages * 2 * page <= per_cpu)
                pages *= 2;
        per_cpu = MAX(pages * page, (size_t) PERF_RING_BYTES_PER_CPU_MIN);

        /* With the default size, buffers the mlock limit refuses are halved, all of them
         * alike, and everything is set up again. */
        for (;;) {
                bool refused = false;
                r = sampler_setup(pid, &o, cpus, n_cpus, per_cpu, ret, &refused);
                if (r != -EPERM || !refused || !ring_default ||
                    per_cpu / 2 < PERF_RING_BYTES_PER_CPU_MIN)
                        return r;
                per_cpu /= 2;
        }
}

int perf_sampler_refresh(PerfSampler *s) {
        if (!s)
                return -EINVAL;
        return open_new_threads(s, true);
}

/* ---- parsing ---- */

typedef struct Cursor {
        const uint8_t *p, *end;
} Cursor;

static bool take_u64(Cursor *c, uint64_t *ret) {
        if ((size_t) (c->end - c->p) < sizeof *ret)
                return false;
        memcpy(ret, c->p, sizeof *ret);
        c->p += sizeof *ret;
        return true;
}

static bool take_bytes(Cursor *c, uint64_t n, const uint8_t **ret) {
        if ((uint64_t) (c->end - c->p) < n)
                return false;
        *ret = c->p;
        c->p += n;
        return true;
}

/* Splits the call chain at its PERF_CONTEXT_* markers. Each context is expected once;
 * frames of a repeated context, of guest contexts, or before any marker are ignored. */
static void split_callchain(const uint64_t *ips, uint64_t nr, PerfSample *s) {
        enum { NONE, KERNEL, USER } into = NONE;
        bool seen_kernel = false, seen_user = false;

        for (uint64_t i = 0; i < nr; i++) {
                uint64_t ip;
                memcpy(&ip, &ips[i], sizeof ip);
                if (ip >= (uint64_t) PERF_CONTEXT_MAX) {
                        into = NONE;
                        if (ip == (uint64_t) PERF_CONTEXT_KERNEL && !seen_kernel) {
                                seen_kernel = true;
                                into = KERNEL;
                                s->kernel_frames = ips + i + 1;
                        } else if (ip == (uint64_t) PERF_CONTEXT_USER && !seen_user) {
                                seen_user = true;
                                into = USER;
                                s->user_callchain = ips + i + 1;
                        }
                        continue;
                }
                if (into == KERNEL)
                        s->n_kernel_frames++;
                else if (into == USER)
                        s->n_user_callchain++;
        }
}

static void regs_from_perf(const uint64_t v[PERF_SAMPLER_N_REGS], struct user_regs_struct *r) {
        /* In bit order of PERF_SAMPLER_REGS_MASK: AX BX CX DX SI DI BP SP IP FLAGS CS SS,
         * then R8..R15. */
        *r = (struct user_regs_struct) {
                .rax = v[0], .rbx = v[1], .rcx = v[2], .rdx = v[3],
                .rsi = v[4], .rdi = v[5], .rbp = v[6], .rsp = v[7],
                .rip = v[8], .eflags = v[9], .cs = v[10], .ss = v[11],
                .r8 = v[12], .r9 = v[13], .r10 = v[14], .r11 = v[15],
                .r12 = v[16], .r13 = v[17], .r14 = v[18], .r15 = v[19],
        };
}

int perf_sample_parse(const struct perf_event_header *h, PerfSample *ret) {
        return perf_sample_parse_type(h, PERF_SAMPLER_SAMPLE_TYPE, ret);
}

int perf_sample_parse_type(const struct perf_event_header *h, uint64_t sample_type, PerfSample *ret) {
        PerfSample s = {};
        uint64_t v, nr, abi, size;
        const uint8_t *bytes;
        const uint64_t required = PERF_SAMPLE_IDENTIFIER | PERF_SAMPLE_TID | PERF_SAMPLE_TIME;

        if ((sample_type & required) != required ||
            (sample_type & ~(uint64_t) (PERF_SAMPLER_SAMPLE_TYPE | PERF_SAMPLE_RAW)))
                return -EINVAL;
        if (!h || ((uintptr_t) h & 7) || h->type != PERF_RECORD_SAMPLE || h->size < sizeof *h)
                return -EBADMSG;
        Cursor c = { .p = (const uint8_t *) (h + 1), .end = (const uint8_t *) h + h->size };

        /* PERF_SAMPLE_IDENTIFIER */
        if (!take_u64(&c, &s.event_id))
                return -EBADMSG;
        /* PERF_SAMPLE_TID: u32 pid, u32 tid */
        if (!take_u64(&c, &v))
                return -EBADMSG;
        uint32_t pt[2];
        memcpy(pt, &v, sizeof pt);
        s.pid = (pid_t) pt[0];
        s.tid = (pid_t) pt[1];
        /* PERF_SAMPLE_TIME */
        if (!take_u64(&c, &s.time_ns))
                return -EBADMSG;
        /* PERF_SAMPLE_CALLCHAIN: u64 nr, u64 ips[nr] */
        if (sample_type & PERF_SAMPLE_CALLCHAIN) {
                if (!take_u64(&c, &nr) || nr > (uint64_t) (c.end - c.p) / sizeof(uint64_t) ||
                    !take_bytes(&c, nr * sizeof(uint64_t), &bytes))
                        return -EBADMSG;
                split_callchain((const uint64_t *) (const void *) bytes, nr, &s);
        }
        /* PERF_SAMPLE_RAW: u32 size, the data, padding to 8 bytes (the size counts the
         * data only; the u32 and the data together are padded). */
        if (sample_type & PERF_SAMPLE_RAW) {
                uint32_t raw_size;
                if ((size_t) (c.end - c.p) < sizeof raw_size)
                        return -EBADMSG;
                memcpy(&raw_size, c.p, sizeof raw_size);
                uint64_t padded = ((uint64_t) raw_size + sizeof raw_size + 7) & ~UINT64_C(7);
                if (!take_bytes(&c, padded, &bytes))
                        return -EBADMSG;
                s.raw = bytes + sizeof raw_size;
                s.raw_size = raw_size;
        }
        if (!(sample_type & PERF_SAMPLE_REGS_USER))
                goto done;
        /* PERF_SAMPLE_REGS_USER: u64 abi, then one u64 per mask bit unless ABI_NONE */
        if (!take_u64(&c, &abi))
                return -EBADMSG;
        if (abi != PERF_SAMPLE_REGS_ABI_NONE) {
                uint64_t regs[PERF_SAMPLER_N_REGS];
                if (!take_bytes(&c, sizeof regs, &bytes))
                        return -EBADMSG;
                memcpy(regs, bytes, sizeof regs);
                regs_from_perf(regs, &s.regs);
                if (abi == PERF_SAMPLE_REGS_ABI_64)
                        s.has_regs = true;
                else if (abi != PERF_SAMPLE_REGS_ABI_32)
                        return -EBADMSG;
        }
        /* PERF_SAMPLE_STACK_USER: u64 size, size bytes, u64 dyn_size (only when size > 0);
         * only the first dyn_size bytes were copied. */
        if (!(sample_type & PERF_SAMPLE_STACK_USER))
                goto done;
        if (!take_u64(&c, &size))
                return -EBADMSG;
        if (size > 0) {
                uint64_t dyn;
                if (!take_bytes(&c, size, &bytes) || !take_u64(&c, &dyn) || dyn > size)
                        return -EBADMSG;
                if (s.has_regs && dyn > 0) {
                        s.stack = bytes;
                        s.stack_len = (size_t) dyn;
                        s.stack_truncated = dyn == size;
                }
        }
done:
        s.in_kernel = (h->misc & PERF_RECORD_MISC_CPUMODE_MASK) == PERF_RECORD_MISC_KERNEL;
        s.stack_start = s.regs.rsp;
        *ret = s;
        return 0;
}

int perf_sample_as_capture(const PerfSample *sample, ThreadCapture *ret) {
        if (!sample->has_regs)
                return -ENODATA;
        *ret = (ThreadCapture) {
                .tid = sample->tid,
                .info = { .syscall = -1 },
                .regs = sample->regs,
                .stack_start = sample->stack_start,
                /* Read-only for the unwinder; ThreadCapture's pointer is not const. */
                .stack = (uint8_t *) (uintptr_t) sample->stack,
                .stack_len = sample->stack_len,
                .stack_truncated = sample->stack_truncated,
        };
        return 0;
}

/* ---- the ring buffer ---- */

/* Copies LEN bytes starting at OFFSET of the circular DATA of SIZE bytes. */
static void copy_wrapped(void *dst, const uint8_t *data, uint64_t size, uint64_t offset,
                         size_t len) {
        size_t first = (size_t) MIN((uint64_t) len, size - offset);
        memcpy(dst, data + offset, first);
        if (first < len)
                memcpy((uint8_t *) dst + first, data, len - first);
}

int perf_ring_read(struct perf_event_mmap_page *meta, uint8_t *bounce, PerfRecordFn fn,
                   void *userdata, uint64_t *malformed) {
        uint64_t size = meta->data_size, offset = meta->data_offset;

        if (size < sizeof(struct perf_event_header) || (size & (size - 1)) != 0 ||
            offset < sizeof *meta || offset % 8 != 0 || ((uintptr_t) bounce & 7))
                return -EINVAL;
        const uint8_t *data = (const uint8_t *) meta + offset;

        /* Pairs with the kernel's write barrier before it publishes data_head: the records
         * below head are complete once we see head. */
        uint64_t head = __atomic_load_n(&meta->data_head, __ATOMIC_ACQUIRE);
        uint64_t tail = meta->data_tail;        /* only we write it */

        if (head - tail > size || tail % 8 != 0)
                goto corrupt;
        while (tail != head) {
                uint64_t avail = head - tail, off = tail & (size - 1);
                struct perf_event_header hdr;
                const struct perf_event_header *rec;

                if (avail < sizeof hdr)
                        goto corrupt;
                copy_wrapped(&hdr, data, size, off, sizeof hdr);
                if (hdr.size < sizeof hdr || hdr.size % 8 != 0 || hdr.size > avail)
                        goto corrupt;
                if (off + hdr.size <= size)
                        rec = (const struct perf_event_header *) (const void *) (data + off);
                else {
                        copy_wrapped(bounce, data, size, off, hdr.size);
                        rec = (const struct perf_event_header *) (const void *) bounce;
                }

                int r = fn(rec, userdata);

                /* The record's bytes were in use until fn returned: only now may the
                 * kernel overwrite them. */
                tail += hdr.size;
                __atomic_store_n(&meta->data_tail, tail, __ATOMIC_RELEASE);
                if (r < 0)
                        return r;
        }
        return 0;

corrupt:
        /* Records carry no sync marker: after a bad header nothing can be framed again. */
        if (malformed)
                (*malformed)++;
        __atomic_store_n(&meta->data_tail, head, __ATOMIC_RELEASE);
        return 0;
}

/* Marks the threads announced by PERF_RECORD_FORK records still in the buffers, without
 * consuming anything (perf_sampler_drain() will account for them). Stops at the first
 * header that does not check out; drain deals with it. */
static void ring_peek_forks(PerfSampler *s, const Ring *ring) {
        const struct perf_event_mmap_page *meta = ring->meta;
        uint64_t size = meta->data_size;
        const uint8_t *data = (const uint8_t *) meta + meta->data_offset;
        uint64_t head = __atomic_load_n(&meta->data_head, __ATOMIC_ACQUIRE);
        uint64_t tail = meta->data_tail;

        if (size == 0 || (size & (size - 1)) != 0 || head - tail > size)
                return;
        while (head - tail >= sizeof(struct perf_event_header)) {
                struct {
                        struct perf_event_header h;
                        uint32_t pid, ppid, tid, ptid;
                } rec;
                uint64_t off = tail & (size - 1);

                copy_wrapped(&rec.h, data, size, off, sizeof rec.h);
                if (rec.h.size < sizeof rec.h || rec.h.size % 8 != 0 || rec.h.size > head - tail)
                        return;
                if (rec.h.type == PERF_RECORD_FORK && rec.h.size >= sizeof rec + sizeof(uint64_t)) {
                        copy_wrapped(&rec, data, size, off, sizeof rec);
                        if ((pid_t) rec.pid == s->pid && (pid_t) rec.tid > 0)
                                (void) u64map_put(&s->forked, rec.tid,
                                                  (void *) (uintptr_t) THREAD_LIVE);
                }
                tail += rec.h.size;
        }
}

static void rings_peek_forks(PerfSampler *s) {
        for (size_t c = 0; c < s->n_cpus; c++)
                if (s->rings[c].meta)
                        ring_peek_forks(s, &s->rings[c]);
}

/* ---- draining ---- */

typedef struct DrainCtx {
        PerfSampler *s;
        int cpu;                        /* of the buffer being read */
        PerfSampleFn fn;
        void *userdata;
        int delivered;
} DrainCtx;

/* A sample of a thread that has events of its own, taken through another thread's
 * (inherited) event: the thread was sampled twice during that time; keep its own. */
static bool sample_is_duplicate(const PerfSampler *s, const PerfSample *sample) {
        void *owner = u64map_get(&s->id_owner, sample->event_id);
        if (!owner || (pid_t) (uintptr_t) owner == sample->tid)
                return false;
        const ThreadEntry *t = u64map_get(&s->threads, (uint64_t) sample->tid);
        if (!t || t->state != THREAD_LIVE)
                return false;
        /* Before its own events ran, the inherited one was the only one. */
        if (s->attr.use_clockid && t->enabled_ns > 0 && sample->time_ns < t->enabled_ns)
                return false;
        return true;
}

/* PERF_RECORD_FORK and _EXIT: u32 pid, ppid, tid, ptid; u64 time. */
static void on_task(PerfSampler *s, const struct perf_event_header *h) {
        uint32_t v[4];

        if (h->size < sizeof *h + sizeof v + sizeof(uint64_t)) {
                s->stats.malformed++;
                return;
        }
        memcpy(v, h + 1, sizeof v);
        pid_t pid = (pid_t) v[0], tid = (pid_t) v[2];
        if (pid != s->pid || tid <= 0)
                return;
        if (h->type == PERF_RECORD_FORK) {
                s->stats.forks++;
                (void) u64map_put(&s->forked, (uint64_t) tid, (void *) (uintptr_t) THREAD_LIVE);
                return;
        }
        s->stats.exits++;
        ThreadEntry *t = u64map_get(&s->threads, (uint64_t) tid);
        if (t)
                t->state = THREAD_EXITED;
        if (u64map_get(&s->forked, (uint64_t) tid))
                (void) u64map_put(&s->forked, (uint64_t) tid, (void *) (uintptr_t) THREAD_EXITED);
}

/* PERF_RECORD_COMM: u32 pid, tid; char comm[] (NUL-terminated, padded to 8). */
static void on_comm(PerfSampler *s, const struct perf_event_header *h) {
        uint32_t v[2];

        if (h->size < sizeof *h + sizeof v + 8) {
                s->stats.malformed++;
                return;
        }
        memcpy(v, h + 1, sizeof v);
        if ((pid_t) v[0] != s->pid || (pid_t) v[1] <= 0)
                return;
        const char *comm = (const char *) (h + 1) + sizeof v;
        size_t max = MIN((size_t) h->size - sizeof *h - sizeof v, (size_t) THREAD_NAME_MAX - 1);
        size_t len = strnlen(comm, max);

        char *name = u64map_get(&s->names, v[1]);
        if (!name) {
                if (s->names.n >= THREADS_MAX)
                        return;
                name = malloc(THREAD_NAME_MAX);
                if (!name)
                        return;
                (void) u64map_put(&s->names, v[1], name);
        }
        memcpy(name, comm, len);
        name[len] = 0;
}

/* A PERF_RECORD_SWITCH: only the sample_id trailer of attr.sample_id_all, which for our
 * sample_type is u32 pid, tid; u64 time; u64 identifier. */
static int parse_sample_id(const struct perf_event_header *h, PerfSample *ret) {
        struct {
                uint32_t pid, tid;
                uint64_t time, id;
        } id;
        if (h->size < sizeof *h + sizeof id)
                return -EBADMSG;
        memcpy(&id, (const uint8_t *) h + h->size - sizeof id, sizeof id);
        *ret = (PerfSample) {
                .kind = (h->misc & PERF_RECORD_MISC_SWITCH_OUT) ? PERF_EVENT_SWITCH_OUT : PERF_EVENT_SWITCH_IN,
                .preempted = (h->misc & PERF_RECORD_MISC_SWITCH_OUT_PREEMPT) != 0,
                .pid = (pid_t) id.pid,
                .tid = (pid_t) id.tid,
                .time_ns = id.time,
                .event_id = id.id,
        };
        return 0;
}

static int on_record(const struct perf_event_header *h, void *userdata) {
        DrainCtx *ctx = userdata;
        PerfSampler *s = ctx->s;
        uint64_t v;

        s->stats.bytes += h->size;
        switch (h->type) {
        case PERF_RECORD_SAMPLE: {
                PerfSample sample;
                if (perf_sample_parse_type(h, s->attr.sample_type, &sample) < 0) {
                        s->stats.malformed++;
                        return 0;
                }
                if (sample.pid != s->pid) {
                        s->stats.foreign++;
                        return 0;
                }
                if (sample_is_duplicate(s, &sample)) {
                        s->stats.duplicates++;
                        return 0;
                }
                sample.cpu = ctx->cpu;
                s->stats.samples++;
                ctx->delivered++;
                return ctx->fn ? ctx->fn(&sample, ctx->userdata) : 0;
        }
        case PERF_RECORD_LOST:                  /* u64 id, u64 lost */
                if (h->size < sizeof *h + 2 * sizeof v) {
                        s->stats.malformed++;
                        return 0;
                }
                memcpy(&v, (const uint8_t *) (h + 1) + sizeof v, sizeof v);
                s->stats.lost += v;
                return 0;
        case PERF_RECORD_LOST_SAMPLES:          /* u64 lost */
                if (h->size < sizeof *h + sizeof v) {
                        s->stats.malformed++;
                        return 0;
                }
                memcpy(&v, h + 1, sizeof v);
                s->stats.lost_samples += v;
                return 0;
        case PERF_RECORD_THROTTLE:
                s->stats.throttled++;
                return 0;
        case PERF_RECORD_FORK:
        case PERF_RECORD_EXIT:
                on_task(s, h);
                if (h->type == PERF_RECORD_EXIT && s->attr.context_switch && ctx->fn) {
                        /* u32 pid, ppid, tid, ptid; u64 time. */
                        uint32_t ids[4];
                        uint64_t time;
                        if (h->size < sizeof *h + sizeof ids + sizeof time)
                                return 0;
                        memcpy(ids, h + 1, sizeof ids);
                        memcpy(&time, (const uint8_t *) (h + 1) + sizeof ids, sizeof time);
                        if ((pid_t) ids[0] != s->pid)
                                return 0;
                        PerfSample e = { .kind = PERF_EVENT_EXIT, .cpu = ctx->cpu, .pid = (pid_t) ids[0],
                                         .tid = (pid_t) ids[2], .time_ns = time };
                        return ctx->fn(&e, ctx->userdata);
                }
                return 0;
        case PERF_RECORD_COMM:
                on_comm(s, h);
                return 0;
        case PERF_RECORD_SWITCH: {
                PerfSample sw;
                if (!s->attr.context_switch)
                        return 0;
                if (parse_sample_id(h, &sw) < 0) {
                        s->stats.malformed++;
                        return 0;
                }
                if (sw.pid != s->pid || sample_is_duplicate(s, &sw))
                        return 0;
                sw.cpu = ctx->cpu;
                s->stats.switches++;
                return ctx->fn ? ctx->fn(&sw, ctx->userdata) : 0;
        }
        default:
                return 0;
        }
}

/* Looks at the record at C's tail: false when there is none, or when its header cannot
 * be right (then the rest of the buffer is dropped as malformed). */
static bool cursor_peek(PerfSampler *s, RingCursor *c) {
        if (c->tail == c->head)
                return false;
        uint64_t avail = c->head - c->tail, off = c->tail & (c->size - 1);
        if (avail < sizeof c->next)
                goto corrupt;
        copy_wrapped(&c->next, c->data, c->size, off, sizeof c->next);
        if (c->next.size < sizeof c->next || c->next.size % 8 != 0 || c->next.size > avail)
                goto corrupt;
        /* A sample's time follows its identifier and tid; another record's (with
         * sample_id_all) is the second u64 of its 24-byte trailer. Without one: at once. */
        uint64_t at = UINT64_MAX;
        if (c->next.type == PERF_RECORD_SAMPLE && c->next.size >= 32)
                at = 24;
        else if (c->next.type != PERF_RECORD_SAMPLE && s->attr.sample_id_all && c->next.size >= 32)
                at = c->next.size - 16u;
        c->next_time = 0;
        if (at != UINT64_MAX)
                copy_wrapped(&c->next_time, c->data, c->size, (off + at) & (c->size - 1), sizeof c->next_time);
        return true;
corrupt:
        s->stats.malformed++;
        c->tail = c->head;
        __atomic_store_n(&c->meta->data_tail, c->head, __ATOMIC_RELEASE);
        return false;
}

/* Every buffer's records up to the heads seen at the start, merged by time: a record is
 * handed out only once every buffer's next record is later (records of one buffer are in
 * time order, as one CPU wrote them). */
static int drain_ordered(PerfSampler *s, DrainCtx *ctx) {
        RingCursor *cursors = s->cursors;
        size_t n = 0;
        for (size_t i = 0; i < s->n_cpus; i++) {
                struct perf_event_mmap_page *meta = s->rings[i].meta;
                if (!meta)
                        continue;
                RingCursor *c = &cursors[n];
                *c = (RingCursor) { .meta = meta, .cpu = s->rings[i].cpu,
                                    .data = (const uint8_t *) meta + meta->data_offset,
                                    .size = meta->data_size,
                                    .head = __atomic_load_n(&meta->data_head, __ATOMIC_ACQUIRE),
                                    .tail = meta->data_tail };
                if (c->size == 0 || (c->size & (c->size - 1)) != 0 || c->head - c->tail > c->size || c->tail % 8) {
                        s->stats.malformed++;
                        __atomic_store_n(&meta->data_tail, c->head, __ATOMIC_RELEASE);
                        continue;
                }
                if (cursor_peek(s, c))
                        n++;
        }
        while (n > 0) {
                size_t best = 0;
                for (size_t i = 1; i < n; i++)
                        if (cursors[i].next_time < cursors[best].next_time)
                                best = i;
                RingCursor *c = &cursors[best];
                uint64_t off = c->tail & (c->size - 1);
                const struct perf_event_header *rec;
                if (off + c->next.size <= c->size)
                        rec = (const struct perf_event_header *) (const void *) (c->data + off);
                else {
                        copy_wrapped(s->bounce, c->data, c->size, off, c->next.size);
                        rec = (const struct perf_event_header *) (const void *) s->bounce;
                }
                ctx->cpu = c->cpu;
                int r = on_record(rec, ctx);
                c->tail += c->next.size;
                __atomic_store_n(&c->meta->data_tail, c->tail, __ATOMIC_RELEASE);
                if (r < 0)
                        return r;
                if (!cursor_peek(s, c))
                        cursors[best] = cursors[--n];
        }
        return 0;
}

int perf_sampler_drain(PerfSampler *s, PerfSampleFn fn, void *userdata) {
        DrainCtx ctx = { .s = s, .fn = fn, .userdata = userdata };

        if (s->time_ordered) {
                int r = drain_ordered(s, &ctx);
                return r < 0 ? r : ctx.delivered;
        }

        for (size_t c = 0; c < s->n_cpus; c++) {
                Ring *ring = &s->rings[c];
                if (!ring->meta)
                        continue;
                ctx.cpu = ring->cpu;
                int r = perf_ring_read(ring->meta, s->bounce, on_record, &ctx, &s->stats.malformed);
                if (r < 0)
                        return r;
        }
        return ctx.delivered;
}

const char *perf_sampler_thread_name(const PerfSampler *s, pid_t tid) {
        return tid > 0 ? u64map_get(&s->names, (uint64_t) tid) : NULL;
}

void perf_sampler_get_stats(PerfSampler *s, PerfSamplerStats *ret) {
        uint64_t cpu = 0, lost = 0;

        for (size_t i = 0; i < s->n_fds; i++) {
                uint64_t v[2] = {};
                ssize_t n = read(s->fds[i], v, sizeof v);
                if (n < (ssize_t) sizeof v[0])
                        continue;
                cpu += v[0];
                if (n >= (ssize_t) sizeof v && (s->attr.read_format & PERF_FORMAT_LOST))
                        lost += v[1];
        }
        s->stats.cpu_time_ns = cpu;
        s->stats.lost_counted = lost;
        *ret = s->stats;
}

/* ---- explaining a refusal ---- */

static bool read_proc_line(const char *path, const char *key, char *buf, size_t size) {
        char text[8192];
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return false;
        ssize_t n = read(fd, text, sizeof text - 1);
        if (n <= 0)
                return false;
        text[n] = 0;
        size_t klen = strlen(key);
        for (char *line = text; line && *line;) {
                char *nl = strchr(line, '\n');
                if (nl)
                        *nl = 0;
                if (strncmp(line, key, klen) == 0) {
                        const char *v = line + klen;
                        while (*v == ' ' || *v == '\t' || *v == ':')
                                v++;
                        snprintf(buf, size, "%s", v);
                        return true;
                }
                line = nl ? nl + 1 : NULL;
        }
        return false;
}

static bool read_sysctl_long(const char *path, long *ret) {
        char buf[64];
        if (!read_proc_line(path, "", buf, sizeof buf))
                return false;
        char *end;
        errno = 0;
        long v = strtol(buf, &end, 10);
        if (errno || end == buf)
                return false;
        *ret = v;
        return true;
}

static const char *paranoid_meaning(long v) {
        if (v <= -1)
                return "no restrictions";
        if (v == 0)
                return "per-process and CPU-wide events, kernel included, without CAP_PERFMON";
        if (v == 1)
                return "per-process events, kernel included, without CAP_PERFMON";
        if (v == 2)
                return "per-process events of user space only without CAP_PERFMON: "
                       "no kernel frames";
        return "no perf events at all without CAP_PERFMON (a distribution patch, e.g. Debian's)";
}

const char *perf_sampler_explain_error(int err, char *buf, size_t size) {
        char cap_text[64] = "", seccomp[16] = "";
        long paranoid = 0, mlock_kb = 0;
        bool have_paranoid, have_mlock, cap_known = false, perfmon = false, sys_admin = false;
        size_t len = 0;

        if (!buf || size == 0)
                return buf;
        buf[0] = 0;

#define APPEND(...)                                                                     \
        do {                                                                            \
                if (len < size) {                                                       \
                        int _n = snprintf(buf + len, size - len, __VA_ARGS__);          \
                        if (_n > 0)                                                     \
                                len += (size_t) _n;                                     \
                }                                                                       \
        } while (0)

        switch (err) {
        case -EACCES:
        case -EPERM:
                have_paranoid = read_sysctl_long("/proc/sys/kernel/perf_event_paranoid", &paranoid);
                have_mlock = read_sysctl_long("/proc/sys/kernel/perf_event_mlock_kb", &mlock_kb);
                if (read_proc_line("/proc/self/status", "CapEff", cap_text, sizeof cap_text)) {
                        char *end;
                        errno = 0;
                        unsigned long long caps = strtoull(cap_text, &end, 16);
                        if (!errno && end != cap_text) {
                                cap_known = true;
                                perfmon = caps & (1ULL << 38);          /* CAP_PERFMON */
                                sys_admin = caps & (1ULL << 21);        /* CAP_SYS_ADMIN */
                        }
                }
                (void) read_proc_line("/proc/self/status", "Seccomp:", seccomp, sizeof seccomp);

                /* One line: the most likely cause first, and its fix. */
                APPEND("perf_event_open was refused (%s): ", strerror(-err));
                if (seccomp[0] && seccomp[0] != '0')
                        APPEND("cprofd runs under a seccomp filter (Seccomp: %s), which may block it; "
                               "allow perf_event_open (systemd: SystemCallFilter=, containers: the "
                               "seccomp profile)", seccomp);
                else if (cap_known && !perfmon && !sys_admin && have_paranoid && paranoid > 0)
                        APPEND("kernel.perf_event_paranoid is %ld (%s) and cprofd lacks CAP_PERFMON; "
                               "grant CAP_PERFMON (systemd: AmbientCapabilities=CAP_PERFMON) or run "
                               "`sysctl kernel.perf_event_paranoid=1`", paranoid, paranoid_meaning(paranoid));
                else if (have_mlock)
                        APPEND("the ring buffers may exceed kernel.perf_event_mlock_kb (%ld KiB per CPU) "
                               "plus RLIMIT_MEMLOCK; raise LimitMEMLOCK= or grant CAP_IPC_LOCK", mlock_kb);
                else
                        APPEND("check kernel.perf_event_paranoid, CAP_PERFMON, seccomp and the perf "
                               "mlock limit");
                break;
        case -EMFILE:
        case -ENFILE:
                APPEND("Out of file descriptors: CPU sampling needs one per thread per CPU. "
                       "Raise RLIMIT_NOFILE (systemd: LimitNOFILE=).");
                break;
        case -E2BIG:
                APPEND("Too many events: threads × CPUs exceeds %u.", PERF_EVENTS_MAX);
                break;
        case -ENOSYS:
        case -ENOENT:
        case -EOPNOTSUPP:
                APPEND("This kernel offers no software cpu-clock perf events (%s): "
                       "CONFIG_PERF_EVENTS may be off.", strerror(-err));
                break;
        case -ESRCH:
                APPEND("The process is gone.");
                break;
        case -EINVAL:
                APPEND("Invalid sampling options, or the kernel rejected the event attributes.");
                break;
        default:
                APPEND("%s.", strerror(err < 0 ? -err : err));
                break;
        }
#undef APPEND
        return buf;
}
