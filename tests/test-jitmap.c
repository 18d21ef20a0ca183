/* tests/test-jitmap.c -- unit tests of symbolize/jitmap.c and of JIT frames in the
 * symbolizer: perf map lines and jitdump records, good and garbage, fed whole and in
 * pieces; later symbols overriding earlier ones; files followed as they grow, are
 * truncated or replaced; and our own anonymous executable memory named through
 * /tmp/perf-PID.map and /tmp/jit-PID.dump as a JIT runtime would write them. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "jitmap.h"
#include "macro.h"
#include "procfs.h"
#include "self-address-space.h"
#include "symbolizer.h"
#include "tiny-test.h"

DEFINE_POINTER_CLEANUP(JitTable, jit_table_free);
DEFINE_POINTER_CLEANUP(JitFile, jit_file_free);
DEFINE_POINTER_CLEANUP(Symbolizer, symbolizer_free);
DEFINE_POINTER_CLEANUP(AddressSpace, address_space_free);

static const char *name_at(JitTable *t, uint64_t addr) {
        JitSymbol s;
        return jit_table_lookup(t, addr, &s) ? s.name : NULL;
}

static ssize_t parse_text(PerfMapParser *p, JitTable *t, const char *text) {
        return perf_map_parse(p, t, text, strlen(text));
}

/* ---- perf maps ---- */

TEST(perf_map_lines) {
        _cleanup_(jit_table_freep) JitTable *t = NULL;
        PerfMapParser p = {};
        const char *text =
                "7f283b7c61c0 2e4 JS:*hoHotLoop /tmp/hot.js:1:19\n"
                "0x1000 0x10 with 0x prefixes\r\n"
                "\t2000  20\tLazyCompile:~f  (spaces kept inside)  \n"
                "3000 10 [jit] tail\n";

        ASSERT_EQ(jit_table_new(&t), 0);
        ASSERT_EQ(parse_text(&p, t, text), (ssize_t) strlen(text));
        ASSERT_EQ(jit_table_count(t), 4);
        ASSERT_STREQ(name_at(t, 0x7f283b7c61c0), "JS:*hoHotLoop /tmp/hot.js:1:19");
        ASSERT_STREQ(name_at(t, 0x7f283b7c61c0 + 0x2e3), "JS:*hoHotLoop /tmp/hot.js:1:19");
        ASSERT_TRUE(name_at(t, 0x7f283b7c61c0 + 0x2e4) == NULL);        /* end exclusive */
        ASSERT_STREQ(name_at(t, 0x100f), "with 0x prefixes");
        ASSERT_STREQ(name_at(t, 0x2000), "LazyCompile:~f  (spaces kept inside)");
        ASSERT_STREQ(name_at(t, 0x3000), "[jit] tail");
        ASSERT_TRUE(name_at(t, 0xfff) == NULL);
        ASSERT_EQ(p.lines, 4);
        ASSERT_EQ(p.bad_lines, 0);

        JitSymbol s;
        ASSERT_TRUE(jit_table_lookup(t, 0x2010, &s));
        ASSERT_EQ(s.start, 0x2000);
        ASSERT_EQ(s.size, 0x20);
}

TEST(perf_map_garbage_is_skipped) {
        _cleanup_(jit_table_freep) JitTable *t = NULL;
        PerfMapParser p = {};
        const char text[] =
                "\n"
                "zzzz 10 not hex\n"
                "1000\n"
                "1000 10\n"                             /* no name */
                "1000 10 \n"                            /* blank name */
                "1000 0 empty range\n"
                "ffffffffffffff00 1000 wraps around\n"
                "11112222333344445 10 more than 64 bits\n"
                "1000 -10 negative\n"
                "1000g 10 junk after the number\n"
                "5000 10 good\n"
                "6000 10 nul\0inside\n"
                "\x01\x02\xff\n";

        ASSERT_EQ(jit_table_new(&t), 0);
        ASSERT_EQ(perf_map_parse(&p, t, text, sizeof text - 1), (ssize_t) sizeof text - 1);
        ASSERT_EQ(jit_table_count(t), 2);
        ASSERT_STREQ(name_at(t, 0x5008), "good");
        ASSERT_STREQ(name_at(t, 0x6000), "nul?inside");
        ASSERT_EQ(p.bad_lines, 11);
        ASSERT_TRUE(name_at(t, 0x1000) == NULL);

        /* Control bytes in a name are replaced, bytes ≥ 0x80 kept. */
        const char ctl[] = "7000 10 a\x01" "b\tc\x7f\xc3\xa9\n";
        ASSERT_EQ(perf_map_parse(&p, t, ctl, sizeof ctl - 1), (ssize_t) sizeof ctl - 1);
        ASSERT_STREQ(name_at(t, 0x7000), "a?b?c?\xc3\xa9");
}

