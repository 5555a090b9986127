-- The object contract of API.md v2, walked over every kind of object that lives in a block:
-- `name` a string field, `block` its Block, `closed` false until this handle is released,
-- `close` idempotent and never unlinking, `unlink` the same as `x.block:unlink()`, collection
-- never closing a Block the program still holds, shm.open and by-name travel giving the same
-- kind back, unknown option keys refused by name. A kind added to the registry without a row
-- below fails test_every_kind_is_covered.
local lu = require "luaunit"
local H = require "helper"
local shm = require "luashm"

-- One row per kind: how to make one (the constructor a Manager offers as m:<maker>), and its
-- metatable name.
local kinds = {
  { maker = "create", tname = "luashm.Block", make = function(o) return shm.create(64, o) end },
  { maker = "array", tname = "luashm.Array", make = function(o) return shm.array("f64", 4, o) end },
  { maker = "list", tname = "luashm.List", make = function(o) return shm.list({ 1, "x" }, o) end },
  { maker = "lock", tname = "luashm.Lock", make = function(o) return shm.lock(o) end },
  { maker = "barrier", tname = "luashm.Barrier", make = function(o) return shm.barrier(2, o) end },
  { maker = "channel", tname = "luashm.Channel", make = function(o) return shm.channel(o) end },
  { maker = "progress", tname = "luashm.Progress", make = function() return shm.progress(5) end },
}
if shm.dict then
  kinds[#kinds + 1] = { maker = "dict", tname = "luashm.Dict", make = function(o) return shm.dict(o) end }
end

local function tname(x) return debug.getmetatable(x).__name end

TestContract = {}

function TestContract:tearDown()
  collectgarbage()
end

-- The Manager offers m:<maker> for every kind of the registry that has a maker.
function TestContract:test_every_kind_is_covered()
  local m <close> = shm.manager()
  local _, methods = debug.getupvalue(debug.getmetatable(m).__index, 1)
  local have, want = {}, {}
  for name in pairs(methods) do
    if name ~= "names" and name ~= "shutdown" then have[#have + 1] = name end
  end
  for _, k in ipairs(kinds) do want[#want + 1] = k.maker end
  table.sort(have)
  table.sort(want)
  lu.assertEquals(have, want)
end

function TestContract:test_fields_close_and_unlink_of_every_kind()
  for _, k in ipairs(kinds) do
    local x = k.make()
    local name = x.name
    lu.assertEquals(type(name), "string", k.maker)
    lu.assertEquals(tname(x), k.tname)
    local b = x.block
    lu.assertEquals(tname(b), "luashm.Block", k.maker)
    lu.assertEquals(b.name, name, k.maker)
    lu.assertIs(b.block, b, k.maker) -- a Block's block is itself
    lu.assertFalse(x.closed, k.maker)
    lu.assertNotStrContains(tostring(x), "(closed)")
    x:close()
    x:close() -- idempotent
    lu.assertTrue(x.closed, k.maker)
    lu.assertTrue(b.closed, k.maker) -- the handle is the object and its mapping
    lu.assertStrContains(tostring(x), "(closed)", k.maker)
    lu.assertEquals(x.name, name, k.maker) -- the name stays readable
    lu.assertTrue(H.in_shm(name), k.maker .. ": close must never unlink")
    x:unlink()
    lu.assertFalse(H.in_shm(name), k.maker)
    H.assert_error({ "luashm: unlink '" .. name .. "': no such block" }, x.unlink, x)
  end
end

function TestContract:test_unlink_is_the_blocks_unlink_and_handles_keep_working()
  for _, k in ipairs(kinds) do
    local x = k.make()
    local name = x.name
    x.block:unlink()
    lu.assertFalse(H.in_shm(name), k.maker)
    lu.assertFalse(x.closed, k.maker) -- unlinking leaves this handle open
    H.assert_error({ "no such block" }, x.unlink, x)
    x:close()
  end
end

function TestContract:test_use_after_close_is_a_clear_error()
  local calls = {
    Block = function(x) return x:read(0, 1) end,
    Array = function(x) return x:sum() end,
    List = function(x) return x[1] end,
    Lock = function(x) return x:acquire() end,
    Barrier = function(x) return x:wait() end,
    Channel = function(x) return x:send(1) end,
    Progress = function(x) return x:add(1) end,
    Dict = function(x) return x:get("k") end,
  }
  for _, k in ipairs(kinds) do
    local x = k.make()
    local name, short = x.name, k.tname:match("luashm%.(%a+)")
    x:unlink()
    x:close()
    local ok, err = pcall(calls[short], x)
    lu.assertFalse(ok, k.maker)
    lu.assertStrContains(err, "luashm: ", k.maker)
    lu.assertStrContains(err, name, k.maker)
    lu.assertStrContains(err, "closed", k.maker)
  end
end

-- v1 bug: blk = ch.block; ch = nil; collectgarbage() left blk closed. An object's collection
-- never closes a Block the program still holds.
function TestContract:test_collection_never_closes_a_held_block()
  for _, k in ipairs(kinds) do
    local x = k.make()
    local b = x.block
    x = nil
    collectgarbage()
    collectgarbage()
    lu.assertFalse(b.closed, k.maker)
    lu.assertEquals(#b:read(0, 8), 8, k.maker)
    b:unlink()
    b:close()
  end
end

function TestContract:test_open_and_travel_by_name_give_the_same_kind()
  for _, k in ipairs(kinds) do
    local x = k.make()
    local o = shm.open(x.name)
    lu.assertEquals(tname(o), k.tname, k.maker)
    lu.assertEquals(o.name, x.name, k.maker)
    local t = shm.decode(shm.encode(x))
    lu.assertEquals(tname(t), k.tname, k.maker)
    lu.assertEquals(t.name, x.name, k.maker)
    o:close()
    t:close()
    lu.assertFalse(x.closed, k.maker) -- other handles are theirs to close
    x:unlink()
    x:close()
  end
end

function TestContract:test_unknown_option_keys_are_errors_naming_the_key()
  for _, k in ipairs(kinds) do
    if k.maker ~= "progress" then
      local fn = k.maker == "create" and "create" or k.maker
      H.assert_error({ "luashm: " .. fn .. ": unknown option 'nmae' (valid: name, track, mode" },
        k.make, { nmae = "x" })
    end
  end
  H.assert_error({ "luashm: load: unknown option 'trak'" }, shm.load, "x.npy", { trak = false })
  H.assert_error({ "luashm: manager: unknown option 'x'" }, shm.manager, { x = 1 })
  H.assert_error({ "luashm: array: unknown option '1'" }, shm.array, "f64", 2, { 5 })
end

-- The Manager's own contract: m.name is its record's name, a string field.
function TestContract:test_manager_has_a_name()
  local m <close> = shm.manager()
  lu.assertEquals(type(m.name), "string")
  lu.assertTrue(H.in_shm(m.name))
  local rec = m.name
  m:shutdown()
  lu.assertFalse(H.in_shm(rec))
end

os.exit(lu.LuaUnit.run())
