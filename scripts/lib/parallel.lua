-- shm.parallel(n, fn, ...) and shm.parallel{n =, fn =, args =, progress =, label =, seed =}:
-- fn(rank, n, ...) in n forked workers, fail-fast. Built on the private pieces of
-- bindings/worker.c (shm._worker: ranked and seeded spawns, waits on many workers) and the
-- helpers workers.lua adds to them.
local shm = ...
local W = shm._worker
local error, ipairs, math, pcall, select, table, tostring, type =
  error, ipairs, math, pcall, select, table, tostring, type

-- The error of a failed run: every rank that failed, its worker and its message.
local function failure(failed)
  table.sort(failed, function(a, b) return a.rank < b.rank end)
  local ranks, lines = {}, {}
  for i, f in ipairs(failed) do
    ranks[i] = tostring(f.rank)
    lines[i] = W.strip(f.err)
  end
  return ("luashm: parallel: rank%s %s failed (the other workers were stopped)\n%s"):format(
    #ranks > 1 and "s" or "", table.concat(ranks, ", "), table.concat(lines, "\n"))
end

-- Runs the n workers (their handles go into ws as they start) to the end or to the first
-- failure. Returns the results by rank, or nil and the failures.
local function run(ws, n, fn, progress, seed, ...)
  local pending, results = {}, {}
  for rank = 1, n do
    ws[rank] = W.spawn(rank, seed, fn, rank, n, ...)
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

local OPTIONS = { "n", "fn", "args", "progress", "label", "seed" }

-- The option-table form: n, fn and the arguments from the table (or fn and the arguments
-- after it, the form of contract v1).
local function from_options(opts, fn, ...)
  W.check_options(opts, "parallel", 1, table.unpack(OPTIONS))
  if opts.fn == nil then return opts.n, fn, table.pack(...) end
  if fn ~= nil or select("#", ...) > 0 then
    error("luashm: parallel: fn is given in the option table: no arguments may follow it", 0)
  end
  local args = opts.args or {}
  if type(args) ~= "table" then
    error(("luashm: parallel: opts.args must be a table, not a %s"):format(type(args)), 0)
  end
  return opts.n, opts.fn, { n = args.n or #args, table.unpack(args, 1, args.n or #args) }
end

function shm.parallel(n, fn, ...)
  local opts, args = {}, nil
  if type(n) == "table" then
    opts = n
    n, fn, args = from_options(opts, fn, ...)
  else
    args = table.pack(...)
  end
  n = W.check_workers(n, "parallel")
  if type(fn) ~= "function" then
    error(("bad argument #2 to 'parallel' (function expected, got %s)"):format(type(fn)), 2)
  end
  if opts.label ~= nil and type(opts.label) ~= "string" then
    error(("luashm: parallel: opts.label must be a string, not a %s"):format(type(opts.label)), 0)
  end
  local seed = W.check_seed(opts.seed, "parallel")
  local progress = opts.progress == true and shm.progress(n, opts.label or "parallel") or nil
  local ws = {}
  local ok, results, failed = pcall(run, ws, n, fn, progress, seed, table.unpack(args, 1, args.n))
  if progress then
    progress:unlink()
    progress:close()
  end
  if not ok then
    -- An error or an interrupt (Ctrl-C) while waiting: no worker of this call survives it.
    for _, w in ipairs(ws) do w:_stop(0) end
    error(results, 0)
  end
  if results == nil then error(failure(failed), 0) end
  return results
end
