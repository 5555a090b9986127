-- The 3x3 box blur the blur example and scripts/bench/bench_compute.lua share, with views and
-- whole-array operations (every loop over pixels runs in C):
--
--   local boxblur = require "boxblur"
--   local blur = boxblur.new(H, W)   -- keeps a private u16 accumulator of (H - 2) x (W - 2)
--   blur(img, out)                   -- img, out: u8 arrays (or views) of H x W
--
-- The accumulator takes one shifted view of img, then adds the eight others (u16 += u8); the
-- interior of out becomes its integer mean (out's border is left as it is). The same
-- shifted-slice sum NumPy users write, so NumPy gives the same bytes.
local boxblur = {}

function boxblur.new(H, W)
  local acc = shm.array("u16", { H - 2, W - 2 }, { private = true })
  return function(img, out)
    acc:copy(img:view({ 1, H - 2 }, { 1, W - 2 }), "unsafe")
    for dy = 0, 2 do
      for dx = 0, 2 do
        if dy + dx > 0 then acc:add(img:view({ 1 + dy, H - 2 + dy }, { 1 + dx, W - 2 + dx })) end
      end
    end
    out:view({ 2, -2 }, { 2, -2 }):idiv(acc, 9)
    return out
  end
end

return boxblur