TEST(perf_map_later_lines_override) {
        _cleanup_(jit_table_freep) JitTable *t = NULL;
        PerfMapParser p = {};

        ASSERT_EQ(jit_table_new(&t), 0);
        ASSERT_GT(parse_text(&p, t, "1000 100 old\n3000 10 other\n"), 0);
        ASSERT_STREQ(name_at(t, 0x1080), "old");
        /* Code moved in over part of the old range: the new name there, the old around. */
        ASSERT_GT(parse_text(&p, t, "1040 20 new\n"), 0);
        ASSERT_STREQ(name_at(t, 0x103f), "old");
        ASSERT_STREQ(name_at(t, 0x1040), "new");
        ASSERT_STREQ(name_at(t, 0x105f), "new");
        ASSERT_STREQ(name_at(t, 0x1060), "old");
        ASSERT_STREQ(name_at(t, 0x3000), "other");
        /* A range over all of it wins everywhere, and an older small one stays hidden. */
        ASSERT_GT(parse_text(&p, t, "f00 2200 all\n"), 0);
        ASSERT_STREQ(name_at(t, 0x1050), "all");
        ASSERT_STREQ(name_at(t, 0x3005), "all");
        ASSERT_STREQ(name_at(t, 0xf00), "all");
        ASSERT_TRUE(name_at(t, 0x3100) == NULL);
        ASSERT_GT(parse_text(&p, t, "1050 1 tiny\n"), 0);
        ASSERT_STREQ(name_at(t, 0x1050), "tiny");
        ASSERT_STREQ(name_at(t, 0x1051), "all");
        /* The same range again: the last one. */
        ASSERT_GT(parse_text(&p, t, "1050 1 tinier\n"), 0);
        ASSERT_STREQ(name_at(t, 0x1050), "tinier");
}

TEST(perf_map_in_pieces) {
        _cleanup_(jit_table_freep) JitTable *t = NULL;
        PerfMapParser p = {};

        ASSERT_EQ(jit_table_new(&t), 0);
        /* An unfinished line is left for the next call. */
        ASSERT_EQ(parse_text(&p, t, "1000 10 first\n2000 10 sec"), 14);
        ASSERT_EQ(jit_table_count(t), 1);
        ASSERT_EQ(parse_text(&p, t, "2000 10 second\n"), 15);
        ASSERT_STREQ(name_at(t, 0x2000), "second");

        /* A line longer than PERF_MAP_LINE_MAX is dropped whole, even across calls. */
        size_t n = PERF_MAP_LINE_MAX + 100;
        _cleanup_free_ char *huge = malloc(n);
        ASSERT_TRUE(huge != NULL);
        memset(huge, 'x', n);
        memcpy(huge, "3000 10 ", 8);
        ASSERT_EQ(perf_map_parse(&p, t, huge, n), (ssize_t) n);
        ASSERT_TRUE(p.skipping);
        ASSERT_EQ(parse_text(&p, t, "still the long line\n4000 10 after\n"), 34);
        ASSERT_TRUE(name_at(t, 0x3000) == NULL);
        ASSERT_STREQ(name_at(t, 0x4000), "after");
        /* A long line with its newline in one piece: dropped too. */
        huge[n - 1] = '\n';
        ASSERT_EQ(perf_map_parse(&p, t, huge, n), (ssize_t) n);
        ASSERT_TRUE(name_at(t, 0x3000) == NULL);
        ASSERT_EQ(p.bad_lines, 2);
}

TEST(long_names_are_cut) {
        _cleanup_(jit_table_freep) JitTable *t = NULL;
        PerfMapParser p = {};
        char line[64 + 2 * JIT_NAME_MAX];

        ASSERT_EQ(jit_table_new(&t), 0);
        int k = snprintf(line, sizeof line, "1000 10 ");
        memset(line + k, 'n', 2 * JIT_NAME_MAX);
        line[k + 2 * JIT_NAME_MAX] = '\n';
        ASSERT_EQ(perf_map_parse(&p, t, line, (size_t) k + 2 * JIT_NAME_MAX + 1),
                  k + 2 * JIT_NAME_MAX + 1);
        ASSERT_EQ(strlen(name_at(t, 0x1000)), JIT_NAME_MAX);
}

