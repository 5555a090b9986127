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

-- Issue 20: fresh random streams in every worker, and {seed = S} for reproducible runs
-- (math.randomseed(S, r) in rank or slot r).
local function draws()
  local t = {}
  for i = 1, 4 do t[i] = math.random(1 << 40) end
  return table.concat(t, ",")
end

local distinct = H.distinct

TestStreams = {}

function TestStreams:test_parallel_ranks_draw_distinct_streams()
  local r = shm.parallel(4, draws)
  r[5] = draws() -- the parent's own stream too
  lu.assertTrue(distinct(r), table.concat(r, "\n"))
  lu.assertNotEquals(shm.parallel(4, draws), r) -- and again fresh on the next run
end

function TestStreams:test_pool_slots_draw_distinct_streams()
  local p <close> = shm.pool(4)
  -- One item per slot, each slot held busy until all four have drawn.
  local gate = shm.array("i64", 1)
  local r = p:map(function()
    local s = draws()
    gate:atomic_add(1, 1)
    while gate:atomic_load(1) < 4 do end
    return s .. "@" .. mypid()
  end, 4, { chunksize = 1 })
  gate.block:unlink()
  local streams, pids = {}, {}
  for i, v in ipairs(r) do streams[i], pids[i] = v:match("^(.*)@(%d+)$") end
  lu.assertTrue(distinct(pids))
  lu.assertTrue(distinct(streams), table.concat(streams, "\n"))
end

function TestStreams:test_a_seed_makes_a_run_reproducible_and_ranks_distinct()
  local a = shm.parallel { n = 4, fn = draws, seed = 42 }
  local b = shm.parallel { n = 4, fn = draws, seed = 42 }
  lu.assertEquals(a, b)
  lu.assertTrue(distinct(a))
  lu.assertNotEquals(shm.parallel { n = 4, fn = draws, seed = 43 }, a)
  -- rank r runs math.randomseed(S, r)
  math.randomseed(42, 3)
  lu.assertEquals(a[3], draws())
  -- the positional form with an option table first, too
  lu.assertEquals(shm.parallel({ n = 4, seed = 42 }, draws), a)
end

function TestStreams:test_a_seeded_pool_slot_is_reproducible()
  local function run()
    local p <close> = shm.pool(1, { seed = 7 })
    return p:map(function() return draws() end, 3, { chunksize = 3 })
  end
  local a, b = run(), run()
  lu.assertEquals(a, b)
  math.randomseed(7, 1)
  local want = { draws(), draws(), draws() }
  lu.assertEquals(a, want)
end

function TestStreams:test_seed_errors()
  H.assert_error({ "luashm: parallel: opts.seed must be an integer, not 1.5" }, shm.parallel,
    { n = 1, fn = draws, seed = 1.5 })
  H.assert_error({ "luashm: pool: opts.seed must be an integer, not a string" }, shm.pool, 1,
    { seed = "7" })
end

TestParallelOptions = {}

function TestParallelOptions:test_the_option_table_form()
  local r = shm.parallel { n = 3, fn = function(rank, n, a, b) return rank * 100 + n * 10 + a + b end,
    args = { 1, 2 } }
  lu.assertEquals(r, { 133, 233, 333 })
  -- args keeps its holes when it says its length
  r = shm.parallel { n = 2, fn = function(_, _, a, b, c) return tostring(a) .. tostring(b) .. c end,
    args = { n = 3, 1, nil, 3 } }
  lu.assertEquals(r, { "1nil3", "1nil3" })
  lu.assertEquals(shm.parallel { n = 2, fn = function(rank) return -rank end, progress = true,
    label = "x" }, { -1, -2 })
end

function TestParallelOptions:test_bad_options()
  H.assert_error({ "luashm: parallel: unknown option 'nn' (valid: n, fn, args, progress, label, seed)" },
    shm.parallel, { nn = 2, fn = print })
  H.assert_error({ "luashm: parallel: opts.args must be a table, not a number" }, shm.parallel,
    { n = 1, fn = print, args = 3 })
  H.assert_error({ "luashm: parallel: fn is given in the option table" }, shm.parallel,
    { n = 1, fn = print }, print)
end

TestChunks = {}

function TestChunks:setUp() self.p = shm.pool(2) end
function TestChunks:tearDown() self.p:close() end

