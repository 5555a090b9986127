-- The Manager (API.md "Manager"): records what is created through it, in this process and in
-- forked workers, and unlinks it all at shutdown; only its owner ever unlinks.
local lu = require "luaunit"
local H = require "helper"
local shm = require "luashm"

local function gone(names)
  for _, n in ipairs(names) do
    if H.in_shm(n) then return false end
  end
  return true
end

local function record_name(m)
  return tostring(m):match("'([^']+)'")
end

TestManager = {}

function TestManager:test_records_names_and_shutdown_unlinks()
  local m = shm.manager()
  local rec = record_name(m)
  local a, b = m:create(10), m:create(20, { name = "luashm_mgr_test_" .. math.random(1 << 40) })
  local names = m:names()
  table.sort(names)
  local want = { a.name, b.name }
  table.sort(want)
  lu.assertEquals(names, want)
  lu.assertTrue(H.in_shm(rec))
  lu.assertStrContains(tostring(m), "(2 blocks, owner pid ")
  m:shutdown()
  lu.assertTrue(gone(want))
  lu.assertFalse(H.in_shm(rec))
  lu.assertTrue(a.closed and b.closed) -- closed here too
  lu.assertEquals(m:names(), {})
  lu.assertStrContains(tostring(m), "(shut down)")
  m:shutdown() -- idempotent
  H.assert_error({ "luashm: manager '" .. rec .. "' is shut down" }, m.create, m, 10)
end

function TestManager:test_shutdown_skips_blocks_someone_else_unlinked()
  local m = shm.manager()
  local a, b = m:create(10), m:create(10)
  shm.attach(a.name):unlink()
  lu.assertEquals(m:names(), { b.name })
  m:shutdown()
  lu.assertFalse(H.in_shm(b.name))
end

