/* tests/test-http.c -- unit tests of http/ over real sockets: the server runs in-process on
 * 127.0.0.1:0 on its own event_base, and the test drives that loop itself while a tiny
 * HTTP client waits for its reply, all on one thread (no locks, deterministic). A fake
 * Backend answers profiles after a timer and records what it was asked and what was
 * cancelled. Covers every route × bad parameter (status, headers, body), the success
 * headers, the index page, /symbol, concurrency while a profile is pending, client
 * disconnects (FIN, RST, pipelined), the pending limit, the token, the profile and
 * connection caps, the request deadline, unix sockets, and freeing the server with
 * requests still pending. Meant to run under ASan+UBSan too. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "buf.h"
#include "http-internal.h"
#include "macro.h"
#include "server.h"
#include "tiny-test.h"

#define MAX_SECONDS 60
#define MAX_PENDING 3

/* ---- clock ---- */

static int64_t now_ms(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- the fake backend ---- */

typedef enum CancelMode {
        CANCEL_FINISHES,                /* the cancel callback stops the work and finishes */
        CANCEL_RECORDS,                 /* it only records; the timer still finishes later */
} CancelMode;

typedef struct Job {
        Request *req;
        struct event *timer;
        char name[32];
        int debug;
        unsigned seconds;
        bool symbol;
        uint64_t addrs[8];
        size_t n;
} Job;

static struct {
        struct event_base *base;
        HttpServer *server;
        int delay_ms;                   /* profile(): the reply after this; < 0 at once */
        CancelMode cancel_mode;
        TargetSummary targets[4];
        size_t n_targets;
        /* recorded */
        int profile_calls, symbol_calls, cancels, finished;
        bool cancelled_flag_seen;
        int64_t cancel_at;
        ProfileRequest last;
        char last_name[32];
        pid_t last_symbol_pid;
        size_t last_symbol_n;
} fake;

static const ProfileInfo fake_profiles[] = {
        /* Not sorted on purpose: the index sorts. */
        { .name = "heap", .description = "Live objects: the count is the number of allocation sites",
          .supports_delta = true },
        { .name = "goroutine", .description = "Threads of the target: the count is the number of threads",
          .supports_delta = true },
        { .name = "allocs", .description = "Past allocations: the count is the number of allocation sites",
          .supports_delta = true },
        { .name = "nodelta", .description = "A profile without deltas: the count is 7" },
};

static void job_free(Job *j) {
        if (j->timer)
                event_free(j->timer);
        free(j);
}

static void job_reply(evutil_socket_t fd, short what, void *userdata) {
        Job *j = userdata;
        Reply r = { .status = 200 };

        if (j->symbol) {
                for (size_t i = 0; i < j->n; i++)
                        if (j->addrs[i] < 0x1000)       /* the rest "does not resolve" */
                                buf_printf(&r.body, "%#" PRIx64 " fn_%" PRIx64 "\n", j->addrs[i], j->addrs[i]);
        } else {
                buf_printf(&r.body, "%s debug=%d seconds=%u\n", j->name, j->debug, j->seconds);
                if (j->debug == 0 && strcmp(j->name, "goroutine") == 0) {
                        /* As the daemon does; heap and allocs leave both to http/'s defaults. */
                        r.content_type = "application/octet-stream";
                        r.filename = j->seconds ? "goroutine-delta" : "goroutine";
                }
        }
        fake.finished++;
        request_finish(j->req, &r);
        job_free(j);
}

static void job_cancel(void *userdata) {
        Job *j = userdata;

        fake.cancels++;
        fake.cancel_at = now_ms();
        fake.cancelled_flag_seen = request_is_cancelled(j->req);
        if (fake.cancel_mode == CANCEL_FINISHES) {
                Reply r = {};
                buf_puts(&r.body, "dropped");
                request_finish(j->req, &r);
                job_free(j);
        }
}

static void job_start(Job *j) {
        j->timer = evtimer_new(fake.base, job_reply, j);
        ASSERT_TRUE(j->timer);
        request_set_cancel_callback(j->req, job_cancel, j);
        if (fake.delay_ms < 0 && !j->symbol) {
                request_set_cancel_callback(j->req, NULL, NULL);
                job_reply(-1, 0, j);
                return;
        }
        int ms = j->symbol ? 20 : fake.delay_ms;
        struct timeval tv = { .tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000 };
        ASSERT_EQ(evtimer_add(j->timer, &tv), 0);
}

static void fake_profile(void *userdata, Request *req, const ProfileRequest *p) {
        Job *j = calloc(1, sizeof *j);

        ASSERT_TRUE(j);
        fake.profile_calls++;
        fake.last = *p;
        snprintf(fake.last_name, sizeof fake.last_name, "%s", p->info->name);
        *j = (Job) { .req = req, .debug = p->debug, .seconds = p->seconds };
        snprintf(j->name, sizeof j->name, "%s", p->info->name);
        job_start(j);
}

static void fake_symbol(void *userdata, Request *req, pid_t pid, const uint64_t *addrs, size_t n) {
        Job *j = calloc(1, sizeof *j);

        ASSERT_TRUE(j);
        fake.symbol_calls++;
        fake.last_symbol_pid = pid;
        fake.last_symbol_n = n;
        *j = (Job) { .req = req, .symbol = true, .n = MIN(n, ARRAY_SIZE(j->addrs)) };
        memcpy(j->addrs, addrs, j->n * sizeof *addrs);
        job_start(j);
}

static size_t fake_list_targets(void *userdata, TargetSummary *ret, size_t max) {
        for (size_t i = 0; i < fake.n_targets && i < max; i++)
                ret[i] = fake.targets[i];
        return fake.n_targets;
}

static long fake_profile_count(void *userdata, pid_t pid, const ProfileInfo *info) {
        const char *name = info->name;
        if (strcmp(name, "goroutine") == 0)
                return pid == 100 ? 11 : 4;
        if (strcmp(name, "allocs") == 0)
                return 3;
        if (strcmp(name, "nodelta") == 0)
                return 7;
        return -1;                      /* heap: unknown */
}

static void fake_cmdline(void *userdata, pid_t pid, Reply *r) {
        buf_append(&r->body, "fake\0--x", 8);
}

static void fake_metrics(void *userdata, Buf *out) {
        buf_printf(out, "fake_pending %u\n", http_server_pending(fake.server));
}

static Backend fake_backend(void) {
        return (Backend) {
                .profiles = fake_profiles,
                .n_profiles = ARRAY_SIZE(fake_profiles),
                .list_targets = fake_list_targets,
                .profile_count = fake_profile_count,
                .profile = fake_profile,
                .symbol = fake_symbol,
                .cmdline = fake_cmdline,
                .metrics = fake_metrics,
        };
}

static void start_server(const Backend *b, const HttpLimits *limits) {
        memset(&fake, 0, sizeof fake);
        fake.delay_ms = 10;
        fake.targets[0] = (TargetSummary) { .pid = 100, .comm = "fake<main>", .threads = 11 };
        fake.n_targets = 1;
        fake.base = event_base_new();
        ASSERT_TRUE(fake.base);
        ASSERT_EQ(http_server_new(fake.base, "127.0.0.1:0", 0600, b, limits, &fake.server), 0);
}

static void start_with(const Backend *b, unsigned max_pending) {
        HttpLimits limits = { .max_seconds = MAX_SECONDS, .max_pending = max_pending };

        start_server(b, &limits);
}

static void start(void) {
        Backend b = fake_backend();
        start_with(&b, MAX_PENDING);
}

static void pump(void) {
        ASSERT_GE(event_base_loop(fake.base, EVLOOP_NONBLOCK), 0);
}

/* Runs the loop until *COND is true or TIMEOUT_MS pass. */
static bool pump_until(const int *value, int want, int timeout_ms) {
        int64_t end = now_ms() + timeout_ms;
        while (*value != want && now_ms() < end) {
                pump();
                if (*value != want)
                        (void) poll(NULL, 0, 1);
        }
        return *value == want;
}

static bool pump_until_pending(unsigned want, int timeout_ms) {
        int64_t end = now_ms() + timeout_ms;
        while (http_server_pending(fake.server) != want && now_ms() < end) {
                pump();
                (void) poll(NULL, 0, 1);
        }
        return http_server_pending(fake.server) == want;
}

static void stop(void) {
        /* Whatever is still pending (a test that failed half-way) is cancelled here. */
        fake.server = http_server_free(fake.server);
        /* CANCEL_RECORDS jobs still hold a timer: let them finish into the void. */
        for (int i = 0; i < 100 && event_base_get_num_events(fake.base, EVENT_BASE_COUNT_ADDED) > 0; i++) {
                pump();
                (void) poll(NULL, 0, 5);
        }
        event_base_free(fake.base);
        fake.base = NULL;
}

/* ---- a tiny HTTP client ---- */

static int client_connect(void) {
        const char *addr = http_server_address(fake.server);
        const char *colon = strrchr(addr, ':');
        struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons((uint16_t) atoi(colon + 1)) };
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

        ASSERT_GE(fd, 0);
        ASSERT_EQ(inet_pton(AF_INET, "127.0.0.1", &sin.sin_addr), 1);
        if (connect(fd, (struct sockaddr *) &sin, sizeof sin) < 0)
                ASSERT_EQ(errno, EINPROGRESS);
        return fd;
}

