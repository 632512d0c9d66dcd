-- bertlab.progress: progress bars for training loops. On a terminal a tqdm-like line redrawn in
-- place (at most ~10 times a second) that fits the terminal's width, asked at every redraw so it
-- follows a resize; elsewhere (a log file, a pipe) a line at every `every`% (default 10; at most
-- one per `log_interval` s) and a summary at close, so a log is never silent for a whole epoch. bl.run_progress adds the run's line
-- (epochs done, ETA). Time comes from bl.now() (a monotonic wall clock).
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

  -- The columns a line may use: opts.columns (a number or a function), else the terminal's width
  -- asked now, else $COLUMNS, else 80.
  local function columns(self)
    local c = self.columns
    if type(c) == "function" then c = c() end
    if c == nil and self.tty then c = bl.terminal_width(self.out) end
    if c == nil then c = math.tointeger(tonumber(os.getenv("COLUMNS") or "")) end
    if c == nil or c < 10 then c = c and 10 or 80 end
    return c
  end

  -- Display width of a UTF-8 string (every code point one cell; the bar's blocks are one cell).
  local function cells(s) return utf8.len(s) or #s end

  -- The first n cells of s.
  local function cut(s, n)
    if cells(s) <= n then return s end
    local stop = utf8.offset(s, n + 1)
    return stop and s:sub(1, stop - 1) or s
  end

  -- bl.progress(total, {desc=, out=io.stderr, tty=auto, width=auto, columns=auto, every=10,
  --   log_interval=5, min_interval=0.1, clock=bl.now}). Not a terminal: a line each time another
  -- `every`% is done, if `log_interval` seconds have passed since the last (a short loop stays quiet).
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
      total = total, n = 0, desc = opts.desc, out = out, tty = tty, width = opts.width, columns = opts.columns,
      every = opts.every or 10, log_interval = opts.log_interval or 5, min_interval = opts.min_interval or 0.1, clock = clock, postfix = {}, sums = {},
      counts = {}, start = clock(), last_draw = -math.huge, draws = 0, closed = false, logged = 0,
    }, Bar)
    if opts.every ~= nil and (type(opts.every) ~= "number" or opts.every <= 0 or opts.every > 100) then
      error("progress: option 'every' must be a percentage in (0, 100], got " .. tostring(opts.every), 2)
    end
    if tty then self:_draw(true) end
    return self
  end

  -- The bar's text line (without the carriage return), at most `columns` - 1 cells wide: the bar
  -- takes what the text leaves (a fixed `width` if one was given), and a line still too long for a
  -- narrow terminal is cut, so it never wraps.
  function Bar:line()
    local elapsed = self.clock() - self.start
    local prefix = self.desc and (self.desc .. ": ") or ""
    local post = fmt_postfix(self.postfix)
    post = post ~= "" and (", " .. post) or ""
    local cols = columns(self) - 1
    local text
    if self.total and self.total > 0 then
      local frac = math.min(1, self.n / self.total)
      local eta = self.n > 0 and elapsed * (self.total - self.n) / self.n or nil
      local left = ("%s%3.0f%%|"):format(prefix, frac * 100)
      local right = ("| %d/%d [%s<%s, %s%s]"):format(self.n, self.total, fmt_time(elapsed), fmt_time(eta),
        fmt_rate(self.n, elapsed), post)
      local width = self.width or math.max(1, math.min(60, cols - cells(left) - cells(right)))
      local bar = ""
      if width > 0 then
        local c = frac * width
        local full = math.floor(c)
        bar = ("█"):rep(full)
        if full < width then
          local part = math.floor((c - full) * 8)
          bar = bar .. (part > 0 and BLOCKS[part] or " ") .. (" "):rep(width - full - 1)
        end
      end
      text = left .. bar .. right
    else
      text = ("%s%d [%s, %s%s]"):format(prefix, self.n, fmt_time(elapsed), fmt_rate(self.n, elapsed), post)
    end
    if self.width == nil and (self.tty or self.columns) then text = cut(text, cols) end -- a log keeps whole lines
    return text
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
    if self.tty then
      self:_draw(self.total ~= nil and self.n >= self.total)
    elseif self.total and self.total > 0 and self.n < self.total then
      -- a log line each time another `every`% is done
      local step = math.floor(self.n / self.total * 100 / self.every)
      local now = self.clock()
      if step > self.logged and now - (self.last_log or self.start) >= self.log_interval then
        self.logged, self.last_log = step, now
        self.out:write(self:line(), "\n")
        self.out:flush()
      end
    end
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

  ---------------------------------------------------------------------------------------------------
  -- The run's line: epochs done and the ETA of the whole run
  ---------------------------------------------------------------------------------------------------
  local Run = {}
  Run.__index = Run
  Run.__name = "bertlab.RunProgress"

  -- bl.run_progress(epochs, {out=io.stderr, clock=bl.now}) → r: r:epoch_done(k) writes
  -- "Run: 2/5 epochs done in 03:40, ETA 05:30" (the mean epoch time so far times the epochs left).
  function bl.run_progress(epochs, opts)
    if math.type(epochs) ~= "integer" or epochs < 1 then
      error("run_progress: epochs must be a positive integer, got " .. tostring(epochs), 2)
    end
    opts = opts or {}
    local clock = opts.clock or bl.now
    return setmetatable({ epochs = epochs, done = 0, out = opts.out or io.stderr, clock = clock, start = clock() }, Run)
  end

  -- r:line(): the run's line for the epochs done so far.
  function Run:line()
    local elapsed = self.clock() - self.start
    local eta = self.done > 0 and elapsed / self.done * (self.epochs - self.done) or nil
    return ("Run: %d/%d epochs done in %s, ETA %s"):format(self.done, self.epochs, fmt_time(elapsed), fmt_time(eta))
  end

  -- r:epoch_done([k]): records epoch k (default: one more) as done and writes the run's line.
  function Run:epoch_done(k)
    self.done = k or (self.done + 1)
    self.out:write(self:line(), "\n")
    self.out:flush()
  end
end
