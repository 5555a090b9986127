-- Channels: small-message round trip between two processes against a raw pipe round trip (a
-- C program, compiled here, bouncing 8 bytes between two processes over two pipes: the floor
-- any IPC round trip is judged by) and Python's multiprocessing.Queue round trip; the same
-- with the two processes each pinned to its own CPU, on an idle machine and with one and two
-- CPU hogs running, with the adaptive spin (the default) and without (LUASHM_SPIN_US=0, the
-- sleep-only wait); one-way throughput of small messages (send + echo, pipelined in windows);
-- and handing a 100 MB array to a persistent worker by name, the same array again and again
-- (the mapping cache) and a new block each time, against its bytes through a pipe (C).
local B = require "benchlib"

local N = 20000
local MB = 1000 * 1000

-- The C peer: `rt N PIN` bounces 8 bytes N times between two processes (PIN 1: the parent on
-- CPU 0, the child on CPU 1; 0: where the scheduler puts them) and prints ns per round trip;
-- `bulk BYTES` writes BYTES through a pipe to a child that reads them all, and prints ns; `hog`
-- spins for ever.
local PEER = [[
#define _GNU_SOURCE
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/wait.h>
static void pin(int cpu) {
  cpu_set_t s;
  CPU_ZERO(&s);
  CPU_SET(cpu, &s);
  sched_setaffinity(0, sizeof s, &s);
}
static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec * 1e-9;
}
int main(int argc, char **argv) {
  int a[2], b[2], i, r;
  double best = 1e30;
  if (strcmp(argv[1], "hog") == 0) {
    volatile unsigned long x = 0;
    for (;;) x++;
  }
  if (pipe(a) || pipe(b)) return 1;
  if (strcmp(argv[1], "bulk") == 0) {
    size_t n = (size_t)atoll(argv[2]), chunk = 1 << 20, done;
    char *buf = calloc(1, chunk);
    if (fork() == 0) {
      close(a[1]);
      while (read(a[0], buf, chunk) > 0) continue;
      _exit(0);
    }
    close(a[0]);
    double t0 = now();
    for (done = 0; done < n; done += chunk)
      if (write(a[1], buf, n - done < chunk ? n - done : chunk) < 0) return 1;
    close(a[1]);
    wait(NULL);
    printf("%.1f\n", (now() - t0) * 1e9);
    return 0;
  }
  int n = atoi(argv[2]), pinned = atoi(argv[3]);
  long v = 0;
  if (fork() == 0) {
    if (pinned) pin(1);
    close(a[1]);
    close(b[0]);
    while (read(a[0], &v, sizeof v) == sizeof v) write(b[1], &v, sizeof v);
    _exit(0);
  }
  if (pinned) pin(0);
  close(a[0]);
  close(b[1]);
  for (r = 0; r < 3; r++) {
    double t0 = now();
    for (i = 0; i < n; i++) {
      v = i;
      if (write(a[1], &v, sizeof v) != sizeof v || read(b[0], &v, sizeof v) != sizeof v) return 1;
    }
    if (now() - t0 < best) best = now() - t0;
  }
  close(a[1]);
  wait(NULL);
  printf("%.1f\n", best / n * 1e9);
  return 0;
}
]]

local tmp = os.tmpname()
os.remove(tmp)
local peer = tmp .. ".bin"
do
  local f = assert(io.open(tmp .. ".c", "w"))
  f:write(PEER)
  f:close()
  assert(os.execute("cc -O2 -o " .. peer .. " " .. tmp .. ".c"), "cannot compile the C peer")
  os.remove(tmp .. ".c")
end

local function run(cmd)
  local p = io.popen(cmd)
  local v = tonumber(p:read("a"))
  assert(p:close() and v, "failed: " .. cmd)
  return v
end

-- The luashm round trip, in a host of its own (the spin budget is read at a process's first
-- wait): the host and its echo worker, pinned like the pipe's processes when pinned.
local RT = [[
local n, pinned = tonumber(arg[1]), arg[2] == "1"
local req, resp = shm.channel(), shm.channel()
req:unlink()
resp:unlink()
local w = shm.spawn(function()
  for v in req:iter() do resp:send(v) end
end)
if pinned then
  local f = io.open("/proc/self/stat")
  local me = f:read("n")
  f:close()
  os.execute(("taskset -cp 0 %d >/dev/null && taskset -cp 1 %d >/dev/null"):format(me, w.pid))
end
for i = 1, 1000 do
  req:send(i)
  resp:recv()
end
local best = math.huge
for _ = 1, 3 do
  local t0 = shm.now()
  for i = 1, n do
    req:send(i)
    resp:recv()
  end
  best = math.min(best, shm.now() - t0)
end
req:shutdown()
w:join()
print(best / n * 1e9)
]]
local rt_script = tmp .. ".lua"
do
  local f = assert(io.open(rt_script, "w"))
  f:write(RT)
  f:close()
