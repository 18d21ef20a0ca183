/* attach/blocking-call.h -- what a thread blocked in a syscall waits on, for the WAIT of
 * a thread dump's debug=2 header, as Go prints "[IO wait]": "read fd 5 /var/log/x.log"
 * rather than "read". Read from /proc/PID/task/TID/{fd,fdinfo}, the tables of
 * /proc/PID/net and a few bytes of target memory; nothing is stopped or signalled.
 *
 * The forms (x86-64 syscalls; SYSCALL is the syscall's own name, "recvfrom", "accept4"):
 *
 *   SYSCALL fd N WHAT        read/readv/pread64/preadv/preadv2, write/writev/pwrite64/
 *                            pwritev/pwritev2, recvfrom/recvmsg/recvmmsg, sendto/sendmsg/
 *                            sendmmsg, accept/accept4, connect, flock, fcntl F_SETLKW and
 *                            F_OFD_SETLKW; and poll/ppoll of exactly one fd
 *   SYSCALL fd N             the fd could not be read (closed meanwhile, no access)
 *   WHAT is one of:
 *     /var/log/x.log         a path (the fd's link; " (deleted)" kept), /dev/pts/3
 *     pipe:[81234]           the link as the kernel spells it (pipes, other pseudo files)
 *     eventfd, timerfd,      "anon_inode:[eventfd]" and friends without the decoration;
 *     signalfd, epoll        eventpoll is called epoll
 *     tcp 10.0.0.2:44312->10.0.0.1:6379   a connected (or connecting) socket: local->remote
 *     tcp *:8080             a listener: "*" for the any address, else the address
 *     tcp [::1]:6379         IPv6 in brackets; "tcp"/"udp" for both families, as ss says
 *     udp 0.0.0.0:53         unconnected UDP: its local address as it is (a TCP socket
 *                            only bound is in no table: socket:[INODE])
 *     unix /run/foo.sock     the bound path of a unix socket (accepted sockets share their
 *                            listener's), "@name" for an abstract one
 *     unix ->/run/foo.sock   an unnamed unix socket: the path of the peer it connected to
 *     unix socket:[INODE]    an unnamed unix socket whose peer is unnamed or unknown
 *     socket:[INODE]         any other socket (netlink, packet, …), or one not listed
 *   SYSCALL N fds            poll/ppoll (nfds), select/pselect6 (the nfds argument: the
 *                            highest fd + 1)
 *   SYSCALL fd N (K fds)     epoll_wait/epoll_pwait/epoll_pwait2: K watched fds ("K+ fds"
 *                            when the fdinfo was too long to count them all)
 *   SYSCALL D                nanosleep, relative clock_nanosleep: the requested duration
 *   SYSCALL D, L left        … when WAITED_NS is known and below D: L = D − WAITED_NS
 *                            (not for CPU-time clocks)
 *   SYSCALL L left           a relative sleep that passes one timespec as request and
 *                            remainder (sleep(3) does): the kernel rewrote it with the
 *                            time left at the thread's last stop; L = that − SINCE_STOP_NS
 *   SYSCALL L left           clock_nanosleep with TIMER_ABSTIME: the target time minus now
 *                            on that clock ("0s left" when past)
 *   SYSCALL child P / any child / process group G       wait4, waitid (P_PIDFD: the pid
 *                            the pidfd's fdinfo names, else "pidfd N")
 *
 * Durations D, L are Go-like short forms, always rounded down: "0s", "850ns", "12us",
 * "250ms", "1.5ms", "7.2s", "10s", "3m10s", "3m0s", "2h5m", "2h0m" (seconds below a
 * minute with one decimal, minutes with whole seconds, hours with whole minutes).
 *
 * Futex waits are not described here (locks are decoded elsewhere), nor pause,
 * rt_sigsuspend, rt_sigtimedwait and every syscall not listed: false, and the caller prints
 * the bare syscall name.
 *
 * Everything read is untrusted: every read is bounded, every number range-checked. Paths
 * are chosen by the target: control bytes come out as '?', and BUF is truncated on a
 * character boundary, so a description is always one line of BUF's size at most. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* A context is used by one thread at a time; what it cached is as old as the dump. */
typedef struct BlockingCallContext BlockingCallContext;   /* one per thread dump: caches the
                       target's /proc/PID/net/{tcp,tcp6,udp,udp6,unix} tables, read lazily
                       the first time a socket needs them, and the fd descriptions of this dump */

/* 0, or -ENOMEM. Reads nothing yet. */
int blocking_call_context_new(pid_t pid, BlockingCallContext **ret);
BlockingCallContext *blocking_call_context_free(BlockingCallContext *c);  /* accepts NULL */

/* Writes into BUF what thread TID of the context's process, blocked in syscall NR with
 * ARGS (x86-64 numbers and argument order, from /proc/PID/task/TID/syscall or ptrace
 * regs), waits on. WAITED_NS: how long the thread has been seen in this wait, 0 unknown;
 * SINCE_STOP_NS: how long ago the thread was last stopped (0: for this very dump).
 * True when BUF holds a description; false for syscalls it has nothing to add to (the
 * caller then prints the bare syscall name). Never fails otherwise: an fd that cannot be
 * read still gives "read fd 4".
 *
 * An fd is described once per context, through the first thread that asks: threads share
 * their fd table (only a thread that called unshare(CLONE_FILES) would not). */
bool blocking_call_describe(BlockingCallContext *c, pid_t tid, int nr, const uint64_t args[6],
                            uint64_t waited_ns, uint64_t since_stop_ns, char *buf, size_t size);
