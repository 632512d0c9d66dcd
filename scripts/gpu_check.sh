#!/bin/bash
# gpu_check.sh: the GPU checks in one command (`make gpu-check`), on a machine with an NVIDIA GPU and
# the folder scripts/gpu_pack.sh filled (.gpu/, carried to the device machine):
#   1. unpacks .gpu/debs with dpkg -x into a private folder (nothing goes into /), points a
#      pkg-config stand-in, the include and library paths at it, and builds there with
#      CFLAGS="-O3 -march=x86-64-v3" (any x86-64 of the last decade; the CUDA objects for sm_90);
#   2. runs the GPU tests: make cuda-check (device, Philox vs cuRAND), build/tests/test_cuda_kernels
#      (every backend entry vs the CPU kernel), tests/test_cuda.lua (the model, GPU vs CPU; the
#      MiniLM logits against transformers run there on the same float16 weights);
#   3. runs the tutorial (experiments/conference.lua) for a short schedule on the GPU and on the CPU
#      from the same float16 weights and prints the per-epoch F1 side by side, with the times.
#   4. where the CPU has AVX-512, the C tests built with -march=x86-64-v4 (build/v4): the CPU
#      kernels' AVX-512 paths, which the project's own CPU machines may lack (CPU_V4=0: not run).
# A failing test_cuda_kernels reruns under compute-sanitizer (memcheck).
# Everything printed also goes to $OUT/log (the device tool brings $OUT back; build/gpu-check/log
# where OUT is unset).
# Sized for under 5 minutes on one H200 with 16 cores: EPOCHS, LIMIT, VAL_LIMIT resize step 3;
# GPU_FULL=1 adds the whole tutorial (5 epochs, all titles) on the GPU, GPU_FULL=auto only when every
# check before it passed; TUTORIAL_TIMEOUT (default 240 s) bounds each tutorial run; CPU_SWEEP="1 4 16"
# times the CPU's training at those thread counts.
# --dry-run: no GPU needed: unpacks, builds and runs the same steps, whose GPU checks then skip, with
# a tiny step 3 on the CPU only (run it in a copy of the tree: it rebuilds build/).
set -u
cd "$(dirname "$0")/.." || exit 1
DRY=0
[ "${1:-}" = "--dry-run" ] && DRY=1
PACK=${PACK:-.gpu}
# work files in build/gpu-check; into $OUT (the device tool brings back 8 files at most) only log,
# build.log and the two tests' logs
OUTDIR=build/gpu-check
KEEP=${OUT:-$OUTDIR}
rm -rf "$OUTDIR"
mkdir -p "$OUTDIR" "$KEEP"
LOG="$KEEP/log"
T0=$(date +%s.%N)
since() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }
step() { echo; echo "== $* ($(since "$T0") s)"; }
fail=0
note_fail() { echo "gpu-check: FAILED: $*"; fail=$((fail + 1)); }

