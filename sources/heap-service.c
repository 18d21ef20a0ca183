/* sources/heap-service.c -- see heap-service.h. */
#include <errno.h>
#include <event2/event.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "heap-service.h"
#include "heap-tracker.h"
#include "log.h"
#include "macro.h"
#include "profiles.h"
#include "service.h"

#define RETRY_NS (NSEC_PER_SEC)         /* between attempts to load the agent */

/* [worker] The tracker of TARGET, started now if it has none (or had one that stopped).
 * NULL with ERR set when it cannot be. */
static HeapTracker *tracker(Service *s, Target *target, char *err, size_t errlen) {
        if (target->heap && !target->heap->gone)
                return target->heap;
        target->heap = heap_tracker_stop(target->heap);
        int r = s->heap.uprobes ? heap_tracker_start_uprobes(target->pid, s->heap.rate, &target->heap, err, errlen)
                                : heap_tracker_start(target->pid, s->heap.agent_path, s->heap.rate, &target->heap,
                                                     err, errlen);
        if (r < 0) {
                /* No thread to borrow right now is retried every second under --heap: not
                 * worth a warning each time. */
                if (r == -EAGAIN)
                        log_debug("Heap tracking of pid %d: %s", (int) target->pid, err);
                else
                        log_warning("Heap tracking of pid %d: %s", (int) target->pid, err);
                target->heap = NULL;
                return NULL;
        }
        return target->heap;
}

/* "# tracking since …" lines: allocations made before tracking began are unknown. */
static void tracking_note(const HeapTracker *t, Buf *out) {
        char when[32];
        format_utc_time(t->started_ns, when);
        uint64_t now = now_realtime_ns(), age = now > t->started_ns ? (now - t->started_ns) / NSEC_PER_SEC : 0;
        buf_printf(out, "# tracking since %s (%" PRIu64 " s): allocations made before are not known\n", when, age);
        buf_printf(out, "# sampling: one sample per %" PRIu64 " bytes on average; %" PRIu64 " samples, %" PRIu64
                   " lost%s\n", t->heap.rate, t->samples, t->heap.lost,
                   t->gone ? "; the agent has stopped (the target exec'd or exited)" : "");
}

/* The memory facts of the target that /proc knows, as "# Key = value" lines in bytes. */
static void memory_facts(pid_t pid, const Maps *maps, Buf *out) {
        static const char *const keys[] = { "VmRSS", "VmHWM", "RssAnon", "RssFile", "VmData", "VmStk" };
        char path[64], line[256];
        snprintf(path, sizeof path, "/proc/%d/status", (int) pid);
        buf_printf(out, "\n# memory of pid %d (from /proc)\n", (int) pid);
        FILE *f = fopen(path, "re");
        while (f && fgets(line, sizeof line, f)) {
                for (size_t i = 0; i < ARRAY_SIZE(keys); i++) {
                        size_t n = strlen(keys[i]);
                        unsigned long long kb;
                        if (strncmp(line, keys[i], n) == 0 && line[n] == ':' &&
                            sscanf(line + n + 1, "%llu kB", &kb) == 1)
                                buf_printf(out, "# %s = %llu\n", keys[i], kb * 1024);
                }
        }
        if (f)
                fclose(f);
        uint64_t heap = 0, stack = 0, anon = 0;
        for (size_t i = 0; maps && i < maps->n; i++) {
                const MapEntry *e = &maps->entries[i];
                uint64_t len = e->end - e->start;
                if (e->path && strcmp(e->path, "[heap]") == 0)
                        heap += len;
                else if (e->path && strcmp(e->path, "[stack]") == 0)
                        stack += len;
                else if (!e->path && e->writable)
                        anon += len;
        }
        buf_printf(out, "# HeapMapping = %" PRIu64 "\n# StackMapping = %" PRIu64 "\n# AnonMappings = %" PRIu64 "\n",
                   heap, stack, anon);
}

