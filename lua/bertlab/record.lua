-- bertlab.record: what a run records about itself. run.json (written before training starts and
-- again when it ends) holds every option's value, the command line, bertlab's version and git
-- commit, the model folder and its weights' sha256, the data files' sha256, the label names in id
-- order, the split and its validation rows, threads, device, start and end time; evaluate.lua reads
-- it back. Also JSON decoding (bl.json_decode, bl.read_json) and checkpoint keeping (--save).
return function(bl)
  ---------------------------------------------------------------------------------------------------
  -- JSON decoding (RFC 8259; integers stay Lua integers, null becomes nil)
  ---------------------------------------------------------------------------------------------------
  local UNESC = { ['"'] = '"', ["\\"] = "\\", ["/"] = "/", b = "\b", f = "\f", n = "\n", r = "\r", t = "\t" }

  local function decode_error(src, pos, what)
    local line = select(2, src:sub(1, pos - 1):gsub("\n", "")) + 1
    error(("json_decode: %s at line %d (byte %d)"):format(what, line, pos), 0)
  end

  local decode_value

  local function skip(src, pos) return src:find("[^ \t\r\n]", pos) or #src + 1 end

  local function decode_string(src, pos)
    local out, i = {}, pos + 1
    while true do
      local j = src:find('["\\%c]', i)
      if not j then decode_error(src, pos, "unterminated string") end
      out[#out + 1] = src:sub(i, j - 1)
      local c = src:sub(j, j)
      if c == '"' then return table.concat(out), j + 1 end
      if c ~= "\\" then decode_error(src, j, "control character in a string") end
      local e = src:sub(j + 1, j + 1)
      if e == "u" then
        local hex = src:match("^%x%x%x%x", j + 2)
        if not hex then decode_error(src, j, "bad \\u escape") end
        local cp, nxt = tonumber(hex, 16), j + 6
        if cp >= 0xD800 and cp <= 0xDBFF then
          local lo = src:match("^\\u(%x%x%x%x)", nxt)
          if lo then cp, nxt = 0x10000 + (cp - 0xD800) * 0x400 + (tonumber(lo, 16) - 0xDC00), nxt + 6 end
        end
        out[#out + 1] = utf8.char(cp)
        i = nxt
      elseif UNESC[e] then
        out[#out + 1] = UNESC[e]
        i = j + 2
      else
        decode_error(src, j, "bad escape '\\" .. e .. "'")
      end
    end
  end

  function decode_value(src, pos, depth)
    if depth > 200 then decode_error(src, pos, "nesting too deep") end
    pos = skip(src, pos)
    local c = src:sub(pos, pos)
    if c == "{" then
      local obj = {}
      pos = skip(src, pos + 1)
      if src:sub(pos, pos) == "}" then return obj, pos + 1 end
      while true do
        if src:sub(pos, pos) ~= '"' then decode_error(src, pos, "expected a string key") end
        local k
        k, pos = decode_string(src, pos)
        pos = skip(src, pos)
        if src:sub(pos, pos) ~= ":" then decode_error(src, pos, "expected ':'") end
        obj[k], pos = decode_value(src, pos + 1, depth + 1)
        pos = skip(src, pos)
        local d = src:sub(pos, pos)
        if d == "}" then return obj, pos + 1 end
        if d ~= "," then decode_error(src, pos, "expected ',' or '}'") end
        pos = skip(src, pos + 1)
      end
    elseif c == "[" then
      local arr, n = {}, 0
      pos = skip(src, pos + 1)
      if src:sub(pos, pos) == "]" then return arr, pos + 1 end
      while true do
        n = n + 1
        arr[n], pos = decode_value(src, pos, depth + 1)
        pos = skip(src, pos)
        local d = src:sub(pos, pos)
        if d == "]" then return arr, pos + 1 end
        if d ~= "," then decode_error(src, pos, "expected ',' or ']'") end
        pos = pos + 1
      end
    elseif c == '"' then
      return decode_string(src, pos)
    elseif src:find("^true", pos) then return true, pos + 4
    elseif src:find("^false", pos) then return false, pos + 5
    elseif src:find("^null", pos) then return nil, pos + 4
    else
      local num = src:match("^-?%d+%.?%d*[eE]?[-+]?%d*", pos)
      if not num or num == "" or num == "-" then decode_error(src, pos, "unexpected character '" .. c .. "'") end
      local v = tonumber(num)
      if v == nil then decode_error(src, pos, "bad number '" .. num .. "'") end
      return v, pos + #num
    end
  end

  -- bl.json_decode(text) → the value (objects and arrays as tables; null as nil); errors name the
  -- line and byte.
  function bl.json_decode(text)
    if type(text) ~= "string" then error("json_decode: argument #1 must be a string, got " .. type(text), 2) end
    local ok, v, pos = pcall(decode_value, text, 1, 0)
    if not ok then error(v, 2) end
    pos = skip(text, pos)
    if pos <= #text then
      local ok2, err = pcall(decode_error, text, pos, "trailing characters")
      if not ok2 then error(err, 2) end
    end
    return v
  end

  -- bl.read_json(path) → the decoded file; a missing file or bad JSON is an error naming the file.
  function bl.read_json(path)
    local f, err = io.open(path, "rb")
    if not f then error(("read_json: cannot open '%s': %s"):format(path, err), 2) end
    local text = f:read("a")
    f:close()
    local ok, v = pcall(bl.json_decode, text)
    if not ok then error(("%s: %s"):format(path, tostring(v):gsub("^json_decode: ", "")), 2) end
    return v
  end

  ---------------------------------------------------------------------------------------------------
  -- Provenance
  ---------------------------------------------------------------------------------------------------
  -- bl.iso_time([t]): "2026-12-01T21:30:00Z" (UTC) for os.time() t (default now).
  function bl.iso_time(t) return os.date("!%Y-%m-%dT%H:%M:%SZ", t) end

  -- The folder bertlab's Lua files were loaded from, two levels up (the checkout's root).
  local function source_root()
    local path = package.searchpath("bertlab.record", package.path)
    if not path then return nil end
    return path:match("^(.*)/lua/bertlab/record%.lua$") or path:match("^(.-)/?lua/bertlab/record%.lua$")
  end

  local function shell(cmd)
    local p = io.popen(cmd .. " 2>/dev/null")
    if not p then return nil end
    local out = p:read("a")
    p:close()
    out = out and out:gsub("%s+$", "")
    return out ~= "" and out or nil
  end

  local git_cache
  -- bl.git_commit() → commit, dirty: the commit of bertlab's checkout (git rev-parse HEAD) and
  -- whether tracked files differ from it; "unknown", nil outside a checkout or without git.
  function bl.git_commit()
    if git_cache then return git_cache[1], git_cache[2] end
    local root = source_root()
    local commit, dirty = "unknown", nil
    if root then
      local q = bl.shell_quote(root == "" and "." or root)
      local c = shell("git -C " .. q .. " rev-parse HEAD")
      if c and c:match("^%x+$") then
        commit = c
        dirty = shell("git -C " .. q .. " status --porcelain --untracked-files=no") ~= nil
      end
    end
    git_cache = { commit, dirty }
    return commit, dirty
  end

  -- bl.command_line([argv]) → list, text: the command that ran the script (from the global `arg`:
  -- the interpreter, the script and its arguments), quoted for a shell where needed.
  function bl.command_line(argv)
    argv = argv or arg or {}
    local list = {}
    local lo = 0
    while argv[lo - 1] ~= nil do lo = lo - 1 end
    for i = lo, #argv do list[#list + 1] = tostring(argv[i]) end
    local parts = {}
    for i, a in ipairs(list) do parts[i] = a:match("^[%w%-%./_=,:+@]+$") and a or bl.shell_quote(a) end
    return list, table.concat(parts, " ")
  end

  -- Only values JSON can hold (functions, files and userdata are left out).
  local function plain(v, depth)
    local ty = type(v)
    if ty == "string" or ty == "number" or ty == "boolean" then return v end
    if ty ~= "table" or depth > 4 then return nil end
    local out = {}
    for k, x in pairs(v) do
      if type(k) == "string" or math.type(k) == "integer" then out[k] = plain(x, depth + 1) end
    end
    return out
  end

  -- bl.model_weights(dir) → path of a model folder's weights file (model.safetensors), or nil.
  function bl.model_weights(dir)
    if dir:match("%.safetensors$") then return bl.file_exists(dir) and dir or nil end
    local p = dir .. "/model.safetensors"
    return bl.file_exists(p) and p or nil
  end

  local sha_cache = {}
  local function sha(path)
    if not sha_cache[path] then sha_cache[path] = bl.sha256_file(path) end
    return sha_cache[path]
  end
  bl._sha256_cached = sha

  -- bl.run_record(info) → the run.json table. info: {name=, script=, options= (every option's
  -- value), model=dir, data=path, val_data=path|nil, text_column=, label_column=, d= (from
  -- bl.load_text_classification), device=, argv=}.
  function bl.run_record(info)
    local commit, dirty = bl.git_commit()
    local argv, cmdline = bl.command_line(info.argv)
    local d = info.d
    local weights = bl.model_weights(info.model)
    local rec = {
      format = "bertlab-run/1",
      name = info.name, script = info.script, command = argv, command_line = cmdline,
      bertlab = { version = bl.version, commit = commit, dirty = dirty },
      options = plain(info.options or {}, 0),
      model = { path = info.model, weights = weights, sha256 = weights and sha(weights) or nil },
      data = { path = info.data, sha256 = sha(info.data), rows = d.n,
               text_column = info.text_column, label_column = info.label_column },
      labels = d.names,
      split = d.split,
      train_size = #d.train.texts, val_size = #d.val.texts,
      threads = bl.get_num_threads(), device = info.device or "cpu",
      started = bl.iso_time(), ended = bl.json_null, status = "running",
    }
    if info.val_data then rec.val_data = { path = info.val_data, sha256 = sha(info.val_data), rows = d.val_n } end
    return rec
  end

  -- bl.write_run_json(dir, rec[, name="run.json"]): writes dir/name atomically (one top-level key a line).
  function bl.write_run_json(dir, rec, name)
    local keys = {}
    for k in pairs(rec) do keys[#keys + 1] = k end
    table.sort(keys)
    local lines = {}
    for i, k in ipairs(keys) do
      lines[i] = ("  %s: %s"):format(bl.json_encode(k), bl.json_encode(rec[k]))
    end
    bl.write_file(dir .. "/" .. (name or "run.json"), "{\n" .. table.concat(lines, ",\n") .. "\n}\n")
  end

  -- bl.finish_run_record(dir, rec, fields): sets the end time, status "done" and fields, rewrites run.json.
  function bl.finish_run_record(dir, rec, fields)
    rec.ended = bl.iso_time()
    rec.status = "done"
    for k, v in pairs(fields or {}) do rec[k] = v end
    bl.write_run_json(dir, rec)
  end

  -- bl.with_run_record(dir, rec, fn) → fn()'s results; when fn raises an error, run.json gets
  -- status "failed" ("stopped" for a stop on a signal), the error's text and the end time before
  -- the error goes on.
  function bl.with_run_record(dir, rec, fn)
    local res = table.pack(pcall(fn))
    if not res[1] then
      local stopped = bl.is_training_stop and bl.is_training_stop(res[2]) and res[2].signal
      rec.status, rec.error, rec.ended = stopped and "stopped" or "failed", tostring(res[2]), bl.iso_time()
      pcall(bl.write_run_json, dir, rec)
      error(res[2], 0)
    end
    return table.unpack(res, 2, res.n)
  end

  ---------------------------------------------------------------------------------------------------
  -- Keeping checkpoints: --save all|best|none
  ---------------------------------------------------------------------------------------------------
  local SAVE_MODES = { all = "all", best = "best", none = "none", [true] = "all", [false] = "none" }

  -- bl.save_mode(v) → "all"|"best"|"none" (true and false mean all and none); errors otherwise.
  function bl.save_mode(v)
    local m = SAVE_MODES[v]
    if not m then error(("save must be one of all, best, none, got '%s'"):format(tostring(v)), 2) end
    return m
  end

  local Keeper = {}
  Keeper.__index = Keeper

  -- bl.checkpoint_keeper(out, mode) → k; k:epoch_end(model, epoch, f1) saves out/epoch_N as the mode
  -- says and returns its name or nil: "all" every epoch; "best" only an epoch better than every one
  -- before (the earliest on ties), saved atomically before the previous best is removed, so a complete
  -- best checkpoint exists at every moment; "none" never. k.best_epoch, k.best_checkpoint.
  function bl.checkpoint_keeper(out, mode)
    mode = bl.save_mode(mode)
    return setmetatable({ out = out, mode = mode, best_f1 = -math.huge, saved = {} }, Keeper)
  end

  function Keeper:epoch_end(model, epoch, f1)
    local better = f1 > self.best_f1
    if better then self.best_f1, self.best_epoch = f1, epoch end
    if not self.out or self.mode == "none" then return nil end
    if self.mode == "best" and not better then return nil end
    local name = ("epoch_%d"):format(epoch)
    bl.save_checkpoint(model, self.out .. "/" .. name)
    if self.mode == "best" then
      for _, old in ipairs(self.saved) do bl.remove_tree(self.out .. "/" .. old) end
      self.saved = {}
    end
    self.saved[#self.saved + 1] = name
    if better then self.best_checkpoint = name end
    return name
  end
end
