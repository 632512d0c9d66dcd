-- test_bench_settings.lua: `make bench` (bench/bench.lua) refuses a misspelt or malformed BENCH_
-- setting at once, naming it, with exit status 2 and no traceback, before any row runs or any
-- virtual environment is made (a run takes up to an hour; a setting it ignored would measure
-- something else than asked).
local T = require("testlib")

local function run(env)
  -- the other BENCH_ settings of the caller's environment removed, so each case sees its own alone
  local unset = {}
  for line in io.popen("env"):lines() do
    local name = line:match("^(BENCH_[%w_]*)=")
    if name then unset[#unset + 1] = "-u " .. name end
  end
  -- (timeout: a setting the bench let through would start the whole run)
  local rc, out = T.sh(("env %s %s timeout 60 %s bench/bench.lua"):format(table.concat(unset, " "), env, T.BIN))
  return out, rc
end

local cases = {
  { "BENCH_ROW=minilm", "unknown setting BENCH_ROW in the environment %(known: .*BENCH_ROWS" },
  { "BENCH_ROUNDS=0", "BENCH_ROUNDS=0: want a positive integer" },
  { "BENCH_ROUNDS=1.5", "BENCH_ROUNDS=1.5: want a positive integer" },
  { "BENCH_PAIRS=0", "BENCH_PAIRS=0: want a positive integer" },
  { "BENCH_PAIRS=4 BENCH_ROUNDS=2", "BENCH_PAIRS and BENCH_ROUNDS: give one of them" },
  { "BENCH_BUDGET=abc", "BENCH_BUDGET=abc: want a positive number" },
  { "BENCH_BUDGET=-5", "BENCH_BUDGET=%-5: want a positive number" },
  { "BENCH_PEERS=bertlab,pytorch", "unknown peer \"pytorch\" %(the peers: bertlab, torch%)" },
  { "BENCH_ROWS=minilm/B3/dyn/1t,nosuch", "\"nosuch\" names no row %(the rows: minilm/B3/dyn/1t, " },
  { "BENCH_REUSE=/nonexistent/bench.csv", "BENCH_REUSE=/nonexistent/bench.csv: no such file" },
  { "BENCH_PYTHON=/nonexistent/python", "BENCH_PYTHON=/nonexistent/python: no such command" },
}
for _, c in ipairs(cases) do
  local out, rc = run(c[1])
  T.eq(rc, 2, c[1] .. ": exit status 2")
  T.check(out:find("^bench: ") ~= nil and out:find(c[2]) ~= nil, c[1] .. ": the message names it", out)
  T.check(not out:find("traceback", 1, true) and not out:find("bench: %[1/", 1), c[1] .. ": no traceback, no row run")
end
T.done()
