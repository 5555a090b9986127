-- ShareableList (API.md "ShareableList" and its edge cases): values and holes, slot_bytes,
-- type changes, strings (UTF-8 or bytes, trailing NULs), errors that keep the old value,
-- untrusted layouts, close, transport by name, and the peer bugs of PEER-BUGS.md.
local lu = require "luaunit"
local H = require "helper"
local shm = require "luashm"

-- Python side: attach a list by name without letting 3.11's resource tracker unlink it.
local PY_LIST = [[
def attach_list(name):
    sl = shared_memory.ShareableList(name=name)
    resource_tracker.unregister(sl.shm._name, "shared_memory")
    return sl
]]

local function py(code, ...) return H.python(PY_LIST .. code, ...) end

TestList = {}

H.keeps_lists(TestList)

function TestList:test_values_types_len_and_format()
  local l = self:list({ "howdy", -273.154, 100, true, false, 2.0, "" })
  lu.assertEquals(#l, 7)
  lu.assertEquals(l[1], "howdy")
  lu.assertEquals(l[2], -273.154)
  lu.assertEquals(l[3], 100)
  lu.assertEquals(math.type(l[3]), "integer")
  lu.assertEquals(l[4], true)
  lu.assertEquals(l[5], false)
  lu.assertEquals(math.type(l[6]), "float")
  lu.assertEquals(l[7], "")
  lu.assertEquals(l.format, "8sdqxxxxxxx?xxxxxxx?d8s")
  lu.assertStrMatches(l.name, "luashm_" .. ("%x"):rep(16))
  lu.assertEquals(l.block.name, l.name)
  lu.assertEquals(tostring(l.block):match("^luashm.Block"), "luashm.Block")
end

function TestList:test_integer_extremes_and_float_specials()
  local l = self:list({ math.maxinteger, math.mininteger, 0, -1, math.huge, -math.huge, 0 / 0, -0.0 })
  lu.assertEquals(l[1], math.maxinteger)
  lu.assertEquals(l[2], math.mininteger)
  lu.assertEquals(l[4], -1)
  lu.assertEquals(l[5], math.huge)
  lu.assertEquals(l[6], -math.huge)
  lu.assertNotEquals(l[7], l[7])
  lu.assertEquals(1 / l[8], -math.huge)
end

function TestList:test_table_pack_holes_and_n()
  local l = self:list(table.pack(1, nil, 3, nil))
  lu.assertEquals(#l, 4)
  lu.assertEquals(l.format, "qxxxxxx?xqxxxxxx?x")
  lu.assertNil(l[2])
  lu.assertNil(l[4])
  lu.assertEquals(l[3], 3)
  -- n shorter than the table: the rest is ignored
  local m = self:list({ 1, 2, 3, n = 2 })
  lu.assertEquals(#m, 2)
  lu.assertEquals(m:totable(), { 1, 2, n = 2 })
  H.assert_error({ "luashm: list: values.n must be a non-negative integer" }, shm.list, { n = -1 })
  H.assert_error({ "values.n must be" }, shm.list, { n = 1.5 })
  H.assert_error({ "values.n must be" }, shm.list, { n = "3" })
end

function TestList:test_empty_list()
  local l = self:list({})
  lu.assertEquals(#l, 0)
  lu.assertEquals(l.format, "")
  lu.assertEquals(l:count("any"), 0)
  lu.assertNil(l:index(nil))
  lu.assertNil(l[1])
  lu.assertEquals(l:totable(), { n = 0 })
  lu.assertEquals(tostring(l), "ShareableList({}, name='" .. l.name .. "')")
  -- our empty list carries its trailing area, so shm.open recognises it
  local o <close> = shm.open(l.name)
  lu.assertEquals(#o, 0)
  lu.assertStrContains(tostring(o), "ShareableList({}")
end

function TestList:test_unsupported_value_names_lowest_index()
  H.assert_error({ "luashm: list: value at index 2 is a table", "expected integer, float, boolean, string or nil" },
    shm.list, { 1, {}, print, {} })
  H.assert_error({ "value at index 1 is a function" }, shm.list, { print })
  H.assert_error({ "value at index 3 is a userdata" }, shm.list, { 1, 2, io.stdout })
  -- a sparse table (n > #values) is walked with next(): still the lowest bad index
  H.assert_error({ "value at index 2 is a table" }, shm.list, { [9] = print, [2] = {}, [5] = {}, n = 10 })
  H.assert_error({ "value at index 7 is a function" }, shm.list, { [7] = print, [11] = {}, n = 10 })
  local l = self:list({ 1 })
  H.assert_error({ "luashm: list '" .. l.name .. "': value for item 1 is a table" }, function() l[1] = {} end)
  lu.assertEquals(l[1], 1)
end

function TestList:test_out_of_range_reads_nil_writes_error()
  local l = self:list({ 10, 20 })
  for _, k in ipairs({ 0, 3, -1, 1.5, math.mininteger, math.maxinteger, "x", "1", true }) do
    lu.assertNil(l[k], tostring(k))
  end
  lu.assertEquals(l[2.0], 20)
  H.assert_error({ "luashm: list '" .. l.name .. "': index 3 is out of range (1..2)" }, function() l[3] = 1 end)
  H.assert_error({ "index 0 is out of range" }, function() l[0] = 1 end)
  H.assert_error({ "index -1 is out of range" }, function() l[-1] = 1 end)
  H.assert_error({ "index 1.5 is not an integer" }, function() l[1.5] = 1 end)
  H.assert_error({ "fields are read-only" }, function() l.name = "x" end)
  H.assert_error({ "fields are read-only" }, function() l.foo = 1 end)
  l[2.0] = 21
  lu.assertEquals(l[2], 21)
end

function TestList:test_slot_changes_type_within_its_storage()
  local l = self:list({ 1, "abcdefghij" }) -- slots of 8 and 16 bytes
  local seq = { 2.5, true, false, "12345678", nil, -7, "" }
  for _, v in ipairs({ 1, 2 }) do
    for k = 1, 7 do
      l[v] = seq[k]
      lu.assertEquals(l[v], seq[k])
    end
  end
  l[2] = ("z"):rep(16)
  lu.assertEquals(l[2], ("z"):rep(16))
  lu.assertEquals(l.format, "8s16s")
  H.assert_error({ "a string of 9 bytes does not fit item 1 (8 bytes)" }, function() l[1] = "123456789" end)
  l[1] = 5
  lu.assertEquals(l.format, "q16s")
end

function TestList:test_slot_bytes_is_a_minimum_rounded_to_8()
  local l = self:list({ "a", 1, "b", ("c"):rep(30) }, { slot_bytes = 10 })
  -- strings get max(8 * (len // 8 + 1), 16); numbers keep 8 bytes
  lu.assertEquals(l.format, "16sq16s32s")
  l[1] = ("x"):rep(16)
  lu.assertEquals(l[1], ("x"):rep(16))
  H.assert_error({ "17 bytes does not fit item 1 (16 bytes)" }, function() l[1] = ("x"):rep(17) end)
  local z = self:list({ "" }, { slot_bytes = 0 })
  lu.assertEquals(z.format, "8s")
  H.assert_error({ "luashm: list: opts.slot_bytes must be an integer from 0 to 9999992" }, shm.list, { "a" }, { slot_bytes = -1 })
  H.assert_error({ "opts.slot_bytes" }, shm.list, { "a" }, { slot_bytes = 1.5 })
  H.assert_error({ "opts.slot_bytes" }, shm.list, { "a" }, { slot_bytes = 10000000 })
  H.assert_error({ "opts.slot_bytes" }, shm.list, { "a" }, { slot_bytes = "8" })
  -- contract v1's name for it is an unknown option now, and says so
  H.assert_error({ "luashm: list: unknown option 'capacity' (contract v2 calls it slot_bytes)" }, shm.list, { "a" }, { capacity = 8 })
  H.assert_error({ "luashm: list: unknown option 'slot_byte' (valid: name, track, mode, slot_bytes)" }, shm.list, { "a" }, { slot_byte = 8 })
end

function TestList:test_name_and_track_options()
  local name = "luashm_listtest_" .. math.random(1e9)
  local l = self:list({ 1 }, { name = name, track = false })
  lu.assertEquals(l.name, name)
  H.assert_error({ "luashm: create '" .. name .. "'", "already exists" }, shm.list, { 1 }, { name = name })
  H.assert_raises(shm.list, { 1 }, { name = 5 })
  H.assert_raises(shm.list, { 1 }, "opts")
end

function TestList:test_longest_string_slot()
  local max = 9999991
  local s = ("m"):rep(max)
  local l = self:list({ s })
  lu.assertEquals(l.format, "9999992s")
  lu.assertEquals(#l[1], max)
  H.assert_error({ "luashm: list: the string at index 1 is longer than a slot can hold (9999991 bytes)" },
    shm.list, { s .. "m" })
end

function TestList:test_huge_n_fails_fast()
  local t0 = os.clock()
  H.assert_error({ "luashm: create '" }, shm.list, { n = 1 << 40 })
  H.assert_error({ "too many" }, shm.list, { n = math.maxinteger })
  lu.assertTrue(os.clock() - t0 < 5)
end

function TestList:test_count_index_totable_iteration()
  local l = self:list(table.pack(42, "a", 42.0, true, nil, "a", 1))
  lu.assertEquals(l:count(42), 2) -- 42 == 42.0 in Lua
  lu.assertEquals(l:count("a"), 2)
  lu.assertEquals(l:count(true), 1)
  lu.assertEquals(l:count(nil), 1)
  lu.assertEquals(l:count("nope"), 0)
  lu.assertEquals(l:index("a"), 2)
  lu.assertEquals(l:index(1), 7) -- true is not 1
  lu.assertEquals(l:index(nil), 5)
  lu.assertNil(l:index("nope"))
  lu.assertEquals(l:totable(), { 42, "a", 42.0, true, nil, "a", 1, n = 7 })
  local seen = {}
  for i, v in ipairs(l) do seen[i] = v end
  lu.assertEquals(seen, { 42, "a", 42.0, true }) -- ipairs stops at the nil, as for tables
  local count, last = 0, nil
  for i, v in pairs(l) do
    count = count + 1
    last = i
    lu.assertEquals(v, l[i])
  end
  lu.assertEquals(count, 7)
  lu.assertEquals(last, 7)
end

function TestList:test_tostring_and_elision()
  local l = self:list(table.pack(1, 2.5, "a\"b\n\0", nil, true))
  lu.assertEquals(tostring(l), "ShareableList({1, 2.5, \"a\\\"b\\n\\000\", nil, true}, name='" .. l.name .. "')")
  local values = {}
  for i = 1, 100 do values[i] = i end
  local big = self:list(values)
  local s = tostring(big)
  lu.assertStrContains(s, "ShareableList({1, 2, 3, 4, 5, 6, 7, 8, 9, 10, ... (80 more) ..., 91, 92")
  lu.assertStrContains(s, "99, 100}, name='")
end

function TestList:test_close_invalidates_views()
  local l = self:list({ 1, "x" })
  local name = l.name
  local b = l.block
  lu.assertFalse(l.closed)
  b:close()
  lu.assertTrue(l.closed)
  H.assert_error({ "luashm: list '" .. name .. "' is closed" }, function() return l[1] end)
  H.assert_error({ "is closed" }, function() l[1] = 2 end)
  H.assert_error({ "is closed" }, function() return #l end)
  H.assert_error({ "is closed" }, l.count, l, 1)
  H.assert_error({ "is closed" }, l.totable, l)
  H.assert_error({ "is closed" }, function() return l.format end)
  lu.assertEquals(tostring(l), "luashm.List '" .. name .. "' (closed)")
  lu.assertTrue(shm.exists(name), "close must not unlink")
  do
    local o <close> = shm.open(name)
    lu.assertEquals(o[2], "x")
    o:close()
    o:close()
    lu.assertTrue(o.closed)
  end
  local c
  do
    local o <close> = shm.open(name)
    c = o
  end
  lu.assertTrue(c.closed)
end

-- Collecting a List does not close a Block the program still holds.
function TestList:test_gc_keeps_held_block_open()
  local l = self:list({ 7 })
  local b = l.block
  l = nil ---@diagnostic disable-line
  collectgarbage()
  collectgarbage()
  lu.assertFalse(b.closed)
  lu.assertEquals(shm.open(b.name)[1], 7)
end

function TestList:test_shm_open_returns_a_list_and_shares_pages()
  local l = self:list({ 1, "two", 3.0 })
  local o <close> = shm.open(l.name)
  lu.assertEquals(tostring(o):sub(1, 14), "ShareableList(")
  lu.assertEquals(o:totable(), { 1, "two", 3.0, n = 3 })
  o[2] = "deux"
  lu.assertEquals(l[2], "deux")
  l[1] = false
  lu.assertEquals(o[1], false)
end

function TestList:test_all_zero_block_opens_as_block()
  for _, size in ipairs({ 16, 17, 24, 64, 4096 }) do
    local b <close> = shm.create(size)
    local o <close> = shm.open(b.name)
    lu.assertStrContains(tostring(o), "luashm.Block")
    b:unlink()
  end
end

-- The by-name protocol: what channels and workers use to move a List.
function TestList:test_ref_and_reopener()
  local l = self:list({ 1, "a\0" })
  local back <close> = shm.decode(shm.encode(l)) -- by name (and the block's identity)
  lu.assertEquals(back.name, l.name)
  local r <close> = shm.decode(H.ref_message("list", l.name))
  lu.assertEquals(r[2], "a\0")
  r[1] = 99
  lu.assertEquals(l[1], 99)
end

-- Through a real channel: the List travels by name and arrives attached to the same pages.
function TestList:test_list_travels_through_a_channel()
  local l = self:list(table.pack(1, "a\0", nil))
  local ch <close> = shm.channel()
  ch:send({ list = l, tag = "x" })
  local v = ch:recv(5)
  ch:unlink()
  lu.assertEquals(v.tag, "x")
  lu.assertNotIs(v.list, l)
  lu.assertEquals(v.list:totable(), { 1, "a\0", nil, n = 3 })
  v.list[1] = 99
  lu.assertEquals(l[1], 99)
end

function TestList:test_another_process_reads_and_writes()
  local l = self:list({ 1, "x\0\0", 3 })
  local out, err, ok = H.luashm([[
local l <close> = shm.open(arg[1])
io.write(#l, " ", l[1], " ", #l[2], " ", l.format, "\n")
l[3] = "child\0"
]], l.name)
  lu.assertTrue(ok, err)
  lu.assertEquals(out, "3 1 3 q8sq\n")
  lu.assertEquals(l[3], "child\0")
end

-- ---------------------------------------------------------------------------------------
-- Untrusted layouts: clear errors, never a crash.
-- ---------------------------------------------------------------------------------------

-- A block holding the bytes of a valid list of `values`, for corrupting.
local function list_bytes(values)
  local l <close> = shm.list(values, { track = false })
  local bytes = l.block:read()
  l.block:unlink()
  return bytes
end

local function open_bytes(self, bytes)
  local b = shm.create(#bytes)
  self.names[#self.names + 1] = b.name
  b:write(0, bytes)
  b:close()
  return shm.open(b.name)
end

function TestList:test_layout_corruptions_are_errors_or_blocks()
  -- n = 3: offsets at 8..32, data at 40 (3 slots of 8), formats at 64, codes at 88, then the
  -- exact-length area at 96 (magic, 3 records)
  local good = list_bytes({ 1, "abc", 2.5 })
  lu.assertEquals(#good, 96 + 8 + 24)
  local function patch(off, s) return good:sub(1, off) .. s .. good:sub(off + #s + 1) end
  local cases = {
    { "count past the block", patch(0, string.pack("<i8", 1000)) },
    { "negative count", patch(0, string.pack("<i8", -1)) },
    { "first offset", patch(8, string.pack("<i8", 8)) },
    { "offset past the end", patch(16, string.pack("<i8", 1 << 40)) },
    { "offset not a multiple of 8", patch(16, string.pack("<i8", 12)) },
    { "offsets out of order", patch(24, string.pack("<i8", 8)) },
    { "data end", patch(32, string.pack("<i8", 40)) },
    { "bad format", patch(64, "z\0\0\0\0\0\0\0") },
    { "string count past slot", patch(72, "99s\0\0\0\0\0") },
    { "format garbage after NUL", patch(64, "q\0x\0\0\0\0\0") },
    { "bad code", patch(88, "\7") },
    { "code/format mismatch", patch(89, "\0") },
    { "truncated", good:sub(1, 100) },
    { "extra area without magic", patch(96, "nomagic!") },
    { "one byte more", good .. "\0" },
  }
  for _, case in ipairs(cases) do
    local o <close> = open_bytes(self, case[2])
    lu.assertStrContains(tostring(o), "luashm.Block", case[1])
  end
  -- reopening by name as a list (no probe first) reports the cause
  local function reopen(name) return shm.decode(H.ref_message("list", name)) end
  local b <close> = shm.create(#good)
  self.names[#self.names + 1] = b.name
  b:write(0, cases[1][2])
  H.assert_error({ "luashm: open '" .. b.name .. "': not a list: item count 1000 does not fit in 128 bytes" }, reopen, b.name)
  b:write(0, cases[8][2])
  H.assert_error({ "not a list: item 1: bad format or type code" }, reopen, b.name)
  b:write(0, cases[4][2])
  H.assert_error({ "not a list: item 1: bad slot end offset 1099511627776" }, reopen, b.name)
  b:write(0, good:sub(1, 32) .. string.pack("<i8", 1 << 40) .. good:sub(41))
  H.assert_error({ "not a list: data area of 1099511627776 bytes runs past the end of the block" }, reopen, b.name)
  b:write(0, cases[5][2])
  H.assert_error({ "not a list: item 1: bad slot end offset 12" }, reopen, b.name)
end

-- Another process may write garbage into an item's format after we opened the list.
function TestList:test_format_corrupted_after_open()
  local l = self:list({ 1, "abc" })
  local b = l.block
  b:write(8 * 4 + 16, "zzzzzzzz") -- item 1's format
  H.assert_error({ "luashm: list '" .. l.name .. "': item 1 has a bad format or type code" }, function() return l[1] end)
  lu.assertEquals(l[2], "abc")
  l[1] = 5 -- a write repairs it
  lu.assertEquals(l[1], 5)
  b:write(8 * 4 + 16 + 8, "9999s\0\0\0") -- item 2 claims more than its slot
  H.assert_error({ "item 2 has a bad format" }, function() return l[2] end)
  b:write(8 * 4 + 16 + 16 + 1, "\9")
  H.assert_error({ "item 2 has a bad format" }, function() return l[2] end)
end

function TestList:test_random_bytes_never_crash()
  math.randomseed(106939)
  local good = list_bytes({ 1, "abc", 2.5, true })
  for _ = 1, 200 do
    local t = {}
    for i = 1, #good do t[i] = good:sub(i, i) end
    for _ = 1, math.random(1, 4) do
      local i = math.random(1, #good)
      t[i] = string.char(math.random(0, 255))
    end
    local o <close> = open_bytes(self, table.concat(t))
    if tostring(o):match("^ShareableList") then
      for i = 1, #o do pcall(function() return o[i] end) end
      pcall(function() return o.format end)
    end
  end
end

-- ---------------------------------------------------------------------------------------
-- Peer bugs (PEER-BUGS.md)
-- ---------------------------------------------------------------------------------------

-- gh-106939, gh-96779: CPython strips trailing NULs; we keep them, and CPython still reads.
function TestList:test_gh106939_gh96779_trailing_nuls_round_trip()
  local values = { "a\0", "\0", "\0\0\0\0\0\0\0\0", "bin\xff\0\0", "mid\0dle\0", "x", "" }
  local l = self:list(values)
  for i, v in ipairs(values) do lu.assertEquals(l[i], v, i) end
  -- through a second handle and shm.open, and after rewriting
  local o <close> = shm.open(l.name)
  for i, v in ipairs(values) do lu.assertEquals(o[i], v, i) end
  o[6] = "y\0"
  lu.assertEquals(l[6], "y\0")
  o[6] = "y"
  lu.assertEquals(l[6], "y")
  o[6] = "y\0"
  -- in another process
  local out, err, ok = H.luashm([[
local l <close> = shm.open(arg[1])
local t = {}
for i = 1, #l do t[i] = string.format("%q", l[i]) end
io.write(table.concat(t, ","))
]], l.name)
  lu.assertTrue(ok, err)
  local expect = {}
  for i, v in ipairs({ "a\0", "\0", "\0\0\0\0\0\0\0\0", "bin\xff\0\0", "mid\0dle\0", "y\0", "" }) do
    expect[i] = string.format("%q", v)
  end
  lu.assertEquals(out, table.concat(expect, ","))
  -- CPython reads the stripped values with the right types
  lu.assertEquals(py([[
sl = attach_list(sys.argv[1])
print(list(sl))
sl.shm.close()
]], l.name), "['a', '', '', b'bin\\xff', 'mid\\x00dle', 'y', '']\n")
end

-- A value that CPython wrote after us reads back as CPython wrote it.
function TestList:test_trailing_nul_record_yields_to_python_writes()
  local l = self:list({ "ab\0\0", "cd\0", "ef\0" })
  py([[
sl = attach_list(sys.argv[1])
sl[0] = "xy"     # a different value
sl[1] = b"cd"    # the same bytes, another type (bytes)
sl[2] = 5        # another type altogether
sl.shm.close()
]], l.name)
  lu.assertEquals(l[1], "xy")
  lu.assertEquals(l[2], "cd")
  lu.assertEquals(l[3], 5)
end

-- A list made by CPython has no room for the exact length: refuse rather than lose the NULs.
function TestList:test_trailing_nuls_into_cpython_list_is_an_error()
  local name = py([[
sl = shared_memory.ShareableList(["abc", 1])
resource_tracker.unregister(sl.shm._name, "shared_memory")
print(sl.shm.name)
sl.shm.close()
]]):match("%S+")
  self.names[#self.names + 1] = name
  local l <close> = shm.open(name)
  H.assert_error({ "luashm: list '" .. name .. "': item 1: a string ending in NUL bytes cannot be kept exactly in a list made by CPython" },
    function() l[1] = "x\0" end)
  lu.assertEquals(l[1], "abc")
  l[1] = "x\0y"
  lu.assertEquals(l[1], "x\0y")
end

-- gh-145261, gh-88336: slots are sized by encoded bytes, so multibyte strings never spill.
function TestList:test_gh145261_gh88336_slots_sized_by_encoded_bytes()
  local s = ("é"):rep(7) -- 7 characters, 14 bytes: CPython would reserve 8
  local l = self:list({ s, "next" })
  lu.assertEquals(l.format, "16s8s")
  lu.assertEquals(l[1], s)
  lu.assertEquals(l[2], "next")
  l[1] = ("€"):rep(5) -- 15 bytes
  lu.assertEquals(l[2], "next")
  H.assert_error({ "a string of 18 bytes does not fit item 1 (16 bytes)" }, function() l[1] = ("€"):rep(6) end)
  lu.assertEquals(l[2], "next")
  lu.assertEquals(py([[
sl = attach_list(sys.argv[1])
print(sl[0], sl[1], len(sl[0]))
sl.shm.close()
]], l.name), ("€"):rep(5) .. " next 5\n")
end

-- gh-84510 (bpo-40330): the size check runs on encoded bytes, before anything is written.
function TestList:test_gh84510_failed_write_keeps_old_value()
  local l = self:list({ "héllo", 7, "tail\0" })
  local before = l.block:read()
  H.assert_error({ "does not fit item 1 (8 bytes)" }, function() l[1] = "héllo wo" end) -- 9 bytes
  H.assert_error({ "does not fit item 2 (8 bytes)" }, function() l[2] = "123456789" end)
  H.assert_error({ "value for item 2 is a function" }, function() l[2] = print end)
  H.assert_error({ "value for item 3 is a table" }, function() l[3] = {} end)
  lu.assertEquals(l.block:read(), before)
  lu.assertEquals(l:totable(), { "héllo", 7, "tail\0", n = 3 })
end

-- gh-81833 (bpo-37652): a single numeric slot write is one aligned 8-byte store, so a reader
-- never sees a torn number even while another process rewrites it continuously.
function TestList:test_gh81833_numeric_slot_write_is_never_torn()
  local a, b = 0x0101010101010101, -0x0202020202020203 -- every byte differs between them
  local l = self:list({ a, 0 })
  local script = os.tmpname()
  local f = assert(io.open(script, "w"))
  f:write([[
local l <close> = shm.open(arg[1])
local a, b = ]] .. a .. ", " .. b .. [[

l[2] = 1 -- started
for _ = 1, 2000000 do l[1] = b; l[1] = a end
l[2] = 2 -- done
]])
  f:close()
  local p = io.popen(H.shell_quote(H.host) .. " " .. script .. " " .. l.name)
  local torn, reads, t0 = 0, 0, os.time()
  while l[2] ~= 2 and os.time() - t0 < 60 do
    local v = l[1]
    reads = reads + 1
    if v ~= a and v ~= b then torn = torn + 1 end
  end
  p:close()
  os.remove(script)
  lu.assertEquals(l[2], 2, "the writer did not finish")
  lu.assertEquals(torn, 0)
  lu.assertTrue(reads > 0)
end

-- ---------------------------------------------------------------------------------------
-- Misuse never crashes
-- ---------------------------------------------------------------------------------------

function TestList:test_bad_argument_sweep()
  for _, v in ipairs({ true, 1, "x", print }) do H.assert_raises(shm.list, v) end
  H.assert_raises(shm.list)
  H.assert_raises(shm.list, {}, 5)
  local l = self:list({ 1 })
  for _, m in ipairs({ "count", "index", "totable", "close" }) do
    H.assert_raises(l[m], nil)
    H.assert_raises(l[m], 42)
    H.assert_raises(l[m], l.block)
  end
  lu.assertNil(l.nosuch)
end

os.exit(lu.LuaUnit.run())
