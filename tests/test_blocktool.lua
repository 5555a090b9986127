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
  local lock = shm.lock and m:lock()
  local list = shm.list and m:list({ 1, 2, "three" })
  local rows = listing()
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
  if lock then lu.assertEquals(rows[tostring(lock):match("'([^']+)'")].kind, "lock") end
  if list then lu.assertEquals(rows[list.block.name].kind, "list of 3") end
  if shm.array then
    local a = m:array("f64", { 3, 4 })
    local v = m:array("i32", 5)
    rows = listing()
    lu.assertEquals(rows[a.name].kind, "array f64 (3, 4)")
    lu.assertEquals(rows[v.name].kind, "array i32 (5,)")
  end
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
    repeat
      local f = io.open(index)
      local seen = f and f:read("a"):find(t.name, 1, true)
      if f then f:close() end
    until seen
    os.execute("kill -9 " .. shm.tracker())
  ' 2>&1]])
  local untracked, orphan, dog = out:match("untracked=(%S+)"), out:match("orphan=(%S+)"), out:match("dog=(%d+)")
  lu.assertNotNil(untracked, out)
  -- the child wrote a header without a creator; give it one that is dead: the child's pid
  local u = shm.attach(untracked)
  fake_header(u, "lock", 0x7ffffffe)
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
  u:close()
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

os.exit(lu.LuaUnit.run())
