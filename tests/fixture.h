/* Reader for the reference fixtures written by tools/make_fixtures.py.

   Format (little endian): magic "LSFX", int32 count, then count entries of
   int32 name_len, name bytes, int32 dtype (0 float32, 1 int32), int32 ndim,
   int32 shape[ndim], data (prod(shape) elements of dtype).

   Usage:
       fixture f;
       if (fixture_load(&f, "tests/fixtures/x.bin") == 0) {
           const fixture_entry *e = fixture_find(&f, "logits");
           ... e->f32 or e->i32, e->n elements, e->shape ...
           fixture_free(&f);
       }
*/
#ifndef LISA_FIXTURE_H
#define LISA_FIXTURE_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FIXTURE_F32 0
#define FIXTURE_I32 1
#define FIXTURE_MAX_DIMS 8

typedef struct fixture_entry {
    char name[96];
    int dtype;
    int ndim;
    int shape[FIXTURE_MAX_DIMS];
    size_t n;       /* elements */
    float *f32;     /* dtype FIXTURE_F32, else NULL */
    int *i32;       /* dtype FIXTURE_I32, else NULL */
} fixture_entry;

typedef struct fixture {
    int count;
    fixture_entry *entries;
} fixture;

static uint32_t fixture_u32le(const unsigned char *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

static int fixture_i32le(const unsigned char *p) {
    uint32_t u = fixture_u32le(p);
    int32_t v;
    memcpy(&v, &u, 4);
    return (int)v;
}

static void fixture_free(fixture *f) {
    int i;
    if (!f->entries) return;
    for (i = 0; i < f->count; i++) {
        free(f->entries[i].f32);
        free(f->entries[i].i32);
    }
    free(f->entries);
    f->entries = NULL;
    f->count = 0;
}

/* Returns 0 on success; on failure prints why to stderr and returns -1. */
static int fixture_load(fixture *f, const char *path) {
    FILE *fp;
    long size;
    unsigned char *buf;
    size_t pos = 0;
    int i, count = 0;

    f->count = 0;
    f->entries = NULL;
    fp = fopen(path, "rb");
    if (!fp) {
        fprintf(stderr, "fixture: cannot open %s\n", path);
        return -1;
    }
    if (fseek(fp, 0, SEEK_END) != 0 || (size = ftell(fp)) < 8 || fseek(fp, 0, SEEK_SET) != 0) {
        fprintf(stderr, "fixture: %s: cannot size or too small\n", path);
        fclose(fp);
        return -1;
    }
    buf = (unsigned char *)malloc((size_t)size);
    if (!buf || fread(buf, 1, (size_t)size, fp) != (size_t)size) {
        fprintf(stderr, "fixture: %s: read failed\n", path);
        free(buf);
        fclose(fp);
        return -1;
    }
    fclose(fp);

#define FIXTURE_NEED(nbytes)                                                          \
    do {                                                                              \
        if ((size_t)(nbytes) > (size_t)size - pos) {                                  \
            fprintf(stderr, "fixture: %s: truncated at byte %lu\n", path,             \
                    (unsigned long)pos);                                              \
            goto fail;                                                                \
        }                                                                             \
    } while (0)

    if (memcmp(buf, "LSFX", 4) != 0) {
        fprintf(stderr, "fixture: %s: bad magic\n", path);
        goto fail;
    }
    pos = 4;
    count = fixture_i32le(buf + pos);
    pos += 4;
    if (count < 0 || count > 100000) {
        fprintf(stderr, "fixture: %s: bad entry count %d\n", path, count);
        goto fail;
    }
    f->entries = (fixture_entry *)calloc((size_t)count + 1, sizeof(fixture_entry));
    if (!f->entries) goto fail;
    for (i = 0; i < count; i++) {
        fixture_entry *e = &f->entries[i];
        int name_len, d;
        size_t n = 1, k;
        FIXTURE_NEED(4);
        name_len = fixture_i32le(buf + pos);
        pos += 4;
        if (name_len <= 0 || name_len >= (int)sizeof(e->name)) {
            fprintf(stderr, "fixture: %s: bad name length %d\n", path, name_len);
            goto fail;
        }
        FIXTURE_NEED(name_len);
        memcpy(e->name, buf + pos, (size_t)name_len);
        e->name[name_len] = 0;
        pos += (size_t)name_len;
        FIXTURE_NEED(8);
        e->dtype = fixture_i32le(buf + pos);
        e->ndim = fixture_i32le(buf + pos + 4);
        pos += 8;
        if ((e->dtype != FIXTURE_F32 && e->dtype != FIXTURE_I32) || e->ndim < 1 ||
            e->ndim > FIXTURE_MAX_DIMS) {
            fprintf(stderr, "fixture: %s: %s: bad dtype %d or ndim %d\n", path, e->name,
                    e->dtype, e->ndim);
            goto fail;
        }
        FIXTURE_NEED(4 * e->ndim);
        for (d = 0; d < e->ndim; d++) {
            e->shape[d] = fixture_i32le(buf + pos);
            pos += 4;
            if (e->shape[d] < 0 || e->shape[d] > 100000000) {
                fprintf(stderr, "fixture: %s: %s: bad shape\n", path, e->name);
                goto fail;
            }
            n *= (size_t)e->shape[d];
        }
        e->n = n;
        FIXTURE_NEED(4 * n);
        if (e->dtype == FIXTURE_F32) {
            e->f32 = (float *)malloc(4 * n + 4);
            if (!e->f32) goto fail;
            for (k = 0; k < n; k++) {
                uint32_t u = fixture_u32le(buf + pos + 4 * k);
                memcpy(&e->f32[k], &u, 4);
            }
        } else {
            e->i32 = (int *)malloc(sizeof(int) * n + 4);
            if (!e->i32) goto fail;
            for (k = 0; k < n; k++) e->i32[k] = fixture_i32le(buf + pos + 4 * k);
        }
        pos += 4 * n;
        f->count = i + 1;
    }
    if (pos != (size_t)size) {
        fprintf(stderr, "fixture: %s: %lu trailing bytes\n", path,
                (unsigned long)((size_t)size - pos));
        goto fail;
    }
#undef FIXTURE_NEED
    free(buf);
    return 0;
fail:
    free(buf);
    if (f->entries) {
        /* calloc'd: entries not reached hold NULL buffers */
        f->count = count;
        fixture_free(f);
    }
    return -1;
}

static const fixture_entry *fixture_find(const fixture *f, const char *name) {
    int i;
    for (i = 0; i < f->count; i++)
        if (strcmp(f->entries[i].name, name) == 0) return &f->entries[i];
    return NULL;
}

#endif
