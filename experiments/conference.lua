-- conference.lua: the tutorial "Multi Class Text Classification With Deep Learning Using BERT",
-- step for step: 2,507 paper titles, 5 conferences, BERT fine-tuned for 5 epochs; or the same recipe
-- on any CSV of yours (--data, --text-column, --label-column, --val-data).
--   bin/bertlab experiments/conference.lua [--epochs 5] [--lr 1e-5] [--out runs/x] [--limit 30] ...
--   bin/bertlab experiments/conference.lua --data my.csv --text-column text --label-column label
-- Each numbered step below is a step of the tutorial. The script writes out/run.json first (every
-- option, the command line, the model's and data's sha256, labels, split; see docs/api/train.md),
-- then per epoch a checkpoint out/epoch_N (atomically; --save all|best|none), out/results.jsonl,
-- out/results.csv and out/chart.svg; at the end it reloads the best epoch's checkpoint (or
-- --eval-epoch) and prints the accuracy per class.
-- Padding: the tutorial pads every title to 256 tokens; --pad longest (the default) trims each
-- batch to its longest title instead, much faster with the same results: padded positions are masked,
-- and dropout masks depend on a token's position, not on the padded width, so training with either
-- padding gives the same losses (tests/test_experiments.lua checks both).
local bl = require("bertlab")

local D = bl.EXPERIMENT_DEFAULTS
local args = bl.parse_args(arg, {
  prog = "experiments/conference.lua",
  description = "Fine-tune BERT on the conference titles (the tutorial's recipe), or on any CSV of texts and labels.",
  options = {
    { "model", default = D.model, metavar = "DIR", help = "model folder (config.json, model.safetensors, vocab.txt)" },
    { "data", default = D.data, metavar = "CSV", help = "training CSV (a header line, then one text and label a row)" },
    { "text-column", default = D.text_column, metavar = "NAME", help = "the CSV column holding the texts" },
    { "label-column", default = D.label_column, metavar = "NAME", help = "the CSV column holding the labels" },
    { "val-data", metavar = "CSV", help = "a separate validation CSV (same columns) instead of splitting --data" },
    { "test-size", type = "number", default = D.test_size, help = "validation share of --data (a fraction, or a row count)" },
    { "split-seed", type = "int", default = D.split_seed, help = "random_state of the stratified split" },
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
    { "class-weights", default = D.class_weights, metavar = "none|balanced|w1,w2,...", help = "weights of the loss per class: none, balanced (n / (classes * count) over the training labels), or one number per class" },
    { "sampler", default = D.sampler, choices = { "random", "weighted" }, help = "training order: a shuffle, or draws with replacement by inverse class frequency" },
    { "threads", type = "int", help = "CPU threads (OpenBLAS and OpenMP; default: all cores)" },
    { "device", default = D.device, choices = { "cpu", "cuda" }, help = "where to train (cuda: needs a GPU and the CUDA backend)" },
    { "out", metavar = "DIR", help = "output folder (default runs/conference-<timestamp>)" },
    { "limit", type = "int", help = "use only the first N training titles (tests, smoke runs)" },
    { "val-limit", type = "int", help = "use only the first N validation titles (tests, smoke runs)" },
    { "eval-epoch", type = "int", help = "epoch to reload at the end (default: best weighted F1)" },
    { "save", default = D.save, choices = { "all", "best", "none" }, help = "checkpoints to keep: every epoch's, only the best so far, none" },
    { "no-save", type = "flag", help = "the same as --save none" },
    { "quiet", type = "flag", help = "no progress bars" },
    { "resume", metavar = "DIR", help = "continue the run in DIR from its last training state (its options come from DIR/run.json)" },
    { "save-every", type = "int", help = "also save a training state every N steps (for --resume mid-epoch)" },
    { "on-nan", default = "stop", choices = { "stop", "skip" }, help = "on a NaN/Inf loss or gradient: stop, or skip the step" },
    { "max-nan-skips", type = "int", default = 10, help = "with --on-nan skip: stop after more than N skipped steps" },
    { "keep-state", type = "flag", help = "keep OUT/state when the run finishes (removed by default)" },
  },
})

