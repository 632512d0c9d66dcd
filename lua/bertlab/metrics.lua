-- bertlab.metrics: classification metrics as scikit-learn defines them (f1_score, precision_score,
-- recall_score, accuracy_score, confusion_matrix) and the tutorial's accuracy_per_class.
-- Predictions and targets are 0-based class ids: Lua arrays of integers, 1-D int64 tensors, or
-- (predictions only) a 2-D float tensor of logits whose argmax over the last dimension is taken.
return function(bl)
  -- A Lua array of integer class ids from an array, an int64 tensor, or 2-D logits.
  local function ids(x, fn, what)
    if bl.is_tensor(x) then
      if x:dtype() == "float32" then
        if x:dim() ~= 2 then
          error(("%s: %s is a float tensor of %d dimensions; expected 2-D logits [N, classes] or int64 ids"):format(fn, what, x:dim()), 3)
        end
        x = x:argmax(2)
      end
      if x:dim() ~= 1 then error(("%s: %s must be a 1-D tensor of class ids, got %d dimensions"):format(fn, what, x:dim()), 3) end
      return x:totable()
    end
    if type(x) ~= "table" then error(("%s: %s must be a list or tensor of class ids, got %s"):format(fn, what, type(x)), 3) end
    local out = {}
    for i = 1, #x do
      local v = x[i]
      if math.type(v) ~= "integer" then
        if type(v) == "number" and v == math.floor(v) then v = math.tointeger(v)
        else error(("%s: element %d of %s is %s, expected an integer class id"):format(fn, i, what, tostring(v)), 3) end
      end
      out[i] = v
    end
    return out
  end

  local function pair(pred, truth, fn)
    local p, t = ids(pred, fn, "pred"), ids(truth, fn, "true")
    if #p ~= #t then error(("%s: pred has %d elements but true has %d"):format(fn, #p, #t), 3) end
    return p, t
  end

  local function sorted_union(p, t)
    local seen, out = {}, {}
    for _, list in ipairs({ p, t }) do
      for _, v in ipairs(list) do if not seen[v] then seen[v] = true; out[#out + 1] = v end end
    end
    table.sort(out)
    return out
  end

  local function check_labels(labels, fn)
    if labels == nil then return nil end
    if type(labels) ~= "table" or #labels == 0 then error(fn .. ": option 'labels' must be a non-empty list of class ids", 3) end
    local seen = {}
    for i, v in ipairs(labels) do
      if math.type(v) ~= "integer" then error(("%s: labels[%d] is %s, expected an integer class id"):format(fn, i, tostring(v)), 3) end
      if seen[v] then error(("%s: label %d appears twice in 'labels'"):format(fn, v), 3) end
      seen[v] = true
    end
    return labels
  end

  local function opts_table(opts, fn, accepted)
    if opts == nil then return {} end
    if type(opts) ~= "table" then error(("%s: argument #3 must be an options table, got %s"):format(fn, type(opts)), 3) end
    return bl.check_options(fn, opts, accepted, 3)
  end

  -- bl.accuracy(pred, true): fraction of equal ids (sklearn accuracy_score).
  function bl.accuracy(pred, truth)
    local p, t = pair(pred, truth, "accuracy")
    if #t == 0 then return 0.0 end
    local ok = 0
    for i = 1, #t do if p[i] == t[i] then ok = ok + 1 end end
    return ok / #t
  end
  bl.accuracy_score = bl.accuracy

  -- bl.confusion_matrix(pred, true, {labels=}) → rows true, columns pred (label order), and the labels.
  function bl.confusion_matrix(pred, truth, opts)
    local fn = "confusion_matrix"
    opts = opts_table(opts, fn, { "labels" })
    local p, t = pair(pred, truth, fn)
    local labels = check_labels(opts.labels, fn) or sorted_union(p, t)
    local pos = {}
    for i, l in ipairs(labels) do pos[l] = i end
    if opts.labels then
      local any = false
      for _, v in ipairs(t) do if pos[v] then any = true; break end end
      if not any and #t > 0 then error(fn .. ": at least one label specified must be in true", 2) end
    end
    local cm = {}
    for i = 1, #labels do
      cm[i] = {}
      for j = 1, #labels do cm[i][j] = 0 end
    end
    for k = 1, #t do
      local i, j = pos[t[k]], pos[p[k]]
      if i and j then cm[i][j] = cm[i][j] + 1 end -- samples with a label outside `labels` are ignored
    end
    return cm, labels
  end

  -- Per-label precision, recall, F1 and support, averaged as sklearn's precision_recall_fscore_support.
  local AVERAGES = { weighted = true, macro = true, micro = true }
  local function prfs(pred, truth, opts, fn)
    opts = opts_table(opts, fn, { "average", "labels", "zero_division" })
    local p, t = pair(pred, truth, fn)
    local average = opts.average
    if average ~= nil and not AVERAGES[average] then
      error(("%s: option 'average' must be \"weighted\", \"macro\", \"micro\" or nil (per class), got %s"):format(fn, tostring(average)), 3)
    end
    local zd = opts.zero_division
    if zd == nil or zd == "warn" then zd = 0.0
    elseif zd ~= 0 and zd ~= 1 then error(fn .. ": option 'zero_division' must be 0, 1 or \"warn\"", 3) end
    zd = zd + 0.0
    local labels = check_labels(opts.labels, fn) or sorted_union(p, t)
    local idx = {}
    for i, l in ipairs(labels) do idx[l] = i end
    local tp, ps, ts = {}, {}, {}
    for i = 1, #labels do tp[i], ps[i], ts[i] = 0, 0, 0 end
    for k = 1, #t do
      local a, b = idx[t[k]], idx[p[k]]
      if a then ts[a] = ts[a] + 1 end
      if b then ps[b] = ps[b] + 1 end
      if a and t[k] == p[k] then tp[a] = tp[a] + 1 end
    end
    if average == "micro" then
      local a, b, c = 0, 0, 0
      for i = 1, #labels do a, b, c = a + tp[i], b + ps[i], c + ts[i] end
      tp, ps, ts = { a }, { b }, { c }
    end
    local function div(n, d) if d == 0 then return zd end return n / d end
    local P, R, F = {}, {}, {}
    for i = 1, #tp do
      P[i] = div(tp[i], ps[i])
      R[i] = div(tp[i], ts[i])
      F[i] = div(2.0 * tp[i], ts[i] + ps[i])
    end
    if average == nil then return P, R, F, ts, labels end
    local function avg(x)
      local wsum, s = 0, 0.0
      if average == "weighted" then
        for i = 1, #x do wsum = wsum + ts[i]; s = s + x[i] * ts[i] end
        if wsum > 0 then return s / wsum end
        s = 0.0 -- all weights zero: sklearn falls back to the plain mean
      end
      for i = 1, #x do s = s + x[i] end
      return s / #x
    end
    return avg(P), avg(R), avg(F), nil, labels
  end

  -- bl.f1_score(pred, true, {average=, labels=, zero_division=0}): a number, or a list per label.
  function bl.f1_score(pred, truth, opts)
    local _, _, f = prfs(pred, truth, opts, "f1_score")
    return f
  end

  function bl.precision_score(pred, truth, opts)
    local p = prfs(pred, truth, opts, "precision_score")
    return p
  end

  function bl.recall_score(pred, truth, opts)
    local _, r = prfs(pred, truth, opts, "recall_score")
    return r
  end

  -- bl.precision_recall_fscore_support(pred, true, opts) → precision, recall, f1, support, labels.
  function bl.precision_recall_fscore_support(pred, truth, opts)
    return prfs(pred, truth, opts, "precision_recall_fscore_support")
  end

  -- The name of class id `id` from a table keyed by 0-based ids (names[0] present) or a plain list.
  local function label_name(names, id)
    if names == nil then return tostring(id) end
    local v
    if names[0] ~= nil then v = names[id] else v = names[id + 1] end
    return v ~= nil and tostring(v) or tostring(id)
  end
  bl.label_name = label_name

  -- bl.accuracy_per_class(pred, true, labels, {quiet=false, out=io.stdout}): the tutorial's report,
  -- one entry per class present in `true` (sorted by id): {id=, name=, correct=, total=}.
  function bl.accuracy_per_class(pred, truth, names, opts)
    local fn = "accuracy_per_class"
    if names ~= nil and type(names) ~= "table" then
      error(fn .. ": argument #3 must be a table of class names (id → name), got " .. type(names), 2)
    end
    opts = bl.check_options(fn, opts, { "out", "quiet" }, 2)
    local p, t = pair(pred, truth, fn)
    local present, order = {}, {}
    for _, v in ipairs(t) do if not present[v] then present[v] = true; order[#order + 1] = v end end
    table.sort(order)
    local out = opts.out or io.stdout
    local result = {}
    for _, id in ipairs(order) do
      local correct, total = 0, 0
      for k = 1, #t do
        if t[k] == id then
          total = total + 1
          if p[k] == id then correct = correct + 1 end
        end
      end
      local name = label_name(names, id)
      result[#result + 1] = { id = id, name = name, correct = correct, total = total }
      result[name] = result[#result]
      if not opts.quiet then
        out:write(("Class: %s\nAccuracy: %d/%d\n\n"):format(name, correct, total))
      end
    end
    return result
  end
  ---------------------------------------------------------------------------------------------------
  -- Class imbalance: the loss's class weights and the weighted sampler's row weights
  ---------------------------------------------------------------------------------------------------

  -- bl.compute_class_weight(labels, n_classes) → {w_0, ..., w_(n-1)} (a Lua list, entry k+1 for class
  -- k): scikit-learn's compute_class_weight("balanced", classes=range(n), y=labels), i.e.
  -- n_samples / (n_classes * bincount(labels)), in double. Every class must occur in labels.
  function bl.compute_class_weight(labels, n_classes)
    local y = ids(labels, "compute_class_weight", "labels")
    if math.type(n_classes) ~= "integer" or n_classes < 1 then
      error("compute_class_weight: n_classes must be a positive integer, got " .. tostring(n_classes), 2)
    end
    local count = {}
    for k = 0, n_classes - 1 do count[k] = 0 end
    for i, v in ipairs(y) do
      if v < 0 or v >= n_classes then
        error(("compute_class_weight: label %d (element %d) is not a class id in 0..%d"):format(v, i, n_classes - 1), 2)
      end
      count[v] = count[v] + 1
    end
    local w = {}
    for k = 0, n_classes - 1 do
      if count[k] == 0 then
        error(("compute_class_weight: class %d does not occur in the labels (balanced weights need every class)"):format(k), 2)
      end
      w[k + 1] = #y / (n_classes * count[k])
    end
    return w
  end

  -- bl.resolve_class_weights(spec, train_labels, names) → nil (spec "none" or nil), or the list of
  -- #names weights: "balanced" (compute_class_weight over the training labels), a list of numbers,
  -- or a string "w1,w2,..." (the command line's form). Errors name the option.
  function bl.resolve_class_weights(spec, labels, names)
    local n = #names
    if spec == nil or spec == "none" then return nil end
    if spec == "balanced" then
      local ok, w = pcall(bl.compute_class_weight, labels, n)
      if not ok then error("class_weights=\"balanced\": " .. tostring(w):gsub("^[^:]*:%d+: ", ""), 2) end
      return w
    end
    local list = spec
    if type(spec) == "string" then
      list = {}
      for f in (spec .. ","):gmatch("([^,]*),") do
        local v = tonumber(f)
        if not v then
          error(("class_weights: '%s' is not \"none\", \"balanced\" or a comma-separated list of numbers"):format(spec), 2)
        end
        list[#list + 1] = v
      end
    end
    if type(list) ~= "table" then
      error("class_weights must be \"none\", \"balanced\" or a list of numbers, got " .. type(spec), 2)
    end
    if #list ~= n then
      error(("class_weights: %d weights given, the data has %d classes (%s)"):format(#list, n, table.concat(names, ", ")), 2)
    end
    local any = false
    for i, v in ipairs(list) do
      if type(v) ~= "number" or v ~= v or v < 0 or v == math.huge then
        error(("class_weights: weight %d (%s) is %s; weights must be finite numbers >= 0"):format(i, names[i], tostring(v)), 2)
      end
      any = any or v > 0
    end
    if not any then error("class_weights: every weight is 0", 2) end
    local w = {}
    for i, v in ipairs(list) do w[i] = v + 0.0 end
    return w
  end

  -- bl.sampler_weights(sampler, train_labels) → sampler name for bl.DataLoader and, for "weighted",
  -- one weight per training row, 1 / (number of rows of its class): WeightedRandomSampler's usual
  -- inverse-frequency weights (every class drawn equally often on average).
  function bl.sampler_weights(sampler, labels)
    if sampler == nil or sampler == "random" then return "random", nil end
    if sampler ~= "weighted" then
      error(("sampler must be \"random\" or \"weighted\", got %s"):format(tostring(sampler)), 2)
    end
    local y = ids(labels, "sampler_weights", "labels")
    local count = {}
    for _, v in ipairs(y) do count[v] = (count[v] or 0) + 1 end
    local w = {}
    for i, v in ipairs(y) do w[i] = 1.0 / count[v] end
    return "weighted", w
  end
  ---------------------------------------------------------------------------------------------------
  -- classification_report: scikit-learn's text, character for character
  ---------------------------------------------------------------------------------------------------

  -- Python's len() of a str (code points) for the padding; bytes when not valid UTF-8.
  local function ulen(str) return utf8.len(str) or #str end
  local function rjust(str, w) return string.rep(" ", math.max(0, w - ulen(str))) .. str end
  local function fnum(v, digits) -- "{:>9.{digits}f}"
    if v ~= v then return rjust("nan", 9) end
    return rjust(("%." .. digits .. "f"):format(v), 9)
  end

  -- bl.classification_report(pred, true[, names[, {digits=2, labels=, zero_division="warn"}]]) → the
  -- text of sklearn.metrics.classification_report(true, pred, labels=, target_names=names, digits=):
  -- per class precision, recall, F1 and support, then accuracy (or "micro avg" when `labels` leave
  -- out a class present in the data), macro and weighted averages. With names (a list, or a table
  -- keyed by 0-based ids as id2label) the rows are class ids 0..#names-1 (a class that is in neither
  -- list gets its row of zeros, as with sklearn's labels=range(n)); without, the sorted ids present.
  function bl.classification_report(pred, truth, names, opts)
    local fn = "classification_report"
    if names ~= nil and type(names) ~= "table" then
      error(fn .. ": argument #3 must be a list of class names (or id2label), got " .. type(names), 2)
    end
    opts = bl.check_options(fn, opts, { "digits", "labels", "zero_division" }, 2)
    local digits = opts.digits or 2
    if math.type(digits) ~= "integer" or digits < 0 then
      error(fn .. ": option 'digits' must be a non-negative integer, got " .. tostring(opts.digits), 2)
    end
    local p, t = pair(pred, truth, fn)
    local nnames = 0
    if names then
      if names[0] ~= nil then
        while names[nnames] ~= nil do nnames = nnames + 1 end
      else
        nnames = #names
      end
    end
    local labels, given = opts.labels, opts.labels ~= nil
    if labels == nil and names then
      labels = {}
      for k = 0, nnames - 1 do labels[#labels + 1] = k end
      given = true
    end
    local ok, P, R, F, S, labs = pcall(prfs, p, t, { labels = labels, zero_division = opts.zero_division }, fn)
    if not ok then error(tostring(P):gsub("^[^:]*:%d+: ", ""), 2) end
    local target = {}
    for i, l in ipairs(labs) do
      if names and not opts.labels then target[i] = label_name(names, l)
      elseif names then
        target[i] = names[0] ~= nil and tostring(names[i - 1]) or tostring(names[i]) -- names follow `labels`
      else target[i] = tostring(l) end
    end
    if names and opts.labels and nnames ~= #labs then
      error(("%s: %d labels and %d names; give one name per label"):format(fn, #labs, nnames), 2)
    end
    -- "accuracy" when the labels cover every class present
    local present = sorted_union(p, t)
    local inlab = {}
    for _, l in ipairs(labs) do inlab[l] = true end
    local micro_is_accuracy = true
    if given then for _, l in ipairs(present) do if not inlab[l] then micro_is_accuracy = false end end end
    -- sklearn's quirk: with no correct prediction at all its counts are floats, printed "2.0"
    local any_tp = false
    for k = 1, #t do if p[k] == t[k] then any_tp = true; break end end
    local function count(n) return any_tp and tostring(n) or ("%d.0"):format(n) end
    local width = #("weighted avg")
    for _, nm in ipairs(target) do width = math.max(width, ulen(nm)) end
    width = math.max(width, digits)
    local out = { rjust("", width) .. " " }
    for _, h in ipairs({ "precision", "recall", "f1-score", "support" }) do out[#out + 1] = " " .. rjust(h, 9) end
    out[#out + 1] = "\n\n"
    local total = 0
    for i = 1, #labs do
      out[#out + 1] = rjust(target[i], width) .. " " .. " " .. fnum(P[i], digits) .. " " .. fnum(R[i], digits) .. " " ..
        fnum(F[i], digits) .. " " .. rjust(count(S[i]), 9) .. "\n"
      total = total + S[i]
    end
    out[#out + 1] = "\n"
    for _, avg in ipairs({ "micro", "macro", "weighted" }) do
      local ap, ar, af = prfs(p, t, { labels = labs, average = avg, zero_division = opts.zero_division }, fn)
      if avg == "micro" and micro_is_accuracy then
        out[#out + 1] = rjust("accuracy", width) .. " " .. " " .. rjust("", 9) .. " " .. rjust("", 9) .. " " ..
          fnum(af, digits) .. " " .. rjust(count(total), 9) .. "\n"
      else
        out[#out + 1] = rjust(avg .. " avg", width) .. " " .. " " .. fnum(ap, digits) .. " " .. fnum(ar, digits) .. " " ..
          fnum(af, digits) .. " " .. rjust(count(total), 9) .. "\n"
      end
    end
    return table.concat(out)
  end
end
