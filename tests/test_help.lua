-- The reference (scripts/lib/reference.lua) against what exists (API.md "Help and the Python
-- side"): every public name found at run time (the module table, shm.mpi, the methods and
-- properties of every kind of object, luashm.pretty and luashm.help) has an entry that help
-- answers with; every option a C function accepts is in its entry; no entry names something
-- that does not exist; every example runs and prints what its `-->` says; the generated files
-- (scripts/REFERENCE.md, host/luashm.3) are up to date; and help() finds what a user asks for.
local lu = require "luaunit"
local H = require "helper"
local shm = require "luashm"
local help = require "luashm.help"

local q = H.shell_quote
local REF = "scripts/lib/reference.lua"
local REGEN = "then run: build/luashm scripts/gen_reference.lua"

local read = H.read

local function sorted(set)
  local t = {}
  for k in pairs(set) do t[#t + 1] = k end
  table.sort(t)
  return t
end

------------------------------------------------------------------------------------------
-- Discovery: the public names, found at run time
------------------------------------------------------------------------------------------

local function public(k)
  return type(k) == "string" and k:sub(1, 1) ~= "_"
end

-- Every kind's metatable, by kind name: the registry's ("luashm.Array"...) and those the
-- Lua-written constructors close over (shm.pool's). Objects a user holds have a __tostring
-- (API.md); private userdata (the MPI finalizer) have none.
local function kinds()
  local found = {}
  for k, v in pairs(debug.getregistry()) do
    if type(k) == "string" and type(v) == "table" and rawget(v, "__name") == k and
        k:match("^luashm%.%u") and rawget(v, "__tostring") then
      found[k:sub(8)] = v
    end
  end
  for _, f in pairs(shm) do
    if type(f) == "function" and debug.getinfo(f, "S").what == "Lua" then
      local i = 1
      while debug.getupvalue(f, i) do
        local _, v = debug.getupvalue(f, i)
        local n = type(v) == "table" and rawget(v, "__name")
        if type(n) == "string" and n:match("^luashm%.%u") then found[n:sub(8)] = v end
        i = i + 1
      end
    end
  end
  return found
end

local function method_table(mt)
  local idx = rawget(mt, "__index")
  if type(idx) == "function" and debug.getinfo(idx, "S").what == "C" then
    idx = select(2, debug.getupvalue(idx, 1))
  end
  return type(idx) == "table" and idx or {}
end

-- Identifier-like string literals of the library's sources: the candidates for property
-- names, which a C __index compares against.
local function literals()
  local set = {}
  local files = H.sh("cd " .. q(H.top) .. " && ls bindings/*.c bindings/core/*.c scripts/lib/*.lua")
  for path in files:gmatch("[^\n]+") do
    for s in read(path):gmatch('"([%a_][%w_]*)"') do set[s] = true end
  end
  return set
end

-- name -> the value it names (a function, a property's value, a method's function...), for
-- every public name; kind_of[name] = kind for the names of a kind's members.
local function discover()
  local names, kind_of, missing_makers = {}, {}, {}
  for k, v in pairs(shm) do
    if public(k) and type(v) ~= "table" then names["shm." .. k] = v end
  end
  for k, v in pairs(shm.mpi) do
    if public(k) then names["shm.mpi." .. k] = v end
  end
  if shm.mpi.available() then
    for k, v in pairs(require "luashm_mpi") do
      if public(k) then names["shm.mpi." .. k] = v end
    end
  end
  for _, mod in ipairs({ "luashm.pretty", "luashm.help" }) do
    for k, v in pairs(require(mod)) do
      if public(k) then names[mod .. "." .. k] = v end
    end
  end
  local objs, dispose = H.objects()
  local candidates = literals()
  for kind, mt in pairs(kinds()) do
    local meth = method_table(mt)
    for k, f in pairs(meth) do
      if public(k) then
        names[kind .. ":" .. k] = f
        kind_of[kind .. ":" .. k] = kind
      end
    end
    local o = objs[kind]
    if o == nil then
      missing_makers[#missing_makers + 1] = kind
    else
      if type(o) == "table" then
        for k in pairs(o) do candidates[k] = true end
      end
      for k in pairs(candidates) do
        local ok, v = pcall(function() return o[k] end)
        if ok and v ~= nil and meth[k] == nil and public(k) then
          names[kind .. "." .. k] = v
          kind_of[kind .. "." .. k] = kind
        end
      end
    end
  end
  dispose()
  return names, kind_of, missing_makers
end

local NAMES, KIND_OF, MISSING_MAKERS = discover()

-- Where a new entry of name goes, for the failure messages.
local function where(name)
  local kind = KIND_OF[name]
  for _, t in ipairs(help.topics()) do
    if kind and t.kind == kind then return ("after the other entries of topic %q"):format(t.title) end
  end
  if kind then return ("under a new topic { topic = ..., kind = %q, ... }"):format(kind) end
  return "in the topic it belongs to"
end

local function sig_of(name)
  local kind, sep, member = name:match("^(%u[%w_]*)([:.])([%w_]+)$")
  if kind then
    local var = "x"
    for _, t in ipairs(help.topics()) do
      if t.kind == kind then var = t.var or var end
    end
    return (sep == ":" and "%s:%s(...)" or "%s.%s"):format(var, member)
  end
  return type(NAMES[name]) == "function" and name .. "(...)" or name
end

------------------------------------------------------------------------------------------

TestReference = {}

function TestReference:test_every_kind_of_the_library_has_a_maker_in_the_helper()
  lu.assertEquals(MISSING_MAKERS, {}, "kinds without a line in H.makers (tests/helper.lua), whose "
    .. "properties this suite cannot discover")
end

function TestReference:test_discovery_finds_what_the_contract_names()
  -- The discovery itself, checked against names API.md guarantees: were it blind, the next
  -- test could not fail.
  for _, n in ipairs({ "shm.create", "shm.open", "shm.version", "Array:sum", "Array.shape",
    "Array.name", "Block.size", "Channel:shutdown", "Channel.capacity", "Manager:array",
    "Pool:map", "Worker.pid", "Progress.count", "List.format", "luashm.pretty.format",
    "shm.mpi.shared_array" }) do
    lu.assertNotNil(NAMES[n], n .. " was not discovered")
  end
  lu.assertNil(NAMES["Channel:_die_in_send"], "private names are not public")
end

function TestReference:test_every_public_name_has_an_entry()
  local missing = {}
  for _, name in ipairs(sorted(NAMES)) do
    if not help.entry(name) then
      missing[#missing + 1] = ("  %s: add { %q, %q, [[what it does]], example = [[...]] } to %s %s")
        :format(name, name, sig_of(name), REF, where(name))
    end
  end
  lu.assertEquals(#missing, 0, ("%d public names have no entry (%s):\n%s"):format(#missing, REGEN,
    table.concat(missing, "\n")))
end

function TestReference:test_help_answers_for_every_public_function_by_identity()
  -- What help(a.sum) does: find the entry from the function value itself.
  local missing = {}
  for _, name in ipairs(sorted(NAMES)) do
    local f = NAMES[name]
    if type(f) == "function" and name:find(":", 1, true) or (type(f) == "function" and not
        KIND_OF[name]) then
      local text = help.text(f)
      if text:match("^No entry") then missing[#missing + 1] = name end
    end
  end
  lu.assertEquals(missing, {})
end

function TestReference:test_no_entry_names_what_does_not_exist()
  local stale = {}
  local mpi = shm.mpi.available()
  for _, t in ipairs(help.topics()) do
    for _, e in ipairs(t.entries) do
      for _, n in ipairs(e.names) do
        local skip = n:match("^Object[.:]") or (not mpi and n:match("^shm%.mpi%."))
        if not skip and NAMES[n] == nil then stale[#stale + 1] = n end
      end
    end
  end
  lu.assertEquals(stale, {}, "entries of " .. REF .. " for names that do not exist: remove or "
    .. "rename them, " .. REGEN)
end

function TestReference:test_contract_entries_cover_only_kinds_that_have_the_member()
  for _, t in ipairs(help.topics()) do
    if t.contract then
      lu.assertNotNil(t.var, "topic " .. t.title .. " needs var (its receiver in signatures)")
      lu.assertNotNil(NAMES[t.kind .. ".name"], t.kind .. " has the contract but no name field")
    end
  end
end

-- The option lists of the library's C functions: luashm_checkoptions(L, i, "op", list).
local function c_options()
  local block = read("bindings/core/core.h"):match('#define LUASHM_BLOCK_OPTIONS ([^\n]+)')
  local ops = {}
  local files = H.sh("cd " .. q(H.top) .. " && ls bindings/*.c")
  for path in files:gmatch("[^\n]+") do
    local src = read(path)
    for op, list in src:gmatch('luashm_checkoptions%(L, %d+, "([%w_]+)", ([%w_]+)%)') do
      local body = src:match(list .. "%[%]%s*=%s*(%b{})")
      body = body:gsub("LUASHM_BLOCK_OPTIONS", block)
      local keys = {}
      for key in body:gmatch('"([%w_]+)"') do keys[#keys + 1] = key end
      ops[op] = { keys = keys, file = path }
    end
  end
  return ops
end

function TestReference:test_every_option_of_a_c_function_is_in_its_entry()
  local ops = c_options()
  lu.assertNotNil(ops.create, "the option lists were not found in bindings/")
  local problems = {}
  for op, o in pairs(ops) do
    local e = help.entry("shm." .. op)
    for _, t in ipairs(help.topics()) do -- or a method's (a:clone)
      if not e and t.kind then e = help.entry(t.kind .. ":" .. op) end
    end
    if not e then
      problems[#problems + 1] = ("%s (%s) takes options but shm.%s has no entry"):format(op, o.file, op)
    else
      local documented = {}
      for _, opt in ipairs(e.opts or {}) do documented[opt[1]] = true end
      for _, key in ipairs(o.keys) do
        if not documented[key] then
          problems[#problems + 1] = ("option %q of %s (%s) is not in the opts of shm.%s in %s: "
            .. "add { %q, [[what it does]] }"):format(key, op, o.file, op, REF, key)
        end
        documented[key] = nil
      end
      for key in pairs(documented) do
        problems[#problems + 1] = ("shm.%s documents option %q, which %s does not accept"):format(
          op, key, o.file)
      end
    end
  end
  table.sort(problems)
  lu.assertEquals(problems, {}, REGEN)
end

function TestReference:test_every_example_runs_and_prints_what_it_says()
  local failures, ran = {}, 0
  for _, t in ipairs(help.topics()) do
    for _, e in ipairs(t.entries) do
      if t.run_examples and e.example then
        ran = ran + 1
        local out, err, ok = H.luashm(e.example)
        local want = e.example:match("%-%->%s?([^\n]*)$")
        out = out:gsub("\n$", "")
        if not ok then
          failures[#failures + 1] = ("%s: the example fails: %s"):format(e.names[1], err)
        elseif want and out ~= want then
          failures[#failures + 1] = ("%s: the example prints %q, its comment says %q"):format(
            e.names[1], out, want)
        end
      end
    end
  end
  lu.assertTrue(ran > 100, "only " .. ran .. " examples ran")
  lu.assertEquals(failures, {})
end

function TestReference:test_every_entry_has_a_signature_a_text_and_an_example()
  for _, t in ipairs(help.topics()) do
    lu.assertNotNil(t.text:match("^%S"), t.title)
    for _, e in ipairs(t.entries) do
      lu.assertTrue(#e.sigs >= 1, e.names[1])
      lu.assertNotNil(e.text:match("^%S"), e.names[1])
      lu.assertEquals(type(e.example), "string", e.names[1] .. " has no example")
    end
  end
end

function TestReference:test_generated_files_are_up_to_date()
  local out, ok = H.sh(q(H.host) .. " " .. q(H.top .. "/scripts/gen_reference.lua") .. " --check 2>&1")
  lu.assertTrue(ok, out)
end

function TestReference:test_the_man_page_renders_without_warnings()
  local _, has = H.sh("command -v man >/dev/null")
  if not has then lu.skip("man is not installed") end
  local out, ok = H.sh("MANWIDTH=80 man --warnings -l " .. q(H.top .. "/host/luashm.3")
    .. " 2>&1 >/dev/null")
  lu.assertTrue(ok)
  lu.assertEquals(out, "")
  local page = H.sh("MANWIDTH=100 man -l " .. q(H.top .. "/host/luashm.3") .. " 2>/dev/null")
  lu.assertStrContains(page, "shm.create(size [, opts])")
  lu.assertStrContains(page, "SEE ALSO")
end

------------------------------------------------------------------------------------------

TestHelp = {}

local function shown(...)
  return help.text(...)
end

function TestHelp:test_help_lists_every_topic()
  local text = shown()
  for _, t in ipairs(help.topics()) do lu.assertStrContains(text, ("help(%q)"):format(t.title:lower())) end
end

function TestHelp:test_help_of_a_function_shows_its_signature_and_example()
  local text = shown(shm.array)
  lu.assertStrMatches(text, "^shm%.array%(dtype, shape %[, opts%]%).*")
  lu.assertStrContains(text, "Options:")
  lu.assertStrContains(text, "Example:")
  lu.assertStrContains(text, "values")
end

function TestHelp:test_help_of_a_name_a_method_and_an_object()
  local a <close> = shm.array("i32", 3)
  a.block:unlink()
  lu.assertStrMatches(shown("array"), "^Arrays\n.*")
  lu.assertStrMatches(shown(a), "^Arrays\n.*")
  lu.assertStrMatches(shown(a.sum), "^a:sum%(%).*")
  lu.assertStrMatches(shown("Array:sum"), "^a:sum%(%).*")
  lu.assertStrMatches(shown("sum"), "^a:sum%(%).*")
  lu.assertStrMatches(shown("shm.create"), "^shm%.create%(.*")
  lu.assertStrMatches(shown("create"), "^shm%.create%(.*")
  lu.assertStrMatches(shown("channels"), "^Channels\n.*")
end

function TestHelp:test_the_object_contract_answers_with_the_kinds_receiver()
  lu.assertStrMatches(shown("Lock:close"), "^lk:close%(%)    %[Locks, the object contract%].*")
  local ch <close> = shm.channel()
  ch:unlink()
  lu.assertStrMatches(shown(ch), "^Channels\n.*ch%.name  ch%.block  ch%.closed.*")
end

function TestHelp:test_unknown_names_suggest_and_never_raise()
  lu.assertStrContains(shown("no_such_thing"), 'No entry for "no_such_thing"')
  lu.assertStrContains(shown("atomic"), "Array:atomic_add")
  lu.assertStrContains(shown(print), "No entry")
  lu.assertStrContains(shown({}), "No entry")
  lu.assertStrContains(shown(42), "No entry")
end

function TestHelp:test_shm_help_prints_and_the_reference_loads_only_when_asked()
  -- require "luashm" loads none of the REPL's parts (printer, help, reference): they are
  -- compiled in and loaded at their first require.
  local out, err, ok = H.luashm([[
    print(package.loaded["luashm.reference"], package.loaded["luashm.help"],
      package.loaded["luashm.pretty"])
    shm.help(shm.now)
    print(type(package.loaded["luashm.reference"]), type(package.loaded["luashm.help"]))
  ]])
  lu.assertTrue(ok, err)
  lu.assertStrMatches(out, "^nil\tnil\tnil\nshm%.now%(%)    %[Overview%]\n.*\ntable\ttable\n$")
end

function TestHelp:test_stock_lua_has_help_too()
  local out = H.sh(H.stock_lua() .. " -e " .. q([[
    local shm = require "luashm"
    shm.help("Block:read")
  ]]) .. " 2>&1")
  lu.assertStrMatches(out, "^b:read%(%[offset %[, length%]%]%).*")
end

os.exit(lu.LuaUnit.run())