TEST(symbols_are_bounded) {
        _cleanup_(jit_table_freep) JitTable *t = NULL;

        ASSERT_EQ(jit_table_new(&t), 0);
        for (uint64_t i = 0; i < JIT_SYMBOLS_MAX + 10; i++)
                ASSERT_EQ(jit_table_add(t, 0x10000 + 16 * i, 16, "f", 1), i < JIT_SYMBOLS_MAX);
        ASSERT_EQ(jit_table_count(t), JIT_SYMBOLS_MAX);
        ASSERT_STREQ(name_at(t, 0x10000 + 16 * (JIT_SYMBOLS_MAX - 1)), "f");
        ASSERT_TRUE(name_at(t, 0x10000 + 16 * (uint64_t) JIT_SYMBOLS_MAX) == NULL);
        jit_table_reset(t);
        ASSERT_EQ(jit_table_count(t), 0);
        ASSERT_TRUE(name_at(t, 0x10000) == NULL);
}

/* ---- jitdump ---- */

typedef struct Dump {
        uint8_t data[1 << 16];
        size_t len;
        bool swap;
} Dump;

static void put32(Dump *d, uint32_t v) {
        if (d->swap)
                v = __builtin_bswap32(v);
        memcpy(d->data + d->len, &v, 4);
        d->len += 4;
}

static void put64(Dump *d, uint64_t v) {
        if (d->swap)
                v = __builtin_bswap64(v);
        memcpy(d->data + d->len, &v, 8);
        d->len += 8;
}

static void dump_header(Dump *d) {
        put32(d, 0x4A695444);
        put32(d, 1);                    /* version */
        put32(d, 40);                   /* header size */
        put32(d, 62);                   /* EM_X86_64 */
        put32(d, 0);
        put32(d, 1234);                 /* pid */
        put64(d, 1);                    /* timestamp */
        put64(d, 0);                    /* flags */
}

static void dump_load(Dump *d, uint64_t addr, uint64_t size, uint64_t index, const char *name) {
        size_t n = strlen(name) + 1;
        put32(d, 0);                    /* JIT_CODE_LOAD */
        put32(d, (uint32_t) (56 + n + size));
        put64(d, 2);
        put32(d, 1234);
        put32(d, 1235);
        put64(d, addr);                 /* vma */
        put64(d, addr);                 /* code_addr */
        put64(d, size);
        put64(d, index);
        memcpy(d->data + d->len, name, n);
        d->len += n;
        memset(d->data + d->len, 0xcc, size);   /* the code */
        d->len += size;
}

static void dump_move(Dump *d, uint64_t old_addr, uint64_t new_addr, uint64_t size, uint64_t index) {
        put32(d, 1);                    /* JIT_CODE_MOVE */
        put32(d, 64);
        put64(d, 3);
        put32(d, 1234);
        put32(d, 1235);
        put64(d, new_addr);
        put64(d, old_addr);
        put64(d, new_addr);
        put64(d, size);
        put64(d, index);
}

static void dump_other(Dump *d, uint32_t id, uint32_t payload) {
        put32(d, id);
        put32(d, 16 + payload);
        put64(d, 4);
        memset(d->data + d->len, 0xab, payload);
        d->len += payload;
}

/* Parses all of D as the file reader does: from where the last call stopped. */
static uint64_t parse_dump(JitdumpParser *p, JitTable *t, const Dump *d, uint64_t from) {
        while (from < d->len) {
                int64_t n = jitdump_parse(p, t, d->data + from, d->len - from);
                ASSERT_GE(n, 0);
                if (n == 0)
                        break;
                from += (uint64_t) n;
        }
        return from;
}

