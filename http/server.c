/* http/server.c -- cprofd's HTTP server: libevent evhttp, one route table, and Go's
 * net/http/pprof conventions for headers, errors, parameters and the index page.
 *
 * Everything comes in through one generic callback and is routed here, so every reply,
 * including 404s, gets the same headers and error shape. The order of checks is fixed:
 * path (400) → /pid/N prefix (400) → method (405; POST only on /symbol) → query size (400)
 * → route (301/404) → target (404/410) → then per route: a profile checks its name (404
 * "Unknown profile"), its query (400: syntax, duplicates, lengths), seconds and debug in
 * Go's order (400), and the pending limit (503). The path is routed after
 * percent-decoding, as Go routes r.URL.Path, and must already be in normal form. The
 * index, cmdline and /metrics ignore the query, as Go's do; /symbol reads it raw.
 *
 * The index, cmdline, /metrics and errors are answered at once. Profiles and /symbol are
 * handed to the Backend with a Request and answered later (request.c), so a 30-second
 * profile never holds the loop. Library code: nothing here logs.
 *
 * Before any of that, when a token is set, a request without the right
 * "Authorization: Bearer" gets 401, whatever it asks for: an unauthenticated client
 * learns nothing, not even which paths exist.
 *
 * Limits against clients that hold resources (each a field of HttpLimits): requests
 * pending, CPU and wall profiles running, open connections (counted from accept; one
 * over the cap is closed at once), and a deadline for reading each request whole. The
 * deadline is what stops a slow sender: libevent's own timeout restarts with every byte
 * read, so a client sending a header byte every few seconds would hold its connection
 * forever. The same deadline closes a keep-alive connection left idle after a reply. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/queue.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "history.h"
#include "http-internal.h"
#include "macro.h"

#define QUERY_MAX 4096                  /* bytes of raw query string */
#define HEADERS_MAX (16 * 1024)
#define BODY_MAX (64 * 1024)            /* a POST to /symbol: 65536 '+' are 65537 words */
#define TIMEOUT_SEC 30                  /* libevent's: no byte read or written for this long */
#define UNIX_BACKLOG 128
#define TARGETS_MAX 4096                /* targets listed on an index page */
#define PROFILES_MAX 64                 /* rows on the index page */

#define PROMETHEUS_TEXT "text/plain; version=0.0.4; charset=utf-8"
#define CMDLINE_DESCRIPTION "The command line invocation of the target (count: always 0)"

static bool streq(const char *a, const char *b) {
        return strcmp(a, b) == 0;
}

static void put_html_escaped(Buf *out, const char *s) {
        for (; *s; s++)
                switch (*s) {
                case '&': buf_puts(out, "&amp;"); break;
                case '<': buf_puts(out, "&lt;"); break;
                case '>': buf_puts(out, "&gt;"); break;
                case '"': buf_puts(out, "&#34;"); break;        /* as Go's html.EscapeString */
                case '\'': buf_puts(out, "&#39;"); break;
                default: buf_putc(out, *s); break;
                }
}

/* ---- targets ---- */

typedef struct Targets {
        TargetSummary *list;
        size_t n;
        TargetSummary local[16];
} Targets;

static void targets_done(Targets *t) {
        if (t->list != t->local)
                free(t->list);
        t->list = NULL;
        t->n = 0;
}

static void targets_fetch(HttpServer *s, Targets *t) {
        size_t n;

        t->list = t->local;
        n = s->backend.list_targets ? s->backend.list_targets(s->backend.userdata, t->local, ARRAY_SIZE(t->local)) : 0;
        if (n > ARRAY_SIZE(t->local)) {
                /* More than fit: ask again with room for all (the count may have moved). */
                size_t max = MIN(n, (size_t) TARGETS_MAX);
                TargetSummary *l = calloc(max, sizeof(TargetSummary));
                if (l) {
                        t->list = l;
                        n = s->backend.list_targets(s->backend.userdata, l, max);
                        n = MIN(n, max);
                } else
                        n = ARRAY_SIZE(t->local);
        }
        t->n = n;
}

static const ProfileInfo *profile_find(const HttpServer *s, const char *name) {
        for (size_t i = 0; i < s->backend.n_profiles; i++)
                if (streq(s->backend.profiles[i].name, name))
                        return &s->backend.profiles[i];
        return NULL;
}

/* ---- the index page ---- */

static void put_target_name(Buf *out, const TargetSummary *t) {
        char comm[sizeof t->comm + 1];

        memcpy(comm, t->comm, sizeof t->comm);
        comm[sizeof t->comm] = 0;
        buf_printf(out, "pid %d (", (int) t->pid);
        put_html_escaped(out, comm);
        buf_putc(out, ')');
}

