-- The worker script that tests/embed_example.c runs: it fills the Array it is given with its
-- own workers, a[i] = i / 2, and returns the sum.
local shm = require "luashm"
local a, workers = ...
shm.parallel(workers, function(rank, n)
  local lo, hi = shm.partition(#a, n, rank)
  for i = lo, hi do a[i] = i * 0.5 end
end)
return a:sum()