static void check_jitdump_records(bool swap) {
        _cleanup_(jit_table_freep) JitTable *t = NULL;
        static Dump d;
        JitdumpParser p;

        d = (Dump) { .swap = swap };
        dump_header(&d);
        dump_load(&d, 0x7000, 0x40, 1, "JS:*hoHotLoop hot.js:1:19");
        dump_other(&d, 2, 40);          /* debug info */
        dump_load(&d, 0x8000, 0x20, 2, "Builtin:Other");
        dump_other(&d, 4, 24);          /* unwinding info */
        dump_other(&d, 99, 8);          /* a kind from the future */
        dump_move(&d, 0x7000, 0x9000, 0x40, 1);
        dump_load(&d, 0x7000, 0x10, 3, "reused");

        ASSERT_EQ(jit_table_new(&t), 0);
        jitdump_parser_init(&p);
        ASSERT_EQ(parse_dump(&p, t, &d, 0), d.len);
        ASSERT_EQ(p.state, JITDUMP_RECORDS);
        ASSERT_EQ(p.swapped, swap);
        ASSERT_EQ(p.records, 7);
        ASSERT_EQ(p.loads, 3);
        ASSERT_EQ(p.moves, 1);
        ASSERT_STREQ(name_at(t, 0x703f), "JS:*hoHotLoop hot.js:1:19");
        ASSERT_STREQ(name_at(t, 0x7000), "reused");
        ASSERT_STREQ(name_at(t, 0x8000), "Builtin:Other");
        ASSERT_STREQ(name_at(t, 0x9000), "JS:*hoHotLoop hot.js:1:19");  /* moved */

        size_t end = d.len;
        dump_other(&d, 3, 0);           /* JIT_CODE_CLOSE */
        dump_load(&d, 0xa000, 0x10, 4, "after close");
        ASSERT_EQ(parse_dump(&p, t, &d, end), end + 16);
        ASSERT_EQ(p.state, JITDUMP_DONE);
        ASSERT_TRUE(name_at(t, 0xa000) == NULL);
        jitdump_parser_done(&p);
}

TEST(jitdump_records) {
        check_jitdump_records(false);
}

TEST(jitdump_records_other_byte_order) {
        check_jitdump_records(true);
}

TEST(jitdump_in_pieces) {
        _cleanup_(jit_table_freep) JitTable *t = NULL;
        static Dump d;
        JitdumpParser p;

        d = (Dump) {};
        dump_header(&d);
        size_t first = d.len;
        dump_load(&d, 0x7000, 0x1000, 1, "big code");

        ASSERT_EQ(jit_table_new(&t), 0);
        jitdump_parser_init(&p);
        ASSERT_EQ(jitdump_parse(&p, t, d.data, 39), 0);                /* header not all there */
        ASSERT_EQ(p.state, JITDUMP_HEADER);
        ASSERT_EQ(jitdump_parse(&p, t, d.data, first + 60), first);    /* record head cut */
        ASSERT_EQ(jitdump_parse(&p, t, d.data + first, 60), 0);
        /* The head with its name suffices; the code bytes are skipped, not read. */
        int64_t n = jitdump_parse(&p, t, d.data + first, 56 + 9);
        ASSERT_EQ(n, (int64_t) (d.len - first));
        ASSERT_STREQ(name_at(t, 0x7fff), "big code");
        jitdump_parser_done(&p);
}

