-- Array atomics (API.md "Arrays": atomic_add, cas, atomic_load, atomic_store): their values,
-- their errors, and no lost update from several processes without a lock. The code is the
-- Arrays helper's (bindings/array.c); the suite lives with the other synchronization tests.
local lu = require "luaunit"
local H = require "helper"
local shm = require "luashm"

TestAtomics = {}

function TestAtomics:tearDown()
  for _, a in ipairs(self.objs or {}) do
    pcall(a.block.unlink, a.block)
    a:close()
  end
  self.objs = nil
end

function TestAtomics:array(...)
  local a = shm.array(...)
  self.objs = self.objs or {}
  self.objs[#self.objs + 1] = a
  return a
end

function TestAtomics:test_values_for_every_dtype()
  for _, dt in ipairs({ "i32", "u32", "i64", "u64" }) do
    local a = self:array(dt, 3)
    lu.assertEquals(a:atomic_add(2, 5), 0, dt)
    lu.assertEquals(a:atomic_add(2, 2), 5, dt)
    lu.assertEquals(a:atomic_load(2), 7, dt)
    lu.assertEquals(a[2], 7, dt)
    a:atomic_store(3, 40)
    lu.assertEquals(a[3], 40, dt)
    lu.assertEquals({ a:cas(3, 40, 41) }, { true }, dt)
    lu.assertEquals({ a:cas(3, 40, 50) }, { false, 41 }, dt)
    lu.assertEquals(a[3], 41, dt)
    lu.assertEquals(a[1], 0, dt)
  end
end

function TestAtomics:test_negative_adds_and_wraparound()
  local a = self:array("i64", 1)
  a:atomic_add(1, -3)
  lu.assertEquals(a[1], -3)
  a:atomic_store(1, math.maxinteger)
  lu.assertEquals(a:atomic_add(1, 1), math.maxinteger)
  lu.assertEquals(a[1], math.mininteger, "wraps modulo 2^64")
  local u = self:array("u32", 1)
  u:atomic_store(1, 4294967295)
  u:atomic_add(1, 1)
  lu.assertEquals(u[1], 0, "wraps modulo 2^32")
  local i = self:array("i32", 1)
  i:atomic_add(1, -1)
  lu.assertEquals(i[1], -1)
end

function TestAtomics:test_errors()
  local f = self:array("f64", 2)
  lu.assertEquals(f:atomic_add(1, 1.5), 0.0) -- floats add through a compare-and-swap loop
  H.assert_error({ "cas needs dtype i32, u32, i64 or u64, not f64" }, f.cas, f, 1, 0, 1)
  local h = self:array("f16", 2)
  H.assert_error({ "atomic_add needs dtype i32, u32, i64 or u64, f32 or f64, not f16" },
    h.atomic_add, h, 1, 1)
  local a = self:array("i32", 2)
  H.assert_error({ "atomic_add: index 3 is out of range (1..2)" }, a.atomic_add, a, 3, 1)
  H.assert_error({ "atomic_load: index 0 is out of range" }, a.atomic_load, a, 0)
  H.assert_raises(a.atomic_add, a, 1, 1.5)
  H.assert_raises(a.atomic_add, a, 1, "x")
  H.assert_raises(a.atomic_store, a, 1, 2 ^ 40)
  H.assert_raises(a.cas, a, 1, 0)
  a:close()
  H.assert_raises(a.atomic_add, a, 1, 1)
end

-- 4 processes x 100k atomic_add on one element, no lock: the exact total.
function TestAtomics:test_four_workers_exact_total()
  local a = self:array("i64", 2)
  shm.parallel(4, function(rank, _, name)
    local c = shm.open(name)
    for _ = 1, 100000 do c:atomic_add(1, 1) end
    c:atomic_add(2, rank)
  end, a.name)
  lu.assertEquals(a[1], 400000)
  lu.assertEquals(a[2], 1 + 2 + 3 + 4)
end

-- A compare-and-swap loop is a correct increment too (4 processes x 20k).
function TestAtomics:test_cas_loop_exact_total()
  local a = self:array("u32", 1)
  shm.parallel(4, function(_, _, name)
    local c = shm.open(name)
    for _ = 1, 20000 do
      local cur = c:atomic_load(1)
      while true do
        local ok, now = c:cas(1, cur, cur + 1)
        if ok then break end
        cur = now
      end
    end
  end, a.name)
  lu.assertEquals(a[1], 80000)
end

-- What NumPy sees is what the atomics wrote.
function TestAtomics:test_numpy_reads_the_total()
  local a = self:array("i64", 4)
  shm.parallel(2, function(rank, _, name)
    local c = shm.open(name)
    for _ = 1, 1000 do c:atomic_add(rank, 3) end
  end, a.name)
  local out = H.python([[
import numpy as np
a = np.load("/dev/shm/" + sys.argv[1], mmap_mode="r")
print(a.tolist())
]], a.name)
  lu.assertEquals(out, "[3000, 3000, 0, 0]\n")
end

os.exit(lu.LuaUnit.run())
