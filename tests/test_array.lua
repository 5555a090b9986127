-- Arrays (API.md "Arrays"): construction, properties, element access and its value rules for
-- every dtype, views, bulk operations, reductions, atomics, closing, sending by name.
local lu = require "luaunit"
local H = require "helper"
local shm = require "luashm"

local DTYPES = { "i8", "u8", "i16", "u16", "i32", "u32", "i64", "u64", "f32", "f64" }
local LONG = { i8 = "int8", u8 = "uint8", i16 = "int16", u16 = "uint16", i32 = "int32",
  u32 = "uint32", i64 = "int64", u64 = "uint64", f32 = "float32", f64 = "float64" }
local SIZE = { i8 = 1, u8 = 1, i16 = 2, u16 = 2, i32 = 4, u32 = 4, i64 = 8, u64 = 8, f32 = 4, f64 = 8 }
-- Lowest and highest values of the integer dtypes, as Lua integers.
local RANGE = { i8 = { -128, 127 }, u8 = { 0, 255 }, i16 = { -32768, 32767 }, u16 = { 0, 65535 },
  i32 = { -2147483648, 2147483647 }, u32 = { 0, 4294967295 } }

TestArray = {}
-- Every array a test makes goes through new, so tearDown unlinks its block.
local new = H.keeps_arrays(TestArray)

