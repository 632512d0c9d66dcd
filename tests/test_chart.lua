-- test_chart.lua: chart.svg (bl.results_svg): round ticks, F1 on a fitted scale, two panels, the
-- best epoch marked, the run's name and settings in the title, legends right of the axes; then the
-- SVG rendered by headless Chromium must not be blank and must show each series' colour (pixels
-- counted by tests/lib/png_stats.py). Without Chromium the render check is skipped with why.
local T = require("testlib")
local bl = require("bertlab")

-- nice_ticks: steps of 1, 2, 2.5, 5 x 10^k covering the range
local t, step = bl.nice_ticks(0, 1.232, 5)
T.same(t, { 0, 0.25, 0.5, 0.75, 1.0, 1.25 }, "nice_ticks(0, 1.232): 0 to 1.25 by 0.25")
T.eq(step, 0.25, "nice_ticks step 0.25")
t = bl.nice_ticks(0.8, 0.87, 5)
T.check(#t >= 4 and #t <= 8 and t[1] <= 0.8 + 1e-12 and t[#t] >= 0.87 - 1e-12, "nice_ticks(0.8, 0.87) covers the range in 4..8 ticks",
  table.concat(t, " "))
t = bl.nice_ticks(2, 2)
T.check(#t >= 2 and t[1] < 2 and t[#t] > 2, "nice_ticks of an empty range widens it")

local rows = {
  { epoch = 1, train_loss = 1.120, val_loss = 0.688, val_f1 = 0.825287 },
  { epoch = 2, train_loss = 0.578, val_loss = 0.466, val_f1 = 0.844624 },
  { epoch = 3, train_loss = 0.409, val_loss = 0.441, val_f1 = 0.859660 },
  { epoch = 4, train_loss = 0.353, val_loss = 0.468, val_f1 = 0.855081 },
  { epoch = 5, train_loss = 0.328, val_loss = 0.474, val_f1 = 0.847310 },
}
local title, sub = bl.chart_title("conference-test", { model = "models/all-MiniLM-L6-v2", data = "data/title_conference.csv",
  batch_size = 3, lr = 1e-5, epochs = 5, seed = 17 })
local svg = bl.results_svg(rows, { title = title, subtitle = sub })
T.check(svg:find(">conference-test</text>", 1, true) ~= nil, "the title names the run")
T.check(svg:find("all-MiniLM-L6-v2 on title_conference.csv: batch 3, lr 1e-05, 5 epochs, seed 17", 1, true) ~= nil,
  "the subtitle gives the key settings")
local frames = select(2, svg:gsub('fill="none" stroke="#444"', ""))
T.eq(frames, 2, "two panels (loss, F1)")
-- tick labels: every number printed at the left axis is a multiple of its panel's step
local labels = {}
for v in svg:gmatch('text%-anchor="end">([%d%.%-]+)</text>') do labels[#labels + 1] = v end
T.same({ labels[1], labels[#labels] }, { "0.00", "0.87" }, "loss axis from 0.00; F1 axis up to 0.87 (fitted, not 1.00)")
local f1_labels = {}
for i = 7, #labels do f1_labels[#f1_labels + 1] = tonumber(labels[i]) end
T.check(#f1_labels >= 4 and f1_labels[1] >= 0.8 and f1_labels[1] <= 0.825, "the F1 axis starts near the lowest F1",
  table.concat(labels, " "))
local odd = {}
for _, v in ipairs(labels) do
  local x = tonumber(v)
  if math.abs(x * 100 - math.floor(x * 100 + 0.5)) > 1e-6 then odd[#odd + 1] = v end
end
T.check(#odd == 0, "round tick labels (no 0.308, 0.616, ...)", table.concat(odd, " "))
T.check(svg:find("best: epoch 3", 1, true) and svg:find("F1 0.8597", 1, true), "the best epoch is marked and labelled")
T.eq(select(2, svg:gsub('stroke%-dasharray="4,3"', "")), 3, "a dashed best-epoch line in each panel, and in the legend")
-- legends right of the axes: every legend text starts right of the frames
local frame_right = 72 + (760 - 72 - 190)
local legend_ok, legend_n = true, 0
for lx, what in svg:gmatch('<text x="(%d+)" y="%d+"[^>]*>([^<]*)</text>') do
  if what:find("loss$") or what:find("F1$") or what:find("^best") then
    if what ~= "loss" then
      legend_n = legend_n + 1
      if tonumber(lx) <= frame_right then legend_ok = false end
    end
  end
end
T.check(legend_ok and legend_n == 4, "the 4 legend entries sit right of the axes", ("%d found"):format(legend_n))
local one = bl.results_svg({ rows[1] })
T.check(one:find("<circle", 1, true) ~= nil and one:find("nan", 1, true) == nil, "a one-epoch chart draws its points")

-- rendering with headless Chromium
local browser = T.find_browser()
if not browser then
  T.skip("chart.svg renders", "no headless Chromium (apt-get install -y chromium); CI installs it in .ci/run")
else
  local dir = os.tmpname()
  os.remove(dir)
  bl.mkdir_p(dir)
  bl.write_file(dir .. "/chart.svg", svg)
  bl.write_file(dir .. "/blank.svg", '<svg xmlns="http://www.w3.org/2000/svg" width="760" height="560"><rect width="760" height="560" fill="white"/></svg>\n')
  local function render(name)
    local cmd = ("cd %s && %s --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=760,560 --screenshot=%s.png file://%s/%s.svg >/dev/null 2>&1")
      :format(bl.shell_quote(dir), bl.shell_quote(browser), name, dir, name)
    os.execute(cmd)
    local f = io.open(dir .. "/" .. name .. ".png", "rb")
    local size = f and f:seek("end") or 0
    if f then f:close() end
    return size
  end
  local size, blank = render("chart"), render("blank")
  print(("# chart.png %d bytes, blank.png %d bytes"):format(size, blank))
  T.check(size > 0 and size > 4 * blank, "chart.png is much larger than a blank page's PNG", ("%d vs %d bytes"):format(size, blank))
  local p = io.popen(("python3 tests/lib/png_stats.py %s/chart.png 1f77b4 ff7f0e 2ca02c d62728 2>&1"):format(bl.shell_quote(dir)))
  local stats = p:read("a")
  p:close()
  local w, h, nonwhite, blue, orange, green, red = stats:match("^(%d+) (%d+) (%d+) (%d+) (%d+) (%d+) (%d+)")
  if not w then
    T.skip("chart.png pixels", "python3 could not decode it: " .. stats)
  else
    print(("# chart.png %sx%s: %s non-white pixels; series colours %s, %s, %s; best marker %s"):format(w, h, nonwhite, blue, orange, green, red))
    T.check(tonumber(nonwhite) > 0.02 * w * h, "chart.png is not blank (over 2% non-white pixels)")
    T.check(tonumber(blue) > 100 and tonumber(orange) > 100 and tonumber(green) > 100, "each series' colour is drawn")
    T.check(tonumber(red) > 20, "the best-epoch marker is drawn")
  end
  os.execute("rm -rf " .. bl.shell_quote(dir))
end
T.done()
