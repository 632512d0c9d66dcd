/* csv.c: the CSV reader behind bl.read_csv: libcsv in strict mode fed byte by byte, so that every
 * error can name the line where the offending record starts (records may span lines when a quoted
 * field holds a newline). */
#include "csv.h"
#include "error.h"
#include <csv.h> /* libcsv */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "utf8.h"

/* ---- table building ---------------------------------------------------------------------------- */

typedef struct {
    csv_table_t *t;
    int nfields;       /* fields seen in the current record */
    int64_t rec_line;  /* line where the current record started */
    int header_done;
    int failed;        /* an error was recorded by a callback */
} parse_state_t;

static int grow(void **p, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return 0;
    size_t c = *cap ? *cap : 64;
    while (c < need) c *= 2;
    void *q = realloc(*p, c * elem);
    if (!q) return -1;
    *p = q;
    *cap = c;
    return 0;
}

static void on_field(void *s, size_t len, void *data) {
    parse_state_t *ps = data;
    csv_table_t *t = ps->t;
    if (ps->failed) return;
    ps->nfields++;
    if (ps->header_done && ps->nfields > t->ncols) return; /* reported at the end of the record */
    if (grow((void **)&t->buf, &t->bufcap, t->buflen + len + 1, 1) ||
        grow((void **)&t->off, &t->offcap, t->noff + 2, sizeof *t->off)) {
        ps->failed = 1;
        bl_fail("%s: out of memory", t->path);
        return;
    }
    if (len) memcpy(t->buf + t->buflen, s, len);
    t->buflen += len;
    t->buf[t->buflen++] = '\0';
    t->off[++t->noff] = t->buflen;
}

static void on_record(int c, void *data) {
    parse_state_t *ps = data;
    csv_table_t *t = ps->t;
    (void)c;
    if (ps->failed) return;
    if (!ps->header_done) {
        t->ncols = ps->nfields;
        ps->header_done = 1;
        for (int i = 0; i < t->ncols; i++)
            for (int j = 0; j < i; j++)
                if (strcmp(csv_table_field(t, -1, i, NULL), csv_table_field(t, -1, j, NULL)) == 0) {
                    ps->failed = 1;
                    bl_fail("%s:%lld: duplicate column '%s'", t->path, (long long)ps->rec_line,
                            csv_table_field(t, -1, i, NULL));
                    return;
                }
    } else if (ps->nfields != t->ncols) {
        ps->failed = 1;
        bl_fail("%s:%lld: expected %d columns, got %d", t->path, (long long)ps->rec_line, t->ncols,
                ps->nfields);
        return;
    } else {
        if (grow((void **)&t->line, &t->linecap, (size_t)t->nrows + 1, sizeof *t->line)) {
            ps->failed = 1;
            bl_fail("%s: out of memory", t->path);
            return;
        }
        t->line[t->nrows++] = ps->rec_line;
    }
    ps->nfields = 0;
}

/* libcsv trims spaces around unquoted fields by default; pandas keeps them, so do we. */
static int no_space(unsigned char c) { (void)c; return 0; }

