-- test_model.lua: BertForSequenceClassification against transformers (tests/fixtures/gen_model.py):
-- logits, loss and every gradient of a tiny model, MiniLM logits, dropout (and that a train step
-- does not depend on how wide the batch is padded), save/load, errors.
local T = require("testlib")
local bl = require("bertlab")

local FIX = "tests/fixtures/model/"
local TINY = FIX .. "tiny"
local MINILM = "models/all-MiniLM-L6-v2"
local tmp = os.tmpname()
os.remove(tmp)
os.execute("mkdir -p " .. tmp)

-- largest |a - b| over two tensors of the same shape (as flat lists)
local function flat(t)
  local out = {}
  local function walk(v) if type(v) == "table" then for _, x in ipairs(v) do walk(x) end else out[#out + 1] = v end end
  walk(t:totable())
  return out
end
local function maxdiff(a, b)
  local x, y = flat(a), flat(b)
  assert(#x == #y, ("sizes differ: %d vs %d"):format(#x, #y))
  local d, m = 0, 0
  for i = 1, #x do
    d = math.max(d, math.abs(x[i] - y[i]))
    m = math.max(m, math.abs(y[i]))
  end
  return d, m
end
local function shape_str(t) return "[" .. table.concat(t:shape(), ",") .. "]" end

-- largest |x| of a tensor without leaving C (argmax of x and of -x), for MiniLM-sized gradients
local function at_flat(t, k)
  local sh, idx = t:shape(), {}
  for d = #sh, 1, -1 do idx[d] = k % sh[d] + 1; k = k // sh[d] end
  return t:get(table.unpack(idx))
end
local function maxabs(t)
  return math.max(at_flat(t, t:argmax():item()), -at_flat(t, (t * -1):argmax():item()))
end

-- the batch's 2-D tensors cut or padded (id 0, mask 0, type 0) to `width` columns
local function pad_to(b, width)
  local out = { labels = b.labels }
  for _, k in ipairs({ "input_ids", "attention_mask", "token_type_ids" }) do
    local rows = {}
    for i, row in ipairs(b[k]:totable()) do
      rows[i] = {}
      for j = 1, width do rows[i][j] = row[j] or 0 end
    end
    out[k] = bl.tensor(rows, "int64")
  end
  return out
end
local function longest(mask)
  local n = 1
  for _, row in ipairs(mask:totable()) do
    for j, v in ipairs(row) do if v ~= 0 and j > n then n = j end end
  end
  return n
end

-- Dynamic padding trains as fixed padding: after bl.seed(17), one train-mode forward+backward of the
-- batch trimmed to its longest sequence and of the same batch padded to `wide` columns give the same
-- loss and gradients, because dropout masks are indexed by (b, t, c) in a tensor padded to
-- max_position_embeddings, not by the padded shape (kernels/bert_kernels.h).
local function padding_invariance(m, b, wide, what)
  local short, long = pad_to(b, longest(b.attention_mask)), pad_to(b, wide)
  local function step(batch)
    bl.seed(17)
    m:train()
    m:zero_grad()
    local out = m:forward(batch)
    out.loss:backward()
    local grads = {}
    for i, p in ipairs(m:parameters()) do grads[i] = p.grad:clone() end
    return out.loss:item(), grads
  end
  local l1, g1 = step(short)
  local l2, g2 = step(long)
  m:eval()
  local le = m:forward(short).loss:item()
  local names = {}
  for i, p in ipairs(m:parameters()) do names[i] = p.name end
  local gmax, scale = 0, {}
  for i = 1, #g1 do scale[i] = maxabs(g1[i]); gmax = math.max(gmax, scale[i]) end
  local worst, worst_name, worst_abs = 0, "", 0
  for i = 1, #g1 do
    local d = maxabs(g1[i] + g2[i] * -1)
    -- relative to the tensor's largest gradient, floored at 1e-2 of the model's largest: the key
    -- biases' true gradient is 0 (softmax ignores a shift shared by all keys), their ~1e-9 values
    -- are rounding noise
    local rel = d / math.max(scale[i], 1e-2 * gmax)
    if rel > worst then worst, worst_name, worst_abs = rel, names[i], d end
  end
  local dl = math.abs(l1 - l2) / math.abs(l1)
  print(("# %s: T=%d vs T=%d: loss %.7f vs %.7f (rel diff %.3g); largest gradient difference %s rel %.3g (abs %.3g); eval loss %.7f")
    :format(what, short.input_ids:shape()[2], wide, l1, l2, dl, worst_name, worst, worst_abs, le))
  T.check(math.abs(l1 - le) > 1e-4, what .. ": dropout is on (train-mode loss differs from eval-mode loss)",
    ("train %.7f eval %.7f"):format(l1, le))
  T.check(dl <= 1e-5, ("%s: train step padded to the longest (T=%d) and to %d: same loss"):format(what,
    short.input_ids:shape()[2], wide), ("rel diff %.3g"):format(dl))
  T.check(worst <= 1e-5, ("%s: ... and the same gradients, all %d tensors (within 1e-5 relative)"):format(what, #g1),
    ("%s rel %.3g"):format(worst_name, worst))
end

local fx = bl.load_safetensors(FIX .. "tiny_batch.safetensors")
local batch = { input_ids = fx.input_ids, attention_mask = fx.attention_mask,
                token_type_ids = fx.token_type_ids, labels = fx.labels }

-- ---- loading and description ----------------------------------------------------------------------
local model = bl.BertForSequenceClassification.from_pretrained(TINY)
local cfg = model:config()
T.eq(cfg.num_hidden_layers, 2, "config: num_hidden_layers")
T.eq(cfg.hidden_size, 32, "config: hidden_size")
T.eq(cfg.num_labels, 3, "config: num_labels")
T.same(cfg.id2label, { [0] = "neg", [1] = "neu", [2] = "pos" }, "config: id2label (0-based keys)")
T.eq(cfg.label2id.pos, 2, "config: label2id")
T.eq(cfg.classifier_dropout, cfg.hidden_dropout_prob, "config: classifier_dropout null -> hidden_dropout_prob")
T.check(tostring(model):find("^BertForSequenceClassification%(layers=2, hidden=32") ~= nil,
  "tostring", tostring(model))

local params = model:parameters()
local expected_numel, names_ok, shapes_ok = 0, true, true
local nref = 0
for name, g in pairs(fx) do
  if name:sub(1, 5) == "grad." then nref = nref + 1; expected_numel = expected_numel + g:numel() end
end
for _, p in ipairs(params) do
  local ref = fx["grad." .. p.name]
  if not ref then names_ok = false; print("# no reference for " .. p.name)
  elseif shape_str(ref) ~= shape_str(p) then shapes_ok = false; print("# shape of " .. p.name) end
end
T.eq(#params, nref, "parameters(): one tensor per HF parameter (" .. nref .. ")")
T.check(names_ok, "parameters(): HF names")
T.check(shapes_ok, "parameters(): HF shapes")
T.eq(params[1].name, "bert.embeddings.word_embeddings.weight", "parameters(): HF order (first)")
T.eq(params[6].name, "bert.encoder.layer.0.attention.self.query.weight", "parameters(): HF order (q)")
T.eq(params[#params].name, "classifier.bias", "parameters(): HF order (last)")
T.eq(model:num_parameters(), expected_numel, "num_parameters() equals the sum over HF parameters")
T.check(model:parameters()[3] == params[3], "parameters(): the same view tensors on every call")

-- ---- eval forward / backward against transformers ----------------------------------------------
model:eval()
local out = model:forward(batch)
local d = maxdiff(out.logits, fx.logits)
print(("# tiny logits: max |diff| = %.3g"):format(d))
T.check(d <= 1e-4, "eval logits within 1e-4 of transformers", ("max diff %.3g"):format(d))
T.eq(shape_str(out.logits), "[3,3]", "logits shape [B,L]")
T.eq(out.loss:dim(), 0, "loss is a 0-dim tensor")
local dl = math.abs(out.loss:item() - fx.loss:item())
print(("# tiny loss: %.7f vs %.7f, |diff| = %.3g"):format(out.loss:item(), fx.loss:item(), dl))
T.check(dl <= 1e-4, "loss within 1e-4 of transformers", ("diff %.3g"):format(dl))

model:zero_grad()
out.loss:backward()
local worst, worst_name, bad = 0, "", 0
local report = {}
for _, p in ipairs(params) do
  local dd, m = maxdiff(p.grad, fx["grad." .. p.name])
  -- max-abs-normalised; a tensor whose true gradient is 0 (the key bias: softmax ignores a shift
  -- shared by all keys) holds rounding noise on both sides, so the scale never drops below 1e-4
  local rel = dd / math.max(m, 1e-4)
  report[#report + 1] = { rel, p.name, dd, m }
  if rel > 1e-3 then bad = bad + 1 end
  if rel > worst then worst, worst_name = rel, p.name end
end
table.sort(report, function(a, b) return a[1] > b[1] end)
for i = 1, 3 do
  print(("# grad %-55s rel %.3g (max|diff| %.3g, max|ref| %.3g)"):format(report[i][2], report[i][1],
    report[i][3], report[i][4]))
end
T.check(bad == 0, ("every gradient within 1e-3 relative of transformers (%d tensors; worst %s %.3g)")
  :format(#params, worst_name, worst), ("%d tensors off"):format(bad))

-- a second backward of the same loss is an error; backward of a new forward accumulates; zero_grad clears
T.checkerror("backward: this loss was already backpropagated", "a second backward of the same loss is an error",
  out.loss.backward, out.loss)
out = model:forward(batch)
out.loss:backward()
local d2 = maxdiff(params[1].grad, fx["grad." .. params[1].name] * bl.tensor({ 2.0 }))
T.check(d2 <= 1e-4, "backward of a second (eval) forward accumulates (2x the gradient)", ("diff %.3g"):format(d2))
model:zero_grad()
local _, gm = maxdiff(params[1].grad, params[1].grad)
T.eq(gm, 0, "zero_grad() clears the gradients")
-- zero_grad leaves the linear layers' weight gradients for the next backward to write (CPU): that
-- backward gives 1x the gradient, not 1x plus what they held; read before it, they are zero
local qi
for i, p in ipairs(params) do if p.name:find("attention.self.query.weight", 1, true) then qi = i break end end
for _ = 1, 2 do out = model:forward(batch); out.loss:backward() end -- they hold 2x now
model:zero_grad()
out = model:forward(batch)
out.loss:backward()
local dq = maxdiff(params[qi].grad, fx["grad." .. params[qi].name])
T.check(dq <= 1e-4, "the backward after zero_grad writes " .. params[qi].name .. "'s gradient (1x, not added to the 2x it held)",
  ("diff %.3g"):format(dq))
model:zero_grad()
local _, qm = maxdiff(params[qi].grad, params[qi].grad)
T.eq(qm, 0, "zero_grad(): a linear layer's weight gradient read before the next backward is zero")

-- backward belongs to the last forward
local out2 = model:forward(batch)
model:forward({ input_ids = fx.input_ids })
T.checkerror("backward: the model ran another forward", "backward after another forward is an error",
  function() out2.loss:backward() end)
local nolabels = model:forward({ input_ids = fx.input_ids })
T.check(nolabels.loss == nil, "no labels: no loss")
T.check(nolabels.logits ~= nil, "no labels: logits")
-- defaults: mask all ones, types all zeros
local ones = bl.ones({ 3, 7 }):to("int64")
local zeros = bl.zeros({ 3, 7 }):to("int64")
local a1 = model:forward({ input_ids = fx.input_ids }).logits
local a2 = model:forward({ input_ids = fx.input_ids, attention_mask = ones, token_type_ids = zeros }).logits
T.eq(maxdiff(a1, a2), 0, "defaults: attention_mask all ones, token_type_ids all zeros")

-- ---- dropout ----------------------------------------------------------------------------------------
model:train()
T.check(tostring(model):find("train%)$") ~= nil, "train() switches the mode")
bl.seed(11)
local t1 = model:forward(batch)
local t1b = model:forward(batch)
bl.seed(11)
local t2 = model:forward(batch)
T.eq(maxdiff(t1.logits, t2.logits), 0, "train mode: same logits after the same bl.seed")
T.check(maxdiff(t1.logits, t1b.logits) > 1e-4, "train mode: the next forward draws new masks")
T.check(maxdiff(t1.logits, fx.logits) > 1e-4, "train mode differs from eval")
model:zero_grad()
t2.loss:backward()
local gfin = true
for _, p in ipairs(params) do for _, v in ipairs(flat(p.grad)) do if v ~= v or math.abs(v) == math.huge then gfin = false end end end
T.check(gfin, "train-mode backward gives finite gradients")
model:eval()
T.eq(maxdiff(model:forward(batch).logits, fx.logits) <= 1e-4, true, "eval() turns dropout off again")
padding_invariance(model, batch, 64, "tiny")
model:eval()

-- ---- save / load round trip -------------------------------------------------------------------------
local dir = tmp .. "/saved"
model:save(dir)
local f = io.open(dir .. "/config.json"); T.check(f ~= nil, "save: writes config.json"); if f then f:close() end
local st = bl.load_safetensors(dir .. "/model.safetensors")
T.check(st["bert.pooler.dense.weight"] ~= nil and st["classifier.weight"] ~= nil
  and st["bert.encoder.layer.1.attention.self.value.bias"] ~= nil, "save: HF names with the bert. prefix")
local m2 = bl.BertForSequenceClassification.from_pretrained(dir)
T.eq(maxdiff(m2:forward(batch).logits, model:forward(batch).logits), 0, "save -> from_pretrained: identical logits")
T.same(m2:config().id2label, cfg.id2label, "save -> from_pretrained: id2label kept")
local file = tmp .. "/weights.safetensors"
model:save(file)
local m3 = bl.BertForSequenceClassification.from_pretrained(TINY, { quiet = true })
bl.seed(5)
for _, p in ipairs(m3:parameters()) do if p.name:find("classifier") then end end
T.check(m3:load(file) == m3, "load(file.safetensors) returns the model")
T.eq(maxdiff(m3:forward(batch).logits, model:forward(batch).logits), 0, "save(.safetensors) -> load: identical logits")
m2:free(); m3:free()

-- num_labels / id2label options; a missing classifier is initialised (seeded) and reported
local nohead = {}
for k, v in pairs(st) do if not k:find("^classifier") then nohead[k] = v end end
os.execute("mkdir -p " .. tmp .. "/nohead && cp " .. TINY .. "/config.json " .. tmp .. "/nohead/")
bl.save_safetensors(tmp .. "/nohead/model.safetensors", nohead)
bl.seed(3)
local h1 = bl.BertForSequenceClassification.from_pretrained(tmp .. "/nohead",
  { id2label = { "a", "b", "c", "d", "e" }, quiet = true })
bl.seed(3)
local h2 = bl.BertForSequenceClassification.from_pretrained(tmp .. "/nohead",
  { num_labels = 5, id2label = { [0] = "a", "b", "c", "d", "e" }, quiet = true })
T.eq(h1:config().num_labels, 5, "id2label option sets num_labels")
local same = bl.BertForSequenceClassification.from_pretrained(TINY, { num_labels = 3 })
T.eq(same:config().id2label[2], "pos", "num_labels equal to the config's keeps its label names")
same:free()
T.eq(h2:config().id2label[4], "e", "id2label with [0]= keys")
local hp = h1:parameters()
local cw = hp[#hp - 1]
T.eq(shape_str(cw), "[5,32]", "missing classifier created with the new num_labels")
T.eq(maxdiff(cw, h2:parameters()[#hp - 1]), 0, "missing classifier init is reproducible after bl.seed")
local _, cmax = maxdiff(cw, cw)
T.check(cmax > 0 and cmax < 0.2, "missing classifier init ~ N(0, 0.02)", tostring(cmax))
local _, bmax = maxdiff(hp[#hp], hp[#hp])
T.eq(bmax, 0, "missing classifier bias is zero")
h1:free(); h2:free()

-- half-precision checkpoints (a .safetensors file with config.json beside it)
for _, tag in ipairs({ "f16", "bf16" }) do
  local mh = bl.BertForSequenceClassification.from_pretrained(TINY .. "/model_" .. tag .. ".safetensors", { quiet = true })
  local dh = maxdiff(mh:forward(batch).logits, fx["logits_" .. tag])
  print(("# %s checkpoint logits: max |diff| = %.3g"):format(tag, dh))
  T.check(dh <= 1e-4, tag .. " checkpoint: logits of the rounded weights within 1e-4 of transformers",
    ("max diff %.3g"):format(dh))
  mh:free()
end

-- the stderr report: newly initialised head, ignored tensors (names without "bert." in bf16)
local function stderr_of(code)
  local p = io.popen((os.getenv("BL_TEST_BIN") or "bin/bertlab") .. " -e '" .. code .. "' 2>&1 >/dev/null")
  local s = p:read("a"); p:close()
  return s
end
local rep = stderr_of('local bl=require"bertlab"; bl.BertForSequenceClassification.from_pretrained("' .. tmp .. '/nohead", {num_labels=4})')
T.check(rep:find("newly initialized: %['classifier%.weight', 'classifier%.bias'%]") ~= nil,
  "missing classifier reported on stderr like transformers", rep)
rep = stderr_of('local bl=require"bertlab"; bl.BertForSequenceClassification.from_pretrained("' .. TINY .. '/model_bf16.safetensors")')
T.check(rep:find("ignored 1 tensor the model does not use: 'cls%.predictions%.bias'") ~= nil,
  "unexpected tensors ignored with a note", rep)
T.eq(stderr_of('local bl=require"bertlab"; bl.BertForSequenceClassification.from_pretrained("' .. TINY .. '")'), "",
  "a complete checkpoint loads silently")

-- vocab.txt travels with a saved folder
os.execute("mkdir -p " .. tmp .. "/withvocab && cp " .. TINY .. "/config.json " .. TINY .. "/model.safetensors " .. tmp .. "/withvocab/")
local vf = io.open(tmp .. "/withvocab/vocab.txt", "w"); vf:write("[PAD]\n[UNK]\nhello\n"); vf:close()
local mv = bl.BertForSequenceClassification.from_pretrained(tmp .. "/withvocab")
mv:save(tmp .. "/withvocab_out")
local vo = io.open(tmp .. "/withvocab_out/vocab.txt")
T.eq(vo and vo:read("a"), "[PAD]\n[UNK]\nhello\n", "save copies the source folder's vocab.txt")
if vo then vo:close() end
mv:save(tmp .. "/withvocab") -- saving over the source folder keeps its vocab.txt
vo = io.open(tmp .. "/withvocab/vocab.txt")
T.eq(vo and vo:read("a"), "[PAD]\n[UNK]\nhello\n", "save over the source folder keeps vocab.txt")
if vo then vo:close() end
mv:free()

-- ---- MiniLM (the default model) -----------------------------------------------------------------
local fm = io.open(MINILM .. "/model.safetensors")
if not fm then
  T.skip("MiniLM logits", MINILM .. " is absent (make model)")
else
  fm:close()
  local mb = bl.load_safetensors(FIX .. "minilm_batch.safetensors")
  local mini = bl.BertForSequenceClassification.from_pretrained(MINILM,
    { id2label = { "ISCAS", "INFOCOM", "VLDB", "WWW", "SIGGRAPH" }, quiet = true })
  mini:load(FIX .. "minilm_classifier.safetensors", { strict = false })
  T.checkerror("tensor 'bert.embeddings.word_embeddings.weight' is missing", "load: strict by default",
    function() mini:load(FIX .. "minilm_classifier.safetensors") end)
  mini:eval()
  local lo = mini:forward({ input_ids = mb.input_ids, attention_mask = mb.attention_mask,
                            token_type_ids = mb.token_type_ids }).logits
  local dm = maxdiff(lo, mb.logits)
  print(("# MiniLM logits (5 titles, T=%d): max |diff| = %.3g"):format(mb.input_ids:shape()[2], dm))
  T.check(dm <= 1e-4, "MiniLM logits within 1e-4 of transformers", ("max diff %.3g"):format(dm))
  local probs = mini:predict_proba({ input_ids = mb.input_ids, attention_mask = mb.attention_mask })
  local s = 0
  for _, v in ipairs(probs[1]) do s = s + v end
  T.near(s, 1, 1e-5, "predict_proba rows sum to 1")
  -- transformers: sum(p.numel()) = 22,715,141 over 105 tensors for all-MiniLM-L6-v2 with 5 labels
  T.eq(mini:num_parameters(), 22715141, "MiniLM: num_parameters as transformers counts")
  T.eq(#mini:parameters(), 105, "MiniLM: 105 parameter tensors as transformers")
  padding_invariance(mini, { input_ids = mb.input_ids, attention_mask = mb.attention_mask,
    token_type_ids = mb.token_type_ids, labels = bl.tensor({ 0, 1, 2, 3, 4 }, "int64") }, 64, "MiniLM")
  mini:free()
end

-- ---- errors -----------------------------------------------------------------------------------------
local ids = fx.input_ids:totable()
local function with(k, v)
  local b = { input_ids = fx.input_ids, attention_mask = fx.attention_mask,
              token_type_ids = fx.token_type_ids, labels = fx.labels }
  b[k] = v
  return b
end
T.checkerror("bad argument #1 to 'forward' %(table expected, got number%)", "forward: not a table",
  function() model:forward(3) end)
T.checkerror("forward: input_ids is required", "forward: input_ids missing",
  function() model:forward({}) end)
T.checkerror("forward: input_ids must be a tensor, got table", "forward: input_ids not a tensor",
  function() model:forward({ input_ids = ids }) end)
T.checkerror("forward: input_ids must be int64 %[B,T%], got float32 %[3%]", "forward: input_ids float32 [3]",
  function() model:forward({ input_ids = bl.tensor({ 1.5, 2, 3 }) }) end)
T.checkerror("attention_mask must be int64 %[3, 7%] like input_ids, got int64 %[3, 6%]", "forward: mask shape",
  function() model:forward(with("attention_mask", bl.ones({ 3, 6 }):to("int64"))) end)
T.checkerror("token_type_ids must be int64 %[3, 7%] like input_ids, got float32", "forward: types dtype",
  function() model:forward(with("token_type_ids", bl.zeros({ 3, 7 }))) end)
local bad = fx.input_ids:totable(); bad[2][3] = 100
T.checkerror("input_ids: token id 100 at row 2, column 3 is out of range for vocab_size 100",
  "forward: token id >= vocab_size", function() model:forward(with("input_ids", bl.tensor(bad, "int64"))) end)
bad[2][3] = -1
T.checkerror("token id %-1 at row 2, column 3", "forward: negative token id",
  function() model:forward(with("input_ids", bl.tensor(bad, "int64"))) end)
local badt = fx.token_type_ids:totable(); badt[1][7] = 2
T.checkerror("token_type_ids: type id 2 at row 1, column 7 is out of range for type_vocab_size 2",
  "forward: type id >= type_vocab_size", function() model:forward(with("token_type_ids", bl.tensor(badt, "int64"))) end)
local badm = fx.attention_mask:totable(); badm[3][1] = 2
T.checkerror("attention_mask: value 2 at row 3, column 1 is not 0 or 1", "forward: mask not 0/1",
  function() model:forward(with("attention_mask", bl.tensor(badm, "int64"))) end)
T.checkerror("labels: label 3 at row 2 is out of range for num_labels 3", "forward: label >= num_labels",
  function() model:forward(with("labels", bl.tensor({ 0, 3, 1 }, "int64"))) end)
T.checkerror("labels must be int64 %[3%] %(one per row of input_ids%), got int64 %[2%]", "forward: labels shape",
  function() model:forward(with("labels", bl.tensor({ 0, 1 }, "int64"))) end)
local long = bl.ones({ 1, 65 }):to("int64")
T.checkerror("input_ids has 65 tokens per sequence, more than max_position_embeddings 64",
  "forward: T > max_position_embeddings", function() model:forward({ input_ids = long }) end)

-- checkpoints
T.checkerror("from_pretrained: .*nothere: no such file or folder", "from_pretrained: missing path",
  function() bl.BertForSequenceClassification.from_pretrained(tmp .. "/nothere") end)
T.checkerror("bad argument #1 to 'from_pretrained' %(string expected, got number%)", "from_pretrained: path type",
  function() bl.BertForSequenceClassification.from_pretrained(1) end)
T.checkerror("model%.safetensors: tensor 'classifier%.bias' has shape %[3%], config says %[5%]", "shape mismatch names the tensor and both shapes",
  function() bl.BertForSequenceClassification.from_pretrained(TINY, { num_labels = 5 }) end)
T.checkerror("num_labels is 4 but id2label has 3 names", "from_pretrained: num_labels vs id2label",
  function() bl.BertForSequenceClassification.from_pretrained(TINY, { num_labels = 4, id2label = { "a", "b", "c" } }) end)
os.execute("mkdir -p " .. tmp .. "/corrupt && cp " .. TINY .. "/config.json " .. tmp .. "/corrupt/")
local cf = io.open(tmp .. "/corrupt/model.safetensors", "wb"); cf:write("\255\0\0\0\0\0\0\0{garbage"); cf:close()
T.checkerror("from_pretrained: .*model%.safetensors", "corrupt checkpoint names the file",
  function() bl.BertForSequenceClassification.from_pretrained(tmp .. "/corrupt") end)
os.execute("mkdir -p " .. tmp .. "/noconfig && cp " .. TINY .. "/model.safetensors " .. tmp .. "/noconfig/")
T.checkerror("noconfig: no config.json beside the weights", "from_pretrained: config.json missing",
  function() bl.BertForSequenceClassification.from_pretrained(tmp .. "/noconfig/model.safetensors") end)
local missing = {}
for k, v in pairs(st) do if k ~= "bert.encoder.layer.1.output.dense.weight" then missing[k] = v end end
os.execute("mkdir -p " .. tmp .. "/missing && cp " .. TINY .. "/config.json " .. tmp .. "/missing/")
bl.save_safetensors(tmp .. "/missing/model.safetensors", missing)
T.checkerror("tensor 'bert.encoder.layer.1.output.dense.weight' is missing from the checkpoint",
  "missing encoder tensor is an error", function() bl.BertForSequenceClassification.from_pretrained(tmp .. "/missing") end)
local wrong = {}
for k, v in pairs(st) do wrong[k] = v end
wrong["bert.pooler.dense.weight"] = bl.zeros({ 16, 32 })
bl.save_safetensors(tmp .. "/wrong.safetensors", wrong)
T.checkerror("wrong%.safetensors: tensor 'bert.pooler.dense.weight' has shape %[16,32%], config says %[32,32%]",
  "load: shape mismatch", function() model:load(tmp .. "/wrong.safetensors") end)
T.checkerror("expected a model folder or a .safetensors file", "load: not a checkpoint",
  function() model:load(TINY .. "/config.json") end)

T.checkerror("bad argument #1 to 'save' %(string expected, got no value%)", "save: path type",
  function() model:save() end)
os.execute("mkdir -p " .. tmp .. "/relative && cp " .. TINY .. "/model.safetensors " .. tmp .. "/relative/")
local cj = io.open(TINY .. "/config.json"):read("a"):gsub('"vocab_size"', '"position_embedding_type": "relative_key",\n  "vocab_size"')
local cw2 = io.open(tmp .. "/relative/config.json", "w"); cw2:write(cj); cw2:close()
T.checkerror("position_embedding_type '?relative_key'? is not supported", "unsupported position embeddings",
  function() bl.BertForSequenceClassification.from_pretrained(tmp .. "/relative") end)

-- ---- grad = false: an evaluation forward in one layer's activations -------------------------------
-- Every layer reuses the same slots, so nothing may change but the memory: the same logits and loss
-- bits as a forward that keeps every layer (padded and packed batches, eval and train mode), a
-- backward of it is an error, and a kept forward after it (the allocation regrows) trains as if it
-- had never run.
if not io.open(MINILM .. "/model.safetensors") then
  T.skip("grad = false", MINILM .. " is absent (make model)")
else
  local mb = bl.load_safetensors(FIX .. "minilm_batch.safetensors")
  local x = { input_ids = mb.input_ids, attention_mask = mb.attention_mask, token_type_ids = mb.token_type_ids,
              labels = bl.tensor({ 0, 1, 2, 3, 4 }, "int64") }
  local function with(t, k, v) local c = {} for kk, vv in pairs(t) do c[kk] = vv end c[k] = v return c end
  local function same(a, b) local x1, y1 = flat(a), flat(b) for i = 1, #x1 do if x1[i] ~= y1[i] then return false end end return #x1 == #y1 end
  bl.seed(7) -- the same classifier for both models
  local ng = bl.BertForSequenceClassification.from_pretrained(MINILM, { num_labels = 5, quiet = true })
  ng:eval()
  local base = bl.cpu_memory().current
  local o1 = ng:forward(with(x, "grad", false))
  local used1 = bl.cpu_memory().current - base
  local o2 = ng:forward(with(x, "labels", nil))
  T.check(pcall(function() o1.loss:backward() end) == false, "grad = false: its loss cannot be backpropagated")
  bl.seed(7)
  local ref = bl.BertForSequenceClassification.from_pretrained(MINILM, { num_labels = 5, quiet = true })
  ref:eval()
  local base2 = bl.cpu_memory().current
  local o3 = ref:forward(x)
  local used3 = bl.cpu_memory().current - base2
  print(("# activations of a 5 x %d batch, 6 layers: %d KB with grad = false, %d KB kept"):format(
    mb.input_ids:shape()[2], used1 >> 10, used3 >> 10))
  T.check(used1 * 4 < used3, "grad = false: under a quarter of the memory of a forward that keeps every layer",
    ("%d vs %d bytes"):format(used1, used3))
  T.check(same(o1.logits, o3.logits) and same(o2.logits, o3.logits),
    "grad = false and no labels: the logits of a forward that keeps every layer, bit for bit")
  T.eq(o1.loss:item(), o3.loss:item(), "grad = false: the same loss")
  -- padded to 40 columns: the padded rows are packed (each row its own attention)
  local wide = pad_to(x, 40)
  T.check(same(ng:forward(with(wide, "grad", false)).logits, ref:forward(wide).logits),
    "grad = false, a batch padded to 40: the same logits")
  -- train mode: the same dropout masks, the same loss
  ng:train(); ref:train()
  bl.seed(3); local l1 = ng:forward(with(x, "grad", false)).loss:item()
  bl.seed(3); local l3 = ref:forward(x).loss:item()
  T.eq(l1, l3, "grad = false in train mode: the same dropout, the same loss")
  -- a kept forward after it regrows the allocation and trains as the reference
  bl.seed(4); ng:zero_grad(); local ln = ng:forward(x); ln.loss:backward()
  bl.seed(4); ref:zero_grad(); local lr = ref:forward(x); lr.loss:backward()
  local gsame = true
  for i, p in ipairs(ng:parameters()) do if not same(p.grad, ref:parameters()[i].grad) then gsame = false end end
  T.check(gsame and ln.loss:item() == lr.loss:item(), "a kept forward after grad = false: the same loss and gradients, bit for bit")
  T.checkerror("grad must be a boolean", "forward: grad = 0 is an error",
    function() ng:forward(with(x, "grad", 0)) end)
  T.checkerror("unknown option 'label' %(did you mean labels%?%)", "forward: a misspelt input is named",
    function() ng:forward({ input_ids = x.input_ids, label = x.labels }) end)
  T.checkerror("unknown option 'mask'", "forward: an unknown input is named",
    function() ng:forward({ input_ids = x.input_ids, mask = x.attention_mask }) end)
  ng:free(); ref:free()
end

-- free
local m4 = bl.BertForSequenceClassification.from_pretrained(TINY)
local p4 = m4:parameters()
m4:free()
m4:free()
T.eq(p4[1]:numel(), 0, "free(): parameter views are emptied")
T.checkerror("the model was freed", "methods after free() are errors", function() m4:forward(batch) end)
T.eq(tostring(m4), "BertForSequenceClassification(<freed>)", "tostring after free")
do
  local m5 <close> = bl.BertForSequenceClassification.from_pretrained(TINY)
  T.eq(m5:config().num_labels, 3, "<close> model usable in scope")
end

-- docs: every exported name appears in docs/api/model.md
local doc = io.open("docs/api/model.md"):read("a")
local exported = { "BertForSequenceClassification.from_pretrained", "forward", "backward", "zero_grad", "train",
  "eval", "parameters", "num_parameters", "save", "load", "config", "free", "predict_proba", "tostring" }
local undocumented = {}
for _, n in ipairs(exported) do
  if not doc:find("## [^\n]*" .. n:gsub("%.", "%%.")) then undocumented[#undocumented + 1] = n end
end
T.check(#undocumented == 0, "docs/api/model.md documents every exported name", table.concat(undocumented, ", "))

model:free()
os.execute("rm -rf " .. tmp)
T.done()
