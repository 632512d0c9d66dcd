/* fileio.h: the file-system helpers of the runtime (the only ones): path tests and pieces, whole-file
 * reads, and atomic writes (temp file + fsync + rename), so a run killed mid-save never leaves a
 * half-written file where a checkpoint should be. */
#ifndef BL_FILEIO_H
#define BL_FILEIO_H
#include <stddef.h>
#include <stdio.h>

/* 1 when `path` is a folder / a regular file (following links); 0 otherwise. */
int path_is_dir(const char *path);
int path_is_file(const char *path);
/* dir + "/" + name (no doubled slash), malloc'd; NULL when out of memory. */
char *path_join(const char *dir, const char *name);
/* The folder part of `path` ("." when there is none, "/" for a top-level entry), malloc'd. */
char *path_dirname(const char *path);
/* The part after the last '/' (a pointer into `path`). */
const char *path_basename(const char *path);

/* Reads a whole file into a malloc'd buffer (NUL-terminated; *size excludes the NUL). */
char *file_read_all(const char *path, size_t *size);
/* The same, naming what the file is in the errors ("vocab.txt: cannot open vocabulary (...)"). */
char *file_read_all_as(const char *path, const char *what, size_t *size);

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
/* Removes a file or a folder and everything in it (rm -rf, links not followed); a path that does
 * not exist is no error. In-process, so a stop signal is never lost to a shell's system() window. */
int remove_tree(const char *path);

#endif
