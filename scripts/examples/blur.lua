-- A 3x3 box blur of a stack of grayscale images by parallel workers, written with views and
-- whole-array operations (every inner loop runs in C; no Lua loop touches a pixel), checked
-- byte for byte against NumPy doing the same shifted-slice sum on the same blocks, and timed
-- against it. The first image goes to a PNG: the test card on the left, blurred on the right.
--
--   luashm [-j WORKERS] scripts/examples/blur.lua [WIDTHxHEIGHT [IMAGES [PASSES [OUT.png]]]]
--
-- Defaults: 2000x1500, 16 images, 1 pass, ./blur.png, one worker per CPU. Each pass of the
-- blur of an image (boxblur.lua) is a u16 accumulator that takes nine shifted views of the
-- image (acc:add), then the interior of the output becomes its integer mean
-- (out:idiv(acc, 9)); the border stays 0. The images themselves are made with broadcasting: a
-- row of x and a column of y give rings and a hashed noise over the whole image in a few
-- calls.
local here = arg[0]:match("^(.*)/") or "."
package.path = here .. "/?.lua;" .. package.path
local png = require "png"
local boxblur = require "boxblur"

local W, H = 2000, 1500
if arg[1] then
  W, H = arg[1]:match("^(%d+)x(%d+)$")
  W, H = math.tointeger(W), math.tointeger(H)
  assert(W and H and W >= 3 and H >= 3, "size must be WIDTHxHEIGHT, at least 3x3")
end
local K = math.tointeger(tonumber(arg[2] or "16"))
assert(K and K > 0, "images must be a positive integer")
local PASSES = math.tointeger(tonumber(arg[3] or "1"))
assert(PASSES and PASSES > 0, "passes must be a positive integer")
local OUT = arg[4] or "blur.png"
local PYTHON = os.getenv("PYTHON") or "/usr/bin/python3"

local m <close> = shm.manager() -- unlinks every block at scope exit
local stack, out = m:array("u8", { K, H, W }), m:array("u8", { K, H, W })

-- The test card of image k: rings around the centre (their width grows with k) over a hashed
-- noise, built from a row of x and a column of y by broadcasting.
local function card(k, img)
  local xs = shm.array("i64", W, { private = true }):apply(function(_, i) return i - 1 end)
  local ys = shm.array("i64", { H, 1 }, { private = true }):apply(function(_, i) return i - 1 end)
  local dx2 = xs:clone({ private = true }):sub(W // 2):mul(xs:clone({ private = true }):sub(W // 2))
  local dy2 = ys:clone({ private = true }):sub(H // 2):mul(ys:clone({ private = true }):sub(H // 2))
  local t = shm.array("i64", { H, W }, { private = true })
  t:add(dx2, dy2):idiv((W + H) * (8 + k)):mod(2):mul(150) -- rings: 0 or 150
  local noise = shm.array("i64", { H, W }, { private = true })
  noise:mul(xs, 7919):add(ys:clone({ private = true }):mul(104729 + k)):mod(61)
  img:copy(t:add(noise), "unsafe")
end

-- Blurs images lo..hi of the stack into out, PASSES times (boxblur.lua: the blur itself).
local function blur_images(lo, hi)
  local blur = boxblur.new(H, W)
  local src = shm.array("u8", { H, W }, { private = true })
  for k = lo, hi do
    blur(stack[k], out[k])
    for _ = 2, PASSES do blur(src:copy(out[k]), out[k]) end
  end
end

shm.parallel(nil, function(rank, n)
  local lo, hi = shm.partition(K, n, rank)
  for k = lo, hi do card(k, stack[k]) end
end)
local t0 = shm.now()
local workers = shm.parallel(nil, function(rank, n)
  blur_images(shm.partition(K, n, rank))
  return n
end)[1]
local took = shm.now() - t0
print(string.format("blurred %d images of %dx%d (%d pass%s) on %d workers in %.1f ms", K, W, H,
  PASSES, PASSES > 1 and "es" or "", workers, took * 1000))

-- NumPy, on the same blocks, doing the same: its time and the bytes.
local p = io.popen(PYTHON .. " - " .. stack.name .. " " .. out.name .. " " .. PASSES .. [[ 2>&1 <<'PY'
import sys, time
try:
    import numpy as np
except ImportError:
    print('NumPy is not installed: no comparison'); sys.exit(0)
S = np.load('/dev/shm/' + sys.argv[1], mmap_mode='r')
O = np.load('/dev/shm/' + sys.argv[2], mmap_mode='r')
passes = int(sys.argv[3])
K, H, W = S.shape
def blur(img):
    acc = img[0:H-2, 0:W-2].astype(np.uint16)
    for dy in range(3):
        for dx in range(3):
            if dy or dx:
                acc += img[dy:H-2+dy, dx:W-2+dx]
    res = np.zeros_like(img)
    res[1:-1, 1:-1] = acc // 9
    return res
t0 = time.perf_counter()
R = np.empty_like(S)
for k in range(K):
    img = S[k]
    for _ in range(passes):
        img = blur(img)
    R[k] = img
took = time.perf_counter() - t0
print('NumPy %s took %.1f ms in one process; the bytes are %s' % (np.__version__, took * 1000,
      'identical' if np.array_equal(R, O) else 'DIFFERENT'))
print('NUMPY_MS %.3f' % (took * 1000))
PY]])
local report = p:read("a")
p:close()
local np_ms = tonumber(report:match("NUMPY_MS (%S+)"))
io.write((report:gsub("NUMPY_MS %S+\n?", "")))
if np_ms then
  print(string.format("luashm took %.2fx NumPy's time", took * 1000 / np_ms))
  assert(not report:find("DIFFERENT"), "blur: the result differs from NumPy's")
end

-- The first image, before and after, side by side.
local pic = m:array("u8", { H, 2 * W })
pic:view({}, { 1, W }):copy(stack[1])
pic:view({}, { W + 1, 2 * W }):copy(out[1])
local bytes = png.write(OUT, 2 * W, H, pic.block:read(pic.offset, pic.nbytes))
print(string.format("wrote %s (%dx%d, %d bytes): the test card, then its blur", OUT, 2 * W, H,
  bytes))
