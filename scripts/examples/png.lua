-- A minimal PNG writer in pure Lua, for the examples: 8-bit grayscale or palette images.
-- The pixels go into zlib "stored" deflate blocks (no compression), which every PNG reader
-- accepts; what is left of the format is two checksums (CRC-32 per chunk, Adler-32 over the
-- pixels) and big-endian lengths. Usage:
--
--   local png = require "png"
--   png.write("out.png", width, height, pixels)             -- grayscale, 0 black .. 255 white
--   png.write("out.png", width, height, pixels, palette)    -- palette: {{r, g, b}, ...}, index 0 first
--
-- `pixels` is a string of width * height bytes, row after row (an Array's bytes:
-- `a.block:read(a.offset, a.nbytes)`).
local png = {}

local CRC = {}
for i = 0, 255 do
  local c = i
  for _ = 1, 8 do
    c = (c & 1 == 1) and (0xEDB88320 ~ (c >> 1)) or (c >> 1)
  end
  CRC[i] = c
end

-- CRC-32 (ISO 3309, as zlib's crc32) of the strings, in order.
local function crc32(...)
  local c = 0xFFFFFFFF
  for k = 1, select("#", ...) do
    local s = select(k, ...)
    for i = 1, #s do
      c = CRC[(c ~ s:byte(i)) & 0xFF] ~ (c >> 8)
    end
  end
  return c ~ 0xFFFFFFFF
end
png.crc32 = crc32

-- Adler-32 (RFC 1950) of the strings, in order. Lua's 64-bit integers let the sums run a
-- whole string before the modulo.
local function adler32(parts)
  local a, b = 1, 0
  for _, s in ipairs(parts) do
    for i = 1, #s do
      a = a + s:byte(i)
      b = b + a
    end
    a, b = a % 65521, b % 65521
  end
  return (b << 16) | a
end

local function chunk(kind, data)
  return string.pack(">I4", #data) .. kind .. data .. string.pack(">I4", crc32(kind, data))
end

-- The zlib stream of the strings in stored blocks of at most 65535 bytes (the format's limit).
local function zlib_stored(parts)
  local raw = table.concat(parts)
  local out = { "\x78\x01" } -- deflate, 32 KiB window, no dictionary, "fastest" level
  for pos = 1, #raw, 65535 do
    local block = raw:sub(pos, pos + 65534)
    local final = pos + 65535 > #raw and 1 or 0
    out[#out + 1] = string.pack("<BI2I2", final, #block, #block ~ 0xFFFF) .. block
  end
  out[#out + 1] = string.pack(">I4", adler32(parts))
  return table.concat(out)
end

-- The PNG file's bytes.
function png.encode(width, height, pixels, palette)
  assert(math.type(width) == "integer" and width > 0, "png: width must be a positive integer")
  assert(math.type(height) == "integer" and height > 0, "png: height must be a positive integer")
  assert(#pixels == width * height, "png: pixels must hold width * height bytes")
  local rows = {}
  for y = 0, height - 1 do
    rows[#rows + 1] = "\0" -- filter type 0: the row as it is
    rows[#rows + 1] = pixels:sub(y * width + 1, (y + 1) * width)
  end
  local color_type = palette and 3 or 0
  local out = {
    "\x89PNG\r\n\x1a\n",
    chunk("IHDR", string.pack(">I4I4BBBBB", width, height, 8, color_type, 0, 0, 0)),
  }
  if palette then
    local plte = {}
    for i, rgb in ipairs(palette) do plte[i] = string.char(rgb[1], rgb[2], rgb[3]) end
    out[#out + 1] = chunk("PLTE", table.concat(plte))
  end
  out[#out + 1] = chunk("IDAT", zlib_stored(rows))
  out[#out + 1] = chunk("IEND", "")
  return table.concat(out)
end

-- Writes the PNG file; returns its size in bytes.
function png.write(path, width, height, pixels, palette)
  local data = png.encode(width, height, pixels, palette)
  local f = assert(io.open(path, "wb"))
  f:write(data)
  assert(f:close())
  return #data
end

return png
