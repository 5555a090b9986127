-- Helpers for the benchmarks: timing, running the Python peer in the same run, and the row
-- format that scripts/bench/run.lua collects into BENCHMARKS.md.
local B = {}

local clock = os.clock
local function now() return clock() end

-- Wall time would be better than CPU time for I/O; the host gives shm.now when it exists.
if shm and shm.now then now = shm.now end
B.now = now

-- Nanoseconds per call of fn(i), best of `rounds` runs of n calls each.
function B.ns(n, fn, rounds)
  local best = math.huge
  for _ = 1, rounds or 3 do
    local t0 = now()
    for i = 1, n do fn(i) end
    local dt = now() - t0
    if dt < best then best = dt end
  end
  return best / n * 1e9
end

-- Nanoseconds of one call of fn() (which does its own loop of n), best of rounds.
function B.ns_loop(n, fn, rounds)
  local best = math.huge
  for _ = 1, rounds or 3 do
    local t0 = now()
    fn(n)
    local dt = now() - t0
    if dt < best then best = dt end
  end
  return best / n * 1e9
end

-- Runs Python code with /usr/bin/python3; the code prints numbers (one per line, or
-- "key value" lines). Returns a table of key -> number (keys 1.. for bare numbers).
function B.python(code)
  local file = os.tmpname()
  local f = assert(io.open(file, "w"))
  f:write([[
import sys, time
from multiprocessing import shared_memory, resource_tracker
def best_ns(n, fn, rounds=3):
    best = float("inf")
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn(n)
        best = min(best, time.perf_counter() - t0)
    return best / n * 1e9
]], code)
  f:close()
  local p = assert(io.popen("/usr/bin/python3 " .. file))
  local out = p:read("a")
  local ok = p:close()
  os.remove(file)
  if not ok then error("python peer failed:\n" .. out) end
  local res, i = {}, 0
  for line in out:gmatch("[^\n]+") do
    local k, v = line:match("^(%S+)%s+(%S+)$")
    if k then
      res[k] = tonumber(v)
    else
      i = i + 1
      res[i] = tonumber(line)
    end
  end
  return res
end

-- Starts a Python peer beside us: /usr/bin/python3 runs `code` with sys.argv[1] a FIFO it reads
-- one command per line from, then the extra arguments; it answers each command with a line on
-- its stdout. Returns the peer: p.ask(command) sends one and returns the answer line,
-- p.close() ends it. So the peer's rounds interleave with ours.
function B.peer(code, ...)
  local script, fifo = os.tmpname(), os.tmpname()
  local f = assert(io.open(script, "w"))
  f:write(code)
  f:close()
  os.remove(fifo)
  assert(os.execute("mkfifo " .. fifo))
  local out = assert(io.popen("/usr/bin/python3 " .. script .. " " .. fifo .. " "
    .. table.concat({ ... }, " ")))
  local cmd = assert(io.open(fifo, "w"))
  local p = {}
  function p.ask(command)
    cmd:write(command, "\n")
    cmd:flush()
    return out:read("l")
  end
  function p.close()
    cmd:close()
    out:close()
    os.remove(fifo)
    os.remove(script)
  end
  return p
end

-- One result: `ours` and `peer` in the same unit (ns per op, lower is better); goal is the
-- largest acceptable ours/peer ratio (nil when the row only reports).
function B.row(group, what, ours, peer_name, peer, goal, unit)
  io.write(string.format("ROW\t%s\t%s\t%.6g\t%s\t%.6g\t%s\t%s\n", group, what, ours, peer_name,
    peer, goal and string.format("%.4g", goal) or "-", unit or "ns"))
  io.flush()
end

-- Nanoseconds to write a Block's bytes from Lua into a pipe to a reader (`cat`), best of 3:
-- the peer of the hand-off rows.
function B.lua_pipe_ns(block)
  local bytes = block:read()
  return B.ns_loop(1, function()
    local p = io.popen("cat > /dev/null", "w")
    p:write(bytes)
    p:close()
  end, 3)
end

-- Spawns the hand-off server of the hand-off rows: for each Array received on `to` it sends
-- its first element back on `back` and closes its handle, until `to` is shut down.
function B.handoff_server(to, back)
  return shm.spawn(function()
    for a in to:iter() do
      back:send(a[1])
      a:close()
    end
  end)
end

return B
