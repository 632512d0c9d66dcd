-- test_build.lua: the Makefile rebuilds runtime/dist.o when the MPI flags it was compiled with change
-- (Open MPI installed after a build, or MPI=0 given) and only then. Builds dist.o alone into a
-- temporary BUILD folder: as configured (twice), with MPI=0 (twice), and, where mpicc exists, as
-- configured again. And a bare `make` means `make all`.
local T = require("testlib")

local function q(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

local has_make = T.sh("command -v make >/dev/null")
if has_make ~= 0 then
  T.skip("build flags stamp", "make is not installed")
  T.done()
end

local dir = os.tmpname()
os.remove(dir)
-- MAKEFLAGS cleared: under `make test` the outer make's jobserver is not ours to use.
local function make_in(args)
  local rc, out = T.sh(("MAKEFLAGS= MAKELEVEL= make BUILD=%s %s"):format(q(dir), args))
  return out, rc
end
local function make(extra) return make_in(("%s %s/runtime/dist.o"):format(extra, q(dir))) end
local function compiled(out) return out:find("runtime/dist.c", 1, true) ~= nil end
local function stamp()
  local f = io.open(dir .. "/.mpi-flags")
  local s = f and f:read("a")
  if f then f:close() end
  return s
end

local out, rc = make("")
T.eq(rc, 0, "dist.o builds into a fresh BUILD folder")
if rc ~= 0 then print("#   " .. out:gsub("\n", "\n#   ")) end
T.check(compiled(out), "the first build compiles runtime/dist.c")
local mpi = T.sh("command -v mpicc >/dev/null")
local first = stamp()
T.check(first ~= nil, "the build writes BUILD/.mpi-flags")
T.eq(first and first:find("-DBL_WITH_MPI", 1, true) ~= nil, mpi == 0,
  "BUILD/.mpi-flags names -DBL_WITH_MPI exactly when mpicc is on PATH")

out = make("")
T.check(not compiled(out), "a second build with the same flags leaves dist.o alone")

out, rc = make("MPI=0")
T.eq(rc, 0, "make MPI=0 builds dist.o")
-- with mpicc the flags change (-DBL_WITH_MPI goes away): rebuilt; without, MPI=0 changes nothing
T.eq(compiled(out), mpi == 0, mpi == 0 and "MPI=0 after an MPI build recompiles dist.o"
  or "MPI=0 without mpicc leaves dist.o alone (the flags were empty already)")
T.eq(stamp(), "\n", "BUILD/.mpi-flags holds no flags under MPI=0")
out = make("MPI=0")
T.check(not compiled(out), "MPI=0 again leaves dist.o alone")
if mpi == 0 then
  out = make("")
  T.check(compiled(out), "back to MPI: dist.o recompiled with -DBL_WITH_MPI")
end

-- a bare `make` (what README and the messages say) builds the binary, not just the first rule's target
local plan, rc2 = make_in(("-n BIN=%s/bin/bertlab"):format(q(dir)))
T.eq(rc2, 0, "make -n with no target runs")
T.check(plan:find(dir .. "/bin/bertlab", 1, true) ~= nil and plan:find("bert_kernels.c", 1, true) ~= nil,
  "a bare make builds bin/bertlab and its objects (the default goal is all)")

os.execute("rm -rf " .. q(dir))
T.done()
