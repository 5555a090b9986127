-- ShareableList against Python's ShareableList: l[i] get and set for integers and strings, and
-- creating a 1000-item list (create + close + unlink), each side in its own loop.
local B = require "benchlib"

local N = 200000
local STR = "hello world 1234" -- 16 bytes: a 24-byte slot on both sides

local py = B.python(string.format([[
from multiprocessing.shared_memory import ShareableList
N, STR = %d, %q
sl = ShareableList([1, 2, STR, 4])
def get_int(n):
    for _ in range(n):
        x = sl[1]
def set_int(n):
    for i in range(n):
        sl[1] = i
def get_str(n):
    for _ in range(n):
        x = sl[2]
def set_str(n):
    for _ in range(n):
        sl[2] = STR
print("get_int", best_ns(N, get_int))
print("set_int", best_ns(N, set_int))
print("get_str", best_ns(N, get_str))
print("set_str", best_ns(N, set_str))
sl.shm.close(); sl.shm.unlink()
values = list(range(1000))
def create(n):
    for _ in range(n):
        s = ShareableList(values)
        s.shm.close(); s.shm.unlink()
print("create_1000", best_ns(200, create))
]], N, STR))

local l = shm.list({ 1, 2, STR, 4 })

local t = B.ns_loop(N, function(n)
  for _ = 1, n do local _ = l[2] end
end)
B.row("lists", "l[i] get integer", t, "Python ShareableList", py.get_int, 0.1)

t = B.ns_loop(N, function(n)
  for i = 1, n do l[2] = i end
end)
B.row("lists", "l[i] = integer", t, "Python ShareableList", py.set_int, 0.1)

t = B.ns_loop(N, function(n)
  for _ = 1, n do local _ = l[3] end
end)
B.row("lists", "l[i] get string (16 B)", t, "Python ShareableList", py.get_str, 0.1)

t = B.ns_loop(N, function(n)
  for _ = 1, n do l[3] = STR end
end)
B.row("lists", "l[i] = string (16 B)", t, "Python ShareableList", py.set_str, 0.1)

l.block:unlink()
l:close()

local values = {}
for i = 0, 999 do values[#values + 1] = i end
t = B.ns(200, function()
  local c = shm.list(values)
  c.block:unlink()
  c:close()
end)
B.row("lists", "create 1000-item list + unlink", t, "Python ShareableList", py.create_1000, 0.1)
