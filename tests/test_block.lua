-- Blocks (API.md "Blocks"): every row, its errors, bad arguments, permissions, interop with
-- CPython's SharedMemory.
local lu = require "luaunit"
local H = require "helper"
local shm = require "luashm"

TestBlock = {}

function TestBlock:tearDown()
  if self.b then
    pcall(self.b.unlink, self.b)
    self.b:close()
    self.b = nil
  end
end

function TestBlock:test_create_is_zero_filled_with_generated_name()
  local b = shm.create(4096)
  self.b = b
  lu.assertStrMatches(b.name, "luashm_" .. ("%x"):rep(16))
  lu.assertEquals(#b.name, 23)
  lu.assertEquals(b.size, 4096)
  lu.assertEquals(#b, 4096)
  lu.assertEquals(b:read(), ("\0"):rep(4096))
  lu.assertTrue(H.in_shm(b.name))
  lu.assertFalse(b.closed)
end

function TestBlock:test_generated_names_differ()
  local seen = {}
  for _ = 1, 50 do
    local b <close> = shm.create(1)
    lu.assertNil(seen[b.name])
    seen[b.name] = true
    b:unlink()
  end
end

function TestBlock:test_mode_is_0600_and_opts_mode()
  self.b = shm.create(10)
  lu.assertEquals(H.mode(self.b.name), "600")
  local c <close> = shm.create(10, { mode = tonumber("640", 8) })
  lu.assertEquals(H.mode(c.name), "640")
  c:unlink()
end

function TestBlock:test_chosen_name_and_exclusive_create()
  local name = "luashm_test_" .. tostring(os.time()) .. tostring(math.random(1e9))
  self.b = shm.create(64, { name = name })
  lu.assertEquals(self.b.name, name)
  H.assert_error({ "luashm: create '" .. name .. "'", "already exists" }, shm.create, 64, { name = name })
end

function TestBlock:test_attach_reads_size_and_shares_bytes()
  self.b = shm.create(1000)
  self.b:write(10, "shared")
  local a <close> = shm.attach(self.b.name)
  lu.assertEquals(a.size, 1000)
  lu.assertEquals(a:read(10, 6), "shared")
  a:write(0, "x")
  lu.assertEquals(self.b:read(0, 1), "x")
end

function TestBlock:test_attach_missing_is_an_error()
  H.assert_error({ "luashm: attach 'luashm_nosuchblock0000': no such block" }, shm.attach,
    "luashm_nosuchblock0000")
end

function TestBlock:test_exists()
  self.b = shm.create(8)
  lu.assertTrue(shm.exists(self.b.name))
  lu.assertFalse(shm.exists("luashm_nosuchblock0000"))
  lu.assertFalse(shm.exists("a/b"))
  lu.assertFalse(shm.exists(""))
  lu.assertFalse(shm.exists(nil))
  lu.assertFalse(shm.exists(42))
end

function TestBlock:test_read_defaults_and_bounds()
  self.b = shm.create(16)
  self.b:write(0, "0123456789abcdef")
  lu.assertEquals(self.b:read(), "0123456789abcdef")
  lu.assertEquals(self.b:read(10), "abcdef")
  lu.assertEquals(self.b:read(3, 4), "3456")
  lu.assertEquals(self.b:read(16), "")
  lu.assertEquals(self.b:read(4, 0), "")
  H.assert_error({ "luashm: read '", "past the end", "size 16" }, self.b.read, self.b, 10, 7)
  H.assert_error({ "luashm: read '", "past the end" }, self.b.read, self.b, 17)
  H.assert_error({ "luashm: read '", "offset -1 is negative" }, self.b.read, self.b, -1)
  H.assert_error({ "length -2 is negative" }, self.b.read, self.b, 0, -2)
end

function TestBlock:test_write_bounds_keep_bytes()
  self.b = shm.create(8)
  self.b:write(6, "ab")
  lu.assertEquals(self.b:read(6), "ab")
  H.assert_error({ "luashm: write '", "past the end of the block (size 8)" }, self.b.write, self.b, 7, "ab")
  lu.assertEquals(self.b:read(6), "ab")
  H.assert_error({ "offset -1 is negative" }, self.b.write, self.b, -1, "a")
  self.b:write(8, "") -- an empty write at the end fits
end

function TestBlock:test_pack_unpack_in_place()
  self.b = shm.create(64)
  lu.assertEquals(self.b:pack(8, "<i4d", -7, 2.5), 20)
  local i, d = self.b:unpack(8, "<i4d")
  lu.assertEquals(i, -7)
  lu.assertEquals(d, 2.5)
  lu.assertEquals(select("#", self.b:unpack(8, "<i4d")), 2)
  self.b:pack(30, "z", "hi")
  lu.assertEquals(self.b:unpack(30, "z"), "hi")
  self.b:pack(40, "s1", "hello")
  lu.assertEquals(self.b:unpack(40, "s1"), "hello")
  lu.assertEquals(string.unpack("<i4", self.b:read(8, 4)), -7)
end

function TestBlock:test_pack_unpack_bounds()
  self.b = shm.create(16)
  H.assert_error({ "luashm: pack '", "past the end" }, self.b.pack, self.b, 12, "i8", 1)
  H.assert_error({ "luashm: unpack '", "past the end" }, self.b.unpack, self.b, 12, "i8")
  H.assert_error({ "luashm: unpack '", "past the end" }, self.b.unpack, self.b, 20, "i1")
  H.assert_error({ "luashm: pack '", "negative" }, self.b.pack, self.b, -1, "i1", 1)
  -- a variable-length format that runs off the end: no NUL in the block
  self.b:write(0, ("x"):rep(16))
  H.assert_error({ "luashm: unpack '", "up to the end of the block" }, self.b.unpack, self.b, 0, "z")
  -- a length prefix that lies
  self.b:pack(0, "I1", 200)
  H.assert_error({ "luashm: unpack '", "up to the end of the block" }, self.b.unpack, self.b, 0, "s1")
end

function TestBlock:test_unpack_large_variable_window()
  self.b = shm.create(100000)
  local s = ("q"):rep(70000)
  self.b:pack(5, "s4", s)
  lu.assertEquals(self.b:unpack(5, "s4"), s)
end

function TestBlock:test_close_is_idempotent_and_refuses_use()
  local b = shm.create(32)
  local name = b.name
  b:close()
  b:close()
  lu.assertTrue(b.closed)
  lu.assertStrContains(tostring(b), "(closed)")
  H.assert_error({ "luashm: block '" .. name .. "' is closed" }, b.read, b)
  H.assert_error({ "is closed" }, b.write, b, 0, "x")
  H.assert_error({ "is closed" }, b.pack, b, 0, "i1", 1)
  H.assert_error({ "is closed" }, b.unpack, b, 0, "i1")
  lu.assertTrue(H.in_shm(name), "close must not unlink")
  b:unlink()
  lu.assertFalse(H.in_shm(name))
end

function TestBlock:test_unlink_keeps_mapping_and_second_unlink_errors()
  local b = shm.create(32)
  b:write(0, "alive")
  b:unlink()
  lu.assertFalse(shm.exists(b.name))
  lu.assertEquals(b:read(0, 5), "alive")
  H.assert_error({ "luashm: unlink '" .. b.name .. "': no such block" }, b.unlink, b)
  b:close()
end

function TestBlock:test_gc_and_close_never_unlink()
  local name
  do
    local b <close> = shm.create(8)
    name = b.name
  end
  lu.assertTrue(shm.exists(name))
  local c = shm.attach(name)
  c = nil ---@diagnostic disable-line
  collectgarbage()
  collectgarbage()
  lu.assertTrue(shm.exists(name))
  shm.attach(name):unlink()
end

function TestBlock:test_tostring()
  self.b = shm.create(12)
  lu.assertEquals(tostring(self.b), "luashm.Block '" .. self.b.name .. "' (12 bytes)")
end

function TestBlock:test_fields_are_read_only()
  self.b = shm.create(12)
  H.assert_error({ "read-only" }, function() self.b.size = 5 end)
  H.assert_error({ "read-only" }, function() self.b.name = "x" end)
  lu.assertEquals(self.b.size, 12)
  lu.assertNil(self.b.nosuchfield)
end

-- Every bad argument raises an error (a luashm: one, or luaL_check*'s) and never crashes.
function TestBlock:test_bad_argument_sweep()
  local bads = { nil, true, "x", "", -1, 0, 1.5, 2 ^ 62, math.tointeger(2 ^ 62), -2 ^ 63, 0 / 0,
    math.huge, {}, print, shm }
  for i = 1, 15 do
    local v = bads[i]
    if not (math.type(v) == "integer" and v > 0 and v < 2 ^ 40) then
      H.assert_raises(shm.create, v)
    end
  end
  H.assert_error({ "luashm: create: size 0 is not positive" }, shm.create, 0)
  H.assert_error({ "luashm: create: size -5 is not positive" }, shm.create, -5)
  H.assert_error({ "luashm: create '", "cannot reserve" }, shm.create, math.tointeger(2 ^ 62))
  H.assert_raises(shm.create, 10, "notatable")
  H.assert_raises(shm.create, 10, { name = 5 })
  H.assert_raises(shm.create, 10, { mode = "rw" })
  H.assert_raises(shm.create, 10, { mode = -1 })
  H.assert_error({ "names may not contain '/'" }, shm.create, 10, { name = "a/b" })
  H.assert_error({ "names may not contain '/'" }, shm.create, 10, { name = "/lead" })
  H.assert_error({ "empty name" }, shm.create, 10, { name = "" })
  H.assert_error({ "longer than 250" }, shm.create, 10, { name = ("n"):rep(251) })
  H.assert_error({ "NUL" }, shm.attach, "a\0b")
  H.assert_error({ "longer than 250" }, shm.attach, ("n"):rep(300))
  for _, v in ipairs({ true, 12, {}, print }) do H.assert_raises(shm.attach, v) end
  H.assert_raises(shm.attach)
  local b <close> = shm.create(8)
  b:unlink()
  for _, args in ipairs({ { "x" }, { 0.5 }, { {} }, { 0, "x" }, { 0, 2 ^ 63 } }) do
    H.assert_raises(b.read, b, table.unpack(args))
  end
  H.assert_raises(b.write, b, 0)
  H.assert_raises(b.write, b, "x", "y")
  H.assert_raises(b.write, b, 0, {})
  H.assert_raises(b.pack, b)
  H.assert_raises(b.pack, b, 0, "i9x", 1)
  H.assert_raises(b.unpack, b, 0)
  H.assert_raises(b.read, "notablock")
  H.assert_raises(b.read, shm)
  H.assert_raises(b.close, 42)
end

function TestBlock:test_track_option_accepted()
  local b <close> = shm.create(8, { track = false })
  b:unlink()
  local c <close> = shm.create(8, { track = true })
  c:unlink()
end

-- Python reads what Lua wrote, Lua reads what Python wrote, through the same pages.
function TestBlock:test_python_reads_lua_bytes_and_back()
  self.b = shm.create(64)
  self.b:write(0, "from lua")
  local out = H.python([[
s = attach(sys.argv[1])
print(bytes(s.buf[:8]).decode(), s.size >= 64)
s.buf[8:19] = b"from python"
s.close()
]], self.b.name)
  lu.assertEquals(out, "from lua True\n")
  lu.assertEquals(self.b:read(8, 11), "from python")
end

function TestBlock:test_lua_attaches_a_python_block()
  local out = H.python([[
s = create(4096)
s.buf[:5] = b"hello"
print(s.name)
s.close()
]])
  local name = out:match("^(%S+)")
  local b <close> = shm.attach(name)
  lu.assertEquals(b:read(0, 5), "hello")
  lu.assertTrue(b.size >= 4096)
  b:unlink()
  lu.assertFalse(shm.exists(name))
end

function TestBlock:test_python_attaches_by_lua_chosen_name()
  local name = "luashm_interop_" .. math.random(1e9)
  self.b = shm.create(100, { name = name })
  self.b:pack(0, "<i8d", 123456789012, 0.25)
  local out = H.python([[
import struct
s = attach(sys.argv[1])
print(*struct.unpack_from("<qd", s.buf, 0))
s.close()
]], name)
  lu.assertEquals(out, "123456789012 0.25\n")
end

os.exit(lu.LuaUnit.run())
