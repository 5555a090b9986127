-- shm.pool(n [, opts]): n persistent forked workers; p:map(fn, items | count [, opts]) hands
-- each idle worker the next chunk of items (dynamic scheduling) and returns the first results
-- of fn in item order.
--
-- A function cannot cross processes by name, so the workers are forked when they are first
-- needed, at a map, and run fn in their copy of the parent's state as of that fork (closures,
-- upvalues and globals work, as with shm.spawn). They stay up for every later map with the
-- same fn (keeping whatever they attached); a map with another fn forks fresh workers. Items and
-- results travel through the value codec (Blocks, Arrays... by name), a chunk per round trip:
-- the worker calls fn on each item of its chunk (bindings/core/child.c) and sends back the
-- chunk's results at once.
local shm = ...
local W = shm._worker -- with the helpers of workers.lua
local error, ipairs, math, pcall, setmetatable, table, tostring, type =
  error, ipairs, math, pcall, setmetatable, table, tostring, type

local Pool = {}
local meta = { __name = "luashm.Pool", __index = Pool, __metatable = false }
local pools = setmetatable({}, { __mode = "k" }) -- every Pool -> its private state (the gate)

function shm.pool(n, opts)
  n = W.check_workers(n, "pool")
  W.check_options(opts, "pool", 2, "seed")
  local seed = W.check_seed(opts and opts.seed, "pool")
  local p = setmetatable({ size = n, closed = false }, meta)
  pools[p] = { seed = seed }
  return p
end

local function check(self, op)
  if not pools[self] then error(("bad argument #1 to '%s' (luashm.Pool expected)"):format(op), 3) end
  if self.closed then error("luashm: pool is closed", 3) end
end

local function stop_workers(self)
  if self.workers then W.stop_all(self.workers) end
  self.workers, self.fn = nil, nil
end

-- The workers for fn: the running ones when they were forked for fn, else fresh ones (slot r
-- seeded with (seed, r) when the pool has a seed).
local function workers_for(self, fn)
  if self.workers and self.fn == fn then return self.workers end
  if self.workers then
    for _, w in ipairs(self.workers) do w:_finish() end
    self.workers = nil
  end
  local ws, seed = {}, pools[self].seed
  self.workers, self.fn = ws, fn
  for rank = 1, self.size do ws[rank] = W.serve(rank, seed, fn) end
  return ws
end

-- The error of a failed chunk: the item that failed (index 0 or nil: the chunk as a whole).
local function chunk_failure(err, index, lo, n)
  if index and index > 0 then return ("luashm: map: item %d failed: %s"):format(index, W.strip(err)) end
  if n == 1 then return ("luashm: map: item %d failed: %s"):format(lo, W.strip(err)) end
  return ("luashm: map: items %d..%d failed: %s"):format(lo, lo + n - 1, W.strip(err))
end

-- The scheduling loop: every idle worker takes the next chunk; replies fill results. The next
-- chunk is encoded while the workers compute, and a worker whose reply came in is handed its
-- next chunk before its results are read, so that it never waits for the parent's reading.
local function run(self, fn, items, count, chunk, progress, results)
  local ws = workers_for(self, fn)
  local busy, jobs = {}, {} -- workers with work out; worker -> FIFO of {lo, n}
  local nexti, job, jobn = 1, nil, nil
  local function prepare()
    job, jobn = nil, math.min(chunk, count - nexti + 1)
    if jobn > 0 then job = W.job(nexti, jobn, items) end
  end
  local function give(w)
    w:_send(job) -- a worker that died is reported by _take below
    local q = jobs[w]
    q[#q + 1] = { nexti, jobn }
    nexti = nexti + jobn
    prepare()
  end
  prepare()
  for _, w in ipairs(ws) do
    jobs[w] = {}
    if job then
      give(w)
      busy[#busy + 1] = w
    end
  end
  while #busy > 0 do
    local k = W.wait(busy, nil, true)
    local w = busy[k]
    local q = jobs[w]
    local lo, n = q[1][1], q[1][2]
    if job and #q == 1 then give(w) end
    local ok, err, index = w:_take(results, lo)
    if not ok then error(chunk_failure(err, index, lo, n), 0) end
    table.remove(q, 1)
    if #q == 0 then table.remove(busy, k) end
    if progress then progress:add(n) end
  end
end

-- Items per round trip: opts.chunksize, else Python's Pool.map default, about four chunks per
-- worker; at most W.chunk_max (a chunk's items travel as values on a Lua stack).
local function chunksize(self, opts, count)
  local c = opts and opts.chunksize
  if c == nil then
    return math.min(W.chunk_max, math.max(1, (count + 4 * self.size - 1) // (4 * self.size)))
  end
  local k = type(c) == "number" and math.tointeger(c)
  if not k or k < 1 then
    error(("luashm: map: opts.chunksize must be a positive integer, not %s"):format(
      type(c) == "number" and tostring(c) or "a " .. type(c)), 0)
  end
  return math.min(k, W.chunk_max)
end

-- p:map(fn, items [, opts]) or p:map(fn, count [, opts]) (fn(i) for i = 1..count).
-- opts.chunksize: items per round trip; opts.progress = true draws a bar of the items done.
function Pool:map(fn, items, opts)
  check(self, "map")
  if type(fn) ~= "function" then
    error(("bad argument #1 to 'map' (function expected, got %s)"):format(type(fn)), 2)
  end
  local count
  if type(items) == "table" then
    count = #items
  elseif math.type(items) == "integer" and items >= 0 then
    count, items = items, nil
  else
    error(("bad argument #2 to 'map' (table or non-negative integer expected, got %s)"):format(
      math.type(items) or type(items)), 2)
  end
  W.check_options(opts, "map", 3, "chunksize", "progress", "label")
  if opts and opts.label ~= nil and type(opts.label) ~= "string" then
    error(("luashm: map: opts.label must be a string, not a %s"):format(type(opts.label)), 0)
  end
  local chunk = chunksize(self, opts, count)
  -- Checked after the arguments (whose metamethods could run map) and held until the end: an
  -- item's metamethod, or fn in a worker (its copy of the pool), calling map on this pool.
  local state = pools[self]
  if state.mapping then
    error("luashm: map: this pool is already running a map (map is not re-entrant)", 0)
  end
  if count == 0 then return {} end
  local results = W.results(count)
  local progress = opts and opts.progress == true and shm.progress(count, opts.label or "map")
  state.mapping = true
  local ok, err = pcall(run, self, fn, items, count, chunk, progress, results)
  state.mapping = false
  if progress then
    progress:unlink()
    progress:close()
  end
  if not ok then
    -- A failed item or an interrupt: the workers may be mid-job, so none is reused.
    stop_workers(self)
    error(err, 0)
  end
  return results
end

-- Ends the workers (each exits when its link closes). Idempotent.
function Pool:close()
  if not pools[self] then error("bad argument #1 to 'close' (luashm.Pool expected)", 2) end
  if self.closed then return end
  self.closed = true
  if self.workers then
    for _, w in ipairs(self.workers) do w:_finish() end
    self.workers, self.fn = nil, nil
  end
end

meta.__close = Pool.close
-- A forked copy of a pool is not its process's to close: the error is dropped there.
meta.__gc = function(self) pcall(Pool.close, self) end
meta.__tostring = function(self)
  local state = self.closed and "closed" or self.workers and "started" or "not started"
  return ("luashm.Pool: %d workers (%s)"):format(self.size, state)
end
