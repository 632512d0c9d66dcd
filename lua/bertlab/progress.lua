-- bertlab.progress: progress bars for training loops. On a terminal a tqdm-like line redrawn in
-- place (at most ~10 times a second); elsewhere (a log file, a pipe) one summary line at close, so
-- logs stay readable. Time comes from bl.now() (a monotonic wall clock).
return function(bl)
  local Bar = {}
  Bar.__index = Bar
  Bar.__name = "bertlab.Progress"

  local BLOCKS = { "▏", "▎", "▍", "▌", "▋", "▊", "▉" }

  -- "mm:ss" or "h:mm:ss", as tqdm.
  local function fmt_time(s)
    if s == nil or s ~= s or s == math.huge then return "?" end
    s = math.floor(s + 0.5)
    local h, m = s // 3600, (s % 3600) // 60
    if h > 0 then return ("%d:%02d:%02d"):format(h, m, s % 60) end
    return ("%02d:%02d"):format(m, s % 60)
  end
  bl.format_time = fmt_time

  local function fmt_rate(n, elapsed)
    if elapsed <= 0 or n == 0 then return "?it/s" end
    local r = n / elapsed
    if r >= 1 then return ("%.2fit/s"):format(r) end
    return ("%.2fs/it"):format(1 / r)
  end

  local function fmt_postfix(post)
    local keys = {}
    for k in pairs(post) do keys[#keys + 1] = tostring(k) end
    table.sort(keys)
    local parts = {}
    for _, k in ipairs(keys) do
      local v = post[k]
      if math.type(v) == "float" then v = ("%.3f"):format(v) else v = tostring(v) end
      parts[#parts + 1] = k .. "=" .. v
    end
    return table.concat(parts, ", ")
  end

  -- bl.progress(total, {desc=, out=io.stderr, tty=auto, width=20, min_interval=0.1, clock=bl.now})
  function bl.progress(total, opts)
    if total ~= nil and (math.type(total) ~= "integer" or total < 0) then
      error("progress: total must be a non-negative integer or nil, got " .. tostring(total), 2)
    end
    opts = opts or {}
    if type(opts) ~= "table" then error("progress: argument #2 must be an options table, got " .. type(opts), 2) end
    local out = opts.out or io.stderr
    if io.type(out) ~= "file" then error("progress: option 'out' must be an open file, got " .. tostring(out), 2) end
    local tty = opts.tty
    if tty == nil then tty = bl.isatty(out) end
    local clock = opts.clock or bl.now
    local self = setmetatable({
      total = total, n = 0, desc = opts.desc, out = out, tty = tty, width = opts.width or 20,
      min_interval = opts.min_interval or 0.1, clock = clock, postfix = {}, sums = {}, counts = {},
      start = clock(), last_draw = -math.huge, draws = 0, closed = false,
    }, Bar)
    if tty then self:_draw(true) end
    return self
  end

  -- The bar's text line (without the carriage return).
  function Bar:line(final)
    local elapsed = self.clock() - self.start
    local parts = {}
    local prefix = self.desc and (self.desc .. ": ") or ""
    local post = fmt_postfix(self.postfix)
    if self.total and self.total > 0 then
      local frac = math.min(1, self.n / self.total)
      local cells = frac * self.width
      local full = math.floor(cells)
      local bar = ("█"):rep(full)
      if full < self.width then
        local part = math.floor((cells - full) * 8)
        bar = bar .. (part > 0 and BLOCKS[part] or " ") .. (" "):rep(self.width - full - 1)
      end
      local eta = self.n > 0 and elapsed * (self.total - self.n) / self.n or nil
      parts[#parts + 1] = ("%s%3.0f%%|%s| %d/%d [%s<%s, %s"):format(prefix, frac * 100, bar, self.n,
        self.total, fmt_time(elapsed), fmt_time(eta), fmt_rate(self.n, elapsed))
    else
      parts[#parts + 1] = ("%s%d [%s, %s"):format(prefix, self.n, fmt_time(elapsed), fmt_rate(self.n, elapsed))
    end
    if post ~= "" then parts[#parts + 1] = ", " .. post end
    parts[#parts + 1] = "]"
    return table.concat(parts)
  end

  function Bar:_draw(force)
    local now = self.clock()
    if not force and now - self.last_draw < self.min_interval then return end
    self.last_draw = now
    self.draws = self.draws + 1
    self.out:write("\r", self:line(), "\27[K")
    self.out:flush()
  end

  -- bar:update(n=1, postfix): advances by n; numbers in postfix are shown (%.3f) and averaged.
  function Bar:update(n, postfix)
    if self.closed then error("progress: update after close", 2) end
    if type(n) == "table" and postfix == nil then n, postfix = 1, n end
    n = n or 1
    if type(n) ~= "number" then error("progress: update(n): n must be a number, got " .. type(n), 2) end
    self.n = self.n + n
    if postfix then
      for k, v in pairs(postfix) do
        self.postfix[k] = v
        if type(v) == "number" then
          self.sums[k] = (self.sums[k] or 0) + v
          self.counts[k] = (self.counts[k] or 0) + 1
        end
      end
    end
    if self.tty then self:_draw(self.total ~= nil and self.n >= self.total) end
  end

  -- bar:set_postfix(t): replaces the shown values without advancing.
  function Bar:set_postfix(t)
    self.postfix = {}
    for k, v in pairs(t or {}) do self.postfix[k] = v end
    if self.tty then self:_draw(false) end
  end

  -- bar:mean(key): the mean of every number given for key in update(), nil if none.
  function Bar:mean(key)
    if not self.counts[key] then return nil end
    return self.sums[key] / self.counts[key]
  end

  function Bar:elapsed() return self.clock() - self.start end

  -- bar:write(msg): prints a line without breaking the bar.
  function Bar:write(msg)
    if self.tty and not self.closed then
      self.out:write("\r\27[K", msg, "\n")
      self:_draw(true)
    else
      self.out:write(msg, "\n")
    end
    self.out:flush()
  end

  -- bar:summary(): "Epoch 1: 765/765 in 02:13 (5.73it/s), mean loss=0.512" (the non-terminal line).
  function Bar:summary()
    local elapsed = self.clock() - self.start
    local means = {}
    for k in pairs(self.counts) do means[k] = self:mean(k) end
    local post = fmt_postfix(means)
    return ("%s%d%s in %s (%s)%s"):format(self.desc and (self.desc .. ": ") or "", self.n,
      self.total and ("/" .. self.total) or "", fmt_time(elapsed), fmt_rate(self.n, elapsed),
      post ~= "" and (", mean " .. post) or "")
  end

  -- bar:close(): on a terminal the final redraw and a newline; otherwise one summary line with
  -- the means of the numeric postfix values.
  function Bar:close()
    if self.closed then return end
    if self.tty then
      self:_draw(true)
      self.out:write("\n")
    else
      self.out:write(self:summary(), "\n")
    end
    self.out:flush()
    self.closed = true
  end
  Bar.__close = Bar.close
end
