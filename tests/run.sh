#!/bin/sh
# run.sh: runs every C test (build/tests/test_*) and Lua test (tests/test_*.lua), counts the
# "ok -", "not ok -" and "skip -" lines they print, and ends with "N passed, N failed, N skipped".
# A test program that exits non-zero without reporting a failure counts as one failure.
# BUILD (default build) is where the C tests are, BIN (default bin/bertlab) the binary that runs the
# Lua tests (make test-asan: build/asan, build/asan/bertlab). Lua tests that start the binary themselves
# read BL_TEST_BIN; BUILD and BIN are unset so that a `make` run by a test builds the default tree.
cd "$(dirname "$0")/.." || exit 1
build="${BUILD:-build}"; bin="${BIN:-bin/bertlab}"
unset BUILD BIN
export BL_TEST_BIN="$bin"
export LUA_PATH="tests/lib/?.lua;;"
pass=0; fail=0; skip=0
log=$(mktemp); trap 'rm -f "$log"' EXIT
filter="${TESTS:-}"
for t in "$build"/tests/test_* tests/test_*.lua; do
  [ -e "$t" ] || continue
  case "$t" in *.d|*.o) continue;; esac
  if [ -n "$filter" ] && ! echo "$t" | grep -q "$filter"; then continue; fi
  start=$(date +%s)
  case "$t" in
    *.lua) "$bin" "$t" >"$log" 2>&1; rc=$? ;;
    *)     "$t" >"$log" 2>&1; rc=$? ;;
  esac
  p=$(grep -c '^ok - ' "$log"); f=$(grep -c '^not ok - ' "$log"); s=$(grep -c '^skip - ' "$log")
  if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
    f=1; echo "not ok - $t exited with status $rc without reporting a failure" >>"$log"
  fi
  pass=$((pass + p)); fail=$((fail + f)); skip=$((skip + s))
  printf '%-40s %4d passed %3d failed %3d skipped  (%ss)\n' "$t" "$p" "$f" "$s" "$(( $(date +%s) - start ))"
  if [ "$f" -gt 0 ] || [ -n "$VERBOSE" ]; then
    grep -av '^ok - ' "$log" | sed 's/^/    /' | head -60
  fi
  grep '^skip - ' "$log" | sed 's/^/    /'
done
echo "$pass passed, $fail failed, $skip skipped"
[ "$fail" -eq 0 ]
