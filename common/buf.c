/* common/buf.c -- see buf.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"

static void buf_reserve(Buf *b, size_t extra) {
        if (b->len + extra + 1 <= b->cap)
                return;
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + extra + 1)
                cap *= 2;
        char *p = realloc(b->data, cap);
        if (!p)
                abort();
        b->data = p;
        b->cap = cap;
}

void buf_append(Buf *b, const void *data, size_t len) {
        buf_reserve(b, len);
        if (len)
                memcpy(b->data + b->len, data, len);
        b->len += len;
        b->data[b->len] = 0;
}

void buf_puts(Buf *b, const char *s) {
        buf_append(b, s, strlen(s));
}

void buf_putc(Buf *b, char c) {
        buf_append(b, &c, 1);
}

void buf_vprintf(Buf *b, const char *fmt, va_list ap) {
        /* Format into the spare room first; grow and format again only if it did not fit. */
        buf_reserve(b, 64);
        va_list aq;
        va_copy(aq, ap);
        int n = vsnprintf(b->data + b->len, b->cap - b->len, fmt, aq);
        va_end(aq);
        if (n < 0) {
                b->data[b->len] = 0;
                return;
        }
        if ((size_t) n >= b->cap - b->len) {
                buf_reserve(b, (size_t) n);
                vsnprintf(b->data + b->len, (size_t) n + 1, fmt, ap);
        }
        b->len += (size_t) n;
}

void buf_printf(Buf *b, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        buf_vprintf(b, fmt, ap);
        va_end(ap);
}

void buf_reset(Buf *b) {
        b->len = 0;
        if (b->data)
                b->data[0] = 0;
}

void buf_done(Buf *b) {
        free(b->data);
        *b = (Buf) {};
}

char *buf_steal(Buf *b, size_t *ret_len) {
        buf_reserve(b, 0);
        char *p = b->data;
        if (ret_len)
                *ret_len = b->len;
        *b = (Buf) {};
        return p;
}