-- The tutorial's steps. bl.Experiment (lua/bertlab/train.lua) keeps the run's books: the options
-- (with --resume, the recipe recorded in run.json), run.json, checkpoints, training states, the
-- results files, Ctrl-C. bl.run_experiment runs these same steps as one call (ablation.lua).
local function main()
  if args.device == "cuda" and not bl.cuda_available() then
    error("--device cuda is not available yet here (CUDA is not available: " .. bl.cuda_describe() .. ")")
  end
  if args.no_save then args.save = "none" end
  if args.threads then bl.set_num_threads(args.threads) end
  local t_start = bl.clock()
  local exp
  if args.resume then
    exp = bl.Experiment({ resume = args.resume, progress = not args.quiet, keep_state = args.keep_state,
      trap_signals = true, script = "experiments/conference.lua", threads = args.threads })
  else
    local out = args.out or ("runs/conference-" .. bl.timestamp())
    if bl.file_exists(out .. "/results.jsonl") or bl.file_exists(out .. "/run.json") then
      error(("'%s' already holds a run (run.json, results.jsonl); choose another --out, or continue it with --resume %s")
        :format(out, out))
    end
    if args.eval_epoch and (args.eval_epoch < 1 or args.eval_epoch > args.epochs or args.save ~= "all") then
      error(("--eval-epoch must name a saved epoch between 1 and %d (and needs --save all)"):format(args.epochs))
    end
    for _, f in ipairs({ args.data, args.val_data }) do
      if not bl.file_exists(f) then error(("data file '%s' not found%s"):format(f, f == D.data and " (run `make data`)" or "")) end
    end
    local o = {
      model = args.model, data = args.data, text_column = args.text_column, label_column = args.label_column,
      val_data = args.val_data, test_size = args.test_size, split_seed = args.split_seed, epochs = args.epochs,
      batch_size = args.batch_size, val_batch_size = args.val_batch_size, lr = args.lr, eps = args.eps,
      weight_decay = args.weight_decay, warmup = args.warmup, max_length = args.max_length, pad = args.pad,
      seed = args.seed, class_weights = args.class_weights, sampler = args.sampler, threads = args.threads, device = args.device, out = out, limit = args.limit,
      val_limit = args.val_limit, eval_epoch = args.eval_epoch, save = args.save, progress = not args.quiet,
      save_every = args.save_every, on_nan = args.on_nan, max_nan_skips = args.max_nan_skips, keep_state = args.keep_state,
      trap_signals = true, script = "experiments/conference.lua" }
    -- run.json records every option: the recipe (what --resume reads back) and the script's own flags
    local recorded = {}
    for k, v in pairs(D) do recorded[k] = v end
    for k, v in pairs(o) do recorded[k] = v end
    recorded.no_save, recorded.quiet, recorded.trap_signals, recorded.script = args.no_save, args.quiet, nil, nil
    o.record = { options = recorded }
    exp = bl.Experiment(o)
  end
  local o = exp.o -- the recipe: these options, or those recorded in the run being resumed
  local res = exp:run(function()
    -- 1. Seed every random stream (the tutorial seeds random, numpy and torch with 17).
    bl.seed(o.seed)
    -- 2. Read the texts; number the labels in order of first appearance (VLDB 0, ISCAS 1, ...).
    -- 3. Stratified split, test_size 0.15, random_state 42 (scikit-learn's exact indices); the
    --    tutorial then selects df[df.data_type == 'train'], i.e. rows in file order. (--val-data:
    --    every row of --data trains, every row of --val-data validates.) run.json is written here.
    local d = exp:load_data()
    -- 4. BertTokenizer (lower-cased): special tokens, attention mask, padding, max_length 256.
    local tok = bl.BertTokenizer.from_pretrained(o.model, { do_lower_case = true })
    local ds_train = bl.encode_dataset(tok, d.train.texts, d.train.labels, o)
    local ds_val = bl.encode_dataset(tok, d.val.texts, d.val.labels, o)
    -- 5. Data loaders: RandomSampler for training (batch 3), SequentialSampler for validation.
    --    Under mpirun/srun (exp.world processes) a batch is global: each process trains on its
    --    --batch-size rows of it, and the gradients are summed.
    local pad = o.pad == "longest" and "longest" or "none"
    --    (--sampler weighted: draws with replacement by inverse class frequency instead.)
    local train_loader = bl.DataLoader(ds_train, { batch_size = o.batch_size * exp.world, sampler = exp.sampler,
      weights = exp.sampler_weights, pad = pad, mask = 2 })
    local val_loader = bl.DataLoader(ds_val, { batch_size = o.val_batch_size * exp.world, sampler = "sequential", pad = pad, mask = 2 })
    -- 6. BertForSequenceClassification with one output per label.
    local model = bl.BertForSequenceClassification.from_pretrained(o.model,
      { num_labels = #d.names, id2label = d.id2label, quiet = true, device = o.device })
    --    (--class-weights: the loss weighs each class; exp:load_data computed them from the training labels.)
    if exp.class_weights then model:set_class_weights(exp.class_weights) end
    -- 7. AdamW (lr 1e-5, eps 1e-8) and a linear schedule without warm-up over every step.
    local opt = bl.AdamW(model:parameters(), { lr = o.lr, eps = o.eps, weight_decay = o.weight_decay })
    local sched = bl.get_linear_schedule_with_warmup(opt, o.warmup, #train_loader * o.epochs)
    exp:start({ model = model, optimizer = opt, scheduler = sched, train_loader = train_loader, val_loader = val_loader })
    -- 8. The epoch loop: train (clipping gradients at 1.0), evaluate, save a checkpoint and a
    --    training state (out/state: --resume continues from it; Ctrl-C saves one and stops with
    --    status 130). A resumed run starts after its last finished epoch.
    for epoch in exp:epochs() do
      local train_loss, info = exp:train_epoch(epoch)
      local ev = bl.evaluate(model, val_loader, exp:eval_options())
      exp:end_epoch(epoch, train_loss, ev, info)
    end
    -- 9. Reload an epoch's checkpoint (the best weighted F1 unless --eval-epoch) and print the
    --    accuracy per class, as the tutorial's last step.
    local best = o.eval_epoch or exp:best_epoch()
    local path, final = exp:checkpoint(best), nil
    if path then
      model:load(path)
      final = bl.evaluate(model, val_loader, { dist = exp.eval_dist })
      exp.log(("\nReloaded %s (epoch %d): validation loss %.6f, weighted F1 %.6f, accuracy %.4f"):format(
        path, best, final.loss, final.f1, final.accuracy))
    else
      final = exp.last_ev or bl.evaluate(model, val_loader, { dist = exp.eval_dist }) -- no checkpoint kept (--save none): the model as it ended
      exp.log(("\nFinal model (epoch %d, no checkpoints saved): weighted F1 %.6f"):format(#exp.rows, final.f1))
    end
    bl.accuracy_per_class(final.preds, final.labels, d.id2label, { quiet = not exp.writer })
    return exp:finish(final, best)
  end)
  exp.log(("\nResults in %s (run.json, results.csv, results.jsonl, chart.svg); best epoch %d; %.1f s in all."):format(
    res.out, res.best_epoch, bl.clock() - t_start))
  exp.log(("Wall time %.1f s; training %.2f steps/s (%.1f s of training)."):format(bl.clock() - t_start,
    res.steps_per_second, res.train_seconds))
end

bl.script_main("conference.lua", main)
