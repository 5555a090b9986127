-- SIGINT (API.md "Workers v2", interrupting): a host blocked in any luashm call (recv, send,
-- acquire, bar:wait, join, shm.wait, map) gets the error "luashm: interrupted" and the object
-- stays usable (no lock left held, no message lost or half-sent, the worker still joinable); a
-- script without a pcall stops and cleans up; under stock lua5.4 the call is interrupted too.
-- Each test runs a host on a script that says when it is about to block; the test then sends
-- SIGINT to the host alone (a terminal's Ctrl-C would also reach the workers).
local lu = require "luaunit"
local H = require "helper"
local shm = require "luashm"

local slurp, lines_of = H.slurp, H.lines

-- The prelude every script gets: READY(what) records this process's pid and the step it is
-- about to block in, in the file named by arg[1].
local PRELUDE = [[
local ready_file = arg[1]
local stat = io.open("/proc/self/stat")
local PID = stat:read("n")
stat:close()
function READY(what)
  local f = io.open(ready_file, "a")
  f:write(PID, " ", what, "\n")
  f:close()
end
]]

-- Runs code with runner ("luashm" host or stock lua5.4), interrupting it once per READY step
-- (0.2 s after the step is announced). Returns stdout, stderr, the exit status, and the steps.
local function run_interrupted(code, runner)
  local dir = os.tmpname()
  os.remove(dir)
  assert(os.execute("mkdir " .. dir))
  local script, ready = dir .. "/script.lua", dir .. "/ready"
  local f = assert(io.open(script, "w"))
  f:write(PRELUDE, code)
  f:close()
  local cmd = ("(%s %s %s > %s/out 2> %s/err; echo $? > %s/status) &"):format(
    runner or H.shell_quote(H.host), script, ready, dir, dir, dir)
  os.execute(cmd)
  local sent, deadline = 0, shm.now() + 30
  while slurp(dir .. "/status") == "" and shm.now() < deadline do
    local steps = lines_of(slurp(ready))
    if #steps > sent then
      H.sleep(0.2)
      os.execute("kill -INT " .. steps[#steps]:match("^%d+"))
      sent = #steps
    end
    H.sleep(0.02)
  end
  local status = tonumber(slurp(dir .. "/status"))
  local out, err, steps = slurp(dir .. "/out"), slurp(dir .. "/err"), lines_of(slurp(ready))
  os.execute("rm -rf " .. dir)
  lu.assertNotNil(status, "the host did not end; stderr: " .. err)
  return out, err, status, steps
end

TestInterrupt = {}

function TestInterrupt:test_every_blocking_call_is_interrupted_and_its_object_usable()
  local out, err, status = run_interrupted([[
    local m <close> = shm.manager()
    local ch, full, lk, bar = m:channel(), m:channel({ capacity = 64 }), m:lock(), m:barrier(2)
    local p <close> = shm.pool(2)
    local function try(what, f, ...)
      READY(what)
      local t0 = shm.now()
      local ok, e = pcall(f, ...)
      print(what, ok, e, shm.now() - t0 < 5)
    end
    try("recv", ch.recv, ch)
    ch:send("after recv")
    print(ch:recv())
    full:send(("x"):rep(40))
    try("send", full.send, full, ("y"):rep(40))
    print(full:recv(), full:recv(0)) -- the first message whole, the interrupted one not sent
    local holder = shm.spawn(function() lk:acquire() ch:send("held") while true do end end)
    ch:recv()
    try("acquire", lk.acquire, lk)
    holder:kill(9)
    holder:join()
    print("acquire after", lk:acquire())
    lk:release()
    try("bar:wait", bar.wait, bar)
    local partner = shm.spawn(function() return (bar:wait()) end)
    print("bar:wait after", (bar:wait()), select(2, partner:join()))
    local sleeper = shm.spawn(function() ch:recv() return "woken" end)
    try("join", sleeper.join, sleeper)
    try("wait", shm.wait, { sleeper })
    ch:send("go")
    print("join after", sleeper:join())
    try("map", p.map, p, function(i) ch:recv() return i end, 2)
    print("map after", table.concat(p:map(function(i) return i * 2 end, 3), ","))
  ]])
  lu.assertEquals(status, 0, err)
  lu.assertEquals(lines_of(out), {
    "recv\tfalse\tluashm: interrupted\ttrue",
    "after recv",
    "send\tfalse\tluashm: interrupted\ttrue",
    ("x"):rep(40) .. "\tnil\ttimeout",
    "acquire\tfalse\tluashm: interrupted\ttrue",
    "acquire after\ttrue\towner died",
    "bar:wait\tfalse\tluashm: interrupted\ttrue",
    "bar:wait after\ttrue\ttrue",
    "join\tfalse\tluashm: interrupted\ttrue",
    "wait\tfalse\tluashm: interrupted\ttrue",
    "join after\ttrue\twoken",
    "map\tfalse\tluashm: interrupted\ttrue",
    "map after\t2,4,6",
  })
end

-- Without a pcall the script stops, as it did before, and cleans up: its manager's blocks are
-- unlinked and its workers are gone.
function TestInterrupt:test_a_script_without_pcall_stops_and_cleans_up()
  local before = H.shm_names()
  local out, err, status = run_interrupted([[
    local m <close> = shm.manager()
    local ch = m:channel()
    local w = shm.spawn(function() while true do end end)
    print(w.pid, ch.name)
    io.stdout:flush()
    READY("recv")
    ch:recv()
    print("not reached")
  ]])
  lu.assertEquals(status, 1)
  lu.assertStrContains(err, "luashm: interrupted")
  local pid, name = out:match("^(%d+)\t(%S+)\n$")
  lu.assertNotNil(pid, out)
  lu.assertFalse(shm.exists(name))
  lu.assertNil(io.open("/proc/" .. pid .. "/stat"))
  lu.assertEquals(H.shm_names(), before)
end

-- Stock lua5.4 (lua.c's handler only sets a hook, which cannot run inside a C call): the
-- blocking call is interrupted all the same (a temporary handler chained in front of lua.c's),
-- and lua.c's hook then stops the script, as any Ctrl-C does there.
function TestInterrupt:test_stock_lua_is_interrupted_too()
  local out, err, status = run_interrupted([[
    local shm = require "luashm"
    local ch = shm.channel({ track = false })
    ch:unlink()
    READY("recv")
    local t0 = shm.now()
    print(pcall(ch.recv, ch))
    print(shm.now() - t0 < 5)
  ]], H.stock_lua())
  lu.assertNotEquals(status, 0)
  lu.assertStrContains(err, "interrupted")
  lu.assertNotStrContains(out, "true")
end

os.exit(lu.LuaUnit.run())
