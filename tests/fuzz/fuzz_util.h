/* fuzz_util.h: what the libFuzzer targets share: the readers that take a path are fed through an
 * anonymous in-memory file (memfd), opened as /proc/self/fd/N, so a run touches no disk. */
#ifndef BL_FUZZ_UTIL_H
#define BL_FUZZ_UTIL_H
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

/* Replaces the contents of the memfd *fd (created on first use) with data; path gets its name. */
static int fuzz_memfile(int *fd, const uint8_t *data, size_t n, char *path, size_t pathlen) {
    if (*fd < 0) {
        *fd = memfd_create("fuzz", 0);
        if (*fd < 0) { perror("memfd_create"); abort(); }
    }
    if (ftruncate(*fd, 0) != 0) abort();
    size_t off = 0;
    while (off < n) {
        ssize_t w = pwrite(*fd, data + off, n - off, (off_t)off);
        if (w <= 0) abort();
        off += (size_t)w;
    }
    snprintf(path, pathlen, "/proc/self/fd/%d", *fd);
    return 0;
}

/* A failed run must leave a message: a reader that returns an error without one is a bug too. */
#define FUZZ_ASSERT(c) do { if (!(c)) { fprintf(stderr, "fuzz invariant failed: %s (%s:%d)\n", #c, __FILE__, __LINE__); abort(); } } while (0)

#endif
