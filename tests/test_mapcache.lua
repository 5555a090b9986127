-- The mapping cache (issue 19.2, bindings/core/mapcache.c): one mapping per block per process,
-- shared by every handle that attaches it, the last few unreferenced ones kept; identity (not
-- the name) decides what is shared; what a fork, an unlink, shm.flush_cache() and
-- LUASHM_MAP_CACHE do. Mappings are counted in /proc/self/maps, as the kernel sees them.
local lu = require "luaunit"
local H = require "helper"
local shm = require "luashm"

-- How many mappings of /dev/shm/name this process has (unlinked ones included).
local function mappings(name)
  local n = 0
  for line in io.lines("/proc/self/maps") do
    local path = line:match("%s(/dev/shm/%S+)")
    if path == "/dev/shm/" .. name then n = n + 1 end
  end
  return n
end

TestMapCache = {}

function TestMapCache:setUp()
  shm.flush_cache()
  self.names = {}
end

function TestMapCache:tearDown()
  for _, name in ipairs(self.names) do
    if shm.exists(name) then
      local b = shm.attach(name)
      b:unlink()
      b:close()
    end
  end
  shm.flush_cache()
end

function TestMapCache:block(size, opts)
  local b = shm.create(size, opts)
  self.names[#self.names + 1] = b.name
  return b
end

function TestMapCache:test_handles_of_one_block_share_one_mapping()
  local owner <close> = self:block(1 << 20)
  local a, b = shm.attach(owner.name), shm.attach(owner.name)
  lu.assertEquals(mappings(owner.name), 2) -- the creator's own, and one shared by a and b
  a:write(0, "same pages")
  lu.assertEquals(b:read(0, 10), "same pages")
  lu.assertEquals(owner:read(0, 10), "same pages")
  a:close() -- a handle of its own: closing it leaves b working
  lu.assertTrue(a.closed)
  lu.assertFalse(b.closed)
  H.assert_error({ "luashm: block '" .. owner.name .. "' is closed" }, a.read, a, 0, 1)
  lu.assertEquals(b:read(0, 4), "same")
  b:close()
end

function TestMapCache:test_closed_mapping_is_kept_reused_and_flushed()
  local owner <close> = self:block(1 << 20)
  local a = shm.open(owner.name)
  a:write(0, "x")
  a:close()
  lu.assertEquals(mappings(owner.name), 2, "kept after close")
  for _ = 1, 50 do shm.attach(owner.name):close() end
  lu.assertEquals(mappings(owner.name), 2, "reused, never mapped again")
  lu.assertTrue(shm.flush_cache() >= 1)
  lu.assertEquals(mappings(owner.name), 1)
  lu.assertEquals(shm.flush_cache(), 0)
end

-- At most 8 unreferenced mappings stay (LUASHM_MAP_CACHE), the least recently used go first.
function TestMapCache:test_unreferenced_mappings_are_bounded()
  local bs = {}
  for i = 1, 12 do
    bs[i] = self:block(4096)
    shm.attach(bs[i].name):close()
    bs[i]:close() -- only the cache maps it now
  end
  local kept = {}
  for i = 1, 12 do kept[i] = mappings(bs[i].name) end
  lu.assertEquals(kept, { 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1 })
end

-- A name unlinked and made again holds another block: the cache finds mappings by device,
-- inode and size, never by name, so it never hands out the old block's pages.
function TestMapCache:test_a_reused_name_never_gets_the_old_blocks_mapping()
  local name = "luashm_mapcache_" .. math.random(1 << 30)
  self.names[#self.names + 1] = name
  local b1 = shm.create(4096, { name = name })
  b1:write(0, "first")
  local held = shm.attach(name) -- referenced
  shm.attach(name):close()
  -- another process unlinks it (so this process's cache is not told) and makes a new one
  local w = shm.spawn(function()
    local b = shm.attach(name)
    b:unlink()
    b:close()
    local b2 = shm.create(4096, { name = name, track = false })
    b2:write(0, "second")
    b2:close()
  end)
  lu.assertIsTrue((w:join(10)))
  local again = shm.attach(name)
  lu.assertEquals(again:read(0, 6), "second")
  lu.assertEquals(held:read(0, 5), "first") -- the old block, still mapped by its handle
  again:write(0, "SECOND")
  lu.assertEquals(held:read(0, 6), "first\0")
  for _, b in ipairs({ b1, held, again }) do b:close() end
end

-- The cache keeps a mapping of the size it attached; a block resized since is mapped anew.
function TestMapCache:test_a_resized_block_is_mapped_at_its_new_size()
  local owner <close> = self:block(4096)
  shm.attach(owner.name):close()
  lu.assertTrue(select(2, H.sh("truncate -s 8192 /dev/shm/" .. owner.name)))
  local a <close> = shm.attach(owner.name)
  lu.assertEquals(#a, 8192)
  lu.assertEquals(a.size, 8192)
end

-- What the README promises about pages: a name this process unlinks takes its mappings with
-- it once no handle uses them; a block unlinked by another process stays mapped (its pages
-- alive) by the cache until this process maps another block (new mappings look for such stale
-- ones, at most every 10 ms), evicts it, or flushes the cache.
function TestMapCache:test_unlinked_blocks_and_their_pages()
  local owner = self:block(1 << 20)
  shm.attach(owner.name):close()
  owner:close()
  lu.assertEquals(mappings(owner.name), 1)
  local h = shm.attach(owner.name)
  h:unlink()
  lu.assertEquals(mappings(owner.name), 1, "a handle still uses it")
  h:close()
  lu.assertEquals(mappings(owner.name), 0, "unlinked here: unmapped with its last handle")
  local function unlinked_elsewhere()
    local b = self:block(1 << 20)
    shm.attach(b.name):close()
    b:close()
    local w = shm.spawn(function() shm.attach(b.name):unlink() end)
    lu.assertIsTrue((w:join(10)))
    lu.assertFalse(shm.exists(b.name))
    lu.assertEquals(mappings(b.name), 1, "unlinked elsewhere: held by the cache")
    lu.assertEquals(H.sh("grep -c '/dev/shm/" .. b.name .. " (deleted)' /proc/" .. H.mypid() .. "/maps"), "1\n")
    return b.name
  end
  local gone = unlinked_elsewhere()
  shm.flush_cache()
  lu.assertEquals(mappings(gone), 0, "flushed")
  gone = unlinked_elsewhere()
  local another <close> = self:block(4096)
  local nap = shm.channel({ capacity = 64, track = false })
  nap:unlink()
  nap:recv(0.02) -- new mappings look for stale ones at most every 10 ms
  nap:close()
  shm.attach(another.name):close() -- a new mapping: the stale one goes
  lu.assertEquals(mappings(gone), 0, "swept at the next new mapping")
  lu.assertEquals(mappings(another.name), 2)
end

-- A forked child starts with its parent's mappings that its copies of the parent's handles
-- reference, and unmaps the unreferenced ones at once.
function TestMapCache:test_a_forked_child_keeps_only_referenced_mappings()
  local held_owner, idle_owner = self:block(4096), self:block(4096)
  local held <close> = shm.attach(held_owner.name)
  held:write(0, "parent")
  shm.attach(idle_owner.name):close()
  held_owner:close()
  idle_owner:close()
  lu.assertEquals({ mappings(held_owner.name), mappings(idle_owner.name) }, { 1, 1 })
  local w = shm.spawn(function()
    local before = { mappings(held_owner.name), mappings(idle_owner.name) }
    local text = held:read(0, 6)
    local again = shm.attach(held_owner.name) -- shares the inherited mapping
    local shared = mappings(held_owner.name)
    again:close()
    held:close()
    return before, text, shared, mappings(held_owner.name)
  end)
  local ok, before, text, shared, after = w:join(10)
  lu.assertIsTrue(ok, before)
  lu.assertEquals(before, { 1, 0 })
  lu.assertEquals(text, "parent")
  lu.assertEquals(shared, 1)
  lu.assertEquals(after, 1) -- closed in the child: kept by the child's cache
  lu.assertEquals(held:read(0, 6), "parent") -- the parent's handle is untouched
  lu.assertEquals({ mappings(held_owner.name), mappings(idle_owner.name) }, { 1, 1 })
end

-- Each handle is still its own Block: a Lock held through one handle is released when that
-- handle closes, not when another handle of the same (shared) mapping does.
function TestMapCache:test_a_held_lock_is_released_by_its_own_handle_only()
  local lk = shm.lock()
  self.names[#self.names + 1] = lk.name
  local l1, l2 = shm.open(lk.name), shm.open(lk.name)
  lu.assertEquals(mappings(lk.name), 2)
  l1:acquire()
  l2:close()
  local held = "luashm.Lock '" .. lk.name .. "' (locked)"
  lu.assertEquals(tostring(lk), held)
  local w = shm.spawn(function() return lk:acquire(0) end)
  lu.assertEquals({ w:join(10) }, { true, false })
  l1:close()
  w = shm.spawn(function()
    local ok = lk:acquire(0)
    if ok then lk:release() end
    return ok
  end)
  lu.assertEquals({ w:join(10) }, { true, true })
  lk:close()
end

-- A message carries the identity (device, inode, size) of the sender's block: a receiver that
-- maps that very block under that name shares its mapping with no syscall, even once the name
-- is gone (the sender sent the block it has, and a live mapping pins it). A forged identity
-- finds nothing unless name and identity both match a mapping this process made by that name.
local function varint(u)
  local t = {}
  while u >= 0x80 do
    t[#t + 1] = string.char((u & 0x7f) | 0x80)
    u = u >> 7
  end
  t[#t + 1] = string.char(u)
  return table.concat(t)
end

local function refid_message(name, dev, ino, size)
  return "\1\1\8" .. varint(#name) .. name .. "\5block" .. varint(dev) .. varint(ino) ..
    varint(size) .. "\0"
end

local function identity(name)
  local dev, ino = H.sh("stat -c '%d %i' /dev/shm/" .. name):match("^(%d+) (%d+)")
  return math.tointeger(dev), math.tointeger(ino)
end

function TestMapCache:test_a_message_carries_the_identity()
  local owner = self:block(4096)
  owner:write(0, "sent")
  local msg = shm.encode(owner)
  lu.assertEquals(msg:byte(3), 8) -- REFID: a created block knows its identity
  local ch, back = shm.channel(), shm.channel()
  ch:unlink()
  back:unlink()
  local w = shm.spawn(function()
    local first = ch:recv(10) -- a new mapping, cached
    first:close()
    back:send(true)
    local again = ch:recv(10) -- the name is gone by now: found by identity
    return again:read(0, 4), again.name == owner.name
  end)
  ch:send(owner)
  lu.assertIsTrue(back:recv(10))
  owner:unlink()
  ch:send(owner)
  lu.assertEquals({ w:join(10) }, { true, "sent", true })
  owner:close()
  ch:close()
  back:close()
  -- forged: the identity of a block this process maps, under another block's name
  local a, b = self:block(4096), self:block(4096)
  a:write(0, "A")
  b:write(0, "B")
  local cached = shm.attach(b.name)
  local dev, ino = identity(b.name)
  local got = shm.decode(refid_message(a.name, dev, ino, 4096))
  lu.assertEquals(got:read(0, 1), "A")
  local right = shm.decode(refid_message(b.name, dev, ino, 4096))
  lu.assertEquals(right:read(0, 1), "B")
  lu.assertEquals(mappings(b.name), 2) -- the creator's, and the one shared by cached and right
  for _, x in ipairs({ got, right, cached, a, b }) do x:close() end
  H.assert_error({ "no such block" }, shm.decode, refid_message("luashm_no_such_block_here", dev, ino, 4096))
end

-- LUASHM_MAP_CACHE=0 turns the cache off: every attach maps, every close unmaps.
function TestMapCache:test_cache_off()
  local owner <close> = self:block(4096)
  local out, err, ok = H.run_code("LUASHM_MAP_CACHE=0 " .. H.shell_quote(H.host), [[
local function mappings(name)
  local n = 0
  for line in io.lines("/proc/self/maps") do
    if line:match("%s(/dev/shm/%S+)") == "/dev/shm/" .. name then n = n + 1 end
  end
  return n
end
local a, b = shm.attach(arg[1]), shm.attach(arg[1])
local two = mappings(arg[1])
a:close()
b:close()
print(two, mappings(arg[1]), shm.flush_cache())
]], owner.name)
  lu.assertTrue(ok, err)
  lu.assertEquals(out, "2\t0\t0\n")
end

os.exit(lu.LuaUnit.run())
