-- test_badinput.lua: bad input to the readers, end to end through the Lua API: CSV files, model
-- folders (config.json, model.safetensors) and vocabularies. Each case must be refused with an error
-- that names the file and what is wrong (line, field, tensor, shape); none may crash, hang, or be
-- accepted silently. Files are written into a temporary folder; the safetensors cases are made by
-- editing the tiny fixture model's bytes. The last line prints how many cases ran.
local T = require("testlib")
local bl = require("bertlab")

local TINY = "tests/fixtures/model/tiny"
local tmp = os.tmpname()
os.remove(tmp)
assert(os.execute("mkdir -p '" .. tmp .. "'"))
local ncases = 0

local function write(path, bytes)
  local f = assert(io.open(path, "wb"))
  f:write(bytes)
  f:close()
  return path
end
local function slurp(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end
local function esc(s) return (s:gsub("[%^%$%(%)%%%.%[%]%*%+%-%?]", "%%%0")) end

-- bad(name, pattern, f, ...): f(...) must raise an error matching `pattern` (a Lua pattern).
local function bad(name, pattern, f, ...)
  ncases = ncases + 1
  return T.checkerror(pattern, "bad input " .. ncases .. ": " .. name, f, ...)
end

-- ---------------------------------------------------------------- CSV
local function csv(name, bytes) return write(tmp .. "/" .. name, bytes) end
local function read(path) return bl.read_csv(path) end

bad("CSV: missing file", "nope%.csv: No such file or directory", read, tmp .. "/nope.csv")
bad("CSV: a folder", esc(tmp) .. ": Is a directory", read, tmp)
bad("CSV: empty file", "empty%.csv: empty file", read, csv("empty.csv", ""))
bad("CSV: only blank lines", "blank%.csv: empty file", read, csv("blank.csv", "\n\r\n\n"))
local hdr = bl.read_csv(csv("header.csv", "Title,Conference\n"))
T.eq(hdr:nrows(), 0, "CSV: header only reads as 0 rows (as pandas)")
bad("CSV: header only, then a split of its 0 rows", "n_samples=0, the resulting train set will be empty", bl.train_test_split, hdr:nrows(), { test_size = 0.2 })
bad("CSV: missing column", "header%.csv: no column 'Label' %(columns: Title, Conference%)", hdr.column, hdr, "Label")
bad("CSV: unterminated quote", "unterm%.csv:3: unterminated quoted field", read,
  csv("unterm.csv", 'Title,Conference\na,b\n"never closed,VLDB\nmore\n'))
bad("CSV: stray quote inside a field", "stray%.csv:2: malformed quoted field", read,
  csv("stray.csv", 'Title,Conference\nsay "hi",VLDB\n'))
bad("CSV: ragged row (too many)", "ragged%.csv:3: expected 2 columns, got 3", read,
  csv("ragged.csv", "Title,Conference\na,b\na,b,c\n"))
bad("CSV: ragged row (too few)", "few%.csv:4: expected 2 columns, got 1", read,
  csv("few.csv", "Title,Conference\na,b\nc,d\nlonely\n"))
bad("CSV: invalid UTF-8", "latin1%.csv:2: invalid UTF%-8 %(byte 0xE9 at column 4%)", read,
  csv("latin1.csv", "Title,Conference\ncaf\xE9,VLDB\n"))
bad("CSV: truncated UTF-8 at the end", "cut%.csv:2: invalid UTF%-8 %(byte 0xE2", read,
  csv("cut.csv", "Title,Conference\nx,\xE2\x82"))
bad("CSV: overlong UTF-8", "overlong%.csv:2: invalid UTF%-8 %(byte 0xC0", read,
  csv("overlong.csv", "Title,Conference\n\xC0\xAF,x\n"))
bad("CSV: NUL byte in a cell", "nul%.csv:3: NUL byte at column 4", read,
  csv("nul.csv", "Title,Conference\na,b\nabc\0d,VLDB\n"))
bad("CSV: NUL byte in a quoted cell", "nulq%.csv:2: NUL byte at column 3", read,
  csv("nulq.csv", 'Title,Conference\n"a\0",VLDB\n'))
bad("CSV: NUL in the header", "nulh%.csv:1: NUL byte at column 6", read, csv("nulh.csv", "Title\0,Conference\n"))
bad("CSV: NUL bytes found by the fuzzer", "fuzz_csv_nul%.csv:1: NUL byte", read,
  "tests/fixtures/badinput/fuzz_csv_nul.csv")
bad("CSV: duplicate header names", "dup%.csv:1: duplicate column 'Title'", read,
  csv("dup.csv", "Title,Conference,Title\na,b,c\n"))
bad("CSV: ragged row after CRLF lines", "crlf%.csv:4: expected 2 columns, got 3", read,
  csv("crlf.csv", "Title,Conference\r\na,b\r\nc,d\r\ne,f,g\r\n"))
bad("CSV: ragged row after CR-only lines", "cr%.csv:3: expected 2 columns, got 1", read,
  csv("cr.csv", "Title,Conference\ra,b\rc\r"))
bad("CSV: a second BOM is a character of the first column name", "bom2%.csv: no column 'Title'", function()
  return bl.read_csv(csv("bom2.csv", "\xEF\xBB\xBF\xEF\xBB\xBFTitle,Conference\na,b\n")).Title
end)
-- the accepted cases next to them: CRLF, a BOM and a 10 MB line read exactly
local ok = bl.read_csv(csv("crlf_ok.csv", "\xEF\xBB\xBFTitle,Conference\r\n\"a,\r\nb\",VLDB\r\n"))
T.same(ok:columns(), { "Title", "Conference" }, "CSV: BOM stripped, CRLF header")
T.eq(ok.Title[1], "a,\r\nb", "CSV: CRLF inside quotes kept as is")
local big = string.rep("x", 10 * 1024 * 1024)
local t0 = os.clock()
local bigdf = bl.read_csv(csv("big.csv", "Title,Conference\n" .. big .. ",VLDB\nshort,WWW\n"))
T.check(#bigdf.Title[1] == #big and bigdf.Title[2] == "short", "CSV: a 10 MB line reads whole",
  ("got %d bytes"):format(#bigdf.Title[1]))
local secs = os.clock() - t0
print(("# 10 MB line read in %.2f s of CPU"):format(secs))
T.check(secs < 5, "CSV: a 10 MB line reads in linear time (libcsv grew its buffer by 128 bytes: minutes under ASan)",
  ("%.1f s"):format(secs))
bad("CSV: a 10 MB line with a stray quote", "bigbad%.csv:3: malformed quoted field", read,
  csv("bigbad.csv", "Title,Conference\na,b\n" .. big .. '"x,VLDB\n'))
bigdf, big = nil, nil
collectgarbage()

-- ---------------------------------------------------------------- model folder: config.json
local tiny_config = slurp(TINY .. "/config.json")
local tiny_weights = slurp(TINY .. "/model.safetensors")
local nfolder = 0
-- A folder holding config.json (text, or the tiny one) and model.safetensors (bytes, or the tiny ones).
local function folder(config, weights)
  nfolder = nfolder + 1
  local d = tmp .. "/model" .. nfolder
  assert(os.execute("mkdir -p '" .. d .. "'"))
  if config ~= false then write(d .. "/config.json", config or tiny_config) end
  if weights ~= false then write(d .. "/model.safetensors", weights or tiny_weights) end
  return d
end
local function load(dir) return bl.BertForSequenceClassification.from_pretrained(dir, { quiet = true }) end
-- the tiny config with one field replaced (JSON text of the new value)
local function cfg(key, value)
  local s, n = tiny_config:gsub('("' .. key .. '": )[^,\n]+', "%1" .. value:gsub("%%", "%%%%"), 1)
  if n == 0 then s = tiny_config:gsub("^{", '{\n  "' .. key .. '": ' .. value .. ",", 1) end
  return s
end

local m = load(folder())
T.check(m ~= nil, "model: the unchanged tiny folder loads (the cases below differ from it in one thing)")
m:free()
bad("model: folder does not exist", "nonexistent: no such file or folder", load, tmp .. "/nonexistent")
bad("model: no config.json", "model%d+: no config%.json beside the weights", load, folder(false))
bad("model: no model.safetensors", "model%d+: no model%.safetensors in this folder", load, folder(nil, false))
bad("model: config.json is not JSON", "config%.json:3: not valid JSON", load, folder('{\n  "hidden_size": 32,\n  oops\n}'))
bad("model: config.json is empty", "config%.json:.*not valid JSON", load, folder(""))
bad("model: config.json is an array", "config%.json: not a JSON object", load, folder("[1, 2]"))
bad("model: hidden size not divisible by heads", "hidden_size %(32%) is not a multiple of num_attention_heads %(5%)",
  load, folder(cfg("num_attention_heads", "5")))
bad("model: zero layers", "field 'num_hidden_layers' is 0, must be >= 1", load, folder(cfg("num_hidden_layers", "0")))
bad("model: negative hidden size", "field 'hidden_size' is %-32, must be >= 1", load, folder(cfg("hidden_size", "-32")))
bad("model: vocab_size a string", "field 'vocab_size' must be an integer, got a string", load,
  folder(cfg("vocab_size", '"100"')))
t0 = os.clock()
bad("model: 10^9 layers is too large", "field 'num_hidden_layers' is 1000000000, too large %(at most 1024%)", load,
  folder(cfg("num_hidden_layers", "1000000000")))
T.check(os.clock() - t0 < 1, "model: 10^9 layers refused at once, before any allocation",
  ("took %.2f s"):format(os.clock() - t0))
bad("model: 10^12 vocabulary is too large", "field 'vocab_size' is 1000000000000, too large", load,
  folder(cfg("vocab_size", "1000000000000")))
bad("model: sizes each fine, their product too large", "the model is too large: .* parameters", load,
  folder(cfg("hidden_size", "65536"):gsub('"num_hidden_layers": 2', '"num_hidden_layers": 1000')))
bad("model: dropout out of range", "field 'hidden_dropout_prob' is 1%.5, must be in %[0, 1%)", load,
  folder(cfg("hidden_dropout_prob", "1.5")))
bad("model: unsupported activation", "hidden_act 'relu' is not supported", load, folder(cfg("hidden_act", '"relu"')))
bad("model: unsupported architecture", "architecture 'GPT2LMHeadModel' is not supported", load,
  folder((tiny_config:gsub('"BertForSequenceClassification"', '"GPT2LMHeadModel"'))))
bad("model: unsupported model_type", "model_type 'roberta' is not supported", load, folder(cfg("model_type", '"roberta"')))
bad("model: id2label with a gap", "field 'id2label' has key '5'", load,
  folder((tiny_config:gsub('"2": "pos"', '"5": "pos"'))))

-- ---------------------------------------------------------------- model folder: model.safetensors
-- the tiny file's header (JSON text) and data, to rebuild edited copies
local hlen = string.unpack("<I8", tiny_weights)
local header = tiny_weights:sub(9, 8 + hlen)
local data = tiny_weights:sub(9 + hlen)
local function st(h, d) return string.pack("<I8", #h) .. h .. (d or data) end
-- the header with tensor `name`'s entry edited by gsub(pattern, repl)
local function edit(name, pattern, repl)
  local s, e = header:find('"' .. esc(name) .. '":{[^}]*}')
  assert(s, "tensor " .. name .. " in the tiny header")
  local entry = header:sub(s, e):gsub(pattern, repl)
  return header:sub(1, s - 1) .. entry .. header:sub(e + 1)
end
local POS = "bert.embeddings.position_embeddings.weight" -- [64,32] F32, bytes 256..8448
local LNB = "bert.embeddings.LayerNorm.bias"            -- [32] F32, bytes 0..128

bad("safetensors: empty file", "model%.safetensors: file too small for a safetensors header %(0 bytes", load, folder(nil, ""))
bad("safetensors: truncated in the data", "model%.safetensors: the header describes %d+ bytes of data but the file has",
  load, folder(nil, tiny_weights:sub(1, #tiny_weights - 100)))
bad("safetensors: truncated in the header", "model%.safetensors: header length %d+ goes beyond the end of the file",
  load, folder(nil, tiny_weights:sub(1, 200)))
bad("safetensors: header length past the end", "header length " .. (#header + #data + 1) .. " goes beyond the end of the file",
  load, folder(nil, string.pack("<I8", #header + #data + 1) .. header .. data))
bad("safetensors: absurd header length", "header length 18446744073709551615 is larger than the limit", load,
  folder(nil, string.pack("<i8", -1) .. header .. data))
bad("safetensors: header not JSON", "model%.safetensors: header is not valid JSON", load,
  folder(nil, st((header:gsub("}(%s*)$", " %1")))))
bad("safetensors: offsets overlapping", "model%.safetensors: tensors .* overlap", load,
  folder(nil, st(edit(POS, "%[256,8448%]", "[200,8392]"))))
-- classifier.weight [3,32] is the last tensor, bytes 94092..94476 (the end of the file): made [4,32] and longer
bad("safetensors: offsets out of range", "model%.safetensors: the header describes 94604 bytes of data but the file has 94476",
  load, folder(nil, st(edit("classifier.weight", "%[3,32%](.*)%[94092,94476%]", "[4,32]%1[94092,94604]"))))
bad("safetensors: offsets that end before they begin", "end before they begin", load,
  folder(nil, st(edit(LNB, "%[0,128%]", "[128,0]"))))
bad("safetensors: dtype not matching the byte length", "tensor '" .. esc(POS) .. "' has 8192 bytes, shape %[64,32%] of F16 needs 4096",
  load, folder(nil, st(edit(POS, '"F32"', '"F16"'))))
bad("safetensors: shape not matching the byte length", "tensor '" .. esc(POS) .. "' has 8192 bytes, shape %[64,33%] of F32 needs 8448",
  load, folder(nil, st(edit(POS, "%[64,32%]", "[64,33]"))))
bad("safetensors: unknown dtype", "tensor '" .. esc(POS) .. "' has unknown dtype 'F8'", load,
  folder(nil, st(edit(POS, '"F32"', '"F8"'))))
bad("safetensors: negative shape", "shape%[0%] is not a non%-negative integer", load,
  folder(nil, st(edit(POS, "%[64,32%]", "[-64,32]"))))
bad("safetensors: header not UTF-8", "header is not valid UTF%-8", load,
  folder(nil, st((header:gsub('"format":"pt"', '"format":"p\xFF"')))))
-- a missing tensor and a wrong shape: rewritten with bl.save_safetensors
local tensors = bl.load_safetensors(TINY .. "/model.safetensors")
local saved = tmp .. "/edited.safetensors"
local name_q = "bert.encoder.layer.1.attention.self.query.weight"
local q = tensors[name_q]
tensors[name_q] = nil
bl.save_safetensors(saved, tensors)
bad("safetensors: tensor missing", "tensor '" .. esc(name_q) .. "' is missing from the checkpoint", load, folder(nil, slurp(saved)))
tensors[name_q] = bl.zeros(32, 16)
bl.save_safetensors(saved, tensors)
bad("safetensors: wrong shape", "tensor '" .. esc(name_q) .. "' has shape %[32,16%], config says %[32,32%]", load,
  folder(nil, slurp(saved)))
tensors[name_q] = q
tensors["bert.embeddings.word_embeddings.weight"] = bl.zeros(99, 32)
bl.save_safetensors(saved, tensors)
bad("safetensors: embedding rows not matching vocab_size", "word_embeddings%.weight' has shape %[99,32%], config says %[100,32%]",
  load, folder(nil, slurp(saved)))

-- ---------------------------------------------------------------- vocabularies
local function vocab(name, text) return write(tmp .. "/" .. name, text) end
local function tok(path) return bl.BertTokenizer.from_pretrained(path) end
local SPECIAL = "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\n"
T.eq(tok(vocab("ok.txt", SPECIAL .. "a\nb\n")):vocab_size(), 7, "vocab: a small good vocabulary loads (7 tokens)")
bad("vocab: missing file", "nope%.txt: cannot open vocabulary", tok, tmp .. "/nope.txt")
bad("vocab: folder without vocab.txt", "model1/vocab%.txt: cannot open vocabulary", tok, tmp .. "/model1")
bad("vocab: empty", "empty_vocab%.txt: empty vocabulary", tok, vocab("empty_vocab.txt", ""))
bad("vocab: no [UNK]", "nounk%.txt: no '%[UNK%]' token", tok, vocab("nounk.txt", "[PAD]\n[CLS]\n[SEP]\na\n"))
bad("vocab: duplicate token", "dupvocab%.txt:7: token 'a' appears twice %(first on line 6%)", tok,
  vocab("dupvocab.txt", SPECIAL .. "a\na\n"))
bad("vocab: duplicate special token", "dupspecial%.txt:6: token '%[UNK%]' appears twice %(first on line 2%)", tok,
  vocab("dupspecial.txt", SPECIAL .. "[UNK]\n"))
bad("vocab: invalid UTF-8", "latin1vocab%.txt:6: invalid UTF%-8", tok, vocab("latin1vocab.txt", SPECIAL .. "caf\xE9\n"))
bad("vocab: NUL byte", "nulvocab%.txt:7: NUL byte", tok, vocab("nulvocab.txt", SPECIAL .. "a\nb\0c\n"))
local nocls = tok(vocab("nocls.txt", "[PAD]\n[UNK]\n[SEP]\na\n"))
bad("vocab: no [CLS], then encode with special tokens", "no '%[CLS%]' token", nocls.encode, nocls, "a")
local nopad = tok(vocab("nopad.txt", "[UNK]\n[CLS]\n[SEP]\na\n"))
bad("vocab: no [PAD], then pad a batch", "no '%[PAD%]' token", nopad.batch_encode_plus, nopad, { "a", "a a a" },
  { padding = "longest" })
local vd = tmp .. "/vocabdir"
assert(os.execute("mkdir -p '" .. vd .. "'"))
vocab("vocabdir/vocab.txt", SPECIAL .. "a\n")
write(vd .. "/tokenizer_config.json", '{"do_lower_case": "yes"}')
bad("vocab: tokenizer_config.json option of the wrong type", "tokenizer_config%.json: 'do_lower_case' must be a boolean",
  tok, vd)
write(vd .. "/tokenizer_config.json", '{"do_lower_case": true,,}')
bad("vocab: tokenizer_config.json not JSON", "tokenizer_config%.json:1:", tok, vd)

-- ---------------------------------------------------------------- Lua misuse
local model = load(folder())
local ids = bl.tensor({ { 2, 10, 11, 3 } })
bad("Lua: a NaN into an int64 tensor", "tensor: element 1 is %-?nan, which is not an int64 value", bl.tensor, { 0 / 0 }, "int64")
bad("Lua: 1e30 into an int64 tensor", "tensor: element 2 is 1e%+30, which is not an int64", bl.tensor, { 1, 1e30 }, "int64")
bad("Lua: inf into an int64 scalar", "tensor: element 1 is inf", bl.tensor, math.huge, "int64")
bad("Lua: bl.full int64 with NaN", "full: element 1 is %-?nan", bl.full, { 2 }, 0 / 0, "int64")
bad("Lua: AdamW lr = math.huge", "AdamW: Invalid learning rate: inf %(must be finite and >= 0%)", bl.AdamW, model:parameters(), { lr = math.huge })
bad("Lua: AdamW lr = NaN", "AdamW: Invalid learning rate: %-?nan", bl.AdamW, model:parameters(), { lr = 0 / 0 })
bad("Lua: AdamW negative lr", "AdamW: Invalid learning rate: %-1", bl.AdamW, model:parameters(), { lr = -1 })
local opt = bl.AdamW(model:parameters(), { lr = 1e-3 })
bad("Lua: opt.lr = math.huge", "learning rate must be finite and >= 0", function() opt.lr = math.huge end)
local out1 = model:forward({ input_ids = ids, labels = bl.tensor({ 1 }) })
out1.loss:backward()
bad("Lua: loss:backward() twice", "backward: this loss was already backpropagated %(gradients would be added twice%); run a new forward first",
  out1.loss.backward, out1.loss)
local freed = bl.tensor({ { 2, 10 } })
freed:free()
bad("Lua: a freed tensor passed to forward", "forward: input_ids is a tensor that was freed", model.forward, model, { input_ids = freed })
bad("Lua: labels out of range", "forward: labels: label 7 at row 1 is out of range for num_labels 3", model.forward, model,
  { input_ids = ids, labels = bl.tensor({ 7 }) })
bad("Lua: ids outside the vocabulary", "token id 100 at row 1, column 2 is out of range for vocab_size 100", model.forward, model,
  { input_ids = bl.tensor({ { 2, 100 } }) })
local long = {}
for i = 1, 65 do long[i] = 5 end
bad("Lua: sequence longer than the position table", "input_ids has 65 tokens per sequence, more than max_position_embeddings 64",
  model.forward, model, { input_ids = bl.tensor({ long }) })
bad("Lua: num_labels 0", "from_pretrained: num_labels must be between 2 and %d+, got 0",
  bl.BertForSequenceClassification.from_pretrained, folder(), { num_labels = 0 })
bad("Lua: mismatched dataset lengths", "TensorDataset: size mismatch between tensors: tensor 2 has 4 rows", bl.TensorDataset,
  bl.zeros(3, 2), bl.zeros(4))
bad("Lua: batch size 0", "DataLoader: batch_size must be a positive integer, got 0", bl.DataLoader,
  bl.TensorDataset(bl.zeros(3, 2)), { batch_size = 0 })
local ld = bl.DataLoader(bl.TensorDataset(bl.zeros(3, 2)), {})
bad("Lua: a loader order that is not a permutation", "DataLoader:iter: option 'order' is not a permutation of rows 1%.%.3 %(entry 2%)",
  ld.iter, ld, { order = { 1, 1, 2 } })
bad("Lua: a loader start past the epoch", "DataLoader:iter: option 'start' must be between 0 and 3, got 9", ld.iter, ld, { start = 9 })
bad("Lua: bl.set_rng_state with a negative seed", "set_rng_state: 'seed' must be a non%-negative integer", bl.set_rng_state, { seed = -1 })
bad("Lua: unknown option of DataLoader:iter", "DataLoader:iter: unknown option 'strat'", ld.iter, ld, { strat = 1 })
local m2 = load(folder())
m2:free()
bad("Lua: forward on a freed model", "the model was freed", m2.forward, m2, { input_ids = ids })
bad("Lua: parameters of a freed model", "the model was freed", m2.parameters, m2)
bad("Lua: save of a freed model", "the model was freed", m2.save, m2, tmp .. "/freed")
bad("Lua: bl.save_state without an optimizer", "save_state: 'optimizer' is required", bl.save_state, tmp .. "/st", { model = model })
bad("Lua: bl.load_state of a folder that is no state", "load_state: .*/nostate/state%.json is missing", bl.load_state,
  tmp .. "/nostate", { model = model, optimizer = opt })
local function rx(o) return function() return bl.run_experiment(o) end end
local RX = { model = folder(), data = csv("rx.csv", "Title,Conference\na b,X\nc d,Y\n"), progress = false }
local function with(k, v) local o = {} for a, b in pairs(RX) do o[a] = b end o[k] = v return o end
bad("run_experiment: limit 0", "run_experiment: limit must be a positive integer, got 0", rx(with("limit", 0)))
bad("run_experiment: limit -5", "run_experiment: limit must be a positive integer, got %-5", rx(with("limit", -5)))
bad("run_experiment: epochs 0", "run_experiment: epochs must be a positive integer, got 0", rx(with("epochs", 0)))
bad("run_experiment: lr = math.huge", "run_experiment: lr must be a finite number >= 0, got inf", rx(with("lr", math.huge)))
bad("run_experiment: on_nan of another value", "run_experiment: on_nan must be \"stop\" or \"skip\", got maybe", rx(with("on_nan", "maybe")))
bad("run_experiment: save_every without an out folder", "save_every and resume need an out folder", rx(with("save_every", 3)))
bad("run_experiment: resume of a folder that is no run", "cannot resume '.*': no run%.json there", rx({ resume = tmp .. "/norun" }))

-- ---------------------------------------------------------------- the command line
local BIN = os.getenv("BL_TEST_BIN") or "bin/bertlab"
local p = io.popen(BIN .. " -e 'require(\"bertlab\").read_csv(\"" .. tmp .. "/nul.csv\")' 2>&1; echo \"rc=$?\"")
local out = p:read("a")
p:close()
ncases = ncases + 1
T.check(out:find("nul%.csv:3: NUL byte at column 4") and not out:find("rc=0"),
  "bad input " .. ncases .. ": a script reading a bad CSV exits non-zero with the message", out)

for _, c in ipairs({ { "--limit 0", "limit must be a positive integer, got 0" }, { "--limit -5", "limit must be a positive integer, got %-5" },
                     { "--epochs 0", "epochs must be a positive integer, got 0" } }) do
  local pp = io.popen(("%s experiments/conference.lua --data %s --model %s --quiet --out %s/cli %s 2>&1; echo \"rc=$?\""):format(
    BIN, RX.data, RX.model, tmp, c[1]))
  local o = pp:read("a")
  pp:close()
  ncases = ncases + 1
  T.check(o:find(c[2]) and not o:find("rc=0") and not bl.file_exists(tmp .. "/cli/run.json"),
    "bad input " .. ncases .. ": conference.lua " .. c[1] .. " is refused up front (exit non-zero, no run.json)", o)
end

print(("# %d bad-input cases"):format(ncases))
T.check(ncases >= 40, "at least 40 bad-input cases", tostring(ncases))
os.execute("rm -rf '" .. tmp .. "'")
T.done()
