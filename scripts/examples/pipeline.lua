-- A pipeline of worker scripts that pass arrays BY NAME through channels: dice rolls, three
-- dice per record, from a producer through transformers to a reducer that prints a histogram
-- of the scores.
--
--   luashm scripts/examples/pipeline.lua [RECORDS [BATCH [TRANSFORMERS]]]
--
--   produce.lua --raw--> transform.lua (xTRANSFORMERS) --cooked--> reduce.lua
--        ^                                                             |
--        +-------------------------- free <----------------------------+
--
-- Each stage is a script run by shm.spawn(path, ...) in a fresh interpreter; its arguments
-- (channels, numbers) cross by name or by value, never by fork. The records live in a few
-- i32 arrays of BATCH rows x 4 columns (three dice, then the score) made here, once: they go
-- round the ring free -> raw -> cooked -> free, and what crosses a process boundary is the
-- array's name inside a small table, tens of bytes whatever the batch size. The producer fills
-- an array, a transformer computes the scores in place, the reducer counts them and hands the
-- array back to the free channel. Memory stays bounded whatever RECORDS is.
local here = arg[0]:match("^(.*)/") or "."
local N = math.tointeger(tonumber(arg[1] or "1000000"))
local BATCH = math.tointeger(tonumber(arg[2] or "10000"))
local T = math.tointeger(tonumber(arg[3] or "2"))
assert(N and N >= 0 and BATCH and BATCH > 0 and T and T > 0,
  "usage: pipeline.lua [RECORDS [BATCH [TRANSFORMERS]]] (integers)")
local BUFFERS = 2 * T + 2 -- enough in flight to keep every stage busy

local m <close> = shm.manager() -- unlinks the channels and arrays at scope exit, error or not
local free, raw, cooked = m:channel(), m:channel(), m:channel()
for _ = 1, BUFFERS do free:send(m:array("i32", { BATCH, 4 })) end

local t0 = shm.now()
local function stage(script, ...) return shm.spawn(here .. "/pipeline/" .. script, ...) end
local producer = stage("produce.lua", free, raw, N)
local transformers = {}
for t = 1, T do transformers[t] = stage("transform.lua", raw, cooked) end
local reducer = stage("reduce.lua", cooked, free)

-- Each channel is closed when every stage that sends into it has finished, so the stages
-- reading it (for batch in ch:iter()) end once it is drained.
local function finish(w, what)
  local ok, a, b, c = w:join()
  if not ok then
    raw:close()
    cooked:close()
    error("pipeline: " .. what .. " failed: " .. a, 0)
  end
  return a, b, c
end
local produced, batches = finish(producer, "produce.lua")
raw:close()
local handled = {}
for t = 1, T do handled[t] = finish(transformers[t], "transform.lua #" .. t) end
cooked:close()
local hist, records, sum = finish(reducer, "reduce.lua")
local seconds = shm.now() - t0

print(string.format("%d records in batches of %d, %d arrays in flight, %.2f s", N, BATCH,
  BUFFERS, seconds))
print(string.format("  produce.lua       %d records in %d batches", produced, batches))
for t = 1, T do
  print(string.format("  transform.lua #%d  %d batches", t, handled[t]))
end
print(string.format("  reduce.lua        %d records, sum of scores %d", records, sum))
print()
print("score     count   share")
local peak = 1
for s = 3, 18 do peak = math.max(peak, hist[s]) end
for s = 3, 18 do
  print(string.format("%5d %9d %6.2f%%  %s", s, hist[s], N > 0 and 100 * hist[s] / N or 0,
    ("#"):rep(math.floor(40 * hist[s] / peak + 0.5))))
end
print(string.format("mean score %.4f (three fair dice: 10.5)", N > 0 and sum / N or 0))
