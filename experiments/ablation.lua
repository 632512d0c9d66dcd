-- ablation.lua: the tutorial's training over a grid of batch sizes, epoch counts and learning rates,
-- on the tutorial's data or any CSV (--data, --text-column, --label-column, --val-data).
-- Each cell is a fresh, seeded bl.run_experiment in out/<cell>/ (with its own run.json); the table
-- (F1, losses, time) is written to out/ablation.csv and printed as Markdown; out/ablation.json
-- records the fixed options, the grid, the command line, the model's and data's sha256 and every
-- cell's results (written before the first cell and after each one).
--   bin/bertlab experiments/ablation.lua --batch-sizes 3,16,32 --epochs 2,4 --lrs 1e-5,3e-5
local bl = require("bertlab")

local D = bl.EXPERIMENT_DEFAULTS
local args = bl.parse_args(arg, {
  prog = "experiments/ablation.lua",
  description = "Grid of conference.lua trainings; a results table as CSV and Markdown.",
  options = {
    { "batch-sizes", type = "list", elem = "int", default = { 3, 16, 32 }, help = "training batch sizes" },
    { "epochs", type = "list", elem = "int", default = { 2, 4 }, help = "epoch counts" },
    { "lrs", type = "list", elem = "number", default = { 1e-5 }, help = "learning rates" },
    { "model", default = D.model, metavar = "DIR", help = "model folder" },
    { "data", default = D.data, metavar = "CSV", help = "training CSV (a header line, then one text and label a row)" },
    { "text-column", default = D.text_column, metavar = "NAME", help = "the CSV column holding the texts" },
    { "label-column", default = D.label_column, metavar = "NAME", help = "the CSV column holding the labels" },
    { "val-data", metavar = "CSV", help = "a separate validation CSV instead of splitting --data" },
    { "test-size", type = "number", default = D.test_size, help = "validation share of --data (a fraction, or a row count)" },
    { "split-seed", type = "int", default = D.split_seed, help = "random_state of the stratified split" },
    { "eps", type = "number", default = D.eps, help = "AdamW epsilon" },
    { "max-length", type = "int", default = D.max_length, help = "truncate titles to this many tokens" },
    { "seed", type = "int", default = D.seed, help = "random seed of every cell" },
    { "threads", type = "int", help = "CPU threads (default: all cores)" },
    { "device", default = D.device, choices = { "cpu", "cuda" }, help = "where to train every cell" },
    { "limit", type = "int", help = "use only the first N training titles" },
    { "val-limit", type = "int", help = "use only the first N validation titles" },
    { "out", metavar = "DIR", help = "output folder (default runs/ablation-<timestamp>)" },
    { "save", default = "none", choices = { "all", "best", "none" }, help = "each cell's checkpoints: every epoch's (large), its best, none" },
    { "quiet", type = "flag", help = "no progress bars" },
  },
})

local out = args.out or ("runs/ablation-" .. bl.timestamp())
local rows = {}
local COLS = { "batch_size", "epochs", "lr", "train_loss", "val_loss", "best_f1", "best_epoch", "last_f1", "seconds" }

local function write_csv()
  local lines = { table.concat(COLS, ",") }
  for _, r in ipairs(rows) do
    local f = {}
    for i, c in ipairs(COLS) do
      f[i] = math.type(r[c]) == "float" and ("%.10g"):format(r[c]) or tostring(r[c])
    end
    lines[#lines + 1] = table.concat(f, ",")
  end
  bl.write_file(out .. "/ablation.csv", table.concat(lines, "\n") .. "\n")
end

local function markdown()
  local lines = { "| batch | epochs | lr | train loss | val loss | best F1 (epoch) | last F1 | time |",
                  "|---:|---:|---:|---:|---:|---:|---:|---:|" }
  for _, r in ipairs(rows) do
    lines[#lines + 1] = ("| %d | %d | %g | %.4f | %.4f | %.4f (%d) | %.4f | %s |"):format(r.batch_size, r.epochs,
      r.lr, r.train_loss, r.val_loss, r.best_f1, r.best_epoch, r.last_f1, bl.format_time(r.seconds))
  end
  return table.concat(lines, "\n")
end

local function main()
  bl.mkdir_p(out)
  if bl.file_exists(out .. "/ablation.csv") or bl.file_exists(out .. "/ablation.json") then
    error(("'%s' already holds an ablation; choose another --out"):format(out))
  end
  if args.threads then bl.set_num_threads(args.threads) end
  -- the record of the whole grid: what is fixed, what varies, and each cell's results
  local d = bl.load_text_classification(args.data, { text_column = args.text_column, label_column = args.label_column,
    test_size = args.test_size, split_seed = args.split_seed, val_data = args.val_data,
    limit = args.limit, val_limit = args.val_limit })
  local rec = bl.run_record({ name = out:gsub("/+$", ""):match("([^/]+)$"), script = "experiments/ablation.lua",
    options = args, model = args.model, data = args.data, val_data = args.val_data, text_column = d.text_column,
    label_column = d.label_column, d = d, device = args.device })
  rec.format = "bertlab-ablation/1"
  rec.grid = { batch_size = args.batch_sizes, epochs = args.epochs, lr = args.lrs }
  rec.fixed = { model = args.model, data = args.data, val_data = args.val_data, text_column = args.text_column,
    label_column = args.label_column, test_size = args.test_size, split_seed = args.split_seed, eps = args.eps,
    max_length = args.max_length, seed = args.seed, limit = args.limit, val_limit = args.val_limit,
    save = args.save, threads = bl.get_num_threads() }
  rec.cells = {}
  local function write_json() bl.write_run_json(out, rec, "ablation.json") end
  write_json()
  for _, lr in ipairs(args.lrs) do
    for _, bs in ipairs(args.batch_sizes) do
      for _, ep in ipairs(args.epochs) do
        local cell = ("%s/bs%d-ep%d-lr%g"):format(out, bs, ep, lr)
        io.stderr:write(("== batch %d, %d epochs, lr %g -> %s\n"):format(bs, ep, lr, cell))
        local res = bl.run_experiment({
          model = args.model, data = args.data, text_column = args.text_column, label_column = args.label_column,
          val_data = args.val_data, test_size = args.test_size, split_seed = args.split_seed,
          epochs = ep, batch_size = bs, lr = lr, eps = args.eps,
          max_length = args.max_length, seed = args.seed, limit = args.limit, val_limit = args.val_limit, out = cell,
          save = args.save, progress = not args.quiet, per_class = false, threads = args.threads,
          script = "experiments/ablation.lua", device = args.device, log = function() end,
        })
        local last = res.epochs[#res.epochs]
        local best = res.epochs[res.best_epoch]
        rows[#rows + 1] = { batch_size = bs, epochs = ep, lr = lr, train_loss = last.train_loss,
          val_loss = last.val_loss, best_f1 = best.val_f1, best_epoch = res.best_epoch,
          last_f1 = last.val_f1, seconds = res.seconds }
        res.model:free()
        local c = {}
        for k, v in pairs(rows[#rows]) do c[k] = v end
        c.dir = cell
        c.per_epoch = res.epochs
        rec.cells[#rec.cells + 1] = c
        write_csv()
        write_json()
      end
    end
  end
  rec.ended, rec.status = bl.iso_time(), "done"
  write_json()
  print(markdown())
  print(("\nTable written to %s/ablation.csv (the grid's record: %s/ablation.json)"):format(out, out))
end

bl.script_main("ablation.lua", main)
