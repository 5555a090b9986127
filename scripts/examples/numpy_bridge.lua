-- Lua and NumPy on the same pages, both ways, by name alone, through luashm.py (Python's side
-- of luashm, scripts/luashm.py: it attaches blocks without Python's resource tracker, so a
-- Python process never deletes a Lua block when it exits).
--
--   luashm [-j WORKERS] scripts/examples/numpy_bridge.lua [N]
--
-- 1. Lua workers fill a shared f64 array with N samples (normal, mean 10, sd 2).
-- 2. Python opens it live by its name (luashm.open: a numpy.memmap of the block, no copy, no
--    pickling), and a view of its middle half sent by name with its offset and shape; it writes
--    its figures into a list Lua made (a ShareableList on Python's side) and makes a histogram
--    in a new array block (luashm.array), which Lua opens by name with shm.open.
-- 3. Lua prints NumPy's figures beside its own.
-- 4. Python standardises the array in place and Lua sees the new values at once.
local N = math.tointeger(tonumber(arg[1] or "1000000"))
assert(N and N > 3, "usage: numpy_bridge.lua [N] (an integer above 3)")
local PYTHON = os.getenv("PYTHON") or "/usr/bin/python3"
-- luashm.py from this tree (scripts/), before an installed one.
local SCRIPTS = (arg[0]:match("^(.*)/[^/]*$") or ".") .. "/.."
local PYTHONPATH = SCRIPTS .. (os.getenv("PYTHONPATH") and ":" .. os.getenv("PYTHONPATH") or "")

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
  local p = io.popen(("PYTHONPATH='%s' %s - %s <<'PY'\n%s\nPY"):format(PYTHONPATH, PYTHON,
    table.concat({ ... }, " "), code))
  local out = p:read("a")
  assert(p:close(), "numpy_bridge: python failed (NumPy installed? Debian: python3-numpy)")
  local lines = {}
  for line in out:gmatch("[^\n]+") do lines[#lines + 1] = line end
  return lines
end

local m <close> = shm.manager() -- unlinks the array and the list at scope exit
local a = m:array("f64", N)

-- 1. Fill, and Lua's own figures: whole-array calls in C, and the quantiles NumPy computes
-- (linear interpolation) from a sorted private copy.
shm.parallel(nil, function(rank, n)
  local lo, hi = shm.partition(N, n, rank)
  for i = lo, hi do a[i] = sample(i) end
end)
local sorted = a:clone({ private = true }):sort()
local function quantile(q)
  local pos = (N - 1) * q
  local i = math.floor(pos)
  local lo, hi = sorted[i + 1], sorted[math.min(i + 2, N)]
  return lo + (hi - lo) * (pos - i)
end
local mid = a:slice(N // 4 + 1, N - N // 4) -- the middle half: a view, sent by name below
local lua = { n = N, mean = a:mean(), std = a:std(), min = a:min(), max = a:max(),
  median = quantile(0.5), p99 = quantile(0.99), mid = mid:mean() }

-- 2. Python's figures go into a list made here: a string slot wide enough for NumPy's version,
-- then one number per figure.
local figures = m:list({ "numpy", 0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0 }, { slot_bytes = 32 })
local lines = python([[
import sys
import numpy as np
import luashm
name, offset, rows, figures = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
a = luashm.open(name)                                   # the Lua array, live, by name
mid = luashm.open(name, view={"offset": offset, "shape": (rows,)})  # a view of it, by name
f = luashm.open(figures)                                # the Lua list: a ShareableList
f[0] = "numpy " + np.__version__
f[1] = int(a.size)
for i, v in enumerate([a.mean(), a.std(), a.min(), a.max(), np.median(a),
                       np.percentile(a, 99), mid.mean()], start=2):
    f[i] = float(v)
counts, _ = np.histogram(a, bins=8, range=(2.0, 18.0))
h = luashm.array("i64", 8)                              # a new block Lua opens by name
h[:] = counts
print(h.name)
]], a.name, mid.offset, #mid, figures.name)
local hist <close> = shm.open(lines[#lines]) -- an Array: the block is an NPY file
hist:unlink() -- ours now; the mapping stays valid until closed

print(string.format("%d samples in %s", N, a.name))
print(tostring(figures))
print()
print(string.format("%-10s %22s %22s", "figure", "Lua (luashm)", figures[1]))
local rows = { { "n", "n", 2 }, { "mean", "mean", 3 }, { "std", "std", 4 }, { "min", "min", 5 },
  { "max", "max", 6 }, { "median", "median", 7 }, { "p99", "p99", 8 }, { "mid-mean", "mid", 9 } }
local agree = true
for _, row in ipairs(rows) do
  local label, mine, theirs = row[1], lua[row[2]], figures[row[3]]
  print(string.format("%-10s %22s %22s", label, mine and string.format("%.12g", mine) or "-",
    string.format("%.12g", theirs)))
  if mine and math.abs(mine - theirs) > 1e-9 * math.max(1, math.abs(theirs)) then agree = false end
end
assert(agree, "numpy_bridge: Lua and NumPy disagree")
print("Lua and NumPy agree on n, mean, std, min, max, median, 99th percentile and the middle half's mean (to 1e-9)")
print(string.format("NumPy's histogram of [2, 18) in 8 bins, read by Lua from %s:", hist.name))
print("  " .. table.concat(hist:totable(), " ") .. string.format("  (%d in all)", hist:sum()))

-- 4. NumPy writes, Lua reads: the z-scores replace the samples in the shared pages.
python([[
import sys
import luashm
a = luashm.open(sys.argv[1])
a -= a.mean()
a /= a.std()
a.flush()
]], a.name)
print(string.format("after NumPy standardised it in place, Lua reads mean %.3g, min %.4f, max %.4f",
  a:mean(), a:min(), a:max()))
