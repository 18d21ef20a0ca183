/* attach/perf.h -- sample the threads of one process with perf_event_open: at every tick
 * of a thread's CPU clock (or every call of a probed function, or every hit of a
 * tracepoint such as sched:sched_switch), the kernel writes its user registers, a copy of
 * the top of its user stack and its kernel call chain (or the tracepoint's raw fields)
 * into a ring buffer we read later; optionally every switch of a thread on and off a CPU
 * too. Nothing is unwound here: a sample is handed out as a ThreadCapture look-alike for
 * symbolize/.
 *
 * Events. One PERF_TYPE_SOFTWARE / PERF_COUNT_SW_CPU_CLOCK event per (thread, online CPU),
 * sample_period = 1e9 / Hz ns of that thread's CPU time, inherit = 1 (threads the
 * monitored threads create later are counted, into the same buffers), disabled at open and
 * enabled together once all are set up.
 *
 * Why per (thread, CPU) and not one event per thread with cpu = -1: the kernel refuses to
 * mmap an inherited per-task event opened with cpu = -1 (perf_mmap: EINVAL), and refuses
 * PERF_EVENT_IOC_SET_OUTPUT between cpu = -1 events of different tasks (EINVAL) -- both
 * verified on 6.18. Events bound to one CPU may share a buffer across tasks, which is what
 * `perf record -p` does. So there is ONE ring buffer per online CPU, shared by every
 * thread: the first event of each CPU is mmapped, every other event of that CPU is
 * redirected into it. A 1000-thread target on 8 CPUs costs 8 buffers and 8000 fds
 * (the daemon should raise RLIMIT_NOFILE; -EMFILE otherwise).
 *
 * Threads. The threads listed in /proc/PID/task are opened one by one; a thread created
 * by an already-opened thread inherits its events and is announced by a PERF_RECORD_FORK
 * (attr.task = 1). A thread created by a not-yet-opened one in that window is missed:
 * perf_sampler_refresh() opens every thread that is neither opened nor announced.
 * When a thread ends up sampled both through inherited events and through its own (the
 * setup window, or a FORK record not yet drained), every sample carries its event id
 * (PERF_SAMPLE_IDENTIFIER) and the inherited duplicate is dropped, so no thread is ever
 * counted twice. With inherit_thread (Linux ≥ 5.13) child *processes* do not inherit;
 * on older kernels their samples are dropped (stats.foreign).
 *
 * Privileges. Kernel frames need exclude_kernel = 0. When the kernel refuses that
 * (EACCES/EPERM: perf_event_paranoid ≥ 2 without CAP_PERFMON), the sampler falls back to
 * exclude_kernel = 1 and says so (stats.kernel_excluded); then CPU time spent in the
 * kernel is not sampled at all (the kernel drops those ticks). perf_sampler_explain_error()
 * turns a refusal into a sentence naming the sysctl, the capability or seccomp.
 *
 * Limits. PID must be a process (thread group) id: samples of other processes are
 * dropped. The events of a thread opened directly stay open (and count towards the fds)
 * after it exits, until perf_sampler_free(). CPUs that come online later are not sampled.
 * After an exec the events stay and the samples describe the new program: the caller
 * re-reads the maps. Sample order across CPUs is not time order.
 *
 * Not thread-safe: one caller at a time per sampler. */
#pragma once

#include <linux/perf_event.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/user.h>

#include "snapshot.h"

#define PERF_FREQUENCY_DEFAULT 100u
#define PERF_FREQUENCY_MAX 10000u
#define PERF_STACK_BYTES_DEFAULT (16u * 1024u)
/* 64 KiB − 8: the kernel rejects sample_stack_user ≥ 65535 (a record's size is a u16) and
 * wants a multiple of 8. It also shrinks the copy of a sample whose other parts (a long
 * kernel call chain) would not leave room for it. */
#define PERF_STACK_BYTES_MAX (64u * 1024u - 8u)
#define PERF_RING_BYTES_DEFAULT (8u * 1024u * 1024u)
#define PERF_RING_BYTES_MAX (1024u * 1024u * 1024u)
/* Each per-CPU buffer holds at least this much (a record may be ~64 KiB). */
#define PERF_RING_BYTES_PER_CPU_MIN (256u * 1024u)
/* Hard limit on events (threads × CPUs) one sampler may open. */
#define PERF_EVENTS_MAX (1u << 18)
/* The largest record the kernel can write (header.size is a u16), 8-aligned. */
#define PERF_RECORD_MAX 65536u

/* What every sample of this module holds, in the kernel's order: IDENTIFIER, TID, TIME,
 * CALLCHAIN, REGS_USER, STACK_USER. perf_sample_parse() reads exactly this layout. */
