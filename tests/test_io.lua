-- test_io.lua: bl.load_safetensors / bl.save_safetensors from Lua: values against the numpy
-- fixture (valid.expect), round trips with metadata, and the error messages.
local T = require("testlib")
local bl = require("bertlab")

local FIX = "tests/fixtures/io/"

-- valid.safetensors against valid.expect (f32 values as IEEE bits, int64 as decimals)
local tensors, meta = bl.load_safetensors(FIX .. "valid.safetensors")
local n = 0
for _ in pairs(tensors) do n = n + 1 end
T.eq(n, 12, "12 tensors loaded")
T.eq(meta.format, "pt", "metadata format")
T.eq(meta.note, "caf\u{e9} \u{2713}", "metadata UTF-8 text")

local function flatten(v, out)
  out = out or {}
  if type(v) ~= "table" then out[#out + 1] = v return out end
  for _, x in ipairs(v) do flatten(x, out) end
  return out
end

local checked, bad = 0, 0
for line in io.lines(FIX .. "valid.expect") do
  local head, vals = line:match("^(.-) : ?(.*)$")
  local fields = {}
  for w in head:gmatch("%S+") do fields[#fields + 1] = w end
  local name, kind, ndim = fields[1], fields[2], tonumber(fields[3])
  local t = tensors[name]
  if T.check(bl.is_tensor(t), "tensor '" .. name .. "' loaded") then
    T.eq(t:dtype(), kind == "f32" and "float32" or "int64", name .. " dtype")
    local shape = t:shape()
    local same = #shape == ndim
    for d = 1, ndim do same = same and shape[d] == tonumber(fields[3 + d]) end
    T.check(same, name .. " shape")
    local i, diff, flat = 0, 0, flatten(t:totable())
    for v in vals:gmatch("%S+") do
      local got = flat[i + 1]
      local want
      if kind == "f32" then
        want = string.unpack("<f", string.pack("<I4", tonumber(v, 16)))
        local same_bits = (got ~= got and want ~= want) or got == want and 1 / got == 1 / want
        if not same_bits then bad = bad + 1 end
        if got == got and want == want and math.abs(got - want) < math.huge then
          diff = math.max(diff, math.abs(got - want))
        end
      else
        want = math.tointeger(tonumber(v))
        if got ~= want then bad = bad + 1 end
      end
      i = i + 1
    end
    checked = checked + 1
    T.eq(i, t:numel(), name .. " element count (largest difference " .. diff .. ")")
  end
end
T.eq(checked, 12, "all expected tensors compared")
T.eq(bad, 0, "every value equals numpy's (mismatches)")

-- save -> load round trip, with metadata
local tmp = os.tmpname()
local path = tmp .. ".safetensors"
local w = bl.tensor({{1.5, -2}, {0.25, 1e-3}})
local ids = bl.tensor({101, 2023, 102}, "int64")
bl.save_safetensors(path, {["bert.w"] = w, input_ids = ids, s = bl.full({}, 3)}, {format = "pt", epoch = 2})
local back, m2 = bl.load_safetensors(path)
T.same(back["bert.w"]:totable(), w:totable(), "float32 round trip")
T.same(back.input_ids:totable(), { 101, 2023, 102 }, "int64 round trip")
T.eq(back.input_ids:dtype(), "int64", "int64 stays int64")
T.eq(back.s:dim(), 0, "0-dim tensor round trip")
T.eq(m2.format, "pt", "metadata string round trip")
T.eq(m2.epoch, "2", "metadata number saved as a string")
bl.save_safetensors(path, {})
local empty, m3 = bl.load_safetensors(path)
T.eq(next(empty), nil, "no tensors: empty table")
T.eq(next(m3), nil, "no metadata: empty table")
os.remove(path)
os.remove(tmp)

-- errors
T.checkerror("malformed/gap.safetensors: gap in the data: tensor 'b' starts at byte 12", "gap error names file and tensor",
  bl.load_safetensors, FIX .. "malformed/gap.safetensors")
T.checkerror("size_mismatch.safetensors: tensor 'x' has 20 bytes, shape %[2,3%] of F32 needs 24", "size mismatch error",
  bl.load_safetensors, FIX .. "malformed/size_mismatch.safetensors")
T.checkerror("nope.safetensors: cannot open", "missing file", bl.load_safetensors, "nope.safetensors")
T.checkerror("bad argument #1 to '[%w.]*load_safetensors' %(string expected, got no value%)", "no path",
  bl.load_safetensors)
T.checkerror("bad argument #2 to '[%w.]*save_safetensors' %(table expected, got no value%)", "no tensor table",
  bl.save_safetensors, path)
T.checkerror("entry 'x' is number, expected bertlab.Tensor", "non-tensor entry",
  bl.save_safetensors, path, { x = 1 })
T.checkerror("tensor names must be strings, got number", "array-style table refused",
  bl.save_safetensors, path, { w })
T.checkerror("metadata 'k' must be a string, got table", "table metadata value",
  bl.save_safetensors, path, { w = w }, { k = {} })
T.checkerror("metadata keys must be strings", "numeric metadata key",
  bl.save_safetensors, path, { w = w }, { "x" })
T.checkerror("invalid name '__metadata__'", "the reserved name", bl.save_safetensors, path, { __metadata__ = w })
T.checkerror("no_such_dir/x.safetensors: cannot create a temporary file", "missing folder",
  bl.save_safetensors, "no_such_dir/x.safetensors", { w = w })
local f = bl.zeros(2)
f:free()
T.checkerror("tensor 'f' was freed", "freed tensor", bl.save_safetensors, path, { f = f })
T.check(io.open(path) == nil, "failed saves wrote nothing")

-- every exported name is documented
local doc = io.open("docs/api/io.md"):read("a")
for _, name in ipairs({ "load_safetensors", "save_safetensors" }) do
  T.check(doc:find("\n## " .. name .. "\n", 1, true) ~= nil, "docs/api/io.md documents bl." .. name)
end

T.done()
