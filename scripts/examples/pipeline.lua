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
local stages = {}
-- stage{script = ..., sends_into = channel, args...}: starts the script with the args.
local function stage(st)
  st.worker = shm.spawn(here .. "/pipeline/" .. st.script, table.unpack(st))
  st.label = st.label or st.script
  stages[#stages + 1] = st
end
stage { script = "produce.lua", sends_into = raw, free, raw, N }
for t = 1, T do
  stage { script = "transform.lua", label = "transform.lua #" .. t, sends_into = cooked, raw, cooked }
end
stage { script = "reduce.lua", cooked, free }

-- Wait for the stages in whatever order they end (shm.wait returns each once). A channel is
-- shut down once every stage that sends into it has ended, so the stages reading it (for batch
-- in ch:iter()) end when it is drained. The first stage that fails stops the job at once: the
-- error is raised, the host kills the other workers as it exits, and the manager unlinks the
-- blocks.
local senders, by_worker, workers = { [raw] = 1, [cooked] = T }, {}, {}
for i, st in ipairs(stages) do by_worker[st.worker], workers[i] = st, st.worker end
for _ = 1, #stages do
  local w, ok, a, b, c = shm.wait(workers)
  local st = by_worker[w]
  if not ok then error("pipeline: " .. st.label .. " failed: " .. a, 0) end
  st.results = { a, b, c }
  local ch = st.sends_into
  if ch then
    senders[ch] = senders[ch] - 1
    if senders[ch] == 0 then ch:shutdown() end
  end
end
local produced, batches = table.unpack(stages[1].results)
local hist, records, sum = table.unpack(stages[#stages].results)
local seconds = shm.now() - t0

print(string.format("%d records in batches of %d, %d arrays in flight, %.2f s", N, BATCH,
  BUFFERS, seconds))
print(string.format("  produce.lua       %d records in %d batches", produced, batches))
for t = 1, T do
  print(string.format("  transform.lua #%d  %d batches", t, stages[1 + t].results[1]))
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