/* [worker] The heap of TARGET now: a pprof profile in *RET (when DEBUG is 0) or Go's text
 * in REPLY; or an error in REPLY (*RET NULL). */
static void heap_collect(Service *s, Target *target, bool allocs, int debug, Reply *reply, Profile **ret) {
        char err[256] = "";
        *ret = NULL;
        if (target_check_exited(target)) {
                reply_error(reply, 410, "target pid %d has exited", (int) target->pid);
                return;
        }
        HeapTracker *t = tracker(s, target, err, sizeof err);
        if (!t) {
                reply_error(reply, 503, "cannot track the heap of pid %d: %s", (int) target->pid, err);
                return;
        }
        atomic_store(&target->heap_tracking, true);
        DrainMaps dm = { .pid = target->pid, .as = target->as };
        heap_tracker_drain(t, &dm);
        atomic_store(&target->heap_sites, (long) t->heap.sites.n);
        /* The profile's mappings and the memory facts: the drain's read, if it made one. */
        const Maps *maps = drain_maps_get(&dm);
        int r;

        Buf note = {};
        tracking_note(t, &note);
        if (debug > 0) {
                heap_write_text(&t->heap, note.data, &reply->body);
                memory_facts(target->pid, maps, &reply->body);
                buf_done(&note);
                drain_maps_done(&dm);
                return;
        }
        _cleanup_(profile_freep) Profile *p = NULL;
        r = profile_new(NULL, &p);
        if (r == 0) {
                p->time_nanos = (int64_t) now_realtime_ns();    /* a delta's duration comes from it */
                r = maps ? profile_add_target_mappings(p, maps, target->as, target->exe) : 0;
        }
        if (r == 0)
                r = heap_add_to_profile(&t->heap, allocs, p);
        if (r == 0)
                r = profile_add_comment_lines(p, note.data);
        buf_done(&note);
        drain_maps_done(&dm);
        if (r < 0) {
                reply_error(reply, 500, "cannot build the heap profile of pid %d: %s", (int) target->pid,
                            strerror(-r));
                return;
        }
        *ret = TAKE_PTR(p);
}

/* ---- the periodic drain ---- */

/* [worker] */
static void drain_target(Service *s, Target *target) {
        if (target->heap) {
                DrainMaps dm = { .pid = target->pid, .as = target->as };
                heap_tracker_drain(target->heap, &dm);
                drain_maps_done(&dm);
                atomic_store(&target->heap_sites, (long) target->heap->heap.sites.n);
                return;
        }
        uint64_t now = now_monotonic_ns();
        if (!s->heap.at_attach || target_check_exited(target) || now < target->heap_retry_ns)
                return;
        char err[256];
        if (!tracker(s, target, err, sizeof err))
                target->heap_retry_ns = now + RETRY_NS;
        else
                atomic_store(&target->heap_tracking, true);
}

/* [loop] */
static bool wants_drain(Service *s, Target *t) {
        return (atomic_load(&t->heap_tracking) || s->heap.at_attach) && !target_check_exited(t);
}

static int heap_service_start(Service *s) {
        s->heap_drain = (PeriodicDrain) { .service = s, .every_ms = HEAP_DRAIN_MS, .wants = wants_drain,
                                          .drain = drain_target };
        return periodic_drain_start(&s->heap_drain);
}

static void heap_service_stop(Service *s) {
        periodic_drain_stop(&s->heap_drain);
}

static void collect(Service *s, Target *target, const Collection *c, Reply *reply, Profile **ret) {
        heap_collect(s, target, c->info->variant == HEAP_ALLOCS, c->debug, reply, ret);
}

static long count(Service *s, Target *t, const ProfileInfo *info) {
        return atomic_load(&t->heap_tracking) ? atomic_load(&t->heap_sites) : 0;
}

const ProfileSource heap_source = {
        .name = "the heap agent (or uprobes)",
        .start = heap_service_start,
        .collect = collect,
        .count = count,
        .shutdown = heap_service_stop,
};
