-- ablation.lua: the tutorial's training over a grid of batch sizes, epoch counts and learning rates.
-- Each cell is a fresh, seeded bl.run_experiment; the table (F1, losses, time) is written to
-- out/ablation.csv and printed as Markdown.
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
    { "data", default = D.data, metavar = "CSV", help = "CSV with Title and Conference columns" },
    { "eps", type = "number", default = D.eps, help = "AdamW epsilon" },
    { "max-length", type = "int", default = D.max_length, help = "truncate titles to this many tokens" },
    { "seed", type = "int", default = D.seed, help = "random seed of every cell" },
    { "threads", type = "int", help = "CPU threads (default: all cores)" },
    { "device", default = D.device, choices = { "cpu", "cuda" }, help = "where to train every cell" },
    { "limit", type = "int", help = "use only the first N training titles" },
    { "val-limit", type = "int", help = "use only the first N validation titles" },
    { "out", metavar = "DIR", help = "output folder (default runs/ablation-<timestamp>)" },
    { "save", type = "flag", help = "keep every cell's checkpoints (large)" },
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
  if bl.file_exists(out .. "/ablation.csv") then error(("'%s' already holds an ablation; choose another --out"):format(out)) end
  for _, lr in ipairs(args.lrs) do
    for _, bs in ipairs(args.batch_sizes) do
      for _, ep in ipairs(args.epochs) do
        local cell = ("%s/bs%d-ep%d-lr%g"):format(out, bs, ep, lr)
        io.stderr:write(("== batch %d, %d epochs, lr %g -> %s\n"):format(bs, ep, lr, cell))
        local res = bl.run_experiment({
          model = args.model, data = args.data, epochs = ep, batch_size = bs, lr = lr, eps = args.eps,
          max_length = args.max_length, seed = args.seed, limit = args.limit, val_limit = args.val_limit, out = cell,
          save = args.save, progress = not args.quiet, per_class = false, threads = args.threads,
          device = args.device, log = function() end,
        })
        local last = res.epochs[#res.epochs]
        local best = res.epochs[res.best_epoch]
        rows[#rows + 1] = { batch_size = bs, epochs = ep, lr = lr, train_loss = last.train_loss,
          val_loss = last.val_loss, best_f1 = best.val_f1, best_epoch = res.best_epoch,
          last_f1 = last.val_f1, seconds = res.seconds }
        res.model:free()
        write_csv()
      end
    end
  end
  print(markdown())
  print(("\nTable written to %s/ablation.csv"):format(out))
end

bl.script_main("ablation.lua", main)
