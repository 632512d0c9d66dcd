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
local function time_reps(reps, f, count, windows)
  if reps >= 1 then
    local w = 1
    for k = 2, reps do if batches[k].width > batches[w].width then w = k end end
    f(batches[w])
  end
  local total, k = 0, 1
  local before = windows and sgemm_window()
  while k <= reps do
    local n, ct, ca = 0, 0, 0
    local t0 = bl.clock()
    repeat
      f(batches[k])
      if count then
        tokens = tokens + B * batches[k].width
        attn = attn + B * batches[k].width * batches[k].width
        ct, ca = ct + batches[k].real, ca + batches[k].real2
      end
      k, n = k + 1, n + 1
    until k > reps or (windows and bl.clock() - t0 >= 1.0)
    local dt = bl.clock() - t0
    total, ctokens, cattn = total + dt, ctokens + ct, cattn + ca
    if windows then
      local after = sgemm_window()
      blocks[#blocks + 1] = ("%d:%.6g:%d:%d:%.6g:%.6g"):format(n, dt, ct, ca, before, after)
      before = after
    end
  end
  return reps / total
end

model:train()
local train_sps = time_reps(train_reps, train_step, true, sgemm_cmd ~= nil)
model:eval()
local eval_bps = time_reps(eval_reps, eval_batch, false)

local rss = 0
for line in io.lines("/proc/self/status") do
  local v = line:match("^VmHWM:%s*(%d+)")
  if v then rss = tonumber(v) end
end
print(("peer: train_sps=%.6g eval_bps=%.6g tokens=%.6g attn=%.6g ctokens=%.6g cattn=%.6g rss_kb=%d impl=bertlab-%s%s")
  :format(train_sps, eval_bps, tokens / train_reps, attn / train_reps, ctokens / train_reps,
    cattn / train_reps, rss, bl.version, #blocks > 0 and " blocks=" .. table.concat(blocks, ";") or ""))
