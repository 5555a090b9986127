-- Monte Carlo estimate of pi: the workers throw darts at the unit square and count those that
-- land inside the quarter circle (x^2 + y^2 <= 1, a quarter of the area pi/4).
--
--   luashm [-j N] scripts/examples/montecarlo.lua [SAMPLES [SEED]]
--
-- What it shows: every forked worker draws its own random stream. luashm reseeds math.random
-- in each worker from the kernel's random source, as Python reseeds `random` after fork; had
-- the workers kept the parent's stream, every rank would throw the same darts and the estimate
-- would look precise while resting on 1/N of the samples. The per-rank counts printed below
-- differ from rank to rank, and from run to run.
--
-- With SEED, shm.parallel{..., seed = SEED} makes rank r run math.randomseed(SEED, r) before
-- its function: the same SEED and worker count give the same counts and the same estimate,
-- bit for bit, on every run; another SEED gives other, equally independent, streams.
local SAMPLES = math.tointeger(tonumber(arg[1] or "4000000"))
local SEED = arg[2] and math.tointeger(tonumber(arg[2]))
assert(SAMPLES and SAMPLES > 0 and (arg[2] == nil or SEED),
  "usage: montecarlo.lua [SAMPLES [SEED]] (integers)")

-- Rank r's share of the samples (shm.partition: balanced, in rank order).
local function throw(rank, n, samples)
  local lo, hi = shm.partition(samples, n, rank)
  local random, inside = math.random, 0
  for _ = lo, hi do
    local x, y = random(), random()
    if x * x + y * y <= 1.0 then inside = inside + 1 end
  end
  return inside
end

local n = shm.default_workers()
local t0 = shm.now()
local counts = shm.parallel { n = n, fn = throw, args = { SAMPLES }, seed = SEED }
local seconds = shm.now() - t0

local inside = 0
for _, c in ipairs(counts) do inside = inside + c end
local p = inside / SAMPLES
local estimate = 4 * p
local stderr = 4 * math.sqrt(p * (1 - p) / SAMPLES) -- the binomial standard error, times 4

print(string.format("%d samples on %d workers%s, %.2f s", SAMPLES, n,
  SEED and (", seed " .. SEED) or " (fresh streams: run again for another estimate)", seconds))
for rank, c in ipairs(counts) do
  local lo, hi = shm.partition(SAMPLES, n, rank)
  print(string.format("  rank %d  %d of %d darts inside", rank, c, hi - lo + 1))
end
print(string.format("pi ~ %.6f +- %.6f (error %.6f)", estimate, stderr, estimate - math.pi))
