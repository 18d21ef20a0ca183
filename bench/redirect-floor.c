/* bench/redirect-floor.c -- libredirect-floor.so, preloaded into bench/heap-work by
 * bench/heap-overhead: a malloc and a free that only jump on to the C library's, through a
 * pointer, as cprofd's agent's hooks do once they have counted. What it costs is the floor
 * of any tracker that redirects the program's calls to the allocator (GOT, PLT or
 * preload), before it does any work of its own. */
#include <stddef.h>

#define EXPORT __attribute__((visibility("default")))

/* glibc's own names for its allocator: bound at load, before any constructor, so that no
 * allocation can come before them. Global (hidden), so that the compiler cannot fold the
 * pointers into direct jumps: the agent jumps through a pointer too. */
extern void *__libc_malloc(size_t n);
extern void __libc_free(void *p);

void *(*next_malloc)(size_t) = __libc_malloc;
void (*next_free)(void *) = __libc_free;

EXPORT void *malloc(size_t n);
EXPORT void *malloc(size_t n) {
        return next_malloc(n);
}

EXPORT void free(void *p);
EXPORT void free(void *p) {
        next_free(p);
}
