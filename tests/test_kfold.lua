-- test_kfold.lua: bl.StratifiedKFold against scikit-learn (tests/fixtures/gen_kfold.py): every
-- sample's test fold for imbalanced integer and string labels, with and without shuffle (several
-- random_state), a class smaller than n_splits; sklearn's error messages; the folds' invariants.
local T = require("testlib")
local bl = require("bertlab")

local f = assert(io.open("tests/fixtures/kfold/cases.txt"))
local ncase = 0
while true do
  local head = f:read("l")
  if not head then break end
  local name, k, sh, seed = head:match("^case (%S+) (%d+) (%d) (%-?%d+)$")
  k, seed = math.tointeger(tonumber(k)), math.tointeger(tonumber(seed))
  local y, want = {}, {}
  for v in f:read("l"):sub(3):gmatch("%S+") do y[#y + 1] = math.tointeger(tonumber(v)) or v end
  for v in f:read("l"):sub(6):gmatch("%S+") do want[#want + 1] = math.tointeger(tonumber(v)) end
  ncase = ncase + 1
  local skf = bl.StratifiedKFold(k, sh == "1" and { shuffle = true, random_state = seed } or nil)
  local got, folds, ok_inv = {}, 0, true
  for train, test in skf:split(y) do
    folds = folds + 1
    for _, i in ipairs(test) do got[i] = folds - 1 end
    -- train and test partition 1..n, each ascending
    ok_inv = ok_inv and #train + #test == #y
    for j = 2, #test do ok_inv = ok_inv and test[j] > test[j - 1] end
    for j = 2, #train do ok_inv = ok_inv and train[j] > train[j - 1] end
  end
  local diff = 0
  for i = 1, #y do if got[i] ~= want[i] then diff = diff + 1 end end
  T.check(folds == k and diff == 0, ("StratifiedKFold %s (n=%d, k=%d): every test fold = scikit-learn's"):format(name, #y, k),
    ("%d folds, %d samples differ"):format(folds, diff))
  T.check(ok_inv, ("StratifiedKFold %s: train and test partition the rows, ascending"):format(name))
end
f:close()
T.eq(ncase, 10, "every fixture case ran")

-- the same folds for a tensor of labels and for the same seed twice
local y = { 0, 1, 0, 1, 2, 2, 0, 1, 2, 0 }
local function folds_of(skf, labels)
  local out = {}
  for _, test in skf:split(labels) do out[#out + 1] = table.concat(test, ",") end
  return table.concat(out, "|")
end
local a = folds_of(bl.StratifiedKFold(3, { shuffle = true, random_state = 5 }), y)
T.eq(folds_of(bl.StratifiedKFold(3, { shuffle = true, random_state = 5 }), bl.tensor(y, "int64")), a, "labels as an int64 tensor: the same folds")
T.check(folds_of(bl.StratifiedKFold(3, { shuffle = true, random_state = 6 }), y) ~= a, "another random_state: other folds")
T.eq(bl.StratifiedKFold(4):get_n_splits(), 4, "get_n_splits")
T.eq(tostring(bl.StratifiedKFold(3, { shuffle = true, random_state = 5 })), "StratifiedKFold(n_splits=3, random_state=5, shuffle=True)", "tostring as sklearn's repr")
T.eq(tostring(bl.StratifiedKFold()), "StratifiedKFold(n_splits=5, random_state=None, shuffle=False)", "default n_splits 5")

-- scikit-learn's messages
local ef = assert(io.open("tests/fixtures/kfold/errors.txt"))
for line in ef:lines() do
  local k, labels, msg = line:match("^(%d+) | (.-) | (.*)$")
  k = math.tointeger(tonumber(k))
  local fn
  if labels == "-" then fn = function() return bl.StratifiedKFold(k) end
  elseif labels == "random_state" then fn = function() return bl.StratifiedKFold(k, { random_state = 1 }) end
  else
    local ys = {}
    for v in labels:gmatch("%S+") do ys[#ys + 1] = math.tointeger(tonumber(v)) end
    fn = function() for _ in bl.StratifiedKFold(k):split(ys) do end end
  end
  local ok, err = pcall(fn)
  T.check(not ok and tostring(err):find(msg, 1, true) ~= nil, "error as scikit-learn: " .. msg, tostring(err))
end
ef:close()
T.checkerror("shuffle must be either True or False", "shuffle must be a boolean", bl.StratifiedKFold, 3, { shuffle = 1 })
T.checkerror("unknown option 'seed'", "unknown option", bl.StratifiedKFold, 3, { seed = 1 })
T.checkerror("y%[3%] is boolean, expected a string or a number", "a label of a bad type", function()
  for _ in bl.StratifiedKFold(2):split({ 1, 2, true, 1 }) do end
end)
T.checkerror("must be of Integral type", "n_splits must be an integer", bl.StratifiedKFold, 2.5)
T.done()
