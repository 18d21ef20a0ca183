/* symbolize/jitmap.h -- names of code a JIT compiler made at run time, from the files JIT
 * runtimes write for Linux perf: perf maps ("/tmp/perf-PID.map", text lines "START SIZE
 * NAME") and jitdump files ("jit-PID.dump", binary records, perf's
 * tools/perf/Documentation/jitdump-specification.txt).
 *
 * A JitTable holds the symbols of one file; where two overlap, the one added later wins
 * (code moved or freed and its addresses reused), as perf reads them. The parsers take the
 * bytes of a file in pieces, as it grows, and keep no pointer into them. A JitFile follows
 * one such file of a target: re-read from where it stopped when it grows, anew when it is
 * replaced or shrinks.
 *
 * These files are written by the target: untrusted. Lines, names, records and the number
 * of symbols are bounded; a malformed line is skipped; a jitdump record that cannot be
 * right ends the reading of that file (the symbols before it are kept). Never a crash. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "hashmap.h"

#define JIT_SYMBOLS_MAX (UINT32_C(1) << 20)     /* symbols kept per file; later ones dropped */
#define JIT_NAME_MAX 1024                       /* bytes of a name kept; longer ones are cut */
#define JIT_NAME_BYTES_MAX (UINT64_C(64) << 20) /* bytes of names kept per file */
#define PERF_MAP_LINE_MAX 4096                  /* longer lines are skipped whole */
#define JITDUMP_RECORD_MAX (UINT32_C(1) << 30)  /* a larger record ends the file */
#define JIT_FILE_READ_MAX (UINT64_C(64) << 20)  /* bytes read per refresh; the rest later */

typedef struct JitTable JitTable;

typedef struct JitSymbol {
        uint64_t start, size;           /* [start, start + size), absolute addresses */
        const char *name;               /* alive until the table is reset or freed */
} JitSymbol;

/* 0 or -ENOMEM. */
int jit_table_new(JitTable **ret);
/* Accepts NULL, returns NULL. */
JitTable *jit_table_free(JitTable *t);
/* Forgets every symbol (names handed out die). */
void jit_table_reset(JitTable *t);
/* Adds the symbol [START, START + SIZE) named by the NAME_LEN bytes at NAME (cut to
 * JIT_NAME_MAX; NUL and control bytes become '?'). An empty range, one that wraps around,
 * an empty name, or a full table is ignored. 1 when added, 0 when ignored, -ENOMEM. */
int jit_table_add(JitTable *t, uint64_t start, uint64_t size, const char *name, size_t name_len);
/* The symbol covering ADDR, the latest added where several do. false when none. */
bool jit_table_lookup(JitTable *t, uint64_t addr, JitSymbol *ret);
size_t jit_table_count(const JitTable *t);
/* Changes whenever a symbol is added or the table reset. */
uint64_t jit_table_generation(const JitTable *t);

/* perf map text. */
typedef struct PerfMapParser {
        bool skipping;                  /* inside an over-long line: drop up to its newline */
        uint64_t lines, bad_lines;
} PerfMapParser;

/* Parses the complete lines at the start of DATA (LEN bytes) into T and returns how many
 * bytes it consumed: up to and including the last newline, or all of DATA when it ends in
 * a line too long to keep. The caller presents the rest again, with more bytes after it.
 * A line is "START SIZE NAME", START and SIZE hex with or without 0x, separated by spaces
 * or tabs; NAME is the rest of the line (it may hold spaces). Negative errno on
 * allocation failure only. */
ssize_t perf_map_parse(PerfMapParser *p, JitTable *t, const char *data, size_t len);

/* jitdump records. */
typedef enum JitdumpState {
        JITDUMP_HEADER,                 /* waiting for the file header */
        JITDUMP_RECORDS,
        JITDUMP_DONE,                   /* JIT_CODE_CLOSE seen */
        JITDUMP_BAD,                    /* not a jitdump file, or a record that cannot be */
} JitdumpState;

typedef struct JitdumpParser {
        JitdumpState state;
        bool swapped;                   /* written in the other byte order */
        uint32_t version;
        uint64_t records, loads, moves;
        U64Map code_names;              /* code_index -> name in the table, for JIT_CODE_MOVE */
} JitdumpParser;

void jitdump_parser_init(JitdumpParser *p);
void jitdump_parser_done(JitdumpParser *p);
/* Parses the header and the whole records at the start of DATA (LEN bytes, the file from
 * the point the last call stopped at) into T. Returns how many bytes of the file it
 * consumed, which may be more than LEN: a record's code bytes are not needed, only its
 * head, so the caller seeks past them. 0 when DATA holds no whole record head yet (or the
 * parser is done). Negative errno on allocation failure only. */
int64_t jitdump_parse(JitdumpParser *p, JitTable *t, const uint8_t *data, size_t len);

/* A file of a target followed as it grows. */
typedef enum JitFormat {
        JIT_FORMAT_PERF_MAP,
        JIT_FORMAT_JITDUMP,
} JitFormat;

typedef struct JitFile JitFile;

/* OPEN_PATH is where we open it (through /proc/PID/root), NAME how the target names it
 * (what frames show as their module). Only a file owned by OWNER or root is read, as
 * perf does: a process cannot pass off another user's file as its map. Nothing is read
 * yet. 0 or -ENOMEM. */
int jit_file_new(JitFormat format, const char *open_path, const char *name, uid_t owner,
                 JitFile **ret);
/* Accepts NULL, returns NULL. */
JitFile *jit_file_free(JitFile *f);
/* Reads what was added to the file since the last call, when its size or mtime changed
 * (at most JIT_FILE_READ_MAX bytes a call); a file replaced (another inode) or shrunk is
 * read anew. 1 when the symbols changed, 0 when not, negative errno when the file cannot
 * be opened or read, -EBADF when it is no regular file, -EPERM when someone else owns it
 * (the symbols read before are kept). */
int jit_file_refresh(JitFile *f);
bool jit_file_lookup(JitFile *f, uint64_t addr, JitSymbol *ret);
const char *jit_file_name(const JitFile *f);
/* Whether the file was ever opened. */
bool jit_file_seen(const JitFile *f);
uint64_t jit_file_generation(const JitFile *f);
