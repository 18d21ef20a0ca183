/* http/params.c -- strict parsers for everything a client controls: the path, the /pid/N
 * prefix, query parameters, seconds=, debug= and /symbol's address words.
 *
 * Each parser accepts exactly the documented syntax and bounds every length, so hostile
 * input is refused with a 400 before any of it reaches the backend. Where Go's
 * net/http/pprof is lenient on purpose (debug=abc counts as 0, duplicated keys take the
 * first), cprofd refuses instead; where Go skips (a /symbol word that is not a number),
 * so does cprofd, since pprof relies on it. No libevent here: plain text in, values out. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>

#include "http-internal.h"
#include "macro.h"

#define PID_MAX_VALUE 4194304           /* PID_MAX_LIMIT on 64-bit Linux */
#define NUMBER_DIGITS_MAX 10            /* seconds= and debug= */

static bool streq(const char *a, const char *b) {
        return strcmp(a, b) == 0;
}

/* %XX-decodes S[0..LEN) (and '+' to a space when PLUS_IS_SPACE, as Go's QueryUnescape).
 * NULL on a malformed escape or a decoded NUL: nothing downstream expects one. */
static char *percent_decode(const char *s, size_t len, bool plus_is_space) {
        char *out = malloc(len + 1);
        size_t o = 0;

        if (!out)
                return NULL;
        for (size_t i = 0; i < len; i++) {
                char c = s[i];

                if (c == '%') {
                        int hi = i + 2 < len ? hex_digit_value(s[i + 1]) : -1;
                        int lo = i + 2 < len ? hex_digit_value(s[i + 2]) : -1;

                        if (hi < 0 || lo < 0) {
                                free(out);
                                return NULL;
                        }
                        c = (char) (hi << 4 | lo);
                        i += 2;
                } else if (c == '+' && plus_is_space)
                        c = ' ';
                if (c == 0) {
                        free(out);
                        return NULL;
                }
                out[o++] = c;
        }
        out[o] = 0;
        return out;
}

