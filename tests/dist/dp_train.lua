-- dp_train.lua: the training run of tests/test_dist.lua, run by one process or under mpirun:
--   bin/bertlab tests/dist/dp_train.lua MODEL DATA OUT BATCH STEPS_FILE|- [k=v ...]  (run_experiment options;
--   resume=OUT continues a run; stop_at=N exits with status 3 after step N, as a crash)
-- bl.run_experiment on the test's CSV; after every optimizer step each process appends
-- "rank step loss sha256(weights)" to STEPS_FILE.rank<r> (the replicas' weights, step by step).
local bl = require("bertlab")
local model_dir, data, out, batch, steps_file = arg[1], arg[2], arg[3], tonumber(arg[4]), arg[5]
if steps_file == "" or steps_file == "-" then steps_file = nil end
local extra = {}
for i = 6, #arg do
  local k, v = arg[i]:match("^([%w_]+)=(.*)$")
  extra[k] = tonumber(v) or v
end
local f
local function weights_hash(model)
  local parts = {}
  for _, p in ipairs(model:parameters()) do
    local t = p:totable()
    local flat = {}
    local function walk(x) if type(x) == "table" then for _, y in ipairs(x) do walk(y) end else flat[#flat + 1] = x end end
    walk(t)
    for k = 1, #flat, 4096 do parts[#parts + 1] = string.pack(("f"):rep(math.min(4096, #flat - k + 1)), table.unpack(flat, k, math.min(k + 4095, #flat))) end
  end
  return bl.sha256(table.concat(parts))
end
local o = { model = model_dir, data = data, text_column = "note", label_column = "kind", max_length = 16, epochs = 2,
            lr = 1e-3, batch_size = batch, seed = 5, progress = false, per_class = false, out = out, keep_state = true,
            log = function(s) io.stdout:write(s, "\n") end }
-- stop_at=N: every process stops after step N as a crash would (the last training state stays)
local stop_at = extra.stop_at
extra.stop_at = nil
for k, v in pairs(extra) do o[k] = v end
o.on_step = function(model, epoch, step, loss)
  if steps_file then
    if not f then f = assert(io.open(("%s.rank%d"):format(steps_file, bl.dist_rank()), "a")) end
    f:write(("%d %d %.9g %s\n"):format(bl.dist_rank(), step, loss, weights_hash(model)))
    f:flush()
  end
  if stop_at and step == stop_at then
    if f then f:close() end
    os.exit(3)
  end
end
local res = bl.run_experiment(o)
if f then f:close() end
if bl.dist_rank() == 0 then
  print(("final f1 %.9g loss %.9g processes %d"):format(res.final.f1, res.final.loss, bl.dist_size()))
end
