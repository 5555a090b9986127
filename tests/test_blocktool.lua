-- The block tool (`luashm --blocks`): lists luashm's blocks with size, kind, tracking and
-- creator; removes named ones and stale ones, never a live or unknown one.
local lu = require "luaunit"
local H = require "helper"
local shm = require "luashm"

local function tool(args)
  local out, ok = H.sh(H.shell_quote(H.host) .. " --blocks " .. (args or "") .. " 2>&1")
  return out, ok
end

-- The listing as name -> { size, kind, tracked, creator, state }: columns are two or more
-- spaces apart.
local function listing()
  local rows, out = {}, tool()
  lu.assertStrMatches(out:match("^[^\n]*"), "NAME%s+SIZE%s+KIND%s+TRACKED%s+CREATOR%s+STATE")
  for line in out:gmatch("\n([^\n]+)") do
    local f = {}
    for v in (line .. "  "):gmatch("(.-)%s%s+") do f[#f + 1] = v end
    rows[f[1]] = { size = tonumber(f[2]), kind = f[3], tracked = f[4], creator = f[5], state = f[6] }
  end
  return rows
end

-- The listing once the tracker's index records every name given (the watchdog rewrites its
-- index at most every 20 ms, later on a loaded machine): retried for up to 5 s.
local function listing_tracking(...)
  local rows
  for _ = 1, 250 do
    rows = listing()
    local all = true
    for _, name in ipairs({ ... }) do
      all = all and rows[name] ~= nil and rows[name].tracked ~= "no"
    end
    if all then break end
    os.execute("sleep 0.02")
  end
  return rows
end

local function pid()
  local f = io.open("/proc/self/stat")
  local p = tonumber(f:read("a"):match("^(%d+)"))
  f:close()
  return p
end

