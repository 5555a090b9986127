-- Resource limits (DESIGN.md invariants 1-3): a full /dev/shm is an error at create, naming the
-- size and the free space, never a SIGBUS, and leaves nothing behind; running out of file
-- descriptors is an error; name collisions; a block unlinked, closed or shrunk under another
-- process. The full-/dev/shm cases need root and unshare (a private mount namespace with a
-- 1 MiB tmpfs on /dev/shm); they skip with a message otherwise.
local lu = require "luaunit"
local H = require "helper"
local shm = require "luashm"

local in_small_shm, need_namespace = H.in_small_shm, H.need_namespace

-- ---------------------------------------------------------------------------------------
-- A full /dev/shm
-- ---------------------------------------------------------------------------------------

TestFullShm = {}

function TestFullShm:test_create_larger_than_the_tmpfs_names_size_and_free_space()
  need_namespace()
  local out, err, ok = in_small_shm("1m", [[
local ok, e = pcall(shm.create, 2 << 20)
print(ok, e)
io.write(io.popen("ls -A /dev/shm"):read("a"))
]])
  lu.assertTrue(ok, err)
  local first, listing = out:match("^([^\n]*)\n(.*)$")
  lu.assertStrMatches(first, "false\tluashm: create 'luashm_%x+': cannot reserve 2097152 bytes: "
    .. "/dev/shm has %d+ bytes free")
  local free = tonumber(first:match("has (%d+) bytes free"))
  lu.assertTrue(free > 0 and free <= 1 << 20, out)
  lu.assertNotStrContains(listing, "luashm_") -- the failed create left nothing
end

