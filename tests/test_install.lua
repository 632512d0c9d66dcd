-- test_install.lua: `make install DESTDIR=... PREFIX=...` then `make uninstall`: the staged bertlab
-- runs from another folder and loads its Lua files from the installed tree (not the checkout), stock
-- lua5.4 loads the installed bertlab.so, and uninstall removes every installed file.
local T = require("testlib")

local function run(cmd)
  local p = io.popen(cmd .. " 2>&1; echo \"__rc=$?\"")
  local out = p:read("a")
  p:close()
  local rc = tonumber(out:match("__rc=(%d+)%s*$"))
  return (out:gsub("__rc=%d+%s*$", "")), rc
end

local function q(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

local _, has_make = run("command -v make >/dev/null")
if has_make ~= 0 then
  T.skip("make install", "make is not installed")
  T.done()
end

local dest = os.tmpname()
os.remove(dest)
local prefix = "/opt/bertlab-test"
local root = dest .. prefix
-- MAKEFLAGS cleared: under `make test` the outer make's jobserver is not ours to use.
local make = "MAKEFLAGS= MAKELEVEL= make -s DESTDIR=" .. q(dest) .. " PREFIX=" .. prefix
local out, rc = run(make .. " install")
T.eq(rc, 0, "make install DESTDIR=... PREFIX=" .. prefix .. " exits 0")
if rc ~= 0 then print("#   " .. out) end

local files = { "/bin/bertlab", "/lib/lua/5.4/bertlab.so", "/share/lua/5.4/bertlab/init.lua",
  "/share/lua/5.4/bertlab/util.lua", "/share/bertlab/experiments/conference.lua" }
local missing = {}
for _, f in ipairs(files) do
  local h = io.open(root .. f)
  if h then h:close() else missing[#missing + 1] = f end
end
T.eq(table.concat(missing, " "), "", "installed: bin/bertlab, bertlab.so, the Lua modules, the experiments")

-- The staged bertlab from another folder (/): it finds bertlab/init.lua under PREFIX/share/lua/5.4.
out, rc = run("cd / && " .. q(root .. "/bin/bertlab") .. " -e " ..
  q('local bl = require("bertlab"); print(package.searchpath("bertlab.init", package.path)); print(bl.zeros({2}))'))
T.eq(out, root .. "/share/lua/5.4/bertlab/init.lua\ntensor([0., 0.])\n",
  "installed bertlab -e from / loads the installed Lua files")
T.eq(rc, 0, "installed bertlab -e exits 0")

-- The installed experiments run with the installed bertlab (--help needs no data or model).
out, rc = run("cd / && " .. q(root .. "/bin/bertlab") .. " " .. q(root .. "/share/bertlab/experiments/conference.lua") .. " --help")
T.check(rc == 0 and out:find("--epochs", 1, true) ~= nil, "installed experiments/conference.lua --help runs", out)

-- Stock lua5.4 with only the installed cpath: bertlab.so finds PREFIX/share/lua/5.4 next to itself.
local _, has_lua = run("command -v lua5.4 >/dev/null")
if has_lua == 0 then
  out, rc = run("cd / && LUA_CPATH=" .. q(root .. "/lib/lua/5.4/?.so") .. " LUA_PATH='./?.lua' lua5.4 -e " ..
    q('local bl = require("bertlab"); print(package.searchpath("bertlab.init", package.path)); print(bl.ones({2}))'))
  T.eq(out, root .. "/lib/lua/5.4/../../../share/lua/5.4/bertlab/init.lua\ntensor([1., 1.])\n",
    "lua5.4 loads the installed bertlab.so and its installed Lua files")
else
  T.skip("installed bertlab.so under lua5.4", "lua5.4 is not installed")
end

out, rc = run(make .. " uninstall")
T.eq(rc, 0, "make uninstall exits 0")
out = run("find " .. q(dest) .. " -type f")
T.eq(out, "", "make uninstall leaves no installed file")
os.execute("rm -rf " .. q(dest))
T.done()
