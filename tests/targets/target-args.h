/* tests/targets/target-args.h -- the command line the test targets share:
 * [--exit-after-ms N] [--help]. */
#pragma once

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Returns -1 to go on (with *exit_after_ms set, 0 meaning "never"), else the exit status
 * main should return. */
static inline int target_parse_args(int argc, char *argv[], const char *name, long *exit_after_ms) {
        *exit_after_ms = 0;
        for (int i = 1; i < argc; i++) {
                if (strcmp(argv[i], "--exit-after-ms") == 0 && i + 1 < argc) {
                        char *end;
                        *exit_after_ms = strtol(argv[++i], &end, 10);
                        if (*end || *exit_after_ms <= 0)
                                goto usage;
                } else if (strcmp(argv[i], "--help") == 0) {
                        printf("Usage: %s [--exit-after-ms N]\n", name);
                        return 0;
                } else
                        goto usage;
        }
        return -1;
usage:
        fprintf(stderr, "Usage: %s [--exit-after-ms N]\n", name);
        return 2;
}
