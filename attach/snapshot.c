/* attach/snapshot.c -- stop a thread, copy its registers and stack, let it go.
 *
 * Only this file and attach/inject.c (which borrows a thread to load the heap agent) call
 * ptrace(2). Every seize is paired with a detach on every path; a
 * thread is never left stopped. The pause of each thread (PTRACE_INTERRUPT → detach) holds
 * nothing but GETREGSET and one process_vm_readv: no allocation, no /proc reads, no
 * PTRACE_PEEKDATA. Everything else happens before the stop (the /proc state, so the stop
 * itself does not disturb what we report) or after the detach.
 *
 * Rules learned from gdb, eu-stack and perf:
 *  - PTRACE_SEIZE (not ATTACH) sends no SIGSTOP, so nothing spurious is ever queued.
 *  - A signal that arrives while we hold the thread shows up as a signal-delivery-stop
 *    before our interrupt; we capture there and pass the signal on at detach.
 *  - A thread in job-control stop stays stopped after detach: the kernel re-arms the group
 *    stop in __ptrace_unlink().
 *  - A thread may never reach the interrupt stop (uninterruptible sleep, a zombie leader).
 *    We wait a bounded time; if it has not stopped, it stays on a straggler list and is
 *    detached as soon as it does (snapshot_reap_stragglers()), or by the kernel if we die.
 *  - Syscalls interrupted by the stop are restarted transparently on detach. */
#include <elf.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "clock.h"
#include "macro.h"
#include "snapshot.h"

#define STOP_TIMEOUT_NS (200 * NSEC_PER_MSEC)
#define STOP_SPIN_NS (100 * NSEC_PER_USEC)
#define STRAGGLERS_MAX 4096

static pthread_mutex_t stragglers_lock = PTHREAD_MUTEX_INITIALIZER;
static pid_t stragglers[STRAGGLERS_MAX];
static size_t n_stragglers;

/* SIGCHLD is blocked by the caller, so sigtimedwait sleeps until some child changes state;
 * a wake for another child just loops. */
int tracee_wait_stop(pid_t tid, uint64_t timeout_ns, int *ret_status) {
        uint64_t deadline = now_monotonic_ns() + timeout_ns;
        sigset_t chld;
        sigemptyset(&chld);
        sigaddset(&chld, SIGCHLD);

        for (;;) {
                int status;
                pid_t w = waitpid(tid, &status, __WALL | WNOHANG);
                if (w < 0) {
                        if (errno == EINTR)
                                continue;
                        return errno == ECHILD ? -ESRCH : -errno;
                }
                if (w == tid) {
                        if (WIFEXITED(status) || WIFSIGNALED(status))
                                return -ESRCH;
                        if (WIFSTOPPED(status)) {
                                *ret_status = status;
                                return 0;
                        }
                        continue;
                }
                uint64_t now = now_monotonic_ns();
                if (now >= deadline)
                        return -ETIMEDOUT;
                /* Most threads stop within microseconds: poll briefly before sleeping, as
                 * going idle and being woken costs more than the stop itself (tens of µs
                 * on a VM) and that time counts against the target's pause. */
                if (now + timeout_ns - deadline < STOP_SPIN_NS) {
                        sched_yield();
                        continue;
                }
                /* Short slices: a SIGCHLD may be taken by another thread of ours. */
                uint64_t left = MIN(deadline - now, NSEC_PER_MSEC);
                struct timespec ts = { 0, (long) left };
                (void) sigtimedwait(&chld, NULL, &ts);
        }
}

void tracee_add_straggler(pid_t tid) {
        pthread_mutex_lock(&stragglers_lock);
        if (n_stragglers < STRAGGLERS_MAX)
                stragglers[n_stragglers++] = tid;
        pthread_mutex_unlock(&stragglers_lock);
}

/* TracerPid names the tracing thread: this one, as every ptrace call of ours is made by
 * the thread that calls snapshot_take(). */
static bool traced_by_us(pid_t tid) {
        pid_t tracer = 0;
        return procfs_read_tracer(tid, &tracer) == 0 && tracer == gettid();
}

