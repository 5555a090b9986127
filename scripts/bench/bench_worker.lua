-- Workers against Python's multiprocessing (fork context), in the same run: spawn + join of a
-- trivial function, handing a 100 MB array to a worker by name (against its bytes through a
-- pipe, and against Python's Queue hand-off of a SharedMemory name), compute-bound scaling on
-- 2 workers (Mandelbrot rows in Lua), and a memory-bound sum of a 400 MB f64 array on 2
-- workers against NumPy summing the same halves in 2 processes (the machine's bandwidth).
local B = require "benchlib"

local MB = 1000 * 1000

local py = B.python([[
import multiprocessing as mp, numpy as np
ctx = mp.get_context("fork")
def nothing(): pass
def spawn_join(n):
    for _ in range(n):
        p = ctx.Process(target=nothing); p.start(); p.join()
print("spawn_join", best_ns(100, spawn_join))

def attach_worker(q, back):
    while True:
        name = q.get()
        if name is None: break
        s = shared_memory.SharedMemory(name=name)  # same tracker as the owner (fork): no unregister
        back.put(s.buf[0])
        s.close()
owner = shared_memory.SharedMemory(create=True, size=100 * 1000 * 1000)
q, back = ctx.Queue(), ctx.Queue()
w = ctx.Process(target=attach_worker, args=(q, back)); w.start()
def handoff(n):
    for _ in range(n):
        q.put(owner.name); back.get()
print("handoff", best_ns(300, handoff))
q.put(None); w.join()
owner.close(); owner.unlink()

big = shared_memory.SharedMemory(create=True, size=400 * 1000 * 1000)
a = np.ndarray((50 * 1000 * 1000,), dtype=np.float64, buffer=big.buf)
a[:] = 1.0
def half_sum(lo, hi, out):
    out.put(float(a[lo:hi].sum()))
def sum2(n):
    for _ in range(n):
        out = ctx.Queue()
        half = a.size // 2
        ps = [ctx.Process(target=half_sum, args=(0, half, out)),
              ctx.Process(target=half_sum, args=(half, a.size, out))]
        for p in ps: p.start()
        total = out.get() + out.get()
        for p in ps: p.join()
print("sum2", best_ns(1, sum2, 5))
del a
big.close(); big.unlink()
]])

-- spawn + join of a function that does nothing.
local t = B.ns(300, function() shm.spawn(function() end):join() end)
B.row("workers", "spawn + join (trivial function)", t, "Python fork Process start+join", py.spawn_join, 0.2)

-- Hand-off by name: a persistent worker receives the array through a channel (its name,
-- attached on the other side), reads one element and answers; against writing the same
-- 100 MB into a pipe to a reader. The same through a pool's map is reported too.
local arr = shm.array("u8", 100 * MB)
arr:fill(7)
local to, back = shm.channel(), shm.channel()
local w = B.handoff_server(to, back)
local handoff = B.ns(1000, function()
  to:send(arr)
  back:recv()
end)
to:shutdown() -- end of stream (close would only release this handle)
w:join()
for _, ch in ipairs({ to, back }) do
  ch:unlink()
  ch:close()
end
local pool = shm.pool(1)
local fn = function(a) return a[1] end
pool:map(fn, { arr })
local handoff_pool = B.ns(300, function() pool:map(fn, { arr }) end)
local pipe = B.lua_pipe_ns(arr.block)
pool:close()
B.row("workers", "hand a 100 MB array to a worker by name", handoff, "its bytes through a pipe", pipe, 0.001)
B.row("workers", "hand a 100 MB array to a worker by name", handoff, "Python Queue + SharedMemory(name)", py.handoff, 1.0)
B.row("workers", "the same hand-off through pool:map", handoff_pool, "its bytes through a pipe", pipe)
arr.block:unlink()
arr.block:close()
collectgarbage()

-- Compute-bound: rows of a Mandelbrot set, computed in Lua, split over 1 or 2 workers.
local function mandel(rank, n, size)
  local lo, hi = shm.partition(size, n, rank)
  local inside = 0
  for y = lo, hi do
    local ci = 2.0 * y / size - 1.0
    for x = 1, size do
      local cr, zr, zi, k = 2.5 * x / size - 2.0, 0.0, 0.0, 0
      while k < 200 and zr * zr + zi * zi < 4.0 do
        zr, zi = zr * zr - zi * zi + cr, 2.0 * zr * zi + ci
        k = k + 1
      end
      if k == 200 then inside = inside + 1 end
    end
  end
  return inside
end
local one = B.ns_loop(1, function() shm.parallel(1, mandel, 300) end, 3)
local two = B.ns_loop(1, function() shm.parallel(2, mandel, 300) end, 3)
B.row("workers", "Mandelbrot 300x300 in Lua, 2 workers", two, "the same on 1 worker", one, 1 / 1.9)
-- The machine's own ceiling for this: the same split run by two independent stock lua5.4
-- processes against one (a VM's two vCPUs need not give 2x: steal time, shared caches).
local function mandel_cmd(n)
  local code = string.dump(mandel)
  local file = os.tmpname()
  local f = assert(io.open(file, "wb"))
  f:write(code)
  f:close()
  local cmd = {}
  for r = 1, n do
    cmd[#cmd + 1] = string.format([[lua5.4 -e "shm = {partition = function(len, n, r)
      local b, e = len // n, len %% n; local lo = (r - 1) * b + math.min(r - 1, e) + 1
      return lo, lo + b + (r <= e and 1 or 0) - 1 end}; loadfile('%s')(%d, %d, 300)" &]], file, r, n)
  end
  return table.concat(cmd, " ") .. " wait", file
end
local raw = {}
for _, n in ipairs({ 1, 2 }) do
  local cmd, file = mandel_cmd(n)
  raw[n] = B.ns_loop(1, function() os.execute(cmd) end, 3)
  os.remove(file)
end
B.row("workers", "Mandelbrot 300x300, 2 independent lua5.4 processes", raw[2], "the same in 1 process", raw[1])

-- Memory-bound: the sum of a 400 MB f64 array, halves in 2 workers (Array:sum in C).
local big = shm.array("f64", 50 * MB)
big:fill(1.0)
local function half(rank, n)
  local lo, hi = shm.partition(#big, n, rank)
  return big:slice(lo, hi):sum()
end
shm.parallel(2, half)
local sum1 = B.ns_loop(1, function() shm.parallel(1, half) end, 5)
local sum2 = B.ns_loop(1, function() shm.parallel(2, half) end, 5)
B.row("workers", "sum of a 400 MB f64 array, 2 workers", sum2, "NumPy sum of halves, 2 processes", py.sum2, 1 / 0.9)
B.row("workers", "sum of a 400 MB f64 array, 2 workers", sum2, "the same on 1 worker", sum1)
io.stderr:write(("bench_worker: 400 MB sum: %.2f GB/s on 2 workers, %.2f GB/s on 1, NumPy 2 processes %.2f GB/s\n")
  :format(400 / (sum2 / 1e9) / 1000, 400 / (sum1 / 1e9) / 1000, 400 / (py.sum2 / 1e9) / 1000))
big.block:unlink()
big.block:close()
