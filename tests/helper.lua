-- Shared test helpers: running real CPython, listing /dev/shm, checking error messages.
local lu = require "luaunit"
local shm = require "luashm"

local H = {}

H.python_bin = "/usr/bin/python3"
H.host = os.getenv("LUASHM_HOST") or "luashm"
H.top = os.getenv("LUASHM_TOP") or "."

-- Python 3.11 registers even an attached block with its resource tracker and unlinks it at
-- exit (gh-82300); every snippet attaches through this helper, which unregisters it.
H.python_prelude = [[
import sys
from multiprocessing import shared_memory, resource_tracker
def attach(name):
    s = shared_memory.SharedMemory(name=name)
    resource_tracker.unregister(s._name, "shared_memory")
    return s
def create(size, name=None):
    s = shared_memory.SharedMemory(name=name, create=True, size=size)
    resource_tracker.unregister(s._name, "shared_memory")
    return s
]]

local function shell_quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end
H.shell_quote = shell_quote

-- Writes code to a temporary file and runs `command file args...` with the arguments quoted;
-- returns stdout, stderr and whether it exited 0. The file is removed afterwards.
function H.run_code(command, code, ...)
  local file, errfile = os.tmpname(), os.tmpname()
  local f = assert(io.open(file, "w"))
  f:write(code)
  f:close()
  local args = {}
  for i = 1, select("#", ...) do args[#args + 1] = shell_quote(select(i, ...)) end
  local p = io.popen(command .. " " .. file .. " " .. table.concat(args, " ") .. " 2>" .. errfile)
  local out = p:read("a")
  local ok = p:close()
  local ef = io.open(errfile)
  local err = ef:read("a")
  ef:close()
  os.remove(file)
  os.remove(errfile)
  return out, err, ok
end

-- Runs a Python snippet (after the prelude) with arguments in sys.argv[1:]; returns its stdout.
-- Raises with Python's stderr if it fails.
function H.python(code, ...)
  local out, err, ok = H.run_code(H.python_bin, H.python_prelude .. code, ...)
  if not ok then error("python failed: " .. err, 2) end
  return out, err
end

-- Runs a Python snippet with luashm.py importable (scripts/ on PYTHONPATH, or dir) and
-- arguments in sys.argv[1:]; returns stdout, stderr and whether it exited 0. No prelude: what
-- luashm.py does alone.
function H.py(code, ...)
  return H.run_code("PYTHONPATH=" .. shell_quote(H.pythonpath or H.top .. "/scripts") .. " "
    .. H.python_bin, code, ...)
end

-- The contents of the file at path (relative paths from the top of the tree).
function H.read(path)
  if path:sub(1, 1) ~= "/" then path = H.top .. "/" .. path end
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

-- Runs a shell command, returns stdout and whether it exited 0.
function H.sh(cmd)
  local p = io.popen(cmd)
  local out = p:read("a")
  local ok, _, code = p:close()
  return out, ok, code
end

-- The luashm_* names now in /dev/shm, as a set.
function H.shm_names()
  local set = {}
  for n in H.sh("ls /dev/shm"):gmatch("[^\n]+") do
    if n:match("^luashm_") then set[n] = true end
  end
  return set
end

function H.in_shm(name)
  local _, ok = H.sh("test -e /dev/shm/" .. shell_quote(name))
  return ok == true
end

-- Permission bits of /dev/shm/name as an octal string ("600").
function H.mode(name)
  return (H.sh("stat -c %a /dev/shm/" .. shell_quote(name)):gsub("%s+$", ""))
end

-- Asserts that fn(...) raises an error whose message contains every given fragment (plain).
function H.assert_error(fragments, fn, ...)
  local ok, err = pcall(fn, ...)
  lu.assertFalse(ok, "expected an error containing " .. table.concat(fragments, " | "))
  err = tostring(err)
  for _, frag in ipairs(fragments) do
    lu.assertStrContains(err, frag)
  end
  return err
end

-- Asserts that fn(...) raises an error at all (any message), and that it is a string error.
function H.assert_raises(fn, ...)
  local ok, err = pcall(fn, ...)
  lu.assertFalse(ok, "expected an error")
  lu.assertEquals(type(err), "string")
  return err
end

-- The command line that runs stock lua5.4 with luashm.so on its C path (under the sanitizer
-- build, with the ASan runtime preloaded, since lua5.4 itself is not instrumented).
function H.stock_lua()
  local cmd = "LUA_CPATH=" .. shell_quote((os.getenv("LUASHM_MODDIR") or ".") .. "/?.so") .. " lua5.4"
  if os.getenv("LUASHM_SANITIZE") then
    local asan = H.sh("gcc -print-file-name=libasan.so"):gsub("%s+$", "")
    local ubsan = H.sh("gcc -print-file-name=libubsan.so"):gsub("%s+$", "")
    cmd = "LD_PRELOAD=" .. shell_quote(asan .. " " .. ubsan) .. " " .. cmd
  end
  return cmd
end

-- Runs a Lua snippet in a fresh luashm host; returns stdout, stderr and whether it exited 0.
function H.luashm(code, ...)
  return H.run_code(shell_quote(H.host), code, ...)
end

-- Starts a luashm host on a Lua snippet without waiting for it (the snippet removes its own
-- file); returns the popen handle.
function H.start(code, ...)
  local file = os.tmpname()
  local f = assert(io.open(file, "w"))
  f:write(code, "\nos.remove(", string.format("%q", file), ")\n")
  f:close()
  local args = {}
  for i = 1, select("#", ...) do args[#args + 1] = shell_quote(select(i, ...)) end
  return assert(io.popen(shell_quote(H.host) .. " " .. file .. " " .. table.concat(args, " ")))
end

-- Gives a test class keep(o), which remembers an object that has unlink and close (a Lock, a
-- Barrier...), and a tearDown that unlinks and closes everything kept.
function H.keeps(class)
  function class:keep(o)
    self.objs = self.objs or {}
    self.objs[#self.objs + 1] = o
    return o
  end
  function class:tearDown()
    for _, o in ipairs(self.objs or {}) do
      pcall(o.unlink, o)
      o:close()
    end
    self.objs = nil
  end
end

-- Gives a test class list(values, opts), which makes a ShareableList, and a tearDown that
-- unlinks the blocks of the lists it made (by name: a test may close its handles).
function H.keeps_lists(class)
  function class:setUp() self.names = {} end
  function class:tearDown()
    for _, name in ipairs(self.names) do
      if shm.exists(name) then shm.attach(name):unlink() end
    end
  end
  function class:list(values, opts)
    local l = shm.list(values, opts)
    self.names[#self.names + 1] = l.name
    return l
  end
end

-- Whether no two values of the table are equal.
function H.distinct(t)
  local seen = {}
  for _, v in pairs(t) do
    if seen[v] then return false end
    seen[v] = true
  end
  return true
end

-- The contents of the file at path, or "" when there is none yet (H.read insists on one).
function H.slurp(path)
  local f = io.open(path, "rb")
  if not f then return "" end
  local s = f:read("a")
  f:close()
  return s
end

-- The non-empty lines of s, in order.
function H.lines(s)
  local t = {}
  for l in s:gmatch("[^\n]+") do t[#t + 1] = l end
  return t
end

-- The value codec's message for an object of `kind` in the block `name`: what shm.decode (and a
-- channel's recv) reopens, so that a test can reopen a block as any kind, validation included.
-- Names and kinds shorter than 128 bytes (one-byte lengths).
function H.ref_message(kind, name)
  return string.char(1, 1, 7, #name) .. name .. string.char(#kind) .. kind .. string.char(0)
end

-- A snippet for a child host run under a small `ulimit -n`: opens /dev/null until no file
-- descriptor is left, keeping them in `files` (close them to free the descriptors again).
H.USE_UP_FDS = [[
local files = {}
while true do
  local f = io.open("/dev/null")
  if not f then break end
  files[#files + 1] = f
end
]]

H.is_root = H.sh("id -u"):match("^0") ~= nil
H.can_unshare = H.is_root and select(2, H.sh("unshare -m true 2>/dev/null")) == true

-- Skips the test unless it can give a snippet a /dev/shm of its own (root and unshare -m).
function H.need_namespace()
  if not H.can_unshare then
    lu.skip("needs root and unshare -m (a private /dev/shm on a small tmpfs)")
  end
end

-- Runs a Lua snippet in a fresh host inside its own mount namespace, with a tmpfs of `size` on
-- /dev/shm; returns stdout, stderr, and whether it exited 0.
function H.in_small_shm(size, code)
  local inner = ("mount -t tmpfs -o size=%s,mode=1777 tmpfs /dev/shm && exec %s \"$0\""):format(
    size, shell_quote(H.host))
  return H.run_code("unshare -m sh -c " .. shell_quote(inner), code)
end

-- Arrays a test class makes: gives the class a tearDown that unlinks and closes the block of
-- every array kept (a private array, with no block, is not kept), and returns new (shm.array's
-- arguments; the array is kept), keep (keeps an array made otherwise; returns it) and the list
-- of the arrays kept so far, in order (emptied by tearDown).
function H.keeps_arrays(class)
  local made = {}
  local function keep(a)
    if a.block then made[#made + 1] = a end
    return a
  end
  function class:tearDown()
    for i, a in ipairs(made) do
      local b = a.block
      pcall(b.unlink, b)
      b:close()
      made[i] = nil
    end
    collectgarbage()
  end
  return function(...) return keep(shm.array(...)) end, keep, made
end

-- NumPy's dtype of each luashm dtype.
H.npdtype = { i8 = "i1", u8 = "u1", i16 = "<i2", u16 = "<u2", i32 = "<i4", u32 = "<u4",
  i64 = "<i8", u64 = "<u8", f32 = "<f4", f64 = "<f8", bool = "?", f16 = "<f2" }

-- Python for seeing a shared Array's view in NumPy by name: V(name, offset, dtype, shape,
-- strides) is np.ndarray over an mmap of /dev/shm/NAME (what the README tells a Python user).
H.python_views = [[
import mmap, os
import numpy as np
_maps = {}
def V(name, offset, dtype, shape, strides):
    m = _maps.get(name)
    if m is None:
        fd = os.open('/dev/shm/' + name, os.O_RDWR)
        m = _maps[name] = mmap.mmap(fd, 0)
        os.close(fd)
    return np.ndarray(shape, dtype, buffer=m, offset=offset, strides=strides)
]]

-- The Python expression (for H.python_views) of the shared array a's view, over the block
-- called name (default: a's own; a copy of its block has the same layout).
function H.pyview(a, name)
  return string.format("V(%q, %d, %q, (%s,), (%s,))", name or a.name, a.offset, H.npdtype[a.dtype],
    table.concat(a.shape, ", "), table.concat(a.strides, ", "))
end

-- A Lua number as a Python literal (integers stay ints, floats keep every bit).
function H.pynumber(v)
  if math.type(v) == "integer" then return tostring(v) end
  if v ~= v then return "float('nan')" end
  if v == math.huge then return "float('inf')" end
  if v == -math.huge then return "float('-inf')" end
  return string.format("%.17g", v):find("[.eEn]") and string.format("%.17g", v)
    or string.format("%.17g", v) .. ".0"
end

-- This process's pid (a forked worker's own, unlike a value captured before the fork).
-- Sleeps s seconds in this process (a timed recv on a private, already unlinked channel: no
-- shell, no busy loop).
function H.sleep(s)
  local c = shm.channel({ capacity = 64, track = false })
  c:unlink()
  c:recv(s)
  c:close()
end

-- Whether process pid runs (a zombie, killed but not reaped yet, does not).
function H.alive(pid)
  local f = io.open("/proc/" .. pid .. "/stat")
  if not f then return false end
  local state = f:read("a"):match("^%d+ %b() (%a)")
  f:close()
  return state ~= "Z" and state ~= "X"
end

function H.mypid()
  local f = assert(io.open("/proc/self/stat"))
  local pid = f:read("n")
  f:close()
  return pid
end

-- One fresh object of every kind a user can hold, by kind name (the metatable's __name without
-- "luashm."), and a function that disposes of them all (handles closed, blocks unlinked,
-- workers ended). A new kind needs a line here: tests/test_help.lua names every kind of the
-- library that has none.
H.makers = {
  Block = function() return shm.create(64) end,
  Array = function() return shm.array("f64", { 2, 3 }) end,
  List = function() return shm.list({ 1, "a" }) end,
  Lock = function() return shm.lock() end,
  LockGuard = function()
    local lk = shm.lock()
    return lk:guard(), lk
  end,
  Barrier = function() return shm.barrier(1) end,
  Channel = function() return shm.channel() end,
  Progress = function() return shm.progress(3, "x") end,
  Dict = function() return shm.dict({ capacity = 8192 }) end,
  Manager = function() return shm.manager() end,
  Worker = function() return shm._worker.spawn(1, nil, function() end) end, -- ranked: w.rank is set
  Pool = function() return shm.pool(1) end,
}

function H.objects()
  local objs, extra = {}, {}
  for kind, make in pairs(H.makers) do objs[kind], extra[kind] = make() end
  local function dispose()
    for kind, o in pairs(objs) do
      if extra[kind] then
        debug.getmetatable(o).__close(o)
        extra[kind]:unlink()
        extra[kind]:close()
      elseif kind == "Manager" then
        o:shutdown()
      elseif kind == "Worker" or kind == "Pool" then
        o:close()
      else
        pcall(o.unlink, o)
        o:close()
      end
    end
  end
  return objs, dispose
end

return H
