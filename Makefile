# bertlab: `make` builds bin/bertlab (CPU everywhere; CUDA sources too where nvcc exists).
# Entry points: make test | make demo | make bench | make data | make model [NAME=...] | make fixtures
VERSION := 0.1.0
CC      ?= gcc
PKGS    := lua5.4 openblas jansson libutf8proc
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   = $(shell pkg-config --libs $(PKGS) 2>/dev/null)
CFLAGS  ?= -O3 -march=native -g
CFLAGS  += -std=gnu11 -fno-math-errno -Wall -Wextra -Wno-unused-parameter -fopenmp -DBERTLAB_VERSION='"$(VERSION)"' $(PKG_CFLAGS)
LDLIBS  := $(PKG_LIBS) -lcsv -lm -fopenmp

# CUDA: on when nvcc is found (CUDA=0 turns it off). The binary still runs on the CPU without a GPU.
NVCC    ?= $(shell command -v nvcc 2>/dev/null || ls /usr/local/cuda/bin/nvcc 2>/dev/null)
CUDA    ?= $(if $(NVCC),1,0)
ifeq ($(CUDA),1)
CUDA_HOME  := $(patsubst %/bin/nvcc,%,$(NVCC))
NVCCFLAGS  ?= -O3 -gencode arch=compute_90,code=sm_90 -gencode arch=compute_80,code=compute_80
CFLAGS     += -DBL_WITH_CUDA
CU_SRC     := $(wildcard kernels/cuda/*.cu)
CU_OBJ     := $(patsubst %.cu,build/%.o,$(CU_SRC))
LDLIBS     += -L$(CUDA_HOME)/lib64 -Wl,-rpath,$(CUDA_HOME)/lib64 -lcublas -lcurand -lcudart -lstdc++
endif

CORE_SRC := $(wildcard runtime/*.c) $(wildcard kernels/cpu/*.c)
LUA_SRC  := $(filter-out lua/main.c,$(wildcard lua/*.c))
CORE_OBJ := $(patsubst %.c,build/%.o,$(CORE_SRC)) $(CU_OBJ)
LUA_OBJ  := $(patsubst %.c,build/%.o,$(LUA_SRC))
CTESTS   := $(patsubst tests/%.c,build/tests/%,$(wildcard tests/test_*.c))
DEPS_STAMP := build/.deps-ok

.PHONY: all deps test demo bench data model fixtures clean cuda-check
all: $(DEPS_STAMP) bin/bertlab $(CTESTS)

$(DEPS_STAMP): scripts/deps.sh
	@mkdir -p build
	@sh scripts/deps.sh
	@touch $@

deps:
	@sh scripts/deps.sh

build/%.o: %.c | $(DEPS_STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

build/kernels/cuda/%.o: kernels/cuda/%.cu kernels/kernels.h $(wildcard kernels/*.h) | $(DEPS_STAMP)
	@mkdir -p $(dir $@)
	$(NVCC) $(NVCCFLAGS) -DBL_WITH_CUDA -c $< -o $@

build/libbertlab.a: $(CORE_OBJ)
	@rm -f $@
	ar rcs $@ $^

build/libbertlab_lua.a: $(LUA_OBJ)
	@rm -f $@
	ar rcs $@ $^

bin/bertlab: build/lua/main.o build/libbertlab_lua.a build/libbertlab.a
	@mkdir -p bin
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)

build/tests/%: tests/%.c tests/ctest.h build/libbertlab.a
	@mkdir -p build/tests
	$(CC) $(CFLAGS) -o $@ $< build/libbertlab.a $(LDLIBS)

data:
	@sh scripts/data.sh

model:
	@sh scripts/model.sh $(NAME)

test: all data model
	@sh tests/run.sh

demo: all data model
	bin/bertlab experiments/conference.lua $(DEMO_ARGS)

bench: all data model build/bench_kernels
	build/bench_kernels
	@sh bench/run.sh

build/bench_kernels: bench/bench_kernels.c build/libbertlab.a
	$(CC) $(CFLAGS) -o $@ $< build/libbertlab.a $(LDLIBS)

fixtures:
	@sh tests/fixtures/generate.sh

clean:
	rm -rf build bin/bertlab

-include $(shell find build -name '*.d' 2>/dev/null)

# cuda-check: GPU-only checks (Philox parity with cuRAND); needs nvcc and a GPU.
cuda-check: build/cuda_check/philox_parity build/cuda_check/device_query
	build/cuda_check/device_query
	build/cuda_check/philox_parity
build/cuda_check/device_query: tests/cuda/device_query.c kernels/cuda/device.cu kernels/kernels.h
	@mkdir -p build/cuda_check
	$(NVCC) -O2 -DBL_WITH_CUDA tests/cuda/device_query.c kernels/cuda/device.cu -o $@ -lcublas -lcurand
build/cuda_check/philox_parity: tests/cuda/philox_parity.cu runtime/rng.c runtime/rng.h
	@mkdir -p build/cuda_check
	$(CC) $(CFLAGS) -c runtime/rng.c -o build/cuda_check/rng.o
	$(NVCC) -O2 tests/cuda/philox_parity.cu build/cuda_check/rng.o -o $@ -lcurand

# gpu-check: every GPU check in one command on a machine with a GPU, from the folder .gpu/ that
# scripts/gpu_pack.sh fills here (debs, float16 model, data); prints each figure, log in $OUT/log.
.PHONY: gpu-check
gpu-check:
	bash scripts/gpu_check.sh
$(CU_OBJ): $(wildcard kernels/cuda/*.cuh)
