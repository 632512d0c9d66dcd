-- predict.lua: the label a fine-tuned checkpoint predicts for texts, with the probability of every
-- class (softmax of the logits). Texts come as arguments, from --input (a CSV's --column, or plain
-- lines), or from standard input (plain lines); they are encoded and run in batches of --batch-size,
-- so memory stays bounded whatever the input's size. --output writes a CSV (text, predicted label,
-- one probability column per class) or JSON lines (.jsonl), atomically; a progress bar on stderr.
--   bin/bertlab experiments/predict.lua --checkpoint runs/conference-X/epoch_3 "A title" "Another"
--   bin/bertlab experiments/predict.lua --checkpoint RUN/epoch_3 --input new.csv --column Title --output predictions.csv
local bl = require("bertlab")

local D = bl.EXPERIMENT_DEFAULTS
local args = bl.parse_args(arg, {
  prog = "experiments/predict.lua",
  description = "Predict the labels of texts with a fine-tuned checkpoint.",
  positional = { name = "titles", multiple = true, help = "texts to classify (default: --input, else standard input, one per line)" },
  options = {
    { "checkpoint", metavar = "PATH", required = true, help = "checkpoint folder (out/epoch_N)" },
    { "input", metavar = "FILE", help = "a CSV (with --column, or a name ending in .csv) or plain text, one text a line; - for stdin (a CSV with --column)" },
    { "column", metavar = "NAME", help = "the CSV column holding the texts (default: the run's text column, else " .. D.text_column .. ")" },
    { "text-column", metavar = "NAME", help = "the same as --column (the name the other scripts use)" },
    { "data", metavar = "FILE", help = "the same as --input" },
    { "output", metavar = "FILE", help = "write the predictions here: CSV, or JSON lines for a name ending in .jsonl/.json" },
    { "format", choices = { "text", "csv", "jsonl" }, help = "output format (default: from --output's name; text on the terminal)" },
    { "batch-size", type = "int", default = 32, help = "texts per forward pass (bounds the memory)" },
    { "model", metavar = "DIR", help = "vocabulary folder if the checkpoint has none (default: the run's model, else " .. D.model .. ")" },
    { "max-length", type = "int", help = "truncate texts to this many tokens (default: the run's, else " .. D.max_length .. ")" },
    { "top", type = "int", help = "text format: show only the N most likely classes" },
    { "device", default = D.device, choices = { "cpu", "cuda" }, help = "where to run the model" },
    { "quiet", type = "flag", help = "no progress bar" },
  },
})

-- CSV field quoting (RFC 4180): quoted when it holds a comma, a quote or a line break.
local function csv_field(s)
  s = tostring(s)
  if s:find('[,"\r\n]') then return '"' .. s:gsub('"', '""') .. '"' end
  return s
end

