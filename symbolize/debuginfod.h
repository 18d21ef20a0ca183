/* symbolize/debuginfod.h -- fetch missing debug files by build-id from debuginfod servers
 * ($DEBUGINFOD_URLS) on a thread of their own, so that no lookup ever waits for a server.
 *
 * The symbolizer asks (debug_fetcher_request) and later collects what arrived
 * (debug_fetcher_take); downloads land in libdebuginfod's cache ($DEBUGINFOD_CACHE_PATH,
 * else ~/.cache/debuginfod_client). Thread-safe: requests and results cross a mutex;
 * nothing else is shared with the fetching thread. */
#pragma once

#include <elfutils/libdwfl.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct DebugFetcher DebugFetcher;

#define DEBUG_FETCHER_QUEUE_MAX 256             /* build-ids waiting for their turn */
#define DEBUG_FETCHER_KNOWN_MAX 4096            /* build-ids remembered (done, failed) */
#define DEBUG_FETCHER_RETRY_NS (UINT64_C(10) * 60 * 1000000000)  /* after a failure */

typedef struct DebugFetcherStats {
        uint64_t started, succeeded, failed;
} DebugFetcherStats;

/* Whether $DEBUGINFOD_URLS names a server. */
bool debug_fetcher_configured(void);

/* Starts the fetching thread. 0, or negative errno. */
int debug_fetcher_new(DebugFetcher **ret);
/* Cancels a download in progress, joins the thread. Accepts NULL, returns NULL. */
DebugFetcher *debug_fetcher_free(DebugFetcher *f);

/* Queues BUILD_ID (lowercase hex) unless it is queued, fetched, or failed less than
 * DEBUG_FETCHER_RETRY_NS ago. Never blocks on the network; drops the request when the
 * queue is full (a later request queues it again). */
void debug_fetcher_request(DebugFetcher *f, const char *build_id);

/* Hands over one fetched file: true with *ret_build_id and *ret_path (the caller frees
 * both), false when nothing new arrived. */
bool debug_fetcher_take(DebugFetcher *f, char **ret_build_id, char **ret_path);

void debug_fetcher_get_stats(DebugFetcher *f, DebugFetcherStats *ret);

/* libdwfl's local search for the debug file of MOD (by build-id under /usr/lib/debug,
 * then by .gnu_debuglink next to FILE_NAME, in .debug/ and under /usr/lib/debug), for a
 * Dwfl_Callbacks.find_debuginfo. Unlike dwfl_standard_find_debuginfo it never queries a
 * debuginfod server itself, which that does synchronously when $DEBUGINFOD_URLS is set.
 * A candidate must carry MOD's build-id. Returns an fd, or -1. */
int debug_find_local(Dwfl_Module *mod, const char *file_name, const char *debuglink_file,
                     char **ret_name);
