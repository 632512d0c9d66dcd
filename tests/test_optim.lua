-- test_optim.lua: AdamW (both variants), the linear warm-up schedule and gradient clipping against
-- fixtures from torch / transformers (tests/fixtures/gen_optim.py), plus argument errors.
local T = require("testlib")
local bl = require("bertlab")
local F = dofile("tests/fixtures/optim/cases.lua")

local function flat_params(ps)
  local out = {}
  for _, p in ipairs(ps) do for _, x in ipairs(p:totable()) do out[#out + 1] = x end end
  return out
end

local function maxdiff(a, b)
  local d = 0
  for i = 1, #b do d = math.max(d, math.abs(a[i] - b[i])) end
  return d
end

local names = {}
for k, v in pairs(F) do if k ~= "schedules" then names[#names + 1] = k end end
table.sort(names)

for _, name in ipairs(names) do
  local c = F[name]
  local ps = {}
  for i, init in ipairs(c.init) do
    ps[i] = bl.parameter(bl.tensor(init, "float32"))
  end
  local opts = {}
  for k, v in pairs(c.opts) do opts[k] = v end
  opts.variant = c.variant
  local opt = bl.AdamW(ps, opts)
  local sched = c.total and bl.get_linear_schedule_with_warmup(opt, c.warmup, c.total)
  local worst_p, worst_lr, worst_n = 0, 0, 0
  for s = 1, #c.grads do
    for i, g in ipairs(c.grads[s]) do bl.parameter(ps[i], bl.tensor(g, "float32")) end
    if c.max_norm then
      local n = bl.clip_grad_norm(ps, c.max_norm)
      worst_n = math.max(worst_n, math.abs(n - c.norms[s]) / c.norms[s])
    end
    opt:step()
    if sched then sched:step() end
    worst_lr = math.max(worst_lr, math.abs(opt.lr - c.lrs[s]))
    worst_p = math.max(worst_p, maxdiff(flat_params(ps), c.after[s]))
  end
  print(("# %s: max |param diff| over %d steps %.3g"):format(name, #c.grads, worst_p))
  T.check(worst_p <= 1e-6, name .. ": parameters match after every step (1e-6)", ("max diff %.3g"):format(worst_p))
  T.check(worst_lr <= 1e-15, name .. ": learning rate of every step", ("max diff %.3g"):format(worst_lr))
  if c.max_norm then
    T.check(worst_n <= 1e-6, name .. ": clip_grad_norm returns torch's norm (rel 1e-6)", ("max rel diff %.3g"):format(worst_n))
  end
  T.eq(opt.num_steps, #c.grads, name .. ": step count")
end

-- schedule alone, including warmup = total and steps past the end
for _, s in ipairs(F.schedules) do
  local p = bl.parameter(bl.zeros(1))
  local opt = bl.AdamW({ p }, { lr = s.base })
  local sch = bl.get_linear_schedule_with_warmup(opt, s.warmup, s.total)
  local got = { opt.lr }
  for _ = 1, s.total + 3 do sch:step(); got[#got + 1] = sch:get_last_lr() end
  T.check(maxdiff(got, s.lrs) <= 1e-18, ("linear schedule warmup=%d total=%d: lr sequence"):format(s.warmup, s.total),
    ("max diff %.3g"):format(maxdiff(got, s.lrs)))
end

-- defaults: transformers' AdamW (lr 1e-3, eps 1e-6, wd 0, correct_bias) and torch's (eps 1e-8, wd 0.01)
do
  local p = bl.parameter(bl.zeros(3))
  local o = bl.AdamW({ p })
  T.eq(o.lr, 1e-3, "default lr 1e-3")
  T.eq(o.eps, 1e-6, "default eps 1e-6 (transformers)")
  T.eq(o.weight_decay, 0.0, "default weight_decay 0")
  T.eq(o.correct_bias, true, "default correct_bias")
  T.same(o.betas, { 0.9, 0.999 }, "default betas")
  T.eq(o.variant, "transformers", "default variant")
  local q = bl.parameter(bl.zeros(3))
  local o2 = bl.AdamW({ q }, { variant = "torch" })
  T.eq(o2.weight_decay, 0.01, "torch variant: default weight_decay 0.01")
  T.eq(o2.eps, 1e-8, "torch variant: default eps 1e-8")
  o.lr = 0.5
  T.eq(o:get_lr(), 0.5, "opt.lr = x sets the lr")
  o:set_lr(0.25)
  T.eq(o.lr, 0.25, "opt:set_lr(x)")
  T.check(tostring(o):find("AdamW%(variant=transformers") ~= nil, "tostring(opt)")
end

-- zero_grad zeroes every gradient; a zero gradient leaves params unchanged without weight decay
do
  local a = bl.parameter(bl.tensor({ 1.0, 2.0, 3.0 }), bl.tensor({ 0.5, -0.5, 1.0 }))
  local b = bl.parameter(bl.tensor({ 4.0 }), bl.tensor({ 2.0 }))
  local o = bl.AdamW({ a, b }, { lr = 0.1 })
  o:zero_grad()
  T.same(a.grad:totable(), { 0.0, 0.0, 0.0 }, "zero_grad zeroes param 1")
  T.same(b.grad:totable(), { 0.0 }, "zero_grad zeroes param 2")
  o:step()
  T.same(a:totable(), { 1.0, 2.0, 3.0 }, "zero gradient: no change")
  local sd = o:state_dict()
  T.eq(sd.step, 1, "state_dict step")
  T.eq(sd.exp_avg:numel(), 4, "state_dict: one state of all 4 elements")
end

-- parameters adjacent in memory are updated by one kernel call: same result as separate tensors
do
  local w = bl.parameter(bl.tensor({ 1.0, -2.0 }), bl.tensor({ 0.3, 0.1 }))
  local opt = bl.AdamW({ w }, { lr = 0.01, weight_decay = 0.1 })
  for _ = 1, 3 do opt:step() end
  -- transformers update by hand in double precision
  local p, m, v = { 1.0, -2.0 }, { 0, 0 }, { 0, 0 }
  local g = { 0.3, 0.1 }
  for t = 1, 3 do
    for i = 1, 2 do
      m[i] = 0.9 * m[i] + 0.1 * g[i]
      v[i] = 0.999 * v[i] + 0.001 * g[i] * g[i]
      local ss = 0.01 * math.sqrt(1 - 0.999 ^ t) / (1 - 0.9 ^ t)
      p[i] = p[i] - ss * m[i] / (math.sqrt(v[i]) + 1e-6)
      p[i] = p[i] - 0.01 * 0.1 * p[i]
    end
  end
  T.check(maxdiff(w:totable(), p) < 1e-6, "3 steps match a double-precision hand computation",
    ("max diff %.3g"):format(maxdiff(w:totable(), p)))
end

-- clipping: no change below max_norm, norm returned
do
  local a = bl.parameter(bl.tensor({ 3.0, 4.0 }), bl.tensor({ 0.3, 0.4 }))
  T.near(bl.clip_grad_norm({ a }, 1.0), 0.5, 1e-7, "clip_grad_norm returns the norm")
  T.same(a.grad:totable(), bl.tensor({ 0.3, 0.4 }):totable(), "below max_norm: gradients unchanged")
  T.near(bl.clip_grad_norm({ a }, 0.25), 0.5, 1e-7, "norm before clipping")
  T.near(bl.clip_grad_norm({ a }, 10), 0.25, 1e-6, "after clipping the norm is max_norm")
  local nograd = bl.zeros(2)
  T.near(bl.clip_grad_norm({ a, nograd }, 10), 0.25, 1e-6, "parameters without .grad are skipped")
end

-- errors name the argument or the parameter
do
  local p = bl.parameter(bl.zeros(2))
  T.checkerror("Invalid learning rate", "lr < 0", bl.AdamW, { p }, { lr = -1 })
  T.checkerror("beta parameter at index 0", "beta1 >= 1", bl.AdamW, { p }, { betas = { 1.0, 0.999 } })
  T.checkerror("'betas' must be a table of two", "betas not a pair", bl.AdamW, { p }, { betas = 0.9 })
  T.checkerror("Invalid epsilon", "eps < 0", bl.AdamW, { p }, { eps = -1 })
  T.checkerror("Invalid weight_decay", "wd < 0", bl.AdamW, { p }, { weight_decay = -0.1 })
  T.checkerror("'variant' must be", "unknown variant", bl.AdamW, { p }, { variant = "sgd" })
  T.checkerror("option 'lr' must be a number", "lr not a number", bl.AdamW, { p }, { lr = "big" })
  T.checkerror("parameter list is empty", "empty list", bl.AdamW, {})
  T.checkerror("parameter 2 is a string", "non-tensor parameter", bl.AdamW, { p, "x" })
  T.checkerror("parameter 1 is int64, expected float32", "int64 parameter", bl.AdamW, { bl.tensor({ 1, 2 }) })
  T.checkerror("parameters 1 and 2 are the same tensor", "duplicate parameter", bl.AdamW, { p, p })
  local q = bl.zeros(3)
  local o = bl.AdamW({ q })
  T.checkerror("AdamW:step: parameter 1 has no gradient", "step without .grad", o.step, o)
  local r = bl.parameter(bl.zeros(3))
  local o2 = bl.AdamW({ r })
  bl.parameter(r) -- fine: replaces with zeros
  T.checkerror("gradient is float32 %[2%], expected float32 %[3%]", "bl.parameter: wrong grad shape",
    bl.parameter, r, bl.zeros(2))
  T.checkerror("only 'lr' can", "setting a read-only field", function() o2.eps = 1 end)
  T.checkerror("learning rate must be finite and >= 0", "set_lr negative", o2.set_lr, o2, -1)
  T.checkerror("max_norm must be >= 0", "clip: negative max_norm", bl.clip_grad_norm, { r }, -1)
  T.checkerror("num_warmup_steps must be an integer", "schedule: fractional warmup",
    bl.get_linear_schedule_with_warmup, o2, 1.5, 10)
  T.checkerror("must be an optimizer", "schedule: not an optimizer", bl.get_linear_schedule_with_warmup, {}, 0, 10)
end

-- bl.softmax
do
  local s = bl.softmax(bl.tensor({ { 1.0, 2.0, 3.0 }, { 0.0, 0.0, 0.0 } }), -1):totable()
  local e = { math.exp(1), math.exp(2), math.exp(3) }
  local z = e[1] + e[2] + e[3]
  T.near(s[1][3], e[3] / z, 1e-7, "softmax row 1")
  T.near(s[2][1], 1 / 3, 1e-7, "softmax of equal logits")
  T.checkerror("only the last dimension", "softmax dim 1 rejected", bl.softmax, bl.zeros(2, 2), 1)
end

T.done()
