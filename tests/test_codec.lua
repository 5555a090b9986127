-- The value codec (bindings/core/codec.c) through shm.encode/shm.decode: every value kind round
-- trips exactly, luashm objects travel by name, unsendable values are errors that name the
-- type and the path, and malformed bytes are errors, never crashes.
local lu = require "luaunit"
local H = require "helper"
local shm = require "luashm"

TestCodec = {}

local function roundtrip(...)
  return shm.decode(shm.encode(...))
end

function TestCodec:test_scalars_keep_their_type()
  local i, f, s, t, fa, n = roundtrip(42, 42.0, "s", true, false, nil)
  lu.assertEquals(math.type(i), "integer")
  lu.assertEquals(math.type(f), "float")
  lu.assertEquals(i, 42)
  lu.assertEquals(f, 42.0)
  lu.assertEquals(s, "s")
  lu.assertIsTrue(t)
  lu.assertIsFalse(fa)
  lu.assertNil(n)
  lu.assertEquals(select("#", roundtrip(nil, nil, nil)), 3)
  lu.assertEquals(select("#", roundtrip()), 0)
end

function TestCodec:test_number_edges()
  local vals = { math.mininteger, math.maxinteger, -1, 0, 1, 127, 128, -129, 2 ^ 53, -0.0,
    math.huge, -math.huge, 1e-310, math.pi }
  local back = table.pack(roundtrip(table.unpack(vals)))
  for k, v in ipairs(vals) do
    lu.assertEquals(back[k], v)
    lu.assertEquals(math.type(back[k]), math.type(v))
  end
  lu.assertEquals(1 / back[10], -math.huge) -- -0.0 keeps its sign
  local nan = roundtrip(0 / 0)
  lu.assertTrue(nan ~= nan)
end

