#!/bin/sh
# run.sh (`make bench-micro`): runs every bench/bench_*.lua with bin/bertlab and, when python3 has transformers, its
# bench_*.py peer (the Hugging Face / PyTorch reference), then prints each bench's ratio.
# A bench prints lines "result: <bench>.<impl> <value> <unit>" (higher is better); impl "bertlab" and
# every other impl of the same bench give "ratio <bench>: bertlab/<impl> = X". BENCH=<pattern> picks benches.
cd "$(dirname "$0")/.." || exit 1
export LUA_PATH="bench/?.lua;tests/lib/?.lua;;"
log=$(mktemp); trap 'rm -f "$log"' EXIT
if python3 -c 'import transformers' >/dev/null 2>&1; then have_py=1; else have_py=0
  echo "note: python3 cannot import transformers: the Hugging Face peers (bench/bench_*.py) are skipped"
fi
rc=0
for b in bench/bench_*.lua; do
  [ -e "$b" ] || continue
  if [ -n "$BENCH" ] && ! echo "$b" | grep -q "$BENCH"; then continue; fi
  echo "== $b"
  bin/bertlab "$b" 2>&1 | tee -a "$log" || rc=1
  py="${b%.lua}.py"
  if [ -e "$py" ] && [ "$have_py" = 1 ]; then
    echo "== $py"
    python3 "$py" 2>&1 | grep -v -i 'warn' | tee -a "$log" || rc=1
  fi
done
# ratios: bertlab against every other implementation of the same bench
grep '^result: ' "$log" | awk '
  { split($2, a, "."); b[NR] = a[1]; impl[NR] = a[2]; val[NR] = $3; unit[NR] = $4
    if (a[2] == "bertlab") { mine[a[1]] = $3 } }
  END { for (i = 1; i <= NR; i++) if (impl[i] != "bertlab" && (b[i] in mine) && val[i] > 0)
          printf "ratio %s: bertlab/%s = %.2f (%s vs %s %s)\n", b[i], impl[i], mine[b[i]] / val[i], mine[b[i]], val[i], unit[i] }'
exit $rc
