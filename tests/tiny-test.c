/* tests/tiny-test.c -- see tiny-test.h. */
#include "tiny-test.h"

TinyTest tiny_tests[TINY_TESTS_MAX];
int tiny_n_tests;
const char *tiny_current = "";

int tiny_main(int argc, char **argv) {
        int ran = 0;
        for (int i = 0; i < tiny_n_tests; i++) {
                bool selected = argc <= 1;
                for (int j = 1; j < argc; j++)
                        if (strcmp(argv[j], tiny_tests[i].name) == 0)
                                selected = true;
                if (!selected)
                        continue;
                tiny_current = tiny_tests[i].name;
                fprintf(stderr, "RUN  %s\n", tiny_current);
                tiny_tests[i].func();
                fprintf(stderr, "OK   %s\n", tiny_current);
                ran++;
        }
        if (ran == 0) {
                fprintf(stderr, "no test selected\n");
                return 1;
        }
        return 0;
}