TEST(jitdump_garbage) {
        _cleanup_(jit_table_freep) JitTable *t = NULL;
        static Dump d;
        JitdumpParser p;

        ASSERT_EQ(jit_table_new(&t), 0);

        /* Not a jitdump file. */
        d = (Dump) {};
        put32(&d, 0x12345678);
        memset(d.data + 4, 0, 60);
        d.len = 64;
        jitdump_parser_init(&p);
        ASSERT_EQ(jitdump_parse(&p, t, d.data, d.len), 0);
        ASSERT_EQ(p.state, JITDUMP_BAD);
        jitdump_parser_done(&p);

        /* A header that claims to be smaller than a header. */
        d = (Dump) {};
        dump_header(&d);
        memcpy(d.data + 8, &(uint32_t) { 8 }, 4);
        jitdump_parser_init(&p);
        ASSERT_EQ(jitdump_parse(&p, t, d.data, d.len), 0);
        ASSERT_EQ(p.state, JITDUMP_BAD);
        jitdump_parser_done(&p);

        /* Records that cannot be: the good one before each is kept. */
        static const struct { uint32_t id, total; uint64_t code_size; } bad[] = {
                { 0, 8, 0 },                    /* smaller than a record head */
                { 0, 56, 0 },                   /* a load without room for a name */
                { 0, 100, 44 },                 /* code_size leaves no name byte */
                { 0, 100, UINT64_MAX },         /* code_size beyond the record */
                { 1, 40, 0 },                   /* a move too small */
                { 7, 0x7fffffff, 0 },           /* larger than any record may be */
        };
        for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
                jit_table_reset(t);
                d = (Dump) {};
                dump_header(&d);
                dump_load(&d, 0x7000, 0x10, 1, "kept");
                put32(&d, bad[i].id);
                put32(&d, bad[i].total);
                put64(&d, 0);
                put32(&d, 1);
                put32(&d, 1);
                put64(&d, 0x8000);
                put64(&d, 0x8000);
                put64(&d, bad[i].code_size);
                put64(&d, 2);
                memset(d.data + d.len, 'x', 200);
                d.len += 200;
                jitdump_parser_init(&p);
                uint64_t end = parse_dump(&p, t, &d, 0);
                ASSERT_EQ(p.state, JITDUMP_BAD);
                ASSERT_LE(end, d.len);
                ASSERT_STREQ(name_at(t, 0x7000), "kept");
                ASSERT_TRUE(name_at(t, 0x8000) == NULL);
                jitdump_parser_done(&p);
        }

        /* A name without its NUL is cut at the record's end; a move of unknown code is
         * ignored. */
        jit_table_reset(t);
        d = (Dump) {};
        dump_header(&d);
        put32(&d, 0);
        put32(&d, 56 + 5);
        put64(&d, 0);
        put32(&d, 1);
        put32(&d, 1);
        put64(&d, 0x7000);
        put64(&d, 0x7000);
        put64(&d, 0);                   /* no code bytes: a zero-size range, ignored */
        put64(&d, 1);
        memcpy(d.data + d.len, "nonul", 5);
        d.len += 5;
        dump_move(&d, 0x1000, 0x2000, 0x10, 77);
        jitdump_parser_init(&p);
        ASSERT_EQ(parse_dump(&p, t, &d, 0), d.len);
        ASSERT_EQ(p.state, JITDUMP_RECORDS);
        ASSERT_EQ(jit_table_count(t), 0);
        jitdump_parser_done(&p);
}

/* ---- files ---- */

static void write_file(const char *path, const char *text, bool append) {
        int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | (append ? O_APPEND : O_TRUNC), 0644);
        ASSERT_GE(fd, 0);
        ASSERT_EQ(write(fd, text, strlen(text)), (ssize_t) strlen(text));
        ASSERT_EQ(close(fd), 0);
}

/* mtime granularity: make sure a rewrite of the same size is seen as a change. */
static void touch_later(const char *path) {
        struct timespec ts[2] = { { .tv_nsec = UTIME_NOW }, { .tv_sec = time(NULL) + 10 } };
        ASSERT_EQ(utimensat(AT_FDCWD, path, ts, 0), 0);
}

