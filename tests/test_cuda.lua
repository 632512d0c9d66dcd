-- test_cuda.lua: the model on the GPU against the model on the CPU (the CPU path is the oracle, and
-- the Hugging Face fixtures of tests/fixtures/model/ for the logits): one train-mode step with
-- dropout of the tiny fixture model and of MiniLM (same loss within 1e-4, every gradient within
-- 1e-3 of its tensor's largest), eval logits against transformers, 10 AdamW steps (losses within
-- 1e-3), the same seeded GPU run twice (identical losses), model:to("cuda"), bl.cuda_memory(), and
-- a checkpoint saved from the GPU loaded on the CPU. Without a GPU every check prints
-- "skip - cuda: <name>: <why>" and the test passes.
-- Environment (for scripts/gpu_check.sh): BERTLAB_MINILM = the MiniLM folder (default
-- models/all-MiniLM-L6-v2), BERTLAB_MINILM_LOGITS = the HF logits of that folder's weights for the
-- fixture batch (a .safetensors with `logits`; default: tests/fixtures/model/minilm_batch.safetensors;
-- "none": no oracle for these weights, the MiniLM logits check skips).
local T = require("testlib")
local bl = require("bertlab")

local FIX = "tests/fixtures/model/"
local TINY = FIX .. "tiny"
local MINILM = os.getenv("BERTLAB_MINILM") or "models/all-MiniLM-L6-v2"
local MINILM_LOGITS = os.getenv("BERTLAB_MINILM_LOGITS") or (FIX .. "minilm_batch.safetensors")
-- BERTLAB_TEST_CUDA_DEVICE=cpu runs the "GPU" side on the CPU: a self-check of this test's code on a
-- machine without a GPU (every difference must then be 0)
local GPU = os.getenv("BERTLAB_TEST_CUDA_DEVICE") or "cuda"

-- ---- helpers ------------------------------------------------------------------------------------

local function host(t) return t:device() == "cpu" and t or t:to("cpu") end

-- largest |x| of a CPU tensor without leaving C (argmax of x and of -x), as test_model.lua does
local function at_flat(t, k)
  local sh, idx = t:shape(), {}
  for d = #sh, 1, -1 do idx[d] = k % sh[d] + 1; k = k // sh[d] end
  return t:get(table.unpack(idx))
end
local function maxabs(t)
  return math.max(at_flat(t, t:argmax():item()), -at_flat(t, (t * -1):argmax():item()))
end
local function maxdiff(a, b) return maxabs(host(a) + host(b) * -1) end

local function tiny_batch()
  local fx = bl.load_safetensors(FIX .. "tiny_batch.safetensors")
  return { input_ids = fx.input_ids, attention_mask = fx.attention_mask,
           token_type_ids = fx.token_type_ids, labels = fx.labels }, fx.logits
end
local function minilm_batch()
  local mb = bl.load_safetensors(FIX .. "minilm_batch.safetensors")
  return { input_ids = mb.input_ids, attention_mask = mb.attention_mask, token_type_ids = mb.token_type_ids,
           labels = bl.tensor({ 0, 1, 2, 3, 4 }, "int64") },
         MINILM_LOGITS ~= "none" and bl.load_safetensors(MINILM_LOGITS).logits or nil
end

-- the tiny model, or MiniLM with the fixture's classifier, on `device`
local function load(which, device)
  if which == "tiny" then
    return bl.BertForSequenceClassification.from_pretrained(TINY, { device = device })
  end
  local m = bl.BertForSequenceClassification.from_pretrained(MINILM, { num_labels = 5, device = device, quiet = true })
  m:load(FIX .. "minilm_classifier.safetensors", { strict = false })
  return m
end

