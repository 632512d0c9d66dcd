#!/bin/sh
# bench_dist.sh: data parallel on this machine: one process x all threads at global batch G against
# mpirun -np 2 x (threads / 2), the same steps (bench/dist_step.lua); the time a step spends in the
# gradient all-reduce, and the scaling efficiency (2-process steps/s over 1-process steps/s, the
# same cores). Needs an MPI build and mpirun; says so and exits 0 otherwise.
cd "$(dirname "$0")/.." || exit 1
MODEL=${MODEL:-models/all-MiniLM-L6-v2}
G=${G:-6}; STEPS=${STEPS:-30}; T=${THREADS:-$(nproc)}
if ! bin/bertlab -e 'os.exit(require("bertlab").dist_have_mpi() and 0 or 1)' || ! command -v mpirun >/dev/null 2>&1; then
  echo "note: bench_dist skipped: this bertlab has no MPI or mpirun is missing (apt-get install libopenmpi-dev openmpi-bin, then run make again: it rebuilds with MPI)"
  exit 0
fi
half=$((T / 2)); [ "$half" -ge 1 ] || half=1
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_btl=${OMPI_MCA_btl:-self,vader,tcp}
log=$(mktemp); trap 'rm -f "$log"' EXIT
for rep in 1 2; do # A B A B
  bin/bertlab bench/dist_step.lua "$MODEL" "$G" "$STEPS" "$T" one | tee -a "$log"
  mpirun --oversubscribe --bind-to none -np 2 bin/bertlab bench/dist_step.lua "$MODEL" "$G" "$STEPS" "$half" two | tee -a "$log"
done
awk '/^result: dist_step.one/ { one[++a] = $3 } /^result: dist_step.two/ { two[++b] = $3 }
  END { for (i = 1; i <= a && i <= b; i++) printf "ratio dist_step: 2 processes / 1 process = %.2f (pair %d: %s vs %s steps/s; the scaling efficiency at the same cores)\n", two[i] / one[i], i, two[i], one[i] }' "$log"
