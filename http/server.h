/* http/server.h -- the HTTP face of cprofd: libevent's evhttp, a route table, strict
 * parameter parsing, and Go's net/http/pprof conventions (headers, errors, index page).
 *
 * Routes (PREFIX is "" for the default target, or "/pid/PID" to choose one):
 *   PREFIX/debug/pprof            301 → PREFIX/debug/pprof/
 *   PREFIX/debug/pprof/           index (HTML): profiles with counts, targets, links
 *   PREFIX/debug/pprof/cmdline    argv NUL-joined
 *   PREFIX/debug/pprof/symbol     GET query or POST body: addresses → names
 *   PREFIX/debug/pprof/NAME       a profile of Backend.profiles: a NAMED one takes
 *                                 debug=0|1|2, seconds=N (a delta), format=json; a WINDOW
 *                                 one (profile, wall) seconds=N (Go's rules), hz=H, mode=fp
 *   PREFIX/debug/pprof/OTHER      404 "Unknown profile"
 *   /metrics                      Prometheus text
 * GET and HEAD everywhere, POST on symbol only; other methods get 405 with Allow.
 * Every reply carries X-Content-Type-Options: nosniff. Errors are text/plain with
 * X-Go-Pprof: 1 and a one-line body, so `go tool pprof` prints them.
 *
 * http/ knows nothing of ptrace or DWARF: the daemon supplies the data through Backend. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "buf.h"

struct event_base;

typedef struct HttpServer HttpServer;

typedef struct Reply {
        int status;                     /* HTTP status; 200 unless set */
        const char *content_type;       /* NULL: "text/plain; charset=utf-8" */
        const char *filename;           /* set: Content-Disposition: attachment; filename="…" */
        bool gzip;                      /* the body is gzip: Content-Encoding: gzip */
        bool truncated;                 /* cut at a size limit: X-Cprofd-Truncated: 1 */
        Buf body;                       /* for errors: the one-line message, no newline */
} Reply;

