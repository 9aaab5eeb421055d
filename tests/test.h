/* Tiny test harness shared by the test programs. Each program ends with
   test_report("name"), which prints "name: N passed, M failed"; the test runner
   adds the lines up. */
#ifndef LISA_TEST_H
#define LISA_TEST_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

static int test_passed, test_failed;

/* CHECK(condition, printf-style message describing what was expected) */
#define CHECK(cond, ...)                                                    \
    do {                                                                    \
        if (cond) {                                                         \
            test_passed++;                                                  \
        } else {                                                            \
            test_failed++;                                                  \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);            \
            fprintf(stderr, __VA_ARGS__);                                   \
            fprintf(stderr, "\n");                                          \
        }                                                                   \
    } while (0)

/* |a - b| <= atol + rtol * |b| */
#if defined(__GNUC__) || defined(__clang__)
__attribute__((unused))
#endif
static int test_close(double a, double b, double atol, double rtol) {
    return fabs(a - b) <= atol + rtol * fabs(b);
}

static int test_report(const char *name) {
    printf("%s: %d passed, %d failed\n", name, test_passed, test_failed);
    return test_failed ? 1 : 0;
}

#endif
