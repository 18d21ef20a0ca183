/* profile/threadcreate.c -- see threadcreate.h. */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "hashmap.h"
#include "json.h"
#include "macro.h"
#include "tabwriter.h"
#include "threadcreate.h"
#include "threads-internal.h"

void creations_init(Creations *c) {
        *c = (Creations) {};
        stack_sites_init(&c->sites, sizeof(CreationSite), CREATIONS_SITES_MAX);
}

void creations_done(Creations *c) {
        for (size_t i = 0; i < c->sites.n; i++) {
                CreationSite *s = stack_sites_get(&c->sites, i);
                free(s->start_routine);
                free(s->thread_name);
        }
        stack_sites_done(&c->sites);
        c->total = 0;
}

static uint64_t labels_key(bool before, const char *start_routine, const char *thread_name) {
        Buf b = {};
        buf_printf(&b, "%d%s%c%s", before, start_routine ? start_routine : "", 0, thread_name ? thread_name : "");
        uint64_t h = hash_bytes(b.data, b.len);
        buf_done(&b);
        return h;
}

int creations_add(Creations *c, Stack *stack, bool before_tracking, const char *start_routine,
                  const char *thread_name) {
        long i = stack_sites_find(&c->sites, stack, labels_key(before_tracking, start_routine, thread_name));
        if (i < 0) {
                if (i == -E2BIG)
                        c->lost++;
                return (int) i;
        }
        CreationSite *s = stack_sites_get(&c->sites, (size_t) i);
        if (s->count == 0) {
                s->before_tracking = before_tracking;
                s->start_routine = start_routine ? strdup(start_routine) : NULL;
                s->thread_name = thread_name ? strdup(thread_name) : NULL;
        }
        s->count++;
        c->total++;
        return 0;
}

int creations_add_to_profile(const Creations *c, Profile *p) {
        int r = profile_add_sample_type(p, "threadcreate", "count");
        if (r == 0)
                r = profile_set_period(p, "threadcreate", "count", 1);
        for (size_t i = 0; i < c->sites.n && r == 0; i++) {
                const CreationSite *s = stack_sites_get(&c->sites, i);
                int64_t v = (int64_t) s->count;
                ProfileLabelSpec labels[2];
                size_t n = 0;
                if (s->start_routine)
                        labels[n++] = (ProfileLabelSpec) { .key = "start_routine", .str = s->start_routine };
                if (s->thread_name)
                        labels[n++] = (ProfileLabelSpec) { .key = "thread_name", .str = s->thread_name };
                r = profile_add_stack_rooted(p, &s->site.stack, s->before_tracking ? CREATED_BEFORE_TRACKING : NULL,
                                             &v, labels, n);
        }
        return r;
}

static int by_count(const void *a, const void *b) {
        const CreationSite *x = *(CreationSite *const *) a, *y = *(CreationSite *const *) b;
        if (x->count != y->count)
                return x->count > y->count ? -1 : 1;
        return x->site.hash < y->site.hash ? -1 : x->site.hash > y->site.hash;
}

/* Go's labelMap.String(): {"k":"v", …}, sorted by key. */
static void write_labels(Buf *out, const CreationSite *s) {
        if (!s->start_routine && !s->thread_name)
                return;
        buf_puts(out, "# labels: {");
        if (s->start_routine) {
                json_put_string(out, "start_routine");
                buf_putc(out, ':');
                json_put_string(out, s->start_routine);
        }
        if (s->thread_name) {
                if (s->start_routine)
                        buf_puts(out, ", ");
                json_put_string(out, "thread_name");
                buf_putc(out, ':');
                json_put_string(out, s->thread_name);
        }
        buf_puts(out, "}\n");
}

void creations_write_text(const Creations *c, const char *comment, Buf *out) {
        CreationSite **sorted = stack_sites_sorted(&c->sites, by_count);
        Buf text = {};
        buf_printf(&text, "threadcreate profile: total %" PRIu64 "\n", c->total);
        if (comment)
                buf_puts(&text, comment);
        for (size_t i = 0; sorted && i < c->sites.n; i++) {
                const CreationSite *s = sorted[i];
                buf_printf(&text, "%" PRIu64 " ", s->count);
                stack_write_debug1_key(&text, &s->site.stack);
                buf_puts(&text, "\n");
                write_labels(&text, s);
                stack_write_debug1_frames(&text, &s->site.stack);
                if (s->before_tracking)
                        buf_puts(&text, "#\t" CREATED_BEFORE_TRACKING "\n");
                buf_puts(&text, "\n");
        }
        tabwriter_format(text.data, text.len, out);
        buf_done(&text);
        free(sorted);
}