#define PERF_SAMPLER_SAMPLE_TYPE                                                        \
        (PERF_SAMPLE_IDENTIFIER | PERF_SAMPLE_TID | PERF_SAMPLE_TIME |                  \
         PERF_SAMPLE_CALLCHAIN | PERF_SAMPLE_REGS_USER | PERF_SAMPLE_STACK_USER)
/* The x86-64 general registers (asm/perf_regs.h): AX..SS and R8..R15, 20 registers, in
 * bit order. DS, ES, FS and GS are refused by the kernel on x86-64. */
#define PERF_SAMPLER_REGS_MASK (((UINT64_C(1) << 12) - 1) | (UINT64_C(0xff) << 16))
#define PERF_SAMPLER_N_REGS 20u

typedef struct PerfSampler PerfSampler;

typedef struct PerfSamplerOptions {
        unsigned frequency_hz;          /* samples per second of a thread's CPU time;
                                           0 = PERF_FREQUENCY_DEFAULT, 1..PERF_FREQUENCY_MAX */
        uint32_t stack_bytes;           /* user stack copied per sample; 0 = default;
                                           multiple of 8, ≤ PERF_STACK_BYTES_MAX */
        size_t ring_bytes;              /* data bytes of all per-CPU buffers together; 0 =
                                           PERF_RING_BYTES_DEFAULT, ≤ PERF_RING_BYTES_MAX.
                                           Split evenly between online CPUs, each rounded
                                           down to a power of two of pages and raised to
                                           PERF_RING_BYTES_PER_CPU_MIN. With the default,
                                           when the mlock limit refuses a buffer (EPERM:
                                           perf_event_mlock_kb × CPUs + RLIMIT_MEMLOCK
                                           without CAP_IPC_LOCK) all buffers are halved
                                           and set up again, down to the minimum
                                           (stats.ring_bytes_total tells); an explicit
                                           size only with ring_may_shrink. */
        bool ring_may_shrink;           /* halve an explicit ring_bytes as the default */
        bool exclude_kernel_callchain;  /* no kernel frames (exclude_callchain_kernel = 1);
                                           kernel ticks are still sampled when permitted.
                                           false (the default): kernel frames wanted */
        /* Set: sample every call of the function at file offset PROBE_OFFSET of
         * PROBE_PATH (a uprobe; with PROBE_RETURN, its return: a uretprobe) instead of the
         * CPU clock. frequency_hz is then unused; stack_bytes may be 8 (no stack wanted).
         * PROBE_PATH must outlive the sampler: threads found later are opened with it. */
        const char *probe_path;
        uint64_t probe_offset;
        bool probe_return;
        /* Set (and no probe): sample every hit of this tracepoint (PERF_TYPE_TRACEPOINT,
         * its id from tracefs) instead of the CPU clock, with the tracepoint's raw data
         * and no call chain. The user registers and stack are the thread's own at its
         * entry into the kernel (a tracepoint fires in the kernel). TRACEPOINT_FILTER,
         * when set, is the kernel's filter expression on the tracepoint's fields
         * ("prev_state & 3"): events it rejects cost no copy at all. The filter must
         * outlive the sampler, as PROBE_PATH. */
        uint64_t tracepoint_id;
        const char *tracepoint_filter;
        /* Also hand out every switch of a monitored thread onto and off a CPU
         * (PERF_RECORD_SWITCH, attr.context_switch) as PERF_EVENT_SWITCH_IN/_OUT. */
        bool context_switches;
        /* Drains hand out the records of all buffers merged by time (each buffer is
         * already in order), as events of one thread on two CPUs must be seen in the
         * order they happened; costs a comparison per buffer per record. */
        bool time_ordered;
} PerfSamplerOptions;

typedef enum PerfEventKind {
        PERF_EVENT_SAMPLE,              /* a sample: every field below as documented */
        PERF_EVENT_SWITCH_IN,           /* the thread got a CPU: pid, tid, time_ns only */
        PERF_EVENT_SWITCH_OUT,          /* it left its CPU (preempted tells why) */
        PERF_EVENT_EXIT,                /* with context_switches: the thread exited */
} PerfEventKind;

/* One sample. Every pointer points into the ring buffer (or a bounce buffer for a record
 * that wraps around its end) and is valid during the callback only: copy what you keep. */
