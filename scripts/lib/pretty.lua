-- The REPL's Lua side, requireable as "luashm.pretty": a pretty printer for any Lua value
-- (nested tables with cycles detected, depth and width limited, keys sorted, strings quoted,
-- luashm objects in their __tostring form) and the tab completer of the host's REPL.
local debug, math, string, table = debug, math, string, table
local io, ipairs, next, pcall, rawget, rawlen, select, tostring, type =
  io, ipairs, next, pcall, rawget, rawlen, select, tostring, type

local globals = _ENV -- the interpreter's globals, whatever the user later does to _G

local M = {}

M.defaults = { depth = 4, items = 50, width = 80, indent = "  " }

local escapes = { ['"'] = '\\"', ["\\"] = "\\\\", ["\a"] = "\\a", ["\b"] = "\\b", ["\f"] = "\\f",
  ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t", ["\v"] = "\\v" }

-- A string as Lua source would write it, on one line: UTF-8 and other high bytes pass through
-- (a terminal shows them), control bytes are escaped.
function M.quote(s)
  return '"' .. s:gsub('[%c"\\]', function(c)
    return escapes[c] or ("\\%03d"):format(c:byte())
  end) .. '"'
end

local function is_identifier(s)
  return type(s) == "string" and s:match("^[%a_][%w_]*$") ~= nil and not M.keywords[s]
end

M.keywords = {}
for w in ([[and break do else elseif end false for function goto if in local nil not or
  repeat return then true until while]]):gmatch("%a+") do M.keywords[w] = true end

-- Strings in natural order: digit runs compare as numbers, so "x2" comes before "x10".
local function natural_less(a, b)
  local i, j = 1, 1
  while i <= #a and j <= #b do
    local da, db = a:match("^%d+", i), b:match("^%d+", j)
    if da and db then
      if da ~= db then
        local va, vb = da:match("^0*(.*)$"), db:match("^0*(.*)$")
        if #va ~= #vb then return #va < #vb end
        if va ~= vb then return va < vb end
        return #da < #db
      end
      i, j = i + #da, j + #db
    else
      local ca, cb = a:byte(i), b:byte(j)
      if ca ~= cb then return ca < cb end
      i, j = i + 1, j + 1
    end
  end
  return i > #a and j <= #b
end

-- Key order: numbers ascending, then strings in natural order, then the other types by name.
local type_rank = { number = 1, string = 2, boolean = 3 }
local function key_less(a, b)
  local ta, tb = type(a), type(b)
  local ra, rb = type_rank[ta] or 4, type_rank[tb] or 4
  if ra ~= rb then return ra < rb end
  if ta ~= tb then return ta < tb end
  if ta == "number" then return a < b end
  if ta == "string" then return natural_less(a, b) end
  if ta == "boolean" then return not a and b end
  return tostring(a) < tostring(b)
end

-- tostring that never raises: a failing __tostring is shown, not propagated.
local function safe_tostring(v)
  local ok, s = pcall(tostring, v)
  if ok and type(s) == "string" then return s end
  return ("<%s: __tostring failed: %s>"):format(type(v), tostring(s))
end

local function has_meta(v, event)
  local mt = debug.getmetatable(v)
  return type(mt) == "table" and rawget(mt, event) ~= nil
end

local render

local function render_key(k, opts, depth, path)
  if is_identifier(k) then return k end
  return "[" .. render(k, opts, depth, path, 0) .. "]"
end

-- The table t as entries (strings already rendered), then joined on one line when it fits in
-- the width left at this column, else one entry per line.
local function render_table(t, opts, depth, path, column)
  if path[t] then return "<cycle: " .. safe_tostring(t) .. ">" end
  if next(t) == nil then return "{}" end
  if depth >= opts.depth then return "{...}" end
  path[t] = true
  local inner = column + #opts.indent
  local entries, n, shown, multiline = {}, 0, 0, false
  local function add(s)
    entries[#entries + 1] = s
    if s:find("\n", 1, true) then multiline = true end
  end
  for i = 1, rawlen(t) do
    if rawget(t, i) == nil then break end
    n = i
    if shown < opts.items then
      shown = shown + 1
      add(render(rawget(t, i), opts, depth + 1, path, inner))
    end
  end
  local items = shown
  local keys = {}
  for k in next, t do
    if not (math.type(k) == "integer" and k >= 1 and k <= n) then keys[#keys + 1] = k end
  end
  table.sort(keys, key_less)
  for _, k in ipairs(keys) do
    if shown >= opts.items then break end
    shown = shown + 1
    local ks = render_key(k, opts, depth + 1, path)
    add(ks .. " = " .. render(rawget(t, k), opts, depth + 1, path, inner + #ks + 3))
  end
  path[t] = nil
  local more = n + #keys - shown
  if more > 0 then add(("... (%d more)"):format(more)) end
  local line = "{" .. table.concat(entries, ", ") .. "}"
  if not multiline and column + #line <= opts.width then return line end
  -- One entry per line, except that one-line items of the sequence part share lines.
  local pad = opts.indent:rep(depth + 1)
  local lines, cur = {}, nil
  for i, e in ipairs(entries) do
    local packable = i <= items and not e:find("\n", 1, true)
    if cur and packable and #pad + #cur + 2 + #e + 1 <= opts.width then
      cur = cur .. ", " .. e
    else
      if cur then lines[#lines + 1] = cur end
      cur = e
    end
    if not packable then
      lines[#lines + 1] = cur
      cur = nil
    end
  end
  lines[#lines + 1] = cur
  return "{\n" .. pad .. table.concat(lines, ",\n" .. pad) .. "\n" .. opts.indent:rep(depth) .. "}"
end

function render(v, opts, depth, path, column)
  local tv = type(v)
  if tv == "string" then return M.quote(v) end
  if tv == "table" and not has_meta(v, "__tostring") then
    return render_table(v, opts, depth, path, column)
  end
  return safe_tostring(v)
end

-- The value v as a string. opts (all optional): depth (levels of nested tables shown, 4),
-- items (entries shown per table, 50), width (columns before a table breaks into lines, 80),
-- indent ("  "). Tables with a __tostring, userdata (Arrays, Lists, Blocks...) and the other
-- types show their tostring form; strings are quoted.
function M.format(v, opts)
  local o = {}
  for k, d in next, M.defaults do o[k] = (opts and opts[k]) or d end
  return render(v, o, 0, {}, 0)
end

-- The REPL's printer: formats each value, on one line separated by tabs when every value fits
-- on a line (as lua.c prints), else one value after another on separate lines.
function M.print(...)
  local n, parts, sep = select("#", ...), {}, "\t"
  for i = 1, n do
    parts[i] = M.format((select(i, ...)))
    if parts[i]:find("\n", 1, true) then sep = "\n" end
  end
  io.stdout:write(table.concat(parts, sep), "\n")
  io.stdout:flush()
end

------------------------------------------------------------------------------------------
-- Completion
------------------------------------------------------------------------------------------

-- The method table behind a value's metatable, following __index: a table (possibly with its
-- own __index chain) or, for luashm's types that index in C, the method table that is the first
-- upvalue of the C __index function (the convention every luashm type follows).
local function index_tables(v)
  local found, mt, hops = {}, debug.getmetatable(v), 0
  while type(mt) == "table" and hops < 8 do
    hops = hops + 1
    local idx = rawget(mt, "__index")
    if type(idx) == "function" then
      -- only a C function: a Lua function's first upvalue is often _ENV
      local _, up
      if debug.getinfo(idx, "S").what == "C" then _, up = debug.getupvalue(idx, 1) end
      if type(up) == "table" then found[#found + 1] = up end
      break
    elseif type(idx) == "table" then
      found[#found + 1] = idx
      mt = debug.getmetatable(idx)
    else
      break
    end
  end
  return found, debug.getmetatable(v)
end

-- Candidate names for fields of v: its own keys when a table, what its metatable's __index
-- offers, and the property names a luashm type lists in its metatable's __fields.
local function field_names(v, methods_only)
  local names = {}
  local function add_from(t)
    for k, x in next, t do
      if is_identifier(k) and (not methods_only or type(x) == "function"
          or has_meta(x, "__call")) then
        names[k] = type(x)
      end
    end
  end
  if type(v) == "table" then add_from(v) end
  local tables, mt = index_tables(v)
  for _, t in ipairs(tables) do add_from(t) end
  if not methods_only and type(mt) == "table" and type(rawget(mt, "__fields")) == "table" then
    for _, k in ipairs(rawget(mt, "__fields")) do names[k] = names[k] or "field" end
  end
  return names
end

-- Whether name completes partial. Names starting with "_" (private fields such as
-- shm._worker, and _G, _VERSION) are offered only when the partial starts with "_" too.
local function offers(name, partial)
  return name:sub(1, #partial) == partial and (name:sub(1, 1) ~= "_" or partial:sub(1, 1) == "_")
end

-- Completions of the word `text` (what readline hands over: identifiers joined by '.' and at
-- most one final ':'), evaluated in env (default _G). Returns a sorted list of whole words:
-- `string.fo` -> {"string.format"}, `a:su` -> {"a:sum("}. Never raises: a path that fails to
-- evaluate completes to nothing.
function M.complete(text, env)
  env = env or globals
  local head, sep, partial = text:match("^(.-)([.:])([%w_]*)$")
  local matches = {}
  if not head then
    partial = text:match("^[%a_][%w_]*$") or (text == "" and "")
    if not partial then return matches end
    for k in next, field_names(env) do
      if offers(k, partial) then matches[#matches + 1] = k end
    end
    for k in next, M.keywords do
      if offers(k, partial) then matches[#matches + 1] = k end
    end
    table.sort(matches)
    return matches
  end
  if not (head:match("^[%a_][%w_]*$") or head:match("^[%a_][%w_]*[%.%w_]*[%w_]$")) or
      head:find("..", 1, true) then
    return matches
  end
  local ok, v = pcall(function()
    local x = env
    for name in head:gmatch("[^.]+") do x = x[name] end
    return x
  end)
  if not ok or v == nil then return matches end
  local method = sep == ":"
  for k in next, field_names(v, method) do
    if offers(k, partial) then
      matches[#matches + 1] = head .. sep .. k .. (method and "(" or "")
    end
  end
  table.sort(matches)
  return matches
end

return M
