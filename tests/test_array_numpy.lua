-- Arrays and the real NumPy (/usr/bin/python3): the NPY header byte for byte, live views both
-- ways through numpy.load(mmap_mode='r+'), .npy files both ways for all ten dtypes and 1-d to
-- 4-d, and malformed, truncated or lying headers, which must be clean errors.
local lu = require "luaunit"
local H = require "helper"
local shm = require "luashm"

local DTYPES = { "i8", "u8", "i16", "u16", "i32", "u32", "i64", "u64", "f32", "f64" }
local NP = { i8 = "int8", u8 = "uint8", i16 = "int16", u16 = "uint16", i32 = "int32",
  u32 = "uint32", i64 = "int64", u64 = "uint64", f32 = "float32", f64 = "float64" }
local SHAPES = { { 5 }, { 2, 3 }, { 2, 1, 3 }, { 2, 2, 1, 3 } }

-- A value for flat index i of dtype dt that exercises sign and width (exact in f32 too).
local function value(dt, i)
  if dt == "f32" or dt == "f64" then return (i % 2 == 0 and -1 or 1) * (i + 0.25) end
  if dt:sub(1, 1) == "u" then
    if dt == "u64" and i == 1 then return -1 end -- 2^64 - 1
    return i * 3
  end
  return (i % 2 == 0 and -1 or 1) * i * 3
end

local function count(shape)
  local n = 1
  for _, d in ipairs(shape) do n = n * d end
  return n
end

