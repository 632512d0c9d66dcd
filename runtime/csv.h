/* csv.h: reads a whole CSV file (RFC 4180, strict, via libcsv) into one table of UTF-8 strings: a
 * header row naming the columns, then rows that must all have as many fields. Cells keep their
 * bytes exactly (no trimming, no type guessing; an empty field is ""), as pandas reads them with
 * dtype=str and keep_default_na=False. Not a streaming reader: the tutorial files are small. */
#ifndef BL_CSV_H
#define BL_CSV_H
#include <stddef.h>
#include <stdint.h>

typedef struct csv_table {
    char *path;     /* as given to csv_table_read, for messages */
    int ncols;      /* header fields */
    int64_t nrows;  /* data rows (the header excluded) */
    char *buf;      /* every field, header first, row-major, each followed by a NUL */
    size_t buflen, bufcap;
    size_t *off;    /* [(nrows+1)*ncols + 1]: field k spans buf[off[k] .. off[k+1]-1) (NUL excluded) */
    size_t noff, offcap;
    int64_t *line;  /* [nrows]: the 1-based line of the file where each data row starts */
    size_t linecap;
} csv_table_t;

/* Reads and validates `path`; NULL with bl_errmsg() naming the file (and line) on a missing or
 * empty file, a malformed quoted field, a row with the wrong number of fields, invalid UTF-8, a NUL
 * byte, or a duplicate column name. A UTF-8 byte-order mark before the header is skipped. */
csv_table_t *csv_table_read(const char *path);
/* Same, from bytes in memory; `name` is used in messages. */
csv_table_t *csv_table_parse(const char *name, const char *data, size_t len);
/* Frees the table; accepts NULL. */
void csv_table_free(csv_table_t *t);

/* The column index of header `name`, or -1. */
int csv_table_find(const csv_table_t *t, const char *name);
/* Field at 0-based data row `row` (-1: the header) and column `col`; its length in *len if non-NULL.
 * The string is NUL-terminated and owned by the table. */
const char *csv_table_field(const csv_table_t *t, int64_t row, int col, size_t *len);

#endif