static void client_send(int fd, const char *data, size_t len) {
        int64_t end = now_ms() + 5000;
        while (len > 0) {
                ssize_t n = send(fd, data, len, MSG_NOSIGNAL);
                if (n > 0) {
                        data += n;
                        len -= (size_t) n;
                        continue;
                }
                ASSERT_TRUE(n < 0 && (errno == EAGAIN || errno == ENOTCONN));
                ASSERT_LT(now_ms(), end);
                pump();                         /* the server drains meanwhile */
                (void) poll(NULL, 0, 1);
        }
}

static int send_request(const char *method, const char *target, const char *body, size_t body_len) {
        int fd = client_connect();
        Buf b = {};

        buf_printf(&b, "%s %s HTTP/1.1\r\nHost: test\r\nConnection: close\r\n", method, target);
        if (body)
                buf_printf(&b, "Content-Length: %zu\r\n", body_len);
        buf_puts(&b, "\r\n");
        if (body)
                buf_append(&b, body, body_len);
        client_send(fd, b.data, b.len);
        buf_done(&b);
        return fd;
}

typedef struct Response {
        int status;
        Buf raw;
        const char *body;               /* into raw */
        size_t body_len;
        char header[256];               /* scratch for header() */
        int64_t ms;                     /* time to the reply */
} Response;

/* Reads until the server closes (every request says Connection: close). */
static void read_response(int fd, Response *resp, int timeout_ms) {
        int64_t start = now_ms(), end = start + timeout_ms;
        char chunk[65536];

        for (;;) {
                ssize_t n = recv(fd, chunk, sizeof chunk, MSG_DONTWAIT);
                if (n > 0) {
                        buf_append(&resp->raw, chunk, (size_t) n);
                        continue;
                }
                if (n == 0)
                        break;
                ASSERT_TRUE(errno == EAGAIN || errno == ENOTCONN);
                if (now_ms() >= end)
                        TINY_FAIL("no complete reply within %d ms; got:\n%s", timeout_ms,
                                  resp->raw.data ? resp->raw.data : "");
                pump();
                struct pollfd p = { .fd = fd, .events = POLLIN };
                (void) poll(&p, 1, 1);
        }
        close(fd);
        resp->ms = now_ms() - start;
        ASSERT_TRUE(resp->raw.data);
        ASSERT_EQ(sscanf(resp->raw.data, "HTTP/1.1 %d ", &resp->status), 1);
        const char *sep = strstr(resp->raw.data, "\r\n\r\n");
        ASSERT_TRUE(sep);
        resp->body = sep + 4;
        resp->body_len = resp->raw.len - (size_t) (resp->body - resp->raw.data);
}

static Response *request(const char *method, const char *target, const char *body, size_t body_len) {
        Response *resp = calloc(1, sizeof *resp);
        ASSERT_TRUE(resp);
        read_response(send_request(method, target, body, body_len), resp, 5000);
        return resp;
}

static Response *get(const char *target) {
        return request("GET", target, NULL, 0);
}

static void response_free(Response *r) {
        buf_done(&r->raw);
        free(r);
}

/* The value of header NAME, or NULL. */
static const char *header(Response *r, const char *name) {
        size_t nl = strlen(name);
        const char *head_end = strstr(r->raw.data, "\r\n\r\n");

        for (const char *l = strstr(r->raw.data, "\r\n"); l && l < head_end; l = strstr(l + 2, "\r\n")) {
                const char *line = l + 2;
                if (strncasecmp(line, name, nl) == 0 && line[nl] == ':') {
                        const char *v = line + nl + 1;
                        while (*v == ' ')
                                v++;
                        size_t len = strcspn(v, "\r");
                        snprintf(r->header, sizeof r->header, "%.*s", (int) len, v);
                        return r->header;
                }
        }
        return NULL;
}

#define ASSERT_HEADER(r, name, value) ASSERT_STREQ(header(r, name), value)
#define ASSERT_NO_HEADER(r, name) ASSERT_TRUE(header(r, name) == NULL)

static void assert_body(Response *r, const char *want, size_t want_len) {
        if (r->body_len != want_len || memcmp(r->body, want, want_len) != 0)
                TINY_FAIL("body is \"%.*s\" (%zu bytes), want \"%.*s\"", (int) r->body_len, r->body, r->body_len,
                          (int) want_len, want);
}

/* Go's serveError shape. */
static void assert_error(Response *r, int status, const char *message) {
        char want[512];

        if (r->status != status)
                TINY_FAIL("status %d, want %d; reply:\n%s", r->status, status, r->raw.data);
        ASSERT_HEADER(r, "Content-Type", "text/plain; charset=utf-8");
        ASSERT_HEADER(r, "X-Go-Pprof", "1");
        ASSERT_HEADER(r, "X-Content-Type-Options", "nosniff");
        ASSERT_NO_HEADER(r, "Content-Disposition");
        snprintf(want, sizeof want, "%s\n", message);
        assert_body(r, want, strlen(want));
}

/* ---- the parsers ---- */

TEST(parse_debug_is_strict) {
        static const struct {
                const char *value;
                int ret;
        } cases[] = {
                { NULL, 0 }, { "", 0 }, { "0", 0 }, { "1", 1 }, { "2", 2 }, { "00", 0 }, { "02", 2 },
                { "3", -EINVAL }, { "-1", -EINVAL }, { "+1", -EINVAL }, { " 1", -EINVAL }, { "1 ", -EINVAL },
                { "abc", -EINVAL }, { "1x", -EINVAL }, { "0x1", -EINVAL }, { "1.0", -EINVAL },
                { "99999999999", -EINVAL }, { "4294967297", -EINVAL },
        };
        for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
                int debug = 42;
                int r = http_parse_debug(cases[i].value, &debug);
                if (cases[i].ret < 0) {
                        ASSERT_EQ(r, cases[i].ret);
                        ASSERT_EQ(debug, 42);           /* untouched on failure */
                } else {
                        ASSERT_EQ(r, 0);
                        ASSERT_EQ(debug, cases[i].ret);
                }
        }
}

TEST(parse_seconds_is_strict) {
        uint64_t s = 0;
        ASSERT_EQ(parse_seconds("1", &s), 0);
        ASSERT_EQ(s, 1);
        ASSERT_EQ(parse_seconds("0030", &s), 0);
        ASSERT_EQ(s, 30);
        ASSERT_EQ(parse_seconds("9999999999", &s), 0);
        ASSERT_EQ(s, UINT64_C(9999999999));
        static const char *bad[] = { "", "0", "00", "-1", "+1", " 1", "1 ", "abc", "1x", "0x10", "99999999999", "1e3" };
        for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
                ASSERT_EQ(parse_seconds(bad[i], &s), -EINVAL);
}

