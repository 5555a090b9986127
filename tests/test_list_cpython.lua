-- CPython's own ShareableList tests (Lib/test/_test_multiprocessing.py: _TestSharedMemory's
-- test_shared_memory_ShareableList_basics, _pickling, _pickling_dead_object, and the
-- ShareableList parts of _SharedMemoryManager_basics), ported to LuaUnit. Python's 0-based
-- indexes become 1-based; IndexError on reads becomes nil (API.md: reads outside 1..#l are nil);
-- pickling becomes what a List does to cross a process boundary: travel by name.
local lu = require "luaunit"
local H = require "helper"
local shm = require "luashm"

TestListCPython = {}

function TestListCPython:setUp() self.names = {} end

function TestListCPython:tearDown()
  for _, name in ipairs(self.names) do
    if shm.exists(name) then shm.attach(name):unlink() end
  end
end

function TestListCPython:list(values, opts)
  local l = shm.list(values, opts)
  self.names[#self.names + 1] = l.name
  return l
end

-- A copy of a List made by Python's `ShareableList(sl, name=...)`: the same values, new block.
local function copy(l, name) return shm.list(l:totable(), { name = name }) end

-- By-name transport, the Lua counterpart of pickle.dumps / pickle.loads of a ShareableList.
local function dumps(l) return shm.encode(l) end
local function loads(msg) return shm.decode(msg) end

function TestListCPython:test_shared_memory_ShareableList_basics()
  local sl = self:list(table.pack("howdy", "HoWdY\xff", -273.154, 100, nil, true, 42))

  -- Verify __repr__
  lu.assertStrContains(tostring(sl), sl.name)
  lu.assertStrContains(tostring(sl), '{"howdy", "HoWdY\xff", -273.154, 100, nil, true, 42}')

  -- Index Out of Range (get): nil, as for a Lua table
  lu.assertNil(sl[8])
  -- Index Out of Range (set)
  H.assert_error({ "index 8 is out of range (1..7)" }, function() sl[8] = 2 end)

  -- Assign value without format change (str -> str)
  local current_format = sl.format
  sl[1] = "howdy"
  lu.assertEquals(sl.format, current_format)

  -- Verify attributes are readable.
  lu.assertEquals(sl.format, "8s8sdqxxxxxx?xxxxxxxx?q")

  -- Exercise len().
  lu.assertEquals(#sl, 7)

  -- Exercise index().
  lu.assertNil(sl:index("100"))
  lu.assertEquals(sl:index(100), 4)

  -- Exercise retrieving individual values.
  lu.assertEquals(sl[1], "howdy")
  lu.assertEquals(sl[#sl - 1], true)

  -- Exercise iterability.
  lu.assertEquals(sl:totable(), table.pack("howdy", "HoWdY\xff", -273.154, 100, nil, true, 42))

  -- Exercise modifying individual values.
  sl[4] = 42
  lu.assertEquals(sl[4], 42)
  sl[5] = "some" -- Change type at a given position.
  lu.assertEquals(sl[5], "some")
  lu.assertEquals(sl.format, "8s8sdq8sxxxxxxx?q")
  H.assert_error({ "does not fit" }, function() sl[5] = "far too many" end)
  lu.assertEquals(sl[5], "some")
  sl[1] = "encodés" -- Exactly 8 bytes of UTF-8 data
  lu.assertEquals(sl[1], "encodés")
  lu.assertEquals(sl[2], "HoWdY\xff") -- no spillage
  H.assert_error({ "does not fit" }, function() sl[1] = "encodées" end) -- Exactly 9 bytes of UTF-8 data
  lu.assertEquals(sl[2], "HoWdY\xff")
  H.assert_error({ "does not fit" }, function() sl[2] = "123456789" end)
  lu.assertEquals(sl[2], "HoWdY\xff")

  -- Exercise count().
  lu.assertEquals(sl:count(42), 2)
  lu.assertEquals(sl:count("HoWdY\xff"), 1)
  lu.assertEquals(sl:count("adios"), 0)

  -- Exercise creating a duplicate.
  local name_duplicate = "luashm_test03_duplicate_" .. math.random(1e9)
  local sl_copy = copy(sl, name_duplicate)
  self.names[#self.names + 1] = sl_copy.name
  lu.assertNotEquals(sl.name, sl_copy.name)
  lu.assertEquals(sl_copy.name, name_duplicate)
  lu.assertEquals(sl_copy:totable(), sl:totable())
  -- CPython's copy keeps "8s" for "encodés" (7 characters); sized by its 8 encoded bytes
  -- (gh-145261) a fresh slot is 8 * (8 // 8 + 1) = 16 bytes.
  lu.assertEquals(sl.format, "8s8sdq8sxxxxxxx?q")
  lu.assertEquals(sl_copy.format, "16s8sdq8sxxxxxxx?q")
  sl_copy[#sl_copy] = 77
  lu.assertEquals(sl_copy[#sl_copy], 77)
  lu.assertNotEquals(sl[#sl], 77)
  sl_copy:close()

  -- Obtain a second handle on the same ShareableList.
  local sl_tethered = shm.open(sl.name)
  lu.assertEquals(sl_tethered.name, sl.name)
  sl_tethered[#sl_tethered] = 880
  lu.assertEquals(sl[#sl], 880)
  sl_tethered:close()

  sl:close()

  -- Exercise creating an empty ShareableList.
  local empty_sl = self:list({})
  lu.assertEquals(#empty_sl, 0)
  lu.assertEquals(empty_sl.format, "")
  lu.assertEquals(empty_sl:count("any"), 0)
  lu.assertNil(empty_sl:index(nil))
  empty_sl:close()
end

function TestListCPython:test_shared_memory_ShareableList_pickling()
  local values = {}
  for i = 0, 9 do values[#values + 1] = i end
  local sl = self:list(values)
  local serialized_sl = dumps(sl)
  local deserialized_sl = loads(serialized_sl)
  lu.assertEquals(tostring(deserialized_sl):sub(1, 14), "ShareableList(")
  lu.assertEquals(deserialized_sl[#deserialized_sl], 9)
  lu.assertNotIs(deserialized_sl, sl)

  deserialized_sl[5] = "changed"
  lu.assertEquals(sl[5], "changed")
  sl[4] = "newvalue"
  lu.assertEquals(deserialized_sl[4], "newvalue")

  local big = {}
  for i = 0, 399 do big[#big + 1] = i end
  local larger_sl = self:list(big)
  local serialized_larger_sl = dumps(larger_sl)
  -- the reference is a name, whatever the list's size
  lu.assertEquals(#serialized_larger_sl, #serialized_sl)
  larger_sl:close()

  deserialized_sl:close()
  sl:close()
end

function TestListCPython:test_shared_memory_ShareableList_pickling_dead_object()
  local values = {}
  for i = 0, 9 do values[#values + 1] = i end
  local sl = shm.list(values)
  local name = sl.name
  local serialized_sl = dumps(sl)

  -- Now, we are going to kill the original object.
  -- So, unpickled one won't be able to attach to it.
  sl.block:unlink()
  sl:close()

  H.assert_error({ "luashm: attach '" .. name .. "': no such block" }, loads, serialized_sl)
end

-- The ShareableList half of test_shared_memory_SharedMemoryManager_basics: a list is
-- reattached by name with its length, and once its block is unlinked it cannot be attached.
function TestListCPython:test_shared_memory_SharedMemoryManager_basics_lists()
  local lol = {}
  for i = 5, 9 do
    local values = {}
    for k = 0, i - 1 do values[#values + 1] = k end
    lol[#lol + 1] = self:list(values)
  end
  local doppleganger_list0 = shm.open(lol[1].name)
  lu.assertEquals(#doppleganger_list0, 5)
  local held_name = lol[1].name
  for _, l in ipairs(lol) do
    l.block:unlink()
    l:close()
  end
  H.assert_error({ "no such block" }, shm.open, held_name)

  -- ShareableList("howdy") in Python is a list of its characters
  local chars = {}
  for c in ("howdy"):gmatch(".") do chars[#chars + 1] = c end
  local sl = shm.list(chars)
  held_name = sl.name
  lu.assertEquals(sl:totable(), { "h", "o", "w", "d", "y", n = 5 })
  sl.block:unlink()
  sl:close()
  H.assert_error({ "no such block" }, shm.open, held_name)
end

os.exit(lu.LuaUnit.run())
