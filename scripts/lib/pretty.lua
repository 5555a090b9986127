-- The REPL's Lua side, requireable as "luashm.pretty": a pretty printer for any Lua value
-- (nested tables with cycles detected, depth and width limited, keys sorted, strings quoted,
-- luashm objects in their __tostring form), the tab completer of the host's REPL, and the
-- session: the environment the REPL runs chunks in, where a top-level `local` lasts.
local _, shm = ... -- this lazy part's name, the module table
local debug, math, string, table = debug, math, string, table
local error, io, ipairs, load, next, pcall, rawget, rawlen, rawset, require, select,
  setmetatable, tostring, type = error, io, ipairs, load, next, pcall, rawget, rawlen, rawset,
  require, select, setmetatable, tostring, type

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
  -- A luashm object's properties, computed by its C __index: the reference lists them.
  local ok, help = pcall(require, "luashm.help")
  if not methods_only and ok and type(help) == "table" and type(help.fields) == "function" then
    local ok, fields = pcall(help.fields, v)
    for _, k in ipairs(ok and fields or {}) do names[k] = names[k] or "field" end
  end
  return names
end

-- Whether name completes partial. Names starting with "_" (private fields such as
-- shm._worker, and _G, _VERSION) are offered only when the partial starts with "_" too.
local function offers(name, partial)
  return name:sub(1, #partial) == partial and (name:sub(1, 1) ~= "_" or partial:sub(1, 1) == "_")
end

-- Completions of the word `text` (what readline hands over: identifiers joined by '.' and at
-- most one final ':'), evaluated in env (default: the REPL's session, else _G). Returns a sorted list of whole words:
-- `string.fo` -> {"string.format"}, `a:su` -> {"a:sum("}. Never raises: a path that fails to
-- evaluate completes to nothing.
function M.complete(text, env)
  env = env or M._env or globals
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

------------------------------------------------------------------------------------------
-- The session: top-level locals that last
------------------------------------------------------------------------------------------

-- Lua's own REPL forgets `local x = 1` at the end of the line (each line is a chunk). The
-- REPL runs every chunk with a session table as _ENV instead of the globals: it reads through
-- to the globals, and a name declared by a top-level `local` lives in it, so the next line
-- (and every function typed at the prompt) sees it. A chunk with top-level locals is
-- rewritten before it is loaded: `local a, b <close> = e1, e2` becomes
-- `__luashm_local({"a", "b"}, {[2] = true}, e1, e2)` (the values are computed before the
-- names exist, as for a local), `local function f` becomes `__luashm_local({"f"}); function f`.

local keywords_open = { ["function"] = true, ["do"] = true, ["if"] = true, ["repeat"] = true }
local keywords_close = { ["end"] = true, ["until"] = true }
local binary = {}
for op in ([[+ - * / // % ^ .. == ~= < <= > >= and or & | ~ << >>]]):gmatch("%S+") do
  binary[op] = true
end
local long_symbols = { "...", "..", "==", "~=", "<=", ">=", "<<", ">>", "//", "::" }

-- The tokens of a chunk ({type, text, s, e}; types name, keyword, number, string, symbol,
-- and a final eof), comments and blanks skipped. Only as much of Lua's lexer as finding
-- statements needs; the chunk has already compiled.
local function tokens(src)
  local toks, i = {}, 1
  local function add(kind, j)
    toks[#toks + 1] = { type = kind, text = src:sub(i, j), s = i, e = j }
    i = j + 1
  end
  while true do
    i = src:find("%S", i)
    if not i then break end
    local two = src:sub(i, i + 1)
    local level = src:match("^%[(=*)%[", two == "--" and i + 2 or i)
    if two == "--" then
      if level then
        local _, stop = src:find("]" .. level .. "]", i, true)
        i = (stop or #src) + 1
      else
        i = (src:find("\n", i, true) or #src) + 1
      end
    elseif level then
      local _, stop = src:find("]" .. level .. "]", i, true)
      add("string", stop or #src)
    elseif two:match("^[\"']") then
      local q, j = src:sub(i, i), i + 1
      while j <= #src and src:sub(j, j) ~= q and src:sub(j, j) ~= "\n" do
        j = j + (src:sub(j, j) == "\\" and 2 or 1)
      end
      add("string", math.min(j, #src))
    elseif src:match("^%.?%d", i) then
      local j = select(2, src:find("^[%w%.]*", i))
      while src:match("^[eEpP][%+%-]", j) do j = select(2, src:find("^[%w%.]*", j + 2)) end
      add("number", j)
    elseif src:match("^[%a_]", i) then
      local j = select(2, src:find("^[%a_][%w_]*", i))
      add(M.keywords[src:sub(i, j)] and "keyword" or "name", j)
    else
      local j = i
      for _, sym in ipairs(long_symbols) do
        if src:sub(i, i + #sym - 1) == sym then
          j = i + #sym - 1
          break
        end
      end
      add("symbol", j)
    end
  end
  toks[#toks + 1] = { type = "eof", text = "", s = #src + 1, e = #src }
  return toks
end

local brackets_open = { ["("] = true, ["["] = true, ["{"] = true }
local brackets_close = { [")"] = true, ["]"] = true, ["}"] = true }

-- The index after what closes the opener at toks[j]: brackets of type "symbol", blocks of
-- type "keyword" (opens and closes are the sets of texts that nest).
local function skip_nested(toks, j, ty, opens, closes)
  local depth = 0
  repeat
    local t = toks[j]
    if t.type == "eof" then return j end
    if t.type == ty and opens[t.text] then depth = depth + 1 end
    if t.type == ty and closes[t.text] then depth = depth - 1 end
    j = j + 1
  until depth == 0
  return j
end

local function skip_brackets(toks, j)
  return skip_nested(toks, j, "symbol", brackets_open, brackets_close)
end

local function skip_function(toks, j)
  return skip_nested(toks, j, "keyword", keywords_open, keywords_close)
end

-- The index after the expression list that starts at toks[j]: where a token can no longer
-- continue an expression (a name after a complete operand starts the next statement).
local function explist_end(toks, j)
  local operand = true -- an operand is expected next
  while true do
    local t = toks[j]
    local x, ty = t.text, t.type
    if ty == "eof" then return j end
    if operand then
      if (ty == "symbol" and (x == "-" or x == "#" or x == "~")) or (ty == "keyword" and x == "not") then
        j = j + 1
      elseif ty == "name" or ty == "number" or ty == "string" or (ty == "symbol" and x == "...")
          or (ty == "keyword" and (x == "nil" or x == "true" or x == "false")) then
        j, operand = j + 1, false
      elseif ty == "keyword" and x == "function" then
        j, operand = skip_function(toks, j), false
      elseif ty == "symbol" and (x == "(" or x == "{") then
        j, operand = skip_brackets(toks, j), false
      else
        return j
      end
    elseif ty == "symbol" and (x == "." or x == ":") then
      j = j + 2
    elseif ty == "symbol" and brackets_open[x] then
      j = skip_brackets(toks, j)
    elseif ty == "string" then
      j = j + 1
    elseif (binary[x] and (ty == "symbol" or ty == "keyword")) or (ty == "symbol" and x == ",") then
      j, operand = j + 1, true
    else
      return j
    end
  end
end

local function quote_names(names)
  local q = {}
  for i, n in ipairs(names) do q[i] = ("%q"):format(n) end
  return "{" .. table.concat(q, ", ") .. "}"
end

-- The chunk with its top-level `local` statements turned into session declarations, or nil
-- when it has none. Line numbers are kept (errors point where the user typed).
function M.rewrite_locals(src)
  local toks = tokens(src)
  local out, from, depth, changed, j = {}, 1, 0, false, 1
  while toks[j].type ~= "eof" do
    local t = toks[j]
    if t.type == "keyword" and t.text == "local" and depth == 0 then
      local nxt = toks[j + 1]
      if nxt.type == "keyword" and nxt.text == "function" then
        out[#out + 1] = src:sub(from, t.s - 1)
        out[#out + 1] = ("__luashm_local(%s);"):format(quote_names({ toks[j + 2].text }))
        from, j, changed = t.e + 1, j + 1, true
      else
        local names, close, k = {}, {}, j + 1
        while toks[k].type == "name" do
          names[#names + 1] = toks[k].text
          k = k + 1
          if toks[k].text == "<" and toks[k + 2].text == ">" then
            if toks[k + 1].text == "close" then close[#close + 1] = ("[%d] = true"):format(#names) end
            k = k + 3
          end
          if toks[k].text ~= "," then break end
          k = k + 1
        end
        local head = ("__luashm_local(%s, {%s}"):format(quote_names(names), table.concat(close, ", "))
        local stop = k - 1
        if toks[k].type == "symbol" and toks[k].text == "=" then
          stop = explist_end(toks, k + 1) - 1
          local lines = select(2, src:sub(t.s, toks[k + 1].s - 1):gsub("\n", ""))
          head = head .. ", " .. ("\n"):rep(lines) .. src:sub(toks[k + 1].s, toks[stop].e)
        else
          head = head .. ("\n"):rep(select(2, src:sub(t.s, toks[stop].e):gsub("\n", "")))
        end
        out[#out + 1] = src:sub(from, t.s - 1)
        out[#out + 1] = head .. ");"
        from, j, changed = toks[stop].e + 1, stop + 1, true
      end
    else
      if t.type == "keyword" and keywords_open[t.text] then depth = depth + 1 end
      if t.type == "keyword" and keywords_close[t.text] then depth = depth - 1 end
      j = j + 1
    end
  end
  if not changed then return nil end
  out[#out + 1] = src:sub(from)
  return table.concat(out)
end

-- The REPL's `help`: shm.help when called, a line of usage when printed.
local help_global = setmetatable({}, {
  __call = function(_, x) return shm.help(x) end,
  __tostring = function()
    return "help() lists the topics; help(x) shows the entry of a function, method, object "
      .. "or name: help(shm.array), help(a.sum), help(a), help(\"array\")"
  end,
})

-- The session's environment (made at the first call): reads go to the globals; names that a
-- top-level local declared live here; other assignments go to the globals.
function M.session()
  if M._env then return M._env end
  local declared, closers = {}, {}
  local env = setmetatable({}, {
    __index = globals,
    __newindex = function(t, k, v)
      if declared[k] then rawset(t, k, v) else globals[k] = v end
    end,
  })
  rawset(env, "__luashm_local", function(names, close, ...)
    for i, n in ipairs(names) do
      local v = (select(i, ...))
      if close and close[i] and v ~= nil and v ~= false then
        local mt = debug.getmetatable(v)
        if type(mt) ~= "table" or rawget(mt, "__close") == nil then
          error(("variable '%s' got a non-closable value"):format(n), 2)
        end
        closers[#closers + 1] = v
      end
      declared[n] = true
      rawset(env, n, v)
    end
  end)
  if globals.help == nil then rawset(env, "help", help_global) end
  M._env, M._closers = env, closers
  return env
end

-- The function the REPL runs for a chunk that compiled as fn: the chunk rewritten when it has
-- top-level locals, and in any case with the session as its _ENV.
function M.session_load(fn, chunk)
  local env = M.session()
  local src = M.rewrite_locals(chunk)
  local f = src and load(src, "=stdin", "t", env)
  if f then return f end
  if debug.getupvalue(fn, 1) == "_ENV" then debug.setupvalue(fn, 1, env) end
  return fn
end

-- The end of the session: the `<close>` locals declared at the prompt are closed, the last
-- first. Returns the messages of those that failed.
function M.session_end()
  local errors, closers = {}, M._closers or {}
  for i = #closers, 1, -1 do
    local v = closers[i]
    closers[i] = nil
    local ok, err = pcall(debug.getmetatable(v).__close, v, nil)
    if not ok then errors[#errors + 1] = tostring(err) end
  end
  return errors
end

return M
