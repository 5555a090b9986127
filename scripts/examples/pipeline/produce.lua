-- Pipeline stage 1 (see ../pipeline.lua): rolls three dice for each record 1..n into the
-- arrays that arrive on `free`, and sends each filled array on `raw` with its first record and
-- count. Returns the records and the batches it sent.
local free, raw, n = ...

-- The dice of record `id` come from a hash of the id (splitmix64), not from a generator's
-- state, so the rolls do not depend on batching or on which process makes them.
local function hash(id)
  local x = id * -7046029254386353131
  x = (x ~ (x >> 30)) * -4658895280553007687
  x = (x ~ (x >> 27)) * -7723592293110705685
  return x ~ (x >> 31)
end

local id, batches = 1, 0
while id <= n do
  local a = free:recv() -- an i32 array of rows x 4, attached by name
  local count = math.min(a.shape[1], n - id + 1)
  for r = 1, count do
    local x = hash(id + r - 1) >> 8 -- >> is a logical shift: x is non-negative
    a:set(r, 1, x % 6 + 1)
    a:set(r, 2, x // 6 % 6 + 1)
    a:set(r, 3, x // 36 % 6 + 1)
  end
  raw:send({ records = a, first = id, count = count })
  a:close() -- this process's mapping only: the block lives on, by name
  id, batches = id + count, batches + 1
end
return n, batches