csv_table_t *csv_table_parse(const char *name, const char *data, size_t len) {
    csv_table_t *t = calloc(1, sizeof *t);
    if (!t || !(t->path = strdup(name))) {
        free(t);
        bl_fail("%s: out of memory", name);
        return NULL;
    }
    if (len >= 3 && memcmp(data, "\xEF\xBB\xBF", 3) == 0) { data += 3; len -= 3; }

    /* invalid UTF-8 and NUL bytes first (a NUL would end the cell early in every C string and Lua
     * caller after us), with the line and column of the first one */
    int64_t bad = utf8_invalid_at(data, len);
    const char *nul = memchr(data, '\0', bad >= 0 ? (size_t)bad : len);
    if (nul) bad = nul - data;
    if (bad >= 0) {
        int64_t line = 1, col = 1;
        for (int64_t i = 0; i < bad; i++) {
            if (data[i] == '\n' || (data[i] == '\r' && data[i + 1] != '\n')) { line++; col = 1; }
            else if (data[i] != '\r') col++;
        }
        if (nul)
            bl_fail("%s:%lld: NUL byte at column %lld (not a text file?)", name, (long long)line, (long long)col);
        else
            bl_fail("%s:%lld: invalid UTF-8 (byte 0x%02X at column %lld)", name, (long long)line,
                    (unsigned char)data[bad], (long long)col);
        csv_table_free(t);
        return NULL;
    }
    if (grow((void **)&t->off, &t->offcap, 1, sizeof *t->off)) {
        bl_fail("%s: out of memory", name);
        csv_table_free(t);
        return NULL;
    }
    t->off[0] = 0;

    struct csv_parser p;
    if (csv_init(&p, CSV_STRICT | CSV_STRICT_FINI) != 0) {
        bl_fail("%s: cannot initialise the CSV parser", name);
        csv_table_free(t);
        return NULL;
    }
    csv_set_space_func(&p, no_space);
    parse_state_t ps = {.t = t};
    int64_t line = 1;
    int in_record = 0; /* mirrors libcsv: a record starts at the first byte that is not CR or LF */
    size_t blk = 128;  /* libcsv's field buffer grows by a fixed block: doubled here, so a long field is
                        * not quadratic (a 10 MB cell took minutes where realloc copies, as under ASan) */
    for (size_t i = 0; i < len && !ps.failed; i++) {
        char c = data[i];
        if (p.entry_size > blk) csv_set_blk_size(&p, blk = p.entry_size);
        if (!in_record && c != '\r' && c != '\n') {
            in_record = 1;
            ps.rec_line = line;
        }
        int64_t before = t->nrows + ps.header_done;
        if (csv_parse(&p, data + i, 1, on_field, on_record, &ps) != 1) {
            bl_fail("%s:%lld: malformed quoted field (a quote must open a field, close it, or be doubled)",
                    name, (long long)ps.rec_line);
            ps.failed = 2;
            break;
        }
        if (t->nrows + ps.header_done != before) in_record = 0;
        if (c == '\n' || (c == '\r' && (i + 1 >= len || data[i + 1] != '\n'))) line++;
    }
    if (!ps.failed && csv_fini(&p, on_field, on_record, &ps) != 0) {
        bl_fail("%s:%lld: unterminated quoted field (the file ends inside quotes)", name,
                (long long)ps.rec_line);
        ps.failed = 2;
    }
    csv_free(&p);
    if (!ps.failed && !ps.header_done) {
        bl_fail("%s: empty file (no header row)", name);
        ps.failed = 2;
    }
    if (ps.failed) {
        csv_table_free(t);
        return NULL;
    }
    return t;
}

csv_table_t *csv_table_read(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        bl_fail("%s: %s", path, strerror(errno));
        return NULL;
    }
    size_t cap = 1 << 16, len = 0;
    char *data = malloc(cap);
    size_t got;
    while (data && (got = fread(data + len, 1, cap - len, f)) > 0) {
        len += got;
        if (len == cap) {
            char *d = realloc(data, cap *= 2);
            if (!d) { free(data); data = NULL; }
            else data = d;
        }
    }
    int err = ferror(f) ? (errno ? errno : EIO) : 0;
    fclose(f);
    if (!data) {
        bl_fail("%s: out of memory", path);
        return NULL;
    }
    if (err) {
        free(data);
        bl_fail("%s: %s", path, strerror(err));
        return NULL;
    }
    csv_table_t *t = csv_table_parse(path, data, len);
    free(data);
    return t;
}

void csv_table_free(csv_table_t *t) {
    if (!t) return;
    free(t->path);
    free(t->buf);
    free(t->off);
    free(t->line);
    free(t);
}

int csv_table_find(const csv_table_t *t, const char *name) {
    for (int i = 0; i < t->ncols; i++)
        if (strcmp(csv_table_field(t, -1, i, NULL), name) == 0) return i;
    return -1;
}

const char *csv_table_field(const csv_table_t *t, int64_t row, int col, size_t *len) {
    size_t k = (size_t)(row + 1) * (size_t)t->ncols + (size_t)col;
    if (len) *len = t->off[k + 1] - t->off[k] - 1;
    return t->buf + t->off[k];
}
