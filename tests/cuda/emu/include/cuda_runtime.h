/* cuda_runtime.h: the CPU emulator's stand-in (tests/cuda/emu/emu_cuda.h) */
#include "../emu_cuda.h"
