/* Saves that fail over existing files must leave them as they were.
   save_fail_check() makes a save fail, over old files, in every way a test
   can cause without privileges (so also when the tests run as root):
     - each file's temporary name "<file>.tmp" is taken by a directory, so
       it cannot be created;
     - the process's file size limit (RLIMIT_FSIZE, with SIGXFSZ ignored)
       stops the first file's writes after 0 bytes, 1 byte, half of it and
       all but its last byte: the write fails in the middle of the file.
   Each failure must return an error whose message names the file; every file
   the save had not finished must keep its old bytes (a file finished before
   the failure may hold the new ones: each file is replaced atomically), and
   the directory must hold no temporary file. Last, a save that nothing stops
   must replace the old files with the new bytes, so the failures above are
   what kept them. Include after lisa.h and test.h, with _POSIX_C_SOURCE
   200809L defined. */
#ifndef LISA_TEST_SAVE_FAIL_H
#define LISA_TEST_SAVE_FAIL_H

#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#define SAVE_FAIL_MAX_FILES 4

/* Writes obj to path: a file, or the directory of a Hugging Face save. */
typedef lisa_result (*save_fail_fn)(const void *obj, const char *path, lisa_error *err);

typedef struct save_fail_case {
    const char *label;
    save_fail_fn save;
    const void *obj;
    const char *files[SAVE_FAIL_MAX_FILES + 1]; /* what the save writes, in the order it writes them; NULL ends */
    int into_dir;                               /* 1: save takes the directory holding files; 0: files[0] */
} save_fail_case;

typedef struct save_fail_bytes {
    unsigned char *data;
    size_t size;
} save_fail_bytes;

static int save_fail_read(const char *path, save_fail_bytes *b) {
    FILE *f = fopen(path, "rb");
    long n;
    b->data = NULL;
    b->size = 0;
    if (!f) return 0;
    if (fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0) {
        fclose(f);
        return 0;
    }
    b->data = (unsigned char *)malloc((size_t)n + 1);
    if (b->data && fread(b->data, 1, (size_t)n, f) == (size_t)n) b->size = (size_t)n;
    else {
        free(b->data);
        b->data = NULL;
    }
    fclose(f);
    return b->data != NULL;
}

static int save_fail_same(const char *path, const save_fail_bytes *want) {
    save_fail_bytes got;
    int same = save_fail_read(path, &got) && got.size == want->size && memcmp(got.data, want->data, got.size) == 0;
    free(got.data);
    return same;
}

/* The number of entries in dir, which must be exactly the case's files. */
static int save_fail_only_files(const char *dir, const save_fail_case *c, char *names, size_t cap) {
    DIR *d = opendir(dir);
    struct dirent *e;
    int n = 0, ok = 1, k;
    names[0] = 0;
    if (!d) return 0;
    while ((e = readdir(d)) != NULL) {
        int known = 0;
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        for (k = 0; c->files[k]; k++)
            if (!strcmp(e->d_name, c->files[k])) known = 1;
        ok &= known;
        n++;
        if (strlen(names) + strlen(e->d_name) + 2 < cap) {
            strcat(names, " ");
            strcat(names, e->d_name);
        }
    }
    closedir(d);
    for (k = 0; c->files[k]; k++) n--;
    return ok && n == 0;
}

static void save_fail_path(char *out, size_t cap, const char *dir, const char *name) {
    if (snprintf(out, cap, "%s/%s", dir, name) >= (int)cap) out[0] = 0; /* too long: no such file */
}

/* Runs the save into dir: the directory itself, or its files[0]. */
static lisa_result save_fail_run(const save_fail_case *c, const char *dir, lisa_error *err) {
    char path[1024];
    if (c->into_dir) return c->save(c->obj, dir, err);
    save_fail_path(path, sizeof path, dir, c->files[0]);
    return c->save(c->obj, path, err);
}

/* Puts the old bytes back into every file of dir. */
static int save_fail_put_old(const save_fail_case *c, const char *dir, const save_fail_bytes *old) {
    char path[1024];
    int k, ok = 1;
    for (k = 0; c->files[k]; k++) {
        FILE *f;
        save_fail_path(path, sizeof path, dir, c->files[k]);
        f = fopen(path, "wb");
        if (!f) return 0;
        ok &= fwrite(old[k].data, 1, old[k].size, f) == old[k].size;
        ok &= fclose(f) == 0;
    }
    return ok;
}

/* After a save that failed in file `failing` (its index in files): the result,
   the message, the old bytes of that file and the later ones, no temporary file. */
static void save_fail_expect(const save_fail_case *c, const char *dir, const char *how, int failing, lisa_result r,
                             const lisa_error *err, const save_fail_bytes *old, const save_fail_bytes *new_bytes) {
    char path[1024], names[512];
    int k;
    CHECK(r != LISA_OK && err->code == r, "%s, %s: the save fails (result %d, err.code %d)", c->label, how, (int)r,
          (int)err->code);
    CHECK(r == LISA_OK || strstr(err->message, c->files[failing]) != NULL, "%s, %s: the message names %s: \"%s\"",
          c->label, how, c->files[failing], err->message);
    for (k = 0; c->files[k]; k++) {
        save_fail_path(path, sizeof path, dir, c->files[k]);
        if (k < failing)
            CHECK(save_fail_same(path, &old[k]) || save_fail_same(path, &new_bytes[k]),
                  "%s, %s: %s, saved before the failure, holds its old or its new bytes", c->label, how, c->files[k]);
        else
            CHECK(save_fail_same(path, &old[k]), "%s, %s: %s keeps its old bytes", c->label, how, c->files[k]);
    }
    CHECK(save_fail_only_files(dir, c, names, sizeof names), "%s, %s: no temporary file is left:%s", c->label, how,
          names);
}

