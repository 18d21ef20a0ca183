/* daemon/config-file.c -- see config-file.h.
 *
 * The file is read whole (it is capped), then split into lines; each line is checked
 * (length, NUL, UTF-8) before anything looks at its text, so messages only ever quote
 * valid UTF-8. The first error ends the load; nothing half-parsed reaches the caller. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "config-file.h"
#include "durations.h"
#include "log.h"
#include "macro.h"
#include "snapshot.h"

#define BLANKS " \t\r"
#define QUOTE_MAX 64                    /* bytes of a key or value quoted in a message */
#define READ_CHUNK_MIN 4096

typedef struct Parser {
        const char *path;
        unsigned line;                  /* 0 while the whole file is concerned */
        char *err;
        size_t errlen;
        Config cfg;
} Parser;

typedef enum Key {
        KEY_LISTEN,
        KEY_INTERVAL,
        KEY_HISTORY,
        KEY_MAX_TARGETS,
        KEY_STACK_MAX,
        KEY_LOG_LEVEL,
        KEY_TOKEN_FILE,
        KEY_LISTEN_MODE,
        KEY_ALLOW_REMOTE,
        KEY_MAX_SECONDS,
        KEY_MAX_REQUESTS,
        KEY_MAX_PROFILES,
        KEY_MAX_CONNECTIONS,
        KEY_HEADER_TIMEOUT,
        _KEY_MAX,
} Key;

/* The scalar keys; the selectors are found by selector_kind_from_string(). */
static const struct {
        const char *name;
        size_t line_offset;             /* of the Config field that says it was set */
} keys[_KEY_MAX] = {
        [KEY_LISTEN] = { "listen", offsetof(Config, listen_line) },
        [KEY_INTERVAL] = { "interval", offsetof(Config, interval_line) },
        [KEY_HISTORY] = { "history", 0 },       /* two bounds: see set_history() */
        [KEY_MAX_TARGETS] = { "max-targets", offsetof(Config, max_targets_line) },
        [KEY_STACK_MAX] = { "stack-max", offsetof(Config, stack_max_line) },
        [KEY_LOG_LEVEL] = { "log-level", offsetof(Config, log_level_line) },
        [KEY_TOKEN_FILE] = { "token-file", offsetof(Config, token_file_line) },
        [KEY_LISTEN_MODE] = { "listen-mode", offsetof(Config, listen_mode_line) },
        [KEY_ALLOW_REMOTE] = { "allow-remote", offsetof(Config, allow_remote_line) },
        [KEY_MAX_SECONDS] = { "max-seconds", offsetof(Config, max_seconds_line) },
        [KEY_MAX_REQUESTS] = { "max-requests", offsetof(Config, max_requests_line) },
        [KEY_MAX_PROFILES] = { "max-profiles", offsetof(Config, max_profiles_line) },
        [KEY_MAX_CONNECTIONS] = { "max-connections", offsetof(Config, max_connections_line) },
        [KEY_HEADER_TIMEOUT] = { "header-timeout", offsetof(Config, header_timeout_line) },
};

/* Writes "PATH:LINE: " (or "PATH: ") and the message into the caller's buffer; returns
 * ERROR. errno is kept for a %m in FMT. */
_printf_(3, 4) static int fail(Parser *p, int error, const char *fmt, ...) {
        int saved = errno;
        if (p->errlen == 0)
                return error;
        int n = p->line > 0 ? snprintf(p->err, p->errlen, "%s:%u: ", p->path, p->line)
                            : snprintf(p->err, p->errlen, "%s: ", p->path);
        if (n >= 0 && (size_t) n < p->errlen) {
                va_list ap;
                va_start(ap, fmt);
                errno = saved;
                (void) vsnprintf(p->err + n, p->errlen - (size_t) n, fmt, ap);
                va_end(ap);
        }
        return error;
}

/* S between double quotes for a message: control characters, DEL, '"' and '\' as \xNN (a
 * config line must not be able to write escape sequences to a terminal), cut after
 * QUOTE_MAX bytes at a character boundary (S is valid UTF-8) with "…". Returns BUF. */
