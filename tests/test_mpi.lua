-- shm.mpi under a real `mpirun -n 2` (MPICH or Open MPI): collectives straight on Arrays,
-- node-shared arrays by name, errors, and the stats example giving the same table under
-- shm.parallel and under mpirun.
local lu = require "luaunit"
local H = require "helper"

local mpirun = H.sh("command -v mpirun"):gsub("%s+$", "")
local has_module = H.sh("ls " .. H.shell_quote(H.host:match("^(.*)/") or ".") .. "/luashm_mpi.so 2>/dev/null") ~= ""

-- Each rank's print goes to a file of its own: mpirun forwards the ranks' output in chunks
-- that may interleave mid-line.
local PRELUDE = [[
local __out = assert(io.open(os.getenv("LUASHM_TEST_OUT") .. "/" .. shm.mpi.rank(), "w"))
print = function(...)
  local t = table.pack(...)
  for i = 1, t.n do t[i] = tostring(t[i]) end
  __out:write(table.concat(t, "\t", 1, t.n), "\n")
  __out:flush()
end
]]

-- Runs a Lua snippet as an MPI job of n ranks; returns the lines the ranks printed, sorted,
-- whether every rank succeeded, and mpirun's own output.
local function mpi_job(n, code, ...)
  local file = os.tmpname()
  local dir = H.sh("mktemp -d"):gsub("%s+$", "")
  local f = assert(io.open(file, "w"))
  f:write(PRELUDE, code)
  f:close()
  local args = {}
  for i = 1, select("#", ...) do args[#args + 1] = H.shell_quote(select(i, ...)) end
  -- Open MPI refuses root unless told; MPICH ignores these.
  local out, ok = H.sh("LUASHM_TEST_OUT=" .. H.shell_quote(dir)
    .. " OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 " .. mpirun .. " -n " .. n
    .. " " .. H.shell_quote(H.host) .. " " .. file .. " " .. table.concat(args, " ") .. " 2>&1")
  os.remove(file)
  local lines = {}
  for r = 1, n do
    local rf = io.open(dir .. "/" .. r)
    if rf then
      for l in rf:lines() do lines[#lines + 1] = l end
      rf:close()
    end
  end
  H.sh("rm -rf " .. H.shell_quote(dir))
  table.sort(lines)
  return lines, ok, out
end

TestMPI = {}

function TestMPI:setUp()
  lu.assertNotEquals(mpirun, "", "mpirun is missing: scripts/deps.sh installs mpich")
  lu.assertTrue(has_module, "luashm_mpi.so was not built beside the host (no MPI found by CMake?)")
end

function TestMPI:test_rank_size_and_launched()
  local lines, ok, out = mpi_job(2, [[
print(shm.mpi.launched(), shm.mpi.available(), shm.mpi.rank(), shm.mpi.size())
]])
  lu.assertTrue(ok, out)
  lu.assertEquals(lines, { "true\ttrue\t1\t2", "true\ttrue\t2\t2" })
end

function TestMPI:test_collectives_on_arrays()
  local lines, ok, out = mpi_job(2, [[
local mpi = shm.mpi
local r = mpi.rank()
local function arr(dtype, n) local a = shm.array(dtype, n); return a end
local a = arr("f64", 3); a:copy({ r, 10 * r, -r })
local s = arr("f64", 3)
mpi.allreduce(a, s, "sum")
local mx = arr("f64", 3); mpi.allreduce(a, mx, "max")
local mn = arr("i32", 2); mn:copy({ r, -r }); mpi.allreduce(mn, mn, "min")
local b = arr("i64", 2); if r == 1 then b:copy({ 7, -9 }) end
mpi.bcast(b, 1)
local red = arr("u8", 1); red[1] = r
local tot = arr("u8", 1); mpi.reduce(red, tot, "sum", 2)
print(r, "sum", table.concat(s:totable(), ","), "max", table.concat(mx:totable(), ","),
  "min", table.concat(mn:totable(), ","), "bcast", table.concat(b:totable(), ","),
  "reduce", tot[1])
for _, x in ipairs({ a, s, mx, mn, b, red, tot }) do x.block:unlink() end
]])
  lu.assertTrue(ok, out)
  lu.assertEquals(lines, {
    "1\tsum\t3.0,30.0,-3.0\tmax\t2.0,20.0,-1.0\tmin\t1,-2\tbcast\t7,-9\treduce\t0",
    "2\tsum\t3.0,30.0,-3.0\tmax\t2.0,20.0,-1.0\tmin\t1,-2\tbcast\t7,-9\treduce\t3",
  })
end

function TestMPI:test_gather_scatter_by_partition_and_send_recv()
  local lines, ok, out = mpi_job(2, [[
local mpi = shm.mpi
local r, n = mpi.rank(), mpi.size()
local rows = 5
local lo, hi = shm.partition(rows, n, r)
local part = shm.array("i32", { hi - lo + 1, 2 })
for i = 1, hi - lo + 1 do part:set(i, 1, lo + i - 1); part:set(i, 2, 100 * r) end
local whole = shm.array("i32", { rows, 2 })
mpi.gather(part, whole, 1)
if r == 1 then
  local t = {}
  for i = 1, rows do t[#t + 1] = whole:get(i, 1) .. ":" .. whole:get(i, 2) end
  print("gathered", table.concat(t, " "))
  for i = 1, rows do whole:set(i, 2, -i) end
end
mpi.scatter(whole, part, 1)
local t = {}
for i = 1, hi - lo + 1 do t[#t + 1] = part:get(i, 2) end
print(r, "scattered", table.concat(t, ","))
local msg = shm.array("f32", 2)
if r == 1 then msg:copy({ 1.5, -2.5 }); mpi.send(msg, 2, 9) else mpi.recv(msg, 1, 9); print("received", msg[1], msg[2]) end
for _, x in ipairs({ part, whole, msg }) do x.block:unlink() end
]])
  lu.assertTrue(ok, out)
  lu.assertEquals(lines, {
    "1\tscattered\t-1,-2,-3",
    "2\tscattered\t-4,-5",
    "gathered\t1:100 2:100 3:100 4:200 5:200",
    "received\t1.5\t-2.5",
  })
end

function TestMPI:test_node_shared_array_by_name()
  local lines, ok, out = mpi_job(2, [[
local mpi = shm.mpi
local a = mpi.shared_array("i64", 4)
for i = 1, 1000 do a:atomic_add(1, 1) end
a:atomic_add(2, mpi.rank())
mpi.barrier()
print(a.name:match("^luashm_") and "named" or a.name, a[1], a[2])
mpi.free(a)
]])
  lu.assertTrue(ok, out)
  lu.assertEquals(lines, { "named\t2000\t3", "named\t2000\t3" })
end

function TestMPI:test_errors_are_luashm_errors()
  local lines, ok, out = mpi_job(2, [[
local mpi = shm.mpi
local a = shm.array("f64", 3)
local b = shm.array("f64", 4)
local c = shm.array("i32", 3)
for _, case in ipairs({
  function() mpi.allreduce(a, b) end,
  function() mpi.allreduce(a, c) end,
  function() mpi.bcast(a, 3) end,
  function() mpi.bcast({}, 1) end,
  function() mpi.allreduce(a, a, "avg") end,
  function() local m = shm.array("f64", { 2, 2 }, { private = true }); mpi.bcast(m:view({}, 1), 1) end,
  function() local h = shm.array("f16", 2, { private = true }); mpi.allreduce(h, h) end,
}) do
  local ok, err = pcall(case)
  print(ok, (tostring(err):gsub("\n.*", "")))
end
for _, x in ipairs({ a, b, c }) do x.block:unlink() end
]])
  lu.assertTrue(ok, out)
  local seen = table.concat(lines, "\n")
  lu.assertStrContains(seen, "false\tluashm: mpi.allreduce: arrays differ (f64[3] and f64[4])")
  lu.assertStrContains(seen, "false\tluashm: mpi.allreduce: arrays differ (f64[3] and i32[3])")
  lu.assertStrContains(seen, "false\tluashm: mpi.bcast: rank 3 is not in 1..2")
  lu.assertStrContains(seen, "false\tluashm: mpi.bcast: argument #1 is a table, not an Array")
  lu.assertStrContains(seen, "invalid option 'avg'")
  lu.assertStrContains(seen, "false\tluashm: array (private) is a strided view, not contiguous: clone() it first")
  lu.assertStrContains(seen, "false\tluashm: mpi.allreduce: MPI has no sum of f16 (convert it with a:astype first)")
  lu.assertNotStrContains(seen, "true")
end

-- The example job gives the same table under shm.parallel and under mpirun.
function TestMPI:test_stats_example_same_result_both_ways()
  local example = H.top .. "/scripts/examples/stats.lua"
  local local_out, ok = H.sh(H.shell_quote(H.host) .. " -j 2 " .. example .. " 50000")
  lu.assertTrue(ok)
  lu.assertStrContains(local_out, "50000 samples: mean ")
  local function job(n)
    local lines, ok, out = mpi_job(n, io.open(example):read("a"), "50000")
    lu.assertTrue(ok, out)
    -- only rank 1 prints, so the sorted lines are its table, sorted
    return table.concat(lines, "\n")
  end
  local expected = {}
  for l in local_out:gmatch("[^\n]+") do expected[#expected + 1] = l end
  table.sort(expected)
  expected = table.concat(expected, "\n")
  lu.assertEquals(job(2), expected)
  -- Other rank counts sum the partials in another order: the counts are exact.
  lu.assertEquals(job(3):gsub("mean %S+", ""), expected:gsub("mean %S+", ""))
end

os.exit(lu.LuaUnit.run())
