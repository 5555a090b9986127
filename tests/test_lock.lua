-- Locks (API.md "Synchronization"): robust process-shared mutexes. Exact totals under
-- contention from several processes, a holder killed by SIGKILL, timeouts, release errors,
-- guards, use after close, shm.open.
local lu = require "luaunit"
local H = require "helper"
local shm = require "luashm"

local start = H.start

-- Runs fn(rank, n, ...) in n processes at once (shm.parallel when the workers have landed, else
-- n luashm hosts running `code`, whose chunk gets rank, n, ... as arguments); returns their
-- outputs (the hosts' stdout) or shm.parallel's results.
local function parallel(n, code, ...)
  if shm.parallel then
    local fn = assert(load(code))
    return shm.parallel(n, fn, ...)
  end
  local ps, out = {}, {}
  for r = 1, n do ps[r] = start("local rank, n = tonumber(arg[1]), tonumber(arg[2])\n" ..
      "local f = load(arg[3])\nio.write(tostring(f(rank, n, table.unpack(arg, 4))))", r, n, code, ...) end
  for r = 1, n do
    out[r] = ps[r]:read("a")
    lu.assertTrue(ps[r]:close(), "worker " .. r .. " failed")
  end
  return out
end

-- A child that holds a lock until the test lets it go: it acquires arg[1], prints its pid,
-- then waits on the gate lock (arg[2]) that the test holds. The test releases the gate to let
-- it continue, or kills it. It ends with os.exit, which does not close the Lua state, so it
-- exits still holding arg[1] (with arg[3] = "close" it closes its state, and so releases it).
local HOLDER = [[
local lk, gate = shm.open(arg[1]), shm.open(arg[2])
lk:acquire()
io.write(io.open("/proc/self/stat"):read("n"), "\n") io.flush()
gate:acquire()
os.exit(0, arg[3] == "close")
]]

TestLock = {}
H.keeps(TestLock)

function TestLock:test_acquire_release_and_tostring()
  local lk = self:keep(shm.lock())
  lu.assertStrMatches(lk.name, "luashm_" .. ("%x"):rep(16))
  lu.assertTrue(H.in_shm(lk.name))
  lu.assertEquals(tostring(lk), "luashm.Lock '" .. lk.name .. "' (unlocked)")
  lu.assertEquals({ lk:acquire() }, { true })
  lu.assertEquals(tostring(lk), "luashm.Lock '" .. lk.name .. "' (locked)")
  lk:release()
  lu.assertEquals({ lk:acquire(0) }, { true })
  lk:release()
  lu.assertEquals({ lk:acquire(1.5) }, { true })
  lk:release()
end

function TestLock:test_chosen_name_and_untracked()
  local name = "luashm_test_lock_" .. math.random(1e9)
  local lk = self:keep(shm.lock({ name = name, track = false }))
  lu.assertEquals(lk.name, name)
  H.assert_error({ "luashm: create '" .. name .. "'", "already exists" }, shm.lock, { name = name })
  H.assert_raises(shm.lock, "notatable")
  H.assert_raises(shm.lock, { name = 5 })
  H.assert_error({ "names may not contain '/'" }, shm.lock, { name = "a/b" })
end

function TestLock:test_release_errors()
  local lk = self:keep(shm.lock())
  local msg = "luashm: release '" .. lk.name .. "': lock is not held by this process"
  H.assert_error({ msg }, lk.release, lk)
  lk:acquire()
  lk:release()
  H.assert_error({ msg }, lk.release, lk)
  -- held by another process: still not ours to release
  local gate = self:keep(shm.lock())
  gate:acquire()
  local p = start(HOLDER, lk.name, gate.name)
  lu.assertNotNil(p:read("l"))
  H.assert_error({ msg }, lk.release, lk)
  lu.assertEquals({ lk:acquire(0) }, { false })
  gate:release()
  lu.assertTrue(p:close())
end

function TestLock:test_not_recursive()
  local lk = self:keep(shm.lock())
  lk:acquire()
  H.assert_error({ "luashm: acquire '" .. lk.name .. "': lock is already held by this process" },
    lk.acquire, lk)
  H.assert_error({ "already held" }, lk.acquire, lk, 0.1)
  H.assert_error({ "already held" }, lk.guard, lk)
  lk:release()
end

function TestLock:test_timeouts_honoured()
  local lk, gate = self:keep(shm.lock()), self:keep(shm.lock())
  gate:acquire()
  local p = start(HOLDER, lk.name, gate.name)
  lu.assertNotNil(p:read("l"))
  lu.assertEquals({ lk:acquire(0) }, { false })
  local t0 = shm.now()
  lu.assertEquals({ lk:acquire(0.3) }, { false })
  lu.assertTrue(shm.now() - t0 >= 0.29, "returned before the timeout")
  t0 = shm.now()
  lu.assertEquals({ lk:acquire(0.01) }, { false })
  lu.assertTrue(shm.now() - t0 >= 0.009)
  gate:release()
  lu.assertTrue(p:close())
  -- the holder exited holding it: the next acquire says so
  lu.assertEquals({ lk:acquire(5) }, { true, "owner died" })
  lk:release()
  lu.assertEquals({ lk:acquire(0) }, { true })
  lk:release()
end

function TestLock:test_bad_timeouts()
  local lk = self:keep(shm.lock())
  H.assert_error({ "luashm: acquire '" .. lk.name .. "': timeout must be a number of seconds >= 0, not -1" },
    lk.acquire, lk, -1)
  H.assert_error({ "timeout must be a number of seconds >= 0, not NaN" }, lk.acquire, lk, 0 / 0)
  H.assert_raises(lk.acquire, lk, "soon")
  H.assert_raises(lk.acquire, lk, {})
  lu.assertEquals({ lk:acquire(math.huge) }, { true }) -- capped, not an overflow
  lk:release()
end

-- A holder killed by SIGKILL while holding it: the next acquire gets it, says "owner died",
-- and the lock works normally afterwards.
function TestLock:test_holder_killed_by_sigkill()
  local lk, gate = self:keep(shm.lock()), self:keep(shm.lock())
  gate:acquire()
  local p = start(HOLDER, lk.name, gate.name)
  local pid = assert(math.tointeger(tonumber(p:read("l"))))
  lu.assertEquals({ lk:acquire(0) }, { false })
  lu.assertTrue(os.execute("kill -9 " .. pid))
  p:close()
  lu.assertEquals({ lk:acquire(10) }, { true, "owner died" })
  lk:release()
  lu.assertEquals({ lk:acquire() }, { true })
  lk:release()
  lu.assertEquals({ lk:acquire(0) }, { true })
  lk:release()
  gate:release()
end

-- A holder that exits normally, closing its state, released the lock (closing a handle that
-- holds the lock releases it): no "owner died".
function TestLock:test_holder_closing_at_exit_releases()
  local lk, gate = self:keep(shm.lock()), self:keep(shm.lock())
  local p = start(HOLDER, lk.name, gate.name, "close")
  lu.assertNotNil(p:read("l"))
  lu.assertTrue(p:close())
  lu.assertEquals({ lk:acquire(0) }, { true })
  lk:release()
  lu.assertEquals({ gate:acquire(0) }, { true })
  gate:release()
end

function TestLock:test_blocking_acquire_waits_for_release()
  local lk = self:keep(shm.lock())
  local b = self:keep(shm.create(8))
  local p = start([[
local lk, b = shm.open(arg[1]), shm.attach(arg[2])
lk:acquire()
io.write("held\n") io.flush()
local t0 = shm.now() while shm.now() - t0 < 0.2 do end
b:write(0, "released")
lk:release()
]], lk.name, b.name)
  lu.assertEquals(p:read("l"), "held")
  lu.assertEquals({ lk:acquire() }, { true })
  lu.assertEquals(b:read(), "released", "acquired only after the holder's release")
  lk:release()
  lu.assertTrue(p:close())
end

-- 4 processes x 100k locked read-modify-write increments of one shared counter: exact total.
function TestLock:test_four_workers_exact_total()
  local lk = self:keep(shm.lock())
  local b = self:keep(shm.create(8))
  parallel(4, [[
local rank, n, lname, bname = ...
local lk, b = shm.open(lname), shm.attach(bname)
for _ = 1, 100000 do
  lk:acquire()
  b:pack(0, "<i8", b:unpack(0, "<i8") + 1)
  lk:release()
end
return rank
]], lk.name, b.name)
  lu.assertEquals(b:unpack(0, "<i8"), 400000)
end

function TestLock:test_guard_releases_at_scope_exit_and_on_error()
  local lk = self:keep(shm.lock())
  do
    local g <close> = lk:guard()
    lu.assertStrContains(tostring(g), "LockGuard")
    H.assert_error({ "already held" }, lk.acquire, lk, 0)
  end
  lu.assertEquals({ lk:acquire(0) }, { true })
  lk:release()
  local ok, err = pcall(function()
    local g <close> = lk:guard()
    error("boom", 0)
  end)
  lu.assertFalse(ok)
  lu.assertEquals(err, "boom")
  lu.assertEquals({ lk:acquire(0) }, { true }, "the guard released on error")
  lk:release()
  for _ = 1, 3 do -- the same guard object serves again
    local g <close> = lk:guard()
  end
  lu.assertEquals({ lk:acquire(0) }, { true })
  lk:release()
end

function TestLock:test_guard_after_manual_release_errors()
  local lk = self:keep(shm.lock())
  H.assert_error({ "luashm: release '" .. lk.name .. "': lock is not held by this process" }, function()
    local g <close> = lk:guard()
    lk:release()
  end)
end

function TestLock:test_guard_reports_owner_died()
  local lk, gate = self:keep(shm.lock()), self:keep(shm.lock())
  local p = start(HOLDER, lk.name, gate.name)
  lu.assertNotNil(p:read("l"))
  lu.assertTrue(p:close())
  local g, note = lk:guard()
  lu.assertEquals(note, "owner died")
  H.assert_error({ "already held" }, lk.acquire, lk, 0)
  lk:release()
  lu.assertNotNil(g)
end

-- Robust mutexes belong to a thread: a forked child does not own what its parent holds.
function TestLock:test_forked_child_does_not_own_the_parents_lock()
  local lk = self:keep(shm.lock())
  lk:acquire()
  local w = shm.spawn(function()
    local ok, err = pcall(lk.release, lk)
    local got = lk:acquire(0)
    lk:close() -- its copy's close releases nothing
    return ok, err, got
  end)
  local done, ok, err, got = w:join(30)
  lu.assertTrue(done)
  lu.assertFalse(ok)
  lu.assertStrContains(err, "lock is not held by this process")
  lu.assertFalse(got)
  H.assert_error({ "already held" }, lk.acquire, lk, 0) -- still ours
  lk:release()
end

function TestLock:test_use_after_close_errors()
  local lk = shm.lock()
  local name = lk.name
  local g = lk:guard()
  lk:close() -- closing while held releases first
  lk:close()
  lu.assertEquals(tostring(lk), "luashm.Lock '" .. name .. "' (closed)")
  lu.assertEquals(lk.name, name)
  local closed = "luashm: lock '" .. name .. "' is closed"
  H.assert_error({ closed }, lk.acquire, lk)
  H.assert_error({ closed }, lk.release, lk)
  H.assert_error({ closed }, lk.guard, lk)
  lu.assertNotNil(g)
  local other <close> = shm.open(name)
  lu.assertEquals({ other:acquire(0) }, { true }, "close released it")
  other:release()
  lu.assertTrue(H.in_shm(name), "close must not unlink")
  other:unlink()
  lu.assertFalse(H.in_shm(name))
  H.assert_error({ "luashm: unlink '" .. name .. "': no such block" }, other.unlink, other)
end

function TestLock:test_gc_of_a_held_lock_releases()
  local lk = self:keep(shm.lock())
  do
    local other = shm.open(lk.name)
    other:acquire()
    other = nil ---@diagnostic disable-line
  end
  collectgarbage()
  collectgarbage()
  lu.assertEquals({ lk:acquire(0) }, { true })
  lk:release()
end

function TestLock:test_open_returns_a_lock_shared_across_processes()
  local lk = self:keep(shm.lock())
  local o <close> = shm.open(lk.name)
  lu.assertStrContains(tostring(o), "luashm.Lock '" .. lk.name .. "'")
  o:acquire()
  H.assert_error({ "already held" }, lk.acquire, lk, 0) -- same process, other mapping
  o:release()
  local out, err, ok = H.luashm([[
local lk = shm.open(arg[1])
print(tostring(lk):match("^luashm.Lock") ~= nil, lk:acquire(0))
lk:release()
]], lk.name)
  lu.assertTrue(ok, err)
  lu.assertEquals(out, "true\ttrue\n")
end

function TestLock:test_open_rejects_a_corrupt_lock()
  local lk = self:keep(shm.lock())
  local b <close> = shm.attach(lk.name)
  b:write(64, ("\255"):rep(40)) -- the mutex bytes
  H.assert_error({ "luashm: open '" .. lk.name .. "': not a valid lock block" }, shm.open, lk.name)
  b:write(0, ("\0"):rep(64)) -- no header: a plain Block
  lu.assertStrContains(tostring(shm.open(lk.name)), "luashm.Block")
end

-- Issue 18.7: mutex bytes forged through the Block after the lock was opened (garbage, or
-- another kind of mutex: glibc aborts on kinds it did not expect) are an error on every call,
-- never an abort; with the true bytes back the lock works.
function TestLock:test_issue18_7_forged_mutex_bytes_are_an_error()
  local lk = self:keep(shm.lock())
  local b = lk.block
  local saved = b:read(64, 40)
  local invalid = "': the block no longer holds a valid mutex"
  for _, forged in ipairs({ ("\255"):rep(40), ("\0"):rep(40), ("\90"):rep(40),
    saved:sub(1, 16) .. string.pack("i4", 0) .. saved:sub(21),
    saved:sub(1, 16) .. string.pack("i4", 0x7fffffff) .. saved:sub(21) }) do
    b:write(64, forged)
    H.assert_error({ "luashm: acquire '" .. lk.name .. invalid }, lk.acquire, lk)
    H.assert_error({ "luashm: acquire '" .. lk.name .. invalid }, lk.acquire, lk, 0)
    H.assert_error({ "luashm: acquire '" .. lk.name .. invalid }, lk.acquire, lk, 0.01)
    H.assert_error({ "luashm: acquire '" .. lk.name .. invalid }, lk.guard, lk)
    H.assert_error({ "luashm: release '" .. lk.name .. invalid }, lk.release, lk)
    lu.assertStrContains(tostring(lk), "luashm.Lock '" .. lk.name .. "'")
  end
  b:write(64, saved)
  lu.assertEquals({ lk:acquire(0) }, { true })
  lk:release()
end

function TestLock:test_ref_and_reopener()
  local lk = self:keep(shm.lock())
  if shm.encode then
    local back <close> = shm.decode(shm.encode(lk))
    lu.assertStrContains(tostring(back), "luashm.Lock '" .. lk.name .. "'")
    back:acquire()
    H.assert_error({ "already held" }, lk.acquire, lk, 0)
    back:release()
  end
end

function TestLock:test_bad_self()
  local lk = self:keep(shm.lock())
  local b <close> = shm.create(8)
  b:unlink()
  for _, v in ipairs({ 1, "x", {}, b, io.stdout }) do
    H.assert_raises(lk.acquire, v)
    H.assert_raises(lk.release, v)
    H.assert_raises(lk.guard, v)
    H.assert_raises(lk.close, v)
  end
end

os.exit(lu.LuaUnit.run())
