/* tests/test-config.c -- daemon/config-file.c: a file with every key gives every value;
 * comments, blanks, CRLF, a byte order mark and a missing final newline are handled; each
 * kind of error gives its errno and its exact "path:line: message", leaves the output
 * untouched and stops at the first error; the caps (line, file, selectors) hold at their
 * boundaries; and the example config shipped in systemd/ loads as it is and with every
 * setting uncommented.
 *
 * Files are written to a mkdtemp() directory, removed at exit. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "clock.h"
#include "config-file.h"
#include "durations.h"
#include "log.h"
#include "macro.h"
#include "snapshot.h"
#include "tiny-test.h"

/* ---- files, removed at exit ---- */

static char tmpdir[PATH_MAX];
static char made[16][PATH_MAX + 32];         /* besides the numbered files */
static int n_made, n_files;

static void cleanup(void) {
        char path[PATH_MAX + 32];
        if (!tmpdir[0])
                return;
        for (int i = 1; i <= n_files; i++) {
                snprintf(path, sizeof path, "%s/%d.conf", tmpdir, i);
                (void) unlink(path);
        }
        for (int i = n_made - 1; i >= 0; i--)
                if (unlink(made[i]) < 0)
                        (void) rmdir(made[i]);
        (void) rmdir(tmpdir);
        tmpdir[0] = 0;
}

static const char *dir(void) {
        if (!tmpdir[0]) {
                snprintf(tmpdir, sizeof tmpdir, "/tmp/cprofd-test-config-XXXXXX");
                if (!mkdtemp(tmpdir))
                        TINY_FAIL("mkdtemp: %m");
                atexit(cleanup);
        }
        return tmpdir;
}

/* Writes N bytes of TEXT to a new file; returns its path (static storage per call). */
static const char *write_file(const char *text, size_t n) {
        static char paths[8][PATH_MAX + 32];
        static int next;
        char *path = paths[next++ % 8];
        snprintf(path, sizeof paths[0], "%s/%d.conf", dir(), ++n_files);
        FILE *f = fopen(path, "we");
        if (!f || fwrite(text, 1, n, f) != n || fclose(f) != 0)
                TINY_FAIL("writing %s: %m", path);
        return path;
}

static const char *write_text(const char *text) {
        return write_file(text, strlen(text));
}

/* ---- checks ---- */

static char err[1024];

static Config load_ok(const char *text, size_t n) {
        Config c = {};
        const char *path = write_file(text, n);
        int r = config_load(path, &c, err, sizeof err);
        if (r < 0)
                TINY_FAIL("config_load: %s: %s", strerror(-r), err);
        return c;
}

/* A sentinel Config that must come back untouched from a failed load. */
static const Config sentinel = { .listen = (char *) "sentinel", .listen_line = 77, .n_selectors = 3 };

static Config load_text(const char *text) {
        return load_ok(text, strlen(text));
}

/* Loading PATH must fail with ERROR, leave the output alone and say exactly WANT. */
static void expect_failure(const char *path, int error, const char *want) {
        Config c = sentinel;
        memset(err, 'x', sizeof err);
        int r = config_load(path, &c, err, sizeof err);
        if (r != error)
                TINY_FAIL("config_load returned %d (%s), expected %d (%s); message: %s", r, strerror(-r), error,
                          strerror(-error), r < 0 ? err : "(none)");
        ASSERT_TRUE(memcmp(&c, &sentinel, sizeof c) == 0);
        ASSERT_STREQ(err, want);
}

/* An error about the whole file: "PATH: MESSAGE". */
static void expect_error_at(const char *path, int error, const char *message) {
        char want[PATH_MAX + 2048];
        snprintf(want, sizeof want, "%s: %s", path, message);
        expect_failure(path, error, want);
}

/* N bytes of TEXT must fail at LINE: "PATH:LINE: MESSAGE". */
static void expect_error_n(const char *text, size_t n, unsigned line, int error, const char *message) {
        const char *path = write_file(text, n);
        char want[PATH_MAX + 2048];
        snprintf(want, sizeof want, "%s:%u: %s", path, line, message);
        expect_failure(path, error, want);
}

