-- test_evaluate.lua: experiments/evaluate.lua on a tiny run of two epochs: scikit-learn's
-- classification report (its numbers agree with the run's results), the tutorial's per-class lines,
-- the confusion matrix, two --checkpoint side by side (one column each, the run's F1 per epoch),
-- confusion.svg beside the run (one matrix per checkpoint), and a clear error for checkpoints
-- evaluated on different rows.
local T = require("testlib")
local bl = require("bertlab")

if not (bl.file_exists("data/title_conference.csv") and bl.file_exists("models/all-MiniLM-L6-v2/config.json")) then
  T.skip("evaluate", "needs `make data` and the model")
  T.done()
end
local dir = os.tmpname()
os.remove(dir)
local q = bl.shell_quote
local rc, out = T.sh(("bin/bertlab experiments/conference.lua --epochs 2 --limit 30 --val-limit 20 --quiet --out %s"):format(q(dir)))
T.eq(rc, 0, "a two-epoch run to evaluate")
local res = bl.read_csv(dir .. "/results.csv")
local f1 = { tonumber(res.val_f1[1]), tonumber(res.val_f1[2]) }

rc, out = T.sh(("bin/bertlab experiments/evaluate.lua --checkpoint %s/epoch_1 --checkpoint %s/epoch_2 --val-limit 20"):format(q(dir), q(dir)))
T.eq(rc, 0, "evaluate.lua with two checkpoints exits 0")
T.check(out:find("== " .. dir .. "/epoch_1", 1, true) and out:find("== " .. dir .. "/epoch_2", 1, true), "a section per checkpoint", out)
T.eq(select(2, out:gsub("              precision    recall  f1%-score   support\n", "")), 2, "a classification report per checkpoint")
local w1, w2
for v in out:gmatch("\nweighted avg +[%d%.]+ +[%d%.]+ +([%d%.]+) +20\n") do if w1 then w2 = v else w1 = v end end
T.check(w1 == ("%.2f"):format(f1[1]) and w2 == ("%.2f"):format(f1[2]), "the reports' weighted F1 are the run's, per epoch",
  ("%s %s vs %.4f %.4f"):format(tostring(w1), tostring(w2), f1[1], f1[2]))
T.check(out:find("Class: VLDB\nAccuracy: %d+/%d+") and out:find("Confusion matrix (rows: true, columns: predicted)", 1, true),
  "the tutorial's per-class lines and the confusion matrix", out)
-- the side-by-side table: one column per checkpoint
local row = out:match("\n(weighted F1 +[%d%.]+ +[%d%.]+)\n")
local a, b
if row then a, b = row:match("([%d%.]+) +([%d%.]+)$") end
T.check(a and math.abs(tonumber(a) - f1[1]) < 1e-4 and math.abs(tonumber(b) - f1[2]) < 1e-4,
  "side by side: the weighted F1 of each epoch in its column", tostring(row))
T.check(out:find("\nclass +accuracy +F1 +accuracy +F1\n") and out:find("\nISCAS +%d+/%d+ [%d%.]+ +%d+/%d+ [%d%.]+\n"),
  "side by side: accuracy and F1 per class for each checkpoint", out)
T.check(out:find(dir .. "/epoch_1: 20 texts", 1, true) and out:find(dir .. "/epoch_2: 20 texts", 1, true), "a summary line per checkpoint")
local svg = T.slurp(dir .. "/confusion.svg") or ""
T.check(svg:find(">epoch_1</text>", 1, true) and svg:find(">epoch_2</text>", 1, true) and svg:find("</svg>", 1, true),
  "confusion.svg beside the run: a matrix per checkpoint")
T.eq(select(2, svg:gsub('fill="rgb', "")), 2 * 25, "confusion.svg: 5x5 cells for each checkpoint")

-- another run evaluated on other rows cannot be put beside it
-- (a copy of the run whose run.json records other validation rows)
local dir2 = dir .. "-b"
os.execute(("mkdir -p %s && cp -r %s/epoch_1 %s/"):format(q(dir2), q(dir), q(dir2)))
local rj = bl.read_json(dir .. "/run.json")
rj.split.val_rows = { table.unpack(rj.split.val_rows, 1, 8) }
bl.write_run_json(dir2, rj)
rc, out = T.sh(("bin/bertlab experiments/evaluate.lua --checkpoint %s/epoch_1 --checkpoint %s/epoch_1 --val-limit 20 --quiet --svg none"):format(q(dir), q(dir2)))
T.check(rc ~= 0 and out:find("were not evaluated on the same labelled rows", 1, true) ~= nil, "checkpoints on different rows: a clear error", out)
rc, out = T.sh(("bin/bertlab experiments/evaluate.lua --checkpoint %s/epoch_2 --quiet --svg %s/c.svg"):format(q(dir), q(dir)))
T.check(rc == 0 and bl.file_exists(dir .. "/c.svg") and not out:find("precision", 1, true), "--quiet: the summary only; --svg PATH", out)
os.execute("rm -rf " .. q(dir) .. " " .. q(dir2))
T.done()
