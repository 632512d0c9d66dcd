-- test_owndata.lua: a user's own data end to end, on the tiny fixture model (vocab of 100 words,
-- tests/fixtures/owndata/vocab.txt) and a generated 3-class CSV whose columns are not Title and
-- Conference: conference.lua trains it (--save best), run.json records everything, evaluate.lua
-- reproduces the run's numbers (also on a reordered CSV, by the checkpoint's labels), predict.lua
-- writes CSV and JSON lines that agree with evaluate, and predicts 10,000 lines in bounded memory.
local T = require("testlib")
local bl = require("bertlab")

local TINY = "tests/fixtures/model/tiny"
if not (type(bl.BertForSequenceClassification) == "table" and bl.file_exists(TINY .. "/model.safetensors")) then
  T.skip("own data end to end", TINY .. " or the model part is missing")
  T.done()
end

local run = T.sh
local read = T.slurp
local function csv_field(s) return s:find('[,"\n]') and ('"' .. s:gsub('"', '""') .. '"') or s end

local dir = os.tmpname()
os.remove(dir)
bl.mkdir_p(dir .. "/model")
os.execute(("cp %s/config.json %s/model.safetensors tests/fixtures/owndata/vocab.txt %s/model/"):format(TINY, TINY, bl.shell_quote(dir)))
local MODEL, DATA = dir .. "/model", dir .. "/reviews.csv"

-- 3 classes; each text has 4 words of its class among filler words; a comma in every text (quoted)
local pools = {
  pos = { "great", "good", "excellent", "superb", "happy", "love", "wonderful", "fine", "nice", "best" },
  neg = { "bad", "awful", "terrible", "poor", "sad", "hate", "worst", "boring", "ugly", "weak" },
  neu = { "table", "chair", "window", "door", "paper", "street", "river", "stone", "cloud", "green" } }