static const char *quote(char buf[static 4 * QUOTE_MAX + 8], const char *s) {
        static const char hex[] = "0123456789abcdef";
        size_t n = strlen(s), o = 0, cut = n;
        if (n > QUOTE_MAX) {
                cut = QUOTE_MAX;
                while (cut > 0 && ((unsigned char) s[cut] & 0xc0) == 0x80)
                        cut--;          /* not inside a multi-byte character */
        }
        buf[o++] = '"';
        for (size_t i = 0; i < cut; i++) {
                unsigned char c = (unsigned char) s[i];
                if (c < 0x20 || c == 0x7f || c == '"' || c == '\\') {
                        buf[o++] = '\\';
                        buf[o++] = 'x';
                        buf[o++] = hex[c >> 4];
                        buf[o++] = hex[c & 15];
                } else
                        buf[o++] = (char) c;
        }
        buf[o++] = '"';
        if (cut < n) {
                memcpy(buf + o, "…", strlen("…"));
                o += strlen("…");
        }
        buf[o] = 0;
        return buf;
}

/* RFC 3629: no overlong forms, no surrogates, nothing above U+10FFFF. */
static bool utf8_valid(const unsigned char *s, size_t n) {
        for (size_t i = 0; i < n;) {
                unsigned char c = s[i];
                size_t len;
                uint32_t cp, min;
                if (c < 0x80) {
                        i++;
                        continue;
                } else if ((c & 0xe0) == 0xc0) {
                        len = 2, cp = c & 0x1f, min = 0x80;
                } else if ((c & 0xf0) == 0xe0) {
                        len = 3, cp = c & 0x0f, min = 0x800;
                } else if ((c & 0xf8) == 0xf0) {
                        len = 4, cp = c & 0x07, min = 0x10000;
                } else
                        return false;
                if (n - i < len)
                        return false;
                for (size_t k = 1; k < len; k++) {
                        if ((s[i + k] & 0xc0) != 0x80)
                                return false;
                        cp = cp << 6 | (s[i + k] & 0x3f);
                }
                if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
                        return false;
                i += len;
        }
        return true;
}

/* A strictly decimal number in [min, max]: no sign, no blank, no junk, no overflow. */
static int parse_number(const char *s, unsigned long long min, unsigned long long max, unsigned long long *ret) {
        if (*s < '0' || *s > '9')
                return -EINVAL;
        char *end;
        errno = 0;
        unsigned long long v = strtoull(s, &end, 10);
        if (errno || *end || v < min || v > max)
                return -EINVAL;
        *ret = v;
        return 0;
}

/* systemd's words for a boolean, case-insensitive. */
static int parse_boolean(const char *s) {
        static const char *const yes[] = { "yes", "true", "on", "1" }, *const no[] = { "no", "false", "off", "0" };
        for (size_t i = 0; i < ARRAY_SIZE(yes); i++) {
                if (strcasecmp(s, yes[i]) == 0)
                        return 1;
                if (strcasecmp(s, no[i]) == 0)
                        return 0;
        }
        return -EINVAL;
}

/* "unix:/ABSOLUTE/PATH" that fits sun_path, or HOST:PORT with a non-empty host (an IPv6
 * one in brackets: "::1:6060" would be ambiguous) and a port 0 … 65535. Names are not
 * resolved here: a config file is read before the network may be up, and the server
 * reports what does not bind. */
static bool listen_valid(const char *s) {
        if (strpbrk(s, BLANKS))
                return false;
        if (strncmp(s, "unix:", 5) == 0)
                return s[5] == '/' && strlen(s + 5) < sizeof(((struct sockaddr_un *) NULL)->sun_path);
        const char *colon = strrchr(s, ':');
        unsigned long long port;
        if (!colon || colon == s || parse_number(colon + 1, 0, 65535, &port) < 0)
                return false;
        if (s[0] == '[')
                return colon - s >= 3 && colon[-1] == ']' && !memchr(s + 1, ']', (size_t) (colon - s - 2));
        return !memchr(s, ':', (size_t) (colon - s)) && !memchr(s, '[', (size_t) (colon - s)) &&
               !memchr(s, ']', (size_t) (colon - s));
}

