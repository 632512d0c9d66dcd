-- ablation.lua: the tutorial's training over a grid of any run_experiment options, each cell run once
-- per seed, on the tutorial's data or any CSV (--data, --text-column, --label-column, --val-data).
--   bin/bertlab experiments/ablation.lua --seeds 17,18,19 --grid "batch_size=3,16" \
--     --grid "class_weights=none,balanced" --epochs 3
-- Axes: --grid "KEY=V1,V2,..." (repeatable; KEY any run_experiment option: lr, batch_size, epochs,
-- max_length, model=DIR1,DIR2, class_weights=none,balanced,0.5:2:1:1:1 (an explicit list with
-- colons), sampler=random,weighted, warmup, weight_decay, eps, ...); --batch-sizes, --epochs and --lrs
-- are shorthands for the grid of batch_size, epochs and lr. Repeats: --seeds 17,18,19 or --repeats N
-- (seeds --seed, --seed+1, ...). Each run is a fresh bl.run_experiment in its own folder
-- out/<cell>/seed<S> (run.json, results.csv, chart.svg); after each run out/ablation.csv gets its row
-- (kind "run") and the summary rows of every cell (kind mean, std, min, max over its seeds), and
-- out/ablation.json the grid's record; at the end out/ablation.md holds the Markdown table (mean ± std
-- and [min, max] per cell; the best cell and those within one standard error of it are marked) and
-- out/ablation.svg the chart. Resume: run again with the same --out and options: finished runs are
-- read back from ablation.csv, an interrupted run continues from its training state, the rest run.
local bl = require("bertlab")

local D = bl.EXPERIMENT_DEFAULTS

-- the options that only say how to run the ablation's runs (not which): left out of the command
-- that a Slurm task or a --jobs process runs, and of a recorded command line that --collect reads
local HOW = { jobs = 1, slurm = 0, partition = 1, time = 1, ["cpus-per-task"] = 1, task = 1, out = 1, threads = 1,
              ["dry-run"] = 0, collect = 1, quiet = 0 }
local function without_how(list, from)
  local kept, i = {}, from or 1
  while list[i] ~= nil do
    local a = list[i]
    local name, eq = a:match("^%-%-([%w%-]+)(=?)")
    if name and HOW[name] then
      i = i + ((eq == "" and HOW[name] == 1) and 2 or 1)
    else
      kept[#kept + 1] = a
      i = i + 1
    end
  end
  return kept
end

-- --collect DIR: assemble the table of the ablation in DIR from its runs' rows (the runs of a Slurm
-- array or of --jobs), with DIR's own recorded command line
local collect_dir
for i = 1, #arg do
  local v = arg[i] == "--collect" and arg[i + 1] or arg[i]:match("^%-%-collect=(.+)$")
  if arg[i] == "--collect" and not v then io.stderr:write("ablation.lua: option --collect needs a folder\n"); os.exit(2) end
  if v then collect_dir = v:gsub("/+$", "") break end
