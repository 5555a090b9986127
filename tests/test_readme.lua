-- The README as a newcomer uses it (issue 21): every ```lua block runs as written, in a fresh
-- host, exits cleanly with nothing on stderr (no error, no block left for the tracker), and
-- each `print(...) --> text` line prints that text (whitespace-insensitive); a block that
-- cannot run alone says why in a `<!-- not run: why -->` line just above it. Every ```python
-- block parses. The Quick start is exactly its two commands; every example script is
-- described; the Layout names every file of the directories it describes; every link to a file
-- or a heading leads somewhere.
local lu = require "luaunit"
local H = require "helper"
local help = require "luashm.help"

local q = H.shell_quote
local README = H.read("README.md")

-- The fenced blocks: {lang =, code =, line = first line of code, skip = reason or nil}.
local function blocks(text)
  local found, cur, prev = {}, nil, ""
  local n = 0
  for line in (text .. "\n"):gmatch("([^\n]*)\n") do
    n = n + 1
    if cur then
      if line:match("^```%s*$") then
        found[#found + 1] = cur
        cur = nil
      else
        cur.code = cur.code .. line .. "\n"
      end
    else
      local lang = line:match("^```(%w*)%s*$")
      if lang then
        cur = { lang = lang, code = "", line = n + 1, skip = prev:match("^<!%-%- not run: (.-) %-%->$") }
      end
      if line:match("%S") then prev = line end
    end
  end
  lu.assertNil(cur, "README.md ends inside a fenced block")
  return found
end

local BLOCKS = blocks(README)

-- The section of the README under the heading `title` (to the next heading of its level).
local function section(title)
  local level, rest = nil, nil
  for hashes, t, after in README:gmatch("\n(#+) ([^\n]+)\n()") do
    if t == title then
      level, rest = #hashes, README:sub(after)
      break
    end
  end
  lu.assertNotNil(rest, "README.md has no section " .. title)
  local stop = 1
  repeat
    stop = rest:find("\n#+ ", stop, false)
    if not stop then return rest end
    local h = rest:match("^\n(#+) ", stop)
    if #h <= level then return rest:sub(1, stop) end
    stop = stop + 1
  until false
end

-- A print that says on which line of the chunk it was called, so that each `-->` is checked
-- against the output of its own line (workers' prints included). It goes on the chunk's first
-- line, so that line numbers stay the README's.
local PRELUDE = "do local w, g = io.write, debug.getinfo; print = function(...) "
  .. "local t = table.pack(...); for i = 1, t.n do t[i] = tostring(t[i]) end; "
  .. "w('@', g(2, 'l').currentline, '\\t', table.concat(t, '\\t'), '\\n') end end "

local function squash(s)
  return (s:gsub("%s+", " "):gsub("^ ", ""):gsub(" $", ""))
end

TestReadme = {}

function TestReadme:test_every_lua_block_runs_and_prints_what_it_says()
  local ran, failures = 0, {}
  for _, b in ipairs(BLOCKS) do
    if b.lang == "lua" and not b.skip then
      ran = ran + 1
      local where = "README.md:" .. b.line
      -- Debian's python3 (with NumPy) for the blocks that call it, as on a user's machine.
      local out, err, ok = H.run_code("PATH=/usr/bin:$PATH " .. q(H.host), PRELUDE .. b.code)
      if not ok or err ~= "" then
        failures[#failures + 1] = ("%s: the block fails or writes to stderr:\n%s%s"):format(where, out, err)
      else
        local printed = {}
        for l, text in out:gmatch("@(%d+)\t([^\n]*)") do
          l = tonumber(l)
          printed[l] = printed[l] or {}
          table.insert(printed[l], squash(text))
        end
        local l = 0
        for line in b.code:gmatch("([^\n]*)\n") do
          l = l + 1
          local want = line:match("^%s*print%(.*%-%->%s*(.-)%s*$")
          if want then
            local got = printed[l]
            if not got then
              failures[#failures + 1] = ("README.md:%d: printed nothing, its comment says %q"):format(
                b.line + l - 1, want)
            else
              for _, g in ipairs(got) do
                if g ~= squash(want) then
                  failures[#failures + 1] = ("README.md:%d: prints %q, its comment says %q"):format(
                    b.line + l - 1, g, want)
                end
              end
            end
          end
        end
      end
    end
  end
  lu.assertTrue(ran >= 10, "only " .. ran .. " Lua blocks ran")
  lu.assertEquals(failures, {})
end

function TestReadme:test_blocks_that_do_not_run_say_why_and_every_python_block_parses()
  for _, b in ipairs(BLOCKS) do
    if b.skip then lu.assertTrue(#b.skip > 3, "README.md:" .. b.line .. ": not run, but why?") end
    if b.lang == "python" then
      local _, err, ok = H.run_code(q(H.python_bin) .. " -c "
        .. q("import ast, sys; ast.parse(open(sys.argv[1]).read())"), b.code)
      lu.assertTrue(ok, "README.md:" .. b.line .. ": the Python block does not parse: " .. err)
    end
  end
end

function TestReadme:test_quick_start_is_its_two_commands()
  local qs = section("Quick start")
  local cmds = {}
  for _, b in ipairs(blocks(qs)) do
    for line in b.code:gmatch("[^\n]+") do cmds[#cmds + 1] = line:match("^(.-)%s*#") or line end
  end
  lu.assertEquals(cmds, { "sh scripts/example.sh", "sh scripts/test.sh" })
end

function TestReadme:test_every_example_script_is_described()
  local examples = section("Examples")
  local files = H.sh("cd " .. q(H.top) .. "/scripts/examples && ls *.lua pipeline/*.lua")
  for path in files:gmatch("[^\n]+") do
    local name = path:match("[^/]+$")
    lu.assertNotNil(examples:find(name, 1, true), "the Examples section does not describe " .. path)
  end
end

function TestReadme:test_layout_names_every_file()
  local layout = section("Layout")
  local words = {}
  for w in layout:gmatch("[%w_%.%-]+") do words[w] = true end
  local missing = {}
  for _, dir in ipairs({ "bindings", "bindings/core", "host", "scripts", "scripts/lib" }) do
    local list = H.sh("cd " .. q(H.top .. "/" .. dir) .. " && for f in *; do [ -f \"$f\" ] && echo \"$f\"; done")
    for f in list:gmatch("[^\n]+") do
      if not words[f] then missing[#missing + 1] = dir .. "/" .. f end
    end
  end
  lu.assertEquals(missing, {}, "files the Layout section of README.md does not name")
end

local function anchors(text)
  local set = {}
  for h in (text):gmatch("\n#+ ([^\n]+)") do set[help.anchor(h)] = true end
  return set
end

function TestReadme:test_every_link_leads_somewhere()
  local bad = {}
  for target in README:gmatch("%]%(([^)%s]+)%)") do
    if not target:match("^%a+://") then
      local path, frag = target:match("^([^#]*)#?(.*)$")
      local text = README
      if path ~= "" then
        local f = io.open(H.top .. "/" .. path)
        text = f and path:match("%.md$") and f:read("a") or nil
        if f then f:close() else bad[#bad + 1] = target .. " (no such file)" end
      end
      if frag ~= "" and text and not anchors("\n" .. text)[frag] then
        bad[#bad + 1] = target .. " (no such heading)"
      end
    end
  end
  lu.assertEquals(bad, {})
end

os.exit(lu.LuaUnit.run())
