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
end
