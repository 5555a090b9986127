-- Blocks against Python's SharedMemory: create+unlink, attach (O(1) in size; with the mapping
-- cache holding the block's mapping, and a new mapping each time), and moving 1 MiB in and
-- out.
local B = require "benchlib"

local MiB, GiB = 1 << 20, 1 << 30
local ones = ("\1"):rep(MiB)

local py = B.python(string.format([[
MiB = 1 << 20
def create_unlink(n):
    for _ in range(n):
        s = shared_memory.SharedMemory(create=True, size=4096)
        s.close(); s.unlink()
print("create_unlink", best_ns(2000, create_unlink))

data = b"\1" * MiB
def create_write_unlink(n):
    for _ in range(n):
        s = shared_memory.SharedMemory(create=True, size=MiB)
        s.buf[:] = data
        s.close(); s.unlink()
print("create_write_unlink", best_ns(200, create_write_unlink))

for label, size in (("attach_1m", MiB), ("attach_1g", 1 << 30)):
    owner = shared_memory.SharedMemory(create=True, size=size)
    def attach(n):
        for _ in range(n):
            s = shared_memory.SharedMemory(name=owner.name)
            s.close()
    print(label, best_ns(2000, attach))
    owner.close(); owner.unlink()

owner = shared_memory.SharedMemory(create=True, size=MiB)
def write(n):
    for _ in range(n):
        owner.buf[:] = data
print("write_1m", best_ns(500, write))
def read(n):
    for _ in range(n):
        bytes(owner.buf)
print("read_1m", best_ns(500, read))
owner.close(); owner.unlink()
]]))

local t = B.ns(2000, function()
  local b = shm.create(4096)
  b:unlink()
  b:close()
end)
B.row("blocks", "create + unlink 4 KiB", t, "Python SharedMemory", py.create_unlink, 1.0)

t = B.ns(200, function()
  local b = shm.create(MiB)
  b:write(0, ones)
  b:unlink()
  b:close()
end)
B.row("blocks", "create + write 1 MiB + unlink", t, "Python SharedMemory", py.create_write_unlink, 1.2)

local attach, fresh = {}, {}
for _, size in ipairs({ MiB, GiB }) do
  local owner = shm.create(size)
  attach[size] = B.ns(2000, function() shm.attach(owner.name):close() end)
  fresh[size] = B.ns(2000, function()
    shm.attach(owner.name):close()
    shm.flush_cache()
  end)
  owner:unlink()
  owner:close()
end
B.row("blocks", "attach 1 MiB (the mapping cache has it)", attach[MiB], "Python SharedMemory", py.attach_1m)
B.row("blocks", "attach 1 GiB (the mapping cache has it)", attach[GiB], "Python SharedMemory", py.attach_1g)
B.row("blocks", "attach 1 MiB, a new mapping each time", fresh[MiB], "Python SharedMemory", py.attach_1m)
B.row("blocks", "attach 1 GiB, a new mapping each time", fresh[GiB], "Python SharedMemory", py.attach_1g)
B.row("blocks", "attach 1 GiB vs attach 1 MiB, new mappings", fresh[GiB], "luashm attach 1 MiB", fresh[MiB], 2.0)

local owner = shm.create(MiB)
t = B.ns(500, function() owner:write(0, ones) end)
B.row("blocks", "write 1 MiB", t, "Python SharedMemory", py.write_1m)
t = B.ns(500, function() return owner:read() end)
B.row("blocks", "read 1 MiB", t, "Python SharedMemory", py.read_1m)
owner:unlink()
owner:close()