/* "226 threads, +214 in 5m": what a leak hunt looks at first. */
static void put_thread_summary(Buf *out, const TargetSummary *t) {
        char window[32];

        if (t->exited) {
                buf_puts(out, "exited");
                return;
        }
        if (t->threads >= 0)
                buf_printf(out, "%ld threads", t->threads);
        else
                buf_puts(out, "? threads");
        if (t->growth_window_ns > 0)
                buf_printf(out, ", %+ld in %s", t->growth,
                           format_short_duration(t->growth_window_ns, window, sizeof window));
        if (t->deadlocked_threads > 0)
                buf_printf(out, ", %ld in a deadlock", t->deadlocked_threads);
}

static void put_count(Buf *out, long n) {
        if (n < 0)
                buf_putc(out, '?');
        else
                buf_printf(out, "%ld", n);
}

typedef struct IndexRow {
        const char *name;
        const char *description;
        const char *counts;             /* NULL: no count sentence */
        long count;
} IndexRow;

static int index_row_compare(const void *a, const void *b) {
        return strcmp(((const IndexRow *) a)->name, ((const IndexRow *) b)->name);
}

/* Modelled line by line on Go's /debug/pprof/ page (reference/go-pprof-observed/index.html),
 * with the profiles the backend serves plus cmdline, and a table of targets when there
 * are several. */
static void serve_index(HttpServer *s, const char *prefix, const Targets *all, const TargetSummary *target,
                        Reply *r) {
        IndexRow rows[PROFILES_MAX + 3];
        size_t n = 0;
        bool goroutine = false;
        Buf *o = &r->body;

        rows[n++] = (IndexRow) { "cmdline", CMDLINE_DESCRIPTION, NULL, 0 };
        for (size_t i = 0; i < s->backend.n_profiles && n < ARRAY_SIZE(rows); i++) {
                const ProfileInfo *p = &s->backend.profiles[i];

                if (streq(p->name, "cmdline") || streq(p->name, "symbol"))
                        continue;       /* routed before the profiles: never reached */
                rows[n++] = (IndexRow) {
                        p->name,
                        p->description ? p->description : "",
                        p->counts,
                        p->kind == PROFILE_WINDOW ? 0 :         /* as Go's profile and trace */
                        s->backend.profile_count ? s->backend.profile_count(s->backend.userdata, target->pid, p)
                                                 : -1,
                };
                goroutine = goroutine || streq(p->name, "goroutine");
        }
        qsort(rows, n, sizeof rows[0], index_row_compare);      /* Go sorts rows by name */

        r->content_type = TEXT_HTML;
        buf_printf(o, "<html>\n"
                      "<head>\n"
                      "<title>%s/debug/pprof/</title>\n"
                      "<style>\n"
                      ".profile-name{\n"
                      "\tdisplay:inline-block;\n"
                      "\twidth:6rem;\n"
                      "}\n"
                      "</style>\n"
                      "</head>\n"
                      "<body>\n"
                      "%s/debug/pprof/<br>\n", prefix, prefix);
        if (target->deadlocked_threads > 0)
                buf_printf(o, "<p class=deadlock><b>deadlock: %ld threads wait for each other</b> "
                              "(<a href=\"locks?debug=1\">locks</a>, "
                              "<a href=\"goroutine?debug=2\">thread dump</a>)</p>\n",
                           target->deadlocked_threads);
        put_target_name(o, target);
        buf_puts(o, ": ");
        put_thread_summary(o, target);
        buf_puts(o, "<br>\n"
                    "<br>\n"
                    "Types of profiles available:\n"
                    "<table>\n"
                    "<thead><td>Count</td><td>Profile</td></thead>\n");
        for (size_t i = 0; i < n; i++) {
                buf_puts(o, "<tr><td>");
                put_count(o, rows[i].count);
                buf_puts(o, "</td><td><a href='");
                put_html_escaped(o, rows[i].name);
                buf_puts(o, "?debug=1'>");
                put_html_escaped(o, rows[i].name);
                buf_puts(o, "</a></td></tr>\n");
        }
        buf_puts(o, "</table>\n");
        if (goroutine)
                buf_puts(o, "<a href=\"goroutine?debug=2\">full goroutine stack dump</a>\n");
        buf_puts(o, "<br>\n"
                    "<p>\n"
                    "Profile Descriptions:\n"
                    "<ul>\n");
        for (size_t i = 0; i < n; i++) {
                buf_puts(o, "<li><div class=profile-name>");
                put_html_escaped(o, rows[i].name);
                buf_puts(o, ": </div> ");
                put_html_escaped(o, rows[i].description);
                if (rows[i].counts) {
                        buf_puts(o, " Count: ");
                        put_html_escaped(o, rows[i].counts);
                }
                buf_puts(o, "</li>\n");
        }
        buf_puts(o, "</ul>\n"
                    "</p>\n");

        if (all->n > 1) {
                buf_puts(o, "<p>\n"
                            "Targets:\n"
                            "<table>\n"
                            "<thead><td>Threads</td><td>Target</td><td>Over the history</td></thead>\n");
                for (size_t i = 0; i < all->n; i++) {
                        const TargetSummary *t = &all->list[i];

                        buf_puts(o, "<tr><td>");
                        put_count(o, t->exited ? -1 : t->threads);
                        buf_printf(o, "</td><td><a href='/pid/%d/debug/pprof/'>", (int) t->pid);
                        put_target_name(o, t);
                        buf_printf(o, "</a>%s%s</td><td>", i == 0 ? " (default)" : "",
                                   t->exited ? " (exited)" : "");
                        put_thread_summary(o, t);
                        buf_puts(o, "</td></tr>\n");
                }
                buf_puts(o, "</table>\n"
                            "</p>\n");
        }

        buf_puts(o, "</body>\n"
                    "</html>\n");
}

