-- conference.lua: the tutorial "Multi Class Text Classification With Deep Learning Using BERT",
-- step by step: 2,507 paper titles, 5 conferences, BERT fine-tuned for 5 epochs.
--   bin/bertlab experiments/conference.lua [--epochs 5] [--out runs/x] [--limit 30] ...
-- Seeds 17; labels by first appearance (VLDB 0, ISCAS 1, SIGGRAPH 2, INFOCOM 3, WWW 4); stratified
-- split test_size 0.15 random_state 42; batch 3, AdamW lr 1e-5 eps 1e-8, linear schedule without
-- warm-up, gradient clipping at 1.0. Per epoch: a checkpoint out/epoch_N, results.jsonl/.csv and
-- chart.svg; at the end the best epoch is reloaded and the accuracy per class printed.
-- Padding: the tutorial pads every title to 256 tokens; --pad longest (the default) trims each
-- batch to its longest title instead: the same model outputs (evaluation is identical), much
-- faster; in training only the random dropout masks differ, as they are drawn over the padded shape.
local bl = require("bertlab")

local D = bl.EXPERIMENT_DEFAULTS
local args = bl.parse_args(arg, {
  prog = "experiments/conference.lua",
  description = "Fine-tune BERT on the conference titles (the tutorial's recipe).",
  options = {
    { "model", default = D.model, metavar = "DIR", help = "model folder (config.json, model.safetensors, vocab.txt)" },
    { "data", default = D.data, metavar = "CSV", help = "CSV with Title and Conference columns" },
    { "epochs", type = "int", default = D.epochs, help = "training epochs" },
    { "batch-size", type = "int", default = D.batch_size, help = "training batch size" },
    { "val-batch-size", type = "int", default = D.val_batch_size, help = "validation batch size (does not change results)" },
    { "lr", type = "number", default = D.lr, help = "AdamW learning rate" },
    { "eps", type = "number", default = D.eps, help = "AdamW epsilon" },
    { "weight-decay", type = "number", default = D.weight_decay, help = "AdamW weight decay" },
    { "warmup", type = "int", default = D.warmup, help = "linear warm-up steps" },
    { "max-length", type = "int", default = D.max_length, help = "truncate titles to this many tokens" },
    { "pad", default = D.pad, choices = { "longest", "max_length" }, help = "pad each batch to its longest title, or all to --max-length" },
    { "seed", type = "int", default = D.seed, help = "random seed" },
    { "threads", type = "int", help = "CPU threads (OpenBLAS and OpenMP; default: all cores)" },
    { "device", default = D.device, choices = { "cpu", "cuda" }, help = "where to train (cuda: not yet)" },
    { "out", metavar = "DIR", help = "output folder (default runs/conference-<timestamp>)" },
    { "limit", type = "int", help = "use only the first N training titles (tests, smoke runs)" },
    { "val-limit", type = "int", help = "use only the first N validation titles (tests, smoke runs)" },
    { "eval-epoch", type = "int", help = "epoch to reload at the end (default: best weighted F1)" },
    { "no-save", type = "flag", help = "do not write checkpoints (results files are still written)" },
    { "quiet", type = "flag", help = "no progress bars" },
  },
})

local out = args.out or ("runs/conference-" .. bl.timestamp())
local ok, res = pcall(bl.run_experiment, {
  model = args.model, data = args.data, epochs = args.epochs, batch_size = args.batch_size,
  val_batch_size = args.val_batch_size, lr = args.lr, eps = args.eps, weight_decay = args.weight_decay,
  warmup = args.warmup, max_length = args.max_length, pad = args.pad, seed = args.seed,
  device = args.device, out = out, limit = args.limit, val_limit = args.val_limit, eval_epoch = args.eval_epoch,
  save = not args.no_save, progress = not args.quiet, threads = args.threads,
})
if not ok then
  io.stderr:write("conference.lua: ", tostring(res):gsub("^[^:]*:%d+: ", ""), "\n")
  os.exit(1)
end
print(("\nResults in %s (results.csv, results.jsonl, chart.svg); best epoch %d; %.1f s in all."):format(
  out, res.best_epoch, res.seconds))
