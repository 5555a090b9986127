-- shm.parallel(n, fn, ...): fn(rank, n, ...) in n forked workers, fail-fast. Built on the
-- private pieces of bindings/worker.c (shm._worker: ranked spawns, waits on many workers), to
-- which this file adds the default worker count (-j N, LUASHM_WORKERS, shm.cpus()) and the
-- stopping of workers that shm.pool (pool.lua, run after this file) shares.
local shm = ...
local W = shm._worker
local error, ipairs, math, os, pcall, table, tonumber, tostring, type =
  error, ipairs, math, os, pcall, table, tonumber, tostring, type

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

-- Checks a worker count argument (nil: the default).
function W.check_workers(n, op)
  if n == nil then return W.default_workers() end
  local k = math.tointeger(n)
  if k == nil or k < 1 or k > MAX_WORKERS then
    error(("luashm: %s: worker count %s is not an integer from 1 to %d"):format(op, tostring(n),
      MAX_WORKERS), 0)
  end
  return k
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

local function strip(msg)
  msg = tostring(msg)
  return msg:sub(1, 8) == "luashm: " and msg:sub(9) or msg
end

-- The error of a failed run: every rank that failed, its worker and its message.
local function failure(failed)
  table.sort(failed, function(a, b) return a.rank < b.rank end)
  local ranks, lines = {}, {}
  for i, f in ipairs(failed) do
    ranks[i] = tostring(f.rank)
    lines[i] = strip(f.err)
  end
  return ("luashm: parallel: rank%s %s failed (the other workers were stopped)\n%s"):format(
    #ranks > 1 and "s" or "", table.concat(ranks, ", "), table.concat(lines, "\n"))
end

-- Runs the n workers (their handles go into ws as they start) to the end or to the first
-- failure. Returns the results by rank, or nil and the failures.
local function run(ws, n, fn, progress, ...)
  local pending, results = {}, {}
  for rank = 1, n do
    ws[rank] = W.spawn(rank, fn, rank, n, ...)
    pending[rank] = ws[rank]
  end
  local ranks = {}
  for rank = 1, n do ranks[rank] = rank end
  while #pending > 0 do
    local i = W.wait(pending)
    local w, rank = pending[i], ranks[i]
    table.remove(pending, i)
    table.remove(ranks, i)
    local ok, first = w:join()
    if not ok then
      -- Ranks failing at nearly the same moment (the same bug in every rank) get 0.1 s to
      -- end by themselves; then the rest are stopped. Every rank that failed by itself (not
      -- by our signals) is named.
      local failed = { { rank = rank, err = first } }
      local deadline, live = shm.now() + 0.1, {}
      for k, other in ipairs(pending) do live[k] = other end
      while #live > 0 and shm.now() < deadline do
        local k = W.wait(live, math.max(0, deadline - shm.now()))
        if not k then break end
        table.remove(live, k)
      end
      W.stop_all(pending)
      for k, other in ipairs(pending) do
        local ok2, err2 = other:join()
        if not ok2 and not err2:find(": killed by signal (%d+) %(.-%)$") then
          failed[#failed + 1] = { rank = ranks[k], err = err2 }
        end
      end
      W.stop_all(ws)
      return nil, failed
    end
    results[rank] = first
    if progress then progress:add(1) end
  end
  return results
end

-- shm.parallel(n, fn, ...) or shm.parallel({n = n, progress = true}, fn, ...).
function shm.parallel(n, fn, ...)
  local opts = {}
  if type(n) == "table" then opts, n = n, n.n end
  n = W.check_workers(n, "parallel")
  if type(fn) ~= "function" then
    error(("bad argument #2 to 'parallel' (function expected, got %s)"):format(type(fn)), 2)
  end
  if opts.label ~= nil and type(opts.label) ~= "string" then
    error(("luashm: parallel: opts.label must be a string, not a %s"):format(type(opts.label)), 0)
  end
  local progress = opts.progress == true and shm.progress(n, opts.label or "parallel") or nil
  local ws = {}
  local ok, results, failed = pcall(run, ws, n, fn, progress, ...)
  if progress then progress:close() end
  if not ok then
    -- An error or an interrupt (Ctrl-C) while waiting: no worker of this call survives it.
    for _, w in ipairs(ws) do w:_stop(0) end
    error(results, 0)
  end
  if results == nil then error(failure(failed), 0) end
  return results
end
