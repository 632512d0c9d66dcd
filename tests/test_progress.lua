-- test_progress.lua: the progress bar in both modes (terminal: redrawn in place, throttled, fitted
-- to the terminal's width and following a resize; not a terminal: a line every N% and a summary at
-- close) and the run's line (epochs done, ETA), with a fake clock so times and rates are exact.
local T = require("testlib")
local bl = require("bertlab")

local function capture(fn)
  local path = os.tmpname()
  local f = assert(io.open(path, "w"))
  fn(f)
  f:close()
  local text = io.open(path):read("a")
  os.remove(path)
  return text
end

local function fake_clock()
  local c = { t = 100.0 }
  c.fn = function() return c.t end
  return c
end

-- not a terminal: a line at every 50% (not at 100%: the summary follows), then the summary line
do
  local clk = fake_clock()
  local bar
  local text = capture(function(f)
    bar = bl.progress(10, { desc = "Epoch 1", out = f, tty = false, clock = clk.fn, every = 50, columns = 60, log_interval = 0 })
    for i = 1, 10 do
      clk.t = clk.t + 0.5
      bar:update(1, { loss = i * 0.1 })
    end
    bar:close()
    bar:close() -- twice is harmless
  end)
  local lines = {}
  for l in text:gmatch("([^\n]*)\n") do lines[#lines + 1] = l end
  T.eq(#lines, 2, "file mode, every=50: one progress line and the summary")
  T.check((lines[1] or ""):find("^Epoch 1:  50%%|█[^|]+| 5/10 %[00:03<00:03, 2%.00it/s, loss=0%.500%]$") ~= nil,
    "file mode: the 50% line", lines[1])
  T.check(utf8.len(lines[1] or "") == 59, "file mode: the line fills --columns minus one", tostring(utf8.len(lines[1] or "")))
  T.eq(lines[2], "Epoch 1: 10/10 in 00:05 (2.00it/s), mean loss=0.550", "file mode: the summary line")
  T.near(bar:mean("loss"), 0.55, 1e-12, "running mean of the loss")
  -- the default: every 10%
  local text10 = capture(function(f)
    local b = bl.progress(100, { out = f, tty = false, clock = clk.fn })
    for _ = 1, 100 do clk.t = clk.t + 1; b:update(1) end
    b:close()
  end)
  T.eq(select(2, text10:gsub("\n", "")), 10, "file mode default: 9 lines at 10%..90% and the summary")
  local quick = capture(function(f)
    local b = bl.progress(100, { out = f, tty = false, clock = clk.fn })
    for _ = 1, 100 do clk.t = clk.t + 0.01; b:update(1) end
    b:close()
  end)
  T.eq(select(2, quick:gsub("\n", "")), 1, "file mode: a loop shorter than log_interval (5 s) prints only the summary")
  T.checkerror("option 'every' must be a percentage", "progress: bad every", bl.progress, 3, { every = 0 })
end

-- terminal width: the bar takes what the text leaves; a resize is followed at the next redraw;
-- a terminal too narrow for the text gets the line cut, never wrapped
do
  local clk = fake_clock()
  local cols = 100
  local text = capture(function(f)
    local bar = bl.progress(50, { desc = "Epoch 1/5", out = f, tty = true, clock = clk.fn, columns = function() return cols end })
    for i = 1, 50 do
      clk.t = clk.t + 0.2
      if i == 20 then cols = 50 end
      if i == 40 then cols = 24 end
      bar:update(1, { loss = 0.5 })
    end
    bar:close()
  end)
  local widths = {}
  for l in text:gmatch("\r([^\r]-)\27%[K") do widths[#widths + 1] = utf8.len(l) end
  T.eq(widths[2], 99, "100 columns: lines of 99 cells")
  local at50, at24 = widths[#widths - 12], widths[#widths]
  T.eq(at50, 49, "after a resize to 50 columns: lines of 49 cells")
  T.eq(at24, 23, "24 columns: the line is cut to 23 cells")
  local wide = bl.progress(10, { out = io.stdout, tty = false, columns = 200, clock = clk.fn })
  T.check(utf8.len(wide:line()) <= 199 and wide:line():find("|" .. (" "):rep(60) .. "|", 1, true) ~= nil,
    "a wide terminal: the bar stops at 60 cells", wide:line())
end

-- the run's line: epochs done, elapsed and the ETA of the epochs left
do
  local clk = fake_clock()
  local text = capture(function(f)
    local r = bl.run_progress(5, { out = f, clock = clk.fn })
    clk.t = clk.t + 60
    r:epoch_done()
    clk.t = clk.t + 60
    r:epoch_done()
  end)
  T.eq(text, "Run: 1/5 epochs done in 01:00, ETA 04:00\nRun: 2/5 epochs done in 02:00, ETA 03:00\n", "run_progress lines")
  T.checkerror("epochs must be a positive integer", "run_progress: bad epochs", bl.run_progress, 0)
end

-- terminal mode: redrawn with \r, throttled to min_interval, final line at close
do
  local clk = fake_clock()
  local bar
  local text = capture(function(f)
    bar = bl.progress(100, { desc = "Epoch 2", out = f, tty = true, clock = clk.fn, width = 20 })
    for _ = 1, 100 do
      clk.t = clk.t + 0.01 -- 100 updates a second
      bar:update(1, { loss = 0.25 })
    end
    bar:close()
  end)
  local _, nr = text:gsub("\r", "")
  T.check(nr >= 10 and nr <= 14, "throttled: about 10 redraws for 1 s of updates", ("%d redraws"):format(nr))
  T.check(text:sub(-1) == "\n", "terminal mode ends with a newline")
  local last = text:match("\r([^\r]*)\27%[K\n$")
  T.eq(last, "Epoch 2: 100%|████████████████████| 100/100 [00:01<00:00, 100.00it/s, loss=0.250]",
    "final bar line")
  T.check(text:find("\27%[K") ~= nil, "clears the rest of the line")
end

-- a half-done bar: percentage, partial block, ETA
do
  local clk = fake_clock()
  local bar = bl.progress(8, { desc = "E", out = io.stdout, tty = false, clock = clk.fn, width = 10 })
  clk.t = clk.t + 6
  bar:update(3)
  T.eq(bar:line(), "E:  38%|███▊      | 3/8 [00:06<00:10, 2.00s/it]", "partial bar, ETA, s/it when slow (percentage rounded as tqdm)")
  bar:update(1, { acc = "n/a" })
  T.check(bar:line():find("acc=n/a", 1, true) ~= nil, "string postfix shown as is")
  local nb = bl.progress(nil, { out = io.stdout, tty = false, clock = clk.fn })
  nb:update(5)
  T.check(nb:line():find("^5 %[") ~= nil, "unknown total: a counter", nb:line())
end

T.eq(bl.format_time(3725), "1:02:05", "format_time with hours")
T.eq(bl.format_time(65), "01:05", "format_time minutes")
T.eq(bl.isatty(io.stdout), false, "stdout is not a terminal under the test runner")
T.eq(type(bl.now()), "number", "bl.now returns seconds")
local t0 = bl.now()
T.check(bl.now() >= t0, "bl.now is monotonic")

T.checkerror("total must be a non%-negative integer", "bad total", bl.progress, -1)
T.checkerror("option 'out' must be an open file", "bad out", bl.progress, 3, { out = "x" })
T.checkerror("file handle or descriptor", "isatty: bad argument", bl.isatty, "x")
do
  local bar = bl.progress(1, { out = io.stdout, tty = false })
  bar:close()
  T.checkerror("update after close", "update after close", bar.update, bar, 1)
end

T.done()
