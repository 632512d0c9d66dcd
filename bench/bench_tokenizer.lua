-- bench_tokenizer.lua: titles/s of tok:batch_encode_plus on the 2,507 dataset titles, padded to 256 as in
-- the tutorial, one thread, timed with os.clock (process CPU time). Prints "result: tokenizer.bertlab <titles/s> titles/s" for bench/run.sh.
local bl = require("bertlab")

local function exists(p)
  local f = io.open(p, "rb")
  if f then f:close() return true end
  return false
end

-- Title column of a CSV (RFC 4180 quoting), for when bl.read_csv (the data part) is not there.
local function read_titles(path)
  local f = assert(io.open(path, "rb"))
  local text = f:read("a")
  f:close()
  local rows, row, field, i, n = {}, {}, {}, 1, #text
  local quoted = false
  while i <= n do
    local c = text:sub(i, i)
    if quoted then
      if c == '"' then
        if text:sub(i + 1, i + 1) == '"' then field[#field + 1] = '"'; i = i + 1 else quoted = false end
      else field[#field + 1] = c end
    elseif c == '"' then quoted = true
    elseif c == "," then row[#row + 1] = table.concat(field); field = {}
    elseif c == "\n" or c == "\r" then
      if c == "\r" and text:sub(i + 1, i + 1) == "\n" then i = i + 1 end
      row[#row + 1] = table.concat(field); field = {}
      rows[#rows + 1] = row; row = {}
    else field[#field + 1] = c end
    i = i + 1
  end
  if #field > 0 or #row > 0 then row[#row + 1] = table.concat(field); rows[#rows + 1] = row end
  local col
  for j, name in ipairs(rows[1]) do if name == "Title" then col = j end end
  local titles = {}
  for r = 2, #rows do titles[#titles + 1] = rows[r][col] end
  return titles
end

local csv = exists("data/title_conference.csv") and "data/title_conference.csv" or "../shared/data/title_conference.csv"
local vocab = exists("data/vocab.txt") and "data/vocab.txt" or "../shared/data/bert-base-uncased-vocab.txt"
local titles = bl.read_csv and bl.read_csv(csv).Title or read_titles(csv)
local tok = bl.BertTokenizer.from_pretrained(vocab)
local opts = { add_special_tokens = true, return_attention_mask = true, padding = "max_length", max_length = 256,
  truncation = true }

tok:batch_encode_plus(titles, opts) -- warm-up
local best, reps, t_all = math.huge, 0, os.clock()
while reps < 5 or os.clock() - t_all < 2 do
  local t0 = os.clock()
  local r = tok:batch_encode_plus(titles, opts)
  local dt = os.clock() - t0
  if dt < best then best = dt end
  r.input_ids:free(); r.attention_mask:free(); r.token_type_ids:free()
  reps = reps + 1
end
print(("bertlab batch_encode_plus: %d titles, padded to 256, best of %d runs: %.2f ms"):format(#titles, reps, best * 1e3))
print(("result: tokenizer.bertlab %.0f titles/s"):format(#titles / best))
