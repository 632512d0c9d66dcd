-- test_chart_ablation.lua: ablation.svg (bl.ablation_svg: a dot per cell at its mean, ± 1 std bars,
-- min/max ticks, grouped by the first axis, coloured by the second, the best ringed) and
-- confusion.svg (bl.confusion_svg: one matrix per checkpoint side by side); both rendered by headless
-- Chromium: the PNG must not be blank and must show the colours drawn (tests/lib/png_stats.py).
-- Without Chromium the render checks are skipped with why.
local T = require("testlib")
local bl = require("bertlab")

local cells = {}
local means = { [3] = { none = 0.83, balanced = 0.84 }, [16] = { none = 0.80, balanced = 0.81 } }
for _, bs in ipairs({ 3, 16 }) do
  for _, cw in ipairs({ "none", "balanced" }) do
    local m = means[bs][cw]
    cells[#cells + 1] = { values = { batch_size = bs, class_weights = cw }, mean = m, std = 0.006, min = m - 0.01, max = m + 0.009, n = 3 }
  end
end
local svg = bl.ablation_svg(cells, { axes = { "batch_size", "class_weights" }, title = "Ablation test", metric = "best-epoch weighted F1" })
T.eq(select(2, svg:gsub('<circle[^>]* r="7" fill="#', "")), 4, "ablation.svg: one dot per cell")
T.eq(select(2, svg:gsub('r="11" fill="none" stroke="#d62728"', "")), 1, "ablation.svg: one best cell ringed")
T.check(svg:find(">batch_size=3</text>", 1, true) and svg:find(">batch_size=16</text>", 1, true), "ablation.svg: grouped by the first axis")
T.check(svg:find(">class_weights</text>", 1, true) and svg:find(">balanced</text>", 1, true) and svg:find(">none</text>", 1, true),
  "ablation.svg: a legend of the second axis")
T.check(svg:find(">0.8400</text>", 1, true) ~= nil, "ablation.svg: each mean is written")
-- the best (0.84) is the highest dot: the smallest y among the dots
local best_y, ys = nil, {}
for cy in svg:gmatch('<circle cx="[%d%.]+" cy="([%d%.]+)" r="7" fill="#') do ys[#ys + 1] = tonumber(cy) end
for cy in svg:gmatch('<circle cx="[%d%.]+" cy="([%d%.]+)" r="11"') do best_y = tonumber(cy) end
T.check(best_y and best_y == math.min(table.unpack(ys)), "ablation.svg: the ring is on the highest mean")
local one = bl.ablation_svg({ { values = {}, mean = 0.5, std = 0, n = 1 } }, {})
T.check(one:find("<circle", 1, true) and not one:find("nan", 1, true), "ablation.svg of a single cell without spread")

local conf = bl.confusion_svg({ { title = "epoch_1", cm = { { 10, 2, 0 }, { 1, 20, 3 }, { 0, 4, 9 } } },
                                { title = "epoch_2", cm = { { 11, 1, 0 }, { 0, 22, 2 }, { 0, 2, 11 } } } }, { "VLDB", "ISCAS", "SIGGRAPH" })
T.eq(select(2, conf:gsub('<rect x="%d+" y="%d+" width="%d+" height="%d+" fill="rgb', "")), 18, "confusion.svg: 3x3 cells per checkpoint, two checkpoints")
T.check(conf:find(">epoch_1</text>", 1, true) and conf:find(">epoch_2</text>", 1, true) and conf:find(">22</text>", 1, true),
  "confusion.svg: the panels' titles and the counts")

local browser = T.find_browser()
if not browser then
  T.skip("ablation.svg and confusion.svg render", "no headless Chromium (apt-get install -y chromium)")
  T.done()
end
local dir = os.tmpname()
os.remove(dir)
bl.mkdir_p(dir)
local function render(name, text, w, h)
  bl.write_file(dir .. "/" .. name .. ".svg", text)
  os.execute(("cd %s && %s --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=%d,%d --screenshot=%s.png file://%s/%s.svg >/dev/null 2>&1")
    :format(bl.shell_quote(dir), bl.shell_quote(browser), w, h, name, dir, name))
  return dir .. "/" .. name .. ".png"
end
local function stats(png, colours)
  local p = io.popen(("python3 tests/lib/png_stats.py %s %s 2>&1"):format(bl.shell_quote(png), table.concat(colours, " ")))
  local s = p:read("a")
  p:close()
  local v = {}
  for n in s:gmatch("%d+") do v[#v + 1] = tonumber(n) end
  return v, s
end
local a, sa = stats(render("ablation", svg, 760, 460), { "1f77b4", "ff7f0e", "d62728" })
if #a < 6 then
  T.skip("ablation.png pixels", "python3 could not decode it: " .. sa)
else
  print(("# ablation.png %dx%d: %d non-white pixels; none %d, balanced %d, best ring %d"):format(a[1], a[2], a[3], a[4], a[5], a[6]))
  T.check(a[3] > 0.01 * a[1] * a[2], "ablation.png is not blank (over 1% non-white pixels)")
  T.check(a[4] > 100 and a[5] > 100, "ablation.png shows both colours of the second axis")
  T.check(a[6] > 20, "ablation.png shows the best cell's ring")
end
local c, sc = stats(render("confusion", conf, 760, 420), { "000000" })
if #c < 3 then
  T.skip("confusion.png pixels", "python3 could not decode it: " .. sc)
else
  print(("# confusion.png %dx%d: %d non-white pixels"):format(c[1], c[2], c[3]))
  T.check(c[3] > 0.03 * c[1] * c[2], "confusion.png is not blank (over 3% non-white pixels)")
end
os.execute("rm -rf " .. bl.shell_quote(dir))
T.done()
