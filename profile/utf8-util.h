/* profile/utf8-util.h -- private to profile/: UTF-8 decoding with Go's acceptance rules.
 *
 * The text encoders must count widths exactly as Go's utf8.RuneCount does (an invalid
 * byte counts as one rune) and must never pass bytes through that could confuse a reader
 * or the tab writer (0xff is its escape byte). Both use this one decoder. */
#pragma once

#include <stddef.h>
#include <stdint.h>

/* Length of the valid UTF-8 sequence at S (at most N bytes): 1..4, or 0 when the byte at
 * S does not start a valid, complete, shortest-form, non-surrogate sequence (Go's rules). */
static inline size_t utf8_valid_len(const unsigned char *s, size_t n) {
        if (n == 0)
                return 0;
        unsigned char c = s[0];
        if (c < 0x80)
                return 1;

        size_t len;
        unsigned char lo = 0x80, hi = 0xbf;     /* allowed range of the second byte */
        if (c >= 0xc2 && c <= 0xdf)
                len = 2;
        else if (c >= 0xe0 && c <= 0xef) {
                len = 3;
                if (c == 0xe0)
                        lo = 0xa0;              /* no overlong forms */
                else if (c == 0xed)
                        hi = 0x9f;              /* no surrogates */
        } else if (c >= 0xf0 && c <= 0xf4) {
                len = 4;
                if (c == 0xf0)
                        lo = 0x90;
                else if (c == 0xf4)
                        hi = 0x8f;              /* nothing above U+10FFFF */
        } else
                return 0;

        if (n < len || s[1] < lo || s[1] > hi)
                return 0;
        for (size_t i = 2; i < len; i++)
                if (s[i] < 0x80 || s[i] > 0xbf)
                        return 0;
        return len;
}

/* Go's utf8.RuneCount: every invalid byte counts as one rune. */
static inline size_t utf8_rune_count(const char *s, size_t n) {
        const unsigned char *p = (const unsigned char *) s;
        size_t count = 0;
        for (size_t i = 0; i < n; count++) {
                size_t l = utf8_valid_len(p + i, n - i);
                i += l ? l : 1;
        }
        return count;
}
