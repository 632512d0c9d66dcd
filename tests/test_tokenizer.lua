-- test_tokenizer.lua: bl.BertTokenizer against Hugging Face's slow BertTokenizer (fixtures written by
-- tests/fixtures/gen_tokenizer.py): every dataset title, ~180 hard strings, batch padding/truncation,
-- decode; and the error messages. The titles come from bl.read_csv("data/title_conference.csv"); while
-- that part is absent, BERTLAB_TITLES_LUA may name a Lua file (outside git) returning the titles list.
local bl = require("bertlab")
local T = require("testlib")

local FIX = "tests/fixtures/tokenizer/"

local function exists(p)
  local f = io.open(p, "rb")
  if f then f:close() return true end
  return false
end

local VOCAB = exists("data/vocab.txt") and "data/vocab.txt" or "../shared/data/bert-base-uncased-vocab.txt"
if not exists(VOCAB) then
  T.skip("tokenizer", "no vocabulary (run make data, or provide ../shared/data/bert-base-uncased-vocab.txt)")
  T.done()
end

local tok = bl.BertTokenizer.from_pretrained(VOCAB, { do_lower_case = true })
T.eq(tok:vocab_size(), 30522, "vocab_size of bert-base-uncased")
T.check(tostring(tok):find("BertTokenizer%(vocab_size=30522") ~= nil, "tostring names the tokenizer")

local function list_str(t)
  local out = {}
  for i, v in ipairs(t) do out[i] = type(v) == "string" and ("%q"):format(v) or tostring(v) end
  return "{" .. table.concat(out, ", ") .. "}"
end

