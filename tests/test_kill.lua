-- test_kill.lua: kill -9 at random moments. Each trial starts experiments/conference.lua on the tiny
-- fixture model (4 epochs of 10 steps, a state every 3 steps and at each epoch's end), kills it with
-- SIGKILL, either after a random delay or as soon as a save's temporary folder appears (a kill during
-- a save), or stops it with SIGINT; then checks that every epoch_N folder present is complete and
-- loads strictly with finite weights, that no partial folder is taken for a checkpoint or a state,
-- and that `--resume` finishes the run with the uninterrupted run's final weights, to the byte.
-- KILL_TRIALS (default 4) trials; `make stress` runs STRESS_TRIALS (default 20). KILL_SEED fixes
-- the random moments (printed).
local T = require("testlib")
local bl = require("bertlab")

local TINY = "tests/fixtures/model/tiny"
if not bl.file_exists(TINY .. "/model.safetensors") then
  T.skip("kill test", TINY .. " is missing")
  T.done()
end
local BIN = T.BIN
local TRIALS = math.tointeger(tonumber(os.getenv("KILL_TRIALS") or "4")) or 4
local SEED = math.tointeger(tonumber(os.getenv("KILL_SEED") or "")) or os.time()
math.randomseed(SEED)
print(("# %d trials, KILL_SEED=%d"):format(TRIALS, SEED))

local function q(s) return bl.shell_quote(s) end
local sh = T.sh
local slurp = T.slurp
local function alive(pid)
  local s = slurp("/proc/" .. pid .. "/stat")
  return s ~= nil and not s:match("^%d+ %b() [ZX]")
end

