/* http/server.c -- cprofd's HTTP server: libevent evhttp, strict path and query parsing,
 * one route table, and Go's net/http/pprof conventions for headers, errors and the index.
 *
 * Everything comes in through one generic callback and is routed here, so every reply,
 * including 404s, gets the same headers and error shape. The order of checks is fixed:
 * method (405) → query size (400) → path (400) → query syntax (400) → /pid/N prefix (400)
 * → route (301/404) → target (404/410) → profile (404 "Unknown profile"). The path is
 * routed after percent-decoding, as Go routes r.URL.Path, and must already be in normal
 * form: no "." or ".." segments, no empty segment, no NUL.
 *
 * Replies are built whole into a Reply by the daemon's Backend, then handed to libevent
 * by reference (no copy). Library code: nothing here logs. Nothing here knows about
 * ptrace or DWARF. */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "macro.h"
#include "server.h"

#define QUERY_MAX 4096                  /* bytes of raw query string */
#define HEADERS_MAX (16 * 1024)
#define BODY_MAX (64 * 1024)
#define TIMEOUT_SEC 30
#define PID_MAX_VALUE 4194304           /* PID_MAX_LIMIT on 64-bit Linux */
#define TARGETS_MAX 4096                /* targets listed on an index page */

#define TEXT_PLAIN "text/plain; charset=utf-8"
#define TEXT_HTML "text/html; charset=utf-8"
#define PROMETHEUS_TEXT "text/plain; version=0.0.4; charset=utf-8"

struct HttpServer {
        struct evhttp *http;
        struct evhttp_bound_socket *socket;
        Backend backend;
        char address[INET6_ADDRSTRLEN + 16];
};

static bool startswith(const char *s, const char *prefix) {
        return strncmp(s, prefix, strlen(prefix)) == 0;
}

static bool streq(const char *a, const char *b) {
        return strcmp(a, b) == 0;
}

void reply_error(Reply *r, int status, const char *fmt, ...) {
        va_list ap;

        r->status = status;
        r->content_type = NULL;
        r->filename = NULL;
        buf_reset(&r->body);
        va_start(ap, fmt);
        buf_vprintf(&r->body, fmt, ap);
        va_end(ap);
}

int http_parse_debug(const char *value) {
        /* Go: debug, _ := strconv.Atoi(r.FormValue("debug")). A syntax error yields 0; an
         * out-of-range value yields the clamped value (the error is ignored), decided as
         * soon as the digits overflow, as strconv.ParseUint does. */
        const char *p = value;
        bool neg = false;
        uint64_t n = 0;

        if (!p || !*p)
                return 0;
        if (*p == '+' || *p == '-')
                neg = *p++ == '-';
        if (!*p)
                return 0;
        for (; *p; p++) {
                if (*p < '0' || *p > '9')
                        return 0;
                if (n > (uint64_t) INT_MAX / 10 + 1)
                        return neg ? INT_MIN : INT_MAX;         /* only the class matters */
                n = n * 10 + (uint64_t) (*p - '0');
        }
        if (neg)
                return n > (uint64_t) INT_MAX + 1 ? INT_MIN : (int) -(int64_t) n;
        return n > (uint64_t) INT_MAX ? INT_MAX : (int) n;
}

/* ---- parsing helpers ---- */

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

/* User input quoted in a one-line error message: printable ASCII only, bounded. */
static void quote_for_message(const char *s, size_t len, char *buf, size_t size) {
        size_t o = 0;

        for (size_t i = 0; i < len && o + 8 < size; i++) {
                unsigned char c = (unsigned char) s[i];
                if (c == '"' || c == '\\')
                        o += (size_t) snprintf(buf + o, size - o, "\\%c", c);
                else if (c < 0x20 || c >= 0x7f)
                        o += (size_t) snprintf(buf + o, size - o, "\\x%02x", c);
                else
                        buf[o++] = (char) c;
        }
        buf[o] = 0;
}

