-- testlib.lua: the Lua tests' harness. Each check prints "ok - name" or "not ok - name: why";
-- tests/run.sh counts the lines. T.done() exits non-zero when a check failed.
local T = { failed = 0 }

local function report(ok, name, why)
  if ok then
    print("ok - " .. name)
  else
    T.failed = T.failed + 1
    print("not ok - " .. name .. (why and (": " .. why) or ""))
  end
  io.stdout:flush()
  return ok
end

function T.check(cond, name, why) return report(cond and true or false, name, why) end

-- How a failed T.eq shows a value: a long or binary string (a file's bytes) as its length and the
-- first byte where it differs from the other, not its bytes
local function show(v, other)
  if type(v) ~= "string" or (#v <= 200 and not v:find("[%z\1-\8\14-\31\127-\255]")) then return tostring(v) end
  local i = 1
  if type(other) == "string" then
    while i <= #v and i <= #other and v:byte(i) == other:byte(i) do i = i + 1 end
  end
  return ("a string of %d bytes%s"):format(#v, type(other) == "string" and (" (first difference at byte %d)"):format(i) or "")
end

function T.eq(got, want, name)
  return report(got == want, name, ("got %s, expected %s"):format(show(got, want), show(want, got)))
end

function T.near(got, want, tol, name)
  local ok = type(got) == "number" and math.abs(got - want) <= tol
  return report(ok, name, ("got %s, expected %s (tol %g)"):format(tostring(got), tostring(want), tol))
end

-- Deep equality of plain tables/values.
local function deq(a, b)
  if type(a) ~= type(b) then return false end
  if type(a) ~= "table" then return a == b end
  for k, v in pairs(a) do if not deq(v, b[k]) then return false end end
  for k in pairs(b) do if a[k] == nil then return false end end
  return true
end
T.deep_equal = deq

function T.same(got, want, name)
  return report(deq(got, want), name, "tables differ")
end

-- checkerror(pattern, f, ...): f must raise an error whose text matches the Lua pattern.
function T.checkerror(pattern, name, f, ...)
  local ok, err = pcall(f, ...)
  if ok then return report(false, name, "no error raised") end
  err = tostring(err)
  return report(err:find(pattern) ~= nil, name, ("error %q does not match %q"):format(err, pattern))
end

-- The bertlab binary under test (tests/run.sh sets BL_TEST_BIN; make test-asan points it elsewhere).
T.BIN = os.getenv("BL_TEST_BIN") or "bin/bertlab"

-- T.sh(cmd) -> exit status, output (stdout and stderr); a leading "bin/bertlab " runs T.BIN.
function T.sh(cmd)
  cmd = cmd:gsub("^bin/bertlab ", function() return T.BIN .. " " end)
  local p = io.popen(cmd .. " 2>&1")
  local out = p:read("a")
  local ok, _, code = p:close()
  return ok and 0 or code, out
end

-- T.slurp(path) -> the file's bytes, or nil when it cannot be opened.
function T.slurp(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

-- T.notes_fixture(n) -> dir, model, data: a temporary folder holding a copy of the tiny fixture model
-- (tests/fixtures/model/tiny with the own-data vocabulary) and notes.csv, n rows of 3 classes
-- ("note,kind"; words of the class among filler words, drawn after math.randomseed(11)).
function T.notes_fixture(n)
  local bl = require("bertlab")
  local TINY = "tests/fixtures/model/tiny"
  local dir = os.tmpname()
  os.remove(dir)
  bl.mkdir_p(dir .. "/model")
  os.execute(("cp %s/config.json %s/model.safetensors tests/fixtures/owndata/vocab.txt %s/model/"):format(TINY, TINY,
    bl.shell_quote(dir)))
  math.randomseed(11)
  local pools = { a = { "red", "blue", "green", "pink" }, b = { "cat", "dog", "fish", "bird" }, c = { "run", "jump", "swim", "walk" } }
  local lines = { "note,kind" }
  for i = 1, n do
    local c = ({ "a", "b", "c" })[(i - 1) % 3 + 1]
    local w = {}
    for k = 1, 6 do w[k] = (k % 2 == 1) and pools[c][math.random(4)] or ({ "the", "of", "and", "is" })[math.random(4)] end
    lines[#lines + 1] = table.concat(w, " ") .. "," .. c
  end
  bl.write_file(dir .. "/notes.csv", table.concat(lines, "\n") .. "\n")
  return dir, dir .. "/model", dir .. "/notes.csv"
end

-- T.find_browser() -> the path of a headless-capable Chromium (for the SVG render checks), or nil
function T.find_browser()
  for _, b in ipairs({ "chromium", "chromium-browser", "google-chrome" }) do
    local p = io.popen("command -v " .. b .. " 2>/dev/null")
    local path = p:read("l")
    p:close()
    if path and path ~= "" then return path end
  end
end

function T.skip(name, reason) print("skip - " .. name .. ": " .. reason) end

function T.done()
  if T.failed > 0 then os.exit(1) end
  os.exit(0)
end

return T
