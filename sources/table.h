/* sources/table.h -- every profile cprofd serves, described once: name, what it shows,
 * what its index count counts, how it is asked for (NAMED or WINDOW, deltas, JSON) and
 * the source that collects it. The router, the index, /metrics and `cprofd
 * --list-profiles` (which the tests read) all take them from here: a new profile is a
 * new row, and a new source a new module. */
#pragma once

#include <stddef.h>

#include "source.h"

extern const ProfileInfo profile_table[];
extern const size_t profile_table_size;         /* rows, sorted by name */

/* The distinct sources of the table, in table order of first use. */
extern const ProfileSource *const profile_sources[];
extern const size_t profile_sources_size;

/* The row's index in the table. */
size_t profile_table_index(const ProfileInfo *info);

/* One line per profile, tab-separated: name, kind ("named" or "window"), "delta" or "-",
 * "json" or "-", source, description, what the count counts. */
void profile_table_write(Buf *out);
