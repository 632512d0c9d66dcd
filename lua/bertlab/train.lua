-- bertlab.train: learning-rate schedules (torch LambdaLR semantics), bl.softmax, and
-- bl.run_experiment: the tutorial's fine-tuning loop as a reusable function (used by
-- experiments/conference.lua and experiments/ablation.lua).
return function(bl)
  ---------------------------------------------------------------------------------------------------
  -- Schedules
  ---------------------------------------------------------------------------------------------------
  local Sched = {}
  Sched.__index = Sched
  Sched.__name = "bertlab.LambdaLR"

  -- bl.LambdaLR(opt, lr_lambda): lr = base_lr * lr_lambda(step); at creation step 0 is applied.
  function bl.LambdaLR(opt, lr_lambda)
    if type(opt) ~= "userdata" or type(opt.get_lr) ~= "function" then
      error("LambdaLR: argument #1 must be an optimizer (bl.AdamW), got " .. type(opt), 2)
    end
    if type(lr_lambda) ~= "function" then
      error("LambdaLR: argument #2 must be a function of the step, got " .. type(lr_lambda), 2)
    end
    local s = setmetatable({ optimizer = opt, lr_lambda = lr_lambda, base_lr = opt:get_lr(), last_epoch = 0 }, Sched)
    s:_apply()
    return s
  end

  function Sched:_apply()
    local lr = self.base_lr * self.lr_lambda(self.last_epoch)
    self.optimizer:set_lr(lr)
    self.last_lr = lr
  end

  -- sched:step(): advances one step and sets the optimizer's lr.
  function Sched:step()
    self.last_epoch = self.last_epoch + 1
    self:_apply()
  end

  -- sched:get_last_lr(): the lr last set (a number; torch returns a one-element list per group).
  function Sched:get_last_lr() return self.last_lr end

  local function check_count(v, what, fn)
    if math.type(v) ~= "integer" then
      if type(v) == "number" and v == math.floor(v) then return math.tointeger(v) end
      error(("%s: %s must be an integer, got %s"):format(fn, what, tostring(v)), 3)
    end
    if v < 0 then error(("%s: %s must be >= 0, got %d"):format(fn, what, v), 3) end
    return v
  end

  -- bl.get_linear_schedule_with_warmup(opt, warmup_steps, total_steps), as transformers.
  function bl.get_linear_schedule_with_warmup(opt, warmup, total)
    local fn = "get_linear_schedule_with_warmup"
    warmup = check_count(warmup, "num_warmup_steps", fn)
    total = check_count(total, "num_training_steps", fn)
    return bl.LambdaLR(opt, function(s)
      if s < warmup then return s / math.max(1, warmup) end
      return math.max(0.0, (total - s) / math.max(1, total - warmup))
    end)
  end

  -- bl.get_constant_schedule(opt): lr stays at its initial value (for ablations without decay).
  function bl.get_constant_schedule(opt)
    return bl.LambdaLR(opt, function() return 1.0 end)
  end

  ---------------------------------------------------------------------------------------------------
  -- Softmax (over the last dimension of a float tensor; small inputs: prediction scripts)
  ---------------------------------------------------------------------------------------------------
  local function softmax_row(row)
    local mx = -math.huge
    for i = 1, #row do if row[i] > mx then mx = row[i] end end
    local out, sum = {}, 0.0
    for i = 1, #row do out[i] = math.exp(row[i] - mx); sum = sum + out[i] end
    for i = 1, #row do out[i] = out[i] / sum end
    return out
  end

  -- bl.softmax(t[, dim]): softmax over the last dimension (dim may be -1 or t:dim()); a new tensor.
  function bl.softmax(t, dim)
    if not bl.is_tensor(t) then error("softmax: argument #1 must be a tensor, got " .. type(t), 2) end
    local nd = t:dim()
    if nd < 1 or nd > 2 then error(("softmax: expected a 1-D or 2-D tensor, got %d dimensions"):format(nd), 2) end
    dim = dim or -1
    if dim ~= -1 and dim ~= nd then
      error(("softmax: only the last dimension is supported (dim=-1 or %d), got %s"):format(nd, tostring(dim)), 2)
    end
    if t:dtype() ~= "float32" then t = t:to("float32") end
    local v = t:totable()
    if nd == 1 then return bl.tensor(softmax_row(v), "float32") end
    local rows = {}
    for i = 1, #v do rows[i] = softmax_row(v[i]) end
    return bl.tensor(rows, "float32")
  end
end