TEST(params_strict) {
        Params p;
        char err[128];

        ASSERT_EQ(params_parse("a=1&&b=x+y%21&c", &p, err, sizeof err), 0);
        ASSERT_EQ(p.n, 3);
        ASSERT_STREQ(params_get(&p, "a"), "1");
        ASSERT_STREQ(params_get(&p, "b"), "x y!");
        ASSERT_STREQ(params_get(&p, "c"), "");
        ASSERT_TRUE(params_get(&p, "d") == NULL);
        params_done(&p);
        ASSERT_EQ(params_parse(NULL, &p, err, sizeof err), 0);
        ASSERT_EQ(p.n, 0);

        ASSERT_EQ(params_parse("debug=1&debug=2", &p, err, sizeof err), -ENOTUNIQ);
        ASSERT_STREQ(err, "parameter \"debug\" given more than once");
        ASSERT_EQ(params_parse("de%62ug=1&debug=2", &p, err, sizeof err), -ENOTUNIQ);   /* decoded keys */
        ASSERT_EQ(params_parse("a=%zz", &p, err, sizeof err), -EINVAL);
        ASSERT_STREQ(err, "invalid query");
        ASSERT_EQ(params_parse("a=%2", &p, err, sizeof err), -EINVAL);
        ASSERT_EQ(params_parse("a=%00", &p, err, sizeof err), -EINVAL);
        ASSERT_EQ(params_parse("a=1;b=2", &p, err, sizeof err), -EINVAL);

        Buf b = {};
        buf_puts(&b, "x=");
        for (int i = 0; i < PARAM_MAX; i++)
                buf_putc(&b, '9');
        ASSERT_EQ(params_parse(b.data, &p, err, sizeof err), -E2BIG);
        ASSERT_STREQ(err, "parameter \"x\" too long");
        buf_reset(&b);
        for (int i = 0; i <= PARAMS_MAX; i++)
                buf_printf(&b, "k%d=1&", i);
        ASSERT_EQ(params_parse(b.data, &p, err, sizeof err), -E2BIG);
        ASSERT_STREQ(err, "too many parameters");
        buf_done(&b);
}

TEST(symbol_words_like_go) {
        static const char in[] = "0x10+16+020+0b10000+0o20+0X10+junk++0+0x+0x10000000000000000+18446744073709551615";
        uint64_t *a = NULL;
        size_t n = 0;

        ASSERT_EQ(parse_symbol_words(in, strlen(in), &a, &n), 0);
        ASSERT_EQ(n, 7);
        for (size_t i = 0; i < 6; i++)
                ASSERT_EQ(a[i], 16);
        ASSERT_TRUE(a[6] == UINT64_MAX);
        free(a);

        ASSERT_EQ(parse_symbol_words("", 0, &a, &n), 0);
        ASSERT_EQ(n, 0);
        ASSERT_TRUE(a == NULL);

        Buf b = {};
        for (unsigned i = 0; i + 1 < SYMBOL_ADDRS_MAX; i++)
                buf_putc(&b, '+');                     /* SYMBOL_ADDRS_MAX words: fine */
        ASSERT_EQ(parse_symbol_words(b.data, b.len, &a, &n), 0);
        ASSERT_EQ(n, 0);
        buf_putc(&b, '+');
        ASSERT_EQ(parse_symbol_words(b.data, b.len, &a, &n), -E2BIG);
        buf_done(&b);
}

/* ---- errors: every route × bad input ---- */

TEST(errors_table) {
        static const struct {
                const char *method, *target;
                int status;
                const char *message;
                const char *allow;
        } cases[] = {
                /* seconds= : Go's checks, in Go's order */
                { "GET", "/debug/pprof/goroutine?seconds=0", 400, "invalid value for \"seconds\" - must be a positive integer" },
                { "GET", "/debug/pprof/goroutine?seconds=-1", 400, "invalid value for \"seconds\" - must be a positive integer" },
                { "GET", "/debug/pprof/goroutine?seconds=abc", 400, "invalid value for \"seconds\" - must be a positive integer" },
                { "GET", "/debug/pprof/goroutine?seconds=1x", 400, "invalid value for \"seconds\" - must be a positive integer" },
                { "GET", "/debug/pprof/goroutine?seconds=%201", 400, "invalid value for \"seconds\" - must be a positive integer" },
                { "GET", "/debug/pprof/goroutine?seconds=+1", 400, "invalid value for \"seconds\" - must be a positive integer" },
                { "GET", "/debug/pprof/goroutine?seconds=99999999999", 400, "invalid value for \"seconds\" - must be a positive integer" },
                { "GET", "/debug/pprof/goroutine?seconds=9999999999", 400, "profile duration exceeds server's WriteTimeout" },
                { "GET", "/debug/pprof/goroutine?seconds=60", 400, "profile duration exceeds server's WriteTimeout" },
                { "GET", "/debug/pprof/nodelta?seconds=5", 400, "\"seconds\" parameter is not supported for this profile type" },
                { "GET", "/debug/pprof/nodelta?seconds=abc", 400, "invalid value for \"seconds\" - must be a positive integer" },
                { "GET", "/debug/pprof/nodelta?seconds=60&debug=1", 400, "\"seconds\" parameter is not supported for this profile type" },
                { "GET", "/debug/pprof/goroutine?seconds=60&debug=1", 400, "profile duration exceeds server's WriteTimeout" },
                { "GET", "/debug/pprof/goroutine?seconds=5&debug=1", 400, "seconds and debug params are incompatible" },
                { "GET", "/debug/pprof/goroutine?debug=2&seconds=5", 400, "seconds and debug params are incompatible" },
                { "GET", "/debug/pprof/goroutine?seconds=5&debug=abc", 400, "invalid value for \"debug\" - must be 0, 1 or 2" },
                /* debug= */
                { "GET", "/debug/pprof/goroutine?debug=abc", 400, "invalid value for \"debug\" - must be 0, 1 or 2" },
                { "GET", "/debug/pprof/goroutine?debug=3", 400, "invalid value for \"debug\" - must be 0, 1 or 2" },
                { "GET", "/debug/pprof/goroutine?debug=-1", 400, "invalid value for \"debug\" - must be 0, 1 or 2" },
                { "GET", "/debug/pprof/heap?debug=1.0", 400, "invalid value for \"debug\" - must be 0, 1 or 2" },
                { "GET", "/debug/pprof/goroutine?debug=99999999999999999999", 400, "invalid value for \"debug\" - must be 0, 1 or 2" },
                { "GET", "/debug/pprof/goroutine?debug=1&debug=2", 400, "parameter \"debug\" given more than once" },
                { "GET", "/debug/pprof/goroutine?debug=1&debug=1", 400, "parameter \"debug\" given more than once" },
                { "GET", "/debug/pprof/goroutine?seconds=1&seconds=2", 400, "parameter \"seconds\" given more than once" },
                { "GET", "/debug/pprof/goroutine?x=1&x=1", 400, "parameter \"x\" given more than once" },
                { "GET", "/debug/pprof/goroutine?debug=%zz", 400, "invalid query" },
                { "GET", "/debug/pprof/goroutine?debug=%00", 400, "invalid query" },
                { "GET", "/debug/pprof/goroutine?debug=1;gc=1", 400, "invalid query" },
                /* unknown profile: before any parameter check, as in Go */
                { "GET", "/debug/pprof/nosuch", 404, "Unknown profile" },
                { "GET", "/debug/pprof/nosuch?seconds=abc&debug=1&debug=2", 404, "Unknown profile" },
                { "GET", "/debug/pprof/goroutine/", 404, "Unknown profile" },
                { "GET", "/debug/pprof/goroutine/extra", 404, "Unknown profile" },
                { "GET", "/pid/100/debug/pprof/nosuch?debug=1", 404, "Unknown profile" },
                /* the /pid/N prefix */
                { "GET", "/pid/abc/debug/pprof/goroutine?debug=1", 400, "invalid pid \"abc\"" },
                { "GET", "/pid/0/debug/pprof/goroutine?debug=1", 400, "invalid pid \"0\"" },
                { "GET", "/pid/0100/debug/pprof/goroutine?debug=1", 400, "invalid pid \"0100\"" },
                { "GET", "/pid/-1/debug/pprof/goroutine?debug=1", 400, "invalid pid \"-1\"" },
                { "GET", "/pid/99999999/debug/pprof/goroutine?debug=1", 400, "invalid pid \"99999999\"" },
                { "GET", "/pid/%31%30%30x/debug/pprof/", 400, "invalid pid \"100x\"" },
                { "GET", "/pid//debug/pprof/goroutine", 400, "invalid path" },
                { "GET", "/pid/4242/debug/pprof/goroutine?debug=1", 404, "unknown target pid 4242" },
                { "GET", "/pid/4242/debug/pprof/", 404, "unknown target pid 4242" },
                /* traversal and other paths */
                { "GET", "/debug/pprof/../../../../etc/passwd", 400, "invalid path" },
                { "GET", "/debug/pprof/%2e%2e/%2e%2e/etc/passwd", 400, "invalid path" },
                { "GET", "/debug/pprof/..%2f..%2fetc%2fpasswd", 400, "invalid path" },
                { "GET", "/debug/pprof/./goroutine", 400, "invalid path" },
                { "GET", "/pid/100/../../etc/passwd", 400, "invalid path" },
                { "GET", "//etc/passwd", 400, "invalid path" },
                { "GET", "/debug/pprof/goroutine%00", 400, "invalid path" },
                { "GET", "/debug/pprof/goroutine%zz", 400, "invalid path" },
                { "GET", "/debug/pprof/%2e%2e", 400, "invalid path" },
                { "GET", "/etc/passwd", 404, "404 page not found" },
                { "GET", "/", 404, "404 page not found" },
                { "GET", "/pid/100/metrics", 404, "404 page not found" },
                { "GET", "/pid/100", 404, "404 page not found" },
                /* methods: POST only on /symbol */
                { "POST", "/debug/pprof/goroutine?debug=1", 405, "method not allowed", "GET, HEAD" },
                { "POST", "/debug/pprof/", 405, "method not allowed", "GET, HEAD" },
                { "POST", "/debug/pprof/cmdline", 405, "method not allowed", "GET, HEAD" },
                { "POST", "/metrics", 405, "method not allowed", "GET, HEAD" },
                { "PUT", "/debug/pprof/goroutine", 405, "method not allowed", "GET, HEAD" },
                { "DELETE", "/pid/100/debug/pprof/heap", 405, "method not allowed", "GET, HEAD" },
                { "OPTIONS", "/debug/pprof/", 405, "method not allowed", "GET, HEAD" },
                { "PUT", "/debug/pprof/symbol", 405, "method not allowed", "GET, HEAD, POST" },
                { "PATCH", "/pid/100/debug/pprof/symbol", 405, "method not allowed", "GET, HEAD, POST" },
        };

        start();
        for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
                tiny_current = cases[i].target;
                Response *r = request(cases[i].method, cases[i].target, cases[i].method[0] == 'P' ? "" : NULL, 0);
                assert_error(r, cases[i].status, cases[i].message);
                if (cases[i].allow)
                        ASSERT_HEADER(r, "Allow", cases[i].allow);
                else
                        ASSERT_NO_HEADER(r, "Allow");
                response_free(r);
        }
        tiny_current = "errors_table";
        ASSERT_EQ(fake.profile_calls, 0);       /* nothing bad reached the backend */
        ASSERT_EQ(fake.symbol_calls, 0);
        ASSERT_EQ(http_server_pending(fake.server), 0);
        stop();
}

