/* profile/contention.c -- see contention.h. */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "contention.h"
#include "macro.h"
#include "tabwriter.h"

void contention_init(Contention *c, uint64_t period) {
        *c = (Contention) { .period = MAX(period, (uint64_t) 1) };
        stack_sites_init(&c->sites, sizeof(ContentionSite), CONTENTION_SITES_MAX);
}

void contention_done(Contention *c) {
        stack_sites_done(&c->sites);
        c->count = c->delay_ns = 0;
}

static ContentionSite *contention_site(const Contention *c, size_t i) {
        return stack_sites_get(&c->sites, i);
}

int contention_add(Contention *c, Stack *stack, double weight, uint64_t delay_ns) {
        long i = stack_sites_find(&c->sites, stack, 0);
        if (i < 0) {
                if (i == -E2BIG)
                        c->lost++;
                return (int) i;
        }
        ContentionSite *s = contention_site(c, (size_t) i);
        s->count += weight;
        s->delay_ns += weight * (double) delay_ns;
        c->count += weight;
        c->delay_ns += weight * (double) delay_ns;
        return 0;
}

static int64_t to_int64(double v) {
        if (!(v > 0))
                return 0;
        return v >= 9.2e18 ? INT64_MAX : (int64_t) llround(v);
}

int contention_add_to_profile(const Contention *c, Profile *p) {
        int r = profile_add_sample_type(p, "contentions", "count");
        if (r == 0)
                r = profile_add_sample_type(p, "delay", "nanoseconds");
        if (r == 0)
                r = profile_set_period(p, "contentions", "count", 1);
        for (size_t i = 0; i < c->sites.n && r == 0; i++) {
                const ContentionSite *s = contention_site(c, i);
                int64_t v[2] = { to_int64(s->count * (double) c->period), to_int64(s->delay_ns * (double) c->period) };
                r = profile_add_stack(p, &s->site.stack, v, NULL, 0);
        }
        return r;
}

static int by_delay(const void *a, const void *b) {
        const ContentionSite *x = *(ContentionSite *const *) a, *y = *(ContentionSite *const *) b;
        if (x->delay_ns != y->delay_ns)
                return x->delay_ns > y->delay_ns ? -1 : 1;
        return x->site.hash < y->site.hash ? -1 : x->site.hash > y->site.hash;
}

void contention_write_text(const Contention *c, const char *name, const char *comment, Buf *out) {
        size_t n = c->sites.n;
        ContentionSite **sorted = stack_sites_sorted(&c->sites, by_delay);
        Buf text = {};

        buf_printf(&text, "--- %s:\ncycles/second=1000000000\n", name);
        if (strcmp(name, "mutex") == 0)
                buf_printf(&text, "sampling period=%" PRIu64 "\n", c->period);
        if (comment)
                buf_puts(&text, comment);
        for (size_t i = 0; sorted && i < n; i++) {
                const ContentionSite *s = sorted[i];
                buf_printf(&text, "%" PRId64 " %" PRId64 " ", to_int64(s->delay_ns), to_int64(s->count));
                stack_site_write_debug1(&text, &s->site);
        }
        tabwriter_format(text.data, text.len, out);
        buf_done(&text);
        free(sorted);
}
