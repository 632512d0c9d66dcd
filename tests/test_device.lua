-- test_device.lua: devices in the Lua API: bl.device, bl.cuda_available, bl.cuda_memory, t:to,
-- model:to / model:device, from_pretrained{device=}, the options checker, and the model's flat
-- optimizer path (AdamW and clip_grad_norm over model:parameters()) against the list path.
-- On a machine without a usable GPU the CUDA calls must fail with "CUDA is not available: ...".
local T = require("testlib")
local bl = require("bertlab")

local TINY = "tests/fixtures/model/tiny"
local cuda = bl.cuda_available()

-- ---- device names and CUDA queries -------------------------------------------------------------
T.eq(bl.device(), cuda and "cuda" or "cpu", "bl.device() is cuda exactly when CUDA is available")
if not cuda then
  T.checkerror("cuda_memory: CUDA is not available: ", "bl.cuda_memory without CUDA", bl.cuda_memory)
  T.checkerror("CUDA is not available: ", "t:to('cuda') without CUDA", function() return bl.zeros({ 2 }):to("cuda") end)
  T.checkerror("from_pretrained: CUDA is not available: ", "from_pretrained{device='cuda'} without CUDA",
    bl.BertForSequenceClassification.from_pretrained, TINY, { device = "cuda", quiet = true })
else
  local m = bl.cuda_memory()
  T.check(type(m.current) == "number" and m.peak >= m.current, "bl.cuda_memory() gives current <= peak")
  local x = bl.tensor({ { 1.5, 2.0 }, { 3.0, 4.0 } })
  local g = x:to("cuda")
  T.eq(g:device(), "cuda", "t:to('cuda') is on cuda")
  T.same(g:to("cpu"):totable(), x:totable(), "cpu -> cuda -> cpu keeps the values")
  T.same((g * 2):totable(), { { 3, 4 }, { 6, 8 } }, "arithmetic on the device, read back by totable")
  T.eq(g:get(2, 1), 3.0, "get of a device tensor")
  T.check(tostring(g):find("device='cuda:0'", 1, true) ~= nil, "a device tensor prints its device")
end

local x = bl.tensor({ 1.0, 2.0 })
T.check(rawequal(x:to("cpu"), x), "t:to('cpu') of a host tensor is the tensor itself")
T.eq(x:device(), "cpu", "tensors are made on the host")
T.checkerror("unknown dtype 'tpu'", "t:to of an unknown name", function() return x:to("tpu") end)

-- ---- the model on a device ---------------------------------------------------------------------
local model = bl.BertForSequenceClassification.from_pretrained(TINY, { quiet = true, device = "cpu" })
T.eq(model:device(), "cpu", "from_pretrained{device='cpu'}: model:device()")
T.check(rawequal(model:to("cpu"), model), "model:to('cpu') returns the model")
T.checkerror("from_pretrained: unknown device 'tpu'", "from_pretrained with an unknown device",
  bl.BertForSequenceClassification.from_pretrained, TINY, { device = "tpu" })
if not cuda then
  T.checkerror("to: CUDA is not available: ", "model:to('cuda') without CUDA", function() return model:to("cuda") end)
  T.eq(model:device(), "cpu", "a failed move leaves the model where it was")
end

-- ---- options tables: a misspelt option is an error naming it and the accepted ones ---------------
T.checkerror("AdamW: unknown option 'learning_rate' %(options: lr, eps, betas, weight_decay, correct_bias, variant%)",
  "bl.AdamW with a misspelt option", bl.AdamW, model:parameters(), { learning_rate = 1e-5 })
T.checkerror("from_pretrained: unknown option 'num_label' %(options: num_labels, id2label, quiet, device, strict%)",
  "from_pretrained with a misspelt option", bl.BertForSequenceClassification.from_pretrained, TINY, { num_label = 3 })
T.checkerror("load: unknown option 'strcit' %(options: strict%)", "model:load with a misspelt option",
  function() return model:load(TINY, { strcit = false }) end)

T.checkerror("f1_score: unknown option 'averge' %(options: average, labels, zero_division%)",
  "a Lua function's options go through the same checker", bl.f1_score, { 0, 1 }, { 0, 1 }, { averge = "weighted" })
T.checkerror("DataLoader: unknown option 'batchsize' %(options: batch_size",
  "the data bindings use the one checker", bl.DataLoader, bl.TensorDataset(bl.zeros({ 2 })), { batchsize = 2 })

