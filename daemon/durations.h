/* daemon/durations.h -- the parsers of --interval, --history and --listen-mode (and of
 * their cprofd.conf keys): Go-style durations, "count or memory budget" history sizes,
 * octal modes. Pure functions:
 * no allocation, no logging, no event loop, so the config parser and its test use them
 * without the scheduler. */
#pragma once

#include <stdint.h>
#include <sys/types.h>

#include "clock.h"

#define INTERVAL_MIN_NS (100 * NSEC_PER_MSEC)
#define HISTORY_SNAPSHOTS_MAX 100000u

/* Parses a Go-style duration: "10s", "500ms", "2m", "1h", "1m30s"; a bare number means
 * seconds; "0" is zero. 0, or -EINVAL. */
int parse_duration(const char *s, uint64_t *ret_ns);
/* --history: a number of snapshots ("360") or a memory budget ("64M", "512K", "1G"); the
 * other bound keeps its value. 0, or -EINVAL. */
int parse_history(const char *s, unsigned *snapshots, uint64_t *bytes);
/* Octal permission bits, 0 … 0777, 1 to 4 digits ("0660", "660", "0"). 0, or -EINVAL. */
int parse_mode(const char *s, mode_t *ret);
