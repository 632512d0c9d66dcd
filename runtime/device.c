/* device.c: devices by name, the backend lookup with its error, and the few device queries that are
 * not kernels (kernels/kernels.h's k_cuda_* and thread settings: the one file of runtime/ that
 * calls k_* functions, none of them math). */
#include "device.h"
#include <string.h>
#include "../kernels/kernels.h"
#include "error.h"

int device_parse(const char *name, int *device) {
    if (name && !strcmp(name, "cpu")) {
        *device = BL_DEVICE_CPU;
        return 0;
    }
    if (name && (!strcmp(name, "cuda") || !strcmp(name, "cuda:0"))) {
        *device = BL_DEVICE_CUDA;
        return 0;
    }
    return bl_fail("unknown device '%s' (expected \"cpu\" or \"cuda\")", name ? name : "(null)");
}

const char *device_label(int device) { return device == BL_DEVICE_CUDA ? "cuda" : "cpu"; }

const bl_backend_t *device_backend(int device) {
    if (device == BL_DEVICE_CPU) return bl_backend_cpu();
    if (device != BL_DEVICE_CUDA) {
        bl_fail("unknown device number %d", device);
        return NULL;
    }
    const bl_backend_t *be = bl_backend_cuda();
    if (!be) {
        if (k_cuda_available())
            bl_fail("CUDA is not available: this build has no CUDA backend (%s)", k_cuda_describe());
        else
            bl_fail("CUDA is not available: %s", k_cuda_describe());
        return NULL;
    }
    if (!bl_backend_cuda_usable()) {
        bl_fail("CUDA is not available: %s", k_cuda_describe());
        return NULL;
    }
    return be;
}

int device_cuda_available(void) { return bl_backend_cuda() != NULL && bl_backend_cuda_usable(); }

const char *device_cuda_describe(void) { return k_cuda_describe(); }

int device_default(void) { return device_cuda_available() ? BL_DEVICE_CUDA : BL_DEVICE_CPU; }

int device_memory(int device, size_t *current, size_t *peak) {
    const bl_backend_t *be = device_backend(device);
    if (!be) return -1;
    be->memory(current, peak);
    return 0;
}

void device_set_num_threads(int n) { k_set_num_threads(n); }
int device_get_num_threads(void) { return k_get_num_threads(); }
