/* test_fileio.c: whole-file reads, atomic writes (commit replaces, abort and failures leave the old
 * file untouched, no temporary file is ever left behind) and mkdir_p. */
#include "../runtime/error.h"
#include "../runtime/fileio.h"
#include "ctest.h"
#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char tmp[256];

static int count_entries(const char *dir) {
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
    if (d) closedir(d);
    return n;
}

static void write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    fputs(text, f);
    fclose(f);
}

static int file_is(const char *path, const char *text) {
    size_t n;
    char *b = file_read_all(path, &n);
    int ok = b && n == strlen(text) && memcmp(b, text, n) == 0;
    free(b);
    return ok;
}

static void test_read_all(void) {
    char p[512];
    snprintf(p, sizeof p, "%s/a.txt", tmp);
    write_file(p, "hello\0world");
    size_t n = 99;
    char *b = file_read_all(p, &n);
    CHECK(b && n == 5 && strcmp(b, "hello") == 0 && b[5] == '\0', "reads a file, NUL-terminated, size %zu", n);
    free(b);
    FILE *f = fopen(p, "wb");
    fwrite("a\0b", 1, 3, f);
    fclose(f);
    b = file_read_all(p, &n);
    CHECK(b && n == 3 && b[1] == '\0' && b[2] == 'b', "embedded NUL bytes kept (size %zu)", n);
    free(b);
    write_file(p, "");
    b = file_read_all(p, &n);
    CHECK(b && n == 0 && b[0] == '\0', "empty file reads as \"\"");
    free(b);
    snprintf(p, sizeof p, "%s/missing.txt", tmp);
    b = file_read_all(p, &n);
    CHECK(!b && n == 0 && strstr(bl_errmsg(), "missing.txt: cannot open (No such file or directory)"),
          "missing file: %s", bl_errmsg());
    b = file_read_all(tmp, &n);
    CHECK(!b && strstr(bl_errmsg(), ": not a regular file"), "a folder: %s", bl_errmsg());
    snprintf(p, sizeof p, "%s/a.txt", tmp);
    unlink(p);
}

static void test_atomic(void) {
    char p[512];
    snprintf(p, sizeof p, "%s/ckpt.bin", tmp);
    write_file(p, "old");
    atomic_file_t af;
    int rc = atomic_open(&af, p);
    CHECK(rc == 0 && af.f && af.tmp_path && strncmp(af.tmp_path, p, strlen(p)) == 0,
          "atomic_open makes a temporary file beside the target (%s)", rc ? bl_errmsg() : af.tmp_path);
    fputs("new contents", af.f);
    fflush(af.f);
    CHECK(file_is(p, "old"), "before commit the old file is untouched");
    CHECK(count_entries(tmp) == 2, "the temporary file exists while writing (%d entries)", count_entries(tmp));
    rc = atomic_commit(&af);
    CHECK(rc == 0 && file_is(p, "new contents"), "commit replaces the file");
    CHECK(count_entries(tmp) == 1, "no temporary file left after commit (%d entries)", count_entries(tmp));
    struct stat sb;
    CHECK(stat(p, &sb) == 0 && (sb.st_mode & 0777) == 0644, "committed file is mode 0644 (%o)", sb.st_mode & 0777);
    CHECK(af.f == NULL && af.tmp_path == NULL && af.final_path == NULL, "commit clears the struct");
    atomic_abort(&af); /* after commit: a no-op */
    CHECK(file_is(p, "new contents"), "abort after commit changes nothing");

    rc = atomic_open(&af, p);
    fputs("half-written", af.f);
    atomic_abort(&af);
    CHECK(rc == 0 && file_is(p, "new contents"), "abort leaves the old file untouched");
    CHECK(count_entries(tmp) == 1, "abort removes the temporary file (%d entries)", count_entries(tmp));
    atomic_abort(&af); /* twice is fine */
    atomic_file_t zero = {0};
    atomic_abort(&zero);
    CHECK(1, "abort accepts a zeroed struct");

    /* a new file (no old one) */
    char q[512];
    snprintf(q, sizeof q, "%s/fresh.bin", tmp);
    rc = atomic_open(&af, q);
    fputs("x", af.f);
    CHECK(rc == 0 && atomic_commit(&af) == 0 && file_is(q, "x"), "commit creates a new file");
    unlink(q);

    /* rename fails (the target is a non-empty folder): error, folder untouched, temp removed */
    snprintf(q, sizeof q, "%s/adir", tmp);
    mkdir(q, 0755);
    char inner[600];
    snprintf(inner, sizeof inner, "%s/keep", q);
    write_file(inner, "k");
    rc = atomic_open(&af, q);
    fputs("x", af.f);
    rc = rc == 0 ? atomic_commit(&af) : rc;
    CHECK(rc == -1 && strstr(bl_errmsg(), "adir: cannot rename the temporary file into place"),
          "commit over a folder fails: %s", bl_errmsg());
    CHECK(file_is(inner, "k") && count_entries(tmp) == 2, "failed commit leaves no temporary file (%d entries)",
          count_entries(tmp));
    unlink(inner);
    rmdir(q);

    snprintf(q, sizeof q, "%s/nodir/x.bin", tmp);
    CHECK(atomic_open(&af, q) == -1 && strstr(bl_errmsg(), "x.bin: cannot create a temporary file beside it"),
          "open in a missing folder: %s", bl_errmsg());
    CHECK(af.f == NULL && af.tmp_path == NULL, "failed open leaves a zeroed struct");
    CHECK(atomic_commit(&af) == -1 && strstr(bl_errmsg(), "not open"), "commit of an unopened file: %s", bl_errmsg());
    CHECK(atomic_open(&af, "") == -1 && strstr(bl_errmsg(), "empty path"), "empty path refused: %s", bl_errmsg());
    unlink(p);
}

static void test_mkdir_p(void) {
    char p[512];
    snprintf(p, sizeof p, "%s/a/b/c/", tmp);
    struct stat sb;
    CHECK(mkdir_p(p) == 0 && stat(p, &sb) == 0 && S_ISDIR(sb.st_mode), "mkdir_p creates nested folders");
    CHECK(mkdir_p(p) == 0, "mkdir_p on an existing folder succeeds");
    char f[600];
    snprintf(f, sizeof f, "%s/a/file", tmp);
    write_file(f, "x");
    snprintf(p, sizeof p, "%s/a/file/sub", tmp);
    CHECK(mkdir_p(p) == -1 && strstr(bl_errmsg(), "a/file' exists and is not a folder"), "a file in the way: %s",
          bl_errmsg());
    CHECK(mkdir_p("") == -1 && strstr(bl_errmsg(), "empty path"), "empty path refused: %s", bl_errmsg());
    unlink(f);
    snprintf(p, sizeof p, "%s/a/b/c", tmp);
    rmdir(p);
    snprintf(p, sizeof p, "%s/a/b", tmp);
    rmdir(p);
    snprintf(p, sizeof p, "%s/a", tmp);
    rmdir(p);
}

int main(void) {
    snprintf(tmp, sizeof tmp, "/tmp/bl_test_fileio_XXXXXX");
    if (!mkdtemp(tmp)) return 1;
    test_read_all();
    test_atomic();
    test_mkdir_p();
    CHECK(count_entries(tmp) == 0, "the test folder is empty at the end (%d entries)", count_entries(tmp));
    rmdir(tmp);
    CT_DONE();
}
