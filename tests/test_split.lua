-- test_split.lua: bl.train_test_split and bl.RandomState against scikit-learn / NumPy fixtures
-- (tests/fixtures/gen_split.py): every index of every case must be identical, errors must carry
-- sklearn's message.
local T = require("testlib")
local bl = require("bertlab")
local FIX = "tests/fixtures/split/"

local function nums(s)
  local out = {}
  for w in (s or ""):gmatch("%S+") do out[#out + 1] = math.tointeger(tonumber(w)) or tonumber(w) end
  return out
end
local function words(s)
  local out = {}
  for w in (s or ""):gmatch("%S+") do out[#out + 1] = w end
  return out
end

-- ---- RandomState ----------------------------------------------------------------------------------
do
  local rs, seed, checked, bad = nil, nil, 0, 0
  for line in io.lines(FIX .. "randomstate.txt") do
    local op, rest = line:match("^(%S+) ?(.*)$")
    local a = nums(rest)
    local got, want, what
    if op == "seed" then
      seed = a[1]
      rs = bl.RandomState(seed)
    elseif op == "u32" then
      got = {}
      for i = 1, #a do got[i] = rs:u32() end
      want, what = a, "u32"
    elseif op == "randint" then
      want = { table.unpack(a, 3) }
      got, what = rs:randint(a[1], a[2], #want), ("randint(%d, %d)"):format(a[1], a[2])
    elseif op == "permutation" then
      want = { table.unpack(a, 2) }
      got, what = rs:permutation(a[1]), ("permutation(%d)"):format(a[1])
    elseif op == "choice" then
      want = { table.unpack(a, 4) }
      got = rs:choice(a[1], a[2], { replace = a[3] == 1 })
      what = ("choice(%d, %d, replace=%s)"):format(a[1], a[2], a[3] == 1)
    elseif op == "random" then
      want = { table.unpack(a, 2) }
      got, what = rs:random_sample(a[1]), "random_sample"
    end
    if want then
      checked = checked + 1
      if not T.deep_equal(got, want) then
        bad = bad + 1
        T.check(false, ("RandomState(%d):%s"):format(seed, what), "draws differ from numpy")
      end
    end
  end
  T.check(checked >= 36 and bad == 0, ("RandomState: %d draw sequences identical to numpy legacy"):format(checked))
  local rs1 = bl.RandomState(42)
  T.eq(rs1:randint(5), 3, "randint(high) alone is randint(0, high) (numpy: RandomState(42).randint(5) == 3)")
  T.checkerror("Seed must be between 0 and 2%*%*32 %- 1", "RandomState(-1)", bl.RandomState, -1)
  T.checkerror("Seed must be between 0 and 2%*%*32 %- 1", "RandomState(2^32)", bl.RandomState, 4294967296)
  T.checkerror("low >= high", "randint(3, 3)", rs1.randint, rs1, 3, 3)
  T.checkerror("larger sample than population", "choice without replacement, too many", rs1.choice, rs1, 3, 5, { replace = false })
end

-- ---- train_test_split: every fixture case ----------------------------------------------------------
local function size_opt(s)
  local kind, v = s:match("^(%a) (%S+)$")
  if not kind then return nil end
  return kind == "i" and math.tointeger(tonumber(v)) or tonumber(v) + 0.0
end

local ncases, nidx, nfail, nerr = 0, 0, 0, 0
local case = {}
for line in io.lines(FIX .. "cases.txt") do
  local k, v = line:match("^(%S+) ?(.*)$")
  if k == "end" then
    ncases = ncases + 1
    local opts = { test_size = size_opt(case.test_size), train_size = size_opt(case.train_size),
      random_state = math.tointeger(tonumber(case.random_state)), shuffle = case.shuffle == "1" }
    if case.labels and case.labels ~= "none" then opts.stratify = nums(case.labels) end
    if case.labelss then opts.stratify = words(case.labelss) end
    local n = math.tointeger(tonumber(case.n))
    local ok, tr, te = pcall(bl.train_test_split, n, opts)
    if case.error then
      nerr = nerr + 1
      if ok or not tostring(tr):find(case.error, 1, true) then
        nfail = nfail + 1
        T.check(false, "case " .. case.case, ("expected sklearn's error %q, got %s"):format(case.error, ok and "no error" or tostring(tr)))
      end
    elseif not ok then
      nfail = nfail + 1
      T.check(false, "case " .. case.case, tostring(tr))
    else
      local wtr, wte = nums(case.train), nums(case.test)
      local diff = (#tr ~= #wtr or #te ~= #wte) and 1 or 0
      for i = 1, #wtr do if tr[i] ~= wtr[i] + 1 then diff = diff + 1 end end
      for i = 1, #wte do if te[i] ~= wte[i] + 1 then diff = diff + 1 end end
      nidx = nidx + #wtr + #wte
      if diff > 0 then
        nfail = nfail + 1
        T.check(false, "case " .. case.case, ("%d of %d indices differ from sklearn"):format(diff, #wtr + #wte))
      end
    end
    case = {}
  elseif k and k ~= "#" then
    case[k] = v
  end
end
T.check(ncases >= 150 and nfail == 0,
  ("train_test_split: %d sklearn cases (%d with errors), %d indices, %d mismatching cases"):format(ncases, nerr, nidx, nfail))
print(("# %d cases, %d indices compared, all identical: %s"):format(ncases, nidx, tostring(nfail == 0)))

-- ---- inputs other than a count, and our own errors ---------------------------------------------------
do
  local list = {}
  for i = 1, 20 do list[i] = "row" .. i end
  local a1, b1 = bl.train_test_split(20, { test_size = 0.25, random_state = 3 })
  local a2, b2 = bl.train_test_split(list, { test_size = 0.25, random_state = 3 })
  local a3, b3 = bl.train_test_split(bl.zeros(20, 4), { test_size = 0.25, random_state = 3 })
  T.check(T.deep_equal(a1, a2) and T.deep_equal(b1, b2), "a Lua array splits as its length")
  T.check(T.deep_equal(a1, a3) and T.deep_equal(b1, b3), "a tensor splits as its first dimension")
  local y = {}
  for i = 1, 20 do y[i] = i % 3 end
  local s1, t1 = bl.train_test_split(20, { test_size = 6, random_state = 5, stratify = y })
  local s2, t2 = bl.train_test_split(20, { test_size = 6, random_state = 5, stratify = bl.tensor(y) })
  T.check(T.deep_equal(s1, s2) and T.deep_equal(t1, t2), "stratify as an int64 tensor equals the Lua array")
  local d1 = bl.train_test_split(30, { test_size = 0.2 })
  bl.seed(7)
  local e1 = bl.train_test_split(30, { test_size = 0.2 })
  bl.seed(7)
  local e2 = bl.train_test_split(30, { test_size = 0.2 })
  T.check(T.deep_equal(e1, e2), "random_state=nil is reproducible after bl.seed")
  T.eq(#d1, 24, "default sizes: 30 * (1 - 0.2)")
  local f1 = bl.train_test_split(100)
  T.eq(#f1, 75, "no sizes: sklearn's default test_size 0.25")
  T.checkerror("stratify has 3 labels, expected 20", "stratify length mismatch", bl.train_test_split, 20, { stratify = { 1, 2, 1 } })
  T.checkerror("stratify mixes strings and numbers", "mixed label types", bl.train_test_split, 4, { stratify = { 1, "a", 1, "a" } })
  T.checkerror("unknown option 'test_frac'", "unknown option is an error", bl.train_test_split, 10, { test_frac = 0.2 })
  T.checkerror("option 'test_size' must be a number", "test_size of the wrong type", bl.train_test_split, 10, { test_size = "0.2" })
  T.checkerror("Seed must be between 0 and 2%*%*32 %- 1", "negative random_state", bl.train_test_split, 10, { random_state = -1 })
  T.checkerror("Classes with too few members are: %['b'%]", "single-member string class is named",
    bl.train_test_split, 6, { stratify = { "a", "a", "b", "a", "c", "c" }, random_state = 0 })
  T.checkerror("bad argument #1", "first argument type", bl.train_test_split, "ten")
end

-- ---- the tutorial split --------------------------------------------------------------------------------
local f = io.open("data/title_conference.csv")
if not f then
  T.skip("tutorial split", "data/title_conference.csv missing (run make data)")
else
  f:close()
  local fix = {}
  for line in io.lines(FIX .. "tutorial.txt") do
    local k, v = line:match("^(%S+) (.*)$")
    fix[k] = v
  end
  local df = bl.read_csv("data/title_conference.csv")
  local possible = bl.unique(df.Conference)
  local label = {}
  for i, c in ipairs(possible) do label[c] = i - 1 end
  local y = {}
  for i, c in ipairs(df.Conference) do y[i] = label[c] end
  local t0 = os.clock()
  local tr, va = bl.train_test_split(df:nrows(), { test_size = 0.15, random_state = 42, stratify = y })
  local ms = (os.clock() - t0) * 1000
  T.eq(#tr, 2130, "tutorial: 2,130 training rows")
  T.eq(#va, 377, "tutorial: 377 validation rows")
  local wtr, wva = nums(fix.train), nums(fix.test)
  local diff = 0
  for i = 1, #wtr do if tr[i] ~= wtr[i] + 1 then diff = diff + 1 end end
  for i = 1, #wva do if va[i] ~= wva[i] + 1 then diff = diff + 1 end end
  T.eq(diff, 0, "tutorial: indices identical to sklearn (differing indices)")
  local per = {}
  for _, i in ipairs(va) do per[df.Conference[i]] = (per[df.Conference[i]] or 0) + 1 end
  local parts = {}
  for i, c in ipairs(possible) do parts[i] = c .. "=" .. per[c] end
  T.eq(table.concat(parts, " "), fix.val_counts, "tutorial: validation rows per class (VLDB 64, ISCAS 130, ...)")
  T.eq(table.concat(parts, " "), "VLDB=64 ISCAS=130 SIGGRAPH=49 INFOCOM=77 WWW=57", "tutorial: the issue's per-class counts")
  print(("# tutorial split: %.2f ms"):format(ms))
end
T.done()
