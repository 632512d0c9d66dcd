-- evaluate.lua: reloads a checkpoint written by conference.lua and evaluates it on the same
-- validation split (stratified, test_size 0.15, random_state 42): accuracy per class (the
-- tutorial's report), the confusion matrix and the weighted F1.
--   bin/bertlab experiments/evaluate.lua --checkpoint runs/conference-X/epoch_3
local bl = require("bertlab")

local D = bl.EXPERIMENT_DEFAULTS
local args = bl.parse_args(arg, {
  prog = "experiments/evaluate.lua",
  description = "Evaluate a fine-tuned checkpoint on the tutorial's validation split.",
  options = {
    { "checkpoint", metavar = "PATH", required = true, help = "checkpoint folder (out/epoch_N)" },
    { "data", default = D.data, metavar = "CSV", help = "CSV with Title and Conference columns" },
    { "tokenizer", metavar = "DIR", help = "vocabulary folder if the checkpoint has no vocab.txt (default: --model)" },
    { "model", default = D.model, metavar = "DIR", help = "the base model folder (for its vocab.txt)" },
    { "batch-size", type = "int", default = D.val_batch_size, help = "evaluation batch size" },
    { "max-length", type = "int", default = D.max_length, help = "truncate titles to this many tokens" },
    { "pad", default = D.pad, choices = { "longest", "max_length" }, help = "padding of the batches" },
    { "val-limit", type = "int", help = "use only the first N validation titles (as conference.lua --val-limit)" },
    { "device", default = D.device, choices = { "cpu", "cuda" }, help = "where to evaluate" },
    { "quiet", type = "flag", help = "only the summary line" },
  },
})

local function main()
  local ckpt = args.checkpoint
  if not bl.file_exists(ckpt .. "/config.json") and not ckpt:match("%.safetensors$") then
    error(("checkpoint '%s' not found (expected a folder with config.json and model.safetensors)"):format(ckpt))
  end
  local d = bl.load_text_classification(args.data, { val_limit = args.val_limit })
  local vocab_dir = bl.file_exists(ckpt .. "/vocab.txt") and ckpt or (args.tokenizer or args.model)
  local tok = bl.BertTokenizer.from_pretrained(vocab_dir, { do_lower_case = true })
  local ds = bl.encode_dataset(tok, d.val.texts, d.val.labels, { max_length = args.max_length, pad = args.pad })
  local loader = bl.DataLoader(ds, { batch_size = args.batch_size, sampler = "sequential",
                                     pad = args.pad == "longest" and "longest" or "none", mask = 2 })
  local model = bl.BertForSequenceClassification.from_pretrained(ckpt, { num_labels = #d.names, id2label = d.id2label, quiet = true, device = args.device })
  local ev = bl.evaluate(model, loader)
  if not args.quiet then
    bl.accuracy_per_class(ev.preds, ev.labels, d.id2label)
    local cm, labels = bl.confusion_matrix(ev.preds, ev.labels, { labels = { 0, 1, 2, 3, 4 } })
    print("Confusion matrix (rows: true, columns: predicted)")
    local head = { ("%-10s"):format("") }
    for _, l in ipairs(labels) do head[#head + 1] = ("%9s"):format(d.id2label[l]) end
    print(table.concat(head))
    for i, row in ipairs(cm) do
      local line = { ("%-10s"):format(d.id2label[labels[i]]) }
      for _, v in ipairs(row) do line[#line + 1] = ("%9d"):format(v) end
      print(table.concat(line))
    end
  end
  print(("%s: %d validation titles, loss %.6f, accuracy %.4f, F1 Score (Weighted): %.6f"):format(
    ckpt, #ev.labels, ev.loss, ev.accuracy, ev.f1))
end

bl.script_main("evaluate.lua", main)
