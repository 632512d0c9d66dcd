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
    { "threads", type = "int", help = "CPU threads (OpenBLAS and OpenMP; default: all cores)" },
    { "device", default = D.device, choices = { "cpu", "cuda" }, help = "where to train (cuda: needs a GPU and the CUDA backend)" },
    { "out", metavar = "DIR", help = "output folder (default runs/conference-<timestamp>)" },
    { "limit", type = "int", help = "use only the first N training titles (tests, smoke runs)" },
    { "val-limit", type = "int", help = "use only the first N validation titles (tests, smoke runs)" },
    { "eval-epoch", type = "int", help = "epoch to reload at the end (default: best weighted F1)" },
    { "save", default = D.save, choices = { "all", "best", "none" }, help = "checkpoints to keep: every epoch's, only the best so far, none" },
    { "no-save", type = "flag", help = "the same as --save none" },
    { "quiet", type = "flag", help = "no progress bars" },
  },
})

local function main()
  if args.device == "cuda" and not bl.cuda_available() then
    error("--device cuda is not available yet here (CUDA is not available: " .. bl.cuda_describe() .. ")")
  end
  if args.no_save then args.save = "none" end
  if args.threads then bl.set_num_threads(args.threads) end
  local out = args.out or ("runs/conference-" .. bl.timestamp())
  if bl.file_exists(out .. "/results.jsonl") or bl.file_exists(out .. "/run.json") then
    error(("'%s' already holds a run (run.json, results.jsonl); choose another --out"):format(out))
  end
  if args.eval_epoch and (args.eval_epoch < 1 or args.eval_epoch > args.epochs or args.save ~= "all") then
    error(("--eval-epoch must name a saved epoch between 1 and %d (and needs --save all)"):format(args.epochs))
  end
  for _, f in ipairs({ args.data, args.val_data }) do
    if not bl.file_exists(f) then error(("data file '%s' not found%s"):format(f, f == D.data and " (run `make data`)" or "")) end
  end
  local t_start = bl.clock()

  -- 1. Seed every random stream (the tutorial seeds random, numpy and torch with 17).
  bl.seed(args.seed)

  -- 2. Read the texts; number the labels in order of first appearance (VLDB 0, ISCAS 1, ...).
  -- 3. Stratified split, test_size 0.15, random_state 42 (scikit-learn's exact indices); the
  --    tutorial then selects df[df.data_type == 'train'], i.e. rows in file order. (--val-data:
  --    every row of --data trains, every row of --val-data validates.)
  local d = bl.load_text_classification(args.data, { text_column = args.text_column, label_column = args.label_column,
    test_size = args.test_size, split_seed = args.split_seed, val_data = args.val_data,
    limit = args.limit, val_limit = args.val_limit })
  local possible_labels, id2label = d.names, d.id2label
  if #possible_labels < 2 then
    error(("%s: column '%s' has a single label; a classifier needs two or more"):format(args.data, args.label_column))
  end

  -- The run records itself before training: run.json (rewritten with the end time at the end).
  bl.mkdir_p(out)
  local name = out:gsub("/+$", ""):match("([^/]+)$")
  local rec = bl.run_record({ name = name, script = "experiments/conference.lua", options = args, model = args.model,
    data = args.data, val_data = args.val_data, text_column = d.text_column, label_column = d.label_column, d = d,
    device = args.device })
  bl.write_run_json(out, rec)
  bl.with_run_record(out, rec, function() -- a failure is recorded in run.json too

    -- 4. BertTokenizer (lower-cased): special tokens, attention mask, padding, max_length 256.
    local tokenizer = bl.BertTokenizer.from_pretrained(args.model, { do_lower_case = true })
    local function dataset(part)
      local enc = tokenizer:batch_encode_plus(part.texts, { add_special_tokens = true, return_attention_mask = true,
        padding = args.pad, max_length = args.max_length, truncation = true })
      return bl.TensorDataset(enc.input_ids, enc.attention_mask, bl.tensor(part.labels, "int64"))
    end
    local dataset_train, dataset_val = dataset(d.train), dataset(d.val)

    -- 5. Data loaders: RandomSampler for training (batch 3), SequentialSampler for validation.
    local pad = args.pad == "longest" and "longest" or "none"
    local dataloader_train = bl.DataLoader(dataset_train, { batch_size = args.batch_size, sampler = "random", pad = pad })
    local dataloader_val = bl.DataLoader(dataset_val, { batch_size = args.val_batch_size, sampler = "sequential", pad = pad })

    -- 6. BertForSequenceClassification with one output per label.
    local model = bl.BertForSequenceClassification.from_pretrained(args.model,
      { num_labels = #possible_labels, id2label = id2label, quiet = true, device = args.device })

    -- 7. AdamW (lr 1e-5, eps 1e-8) and a linear schedule without warm-up over every step.
    local params = model:parameters()
    local optimizer = bl.AdamW(params, { lr = args.lr, eps = args.eps, weight_decay = args.weight_decay })
    local total_steps = #dataloader_train * args.epochs
    local scheduler = bl.get_linear_schedule_with_warmup(optimizer, args.warmup, total_steps)
    print(("%d training and %d validation titles, %d classes; %d batches of %d per epoch, %d epochs, %d steps"):format(
      #dataset_train, #dataset_val, #possible_labels, #dataloader_train, args.batch_size, args.epochs, total_steps))

    -- 8. The epoch loop: train (clipping gradients at 1.0), save a checkpoint, evaluate.
    local keeper = bl.checkpoint_keeper(out, args.save)
    local title, subtitle = bl.chart_title(name, args)
    local run_bar = not args.quiet and bl.run_progress(args.epochs) or nil
    local rows = {}
    for epoch = 1, args.epochs do
      local t0, lr = bl.clock(), optimizer.lr
      model:train()
      local loss_train_total = 0
      local bar = not args.quiet and bl.progress(#dataloader_train, { desc = ("Epoch %d/%d"):format(epoch, args.epochs) }) or nil
      for batch in dataloader_train:iter() do
        model:zero_grad()
        local outputs = model:forward({ input_ids = batch[1], attention_mask = batch[2], labels = batch[3] })
        local loss = outputs.loss:item()
        if loss ~= loss then error(("the training loss became NaN in epoch %d"):format(epoch)) end
        loss_train_total = loss_train_total + loss
        outputs.loss:backward()
        bl.clip_grad_norm(params, 1.0)
        optimizer:step()
        scheduler:step()
        if bar then bar:update(1, { loss = loss }) end
      end
      if bar then bar:close() end
      local row = { epoch = epoch, lr = lr, train_loss = loss_train_total / #dataloader_train }
      local val = bl.evaluate(model, dataloader_val, { progress = not args.quiet })
      row.val_loss, row.val_f1, row.val_accuracy, row.seconds = val.loss, val.f1, val.accuracy, bl.clock() - t0
      row.checkpoint = keeper:epoch_end(model, epoch, val.f1)
      print(("\nEpoch %d\nTraining loss: %.6f\nValidation loss: %.6f\nF1 Score (Weighted): %.6f"):format(
        epoch, row.train_loss, row.val_loss, row.val_f1))
      rows[#rows + 1] = row
      bl.append_line(out .. "/results.jsonl", bl.json_encode(row))
      if args.save == "best" then -- only the best epoch's checkpoint is left
        for _, r in ipairs(rows) do if r.checkpoint ~= keeper.best_checkpoint then r.checkpoint = nil end end
      end
      bl.write_file(out .. "/results.csv", bl.results_csv(rows))
      bl.write_file(out .. "/chart.svg", bl.results_svg(rows, { title = title, subtitle = subtitle }))
      if run_bar then run_bar:epoch_done(epoch) end
    end

    -- 9. Reload an epoch's checkpoint (the best weighted F1 unless --eval-epoch) and print the
    --    accuracy per class, as the tutorial's last step.
    local best = args.eval_epoch or keeper.best_epoch
    local final
    if args.save == "none" then
      final = bl.evaluate(model, dataloader_val)
      print(("\nFinal model (epoch %d, no checkpoints saved): weighted F1 %.6f"):format(#rows, final.f1))
    else
      local path = ("%s/epoch_%d"):format(out, best)
      model:load(path)
      final = bl.evaluate(model, dataloader_val)
      print(("\nReloaded %s (epoch %d): validation loss %.6f, weighted F1 %.6f, accuracy %.4f"):format(
        path, best, final.loss, final.f1, final.accuracy))
    end
    bl.accuracy_per_class(final.preds, final.labels, id2label)
    local seconds = bl.clock() - t_start
    bl.finish_run_record(out, rec, { best_epoch = best, best_f1 = rows[keeper.best_epoch].val_f1,
      best_checkpoint = args.save ~= "none" and ("epoch_%d"):format(best) or bl.json_null, final_f1 = final.f1,
      seconds = seconds })
    print(("\nResults in %s (run.json, results.csv, results.jsonl, chart.svg); best epoch %d; %.1f s in all."):format(
      out, best, seconds))
  end)
end

bl.script_main("conference.lua", main)