/* ---- asynchronous routes ---- */

/* Hands REQ over: false and R filled when it cannot be (the reply is due now). */
static bool begin_async(Request *req, Reply *r) {
        int k = request_begin_async(req);

        if (k == -EBUSY)
                reply_error(r, 503, "too many requests in progress");
        else if (k < 0)
                reply_error(r, 503, "out of memory");
        return k >= 0;
}

/* Go's pprof handler.ServeHTTP and serveDeltaProfile, with the same checks in the same
 * order; debug= is strict where Go's Atoi is lenient. True when R is the reply now. */
static bool serve_profile(HttpServer *s, Request *req, pid_t pid, const ProfileInfo *info, const char *raw_query,
                          Reply *r) {
        _cleanup_(params_done) Params params = {};
        uint64_t seconds = 0;
        int debug;
        char err[128];

        if (params_parse(raw_query, &params, err, sizeof err) < 0) {
                reply_error(r, 400, "%s", err);
                return true;
        }

        /* Go: if sec := r.FormValue("seconds"); sec != "" — an empty value is no value. */
        const char *sec = params_get(&params, "seconds");
        if (sec && *sec) {
                if (parse_seconds(sec, &seconds) < 0) {
                        reply_error(r, 400, "invalid value for \"seconds\" - must be a positive integer");
                        return true;
                }
                if (!info->supports_delta) {
                        reply_error(r, 400, "\"seconds\" parameter is not supported for this profile type");
                        return true;
                }
                if (seconds >= s->limits.max_seconds) {
                        reply_error(r, 400, "profile duration exceeds server's WriteTimeout");
                        return true;
                }
        }
        if (http_parse_debug(params_get(&params, "debug"), &debug) < 0) {
                reply_error(r, 400, "invalid value for \"debug\" - must be 0, 1 or 2");
                return true;
        }
        if (seconds > 0 && debug != 0) {
                reply_error(r, 400, "seconds and debug params are incompatible");
                return true;
        }
        const char *format = params_get(&params, "format");
        bool json = false;
        if (format && *format) {
                if (!streq(format, "json")) {
                        reply_error(r, 400, "invalid value for \"format\" - must be json");
                        return true;
                }
                if (!info->supports_json) {
                        reply_error(r, 400, "\"format\" parameter is not supported for this profile type");
                        return true;
                }
                if (seconds > 0) {
                        reply_error(r, 400, "seconds and format params are incompatible");
                        return true;
                }
                json = true;
        }
        if (!s->backend.profile) {
                reply_error(r, 501, "profiles are not available");
                return true;
        }

        req->kind = REQUEST_PROFILE;
        req->profile = info;
        req->debug = debug;
        req->json = json;
        req->seconds = (unsigned) seconds;
        if (!begin_async(req, r))
                return true;
        /* From here on REQ belongs to the backend, which may even have finished it. */
        s->backend.profile(s->backend.userdata, req,
                           &(ProfileRequest) { .pid = pid, .info = info, .debug = debug,
                                               .seconds = (unsigned) seconds, .json = json });
        return false;
}

/* Go's pprof Profile handler: seconds is lenient (unparsable or ≤ 0 means 30) but bounded
 * by the write timeout; cprofd adds hz= and mode=, both strict. Serves every WINDOW
 * profile (CPU, wall-clock). True when R is the reply now. */