function TestCodec:test_binary_strings()
  local all = {}
  for c = 0, 255 do all[#all + 1] = string.char(c) end
  local s = table.concat(all)
  lu.assertEquals(roundtrip(s), s)
  lu.assertEquals(roundtrip("ends in NUL\0\0"), "ends in NUL\0\0")
  lu.assertEquals(roundtrip(""), "")
  local big = ("0123456789"):rep(100000)
  lu.assertEquals(roundtrip(big), big)
end

function TestCodec:test_tables_nested_mixed_keys()
  local t = { 1, 2.5, "three", { 4, { 5 } }, x = { y = { z = "deep" } }, [true] = "yes",
    [1.5] = "float key", [-7] = "negative", [0] = "zero", ["with space"] = 1, e = {} }
  local b = roundtrip(t)
  lu.assertEquals(b, t)
  lu.assertEquals(math.type(b[2]), "float")
  lu.assertEquals(b[4][2][1], 5)
  lu.assertEquals(b[true], "yes")
  lu.assertEquals(b[1.5], "float key")
  lu.assertEquals(next(b.e), nil)
end

function TestCodec:test_holes_and_sparse_keys()
  local t = { 1, nil, 3, [10] = 10, [2 ^ 40] = "far" }
  local b = roundtrip(t)
  lu.assertEquals(b[1], 1)
  lu.assertNil(b[2])
  lu.assertEquals(b[3], 3)
  lu.assertEquals(b[10], 10)
  lu.assertEquals(b[math.tointeger(2 ^ 40)], "far")
  -- a sparse table is not inflated: its size follows its entries, not its largest key
  local sparse = {}
  for k = 0, 40 do sparse[1 << k] = k end
  lu.assertTrue(#shm.encode(sparse) < 1000)
  lu.assertEquals(roundtrip(sparse), sparse)
end

function TestCodec:test_table_as_key_and_shared_subtables()
  local k = { "key" }
  local t = { [k] = "v" }
  local b = roundtrip(t)
  local bk, bv = next(b)
  lu.assertEquals(bk, { "key" })
  lu.assertEquals(bv, "v")
  local shared = { 1 }
  local d = roundtrip({ a = shared, b = shared }) -- reachable twice is no cycle: copied twice
  lu.assertEquals(d.a, { 1 })
  lu.assertEquals(d.b, { 1 })
end

function TestCodec:test_metatables_are_not_sent()
  local t = setmetatable({ 1 }, { __index = function() return "meta" end })
  local b = roundtrip(t)
  lu.assertNil(getmetatable(b))
  lu.assertNil(b[2])
end

-- LuaLanes 122/107/138: "can't copy userdata" errors that said neither what nor where.
function TestCodec:test_lualanes_122_userdata_error_names_type_and_path()
  H.assert_error({ "luashm: encode: value at [2].sock is a userdata (FILE*)",
    "only luashm objects can be sent" }, shm.encode, { 1, { sock = io.stdout } })
  H.assert_error({ "luashm: encode: value is a userdata (FILE*)" }, shm.encode, io.stderr)
  H.assert_error({ "value #2 at .f" }, shm.encode, 1, { f = io.stdout })
  H.assert_error({ 'value at ["a key"][3]' }, shm.encode, { ["a key"] = { 1, 2, io.stdout } })
end

-- effil 150/160: functions that cannot be sent deserve a clear error.
function TestCodec:test_effil_150_function_error_says_why()
  H.assert_error({ "luashm: encode: value at .callback is a function",
    "functions cannot be sent" }, shm.encode, { callback = print })
  H.assert_error({ "value at [<key>] is a function" }, shm.encode, { [print] = true })
  H.assert_error({ "value is a thread (a coroutine)" }, shm.encode, coroutine.create(print))
end

function TestCodec:test_cycles_are_errors_naming_the_path()
  local t = { a = {} }
  t.a.back = t
  H.assert_error({ "luashm: encode: value at .a.back is a cycle" }, shm.encode, t)
  local s = {}
  s[1] = s
  H.assert_error({ "value at [1] is a cycle" }, shm.encode, s)
end

function TestCodec:test_depth_is_bounded()
  local ok = {}
  local x = ok
  for _ = 1, 100 do
    x[1] = {}
    x = x[1]
  end
  lu.assertEquals(roundtrip(ok), ok)
  local deep = {}
  x = deep
  for _ = 1, 300 do
    x[1] = {}
    x = x[1]
  end
  local err = H.assert_error({ "is nested too deep (more than 128 levels", "..." }, shm.encode, deep)
  lu.assertTrue(#err < 200, "a deep path is elided: " .. err)
end

-- Issue 18.2: a message whose objects carry objects in their views, each nested in the last
-- (150000 deep, 1.35 MB), recursed without a limit and overflowed the C stack (SIGSEGV), under
-- stock lua5.4 too. The view counts as a level: it is refused at the depth limit.
local REF_NEST = "\1\1" .. ("\7\1a\5block"):rep(150000) .. "\0"

function TestCodec:test_issue18_2_objects_nested_in_views_are_bounded()
  H.assert_error({ "luashm: decode: malformed message at byte", "objects nested too deep in views" },
    shm.decode, REF_NEST)
  -- a legitimate object with a view (an Array's shape) still travels
  local a = shm.array("i32", { 2, 3 })
  local back = shm.decode(shm.encode({ a, { a } }))
  lu.assertEquals(back[2][1].shape, { 2, 3 })
  back[1].block:close()
  a.block:unlink()
  a.block:close()
end

function TestCodec:test_issue18_2_objects_nested_in_views_under_stock_lua()
  local out, err, ok = H.run_code(H.stock_lua(), [[
local shm = require "luashm"
local f = io.open(arg[1], "rb")
local msg = f:read("a")
f:close()
print(pcall(shm.decode, msg))
]], (function()
    local file = os.tmpname()
    local f = assert(io.open(file, "wb"))
    f:write(REF_NEST)
    f:close()
    return file
  end)())
  lu.assertTrue(ok, "stock lua5.4 died: " .. err)
  lu.assertStrContains(out, "false\tluashm: decode: malformed message")
  lu.assertStrContains(out, "objects nested too deep in views")
end

-- Issue 18.11: tables shared in a nest ({t, t} forty deep) made an encoding exponential in
-- their number (tens of seconds, then memory exhausted). A message may hold a bounded number
-- of repeated copies; sharing within the bound is still copied, as documented.
function TestCodec:test_issue18_11_shared_table_nest_fails_fast()
  local t = {}
  for _ = 1, 40 do t = { t, t } end
  local t0 = shm.now()
  H.assert_error({ "luashm: encode: value at [1][1]", "repeats shared tables too often (more than 1048576" },
    shm.encode, t)
  lu.assertTrue(shm.now() - t0 < 5, "took " .. shm.now() - t0 .. " s")
  local one = { "shared" }
  local many = {}
  for i = 1, 100000 do many[i] = one end
  local back = shm.decode(shm.encode(many))
  lu.assertEquals(#back, 100000)
  lu.assertEquals(back[100000], { "shared" })
  lu.assertFalse(back[1] == back[2]) -- copied, not shared
end

function TestCodec:test_blocks_travel_by_name()
  local b <close> = shm.create(1 << 20)
  b:write(0, "payload")
  local enc = shm.encode({ blk = b })
  lu.assertTrue(#enc < 64, "a 1 MiB block encodes in tens of bytes, got " .. #enc)
  local back = shm.decode(enc)
  lu.assertEquals(tostring(back.blk):match("luashm.Block '(.-)'"), b.name)
  lu.assertEquals(back.blk:read(0, 7), "payload")
  back.blk:write(0, "P")
  lu.assertEquals(b:read(0, 1), "P") -- the same pages, attached
  back.blk:close()
  b:unlink()
end

function TestCodec:test_objects_by_name_whatever_their_kind()
  local made = {}
  local ch = shm.channel()
  made[#made + 1] = ch
  if shm.array then made[#made + 1] = shm.array("f64", 1000) end
  if shm.list then made[#made + 1] = shm.list({ 1, "two" }) end
  if shm.lock then made[#made + 1] = shm.lock() end
  for _, o in ipairs(made) do
    local enc = shm.encode(o)
    lu.assertTrue(#enc < 100)
    local back = shm.decode(enc)
    lu.assertEquals(back.name, o.name)
    lu.assertEquals(tostring(back), tostring(o))
  end
  for _, o in ipairs(made) do
    local blk = o.block or o
    pcall(blk.unlink, blk)
    blk:close()
  end
end

function TestCodec:test_decoding_a_vanished_block_is_an_error()
  local b = shm.create(16)
  local enc = shm.encode(b)
  b:unlink()
  b:close()
  H.assert_error({ "no such block" }, shm.decode, enc)
end

-- Every prefix of a valid message is malformed (never a crash, never a partial success).
function TestCodec:test_truncated_messages_are_errors()
  local enc = shm.encode({ 1, "two", 3.0, { x = true, [4] = { "deep" } } }, -5, "tail")
  for n = 0, #enc - 1 do
    H.assert_error({ "luashm: decode: malformed message" }, shm.decode, enc:sub(1, n))
  end
  H.assert_error({ "trailing bytes" }, shm.decode, enc .. "x")
end

function TestCodec:test_malformed_messages()
  local cases = {
    { "", "bad version" },
    { "\2\1\0", "bad version" },
    { "\1\255\255\255\255\255\255\255\255\255\1", "more values than bytes" },
    { "\1\1\10", "unknown value tag" },
    { "\1\1\5\200\1ab", "string runs past the end" },
    { "\1\1\3\255\255\255\255\255\255\255\255\255\255\1", "overflows 64 bits" },
    { "\1\1\6\100", "array part longer than the message" },
    { "\1\1\6\0\4" .. ("\0"):rep(8) .. "\0", "table key is NaN" },
    { "\1\1\6\0\2\2", "unterminated table" },
    { "\1\1\7\1a\5bogus\0", "unknown kind of object 'bogus'" },
    { "\1\1\9\4lock\0", "kind 'lock' does not travel by value" },
  }
  cases[8][1] = "\1\1\6\0\4" .. string.pack("d", 0 / 0) .. "\0\0"
  for _, c in ipairs(cases) do
    H.assert_error({ "luashm: decode: malformed message at byte", c[2] }, shm.decode, c[1])
  end
  H.assert_error({ "tables nested too deep" }, shm.decode, "\1\1" .. ("\6\0"):rep(200))
  H.assert_raises(shm.decode, nil)
  H.assert_raises(shm.decode, {})
end

-- Random and mutated bytes: each input decodes or raises a luashm error.
-- Found by fuzz_codec: an invalid name in an object sent by name was quoted from the message's
-- bytes as if they ended with NUL: the error ran on into the next value, and over a channel's
-- ring (whose bytes are not terminated) read past the message (ASan: heap-buffer-overflow).
function TestCodec:test_fuzz_invalid_name_is_quoted_exactly()
  local err = H.assert_error({ "luashm: decode: malformed message at byte",
    "decode 'lu/shm': names may not contain '/'" }, shm.decode, "\1\1\7\6lu/shm\5block\0")
  lu.assertNotStrContains(err, "block'")
  local ch = shm.channel({ capacity = 64, track = false })
  ch:unlink()
  ch:send("012345678") -- a message of 13 bytes, as the one written over it
  local b = ch.block
  -- over the queued record: a message of a Block named "ab/", the kind's bytes after it
  b:write(256, string.pack("I4I4", 13, ~13 & 0xffffffff) .. "\1\1\7\3ab/\5block\0")
  H.assert_error({ "recv 'ab/': names may not contain '/'" }, ch.recv, ch, 0)
  ch:close()
end

function TestCodec:test_random_bytes_never_crash()
  math.randomseed(6)
  local base = shm.encode({ 1, 2.5, "s", { a = { b = true } } }, "x")
  for _ = 1, 20000 do
    local s
    if math.random() < 0.5 then
      local t = {}
      for j = 1, math.random(0, 24) do t[j] = string.char(math.random(0, 9)) end
      s = "\1" .. table.concat(t)
    else
      local pos = math.random(1, #base)
      s = base:sub(1, pos - 1) .. string.char(math.random(0, 255)) .. base:sub(pos + 1)
    end
    local ok, err = pcall(shm.decode, s)
    if not ok then lu.assertStrContains(err, "luashm: ") end
  end
end

os.exit(lu.LuaUnit.run())
