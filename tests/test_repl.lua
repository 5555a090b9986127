-- The REPL (API.md "The host"), driven under a real pseudo-terminal by tmux: what the screen
-- shows after keys are typed. Each test runs its own REPL in its own tmux server (a private
-- socket) with HOME in a temporary directory, so the history file is the test's own.
local lu = require "luaunit"
local H = require "helper"
local shm = require "luashm"

local q = H.shell_quote
local has_tmux = select(2, H.sh("command -v tmux >/dev/null 2>&1")) == true
local TIMEOUT = 15 -- seconds to wait for the screen (sanitizer builds are slow)

local function random_hex(n)
  local f = assert(io.open("/dev/urandom", "rb"))
  local s = f:read(n)
  f:close()
  return (s:gsub(".", function(c) return ("%02x"):format(c:byte()) end))
end

-- A REPL in a tmux pane: start(), keys() and type() to send input, wait() for the screen.
local Repl = {}
Repl.__index = Repl

local function new_repl(home)
  local self = setmetatable({}, Repl)
  self.socket = "luashm_test_" .. random_hex(8)
  self.home = home
  return self
end

function Repl:tmux(args)
  local out, ok = H.sh("tmux -L " .. self.socket .. " -f /dev/null " .. args .. " 2>&1")
  return out, ok
end

-- Starts the host with the given shell arguments in a fresh session of 160x50 cells. A shell
-- around it writes its exit status to a file: tmux's own #{pane_dead_status} is sometimes never
-- filled in (tmux 3.3 can miss the SIGCHLD of a pane, whatever runs in it). The shell ignores
-- Ctrl-C (`trap :`, which the host does not inherit) so that it outlives the host.
function Repl:start(args)
  self.status_file = self.home .. "/status_" .. self.socket
  local cmd = ("trap : INT; env HOME=%s LUA_CPATH=%s LUA_PATH=%s %s %s; echo $? > %s"):format(
    q(self.home), q(os.getenv("LUA_CPATH") or ""), q(os.getenv("LUA_PATH") or ""), q(H.host),
    args or "", q(self.status_file))
  local out, ok = self:tmux("new-session -d -s repl -x 160 -y 50 " .. q(cmd) ..
    " \\; set-option -t repl remain-on-exit on")
  assert(ok, "tmux new-session failed: " .. out)
  return self:wait_prompt()
end

-- The host's pid (the child of the pane's shell).
function Repl:pid()
  local shell = self:tmux("display-message -p -t repl '#{pane_pid}'"):match("%d+")
  return (H.sh("pgrep -P " .. shell):match("%d+"))
end

-- Literal text (never read as key names: "end" would be the End key).
function Repl:type(text)
  self:tmux("send-keys -t repl -l " .. q(text))
end

-- Key names: Enter, Tab, Up, C-c, C-d...
function Repl:keys(...)
  for i = 1, select("#", ...) do self:tmux("send-keys -t repl " .. select(i, ...)) end
end

function Repl:line(text)
  self:type(text)
  self:keys("Enter")
end

-- The screen and its scrollback, wrapped lines joined, trailing blanks trimmed.
function Repl:screen()
  local out = self:tmux("capture-pane -p -J -S -1000 -t repl")
  return (out:gsub("[ \t]+\n", "\n"))
end

-- Polls the screen until pred(screen) is true; fails with the screen after TIMEOUT.
function Repl:wait(pred, what)
  local deadline = os.time() + TIMEOUT
  local screen
  repeat
    screen = self:screen()
    if pred(screen) then return screen end
    H.sleep(0.05)
  until os.time() > deadline
  lu.fail(("timed out waiting for %s; the screen shows:\n%s"):format(what, screen))
end

-- Waits until some line of the screen is exactly s, or matches s when it is a pattern.
function Repl:wait_line(s, is_pattern)
  return self:wait(function(screen)
    for line in screen:gmatch("[^\n]*") do
      if (is_pattern and line:match("^" .. s .. "$")) or line == s then return true end
    end
    return false
  end, "a line " .. (is_pattern and "matching " or "") .. q(s))
end

-- Waits until the file at path exists and is not empty; returns its contents.
function Repl:wait_file(path)
  local text
  self:wait(function()
    local f = io.open(path)
    if f then
      text = f:read("a")
      f:close()
    end
    return text ~= nil and text ~= ""
  end, "the file " .. path)
  return text
end

function Repl:wait_text(s)
  return self:wait(function(screen) return screen:find(s, 1, true) ~= nil end, q(s))