static bool serve_window_profile(HttpServer *s, Request *req, pid_t pid, const ProfileInfo *info,
                                 const char *raw_query, Reply *r) {
        _cleanup_(params_done) Params params = {};
        char err[128];
        unsigned hz, hz_max = info->hz_max;
        CpuProfileMode mode = CPU_PROFILE_DWARF;

        if (params_parse(raw_query, &params, err, sizeof err) < 0) {
                reply_error(r, 400, "%s", err);
                return true;
        }
        uint64_t seconds = parse_cpu_seconds(params_get(&params, "seconds"),
                                             info->seconds_default ? info->seconds_default : HTTP_CPU_SECONDS_DEFAULT);
        if (seconds >= s->limits.max_seconds) {
                reply_error(r, 400, "profile duration exceeds server's WriteTimeout");
                return true;
        }
        const char *hz_value = params_get(&params, "hz");
        if (hz_max == 0 && hz_value && *hz_value) {
                reply_error(r, 400, "\"hz\" parameter is not supported for this profile type");
                return true;
        }
        if (hz_max == 0)
                hz = 0;
        else if (parse_hz(hz_value, info->hz_default, hz_max, &hz) < 0) {
                reply_error(r, 400, "invalid value for \"hz\" - must be an integer from 1 to %u", hz_max);
                return true;
        }
        const char *m = params_get(&params, "mode");
        if (info->supports_mode && m && *m && !streq(m, "dwarf")) {
                if (!streq(m, "fp")) {
                        reply_error(r, 400, "invalid value for \"mode\" - must be dwarf or fp");
                        return true;
                }
                mode = CPU_PROFILE_FP;
        }

        req->kind = REQUEST_PROFILE;
        req->profile = info;
        req->debug = 0;
        req->seconds = 0;
        if (s->n_profiles >= s->limits.max_profiles) {
                reply_error(r, 503, "too many profiles in progress");
                return true;
        }
        if (!begin_async(req, r))
                return true;
        req->sampled = true;
        s->n_profiles++;
        const char *accept = evhttp_find_header(evhttp_request_get_input_headers(req->evreq), "Accept-Encoding");
        WindowProfileRequest p = { .pid = pid, .info = info, .seconds = (unsigned) seconds, .hz = hz, .mode = mode,
                                   .accept_gzip = accept && strstr(accept, "gzip") };
        s->backend.window_profile(s->backend.userdata, req, &p);
        return false;
}

/* Go's pprof Symbol handler: the words of the POST body, else of the raw query (pprof
 * sends "0x1+0x2", not key=value), split on '+'. An empty list is answered here with
 * just "num_symbols: 1", which is how pprof probes for the endpoint. */
static bool serve_symbol(HttpServer *s, Request *req, pid_t pid, const char *raw_query, Reply *r) {
        const char *data = raw_query ? raw_query : "";
        size_t len = strlen(data);
        uint64_t *addrs = NULL;
        size_t n = 0;

        if (evhttp_request_get_command(req->evreq) == EVHTTP_REQ_POST) {
                struct evbuffer *in = evhttp_request_get_input_buffer(req->evreq);

                len = in ? evbuffer_get_length(in) : 0;       /* ≤ BODY_MAX: libevent enforces it */
                data = len > 0 ? (const char *) evbuffer_pullup(in, -1) : "";
                if (!data) {
                        reply_error(r, 503, "out of memory");
                        return true;
                }
        }

        req->kind = REQUEST_SYMBOL;     /* a 200 gets "num_symbols: 1" first, even this one */
        int k = parse_symbol_words(data, len, &addrs, &n);
        if (k == -E2BIG) {
                reply_error(r, 400, "too many addresses");
                return true;
        }
        if (k < 0) {
                reply_error(r, 503, "out of memory");
                return true;
        }
        req->addrs = addrs;             /* freed with REQ */
        if (n == 0)
                return true;
        if (!s->backend.symbol) {
                reply_error(r, 501, "symbol is not available");
                return true;
        }
        if (!begin_async(req, r))
                return true;
        s->backend.symbol(s->backend.userdata, req, pid, req->addrs, n);
        return false;
}

/* ---- routing ---- */

static void redirect(Request *req, const char *location, Reply *r) {
        r->status = 301;
        r->content_type = TEXT_HTML;
        buf_reset(&r->body);
        /* Go's http.Redirect body for GET and HEAD. */
        buf_puts(&r->body, "<a href=\"");
        put_html_escaped(&r->body, location);
        buf_puts(&r->body, "\">Moved Permanently</a>.\n\n");
        if (evhttp_add_header(evhttp_request_get_output_headers(req->evreq), "Location", location) < 0)
                reply_error(r, 400, "invalid query");
}

/* ---- access ---- */

/* Equal or not in a time that depends on the lengths only, never on where A and B first
 * differ: a client timing replies learns nothing of the token byte by byte. */
static bool equal_constant_time(const char *a, size_t a_len, const char *b, size_t b_len) {
        unsigned char diff = a_len != b_len;

        for (size_t i = 0; i < b_len; i++)
                diff |= (unsigned char) (i < a_len ? a[i] : 0) ^ (unsigned char) b[i];
        return diff == 0;
}

/* RFC 6750: "Bearer" (case-insensitive), one or more spaces, the token. */
static bool authorized(const HttpServer *s, struct evhttp_request *evreq) {
        if (!s->token)
                return true;
        const struct evkeyvalq *h = evhttp_request_get_input_headers(evreq);
        const char *value = NULL;
        unsigned n = 0;
        for (const struct evkeyval *kv = TAILQ_FIRST(h); kv; kv = TAILQ_NEXT(kv, next))
                if (strcasecmp(kv->key, "Authorization") == 0) {
                        value = kv->value;
                        n++;
                }
        if (n != 1 || strncasecmp(value, "Bearer ", strlen("Bearer ")) != 0)
                return false;
        value += strlen("Bearer ");
        value += strspn(value, " ");
        return equal_constant_time(value, strlen(value), s->token, strlen(s->token));
}

