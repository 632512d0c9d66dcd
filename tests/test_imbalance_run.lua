-- test_imbalance_run.lua: class_weights and sampler="weighted" in whole runs on the tiny fixture
-- model (tests/fixtures/model/tiny) and an imbalanced 3-class CSV: "balanced" changes the training
-- loss but not the (unweighted) validation loss's meaning, the weighted sampler changes the order,
-- both are recorded in run.json, and a run stopped mid-epoch and resumed gives the uninterrupted
-- run's weights bit for bit (the weighted draws and the class weights come back from the state).
local T = require("testlib")
local bl = require("bertlab")

local TINY = "tests/fixtures/model/tiny"
if not bl.file_exists(TINY .. "/model.safetensors") then
  T.skip("imbalance runs", TINY .. " is missing")
  T.done()
end
local q = bl.shell_quote
local dir = os.tmpname()
os.remove(dir)
bl.mkdir_p(dir .. "/model")
os.execute(("cp %s/config.json %s/model.safetensors tests/fixtures/owndata/vocab.txt %s/model/"):format(TINY, TINY, q(dir)))
local DATA = dir .. "/reviews.csv"
do -- 80 rows, imbalanced: pos 48, neg 20, neu 12
  local pools = { pos = { "great", "good", "excellent", "happy", "love" }, neg = { "bad", "awful", "poor", "sad", "hate" },
                  neu = { "table", "chair", "window", "door", "paper" } }
  math.randomseed(3)
  local lines = { "review,sentiment" }
  for i = 1, 80 do
    local c = i % 20 < 12 and "pos" or (i % 20 < 17 and "neg" or "neu")
    local w = {}
    for k = 1, 6 do w[k] = (k % 2 == 0) and pools[c][math.random(#pools[c])] or "the" end
    lines[#lines + 1] = table.concat(w, " ") .. "," .. c
  end
  bl.write_file(DATA, table.concat(lines, "\n") .. "\n")
end
local function opts(t)
  local o = { model = dir .. "/model", data = DATA, text_column = "review", label_column = "sentiment", max_length = 16,
              epochs = 2, lr = 3e-3, batch_size = 8, progress = false, per_class = false, keep_state = true, log = function() end }
  for k, v in pairs(t or {}) do o[k] = v end
  return o
end

local P = bl.run_experiment(opts({ out = dir .. "/plain", save = "none" }))
local Wt = bl.run_experiment(opts({ out = dir .. "/w", class_weights = "balanced", sampler = "weighted" }))
T.check(P.epochs[1].train_loss ~= Wt.epochs[1].train_loss, "balanced weights and the weighted sampler change the training loss",
  ("%.7f vs %.7f"):format(P.epochs[1].train_loss, Wt.epochs[1].train_loss))
local rj = bl.read_json(dir .. "/w/run.json")
T.check(rj.options.class_weights == "balanced" and rj.options.sampler == "weighted", "run.json records class_weights and sampler")
-- the logged weights are compute_class_weight over the training labels
local logged
bl.run_experiment(opts({ epochs = 1, class_weights = "1,2,0.5", log = function(s) logged = logged or s end }))
T.eq(logged, "class weights: pos 1, neg 2, neu 0.5; sampler: random", "explicit class weights: logged by class name")

-- stopped mid-epoch 2 (68 training rows: 9 steps an epoch; a state at step 11), resumed
local ok, err = pcall(bl.run_experiment, opts({ out = dir .. "/r", class_weights = "balanced", sampler = "weighted", save_every = 11,
  on_step = function(_, _, step) if step == 13 then error("killed at step 13") end end }))
T.check(not ok and tostring(err):find("killed at step 13"), "the weighted run stops at step 13")
local st = bl.read_json(dir .. "/r/state/state.json")
T.check(st.step == 11 and st.loader and st.loader.batch == 2 and #st.loader.order == 68,
  "its state: step 11, epoch 2 under way at batch 2, the epoch's 68 weighted draws", bl.json_encode({ st.step, st.loader and st.loader.batch }))
local rep = {}
for _, r in ipairs(st.loader and st.loader.order or {}) do rep[r] = (rep[r] or 0) + 1 end
local twice = false
for _, c in pairs(rep) do twice = twice or c > 1 end
T.check(twice, "the recorded order has repeats (draws with replacement)")
local R = bl.run_experiment({ resume = dir .. "/r", progress = false, per_class = false, keep_state = true, log = function() end })
local wr, ww = T.slurp(dir .. "/r/epoch_2/model.safetensors"), T.slurp(dir .. "/w/epoch_2/model.safetensors")
T.check(wr and ww and #wr > 1000 and wr == ww,
  "resumed mid-epoch with class weights and the weighted sampler: epoch_2 weights identical to the uninterrupted run's")
T.eq(R.epochs[2].train_loss, Wt.epochs[2].train_loss, "... and the same epoch 2 training loss")
-- control: the same stop resumed without the class weights ends elsewhere (the comparison can fail)
pcall(bl.run_experiment, opts({ out = dir .. "/c", class_weights = "balanced", sampler = "weighted", save_every = 11,
  on_step = function(_, _, step) if step == 13 then error("stop") end end }))
local C = bl.run_experiment({ resume = dir .. "/c", class_weights = "none", progress = false, per_class = false, log = function() end })
T.check(T.slurp(dir .. "/c/epoch_2/model.safetensors") ~= ww, "control: resumed without the class weights, other weights")
C.model:free()
T.checkerror("class_weights: 2 weights given, the data has 3 classes", "run_experiment: wrong number of weights",
  bl.run_experiment, opts({ class_weights = { 1, 2 } }))
T.checkerror('sampler must be "random" or "weighted"', "run_experiment: an unknown sampler", bl.run_experiment, opts({ sampler = "shuffle" }))
P.model:free(); Wt.model:free(); R.model:free()
os.execute("rm -rf " .. q(dir))
T.done()
