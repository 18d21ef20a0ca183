/* sources/snapshots.c -- see snapshots.h. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "locks.h"
#include "log.h"
#include "macro.h"
#include "pprof.h"
#include "profiles.h"
#include "service.h"
#include "snapshots.h"
#include "wall.h"

void reply_thread_dump_error(Reply *reply, pid_t pid, int r, pid_t tracer) {
        if (r == -ESRCH) {
                reply_error(reply, 410, "target pid %d has exited", (int) pid);
                return;
        }
        if (r == -EPERM && tracer > 0) {
                char comm[THREAD_NAME_MAX] = "?";
                (void) procfs_read_comm(tracer, comm);
                reply_error(reply, 503,
                            "pid %d is traced by process %d (%s): cprofd can stop its threads once that tracer detaches",
                            (int) pid, (int) tracer, comm);
                return;
        }
        if (r == -EAGAIN) {
                reply_error(reply, 503, "pid %d is in the middle of an execve() or exit: no thread could be "
                            "stopped; try again", (int) pid);
                return;
        }
        reply_error(reply, 503, "cannot take a thread dump of pid %d: %s", (int) pid, strerror(-r));
}

static void write_partial_note(const ThreadDump *d, int debug, Buf *out) {
        if (!d->partial)
                return;
        size_t missing = 0;
        for (size_t i = 0; i < d->n_threads; i++)
                missing += d->threads[i].error != 0;
        buf_printf(out, "%s# partial: %zu of %zu threads not captured%s\n", debug == 2 ? "\n" : "", missing,
                   d->n_threads, d->exited ? " (the target exited during the snapshot)" : "");
}

/* [worker] The thread growth over the target's history: text, or the profile. */
static void collect_growth(const Collection *c, Target *target, Reply *reply, Profile **ret) {
        _cleanup_(history_growth_freep) HistoryGrowth *g = NULL;
        _cleanup_(profile_freep) Profile *profile = NULL;
        Maps maps = {};
        int r;

        if (!target->history) {
                reply_error(reply, 503, "no snapshot of pid %d yet: growth needs periodic snapshots "
                            "(--interval) or earlier dumps", (int) target->pid);
                return;
        }
        r = history_growth(target->history, UINT64_MAX, &g);
        if (r < 0) {
                reply_error(reply, 500, "cannot compute the growth of pid %d: %s", (int) target->pid,
                            strerror(-r));
                return;
        }
        if (c->debug > 0) {
                history_growth_write_text(g, &reply->body);
                return;
        }
        r = profile_new(NULL, &profile);
        if (r == 0 && procfs_read_maps(target->pid, &maps) == 0) {
                (void) address_space_update(target->as, &maps);
                r = profile_add_target_mappings(profile, &maps, target->as, target->exe);
                maps_done(&maps);
        }
        if (r == 0)
                r = history_growth_profile(g, profile);
        if (r < 0) {
                reply_error(reply, 500, "cannot build the growth profile of pid %d: %s", (int) target->pid,
                            strerror(-r));
                return;
        }
        *ret = TAKE_PTR(profile);
}

/* [worker] The threads now: a text dump, JSON (locks), or the goroutine profile. */
static void collect(Service *s, Target *target, const Collection *c, Reply *reply, Profile **ret) {
        SnapshotProfile which = c->info->variant;
        ThreadDump dump = {};
        Maps maps = {};
        pid_t tracer = 0;
        int r;

        if (which == SNAPSHOT_GROWTH) {
                collect_growth(c, target, reply, ret);
                return;
        }
        r = target_thread_dump(s->targets, target, SNAPSHOT_STOP_ALL, DUMP_WAITS_ALL, &dump,
                               c->debug == 0 ? &maps : NULL, &tracer);
        if (r < 0) {
                if (r != -ESRCH && r != -EAGAIN && !(r == -EPERM && tracer > 0))
                        log_warning_errno(r, "Failed to take a thread dump of pid %d: %m", (int) target->pid);
                reply_thread_dump_error(reply, target->pid, r, tracer);
                return;
        }

        bool locks = which == SNAPSHOT_LOCKS;
        if (locks && c->json) {
                locks_write_json(&dump, &reply->body);
                reply->content_type = "application/json";
        } else if (c->debug > 0) {
                if (locks)
                        locks_write_debug1(&dump, &reply->body);
                else if (c->debug == 2)
                        thread_dump_write_debug2(&dump, &reply->body);
                else
                        thread_dump_write_debug1(&dump, &reply->body);
                write_partial_note(&dump, c->debug, &reply->body);
        } else {
                r = goroutine_profile_build(&dump, &maps, target->as, target->exe, locks, ret);
                if (r < 0)
                        reply_error(reply, 500, "cannot build the profile of pid %d: %s", (int) target->pid,
                                    strerror(-r));
        }
        maps_done(&maps);
        thread_dump_done(&dump);
}

static long count(Service *s, Target *t, const ProfileInfo *info) {
        switch ((SnapshotProfile) info->variant) {
        case SNAPSHOT_GROWTH:
                return atomic_load(&t->growing_groups);
        case SNAPSHOT_LOCKS:
                return atomic_load(&t->waited_objects);
        case SNAPSHOT_GOROUTINE: {
                pid_t *tids;
                size_t n;
                if (target_check_exited(t) || procfs_list_threads(t->pid, &tids, &n) < 0)
                        return -1;
                free(tids);
                return (long) n;
        }
        case SNAPSHOT_WALL:
                break;
        }
        return -1;
}

const ProfileSource snapshot_source = {
        .name = "ptrace snapshots",
        .collect = collect,
        .start_window = wall_profile_start,
        .count = count,
        .shutdown = wall_profiles_shutdown,
};