/* True when R is the reply, to send now; false when REQ went to the backend. */
static bool route(HttpServer *s, Request *req, Reply *r) {
        const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req->evreq);
        _cleanup_free_ char *path = NULL;
        Targets all = {};
        const TargetSummary *target = NULL;
        char prefix[32] = "";
        pid_t pid = 0;
        bool now = true;

        if (!uri) {
                /* Not seen: libevent answers requests it could not read (400, or 413 for a
                 * body over the limit) with its own page and does not call us. */
                reply_error(r, 400, "invalid request");
                return true;
        }
        if (!authorized(s, req->evreq)) {
                (void) evhttp_add_header(evhttp_request_get_output_headers(req->evreq), "WWW-Authenticate",
                                         "Bearer realm=\"cprofd\"");
                reply_error(r, 401, "unauthorized: send Authorization: Bearer with the token");
                return true;
        }

        /* libevent reads "//x/y" as host x, path /y; Go as the path //x/y. Neither is ours. */
        const char *raw_uri = evhttp_request_get_uri(req->evreq);
        if (raw_uri && startswith(raw_uri, "//")) {
                reply_error(r, 400, "invalid path");
                return true;
        }
        path = path_decode_strict(evhttp_uri_get_path(uri));
        if (!path) {
                reply_error(r, 400, "invalid path");
                return true;
        }

        const char *rest = path;
        if (startswith(path, "/pid/")) {
                const char *seg = path + strlen("/pid/");
                size_t n = strcspn(seg, "/");

                if (parse_pid(seg, n, &pid) < 0) {
                        char q[128];
                        quote_for_message(seg, n, q, sizeof q);
                        reply_error(r, 400, "invalid pid \"%s\"", q);
                        return true;
                }
                snprintf(prefix, sizeof prefix, "/pid/%d", (int) pid);
                rest = seg + n;
        }

        bool symbol = streq(rest, "/debug/pprof/symbol");
        enum evhttp_cmd_type method = evhttp_request_get_command(req->evreq);
        if (method != EVHTTP_REQ_GET && method != EVHTTP_REQ_HEAD && !(symbol && method == EVHTTP_REQ_POST)) {
                (void) evhttp_add_header(evhttp_request_get_output_headers(req->evreq), "Allow",
                                         symbol ? "GET, HEAD, POST" : "GET, HEAD");
                reply_error(r, 405, "method not allowed");
                return true;
        }

        const char *raw_query = evhttp_uri_get_query(uri);
        if (raw_query && strlen(raw_query) > QUERY_MAX) {
                reply_error(r, 400, "query too long");
                return true;
        }

        if (!prefix[0] && streq(rest, "/metrics")) {
                if (!s->backend.metrics) {
                        reply_error(r, 404, "404 page not found");
                        return true;
                }
                r->content_type = PROMETHEUS_TEXT;
                s->backend.metrics(s->backend.userdata, &r->body);
                return true;
        }

        if (streq(rest, "/debug/pprof")) {
                _cleanup_buf_ Buf loc = {};
                buf_printf(&loc, "%s/debug/pprof/", prefix);
                if (raw_query && *raw_query)
                        buf_printf(&loc, "?%s", raw_query);     /* Go's mux keeps the query */
                redirect(req, loc.data, r);
                return true;
        }

        if (!startswith(rest, "/debug/pprof/")) {
                reply_error(r, 404, "404 page not found");
                return true;
        }
        const char *name = rest + strlen("/debug/pprof/");

        targets_fetch(s, &all);
        if (!prefix[0]) {
                if (all.n == 0) {
                        reply_error(r, 404, "no target to profile");
                        goto finish;
                }
                target = &all.list[0];
                pid = target->pid;
        } else {
                for (size_t i = 0; i < all.n && !target; i++)
                        if (all.list[i].pid == pid)
                                target = &all.list[i];
                if (!target) {
                        reply_error(r, 404, "unknown target pid %d", (int) pid);
                        goto finish;
                }
        }
        /* An exited target keeps its symbols: pprof may ask after the profile. */
        if (target->exited && !symbol) {
                reply_error(r, 410, "target pid %d has exited", (int) target->pid);
                goto finish;
        }

        if (name[0] == 0)
                serve_index(s, prefix, &all, target, r);
        else if (streq(name, "cmdline")) {
                if (s->backend.cmdline)
                        s->backend.cmdline(s->backend.userdata, pid, r);
                else
                        reply_error(r, 501, "cmdline is not available");
        } else if (symbol)
                now = serve_symbol(s, req, pid, raw_query, r);
        else {
                const ProfileInfo *info = profile_find(s, name);
                if (!info)
                        reply_error(r, 404, "Unknown profile");
                else if (info->kind == PROFILE_WINDOW && !s->backend.window_profile)
                        reply_error(r, 501, "profiles are not available");
                else if (info->kind == PROFILE_WINDOW)
                        now = serve_window_profile(s, req, pid, info, raw_query, r);
                else
                        now = serve_profile(s, req, pid, info, raw_query, r);
        }

