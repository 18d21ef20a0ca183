/* sources/profiles.c -- see profiles.h. */
#include <stdio.h>
#include <string.h>

#include "clock.h"
#include "profiles.h"

int profile_add_target_mappings(Profile *p, const Maps *maps, AddressSpace *as, const char *exe) {
        /* Two passes: pprof names a report after mapping[0], so the main executable's
         * mappings go in first. */
        for (int pass = 0; pass < 2; pass++)
                for (size_t i = 0; i < maps->n; i++) {
                        const MapEntry *e = &maps->entries[i];
                        if (!e->executable)
                                continue;
                        bool main = exe && e->path && strcmp(e->path, exe) == 0;
                        if (main != (pass == 0))
                                continue;
                        ModuleInfo info = {};
                        (void) address_space_module_info(as, e->start, &info);
                        ProfileMappingInfo m = {
                                .start = e->start,
                                .limit = e->end,
                                .offset = e->offset,
                                .path = info.jit ? info.path : e->path,   /* JIT code: its perf map */
                                .build_id = info.build_id,
                                .main = main,
                                .symbolized = info.symbolized,
                        };
                        int r = profile_add_mapping(p, &m, NULL);
                        if (r < 0)
                                return r;
                }
        return 0;
}

int sampled_profile_new(const char *type, unsigned hz, const Maps *maps, AddressSpace *as, const char *exe,
                        Profile **ret) {
        _cleanup_(profile_freep) Profile *p = NULL;
        int r = profile_new(NULL, &p);
        if (r == 0)
                r = profile_add_sample_type(p, "samples", "count");
        if (r == 0)
                r = profile_add_sample_type(p, type, "nanoseconds");
        if (r == 0)
                r = profile_set_period(p, type, "nanoseconds", (int64_t) (NSEC_PER_SEC / hz));
        if (r == 0)
                r = profile_add_target_mappings(p, maps, as, exe);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(p);
        return 0;
}

int goroutine_profile_build(const ThreadDump *d, const Maps *maps, AddressSpace *as, const char *exe,
                            bool waiters_only, Profile **ret) {
        _cleanup_(profile_freep) Profile *p = NULL;
        int r = profile_new(NULL, &p);
        if (r < 0)
                return r;
        r = profile_add_sample_type(p, "goroutine", "count");
        if (r < 0)
                return r;
        r = profile_set_period(p, "goroutine", "count", 1);
        if (r < 0)
                return r;
        p->time_nanos = (int64_t) d->time_ns;
        r = profile_add_target_mappings(p, maps, as, exe);
        if (r < 0)
                return r;

        size_t missing = 0;
        for (size_t i = 0; i < d->n_threads; i++) {
                const ThreadRecord *t = &d->threads[i];
                const int64_t one = 1;
                _cleanup_buf_ Buf wait = {};
                ProfileLabelSpec labels[2] = { { .key = "thread_name", .str = t->name ? t->name : "" } };
                size_t n_labels = 1;
                missing += t->error != 0;
                if (waiters_only && !t->sync)
                        continue;
                if (t->sync) {
                        thread_wait_write(t->sync, &wait);
                        labels[n_labels++] = (ProfileLabelSpec) { .key = "wait", .str = buf_str(&wait) };
                }
                r = profile_add_stack(p, &t->stack, &one, labels, n_labels);
                if (r < 0)
                        return r;
        }
        if (d->partial) {
                char comment[128];
                snprintf(comment, sizeof comment, "partial: %zu of %zu threads not captured%s", missing, d->n_threads,
                         d->exited ? " (the target exited during the snapshot)" : "");
                r = profile_add_comment(p, comment);
                if (r < 0)
                        return r;
        }
        *ret = TAKE_PTR(p);
        return 0;
}
