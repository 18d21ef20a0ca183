/* http/request.c -- a Request's life: answered at once, or pending until the backend calls
 * request_finish(), and cancelled if the client goes away meanwhile.
 *
 * libevent 2.1 stops reading a connection once a request is complete and does not read it
 * again until the reply is written (http.c: evhttp_read_body disables EV_READ before the
 * request callback). So it never notices a client that disconnects while its request is
 * pending; only writing the reply fails, maybe a minute later. A pending request therefore
 * gets a watcher of its own on the connection's socket (EV_READ|EV_CLOSED, never reading):
 * end of file or an error means the client is gone, and the connection is freed at once.
 * Whoever frees the connection (the watcher, evhttp_free(), a libevent error path, the
 * request deadline) goes through the connection's close callback (server.c), which calls
 * request_connection_closed(): it forgets the evhttp_request (libevent frees it right
 * after), then runs the backend's cancel callback. request_finish() later drops the reply.
 *
 * A connection carries at most one request at a time (libevent reads the next one only
 * after the reply), so its Conn points to that request. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>

#include "http-internal.h"
#include "macro.h"

#define NUM_SYMBOLS_LINE "num_symbols: 1\n"

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

Request *request_new(HttpServer *s, struct evhttp_request *evreq) {
        Request *req = calloc(1, sizeof *req);

        if (!req)
                return NULL;
        req->server = s;
        req->evreq = evreq;
        return req;
}

bool request_is_cancelled(const Request *req) {
        return req->cancelled;
}

void request_set_cancel_callback(Request *req, void (*cb)(void *userdata), void *userdata) {
        req->cancel_cb = cb;
        req->cancel_userdata = cb ? userdata : NULL;
}

/* Stops watching the client: the connection forgets REQ, no more watcher. */
static void request_unwatch(Request *req) {
        if (req->watch) {
                event_free(req->watch);
                req->watch = NULL;
        }
        if (req->conn && req->conn->req == req)
                req->conn->req = NULL;
}

static void request_unlink(Request *req) {
        HttpServer *s = req->server;

        if (!req->pending)
                return;
        req->pending = false;
        if (!s)
                return;
        if (req->sampled)
                s->n_profiles--;
        if (req->prev)
                req->prev->next = req->next;
        else
                s->pending = req->next;
        if (req->next)
                req->next->prev = req->prev;
        req->prev = req->next = NULL;
        s->n_pending--;
}

/* The client is gone (or the server going): marks REQ cancelled and runs the cancel
 * callback, once. The callback may call request_finish(), so REQ is not touched after. */
static void request_cancel(Request *req) {
        void (*cb)(void *) = req->cancel_cb;
        void *userdata = req->cancel_userdata;

        if (req->cancelled)
                return;
        req->cancelled = true;
        req->cancel_cb = NULL;
        req->cancel_userdata = NULL;
        if (cb)
                cb(userdata);
}

void request_connection_closed(Request *req) {
        request_unwatch(req);
        req->conn = NULL;
        req->evreq = NULL;
        request_cancel(req);
}

static void on_client_event(evutil_socket_t fd, short what, void *userdata) {
        Request *req = userdata;

        if (!(what & EV_CLOSED)) {
                char c;
                ssize_t n = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);

                if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
                        return;
                if (n > 0) {
                        /* A pipelined next request: libevent reads it after the reply. EV_READ
                         * would fire again and again; keep only EV_CLOSED, when there is one
                         * (a reset then goes unnoticed until the reply: a rare, harmless
                         * case). */
                        event_del(req->watch);
                        if (req->server && req->server->early_close) {
                                event_free(req->watch);
                                req->watch = event_new(evhttp_connection_get_base(req->conn->evcon), fd,
                                                       EV_CLOSED | EV_PERSIST, on_client_event, req);
                                if (req->watch && event_add(req->watch, NULL) < 0) {
                                        event_free(req->watch);
                                        req->watch = NULL;
                                }
                        }
                        return;
                }
                /* 0: end of file; < 0: reset or another error. */
        }

        /* Close the connection now: the socket closes, and request_connection_closed()
         * runs. */
        conn_close(req->conn);
}

int request_begin_async(Request *req) {
        HttpServer *s = req->server;

        if (s->n_pending >= s->limits.max_pending)
                return -EBUSY;

        struct evhttp_connection *evcon = evhttp_request_get_connection(req->evreq);
        struct bufferevent *bev = evcon ? evhttp_connection_get_bufferevent(evcon) : NULL;
        evutil_socket_t fd = bev ? bufferevent_getfd(bev) : -1;
        if (fd >= 0 && req->conn) {
                req->watch = event_new(evhttp_connection_get_base(evcon), fd,
                                       EV_READ | (s->early_close ? EV_CLOSED : 0) | EV_PERSIST,
                                       on_client_event, req);
                if (!req->watch)
                        return -ENOMEM;
                if (event_add(req->watch, NULL) < 0) {
                        event_free(req->watch);
                        req->watch = NULL;
                        return -ENOMEM;
                }
        }
        if (req->conn)
                req->conn->req = req;

        req->pending = true;
        req->next = s->pending;
        if (s->pending)
                s->pending->prev = req;
        s->pending = req;
        s->n_pending++;
        return 0;
}

