-- ShareableList interop with the real CPython (/usr/bin/python3), both ways: lists made in Lua
-- read by ShareableList(name=...) with the same values, Python types and format; lists made by
-- Python opened with shm.open; writes from each side, type changes included, seen by the other.
local lu = require "luaunit"
local H = require "helper"
local shm = require "luashm"

-- Python's 3.11 resource tracker unlinks what a Python process created or attached when it
-- exits: every list the snippets touch is unregistered.
local PY_LIST = [[
def attach_list(name):
    sl = shared_memory.ShareableList(name=name)
    resource_tracker.unregister(sl.shm._name, "shared_memory")
    return sl
def create_list(seq, name=None):
    sl = shared_memory.ShareableList(seq, name=name)
    resource_tracker.unregister(sl.shm._name, "shared_memory")
    return sl
]]

local function py(code, ...) return H.python(PY_LIST .. code, ...) end

TestListInterop = {}

H.keeps_lists(TestListInterop)

-- Runs a Python snippet that prints the name of a list it made; returns the name.
function TestListInterop:py_list(code, ...)
  local name = py(code, ...):match("^(%S+)")
  self.names[#self.names + 1] = name
  return name
end

function TestListInterop:test_python_reads_lua_list_with_types_and_format()
  local l = self:list(table.pack("howdy", "b\xffytes", -273.154, 100, nil, true, false, 42, 2.0,
    math.maxinteger, math.mininteger, "", "€uro"))
  local out = py([[
sl = attach_list(sys.argv[1])
print(len(sl))
print(sl.format)
print([type(v).__name__ for v in sl])
print(list(sl))
sl.shm.close()
]], l.name)
  lu.assertEquals(out, table.concat({
    "13",
    "8s8sdqxxxxxx?xxxxxxxx?xxxxxxx?qdqq8s8s",
    "['str', 'bytes', 'float', 'int', 'NoneType', 'bool', 'bool', 'int', 'float', 'int', 'int', 'str', 'str']",
    "['howdy', b'b\\xffytes', -273.154, 100, None, True, False, 42, 2.0, 9223372036854775807, "
      .. "-9223372036854775808, '', '€uro']",
    "" }, "\n"))
end

-- For values whose encoded and character lengths agree, our bytes are CPython's bytes: the
-- same header, data area, formats and codes (then our exact-length area, which CPython ignores).
function TestListInterop:test_layout_is_byte_identical_to_cpython()
  local l = self:list(table.pack("howdy", -273.154, 100, nil, true, 42, "a longer string of 31 bytes....", ""))
  local out = py([[
import binascii
sl = create_list(["howdy", -273.154, 100, None, True, 42, "a longer string of 31 bytes....", ""])
print(sl.shm.size, binascii.hexlify(bytes(sl.shm.buf)).decode())
sl.shm.close(); sl.shm.unlink()
]])
  local size, hex = out:match("^(%d+) (%x+)")
  size = tonumber(size)
  local ours = l.block:read(0, size)
  lu.assertEquals((ours:gsub(".", function(c) return string.format("%02x", c:byte()) end)), hex)
  lu.assertEquals(l.block.size, ((size + 7) // 8) * 8 + 8 + 8 * #l)
end

function TestListInterop:test_lua_opens_python_list_exactly()
  local name = self:py_list([[
sl = create_list(["howdy", b"HoWdY\x00x", -273.154, 100, None, True, False, 42,
                  2**63 - 1, -2**63, "", "日本", b"", 1e300, float("inf")])
print(sl.shm.name)
sl.shm.close()
]])
  local l <close> = shm.open(name)
  lu.assertEquals(tostring(l):sub(1, 14), "ShareableList(")
  lu.assertEquals(#l, 15)
  lu.assertEquals(l:totable(), table.pack("howdy", "HoWdY\0x", -273.154, 100, nil, true, false, 42,
    math.maxinteger, math.mininteger, "", "日本", "", 1e300, math.huge))
  lu.assertEquals(math.type(l[4]), "integer")
  lu.assertEquals(math.type(l[3]), "float")
  lu.assertEquals(l.format, "8s8sdqxxxxxx?xxxxxxxx?xxxxxxx?qqq8s8s8sdd")
end

-- gh-145261 on CPython's side: 3.11 sizes "日本語" (3 characters, 9 bytes) at 8 bytes and
-- truncates it, so even CPython cannot decode it. We read the 8 bytes that are there.
function TestListInterop:test_python_truncated_multibyte_reads_raw_bytes()
  local name = self:py_list([[
sl = create_list(["日本語", "x"])
print(sl.shm.name)
sl.shm.close()
]])
  local l <close> = shm.open(name)
  lu.assertEquals(l[1], ("日本語"):sub(1, 8))
  lu.assertEquals(l[2], "x")
  l[1] = "日本"
  lu.assertEquals(py([[
sl = attach_list(sys.argv[1])
print(sl[0], sl[1])
sl.shm.close()
]], name), "日本 x\n")
end

function TestListInterop:test_writes_both_ways_with_type_changes()
  local l = self:list({ 1, "two", 3.5, true, "x" }, { slot_bytes = 16 })
  py([[
sl = attach_list(sys.argv[1])
sl[0] = "one"       # int -> str in an 8-byte slot
sl[1] = 2           # str -> int
sl[2] = None        # float -> None
sl[3] = 4.25        # bool -> float
sl[4] = b"\xfe\xff" # str -> bytes
sl.shm.close()
]], l.name)
  lu.assertEquals(l:totable(), table.pack("one", 2, nil, 4.25, "\xfe\xff"))
  lu.assertEquals(l.format, "8sqxxxxxx?xd16s")
  l[1] = false
  l[2] = "deux"
  l[3] = 3
  l[4] = "quatre"
  l[5] = nil
  lu.assertEquals(py([[
sl = attach_list(sys.argv[1])
print(list(sl), sl.format)
sl.shm.close()
]], l.name), "[False, 'deux', 3, 'quatre', None] xxxxxxx?16sq8sxxxxxx?x\n")
end

function TestListInterop:test_lua_writes_into_python_list()
  local name = self:py_list([[
sl = create_list([0, "abcdefgh", 0.5, None])
print(sl.shm.name)
sl.shm.close()
]])
  local l <close> = shm.open(name)
  l[1] = "new"
  l[2] = 12345678901234
  l[3] = "\xc3\x28" -- invalid UTF-8: bytes
  l[4] = true
  lu.assertEquals(py([[
sl = attach_list(sys.argv[1])
print(list(sl), sl.format)
sl.shm.close()
]], name), "['new', 12345678901234, b'\\xc3(', True] 8sq8sxxxxxxx?\n")
end

-- Strings become str exactly when CPython's strict UTF-8 decoder accepts them.
function TestListInterop:test_utf8_validity_matches_python()
  local cases = {
    "ascii", "é", "€", "😀", "\u{10FFFF}", "\0", "a\0b",
    "\xff", "\xc0\x80", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xe2\x82", "\x80", "\xf8\x88\x80\x80\x80",
    "\xe0\x80\x80", "\xf0\x80\x80\x80", "\xc2", "ok\xc3",
  }
  local l = self:list(cases)
  local out = py([[
sl = attach_list(sys.argv[1])
print(" ".join(type(v).__name__ for v in sl))
sl.shm.close()
]], l.name)
  local expect = {}
  for i, s in ipairs(cases) do
    expect[i] = utf8.len(s) and not s:find("\xed[\xa0-\xbf]") and "str" or "bytes"
  end
  lu.assertEquals(out, table.concat(expect, " ") .. "\n")
  for i, s in ipairs(cases) do lu.assertEquals(l[i], s, i) end
end

-- Rewriting a string slot with a string of the other kind (str <-> bytes) updates its code.
function TestListInterop:test_rewrite_switches_str_and_bytes()
  local l = self:list({ "abc", "\xff" })
  l[1] = "\xfe"
  l[2] = "text"
  lu.assertEquals(py([[
sl = attach_list(sys.argv[1])
print(list(sl))
sl.shm.close()
]], l.name), "[b'\\xfe', 'text']\n")
end

-- gh-106939 with a Python reader: the values Python sees are the stripped ones, typed right.
function TestListInterop:test_trailing_nuls_python_reads_stripped_lua_reads_exact()
  local l = self:list({ "s\0", "\xff\0\0", "\0" })
  lu.assertEquals(py([[
sl = attach_list(sys.argv[1])
print(list(sl))
sl.shm.close()
]], l.name), "['s', b'\\xff', '']\n")
  local o <close> = shm.open(l.name)
  lu.assertEquals(o:totable(), { "s\0", "\xff\0\0", "\0", n = 3 })
end

function TestListInterop:test_python_empty_list_opens_as_block_ours_as_list()
  local name = self:py_list([[
sl = create_list([])
print(sl.shm.name)
sl.shm.close()
]])
  local o <close> = shm.open(name)
  lu.assertStrContains(tostring(o), "luashm.Block")
  local l = self:list({})
  lu.assertEquals(py([[
sl = attach_list(sys.argv[1])
print(len(sl), repr(sl.format))
sl.shm.close()
]], l.name), "0 ''\n")
end

function TestListInterop:test_large_python_list()
  local name = self:py_list([[
sl = create_list([i * 3 if i % 3 else str(i) for i in range(1000)])
print(sl.shm.name)
sl.shm.close()
]])
  local l <close> = shm.open(name)
  lu.assertEquals(#l, 1000)
  for i = 0, 999 do
    lu.assertEquals(l[i + 1], i % 3 ~= 0 and i * 3 or tostring(i))
  end
end

os.exit(lu.LuaUnit.run())