TEST(errors_on_size) {
        Buf t = {};
        Response *r;

        start();
        buf_puts(&t, "/debug/pprof/goroutine?x=");
        for (int i = 0; i < 4100; i++)
                buf_putc(&t, 'a');
        r = get(t.data);
        assert_error(r, 400, "query too long");
        response_free(r);

        /* The limit holds for every route, the index and /symbol too. */
        buf_reset(&t);
        buf_puts(&t, "/debug/pprof/symbol?");
        for (int i = 0; i < 1030; i++)
                buf_puts(&t, "0x1+");
        r = get(t.data);
        assert_error(r, 400, "query too long");
        response_free(r);

        buf_reset(&t);
        buf_puts(&t, "/debug/pprof/goroutine?debug=1&x=");
        for (int i = 0; i < PARAM_MAX; i++)
                buf_putc(&t, 'a');
        r = get(t.data);
        assert_error(r, 400, "parameter \"x\" too long");
        response_free(r);

        buf_reset(&t);
        buf_puts(&t, "/debug/pprof/goroutine?debug=1");
        for (int i = 0; i < PARAMS_MAX; i++)
                buf_printf(&t, "&k%d=1", i);
        r = get(t.data);
        assert_error(r, 400, "too many parameters");
        response_free(r);

        /* 65536 '+' are 65537 words: one too many, within the 64 KiB body limit. */
        buf_reset(&t);
        for (unsigned i = 0; i < SYMBOL_ADDRS_MAX; i++)
                buf_putc(&t, '+');
        r = request("POST", "/debug/pprof/symbol", t.data, t.len);
        assert_error(r, 400, "too many addresses");
        response_free(r);

        /* Over the body limit, declared or chunked: libevent answers 413 itself (its own
         * HTML page) and never calls the router. */
        buf_putc(&t, '+');
        r = request("POST", "/debug/pprof/symbol", t.data, t.len);
        ASSERT_EQ(r->status, 413);
        response_free(r);

        buf_reset(&t);
        buf_puts(&t, "POST /debug/pprof/symbol HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"
                     "Transfer-Encoding: chunked\r\n\r\n11000\r\n");
        for (int i = 0; i < 0x11000; i++)
                buf_putc(&t, '+');
        buf_puts(&t, "\r\n0\r\n\r\n");
        int fd = client_connect();
        client_send(fd, t.data, t.len);
        r = calloc(1, sizeof *r);
        read_response(fd, r, 5000);
        ASSERT_EQ(r->status, 413);
        response_free(r);

        ASSERT_EQ(fake.symbol_calls, 0);
        buf_done(&t);
        stop();
}

TEST(errors_on_targets) {
        Response *r;

        start();
        fake.targets[1] = (TargetSummary) { .pid = 200, .comm = "gone", .threads = -1, .exited = true };
        fake.n_targets = 2;
        r = get("/pid/200/debug/pprof/goroutine?debug=1");
        assert_error(r, 410, "target pid 200 has exited");
        response_free(r);
        r = get("/pid/200/debug/pprof/");
        assert_error(r, 410, "target pid 200 has exited");
        response_free(r);

        /* An exited target still has its symbols. */
        r = get("/pid/200/debug/pprof/symbol?0x10");
        ASSERT_EQ(r->status, 200);
        assert_body(r, "num_symbols: 1\n0x10 fn_10\n", 26);
        ASSERT_EQ(fake.last_symbol_pid, 200);
        response_free(r);

        fake.n_targets = 0;
        r = get("/debug/pprof/goroutine?debug=1");
        assert_error(r, 404, "no target to profile");
        response_free(r);
        stop();
}

/* ---- successes ---- */

