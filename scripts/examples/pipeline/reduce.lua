-- Pipeline stage 3 (see ../pipeline.lua): counts the scores of every batch on `cooked` and
-- hands each array back to `free` for the producer to fill again. Returns the histogram
-- (score -> count), the number of records and the sum of the scores.
local cooked, free = ...
local hist, records, sum = {}, 0, 0
for s = 3, 18 do hist[s] = 0 end
for batch in cooked:iter() do
  local a = batch.records
  for r = 1, batch.count do
    local s = a:get(r, 4)
    hist[s] = hist[s] + 1
    sum = sum + s
  end
  records = records + batch.count
  free:send(a)
  a:close()
end
return hist, records, sum
