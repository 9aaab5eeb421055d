/* What the benchmark programs share: a monotonic clock, the median, and a
   counting allocator. Needs _POSIX_C_SOURCE 200809L (clock_gettime) before
   the first system header, and lisa.h before this file. */
#ifndef LISA_BENCH_H
#define LISA_BENCH_H

#include <stdlib.h>
#include <string.h>
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

/* Host memory measured apart from the library's own tally: a lisa_allocator
   whose blocks carry their size in a header, so that the bytes held now and
   the most held at once are what malloc handed out, and a free that names
   another size than its block was given is counted as a mismatch. */
typedef struct bench_counter {
    size_t now, peak;
    long mismatched_frees;
} bench_counter;

#define BENCH_HEADER 16 /* keeps malloc's alignment for what follows */

static inline void *bench_counted_alloc(void *user, size_t size) {
    bench_counter *c = (bench_counter *)user;
    unsigned char *p = (unsigned char *)malloc(BENCH_HEADER + size);
    if (!p) return NULL;
    memcpy(p, &size, sizeof size);
    c->now += size;
    if (c->now > c->peak) c->peak = c->now;
    return p + BENCH_HEADER;
}

static inline void bench_counted_free(void *user, void *ptr, size_t size) {
    bench_counter *c = (bench_counter *)user;
    unsigned char *p = (unsigned char *)ptr - BENCH_HEADER;
    size_t held;
    if (!ptr) return;
    memcpy(&held, p, sizeof held);
    c->mismatched_frees += held != size;
    c->now -= held;
    free(p);
}

static inline lisa_allocator bench_counting_allocator(bench_counter *c) {
    lisa_allocator a;
    a.alloc = bench_counted_alloc;
    a.free = bench_counted_free;
    a.user = c;
    return a;
}

/* Starts a new high-water mark from what is held now. */
static inline void bench_counter_restart_peak(bench_counter *c) { c->peak = c->now; }

#endif
