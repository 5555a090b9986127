-- The "no synchronization" pitfall: N workers add 1 to one shared counter, M times each.
-- `c[1] = c[1] + 1` is a read and then a write: two workers that read the same value both
-- write value + 1, and one increment is lost. Holding a lock around it, or doing the addition
-- in one atomic instruction (atomic_add), loses none.
-- Usage: luashm scripts/examples/lost_updates.lua [workers [increments]]
local n = tonumber(arg and arg[1]) or 4
local m = tonumber(arg and arg[2]) or 100000

local lk <close> = shm.lock()
local methods = {
  { "no synchronization", function(c)
    for _ = 1, m do c[1] = c[1] + 1 end
  end },
  { "lk:acquire/release", function(c)
    for _ = 1, m do
      lk:acquire()
      c[1] = c[1] + 1
      lk:release()
    end
  end },
  { "local g <close> = lk:guard()", function(c)
    for _ = 1, m do
      local g <close> = lk:guard()
      c[1] = c[1] + 1
    end
  end },
  { "c:atomic_add(1, 1)", function(c)
    for _ = 1, m do c:atomic_add(1, 1) end
  end },
}

print(string.format("%d workers x %d increments of one shared counter", n, m))
print(string.format("%-30s %10s %10s %10s %8s", "method", "expected", "got", "lost", "seconds"))
for _, meth in ipairs(methods) do
  local c <close> = shm.array("i64", 1)
  local t0 = shm.now()
  shm.parallel(n, function(_, _, name)
    meth[2](shm.open(name))
  end, c.name)
  local got = c[1]
  print(string.format("%-30s %10d %10d %10d %8.3f", meth[1], n * m, got, n * m - got, shm.now() - t0))
  c.block:unlink()
end
lk:unlink()
