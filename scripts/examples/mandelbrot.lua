-- The Mandelbrot set, rendered by parallel workers into one shared u8 array and written as a
-- PNG image; a small ASCII preview goes to the terminal.
--
--   luashm [-j WORKERS] scripts/examples/mandelbrot.lua [WIDTHxHEIGHT [ITERATIONS [OUT.png [MODE]]]]
--
-- Defaults: 1200x800, 256 iterations, ./mandelbrot.png, one worker per CPU (-j or
-- LUASHM_WORKERS to change). Rows cost very different amounts of work (the ones through the set
-- iterate to the limit on every pixel), so rows are handed out dynamically: the next idle worker
-- takes the next rows. MODE picks one of the two ways luashm offers:
--   pool     shm.pool():map over the row numbers, in its default chunks (the default);
--   counter  shm.parallel workers pull row numbers, one at a time, from a shared atomic counter.
-- Both draw a progress bar on a terminal and give the same bytes, whatever the worker count.
local here = arg[0]:match("^(.*)/") or "."
package.path = here .. "/?.lua;" .. package.path
local png = require "png"

local W, H = 1200, 800
if arg[1] then
  W, H = arg[1]:match("^(%d+)x(%d+)$")
  W, H = math.tointeger(W), math.tointeger(H)
  assert(W and H and W > 0 and H > 0, "size must be WIDTHxHEIGHT, e.g. 1200x800")
end
local MAXIT = math.tointeger(tonumber(arg[2] or "256"))
assert(MAXIT and MAXIT > 1, "iterations must be an integer above 1")
local OUT = arg[3] or "mandelbrot.png"
local MODE = arg[4] or "pool"
assert(MODE == "pool" or MODE == "counter", "mode must be pool or counter")

-- The view: the whole set (x in [-2.5, 1], y in [-1.25, 1.25]) centred in the image, square
-- pixels, each sampled at its centre.
local SCALE = math.max(3.5 / W, 2.5 / H)
local X0 = -0.75 - SCALE * (W / 2 - 0.5)
local Y0 = SCALE * (H / 2 - 0.5)
local LOGMAX = math.log(MAXIT)

-- Iterations before z escapes, or MAXIT for a point of the set. Points in the main cardioid
-- and the period-2 bulb are in the set: tested directly, they cost nothing.
local function escape(cr, ci)
  local q = (cr - 0.25) ^ 2 + ci * ci
  if q * (q + (cr - 0.25)) <= 0.25 * ci * ci or (cr + 1) ^ 2 + ci * ci <= 0.0625 then
    return MAXIT
  end
  local zr, zi, n = 0.0, 0.0, 0
  while n < MAXIT and zr * zr + zi * zi <= 4.0 do
    zr, zi = zr * zr - zi * zi + cr, 2.0 * zr * zi + ci
    n = n + 1
  end
  return n
end

-- Renders row y (1-based) of img into the shared pages with one bulk copy; returns the row's
-- iteration count. A pixel is 0 in the set, else 1..255 by the log of its escape time.
local function render_row(img, y)
  local ci = Y0 - (y - 1) * SCALE
  local row, total = {}, 0
  for x = 1, W do
    local n = escape(X0 + (x - 1) * SCALE, ci)
    total = total + n
    row[x] = n == MAXIT and 0 or 1 + math.floor(254 * math.log(n) / LOGMAX)
  end
  img[y]:copy(row)
  return total
end

-- The two schedules, with the default worker count (-j, LUASHM_WORKERS, else the CPUs). Each
-- returns the total iteration count and the number of workers.
local function by_pool(img)
  local pool <close> = shm.pool()
  local iters = pool:map(function(y) return render_row(img, y) end, H,
    { progress = true, label = "rows" })
  local total = 0
  for _, n in ipairs(iters) do total = total + n end
  return total, pool.size
end

local function by_counter(img, m)
  local next_row = m:array("i64", 1) -- rows taken so far
  local bar = m:progress(H, "rows") -- the manager unlinks it with the rest
  local totals = shm.parallel(nil, function()
    local total = 0
    while true do
      local y = next_row:atomic_add(1, 1) + 1 -- atomic_add returns the old value
      if y > H then return total end
      total = total + render_row(img, y)
      bar:add(1)
    end
  end)
  local total = 0
  for _, n in ipairs(totals) do total = total + n end
  return total, #totals
end

-- A palette for the PNG: black for the set, then deep blue through white to orange.
local function palette()
  local stops = { { 0, 0, 7, 100 }, { 0.16, 32, 107, 203 }, { 0.42, 237, 255, 255 },
    { 0.6425, 255, 170, 0 }, { 0.8575, 120, 40, 0 }, { 1, 0, 0, 0 } }
  local pal = { { 0, 0, 0 } }
  for i = 1, 255 do
    local t = (i - 1) / 254
    local k = 1
    while stops[k + 1][1] < t do k = k + 1 end
    local a, b = stops[k], stops[k + 1]
    local f = (t - a[1]) / (b[1] - a[1])
    pal[i + 1] = {}
    for c = 2, 4 do pal[i + 1][c - 1] = math.floor(a[c] + f * (b[c] - a[c]) + 0.5) end
  end
  return pal
end

-- The ASCII preview: one sample per character cell (cells are about twice as tall as wide).
local function preview(img, cols)
  local rows = math.max(1, math.floor(cols * H / W / 2 + 0.5))
  local ramp = " .,:-=+*%#"
  for r = 1, rows do
    local line = {}
    for c = 1, cols do
      local v = img:get(math.floor((r - 0.5) * H / rows) + 1, math.floor((c - 0.5) * W / cols) + 1)
      local k = v == 0 and #ramp or 1 + (v * (#ramp - 1)) // 256
      line[c] = ramp:sub(k, k)
    end
    print((table.concat(line):gsub("%s+$", "")))
  end
end

local m <close> = shm.manager() -- every block below is unlinked when m goes out of scope
local img = m:array("u8", { H, W })
local t0 = shm.now()
local iters, workers
if MODE == "pool" then iters, workers = by_pool(img) else iters, workers = by_counter(img, m) end
local seconds = shm.now() - t0

preview(img, math.min(72, W))
local bytes = png.write(OUT, W, H, img.block:read(img.offset, img.nbytes), palette())
print(string.format("%s: %dx%d pixels, %d KiB, in %.2f s by %d workers (%s), %d iterations",
  OUT, W, H, bytes // 1024, seconds, workers, MODE, iters))
print(string.format("checksum (sum of the pixels): %d", img:sum()))
