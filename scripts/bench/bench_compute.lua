-- Computing on shared arrays (issue 17): whole-array operations in C against NumPy doing the
-- same on the same blocks (numpy.load of /dev/shm/NAME), and against plain Lua tables: a 3x3
-- box blur of a stack of u8 images (1 and 2 workers, byte-identical to NumPy's), a 1-D Jacobi
-- relaxation through views, elementwise sub/div/maximum on 100 MB of f64 (whole and through a
-- column view), reductions of a 4000x4000 f64, and a sort of 10M f64. The NumPy peer runs
-- beside us and times one command per line read from a FIFO, so that its rounds interleave
-- with ours; each side keeps its best round, so a busy machine slows both alike.
local B = require "benchlib"
package.path = (os.getenv("LUASHM_TOP") or ".") .. "/scripts/examples/?.lua;" .. package.path
local boxblur = require "boxblur"

local ROUNDS = 5

-- The peer (B.peer): sys.argv[1] is the FIFO, then NAME=BLOCK pairs it opens as arrays (A[NAME]).
local PEER = [[
import sys, time, numpy as np
A = {}
for kv in sys.argv[2:]:
    k, v = kv.split('=')
    A[k] = np.load('/dev/shm/' + v, mmap_mode='r+')

def blur_one(img, out):
    H, W = img.shape
    acc = img[0:H-2, 0:W-2].astype(np.uint16)
    for dy in range(3):
        for dx in range(3):
            if dy or dx:
                acc += img[dy:H-2+dy, dx:W-2+dx]
    out[1:-1, 1:-1] = acc // 9

def blur():
    S, O = A['stack'], A['npout']
    for k in range(S.shape[0]):
        blur_one(S[k], O[k])

def jacobi():
    u, v = A['u'], A['v']
    u[:] = A['u0']
    v[:] = A['u0']
    for _ in range(200):
        np.add(u[:-2], u[2:], out=v[1:-1])
        v[1:-1] *= 0.5
        u, v = v, u

def sort():
    A['s'][:] = A['src']
    A['s'].sort()

def same():
    print('SAME' if np.array_equal(A['out'], A['npout']) else 'DIFFERENT', flush=True)
    return True

ops = {
    'blur': blur, 'jacobi': jacobi, 'sort': sort, 'same': same,
    'sub': lambda: np.subtract(A['a'], A['b'], out=A['c']),
    'div': lambda: np.divide(A['a'], A['b'], out=A['c']),
    'maximum': lambda: np.maximum(A['a'], A['b'], out=A['c']),
    'colsub': lambda: np.subtract(A['a2'][:, 0], A['b2'][:, 0], out=A['c2'][:, 0]),
    'coldiv': lambda: np.divide(A['a2'][:, 0], A['b2'][:, 0], out=A['c2'][:, 0]),
    'colmaximum': lambda: np.maximum(A['a2'][:, 0], A['b2'][:, 0], out=A['c2'][:, 0]),
    'sum1': lambda: A['m'].sum(axis=0),
    'sum2': lambda: A['m'].sum(axis=1),
    'std': lambda: A['m'].std(),
    'argmax': lambda: A['m'].argmax(),
}
with open(sys.argv[1]) as cmds:
    for line in cmds:
        op = line.strip()
        t0 = time.perf_counter()
        if ops[op]() is True:
            continue
        print((time.perf_counter() - t0) * 1e9, flush=True)
]]

local made = {}
local function shared(...)
  local a = shm.array(...)
  made[#made + 1] = a
  return a
end

-- Deterministic pseudo-random values in [0, 1).
local function fill_random(a, seed)
  a:reshape(a.size):apply(function(_, i) return ((i * 2654435761 + seed) % 1000003) / 1000003 end)
end

-- The arrays, shared, each under the name the peer knows it by.
local K, H, W = 16, 2000, 1500
local N_JACOBI, STEPS = 200000, 200
local N_ELEM = 100000000 // 8
local arrays = {
  stack = shared("u8", { K, H, W }), out = shared("u8", { K, H, W }), npout = shared("u8", { K, H, W }),
  u0 = shared("f64", N_JACOBI), u = shared("f64", N_JACOBI), v = shared("f64", N_JACOBI),
  a = shared("f64", N_ELEM), b = shared("f64", N_ELEM), c = shared("f64", N_ELEM),
  a2 = shared("f64", { N_ELEM // 2, 2 }), b2 = shared("f64", { N_ELEM // 2, 2 }),
  c2 = shared("f64", { N_ELEM // 2, 2 }),
  m = shared("f64", { 4000, 4000 }),
  src = shared("f64", 10000000), s = shared("f64", 10000000),
}
arrays.stack:reshape(arrays.stack.size):apply(function(_, i) return (i * 2654435761 >> 7) % 256 end)
fill_random(arrays.u0, 1)
arrays.u0[1], arrays.u0[N_JACOBI] = 1.0, 0.0
for _, k in ipairs({ "a", "b", "a2", "b2", "m", "src" }) do fill_random(arrays[k], #k * 7) end
arrays.b:add(0.5)
arrays.b2:add(0.5)

-- ---------------------------------------------------------------------------------------
-- Our side of each command
-- ---------------------------------------------------------------------------------------

-- The blur of images lo..hi of the stack: scripts/examples/boxblur.lua, the example's own.
local function blur_range(lo, hi)
  local blur = boxblur.new(H, W)
  for k = lo, hi do blur(arrays.stack[k], arrays.out[k]) end
end

local function blur_workers(n)
  shm.parallel(n, function(rank, size) blur_range(shm.partition(K, size, rank)) end)
end

-- 1-D Jacobi through views made once: v[2..n-1] = (u[1..n-2] + u[3..n]) / 2, then swap.
local function jacobi()
  local u, v = arrays.u, arrays.v
  u:copy(arrays.u0)
  v:copy(arrays.u0)
  local ul, ur, ui = u:view({ 1, -3 }), u:view({ 3, -1 }), u:view({ 2, -2 })
  local vl, vr, vi = v:view({ 1, -3 }), v:view({ 3, -1 }), v:view({ 2, -2 })
  for _ = 1, STEPS do
    vi:add(ul, ur)
    vi:mul(0.5)
    ul, ur, ui, vl, vr, vi = vl, vr, vi, ul, ur, ui
  end
end

-- The same relaxation over plain Lua tables.
local function jacobi_tables()
  local u, v = arrays.u0:totable(), arrays.u0:totable()
  local n = #u
  local t0 = B.now()
  for _ = 1, STEPS do
    for i = 2, n - 1 do v[i] = 0.5 * (u[i - 1] + u[i + 1]) end
    u, v = v, u
  end
  return (B.now() - t0) * 1e9, u
end

local a, b, c = arrays.a, arrays.b, arrays.c
local ca, cb, cc = arrays.a2:view({}, 1), arrays.b2:view({}, 1), arrays.c2:view({}, 1)
local m = arrays.m
local ours = {
  blur = function() blur_range(1, K) end,
  jacobi = jacobi,
  sort = function()
    arrays.s:copy(arrays.src)
    arrays.s:sort()
  end,
  sub = function() c:sub(a, b) end,
  div = function() c:div(a, b) end,
  maximum = function() c:maximum(a, b) end,
  colsub = function() cc:sub(ca, cb) end,
  coldiv = function() cc:div(ca, cb) end,
  colmaximum = function() cc:maximum(ca, cb) end,
  sum1 = function() m:sum(1) end,
  sum2 = function() m:sum(2) end,
  std = function() m:std() end,
  argmax = function() m:argmax() end,
}

-- ---------------------------------------------------------------------------------------
-- The run
-- ---------------------------------------------------------------------------------------

local argv = {}
for k, x in pairs(arrays) do argv[#argv + 1] = k .. "=" .. x.name end
local peer = B.peer(PEER, table.unpack(argv))

local best_o, best_p = {}, {}
local function time_ours(op, fn)
  collectgarbage()
  local t0 = B.now()
  fn()
  best_o[op] = math.min(best_o[op] or math.huge, (B.now() - t0) * 1e9)
end
local function round(op, fn)
  best_p[op] = math.min(best_p[op] or math.huge, tonumber(peer.ask(op)))
  time_ours(op, fn)
end

local order = { "blur", "jacobi", "sub", "div", "maximum", "colsub", "coldiv", "colmaximum",
  "sum1", "sum2", "std", "argmax", "sort" }
for _ = 1, ROUNDS do
  for _, op in ipairs(order) do round(op, ours[op]) end
  time_ours("blur2", function() blur_workers(2) end)
end
-- the blur's output is NumPy's, byte for byte
local same = peer.ask("same")
peer.close()
assert(same == "SAME", "the blur differs from NumPy's")

local tbl_ns = math.huge
for _ = 1, 2 do tbl_ns = math.min(tbl_ns, (jacobi_tables())) end

local G = "compute"
B.row(G, ("3x3 box blur, %d images 2000x1500 u8, 1 worker"):format(K), best_o.blur,
  "NumPy shifted-slice sum", best_p.blur, 1.0)
B.row(G, ("3x3 box blur, %d images 2000x1500 u8, 2 workers"):format(K), best_o.blur2,
  "NumPy shifted-slice sum", best_p.blur, 0.7)
B.row(G, "1-D Jacobi 200k f64 x 200 steps (views)", best_o.jacobi, "NumPy (out=)", best_p.jacobi, 1.2)
B.row(G, "1-D Jacobi 200k f64 x 200 steps (views)", best_o.jacobi, "plain-table Lua", tbl_ns, 0.2)
for _, op in ipairs({ "sub", "div", "maximum" }) do
  B.row(G, "c:" .. op .. "(a, b) 100 MB f64", best_o[op], "NumPy np." .. op .. "(a, b, out=c)",
    best_p[op], 1 / 0.9)
end
for _, op in ipairs({ "sub", "div", "maximum" }) do
  B.row(G, "c:" .. op .. "(a, b) column views, stride 16", best_o["col" .. op],
    "NumPy on a[:, 0] views", best_p["col" .. op], 1 / 0.8)
end
B.row(G, "m:sum(1) 4000x4000 f64", best_o.sum1, "NumPy m.sum(axis=0)", best_p.sum1, 1.11)
B.row(G, "m:sum(2) 4000x4000 f64", best_o.sum2, "NumPy m.sum(axis=1)", best_p.sum2, 1.11)
B.row(G, "m:std() 4000x4000 f64", best_o.std, "NumPy m.std()", best_p.std, 1.11)
B.row(G, "m:argmax() 4000x4000 f64", best_o.argmax, "NumPy m.argmax()", best_p.argmax, 1.11)
B.row(G, "copy + sort 10M f64", best_o.sort, "NumPy s[:] = src; s.sort()", best_p.sort, 1.25)

for _, x in ipairs(made) do
  x.block:unlink()
  x:close()
end
