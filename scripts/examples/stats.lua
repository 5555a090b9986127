-- Distributed statistics of a synthetic data set: a histogram, the mean, the minimum and the
-- maximum of N samples. The same job runs on one machine and across machines:
--
--   luashm -j 4 scripts/examples/stats.lua [N]         ranks are forked workers (shm.parallel)
--   mpirun -n 4 luashm scripts/examples/stats.lua [N]  ranks are MPI processes (shm.mpi)
--
-- Either way each rank takes its partition of 1..N, fills partial results in Arrays, and the
-- ranks combine them with allreduce; rank 1 prints the same table, to the last digit.
local N = math.tointeger(tonumber(arg and arg[1]) or 2000000)
local BINS = 16

-- A deterministic sample for index i (a splitmix64 hash: no state to share between ranks), the
-- sum of four uniforms in [0, 1), so roughly bell-shaped over [0, 4).
local function uniform(i)
  local x = i * -7046029254386353131
  x = (x ~ (x >> 30)) * -4658895280553007687
  x = (x ~ (x >> 27)) * -7723592293110705685
  x = x ~ (x >> 31)
  return (x >> 11) * 2.0 ^ -53
end
local function sample(i)
  local j = 4 * i
  return uniform(j) + uniform(j + 1) + uniform(j + 2) + uniform(j + 3)
end

-- The job: the part that is the same on every launcher.
local function job(rank, n, comm)
  local lo, hi = shm.partition(N, n, rank)
  local counts = comm.array("i64", BINS)
  local sum, min, max = comm.array("f64", 1), comm.array("f64", 1), comm.array("f64", 1)
  local c, s, mn, mx = {}, 0.0, math.huge, -math.huge
  for b = 1, BINS do c[b] = 0 end
  for i = lo, hi do
    local v = sample(i)
    local b = math.floor(v / 4 * BINS) + 1
    c[b] = c[b] + 1
    s = s + v
    if v < mn then mn = v end
    if v > mx then mx = v end
  end
  counts:copy(c)
  sum[1], min[1], max[1] = s, mn, mx
  comm.allreduce(counts, "sum")
  comm.allreduce(sum, "sum")
  comm.allreduce(min, "min")
  comm.allreduce(max, "max")
  local result
  if rank == 1 then
    result = { counts = counts:totable(), mean = sum[1] / N, min = min[1], max = max[1] }
  end
  comm.free(counts, sum, min, max)
  return result
end

local function free_arrays(...)
  for _, a in ipairs({ ... }) do
    a.block:unlink()
    a:close()
  end
end

-- Launcher 1: MPI ranks; every array is private to its rank, allreduce is MPI's, in place.
local function mpi_comm()
  local mpi = shm.mpi
  return mpi.rank(), mpi.size(), {
    array = function(dtype, len) return shm.array(dtype, len) end,
    allreduce = function(a, op) mpi.allreduce(a, a, op) end,
    free = free_arrays,
  }
end

-- Launcher 2: forked ranks on one machine; allreduce goes through one shared scratch block (a
-- row per rank, viewed with the array's dtype) and a barrier, both owned by the manager m.
local function local_comm(n, m)
  local scratch = m:create(n * BINS * 8)
  local bar = m:barrier(n)
  return {
    array = function(dtype, len) return shm.array(dtype, len, { track = false }) end,
    allreduce = function(a, op, rank)
      local row = shm.array(a.dtype, a.size, { block = scratch, offset = (rank - 1) * a.nbytes })
      row:copy(a)
      bar:wait()
      for r = 1, n do
        if r ~= rank then
          local other = shm.array(a.dtype, a.size, { block = scratch, offset = (r - 1) * a.nbytes })
          for k = 1, a.size do
            local x, y = a[k], other[k]
            a[k] = op == "sum" and x + y or op == "min" and math.min(x, y) or math.max(x, y)
          end
        end
      end
      bar:wait()
    end,
    free = free_arrays,
  }
end

local result
if shm.mpi.launched() then
  local rank, n, comm = mpi_comm()
  result = job(rank, n, comm)
else
  local n = math.tointeger(tonumber(os.getenv("LUASHM_WORKERS"))) or shm.cpus()
  local m <close> = shm.manager()
  local comm = local_comm(n, m)
  local results = shm.parallel(n, function(rank, size)
    local c = setmetatable({
      allreduce = function(a, op) return comm.allreduce(a, op, rank) end,
    }, { __index = comm })
    return job(rank, size, c)
  end)
  result = results[1]
end

if result then
  local peak = math.max(table.unpack(result.counts))
  print(string.format("%d samples: mean %.6f, min %.6f, max %.6f", N, result.mean, result.min,
    result.max))
  for b = 1, BINS do
    local c = result.counts[b]
    print(string.format("[%4.2f, %4.2f) %9d %s", (b - 1) * 4 / BINS, b * 4 / BINS, c,
      ("#"):rep(math.floor(c / peak * 40 + 0.5))))
  end
end
