-- test_experiments.lua: the training loop end to end. (1) The tiny fixture model learns a synthetic
-- task in a few dozen AdamW steps; (2) the same seeded training twice gives identical losses;
-- (3) experiments/conference.lua --limit 30 --epochs 1 on the default model writes well-formed
-- results, checkpoints and chart, and evaluate.lua / predict.lua reload its checkpoint; (4) the
-- experiment is reproducible run to run, and gives the same results with dynamic and fixed padding.
-- Parts not merged yet or absent files are skipped with why.
local T = require("testlib")
local bl = require("bertlab")

local TINY = "tests/fixtures/model/tiny"
local MODEL = "models/all-MiniLM-L6-v2"
local DATA = "data/title_conference.csv"

local function have_model_part()
  return type(bl.BertForSequenceClassification) == "table" and bl.file_exists(TINY .. "/model.safetensors")
end

-- synthetic task for the tiny model (vocab 100, 3 labels): class c sequences contain token 10+c
local function synthetic(n, len)
  math.randomseed(1234)
  local ids, mask, labels = {}, {}, {}
  for i = 1, n do
    local c = (i - 1) % 3
    local row, m = { 2 }, { 1 }
    for j = 2, len do row[j] = math.random(20, 99); m[j] = 1 end
    row[math.random(2, len)] = 10 + c
    ids[i], mask[i], labels[i] = row, m, c
  end
  return bl.tensor(ids), bl.tensor(mask), bl.tensor(labels)
end

