-- A block shared with a Python process: Lua writes a table of squares into shared memory,
-- Python reads the same pages by name and prints them. (The first example; the examples issue
-- brings the parallel jobs.)
local n = tonumber(arg and arg[1]) or 10
local b <close> = shm.create(8 * n)
for i = 1, n do b:pack(8 * (i - 1), "<i8", i * i) end

local py = io.popen(string.format([[/usr/bin/python3 - %s %d <<'PY'
import sys, struct
from multiprocessing import shared_memory, resource_tracker
s = shared_memory.SharedMemory(name=sys.argv[1])
resource_tracker.unregister(s._name, "shared_memory")  # Lua owns it
n = int(sys.argv[2])
print("   i   i*i (read by Python from %%s)" %% s.name)
for i, (v,) in enumerate(struct.iter_unpack("<q", bytes(s.buf[:8 * n])), 1):
    print("%%4d %%5d" %% (i, v))
s.close()
PY]], b.name, n))
io.write(py:read("a"))
assert(py:close(), "python failed")
b:unlink()
