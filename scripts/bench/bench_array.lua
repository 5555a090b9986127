-- Arrays: element access against the floor stock Lua sets for any userdata (bench_null.so, a
-- C __index/__newindex that does nothing, built beside luashm.so), and bulk operations on
-- 100 MB against NumPy on the same block (numpy.load of /dev/shm/NAME, mmap_mode='r+').
local B = require "benchlib"
local null = require "bench_null"

local N = 2000000
local ROUNDS = 5

-- Element access, 1-d f64 and i64 (each loop body identical for ours and the floor).
local a = shm.array("f64", N)
local ai = shm.array("i64", N)
local u, ut = null.new(), null.newt()
local t = {}
for i = 1, N do t[i] = 0.0 end

local function read_loop(x)
  return function(n)
    local s
    for i = 1, n do s = x[i] end
    return s
  end
end
local function write_loop(x, v)
  return function(n)
    for i = 1, n do x[i] = v end
  end
end

local floor_r = B.ns_loop(N, read_loop(u), ROUNDS)
local ours_r = B.ns_loop(N, read_loop(a), ROUNDS)
local ours_ri = B.ns_loop(N, read_loop(ai), ROUNDS)
local table_r = B.ns_loop(N, read_loop(t), ROUNDS)
B.row("arrays", "a[i] read (f64)", ours_r, "empty C __index", floor_r, 1.2)
B.row("arrays", "a[i] read (i64)", ours_ri, "empty C __index", floor_r, 1.2)
B.row("arrays", "plain table t[i] read", table_r, "empty C __index", floor_r)

local floor_w = B.ns_loop(N, write_loop(u, 1.5), ROUNDS)
local ours_w = B.ns_loop(N, write_loop(a, 1.5), ROUNDS)
local ours_wi = B.ns_loop(N, write_loop(ai, 7), ROUNDS)
local table_w = B.ns_loop(N, write_loop(t, 1.5), ROUNDS)
B.row("arrays", "a[i] = v write (f64)", ours_w, "empty C __newindex", floor_w, 1.2)
B.row("arrays", "a[i] = v write (i64)", ours_wi, "empty C __newindex", floor_w, 1.2)
B.row("arrays", "plain table t[i] = v write", table_w, "empty C __newindex", floor_w)

local function get_loop(x)
  return function(n)
    local s
    for i = 1, n do s = x:get(i) end
    return s
  end
end
local function nop_loop(x)
  return function(n)
    local s
    for i = 1, n do s = x:nop(i) end
    return s
  end
end
local function set_loop(x)
  return function(n)
    for i = 1, n do x:set(i, 1.5) end
  end
end
local function nop2_loop(x)
  return function(n)
    for i = 1, n do x:nop(i, 1.5) end
  end
end
local floor_m = B.ns_loop(N, nop_loop(u), ROUNDS)
local floor_mt = B.ns_loop(N, nop_loop(ut), ROUNDS)
local ours_g = B.ns_loop(N, get_loop(a), ROUNDS)
B.row("arrays", "a:get(i)", ours_g, "empty C method (C __index)", floor_m, 1.2)
B.row("arrays", "a:get(i)", ours_g, "empty C method (table __index)", floor_mt)
local floor_m2 = B.ns_loop(N, nop2_loop(u), ROUNDS)
local ours_s = B.ns_loop(N, set_loop(a), ROUNDS)
B.row("arrays", "a:set(i, v)", ours_s, "empty C method (C __index)", floor_m2, 1.2)
a.block:unlink()
ai.block:unlink()
a:close()
ai:close()
t = nil
collectgarbage()

-- Bulk operations on 100 MB, NumPy on the same block in the same run.
local big = {}
for _, dt in ipairs({ "f64", "i32" }) do
  local n = 100000000 // (dt == "f64" and 8 or 4)
  local x = shm.array(dt, n)
  x:fill(1)
  local py = B.python(string.format([[
import numpy as np
a = np.load('/dev/shm/%s', mmap_mode='r+')
def s(n):
    for _ in range(n): a.sum()
def f(n):
    for _ in range(n): a.fill(3)
def ad(n):
    for _ in range(n): np.add(a, 1, out=a)
print("sum", best_ns(1, s, 7))
print("fill", best_ns(1, f, 7))
print("add", best_ns(1, ad, 7))
a.fill(1)
]], x.name))
  local ts = B.ns_loop(1, function() x:sum() end, 7)
  local tf = B.ns_loop(1, function() x:fill(3) end, 7)
  local ta = B.ns_loop(1, function() x:add(1) end, 7)
  B.row("arrays", "a:sum() 100 MB " .. dt, ts, "NumPy a.sum()", py.sum, 1 / 0.9)
  B.row("arrays", "a:fill(v) 100 MB " .. dt, tf, "NumPy a.fill(v)", py.fill, 1 / 0.9)
  B.row("arrays", "a:add(x) 100 MB " .. dt, ta, "NumPy np.add(a, x, out=a)", py.add, 1 / 0.9)
  x.block:unlink()
  x:close()
  big[dt] = true
end

-- shm.open of a 1 GiB array within 2x of a 1 MiB one (attach and header parse only).
local opens = {}
for _, bytes in ipairs({ 1 << 20, 1 << 30 }) do
  local x = shm.array("u8", bytes)
  opens[bytes] = B.ns(2000, function() shm.open(x.name):close() end)
  x.block:unlink()
  x:close()
end
B.row("arrays", "shm.open 1 GiB array", opens[1 << 30], "shm.open 1 MiB array", opens[1 << 20], 2.0)
