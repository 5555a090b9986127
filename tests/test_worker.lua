-- Workers (API.md "Workers"): spawn of a function and of a script, join (results, errors with
-- tracebacks, signals, exit statuses, timeouts), kill, running, cpus, partition, the default
-- worker count, and "no worker outlives its host" (exit, SIGTERM, SIGINT, SIGKILL, Ctrl-C).
local lu = require "luaunit"
local H = require "helper"
local shm = require "luashm"

local mypid = H.mypid

-- Alive means running or stopped; a zombie (of init, after its parent died) is dead.

local function wait_until(pred, seconds)
  local deadline = shm.now() + (seconds or 5)
  while shm.now() < deadline do
    if pred() then return true end
    os.execute("sleep 0.02")
  end
  return pred()
end

local function spin() while true do end end

local function tmpscript(code)
  local file = os.tmpname()
  local f = assert(io.open(file, "w"))
  f:write(code)
  f:close()
  return file
end

TestSpawn = {}

function TestSpawn:test_results_come_back_with_their_types()
  local w = shm.spawn(function(a, b, t) return a + b, a / b, "s", true, nil, t end, 7, 2, { x = { 1, 2 } })
  lu.assertEquals(w.pid, math.tointeger(w.pid))
  lu.assertTrue(w.pid > 0)
  local r = table.pack(w:join())
  lu.assertEquals(r.n, 7)
  lu.assertEquals({ r[1], r[2], r[3], r[4], r[5], r[6] }, { true, 9, 3.5, "s", true, nil })
  lu.assertEquals(math.type(r[2]), "integer")
  lu.assertEquals(r[7], { x = { 1, 2 } })
  -- A second join gives the same outcome.
  lu.assertEquals({ w:join() }, { true, 9, 3.5, "s", true, nil, { x = { 1, 2 } } })
end

function TestSpawn:test_function_sees_the_parents_state_as_of_the_fork()
  local upvalue = { n = 41 }
  local w = shm.spawn(function() upvalue.n = upvalue.n + 1 return upvalue.n, mypid() end)
  local ok, n, pid = w:join()
  lu.assertTrue(ok)
  lu.assertEquals(n, 42)
  lu.assertEquals(pid, w.pid)
  lu.assertEquals(upvalue.n, 41) -- the child's copy, not ours
end

