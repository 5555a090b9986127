-- Channels: small-message round trip between two processes against a raw pipe round trip (a
-- C program, compiled here, bouncing 8 bytes between two processes over two pipes: the floor
-- any IPC round trip is judged by) and Python's multiprocessing.Queue round trip; one-way
-- throughput of small messages (send + echo, pipelined in windows).
local B = require "benchlib"

local N = 20000

-- The raw pipe peer: parent writes 8 bytes, child echoes them, N times.
local function pipe_roundtrip_ns(n)
  local dir = os.tmpname()
  os.remove(dir)
  local src, exe = dir .. ".c", dir .. ".bin"
  local f = assert(io.open(src, "w"))
  f:write([[
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
#include <sys/wait.h>
int main(int argc, char **argv) {
  int n = atoi(argv[1]), a[2], b[2], i, r;
  long v = 0;
  double best = 1e30;
  if (pipe(a) || pipe(b)) return 1;
  if (fork() == 0) {
    close(a[1]);
    close(b[0]);
    while (read(a[0], &v, sizeof v) == sizeof v) write(b[1], &v, sizeof v);
    _exit(0);
  }
  close(a[0]);
  close(b[1]);
  for (r = 0; r < 3; r++) {
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (i = 0; i < n; i++) {
      v = i;
      if (write(a[1], &v, sizeof v) != sizeof v || read(b[0], &v, sizeof v) != sizeof v) return 1;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double dt = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) * 1e-9;
    if (dt < best) best = dt;
  }
  close(a[1]);
  wait(NULL);
  printf("%.1f\n", best / n * 1e9);
  return 0;
}
]])
  f:close()
  assert(os.execute("cc -O2 -o " .. exe .. " " .. src), "cannot compile the pipe peer")
  local p = io.popen(exe .. " " .. n)
  local ns = tonumber(p:read("a"))
  p:close()
  os.remove(src)
  os.remove(exe)
  return ns
end

local py = B.python(string.format([[
import multiprocessing as mp
def echo(q, r):
    while True:
        v = q.get()
        if v is None: break
        r.put(v)
ctx = mp.get_context("fork")
q, r = ctx.Queue(), ctx.Queue()
p = ctx.Process(target=echo, args=(q, r)); p.start()
def rt(n):
    for i in range(n):
        q.put(i); r.get()
rt(1000)
print("roundtrip", best_ns(%d, rt))
def oneway(n):
    for b in range(n // 1000):
        for i in range(1000):
            q.put(i)
        for i in range(1000):
            r.get()
print("oneway", best_ns(%d, oneway))
q.put(None); p.join()
]], N, N))

local pipe_ns = pipe_roundtrip_ns(N)

local req, resp = shm.channel(), shm.channel()
local w = shm.spawn(function()
  for v in req:iter() do resp:send(v) end
end)
for i = 1, 1000 do req:send(i); resp:recv() end
local rt = B.ns_loop(N, function(n)
  for i = 1, n do
    req:send(i)
    resp:recv()
  end
end)
-- Pipelined in windows of 1000 (both rings hold a window, so neither side can block the other).
local ow = B.ns_loop(N, function(n)
  for _ = 1, n // 1000 do
    for i = 1, 1000 do req:send(i) end
    for _ = 1, 1000 do resp:recv() end
  end
end)
req:close()
w:join()
B.row("channels", "round trip of a small message (2 processes)", rt, "raw pipe round trip (C)", pipe_ns, 2.0)
B.row("channels", "round trip of a small message (2 processes)", rt, "Python mp.Queue", py.roundtrip, 1.0)
B.row("channels", "send + echo of a small message, windows of 1000", ow, "Python mp.Queue", py.oneway, 1.0)
for _, c in ipairs({ req, resp }) do
  c:unlink()
  c.block:close()
end
