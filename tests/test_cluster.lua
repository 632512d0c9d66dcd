-- test_cluster.lua: a single-node Slurm cluster brought up by scripts/cluster.sh (munged, slurmctld,
-- slurmd, started by hand, accounting off) for the length of the test: `srun -n 2 --mpi=pmix` trains
-- the data-parallel fixture run and matches mpirun's bytes; a tiny ablation submitted as a 4-task
-- job array (ablation.lua --slurm), assembled by --collect, equals the same ablation run here (and
-- with --jobs 2); a lost row is named; every daemon it started is stopped by PID at the end
-- (checked). Skips, saying why, without root, Slurm, munge or an MPI build.
local T = require("testlib")
local bl = require("bertlab")

local function have(cmd) return os.execute("command -v " .. cmd .. " >/dev/null 2>&1") end
local why
if not have("slurmctld") or not have("slurmd") or not have("munged") or not have("srun") then
  why = "slurm-wlm and munge are not installed (sh scripts/cluster.sh deps)"
elseif (io.popen("id -u"):read("l")) ~= "0" then
  why = "the daemons need root"
elseif not bl.dist_have_mpi() then
  why = "this bertlab was built without MPI"
end
if why then
  T.skip("single-node Slurm cluster", why)
  T.done()
end
local q = bl.shell_quote
local dir, MODEL, DATA = T.notes_fixture(80)
local CL = dir .. "/cluster"
-- ports from this process's id, so two runs of the test on one machine do not meet
local port = 20000 + (tonumber(io.popen("echo $PPID"):read("l")) or 0) % 20000
local rcu, upout = T.sh(("SLURM_PORTS=%d,%d sh scripts/cluster.sh up %s"):format(port, port + 1, q(CL)))
T.eq(rcu, 0, "scripts/cluster.sh up: munged, slurmctld, slurmd; the node is idle" .. (rcu ~= 0 and (": " .. upout) or ""))
local env = ("SLURM_CONF=%s/slurm.conf "):format(q(CL))
local ok, err = pcall(function()
  if rcu ~= 0 then return end
  local rc1, o1 = T.sh(env .. ("srun -n 2 --mpi=pmix bin/bertlab tests/dist/dp_train.lua %s %s %s 3 - limit=60 lr=1e-5")
    :format(q(MODEL), q(DATA), q(dir .. "/srun")))
  T.eq(rc1, 0, "srun -n 2 --mpi=pmix: the data-parallel fixture run, exit 0" .. (rc1 ~= 0 and (": " .. o1:sub(1, 1500)) or ""))
  T.check(o1:find("(2 processes x 3)", 1, true) ~= nil, "srun: the run trains on 2 processes x 3")
  local rc2, o2 = T.sh(("env OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_btl=self,tcp mpirun --oversubscribe -np 2 "
    .. "bin/bertlab tests/dist/dp_train.lua %s %s %s 3 - limit=60 lr=1e-5"):format(q(MODEL), q(DATA), q(dir .. "/mpirun")))
  T.eq(rc2, 0, "the same under mpirun, exit 0" .. (rc2 ~= 0 and (": " .. o2:sub(1, 1500)) or ""))
  T.eq(T.slurp(dir .. "/srun/epoch_2/model.safetensors"), T.slurp(dir .. "/mpirun/epoch_2/model.safetensors"),
    "srun and mpirun give the same weights (bytes)")
  -- an ablation spread over a 4-task Slurm array (2 cells x 2 seeds), assembled by --collect, against
  -- the same ablation run here one run after another, and with --jobs 2
  -- (`env` first: every run here and every Slurm task uses the same bin/bertlab, also when the suite
  -- runs under a sanitized binary, whose other compiler flags give other last digits)
  local ABL = ("env bin/bertlab experiments/ablation.lua --model %s --data %s --text-column note --label-column kind "
    .. "--max-length 16 --limit 40 --val-limit 20 --epochs 1 --lrs 1e-3 --seeds 5,6 --grid batch_size=4,8 --threads 1"):format(q(MODEL), q(DATA))
  local rcs, os1 = T.sh(ABL .. " --quiet --out " .. q(dir .. "/abl_seq"))
  T.eq(rcs, 0, "the ablation run here, one run after another: exit 0" .. (rcs ~= 0 and (": " .. os1:sub(1, 1500)) or ""))
  local rcd2, od = T.sh(env .. ABL .. " --slurm --dry-run --out " .. q(dir .. "/abl_dry"))
  local script = T.slurp(dir .. "/abl_dry/slurm/array.sh") or ""
  T.check(rcd2 == 0 and script:find("#SBATCH --array=0-3", 1, true) and script:find('--task "$SLURM_ARRAY_TASK_ID"', 1, true),
    "--slurm --dry-run writes an array script of 4 tasks (one per run)" .. (rcd2 ~= 0 and (": " .. od) or ""))
  T.check(od:find("submit it with: sbatch", 1, true) ~= nil and not od:find("Submitted job", 1, true), "--dry-run does not submit it")
  local rcq, oq = T.sh(env .. ABL .. " --slurm --out " .. q(dir .. "/abl_slurm"))
  local job = oq:match("Submitted job (%d+)")
  T.check(rcq == 0 and job ~= nil, "--slurm submits the array with sbatch" .. (job and (" (job " .. job .. ")") or (": " .. oq:sub(1, 1500))))
  local waited = 0
  while job and waited < 240 do
    local p = io.popen(env .. "squeue -h -j " .. job .. " 2>/dev/null")
    local left = p:read("a")
    p:close()
    if left:match("^%s*$") then break end
    os.execute("sleep 1")
    waited = waited + 1
  end
  T.check(waited < 240, ("the array's 4 tasks end (%d s)"):format(waited))
  local rcc, oc = T.sh("bin/bertlab experiments/ablation.lua --collect " .. q(dir .. "/abl_slurm"))
  T.eq(rcc, 0, "--collect assembles the table: exit 0" .. (rcc ~= 0 and (": " .. oc:sub(1, 1500)) or ""))
  local function run_rows(path) -- the runs' rows, less the time column
    local rows = {}
    for l in (T.slurp(path) or ""):gmatch("[^\n]+") do
      if l:match("^run,") then rows[#rows + 1] = (l:gsub(",[^,]*,[^,]*$", "")) end
    end
    return rows
  end
  local seq, slurm = run_rows(dir .. "/abl_seq/ablation.csv"), run_rows(dir .. "/abl_slurm/ablation.csv")
  T.eq(#slurm, 4, "the collected ablation.csv holds the 4 runs' rows")
  T.same(slurm, seq, "the Slurm array's rows equal those of the ablation run here (F1, losses, best epoch)")
  T.check(bl.file_exists(dir .. "/abl_slurm/ablation.md") and bl.file_exists(dir .. "/abl_slurm/ablation.svg"),
    "--collect writes ablation.md and ablation.svg")
  T.eq(bl.read_json(dir .. "/abl_slurm/ablation.json").status, "done", "the collected ablation.json says done")
  print("# the Slurm array's table:\n# " .. ((T.slurp(dir .. "/abl_slurm/ablation.md") or ""):gsub("\n", "\n# ")))
  -- a task's row lost: --collect says which run is missing and the record says partial
  os.remove(dir .. "/abl_slurm/c02-bs8/seed6/row.json")
  os.remove(dir .. "/abl_slurm/ablation.csv")
  local rcp, op = T.sh("bin/bertlab experiments/ablation.lua --collect " .. q(dir .. "/abl_slurm"))
  T.check(rcp == 0 and op:find("1 of 4 runs have no row yet: c02%-bs8/seed6") ~= nil, "--collect names a run whose row is missing")
  T.eq(bl.read_json(dir .. "/abl_slurm/ablation.json").status, "partial", "... and ablation.json says partial")
  -- --jobs 2: two runs at a time here
  local rcj, oj = T.sh(ABL .. " --jobs 2 --out " .. q(dir .. "/abl_jobs"))
  T.eq(rcj, 0, "--jobs 2: exit 0" .. (rcj ~= 0 and (": " .. oj:sub(1, 1500)) or ""))
  T.same(run_rows(dir .. "/abl_jobs/ablation.csv"), seq, "--jobs 2 gives the same rows as one run after another")
end)
if not ok then T.check(false, "the cluster checks raised: " .. tostring(err)) end
local pids = T.slurp(CL .. "/pids") or ""
local rcd, downout = T.sh("sh scripts/cluster.sh down " .. q(CL))
T.eq(rcd, 0, "scripts/cluster.sh down: exit 0 (" .. downout:gsub("\n", "") .. ")")
local alive = {}
for pid in pids:gmatch("%d+") do
  if os.execute("kill -0 " .. pid .. " 2>/dev/null") then alive[#alive + 1] = pid end
end
local n = select(2, pids:gsub("%d+", ""))
T.check(n == 3 and #alive == 0, ("every daemon the test started is stopped (%d recorded, still alive: %s)"):format(n,
  #alive > 0 and table.concat(alive, " ") or "none"))
os.execute("rm -rf " .. q(dir))
T.done()
