/* attach/tracefs.c -- see tracefs.h. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "macro.h"
#include "procfs-internal.h"
#include "tracefs.h"

#define FORMAT_BYTES_MAX (64 * 1024)    /* a format file is ~1-4 KiB */

static bool has_events(const char *dir) {
        char path[TRACEFS_PATH_MAX + 16];
        struct stat st;
        snprintf(path, sizeof path, "%s/events", dir);
        return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* The mount point of the first tracefs line of mountinfo: field 5 is the mount point,
 * and the filesystem type follows the " - " separator. Octal escapes (\040) are left:
 * such a path is not used. */
static int mountinfo_tracefs(char ret[TRACEFS_PATH_MAX]) {
        _cleanup_free_ char *text = NULL;
        size_t len;
        int r = procfs_read_file("/proc/self/mountinfo", 1 << 20, &text, &len);
        if (r < 0)
                return r;
        for (char *line = text, *next; line && *line; line = next) {
                next = strchr(line, '\n');
                if (next)
                        *next++ = '\0';
                char *sep = strstr(line, " - ");
                if (!sep || strncmp(sep + 3, "tracefs ", 8) != 0)
                        continue;
                char mount_point[TRACEFS_PATH_MAX];
                if (sscanf(line, "%*s %*s %*s %*s %255s", mount_point) != 1 || strchr(mount_point, '\\'))
                        continue;
                if (has_events(mount_point)) {
                        snprintf(ret, TRACEFS_PATH_MAX, "%s", mount_point);
                        return 0;
                }
        }
        return -ENOENT;
}

int tracefs_find(char ret[TRACEFS_PATH_MAX]) {
        const char *forced = getenv("CPROFD_TRACEFS");
        if (forced && *forced) {
                if (strlen(forced) >= TRACEFS_PATH_MAX || !has_events(forced))
                        return -ENOENT;
                snprintf(ret, TRACEFS_PATH_MAX, "%s", forced);
                return 0;
        }
        if (mountinfo_tracefs(ret) == 0)
                return 0;
        static const char *const known[] = { "/sys/kernel/tracing", "/sys/kernel/debug/tracing" };
        for (size_t i = 0; i < ARRAY_SIZE(known); i++)
                if (has_events(known[i])) {
                        snprintf(ret, TRACEFS_PATH_MAX, "%s", known[i]);
                        return 0;
                }
        return -ENOENT;
}

/* "\tfield:char prev_comm[16];\toffset:8;\tsize:16;\tsigned:0;" */
static int parse_field_line(const char *line, TracepointField *ret) {
        const char *decl = strstr(line, "field:");
        if (!decl)
                return -EBADMSG;
        decl += 6;
        const char *semi = strchr(decl, ';');
        if (!semi)
                return -EBADMSG;
        /* The name is the declaration's last identifier, before any [N]. */
        const char *end = semi;
        const char *bracket = memchr(decl, '[', (size_t) (semi - decl));
        if (bracket)
                end = bracket;
        while (end > decl && end[-1] == ' ')
                end--;
        const char *start = end;
        while (start > decl && (start[-1] == '_' || (start[-1] >= 'a' && start[-1] <= 'z') ||
                                (start[-1] >= 'A' && start[-1] <= 'Z') || (start[-1] >= '0' && start[-1] <= '9')))
                start--;
        size_t n = (size_t) (end - start);
        if (n == 0 || n >= TRACEPOINT_FIELD_NAME_MAX)
                return -EBADMSG;
        unsigned offset, size, is_signed;
        const char *o = strstr(semi, "offset:"), *s = strstr(semi, "size:"), *g = strstr(semi, "signed:");
        if (!o || !s || !g || sscanf(o, "offset:%u;", &offset) != 1 || sscanf(s, "size:%u;", &size) != 1 ||
            sscanf(g, "signed:%u;", &is_signed) != 1 || size == 0 || offset > 65535 || size > 65535)
                return -EBADMSG;
        *ret = (TracepointField) { .offset = offset, .size = size, .is_signed = is_signed != 0 };
        memcpy(ret->name, start, n);
        ret->name[n] = '\0';
        return 0;
}

int tracepoint_parse_format(const char *text, Tracepoint *ret) {
        ret->n_fields = 0;
        for (const char *line = text; line && *line;) {
                const char *nl = strchr(line, '\n');
                size_t len = nl ? (size_t) (nl - line) : strlen(line);
                char buf[512];
                if (len < sizeof buf && memmem(line, len, "field:", 6)) {
                        memcpy(buf, line, len);
                        buf[len] = '\0';
                        if (ret->n_fields >= TRACEPOINT_FIELDS_MAX)
                                return -EBADMSG;
                        if (parse_field_line(buf, &ret->fields[ret->n_fields]) < 0)
                                return -EBADMSG;
                        ret->n_fields++;
                }
                line = nl ? nl + 1 : NULL;
        }
        return ret->n_fields > 0 ? 0 : -EBADMSG;
}

int tracepoint_read(const char *system, const char *event, Tracepoint *ret) {
        char root[TRACEFS_PATH_MAX], path[TRACEFS_PATH_MAX + 128];
        _cleanup_free_ char *text = NULL;
        size_t len;
        Tracepoint tp = {};
        int r = tracefs_find(root);
        if (r < 0)
                return r;
        if (strchr(system, '/') || strchr(event, '/'))
                return -EINVAL;

        snprintf(path, sizeof path, "%s/events/%s/%s/id", root, system, event);
        r = procfs_read_file(path, 64, &text, &len);
        if (r < 0)
                return r == -ESRCH ? -ENOENT : r;
        char *end;
        errno = 0;
        unsigned long long id = strtoull(text, &end, 10);
        if (errno || end == text || (*end && *end != '\n'))
                return -EBADMSG;
        tp.id = id;
        free(TAKE_PTR(text));

        snprintf(path, sizeof path, "%s/events/%s/%s/format", root, system, event);
        r = procfs_read_file(path, FORMAT_BYTES_MAX, &text, &len);
        if (r < 0)
                return r == -ESRCH ? -ENOENT : r;
        r = tracepoint_parse_format(text, &tp);
        if (r < 0)
                return r;
        *ret = tp;
        return 0;
}

const TracepointField *tracepoint_field(const Tracepoint *tp, const char *name) {
        for (size_t i = 0; i < tp->n_fields; i++)
                if (strcmp(tp->fields[i].name, name) == 0)
                        return &tp->fields[i];
        return NULL;
}

bool tracepoint_field_value(const TracepointField *f, const uint8_t *raw, size_t raw_size, uint64_t *ret) {
        if (!f || !raw || f->size > 8 || f->offset > raw_size || f->size > raw_size - f->offset)
                return false;
        uint64_t v = 0;
        memcpy(&v, raw + f->offset, f->size);   /* little-endian */
        if (f->is_signed && f->size < 8 && (v >> (f->size * 8 - 1)) & 1)
                v |= ~UINT64_C(0) << (f->size * 8);
        *ret = v;
        return true;
}

const char *tracepoint_explain_error(int err, const char *system, const char *event, char *buf, size_t size) {
        char root[TRACEFS_PATH_MAX];
        bool mounted = tracefs_find(root) == 0;
        if (!mounted)
                snprintf(buf, size, "tracefs is not mounted, so the %s:%s tracepoint cannot be found: "
                         "mount it (`mount -t tracefs nodev /sys/kernel/tracing`, or systemd's "
                         "sys-kernel-tracing.mount), or set CPROFD_TRACEFS to where it is", system, event);
        else if (err == -EACCES || err == -EPERM)
                snprintf(buf, size, "%s/events/%s/%s is not readable by cprofd (%s): run it as root or "
                         "give it read access to tracefs", root, system, event, strerror(-err));
        else if (err == -ENOENT)
                snprintf(buf, size, "this kernel has no %s:%s tracepoint under %s", system, event, root);
        else
                snprintf(buf, size, "cannot read the %s:%s tracepoint under %s: %s", system, event, root,
                         strerror(err < 0 ? -err : err));
        return buf;
}
