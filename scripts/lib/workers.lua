-- What shm.parallel (parallel.lua) and shm.pool (pool.lua) share, added to the private worker
-- table shm._worker: the default worker count (-j N, LUASHM_WORKERS, shm.cpus()), also public
-- as shm.default_workers; the checks of a worker count, a seed and an option table; the
-- stopping of a list of workers; the message of a worker's error without its prefix.
local shm = ...
local W = shm._worker
local error, ipairs, math, os, tonumber, tostring, type =
  error, ipairs, math, os, tonumber, tostring, type

local MAX_WORKERS = 4096

-- The worker count a caller gets when it gives none: the host's -j N (which sets
-- LUASHM_WORKERS), else LUASHM_WORKERS from the environment, else the CPUs.
function W.default_workers()
  local env = os.getenv("LUASHM_WORKERS")
  if env == nil or env == "" then return shm.cpus() end
  local n = math.tointeger(tonumber(env))
  if n == nil or n < 1 or n > MAX_WORKERS then
    error(("luashm: LUASHM_WORKERS='%s' is not a worker count from 1 to %d"):format(env,
      MAX_WORKERS), 0)
  end
  return n
end

shm.default_workers = W.default_workers

-- Checks a worker count argument (nil: the default).
function W.check_workers(n, op)
  if n == nil then return W.default_workers() end
  local k = type(n) == "number" and math.tointeger(n)
  if not k or k < 1 or k > MAX_WORKERS then
    error(("luashm: %s: worker count %s is not an integer from 1 to %d"):format(op, tostring(n),
      MAX_WORKERS), 0)
  end
  return k
end

-- Checks opts.seed (nil: none, each worker then seeds from the kernel).
function W.check_seed(seed, op)
  if seed == nil then return nil end
  local s = type(seed) == "number" and math.tointeger(seed)
  if not s then
    error(("luashm: %s: opts.seed must be an integer, not %s"):format(op,
      type(seed) == "number" and tostring(seed) or "a " .. type(seed)), 0)
  end
  return s
end

-- Checks an option table (nil is fine) of the function op, whose argument argn it is: a table
-- whose keys are all among the valid ones that follow, else an error naming the key.
local checkoptions = W.checkoptions
function W.check_options(opts, op, argn, ...)
  if opts == nil then return end
  if type(opts) ~= "table" then
    error(("bad argument #%d to '%s' (table expected, got %s)"):format(argn, op, type(opts)), 3)
  end
  checkoptions(opts, op, ...)
end

-- Stops every worker of the list still running: SIGTERM to all first, then each gets the
-- rest of a shared grace period before SIGKILL; all are reaped.
function W.stop_all(ws)
  for _, w in ipairs(ws) do
    if w:running() then w:kill("TERM") end
  end
  local deadline = shm.now() + 0.5
  for _, w in ipairs(ws) do
    w:_stop(math.max(0, deadline - shm.now()))
  end
end

-- A worker's error without its "luashm: " prefix, to nest in another message.
function W.strip(msg)
  msg = tostring(msg)
  return msg:sub(1, 8) == "luashm: " and msg:sub(9) or msg
end
