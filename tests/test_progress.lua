-- test_progress.lua: the progress bar in both modes (terminal: redrawn in place and throttled;
-- not a terminal: one summary line at close), with a fake clock so times and rates are exact.
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

-- not a terminal: nothing until close, then one line
do
  local clk = fake_clock()
  local bar
  local text = capture(function(f)
    bar = bl.progress(10, { desc = "Epoch 1", out = f, tty = false, clock = clk.fn })
    for i = 1, 10 do
      clk.t = clk.t + 0.5
      bar:update(1, { loss = i * 0.1 })
    end
    bar:close()
    bar:close() -- twice is harmless
  end)
  T.eq(text, "Epoch 1: 10/10 in 00:05 (2.00it/s), mean loss=0.550\n", "file mode: one summary line")
  T.near(bar:mean("loss"), 0.55, 1e-12, "running mean of the loss")
end

-- terminal mode: redrawn with \r, throttled to min_interval, final line at close
do
  local clk = fake_clock()
  local bar
  local text = capture(function(f)
    bar = bl.progress(100, { desc = "Epoch 2", out = f, tty = true, clock = clk.fn })
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
