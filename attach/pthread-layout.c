/* attach/pthread-layout.c -- see pthread-layout.h. */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "pthread-layout.h"

#define SEARCH_BYTES 2048               /* struct pthread is ~2.3 KiB; start_routine is
                                           within the first ~1.6 KiB in every glibc */

static void *calibration_start(void *arg) {
        size_t *ret = arg;
        const uint8_t *self = (const uint8_t *) (uintptr_t) pthread_self();
        void *(*fn)(void *) = calibration_start;
        uintptr_t want = (uintptr_t) fn;
        /* The start routine, followed by its argument: two words that must both match. */
        for (size_t off = 0; off + 2 * sizeof want <= SEARCH_BYTES; off += sizeof want) {
                uintptr_t v, a;
                memcpy(&v, self + off, sizeof v);
                memcpy(&a, self + off + sizeof v, sizeof a);
                if (v == want && a == (uintptr_t) arg) {
                        *ret = off;
                        return NULL;
                }
        }
        return NULL;
}

int pthread_start_routine_offset(size_t *ret) {
        static int known;               /* 1 found, -1 not found, 0 not tried */
        static size_t offset;
        if (known == 0) {
                size_t found = SIZE_MAX;
                pthread_t t;
                known = -1;
                if (pthread_create(&t, NULL, calibration_start, &found) == 0 && pthread_join(t, NULL) == 0 &&
                    found != SIZE_MAX) {
                        offset = found;
                        known = 1;
                }
        }
        if (known < 0)
                return -ENOENT;
        *ret = offset;
        return 0;
}

bool pthread_layout_is_ours(const Maps *maps) {
        Maps own;
        if (procfs_read_maps(getpid(), &own) < 0)
                return false;
        const MapEntry *a = maps_find_module(&own, module_is_libc, NULL);
        const MapEntry *b = maps_find_module(maps, module_is_libc, NULL);
        bool same = a && b && a->inode == b->inode && a->dev_major == b->dev_major && a->dev_minor == b->dev_minor;
        maps_done(&own);
        return same;
}
