-- test_cli.lua: the `bertlab` command: -e, scripts and their arguments, --help/--version, stdin,
-- and error reporting (message naming the script line, a traceback, a non-zero exit).
local T = require("testlib")

local BIN = os.getenv("BL_TEST_BIN") or "bin/bertlab" -- tests/run.sh sets it (make test-asan)
local tmp = os.tmpname()

-- Runs a shell command, returning its combined output and exit code.
local function run(cmd)
  local p = io.popen(cmd .. " 2>&1; echo \"__rc=$?\"")
  local out = p:read("a")
  p:close()
  local rc = tonumber(out:match("__rc=(%d+)%s*$"))
  return out:gsub("__rc=%d+%s*$", ""), rc
end

local function write(path, text)
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
end

local out, rc = run(BIN .. [[ -e 'local bl=require"bertlab"; print(bl.zeros({2,3}))']])
T.eq(out, "tensor([[0., 0., 0.],\n        [0., 0., 0.]])\n", "-e prints a 2x3 tensor of zeros")
T.eq(rc, 0, "-e exits 0")

out, rc = run(BIN .. " --version")
T.check(out:match("^bertlab %d+%.%d+%.%d+ %(Lua 5%.4") ~= nil, "--version names bertlab and Lua 5.4", out)
T.eq(rc, 0, "--version exits 0")

out, rc = run(BIN .. " --help")
T.check(out:find("usage: bertlab", 1, true) ~= nil and out:find("-e CODE", 1, true) ~= nil, "--help prints usage", out)
T.eq(rc, 0, "--help exits 0")

out, rc = run(BIN)
T.check(out:find("usage:", 1, true) ~= nil and rc == 1, "no arguments prints usage and exits 1", out)

out, rc = run(BIN .. " --frobnicate")
T.check(out:find("unrecognized option '--frobnicate'", 1, true) ~= nil and rc == 1, "an unknown option is refused", out)

-- arguments reach the script in `arg` (arg[0] the script) and as `...`
write(tmp, 'local a, b = ...\nprint(arg[0], #arg, arg[1], arg[2], a, b, arg[-1] ~= nil)\n')
out, rc = run(BIN .. " " .. tmp .. " one 'two words'")
T.eq(out, tmp .. "\t2\tone\ttwo words\tone\ttwo words\ttrue\n", "script arguments in arg and ...")
T.eq(rc, 0, "a successful script exits 0")

-- options after the script belong to the script
write(tmp, 'print(arg[1])\n')
out = run(BIN .. " " .. tmp .. " --epochs")
T.eq(out, "--epochs\n", "options after the script are the script's")

-- -e before a script runs first
out = run(BIN .. " -e 'X = 41' " .. tmp .. " x")
write(tmp, 'print(X + 1)\n')
out = run(BIN .. " -e 'X = 41' " .. tmp)
T.eq(out, "42\n", "-e runs before the script")

-- a type error: message with the script line, a traceback, non-zero exit
write(tmp, 'local bl = require("bertlab")\nlocal t = bl.zeros({2})\n\nlocal x = t + "three"\n')
out, rc = run(BIN .. " " .. tmp)
T.check(out:find(tmp .. ":4:", 1, true) ~= nil, "a type error names the script line", out)
T.check(out:find("stack traceback:", 1, true) ~= nil, "a type error prints a traceback", out)
T.check(rc ~= 0, "a type error exits non-zero", tostring(rc))

write(tmp, 'local bl = require("bertlab")\nlocal y = bl.zeros({2}) + bl.zeros({3})\n')
out, rc = run(BIN .. " " .. tmp)
T.check(out:find(tmp .. ":2: shape mismatch: [2] and [3]", 1, true) ~= nil,
  "a runtime error names the script line and the shapes", out)
T.eq(rc, 1, "a runtime error exits 1")

write(tmp, 'local x = = 1\n')
out, rc = run(BIN .. " " .. tmp)
T.check(out:find(tmp .. ":1:", 1, true) ~= nil and rc == 1, "a syntax error names the line and exits 1", out)

out, rc = run(BIN .. " /nonexistent/script.lua")
T.check(out:find("cannot open /nonexistent/script.lua", 1, true) ~= nil and rc == 1, "a missing script is reported", out)

out, rc = run("echo 'print(require(\"bertlab\").version)' | " .. BIN .. " -")
T.check(out:match("^%d+%.%d+%.%d+\n$") ~= nil and rc == 0, "'-' reads the script from stdin", out)

out, rc = run(BIN .. " -e 'error({})'")
T.check(out:find("error object is a table value", 1, true) ~= nil and rc == 1, "a non-string error object is reported", out)

os.remove(tmp)
T.done()
