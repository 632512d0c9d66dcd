-- test_resume.lua: training states and exact resume on the tiny fixture model (tests/fixtures/model/
-- tiny, vocabulary tests/fixtures/owndata/vocab.txt) and a generated 3-class CSV: bl.save_state /
-- bl.load_state (round trip, and clear errors for a missing file, bad JSON, another model's shape);
-- runs stopped after epoch 2 and mid-epoch 3 at an odd step, each resumed, give model.safetensors
-- bytes, losses and F1 identical to the uninterrupted run (and a resume with a wrong dropout
-- position does not: the comparison can fail); SIGINT/SIGTERM save a state and stop with 130/143,
-- a second signal exits at once; NaN faults stop naming epoch and step and keep the last state
-- untouched (or skip); NaN weights are never saved as epoch_N; evaluate.lua / predict.lua refuse NaN
-- checkpoints and non-matching ones; a full disk or a read-only folder during a save (tmpfs) leaves
-- the last good checkpoint and state intact.
local T = require("testlib")
local bl = require("bertlab")

local TINY = "tests/fixtures/model/tiny"
if not bl.file_exists(TINY .. "/model.safetensors") then
  T.skip("training states", TINY .. " is missing")
  T.done()
end
local BIN = T.BIN

local run = T.sh
local slurp = T.slurp
local function q(s) return bl.shell_quote(s) end

local dir = os.tmpname()
os.remove(dir)
bl.mkdir_p(dir .. "/model")
os.execute(("cp %s/config.json %s/model.safetensors tests/fixtures/owndata/vocab.txt %s/model/"):format(TINY, TINY, q(dir)))
local MODEL, DATA = dir .. "/model", dir .. "/reviews.csv"
do -- 90 rows, 3 classes: words of the class among filler words
  local pools = {
    pos = { "great", "good", "excellent", "superb", "happy", "love", "wonderful", "fine", "nice", "best" },
    neg = { "bad", "awful", "terrible", "poor", "sad", "hate", "worst", "boring", "ugly", "weak" },
    neu = { "table", "chair", "window", "door", "paper", "street", "river", "stone", "cloud", "green" } }
  local filler = { "the", "a", "of", "and", "it", "is", "was", "this", "movie", "film", "book", "very" }
  math.randomseed(5)
  local lines = { "review,sentiment" }
  for i = 1, 90 do
    local c = ({ "neu", "pos", "neg" })[(i - 1) % 3 + 1]
    local w = {}
    for k = 1, 8 do w[k] = (k % 2 == 0) and pools[c][math.random(#pools[c])] or filler[math.random(#filler)] end
    lines[#lines + 1] = table.concat(w, " ") .. "," .. c
  end
  bl.write_file(DATA, table.concat(lines, "\n") .. "\n")
end

-- 76 training rows in batches of 8: 10 steps an epoch, 30 in all
local BASE = { model = MODEL, data = DATA, text_column = "review", label_column = "sentiment", max_length = 32,
               keep_state = true, epochs = 3, lr = 3e-3, batch_size = 8, progress = false, per_class = false, log = function() end }
local function opts(t)
  local o = {}
  for k, v in pairs(BASE) do o[k] = v end
  for k, v in pairs(t or {}) do o[k] = v end
  return o
end
local function resume(out, extra)
  local o = { resume = out, progress = false, per_class = false, keep_state = true, log = function() end }
  for k, v in pairs(extra or {}) do o[k] = v end
  return bl.run_experiment(o)
end
local function status(out) return (bl.read_json(out .. "/run.json") or {}).status end

-- the uninterrupted run
local A = bl.run_experiment(opts({ out = dir .. "/a" }))
local ref = slurp(dir .. "/a/epoch_3/model.safetensors")
T.check(ref and #ref > 90000, "uninterrupted run: epoch_3/model.safetensors written")
T.check(bl.file_exists(dir .. "/a/state/state.json") and bl.file_exists(dir .. "/a/state/model/model.safetensors"),
  "a run keeps its training state in out/state (state.json, model/)")
local st_a = bl.read_json(dir .. "/a/state/state.json")
T.same({ st_a.epoch, st_a.step, st_a.format, #st_a.results }, { 3, 30, "bertlab-state/1", 3 },
  "state.json after the run: 3 epochs, 30 steps, the 3 result rows")
T.eq(slurp(dir .. "/a/state/model/model.safetensors"), ref, "the state's model folder holds the final weights")

-- the end of an epoch's state links the files of the checkpoint just saved from the same weights
-- (no second copy written); a state without such a checkpoint writes its own
local function stat(path) -- "inode links", or nil
  local h = io.popen("stat -c '%i %h' " .. q(path) .. " 2>/dev/null")
  local s = h:read("*l")
  h:close()
  return s
end
local function inode(path) return (stat(path) or ""):match("^(%d+)") end
local function nlinks(path) return tonumber((stat(path) or ""):match(" (%d+)$")) end
do
  local same = true
  for _, f in ipairs({ "model.safetensors", "config.json", "vocab.txt" }) do
    local a, b = inode(dir .. "/a/epoch_3/" .. f), inode(dir .. "/a/state/model/" .. f)
    same = same and a ~= nil and a == b
  end
  T.check(same, "the last epoch's state links epoch_3's model files (the same inodes), no second copy",
    stat(dir .. "/a/epoch_3/model.safetensors") .. " / " .. tostring(stat(dir .. "/a/state/model/model.safetensors")))
end

local function compare(R, out, what)
  local same_w = slurp(out .. "/epoch_3/model.safetensors") == ref
  T.check(same_w, what .. ": epoch_3/model.safetensors identical to the uninterrupted run's (bytes)")
  T.check(slurp(out .. "/state/optimizer.safetensors") == slurp(dir .. "/a/state/optimizer.safetensors"),
    what .. ": AdamW moments identical (optimizer.safetensors bytes)")
  local diffs = {}
  for i = 1, 3 do
    for _, k in ipairs({ "train_loss", "val_loss", "val_f1", "val_accuracy", "lr" }) do
      if R.epochs[i][k] ~= A.epochs[i][k] then diffs[#diffs + 1] = ("epoch %d %s: %s vs %s"):format(i, k,
        tostring(R.epochs[i][k]), tostring(A.epochs[i][k])) end
    end
  end
  T.check(#diffs == 0, what .. ": losses, F1, accuracy and lr of every epoch identical (==)", table.concat(diffs, "; "))
  print(("# %s: weights %s, epoch 3 train loss %.17g vs %.17g, F1 %.17g vs %.17g"):format(what,
    same_w and "identical" or "DIFFERENT", R.epochs[3].train_loss, A.epochs[3].train_loss, R.epochs[3].val_f1, A.epochs[3].val_f1))
  local jl = slurp(out .. "/results.jsonl") or ""
  T.eq(select(2, jl:gsub("\n", "")), 3, what .. ": results.jsonl has one line per epoch")
  T.eq(status(out), "done", what .. ": run.json status done after the resume")
end

-- stopped after epoch 2 (an error after its state was saved), resumed
local ok, err = pcall(bl.run_experiment, opts({ out = dir .. "/b", on_epoch = function(r) if r.epoch == 2 then error("stop here") end end }))
T.check(not ok and tostring(err):find("stop here"), "run b stops after epoch 2")
local st_b = bl.read_json(dir .. "/b/state/state.json")
T.same({ st_b.epoch, st_b.step, st_b.loader }, { 2, 20, nil }, "run b's state: 2 epochs, step 20, no epoch under way")
compare(resume(dir .. "/b"), dir .. "/b", "resumed after epoch 2")

-- stopped mid-epoch 3 at step 25, the last state at step 23 (save_every 23: epoch 3, batch 3 of 10)
ok, err = pcall(bl.run_experiment, opts({ out = dir .. "/c", save_every = 23,
  on_step = function(_, _, step) if step == 25 then error("killed at step 25") end end }))
T.check(not ok and tostring(err):find("killed at step 25"), "run c stops at step 25")
local st_c = bl.read_json(dir .. "/c/state/state.json")
T.same({ st_c.epoch, st_c.step, st_c.loader and st_c.loader.batch, st_c.loader and #st_c.loader.order },
  { 2, 23, 3, 76 }, "run c's state: step 23, epoch 3 under way at batch 3, its order of 76 rows")
T.check(not bl.is_dir(dir .. "/c/epoch_3"), "run c has no epoch_3 yet")
T.eq(nlinks(dir .. "/c/state/model/model.safetensors"), 1, "a mid-epoch state writes its own weights (no checkpoint of them to link)")
compare(resume(dir .. "/c"), dir .. "/c", "resumed mid-epoch 3 (step 23)")

-- the comparison can fail: the same stop, resumed with the dropout stream at the wrong position
pcall(bl.run_experiment, opts({ out = dir .. "/d", save_every = 23,
  on_step = function(_, _, step) if step == 25 then error("stop") end end }))
local sj = slurp(dir .. "/d/state/state.json")
bl.write_file(dir .. "/d/state/state.json", (sj:gsub('"dropout":%d+', '"dropout":0')))
resume(dir .. "/d")
T.check(slurp(dir .. "/d/epoch_3/model.safetensors") ~= ref,
  "control: a resume that restores the dropout position wrongly gives other weights")

-- stopped after the last epoch's state (before run.json says done): the resume only finishes
ok = pcall(bl.run_experiment, opts({ out = dir .. "/f", on_epoch = function(r) if r.epoch == 3 then error("stop") end end }))
local F = resume(dir .. "/f")
T.check(not ok and F.final.f1 == A.final.f1 and F.best_epoch == A.best_epoch and status(dir .. "/f") == "done",
  "resume after the last epoch's state: the final evaluation only, the same best epoch and F1")

-- killed after the last save's second rename, before it removed the previous state (.state.old):
-- the resume takes the newer state and removes the older one, though no save follows
ok = pcall(bl.run_experiment, opts({ out = dir .. "/f2", on_epoch = function(r) if r.epoch == 3 then error("stop") end end }))
os.execute(("cp -r %s/f2/state %s/f2/.state.old"):format(q(dir), q(dir)))
local notes2 = {}
local F2 = resume(dir .. "/f2", { log = function(s) notes2[#notes2 + 1] = s end })
T.check(not ok and F2.final.f1 == A.final.f1 and not bl.is_dir(dir .. "/f2/.state.old")
  and table.concat(notes2, "\n"):find("removing .*/f2/%.state%.old %(the state before the last save%)"),
  "resume with a leftover .state.old next to the newer state: removed (and noted), the same final F1",
  table.concat(notes2, "\n"))

-- save="best": the resumed run keeps the same single best checkpoint
local function folders(out)
  local l = {}
  for e = 1, 3 do if bl.is_dir(("%s/epoch_%d"):format(out, e)) then l[#l + 1] = e end end
  return table.concat(l, ",")
end
local G = bl.run_experiment(opts({ out = dir .. "/g", save = "best" }))
ok = pcall(bl.run_experiment, opts({ out = dir .. "/h", save = "best", on_epoch = function(r) if r.epoch == 2 then error("stop") end end }))
local H = resume(dir .. "/h")
T.check(not ok and folders(dir .. "/h") == folders(dir .. "/g") and H.best_epoch == G.best_epoch
  and slurp(("%s/h/epoch_%d/model.safetensors"):format(dir, H.best_epoch)) == slurp(("%s/g/epoch_%d/model.safetensors"):format(dir, G.best_epoch)),
  "save=\"best\" resumed after epoch 2: the same best checkpoint, byte for byte, and no other", folders(dir .. "/h") .. " vs " .. folders(dir .. "/g"))

do -- save="best": the state links the checkpoint only when its epoch saved one (the best so far)
  local best = G.best_epoch
  local linked = inode(dir .. "/g/state/model/model.safetensors") == inode(("%s/g/epoch_%d/model.safetensors"):format(dir, best))
  T.check(best == 3 and linked or best < 3 and nlinks(dir .. "/g/state/model/model.safetensors") == 1,
    "save=\"best\": the last epoch's state links epoch_3 when it is the best, else holds its own weights file",
    "best epoch " .. best .. (linked and ", linked" or ", not linked"))
end

-- a linked state outlives its checkpoint's folder; model_from is checked, and a folder without a
-- model in it means the weights are written
do
  local out = dir .. "/l"
  bl.run_experiment(opts({ out = out, epochs = 1 }))
  local sha = bl.sha256_file(out .. "/epoch_1/model.safetensors")
  bl.remove_tree(out .. "/epoch_1")
  local m = bl.BertForSequenceClassification.from_pretrained(out .. "/state/model", { quiet = true, strict = true })
  T.check(bl.sha256_file(out .. "/state/model/model.safetensors") == sha and bl.weights_finite(m),
    "the state's linked weights stay (same bytes, loadable) after epoch_1's folder is removed")
  local opt = bl.AdamW(m:parameters(), { lr = 1e-3 })
  T.checkerror("save_state: 'model_from' must be a checkpoint folder path, got number",
    "save_state: a model_from that is not a path is an error naming it",
    bl.save_state, dir .. "/l2", { model = m, optimizer = opt, model_from = 5 })
  bl.save_state(dir .. "/l3", { model = m, optimizer = opt, model_from = dir .. "/no/such/folder" })
  T.check(nlinks(dir .. "/l3/model/model.safetensors") == 1 and bl.sha256_file(dir .. "/l3/model/model.safetensors") == sha,
    "save_state with a model_from that holds no model writes the weights itself (the same bytes)")
  T.checkerror("save_state: unknown option 'model_frm'", "save_state: a misspelt option is an error naming it",
    bl.save_state, dir .. "/l4", { model = m, optimizer = opt, model_frm = out })
end

-- without keep_state the state goes once the run is done
bl.run_experiment(opts({ out = dir .. "/nokeep", keep_state = false, epochs = 1 }))
T.check(not bl.is_dir(dir .. "/nokeep/state") and bl.is_dir(dir .. "/nokeep/epoch_1") and status(dir .. "/nokeep") == "done",
  "a finished run removes its training state (keep_state=false), keeps its checkpoints")

-- a finished run is not resumed; an existing run is refused up front with the way to resume it
T.checkerror("is finished %(run%.json status done%); nothing to resume", "resume of a finished run is refused", resume, dir .. "/a")
T.checkerror("already holds a run .*continue it with %-%-resume", "a new run into an existing --out is refused before training",
  bl.run_experiment, opts({ out = dir .. "/c" }))

-- killed after epoch_3 was saved but before its state: the resume removes it and makes it again
ok = pcall(bl.run_experiment, opts({ out = dir .. "/e", save_every = 29,
  on_step = function(_, _, step) if step == 30 then error("stop") end end }))
bl.mkdir_p(dir .. "/e/epoch_3")
os.execute(("cp %s/a/epoch_3/* %s/e/epoch_3/ && mkdir -p %s/e/.epoch_3.partial %s/e/.state.partial"):format(q(dir), q(dir), q(dir), q(dir)))
local notes = {}
local E = resume(dir .. "/e", { log = function(s) notes[#notes + 1] = s end })
local nt = table.concat(notes, "\n")
T.check(nt:find("removing .*/e/epoch_3 %(saved after the last training state") and nt:find("removing .*%.epoch_3%.partial")
  and nt:find("removing .*%.state%.partial"), "resume notes the stale epoch_3, .epoch_3.partial and .state.partial it removes", nt)
T.check(E.epochs[3].val_f1 == A.epochs[3].val_f1 and slurp(dir .. "/e/epoch_3/model.safetensors") == ref
  and not bl.is_dir(dir .. "/e/.epoch_3.partial"), "resume after a kill between epoch_3 and its state: epoch_3 identical")

-- bl.save_state / bl.load_state directly, and their errors
do
  local m = bl.BertForSequenceClassification.from_pretrained(MODEL, { quiet = true })
  local opt = bl.AdamW(m:parameters(), { lr = 1e-3 })
  local sched = bl.get_linear_schedule_with_warmup(opt, 0, 100)
  local S = dir .. "/api/state"
  bl.mkdir_p(dir .. "/api")
  local ds = bl.TensorDataset(bl.tensor({ { 2, 10, 3 }, { 2, 11, 3 }, { 2, 12, 3 } }), bl.tensor({ 0, 1, 2 }))
  local loader = bl.DataLoader(ds, { batch_size = 1, sampler = "random" })
  local it = loader:iter()
  local b = it()
  m:train()
  local o = m:forward({ input_ids = b[1], labels = b[2] })
  o.loss:backward()
  opt:step(); sched:step()
  local rng = bl.rng_state()
  bl.save_state(S, { model = m, optimizer = opt, scheduler = sched, loader = loader, epoch = 0, step = 1,
    results = {}, extra = { note = "x" } })
  local st = bl.read_json(S .. "/state.json")
  T.same({ st.loader.batch, #st.loader.order, st.optimizer.step, st.scheduler.last_epoch, st.rng.dropout, st.extra.note },
    { 1, 3, 1, 1, rng.dropout, "x" }, "save_state: loader position and order, optimizer and scheduler steps, RNG, extra")
  T.check(not bl.is_dir(dir .. "/api/.state.partial") and not bl.is_dir(dir .. "/api/.state.old"), "save_state leaves no temporary folder")
  local m2 = bl.BertForSequenceClassification.from_pretrained(MODEL, { quiet = true })
  local opt2 = bl.AdamW(m2:parameters(), { lr = 1e-3 })
  local sched2 = bl.get_linear_schedule_with_warmup(opt2, 0, 100)
  bl.seed(99)
  local e, s, res, st2 = bl.load_state(S, { model = m2, optimizer = opt2, scheduler = sched2, loader = loader })
  T.same({ e, s, #res, opt2.num_steps, sched2.last_epoch, bl.rng_state().dropout, st2.loader.batch },
    { 0, 1, 0, 1, 1, rng.dropout, 1 }, "load_state: epoch, step, results, optimizer/scheduler steps, RNG restored")
  T.eq(opt2.lr, opt.lr, "load_state: the optimizer's lr restored")
  local sd1, sd2 = opt:state_dict(), opt2:state_dict()
  T.check(bl.sha256(table.concat(sd1.exp_avg_sq:totable(), ",")) == bl.sha256(table.concat(sd2.exp_avg_sq:totable(), ",")),
    "load_state: the AdamW moments restored")
  -- opt:save_moments writes the bytes save_safetensors writes from state_dict's copies: from the
  -- moments where they lie, piece by piece in list order (any order, a list optimizer's own state)
  local function via_copies(o, path)
    local c = o:state_dict()
    bl.save_safetensors(path, { exp_avg = c.exp_avg, exp_avg_sq = c.exp_avg_sq }, { format = "f" })
    return slurp(path)
  end
  local A1, A2 = dir .. "/api/m1.safetensors", dir .. "/api/m2.safetensors"
  opt:save_moments(A1, { format = "f" })
  local direct = slurp(A1)
  T.check(direct == via_copies(opt, A2) and #direct > 8 * m:num_parameters(),
    "save_moments (the model's moments where they lie) writes state_dict's bytes", #direct)
  T.check(slurp(S .. "/optimizer.safetensors") == (function() opt:save_moments(A1, { format = "bertlab-state/1" }); return slurp(A1) end)(),
    "save_state's optimizer file is save_moments' file")
  local rev = {}
  for i, p in ipairs(m:parameters()) do rev[#m:parameters() + 1 - i] = p end
  local optr = bl.AdamW(rev, { lr = 1e-3 })
  m:zero_grad()
  m:forward({ input_ids = b[1], labels = b[2] }).loss:backward()
  optr:step()
  optr:save_moments(A1, { format = "f" })
  local gathered = slurp(A1)
  T.check(gathered == via_copies(optr, A2) and gathered ~= direct, "save_moments (a list in another order) writes state_dict's bytes")
  local x = bl.parameter(bl.tensor({ 1.0, 2.0, 3.0 }), bl.tensor({ 0.5, -1.0, 2.0 }))
  local optl = bl.AdamW({ x, bl.parameter(bl.tensor({ 4.0 }), bl.tensor({ 3.0 })) }, { lr = 0.1 })
  optl:step()
  optl:save_moments(A1)
  local c = optl:state_dict()
  bl.save_safetensors(A2, { exp_avg = c.exp_avg, exp_avg_sq = c.exp_avg_sq })
  T.check(slurp(A1) == slurp(A2), "save_moments (a list optimizer's own state, not in address order) writes state_dict's bytes")
  local y = bl.parameter(bl.tensor({ 1.0, 2.0, 3.0, 4.0 }), bl.tensor({ 0.5, -1.0, 2.0, 1.0 }))
  local opty = bl.AdamW({ y }, { lr = 0.1 })
  opty:step()
  opty:save_moments(A1)
  c = opty:state_dict()
  bl.save_safetensors(A2, { exp_avg = c.exp_avg, exp_avg_sq = c.exp_avg_sq })
  T.check(slurp(A1) == slurp(A2), "save_moments (a list optimizer's own state in place) writes state_dict's bytes")
  local fresh = bl.AdamW(m2:parameters(), { lr = 1e-3 })
  fresh:save_moments(A1)
  local z = bl.load_safetensors(A1)
  local zeros = bl.zeros({ m2:num_parameters() })
  T.check(z.exp_avg:numel() == m2:num_parameters() and slurp(A1) == (function()
      bl.save_safetensors(A2, { exp_avg = zeros, exp_avg_sq = zeros }); return slurp(A2) end)(),
    "save_moments before any step: zero moments of every parameter")
  local bare = opt:state_dict({ moments = false })
  T.check(bare.exp_avg == nil and bare.exp_avg_sq == nil and bare.step == opt:state_dict().step and bare.lr == opt.lr,
    "state_dict{moments=false}: the hyper-parameters and step, no moment tensors")
  T.checkerror("unknown option 'moment'", "state_dict: a misspelt option is named", opt.state_dict, opt, { moment = false })
  T.checkerror("option 'moments' must be a boolean", "state_dict: a non-boolean moments is refused", opt.state_dict, opt, { moments = "no" })
  T.checkerror("bad argument #3 to 'AdamW:save_moments' %(metadata 'k' must be a string", "save_moments: bad metadata is named",
    opt.save_moments, opt, A1, { k = {} })
  T.checkerror("/no/such/dir/x%.safetensors", "save_moments: an unwritable path is named", opt.save_moments, opt, "/no/such/dir/x.safetensors")
  T.checkerror("bad argument #2", "save_moments: a missing path is an error", opt.save_moments, opt)
  -- replacing a state keeps only the new one
  bl.save_state(S, { model = m, optimizer = opt, scheduler = sched, epoch = 1, step = 3 })
  T.eq(bl.read_json(S .. "/state.json").step, 3, "save_state over an older state replaces it")
  -- errors name the file
  local function objs() return { model = m2, optimizer = opt2, scheduler = sched2 } end
  local bad = dir .. "/api/bad"
  os.execute(("cp -r %s %s"):format(q(S), q(bad)))
  os.remove(bad .. "/optimizer.safetensors")
  T.checkerror("load_state: .*/bad/optimizer%.safetensors is missing", "load_state: a missing file is named", bl.load_state, bad, objs())
  os.execute(("rm -rf %s && cp -r %s %s"):format(q(bad), q(S), q(bad)))
  bl.write_file(bad .. "/state.json", '{"format": "bertlab-state/1", "epoch": 1,,}')
  T.checkerror("load_state: .*/bad/state%.json: expected a string key at line 1", "load_state: corrupt JSON names state.json and the line", bl.load_state, bad, objs())
  bl.write_file(bad .. "/state.json", '{"format": "something"}')
  T.checkerror("state%.json: not a bertlab training state", "load_state: another format is refused", bl.load_state, bad, objs())
  local nohead = dir .. "/api/nohead"
  bl.mkdir_p(nohead)
  os.execute(("cp %s/config.json %s/"):format(q(MODEL), q(nohead)))
  local w = bl.load_safetensors(MODEL .. "/model.safetensors")
  w["classifier.weight"], w["classifier.bias"] = nil, nil
  bl.save_safetensors(nohead .. "/model.safetensors", w)
  local m5 = bl.BertForSequenceClassification.from_pretrained(nohead, { quiet = true, num_labels = 5 })
  local opt5 = bl.AdamW(m5:parameters(), { lr = 1e-3 })
  T.checkerror("the state's model has %d+ parameters, this model %d+", "load_state: a model of another shape is refused",
    bl.load_state, S, { model = m5, optimizer = opt5 })
  os.execute(("rm -rf %s && cp -r %s %s"):format(q(bad), q(S), q(bad)))
  local f = io.open(bad .. "/model/model.safetensors", "r+b"); f:write("\255\255\255\255"); f:close()
  T.checkerror("load_state: .*model%.safetensors", "load_state: a corrupt model.safetensors is named", bl.load_state, bad, objs())
end

-- signals: the first SIGINT/SIGTERM finishes the step, saves a state, stops with 130/143
local pid = tonumber((slurp("/proc/self/stat") or ""):match("^(%d+)"))
for _, sig in ipairs({ { "INT", 130, "SIGINT" }, { "TERM", 143, "SIGTERM" } }) do
  local out = dir .. "/sig" .. sig[1]
  local okk, e = pcall(bl.run_experiment, opts({ out = out, trap_signals = true,
    -- (io.popen, not os.execute: system() ignores SIGINT in the caller while its child runs)
    on_step = function(_, _, step) if step == 13 then io.popen(("kill -%s %d"):format(sig[1], pid)):close() end end }))
  T.check(not okk and bl.is_training_stop(e) and e.exit == sig[2] and e.signal == sig[3],
    ("%s during training: a stop with exit status %d"):format(sig[3], sig[2]), tostring(e))
  T.check(tostring(e):find("Stopped by " .. sig[3] .. " in epoch 2 after step 13 %(batch 3 of 10%)")
    and tostring(e):find("Continue with: bin/bertlab experiments/conference%.lua %-%-resume"),
    sig[3] .. ": the message names the step and prints the --resume command", tostring(e))
  local s = bl.read_json(out .. "/state/state.json")
  T.same({ s.step, s.loader and s.loader.batch, status(out) }, { 13, 3, "stopped" }, sig[3] .. ": state at step 13, run.json status stopped")
  compare(resume(out), out, "resumed after " .. sig[3] .. " at step 13")
end
do -- a second signal exits at once (status 130), running no more Lua
  local script = dir .. "/twice.lua"
  bl.write_file(script, [[
local bl = require("bertlab")
local pid = tonumber(io.open("/proc/self/stat"):read("a"):match("^(%d+)"))
bl.trap_signals()
io.popen("kill -INT " .. pid):close()
print("flag " .. tostring(bl.signal_pending()))
io.stdout:flush()
io.popen("kill -INT " .. pid):close()
print("not reached")
]])
  local rc, out = run(BIN .. " " .. q(script))
  T.check(rc == 130 and out:find("flag SIGINT") and not out:find("not reached"),
    "a second SIGINT exits at once with status 130", ("rc %s: %s"):format(tostring(rc), out))
end

-- NaN faults: weights made NaN by loading a NaN classifier bias inside a step's hook
local NAN = dir .. "/nan.safetensors"
bl.save_safetensors(NAN, { ["classifier.bias"] = bl.full({ 3 }, 0 / 0) })
local function nan_at(step) return function(m, _, s) if s == step then m:load(NAN, { strict = false }) end end end
do
  local out = dir .. "/nan1"
  local okk, e = pcall(bl.run_experiment, opts({ out = out, on_step = nan_at(12) }))
  T.check(not okk and tostring(e):find("training stopped: the loss is %-?nan at epoch 2, step 13 %(batch 3 of 10%); this step was not applied; the last good state is .*/nan1/state %(untouched%)"),
    "a NaN loss stops training naming the epoch and step and the untouched last state", tostring(e))
  local s = bl.read_json(out .. "/state/state.json")
  T.same({ s.epoch, s.step, bl.is_dir(out .. "/epoch_2"), status(out) }, { 1, 10, false, "failed" },
    "after the NaN stop: the state of epoch 1 is left, no epoch_2, run.json failed")
  local m = bl.BertForSequenceClassification.from_pretrained(out .. "/state/model", { quiet = true, strict = true })
  T.check(bl.weights_finite(m), "the last good state's weights are finite")
  local rc, o = run(("%s experiments/evaluate.lua --checkpoint %s/epoch_1 --data %s --text-column review --label-column sentiment --quiet"):format(BIN, q(out), q(DATA)))
  T.eq(rc, 0, "the last good checkpoint (epoch_1) evaluates")
end
do
  local out = dir .. "/nan2"
  local okk, e = pcall(bl.run_experiment, opts({ out = out, on_step = nan_at(20) }))
  T.check(not okk and tostring(e):find("the weights hold NaN or Inf %(sum of squares %-?nan%) after epoch 2's last step %(step 20%); epoch_2 was not saved"),
    "NaN weights after an epoch's last step: stopped, epoch_2 not saved", tostring(e))
  T.check(not bl.is_dir(out .. "/epoch_2") and not bl.is_dir(out .. "/.epoch_2.partial") and bl.read_json(out .. "/state/state.json").step == 10,
    "no epoch_2 (nor a partial one); the state of epoch 1 untouched")
  T.checkerror("save_checkpoint: the model's weights hold NaN or Inf", "bl.save_checkpoint refuses NaN weights", function()
    local m = bl.BertForSequenceClassification.from_pretrained(MODEL, { quiet = true })
    m:load(NAN, { strict = false })
    bl.save_checkpoint(m, out .. "/manual")
  end)
end
do -- skip: a transient NaN is skipped and counted (the hook restores good weights at the skip)
  local out = dir .. "/nan3"
  local good = dir .. "/good.safetensors"
  local model_ref
  local R = bl.run_experiment(opts({ out = out, on_nan = "skip", max_nan_skips = 2,
    on_step = function(m, e, s) model_ref = m; if s == 4 then m:save(good) end; nan_at(12)(m, e, s) end,
    log = function(s) if s:find("^skipped") then model_ref:load(good) end end }))
  T.same({ R.epochs[2].nan_skips, #R.epochs, bl.read_json(out .. "/state/state.json").step }, { 1, 3, 29 },
    "--on-nan skip: one step skipped and counted in epoch 2, the run ends (29 steps)")
  local okk, e = pcall(bl.run_experiment, opts({ out = dir .. "/nan4", on_nan = "skip", max_nan_skips = 2, on_step = nan_at(12) }))
  T.check(not okk and tostring(e):find("3 NaN/Inf steps skipped %(more than %-%-max%-nan%-skips 2%)"),
    "--on-nan skip stops after more than --max-nan-skips", tostring(e))
end

-- evaluate.lua / predict.lua: NaN weights and checkpoints that do not match are refused
do
  local ck = dir .. "/a/epoch_1"
  local ts = bl.load_safetensors(ck .. "/model.safetensors")
  local function ckpt(name, tensors)
    local d = dir .. "/" .. name
    bl.mkdir_p(d)
    os.execute(("cp %s/config.json %s/vocab.txt %s/"):format(q(ck), q(ck), q(d)))
    bl.save_safetensors(d .. "/model.safetensors", tensors)
    return d
  end
  local function with(f)
    local t = {}
    for k, v in pairs(ts) do t[k] = v end
    f(t)
    return t
  end
  local cases = {
    { ckpt("ck_nan", with(function(t) t["classifier.bias"] = bl.full({ 3 }, 0 / 0) end)), "its weights hold NaN or Inf", "NaN weights" },
    { ckpt("ck_nohead", with(function(t) t["classifier.bias"], t["classifier.weight"] = nil, nil end)), "tensor 'classifier%.[a-z]+' is missing from the checkpoint", "no classifier head" },
    { ckpt("ck_extra", with(function(t) t["bert.encoder.layer.2.output.dense.bias"] = bl.zeros(32) end)), "not part of this model %(a different architecture, or extra layers%?%): 'bert%.encoder%.layer%.2", "an extra layer" },
    { ckpt("ck_missing", with(function(t) t["bert.encoder.layer.1.output.dense.bias"] = nil end)), "tensor 'bert%.encoder%.layer%.1%.output%.dense%.bias' is missing", "a missing layer tensor" },
  }
  for _, c in ipairs(cases) do
    local rc, o = run(("%s experiments/evaluate.lua --checkpoint %s --data %s --text-column review --label-column sentiment --quiet"):format(BIN, q(c[1]), q(DATA)))
    T.check(rc ~= 0 and o:find(c[2]), "evaluate.lua refuses a checkpoint with " .. c[3] .. " (exit " .. tostring(rc) .. ")", o)
    rc, o = run(("%s experiments/predict.lua --checkpoint %s 'great good film'"):format(BIN, q(c[1])))
    T.check(rc ~= 0 and o:find(c[2]), "predict.lua refuses a checkpoint with " .. c[3], o)
  end
  local rc, o = run(("%s experiments/evaluate.lua --checkpoint %s --data %s --text-column review --label-column sentiment --quiet"):format(BIN, q(MODEL), q(DATA)))
  T.eq(rc, 0, "evaluate.lua still loads a complete checkpoint (the fixture)")
  if rc ~= 0 then print("# " .. o) end
end

-- a full disk and a read-only folder during a save: an error, the last good checkpoint and state intact
do
  local mnt = dir .. "/mnt"
  bl.mkdir_p(mnt)
  if not os.execute(("mount -t tmpfs -o size=500k tmpfs %s 2>/dev/null"):format(q(mnt))) then
    T.skip("full disk during a save", "cannot mount a tmpfs here")
    T.skip("read-only folder during a save", "cannot mount a tmpfs here")
  else
    local okr, er = pcall(function()
      local out = mnt .. "/run"
      local okk, e = pcall(bl.run_experiment, opts({ out = out }))
      T.check(not okk and tostring(e):find("No space left on device"), "a full disk during a save is an error naming it", tostring(e))
      T.check(bl.file_exists(out .. "/epoch_1/model.safetensors") and not bl.is_dir(out .. "/.state.partial")
        and not bl.is_dir(out .. "/.epoch_2.partial"), "full disk: epoch_1 kept, no partial folder left")
      local m = bl.BertForSequenceClassification.from_pretrained(out .. "/epoch_1", { quiet = true, strict = true })
      T.check(bl.weights_finite(m), "full disk: epoch_1 still loads (strict)")
      local s = bl.read_json(out .. "/state/state.json")
      T.eq(s.step, 10, "full disk: the state of epoch 1 is intact")
      os.execute(("umount %s"):format(q(mnt)))
      os.execute(("mount -t tmpfs -o size=8m tmpfs %s"):format(q(mnt)))
      local okk2, e2 = pcall(bl.run_experiment, opts({ out = out,
        on_epoch = function(r) if r.epoch == 1 then os.execute(("mount -o remount,ro %s"):format(q(mnt))) end end }))
      T.check(not okk2 and tostring(e2):find("Read%-only file system"), "a read-only folder during a save is an error naming it", tostring(e2))
      T.check(bl.file_exists(out .. "/epoch_1/model.safetensors") and not bl.is_dir(out .. "/epoch_2")
        and bl.read_json(out .. "/state/state.json").step == 10, "read-only: epoch_1 and the state of epoch 1 intact, no epoch_2")
    end)
    os.execute(("umount %s 2>/dev/null"):format(q(mnt)))
    T.check(okr, "the tmpfs checks ran", tostring(er))
  end
end

os.execute("rm -rf " .. q(dir))
T.done()
