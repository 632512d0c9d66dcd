-- test_loader.lua: bl.TensorDataset and bl.DataLoader: batch sizes, coverage, per-epoch shuffling
-- from the SAMPLER Philox stream, reproducibility after bl.seed, drop_last, dynamic padding
-- (pad="longest"), and errors.
local T = require("testlib")
local bl = require("bertlab")

-- a toy encoded dataset: ids [N, L] with row i holding real tokens 1..len(i), then padding 0
local N, L = 10, 8
local lens = { 3, 8, 1, 5, 2, 4, 6, 2, 7, 3 }
local ids, mask, types, labels, other = {}, {}, {}, {}, {}
for i = 1, N do
  ids[i], mask[i], types[i], other[i] = {}, {}, {}, {}
  for j = 1, L do
    local real = j <= lens[i]
    ids[i][j] = real and (100 * i + j) or 0
    mask[i][j] = real and 1 or 0
    types[i][j] = 0
  end
  for j = 1, 3 do other[i][j] = i * 10 + j end
  labels[i] = i - 1
end
local t_ids, t_mask, t_types, t_labels = bl.tensor(ids), bl.tensor(mask), bl.tensor(types), bl.tensor(labels)
local t_other = bl.tensor(other, "float32")

local ds = bl.TensorDataset(t_ids, t_mask, t_labels)
T.eq(#ds, N, "#ds is the number of rows")
T.eq(ds:size(), N, "ds:size()")
T.eq(#ds:tensors(), 3, "ds:tensors() lists the tensors")

-- sequential batches: sizes and contents
local dl = bl.DataLoader(ds, { batch_size = 3 })
T.eq(#dl, 4, "#loader = ceil(10 / 3)")
local sizes, rows, nb = {}, {}, 0
for batch in dl:iter() do
  nb = nb + 1
  T.check(#batch == 3, "batch " .. nb .. " has one tensor per dataset tensor")
  sizes[#sizes + 1] = batch[1]:size(1)
  T.check(batch[1]:size(2) == L and batch[2]:size(2) == L, "batch " .. nb .. ": pad='none' keeps width L")
  for _, v in ipairs(batch[3]:totable()) do rows[#rows + 1] = v + 1 end
  if nb == 2 then
    T.same(batch[1]:totable(), { ids[4], ids[5], ids[6] }, "sequential batch 2 holds rows 4..6 of ids")
    T.same(batch[2]:totable(), { mask[4], mask[5], mask[6] }, "sequential batch 2 holds rows 4..6 of the mask")
  end
end
T.eq(table.concat(sizes, ","), "3,3,3,1", "sequential batch sizes")
T.eq(table.concat(rows, ","), "1,2,3,4,5,6,7,8,9,10", "sequential order")

local dld = bl.DataLoader(ds, { batch_size = 3, drop_last = true })
T.eq(#dld, 3, "#loader with drop_last = floor(10 / 3)")
local cnt, nrows = 0, 0
for batch in dld:iter() do cnt = cnt + 1; nrows = nrows + batch[1]:size(1) end
T.eq(cnt .. "/" .. nrows, "3/9", "drop_last yields 3 full batches of 3")
T.eq(#bl.DataLoader(ds, { batch_size = 5 }), 2, "#loader when batch_size divides N")
T.eq(#bl.DataLoader(ds, { batch_size = 64 }), 1, "batch larger than the dataset gives one batch")
T.eq(#bl.DataLoader(ds, { batch_size = 64, drop_last = true }), 0, "... and none with drop_last")
T.eq(#bl.DataLoader(ds), 10, "default batch_size is 1, as torch")

-- random sampler: coverage, new order each epoch, same after re-seeding
local function epoch(loader)
  local order = {}
  for batch in loader:iter() do
    for _, v in ipairs(batch[3]:totable()) do order[#order + 1] = v + 1 end
  end
  return order
end
local big_n = 1000
local big = bl.TensorDataset(bl.arange(big_n), bl.zeros(big_n, 2))
local rl = bl.DataLoader(bl.TensorDataset(t_ids, t_mask, t_labels), { batch_size = 4, sampler = "random" })
local rbig = bl.DataLoader(big, { batch_size = 32, sampler = "random" })
local function big_epoch()
  local order = {}
  for batch in rbig:iter() do
    for _, v in ipairs(batch[1]:totable()) do order[#order + 1] = v end
  end
  return order
end
bl.seed(123)
local e1, e2 = big_epoch(), big_epoch()
local function is_perm(o, n)
  if #o ~= n then return false end
  local seen = {}
  for _, v in ipairs(o) do
    if seen[v] then return false end
    seen[v] = true
  end
  for v = 0, n - 1 do if not seen[v] then return false end end
  return true
end
T.check(is_perm(e1, big_n) and is_perm(e2, big_n), "random sampler: every row exactly once per epoch")
local same = 0
for i = 1, big_n do if e1[i] == e2[i] then same = same + 1 end end
T.check(same < 20, ("random sampler: a new order each epoch (%d of %d positions equal)"):format(same, big_n))
local inorder = 0
for i = 1, big_n do if e1[i] == i - 1 then inorder = inorder + 1 end end
T.check(inorder < 20, "random sampler: the order is shuffled")
bl.seed(123)
local f1, f2 = big_epoch(), big_epoch()
T.check(T.deep_equal(e1, f1) and T.deep_equal(e2, f2), "random sampler: same epochs after bl.seed(123)")
bl.seed(124)
T.check(not T.deep_equal(big_epoch(), e1), "random sampler: another seed, another order")
bl.seed(5)
local o = epoch(rl)
local seen = {}
for _, v in ipairs(o) do seen[v] = (seen[v] or 0) + 1 end
local ok = #o == N
for i = 1, N do ok = ok and seen[i] == 1 end
T.check(ok, "random sampler on the toy set covers rows 1..10 once")

-- each random batch holds matching rows across tensors
bl.seed(9)
local consistent = true
for batch in rl:iter() do
  local lab, id = batch[3]:totable(), batch[1]:totable()
  for b = 1, #lab do consistent = consistent and T.deep_equal(id[b], ids[lab[b] + 1]) end
end
T.check(consistent, "random batches gather the same row from every tensor")

-- dynamic padding: trimmed to the longest real sequence of the batch
local pds = bl.TensorDataset(t_ids, t_mask, t_types, t_labels, t_other)
local pl = bl.DataLoader(pds, { batch_size = 3, pad = "longest", mask = 2 })
local widths, good = {}, true
local k = 0
for batch in pl:iter() do
  local want = 0
  for b = 1, batch[4]:size(1) do
    local r = k + b
    want = math.max(want, lens[r])
    good = good and T.deep_equal(batch[1]:totable()[b], { table.unpack(ids[r], 1, batch[1]:size(2)) })
  end
  widths[#widths + 1] = batch[1]:size(2)
  good = good and batch[1]:size(2) == want and batch[2]:size(2) == want and batch[3]:size(2) == want
  good = good and batch[5]:size(2) == 3 and batch[4]:dim() == 1
  k = k + batch[4]:size(1)
end
T.eq(table.concat(widths, ","), "8,5,7,3", "pad='longest': widths are the batch maxima of the lengths")
T.check(good, "pad='longest': ids, mask and token types trimmed alike; rows are prefixes; labels and other widths untouched")

-- random + trimming: the width of each batch is the longest of its own rows
bl.seed(11)
local rpl = bl.DataLoader(pds, { batch_size = 4, sampler = "random", pad = "longest" })
local rgood = true
for batch in rpl:iter() do
  local want = 0
  for _, v in ipairs(batch[4]:totable()) do want = math.max(want, lens[v + 1]) end
  rgood = rgood and batch[1]:size(2) == want
end
T.check(rgood, "pad='longest' with the random sampler")

-- a float mask works too; an all-padding batch keeps one column
local fm = bl.tensor({ { 1, 1, 0, 0 }, { 0, 0, 0, 0 } }, "float32")
local fb = bl.DataLoader(bl.TensorDataset(bl.tensor({ { 5, 6, 0, 0 }, { 0, 0, 0, 0 } }), fm), { batch_size = 1, pad = "longest" })
local fw = {}
for batch in fb:iter() do fw[#fw + 1] = batch[1]:size(2) .. "x" .. batch[2]:size(2) end
T.eq(table.concat(fw, " "), "2x2 1x1", "float32 mask; an empty row keeps one column")

-- errors
T.checkerror("TensorDataset: size mismatch between tensors: tensor 2 has 9 rows %(shape %[9%]%) but tensor 1 has 10",
  "TensorDataset with different first dimensions names the tensors", bl.TensorDataset, t_ids, bl.zeros(9))
T.checkerror("at least one tensor", "TensorDataset()", bl.TensorDataset)
T.checkerror("tensor 1 is a scalar", "TensorDataset of a scalar", bl.TensorDataset, bl.tensor(3))
T.checkerror("bertlab.Tensor expected", "TensorDataset of a non-tensor", bl.TensorDataset, t_ids, { 1, 2 })
T.checkerror("bertlab.TensorDataset expected", "DataLoader of a non-dataset", bl.DataLoader, t_ids)
T.checkerror("sampler must be \"random\", \"sequential\" or \"weighted\", got \"shuffled\"", "bad sampler", bl.DataLoader, ds, { sampler = "shuffled" })
T.checkerror("pad must be \"longest\" or \"none\"", "bad pad", bl.DataLoader, ds, { pad = "max" })
T.checkerror("batch_size must be a positive integer, got 0", "batch_size 0", bl.DataLoader, ds, { batch_size = 0 })
T.checkerror("option 'batch_size' must be an integer", "batch_size 2.5", bl.DataLoader, ds, { batch_size = 2.5 })
T.checkerror("mask=4 names no tensor of the dataset %(it has 3%)", "mask out of range", bl.DataLoader, ds, { pad = "longest", mask = 4 })
T.checkerror("needs tensor 3 %(the mask%) to be 2%-D", "1-D mask", bl.DataLoader, ds, { pad = "longest", mask = 3 })
T.checkerror("unknown option 'shuffle' %(use sampler=", "torch's shuffle option points to sampler", bl.DataLoader, ds, { shuffle = true })
T.checkerror("unknown option 'batchsize' %(options: batch_size", "typo in an option", bl.DataLoader, ds, { batchsize = 2 })
local victim = bl.zeros(4, 2)
local vl = bl.DataLoader(bl.TensorDataset(victim), { batch_size = 2 })
local it = vl:iter()
it()
victim:free()
T.checkerror("tensor 1 of the dataset was freed", "a freed dataset tensor is reported", it)

-- cost of collation at the tutorial's scale (2,130 rows of 256 tokens)
local n2, L2 = 2130, 256
local big_ids = bl.zeros({ n2, L2 }, "int64")
local bm = {}
for i = 1, n2 do
  local row = {}
  for j = 1, L2 do row[j] = j <= 12 + (i % 20) and 1 or 0 end
  bm[i] = row
end
local big_mask = bl.tensor(bm)
local bds = bl.TensorDataset(big_ids, big_mask, bl.zeros(n2, "int64"))
local function time_epoch(pad)
  local t0 = os.clock()
  local w = 0
  for batch in bl.DataLoader(bds, { batch_size = 32, sampler = "random", pad = pad }):iter() do w = math.max(w, batch[1]:size(2)) end
  return (os.clock() - t0) * 1000, w
end
local ms_none, w_none = time_epoch("none")
local ms_long, w_long = time_epoch("longest")
T.check(w_none == 256 and w_long == 31, ("tutorial-sized epoch widths: none %d, longest %d"):format(w_none, w_long))
print(("# one epoch of 67 batches (2130 x 256): pad=none %.1f ms, pad=longest %.1f ms"):format(ms_none, ms_long))

-- every name the data part exports has a heading in docs/api/data.md
local doc = io.open("docs/api/data.md"):read("a")
local missing = {}
for _, name in ipairs({ "bl.read_csv", "df:column", "df:nrows", "df:columns", "bl.unique", "bl.value_counts",
  "bl.train_test_split", "bl.RandomState", "rs:randint", "rs:random_sample", "rs:permutation", "rs:choice",
  "rs:u32", "bl.TensorDataset", "ds:size", "ds:tensors", "bl.DataLoader", "loader:iter", "loader:dataset" }) do
  if not doc:find("\n## " .. name .. "\n", 1, true) then missing[#missing + 1] = name end
end
T.eq(table.concat(missing, ", "), "", "docs/api/data.md has a heading for every exported name (missing)")
T.done()
