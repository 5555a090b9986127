-- luashm.py (scripts/luashm.py, API.md "Help and the Python side") with the real CPython and
-- NumPy at /usr/bin/python3: a Python process that opens Lua's blocks never unlinks them,
-- whether it exits or is killed (CPython gh-82300, where an attach alone registers the block
-- with Python's resource tracker); values travel both ways through arrays (views by name
-- included) and lists; Lua opens an array Python made with luashm.array; luashm.kind says what
-- shm.open would make of every kind of block.
local lu = require "luaunit"
local H = require "helper"
local shm = require "luashm"

-- Runs a Python snippet with luashm.py; returns its stdout, failing the test on an error.
local function py(code, ...)
  local out, err, ok = H.py(code, ...)
  if not ok then lu.fail("python failed: " .. err) end
  return out, err
end

local function wait_gone(name)
  for _ = 1, 100 do
    if not H.in_shm(name) then return true end
    H.sh("sleep 0.05")
  end
  return false
end

TestPython = {}
H.keeps(TestPython)

-- An array, a list, a raw block and a lock, and their names.
function TestPython:blocks()
  local a = self:keep(shm.array("f64", { 2, 3 }, { values = { { 1, 2, 3 }, { 4, 5, 6 } } }))
  local l = self:keep(shm.list(table.pack(7, 2.5, "str", nil, true), { slot_bytes = 16 }))
  local b = self:keep(shm.create(32))
  b:write(0, "raw!")
  local lk = self:keep(shm.lock())
  return { a = a, l = l, b = b, lk = lk }, { a.name, l.name, b.name, lk.name }
end

local OPEN_ALL = [[
import sys
import luashm
for name in sys.argv[1:]:
    x = luashm.open(name)
    print(type(x).__name__)
]]

function TestPython:test_gh_82300_a_python_reader_that_exits_leaves_every_block()
  local _, names = self:blocks()
  local out = py(OPEN_ALL, table.unpack(names))
  lu.assertEquals(out, "memmap\nShareableList\nSharedMemory\nSharedMemory\n")
  for _, name in ipairs(names) do lu.assertTrue(H.in_shm(name), name .. " is gone") end
end

function TestPython:test_gh_82300_a_python_reader_killed_leaves_every_block()
  -- Python's tracker runs (it has a block of Python's own to clean up) when the reader is
  -- SIGKILLed after opening ours: the tracker then unlinks what was registered, which is
  -- Python's block only.
  local _, names = self:blocks()
  local out, err, ok = H.py([[
import os, signal, sys
from multiprocessing import shared_memory
import luashm
mine = shared_memory.SharedMemory(create=True, size=64)
print(mine.name, flush=True)
for name in sys.argv[1:]:
    luashm.open(name)
os.kill(os.getpid(), signal.SIGKILL)
]], table.unpack(names))
  lu.assertNotEquals(ok, true, err)
  local mine = out:match("^(%S+)\n")
  lu.assertNotNil(mine, out .. err)
  lu.assertTrue(wait_gone(mine), "Python's tracker never cleaned up " .. mine)
  for _, name in ipairs(names) do lu.assertTrue(H.in_shm(name), name .. " is gone") end
end

function TestPython:test_control_a_plain_sharedmemory_attach_does_unlink_at_exit()
  -- What luashm.py prevents, on this Python: without it, a reader deletes the block.
  local b = self:keep(shm.create(16))
  py([[
import sys
from multiprocessing import shared_memory
shared_memory.SharedMemory(name=sys.argv[1]).close()
]], b.name)
  lu.assertTrue(wait_gone(b.name), "this Python's tracker no longer unlinks attached blocks")
end

function TestPython:test_array_values_both_ways()
  local o = self:blocks()
  local out = py([[
import sys
import luashm
a = luashm.open(sys.argv[1])
print(a.name, a.dtype, a.shape, a.sum())
a[1, 2] = 60.0
]], o.a.name)
  lu.assertEquals(out, o.a.name .. " float64 (2, 3) 21.0\n")
  lu.assertEquals(o.a:get(2, 3), 60.0)
  o.a:set(1, 1, -1.5)
  lu.assertEquals(py("import sys, luashm\nprint(luashm.open(sys.argv[1])[0, 0])", o.a.name),
    "-1.5\n")
end

