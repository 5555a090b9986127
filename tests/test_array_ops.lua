-- Arrays v2 against real NumPy (/usr/bin/python3, NumPy 1.24) on the same bytes: every
-- elementwise operation, comparison, unary function, where, clip, cast, running sum and sort,
-- over every dtype, with mixed dtypes and Lua numbers (NumPy's value-based type resolution),
-- broadcasting, strided, reversed and transposed views, and operands that overlap dst. Each
-- case snapshots the blocks it touches, runs the luashm call, and NumPy then runs the same call
-- on the snapshot (np.op(x, y, out=dst, casting="unsafe")) through views of the same offsets
-- and strides: the results must agree (floats: exactly, or within 1 ulp where NumPy's own
-- SIMD functions may differ) and no byte outside dst may have changed. All cases run in one
-- Python process.
local lu = require "luaunit"
local H = require "helper"
local shm = require "luashm"

local DT = { "i8", "u8", "i16", "u16", "i32", "u32", "i64", "u64", "f32", "f64", "bool", "f16" }
local FLOAT = { f32 = true, f64 = true, f16 = true }
local function intlike(dt) return not FLOAT[dt] end

-- Values that exercise each dtype: signs, the ends of the range (integer wrap), zeros of both
-- signs, NaN and the infinities.
local EDGE = {
  i8 = { 0, 1, -1, 127, -128, 5, -7, 100, -3 },
  u8 = { 0, 1, 255, 128, 7, 200, 3, 254, 9 },
  i16 = { 0, -1, 32767, -32768, 300, -301, 7, 12345, -5 },
  u16 = { 0, 65535, 1, 40000, 7, 300, 2, 65000, 11 },
  i32 = { 0, -1, 2147483647, -2147483648, 70000, -7, 123456789, 5, -99 },
  u32 = { 0, 4294967295, 1, 3000000000, 7, 65536, 2, 99, 13 },
  i64 = { 0, -1, math.maxinteger, math.mininteger, 1 << 40, -7, 5, 3, -(1 << 33) },
  u64 = { 0, -1, 1, 1 << 63, 7, 1 << 40, 2, 99, 17 },
  f32 = { 0.0, -0.0, 1.5, -2.25, 1e30, -1e-30, 0 / 0, math.huge, 3.0, -7.5, 0.5 },
  f64 = { 0.0, -0.0, 1.5, -2.5, 1e300, -1e-300, 0 / 0, -math.huge, 2.5, 3.5, -0.5 },
  bool = { true, false, true, true, false },
  f16 = { 0.0, -0.0, 1.5, -2.5, 65504.0, 6.103515625e-05, 0 / 0, math.huge, 0.5, -3.0, 2.5 },
}
-- Divisors of an integer computation (never 0: that is an error, tested apart), and exponents
-- (never negative for integers: an error too).
local DIVISOR = { 3, -2, 7, -1, 5, 1, -128, 2 }
local UDIVISOR = { 3, 2, 7, 1, 5, 255, 128, 9 }
local EXPONENT = { 0, 1, 2, 3, 5, 7 }
local FEXPONENT = { 0.5, 2.0, -1.0, 3.0, 0.0, -0.5, 1.5 }

local made = {}
local function keep(x)
  made[#made + 1] = x
  return x
end

-- v as an element of dt: booleans for bool, integers wrapped into an integer dtype's range.
local BITS = { i8 = 8, u8 = 8, i16 = 16, u16 = 16, i32 = 32, u32 = 32 }
local function as_element(dt, v)
  if dt == "bool" then return type(v) == "boolean" and v or v ~= 0 end
  if FLOAT[dt] then return type(v) == "boolean" and (v and 1 or 0) or v end
  if type(v) == "boolean" then return v and 1 or 0 end
  if math.type(v) ~= "integer" then return 3 end
  local bits = BITS[dt]
  if bits then
    v = v & ((1 << bits) - 1)
    if dt:sub(1, 1) == "i" and v >= (1 << (bits - 1)) then v = v - (1 << bits) end
  end
  return v
end

-- A shared array of dtype dt and shape whose flat elements cycle through vals (from k).
local function filled(dt, shape, vals, k)
  local a = keep(shm.array(dt, shape))
  local flat = a:reshape(a.size)
  for i = 1, a.size do flat[i] = as_element(dt, vals[(i + (k or 0)) % #vals + 1]) end
  return a
end

-- An operand of dtype dt with values vals laid out as `layout` for dst shape {3, 4}.
local function operand(dt, vals, layout, k)
  if layout == "row" then return filled(dt, { 4 }, vals, k) end
  if layout == "col" then return filled(dt, { 3, 1 }, vals, k) end
  if layout == "strided" then return filled(dt, { 6, 9 }, vals, k):view({ -1, 1, -2 }, { 2, -1, 2 }) end
  if layout == "transposed" then return filled(dt, { 4, 3 }, vals, k):transpose() end
  return filled(dt, { 3, 4 }, vals, k)
end
local LAYOUTS = { "contig", "row", "col", "strided", "transposed" }
local DST_LAYOUTS = { "contig", "strided", "transposed" }

-- ---------------------------------------------------------------------------------------
-- The batch: cases recorded here, checked by one Python run
-- ---------------------------------------------------------------------------------------

local PY = H.python_prelude .. H.python_views .. [[
import warnings
warnings.simplefilter('ignore')
failures = 0
def close(a, b, ulps=0, rtol=0.0):
    a = np.asarray(a); b = np.asarray(b)
    if a.shape != b.shape:
        return False
    if a.dtype.kind != 'f' and b.dtype.kind != 'f':
        return bool(np.array_equal(a, b))
    fa = a.astype(np.float64); fb = b.astype(np.float64)
    same = (fa == fb) | (np.isnan(fa) & np.isnan(fb))
    if same.all():
        return True
    if rtol:
        return bool(np.all(same | (np.abs(fa - fb) <= rtol * np.maximum(np.abs(fb), 1e-300))))
    ref = b if b.dtype.kind == 'f' else a
    sp = np.abs(np.spacing(np.abs(ref))).astype(np.float64)
    return bool(ulps and np.all(same | (np.abs(fa - fb) <= ulps * sp)))
def fail(cid, what):
    global failures
    failures += 1
    if failures <= 40:
        print('FAIL %s: %s' % (cid, what))
def M(name):
    if name not in _maps:
        V(name, 0, 'u1', (1,), (1,))
    return _maps[name]
def check(cid, live, exp, pairs, ulps=0, rtol=0.0):
    if not close(live, exp, ulps, rtol):
        fail(cid, 'luashm %r, NumPy %r (%s)' % (live.tolist(), exp.tolist(), exp.dtype))
        return
    exp[...] = live
    for a, b in pairs:
        if M(a)[:] != M(b)[:]:
            fail(cid, 'a byte outside the result changed in ' + a)
            return
def value(cid, ours, exp, ulps=0, rtol=0.0):
    if isinstance(exp, np.ndarray) or isinstance(ours, np.ndarray):
        ok = close(ours, exp, ulps, rtol)
    elif isinstance(exp, (bool, np.bool_)):
        ok = ours is bool(exp)
    elif isinstance(exp, (int, np.integer)):
        ok = isinstance(ours, int) and (ours - int(exp)) % 2**64 == 0
    else:
        ok = close(np.float64(ours), np.float64(exp), ulps, rtol)
    if not ok:
        fail(cid, 'luashm %r, NumPy %r' % (ours, exp))
def sat(dst, src):
    """luashm's unsafe cast: NumPy's astype, except that floats saturate into integers (NumPy
    leaves out-of-range values undefined: a computation in floats into an integer dst)."""
    src = np.asarray(src)
    if src.dtype.kind == 'f' and dst.dtype.kind in 'iu':
        info = np.iinfo(dst.dtype)
        s = np.nan_to_num(src.astype(np.float64), nan=0.0, posinf=np.inf, neginf=-np.inf)
        hi = s >= float(info.max)
        lo = s <= float(info.min)
        mid = np.where(hi | lo, 0, np.trunc(s))
        res = mid.astype(dst.dtype)
        res[hi] = info.max
        res[lo] = info.min
        np.copyto(dst, res)
    else:
        np.copyto(dst, src, casting='unsafe')
]]

local lines, ncases = {}, 0

local function pyarg(v, snaps)
  if v == nil then return "None" end
  if type(v) == "string" then return string.format("%q", v) end
  if type(v) == "number" then return H.pynumber(v) end
  return H.pyview(v, snaps[v.name])
end

-- Copies every block the arrays stand on; returns name -> copy's name.
local function snapshot(...)
  local snaps = {}
  for i = 1, select("#", ...) do
    local a = select(i, ...)
    if type(a) == "userdata" and not snaps[a.name] then
      local b = a.block
      local s = keep(shm.create(b.size))
      s:write(0, b:read(0, b.size))
      snaps[a.name] = s.name
    end
  end
  return snaps
end

-- The pairs of (block as luashm left it, NumPy's expected block) to compare byte for byte.
local function pairs_of(after, snaps)
  local t = {}
  for live, snap in pairs(snaps) do t[#t + 1] = string.format("(%q, %q)", after[live], snap) end
  return "[" .. table.concat(t, ", ") .. "]"
end

-- Records a case: runs the luashm method named by the first word of `what` on dst with args,
-- and the NumPy statement (Python using D for dst's view of the snapshot taken before, X, Y,
-- Z for the operands) whose effect dst must show. The blocks are copied before the call (for
-- NumPy) and after it (what luashm did), since later cases may reuse them.
local function case(what, dst, args, numpy, ulps, rtol)
  ncases = ncases + 1
  local snaps = snapshot(dst, table.unpack(args, 1, args.n or #args))
  local method = what:match("^(%a+)")
  local ok, err = pcall(dst[method], dst, table.unpack(args, 1, args.n or #args))
  if not ok then
    lines[#lines + 1] = string.format("fail(%q, %q)", ncases .. " " .. what, "luashm raised " .. tostring(err))
    return
  end
  local after = snapshot(dst, table.unpack(args, 1, args.n or #args))
  local names = { "X", "Y", "Z" }
  lines[#lines + 1] = "try:"
  lines[#lines + 1] = "    D = " .. pyarg(dst, snaps)
  for i = 1, args.n or #args do lines[#lines + 1] = "    " .. names[i] .. " = " .. pyarg(args[i], snaps) end
  lines[#lines + 1] = "    " .. numpy
  lines[#lines + 1] = string.format("    check(%q, %s, D, %s, %d, %s)", ncases .. " " .. what,
    H.pyview(dst, after[dst.name]), pairs_of(after, snaps), ulps or 0, rtol or 0)
  lines[#lines + 1] = "except Exception as e:"
  lines[#lines + 1] = string.format("    fail(%q, 'NumPy raised %%r' %% e)", ncases .. " " .. what)
end

-- Records a Lua value (a number, boolean, or an Array it made) to compare with a NumPy
-- expression evaluated on the snapshot.
local function result(what, v, numpy, snaps, ulps, rtol)
  ncases = ncases + 1
  local lit
  if type(v) == "boolean" then
    lit = v and "True" or "False"
  elseif type(v) == "number" then
    lit = H.pynumber(v)
  else
    local c = keep(v:clone())
    lit = string.format("(%s, %q)", H.pyview(c), v.dtype)
  end
  lines[#lines + 1] = "try:"
  lines[#lines + 1] = "    E = " .. numpy
  lines[#lines + 1] = "    R = " .. lit
  lines[#lines + 1] = "    if isinstance(R, tuple):"
  lines[#lines + 1] = string.format("        if np.dtype(%s).name != np.asarray(E).dtype.name: fail(%q, 'dtype %%s, NumPy %%s' %% (R[1], np.asarray(E).dtype))",
    "{'i8':'i1','u8':'u1','i16':'i2','u16':'u2','i32':'i4','u32':'u4','i64':'i8','u64':'u8','f32':'f4','f64':'f8','bool':'?','f16':'f2'}[R[1]]",
    ncases .. " " .. what)
  lines[#lines + 1] = "        R = R[0]"
  lines[#lines + 1] = string.format("    value(%q, R, E, %d, %s)", ncases .. " " .. what, ulps or 0, rtol or 0)
  lines[#lines + 1] = "except Exception as e:"
  lines[#lines + 1] = string.format("    fail(%q, 'NumPy raised %%r' %% e)", ncases .. " " .. what)
  return snaps
end

local function run_batch()
  local out = H.python(PY .. table.concat(lines, "\n") .. "\nprint('CASES', failures)\n")
  lines = {}
  local failed = tonumber(out:match("CASES (%d+)"))
  lu.assertEquals(failed, 0, out)
  return ncases
end

TestArrayOps = {}

function TestArrayOps:setUp()
  math.randomseed(17)
  ncases = 0
  lines = {}
end

function TestArrayOps:tearDown()
  for _, x in ipairs(made) do
    local b = x.block or x
    pcall(b.unlink, b)
  end
  made = {}
end

local function pick(t) return t[math.random(#t)] end

-- ---------------------------------------------------------------------------------------
-- Elementwise binary operations
-- ---------------------------------------------------------------------------------------

local BINARY = { add = "add", sub = "subtract", mul = "multiply", div = "true_divide",
  idiv = "floor_divide", mod = "remainder", pow = "power", minimum = "minimum",
  maximum = "maximum" }

-- The values of an operand of dtype dt in the role of x or y of op.
local function values_for(op, role, dt, int_computation)
  if role == "y" and (op == "idiv" or op == "mod") and int_computation then
    return dt:sub(1, 1) == "u" and UDIVISOR or DIVISOR
  end
  if role == "y" and op == "pow" then return FLOAT[dt] and FEXPONENT or EXPONENT end
  if op == "pow" then return FLOAT[dt] and { 0.5, 2.0, 3.0, -2.0, 1.5, 10.0 } or { 2, 3, -2, 0, 1, 5 } end
  return EDGE[dt]
end

-- A number operand for op as x or y of an integer or float computation.
local function number_for(op, role, intdst)
  if role == "y" and (op == "idiv" or op == "mod") then return pick({ 3, -2, 7 }) end
  if role == "y" and op == "pow" then return intdst and pick({ 2, 3 }) or pick({ 2, 0.5, 3 }) end
  if intdst then return pick({ 1, -1, 300, -129, 70000, 5 }) end
  return pick({ 1, -1, 2.5, 300, 1e10, -0.25, 1e-3 })
end

function TestArrayOps:test_binary_ops_every_dtype_mixed_broadcast_strided_against_numpy()
  for op, np in pairs(BINARY) do
    for _, dd in ipairs(DT) do
      local intdst = intlike(dd)
      if not (op == "div" and intdst) then
        for trial = 1, 4 do
          -- x and y: dtypes (the same as dst on the first trial), or Lua numbers
          local dx = trial == 1 and dd or pick(DT)
          local dy = trial == 1 and dd or pick(DT)
          if intdst then
            if FLOAT[dx] then dx = pick({ "i8", "u16", "i32", "u64", "bool" }) end
            if FLOAT[dy] then dy = pick({ "u8", "i16", "u32", "i64", "bool" }) end
          end
          local allbool = dx == "bool" and dy == "bool"
          if op == "sub" and allbool then dy = "i8" end
          local intcomp = intlike(dx) and intlike(dy)
          local function opnd(role, dt, k)
            if trial == 4 and role == "y" then return number_for(op, role, intdst or intcomp) end
            return operand(dt, values_for(op, role, dt, intcomp), pick(LAYOUTS), k)
          end
          local dst = operand(dd, EDGE[dd], pick(DST_LAYOUTS), trial)
          -- pow: the C library's against NumPy's, an ulp of the dtype it computes in
          local rtol
          if op == "pow" then
            local involved = dd .. dx .. dy
            rtol = involved:find("f16") and 2 ^ -10 or involved:find("f32") and 2 ^ -23 or 2 ^ -52
          end
          if trial == 3 then -- dst:op(x): dst is the first operand
            local x = opnd("y", dy, trial)
            if op == "sub" and dd == "bool" and (type(x) ~= "number" and x.dtype == "bool") then
              x = 1
            end
            case(op .. " " .. dd .. " x=" .. tostring(type(x) == "number" and x or x.dtype), dst, { x },
              "sat(D, np." .. np .. "(D, X))", nil, rtol)
          else
            local x, y = opnd("x", dx, trial), opnd("y", dy, trial + 1)
            case(op .. " " .. dd .. " " .. dx .. " " .. tostring(type(y) == "number" and y or dy), dst, { x, y },
              "sat(D, np." .. np .. "(X, Y))", nil, rtol)
          end
        end
      end
    end
  end
  run_batch()
end

-- Unsigned 8- and 16-bit division by one number takes a multiply-and-shift path: every
-- dividend against NumPy, for divisors across the range.
function TestArrayOps:test_unsigned_division_by_one_number_every_dividend()
  for _, dt in ipairs({ "u8", "u16" }) do
    local n = dt == "u8" and 256 or 65536
    for _, d in ipairs({ 1, 2, 3, 7, 9, 10, 100, 255, 256, 1000, 4097, 65535 }) do
      if d < n then
        local x = keep(shm.array(dt, n))
        x:apply(function(_, i) return i - 1 end)
        for _, op in ipairs({ "idiv", "mod" }) do
          local dst = keep(shm.array(dt, n))
          case(op .. " " .. dt .. " by " .. d, dst, { x, d }, "sat(D, np." .. BINARY[op] .. "(X, Y))")
        end
      end
    end
  end
  run_batch()
end

-- Operands that share dst's bytes: the result is as if they were copied first (NumPy's rule),
-- whichever way they overlap.
function TestArrayOps:test_overlapping_operands_as_numpy()
  for _, dt in ipairs({ "f64", "i32", "u8", "f16" }) do
    local a = filled(dt, 40, EDGE[dt])
    case("add shifted forward " .. dt, a:view({ 2, -1 }), { a:view({ 1, -2 }) }, "np.add(D, X, out=D, casting='unsafe')")
    case("add shifted back " .. dt, a:view({ 1, -2 }), { a:view({ 2, -1 }) }, "np.add(D, X, out=D, casting='unsafe')")
    case("sub reversed " .. dt, a, { a:view({ -1, 1, -1 }) }, "np.subtract(D, X, out=D, casting='unsafe')")
    case("mul strided into itself " .. dt, a:view({ 1, -1, 2 }), { a:view({ 2, -1, 2 }), a:view({ 1, 20 }) },
      "np.multiply(X, Y, out=D, casting='unsafe')")
    local m = filled(dt, { 6, 6 }, EDGE[dt], 3)
    case("maximum transposed " .. dt, m, { m:transpose() }, "np.maximum(D, X, out=D, casting='unsafe')")
    case("add rows shifted " .. dt, m:view({ 2, -1 }), { m:view({ 1, -2 }), m:view({ 2, -1 }, { -1, 1, -1 }) },
      "np.add(X, Y, out=D, casting='unsafe')")
    case("minimum same elements " .. dt, m:view({}, { 1, -1, 2 }), { m:view({}, { 1, -1, 2 }) },
      "np.minimum(D, X, out=D, casting='unsafe')")
    local c = filled(dt, 40, EDGE[dt], 5)
    case("copy overlapping " .. dt, c:view({ 3, -1 }), { c:view({ 1, -3 }) }, "np.copyto(D, X, casting='unsafe')")
  end
  run_batch()
end

-- ---------------------------------------------------------------------------------------
-- Comparisons, unary functions, where, clip
-- ---------------------------------------------------------------------------------------

local COMPARE = { lt = "less", le = "less_equal", gt = "greater", ge = "greater_equal",
  eq = "equal", ne = "not_equal" }

function TestArrayOps:test_comparisons_into_bool_and_u8_masks_against_numpy()
  for op, np in pairs(COMPARE) do
    for _, dx in ipairs(DT) do
      for trial = 1, 2 do
        local dy = trial == 1 and dx or pick(DT)
        local mask = operand(trial == 1 and "bool" or "u8", { 0 }, pick(DST_LAYOUTS))
        local x = operand(dx, EDGE[dx], pick(LAYOUTS), trial)
        local y = trial == 2 and math.random() < 0.3 and pick({ 1, -1, 2.5, 0 / 0, 300 })
          or operand(dy, EDGE[dy], pick(LAYOUTS), trial + 2)
        case(op .. " " .. dx .. " " .. tostring(type(y) == "number" and y or dy), mask, { x, y },
          "np." .. np .. "(X, Y, out=D, casting='unsafe')")
      end
    end
  end
  run_batch()
end

local UNARY = { abs = "absolute", neg = "negative", sqrt = "sqrt", exp = "exp", log = "log",
  floor = "floor", ceil = "ceil", round = "rint" }
local UNARY_ULPS = { exp = true, log = true }

function TestArrayOps:test_unary_functions_against_numpy()
  local SMALL = { 0, 1, -1, 7, -8, 100, -100, 3 }
  for op, np in pairs(UNARY) do
    local transcendental = op == "sqrt" or op == "exp" or op == "log"
    for _, dd in ipairs(DT) do
      if not (transcendental and intlike(dd)) then
        for trial = 1, 3 do
          local dx = trial == 1 and dd or pick(DT)
          if intlike(dd) and FLOAT[dx] then dx = pick({ "i8", "u8", "i16", "i32", "bool" }) end
          if op == "neg" and dx == "bool" then dx = "i8" end
          -- floor and ceil of integers: NumPy computes them in floats; small values agree
          local vals = (op == "floor" or op == "ceil") and intlike(dx) and SMALL or EDGE[dx]
          if op == "exp" and FLOAT[dx] then vals = { 0.0, -0.0, 1.5, -2.5, 10.0, -20.0, 0 / 0, math.huge, -math.huge, 0.001 } end
          local dst = operand(dd, EDGE[dd], pick(DST_LAYOUTS), trial)
          -- floor, ceil and round leave integers as they are (NumPy goes through floats)
          local npx = (op == "floor" or op == "ceil" or op == "round") and intlike(dx) and "X"
            or "np." .. np .. "(X)"
          -- exp and log may differ by an ulp of the dtype they compute in (NumPy's own SIMD
          -- functions against the C library's)
          local rtol = UNARY_ULPS[op] and ((dx == "f16" or dx == "bool" or dx == "i8" or dx == "u8") and 2 ^ -10
            or (dx == "f32" or dx == "i16" or dx == "u16") and 2 ^ -23 or 2 ^ -52)
          if trial == 3 and dx == dd then
            local src = operand(dd, vals, "contig", 1)
            dst:copy(src)
            case(op .. " " .. dd .. " in place", dst, { dst }, "sat(D, " .. npx .. ")", nil, rtol)
          else
            local x = operand(dx, vals, pick(LAYOUTS), trial)
            case(op .. " " .. dd .. " " .. dx, dst, { x }, "sat(D, " .. npx .. ")", nil, rtol)
          end
        end
      end
    end
  end
  -- round is half to even, as NumPy's
  local h = filled("f64", 10, { 0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 3.5, 1e15 + 0.5, -0.49999999999999994, 2.4999 })
  case("round half to even", h, {}, "np.rint(D, out=D)")
  local hf = filled("f16", 8, { 0.5, 1.5, 2.5, -0.5, -2.5, 1023.5, 2047.0, 0.25 })
  case("round half to even f16", hf, {}, "np.rint(D, out=D)")
  run_batch()
end

function TestArrayOps:test_where_and_clip_against_numpy()
  for _, dd in ipairs(DT) do
    for trial = 1, 3 do
      local dx, dy = pick(DT), pick(DT)
      if intlike(dd) then
        if FLOAT[dx] then dx = "i16" end
        if FLOAT[dy] then dy = "u8" end
      end
      local dst = operand(dd, EDGE[dd], pick(DST_LAYOUTS), trial)
      local mask = operand(pick({ "bool", "u8", "f32", "i64" }), { 0, 1, 0, 0, 2, 1, 0 }, pick(LAYOUTS), trial)
      local x = operand(dx, EDGE[dx], pick(LAYOUTS), 1)
      local y = trial == 3 and (intlike(dd) and -5 or 2.5) or operand(dy, EDGE[dy], pick(LAYOUTS), 2)
      case("where " .. dd .. " " .. dx .. " " .. tostring(type(y) == "number" and y or dy), dst,
        { mask, x, y }, "sat(D, np.where(X, Y, Z))")
      local lo, hi
      if dd == "bool" then
        lo, hi = 0, 1
      elseif intlike(dd) then
        lo, hi = pick({ -5, 0, 3 }), pick({ 100, 7, 300 })
      else
        lo, hi = pick({ -1.5, 0.0, 0 / 0 }), pick({ 2.5, 1e20 })
      end
      if math.random() < 0.2 then lo = nil elseif math.random() < 0.2 then hi = nil end
      if trial == 2 and dd ~= "bool" then lo = operand(dd, EDGE[dd], pick(LAYOUTS), 4) end
      case("clip " .. dd, dst, { lo, hi, n = 2 }, "sat(D, np.clip(D, X, Y))")
    end
  end
  run_batch()
end

-- ---------------------------------------------------------------------------------------
-- Casts, running sums, sorting
-- ---------------------------------------------------------------------------------------

function TestArrayOps:test_unsafe_and_exact_casts_against_numpy()
  local FLOATS = { 0.0, -0.0, 1.9, -1.9, 255.5, -129.7, 1e10, -1e10, 3e38, 0 / 0, math.huge, -math.huge, 0.49 }
  for _, dd in ipairs(DT) do
    for _, ds in ipairs(DT) do
      local vals = FLOAT[ds] and FLOATS or EDGE[ds]
      if ds == "f16" then vals = { 0.0, -0.0, 1.9, -1.9, 255.5, -129.75, 65504.0, 0 / 0, math.huge, -math.huge, 0.49 } end
      local dst = operand(dd, EDGE[dd], pick(DST_LAYOUTS))
      local src = operand(ds, vals, pick(LAYOUTS), 1)
      case("copy unsafe " .. dd .. " <- " .. ds, dst, { src, "unsafe" }, "sat(D, X)")
    end
  end
  -- exact copies of values every dtype holds
  for _, dd in ipairs(DT) do
    local src = operand(pick({ "i8", "u8", "f32", "bool", "f16" }), { 0, 1, 1, 0, 1 }, pick(LAYOUTS))
    case("copy exact " .. dd .. " <- " .. src.dtype, operand(dd, EDGE[dd], pick(DST_LAYOUTS)), { src },
      "np.copyto(D, X, casting='unsafe')")
  end
  run_batch()
end

function TestArrayOps:test_cumsum_and_sort_against_numpy()
  for _, dt in ipairs(DT) do
    for _, axis in ipairs({ false, 1, 2, -1 }) do
      local a = operand(dt, EDGE[dt], pick(DST_LAYOUTS), axis and axis + 3 or 0)
      local npaxis = axis and tostring(axis > 0 and axis - 1 or axis) or "None"
      case("cumsum " .. dt .. " axis " .. tostring(axis), a, { axis or nil, n = 1 },
        "D[...] = np.cumsum(D, axis=" .. npaxis .. ", dtype=D.dtype).reshape(D.shape)")
      local s = operand(dt, EDGE[dt], pick(DST_LAYOUTS), 7)
      case("sort " .. dt .. " axis " .. tostring(axis), s, { axis or nil, n = 1 },
        "D[...] = np.sort(D, axis=" .. (axis and npaxis or "-1") .. ")")
      local r = operand(dt, EDGE[dt], pick(DST_LAYOUTS), 2)
      local snaps = snapshot(r)
      result("argsort " .. dt .. " axis " .. tostring(axis), r:argsort(axis or nil),
        "np.argsort(" .. H.pyview(r, snaps[r.name]) .. ", axis=" .. (axis and npaxis or "-1") .. ", kind='stable') + 1", snaps)
    end
  end
  -- long runs go through the radix sort: random values of every dtype, and NaN last
  for _, dt in ipairs({ "f64", "f32", "i64", "u32", "i16", "u8", "f16" }) do
    local a = keep(shm.array(dt, 3000))
    a:apply(function(_, i)
      local v = (i * 7919) % 3001 - 1500
      if FLOAT[dt] then return i % 97 == 0 and 0 / 0 or v / 7 end
      if dt:sub(1, 1) == "u" then return v % 200 end
      return v
    end)
    case("sort long " .. dt, a, {}, "D[...] = np.sort(D)")
  end
  run_batch()
end

-- ---------------------------------------------------------------------------------------
-- Reductions and dot
-- ---------------------------------------------------------------------------------------

local REDUCE = { sum = "np.sum", prod = "np.prod", min = "np.min", max = "np.max",
  mean = "np.mean", var = "np.var", std = "np.std", argmin = "np.argmin", argmax = "np.argmax",
  any = "np.any", all = "np.all", count = "np.count_nonzero" }

-- NumPy's result of reduction r of X along axis (None: all), as luashm gives it.
local function numpy_reduction(r, axis, ddof)
  local ax = axis and tostring(axis > 0 and axis - 1 or axis) or "None"
  local call = REDUCE[r] .. "(X, axis=" .. ax .. (ddof and (", ddof=" .. ddof) or "") .. ")"
  if r == "argmin" or r == "argmax" then
    if not axis then return "int(" .. call .. ") + 1" end -- the flat 1-based index
    return call .. " + 1"
  end
  if (r == "mean" or r == "var" or r == "std") and axis then
    -- luashm computes in f64 and gives the dtype NumPy gives (f64 for integers)
    return REDUCE[r] .. "(X, axis=" .. ax .. ", dtype=np.float64" .. (ddof and (", ddof=" .. ddof) or "")
      .. ").astype(np.result_type(X.dtype.kind in 'biu' and np.float64 or X.dtype))"
  end
  if r == "count" and axis then return call .. ".astype(np.int64)" end
  if not axis then
    if r == "sum" or r == "prod" then
      return "(lambda v: v.item() if v.dtype.kind in 'biu' else float(v))(np.asarray(" .. REDUCE[r]
        .. "(X, dtype=(np.int64 if X.dtype.kind in 'bi' else np.uint64 if X.dtype.kind == 'u' else np.float64))))"
    end
    if r == "min" or r == "max" then return "np.asarray(" .. call .. ").item()" end
    if r == "any" or r == "all" then return "bool(" .. call .. ")" end
    if r == "count" then return "int(" .. call .. ")" end
    return "float(" .. REDUCE[r] .. "(X, dtype=np.float64" .. (ddof and (", ddof=" .. ddof) or "") .. "))"
  end
  return call
end

function TestArrayOps:test_reductions_every_dtype_axis_and_out_against_numpy()
  for r in pairs(REDUCE) do
    for _, dt in ipairs(DT) do
      for _, axis in ipairs({ false, 1, 2, -1 }) do
        local x = operand(dt, EDGE[dt], pick(LAYOUTS), axis and axis + 4 or 1)
        local ddof = (r == "var" or r == "std") and axis == 2 and 1 or nil
        local ok, v = pcall(x[r], x, axis or nil, nil, ddof)
        if x.ndim == 1 and axis and axis ~= 1 and axis ~= -1 then
          lu.assertFalse(ok) -- axis 2 of a 1-d array
        else
          lu.assertTrue(ok, v)
          local snaps = snapshot(x)
          local py = numpy_reduction(r, x.ndim > 1 and axis or nil, ddof):gsub("X", H.pyview(x, snaps[x.name]))
          -- float sums: NumPy sums pairwise in the dtype, luashm in double accumulators
          local rtol = FLOAT[dt] and ({ f16 = 2e-2, f32 = 2e-6, f64 = 1e-12 })[dt]
          if r == "mean" or r == "var" or r == "std" then rtol = FLOAT[dt] and rtol or 1e-12 end
          result(r .. " " .. dt .. " axis " .. tostring(axis), v, py, snaps, nil, rtol)
        end
      end
    end
  end
  -- into out, of the result's dtype or another
  local m = operand("i16", EDGE.i16, "strided")
  local out = keep(shm.array("f64", 4))
  lu.assertEquals(m:sum(1, out), out)
  local snaps = snapshot(m)
  result("sum into f64 out", out, "np.sum(" .. H.pyview(m, snaps[m.name]) .. ", axis=0).astype(np.float64)", snaps)
  local o2 = keep(shm.array("i8", 3))
  m:max(-1, o2)
  result("max into i8 out", o2, "np.max(" .. H.pyview(m, snaps[m.name]) .. ", axis=-1).astype(np.int8)", snaps)
  -- integer sums wrap like NumPy's int64 accumulator; NaN propagates through min and max
  local big = filled("i64", 5, { math.maxinteger, math.maxinteger, 3, -1, 7 })
  snaps = snapshot(big)
  result("sum wraps", big:sum(), "int(np.sum(" .. H.pyview(big, snaps[big.name]) .. "))", snaps)
  -- infinities of both signs make the vector max's check sum NaN without any NaN element
  for _, dt in ipairs({ "f64", "f32" }) do
    local inf = filled(dt, 100, { 1.0, math.huge, -math.huge, 3.0, 1e38, -1e38 })
    snaps = snapshot(inf)
    for _, r in ipairs({ "min", "max", "argmin", "argmax" }) do
      result(r .. " infinities " .. dt, inf[r](inf), numpy_reduction(r, nil):gsub("X", H.pyview(inf, snaps[inf.name])), snaps)
    end
  end
  local nan = filled("f64", { 3, 3 }, { 1.0, 0 / 0, -2.0, 5.0 })
  snaps = snapshot(nan)
  for _, r in ipairs({ "min", "max", "argmin", "argmax" }) do
    result(r .. " NaN", nan[r](nan), numpy_reduction(r, nil):gsub("X", H.pyview(nan, snaps[nan.name])), snaps)
    result(r .. " NaN axis", nan[r](nan, 1), numpy_reduction(r, 1):gsub("X", H.pyview(nan, snaps[nan.name])), snaps)
  end
  run_batch()
end

function TestArrayOps:test_dot_against_numpy()
  for _, dx in ipairs(DT) do
    local dy = pick(DT)
    local x = filled(dx, 7, EDGE[dx], 2)
    local y = filled(dy, { 14 }, EDGE[dy], 5):view({ -1, 1, -2 })
    local snaps = snapshot(x, y)
    local v = x:dot(y)
    local rtol = (FLOAT[dx] or FLOAT[dy]) and 1e-6 or nil
    result("dot " .. dx .. " " .. dy, v, "(lambda v: v.item())(np.asarray(np.dot(" .. H.pyview(x, snaps[x.name]) .. ", "
      .. H.pyview(y, snaps[y.name]) .. ")))", snaps, nil, rtol)
  end
  run_batch()
end

os.exit(lu.LuaUnit.run())