main() {
[ -d "$PACK/debs" ] || { echo "gpu-check: $PACK/debs is missing: run sh scripts/gpu_pack.sh first (and carry $PACK)"; exit 1; }

step "device"
uname -m
echo "CPU: $(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(nproc) cores, AVX-512: $(grep -q ' avx512f ' /proc/cpuinfo && echo yes || echo no)"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo "nvidia-smi: none"
command -v nvcc >/dev/null && nvcc --version | tail -1 || echo "nvcc: not on PATH (the Makefile also looks in /usr/local/cuda/bin)"

step "unpack $PACK/debs"
D=${DEBROOT:-/tmp/bertlab-debs}
rm -rf "$D"
mkdir -p "$D/bin"
for f in "$PACK"/debs/*.deb; do
  if command -v dpkg >/dev/null; then
    dpkg -x "$f" "$D" || { echo "gpu-check: dpkg -x $f failed"; exit 1; }
  else # no dpkg: a .deb is an ar archive holding data.tar.*
    x=$(mktemp -d)
    (cd "$x" && ar x "$OLDPWD/$f" && tar -xf data.tar.* -C "$D") || { echo "gpu-check: unpacking $f failed"; exit 1; }
    rm -rf "$x"
  fi
done
L="$D/usr/lib/x86_64-linux-gnu"
INC="-I$D/usr/include -I$D/usr/include/x86_64-linux-gnu -I$D/usr/include/lua5.4 -I$D/usr/include/x86_64-linux-gnu/openblas-openmp -DUTF8PROC_EXPORTS"
LIBS="-L$L -L$L/openblas-openmp -llua5.4 -lopenblas -ljansson -lutf8proc"
# the Makefile asks pkg-config for its packages' flags: this stand-in answers from the unpacked debs
# (BLAS=system below: the Makefile's own search for OpenBLAS's OpenMP build looks in /usr/lib, the
# stand-in names the one in the debs: the same OpenMP build, one thread pool, as `make` links)
cat >"$D/bin/pkg-config" <<PC
#!/bin/sh
case " \$* " in
  *" --cflags "*) echo "$INC" ;;
  *" --libs "*) echo "$LIBS" ;;
esac
exit 0
PC
chmod +x "$D/bin/pkg-config"
export PATH="$D/bin:$PATH"
export LD_LIBRARY_PATH="$L:$L/openblas-openmp${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
echo "unpacked $(ls "$PACK"/debs/*.deb | wc -l) debs into $D"

step "build (CFLAGS -O3 -march=x86-64-v3)"
mkdir -p build
touch build/.deps-ok # scripts/deps.sh would apt-get: the debs stand in for it
JOBS=$(nproc 2>/dev/null || echo 4)
if ! CFLAGS="-O3 -march=x86-64-v3 -g" make -j"$JOBS" BLAS=system all >"$OUTDIR/build.log" 2>&1; then
  tail -40 "$OUTDIR/build.log"
  echo "gpu-check: the build failed (all of it in $OUTDIR/build.log)"
  exit 1
fi
grep -c "nvcc" "$OUTDIR/build.log" | sed 's/^/nvcc invocations: /'
ldd bin/bertlab | grep -E "lua|blas|jansson|utf8proc|csv|cublas|cudart|gfortran" | sed 's/ (0x.*//'
bin/bertlab -e 'local bl = require("bertlab"); print("bertlab " .. bl.version .. ": " .. bl.cuda_describe())'
# where the CPU has AVX-512, the CPU kernels' AVX-512 paths (-march=x86-64-v4) are built beside,
# in the background, and their C tests run before the tutorial (a machine of the project's own kind
# may have no AVX-512: this is where those paths run)
V4=0
if [ "${CPU_V4:-1}" = 1 ] && grep -q ' avx512f ' /proc/cpuinfo; then
  V4=1
  (CFLAGS="-O3 -march=x86-64-v4 -g" make -j"$JOBS" BLAS=system BUILD=build/v4 BIN=build/v4/bin/bertlab CUDA=0 all \
    >"$OUTDIR/v4-build.log" 2>&1; echo $? >"$OUTDIR/v4-build.rc") &
  V4_PID=$!
fi

step "make cuda-check (device query, Philox vs cuRAND)"
if [ "$DRY" = 1 ]; then echo "dry run: skipped (needs a GPU)"
else make cuda-check 2>&1 | tail -20; [ "${PIPESTATUS[0]}" = 0 ] || note_fail "make cuda-check"; fi

step "build/tests/test_cuda_kernels (every backend entry vs the CPU kernel)"
build/tests/test_cuda_kernels >"$OUTDIR/test_cuda_kernels.log" 2>&1
rc=$?
grep -E "^#|^not ok|^skip" "$OUTDIR/test_cuda_kernels.log" | head -150
echo "$(grep -c '^ok - ' "$OUTDIR/test_cuda_kernels.log") ok, $(grep -c '^not ok - ' "$OUTDIR/test_cuda_kernels.log") not ok, $(grep -c '^skip - ' "$OUTDIR/test_cuda_kernels.log") skipped"
if [ $rc != 0 ]; then
  note_fail "test_cuda_kernels (exit $rc)"
  # a failing kernel test reruns once under compute-sanitizer (memcheck): a bad access names its kernel
  if [ "$DRY" = 0 ] && command -v compute-sanitizer >/dev/null; then
    timeout 120 compute-sanitizer --tool memcheck --print-limit 20 build/tests/test_cuda_kernels \
      >"$OUTDIR/sanitizer.log" 2>&1
    grep -E "^=========|^not ok" "$OUTDIR/sanitizer.log" | head -40
  fi
fi

step "build/tests/test_nccl (NCCL: a one-rank communicator and an in-place device all-reduce)"
build/tests/test_nccl 2>&1 | tail -8
[ "${PIPESTATUS[0]}" = 0 ] || note_fail "test_nccl"

step "the HF oracle for MiniLM's float16 weights (tests/cuda/hf_logits.py, transformers on the CPU)"
export BERTLAB_MINILM="$PACK/model"
export BERTLAB_MINILM_LOGITS="$OUTDIR/hf_logits_f16.safetensors"
if [ "$DRY" = 1 ] && ! python3 -c "import transformers" 2>/dev/null; then
  echo "dry run: no transformers here: MiniLM logits check skipped"; BERTLAB_MINILM_LOGITS=none
else
  timeout 120 python3 tests/cuda/hf_logits.py "$PACK/model" "$BERTLAB_MINILM_LOGITS" >"$OUTDIR/hf_logits.log" 2>&1
  rc=$?
  grep -v -i "warn" "$OUTDIR/hf_logits.log" | tail -5
  [ $rc = 0 ] || { note_fail "hf_logits.py (exit $rc)"; BERTLAB_MINILM_LOGITS=none; }
fi
[ -f "$BERTLAB_MINILM_LOGITS" ] || BERTLAB_MINILM_LOGITS=none

step "tests/test_cuda.lua (the model: GPU vs CPU, transformers' logits)"
LUA_PATH="tests/lib/?.lua;;" timeout 150 bin/bertlab tests/test_cuda.lua >"$OUTDIR/test_cuda.log" 2>&1
rc=$?
cat "$OUTDIR/test_cuda.log" | grep -v "^ok - " | head -60
echo "$(grep -c '^ok - ' "$OUTDIR/test_cuda.log") ok, $(grep -c '^not ok - ' "$OUTDIR/test_cuda.log") not ok, $(grep -c '^skip - ' "$OUTDIR/test_cuda.log") skipped"
[ $rc = 0 ] || note_fail "test_cuda.lua (exit $rc)"

if [ "$V4" = 1 ]; then
  step "the CPU's AVX-512 paths: the C tests built with -march=x86-64-v4 (build/v4)"
  wait "$V4_PID"
  if [ "$(cat "$OUTDIR/v4-build.rc" 2>/dev/null)" != 0 ]; then
    tail -20 "$OUTDIR/v4-build.log"; note_fail "the -march=x86-64-v4 build"
  else
    BUILD=build/v4 BIN=build/v4/bin/bertlab TESTS=build/v4/tests/ timeout 180 sh tests/run.sh \
      >"$OUTDIR/v4-tests.log" 2>&1
    rc=$?
    grep -v "^    ok - \|^    skip - " "$OUTDIR/v4-tests.log" | head -40
    [ $rc = 0 ] || note_fail "the C tests at -march=x86-64-v4 (exit $rc)"
  fi
fi

# ---- the tutorial, short: GPU and CPU from the same float16 weights ----
EPOCHS=${EPOCHS:-2}; LIMIT=${LIMIT:-600}; VAL_LIMIT=${VAL_LIMIT:-300}
[ "$DRY" = 1 ] && { EPOCHS=1; LIMIT=${DRY_LIMIT:-12}; VAL_LIMIT=${DRY_LIMIT:-12}; }
run_tutorial() { # device out [extra args]
  local dev=$1 out=$2; shift 2
  rm -rf "$out"
  local t=$(date +%s.%N)
  timeout "${TUTORIAL_TIMEOUT:-240}" bin/bertlab experiments/conference.lua --model "$PACK/model" --data "$PACK/title_conference.csv" \
    --device "$dev" --no-save --quiet --out "$out" "$@" >"$out.log" 2>&1
  local rc=$?
  echo "$dev: exit $rc, $(since "$t") s"
  tail -4 "$out.log" | sed 's/^/  /'
  return $rc
}
f1s() { # results.csv -> "epoch f1" lines
  [ -f "$1/results.csv" ] || return 0
  awk -F, 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == "val_f1") c = i; next } { print $1, $c }' "$1/results.csv"
}
step "tutorial, short: --epochs $EPOCHS --limit $LIMIT --val-limit $VAL_LIMIT"
if [ "$DRY" = 1 ]; then echo "dry run: the GPU run skipped"
else run_tutorial cuda "$OUTDIR/tutorial-cuda" --epochs "$EPOCHS" --limit "$LIMIT" --val-limit "$VAL_LIMIT" || note_fail "tutorial on the GPU"; fi
run_tutorial cpu "$OUTDIR/tutorial-cpu" --epochs "$EPOCHS" --limit "$LIMIT" --val-limit "$VAL_LIMIT" || note_fail "tutorial on the CPU"
echo "epoch  F1 (cuda)   F1 (cpu)"
join -a 2 -e - -o 0,1.2,2.2 <(f1s "$OUTDIR/tutorial-cuda") <(f1s "$OUTDIR/tutorial-cpu") | awk '{ printf "%5s  %-10s  %-10s\n", $1, $2, $3 }'