static bool is_hex(char c) {
        return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* Decodes the raw path and checks it is in normal form. NULL when it is not. */
static char *path_decode_strict(const char *raw) {
        size_t len = 0;

        if (!raw || raw[0] != '/')
                return NULL;
        for (const char *p = raw; *p; p++)
                if (*p == '%' && !(is_hex(p[1]) && is_hex(p[2])))
                        return NULL;            /* Go's "invalid URL escape" */

        _cleanup_free_ char *path = evhttp_uridecode(raw, 0, &len);
        if (!path || strlen(path) != len)
                return NULL;                    /* %00 */

        /* Segment by segment: only the last may be empty (a trailing slash). */
        for (const char *seg = path + 1;;) {
                size_t n = strcspn(seg, "/");
                bool last = seg[n] == 0;

                if ((n == 0 && !last) ||
                    (n == 1 && seg[0] == '.') ||
                    (n == 2 && seg[0] == '.' && seg[1] == '.'))
                        return NULL;
                if (last)
                        break;
                seg += n + 1;
        }
        return TAKE_PTR(path);
}

/* Decimal 1..PID_MAX_VALUE, no sign, no leading zero, nothing else. */
static int parse_pid(const char *s, size_t len, pid_t *ret) {
        uint32_t v = 0;

        if (len == 0 || len > 7 || s[0] == '0')
                return -EINVAL;
        for (size_t i = 0; i < len; i++) {
                if (s[i] < '0' || s[i] > '9')
                        return -EINVAL;
                v = v * 10 + (uint32_t) (s[i] - '0');
        }
        if (v > PID_MAX_VALUE)
                return -ERANGE;
        *ret = (pid_t) v;
        return 0;
}

/* "HOST:PORT" with an IPv4 literal (or "localhost"), or "[IPV6]:PORT". */
static int parse_listen(const char *listen, char *ret_host, size_t size, uint16_t *ret_port) {
        const char *host, *colon;
        size_t host_len;
        unsigned char addr[sizeof(struct in6_addr)];
        char h[INET6_ADDRSTRLEN];
        bool v6 = false;

        if (!listen)
                return -EINVAL;
        if (listen[0] == '[') {
                const char *end = strchr(listen, ']');
                if (!end || end[1] != ':')
                        return -EINVAL;
                host = listen + 1;
                host_len = (size_t) (end - host);
                colon = end + 1;
                v6 = true;
        } else {
                colon = strrchr(listen, ':');
                if (!colon)
                        return -EINVAL;
                host = listen;
                host_len = (size_t) (colon - listen);
        }
        if (host_len == 0 || host_len >= sizeof h)
                return -EINVAL;
        memcpy(h, host, host_len);
        h[host_len] = 0;

        if (!v6 && streq(h, "localhost"))
                strcpy(h, "127.0.0.1");
        if (inet_pton(v6 ? AF_INET6 : AF_INET, h, addr) != 1)
                return -EINVAL;

        const char *p = colon + 1;
        uint32_t port = 0;
        size_t digits = strlen(p);
        if (digits == 0 || digits > 5)
                return -EINVAL;
        for (; *p; p++) {
                if (*p < '0' || *p > '9')
                        return -EINVAL;
                port = port * 10 + (uint32_t) (*p - '0');
        }
        if (port > 65535)
                return -EINVAL;

        if (strlen(h) >= size)
                return -EINVAL;
        strcpy(ret_host, h);
        *ret_port = (uint16_t) port;
        return 0;
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

/* ---- handlers ---- */

static void put_target_name(Buf *out, const TargetSummary *t) {
        char comm[sizeof t->comm + 1];

        memcpy(comm, t->comm, sizeof t->comm);
        comm[sizeof t->comm] = 0;
        buf_printf(out, "pid %d (", (int) t->pid);
        put_html_escaped(out, comm);
        buf_putc(out, ')');
}

static void put_count(Buf *out, long n) {
        if (n < 0)
                buf_putc(out, '?');
        else
                buf_printf(out, "%ld", n);
}

/* Modelled line by line on Go's /debug/pprof/ page, with only what cprofd serves. */
static void serve_index(const char *prefix, const Targets *all, const TargetSummary *target, Reply *r) {
        /* Rows sorted by name, as Go's are. */
        static const struct {
                const char *name;
                const char *desc;
        } profiles[] = {
                { "cmdline", "The command line invocation of the target" },
                { "goroutine", "Stack traces of all current threads of the target (count: threads right now)" },
        };
        Buf *o = &r->body;

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
        put_target_name(o, target);
        buf_puts(o, "<br>\n"
                    "<br>\n"
                    "Types of profiles available:\n"
                    "<table>\n"
                    "<thead><td>Count</td><td>Profile</td></thead>\n");
        for (size_t i = 0; i < ARRAY_SIZE(profiles); i++) {
                buf_puts(o, "<tr><td>");
                put_count(o, streq(profiles[i].name, "goroutine") ? target->threads : 0);
                buf_printf(o, "</td><td><a href='%s?debug=1'>%s</a></td></tr>\n",
                           profiles[i].name, profiles[i].name);
        }
        buf_puts(o, "</table>\n"
                    "<a href=\"goroutine?debug=2\">full goroutine stack dump</a>\n"
                    "<br>\n"
                    "<p>\n"
                    "Profile Descriptions:\n"
                    "<ul>\n");
        for (size_t i = 0; i < ARRAY_SIZE(profiles); i++)
                buf_printf(o, "<li><div class=profile-name>%s: </div> %s</li>\n",
                           profiles[i].name, profiles[i].desc);
        buf_puts(o, "</ul>\n"
                    "</p>\n");

        if (all->n > 1) {
                buf_puts(o, "<p>\n"
                            "Targets:\n"
                            "<table>\n"
                            "<thead><td>Threads</td><td>Target</td></thead>\n");
                for (size_t i = 0; i < all->n; i++) {
                        const TargetSummary *t = &all->list[i];

                        buf_puts(o, "<tr><td>");
                        put_count(o, t->exited ? -1 : t->threads);
                        buf_printf(o, "</td><td><a href='/pid/%d/debug/pprof/'>", (int) t->pid);
                        put_target_name(o, t);
                        buf_printf(o, "</a>%s%s</td></tr>\n",
                                   i == 0 ? " (default)" : "", t->exited ? " (exited)" : "");
                }
                buf_puts(o, "</table>\n"
                            "</p>\n");
        }

        buf_puts(o, "</body>\n"
                    "</html>\n");
}

/* goroutine?debug=0: the pprof protobuf. Kept in one place so the encoder can take it. */
static void serve_goroutine_proto(HttpServer *s, pid_t pid, Reply *r) {
        reply_error(r, 501, "goroutine?debug=0 (pprof protobuf) is not available yet; use debug=1 or debug=2");
}

static void serve_goroutine(HttpServer *s, pid_t pid, const struct evkeyvalq *query, Reply *r) {
        /* Go's runtime/pprof: debug ≥ 2 is the full dump, 1 the count text, and 0 (or a
         * negative value: profiles write text only when debug > 0) the protobuf. */
        int debug = http_parse_debug(evhttp_find_header(query, "debug"));

        if (debug <= 0) {
                serve_goroutine_proto(s, pid, r);
                return;
        }
        if (!s->backend.goroutine) {
                reply_error(r, 501, "goroutine profiles are not available");
                return;
        }
        s->backend.goroutine(s->backend.userdata, pid, debug >= 2 ? 2 : 1, r);
}

static void redirect(struct evhttp_request *req, const char *location, Reply *r) {
        r->status = 301;
        r->content_type = TEXT_HTML;
        buf_reset(&r->body);
        /* Go's http.Redirect body for GET and HEAD. */
        buf_puts(&r->body, "<a href=\"");
        put_html_escaped(&r->body, location);
        buf_puts(&r->body, "\">Moved Permanently</a>.\n\n");
        if (evhttp_add_header(evhttp_request_get_output_headers(req), "Location", location) < 0)
                reply_error(r, 400, "invalid query");
}

static void route(HttpServer *s, struct evhttp_request *req, Reply *r) {
        const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
        const char *raw_query = uri ? evhttp_uri_get_query(uri) : NULL;
        _cleanup_free_ char *path = NULL;
        struct evkeyvalq query = {};
        Targets all = {};
        const TargetSummary *target = NULL;
        char prefix[32] = "";
        pid_t pid = 0;

        enum evhttp_cmd_type method = evhttp_request_get_command(req);
        if (method != EVHTTP_REQ_GET && method != EVHTTP_REQ_HEAD) {
                (void) evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", "GET, HEAD");
                reply_error(r, 405, "method not allowed");
                return;
        }

        if (raw_query && strlen(raw_query) > QUERY_MAX) {
                reply_error(r, 400, "query too long");
                return;
        }

        path = path_decode_strict(uri ? evhttp_uri_get_path(uri) : NULL);
        if (!path) {
                reply_error(r, 400, "invalid path");
                return;
        }

        if (raw_query && evhttp_parse_query_str(raw_query, &query) < 0) {
                evhttp_clear_headers(&query);
                reply_error(r, 400, "invalid query");
                return;
        }

        const char *rest = path;
        if (startswith(path, "/pid/")) {
                const char *seg = path + strlen("/pid/");
                size_t n = strcspn(seg, "/");

                if (parse_pid(seg, n, &pid) < 0) {
                        char q[128];
                        quote_for_message(seg, n, q, sizeof q);
                        reply_error(r, 400, "invalid pid \"%s\"", q);
                        goto finish;
                }
                snprintf(prefix, sizeof prefix, "/pid/%d", (int) pid);
                rest = seg + n;
        }

        if (!prefix[0] && streq(rest, "/metrics")) {
                if (!s->backend.metrics) {
                        reply_error(r, 404, "404 page not found");
                        goto finish;
                }
                r->content_type = PROMETHEUS_TEXT;
                s->backend.metrics(s->backend.userdata, &r->body);
                goto finish;
        }

        if (streq(rest, "/debug/pprof")) {
                _cleanup_buf_ Buf loc = {};
                buf_printf(&loc, "%s/debug/pprof/", prefix);
                if (raw_query && *raw_query)
                        buf_printf(&loc, "?%s", raw_query);     /* Go's mux keeps the query */
                redirect(req, loc.data, r);
                goto finish;
        }

        if (!startswith(rest, "/debug/pprof/")) {
                reply_error(r, 404, "404 page not found");
                goto finish;
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
        if (target->exited) {
                reply_error(r, 410, "target pid %d has exited", (int) target->pid);
                goto finish;
        }

        if (name[0] == 0)
                serve_index(prefix, &all, target, r);
        else if (streq(name, "cmdline")) {
                if (s->backend.cmdline)
                        s->backend.cmdline(s->backend.userdata, pid, r);
                else
                        reply_error(r, 501, "cmdline is not available");
        } else if (streq(name, "goroutine"))
                serve_goroutine(s, pid, &query, r);
        else
                reply_error(r, 404, "Unknown profile");

finish:
        targets_done(&all);
        evhttp_clear_headers(&query);
}

/* ---- replies ---- */

static void free_body(const void *data, size_t len, void *userdata) {
        free((void *) data);
}

static bool header_value_ok(const char *s) {
        for (; *s; s++)
                if ((unsigned char) *s < 0x20 || *s == 0x7f || *s == '"' || *s == '\\')
                        return false;
        return true;
}

static void send_reply(struct evhttp_request *req, Reply *r) {
        struct evkeyvalq *h = evhttp_request_get_output_headers(req);
        int status = r->status > 0 ? r->status : 200;
        bool failed = status < 200 || status >= 400;

        (void) evhttp_add_header(h, "X-Content-Type-Options", "nosniff");
        if (failed) {
                /* Go's pprof serveError: plain text, X-Go-Pprof so the pprof client prints
                 * the body, and no attachment. */
                (void) evhttp_remove_header(h, "Content-Disposition");
                (void) evhttp_add_header(h, "Content-Type", TEXT_PLAIN);
                (void) evhttp_add_header(h, "X-Go-Pprof", "1");
                buf_putc(&r->body, '\n');
        } else {
                (void) evhttp_add_header(h, "Content-Type", r->content_type ? r->content_type : TEXT_PLAIN);
                if (r->filename && header_value_ok(r->filename)) {
                        _cleanup_buf_ Buf cd = {};
                        buf_printf(&cd, "attachment; filename=\"%s\"", r->filename);
                        (void) evhttp_add_header(h, "Content-Disposition", cd.data);
                }
        }

        struct evbuffer *body = evbuffer_new();
        if (!body) {
                evhttp_send_error(req, 500, NULL);
                return;
        }
        if (evhttp_request_get_command(req) == EVHTTP_REQ_HEAD) {
                /* Same headers as GET, no body: libevent adds no length for HEAD. */
                char len[32];
                snprintf(len, sizeof len, "%zu", r->body.len);
                (void) evhttp_add_header(h, "Content-Length", len);
        } else if (r->body.len > 0) {
                size_t len;
                char *data = buf_steal(&r->body, &len);
                if (evbuffer_add_reference(body, data, len, free_body, NULL) < 0) {
                        free(data);
                        evbuffer_free(body);
                        evhttp_send_error(req, 500, NULL);
                        return;
                }
        }
        evhttp_send_reply(req, status, NULL, body);
        evbuffer_free(body);
}

static void on_request(struct evhttp_request *req, void *userdata) {
        HttpServer *s = userdata;
        Reply r = { .status = 200 };

        route(s, req, &r);
        send_reply(req, &r);
        buf_done(&r.body);
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

HttpServer *http_server_free(HttpServer *s) {
        if (!s)
                return NULL;
        if (s->http)
                evhttp_free(s->http);           /* closes the bound socket too */
        free(s);
        return NULL;
}

DEFINE_POINTER_CLEANUP(HttpServer, http_server_free);

int http_server_new(struct event_base *base, const char *listen, const Backend *backend, HttpServer **ret) {
        _cleanup_(http_server_freep) HttpServer *s = NULL;
        char host[INET6_ADDRSTRLEN];
        uint16_t port;
        int r;

        if (!base || !backend || !ret)
                return -EINVAL;
        r = parse_listen(listen, host, sizeof host, &port);
        if (r < 0)
                return r;

        s = calloc(1, sizeof *s);
        if (!s)
                return -ENOMEM;
        s->backend = *backend;

        s->http = evhttp_new(base);
        if (!s->http)
                return -ENOMEM;
        /* Every method reaches the router, which answers 405 with Allow: for all but GET
         * and HEAD; libevent would answer a disallowed method with its own HTML 501. */
        evhttp_set_allowed_methods(s->http,
                                   EVHTTP_REQ_GET | EVHTTP_REQ_HEAD | EVHTTP_REQ_POST |
                                   EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE | EVHTTP_REQ_OPTIONS |
                                   EVHTTP_REQ_TRACE | EVHTTP_REQ_CONNECT | EVHTTP_REQ_PATCH);
        evhttp_set_max_headers_size(s->http, HEADERS_MAX);
        evhttp_set_max_body_size(s->http, BODY_MAX);
        evhttp_set_timeout(s->http, TIMEOUT_SEC);
        evhttp_set_gencb(s->http, on_request, s);

        errno = 0;
        s->socket = evhttp_bind_socket_with_handle(s->http, host, port);
        if (!s->socket)
                return errno > 0 ? -errno : -EADDRNOTAVAIL;

        r = format_address(evhttp_bound_socket_get_fd(s->socket), s->address, sizeof s->address);
        if (r < 0)
                return r;

        *ret = TAKE_PTR(s);
        return 0;
}

const char *http_server_address(const HttpServer *s) {
        return s->address;
}
