/* daemon/thread-waits.h -- fill a thread dump's waits: for each thread in a futex wait,
 * the synchronization object (profile/waits.h decodes it from bytes read here, after the
 * thread was released), its name (a variable of a module, heap, a thread's stack) and its
 * holder among the dump's threads; then the deadlock cycles, each confirmed before it is
 * reported: every thread of it is re-read from /proc as still blocked in the same wait,
 * not having run at all, while its object is read again and still names the same holder.
 * A thread that has not run cannot have released or taken a lock, so a cycle seen that
 * way is real and not a race between reading two threads. */
#pragma once

#include "snapshot.h"
#include "thread-cache.h"
#include "symbolizer.h"
#include "threads.h"

/* Fills D->waits, each record's sync and D->deadlocks. S is the snapshot D was made from
 * (same threads, same order), AS its address space. Costs no pause: nothing is stopped.
 * Without memory (allocation failure) D is left without waits. */
void thread_dump_decode_waits(ThreadDump *d, const Snapshot *s, AddressSpace *as);

/* Replaces the bare syscall name of each thread blocked in another call by what it waits
 * on (attach/blocking-call.h: "read fd 4 pipe:[81234]", "nanosleep 10s, 7.2s left"), a
 * restart_syscall by the call it restarts. Call once the dump's wait times are known;
 * CACHE says when threads the snapshot did not stop were stopped last. */
void thread_dump_describe_calls(ThreadDump *d, const Snapshot *s, const ThreadCache *cache);

/* Frees what thread_dump_decode_waits() added. */
void thread_dump_waits_done(ThreadDump *d);
