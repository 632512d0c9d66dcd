/* tensor.h: dense, contiguous, row-major tensors on a device. A tensor's memory comes from its
 * device's backend (kernels/backend.h; on the CPU, host memory), and only host (CPU) tensors are
 * read element by element: a device tensor is copied with tensor_to first (printing, argmax do it).
 * A tensor either owns its buffer or views memory owned by something else (a model's one
 * parameter allocation), in which case the owner must outlive it (the Lua layer keeps it alive). */
#ifndef BL_TENSOR_H
#define BL_TENSOR_H
#include <stddef.h>
#include <stdint.h>

#define TENSOR_MAXDIM 8

typedef enum { DT_F32 = 0, DT_I64 = 1, DT_BF16 = 2 /* reserved for the GPU */ } dtype_t;
typedef enum { DEV_CPU = 0, DEV_CUDA = 1 } device_t; /* = BL_DEVICE_CPU, BL_DEVICE_CUDA */

typedef struct tensor {
    int ndim;
    int64_t shape[TENSOR_MAXDIM];
    int64_t numel;
    dtype_t dtype;
    device_t device;
    void *data;    /* numel elements of dtype, contiguous, in `device`'s memory */
    int owns_data; /* 1: freed with the tensor; 0: a view */
} tensor_t;

/* Size in bytes of one element of `dt`. */
size_t dtype_size(dtype_t dt);
/* "float32", "int64", "bfloat16"; and the reverse (returns -1 for an unknown name). */
const char *dtype_name(dtype_t dt);
int dtype_from_name(const char *name, dtype_t *out);
const char *device_name(device_t d);

/* Allocates a zero-filled host tensor; NULL with bl_errmsg() set on a bad shape or out of memory. */
tensor_t *tensor_new(dtype_t dt, int ndim, const int64_t *shape);
/* The same on `device` (its backend allocates; "CUDA is not available: ..." when it cannot). */
tensor_t *tensor_new_on(device_t device, dtype_t dt, int ndim, const int64_t *shape);
/* Wraps memory owned elsewhere (no copy, not freed with the tensor), on the host or, with
 * tensor_view_on, on `device`. */
tensor_t *tensor_view(dtype_t dt, int ndim, const int64_t *shape, void *data);
tensor_t *tensor_view_on(device_t device, dtype_t dt, int ndim, const int64_t *shape, void *data);
/* A new tensor with the same dtype, shape, device and contents. */
tensor_t *tensor_clone(const tensor_t *t);
/* A copy of t on `device` (also when t is already there). */
tensor_t *tensor_to(const tensor_t *t, device_t device);
/* t itself when it is on the host, else a new host copy: free the result when it differs from t. */
tensor_t *tensor_on_host(const tensor_t *t);
/* Frees the tensor (and its buffer if owned); accepts NULL. */
void tensor_free(tensor_t *t);
/* Releases the buffer now, leaving an empty (0-element, data NULL) tensor; safe to call twice. */
void tensor_release(tensor_t *t);

/* The one shape formatter: "[2, 3]" (as torch.Size prints), or "[2,3]" with `compact` (as
 * checkpoint messages spell shapes); returns buf. */
char *shape_format(char *buf, size_t n, int ndim, const int64_t *shape, int compact);
/* shape_format of t's shape, not compact. */
char *tensor_shape_str(const tensor_t *t, char *buf, size_t n);
int tensor_same_shape(const tensor_t *a, const tensor_t *b);

/* Element access as double regardless of dtype (for printing, item, tests); host tensors only. */
double tensor_get(const tensor_t *t, int64_t i);
void tensor_set(tensor_t *t, int64_t i, double v);

/* out = a + b / a * b, elementwise, same shape, dtype and device (or b a single element,
 * broadcast), on that device. */
tensor_t *tensor_add(const tensor_t *a, const tensor_t *b);
tensor_t *tensor_mul(const tensor_t *a, const tensor_t *b);
/* Rows of t (first dimension) at 0-based `idx` (n of them), as a new tensor. */
tensor_t *tensor_index_rows(const tensor_t *t, const int64_t *idx, int64_t n);
/* Index of the maximum along `dim` (first on ties, as torch); int64 with that dimension removed. */
tensor_t *tensor_argmax(const tensor_t *t, int dim);
/* Fills: arange(start, start+step*n), N(0,1) from the RANDN stream. */
tensor_t *tensor_arange(dtype_t dt, double start, double stop, double step);
tensor_t *tensor_randn(int ndim, const int64_t *shape);

/* Formats as PyTorch prints: "tensor([[0., 0.],\n        [0., 0.]])". Returns a malloc'd string. */
char *tensor_format(const tensor_t *t);

#endif