static const char *selector_expected(SelectorKind kind) {
        switch (kind) {
        case SELECTOR_PID:
                return "expected a positive process id";
        case SELECTOR_EXE:
                return "expected an absolute path";
        case SELECTOR_COMM:
                return "expected a name of 1..15 bytes";
        case SELECTOR_CGROUP:
                return "expected an absolute cgroup path without \"..\"";
        case SELECTOR_UNIT:
                return "expected a unit name ending in .service, .scope or .slice";
        default:
                return "invalid selector";
        }
}

static int add_selector(Parser *p, SelectorKind kind, const char *key, const char *value) {
        char q[4 * QUOTE_MAX + 8];
        TargetSelector sel;
        int r;

        if (p->cfg.n_selectors >= CONFIG_SELECTORS_MAX)
                return fail(p, -E2BIG, "too many targets (at most %u)", CONFIG_SELECTORS_MAX);
        r = selector_parse(kind, value, &sel);
        if (r == -ENOMEM)
                return fail(p, r, "out of memory");
        if (r == -ENOTUNIQ)
                return fail(p, r, "invalid %s %s: the unit name matches several cgroups; name one with "
                            "\"cgroup = PATH\"", key, quote(q, value));
        if (r == -ENAMETOOLONG)
                return fail(p, r, "invalid %s %s: path too long", key, quote(q, value));
        if (r < 0)
                return fail(p, r, "invalid %s %s: %s", key, quote(q, value), selector_expected(kind));

        TargetSelector *a = realloc(p->cfg.selectors, (p->cfg.n_selectors + 1) * sizeof *a);
        if (!a) {
                selector_done(&sel);
                return fail(p, -ENOMEM, "out of memory");
        }
        p->cfg.selectors = a;
        a[p->cfg.n_selectors++] = sel;
        return 0;
}

/* history sets one of two bounds; each may be set once. */
static int set_history(Parser *p, const char *value) {
        char q[4 * QUOTE_MAX + 8];
        unsigned snapshots = 0;
        uint64_t bytes = 0;

        if (parse_history(value, &snapshots, &bytes) < 0)
                return fail(p, -EINVAL, "invalid history %s: expected a number of snapshots (1..%u) or a memory "
                            "budget like 64M", quote(q, value), HISTORY_SNAPSHOTS_MAX);
        if (snapshots > 0) {
                if (p->cfg.history_snapshots_line)
                        return fail(p, -EINVAL, "duplicate \"history\" snapshot count (first set on line %u)",
                                    p->cfg.history_snapshots_line);
                p->cfg.history_snapshots = snapshots;
                p->cfg.history_snapshots_line = p->line;
        } else {
                if (p->cfg.history_bytes_line)
                        return fail(p, -EINVAL, "duplicate \"history\" memory budget (first set on line %u)",
                                    p->cfg.history_bytes_line);
                p->cfg.history_bytes = bytes;
                p->cfg.history_bytes_line = p->line;
        }
        return 0;
}