-- Compares two lists of integers; returns the number of differing positions (length difference counts).
local function diff_count(a, b)
  local n, d = math.max(#a, #b), 0
  for i = 1, n do if a[i] ~= b[i] then d = d + 1 end end
  return d
end

-- ---- hard strings ----------------------------------------------------------------------------------
do
  local hard = dofile(FIX .. "hard.lua")
  local bad_tok, bad_ids, nids, shown = 0, 0, 0, 0
  for _, c in ipairs(hard) do
    local toks = tok:tokenize(c.s)
    local ids = tok:encode(c.s, { add_special_tokens = false })
    nids = nids + #c.ids
    local dt, di = not T.deep_equal(toks, c.tokens), diff_count(ids, c.ids)
    if dt then bad_tok = bad_tok + 1 end
    if di > 0 then bad_ids = bad_ids + 1 end
    if (dt or di > 0) and shown < 5 then
      shown = shown + 1
      print(("#   %q: got %s, expected %s"):format(c.s, list_str(toks), list_str(c.tokens)))
    end
  end
  print(("# hard strings: %d strings, %d ids compared, %d token-list and %d id-list mismatches")
    :format(#hard, nids, bad_tok, bad_ids))
  T.check(#hard >= 100, "hard-string fixture has >= 100 strings")
  T.eq(bad_tok, 0, "tokenize matches HF on every hard string")
  T.eq(bad_ids, 0, "encode ids match HF on every hard string")
end

-- ---- every title of the dataset -------------------------------------------------------------------
do
  local want = {}
  for line in io.lines(FIX .. "titles_ids.txt") do
    local row = {}
    for v in line:gmatch("%d+") do row[#row + 1] = math.tointeger(tonumber(v)) end
    want[#want + 1] = row
  end
  local titles, source
  if bl.read_csv and exists("data/title_conference.csv") then
    titles, source = bl.read_csv("data/title_conference.csv").Title, "data/title_conference.csv"
  elseif os.getenv("BERTLAB_TITLES_LUA") then
    titles, source = dofile(os.getenv("BERTLAB_TITLES_LUA")), os.getenv("BERTLAB_TITLES_LUA")
  end
  if not titles then
    T.skip("titles match HF", bl.read_csv and "data/title_conference.csv missing (make data)"
      or "bl.read_csv is not merged yet (data part); set BERTLAB_TITLES_LUA to test with a local copy")
  else
    T.eq(#titles, #want, "title count (" .. source .. ")")
    local compared, mismatched, rows_bad = 0, 0, 0
    local enc = tok:batch_encode_plus(titles, { padding = false, max_length = false })
    for i, row in ipairs(want) do
      local got = enc.input_ids[i] or {}
      local d = diff_count(got, row)
      compared = compared + #row
      mismatched = mismatched + d
      if d > 0 then
        rows_bad = rows_bad + 1
        if rows_bad <= 3 then print(("#   row %d: got %s, expected %s"):format(i, list_str(got), list_str(row))) end
      end
    end
    print(("# titles: %d rows, %d ids compared, %d mismatched ids in %d rows"):format(#want, compared, mismatched, rows_bad))
    T.eq(mismatched, 0, "every title's ids match HF (100% of ids)")
    -- the tutorial's call: pad to 256
    local r = tok:batch_encode_plus(titles, { padding = "max_length", max_length = 256, truncation = true })
    T.same(r.input_ids:shape(), { #titles, 256 }, "titles padded to [N, 256]")
    local ids, mask = r.input_ids:totable(), r.attention_mask:totable()
    local bad = 0
    for i, row in ipairs(want) do
      for j = 1, 256 do
        local w = row[j] or 0
        if ids[i][j] ~= w or mask[i][j] ~= (row[j] and 1 or 0) then bad = bad + 1 end
      end
    end
    T.eq(bad, 0, "padded title tensors (ids and mask) match HF")
  end
end

-- ---- batches, single encodes with options ---------------------------------------------------------
do
  local fx = dofile(FIX .. "batch.lua")
  for i, c in ipairs(fx.batches) do
    local r = tok:batch_encode_plus(c.texts, c.opts)
    local name = ("batch %d (%s)"):format(i, list_str({ tostring(c.opts.padding), c.opts.max_length or "-",
      tostring(c.opts.truncation), tostring(c.opts.add_special_tokens) }))
    for _, k in ipairs({ "input_ids", "attention_mask", "token_type_ids" }) do
      local got = r[k]
      if bl.is_tensor(got) then
        T.eq(got:dtype(), "int64", name .. " " .. k .. " is int64")
        got = got:totable()
      end
      T.same(got, c[k], name .. " " .. k)
    end
  end
  for i, c in ipairs(fx.singles) do
    T.same(tok:encode(c.s, c.opts), c.ids, ("encode %d %q %s"):format(i, c.s,
      list_str({ c.opts.max_length or "-", tostring(c.opts.truncation), tostring(c.opts.padding) })))
  end
  for i, c in ipairs(fx.variants) do
    local t = bl.BertTokenizer.from_pretrained(VOCAB, c.opts)
    local name = ("options %d (lower=%s strip=%s cjk=%s) %q"):format(i, tostring(c.opts.do_lower_case),
      tostring(c.opts.strip_accents), tostring(c.opts.tokenize_chinese_chars), c.s)
    T.same(t:tokenize(c.s), c.tokens, name .. " tokens")
    T.same(t:encode(c.s), c.ids, name .. " ids")
  end
  -- padding=false with unequal lengths: lists of lists
  local r = tok:batch_encode_plus({ "a", "a b c" }, { padding = false })
  T.check(not bl.is_tensor(r.input_ids) and #r.input_ids[1] == 3 and #r.input_ids[2] == 5,
    "padding=false, unequal lengths: lists of lists")
  T.same(r.attention_mask, { { 1, 1, 1 }, { 1, 1, 1, 1, 1 } }, "padding=false attention_mask lists")
  r = tok:batch_encode_plus({ "a" }, { return_attention_mask = false, return_token_type_ids = false })
  T.check(r.attention_mask == nil and r.token_type_ids == nil and bl.is_tensor(r.input_ids),
    "return_attention_mask=false, return_token_type_ids=false")
  local tut = tok:batch_encode_plus({ "hello world", "a" }, { add_special_tokens = true, return_attention_mask = true,
    pad_to_max_length = true, max_length = 256, return_tensors = "pt" })
  local ref = tok:batch_encode_plus({ "hello world", "a" }, { padding = "max_length", max_length = 256 })
  T.same(tut.input_ids:totable(), ref.input_ids:totable(), "tutorial spelling pad_to_max_length=true, return_tensors='pt'")
  T.checkerror("return_tensors must be \"pt\"", "return_tensors other than pt",
    function() return tok:batch_encode_plus({ "a" }, { return_tensors = "np" }) end)
  T.checkerror("either 'padding' or 'pad_to_max_length'", "padding and pad_to_max_length together",
    function() return tok:batch_encode_plus({ "a" }, { padding = "longest", pad_to_max_length = true }) end)
  r = tok:batch_encode_plus({}, {})
  T.same(r.input_ids:shape(), { 0, 256 }, "empty batch gives [0, 256]")
  local ep = tok:encode_plus("hello world")
  T.same(ep, { input_ids = { 101, 7592, 2088, 102 }, attention_mask = { 1, 1, 1, 1 }, token_type_ids = { 0, 0, 0, 0 } },
    "encode_plus")
end

-- ---- decode and conversions -----------------------------------------------------------------------
do
  local fx = dofile(FIX .. "decode.lua")
  local bad = { text = 0, skip = 0, raw = 0 }
  for _, c in ipairs(fx) do
    local got = {
      text = tok:decode(c.ids),
      skip = tok:decode(c.ids, { skip_special_tokens = true }),
      raw = tok:decode(c.ids, { clean_up_tokenization_spaces = false }),
    }
    for k, n in pairs(bad) do
      if got[k] ~= c[k] then
        bad[k] = n + 1
        print(("#   decode %s %s: got %q, expected %q"):format(k, list_str(c.ids), got[k], c[k]))
      end
    end
  end
  print(("# decode: %d id lists"):format(#fx))
  T.eq(bad.text, 0, "decode matches HF")
  T.eq(bad.skip, 0, "decode(skip_special_tokens=true) matches HF")
  T.eq(bad.raw, 0, "decode(clean_up_tokenization_spaces=false) matches HF")
  T.eq(tok:decode(bl.tensor({ 101, 7592, 102 })), "[CLS] hello [SEP]", "decode of a 1-D int64 tensor")
  T.checkerror("1%-D int64 tensor of ids expected", "decode of a 2-D tensor",
    function() return tok:decode(bl.tensor({ { 101 } })) end)
  local d = tok:batch_decode({ { 101, 7592, 102 }, { 2088 } }, { skip_special_tokens = true })
  T.same(d, { "hello", "world" }, "batch_decode")

  T.same(tok:convert_tokens_to_ids({ "[CLS]", "hello", "##s", "no-such-token" }), { 101, 7592, 2015, 100 },
    "convert_tokens_to_ids (unknown → [UNK])")
  T.eq(tok:convert_tokens_to_ids("[PAD]"), 0, "convert_tokens_to_ids of one token")
  T.same(tok:convert_ids_to_tokens({ 101, 7592, 2015, 0 }), { "[CLS]", "hello", "##s", "[PAD]" }, "convert_ids_to_tokens")
  T.same(tok:convert_ids_to_tokens({ 101, 7592, 0 }, { skip_special_tokens = true }), { "hello" },
    "convert_ids_to_tokens skip_special_tokens")
  T.eq(tok:convert_ids_to_tokens(30521), "##～", "convert_ids_to_tokens of one id (last id)")
end

-- ---- other vocabularies and options ---------------------------------------------------------------
local function tmpfile(content)
  local p = os.tmpname()
  local f = assert(io.open(p, "wb"))
  f:write(content)
  f:close()
  return p
end

do
  local p = tmpfile("[PAD]\r\n[UNK]\r\n[CLS]\r\n[SEP]\r\nhello\r\n##s\rworld\nHello")
  local t = bl.BertTokenizer.from_pretrained(p)
  T.eq(t:vocab_size(), 8, "CRLF / CR / LF line ends as Python's universal newlines")
  T.same(t:encode("hellos World x"), { 2, 4, 5, 6, 1, 3 }, "small vocab: greedy pieces and [UNK]")
  local c = bl.BertTokenizer.from_pretrained(p, { do_lower_case = false })
  T.same(c:tokenize("Hello hello World"), { "Hello", "hello", "[UNK]" }, "do_lower_case=false keeps case")
  T.same(c:tokenize("Héllo"), { "[UNK]" }, "do_lower_case=false keeps accents")
  local s = bl.BertTokenizer.from_pretrained(p, { do_lower_case = false, strip_accents = true })
  T.same(s:tokenize("Héllo"), { "Hello" }, "strip_accents=true without lower-casing")
  os.remove(p)
  local dir = os.tmpname()
  os.remove(dir)
  os.execute("mkdir -p " .. dir)
  local f = assert(io.open(dir .. "/vocab.txt", "wb"))
  f:write("[UNK]\nx\n")
  f:close()
  T.eq(bl.BertTokenizer.from_pretrained(dir):vocab_size(), 2, "from_pretrained(folder) reads folder/vocab.txt")
  f = assert(io.open(dir .. "/tokenizer_config.json", "wb"))
  f:write('{"do_lower_case": false, "strip_accents": null, "model_max_length": 512}')
  f:close()
  f = assert(io.open(dir .. "/vocab.txt", "wb"))
  f:write("[UNK]\nx\nX\n")
  f:close()
  local cfg = bl.BertTokenizer.from_pretrained(dir)
  T.same(cfg:tokenize("X x"), { "X", "x" }, "tokenizer_config.json do_lower_case=false is used")
  T.check(tostring(cfg):find("do_lower_case=false") ~= nil, "tostring shows the option from tokenizer_config.json")
  T.same(bl.BertTokenizer.from_pretrained(dir, { do_lower_case = true }):tokenize("X x"), { "x", "x" },
    "an explicit option overrides tokenizer_config.json")
  f = assert(io.open(dir .. "/tokenizer_config.json", "wb"))
  f:write('{"do_lower_case": "yes"}')
  f:close()
  T.checkerror("tokenizer_config.json: 'do_lower_case' must be a boolean", "bad tokenizer_config.json value",
    bl.BertTokenizer.from_pretrained, dir)
  f = assert(io.open(dir .. "/tokenizer_config.json", "wb"))
  f:write('{"do_lower_case": tru')
  f:close()
  T.checkerror("tokenizer_config.json:1: ", "malformed tokenizer_config.json names the file and line",
    bl.BertTokenizer.from_pretrained, dir)
  os.remove(dir .. "/tokenizer_config.json")
  os.remove(dir .. "/vocab.txt")
  os.remove(dir)
  local t3 <close> = bl.BertTokenizer.from_pretrained(VOCAB)
  t3:free()
  T.checkerror("tokenizer was freed", "using a freed tokenizer", function() return t3:tokenize("x") end)
end

-- ---- errors ---------------------------------------------------------------------------------------
do
  T.checkerror("no/such/dir/vocab.txt: cannot open vocabulary", "missing vocab file names the path",
    bl.BertTokenizer.from_pretrained, "no/such/dir/vocab.txt")
  local p = tmpfile("")
  T.checkerror("empty vocabulary", "empty vocab file", bl.BertTokenizer.from_pretrained, p)
  os.remove(p)
  p = tmpfile("a\nb\n")
  T.checkerror("no '%[UNK%]' token", "vocab without [UNK]", bl.BertTokenizer.from_pretrained, p)
  os.remove(p)
  p = tmpfile("[UNK]\nok\nbad\xff\n")
  T.checkerror(":3: invalid UTF%-8", "invalid UTF-8 in the vocab names the line", bl.BertTokenizer.from_pretrained, p)
  os.remove(p)
  T.checkerror("unknown option 'do_lowercase'", "unknown option is reported",
    bl.BertTokenizer.from_pretrained, VOCAB, { do_lowercase = true })
  T.checkerror("element 2 of the list is number, expected a string", "non-string element in the batch",
    function() return tok:batch_encode_plus({ "ok", 42, "x" }) end)
  T.checkerror("element 1 of the list is table", "table element in the batch",
    function() return tok:batch_encode_plus({ {} }) end)
  T.checkerror("bad argument #1 to 'tokenize' %(string expected, got number%)", "tokenize(number)",
    function() return tok:tokenize(12) end)
  T.checkerror("bad argument #1 to 'encode' %(string expected, got nil%)", "encode(nil)",
    function() return tok:encode(nil) end)
  T.checkerror("max_length must be at least 2 with add_special_tokens %(got 1%)", "max_length < 2 with special tokens",
    function() return tok:batch_encode_plus({ "a b" }, { max_length = 1 }) end)
  T.checkerror("encode: max_length must be at least 2", "encode max_length < 2",
    function() return tok:encode("a b", { max_length = 1 }) end)
  T.same(tok:encode("a b", { max_length = 1, add_special_tokens = false }), { 1037 },
    "max_length 1 without special tokens is fine")
  T.checkerror("text 2: 6 tokens is more than max_length 4 %(truncation is off%)", "no silent truncation",
    function() return tok:batch_encode_plus({ "a", "a b c d" }, { max_length = 4, truncation = false }) end)
  local long = tok:batch_encode_plus({ "a", "a b c d" }, { max_length = 4, truncation = false, padding = "longest" })
  T.same(long.input_ids:shape(), { 2, 6 }, "truncation=false with longest padding keeps every token")
  T.checkerror("text 2: invalid UTF%-8 at byte 3", "invalid UTF-8 text names the element and byte",
    function() return tok:batch_encode_plus({ "ok", "ab\xc3(" }) end)
  T.checkerror("tokenize: invalid UTF%-8 at byte 1", "invalid UTF-8 in tokenize", function() return tok:tokenize("\xff") end)
  T.checkerror("option 'padding' must be", "bad padding value",
    function() return tok:batch_encode_plus({ "a" }, { padding = "max" }) end)
  T.checkerror("id 30522 at position 2 is out of range %[0, 30522%)", "decode of an out-of-range id",
    function() return tok:decode({ 101, 30522 }) end)
  T.checkerror("element 2 of the list is string, expected an integer id", "decode of a non-integer",
    function() return tok:decode({ 101, "x" }) end)
  T.checkerror("convert_ids_to_tokens: id %-1 at position 1 is out of range", "convert_ids_to_tokens(-1)",
    function() return tok:convert_ids_to_tokens({ -1 }) end)
  T.checkerror("truncation=true needs max_length", "truncation without max_length",
    function() return tok:batch_encode_plus({ "a" }, { max_length = false, truncation = true, padding = "longest" }) end)
end

-- ---- every exported name is documented ------------------------------------------------------------
do
  local f = io.open("docs/api/tokenizer.md")
  local doc = f and f:read("a") or ""
  if f then f:close() end
  local missing = {}
  local names = { "BertTokenizer.from_pretrained", "BertTokenizer.methods" }
  for k in pairs(bl.BertTokenizer.methods) do names[#names + 1] = "tok:" .. k end
  for _, n in ipairs(names) do
    if not doc:find("\n## " .. n:gsub("%p", "%%%0"), 1) then missing[#missing + 1] = n end
  end
  table.sort(missing)
  T.eq(table.concat(missing, ", "), "", "every tokenizer name has a '## name' heading in docs/api/tokenizer.md")
end

T.done()
