-- test_class_weights.lua: class imbalance in Lua: bl.compute_class_weight against scikit-learn's
-- compute_class_weight("balanced") (tests/fixtures/class_weights/balanced.txt), the options'
-- parsing and errors, model:set_class_weights (the model's loss and the classifier's gradient
-- against the weighted mean computed here from the logits), the weighted sampler of bl.DataLoader
-- (frequencies, reproducibility, replay, errors) and bl.evaluate's plain validation loss.
local T = require("testlib")
local bl = require("bertlab")

-- ---- compute_class_weight vs scikit-learn ----------------------------------------------------------
local f = assert(io.open("tests/fixtures/class_weights/balanced.txt"))
local ncase = 0
for line in f:lines() do
  local ys, ws = line:match("^(.-) | (.*)$")
  local y, want = {}, {}
  for v in ys:gmatch("%S+") do y[#y + 1] = math.tointeger(tonumber(v)) end
  for v in ws:gmatch("%S+") do want[#want + 1] = tonumber(v) end
  ncase = ncase + 1
  local got = bl.compute_class_weight(y, #want)
  local worst = 0
  for i = 1, #want do worst = math.max(worst, math.abs(got[i] - want[i])) end
  T.check(#got == #want and worst == 0, ("compute_class_weight(balanced) case %d (%d labels, %d classes) = scikit-learn's exactly"):format(
    ncase, #y, #want), ("largest difference %g"):format(worst))
end
f:close()
T.eq(ncase, 4, "every balanced fixture case ran")
T.checkerror("class 2 does not occur", "compute_class_weight: a missing class is an error", bl.compute_class_weight, { 0, 1, 1 }, 3)
T.checkerror("label 5 %(element 2%) is not a class id", "compute_class_weight: a label out of range", bl.compute_class_weight, { 0, 5 }, 3)

-- ---- the option's forms ------------------------------------------------------------------------------
local names = { "a", "b", "c" }
T.eq(bl.resolve_class_weights("none", { 0, 1, 2 }, names), nil, "class_weights none -> no weights")
T.eq(bl.resolve_class_weights(nil, { 0, 1, 2 }, names), nil, "class_weights nil -> no weights")
T.same(bl.resolve_class_weights("balanced", { 0, 0, 1, 2 }, names), { 4 / 6, 4 / 3, 4 / 3 }, "class_weights balanced over the given labels")
T.same(bl.resolve_class_weights("0.5,2,1", {}, names), { 0.5, 2.0, 1.0 }, "class_weights '0.5,2,1' (the command line's form)")
T.same(bl.resolve_class_weights({ 1, 2, 3 }, {}, names), { 1.0, 2.0, 3.0 }, "class_weights as a list")
T.checkerror("2 weights given, the data has 3 classes %(a, b, c%)", "class_weights: wrong count", bl.resolve_class_weights, "1,2", {}, names)
T.checkerror("weight 2 %(b%) is %-1", "class_weights: a negative weight", bl.resolve_class_weights, { 1, -1, 1 }, {}, names)
T.checkerror("every weight is 0", "class_weights: all zero", bl.resolve_class_weights, "0,0,0", {}, names)
T.checkerror("'heavy' is not", "class_weights: a word that is no form", bl.resolve_class_weights, "heavy", {}, names)
local smp, sw = bl.sampler_weights("weighted", { 0, 0, 0, 1, 2, 2 })
T.check(smp == "weighted" and T.deep_equal(sw, { 1 / 3, 1 / 3, 1 / 3, 1.0, 0.5, 0.5 }), "sampler_weights: 1 / count of the row's class")
T.check(select(2, bl.sampler_weights("random", { 0 })) == nil, "sampler_weights random: no weights")
T.checkerror('sampler must be "random" or "weighted"', "sampler_weights: an unknown sampler", bl.sampler_weights, "fancy", {})

-- ---- the model's weighted loss ------------------------------------------------------------------------
local TINY = "tests/fixtures/model/tiny"
local fx = bl.load_safetensors("tests/fixtures/model/tiny_batch.safetensors")
local batch = { input_ids = fx.input_ids, attention_mask = fx.attention_mask, token_type_ids = fx.token_type_ids,
                labels = fx.labels }
local model = bl.BertForSequenceClassification.from_pretrained(TINY, { quiet = true })
model:eval()
local L = model:config().num_labels
local y = fx.labels:totable()

local function bias_grad()
  for _, p in ipairs(model:parameters()) do
    if p.name:match("classifier%.bias$") then return p.grad:totable() end
  end
end

-- the weighted mean and d loss / d classifier bias, in double from the logits
local function reference(logits, w)
  local num, den, g = 0.0, 0.0, {}
  for l = 1, L do g[l] = 0.0 end
  local rows = {}
  for b = 1, #y do
    local z, mx, s = logits[b], -math.huge, 0.0
    for l = 1, L do mx = math.max(mx, z[l]) end
    for l = 1, L do s = s + math.exp(z[l] - mx) end
    local wy = w and w[y[b] + 1] or 1.0
    num = num + wy * (math.log(s) - (z[y[b] + 1] - mx))
    den = den + wy
    rows[b] = { wy = wy, p = {} }
    for l = 1, L do rows[b].p[l] = math.exp(z[l] - mx) / s end
  end
  for b = 1, #y do
    for l = 1, L do g[l] = g[l] + rows[b].wy * (rows[b].p[l] - (l == y[b] + 1 and 1 or 0)) / den end
  end
  return num / den, g
end

model:zero_grad()
local plain = model:forward(batch)
local plain_loss = plain.loss:item()
local logits = plain.logits:totable()
plain.loss:backward()
local g_plain = bias_grad()
T.eq(model:class_weights(), nil, "a new model has no class weights")

local w = { 0.25, 3.0, 1.5 }
model:set_class_weights(w)
T.same(model:class_weights(), w, "class_weights() gives back the weights set")
model:zero_grad()
local out = model:forward(batch)
local want, want_g = reference(logits, w)
T.near(out.loss:item(), want, 1e-5, "model loss with class weights = sum w[y] loss / sum w[y] (from its logits)")
T.check(math.abs(out.loss:item() - plain_loss) > 1e-3, "the weighted loss differs from the plain one",
  ("%.7f vs %.7f"):format(out.loss:item(), plain_loss))
out.loss:backward()
local g = bias_grad()
local worst = 0
for l = 1, L do worst = math.max(worst, math.abs(g[l] - want_g[l])) end
T.check(worst <= 1e-6, "classifier.bias gradient with class weights = the weighted mean's (largest difference " .. ("%.3g)"):format(worst))

model:set_class_weights({ 1, 1, 1 })
model:zero_grad()
local ones = model:forward(batch)
T.eq(ones.loss:item(), plain_loss, "all-ones weights: the plain loss bit for bit")
ones.loss:backward()
T.same(bias_grad(), g_plain, "all-ones weights: the plain gradient bit for bit")
model:set_class_weights(bl.tensor({ 2.0, 2.0, 2.0 }))
T.near(model:forward(batch).loss:item(), plain_loss, 1e-6, "weights from a float32 tensor; uniform 2 = the plain mean")
model:set_class_weights(nil)
T.eq(model:class_weights(), nil, "set_class_weights(nil) removes them")
T.eq(model:forward(batch).loss:item(), plain_loss, "... and the loss is the plain mean again")

-- backward follows the forward's weights, even when they change in between
model:set_class_weights(w)
model:zero_grad()
local o2 = model:forward(batch)
model:set_class_weights(nil)
o2.loss:backward()
worst = 0
g = bias_grad()
for l = 1, L do worst = math.max(worst, math.abs(g[l] - want_g[l])) end
T.check(worst <= 1e-6, "backward uses the weights of its forward (changed after it)", ("%.3g"):format(worst))

T.checkerror("class_weights has 2 entries, the model has 3 labels", "set_class_weights: wrong length", model.set_class_weights, model, { 1, 2 })
T.checkerror("weight 2 %(label 1%) is %-1", "set_class_weights: a negative weight", model.set_class_weights, model, { 1, -1, 1 })
T.checkerror("every weight is 0", "set_class_weights: all zero", model.set_class_weights, model, { 0, 0, 0 })
T.checkerror("weight 1 %(label 0%) is %-?nan", "set_class_weights: NaN", model.set_class_weights, model, { 0 / 0, 1, 1 })
T.checkerror("entry 2 is a string", "set_class_weights: a string entry", model.set_class_weights, model, { 1, "x", 1 })

-- ---- evaluate: the validation loss stays the plain mean ----------------------------------------------------
local ds = bl.TensorDataset(fx.input_ids, fx.attention_mask, fx.labels)
local vl = bl.DataLoader(ds, { batch_size = 64 })
local ev0 = bl.evaluate(model, vl)
model:set_class_weights(w)
local ev1 = bl.evaluate(model, vl)
T.eq(ev1.loss, ev0.loss, "evaluate: the validation loss ignores class weights (comparable across cells)")
T.same(model:class_weights(), w, "evaluate: the model's class weights are back afterwards")
T.check(type(ev1.f1_macro) == "number", "evaluate returns f1_macro")
model:free()
T.checkerror("the model was freed", "set_class_weights on a freed model", model.set_class_weights, model, { 1, 1, 1 })

-- ---- the weighted sampler --------------------------------------------------------------------------
local rows = {}
for i = 0, 9 do rows[#rows + 1] = i end
local ds10 = bl.TensorDataset(bl.tensor(rows, "int64"))
local wts = { 1, 1, 1, 1, 1, 1, 1, 1, 4, 0 } -- row 9 four times as likely, row 10 never
local function draws(seed, epochs, opts)
  bl.seed(seed)
  local ld = bl.DataLoader(ds10, opts or { batch_size = 4, sampler = "weighted", weights = wts })
  local all = {}
  for _ = 1, epochs do
    for b in ld:iter() do for _, v in ipairs(b[1]:totable()) do all[#all + 1] = v end end
  end
  return all, ld
end
local a1, ld = draws(17, 2000)
local count = {}
for _, v in ipairs(a1) do count[v] = (count[v] or 0) + 1 end
T.eq(#ld, 3, "weighted loader: ceil(num_samples / batch_size) batches (num_samples = rows)")
T.eq(#a1, 20000, "weighted loader: num_samples = len(dataset) draws per epoch")
T.eq(count[9], nil, "weighted sampler: a row of weight 0 is never drawn")
-- expected 20000 * 4/12 for row 8, 20000/12 for the others; 5 standard deviations
local e8, e1 = 20000 * 4 / 12, 20000 / 12
local sd8, sd1 = math.sqrt(20000 * (4 / 12) * (8 / 12)), math.sqrt(20000 * (1 / 12) * (11 / 12))
local okf = math.abs(count[8] - e8) < 5 * sd8
for r = 0, 7 do okf = okf and math.abs((count[r] or 0) - e1) < 5 * sd1 end
T.check(okf, "weighted sampler: frequencies proportional to the weights (within 5 sd)",
  ("row 8: %d (expected %.0f), row 0: %d (expected %.0f)"):format(count[8], e8, count[0] or 0, e1))
local a2 = draws(17, 3)
local a3 = draws(17, 3)
local a4 = draws(18, 3)
T.same(a2, a3, "weighted sampler: the same draws after bl.seed(same)")
T.check(not T.deep_equal(a2, a4), "weighted sampler: other draws under another seed")
local seen_twice = false
local c2 = {}
for i = 1, 10 do c2[a2[i]] = (c2[a2[i]] or 0) + 1; if c2[a2[i]] > 1 then seen_twice = true end end
T.check(seen_twice, "weighted sampler draws with replacement (a row twice in one epoch)")
local a5, ld5 = draws(17, 1, { batch_size = 4, sampler = "weighted", weights = wts, num_samples = 25 })
T.check(#a5 == 25 and #ld5 == 7, "num_samples = 25: 25 draws in 7 batches", ("%d draws, %d batches"):format(#a5, #ld5))
-- a recorded epoch (with repeats) replays through iter{order=}
local pos = ld5:position()
local replay = {}
for b in ld5:iter({ order = pos.order }) do for _, v in ipairs(b[1]:totable()) do replay[#replay + 1] = v end end
T.same(replay, a5, "weighted loader: position().order replays the epoch (repeats allowed)")
T.check(tostring(ld5):find("sampler=weighted", 1, true) ~= nil, "tostring names the weighted sampler", tostring(ld5))
T.checkerror('needs weights=', "DataLoader weighted without weights", bl.DataLoader, ds10, { sampler = "weighted" })
T.checkerror('weights= needs sampler="weighted"', "DataLoader weights without the weighted sampler", bl.DataLoader, ds10, { weights = wts })
T.checkerror("weights has 3 entries, the dataset 10 rows", "DataLoader: weights of the wrong length", bl.DataLoader, ds10,
  { sampler = "weighted", weights = { 1, 2, 3 } })
T.checkerror("weights%[2%] must be a finite number >= 0", "DataLoader: a negative weight", bl.DataLoader, ds10,
  { sampler = "weighted", weights = { 1, -2, 1, 1, 1, 1, 1, 1, 1, 1 } })
T.checkerror("every weight is 0", "DataLoader: all weights 0", bl.DataLoader, ds10,
  { sampler = "weighted", weights = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0 } })
T.checkerror('num_samples= needs sampler="weighted"', "DataLoader: num_samples without weights", bl.DataLoader, ds10,
  { sampler = "random", num_samples = 3 })
T.checkerror('sampler must be "random", "sequential" or "weighted"', "DataLoader: an unknown sampler", bl.DataLoader, ds10,
  { sampler = "fancy" })

T.done()