function TestPython:test_views_sent_by_name_with_offset_and_shape()
  local a = self:keep(shm.array("i32", { 4, 3 }))
  for i = 1, 12 do a:reshape({ 12 })[i] = i * 10 end
  local row, rows = a[3], a:slice(2, 3)
  local b = self:keep(shm.create(64))
  local raw = shm.array("u16", 4, { block = b, offset = 8, values = { 1, 2, 3, 4 } })
  local code = [[
import sys
import luashm
name, dtype, offset = sys.argv[1], sys.argv[2], int(sys.argv[3])
shape = tuple(int(d) for d in sys.argv[4].split(","))
view = {"offset": offset, "shape": shape, "dtype": dtype}
v = luashm.open(name, view=view)
print(v.tolist())
v.flat[0] = 7
]]
  local function view_of(x)
    return x.name, x.dtype, tostring(x.offset), table.concat(x.shape, ",")
  end
  lu.assertEquals(py(code, view_of(row)), "[70, 80, 90]\n")
  lu.assertEquals(a:get(3, 1), 7)
  lu.assertEquals(py(code, view_of(rows)), "[[40, 50, 60], [7, 80, 90]]\n")
  lu.assertEquals(py(code, view_of(raw)), "[1, 2, 3, 4]\n")
  lu.assertEquals(raw[1], 7)
  -- Strides: a view's own when it has them, else a hand-made one (every other column).
  local strided = py([[
import sys
import luashm
v = luashm.open(sys.argv[1], view={"offset": int(sys.argv[2]), "shape": (4, 2), "strides": (12, 8)})
print(v.tolist())
]], a.name, tostring(a.offset))
  lu.assertEquals(strided, "[[10, 30], [7, 60], [7, 90], [100, 120]]\n")
  lu.assertStrContains(select(2, H.py([[
import sys, luashm
luashm.open(sys.argv[1], view={"offset": 0, "shape": (100,), "dtype": "f64"})
]], b.name)), "the view needs bytes 0..800, the block has 64")
end

function TestPython:test_list_values_both_ways()
  local o = self:blocks()
  local out = py([[
import sys
import luashm
l = luashm.open(sys.argv[1])
print(list(l))
l[0] = 42
l[2] = "Python"
]], o.l.name)
  lu.assertEquals(out, "[7, 2.5, 'str', None, True]\n")
  lu.assertEquals(o.l[1], 42)
  lu.assertEquals(o.l[3], "Python")
end

function TestPython:test_lua_opens_a_python_made_array_of_every_dtype()
  local dtypes = { "i8", "u8", "i16", "u16", "i32", "u32", "i64", "u64", "f32", "f64" }
  local out = py([=[
import sys
import luashm
for dt in sys.argv[1:]:
    a = luashm.array(dt, (2, 2))
    a[:] = [[1, 2], [3, 4]]
    print(a.name)
]=], table.unpack(dtypes))
  local i = 0
  for name in out:gmatch("%S+") do
    i = i + 1
    local a <close> = shm.open(name)
    a:unlink()
    lu.assertEquals(a.dtype, dtypes[i])
    lu.assertEquals(a.shape, { 2, 2 })
    lu.assertEquals(a:sum(), dtypes[i]:sub(1, 1) == "f" and 10.0 or 10)
  end
  lu.assertEquals(i, #dtypes)
end

function TestPython:test_a_python_made_array_stays_unless_tracked_and_is_live()
  local out = py([[
import luashm
kept = luashm.array("f64", 3, name=None)
gone = luashm.array("i32", 2, track=True)
kept[:] = [0.5, 1.5, 2.5]
print(kept.name, gone.name)
]])
  local kept, gone = out:match("^(%S+) (%S+)\n$")
  lu.assertTrue(wait_gone(gone), "track=True: Python's tracker did not unlink " .. gone)
  local a <close> = shm.open(kept)
  a:unlink()
  lu.assertEquals(a:totable(), { 0.5, 1.5, 2.5 })
  -- Lua writes, a Python process reads the same pages
  a[2] = 9.25
  local b = self:keep(shm.array("f64", 3))
  b:copy(a)
  lu.assertEquals(py("import sys, luashm\nprint(luashm.open(sys.argv[1]).tolist())", b.name),
    "[0.5, 9.25, 2.5]\n")
end

function TestPython:test_kind_says_what_shm_open_makes_of_every_kind()
  local objs, dispose = H.objects()
  local names, kinds = {}, {}
  for kind, o in pairs(objs) do
    local ok, name = pcall(function() return o.name end)
    if ok and type(name) == "string" then
      names[#names + 1] = name
      kinds[#kinds + 1] = kind:lower()
    end
  end
  local out = py("import sys, luashm\nprint(' '.join(luashm.kind(n) for n in sys.argv[1:]))",
    table.unpack(names))
  dispose()
  lu.assertTrue(#names >= 8)
  lu.assertEquals(out, table.concat(kinds, " ") .. "\n")
end

function TestPython:test_unlink_from_python_is_quiet_and_errors_are_clear()
  local b = shm.create(16)
  local _, err, ok = H.py([[
import sys
import luashm
luashm.open(sys.argv[1]).unlink()
try:
    luashm.open(sys.argv[1])
except FileNotFoundError as e:
    print("gone", file=sys.stderr)
try:
    luashm.open("a/b")
except ValueError as e:
    print(e, file=sys.stderr)
]], b.name)
  b:close()
  lu.assertTrue(ok, err)
  lu.assertEquals(err, "gone\nluashm: bad block name 'a/b'\n")
  lu.assertFalse(H.in_shm(b.name))
end

os.exit(lu.LuaUnit.run())
