-- test_report.lua: bl.classification_report against scikit-learn's classification_report text
-- (tests/fixtures/gen_report.py): the tutorial's 5 classes, digits 0/2/3/4/6, a class never
-- predicted and one absent from both lists (zero division, "warn" and 1), long and non-ASCII names,
-- integer labels without names, a labels subset ("micro avg"), ten classes; and its errors.
local T = require("testlib")
local bl = require("bertlab")

local cases = bl.read_json("tests/fixtures/report/cases.json")
T.check(#cases >= 12, "the report fixtures load")
for _, c in ipairs(cases) do
  local opts = { digits = c.digits }
  if c.labels ~= bl.json_null and c.labels ~= nil then opts.labels = c.labels end
  if c.zero_division ~= "warn" then opts.zero_division = c.zero_division end
  local names = (c.names ~= bl.json_null) and c.names or nil
  local got = bl.classification_report(c.pred, c["true"], names, opts)
  local where = ""
  if got ~= c.report then
    for i = 1, math.max(#got, #c.report) do
      if got:sub(i, i) ~= c.report:sub(i, i) then where = ("first difference at byte %d:\n%s\n--- expected ---\n%s"):format(i, got, c.report); break end
    end
  end
  T.check(got == c.report, "classification_report = scikit-learn's text: " .. c.name, where)
end
-- names as id2label (0-based keys) give the same text as a list
local list = bl.classification_report({ 0, 1, 1 }, { 0, 1, 0 }, { "neg", "pos" })
T.eq(bl.classification_report({ 0, 1, 1 }, { 0, 1, 0 }, { [0] = "neg", [1] = "pos" }), list, "names as id2label = names as a list")
T.eq(bl.classification_report(bl.tensor({ 0, 1, 1 }, "int64"), bl.tensor({ 0, 1, 0 }, "int64"), { "neg", "pos" }), list,
  "tensors of class ids")
T.checkerror("option 'digits' must be a non%-negative integer", "digits must be an integer", bl.classification_report, { 0 }, { 0 }, nil, { digits = 1.5 })
T.checkerror("unknown option 'digit'", "unknown option", bl.classification_report, { 0 }, { 0 }, nil, { digit = 2 })
T.checkerror("argument #3 must be a list of class names", "names must be a table", bl.classification_report, { 0 }, { 0 }, "neg")
T.checkerror("2 labels and 3 names", "labels and names of different lengths", bl.classification_report, { 0, 1 }, { 0, 1 }, { "a", "b", "c" }, { labels = { 0, 1 } })
T.done()