static void expect_error(const char *text, unsigned line, int error, const char *message) {
        expect_error_n(text, strlen(text), line, error, message);
}

/* ---- valid files ---- */

TEST(every_key) {
        Config c = load_text(
                "# cprofd.conf with every key\n"
                "listen = 127.0.0.1:6061\n"
                "pid = 1\n"
                "exe = /proc/self/exe\n"
                "comm = sleep\n"
                "cgroup = /system.slice/cprofd-test-none.service\n"
                "unit = cprofd-test-none.service\n"
                "pid = 2\n"
                "interval = 1m30s\n"
                "history = 500\n"
                "history = 32M\n"
                "max-targets = 100\n"
                "stack-max = 65536\n"
                "log-level = debug\n"
                "token-file = /etc/cprofd/token\n"
                "listen-mode = 0640\n"
                "allow-remote = yes\n"
                "max-seconds = 600\n"
                "max-requests = 8\n");

        ASSERT_STREQ(c.listen, "127.0.0.1:6061");
        ASSERT_EQ(c.listen_line, 2);

        ASSERT_EQ(c.n_selectors, 6);
        ASSERT_EQ(c.selectors[0].kind, SELECTOR_PID);
        ASSERT_EQ(c.selectors[0].pid, 1);
        ASSERT_EQ(c.selectors[1].kind, SELECTOR_EXE);
        ASSERT_STREQ(c.selectors[1].value, "/proc/self/exe");
        char self[PATH_MAX];
        ASSERT_TRUE(realpath("/proc/self/exe", self));
        ASSERT_STREQ(c.selectors[1].exe, self);         /* resolved, as on the command line */
        ASSERT_EQ(c.selectors[2].kind, SELECTOR_COMM);
        ASSERT_STREQ(c.selectors[2].comm, "sleep");
        ASSERT_EQ(c.selectors[3].kind, SELECTOR_CGROUP);
        ASSERT_STREQ(c.selectors[3].cgroup, "/system.slice/cprofd-test-none.service");
        ASSERT_EQ(c.selectors[4].kind, SELECTOR_UNIT);
        ASSERT_STREQ(c.selectors[4].value, "cprofd-test-none.service");
        ASSERT_TRUE(!c.selectors[4].cgroup);            /* not running: followed once it starts */
        ASSERT_EQ(c.selectors[5].kind, SELECTOR_PID);
        ASSERT_EQ(c.selectors[5].pid, 2);

        ASSERT_EQ(c.interval_ns, 90 * NSEC_PER_SEC);
        ASSERT_EQ(c.interval_line, 9);
        ASSERT_EQ(c.history_snapshots, 500);
        ASSERT_EQ(c.history_snapshots_line, 10);
        ASSERT_EQ(c.history_bytes, 32u << 20);
        ASSERT_EQ(c.history_bytes_line, 11);
        ASSERT_EQ(c.max_targets, 100);
        ASSERT_EQ(c.max_targets_line, 12);
        ASSERT_EQ(c.stack_max, 65536);
        ASSERT_EQ(c.stack_max_line, 13);
        ASSERT_EQ(c.log_level, LOG_LEVEL_DEBUG);
        ASSERT_EQ(c.log_level_line, 14);
        ASSERT_STREQ(c.token_file, "/etc/cprofd/token");
        ASSERT_EQ(c.token_file_line, 15);
        ASSERT_EQ(c.listen_mode, 0640);
        ASSERT_EQ(c.listen_mode_line, 16);
        ASSERT_TRUE(c.allow_remote);
        ASSERT_EQ(c.allow_remote_line, 17);
        ASSERT_EQ(c.max_seconds, 600);
        ASSERT_EQ(c.max_seconds_line, 18);
        ASSERT_EQ(c.max_requests, 8);
        ASSERT_EQ(c.max_requests_line, 19);

        config_free(&c);
        ASSERT_EQ(c.n_selectors, 0);
        ASSERT_TRUE(!c.selectors && !c.listen && !c.token_file && !c.listen_line);
        config_free(&c);                /* zeroed: again is fine */
        config_free(NULL);
}