TEST(file_followed_as_it_grows) {
        char path[] = "/tmp/cprofd-test-jitmap-XXXXXX";
        int fd = mkstemp(path);
        ASSERT_GE(fd, 0);
        (void) close(fd);
        _cleanup_(jit_file_freep) JitFile *f = NULL;

        ASSERT_EQ(jit_file_new(JIT_FORMAT_PERF_MAP, path, "/tmp/perf-1.map", getuid(), &f), 0);
        ASSERT_STREQ(jit_file_name(f), "/tmp/perf-1.map");
        ASSERT_FALSE(jit_file_seen(f));
        ASSERT_EQ(jit_file_refresh(f), 0);                      /* empty */
        ASSERT_TRUE(jit_file_seen(f));

        write_file(path, "1000 10 one\n2000 10 tw", true);
        ASSERT_EQ(jit_file_refresh(f), 1);
        JitSymbol s;
        ASSERT_TRUE(jit_file_lookup(f, 0x1000, &s));
        ASSERT_STREQ(s.name, "one");
        ASSERT_FALSE(jit_file_lookup(f, 0x2000, &s));           /* line not finished */
        ASSERT_EQ(jit_file_refresh(f), 0);                      /* unchanged */

        write_file(path, "o\n1000 10 uno\n", true);
        ASSERT_EQ(jit_file_refresh(f), 1);
        ASSERT_TRUE(jit_file_lookup(f, 0x2000, &s));
        ASSERT_STREQ(s.name, "two");
        ASSERT_TRUE(jit_file_lookup(f, 0x1000, &s));
        ASSERT_STREQ(s.name, "uno");

        /* Truncated and rewritten: read anew. */
        write_file(path, "3000 10 three\n", false);
        ASSERT_EQ(jit_file_refresh(f), 1);
        ASSERT_FALSE(jit_file_lookup(f, 0x1000, &s));
        ASSERT_TRUE(jit_file_lookup(f, 0x3000, &s));
        ASSERT_STREQ(s.name, "three");

        /* Replaced by another file (another inode) of the same size. */
        char other[sizeof path + 4];
        (void) snprintf(other, sizeof other, "%s.new", path);
        write_file(other, "4000 10 fourr\n", false);
        touch_later(other);
        ASSERT_EQ(rename(other, path), 0);
        ASSERT_EQ(jit_file_refresh(f), 1);
        ASSERT_FALSE(jit_file_lookup(f, 0x3000, &s));
        ASSERT_TRUE(jit_file_lookup(f, 0x4000, &s));

        /* Gone: an error, the symbols kept. */
        ASSERT_EQ(unlink(path), 0);
        ASSERT_EQ(jit_file_refresh(f), -ENOENT);
        ASSERT_TRUE(jit_file_lookup(f, 0x4000, &s));

        /* Not a regular file. */
        ASSERT_EQ(mkfifo(path, 0600), 0);
        ASSERT_EQ(jit_file_refresh(f), -EBADF);
        ASSERT_EQ(unlink(path), 0);

        /* Another user's file: not read (unless root owns it). */
        write_file(path, "5000 10 five\n", false);
        uid_t me = getuid();
        if (me == 0)
                ASSERT_EQ(chown(path, 12345, 12345), 0);
        _cleanup_(jit_file_freep) JitFile *g = NULL;
        ASSERT_EQ(jit_file_new(JIT_FORMAT_PERF_MAP, path, "/tmp/perf-1.map", me == 0 ? 4242 : me + 1, &g), 0);
        ASSERT_EQ(jit_file_refresh(g), -EPERM);
        ASSERT_FALSE(jit_file_lookup(g, 0x5000, &s));
        ASSERT_EQ(unlink(path), 0);
}

/* ---- the symbolizer ---- */

static void update_self(AddressSpace *as) {
        Maps maps;
        ASSERT_EQ(procfs_read_maps(getpid(), &maps), 0);
        ASSERT_EQ(address_space_update(as, &maps), 0);
        maps_done(&maps);
}

/* /tmp/perf-PID.map or /tmp/jit-PID.dump of this process. */
static char *jit_path(const char *prefix, const char *suffix) {
        char *p;
        ASSERT_GE(asprintf(&p, "/tmp/%s-%d.%s", prefix, (int) getpid(), suffix), 0);
        return p;
}

