-- test_metrics.lua: f1/precision/recall (every average), accuracy and confusion_matrix against
-- scikit-learn (tests/fixtures/gen_metrics.py), the tutorial's accuracy_per_class output, and errors.
local T = require("testlib")
local bl = require("bertlab")
local F = dofile("tests/fixtures/metrics/cases.lua")

local function maxdiff(a, b)
  if type(b) == "number" then return math.abs(a - b) end
  if #a ~= #b then return math.huge end
  local d = 0
  for i = 1, #b do d = math.max(d, math.abs(a[i] - b[i])) end
  return d
end

local fns = { f1 = bl.f1_score, precision = bl.precision_score, recall = bl.recall_score }
local worst = 0
for _, c in ipairs(F) do
  for _, metric in ipairs({ "f1", "precision", "recall" }) do
    for _, avg in ipairs({ "weighted", "macro", "micro", "none" }) do
      local want = c[metric][avg]
      local opts = { average = avg ~= "none" and avg or nil, labels = c.labels, zero_division = c.zero_division }
      local ok, got = pcall(fns[metric], c.y_pred, c.y_true, opts)
      local name = ("%s: %s average=%s"):format(c.name, metric, avg)
      if type(want) == "table" and want.error then
        T.check(not ok, name .. " raises like sklearn", "no error")
      elseif not ok then
        T.check(false, name, got)
      else
        local d = maxdiff(got, want)
        worst = math.max(worst, d)
        T.check(d <= 1e-12, name, ("max diff %.3g"):format(d))
      end
    end
  end
  T.near(bl.accuracy(c.y_pred, c.y_true), c.accuracy, 1e-15, c.name .. ": accuracy")
  if c.confusion_error then
    T.checkerror("at least one label specified must be in true", c.name .. ": confusion_matrix error",
      bl.confusion_matrix, c.y_pred, c.y_true, { labels = c.labels })
  else
    T.same(bl.confusion_matrix(c.y_pred, c.y_true, { labels = c.labels }), c.confusion, c.name .. ": confusion_matrix")
  end
end
print(("# largest difference from scikit-learn: %.3g"):format(worst))

-- tensors: int64 ids and 2-D logits (argmax) give the same results as lists
do
  local c = F[1]
  local pt, tt = bl.tensor(c.y_pred), bl.tensor(c.y_true)
  T.near(bl.f1_score(pt, tt, { average = "weighted" }), c.f1.weighted, 1e-12, "int64 tensors accepted")
  local logits = {}
  for i, v in ipairs({ 2, 0, 1 }) do
    logits[i] = { 0.0, 0.0, 0.0 }
    logits[i][v + 1] = 1.5
  end
  T.eq(bl.accuracy(bl.tensor(logits), { 2, 0, 0 }), 2 / 3, "2-D logits: argmax taken")
  local cm, labels = bl.confusion_matrix({ 1, 1 }, { 0, 1 })
  T.same(labels, { 0, 1 }, "confusion_matrix returns the label order")
  T.same(cm, { { 0, 1 }, { 0, 1 } }, "rows are true, columns are pred")
end

-- accuracy_per_class prints the tutorial's lines
do
  local names = { [0] = "VLDB", [1] = "ISCAS", [2] = "SIGGRAPH", [3] = "INFOCOM", [4] = "WWW" }
  local pred = { 0, 0, 1, 2, 4, 4, 3, 0 }
  local truth = { 0, 1, 1, 2, 4, 3, 3, 0 }
  local path = os.tmpname()
  local f = assert(io.open(path, "w"))
  local r = bl.accuracy_per_class(pred, truth, names, { out = f })
  f:close()
  local text = io.open(path):read("a")
  os.remove(path)
  T.eq(text, "Class: VLDB\nAccuracy: 2/2\n\nClass: ISCAS\nAccuracy: 1/2\n\nClass: SIGGRAPH\nAccuracy: 1/1\n\n"
    .. "Class: INFOCOM\nAccuracy: 1/2\n\nClass: WWW\nAccuracy: 1/1\n\n", "accuracy_per_class output")
  T.eq(#r, 5, "one entry per class present in true")
  T.eq(r.INFOCOM.correct, 1, "entries by name")
  T.eq(r[2].total, 2, "entries in id order")
  local r2 = bl.accuracy_per_class(pred, truth, { "VLDB", "ISCAS", "SIGGRAPH", "INFOCOM", "WWW" }, { quiet = true })
  T.eq(r2[1].name, "VLDB", "names as a plain list map id 0 to the first")
  local r3 = bl.accuracy_per_class({ 1 }, { 1 }, nil, { quiet = true })
  T.eq(r3[1].name, "1", "no names: the id")
end

-- errors
T.checkerror("pred has 2 elements but true has 3", "length mismatch", bl.f1_score, { 0, 1 }, { 0, 1, 1 })
T.checkerror("element 2 of pred is 1.5", "non-integer id", bl.accuracy, { 0, 1.5 }, { 0, 1 })
T.checkerror("option 'average' must be", "bad average", bl.f1_score, { 0 }, { 0 }, { average = "binary" })
T.checkerror("label 1 appears twice", "duplicate labels", bl.f1_score, { 0 }, { 0 }, { labels = { 1, 1 } })
T.checkerror("true must be a list or tensor", "bad type", bl.accuracy, { 0 }, "0")
T.checkerror("zero_division", "bad zero_division", bl.f1_score, { 0 }, { 0 }, { zero_division = 2 })
T.checkerror("float tensor of 1 dimensions", "1-D float tensor", bl.accuracy, bl.zeros(3), { 0, 0, 0 })
T.checkerror("argument #3 must be a table of class names", "bad names", bl.accuracy_per_class, { 0 }, { 0 }, "x")

T.done()
