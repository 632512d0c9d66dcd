-- dist_step.lua: the data-parallel training step, timed (bench/bench_dist.sh runs it as 1 process and
-- under mpirun): the default model, global batches of GLOBAL titles of 20 tokens (real lengths 8..20),
-- each process training on its share; prints "result:" lines (steps/s, and the share of the step
-- spent in the gradient all-reduce).
--   [mpirun -np N] bin/bertlab bench/dist_step.lua MODEL GLOBAL STEPS THREADS LABEL
local bl = require("bertlab")
local dir, G, steps, threads, label = arg[1], tonumber(arg[2]), tonumber(arg[3]), tonumber(arg[4]), arg[5]
bl.set_num_threads(threads)
local n = bl.dist_init()
local rank = bl.dist_rank()
local dist = n > 1 and { rank = rank, size = n, per = G // n } or nil
local model = bl.BertForSequenceClassification.from_pretrained(dir, { num_labels = 5, quiet = true })
bl.seed(1)
local x = 7
local function batch()
  local ids, mask, labels = {}, {}, {}
  for b = 1, G do
    x = (x * 1103515245 + 12345) % 2147483648
    local len = 8 + x % 13
    ids[b], mask[b] = {}, {}
    for t = 1, 20 do
      x = (x * 1103515245 + 12345) % 2147483648
      ids[b][t] = t == 1 and 101 or (t == len and 102 or (t < len and 1000 + x % 28000 or 0))
      mask[b][t] = t <= len and 1 or 0
    end
    labels[b] = b % 5
  end
  return { bl.tensor(ids, "int64"), bl.tensor(mask, "int64"), bl.tensor(labels, "int64") }
end
local batches = {}
for i = 1, 8 do batches[i] = batch() end
local params = model:parameters()
local opt = bl.AdamW(params, { lr = 1e-5, eps = 1e-8 })
model:train()
local function step(b)
  model:zero_grad()
  local inp, cnt, total
  if dist then inp, cnt, total = bl.dist_slice(b, dist)
  else inp, cnt, total = { input_ids = b[1], attention_mask = b[2], labels = b[3] }, G, G end
  local out = model:forward(inp)
  local l = out.loss:item()
  if dist then bl.dist_allgather({ l * cnt, cnt, 0, 0 }) end -- the per-step exchange of the epoch loop
  out.loss:backward()
  model:allreduce_grads(cnt / total)
  bl.clip_grad_norm(params, 1.0)
  opt:step()
  out.logits:free()
end
for i = 1, 3 do step(batches[i]) end
if dist then bl.dist_barrier() end
local r0, t0 = bl.dist_allreduce_seconds(), bl.clock()
for i = 1, steps do step(batches[(i - 1) % #batches + 1]) end
if dist then bl.dist_barrier() end
local dt, dr = bl.clock() - t0, bl.dist_allreduce_seconds() - r0
if rank == 0 then
  print(("result: dist_step.%s %.3f steps/s"):format(label, steps / dt))
  print(("# %s: %d process(es) x %d thread(s), global batch %d: %.1f ms a step, all-reduce %.1f ms a step (%.0f%%), %d parameters")
    :format(label, n, threads, G, dt / steps * 1000, dr / steps * 1000, dr / dt * 100, model:num_parameters()))
end
