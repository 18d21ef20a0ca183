/* profile/json.c -- see json.h. */
#include <string.h>

#include "json.h"
#include "utf8-util.h"

void json_put_string(Buf *out, const char *s) {
        if (!s) {
                buf_puts(out, "null");
                return;
        }
        const unsigned char *p = (const unsigned char *) s;
        size_t n = strlen(s);
        buf_putc(out, '"');
        for (size_t i = 0; i < n;) {
                size_t l = utf8_valid_len(p + i, n - i);
                if (l == 0) {
                        buf_puts(out, "\\ufffd");
                        i++;
                        continue;
                }
                if (l > 1) {
                        buf_append(out, p + i, l);
                        i += l;
                        continue;
                }
                unsigned char c = p[i++];
                if (c == '"' || c == '\\')
                        buf_printf(out, "\\%c", c);
                else if (c < 0x20 || c == 0x7f)
                        buf_printf(out, "\\u%04x", c);
                else
                        buf_putc(out, (char) c);
        }
        buf_putc(out, '"');
}
