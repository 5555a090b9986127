-- A block shared with a Python process: Lua writes a table of squares into shared memory,
-- Python reads the same pages by name (luashm.open, scripts/luashm.py: it attaches without
-- Python's resource tracker, so Python's exit leaves the block to Lua) and prints them.
local n = tonumber(arg and arg[1]) or 10
local b <close> = shm.create(8 * n)
for i = 1, n do b:pack(8 * (i - 1), "<i8", i * i) end

local scripts = (arg[0]:match("^(.*)/[^/]*$") or ".") .. "/.."
local py = io.popen(string.format([[PYTHONPATH=%s /usr/bin/python3 - %s %d <<'PY'
import sys, struct
import luashm
s = luashm.open(sys.argv[1])  # a SharedMemory: a plain block
n = int(sys.argv[2])
print("   i   i*i (read by Python from %%s)" %% s.name)
for i, (v,) in enumerate(struct.iter_unpack("<q", bytes(s.buf[:8 * n])), 1):
    print("%%4d %%5d" %% (i, v))
s.close()
PY]], scripts, b.name, n))
io.write(py:read("a"))
assert(py:close(), "python failed")
b:unlink()
