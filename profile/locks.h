/* profile/locks.h -- the locks view of a thread dump with decoded waits: every
 * synchronization object some thread waits on, most waiters first, with its kind, name,
 * holder and the grouped stacks of holder and waiters.
 *
 *   debug=1   "locks profile: total N" (N objects), then per object a line
 *             "KIND NAME held by thread TID "NAME" in FUNC (S, 3 minutes); 3 waiting"
 *             (the holder text as thread headers give it), "# holder:" and the holder's
 *             record, "# waiting:" and the waiters' records grouped by stack, in
 *             goroutine debug=1's record shape ("COUNT @ 0x…", "# threads: …", frames);
 *             deadlocks first, as the thread dumps print them.
 *   json      {"pid":N,"time":"RFC 3339","deadlocks":[[{thread},…],…],"locks":[{"kind",
 *             "name","address","holder":{thread}|null,"holder_status","readers",
 *             "waiters":[{thread},…],…}]} where a thread is {"tid","ns_tid","name",
 *             "state","wait_seconds","top_function","stack":[{"function","file",
 *             "line","module","inlined"},…]}.
 *
 * Pure data: no process, no I/O. */
#pragma once

#include "buf.h"
#include "threads.h"

/* The number of objects some thread of D waits on. */
size_t locks_count(const ThreadDump *d);

void locks_write_debug1(const ThreadDump *d, Buf *out);
void locks_write_json(const ThreadDump *d, Buf *out);