TEST(profile_success_headers) {
        static const struct {
                const char *target;
                pid_t pid;
                const char *name;
                int debug;
                unsigned seconds;
                const char *filename;   /* NULL: text/plain */
        } cases[] = {
                { "/debug/pprof/goroutine", 100, "goroutine", 0, 0, "goroutine" },
                { "/debug/pprof/goroutine?debug=0", 100, "goroutine", 0, 0, "goroutine" },
                { "/debug/pprof/goroutine?debug=", 100, "goroutine", 0, 0, "goroutine" },
                { "/debug/pprof/goroutine?debug=1", 100, "goroutine", 1, 0, NULL },
                { "/debug/pprof/goroutine?debug=2", 100, "goroutine", 2, 0, NULL },
                { "/debug/pprof/goroutine?seconds=5", 100, "goroutine", 0, 5, "goroutine-delta" },
                { "/debug/pprof/goroutine?seconds=59&debug=0", 100, "goroutine", 0, 59, "goroutine-delta" },
                { "/debug/pprof/goroutine?seconds=&debug=1", 100, "goroutine", 1, 0, NULL },
                { "/debug/pprof/goroutine?debug=1&gc=1&unknown=%41&flag", 100, "goroutine", 1, 0, NULL },
                { "/debug/pprof/goroutine?debug=1&&", 100, "goroutine", 1, 0, NULL },
                { "/debug/pprof/heap", 100, "heap", 0, 0, "heap" },           /* http/'s defaults */
                { "/debug/pprof/heap?seconds=0007", 100, "heap", 0, 7, "heap-delta" },
                { "/debug/pprof/allocs?debug=1", 100, "allocs", 1, 0, NULL },
                { "/debug/pprof/nodelta?debug=2", 100, "nodelta", 2, 0, NULL },
                { "/debug/pprof/nodelta?seconds=", 100, "nodelta", 0, 0, "nodelta" },
                { "/pid/100/debug/pprof/goroutine?debug=1", 100, "goroutine", 1, 0, NULL },
                { "/pid/200/debug/pprof/heap?seconds=3", 200, "heap", 0, 3, "heap-delta" },
                { "/debug/pprof/%67oroutine?debug=1", 100, "goroutine", 1, 0, NULL },
        };

        start();
        fake.targets[1] = (TargetSummary) { .pid = 200, .comm = "other", .threads = 4 };
        fake.n_targets = 2;
        for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
                char want[128];

                tiny_current = cases[i].target;
                fake.profile_calls = 0;
                Response *r = get(cases[i].target);
                if (r->status != 200)
                        TINY_FAIL("status %d; reply:\n%s", r->status, r->raw.data);
                ASSERT_EQ(fake.profile_calls, 1);
                ASSERT_EQ(fake.last.pid, cases[i].pid);
                ASSERT_STREQ(fake.last_name, cases[i].name);
                ASSERT_EQ(fake.last.debug, cases[i].debug);
                ASSERT_EQ(fake.last.seconds, cases[i].seconds);
                ASSERT_HEADER(r, "X-Content-Type-Options", "nosniff");
                ASSERT_NO_HEADER(r, "X-Go-Pprof");
                if (cases[i].filename) {
                        snprintf(want, sizeof want, "attachment; filename=\"%s\"", cases[i].filename);
                        ASSERT_HEADER(r, "Content-Type", "application/octet-stream");
                        ASSERT_HEADER(r, "Content-Disposition", want);
                } else {
                        ASSERT_HEADER(r, "Content-Type", "text/plain; charset=utf-8");
                        ASSERT_NO_HEADER(r, "Content-Disposition");
                }
                snprintf(want, sizeof want, "%s debug=%d seconds=%u\n", cases[i].name, cases[i].debug,
                         cases[i].seconds);
                assert_body(r, want, strlen(want));
                snprintf(want, sizeof want, "%zu", strlen(want));
                ASSERT_HEADER(r, "Content-Length", want);
                response_free(r);
        }
        tiny_current = "profile_success_headers";
        ASSERT_EQ(http_server_pending(fake.server), 0);
        stop();
}

TEST(profile_answered_synchronously_by_backend) {
        start();
        fake.delay_ms = -1;             /* request_finish() inside Backend.profile() */
        Response *r = get("/debug/pprof/goroutine?debug=1");
        ASSERT_EQ(r->status, 200);
        assert_body(r, "goroutine debug=1 seconds=0\n", 28);
        ASSERT_EQ(http_server_pending(fake.server), 0);
        response_free(r);
        stop();
}

TEST(head_has_headers_no_body) {
        start();
        Response *r = request("HEAD", "/debug/pprof/goroutine?debug=1", NULL, 0);
        ASSERT_EQ(r->status, 200);
        ASSERT_HEADER(r, "Content-Type", "text/plain; charset=utf-8");
        ASSERT_HEADER(r, "Content-Length", "28");
        ASSERT_EQ(r->body_len, 0);
        response_free(r);

        r = request("HEAD", "/debug/pprof/goroutine", NULL, 0);
        ASSERT_EQ(r->status, 200);
        ASSERT_HEADER(r, "Content-Disposition", "attachment; filename=\"goroutine\"");
        ASSERT_EQ(r->body_len, 0);
        response_free(r);

        r = request("HEAD", "/debug/pprof/symbol", NULL, 0);
        ASSERT_EQ(r->status, 200);
        ASSERT_HEADER(r, "Content-Length", "15");
        ASSERT_EQ(r->body_len, 0);
        response_free(r);

        r = request("HEAD", "/debug/pprof/goroutine?debug=3", NULL, 0);
        ASSERT_EQ(r->status, 400);
        ASSERT_HEADER(r, "X-Go-Pprof", "1");
        ASSERT_EQ(r->body_len, 0);
        response_free(r);
        stop();
}

TEST(cmdline_metrics_redirect) {
        start();
        Response *r = get("/debug/pprof/cmdline");
        ASSERT_EQ(r->status, 200);
        ASSERT_HEADER(r, "Content-Type", "text/plain; charset=utf-8");
        ASSERT_HEADER(r, "X-Content-Type-Options", "nosniff");
        assert_body(r, "fake\0--x", 8);
        response_free(r);

        /* Parameters are ignored there, as in Go, even hostile ones. */
        r = get("/debug/pprof/cmdline?debug=abc&debug=2&x=%zz");
        ASSERT_EQ(r->status, 200);
        response_free(r);

        r = get("/metrics");
        ASSERT_EQ(r->status, 200);
        ASSERT_HEADER(r, "Content-Type", "text/plain; version=0.0.4; charset=utf-8");
        assert_body(r, "fake_pending 0\n", 15);
        response_free(r);

        r = get("/debug/pprof?debug=1");
        ASSERT_EQ(r->status, 301);
        ASSERT_HEADER(r, "Location", "/debug/pprof/?debug=1");
        ASSERT_HEADER(r, "X-Content-Type-Options", "nosniff");
        ASSERT_NO_HEADER(r, "X-Go-Pprof");
        response_free(r);

        r = get("/pid/100/debug/pprof");
        ASSERT_EQ(r->status, 301);
        ASSERT_HEADER(r, "Location", "/pid/100/debug/pprof/");
        response_free(r);
        stop();
}

/* ---- the index ---- */

TEST(index_one_target) {
        static const char want[] =
                "<html>\n"
                "<head>\n"
                "<title>/debug/pprof/</title>\n"
                "<style>\n"
                ".profile-name{\n"
                "\tdisplay:inline-block;\n"
                "\twidth:6rem;\n"
                "}\n"
                "</style>\n"
                "</head>\n"
                "<body>\n"
                "/debug/pprof/<br>\n"
                "pid 100 (fake&lt;main&gt;): 11 threads<br>\n"
                "<br>\n"
                "Types of profiles available:\n"
                "<table>\n"
                "<thead><td>Count</td><td>Profile</td></thead>\n"
                "<tr><td>3</td><td><a href='allocs?debug=1'>allocs</a></td></tr>\n"
                "<tr><td>0</td><td><a href='cmdline?debug=1'>cmdline</a></td></tr>\n"
                "<tr><td>11</td><td><a href='goroutine?debug=1'>goroutine</a></td></tr>\n"
                "<tr><td>?</td><td><a href='heap?debug=1'>heap</a></td></tr>\n"
                "<tr><td>7</td><td><a href='nodelta?debug=1'>nodelta</a></td></tr>\n"
                "</table>\n"
                "<a href=\"goroutine?debug=2\">full goroutine stack dump</a>\n"
                "<br>\n"
                "<p>\n"
                "Profile Descriptions:\n"
                "<ul>\n"
                "<li><div class=profile-name>allocs: </div> Past allocations: the count is the number of allocation sites</li>\n"
                "<li><div class=profile-name>cmdline: </div> The command line invocation of the target (count: always 0)</li>\n"
                "<li><div class=profile-name>goroutine: </div> Threads of the target: the count is the number of threads</li>\n"
                "<li><div class=profile-name>heap: </div> Live objects: the count is the number of allocation sites</li>\n"
                "<li><div class=profile-name>nodelta: </div> A profile without deltas: the count is 7</li>\n"
                "</ul>\n"
                "</p>\n"
                "</body>\n"
                "</html>\n";

        start();
        Response *r = get("/debug/pprof/");
        ASSERT_EQ(r->status, 200);
        ASSERT_HEADER(r, "Content-Type", "text/html; charset=utf-8");
        ASSERT_HEADER(r, "X-Content-Type-Options", "nosniff");
        assert_body(r, want, strlen(want));
        response_free(r);

        /* The index ignores its query, as Go's does. */
        r = get("/debug/pprof/?debug=abc&debug=1");
        ASSERT_EQ(r->status, 200);
        response_free(r);
        stop();
}