finish:
        targets_done(&all);
        return now;
}

static void on_request(struct evhttp_request *evreq, void *userdata) {
        HttpServer *s = userdata;
        Reply r = { .status = 200 };
        Conn *c = conn_find(s, evhttp_request_get_connection(evreq));
        Request *req;

        if (c)
                (void) event_del(c->timer);     /* read in time: no deadline while answering */
        req = request_new(s, evreq);
        if (!req) {
                evhttp_send_error(evreq, 503, "Service Unavailable");
                return;
        }
        req->conn = c;
        if (route(s, req, &r))
                request_finish(req, &r);
        buf_done(&r.body);
}

/* ---- connections ---- */

static void conn_free(Conn *c) {
        HttpServer *s = c->server;

        if (c->prev)
                c->prev->next = c->next;
        else
                s->connections = c->next;
        if (c->next)
                c->next->prev = c->prev;
        if (!c->over)
                s->n_connections--;
        if (c->timer)
                event_free(c->timer);
        if (!c->evcon && c->bev)
                bufferevent_decref(c->bev);     /* never attached: our reference */
        free(c);
}

/* libevent is freeing the connection (and its request, if any, right after). */
static void on_conn_close(struct evhttp_connection *evcon, void *userdata) {
        Conn *c = userdata;
        Request *req = c->req;

        c->req = NULL;
        if (req)
                request_connection_closed(req);
        conn_free(c);
}

void conn_close(Conn *c) {
        evhttp_connection_free(c->evcon);       /* on_conn_close() frees C */
}

Conn *conn_find(HttpServer *s, struct evhttp_connection *evcon) {
        if (!evcon)
                return NULL;
        for (Conn *c = s->connections; c; c = c->next)
                if (c->evcon == evcon)
                        return c;
        return NULL;
}

static void conn_arm_deadline(Conn *c) {
        struct timeval tv = { .tv_sec = (time_t) c->server->limits.header_timeout_sec };
        (void) event_add(c->timer, &tv);
}

void conn_request_done(Conn *c) {
        conn_arm_deadline(c);
}

static void on_conn_deadline(evutil_socket_t fd, short what, void *userdata) {
        Conn *c = userdata;
        struct bufferevent *bev = evhttp_connection_get_bufferevent(c->evcon);

        /* Still writing the previous reply: that has libevent's write timeout; the
         * deadline for the next request starts once it is out. */
        if (bev && evbuffer_get_length(bufferevent_get_output(bev)) > 0) {
                conn_arm_deadline(c);
                return;
        }
        conn_close(c);
}

/* Right after libevent set the connection up around our bufferevent: its callback
 * argument is the evhttp_connection. */
static void on_conn_attach(evutil_socket_t fd, short what, void *userdata) {
        Conn *c = userdata;
        struct bufferevent *bev = c->bev;
        void *evcon = NULL;

        bufferevent_getcb(bev, NULL, NULL, NULL, &evcon);
        if (!evcon) {
                /* libevent failed to set it up and freed it already. */
                conn_free(c);
                return;
        }
        c->evcon = evcon;
        bufferevent_decref(bev);                /* libevent's own reference holds it now */
        evhttp_connection_set_closecb(c->evcon, on_conn_close, c);
        event_free(c->timer);
        c->timer = evtimer_new(bufferevent_get_base(bev), on_conn_deadline, c);
        if (!c->timer || c->over) {
                conn_close(c);
                return;
        }
        conn_arm_deadline(c);
}

/* evhttp_set_bevcb(): a connection was just accepted and needs a bufferevent. */
static struct bufferevent *on_new_connection(struct event_base *base, void *userdata) {
        HttpServer *s = userdata;
        Conn *c = calloc(1, sizeof *c);
        struct bufferevent *bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);

        if (!bev) {
                free(c);
                return NULL;            /* libevent tries to make its own, and fails too */
        }
        if (!c)
                return bev;             /* served, uncounted: better than refused */
        c->server = s;
        c->bev = bev;
        c->timer = event_new(base, -1, 0, on_conn_attach, c);
        if (!c->timer) {
                free(c);
                return bev;
        }
        /* Held until attached, so that the bufferevent cannot be freed under us. */
        bufferevent_incref(bev);
        c->next = s->connections;
        if (s->connections)
                s->connections->prev = c;
        s->connections = c;
        /* Decided now, in accept order: a burst of connections attaches after it. */
        c->over = s->n_connections >= s->limits.max_connections;
        if (!c->over)
                s->n_connections++;
        event_active(c->timer, EV_TIMEOUT, 0);
        return bev;
}

