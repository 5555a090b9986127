-- Barriers (API.md "Synchronization"): rounds across processes, the serial party, timeouts
-- that withdraw, and what a party's death does (an error naming it, never a silent hang).
local lu = require "luaunit"
local H = require "helper"
local shm = require "luashm"

local start = H.start

-- A party that waits once on the barrier arg[1] (so it is registered), prints its pid, then
-- blocks on the gate lock arg[2] that the test holds, until the test kills it.
local PARTY_THEN_BLOCK = [[
local bar, gate = shm.open(arg[1]), shm.open(arg[2])
assert(bar:wait(20))
io.write(io.open("/proc/self/stat"):read("n"), "\n") io.flush()
gate:acquire()
]]

TestBarrier = {}
H.keeps(TestBarrier)

function TestBarrier:test_one_party_and_tostring()
  local bar = self:keep(shm.barrier(1))
  lu.assertStrMatches(bar.name, "luashm_" .. ("%x"):rep(16))
  lu.assertEquals(bar:parties(), 1)
  lu.assertEquals({ bar:wait() }, { true, true })
  lu.assertEquals({ bar:wait(0) }, { true, true })
  lu.assertEquals(tostring(bar), "luashm.Barrier '" .. bar.name .. "' (1 parties, 0 waiting)")
end

function TestBarrier:test_bad_arguments()
  for _, n in ipairs({ 0, -1, 4097 }) do
    H.assert_error({ "luashm: barrier: parties " .. n .. " is not between 1 and 4096" }, shm.barrier, n)
  end
  H.assert_raises(shm.barrier)
  H.assert_raises(shm.barrier, "x")
  H.assert_raises(shm.barrier, 1.5)
  H.assert_raises(shm.barrier, 2, "notatable")
  local bar = self:keep(shm.barrier(2))
  H.assert_error({ "luashm: wait '" .. bar.name .. "': timeout must be a number of seconds >= 0, not -1" },
    bar.wait, bar, -1)
  H.assert_raises(bar.wait, bar, "soon")
  for _, v in ipairs({ 1, "x", {}, io.stdout }) do H.assert_raises(bar.wait, v) end
end

function TestBarrier:test_chosen_name_open_and_use_after_close()
  local name = "luashm_test_barrier_" .. math.random(1e9)
  local bar = self:keep(shm.barrier(3, { name = name }))
  lu.assertEquals(bar.name, name)
  local o = shm.open(name)
  lu.assertStrContains(tostring(o), "luashm.Barrier '" .. name .. "' (3 parties")
  lu.assertEquals(o:parties(), 3)
  o:close()
  o:close()
  lu.assertEquals(tostring(o), "luashm.Barrier '" .. name .. "' (closed)")
  H.assert_error({ "luashm: barrier '" .. name .. "' is closed" }, o.wait, o)
  H.assert_error({ "is closed" }, o.parties, o)
  lu.assertTrue(H.in_shm(name), "close must not unlink")
end

function TestBarrier:test_open_rejects_a_corrupt_barrier()
  local bar = self:keep(shm.barrier(2))
  local b <close> = shm.attach(bar.name)
  b:pack(64 + 40 + 4, "<I4", 100000) -- parties: more than the block holds
  lu.assertStrContains(tostring(shm.open(bar.name)), "luashm.Block")
  b:pack(64 + 40 + 4, "<I4", 2)
  b:write(64, ("\255"):rep(40)) -- the mutex
  H.assert_error({ "luashm: open '" .. bar.name .. "': not a valid barrier block" }, shm.open, bar.name)
end

