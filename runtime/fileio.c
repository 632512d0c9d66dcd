/* fileio.c: whole-file reads and atomic writes (temp file beside the target, fsync, rename, fsync of
 * the folder), so a checkpoint is either the old file or the complete new one, never half of each. */
#define _XOPEN_SOURCE 700 /* nftw */
#include "fileio.h"
#include <ftw.h>
#include "error.h"
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

char *file_read_all(const char *path, size_t *size) { return file_read_all_as(path, NULL, size); }

char *file_read_all_as(const char *path, const char *what, size_t *size) {
    if (size) *size = 0;
    FILE *f = fopen(path, "rb");
    if (!f) {
        bl_fail("%s: cannot open%s%s (%s)", path, what ? " " : "", what ? what : "", strerror(errno));
        return NULL;
    }
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode)) {
        bl_fail("%s: not a regular file", path);
        fclose(f);
        return NULL;
    }
    size_t n = (size_t)sb.st_size;
    char *buf = malloc(n + 1);
    if (!buf) {
        bl_fail("%s: out of memory reading %zu bytes", path, n);
        fclose(f);
        return NULL;
    }
    size_t got = n ? fread(buf, 1, n, f) : 0;
    int err = ferror(f);
    fclose(f);
    if (got != n || err) {
        bl_fail("%s: read error (got %zu of %zu bytes)", path, got, n);
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    if (size) *size = n;
    return buf;
}

int path_is_dir(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

int path_is_file(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

char *path_join(const char *dir, const char *name) {
    size_t n = strlen(dir) + strlen(name) + 2;
    char *s = malloc(n);
    if (s) snprintf(s, n, "%s%s%s", dir, (*dir && dir[strlen(dir) - 1] == '/') ? "" : "/", name);
    return s;
}

const char *path_basename(const char *path) {
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

char *path_dirname(const char *path) {
    const char *slash = strrchr(path, '/');
    if (!slash) return strdup(".");
    if (slash == path) return strdup("/");
    return strndup(path, (size_t)(slash - path));
}

int atomic_open(atomic_file_t *af, const char *path) {
    memset(af, 0, sizeof *af);
    if (!path || !*path) return bl_fail("atomic write: empty path");
    size_t n = strlen(path);
    af->final_path = strdup(path);
    af->tmp_path = malloc(n + 16);
    if (!af->final_path || !af->tmp_path) {
        atomic_abort(af);
        return bl_fail("%s: out of memory", path);
    }
    /* mkstemp: a unique name in the same folder, so rename() stays on one filesystem */
    snprintf(af->tmp_path, n + 16, "%s.tmp.XXXXXX", path);
    int fd = mkstemp(af->tmp_path);
    if (fd < 0) {
        int e = errno;
        free(af->tmp_path);
        af->tmp_path = NULL;
        atomic_abort(af);
        return bl_fail("%s: cannot create a temporary file beside it (%s)", path, strerror(e));
    }
    fchmod(fd, 0644); /* mkstemp makes 0600; a checkpoint is an ordinary file */
    af->f = fdopen(fd, "wb");
    if (!af->f) {
        close(fd);
        atomic_abort(af);
        return bl_fail("%s: cannot open the temporary file", path);
    }
    return 0;
}

int atomic_commit(atomic_file_t *af) {
    if (!af->f || !af->tmp_path || !af->final_path) return bl_fail("atomic write: file is not open");
    const char *path = af->final_path;
    int ok = fflush(af->f) == 0 && !ferror(af->f) && fsync(fileno(af->f)) == 0;
    int e = errno;
    if (fclose(af->f) != 0 && ok) {
        ok = 0;
        e = errno;
    }
    af->f = NULL;
    if (!ok) {
        bl_fail("%s: write failed (%s)", path, strerror(e));
        atomic_abort(af);
        return -1;
    }
    if (rename(af->tmp_path, path) != 0) {
        bl_fail("%s: cannot rename the temporary file into place (%s)", path, strerror(errno));
        atomic_abort(af);
        return -1;
    }
    /* the rename itself is durable only once the folder is synced */
    char *dir = path_dirname(path);
    if (dir) {
        int dfd = open(dir, O_RDONLY | O_DIRECTORY);
        if (dfd >= 0) {
            fsync(dfd);
            close(dfd);
        }
        free(dir);
    }
    free(af->tmp_path);
    free(af->final_path);
    af->tmp_path = af->final_path = NULL;
    return 0;
}

void atomic_abort(atomic_file_t *af) {
    if (!af) return;
    if (af->f) fclose(af->f);
    if (af->tmp_path) unlink(af->tmp_path);
    free(af->tmp_path);
    free(af->final_path);
    memset(af, 0, sizeof *af);
}

int mkdir_p(const char *path) {
    if (!path || !*path) return bl_fail("mkdir: empty path");
    char *p = strdup(path);
    if (!p) return bl_fail("%s: out of memory", path);
    size_t n = strlen(p);
    while (n > 1 && p[n - 1] == '/') p[--n] = '\0';
    for (char *s = p + 1;; s++) {
        int last = (*s == '\0');
        if (*s == '/' || last) {
            char c = *s;
            *s = '\0';
            if (mkdir(p, 0755) != 0 && errno != EEXIST) {
                bl_fail("%s: cannot create folder '%s' (%s)", path, p, strerror(errno));
                free(p);
                return -1;
            }
            struct stat sb;
            if (stat(p, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
                bl_fail("%s: '%s' exists and is not a folder", path, p);
                free(p);
                return -1;
            }
            *s = c;
            if (last) break;
        }
    }
    free(p);
    return 0;
}

static int remove_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb; (void)ftw;
    int rc = (flag == FTW_DP) ? rmdir(p) : unlink(p);
    if (rc != 0 && errno != ENOENT) return bl_fail("cannot remove '%s' (%s)", p, strerror(errno));
    return 0;
}

int remove_tree(const char *path) {
    if (!path || !*path) return bl_fail("remove: empty path");
    struct stat sb;
    if (lstat(path, &sb) != 0) return errno == ENOENT ? 0 : bl_fail("cannot remove '%s' (%s)", path, strerror(errno));
    if (!S_ISDIR(sb.st_mode)) return unlink(path) == 0 ? 0 : bl_fail("cannot remove '%s' (%s)", path, strerror(errno));
    return nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS) == 0 ? 0 : -1;
}
