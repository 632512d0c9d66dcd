-- bench.lua (`make bench`): bertlab against PyTorch + transformers on this machine, as one table
-- (printed, and written to build/bench/bench.csv and a dated copy). Each row runs each peer in its
-- own process (bench/peer_bertlab.lua, bench/peer_torch.py) on the same batches of real titles:
-- training steps/s (zero_grad, forward, backward, clip 1.0, AdamW), evaluation batches/s, peak RSS
-- (VmHWM), and the ratio bertlab/PyTorch; plus the training step's model FLOP/s against the sgemm
-- rate that OpenBLAS reaches at the layer's GEMM shapes (build/bench/sgemm, same threads).
-- Rows: the default model and a bert-base-sized one with random weights; batch 3 (dynamic padding,
-- 256) and 32 (dynamic, 128, 256, and 128 or 256 real tokens a row: full128, full256); 1 thread and
-- all cores.
-- Environment: BENCH_ROWS=pat[,pat...] keeps rows whose name contains a pattern (plain text, e.g.
--   "minilm/B3/", "/1t"; "minilm/B3" without the slash keeps the minilm/B32 rows too), or "quick"
--   (the default model's dynamic rows); BENCH_PEERS=bertlab skips
--   PyTorch; BENCH_PYTHON=/path/python uses that Python instead of the private venv
--   build/bench/venv (created on first use: pip install torch transformers); BENCH_BUDGET=GFLOP
--   (default 240) sets the reps: about that much work a timed phase of PyTorch's (4x that for
--   bertlab's, on the tokens it computes), at most 30 (60 eval);
--   BENCH_REUSE=build/bench/bench-DATE.csv takes PyTorch's columns from that earlier table for the
--   rows it has (PyTorch's speed does not change with bertlab's code; the table says so) and runs
--   PyTorch only for the others; BENCH_ROUNDS=N (default 1) runs each row's two peers N times,
--   alternating which goes first (A B, B A, ...), and gives the median of the rounds' rates and of
--   their ratios round by round (the machine's speed drifts between minutes, not within a pair);
--   each round's ratios are listed under the table and kept in the CSV (*_ratio_rounds);
--   BENCH_PAIRS=N (instead of BENCH_ROUNDS) starts both peers of a row at once and runs them in
--   lockstep, N pairs of 1.5 s blocks of training, then of evaluation, one peer's block right after
--   the other's, and gives x as the median of the pairs' ratios (listed under the table, and in the
--   same CSV columns; both peers are in memory at once: see run_pair).
local bl = require("bertlab")
local OUT = "build/bench"
local MINILM = "models/all-MiniLM-L6-v2"
local BASE = OUT .. "/bert-base-random"

local function sh(cmd)
  local p = io.popen(cmd .. " 2>&1")
  local s = p:read("a"); local ok = p:close()
  return s, ok
end
local function exists(path) local f = io.open(path); if f then f:close() end; return f ~= nil end
local function log(...) io.stderr:write(string.format(...), "\n") end
local function loadavg() local f = io.open("/proc/loadavg"); local s = f and f:read("l") or "?"; if f then f:close() end; return s:match("^(%S+ %S+ %S+)") or s end

-- a wrong setting: its message alone (no traceback: nothing in the bench went wrong), exit status 2
local function fail(msg) io.stderr:write("bench: ", msg, "\n"); os.exit(2) end
-- the environment's BENCH_ settings, checked before any work: a misspelt name or a value that is not
-- one would otherwise be ignored, and the run (up to an hour) measure something else than asked
local known = { BENCH_ROWS = true, BENCH_PEERS = true, BENCH_PYTHON = true, BENCH_BUDGET = true,
                BENCH_REUSE = true, BENCH_ROUNDS = true, BENCH_PAIRS = true }
for line in (sh("env")):gmatch("[^\n]+") do
  local name = line:match("^(BENCH_[%w_]*)=")
  if name and not known[name] then
    local names = {}
    for k in pairs(known) do names[#names + 1] = k end
    table.sort(names)
    fail(("unknown setting %s in the environment (known: %s)"):format(name, table.concat(names, ", ")))
  end
end
local function positive(name, default, integer)
  local s = os.getenv(name)
  if not s then return default end
  local v = tonumber(s)
  if not v or v <= 0 or v ~= v or v == math.huge or (integer and v ~= math.floor(v)) then
    fail(("%s=%s: want a positive %s"):format(name, s, integer and "integer" or "number"))
  end
  return v
end
os.execute("mkdir -p " .. OUT)
local nproc = tonumber((sh("nproc"))) or 1
local peers_env = os.getenv("BENCH_PEERS") or "bertlab,torch"
for p in peers_env:gmatch("[^,]+") do
  if p ~= "bertlab" and p ~= "torch" then
    fail(("BENCH_PEERS=%s: unknown peer %q (the peers: bertlab, torch)"):format(peers_env, p))
  end
end
local want_torch = peers_env:find("torch", 1, true) ~= nil
local budget = positive("BENCH_BUDGET", 240) * 1e9
local rounds = math.floor(positive("BENCH_ROUNDS", 1, true))
local npairs = os.getenv("BENCH_PAIRS") and math.floor(positive("BENCH_PAIRS", 1, true))
if npairs and os.getenv("BENCH_ROUNDS") then fail("BENCH_PAIRS and BENCH_ROUNDS: give one of them (pairs of blocks, or rounds of whole runs)") end
-- PyTorch's columns from an earlier table (BENCH_REUSE): row name -> {train_sps, eval_bps, rss_kb}
local reuse_path, reused = os.getenv("BENCH_REUSE"), {}
if reuse_path then
  local f = io.open(reuse_path)
  if not f then fail("BENCH_REUSE=" .. reuse_path .. ": no such file, or not readable (an earlier table: build/bench/bench-DATE.csv)") end
  local hdr = {}
  for line in f:lines() do
    local cells = {}
    for c in (line .. ","):gmatch("([^,]*),") do cells[#cells + 1] = c end
    if #hdr == 0 then hdr = cells
    else
      local row = {}
      for i, k in ipairs(hdr) do row[k] = cells[i] end
      -- tables from before every phase had a warm-up timed 1-rep phases cold: those rows are not comparable
      local warm = row.warmup == "1" or (tonumber(row.train_reps) or 0) >= 2 and (tonumber(row.eval_reps) or 0) >= 2
      if tonumber(row.torch_train_sps) and warm then
        reused[row.row] = { train_sps = tonumber(row.torch_train_sps), eval_bps = tonumber(row.torch_eval_bps),
                            rss_kb = tonumber(row.torch_rss_mb) * 1024, reused = true }
      end
    end
  end
  f:close()
end

if os.getenv("BENCH_PYTHON") and not select(2, sh("command -v " .. os.getenv("BENCH_PYTHON"))) then
  fail("BENCH_PYTHON=" .. os.getenv("BENCH_PYTHON") .. ": no such command (a Python with torch and transformers)")
end

local models = { { name = "minilm", dir = MINILM }, { name = "base", dir = BASE } }
-- {B, T}: T = 0 pads each batch to its longest title, T > 0 pads to T, T < 0 fills -T tokens with
-- titles run together (no padding: the GEMM-bound case, where bertlab has nothing to drop)
local shapes = { { 3, 0 }, { 3, 256 }, { 32, 0 }, { 32, 128 }, { 32, 256 }, { 32, -128 }, { 32, -256 } }
local threads = nproc > 1 and { 1, nproc } or { 1 }
local function row_name(m, s, th)
  local T = s[2]
  return ("%s/B%d/%s/%dt"):format(m.name, s[1], T == 0 and "dyn" or (T < 0 and "full" .. -T or tostring(T)), th)
end
-- BENCH_ROWS: patterns (plain substrings) of the rows to keep; each must name one at least.
-- keep[name]: the rows chosen (all of them without BENCH_ROWS)
local filter = os.getenv("BENCH_ROWS")
local pats = {}
if filter == "quick" then pats = { "minilm/B3/dyn", "minilm/B32/dyn" }
elseif filter then for p in filter:gmatch("[^,]+") do pats[#pats + 1] = p end end
local keep = {}
do
  local names = {}
  for _, m in ipairs(models) do
    for _, s in ipairs(shapes) do for _, th in ipairs(threads) do names[#names + 1] = row_name(m, s, th) end end
  end
  for _, n in ipairs(names) do keep[n] = #pats == 0 end
  for _, p in ipairs(pats) do
    local hit = false
    for _, n in ipairs(names) do
      if n:find(p, 1, true) then hit, keep[n] = true, true end
    end
    if not hit then fail(("BENCH_ROWS=%s: %q names no row (the rows: %s)"):format(filter, p, table.concat(names, ", "))) end
  end
end

if not exists(OUT .. "/sgemm") then
  -- without it every row's sgemm and frac columns would come out empty, after the whole run
  fail(OUT .. "/sgemm is missing: run `make bench` (or `make " .. OUT .. "/sgemm` first)")
end

-- the PyTorch peer's interpreter: BENCH_PYTHON, or the private venv (made once)
local python = os.getenv("BENCH_PYTHON")
if want_torch and not python then
  python = OUT .. "/venv/bin/python"
  if not exists(python) or not select(2, sh(python .. " -c 'import torch, transformers'")) then
    log("bench: creating %s/venv (pip install torch transformers; ~1 min with pip's cache, ~6 GB)", OUT)
    local out, ok = sh("python3 -m venv " .. OUT .. "/venv && " .. OUT .. "/venv/bin/pip install -q torch transformers")
    if not ok then log("bench: could not create the venv, PyTorch columns skipped:\n%s", out); want_torch = false end
  end
end

-- the titles' token ids, shuffled once (fixed seed): both peers read the same file
local ids_file = OUT .. "/titles.ids"
do
  local tok = bl.BertTokenizer.from_pretrained(MINILM)
  local titles = bl.read_csv("data/title_conference.csv").Title
  local x, order = 12345, {}
  for i = 1, #titles do order[i] = i end
  for i = #order, 2, -1 do
    x = (x * 1103515245 + 12345) % 2147483648
    local j = x % i + 1
    order[i], order[j] = order[j], order[i]
  end
  local f = assert(io.open(ids_file, "w"))
  for _, i in ipairs(order) do
    local ids = tok:encode(titles[i])
    if #ids > 256 then ids = table.move(ids, 1, 256, 1, {}); ids[256] = 102 end
    f:write(table.concat(ids, " "), "\n")
  end
  f:close()
end

-- the bert-base-sized model with random weights (transformers' initialisation, seed 0), made once
local function make_base()
  if exists(BASE .. "/model.safetensors") then return end
  if not python then error("bench: the bert-base-sized model needs Python with torch (BENCH_PYTHON or the venv)") end
  log("bench: writing %s (random weights)", BASE)
  local out, ok = sh(python .. " bench/peer_torch.py --make-random " .. BASE)
  if not ok then error("bench: could not write " .. BASE .. ":\n" .. out) end
end

local function config(dir)
  if dir == BASE then make_base() end
  local f = assert(io.open(dir .. "/config.json")); local s = f:read("a"); f:close()
  local function num(k) return tonumber(s:match('"' .. k .. '"%s*:%s*(%d+)')) end
  local c = { C = num("hidden_size"), L = num("num_hidden_layers"), I = num("intermediate_size") }
  c.layer = 4 * (c.C * c.C + c.C) + c.C * c.I + c.I + c.I * c.C + c.C + 4 * c.C
  c.params = c.L * c.layer
  c.qkv = 3 * (c.C * c.C + c.C)
  return c
end

-- training FLOPs of a step: 6 x encoder params x tokens + attention (QK^T and AV: 4 B T^2 C a
-- layer forward, x3 with backward); the forward is a third of it. With `rows` (bertlab's count),
-- the last layer past its attention works on the rows' [CLS] tokens only (runtime/bert.c), so its
-- parameters past the QKV projection count rows, not tokens.
local function train_flops(cfg, tokens, attn, rows)
  local enc = cfg.params * tokens
  if rows then enc = enc - (cfg.layer - cfg.qkv) * (tokens - rows) end
  return 6 * enc + 12 * cfg.L * attn * cfg.C
end

local rows = {}
for _, m in ipairs(models) do
  for _, s in ipairs(shapes) do
    for _, th in ipairs(threads) do
      local B, T = s[1], s[2]
      local name = row_name(m, s, th)
      if keep[name] then
        m.cfg = m.cfg or config(m.dir)
        -- reps from a phase's work: PyTorch computes the padding, bertlab only the titles (about
        -- 24 tokens a row whatever T > 0 pads to), so a padded row gives bertlab more reps; and
        -- bertlab, 2-90x faster, four times the work (its phases of a few steps drifted by 8%)
        local function reps(Te, work)
          local f = train_flops(m.cfg, B * Te, B * Te * Te)
          local tr = math.max(1, math.min(30, math.floor(work / f)))
          local ev = math.max(1, math.min(60, math.floor(3 * work / f)))
          if f < 1e12 then tr = math.max(tr, 2) end
          if f / 3 < 1e12 then ev = math.max(ev, 2) end
          return tr, ev
        end
        local Te = T == 0 and 24 or math.abs(T)
        local tr, ev = reps(T > 0 and 24 or Te, 4 * budget)
        local ptr, pev = reps(Te, budget)
        rows[#rows + 1] = { name = name, m = m, B = B, T = T, th = th, tr = tr, ev = ev, ptr = ptr, pev = pev }
      end
    end
  end
end

local function parse(out)
  local line = out:match("peer: ([^\n]*)")
  if not line then return nil end
  local r = {}
  for k, v in line:gmatch("([%w_]+)=(%S+)") do r[k] = tonumber(v) or v end
  return r
end

-- a peer's thread settings, as a prefix of its command
local function threads_env(th)
  return ("OMP_NUM_THREADS=%d OPENBLAS_NUM_THREADS=%d MKL_NUM_THREADS=%d "):format(th, th, th)
end

local function run_peer(cmd, th)
  local out = sh(threads_env(th) .. cmd)
  local r = parse(out)
  if not r then log("bench: peer failed: %s\n%s", cmd, out) end
  return r
end

-- BENCH_PAIRS=N: both peers of a row run at once, in lockstep (BENCH_SYNC in bench/peer_bertlab.lua
-- and bench/peer_torch.py): each waits on a FIFO while the other runs, and the bench hands out blocks
-- of PAIR_SECS of steps, bertlab's then PyTorch's (the order alternating pair by pair), N pairs of
-- training blocks, then N of evaluation. A pair's ratio sets two blocks seconds apart against each
-- other: on a VM whose cores slow down for seconds to minutes at a time, whole runs a minute apart
-- (BENCH_ROUNDS) catch different spells. bertlab's training blocks each sit between two sgemm
-- windows of their own (frac). Both peers are in memory at once. Returns the two peers' records (as
-- run_peer's) and the pairs' ratios, bertlab's rate over PyTorch's: ratios.train_sps[k] for pair k.
local PAIR_SECS = 1.5
local function run_pair(blcmd, ptcmd, th)
  local dir = OUT .. "/sync"
  local ok = os.execute(("rm -rf %s && mkdir -p %s && mkfifo %s/bl.go %s/bl.done %s/pt.go %s/pt.done")
    :format(dir, dir, dir, dir, dir, dir))
  if not ok then log("bench: could not make the FIFOs under %s", dir); return nil end
  local who_all = { "bl", "pt" }
  for _, who in ipairs(who_all) do
    -- a peer that ends (or dies) says so on its FIFO, so the bench never waits on a dead one
    os.execute(("(%sBENCH_SYNC=%s/%s %s >%s/%s.out 2>&1; echo \"exit $?\" >%s/%s.done) &")
      :format(threads_env(th), dir, who, who == "bl" and blcmd or ptcmd, dir, who, dir, who))
  end
  -- opened after both started (no peer inherits them), read-write so no open waits for the other end
  local ch, ended = {}, {}
  for _, who in ipairs(who_all) do
    ch[who] = { go = assert(io.open(dir .. "/" .. who .. ".go", "r+")), done = assert(io.open(dir .. "/" .. who .. ".done", "r+")) }
  end
  local function recv(who)
    local l = ch[who].done:read("l") or "exit ?"
    if l:match("^exit ") then ended[who] = l end
    return l
  end
  local function send(who, cmd) ch[who].go:write(cmd, "\n"); ch[who].go:flush() end
  local ratios = { train_sps = {}, eval_bps = {} }
  local good = recv("bl") == "ready" and recv("pt") == "ready"
  for _, pk in ipairs({ { "train", "train_sps" }, { "eval", "eval_bps" } }) do -- training first
    local phase, key = pk[1], pk[2]
    for k = 1, good and npairs or 0 do
      local rate = {}
      for _, who in ipairs(k % 2 == 1 and { "bl", "pt" } or { "pt", "bl" }) do
        if good then
          send(who, ("%s %g"):format(phase, PAIR_SECS))
          local l = recv(who)
          local n, dt = l:match("^n=(%d+) dt=(%S+)$")
          if n and tonumber(dt) > 0 then rate[who] = tonumber(n) / tonumber(dt)
          else good = false end
        end
      end
      if good then ratios[key][k] = rate.bl / rate.pt end
    end
  end
  local recs = {}
  for _, who in ipairs(who_all) do
    if not ended[who] then send(who, "quit") end
  end
  for _, who in ipairs(who_all) do
    while not ended[who] do recv(who) end
    ch[who].go:close(); ch[who].done:close()
    local f = io.open(dir .. "/" .. who .. ".out")
    local out = f and f:read("a") or ""
    if f then f:close() end
    recs[who] = ended[who] == "exit 0" and parse(out) or nil
    if not recs[who] then log("bench: peer failed (%s): %s\n%s", ended[who], who == "bl" and blcmd or ptcmd, out) end
  end
  return recs.bl, recs.pt, ratios
end

-- the sgemm rate at a row's shapes: bertlab's peer runs one window of 0.5 s before its timed
-- training steps and one after each block of about a second of them (BENCH_SGEMM, see
-- peer_bertlab.lua), so each block's FLOP/s is set against the rate the machine reached in the same
-- minute: frac is the median over the blocks of block GFLOP/s / the mean of its two windows. The
-- sgemm column is the best window (what the machine reached at these shapes), the CSV has the worst
-- too. OpenBLAS picks its kernels itself there (an OPENBLAS_CORETYPE of the environment is removed
-- for it): the machine's rate, not that of a kernel set someone forced.
local function sgemm_cmd(cfg, N, th)
  return ("env -u OPENBLAS_CORETYPE OPENBLAS_NUM_THREADS=%d %s/sgemm %d %d %d %d 0.5 1"):format(th, OUT, cfg.C, cfg.I, N, th)
end
local blas_core = (sh("env -u OPENBLAS_CORETYPE " .. OUT .. "/sgemm 64 64 64 1 0 1")):match("core=(%S+)")
local function median(t)
  local v = {}
  for _, x in ipairs(t) do v[#v + 1] = x end
  table.sort(v)
  local n = #v
  if n == 0 then return nil end
  return n % 2 == 1 and v[(n + 1) // 2] or (v[n // 2] + v[n // 2 + 1]) / 2
end

-- the tokens bertlab computes a training step (as peer_bertlab.lua counts them: each row's real
-- tokens, up to the padded width), known before the peer runs so sgemm can be measured before it
local title_len = {}
for line in io.lines(ids_file) do local n = 0; for _ in line:gmatch("%d+") do n = n + 1 end; title_len[#title_len + 1] = n end
local function computed_tokens(r)
  local sum = 0
  for k = 1, r.tr do
    if r.T < 0 then sum = sum + r.B * -r.T -- full rows: -T real tokens each
    else
      local lens, width = {}, r.T
      for b = 1, r.B do
        lens[b] = title_len[((k - 1) * r.B + b - 1) % #title_len + 1]
        if r.T == 0 then width = math.max(width, lens[b]) end
      end
      for b = 1, r.B do sum = sum + math.min(lens[b], width) end
    end
  end
  return sum / r.tr
end

-- one record from a peer's rounds: the median of their rates, the largest peak RSS
local function combine(list)
  local ok = {}
  for _, p in ipairs(list) do if p then ok[#ok + 1] = p end end
  if #ok == 0 then return nil end
  local c = {}
  for k, v in pairs(ok[1]) do c[k] = v end
  for _, key in ipairs({ "train_sps", "eval_bps" }) do
    local v = {}
    for _, p in ipairs(ok) do v[#v + 1] = p[key] end
    c[key] = median(v)
  end
  for _, p in ipairs(ok) do c.rss_kb = math.max(c.rss_kb, p.rss_kb) end
  return c
end
-- bertlab's rate / PyTorch's in the same round, round by round (a round where either peer failed:
-- none); round_ratio: their median
local function round_ratios(r, key)
  if r.pairs then return r.pairs[key] end -- BENCH_PAIRS: pair by pair
  local v = {}
  for k = 1, #r.bls do
    local a, b = r.bls[k], r.pts[k]
    if a and b and a[key] and b[key] and b[key] > 0 then v[#v + 1] = a[key] / b[key] end
  end
  return v
end
local function round_ratio(r, key) return median(round_ratios(r, key)) end

local load0, t_start = loadavg(), bl.clock()
local impl = {}
for i, r in ipairs(rows) do
  local args = ("%s %s %d %d %d %d %d"):format(r.m.dir, ids_file, r.B, r.T, r.th, r.tr, r.ev)
  local pargs = ("%s %s %d %d %d %d %d"):format(r.m.dir, ids_file, r.B, r.T, r.th, r.ptr, r.pev)
  log("bench: [%d/%d] %s (train %d, eval %d reps; PyTorch %d, %d%s) ...", i, #rows, r.name, r.tr, r.ev, r.ptr, r.pev,
    npairs and ("; %d pairs of %g s blocks"):format(npairs, PAIR_SECS) or rounds > 1 and ("; %d rounds"):format(rounds) or "")
  local N = math.floor(computed_tokens(r) + 0.5)
  r.bls, r.pts = {}, {}
  local blcmd = ("BENCH_SGEMM='%s' bin/bertlab bench/peer_bertlab.lua %s"):format(sgemm_cmd(r.m.cfg, N, r.th), args)
  if npairs and want_torch and not reused[r.name] then
    -- the same batches for both (bertlab's reps): each cycles through them block after block
    local bl_rec, pt_rec, ratios = run_pair(blcmd, python .. " bench/peer_torch.py " .. args, r.th)
    if bl_rec and pt_rec then
      r.bls[1], r.pts[1], r.pairs = bl_rec, pt_rec, ratios
    else
      log("bench: %s: the paired run failed (out of memory with both peers in it?); the peers one after the other instead", r.name)
    end
  end
  for k = 1, r.pairs and 0 or rounds do
    for _, who in ipairs(k % 2 == 1 and { "bl", "pt" } or { "pt", "bl" }) do
      if who == "bl" then
        r.bls[k] = run_peer(blcmd, r.th) or false
      elseif reused[r.name] then r.pts[k] = reused[r.name]
      elseif want_torch then r.pts[k] = run_peer(python .. " bench/peer_torch.py " .. pargs, r.th) or false end
    end
  end
  r.bl, r.pt = combine(r.bls), combine(r.pts)
  -- (paired, the training blocks need not end at the last of the reps' batches: within 2%)
  if r.bl and r.bl.ctokens and math.abs(r.bl.ctokens - N) > (r.pairs and 0.02 * N or 0.5) then
    log("bench: %s: the peer computed %.1f tokens a step, bench.lua expected %d (sgemm measured at %d)", r.name, r.bl.ctokens, N, N)
  end
  for _, p in ipairs({ r.bl, r.pt }) do if p and p.impl then impl[p.impl] = true end end
  -- bertlab's FLOPs: on the columns it computes (up to each batch's longest row), at those shapes
  local p = r.bl
  if p then
    r.flops = train_flops(r.m.cfg, p.ctokens or p.tokens, p.cattn or p.attn, r.B)
  end
  -- the blocks of all rounds: each one's FLOP/s against the mean of the sgemm windows beside it
  local fracs = {}
  for _, q in ipairs(r.bls) do
    for n, dt, ct, ca, g0, g1 in tostring(q and q.blocks or ""):gmatch("(%d+):([^:]+):(%d+):(%d+):([^:]+):([^;]+)") do
      n, dt, ct, ca, g0, g1 = tonumber(n), tonumber(dt), tonumber(ct), tonumber(ca), tonumber(g0), tonumber(g1)
      local gf = train_flops(r.m.cfg, ct / n, ca / n, r.B) * n / dt / 1e9
      fracs[#fracs + 1] = gf / ((g0 + g1) / 2)
      r.sgemm = math.max(r.sgemm or 0, g0, g1)
      r.sgemm_min = math.min(r.sgemm_min or math.huge, g0, g1)
    end
  end
  r.frac, r.nblocks = median(fracs), #fracs
end
local elapsed = bl.clock() - t_start

-- the table
local function f3(x) return x and ("%.3g"):format(x) or "-" end
local function f2(x) return x and ("%.2f"):format(x) or "-" end
local function ratio(a, b) return f2(a and b and b > 0 and a / b or nil) end
local function mb(p) return p and ("%.0f"):format(p.rss_kb / 1024) or "-" end
local function get(p, k) return p and p[k] end
local cpu = (sh("grep -m1 'model name' /proc/cpuinfo")):match(":%s*(.-)%s*$") or "?"
local impls = {}
for k in pairs(impl) do impls[#impls + 1] = k end
table.sort(impls)
local coretype = os.getenv("OPENBLAS_CORETYPE")
print(("bertlab bench %s: %s, %d cores, OpenBLAS core %s%s; %s; load average %s at start, %s at end; %.0f s")
  :format(os.date("%Y-%m-%d %H:%M"), cpu, nproc, blas_core or "?",
    coretype and (" (sgemm column; OPENBLAS_CORETYPE=%s in the environment for the peers)"):format(coretype) or "",
    table.concat(impls, " vs "), load0,
    loadavg(), elapsed))
print("rows: model/batch/padding (dyn: to the batch's longest title; 256, 128: padded to that; full128,")
print("  full256: 128 or 256 real tokens a row)/threads; reps: timed train steps/eval batches, bertlab's")
print("  then PyTorch's where they differ (each phase after one untimed warm-up step, on the widest timed")
print("  batch); GFLOP/s: bertlab's training step at (6 x encoder params x tokens + attention)")
print("  FLOPs on the tokens it computes (the rows' real tokens: it drops padding; the last layer past its")
print("  attention on the [CLS] tokens only); sgemm: OpenBLAS at that")
print("  layer's GEMM shapes, tokens and threads, on the kernels OpenBLAS picks itself: the best of the")
print("  windows of 0.5 s that bertlab's peer runs before its timed steps and after each second of them (the")
print("  CSV has the worst too); frac: the median over those seconds of their GFLOP/s / the mean of the two")
print("  windows beside them (so the machine's drift between minutes cancels), f/best: GFLOP/s / sgemm")
print("  (bertlab's linear layers run on its own kernels, kernels/cpu/skinny.c, not on OpenBLAS)")
if npairs then
  print(("  BENCH_PAIRS=%d: both peers at once, in lockstep: %d pairs of %g s blocks of training steps, then"):format(npairs, npairs, PAIR_SECS))
  print("  of evaluation, each pair bertlab's block and PyTorch's one after the other (the order alternating);")
  print("  rates are each peer's steps over its blocks' time, x the median of the pairs' ratios; frac's")
  print("  windows: one right before and one right after each of bertlab's training blocks")
elseif rounds > 1 then
  print(("  %d rounds a row, the peers' order alternating: rates are the rounds' medians, x the median of the"):format(rounds))
  print("  rounds' ratios (each round's bertlab against that round's PyTorch), RSS the largest")
end
local hdr = ("%-22s %11s | %8s %8s %5s | %8s %8s %5s | %6s %6s %5s | %7s %7s %5s %6s")
print(hdr:format("row", "reps", "train/s", "torch", "x", "eval/s", "torch", "x", "RSS MB", "torch", "x",
  "GFLOP/s", "sgemm", "frac", "f/best"))
-- a row's ratios round by round, in the rounds' order (the table gives their median)
local function each_round(r, key, fmt, sep)
  local v = {}
  for _, x in ipairs(round_ratios(r, key)) do v[#v + 1] = fmt:format(x) end
  return table.concat(v, sep)
end
local csv = { "row,model,batch,pad,threads,train_reps,eval_reps,bertlab_train_sps,torch_train_sps,train_ratio," ..
  "bertlab_eval_bps,torch_eval_bps,eval_ratio,bertlab_rss_mb,torch_rss_mb,rss_ratio,tokens_per_step," ..
  "computed_tokens_per_step,model_gflops,sgemm_gflops,sgemm_fraction,warmup,sgemm_min_gflops," ..
  "torch_train_reps,torch_eval_reps,sgemm_fraction_paired,paired_blocks,rounds,train_ratio_rounds," ..
  "eval_ratio_rounds,pairs" }
for _, r in ipairs(rows) do
  local gf = r.flops and get(r.bl, "train_sps") and r.flops * r.bl.train_sps / 1e9
  local frac = gf and r.sgemm and gf / r.sgemm
  local tx, ex = round_ratio(r, "train_sps"), round_ratio(r, "eval_bps")
  local reps = r.pairs and ("%dx%gs"):format(npairs, PAIR_SECS) or r.tr .. "/" .. r.ev
  if not r.pairs and r.pt and not r.pt.reused and (r.ptr ~= r.tr or r.pev ~= r.ev) then reps = reps .. " " .. r.ptr .. "/" .. r.pev end
  print(hdr:format(r.name, reps,
    f3(get(r.bl, "train_sps")), f3(get(r.pt, "train_sps")), f2(tx),
    f3(get(r.bl, "eval_bps")), f3(get(r.pt, "eval_bps")), f2(ex),
    mb(r.bl), mb(r.pt), ratio(get(r.pt, "rss_kb"), get(r.bl, "rss_kb")),
    gf and ("%.1f"):format(gf) or "-", r.sgemm and ("%.1f"):format(r.sgemm) or "-",
    f2(r.frac), f2(frac)))
  local function n(x) return x and ("%.6g"):format(x) or "" end
  csv[#csv + 1] = table.concat({ r.name, r.m.name, r.B, r.T == 0 and "dynamic" or r.T, r.th, r.tr, r.ev,
    n(get(r.bl, "train_sps")), n(get(r.pt, "train_sps")), n(tx),
    n(get(r.bl, "eval_bps")), n(get(r.pt, "eval_bps")), n(ex),
    n(get(r.bl, "rss_kb") and r.bl.rss_kb / 1024), n(get(r.pt, "rss_kb") and r.pt.rss_kb / 1024),
    n(get(r.bl, "rss_kb") and get(r.pt, "rss_kb") and r.pt.rss_kb / r.bl.rss_kb),
    n(get(r.bl, "tokens") or get(r.pt, "tokens")), n(get(r.bl, "ctokens")), n(gf), n(r.sgemm), n(frac), "1", n(r.sgemm_min),
    r.pt and not r.pt.reused and r.ptr or "", r.pt and not r.pt.reused and r.pev or "",
    n(r.frac), r.nblocks or "", rounds, each_round(r, "train_sps", "%.4g", ";"),
    each_round(r, "eval_bps", "%.4g", ";"), r.pairs and npairs or "" }, ",")
end
print("x: bertlab/PyTorch (for RSS: PyTorch's/bertlab's, so > 1 is better everywhere)")
if rounds > 1 or npairs then -- the spread behind each median x (the CSV has them too)
  print(npairs and "x pair by pair (train; eval):" or "x round by round (train; eval):")
  for _, r in ipairs(rows) do
    print(("  %-22s %s; %s"):format(r.name, each_round(r, "train_sps", "%.2f", " "), each_round(r, "eval_bps", "%.2f", " ")))
  end
end
local n_reused = 0
for _, r in ipairs(rows) do if r.pt and r.pt.reused then n_reused = n_reused + 1 end end
if n_reused > 0 then
  print(("PyTorch's columns of %d rows are from %s (BENCH_REUSE), not measured in this run"):format(n_reused, reuse_path))
end

-- the demo (make demo): 3,550 steps at batch 3 (dynamic) + 5 evaluations of 377 titles (12 batches of 32)
local by = {}
for _, r in ipairs(rows) do by[r.name] = r end
local t3, e32 = by[("minilm/B3/dyn/%dt"):format(nproc)], by[("minilm/B32/dyn/%dt"):format(nproc)]
if t3 and e32 and get(t3.bl, "train_sps") and get(e32.bl, "eval_bps") then
  local s = 3550 / t3.bl.train_sps + 60 / e32.bl.eval_bps
  print(("demo estimate (bertlab, %d threads): 3550 / %.1f steps/s + 60 / %.1f batches/s = %.0f s (%.1f min) plus loading and checkpoints")
    :format(nproc, t3.bl.train_sps, e32.bl.eval_bps, s, s / 60))
end

local stamp = os.date("%Y%m%d-%H%M%S")
for _, path in ipairs({ OUT .. "/bench.csv", OUT .. "/bench-" .. stamp .. ".csv" }) do
  local f = assert(io.open(path, "w")); f:write(table.concat(csv, "\n"), "\n"); f:close()
end
print(("csv: %s/bench.csv (and %s/bench-%s.csv)"):format(OUT, OUT, stamp))
