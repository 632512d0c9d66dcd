/* fileio.h: small file helpers: whole-file reads and atomic writes (temp file + fsync + rename),
 * so a run killed mid-save never leaves a half-written file where a checkpoint should be. */
#ifndef BL_FILEIO_H
#define BL_FILEIO_H
#include <stddef.h>
#include <stdio.h>

/* Reads a whole file into a malloc'd buffer (NUL-terminated; *size excludes the NUL). */
char *file_read_all(const char *path, size_t *size);

typedef struct {
    FILE *f;
    char *final_path;
    char *tmp_path;
} atomic_file_t;

/* Opens a temporary file beside `path` for writing. */
int atomic_open(atomic_file_t *af, const char *path);
/* Flushes, fsyncs and renames over the final path (and fsyncs the folder); on any failure removes the
 * temporary file and leaves the old file, if any, untouched. */
int atomic_commit(atomic_file_t *af);
/* Abandons the write: removes the temporary file. Accepts a closed/zeroed struct. */
void atomic_abort(atomic_file_t *af);
/* Creates a folder and its parents (mkdir -p). */
int mkdir_p(const char *path);

#endif