static int set_scalar(Parser *p, Key key, const char *value) {
        char q[4 * QUOTE_MAX + 8];
        unsigned long long v;
        int r;

        if (key == KEY_HISTORY)
                return set_history(p, value);
        const char *name = keys[key].name;
        unsigned *line = (unsigned *) ((char *) &p->cfg + keys[key].line_offset);
        if (*line)
                return fail(p, -EINVAL, "duplicate \"%s\" (first set on line %u)", name, *line);

        switch (key) {
        case KEY_LISTEN:
                if (!listen_valid(value))
                        return fail(p, -EINVAL, "invalid listen %s: expected HOST:PORT or unix:/PATH",
                                    quote(q, value));
                p->cfg.listen = strdup(value);
                if (!p->cfg.listen)
                        return fail(p, -ENOMEM, "out of memory");
                break;
        case KEY_INTERVAL:
                if (parse_duration(value, &p->cfg.interval_ns) < 0 ||
                    (p->cfg.interval_ns > 0 && p->cfg.interval_ns < INTERVAL_MIN_NS))
                        return fail(p, -EINVAL, "invalid interval %s: expected 0 (off) or a duration from 100ms, "
                                    "like 10s or 1m", quote(q, value));
                break;
        case KEY_MAX_TARGETS:
                if (parse_number(value, 1, CONFIG_MAX_TARGETS_MAX, &v) < 0)
                        return fail(p, -EINVAL, "invalid max-targets %s: expected 1..%u", quote(q, value),
                                    CONFIG_MAX_TARGETS_MAX);
                p->cfg.max_targets = (size_t) v;
                break;
        case KEY_STACK_MAX:
                if (parse_number(value, 4096, SNAPSHOT_STACK_MAX_LIMIT, &v) < 0)
                        return fail(p, -EINVAL, "invalid stack-max %s: expected %u..%u bytes", quote(q, value),
                                    4096u, SNAPSHOT_STACK_MAX_LIMIT);
                p->cfg.stack_max = (size_t) v;
                break;
        case KEY_LOG_LEVEL:
                if (log_level_from_string(value, &p->cfg.log_level) < 0)
                        return fail(p, -EINVAL, "invalid log-level %s: expected err, warning, notice, info or debug",
                                    quote(q, value));
                break;
        case KEY_TOKEN_FILE:
                if (value[0] != '/' || strlen(value) >= PATH_MAX)
                        return fail(p, -EINVAL, "invalid token-file %s: expected an absolute path", quote(q, value));
                p->cfg.token_file = strdup(value);
                if (!p->cfg.token_file)
                        return fail(p, -ENOMEM, "out of memory");
                break;
        case KEY_LISTEN_MODE:
                if (parse_mode(value, &p->cfg.listen_mode) < 0)
                        return fail(p, -EINVAL, "invalid listen-mode %s: expected an octal mode like 0660",
                                    quote(q, value));
                break;
        case KEY_ALLOW_REMOTE:
                r = parse_boolean(value);
                if (r < 0)
                        return fail(p, -EINVAL, "invalid allow-remote %s: expected yes or no", quote(q, value));
                p->cfg.allow_remote = r;
                break;
        case KEY_MAX_SECONDS:
                if (parse_number(value, 1, CONFIG_MAX_SECONDS_MAX, &v) < 0)
                        return fail(p, -EINVAL, "invalid max-seconds %s: expected 1..%u", quote(q, value),
                                    CONFIG_MAX_SECONDS_MAX);
                p->cfg.max_seconds = (unsigned) v;
                break;
        case KEY_MAX_REQUESTS:
                if (parse_number(value, 1, CONFIG_MAX_REQUESTS_MAX, &v) < 0)
                        return fail(p, -EINVAL, "invalid max-requests %s: expected 1..%u", quote(q, value),
                                    CONFIG_MAX_REQUESTS_MAX);
                p->cfg.max_requests = (unsigned) v;
                break;
        case KEY_MAX_PROFILES:
                if (parse_number(value, 1, CONFIG_MAX_REQUESTS_MAX, &v) < 0)
                        return fail(p, -EINVAL, "invalid max-profiles %s: expected 1..%u", quote(q, value),
                                    CONFIG_MAX_REQUESTS_MAX);
                p->cfg.max_profiles = (unsigned) v;
                break;
        case KEY_MAX_CONNECTIONS:
                if (parse_number(value, 1, CONFIG_MAX_CONNECTIONS_MAX, &v) < 0)
                        return fail(p, -EINVAL, "invalid max-connections %s: expected 1..%u", quote(q, value),
                                    CONFIG_MAX_CONNECTIONS_MAX);
                p->cfg.max_connections = (unsigned) v;
                break;
        case KEY_HEADER_TIMEOUT: {
                uint64_t ns;
                if (parse_duration(value, &ns) < 0 || ns < NSEC_PER_SEC ||
                    ns > (uint64_t) CONFIG_HEADER_TIMEOUT_MAX_SEC * NSEC_PER_SEC || ns % NSEC_PER_SEC != 0)
                        return fail(p, -EINVAL, "invalid header-timeout %s: expected whole seconds from 1s to 1h, "
                                    "like 10s", quote(q, value));
                p->cfg.header_timeout_sec = (unsigned) (ns / NSEC_PER_SEC);
                break;
        }
        default:
                return fail(p, -EINVAL, "unknown key \"%s\"", name);
        }
        *line = p->line;
        return 0;
}

