-- bench_model.lua: wall time of the default model (all-MiniLM-L6-v2, 5 labels) on the CPU:
-- forward and forward+backward per batch of 32 titles (T=24 with longest padding, and T=256 as the
-- tutorial pads), and the tutorial's training step (batch 3, T=20) with an estimate of the demo
-- (3,550 steps + 5 evaluations of 377 titles in batches of 3).
-- Usage: bin/bertlab bench/bench_model.lua [model_dir]   (needs `make model`)
local bl = require("bertlab")
local dir = arg and arg[1] or "models/all-MiniLM-L6-v2"

-- wall clock (os.clock is CPU time summed over OpenMP threads); ~1 ms overhead, so every timing
-- below spans many milliseconds
local now = bl.clock

-- a batch of B "titles": [CLS] w... [SEP] with real lengths spread over lo..hi, padded to T
local function make_batch(B, T, lo, hi, seed)
  local ids, mask, labels = {}, {}, {}
  local x = seed
  for b = 1, B do
    x = (x * 1103515245 + 12345) % 2147483648
    local n = lo + x % (hi - lo + 1)
    if b == 1 then n = hi end
    ids[b], mask[b] = {}, {}
    for t = 1, T do
      x = (x * 1103515245 + 12345) % 2147483648
      local id = t == 1 and 101 or (t == n and 102 or (t < n and 1000 + x % 28000 or 0))
      ids[b][t], mask[b][t] = id, t <= n and 1 or 0
    end
    labels[b] = b % 5
  end
  return { input_ids = bl.tensor(ids, "int64"), attention_mask = bl.tensor(mask, "int64"),
           labels = bl.tensor(labels, "int64") }
end

-- ms per call: wall clock, and CPU time of the process (all threads; on a shared, loaded machine
-- it is the better guide to what the work costs, and equals wall x threads when nothing competes)
local function time_it(reps, f, warm)
  if warm then f() end -- warm-up (and activation allocation)
  local t0, c0 = now(), os.clock()
  for _ = 1, reps do f() end
  return (now() - t0) / reps * 1000, (os.clock() - c0) / reps * 1000
end

local function loadavg()
  local f = io.open("/proc/loadavg")
  if not f then return "?" end
  local s = f:read("l"); f:close()
  return s:match("^(%S+)")
end

local model = bl.BertForSequenceClassification.from_pretrained(dir, { num_labels = 5, quiet = true })
print(("%s: %d parameters"):format(dir, model:num_parameters()))
bl.seed(1)

local function bench(B, T, lo, hi, reps)
  local batch = make_batch(B, T, lo, hi, 7)
  local nolabel = { input_ids = batch.input_ids, attention_mask = batch.attention_mask }
  model:eval()
  local fwd, fwd_cpu = time_it(reps, function() model:forward(nolabel) end, true)
  model:train()
  local fb, fb_cpu = time_it(reps, function()
    model:zero_grad()
    model:forward(batch).loss:backward()
  end, reps > 1)
  print(("B=%-3d T=%-4d forward (eval) %8.1f ms/batch (cpu %8.1f)   forward+backward (train, with zero_grad) %8.1f ms/batch (cpu %8.1f)   ratio %.2f   [load %s]")
    :format(B, T, fwd, fwd_cpu, fb, fb_cpu, fb / fwd, loadavg()))
  return fwd, fb, fwd_cpu, fb_cpu
end

-- One thread for the rows compared with PyTorch (bench_model.py does the same), so the ratio does
-- not depend on how busy the second core is; then the default thread count for the demo estimate.
bl.set_num_threads(1)
local f32, fb32 = bench(32, 24, 10, 24, 5)
local _, fb3 = bench(3, 20, 12, 20, 40)
print(("result: model_forward_B32_T24.bertlab %.3f batches/s"):format(1000 / f32))
print(("result: model_train_step_B3_T20.bertlab %.3f steps/s"):format(1000 / fb3))
bl.set_num_threads(tonumber(os.getenv("BERTLAB_NUM_THREADS") or "2"))
bench(32, 256, 10, 24, 1)
local fwd3, step3, fwd3_cpu, step3_cpu = bench(3, 20, 12, 20, 40)

-- the demo: 3,550 training steps (forward+backward; the AdamW update is the training part's and
-- is timed by its own bench if present) + 5 evaluations of 377 titles (126 batches of 3)
local adam_ms, adam_cpu = 0, 0
if bl.AdamW then
  local ok, opt = pcall(bl.AdamW, model:parameters(), { lr = 1e-5, eps = 1e-8 })
  if ok then
    adam_ms, adam_cpu = time_it(10, function() opt:step() end, true)
    print(("AdamW step over %d parameters: %.1f ms (cpu %.1f)"):format(model:num_parameters(), adam_ms, adam_cpu))
  end
end
local note = bl.AdamW and "" or " (AdamW not timed: bl.AdamW absent)"
local total = 3550 * (step3 + adam_ms) / 1000 + 5 * 126 * fwd3 / 1000
print(("demo estimate (wall): 3550 x (%.1f + %.1f AdamW) ms + 630 x %.1f ms eval = %.0f s (%.1f min)%s")
  :format(step3, adam_ms, fwd3, total, total / 60, note))
local cpu = 3550 * (step3_cpu + adam_cpu) / 1000 + 5 * 126 * fwd3_cpu / 1000
print(("demo estimate (CPU time, all threads; /2 for 2 idle cores): %.0f s (%.1f min); on 2 cores >= %.1f min%s")
  :format(cpu, cpu / 60, cpu / 120, note))
model:free()
