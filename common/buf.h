/* common/buf.h -- a growable byte buffer for building replies. Allocation failure aborts:
 * replies are bounded by the limits of the code that fills them. */
#pragma once

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "macro.h"

typedef struct Buf {
        char *data;     /* NUL-terminated when non-NULL */
        size_t len;
        size_t cap;
} Buf;

void buf_append(Buf *b, const void *data, size_t len);
void buf_puts(Buf *b, const char *s);
void buf_putc(Buf *b, char c);
void buf_printf(Buf *b, const char *fmt, ...) _printf_(2, 3);
void buf_vprintf(Buf *b, const char *fmt, va_list ap) _printf_(2, 0);
void buf_reset(Buf *b);
/* Releases the memory; the Buf is empty again. */
void buf_done(Buf *b);
/* Hands the data out (caller frees); the Buf is empty again. Never NULL. */
char *buf_steal(Buf *b, size_t *ret_len);
/* The text so far, "" when nothing was appended. Valid until the next append. */
static inline const char *buf_str(const Buf *b) {
        return b->data ? b->data : "";
}

static inline void buf_donep(Buf *b) {
        buf_done(b);
}
#define _cleanup_buf_ _cleanup_(buf_donep)
