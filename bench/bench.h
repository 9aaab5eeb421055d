/* What the benchmark programs share: a monotonic clock and the median. Needs
   _POSIX_C_SOURCE 200809L (clock_gettime) before the first system header. */
#ifndef LISA_BENCH_H
#define LISA_BENCH_H

#include <time.h>

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* The median of x[0..n-1], n >= 1; sorts x in place. */
static double median(double *x, int n) {
    int i, j;
    for (i = 1; i < n; i++) /* insertion sort: n is a handful of timings */
        for (j = i; j > 0 && x[j - 1] > x[j]; j--) {
            double t = x[j];
            x[j] = x[j - 1];
            x[j - 1] = t;
        }
    return n % 2 ? x[n / 2] : 0.5 * (x[n / 2 - 1] + x[n / 2]);
}

#endif
