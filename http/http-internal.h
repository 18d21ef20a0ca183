/* http/http-internal.h -- what the files of http/ share and nobody else sees: the server and
 * request structures, the reply sender, and the strict parsers of paths and parameters.
 *
 * server.c routes; request.c owns a Request's life (pending count, disconnect watch,
 * sending); params.c parses untrusted text and knows nothing of libevent. */
#pragma once

#include <netinet/in.h>
#include <stdbool.h>
#include <sys/types.h>
#include <sys/un.h>
#include <stddef.h>
#include <stdint.h>

#include "server.h"

struct evhttp;
struct evhttp_bound_socket;
struct evhttp_request;
struct evhttp_connection;
struct event;
struct bufferevent;

typedef struct Conn Conn;

#define TEXT_PLAIN "text/plain; charset=utf-8"
#define TEXT_HTML "text/html; charset=utf-8"
#define OCTET_STREAM "application/octet-stream"

struct HttpServer {
        struct event_base *base;
        struct evhttp *http;
        struct evhttp_bound_socket *socket;
        Backend backend;
        HttpLimits limits;
        char *token;                    /* NULL: no Authorization needed */
        bool early_close;               /* the loop reports EV_CLOSED (epoll: EPOLLRDHUP) */
        unsigned n_pending;
        unsigned n_profiles;            /* pending CPU and wall profiles */
        Request *pending;               /* list of the requests awaiting request_finish() */
        unsigned n_connections;
        Conn *connections;              /* every client connection, attached or not */
        char unix_path[sizeof(((struct sockaddr_un *) NULL)->sun_path)];    /* "" for TCP */
        dev_t unix_dev;                 /* of the socket file we made: removed if still it */
        ino_t unix_ino;
        char address[sizeof "unix:" + sizeof(((struct sockaddr_un *) NULL)->sun_path)];
};

/* A client connection, from accept to close. libevent 2.1 tells nothing of connections
 * until a whole request is read, so one is seen through the bufferevent that
 * evhttp_set_bevcb() lets us make for it, and attached to its evhttp_connection (found
 * as that bufferevent's callback argument) right after libevent set it up. From then on
 * its close callback is ours: it counts connections, runs the request deadline, and
 * cancels the pending request of a client that goes away. */
struct Conn {
        HttpServer *server;
        struct bufferevent *bev;        /* referenced by us until attached */
        struct evhttp_connection *evcon;        /* NULL until attached */
        struct event *timer;            /* attaches, then the request deadline */
        Request *req;                   /* the request pending on it, if any */
        bool over;                      /* over max_connections: closed once attached, not
                                           counted in n_connections */
        bool sending;                   /* a reply is being written (http_server_drain waits) */
        Conn *prev, *next;              /* in server->connections */
};

typedef enum RequestKind {
        REQUEST_PLAIN,
        REQUEST_PROFILE,                /* a debug=0 success gets octet-stream + filename */
        REQUEST_SYMBOL,                 /* a success gets "num_symbols: 1" put first */
} RequestKind;

struct Request {
        HttpServer *server;             /* NULL once the server is gone */
        struct evhttp_request *evreq;   /* NULL once the client is gone (libevent freed it) */
        Conn *conn;                     /* NULL once the connection is gone */
        struct event *watch;            /* while pending: notices the client going away */
        RequestKind kind;
        bool pending, cancelled;
        bool sampled;                   /* a CPU or wall profile: counted in n_profiles */
        void (*cancel_cb)(void *userdata);
        void *cancel_userdata;

        /* REQUEST_PROFILE */
        const ProfileInfo *profile;
        int debug;
        bool json;                      /* format=json: a text reply */
        unsigned seconds;
        /* REQUEST_SYMBOL: the addresses handed to Backend.symbol, valid until finish */
        uint64_t *addrs;

        Request *prev, *next;           /* in server->pending */
};

/* request.c */
Request *request_new(HttpServer *s, struct evhttp_request *evreq);
/* Makes REQ pending: counted, on the server's list, its connection watched. 0, or
 * -EBUSY when max_pending requests already are, or -ENOMEM. */
int request_begin_async(Request *req);
/* REQ's connection is being freed (and its evhttp_request with it): REQ is cancelled. */
void request_connection_closed(Request *req);
/* The request on CONN is answered: its deadline for the next one starts. */
void conn_request_done(Conn *c);
/* The connection EVCON is on (NULL when unknown). */
Conn *conn_find(HttpServer *s, struct evhttp_connection *evcon);
/* Closes C's connection now; C is freed. */
void conn_close(Conn *c);

/* Every pending request: detached from the server and its client, cancel callbacks run.
 * Before evhttp_free(), which frees the evhttp_requests. */
void request_cancel_all(HttpServer *s);

/* params.c */
#define PARAMS_MAX 32                   /* distinct parameters in one query */
#define PARAM_MAX 256                   /* bytes of one raw "key=value" pair */

typedef struct Param {
        char *key;                      /* decoded */
        char *value;                    /* decoded; "" when there was no '=' */
} Param;

typedef struct Params {
        Param items[PARAMS_MAX];
        size_t n;
} Params;

/* Parses RAW (NULL: empty) as Go's url.ParseQuery does, strictly: pairs split on '&',
 * empty pairs skipped, '+' and %XX decoded. A malformed escape, a ';', a NUL, too many or
 * too long pairs, or a key given twice → negative errno and a one-line message in ERR. */
int params_parse(const char *raw, Params *ret, char *err, size_t err_size);
void params_done(Params *p);
/* The value of KEY, or NULL when absent. */
const char *params_get(const Params *p, const char *key);

/* seconds=N: 1 to 10 decimal digits, no sign, no space, value > 0. 0 or -EINVAL. */
int parse_seconds(const char *value, uint64_t *ret);
/* The CPU profile's seconds, as Go's Profile handler reads them: strconv.ParseInt, and
 * anything unparsable or ≤ 0 means the default. Never fails. */
uint64_t parse_cpu_seconds(const char *value, uint64_t default_seconds);
/* hz=H: absent or empty → DEFAULT_HZ; else 1..MAX_HZ decimal. 0 or -EINVAL. */
int parse_hz(const char *value, unsigned default_hz, unsigned max_hz, unsigned *ret);

/* Go's /symbol input: words split on '+', each parsed as strconv.ParseUint(word, 0, 64);
 * words that do not parse or are 0 are skipped. *ret (caller frees; NULL when none) gets
 * the addresses in order. 0, -E2BIG (more than SYMBOL_ADDRS_MAX words) or -ENOMEM. */
int parse_symbol_words(const char *data, size_t len, uint64_t **ret, size_t *ret_n);

/* Decodes the raw path and checks it is in normal form: absolute, no "." or ".."
 * segment, no empty segment but a trailing one, no NUL. NULL when it is not (or OOM). */
char *path_decode_strict(const char *raw);
/* Decimal 1..PID_MAX_LIMIT, no sign, no leading zero. 0, -EINVAL or -ERANGE. */
int parse_pid(const char *s, size_t len, pid_t *ret);
/* "HOST:PORT" with an IPv4 literal (or "localhost"), or "[IPV6]:PORT". */
int parse_listen(const char *listen, char *ret_host, size_t size, uint16_t *ret_port);
/* User input quoted for a one-line message: printable ASCII, bounded by SIZE. */
void quote_for_message(const char *s, size_t len, char *buf, size_t size);
