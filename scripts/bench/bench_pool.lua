-- pool:map against Python's multiprocessing Pool.map (fork context), in the same run: 100,000
-- trivial items on 2 workers with each side's default chunking (ceil(items / (4 * workers)),
-- Python's rule), and the per-item cost of a round trip per item (chunksize = 1). Both sides
-- are timed with their workers already started (Python's Pool(2) exists before the clock
-- starts; a luashm pool forks its workers at its first map, so one map runs before the clock).
local B = require "benchlib"

local N, N1 = 100000, 10000

local py = B.python(([[
import multiprocessing as mp
def double(x):
    return x * 2
items = list(range(1, %d + 1))
few = items[:%d]
with mp.get_context("fork").Pool(2) as p:
    p.map(double, items)
    print("map_default", best_ns(len(items), lambda n: p.map(double, items), 5))
    print("map_chunk1", best_ns(len(few), lambda n: p.map(double, few, chunksize=1), 3))
]]):format(N, N1))

local items = {}
for i = 1, N do items[i] = i end
local few = table.move(items, 1, N1, 1, {})
local function double(x) return x * 2 end

local p = shm.pool(2)
p:map(double, items) -- forks the workers for double
local default = B.ns_loop(N, function() p:map(double, items) end, 5)
local one = B.ns_loop(N1, function() p:map(double, few, { chunksize = 1 }) end, 3)
p:close()

B.row("workers", "pool:map of 100k trivial items, 2 workers, default chunks (per item)", default,
  "Python Pool(2).map, default chunks", py.map_default, 1.0)
B.row("workers", "pool:map per item, chunksize = 1, 2 workers", one,
  "Python Pool(2).map, chunksize=1", py.map_chunk1)
B.row("workers", "pool:map per item, chunksize = 1 vs default chunks", one,
  "luashm default chunks", default)