TEST(empty_and_comment_only_files_set_nothing) {
        static const char *const texts[] = {
                "", "\n", "\n\n\n", "# only a comment", "   \t\n\t# indented comment\n  \r\n",
                "\xef\xbb\xbf# a byte order mark first\n",
        };
        for (size_t i = 0; i < ARRAY_SIZE(texts); i++) {
                Config c = load_text(texts[i]);
                Config zero = {};
                ASSERT_TRUE(memcmp(&c, &zero, sizeof c) == 0);
        }
}

TEST(blanks_crlf_and_special_characters) {
        const char text[] =
                "\xef\xbb\xbf"                          /* a BOM before the first key */
                "  listen=[::1]:0  \r\n"                /* no blanks around '=', CRLF */
                "\tinterval\t=\t0\t\n"                  /* tabs; 0: off */
                "comm = a#b\n"                          /* '#' inside a value is the value */
                "exe = /opt/app=1/bin/app\n"            /* the first '=' splits */
                "   # comment = not a setting\n"
                "comm = é ü\n"                          /* UTF-8, an inner blank */
                "allow-remote = OFF\n"
                "listen-mode = 7\n"
                "log-level = 3";                        /* no final newline */
        Config c = load_text(text);
        ASSERT_STREQ(c.listen, "[::1]:0");
        ASSERT_EQ(c.listen_line, 1);
        ASSERT_EQ(c.interval_ns, 0);
        ASSERT_EQ(c.interval_line, 2);                  /* set, to zero */
        ASSERT_EQ(c.n_selectors, 3);
        ASSERT_STREQ(c.selectors[0].comm, "a#b");
        ASSERT_STREQ(c.selectors[1].value, "/opt/app=1/bin/app");
        ASSERT_STREQ(c.selectors[2].comm, "é ü");
        ASSERT_FALSE(c.allow_remote);
        ASSERT_EQ(c.allow_remote_line, 7);
        ASSERT_EQ(c.listen_mode, 07);
        ASSERT_EQ(c.log_level, LOG_LEVEL_ERR);
        ASSERT_EQ(c.log_level_line, 9);
        config_free(&c);
}

TEST(values_at_their_bounds) {
        static const char *const good[] = {
                "interval = 100ms", "interval = 1h", "history = 1", "history = 100000", "history = 1G",
                "history = 512KiB", "max-targets = 1", "max-targets = 4096", "stack-max = 4096",
                "stack-max = 8388608", "max-seconds = 1", "max-seconds = 86400", "max-requests = 1",
                "max-requests = 4096", "listen-mode = 0", "listen-mode = 0777", "listen-mode = 777",
                "listen = localhost:65535", "listen = 0.0.0.0:0", "listen = unix:/run/cprofd/cprofd.sock",
                "allow-remote = true", "allow-remote = 1", "allow-remote = No", "log-level = 0",
                "max-profiles = 1", "max-profiles = 4096", "max-connections = 1", "max-connections = 65536",
                "header-timeout = 1s", "header-timeout = 1h", "header-timeout = 90s",
                "log-level = error", "pid = 2147483647", "comm = fifteen-bytes15",
                "unit = getty@tty1.service", "cgroup = /",
        };
        for (size_t i = 0; i < ARRAY_SIZE(good); i++) {
                Config c = {};
                int r = config_load(write_text(good[i]), &c, err, sizeof err);
                if (r < 0)
                        TINY_FAIL("\"%s\": %s", good[i], err);
                config_free(&c);
        }
}

/* ---- errors ---- */

