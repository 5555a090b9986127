-- Lua and NumPy on the same pages, both ways, by name alone.
--
--   luashm [-j WORKERS] scripts/examples/numpy_bridge.lua [N]
--
-- 1. Lua workers fill a shared f64 array with N samples (normal, mean 10, sd 2).
-- 2. Python opens it live by its name with NumPy (numpy.load of /dev/shm/NAME, memory-mapped:
--    no copy, no pickling; luashm arrays are NPY files), computes its figures, and...
-- 3. ...hands them back in a ShareableList that Python creates; Lua opens it by name with
--    shm.open and prints NumPy's figures beside its own.
-- 4. Python standardises the array in place (r+ mapping) and Lua sees the new values at once.
local N = math.tointeger(tonumber(arg[1] or "1000000"))
assert(N and N > 1, "usage: numpy_bridge.lua [N] (an integer above 1)")
local PYTHON = os.getenv("PYTHON") or "/usr/bin/python3"

-- A deterministic normal sample for index i: Box-Muller over two hashed uniforms.
local function uniform(i)
  local x = i * -7046029254386353131
  x = (x ~ (x >> 30)) * -4658895280553007687
  x = (x ~ (x >> 27)) * -7723592293110705685
  return ((x ~ (x >> 31)) >> 11) * 2.0 ^ -53
end
local function sample(i)
  local u1, u2 = 1 - uniform(2 * i), uniform(2 * i + 1) -- u1 in (0, 1]: log(u1) is finite
  return 10 + 2 * math.sqrt(-2 * math.log(u1)) * math.cos(2 * math.pi * u2)
end

-- Runs a Python snippet with arguments; returns its stdout lines.
local function python(code, ...)
  local p = io.popen(PYTHON .. " - " .. table.concat({ ... }, " ") .. " <<'PY'\n" .. code .. "\nPY")
  local out = p:read("a")
  assert(p:close(), "numpy_bridge: python failed (NumPy installed? Debian: python3-numpy)")
  local lines = {}
  for line in out:gmatch("[^\n]+") do lines[#lines + 1] = line end
  return lines
end

local m <close> = shm.manager() -- unlinks the array at scope exit
local a = m:array("f64", N)

-- 1. Fill, and Lua's own figures (the std in a second parallel pass over the partitions).
shm.parallel(nil, function(rank, n)
  local lo, hi = shm.partition(N, n, rank)
  for i = lo, hi do a[i] = sample(i) end
end)
local mean = a:mean()
local squares = shm.parallel(nil, function(rank, n)
  local lo, hi = shm.partition(N, n, rank)
  local s = 0.0
  for i = lo, hi do s = s + (a[i] - mean) ^ 2 end
  return s
end)
local ss = 0.0
for _, s in ipairs(squares) do ss = ss + s end
local lua = { n = N, mean = mean, std = math.sqrt(ss / N), min = a:min(), max = a:max() }

-- 2 and 3. Python 3.11's resource tracker would unlink the list when Python exits (it does so
-- for every block a Python process creates or attaches): unregistering hands it to us.
local lines = python([[
import sys
import numpy as np
from multiprocessing import shared_memory, resource_tracker
a = np.load("/dev/shm/" + sys.argv[1], mmap_mode="r")  # the Lua array, live, by name
figures = shared_memory.ShareableList([
    "numpy " + np.__version__, a.size, float(a.mean()), float(a.std()), float(a.min()),
    float(a.max()), float(np.median(a)), float(np.percentile(a, 99))])
resource_tracker.unregister(figures.shm._name, "shared_memory")
print(figures.shm.name)
figures.shm.close()
]], a.name)
local figures <close> = shm.open(lines[#lines]) -- a List: shm.open knows CPython's layout
figures.block:unlink() -- ours now; the mapping stays valid until closed

print(string.format("%d samples in %s", N, a.name))
print(tostring(figures))
print()
print(string.format("%-10s %22s %22s", "figure", "Lua (luashm)", figures[1]))
local rows = { { "n", "n", 2 }, { "mean", "mean", 3 }, { "std", "std", 4 }, { "min", "min", 5 },
  { "max", "max", 6 }, { "median", nil, 7 }, { "99th pct", nil, 8 } }
local agree = true
for _, row in ipairs(rows) do
  local label, mine, theirs = row[1], lua[row[2]], figures[row[3]]
  print(string.format("%-10s %22s %22s", label, mine and string.format("%.12g", mine) or "-",
    string.format("%.12g", theirs)))
  if mine and math.abs(mine - theirs) > 1e-9 * math.max(1, math.abs(theirs)) then agree = false end
end
assert(agree, "numpy_bridge: Lua and NumPy disagree")
print("Lua and NumPy agree on n, mean, std, min and max (to 1e-9)")

-- 4. NumPy writes, Lua reads: the z-scores replace the samples in the shared pages.
python([[
import sys
import numpy as np
a = np.load("/dev/shm/" + sys.argv[1], mmap_mode="r+")
a -= a.mean()
a /= a.std()
a.flush()
]], a.name)
print(string.format("after NumPy standardised it in place, Lua reads mean %.3g, min %.4f, max %.4f",
  a:mean(), a:min(), a:max()))
