-- Tracking (API.md "Tracking"): the watchdog of a process tree unlinks what the tree leaked,
-- however it ended, names every block in one stderr line, and touches nothing else.
-- PEER-BUGS.md: gh-82300, PR 13276, gh-120280.
local lu = require "luaunit"
local H = require "helper"
local shm = require "luashm"

-- Runs code in a fresh host (a tree of its own) and returns its stdout and stderr together,
-- read to end-of-file: the watchdog holds the same stderr, so this returns only once the
-- watchdog has finished too, and its line is in the output.
local function run(code, prog)
  local file = os.tmpname()
  local f = assert(io.open(file, "w"))
  f:write(code)
  f:close()
  local p = io.popen((prog or H.shell_quote(H.host)) .. " " .. file .. " 2>&1")
  local out = p:read("a")
  p:close()
  os.remove(file)
  return out
end

-- The names the script printed, one per "name=" line.
local function printed(out)
  local names = {}
  for n in out:gmatch("name=(%S+)") do names[#names + 1] = n end
  return names
end

local function tracker_lines(out)
  local lines = {}
  for l in out:gmatch("[^\n]+") do
    if l:find("luashm: tracker:", 1, true) then lines[#lines + 1] = l end
  end
  return lines
end

local SELF_PID = [[
local function self_pid()
  local f = io.open("/proc/self/stat")
  local pid = tonumber(f:read("a"):match("^(%d+)"))
  f:close()
  return pid
end
]]

TestTracker = {}

function TestTracker:test_leaked_block_is_unlinked_at_exit()
  local out = run([[
    local b = shm.create(100)
    print("name=" .. b.name)
  ]])
  local names = printed(out)
  lu.assertEquals(#names, 1)
  lu.assertFalse(H.in_shm(names[1]))
  lu.assertEquals(tracker_lines(out), { "luashm: tracker: unlinked 1 leaked block: " .. names[1] })
end

-- gh-120280: the line names every block it removed.
function TestTracker:test_gh120280_one_line_names_every_block()
  local out = run([[
    for i = 1, 5 do print("name=" .. shm.create(10).name) end
    local gone = shm.create(10)
    gone:unlink()
  ]])
  local names = printed(out)
  lu.assertEquals(#names, 5)
  local lines = tracker_lines(out)
  lu.assertEquals(#lines, 1)
  lu.assertStrContains(lines[1], "unlinked 5 leaked blocks: ")
  for _, n in ipairs(names) do
    lu.assertStrContains(lines[1], n)
    lu.assertFalse(H.in_shm(n))
  end
end

function TestTracker:test_sigkill_of_the_host()
  local out = run(SELF_PID .. [[
    local a, b = shm.create(10), shm.create(20)
    print("name=" .. a.name)
    print("name=" .. b.name)
    io.stdout:flush()
    os.execute("kill -9 " .. self_pid())
    print("not reached")
  ]])
  local names = printed(out)
  lu.assertEquals(#names, 2)
  lu.assertNotStrContains(out, "not reached")
  local lines = tracker_lines(out)
  lu.assertEquals(#lines, 1)
  for _, n in ipairs(names) do
    lu.assertStrContains(lines[1], n)
    lu.assertFalse(H.in_shm(n))
  end
end

function TestTracker:test_error_exit_and_signal()
  local out = run([[
    print("name=" .. shm.create(10).name)
    error("boom")
  ]])
  lu.assertStrContains(out, "boom")
  lu.assertFalse(H.in_shm(printed(out)[1]))
  out = run(SELF_PID .. [[
    print("name=" .. shm.create(10).name)
    io.stdout:flush()
    os.execute("kill -TERM " .. self_pid())
  ]])
  lu.assertFalse(H.in_shm(printed(out)[1]))
  lu.assertEquals(#tracker_lines(out), 1)
end

-- PR 13276: a clean run (blocks unlinked, a manager shut down) prints nothing at all.
function TestTracker:test_pr13276_clean_exit_is_silent()
  local out = run([[
    local b = shm.create(10)
    b:unlink()
    local m <close> = shm.manager()
    m:create(10)
    m:create(20)
  ]])
  lu.assertEquals(out, "")
end

function TestTracker:test_track_false_is_left_alone()
  local out = run([[
    print("name=" .. shm.create(10, { track = false }).name)
    print("name=" .. shm.create(10).name)
  ]])
  local names = printed(out)
  lu.assertTrue(H.in_shm(names[1]))
  lu.assertFalse(H.in_shm(names[2]))
  lu.assertEquals(tracker_lines(out), { "luashm: tracker: unlinked 1 leaked block: " .. names[2] })
  shm.attach(names[1]):unlink()
end

-- A name unlinked and created again, by the tree without tracking or by another program, is
-- another file: the watchdog compares device and inode and leaves it.
function TestTracker:test_recreated_name_is_untouched()
  local name = "luashm_tracker_test_" .. math.random(1 << 40)
  local out = run(([[
    local b = shm.create(10, { name = %q })
    b:unlink()
    shm.create(10, { name = %q, track = false })
    local c = shm.create(10, { name = %q .. "_2" })
    os.execute(%q)
  ]]):format(name, name, name, H.python_bin .. " -c \"import os; os.unlink('/dev/shm/" .. name ..
    "_2'); open('/dev/shm/" .. name .. "_2', 'w').write('x')\""))
  lu.assertEquals(out, "")
  lu.assertTrue(H.in_shm(name))
  lu.assertTrue(H.in_shm(name .. "_2"))
  shm.attach(name):unlink()
  os.remove("/dev/shm/" .. name .. "_2")
end

-- Another tree's blocks: this suite's own blocks survive a child tree's cleanup.
function TestTracker:test_blocks_of_another_tree_are_untouched()
  local mine = shm.create(10)
  local out = run(([[
    local theirs = shm.attach(%q)
    print("name=" .. shm.create(10).name)
    theirs:close()
  ]]):format(mine.name))
  lu.assertTrue(H.in_shm(mine.name))
  lu.assertFalse(H.in_shm(printed(out)[1]))
  lu.assertNotStrContains(out, mine.name)
  mine:unlink()
  mine:close()
end

-- gh-82300: a process that only attached never unlinks at exit, even in its own tracked tree,
-- and the creator's tree keeps its block until the creator's tree ends.
function TestTracker:test_gh82300_attaching_process_never_unlinks()
  local b = shm.create(64)
  b:write(0, "kept")
  local out = run(([[
    local a = shm.attach(%q)
    print("read=" .. a:read(0, 4))
    shm.create(8)           -- this tree has a tracker too
  ]]):format(b.name))
  lu.assertStrContains(out, "read=kept")
  lu.assertTrue(H.in_shm(b.name))
  lu.assertEquals(b:read(0, 4), "kept")
  b:unlink()
  b:close()
end

-- Under stock lua5.4 with require "luashm", the same watchdog.
function TestTracker:test_stock_lua()
  local out = run([[
    local shm = require "luashm"
    print("name=" .. shm.create(10).name)
  ]], H.stock_lua())
  local names = printed(out)
  lu.assertEquals(#names, 1)
  lu.assertFalse(H.in_shm(names[1]))
  lu.assertEquals(#tracker_lines(out), 1)
end

-- os.execute/io.popen programs are trees of their own: the watchdog socket is close-on-exec.
function TestTracker:test_exec_does_not_inherit_the_tree()
  local out = run([[
    local b = shm.create(10)
    print("name=" .. b.name)
    local p = io.popen("ls -l /proc/self/fd/ 2>/dev/null")
    local fds = p:read("a")
    p:close()
    print("socket-in-child=" .. tostring(fds:find("socket:") ~= nil))
    b:unlink()
  ]])
  lu.assertStrContains(out, "socket-in-child=false")
end

-- os.execute and io.popen run no fork handler: they start no watchdog; shm.spawn does.
function TestTracker:test_only_a_real_fork_or_create_starts_the_watchdog()
  local out = run([[
    io.popen("true"):close()
    os.execute("true")
    print("after-exec=" .. tostring((shm.tracker())))
    local w = shm.spawn(function() return shm.tracker() end)
    local _, dog = w:join()
    print("after-spawn=" .. tostring(shm.tracker() ~= nil and dog == shm.tracker()))
  ]])
  lu.assertStrContains(out, "after-exec=nil")
  lu.assertStrContains(out, "after-spawn=true")
end

-- Ctrl-C reaches the whole foreground process group: the host stops, the watchdog (in a session
-- of its own, ignoring SIGINT) survives it and cleans up.
function TestTracker:test_ctrl_c_of_the_group_spares_the_watchdog()
  local marker = os.tmpname()
  os.remove(marker)
  local out = run(([[
    local b = shm.create(10)
    print("name=" .. b.name)
    io.stdout:flush()
    io.open(%q, "w"):close()
    local stop = os.time() + 30 -- bounded, should the interrupt never come
    while os.time() < stop do end
  ]]):format(marker), "setsid sh -c '\"$0\" \"$1\" & p=$!; trap \"\" INT; " ..
    "while [ ! -e " .. marker .. " ]; do sleep 0.01; done; kill -INT -$$; wait $p' " ..
    H.shell_quote(H.host))
  os.remove(marker)
  lu.assertStrContains(out, "interrupted")
  local names = printed(out)
  lu.assertEquals(#names, 1)
  lu.assertFalse(H.in_shm(names[1]))
  lu.assertEquals(tracker_lines(out), { "luashm: tracker: unlinked 1 leaked block: " .. names[1] })
end

-- The watchdog is not in the tree's process group or session (Ctrl-C reaches only the tree),
-- and holds no write end and no block mapping.
function TestTracker:test_watchdog_is_detached()
  local out = run(SELF_PID .. [[
    local b = shm.create(10)
    local pid = shm.tracker()
    local function field(p, n)
      local f = io.open("/proc/" .. p .. "/stat")
      local s = f:read("a"):match("%) (.*)")
      f:close()
      local t = {}
      for w in s:gmatch("%S+") do t[#t + 1] = w end
      return t[n]
    end
    print("sid-differs=" .. tostring(field(pid, 4) ~= field(self_pid(), 4)))
    local f = io.open("/proc/" .. pid .. "/maps")
    print("maps-block=" .. tostring(f:read("a"):find(b.name, 1, true) ~= nil))
    f:close()
    b:unlink()
  ]])
  lu.assertStrContains(out, "sid-differs=true")
  lu.assertStrContains(out, "maps-block=false")
end

-- gh-82300, the other half: CPython gives each process its own resource tracker, so a worker
-- that exits unlinks what it registered while its parent still uses it. Here a worker is in its
-- parent's tree: neither its exit nor its blocks' __gc unlinks anything, its parent's blocks or
-- its own; the tree's end does.
function TestTracker:test_gh82300_worker_exit_never_unlinks()
  local out = run([[
    local parent = shm.create(16)
    parent:write(0, "parent")
    local w = shm.spawn(function()
      local a = shm.attach(parent.name)
      local own = shm.create(8)
      own:write(0, "worker")
      a:close()
      return own.name
    end)
    local ok, own = w:join()
    assert(ok, own)
    print("parent-after=" .. tostring(shm.exists(parent.name)))
    print("own-after=" .. tostring(shm.exists(own)))
    print("own-data=" .. shm.attach(own):read(0, 6))
    print("name=" .. parent.name)
    print("name=" .. own)
  ]])
  lu.assertStrContains(out, "parent-after=true")
  lu.assertStrContains(out, "own-after=true")
  lu.assertStrContains(out, "own-data=worker")
  local names = printed(out)
  lu.assertEquals(#names, 2)
  lu.assertTrue(not H.in_shm(names[1]) and not H.in_shm(names[2]))
  lu.assertEquals(#tracker_lines(out), 1)
end

-- The rule for a fork before any tracked create: the forking process starts its watchdog at the
-- fork, so the worker that creates first is in the parent's tree and its block outlives it.
function TestTracker:test_fork_before_first_create_joins_the_parents_tree()
  local out = run([[
    local w = shm.spawn(function()
      local b = shm.create(8)
      return b.name, shm.tracker()
    end)
    local ok, name, dog = w:join()
    assert(ok, name)
    print("same-tracker=" .. tostring(dog == shm.tracker()))
    print("alive-after-worker=" .. tostring(shm.exists(name)))
    print("name=" .. name)
  ]])
  lu.assertStrContains(out, "same-tracker=true")
  lu.assertStrContains(out, "alive-after-worker=true")
  lu.assertFalse(H.in_shm(printed(out)[1]))
end

-- A block another process still maps is never unlinked early: this suite attaches a block of
-- another tree while that tree runs; only that tree's end unlinks the name, and this mapping
-- keeps its bytes even then.
function TestTracker:test_block_in_use_elsewhere_is_not_unlinked_early()
  local marker = os.tmpname()
  os.remove(marker)
  local file = os.tmpname()
  local f = assert(io.open(file, "w"))
  f:write(([[
    local b = shm.create(16)
    b:write(0, "in use")
    print("name=" .. b.name)
    io.stdout:flush()
    while not io.open(%q) do os.execute("sleep 0.01") end
  ]]):format(marker))
  f:close()
  local p = io.popen(H.shell_quote(H.host) .. " " .. file .. " 2>&1")
  local name = p:read("l"):match("name=(%S+)")
  local a = shm.attach(name)
  lu.assertTrue(H.in_shm(name))
  io.open(marker, "w"):close()
  local rest = p:read("a")
  p:close()
  os.remove(marker)
  os.remove(file)
  lu.assertStrContains(rest, "unlinked 1 leaked block: " .. name)
  lu.assertFalse(H.in_shm(name))
  lu.assertEquals(a:read(0, 6), "in use")
  a:close()
end

-- ---------------------------------------------------------------------------------------
-- Issue 18: what an attacker and a killer found
-- ---------------------------------------------------------------------------------------

-- The /dev/shm names that start with prefix.
local function left_with(prefix)
  local left = {}
  for n in H.sh("ls -a /dev/shm"):gmatch("[^\n]+") do
    if n:sub(1, #prefix) == prefix then left[#left + 1] = n end
  end
  return left
end

-- Waits (up to 5 s) until no name starting with prefix is left; returns what is left.
local function settle(prefix)
  local left
  for _ = 1, 100 do
    left = left_with(prefix)
    if #left == 0 then break end
    os.execute("sleep 0.05")
  end
  return left
end

-- 18.1: a chosen name used to be recorded only once its create had finished, so a SIGKILL in
-- between leaked it (about one kill in three in this loop). Now it is recorded before it
-- exists. Trees that create and unlink chosen names as fast as they can are SIGKILLed at
-- random moments, four at a time; once their watchdogs are done nothing may be left.
function TestTracker:test_chosen_names_never_leak_under_sigkill()
  local prefix = ("luashm_t181_%d_"):format(math.random(1 << 30))
  local victim = os.tmpname()
  local f = assert(io.open(victim, "w"))
  f:write(SELF_PID, [[
    local prefix = ... .. self_pid() .. "_"
    for i = 1, math.huge do
      local b = shm.create(4096, { name = prefix .. i })
      b:unlink()
      b:close()
    end
  ]])
  f:close()
  local script = { "host=$1 victim=$2 prefix=$3" }
  for lane = 1, 4 do
    local delays = {}
    for i = 1, 20 do delays[i] = ("%.3f"):format(0.015 + math.random() * 0.03) end
    script[#script + 1] = ('(for d in %s; do "$host" "$victim" "$prefix" & p=$!; sleep $d; ' ..
      'kill -9 $p; wait $p 2>/dev/null; done) &'):format(table.concat(delays, " "))
  end
  script[#script + 1] = "wait"
  local _, ok = H.sh(("sh -c %s sh %s %s %s 2>&1"):format(H.shell_quote(table.concat(script, "\n")),
    H.shell_quote(H.host), H.shell_quote(victim), H.shell_quote(prefix)))
  os.remove(victim)
  lu.assertTrue(ok)
  local left = settle(prefix)
  for _, n in ipairs(left) do os.remove("/dev/shm/" .. n) end
  lu.assertEquals(left, {}, #left .. " chosen names leaked in 80 SIGKILLs")
end

-- 18.5: a generated name used to be recorded without an inode, so a block another program made
-- under that name after the tree unlinked it was removed at the tree's end. Now every record
-- carries the identity of the file that was created.
function TestTracker:test_generated_name_reused_by_another_program_is_untouched()
  local out = run([[
    local b = shm.create(10)
    print("name=" .. b.name)
    io.stdout:flush()
    os.execute(("%s -c \"import os; os.unlink('/dev/shm/%s'); open('/dev/shm/%s', 'w').write('theirs')\"")
      :format(]] .. ("%q"):format(H.python_bin) .. [[, b.name, b.name))
  ]])
  local name = printed(out)[1]
  lu.assertNotNil(name, out)
  lu.assertEquals(tracker_lines(out), {})
  lu.assertTrue(H.in_shm(name))
  local f = assert(io.open("/dev/shm/" .. name))
  lu.assertEquals(f:read("a"), "theirs")
  f:close()
  os.remove("/dev/shm/" .. name)
end

-- 18.10: names were recorded as text and read back with sscanf, which dropped leading blanks, so
-- " x" and "\tx" were never cleaned up. Records now carry the name's bytes as they are; the
-- tracker's line shows them escaped (a name must not drive the terminal).
function TestTracker:test_names_with_any_bytes_are_cleaned_up()
  local r = math.random(1 << 30)
  local names = { " luashm_ws_" .. r, "\tluashm_tab_" .. r, "luashm_nl_" .. r .. "\nx",
    "luashm_esc_" .. r .. "\27[2J", "luashm_utf8_" .. r .. "\u{e9}", "luashm_bs_" .. r .. "\\" }
  local code = {}
  for _, n in ipairs(names) do code[#code + 1] = ("shm.create(16, { name = %q })"):format(n) end
  code[#code + 1] = ("assert(shm.exists(%q))"):format(names[1])
  local out = run(table.concat(code, "\n"))
  for _, n in ipairs(names) do lu.assertFalse(H.in_shm(n), ("%q left behind"):format(n)) end
  local lines = tracker_lines(out)
  lu.assertEquals(#lines, 1, out)
  lu.assertStrContains(lines[1], "unlinked 6 leaked blocks: ")
  lu.assertStrContains(lines[1], "\\x20luashm_ws_" .. r)
  lu.assertStrContains(lines[1], "\\x09luashm_tab_" .. r)
  lu.assertStrContains(lines[1], "luashm_esc_" .. r .. "\\x1b[2J")
  lu.assertStrContains(lines[1], "luashm_utf8_" .. r .. "\\xc3\\xa9")
  lu.assertStrContains(lines[1], "luashm_bs_" .. r .. "\\x5c")
  lu.assertNotStrContains(out, "\27")
end

-- 18.15: after the tracker was SIGKILLed, every tracked create (shm.manager's too) said "pass
-- track = false", which shm.manager does not accept. The message now says what can be done.
function TestTracker:test_killed_tracker_message_says_what_to_do()
  local out = run([[
    shm.create(10):unlink()
    os.execute("kill -9 " .. shm.tracker())
    while os.execute("kill -0 " .. shm.tracker() .. " 2>/dev/null") do end
    print("manager=" .. select(2, pcall(shm.manager)))
    print("create=" .. select(2, pcall(shm.create, 10)))
    print("untracked=" .. tostring(pcall(function() shm.create(10, { track = false }):unlink() end)))
  ]])
  for _, what in ipairs({ "manager", "create" }) do
    local msg = out:match(what .. "=([^\n]*)")
    lu.assertNotNil(msg, out)
    lu.assertStrContains(msg, "luashm: create '")
    lu.assertStrContains(msg, "the tracker of this process tree is gone")
    lu.assertStrContains(msg, "restart the program")
    lu.assertNotStrContains(msg, "pass track = false")
  end
  lu.assertStrContains(out, "untracked=true")
end

os.exit(lu.LuaUnit.run())
