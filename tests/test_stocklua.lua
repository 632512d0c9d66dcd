-- test_stocklua.lua: build/bertlab.so under stock `lua5.4` (require "bertlab" through package.cpath):
-- README's examples run as README shows them (code and expected output read from README.md), the
-- Lua part is found next to the .so or through package.path, and a missing Lua part is a clear error.
local T = require("testlib")

local function run(cmd)
  local p = io.popen(cmd .. " 2>&1; echo \"__rc=$?\"")
  local out = p:read("a")
  p:close()
  local rc = tonumber(out:match("__rc=(%d+)%s*$"))
  return (out:gsub("__rc=%d+%s*$", "")), rc
end

local function q(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

local function write(path, text)
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
end

local function readme_block(after)
  local f = assert(io.open("README.md"))
  local text = f:read("a")
  f:close()
  local at = text:find(after, 1, true)
  if not at then return nil end
  return text:match("```lua\n(.-)```", at)
end

-- The README comments `--> out` give the expected output; a remark after two spaces and "(" is not.
local function expected_of(code)
  local want = {}
  for line in code:gmatch("[^\n]*") do
    local o = line:match("%-%->%s?(.*)$")
    if o then want[#want + 1] = (o:gsub("%s%s+%(.*%)%s*$", ""):gsub("%s+$", "")) end
  end
  return want
end

local function lines_of(out)
  local got = {}
  for line in out:gmatch("[^\n]+") do got[#got + 1] = (line:gsub("%s+$", "")) end
  return got
end

local _, rc = run("command -v lua5.4 >/dev/null")
if rc ~= 0 then
  T.skip("stock lua5.4", "lua5.4 is not installed (scripts/deps.sh installs it)")
  T.done()
end
local f = io.open("build/bertlab.so")
if not T.check(f ~= nil, "build/bertlab.so is built by make") then T.done() end
f:close()

local tmp = os.tmpname()
os.remove(tmp)
os.execute("mkdir -p " .. q(tmp))
local CPATH = "LUA_CPATH='build/?.so;;' LUA_PATH= "

-- README's tensor example, with only package.cpath pointing at the build (README's command line).
local code = readme_block("Tensors print as PyTorch prints them")
if T.check(code ~= nil, "README has the tensor example") then
  write(tmp .. "/tensor.lua", 'local bl = require("bertlab")\n' .. code)
  local out, rc2 = run(CPATH .. "lua5.4 " .. q(tmp .. "/tensor.lua"))
  T.eq(rc2, 0, "README's tensor example runs under lua5.4 (exit 0)")
  local want = expected_of(code)
  T.check(#want == 3, "README's tensor example states 3 output lines", tostring(#want))
  T.same(lines_of(out), want, "README's tensor example prints what README shows")
  if not T.deep_equal(lines_of(out), want) then print("#   got: " .. out) end
end

-- The same module reached through package.path too (bertlab/init.lua found by Lua's own searcher).
local out, rc3 = run("LUA_CPATH='build/?.so;;' LUA_PATH='lua/?.lua;lua/?/init.lua;;' lua5.4 -e " ..
  q('local bl = require("bertlab"); print(bl.version, package.loaded["bertlab.core"] ~= nil, bl.zeros({2}))'))
T.eq(out, "0.1.0\ttrue\ttensor([0., 0.])\n", "require 'bertlab' through package.path and cpath")
T.eq(rc3, 0, "... exits 0")

-- A copy of the .so with no Lua part next to it: the error names the file it looked for.
os.execute("cp build/bertlab.so " .. q(tmp .. "/bertlab.so"))
out, rc3 = run("cd " .. q(tmp) .. " && LUA_CPATH='./?.so' LUA_PATH='./?.lua' lua5.4 -e 'require(\"bertlab\")'")
T.check(rc3 ~= 0 and out:find("module 'bertlab.init' not found", 1, true) ~= nil and
  out:find("bertlab/init.lua", 1, true) ~= nil, "without the Lua part: 'bertlab.init' not found, naming the files tried", out)

-- README's first example (data, split, tokenizer, loader) under lua5.4, where make data/model ran.
code = readme_block("Reading, splitting and encoding the data as the tutorial does")
local d = io.open("data/title_conference.csv")
local m = io.open("models/all-MiniLM-L6-v2/vocab.txt")
if code and d and m then
  d:close(); m:close()
  write(tmp .. "/data.lua", code)
  out, rc3 = run(CPATH .. "lua5.4 " .. q(tmp .. "/data.lua"))
  T.eq(rc3, 0, "README's data example runs under lua5.4 (exit 0)")
  local want = expected_of(code)
  local w = {}
  for x in (want[#want] or ""):gmatch("%S+") do w[#w + 1] = x end
  local g = {}
  for x in out:gmatch("%S+") do g[#g + 1] = x end
  T.same(g, w, "README's data example prints " .. table.concat(w, " ") .. " under lua5.4")
else
  if d then d:close() end
  if m then m:close() end
  T.skip("README's data example under lua5.4", "needs data/title_conference.csv and models/all-MiniLM-L6-v2 (make data model)")
end

os.execute("rm -rf " .. q(tmp))
T.done()