static char *strip(char *s) {
        s += strspn(s, BLANKS);
        size_t n = strlen(s);
        while (n > 0 && strchr(BLANKS, s[n - 1]))
                s[--n] = 0;
        return s;
}

/* LINE: NUL-terminated, checked for length, NUL bytes and UTF-8 already. */
static int parse_line(Parser *p, char *line) {
        char q[4 * QUOTE_MAX + 8];
        char *s = line + strspn(line, BLANKS);
        if (!*s || *s == '#')
                return 0;

        char *eq = strchr(s, '=');
        if (!eq)
                return fail(p, -EINVAL, "missing '=' (expected \"key = value\")");
        *eq = 0;
        const char *key = strip(s), *value = strip(eq + 1);
        if (!*key)
                return fail(p, -EINVAL, "missing key before '='");

        int kind = selector_kind_from_string(key);
        Key k = 0;
        if (kind < 0) {
                while (k < _KEY_MAX && strcmp(keys[k].name, key) != 0)
                        k++;
                if (k == _KEY_MAX)
                        return fail(p, -EINVAL, "unknown key %s", quote(q, key));
        }
        if (!*value)
                return fail(p, -EINVAL, "missing value for \"%s\"", key);
        if (kind >= 0)
                return add_selector(p, (SelectorKind) kind, key, value);
        return set_scalar(p, k, value);
}

