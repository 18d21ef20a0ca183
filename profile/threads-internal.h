/* profile/threads-internal.h -- private to profile/: the pieces of the debug=1 encoder that
 * other count-shaped text profiles of profile/ (the thread growth of history.c) print the
 * same way, so a record looks alike wherever it comes from. */
#pragma once

#include "buf.h"
#include "frame.h"
#include "threads.h"

/* Appends "@ 0xPC 0xPC…": the raw pcs of S as unwound (Go's %#x), or a bare "@" when S is
 * NULL or empty. */
void stack_write_debug1_key(Buf *out, const Stack *s);

/* Appends the "#\t0xLPC\tfunc+0xOFF\tfile:line" lines of S (one per frame and inline
 * level, innermost first), then "#\t\t[truncated]" for a truncated stack or "#\t[no stack]"
 * for a complete empty one. Text for the tab writer: the caller formats the whole text. */
void stack_write_debug1_frames(Buf *out, const Stack *s);

/* Appends S with control characters, DEL and invalid UTF-8 as C escapes (and, when
 * QUOTED, '"' and '\\' escaped too): target strings can forge neither lines nor cells. */
void text_put_escaped(Buf *out, const char *s, bool quoted);

/* Appends W's text with, when a thread of D holds the object, where that holder is:
 * `mutex &m held by thread 1232 "ho-worker" in ho_idle_after (S, 3 minutes)`. */
void thread_wait_write_with_holder(Buf *out, const ThreadDump *d, const ThreadWait *w);

/* Appends `TID "NAME"` (`TID (ns NSTID) "NAME"` for a container's thread), the name escaped
 * and quoted: how every text of a dump refers to a thread. */
void thread_write_ref(Buf *out, const ThreadRecord *t);

/* Whether A and B belong in one debug=1 record: the same error, or the same raw pcs and
 * truncation. */
bool thread_same_stack(const ThreadRecord *a, const ThreadRecord *b);