size_t snapshot_reap_stragglers(void) {
        pthread_mutex_lock(&stragglers_lock);
        size_t kept = 0;
        for (size_t i = 0; i < n_stragglers; i++) {
                pid_t tid = stragglers[i];
                int status;
                pid_t w = waitpid(tid, &status, __WALL | WNOHANG);
                if (w == 0) {
                        stragglers[kept++] = tid;       /* not stopped yet */
                        continue;
                }
                if (w == tid && WIFSTOPPED(status)) {
                        int sig = (status >> 16) == 0 ? WSTOPSIG(status) : 0;
                        (void) ptrace(PTRACE_DETACH, tid, NULL, (void *) (long) sig);
                        continue;               /* detached now */
                }
                /* A death reported for a leader's tid may be the old leader's, replaced by
                 * a thread that called execve() under our trace: that one lives on with
                 * this tid. Make sure it stops, and detach it when it does. */
                if (w == tid && traced_by_us(tid)) {
                        (void) ptrace(PTRACE_INTERRUPT, tid, NULL, NULL);
                        stragglers[kept++] = tid;
                }
                /* else exited */
        }
        n_stragglers = kept;
        pthread_mutex_unlock(&stragglers_lock);
        return kept;
}

/* The kernel's internal "restart me" returns (include/linux/errno.h): what a blocking
 * syscall interrupted by a stop leaves in rax until it is restarted. */
#define ERESTARTSYS 512
#define ERESTARTNOINTR 513
#define ERESTARTNOHAND 514
#define ERESTART_RESTARTBLOCK 516

int tracee_restarted_syscall(const struct user_regs_struct *regs) {
        long nr = (long) regs->orig_rax, rv = (long) regs->rax;

        if (nr < 0 || nr >= 4096)
                return -1;
        if (rv == -ERESTART_RESTARTBLOCK)
                return SYS_restart_syscall;
        return rv == -ERESTARTSYS || rv == -ERESTARTNOINTR || rv == -ERESTARTNOHAND ? (int) nr : -1;
}

/* TID, which we trace, was killed while we held it: wait for its death now, as it stays a
 * zombie until we do. Leaving it for later can deadlock: when its process is in execve(),
 * the exec waits for that zombie to be reaped while it holds the lock our next
 * PTRACE_SEIZE waits for (cred_guard_mutex). Dying takes microseconds; the wait is
 * bounded all the same, and a thread that takes longer becomes a straggler. */
static void reap_dying(pid_t tid) {
        int status;
        int r = tracee_wait_stop(tid, STOP_TIMEOUT_NS, &status);
        if (r == 0)
                (void) ptrace(PTRACE_DETACH, tid, NULL, NULL);
        else if (r == -ETIMEDOUT)
                tracee_add_straggler(tid);
}

/* Stops TID, copies registers and stack into T (using SCRATCH, SCRATCH_SIZE bytes, so no
 * allocation happens while the thread is held), and lets it go. */
