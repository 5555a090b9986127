-- The module "luashm.help", what shm.help shows: the reader of the reference
-- (scripts/lib/reference.lua). Both are compiled in and loaded at their first require, so that
-- no other require pays for them. It finds the entry of a value (a function or method by
-- identity, an object by its kind) or of a name, and formats it for a terminal; topics() gives
-- the parsed reference to scripts/gen_reference.lua, and fields() the property names of an
-- object to the REPL's completion.
local _, shm = ... -- the lazy part's name, the module table
local debug, math, package, string, table = debug, math, package, string, table
local io, ipairs, next, pcall, rawget, require, tostring, type =
  io, ipairs, next, pcall, rawget, require, tostring, type

local M = {}

------------------------------------------------------------------------------------------
-- The reference, parsed once
------------------------------------------------------------------------------------------

local parsed -- { topics = {...}, by_name = {}, by_lower = {} }

local function list(v)
  if type(v) == "table" then return v end
  return { v }
end

-- The kind of a name: "Array" for "Array:sum" and "Array.shape", nil for "shm.create".
local function kind_of(name)
  return name:match("^(%u[%w_]*)[:.]")
end

local function parse()
  if parsed then return parsed end
  local ref = require "luashm.reference"
  local p = { topics = {}, by_name = {}, by_lower = {}, by_kind = {} }
  local topic
  for _, rec in ipairs(ref) do
    if rec.topic then
      topic = { title = rec.topic, kind = rec.kind, var = rec.var, contract = rec.contract,
        run_examples = rec.run_examples ~= false, text = rec[1], entries = {} }
      p.topics[#p.topics + 1] = topic
      if rec.kind then p.by_kind[rec.kind] = topic end
    else
      local e = { names = list(rec[1]), sigs = list(rec[2]), text = rec[3], opts = rec.opts,
        errors = rec.errors, example = rec.example, topic = topic }
      topic.entries[#topic.entries + 1] = e
      for _, n in ipairs(e.names) do
        p.by_name[n] = e
        p.by_lower[n:lower()] = p.by_lower[n:lower()] or e
      end
    end
  end
  parsed = p
  return p
end

-- The parsed reference: a sequence of topics { title, kind, var, contract, run_examples, text,
-- entries }, each entry { names, sigs, text, opts, errors, example, topic }.
function M.topics()
  return parse().topics
end

-- The entry of a canonical name, or of the object contract for a kind that has it.
local function entry_of(name)
  local p = parse()
  local e = p.by_name[name]
  if e then return e end
  local kind, sep, member = name:match("^(%u[%w_]*)([:.])([%w_]+)$")
  local t = kind and p.by_kind[kind]
  if t and t.contract then return p.by_name["Object" .. sep .. member] end
end
M.entry = entry_of

------------------------------------------------------------------------------------------
-- What a value is
------------------------------------------------------------------------------------------

-- The kind name of a luashm object ("Array"), from its metatable's __name.
local function kind_name(v)
  local mt = debug.getmetatable(v)
  local n = type(mt) == "table" and rawget(mt, "__name")
  return type(n) == "string" and n:match("^luashm%.(%u[%w_]*)$") or nil
end

-- The method table behind a kind's metatable: __index itself, or the first upvalue of a C
-- __index (the convention of every luashm kind with fields).
local function methods_of(mt)
  local idx = rawget(mt, "__index")
  if type(idx) == "function" and debug.getinfo(idx, "S").what == "C" then
    local _, up = debug.getupvalue(idx, 1)
    idx = up
  end
  return type(idx) == "table" and idx or nil
end

-- Every kind's metatable: those in the registry ("luashm.Array"...) and those that Lua-written
-- constructors close over (shm.pool's).
local function kind_metatables()
  local found = {}
  for k, v in next, debug.getregistry() do
    if type(k) == "string" and type(v) == "table" and k:match("^luashm%.%u") and
        rawget(v, "__name") == k then
      found[k:sub(8)] = v
    end
  end
  for _, f in next, shm do
    if type(f) == "function" and debug.getinfo(f, "S").what == "Lua" then
      for i = 1, 255 do
        local name, v = debug.getupvalue(f, i)
        if not name then break end
        local n = type(v) == "table" and rawget(v, "__name")
        if type(n) == "string" and n:match("^luashm%.%u") then found[n:sub(8)] = v end
      end
    end
  end
  return found
end

-- The canonical name of a function: "shm.create", "Array:sum", "luashm.pretty.format"...
local function function_name(f)
  for k, v in next, shm do
    if v == f then return "shm." .. k end
  end
  local mpi = rawget(shm, "mpi")
  if type(mpi) == "table" then
    for k, v in next, mpi do
      if v == f then return "shm.mpi." .. k end
    end
    local loaded = package.loaded["luashm_mpi"]
    for k, v in next, type(loaded) == "table" and loaded or {} do
      if v == f then return "shm.mpi." .. k end
    end
  end
  for kind, mt in next, kind_metatables() do
    local meth = methods_of(mt)
    for k, v in next, meth or {} do
      if v == f and entry_of(kind .. ":" .. k) then return kind .. ":" .. k end
    end
  end
  for _, mod in ipairs({ "luashm.pretty", "luashm.help" }) do
    for k, v in next, type(package.loaded[mod]) == "table" and package.loaded[mod] or {} do
      if v == f then return mod .. "." .. k end
    end
  end
end

------------------------------------------------------------------------------------------
-- Names
------------------------------------------------------------------------------------------

local function topic_named(s)
  local p, low = parse(), s:lower()
  for _, t in ipairs(p.topics) do
    local title, kind = t.title:lower(), t.kind and t.kind:lower()
    if low == title or low .. "s" == title or low == kind then return t end
  end
end

-- Entries whose member name (after ':' or '.', or the last part of shm.x) is member.
local function entries_with_member(member)
  local found, seen = {}, {}
  for _, t in ipairs(parse().topics) do
    for _, e in ipairs(t.entries) do
      for _, n in ipairs(e.names) do
        if n:match("[:.]([%w_]+)$") == member and not seen[e] then
          seen[e] = true
          found[#found + 1] = { name = n, entry = e }
        end
      end
    end
  end
  return found
end

-- What a string names: an entry (and the kind asked for), a topic, or a list of candidates.
local function resolve_string(s)
  local p = parse()
  local e = entry_of(s)
  if e then return { entry = e, kind = kind_of(s) } end
  e = p.by_lower[s:lower()]
  if e then return { entry = e } end
  local t = topic_named(s)
  if t then return { topic = t } end
  e = p.by_name["shm." .. s]
  if e then return { entry = e } end
  local member = s:match("^[%w_]*[:.]([%w_]+)$") or s:match("^[%w_]+$")
  local found = member and entries_with_member(member) or {}
  if #found == 1 then return { entry = found[1].entry } end
  if #found > 1 then return { candidates = found } end
  local low = s:lower()
  for _, t2 in ipairs(p.topics) do
    for _, e2 in ipairs(t2.entries) do
      for _, n in ipairs(e2.names) do
        if n:lower():find(low, 1, true) then found[#found + 1] = { name = n, entry = e2 } end
      end
    end
  end
  return { candidates = found, unknown = s }
end

------------------------------------------------------------------------------------------
-- Text for a terminal
------------------------------------------------------------------------------------------

local function width()
  local pretty = package.loaded["luashm.pretty"]
  local w = type(pretty) == "table" and type(pretty.defaults) == "table" and pretty.defaults.width
  return math.type(w) == "integer" and w >= 40 and w or 80
end

-- Reference text without its markup (`code` shows as code).
local function plain(s)
  return (s:gsub("`([^`]*)`", "%1"):gsub("%*%*([^*]+)%*%*", "%1"))
end

-- The paragraphs of a reference text, each joined into one line: { kind = "para" or "item",
-- text } ("- " items are paragraphs of their own, without their marker).
function M.paragraphs(s)
  local out, cur = {}, nil
  for line in (s .. "\n"):gmatch("([^\n]*)\n") do
    line = line:gsub("^%s+", ""):gsub("%s+$", "")
    if line == "" then
      cur = nil
    elseif line:match("^%- ") or not cur then
      cur = { kind = line:match("^%- ") and "item" or "para", text = line:gsub("^%- ", "") }
      out[#out + 1] = cur
    else
      cur.text = cur.text .. " " .. line
    end
  end
  return out
end

-- GitHub's anchor of a Markdown heading (what a link to it says after '#'): lower case, only
-- letters, digits, spaces, '-' and '_' kept, spaces as '-'. REFERENCE.md's links and the README
-- test's link check agree through it.
function M.anchor(heading)
  return (heading:lower():gsub("[^%w%- _]", ""):gsub(" ", "-"))
end

-- Paragraphs as lines for a terminal: items keep their "- ".
local function paragraphs(s)
  local out = {}
  for i, p in ipairs(M.paragraphs(s)) do out[i] = (p.kind == "item" and "- " or "") .. p.text end
  return out
end

-- Fills the words of text into lines of at most w columns: the first line starts with first,
-- the others with rest ("- " items hang under their text).
local function fill(text, first, rest, w, out)
  if text:match("^%- ") then rest = rest .. "  " end
  local line, empty = first, true
  for word in text:gmatch("%S+") do
    if not empty and #line + 1 + #word > w then
      out[#out + 1] = line
      line, empty = rest .. word, false
    else
      line, empty = line .. (empty and "" or " ") .. word, false
    end
  end
  out[#out + 1] = line
end

-- The first sentence of a text, plain unless markup is true.
local function summary(s, markup)
  local first = paragraphs(s)[1] or ""
  for stop in first:gmatch("()%.%s+[%u`]") do
    if first:sub(stop - 1, stop - 1) ~= "." and not first:sub(1, stop):match("e%.g%.$") then
      first = first:sub(1, stop)
      break
    end
  end
  return markup and first or plain(first)
end
M.summary = summary

local function add_text(out, s, indent, w)
  for i, para in ipairs(paragraphs(plain(s))) do
    if i > 1 and not para:match("^%- ") then out[#out + 1] = "" end
    fill(para, indent, indent, w, out)
  end
end

-- e's text; asked for a kind's member that the object contract covers (kind given), with
-- the kind's receiver in the signature.
local function entry_text(e, kind)
  local w, out = width(), {}
  local t = kind and parse().by_kind[kind]
  local where = e.topic.title
  if t and t ~= e.topic then where = t.title .. ", the object contract" end
  for i, sig in ipairs(e.sigs) do
    if t and t ~= e.topic then sig = sig:gsub("^x([.:])", (t.var or "x") .. "%1") end
    out[#out + 1] = i == 1 and sig .. "    [" .. where .. "]" or sig
  end
  out[#out + 1] = ""
  add_text(out, e.text, "  ", w)
  if e.opts then
    out[#out + 1] = ""
    out[#out + 1] = "  Options:"
    local pad = 0
    for _, o in ipairs(e.opts) do pad = math.max(pad, #o[1]) end
    for _, o in ipairs(e.opts) do
      local para = table.concat(paragraphs(plain(o[2])), " ")
      fill(para, "    " .. ("%-" .. pad .. "s  "):format(o[1]), (" "):rep(6 + pad), w, out)
    end
  end
  if e.errors then
    out[#out + 1] = ""
    out[#out + 1] = "  Errors:"
    add_text(out, e.errors, "    ", w)
  end
  if e.example then
    out[#out + 1] = ""
    out[#out + 1] = "  Example:"
    for line in (e.example .. "\n"):gmatch("([^\n]*)\n") do out[#out + 1] = "    " .. line end
  end
  return table.concat(out, "\n")
end

-- The signature of an entry shortened to its call, for listings.
local function short_sig(e)
  return e.sigs[1]
end

-- One line (or a few) per entry: its signature, then its first sentence.
local function listing(out, entries, w)
  local pad = 0
  for _, e in ipairs(entries) do
    if #short_sig(e) <= 26 then pad = math.max(pad, #short_sig(e)) end
  end
  local rest = (" "):rep(pad + 4)
  for _, e in ipairs(entries) do
    local sig = short_sig(e)
    if #sig > pad then
      out[#out + 1] = "  " .. sig
      fill(summary(e.text), rest, rest, w, out)
    else
      fill(summary(e.text), "  " .. ("%-" .. pad .. "s  "):format(sig), rest, w, out)
    end
  end
end

local function topic_text(t)
  local w, out = width(), {}
  out[#out + 1] = t.title
  out[#out + 1] = ""
  add_text(out, t.text, "  ", w)
  if #t.entries > 0 then
    out[#out + 1] = ""
    listing(out, t.entries, w)
  end
  if t.contract then
    local contract = entry_of("Object.name").topic
    local names = {}
    for _, e in ipairs(contract.entries) do
      names[#names + 1] = (e.sigs[1]:gsub("^x([.:])", (t.var or "x") .. "%1"))
    end
    out[#out + 1] = ""
    out[#out + 1] = "  And the object contract (help(\"Object\")): " .. table.concat(names, "  ")
  end
  if t.kind then
    out[#out + 1] = ""
    out[#out + 1] = ("  help(\"%s:<method>\") or help(%s.<method>) shows one entry."):format(t.kind,
      t.var or "x")
  end
  return table.concat(out, "\n")
end

local function topics_text()
  local out, w = {}, width()
  out[#out + 1] = ("luashm %s. help(x) for a function, method or object (help(shm.array), "
    .. "help(a.sum), help(a)), or a name: help(\"array\"), help(\"Array:sum\"), help(\"sum\")."):format(
    tostring(shm.version))
  local lines = {}
  fill(out[1], "", "", w, lines)
  out = lines
  out[#out + 1] = ""
  out[#out + 1] = "Topics:"
  local entries = {}
  for _, t in ipairs(parse().topics) do
    entries[#entries + 1] = { sigs = { ("help(%q)"):format(t.title:lower()) }, text = t.text }
  end
  listing(out, entries, w)
  return table.concat(out, "\n")
end

local function candidates_text(r)
  local out = {}
  if r.unknown then out[#out + 1] = ("No entry for %q."):format(r.unknown) end
  if #r.candidates > 0 then
    out[#out + 1] = r.unknown and "Perhaps:" or "Several entries match:"
    local entries, seen = {}, {}
    for _, c in ipairs(r.candidates) do
      if not seen[c.entry] then
        seen[c.entry] = true
        entries[#entries + 1] = { sigs = { c.name }, text = c.entry.text }
      end
    end
    listing(out, entries, width())
  else
    out[#out + 1] = "help() lists the topics."
  end
  return table.concat(out, "\n")
end

-- The help text of x, as shm.help prints it.
function M.text(x)
  if x == nil then return topics_text() end
  local tx = type(x)
  if tx == "string" then
    local r = resolve_string(x)
    if r.entry then return entry_text(r.entry, r.kind) end
    if r.topic then return topic_text(r.topic) end
    return candidates_text(r)
  end
  if tx == "function" then
    local name = function_name(x)
    local e = name and entry_of(name)
    if e then return entry_text(e, kind_of(name)) end
    return "No entry: not a function of luashm. help() lists the topics."
  end
  local kind = kind_name(x)
  if kind then
    local t = parse().by_kind[kind]
    if t then return topic_text(t) end
  end
  if x == shm then return topics_text() end
  return ("No entry for a %s value. help() lists the topics."):format(tx)
end

-- What shm.help(x) does: writes the help text to the default output (io.output()), as
-- io.write does.
function M.show(x)
  io.write(M.text(x), "\n")
  io.output():flush()
end

-- The property names of a luashm object (documented fields, contract ones included), sorted;
-- {} for any other value.
function M.fields(v)
  local kind = kind_name(v)
  local t = kind and parse().by_kind[kind]
  local names, seen = {}, {}
  local function add(n)
    if not seen[n] then
      seen[n] = true
      names[#names + 1] = n
    end
  end
  if t then
    for _, e in ipairs(t.entries) do
      for _, n in ipairs(e.names) do
        local k, p = n:match("^(%u[%w_]*)%.([%w_]+)$")
        if k == kind then add(p) end
      end
    end
    if t.contract then
      for _, n in ipairs({ "name", "block", "closed" }) do add(n) end
    end
  end
  table.sort(names)
  return names
end

-- Errors of the lookups never reach the user as errors: help is what one calls when lost.
local text = M.text
M.text = function(...)
  local ok, s = pcall(text, ...)
  if ok then return s end
  return "luashm: help: " .. tostring(s)
end

return M
