-- bertlab.train: learning-rate schedules (torch LambdaLR semantics), bl.softmax, and
-- bl.run_experiment: the tutorial's fine-tuning loop as a reusable function (used by
-- experiments/conference.lua and experiments/ablation.lua).
return function(bl)
  ---------------------------------------------------------------------------------------------------
  -- Schedules
  ---------------------------------------------------------------------------------------------------
  local Sched = {}
  Sched.__index = Sched
  Sched.__name = "bertlab.LambdaLR"

  -- bl.LambdaLR(opt, lr_lambda): lr = base_lr * lr_lambda(step); at creation step 0 is applied.
  function bl.LambdaLR(opt, lr_lambda)
    if type(opt) ~= "userdata" or type(opt.get_lr) ~= "function" then
      error("LambdaLR: argument #1 must be an optimizer (bl.AdamW), got " .. type(opt), 2)
    end
    if type(lr_lambda) ~= "function" then
      error("LambdaLR: argument #2 must be a function of the step, got " .. type(lr_lambda), 2)
    end
    local s = setmetatable({ optimizer = opt, lr_lambda = lr_lambda, base_lr = opt:get_lr(), last_epoch = 0 }, Sched)
    s:_apply()
    return s
  end

  function Sched:_apply()
    local lr = self.base_lr * self.lr_lambda(self.last_epoch)
    self.optimizer:set_lr(lr)
    self.last_lr = lr
  end

  -- sched:step(): advances one step and sets the optimizer's lr.
  function Sched:step()
    self.last_epoch = self.last_epoch + 1
    self:_apply()
  end

  -- sched:get_last_lr(): the lr last set (a number; torch returns a one-element list per group).
  function Sched:get_last_lr() return self.last_lr end

  local function check_count(v, what, fn)
    if math.type(v) ~= "integer" then
      if type(v) == "number" and v == math.floor(v) then return math.tointeger(v) end
      error(("%s: %s must be an integer, got %s"):format(fn, what, tostring(v)), 3)
    end
    if v < 0 then error(("%s: %s must be >= 0, got %d"):format(fn, what, v), 3) end
    return v
  end

  -- bl.get_linear_schedule_with_warmup(opt, warmup_steps, total_steps), as transformers.
  function bl.get_linear_schedule_with_warmup(opt, warmup, total)
    local fn = "get_linear_schedule_with_warmup"
    warmup = check_count(warmup, "num_warmup_steps", fn)
    total = check_count(total, "num_training_steps", fn)
    return bl.LambdaLR(opt, function(s)
      if s < warmup then return s / math.max(1, warmup) end
      return math.max(0.0, (total - s) / math.max(1, total - warmup))
    end)
  end

  -- bl.get_constant_schedule(opt): lr stays at its initial value (for ablations without decay).
  function bl.get_constant_schedule(opt)
    return bl.LambdaLR(opt, function() return 1.0 end)
  end

  ---------------------------------------------------------------------------------------------------
  -- Softmax (over the last dimension of a float tensor; small inputs: prediction scripts)
  ---------------------------------------------------------------------------------------------------
  local function softmax_row(row)
    local mx = -math.huge
    for i = 1, #row do if row[i] > mx then mx = row[i] end end
    local out, sum = {}, 0.0
    for i = 1, #row do out[i] = math.exp(row[i] - mx); sum = sum + out[i] end
    for i = 1, #row do out[i] = out[i] / sum end
    return out
  end

  -- bl.softmax(t[, dim]): softmax over the last dimension (dim may be -1 or t:dim()); a new tensor.
  function bl.softmax(t, dim)
    if not bl.is_tensor(t) then error("softmax: argument #1 must be a tensor, got " .. type(t), 2) end
    local nd = t:dim()
    if nd < 1 or nd > 2 then error(("softmax: expected a 1-D or 2-D tensor, got %d dimensions"):format(nd), 2) end
    dim = dim or -1
    if dim ~= -1 and dim ~= nd then
      error(("softmax: only the last dimension is supported (dim=-1 or %d), got %s"):format(nd, tostring(dim)), 2)
    end
    if t:dtype() ~= "float32" then t = t:to("float32") end
    local v = t:totable()
    if nd == 1 then return bl.tensor(softmax_row(v), "float32") end
    local rows = {}
    for i = 1, #v do rows[i] = softmax_row(v[i]) end
    return bl.tensor(rows, "float32")
  end

  ---------------------------------------------------------------------------------------------------
  -- Data preparation (the tutorial's steps, generic in the column names)
  ---------------------------------------------------------------------------------------------------

  -- The text and label columns of one CSV file; errors name the file and the row.
  local function read_columns(path, text_col, label_col)
    if not bl.file_exists(path) then error(("data file '%s' not found"):format(path), 0) end
    local df = bl.read_csv(path)
    local ok, texts = pcall(df.column, df, text_col)
    if not ok then error(("%s (choose one with --text-column)"):format(texts), 0) end
    local ok2, classes = pcall(df.column, df, label_col)
    if not ok2 then error(("%s (choose one with --label-column)"):format(classes), 0) end
    for i, c in ipairs(classes) do
      if c == "" then error(("%s: data row %d has an empty label in column '%s'"):format(path, i, label_col), 0) end
    end
    if #texts == 0 then error(("%s: no data rows"):format(path), 0) end
    return texts, classes
  end

  local function quoted_list(names)
    local q = {}
    for i, n in ipairs(names) do q[i] = "'" .. n .. "'" end
    return table.concat(q, ", ")
  end

  -- bl.load_text_classification(csv, {text_column="Title", label_column="Conference",
  --   test_size=0.15, split_seed=42, limit=, val_limit=, val_data=, labels=, val_rows=, all_rows=})
  --   → {names=, id2label=, label_dict=, n=, train={texts=, labels=, rows=}, val={...}, split=}
  -- Class ids follow first appearance (pandas' unique(), as the tutorial) unless `labels` fixes them
  -- (names in id order, e.g. a checkpoint's id2label: a label outside them is an error). The split
  -- is stratified on those ids (sklearn sorts the classes of `stratify`, so ids and names differ);
  -- `val_data` takes the validation rows from another file instead; `val_rows` (1-based data rows)
  -- reuses a recorded split; `all_rows` puts every row in `val` (evaluating another file).
  -- `text`/`label`/`random_state` are accepted for text_column/label_column/split_seed.
  local LTC_OPTS = { text_column = true, label_column = true, text = true, label = true, test_size = true,
                     split_seed = true, random_state = true, limit = true, val_limit = true, val_data = true,
                     labels = true, val_rows = true, all_rows = true, train_rows = true }

  function bl.load_text_classification(path, opts)
    local fn = "load_text_classification"
    opts = opts or {}
    for k in pairs(opts) do
      if not LTC_OPTS[k] then error(("%s: unknown option '%s'"):format(fn, tostring(k)), 2) end
    end
    local text_col = opts.text_column or opts.text or "Title"
    local label_col = opts.label_column or opts.label or "Conference"
    local test_size = opts.test_size or 0.15
    -- "--test-size 30" arrives as 30.0: a whole number of rows, as scikit-learn's int test_size
    if math.type(test_size) == "float" and test_size >= 1 and test_size == math.floor(test_size) then
      test_size = math.tointeger(test_size)
    end
    local seed = opts.split_seed or opts.random_state or 42
    if opts.train_rows and not opts.val_rows then error(fn .. ": train_rows needs val_rows", 2) end
    local ok, texts, classes = pcall(read_columns, path, text_col, label_col)
    if not ok then error(fn .. ": " .. texts, 2) end
    local names, label_dict, fixed = {}, {}, opts.labels ~= nil
    if fixed then
      for i, name in ipairs(opts.labels) do names[i] = tostring(name); label_dict[names[i]] = i - 1 end
    end
    local function number(list, file)
      local ids = {}
      for i, c in ipairs(list) do
        if label_dict[c] == nil then
          if fixed then
            error(("%s: %s: data row %d has label '%s' (column '%s'), which is not one of the model's labels %s")
              :format(fn, file, i, c, label_col, quoted_list(names)), 3)
          end
          label_dict[c] = #names
          names[#names + 1] = c
        end
        ids[i] = label_dict[c]
      end
      return ids
    end
    local ids = number(classes, path)
    local n = #texts
    local split = { text_column = text_col, label_column = label_col, limit = opts.limit, val_limit = opts.val_limit }
    local train_idx, val_idx
    local vtexts, vids = texts, ids
    if opts.all_rows then
      split.method = "all rows"
      train_idx, val_idx = {}, {}
      for i = 1, n do val_idx[i] = i end
    elseif opts.val_data then
      split.method = "validation file"
      split.val_data = opts.val_data
      local ok2, vt, vc = pcall(read_columns, opts.val_data, text_col, label_col)
      if not ok2 then error(fn .. ": " .. vt, 2) end
      fixed = true -- a validation label the training data lacks cannot be learnt
      vtexts, vids = vt, number(vc, opts.val_data)
      train_idx, val_idx = {}, {}
      for i = 1, n do train_idx[i] = i end
      for i = 1, #vt do val_idx[i] = i end
    elseif opts.val_rows then
      split.method = "recorded rows"
      local is_val = {}
      val_idx = {}
      for k, r in ipairs(opts.val_rows) do
        if math.type(r) ~= "integer" or r < 1 or r > n then
          error(("%s: validation row %s is outside %s's %d data rows"):format(fn, tostring(r), path, n), 2)
        end
        is_val[r], val_idx[k] = true, r
      end
      train_idx = {}
      for i = 1, n do if not is_val[i] then train_idx[#train_idx + 1] = i end end
      if opts.train_rows then -- both given (a cross-validation fold): exactly those rows train
        train_idx = {}
        for k, r in ipairs(opts.train_rows) do
          if math.type(r) ~= "integer" or r < 1 or r > n or is_val[r] then
            error(("%s: training row %s is outside %s's %d data rows or a validation row"):format(fn, tostring(r), path, n), 2)
          end
          train_idx[k] = r
        end
      end
      table.sort(val_idx)
    else
      split.method = "stratified"
      split.test_size, split.split_seed = test_size, seed
      local oks, tr, va = pcall(bl.train_test_split, n, { test_size = test_size, random_state = seed, stratify = ids })
      if not oks then error(("%s: %s: cannot split %d rows with test_size %s: %s"):format(fn, path, n,
        tostring(test_size), tostring(tr):gsub("^[^:]*:%d+: ", "")), 2) end
      train_idx, val_idx = tr, va
      -- the tutorial selects df[df.data_type == 'train'], i.e. rows in file order
      table.sort(train_idx)
      table.sort(val_idx)
    end
    for key, idx in pairs({ limit = train_idx, val_limit = val_idx }) do
      local lim = opts[key]
      if lim ~= nil then
        if math.type(lim) ~= "integer" or lim < 1 then
          error(("%s: %s must be a positive integer, got %s"):format(fn, key, tostring(lim)), 2)
        end
        while #idx > lim do idx[#idx] = nil end
      end
    end
    split.train_rows, split.val_rows = train_idx, val_idx
    local function subset(idx, tx, ys)
      local s = { texts = {}, labels = {}, rows = idx }
      for k, r in ipairs(idx) do s.texts[k] = tx[r]; s.labels[k] = ys[r] end
      return s
    end
    local id2name = {}
    for i, nm in ipairs(names) do id2name[i - 1] = nm end
    return { names = names, id2label = id2name, label_dict = label_dict, n = n, val_n = #vtexts,
             text_column = text_col, label_column = label_col, split = split,
             train = subset(train_idx, texts, ids), val = subset(val_idx, vtexts, vids) }
  end

  -- bl.encode_dataset(tok, texts, labels, {max_length=256, pad="longest"|"max_length"})
  --   → TensorDataset(input_ids, attention_mask, labels)
  function bl.encode_dataset(tok, texts, labels, opts)
    opts = opts or {}
    local pad = opts.pad or "longest"
    if pad ~= "longest" and pad ~= "max_length" then
      error("encode_dataset: pad must be \"longest\" or \"max_length\", got " .. tostring(pad), 2)
    end
    local enc = tok:batch_encode_plus(texts, {
      add_special_tokens = true, return_attention_mask = true, padding = pad,
      max_length = opts.max_length or 256, truncation = true })
    return bl.TensorDataset(enc.input_ids, enc.attention_mask, bl.tensor(labels, "int64"))
  end

  ---------------------------------------------------------------------------------------------------
  -- Training and evaluation loops
  ---------------------------------------------------------------------------------------------------

  -- grad: false for evaluation (one layer's activations, no backward)
  local function forward_batch(model, batch, grad)
    return model:forward({ input_ids = batch[1], attention_mask = batch[2], labels = batch[3], grad = grad })
  end

  ---------------------------------------------------------------------------------------------------
  -- Data parallel (mpirun/srun: runtime/dist.c). Every process draws the same global order and
  -- global batches of processes x per-process rows; process r takes rows r*per+1 .. (r+1)*per of
  -- each, with the dropout masks those rows get in one process (batch_offset/batch_total).
  ---------------------------------------------------------------------------------------------------
  -- bl.dist_slice(batch, dist) -> this process's rows of a global batch {input_ids, mask, labels}
  -- as forward inputs (or nil when it has none: a short last batch), their count, the batch's rows
  function bl.dist_slice(batch, dist)
    local n = batch[3]:numel()
    local lo, hi = dist.rank * dist.per + 1, math.min((dist.rank + 1) * dist.per, n)
    if hi < lo then return nil, 0, n end
    local rows = {}
    for i = lo, hi do rows[#rows + 1] = i end
    local whole = lo == 1 and hi == n
    return { input_ids = whole and batch[1] or batch[1]:index(rows), attention_mask = whole and batch[2] or batch[2]:index(rows),
             labels = whole and batch[3] or batch[3]:index(rows), batch_offset = lo - 1, batch_total = n }, hi - lo + 1, n, lo
  end

  local SIGNAMES = { [2] = "SIGINT", [15] = "SIGTERM" }
  -- the stop asked for on any process (the first rank's), the same answer on every process
  local function agreed_signal(dist, mine)
    local sig, num = bl.signal_pending()
    if not dist then return sig, num end
    if mine then num = mine end
    local all = bl.dist_allgather({ num or 0 })
    for _, k in ipairs(all) do if k ~= 0 then return SIGNAMES[k] or ("signal " .. k), k end end
    return nil
  end

  -- one data-parallel step's gradients: forward/backward of this process's rows, then the loss,
  -- the NaN verdict and any stop request agreed by all, gradients summed (weighted by rows)
  local function dist_grads(model, batch, dist, opt, clip)
    local inp, cnt, n = bl.dist_slice(batch, dist)
    local out, loss_local = nil, 0.0
    if inp then
      out = model:forward(inp)
      loss_local = out.loss:item()
    end
    -- the loss is a mean over the rows (weighted by class with class weights): each process's
    -- share of the global mean is its rows' weight over the global batch's
    local den = cnt
    if dist.class_weights and inp then
      den = 0.0
      for _, y in ipairs(inp.labels:totable()) do den = den + dist.class_weights[y + 1] end
    end
    local _, num = bl.signal_pending()
    local all = bl.dist_allgather({ loss_local * den, den, bl.isfinite(loss_local) and 0 or 1, num or 0 })
    local sum, rows, bad_any, sig_any = 0.0, 0, 0, 0
    for r = 0, #all // 4 - 1 do -- in rank order: the same sum everywhere
      sum, rows = sum + all[4 * r + 1], rows + all[4 * r + 2]
      bad_any = bad_any + all[4 * r + 3]
      if sig_any == 0 and all[4 * r + 4] ~= 0 then sig_any = all[4 * r + 4] end
    end
    dist.signal = sig_any ~= 0 and sig_any or nil
    local loss = rows > 0 and sum / rows or 0 / 0
    if out then out.logits:free() end
    if bad_any > 0 then return loss, ("the loss is %s (on %d process%s)"):format(tostring(loss), bad_any, bad_any > 1 and "es" or "") end
    if out then out.loss:backward() end
    model:allreduce_grads(rows > 0 and den / rows or 0.0)
    -- a process without rows drew no dropout masks: take rank 0's stream position
    if n <= (dist.size - 1) * dist.per then
      local st = bl.rng_state()
      st.dropout = bl.dist_allgather({ st.dropout })[1]
      bl.set_rng_state(st)
    end
    local norm = opt:clip_grad_norm(clip)
    if not bl.isfinite(norm) then return loss, ("the gradient norm is %s"):format(tostring(norm)) end
    return loss, nil
  end

  local function finite(x) return x == x and x ~= math.huge and x ~= -math.huge end
  bl.isfinite = finite

  -- A training fault (NaN/Inf) or a stop request: an error value that says why and how to exit.
  local Stop = { __tostring = function(e) return e.message end }
  function bl.training_stop(message, fields)
    local e = setmetatable({ message = message }, Stop)
    for k, v in pairs(fields or {}) do e[k] = v end
    return e
  end
  function bl.is_training_stop(e) return getmetatable(e) == Stop end

  -- bl.train_epoch(model, loader, opt, sched, {clip=1.0, desc=, progress=true, out=io.stderr,
  --   on_step=fn(count, loss), on_nan="stop"|"skip", max_nan_skips=0, epoch=, step=, resume=,
  --   after_step=fn(info)}) → mean training loss (mean of the batch losses, as the tutorial), info
  -- A NaN or Inf loss or gradient norm is found before the optimizer step, so the weights stay as
  -- they were: "stop" raises a training stop naming the epoch and step; "skip" leaves the step out
  -- and raises only after more than max_nan_skips of them (in the run). resume: {order=, start=,
  -- loss_sum=, nan_skips=} continues an epoch that a training state recorded. after_step(info) runs
  -- after each step (info: batch, step, loss_sum, nan_skips); returning true ends the epoch early
  -- (info.stopped = true). info: batches (done), loss_sum, count (losses summed), nan_skips, stopped.
  function bl.train_epoch(model, loader, opt, sched, opts)
    opts = opts or {}
    model:train()
    local nb = #loader
    local on_nan = opts.on_nan or "stop"
    if on_nan ~= "stop" and on_nan ~= "skip" then
      error(("train_epoch: on_nan must be \"stop\" or \"skip\", got %s"):format(tostring(on_nan)), 2)
    end
    local max_skips = opts.max_nan_skips or 0
    local r = opts.resume or {}
    local info = { batches = r.start or 0, loss_sum = r.loss_sum or 0.0, count = r.count or r.start or 0,
                   nan_skips = r.nan_skips or 0, step = opts.step or 0, stopped = false }
    local bar = opts.progress ~= false and bl.progress(nb, { desc = opts.desc, out = opts.out }) or nil
    if bar and info.batches > 0 then bar:update(info.batches) end
    local where = function()
      return ("epoch %s, step %d (batch %d of %d)"):format(tostring(opts.epoch or "?"), info.step + 1, info.batches + 1, nb)
    end
    local iter = loader:iter(r.order and { order = r.order, start = r.start or 0 } or nil)
    local clip = opts.clip ~= false and (opts.clip or 1.0) or math.huge
    local dist = opts.dist
    for batch in iter do
      model:zero_grad()
      local loss, bad
      if dist then
        loss, bad = dist_grads(model, batch, dist, opt, clip)
      else
        local out = forward_batch(model, batch)
        loss = out.loss:item()
        if not finite(loss) then
          bad = ("the loss is %s"):format(tostring(loss))
        else
          out.loss:backward()
          -- (the optimizer's clip: on the CPU the scaling happens inside opt:step, in the same pass)
          local norm = opt:clip_grad_norm(clip)
          if not finite(norm) then bad = ("the gradient norm is %s"):format(tostring(norm)) end
        end
        out.logits:free()
      end
      if bad then
        if on_nan == "stop" then
          error(bl.training_stop(("training stopped: %s at %s; this step was not applied%s"):format(bad, where(),
            opts.last_good and ("; the last good state is " .. opts.last_good .. " (untouched)") or ""),
            { nan = true, epoch = opts.epoch, step = info.step + 1 }), 2)
        end
        info.nan_skips = info.nan_skips + 1
        if info.nan_skips > max_skips then
          error(bl.training_stop(("training stopped: %s at %s, %d NaN/Inf steps skipped (more than --max-nan-skips %d)%s")
            :format(bad, where(), info.nan_skips, max_skips,
              opts.last_good and ("; the last good state is " .. opts.last_good .. " (untouched)") or ""),
            { nan = true, epoch = opts.epoch, step = info.step + 1 }), 2)
        end
        model:zero_grad()
        info.batches = info.batches + 1
        if opts.log then opts.log(("skipped %s (%s; %d skipped so far)"):format(where(), bad, info.nan_skips)) end
      else
        opt:step()
        if sched then sched:step() end
        info.loss_sum, info.count = info.loss_sum + loss, info.count + 1
        info.batches = info.batches + 1
        info.step = info.step + 1
        if opts.on_step then opts.on_step(info.count, loss) end
      end
      if bar then bar:update(1, { loss = loss }) end
      if opts.after_step and opts.after_step(info) then info.stopped = true break end
    end
    if bar then bar:close() end
    if info.count == 0 and not info.stopped then error("train_epoch: the data loader yielded no batch", 2) end
    return info.count > 0 and info.loss_sum / info.count or 0 / 0, info
  end

  -- bl.evaluate(model, loader[, {progress=false, desc="Validation", out=io.stderr}])
  --   → {loss=, preds=, labels=, f1=, accuracy=, f1_macro=}
  -- loss: the mean over samples (independent of the batch size; equal to the tutorial's mean of
  -- batch means when every batch is full). progress: a bar over the batches.
  function bl.evaluate(model, loader, opts)
    opts = opts or {}
    if type(opts) ~= "table" then error("evaluate: argument #3 must be an options table, got " .. type(opts), 2) end
    model:eval()
    -- the validation loss is the plain mean (comparable across class_weights); training's is weighted
    local cw = model:class_weights()
    if cw then model:set_class_weights(nil) end
    local sum, n = 0.0, 0
    local preds, trues = {}, {}
    local bar = opts.progress and bl.progress(#loader, { desc = opts.desc or "Validation", out = opts.out }) or nil
    local dist = opts.dist
    local mine = dist and {} or nil -- data parallel: (row, pred, label, loss) of this process's rows
    local seen = 0
    for batch in loader:iter() do
      if dist then
        local inp, cnt, nb, lo = bl.dist_slice(batch, dist)
        if inp then
          inp.grad = false
          local out = model:forward(inp)
          local p, t, l = out.logits:argmax(2):totable(), inp.labels:totable(), out.loss:item()
          for i = 1, cnt do
            mine[#mine + 1] = seen + lo + i - 1; mine[#mine + 1] = p[i]; mine[#mine + 1] = t[i]
            mine[#mine + 1] = i == 1 and l * cnt or 0
          end
          out.logits:free()
        end
        seen = seen + nb
      else
        local out = forward_batch(model, batch, false)
        local b = batch[3]:numel()
        sum = sum + out.loss:item() * b
        n = n + b
        local p = out.logits:argmax(2):totable()
        local t = batch[3]:totable()
        for i = 1, #p do preds[#preds + 1] = p[i]; trues[#trues + 1] = t[i] end
        out.logits:free()
      end
      if bar then bar:update(1) end
    end
    if bar then bar:close() end
    if dist then -- every process's rows, back in the loader's order; the loss summed in that order
      local all = bl.dist_allgather(mine)
      local by_row = {}
      for k = 1, #all, 4 do by_row[all[k]] = k end
      for row = 1, seen do
        local k = by_row[row]
        if not k then error(("evaluate: row %d of %d was evaluated by no process"):format(row, seen), 2) end
        preds[row], trues[row] = all[k + 1], all[k + 2]
        sum = sum + all[k + 3]
      end
      n = seen
    end
    if cw then model:set_class_weights(cw) end
    if n == 0 then error("evaluate: the data loader yielded no batch", 2) end
    return { loss = sum / n, preds = preds, labels = trues,
             f1 = bl.f1_score(preds, trues, { average = "weighted" }), accuracy = bl.accuracy(preds, trues),
             f1_macro = bl.f1_score(preds, trues, { average = "macro" }) }
  end

  ---------------------------------------------------------------------------------------------------
  -- Results files
  ---------------------------------------------------------------------------------------------------
  local CSV_COLS = { "epoch", "train_loss", "val_loss", "val_f1", "val_accuracy", "lr", "seconds", "checkpoint" }

  -- bl.results_csv(rows): the per-epoch results as CSV text (header + one line per epoch).
  function bl.results_csv(rows)
    local lines = { table.concat(CSV_COLS, ",") }
    for _, r in ipairs(rows) do
      local f = {}
      for i, c in ipairs(CSV_COLS) do
        local v = r[c]
        if math.type(v) == "float" then v = ("%.10g"):format(v) end
        f[i] = v == nil and "" or tostring(v)
      end
      lines[#lines + 1] = table.concat(f, ",")
    end
    return table.concat(lines, "\n") .. "\n"
  end

  -- bl.results_svg (chart.svg) is in lua/bertlab/chart.lua.

  ---------------------------------------------------------------------------------------------------
  -- The experiment
  ---------------------------------------------------------------------------------------------------
  local DEFAULTS = {
    model = "models/all-MiniLM-L6-v2", data = "data/title_conference.csv", text_column = "Title",
    label_column = "Conference", epochs = 5, batch_size = 3, val_batch_size = 32, lr = 1e-5, eps = 1e-8,
    weight_decay = 0.0, max_length = 256, pad = "longest", seed = 17, device = "cpu", warmup = 0, clip = 1.0,
    test_size = 0.15, split_seed = 42, save = "all", progress = true,
    class_weights = "none", sampler = "random",
  }
  bl.EXPERIMENT_DEFAULTS = DEFAULTS

  local function rm_rf(path) bl.remove_tree(path) end

  -- bl.save_checkpoint(model, dir): saves a whole checkpoint folder atomically: the files are
  -- written into a hidden sibling folder, which is then renamed to `dir`; an existing checkpoint is
  -- never overwritten, and a run killed mid-save leaves no folder named `dir`.
  function bl.save_checkpoint(model, dir)
    if type(dir) ~= "string" or dir == "" then
      error("save_checkpoint: argument #2 must be a folder path, got " .. type(dir), 2)
    end
    if bl.file_exists(dir .. "/config.json") or bl.file_exists(dir .. "/model.safetensors") then
      error(("save_checkpoint: checkpoint '%s' already exists; refusing to overwrite it"):format(dir), 2)
    end
    local parent, name = dir:match("^(.*)/([^/]+)/*$")
    if not parent then parent, name = ".", dir end
    local okw, ss = bl.weights_finite(model)
    if not okw then
      error(("save_checkpoint: the model's weights hold NaN or Inf (sum of squares %s); '%s' was not saved"):format(
        tostring(ss), dir), 2)
    end
    local tmp = ("%s/.%s.partial"):format(parent, name)
    rm_rf(tmp)
    local oks, errs = pcall(function() model:save(tmp); bl.fsync_path(tmp) end)
    if not oks then
      rm_rf(tmp)
      error(("save_checkpoint: cannot save '%s': %s (earlier checkpoints are untouched)"):format(dir,
        tostring(errs):gsub("^[^:]*:%d+: ", "")), 2)
    end
    local ok, err = os.rename(tmp, dir)
    if not ok then
      rm_rf(tmp)
      error(("save_checkpoint: cannot move the checkpoint into '%s': %s"):format(dir, err), 2)
    end
    bl.fsync_path(parent)
    return dir
  end

  -- bl.Experiment(opts) → exp: the bookkeeping of one fine-tuning run, in steps that a script
  -- calls in the tutorial's order (experiments/conference.lua; bl.run_experiment calls the same
  -- steps): options checked and resolved (exp.o; with resume, the recipe comes from run.json),
  -- exp:load_data() (reads and splits, writes run.json), exp:start{model=, optimizer=, scheduler=,
  -- train_loader=, val_loader=} (restores a training state when resuming), `for epoch in
  -- exp:epochs()` with exp:train_epoch(epoch) and exp:end_epoch(epoch, loss, ev, info) (checkpoints,
  -- training states, results files, Ctrl-C), exp:checkpoint(epoch) and exp:finish(final, epoch).
  -- exp:run(fn) runs fn so that a failure is recorded in run.json. See docs/api/train.md.
  local EXTRA_OPTIONS = { limit = true, val_limit = true, out = true, eval_epoch = true, log = true, on_epoch = true,
                          per_class = true, quiet = true, quiet_model = true, progress_out = true, threads = true,
                          val_data = true, name = true, script = true, argv = true, record = true, resume = true,
                          save_every = true, on_nan = true, max_nan_skips = true, trap_signals = true,
                          resume_command = true, on_step = true, keep_state = true, train_rows = true, val_rows = true }
  local ALIASES = { text = "text_column", label = "label_column", random_state = "split_seed" }
  -- what a resumed run takes from its run.json (the recipe; not where to print or how fast)
  local RECORDED = { limit = true, val_limit = true, val_data = true, eval_epoch = true, name = true,
                     save_every = true, on_nan = true, max_nan_skips = true, script = true, train_rows = true, val_rows = true }
  local NOT_RECORDED = { progress = true, out = true, quiet = true, threads = true, device = true }

  local Exp = {}
  Exp.__index = Exp
  Exp.__name = "bertlab.Experiment"

  -- options: merged with the defaults, checked; errors are raised at `level` as "<fn>: ..."
  local function new_experiment(opts, fn, level)
    level = level + 1
    local function fail(msg) error(fn .. ": " .. msg, level) end
    local function pos_int(v, what)
      if math.type(v) ~= "integer" or v < 1 then fail(("%s must be a positive integer, got %s"):format(what, tostring(v))) end
    end
    if opts ~= nil and type(opts) ~= "table" then fail("argument #1 must be an options table") end
    local o = {}
    for k, v in pairs(DEFAULTS) do o[k] = v end
    for k, v in pairs(opts or {}) do
      local key = ALIASES[k] or k
      if DEFAULTS[key] == nil and not EXTRA_OPTIONS[key] then fail(("unknown option '%s'"):format(tostring(k))) end
      if ALIASES[k] and opts[key] ~= nil and opts[key] ~= v then
        fail(("options '%s' and '%s' disagree"):format(k, key))
      end
      o[key] = v
    end
    -- data parallel (mpirun/srun): this process's rank among nproc; rank 0 alone writes and prints
    local nproc = bl.dist_init()
    local rank = bl.dist_rank()
    local writer = rank == 0
    local log = (not writer and function() end) or o.log or function(s) io.stdout:write(s, "\n"); io.stdout:flush() end
    if not writer then o.progress = false end
    if nproc > 1 and o.out ~= nil then -- one folder for all (a default name may hold each one's clock)
      o.out = bl.dist_bcast(tostring(o.out))
    end
    if nproc > 1 and o.resume ~= nil then o.resume = bl.dist_bcast(tostring(o.resume)) end
    -- resume: the run folder (or its state folder); the recipe comes from its run.json
    local resume_rec
    if o.resume ~= nil then
      if type(o.resume) ~= "string" or o.resume == "" then fail("resume must be a run folder") end
      local rdir = o.resume:gsub("/+$", "")
      if rdir:match("/state$") or rdir:match("/%.state%.old$") then rdir = rdir:match("^(.*)/[^/]+$") end
      if not bl.file_exists(rdir .. "/run.json") then
        fail(("cannot resume '%s': no run.json there (not a run folder)"):format(rdir))
      end
      if o.out ~= nil and o.out:gsub("/+$", "") ~= rdir then
        fail(("resume '%s' and out '%s' disagree (a run resumes in its own folder)"):format(rdir, o.out))
      end
      local okj, rec = pcall(bl.read_json, rdir .. "/run.json")
      if not okj then fail("cannot resume: " .. tostring(rec):gsub("^[^:]*:%d+: ", "")) end
      if rec.status == "done" then
        fail(("the run in '%s' is finished (run.json status done); nothing to resume"):format(rdir))
      end
      for k, v in pairs(rec.options or {}) do
        if (opts or {})[k] == nil and not NOT_RECORDED[k] and (DEFAULTS[k] ~= nil or RECORDED[k]) then o[k] = v end
      end
      o.out, resume_rec = rdir, rec
    end
    if o.device ~= "cpu" then
      if o.device == "cuda" then
        if not bl.cuda_available() then
          fail("--device cuda is not available yet here (CUDA is not available: " .. bl.cuda_describe() .. ")")
        end
      else
        fail("unknown device '" .. tostring(o.device) .. "' (expected cpu or cuda)")
      end
    end
    for _, k in ipairs({ "epochs", "batch_size", "val_batch_size", "max_length" }) do pos_int(o[k], k) end
    for _, k in ipairs({ "limit", "val_limit", "save_every" }) do if o[k] ~= nil then pos_int(o[k], k) end end
    if o.on_nan ~= nil and o.on_nan ~= "stop" and o.on_nan ~= "skip" then
      fail(("on_nan must be \"stop\" or \"skip\", got %s"):format(tostring(o.on_nan)))
    end
    if o.max_nan_skips ~= nil and (math.type(o.max_nan_skips) ~= "integer" or o.max_nan_skips < 0) then
      fail("max_nan_skips must be a non-negative integer, got " .. tostring(o.max_nan_skips))
    end
    if type(o.lr) ~= "number" or not (o.lr >= 0) or o.lr == math.huge then
      fail("lr must be a finite number >= 0, got " .. tostring(o.lr))
    end
    if math.type(o.warmup) ~= "integer" or o.warmup < 0 then
      fail("warmup must be a non-negative integer, got " .. tostring(o.warmup))
    end
    local okm, mode = pcall(bl.save_mode, o.save)
    if not okm then fail(tostring(mode):gsub("^[^:]*:%d+: ", "")) end
    o.save = mode
    if type(o.test_size) ~= "number" or o.test_size <= 0 or (o.test_size >= 1 and o.test_size ~= math.floor(o.test_size)) then
      fail(("test_size must be a fraction in (0, 1) or a row count, got %s"):format(tostring(o.test_size)))
    end
    if math.type(o.split_seed) ~= "integer" then fail("split_seed must be an integer, got " .. tostring(o.split_seed)) end
    if o.eval_epoch ~= nil and (math.type(o.eval_epoch) ~= "integer" or o.eval_epoch < 1 or o.eval_epoch > o.epochs) then
      fail(("eval_epoch must be between 1 and %d, got %s"):format(o.epochs, tostring(o.eval_epoch)))
    end
    if o.eval_epoch ~= nil and o.eval_epoch ~= o.epochs and not (o.out and o.save == "all") then
      fail("eval_epoch needs every epoch's checkpoint (an out folder and save=\"all\")")
    end
    if (o.save_every or o.resume) and not o.out then
      fail("save_every and resume need an out folder (where the training state is kept)")
    end
    if nproc > 1 and o.device ~= "cpu" and not bl.dist_have_nccl() then
      fail(("a data-parallel run (%d processes) on %s needs NCCL, which this build lacks (nccl.h and libnccl beside nvcc); use --device cpu")
        :format(nproc, tostring(o.device)))
    end
    for _, k in ipairs({ "data", "val_data" }) do
      if o[k] ~= nil and not bl.file_exists(o[k]) then
        fail(("%s file '%s' not found%s"):format(k, o[k], o[k] == DEFAULTS.data and " (run `make data`)" or ""))
      end
    end
    if not (bl.file_exists(o.model .. "/config.json") and bl.file_exists(o.model .. "/vocab.txt")) then
      fail(("model folder '%s' not found or incomplete (needs config.json, model.safetensors, vocab.txt; run `make model`)"):format(o.model))
    end
    local out = o.out
    if out and not resume_rec and writer then
      if bl.file_exists(out .. "/results.jsonl") or bl.file_exists(out .. "/run.json") then
        fail(("'%s' already holds a run (run.json, results.jsonl); choose another --out, or continue it with --resume %s")
          :format(out, out))
      end
      bl.mkdir_p(out)
    end
    if o.threads ~= nil then
      if math.type(o.threads) ~= "integer" or o.threads < 1 then
        fail("threads must be a positive integer, got " .. tostring(o.threads))
      end
      bl.set_num_threads(o.threads)
    end
    local name = o.name or (out and out:gsub("/+$", ""):match("([^/]+)$")) or "run"
    local dist = nproc > 1 and { rank = rank, size = nproc, per = o.batch_size } or nil
    local eval_dist = nproc > 1 and { rank = rank, size = nproc, per = o.val_batch_size } or nil
    return setmetatable({ o = o, out = out, name = name, fn = fn, log = log, resume_rec = resume_rec,
      world = nproc, rank = rank, writer = writer, dist = dist, eval_dist = eval_dist,
      t_start = bl.now(), rows = {}, step = 0, nan_skips = 0, first_epoch = 1, have_state = false,
      state_dir = out and (out .. "/state") or nil,
      resume_command = o.resume_command or (out and ("bin/bertlab %s --resume %s"):format(
        o.script or "experiments/conference.lua", bl.shell_quote(out))) }, Exp)
  end

  function bl.Experiment(opts) return new_experiment(opts, "Experiment", 2) end

  -- exp:load_data() → d (bl.load_text_classification of the run's options); writes run.json
  function Exp:load_data()
    local o, out = self.o, self.out
    local okd, d = pcall(bl.load_text_classification, o.data, { text_column = o.text_column, label_column = o.label_column,
      test_size = o.test_size, split_seed = o.split_seed, val_data = o.val_data, limit = o.limit, val_limit = o.val_limit,
      train_rows = o.train_rows, val_rows = o.val_rows })
    if not okd then error(self.fn .. ": " .. tostring(d):gsub("^[^:]*:%d+: ", ""):gsub("^load_text_classification: ", ""), 2) end
    if #d.names < 2 then
      error(("%s: %s: column '%s' has a single label ('%s'); a classifier needs two or more"):format(self.fn,
        o.data, o.label_column, tostring(d.names[1])), 2)
    end
    -- class imbalance: the loss's class weights and the sampler, from the training labels
    local okw, class_weights = pcall(bl.resolve_class_weights, o.class_weights, d.train.labels, d.names)
    local oks, sampler, sampler_w = pcall(bl.sampler_weights, o.sampler, d.train.labels)
    if not (okw and oks) then error(self.fn .. ": " .. tostring(okw and sampler or class_weights):gsub("^[^:]*:%d+: ", ""), 2) end
    self.class_weights, self.sampler, self.sampler_weights = class_weights, sampler, sampler_w
    if self.dist then self.dist.class_weights = class_weights end
    if class_weights or sampler ~= "random" then
      local ws = {}
      for i, v in ipairs(class_weights or {}) do ws[i] = ("%s %.4g"):format(d.names[i], v) end
      self.log(("class weights: %s; sampler: %s"):format(class_weights and table.concat(ws, ", ") or "none", sampler))
    end
    local rec
    if not self.writer then
      rec = nil -- rank 0 keeps run.json
    elseif self.resume_rec then
      rec = self.resume_rec
      rec.status, rec.ended, rec.error = "running", bl.json_null, nil
      rec.resumed = type(rec.resumed) == "table" and rec.resumed or {}
      rec.resumed[#rec.resumed + 1] = bl.iso_time()
      bl.write_run_json(out, rec)
    elseif out then
      rec = bl.run_record({ name = self.name, script = o.script, options = o, model = o.model, data = o.data,
        val_data = o.val_data, text_column = d.text_column, label_column = d.label_column, d = d,
        device = o.device, argv = o.argv })
      for k, v in pairs(o.record or {}) do rec[k] = v end
      bl.write_run_json(out, rec)
    end
    self.d, self.record = d, rec
    return d
  end

  -- exp:run(fn) → fn()'s results; with an out folder a failure (or a stop) is recorded in run.json
  function Exp:run(fn)
    local function guarded()
      local res = table.pack(pcall(fn))
      if self.trapped then bl.untrap_signals(); self.trapped = false end
      if not res[1] then error(res[2], 0) end
      return table.unpack(res, 2, res.n)
    end
    if not self.out then return guarded() end
    -- run.json exists only once load_data ran: an earlier failure has nothing to record
    local res = table.pack(pcall(guarded))
    if not res[1] then
      if self.record then return bl.with_run_record(self.out, self.record, function() error(res[2], 0) end) end
      error(res[2], 0)
    end
    return table.unpack(res, 2, res.n)
  end

  -- exp:start{model=, optimizer=, scheduler=, train_loader=, val_loader=} → first epoch to train
  -- (1, or the one after a resumed training state, which is loaded into these objects)
  function Exp:start(parts)
    if type(parts) ~= "table" then error("Experiment:start: argument #1 must be a table of the run's parts", 2) end
    bl.check_options("Experiment:start", parts, { "model", "optimizer", "scheduler", "train_loader", "val_loader" }, 2)
    for _, k in ipairs({ "model", "optimizer", "scheduler", "train_loader" }) do
      if parts[k] == nil then error(("Experiment:start: %s is missing"):format(k), 2) end
    end
    local o, out, log, d = self.o, self.out, self.log, self.d
    if not d then error("Experiment:start: call exp:load_data() first", 2) end
    self.model, self.opt, self.sched, self.train_loader, self.val_loader =
      parts.model, parts.optimizer, parts.scheduler, parts.train_loader, parts.val_loader
    self.nb = #self.train_loader
    self.total_steps = self.nb * o.epochs
    log(("%d training and %d validation titles, %d classes; %d batches of %d per epoch, %d epochs, %d steps%s"):format(
      #d.train.texts, #d.val.texts, #d.names, self.nb, o.batch_size * self.world, o.epochs, self.total_steps,
      self.world > 1 and (" (%d processes x %d)"):format(self.world, o.batch_size) or ""))
    self.keeper = bl.checkpoint_keeper(self.writer and out or nil, o.save)
    self.title, self.subtitle = bl.chart_title(self.name, o)
    if self.resume_rec then self:_resume_state() end
    return self.first_epoch
  end

  function Exp:_resume_state()
    local o, out, log, keeper = self.o, self.out, self.log, self.keeper
    local writer = self.writer
    if writer then
      for _, p in ipairs({ out .. "/.state.partial" }) do
        if bl.is_dir(p) then log(("note: removing %s (an unfinished save)"):format(p)); rm_rf(p) end
      end
    end
    if self.world > 1 then bl.dist_barrier() end
    local sdir, notes = bl.find_state(out)
    for _, n in ipairs(type(notes) == "table" and notes or {}) do log("note: " .. n) end
    local epoch0 = 0
    if sdir then
      local e, st_step, results, st = bl.load_state(sdir, { model = self.model, optimizer = self.opt,
        scheduler = self.sched, loader = self.train_loader })
      if self.world > 1 then bl.dist_barrier() end -- every process has read it before rank 0 moves it
      if writer then
        if sdir ~= self.state_dir then -- take the older state back into place
          rm_rf(self.state_dir)
          os.rename(sdir, self.state_dir)
        end
        local stale = out .. "/.state.old" -- a kill after a save's second rename: superseded
        if bl.is_dir(stale) then
          log(("note: removing %s (the state before the last save)"):format(stale))
          rm_rf(stale)
        end
      end
      epoch0, self.step, self.rows, self.have_state = e, st_step, results, true
      local x = st.extra or {}
      self.nan_skips = x.nan_skips or 0
      local k = x.keeper or {}
      keeper.best_f1 = k.best_f1 or -math.huge
      keeper.best_epoch, keeper.best_checkpoint, keeper.saved = k.best_epoch, k.best_checkpoint, k.saved or {}
      if st.loader then
        self.resume_epoch = { order = st.loader.order, start = st.loader.batch, loss_sum = x.loss_sum, count = x.count,
                              nan_skips = self.nan_skips, lr = x.epoch_lr }
      end
      log(("Resuming %s from %s: %d epochs done, step %d%s"):format(out, sdir, e, st_step,
        st.loader and (" (epoch %d at batch %d of %d)"):format(e + 1, st.loader.batch, self.nb) or ""))
    else
      log(("note: %s has no training state yet; starting from the beginning"):format(out))
    end
    self.first_epoch = epoch0 + 1
    if not writer then return end
    -- what a killed run left after its last state: re-made identically by the epochs to come
    for k = 1, o.epochs do
      local p = ("%s/.epoch_%d.partial"):format(out, k)
      if bl.is_dir(p) then log(("note: removing %s (an unfinished checkpoint)"):format(p)); rm_rf(p) end
      if k > epoch0 and bl.is_dir(("%s/epoch_%d"):format(out, k)) then
        log(("note: removing %s/epoch_%d (saved after the last training state; it is trained again)"):format(out, k))
        rm_rf(("%s/epoch_%d"):format(out, k))
      end
    end
    local lines = {}
    for i, r in ipairs(self.rows) do lines[i] = bl.json_encode(r) end
    bl.write_file_durable(out .. "/results.jsonl", #lines > 0 and (table.concat(lines, "\n") .. "\n") or "")
    if #self.rows > 0 then self:_write_results() end
  end

  function Exp:_write_results()
    bl.write_file(self.out .. "/results.csv", bl.results_csv(self.rows))
    bl.write_file(self.out .. "/chart.svg", bl.results_svg(self.rows, { title = self.title, subtitle = self.subtitle }))
  end

  -- model_from: the checkpoint folder saved from the same weights just before (the epoch's), whose
  -- files the state links instead of writing the weights a second time
  function Exp:_save_state(epochs_done, mid, info, epoch_lr, model_from)
    if not self.state_dir then return end
    if not self.writer then self.have_state = true return end
    local keeper = self.keeper
    bl.save_state(self.state_dir, { model = self.model, optimizer = self.opt, scheduler = self.sched, model_from = model_from,
      loader = mid and self.train_loader or nil, epoch = epochs_done, step = self.step, results = self.rows,
      extra = { loss_sum = mid and info.loss_sum or nil, count = mid and info.count or nil, epoch_lr = mid and epoch_lr or nil,
                nan_skips = self.nan_skips,
                keeper = { best_f1 = keeper.best_f1 > -math.huge and keeper.best_f1 or nil, best_epoch = keeper.best_epoch,
                           best_checkpoint = keeper.best_checkpoint, saved = keeper.saved } } })
    self.have_state = true
  end

  function Exp:_last_good() return self.have_state and self.state_dir or nil end

  function Exp:_stop_for_signal(sig, num, where)
    local msg = ("\nStopped by %s %s; the training state is saved in %s\nContinue with: %s"):format(sig, where,
      self.state_dir, self.resume_command)
    return bl.training_stop(msg, { signal = sig, exit = 128 + num })
  end

  -- for epoch in exp:epochs() do ... end: first_epoch..epochs; with trap_signals and an out folder,
  -- Ctrl-C / SIGTERM during these epochs save a training state and stop (exp:run restores the handlers)
  function Exp:epochs()
    if not self.keeper then error("Experiment:epochs: call exp:start{...} first", 2) end
    local o = self.o
    if self.out and o.trap_signals and not self.trapped then bl.trap_signals(); self.trapped = true end
    if o.progress and not self.run_bar then self.run_bar = bl.run_progress(o.epochs, { out = o.progress_out }) end
    local epoch = self.first_epoch - 1
    return function()
      epoch = epoch + 1
      if epoch <= o.epochs then return epoch end
      if self.trapped then bl.untrap_signals(); self.trapped = false end
      return nil
    end
  end

  -- exp:train_epoch(epoch) → mean training loss, info (bl.train_epoch with the run's options, its
  -- mid-epoch training states and signal stops); the weights are checked for NaN/Inf afterwards
  function Exp:train_epoch(epoch)
    local o, nb = self.o, self.nb
    self.epoch_t0 = bl.now()
    local step0 = self.step -- training time and steps of this process's run (steps/s)
    local r = self.resume_epoch
    self.resume_epoch = nil
    local lr = r and r.lr or self.opt.lr
    self.epoch_lr = lr
    local train_loss, info = bl.train_epoch(self.model, self.train_loader, self.opt, self.sched,
      { clip = o.clip, desc = ("Epoch %d/%d"):format(epoch, o.epochs), progress = o.progress, out = o.progress_out,
        on_nan = o.on_nan, max_nan_skips = o.max_nan_skips, epoch = epoch, step = self.step, dist = self.dist,
        last_good = self:_last_good(), log = self.log, resume = r or { nan_skips = self.nan_skips },
        on_step = o.on_step and function(_, loss) o.on_step(self.model, epoch, self.step + 1, loss) end,
        after_step = function(info)
          self.step, self.nan_skips = info.step, info.nan_skips
          local sig, num = bl.signal_pending()
          if self.dist then -- the stop that every process agreed on in this step's exchange
            num = self.dist.signal
            sig = num and (({ [2] = "SIGINT", [15] = "SIGTERM" })[num] or "signal") or nil
          end
          if info.batches < nb then
            if sig or (o.save_every and info.batches > 0 and self.step % o.save_every == 0) then
              self:_save_state(epoch - 1, true, info, lr)
            end
            if sig then error(self:_stop_for_signal(sig, num, ("in epoch %d after step %d (batch %d of %d)"):format(
              epoch, self.step, info.batches, nb)), 0) end
          end
          return false
        end })
    self.train_seconds = (self.train_seconds or 0) + (bl.now() - self.epoch_t0)
    self.train_steps = (self.train_steps or 0) + (self.step - step0)
    local okw, ss = bl.weights_finite(self.model)
    if not okw then
      local lg = self:_last_good()
      error(bl.training_stop(("training stopped: the weights hold NaN or Inf (sum of squares %s) after epoch %d's last step (step %d); epoch_%d was not saved%s")
        :format(tostring(ss), epoch, self.step, epoch, lg and ("; the last good state is " .. lg .. " (untouched)") or ""),
        { nan = true, epoch = epoch, step = self.step }), 0)
    end
    return train_loss, info
  end

  -- exp:eval_options() → the options of bl.evaluate for the run's validation pass (progress bar)
  function Exp:eval_options()
    return { progress = self.o.progress, desc = "Validation", out = self.o.progress_out, dist = self.eval_dist }
  end

  -- exp:end_epoch(epoch, train_loss, ev, info) → the epoch's row: checkpoint (as --save says),
  -- training state, results.jsonl/.csv, chart.svg, the tutorial's printed lines
  function Exp:end_epoch(epoch, train_loss, ev, info)
    local o, out, keeper = self.o, self.out, self.keeper
    self.last_ev = ev
    local row = { epoch = epoch, train_loss = train_loss, val_loss = ev.loss, val_f1 = ev.f1,
                  val_accuracy = ev.accuracy, val_f1_macro = ev.f1_macro, lr = self.epoch_lr or self.opt.lr,
                  seconds = bl.now() - (self.epoch_t0 or self.t_start) }
    if info and info.nan_skips > 0 then row.nan_skips = info.nan_skips end
    row.checkpoint = keeper:epoch_end(self.model, epoch, ev.f1)
    local rows = self.rows
    rows[#rows + 1] = row
    if o.save == "best" then -- only the best epoch's checkpoint is left
      for _, rr in ipairs(rows) do if rr.checkpoint ~= keeper.best_checkpoint then rr.checkpoint = nil end end
    end
    self:_save_state(epoch, false, nil, nil, row.checkpoint and (out .. "/" .. row.checkpoint))
    self.log(("\nEpoch %d\nTraining loss: %.6f\nValidation loss: %.6f\nF1 Score (Weighted): %.6f"):format(
      epoch, train_loss, ev.loss, ev.f1))
    if out and self.writer then
      bl.append_line(out .. "/results.jsonl", bl.json_encode(row))
      self:_write_results()
    end
    if self.run_bar then self.run_bar:epoch_done(epoch) end
    if o.on_epoch then o.on_epoch(row) end
    local sig, num = agreed_signal(self.dist)
    if sig and epoch < o.epochs then
      error(self:_stop_for_signal(sig, num, ("after epoch %d (step %d)"):format(epoch, self.step)), 0)
    end
    return row
  end

  -- exp:best_epoch() → the epoch with the highest weighted F1 (the earliest on ties)
  function Exp:best_epoch() return self.keeper and self.keeper.best_epoch end

  -- exp:checkpoint(epoch) → the folder of that epoch's checkpoint, or nil when none was kept
  function Exp:checkpoint(epoch)
    if not self.out or self.o.save == "none" then return nil end
    if self.world > 1 then bl.dist_barrier() end -- rank 0 saved it: every process reads it
    local path = ("%s/epoch_%d"):format(self.out, epoch)
    if not bl.is_dir(path) then return nil end
    return path
  end

  -- exp:finish(final, epoch) → the run's result table; run.json says done; the training state goes
  -- (unless keep_state). final: bl.evaluate of the reloaded checkpoint (or of the last model).
  function Exp:finish(final, epoch)
    local o, out, rows = self.o, self.out, self.rows
    local result = { epochs = rows, best_epoch = epoch, final = final, out = out, names = self.d.names,
                     id2label = self.d.id2label, train_size = #self.d.train.texts, val_size = #self.d.val.texts,
                     steps = self.total_steps, seconds = bl.now() - self.t_start, model = self.model,
                     tokenizer = self.tokenizer, record = self.record, train_seconds = self.train_seconds or 0,
                     steps_per_second = (self.train_steps or 0) / math.max(self.train_seconds or 0, 1e-9) }
    if out and self.writer then
      bl.finish_run_record(out, self.record, { best_epoch = epoch, best_f1 = rows[self.keeper.best_epoch].val_f1,
        best_checkpoint = o.save ~= "none" and ("epoch_%d"):format(epoch) or bl.json_null,
        final_f1 = final.f1, seconds = result.seconds })
      -- a finished run is not resumed: its state (the moments, and the weights, linked to the last
      -- checkpoint when there is one) goes, after run.json says done (a kill in between leaves a
      -- harmless state)
      if not o.keep_state then bl.remove_tree(self.state_dir) end
    end
    return result
  end

  -- bl.run_experiment(opts) → {epochs={per-epoch rows}, best_epoch=, final=, out=, ...}: the
  -- tutorial's fine-tuning run on any CSV (see docs/api/train.md for every option and the files
  -- written), as experiments/conference.lua spells it out step by step with bl.Experiment.
  function bl.run_experiment(opts)
    local exp = new_experiment(opts, "run_experiment", 2)
    local o, log = exp.o, exp.log
    return exp:run(function()
      bl.seed(o.seed)
      local d = exp:load_data()
      local tok = bl.BertTokenizer.from_pretrained(o.model, { do_lower_case = true })
      exp.tokenizer = tok
      local ds_train = bl.encode_dataset(tok, d.train.texts, d.train.labels, o)
      local ds_val = bl.encode_dataset(tok, d.val.texts, d.val.labels, o)
      local loader_pad = o.pad == "longest" and "longest" or "none"
      -- data parallel: global batches of processes x per-process rows (each process takes its rows)
      local sampler, sampler_w, class_weights = exp.sampler, exp.sampler_weights, exp.class_weights
      local train_loader = bl.DataLoader(ds_train, { batch_size = o.batch_size * exp.world, sampler = sampler, weights = sampler_w,
        pad = loader_pad, mask = 2 })
      local val_loader = bl.DataLoader(ds_val, { batch_size = o.val_batch_size * exp.world, sampler = "sequential", pad = loader_pad, mask = 2 })
      local model = bl.BertForSequenceClassification.from_pretrained(o.model,
        { num_labels = #d.names, id2label = d.id2label, quiet = o.quiet_model ~= false, device = o.device })
      if class_weights then model:set_class_weights(class_weights) end
      local opt = bl.AdamW(model:parameters(), { lr = o.lr, eps = o.eps, weight_decay = o.weight_decay })
      local sched = bl.get_linear_schedule_with_warmup(opt, o.warmup, #train_loader * o.epochs)
      exp:start({ model = model, optimizer = opt, scheduler = sched, train_loader = train_loader, val_loader = val_loader })
      for epoch in exp:epochs() do
        local train_loss, info = exp:train_epoch(epoch)
        local ev = bl.evaluate(model, val_loader, exp:eval_options())
        exp:end_epoch(epoch, train_loss, ev, info)
      end
      -- the best epoch (highest weighted F1, the earliest on ties) or the one asked for
      local best = o.eval_epoch or exp:best_epoch()
      local final
      local path = exp:checkpoint(best)
      if path then
        model:load(path)
        final = bl.evaluate(model, val_loader, { dist = exp.eval_dist })
        final.checkpoint = path
        log(("\nReloaded %s (epoch %d): validation loss %.6f, weighted F1 %.6f, accuracy %.4f"):format(
          path, best, final.loss, final.f1, final.accuracy))
      else
        final = exp.last_ev or bl.evaluate(model, val_loader, { dist = exp.eval_dist }) -- the model as it ended (no checkpoint to reload)
        log(("\nFinal model (epoch %d, no checkpoints saved): weighted F1 %.6f"):format(#exp.rows, final.f1))
      end
      if o.per_class ~= false then
        final.per_class = bl.accuracy_per_class(final.preds, final.labels, d.id2label, { quiet = o.quiet or not exp.writer })
      end
      return exp:finish(final, best)
    end)
  end
end