local dir = os.tmpname()
os.remove(dir)
bl.mkdir_p(dir .. "/model")
os.execute(("cp %s/config.json %s/model.safetensors tests/fixtures/owndata/vocab.txt %s/model/"):format(TINY, TINY, q(dir)))
local DATA = dir .. "/d.csv"
do
  local words = { { "great", "good", "fine", "nice", "best" }, { "bad", "awful", "poor", "sad", "weak" },
                  { "table", "chair", "door", "paper", "stone" } }
  local filler = { "the", "a", "of", "and", "it", "is", "movie", "film" }
  local lines = { "text,label" }
  for i = 1, 90 do
    local c = (i - 1) % 3 + 1
    local w = {}
    for k = 1, 8 do w[k] = (k % 2 == 0) and words[c][math.random(5)] or filler[math.random(#filler)] end
    lines[#lines + 1] = table.concat(w, " ") .. "," .. ({ "pos", "neg", "neu" })[c]
  end
  bl.write_file(DATA, table.concat(lines, "\n") .. "\n")
end
local EPOCHS = 4
local ARGS = ("--model %s --data %s --text-column text --label-column label --max-length 32 --epochs %d --lr 3e-3 --batch-size 8 --save-every 3 --quiet")
  :format(q(dir .. "/model"), q(DATA), EPOCHS)

-- the uninterrupted run
local t0 = bl.now()
local rc, out = sh(("%s experiments/conference.lua %s --out %s"):format(BIN, ARGS, q(dir .. "/ref")))
local T_REF = bl.now() - t0
T.eq(rc, 0, "the uninterrupted run finishes")
if rc ~= 0 then print("# " .. out:gsub("\n", "\n# ")) end
local REF = slurp(("%s/ref/epoch_%d/model.safetensors"):format(dir, EPOCHS))
print(("# uninterrupted run: %.2f s"):format(T_REF))

-- starts a run in the background; its exit status goes to the end of OUT.log ("rc=N"); returns the
-- pid of bertlab itself (the child of the subshell that records the status)
local function start(o)
  local p = io.popen(("sh -c '(%s experiments/conference.lua %s --out %s; echo \"rc=$?\") >%s 2>&1 & echo $!'"):format(BIN, ARGS, o, o .. ".log"))
  local sub = tonumber(p:read("l"))
  p:close()
  local child
  for _ = 1, 500 do
    child = tonumber((slurp(("/proc/%d/task/%d/children"):format(sub, sub)) or ""):match("%d+"))
    if child then break end
    os.execute("sleep 0.002")
  end
  return child or sub
end

local function partials(o)
  local found = {}
  local p = io.popen("ls -a " .. q(o) .. " 2>/dev/null")
  for name in p:lines() do if name:match("^%..*%.partial$") or name:match("^%..*%.old$") or name:match("%.tmp%.") then found[#found + 1] = name end end
  p:close()
  return found
end

local outcomes, during_save, failures = {}, 0, 0
for trial = 1, TRIALS do
  local o = ("%s/t%d"):format(dir, trial)
  local kind = trial % 3 == 1 and "random" or trial % 3 == 2 and "save" or "sigint"
  local pid = start(o)
  local what
  if kind == "save" then -- poll for a save's temporary folder, kill as soon as one is seen
    local target = math.random(1, 6)
    local seen, deadline = 0, bl.now() + 3 * T_REF + 2
    while alive(pid) and bl.now() < deadline do
      if #partials(o) > 0 then
        seen = seen + 1
        if seen >= target then break end
        os.execute("sleep 0.01")
      end
    end
    sh("kill -9 " .. pid)
    what = "SIGKILL when a save was under way"
  elseif kind == "sigint" then -- once training runs (the first state is saved), after a random delay
    local deadline = bl.now() + 3 * T_REF + 2
    while alive(pid) and bl.now() < deadline and not bl.file_exists(o .. "/state/state.json") do os.execute("sleep 0.005") end
    os.execute(("sleep %.3f"):format(math.random() * T_REF * 0.3))
    sh("kill -INT " .. pid)
    what = "SIGINT"
  else
    os.execute(("sleep %.3f"):format((0.1 + math.random()) * T_REF))
    sh("kill -9 " .. pid)
    what = "SIGKILL at a random moment"
  end
  local waited = bl.now()
  while alive(pid) and bl.now() - waited < 10 do os.execute("sleep 0.02") end
  local left = partials(o)
  if kind ~= "sigint" and #left > 0 then during_save = during_save + 1 end
  local name = ("trial %d (%s)"):format(trial, what)
  for _ = 1, 200 do -- the subshell writes the status line once bertlab is gone
    if (slurp(o .. ".log") or ""):find("rc=%d+") then break end
    os.execute("sleep 0.01")
  end
  local log = slurp(o .. ".log") or ""
  if kind == "sigint" and log:find("Stopped by SIGINT") then
    T.check(log:find("Continue with: bin/bertlab experiments/conference%.lua %-%-resume") and log:find("rc=130"),
      name .. ": exits with status 130 and prints the --resume command", log)
  elseif kind ~= "sigint" then
    T.check(log:find("rc=137") or log:find("rc=0"), name .. ": the run died of SIGKILL (137) or had finished", log)
  end
  -- every checkpoint folder present is complete and loads; partial folders are not checkpoints
  local ok_ckpt, why = true, ""
  for e = 1, EPOCHS do
    local ck = ("%s/epoch_%d"):format(o, e)
    if bl.is_dir(ck) then
      local okl, m = pcall(bl.BertForSequenceClassification.from_pretrained, ck, { quiet = true, strict = true })
      if not (okl and bl.weights_finite(m) and bl.file_exists(ck .. "/vocab.txt")) then
        ok_ckpt, why = false, why .. ck .. ": " .. tostring(m) .. "; "
      end
      if okl then m:free() end
    end
  end
  T.check(ok_ckpt, name .. ": every epoch_N present is complete and loads strictly", why)
  local sdir = bl.file_exists(o .. "/run.json") and bl.find_state(o) or nil
  T.check(sdir == nil or not sdir:find("partial", 1, true), name .. ": a partial folder is never taken for a state", tostring(sdir))
  -- resume to the end
  local outcome
  if not bl.file_exists(o .. "/run.json") then
    outcome = "killed before run.json"
    T.check(not bl.is_dir(o .. "/epoch_1"), name .. ": killed before the run was recorded: nothing to resume, no checkpoint")
  else
    local rec = bl.read_json(o .. "/run.json")
    if rec.status == "done" then
      outcome = "finished before the kill"
      T.eq(slurp(("%s/epoch_%d/model.safetensors"):format(o, EPOCHS)), REF, name .. ": finished run has the reference weights")
    else
      local st = sdir and bl.read_json(sdir .. "/state.json")
      outcome = st and ("resumed from step %d"):format(st.step) or "resumed from the beginning"
      local rc2, out2 = sh(("%s experiments/conference.lua --resume %s --quiet"):format(BIN, q(o)))
      local same = slurp(("%s/epoch_%d/model.safetensors"):format(o, EPOCHS)) == REF
      T.check(rc2 == 0 and same and #partials(o) == 0 and bl.read_json(o .. "/run.json").status == "done",
        name .. ": --resume finishes with the uninterrupted run's final weights (" .. outcome .. ")",
        ("rc %s, identical %s, left %s\n%s"):format(tostring(rc2), tostring(same), table.concat(partials(o), " "), out2))
    end
  end
  if #left > 0 then outcome = outcome .. ", left " .. table.concat(left, " ") end
  outcomes[#outcomes + 1] = outcome
  print(("# %s: %s"):format(name, outcome))
end
print(("# %d trials, %d SIGKILLs with a save's temporary folder present"):format(TRIALS, during_save))
os.execute("rm -rf " .. q(dir))
T.done()
