-- test_ablation.lua: experiments/ablation.lua end to end on a few titles: --grid axes and --seeds, a
-- folder per run, the rows (every run's, and each cell's mean/std/min/max recomputed here), the
-- Markdown marks, and the resume of an ablation killed (SIGKILL) in the middle of a run: the
-- finished runs are read back, the interrupted one continues from its training state and ends with
-- the results of an uninterrupted run; ablation.svg; --dry-run over model, max_length and lr axes;
-- --cv (the folds of the training part); the options' errors.
local T = require("testlib")
local bl = require("bertlab")

if not (bl.file_exists("data/title_conference.csv") and bl.file_exists("models/all-MiniLM-L6-v2/config.json")) then
  T.skip("ablation", "needs `make data` and the model")
  T.done()
end

local dir = os.tmpname()
os.remove(dir)
local q = bl.shell_quote
local ARGS = "--seeds 17,18 --grid batch_size=6 --grid class_weights=none,balanced --epochs 2 --limit 24 --val-limit 12 --quiet"
local cmd = ("%s experiments/ablation.lua %s --out %s"):format(T.BIN, ARGS, q(dir))

-- ---- a run killed in the middle of the third run, then resumed -------------------------------------
local marker = dir .. "/c02-cwbalanced/seed17/results.jsonl" -- its epoch 1 is done (and its state saved)
local rc, out = T.sh(("sh -c %s"):format(q(("%s > %s 2>&1 & pid=$!; i=0; while [ ! -f %s ] && [ $i -lt 1200 ]; do sleep 0.05; i=$((i+1)); done; kill -9 $pid; wait $pid; echo killed")
  :format(cmd, q(dir .. ".log"), q(marker)))))
T.check(out:find("killed", 1, true) and bl.file_exists(marker), "the ablation was killed during run 3", out)
local csv = T.slurp(dir .. "/ablation.csv") or ""
T.eq(select(2, csv:gsub("\nrun,", "")), 2, "after the kill: the two finished runs' rows are in ablation.csv")
T.check(bl.is_dir(dir .. "/c02-cwbalanced/seed17/state"), "the interrupted run left a training state")

rc, out = T.sh(cmd)
T.eq(rc, 0, "the resumed ablation exits 0")
T.check(out:find("Resuming the ablation in " .. dir .. ": 2 of 4 runs done", 1, true) ~= nil, "resume: 2 of 4 runs read back", out)
T.check(out:find("continuing the interrupted run in " .. dir .. "/c02-cwbalanced/seed17", 1, true) ~= nil,
  "resume: the interrupted run continues from its state", out)
T.check(not out:find("run 1/4", 1, true) and not out:find("run 2/4", 1, true) and out:find("run 4/4", 1, true),
  "resume: finished runs are skipped, the rest run", out)