TEST(index_several_targets) {
        start();
        fake.targets[1] = (TargetSummary) { .pid = 200, .comm = "other", .threads = 4, .growth = 3,
                                            .growth_window_ns = 300 * UINT64_C(1000000000) };
        fake.targets[2] = (TargetSummary) { .pid = 300, .comm = "gone", .threads = 9, .exited = true };
        fake.n_targets = 3;

        Response *r = get("/pid/200/debug/pprof/");
        ASSERT_EQ(r->status, 200);
        ASSERT_CONTAINS(r->body, "<title>/pid/200/debug/pprof/</title>\n");
        ASSERT_CONTAINS(r->body, "/pid/200/debug/pprof/<br>\npid 200 (other): 4 threads, +3 in 5m<br>\n");
        ASSERT_CONTAINS(r->body, "<tr><td>4</td><td><a href='goroutine?debug=1'>goroutine</a></td></tr>\n");
        ASSERT_CONTAINS(r->body,
                        "<p>\n"
                        "Targets:\n"
                        "<table>\n"
                        "<thead><td>Threads</td><td>Target</td><td>Over the history</td></thead>\n"
                        "<tr><td>11</td><td><a href='/pid/100/debug/pprof/'>pid 100 (fake&lt;main&gt;)</a> (default)</td>"
                        "<td>11 threads</td></tr>\n"
                        "<tr><td>4</td><td><a href='/pid/200/debug/pprof/'>pid 200 (other)</a></td>"
                        "<td>4 threads, +3 in 5m</td></tr>\n"
                        "<tr><td>?</td><td><a href='/pid/300/debug/pprof/'>pid 300 (gone)</a> (exited)</td>"
                        "<td>exited</td></tr>\n"
                        "</table>\n"
                        "</p>\n"
                        "</body>\n");
        response_free(r);

        r = get("/debug/pprof/");
        ASSERT_EQ(r->status, 200);
        ASSERT_CONTAINS(r->body, "Targets:\n");
        response_free(r);
        stop();
}

TEST(index_without_goroutine) {
        static const ProfileInfo only_heap[] = {
                { .name = "heap", .description = "Heap: the count is the number of sites", .supports_delta = true },
        };
        Backend b = fake_backend();

        b.profiles = only_heap;
        b.n_profiles = ARRAY_SIZE(only_heap);
        b.profile_count = NULL;
        start_with(&b, MAX_PENDING);
        Response *r = get("/debug/pprof/");
        ASSERT_EQ(r->status, 200);
        ASSERT_CONTAINS(r->body,
                        "<tr><td>0</td><td><a href='cmdline?debug=1'>cmdline</a></td></tr>\n"
                        "<tr><td>?</td><td><a href='heap?debug=1'>heap</a></td></tr>\n"
                        "</table>\n"
                        "<br>\n");
        ASSERT_FALSE(strstr(r->body, "full goroutine stack dump"));
        ASSERT_FALSE(strstr(r->body, "Targets:"));
        response_free(r);

        r = get("/debug/pprof/goroutine?debug=1");
        assert_error(r, 404, "Unknown profile");
        response_free(r);
        stop();
}

/* ---- /symbol ---- */

TEST(symbol_get_post_empty) {
        static const char want[] = "num_symbols: 1\n0x10 fn_10\n0x20 fn_20\n";
        Response *r;

        start();
        r = get("/debug/pprof/symbol?0x10+0x20+junk+0+0x100000");
        ASSERT_EQ(r->status, 200);
        ASSERT_HEADER(r, "Content-Type", "text/plain; charset=utf-8");
        ASSERT_HEADER(r, "X-Content-Type-Options", "nosniff");
        ASSERT_NO_HEADER(r, "X-Go-Pprof");
        assert_body(r, want, strlen(want));
        ASSERT_EQ(fake.symbol_calls, 1);
        ASSERT_EQ(fake.last_symbol_n, 3);       /* 0x10, 0x20, 0x100000 */
        ASSERT_EQ(fake.last_symbol_pid, 100);
        response_free(r);

        r = request("POST", "/debug/pprof/symbol", "0x10+0x20", 9);
        ASSERT_EQ(r->status, 200);
        assert_body(r, want, strlen(want));
        ASSERT_EQ(fake.symbol_calls, 2);
        response_free(r);

        /* POST reads the body, not the query. */
        r = request("POST", "/pid/100/debug/pprof/symbol?0x30", "0x10+0x20", 9);
        ASSERT_EQ(r->status, 200);
        assert_body(r, want, strlen(want));
        response_free(r);

        /* pprof's probe: no words, no backend call, just the first line. */
        static const char *empty[] = { "/debug/pprof/symbol", "/debug/pprof/symbol?", "/debug/pprof/symbol?junk+0",
                                       "/pid/100/debug/pprof/symbol" };
        for (size_t i = 0; i < ARRAY_SIZE(empty); i++) {
                r = get(empty[i]);
                ASSERT_EQ(r->status, 200);
                ASSERT_HEADER(r, "Content-Type", "text/plain; charset=utf-8");
                assert_body(r, "num_symbols: 1\n", 15);
                response_free(r);
        }
        r = request("POST", "/debug/pprof/symbol", "", 0);
        ASSERT_EQ(r->status, 200);
        assert_body(r, "num_symbols: 1\n", 15);
        response_free(r);
        ASSERT_EQ(fake.symbol_calls, 3);

        /* Addresses that resolve to nothing: just the first line, from the backend. */
        r = get("/debug/pprof/symbol?0x5000+0x6000");
        ASSERT_EQ(r->status, 200);
        assert_body(r, "num_symbols: 1\n", 15);
        ASSERT_EQ(fake.symbol_calls, 4);
        response_free(r);

        /* Octal, decimal and binary, as Go's ParseUint(word, 0, 64). */
        r = get("/debug/pprof/symbol?16+020+0b10000+0o20");
        ASSERT_EQ(r->status, 200);
        assert_body(r, "num_symbols: 1\n0x10 fn_10\n0x10 fn_10\n0x10 fn_10\n0x10 fn_10\n", 15 + 4 * 11);
        response_free(r);
        ASSERT_EQ(http_server_pending(fake.server), 0);
        stop();
}

/* ---- the loop never waits for a profile ---- */

TEST(index_and_metrics_answer_while_profile_pending) {
        start();
        fake.delay_ms = 300;
        int64_t t0 = now_ms();
        int slow = send_request("GET", "/debug/pprof/goroutine?debug=1", NULL, 0);
        ASSERT_TRUE(pump_until(&fake.profile_calls, 1, 1000));

        Response *r = get("/debug/pprof/");
        ASSERT_EQ(r->status, 200);
        ASSERT_LT(r->ms, 150);
        response_free(r);
        r = get("/metrics");
        ASSERT_EQ(r->status, 200);
        assert_body(r, "fake_pending 1\n", 15);
        ASSERT_LT(r->ms, 150);
        response_free(r);
        r = get("/debug/pprof/goroutine?debug=7");     /* errors too */
        ASSERT_EQ(r->status, 400);
        ASSERT_LT(r->ms, 150);
        response_free(r);
        ASSERT_EQ(fake.finished, 0);

        Response slow_r = {};
        read_response(slow, &slow_r, 3000);
        ASSERT_EQ(slow_r.status, 200);
        assert_body(&slow_r, "goroutine debug=1 seconds=0\n", 28);
        ASSERT_GE(now_ms() - t0, 290);
        buf_done(&slow_r.raw);
        ASSERT_EQ(http_server_pending(fake.server), 0);
        ASSERT_EQ(fake.cancels, 0);
        stop();
}

/* ---- disconnects ---- */

static void disconnect_case(bool reset, CancelMode mode) {
        start();
        fake.delay_ms = mode == CANCEL_FINISHES ? 5000 : 400;
        fake.cancel_mode = mode;
        int fd = send_request("GET", "/debug/pprof/goroutine?seconds=30", NULL, 0);
        ASSERT_TRUE(pump_until(&fake.profile_calls, 1, 1000));
        ASSERT_EQ(http_server_pending(fake.server), 1);

        if (reset) {
                struct linger l = { .l_onoff = 1, .l_linger = 0 };
                ASSERT_EQ(setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l), 0);
        }
        int64_t t0 = now_ms();
        close(fd);
        ASSERT_TRUE(pump_until(&fake.cancels, 1, 1000));
        ASSERT_LT(fake.cancel_at - t0, 200);
        ASSERT_TRUE(fake.cancelled_flag_seen);
        if (mode == CANCEL_FINISHES) {
                ASSERT_EQ(http_server_pending(fake.server), 0);
                ASSERT_EQ(fake.finished, 0);
        } else {
                /* Still due: the backend finishes later, into the void. */
                ASSERT_EQ(http_server_pending(fake.server), 1);
                ASSERT_TRUE(pump_until_pending(0, 2000));
                ASSERT_EQ(fake.finished, 1);
        }
        ASSERT_EQ(fake.cancels, 1);

        /* The server is fine afterwards. */
        Response *r = get("/debug/pprof/");
        ASSERT_EQ(r->status, 200);
        response_free(r);
        stop();
}

