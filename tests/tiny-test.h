/* tests/tiny-test.h -- a minimal test harness: TEST(name) { … } blocks registered at load
 * time, ASSERT_* macros that report file:line and the values, exit 77 to skip. */
#pragma once

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct TinyTest {
        const char *name;
        void (*func)(void);
} TinyTest;

#define TINY_TESTS_MAX 256
extern TinyTest tiny_tests[TINY_TESTS_MAX];
extern int tiny_n_tests;
extern const char *tiny_current;

#define TEST(name)                                                              \
        static void test_##name(void);                                          \
        __attribute__((constructor)) static void register_##name(void) {       \
                if (tiny_n_tests < TINY_TESTS_MAX)                              \
                        tiny_tests[tiny_n_tests++] = (TinyTest) { #name, test_##name }; \
        }                                                                       \
        static void test_##name(void)

#define TINY_FAIL(...)                                                          \
        do {                                                                    \
                fprintf(stderr, "FAIL %s (%s:%d): ", tiny_current, __FILE__, __LINE__); \
                fprintf(stderr, __VA_ARGS__);                                   \
                fputc('\n', stderr);                                            \
                exit(1);                                                        \
        } while (0)

#define ASSERT_TRUE(x) do { if (!(x)) TINY_FAIL("%s", #x); } while (0)
#define ASSERT_FALSE(x) do { if (x) TINY_FAIL("!(%s)", #x); } while (0)
#define ASSERT_CMP(a, op, b)                                                    \
        do {                                                                    \
                long long _a = (long long) (a), _b = (long long) (b);          \
                if (!(_a op _b))                                                \
                        TINY_FAIL("%s %s %s: %lld vs %lld", #a, #op, #b, _a, _b); \
        } while (0)
#define ASSERT_EQ(a, b) ASSERT_CMP(a, ==, b)
#define ASSERT_NE(a, b) ASSERT_CMP(a, !=, b)
#define ASSERT_GE(a, b) ASSERT_CMP(a, >=, b)
#define ASSERT_LE(a, b) ASSERT_CMP(a, <=, b)
#define ASSERT_GT(a, b) ASSERT_CMP(a, >, b)
#define ASSERT_LT(a, b) ASSERT_CMP(a, <, b)
#define ASSERT_STREQ(a, b)                                                      \
        do {                                                                    \
                const char *_a = (a), *_b = (b);                                \
                if (!_a || !_b || strcmp(_a, _b) != 0)                          \
                        TINY_FAIL("%s == %s: \"%s\" vs \"%s\"", #a, #b,         \
                                  _a ? _a : "(null)", _b ? _b : "(null)");      \
        } while (0)
#define ASSERT_CONTAINS(hay, needle)                                            \
        do {                                                                    \
                const char *_h = (hay), *_n = (needle);                         \
                if (!_h || !strstr(_h, _n))                                     \
                        TINY_FAIL("%s contains \"%s\"; it is:\n%s", #hay, _n, _h ? _h : "(null)"); \
        } while (0)

/* Exits 77 (meson: skipped) with a reason. */
#define TINY_SKIP(...)                                                          \
        do {                                                                    \
                fprintf(stderr, "SKIP: ");                                      \
                fprintf(stderr, __VA_ARGS__);                                   \
                fputc('\n', stderr);                                            \
                exit(77);                                                       \
        } while (0)

/* Runs every test, or those named on the command line. */
int tiny_main(int argc, char **argv);
