-- evaluate.lua: reloads a checkpoint written by conference.lua (or run_experiment) and evaluates it:
-- scikit-learn's classification_report, accuracy per class (the tutorial's report), the confusion
-- matrix and the weighted F1; confusion.svg beside the run (or --svg PATH). Several --checkpoint
-- (epochs of a run, or runs on the same rows) are evaluated on the same rows and put side by side:
-- one column per checkpoint, per-class accuracy and F1, then accuracy, macro and weighted F1, loss.
--   bin/bertlab experiments/evaluate.lua --checkpoint runs/conference-X/epoch_3
--   bin/bertlab experiments/evaluate.lua --checkpoint runs/X/epoch_1 --checkpoint runs/X/epoch_2
--   bin/bertlab experiments/evaluate.lua --checkpoint runs/conference-X/epoch_3 --data other.csv
-- The run's run.json (beside epoch_N) gives the columns, the split (its validation rows) and the
-- tokenizer settings, so the run's validation rows are evaluated and no training row. The label
-- numbering is the checkpoint's own id2label, whatever the order of the CSV's rows; a label in the
-- data that the checkpoint does not know is an error naming it. --data with another file (a
-- different sha256 than the run's) evaluates all of its rows (--rows all|val to choose).
local bl = require("bertlab")

local D = bl.EXPERIMENT_DEFAULTS

local SPEC = {
  prog = "experiments/evaluate.lua",
  description = "Evaluate a fine-tuned checkpoint on its run's validation rows or on another CSV.",
  options = {
    { "checkpoint", repeated = true, metavar = "PATH", help = "checkpoint folder (out/epoch_N); repeat it to compare checkpoints side by side (required)" },
    { "svg", metavar = "PATH", help = "write the confusion matrices there (default: RUN/confusion.svg when the first checkpoint is in a run folder; none: not)" },
    { "digits", type = "int", default = 2, help = "digits of the classification report" },
    { "data", metavar = "CSV", help = "CSV to evaluate on (default: the run's data, else " .. D.data .. ")" },
    { "text-column", metavar = "NAME", help = "column of the texts (default: the run's, else " .. D.text_column .. ")" },
    { "label-column", metavar = "NAME", help = "column of the labels (default: the run's, else " .. D.label_column .. ")" },
    { "rows", choices = { "val", "all" }, help = "the run's validation rows, or every row (default: val for the run's data, all for another file)" },
    { "val-data", metavar = "CSV", help = "without run.json: the separate validation CSV the run used" },
    { "test-size", type = "number", help = "without run.json: the split's test size (default: " .. D.test_size .. ")" },
    { "split-seed", type = "int", help = "without run.json: the split's random_state (default: " .. D.split_seed .. ")" },
    { "tokenizer", metavar = "DIR", help = "vocabulary folder if the checkpoint has no vocab.txt (default: the run's --model)" },
    { "model", metavar = "DIR", help = "the base model folder, for its vocab.txt (default: the run's, else " .. D.model .. ")" },
    { "batch-size", type = "int", default = D.val_batch_size, help = "evaluation batch size" },
    { "max-length", type = "int", help = "truncate texts to this many tokens (default: the run's, else " .. D.max_length .. ")" },
    { "pad", choices = { "longest", "max_length" }, help = "padding of the batches (default: the run's, else longest)" },
    { "val-limit", type = "int", help = "use only the first N rows evaluated (as conference.lua --val-limit)" },
    { "device", default = D.device, choices = { "cpu", "cuda" }, help = "where to evaluate" },
    { "quiet", type = "flag", help = "only the summary line" },
  },
}
local args = bl.parse_args(arg, SPEC)
local checkpoints = args.checkpoint
if #checkpoints == 0 then
  io.stderr:write(("%s: error: option --checkpoint is required\n%s(see --help)\n"):format(SPEC.prog, bl.usage(SPEC):match("^[^\n]*\n")))
  os.exit(2)
end


local function same_labels(a, b)
  if #a ~= #b then return false end
  for i = 1, #a do if a[i] ~= b[i] then return false end end
  return true
end

-- Evaluates one checkpoint: its model, the rows (from its run.json or the options) and the results.
local function evaluate_one(ckpt)
  ckpt = ckpt:gsub("/+$", "")
  if not bl.file_exists(ckpt .. "/config.json") and not ckpt:match("%.safetensors$") then
    error(("checkpoint '%s' not found (expected a folder with config.json and model.safetensors)"):format(ckpt))
  end
  -- the run that wrote the checkpoint, if any
  local run_dir = ckpt:match("^(.*)/[^/]+$") or "."
  local rec = bl.file_exists(run_dir .. "/run.json") and bl.read_json(run_dir .. "/run.json") or nil
  local ro = rec and rec.options or {}

  -- the checkpoint's labels are the truth
  local model = bl.BertForSequenceClassification.from_pretrained(ckpt, { quiet = true, strict = true, device = args.device })
  if not bl.weights_finite(model) then
    error(("checkpoint '%s': its weights hold NaN or Inf; refusing to evaluate it"):format(ckpt))
  end
  local cfg = model:config()
  local names = {}
  for id = 0, cfg.num_labels - 1 do names[id + 1] = bl.label_name(cfg.id2label, id) end
  if rec and rec.labels and not same_labels(rec.labels, names) then
    io.stderr:write(("evaluate.lua: note: %s/run.json lists the labels %s, the checkpoint %s; using the checkpoint's\n")
      :format(run_dir, table.concat(rec.labels, ", "), table.concat(names, ", ")))
  end

  local data = args.data or (rec and rec.data and rec.data.path) or D.data
  if not bl.file_exists(data) then error(("data file '%s' not found"):format(data)) end
  local text_col = args.text_column or (rec and rec.data and rec.data.text_column) or D.text_column
  local label_col = args.label_column or (rec and rec.data and rec.data.label_column) or D.label_column
  local same_data = rec and rec.data and rec.data.sha256 == bl.sha256_file(data)
  local rows = args.rows or ((rec and not same_data) and "all" or "val")
  local lopts = { text_column = text_col, label_column = label_col, labels = names, val_limit = args.val_limit }
  local what
  if rows == "all" then
    lopts.all_rows = true
    what = ("every row of %s"):format(data)
  elseif rec then
    if not same_data then
      error(("%s is not the file run %s was trained on (its sha256 differs from run.json's), so the run's validation rows do not apply; use --rows all to evaluate every row of it")
        :format(data, run_dir))
    end
    local split = rec.split or {}
    if split.method == "validation file" then
      local vd = rec.val_data or {}
      if not (vd.path and bl.file_exists(vd.path)) then error(("the run's validation file '%s' is missing"):format(tostring(vd.path))) end
      if vd.sha256 ~= bl.sha256_file(vd.path) then error(("the run's validation file '%s' changed since the run (sha256 differs)"):format(vd.path)) end
      data, lopts.all_rows = vd.path, true
      what = ("the run's validation file %s"):format(vd.path)
    else
      if type(split.val_rows) ~= "table" then error(("%s/run.json has no split.val_rows"):format(run_dir)) end
      lopts.val_rows = split.val_rows
      what = ("the run's %d validation rows of %s"):format(#split.val_rows, data)
    end
  else
    -- no run.json: recompute the split the scripts make by default (or as told)
    lopts.val_data, lopts.test_size, lopts.split_seed = args.val_data, args.test_size, args.split_seed
    what = ("the split of %s (no run.json beside the checkpoint)"):format(data)
  end
  local d = bl.load_text_classification(data, lopts)
  if #d.val.texts == 0 then error(("no rows to evaluate in %s"):format(data)) end

  local vocab_dir = bl.file_exists(ckpt .. "/vocab.txt") and ckpt
    or args.tokenizer or args.model or (rec and rec.model and rec.model.path) or D.model
  local tok = bl.BertTokenizer.from_pretrained(vocab_dir, { do_lower_case = true })
  local pad = args.pad or ro.pad or D.pad
  local ds = bl.encode_dataset(tok, d.val.texts, d.val.labels, { max_length = args.max_length or ro.max_length or D.max_length, pad = pad })
  local loader = bl.DataLoader(ds, { batch_size = args.batch_size, sampler = "sequential",
                                     pad = pad == "longest" and "longest" or "none", mask = 2 })
  local ev = bl.evaluate(model, loader, { progress = not args.quiet, desc = "Evaluating" })
  if not bl.isfinite(ev.loss) then
    error(("checkpoint '%s': the model's outputs are NaN or Inf (validation loss %s); refusing to report them"):format(ckpt, tostring(ev.loss)))
  end
  model:free()
  return { ckpt = ckpt, ev = ev, what = what, names = names, d = d, run_dir = run_dir, rec = rec }
end

local function confusion_text(cm, names)
  local w = 9
  for _, nm in ipairs(names) do w = math.max(w, #nm + 1) end
  local lines = { "Confusion matrix (rows: true, columns: predicted)" }
  local head = { (" "):rep(w) }
  for _, nm in ipairs(names) do head[#head + 1] = ("%" .. w .. "s"):format(nm) end
  lines[#lines + 1] = table.concat(head)
  for i, row in ipairs(cm) do
    local line = { ("%-" .. w .. "s"):format(names[i]) }
    for _, v in ipairs(row) do line[#line + 1] = ("%" .. w .. "d"):format(v) end
    lines[#lines + 1] = table.concat(line)
  end
  return table.concat(lines, "\n")
end

-- The checkpoints side by side: per class accuracy (correct/total) and F1, then the totals.
local function side_by_side(results)
  local names = results[1].names
  local ids = {}
  for i = 1, #names do ids[i] = i - 1 end
  local cols = {}
  for k, r in ipairs(results) do
    local ev = r.ev
    local f1 = bl.f1_score(ev.preds, ev.labels, { average = nil, labels = ids })
    local per = bl.accuracy_per_class(ev.preds, ev.labels, r.d.id2label, { quiet = true })
    local label = r.ckpt:match("([^/]+/[^/]+)$") or r.ckpt
    cols[k] = { label = label, f1 = f1, per = per, ev = ev }
  end
  local nw = #"weighted F1"
  for _, nm in ipairs(names) do nw = math.max(nw, #nm) end
  local cw = 20
  for _, c in ipairs(cols) do cw = math.max(cw, #c.label + 2) end
  local out = {}
  local function row(first, cells)
    local f = { ("%-" .. nw .. "s"):format(first) }
    for _, v in ipairs(cells) do f[#f + 1] = ("%" .. cw .. "s"):format(v) end
    out[#out + 1] = table.concat(f, " ")
  end
  local hdr = {}
  for k, c in ipairs(cols) do hdr[k] = c.label end
  row("", hdr)
  local sub = {}
  for k = 1, #cols do sub[k] = "accuracy     F1" end
  row("class", sub)
  for i, nm in ipairs(names) do
    local cells = {}
    for k, c in ipairs(cols) do
      local p = c.per[nm]
      local acc = p and ("%d/%d"):format(p.correct, p.total) or "-"
      cells[k] = ("%s %6.4f"):format(acc, c.f1[i])
    end
    row(nm, cells)
  end
  local function total(name, fn)
    local cells = {}
    for k, c in ipairs(cols) do cells[k] = fn(c.ev) end
    row(name, cells)
  end
  total("accuracy", function(ev) return ("%.4f"):format(ev.accuracy) end)
  total("macro F1", function(ev) return ("%.4f"):format(ev.f1_macro) end)
  total("weighted F1", function(ev) return ("%.4f"):format(ev.f1) end)
  total("loss", function(ev) return ("%.6f"):format(ev.loss) end)
  return table.concat(out, "\n")
end

local function main()
  local results = {}
  for k, c in ipairs(checkpoints) do
    results[k] = evaluate_one(c)
    if k > 1 then
      local a, b = results[1], results[k]
      local same = #a.names == #b.names and #a.ev.labels == #b.ev.labels
      for i = 1, #a.names do same = same and a.names[i] == b.names[i] end
      for i = 1, same and #a.ev.labels or 0 do same = same and a.ev.labels[i] == b.ev.labels[i] end
      if not same then
        error(("checkpoints %s and %s were not evaluated on the same labelled rows (%d and %d texts, labels %s / %s); compare checkpoints of one run, or of runs on the same data and split")
          :format(a.ckpt, b.ckpt, #a.ev.labels, #b.ev.labels, table.concat(a.names, ","), table.concat(b.names, ",")))
      end
    end
  end
  local names = results[1].names
  local ids = {}
  for i = 1, #names do ids[i] = i - 1 end
  local panels = {}
  for _, r in ipairs(results) do
    local ev = r.ev
    local cm = bl.confusion_matrix(ev.preds, ev.labels, { labels = ids })
    panels[#panels + 1] = { title = r.ckpt:match("([^/]+)$") or r.ckpt, cm = cm }
    if not args.quiet then
      if #results > 1 then print(("== %s"):format(r.ckpt)) end
      print(("Evaluated on %s."):format(r.what))
      io.write(bl.classification_report(ev.preds, ev.labels, names, { digits = args.digits }), "\n")
      bl.accuracy_per_class(ev.preds, ev.labels, r.d.id2label)
      print(confusion_text(cm, names))
      print()
    end
  end
  if #results > 1 and not args.quiet then print(side_by_side(results)); print() end
  -- confusion.svg: beside the run, or --svg PATH (none: not written)
  local svg = args.svg
  if svg == nil and results[1].rec then svg = results[1].run_dir .. "/confusion.svg" end
  if svg and svg ~= "none" then
    bl.write_file(svg, bl.confusion_svg(panels, names, { title = ("Confusion matrix on %s (rows: true, columns: predicted)")
      :format(results[1].what:gsub("^the run's ", ""):gsub(" of .*$", "")) }))
    if not args.quiet then print(("Confusion matrices in %s"):format(svg)) end
  end
  for _, r in ipairs(results) do
    print(("%s: %d texts, loss %.6f, accuracy %.4f, F1 Score (Weighted): %.6f"):format(
      r.ckpt, #r.ev.labels, r.ev.loss, r.ev.accuracy, r.ev.f1))
  end
end

bl.script_main("evaluate.lua", main)
