-- shm.pool(n): n persistent forked workers; p:map(fn, items | count [, opts]) hands each idle
-- worker the next item (dynamic scheduling) and returns the first results in item order.
--
-- A function cannot cross processes by name, so the workers are forked when they are first
-- needed, at a map, and run fn in their copy of the parent's state as of that fork (closures,
-- upvalues and globals work, as with shm.spawn). They stay up for every later map with the
-- same fn (keeping whatever they attached); a map with another fn forks fresh workers. Items and
-- results travel through the value codec (Blocks, Arrays... by name).
local shm = ...
local W = shm._worker -- with the helpers of workers.lua
local error, ipairs, pcall, setmetatable, table, tostring, type =
  error, ipairs, pcall, setmetatable, table, tostring, type
local math = math

local Pool = {}
local meta = { __name = "luashm.Pool", __index = Pool, __metatable = false }
local pools = setmetatable({}, { __mode = "k" }) -- every Pool, for the methods' gate

local function strip(msg)
  msg = tostring(msg)
  return msg:sub(1, 8) == "luashm: " and msg:sub(9) or msg
end

function shm.pool(n)
  n = W.check_workers(n, "pool")
  local p = setmetatable({ size = n, closed = false }, meta)
  pools[p] = true
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

-- The workers for fn: the running ones when they were forked for fn, else fresh ones.
local function workers_for(self, fn)
  if self.workers and self.fn == fn then return self.workers end
  if self.workers then
    for _, w in ipairs(self.workers) do w:_finish() end
    self.workers = nil
  end
  local handler = function(item) return (fn(item)) end
  local ws = {}
  self.workers, self.fn = ws, fn
  for rank = 1, self.size do ws[rank] = W.serve(rank, handler) end
  return ws
end

-- The scheduling loop: every idle worker takes the next item; replies fill results[i].
local function run(self, fn, items, count, progress, results)
  local ws = workers_for(self, fn)
  local idle, busy, busy_item = {}, {}, {}
  for k = #ws, 1, -1 do idle[#idle + 1] = ws[k] end
  local nexti = 1
  while nexti <= count or #busy > 0 do
    while nexti <= count and #idle > 0 do
      local w = table.remove(idle)
      local item = nexti
      if items then item = items[nexti] end
      w:_send(item) -- a worker that died is reported by _take below
      busy[#busy + 1], busy_item[#busy + 1] = w, nexti
      nexti = nexti + 1
    end
    local k = W.wait(busy, nil, true)
    local w, i = busy[k], busy_item[k]
    local ok, value = w:_take()
    if not ok then
      error(("luashm: map: item %d failed: %s"):format(i, strip(value)), 0)
    end
    results[i] = value
    busy[k], busy_item[k] = busy[#busy], busy_item[#busy]
    busy[#busy], busy_item[#busy] = nil, nil
    idle[#idle + 1] = w
    if progress then progress:add(1) end
  end
end

-- p:map(fn, items [, opts]) or p:map(fn, count [, opts]) (fn(i) for i = 1..count).
-- opts.progress = true draws a bar of the items done.
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
  if opts ~= nil and type(opts) ~= "table" then
    error(("bad argument #3 to 'map' (table expected, got %s)"):format(type(opts)), 2)
  end
  if opts and opts.label ~= nil and type(opts.label) ~= "string" then
    error(("luashm: map: opts.label must be a string, not a %s"):format(type(opts.label)), 0)
  end
  local results = {}
  if count == 0 then return results end
  local progress = opts and opts.progress == true and shm.progress(count, opts.label or "map")
  local ok, err = pcall(run, self, fn, items, count, progress, results)
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
