-- bertlab.util: small helpers the experiment scripts share: a command-line parser (bl.parse_args),
-- JSON encoding, atomic file writes, directories and timestamps.
return function(bl)
  -- bl.now(): the monotonic wall clock (an alias of the runtime's bl.clock)
  bl.now = bl.clock

  -- bl.check_options(fn, opts, accepted[, level]): the pure-Lua side of the one options checker
  -- (lbl_checkoptions in lua/lbl.c, same message): every key of `opts` (nil: none) must be in the
  -- list `accepted`; otherwise "fn: unknown option 'x' (options: a, b, c)". Returns opts or {}.
  function bl.check_options(fn, opts, accepted, level)
    if opts == nil then return {} end
    if type(opts) ~= "table" then
      error(("%s: the options must be a table, got %s"):format(fn, type(opts)), (level or 1) + 1)
    end
    for k in pairs(opts) do
      local ok = false
      for _, a in ipairs(accepted) do if k == a then ok = true break end end
      if not ok then
        error(("%s: unknown option '%s' (options: %s)"):format(fn, tostring(k), table.concat(accepted, ", ")),
          (level or 1) + 1)
      end
    end
    return opts
  end
  ---------------------------------------------------------------------------------------------------
  -- Command-line arguments
  ---------------------------------------------------------------------------------------------------
  local TYPES = { string = true, int = true, number = true, flag = true, list = true }

  local function convert(v, ty, name)
    if ty == "string" then return v end
    if ty == "int" then
      local n = math.tointeger(tonumber(v))
      if not n then return nil, ("option --%s expects an integer, got '%s'"):format(name, v) end
      return n
    end
    if ty == "number" then
      local n = tonumber(v)
      if not n then return nil, ("option --%s expects a number, got '%s'"):format(name, v) end
      return n + 0.0
    end
    error("internal: unknown type " .. tostring(ty))
  end

  local function usage(spec)
    local lines = {}
    local prog = spec.prog or (arg and arg[0]) or "script.lua"
    local pos = spec.positional and (" [" .. spec.positional.name .. (spec.positional.multiple and "..." or "") .. "]") or ""
    lines[#lines + 1] = ("usage: bertlab %s [options]%s"):format(prog, pos)
    if spec.description then lines[#lines + 1] = spec.description end
    lines[#lines + 1] = "options:"
    for _, o in ipairs(spec.options or {}) do
      local flag = "--" .. o[1]
      if o.type ~= "flag" then
        flag = flag .. " " .. (o.metavar or (o.choices and table.concat(o.choices, "|")) or (o.type or "string"):upper())
      end
      local help = o.help or ""
      if o.default ~= nil and o.type ~= "flag" then
        local d = type(o.default) == "table" and table.concat(o.default, ",") or tostring(o.default)
        help = help .. (" (default: %s)"):format(d)
      end
      lines[#lines + 1] = ("  %-26s %s"):format(flag, help)
    end
    lines[#lines + 1] = ("  %-26s %s"):format("--help", "show this help and exit")
    if spec.positional and spec.positional.help then
      lines[#lines + 1] = ("  %-26s %s"):format(spec.positional.name, spec.positional.help)
    end
    if spec.epilog then lines[#lines + 1] = spec.epilog end
    return table.concat(lines, "\n") .. "\n"
  end
  bl.usage = usage

  -- The parser proper: returns args, or nil and a message ("help" for --help).
  local function parse(argv, spec)
    local byname, out = {}, {}
    for _, o in ipairs(spec.options or {}) do
      local name = o[1]
      if type(name) ~= "string" then error("parse_args: each option needs a name as its first element", 3) end
      local ty = o.type or "string"
      if not TYPES[ty] then error(("parse_args: option --%s has unknown type '%s'"):format(name, ty), 3) end
      byname[name] = o
      local key = name:gsub("-", "_")
      if ty == "flag" then out[key] = o.default or false
      elseif o.repeated then out[key] = {} -- each occurrence's value, in order
      else out[key] = o.default end
    end
    local rest = {}
    local i = 1
    while argv[i] ~= nil do
      local a = argv[i]
      if a == "--help" or a == "-h" then return nil, "help" end
      if a == "--" then
        for j = i + 1, #argv do rest[#rest + 1] = argv[j] end
        break
      end
      if a:sub(1, 2) == "--" then
        local name, val = a:match("^%-%-([^=]+)=(.*)$")
        name = name or a:sub(3)
        local o = byname[name]
        if not o and name:sub(1, 3) == "no-" and byname[name:sub(4)] and byname[name:sub(4)].type == "flag" then
          out[name:sub(4):gsub("-", "_")] = false
          goto continue
        end
        if not o then return nil, ("unknown option '--%s'"):format(name) end
        local ty = o.type or "string"
        local key = name:gsub("-", "_")
        if ty == "flag" then
          if val ~= nil then return nil, ("option --%s takes no value"):format(name) end
          out[key] = true
          goto continue
        end
        if val == nil then
          i = i + 1
          val = argv[i]
          if val == nil then return nil, ("option --%s needs a value"):format(name) end
        end
        if o.choices then
          local ok = false
          for _, c in ipairs(o.choices) do if c == val then ok = true end end
          if not ok then
            return nil, ("option --%s must be one of %s, got '%s'"):format(name, table.concat(o.choices, ", "), val)
          end
        end
        if ty == "list" then
          local list = {}
          for item in val:gmatch("[^,]+") do
            local v, err = convert(item, o.elem or "string", name)
            if v == nil then return nil, err end
            list[#list + 1] = v
          end
          if #list == 0 then return nil, ("option --%s needs a comma-separated list"):format(name) end
          out[key] = list
        else
          local v, err = convert(val, ty, name)
          if v == nil then return nil, err end
          if o.repeated then out[key][#out[key] + 1] = v else out[key] = v end
        end
      elseif a:sub(1, 1) == "-" and #a > 1 then
        return nil, ("unknown option '%s'"):format(a)
      else
        rest[#rest + 1] = a
      end
      ::continue::
      i = i + 1
    end
    if #rest > 0 and not spec.positional then
      return nil, ("unexpected argument '%s'"):format(rest[1])
    end
    if spec.positional then out[spec.positional.name] = rest end
    for _, o in ipairs(spec.options or {}) do
      if o.required and out[(o[1]:gsub("-", "_"))] == nil then
        return nil, ("option --%s is required"):format(o[1])
      end
    end
    return out
  end

  -- bl.parse_args(arg, spec): the script's options as a table (dashes become underscores).
  -- --help prints the usage and exits 0; an error prints it and exits 2 (spec.raise: error instead,
  -- and --help returns nil, usage).
  -- bl.script_main(name, main): runs a script's main function; an error is printed as
  -- "name: message" (without the Lua position, which means nothing to a user) and exits 1; a
  -- training stop on a signal (bl.training_stop with exit=) prints its message and exits with it.
  function bl.script_main(name, main)
    local ok, err = pcall(main)
    if not ok then
      if bl.is_training_stop and bl.is_training_stop(err) and err.exit then -- a stop on a signal: 130/143
        io.stderr:write(tostring(err), "\n")
        io.stdout:flush()
        os.exit(err.exit)
      end
      io.stderr:write(name, ": ", (tostring(err):gsub("^[^:]*:%d+: ", "")), "\n")
      os.exit(1)
    end
  end

  function bl.parse_args(argv, spec)
    if type(spec) ~= "table" then error("parse_args: argument #2 must be a spec table", 2) end
    argv = argv or {}
    local out, err = parse(argv, spec)
    if out then return out end
    local prog = spec.prog or (arg and arg[0]) or "script.lua"
    if err == "help" then
      if spec.raise then return nil, usage(spec) end
      io.stdout:write(usage(spec))
      os.exit(0)
    end
    if spec.raise then error(prog .. ": " .. err .. " (see --help)", 2) end
    io.stderr:write(("%s: error: %s\n%s(see --help)\n"):format(prog, err, usage(spec):match("^[^\n]*\n")))
    os.exit(2)
  end

  ---------------------------------------------------------------------------------------------------
  -- JSON (encoding only: results files)
  ---------------------------------------------------------------------------------------------------
  local ESC = { ['"'] = '\\"', ["\\"] = "\\\\", ["\b"] = "\\b", ["\f"] = "\\f", ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t" }

  local function is_array(t)
    local n = #t
    local count = 0
    for _ in pairs(t) do count = count + 1 end
    return count == n
  end

  -- bl.json_null: a value that json_encode writes as null (a key whose value is nil vanishes).
  bl.json_null = setmetatable({}, { __name = "bertlab.json_null", __tostring = function() return "null" end })

  local function encode(v, out)
    local ty = type(v)
    if v == nil or v == bl.json_null then out[#out + 1] = "null"
    elseif ty == "boolean" then out[#out + 1] = tostring(v)
    elseif ty == "number" then
      if v ~= v or v == math.huge or v == -math.huge then out[#out + 1] = "null"
      elseif math.type(v) == "integer" then out[#out + 1] = tostring(v)
      else
        -- the shortest of %.15g/%.16g/%.17g that reads back as the same double
        local str
        for _, prec in ipairs({ 15, 16, 17 }) do
          str = ("%." .. prec .. "g"):format(v)
          if tonumber(str) == v then break end
        end
        if not str:find("[%.eEn]") then str = str .. ".0" end
        out[#out + 1] = str
      end
    elseif ty == "string" then
      out[#out + 1] = '"' .. v:gsub('[%c"\\]', function(c) return ESC[c] or ("\\u%04x"):format(c:byte()) end) .. '"'
    elseif ty == "table" then
      if next(v) ~= nil and is_array(v) then
        out[#out + 1] = "["
        for i, x in ipairs(v) do
          if i > 1 then out[#out + 1] = "," end
          encode(x, out)
        end
        out[#out + 1] = "]"
      else
        local keys = {}
        for k in pairs(v) do keys[#keys + 1] = tostring(k) end
        table.sort(keys)
        out[#out + 1] = "{"
        for i, k in ipairs(keys) do
          if i > 1 then out[#out + 1] = "," end
          encode(k, out)
          out[#out + 1] = ":"
          local val = v[k]
          if val == nil then val = v[tonumber(k)] end
          encode(val, out)
        end
        out[#out + 1] = "}"
      end
    else
      error("json_encode: cannot encode a " .. ty, 3)
    end
  end

  -- bl.json_encode(v): compact JSON (object keys sorted; NaN/inf as null).
  function bl.json_encode(v)
    local out = {}
    encode(v, out)
    return table.concat(out)
  end

  ---------------------------------------------------------------------------------------------------
  -- Files
  ---------------------------------------------------------------------------------------------------
  local function shell_quote(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end
  bl.shell_quote = shell_quote

  -- bl.mkdir_p(path): creates the directory and its parents; error naming the path on failure.
  function bl.mkdir_p(path)
    if type(path) ~= "string" or path == "" then error("mkdir_p: path must be a non-empty string", 2) end
    local ok, err = pcall(bl.make_dirs, path) -- in-process: no shell (a stop signal is never lost)
    if not ok then error(("mkdir_p: cannot create directory '%s': %s"):format(path, tostring(err):gsub("^make_dirs: ", "")), 2) end
    return path
  end

  -- bl.write_file(path, text): writes through a temporary file renamed into place (atomic).
  function bl.write_file(path, text)
    local tmp = path .. ".tmp"
    local f, err = io.open(tmp, "wb")
    if not f then error(("write_file: cannot write '%s': %s"):format(path, err), 2) end
    local ok, werr = f:write(text)
    local cok, cerr = f:close()
    if not ok or not cok then
      os.remove(tmp)
      error(("write_file: writing '%s' failed: %s"):format(path, tostring(werr or cerr)), 2)
    end
    local rok, rerr = os.rename(tmp, path)
    if not rok then
      os.remove(tmp)
      error(("write_file: cannot rename into '%s': %s"):format(path, rerr), 2)
    end
  end

  -- bl.append_line(path, line): appends one line (results.jsonl); flushed and closed at once.
  function bl.append_line(path, line)
    local f, err = io.open(path, "ab")
    if not f then error(("append_line: cannot open '%s': %s"):format(path, err), 2) end
    f:write(line, "\n")
    f:close()
  end

  -- bl.file_exists(path)
  function bl.file_exists(path)
    local f = io.open(path, "rb")
    if f then f:close(); return true end
    return false
  end

  -- bl.timestamp(): "20261126-085512" (UTC), for run folder names.
  function bl.timestamp() return os.date("!%Y%m%d-%H%M%S") end
end
