-- Fault injection: a job whose host and two workers create and unlink blocks through a manager
-- (and plain tracked blocks beside it) is SIGKILLed at a random moment, the host or a worker;
-- once the job's process tree is gone, not one block may be left. Trials run several at a
-- time. LUASHM_FAULT_TRIALS sets the count (scripts/faults_soak.sh runs thousands);
-- LUASHM_FAULT_SEED replays a run.
local lu = require "luaunit"
local H = require "helper"

local TRIALS = tonumber(os.getenv("LUASHM_FAULT_TRIALS")) or 240
local CONCURRENT = tonumber(os.getenv("LUASHM_FAULT_CONCURRENT")) or 8
local SEED = tonumber(os.getenv("LUASHM_FAULT_SEED")) or os.time()

-- The job: arg[1] the pid file (host first, then each worker), arg[2] the number of loops.
local JOB = [[
local pidfile, loops = arg[1], tonumber(arg[2])
local m = shm.manager()
local function work()
  local live = {}
  for i = 1, loops do
    live[#live + 1] = m:create(64 + i)
    if #live > 3 then table.remove(live, 1):unlink() end
    local t = shm.create(32)
    if i % 2 == 0 then t:unlink() end
  end
end
local f = io.open("/proc/self/stat")
local pids = { f:read("a"):match("^(%d+)") }
f:close()
local ws = {}
for r = 1, 2 do
  ws[r] = shm.spawn(work)
  pids[#pids + 1] = tostring(ws[r].pid)
end
f = io.open(pidfile .. ".tmp", "w")
f:write(table.concat(pids, "\n"), "\n")
f:close()
os.rename(pidfile .. ".tmp", pidfile)
work()
for _, w in ipairs(ws) do w:join() end
m:shutdown()
]]

-- Starts one trial: the job in the background, then a SIGKILL to the victim (1 the host, 2 and
-- 3 the workers; the host if the workers are not there yet) `delay` seconds after the launch,
-- or, when `in_job`, after the workers are running (startup is slow under the sanitizers).
-- Returns the pipe: reading it to its end waits for the job and its tracker. (Under the
-- sanitizers, LeakSanitizer is off in the jobs: a SIGKILL racing its exit-time thread
-- suspension makes it print noise, and the other suites check for leaks.)
local function start_trial(job, pidfile, delay, victim, loops, in_job)
  local cmd = ([[
exec 2>/dev/null
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0"
%s %s %s %d 2>&1 &
h=$!
if [ %d = 1 ]; then
  while [ ! -e %s ] && kill -0 $h; do sleep 0.002; done
fi
sleep %.4f
v=$(sed -n '%dp' %s)
kill -9 "${v:-$h}" && echo "@killed"
wait $h
rm -f %s %s.tmp
]]):format(H.shell_quote(H.host), job, pidfile, loops, in_job and 1 or 0, pidfile, delay, victim,
    pidfile, pidfile, pidfile)
  return io.popen(cmd)
end

TestFaults = {}

function TestFaults:test_sigkill_at_random_moments_leaves_no_block()
  math.randomseed(SEED)
  local job = os.tmpname()
  local f = assert(io.open(job, "w"))
  f:write(JOB)
  f:close()
  local before = H.shm_names()
  local leaked, outputs, done, killed_host, hits = {}, 0, 0, 0, 0
  local t0 = os.time()
  while done < TRIALS do
    local batch = {}
    for i = 1, math.min(CONCURRENT, TRIALS - done) do
      local victim = math.random(1, 3)
      if victim == 1 then killed_host = killed_host + 1 end
      local in_job = math.random() < 0.5
      local pidfile = os.tmpname()
      os.remove(pidfile) -- it appears when the job has started its workers
      batch[i] = start_trial(job, pidfile, math.random() * (in_job and 0.008 or 0.015), victim,
        math.random(5, 30), in_job)
    end
    for _, p in ipairs(batch) do
      local out = p:read("a")
      p:close()
      if out:find("luashm: tracker:", 1, true) then outputs = outputs + 1 end
      if out:find("@killed", 1, true) then hits = hits + 1 end
      -- Nothing but the tracker's line may appear: no crash, no error from a surviving part.
      for line in out:gmatch("[^\n]+") do
        if not line:find("^luashm: tracker: unlinked") and line ~= "@killed" then
          lu.fail("trial printed: " .. line .. " (seed " .. SEED .. ")")
        end
      end
    end
    done = done + #batch
    for n in pairs(H.shm_names()) do
      if not before[n] then
        leaked[#leaked + 1] = n .. " (" .. (H.sh("stat -c %s /dev/shm/" .. n):gsub("%s+$", "")) .. " bytes)"
        os.remove("/dev/shm/" .. n)
      end
    end
  end
  os.remove(job)
  io.stderr:write(("faults: %d trials (%d aimed at the host), %d SIGKILLs hit a running process, " ..
    "%d tracker cleanups, %d blocks found, %d s, seed %d\n"):format(done, killed_host, hits,
    outputs, #leaked, os.time() - t0, SEED))
  lu.assertEquals(leaked, {}, "blocks left behind (seed " .. SEED .. ")")
  lu.assertEquals(done, TRIALS)
end

os.exit(lu.LuaUnit.run())