-- Timeouts are honoured and withdraw the party: the barrier stays usable.
function TestBarrier:test_timeout_withdraws()
  local bar = self:keep(shm.barrier(2))
  local t0 = shm.now()
  lu.assertEquals({ bar:wait(0.3) }, { false })
  lu.assertTrue(shm.now() - t0 >= 0.29, "returned before the timeout")
  lu.assertEquals({ bar:wait(0) }, { false })
  lu.assertStrContains(tostring(bar), "0 waiting")
  local p = start("local bar = shm.open(arg[1]) local ok, s = bar:wait(20) print(ok, s)", bar.name)
  local ok, serial = bar:wait(20)
  lu.assertTrue(ok)
  local theirs = p:read("a")
  lu.assertTrue(p:close())
  lu.assertEquals(#theirs > 0 and theirs:match("^true\t") ~= nil, true)
  lu.assertNotEquals(serial, theirs == "true\ttrue\n", "exactly one party is the serial one")
end

-- Three processes (this one and two hosts), 20 rounds: in each round every party writes the
-- round number into its slot, waits, and then sees every slot at that round; one serial party
-- per round.
function TestBarrier:test_rounds_across_processes()
  local bar = self:keep(shm.barrier(3))
  local b = self:keep(shm.create(3 * 8))
  local code = [[
local barname, bname, me = ...
local bar, b = shm.open(barname), shm.attach(bname)
local serials = {}
for r = 1, 20 do
  b:pack(8 * (me - 1), "<i8", r)
  local ok, serial = bar:wait(30)
  assert(ok, "timeout")
  for k = 0, 2 do assert(b:unpack(8 * k, "<i8") == r, "slot " .. k .. " behind in round " .. r) end
  serials[r] = serial and "1" or "0"
  assert(bar:wait(30)) -- nobody writes round r+1 before everyone has checked round r
end
return table.concat(serials)
]]
  local child = "io.write(load(arg[4])(arg[1], arg[2], tonumber(arg[3])))"
  local ps = { start(child, bar.name, b.name, 2, code), start(child, bar.name, b.name, 3, code) }
  local my = load(code)(bar.name, b.name, 1)
  local all = { my }
  for i, p in ipairs(ps) do
    all[i + 1] = p:read("a")
    lu.assertTrue(p:close())
  end
  for r = 1, 20 do
    local n = 0
    for _, s in ipairs(all) do n = n + tonumber(s:sub(r, r)) end
    lu.assertEquals(n, 1, "round " .. r .. " has one serial party")
  end
end

-- A registered party killed between rounds: the next wait raises naming it, well before its
-- timeout, and so does every later wait (the barrier stays broken).
function TestBarrier:test_party_killed_between_rounds()
  local bar, gate = self:keep(shm.barrier(2)), self:keep(shm.lock())
  gate:acquire()
  local p = start(PARTY_THEN_BLOCK, bar.name, gate.name)
  lu.assertTrue(bar:wait(20))
  local pid = assert(math.tointeger(tonumber(p:read("l"))))
  lu.assertTrue(os.execute("kill -9 " .. pid))
  p:close()
  local t0 = shm.now()
  H.assert_error({ "luashm: wait '" .. bar.name .. "': a party died (pid " .. pid .. ")" }, bar.wait, bar, 20)
  lu.assertTrue(shm.now() - t0 < 10, "the death was noticed, not timed out")
  H.assert_error({ "party died" }, bar.wait, bar)
  lu.assertStrContains(tostring(bar), "broken")
end

-- A party killed while it waits: the others are told, not left hanging.
function TestBarrier:test_party_killed_while_waiting()
  local bar = self:keep(shm.barrier(3))
  local p = start([[
local bar = shm.open(arg[1])
io.write(io.open("/proc/self/stat"):read("n"), "\n") io.flush()
bar:wait(30)
]], bar.name)
  local pid = assert(math.tointeger(tonumber(p:read("l"))))
  local t0 = shm.now()
  while not tostring(bar):find("1 waiting") and shm.now() - t0 < 10 do end
  lu.assertStrContains(tostring(bar), "1 waiting")
  lu.assertTrue(os.execute("kill -9 " .. pid))
  p:close()
  H.assert_error({ "party died (pid " .. pid .. ")" }, bar.wait, bar, 20)
end

-- A party that dies before it ever waited is unknown to the barrier: a timeout is what tells.
function TestBarrier:test_party_dead_before_arriving_times_out()
  local bar = self:keep(shm.barrier(2))
  local out, err, ok = H.luashm("local bar = shm.open(arg[1]) os.exit(3)", bar.name)
  lu.assertNotEquals(ok, true, out .. err)
  lu.assertEquals({ bar:wait(0.2) }, { false })
end

-- Parties that finished and exited without closing their handles (a worker's usual end) are
-- replaced by new ones: not a death.
function TestBarrier:test_finished_parties_are_replaced()
  local bar = self:keep(shm.barrier(2))
  local code = "local bar = shm.open(arg[1]) assert(bar:wait(20)) assert(bar:wait(20)) os.exit(0, false)"
  for _ = 1, 2 do
    local a, b = start(code, bar.name), start(code, bar.name)
    lu.assertTrue(a:close())
    lu.assertTrue(b:close())
  end
  local p = start(code, bar.name)
  lu.assertTrue(bar:wait(20))
  lu.assertTrue(bar:wait(20))
  lu.assertTrue(p:close())
end

-- Workers of shm.parallel, inheriting the handle by fork, one parallel after another.
function TestBarrier:test_parallel_workers_round_after_round()
  local bar = self:keep(shm.barrier(3))
  local b = self:keep(shm.create(3 * 8))
  for _ = 1, 2 do
    local res = shm.parallel(3, function(rank)
      local serials = 0
      for r = 1, 10 do
        b:pack(8 * (rank - 1), "<i8", r)
        local ok, serial = bar:wait(30)
        assert(ok, "timeout")
        for k = 0, 2 do assert(b:unpack(8 * k, "<i8") == r) end
        if serial then serials = serials + 1 end
        assert(bar:wait(30))
      end
      return serials
    end)
    lu.assertEquals(res[1] + res[2] + res[3], 10, "one serial party per round")
  end
end

function TestBarrier:test_more_processes_than_parties()
  local bar, gate = self:keep(shm.barrier(1)), self:keep(shm.lock())
  gate:acquire()
  local p = start(PARTY_THEN_BLOCK, bar.name, gate.name)
  lu.assertNotNil(p:read("l"))
  H.assert_error({ "luashm: wait '" .. bar.name .. "': more than 1 processes wait on it" }, bar.wait, bar, 1)
  gate:release()
  lu.assertTrue(p:close())
end

function TestBarrier:test_ref_and_reopener()
  local bar = self:keep(shm.barrier(2))
  if shm.encode then
    local back <close> = shm.decode(shm.encode(bar))
    lu.assertStrContains(tostring(back), "luashm.Barrier '" .. bar.name .. "'")
  end
end

os.exit(lu.LuaUnit.run())
