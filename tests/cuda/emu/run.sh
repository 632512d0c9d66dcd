#!/bin/sh
# run.sh: runs tests/test_cuda_kernels.c on a machine without a GPU, against kernels/cuda/*.cu
# compiled for the CPU emulator here (emu_cuda.h: the runtime API, cuBLAS's column-major products
# and the kernel language; cooperative blocks as OS threads). It checks the kernels' logic
# (indexing, layouts, the cuBLAS operand swap, the dropout keying, the reductions) against the CPU
# kernels; it says nothing about real GPU behaviour (timing, memory model, cuBLAS's own kernels).
# Developer-run after `make` (it links the CPU objects of build/), ~2 minutes on 2 cores:
#   sh tests/cuda/emu/run.sh        test_cuda_kernels
#   sh tests/cuda/emu/run.sh lua    also links build/cuda_emu/bertlab and runs tests/test_cuda.lua
#                                   with it (the model on the emulated GPU; needs the runtime on the
#                                   backend seam, a build with nvcc, and ~15 minutes)
set -e
cd "$(dirname "$0")/../../.."
E=tests/cuda/emu
W=build/cuda_emu
[ -f build/libbertlab.a ] || { echo "run.sh: run make first (needs build/runtime and build/kernels/cpu objects)" >&2; exit 1; }
rm -rf "$W"
mkdir -p "$W/kernels/cuda"
cp kernels/*.h "$W/kernels/"
cp kernels/cuda/*.cuh "$W/kernels/cuda/"
for f in kernels/cuda/*.cu; do python3 "$E/cu2cpp.py" "$f" "$W/kernels/cuda/$(basename "$f" .cu).cpp"; done
objs=""
for f in "$W"/kernels/cuda/*.cpp "$E/emu_cuda.cpp"; do
  o="$W/$(basename "$f" .cpp).o"
  g++ -std=c++17 -O2 -g -pthread -Wall -Wno-unused-function -DBL_WITH_CUDA -I"$E/include" -I"$E" $(pkg-config --cflags openblas 2>/dev/null) -c "$f" -o "$o"
  objs="$objs $o"
done
ar rcs "$W/libcpu.a" build/runtime/*.o build/kernels/cpu/*.o
gcc -O2 -g -std=gnu11 -fopenmp -DBL_WITH_CUDA -c tests/test_cuda_kernels.c -o "$W/test.o"
# shellcheck disable=SC2086
g++ -o "$W/test_cuda_kernels_emu" "$W/test.o" $objs "$W/libcpu.a" $(pkg-config --libs openblas 2>/dev/null || echo -lopenblas) -lm -fopenmp -pthread
"$W/test_cuda_kernels_emu"
[ "${1:-}" = lua ] || exit 0
if nm build/kernels/cpu/nocuda.o | grep -q " T k_cuda_available"; then
  echo "run.sh lua: build/ was compiled without BL_WITH_CUDA (no nvcc?): its nocuda.o clashes with the emulated device.cu" >&2
  exit 1
fi
# shellcheck disable=SC2086
g++ -o "$W/bertlab" build/lua/main.o build/libbertlab_lua.a "$W/libcpu.a" $objs \
  $(pkg-config --libs lua5.4 openblas jansson libutf8proc) -lcsv -lm -fopenmp -pthread
BERTLAB_HOME="$PWD" LUA_PATH="tests/lib/?.lua;;" "$W/bertlab" tests/test_cuda.lua
