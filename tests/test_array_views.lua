-- Arrays v2 (API.md "Arrays v2"): strided views (specs, transpose, strides, contiguous, clone,
-- reshape), every older operation on any view, NumPy seeing the same view by name, views and
-- private arrays travelling through the codec, channels and workers, the bool and f16 dtypes,
-- float atomics from two workers, and the errors of every misuse the issue names.
local lu = require "luaunit"
local H = require "helper"
local shm = require "luashm"

TestArrayViews = {}
local new, keep = H.keeps_arrays(TestArrayViews)

-- A shared array of shape whose flat element i is i (or f(i)).
local function iota(dt, shape, f)
  local a = new(dt, shape)
  a:apply(function(_, i) return f and f(i) or i end)
  return a
end

-- ---------------------------------------------------------------------------------------
-- Views
-- ---------------------------------------------------------------------------------------

function TestArrayViews:test_view_specs_index_range_step_and_whole()
  local m = iota("i32", { 4, 5 })
  local col = m:view({}, 3)
  lu.assertEquals(col.shape, { 4 })
  lu.assertEquals(col:totable(), { 3, 8, 13, 18 })
  lu.assertEquals(col.strides, { 20 })
  lu.assertFalse(col.contiguous)
  lu.assertEquals(m:view(2):totable(), { 6, 7, 8, 9, 10 })
  local inner = m:view({ 2, -2 }, { 2, -2 })
  lu.assertEquals(inner:totable(), { { 7, 8, 9 }, { 12, 13, 14 } })
  lu.assertEquals(inner.offset, m.offset + 20 + 4)
  local rev = m:view({ -1, 1, -1 }, { -1, 1, -2 })
  lu.assertEquals(rev:totable(), { { 20, 18, 16 }, { 15, 13, 11 }, { 10, 8, 6 }, { 5, 3, 1 } })
  lu.assertEquals(rev.strides, { -20, -8 })
  lu.assertEquals(m:view({ 1, -1, 2 }, {}):totable(), { { 1, 2, 3, 4, 5 }, { 11, 12, 13, 14, 15 } })
  -- ranges clamp like string.sub; an empty range is a dimension of 0
  lu.assertEquals(m:view({ -10, 2 }).shape, { 2, 5 })
  lu.assertEquals(m:view({ 3, 2 }).shape, { 0, 5 })
  lu.assertEquals(m:view({ 2, 3, -1 }).shape, { 0, 5 })
  lu.assertEquals(m:view({ 9, 1, -3 }):view({}, 1):totable(), { 16, 1 })
  -- a view of a view of a view
  lu.assertEquals(rev:view({ 2, 3 }):view({}, -1):totable(), { 11, 6 })
  lu.assertEquals(m:view(nil, { 2, 2 }):totable(), { { 2 }, { 7 }, { 12 }, { 17 } })
end

function TestArrayViews:test_view_spec_errors()
  local m = iota("f64", { 3, 4 })
  local label = "'" .. m.name .. "'"
  H.assert_error({ "luashm: view " .. label .. ": index 4 is out of range for dimension 1 of size 3" }, m.view, m, 4)
  H.assert_error({ "index -5 is out of range for dimension 2 of size 4" }, m.view, m, {}, -5)
  H.assert_error({ "luashm: view " .. label .. ": spec 2 has step 0" }, m.view, m, {}, { 1, 4, 0 })
  H.assert_error({ "luashm: view " .. label .. ": 3 specs for 2 dimensions" }, m.view, m, 1, 1, 1)
  H.assert_error({ "spec 1 must be {}, {first, last} or {first, last, step}" }, m.view, m, { 1 })
  H.assert_error({ "spec 1: item 2 must be an integer, not a string" }, m.view, m, { 1, "x" })
  H.assert_error({ "spec 2 must be an integer or a table, not a boolean" }, m.view, m, {}, true)
  H.assert_error({ "spec 1 is not an integer" }, m.view, m, 1.5)
  H.assert_error({ "every dimension is indexed (use get for one element)" }, m.view, m, 1, 2)
end