void request_cancel_all(HttpServer *s) {
        Request *req;

        while ((req = s->pending)) {
                request_unlink(req);
                req->server = NULL;
                request_unwatch(req);
                req->conn = NULL;       /* evhttp_free() frees it, and the evhttp_request */
                req->evreq = NULL;
                request_cancel(req);
        }
}

unsigned http_server_pending(const HttpServer *s) {
        return s->n_pending;
}

/* ---- sending ---- */

static void free_body(const void *data, size_t len, void *userdata) {
        free((void *) data);
}

static bool header_value_ok(const char *s) {
        for (; *s; s++)
                if ((unsigned char) *s < 0x20 || *s == 0x7f || *s == '"' || *s == '\\')
                        return false;
        return true;
}

/* Fills in what http/ knows about a successful reply of REQ's kind. */
static void complete_success(Request *req, Reply *r, char *filename, size_t size) {
        if (req->kind == REQUEST_SYMBOL) {
                /* Go's Symbol handler writes this line first, whatever follows: pprof only
                 * checks that the count is not 0. */
                _cleanup_buf_ Buf b = {};
                buf_puts(&b, NUM_SYMBOLS_LINE);
                buf_append(&b, r->body.data, r->body.len);
                buf_done(&r->body);
                r->body = b;
                b = (Buf) {};
                r->content_type = NULL;
                r->filename = NULL;
        } else if (req->kind == REQUEST_PROFILE && req->debug == 0 && !req->json) {
                /* What Go's handler sets for a binary profile, unless the backend did. */
                if (!r->content_type)
                        r->content_type = OCTET_STREAM;
                if (!r->filename) {
                        snprintf(filename, size, "%s%s", req->profile->name, req->seconds > 0 ? "-delta" : "");
                        r->filename = filename;
                }
        }
}

/* A reply is being sent from evhttp_send_reply() until libevent has written it all (or its
 * connection is freed first: a client gone, evhttp_free(); conn_free() takes the
 * connection off the list http_server_drain() looks at). */
static void on_reply_written(struct evhttp_request *evreq, void *userdata) {
        Conn *c = userdata;

        c->sending = false;
}

static void send_reply(Request *req, Reply *r) {
        struct evhttp_request *evreq = req->evreq;
        struct evkeyvalq *h = evhttp_request_get_output_headers(evreq);
        int status = r->status > 0 ? r->status : 200;
        bool failed = status < 200 || status >= 400;
        char filename[256];

        (void) evhttp_add_header(h, "X-Content-Type-Options", "nosniff");
        if (failed) {
                /* Go's pprof serveError: plain text, X-Go-Pprof so the pprof client prints
                 * the body, and no attachment. */
                (void) evhttp_remove_header(h, "Content-Disposition");
                (void) evhttp_add_header(h, "Content-Type", TEXT_PLAIN);
                (void) evhttp_add_header(h, "X-Go-Pprof", "1");
                buf_putc(&r->body, '\n');
        } else {
                if (status == 200)
                        complete_success(req, r, filename, sizeof filename);
                (void) evhttp_add_header(h, "Content-Type", r->content_type ? r->content_type : TEXT_PLAIN);
                if (r->filename && header_value_ok(r->filename)) {
                        _cleanup_buf_ Buf cd = {};
                        buf_printf(&cd, "attachment; filename=\"%s\"", r->filename);
                        (void) evhttp_add_header(h, "Content-Disposition", cd.data);
                }
                if (r->gzip)
                        (void) evhttp_add_header(h, "Content-Encoding", "gzip");
                if (r->truncated)
                        (void) evhttp_add_header(h, "X-Cprofd-Truncated", "1");
        }

        struct evbuffer *body = evbuffer_new();
        if (!body) {
                evhttp_send_error(evreq, 500, NULL);
                return;
        }
        if (evhttp_request_get_command(evreq) == EVHTTP_REQ_HEAD) {
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
                        evhttp_send_error(evreq, 500, NULL);
                        return;
                }
        }
        Conn *c = req->conn;
        if (c && !c->sending) {
                c->sending = true;
                evhttp_request_set_on_complete_cb(evreq, on_reply_written, c);
        }
        evhttp_send_reply(evreq, status, NULL, body);
        evbuffer_free(body);
}

void request_finish(Request *req, Reply *r) {
        Conn *c = req->conn;

        /* Before sending: a reply that fails to write frees the connection, and the close
         * callback must not find REQ any more. */
        request_unwatch(req);
        request_unlink(req);
        if (req->evreq) {
                if (c)
                        conn_request_done(c);
                send_reply(req, r);
        }
        buf_done(&r->body);
        free(req->addrs);
        free(req);
}
