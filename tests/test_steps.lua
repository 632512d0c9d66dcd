-- test_steps.lua: the experiment in steps (bl.Experiment), as experiments/conference.lua spells it
-- out: a hand-written loop over exp:epochs() gives weights (bytes), losses and F1 identical to
-- bl.run_experiment, and conference.lua (which writes the steps itself) gives the same weights as
-- both; another seed gives other weights (so the comparison can fail); the steps refuse misuse
-- with messages that name the step. Tiny fixture model, a generated 3-class CSV.
local T = require("testlib")
local bl = require("bertlab")

local TINY = "tests/fixtures/model/tiny"
if not bl.file_exists(TINY .. "/model.safetensors") then
  T.skip("experiment steps", TINY .. " is missing")
  T.done()
end
local q = bl.shell_quote
local dir, MODEL, DATA = T.notes_fixture(60)
local BASE = { model = MODEL, data = DATA, text_column = "note", label_column = "kind", max_length = 16, epochs = 2,
               lr = 3e-3, batch_size = 6, seed = 5, progress = false, per_class = false, log = function() end }
local function opts(t)
  local o = {}
  for k, v in pairs(BASE) do o[k] = v end
  for k, v in pairs(t or {}) do o[k] = v end
  return o
end

local ref = bl.run_experiment(opts({ out = dir .. "/fn" }))
local w_fn = T.slurp(dir .. "/fn/epoch_2/model.safetensors")
T.check(w_fn and #w_fn > 10000, "run_experiment: epoch_2 saved")

-- the steps by hand, as conference.lua writes them
local exp = bl.Experiment(opts({ out = dir .. "/steps" }))
local o = exp.o
local res = exp:run(function()
  bl.seed(o.seed)
  local d = exp:load_data()
  T.check(bl.file_exists(dir .. "/steps/run.json"), "exp:load_data writes run.json")
  T.eq(#d.train.texts + #d.val.texts, 60, "exp:load_data: the split covers every row")
  local tok = bl.BertTokenizer.from_pretrained(o.model, { do_lower_case = true })
  local tl = bl.DataLoader(bl.encode_dataset(tok, d.train.texts, d.train.labels, o),
    { batch_size = o.batch_size, sampler = "random", pad = "longest", mask = 2 })
  local vl = bl.DataLoader(bl.encode_dataset(tok, d.val.texts, d.val.labels, o),
    { batch_size = o.val_batch_size, sampler = "sequential", pad = "longest", mask = 2 })
  local model = bl.BertForSequenceClassification.from_pretrained(o.model, { num_labels = #d.names, id2label = d.id2label, quiet = true })
  local opt = bl.AdamW(model:parameters(), { lr = o.lr, eps = o.eps })
  local sched = bl.get_linear_schedule_with_warmup(opt, 0, #tl * o.epochs)
  T.eq(exp:start({ model = model, optimizer = opt, scheduler = sched, train_loader = tl, val_loader = vl }), 1,
    "exp:start: a new run starts at epoch 1")
  local seen = {}
  for epoch in exp:epochs() do
    seen[#seen + 1] = epoch
    local loss, info = exp:train_epoch(epoch)
    exp:end_epoch(epoch, loss, bl.evaluate(model, vl, exp:eval_options()), info)
  end
  T.same(seen, { 1, 2 }, "exp:epochs() yields 1..epochs")
  local best = exp:best_epoch()
  model:load(exp:checkpoint(best))
  return exp:finish(bl.evaluate(model, vl), best)
end)
T.eq(T.slurp(dir .. "/steps/epoch_2/model.safetensors"), w_fn, "hand-written steps: epoch_2 weights identical to run_experiment's (bytes)")
for e = 1, 2 do
  T.eq(res.epochs[e].train_loss, ref.epochs[e].train_loss, ("hand-written steps: epoch %d training loss identical"):format(e))
  T.eq(res.epochs[e].val_f1, ref.epochs[e].val_f1, ("hand-written steps: epoch %d F1 identical"):format(e))
end
T.eq(res.best_epoch, ref.best_epoch, "hand-written steps: the same best epoch")
T.eq(res.final.f1, ref.final.f1, "hand-written steps: the reloaded checkpoint's F1 identical")
local rj = bl.read_json(dir .. "/steps/run.json")
T.eq(rj.status, "done", "exp:finish: run.json says done")
T.check(not bl.is_dir(dir .. "/steps/state"), "exp:finish: the training state is removed")

-- conference.lua spells out the same steps
local rc, outp = T.sh(("bin/bertlab experiments/conference.lua --model %s --data %s --text-column note --label-column kind --max-length 16 --epochs 2 --lr 3e-3 --batch-size 6 --seed 5 --quiet --out %s")
  :format(q(MODEL), q(DATA), q(dir .. "/cli")))
T.eq(rc, 0, "conference.lua on the steps: exit 0" .. (rc ~= 0 and (": " .. outp) or ""))
T.eq(T.slurp(dir .. "/cli/epoch_2/model.safetensors"), w_fn, "conference.lua: epoch_2 weights identical to run_experiment's (bytes)")
T.check(outp:find("Reloaded " .. dir .. "/cli/epoch_" .. ref.best_epoch, 1, true) ~= nil, "conference.lua reloads the best epoch's checkpoint")

-- the comparison can fail: another seed, other weights
bl.run_experiment(opts({ out = dir .. "/seed6", seed = 6 }))
T.check(T.slurp(dir .. "/seed6/epoch_2/model.safetensors") ~= w_fn, "another seed gives other weights (the comparison discriminates)")

-- misuse of the steps
T.checkerror("Experiment: unknown option 'batchsize'", "bl.Experiment: a misspelt option", bl.Experiment, { batchsize = 3 })
T.checkerror("Experiment: epochs must be a positive integer", "bl.Experiment: bad epochs", bl.Experiment, opts({ epochs = 0 }))
local e2 = bl.Experiment(opts({}))
T.checkerror("call exp:load_data%(%) first", "exp:start before exp:load_data", e2.start, e2, { model = 1, optimizer = 1, scheduler = 1, train_loader = {} })
T.checkerror("call exp:start{...} first", "exp:epochs before exp:start", e2.epochs, e2)
T.checkerror("Experiment:start: unknown option 'modle'", "exp:start: a misspelt part", e2.start, e2, { modle = 1 })
T.checkerror("Experiment:start: optimizer is missing", "exp:start: a missing part", e2.start, e2, { model = 1, scheduler = 1, train_loader = {} })
-- a failure inside exp:run is recorded in run.json
local e3 = bl.Experiment(opts({ out = dir .. "/fail" }))
local okf, errf = pcall(e3.run, e3, function() e3:load_data(); error("boom in the loop", 0) end)
T.check(not okf and tostring(errf):find("boom in the loop", 1, true), "exp:run: the error goes on")
local fj = bl.read_json(dir .. "/fail/run.json")
T.eq(fj.status, "failed", "exp:run: run.json records the failure")
T.check(tostring(fj.error):find("boom", 1, true) ~= nil, "exp:run: run.json holds the error's text")

os.execute("rm -rf " .. q(dir))
T.done()
