-- bertlab.sweep: an ablation's runs spread out, on engines that clusters already have: a Slurm job
-- array (bl.slurm_array_script writes it, bl.sbatch submits it), or N processes at once on this
-- machine (bl.run_jobs). experiments/ablation.lua --slurm / --jobs use them; each task runs one run
-- of the ablation by its index (--task K) and writes its row beside it, and --collect (the path of
-- resuming) assembles the table.
return function(bl)
  local q = bl.shell_quote

  local function abs(path)
    if path:sub(1, 1) == "/" then return path end
    local p = io.popen("pwd")
    local cwd = p:read("l")
    p:close()
    return (cwd .. "/" .. path):gsub("/%./", "/")
  end
  bl.abs_path = abs

  local SLURM_OPTS = { "name", "tasks", "argv", "log_dir", "workdir", "partition", "time", "cpus_per_task", "mem", "extra" }

  -- bl.slurm_array_script{name=, tasks=K, argv={...}, log_dir=, workdir=, partition=, time=,
  --   cpus_per_task=, mem=, extra={lines}} → the text of an sbatch script: an array of K tasks
  -- (0..K-1), task k running argv followed by `--task k --threads <cpus>`, from workdir.
  function bl.slurm_array_script(o)
    bl.check_options("slurm_array_script", o, SLURM_OPTS, 2)
    if math.type(o.tasks) ~= "integer" or o.tasks < 1 then
      error("slurm_array_script: tasks must be a positive integer, got " .. tostring(o.tasks), 2)
    end
    if type(o.argv) ~= "table" or #o.argv == 0 then error("slurm_array_script: argv must be a non-empty list", 2) end
    local cpus = o.cpus_per_task or 1
    local L = { "#!/bin/sh",
      ("# written by bertlab (experiments/ablation.lua --slurm): %d tasks, one run of the ablation each"):format(o.tasks),
      "#SBATCH --job-name=" .. (o.name or "bertlab"):gsub("[^%w%-_.]", "_"),
      ("#SBATCH --array=0-%d"):format(o.tasks - 1),
      "#SBATCH --ntasks=1",
      ("#SBATCH --cpus-per-task=%d"):format(cpus),
      "#SBATCH --output=" .. (o.log_dir or ".") .. "/task-%a.log" }
    if o.partition then L[#L + 1] = "#SBATCH --partition=" .. o.partition end
    if o.time then L[#L + 1] = "#SBATCH --time=" .. o.time end
    if o.mem then L[#L + 1] = "#SBATCH --mem=" .. o.mem end
    for _, x in ipairs(o.extra or {}) do L[#L + 1] = "#SBATCH " .. x end
    L[#L + 1] = "set -e"
    if o.workdir then L[#L + 1] = "cd " .. q(o.workdir) end
    local words = {}
    for i, a in ipairs(o.argv) do words[i] = q(a) end
    L[#L + 1] = ("exec %s --task \"$SLURM_ARRAY_TASK_ID\" --threads \"${SLURM_CPUS_PER_TASK:-%d}\""):format(
      table.concat(words, " "), cpus)
    return table.concat(L, "\n") .. "\n"
  end

  -- bl.sbatch(script_path) → the job id; raises with sbatch's own message when it refuses
  function bl.sbatch(path)
    local p = io.popen("sbatch --parsable " .. q(path) .. " 2>&1")
    local out = p:read("a")
    local ok = p:close()
    local id = out:match("^(%d+)")
    if not ok or not id then
      error(("sbatch %s failed: %s"):format(path, (out:gsub("%s+$", ""))), 2)
    end
    return math.tointeger(tonumber(id))
  end

  -- bl.run_jobs(commands, n, {dir=}) → statuses: runs the shell commands, n at a time (xargs -P),
  -- each command's output in dir/job-<k>.log; statuses[k] is its exit status.
  function bl.run_jobs(cmds, n, o)
    o = bl.check_options("run_jobs", o, { "dir" }, 2)
    if math.type(n) ~= "integer" or n < 1 then error("run_jobs: n must be a positive integer, got " .. tostring(n), 2) end
    local dir = o.dir or os.tmpname()
    if not o.dir then os.remove(dir) end
    bl.mkdir_p(dir)
    local list = {}
    for k, c in ipairs(cmds) do
      local script = ("%s/job-%d.sh"):format(dir, k)
      bl.write_file(script, ("( %s ) > %s 2>&1\necho $? > %s\n"):format(c, q(("%s/job-%d.log"):format(dir, k)),
        q(("%s/job-%d.rc"):format(dir, k))))
      os.remove(("%s/job-%d.rc"):format(dir, k))
      list[#list + 1] = script
    end
    bl.write_file(dir .. "/jobs.txt", table.concat(list, "\n") .. "\n")
    os.execute(("xargs -P %d -n 1 sh < %s"):format(n, q(dir .. "/jobs.txt")))
    local st = {}
    for k = 1, #cmds do
      local f = io.open(("%s/job-%d.rc"):format(dir, k))
      st[k] = f and tonumber(f:read("l")) or -1
      if f then f:close() end
    end
    return st, dir
  end
end
