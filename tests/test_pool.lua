-- shm.parallel (ranks, results by rank, fail-fast naming the failed ranks) and shm.pool
-- (ordered results, dynamic scheduling, persistent workers, errors, close).
local lu = require "luaunit"
local H = require "helper"
local shm = require "luashm"

local mypid = H.mypid

local function gone(pid)
  local f = io.open("/proc/" .. pid .. "/stat")
  if f then f:close() end
  return f == nil
end

local function busy(seconds)
  local t = os.clock()
  while os.clock() - t < seconds do end
end

TestParallel = {}

function TestParallel:test_results_by_rank_with_arguments()
  local r = shm.parallel(4, function(rank, n, a, t) return rank * 100 + n + a + t.k end, 5, { k = 1 })
  lu.assertEquals(r, { 110, 210, 310, 410 })
end

function TestParallel:test_workers_share_a_block()
  local b = shm.create(8 * 4)
  shm.parallel(4, function(rank) b:pack((rank - 1) * 8, "<j", rank * rank) end)
  lu.assertEquals({ b:unpack(0, "<jjjj") }, { 1, 4, 9, 16 })
  b:unlink()
  b:close()
end

function TestParallel:test_fail_fast_names_the_failed_rank_and_stops_the_others()
  local pids = shm.create(8 * 4)
  local t0 = shm.now()
  local err = H.assert_error({ "luashm: parallel: rank", "failed (the other workers were stopped)",
    "(rank 3): ", "rank three fails", "stack traceback:" }, shm.parallel, 4, function(rank)
      pids:pack((rank - 1) * 8, "<j", mypid())
      if rank == 3 then
        while pids:unpack(0, "<j") == 0 or pids:unpack(24, "<j") == 0 do end
        error("rank three fails")
      end
      while true do end -- the others would run forever
    end)
  lu.assertTrue(shm.now() - t0 < 20)
  lu.assertStrMatches(err:match("^[^\n]*"), "luashm: parallel: rank 3 failed %(the other workers were stopped%)")
  for i = 0, 3 do
    local pid = pids:unpack(i * 8, "<j")
    lu.assertTrue(pid > 0)
    lu.assertTrue(gone(pid), "worker " .. pid .. " is still there")
  end
  pids:unlink()
  pids:close()
end

function TestParallel:test_every_rank_that_failed_is_named()
  -- Which ranks have failed before the others are stopped is up to the scheduler (the API
  -- promises at least one); each rank named carries its own message.
  local err = H.assert_error({ "luashm: parallel: rank" }, shm.parallel, 3, function(rank)
    error("all fail " .. rank)
  end)
  for rank in err:match("ranks? ([%d, ]+) failed"):gmatch("%d+") do
    lu.assertStrContains(err, "(rank " .. rank .. "): ")
    lu.assertStrContains(err, "all fail " .. rank)
  end
end

function TestParallel:test_killed_rank()
  H.assert_error({ "luashm: parallel: rank 2 failed", "(rank 2): killed by signal 9 (Killed)" },
    shm.parallel, 2, function(rank)
      if rank == 2 then os.execute("kill -9 " .. mypid()) end
      while rank == 2 do end
      return rank
    end)
end

function TestParallel:test_argument_errors()
  H.assert_error({ "luashm: parallel: worker count 0 is not an integer from 1 to 4096" },
    shm.parallel, 0, print)
  H.assert_error({ "luashm: parallel: worker count 1.5" }, shm.parallel, 1.5, print)
  H.assert_error({ "bad argument #2 to 'parallel' (function expected, got nil)" }, shm.parallel, 2)
end

function TestParallel:test_options_table_and_progress_without_a_terminal()
  local r = shm.parallel({ n = 3, progress = true }, function(rank) return -rank end)
  lu.assertEquals(r, { -1, -2, -3 })
end

TestPool = {}

function TestPool:setUp()
  self.p = shm.pool(2)
end

function TestPool:tearDown()
  self.p:close()
end

function TestPool:test_results_in_order_items_and_count()
  local p = self.p
  lu.assertEquals(tostring(p), "luashm.Pool: 2 workers (not started)")
  lu.assertEquals(p.size, 2)
  local items = {}
  for i = 1, 100 do items[i] = { v = i } end
  local r = p:map(function(item) return item.v * 2 end, items)
  for i = 1, 100 do lu.assertEquals(r[i], 2 * i) end
  lu.assertEquals(p:map(function(i) return i * i end, 5), { 1, 4, 9, 16, 25 })
  lu.assertEquals(p:map(function(i) return i end, 0), {})
  lu.assertEquals(p:map(function(i) return i end, {}), {})
  lu.assertStrContains(tostring(p), "(started)")
