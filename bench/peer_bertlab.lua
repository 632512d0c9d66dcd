-- peer_bertlab.lua: one row of `make bench` for bertlab, in its own process (so its peak RSS is the
-- row's own): training steps (zero_grad, forward, backward, clip 1.0, AdamW) and evaluation batches
-- (forward, no labels) per second on batches of real titles (bench/bench.lua writes their token ids).
-- Usage: bin/bertlab bench/peer_bertlab.lua MODEL_DIR IDS_FILE B T THREADS TRAIN_REPS EVAL_REPS
--   T = 0: each batch padded to its longest title (dynamic); T > 0: every batch padded to T;
--   T < 0: every sequence -T real tokens long (titles run together: no padding at all).
--   Each timed phase follows one untimed warm-up step (on the widest timed batch): the first step's
--   first-touch page faults (about 12 s of a bert-base step at 32 x 128 tokens on a VM here) and
--   lazy initialisation are not what a step costs.
-- Prints one line: "peer: train_sps=... eval_bps=... tokens=... attn=... rss_kb=...".
-- BENCH_SGEMM=COMMAND (bench.lua sets it: build/bench/sgemm at the row's shapes, one window): the
--   timed training steps run in blocks of about a second, with one sgemm window before the first block
--   and after each, so each block's rate has the machine's sgemm rate of the same minutes beside it
--   (this machine's rate drifts 10-40% within a day); the line then also has
--   "blocks=N:SECONDS:CTOKENS:CATTN:GFLOPS_BEFORE:GFLOPS_AFTER;...". The windows' time is not
--   in train_sps.
-- BENCH_SYNC=PREFIX (bench.lua sets it for BENCH_PAIRS): the phases run a block at a time, on
--   commands read from the FIFO PREFIX.go, answered on PREFIX.done (see the sync loop below).
local bl = require("bertlab")
local dir, ids_file = arg[1], arg[2]
local B, T, threads = tonumber(arg[3]), tonumber(arg[4]), tonumber(arg[5])
local train_reps, eval_reps = tonumber(arg[6]), tonumber(arg[7])
bl.set_num_threads(threads)

local titles = {}
for line in io.lines(ids_file) do
  local ids = {}
  for w in line:gmatch("%d+") do ids[#ids + 1] = tonumber(w) end
  titles[#titles + 1] = ids
end

-- batch k (1-based): titles (k-1)*B+1 .. k*B (wrapping), padded to the longest or to T
local function full_row(k, b, n) -- n tokens: [CLS], the titles' words from title (k-1)*B+b on, [SEP]
  local r, i = { 101 }, (k - 1) * B + b - 1
  while #r < n - 1 do
    local t = titles[i % #titles + 1]
    for j = 2, #t - 1 do if #r < n - 1 then r[#r + 1] = t[j] end end
    i = i + 1
  end
  r[#r + 1] = 102
  return r
end

local function make_batch(k)
  local rows, width = {}, T
  for b = 1, B do rows[b] = T < 0 and full_row(k, b, -T) or titles[((k - 1) * B + b - 1) % #titles + 1] end
  if T < 0 then width = -T end
  if T == 0 then
    width = 0
    for b = 1, B do width = math.max(width, #rows[b]) end
  end
  local ids, mask, labels = {}, {}, {}
  for b = 1, B do
    local r, n = rows[b], math.min(#rows[b], width)
    ids[b], mask[b] = {}, {}
    for t = 1, width do
      ids[b][t] = t <= n and r[t] or 0
      mask[b][t] = t <= n and 1 or 0
    end
    if n < #r then ids[b][n] = 102 end -- truncated: end with [SEP]
    labels[b] = ((k - 1) * B + b) % 5
  end
  -- what bertlab computes on: each row's real tokens (it packs them; attention per row)
  local real, real2 = 0, 0
  for b = 1, B do
    local n = math.min(#rows[b], width)
    real, real2 = real + n, real2 + n * n
  end
  return { input_ids = bl.tensor(ids, "int64"), attention_mask = bl.tensor(mask, "int64"),
           labels = bl.tensor(labels, "int64"), width = width, real = real, real2 = real2 }
end

local model = bl.BertForSequenceClassification.from_pretrained(dir, { num_labels = 5, quiet = true })
bl.seed(1)
local params = model:parameters()
local opt = bl.AdamW(params, { lr = 1e-5, eps = 1e-8 })

local nb = math.max(train_reps, eval_reps)
local batches = {}
for k = 1, nb do batches[k] = make_batch(k) end

local tokens, attn, ctokens, cattn = 0, 0, 0, 0
local function train_step(bt)
  model:zero_grad()
  local out = model:forward({ input_ids = bt.input_ids, attention_mask = bt.attention_mask, labels = bt.labels })
  out.loss:backward()
  opt:clip_grad_norm(1.0, { return_norm = false }) -- as bl.train_epoch: the scaling inside the step
  opt:step()
  return out.loss:item()
end
local function eval_batch(bt)
  local out = model:forward({ input_ids = bt.input_ids, attention_mask = bt.attention_mask })
  return out.logits
end

-- steps 1..reps on batches 1..reps, after a warm-up on the widest of them: under dynamic padding a
-- batch longer than any before grows the activation block, whose fresh pages the kernel clears
-- (clear_page: 1.1% of a 40-step profile of minilm/B32/dyn when the warm-up took batch nb); a
-- training run pays that once, when its longest batch first comes. With `windows`, in blocks of about
-- a second between sgemm windows (BENCH_SGEMM above).
local sgemm_cmd = os.getenv("BENCH_SGEMM")
local function sgemm_window()
  local p = io.popen(sgemm_cmd .. " 2>&1")
  local out = p:read("a")
  p:close()
  local g = tonumber(out:match("gflops=(%S+)"))
  if not g then error("peer_bertlab: BENCH_SGEMM printed no gflops=:\n" .. out, 0) end
  return g
end
local blocks = {}
-- steps from batch k on (after batch `wrap`, batch 1 again), one at least, until batch `reps` is
-- done or `secs` have gone by (either may be nil); returns the steps, their time, the next k and
-- the real tokens
local function run_steps(f, count, k, reps, secs, wrap)
  local n, ct, ca = 0, 0, 0
  local t0 = bl.clock()
  repeat
    local bt = batches[(k - 1) % (wrap or #batches) + 1]
    f(bt)
    if count then
      tokens = tokens + B * bt.width
      attn = attn + B * bt.width * bt.width
      ct, ca = ct + bt.real, ca + bt.real2
    end
    k, n = k + 1, n + 1
  until (reps and k > reps) or (secs and bl.clock() - t0 >= secs)
  local dt = bl.clock() - t0
  ctokens, cattn = ctokens + ct, cattn + ca
  return n, dt, k, ct, ca
end
local function warm_up(reps, f)
  local w = 1
  for k = 2, math.min(reps, #batches) do if batches[k].width > batches[w].width then w = k end end
  f(batches[w])
end
local function time_reps(reps, f, count, windows)
  if reps >= 1 then warm_up(reps, f) end
  local total, k = 0, 1
  local before = windows and sgemm_window()
  while k <= reps do
    local n, dt, ct, ca
    n, dt, k, ct, ca = run_steps(f, count, k, reps, windows and 1.0 or nil)
    total = total + dt
    if windows then
      local after = sgemm_window()
      blocks[#blocks + 1] = ("%d:%.6g:%d:%d:%.6g:%.6g"):format(n, dt, ct, ca, before, after)
      before = after
    end
  end
  return reps / total
end

local train_sps, eval_bps, counted
local sync = os.getenv("BENCH_SYNC")
if not sync then
  model:train()
  train_sps = time_reps(train_reps, train_step, true, sgemm_cmd ~= nil)
  model:eval()
  eval_bps = time_reps(eval_reps, eval_batch, false)
  counted = train_reps
else
  -- BENCH_SYNC=PREFIX (bench.lua's BENCH_PAIRS): in lockstep with the other peer, which waits while
  -- this one runs. Ready once set up, then one block a command read from the FIFO PREFIX.go: "train
  -- SECS" or "eval SECS" runs steps for SECS (one at least; a phase's first block after its warm-up,
  -- and each training block between two sgemm windows of its own) and answers "n=STEPS dt=SECONDS" on
  -- PREFIX.done; "quit" ends with the peer line. Training cycles through batches 1..TRAIN_REPS,
  -- evaluation through 1..EVAL_REPS, as the phases above take them.
  local done = assert(io.open(sync .. ".done", "w"))
  done:setvbuf("line")
  local go = assert(io.open(sync .. ".go", "r"))
  done:write("ready\n")
  local phase, k, before
  local sum = { train = { 0, 0 }, eval = { 0, 0 } }
  for line in go:lines() do
    if line == "quit" then break end
    local cmd, secs = line:match("^(%a+) (%S+)$")
    secs = tonumber(secs)
    if not sum[cmd or ""] or not secs then error("peer_bertlab: BENCH_SYNC: unknown command " .. line, 0) end
    local f, train = cmd == "train" and train_step or eval_batch, cmd == "train"
    local wrap = math.max(1, train and train_reps or eval_reps)
    if cmd ~= phase then
      phase, k = cmd, 1
      if train then model:train() else model:eval() end
      warm_up(wrap, f)
    end
    -- a window right before each training block too: the other peer ran since the last one
    if train and sgemm_cmd then before = sgemm_window() end
    local n, dt, ct, ca
    n, dt, k, ct, ca = run_steps(f, train, k, nil, secs, wrap)
    if train and sgemm_cmd then
      local after = sgemm_window()
      blocks[#blocks + 1] = ("%d:%.6g:%d:%d:%.6g:%.6g"):format(n, dt, ct, ca, before, after)
    end
    sum[cmd][1], sum[cmd][2] = sum[cmd][1] + n, sum[cmd][2] + dt
    done:write(("n=%d dt=%.6g\n"):format(n, dt))
  end
  local function rate(s) return s[2] > 0 and s[1] / s[2] or 0 end
  train_sps, eval_bps, counted = rate(sum.train), rate(sum.eval), math.max(1, sum.train[1])
end

local rss = 0
for line in io.lines("/proc/self/status") do
  local v = line:match("^VmHWM:%s*(%d+)")
  if v then rss = tonumber(v) end
end
print(("peer: train_sps=%.6g eval_bps=%.6g tokens=%.6g attn=%.6g ctokens=%.6g cattn=%.6g rss_kb=%d impl=bertlab-%s%s")
  :format(train_sps, eval_bps, tokens / counted, attn / counted, ctokens / counted,
    cattn / counted, rss, bl.version, #blocks > 0 and " blocks=" .. table.concat(blocks, ";") or ""))