unsigned http_server_connections(const HttpServer *s) {
        return s->n_connections;
}

/* ---- lifecycle ---- */

static int format_address(int fd, char *buf, size_t size) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof ss;
        char h[INET6_ADDRSTRLEN];

        if (getsockname(fd, (struct sockaddr *) &ss, &sl) < 0)
                return -errno;
        if (ss.ss_family == AF_INET) {
                const struct sockaddr_in *in = (const struct sockaddr_in *) &ss;
                if (!inet_ntop(AF_INET, &in->sin_addr, h, sizeof h))
                        return -errno;
                snprintf(buf, size, "%s:%u", h, (unsigned) ntohs(in->sin_port));
        } else if (ss.ss_family == AF_INET6) {
                const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *) &ss;
                if (!inet_ntop(AF_INET6, &in6->sin6_addr, h, sizeof h))
                        return -errno;
                snprintf(buf, size, "[%s]:%u", h, (unsigned) ntohs(in6->sin6_port));
        } else
                return -EAFNOSUPPORT;
        return 0;
}

/* Whether a reply handed to libevent is still being written out (a closed connection's
 * never will be: it is off the list). */
static bool any_sending(const HttpServer *s) {
        for (const Conn *c = s->connections; c; c = c->next)
                if (c->sending)
                        return true;
        return false;
}

void http_server_drain(HttpServer *s, unsigned timeout_ms) {
        if (!s)
                return;
        if (s->socket) {
                evhttp_del_accept_socket(s->http, s->socket);
                s->socket = NULL;
        }
        struct timeval tv = { .tv_sec = timeout_ms / 1000, .tv_usec = timeout_ms % 1000 * 1000 };
        if (!any_sending(s) || event_base_loopexit(s->base, &tv) < 0)
                return;
        while (any_sending(s) && !event_base_got_exit(s->base))
                if (event_base_loop(s->base, EVLOOP_ONCE) < 0)
                        break;
}

HttpServer *http_server_free(HttpServer *s) {
        if (!s)
                return NULL;
        request_cancel_all(s);
        if (s->http)
                evhttp_free(s->http);           /* closes the bound socket and connections */
        while (s->connections)
                conn_free(s->connections);      /* accepted, not attached yet */
        if (s->unix_path[0]) {
                struct stat st;
                /* Only the socket we made: a newer cprofd may have replaced it. */
                if (lstat(s->unix_path, &st) == 0 && st.st_dev == s->unix_dev && st.st_ino == s->unix_ino)
                        (void) unlink(s->unix_path);
        }
        free(s->token);
        free(s);
        return NULL;
}

DEFINE_POINTER_CLEANUP(HttpServer, http_server_free);

static int parse_unix_listen(const char *listen, struct sockaddr_un *ret) {
        const char *path = listen + strlen("unix:");

        if (path[0] != '/' || strlen(path) >= sizeof ret->sun_path)
                return -EINVAL;
        *ret = (struct sockaddr_un) { .sun_family = AF_UNIX };
        strcpy(ret->sun_path, path);
        return 0;
}

/* A file at the socket's path: a socket nobody accepts on is stale (a cprofd that was
 * killed) and goes; anything else stays, and we do not start. */
static int remove_stale_socket(const struct sockaddr_un *sa) {
        struct stat st;

        if (lstat(sa->sun_path, &st) < 0)
                return errno == ENOENT ? 0 : -errno;
        if (!S_ISSOCK(st.st_mode))
                return -EEXIST;
        _cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        if (connect(fd, (const struct sockaddr *) sa, sizeof *sa) == 0)
                return -EADDRINUSE;
        if (errno != ECONNREFUSED)
                return -errno;
        if (unlink(sa->sun_path) < 0 && errno != ENOENT)
                return -errno;
        return 0;
}

static int bind_unix(HttpServer *s, const char *address, mode_t mode) {
        struct sockaddr_un sa;
        struct stat st;
        int r;

        r = parse_unix_listen(address, &sa);
        if (r < 0)
                return r;
        r = remove_stale_socket(&sa);
        if (r < 0)
                return r;
        _cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return -errno;
        /* The umask makes the file with MODE from the start: no moment where it is more
         * open than asked. */
        mode_t old = umask(~mode & 0777);
        r = bind(fd, (const struct sockaddr *) &sa, sizeof sa);
        r = r < 0 ? -errno : 0;
        umask(old);
        if (r < 0)
                return r;
        if (lstat(sa.sun_path, &st) < 0 || chmod(sa.sun_path, mode) < 0 || listen(fd, UNIX_BACKLOG) < 0) {
                r = -errno;
                (void) unlink(sa.sun_path);
                return r;
        }
        strcpy(s->unix_path, sa.sun_path);
        s->unix_dev = st.st_dev;
        s->unix_ino = st.st_ino;
        s->socket = evhttp_accept_socket_with_handle(s->http, fd);
        if (!s->socket)
                return -ENOMEM;         /* s->unix_path set: http_server_free() removes it */
        TAKE_FD(fd);                    /* closed by evhttp_free() */
        snprintf(s->address, sizeof s->address, "unix:%s", s->unix_path);
        return 0;
}

