-- Locks and atomics against Python's multiprocessing.Lock: uncontended acquire+release, a
-- guard's scope against `with lock:`, and 2 processes x N contended locked increments of one
-- shared counter (and the same with atomic_add, no lock). Wants 2 workers (2 cores).
local B = require "benchlib"

local N = 100000 -- increments per process in the contended rows
local UN = 1000000 -- uncontended iterations

-- The uncontended rows take each side's best over three alternations of Python and Lua, so
-- that a burst of load from elsewhere does not land on one side only.
local PY_UNCONTENDED = string.format([[
import multiprocessing as mp
lk = mp.Lock()
def acq_rel(n):
    for _ in range(n):
        lk.acquire(); lk.release()
print("acq_rel", best_ns(%d, acq_rel, 3))
def with_lock(n):
    for _ in range(n):
        with lk:
            pass
print("with", best_ns(%d, with_lock, 3))
]], UN, UN)

local py = B.python(string.format([[
import multiprocessing as mp
N = %d
def worker(lk, v, bar, q):
    bar.wait()
    t0 = time.perf_counter()
    for _ in range(N):
        lk.acquire()
        v.value += 1
        lk.release()
    q.put(time.perf_counter() - t0)

def contended():
    ctx = mp.get_context("fork")
    lk, v, bar, q = ctx.Lock(), ctx.Value("q", 0, lock=False), ctx.Barrier(2), ctx.Queue()
    ps = [ctx.Process(target=worker, args=(lk, v, bar, q)) for _ in range(2)]
    for p in ps: p.start()
    times = [q.get() for _ in ps]
    for p in ps: p.join()
    assert v.value == 2 * N, v.value
    return max(times) / (2 * N) * 1e9
print("contended", min(contended() for _ in range(3)))
]], N))

-- Runs body(rank) in 2 processes started together (a barrier aligns their loops); returns
-- the slower one's loop time per operation of the pair (2 * N operations), in ns.
local function pair(code, ...)
  local bar <close> = shm.barrier(2)
  local results
  local src = "local rank, n, barname = ...\n" .. code
  if shm.parallel then
    results = shm.parallel(2, assert(load(src)), bar.name, ...)
  else
    local ps, args = {}, { ... }
    for r = 1, 2 do
      local a = { string.format("%q", bar.name) }
      for _, v in ipairs(args) do a[#a + 1] = string.format("%q", v) end
      local chunk = string.format("print((load(%q))(%d, 2, %s))", src, r, table.concat(a, ", "))
      local file = os.tmpname()
      local f = assert(io.open(file, "w"))
      f:write(chunk)
      f:close()
      ps[r] = { io.popen(os.getenv("LUASHM_HOST") .. " " .. file), file }
    end
    results = {}
    for r = 1, 2 do
      results[r] = tonumber(ps[r][1]:read("a"))
      assert(ps[r][1]:close(), "bench worker failed")
      os.remove(ps[r][2])
    end
  end
  bar:unlink()
  return math.max(results[1], results[2]) / (2 * N) * 1e9
end

local lk <close> = shm.lock()
-- The same lock behind a plain-table __index (its methods table; debug.setmetatable changes
-- this one handle only): what the Lock's C __index (methods first, then the contract's fields
-- name, block, closed) costs on every method lookup.
local plain <close> = shm.open(lk.name)
do
  local mt, pmt = debug.getmetatable(lk), {}
  for k, v in pairs(mt) do pmt[k] = v end
  local _, methods = debug.getupvalue(mt.__index, 1)
  pmt.__index = methods
  debug.setmetatable(plain, pmt)
end
local function acq_rel(l)
  return B.ns_loop(UN, function(n)
    for _ = 1, n do
      l:acquire()
      l:release()
    end
  end, 3)
end
local best = { acq_rel = math.huge, with = math.huge, lua_acq_rel = math.huge, guard = math.huge,
  plain_acq_rel = math.huge }
for _ = 1, 3 do
  local p = B.python(PY_UNCONTENDED)
  best.acq_rel = math.min(best.acq_rel, p.acq_rel)
  best.with = math.min(best.with, p.with)
  best.lua_acq_rel = math.min(best.lua_acq_rel, acq_rel(lk))
  best.guard = math.min(best.guard, B.ns_loop(UN, function(n)
    for _ = 1, n do
      local g <close> = lk:guard()
    end
  end, 3))
  best.plain_acq_rel = math.min(best.plain_acq_rel, acq_rel(plain))
end
B.row("sync", "uncontended acquire() + release()", best.lua_acq_rel, "Python mp.Lock acquire+release",
  best.acq_rel, 1 / 1.1)
B.row("sync", "uncontended acquire() + release() (C __index)", best.lua_acq_rel,
  "the same with a plain-table __index", best.plain_acq_rel)
B.row("sync", "guard() + scope exit", best.guard, "Python `with mp.Lock()`", best.with, 1.0)
lk:unlink()

-- The shared counter: an i64 Array element when arrays exist, else 8 bytes of a Block.
local counter, incr
if shm.array then
  counter = function() return shm.array("i64", 1) end
  incr = [[
local lk, a = shm.open(lname), shm.open(cname)
bar:wait()
local t0 = shm.now()
for _ = 1, N do
  lk:acquire()
  a[1] = a[1] + 1
  lk:release()
end
]]
else
  counter = function() return shm.create(8) end
  incr = [[
local lk, a = shm.open(lname), shm.attach(cname)
bar:wait()
local t0 = shm.now()
for _ = 1, N do
  lk:acquire()
  a:pack(0, "<i8", a:unpack(0, "<i8") + 1)
  lk:release()
end
]]
end
local head = "local lname, cname, N = select(4, ...)\nlocal bar = shm.open(barname)\n"
local tail = "\nreturn shm.now() - t0"

local best_locked = math.huge
for _ = 1, 3 do
  local lk2 <close>, c = shm.lock(), counter()
  local ns = pair(head .. incr .. tail, lk2.name, c.name, N)
  local total = shm.array and c[1] or c:unpack(0, "<i8")
  assert(total == 2 * N, "lost updates: " .. tostring(total))
  if ns < best_locked then best_locked = ns end
  lk2:unlink()
  if c.block then c.block:unlink() else c:unlink() end
end
B.row("sync", "2 processes x 100k locked increments (per op)", best_locked,
  "Python mp.Lock + mp.Value", py.contended, 0.2)

local a0 = shm.array and shm.array("i64", 1)
if a0 and a0.atomic_add then
  a0.block:unlink()
  local best_atomic = math.huge
  for _ = 1, 3 do
    local c = shm.array("i64", 1)
    local ns = pair([[
local cname, N = select(4, ...)
local bar, a = shm.open(barname), shm.open(cname)
bar:wait()
local t0 = shm.now()
for _ = 1, N do a:atomic_add(1, 1) end
return shm.now() - t0
]], c.name, N)
    assert(c[1] == 2 * N, "lost updates: " .. tostring(c[1]))
    if ns < best_atomic then best_atomic = ns end
    c.block:unlink()
  end
  B.row("sync", "2 processes x 100k atomic_add (per op)", best_atomic,
    "Python mp.Lock + mp.Value", py.contended, 0.2)
  B.row("sync", "atomic_add vs locked increments (2 processes)", best_atomic,
    "luashm lock + a[1] = a[1] + 1", best_locked, 1.0)
elseif a0 then
  a0.block:unlink()
end