local function rows(t, from, to)
  local idx = {}
  for i = from, to do idx[#idx + 1] = i end
  return t:index(idx)
end

local function tiny_run(seed, steps)
  bl.seed(seed)
  local model = bl.BertForSequenceClassification.from_pretrained(TINY, { quiet = true })
  local ids, mask, labels = synthetic(24, 10)
  local function full_loss()
    model:eval()
    local out = model:forward({ input_ids = ids, attention_mask = mask, labels = labels })
    return out.loss:item()
  end
  local before = full_loss()
  local params = model:parameters()
  local opt = bl.AdamW(params, { lr = 3e-3, eps = 1e-8 })
  local sched = bl.get_linear_schedule_with_warmup(opt, 2, steps)
  local losses = {}
  model:train()
  for s = 1, steps do
    local a = ((s - 1) * 8) % 24 + 1
    model:zero_grad()
    local out = model:forward({ input_ids = rows(ids, a, a + 7), attention_mask = rows(mask, a, a + 7),
                                labels = rows(labels, a, a + 7) })
    losses[s] = out.loss:item()
    out.loss:backward()
    bl.clip_grad_norm(params, 1.0)
    opt:step()
    sched:step()
  end
  local after = full_loss()
  model:free()
  return before, after, losses
end

if not have_model_part() then
  T.skip("tiny model training", "the model part (bl.BertForSequenceClassification, " .. TINY .. ") is not merged yet")
else
  local before, after, losses = tiny_run(7, 45)
  print(("# tiny model: loss %.4f before, %.4f after 45 steps"):format(before, after))
  T.check(after < 0.5 * before, "45 AdamW steps lower the tiny model's loss by half",
    ("%.4f -> %.4f"):format(before, after))
  local _, after2, losses2 = tiny_run(7, 45)
  T.same(losses2, losses, "same seed: identical per-step losses")
  T.eq(after2, after, "same seed: identical final loss")
  local _, _, losses3 = tiny_run(8, 45)
  T.check(not T.deep_equal(losses3, losses), "another seed: different losses (dropout and init use the seed)")

  -- a model's parameters live in one allocation: AdamW and clipping update them as one run in
  -- address order; the same updates on separate copies (one kernel call each) must agree
  bl.seed(3)
  local model = bl.BertForSequenceClassification.from_pretrained(TINY, { quiet = true })
  local params = model:parameters()
  local copies = {}
  for i, p in ipairs(params) do copies[i] = bl.parameter(p:clone()) end
  local opt_a = bl.AdamW(params, { lr = 1e-2, weight_decay = 0.01 })
  local opt_b = bl.AdamW(copies, { lr = 1e-2, weight_decay = 0.01 })
  local ids, mask, labels = synthetic(6, 8)
  local worst, worst_norm = 0, 0
  for _ = 1, 3 do
    model:zero_grad()
    local out = model:forward({ input_ids = ids, attention_mask = mask, labels = labels })
    out.loss:backward()
    for i, p in ipairs(params) do bl.parameter(copies[i], p.grad:clone()) end
    local na = bl.clip_grad_norm(params, 0.05)
    local nb = bl.clip_grad_norm(copies, 0.05)
    worst_norm = math.max(worst_norm, math.abs(na - nb) / nb)
    opt_a:step()
    opt_b:step()
  end
  for i, p in ipairs(params) do
    local a, b = p:totable(), copies[i]:totable()
    local function flat(t, acc) for _, x in ipairs(t) do if type(x) == "table" then flat(x, acc) else acc[#acc + 1] = x end end return acc end
    a, b = flat(a, {}), flat(b, {})
    for k = 1, #a do worst = math.max(worst, math.abs(a[k] - b[k])) end
  end
  print(("# one-run vs per-tensor updates: max param diff %.3g, norm rel diff %.3g"):format(worst, worst_norm))
  T.check(worst <= 1e-6, "AdamW over the model's one allocation = per-tensor updates", ("max diff %.3g"):format(worst))
  T.check(worst_norm <= 1e-9, "clip_grad_norm over one allocation = per tensor", ("rel diff %.3g"):format(worst_norm))
  local sd = opt_a:state_dict()
  local first = params[1]:numel()
  local m_first = sd.exp_avg:index({ 1 }):item()
  T.check(math.abs(m_first - opt_b:state_dict().exp_avg:index({ 1 }):item()) < 1e-9 and first > 0,
    "state_dict lists the moments in parameter-list order")
  model:free()
  T.checkerror("parameter 1 %('bert%.embeddings%.word_embeddings%.weight'%) changed size", "step after model:free(): an error naming the parameter",
    opt_a.step, opt_a)
end

-- end to end on the default model and the tutorial's data
local read = T.slurp

local missing_parts = {}
for _, name in ipairs({ "read_csv", "train_test_split", "TensorDataset", "DataLoader", "BertTokenizer",
                        "BertForSequenceClassification" }) do
  if bl[name] == nil then missing_parts[#missing_parts + 1] = name end
end

local BIN = T.BIN
local run = T.sh

if #missing_parts > 0 then
  T.skip("conference.lua smoke run", "parts not merged yet: " .. table.concat(missing_parts, ", "))
elseif not bl.file_exists(MODEL .. "/model.safetensors") then
  T.skip("conference.lua smoke run", MODEL .. " is absent (run `make model`)")
elseif not bl.file_exists(DATA) then
  T.skip("conference.lua smoke run", DATA .. " is absent (run `make data`)")
else
  local dir = os.tmpname()
  os.remove(dir)
  local t0 = bl.now()
  -- the tutorial's split: 2130 / 377 titles, stratified (validation evaluation of all 377 takes
  -- ~15 s of CPU, so the runs below use --val-limit to stay short)
  local d = bl.load_text_classification(DATA)
  T.eq(#d.train.texts, 2130, "tutorial split: 2130 training titles")
  T.eq(#d.val.texts, 377, "tutorial split: 377 validation titles")
  T.same(d.names, { "VLDB", "ISCAS", "SIGGRAPH", "INFOCOM", "WWW" }, "classes numbered by first appearance")
  local per = {}
  for _, y in ipairs(d.val.labels) do per[y] = (per[y] or 0) + 1 end
  T.same(per, { [0] = 64, [1] = 130, [2] = 49, [3] = 77, [4] = 57 }, "stratified validation class counts")
  local rc, out = run(("bin/bertlab experiments/conference.lua --limit 30 --val-limit 40 --epochs 1 --quiet --out %s"):format(dir))
  print(("# conference.lua --limit 30 --val-limit 40 --epochs 1: %.1f s"):format(bl.now() - t0))
  T.eq(rc, 0, "conference.lua --limit 30 --epochs 1 exits 0")
  if rc ~= 0 then print("# " .. out:gsub("\n", "\n# ")) end
  T.check(out:find("30 training and 40 validation titles", 1, true) ~= nil, "uses 30 training and 40 validation titles", out)
  T.check(out:find("F1 Score %(Weighted%): %d") ~= nil, "prints the weighted F1")
  T.check(out:find("Class: %u+\nAccuracy: %d+/%d+") ~= nil, "prints the accuracy per class")
  local jsonl = read(dir .. "/results.jsonl") or ""
  local nl = select(2, jsonl:gsub("\n", ""))
  T.eq(nl, 1, "results.jsonl: one line per epoch")
  T.check(jsonl:match('^{.*"epoch":1.*"train_loss":[%d%.e%-]+.*"val_f1":[%d%.e%-]+.*}\n$') ~= nil, "results.jsonl is a JSON object with the epoch's numbers", jsonl)
  local csv = read(dir .. "/results.csv") or ""
  local header, line1 = csv:match("^([^\n]*)\n([^\n]*)\n$")
  T.eq(header, "epoch,train_loss,val_loss,val_f1,val_accuracy,lr,seconds,checkpoint", "results.csv header")
  local fields = {}
  for f in ((line1 or "") .. ","):gmatch("([^,]*),") do fields[#fields + 1] = f end
  T.eq(#fields, 8, "results.csv: 8 fields")
  T.check(tonumber(fields[2]) and tonumber(fields[2]) > 0 and tonumber(fields[4]) and tonumber(fields[4]) <= 1,
    "results.csv: a positive loss and an F1 in [0,1]", line1)
  T.eq(fields[8], "epoch_1", "results.csv names the checkpoint")
  local svg = read(dir .. "/chart.svg") or ""
  T.check(svg:match("^<svg ") and svg:match("</svg>\n$") and svg:find("<circle") ~= nil, "chart.svg is an SVG with points")
  T.check(bl.file_exists(dir .. "/epoch_1/model.safetensors") and bl.file_exists(dir .. "/epoch_1/config.json"),
    "checkpoint epoch_1 saved (model.safetensors, config.json)")
  T.check(not bl.file_exists(dir .. "/.epoch_1.partial/config.json"), "no partial checkpoint left behind")
  local rj = bl.file_exists(dir .. "/run.json") and bl.read_json(dir .. "/run.json") or {}
  T.check(rj.status == "done" and #(rj.split or {}).val_rows == 40 and rj.labels and rj.labels[1] == "VLDB"
    and (rj.options or {}).limit == 30, "run.json of the tutorial run: 40 validation rows, labels, options")
  local rc2, out2 = run(("bin/bertlab experiments/conference.lua --limit 3 --epochs 1 --quiet --out %s"):format(dir))
  T.check(rc2 ~= 0 and out2:find("already holds a run", 1, true) ~= nil, "refuses to overwrite a previous run", out2)

  local rc3, out3 = run(("bin/bertlab experiments/evaluate.lua --val-limit 40 --checkpoint %s/epoch_1"):format(dir))
  T.eq(rc3, 0, "evaluate.lua exits 0")
  T.check(out3:find("Confusion matrix", 1, true) and out3:find("F1 Score %(Weighted%)") and out3:find("Class: %u+\nAccuracy: %d+/%d+"),
    "evaluate.lua prints per-class accuracy, the confusion matrix and F1", out3)
  -- the reloaded checkpoint gives the F1 the run recorded
  local f1_run = tonumber(fields[4])
  local f1_eval = tonumber(out3:match("F1 Score %(Weighted%): ([%d%.]+)"))
  T.check(f1_run and f1_eval and math.abs(f1_run - f1_eval) < 1e-6, "evaluate.lua reproduces the run's F1",
    ("%s vs %s"):format(tostring(f1_run), tostring(f1_eval)))
  local rc4, out4 = run(("bin/bertlab experiments/predict.lua --checkpoint %s/epoch_1 'Query optimization in relational databases' 'A low-power CMOS amplifier'"):format(dir))
  T.eq(rc4, 0, "predict.lua exits 0")
  local probs = {}
  for p in out4:gmatch("%u%u+%s+(0%.%d+)") do probs[#probs + 1] = tonumber(p) end
  local sum = 0
  for i = 1, math.min(5, #probs) do sum = sum + probs[i] end
  T.check(#probs == 10 and math.abs(sum - 1) < 1e-3, "predict.lua prints 5 probabilities per title summing to 1", out4)
  local rc5, out5 = run("bin/bertlab experiments/predict.lua --checkpoint /nonexistent 'x'")
  T.check(rc5 ~= 0 and out5:find("checkpoint '/nonexistent' not found", 1, true) ~= nil, "predict.lua: clear error for a missing checkpoint", out5)

  -- ablation (the shorthands): two cells, a CSV and a Markdown table (tests/test_ablation.lua: seeds, --grid, resume)
  local adir = dir .. "-ablation"
  local rc6, out6 = run(("bin/bertlab experiments/ablation.lua --batch-sizes 3,6 --epochs 1 --limit 6 --val-limit 6 --quiet --out %s"):format(adir))
  T.eq(rc6, 0, "ablation.lua exits 0")
  local acsv = read(adir .. "/ablation.csv") or ""
  local nlines = select(2, acsv:gsub("\n", ""))
  T.eq(nlines, 1 + 2 + 2 * 4, "ablation.csv: header, one line per run, 4 summary lines per cell")
  T.check(acsv:find("^kind,cell,batch_size,epochs,lr,seed,n,best_f1,last_f1,macro_f1,accuracy,") ~= nil
    and acsv:find("\nrun,c01%-bs3,3,1,1e%-05,17,1,") ~= nil, "ablation.csv columns and first run", acsv)
  T.check(out6:find("| cell | batch_size | n | best F1 (weighted) |", 1, true) and out6:find("\n| c02-bs6 | 6 | 1 |", 1, true),
    "ablation prints a Markdown table", out6)
  local okj, aj = pcall(bl.read_json, adir .. "/ablation.json")
  aj = okj and aj or {}
  T.check(aj.format == "bertlab-ablation/2" and aj.status == "done" and #(aj.cells or {}) == 2
    and aj.fixed and aj.fixed.limit == 6 and aj.seeds and aj.seeds[1] == 17 and aj.fixed.save == "none"
    and aj.grid and #aj.grid.batch_size == 2 and aj.data and aj.data.sha256 and aj.model and aj.model.sha256
    and aj.command_line:find("--batch-sizes 3,6", 1, true),
    "ablation.json records the fixed options, the grid, the command line, the sha256s and both cells", tostring(aj))
  T.check(bl.file_exists(adir .. "/c01-bs3/seed17/run.json") and not bl.file_exists(adir .. "/c01-bs3/seed17/epoch_1/config.json"),
    "each ablation run has its run.json and, by default (--save none), no checkpoint")
  os.execute("rm -rf " .. bl.shell_quote(adir))

  -- reproducibility of the whole experiment (in-process, no files)
  local function quick()
    local res = bl.run_experiment({ limit = 9, val_limit = 9, epochs = 1, progress = false, per_class = false,
                                     log = function() end })
    res.model:free()
    return res.epochs[1]
  end
  local a, b = quick(), quick()
  T.eq(b.train_loss, a.train_loss, "run_experiment twice with the same seed: identical training loss")
  T.eq(b.val_loss, a.val_loss, "run_experiment twice: identical validation loss")

  -- dynamic padding (the default) gives the model outputs of the tutorial's fixed padding, in
  -- evaluation and in training (dropout masks are indexed by a token's position, not the padded shape)
  do
    local dd = bl.load_text_classification(DATA, { val_limit = 12 })
    local tok = bl.BertTokenizer.from_pretrained(MODEL)
    local ds = bl.encode_dataset(tok, dd.val.texts, dd.val.labels, { pad = "max_length", max_length = 64 })
    bl.seed(17)
    local model = bl.BertForSequenceClassification.from_pretrained(MODEL, { num_labels = 5, quiet = true })
    local ev_l = bl.evaluate(model, bl.DataLoader(ds, { batch_size = 4, sampler = "sequential", pad = "longest", mask = 2 }))
    local ev_m = bl.evaluate(model, bl.DataLoader(ds, { batch_size = 4, sampler = "sequential", pad = "none" }))
    model:free()
    local dv = math.abs(ev_l.loss - ev_m.loss)
    print(("# pad longest vs max_length 64 (eval): loss diff %.3g"):format(dv))
    T.check(dv < 1e-5, "--pad longest = --pad max_length in evaluation (loss within 1e-5)", ("%.3g"):format(dv))
    T.same(ev_l.preds, ev_m.preds, "--pad longest = --pad max_length: same predictions")
  end
  do
    local function train(pad)
      local res = bl.run_experiment({ limit = 9, val_limit = 9, epochs = 1, pad = pad, max_length = 64,
                                       progress = false, per_class = false, log = function() end })
      res.model:free()
      return res.epochs[1]
    end
    local l, m = train("longest"), train("max_length")
    local dt, dv = math.abs(l.train_loss - m.train_loss), math.abs(l.val_loss - m.val_loss)
    print(("# pad longest vs max_length 64 (training, 3 steps): train loss %.7f vs %.7f (diff %.3g), val loss diff %.3g")
      :format(l.train_loss, m.train_loss, dt, dv))
    T.check(dt < 1e-5, "--pad longest = --pad max_length in training (train loss within 1e-5)", ("%.3g"):format(dt))
    T.check(dv < 1e-5, "--pad longest = --pad max_length in training: the trained models' val loss within 1e-5",
      ("%.3g"):format(dv))
  end
  os.execute("rm -rf " .. bl.shell_quote(dir))
end

-- argument errors of the scripts and of run_experiment
do
  local rc, out = run("bin/bertlab experiments/conference.lua --bogus 1")
  T.check(rc == 2 and out:find("unknown option '--bogus'", 1, true) ~= nil, "conference.lua: unknown option → exit 2 with message", out)
  rc, out = run("bin/bertlab experiments/conference.lua --device cuda --limit 3")
  T.check(rc ~= 0 and out:find("cuda is not available yet", 1, true) ~= nil, "--device cuda: clear 'not yet' error", out)
  rc, out = run("bin/bertlab experiments/conference.lua --pad middle")
  T.check(rc == 2 and out:find("must be one of longest, max_length", 1, true) ~= nil, "--pad: choices checked", out)
  rc, out = run("bin/bertlab experiments/evaluate.lua")
  T.check(rc == 2 and out:find("--checkpoint is required", 1, true) ~= nil, "evaluate.lua: --checkpoint required", out)
  rc, out = run("bin/bertlab experiments/ablation.lua --help")
  T.check(rc == 0 and out:find("--batch-sizes", 1, true) ~= nil, "ablation.lua --help", out)
  T.checkerror("data file 'nope.csv' not found", "run_experiment: missing data file", bl.run_experiment,
    { data = "nope.csv", progress = false })
  T.checkerror("epochs must be a positive integer", "run_experiment: bad epochs", bl.run_experiment, { epochs = 0 })
  T.checkerror("unknown option 'batchsize'", "run_experiment: unknown option", bl.run_experiment, { batchsize = 3 })
  T.checkerror("model folder 'nowhere' not found", "run_experiment: missing model folder", bl.run_experiment,
    { model = "nowhere", data = "tests/test_experiments.lua" })
  T.checkerror("eval_epoch must be between 1 and 2", "run_experiment: eval_epoch out of range", bl.run_experiment,
    { epochs = 2, eval_epoch = 3 })
  T.checkerror("eval_epoch needs every epoch.s checkpoint", "run_experiment: eval_epoch without checkpoints", bl.run_experiment,
    { epochs = 2, eval_epoch = 1, save = false })
end

-- parse_args on its own
do
  local spec = { raise = true, prog = "t.lua", positional = { name = "titles" }, options = {
    { "epochs", type = "int", default = 5 }, { "lr", type = "number" }, { "sizes", type = "list", elem = "int" },
    { "quiet", type = "flag" }, { "pad", default = "longest", choices = { "longest", "max_length" } } } }
  local a = bl.parse_args({ "--epochs", "3", "--lr=2e-5", "--sizes", "3,16", "--quiet", "x", "y" }, spec)
  T.eq(a.epochs, 3, "parse_args: int")
  T.eq(a.lr, 2e-5, "parse_args: --name=value")
  T.same(a.sizes, { 3, 16 }, "parse_args: list")
  T.eq(a.quiet, true, "parse_args: flag")
  T.eq(a.pad, "longest", "parse_args: default")
  local r = bl.parse_args({ "--grid", "a=1", "--grid=b=2" }, { raise = true, options = { { "grid", repeated = true } } })
  T.same(r.grid, { "a=1", "b=2" }, "parse_args: a repeated option keeps every value in order")
  T.same(a.titles, { "x", "y" }, "parse_args: positional")
  local none, help = bl.parse_args({ "--help" }, spec)
  T.check(none == nil and help:find("usage: bertlab t.lua", 1, true) ~= nil, "parse_args: --help returns the usage")
  T.checkerror("t.lua: unknown option '%-%-foo'", "parse_args: unknown option", bl.parse_args, { "--foo" }, spec)
  T.checkerror("expects an integer, got 'x'", "parse_args: bad int", bl.parse_args, { "--epochs", "x" }, spec)
  T.checkerror("needs a value", "parse_args: missing value", bl.parse_args, { "--lr" }, spec)
  T.checkerror("takes no value", "parse_args: flag with value", bl.parse_args, { "--quiet=1" }, spec)
  T.eq(bl.json_encode({ a = { 1, 2 }, b = "q\"\n", c = 0.5, d = true }), '{"a":[1,2],"b":"q\\"\\n","c":0.5,"d":true}', "json_encode")
  T.eq(bl.results_csv({ { epoch = 1, train_loss = 0.5, val_loss = 0.25, val_f1 = 0.75, val_accuracy = 0.8, lr = 1e-5, seconds = 2.5 } }),
    "epoch,train_loss,val_loss,val_f1,val_accuracy,lr,seconds,checkpoint\n1,0.5,0.25,0.75,0.8,1e-05,2.5,\n", "results_csv")
end

-- (5) the CPU kernels share work between threads without changing a bit: 4 training steps (dropout
-- on, batch 3 of real-length rows, clipping inside the step) at 1 and at 2 threads give the same
-- weights, byte for byte (the skinny forward, the split sgemm, the attention heads, AdamW's rows);
-- and with batches of 16 rows (250-330 tokens a step: past SKINNY_TILES_MAX_N, where dx and dW may
-- go to OpenBLAS's own threading, kernels/cpu/skinny.c)
if bl.file_exists(MODEL .. "/model.safetensors") then
  local function train4(threads, B)
    B = B or 3
    bl.set_num_threads(threads)
    bl.seed(5)
    local m = bl.BertForSequenceClassification.from_pretrained(MODEL, { num_labels = 5, quiet = true })
    local opt = bl.AdamW(m:parameters(), { lr = 1e-4, eps = 1e-8 })
    m:train()
    for s = 1, 4 do
      local ids, mask = {}, {}
      for b = 1, B do
        local n = B == 3 and 9 + 5 * b + s or 9 + (5 * b + s) % 14
        ids[b], mask[b] = { 101 }, { 1 }
        for t = 2, 24 do ids[b][t] = t < n and 1000 + (37 * t + 11 * b + 3 * s) % 20000 or (t == n and 102 or 0); mask[b][t] = t <= n and 1 or 0 end
      end
      local labels = {}
      for b = 1, B do labels[b] = (s + ({ 0, 1, 3 })[(b - 1) % 3 + 1] + 2 * ((b - 1) // 3)) % 5 end
      m:zero_grad()
      local out = m:forward({ input_ids = bl.tensor(ids, "int64"), attention_mask = bl.tensor(mask, "int64"),
                              labels = bl.tensor(labels, "int64") })
      out.loss:backward()
      opt:clip_grad_norm(1.0)
      opt:step()
    end
    local dir = os.tmpname()
    os.remove(dir)
    m:save(dir)
    local f = assert(io.open(dir .. "/model.safetensors", "rb"))
    local bytes = f:read("a")
    f:close()
    os.execute("rm -rf '" .. dir .. "'")
    return bytes
  end
  local before = bl.get_num_threads()
  local one, two = train4(1), train4(2)
  bl.set_num_threads(before)
  T.check(#one > 1e6 and one == two, "4 training steps of the default model: 1 and 2 threads give the same weights byte for byte")
  bl.set_num_threads(1)
  local one16 = train4(1, 16)
  local two16 = train4(2, 16)
  bl.set_num_threads(before)
  T.check(#one16 > 1e6 and one16 == two16 and one16 ~= one,
          "4 training steps at batch 16 (past the tiles' token limit): 1 and 2 threads give the same weights byte for byte")
else
  T.skip("1- vs 2-thread training check", "the default model is not downloaded (make model)")
end

T.done()