/* Ignores SIGXFSZ so that writes past the limit fail with EFBIG instead of
   killing the process; returns 0 when the limit cannot be set. */
static int save_fail_limit(rlim_t bytes, struct rlimit *saved, void (**handler)(int)) {
    struct rlimit lim;
    if (getrlimit(RLIMIT_FSIZE, saved) != 0) return 0;
    lim = *saved;
    if (lim.rlim_max != RLIM_INFINITY && lim.rlim_max < bytes) return 0;
    lim.rlim_cur = bytes;
    *handler = signal(SIGXFSZ, SIG_IGN);
    if (setrlimit(RLIMIT_FSIZE, &lim) != 0) {
        signal(SIGXFSZ, *handler);
        return 0;
    }
    return 1;
}

static void save_fail_unlimit(const struct rlimit *saved, void (*handler)(int)) {
    setrlimit(RLIMIT_FSIZE, saved);
    signal(SIGXFSZ, handler);
}

/* Every failure above, in directory work (which must exist and be empty). */
static void save_fail_check(const save_fail_case *c, const char *work) {
    char fresh[1024], olddir[1024], path[1024], tmp[1100], how[128], names[512];
    save_fail_bytes old[SAVE_FAIL_MAX_FILES], new_bytes[SAVE_FAIL_MAX_FILES];
    lisa_error err;
    lisa_result r;
    size_t limits[4];
    int n = 0, k, i, ok = 1;
    while (c->files[n]) n++;
    memset(old, 0, sizeof old);
    memset(new_bytes, 0, sizeof new_bytes);
    save_fail_path(fresh, sizeof fresh, work, "fresh");
    save_fail_path(olddir, sizeof olddir, work, "old");
    mkdir(fresh, 0700);
    mkdir(olddir, 0700);
    /* the new bytes: what a save that nothing stops writes */
    r = save_fail_run(c, fresh, &err);
    CHECK(r == LISA_OK, "%s: a save into an empty directory: %s", c->label, err.message);
    CHECK(save_fail_only_files(fresh, c, names, sizeof names), "%s: a save leaves its files only:%s", c->label, names);
    for (k = 0; k < n; k++) {
        save_fail_path(path, sizeof path, fresh, c->files[k]);
        ok &= save_fail_read(path, &new_bytes[k]) && new_bytes[k].size > 1;
        unlink(path);
    }
    CHECK(ok, "%s: the save wrote each of its files", c->label);
    rmdir(fresh);
    /* old bytes the new ones cannot be mistaken for */
    for (k = 0; k < n; k++) {
        old[k].size = 300 + 7 * (size_t)k;
        old[k].data = (unsigned char *)malloc(old[k].size);
        for (i = 0; i < (int)old[k].size; i++) old[k].data[i] = (unsigned char)("old bytes "[i % 10] + k);
    }
    ok = ok && save_fail_put_old(c, olddir, old);
    CHECK(ok, "%s: the old files are in place", c->label);
    if (!ok) goto done;
    /* each file's temporary name is taken */
    for (k = 0; k < n; k++) {
        if (snprintf(tmp, sizeof tmp, "%s/%s.tmp", olddir, c->files[k]) >= (int)sizeof tmp) tmp[0] = 0;
        CHECK(mkdir(tmp, 0700) == 0, "%s: a directory at %s", c->label, tmp);
        memset(&err, 0, sizeof err);
        r = save_fail_run(c, olddir, &err);
        rmdir(tmp);
        snprintf(how, sizeof how, "%s.tmp cannot be created", c->files[k]);
        save_fail_expect(c, olddir, how, k, r, &err, old, new_bytes);
        save_fail_put_old(c, olddir, old);
    }
    /* the first file's writes fail part way */
    limits[0] = 0;
    limits[1] = 1;
    limits[2] = new_bytes[0].size / 2;
    limits[3] = new_bytes[0].size - 1;
    for (i = 0; i < 4; i++) {
        struct rlimit saved;
        void (*handler)(int) = SIG_DFL;
        if (!save_fail_limit((rlim_t)limits[i], &saved, &handler)) {
            CHECK(0, "%s: cannot set a file size limit of %lu bytes", c->label, (unsigned long)limits[i]);
            continue;
        }
        memset(&err, 0, sizeof err);
        r = save_fail_run(c, olddir, &err);
        save_fail_unlimit(&saved, handler);
        snprintf(how, sizeof how, "writes fail after %lu of %lu bytes", (unsigned long)limits[i],
                 (unsigned long)new_bytes[0].size);
        save_fail_expect(c, olddir, how, 0, r, &err, old, new_bytes);
        save_fail_put_old(c, olddir, old);
    }
    /* nothing stops it: the new bytes replace the old */
    r = save_fail_run(c, olddir, &err);
    CHECK(r == LISA_OK, "%s: a save over the old files: %s", c->label, err.message);
    for (k = 0; k < n; k++) {
        save_fail_path(path, sizeof path, olddir, c->files[k]);
        CHECK(save_fail_same(path, &new_bytes[k]), "%s: a save that nothing stops replaces %s", c->label, c->files[k]);
    }
    CHECK(save_fail_only_files(olddir, c, names, sizeof names), "%s: only the files after saving:%s", c->label, names);
done:
    for (k = 0; k < n; k++) {
        save_fail_path(path, sizeof path, olddir, c->files[k]);
        unlink(path);
        free(old[k].data);
        free(new_bytes[k].data);
    }
    rmdir(olddir);
}

#endif
