/* attach/tracefs.h -- the kernel's catalogue of trace events: where tracefs is mounted, the
 * perf event id of a tracepoint and where its fields sit in the raw data perf hands out.
 *
 * Offsets are read from the event's format file, never assumed: they change between kernel
 * versions (sched_waking lost its "success" field in 4.x, prev_state widened). Everything
 * read is bounded and checked; a format that does not parse is -EBADMSG. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TRACEFS_PATH_MAX 256
#define TRACEPOINT_FIELDS_MAX 24
#define TRACEPOINT_FIELD_NAME_MAX 32

typedef struct TracepointField {
        char name[TRACEPOINT_FIELD_NAME_MAX];
        uint32_t offset, size;          /* in the raw record */
        bool is_signed;
} TracepointField;

typedef struct Tracepoint {
        uint64_t id;                    /* attr.config for PERF_TYPE_TRACEPOINT */
        TracepointField fields[TRACEPOINT_FIELDS_MAX];
        size_t n_fields;
} Tracepoint;

/* The directory tracefs is mounted on: $CPROFD_TRACEFS when set, else the first tracefs
 * mount of /proc/self/mountinfo, else /sys/kernel/tracing or /sys/kernel/debug/tracing
 * when they hold events/. 0, or -ENOENT when none is mounted. */
int tracefs_find(char ret[TRACEFS_PATH_MAX]);

/* Reads SYSTEM:EVENT ("sched", "sched_switch") under tracefs. 0; -ENOENT (no tracefs, or
 * no such event), -EACCES (files not readable), -EBADMSG (a format that does not parse). */
int tracepoint_read(const char *system, const char *event, Tracepoint *ret);

/* Parses the text of a format file into RET's fields (RET->id untouched). 0 or -EBADMSG. */
int tracepoint_parse_format(const char *text, Tracepoint *ret);

/* The field NAME of TP, or NULL. */
const TracepointField *tracepoint_field(const Tracepoint *tp, const char *name);

/* The unsigned value of F in RAW (RAW_SIZE bytes), sign-extended when F is signed; false
 * when F does not lie inside RAW or is wider than 8 bytes. */
bool tracepoint_field_value(const TracepointField *f, const uint8_t *raw, size_t raw_size, uint64_t *ret);

/* Into BUF: why reading SYSTEM:EVENT failed with ERR and how to fix it. Returns BUF. */
const char *tracepoint_explain_error(int err, const char *system, const char *event, char *buf, size_t size);