-- ---- the rows ----
local df = bl.read_csv(dir .. "/ablation.csv")
local runs, summ = {}, {}
for i = 1, df:nrows() do
  local r = {}
  for _, c in ipairs(df:columns()) do r[c] = df[c][i] end
  if r.kind == "run" then runs[#runs + 1] = r else summ[r.cell .. ":" .. r.kind] = r end
end
T.eq(#runs, 4, "ablation.csv: one row per run (2 cells x 2 seeds)")
T.eq(df:nrows(), 4 + 2 * 4, "ablation.csv: and mean, std, min, max rows per cell")
T.check(df.batch_size and df.class_weights and df.seed and df.best_f1 and df.last_f1 and df.macro_f1 and df.accuracy
  and df.train_loss and df.val_loss and df.seconds, "ablation.csv columns: the axes, seed and every metric")
local okall = true
for _, r in ipairs(runs) do
  local rj = bl.read_json(dir .. "/" .. r.dir .. "/run.json")
  okall = okall and rj.status == "done" and rj.options.class_weights == r.class_weights and rj.options.seed == tonumber(r.seed)
    and rj.options.batch_size == 6 and rj.options.epochs == 2
end
T.check(okall, "every run has its own folder, its run.json done with the cell's options and seed")
-- the summaries, recomputed
local worst = 0
for _, cell in ipairs({ "c01-cwnone", "c02-cwbalanced" }) do
  for _, m in ipairs({ "best_f1", "last_f1", "macro_f1", "accuracy", "train_loss", "val_loss" }) do
    local xs = {}
    for _, r in ipairs(runs) do if r.cell == cell then xs[#xs + 1] = tonumber(r[m]) end end
    local mean = (xs[1] + xs[2]) / 2
    local std = math.sqrt(((xs[1] - mean) ^ 2 + (xs[2] - mean) ^ 2) / 1)
    worst = math.max(worst, math.abs(tonumber(summ[cell .. ":mean"][m]) - mean), math.abs(tonumber(summ[cell .. ":std"][m]) - std),
      math.abs(tonumber(summ[cell .. ":min"][m]) - math.min(xs[1], xs[2])), math.abs(tonumber(summ[cell .. ":max"][m]) - math.max(xs[1], xs[2])))
  end
end
T.check(worst < 1e-8, "summary rows = mean, sample std, min, max of the runs' rows", ("largest difference %g"):format(worst))

-- the interrupted run ends as an uninterrupted one does
local res = bl.run_experiment({ seed = 17, batch_size = 6, class_weights = "balanced", epochs = 2, limit = 24, val_limit = 12,
  progress = false, per_class = false, save = "none", log = function() end })
local r3
for _, r in ipairs(runs) do if r.cell == "c02-cwbalanced" and r.seed == "17" then r3 = r end end
local same = true
for _, m in ipairs({ "best_f1", "last_f1", "train_loss", "val_loss" }) do
  local want = m == "best_f1" and res.epochs[res.best_epoch].val_f1 or m == "last_f1" and res.epochs[2].val_f1
    or res.epochs[2][m]
  same = same and math.abs(tonumber(r3[m]) - want) <= 1e-9 * math.max(1, math.abs(want))
end
T.check(same, "the killed and resumed run has the results of an uninterrupted run",
  ("resumed %s %s, uninterrupted %.9g %.9g"):format(r3.train_loss, r3.val_loss, res.epochs[2].train_loss, res.epochs[2].val_loss))
res.model:free()

-- ---- the Markdown table ----
local md = T.slurp(dir .. "/ablation.md") or ""
T.check(md:find("| cell | class_weights | n | best F1 (weighted) |", 1, true) ~= nil, "ablation.md: the varying axis is a column", md)
local table_part = md:match("^(.-)\n\n") or md
T.eq(select(2, table_part:gsub("| %*%*best%*%* |", "")), 1, "ablation.md: one best cell")
local m1 = tonumber(summ["c01-cwnone:mean"].best_f1)
local m2 = tonumber(summ["c02-cwbalanced:mean"].best_f1)
local best = m1 >= m2 and "c01-cwnone" or "c02-cwbalanced"
T.check(md:find("| " .. best:gsub("%-", "%%-") .. " |[^\n]*%*%*best%*%* |") ~= nil, "ablation.md: the best is the cell with the highest mean best F1", md)
T.check(md:find("fixed: batch_size=6, epochs=2", 1, true) ~= nil, "ablation.md: notes the fixed options", md)
local asvg = T.slurp(dir .. "/ablation.svg") or ""
T.check(asvg:find("</svg>", 1, true) and select(2, asvg:gsub('r="7" fill="#', "")) == 2 and asvg:find('r="11"', 1, true),
  "ablation.svg: a dot per cell, the best ringed")
local aj = bl.read_json(dir .. "/ablation.json")
T.check(aj.status == "done" and #aj.seeds == 2 and aj.grid.class_weights[2] == "balanced" and #aj.cells >= 4
  and #aj.resumed == 1, "ablation.json: done, the seeds, the grid, the runs, one resume")

-- ---- again: everything done, nothing trained ----
rc, out = T.sh(cmd)
T.check(rc == 0 and out:find("4 of 4 runs done", 1, true) and not out:find("== run", 1, true), "a finished ablation is not run again", out)
rc, out = T.sh(("%s experiments/ablation.lua --seeds 17,19 --grid batch_size=6 --grid class_weights=none,balanced --epochs 2 --limit 24 --val-limit 12 --quiet --out %s")
  :format(T.BIN, q(dir)))
T.check(rc ~= 0 and out:find("holds an ablation with other seeds", 1, true), "resume with other seeds: a clear error", out)

-- ---- --dry-run: any option is an axis (model, max_length, lr), the runs and their folders ----
local mdir = dir .. "-model2"
bl.mkdir_p(mdir)
for _, f in ipairs({ "config.json", "vocab.txt", "model.safetensors" }) do
  os.execute(("ln -s %s %s"):format(q(bl.abspath and bl.abspath("models/all-MiniLM-L6-v2/" .. f) or (os.getenv("PWD") .. "/models/all-MiniLM-L6-v2/" .. f)), q(mdir .. "/" .. f)))
end
rc, out = T.sh(("%s experiments/ablation.lua --dry-run --grid model=models/all-MiniLM-L6-v2,%s --grid max_length=16,32 --grid lr=1e-5,3e-5 --repeats 2 --seed 5 --epochs 1 --batch-sizes 8 --out %s")
  :format(T.BIN, q(mdir), q(dir .. "-dry")))
T.check(rc == 0 and out:find("8 cell(s) x 2 seed(s) = 16 runs", 1, true), "--dry-run: 2 models x 2 lengths x 2 lr, 2 repeats = 16 runs", out)
T.check(out:find("/c08%-model" .. mdir:match("([^/]+)$"):gsub("%-", "%%-") .. "%-len32%-lr3e%-05/seed6: model=[^ ]+ max_length=32 lr=3e%-05 batch_size=8 epochs=1 seed=6") ~= nil,
  "--dry-run: the last cell's folder and options (--repeats 2 from --seed 5: seeds 5, 6)", out)
T.check(not bl.is_dir(dir .. "-dry"), "--dry-run writes nothing")
rc, out = T.sh(("%s experiments/ablation.lua --dry-run --grid model=models/all-MiniLM-L6-v2,/nonexistent --out %s"):format(T.BIN, q(dir .. "-dry")))
T.check(rc ~= 0 and out:find("'/nonexistent' is not a model folder", 1, true), "--grid model: a missing folder is an error before any run", out)
os.execute("rm -rf " .. q(mdir))

-- ---- --cv: the folds of the training part, the validation titles held out ----
local cdir = dir .. "-cv"
rc, out = T.sh(("%s experiments/ablation.lua --cv 2 --seeds 17 --grid batch_size=6 --epochs 1 --limit 12 --val-limit 6 --quiet --out %s"):format(T.BIN, q(cdir)))
T.eq(rc, 0, "--cv 2 exits 0")
local d = bl.load_text_classification("data/title_conference.csv", { limit = 12, val_limit = 6 })
local want = {}
for tr, te in bl.StratifiedKFold(2, { shuffle = true, random_state = 42 }):split(d.train.labels) do
  local a, b = {}, {}
  for i, p in ipairs(tr) do a[i] = d.train.rows[p] end
  for i, p in ipairs(te) do b[i] = d.train.rows[p] end
  want[#want + 1] = { a, b }
end
local okf, union = true, {}
for k = 1, 2 do
  local rj = bl.read_json(("%s/c01-all/seed17/fold%d/run.json"):format(cdir, k))
  local o = rj.options or {}
  okf = okf and T.deep_equal(o.train_rows, want[k][1]) and T.deep_equal(o.val_rows, want[k][2]) and o.limit == nil
  for _, r in ipairs(o.val_rows or {}) do union[#union + 1] = r end
end
table.sort(union)
T.check(okf, "--cv: each fold's run trains and validates on StratifiedKFold(2, shuffle, random_state=split_seed) of the training part")
T.same(union, d.train.rows, "--cv: the folds' validation rows are the training part, each once (the validation titles held out)")
local cdf = bl.read_csv(cdir .. "/ablation.csv")
T.check(cdf.fold and cdf.fold[1] == "1" and cdf.fold[2] == "2" and cdf.kind[3] == "mean" and cdf.n[3] == "2",
  "--cv: a row per fold (column fold), the mean over the folds")
T.check((T.slurp(cdir .. "/ablation.md") or ""):find("x 2 folds of the training part", 1, true) ~= nil, "--cv: the table says so")
os.execute("rm -rf " .. q(cdir))

-- ---- option errors ----
local function err(a, pat, name)
  local r, o = T.sh(("%s experiments/ablation.lua %s --out %s-x"):format(T.BIN, a, q(dir)))
  T.check(r ~= 0 and o:find(pat, 1, true) ~= nil, name, o)
end
err("--grid colour=red", "--grid: 'colour' is not an option that can vary", "--grid with an unknown key")
err("--grid seed=1,2", "use --seeds or --repeats", "--grid seed points to --seeds")
err("--grid batch_size=3,x", "--grid batch_size: 'x' is not an integer", "--grid with a bad value")
err("--grid batch_size=3 --batch-sizes 3,6", "both set batch_size", "--grid and its shorthand together")
err("--grid lr", "expected KEY=V1,V2", "--grid without values")
err("--seeds 1,2 --repeats 3", "give --seeds or --repeats", "--seeds and --repeats together")
err("--cv 1", "--cv must be 2 or more folds", "--cv 1")
err("--cv 3 --val-data data/title_conference.csv", "it cannot be used with --val-data", "--cv with --val-data")
os.execute("rm -rf " .. q(dir) .. " " .. q(dir .. "-x") .. " " .. q(dir .. ".log"))
T.done()