function TestArray:test_new_is_zero_filled_self_describing()
  local a = new("f64", { 2, 3 })
  lu.assertEquals(a.dtype, "f64")
  lu.assertEquals(a.shape, { 2, 3 })
  lu.assertEquals(a.ndim, 2)
  lu.assertEquals(a.size, 6)
  lu.assertEquals(a.nbytes, 48)
  lu.assertEquals(#a, 2)
  lu.assertEquals(a.offset, 128)
  lu.assertStrMatches(a.name, "luashm_" .. ("%x"):rep(16))
  lu.assertEquals(a.block.name, a.name)
  lu.assertEquals(a.block.size, 128 + 48)
  lu.assertEquals(a:totable(), { { 0, 0, 0 }, { 0, 0, 0 } })
  lu.assertEquals(a.block:read(0, 6), "\x93NUMPY")
  lu.assertTrue(H.in_shm(a.name))
  lu.assertFalse(a.closed)
end

function TestArray:test_shape_is_a_fresh_table_and_fields_are_read_only()
  local a = new("i32", 4)
  local s = a.shape
  s[1] = 99
  lu.assertEquals(a.shape, { 4 })
  H.assert_error({ "luashm: array '" .. a.name .. "': fields are read-only" }, function() a.dtype = "x" end)
  lu.assertFalse(getmetatable(a))
end

function TestArray:test_long_dtype_names_and_opts()
  for short, long in pairs(LONG) do
    local a = new(long, 3)
    lu.assertEquals(a.dtype, short)
    lu.assertEquals(a.nbytes, 3 * SIZE[short])
  end
  local name = "luashm_arraytest_" .. tostring(os.time()) .. math.random(1e6)
  local a = new("u8", 4, { name = name, track = false, values = { 1, 2, 3, 4 } })
  lu.assertEquals(a.name, name)
  lu.assertEquals(a:totable(), { 1, 2, 3, 4 })
end

function TestArray:test_bad_constructor_arguments()
  H.assert_error({ "luashm: array: unknown dtype 'i128'" }, shm.array, "i128", 3)
  H.assert_error({ "luashm: array: shape[1] must be a non-negative integer" }, shm.array, "i8", -1)
  H.assert_error({ "luashm: array: shape[2] must be a non-negative integer" }, shm.array, "i8", { 2, 1.5 })
  H.assert_error({ "luashm: array: shape must have 1 to 32 dimensions, not 0" }, shm.array, "i8", {})
  H.assert_error({ "luashm: array: shape is too large" }, shm.array, "i8", { 1 << 40, 1 << 40 })
  H.assert_error({ "luashm: array: shape is too large" }, shm.array, "f64", math.maxinteger)
  H.assert_raises(shm.array, "i8", "x")
  H.assert_raises(shm.array, nil, 3)
  H.assert_raises(shm.array, "i8", 3, 5)
end

function TestArray:test_values_flat_and_nested_and_failed_values_leave_no_block()
  local a = new("i16", { 2, 2 }, { values = { { 1, 2 }, { 3, 4 } } })
  lu.assertEquals(a:totable(), { { 1, 2 }, { 3, 4 } })
  local b = new("i16", { 2, 2 }, { values = { 1, 2, 3, 4 } })
  lu.assertEquals(b:get(2, 1), 3)
  local before = H.shm_names()
  H.assert_error({ "value 1.5 at index 3 is not an integer (dtype i16)" }, shm.array, "i16", 4,
    { values = { 1, 2, 1.5, 4 } })
  H.assert_error({ "the table has 3 values, the array 4" }, shm.array, "i16", 4, { values = { 1, 2, 3 } })
  H.assert_error({ "a table at depth 2 has 1 items, the shape needs 2" }, shm.array, "i16", { 2, 2 },
    { values = { { 1, 2 }, { 3 } } })
  lu.assertEquals(H.shm_names(), before)
end

function TestArray:test_1d_access_and_out_of_range()
  local a = new("i32", 3, { values = { 10, 20, 30 } })
  lu.assertEquals(a[1], 10)
  lu.assertEquals(a[3], 30)
  lu.assertEquals(a[2.0], 20)
  lu.assertNil(a[0])
  lu.assertNil(a[4])
  lu.assertNil(a[-1])
  lu.assertNil(a[math.mininteger])
  lu.assertNil(a.nosuchfield)
  lu.assertNil(a[true])
  a[2] = 25
  lu.assertEquals(a[2], 25)
  H.assert_error({ "luashm: array '" .. a.name .. "': index 4 is out of range (1..3)" }, function() a[4] = 1 end)
  H.assert_error({ "index 0 is out of range (1..3)" }, function() a[0] = 1 end)
  H.assert_error({ "index -1 is out of range (1..3)" }, function() a[-1] = 1 end)
  local n = 0
  for i, v in ipairs(a) do
    n = n + 1
    lu.assertEquals(v, a[i])
  end
  lu.assertEquals(n, 3)
  lu.assertEquals(a[4] or "default", "default")
end

-- Every integer dtype: the extremes round-trip, one past them is an error naming index and
-- dtype, integral floats are taken, fractional ones and NaN are not.
function TestArray:test_integer_dtype_bounds_and_conversions()
  for dt, r in pairs(RANGE) do
    local a = new(dt, 4)
    a[1] = r[1]
    a[2] = r[2]
    a[3] = r[2] + 0.0
    lu.assertEquals(a[1], r[1], dt)
    lu.assertEquals(a[2], r[2], dt)
    lu.assertEquals(a[3], r[2], dt)
    lu.assertEquals(math.type(a[3]), "integer")
    H.assert_error({ "value " .. (r[2] + 1) .. " at index 4 is out of range for " .. dt }, function() a[4] = r[2] + 1 end)
    H.assert_error({ "value " .. (r[1] - 1) .. " at index 4 is out of range for " .. dt }, function() a[4] = r[1] - 1 end)
    H.assert_error({ "value 2.5 at index 4 is not an integer (dtype " .. dt .. ")" }, function() a[4] = 2.5 end)
    H.assert_error({ "at index 4 is not an integer" }, function() a[4] = 0 / 0 end)
    H.assert_error({ "at index 4 is out of range for " .. dt }, function() a[4] = math.huge end)
    H.assert_error({ "value at index 4 is a table, not a number (dtype " .. dt .. ")" }, function() a[4] = {} end)
    H.assert_error({ "value at index 4 is a nil, not a number" }, function() a[4] = nil end)
    H.assert_error({ "value at index 4 is a boolean" }, function() a[4] = true end)
    lu.assertEquals(a[4], 0, "a failed write changes nothing")
  end
end

function TestArray:test_i64_and_u64()
  local a = new("i64", 3)
  a[1] = math.maxinteger
  a[2] = math.mininteger
  a[3] = -2.0 ^ 63
  lu.assertEquals(a[1], math.maxinteger)
  lu.assertEquals(a[2], math.mininteger)
  lu.assertEquals(a[3], math.mininteger)
  H.assert_error({ "at index 1 is out of range for i64" }, function() a[1] = 2.0 ^ 63 end)
  local u = new("u64", 4)
  u[1] = -1 -- two's complement: 2^64 - 1
  lu.assertEquals(u[1], -1)
  lu.assertEquals(u.block:read(u.offset, 8), ("\xff"):rep(8))
  u[2] = 2.0 ^ 63 -- a float in [2^63, 2^64) is exact: reads back as two's complement
  lu.assertEquals(u[2], math.mininteger)
  u[3] = 2.0 ^ 64 - 2048
  lu.assertEquals(string.unpack("<J", u.block:read(u.offset + 16, 8)), -2048)
  u[4] = u[1] -- what it reads back can be written back
  lu.assertEquals(u[4], -1)
  H.assert_error({ "value -1.0 at index 4 is out of range for u64 (0..2^64-1)" }, function() u[4] = -1.0 end)
  H.assert_error({ "at index 4 is out of range for u64" }, function() u[4] = 2.0 ^ 64 end)
  -- sum wraps like NumPy's int64 accumulator
  local w = new("i64", 2, { values = { math.maxinteger, 1 } })
  lu.assertEquals(w:sum(), math.mininteger)
end

function TestArray:test_floats_take_any_number()
  for _, dt in ipairs({ "f32", "f64" }) do
    local a = new(dt, 5)
    a[1] = 1.5
    a[2] = 3
    a[3] = math.huge
    a[4] = -math.huge
    a[5] = 0 / 0
    lu.assertEquals(a[1], 1.5)
    lu.assertEquals(a[2], 3.0)
    lu.assertEquals(math.type(a[2]), "float")
    lu.assertEquals(a[3], math.huge)
    lu.assertEquals(a[4], -math.huge)
    lu.assertNotEquals(a[5], a[5])
    H.assert_error({ "value at index 1 is a string, not a number (dtype " .. dt .. ")" }, function() a[1] = "x" end)
  end
  local f = new("f32", 1)
  f[1] = 0.1
  lu.assertEquals(f[1], string.unpack("<f", string.pack("<f", 0.1)))
  f[1] = 1e300
  lu.assertEquals(f[1], math.huge)
end

function TestArray:test_nd_rows_get_set()
  local a = new("i32", { 2, 3, 4 })
  lu.assertEquals(#a, 2)
  local row = a[2]
  lu.assertEquals(row.shape, { 3, 4 })
  lu.assertEquals(row.offset, a.offset + 12 * 4)
  a[2][3][4] = 7
  lu.assertEquals(a:get(2, 3, 4), 7)
  lu.assertEquals(a[2][3][4], 7)
  a:set(1, 2, 3, -5)
  lu.assertEquals(a[1][2][3], -5)
  lu.assertNil(a[3])
  lu.assertNil(a[2][4])
  H.assert_error({ "luashm: array '" .. a.name .. "': get: index (3, 1, 1) is out of range for shape (2, 3, 4)" },
    a.get, a, 3, 1, 1)
  H.assert_error({ "set: index (1, 1, 5) is out of range for shape (2, 3, 4)" }, a.set, a, 1, 1, 5, 0)
  H.assert_error({ "get needs 3 indexes, got 2" }, a.get, a, 1, 1)
  H.assert_error({ "value 1.5 at index (1, 1, 1) is not an integer (dtype i32)" }, a.set, a, 1, 1, 1, 1.5)
  local v = new("f64", 3)
  H.assert_error({ "get: index (4) is out of range for shape (3,)" }, v.get, v, 4)
  H.assert_error({ "get: index (0) is out of range" }, v.get, v, 0)
  -- row assignment: a number fills, a table or an Array copies
  local m = new("i8", { 2, 2 })
  m[1] = 5
  m[2] = { 6, 7 }
  lu.assertEquals(m:totable(), { { 5, 5 }, { 6, 7 } })
  H.assert_error({ "index 3 is out of range (1..2)" }, function() m[3] = 1 end)
end

function TestArray:test_methods_check_their_self()
  local a = new("f64", 2)
  H.assert_error({ "luashm.Array expected" }, a.get, io.stdout, 1)
  H.assert_error({ "luashm.Array expected" }, a.sum, a.block)
  H.assert_error({ "luashm.Array expected" }, a.sum, 42)
  H.assert_error({ "luashm.Array expected" }, a.fill, nil, 1)
end

function TestArray:test_slice_clamps_like_string_sub()
  local a = new("i32", 5, { values = { 1, 2, 3, 4, 5 } })
  local function vals(s) return s:totable() end
  lu.assertEquals(vals(a:slice(2, 4)), { 2, 3, 4 })
  lu.assertEquals(vals(a:slice(-2)), { 4, 5 })
  lu.assertEquals(vals(a:slice(-2, -1)), { 4, 5 })
  lu.assertEquals(vals(a:slice(0, 2)), { 1, 2 })
  lu.assertEquals(vals(a:slice(-100, 100)), { 1, 2, 3, 4, 5 })
  lu.assertEquals(vals(a:slice(4, 2)), {})
  lu.assertEquals(a:slice(10).shape, { 0 })
  lu.assertEquals(a:slice(3, 2).shape, { 0 })
  local s = a:slice(2, 3)
  s[1] = 20 -- zero-copy
  lu.assertEquals(a[2], 20)
  lu.assertEquals(s.offset, a.offset + 4)
  local m = new("i16", { 4, 2 }, { values = { 1, 2, 3, 4, 5, 6, 7, 8 } })
  lu.assertEquals(m:slice(2, 3):totable(), { { 3, 4 }, { 5, 6 } })
  lu.assertEquals(m:slice(-1).shape, { 1, 2 })
  local e = m:slice(5)
  lu.assertEquals(e.shape, { 0, 2 })
  lu.assertEquals(e:totable(), {})
  lu.assertEquals(e:sum(), 0)
end

function TestArray:test_reshape()
  local a = new("u16", 6, { values = { 1, 2, 3, 4, 5, 6 } })
  local r = a:reshape({ 2, 3 })
  lu.assertEquals(r:totable(), { { 1, 2, 3 }, { 4, 5, 6 } })
  lu.assertEquals(a:reshape({ 3, -1 }).shape, { 3, 2 })
  lu.assertEquals(a:reshape(6).shape, { 6 })
  r[2][1] = 40
  lu.assertEquals(a[4], 40)
  H.assert_error({ "reshape: cannot reshape 6 elements into shape (4, 2)" }, a.reshape, a, { 4, 2 })
  H.assert_error({ "cannot reshape 6 elements into shape (4, -1)" }, a.reshape, a, { 4, -1 })
  H.assert_error({ "more than one -1" }, a.reshape, a, { -1, -1 })
end

function TestArray:test_fill_copy_totable()
  for _, dt in ipairs(DTYPES) do
    local a = new(dt, { 3, 2 })
    a:fill(7)
    lu.assertEquals(a:totable(), { { 7, 7 }, { 7, 7 }, { 7, 7 } }, dt)
    lu.assertEquals(a:fill(0), a)
    lu.assertEquals(a:sum(), 0)
  end
  local a = new("u8", 3)
  H.assert_error({ "value 256 for fill is out of range for u8 (0..255)" }, a.fill, a, 256)
  H.assert_error({ "value 0.5 for fill is not an integer (dtype u8)" }, a.fill, a, 0.5)
  local src = new("f64", 3, { values = { 1, 2, 3.5 } })
  H.assert_error({ "value 3.5 at index 3 is not an integer (dtype u8)" }, a.copy, a, src)
  src[3] = 3
  a:copy(src)
  lu.assertEquals(a:totable(), { 1, 2, 3 })
  a:copy({ 9, 8, 7 })
  lu.assertEquals(a:totable(), { 9, 8, 7 })
  H.assert_error({ "copy: source has 2 elements, the array 3" }, a.copy, a, new("u8", 2))
  local back = new("f64", 3)
  back:copy(a)
  lu.assertEquals(back:totable(), { 9.0, 8.0, 7.0 })
  local big = new("u64", 1, { values = { -1 } })
  local f = new("f64", 1)
  f:copy(big) -- u64 by value
  lu.assertEquals(f[1], 2.0 ^ 64)
  -- overlapping copies between views of one block (memmove)
  local o = new("i32", 5, { values = { 1, 2, 3, 4, 5 } })
  o:slice(2, 5):copy(o:slice(1, 4))
  lu.assertEquals(o:totable(), { 1, 1, 2, 3, 4 })
end

function TestArray:test_reductions()
  local a = new("i32", 5, { values = { 3, -7, 10, 0, 2 } })
  lu.assertEquals(a:sum(), 8)
  lu.assertEquals(math.type(a:sum()), "integer")
  lu.assertEquals(a:min(), -7)
  lu.assertEquals(a:max(), 10)
  lu.assertEquals(a:mean(), 1.6)
  lu.assertEquals(math.type(new("i8", 1):mean()), "float")
  local u = new("u64", 2, { values = { 1, -1 } }) -- unsigned order
  lu.assertEquals(u:max(), -1)
  lu.assertEquals(u:min(), 1)
  local f = new("f64", 1003)
  for i = 1, 1003 do f[i] = i * 0.5 end
  lu.assertAlmostEquals(f:sum(), 0.5 * 1003 * 1004 / 2, 1e-9)
  lu.assertEquals(f:min(), 0.5)
  lu.assertEquals(f:max(), 501.5)
  f[7] = 0 / 0
  lu.assertNotEquals(f:max(), f:max())
  lu.assertNotEquals(f:min(), f:min())
  local e = new("f64", 0)
  lu.assertEquals(e:sum(), 0.0)
  lu.assertNotEquals(e:mean(), e:mean())
  H.assert_error({ "min of an empty array" }, e.min, e)
  H.assert_error({ "max of an empty array" }, e.max, e)
  for _, dt in ipairs(DTYPES) do
    local x = new(dt, 9, { values = { 1, 2, 3, 4, 5, 6, 7, 8, 9 } })
    lu.assertEquals(x:sum(), 45, dt)
    lu.assertEquals(x:min(), 1, dt)
    lu.assertEquals(x:max(), 9, dt)
    lu.assertEquals(x:mean(), 5.0, dt)
  end
end

function TestArray:test_add_mul()
  local a = new("i32", 3, { values = { 1, 2, 3 } })
  lu.assertEquals(a:add(10), a)
  lu.assertEquals(a:totable(), { 11, 12, 13 })
  a:mul(-2)
  lu.assertEquals(a:totable(), { -22, -24, -26 })
  a:add(new("i32", 3, { values = { 22, 24, 26 } }))
  lu.assertEquals(a:totable(), { 0, 0, 0 })
  local u = new("u8", 2, { values = { 250, 1 } })
  u:add(10) -- wraps like NumPy's uint8
  lu.assertEquals(u:totable(), { 4, 11 })
  u:add(-1)
  lu.assertEquals(u:totable(), { 3, 10 })
  H.assert_error({ "luashm: add '" .. u.name .. "': cannot cast x 0.5 to the integer dst (u8): it is not an integer" }, u.add, u, 0.5)
  local f = new("f64", 2, { values = { 1, 2 } })
  f:mul(new("i8", 2, { values = { 3, -1 } }))
  lu.assertEquals(f:totable(), { 3.0, -2.0 })
  f:add(0.5)
  lu.assertEquals(f:totable(), { 3.5, -1.5 })
  H.assert_error({ "luashm: add '" .. f.name .. "': shapes (2,) and (3,) do not broadcast (x)" }, f.add, f, new("f64", 3))
  H.assert_error({ "add '" .. f.name .. "': shapes (2,) and (1, 2) do not broadcast (x)" }, f.add, f, new("f64", { 1, 2 }))
  local i = new("i16", 2)
  H.assert_error({ "add '" .. i.name .. "': cannot cast x (f32) to the integer dst (i16): convert it with copy(src, \"unsafe\") first" }, i.add, i, new("f32", 2, { values = { 1, 1 } }))
  a:add(a)
  local s = new("i64", 4, { values = { 1, 2, 3, 4 } })
  s:slice(2, 4):add(s:slice(1, 3)) -- overlapping: the source as it was
  lu.assertEquals(s:totable(), { 1, 3, 5, 7 })
end

function TestArray:test_apply()
  local a = new("i64", 4, { values = { 1, 2, 3, 4 } })
  lu.assertEquals(a:apply(function(v, i) return v * 10 + i end), a)
  lu.assertEquals(a:totable(), { 11, 22, 33, 44 })
  H.assert_error({ "value 1.5 at index 1 is not an integer" }, a.apply, a, function() return 1.5 end)
  H.assert_error({ "boom" }, a.apply, a, function() error("boom") end)
  H.assert_error({ "block is closed" }, a.apply, a, function() a.block:close() return 1 end)
end

function TestArray:test_atomics()
  for _, dt in ipairs({ "i32", "u32", "i64", "u64" }) do
    local a = new(dt, 3)
    lu.assertEquals(a:atomic_add(2, 5), 0, dt)
    lu.assertEquals(a:atomic_add(2, 3), 5, dt)
    lu.assertEquals(a:atomic_load(2), 8, dt)
    a:atomic_store(3, 42)
    lu.assertEquals(a[3], 42)
    lu.assertEquals(a:cas(3, 42, 43), true)
    local ok, cur = a:cas(3, 42, 44)
    lu.assertFalse(ok)
    lu.assertEquals(cur, 43)
    lu.assertEquals(a[3], 43)
    H.assert_error({ "atomic_add: index 4 is out of range (1..3)" }, a.atomic_add, a, 4, 1)
    H.assert_error({ "atomic_load: index 0 is out of range" }, a.atomic_load, a, 0)
  end
  local w = new("i32", 1, { values = { 2147483647 } })
  lu.assertEquals(w:atomic_add(1, 1), 2147483647)
  lu.assertEquals(w[1], -2147483648)
  local u = new("u32", 1)
  u:atomic_add(1, -1)
  lu.assertEquals(u[1], 4294967295)
  H.assert_error({ "value -1 for atomic_store is out of range for u32" }, u.atomic_store, u, 1, -1)
  local f = new("f64", 2, { values = { 0.5, 0 } })
  lu.assertEquals(f:atomic_add(1, 0.25), 0.5)
  lu.assertEquals(f:atomic_add(1, -1), 0.75)
  lu.assertEquals(f[1], -0.25)
  local f32 = new("f32", 1)
  lu.assertEquals(f32:atomic_add(1, 0.5), 0.0)
  lu.assertEquals(f32[1], 0.5)
  H.assert_error({ "atomic_add needs dtype i32, u32, i64 or u64, f32 or f64, not i8" }, function()
    local s = new("i8", 1)
    s:atomic_add(1, 1)
  end)
  H.assert_error({ "cas needs dtype i32, u32, i64 or u64, not i16" }, function()
    local s = new("i16", 1)
    s:cas(1, 0, 1)
  end)
  local nd = new("i64", { 2, 2 })
  nd:atomic_add(4, 3) -- flat index
  lu.assertEquals(nd:get(2, 2), 3)
end

function TestArray:test_atomic_add_through_two_mappings()
  local a = new("i64", 1)
  local other <close> = shm.attach(a.name)
  local b = shm.array("i64", 1, { block = other, offset = a.offset })
  for _ = 1, 1000 do
    a:atomic_add(1, 1)
    b:atomic_add(1, 2)
  end
  lu.assertEquals(a:atomic_load(1), 3000)
end

function TestArray:test_raw_views()
  local b <close> = shm.create(64)
  b:unlink()
  local v = shm.array("i32", { 2, 2 }, { block = b, offset = 16 })
  lu.assertEquals(v.offset, 16)
  lu.assertEquals(v.block, b)
  v[1][2] = 0x01020304
  lu.assertEquals(b:read(20, 4), "\4\3\2\1")
  b:pack(16, "<i4", -9)
  lu.assertEquals(v:get(1, 1), -9)
  H.assert_error({ "luashm: array: offset 2 is misaligned for i32 (a multiple of 4)" }, shm.array, "i32", 1,
    { block = b, offset = 2 })
  H.assert_error({ "luashm: array: 64 bytes at offset 8 do not fit in block '" .. b.name .. "' (size 64)" },
    shm.array, "f64", 8, { block = b, offset = 8 })
  H.assert_error({ "offset -8 is negative" }, shm.array, "f64", 1, { block = b, offset = -8 })
  H.assert_error({ "opts.block must be a Block" }, shm.array, "f64", 1, { block = v })
  local whole = shm.array("u8", 64, { block = b })
  lu.assertEquals(whole.offset, 0)
  lu.assertEquals(whole[21], 4)
  lu.assertEquals(shm.array("u8", 0, { block = b, offset = 64 }).size, 0)
  local init = shm.array("u8", 2, { block = b, offset = 60, values = { 5, 6 } })
  lu.assertEquals(b:read(60, 2), "\5\6")
  lu.assertEquals(init:sum(), 11)
end

function TestArray:test_closed_block_invalidates_every_view()
  local a = new("f64", { 2, 2 })
  local row, s, r = a[1], a:slice(1, 1), a:reshape(4)
  a.block:close()
  local msg = "luashm: array '" .. a.name .. "': block is closed"
  for _, x in ipairs({ a, row, s, r }) do
    H.assert_error({ msg }, function() return x[1] end)
    H.assert_error({ msg }, function() x[1] = 0 end)
    H.assert_error({ msg }, x.sum, x)
    H.assert_error({ msg }, x.get, x, 1, 1)
    H.assert_error({ msg }, x.totable, x)
    H.assert_error({ msg }, x.fill, x, 1)
    H.assert_error({ msg }, x.atomic_load, x, 1)
    lu.assertTrue(x.closed)
    lu.assertStrContains(tostring(x), "(closed)")
  end
  H.assert_error({ msg }, ipairs(a), a, 0)
  lu.assertEquals(a.dtype, "f64") -- metadata stays readable
  lu.assertEquals(#a, 2)
  H.assert_error({ "luashm: block '" .. a.name .. "' is closed" }, shm.array, "u8", 1, { block = a.block })
end

function TestArray:test_close_owned_array_closes_block_raw_view_only_itself()
  local a = new("i8", 4)
  local name = a.name
  local v = a:slice(1, 2)
  v:close()
  v:close()
  lu.assertTrue(v.closed)
  H.assert_error({ "luashm: array '" .. name .. "' is closed" }, function() return v[1] end)
  lu.assertFalse(a.closed)
  a[1] = 1
  do
    local c <close> = shm.open(name)
    lu.assertEquals(c[1], 1)
  end
  lu.assertFalse(a.closed, "closing another mapping leaves this one")
  a:close()
  a:close()
  lu.assertTrue(a.closed)
  lu.assertTrue(a.block.closed)
  lu.assertTrue(H.in_shm(name), "close never unlinks")
  local b <close> = shm.create(8)
  b:unlink()
  local raw = shm.array("u8", 8, { block = b })
  raw:close()
  lu.assertFalse(b.closed, "a raw view's close leaves the block open")
end

function TestArray:test_gc_of_views_keeps_the_block()
  local a = new("i32", { 3, 3 })
  local name = a.name
  local row = shm.open(name)[2] -- the opening array is garbage at once
  collectgarbage()
  collectgarbage()
  row[1] = 5
  lu.assertEquals(a:get(2, 1), 5)
end

function TestArray:test_tostring()
  local a = new("i16", { 2, 3 }, { values = { 1, 2, 3, 4, 5, 6 } })
  lu.assertEquals(tostring(a), "luashm.Array i16 (2, 3) '" .. a.name .. "' [[1, 2, 3], [4, 5, 6]]")
  local f = new("f64", 2, { values = { 1, 2.5 } })
  lu.assertEquals(tostring(f), "luashm.Array f64 (2,) '" .. f.name .. "' [1.0, 2.5]")
  local big = new("i32", 2000)
  big:apply(function(_, i) return i end)
  lu.assertEquals(tostring(big), "luashm.Array i32 (2000,) '" .. big.name .. "' [1, 2, 3, ..., 1998, 1999, 2000]")
  local big2 = new("u8", { 100, 100 })
  lu.assertStrContains(tostring(big2), "[[0, 0, 0, ..., 0, 0, 0], [0, 0, 0, ..., 0, 0, 0], [0, 0, 0, ..., 0, 0, 0], ..., [0, 0, 0, ..., 0, 0, 0], ")
end

function TestArray:test_open_returns_array_or_block()
  local a = new("u32", { 3, 2 }, { values = { 1, 2, 3, 4, 5, 6 } })
  local o <close> = shm.open(a.name)
  lu.assertEquals(o.dtype, "u32")
  lu.assertEquals(o.shape, { 3, 2 })
  lu.assertEquals(o.offset, 128)
  lu.assertEquals(o:totable(), a:totable())
  o[3][2] = 60
  lu.assertEquals(a[3][2], 60)
  local b <close> = shm.create(100)
  local p <close> = shm.open(b.name)
  b:unlink()
  lu.assertEquals(tostring(p):match("^luashm%.Block"), "luashm.Block")
end

-- By-name travel through the codec (what channels and workers use): the whole array as its
-- name alone, any other view with its dtype, shape and offset.
function TestArray:test_travels_by_name_and_views_with_their_shape()
  local a = new("i16", { 4, 2 })
  a:fill(3)
  local whole = shm.encode(a)
  lu.assertTrue(#whole < 64)
  local same = shm.decode(whole)
  lu.assertEquals(same.shape, { 4, 2 })
  lu.assertEquals(same:sum(), 24)
  same:close()
  lu.assertFalse(a.closed)
  local again = shm.decode(shm.encode(a:slice(2, 3)))
  lu.assertEquals({ again.shape, again.offset }, { { 2, 2 }, a.offset + 4 })
  again:set(1, 1, 99)
  lu.assertEquals(a:get(2, 1), 99)
  again:close()
  local b <close> = shm.create(16)
  local msg = shm.encode(b):gsub("block", "array")
  H.assert_error({ "luashm: open '" .. b.name .. "': bad NPY header: bad magic" }, shm.decode, msg)
  b:unlink()
end

os.exit(lu.LuaUnit.run())