TEST(syntax_errors) {
        expect_error("listen = 127.0.0.1:1\n\nbogus = 1\n", 3, -EINVAL, "unknown key \"bogus\"");
        expect_error("Listen = 127.0.0.1:1\n", 1, -EINVAL, "unknown key \"Listen\"");     /* exact case */
        expect_error("max targets = 3\n", 1, -EINVAL, "unknown key \"max targets\"");
        expect_error("# fine\nlisten 127.0.0.1:1\n", 2, -EINVAL, "missing '=' (expected \"key = value\")");
        expect_error("[cprofd]\n", 1, -EINVAL, "missing '=' (expected \"key = value\")");
        expect_error(" = 3\n", 1, -EINVAL, "missing key before '='");
        expect_error("interval =   \n", 1, -EINVAL, "missing value for \"interval\"");
        expect_error("pid =\n", 1, -EINVAL, "missing value for \"pid\"");
        /* A comment after a value is part of it, and so is reported with it. */
        expect_error("interval = 10s # ten\n", 1, -EINVAL,
                     "invalid interval \"10s # ten\": expected 0 (off) or a duration from 100ms, like 10s or 1m");
}

TEST(duplicates) {
        expect_error("listen = 127.0.0.1:1\n# again:\nlisten = 127.0.0.1:2\n", 3, -EINVAL,
                     "duplicate \"listen\" (first set on line 1)");
        static const char *const keys[] = {
                "interval = 1s", "max-targets = 2", "stack-max = 8192", "log-level = info", "token-file = /t",
                "listen-mode = 0600", "allow-remote = no", "max-seconds = 5", "max-requests = 5",
                "max-profiles = 2", "max-connections = 9", "header-timeout = 5s",
        };
        for (size_t i = 0; i < ARRAY_SIZE(keys); i++) {
                char text[256], name[64], want[128];
                snprintf(text, sizeof text, "%s\n\n\n%s\n", keys[i], keys[i]);
                snprintf(name, sizeof name, "%.*s", (int) strcspn(keys[i], " "), keys[i]);
                snprintf(want, sizeof want, "duplicate \"%s\" (first set on line 1)", name);
                expect_error(text, 4, -EINVAL, want);
        }
        /* history: once per bound. */
        expect_error("history = 10\nhistory = 1M\nhistory = 20\n", 3, -EINVAL,
                     "duplicate \"history\" snapshot count (first set on line 1)");
        expect_error("history = 1M\nhistory = 10\nhistory = 2G\n", 3, -EINVAL,
                     "duplicate \"history\" memory budget (first set on line 1)");
        /* Selectors repeat freely. */
        Config c = load_text("pid = 1\npid = 1\ncomm = a\ncomm = a\n");
        ASSERT_EQ(c.n_selectors, 4);
        config_free(&c);
}

