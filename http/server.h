/* http/server.h -- the HTTP face of cprofd: libevent's evhttp, a route table, strict
 * parameter parsing, and Go's net/http/pprof conventions (headers, errors, index page).
 *
 * Routes (PREFIX is "" for the default target, or "/pid/PID" to choose one):
 *   PREFIX/debug/pprof            301 → PREFIX/debug/pprof/
 *   PREFIX/debug/pprof/           index (HTML): profiles with counts, targets, links
 *   PREFIX/debug/pprof/cmdline    argv NUL-joined
 *   PREFIX/debug/pprof/goroutine  thread dump: debug=1 | debug=2
 *   PREFIX/debug/pprof/OTHER      404 "Unknown profile"
 *   /metrics                      Prometheus text
 * Every reply carries X-Content-Type-Options: nosniff. Errors are text/plain with
 * X-Go-Pprof: 1 and a one-line body, so `go tool pprof` prints them.
 *
 * http/ knows nothing of ptrace or DWARF: the daemon supplies the data through Backend. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "buf.h"

struct event_base;

typedef struct HttpServer HttpServer;

typedef struct Reply {
        int status;                     /* HTTP status; 200 unless set */
        const char *content_type;       /* NULL: "text/plain; charset=utf-8" */
        const char *filename;           /* set: Content-Disposition: attachment; filename="…" */
        Buf body;                       /* for errors: the one-line message, no newline */
} Reply;

/* Fills R as an error reply with a one-line message (Go's http.Error). */
void reply_error(Reply *r, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

typedef struct TargetSummary {
        pid_t pid;
        char comm[64];
        long threads;                   /* current thread count, -1 when unknown */
        bool exited;
} TargetSummary;

typedef struct Backend {
        void *userdata;
        /* Fills up to MAX summaries, the default target first; returns how many exist. */
        size_t (*list_targets)(void *userdata, TargetSummary *ret, size_t max);
        /* The thread dump of PID at DEBUG (1 or 2) into R. */
        void (*goroutine)(void *userdata, pid_t pid, int debug, Reply *r);
        /* The command line of PID into R. */
        void (*cmdline)(void *userdata, pid_t pid, Reply *r);
        /* Prometheus text exposition of the daemon's metrics, appended to OUT. */
        void (*metrics)(void *userdata, Buf *out);
} Backend;

/* Listens on LISTEN ("HOST:PORT"; port 0 picks a free one; IPv6 as "[::1]:PORT") and
 * serves BACKEND on BASE. 0, or negative errno. */
int http_server_new(struct event_base *base, const char *listen, const Backend *backend, HttpServer **ret);
/* Accepts NULL, returns NULL. */
HttpServer *http_server_free(HttpServer *s);
/* The bound address, "127.0.0.1:43121". */
const char *http_server_address(const HttpServer *s);

/* Parses a "debug" value as Go does: an integer, anything else counts as 0. */
int http_parse_debug(const char *value);