-- ---- the flat path (all of a model's parameters) against the list path --------------------------
local batch = {
  input_ids = bl.tensor({ { 1, 75, 97, 76, 51, 88, 27 }, { 1, 52, 64, 13, 0, 0, 0 } }, "int64"),
  attention_mask = bl.tensor({ { 1, 1, 1, 1, 1, 1, 1 }, { 1, 1, 1, 1, 0, 0, 0 } }, "int64"),
  labels = bl.tensor({ 2, 0 }, "int64"),
}
local function flat_of(t)
  local out = {}
  local function walk(v) if type(v) == "table" then for _, y in ipairs(v) do walk(y) end else out[#out + 1] = v end end
  walk(t:totable())
  return out
end

local a = bl.BertForSequenceClassification.from_pretrained(TINY, { quiet = true })
local b = bl.BertForSequenceClassification.from_pretrained(TINY, { quiet = true })
a:eval(); b:eval()
local pa = a:parameters()
-- b's parameters plus one plain tensor: the list is no longer exactly the model's, so b goes
-- through the list path (runtime/optim.c: sorted runs, its own state), as every list did before
local pb = b:parameters()
local extra = bl.parameter(bl.zeros({ 1 }))
local pb_plus = { table.unpack(pb) }
pb_plus[#pb_plus + 1] = extra
local oa = bl.AdamW(pa, { lr = 1e-3, eps = 1e-8, weight_decay = 0.01 })
local ob = bl.AdamW(pb_plus, { lr = 1e-3, eps = 1e-8, weight_decay = 0.01 })
local norms_a, norms_b = {}, {}
for s = 1, 2 do
  a:zero_grad(); b:zero_grad()
  a:forward(batch).loss:backward()
  b:forward(batch).loss:backward()
  local na = bl.clip_grad_norm(pa, 0.5)
  norms_a[s] = na
  norms_b[s] = bl.clip_grad_norm(pb_plus, 0.5) -- the list path (one extra zero gradient)
  oa:step(); ob:step()
end
T.eq(norms_a[1], norms_b[1], "the flat norm equals the list path's (step 1)")
T.eq(norms_a[2], norms_b[2], "the flat norm equals the list path's (step 2)")
T.check(norms_a[1] > 0.5, "the norms were clipped (norm " .. tostring(norms_a[1]) .. " > max_norm 0.5)")
T.eq(select("#", bl.clip_grad_norm(pa, 0.5, { return_norm = false })), 0,
  "clip_grad_norm{return_norm=false} over a model's parameters returns nothing")
T.checkerror("clip_grad_norm: unknown option 'norm'", "clip_grad_norm with a misspelt option",
  bl.clip_grad_norm, pa, 1.0, { norm = false })
-- the largest difference between two lists of parameters, element by element
local function max_param_diff(ps, qs)
  local worst = 0
  for k = 1, #ps do
    local x1, y1 = flat_of(ps[k]), flat_of(qs[k])
    for i = 1, #x1 do worst = math.max(worst, math.abs(x1[i] - y1[i])) end
  end
  return worst
end
T.eq(max_param_diff(pa, pb), 0, "two AdamW steps through the model's flat buffers equal the list path bit for bit")

-- ---- opt:clip_grad_norm: the clipping left to the step (one pass fewer), the same numbers --------
local d = bl.BertForSequenceClassification.from_pretrained(TINY, { quiet = true })
local e = bl.BertForSequenceClassification.from_pretrained(TINY, { quiet = true })
d:eval(); e:eval()
local pd, pe = d:parameters(), e:parameters()
local od = bl.AdamW(pd, { lr = 1e-3, eps = 1e-8 })
local oe = bl.AdamW(pe, { lr = 1e-3, eps = 1e-8 })
local same_norms, kept, clipped = true, true, false
for s = 1, 3 do
  d:zero_grad(); e:zero_grad()
  d:forward(batch).loss:backward()
  e:forward(batch).loss:backward()
  local before = flat_of(pe[#pe].grad)
  local nd = bl.clip_grad_norm(pd, 0.5)
  local ne = oe:clip_grad_norm(0.5)
  same_norms = same_norms and nd == ne
  clipped = clipped or nd > 0.5
  local after = flat_of(pe[#pe].grad)
  for i = 1, #before do kept = kept and before[i] == after[i] end
  od:step(); oe:step()
end
T.check(same_norms and clipped, "opt:clip_grad_norm returns bl.clip_grad_norm's norm (3 steps, clipped)")
T.check(kept, "opt:clip_grad_norm leaves the .grad values unscaled until the step (the step scales them)")
T.eq(max_param_diff(pd, pe), 0, "opt:clip_grad_norm then opt:step equals bl.clip_grad_norm then opt:step bit for bit (3 steps)")
-- zero_grad drops a pending clipping: the next step uses the new gradient as it is
e:zero_grad(); oe:clip_grad_norm(1e-6); e:zero_grad()
d:zero_grad()
d:forward(batch).loss:backward(); e:forward(batch).loss:backward()
od:step(); oe:step()
T.eq(max_param_diff(pd, pe), 0, "model:zero_grad drops a pending opt:clip_grad_norm (the next unclipped step is the same)")
-- a backward (accumulating) or a second clipping after a pending one sees the clipped gradients
d:zero_grad(); e:zero_grad()
d:forward(batch).loss:backward(); e:forward(batch).loss:backward()
local n1d, n1e = bl.clip_grad_norm(pd, 0.5), oe:clip_grad_norm(0.5)
d:forward(batch).loss:backward(); e:forward(batch).loss:backward()
local n2d, n2e = bl.clip_grad_norm(pd, 0.5), oe:clip_grad_norm(0.5)
od:step(); oe:step()
T.check(n1d == n1e and n2d == n2e and n1d > 0.5,
  ("clipping, backward again, clipping again: the same norms as at once (%.6g, %.6g)"):format(n1e, n2e))
T.eq(max_param_diff(pd, pe), 0, "a backward after a pending opt:clip_grad_norm accumulates onto the clipped gradients (then the same step bit for bit)")
T.eq(select("#", oe:clip_grad_norm(0.5, { return_norm = false })), 0,
  "opt:clip_grad_norm{return_norm=false} returns nothing")
T.checkerror("AdamW:clip_grad_norm: unknown option 'norm'", "opt:clip_grad_norm with a misspelt option",
  function() return oe:clip_grad_norm(1.0, { norm = false }) end)
T.checkerror("max_norm must be >= 0", "opt:clip_grad_norm with a negative max_norm",
  function() return oe:clip_grad_norm(-1) end)
e:zero_grad()
-- an optimizer over a list that is not a whole model clips at once, as bl.clip_grad_norm
b:zero_grad()
b:forward(batch).loss:backward()
local g_before = flat_of(pb[1].grad)
local nb_list = ob:clip_grad_norm(1e-3)
local g_after = flat_of(pb[1].grad)
local ratio_ok = nb_list > 1e-3
for i = 1, #g_before do
  if g_before[i] ~= 0 then ratio_ok = ratio_ok and math.abs(g_after[i] / g_before[i] - 1e-3 / nb_list) < 1e-6 * (1e-3 / nb_list) end
end
T.check(ratio_ok, "opt:clip_grad_norm over a plain list scales the gradients at once (by max_norm / norm)")
b:zero_grad()

local sd = oa:state_dict()
T.eq(sd.exp_avg:numel(), a:num_parameters(), "state_dict of the flat optimizer covers every parameter")
T.eq(ob:state_dict().exp_avg:numel(), b:num_parameters() + 1, "the list optimizer has its own state")
local sb = ob:state_dict()
local dm = 0
local ma, mb = flat_of(sd.exp_avg_sq), flat_of(sb.exp_avg_sq)
for i = 1, #ma do dm = math.max(dm, math.abs(ma[i] - mb[i])) end
T.check(#ma > 1000 and ma[#ma] ~= 0, "the moments are not trivially zero")
T.eq(dm, 0, "the model's moments (state_dict) equal the list path's, in list order")
oa:zero_grad()
local g1 = flat_of(pa[#pa].grad)
local nz = 0
for _, v in ipairs(g1) do if v ~= 0 then nz = nz + 1 end end
T.eq(nz, 0, "opt:zero_grad of the flat optimizer clears the model's gradients")
a:free()
T.checkerror("AdamW:step: parameter 1 %('bert.embeddings.word_embeddings.weight'%) changed size",
  "step after the model was freed names the parameter", function() oa:step() end)

T.done()