TEST(disconnect_cancels_promptly) {
        disconnect_case(false, CANCEL_FINISHES);
}

TEST(reset_cancels_promptly) {
        disconnect_case(true, CANCEL_FINISHES);
}

TEST(finish_after_disconnect_is_dropped) {
        disconnect_case(false, CANCEL_RECORDS);
        disconnect_case(true, CANCEL_RECORDS);
}

TEST(disconnect_symbol) {
        start();
        int fd = send_request("GET", "/debug/pprof/symbol?0x10", NULL, 0);
        ASSERT_TRUE(pump_until(&fake.symbol_calls, 1, 1000));
        close(fd);
        ASSERT_TRUE(pump_until(&fake.cancels, 1, 1000));
        ASSERT_TRUE(pump_until_pending(0, 1000));
        stop();
}

TEST(pipelined_requests) {
        static const char two[] = "GET /debug/pprof/goroutine?debug=1 HTTP/1.1\r\nHost: t\r\n\r\n"
                                  "GET /debug/pprof/heap?debug=2 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";

        /* Both answered in order: the watcher never eats the second request. */
        start();
        fake.delay_ms = 100;
        int fd = client_connect();
        client_send(fd, two, strlen(two));
        Response r = {};
        read_response(fd, &r, 3000);
        ASSERT_EQ(r.status, 200);
        ASSERT_CONTAINS(r.raw.data, "goroutine debug=1 seconds=0\n");
        ASSERT_CONTAINS(r.raw.data, "heap debug=2 seconds=0\n");
        ASSERT_TRUE(strstr(r.raw.data, "goroutine debug=1") < strstr(r.raw.data, "heap debug=2"));
        ASSERT_EQ(fake.cancels, 0);
        buf_done(&r.raw);
        stop();

        /* And a client that pipelines then hangs up is still noticed (EV_CLOSED). */
        start();
        fake.delay_ms = 5000;
        fd = client_connect();
        client_send(fd, two, strlen(two));
        ASSERT_TRUE(pump_until(&fake.profile_calls, 1, 1000));
        for (int i = 0; i < 20; i++) {                  /* let the watcher see the data */
                pump();
                (void) poll(NULL, 0, 1);
        }
        close(fd);
        if (event_base_get_features(fake.base) & EV_FEATURE_EARLY_CLOSE) {
                ASSERT_TRUE(pump_until(&fake.cancels, 1, 1000));
                ASSERT_EQ(http_server_pending(fake.server), 0);
        }
        ASSERT_EQ(fake.profile_calls, 1);               /* the second never started */
        stop();
}

/* ---- limits ---- */

TEST(max_pending_gets_503) {
        int fds[MAX_PENDING];

        start();
        fake.delay_ms = 5000;
        for (int i = 0; i < MAX_PENDING; i++) {
                fds[i] = send_request("GET", i % 2 ? "/debug/pprof/heap" : "/debug/pprof/goroutine?debug=2", NULL, 0);
                ASSERT_TRUE(pump_until_pending((unsigned) i + 1, 1000));
        }
        Response *r = get("/debug/pprof/goroutine?debug=1");
        assert_error(r, 503, "too many requests in progress");
        ASSERT_LT(r->ms, 150);
        response_free(r);
        r = get("/debug/pprof/symbol?0x10");
        assert_error(r, 503, "too many requests in progress");
        response_free(r);
        /* Synchronous routes are not limited. */
        r = get("/debug/pprof/");
        ASSERT_EQ(r->status, 200);
        response_free(r);
        r = get("/debug/pprof/symbol");
        ASSERT_EQ(r->status, 200);
        response_free(r);
        ASSERT_EQ(fake.profile_calls, MAX_PENDING);

        close(fds[0]);
        ASSERT_TRUE(pump_until_pending(MAX_PENDING - 1, 1000));
        fake.delay_ms = 10;
        r = get("/debug/pprof/goroutine?debug=1");     /* room again */
        ASSERT_EQ(r->status, 200);
        response_free(r);
        for (int i = 1; i < MAX_PENDING; i++)
                close(fds[i]);
        ASSERT_TRUE(pump_until_pending(0, 1000));
        ASSERT_EQ(fake.cancels, MAX_PENDING);
        stop();
}

TEST(free_server_with_requests_pending) {
        start();
        fake.delay_ms = 5000;
        int a = send_request("GET", "/debug/pprof/goroutine?debug=1", NULL, 0);
        int b = send_request("GET", "/debug/pprof/symbol?0x10", NULL, 0);
        ASSERT_TRUE(pump_until_pending(2, 1000));
        fake.server = http_server_free(fake.server);    /* cancel callbacks run, finish after */
        ASSERT_EQ(fake.cancels, 2);

        /* The clients see the connection closed without a reply. */
        char c;
        ASSERT_EQ(recv(a, &c, 1, 0), 0);
        ASSERT_EQ(recv(b, &c, 1, 0), 0);
        close(a);
        close(b);
        stop();
}

TEST(server_free_with_backend_finishing_later) {
        start();
        fake.delay_ms = 200;
        fake.cancel_mode = CANCEL_RECORDS;
        int a = send_request("GET", "/debug/pprof/heap?seconds=2", NULL, 0);
        ASSERT_TRUE(pump_until_pending(1, 1000));
        fake.server = http_server_free(fake.server);
        ASSERT_EQ(fake.cancels, 1);
        ASSERT_TRUE(pump_until(&fake.finished, 1, 2000));   /* request_finish() after the server */
        close(a);
        stop();
}

/* ---- access and limits ---- */

static void start_limits(const HttpLimits *limits) {
        Backend b = fake_backend();

        start_server(&b, limits);
}

static Response *get_with(const char *target, const char *extra_header) {
        int fd = client_connect();
        Buf b = {};
        Response *resp = calloc(1, sizeof *resp);

        ASSERT_TRUE(resp);
        buf_printf(&b, "GET %s HTTP/1.1\r\nHost: test\r\nConnection: close\r\n%s%s\r\n", target,
                   extra_header ? extra_header : "", extra_header ? "\r\n" : "");
        client_send(fd, b.data, b.len);
        buf_done(&b);
        read_response(fd, resp, 5000);
        return resp;
}

TEST(token_on_every_route) {
        static const char *const paths[] = {
                "/debug/pprof/", "/debug/pprof", "/debug/pprof/goroutine?debug=1", "/debug/pprof/heap",
                "/debug/pprof/symbol?0x10", "/debug/pprof/cmdline", "/debug/pprof/nosuch", "/pid/100/debug/pprof/",
                "/metrics", "/nothing", "/debug/pprof/../x",
        };
        static const char *const wrong[] = {
                NULL, "Authorization: Bearer s3cret!", "Authorization: Bearer s3cre", "Authorization: Bearer",
                "Authorization: Basic s3cret", "Authorization: s3cret",
                "Authorization: Bearer s3cret\r\nAuthorization: Bearer s3cret",        /* twice: ambiguous */
        };
        start();
        ASSERT_EQ(http_server_set_token(fake.server, ""), -EINVAL);
        ASSERT_EQ(http_server_set_token(fake.server, "has space"), -EINVAL);
        ASSERT_EQ(http_server_set_token(fake.server, "s3cret"), 0);
        for (size_t i = 0; i < ARRAY_SIZE(paths); i++)
                for (size_t k = 0; k < ARRAY_SIZE(wrong); k++) {
                        Response *r = get_with(paths[i], wrong[k]);
                        assert_error(r, 401, "unauthorized: send Authorization: Bearer with the token");
                        ASSERT_HEADER(r, "WWW-Authenticate", "Bearer realm=\"cprofd\"");
                        response_free(r);
                }
        ASSERT_EQ(fake.profile_calls + fake.symbol_calls, 0);

        Response *r = get_with("/debug/pprof/goroutine?debug=1", "Authorization: Bearer s3cret");
        ASSERT_EQ(r->status, 200);
        response_free(r);
        r = get_with("/metrics", "authorization: BEARER   s3cret");
        ASSERT_EQ(r->status, 200);
        response_free(r);
        r = get_with("/nothing", "Authorization: Bearer s3cret");
        ASSERT_EQ(r->status, 404);              /* past the token, routed as ever */
        response_free(r);

        ASSERT_EQ(http_server_set_token(fake.server, NULL), 0);
        r = get("/debug/pprof/cmdline");
        ASSERT_EQ(r->status, 200);
        response_free(r);
        stop();
}

