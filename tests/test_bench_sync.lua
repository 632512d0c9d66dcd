-- test_bench_sync.lua: the lockstep protocol of `make bench`'s BENCH_PAIRS (BENCH_SYNC in
-- bench/peer_bertlab.lua), on the tiny fixture model: the peer says "ready", runs one block of steps
-- a command and answers with its steps and seconds, cycles through its batches, ends with its peer
-- line on "quit", and an unknown command stops it with a message that names the command (the
-- bench's wrapper then reports the exit on the same FIFO, so the bench never waits on a dead peer).
local T = require("testlib")
local bl = require("bertlab")

local dir = os.tmpname()
os.remove(dir)
bl.mkdir_p(dir)
local q = bl.shell_quote
-- token ids within the tiny model's vocabulary (100 words): 5 "titles" of 3 to 7 tokens
-- the tiny model without its 3-class head (the peer asks for 5 labels, as the bench's models get)
local TINY = "tests/fixtures/model/tiny"
bl.mkdir_p(dir .. "/model")
os.execute(("cp %s/config.json %s/"):format(TINY, q(dir .. "/model")))
local w = bl.load_safetensors(TINY .. "/model.safetensors")
w["classifier.weight"], w["classifier.bias"] = nil, nil
bl.save_safetensors(dir .. "/model/model.safetensors", w)
local ids = { "2 5 9 3", "2 11 12 13 14 15 3", "2 20 3", "2 30 31 32 3", "2 40 41 42 43 3" }
bl.write_file(dir .. "/ids", table.concat(ids, "\n") .. "\n")

-- one peer in the background, as bench.lua starts it: the wrapper writes "exit STATUS" on the FIFO
-- when it ends. Returns the FIFOs (opened read-write after the start, as bench.lua does).
local function start(name)
  local p = dir .. "/" .. name
  assert(os.execute(("mkfifo %s.go %s.done"):format(q(p), q(p))))
  os.execute(("(BENCH_SYNC=%s %s bench/peer_bertlab.lua %s %s 2 0 1 2 3 >%s.out 2>&1; echo \"exit $?\" >%s.done) &")
    :format(q(p), T.BIN, q(dir .. "/model"), q(dir .. "/ids"), q(p), q(p)))
  local go, done = assert(io.open(p .. ".go", "r+")), assert(io.open(p .. ".done", "r+"))
  return {
    send = function(s) go:write(s, "\n"); go:flush() end,
    recv = function() return done:read("l") end,
    out = function() return T.slurp(p .. ".out") or "" end,
  }
end

local a = start("a")
T.eq(a.recv(), "ready", "the peer says ready once set up")
local steps = {}
for i, cmd in ipairs({ "train 0.05", "train 0", "eval 0.05", "eval 0" }) do
  a.send(cmd)
  local l = a.recv() or ""
  local n, dt = l:match("^n=(%d+) dt=(%S+)$")
  T.check(n and tonumber(n) >= 1 and tonumber(dt) > 0, cmd .. ": steps and seconds", l)
  steps[i] = tonumber(n) or 0
end
T.eq(steps[2], 1, "a block of 0 s runs one step")
a.send("quit")
T.eq(a.recv(), "exit 0", "quit: the peer ends cleanly")
local line = a.out():match("peer: ([^\n]*)") or ""
local r = {}
for k, v in line:gmatch("([%w_]+)=(%S+)") do r[k] = tonumber(v) or v end
T.check((r.train_sps or 0) > 0 and (r.eval_bps or 0) > 0, "the peer line has both rates", line)
-- the training steps cycled through its 2 batches of 2 titles (of the 3 made: evaluation's 3 reps)
-- from the first: steps[1] + 1 of them, so the mean real tokens a step is known exactly
local lens = { 4, 7, 3, 5, 6 }
local want, n = 0, steps[1] + steps[2]
for k = 1, n do
  local b = (k - 1) % 2 -- batch b holds titles 2b+1, 2b+2
  want = want + lens[(2 * b) % 5 + 1] + lens[(2 * b + 1) % 5 + 1]
end
T.near(r.ctokens or -1, want / n, 1e-3, "ctokens: the mean real tokens of the steps it timed")

local b = start("b")
T.eq(b.recv(), "ready", "a second peer: ready")
b.send("sprint 1")
T.eq(b.recv(), "exit 1", "an unknown command ends the peer with status 1")
T.check(b.out():find("unknown command sprint 1", 1, true) ~= nil, "its message names the command", b.out())
os.execute("rm -rf " .. q(dir))
T.done()