end

local function luashm_rt(n, pinned, spin_us)
  return run(("%s%s %s %d %d"):format(spin_us and ("LUASHM_SPIN_US=%d "):format(spin_us) or "",
    os.getenv("LUASHM_HOST"), rt_script, n, pinned and 1 or 0))
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

-- Unpinned (where the scheduler puts them), as most programs run.
local pipe_free = run(("%s rt %d 0"):format(peer, N))
local rt_free = luashm_rt(N, false)
B.row("channels", "round trip of a small message (2 processes)", rt_free, "raw pipe round trip (C)", pipe_free, 2.0)
B.row("channels", "round trip of a small message (2 processes)", rt_free, "Python mp.Queue", py.roundtrip, 1.0)

-- Pinned, each process on its own CPU, with 0, 1 and 2 CPU hogs.
local cpus = tonumber(io.popen("nproc"):read("l")) or 1
local has_taskset = os.execute("command -v taskset >/dev/null")
if cpus >= 2 and has_taskset then
  local n = N // 4 -- a sleeping wait across CPUs costs tens of microseconds
  for hogs = 0, 2 do
    local pids = {}
    for i = 1, hogs do
      local p = io.popen(peer .. " hog & echo $!")
      pids[i] = p:read("l")
      p:close()
    end
    local label = hogs == 0 and "" or (" with %d CPU hog%s"):format(hogs, hogs > 1 and "s" or "")
    local pipe = run(("%s rt %d 1"):format(peer, n))
    local spin = luashm_rt(n, true)
    local nospin = luashm_rt(n, true, 0)
    if #pids > 0 then os.execute("kill " .. table.concat(pids, " ")) end
    local what = "round trip, 2 processes each on its own CPU" .. label
    B.row("channels", what, spin, "raw pipe round trip (C), same CPUs", pipe, hogs == 0 and 0.2 or nil)
    B.row("channels", what, spin, "luashm without spinning (LUASHM_SPIN_US=0)", nospin, 1.0)
  end
end
os.remove(rt_script)

-- Pipelined in windows of 1000 (both rings hold a window, so neither side can block the other).
local req, resp = shm.channel(), shm.channel()
local w = shm.spawn(function()
  for v in req:iter() do resp:send(v) end
end)
local ow = B.ns_loop(N, function(n)
  for _ = 1, n // 1000 do
    for i = 1, 1000 do req:send(i) end
    for _ = 1, 1000 do resp:recv() end
  end
end)
B.row("channels", "send + echo of a small message, windows of 1000", ow, "Python mp.Queue", py.oneway, 1.0)

req:shutdown()
w:join()

-- Hand-off by name to a persistent worker that reads one element and answers: the same array
-- again and again (after the first time the worker's mapping cache has it: no mmap, no page
-- fault, no munmap), and a new block each time (its first hand-off: the worker maps it).
local arr = shm.array("u8", 100 * MB)
arr:fill(7)
local to, back = shm.channel(), shm.channel()
local server = B.handoff_server(to, back)
local function handoff(a)
  to:send(a)
  return back:recv()
end
handoff(arr)
local same = B.ns(2000, function() handoff(arr) end, 5)
-- New blocks, made (and their first page written) before the clock starts and unlinked only
-- after it stops, as a pipeline's producer would.
local news, fresh = {}, {}
for i = 1, 10 do
  news[i] = shm.array("u8", 100 * MB)
  news[i][1] = i
end
for i = 1, 10 do
  local t0 = B.now()
  assert(handoff(news[i]) == i)
  fresh[i] = (B.now() - t0) * 1e9
end
for i = 1, 10 do
  news[i].block:unlink()
  news[i].block:close()
end
table.sort(fresh)
to:shutdown()
server:join()
local bulk = math.huge
for _ = 1, 3 do bulk = math.min(bulk, run(("%s bulk %d"):format(peer, 100 * MB))) end
os.remove(peer)
local lua_pipe = B.lua_pipe_ns(arr.block) -- the issue's peer, as in bench_worker.lua
B.row("channels", "hand the same 100 MB array to a persistent worker", same, "its bytes through a pipe (from Lua)", lua_pipe, 1e-4)
B.row("channels", "hand the same 100 MB array to a persistent worker", same, "its bytes through a pipe (C)", bulk)
B.row("channels", "hand a new 100 MB array to a persistent worker (median of 10)", fresh[5], "its bytes through a pipe (from Lua)", lua_pipe, 1e-3)
B.row("channels", "hand a new 100 MB array to a persistent worker (median of 10)", fresh[5], "its bytes through a pipe (C)", bulk)
arr.block:unlink()
arr.block:close()
for _, c in ipairs({ req, resp, to, back }) do
  c:unlink()
  c:close()
end