end

function TestPool:test_closures_see_upvalues()
  local scale, offset = 3, { 10 }
  lu.assertEquals(self.p:map(function(i) return i * scale + offset[1] end, 3), { 13, 16, 19 })
end

function TestPool:test_dynamic_scheduling_with_uneven_items()
  -- Item 1 is slow; while one worker is on it, the other must take all the cheap items (one
  -- item per round trip: the default chunk would hold items 1..4).
  local r = self.p:map(function(i)
    if i == 1 then busy(0.5) end
    return mypid()
  end, 30, { chunksize = 1 })
  local slow = r[1]
  for i = 2, 30 do lu.assertNotEquals(r[i], slow, "item " .. i .. " waited for the slow worker") end
end

function TestPool:test_workers_persist_between_maps_with_the_same_fn()
  local b = shm.create(8)
  local attached = {} -- per worker: the block it attached once ("workers keep their mappings")
  local fn = function(i)
    if not attached.b then
      attached.b = shm.attach(b.name)
      attached.count = 0
    end
    attached.count = attached.count + 1
    return mypid()
  end
  local pids1, pids2 = {}, {}
  for _, pid in ipairs(self.p:map(fn, 10)) do pids1[pid] = true end
  for _, pid in ipairs(self.p:map(fn, 10)) do pids2[pid] = true end
  lu.assertEquals(pids2, pids1)
  local counts = self.p:map(function() return 0 end, 2) -- another fn: fresh workers
  lu.assertEquals(counts, { 0, 0 })
  local pids3 = {}
  for _, pid in ipairs(self.p:map(function() return mypid() end, 10)) do pids3[pid] = true end
  for pid in pairs(pids1) do
    lu.assertNil(pids3[pid])
    lu.assertTrue(gone(pid))
  end
  b:unlink()
  b:close()
end

function TestPool:test_a_failed_item_is_named_and_the_pool_stays_usable()
  local err = H.assert_error({ "luashm: map: item 7 failed: worker ", "(rank ", "seven is bad",
    "stack traceback:" }, self.p.map, self.p, function(i)
      if i == 7 then error("seven is bad") end
      return i
    end, 10)
  lu.assertNotStrContains(err, "luashm: luashm")
  lu.assertEquals(self.p:map(function(i) return -i end, 3), { -1, -2, -3 })
end

function TestPool:test_a_killed_worker_is_reported()
  H.assert_error({ "luashm: map: item 2 failed: worker ", "killed by signal 9 (Killed)" },
    self.p.map, self.p, function(i)
      if i == 2 then os.execute("kill -9 " .. mypid()) busy(5) end
      return i
    end, 2)
end

function TestPool:test_items_and_results_go_through_the_codec()
  H.assert_error({ "luashm: map: ", "function" }, self.p.map, self.p, function(x) return x end, { print })
  H.assert_error({ "luashm: map: item 1 failed", "function" }, self.p.map, self.p,
    function() return print end, 1)
end

function TestPool:test_progress_without_a_terminal_draws_nothing()
  lu.assertEquals(self.p:map(function(i) return i end, 5, { progress = true }), { 1, 2, 3, 4, 5 })
end

function TestPool:test_argument_errors_close_and_scope_exit()
  H.assert_error({ "bad argument #1 to 'map' (function expected, got number)" }, self.p.map, self.p, 1, 2)
  H.assert_error({ "bad argument #2 to 'map' (table or non-negative integer expected, got float)" },
    self.p.map, self.p, print, 1.5)
  H.assert_error({ "bad argument #1 to 'map' (luashm.Pool expected)" }, self.p.map, {}, print, 1)
  H.assert_error({ "luashm: pool: worker count -1" }, shm.pool, -1)
  local pids
  do
    local p <close> = shm.pool(2)
    pids = p:map(function() return mypid() end, 2)
  end
  for _, pid in ipairs(pids) do lu.assertTrue(gone(pid)) end
  local p = shm.pool(1)
  p:close()
  p:close()
  lu.assertEquals(tostring(p), "luashm.Pool: 1 workers (closed)")
  H.assert_error({ "luashm: pool is closed" }, p.map, p, print, 1)
end

os.exit(lu.LuaUnit.run())
