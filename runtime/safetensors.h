/* safetensors.h: reading and writing the safetensors format (Hugging Face's checkpoint files).
 * A file is validated as the reference implementation does before a byte of data is trusted:
 * header length <= 100 MB and inside the file, UTF-8 JSON, known dtypes, shape x dtype size equal to
 * the byte range, ranges contiguous from 0 without gaps or overlaps, the last ending at the end of
 * the file, no duplicate names. Data is read with memcpy (offsets need not be aligned). */
#ifndef BL_SAFETENSORS_H
#define BL_SAFETENSORS_H
#include <stddef.h>
#include <stdint.h>
#include "tensor.h"

typedef enum { ST_F32, ST_F16, ST_BF16, ST_F64, ST_I64, ST_I32, ST_I16, ST_I8, ST_U8, ST_BOOL } st_dtype_t;

typedef struct {
    char *name;
    st_dtype_t dtype;
    int ndim;
    int64_t shape[TENSOR_MAXDIM];
    size_t begin, end; /* byte range inside the data section */
} st_entry_t;

typedef struct {
    char *path;
    st_entry_t *entries; /* in file order */
    int n;
    char *metadata_json; /* the "__metadata__" object as JSON text, or NULL */
    unsigned char *data; /* the data section (the file's bytes after the header) */
    size_t data_size;
} safetensors_t;

/* Opens and validates `path`; on failure returns -1 with a message naming the file (and tensor). */
int safetensors_open(safetensors_t *st, const char *path);
/* The entry named `name`, or NULL. */
const st_entry_t *safetensors_find(const safetensors_t *st, const char *name);
/* Converts an entry's data to float32 into dst (numel floats): F32, F16, BF16, F64 supported. */
int safetensors_read_f32(const safetensors_t *st, const st_entry_t *e, float *dst);
/* Reads an entry as a new tensor: float32 for float dtypes, int64 for integer dtypes. */
tensor_t *safetensors_read_tensor(const safetensors_t *st, const st_entry_t *e);
/* Frees everything; accepts a zeroed or already-closed struct. */
void safetensors_close(safetensors_t *st);

/* A piece of a tensor's bytes (st_write_t.spans). */
typedef struct {
    const void *data;
    size_t bytes;
} st_span_t;

typedef struct {
    const char *name;
    dtype_t dtype; /* DT_F32 or DT_I64 (written as F32 / I64) */
    int ndim;
    const int64_t *shape;
    const void *data;
    /* nspans > 0: the bytes are these pieces one after another instead of `data` (they must add up
     * to the shape's size): a tensor gathered from several buffers is written without a copy */
    const st_span_t *spans;
    int nspans;
} st_write_t;

/* Writes `n` tensors (names must be unique) and optional string metadata (a JSON object text of
 * string values, or NULL) to `path` atomically: a temporary file in the same folder, fsync, rename. */
int safetensors_save(const char *path, const st_write_t *tensors, int n, const char *metadata_json);

#endif
