-- test_csv.lua: bl.read_csv (strict RFC 4180 via libcsv, pandas' cell values with dtype=str and
-- keep_default_na=False), its error messages, bl.unique and bl.value_counts.
-- Expected cells of tests/fixtures/csv/good.csv are what pandas 2.x reads from that file; the
-- tutorial checks use tests/fixtures/split/tutorial.txt, written by gen_split.py from pandas.
local T = require("testlib")
local bl = require("bertlab")
local FIX = "tests/fixtures/csv/"

-- good.csv: BOM, CRLF, quoted commas, doubled quotes, kept spaces, a newline inside quotes, empty
-- fields, multi-byte UTF-8, a blank line, no final newline
local df = bl.read_csv(FIX .. "good.csv")
T.same(df:columns(), { "Title", "Conference" }, "columns in header order, BOM stripped")
T.eq(df:nrows(), 8, "nrows (blank line skipped, last row without newline kept)")
T.same(df.Title, { "Quoted, with comma", 'He said "hi"', "  spaces kept  ", "multi\nline title", "",
  "Café — naïve 😀", "", "last row no newline" }, "Title cells as pandas reads them")
T.same(df:column("Conference"), { "VLDB", "WWW", "ISCAS", "INFOCOM", "SIGGRAPH", "WWW", "", "VLDB" },
  "Conference cells via df:column")
T.check(rawequal(df.Title, df:column("Title")), "df.Title and df:column('Title') are the same array")
T.check(tostring(df):find("8 rows", 1, true) ~= nil, "tostring names the row count")

local h = bl.read_csv(FIX .. "header_only.csv")
T.eq(h:nrows(), 0, "header-only file has 0 rows")
T.same(h.Title, {}, "header-only column is empty")

-- errors name the file and the line
local function errs(file, pattern, name)
  T.checkerror(pattern, name, bl.read_csv, FIX .. file)
end
errs("nope.csv", "csv/nope%.csv: No such file or directory", "missing file names the path")
T.checkerror("fixtures/csv: Is a directory", "a directory is reported, not read", bl.read_csv, "tests/fixtures/csv")
errs("empty.csv", "empty%.csv: empty file", "empty file")
errs("blank.csv", "blank%.csv: empty file", "file of blank lines is empty")
errs("ragged.csv", "ragged%.csv:6: expected 2 columns, got 3", "too many fields: line of the record (after a 2-line record)")
errs("ragged_crlf.csv", "ragged_crlf%.csv:5: expected 2 columns, got 3", "CRLF line ends count as one line each")
errs("ragged_few.csv", "ragged_few%.csv:3: expected 2 columns, got 1", "too few fields")
errs("unterminated.csv", "unterminated%.csv:3: unterminated quoted field", "unterminated quote names its line")
errs("badquote.csv", "badquote%.csv:3: malformed quoted field", "stray quote in an unquoted field (strict)")
errs("badutf8.csv", "badutf8%.csv:3: invalid UTF%-8 %(byte 0xFF at column 3%)", "invalid UTF-8 byte")
errs("surrogate.csv", "surrogate%.csv:3: invalid UTF%-8", "UTF-16 surrogate encoded in UTF-8 is invalid")
errs("dupcol.csv", "dupcol%.csv:1: duplicate column 'Title'", "duplicate column")
T.checkerror("good%.csv: no column 'X' %(columns: Title, Conference%)", "df:column of a missing column",
  df.column, df, "X")
T.checkerror("good%.csv: no column 'Titel'", "df.<missing> is an error too", function() return df.Titel end)
T.checkerror("bad argument #1", "read_csv needs a path", bl.read_csv)

-- bl.unique / bl.value_counts
T.same(bl.unique({ "b", "a", "b", "c", "a" }), { "b", "a", "c" }, "unique: order of first appearance")
T.same(bl.unique({ 3, 1, 3, 2 }), { 3, 1, 2 }, "unique on numbers")
T.same(bl.unique({}), {}, "unique of an empty list")
local vc, counts = bl.value_counts({ "x", "y", "y", "z", "x", "w", "w" })
local flat = {}
for i, e in ipairs(vc) do flat[i] = e[1] .. "=" .. e[2] end
T.eq(table.concat(flat, " "), "x=2 y=2 w=2 z=1", "value_counts: count descending, ties by first appearance")
T.eq(vc[4].value .. vc[4].count, "z1", "value_counts entries have .value and .count")
T.eq(counts.w, 2, "value_counts second result maps value -> count")
T.checkerror("unique: expected a Lua array", "unique of a non-table", bl.unique, "abc")
T.checkerror("value_counts: expected a Lua array", "value_counts of a non-table", bl.value_counts, 42)

-- the tutorial file, against pandas (fixture from gen_split.py)
local f = io.open("data/title_conference.csv")
if not f then
  T.skip("tutorial CSV", "data/title_conference.csv missing (run make data)")
else
  f:close()
  local fix = {}
  for line in io.lines("tests/fixtures/split/tutorial.txt") do
    local k, v = line:match("^(%S+) (.*)$")
    fix[k] = v
  end
  local t0 = os.clock()
  local tdf = bl.read_csv("data/title_conference.csv")
  local ms = (os.clock() - t0) * 1000
  T.eq(tdf:nrows(), tonumber(fix.nrows), "tutorial: rows as pandas")
  T.eq(table.concat(tdf:columns(), " "), fix.columns, "tutorial: columns as pandas")
  local hsh = 2166136261
  for _, s in ipairs(tdf.Title) do
    for i = 1, #s do hsh = ((hsh ~ s:byte(i)) * 16777619) & 0xFFFFFFFF end
    hsh = ((hsh ~ 10) * 16777619) & 0xFFFFFFFF
  end
  T.eq(hsh, tonumber(fix.title_fnv1a), "tutorial: FNV-1a of every title equals pandas'")
  T.eq(table.concat(bl.unique(tdf.Conference), " "), fix.labels, "tutorial: unique conferences as pandas")
  local parts = {}
  for i, e in ipairs(bl.value_counts(tdf.Conference)) do parts[i] = e.value .. "=" .. e.count end
  T.eq(table.concat(parts, " "), fix.counts, "tutorial: value_counts as pandas")
  print(("# read_csv of the tutorial file: %.1f ms"):format(ms))
end
T.done()
