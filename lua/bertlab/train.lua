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

  -- bl.load_text_classification(csv, {text="Title", label="Conference", test_size=0.15,
  --   random_state=42, limit=nil}) → {names=, label_dict=, train={texts=, labels=, rows=}, val={...}}
  -- Class ids follow first appearance (pandas' unique(), as the tutorial); the split is stratified
  -- on those integer ids (sklearn sorts the classes of `stratify`, so ids and names differ).
  function bl.load_text_classification(path, opts)
    opts = opts or {}
    local text_col, label_col = opts.text or "Title", opts.label or "Conference"
    local df = bl.read_csv(path)
    local texts, classes = df:column(text_col), df:column(label_col)
    local names, label_dict, ids = {}, {}, {}
    for i, c in ipairs(classes) do
      if label_dict[c] == nil then
        label_dict[c] = #names
        names[#names + 1] = c
      end
      ids[i] = label_dict[c]
    end
    local id2name = {}
    for i, n in ipairs(names) do id2name[i - 1] = n end
    local train_idx, val_idx = bl.train_test_split(#texts, {
      test_size = opts.test_size or 0.15, random_state = opts.random_state or 42, stratify = ids })
    -- the tutorial selects df[df.data_type == 'train'], i.e. rows in file order
    table.sort(train_idx)
    table.sort(val_idx)
    for key, idx in pairs({ limit = train_idx, val_limit = val_idx }) do
      local n = opts[key]
      if n ~= nil then
        if math.type(n) ~= "integer" or n < 1 then
          error(("load_text_classification: %s must be a positive integer, got %s"):format(key, tostring(n)), 2)
        end
        while #idx > n do idx[#idx] = nil end
      end
    end
    local function subset(idx)
      local s = { texts = {}, labels = {}, rows = idx }
      for k, r in ipairs(idx) do s.texts[k] = texts[r]; s.labels[k] = ids[r] end
      return s
    end
    return { names = names, id2label = id2name, label_dict = label_dict, n = #texts,
             train = subset(train_idx), val = subset(val_idx) }
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

  local function forward_batch(model, batch)
    return model:forward({ input_ids = batch[1], attention_mask = batch[2], labels = batch[3] })
  end

  -- bl.train_epoch(model, loader, opt, sched, {clip=1.0, desc=, progress=true, out=io.stderr})
  --   → mean training loss (mean of the batch losses, as the tutorial)
  function bl.train_epoch(model, loader, opt, sched, opts)
    opts = opts or {}
    model:train()
    local params = opt:params()
    local nb = #loader
    local bar = opts.progress ~= false and bl.progress(nb, { desc = opts.desc, out = opts.out }) or nil
    local total, count = 0.0, 0
    for batch in loader:iter() do
      model:zero_grad()
      local out = forward_batch(model, batch)
      local loss = out.loss:item()
      if loss ~= loss then error(("train_epoch: the loss became NaN at batch %d"):format(count + 1), 2) end
      out.loss:backward()
      if opts.clip ~= false then bl.clip_grad_norm(params, opts.clip or 1.0) end
      opt:step()
      if sched then sched:step() end
      total, count = total + loss, count + 1
      if opts.on_step then opts.on_step(count, loss) end
      if bar then bar:update(1, { loss = loss }) end
      out.logits:free()
    end
    if bar then bar:close() end
    if count == 0 then error("train_epoch: the data loader yielded no batch", 2) end
    return total / count
  end

  -- bl.evaluate(model, loader) → {loss=, preds=, labels=, f1=, accuracy=, probs=nil}
  -- loss: the mean over samples (independent of the batch size; equal to the tutorial's mean of
  -- batch means when every batch is full).
  function bl.evaluate(model, loader)
    model:eval()
    local sum, n = 0.0, 0
    local preds, trues = {}, {}
    for batch in loader:iter() do
      local out = forward_batch(model, batch)
      local b = batch[3]:numel()
      sum = sum + out.loss:item() * b
      n = n + b
      local p = out.logits:argmax(2):totable()
      local t = batch[3]:totable()
      for i = 1, #p do preds[#preds + 1] = p[i]; trues[#trues + 1] = t[i] end
      out.logits:free()
    end
    if n == 0 then error("evaluate: the data loader yielded no batch", 2) end
    return { loss = sum / n, preds = preds, labels = trues,
             f1 = bl.f1_score(preds, trues, { average = "weighted" }), accuracy = bl.accuracy(preds, trues) }
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

  local function esc(s) return (tostring(s):gsub("&", "&amp;"):gsub("<", "&lt;"):gsub(">", "&gt;")) end

  -- bl.results_svg(rows, {title=}): a hand-written SVG line chart: training and validation loss
  -- (left axis) and weighted F1 (right axis, 0..1) per epoch.
  function bl.results_svg(rows, opts)
    opts = opts or {}
    local W, H, L, R, Tm, B = 640, 360, 60, 60, 40, 50
    local pw, ph = W - L - R, H - Tm - B
    local n = #rows
    local maxloss = 0
    for _, r in ipairs(rows) do maxloss = math.max(maxloss, r.train_loss or 0, r.val_loss or 0) end
    if maxloss <= 0 then maxloss = 1 end
    maxloss = maxloss * 1.1
    local function x(i) return L + (n > 1 and (i - 1) / (n - 1) or 0.5) * pw end
    local function yl(v) return Tm + ph - v / maxloss * ph end
    local function yf(v) return Tm + ph - v * ph end
    local o = {}
    local function add(fmt, ...) o[#o + 1] = fmt:format(...) end
    add('<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">', W, H, W, H)
    add('<rect width="%d" height="%d" fill="white"/>', W, H)
    add('<text x="%d" y="22" text-anchor="middle" font-size="15">%s</text>', W // 2, esc(opts.title or "Loss and weighted F1 per epoch"))
    add('<rect x="%d" y="%d" width="%d" height="%d" fill="none" stroke="#444"/>', L, Tm, pw, ph)
    for k = 0, 4 do
      local y = Tm + ph - k / 4 * ph
      add('<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#ddd"/>', L, y, L + pw, y)
      add('<text x="%d" y="%.1f" text-anchor="end">%.3g</text>', L - 6, y + 4, maxloss * k / 4)
      add('<text x="%d" y="%.1f">%.2f</text>', L + pw + 6, y + 4, k / 4)
    end
    for i, r in ipairs(rows) do
      add('<text x="%.1f" y="%d" text-anchor="middle">%s</text>', x(i), Tm + ph + 18, esc(r.epoch or i))
    end
    add('<text x="%d" y="%d" text-anchor="middle">epoch</text>', L + pw // 2, H - 12)
    add('<text transform="translate(16,%d) rotate(-90)" text-anchor="middle">loss</text>', Tm + ph // 2)
    add('<text transform="translate(%d,%d) rotate(90)" text-anchor="middle">weighted F1</text>', W - 14, Tm + ph // 2)
    local series = {
      { key = "train_loss", color = "#1f77b4", y = yl, label = "training loss" },
      { key = "val_loss", color = "#ff7f0e", y = yl, label = "validation loss" },
      { key = "val_f1", color = "#2ca02c", y = yf, label = "validation F1" },
    }
    for s, ser in ipairs(series) do
      local pts = {}
      for i, r in ipairs(rows) do
        if r[ser.key] then pts[#pts + 1] = ("%.1f,%.1f"):format(x(i), ser.y(r[ser.key])) end
      end
      if #pts > 1 then add('<polyline fill="none" stroke="%s" stroke-width="2" points="%s"/>', ser.color, table.concat(pts, " ")) end
      for _, pt in ipairs(pts) do
        local px, py = pt:match("([^,]+),(.+)")
        add('<circle cx="%s" cy="%s" r="3" fill="%s"/>', px, py, ser.color)
      end
      local lx = L + 10 + (s - 1) * 150
      add('<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" stroke-width="2"/>', lx, H - 30, lx + 20, H - 30, ser.color)
      add('<text x="%d" y="%d">%s</text>', lx + 25, H - 26, ser.label)
    end
    add("</svg>")
    return table.concat(o, "\n") .. "\n"
  end

  ---------------------------------------------------------------------------------------------------
  -- The experiment
  ---------------------------------------------------------------------------------------------------
  local DEFAULTS = {
    model = "models/all-MiniLM-L6-v2", data = "data/title_conference.csv", epochs = 5, batch_size = 3,
    val_batch_size = 32, lr = 1e-5, eps = 1e-8, weight_decay = 0.0, max_length = 256, pad = "longest",
    seed = 17, device = "cpu", warmup = 0, clip = 1.0, test_size = 0.15, random_state = 42, save = true,
    progress = true,
  }
  bl.EXPERIMENT_DEFAULTS = DEFAULTS

  local function rm_rf(path) os.execute("rm -rf " .. bl.shell_quote(path)) end

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
    local tmp = ("%s/.%s.partial"):format(parent, name)
    rm_rf(tmp)
    model:save(tmp)
    local ok, err = os.rename(tmp, dir)
    if not ok then
      rm_rf(tmp)
      error(("save_checkpoint: cannot move the checkpoint into '%s': %s"):format(dir, err), 2)
    end
    return dir
  end

  -- bl.run_experiment(opts) → {epochs={per-epoch rows}, best_epoch=, final=, out=, ...}: the
  -- tutorial's fine-tuning run (see docs/api/train.md for every option and the files written).
  local EXTRA_OPTIONS = { limit = true, val_limit = true, out = true, eval_epoch = true, log = true, on_epoch = true,
                          per_class = true, quiet = true, quiet_model = true, progress_out = true, threads = true }

  function bl.run_experiment(opts)
    if opts ~= nil and type(opts) ~= "table" then error("run_experiment: argument #1 must be an options table", 2) end
    local o = {}
    for k, v in pairs(DEFAULTS) do o[k] = v end
    for k, v in pairs(opts or {}) do
      if DEFAULTS[k] == nil and not EXTRA_OPTIONS[k] then
        error(("run_experiment: unknown option '%s'"):format(tostring(k)), 2)
      end
      o[k] = v
    end
    local log = o.log or function(s) io.stdout:write(s, "\n"); io.stdout:flush() end
    if o.device ~= "cpu" then
      if o.device == "cuda" then
        if not bl.cuda_available() then
          error("run_experiment: --device cuda is not available yet here (CUDA is not available: " .. bl.cuda_describe() .. ")", 2)
        end
      else
        error("run_experiment: unknown device '" .. tostring(o.device) .. "' (expected cpu or cuda)", 2)
      end
    end
    for _, k in ipairs({ "epochs", "batch_size", "val_batch_size", "max_length" }) do
      if math.type(o[k]) ~= "integer" or o[k] < 1 then
        error(("run_experiment: %s must be a positive integer, got %s"):format(k, tostring(o[k])), 2)
      end
    end
    if math.type(o.warmup) ~= "integer" or o.warmup < 0 then
      error("run_experiment: warmup must be a non-negative integer, got " .. tostring(o.warmup), 2)
    end
    if o.eval_epoch ~= nil and (math.type(o.eval_epoch) ~= "integer" or o.eval_epoch < 1 or o.eval_epoch > o.epochs) then
      error(("run_experiment: eval_epoch must be between 1 and %d, got %s"):format(o.epochs, tostring(o.eval_epoch)), 2)
    end
    if o.eval_epoch ~= nil and o.eval_epoch ~= o.epochs and not (o.out and o.save) then
      error("run_experiment: eval_epoch needs checkpoints (an out folder and save=true)", 2)
    end
    if not bl.file_exists(o.data) then
      error(("run_experiment: data file '%s' not found (run `make data`)"):format(o.data), 2)
    end
    if not (bl.file_exists(o.model .. "/config.json") and bl.file_exists(o.model .. "/vocab.txt")) then
      error(("run_experiment: model folder '%s' not found or incomplete (needs config.json, model.safetensors, vocab.txt; run `make model`)"):format(o.model), 2)
    end
    local out = o.out
    if out then
      if bl.file_exists(out .. "/results.jsonl") then
        error(("run_experiment: '%s' already holds a run (results.jsonl); choose another --out"):format(out), 2)
      end
      bl.mkdir_p(out)
    end
    local t_start = bl.now()
    if o.threads ~= nil then
      if math.type(o.threads) ~= "integer" or o.threads < 1 then
        error("run_experiment: threads must be a positive integer, got " .. tostring(o.threads), 2)
      end
      bl.set_num_threads(o.threads)
    end

    bl.seed(o.seed)
    local d = bl.load_text_classification(o.data, { test_size = o.test_size, random_state = o.random_state,
                                                    limit = o.limit, val_limit = o.val_limit })
    local tok = bl.BertTokenizer.from_pretrained(o.model, { do_lower_case = true })
    local ds_train = bl.encode_dataset(tok, d.train.texts, d.train.labels, o)
    local ds_val = bl.encode_dataset(tok, d.val.texts, d.val.labels, o)
    local loader_pad = o.pad == "longest" and "longest" or "none"
    local train_loader = bl.DataLoader(ds_train, { batch_size = o.batch_size, sampler = "random", pad = loader_pad, mask = 2 })
    local val_loader = bl.DataLoader(ds_val, { batch_size = o.val_batch_size, sampler = "sequential", pad = loader_pad, mask = 2 })
    local model = bl.BertForSequenceClassification.from_pretrained(o.model,
      { num_labels = #d.names, id2label = d.id2label, quiet = o.quiet_model ~= false, device = o.device })
    local opt = bl.AdamW(model:parameters(), { lr = o.lr, eps = o.eps, weight_decay = o.weight_decay })
    local total_steps = #train_loader * o.epochs
    local sched = bl.get_linear_schedule_with_warmup(opt, o.warmup, total_steps)
    log(("%d training and %d validation titles, %d classes; %d batches of %d per epoch, %d epochs, %d steps"):format(
      #d.train.texts, #d.val.texts, #d.names, #train_loader, o.batch_size, o.epochs, total_steps))

    local rows, last_ev = {}, nil
    for epoch = 1, o.epochs do
      local t0 = bl.now()
      local lr = opt.lr
      local train_loss = bl.train_epoch(model, train_loader, opt, sched,
        { clip = o.clip, desc = ("Epoch %d"):format(epoch), progress = o.progress, out = o.progress_out })
      local ev = bl.evaluate(model, val_loader)
      last_ev = ev
      local row = { epoch = epoch, train_loss = train_loss, val_loss = ev.loss, val_f1 = ev.f1,
                    val_accuracy = ev.accuracy, lr = lr, seconds = bl.now() - t0 }
      if out and o.save then
        bl.save_checkpoint(model, ("%s/epoch_%d"):format(out, epoch))
        row.checkpoint = ("epoch_%d"):format(epoch)
      end
      rows[#rows + 1] = row
      log(("\nEpoch %d\nTraining loss: %.6f\nValidation loss: %.6f\nF1 Score (Weighted): %.6f"):format(
        epoch, train_loss, ev.loss, ev.f1))
      if out then
        bl.append_line(out .. "/results.jsonl", bl.json_encode(row))
        bl.write_file(out .. "/results.csv", bl.results_csv(rows))
        bl.write_file(out .. "/chart.svg", bl.results_svg(rows))
      end
      if o.on_epoch then o.on_epoch(row) end
    end

    -- the best epoch (highest weighted F1, the earliest on ties) or the one asked for
    local best = 1
    for i, r in ipairs(rows) do if r.val_f1 > rows[best].val_f1 then best = i end end
    if o.eval_epoch then best = o.eval_epoch end
    local final
    if out and o.save then
      local path = ("%s/epoch_%d"):format(out, best)
      model:load(path)
      final = bl.evaluate(model, val_loader)
      final.checkpoint = path
      log(("\nReloaded %s (epoch %d): validation loss %.6f, weighted F1 %.6f, accuracy %.4f"):format(
        path, best, final.loss, final.f1, final.accuracy))
    else
      final = last_ev -- the model as it ended (no checkpoint to reload)
      log(("\nFinal model (epoch %d, no checkpoints saved): weighted F1 %.6f"):format(#rows, final.f1))
    end
    if o.per_class ~= false then
      final.per_class = bl.accuracy_per_class(final.preds, final.labels, d.id2label, { quiet = o.quiet })
    end
    local result = { epochs = rows, best_epoch = best, final = final, out = out, names = d.names,
                     id2label = d.id2label, train_size = #d.train.texts, val_size = #d.val.texts,
                     steps = total_steps, seconds = bl.now() - t_start, model = model, tokenizer = tok }
    return result
  end
end
