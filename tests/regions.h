/* Checks on how an object lays out its allocations. An allocator that records
   every live block, and named regions (a pointer and a length) that must each
   lie inside one block without overlapping another region; when they tile the
   blocks they must also cover every byte, so a size counted apart from where
   the buffers are placed shows up as a gap or an overlap. */
#ifndef LISA_TEST_REGIONS_H
#define LISA_TEST_REGIONS_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "test.h"

#define RG_MAX_BLOCKS 16

typedef struct rg_block {
    const char *p;
    size_t size;
} rg_block;

typedef struct rg_alloc {
    rg_block blocks[RG_MAX_BLOCKS];
    int n;
    size_t live;
    int errors; /* a free of an unknown pointer or with the wrong size; too many blocks */
} rg_alloc;

static void *rg_malloc(void *user, size_t size) {
    rg_alloc *r = (rg_alloc *)user;
    void *p;
    if (r->n == RG_MAX_BLOCKS) {
        r->errors++;
        return NULL;
    }
    p = malloc(size);
    if (!p) return NULL;
    r->blocks[r->n].p = (const char *)p;
    r->blocks[r->n].size = size;
    r->n++;
    r->live += size;
    return p;
}

static void rg_free(void *user, void *p, size_t size) {
    rg_alloc *r = (rg_alloc *)user;
    int i;
    for (i = 0; i < r->n; i++)
        if (r->blocks[i].p == (const char *)p) break;
    if (i == r->n || r->blocks[i].size != size) {
        r->errors++;
        return;
    }
    r->live -= size;
    r->blocks[i] = r->blocks[--r->n];
    free(p);
}

static lisa_allocator rg_allocator(rg_alloc *r) {
    lisa_allocator a;
    memset(r, 0, sizeof *r);
    a.alloc = rg_malloc;
    a.free = rg_free;
    a.user = r;
    return a;
}

typedef struct rg_region {
    const char *name;
    const void *p;
    size_t bytes;
} rg_region;

/* Fills g with n regions from parallel lists of names, pointers and bytes. */
static int rg_regions(rg_region *g, const char *const *names, const void *const *p, const size_t *bytes, int n) {
    int i;
    for (i = 0; i < n; i++) {
        g[i].name = names[i];
        g[i].p = p[i];
        g[i].bytes = bytes[i];
    }
    return n;
}

/* Every region (n of them) inside one of the blocks and no two overlapping;
   with tile set, their bytes also add up to the blocks' (nothing left over). */
static void rg_check(const char *label, const rg_block *blocks, int n_blocks, const rg_region *g, int n,
                     int tile) {
    size_t covered = 0, total = 0;
    int i, j, b;
    for (b = 0; b < n_blocks; b++) total += blocks[b].size;
    for (i = 0; i < n; i++) {
        uintptr_t lo = (uintptr_t)g[i].p, hi = lo + g[i].bytes, inside = 0;
        for (b = 0; b < n_blocks; b++) {
            uintptr_t blo = (uintptr_t)blocks[b].p;
            if (g[i].p && lo >= blo && hi <= blo + blocks[b].size) inside = 1;
        }
        CHECK(inside, "%s: %s (%lu bytes) lies inside an allocation", label, g[i].name,
              (unsigned long)g[i].bytes);
        for (j = 0; j < i; j++) {
            uintptr_t lo2 = (uintptr_t)g[j].p, hi2 = lo2 + g[j].bytes;
            if (g[i].bytes && g[j].bytes && lo < hi2 && lo2 < hi) break;
        }
        CHECK(j == i, "%s: %s overlaps no region before it (found %s)", label, g[i].name,
              j < i ? g[j].name : "none");
        covered += g[i].bytes;
    }
    if (tile)
        CHECK(covered == total, "%s: the regions cover the %lu allocated bytes exactly (%lu)", label,
              (unsigned long)total, (unsigned long)covered);
}

/* After the object is freed: no byte live (by the allocator and by the object's
   own count), and every free matched an allocation and its size. */
static void rg_check_freed(const char *label, const rg_alloc *r, size_t object_bytes) {
    CHECK(r->live == 0 && object_bytes == 0 && r->errors == 0,
          "%s: freeing returns every byte with the size allocated (%lu live, %lu counted, %d bad frees)",
          label, (unsigned long)r->live, (unsigned long)object_bytes, r->errors);
}

#endif