static int capture_thread(pid_t pid, const Maps *maps, uint8_t *scratch, size_t scratch_size, ThreadCapture *t) {
        pid_t tid = t->tid;
        int r;

        /* No zombie of ours may wait for us while we seize (see reap_dying()). */
        if (n_stragglers > 0)
                (void) snapshot_reap_stragglers();
        if (ptrace(PTRACE_SEIZE, tid, NULL, NULL) < 0) {
                r = -errno;             /* ESRCH: gone; EPERM: traced by someone else */
                /* ...or by us already: a thread that called execve() while we held
                 * another thread of the process took over the leader's tid under our
                 * trace (see below). Take it as seized; the detach below lets it go. */
                if (r != -EPERM || !traced_by_us(tid))
                        return r;
        }

        uint64_t t0 = now_monotonic_ns();
        if (ptrace(PTRACE_INTERRUPT, tid, NULL, NULL) < 0) {
                r = -errno;
                /* Detach needs a stopped tracee; if it fails the thread is dying while
                 * traced by us, and only our waitpid() lets it be reaped. */
                if (ptrace(PTRACE_DETACH, tid, NULL, NULL) < 0)
                        reap_dying(tid);
                return r;
        }

        int status = 0;
        r = tracee_wait_stop(tid, STOP_TIMEOUT_NS, &status);
        if (r == -ETIMEDOUT) {
                tracee_add_straggler(tid);
                return r;
        }
        if (r < 0) {
                /* The thread exited; nothing to detach. Unless it was not the leader and
                 * called execve(): then it lives on under the leader's tid, still traced
                 * by us and bound to stop for our interrupt. Detach it once it does. */
                if (tid != pid)
                        tracee_add_straggler(pid);
                return r;
        }

        /* A signal-delivery-stop (event 0, not our SIGTRAP) means a signal arrived first:
         * capture here and deliver it at detach. PTRACE_EVENT_STOP is our interrupt or a
         * group stop; both detach with no signal. */
        int sig = 0;
        if ((status >> 16) == 0 && WSTOPSIG(status) != SIGTRAP)
                sig = WSTOPSIG(status);

        struct iovec iov = { .iov_base = &t->regs, .iov_len = sizeof t->regs };
        r = ptrace(PTRACE_GETREGSET, tid, (void *) NT_PRSTATUS, &iov) < 0 ? -errno : 0;

        size_t copied = 0;
        uint64_t start = 0, want = 0;
        bool end_known = false;
        if (r == 0) {
                uint64_t sp = t->regs.rsp;
                const MapEntry *m = maps_find(maps, sp);
                start = sp >= SNAPSHOT_RED_ZONE ? sp - SNAPSHOT_RED_ZONE : 0;
                if (m) {
                        if (start < m->start)
                                start = m->start;
                        want = m->end - start;
                        end_known = true;
                } else
                        want = scratch_size;    /* a stack mapped after we read maps */
                size_t len = (size_t) MIN(want, (uint64_t) scratch_size);
                struct iovec local = { .iov_base = scratch, .iov_len = len };
                struct iovec remote = { .iov_base = (void *) (uintptr_t) start, .iov_len = len };
                ssize_t n = process_vm_readv(pid, &local, 1, &remote, 1, 0);
                copied = n > 0 ? (size_t) n : 0;
        }

        int detached = ptrace(PTRACE_DETACH, tid, NULL, (void *) (long) sig) < 0 ? -errno : 0;
        t->pause_ns = now_monotonic_ns() - t0;  /* the reap below is not the thread's pause */
        if (detached == -ESRCH)
                /* Killed while held (exit_group, execve). It is now a zombie we still
                 * trace: reap it, or its parent can never reap the process. */
                reap_dying(tid);
        else if (detached < 0 && r == 0)
                r = detached;
        t->reinjected_signal = sig;
        if (r < 0)
                return r;

        t->stack = malloc(MAX(copied, 1u));
        if (!t->stack)
                return -ENOMEM;
        memcpy(t->stack, scratch, copied);
        t->stack_start = start;
        t->stack_len = copied;
        t->stack_truncated = !end_known || copied < want;
        return 0;
}

/* Reads what /proc says of T's wait and asks the caller whether a stop would show anything
 * new: first on the run time alone (which, when it says yes, saves reading the wait), then
 * with the syscall place. Only a blocked thread or one in job-control stop can be
 * unchanged: a running one moves under us, and one in another tracer's stop may have had
 * its registers rewritten without running. The wait of an unchanged thread is left unread
 * (syscall -1): the caller knows it. */
static bool ask_unchanged(pid_t pid, const SnapshotOptions *opts, ThreadCapture *t) {
        char state = t->info.state;
        bool may_skip = opts && opts->unchanged && (state == 'S' || state == 'D' || state == 'T') &&
                        (!opts->known || opts->known(opts->userdata, t->tid)) &&
                        procfs_read_thread_run_ns(pid, t->tid, &t->info) == 0;

        if (may_skip && opts->unchanged(opts->userdata, t->tid, &t->info))
                return true;
        procfs_read_thread_wait(pid, t->tid, &t->info);
        return may_skip && t->info.place.known && opts->unchanged(opts->userdata, t->tid, &t->info);
}

static bool process_gone(pid_t pid) {
        ThreadInfo info;
        int r = procfs_read_thread_stat(pid, pid, &info);
        return r == -ESRCH || (r == 0 && (info.state == 'Z' || info.state == 'X') &&
                               kill(pid, 0) < 0 && errno == ESRCH);
}