-- one train-mode forward + backward after bl.seed(17): loss and CPU copies of the gradients
local function train_step(m, batch)
  bl.seed(17)
  m:train()
  m:zero_grad()
  local out = m:forward(batch)
  out.loss:backward()
  local grads, names = {}, {}
  for i, p in ipairs(m:parameters()) do grads[i] = host(p.grad):clone(); names[i] = p.name end
  return host(out.loss):item(), grads, names
end

-- CPU vs GPU, one step with dropout: loss within 1e-4 (relative), every gradient within 1e-3 of its
-- tensor's largest (floored at 1e-2 of the model's largest: the key biases' true gradient is 0)
local function step_parity(which, batch)
  local mc, mg = load(which, "cpu"), load(which, GPU)
  local lc, gc, names = train_step(mc, batch)
  local lg, gg = train_step(mg, batch)
  mc:eval()
  local le = host(mc:forward(batch).loss):item()
  local scale, gmax = {}, 0
  for i = 1, #gc do scale[i] = maxabs(gc[i]); gmax = math.max(gmax, scale[i]) end
  local worst, worst_name, bad = 0, "", 0
  for i = 1, #gc do
    local rel = maxabs(gc[i] + gg[i] * -1) / math.max(scale[i], 1e-2 * gmax)
    if rel > 1e-3 then bad = bad + 1 end
    if rel > worst then worst, worst_name = rel, names[i] end
  end
  local dl = math.abs(lc - lg) / math.abs(lc)
  print(("# %s train step: loss cpu %.7f gpu %.7f (rel %.3g; eval loss %.7f); worst gradient %s rel %.3g")
    :format(which, lc, lg, dl, le, worst_name, worst))
  T.check(math.abs(lc - le) > 1e-4, "cuda: " .. which .. ": dropout is on in the step")
  T.check(dl <= 1e-4, "cuda: " .. which .. ": train step with dropout, GPU loss within 1e-4 of the CPU's",
    ("rel %.3g"):format(dl))
  T.check(bad == 0, ("cuda: %s: every gradient (%d tensors) within 1e-3 of the CPU's"):format(which, #gc),
    ("%d off; worst %s %.3g"):format(bad, worst_name, worst))
  mc:free(); mg:free()
end

-- eval logits on the GPU against the transformers fixture
local function logits_fixture(which, batch, ref)
  local m = load(which, GPU)
  m:eval()
  local d = maxdiff(m:forward(batch).logits, ref)
  print(("# %s GPU logits vs transformers: max |diff| %.3g"):format(which, d))
  T.check(d <= 1e-4, "cuda: " .. which .. ": GPU eval logits within 1e-4 of transformers", ("%.3g"):format(d))
  m:free()
end

-- n AdamW steps (train mode, clipping at 1.0) from bl.seed(5): the losses
local function train_losses(which, device, batch, n)
  local m = load(which, device)
  bl.seed(5)
  local params = m:parameters()
  local lr = which == "tiny" and 1e-3 or 1e-4
  local opt = bl.AdamW(params, { lr = lr, eps = 1e-8, weight_decay = 0.01 })
  m:train()
  local losses = {}
  for i = 1, n do
    m:zero_grad()
    local out = m:forward(batch)
    losses[i] = host(out.loss):item()
    out.loss:backward()
    bl.clip_grad_norm(params, 1.0)
    opt:step()
  end
  m:free()
  return losses
end

local function ten_steps(which, batch)
  local t0 = bl.clock()
  local lc = train_losses(which, "cpu", batch, 10)
  local t1 = bl.clock()
  local lg = train_losses(which, GPU, batch, 10)
  local t2 = bl.clock()
  local lg2 = train_losses(which, GPU, batch, 10)
  local worst, same = 0, true
  for i = 1, 10 do
    worst = math.max(worst, math.abs(lc[i] - lg[i]))
    same = same and lg[i] == lg2[i]
  end
  print(("# %s 10 steps: cpu %s"):format(which, table.concat(lc, " ", 1, 10)))
  print(("# %s 10 steps: gpu %s"):format(which, table.concat(lg, " ", 1, 10)))
  print(("# %s 10 steps: largest |loss diff| %.3g; cpu %.2f s, gpu %.2f s"):format(which, worst, t1 - t0, t2 - t1))
  T.check(lc[10] < lc[1], "cuda: " .. which .. ": 10 CPU steps lower the loss (the check can fail)",
    ("%.5f -> %.5f"):format(lc[1], lc[10]))
  T.check(worst <= 1e-3, "cuda: " .. which .. ": 10 training steps, GPU losses within 1e-3 of the CPU's",
    ("%.3g"):format(worst))
  T.check(same, "cuda: " .. which .. ": the same seeded GPU run twice gives identical losses")
end

-- ---- checks ---------------------------------------------------------------------------------------

local have_minilm = io.open(MINILM .. "/model.safetensors") ~= nil

local checks = {
  { "device and memory", function()
      local m = load("tiny", GPU)
      T.eq(m:device(), GPU, "cuda: from_pretrained{device='cuda'}: model:device()")
      if GPU == "cuda" then
        local mem = bl.cuda_memory()
        print(("# cuda_memory: current %d, peak %d bytes"):format(mem.current, mem.peak))
        T.check(mem.current > 0 and mem.peak >= mem.current, "cuda: bl.cuda_memory() counts the model's bytes")
      end
      local mc = load("tiny", "cpu")
      T.eq(mc:to(GPU):device(), GPU, "cuda: model:to('cuda')")
      local batch = tiny_batch()
      mc:eval(); m:eval()
      T.check(maxdiff(mc:forward(batch).logits, m:forward(batch).logits) == 0,
        "cuda: model:to('cuda') and from_pretrained{device='cuda'} give the same logits")
      mc:free(); m:free()
    end },
  { "tiny logits", function() local b, ref = tiny_batch(); logits_fixture("tiny", b, ref) end },
  { "tiny train step", function() step_parity("tiny", (tiny_batch())) end },
  { "tiny 10 steps", function() ten_steps("tiny", (tiny_batch())) end },
  { "checkpoint from the GPU", function()
      local dir = os.tmpname()
      os.remove(dir)
      local m = load("tiny", GPU)
      local batch = tiny_batch()
      m:eval()
      local lg = host(m:forward(batch).logits)
      m:save(dir)
      local mc = bl.BertForSequenceClassification.from_pretrained(dir)
      mc:eval()
      local d = maxdiff(mc:forward(batch).logits, lg)
      T.check(d <= 1e-5, "cuda: a checkpoint saved from the GPU loads on the CPU (same logits)", ("%.3g"):format(d))
      m:free(); mc:free()
      os.execute("rm -rf '" .. dir .. "'")
    end },
  { "MiniLM logits", function() local b, ref = minilm_batch(); logits_fixture("MiniLM", b, ref) end, true },
  { "MiniLM train step", function() step_parity("MiniLM", (minilm_batch())) end, true },
  { "MiniLM 10 steps", function() ten_steps("MiniLM", (minilm_batch())) end, true },
}

local why = GPU == "cuda" and not bl.cuda_available() and (bl.cuda_describe and bl.cuda_describe() or "no CUDA device") or nil
for _, c in ipairs(checks) do
  local name, fn, needs_minilm = c[1], c[2], c[3]
  if why then
    T.skip("cuda: " .. name, why)
  elseif name == "MiniLM logits" and MINILM_LOGITS == "none" then
    T.skip("cuda: " .. name, "no transformers logits for " .. MINILM .. "'s weights (BERTLAB_MINILM_LOGITS=none)")
  elseif needs_minilm and not have_minilm then
    T.skip("cuda: " .. name, MINILM .. "/model.safetensors is absent (make model)")
  else
    local ok, err = pcall(fn)
    if not ok then T.check(false, "cuda: " .. name .. " ran", tostring(err)) end
  end
end
T.done()
