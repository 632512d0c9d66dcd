-- bertlab.chart: chart.svg, a run's losses and weighted F1 per epoch, written by hand (no plotting
-- library). Two panels sharing the epoch axis: loss (from 0) above, F1 below on a range that fits its
-- values so a change of 0.01 shows; round ticks (1, 2, 2.5, 5 x 10^k); the best epoch marked across
-- both panels; the run's name and settings in the title; legends right of the axes, clear of them.
return function(bl)
  local function esc(s)
    return (tostring(s):gsub("&", "&amp;"):gsub("<", "&lt;"):gsub(">", "&gt;"):gsub('"', "&quot;"))
  end

  -- bl.nice_ticks(lo, hi[, max_ticks=6]) → ticks, step: round tick values covering [lo, hi]
  -- (steps 1, 2, 2.5 or 5 times a power of ten; at most max_ticks + 1 ticks).
  function bl.nice_ticks(lo, hi, max_ticks)
    max_ticks = max_ticks or 6
    if not (type(lo) == "number" and type(hi) == "number") or lo ~= lo or hi ~= hi then
      error("nice_ticks: lo and hi must be numbers", 2)
    end
    if hi < lo then lo, hi = hi, lo end
    if hi - lo < 1e-12 then
      local pad = math.max(math.abs(lo) * 0.05, 1e-3)
      lo, hi = lo - pad, hi + pad
    end
    local raw = (hi - lo) / max_ticks
    local mag = 10 ^ math.floor(math.log(raw, 10))
    local step
    for _, m in ipairs({ 1, 2, 2.5, 5, 10 }) do
      step = m * mag
      if step >= raw * (1 - 1e-9) then break end
    end
    local first = math.floor(lo / step + 1e-9)
    local last = math.ceil(hi / step - 1e-9)
    local ticks = {}
    for k = first, last do ticks[#ticks + 1] = k * step end
    return ticks, step
  end

  -- Decimals that show a tick step exactly (0.25 -> 2, 0.01 -> 2, 5 -> 0).
  local function decimals(step)
    for d = 0, 8 do
      local scaled = step * 10 ^ d
      if math.abs(scaled - math.floor(scaled + 0.5)) < 1e-6 then return d end
    end
    return 8
  end

  -- bl.results_svg(rows, {title=, subtitle=, best=}) → SVG text. rows: per-epoch tables with
  -- epoch, train_loss, val_loss, val_f1 (any may be missing); best: the epoch to mark (default: the
  -- highest val_f1, the earliest on ties).
  function bl.results_svg(rows, opts)
    opts = opts or {}
    local W, H = 760, 560
    local L, R = 72, 190        -- left axis labels; the legends' column on the right
    local pw = W - L - R
    local P1, P2 = { top = 78, h = 180 }, { top = 320, h = 170 }
    local n = #rows
    local o = {}
    local function add(fmt, ...) o[#o + 1] = fmt:format(...) end
    local XPAD = 20 -- the first and last points sit inside the frame, not on it
    local function x(i) return L + XPAD + (n > 1 and (i - 1) / (n - 1) or 0.5) * (pw - 2 * XPAD) end

    -- the best epoch
    local best = opts.best
    if best == nil then
      for i, r in ipairs(rows) do
        if r.val_f1 and (best == nil or r.val_f1 > rows[best].val_f1) then best = i end
      end
    else
      for i, r in ipairs(rows) do if (r.epoch or i) == opts.best then best = i end end
    end

    -- value ranges: loss from 0; F1 fitted to its values (within [0, 1])
    local maxloss, fmin, fmax = 0, math.huge, -math.huge
    for _, r in ipairs(rows) do
      maxloss = math.max(maxloss, r.train_loss or 0, r.val_loss or 0)
      if r.val_f1 then fmin, fmax = math.min(fmin, r.val_f1), math.max(fmax, r.val_f1) end
    end
    if maxloss <= 0 then maxloss = 1 end
    local lticks, lstep = bl.nice_ticks(0, maxloss, 5)
    if fmin > fmax then fmin, fmax = 0, 1 end
    local span = math.max(fmax - fmin, 0.02)
    local flo, fhi = math.max(0, fmin - span * 0.15), math.min(1, fmax + span * 0.15)
    local fticks, fstep = bl.nice_ticks(flo, fhi, 5)
    while fticks[1] < -1e-9 do table.remove(fticks, 1) end
    while fticks[#fticks] > 1 + 1e-9 do table.remove(fticks) end

    local function scale(panel, ticks)
      local lo, hi = ticks[1], ticks[#ticks]
      return function(v) return panel.top + panel.h - (v - lo) / (hi - lo) * panel.h end
    end
    local yl, yf = scale(P1, lticks), scale(P2, fticks)

    add('<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">', W, H, W, H)
    add('<rect width="%d" height="%d" fill="white"/>', W, H)
    add('<text x="%d" y="26" text-anchor="middle" font-size="16" font-weight="bold">%s</text>', W // 2,
      esc(opts.title or "Loss and weighted F1 per epoch"))
    if opts.subtitle then
      add('<text x="%d" y="46" text-anchor="middle" fill="#555">%s</text>', W // 2, esc(opts.subtitle))
    end

    local function panel(p, ticks, step, ylab, fmt_y)
      local d = decimals(step)
      for _, t in ipairs(ticks) do
        local y = fmt_y(t)
        add('<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#e3e3e3"/>', L, y, L + pw, y)
        add('<text x="%d" y="%.1f" text-anchor="end">%s</text>', L - 6, y + 4, ("%." .. d .. "f"):format(t))
      end
      add('<rect x="%d" y="%d" width="%d" height="%d" fill="none" stroke="#444"/>', L, p.top, pw, p.h)
      local every = math.max(1, math.ceil(n / 12))
      for i, r in ipairs(rows) do
        if (i - 1) % every == 0 or i == n then
          add('<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#444"/>', x(i), p.top + p.h, x(i), p.top + p.h + 4)
          add('<text x="%.1f" y="%d" text-anchor="middle">%s</text>', x(i), p.top + p.h + 17, esc(r.epoch or i))
        end
      end
      add('<text transform="translate(18,%d) rotate(-90)" text-anchor="middle">%s</text>', p.top + p.h // 2, ylab)
    end
    panel(P1, lticks, lstep, "loss", yl)
    panel(P2, fticks, fstep, "weighted F1 (validation)", yf)
    add('<text x="%d" y="%d" text-anchor="middle">epoch</text>', L + pw // 2, P2.top + P2.h + 36)

    -- the best epoch: a dashed line through both panels and a ring on its F1
    if best then
      local bx = x(best)
      for _, p in ipairs({ P1, P2 }) do
        add('<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#d62728" stroke-dasharray="4,3"/>', bx, p.top, bx, p.top + p.h)
      end
      if rows[best].val_f1 then
        add('<circle cx="%.1f" cy="%.1f" r="7" fill="none" stroke="#d62728" stroke-width="2"/>', bx, yf(rows[best].val_f1))
      end
    end

    local series = {
      { key = "train_loss", color = "#1f77b4", y = yl, label = "training loss", panel = P1 },
      { key = "val_loss", color = "#ff7f0e", y = yl, label = "validation loss", panel = P1 },
      { key = "val_f1", color = "#2ca02c", y = yf, label = "validation F1", panel = P2 },
    }
    local legend_y = { [P1] = P1.top + 14, [P2] = P2.top + 14 }
    local lx = L + pw + 18
    for _, ser in ipairs(series) do
      local pts = {}
      for i, r in ipairs(rows) do
        if r[ser.key] then pts[#pts + 1] = { x(i), ser.y(r[ser.key]) } end
      end
      if #pts > 1 then
        local s = {}
        for k, pt in ipairs(pts) do s[k] = ("%.1f,%.1f"):format(pt[1], pt[2]) end
        add('<polyline fill="none" stroke="%s" stroke-width="2" points="%s"/>', ser.color, table.concat(s, " "))
      end
      for _, pt in ipairs(pts) do add('<circle cx="%.1f" cy="%.1f" r="3.5" fill="%s"/>', pt[1], pt[2], ser.color) end
      local ly = legend_y[ser.panel]
      add('<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" stroke-width="2"/>', lx, ly - 4, lx + 22, ly - 4, ser.color)
      add('<text x="%d" y="%d">%s</text>', lx + 28, ly, ser.label)
      legend_y[ser.panel] = ly + 20
    end
    if best then
      local ly = legend_y[P2]
      add('<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#d62728" stroke-dasharray="4,3"/>', lx, ly - 4, lx + 22, ly - 4)
      add('<text x="%d" y="%d">best: epoch %s</text>', lx + 28, ly, esc(rows[best].epoch or best))
      if rows[best].val_f1 then
        add('<text x="%d" y="%d" fill="#555">F1 %.4f</text>', lx + 28, ly + 16, rows[best].val_f1)
      end
    end
    add("</svg>")
    return table.concat(o, "\n") .. "\n"
  end

  -- bl.chart_title(name, o) → title, subtitle for a run: its name; the model, data, batch size,
  -- learning rate and epochs.
  function bl.chart_title(name, o)
    local model = tostring(o.model or ""):gsub("/+$", ""):match("([^/]+)$") or "?"
    local data = tostring(o.data or ""):match("([^/]+)$") or "?"
    return name or "bertlab run", ("%s on %s: batch %s, lr %g, %s epochs, seed %s"):format(model, data,
      tostring(o.batch_size), o.lr or 0, tostring(o.epochs), tostring(o.seed))
  end
  local PALETTE = { "#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf" }

  -- bl.ablation_svg(cells, {axes=, show=, title=, metric=}) → SVG text: one dot per cell at its mean
  -- (cells[i].mean) with an error bar of ± one standard deviation (cells[i].std) and its runs' min and
  -- max as short ticks, on a fitted scale. Cells are grouped by the first axis (a block per value, named
  -- under it) and coloured by the second (a legend); further axes are written under each bar. The
  -- best mean is ringed in red. cells[i].values holds the cell's value of each axis; show(key, v)
  -- formats a value (default tostring).
  function bl.ablation_svg(cells, opts)
    opts = opts or {}
    local axes = opts.axes or {}
    local show = opts.show or function(_, v) return tostring(v) end
    local W, H = 760, 460
    local L, R, TOP, BOT = 72, 170, 70, 110
    local pw, ph = W - L - R, H - TOP - BOT
    local o = {}
    local function add(fmt, ...) o[#o + 1] = fmt:format(...) end
    -- groups by the first axis, in the cells' order
    local groups, gi = {}, {}
    for _, c in ipairs(cells) do
      local key = axes[1] and show(axes[1], c.values[axes[1]]) or ""
      if not gi[key] then groups[#groups + 1] = { key = key, cells = {} }; gi[key] = groups[#groups] end
      local g = gi[key]
      g.cells[#g.cells + 1] = c
    end
    local colours, corder = {}, {}
    for _, c in ipairs(cells) do
      local key = axes[2] and show(axes[2], c.values[axes[2]]) or ""
      if not colours[key] then corder[#corder + 1] = key; colours[key] = PALETTE[(#corder - 1) % #PALETTE + 1] end
    end
    local lo, hi, best = math.huge, -math.huge, nil
    for i, c in ipairs(cells) do
      lo = math.min(lo, c.min or c.mean, c.mean - (c.std or 0))
      hi = math.max(hi, c.max or c.mean, c.mean + (c.std or 0))
      if not best or c.mean > cells[best].mean then best = i end
    end
    if lo > hi then lo, hi = 0, 1 end
    local span = math.max(hi - lo, 0.02)
    local ticks, step = bl.nice_ticks(math.max(0, lo - span * 0.15), math.min(1, hi + span * 0.15), 5)
    while ticks[1] < -1e-9 do table.remove(ticks, 1) end
    while ticks[#ticks] > 1 + 1e-9 do table.remove(ticks) end
    local y0, y1 = ticks[1], ticks[#ticks]
    local function y(v) return TOP + ph - (v - y0) / (y1 - y0) * ph end

    add('<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">', W, H, W, H)
    add('<rect width="%d" height="%d" fill="white"/>', W, H)
    add('<text x="%d" y="26" text-anchor="middle" font-size="16" font-weight="bold">%s</text>', W // 2, esc(opts.title or "Ablation"))
    add('<text x="%d" y="46" text-anchor="middle" fill="#555">%s</text>', W // 2,
      esc(("mean %s per cell (dot), ± 1 std (bar), min and max over the runs (short ticks)"):format(opts.metric or "weighted F1")))
    local d = decimals(step)
    for _, t in ipairs(ticks) do
      add('<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#e3e3e3"/>', L, y(t), L + pw, y(t))
      add('<text x="%d" y="%.1f" text-anchor="end">%s</text>', L - 6, y(t) + 4, ("%." .. d .. "f"):format(t))
    end
    add('<rect x="%d" y="%d" width="%d" height="%d" fill="none" stroke="#444"/>', L, TOP, pw, ph)
    add('<text transform="translate(18,%d) rotate(-90)" text-anchor="middle">%s</text>', TOP + ph // 2, esc(opts.metric or "weighted F1"))
    -- bars: groups separated by one bar's width
    local nbars = #cells + math.max(0, #groups - 1)
    local slot = pw / math.max(nbars, 1)
    local bw = math.min(slot * 0.7, 60)
    local k = 0
    for g_i, g in ipairs(groups) do
      local gx0 = L + k * slot
      for _, c in ipairs(g.cells) do
        local cx = L + (k + 0.5) * slot
        local col = colours[axes[2] and show(axes[2], c.values[axes[2]]) or ""]
        local top = y(c.mean)
        local sd = c.std or 0
        if sd > 0 then
          add('<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#222" stroke-width="1.5"/>', cx, y(c.mean - sd), cx, y(c.mean + sd))
          for _, v in ipairs({ c.mean - sd, c.mean + sd }) do
            add('<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#222" stroke-width="1.5"/>', cx - bw / 4, y(v), cx + bw / 4, y(v))
          end
        end
        for _, v in ipairs({ c.min, c.max }) do
          if v then add('<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-width="2"/>', cx + bw / 3, y(v), cx + bw / 2, y(v), col) end
        end
        add('<circle cx="%.1f" cy="%.1f" r="7" fill="%s"/>', cx, top, col)
        if c == cells[best] then add('<circle cx="%.1f" cy="%.1f" r="11" fill="none" stroke="#d62728" stroke-width="2.5"/>', cx, top) end
        add('<text x="%.1f" y="%.1f" text-anchor="middle" font-size="10">%.4f</text>', cx, y(c.mean + sd) - 8, c.mean)
        local rest = {}
        for a = 3, #axes do rest[#rest + 1] = show(axes[a], c.values[axes[a]]) end
        if #rest > 0 then
          add('<text x="%.1f" y="%d" text-anchor="middle" font-size="10">%s</text>', cx, TOP + ph + 14, esc(table.concat(rest, " ")))
        end
        k = k + 1
      end
      if axes[1] then
        local gx1 = L + k * slot
        add('<text x="%.1f" y="%d" text-anchor="middle">%s</text>', (gx0 + gx1) / 2, TOP + ph + (#axes > 2 and 32 or 18),
          esc(axes[1] .. "=" .. g.key))
      end
      if g_i < #groups then k = k + 1 end
    end
    -- legend: the second axis' colours and the best marker
    local lx, ly = L + pw + 18, TOP + 14
    if axes[2] then
      add('<text x="%d" y="%d" font-weight="bold">%s</text>', lx, ly, esc(axes[2]))
      ly = ly + 20
      for _, key in ipairs(corder) do
        add('<rect x="%d" y="%d" width="14" height="14" fill="%s"/>', lx, ly - 11, colours[key])
        add('<text x="%d" y="%d">%s</text>', lx + 20, ly, esc(key))
        ly = ly + 20
      end
    end
    if best then
      add('<circle cx="%d" cy="%d" r="7" fill="none" stroke="#d62728" stroke-width="2.5"/>', lx + 7, ly - 4)
      add('<text x="%d" y="%d">best mean</text>', lx + 20, ly)
      add('<text x="%d" y="%d" fill="#555">%.4f (n=%d)</text>', lx + 20, ly + 16, cells[best].mean, cells[best].n or 0)
    end
    add("</svg>")
    return table.concat(o, "\n") .. "\n"
  end

  -- bl.confusion_svg(panels, names[, {title=}]) → SVG text: one confusion matrix per panel
  -- ({title=, cm=} with cm[i][j] the count of true class i predicted j), side by side, cells shaded
  -- by their share of the row (recall), the count written in each, rows true and columns predicted.
  function bl.confusion_svg(panels, names, opts)
    opts = opts or {}
    local k = #names
    local cell = math.max(26, math.min(56, math.floor(420 / math.max(k, 1))))
    local lab = 0
    for _, nm in ipairs(names) do lab = math.max(lab, #tostring(nm)) end
    local LW = math.min(180, 14 + lab * 7)
    local pwid = LW + k * cell + 30
    local W = math.max(360, #panels * pwid + 20)
    local TOP = 90
    local H = TOP + k * cell + 60
    local o = {}
    local function add(fmt, ...) o[#o + 1] = fmt:format(...) end
    add('<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">', W, H, W, H)
    add('<rect width="%d" height="%d" fill="white"/>', W, H)
    add('<text x="%d" y="24" text-anchor="middle" font-size="16" font-weight="bold">%s</text>', W // 2,
      esc(opts.title or "Confusion matrix (rows: true, columns: predicted)"))
    for p_i, p in ipairs(panels) do
      local x0 = 10 + (p_i - 1) * pwid + LW
      add('<text x="%d" y="50" text-anchor="middle" font-weight="bold">%s</text>', x0 + k * cell // 2, esc(p.title or ""))
      for j = 1, k do
        add('<text x="%d" y="%d" text-anchor="start" font-size="11" transform="rotate(-35 %d %d)">%s</text>', x0 + (j - 1) * cell + cell // 2,
          TOP - 6, x0 + (j - 1) * cell + cell // 2, TOP - 6, esc(names[j]))
      end
      for i = 1, k do
        local row, tot = p.cm[i] or {}, 0
        for j = 1, k do tot = tot + (row[j] or 0) end
        add('<text x="%d" y="%d" text-anchor="end" font-size="11">%s</text>', x0 - 6, TOP + (i - 1) * cell + cell // 2 + 4, esc(names[i]))
        for j = 1, k do
          local v = row[j] or 0
          local share = tot > 0 and v / tot or 0
          local c = math.floor(255 - share * 200 + 0.5)
          local fill = i == j and ("rgb(%d,%d,255)"):format(c, c) or ("rgb(255,%d,%d)"):format(c, c)
          add('<rect x="%d" y="%d" width="%d" height="%d" fill="%s" stroke="#bbb"/>', x0 + (j - 1) * cell, TOP + (i - 1) * cell, cell, cell, fill)
          add('<text x="%d" y="%d" text-anchor="middle"%s>%d</text>', x0 + (j - 1) * cell + cell // 2, TOP + (i - 1) * cell + cell // 2 + 4,
            share > 0.6 and ' fill="white"' or "", v)
        end
      end
      add('<text x="%d" y="%d" text-anchor="middle" fill="#555">predicted</text>', x0 + k * cell // 2, TOP + k * cell + 22)
    end
    add("</svg>")
    return table.concat(o, "\n") .. "\n"
  end
end