TEST(bad_values) {
        static const struct {
                const char *text;
                const char *message;
        } cases[] = {
                { "listen = 6060", "invalid listen \"6060\": expected HOST:PORT or unix:/PATH" },
                { "listen = :6060", "invalid listen \":6060\": expected HOST:PORT or unix:/PATH" },
                { "listen = host:65536", "invalid listen \"host:65536\": expected HOST:PORT or unix:/PATH" },
                { "listen = host:-1", "invalid listen \"host:-1\": expected HOST:PORT or unix:/PATH" },
                { "listen = host:", "invalid listen \"host:\": expected HOST:PORT or unix:/PATH" },
                { "listen = a b:1", "invalid listen \"a b:1\": expected HOST:PORT or unix:/PATH" },
                { "listen = []:1", "invalid listen \"[]:1\": expected HOST:PORT or unix:/PATH" },
                { "listen = [::1:1", "invalid listen \"[::1:1\": expected HOST:PORT or unix:/PATH" },
                { "listen = ::1:6060", "invalid listen \"::1:6060\": expected HOST:PORT or unix:/PATH" },
                { "listen = unix:run/x.sock",
                  "invalid listen \"unix:run/x.sock\": expected HOST:PORT or unix:/PATH" },
                { "interval = 99ms",
                  "invalid interval \"99ms\": expected 0 (off) or a duration from 100ms, like 10s or 1m" },
                { "interval = 10 s",
                  "invalid interval \"10 s\": expected 0 (off) or a duration from 100ms, like 10s or 1m" },
                { "interval = -1s",
                  "invalid interval \"-1s\": expected 0 (off) or a duration from 100ms, like 10s or 1m" },
                { "history = 0",
                  "invalid history \"0\": expected a number of snapshots (1..100000) or a memory budget like 64M" },
                { "history = 100001",
                  "invalid history \"100001\": expected a number of snapshots (1..100000) or a memory "
                  "budget like 64M" },
                { "history = 64X",
                  "invalid history \"64X\": expected a number of snapshots (1..100000) or a memory budget like 64M" },
                { "max-targets = 0", "invalid max-targets \"0\": expected 1..4096" },
                { "max-targets = 4097", "invalid max-targets \"4097\": expected 1..4096" },
                { "max-targets = +5", "invalid max-targets \"+5\": expected 1..4096" },
                { "max-targets = 99999999999999999999999",
                  "invalid max-targets \"99999999999999999999999\": expected 1..4096" },
                { "stack-max = 4095", "invalid stack-max \"4095\": expected 4096..8388608 bytes" },
                { "stack-max = 8388609", "invalid stack-max \"8388609\": expected 4096..8388608 bytes" },
                { "stack-max = 64K", "invalid stack-max \"64K\": expected 4096..8388608 bytes" },
                { "log-level = loud", "invalid log-level \"loud\": expected err, warning, notice, info or debug" },
                { "log-level = 8", "invalid log-level \"8\": expected err, warning, notice, info or debug" },
                { "token-file = token", "invalid token-file \"token\": expected an absolute path" },
                { "listen-mode = 0800", "invalid listen-mode \"0800\": expected an octal mode like 0660" },
                { "listen-mode = 1777", "invalid listen-mode \"1777\": expected an octal mode like 0660" },
                { "listen-mode = 00660", "invalid listen-mode \"00660\": expected an octal mode like 0660" },
                { "listen-mode = rw", "invalid listen-mode \"rw\": expected an octal mode like 0660" },
                { "allow-remote = maybe", "invalid allow-remote \"maybe\": expected yes or no" },
                { "max-seconds = 0", "invalid max-seconds \"0\": expected 1..86400" },
                { "max-seconds = 86401", "invalid max-seconds \"86401\": expected 1..86400" },
                { "max-requests = 0", "invalid max-requests \"0\": expected 1..4096" },
                { "max-requests = 4097", "invalid max-requests \"4097\": expected 1..4096" },
                { "max-profiles = 0", "invalid max-profiles \"0\": expected 1..4096" },
                { "max-connections = 65537", "invalid max-connections \"65537\": expected 1..65536" },
                { "header-timeout = 500ms",
                  "invalid header-timeout \"500ms\": expected whole seconds from 1s to 1h, like 10s" },
                { "header-timeout = 2h",
                  "invalid header-timeout \"2h\": expected whole seconds from 1s to 1h, like 10s" },
                { "header-timeout = 1500ms",
                  "invalid header-timeout \"1500ms\": expected whole seconds from 1s to 1h, like 10s" },
                { "pid = 0", "invalid pid \"0\": expected a positive process id" },
                { "pid = 12ab", "invalid pid \"12ab\": expected a positive process id" },
                { "exe = bin/app", "invalid exe \"bin/app\": expected an absolute path" },
                { "comm = sixteen-bytes-16", "invalid comm \"sixteen-bytes-16\": expected a name of 1..15 bytes" },
                { "cgroup = system.slice",
                  "invalid cgroup \"system.slice\": expected an absolute cgroup path without \"..\"" },
                { "cgroup = /a/../b", "invalid cgroup \"/a/../b\": expected an absolute cgroup path without \"..\"" },
                { "unit = foo", "invalid unit \"foo\": expected a unit name ending in .service, .scope or .slice" },
                { "unit = a@.service",
                  "invalid unit \"a@.service\": expected a unit name ending in .service, .scope or .slice" },
        };
        for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
                char text[256];
                snprintf(text, sizeof text, "# case %zu\n%s\n", i, cases[i].text);
                expect_error(text, 2, -EINVAL, cases[i].message);
        }
}

