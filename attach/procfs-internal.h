/* attach/procfs-internal.h -- the text parsers behind procfs.c, without the reading: text
 * of a /proc file in, values out. Private to attach/; exposed so that the fuzzers
 * (fuzz/fuzz-procfs.c) can feed them arbitrary text, since the names inside that text
 * (comm, mapped paths) are chosen by the target. procfs.c reads each file with a bounded
 * read and hands the bytes to these functions unchanged. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "procfs.h"

/* The text of /proc/PID/maps, NUL-terminated; the lines are cut in place (TEXT is
 * modified). Malformed lines and lines out of address order are skipped; at most
 * MAPS_MAX_ENTRIES entries. 0 with *ret filled, -ESRCH when no line parses (a zombie or
 * a kernel thread has no maps), or -ENOMEM. */
int procfs_parse_maps(char *text, Maps *ret);

/* /proc/…/stat, "tid (comm) S f4 f5 …": fills name, state, pgrp, utime_ticks, stime_ticks and
 * start_time_ticks of *INFO (nothing else). 0, or -EINVAL (INFO then partly written). */
int procfs_parse_stat(const char *text, ThreadInfo *info);

/* /proc/…/syscall ("running", "-1 SP PC" or "NR ARG… SP PC"): the syscall number, or -1
 * when the text names none (or one ≥ 4096). */
int procfs_parse_syscall(const char *text);
/* The same text in full: PLACE->known when it names a syscall with its arguments, sp and
 * pc (all nine fields well-formed). */
void procfs_parse_syscall_place(const char *text, SyscallPlace *place);
/* /proc/…/schedstat, "RUN_NS WAIT_NS TIMESLICES": the first field. 0, or -EINVAL. */
int procfs_parse_schedstat(const char *text, uint64_t *ret);

/* /proc/…/wchan: RET gets the symbol with non-graphic bytes replaced by '?', truncated to
 * fit, or "" for "0" (no wait channel). */
void procfs_parse_wchan(const char *text, char ret[static 64]);

/* /proc/PID/comm as read: LEN bytes (at most THREAD_NAME_MAX; TEXT[LEN] is NUL), one
 * trailing newline removed. RET gets a NUL-terminated name. */
void procfs_parse_comm(const char *text, size_t len, char ret[static THREAD_NAME_MAX]);

/* TracerPid from the text of /proc/PID/status. 0, or -EIO when absent or malformed. */
int procfs_parse_tracer(const char *text, pid_t *ret);
/* The last id of the NSpid line of /proc/…/status: the thread's id in its own pid
 * namespace. 0, or -EIO when absent or malformed. */
int procfs_parse_ns_tid(const char *text, pid_t *ret);

/* At most MAX bytes of the /proc file PATH into a malloc'ed, NUL-terminated *RET (its
 * length in *RET_LEN when not NULL): the bounded read every /proc reader of attach/ uses.
 * 0, -ESRCH when the entry is gone, or another negative errno. */
int procfs_read_file(const char *path, size_t max, char **ret, size_t *ret_len);

/* A decimal of at most 19 digits at *P, *P moved past it. False (nothing moved) when *P
 * holds no digit or too many. */
bool procfs_parse_dec(const char **p, uint64_t *ret);
