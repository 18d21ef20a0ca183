/* common/log.c -- see log.h. One line per message, written with a single write(2) so lines
 * from several threads never interleave. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

static int max_level = LOG_LEVEL_INFO;

void log_set_max_level(int level) {
        max_level = level;
}

int log_get_max_level(void) {
        return max_level;
}

int log_level_from_string(const char *s, int *ret) {
        static const char *const names[] = { "emerg", "alert", "crit", "err", "warning", "notice", "info", "debug" };
        for (size_t i = 0; i < ARRAY_SIZE(names); i++)
                if (strcmp(s, names[i]) == 0 || (s[0] == (char) ('0' + i) && s[1] == 0)) {
                        *ret = (int) i;
                        return 0;
                }
        if (strcmp(s, "error") == 0) {
                *ret = LOG_LEVEL_ERR;
                return 0;
        }
        return -EINVAL;
}

int log_internal(int level, int error, const char *file, int line, const char *fmt, ...) {
        int e = error < 0 ? -error : error;
        if (level > max_level)
                return -e;

        char buf[2048];
        int n = snprintf(buf, sizeof buf, "<%d>", level);
        va_list ap;
        va_start(ap, fmt);
        errno = e;      /* for %m */
        n += vsnprintf(buf + n, sizeof buf - (size_t) n, fmt, ap);
        va_end(ap);
        if (n > (int) sizeof buf - 2)
                n = (int) sizeof buf - 2;
        if (max_level >= LOG_LEVEL_DEBUG)
                n += snprintf(buf + n, sizeof buf - (size_t) n, " (%s:%d)", file, line);
        if (n > (int) sizeof buf - 2)
                n = (int) sizeof buf - 2;
        buf[n++] = '\n';
        (void) !write(STDERR_FILENO, buf, (size_t) n);
        return -e;
}
