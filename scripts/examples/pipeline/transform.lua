-- Pipeline stage 2 (see ../pipeline.lua): for each batch on `raw`, writes the score of every
-- record (the sum of its three dice) into column 4, in place, and passes the batch on to
-- `cooked`. Several transformers read `raw` at once: each batch goes to exactly one of them.
-- Returns the number of batches it handled.
local raw, cooked = ...
local batches = 0
for batch in raw:iter() do -- ends when raw is shut down and drained
  local a = batch.records
  for r = 1, batch.count do
    a:set(r, 4, a:get(r, 1) + a:get(r, 2) + a:get(r, 3))
  end
  cooked:send(batch)
  a:close()
  batches = batches + 1
end
return batches
