-- The REPL's pretty printer, completer and session ("luashm.pretty", scripts/lib/pretty.lua),
-- as units: what the REPL shows for each kind of value, which words a Tab completes to, and how
-- a chunk with top-level locals is rewritten to keep them in the session.
local lu = require "luaunit"
local H = require "helper"
local shm = require "luashm"
local P = require "luashm.pretty"

TestPretty = {}

function TestPretty:test_scalars_and_quoted_strings()
  lu.assertEquals(P.format(nil), "nil")
  lu.assertEquals(P.format(true), "true")
  lu.assertEquals(P.format(42), "42")
  lu.assertEquals(P.format(2.0), "2.0")
  lu.assertEquals(P.format(-1 / 0), "-inf")
  lu.assertEquals(P.format("hi"), '"hi"')
  lu.assertEquals(P.format('a"b\\c\n\t\0' .. "1\127"), '"a\\"b\\\\c\\n\\t\\0001\\127"')
  lu.assertEquals(P.format("héllo"), '"héllo"')
end

function TestPretty:test_quoted_strings_read_back_as_the_same_string()
  local s = "\0\1\2 \"quoted\" \\ \n\r\t\v\f\a\b \0019 end\255"
  lu.assertEquals(load("return " .. P.quote(s))(), s)
end

function TestPretty:test_sequence_then_sorted_keys()
  local t = { 10, 20, "x", z = 1, a = 2, [5.5] = 3, [-1] = 4, [true] = 5, ["not id"] = 6 }
  lu.assertEquals(P.format(t),
    '{10, 20, "x", [-1] = 4, [5.5] = 3, a = 2, ["not id"] = 6, z = 1, [true] = 5}')
end

function TestPretty:test_keys_in_natural_order_and_keywords_quoted()
  lu.assertEquals(P.format({ x10 = 1, x2 = 2, x1 = 3, ["end"] = 4 }),
    '{["end"] = 4, x1 = 3, x2 = 2, x10 = 1}')
end

function TestPretty:test_nested_tables_fit_on_a_line_or_break()
  lu.assertEquals(P.format({ 1, { 2, { 3 } }, k = { v = {} } }), "{1, {2, {3}}, k = {v = {}}}")
  local wide = {}
  for i = 1, 8 do wide["field" .. i] = ("v"):rep(10) end
  local out = P.format({ inner = wide, n = 1 })
  lu.assertEquals(out, table.concat({
    "{",
    "  inner = {",
    '    field1 = "vvvvvvvvvv",',
    '    field2 = "vvvvvvvvvv",',
    '    field3 = "vvvvvvvvvv",',
    '    field4 = "vvvvvvvvvv",',
    '    field5 = "vvvvvvvvvv",',
    '    field6 = "vvvvvvvvvv",',
    '    field7 = "vvvvvvvvvv",',
    '    field8 = "vvvvvvvvvv"',
    "  },",
    "  n = 1",
    "}" }, "\n"))
end

