-- shm.progress: a shared counter (atomic add from any worker, by fork or by name), and the one
-- bar the creating host draws on stderr, only when stderr is a terminal (checked under a real
-- pseudo-terminal with script(1)).
local lu = require "luaunit"
local H = require "helper"
local shm = require "luashm"

TestProgress = {}

function TestProgress:test_counter_fields_and_close()
  local p = shm.progress(10, "files")
  lu.assertEquals({ p.count, p.total, p.label, p.closed }, { 0, 10, "files", false })
  lu.assertEquals(p:add(), 1)
  lu.assertEquals(p:add(4), 5)
  lu.assertEquals(tostring(p), "luashm.Progress '" .. p.name .. "' (5/10)")
  local name = p.name
  lu.assertTrue(H.in_shm(name))
  p:close()
  p:close()
  lu.assertTrue(p.closed)
  lu.assertTrue(H.in_shm(name)) -- v2: close never unlinks, for a progress counter too
  lu.assertStrContains(tostring(p), "(closed)")
  H.assert_error({ "luashm: progress '" .. name .. "' is closed" }, p.add, p)
  p:unlink()
  lu.assertFalse(H.in_shm(name))
end

function TestProgress:test_argument_errors()
  H.assert_error({ "luashm: progress: total -1 is negative" }, shm.progress, -1)
  H.assert_error({ "luashm: progress: label is 60 bytes, longer than 47" }, shm.progress, 1, ("x"):rep(60))
  H.assert_error({ "bad argument #1 to '", "progress'" }, shm.progress, "x")
end

function TestProgress:test_atomic_adds_from_forked_workers()
  local p <close> = shm.progress(40000)
  shm.parallel(4, function()
    for _ = 1, 10000 do p:add(1) end
  end)
  lu.assertEquals(p.count, 40000)
end

function TestProgress:test_travels_by_name_and_opens_by_name()
  local p <close> = shm.progress(5, "by name")
  local file = os.tmpname()
  local f = assert(io.open(file, "w"))
  f:write("local p = ... p:add(2) return p.count, p.label")
  f:close()
  lu.assertEquals({ shm.spawn(file, p):join() }, { true, 2, "by name" })
  os.remove(file)
  local q <close> = shm.open(p.name)
  lu.assertStrContains(tostring(q), "luashm.Progress")
  q:add(1)
  lu.assertEquals(p.count, 3)
  q:close()
  lu.assertTrue(H.in_shm(p.name)) -- an attached copy never unlinks
  p:unlink()
end

local function script_file(code)
  local file = os.tmpname() .. ".lua"
  local f = assert(io.open(file, "w"))
  f:write(code)
  f:close()
  return file
end

local job = [[
  local p <close> = shm.progress(4, "crunch")
  p:unlink() -- forked workers inherit the mapping: the name is not needed
  shm.parallel(2, function(rank)
    for _ = 1, 2 do p:add(1) end
  end)
  local q = shm.pool(2)
  q:map(function(i) return i end, 6, { progress = true, label = "mapping" })
  q:close()
  shm.parallel({ n = 2, progress = true }, function() end)
  io.stdout:write("done\n")
]]

function TestProgress:test_nothing_drawn_when_stderr_is_not_a_terminal()
  local out, err, ok = H.luashm(job)
  lu.assertTrue(ok, err)
  lu.assertEquals(out, "done\n")
  lu.assertEquals(err, "")
end

function TestProgress:test_bar_drawn_under_a_pseudo_terminal()
  local file = script_file(job)
  local out = H.sh("script -qfec " .. H.shell_quote(H.shell_quote(H.host) .. " " .. file) ..
    " /dev/null </dev/null")
  os.remove(file)
  -- Each bar redraws in place (\r) and ends with its final line: 100%, the count, the rate,
  -- how long it took, and a newline.
  lu.assertStrContains(out, "\rcrunch [")
  lu.assertStrMatches(out, ".*crunch %[=+%] 100%% 4/4 [%d.]+/s in %d+:%d%d\27%[K\r?\n.*")
  lu.assertStrMatches(out, ".*mapping %[=+%] 100%% 6/6 [%d.]+/s in %d+:%d%d\27%[K\r?\n.*")
  lu.assertStrMatches(out, ".*parallel %[=+%] 100%% 2/2 .*")
  lu.assertStrContains(out, "done")
end

function TestProgress:test_unfinished_bar_gets_its_newline_at_close()
  local file = script_file([[
    local p = shm.progress(10, "partial")
    p:unlink()
    p:add(3)
    p:close()
    io.stderr:write("next line\n")
  ]])
  local out = H.sh("script -qfec " .. H.shell_quote(H.shell_quote(H.host) .. " " .. file) ..
    " /dev/null </dev/null")
  os.remove(file)
  lu.assertStrMatches(out, ".*partial %[.-%]  30%% 3/10 .-\r?\nnext line.*")
end

os.exit(lu.LuaUnit.run())
