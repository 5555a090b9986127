-- Arrays: element access against the floor stock Lua sets for any userdata (bench_null.so, a
-- C __index/__newindex that does nothing, built beside luashm.so; goals from issue 19: a read
-- within 1.25x of it, a write within 1.5x), and bulk operations on 100 MB against NumPy on
-- the same block (numpy.load of /dev/shm/NAME, mmap_mode='r+'). Computing on arrays (views,
-- elementwise operations, reductions, sort) is in bench_compute.lua.
-- Ours and the peer alternate round by round and each keeps its best round, so that a busy
-- machine slows both alike.
local B = require "benchlib"
local null = require "bench_null"

local N = 1000000
local ROUNDS = 15

-- Runs every variant once per round, interleaved; returns the best ns per element of each.
local function interleaved(n, variants)
  local best = {}
  for _ = 1, ROUNDS do
    for k, fn in pairs(variants) do
      local t0 = B.now()
      fn(n)
      local dt = (B.now() - t0) / n * 1e9
      if not best[k] or dt < best[k] then best[k] = dt end
    end
  end
  return best
end

local a = shm.array("f64", N)
local ai = shm.array("i64", N)
local u, ut = null.new(), null.newt()
local t = {}
for i = 1, N do t[i] = 0.0 end

local function reader(x)
  return function(n)
    local s
    for i = 1, n do s = x[i] end
    return s
  end
end
local function writer(x, v)
  return function(n)
    for i = 1, n do x[i] = v end
  end
end

local r = interleaved(N, { floor = reader(u), f64 = reader(a), i64 = reader(ai), tbl = reader(t) })
B.row("arrays", "a[i] read (f64)", r.f64, "empty C __index", r.floor, 1.25)
B.row("arrays", "a[i] read (i64)", r.i64, "empty C __index", r.floor, 1.25)
B.row("arrays", "plain table t[i] read", r.tbl, "empty C __index", r.floor)

local w = interleaved(N, { floor = writer(u, 1.5), f64 = writer(a, 1.5), i64 = writer(ai, 7),
  tbl = writer(t, 1.5) })
B.row("arrays", "a[i] = v write (f64)", w.f64, "empty C __newindex", w.floor, 1.5)
B.row("arrays", "a[i] = v write (i64)", w.i64, "empty C __newindex", w.floor, 1.5)
B.row("arrays", "plain table t[i] = v write", w.tbl, "empty C __newindex", w.floor)

local m = interleaved(N, {
  floor = function(n) local s; for i = 1, n do s = u:nop(i) end; return s end,
  floort = function(n) local s; for i = 1, n do s = ut:nop(i) end; return s end,
  get = function(n) local s; for i = 1, n do s = a:get(i) end; return s end,
  floor2 = function(n) for i = 1, n do u:nop(i, 1.5) end end,
  set = function(n) for i = 1, n do a:set(i, 1.5) end end,
})
B.row("arrays", "a:get(i)", m.get, "empty C method (C __index)", m.floor, 1.2)
B.row("arrays", "a:get(i)", m.get, "empty C method (table __index)", m.floort)
B.row("arrays", "a:set(i, v)", m.set, "empty C method (C __index)", m.floor2, 1.2)
a.block:unlink()
ai.block:unlink()
a:close()
ai:close()
t = nil
collectgarbage()

-- The NumPy peer runs beside us and times one operation per command read from a FIFO, so
-- its rounds interleave with ours.
local PEER = [[
import sys, time, numpy as np
a = np.load('/dev/shm/' + sys.argv[2], mmap_mode='r+')
ops = {"sum": lambda: a.sum(), "fill": lambda: a.fill(3), "add": lambda: np.add(a, 1, out=a)}
with open(sys.argv[1]) as cmds:
    for line in cmds:
        t0 = time.perf_counter()
        ops[line.strip()]()
        print((time.perf_counter() - t0) * 1e9, flush=True)
]]

local function bulk(dt)
  local n = 100000000 // (dt == "f64" and 8 or 4)
  local x = shm.array(dt, n)
  x:fill(1)
  local peer = B.peer(PEER, x.name)
  local ours = { sum = function() x:sum() end, fill = function() x:fill(3) end,
    add = function() x:add(1) end }
  local best_o, best_p = {}, {}
  for _ = 1, 9 do
    for _, op in ipairs({ "sum", "fill", "add" }) do
      local tp = tonumber(peer.ask(op))
      local t0 = B.now()
      ours[op]()
      local to = (B.now() - t0) * 1e9
      best_p[op] = math.min(best_p[op] or math.huge, tp)
      best_o[op] = math.min(best_o[op] or math.huge, to)
    end
  end
  peer.close()
  B.row("arrays", "a:sum() 100 MB " .. dt, best_o.sum, "NumPy a.sum()", best_p.sum, 1 / 0.9)
  B.row("arrays", "a:fill(v) 100 MB " .. dt, best_o.fill, "NumPy a.fill(v)", best_p.fill, 1 / 0.9)
  B.row("arrays", "a:add(x) 100 MB " .. dt, best_o.add, "NumPy np.add(a, x, out=a)", best_p.add, 1 / 0.9)
  x.block:unlink()
  x:close()
end
bulk("f64")
bulk("i32")

-- shm.open of a 1 GiB array within 2x of a 1 MiB one (attach and header parse only).
local opens = {}
local xs = {}
for _, bytes in ipairs({ 1 << 20, 1 << 30 }) do xs[bytes] = shm.array("u8", bytes) end
local o = interleaved(200, {
  small = function(n) for _ = 1, n do shm.open(xs[1 << 20].name):close() end end,
  large = function(n) for _ = 1, n do shm.open(xs[1 << 30].name):close() end end,
})
for _, x in pairs(xs) do
  x.block:unlink()
  x:close()
end
B.row("arrays", "shm.open 1 GiB array", o.large, "shm.open 1 MiB array", o.small, 2.0)
