/* tests/targets/heap-plugin-lib.c -- the module tests/targets/heap-plugin.c loads: leaks
 * 1 KiB a millisecond at plugin_leak_site, through its own GOT's malloc, and prints
 * `progress LEAKED SECONDS` every second. Never returns. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "target-clock.h"

#define _noinline_ __attribute__((noinline, noipa))
#define LEAK_SIZE 1024

struct block {
        struct block *next;
        char data[LEAK_SIZE - sizeof(struct block *)];
};

static struct block *leak_list;

_noinline_ static void plugin_leak_site(void) {
        struct block *b = malloc(LEAK_SIZE);
        if (!b) {
                fprintf(stderr, "heap-plugin: out of memory\n");
                exit(1);
        }
        b->next = leak_list;
        leak_list = b;
}

void plugin_run(void);
void plugin_run(void) {
        int64_t start = now_us(), next_report = start + 1000000;
        long leaked = 0, seconds = 0;

        for (;;) {
                /* Paced by the clock: 1 a millisecond on average, in bursts. */
                while (leaked < (now_us() - start) / 1000) {
                        plugin_leak_site();
                        leaked++;
                }
                if (now_us() >= next_report) {
                        printf("progress %ld %ld\n", leaked, ++seconds);
                        fflush(stdout);
                        next_report += 1000000;
                }
                sleep_us(1000);
        }
}