local function pyshape(shape)
  return "(" .. table.concat(shape, ", ") .. (#shape == 1 and ",)" or ")")
end

-- Parses Python's output: one number per line (ints as Lua integers, u64 given signed).
local function numbers(out)
  local t = {}
  for line in out:gmatch("[^\n]+") do t[#t + 1] = math.tointeger(tonumber(line)) or tonumber(line) end
  return t
end

local PY_DUMP = [[
import numpy as np
def dump(a):
    for v in a.reshape(-1).tolist():
        if isinstance(v, int) and v >= 2**63: v -= 2**64
        print(repr(v))
]]

TestArrayNumpy = {}
local _, track, made = H.keeps_arrays(TestArrayNumpy)

function TestArrayNumpy:test_header_is_numpys_byte_for_byte()
  local cases, arrays = {}, {}
  for _, dt in ipairs(DTYPES) do
    for _, shape in ipairs({ { 0 }, { 3 }, { 2, 3 }, { 1, 1, 1, 1 }, { 12345678 }, { 7, 0, 9 } }) do
      if not (shape[1] == 12345678 and dt ~= "i8") then
        local a = track(shm.array(dt, shape))
        arrays[#arrays + 1] = a
        cases[#cases + 1] = string.format("(%q, %s)", NP[dt], pyshape(shape))
      end
    end
  end
  local out = H.python([[
import io, numpy as np
for dt, shape in []] .. table.concat(cases, ", ") .. [[]:
    b = io.BytesIO()
    a = np.lib.stride_tricks.as_strided(np.zeros(1, dtype=dt), shape, [0] * len(shape))
    np.lib.format.write_array_header_1_0(b, np.lib.format.header_data_from_array_1_0(a))
    print(b.getvalue().hex())
]])
  local i = 0
  for hex in out:gmatch("[^\n]+") do
    i = i + 1
    local a = arrays[i]
    local mine = a.block:read(0, a.offset):gsub(".", function(c) return ("%02x"):format(c:byte()) end)
    lu.assertEquals(mine, hex, tostring(a))
    lu.assertEquals(a.offset % 64, 0)
  end
  lu.assertEquals(i, #arrays)
end

function TestArrayNumpy:test_numpy_sees_lua_writes_and_lua_sees_numpys_live()
  local names = {}
  for _, dt in ipairs(DTYPES) do
    for _, shape in ipairs(SHAPES) do
      local a = track(shm.array(dt, shape))
      local flat = a:reshape(a.size)
      for i = 1, a.size do flat[i] = value(dt, i) end
      names[#names + 1] = a.name
    end
  end
  -- NumPy opens each block by path, reports dtype, shape and values, then writes its own.
  local out = H.python(PY_DUMP .. [[
for name in sys.argv[1:]:
    a = np.load('/dev/shm/' + name, mmap_mode='r+')
    print('#', a.dtype, a.shape)
    dump(a)
    flat = a.reshape(-1)
    for i in range(flat.size):
        flat[i] = (i * 7) % 100
    a.flush()
]], table.unpack(names))
  local k, vals = 0, nil
  local lines = {}
  for line in out:gmatch("[^\n]+") do lines[#lines + 1] = line end
  local li = 1
  for _, dt in ipairs(DTYPES) do
    for _, shape in ipairs(SHAPES) do
      k = k + 1
      local a = made[k]
      lu.assertEquals(lines[li], "# " .. NP[dt] .. " " .. pyshape(shape))
      li = li + 1
      vals = {}
      for i = 1, a.size do
        vals[i] = math.tointeger(tonumber(lines[li])) or tonumber(lines[li])
        li = li + 1
      end
      for i = 1, a.size do lu.assertEquals(vals[i], value(dt, i), dt .. " " .. i) end
      local flat = a:reshape(a.size)
      for i = 1, a.size do lu.assertEquals(flat[i], ((i - 1) * 7) % 100, dt) end
    end
  end
end

-- PEER-BUGS: a NumPy user's note on shared_memory, "irritating that you need to know the
-- dtype and dimensions in advance": shm.open(name) alone finds them in the block.
function TestArrayNumpy:test_peer_numpy_note_open_by_name_alone()
  local name = "luashm_np_" .. tostring(os.time()) .. math.random(1e6)
  H.python([[
import numpy as np
a = np.lib.format.open_memmap('/dev/shm/' + sys.argv[1], mode='w+', dtype='<i4', shape=(3, 4))
a[:] = np.arange(12).reshape(3, 4) - 5
a.flush()
]], name)
  local a <close> = shm.open(name)
  track(a)
  lu.assertEquals(a.dtype, "i32")
  lu.assertEquals(a.shape, { 3, 4 })
  lu.assertEquals(a:get(3, 4), 6)
  lu.assertEquals(a:sum(), 6)
  lu.assertEquals(a.offset, 128)
end

function TestArrayNumpy:test_npy_files_from_numpy_load_in_lua()
  local dir = os.tmpname()
  os.remove(dir)
  assert(os.execute("mkdir " .. dir))
  local specs = {}
  for _, dt in ipairs(DTYPES) do
    for _, shape in ipairs(SHAPES) do
      specs[#specs + 1] = string.format("(%q, %s)", NP[dt], pyshape(shape))
    end
  end
  local out = H.python(PY_DUMP .. [[
import os
d = sys.argv[1]
for k, (dt, shape) in enumerate([]] .. table.concat(specs, ", ") .. [[]):
    n = int(np.prod(shape))
    i = np.arange(1, n + 1)
    if dt.startswith('float'):
        v = np.where(i % 2 == 0, -1, 1) * (i + 0.25)
    elif dt.startswith('u'):
        v = i * 3
    else:
        v = np.where(i % 2 == 0, -1, 1) * i * 3
    a = v.astype(dt).reshape(shape)
    if dt == 'uint64': a.reshape(-1)[0] = 2**64 - 1
    np.save(os.path.join(d, '%d.npy' % k), a)
]], dir)
  lu.assertEquals(out, "")
  local k = 0
  for _, dt in ipairs(DTYPES) do
    for _, shape in ipairs(SHAPES) do
      local a = track(shm.load(dir .. "/" .. k .. ".npy"))
      k = k + 1
      lu.assertEquals(a.dtype, dt)
      lu.assertEquals(a.shape, shape)
      local flat = a:reshape(a.size)
      for i = 1, a.size do lu.assertEquals(flat[i], value(dt, i), dt .. " " .. i) end
    end
  end
  os.execute("rm -rf " .. dir)
end

function TestArrayNumpy:test_lua_saves_npy_files_numpy_loads()
  local dir = os.tmpname()
  os.remove(dir)
  assert(os.execute("mkdir " .. dir))
  local paths = {}
  for _, dt in ipairs(DTYPES) do
    for _, shape in ipairs(SHAPES) do
      local a = track(shm.array(dt, shape))
      local flat = a:reshape(a.size)
      for i = 1, a.size do flat[i] = value(dt, i) end
      local p = dir .. "/" .. #paths .. ".npy"
      a:save(p)
      paths[#paths + 1] = p
      -- and back through shm.load
      local b = track(shm.load(p, { track = true }))
      lu.assertEquals(b:totable(), a:totable())
    end
  end
  local out = H.python(PY_DUMP .. [[
for p in sys.argv[1:]:
    a = np.load(p)
    print('#', a.dtype, a.shape)
    dump(a)
]], table.unpack(paths))
  local lines = {}
  for line in out:gmatch("[^\n]+") do lines[#lines + 1] = line end
  local li = 1
  for _, dt in ipairs(DTYPES) do
    for _, shape in ipairs(SHAPES) do
      lu.assertEquals(lines[li], "# " .. NP[dt] .. " " .. pyshape(shape))
      li = li + 1
      for i = 1, count(shape) do
        lu.assertEquals(math.tointeger(tonumber(lines[li])) or tonumber(lines[li]), value(dt, i), dt)
        li = li + 1
      end
    end
  end
  H.assert_error({ "luashm: save '" .. dir .. "/no/such/dir.npy': No such file or directory" },
    made[1].save, made[1], dir .. "/no/such/dir.npy")
  os.execute("rm -rf " .. dir)
end

function TestArrayNumpy:test_load_errors()
  H.assert_error({ "luashm: load '/nonexistent/x.npy': No such file or directory" }, shm.load, "/nonexistent/x.npy")
  H.assert_error({ "luashm: load '/tmp': not a regular file" }, shm.load, "/tmp")
  local p = os.tmpname()
  local function put(bytes)
    local f = assert(io.open(p, "wb"))
    f:write(bytes)
    f:close()
  end
  put("not an npy file at all, just text")
  H.assert_error({ "luashm: load '" .. p .. "': bad NPY header: bad magic" }, shm.load, p)
  put("")
  H.assert_error({ "bad NPY header: truncated" }, shm.load, p)
  -- a header whose shape needs more data than the file has
  local a = track(shm.array("f64", 4))
  a:save(p)
  local f = assert(io.open(p, "rb"))
  local whole = f:read("a")
  f:close()
  put(whole:sub(1, #whole - 1))
  local before = H.shm_names()
  H.assert_error({ "32 bytes of data at offset 128 do not fit in 159 bytes" }, shm.load, p)
  lu.assertEquals(H.shm_names(), before, "a failed load leaves no block")
  put(whole)
  lu.assertEquals(track(shm.load(p)).shape, { 4 })
  os.remove(p)
end

-- Writes a header (and zero data) into a fresh block and returns the error shm.open raises.
local function open_with(header, size)
  size = size or math.max(4096, #header)
  size = size or 4096
  local b <close> = shm.create(size)
  local name = b.name
  b:write(0, header)
  local ok, err = pcall(shm.open, name)
  b:unlink()
  lu.assertFalse(ok, "shm.open accepted: " .. header)
  lu.assertStrContains(err, "luashm: open '" .. name .. "': ")
  return err
end

-- A version 1.0 (or 2.0) header around dict, padded so the data starts on a 64-byte boundary
-- (plus misalign bytes).
local function v1(dict, misalign, version)
  local pre = version == 2 and 12 or 10
  local pad = (64 - (pre + #dict + 1) % 64) % 64 + (misalign or 0)
  local body = dict .. (" "):rep(pad) .. "\n"
  return "\x93NUMPY" .. (version == 2 and "\2\0" .. string.pack("<I4", #body) or "\1\0" .. string.pack("<I2", #body)) .. body
end

function TestArrayNumpy:test_bad_headers_are_clean_errors()
  local cases = {
    { "\x93NUMPY\1\0", "truncated", 8 },
    { "\x93NUMPY\1\0", "the header is not a dict" },
    { "\x93NUMPY\9\0" .. string.pack("<I2", 10) .. "{}        ", "unsupported format version 9.0" },
    { "\x93NUMPY\1\0" .. string.pack("<I2", 65535) .. "{", "header length runs past the end" },
    { "\x93NUMPY\2\0" .. string.pack("<I4", 0x7fffffff) .. "{", "header length is larger than 1 MiB" },
    { v1("[1, 2]"), "the header is not a dict" },
    { v1("{'descr': '<c16', 'fortran_order': False, 'shape': (3,), }"), "unsupported descr '<c16'" },
    { v1("{'descr': '>f8', 'fortran_order': False, 'shape': (3,), }"), "big-endian descr '>f8' is not supported" },
    { v1("{'descr': '', 'fortran_order': False, 'shape': (3,), }"), "unsupported descr ''" },
    { v1("{'descr': [('a', '<i4')], 'fortran_order': False, 'shape': (3,), }"), "structured dtypes are not supported" },
    { v1("{'descr': '<f8', 'fortran_order': True, 'shape': (3,), }"), "fortran_order True (column-major) is not supported" },
    { v1("{'descr': '<f8', 'fortran_order': 0, 'shape': (3,), }"), "fortran_order is not True or False" },
    { v1("{'descr': '<f8', 'shape': (3,), }"), "the dict lacks 'fortran_order'" },
    { v1("{'descr': '<f8', 'fortran_order': False, 'shape': (3,), 'x': 1}"), "unexpected key 'x'" },
    { v1("{'descr': '<f8', 'descr': '<f8', 'fortran_order': False, 'shape': (3,)}"), "duplicate key 'descr'" },
    { v1("{'descr': '<f8', 'fortran_order': False, 'shape': (-3,), }"), "negative dimension in shape" },
    { v1("{'descr': '<f8', 'fortran_order': False, 'shape': (3), }"), "shape (n) is not a tuple" },
    { v1("{'descr': '<f8', 'fortran_order': False, 'shape': (3 4), }"), "expected ',' or ')' in shape" },
    { v1("{'descr': '<f8', 'fortran_order': False, 'shape': [3], }"), "shape is not a tuple" },
    { v1("{'descr': '<f8', 'fortran_order': False, 'shape': (" .. ("1, "):rep(33) .. "), }"), "more than 32 dimensions" },
    { v1("{'descr': '<f8', 'fortran_order': False, 'shape': (99999999999999999999999,), }"), "dimension too large in shape" },
    { v1("{'descr': '<f8', 'fortran_order': False, 'shape': (4294967296, 4294967296), }"), "shape overflows the address space" },
    { v1("{'descr': '<u1', 'fortran_order': False, 'shape': (3037000500, 3037000500, 3), }"), "shape overflows" },
    { v1("{'descr': '<f8', 'fortran_order': False, 'shape': (1000,), }"), "8000 bytes of data at offset 128 do not fit in 4096 bytes" },
    { v1("{'descr': '<f8', 'fortran_order': False, 'shape': (3,), } junk"), "junk after the dict" },
    { v1("{'descr': '<f8, 'fortran_order': False, 'shape': (3,), }"), "unsupported descr '<f8, '" },
    { v1("{'descr' '<f8', 'fortran_order': False, 'shape': (3,), }"), "expected ':'" },
    { v1("{'descr': '<f8', 'fortran_order': False, 'shape': (3,), "), "expected a string" },
    { v1("{'descr': '<f8' 'fortran_order': False, 'shape': (3,), }"), "expected ',' or '}' in the dict" },
    { v1("{'descr': \"<f\\x38\", 'fortran_order': False, 'shape': (3,), }"), "unsupported string in the dict" },
    { v1("{'descr': '<f8', 'fortran_order': False, 'shape': (), }"), "0-d arrays are not supported" },
  }
  for _, c in ipairs(cases) do
    local err = open_with(c[1], c[3])
    lu.assertStrContains(err, c[2])
  end
  -- the 1-byte block: probe says no magic, so it is a Block
  local b <close> = shm.create(1)
  local o <close> = shm.open(b.name)
  b:unlink()
  lu.assertStrContains(tostring(o), "luashm.Block")
  -- a header whose data would be misaligned for the dtype
  local err = open_with(v1("{'descr': '<f8', 'fortran_order': False, 'shape': (3,), }", 1))
  lu.assertStrContains(err, "misaligned for f64")
end

function TestArrayNumpy:test_headers_numpy_accepts_we_accept()
  -- Python 2 'L' suffixes, "=" byte order, double quotes, no trailing comma, any key order,
  -- version 2.0, extra whitespace
  local ok = {
    v1("{'descr': '<i8', 'fortran_order': False, 'shape': (2L, 3L), }"),
    v1("{\"shape\": (2, 3), \"fortran_order\": False, \"descr\": \"=i8\"}"),
    v1("{ 'descr' : '|u1' , 'fortran_order' : False , 'shape' : ( 2 , 3 ) }", 40),
    v1("{'descr': '<i8', 'fortran_order': False, 'shape': (2, 3)}", 0, 2),
  }
  for _, h in ipairs(ok) do
    local b <close> = shm.create(4096)
    b:write(0, h)
    local a <close> = shm.open(b.name)
    b:unlink()
    lu.assertEquals(a.shape, { 2, 3 }, h)
  end
end

os.exit(lu.LuaUnit.run())