/* Fills R as an error reply with a one-line message (Go's http.Error). */
void reply_error(Reply *r, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

typedef struct TargetSummary {
        pid_t pid;
        char comm[64];
        long threads;                   /* current thread count, -1 when unknown */
        bool exited;
        long growth;                    /* thread count change over GROWTH_WINDOW_NS */
        uint64_t growth_window_ns;      /* 0: not known yet (fewer than two snapshots) */
        long deadlocked_threads;        /* in deadlock cycles at the last snapshot */
} TargetSummary;

/* A request being answered, now or later. The backend answers every Request it is given
 * exactly once with request_finish(), on the event loop's thread. Until then the loop keeps
 * serving other clients. */
typedef struct Request Request;

/* Sends R (its body is taken) as the reply and releases REQ. When the client has gone
 * away meanwhile, the reply is dropped and REQ released all the same. */
void request_finish(Request *req, Reply *r);
/* True once the client has disconnected: the work may stop early (request_finish is
 * still due). */
bool request_is_cancelled(const Request *req);
/* Runs CB(USERDATA) on the loop thread as soon as the client disconnects before
 * request_finish(), so the backend can release the work it holds for REQ (cancel a
 * timer, drop a queued job). At most one callback; NULL clears it. CB may call
 * request_finish() itself. Set it before Backend.profile/symbol returns: a disconnect
 * noticed before it is set runs nothing (request_is_cancelled() still tells). */
void request_set_cancel_callback(Request *req, void (*cb)(void *userdata), void *userdata);

/* How a profile's request is shaped. */
typedef enum ProfileKind {
        PROFILE_NAMED,                  /* Go's named profiles: debug=0|1|2, seconds=N a delta
                                           of two collections, format=json */
        PROFILE_WINDOW,                 /* Go's CPU profile: seconds=N is the recording window
                                           (lenient, default 30), hz=H, mode= */
} ProfileKind;

/* One profile, as the index lists it and the router serves it. The backend's table says
 * it once for everything that needs it (index, router, /metrics, tests). */
typedef struct ProfileInfo {
        const char *name;               /* "goroutine" */
        const char *description;        /* what it shows, one line */
        const char *counts;             /* what its index count counts, one sentence */
        ProfileKind kind;
        bool supports_delta;            /* NAMED: seconds=N allowed */
        bool supports_json;             /* NAMED: format=json allowed */
        unsigned hz_default, hz_max;    /* WINDOW: hz=, 1..hz_max; hz_max 0: no hz= */
        unsigned seconds_default;       /* WINDOW: 0 is Go's CPU profile's 30 */
        bool supports_mode;             /* WINDOW: mode=dwarf|fp */
        const void *source;             /* the backend's: how it is collected */
        int variant;                    /* the backend's: which of its source's profiles */
} ProfileInfo;

/* A named profile request, parameters already validated with Go's checks and order. */
typedef struct ProfileRequest {
        pid_t pid;
        const ProfileInfo *info;        /* a row of Backend.profiles */
        int debug;                      /* 0: pprof protobuf; 1, 2: text */
        unsigned seconds;               /* > 0: delta profile over that many seconds */
        bool json;                      /* format=json, for profiles that support it */
} ProfileRequest;

/* A window profile's user stacks: unwound from a stack copy, or the kernel's frame-pointer
 * walk (mode=fp). */
typedef enum CpuProfileMode {
        CPU_PROFILE_DWARF,              /* user stacks unwound from a stack copy (default) */
        CPU_PROFILE_FP,                 /* mode=fp: the kernel's frame-pointer walk only */
} CpuProfileMode;

/* A window profile request (/debug/pprof/profile, /wall), parameters validated. */
typedef struct WindowProfileRequest {
        pid_t pid;
        const ProfileInfo *info;
        unsigned seconds;               /* as Go: default 30; ≤ 0 or unparsable → 30 */
        unsigned hz;                    /* hz=, 1..info->hz_max, default info->hz_default */
        CpuProfileMode mode;
        bool accept_gzip;               /* the client's Accept-Encoding has gzip */
} WindowProfileRequest;

#define HTTP_CPU_SECONDS_DEFAULT 30u

typedef struct Backend {
        void *userdata;
        /* Every profile served, NAMED and WINDOW (the index sorts them by name, with
         * cmdline among them). */
        const ProfileInfo *profiles;
        size_t n_profiles;
        /* Fills up to MAX summaries, the default target first; returns how many exist. */
        size_t (*list_targets)(void *userdata, TargetSummary *ret, size_t max);
        /* The count shown on the index for profile INFO of PID (INFO->counts says what it
         * is); -1 when unknown. Must be quick: it runs on the loop. */
        long (*profile_count)(void *userdata, pid_t pid, const ProfileInfo *info);
        /* Answers REQ with the NAMED profile P (asynchronously if it likes). Replies: 200
         * with the body, or an error status with a one-line message (reply_error). For
         * debug=0 the backend sets content_type and filename itself; left NULL on a 200,
         * http/ puts application/octet-stream and NAME (NAME-delta when seconds > 0). */
        void (*profile)(void *userdata, Request *req, const ProfileRequest *p);
        /* Answers REQ with the WINDOW profile P: a pprof profile; errors as for profile. */
        void (*window_profile)(void *userdata, Request *req, const WindowProfileRequest *p);
        /* Resolves ADDRS of PID to function names, appending "0xADDR name\n" per resolved
         * address in order (Go's /debug/pprof/symbol); answers REQ. The body holds only
         * those lines: on a 200, request_finish() puts "num_symbols: 1\n" first. N ≥ 1
         * (an empty list is answered without the backend); ADDRS stay valid until
         * request_finish(REQ). Called for an exited target too. */
        void (*symbol)(void *userdata, Request *req, pid_t pid, const uint64_t *addrs, size_t n);
        /* The command line of PID into R (quick, synchronous). */
        void (*cmdline)(void *userdata, pid_t pid, Reply *r);
        /* Prometheus text exposition of the daemon's metrics, appended to OUT. */
        void (*metrics)(void *userdata, Buf *out);
} Backend;

typedef struct HttpLimits {
        unsigned max_seconds;           /* seconds=N must stay below (Go's WriteTimeout
                                           check: N ≥ it → 400); 0: the default */
        unsigned max_pending;           /* requests awaiting request_finish at most; more
                                           get 503; 0: the default */
        unsigned max_profiles;          /* CPU and wall profiles running at once, a share of
                                           max_pending; more get 503; 0: the default */
        unsigned max_connections;       /* open client connections; one more is closed as
                                           soon as it is accepted; 0: the default */
        unsigned header_timeout_sec;    /* a request must arrive whole within this long of
                                           its connection opening, or of the previous reply
                                           on it; else the connection is closed; 0: the
                                           default */
} HttpLimits;

#define HTTP_MAX_SECONDS_DEFAULT 3600u
#define HTTP_MAX_PENDING_DEFAULT 64u
#define HTTP_MAX_PROFILES_DEFAULT 4u
#define HTTP_MAX_CONNECTIONS_DEFAULT 256u
#define HTTP_HEADER_TIMEOUT_DEFAULT 10u
#define HTTP_TOKEN_MAX 4096u            /* bytes of a bearer token */
#define SYMBOL_ADDRS_MAX 65536u         /* addresses one /symbol request may ask for */

/* Listens on LISTEN and serves BACKEND on BASE. LISTEN is "HOST:PORT" (an IP literal or
 * "localhost"; port 0 picks a free one; IPv6 as "[::1]:PORT") or "unix:/ABSOLUTE/PATH":
 * a unix socket created with permissions SOCKET_MODE, replacing a stale socket at PATH
 * (never a file of another kind, nor a socket somebody still accepts on), and removed by
 * http_server_free(). LIMITS may be NULL (the defaults). 0, or negative errno: -EEXIST
 * when PATH is not a socket, -EADDRINUSE when it is a live one. */
int http_server_new(struct event_base *base, const char *listen, mode_t socket_mode, const Backend *backend,
                    const HttpLimits *limits, HttpServer **ret);
/* Replaces the limits (0 fields: the defaults). Requests and connections already there
 * stay; the new bounds apply to what comes next. */
void http_server_set_limits(HttpServer *s, const HttpLimits *limits);
/* Every request must carry "Authorization: Bearer TOKEN" from now on (NULL: none
 * needed); others get 401. TOKEN is copied. 0, -EINVAL (empty, too long, or a byte that
 * cannot be in a header), or -ENOMEM. */
int http_server_set_token(HttpServer *s, const char *token);
/* Requests awaiting request_finish() right now. */
unsigned http_server_pending(const HttpServer *s);
/* Client connections open right now. */
unsigned http_server_connections(const HttpServer *s);
/* Stops accepting connections and runs BASE until every reply given to libevent is
 * written out (or its client gone), for TIMEOUT_MS at most: for a shutdown, between the
 * last request_finish() and http_server_free(), which would drop unwritten replies. */
void http_server_drain(HttpServer *s, unsigned timeout_ms);
/* Accepts NULL, returns NULL. Requests still pending are cancelled (their cancel
 * callbacks run, their clients are disconnected); each still gets its request_finish(),
 * which may come after the server is gone. */
HttpServer *http_server_free(HttpServer *s);
/* The bound address, "127.0.0.1:43121" or "unix:/run/cprofd/cprofd.sock". */
const char *http_server_address(const HttpServer *s);
/* Whether LISTEN (as for http_server_new) is reachable from this host only: a unix
 * socket or a loopback address (127.0.0.0/8, ::1, ::ffff:127.0.0.0/104). 1, 0, or
 * -EINVAL when LISTEN is malformed. */
int http_listen_is_local(const char *listen);

/* Parses a "debug" value: NULL or "" is 0, else a decimal integer 0..HTTP_DEBUG_MAX (digits
 * only, no sign or space). 0, or -EINVAL with *ret untouched. */
#define HTTP_DEBUG_MAX 2
int http_parse_debug(const char *value, int *ret);