-- Writes a luashm header (magic, kind, version, creator pid) at the start of block b.
local function fake_header(b, kind, creator)
  b:write(0, "\x93LUASHM\0" .. kind .. ("\0"):rep(16 - #kind))
  b:pack(24, "<I4I4i8", 1, 0, creator)
end

TestBlockTool = {}

function TestBlockTool:test_lists_kinds_tracking_and_creator()
  local me, dog = pid(), nil
  local raw = shm.create(1000)
  dog = shm.tracker()
  local untracked = shm.create(64, { track = false })
  local m = shm.manager()
  local lock = m:lock()
  local list = m:list({ 1, 2, "three" })
  local rows = listing_tracking(raw.name, list.block.name, lock.name)
  lu.assertEquals(rows[raw.name].size, 1000)
  lu.assertEquals(rows[raw.name].kind, "raw")
  lu.assertEquals(rows[raw.name].tracked, "yes, tracker " .. dog)
  lu.assertEquals(rows[raw.name].creator, me .. " alive")
  lu.assertEquals(rows[raw.name].state, "live")
  lu.assertEquals(rows[untracked.name].tracked, "no")
  lu.assertEquals(rows[untracked.name].creator, "?")
  lu.assertEquals(rows[untracked.name].state, "unknown")
  local rec = tostring(m):match("'([^']+)'")
  lu.assertEquals(rows[rec].kind, "manager")
  lu.assertEquals(rows[lock.name].kind, "lock")
  lu.assertEquals(rows[list.block.name].kind, "list of 3")
  local a = m:array("f64", { 3, 4 })
  local v = m:array("i32", 5)
  rows = listing()
  lu.assertEquals(rows[a.name].kind, "array f64 (3, 4)")
  lu.assertEquals(rows[v.name].kind, "array i32 (5,)")
  m:shutdown()
  raw:unlink()
  untracked:unlink()
end

-- A block named by the user that holds a luashm header is listed; a stranger's plain block is not.
function TestBlockTool:test_user_names_with_a_header_are_listed_strangers_not()
  local n1, n2 = "bt_test_header_" .. math.random(1 << 40), "bt_test_plain_" .. math.random(1 << 40)
  local with = shm.create(64, { name = n1, track = false })
  fake_header(with, "channel", pid())
  local plain = shm.create(64, { name = n2, track = false })
  local rows = listing()
  lu.assertNotNil(rows[n1])
  lu.assertEquals(rows[n1].creator, pid() .. " alive")
  lu.assertNil(rows[n2])
  with:unlink()
  plain:unlink()
end

-- Stale: creator dead and no live tracker records it. A dead tracker's index (its watchdog was
-- SIGKILLed, so its blocks outlived the tree) is read, shown and removed with --rm-stale; live,
-- unknown and tracked blocks stay.
function TestBlockTool:test_rm_stale_removes_only_stale_blocks()
  local out = H.sh(H.shell_quote(H.host) .. [[ -e '
    local b = shm.create(64, { track = false })
    b:pack(0, "<c8", "\x93LUASHM\0")
    print("untracked=" .. b.name)
    local t = shm.create(64)
    print("orphan=" .. t.name)
    print("dog=" .. shm.tracker())
    local index = "/dev/shm/.luashm-tracker-" .. shm.tracker()
    local hex = t.name:gsub(".", function(c) return ("%02x"):format(c:byte()) end)
    repeat
      local f = io.open(index)
      local seen = f and f:read("a"):find(hex, 1, true)
      if f then f:close() end
    until seen
    os.execute("kill -9 " .. shm.tracker())
  ' 2>&1]])
  local untracked, orphan, dog = out:match("untracked=(%S+)"), out:match("orphan=(%S+)"), out:match("dog=(%d+)")
  lu.assertNotNil(untracked, out)
  -- the child wrote a header without a creator; give it one that is dead: the child's pid
  local u = shm.attach(untracked)
  fake_header(u, "lock", 0x7ffffffe)
  u:close() -- a block this process maps is in use, never stale (see below)
  shm.flush_cache() -- nor one whose last mapping this process keeps cached
  local live_raw = shm.create(10, { track = false })
  local tracked = shm.create(10)
  local rows = listing()
  lu.assertEquals(rows[untracked].state, "stale")
  lu.assertEquals(rows[untracked].creator, "2147483646 dead")
  lu.assertEquals(rows[orphan].tracked, "dead tracker " .. dog)
  lu.assertStrContains(rows[orphan].creator, " dead")
  lu.assertEquals(rows[orphan].state, "stale")
  lu.assertEquals(rows[live_raw.name].state, "unknown")
  local rm = tool("--rm-stale")
  lu.assertStrContains(rm, "removed " .. untracked)
  lu.assertStrContains(rm, "removed " .. orphan)
  lu.assertFalse(H.in_shm(untracked) or H.in_shm(orphan))
  lu.assertTrue(H.in_shm(live_raw.name) and H.in_shm(tracked.name))
  lu.assertFalse(H.sh("ls -a /dev/shm"):find(".luashm-tracker-" .. dog, 1, true) ~= nil)
  live_raw:unlink()
  tracked:unlink()
end

function TestBlockTool:test_rm_named_and_errors()
  local a, b = shm.create(10, { track = false }), shm.create(10, { track = false })
  local out, ok = tool("--rm " .. a.name .. " " .. b.name)
  lu.assertTrue(ok)
  lu.assertStrContains(out, "removed " .. a.name)
  lu.assertFalse(H.in_shm(a.name) or H.in_shm(b.name))
  out, ok = tool("--rm luashm_no_such_block_here")
  lu.assertNotEquals(ok, true)
  lu.assertStrContains(out, "luashm: unlink 'luashm_no_such_block_here': no such block")
  out, ok = tool("--rm a/b")
  lu.assertNotEquals(ok, true)
  lu.assertStrContains(out, "names may not contain '/'")
  out, ok = tool("--bogus")
  lu.assertNotEquals(ok, true)
  lu.assertStrContains(out, "usage: luashm --blocks")
  out, ok = tool("--help")
  lu.assertTrue(ok)
  lu.assertStrContains(out, "--rm-stale")
  lu.assertStrContains(H.sh(H.shell_quote(H.host) .. " --help"), "--blocks")
end

-- ---------------------------------------------------------------------------------------
-- Issue 18: a hostile /dev/shm
-- ---------------------------------------------------------------------------------------


local function write_file(path, text)
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
end

local function hex(s)
  return (s:gsub(".", function(c) return ("%02x"):format(c:byte()) end))
end

-- "dev ino" of a file, as stat(1) gives them.
local function identity(path)
  return (H.sh("stat -c '%d %i' " .. H.shell_quote(path)):gsub("%s+$", ""))
end

-- 18.12: --rm-stale removed an untracked block whose creator had exited while a live process
-- still mapped it. A block some live process maps (found in /proc/*/maps, as fuser does) is
-- never stale: the listing and --rm-stale say who uses it.
function TestBlockTool:test_rm_stale_keeps_a_block_a_live_process_maps()
  local out = H.sh(H.shell_quote(H.host) .. [[ -e 'print("name=" .. shm.lock({ track = false }).name)']])
  local name = out:match("name=(%S+)")
  lu.assertNotNil(name, out)
  local held = shm.attach(name)
  local row = listing()[name]
  lu.assertStrContains(row.creator, " dead")
  lu.assertEquals(row.state, "in use by pid " .. pid())
  local rm = tool("--rm-stale")
  lu.assertStrContains(rm, "kept " .. name .. ": in use by pid " .. pid())
  lu.assertTrue(H.in_shm(name))
  held:close()
  shm.flush_cache() -- the mapping cache may keep the last mapping of a closed block
  lu.assertEquals(listing()[name].state, "stale")
  lu.assertStrContains(tool("--rm-stale"), "removed " .. name)
  lu.assertFalse(H.in_shm(name))
end

-- 18.3: a local user could forge a tracker index so that root's --rm-stale removed any file in
-- /dev/shm, and "../" entries made the listing stat files outside it. An index now speaks only
-- for files of its own owner, only for the very files it recorded, only if nobody else could
-- have written it, and only with names that pass the name rules.
function TestBlockTool:test_forged_indexes_condemn_nothing()
  if not H.is_root then lu.skip("needs root (files of another user)") end
  local r = math.random(1 << 30)
  local theirs, mine = "bt_theirs_" .. r, "bt_mine_" .. r
  local outside = "/tmp/bt_outside_" .. r
  write_file("/dev/shm/" .. theirs, ("t"):rep(4096))
  write_file("/dev/shm/" .. mine, ("m"):rep(4096))
  write_file(outside, ("o"):rep(12345))
  H.sh("chown 65534 /dev/shm/" .. theirs)
  local dead = 0x7ffffffe
  local function v2(name, path)
    local dev, ino = identity(path):match("(%d+) (%d+)")
    return ("%d 4096 %s %s %s -\n"):format(dead - 1, dev, ino, hex(name))
  end
  local forged = {
    -- the old format, which the old tool honoured whoever wrote it
    { pid = dead, owner = 65534, mode = "644", text = ("luashm-tracker 1 %d\n%d %s\n%d %s\n%d ../../tmp/bt_outside_%d\n")
      :format(dead, dead - 1, theirs, dead - 1, mine, dead - 1, r) },
    -- another user's index cannot condemn root's file, even naming its very inode
    { pid = dead - 2, owner = 65534, mode = "600",
      text = ("luashm-tracker 2 %d\n"):format(dead - 2) .. v2(mine, "/dev/shm/" .. mine) },
    -- root's own index cannot condemn another user's file, nor leave /dev/shm, nor claim a
    -- file by its size alone under a name that is not a generated one
    { pid = dead - 3, owner = 0, mode = "600", text = ("luashm-tracker 2 %d\n"):format(dead - 3) ..
      v2(theirs, "/dev/shm/" .. theirs) .. ("%d 12345 1 1 %s -\n"):format(dead - 1, hex("../../tmp/bt_outside_" .. r)) ..
      ("%d 4096 0 0 %s -\n"):format(dead - 1, hex(mine)) },
    -- an index others could have written is nobody's word
    { pid = dead - 4, owner = 0, mode = "666",
      text = ("luashm-tracker 2 %d\n"):format(dead - 4) .. v2(mine, "/dev/shm/" .. mine) },
  }
  for _, f in ipairs(forged) do
    local path = "/dev/shm/.luashm-tracker-" .. f.pid
    write_file(path, f.text)
    H.sh(("chown %d %s && chmod %s %s"):format(f.owner, path, f.mode, path))
  end
  local list = tool()
  lu.assertNotStrContains(list, "bt_")
  lu.assertNotStrContains(list, "12345")
  local rm = tool("--rm-stale")
  lu.assertNotStrContains(rm, "bt_")
  lu.assertTrue(H.in_shm(theirs) and H.in_shm(mine))
  lu.assertEquals(identity(outside) ~= "", true)
  for _, f in ipairs(forged) do os.remove("/dev/shm/.luashm-tracker-" .. f.pid) end
  os.remove("/dev/shm/" .. theirs)
  os.remove("/dev/shm/" .. mine)
  os.remove(outside)
end

-- 18.4: a FIFO in /dev/shm hung the tool (opened for reading without O_NONBLOCK); symbolic
-- links and directories were opened too. Only regular files are looked at, never through a
-- link, and nothing else is ever removed, whatever an index says.
function TestBlockTool:test_fifos_links_and_directories_neither_hang_nor_show()
  local r = math.random(1 << 30)
  local fifo, link, dir = "luashm_fifo_" .. r, "luashm_link_" .. r, "luashm_dir_" .. r
  local target = os.tmpname()
  write_file(target, "\x93LUASHM\0lock" .. ("\0"):rep(100))
  H.sh(("mkfifo /dev/shm/%s && ln -s %s /dev/shm/%s && mkdir /dev/shm/%s"):format(fifo, target, link, dir))
  local index = "/dev/shm/.luashm-tracker-" .. 0x7ffffff0
  local lines = { ("luashm-tracker 2 %d\n"):format(0x7ffffff0) }
  for _, n in ipairs({ fifo, link, dir }) do lines[#lines + 1] = ("%d 0 0 0 %s -\n"):format(0x7fffffef, hex(n)) end
  write_file(index, table.concat(lines))
  H.sh("chmod 600 " .. index)
  local out, ok = H.sh("timeout 20 " .. H.shell_quote(H.host) .. " --blocks 2>&1")
  lu.assertTrue(ok, "luashm --blocks failed or hung: " .. out)
  lu.assertNotStrContains(out, tostring(r))
  out, ok = H.sh("timeout 20 " .. H.shell_quote(H.host) .. " --blocks --rm-stale 2>&1")
  lu.assertTrue(ok, "luashm --blocks --rm-stale failed or hung: " .. out)
  lu.assertNotStrContains(out, tostring(r))
  lu.assertEquals(H.sh(("ls -d /dev/shm/%s /dev/shm/%s /dev/shm/%s | wc -l"):format(fifo, link, dir)), "3\n")
  H.sh(("rm -rf /dev/shm/%s /dev/shm/%s /dev/shm/%s %s"):format(fifo, link, dir, index))
  os.remove(target)
end

-- 18.13: names were printed raw, so escape sequences and newlines in a name could clear the
-- screen or forge rows. Every byte that is not printable ASCII (and the space) is escaped.
function TestBlockTool:test_names_are_printed_escaped()
  local r = math.random(1 << 30)
  local esc = shm.create(16, { name = "luashm_esc_" .. r .. "\27[2J", track = false })
  local row = shm.create(16, { name = "luashm_row_" .. r .. "\nforged  1  raw", track = false })
  local out = tool()
  lu.assertNotStrContains(out, "\27")
  lu.assertNil(out:find("\nforged", 1, true))
  local rows = listing()
  lu.assertNotNil(rows["luashm_esc_" .. r .. "\\x1b[2J"])
  lu.assertNotNil(rows["luashm_row_" .. r .. "\\x0aforged\\x20\\x201\\x20\\x20raw"])
  lu.assertStrContains(tool("--rm " .. H.shell_quote(esc.name)), "removed luashm_esc_" .. r .. "\\x1b[2J")
  row:unlink()
end

os.exit(lu.LuaUnit.run())