function TestChunks:test_ten_thousand_items_in_order_with_default_chunks()
  local items = {}
  for i = 1, 10000 do items[i] = { v = i, s = tostring(i) } end
  local r = self.p:map(function(item) return item.v * 3 .. ":" .. item.s end, items)
  lu.assertEquals(#r, 10000)
  for i = 1, 10000 do
    if r[i] ~= i * 3 .. ":" .. i then lu.fail("item " .. i .. " gave " .. tostring(r[i])) end
  end
  local sq = self.p:map(function(i) return i * i end, 10000, { chunksize = 333 })
  for i = 1, 10000 do
    if sq[i] ~= i * i then lu.fail("item " .. i .. " gave " .. tostring(sq[i])) end
  end
end

-- The default chunk is Python's: ceil(#items / (4 * workers)), so 2 workers get 8 chunks.
function TestChunks:test_default_chunking_and_nil_results()
  local r = self.p:map(function() return mypid() end, 80)
  local runs, last = 0, nil
  for i = 1, 80 do
    if r[i] ~= last then runs, last = runs + 1, r[i] end
  end
  lu.assertTrue(runs <= 8, runs .. " runs of one pid in 80 items")
  -- results that are nil keep their places
  r = self.p:map(function(i) if i % 3 ~= 0 then return i end end, 10, { chunksize = 4 })
  for i = 1, 10 do lu.assertEquals(r[i], i % 3 ~= 0 and i or nil) end
end

function TestChunks:test_a_failed_item_is_named_inside_its_chunk()
  H.assert_error({ "luashm: map: item 37 failed: worker ", "thirty-seven", "stack traceback:" },
    self.p.map, self.p, function(i)
      if i == 37 then error("thirty-seven") end
      return i
    end, 100, { chunksize = 10 })
  H.assert_error({ "luashm: map: item 12 failed", "function" }, self.p.map, self.p,
    function(i) return i == 12 and print or i end, 20, { chunksize = 5 })
  H.assert_error({ "luashm: map: items 1..10 failed: worker ", "killed by signal 9" },
    self.p.map, self.p, function(i)
      if i == 3 then os.execute("kill -9 " .. mypid()) busy(5) end
      return i
    end, 10, { chunksize = 10 })
  lu.assertEquals(self.p:map(function(i) return i end, 3), { 1, 2, 3 })
end

function TestChunks:test_chunksize_and_option_errors()
  local p = self.p
  for _, bad in ipairs({ 0, -1, 1.5, "2", true }) do
    H.assert_error({ "luashm: map: opts.chunksize must be a positive integer, not " }, p.map, p,
      print, 3, { chunksize = bad })
  end
  H.assert_error({ "luashm: map: unknown option 'chunk' (valid: chunksize, progress, label)" },
    p.map, p, print, 3, { chunk = 2 })
  H.assert_error({ "luashm: pool: unknown option 'sed' (valid: seed)" }, shm.pool, 1, { sed = 1 })
  H.assert_error({ "bad argument #2 to 'pool' (table expected, got number)" }, shm.pool, 1, 5)
end

-- Issue 18.14: map called from inside a map of the same pool (an item's metamethod in the
-- parent, fn in a worker) is an error, never results in the wrong order.
function TestChunks:test_map_is_not_reentrant()
  local p = self.p
  local inner
  local items = setmetatable({}, {
    __len = function() return 3 end,
    __index = function(_, i)
      if i == 2 and not inner then
        inner = { pcall(p.map, p, function(x) return x end, { 10, 20 }) }
      end
      return i * 10
    end,
  })
  lu.assertEquals(p:map(function(x) return x + 1 end, items, { chunksize = 1 }), { 11, 21, 31 })
  lu.assertFalse(inner[1])
  lu.assertStrContains(inner[2], "luashm: map: this pool is already running a map")
  H.assert_error({ "luashm: map: item 1 failed", "this pool is already running a map" }, p.map, p,
    function(i) return p:map(function(x) return x end, 2)[1] end, 1)
  lu.assertEquals(p:map(function(i) return i end, 2), { 1, 2 }) -- usable after both
end

-- opts.progress counts items, not chunks: the counter's total is the item count and every
-- chunk adds its size.
function TestChunks:test_progress_counts_items()
  local made = {}
  local real = shm.progress
  shm.progress = function(total, label) -- a counter that remembers what it was told
    local p = real(total, label)
    local seen = { total = total, adds = {} }
    made[#made + 1] = seen
    return {
      add = function(_, k) seen.adds[#seen.adds + 1] = k; return p:add(k) end,
      unlink = function() seen.count = p.count; return p:unlink() end,
      close = function() return p:close() end,
    }
  end
  local ok, err = pcall(self.p.map, self.p, function(i) return i end, 1000, { progress = true })
  shm.progress = real
  lu.assertTrue(ok, err)
  lu.assertEquals(#made, 1)
  lu.assertEquals(made[1].total, 1000)
  lu.assertEquals(made[1].count, 1000)
  lu.assertEquals(#made[1].adds, 8) -- one add per chunk, of the chunk's size
  for _, k in ipairs(made[1].adds) do lu.assertEquals(k, 125) end
end

os.exit(lu.LuaUnit.run())