function TestSpawn:test_results_larger_than_the_socket_buffer()
  local w = shm.spawn(function() return ("x"):rep(8 * 1024 * 1024), ("y"):rep(100) end)
  local ok, big, small = w:join()
  lu.assertTrue(ok)
  lu.assertEquals(#big, 8 * 1024 * 1024)
  lu.assertEquals(small, ("y"):rep(100))
end

function TestSpawn:test_a_block_result_travels_by_name_and_arrives_attached()
  local w = shm.spawn(function()
    local b = shm.create(64, { track = false })
    b:write(0, "from the worker")
    return b
  end)
  local ok, b = w:join()
  lu.assertTrue(ok)
  lu.assertStrContains(tostring(b), "luashm.Block")
  lu.assertEquals(b:read(0, 15), "from the worker")
  b:unlink()
  b:close()
end

function TestSpawn:test_error_names_the_worker_and_carries_the_traceback()
  local function inner() error("boom in the worker") end
  local w = shm.spawn(function() inner() end)
  local ok, err = w:join()
  lu.assertFalse(ok)
  lu.assertStrContains(err, "luashm: worker " .. w.pid .. ": ")
  lu.assertStrContains(err, "test_worker.lua")
  lu.assertStrContains(err, "boom in the worker")
  lu.assertStrContains(err, "stack traceback:")
  lu.assertStrContains(err, "in upvalue 'inner'")
  lu.assertNotStrContains(err, "luashm: luashm:")
  -- The traceback shows the worker's frames only, not the parent's caller of spawn.
  lu.assertNotStrContains(err, "in function 'shm.spawn'")
end

function TestSpawn:test_a_luashm_error_is_prefixed_once()
  local ok, err = shm.spawn(function() return shm.attach("luashm_nosuchblock0000") end):join()
  lu.assertFalse(ok)
  lu.assertStrContains(err, ": attach 'luashm_nosuchblock0000': no such block")
  lu.assertEquals(select(2, err:gsub("luashm: ", "")), 1)
end

function TestSpawn:test_error_objects_that_are_not_strings()
  local ok, err = shm.spawn(function() error({ code = 1 }) end):join()
  lu.assertFalse(ok)
  lu.assertStrContains(err, "(error object is a table value)")
end

function TestSpawn:test_an_unsendable_result_is_the_workers_error()
  local ok, err = shm.spawn(function() return 1, print end):join()
  lu.assertFalse(ok)
  lu.assertStrContains(err, "luashm: worker ")
  lu.assertStrContains(err, "function")
end

function TestSpawn:test_killed_worker_names_the_signal()
  local w = shm.spawn(spin)
  lu.assertTrue(w:running())
  lu.assertTrue(w:kill(9))
  lu.assertEquals({ w:join() }, { false, "luashm: worker " .. w.pid .. ": killed by signal 9 (Killed)" })
  lu.assertFalse(w:running())
  local t = shm.spawn(spin)
  lu.assertTrue(t:kill()) -- SIGTERM by default
  lu.assertEquals(select(2, t:join()), "luashm: worker " .. t.pid .. ": killed by signal 15 (Terminated)")
  local i = shm.spawn(spin)
  lu.assertTrue(i:kill("SIGINT"))
  lu.assertStrContains(select(2, i:join()), "killed by signal 2 (Interrupt)")
end

function TestSpawn:test_kill_after_the_end_signals_nobody()
  local w = shm.spawn(function() return 1 end)
  lu.assertTrue((w:join()))
  lu.assertFalse(w:kill(9)) -- the pid may belong to another process by now
end

function TestSpawn:test_kill_argument_errors()
  local w = shm.spawn(spin)
  H.assert_error({ "luashm: kill: unknown signal 'NOPE'" }, w.kill, w, "NOPE")
  H.assert_error({ "luashm: kill: 99999 is not a signal number" }, w.kill, w, 99999)
  w:kill(9)
  w:join()
end

function TestSpawn:test_exit_status_is_reported()
  -- (LuaUnit wraps os.exit in this process; a script worker has the real one.)
  local file = tmpscript("os.exit(...)")
  local w = shm.spawn(file, 3)
  lu.assertEquals({ w:join() },
    { false, "luashm: worker " .. w.pid .. ": exited with status 3 without returning results" })
  -- os.exit(true) is a success without results.
  lu.assertEquals({ shm.spawn(file, true):join() }, { true })
  os.remove(file)
end

function TestSpawn:test_join_timeout_then_kill()
  local w = shm.spawn(spin)
  local t0 = shm.now()
  lu.assertEquals({ w:join(0.2) }, { nil, "timeout" })
  lu.assertTrue(shm.now() - t0 >= 0.19)
  lu.assertEquals({ w:join(0) }, { nil, "timeout" })
  lu.assertTrue(w:running())
  w:kill(9)
  lu.assertFalse((w:join(5)))
  H.assert_error({ "luashm: join: timeout must be a number of seconds >= 0, not -1" }, w.join, w, -1)
end

function TestSpawn:test_zombies_are_reaped()
  local w = shm.spawn(function() return 1 end)
  w:join()
  lu.assertNil(io.open("/proc/" .. w.pid .. "/stat"))
  -- A worker nobody joins is collected by the next spawn once it has ended.
  local lost = shm.spawn(function() end).pid
  lu.assertTrue(wait_until(function()
    local f = io.open("/proc/" .. lost .. "/stat")
    if not f then return true end
    f:close()
    shm.spawn(function() end):join()
    return false
  end))
end

function TestSpawn:test_close_stops_a_running_worker()
  local pid
  do
    local w <close> = shm.spawn(spin)
    pid = w.pid
    lu.assertTrue(H.alive(pid))
  end
  lu.assertNil(io.open("/proc/" .. pid .. "/stat")) -- killed and reaped
end

function TestSpawn:test_a_child_cannot_wait_for_its_siblings()
  local sibling = shm.spawn(spin)
  local ok, err = shm.spawn(function() return sibling:join() end):join()
  lu.assertFalse(ok)
  lu.assertStrContains(err, "join: worker " .. sibling.pid .. " is not a child of this process")
  sibling:kill(9)
  sibling:join()
end

function TestSpawn:test_workers_of_workers()
  local ok, v = shm.spawn(function()
    local w = shm.spawn(function() return "grandchild" end)
    return select(2, w:join())
  end):join()
  lu.assertTrue(ok)
  lu.assertEquals(v, "grandchild")
end

function TestSpawn:test_bad_arguments()
  H.assert_error({ "bad argument #1 to '", "spawn'", "function or script path expected" }, shm.spawn, 42)
  H.assert_error({ "luashm: spawn '/nonexistent/x.lua': No such file or directory" }, shm.spawn,
    "/nonexistent/x.lua")
end

TestScript = {}

function TestScript:test_fresh_interpreter_with_luashm_args_and_results()
  YOU_SHOULD_NOT_SEE_THIS = true
  local b = shm.create(32)
  b:write(0, "hello")
  local file = tmpscript([[
    local n, blk, t = ...
    return n * 2, blk:read(0, 5), t.k, YOU_SHOULD_NOT_SEE_THIS == nil, type(shm.create), arg[0], #arg
  ]])
  local w = shm.spawn(file, 21, b, { k = "v" })
  lu.assertEquals({ w:join() }, { true, 42, "hello", "v", true, "function", file, 3 })
  YOU_SHOULD_NOT_SEE_THIS = nil
  os.remove(file)
  b:unlink()
  b:close()
end

function TestScript:test_script_errors_and_syntax_errors()
  local file = tmpscript("local x = ...\nerror('script says ' .. x)\n")
  local w = shm.spawn(file, "no")
  local ok, err = w:join()
  lu.assertFalse(ok)
  lu.assertStrContains(err, "luashm: worker " .. w.pid .. ": ")
  lu.assertStrContains(err, ":2: script says no")
  lu.assertStrContains(err, "stack traceback:")
  lu.assertStrContains(err, "in main chunk")
  os.remove(file)
  file = tmpscript("this is not lua")
  ok, err = shm.spawn(file):join()
  lu.assertFalse(ok)
  lu.assertStrContains(err, "syntax error")
  os.remove(file)
end

function TestScript:test_arguments_go_through_the_codec()
  local file = tmpscript("return 1")
  H.assert_error({ "luashm: spawn: ", "function" }, shm.spawn, file, print)
  os.remove(file)
end

-- Issue 20: every forked worker draws its own random stream (Python reseeds random after fork;
-- a shared stream silently corrupts simulations).
local function draws(n)
  local t = {}
  for i = 1, n do t[i] = math.random(1 << 40) end
  return table.concat(t, ",")
end

local all_distinct = H.distinct

function TestSpawn:test_each_spawned_function_draws_its_own_random_stream()
  local ws, streams = {}, { draws(4) }
  for i = 1, 4 do ws[i] = shm.spawn(draws, 4) end
  for i = 1, 4 do
    local ok, s = ws[i]:join()
    lu.assertTrue(ok, s)
    streams[#streams + 1] = s
  end
  lu.assertTrue(all_distinct(streams), table.concat(streams, "\n"))
end

function TestScript:test_each_script_worker_draws_its_own_random_stream()
  -- A fresh state seeds itself from the clock and an address, which forked siblings share.
  local file = tmpscript("local t = {} for i = 1, 4 do t[i] = math.random(1 << 40) end "
    .. "return table.concat(t, ',')")
  local ws, streams = {}, {}
  for i = 1, 4 do ws[i] = shm.spawn(file) end
  for i = 1, 4 do
    local ok, s = ws[i]:join()
    lu.assertTrue(ok, s)
    streams[i] = s
  end
  os.remove(file)
  lu.assertTrue(all_distinct(streams), table.concat(streams, "\n"))
end

-- shm.wait (issue 20): the first worker of a sequence to end, each reported once.
TestWait = {}

local function sleeper(s)
  return shm.spawn(function() os.execute("sleep " .. s) return s end)
end

function TestWait:test_short_sleeper_first_each_once_then_an_error()
  local long, short = sleeper(0.6), sleeper(0.1)
  local ws = { long, short }
  local t0 = shm.now()
  local w, ok, v = shm.wait(ws)
  lu.assertEquals(w, short)
  lu.assertEquals({ ok, v }, { true, 0.1 })
  lu.assertTrue(shm.now() - t0 < 0.5)
  w, ok, v = shm.wait(ws)
  lu.assertEquals(w, long)
  lu.assertEquals({ ok, v }, { true, 0.6 })
  H.assert_error({ "luashm: wait: every worker of the sequence was already joined" }, shm.wait, ws)
  -- reported means joined: a join still gives the outcome again
  lu.assertEquals({ short:join() }, { true, 0.1 })
end

function TestWait:test_timeout_form()
  local w = sleeper(0.5)
  local t0 = shm.now()
  lu.assertEquals({ shm.wait({ w }, 0.05) }, { nil, "timeout" })
  lu.assertTrue(shm.now() - t0 < 0.4)
  lu.assertEquals({ shm.wait({ w }, 0) }, { nil, "timeout" })
  local got, ok = shm.wait({ w }, 5)
  lu.assertEquals(got, w)
  lu.assertTrue(ok)
end

-- A timeout of 0 looks at what already came: a worker that ended is found, not "timeout".
function TestWait:test_a_zero_timeout_finds_a_worker_that_ended()
  local w = shm.spawn(function() return "done" end)
  local w2 = shm.spawn(function() return "also" end)
  os.execute("sleep 0.2")
  lu.assertEquals({ shm.wait({ w }, 0) }, { w, true, "done" })
  lu.assertEquals({ w2:join(0) }, { true, "also" })
end

function TestWait:test_a_failure_and_a_joined_worker_are_reported_right()
  local done = shm.spawn(function() return 1 end)
  lu.assertTrue((done:join()))
  local bad = shm.spawn(function() error("stage broke") end)
  local w, ok, err = shm.wait({ done, bad })
  lu.assertEquals(w, bad)
  lu.assertFalse(ok)
  lu.assertStrContains(err, "luashm: worker " .. bad.pid .. ": ")
  lu.assertStrContains(err, "stage broke")
  local k = shm.spawn(spin)
  k:kill(9)
  w, ok, err = shm.wait({ k })
  lu.assertEquals({ w, ok, err }, { k, false, "luashm: worker " .. k.pid .. ": killed by signal 9 (Killed)" })
end

function TestWait:test_bad_arguments()
  H.assert_error({ "luashm: wait: expected a non-empty sequence of Workers" }, shm.wait, {})
  H.assert_error({ "bad argument #1 to '", "table expected" }, shm.wait, nil)
  H.assert_error({ "luashm: wait: item 1 of the sequence is a table, not a Worker" }, shm.wait, { {} })
  local w = shm.spawn(function() return 1 end)
  H.assert_error({ "luashm: wait: timeout must be a number of seconds >= 0, not NaN" }, shm.wait,
    { w }, 0 / 0)
  H.assert_error({ "luashm: wait: timeout must be a number of seconds >= 0, not -1" }, shm.wait,
    { w }, -1)
  lu.assertTrue((w:join()))
  local ok, res, err = shm.spawn(function() return pcall(shm.wait, { w }) end):join()
  lu.assertTrue(ok)
  lu.assertFalse(res)
  lu.assertStrContains(err, "luashm: wait: worker " .. w.pid .. " is not a child of this process")
end

-- Issue 18.15: one timeout checker for every wait.
function TestSpawn:test_join_refuses_nan()
  local w = shm.spawn(function() return 1 end)
  H.assert_error({ "luashm: join: timeout must be a number of seconds >= 0, not NaN" }, w.join, w,
    0 / 0)
  lu.assertTrue((w:join()))
end

-- Issue 20: a dropped handle is collected, and its worker killed and reaped (no zombie); an
-- ended one is reaped too.
local function proc_state(pid)
  local f = io.open("/proc/" .. pid .. "/stat")
  if not f then return nil end
  local state = f:read("a"):match("^%d+ %b() (%a)")
  f:close()
  return state
end

function TestSpawn:test_no_zombie_after_dropping_handles()
  -- (made in a call of its own, so that no register of this frame still holds a handle)
  local running, ended = (function()
    return shm.spawn(spin).pid, shm.spawn(function() return 1 end).pid
  end)()
  lu.assertTrue(wait_until(function() return proc_state(ended) == "Z" end))
  collectgarbage()
  collectgarbage()
  lu.assertNil(proc_state(running))
  lu.assertNil(proc_state(ended))
end

-- Issue 18.15 / 16: a frame's length is 32 bits; a reply too big to frame is refused with a
-- clear error, never sent truncated. LUASHM_FRAME_LIMIT lowers the limit so that the test does
-- not need 4 GiB.
function TestSpawn:test_a_result_too_big_for_a_frame_is_refused()
  local out, err, ok = H.run_code("LUASHM_FRAME_LIMIT=1000 " .. H.shell_quote(H.host), [[
    print(shm.spawn(function() return ("x"):rep(999 - 4) end):join())
    local ok, e = shm.spawn(function() return ("x"):rep(5000) end):join()
    print(ok, e)
    local p <close> = shm.pool(1)
    print(pcall(p.map, p, function(i) return i end, { ("y"):rep(5000) }))
    print(pcall(p.map, p, function(i) return ("z"):rep(5000) end, 1))
    print(#p:map(function(i) return i end, 3))
  ]])
  lu.assertTrue(ok, err)
  local lines = {}
  for l in out:gmatch("[^\n]+") do lines[#lines + 1] = l end
  lu.assertStrMatches(lines[1], "true\tx+")
  lu.assertStrContains(lines[2], "false\tluashm: worker ")
  lu.assertStrContains(lines[2], "more than a worker link's frame holds (1000 bytes)")
  lu.assertStrContains(lines[3], "false\tluashm: map: a chunk is ")
  lu.assertStrContains(lines[3], "pass a smaller chunksize")
  lu.assertStrContains(lines[4], "false\tluashm: map: item 1 failed: worker ")
  lu.assertStrContains(lines[4], "more than a worker link's frame holds")
  lu.assertEquals(lines[5], "3")
end

function TestSpawn:test_default_workers()
  lu.assertEquals(shm.default_workers(), tonumber(os.getenv("LUASHM_WORKERS")) or shm.cpus())
  local code = H.shell_quote("print(shm.default_workers())")
  local host = H.shell_quote(H.host)
  lu.assertEquals(H.sh("env -u LUASHM_WORKERS " .. host .. " -e " .. code), shm.cpus() .. "\n")
  lu.assertEquals(H.sh(host .. " -j 3 -e " .. code), "3\n")
  lu.assertEquals(H.sh("LUASHM_WORKERS=5 " .. host .. " -e " .. code), "5\n")
end

TestCpusPartition = {}

function TestCpusPartition:test_cpus()
  local n = shm.cpus()
  lu.assertEquals(math.type(n), "integer")
  lu.assertEquals(n, tonumber((H.sh("nproc"))))
end

function TestCpusPartition:test_partition_properties()
  for len = 0, 40 do
    for n = 1, 12 do
      local nextlo, sizes = 1, {}
      for rank = 1, n do
        local lo, hi = shm.partition(len, n, rank)
        lu.assertEquals(lo, nextlo) -- contiguous, in rank order, from 1
        lu.assertTrue(hi >= lo - 1)
        sizes[rank] = hi - lo + 1
        nextlo = hi + 1
      end
      lu.assertEquals(nextlo, len + 1) -- covers 1..len exactly
      table.sort(sizes)
      lu.assertTrue(sizes[n] - sizes[1] <= 1) -- balanced
    end
  end
  lu.assertEquals({ shm.partition(10, 3, 1) }, { 1, 4 })
  lu.assertEquals({ shm.partition(10, 3, 2) }, { 5, 7 })
  lu.assertEquals({ shm.partition(10, 3, 3) }, { 8, 10 })
  lu.assertEquals({ shm.partition(2, 3, 3) }, { 3, 2 }) -- empty: hi = lo - 1
  lu.assertEquals({ shm.partition(1 << 40, 2, 2) }, { (1 << 39) + 1, 1 << 40 })
end

-- Issue 18.15: hi used to be computed through lo + base, past math.maxinteger (signed overflow:
-- undefined behaviour, which the sanitizer build aborts on).
function TestCpusPartition:test_partition_of_maxinteger_does_not_overflow()
  lu.assertEquals({ shm.partition(math.maxinteger, 2, 1) }, { 1, 1 << 62 })
  lu.assertEquals({ shm.partition(math.maxinteger, 2, 2) }, { (1 << 62) + 1, math.maxinteger })
  lu.assertEquals({ shm.partition(math.maxinteger, 1, 1) }, { 1, math.maxinteger })
  local lo, hi = shm.partition(math.maxinteger, 3, 3)
  lu.assertEquals(hi, math.maxinteger)
  lu.assertTrue(lo > 0)
end

function TestCpusPartition:test_partition_errors()
  H.assert_error({ "luashm: partition: 0 parts (need at least 1)" }, shm.partition, 10, 0, 1)
  H.assert_error({ "luashm: partition: rank 4 is not in 1..3" }, shm.partition, 10, 3, 4)
  H.assert_error({ "luashm: partition: rank 0 is not in 1..3" }, shm.partition, 10, 3, 0)
  H.assert_error({ "luashm: partition: length -1 is negative" }, shm.partition, -1, 3, 1)
  H.assert_error({ "bad argument #2 to '", "partition'" }, shm.partition, 10, 1.5, 1)
end

TestHost = {}

local function host_sh(cmd)
  return H.sh(cmd .. " 2>&1")
end

function TestHost:test_default_worker_count_from_j_and_env()
  local code = H.shell_quote("print(#shm.parallel(nil, function(r) return r end))")
  local host = H.shell_quote(H.host)
  lu.assertEquals(host_sh("env -u LUASHM_WORKERS " .. host .. " -e " .. code), shm.cpus() .. "\n")
  lu.assertEquals(host_sh(host .. " -j 3 -e " .. code), "3\n")
  lu.assertEquals(host_sh("LUASHM_WORKERS=5 " .. host .. " -e " .. code), "5\n")
  lu.assertEquals(host_sh("LUASHM_WORKERS=5 " .. host .. " -j 2 -e " .. code), "2\n")
  lu.assertStrContains(host_sh("LUASHM_WORKERS=abc " .. host .. " -e " .. code),
    "luashm: LUASHM_WORKERS='abc' is not a worker count from 1 to 4096")
  lu.assertEquals(host_sh(host .. " -j 3 -e " ..
    H.shell_quote("local p <close> = shm.pool(); print(p.size)")), "3\n")
end

function TestHost:test_output_is_not_duplicated_by_fork()
  local out = H.luashm([[
    io.write("before ")
    shm.spawn(function() io.write("child line\n") io.write("partial") end):join()
    io.write("after\n")
  ]])
  lu.assertEquals(out, "before child line\npartialafter\n")
end

-- Starts the host on a script in its own process group that writes its workers' pids to a
-- file, one per line, then waits; returns the host's pid and the workers' pids.
local started_hosts = {}

-- A host that a failed assertion left running is killed (its workers follow: PDEATHSIG).
function TestHost:tearDown()
  for _, host in ipairs(started_hosts) do
    if H.alive(host) then os.execute("kill -KILL " .. host) end
  end
  started_hosts = {}
end

local function start_host(nworkers, extra)
  local pidfile = os.tmpname()
  local aux = pidfile .. ".aux" -- for extra code: the global AUX
  local script = tmpscript(("AUX = %q\n"):format(aux) .. ([[
    local ws, f = {}, assert(io.open(%q, "w"))
    for i = 1, %d do ws[i] = shm.spawn(function() while true do end end) f:write(ws[i].pid, "\n") end
    f:write("ready\n")
    f:close()
    %s
    ws[1]:join()
  ]]):format(pidfile, nworkers, extra or ""))
  local host = H.sh("setsid " .. H.shell_quote(H.host) .. " " .. script ..
    " >/dev/null 2>&1 & echo $!"):match("%d+")
  started_hosts[#started_hosts + 1] = tonumber(host)
  local pids
  lu.assertTrue(wait_until(function()
    local f = io.open(pidfile)
    local text = f and f:read("a") or ""
    if f then f:close() end
    if not text:find("ready") then return false end
    pids = {}
    for p in text:gmatch("(%d+)\n") do pids[#pids + 1] = tonumber(p) end
    return true
  end, 10))
  os.remove(pidfile)
  os.remove(script)
  return tonumber(host), pids, aux
end

local function assert_all_gone(host, pids)
  lu.assertTrue(wait_until(function() return not H.alive(host) end), "the host survived")
  for _, p in ipairs(pids) do
    lu.assertTrue(wait_until(function() return not H.alive(p) end), "worker " .. p .. " survived")
  end
end

function TestHost:test_no_worker_survives_sigterm_of_the_host()
  local host, pids = start_host(3)
  for _, p in ipairs(pids) do lu.assertTrue(H.alive(p)) end
  os.execute("kill -TERM " .. host)
  assert_all_gone(host, pids)
end

function TestHost:test_no_worker_survives_sigkill_of_the_host()
  local host, pids = start_host(2)
  os.execute("kill -KILL " .. host)
  assert_all_gone(host, pids)
end

function TestHost:test_sigint_interrupts_a_blocked_join_and_stops_the_workers()
  local host, pids = start_host(2)
  os.execute("kill -INT " .. host) -- the host alone: its workers are stopped by the host
  assert_all_gone(host, pids)
end

function TestHost:test_ctrl_c_reaches_the_whole_process_group()
  local host, pids = start_host(2)
  os.execute("kill -INT -" .. host) -- what the terminal does: the host's whole group
  assert_all_gone(host, pids)
end

function TestHost:test_host_exit_stops_running_workers()
  local host, pids = start_host(2, "os.exit(0, true)")
  assert_all_gone(host, pids)
end

function TestHost:test_sigkill_of_the_host_stops_workers_of_workers()
  -- Each worker runs a worker of its own; killing the host leaves neither level behind.
  local host, pids, aux = start_host(0, [[
    local f = assert(io.open(AUX, "w"))
    for i = 1, 2 do
      ws[i] = shm.spawn(function()
        local g = shm.spawn(function() while true do end end)
        local f = assert(io.open(AUX .. i, "w"))
        f:write(g.pid, "\n")
        f:close()
        while true do end
      end)
      f:write(ws[i].pid, "\n")
    end
    f:close()
  ]])
  lu.assertEquals(pids, {})
  local all = {}
  lu.assertTrue(wait_until(function()
    all = {}
    local f = io.open(aux)
    if not f then return false end
    for p in f:read("a"):gmatch("(%d+)\n") do all[#all + 1] = tonumber(p) end
    f:close()
    for i = 1, 2 do
      local g = io.open(aux .. i)
      if not g then return false end
      local p = g:read("n")
      g:close()
      if not p then return false end
      all[#all + 1] = p
    end
    return #all == 4
  end, 10))
  os.execute("kill -KILL " .. host)
  assert_all_gone(host, all)
  os.remove(aux)
  for i = 1, 2 do os.remove(aux .. i) end
end

os.exit(lu.LuaUnit.run())