function TestArrayViews:test_transpose_strides_contiguous_clone_reshape()
  local a = iota("i16", { 2, 3, 4 })
  lu.assertEquals(a.strides, { 24, 8, 2 })
  lu.assertTrue(a.contiguous)
  local t = a:transpose()
  lu.assertEquals(t.shape, { 4, 3, 2 })
  lu.assertEquals(t.strides, { 2, 8, 24 })
  lu.assertFalse(t.contiguous)
  lu.assertEquals(t:get(4, 3, 2), a:get(2, 3, 4))
  local p = a:transpose({ 2, -1, 1 })
  lu.assertEquals(p.shape, { 3, 4, 2 })
  lu.assertEquals(p:get(3, 2, 1), a:get(1, 3, 2))
  H.assert_error({ "luashm: transpose '" .. a.name .. "': axis 1 is repeated in perm" }, a.transpose, a, { 1, 1, 2 })
  H.assert_error({ "perm has 2 axes for 3 dimensions" }, a.transpose, a, { 1, 2 })
  H.assert_error({ "axis 4 is out of range for 3 dimensions" }, a.transpose, a, { 1, 2, 4 })
  H.assert_error({ "luashm: reshape '" .. a.name .. "': the view is not contiguous (clone it first)" }, t.reshape, t, 24)
  local c = t:clone()
  keep(c)
  lu.assertTrue(c.contiguous)
  lu.assertNotEquals(c.name, a.name)
  lu.assertEquals(c:reshape(24):totable()[2], a:get(2, 1, 1))
  local o <close> = shm.open(c.name) -- self-describing
  lu.assertEquals(o.shape, { 4, 3, 2 })
  local pc = t:clone({ private = true })
  lu.assertNil(pc.name)
  lu.assertNil(pc.block)
  lu.assertEquals(pc:totable(), t:totable())
  -- length-1 dimensions do not break contiguity (NumPy's flag), an empty view is contiguous
  lu.assertTrue(a:view({ 1, 1 }).contiguous)
  lu.assertTrue(a:view({ 2, 1 }).contiguous)
  lu.assertEquals(a:view({ 1, 1 }):reshape(12):totable()[12], 12)
end

function TestArrayViews:test_every_older_operation_works_on_strided_views()
  local base = iota("f64", 20)
  local v = base:view({ -1, 1, -3 }) -- 20, 17, 14, 11, 8, 5, 2
  lu.assertEquals(#v, 7)
  lu.assertEquals(v[1], 20.0)
  lu.assertEquals(v[7], 2.0)
  lu.assertNil(v[8])
  v[2] = -17
  lu.assertEquals(base[17], -17.0)
  lu.assertEquals(v:get(3), 14.0)
  v:set(3, 140)
  lu.assertEquals(base[14], 140.0)
  local seen = {}
  for i, x in ipairs(v) do seen[i] = x end
  lu.assertEquals(seen, { 20.0, -17.0, 140.0, 11.0, 8.0, 5.0, 2.0 })
  lu.assertEquals(v:slice(2, 3):totable(), { -17.0, 140.0 })
  lu.assertEquals(v:sum(), 20 - 17 + 140 + 11 + 8 + 5 + 2)
  lu.assertEquals(v:min(), -17.0)
  lu.assertEquals(v:max(), 140.0)
  lu.assertAlmostEquals(v:mean(), 169 / 7, 1e-12)
  lu.assertStrContains(tostring(v), "[20.0, -17.0, 140.0, 11.0, 8.0, 5.0, 2.0]")
  v:fill(1)
  lu.assertEquals(base:totable(), { 1, 1, 3, 4, 1, 6, 7, 1, 9, 10, 1, 12, 13, 1, 15, 16, 1, 18, 19, 1 })
  v:copy({ 7, 6, 5, 4, 3, 2, 1 })
  lu.assertEquals(base[2], 1.0)
  lu.assertEquals(base[20], 7.0)
  v:add(10)
  v:mul(v)
  lu.assertEquals(v[1], 289.0)
  -- N-d: rows of a transposed view, get/set with the full index, apply in C order
  local m = iota("i32", { 3, 4 })
  local t = m:transpose()
  lu.assertEquals(t[2]:totable(), { 2, 6, 10 })
  t[2] = 0 -- fills the row, which is m's second column
  lu.assertEquals(m:view({}, 2):totable(), { 0, 0, 0 })
  t[3] = { 30, 70, 110 }
  lu.assertEquals(m:get(2, 3), 70)
  t:set(4, 3, -1)
  lu.assertEquals(m:get(3, 4), -1)
  local order = {}
  t:apply(function(x, i)
    order[i] = x
    return x
  end)
  lu.assertEquals(order, { 1, 5, 9, 0, 0, 0, 30, 70, 110, 4, 8, -1 })
  lu.assertEquals(t:totable()[4], { 4, 8, -1 })
  -- save writes a strided view in C order
  local path = os.tmpname()
  t:save(path)
  local back = shm.load(path)
  keep(back)
  os.remove(path)
  lu.assertEquals(back:totable(), t:totable())
end

-- NumPy sees the same view by name: np.ndarray(shape, dtype, buffer=mmap, offset=, strides=)
-- over the block gives what NumPy's own slicing of the whole array gives, and writes go
-- both ways.
function TestArrayViews:test_numpy_sees_the_same_view_by_name()
  local m = iota("f64", { 6, 7 })
  local views = {
    { m:view({ 2, -2 }, { 2, -2 }), "A[1:-1, 1:-1]" },
    { m:view({}, 3), "A[:, 2]" },
    { m:view({ -1, 1, -1 }), "A[::-1]" },
    { m:view({ -1, 1, -2 }, { 7, 1, -3 }), "A[::-2, ::-3]" },
    { m:transpose(), "A.T" },
    { m:view(4), "A[3]" },
    { m:transpose():view({ 2, 5, 2 }, { -2, 1, -1 }), "A.T[1:5:2, -2::-1]" },
  }
  local checks = {}
  for i, v in ipairs(views) do
    checks[i] = string.format("check(%s, %s, %q)", H.pyview(v[1]), v[2], v[2])
  end
  local out = H.python(H.python_views .. [[
A = np.load('/dev/shm/' + sys.argv[1], mmap_mode='r+')
base = A.__array_interface__['data'][0] - A.offset if hasattr(A, 'offset') else None
def check(v, w, what):
    assert v.shape == w.shape and v.strides == w.strides, (what, v.shape, w.shape, v.strides, w.strides)
    assert np.array_equal(v, w), what
    print(what, 'ok')
]] .. table.concat(checks, "\n") .. [[

V(sys.argv[1], ]] .. views[1][1].offset .. [[, '<f8', (4, 5), (56, 8))[...] *= -1
]], m.name)
  for _, v in ipairs(views) do lu.assertStrContains(out, v[2] .. " ok") end
  lu.assertEquals(m:get(2, 2), -9.0)
  lu.assertEquals(m:get(5, 6), -34.0)
  lu.assertEquals(m:get(1, 2), 2.0)
end

-- ---------------------------------------------------------------------------------------
-- Travel: views by name, private arrays by value
-- ---------------------------------------------------------------------------------------

function TestArrayViews:test_strided_views_travel_by_name_with_offset_shape_and_strides()
  local m = iota("u16", { 5, 6 })
  local v = m:view({ -1, 2, -2 }, { 2, 6, 2 })
  local msg = shm.encode(v)
  lu.assertTrue(#msg < 200)
  local back = shm.decode(msg)
  lu.assertEquals({ back.shape, back.strides, back.offset }, { v.shape, v.strides, v.offset })
  lu.assertEquals(back:totable(), v:totable())
  back:fill(9)
  lu.assertEquals(m:get(5, 2), 9)
  back:close()
  lu.assertFalse(m.closed)
  -- through a channel to a worker, which writes through the view
  local ch <close> = shm.channel({ capacity = 4096 })
  ch:unlink()
  local w = shm.spawn(function(c)
    local x = c:recv(10)
    x:add(1000)
    return x.strides[1], x.strides[2]
  end, ch)
  ch:send(m:transpose():view({ 2, 3 }))
  local ok, s1, s2 = w:join(10)
  lu.assertTrue(ok, s1)
  lu.assertEquals({ s1, s2 }, { 2, 12 })
  lu.assertEquals(m:get(1, 2), 1002)
  lu.assertEquals(m:get(5, 3), 1027)
  -- as a worker argument and a result
  local w2 = shm.spawn(function(x) return x:sum(), x:view({}, 1) end, m:view({ 1, 2 }, { -1, 1, -1 }))
  local ok2, sum, col = w2:join(10)
  lu.assertTrue(ok2, sum)
  lu.assertEquals(sum, m:view({ 1, 2 }):sum())
  lu.assertEquals(col:totable(), { 6, 12 })
  col:close()
end

function TestArrayViews:test_private_arrays_have_no_name_and_travel_by_value()
  local p = shm.array("f32", { 2, 3 }, { private = true, values = { 1, 2, 3, 4, 5, 6 } })
  lu.assertNil(p.name)
  lu.assertNil(p.block)
  lu.assertFalse(p.closed)
  lu.assertStrMatches(tostring(p), "luashm.Array f32 %(2, 3%) %(private%) .*")
  H.assert_error({ "luashm: unlink: a private array has no name" }, p.unlink, p)
  H.assert_error({ "luashm: array: a private array takes no opts.name" }, shm.array, "f64", 2, { private = true, name = "x" })
  -- by value: a copy arrives, private, with its own bytes
  local back = shm.decode(shm.encode(p:view({}, { -1, 1, -1 })))
  lu.assertNil(back.name)
  lu.assertEquals(back:totable(), { { 3, 2, 1 }, { 6, 5, 4 } })
  back:fill(0)
  lu.assertEquals(p:sum(), 21.0)
  local ch <close> = shm.channel({ capacity = 1024 })
  ch:unlink()
  local w = shm.spawn(function(c, arg)
    local x = c:recv(10)
    arg:add(1)
    return x:sum(), arg, x.name == nil
  end, ch, p)
  ch:send(shm.array("i64", 10, { private = true, values = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10 } }))
  local ok, sum, arg, private = w:join(10)
  lu.assertTrue(ok, sum)
  lu.assertEquals(sum, 55)
  lu.assertTrue(private)
  lu.assertEquals(arg:totable(), { { 2, 3, 4 }, { 5, 6, 7 } })
  lu.assertEquals(p:get(1, 1), 1.0) -- the worker changed its own copy
  -- larger than the channel's buffer: an error that names the message's size
  local big = shm.array("f64", 1000, { private = true })
  H.assert_error({ "luashm: send '" .. ch.name .. "': a message of ", "does not fit the channel's capacity of 1024 bytes" },
    ch.send, ch, big)
  -- a shared copy of a private result
  local s = new("f32", { 2, 3 }, { values = p })
  lu.assertEquals(s:totable(), p:totable())
  -- results a call allocates are private
  lu.assertNil(s:sum(1).name)
  lu.assertNil(s:astype("f64").name)
  lu.assertNil(s:argsort().name)
  -- close frees private memory: every view of it is closed
  local v = p:view({}, 2)
  p:close()
  lu.assertTrue(p.closed)
  lu.assertTrue(v.closed)
  H.assert_error({ "luashm: array (private) is closed" }, v.sum, v)
end

-- ---------------------------------------------------------------------------------------
-- bool and f16
-- ---------------------------------------------------------------------------------------

function TestArrayViews:test_bool_values()
  local b = new("bool", 5, { values = { true, false, 1, 0, true } })
  lu.assertEquals(b:totable(), { true, false, true, false, true })
  lu.assertEquals(b[1], true)
  b[2] = true
  b[3] = 0
  b:set(4, 1.0)
  lu.assertEquals(b:totable(), { true, true, false, true, true })
  H.assert_error({ "value 2 at index 1 is out of range for bool (true, false, 0 or 1)" }, function() b[1] = 2 end)
  H.assert_error({ "value at index 1 is a string, not a boolean or 0/1 (dtype bool)" }, function() b[1] = "x" end)
  H.assert_error({ "value 0.5 at index 2 is out of range for bool" }, function() b[2] = 0.5 end)
  lu.assertEquals(b:count(), 4)
  lu.assertEquals(b:sum(), 4)
  lu.assertTrue(b:any())
  lu.assertFalse(b:all())
  b:fill(false)
  lu.assertFalse(b:any())
end

function TestArrayViews:test_f16_rounds_to_nearest_even()
  local h = new("f16", 6)
  h:copy({ 2049, 2051, 1 / 3, 65520, -0.0, 1e-8 })
  lu.assertEquals(h:totable(), { 2048.0, 2052.0, 0.333251953125, math.huge, -0.0, 0.0 })
  h[1] = 0.1
  lu.assertEquals(h[1], 0.0999755859375)
  lu.assertEquals(math.type(h[1]), "float")
  h[2] = 65504
  lu.assertEquals(h[2], 65504.0)
end

-- NumPy writes and reads the same |b1 and <f2 blocks, header byte for byte.
function TestArrayViews:test_bool_and_f16_interoperate_with_numpy()
  local b = new("bool", { 2, 3 }, { values = { true, false, true, false, false, true } })
  local h = new("f16", 4, { values = { 1.5, -2.25, 65504, 0.1 } })
  local out = H.python([[
import io, numpy as np
for name, dt, shape in ((sys.argv[1], '?', (2, 3)), (sys.argv[2], '<f2', (4,))):
    a = np.load('/dev/shm/' + name, mmap_mode='r+')
    f = io.BytesIO()
    np.lib.format.write_array_header_1_0(f, np.lib.format.header_data_from_array_1_0(np.zeros(shape, dt)))
    head = open('/dev/shm/' + name, 'rb').read(len(f.getvalue()))
    print(a.dtype, a.shape, head == f.getvalue(), a.tolist())
    a[...] = np.logical_not(a) if dt == '?' else a * 2
    a.flush()
]], b.name, h.name)
  lu.assertStrContains(out, "bool (2, 3) True [[True, False, True], [False, False, True]]")
  lu.assertStrContains(out, "float16 (4,) True [1.5, -2.25, 65504.0, 0.0999755859375]")
  lu.assertEquals(b:totable(), { { false, true, false }, { true, true, false } })
  lu.assertEquals(h:totable(), { 3.0, -4.5, math.huge, 0.199951171875 })
end

-- ---------------------------------------------------------------------------------------
-- Atomics on floats, across processes
-- ---------------------------------------------------------------------------------------

function TestArrayViews:test_two_workers_atomic_add_an_f64_total_exactly()
  local total = new("f64", 1)
  local N = 20000
  local res = shm.parallel(2, function(rank)
    for _ = 1, N do total:atomic_add(1, rank == 1 and 0.5 or 0.25) end
    return true
  end)
  lu.assertEquals(res, { true, true })
  lu.assertEquals(total[1], N * 0.75)
  local f = new("f32", 1)
  shm.parallel(2, function() for _ = 1, 1000 do f:atomic_add(1, 1) end end)
  lu.assertEquals(f[1], 2000.0)
end

-- ---------------------------------------------------------------------------------------
-- Misuse: every error names the operation, the operand and the cause
-- ---------------------------------------------------------------------------------------

function TestArrayViews:test_errors_name_operation_operand_and_cause()
  local a = new("f64", { 3, 4 })
  local i = new("i32", { 3, 4 })
  local la, li = "'" .. a.name .. "'", "'" .. i.name .. "'"
  H.assert_error({ "luashm: add " .. la .. ": shapes (3, 4) and (5,) do not broadcast (y)" }, a.add, a, a, new("f64", 5))
  H.assert_error({ "luashm: mul " .. la .. ": shapes (3, 4) and (4, 3) do not broadcast (x)" }, a.mul, a, a:transpose())
  H.assert_error({ "luashm: sub " .. li .. ": cannot cast x (f64) to the integer dst (i32): convert it with copy(src, \"unsafe\") first" }, i.sub, i, a)
  H.assert_error({ "luashm: add " .. li .. ": cannot cast x 0.5 to the integer dst (i32): it is not an integer" }, i.add, i, 0.5)
  H.assert_error({ "luashm: div " .. li .. ": true division into an integer array (i32): use idiv" }, i.div, i, 2)
  i:fill(7)
  H.assert_error({ "luashm: idiv " .. li .. ": integer division by zero" }, i.idiv, i, 0)
  H.assert_error({ "luashm: mod " .. li .. ": integer division by zero" }, i.mod, i, i, new("i32", 4))
  H.assert_error({ "luashm: pow " .. li .. ": integers to negative integer powers are not allowed" }, i.pow, i, -1)
  H.assert_error({ "luashm: sqrt " .. li .. ": needs a float dst (f16, f32 or f64), not i32" }, i.sqrt, i, a)
  H.assert_error({ "luashm: lt " .. li .. ": a comparison writes a bool or u8 mask, not i32" }, i.lt, i, a, 1)
  local b = new("bool", 2)
  H.assert_error({ "luashm: sub '" .. b.name .. "': bool has no sub (NumPy's has none either)" }, b.sub, b, b)
  H.assert_error({ "luashm: neg '" .. b.name .. "': bool has no neg" }, b.neg, b)
  H.assert_error({ "luashm: sum " .. la .. ": axis 3 is out of range for 2 dimensions" }, a.sum, a, 3)
  H.assert_error({ "luashm: argmax " .. la .. ": axis -3 is out of range for 2 dimensions" }, a.argmax, a, -3)
  H.assert_error({ "luashm: sum " .. la .. ": out has shape (3,), the result (4,)" }, a.sum, a, 1, new("f64", 3))
  H.assert_error({ "luashm: mean " .. la .. ": cannot cast the f64 result to the integer out (i32)" }, a.mean, a, 2, i:view({}, 1))
  H.assert_error({ "luashm: min '", "': min along an empty axis 1" }, function()
    local e = new("f64", { 0, 3 })
    e:min(1)
  end)
  H.assert_error({ "luashm: copy: unknown casting 'same_kind'" }, a.copy, a, i, "same_kind")
  H.assert_error({ "luashm: array " .. li .. ": value 1.5 at index 1 is not an integer (dtype i32)" }, i.copy, i, new("f32", { 3, 4 }, { values = { 1.5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0 } }))
  H.assert_error({ "luashm: array " .. li .. ": copy: source has 5 elements, the array 12" }, i.copy, i, new("i8", 5))
  H.assert_error({ "luashm: dot " .. la .. ": needs two 1-d arrays of the same length, not (3, 4) and (3, 4)" }, a.dot, a, a)
  H.assert_error({ "luashm: clip " .. la .. ": give lo, hi or both" }, a.clip, a)
  H.assert_error({ "bad argument #2 to ", "(number or Array expected, got string)" }, a.add, a, "1")
  H.assert_error({ "luashm: array: unknown dtype 'f8' (i8 u8 i16 u16 i32 u32 i64 u64 f32 f64 bool f16)" }, a.astype, a, "f8")
end

-- Which operations may leave part of dst written when they fail (the README says so): an exact
-- copy stops at the first value that does not fit; integer division stops at a zero divisor.
-- Every other error comes before anything is written.
function TestArrayViews:test_what_a_failed_operation_leaves_in_dst()
  local d = new("i8", 4)
  local src = new("f64", 4, { values = { 1, 2, 3.5, 4 } })
  H.assert_error({ "value 3.5 at index 3 is not an integer (dtype i8)" }, d.copy, d, src)
  lu.assertEquals(d:totable(), { 1, 2, 0, 0 })
  local q = new("i16", 4, { values = { 8, 8, 8, 8 } })
  H.assert_error({ "integer division by zero" }, q.idiv, q, new("i16", 4, { values = { 2, 4, 0, 1 } }))
  lu.assertEquals(q:totable()[1], 4)
  local f = new("f32", 4, { values = { 1, 2, 3, 4 } })
  H.assert_error({ "do not broadcast" }, f.add, f, new("f32", 3))
  H.assert_error({ "cannot cast" }, q.add, q, f)
  lu.assertEquals(f:totable(), { 1, 2, 3, 4 })
end

os.exit(lu.LuaUnit.run())
