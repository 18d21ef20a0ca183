/* tests/targets/heap-plugin.c -- a process that loads a module once it is being heap-tracked
 * and then allocates only through that module, for the agent's hooking of modules loaded
 * later.
 *
 *   cprofd-test-heap-plugin LIBRARY
 *
 * Prints `ready PID` and waits for SIGUSR1; then dlopens LIBRARY (tests/targets/
 * heap-plugin-lib.c), prints `loaded`, and runs its plugin_run(), which leaks 1 KiB a
 * millisecond at plugin_leak_site, malloc called through the library's own GOT, and
 * prints `progress LEAKED SECONDS` every second. Nothing else allocates meanwhile, so no allocation
 * through a module hooked before the load gives the agent a chance to notice it. */
#include <dlfcn.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "target-signal.h"

static volatile sig_atomic_t go;

static void on_usr1(int sig) {
        (void) sig;
        go = 1;
}

int main(int argc, char *argv[]) {
        sigset_t waiting;

        if (argc != 2) {
                fprintf(stderr, "Usage: cprofd-test-heap-plugin LIBRARY\n");
                return 2;
        }
        if (usr1_prepare(on_usr1, &waiting) != 0)
                return 1;
        printf("ready %d\n", (int) getpid());
        fflush(stdout);
        while (!go)
                sigsuspend(&waiting);

        void *lib = dlopen(argv[1], RTLD_NOW);
        void (*run)(void) = lib ? (void (*)(void)) dlsym(lib, "plugin_run") : NULL;
        if (!run) {
                fprintf(stderr, "cprofd-test-heap-plugin: %s\n", dlerror());
                return 1;
        }
        printf("loaded\n");
        fflush(stdout);
        run();
        return 0;
}