Snapshot *snapshot_free(Snapshot *s) {
        if (!s)
                return NULL;
        for (size_t i = 0; i < s->n_threads; i++)
                free(s->threads[i].stack);
        free(s->threads);
        maps_done(&s->maps);
        free(s);
        return NULL;
}
DEFINE_POINTER_CLEANUP(Snapshot, snapshot_free)

int snapshot_take(pid_t pid, const SnapshotOptions *opts, Snapshot **ret) {
        size_t stack_max = opts && opts->stack_max ? opts->stack_max : SNAPSHOT_STACK_MAX_DEFAULT;
        if (stack_max > SNAPSHOT_STACK_MAX_LIMIT)
                stack_max = SNAPSHOT_STACK_MAX_LIMIT;
        uint64_t begin = now_monotonic_ns();
        int r;

        _cleanup_(snapshot_freep) Snapshot *s = calloc(1, sizeof *s);
        if (!s)
                return -ENOMEM;
        s->pid = pid;
        s->time_ns = now_realtime_ns();

        (void) snapshot_reap_stragglers();

        r = procfs_read_maps(pid, &s->maps);
        if (r < 0)
                return r;
        _cleanup_free_ pid_t *tids = NULL;
        size_t n_tids;
        r = procfs_list_threads(pid, &tids, &n_tids);
        if (r < 0)
                return r;
        s->threads = calloc(n_tids, sizeof *s->threads);
        _cleanup_free_ uint8_t *scratch = malloc(stack_max);
        if (!s->threads || !scratch)
                return -ENOMEM;

        /* tracee_wait_stop() sleeps on SIGCHLD; keep it pending for us rather than delivered. */
        sigset_t chld, saved;
        sigemptyset(&chld);
        sigaddset(&chld, SIGCHLD);
        pthread_sigmask(SIG_BLOCK, &chld, &saved);

        size_t n_eperm = 0, n_missing_stack_map = 0;
        for (size_t i = 0; i < n_tids; i++) {
                ThreadCapture *t = &s->threads[s->n_threads];
                *t = (ThreadCapture) { .tid = tids[i] };
                r = procfs_read_thread_stat(pid, t->tid, &t->info);
                if (r == -ESRCH)
                        continue;               /* exited since we listed it */
                if (r == 0)
                        t->unchanged = ask_unchanged(pid, opts, t);
                if (r < 0)
                        t->error = r;
                else if (t->unchanged)
                        s->n_unchanged++;
                else if (t->info.state == 'Z' || t->info.state == 'X')
                        t->error = -ESRCH;      /* a zombie never stops; nothing to show */
                else
                        t->error = capture_thread(pid, &s->maps, scratch, stack_max, t);
                if (t->error == -ESRCH && t->info.state != 'Z' && t->info.state != 'X')
                        continue;               /* vanished while we looked at it */
                if (t->error == -EPERM)
                        n_eperm++;
                if (t->error == 0) {
                        s->n_captured++;
                        if (!t->unchanged && !maps_find(&s->maps, t->regs.rsp))
                                n_missing_stack_map++;
                }
                s->n_threads++;
        }
        pthread_sigmask(SIG_SETMASK, &saved, NULL);

        /* Threads created after we read maps run on stacks (and maybe code) we have not
         * seen: read the maps again, now that nobody is stopped. */
        if (n_missing_stack_map > 0) {
                Maps fresh;
                if (procfs_read_maps(pid, &fresh) == 0) {
                        maps_done(&s->maps);
                        s->maps = fresh;
                }
        }

        if (s->n_captured < s->n_threads)
                s->partial = true;
        if (s->n_captured < n_tids && process_gone(pid)) {
                s->exited = true;
                s->partial = true;
        }
        if (n_eperm > 0 && s->n_captured == 0) {
                pid_t tracer = 0;
                if (procfs_read_tracer(pid, &tracer) == 0 && tracer > 0)
                        s->tracer = tracer;
        }
        s->duration_ns = now_monotonic_ns() - begin;
        *ret = TAKE_PTR(s);
        return 0;
}