end

-- Waits until the last non-blank line is the prompt ("> " alone).
function Repl:wait_prompt()
  return self:wait(function(screen)
    local last = screen:gsub("\n+$", ""):match("[^\n]*$")
    return last == ">"
  end, "the prompt")
end

-- Waits until the REPL has run everything typed so far and waits at a fresh prompt, where the
-- terminal is in readline's raw mode: a control key typed in between, while a chunk runs and
-- the terminal is cooked, is the kernel's (a Ctrl-D there would not be an end of input).
function Repl:sync()
  self.syncs = (self.syncs or 0) + 1
  local mark = '"sync' .. self.syncs .. '"'
  self:line("'sync' .. " .. self.syncs)
  return self:wait(function(screen)
    return screen:gsub("\n+$", ""):sub(-#mark - 2) == mark .. "\n>"
  end, "the result " .. mark .. " and a fresh prompt")
end

-- The host's exit status once it has exited, else nil.
function Repl:exit_status()
  local f = io.open(self.status_file)
  if not f then return nil end
  local status = f:read("n")
  f:close()
  return status
end

function Repl:wait_exit()
  self:wait(function() return self:exit_status() ~= nil end, "the REPL to exit")
  return self:exit_status()
end

function Repl:kill()
  self:tmux("kill-server")
end

------------------------------------------------------------------------------------------

TestRepl = {}

function TestRepl:setUp()
  if not has_tmux then lu.skip("tmux is not installed: the REPL tests need a pseudo-terminal") end
  self.home = os.tmpname()
  os.remove(self.home)
  assert(os.execute("mkdir -m 700 " .. q(self.home)))
  self.repl = new_repl(self.home)
end

function TestRepl:tearDown()
  if self.repl then self.repl:kill() end
  if self.home then os.execute("rm -rf " .. q(self.home)) end
end

function TestRepl:test_expressions_are_printed_with_every_value()
  local r = self.repl
  r:start()
  r:wait_text("luashm " .. shm.version)
  r:line("1 + 41")
  r:wait_line("42")
  r:line('"a", nil, 2.5')
  r:wait_line('"a"%s+nil%s+2%.5', true)
  r:line("local x = 5")
  r:line("x_global = 7")
  r:line("x_global * 6")
  r:wait(function(screen) return select(2, screen:gsub("\n42\n", "")) == 2 end, "42 twice")
end

function TestRepl:test_errors_are_reported_and_the_repl_goes_on()
  local r = self.repl
  r:start()
  r:line("error('bad thing')")
  r:wait_text("stdin:1: bad thing")
  r:line("= 1")
  r:wait_text("unexpected symbol near '='")
  r:line("100 + 1")
  r:wait_line("101")
end

function TestRepl:test_nested_table_is_pretty_printed()
  local r = self.repl
  r:start()
  r:line('t = {3, 2, 1, name = "n", sub = {x10 = 1, x2 = 2, ok = true}}; t.me = t')
  r:line("t")
  r:wait_line('{3, 2, 1, me = <cycle: table: 0x%x+>, name = "n", '
    .. 'sub = {ok = true, x2 = 2, x10 = 1}}', true)
end

function TestRepl:test_array_is_pretty_printed_in_its_tostring_form()
  local r = self.repl
  local expect = self.home .. "/expected"
  r:start()
  if shm.array then
    r:line('a = shm.array("f64", {2, 3}, {values = {{1, 2, 3}, {4, 5, 6}}})')
    r:line('b = a.block')
  else
    r:line("a = shm.create(64)")
    r:line("b = a")
  end
  r:line(("io.open(%q, 'w'):write(tostring(a)):close()"):format(expect))
  local text = r:wait_file(expect)
  r:line("a")
  local screen = r:wait_text(text)
  lu.assertStrContains(screen, text)
  r:line("b:unlink()")
  r:sync()
end

function TestRepl:test_completion_of_globals_fields_and_methods()
  local r = self.repl
  r:start()
  r:type("string.fo")
  r:keys("Tab")
  r:wait_text("> string.format")
  r:type('("<%d>", 7)')
  r:keys("Enter")
  r:wait_line('"<7>"')
  r:line("blk = shm.create(64)")
  r:type("blk:wr")
  r:keys("Tab")
  r:wait_text("> blk:write(")
  r:line('0, "hey")')
  r:type("blk:re")
  r:keys("Tab")
  r:wait_text("> blk:read(")
  r:line("0, 3)")
  r:wait_line('"hey"')
  r:type("collectg")
  r:keys("Tab")
  r:wait_text("> collectgarbage")
  r:keys("C-u")
  if shm.array then
    r:line('arr = shm.array("i32", 4, {values = {1, 2, 3, 4}})')
    r:type("arr:sum")
    r:keys("Tab")
    r:wait_text("> arr:sum(")
    r:line(")")
    r:wait_line("10")
    r:line("arr.block:unlink()")
  end
  r:line("blk:unlink()")
  r:sync()
end

function TestRepl:test_completion_of_properties_and_session_locals()
  local r = self.repl
  r:start()
  r:line('arr = shm.array("i32", {2, 3})')
  r:type("arr.sh")
  r:keys("Tab")
  r:wait_text("> arr.shape")
  r:keys("Enter")
  r:wait_line("{2, 3}")
  r:line("local ch = shm.channel()")
  r:type("ch.cap")
  r:keys("Tab")
  r:wait_text("> ch.capacity")
  r:keys("Enter")
  r:wait_line("65536")
  r:type("ch:shu")
  r:keys("Tab")
  r:wait_text("> ch:shutdown(")
  r:keys("C-u")
  r:line("local prog = shm.progress(5, 'p')")
  r:type("pro")
  r:keys("Tab")
  r:wait_text("> prog")
  r:type(".to")
  r:keys("Tab")
  r:wait_text("> prog.total")
  r:keys("Enter")
  r:wait_line("5")
  r:line("arr.block:unlink(); ch:unlink(); prog:unlink()")
  r:sync()
end

function TestRepl:test_multiline_input_continues_until_complete()
  local r = self.repl
  r:start()
  r:line("for i = 1, 3 do")
  r:wait_line(">>")
  r:line('io.write(i * 10, " ")')
  r:line("end")
  r:wait_text("10 20 30")
  r:line("function twice(x)")
  r:line("return x * 2")
  r:line("end")
  r:line("twice(21)")
  r:wait_line("42")
  -- an expression spread over lines is printed too, even one that starts as "{"
  r:line("math.max(1,")
  r:line("2000 + 1)")
  r:wait_line("2001")
  r:line("{")
  r:line("10,")
  r:line("y = 20}")
  r:wait_line("{10, y = 20}")
  r:line("s = [[first")
  r:wait_line(">>")
  r:line("second]]")
  r:line("s")
  r:wait_line('"first\\nsecond"')
end

function TestRepl:test_history_is_recalled_after_a_restart()
  local r = self.repl
  r:start()
  r:line("hist_value = 12345")
  r:line("function hist_f()")
  r:line("return 'from history'")
  r:line("end")
  r:sync()
  r:keys("C-d")
  lu.assertEquals(r:wait_exit(), 0)
  local f = assert(io.open(self.home .. "/.luashm_history"))
  local hist = f:read("a")
  f:close()
  lu.assertStrContains(hist, "hist_value = 12345")
  r:kill()

  local r2 = new_repl(self.home)
  self.repl = r2
  r2:start()
  -- history: hist_value, the function, r's sync
  r2:keys("Up", "Up", "Up")
  r2:wait_text("> hist_value = 12345")
  r2:keys("Enter")
  r2:sync()
  -- history: ..., r's sync, hist_value again, r2's sync
  r2:keys("Up", "Up", "Up", "Up")
  r2:wait(function(s) return s:find("function hist_f()\nreturn 'from history'\nend", 1, true) end,
    "the multi-line chunk recalled whole")
  r2:keys("Enter")
  r2:line("hist_value + 1, hist_f()")
  r2:wait_line('12346%s+"from history"', true)
end

function TestRepl:test_ctrl_c_interrupts_a_loop_and_the_repl_goes_on()
  local r = self.repl
  r:start()
  r:line("spins = 0; while true do spins = spins + 1 end")
  r:wait_text("while true do")
  H.sleep(0.3)
  r:keys("C-c")
  r:wait_text("interrupted!")
  r:wait_prompt()
  r:line("spins > 0, 6 * 7")
  r:wait_line("true%s+42", true)
  -- and again: the handler is back after the first interruption
  r:line("while true do end")
  H.sleep(0.3)
  r:keys("C-c")
  r:wait(function(s) return select(2, s:gsub("interrupted!", "")) >= 2 end,
    "a second interruption")
  r:line("'still here'")
  r:wait_line('"still here"')
  lu.assertNil(r:exit_status())
end

-- Issue 20: Ctrl-C interrupts a blocking luashm call (here ch:recv()) with the error
-- "luashm: interrupted" and the prompt comes back; the channel is still usable, and a second
-- Ctrl-C interrupts the next blocked call (a barrier's wait) just the same.
function TestRepl:test_ctrl_c_interrupts_a_blocked_recv()
  local r = self.repl
  r:start()
  r:line("ch = shm.channel(); ch:unlink()")
  r:line("ch:recv()")
  r:wait_text("> ch:recv()")
  H.sleep(0.3)
  r:keys("C-c")
  r:wait_text("luashm: interrupted")
  r:wait_prompt()
  r:line("ch:send(41)")
  r:line("ch:recv() + 1")
  r:wait_line("42")
  r:line("bar = shm.barrier(2); bar:unlink(); bar:wait()")
  r:wait_text("> bar = shm.barrier(2); bar:unlink(); bar:wait()")
  H.sleep(0.3)
  r:keys("C-c")
  r:wait(function(s) return select(2, s:gsub("luashm: interrupted", "")) >= 2 end,
    "a second interruption")
  r:wait_prompt()
  r:line("'still here'")
  r:wait_line('"still here"')
  lu.assertNil(r:exit_status())
end

-- SIGINT sent to the host alone (a terminal's Ctrl-C also reaches the workers, which die of
-- it): the REPL itself stops the workers the interrupted chunk started, and only those.
function TestRepl:test_interrupt_stops_the_workers_the_chunk_started()
  local r = self.repl
  local pids = self.home .. "/pids"
  r:start()
  r:line("w0 = shm.spawn(function() while true do end end)")
  r:line(("w = shm.spawn(function() while true do end end); "
    .. "io.open(%q, 'w'):write(w0.pid, ' ', w.pid):close(); w:join()"):format(pids))
  local old, new
  r:wait(function()
    local f = io.open(pids)
    if f then old, new = f:read("n", "n") f:close() end
    return new ~= nil
  end, "the workers' pids")
  lu.assertTrue(H.alive(new))
  H.sh("kill -INT " .. r:pid())
  r:wait_text("luashm: interrupted") -- join's own error (issue 20)
  r:wait_prompt()
  lu.assertFalse(H.alive(new))
  lu.assertTrue(H.alive(old))
  r:line("w0:running(), w:running()")
  r:wait_line("true%s+false", true)
  r:line("w0:kill(); w0:join()")
  r:wait_prompt()
  r:wait(function() return not H.alive(old) end, "the first worker to end")
end

function TestRepl:test_ctrl_c_cancels_the_line_being_typed()
  local r = self.repl
  r:start()
  r:type("error('must not run')")
  r:wait_text("must not run')")
  r:keys("C-c")
  r:wait_prompt()
  r:line("'after'")
  r:wait_line('"after"')
  r:line("for i = 1, 2 do")
  r:wait_line(">>")
  r:keys("C-c")
  r:wait_prompt()
  r:line("2 + 2")
  r:wait_line("4")
  local screen = r:screen()
  lu.assertNotStrContains(screen, "stdin:1: must not run")
  lu.assertNotStrContains(screen, "syntax error")
end

function TestRepl:test_ctrl_d_ends_the_session_in_one_line()
  local r = self.repl
  local mark, names = self.home .. "/gc_ran", self.home .. "/names"
  r:start()
  r:line(("keep = setmetatable({}, {__gc = function() "
    .. "io.open(%q, 'w'):write('gc ran'):close() end})"):format(mark))
  -- tracked blocks (the session unlinks them, and says so), an untracked block of a manager
  -- (the manager's __gc removes it) and an untracked block of its own (it stays)
  r:line("blk = shm.create(64); local arr = shm.array('u8', 2)")
  r:line("m = shm.manager(); mblk = m:create(64, {track = false})")
  r:line("kept = shm.create(8, {track = false})")
  r:line("w = shm.spawn(function() while true do end end)")
  r:line(("io.open(%q, 'w'):write(blk.name, ' ', arr.name, ' ', m.name, ' ', mblk.name, ' ', "
    .. "kept.name, ' ', w.pid):close()"):format(names))
  r:sync()
  local tracked, array, record, managed, kept, pid =
    r:wait_file(names):match("(%S+) (%S+) (%S+) (%S+) (%S+) (%d+)")
  for _, n in ipairs({ tracked, array, record, managed, kept }) do lu.assertTrue(H.in_shm(n)) end
  r:keys("C-d")
  lu.assertEquals(r:wait_exit(), 0)
  lu.assertEquals(r:wait_file(mark), "gc ran")
  lu.assertFalse(H.in_shm(managed))
  lu.assertFalse(H.in_shm(tracked))
  lu.assertFalse(H.in_shm(array))
  lu.assertTrue(H.in_shm(kept))
  os.remove("/dev/shm/" .. kept)
  lu.assertFalse(select(2, H.sh("kill -0 " .. pid .. " 2>/dev/null")) == true, "the worker runs on")
  local screen = r:wait_text("luashm: end of session: unlinked 3 tracked blocks: ")
  local line = screen:match("luashm: end of session: [^\n]*")
  for _, n in ipairs({ tracked, array, record }) do lu.assertStrContains(line, n) end
  lu.assertEquals(select(2, screen:gsub("luashm: ", "")), 1, "one line, no other message")
  lu.assertNotStrContains(screen, "leaked")
end

function TestRepl:test_a_top_level_local_lasts_for_the_session()
  local r = self.repl
  r:start()
  r:line("local x = 41")
  r:line("x + 1")
  r:wait_line("42")
  r:line("local count, name = 0, 'n'")
  r:line("function bump() count = count + 1 return count end")
  r:line("bump(); bump()")
  r:line("count, name")
  r:wait_line('2%s+"n"', true)
  -- closures and the next lines share the one variable; none of it leaks into _G
  r:line("count = 10")
  r:line("bump()")
  r:wait_line("11")
  r:line("rawget(_G, 'count'), rawget(_G, 'x'), rawget(_G, 'bump') ~= nil")
  r:wait_line("nil%s+nil%s+true", true)
  r:line("local function twice(v) return v * 2 end")
  r:line("twice(x)")
  r:wait_line("82")
  -- <close> locals stay open for the session (and close when it ends)
  r:line('local a <close> = shm.array("f64", 3)')
  r:line("a:fill(2)")
  r:line("a:sum(), a.closed")
  r:wait_line("6%.0%s+false", true)
  r:line("a.block:unlink()")
  -- locals inside blocks stay local; a local shadows a global as it would in a chunk
  r:line("do local inner = 1 end")
  r:line("inner == nil")
  r:wait_line("true")
  r:line("local print = 'shadowed'")
  r:line("print, _G.print ~= nil")
  r:wait_line('"shadowed"%s+true', true)
end

function TestRepl:test_help_at_the_prompt()
  local r = self.repl
  r:start()
  r:line("help")
  r:wait_text("help() lists the topics")
  r:line("help(shm.create)")
  r:wait_text("shm.create(size [, opts])    [Blocks]")
  r:line("local a = shm.array('i32', 2)")
  r:line("help(a.sum)")
  r:wait_text("a:sum()    [Arrays]")
  r:line("help()")
  r:wait_text('help("channels")')
  r:line("a.block:unlink()")
  r:sync()
end

function TestRepl:test_i_enters_the_repl_after_the_script()
  local r = self.repl
  local script = self.home .. "/script.lua"
  local f = assert(io.open(script, "w"))
  f:write("answer = 40 + select('#', ...)\n")
  f:close()
  r:start("-i " .. q(script) .. " x y")
  r:line("answer, arg[1]")
  r:wait_line('42%s+"x"', true)
end

------------------------------------------------------------------------------------------

TestStdin = {}

function TestStdin:test_piped_stdin_runs_as_a_script()
  local out, ok = H.sh("printf 'x = 20\\nprint(x + 22)\\n' | " .. q(H.host) .. " 2>&1")
  lu.assertTrue(ok)
  lu.assertEquals(out, "42\n")
  out, ok = H.sh("echo 'print(1)' | " .. q(H.host) .. " 2>&1")
  lu.assertTrue(ok)
  lu.assertEquals(out, "1\n")
end

function TestStdin:test_piped_stdin_error_fails()
  local out, ok = H.sh("echo 'error(\"nope\")' | " .. q(H.host) .. " 2>&1")
  lu.assertNotEquals(ok, true)
  lu.assertStrContains(out, "nope")
end

function TestStdin:test_i_with_piped_stdin_reads_plain_lines()
  local out, ok = H.sh("printf '1 + 1\\nfor i = 1, 2 do\\nio.write(i)\\nend\\n{a = 1}\\n' | "
    .. q(H.host) .. " -i -e 'y = 1' 2>&1")
  lu.assertTrue(ok)
  lu.assertStrContains(out, "> 2\n")
  lu.assertStrContains(out, ">> >> 12> {a = 1}\n")
end

os.exit(lu.LuaUnit.run())