TEST(unix_socket_path_fits_sun_path) {
        /* sun_path holds 108 bytes with its NUL: a path of 107 fits, 108 does not. */
        char text[256];
        snprintf(text, sizeof text, "listen = unix:/%0106d\n", 0);
        Config c = load_text(text);
        ASSERT_EQ(strlen(c.listen), strlen("unix:") + 107);
        config_free(&c);
        snprintf(text, sizeof text, "listen = unix:/%0107d\n", 0);
        const char *path = write_text(text);
        ASSERT_EQ(config_load(path, &c, err, sizeof err), -EINVAL);
        ASSERT_CONTAINS(err, ": expected HOST:PORT or unix:/PATH");
}

TEST(messages_escape_and_cut_what_they_quote) {
        /* Control characters (a terminal escape), '"' and '\' come out as \xNN. */
        expect_error("listen = \x1b[31mred\"\\\n", 1, -EINVAL,
                     "invalid listen \"\\x1b[31mred\\x22\\x5c\": expected HOST:PORT or unix:/PATH");
        expect_error("bo\x7fgus = 1\n", 1, -EINVAL, "unknown key \"bo\\x7fgus\"");
        /* Past 64 bytes: cut, never inside a UTF-8 character. 63 'a' and a 2-byte 'é'
         * straddling byte 64. */
        char text[256], want[256];
        snprintf(text, sizeof text, "token-file = %s%s\n",
                 "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "éxyz");
        snprintf(want, sizeof want, "invalid token-file \"%s\"…: expected an absolute path",
                 "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
        expect_error(text, 1, -EINVAL, want);
}

TEST(line_length_cap) {
        /* CONFIG_LINE_MAX bytes before the '\n' are fine; one more is not, with or without
         * the '\n', and even in a comment: lines are measured before they are parsed. */
        size_t n = 8 + CONFIG_LINE_MAX + 2;
        _cleanup_free_ char *text = malloc(n);
        ASSERT_TRUE(text);
        memcpy(text, "# first\n", 8);
        memset(text + 8, 'x', n - 8);
        memcpy(text + 8, "comm=", 5);
        text[8 + CONFIG_LINE_MAX - 1] = 'y';
        text[8 + CONFIG_LINE_MAX] = '\n';               /* line 2: exactly the cap */
        expect_error_n(text, 8 + CONFIG_LINE_MAX + 1, 2, -EINVAL,
                       "invalid comm \"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"…: "
                       "expected a name of 1..15 bytes");       /* parsed whole */
        text[8] = '#';
        Config c = load_ok(text, 8 + CONFIG_LINE_MAX + 1);
        config_free(&c);

        text[8 + CONFIG_LINE_MAX] = 'y';
        text[8 + CONFIG_LINE_MAX + 1] = '\n';           /* one byte more */
        expect_error_n(text, 8 + CONFIG_LINE_MAX + 2, 2, -ENOBUFS, "line too long (more than 4096 bytes)");
        expect_error_n(text, 8 + CONFIG_LINE_MAX + 1, 2, -ENOBUFS, "line too long (more than 4096 bytes)");
}

TEST(nul_and_utf8) {
        expect_error_n("# ok\ncomm = a\0b\n", 15, 2, -EILSEQ, "NUL byte");
        expect_error_n("\0", 1, 1, -EILSEQ, "NUL byte");
        static const char *const bad[] = {
                "comm = \xff\n",                /* never valid */
                "comm = \xc0\x80\n",            /* overlong NUL */
                "comm = \xe0\x80\xaf\n",        /* overlong '/' */
                "comm = \xed\xa0\x80\n",        /* a surrogate */
                "comm = \xf4\x90\x80\x80\n",    /* above U+10FFFF */
                "comm = \xe2\x82\n",            /* cut short by the newline */
                "comm = \xe2\x82",              /* cut short by the end */
                "comm = \x80\n",                /* a lone continuation byte */
                "# \xfe in a comment counts too\n",
        };
        for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
                expect_error(bad[i], 1, -EILSEQ, "invalid UTF-8");
        /* The errors are found in order: the earlier line wins. */
        expect_error("bogus = 1\ncomm = \xff\n", 1, -EINVAL, "unknown key \"bogus\"");
        expect_error("comm = \xff\nbogus = 1\n", 1, -EILSEQ, "invalid UTF-8");
        /* 4-byte characters are fine. */
        Config c = load_text("comm = \xf0\x9f\x90\x8d\n");
        ASSERT_STREQ(c.selectors[0].comm, "\xf0\x9f\x90\x8d");
        config_free(&c);
}

TEST(file_size_cap) {
        /* Exactly CONFIG_FILE_SIZE_MAX bytes of comment lines loads; one byte more does not. */
        size_t n = CONFIG_FILE_SIZE_MAX + 1;
        _cleanup_free_ char *text = malloc(n);
        ASSERT_TRUE(text);
        for (size_t i = 0; i < n; i += 1024) {
                memset(text + i, '#', MIN((size_t) 1024, n - i));
                if (i + 1023 < n)
                        text[i + 1023] = '\n';
        }
        Config c = load_ok(text, CONFIG_FILE_SIZE_MAX);
        config_free(&c);
        const char *big = write_file(text, n);
        expect_error_at(big, -EFBIG, "file too big (more than 1048576 bytes)");
}

TEST(selector_cap) {
        char text[CONFIG_SELECTORS_MAX * 16 + 64];
        size_t o = 0;
        for (unsigned i = 1; i <= CONFIG_SELECTORS_MAX; i++)
                o += (size_t) snprintf(text + o, sizeof text - o, "pid = %u\n", i);
        Config c = load_ok(text, o);
        ASSERT_EQ(c.n_selectors, CONFIG_SELECTORS_MAX);
        config_free(&c);
        snprintf(text + o, sizeof text - o, "comm = one-more\n");
        expect_error(text, CONFIG_SELECTORS_MAX + 1, -E2BIG, "too many targets (at most 64)");
}

TEST(unreadable_paths) {
        char path[PATH_MAX + 32];
        snprintf(path, sizeof path, "%s/does-not-exist.conf", dir());
        expect_error_at(path, -ENOENT, "cannot open: No such file or directory");
        expect_error_at(dir(), -EISDIR, "is a directory");

        /* A FIFO is refused without waiting for a writer. */
        snprintf(path, sizeof path, "%s/fifo", dir());
        ASSERT_EQ(mkfifo(path, 0600), 0);
        snprintf(made[n_made++], sizeof made[0], "%s", path);
        expect_error_at(path, -EINVAL, "not a regular file");
        expect_error_at("/dev/null", -EINVAL, "not a regular file");
}

TEST(error_buffer) {
        const char *path = write_text("bogus = 1\n");
        Config c = {};
        /* Too small: cut, NUL-terminated, never overrun. */
        char small[12];
        memset(small, 'x', sizeof small);
        ASSERT_EQ(config_load(path, &c, small, 8), -EINVAL);
        ASSERT_EQ(strlen(small), 7);
        ASSERT_EQ(small[8], 'x');
        /* None at all. */
        ASSERT_EQ(config_load(path, &c, NULL, 0), -EINVAL);
        ASSERT_EQ(config_load(NULL, &c, err, sizeof err), -EINVAL);
        ASSERT_EQ(config_load(path, NULL, err, sizeof err), -EINVAL);
        /* Success leaves ERR alone. */
        strcpy(err, "untouched");
        c = load_text("");
        ASSERT_STREQ(err, "untouched");
}

/* ---- the example shipped in systemd/ ---- */

TEST(example_config_loads) {
        /* As installed: everything commented out, so nothing is set. */
        Config c = {}, zero = {};
        int r = config_load(EXAMPLE_CONFIG, &c, err, sizeof err);
        if (r < 0)
                TINY_FAIL("%s", err);
        ASSERT_TRUE(memcmp(&c, &zero, sizeof c) == 0);

        /* With every "#key = value" line uncommented: each example is valid, and together
         * they are the defaults the command line has. */
        FILE *f = fopen(EXAMPLE_CONFIG, "re");
        ASSERT_TRUE(f);
        char line[CONFIG_LINE_MAX + 2], text[65536];
        size_t o = 0;
        unsigned settings = 0;
        while (fgets(line, sizeof line, f)) {
                const char *s = line;
                size_t k = line[0] == '#' ? strspn(line + 1, "abcdefghijklmnopqrstuvwxyz-") : 0;
                if (k > 0 && strncmp(line + 1 + k, " = ", 3) == 0) {
                        s = line + 1;
                        settings++;
                }
                ASSERT_LT(o + strlen(s), sizeof text);
                memcpy(text + o, s, strlen(s));
                o += strlen(s);
        }
        fclose(f);
        ASSERT_EQ(settings, 5 + 14 + 1);                /* every key; history twice */
        c = load_ok(text, o);
        ASSERT_EQ(c.n_selectors, 5);
        ASSERT_STREQ(c.listen, "127.0.0.1:6060");
        ASSERT_EQ(c.interval_ns, 10 * NSEC_PER_SEC);
        ASSERT_EQ(c.history_snapshots, 360);          /* scheduler.h's defaults */
        ASSERT_EQ(c.history_bytes, 64u << 20);
        ASSERT_EQ(c.max_targets, 64);                   /* targets.h's */
        ASSERT_EQ(c.stack_max, SNAPSHOT_STACK_MAX_DEFAULT);
        ASSERT_EQ(c.log_level, LOG_LEVEL_INFO);
        ASSERT_STREQ(c.token_file, "/etc/cprofd/token");
        ASSERT_EQ(c.listen_mode, 0600);
        ASSERT_TRUE(c.allow_remote_line && !c.allow_remote);
        ASSERT_EQ(c.max_seconds, 3600);
        ASSERT_EQ(c.max_requests, 64);
        ASSERT_EQ(c.max_profiles, 4);                   /* server.h's */
        ASSERT_EQ(c.max_connections, 256);
        ASSERT_EQ(c.header_timeout_sec, 10);
        config_free(&c);
}

/* ---- the token file ---- */

static const char *write_token(const char *text, mode_t mode) {
        const char *path = write_text(text);
        ASSERT_EQ(chmod(path, mode), 0);
        return path;
}

TEST(token_file_first_line) {
        char *t = NULL;
        ASSERT_EQ(token_file_read(write_token("s3cr3t-T0ken\nsecond line\n", 0600), &t, err, sizeof err), 0);
        ASSERT_STREQ(t, "s3cr3t-T0ken");
        free(t);
        ASSERT_EQ(token_file_read(write_token("abc \t\r\n", 0400), &t, err, sizeof err), 0);
        ASSERT_STREQ(t, "abc");         /* CRLF and trailing blanks are not the token's */
        free(t);
        ASSERT_EQ(token_file_read(write_token("no-newline", 0600), &t, err, sizeof err), 0);
        ASSERT_STREQ(t, "no-newline");
        free(t);
}

TEST(token_file_refused) {
        char *t = (char *) "untouched", want[PATH_MAX + 128];
        const char *path = write_token("tok\n", 0644);
        ASSERT_EQ(token_file_read(path, &t, err, sizeof err), -EPERM);
        snprintf(want, sizeof want, "%s: the token file may be read or written by group or others (mode 0644): "
                 "chmod 600 it", path);
        ASSERT_STREQ(err, want);
        ASSERT_EQ(token_file_read(write_token("tok\n", 0620), &t, err, sizeof err), -EPERM);
        path = write_token("\nsecond\n", 0600);
        ASSERT_EQ(token_file_read(path, &t, err, sizeof err), -EINVAL);
        snprintf(want, sizeof want, "%s: the token file holds no token (its first line is empty)", path);
        ASSERT_STREQ(err, want);
        ASSERT_EQ(token_file_read(write_token("", 0600), &t, err, sizeof err), -EINVAL);
        ASSERT_EQ(token_file_read(write_token("a b\n", 0600), &t, err, sizeof err), -EINVAL);
        ASSERT_EQ(token_file_read(dir(), &t, err, sizeof err), -EINVAL);       /* a directory */
        snprintf(want, sizeof want, "%s/none", dir());
        ASSERT_EQ(token_file_read(want, &t, err, sizeof err), -ENOENT);
        ASSERT_STREQ(t, "untouched");
}

int main(int argc, char **argv) { return tiny_main(argc, argv); }