-- A source of texts: next_batch(n) → up to n texts, or nil at the end; total (nil when unknown).
local function plain_lines(f)
  return function(n)
    local batch = {}
    while #batch < n do
      local line = f:read("l")
      if line == nil then break end
      line = line:gsub("\r$", "")
      if line:match("%S") then batch[#batch + 1] = line end
    end
    return #batch > 0 and batch or nil
  end
end

local function list_source(list)
  local i = 0
  return function(n)
    if i >= #list then return nil end
    local batch = {}
    for k = i + 1, math.min(#list, i + n) do batch[#batch + 1] = list[k] end
    i = i + #batch
    return batch
  end
end

local function count_lines(path)
  local n = 0
  for line in io.lines(path) do if line:match("%S") then n = n + 1 end end
  return n
end

local function main()
  for alias, name in pairs({ text_column = "column", data = "input" }) do
    if args[alias] ~= nil then
      if args[name] ~= nil and args[name] ~= args[alias] then
        error(("--%s and --%s disagree"):format(alias:gsub("_", "-"), name))
      end
      args[name] = args[alias]
    end
  end
  if args.batch_size < 1 then error("--batch-size must be a positive integer") end
  local ckpt = args.checkpoint:gsub("/+$", "")
  if not bl.file_exists(ckpt .. "/config.json") and not ckpt:match("%.safetensors$") then
    error(("checkpoint '%s' not found (expected a folder with config.json and model.safetensors)"):format(ckpt))
  end
  local run_dir = ckpt:match("^(.*)/[^/]+$") or "."
  local rec = bl.file_exists(run_dir .. "/run.json") and bl.read_json(run_dir .. "/run.json") or nil
  local ro = rec and rec.options or {}

  -- the texts
  local next_batch, total, text_name
  if #args.titles > 0 then
    if args.input then error("give texts as arguments or with --input, not both") end
    next_batch, total = list_source(args.titles), #args.titles
  elseif args.input and (args.input ~= "-" or args.column) then
    local path = args.input == "-" and "/dev/stdin" or args.input
    if not bl.file_exists(path) then error(("input file '%s' not found"):format(args.input)) end
    if args.column or args.input:lower():match("%.csv$") then
      text_name = args.column or (rec and rec.data and rec.data.text_column) or D.text_column
      local df = bl.read_csv(path)
      local ok, texts = pcall(df.column, df, text_name)
      if not ok then error(tostring(texts) .. " (choose one with --column)") end
      next_batch, total = list_source(texts), #texts
    else
      total = count_lines(args.input)
      local f = assert(io.open(args.input, "rb"))
      next_batch = plain_lines(f)
    end
  else
    if args.column then error("--column needs --input FILE.csv or --input - (a CSV on standard input)") end
    next_batch = plain_lines(io.stdin)
  end

  local fmt = args.format
  if not fmt then
    if args.output then fmt = args.output:lower():match("%.jsonl?$") and "jsonl" or "csv" else fmt = "text" end
  end

  local vocab_dir = bl.file_exists(ckpt .. "/vocab.txt") and ckpt or args.model or (rec and rec.model and rec.model.path) or D.model
  local tok = bl.BertTokenizer.from_pretrained(vocab_dir, { do_lower_case = true })
  local model = bl.BertForSequenceClassification.from_pretrained(ckpt, { quiet = true, strict = true, device = args.device })
  if not bl.weights_finite(model) then
    error(("checkpoint '%s': its weights hold NaN or Inf; refusing to predict with it"):format(ckpt))
  end
  model:eval()
  local cfg = model:config()
  local names = {}
  for id = 0, cfg.num_labels - 1 do names[id + 1] = bl.label_name(cfg.id2label, id) end
  local max_length = args.max_length or ro.max_length or D.max_length

  -- the output: a temporary file renamed into place at the end, so a failed run leaves no half file
  local out, tmp = io.stdout, nil
  if args.output then
    tmp = args.output .. ".partial"
    local err
    out, err = io.open(tmp, "wb")
    if not out then error(("cannot write '%s': %s"):format(args.output, err)) end
  end
  if fmt == "csv" then
    local head = { csv_field(text_name or "text"), "predicted" }
    for _, nm in ipairs(names) do head[#head + 1] = csv_field("prob_" .. nm) end
    out:write(table.concat(head, ","), "\n")
  end

  local show_bar = not args.quiet and (total == nil or total > args.batch_size) and (args.output or fmt ~= "text")
  local bar = show_bar and bl.progress(total, { desc = "Predicting" }) or nil
  local count = 0
  while true do
    local texts = next_batch(args.batch_size)
    if not texts then break end
    local enc = tok:batch_encode_plus(texts, { add_special_tokens = true, return_attention_mask = true,
      padding = "longest", max_length = max_length, truncation = true })
    local probs = model:predict_proba(enc)
    enc.input_ids:free(); enc.attention_mask:free(); enc.token_type_ids:free()
    for i, text in ipairs(texts) do
      local p = probs[i]
      for j = 1, #p do
        if not bl.isfinite(p[j]) then
          if tmp then out:close(); os.remove(tmp) end
          error(("checkpoint '%s': the probabilities of text %d are NaN or Inf; refusing to print them"):format(ckpt, count + i))
        end
      end
      local best = 1
      for j = 2, #p do if p[j] > p[best] then best = j end end
      if fmt == "csv" then
        local f = { csv_field(text), csv_field(names[best]) }
        for j = 1, #p do f[#f + 1] = ("%.6g"):format(p[j]) end
        out:write(table.concat(f, ","), "\n")
      elseif fmt == "jsonl" then
        local pt = {}
        for j = 1, #p do pt[names[j]] = p[j] end
        out:write(bl.json_encode({ text = text, label = names[best], probs = pt }), "\n")
      else
        local order = {}
        for j = 1, #p do order[j] = j end
        table.sort(order, function(a, b) return p[a] > p[b] end)
        out:write(("%s\n  -> %s\n"):format(text, names[best]))
        for k = 1, math.min(#order, args.top or #order) do
          out:write(("     %-10s %.4f\n"):format(names[order[k]], p[order[k]]))
        end
      end
    end
    count = count + #texts
    if bar then bar:update(#texts) end
  end
  if bar then bar:close() end
  if count == 0 then
    if tmp then out:close(); os.remove(tmp) end
    error("no texts given (pass them as arguments, with --input FILE, or on standard input)")
  end
  if tmp then
    local ok, err = out:close()
    if not ok then os.remove(tmp); error(("writing '%s' failed: %s"):format(args.output, tostring(err))) end
    local rok, rerr = os.rename(tmp, args.output)
    if not rok then os.remove(tmp); error(("cannot rename into '%s': %s"):format(args.output, rerr)) end
    io.stderr:write(("%d predictions written to %s\n"):format(count, args.output))
  end
end

bl.script_main("predict.lua", main)