# CPU_SWEEP="1 2 4 8 16": training steps/s of the short tutorial's first epoch on the CPU at each
# thread count (the device machine's many cores are the only ones the project sees)
if [ -n "${CPU_SWEEP:-}" ]; then
  step "CPU threads: --epochs 1 --limit $LIMIT --val-limit 30 at $CPU_SWEEP threads"
  for n in $CPU_SWEEP; do
    run_tutorial cpu "$OUTDIR/sweep" --threads "$n" --epochs 1 --limit "$LIMIT" --val-limit 30 >/dev/null
    grep "steps/s" "$OUTDIR/sweep.log" | sed "s/^/$n threads: /"
  done
fi

# GPU_FULL=auto: the whole tutorial only when every check above passed
full=${GPU_FULL:-0}
[ "$full" = auto ] && { [ "$fail" = 0 ] && full=1 || echo "GPU_FULL=auto: $fail failure(s) above, the whole tutorial skipped"; }
if [ "$full" = 1 ] && [ "$DRY" = 0 ]; then
  step "tutorial, whole (5 epochs, every title) on the GPU"
  run_tutorial cuda "$OUTDIR/tutorial-cuda-full" || note_fail "whole tutorial on the GPU"
  f1s "$OUTDIR/tutorial-cuda-full" | awk '{ printf "epoch %s F1 %s\n", $1, $2 }'
fi

[ "$KEEP" = "$OUTDIR" ] || cp "$OUTDIR/build.log" "$OUTDIR/test_cuda_kernels.log" "$OUTDIR/test_cuda.log" \
  "$OUTDIR"/sanitizer.log "$OUTDIR"/v4-tests.log "$OUTDIR"/tutorial-cuda*.log "$KEEP/" 2>/dev/null
step "done"
echo "gpu-check: $fail failure(s), $(since "$T0") s in all; log in $LOG"
[ "$fail" = 0 ]
}

main 2>&1 | tee "$LOG"
exit "${PIPESTATUS[0]}"
