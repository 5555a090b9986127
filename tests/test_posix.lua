-- The POSIX layer against what else /dev/shm may hold (issue 18): FIFOs, symbolic links and
-- directories are not blocks and never make a call hang; a sparse block another program made
-- gets its pages reserved when it is attached, so a full /dev/shm is an error there and never a
-- SIGBUS later; "." and ".." are invalid names.
local lu = require "luaunit"
local H = require "helper"
local shm = require "luashm"

-- Runs a snippet in a fresh host, killed after 20 s: a call that hangs fails the test instead
-- of the suite. Returns stdout, stderr, ok.
local function bounded(code)
  return H.run_code("timeout 20 " .. H.shell_quote(H.host), code)
end

TestPosix = {}

-- 18.15: ".." passed the name rules and failed as "already exists" (a directory has that name).
function TestPosix:test_dot_names_are_invalid()
  for _, name in ipairs({ ".", ".." }) do
    H.assert_error({ "luashm: create '" .. name .. "': invalid name" }, shm.create, 16, { name = name })
    H.assert_error({ "luashm: attach '" .. name .. "': invalid name" }, shm.attach, name)
    lu.assertFalse(shm.exists(name))
  end
  local ok = pcall(shm.create, 16, { name = "...", track = false })
  lu.assertTrue(ok)
  shm.attach("..."):unlink()
end

-- 18.4: shm.exists, shm.attach and shm.open opened a FIFO in /dev/shm for reading and waited for
-- a writer for ever; shm.load did the same with a FIFO's path. Now only regular files are blocks.
function TestPosix:test_fifos_links_and_directories_are_not_blocks()
  local r = math.random(1 << 30)
  local fifo, link, dir = "posix_fifo_" .. r, "posix_link_" .. r, "posix_dir_" .. r
  local real = shm.create(64, { track = false })
  H.sh(("mkfifo /dev/shm/%s && ln -s %s /dev/shm/%s && mkdir /dev/shm/%s"):format(fifo, real.name,
    link, dir))
  local out, err, ok = bounded(([[
    for _, n in ipairs({ %q, %q, %q }) do
      print(n, shm.exists(n), select(2, pcall(shm.attach, n)), select(2, pcall(shm.open, n)))
    end
    print("load", select(2, pcall(shm.load, "/dev/shm/" .. %q)))
  ]]):format(fifo, link, dir, fifo))
  H.sh(("rm -rf /dev/shm/%s /dev/shm/%s /dev/shm/%s"):format(fifo, link, dir))
  real:unlink()
  lu.assertTrue(ok, "a call hung or failed: " .. out .. err)
  local lines = {}
  for l in out:gmatch("[^\n]+") do lines[#lines + 1] = l end
  lu.assertEquals(#lines, 4, out)
  for i = 1, 3 do
    lu.assertStrContains(lines[i], "\tfalse\tluashm: attach '")
    lu.assertNotStrContains(lines[i], "\ttrue")
  end
  lu.assertStrContains(lines[1], "not a block (not a regular file)")
  lu.assertStrContains(lines[4], "luashm: load '/dev/shm/" .. fifo .. "': not a regular file")
  lu.assertTrue(shm.exists(real.name) == false)
end

-- 18.9: a block made by Python (ftruncate: sparse) was attached as it was; once /dev/shm filled
-- up, the next write to it was a SIGBUS. Now attach reserves its pages: with room, every byte is
-- writable whatever fills /dev/shm afterwards; without room, attach is an error naming the size
-- and the free space. A tiny private tmpfs on /dev/shm, as tests/test_limits.lua does.
function TestPosix:test_sparse_block_from_python_is_reserved_at_attach()
  H.need_namespace()
  local out, err, ok = H.in_small_shm("1m", ([[
    local function python(code)
      local p = io.popen(%q .. " -c " .. string.format("%%q", code))
      local r = p:read("a")
      assert(p:close(), "python failed")
      return r
    end
    -- sparse: 512 KiB asked, no page there yet
    python("import os; fd = os.open('/dev/shm/sparse', os.O_CREAT | os.O_RDWR, 0o600); os.ftruncate(fd, 524288)")
    local b = shm.attach("sparse")
    -- fill what is left of /dev/shm, then write every byte of the block
    local function fill(file)
      python("import os; v = os.statvfs('/dev/shm'); fd = os.open('/dev/shm/" .. file .. "', " ..
             "os.O_CREAT | os.O_RDWR, 0o600); v.f_bavail and os.posix_fallocate(fd, 0, v.f_bavail * v.f_frsize)")
    end
    fill("filler")
    b:write(0, ("x"):rep(b.size))
    print("written=" .. #b:read())
    b:close()
    shm.flush_cache() -- the last mapping of a closed block may stay cached: drop it
    os.remove("/dev/shm/sparse")
    fill("filler2")
    -- now a sparse block that cannot get its pages
    python("import os; fd = os.open('/dev/shm/sparse2', os.O_CREAT | os.O_RDWR, 0o600); os.ftruncate(fd, 524288)")
    print("attach=" .. select(2, pcall(shm.attach, "sparse2")))
    print("open=" .. select(2, pcall(shm.open, "sparse2")))
  ]]):format(H.python_bin))
  lu.assertTrue(ok, "the host died: " .. out .. err)
  lu.assertStrContains(out, "written=524288")
  lu.assertStrMatches(out:match("attach=([^\n]*)"),
    "luashm: attach 'sparse2': cannot reserve 524288 bytes: /dev/shm has %d+ bytes free")
  lu.assertStrContains(out:match("open=([^\n]*)"), "cannot reserve 524288 bytes")
end

os.exit(lu.LuaUnit.run())
