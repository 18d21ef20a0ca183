/* daemon/heap-service.c -- see heap-service.h. */
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

static void format_time(uint64_t realtime_ns, char buf[static 32]) {
        time_t t = (time_t) (realtime_ns / NSEC_PER_SEC);
        struct tm tm;
        gmtime_r(&t, &tm);
        strftime(buf, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* "# tracking since …" lines: allocations made before tracking began are unknown. */
static void tracking_note(const HeapTracker *t, Buf *out) {
        char when[32];
        format_time(t->started_ns, when);
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

void heap_collect(Service *s, Target *target, bool allocs, int debug, Reply *reply, Profile **ret) {
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
        atomic_store(&target->heap_sites, (long) t->heap.n_sites);
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
        /* One comment per line: pprof shows them one by one. */
        for (char *line = note.data, *nl; r == 0 && line && *line; line = nl ? nl + 1 : NULL) {
                nl = strchr(line, '\n');
                if (nl)
                        *nl = 0;
                r = profile_add_comment(p, line + 2);
        }
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
static void drain_job(void *userdata) {
        Service *s = userdata;
        uint64_t now = now_monotonic_ns();
        for (size_t i = 0; i < s->heap_targets.n; i++) {
                Target *target = s->heap_targets.items[i];
                if (target->heap) {
                        DrainMaps dm = { .pid = target->pid, .as = target->as };
                        heap_tracker_drain(target->heap, &dm);
                        drain_maps_done(&dm);
                        atomic_store(&target->heap_sites, (long) target->heap->heap.n_sites);
                        continue;
                }
                if (!s->heap.at_attach || target_check_exited(target) || now < target->heap_retry_ns)
                        continue;
                char err[256];
                if (!tracker(s, target, err, sizeof err))
                        target->heap_retry_ns = now + RETRY_NS;
                else
                        atomic_store(&target->heap_tracking, true);
        }
}

/* [loop] */
static void drained(void *userdata) {
        Service *s = userdata;
        for (size_t i = 0; i < s->heap_targets.n; i++)
                target_unref(s->heap_targets.items[i]);
        s->heap_targets.n = 0;
        s->heap_draining = false;
}

static bool wants_drain(Service *s, Target *t) {
        return (atomic_load(&t->heap_tracking) || s->heap.at_attach) && !target_check_exited(t);
}

/* [loop] Every HEAP_DRAIN_MS: a drain of every target, if none is queued yet. */
static void on_heap_timer(evutil_socket_t fd, short events, void *userdata) {
        Service *s = userdata;
        if (s->heap_draining)
                return;
        size_t n = 0;
        for (size_t i = 0; i < s->targets->n; i++)
                n += wants_drain(s, s->targets->items[i]);
        if (n == 0)
                return;
        if (n > s->heap_targets.cap) {
                Target **items = realloc(s->heap_targets.items, n * sizeof *items);
                if (!items)
                        return;
                s->heap_targets.items = items;
                s->heap_targets.cap = n;
        }
        for (size_t i = 0; i < s->targets->n; i++)
                if (wants_drain(s, s->targets->items[i]))
                        s->heap_targets.items[s->heap_targets.n++] = target_ref(s->targets->items[i]);
        if (worker_submit(s->worker, drain_job, drained, s) == 0)
                s->heap_draining = true;
        else
                drained(s);
}

int heap_service_start(Service *s) {
        s->heap_timer = event_new(s->base, -1, EV_PERSIST, on_heap_timer, s);
        struct timeval tv = { 0, HEAP_DRAIN_MS * 1000 };
        if (!s->heap_timer || event_add(s->heap_timer, &tv) < 0)
                return -ENOMEM;
        return 0;
}

void heap_service_stop(Service *s) {
        if (s->heap_timer) {
                event_free(s->heap_timer);
                s->heap_timer = NULL;
        }
        free(s->heap_targets.items);
        s->heap_targets = (typeof(s->heap_targets)) {};
}