typedef struct PerfSample {
        PerfEventKind kind;
        bool preempted;                 /* SWITCH_OUT: taken off while still runnable */
        int cpu;                        /* the CPU whose buffer held it */
        pid_t pid, tid;
        uint64_t time_ns;               /* CLOCK_MONOTONIC when the kernel accepted
                                           use_clockid (stats.monotonic_time), else the
                                           kernel's perf clock */
        uint64_t event_id;              /* the (parent) event that took it */

        /* Kernel call chain, leaf first: [0] is the interrupted kernel pc (exact), the
         * rest are return addresses. Empty for a sample taken in user mode, and when
         * kernel frames are unavailable (stats.kernel_excluded, or exclude_kernel_callchain). */
        const uint64_t *kernel_frames;
        size_t n_kernel_frames;
        /* The kernel's frame-pointer walk of the user stack, leaf first: [0] is the user
         * pc, the rest return addresses as found through rbp -- only meaningful for code
         * built with frame pointers. PERF_CONTEXT_* markers are stripped. */
        const uint64_t *user_callchain;
        size_t n_user_callchain;

        bool has_regs;                  /* user registers present (false: the thread had no
                                           user context, or is a 32-bit task) */
        bool in_kernel;                 /* the tick hit kernel code: regs are where user
                                           code entered the kernel (the syscall) */
        struct user_regs_struct regs;   /* as PTRACE_GETREGSET would give them; ds, es, fs,
                                           gs, fs_base, gs_base and orig_rax are 0 */
        uint64_t stack_start;           /* = regs.rsp: the kernel copies from SP up */
        const uint8_t *stack;           /* [stack_start, stack_start + stack_len) */
        size_t stack_len;               /* dyn_size: the bytes the kernel could copy */
        bool stack_truncated;           /* the copy filled its whole size: the stack may
                                           go on above it */
        const uint8_t *raw;             /* a tracepoint's fields (tracefs.h says where) */
        size_t raw_size;
} PerfSample;

/* Turns SAMPLE into a ThreadCapture for address_space_unwind() without copying the stack:
 * RET->stack points into the sample and is valid as long as the sample (the callback).
 * RET->info is zeroed (no name, state 0, syscall -1). 0, or -ENODATA when the sample has
 * no user registers (then *RET is left untouched). */
int perf_sample_as_capture(const PerfSample *sample, ThreadCapture *ret);

/* The kernel's uprobe PMU: its perf event type, and the config bit that makes a probe a
 * return probe (read from sysfs once). 0, or -EOPNOTSUPP. */
int perf_uprobe_pmu(uint32_t *ret_type, unsigned *ret_return_bit);

typedef struct PerfSamplerStats {
        uint64_t samples;               /* handed to callbacks */
        uint64_t lost;                  /* sum of PERF_RECORD_LOST: records the kernel could
                                           not write because a buffer was full */
        uint64_t lost_samples;          /* sum of PERF_RECORD_LOST_SAMPLES */
        uint64_t lost_counted;          /* the kernel's own count (PERF_FORMAT_LOST, Linux
                                           ≥ 6.0), read by perf_sampler_get_stats(); ≥ lost:
                                           the kernel writes a LOST record only once there
                                           is room again */
        uint64_t malformed;             /* records (or, for a corrupt header, buffer
                                           contents) skipped because a length was wrong */
        uint64_t throttled;             /* PERF_RECORD_THROTTLE: the kernel slowed down */
        uint64_t duplicates;            /* dropped: the thread has its own events too */
        uint64_t foreign;               /* dropped: a sample of another process */
        uint64_t forks, exits;          /* PERF_RECORD_FORK / _EXIT of target threads */
        uint64_t switches;              /* PERF_RECORD_SWITCH handed out */
        uint64_t bytes;                 /* ring buffer bytes consumed */
        uint64_t cpu_time_ns;           /* CPU time the events counted (read on demand by
                                           perf_sampler_get_stats()) */
        size_t threads_opened;          /* threads with events of their own */
        size_t events;                  /* open events (fds) */
        size_t rings;                   /* buffers (one per online CPU) */
        size_t ring_bytes_total;        /* data bytes of all buffers */
        uint64_t period_ns;             /* 1e9 / Hz */
        bool kernel_excluded;           /* kernel ticks and kernel frames unavailable */
        bool monotonic_time;            /* time_ns is CLOCK_MONOTONIC */
} PerfSamplerStats;

/* Opens, maps and enables sampling of every thread of PID (OPTS may be NULL: defaults).
 * Sampling runs when this returns. 0 with *ret set, or negative errno, *ret untouched:
 * -EINVAL bad options; -ESRCH no such process (or every thread vanished); -EACCES/-EPERM
 * not permitted (see perf_sampler_explain_error()); -EMFILE out of fds; -E2BIG more than
 * PERF_EVENTS_MAX events; -ENOSYS/-ENOENT/-EOPNOTSUPP no perf support. On failure every fd
 * and mapping is released and nothing is left on the target. */
int perf_sampler_new(pid_t pid, const PerfSamplerOptions *opts, PerfSampler **ret);