/* The whole file into a malloc'ed, NUL-terminated buffer; *ret_size excludes the NUL. */
static int read_file(Parser *p, char **ret, size_t *ret_size) {
        _cleanup_close_ int fd = -EBADF;
        _cleanup_free_ char *buf = NULL;
        struct stat st;
        size_t size = 0, allocated;

        /* O_NONBLOCK: opening a FIFO must not wait for a writer; it is refused below. */
        fd = open(p->path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
        if (fd < 0)
                return fail(p, -errno, "cannot open: %m");
        if (fstat(fd, &st) < 0)
                return fail(p, -errno, "cannot read: %m");
        if (S_ISDIR(st.st_mode))
                return fail(p, -EISDIR, "is a directory");
        if (!S_ISREG(st.st_mode))
                return fail(p, -EINVAL, "not a regular file");
        if (st.st_size > (off_t) CONFIG_FILE_SIZE_MAX)
                goto too_big;

        /* st_size is a hint (the file may change while it is read): read until EOF, to
         * one byte past the cap at most. */
        allocated = MAX((size_t) st.st_size, (size_t) READ_CHUNK_MIN) + 1;
        buf = malloc(allocated);
        if (!buf)
                return fail(p, -ENOMEM, "out of memory");
        for (;;) {
                if (size + 1 == allocated) {
                        if (size > CONFIG_FILE_SIZE_MAX)
                                goto too_big;
                        size_t grown = MIN(allocated * 2, (size_t) CONFIG_FILE_SIZE_MAX + 2);
                        char *b = realloc(buf, grown);
                        if (!b)
                                return fail(p, -ENOMEM, "out of memory");
                        buf = b;
                        allocated = grown;
                }
                ssize_t n = read(fd, buf + size, allocated - 1 - size);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return fail(p, -errno, "cannot read: %m");
                if (n == 0)
                        break;
                size += (size_t) n;
        }
        if (size > CONFIG_FILE_SIZE_MAX)
                goto too_big;
        buf[size] = 0;
        *ret = TAKE_PTR(buf);
        *ret_size = size;
        return 0;

too_big:
        return fail(p, -EFBIG, "file too big (more than %u bytes)", CONFIG_FILE_SIZE_MAX);
}

int config_load(const char *path, Config *ret, char *err, size_t errlen) {
        Parser p = { .path = path, .err = err, .errlen = errlen };
        _cleanup_free_ char *buf = NULL;
        size_t size = 0, pos = 0;
        int r;

        if (!path || !ret || (!err && errlen > 0))
                return -EINVAL;
        r = read_file(&p, &buf, &size);
        if (r < 0)
                return r;

        if (size >= 3 && memcmp(buf, "\xef\xbb\xbf", 3) == 0)
                pos = 3;                /* a byte order mark, as some editors write */
        while (pos < size) {
                char *line = buf + pos, *nl = memchr(line, '\n', size - pos);
                size_t len = nl ? (size_t) (nl - line) : size - pos;

                p.line++;
                if (len > CONFIG_LINE_MAX) {
                        r = fail(&p, -ENOBUFS, "line too long (more than %u bytes)", CONFIG_LINE_MAX);
                        goto fail;
                }
                if (memchr(line, 0, len)) {
                        r = fail(&p, -EILSEQ, "NUL byte");
                        goto fail;
                }
                if (!utf8_valid((const unsigned char *) line, len)) {
                        r = fail(&p, -EILSEQ, "invalid UTF-8");
                        goto fail;
                }
                line[len] = 0;          /* the '\n', or the NUL past the end */
                r = parse_line(&p, line);
                if (r < 0)
                        goto fail;
                pos += len + 1;
        }

        *ret = p.cfg;
        return 0;

fail:
        config_free(&p.cfg);
        return r;
}

int token_file_read(const char *path, char **ret, char *err, size_t errlen) {
        Parser p = { .path = path, .err = err, .errlen = errlen };
        _cleanup_close_ int fd = -EBADF;
        char buf[CONFIG_TOKEN_FILE_MAX + 1];
        struct stat st;
        size_t n = 0;

        if (!path || !ret || (!err && errlen > 0))
                return -EINVAL;
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
        if (fd < 0)
                return fail(&p, -errno, "cannot open the token file: %m");
        if (fstat(fd, &st) < 0)
                return fail(&p, -errno, "cannot read the token file: %m");
        if (!S_ISREG(st.st_mode))
                return fail(&p, -EINVAL, "the token file is not a regular file");
        if (st.st_mode & 0077)
                return fail(&p, -EPERM, "the token file may be read or written by group or others (mode %04o): "
                            "chmod 600 it", (unsigned) (st.st_mode & 07777));
        for (;;) {
                ssize_t k = read(fd, buf + n, sizeof buf - n);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0)
                        return fail(&p, -errno, "cannot read the token file: %m");
                if (k == 0)
                        break;
                n += (size_t) k;
                if (n == sizeof buf)
                        return fail(&p, -EFBIG, "the token file is too big (more than %u bytes)",
                                    CONFIG_TOKEN_FILE_MAX);
        }
        size_t len = 0;
        while (len < n && buf[len] != '\n')
                len++;
        while (len > 0 && strchr(BLANKS, buf[len - 1]))
                len--;
        if (len == 0)
                return fail(&p, -EINVAL, "the token file holds no token (its first line is empty)");
        for (size_t i = 0; i < len; i++)
                if ((unsigned char) buf[i] <= 0x20 || (unsigned char) buf[i] >= 0x7f)
                        return fail(&p, -EINVAL, "the token holds a blank, a control or a non-ASCII character");
        char *t = strndup(buf, len);
        explicit_bzero(buf, sizeof buf);
        if (!t)
                return fail(&p, -ENOMEM, "out of memory");
        *ret = t;
        return 0;
}

void config_free(Config *c) {
        if (!c)
                return;
        for (size_t i = 0; i < c->n_selectors; i++)
                selector_done(&c->selectors[i]);
        free(c->selectors);
        free(c->listen);
        free(c->token_file);
        *c = (Config) {};
}
