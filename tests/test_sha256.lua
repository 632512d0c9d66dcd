-- test_sha256.lua: bl.sha256 / bl.sha256_file (runtime/sha256.c) against FIPS 180-4's published
-- vectors and hashlib's digests (tests/fixtures/gen_sha256.py) of messages around the padding
-- boundaries; files hashed in 64 KiB blocks must agree with the in-memory hash.
local T = require("testlib")
local bl = require("bertlab")

-- FIPS 180-4 / NIST examples
T.eq(bl.sha256("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", "sha256('abc'), the FIPS example")
T.eq(bl.sha256(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", "sha256 of the empty string")
T.eq(bl.sha256("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
  "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1", "sha256 of the 448-bit FIPS message")
T.eq(bl.sha256(("a"):rep(1000000)), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0",
  "sha256 of one million 'a'")

local function message(n)
  local b = {}
  for i = 0, n - 1 do b[#b + 1] = string.char((i * 7 + n) % 256) end
  return table.concat(b)
end

local cases = dofile("tests/fixtures/sha256/digests.lua")
local bad_mem, bad_file = {}, {}
local path = os.tmpname()
for _, c in ipairs(cases) do
  local m = message(c.n)
  if bl.sha256(m) ~= c.hex then bad_mem[#bad_mem + 1] = c.n end
  local f = assert(io.open(path, "wb")); f:write(m); f:close()
  if bl.sha256_file(path) ~= c.hex then bad_file[#bad_file + 1] = c.n end
end
os.remove(path)
T.check(#cases >= 19 and #bad_mem == 0, ("bl.sha256 = hashlib on %d lengths (0..200003)"):format(#cases),
  "differs at lengths " .. table.concat(bad_mem, ","))
T.check(#bad_file == 0, "bl.sha256_file = hashlib (files read in 64 KiB blocks)", "differs at lengths " .. table.concat(bad_file, ","))
T.checkerror("sha256_file: /nonexistent/x: cannot open", "sha256_file: a missing file is an error naming it",
  bl.sha256_file, "/nonexistent/x")

-- terminal width: nil for a non-terminal (the test's stdout is a pipe or file)
local tmp = io.tmpfile()
T.eq(bl.terminal_width(tmp), nil, "terminal_width of a file is nil")
tmp:close()
T.checkerror("file handle or descriptor number expected", "terminal_width: bad argument", bl.terminal_width, "x")
T.done()