TEST(symbolizer_names_jit_code_from_perf_map) {
        _cleanup_(symbolizer_freep) Symbolizer *s = NULL;
        _cleanup_free_ char *map = jit_path("perf", "map");
        size_t size = 4 * 4096;
        uint8_t *code = mmap(NULL, size, PROT_READ | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        uint64_t base = (uint64_t) (uintptr_t) code;
        char text[256];

        ASSERT_TRUE(code != MAP_FAILED);
        (void) unlink(map);
        ASSERT_EQ(symbolizer_new(&s), 0);
        _cleanup_(address_space_freep) AddressSpace *as = self_address_space(s);

        /* No perf map: the anonymous module, as before. */
        const SymLoc *l = address_space_resolve(as, base + 0x10);
        ASSERT_STREQ(l->module, "[anon]");
        ASSERT_EQ(l->n_frames, 0);

        (void) snprintf(text, sizeof text,
                        "%" PRIx64 " 100 JS:*hoHotLoop /tmp/hot.js:1:19\n"
                        "%" PRIx64 " 40 Builtin:ArgumentsAdaptorTrampoline\n"
                        "garbage line\n", base, base + 0x1000);
        write_file(map, text, false);
        update_self(as);
        l = address_space_resolve(as, base + 0x10);
        ASSERT_STREQ(l->module, map);
        ASSERT_EQ(l->module_offset, base + 0x10);
        ASSERT_EQ(l->n_frames, 1);
        ASSERT_STREQ(l->frames[0].function, "JS:*hoHotLoop /tmp/hot.js:1:19");
        ASSERT_EQ(l->frames[0].entry, base);
        ASSERT_TRUE(l->frames[0].file == NULL);
        ASSERT_TRUE(address_space_resolve(as, base + 0x10) == l);       /* cached */
        ASSERT_STREQ(address_space_resolve(as, base + 0x1020)->frames[0].function,
                     "Builtin:ArgumentsAdaptorTrampoline");
        /* Not covered by the map: the anonymous module still. */
        l = address_space_resolve(as, base + 0x2000);
        ASSERT_STREQ(l->module, "[anon]");
        ASSERT_EQ(l->n_frames, 0);

        ModuleInfo info;
        ASSERT_EQ(address_space_module_info(as, base, &info), 0);
        ASSERT_STREQ(info.path, map);
        ASSERT_TRUE(info.jit);
        ASSERT_TRUE(info.symbolized);

        /* The runtime recompiled: a later line over the same code wins, after an update. */
        (void) snprintf(text, sizeof text, "%" PRIx64 " 20 JS:*hoHotLoop v2\n", base);
        write_file(map, text, true);
        update_self(as);
        ASSERT_STREQ(address_space_resolve(as, base + 0x10)->frames[0].function, "JS:*hoHotLoop v2");
        ASSERT_STREQ(address_space_resolve(as, base + 0x30)->frames[0].function,
                     "JS:*hoHotLoop /tmp/hot.js:1:19");

        /* Names are the process's own: another address space of the same symbolizer
         * without a perf map sees none of them. */
        _cleanup_(address_space_freep) AddressSpace *other = NULL;
        ASSERT_EQ(address_space_new(s, getppid(), &other), 0);
        Maps maps;
        ASSERT_EQ(procfs_read_maps(getpid(), &maps), 0);
        ASSERT_EQ(address_space_update(other, &maps), 0);
        maps_done(&maps);
        char ppid_map[64];
        (void) snprintf(ppid_map, sizeof ppid_map, "/tmp/perf-%d.map", (int) getppid());
        if (access(ppid_map, F_OK) != 0)
                ASSERT_EQ(address_space_resolve(other, base + 0x10)->n_frames, 0);

        /* Garbage over it all: nothing named, nothing broken. */
        write_file(map, "\xff\xfe garbage\n0 0 0\n", false);
        update_self(as);
        l = address_space_resolve(as, base + 0x10);
        ASSERT_STREQ(l->module, "[anon]");
        ASSERT_EQ(l->n_frames, 0);

        ASSERT_EQ(unlink(map), 0);
        ASSERT_EQ(munmap(code, size), 0);
}

TEST(symbolizer_names_jit_code_from_jitdump) {
        _cleanup_(symbolizer_freep) Symbolizer *s = NULL;
        _cleanup_free_ char *map = jit_path("perf", "map");
        _cleanup_free_ char *dump_path = jit_path("jit", "dump");
        size_t size = 4096;
        uint8_t *code = mmap(NULL, size, PROT_READ | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        uint64_t base = (uint64_t) (uintptr_t) code;
        static Dump d;

        ASSERT_TRUE(code != MAP_FAILED);
        (void) unlink(map);
        d = (Dump) {};
        dump_header(&d);
        dump_load(&d, base + 0x100, 0x80, 1, "JS:*fromJitdump");
        int fd = open(dump_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        ASSERT_GE(fd, 0);
        ASSERT_EQ(write(fd, d.data, d.len), (ssize_t) d.len);
        ASSERT_EQ(close(fd), 0);

        ASSERT_EQ(symbolizer_new(&s), 0);
        _cleanup_(address_space_freep) AddressSpace *as = self_address_space(s);
        const SymLoc *l = address_space_resolve(as, base + 0x140);
        ASSERT_STREQ(l->module, dump_path);
        ASSERT_EQ(l->n_frames, 1);
        ASSERT_STREQ(l->frames[0].function, "JS:*fromJitdump");
        ASSERT_STREQ(address_space_resolve(as, base + 0x10)->module, "[anon]");

        /* Records appended later are read on. */
        size_t end = d.len;
        dump_load(&d, base + 0x200, 0x10, 2, "JS:*later");
        fd = open(dump_path, O_WRONLY | O_APPEND | O_CLOEXEC);
        ASSERT_GE(fd, 0);
        ASSERT_EQ(write(fd, d.data + end, d.len - end), (ssize_t) (d.len - end));
        ASSERT_EQ(close(fd), 0);
        update_self(as);
        ASSERT_STREQ(address_space_resolve(as, base + 0x205)->frames[0].function, "JS:*later");

        ASSERT_EQ(unlink(dump_path), 0);
        ASSERT_EQ(munmap(code, size), 0);
}

int main(int argc, char **argv) {
        return tiny_main(argc, argv);
}
