/* device_query.c: on a GPU machine, the CUDA seam of kernels/ finds the device and its libraries.
 * Run by `make cuda-check`; prints ok/not ok lines like every bertlab test. */
#include <stdio.h>
#include <string.h>
#include "../../kernels/kernels.h"

int main(void) {
    int avail = k_cuda_available();
    const char *d = k_cuda_describe();
    printf("# %s\n", d);
    printf("%s - k_cuda_available() sees a GPU\n", avail ? "ok" : "not ok");
    int named = strstr(d, "cuBLAS") != NULL && strstr(d, "cuRAND") != NULL && strstr(d, "sm_") != NULL;
    printf("%s - k_cuda_describe() names the compute capability, cuBLAS and cuRAND\n", named ? "ok" : "not ok");
    return avail && named ? 0 : 1;
}
