-- predict.lua: the conference a fine-tuned checkpoint predicts for paper titles given as arguments
-- (or one per line on standard input), with the probability of every class (softmax of the logits).
--   bin/bertlab experiments/predict.lua --checkpoint runs/conference-X/epoch_3 "A title" "Another"
local bl = require("bertlab")

local args = bl.parse_args(arg, {
  prog = "experiments/predict.lua",
  description = "Predict the conference of paper titles with a fine-tuned checkpoint.",
  positional = { name = "titles", multiple = true, help = "titles to classify (default: read stdin, one per line)" },
  options = {
    { "checkpoint", metavar = "PATH", required = true, help = "checkpoint folder (out/epoch_N)" },
    { "model", default = bl.EXPERIMENT_DEFAULTS.model, metavar = "DIR", help = "vocabulary folder if the checkpoint has none" },
    { "max-length", type = "int", default = 256, help = "truncate titles to this many tokens" },
    { "top", type = "int", help = "show only the N most likely classes" },
    { "device", default = bl.EXPERIMENT_DEFAULTS.device, choices = { "cpu", "cuda" }, help = "where to run the model" },
  },
})

local function main()
  local titles = args.titles
  if #titles == 0 then
    for line in io.stdin:lines() do if line:match("%S") then titles[#titles + 1] = line end end
  end
  if #titles == 0 then error("no titles given (pass them as arguments or on standard input)") end
  local ckpt = args.checkpoint
  if not bl.file_exists(ckpt .. "/config.json") and not ckpt:match("%.safetensors$") then
    error(("checkpoint '%s' not found (expected a folder with config.json and model.safetensors)"):format(ckpt))
  end
  local vocab_dir = bl.file_exists(ckpt .. "/vocab.txt") and ckpt or args.model
  local tok = bl.BertTokenizer.from_pretrained(vocab_dir, { do_lower_case = true })
  local model = bl.BertForSequenceClassification.from_pretrained(ckpt, { quiet = true, device = args.device })
  model:eval()
  local id2label = model:config().id2label or {}
  local enc = tok:batch_encode_plus(titles, { add_special_tokens = true, return_attention_mask = true,
    padding = "longest", max_length = args.max_length, truncation = true })
  local out = model:forward({ input_ids = enc.input_ids, attention_mask = enc.attention_mask })
  local probs = bl.softmax(out.logits, -1):totable()
  for i, title in ipairs(titles) do
    local order = {}
    for j = 1, #probs[i] do order[j] = j end
    table.sort(order, function(a, b) return probs[i][a] > probs[i][b] end)
    local best = order[1] - 1
    print(("%s\n  -> %s"):format(title, bl.label_name(id2label, best)))
    for k = 1, math.min(#order, args.top or #order) do
      local j = order[k]
      print(("     %-10s %.4f"):format(bl.label_name(id2label, j - 1), probs[i][j]))
    end
  end
end

bl.script_main("predict.lua", main)
