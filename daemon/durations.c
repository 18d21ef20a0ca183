/* daemon/durations.c -- see durations.h. */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "durations.h"
#include "macro.h"

int parse_duration(const char *s, uint64_t *ret_ns) {
        static const struct {
                const char *suffix;
                uint64_t ns;
        } units[] = {
                { "ms", NSEC_PER_MSEC }, { "us", NSEC_PER_USEC }, { "ns", 1 },
                { "s", NSEC_PER_SEC },   { "m", 60 * NSEC_PER_SEC }, { "h", 3600 * NSEC_PER_SEC },
        };
        uint64_t total = 0;
        const char *p = s;

        if (!s || !*s)
                return -EINVAL;
        while (*p) {
                if (!isdigit((unsigned char) *p))
                        return -EINVAL;
                uint64_t v = 0;
                int digits = 0;
                for (; isdigit((unsigned char) *p); p++)
                        if (++digits > 9)
                                return -EINVAL;
                        else
                                v = v * 10 + (uint64_t) (*p - '0');
                uint64_t unit = 0;
                if (!*p && p == s + digits)
                        unit = NSEC_PER_SEC;    /* a bare number: seconds */
                for (size_t i = 0; !unit && i < ARRAY_SIZE(units); i++) {
                        size_t n = strlen(units[i].suffix);
                        if (strncmp(p, units[i].suffix, n) == 0 && !isalpha((unsigned char) p[n])) {
                                unit = units[i].ns;
                                p += n;
                        }
                }
                if (!unit || v > UINT64_MAX / unit || total + v * unit < total)
                        return -EINVAL;
                total += v * unit;
        }
        *ret_ns = total;
        return 0;
}

int parse_history(const char *s, unsigned *snapshots, uint64_t *bytes) {
        char *end;
        if (!s || !isdigit((unsigned char) *s))
                return -EINVAL;
        errno = 0;
        unsigned long long v = strtoull(s, &end, 10);
        if (errno || v == 0)
                return -EINVAL;
        if (!*end) {
                if (v > HISTORY_SNAPSHOTS_MAX)
                        return -EINVAL;
                *snapshots = (unsigned) v;
                return 0;
        }
        uint64_t mult = 0;
        switch (toupper((unsigned char) *end)) {
        case 'K': mult = 1024; break;
        case 'M': mult = 1024 * 1024; break;
        case 'G': mult = 1024 * 1024 * 1024; break;
        }
        const char *rest = end + 1;
        if (*rest == 'i' || *rest == 'I')
                rest++;
        if (*rest == 'B' || *rest == 'b')
                rest++;
        if (!mult || *rest || v > (UINT64_C(16) << 30) / mult)
                return -EINVAL;
        *bytes = v * mult;
        return 0;
}

/* Octal permission bits, 0 … 0777, digits only ("0660", "660", "0"). */
int parse_mode(const char *s, mode_t *ret) {
        unsigned v = 0;
        size_t n = strlen(s);
        if (n == 0 || n > 4)
                return -EINVAL;
        for (size_t i = 0; i < n; i++) {
                if (s[i] < '0' || s[i] > '7')
                        return -EINVAL;
                v = v * 8 + (unsigned) (s[i] - '0');
        }
        if (v > 0777)
                return -EINVAL;
        *ret = (mode_t) v;
        return 0;
}