void quote_for_message(const char *s, size_t len, char *buf, size_t size) {
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

char *path_decode_strict(const char *raw) {
        if (!raw || raw[0] != '/')
                return NULL;

        _cleanup_free_ char *path = percent_decode(raw, strlen(raw), false);
        if (!path)
                return NULL;            /* Go's "invalid URL escape", or %00 */

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

int parse_pid(const char *s, size_t len, pid_t *ret) {
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

int parse_listen(const char *listen, char *ret_host, size_t size, uint16_t *ret_port) {
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

/* ---- query parameters ---- */

void params_done(Params *p) {
        for (size_t i = 0; i < p->n; i++) {
                free(p->items[i].key);
                free(p->items[i].value);
        }
        p->n = 0;
}

const char *params_get(const Params *p, const char *key) {
        for (size_t i = 0; i < p->n; i++)
                if (streq(p->items[i].key, key))
                        return p->items[i].value;
        return NULL;
}

int params_parse(const char *raw, Params *ret, char *err, size_t err_size) {
        char q[64];
        int r = 0;

        *ret = (Params) {};
        for (const char *pair = raw ? raw : ""; *pair;) {
                size_t len = strcspn(pair, "&");
                const char *next = pair[len] ? pair + len + 1 : pair + len;

                if (len == 0) {         /* "a=1&&b=2": Go skips empty pairs */
                        pair = next;
                        continue;
                }
                size_t key_len = strcspn(pair, "=");
                if (key_len > len)
                        key_len = len;
                quote_for_message(pair, MIN(key_len, (size_t) 32), q, sizeof q);
                if (len > PARAM_MAX) {
                        snprintf(err, err_size, "parameter \"%s\" too long", q);
                        r = -E2BIG;
                        goto fail;
                }
                if (memchr(pair, ';', len)) {
                        /* Go 1.17+ refuses ';' as a separator rather than guess. */
                        snprintf(err, err_size, "invalid query");
                        r = -EINVAL;
                        goto fail;
                }
                if (ret->n >= PARAMS_MAX) {
                        snprintf(err, err_size, "too many parameters");
                        r = -E2BIG;
                        goto fail;
                }

                Param *p = &ret->items[ret->n];
                p->key = percent_decode(pair, key_len, true);
                p->value = key_len < len ? percent_decode(pair + key_len + 1, len - key_len - 1, true)
                                         : strdup("");
                if (!p->key || !p->value) {
                        free(p->key);
                        free(p->value);
                        *p = (Param) {};
                        snprintf(err, err_size, "invalid query");
                        r = -EINVAL;
                        goto fail;
                }
                ret->n++;
                for (size_t i = 0; i + 1 < ret->n; i++)
                        if (streq(ret->items[i].key, p->key)) {
                                quote_for_message(p->key, strlen(p->key), q, sizeof q);
                                snprintf(err, err_size, "parameter \"%s\" given more than once", q);
                                r = -ENOTUNIQ;
                                goto fail;
                        }
                pair = next;
        }
        return 0;

fail:
        params_done(ret);
        return r;
}

/* 1..NUMBER_DIGITS_MAX decimal digits and nothing else. */
static int parse_decimal(const char *s, uint64_t *ret) {
        size_t n = s ? strlen(s) : 0;
        uint64_t v = 0;

        if (n == 0 || n > NUMBER_DIGITS_MAX)
                return -EINVAL;
        for (size_t i = 0; i < n; i++) {
                if (s[i] < '0' || s[i] > '9')
                        return -EINVAL;
                v = v * 10 + (uint64_t) (s[i] - '0');
        }
        *ret = v;
        return 0;
}

int parse_seconds(const char *value, uint64_t *ret) {
        uint64_t v;

        if (parse_decimal(value, &v) < 0 || v == 0)
                return -EINVAL;
        *ret = v;
        return 0;
}

uint64_t parse_cpu_seconds(const char *value, uint64_t default_seconds) {
        /* strconv.ParseInt(s, 10, 64): an optional sign, then decimal digits. */
        const char *p = value ? value : "";
        bool negative = false;
        uint64_t v;

        if (*p == '+' || *p == '-')
                negative = *p++ == '-';
        if (parse_decimal(p, &v) < 0 || negative || v == 0)
                return default_seconds;
        return v;
}

int parse_hz(const char *value, unsigned default_hz, unsigned max_hz, unsigned *ret) {
        uint64_t v;

        if (!value || !*value) {
                *ret = default_hz;
                return 0;
        }
        if (parse_decimal(value, &v) < 0 || v == 0 || v > max_hz)
                return -EINVAL;
        *ret = (unsigned) v;
        return 0;
}

int http_parse_debug(const char *value, int *ret) {
        /* Go takes strconv.Atoi and ignores the error (debug=abc is 0, debug=-1 a binary
         * profile); a client asking for something else than 0, 1 or 2 gets told instead. */
        uint64_t v = 0;

        if (value && *value && (parse_decimal(value, &v) < 0 || v > HTTP_DEBUG_MAX))
                return -EINVAL;
        *ret = (int) v;
        return 0;
}

/* ---- /symbol ---- */

static int digit_value(char c) {
        int v = hex_digit_value(c);
        return v < 0 ? 99 : v;
}

/* strconv.ParseUint(WORD, 0, 64) == 0 without an error: "0x…"/"0X…" hex, "0b…" binary,
 * "0o…" or "0…" octal, else decimal. Go also allows '_' between digits in base 0; pprof
 * never sends one, so such a word is skipped here. Overflow: Go returns the maximum with an
 * error, which then resolves to nothing; skipping it is the same answer. */
static bool parse_word(const char *w, size_t len, uint64_t *ret) {
        unsigned base = 10;
        uint64_t v = 0;
        size_t i = 0;

        if (len == 0)
                return false;
        if (w[0] == '0' && len > 1) {
                switch (w[1]) {
                case 'x': case 'X': base = 16; i = 2; break;
                case 'b': case 'B': base = 2; i = 2; break;
                case 'o': case 'O': base = 8; i = 2; break;
                default: base = 8; i = 1; break;
                }
                if (i == len)
                        return false;   /* "0x" alone */
        }
        for (; i < len; i++) {
                unsigned d = (unsigned) digit_value(w[i]);
                if (d >= base)
                        return false;
                if (v > (UINT64_MAX - d) / base)
                        return false;
                v = v * base + d;
        }
        *ret = v;
        return true;
}

int parse_symbol_words(const char *data, size_t len, uint64_t **ret, size_t *ret_n) {
        size_t words = 1, n = 0;

        for (size_t i = 0; i < len; i++)
                if (data[i] == '+')
                        words++;
        if (words > SYMBOL_ADDRS_MAX)
                return -E2BIG;

        _cleanup_free_ uint64_t *addrs = NULL;
        for (size_t start = 0; start <= len;) {
                const char *end = memchr(data + start, '+', len - start);
                size_t wlen = end ? (size_t) (end - (data + start)) : len - start;
                uint64_t v;

                if (parse_word(data + start, wlen, &v) && v != 0) {
                        if (!addrs) {
                                addrs = malloc(words * sizeof *addrs);
                                if (!addrs)
                                        return -ENOMEM;
                        }
                        addrs[n++] = v;
                }
                start += wlen + 1;
        }
        *ret = TAKE_PTR(addrs);
        *ret_n = n;
        return 0;
}