TEST(listen_is_local) {
        static const struct {
                const char *listen;
                int ret;
        } cases[] = {
                { "127.0.0.1:6060", 1 }, { "127.1.2.3:0", 1 }, { "localhost:80", 1 }, { "[::1]:6060", 1 },
                { "[::ffff:127.0.0.1]:1", 1 }, { "unix:/run/cprofd.sock", 1 }, { "0.0.0.0:6060", 0 },
                { "192.168.1.2:6060", 0 }, { "[::]:6060", 0 }, { "[fe80::1]:1", 0 }, { "[::ffff:10.0.0.1]:1", 0 },
                { "128.0.0.1:1", 0 }, { "unix:relative", -EINVAL }, { "example.com:80", -EINVAL },
                { "127.0.0.1", -EINVAL }, { NULL, -EINVAL },
        };
        for (size_t i = 0; i < ARRAY_SIZE(cases); i++)
                if (http_listen_is_local(cases[i].listen) != cases[i].ret)
                        TINY_FAIL("%s: %d, want %d", cases[i].listen ? cases[i].listen : "(null)",
                                  http_listen_is_local(cases[i].listen), cases[i].ret);
}

static void fake_window_profile(void *userdata, Request *req, const WindowProfileRequest *p) {
        Job *j = calloc(1, sizeof *j);

        ASSERT_TRUE(j);
        fake.profile_calls++;
        *j = (Job) { .req = req, .seconds = p->seconds };
        snprintf(j->name, sizeof j->name, "profile");
        job_start(j);
}

TEST(max_profiles_gets_503) {
        HttpLimits limits = { .max_pending = 8, .max_profiles = 1 };
        static const ProfileInfo window_profiles[] = {
                { .name = "goroutine", .description = "Threads" },
                { .name = "profile", .description = "CPU", .kind = PROFILE_WINDOW, .hz_default = 100, .hz_max = 1000 },
                { .name = "wall", .description = "Wall", .kind = PROFILE_WINDOW, .hz_default = 10, .hz_max = 100 },
        };
        Backend b = fake_backend();
        b.profiles = window_profiles;
        b.n_profiles = ARRAY_SIZE(window_profiles);
        b.window_profile = fake_window_profile;

        memset(&fake, 0, sizeof fake);
        fake.delay_ms = 300;
        fake.targets[0] = (TargetSummary) { .pid = 100, .comm = "fake", .threads = 1 };
        fake.n_targets = 1;
        fake.base = event_base_new();
        ASSERT_EQ(http_server_new(fake.base, "127.0.0.1:0", 0600, &b, &limits, &fake.server), 0);

        int first = send_request("GET", "/debug/pprof/profile?seconds=1", NULL, 0);
        ASSERT_TRUE(pump_until_pending(1, 5000));
        Response *r = get("/debug/pprof/wall?seconds=1");
        assert_error(r, 503, "too many profiles in progress");
        response_free(r);
        r = get("/debug/pprof/profile?seconds=1");
        assert_error(r, 503, "too many profiles in progress");
        response_free(r);
        r = get("/debug/pprof/goroutine?debug=1");       /* other requests are not held back */
        ASSERT_EQ(r->status, 200);
        response_free(r);

        Response done = {};
        read_response(first, &done, 5000);
        ASSERT_EQ(done.status, 200);
        buf_done(&done.raw);
        r = get("/debug/pprof/wall?seconds=1");
        ASSERT_EQ(r->status, 200);
        response_free(r);
        ASSERT_EQ(http_server_pending(fake.server), 0);
        stop();
}

/* True once the server closed FD (end of file or reset), pumping meanwhile. */
static bool closed_within(int fd, int timeout_ms) {
        int64_t end = now_ms() + timeout_ms;
        char c;
        while (now_ms() < end) {
                pump();
                ssize_t n = recv(fd, &c, 1, MSG_DONTWAIT);
                if (n == 0 || (n < 0 && errno != EAGAIN && errno != ENOTCONN))
                        return true;
                (void) poll(NULL, 0, 2);
        }
        return false;
}

TEST(connection_cap_and_request_deadline) {
        HttpLimits limits = { .max_connections = 2, .header_timeout_sec = 1 };

        start_limits(&limits);
        int64_t t0 = now_ms();                  /* before the deadline can start */
        int a = client_connect(), b = client_connect();
        while (http_server_connections(fake.server) < 2)
                pump();
        int c = client_connect();
        ASSERT_TRUE(closed_within(c, 2000));            /* the third: closed at once */
        ASSERT_EQ(http_server_connections(fake.server), 2);
        close(c);

        /* A slow sender: a byte of its request now and then, never done. */
        client_send(a, "GET /debug/pprof/ HT", 20);
        bool closed = false;
        for (int i = 0; i < 40 && !closed; i++) {
                client_send(a, "X", 1);
                closed = closed_within(a, 100);
        }
        int64_t took = now_ms() - t0;
        ASSERT_TRUE(closed);
        /* Not before the deadline (libevent's coarse clock may run a few ms early). */
        ASSERT_GE(took, 950);
        ASSERT_TRUE(closed_within(b, 3000));            /* an idle one goes too */
        ASSERT_EQ(http_server_connections(fake.server), 0);
        close(a);
        close(b);

        /* A request delivered in time is answered, and its connection counted down. */
        Response *r = get("/debug/pprof/");
        ASSERT_EQ(r->status, 200);
        response_free(r);
        for (int i = 0; i < 100 && http_server_connections(fake.server) > 0; i++) {
                pump();
                (void) poll(NULL, 0, 2);
        }
        ASSERT_EQ(http_server_connections(fake.server), 0);
        stop();
}

TEST(unix_socket) {
        char dir[] = "/tmp/cprofd-test-http-XXXXXX", path[128], listen[160];
        Backend b = fake_backend();
        struct stat st;

        ASSERT_TRUE(mkdtemp(dir));
        snprintf(path, sizeof path, "%s/s.sock", dir);
        snprintf(listen, sizeof listen, "unix:%s", path);
        memset(&fake, 0, sizeof fake);
        fake.base = event_base_new();
        ASSERT_EQ(http_server_new(fake.base, listen, 0640, &b, NULL, &fake.server), 0);
        ASSERT_STREQ(http_server_address(fake.server), listen);
        ASSERT_EQ(lstat(path, &st), 0);
        ASSERT_TRUE(S_ISSOCK(st.st_mode));
        ASSERT_EQ(st.st_mode & 07777, 0640);
        HttpServer *other = NULL;
        ASSERT_EQ(http_server_new(fake.base, listen, 0600, &b, NULL, &other), -EADDRINUSE);
        fake.server = http_server_free(fake.server);
        ASSERT_EQ(lstat(path, &st), -1);                /* removed */

        /* A stale socket is replaced. */
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        strcpy(sa.sun_path, path);
        ASSERT_EQ(bind(fd, (struct sockaddr *) &sa, sizeof sa), 0);
        close(fd);
        ASSERT_EQ(http_server_new(fake.base, listen, 0600, &b, NULL, &fake.server), 0);
        fake.server = http_server_free(fake.server);

        /* Anything else is not. */
        fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        ASSERT_GE(fd, 0);
        close(fd);
        ASSERT_EQ(http_server_new(fake.base, listen, 0600, &b, NULL, &fake.server), -EEXIST);
        ASSERT_EQ(lstat(path, &st), 0);
        ASSERT_TRUE(S_ISREG(st.st_mode));
        ASSERT_EQ(unlink(path), 0);
        ASSERT_EQ(http_server_new(fake.base, "unix:relative", 0600, &b, NULL, &fake.server), -EINVAL);
        ASSERT_EQ(rmdir(dir), 0);
        event_base_free(fake.base);
        fake.base = NULL;
}

int main(int argc, char **argv) { return tiny_main(argc, argv); }