static void limits_fill(HttpLimits *l) {
        if (l->max_seconds == 0)
                l->max_seconds = HTTP_MAX_SECONDS_DEFAULT;
        if (l->max_pending == 0)
                l->max_pending = HTTP_MAX_PENDING_DEFAULT;
        if (l->max_profiles == 0)
                l->max_profiles = HTTP_MAX_PROFILES_DEFAULT;
        if (l->max_connections == 0)
                l->max_connections = HTTP_MAX_CONNECTIONS_DEFAULT;
        if (l->header_timeout_sec == 0)
                l->header_timeout_sec = HTTP_HEADER_TIMEOUT_DEFAULT;
}

void http_server_set_limits(HttpServer *s, const HttpLimits *limits) {
        s->limits = limits ? *limits : (HttpLimits) {};
        limits_fill(&s->limits);
}

int http_server_set_token(HttpServer *s, const char *token) {
        char *t = NULL;

        if (token) {
                size_t n = strlen(token);
                if (n == 0 || n > HTTP_TOKEN_MAX)
                        return -EINVAL;
                for (size_t i = 0; i < n; i++)
                        if ((unsigned char) token[i] <= 0x20 || token[i] == 0x7f)
                                return -EINVAL;
                t = strdup(token);
                if (!t)
                        return -ENOMEM;
        }
        free(s->token);
        s->token = t;
        return 0;
}

int http_listen_is_local(const char *listen) {
        char host[INET6_ADDRSTRLEN];
        uint16_t port;
        struct in_addr a4;
        struct in6_addr a6;

        if (listen && strncmp(listen, "unix:", 5) == 0) {
                struct sockaddr_un sa;
                return parse_unix_listen(listen, &sa) < 0 ? -EINVAL : 1;
        }
        if (parse_listen(listen, host, sizeof host, &port) < 0)
                return -EINVAL;
        if (inet_pton(AF_INET, host, &a4) == 1)
                return (ntohl(a4.s_addr) >> 24) == 127;
        if (inet_pton(AF_INET6, host, &a6) == 1)
                return IN6_IS_ADDR_LOOPBACK(&a6) ||
                       (IN6_IS_ADDR_V4MAPPED(&a6) && a6.s6_addr[12] == 127);
        return -EINVAL;
}

int http_server_new(struct event_base *base, const char *listen, mode_t socket_mode, const Backend *backend,
                    const HttpLimits *limits, HttpServer **ret) {
        _cleanup_(http_server_freep) HttpServer *s = NULL;
        char host[INET6_ADDRSTRLEN];
        uint16_t port = 0;
        bool unix_socket = listen && strncmp(listen, "unix:", 5) == 0;
        int r;

        if (!base || !backend || !ret || !listen)
                return -EINVAL;
        if (!unix_socket) {
                r = parse_listen(listen, host, sizeof host, &port);
                if (r < 0)
                        return r;
        }

        s = calloc(1, sizeof *s);
        if (!s)
                return -ENOMEM;
        s->base = base;
        s->backend = *backend;
        http_server_set_limits(s, limits);
        s->early_close = event_base_get_features(base) & EV_FEATURE_EARLY_CLOSE;

        s->http = evhttp_new(base);
        if (!s->http)
                return -ENOMEM;
        /* Every method reaches the router, which answers 405 with Allow:; libevent would
         * answer a disallowed method with its own HTML 501. */
        evhttp_set_allowed_methods(s->http,
                                   EVHTTP_REQ_GET | EVHTTP_REQ_HEAD | EVHTTP_REQ_POST |
                                   EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE | EVHTTP_REQ_OPTIONS |
                                   EVHTTP_REQ_TRACE | EVHTTP_REQ_CONNECT | EVHTTP_REQ_PATCH);
        evhttp_set_max_headers_size(s->http, HEADERS_MAX);
        evhttp_set_max_body_size(s->http, BODY_MAX);
        evhttp_set_timeout(s->http, TIMEOUT_SEC);
        evhttp_set_gencb(s->http, on_request, s);
        evhttp_set_bevcb(s->http, on_new_connection, s);

        if (unix_socket) {
                r = bind_unix(s, listen, socket_mode);
                if (r < 0)
                        return r;
        } else {
                errno = 0;
                s->socket = evhttp_bind_socket_with_handle(s->http, host, port);
                if (!s->socket)
                        return errno > 0 ? -errno : -EADDRNOTAVAIL;
                r = format_address(evhttp_bound_socket_get_fd(s->socket), s->address, sizeof s->address);
                if (r < 0)
                        return r;
        }

        *ret = TAKE_PTR(s);
        return 0;
}

const char *http_server_address(const HttpServer *s) {
        return s->address;
}