function TestManager:test_close_at_scope_exit_by_return_and_by_error()
  local names = {}
  local function job(fail)
    local m <close> = shm.manager()
    names[#names + 1] = m:create(100).name
    names[#names + 1] = record_name(m)
    if fail then error("job failed") end
    return "ok"
  end
  lu.assertEquals(job(false), "ok")
  local ok, err = pcall(job, true)
  lu.assertFalse(ok)
  lu.assertStrContains(err, "job failed")
  lu.assertEquals(#names, 4)
  lu.assertTrue(gone(names))
end

function TestManager:test_gc_shuts_down_in_the_owner()
  local name
  do
    local m = shm.manager()
    name = m:create(10).name
  end
  collectgarbage()
  collectgarbage()
  lu.assertFalse(H.in_shm(name))
end

function TestManager:test_generic_recording_for_every_kind_available()
  local m <close> = shm.manager()
  local made = { m:create(8) }
  if shm.array then made[#made + 1] = m:array("f64", { 2, 3 }) end
  if shm.list then made[#made + 1] = m:list({ 1, "two", 3.0 }) end
  if shm.lock then made[#made + 1] = m:lock() end
  if shm.barrier then made[#made + 1] = m:barrier(2) end
  if shm.channel then made[#made + 1] = m:channel() end
  local names = m:names()
  lu.assertEquals(#names, #made)
  m:shutdown()
  lu.assertTrue(gone(names))
end

function TestManager:test_errors_of_the_underlying_create_pass_through_and_record_nothing()
  local m <close> = shm.manager()
  H.assert_error({ "luashm: create: size 0 is not positive" }, m.create, m, 0)
  lu.assertEquals(m:names(), {})
  H.assert_error({ "bad argument" }, shm.manager, 5)
  H.assert_error({ "luashm: manager: unknown option 'nmae' (it takes none)" }, shm.manager,
    { nmae = "x" })
end

-- Contract v1's capacity (a count of blocks) is gone: capacity always means bytes, and a
-- manager's record grows by itself.
function TestManager:test_capacity_is_an_unknown_option_that_says_why()
  H.assert_error({ "luashm: manager: unknown option 'capacity'", "grows by itself" }, shm.manager,
    { capacity = 2 })
end

-- Managers of any size (issue 20): 5,000 blocks recorded, seen from a copy opened by name (which
-- maps the grown record again) and from a forked worker (which grows it further), then all
-- unlinked at shutdown.
function TestManager:test_five_thousand_blocks_recorded_and_unlinked()
  local m = shm.manager()
  local size0 = m.block.size
  local names = {}
  for i = 1, 5000 do names[i] = m:create(1).name end
  lu.assertTrue(m.block.size > size0)
  local other = shm.open(record_name(m))
  local mine = other:names()
  lu.assertEquals(#mine, 5000)
  table.sort(mine)
  local want = { table.unpack(names) }
  table.sort(want)
  lu.assertEquals(mine, want)
  local ok, more = shm.spawn(function()
    local made = {}
    for i = 1, 3000 do made[i] = m:create(1).name end
    return made
  end):join()
  lu.assertTrue(ok, more)
  lu.assertEquals(#m:names(), 8000)
  lu.assertEquals(#other:names(), 8000)
  m:shutdown()
  for _, list in ipairs({ names, more }) do
    for _, n in ipairs(list) do lu.assertFalse(shm.exists(n), n) end
  end
  lu.assertFalse(H.in_shm(record_name(m)))
end

function TestManager:test_dead_entries_are_compacted_away()
  local m <close> = shm.manager()
  for _ = 1, 2000 do m:create(1):unlink() end
  local size = m.block.size
  lu.assertEquals(m:names(), {})
  for _ = 1, 2000 do m:create(1):unlink() end
  lu.assertEquals(m.block.size, size) -- the unlinked blocks' entries made room again
end

-- Issue 18.6: a record's bytes are untrusted after shm.open. The forgery is written where both
-- the v1 layout (area u32 at 108, used u64 at 112) and v2's (size u64 at 112, used u64 at 120)
-- read it; each check runs in a worker, so that a crash is a failure, not a lost run.
local ENTRIES = 192

-- Forges the record of a fresh manager with write(rec), then asserts that m:names() (in a
-- worker) raised the malformed-record error, with fragment.
local function assert_malformed(write, fragment)
  local m <close> = shm.manager()
  local b = m:create(1)
  local rec = shm.attach(record_name(m))
  write(rec)
  local ok, res, err = shm.spawn(function() return pcall(m.names, m) end):join()
  rec:close()
  b:unlink() -- the shutdown cannot read it from the forged record
  lu.assertTrue(ok, res)
  lu.assertFalse(res)
  lu.assertStrContains(err, "its record is malformed" .. fragment)
end

function TestManager:test_forged_entry_length_is_an_error_not_an_overflow()
  assert_malformed(function(rec)
    rec:pack(112, "<I8I8", 300, 300)
    rec:pack(ENTRIES, "BB", 1, 255) -- a name of 255 bytes: more than any name holds
  end, " at byte 0 of its entries")
end

function TestManager:test_forged_used_past_the_block_is_an_error_not_sigbus()
  assert_malformed(function(rec) rec:pack(108, "<I4I8I8", 0xffffffff, 1 << 40, 1 << 40) end, "")
end

function TestManager:test_forged_name_with_a_slash_is_never_followed()
  assert_malformed(function(rec)
    local name = "../../tmp/x"
    rec:pack(ENTRIES, "BB", 1, #name)
    rec:write(ENTRIES + 18, name)
  end, " at byte 0")
end

function TestManager:test_open_by_name_gives_a_manager_that_never_unlinks()
  local m <close> = shm.manager()
  local b = m:create(10)
  local other = shm.open(record_name(m))
  lu.assertStrContains(tostring(other), "luashm.Manager")
  lu.assertEquals(other:names(), { b.name })
  local c = other:create(5) -- recorded in the same record
  lu.assertEquals(#m:names(), 2)
  H.assert_error({ "does not own this manager" }, other.shutdown, other)
  other = nil
  collectgarbage()
  lu.assertTrue(H.in_shm(b.name) and H.in_shm(c.name))
  m:shutdown()
  lu.assertTrue(gone({ b.name, c.name }))
end

-- Forked workers (shm.spawn) record through an inherited manager; their copy never unlinks,
-- <close> and __gc included; after the owner's shutdown their creates fail.
function TestManager:test_forked_copy_records_and_never_unlinks()
  local m <close> = shm.manager()
  local mine = m:create(10)
  local w = shm.spawn(function()
    local made = m:create(32).name
    do
      local copy <close> = m -- scope exit in the worker: nothing unlinked
    end
    return made
  end)
  local ok, made = w:join()
  lu.assertTrue(ok, made)
  lu.assertTrue(H.in_shm(mine.name))
  lu.assertTrue(H.in_shm(made))
  local names = m:names()
  table.sort(names)
  local want = { mine.name, made }
  table.sort(want)
  lu.assertEquals(names, want)
  m:shutdown()
  lu.assertTrue(gone(want))
end

function TestManager:test_worker_create_after_owner_shutdown_fails()
  local flag = shm.create(8)
  local m = shm.manager()
  local w = shm.spawn(function()
    while flag:read(0, 1) == "\0" do end
    local ok, err = pcall(m.create, m, 10)
    return ok, err
  end)
  m:shutdown()
  flag:write(0, "x")
  local ok, created, err = w:join()
  lu.assertTrue(ok)
  lu.assertFalse(created)
  lu.assertStrContains(err, "is shut down")
  flag:unlink()
  flag:close()
end

os.exit(lu.LuaUnit.run())
