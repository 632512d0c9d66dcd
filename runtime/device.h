/* device.h: devices for the runtime and the bindings, by name or BL_DEVICE_* number: the backend of
 * a device (with the reason when it cannot be used), the CUDA queries, memory counters, the thread
 * count of the CPU kernels. The bindings reach devices through here, never through kernels/. */
#ifndef BL_DEVICE_H
#define BL_DEVICE_H
#include <stddef.h>
#include "../kernels/backend.h"

/* "cpu" -> BL_DEVICE_CPU, "cuda" (or "cuda:0") -> BL_DEVICE_CUDA; -1 naming the bad name. */
int device_parse(const char *name, int *device);
/* "cpu" / "cuda". */
const char *device_label(int device);
/* The backend of `device`, or NULL with "CUDA is not available: <why>". */
const bl_backend_t *device_backend(int device);
/* 1 when the CUDA backend is built in and a GPU can be used. */
int device_cuda_available(void);
/* One line on the CUDA device, or on why there is none. */
const char *device_cuda_describe(void);
/* The device a script should use by default: "cuda" when available, else "cpu". */
int device_default(void);
/* Bytes allocated now and at most through `device`'s backend; -1 when it cannot be used. */
int device_memory(int device, size_t *current, size_t *peak);
/* Threads of the CPU kernels (OpenBLAS and the OpenMP loops). */
void device_set_num_threads(int n);
int device_get_num_threads(void);

#endif
