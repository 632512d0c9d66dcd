-- bertlab.state: training states (bl.save_state / bl.load_state / bl.find_state): everything a run
-- needs to continue exactly where it stopped: the model (a Hugging Face folder, so a state is also a
-- loadable checkpoint), the AdamW moments and step count, the schedule's step, the seed and the
-- position of every random stream, the loader's epoch order and position, and the results so far.
-- Written atomically: a hidden temporary folder, every file fsync'd, the folder fsync'd, renamed.
return function(bl)
  local FORMAT = "bertlab-state/1"
  local FILES = { "state.json", "optimizer.safetensors", "model/config.json", "model/model.safetensors" }

  local function rm_rf(path) bl.remove_tree(path) end
  local function exists(path) return bl.file_exists(path) end

  local function split_path(dir)
    dir = dir:gsub("/+$", "")
    local parent, name = dir:match("^(.*)/([^/]+)$")
    if not parent then parent, name = ".", dir end
    if parent == "" then parent = "/" end
    return dir, parent, name
  end

  -- bl.is_dir(path): true when path is a folder (following links).
  function bl.is_dir(path)
    local f = io.open(path .. "/.", "rb")
    if f then f:close(); return true end
    return false
  end

  local function check_objects(fn, objs, more)
    if type(objs) ~= "table" then error(fn .. ": argument #2 must be a table {model=, optimizer=, ...}", 3) end
    local names = { "model", "optimizer", "scheduler", "loader", "epoch", "step", "results", "extra" }
    for _, n in ipairs(more or {}) do names[#names + 1] = n end
    bl.check_options(fn, objs, names, 3)
    if objs.model == nil then error(fn .. ": 'model' is required", 3) end
    if objs.optimizer == nil then error(fn .. ": 'optimizer' is required", 3) end
  end

  -- bl.weights_finite(model) → true, or false and the sum of squares (NaN/Inf) of the weights.
  function bl.weights_finite(model)
    local ss = model:params_sumsq()
    if ss ~= ss or ss == math.huge or ss == -math.huge then return false, ss end
    return true, ss
  end

  -- The files model:save writes into a folder; model.safetensors and config.json must be there
  local MODEL_FILES = { "model.safetensors", "config.json", "vocab.txt" }

  -- dst/ gets hard links to the model files of the checkpoint folder src (written from the same
  -- weights); false when src lacks one or a link cannot be made (dst is then left for model:save)
  local function link_model(src, dst)
    if type(src) ~= "string" or not exists(src .. "/model.safetensors") or not exists(src .. "/config.json") then
      return false
    end
    bl.mkdir_p(dst)
    for _, f in ipairs(MODEL_FILES) do
      if exists(src .. "/" .. f) and not bl.link_file(src .. "/" .. f, dst .. "/" .. f) then
        rm_rf(dst)
        return false
      end
    end
    return true
  end

  -- bl.save_state(dir, {model=, optimizer=, scheduler=, loader=, epoch=, step=, results=, extra=,
  -- model_from=}): writes the training state folder `dir` (replacing an older state there only once
  -- the new one is complete). epoch: epochs finished; step: optimizer steps in all; loader: its
  -- position is saved when an epoch is under way; results: the per-epoch rows so far; extra: any
  -- JSON-able table of the caller's; model_from: a checkpoint folder just saved from these same
  -- weights, whose files the state links instead of writing the weights again (where links can be
  -- made; a checkpoint's files are never rewritten in place, so the two names stay the same bytes).
  -- Weights with a NaN or Inf are refused (nothing is written). Returns dir.
  function bl.save_state(dir, objs)
    if type(dir) ~= "string" or dir == "" then error("save_state: argument #1 must be a folder path", 2) end
    check_objects("save_state", objs, { "model_from" })
    if objs.model_from ~= nil and type(objs.model_from) ~= "string" then
      error("save_state: 'model_from' must be a checkpoint folder path, got " .. type(objs.model_from), 2)
    end
    local model, opt, sched = objs.model, objs.optimizer, objs.scheduler
    local okw, ss = bl.weights_finite(model)
    if not okw then
      error(("save_state: the model's weights hold NaN or Inf (sum of squares %s); the state was not saved")
        :format(tostring(ss)), 2)
    end
    local sd = opt:state_dict({ moments = false }) -- the moments go to their file from where they lie
    local pos = objs.loader and objs.loader:position() or nil
    if pos and pos.batch >= pos.batches then pos = nil end -- a finished epoch: the next draws a new order
    local st = {
      format = FORMAT, epoch = objs.epoch or 0, step = objs.step or sd.step, saved = bl.iso_time(),
      optimizer = { step = sd.step, lr = sd.lr, eps = sd.eps, weight_decay = sd.weight_decay, betas = sd.betas,
                    variant = sd.variant, correct_bias = sd.correct_bias },
      scheduler = sched and { last_epoch = sched.last_epoch, base_lr = sched.base_lr } or nil,
      rng = bl.rng_state(),
      loader = pos and { order = pos.order, batch = pos.batch, batches = pos.batches } or nil,
      results = objs.results or {}, extra = objs.extra,
      num_parameters = model:num_parameters(),
    }
    local path, parent, name = split_path(dir)
    local tmp, old = ("%s/.%s.partial"):format(parent, name), ("%s/.%s.old"):format(parent, name)
    rm_rf(tmp)
    local ok, err = pcall(function()
      bl.mkdir_p(tmp)
      if not link_model(objs.model_from, tmp .. "/model") then model:save(tmp .. "/model") end
      bl.fsync_path(tmp .. "/model")
      opt:save_moments(tmp .. "/optimizer.safetensors", { format = FORMAT })
      bl.write_file_durable(tmp .. "/state.json", bl.json_encode(st) .. "\n")
      bl.fsync_path(tmp)
    end)
    if not ok then
      rm_rf(tmp)
      error(("save_state: cannot write the state '%s': %s (the previous state, if any, is untouched)")
        :format(path, tostring(err):gsub("^[^:]*:%d+: ", "")), 2)
    end
    -- replace: the old state steps aside until the new one is in place (bl.find_state takes it back
    -- if a kill lands between the two renames)
    local had_old = exists(path .. "/state.json")
    if had_old then
      rm_rf(old)
      local okr, e = os.rename(path, old)
      if not okr then rm_rf(tmp); error(("save_state: cannot move the previous state aside: %s"):format(e), 2) end
    elseif bl.is_dir(path) then
      rm_rf(path)
    end
    local okr, e = os.rename(tmp, path)
    if not okr then
      if had_old then os.rename(old, path) end
      rm_rf(tmp)
      error(("save_state: cannot move the state into '%s': %s"):format(path, e), 2)
    end
    bl.fsync_path(parent)
    if had_old then rm_rf(old) end
    return path
  end

  -- Is `dir` a complete state folder? true, or nil and what is missing or wrong.
  local function complete(dir)
    for _, f in ipairs(FILES) do
      if not exists(dir .. "/" .. f) then return nil, ("%s/%s is missing"):format(dir, f) end
    end
    return true
  end

  -- bl.find_state(dir) → the state folder to resume from: dir itself when it is a state, else
  -- dir/state, else dir/.state.old (a kill between a save's two renames); nil and why otherwise.
  -- A partial folder (dir/.state.partial) is never taken; notes (a list) say what was ignored.
  function bl.find_state(dir)
    local notes = {}
    if exists(dir .. "/state.json") then return dir, notes end
    local _, parent, name = split_path(dir)
    for _, p in ipairs({ dir .. "/state", dir .. "/.state.old", ("%s/.%s.old"):format(parent, name) }) do
      if exists(p .. "/state.json") then
        local ok, why = complete(p)
        if ok then
          if p:match("%.old$") then notes[#notes + 1] = ("using %s (the previous state: the newer one was not yet in place)"):format(p) end
          return p, notes
        end
        notes[#notes + 1] = why
      end
    end
    if exists(dir .. "/.state.partial") or bl.is_dir(dir .. "/.state.partial") then
      notes[#notes + 1] = ("%s/.state.partial is an unfinished save and is ignored"):format(dir)
    end
    return nil, ("no training state in '%s' (looked for state.json, state/, .state.old/)%s"):format(dir,
      #notes > 0 and ("; " .. table.concat(notes, "; ")) or ""), notes
  end

  -- bl.load_state(dir, {model=, optimizer=, scheduler=, loader=}) → epoch, step, results, state:
  -- restores into the given objects (made as for the original run) what bl.save_state wrote: the
  -- weights (strictly: the state's model must have this model's shape), the optimizer's moments,
  -- step and lr, the schedule's step, the random streams. state.loader ({order=, batch=} or nil)
  -- is for loader:iter{order=, start=}; state.extra is the caller's table. Errors name the file.
  function bl.load_state(dir, objs)
    if type(dir) ~= "string" or dir == "" then error("load_state: argument #1 must be a folder path", 2) end
    check_objects("load_state", objs)
    local ok, why = complete(dir)
    if not ok then error("load_state: " .. why, 2) end
    local okj, st = pcall(bl.read_json, dir .. "/state.json")
    if not okj then error("load_state: " .. tostring(st):gsub("^[^:]*:%d+: ", ""):gsub("^read_json: ", ""), 2) end
    local sj = dir .. "/state.json"
    if type(st) ~= "table" or st.format ~= FORMAT then
      error(("load_state: %s: not a bertlab training state (format %s, expected %s)"):format(sj,
        tostring(type(st) == "table" and st.format), FORMAT), 2)
    end
    for _, k in ipairs({ "epoch", "step" }) do
      if math.type(st[k]) ~= "integer" or st[k] < 0 then
        error(("load_state: %s: '%s' must be a non-negative integer, got %s"):format(sj, k, tostring(st[k])), 2)
      end
    end
    if type(st.optimizer) ~= "table" or type(st.rng) ~= "table" or type(st.results) ~= "table" then
      error(("load_state: %s: 'optimizer', 'rng' and 'results' must be objects"):format(sj), 2)
    end
    local model, opt, sched = objs.model, objs.optimizer, objs.scheduler
    if st.num_parameters ~= model:num_parameters() then
      error(("load_state: %s: the state's model has %s parameters, this model %d (a different model or num_labels)")
        :format(sj, tostring(st.num_parameters), model:num_parameters()), 2)
    end
    local okm, em = pcall(model.load, model, dir .. "/model", { strict = true })
    if not okm then error("load_state: " .. tostring(em):gsub("^[^:]*:%d+: ", ""), 2) end
    local oko, tensors = pcall(bl.load_safetensors, dir .. "/optimizer.safetensors")
    if not oko then error("load_state: " .. tostring(tensors):gsub("^[^:]*:%d+: ", ""), 2) end
    local okl, el = pcall(opt.load_state_dict, opt, { step = st.optimizer.step, lr = st.optimizer.lr,
      exp_avg = tensors.exp_avg, exp_avg_sq = tensors.exp_avg_sq })
    if not okl then error(("load_state: %s/optimizer.safetensors: %s"):format(dir, tostring(el):gsub("^[^:]*:%d+: ", "")), 2) end
    for _, t in pairs(tensors) do t:free() end
    for _, k in ipairs({ "eps", "weight_decay" }) do
      if st.optimizer[k] ~= nil and st.optimizer[k] ~= opt[k] then
        error(("load_state: %s: the optimizer's %s was %s, this one has %s"):format(sj, k, tostring(st.optimizer[k]), tostring(opt[k])), 2)
      end
    end
    if sched then
      if type(st.scheduler) ~= "table" or math.type(st.scheduler.last_epoch) ~= "integer" then
        error(("load_state: %s: no scheduler step saved"):format(sj), 2)
      end
      sched.last_epoch = st.scheduler.last_epoch
      sched.last_lr = opt:get_lr()
    end
    local okr, er = pcall(bl.set_rng_state, st.rng)
    if not okr then error(("load_state: %s: %s"):format(sj, tostring(er):gsub("^[^:]*:%d+: ", "")), 2) end
    if st.loader ~= nil then
      if type(st.loader) ~= "table" or type(st.loader.order) ~= "table" or math.type(st.loader.batch) ~= "integer" then
        error(("load_state: %s: 'loader' must hold an order and a batch number"):format(sj), 2)
      end
      if objs.loader and #st.loader.order ~= #objs.loader:dataset() then
        error(("load_state: %s: the saved epoch order has %d rows, the loader's dataset %d"):format(sj,
          #st.loader.order, #objs.loader:dataset()), 2)
      end
    end
    return st.epoch, st.step, st.results, st
  end
end
