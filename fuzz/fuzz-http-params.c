/* fuzz/fuzz-http-params.c -- libFuzzer target: the strict parsers of http/params.c, on
 * anything a client can send.
 *
 * Every input goes to every parser: as a query string (params_parse, then each value
 * through the parser its parameter has: seconds=, debug=, hz=), as a raw path
 * (path_decode_strict), as a /pid/N component and a --listen address, as a /symbol body
 * (parse_symbol_words, on a buffer without a terminating NUL, as evhttp hands a body
 * over) and through quote_for_message with small output buffers. The buffers a parser is
 * given are heap blocks of their exact size, so an overread or an overflow by one byte is
 * ASan's to see. Besides "no crash, no leak": a decoded path is in normal form, a parsed
 * query holds no duplicate key, and numbers stay in their documented ranges. */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http-internal.h"

static char *copy(const uint8_t *data, size_t size, bool nul) {
        char *s = malloc(size + (nul ? 1 : 0) + (size == 0 && !nul));
        if (!s)
                abort();
        memcpy(s, data, size);
        if (nul)
                s[size] = 0;
        return s;
}

static void check_value_parsers(const char *v) {
        uint64_t u;
        unsigned hz;
        int debug;

        if (parse_seconds(v, &u) == 0 && (u == 0 || u > 9999999999u))
                abort();
        u = parse_cpu_seconds(v, 30);
        if (u == 0 || u > 9999999999u)
                abort();
        if (parse_hz(v, 100, 1000, &hz) == 0 && (hz == 0 || hz > 1000))
                abort();
        if (http_parse_debug(v, &debug) == 0 && (debug < 0 || debug > HTTP_DEBUG_MAX))
                abort();
}

static void fuzz_query(const char *s) {
        char err[128];
        Params p;

        err[0] = 0;
        if (params_parse(s, &p, err, sizeof err) < 0) {
                if (!err[0] || p.n != 0)
                        abort();        /* a message, and nothing left allocated */
                return;
        }
        if (p.n > PARAMS_MAX)
                abort();
        for (size_t i = 0; i < p.n; i++) {
                for (size_t j = 0; j < i; j++)
                        if (strcmp(p.items[i].key, p.items[j].key) == 0)
                                abort();
                if (params_get(&p, p.items[i].key) != p.items[i].value)
                        abort();
                check_value_parsers(p.items[i].value);
        }
        check_value_parsers(params_get(&p, "seconds"));
        params_done(&p);
}

static void fuzz_path(const char *s) {
        char *path = path_decode_strict(s);
        if (!path)
                return;
        if (path[0] != '/' || strstr(path, "//") || strstr(path, "/./") || strstr(path, "/../"))
                abort();
        size_t n = strlen(path);
        if ((n >= 2 && strcmp(path + n - 2, "/.") == 0) || (n >= 3 && strcmp(path + n - 3, "/..") == 0))
                abort();
        free(path);
}

static void fuzz_listen(const char *s) {
        char *host = malloc(INET6_ADDRSTRLEN);
        uint16_t port;
        if (!host)
                abort();
        if (parse_listen(s, host, INET6_ADDRSTRLEN, &port) == 0 &&
            strnlen(host, INET6_ADDRSTRLEN) == INET6_ADDRSTRLEN)
                abort();
        free(host);

        host = malloc(8);       /* too small for most: must be refused, not overflowed */
        if (!host)
                abort();
        (void) parse_listen(s, host, 8, &port);
        free(host);
}

static void fuzz_quote(const uint8_t *data, size_t size) {
        static const size_t sizes[] = { 1, 8, 9, 10, 13, 64 };
        for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
                char *buf = malloc(sizes[i]);
                if (!buf)
                        abort();
                quote_for_message((const char *) data, size, buf, sizes[i]);
                if (strnlen(buf, sizes[i]) == sizes[i])
                        abort();
                for (const char *c = buf; *c; c++)
                        if (*c < 0x20 || *c >= 0x7f)
                                abort();
                free(buf);
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        char *s = copy(data, size, true);
        fuzz_query(s);
        fuzz_path(s);
        fuzz_listen(s);
        free(s);

        /* Bodies and path components come with a length and no NUL. */
        char *raw = copy(data, size, false);
        uint64_t *addrs = NULL;
        size_t n = 0;
        int r = parse_symbol_words(raw, size, &addrs, &n);
        if (r == 0) {
                if (n > SYMBOL_ADDRS_MAX || (n > 0) != (addrs != NULL))
                        abort();
                for (size_t i = 0; i < n; i++)
                        if (addrs[i] == 0)
                                abort();
        } else if (r != -E2BIG && r != -ENOMEM)
                abort();
        free(addrs);

        pid_t pid;
        if (parse_pid(raw, size, &pid) == 0 && (pid <= 0 || pid > 4194304))
                abort();
        free(raw);

        fuzz_quote(data, size);
        return 0;
}
