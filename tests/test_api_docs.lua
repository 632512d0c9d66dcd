-- test_api_docs.lua: every name require("bertlab") exports — module functions and values, class
-- tables (bl.X.from_pretrained), methods of every bertlab.* userdata metatable in the registry and
-- of the pure-Lua objects (schedules, progress bars) — has a "## " heading in some docs/api/*.md.
-- A heading documents a name when it is the name itself or ends in ".name" / ":name".
local T = require("testlib")
local bl = require("bertlab")

-- headings of every docs/api/*.md
local headings, files = {}, {}
local p = io.popen("ls docs/api/*.md 2>/dev/null")
for path in p:lines() do files[#files + 1] = path end
p:close()
T.check(#files > 0, "docs/api has markdown files")
for _, path in ipairs(files) do
  for line in io.lines(path) do
    local h = line:match("^##%s+(.-)%s*$")
    if h then
      h = h:gsub("`", ""):match("^[^%s%(]+")
      if h then headings[#headings + 1] = h end
    end
  end
end

local function documented(name)
  for _, h in ipairs(headings) do
    if h == name or h:sub(-#name - 1) == "." .. name or h:sub(-#name - 1) == ":" .. name then return true end
  end
  return false
end

-- a class table (bl.BertTokenizer) is documented by a heading of its own or of one of its members
local function class_documented(name)
  if documented(name) then return true end
  for _, h in ipairs(headings) do
    if h:sub(1, #name + 1) == name .. "." or h:sub(1, #name + 1) == name .. ":" then return true end
  end
  return false
end

local missing = {}
local function need(name, shown)
  if not documented(name) then missing[#missing + 1] = shown or name end
end

local function walk_methods(cls, tbl, seen)
  for k, v in pairs(tbl) do
    if type(k) == "string" and k:sub(1, 1) ~= "_" and type(v) == "function" and not seen[k] then
      seen[k] = true
      need(k, cls .. ":" .. k)
    end
  end
end

-- 1. the module table
local n_exports = 0
for k, v in pairs(bl) do
  if type(k) == "string" and k:sub(1, 1) ~= "_" then
    n_exports = n_exports + 1
    if type(v) == "table" then
      if not class_documented(k) then missing[#missing + 1] = "bl." .. k end
    else
      need(k, "bl." .. k)
    end
    if type(v) == "table" then -- a class table such as bl.BertTokenizer: its functions too
      for fk, fv in pairs(v) do
        if type(fk) == "string" and fk:sub(1, 1) ~= "_" and type(fv) == "function" then
          need(fk, "bl." .. k .. "." .. fk)
        end
      end
    end
  end
end

-- 2. userdata classes registered by the C bindings
local reg = debug.getregistry()
local n_classes = 0
for name, mt in pairs(reg) do
  if type(name) == "string" and name:match("^bertlab%.") and type(mt) == "table" then
    n_classes = n_classes + 1
    local seen = {}
    if type(mt.__index) == "table" then walk_methods(name, mt.__index, seen) end
    if type(mt.methods) == "table" then walk_methods(name, mt.methods, seen) end
  end
end

-- 3. pure-Lua objects of the training part
do
  local w = bl.parameter(bl.zeros(1))
  local opt = bl.AdamW({ w })
  walk_methods("schedule", getmetatable(bl.get_linear_schedule_with_warmup(opt, 0, 1)).__index, {})
  local sink = io.open("/dev/null", "w")
  local bar = bl.progress(1, { out = sink, tty = false })
  walk_methods("progress bar", getmetatable(bar).__index, {})
  bar:close()
  sink:close()
end

print(("# %d module names, %d userdata classes, %d headings in %d files"):format(n_exports, n_classes, #headings, #files))
table.sort(missing)
T.check(#missing == 0, "every exported name is documented in docs/api/*.md",
  #missing .. " missing: " .. table.concat(missing, ", "))
-- the check can fail: a made-up name is not documented
T.check(not documented("no_such_function_xyz"), "an undocumented name is detected")
T.done()
