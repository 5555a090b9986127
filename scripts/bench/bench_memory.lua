-- Memory: N workers over one 1 GiB array share its pages. Each worker sums the whole array,
-- then, while all N still hold it, reads its own /proc/self/smaps_rollup: USS (private pages:
-- what the worker costs beyond the shared block) and PSS (its fair share, the block's pages
-- split among the processes mapping them). Peers in the same run: Python + NumPy workers over
-- a SharedMemory of the same size, and luashm workers that each take a private copy.
-- Wants N workers: LUASHM_BENCH_WORKERS (default 4, at least 2), whatever the core count.
local B = require "benchlib"

local N = math.max(2, tonumber(os.getenv("LUASHM_BENCH_WORKERS")) or 4)
local GiB = 1 << 30
local COUNT = GiB // 8

local py = B.python(string.format([[
import numpy as np
from multiprocessing import get_context
N, GiB = %d, %d
ctx = get_context("fork")
barrier = ctx.Barrier(N)
def rollup():
    d = {}
    for line in open("/proc/self/smaps_rollup"):
        p = line.split()
        if len(p) == 3 and p[2] == "kB":
            d[p[0].rstrip(":")] = int(p[1])
    return d
def work(name, q):
    # Forked from the creator: its tracker already holds the name (a set), so attaching
    # registers nothing new and nothing must be unregistered here.
    s = shared_memory.SharedMemory(name=name)
    a = np.ndarray((GiB // 8,), dtype=np.float64, buffer=s.buf)
    assert a.sum() == GiB // 8
    barrier.wait()
    r = rollup()
    barrier.wait()
    q.put((r["Pss"], r["Private_Clean"] + r["Private_Dirty"], r["Pss"] - r["Pss_Shmem"]))
    del a
    s.close()
owner = shared_memory.SharedMemory(create=True, size=GiB)
a = np.ndarray((GiB // 8,), dtype=np.float64, buffer=owner.buf)
a.fill(1.0)
q = ctx.Queue()
ps = [ctx.Process(target=work, args=(owner.name, q)) for _ in range(N)]
for p in ps: p.start()
res = [q.get() for _ in range(N)]
for p in ps: p.join()
del a
owner.close(); owner.unlink()
print("pss", sum(r[0] for r in res) / N / 1024)
print("uss", sum(r[1] for r in res) / N / 1024)
print("own", sum(r[2] for r in res) / N / 1024)
]], N, GiB))

local function rollup()
  local t = {}
  for line in io.lines("/proc/self/smaps_rollup") do
    local k, v = line:match("^([%w_]+):%s+(%d+) kB")
    if k then t[k] = tonumber(v) end
  end
  return t
end

-- Mean PSS, USS and PSS outside shared memory of the N workers (MiB), each running body(a)
-- and then measuring while all N still hold what body returned.
local function measure(a, body)
  local bar = shm.barrier(N)
  local res = shm.parallel(N, function()
    local keep = body(a)
    bar:wait()
    local r = rollup()
    bar:wait()
    assert(keep)
    return { r.Pss, r.Private_Clean + r.Private_Dirty, r.Pss - r.Pss_Shmem }
  end)
  bar:unlink()
  local sum = { 0, 0, 0 }
  for _, r in ipairs(res) do
    for i = 1, 3 do sum[i] = sum[i] + r[i] end
  end
  return sum[1] / N / 1024, sum[2] / N / 1024, sum[3] / N / 1024
end

local a = shm.array("f64", COUNT)
a:fill(1)
local pss, uss, own = measure(a, function(x)
  assert(x:sum() == COUNT)
  return true
end)
local copy_pss, copy_uss, copy_own = measure(a, function(x) return x.block:read() end)
a.block:unlink()
a:close()

local what = ("%d workers summing one shared 1 GiB f64 array"):format(N)
B.row("memory", "private memory (USS) per worker, " .. what, uss, "Python+NumPy SharedMemory",
  py.uss, 1.0, "MiB")
B.row("memory", "PSS per worker outside /dev/shm, " .. what, own, "Python+NumPy SharedMemory",
  py.own, 1.0, "MiB")
B.row("memory", "PSS per worker, " .. what, pss, "Python+NumPy SharedMemory", py.pss, 1.1, "MiB")
B.row("memory", "private memory (USS) per worker, " .. what, uss,
  "a private 1 GiB copy per worker", copy_uss, 0.01, "MiB")
B.row("memory", "PSS per worker, " .. what, pss, "a private 1 GiB copy per worker", copy_pss,
  0.25, "MiB")
