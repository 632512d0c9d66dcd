-- conference.lua: the tutorial "Multi Class Text Classification With Deep Learning Using BERT",
-- step for step: 2,507 paper titles, 5 conferences, BERT fine-tuned for 5 epochs.
--   bin/bertlab experiments/conference.lua [--epochs 5] [--lr 1e-5] [--out runs/x] [--limit 30] ...
-- Each numbered step below is a step of the tutorial. Per epoch the script writes a checkpoint
-- out/epoch_N (atomically), out/results.jsonl, out/results.csv and out/chart.svg; at the end it
-- reloads the best epoch's checkpoint (or --eval-epoch) and prints the accuracy per class.
-- Padding: the tutorial pads every title to 256 tokens; --pad longest (the default) trims each
-- batch to its longest title instead, much faster with the same results: padded positions are masked,
-- and dropout masks depend on a token's position, not on the padded width, so training with either
-- padding gives the same losses (tests/test_experiments.lua checks both).
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
    { "device", default = D.device, choices = { "cpu", "cuda" }, help = "where to train (cuda: needs a GPU and the CUDA backend)" },
    { "out", metavar = "DIR", help = "output folder (default runs/conference-<timestamp>)" },
    { "limit", type = "int", help = "use only the first N training titles (tests, smoke runs)" },
    { "val-limit", type = "int", help = "use only the first N validation titles (tests, smoke runs)" },
    { "eval-epoch", type = "int", help = "epoch to reload at the end (default: best weighted F1)" },
    { "no-save", type = "flag", help = "do not write checkpoints (results files are still written)" },
    { "quiet", type = "flag", help = "no progress bars" },
  },
})

local function main()
  if args.device == "cuda" and not bl.cuda_available() then
    error("--device cuda is not available yet here (CUDA is not available: " .. bl.cuda_describe() .. ")")
  end
  if args.threads then bl.set_num_threads(args.threads) end
  local out = args.out or ("runs/conference-" .. bl.timestamp())
  if bl.file_exists(out .. "/results.jsonl") then
    error(("'%s' already holds a run (results.jsonl); choose another --out"):format(out))
  end
  if args.eval_epoch and (args.eval_epoch < 1 or args.eval_epoch > args.epochs or args.no_save) then
    error(("--eval-epoch must name a saved epoch between 1 and %d"):format(args.epochs))
  end
  local t_start = bl.clock()

  -- 1. Seed every random stream (the tutorial seeds random, numpy and torch with 17).
  bl.seed(args.seed)

  -- 2. Read the titles; number the labels in order of first appearance (VLDB 0, ISCAS 1, ...).
  local df = bl.read_csv(args.data)
  local possible_labels = bl.unique(df.Conference)
  local label_dict, id2label = {}, {}
  for i, name in ipairs(possible_labels) do label_dict[name], id2label[i - 1] = i - 1, name end
  local labels = {}
  for i, name in ipairs(df.Conference) do labels[i] = label_dict[name] end

  -- 3. Stratified split, test_size 0.15, random_state 42 (scikit-learn's exact indices); the
  --    tutorial then selects df[df.data_type == 'train'], i.e. rows in file order.
  local train_idx, val_idx = bl.train_test_split(df:nrows(), { test_size = 0.15, random_state = 42, stratify = labels })
  table.sort(train_idx)
  table.sort(val_idx)
  for i = #train_idx, (args.limit or #train_idx) + 1, -1 do train_idx[i] = nil end
  for i = #val_idx, (args.val_limit or #val_idx) + 1, -1 do val_idx[i] = nil end

  -- 4. BertTokenizer (lower-cased): special tokens, attention mask, padding, max_length 256.
  local tokenizer = bl.BertTokenizer.from_pretrained(args.model, { do_lower_case = true })
  local function dataset(idx)
    local texts, ys = {}, {}
    for k, r in ipairs(idx) do texts[k], ys[k] = df.Title[r], labels[r] end
    local enc = tokenizer:batch_encode_plus(texts, { add_special_tokens = true, return_attention_mask = true,
      padding = args.pad, max_length = args.max_length, truncation = true })
    return bl.TensorDataset(enc.input_ids, enc.attention_mask, bl.tensor(ys, "int64"))
  end
  local dataset_train, dataset_val = dataset(train_idx), dataset(val_idx)

  -- 5. Data loaders: RandomSampler for training (batch 3), SequentialSampler for validation.
  local pad = args.pad == "longest" and "longest" or "none"
  local dataloader_train = bl.DataLoader(dataset_train, { batch_size = args.batch_size, sampler = "random", pad = pad })
  local dataloader_val = bl.DataLoader(dataset_val, { batch_size = args.val_batch_size, sampler = "sequential", pad = pad })

  -- 6. BertForSequenceClassification with one output per conference.
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
  bl.mkdir_p(out)
  local rows = {}
  for epoch = 1, args.epochs do
    local t0, lr = bl.clock(), optimizer.lr
    model:train()
    local loss_train_total = 0
    local bar = not args.quiet and bl.progress(#dataloader_train, { desc = ("Epoch %d"):format(epoch) }) or nil
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
    if not args.no_save then
      bl.save_checkpoint(model, ("%s/epoch_%d"):format(out, epoch))
      row.checkpoint = ("epoch_%d"):format(epoch)
    end
    local val = bl.evaluate(model, dataloader_val)
    row.val_loss, row.val_f1, row.val_accuracy, row.seconds = val.loss, val.f1, val.accuracy, bl.clock() - t0
    print(("\nEpoch %d\nTraining loss: %.6f\nValidation loss: %.6f\nF1 Score (Weighted): %.6f"):format(
      epoch, row.train_loss, row.val_loss, row.val_f1))
    rows[#rows + 1] = row
    bl.append_line(out .. "/results.jsonl", bl.json_encode(row))
    bl.write_file(out .. "/results.csv", bl.results_csv(rows))
    bl.write_file(out .. "/chart.svg", bl.results_svg(rows))
  end

  -- 9. Reload an epoch's checkpoint (the best weighted F1 unless --eval-epoch) and print the
  --    accuracy per class, as the tutorial's last step.
  local best = args.eval_epoch or 1
  if not args.eval_epoch then
    for i, r in ipairs(rows) do if r.val_f1 > rows[best].val_f1 then best = i end end
  end
  local final
  if args.no_save then
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
  print(("\nResults in %s (results.csv, results.jsonl, chart.svg); best epoch %d; %.1f s in all."):format(
    out, best, bl.clock() - t_start))
end

bl.script_main("conference.lua", main)