end
if collect_dir then
  local ok, rec = pcall(bl.read_json, collect_dir .. "/ablation.json")
  if not ok or type(rec) ~= "table" or type(rec.command) ~= "table" then
    io.stderr:write(("ablation.lua: --collect %s: no readable ablation.json there (%s)\n"):format(collect_dir,
      ok and "no recorded command line" or tostring(rec)))
    os.exit(2)
  end
  local from
  for j, a in ipairs(rec.command) do if a:match("ablation%.lua$") then from = j + 1 break end end
  local new = without_how(rec.command, from or (#rec.command + 1))
  new[#new + 1] = "--out"; new[#new + 1] = collect_dir
  new[#new + 1] = "--collect"; new[#new + 1] = collect_dir
  new[0], new[-1] = arg[0], arg[-1]
  arg = new
end

local args = bl.parse_args(arg, {
  prog = "experiments/ablation.lua",
  description = "Grid of conference.lua trainings, each cell once per seed; mean ± std tables (CSV, Markdown) and a chart.",
  options = {
    { "grid", repeated = true, metavar = "KEY=V1,V2", help = "an axis of the grid: any run_experiment option and its values (repeatable)" },
    { "seeds", type = "list", elem = "int", help = "run every cell once per seed (default: --seed alone)" },
    { "repeats", type = "int", help = "run every cell N times, seeds --seed, --seed+1, ..." },
    { "batch-sizes", type = "list", elem = "int", help = "shorthand for --grid batch_size=... (default: 3,16,32)" },
    { "epochs", type = "list", elem = "int", help = "shorthand for --grid epochs=... (default: 2,4)" },
    { "lrs", type = "list", elem = "number", help = "shorthand for --grid lr=... (default: 1e-5)" },
    { "cv", type = "int", metavar = "K", help = "cross-validation: each run K times, on the K stratified folds of the training part (the validation titles stay out)" },
    { "rank", default = "best_f1", choices = { "best_f1", "last_f1" }, help = "the weighted F1 that ranks the cells: the best epoch's, or the last's" },
    { "model", default = D.model, metavar = "DIR", help = "model folder" },
    { "data", default = D.data, metavar = "CSV", help = "training CSV (a header line, then one text and label a row)" },
    { "text-column", default = D.text_column, metavar = "NAME", help = "the CSV column holding the texts" },
    { "label-column", default = D.label_column, metavar = "NAME", help = "the CSV column holding the labels" },
    { "val-data", metavar = "CSV", help = "a separate validation CSV instead of splitting --data" },
    { "test-size", type = "number", default = D.test_size, help = "validation share of --data (a fraction, or a row count)" },
    { "split-seed", type = "int", default = D.split_seed, help = "random_state of the stratified split" },
    { "eps", type = "number", default = D.eps, help = "AdamW epsilon" },
    { "max-length", type = "int", default = D.max_length, help = "truncate titles to this many tokens" },
    { "class-weights", default = D.class_weights, metavar = "none|balanced|w1,w2,...", help = "the loss's class weights of every cell (unless an axis)" },
    { "sampler", default = D.sampler, choices = { "random", "weighted" }, help = "the training sampler of every cell (unless an axis)" },
    { "seed", type = "int", default = D.seed, help = "the seed (with --repeats: the first seed)" },
    { "threads", type = "int", help = "CPU threads (default: all cores)" },
    { "device", default = D.device, choices = { "cpu", "cuda" }, help = "where to train every cell" },
    { "limit", type = "int", help = "use only the first N training titles" },
    { "val-limit", type = "int", help = "use only the first N validation titles" },
    { "out", metavar = "DIR", help = "output folder (default runs/ablation-<timestamp>); an existing ablation there is resumed" },
    { "save", default = "none", choices = { "all", "best", "none" }, help = "each run's checkpoints: every epoch's (large), its best, none" },
    { "quiet", type = "flag", help = "no progress bars" },
    { "dry-run", type = "flag", help = "print the runs (folder and options) and exit: nothing is trained or written (with --slurm: write the array script, do not submit it)" },
    { "jobs", type = "int", metavar = "N", help = "run N runs at once on this machine, each with cores/N threads (--threads: each run's)" },
    { "slurm", type = "flag", help = "write OUT/slurm/array.sh (a job array: one task per run) and submit it with sbatch; then --collect OUT" },
    { "partition", metavar = "P", help = "with --slurm: the partition" },
    { "time", metavar = "T", help = "with --slurm: each task's time limit (Slurm's format, e.g. 02:00:00)" },
    { "cpus-per-task", type = "int", default = 1, metavar = "C", help = "with --slurm: CPUs (and threads) of each task" },
    { "task", type = "int", metavar = "K", help = "run only run K (0-based) of the ablation in --out and write its row.json (what a Slurm task or --jobs process runs)" },
    { "collect", metavar = "DIR", help = "assemble the table, CSV and chart of the ablation in DIR from its runs' rows (after --slurm or an interruption); trains nothing" },
  },
})

-- ---- the grid ------------------------------------------------------------------------------------

-- options that cannot be an axis (the seed is --seeds; the rest are not the recipe)
local NOT_AXES = { seed = "use --seeds or --repeats", progress = true, save = "use --save", device = "use --device",
                   data = true, text_column = true, label_column = true }

-- A grid value as the option's type (the defaults' types; class_weights lists use colons).
local function grid_value(key, s)
  local d = D[key]
  if key == "class_weights" then
    if s == "none" or s == "balanced" then return s end
    local list = s:gsub(":", ",")
    return list
  end
  if math.type(d) == "integer" then
    local v = math.tointeger(tonumber(s))
    if not v then error(("--grid %s: '%s' is not an integer"):format(key, s), 0) end
    return v
  elseif type(d) == "number" then
    local v = tonumber(s)
    if not v then error(("--grid %s: '%s' is not a number"):format(key, s), 0) end
    return v + 0.0
  end
  return s
end

local function parse_axis(spec)
  local key, vals = spec:match("^%s*([%w_%-]+)%s*=%s*(.-)%s*$")
  if not key or vals == "" then
    error(("--grid '%s': expected KEY=V1,V2,... (e.g. batch_size=3,16)"):format(spec), 0)
  end
  key = key:gsub("-", "_")
  if key == "batch_sizes" then key = "batch_size" elseif key == "lrs" then key = "lr" end
  if D[key] == nil or NOT_AXES[key] then
    local names = {}
    for k in pairs(D) do if not NOT_AXES[k] then names[#names + 1] = k end end
    table.sort(names)
    local why = type(NOT_AXES[key]) == "string" and (" (" .. NOT_AXES[key] .. ")") or ""
    error(("--grid: '%s' is not an option that can vary%s; axes: %s"):format(key, why, table.concat(names, ", ")), 0)
  end
  local values, seen = {}, {}
  for item in vals:gmatch("[^,]+") do
    item = item:match("^%s*(.-)%s*$")
    local v = grid_value(key, item)
    if seen[tostring(v)] then error(("--grid %s: value '%s' given twice"):format(key, item), 0) end
    seen[tostring(v)] = true
    values[#values + 1] = v
  end
  return { key = key, values = values }
end

local function build_axes()
  local axes, by = {}, {}
  for _, g in ipairs(args.grid) do
    local ax = parse_axis(g)
    if by[ax.key] then error(("--grid: '%s' given twice"):format(ax.key), 0) end
    by[ax.key] = ax
    axes[#axes + 1] = ax
  end
  for _, sh in ipairs({ { "batch_size", "batch_sizes", { 3, 16, 32 } }, { "epochs", "epochs", { 2, 4 } },
                        { "lr", "lrs", { 1e-5 } } }) do
    local key, flag, default = sh[1], sh[2], sh[3]
    if args[flag] ~= nil and by[key] then
      error(("--%s and --grid %s=... both set %s; give one"):format(flag:gsub("_", "-"), key, key), 0)
    end
    if not by[key] then
      local ax = { key = key, values = args[flag] or default }
      by[key] = ax
      axes[#axes + 1] = ax
    end
  end
  for _, k in ipairs({ "class_weights", "sampler", "max_length", "eps", "model" }) do
    local given = args[k]
    if by[k] and given ~= nil and given ~= D[k] then
      error(("--%s and --grid %s=... both set %s; give one"):format(k:gsub("_", "-"), k, k), 0)
    end
  end
  return axes
end

local function seeds_of()
  if args.seeds and args.repeats then error("give --seeds or --repeats, not both", 0) end
  if args.seeds then return args.seeds end
  if args.repeats then
    if args.repeats < 1 then error("--repeats must be a positive integer", 0) end
    local s = {}
    for k = 1, args.repeats do s[k] = args.seed + k - 1 end
    return s
  end
  return { args.seed }
end

-- every combination of the axes' values, the first axis outermost
local function cells_of(axes)
  local cells = { {} }
  for _, ax in ipairs(axes) do
    local nxt = {}
    for _, c in ipairs(cells) do
      for _, v in ipairs(ax.values) do
        local c2 = {}
        for k, x in pairs(c) do c2[k] = x end
        c2[ax.key] = v
        nxt[#nxt + 1] = c2
      end
    end
    cells = nxt
  end
  return cells
end

-- how a value is shown (tables, folder names): a model by its folder's name
local function show(key, v)
  if key == "model" then return (tostring(v):gsub("/+$", ""):match("([^/]+)$")) or tostring(v) end
  if key == "class_weights" then return (tostring(v):gsub(",", ":")) end
  if math.type(v) == "float" then return ("%g"):format(v) end
  return tostring(v)
end

local SHORT = { batch_size = "bs", epochs = "ep", lr = "lr", class_weights = "cw", max_length = "len",
                sampler = "smp", model = "model", weight_decay = "wd", warmup = "wu" }

-- ---- statistics ----------------------------------------------------------------------------------

local METRICS = { "best_f1", "last_f1", "macro_f1", "accuracy", "last_macro_f1", "last_accuracy", "train_loss",
                  "val_loss", "best_epoch", "seconds" }

local function stats(xs)
  local n, sum = #xs, 0.0
  for _, x in ipairs(xs) do sum = sum + x end
  local mean = sum / n
  local ss, mn, mx = 0.0, math.huge, -math.huge
  for _, x in ipairs(xs) do
    ss = ss + (x - mean) ^ 2
    if x < mn then mn = x end
    if x > mx then mx = x end
  end
  local std = n > 1 and math.sqrt(ss / (n - 1)) or 0.0 -- the sample standard deviation (ddof 1)
  return { n = n, mean = mean, std = std, min = mn, max = mx, se = std / math.sqrt(n) }
end

-- ---- the run -------------------------------------------------------------------------------------

local function main()
  local axes = build_axes()
  local seeds = seeds_of()
  local cells = cells_of(axes)
  local varying = {}
  for _, ax in ipairs(axes) do if #ax.values > 1 then varying[#varying + 1] = ax.key end end
  local out = (args.out or ("runs/ablation-" .. bl.timestamp())):gsub("/+$", "")
  -- cross-validation: the folds of the training part (StratifiedKFold, shuffled with --split-seed)
  local folds = { false }
  if args.cv ~= nil then
    if args.cv < 2 then error("--cv must be 2 or more folds", 0) end
    if args.val_data then error("--cv folds the training part of --data; it cannot be used with --val-data", 0) end
    local d = bl.load_text_classification(args.data, { text_column = args.text_column, label_column = args.label_column,
      test_size = args.test_size, split_seed = args.split_seed, limit = args.limit, val_limit = args.val_limit })
    local skf = bl.StratifiedKFold(args.cv, { shuffle = true, random_state = args.split_seed })
    folds = {}
    for tr, te in skf:split(d.train.labels) do
      local f = { train = {}, val = {}, k = #folds + 1 }
      for i, pos in ipairs(tr) do f.train[i] = d.train.rows[pos] end
      for i, pos in ipairs(te) do f.val[i] = d.train.rows[pos] end
      folds[#folds + 1] = f
    end
  end
  if args.threads then bl.set_num_threads(args.threads) end
  for _, f in ipairs({ args.data, args.val_data }) do
    if not bl.file_exists(f) then error(("data file '%s' not found%s"):format(f, f == D.data and " (run `make data`)" or ""), 0) end
  end

  -- names of the cells and their runs
  local units = {}
  for ci, c in ipairs(cells) do
    local parts = {}
    for _, k in ipairs(varying) do parts[#parts + 1] = (SHORT[k] or k) .. show(k, c[k]) end
    local name = (("c%02d-%s"):format(ci, #parts > 0 and table.concat(parts, "-") or "all")):gsub("[^%w%.%-_]", "_")
    c._name, c._index = name, ci
    for _, s in ipairs(seeds) do
      for _, f in ipairs(folds) do
        local sub = "seed" .. s .. (f and ("/fold" .. f.k) or "")
        units[#units + 1] = { cell = c, seed = s, fold = f or nil, id = name .. "/" .. sub, dir = ("%s/%s/%s"):format(out, name, sub) }
      end
    end
  end

  for _, ax in ipairs(axes) do
    if ax.key == "model" then
      for _, m in ipairs(ax.values) do
        if not bl.file_exists(m .. "/config.json") then
          error(("--grid model: '%s' is not a model folder (no config.json there)"):format(m), 0)
        end
      end
    end
  end
  if args.dry_run and not args.slurm then
    print(("%d cell(s) x %d seed(s)%s = %d runs in %s"):format(#cells, #seeds, args.cv and (" x " .. args.cv .. " folds") or "",
      #units, out))
    for _, u in ipairs(units) do
      local f = {}
      for _, ax in ipairs(axes) do f[#f + 1] = ("%s=%s"):format(ax.key, show(ax.key, u.cell[ax.key])) end
      f[#f + 1] = "seed=" .. u.seed
      if u.fold then f[#f + 1] = ("fold=%d (%d training, %d validation rows)"):format(u.fold.k, #u.fold.train, #u.fold.val) end
      print(("%s: %s"):format(u.dir, table.concat(f, " ")))
    end
    return
  end

  local fixed = { model = args.model, data = args.data, val_data = args.val_data, text_column = args.text_column,
    label_column = args.label_column, test_size = args.test_size, split_seed = args.split_seed, eps = args.eps,
    max_length = args.max_length, class_weights = args.class_weights, sampler = args.sampler, limit = args.limit,
    val_limit = args.val_limit, save = args.save, cv = args.cv }
  local grid_rec = {}
  for i, ax in ipairs(axes) do grid_rec[i] = { key = ax.key, values = ax.values } end

  -- resume: an existing ablation with the same grid, seeds and fixed options
  local done, from_task = {}, {}
  local rec
  if bl.file_exists(out .. "/ablation.json") then
    local ok, old = pcall(bl.read_json, out .. "/ablation.json")
    if not ok or type(old) ~= "table" or old.format ~= "bertlab-ablation/2" then
      error(("'%s' holds an ablation.json this script cannot resume (%s); choose another --out"):format(out,
        ok and ("format " .. tostring(type(old) == "table" and old.format)) or tostring(old)), 0)
    end
    for _, what in ipairs({ { "grid", old.grid_axes, grid_rec }, { "seeds", old.seeds, seeds }, { "options", old.fixed, fixed } }) do
      if bl.json_encode(what[2]) ~= bl.json_encode(what[3]) then
        error(("'%s' holds an ablation with other %s (%s there, %s now); resume it with the same options or choose another --out")
          :format(out, what[1], bl.json_encode(what[2]), bl.json_encode(what[3])), 0)
      end
    end
    rec = old
    if bl.file_exists(out .. "/ablation.csv") then
      local df = bl.read_csv(out .. "/ablation.csv")
      local cols = df:columns()
      for i = 1, df:nrows() do
        local r = {}
        for _, c in ipairs(cols) do r[c] = df[c][i] end
        if r.kind == "run" then
          for _, m in ipairs(METRICS) do r[m] = tonumber(r[m]) end
          r.seed = math.tointeger(tonumber(r.seed))
          r.fold = math.tointeger(tonumber(r.fold))
          done[r.cell .. "/seed" .. tostring(r.seed) .. (r.fold and ("/fold" .. r.fold) or "")] = r
        end
      end
    end
    -- the rows that Slurm tasks and --jobs processes wrote beside their runs
    for _, u in ipairs(units) do
      if not done[u.id] and bl.file_exists(u.dir .. "/row.json") then
        local okr, r = pcall(bl.read_json, u.dir .. "/row.json")
        if okr and type(r) == "table" and r.kind == "run" then done[u.id] = r; from_task[u.id] = r end
      end
    end
    local n = 0
    for _ in pairs(done) do n = n + 1 end
    if args.task == nil then
      io.stderr:write(("%s the ablation in %s: %d of %d runs done\n"):format(args.collect and "Collecting" or "Resuming", out, n, #units))
      rec.status, rec.resumed = "running", rec.resumed or {}
      if not args.collect then rec.resumed[#rec.resumed + 1] = bl.iso_time() end
    end
  elseif args.task ~= nil or args.collect then
    error(("'%s' holds no ablation (no ablation.json): %s"):format(out, args.task ~= nil and
      "--task runs one run of an ablation that --slurm or --jobs set up" or "nothing to collect"), 0)
  elseif bl.file_exists(out .. "/ablation.csv") then
    error(("'%s' holds an ablation.csv but no ablation.json; choose another --out"):format(out), 0)
  else
    bl.mkdir_p(out)
    local d = bl.load_text_classification(args.data, { text_column = args.text_column, label_column = args.label_column,
      test_size = args.test_size, split_seed = args.split_seed, val_data = args.val_data,
      limit = args.limit, val_limit = args.val_limit })
    rec = bl.run_record({ name = out:match("([^/]+)$"), script = "experiments/ablation.lua",
      options = args, model = args.model, data = args.data, val_data = args.val_data, text_column = d.text_column,
      label_column = d.label_column, d = d, device = args.device })
    rec.format = "bertlab-ablation/2"
    rec.grid_axes, rec.seeds, rec.fixed = grid_rec, seeds, fixed
    rec.grid = {}
    for _, ax in ipairs(axes) do rec.grid[ax.key] = ax.values end
    rec.threads = bl.get_num_threads()
    rec.cells = {}
  end
  local function write_json() if args.task == nil then bl.write_run_json(out, rec, "ablation.json") end end
  write_json()
  if args.task ~= nil and (args.task < 0 or args.task >= #units) then
    error(("--task %d: the ablation in %s has runs 0..%d"):format(args.task, out, #units - 1), 0)
  end

  -- the rows: every run's, then each cell's summary (mean, std, min, max)
  local cols = { "kind", "cell" }
  for _, ax in ipairs(axes) do cols[#cols + 1] = ax.key end
  for _, c in ipairs(args.cv and { "seed", "fold", "n" } or { "seed", "n" }) do cols[#cols + 1] = c end
  for _, m in ipairs(METRICS) do cols[#cols + 1] = m end
  cols[#cols + 1] = "dir"

  local function summaries()
    local out_rows = {}
    for _, c in ipairs(cells) do
      local runs = {}
      for _, u in ipairs(units) do
        if u.cell == c and done[u.id] then runs[#runs + 1] = done[u.id] end
      end
      if #runs > 0 then
        local st = {}
        for _, m in ipairs(METRICS) do
          local xs = {}
          for _, r in ipairs(runs) do xs[#xs + 1] = r[m] end
          st[m] = stats(xs)
        end
        out_rows[#out_rows + 1] = { cell = c, stats = st, n = #runs }
      end
    end
    return out_rows
  end

  local function csv_field(v)
    if v == nil then return "" end
    if math.type(v) == "float" then return ("%.10g"):format(v) end
    local s = tostring(v)
    if s:find('[,"\n]') then s = '"' .. s:gsub('"', '""') .. '"' end
    return s
  end

  local function write_csv()
    local lines = { table.concat(cols, ",") }
    local function line(r)
      local f = {}
      for i, c in ipairs(cols) do f[i] = csv_field(r[c]) end
      lines[#lines + 1] = table.concat(f, ",")
    end
    for _, u in ipairs(units) do
      local r = done[u.id]
      if r then line(r) end
    end
    for _, s in ipairs(summaries()) do
      for _, kind in ipairs({ "mean", "std", "min", "max" }) do
        local r = { kind = kind, cell = s.cell._name, n = s.n }
        for _, ax in ipairs(axes) do r[ax.key] = show(ax.key, s.cell[ax.key]) end
        for _, m in ipairs(METRICS) do r[m] = s.stats[m][kind] + 0.0 end
        line(r)
      end
    end
    bl.write_file(out .. "/ablation.csv", table.concat(lines, "\n") .. "\n")
  end

  -- ---- spread out: a Slurm array, or N processes here; each runs `--task K` ----
  local bin = bl.abs_path(arg[-1] or "bin/bertlab")
  local function task_argv()
    local a = { bin, "experiments/ablation.lua" }
    for _, x in ipairs(without_how(arg)) do a[#a + 1] = x end
    a[#a + 1] = "--out"; a[#a + 1] = bl.abs_path(out); a[#a + 1] = "--quiet"
    return a
  end
  if args.slurm then
    bl.mkdir_p(out .. "/slurm")
    local script = out .. "/slurm/array.sh"
    bl.write_file(script, bl.slurm_array_script({ name = "bertlab-" .. out:match("([^/]+)$"), tasks = #units, argv = task_argv(),
      log_dir = bl.abs_path(out .. "/slurm"), workdir = bl.abs_path("."), partition = args.partition, time = args.time,
      cpus_per_task = args.cpus_per_task }))
    local pending = 0
    for _, u in ipairs(units) do if not done[u.id] then pending = pending + 1 end end
    if args.dry_run then
      print(("Wrote %s: an array of %d tasks (%d runs still to do); submit it with: sbatch %s"):format(script, #units, pending, script))
    else
      local id = bl.sbatch(script)
      rec.slurm = rec.slurm or {}
      rec.slurm[#rec.slurm + 1] = { job = id, script = "slurm/array.sh", submitted = bl.iso_time(), tasks = #units }
      write_json()
      print(("Submitted job %d: an array of %d tasks (%s); logs in %s/slurm/task-<k>.log"):format(id, #units, script, out))
    end
    print(("When the tasks are done: bin/bertlab experiments/ablation.lua --collect %s"):format(out))
    return
  end
  if args.jobs ~= nil then
    if args.jobs < 1 then error("--jobs must be a positive integer", 0) end
    local threads = args.threads or math.max(1, bl.get_num_threads() // args.jobs)
    local cmds, which = {}, {}
    local words = {}
    for i, w in ipairs(task_argv()) do words[i] = bl.shell_quote(w) end
    for k, u in ipairs(units) do
      if not done[u.id] then
        cmds[#cmds + 1] = ("%s --task %d --threads %d"):format(table.concat(words, " "), k - 1, threads)
        which[#which + 1] = u
      end
    end
    io.stderr:write(("Running %d runs, %d at a time, %d thread(s) each (logs in %s/jobs)\n"):format(#cmds, args.jobs, threads, out))
    local st = bl.run_jobs(cmds, args.jobs, { dir = out .. "/jobs" })
    local failed = {}
    for i, u in ipairs(which) do
      local okr, r = pcall(bl.read_json, u.dir .. "/row.json")
      if st[i] == 0 and okr and type(r) == "table" then done[u.id] = r; from_task[u.id] = r
      else failed[#failed + 1] = ("%s (exit %s, log %s/jobs/job-%d.log)"):format(u.id, tostring(st[i]), out, i) end
    end
    write_csv()
    if #failed > 0 then error(("%d of %d runs failed: %s"):format(#failed, #cmds, table.concat(failed, "; ")), 0) end
  end

  -- ---- the runs ----
  local total, k = #units, 0
  for _, u in ipairs(units) do
    k = k + 1
    if done[u.id] then goto continue end
    if args.task ~= nil and k ~= args.task + 1 then goto continue end
    if args.collect then goto continue end
    do
      local c = u.cell
      local desc = {}
      for _, key in ipairs(varying) do desc[#desc + 1] = ("%s=%s"):format(key, show(key, c[key])) end
      io.stderr:write(("== run %d/%d: %s, seed %d%s -> %s\n"):format(k, total, #desc > 0 and table.concat(desc, ", ") or "(one cell)",
        u.seed, u.fold and (", fold " .. u.fold.k .. "/" .. #folds) or "", u.dir))
      local o = {
        model = args.model, data = args.data, text_column = args.text_column, label_column = args.label_column,
        val_data = args.val_data, test_size = args.test_size, split_seed = args.split_seed, eps = args.eps,
        max_length = args.max_length, class_weights = args.class_weights, sampler = args.sampler,
        seed = u.seed, limit = args.limit, val_limit = args.val_limit, out = u.dir,
        save = args.save, progress = not args.quiet, per_class = false, threads = args.threads,
        script = "experiments/ablation.lua", device = args.device, log = function() end,
      }
      for _, ax in ipairs(axes) do o[ax.key] = c[ax.key] end
      if u.fold then -- the fold's rows of the training part; the limits made that part already
        o.train_rows, o.val_rows, o.limit, o.val_limit = u.fold.train, u.fold.val, nil, nil
      end
      -- an interrupted run: continued from its training state (or from the start when it has none)
      local res
      if bl.file_exists(u.dir .. "/run.json") then
        local okj, r = pcall(bl.read_json, u.dir .. "/run.json")
        if okj and r.status ~= "done" then
          io.stderr:write(("   continuing the interrupted run in %s\n"):format(u.dir))
          res = bl.run_experiment({ resume = u.dir, progress = not args.quiet, threads = args.threads, log = function() end,
            per_class = false, script = "experiments/ablation.lua" })
        else
          bl.remove_tree(u.dir) -- finished but its row was not written, or unreadable: run it again
        end
      elseif bl.is_dir(u.dir) then
        bl.remove_tree(u.dir)
      end
      res = res or bl.run_experiment(o)
      local last = res.epochs[#res.epochs]
      local best = res.epochs[res.best_epoch]
      local r = { kind = "run", cell = c._name, seed = u.seed, fold = u.fold and u.fold.k or nil, n = 1, dir = u.dir:sub(#out + 2),
        best_f1 = best.val_f1, last_f1 = last.val_f1, macro_f1 = best.val_f1_macro, accuracy = best.val_accuracy,
        last_macro_f1 = last.val_f1_macro, last_accuracy = last.val_accuracy, train_loss = last.train_loss,
        val_loss = last.val_loss, best_epoch = res.best_epoch, seconds = res.seconds }
      for _, ax in ipairs(axes) do r[ax.key] = show(ax.key, c[ax.key]) end
      res.model:free()
      done[u.id] = r
      if args.task ~= nil then -- a task of a spread-out ablation: its row beside its run (--collect reads it)
        local rr = {}
        for kk, v in pairs(r) do rr[kk] = v end
        rr.per_epoch = res.epochs
        bl.write_file(u.dir .. "/row.json", bl.json_encode(rr) .. "\n")
        return
      end
      local cr = {}
      for kk, v in pairs(r) do cr[kk] = v end
      cr.per_epoch = res.epochs
      rec.cells[#rec.cells + 1] = cr
      write_csv()
      write_json()
    end
    ::continue::
  end
  if args.task ~= nil then return end -- its run was done already
  -- the rows of tasks join the record (with their epochs), once
  local recorded = {}
  for _, c in ipairs(rec.cells or {}) do recorded[c.cell .. "/seed" .. tostring(c.seed) .. (c.fold and ("/fold" .. c.fold) or "")] = true end
  for _, u in ipairs(units) do
    local r = from_task[u.id]
    if r and not recorded[u.id] then rec.cells[#rec.cells + 1] = r end
  end
  write_csv()
  local missing = {}
  for _, u in ipairs(units) do if not done[u.id] then missing[#missing + 1] = u.id end end
  if #missing > 0 then -- --collect before every task ended
    io.stderr:write(("%d of %d runs have no row yet: %s\n"):format(#missing, #units, table.concat(missing, ", ")))
  end

  -- ---- the table and the chart ----
  local sums = summaries()
  local rank = args.rank
  local best_i, best_mean = nil, -math.huge
  for i, s in ipairs(sums) do
    if s.stats[rank].mean > best_mean then best_i, best_mean = i, s.stats[rank].mean end
  end
  local best_se = best_i and sums[best_i].stats[rank].se or 0
  local function pm(st, fmt)
    return ((fmt .. " ± " .. fmt .. " [" .. fmt .. ", " .. fmt .. "]"):format(st.mean, st.std, st.min, st.max))
  end
  local head = { "cell" }
  for _, key in ipairs(varying) do head[#head + 1] = key end
  for _, h in ipairs({ "n", "best F1 (weighted)", "last F1 (weighted)", "macro F1", "accuracy", "train loss",
                       "val loss", "time (s)", "rank" }) do head[#head + 1] = h end
  local md = { "| " .. table.concat(head, " | ") .. " |" }
  local sep = {}
  for i = 1, #head do sep[i] = i <= 1 + #varying and "---" or "---:" end
  md[#md + 1] = "|" .. table.concat(sep, "|") .. "|"
  for i, s in ipairs(sums) do
    local f = { s.cell._name }
    for _, key in ipairs(varying) do f[#f + 1] = show(key, s.cell[key]) end
    local mark = ""
    if i == best_i then mark = "**best**"
    elseif s.stats[rank].mean >= best_mean - best_se then mark = "within 1 SE" end
    local st = s.stats
    for _, v in ipairs({ tostring(s.n), pm(st.best_f1, "%.4f"), pm(st.last_f1, "%.4f"), pm(st.macro_f1, "%.4f"),
                         pm(st.accuracy, "%.4f"), pm(st.train_loss, "%.4f"), pm(st.val_loss, "%.4f"),
                         ("%.0f ± %.0f"):format(st.seconds.mean, st.seconds.std), mark }) do f[#f + 1] = v end
    if i == best_i then
      local j = 1 + #varying + (rank == "best_f1" and 2 or 3)
      f[j] = "**" .. f[j] .. "**"
    end
    md[#md + 1] = "| " .. table.concat(f, " | ") .. " |"
  end
  local fixed_desc = {}
  for _, ax in ipairs(axes) do
    if #ax.values == 1 then fixed_desc[#fixed_desc + 1] = ("%s=%s"):format(ax.key, show(ax.key, ax.values[1])) end
  end
  local note = ("\nmean ± sample std [min, max] over %d seed(s) (%s)%s%s; macro F1 and accuracy at the best epoch, losses at the last; " ..
    "ranked by the mean %s weighted F1: **best** and the cells within one standard error (std/sqrt(n)) of it."):format(
    #seeds, table.concat(seeds, ","), args.cv and (" x %d folds of the training part (StratifiedKFold, shuffled, random_state %d; the validation titles held out)")
      :format(args.cv, args.split_seed) or "", #fixed_desc > 0 and ("; fixed: " .. table.concat(fixed_desc, ", ")) or "",
    rank == "best_f1" and "best-epoch" or "last-epoch")
  local text = table.concat(md, "\n") .. "\n" .. note .. "\n"
  bl.write_file(out .. "/ablation.md", text)
  if bl.ablation_svg then
    local groups = {}
    for _, s in ipairs(sums) do
      local lab = {}
      for _, key in ipairs(varying) do lab[#lab + 1] = ("%s=%s"):format(SHORT[key] or key, show(key, s.cell[key])) end
      groups[#groups + 1] = { label = table.concat(lab, " "), values = s.cell, mean = s.stats[rank].mean,
        std = s.stats[rank].std, min = s.stats[rank].min, max = s.stats[rank].max, n = s.n }
    end
    bl.write_file(out .. "/ablation.svg", bl.ablation_svg(groups, { axes = varying, show = show,
      title = ("Ablation %s"):format(out:match("([^/]+)$")), metric = rank == "best_f1" and "best-epoch weighted F1" or "last-epoch weighted F1" }))
  end
  rec.ended, rec.status = bl.iso_time(), #missing > 0 and "partial" or "done"
  write_json()
  print(text)
  print(("Rows in %s/ablation.csv, the table in %s/ablation.md, the grid's record in %s/ablation.json"):format(out, out, out))
end

bl.script_main("ablation.lua", main)
