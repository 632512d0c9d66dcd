-- test_tensor.lua: the Tensor userdata: creation, inspection, indexing, arithmetic, printing
-- (against PyTorch's own printing, tests/fixtures/tensor/print_cases.lua), freeing and errors.
local T = require("testlib")
local bl = require("bertlab")

-- printing, oracle: torch's str(tensor)
local cases = dofile("tests/fixtures/tensor/print_cases.lua")
local printed = 0
for i, c in ipairs(cases) do
  local t = bl.tensor(c.data, c.dtype)
  if T.eq(tostring(t), c.want, ("tostring matches PyTorch, case %d"):format(i)) then printed = printed + 1 end
end
print(("# %d of %d printing cases identical to PyTorch"):format(printed, #cases))

-- factories
local z = bl.zeros({ 2, 3 })
T.same(z:shape(), { 2, 3 }, "zeros({2,3}) has shape {2,3}")
T.eq(z:dtype(), "float32", "zeros defaults to float32")
T.same(bl.zeros(2, 3):shape(), { 2, 3 }, "zeros(2,3) takes sizes as arguments")
T.eq(bl.zeros({ 4 }, "int64"):dtype(), "int64", "zeros accepts a dtype")
T.same(bl.ones({ 2, 2 }):totable(), { { 1, 1 }, { 1, 1 } }, "ones fills with 1")
T.same(bl.arange(5):totable(), { 0, 1, 2, 3, 4 }, "arange(5)")
T.eq(bl.arange(5):dtype(), "int64", "arange of integers is int64, as torch")
T.same(bl.arange(1, 2, 0.25):totable(), { 1, 1.25, 1.5, 1.75 }, "arange(1, 2, 0.25)")
T.eq(bl.arange(1, 2, 0.25):dtype(), "float32", "arange with a float step is float32")
T.same(bl.full({ 2 }, 7):totable(), { 7, 7 }, "full")
T.eq(bl.tensor(3):dim(), 0, "a number gives a 0-dimensional tensor")
T.eq(bl.tensor(3):item(), 3, "item of a 0-dim int64 tensor")
T.eq(math.type(bl.tensor({ 5 }):item()), "integer", "int64 items are Lua integers")
T.near(bl.tensor({ 2.5 }):item(), 2.5, 0, "float32 item")

-- randn: seeded, reproducible, roughly standard normal
bl.seed(17)
local r1 = bl.randn(1000):totable()
bl.seed(17)
local r2 = bl.randn(1000):totable()
T.same(r1, r2, "bl.seed makes randn reproducible")
local s, ss = 0, 0
for _, v in ipairs(r1) do s, ss = s + v, ss + v * v end
T.check(math.abs(s / 1000) < 0.1 and math.abs(ss / 1000 - 1) < 0.15, "randn is roughly N(0,1)",
  ("mean %.3f, second moment %.3f"):format(s / 1000, ss / 1000))
bl.seed(18)
T.check(bl.randn(4):totable()[1] ~= r1[1], "another seed gives other numbers")

-- inspection
local t = bl.tensor({ { 1, 9, 3 }, { 7, 2, 8 } })
T.eq(t:size(1), 2, "size(1)")
T.eq(t:size(2), 3, "size(2)")
T.eq(t:size(-1), 3, "size(-1) counts from the end")
T.eq(t:numel(), 6, "numel")
T.eq(#t, 2, "# is the first dimension")
T.eq(t:get(2, 3), 8, "get(2,3) is 1-based")
T.eq(t:device(), "cpu", "device is cpu")

-- indexing rows
T.same(t:index({ 2, 1, 2 }):totable(), { { 7, 2, 8 }, { 1, 9, 3 }, { 7, 2, 8 } }, "index rows by a list")
T.same(t:index(bl.tensor({ 2 })):totable(), { { 7, 2, 8 } }, "index rows by an int64 tensor")
T.same(t:index({}):shape(), { 0, 3 }, "index by an empty list gives 0 rows")

-- argmax: 0-based positions as torch (values are class ids), first on ties
T.same(t:argmax(2):totable(), { 1, 2 }, "argmax over the last dimension")
T.same(t:argmax(1):totable(), { 1, 0, 1 }, "argmax over the first dimension")
T.eq(t:argmax():item(), 1, "argmax over all elements")
T.same(bl.tensor({ { 1.0, 5.0, 5.0 } }):argmax(2):totable(), { 1 }, "argmax takes the first maximum on ties")

-- arithmetic
local a = bl.tensor({ 1.5, 2.0 })
local b = bl.tensor({ 0.5, -1.0 })
T.same((a + b):totable(), { 2.0, 1.0 }, "a + b")
T.same((a * b):totable(), { 0.75, -2.0 }, "a * b")
T.same((a * 2):totable(), { 3.0, 4.0 }, "tensor * number")
T.same((2 + a):totable(), { 3.5, 4.0 }, "number + tensor")
T.same(a:add(b):totable(), { 2.0, 1.0 }, "a:add(b)")
T.same((bl.tensor({ 1, 2 }) * bl.tensor({ 3, 4 })):totable(), { 3, 8 }, "int64 multiplication")
T.same(a:to("int64"):totable(), { 1, 2 }, "to('int64') truncates as torch")
T.same(bl.tensor({ 1, 2 }):to("float32"):totable(), { 1.0, 2.0 }, "to('float32')")
local c = a:clone()
T.check(c ~= a and c:totable()[1] == 1.5, "clone copies")

-- errors name what was expected and what was given
T.checkerror("shape mismatch: %[2%] and %[3%]", "adding tensors of different shapes",
  function() return bl.zeros({ 2 }) + bl.zeros({ 3 }) end)
T.checkerror("dtype mismatch: float32 and int64", "adding tensors of different dtypes",
  function() return bl.zeros({ 2 }) + bl.zeros({ 2 }, "int64") end)
T.checkerror("bad argument #1 to 'size' %(bertlab.Tensor expected, got number%)", "a method called on a number",
  function() return t.size(5, 1) end)
T.checkerror("index 3 out of range for dimension 1 of size 2", "row index out of range",
  function() return t:index({ 3 }) end)
T.checkerror("index 0 out of range", "row index 0 (indices are 1-based)", function() return t:index({ 0 }) end)
T.checkerror("dimension 3 out of range %(tensor has 2 dimensions%)", "argmax over a missing dimension",
  function() return t:argmax(3) end)
T.checkerror("item: tensor of shape %[2, 3%] has 6 elements", "item of a tensor with many elements",
  function() return t:item() end)
T.checkerror("ragged nested table", "bl.tensor of a ragged table", function() return bl.tensor({ { 1, 2 }, { 3 } }) end)
T.checkerror("element 2 at depth 1 is string, expected a number", "bl.tensor of a table with a string",
  function() return bl.tensor({ 1, "x" }) end)
T.checkerror("unknown dtype 'float16'", "an unknown dtype", function() return bl.zeros({ 2 }, "float16") end)
T.checkerror("get: index 5 out of range for dimension 2 of size 3", "get out of range", function() return t:get(1, 5) end)
T.checkerror("no gradient function", "backward on a plain tensor", function() return a:backward() end)
T.checkerror("non%-integer", "int64 tensor times a fraction", function() return bl.tensor({ 1 }) * 0.5 end)
T.checkerror("bad shape: element 1 must be a non%-negative integer", "a negative size",
  function() return bl.zeros({ -1 }) end)

-- freeing: explicit, by __close, and by the GC (twice-safe)
local f = bl.ones({ 3 })
f:free()
T.eq(tostring(f), "tensor(<freed>)", "a freed tensor prints as freed")
T.checkerror("tensor was freed", "using a freed tensor is an error", function() return f:size(1) end)
f:free()
T.check(true, "free twice is safe")
do
  local g <close> = bl.ones({ 2 })
  T.eq(g:numel(), 2, "a to-be-closed tensor works inside its block")
  closed = g
end
T.checkerror("tensor was freed", "__close frees the tensor at the end of the block", function() return closed:numel() end)
for _ = 1, 200 do local _ = bl.zeros({ 1000, 100 }) end
collectgarbage()
T.check(true, "200 temporaries of 400 kB collected without running out of memory")

T.done()