-- Fills the tmpfs with blocks, then every constructor must fail cleanly and leave nothing; every
-- byte of every block made before must still be writable (reserved, so no SIGBUS).
function TestFullShm:test_every_constructor_on_a_full_shm_is_an_error_and_leaves_nothing()
  need_namespace()
  local out, err, ok = in_small_shm("1m", [[
local held = {}
local function names()
  local set, n = {}, 0
  for name in io.popen("ls -A /dev/shm"):lines() do
    if name:match("^luashm_") then set[name] = true; n = n + 1 end
  end
  return set, n
end
local function fill(step)
  while true do
    local ok, b = pcall(shm.create, step)
    if not ok then return b end
    held[#held + 1] = b
  end
end
print("FILL", fill(64 << 10))
fill(4096)
local _, before = names()
local m = nil
local cases = {
  { "create", function() return shm.create(4096) end },
  { "create untracked", function() return shm.create(1, { track = false }) end },
  { "create named", function() return shm.create(4096, { name = "luashm_limits_named" }) end },
  { "array", function() return shm.array("f64", 1000) end },
  { "array values", function() return shm.array("i32", 3, { values = { 1, 2, 3 } }) end },
  { "list", function() return shm.list({ 1, "two", 3.5 }) end },
  { "lock", function() return shm.lock() end },
  { "barrier", function() return shm.barrier(2) end },
  { "channel", function() return shm.channel() end },
  { "manager", function() return shm.manager() end },
  { "progress", function() return shm.progress(10) end },
}
for _, c in ipairs(cases) do
  local ok, e = pcall(c[2])
  local _, after = names()
  print(c[1], ok, e, after - before)
end
-- every page of every block made before the disk filled up is there
for _, b in ipairs(held) do b:write(0, ("x"):rep(b.size)) end
print("TOUCHED", #held)
for _, b in ipairs(held) do b:unlink() end
local _, left = names()
print("LEFT", left)
]])
  lu.assertTrue(ok, err)
  lu.assertStrMatches(out:match("FILL\t[^\n]*"),
    "FILL\tluashm: create 'luashm_%x+': cannot reserve 65536 bytes: /dev/shm has %d+ bytes free")
  for _, what in ipairs({ "create", "create untracked", "create named", "array", "array values",
    "list", "lock", "barrier", "channel", "manager", "progress" }) do
    local line = out:match("\n" .. what:gsub("%p", "%%%0") .. "\t[^\n]*")
    lu.assertNotNil(line, what .. " printed nothing:\n" .. out .. err)
    lu.assertNotNil(line:match("^\n" .. what:gsub("%p", "%%%0") .. "\tfalse\tluashm: .*\t0$"),
      what .. ": must fail with a luashm error and leave no block: " .. line)
  end
  lu.assertNotNil(out:match("\ncreate\tfalse\tluashm: create 'luashm_%x+': "
    .. "cannot reserve 4096 bytes: /dev/shm has %d+ bytes free\t0\n"), out)
  lu.assertStrContains(out, "\ncreate named\tfalse\tluashm: create 'luashm_limits_named': cannot reserve "
    .. "4096 bytes")
  lu.assertNotNil(out:match("TOUCHED\t%d+"), out .. err)
  lu.assertStrContains(out, "LEFT\t0")
  lu.assertNotStrContains(err, "tracker: unlinked")
end

-- ---------------------------------------------------------------------------------------
-- File descriptors
-- ---------------------------------------------------------------------------------------

TestFds = {}

function TestFds:test_running_out_of_descriptors_is_an_error_then_works_again()
  local out, ok = H.sh("ulimit -n 64 && " .. H.shell_quote(H.host) .. " -e " .. H.shell_quote([[
local keep = shm.create(64) -- starts the tracker while there are descriptors left
keep:write(0, "kept")
]] .. H.USE_UP_FDS .. [[
for _, c in ipairs({
  { "create", function() return shm.create(64) end },
  { "attach", function() return shm.attach(keep.name) end },
  { "open", function() return shm.open(keep.name) end },
  { "array", function() return shm.array("u8", 8) end },
  { "list", function() return shm.list({ 1 }) end },
  { "lock", function() return shm.lock() end },
  { "channel", function() return shm.channel() end },
  { "manager", function() return shm.manager() end },
  { "spawn", function() return shm.spawn(function() return 1 end) end },
}) do
  local ok, e = pcall(c[2])
  print(c[1], ok, e)
end
for _, f in ipairs(files) do f:close() end
local b = shm.attach(keep.name)
print("AGAIN", b:read(0, 4))
local w = shm.spawn(function() return 7 end)
print("WORKER", w:join())
keep:unlink()
]]) .. " 2>&1")
  lu.assertTrue(ok, out)
  for _, what in ipairs({ "create", "attach", "open", "array", "list", "lock", "channel", "manager",
    "spawn" }) do
    lu.assertNotNil(out:match("\n" .. what .. "\tfalse\tluashm: [^\n]*Too many open files\n")
      or out:match("^" .. what .. "\tfalse\tluashm: [^\n]*Too many open files\n"), out)
  end
  lu.assertStrContains(out, "\nattach\tfalse\tluashm: attach '")
  lu.assertStrContains(out, "Too many open files")
  lu.assertStrContains(out, "AGAIN\tkept")
  lu.assertStrContains(out, "WORKER\ttrue\t7")
end

-- ---------------------------------------------------------------------------------------
-- Names
-- ---------------------------------------------------------------------------------------

TestNames = {}

-- A chosen name that exists is an error for every constructor, and the block that has it is
-- left exactly as it was (the create path never unlinks what it did not make).
function TestNames:test_chosen_name_of_an_existing_block_is_an_error_and_changes_nothing()
  local b <close> = shm.create(4096)
  b:write(0, "precious")
  local n = b.name
  for what, make in pairs({
    create = function() return shm.create(64, { name = n }) end,
    array = function() return shm.array("u8", 4, { name = n }) end,
    list = function() return shm.list({ 1 }, { name = n }) end,
    lock = function() return shm.lock({ name = n }) end,
    barrier = function() return shm.barrier(2, { name = n }) end,
    channel = function() return shm.channel({ name = n }) end,
  }) do
    H.assert_error({ "luashm: ", "'" .. n .. "'", "already exists" }, make)
    lu.assertTrue(H.in_shm(n), what)
    lu.assertEquals(b:read(0, 8), "precious", what)
    lu.assertEquals(shm.attach(n).size, 4096, what)
  end
  b:unlink()
end

-- Generated names from several processes at once, each creating as fast as it can: all
-- distinct, all 23 characters.
function TestNames:test_generated_names_never_collide_in_a_burst()
  local per = 500
  local lists = shm.parallel(2, function()
    local names = {}
    for i = 1, per do
      local b = shm.create(1, { track = false })
      names[i] = b.name
      b:unlink()
      b:close()
    end
    return table.concat(names, " ")
  end)
  local seen, count = {}, 0
  for _, l in ipairs(lists) do
    for name in l:gmatch("%S+") do
      lu.assertNil(seen[name], "collision: " .. name)
      lu.assertEquals(#name, 23)
      seen[name] = true
      count = count + 1
    end
  end
  lu.assertEquals(count, 2 * per)
end

-- ---------------------------------------------------------------------------------------
-- Unlink, close and shrink under another process
-- ---------------------------------------------------------------------------------------

TestUnderAnother = {}

-- The owner unlinks (and closes) while a worker uses its mapping: the worker keeps reading and
-- writing it; the name is gone for everybody else.
function TestUnderAnother:test_unlink_and_close_while_a_worker_uses_the_block()
  local a = shm.array("i64", 1000)
  local go, done = shm.channel(), shm.channel()
  local w = shm.spawn(function()
    local mine = shm.open(a.name)
    go:send("attached")
    assert(done:recv(10) == "unlinked")
    mine:fill(7)
    local s = mine:sum()
    return s, shm.exists(a.name)
  end)
  lu.assertEquals(go:recv(10), "attached")
  local name = a.name
  a.block:unlink()
  a:close()
  lu.assertFalse(H.in_shm(name))
  done:send("unlinked")
  lu.assertEquals({ w:join(10) }, { true, 7000, false })
  H.assert_error({ "luashm: attach '" .. name .. "': no such block" }, shm.attach, name)
  go:unlink()
  done:unlink()
end

-- Closing a block makes every view of it fail cleanly, whatever the view.
function TestUnderAnother:test_views_of_a_closed_block_fail_cleanly()
  local a = shm.array("f64", { 4, 5 })
  local views = { a, a[2], a:slice(2, 3), a:reshape(20), shm.array("u8", 8, { block = a.block }) }
  a.block:unlink()
  a.block:close()
  for i, v in ipairs(views) do
    H.assert_error({ "block is closed" }, function() return v:sum() end)
    H.assert_error({ "block is closed" }, function() v:fill(1) end)
    lu.assertTrue(v.closed, "view " .. i)
  end
  local l = shm.list({ 1, "x" })
  local same = shm.open(l.name)
  l.block:unlink()
  l.block:close()
  H.assert_error({ "luashm: list '" .. l.name .. "' is closed" }, function() return l[1] end)
  lu.assertEquals(same[2], "x") -- another handle on the same block keeps working
  same.block:close()
end

-- Python shrinks the file under an existing block: opening it again must be a clean error
-- for every kind whose header says how big it is (an NPY array, a list, a channel), never a
-- read past the end.
function TestUnderAnother:test_open_of_a_block_shrunk_below_its_header_is_a_clean_error()
  local made = {
    array = shm.array("f64", 1000),
    list = shm.list({ 1, 2, ("s"):rep(100), 4 }),
    channel = shm.channel({ capacity = 4096 }),
  }
  for kind, o in pairs(made) do
    local name = o.name
    local size = shm.attach(name).size
    local new = kind == "list" and 60 or 200
    H.python([[
import os
fd = os.open("/dev/shm/" + sys.argv[1], os.O_RDWR)
os.ftruncate(fd, int(sys.argv[2]))
os.close(fd)
]], name, tostring(new))
    lu.assertEquals(shm.attach(name).size, new, kind .. " was " .. size)
    local ok, e = pcall(shm.open, name)
    if ok then
      -- refused by its probe: then it is a plain Block of the new size, not the kind
      lu.assertEquals(debug.getmetatable(e).__name, "luashm.Block", kind)
      lu.assertEquals(e.size, new)
    else
      lu.assertStrContains(e, "luashm: ", kind)
      lu.assertStrContains(e, name, kind)
    end
    os.remove("/dev/shm/" .. name)
  end
  -- An NPY header always claims its data: the array must be an error, not a Block.
  local a = shm.array("i32", 100)
  H.sh("truncate -s 128 /dev/shm/" .. a.name)
  H.assert_error({ "luashm: open '" .. a.name .. "': " }, shm.open, a.name)
  a.block:unlink()
end

-- The documented limitation: luashm cannot stop another process that may write the file
-- from shrinking it under a live mapping; touching a page past the new end is SIGBUS in the
-- process that touches it. That process dies alone and its join names the signal.
function TestUnderAnother:test_shrunk_under_a_live_mapping_kills_only_the_toucher()
  local b = shm.create(1 << 16)
  local w = shm.spawn(function()
    local mine = shm.attach(b.name)
    os.execute("truncate -s 4096 /dev/shm/" .. b.name)
    mine:write(0, "fine") -- the first page is still there
    mine:write(8192, "past the new end")
    return "not reached"
  end)
  local ok, err = w:join(10)
  lu.assertFalse(ok)
  if os.getenv("LUASHM_SANITIZE") then
    lu.assertStrContains(err, "exited with status 1") -- ASan reports the SIGBUS and exits
  else
    lu.assertStrContains(err, "killed by signal 7")
  end
  b:unlink()
end

os.exit(lu.LuaUnit.run())
