/* attach/pthread-layout.h -- where glibc keeps a thread's start routine in its struct
 * pthread (the block fs_base points to), learnt from this process's own C library rather
 * than assumed: the offset differs between glibc versions. It holds for a target only
 * when the target maps the very same libc file as cprofd. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "procfs.h"

/* The offset of start_routine in this process's struct pthread: found once, by starting
 * a thread and looking for its start routine's address in its own block. 0, or -ENOENT
 * when it cannot be found. */
int pthread_start_routine_offset(size_t *ret);

/* Whether MAPS (a target's) map the same C library file as this process (device and
 * inode): then the target's struct pthread has this process's layout. */
bool pthread_layout_is_ours(const Maps *maps);