/* Disables every event (and, through inheritance, their children on the target), unmaps
 * the buffers and closes every fd. Samples not drained are discarded. Accepts NULL,
 * returns NULL. */
PerfSampler *perf_sampler_free(PerfSampler *s);

typedef int (*PerfSampleFn)(const PerfSample *sample, void *userdata);

/* Reads every complete record from every buffer, in buffer order (samples of different
 * CPUs are not merged by time, unless the sampler is time_ordered). Samples go to FN; lost, throttle, fork and exit records
 * are accounted; records that do not parse are counted as malformed and skipped. A record's
 * space is given back to the kernel after FN returns. FN returns 0 to go on or a negative
 * errno to stop (the records before, and the one it saw, are consumed); FN NULL discards
 * the samples. Returns the number of samples delivered, or FN's error.
 *
 * Budget: each CPU's buffer must hold what arrives between two drains, about
 * Hz × (stack_bytes + ~300) bytes per second per busy CPU: 16.5 MB/s at 1000 Hz with the
 * default stack, i.e. 4 MiB lasts ~250 ms. Heavy work in FN (a cold symbolizer, tens of
 * ms of CPU, stretched further when the target saturates the CPUs) delays the next drain
 * by as much: keep FN light, or warm the symbolizer first. */
int perf_sampler_drain(PerfSampler *s, PerfSampleFn fn, void *userdata);

/* Opens events for threads of the target that are neither opened nor announced by a
 * drained PERF_RECORD_FORK (threads created by a thread that was not monitored yet) and
 * enables them. Call it after perf_sampler_drain(). Returns how many threads were opened
 * (≥ 0), or negative errno (-ESRCH: the process is gone; -EMFILE, -E2BIG as for new). A
 * thread that vanishes meanwhile is skipped. */
int perf_sampler_refresh(PerfSampler *s);

/* The name TID last gave itself as seen in a drained PERF_RECORD_COMM (attr.comm = 1), or
 * NULL when none was seen: a thread that never renamed itself has its creator's name; a
 * thread that has exited can no longer be read from /proc, but is still found here. At
 * most THREADS_MAX names are remembered. Valid until the next drain or free. */
const char *perf_sampler_thread_name(const PerfSampler *s, pid_t tid);

/* Fills *RET; reads every event for cpu_time_ns and lost_counted (one read() per event). */
void perf_sampler_get_stats(PerfSampler *s, PerfSamplerStats *ret);

/* Writes into BUF (always NUL-terminated when SIZE > 0) why perf_event_open or mmap may
 * have failed with ERR (a negative errno from this module) and how to fix it, with this
 * machine's facts: the current kernel.perf_event_paranoid, whether this process has
 * CAP_PERFMON / CAP_SYS_ADMIN, whether it runs under seccomp, perf_event_mlock_kb. Returns
 * BUF. */
const char *perf_sampler_explain_error(int err, char *buf, size_t size);

/* ---- Low level, exposed for tests and replay ---- */

typedef int (*PerfRecordFn)(const struct perf_event_header *record, void *userdata);

/* Reads every complete record between data_tail and data_head of a buffer laid out as the
 * kernel lays it out (META, then data_size bytes at META + data_offset; data_size a power of
 * two, data_offset ≥ sizeof *META and 8-aligned). data_head is read with acquire
 * semantics; data_tail is advanced (release) after FN returns for each record. A record
 * that wraps around the end is copied into BOUNCE (PERF_RECORD_MAX bytes, 8-aligned), so FN
 * always sees one contiguous, 8-aligned record of record->size bytes. A header that cannot
 * be right (size < 8, not a multiple of 8, or past data_head; data_head − data_tail beyond
 * data_size) means the rest cannot be framed: everything up to data_head is dropped and
 * counted in *MALFORMED (+1). Returns 0, FN's negative return, or -EINVAL for a bad META. */
int perf_ring_read(struct perf_event_mmap_page *meta, uint8_t *bounce, PerfRecordFn fn,
                   void *userdata, uint64_t *malformed);

/* Parses RECORD (a PERF_RECORD_SAMPLE of PERF_SAMPLER_SAMPLE_TYPE with
 * PERF_SAMPLER_REGS_MASK, record->size bytes, 8-aligned) into *RET, which points into
 * RECORD. Every length is checked against record->size. 0, or -EBADMSG (*RET undefined). */
int perf_sample_parse(const struct perf_event_header *record, PerfSample *ret);
/* The same for a sample of SAMPLE_TYPE, a subset of PERF_SAMPLER_SAMPLE_TYPE |
 * PERF_SAMPLE_RAW that holds IDENTIFIER, TID and TIME. */
int perf_sample_parse_type(const struct perf_event_header *record, uint64_t sample_type, PerfSample *ret);