function TestPretty:test_long_sequences_share_lines_within_the_width()
  local t = {}
  for i = 1, 40 do t[i] = i end
  local out = P.format(t)
  lu.assertStrContains(out, "{\n  1, 2, 3,")
  for line in out:gmatch("[^\n]+") do lu.assertTrue(#line <= 80, line) end
  lu.assertStrContains(out, "39, 40\n}")
end

function TestPretty:test_cycles_are_detected()
  local t = { name = "root" }
  t.self = t
  t.child = { parent = t }
  local addr = tostring(t):match("0x%x+")
  lu.assertEquals(P.format(t, { width = 200 }), ('{child = {parent = <cycle: table: %s>}, name = '
    .. '"root", self = <cycle: table: %s>}'):format(addr, addr))
end

function TestPretty:test_shared_subtables_are_not_cycles()
  local shared = { 1 }
  lu.assertEquals(P.format({ shared, shared }), "{{1}, {1}}")
end

function TestPretty:test_depth_is_limited()
  local t = { { { { { { "deep" } } } } } }
  lu.assertEquals(P.format(t), "{{{{{...}}}}}")
  lu.assertEquals(P.format(t, { depth = 2 }), "{{{...}}}")
  lu.assertEquals(P.format({ {}, { {} } }, { depth = 1 }), "{{}, {...}}")
end

function TestPretty:test_width_is_limited()
  local t = {}
  for i = 1, 120 do t[i] = i end
  t.extra = true
  local out = P.format(t)
  lu.assertStrContains(out, "49, 50,\n  ... (71 more)\n}")
  lu.assertNotStrContains(out, "51")
  lu.assertEquals(P.format({ a = 1, b = 2, c = 3 }, { items = 2 }), "{a = 1, b = 2, ... (1 more)}")
end

function TestPretty:test_tables_with_tostring_and_failing_tostring()
  local pt = setmetatable({}, { __tostring = function() return "Point(1, 2)" end })
  lu.assertEquals(P.format({ pt }), "{Point(1, 2)}")
  local bad = setmetatable({}, { __tostring = function() error("boom", 0) end })
  lu.assertEquals(P.format(bad), "<table: __tostring failed: boom>")
end

function TestPretty:test_luashm_objects_show_their_tostring()
  local b <close> = shm.create(64, { track = false })
  local ok = pcall(function()
    lu.assertEquals(P.format(b), tostring(b))
    lu.assertEquals(P.format({ blk = b }), "{blk = " .. tostring(b) .. "}")
  end)
  b:unlink()
  lu.assertTrue(ok)
end

function TestPretty:test_arrays_and_lists_show_their_tostring()
  local a <close> = shm.array("f64", { 2, 3 }, { values = { { 1, 2, 3 }, { 4, 5, 6 } } })
  local name = a.name
  local ok, err = pcall(function()
    lu.assertEquals(P.format(a), tostring(a))
    lu.assertEquals(P.format({ a }, { width = 200 }), "{" .. tostring(a) .. "}")
  end)
  shm.attach(name):unlink()
  lu.assertTrue(ok, err)
  if shm.list then
    local l <close> = shm.list({ 1, "two", 3.5 })
    lu.assertEquals(P.format(l), tostring(l))
    l.block:unlink()
  end
end

function TestPretty:test_print_joins_with_tabs_or_newlines()
  local out = H.luashm([[
local P = require "luashm.pretty"
P.print(1, "a", nil)
P.print()
P.print({ 1 }, { k = ("x"):rep(90) })
]])
  lu.assertEquals(out, '1\t"a"\tnil\n\n{1}\n{\n  k = "' .. ("x"):rep(90) .. '"\n}\n')
end

------------------------------------------------------------------------------------------

TestComplete = {}

local env = setmetatable({
  tbl = { alpha = 1, alps = 2, beta = { gamma = 3 }, fn = print, ["not id"] = 1, [1] = 0 },
  str = "text",
}, { __index = _G })

function TestComplete:test_globals_and_keywords()
  lu.assertEquals(P.complete("stri", env), { "string" })
  lu.assertEquals(P.complete("tb", env), { "tbl" })
  lu.assertEquals(P.complete("functi", env), { "function" })
  lu.assertEquals(P.complete("zzz", env), {})
end

function TestComplete:test_fields_of_tables()
  lu.assertEquals(P.complete("string.fo", env), { "string.format" })
  lu.assertEquals(P.complete("tbl.al", env), { "tbl.alpha", "tbl.alps" })
  lu.assertEquals(P.complete("tbl.beta.g", env), { "tbl.beta.gamma" })
  lu.assertEquals(P.complete("tbl.", env), { "tbl.alpha", "tbl.alps", "tbl.beta", "tbl.fn" })
end

function TestComplete:test_underscore_names_only_when_asked_for()
  local e = { _hidden = 1, shown = 2, t = { _private = 1, public = 2 } }
  lu.assertEquals(P.complete("t.", e), { "t.public" })
  lu.assertEquals(P.complete("t._", e), { "t._private" })
  lu.assertEquals(P.complete("_", e), { "_hidden" })
  lu.assertNotNil(P.complete("", e)[1])
  for _, w in ipairs(P.complete("", e)) do lu.assertNotEquals(w, "_hidden") end
  lu.assertEquals(P.complete("_V", _G), { "_VERSION" })
end

function TestComplete:test_methods_only_after_a_colon()
  lu.assertEquals(P.complete("tbl:", env), { "tbl:fn(" })
  lu.assertEquals(P.complete("str:up", env), { "str:upper(" })
end

function TestComplete:test_block_methods_through_the_c_index()
  local b <close> = shm.create(8, { track = false })
  local e = setmetatable({ b = b }, { __index = _G })
  local ok, err = pcall(function()
    lu.assertEquals(P.complete("b:re", e), { "b:read(" })
    lu.assertEquals(P.complete("b:un", e), { "b:unlink(", "b:unpack(" })
    lu.assertEquals(P.complete("b:wr", e), { "b:write(" })
  end)
  b:unlink()
  lu.assertTrue(ok, err)
end

function TestComplete:test_array_methods()
  local a <close> = shm.array("i32", 4)
  local e = setmetatable({ a = a }, { __index = _G })
  local ok, err = pcall(function()
    lu.assertEquals(P.complete("a:sum", e), { "a:sum(" })
    lu.assertEquals(P.complete("a:sl", e), { "a:slice(" })
  end)
  a.block:unlink()
  lu.assertTrue(ok, err)
end

function TestComplete:test_fields_listed_by_a_metatable()
  local obj = setmetatable({}, { __index = function() end, __fields = { "shape", "size" } })
  local e = { o = obj }
  lu.assertEquals(P.complete("o.s", e), { "o.shape", "o.size" })
  lu.assertEquals(P.complete("o:s", e), {})
end

function TestComplete:test_index_chains_are_followed()
  local base = { hello = function() end }
  local cls = setmetatable({ world = function() end }, { __index = base })
  local obj = setmetatable({}, { __index = cls })
  lu.assertEquals(P.complete("o:", { o = obj }), { "o:hello(", "o:world(" })
end

function TestComplete:test_a_lua_index_function_offers_no_upvalue()
  local obj = setmetatable({}, { __index = function(_, k) return print(k) end })
  lu.assertEquals(P.complete("o:", { o = obj }), {})
end

function TestComplete:test_bad_paths_complete_to_nothing()
  local e = { t = setmetatable({}, { __index = function() error("no!") end }) }
  lu.assertEquals(P.complete("t.x.y", e), {})
  lu.assertEquals(P.complete("nothing.here", e), {})
  lu.assertEquals(P.complete("a..b", e), {})
  lu.assertEquals(P.complete("1.5", e), {})
  lu.assertEquals(P.complete("x:y:z", e), {})
  lu.assertEquals(P.complete("", { zeta = 1 })[#P.complete("", { zeta = 1 })], "zeta")
end

function TestComplete:test_properties_and_methods_of_every_kind()
  -- Every kind's documented properties complete after '.', its methods after ':' (a new kind's
  -- properties come from its entries in the reference).
  local objs, dispose = H.objects()
  local help = require "luashm.help"
  local ok, err = pcall(function()
    for kind, o in pairs(objs) do
      local e = setmetatable({ o = o }, { __index = _G })
      for _, f in ipairs(help.fields(o)) do
        lu.assertTrue(#P.complete("o." .. f, e) >= 1, kind .. "." .. f)
        lu.assertEquals(P.complete("o." .. f, e)[1]:sub(1, #f + 2), "o." .. f, kind .. "." .. f)
      end
      for _, m in ipairs(P.complete("o:", e)) do
        lu.assertNotNil(help.entry(kind .. ":" .. m:match("^o:(.-)%($")), kind .. " " .. m)
      end
    end
    lu.assertEquals(P.complete("o.sh", { o = objs.Array }), { "o.shape" })
    lu.assertEquals(P.complete("o.ca", { o = objs.Channel }), { "o.capacity" })
    lu.assertEquals(P.complete("o.co", { o = objs.Progress }), { "o.count" })
    lu.assertEquals(P.complete("o.na", { o = objs.Manager }), { "o.name", "o.names" })
  end)
  dispose()
  lu.assertTrue(ok, err)
end

------------------------------------------------------------------------------------------

TestSession = {}

function TestSession:test_top_level_locals_are_rewritten_and_nothing_else()
  lu.assertNil(P.rewrite_locals("print(1)"))
  lu.assertNil(P.rewrite_locals("do local x = 1 end function f() local y end"))
  lu.assertEquals(P.rewrite_locals("local x = 5"), '__luashm_local({"x"}, {}, 5);')
  lu.assertEquals(P.rewrite_locals("local a, b <close> = f(1,\n2), {3} print(a)"),
    '__luashm_local({"a", "b"}, {[2] = true}, f(1,\n2), {3}); print(a)')
  lu.assertEquals(P.rewrite_locals("local function f() local y = 1 return y end"),
    '__luashm_local({"f"}); function f() local y = 1 return y end')
  lu.assertEquals(P.rewrite_locals("do local z = 1 end local w -- c"),
    'do local z = 1 end __luashm_local({"w"}, {}); -- c')
  lu.assertEquals(P.rewrite_locals('local s = [[a\nlocal q]] .. "x" local t = -s'),
    '__luashm_local({"s"}, {}, [[a\nlocal q]] .. "x"); __luashm_local({"t"}, {}, -s);')
  lu.assertEquals(P.rewrite_locals("local u = t.x:y 's' {1} [2] return u"),
    "__luashm_local({\"u\"}, {}, t.x:y 's' {1} [2]); return u")
  lu.assertEquals(P.rewrite_locals("local n <const>, m =\n1"), '__luashm_local({"n", "m"}, {}, \n1);')
end

function TestSession:test_rewritten_chunks_keep_their_line_numbers()
  local src = P.rewrite_locals("local a,\nb = 1,\n2\nerror('here')")
  local f = assert(load(src, "=stdin", "t", setmetatable({ __luashm_local = function() end },
    { __index = _G })))
  local _, err = pcall(f)
  lu.assertEquals(err, "stdin:4: here")
end

function TestSession:test_the_session_environment()
  local env = P.session()
  lu.assertIs(P.session(), env)
  local function run(chunk)
    local fn = assert(load(chunk, "=stdin"))
    return P.session_load(fn, chunk)()
  end
  run("local test_session_x = 40")
  lu.assertEquals(run("return test_session_x + 2"), 42)
  lu.assertNil(rawget(_G, "test_session_x"))
  run("test_session_global = 1")
  lu.assertEquals(rawget(_G, "test_session_global"), 1)
  _G.test_session_global = nil
  run("local test_session_y, test_session_z = (function() return 1, 2, 3 end)()")
  lu.assertEquals(run("return test_session_z"), 2)
  -- a <close> local stays open until the session ends
  local closed = false
  _G.test_session_closable = function()
    return setmetatable({}, { __close = function() closed = true end })
  end
  run("local test_session_c <close> = test_session_closable()")
  lu.assertFalse(closed)
  lu.assertEquals(P.session_end(), {})
  lu.assertTrue(closed)
  _G.test_session_closable = nil
  lu.assertErrorMsgContains("variable 'test_session_bad' got a non-closable value", run,
    "local test_session_bad <close> = 1")
end

os.exit(lu.LuaUnit.run())