local filler = { "the", "a", "of", "and", "it", "is", "was", "this", "movie", "film", "book", "very" }
math.randomseed(5)
local records = {}
local order = { "neu", "pos", "neg" }
for i = 1, 90 do
  local c = order[(i - 1) % 3 + 1]
  local w = {}
  for k = 1, 8 do w[k] = (k % 2 == 0) and pools[c][math.random(#pools[c])] or filler[math.random(#filler)] end
  records[i] = { id = tostring(i), review = table.concat(w, " ", 1, 4) .. ", " .. table.concat(w, " ", 5), sentiment = c }
end
local function write_csv(path, recs, cols)
  local lines = { table.concat(cols, ",") }
  for _, r in ipairs(recs) do
    local f = {}
    for k, c in ipairs(cols) do f[k] = csv_field(r[c]) end
    lines[#lines + 1] = table.concat(f, ",")
  end
  bl.write_file(path, table.concat(lines, "\n") .. "\n")
end
write_csv(DATA, records, { "id", "review", "sentiment" })

-- 1. train with other column names, keeping only the best epoch
local RUN = dir .. "/run"
local common = ("--model %s --data %s --text-column review --label-column sentiment --max-length 32"):format(MODEL, DATA)
local t0 = bl.now()
local rc, out = run(("bin/bertlab experiments/conference.lua %s --epochs 4 --lr 3e-3 --batch-size 8 --save best --quiet --out %s")
  :format(common, RUN))
print(("# conference.lua on the 3-class CSV, 4 epochs: %.1f s"):format(bl.now() - t0))
T.eq(rc, 0, "conference.lua trains on a CSV with columns review/sentiment")
if rc ~= 0 then print("# " .. out:gsub("\n", "\n# ")) end
T.check(out:find("76 training and 14 validation titles, 3 classes", 1, true) ~= nil, "76/14 rows (test_size 0.15), 3 classes", out)

-- 2. run.json: complete
local ok_rec, rec = pcall(bl.read_json, RUN .. "/run.json")
T.check(ok_rec and type(rec) == "table", "run.json reads back as JSON", tostring(rec))
rec = ok_rec and rec or {}
local function sha256sum(path)
  local p = io.popen("sha256sum " .. bl.shell_quote(path) .. " 2>/dev/null")
  local s = p:read("a")
  p:close()
  return s:match("^(%x+)")
end
T.eq(rec.format, "bertlab-run/1", "run.json: format")
T.eq(rec.status, "done", "run.json: status done at the end")
T.check(type(rec.command) == "table" and rec.command[2] == "experiments/conference.lua" and rec.command_line:find("--label-column sentiment", 1, true),
  "run.json: the command line", tostring(rec.command_line))
T.eq((rec.bertlab or {}).version, bl.version, "run.json: bertlab's version")
local head = io.popen("git rev-parse HEAD 2>/dev/null"):read("l")
T.eq((rec.bertlab or {}).commit, head or "unknown", "run.json: the git commit (git rev-parse HEAD)")
T.eq((rec.model or {}).path, MODEL, "run.json: the model folder")
local want_model = sha256sum(MODEL .. "/model.safetensors")
T.check(want_model and (rec.model or {}).sha256 == want_model, "run.json: the weights' sha256 (= sha256sum)", tostring((rec.model or {}).sha256))
T.eq((rec.data or {}).sha256, sha256sum(DATA), "run.json: the data file's sha256 (= sha256sum)")
T.same({ (rec.data or {}).text_column, (rec.data or {}).label_column, (rec.data or {}).rows }, { "review", "sentiment", 90 },
  "run.json: the columns and the row count")
T.same(rec.labels, { "neu", "pos", "neg" }, "run.json: label names in id order (first appearance)")
local split = rec.split or {}
T.same({ split.method, split.test_size, split.split_seed }, { "stratified", 0.15, 42 }, "run.json: the split's parameters")
local seen, overlap = {}, 0
for _, r in ipairs(split.val_rows or {}) do seen[r] = true end
for _, r in ipairs(split.train_rows or {}) do if seen[r] then overlap = overlap + 1 end; seen[r] = true end
local covered = 0
for i = 1, 90 do if seen[i] then covered = covered + 1 end end
T.check(#(split.val_rows or {}) == 14 and overlap == 0 and covered == 90, "run.json: 14 validation rows, disjoint from the training rows, together every row")
T.check(math.type(rec.threads) == "integer" and rec.threads >= 1 and rec.device == "cpu", "run.json: threads and device")
local iso = "^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%dZ$"
T.check(tostring(rec.started):match(iso) and tostring(rec.ended):match(iso), "run.json: start and end time (ISO 8601, UTC)")
-- every option of the script is recorded with its value
local _, help = run("bin/bertlab experiments/conference.lua --help")
local missing = {}
for name in help:gmatch("\n  %-%-([%w%-]+)") do
  if name ~= "help" and (rec.options or {})[name:gsub("-", "_")] == nil and name ~= "val-data" and name ~= "limit"
     and name ~= "val-limit" and name ~= "eval-epoch" and name ~= "threads" and name ~= "out"
     and name ~= "resume" and name ~= "save-every" then -- (options without a default)
    missing[#missing + 1] = name
  end
end
T.check(#missing == 0 and (rec.options or {}).lr == 3e-3 and (rec.options or {}).save == "best",
  "run.json: every option with a default is recorded, with the values given", table.concat(missing, ", "))

-- --save best: one checkpoint, the best epoch's
local results = {}
for line in (read(RUN .. "/results.jsonl") or ""):gmatch("[^\n]+") do results[#results + 1] = bl.json_decode(line) end
local best = 1
for i, r in ipairs(results) do if r.val_f1 > results[best].val_f1 then best = i end end
local dirs = {}
local p = io.popen("ls " .. bl.shell_quote(RUN))
for name in p:lines() do if name:match("^epoch_") then dirs[#dirs + 1] = name end end
p:close()
T.eq(#results, 4, "results.jsonl: 4 epochs")
T.same(dirs, { "epoch_" .. best }, "--save best keeps only the best epoch's checkpoint")
T.eq(rec.best_checkpoint, "epoch_" .. best, "run.json names the best checkpoint")
local rcsv = read(RUN .. "/results.csv") or ""
T.eq(select(2, rcsv:gsub(",epoch_%d+\n", "")), 1, "results.csv names only the checkpoint that exists")
T.check(results[best].val_f1 > 0.5, "the tiny model learns the 3 classes (best validation F1 > 0.5)", tostring(results[best].val_f1))
print(("# best epoch %d, weighted F1 %.4f"):format(best, results[best].val_f1))

-- 3. evaluate.lua: the run's validation rows, by run.json
local CKPT = RUN .. "/epoch_" .. best
local function numbers(text)
  local n, loss, acc, f1 = text:match(": (%d+) texts, loss ([%d%.]+), accuracy ([%d%.]+), F1 Score %(Weighted%): ([%d%.]+)")
  return { n = tonumber(n), loss = tonumber(loss), acc = tonumber(acc), f1 = tonumber(f1) }
end
local rc3, out3 = run("bin/bertlab experiments/evaluate.lua --checkpoint " .. CKPT)
local ev = numbers(out3)
T.eq(rc3, 0, "evaluate.lua exits 0")
T.check(out3:find("the run's 14 validation rows", 1, true) and ev.n == 14, "evaluate.lua uses the run's 14 validation rows", out3)
T.check(ev.f1 and math.abs(ev.f1 - results[best].val_f1) < 1e-6, "evaluate.lua reproduces the run's F1",
  ("%s vs %s"):format(tostring(ev.f1), tostring(results[best].val_f1)))
T.check(out3:find("\nneu%s+%d+%s+%d+%s+%d+\npos%s+%d+%s+%d+%s+%d+\nneg%s+%d+%s+%d+%s+%d+\n") ~= nil, "a 3x3 confusion matrix named by the checkpoint's labels", out3)

-- the validation rows in another file, reversed, columns reordered: the same numbers
local val_recs = {}
for k = #split.val_rows, 1, -1 do val_recs[#val_recs + 1] = records[split.val_rows[k]] end
write_csv(dir .. "/val_reordered.csv", val_recs, { "sentiment", "id", "review" })
local rc4, out4 = run(("bin/bertlab experiments/evaluate.lua --checkpoint %s --data %s/val_reordered.csv"):format(CKPT, dir))
local ev4 = numbers(out4)
T.eq(rc4, 0, "evaluate.lua --data another file exits 0")
T.check(ev4.n == 14 and ev4.acc == ev.acc and ev4.f1 == ev.f1 and math.abs(ev4.loss - ev.loss) < 1e-5,
  "the validation rows reversed, columns reordered: the same accuracy, F1 and loss", out4)
-- the whole file shuffled against the file itself (--rows all): the same numbers
local shuffled = {}
for i, r in ipairs(records) do shuffled[i] = r end
math.randomseed(9)
for i = #shuffled, 2, -1 do local j = math.random(i); shuffled[i], shuffled[j] = shuffled[j], shuffled[i] end
write_csv(dir .. "/shuffled.csv", shuffled, { "review", "sentiment", "id" })
local _, out5 = run(("bin/bertlab experiments/evaluate.lua --quiet --checkpoint %s --data %s --rows all"):format(CKPT, DATA))
local _, out6 = run(("bin/bertlab experiments/evaluate.lua --quiet --checkpoint %s --data %s/shuffled.csv"):format(CKPT, dir))
local a5, a6 = numbers(out5), numbers(out6)
T.check(a5.n == 90 and a6.n == 90 and a5.acc == a6.acc and a5.f1 == a6.f1 and math.abs(a5.loss - a6.loss) < 1e-5,
  "every row, shuffled and columns reordered: the same numbers", out5 .. out6)
local rc7, out7 = run(("bin/bertlab experiments/evaluate.lua --checkpoint %s --data %s/shuffled.csv --rows val"):format(CKPT, dir))
T.check(rc7 ~= 0 and out7:find("not the file run", 1, true) and out7:find("--rows all", 1, true),
  "--rows val on a file that is not the run's: an error saying why", out7)
-- a label the checkpoint does not know
local odd = { { id = "1", review = "the table", sentiment = "neu" }, { id = "2", review = "a cloud", sentiment = "mixed" } }
write_csv(dir .. "/odd.csv", odd, { "id", "review", "sentiment" })
local rc8, out8 = run(("bin/bertlab experiments/evaluate.lua --checkpoint %s --data %s/odd.csv"):format(CKPT, dir))
T.check(rc8 ~= 0 and out8:find("data row 2 has label 'mixed'", 1, true) and out8:find("'neu', 'pos', 'neg'", 1, true),
  "a label outside the checkpoint's: an error naming it and the checkpoint's labels", out8)

-- 4. predict.lua: CSV and JSON lines, agreeing with evaluate
local rc9, out9 = run(("bin/bertlab experiments/predict.lua --checkpoint %s --input %s/val_reordered.csv --column review --output %s/pred.csv --batch-size 4")
  :format(CKPT, dir, dir))
T.eq(rc9, 0, "predict.lua --input CSV --output pred.csv exits 0")
T.check(out9:find("14 predictions written to", 1, true) ~= nil, "predict.lua reports what it wrote", out9)
local pdf = bl.read_csv(dir .. "/pred.csv")
T.same(pdf:columns(), { "review", "predicted", "prob_neu", "prob_pos", "prob_neg" }, "pred.csv columns: text, predicted label, each class's probability")
local correct, sums_ok, argmax_ok = 0, true, true
for i = 1, pdf:nrows() do
  local pr = { tonumber(pdf.prob_neu[i]), tonumber(pdf.prob_pos[i]), tonumber(pdf.prob_neg[i]) }
  if math.abs(pr[1] + pr[2] + pr[3] - 1) > 1e-4 then sums_ok = false end
  local b = 1
  for j = 2, 3 do if pr[j] > pr[b] then b = j end end
  if rec.labels[b] ~= pdf.predicted[i] then argmax_ok = false end
  if pdf.review[i] ~= val_recs[i].review then argmax_ok = false end
  if pdf.predicted[i] == val_recs[i].sentiment then correct = correct + 1 end
end
T.check(pdf:nrows() == 14 and sums_ok and argmax_ok, "pred.csv: 14 rows in input order, probabilities summing to 1, predicted = most probable")
T.check(math.abs(correct / 14 - ev.acc) < 1e-3, "predict.lua's predictions give evaluate.lua's accuracy",
  ("%d/14 vs %s"):format(correct, tostring(ev.acc)))
local rc10 = run(("bin/bertlab experiments/predict.lua --checkpoint %s --input %s/val_reordered.csv --column review --output %s/pred.jsonl")
  :format(CKPT, dir, dir))
local jl = {}
for line in (read(dir .. "/pred.jsonl") or ""):gmatch("[^\n]+") do jl[#jl + 1] = bl.json_decode(line) end
T.check(rc10 == 0 and #jl == 14 and jl[1].label == pdf.predicted[1] and math.abs(jl[1].probs.neu - tonumber(pdf.prob_neu[1])) < 1e-5,
  "predict.lua --output .jsonl: one JSON object a line, the same predictions")
local rc11, out11 = run(("printf 'review,x\\n\"the good, film\",1\\n' | bin/bertlab experiments/predict.lua --checkpoint %s --input - --column review --format csv"):format(CKPT))
T.check(rc11 == 0 and out11:find('\n"the good, film",%a+,') ~= nil and not out11:find("\nreview,%a+,"),
  "a CSV on standard input: the header and the quotes are not texts", out11)

-- 10,000 lines in bounded memory (peak RSS measured by /usr/bin/time)
local lines = {}
math.randomseed(11)
local words = {}
for _, pool in pairs(pools) do for _, w in ipairs(pool) do words[#words + 1] = w end end
for _, w in ipairs(filler) do words[#words + 1] = w end
for i = 1, 10000 do
  local w = {}
  for k = 1, 60 do w[k] = words[math.random(#words)] end
  lines[i] = table.concat(w, " ")
end
bl.write_file(dir .. "/big.txt", table.concat(lines, "\n") .. "\n")
local has_time = bl.file_exists("/usr/bin/time")
local t1 = bl.now()
local cmd = ("bin/bertlab experiments/predict.lua --checkpoint %s --input %s/big.txt --output %s/big.csv --max-length 64")
  :format(CKPT, dir, dir)
local rc12, out12 = run((has_time and "/usr/bin/time -v " or "") .. cmd)
local secs = bl.now() - t1
local kb = tonumber(out12:match("Maximum resident set size %(kbytes%): (%d+)"))
local n_out = select(2, (read(dir .. "/big.csv") or ""):gsub("\n", "")) - 1
T.check(rc12 == 0 and n_out == 10000, "predict.lua: 10,000 plain lines -> 10,000 predictions", out12:sub(1, 400))
if kb then
  -- the binary's own start-up size (shared libraries: OpenBLAS, CUDA's where built with it)
  local _, base_out = run("/usr/bin/time -v bin/bertlab -e 'local bl = require(\"bertlab\")'")
  local base = tonumber(base_out:match("Maximum resident set size %(kbytes%): (%d+)")) or 0
  print(("# predict.lua, 10,000 lines of 60 words (64 tokens): peak RSS %.0f MB (start-up alone %.0f MB), %.1f s")
    :format(kb / 1024, base / 1024, secs))
  T.check(kb < 500 * 1024, "predict.lua on 10,000 lines stays under 500 MB peak RSS", ("%.0f MB"):format(kb / 1024))
  T.check(kb - base < 64 * 1024, "predict.lua on 10,000 lines needs under 64 MB beyond the start-up size",
    ("%.0f MB"):format((kb - base) / 1024))
else
  T.skip("predict.lua memory", "/usr/bin/time -v is not available to measure the peak RSS")
end

-- 5. run_experiment in-process: the issue's text=/label= names, a separate validation file
write_csv(dir .. "/train_part.csv", { table.unpack(records, 1, 60) }, { "review", "sentiment" })
write_csv(dir .. "/val_part.csv", { table.unpack(records, 61, 90) }, { "review", "sentiment" })
local res = bl.run_experiment({ model = MODEL, data = dir .. "/train_part.csv", val_data = dir .. "/val_part.csv",
  text = "review", label = "sentiment", epochs = 1, batch_size = 8, lr = 3e-3, max_length = 32, out = dir .. "/inproc",
  save = "none", progress = false, per_class = false, log = function() end })
T.same({ res.train_size, res.val_size }, { 60, 30 }, "run_experiment{text=, label=, val_data=}: 60 training, 30 validation rows")
res.model:free()
local rec2 = bl.read_json(dir .. "/inproc/run.json")
T.check(rec2.split.method == "validation file" and rec2.val_data.sha256 == sha256sum(dir .. "/val_part.csv") and rec2.val_data.rows == 30,
  "run.json of a run with --val-data records the validation file and its sha256")
T.check(not bl.file_exists(dir .. "/inproc/epoch_1/config.json"), "save='none' writes no checkpoint")

-- a run that fails says so in its run.json
local okf, errf = pcall(bl.run_experiment, { model = MODEL, data = DATA, text = "review", label = "sentiment", epochs = 1,
  max_length = 32, out = dir .. "/failed", progress = false, per_class = false, log = function() end,
  on_epoch = function() error("stopped in epoch 1") end })
local recf = bl.file_exists(dir .. "/failed/run.json") and bl.read_json(dir .. "/failed/run.json") or {}
T.check(not okf and tostring(errf):find("stopped in epoch 1", 1, true) and recf.status == "failed"
  and tostring(recf.error):find("stopped in epoch 1", 1, true) and tostring(recf.ended):match("Z$"),
  "a failed run: the error goes on, and run.json has status 'failed', the error and the end time")

-- errors name the option, the column, the file
local rc13, out13 = run(("bin/bertlab experiments/conference.lua --model %s --data %s --text-column text --quiet --out %s/x"):format(MODEL, DATA, dir))
T.check(rc13 ~= 0 and out13:find("no column 'text' (columns: id, review, sentiment) (choose one with --text-column)", 1, true),
  "a missing text column: an error naming the file's columns and the option", out13)
local rc14, out14 = run("bin/bertlab experiments/conference.lua --text-colum review")
T.check(rc14 == 2 and out14:find("unknown option '--text-colum'", 1, true), "a misspelt option: exit 2 naming it", out14)
T.checkerror("unknown option 'lable'", "run_experiment: a misspelt option is refused", bl.run_experiment, { lable = "x" })
T.checkerror("save must be one of all, best, none", "run_experiment: bad save", bl.run_experiment, { save = "some" })
T.checkerror("options 'text' and 'text_column' disagree", "run_experiment: conflicting aliases", bl.run_experiment,
  { text = "a", text_column = "b" })
T.checkerror("not one of the model's labels 'a', 'b'", "load_text_classification: fixed labels", bl.load_text_classification,
  DATA, { text_column = "review", label_column = "sentiment", labels = { "a", "b" } })

-- JSON decoding (run.json is read back)
local v = { a = { 1, 2.5, "x\"\n\u{e9}" }, b = true, c = { d = -3, e = 1e-8 } }
T.same(bl.json_decode(bl.json_encode(v)), v, "json_decode(json_encode(v)) == v")
T.eq(bl.json_decode('"\\u00e9\\ud83d\\ude00"'), "\u{e9}\u{1F600}", "json_decode: \\u escapes and surrogate pairs")
T.checkerror("expected ',' or '}' at line 2", "json_decode: an error names the line", bl.json_decode, '{"a": 1\n "b": 2}')

os.execute("rm -rf " .. bl.shell_quote(dir))
T.done()
