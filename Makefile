# bertlab: `make` builds bin/bertlab and build/bertlab.so (CPU everywhere; CUDA sources too where nvcc
# exists). Entry points: make test | make demo | make bench | make data | make model [NAME=...] |
# make fixtures | make install [PREFIX=/usr/local DESTDIR=] | make uninstall | make fresh-check |
# make test-asan | make test-portable
VERSION := 0.1.0
# a bare `make` is `make all`, whatever rule comes first below (ad46eb4 put the MPI stamp's first,
# and for a while `make` only rewrote the stamp)
.DEFAULT_GOAL := all
CC      ?= gcc
PKGS    := lua5.4 openblas jansson libutf8proc
# pkg-config runs when a recipe first needs the flags, i.e. after build/.deps-ok (scripts/deps.sh) has
# installed the packages, never while make parses this file; each query runs once (memoized by eval).
# Never use them in a `:=` assignment: that would expand them at parse time, before deps.sh (the
# first make test on a fresh machine would then compile without the Lua headers; fresh-check catches it).
# OpenBLAS: its OpenMP build where installed (Debian's libopenblas-openmp-dev, which scripts/deps.sh
# installs), so that OpenBLAS runs on the same OpenMP threads as our kernels: with the default pthread
# build the two pools spin against each other on a 2-core machine (docs/speed.md, "Threads"). Found
# lazily like the rest; BLAS=system keeps whatever `pkg-config openblas` names. RUNPATH, because
# Debian's alternatives point libopenblas.so.0 at the pthread build.
BLAS ?= openmp
BLAS_DIR    = $(eval BLAS_DIR := $(if $(filter openmp,$(BLAS)),$(patsubst %/pkgconfig/openblas.pc,%,$(firstword $(wildcard /usr/lib/*/openblas-openmp/pkgconfig/openblas.pc /usr/lib/openblas-openmp/pkgconfig/openblas.pc)))))$(BLAS_DIR)
PKG_CONFIG  = $(if $(BLAS_DIR),PKG_CONFIG_PATH=$(BLAS_DIR)/pkgconfig) pkg-config
BLAS_RPATH  = $(if $(BLAS_DIR),-Wl$(comma)-rpath$(comma)$(BLAS_DIR))
comma      := ,
PKG_CFLAGS  = $(eval PKG_CFLAGS := $(shell $(PKG_CONFIG) --cflags $(PKGS) 2>/dev/null))$(PKG_CFLAGS)
PKG_LIBS    = $(eval PKG_LIBS := $(shell $(PKG_CONFIG) --libs $(PKGS) 2>/dev/null) $(BLAS_RPATH))$(PKG_LIBS)
# The loadable module leaves the Lua API unresolved: the `lua5.4` that loads it provides it.
PKG_MODLIBS = $(eval PKG_MODLIBS := $(shell $(PKG_CONFIG) --libs $(filter-out lua5.4,$(PKGS)) 2>/dev/null) $(BLAS_RPATH))$(PKG_MODLIBS)
CFLAGS  ?= -O3 -march=native -g
CFLAGS  += -std=gnu11 -fno-math-errno -Wall -Wextra -Wno-unused-parameter -fopenmp -DBERTLAB_VERSION='"$(VERSION)"' $(PKG_CFLAGS)
LDLIBS   = $(PKG_LIBS) -lcsv -lm -fopenmp
MODLIBS  = $(PKG_MODLIBS) -lcsv -lm -fopenmp

# make install: PREFIX/bin/bertlab, the Lua modules where stock Lua 5.4 looks (LUA_LMODDIR,
# LUA_CMODDIR), the experiments in PREFIX/share/bertlab. DESTDIR stages it (packaging).
PREFIX      ?= /usr/local
BINDIR      ?= $(PREFIX)/bin
LUA_LMODDIR ?= $(PREFIX)/share/lua/5.4
LUA_CMODDIR ?= $(PREFIX)/lib/lua/5.4
DATADIR     ?= $(PREFIX)/share/bertlab

# Where objects and binaries go: `make test-asan` builds a sanitized copy with BUILD=build/asan.
BUILD ?= build
BIN   ?= bin/bertlab

# CUDA: on when nvcc is found (CUDA=0 turns it off). The binary still runs on the CPU without a GPU.
NVCC    ?= $(shell command -v nvcc 2>/dev/null || ls /usr/local/cuda/bin/nvcc 2>/dev/null)
CUDA    ?= $(if $(NVCC),1,0)
ifeq ($(CUDA),1)
CUDA_HOME  := $(patsubst %/bin/nvcc,%,$(NVCC))
NVCCFLAGS  ?= -O3 -gencode arch=compute_90,code=sm_90 -gencode arch=compute_80,code=compute_80
CFLAGS     += -DBL_WITH_CUDA
CU_SRC     := $(wildcard kernels/cuda/*.cu)
CU_OBJ     := $(patsubst %.cu,$(BUILD)/%.o,$(CU_SRC))
CU_PIC_OBJ := $(patsubst %.cu,$(BUILD)/pic/%.o,$(CU_SRC))
CUDA_LIBS  := -L$(CUDA_HOME)/lib64 -Wl,-rpath,$(CUDA_HOME)/lib64 -lcublas -lcurand -lcudart -lstdc++
# NCCL (the GPU all-reduce of a data-parallel run, kernels/cuda/nccl.cu): where nccl.h and libnccl are
# found beside nvcc (NCCL=0 turns it off); looked up lazily, when a recipe needs it.
NCCL ?= 1
ifeq ($(NCCL),1)
NCCL_DIR   = $(eval NCCL_DIR := $(if $(wildcard $(CUDA_HOME)/include/nccl.h),$(firstword $(foreach d,$(CUDA_HOME)/lib64 $(CUDA_HOME)/lib /usr/lib/x86_64-linux-gnu,$(if $(wildcard $(d)/libnccl.so),$(d))))))$(NCCL_DIR)
NCCL_FLAGS = $(if $(NCCL_DIR),-DBL_WITH_NCCL)
NCCL_LIBS  = $(if $(NCCL_DIR),-L$(NCCL_DIR) -Wl$(comma)-rpath$(comma)$(NCCL_DIR) -lnccl)
endif
LDLIBS     += $(CUDA_LIBS) $(NCCL_LIBS)
MODLIBS    += $(CUDA_LIBS) $(NCCL_LIBS)
endif

# MPI (data parallel under mpirun or srun: runtime/dist.c, the only file that includes mpi.h): on
# where mpicc is found when the build runs (MPI=0 turns it off). Lazy like the pkg-config flags.
MPI ?= 1
ifeq ($(MPI),1)
MPI_CFLAGS = $(eval MPI_CFLAGS := $(if $(shell command -v mpicc 2>/dev/null),-DBL_WITH_MPI $(shell mpicc --showme:compile 2>/dev/null)))$(MPI_CFLAGS)
MPI_LIBS   = $(eval MPI_LIBS := $(if $(shell command -v mpicc 2>/dev/null),$(shell mpicc --showme:link 2>/dev/null)))$(MPI_LIBS)
$(BUILD)/runtime/dist.o $(BUILD)/pic/runtime/dist.o: CFLAGS += $(MPI_CFLAGS)
LDLIBS  += $(MPI_LIBS)
MODLIBS += $(MPI_LIBS)
endif
# dist.o remembers whether it was built with MPI: $(BUILD)/.mpi-flags holds the flags it was compiled
# with and changes only when they do (Open MPI installed or removed after a build, MPI=0 given), so
# dist.o, the libraries and the binaries are rebuilt then, and only then (a build made before .ci/run
# installed Open MPI kept skipping the MPI tests until `make clean`).
$(BUILD)/.mpi-flags: FORCE | $(DEPS_STAMP)
	@mkdir -p $(dir $@)
	@printf '%s\n' '$(MPI_CFLAGS)' | cmp -s - $@ || printf '%s\n' '$(MPI_CFLAGS)' > $@
$(BUILD)/runtime/dist.o $(BUILD)/pic/runtime/dist.o: $(BUILD)/.mpi-flags
.PHONY: FORCE
FORCE:

CORE_SRC := $(wildcard runtime/*.c) $(wildcard kernels/cpu/*.c)
LUA_SRC  := $(filter-out lua/main.c lua/module.c,$(wildcard lua/*.c))
CORE_OBJ := $(patsubst %.c,$(BUILD)/%.o,$(CORE_SRC)) $(CU_OBJ)
LUA_OBJ  := $(patsubst %.c,$(BUILD)/%.o,$(LUA_SRC))
# build/bertlab.so (require "bertlab" from stock lua5.4): the same sources compiled with -fPIC into
# build/pic/, so bin/bertlab keeps its non-PIC objects.
PIC_OBJ  := $(patsubst %.c,$(BUILD)/pic/%.o,$(CORE_SRC) $(LUA_SRC) lua/module.c) $(CU_PIC_OBJ)
CTESTS   := $(patsubst tests/%.c,$(BUILD)/tests/%,$(wildcard tests/test_*.c))
DEPS_STAMP := build/.deps-ok

.PHONY: all deps module test demo bench bench-micro bench-dist data model fixtures clean cuda-check install uninstall \
        install-module fresh-check
all: $(DEPS_STAMP) $(BIN) $(BUILD)/bertlab.so $(CTESTS)
module: $(BUILD)/bertlab.so

$(DEPS_STAMP): scripts/deps.sh
	@mkdir -p build
	@sh scripts/deps.sh
	@touch $@

deps:
	@sh scripts/deps.sh

$(BUILD)/%.o: %.c | $(DEPS_STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/kernels/cuda/%.o: kernels/cuda/%.cu kernels/kernels.h $(wildcard kernels/*.h) | $(DEPS_STAMP)
	@mkdir -p $(dir $@)
	$(NVCC) $(NVCCFLAGS) -DBL_WITH_CUDA $(if $(filter %/nccl.o,$@),$(NCCL_FLAGS)) -c $< -o $@

$(BUILD)/pic/%.o: %.c | $(DEPS_STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -fPIC -MMD -MP -c $< -o $@

$(BUILD)/pic/kernels/cuda/%.o: kernels/cuda/%.cu kernels/kernels.h $(wildcard kernels/*.h) | $(DEPS_STAMP)
	@mkdir -p $(dir $@)
	$(NVCC) $(NVCCFLAGS) -Xcompiler -fPIC -DBL_WITH_CUDA $(if $(filter %/nccl.o,$@),$(NCCL_FLAGS)) -c $< -o $@

$(BUILD)/libbertlab.a: $(CORE_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/libbertlab_lua.a: $(LUA_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BIN): $(BUILD)/lua/main.o $(BUILD)/libbertlab_lua.a $(BUILD)/libbertlab.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)

# -z nodelete: stock Lua unloads C modules when its state closes (at exit); unloading would take
# libgomp with it while OpenMP's (and OpenBLAS's) worker threads still run its code (a segfault at
# exit: seen under lua5.4 with OpenBLAS's OpenMP build). The module stays mapped until the process ends.
$(BUILD)/bertlab.so: $(PIC_OBJ)
	$(CC) $(CFLAGS) -shared -Wl,-z,nodelete -o $@ $^ $(MODLIBS)

$(BUILD)/tests/%: tests/%.c tests/ctest.h $(BUILD)/libbertlab.a
	@mkdir -p $(BUILD)/tests
	$(CC) $(CFLAGS) -DBL_BLAS_OPENMP=$(if $(filter openmp,$(BLAS)),1,0) -o $@ $< $(BUILD)/libbertlab.a $(LDLIBS)

data: | $(DEPS_STAMP)
	@sh scripts/data.sh

model: | $(DEPS_STAMP)
	@sh scripts/model.sh $(NAME)

test: all data model
	@BUILD=$(BUILD) BIN=$(BIN) sh tests/run.sh

demo: all data model
	$(BIN) experiments/conference.lua $(DEMO_ARGS)

# make bench: one table, bertlab vs PyTorch+transformers (bench/bench.lua; BENCH_ROWS=quick etc.);
# make bench-micro: per-kernel times and the tokenizer bench (bench/run.sh)
bench: all data model $(BUILD)/bench/sgemm
	@bin/bertlab bench/bench.lua
	@sh bench/bench_dist.sh

# data parallel alone: 2 processes x 1 thread against 1 process x 2 threads (needs an MPI build)
bench-dist: all data model
	@sh bench/bench_dist.sh

bench-micro: all data model $(BUILD)/bench_kernels
	$(BUILD)/bench_kernels
	@sh bench/run.sh

$(BUILD)/bench/sgemm: bench/sgemm.c $(BUILD)/libbertlab.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -DBL_BLAS_OPENMP=$(if $(filter openmp,$(BLAS)),1,0) -o $@ $< $(BUILD)/libbertlab.a $(LDLIBS)

$(BUILD)/bench_kernels: bench/bench_kernels.c $(BUILD)/libbertlab.a
	$(CC) $(CFLAGS) -DBL_BLAS_OPENMP=$(if $(filter openmp,$(BLAS)),1,0) -o $@ $< $(BUILD)/libbertlab.a $(LDLIBS)

fixtures:
	@sh tests/fixtures/generate.sh

install: all
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(LUA_CMODDIR) $(DESTDIR)$(LUA_LMODDIR)/bertlab \
	    $(DESTDIR)$(DATADIR)/experiments
	install -m 755 $(BIN) $(DESTDIR)$(BINDIR)/bertlab
	install -m 755 $(BUILD)/bertlab.so $(DESTDIR)$(LUA_CMODDIR)/bertlab.so
	install -m 644 lua/bertlab/*.lua $(DESTDIR)$(LUA_LMODDIR)/bertlab/
	install -m 644 experiments/*.lua $(DESTDIR)$(DATADIR)/experiments/

# install-module: the module alone (`luarocks make` runs it with LuaRocks' own folders).
install-module: $(BUILD)/bertlab.so
	install -d $(DESTDIR)$(LUA_CMODDIR) $(DESTDIR)$(LUA_LMODDIR)/bertlab
	install -m 755 $(BUILD)/bertlab.so $(DESTDIR)$(LUA_CMODDIR)/bertlab.so
	install -m 644 lua/bertlab/*.lua $(DESTDIR)$(LUA_LMODDIR)/bertlab/

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/bertlab $(DESTDIR)$(LUA_CMODDIR)/bertlab.so
	rm -rf $(DESTDIR)$(LUA_LMODDIR)/bertlab $(DESTDIR)$(DATADIR)

# fresh-check: README's two commands in a new minimal Debian root (needs root; see the script).
fresh-check:
	@sh scripts/fresh_check.sh

clean:
	rm -rf build bin/bertlab

-include $(shell find build -name '*.d' 2>/dev/null)

# cuda-check: GPU-only checks (Philox parity with cuRAND); needs nvcc and a GPU.
cuda-check: build/cuda_check/philox_parity build/cuda_check/device_query
	build/cuda_check/device_query
	build/cuda_check/philox_parity
build/cuda_check/device_query: tests/cuda/device_query.c kernels/cuda/device.cu kernels/kernels.h | $(DEPS_STAMP)
	@mkdir -p build/cuda_check
	$(NVCC) -O2 -DBL_WITH_CUDA tests/cuda/device_query.c kernels/cuda/device.cu -o $@ -lcublas -lcurand
build/cuda_check/philox_parity: tests/cuda/philox_parity.cu runtime/rng.c runtime/rng.h | $(DEPS_STAMP)
	@mkdir -p build/cuda_check
	$(CC) $(CFLAGS) -c runtime/rng.c -o build/cuda_check/rng.o
	$(NVCC) -O2 tests/cuda/philox_parity.cu build/cuda_check/rng.o -o $@ -lcurand

# make fuzz [FUZZ_SECONDS=60] [FUZZ_TARGETS="csv tokenizer safetensors config"]: libFuzzer targets of
# the readers (tests/fuzz/fuzz_<target>.c), built with clang -fsanitize=fuzzer,address,undefined into
# build/fuzz/, each run FUZZ_SECONDS from its seed corpus (tests/fuzz/corpus/<target>/, read-only:
# new inputs go to build/fuzz/corpus/<target>/, crashes to build/fuzz/crash-<target>-*).
FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 60
FUZZ_TARGETS ?= csv tokenizer safetensors config
FUZZ_CFLAGS  = -std=gnu11 -g -O1 -fno-omit-frame-pointer -fsanitize=address,undefined \
                -fno-sanitize-recover=undefined -Wno-unknown-pragmas $(PKG_CFLAGS)
FUZZ_SRC     := $(wildcard runtime/*.c) kernels/cpu/elementwise.c kernels/cpu/nocuda.c
FUZZ_OBJ     := $(patsubst %.c,build/fuzz/%.o,$(FUZZ_SRC))
FUZZ_BINS    := $(patsubst %,build/fuzz/fuzz_%,$(FUZZ_TARGETS))
.PHONY: fuzz fuzz-build
fuzz-build: $(FUZZ_BINS)
build/fuzz/%.o: %.c | $(DEPS_STAMP)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -MMD -MP -c $< -o $@
build/fuzz/libfuzzrt.a: $(FUZZ_OBJ)
	@rm -f $@
	ar rcs $@ $^
build/fuzz/fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/fuzz_util.h build/fuzz/libfuzzrt.a
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $< build/fuzz/libfuzzrt.a $(PKG_LIBS) -lcsv -lm
fuzz: $(FUZZ_BINS)
	@for t in $(FUZZ_TARGETS); do \
	  mkdir -p build/fuzz/corpus/$$t; \
	  echo "== fuzz_$$t: $(FUZZ_SECONDS) s"; \
	  build/fuzz/fuzz_$$t -max_total_time=$(FUZZ_SECONDS) -max_len=65536 -rss_limit_mb=2048 \
	    -artifact_prefix=build/fuzz/crash-$$t- build/fuzz/corpus/$$t tests/fuzz/corpus/$$t \
	    2>build/fuzz/fuzz_$$t.log || { tail -40 build/fuzz/fuzz_$$t.log; exit 1; }; \
	  grep -E '^(#[0-9]+.*DONE|Done )' build/fuzz/fuzz_$$t.log; \
	done

# make test-asan: everything rebuilt with AddressSanitizer + UndefinedBehaviorSanitizer into build/asan/
# (bin: build/asan/bin/bertlab, which finds the Lua modules through the link build/asan/lua/bertlab;
# CUDA off: the CUDA runtime and ASan's shadow memory do not mix), then the whole suite run against it;
# any sanitizer report fails the test that triggered it. The default build is made too: the install
# and stock-Lua tests use it.
ASAN_CFLAGS  ?= -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer
ASAN_OPTIONS ?= detect_leaks=1:abort_on_error=0:detect_stack_use_after_return=1
UBSAN_OPTIONS ?= halt_on_error=1:print_stacktrace=1
.PHONY: test-asan
test-asan: all data model
	CFLAGS="$(ASAN_CFLAGS)" $(MAKE) BUILD=build/asan BIN=build/asan/bin/bertlab CUDA=0 all
	ln -sfn ../../../lua/bertlab build/asan/lua/bertlab
	ASAN_OPTIONS=$(ASAN_OPTIONS) UBSAN_OPTIONS=$(UBSAN_OPTIONS) BUILD=build/asan BIN=build/asan/bin/bertlab \
	    sh tests/run.sh

# test-portable: the whole suite again, built for a baseline x86-64 (SSE4.2, no AVX: -march=x86-64-v2)
# into build/portable, so the paths of a CPU without AVX2 or AVX-512 (sgemm for every product, SSE
# AdamW) are tested on any machine; on a machine without AVX-512 `make test` tests the AVX2 ones.
.PHONY: test-portable
test-portable: all data model
	CFLAGS="-O3 -march=x86-64-v2 -g" $(MAKE) BUILD=build/portable BIN=build/portable/bin/bertlab CUDA=0 all
	ln -sfn ../../../lua/bertlab build/portable/lua/bertlab
	BUILD=build/portable BIN=build/portable/bin/bertlab sh tests/run.sh

# gpu-check: every GPU check in one command on a machine with a GPU, from the folder .gpu/ that
# scripts/gpu_pack.sh fills here (debs, float16 model, data); prints each figure, log in $OUT/log.
.PHONY: gpu-check
gpu-check:
	bash scripts/gpu_check.sh
$(CU_OBJ): $(wildcard kernels/cuda/*.cuh)

# make stress: the kill test with many trials (tests/test_kill.lua: kill -9 at random moments and
# during saves, then --resume to the uninterrupted run's weights); STRESS_TRIALS=N (default 20),
# KILL_SEED=S to repeat a sequence of moments. `make test` runs it with 4 trials.
STRESS_TRIALS ?= 20
.PHONY: stress
stress: all
	KILL_TRIALS=$(STRESS_TRIALS) TESTS=test_kill VERBOSE=1 sh tests/run.sh
