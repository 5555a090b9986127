-- The examples in scripts/examples/ (issue 10), each run as a user runs it, at a small size,
-- with its output checked against an independent computation: the Mandelbrot image (PNG parsed
-- back, checked by Python's zlib, pixels against a plain serial render, the same bytes for any
-- worker count or schedule), the pipeline's histogram against a direct count, the NumPy bridge
-- both ways, the word counts (and the group-by's, with a shared dict) against
-- tr | sort | uniq -c, the blur against a plain Python blur (and NumPy's, which the example
-- checks itself), and the two small examples. No example may leave a block or a process
-- behind. (stats.lua runs in test_mpi.lua.)
local lu = require "luaunit"
local H = require "helper"

local EX = H.top .. "/scripts/examples/"

-- Runs an example with the host; returns stdout and stderr, asserting success, a clean
-- /dev/shm, no process left, and no block left for the tracker to clean up. Every process of
-- the run carries a unique environment variable, which is how they are found afterwards.
local runs = 0
local function run(opts, script, ...)
  local before = H.shm_names()
  local args = {}
  for i = 1, select("#", ...) do args[i] = H.shell_quote(select(i, ...)) end
  runs = runs + 1
  local mark = ("LUASHM_EXAMPLE_RUN=%d.%d"):format(os.time(), runs)
  local errfile = os.tmpname()
  local cmd = mark .. " " .. H.shell_quote(H.host) .. (opts.j and (" -j " .. opts.j) or "") ..
      " " .. H.shell_quote(EX .. script) .. " " .. table.concat(args, " ") .. " 2>" .. errfile
  local out, ok = H.sh(cmd)
  for name in pairs(H.shm_names()) do
    lu.assertTrue(before[name], script .. " left block " .. name)
  end
  -- The tree's tracker ends just after the host (it unlinks what is left, then exits): 2 s.
  local left
  for _ = 1, 20 do
    left = H.sh("grep -lsx --null-data " .. H.shell_quote(mark) .. " /proc/[0-9]*/environ")
    if left == "" then break end
    H.sh("sleep 0.1")
  end
  lu.assertEquals(left, "", script .. " left a process behind")
  local ef = io.open(errfile)
  local err = ef:read("a")
  ef:close()
  os.remove(errfile)
  lu.assertTrue(ok, script .. " failed: " .. err)
  lu.assertNotStrContains(err, "tracker: unlinked")
  return out, err
end

local function slurp(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

------------------------------------------------------------------------------------------------
-- Mandelbrot
------------------------------------------------------------------------------------------------

-- The picture, serially and plainly (no cardioid shortcut): the pixel values the example's
-- header comment describes. Returns the sum of the pixels.
local function mandelbrot_sum(w, h, maxit)
  local scale = math.max(3.5 / w, 2.5 / h)
  local x0, y0 = -0.75 - scale * (w / 2 - 0.5), scale * (h / 2 - 0.5)
  local sum = 0
  for y = 0, h - 1 do
    for x = 0, w - 1 do
      local cr, ci = x0 + x * scale, y0 - y * scale
      local zr, zi, n = 0.0, 0.0, 0
      while n < maxit and zr * zr + zi * zi <= 4.0 do
        zr, zi = zr * zr - zi * zi + cr, 2.0 * zr * zi + ci
        n = n + 1
      end
      if n < maxit then sum = sum + 1 + math.floor(254 * math.log(n) / math.log(maxit)) end
    end
  end
  return sum
end

-- The PNG's chunks, walked in Lua: {type, data} in order.
local function png_chunks(data)
  lu.assertEquals(data:sub(1, 8), "\x89PNG\r\n\x1a\n")
  local chunks, pos = {}, 9
  while pos <= #data do
    local len, kind = string.unpack(">I4c4", data, pos)
    chunks[#chunks + 1] = { kind, data:sub(pos + 8, pos + 7 + len) }
    pos = pos + 12 + len
  end
  lu.assertEquals(pos, #data + 1)
  return chunks
end

TestMandelbrot = {}

function TestMandelbrot:setUp()
  self.files = {}
end

function TestMandelbrot:tearDown()
  for _, f in ipairs(self.files) do os.remove(f) end
end

function TestMandelbrot:render(j, mode, size, iters)
  local png = os.tmpname() .. "-mandelbrot.png"
  self.files[#self.files + 1] = png
  local out = run({ j = j }, "mandelbrot.lua", size or "72x40", iters or 80, png, mode)
  return png, out
end

function TestMandelbrot:test_png_dimensions_and_checksum()
  local png, out = self:render(2, "pool")
  lu.assertStrContains(out, png .. ": 72x40 pixels")
  lu.assertStrContains(out, "by 2 workers (pool)")
  lu.assertStrContains(out, "#") -- the ASCII preview shows the set
  local checksum = math.tointeger(out:match("checksum %(sum of the pixels%): (%d+)"))
  lu.assertEquals(checksum, mandelbrot_sum(72, 40, 80))

  local data = slurp(png)
  local chunks = png_chunks(data)
  lu.assertEquals(chunks[1][1], "IHDR")
  lu.assertEquals({ string.unpack(">I4I4BBBBB", chunks[1][2]) }, { 72, 40, 8, 3, 0, 0, 0, 14 })
  lu.assertEquals(chunks[2][1], "PLTE")
  lu.assertEquals(#chunks[2][2], 3 * 256)
  lu.assertEquals(chunks[2][2]:sub(1, 3), "\0\0\0") -- the set is black
  lu.assertEquals(chunks[#chunks][1], "IEND")

  -- Python's zlib checks every CRC, inflates the pixels and sums them.
  local py = H.python([[
import struct, zlib
data = open(sys.argv[1], "rb").read()
pos, idat = 8, b""
while pos < len(data):
    n, kind = struct.unpack(">I4s", data[pos:pos + 8])
    body = data[pos + 8:pos + 8 + n]
    assert zlib.crc32(kind + body) == struct.unpack(">I", data[pos + 8 + n:pos + 12 + n])[0], kind
    if kind == b"IDAT":
        idat += body
    pos += 12 + n
raw = zlib.decompress(idat)
w, h = struct.unpack(">II", data[16:24])
rows = [raw[y * (w + 1):(y + 1) * (w + 1)] for y in range(h)]
assert len(raw) == h * (w + 1) and all(r[0] == 0 for r in rows)
print(w, h, sum(sum(r[1:]) for r in rows))
]], png)
  lu.assertEquals(py, "72 40 " .. checksum .. "\n")
end

function TestMandelbrot:test_same_bytes_for_any_worker_count_and_schedule()
  local one = slurp(self:render(1, "pool", "90x50", 60))
  lu.assertEquals(slurp(self:render(2, "pool", "90x50", 60)), one)
  lu.assertEquals(slurp(self:render(2, "counter", "90x50", 60)), one)
  lu.assertEquals(slurp(self:render(3, "counter", "90x50", 60)), one)
end

function TestMandelbrot:test_bad_arguments_are_reported()
  local out, ok = H.sh(H.shell_quote(H.host) .. " " .. EX .. "mandelbrot.lua 12by8 2>&1")
  lu.assertNotEquals(ok, true)
  lu.assertStrContains(out, "size must be WIDTHxHEIGHT")
end

------------------------------------------------------------------------------------------------
-- Blur
------------------------------------------------------------------------------------------------

TestBlur = {}

-- The PNG holds the test card (left) and its blur (right): plain Python inflates it and blurs
-- the left half again, pass by pass (the integer mean of each 3x3, a border of 0), without
-- NumPy; the example itself compared every image with NumPy's.
function TestBlur:test_right_half_is_the_blur_of_the_left_and_numpy_agrees()
  local png = os.tmpname() .. "-blur.png"
  local out = run({ j = 2 }, "blur.lua", "120x80", 3, 2, png)
  lu.assertStrContains(out, "blurred 3 images of 120x80 (2 passes) on 2 workers")
  lu.assertStrContains(out, "the bytes are identical")
  lu.assertStrContains(out, "wrote " .. png .. " (240x80, ")
  local py = H.python([[
import struct, zlib
data = open(sys.argv[1], "rb").read()
pos, idat = 8, b""
while pos < len(data):
    n, kind = struct.unpack(">I4s", data[pos:pos + 8])
    if kind == b"IDAT":
        idat += data[pos + 8:pos + 8 + n]
    pos += 12 + n
raw = zlib.decompress(idat)
w, h = struct.unpack(">II", data[16:24])
rows = [raw[y * (w + 1) + 1:(y + 1) * (w + 1)] for y in range(h)]
half = w // 2
img = [list(r[:half]) for r in rows]
for _ in range(2):
    res = [[0] * half for _ in range(h)]
    for y in range(1, h - 1):
        for x in range(1, half - 1):
            res[y][x] = sum(img[y + dy][x + dx] for dy in (-1, 0, 1) for dx in (-1, 0, 1)) // 9
    img = res
assert [list(r[half:]) for r in rows] == img, "the right half is not the blur of the left"
print(len(set(v for r in rows for v in r[:half])) > 20, 'ok')
]], png)
  os.remove(png)
  lu.assertEquals(py, "True ok\n")
end

function TestBlur:test_bad_arguments_are_reported()
  local out, ok = H.sh(H.shell_quote(H.host) .. " " .. EX .. "blur.lua 2x2 2>&1")
  lu.assertNotEquals(ok, true)
  lu.assertStrContains(out, "size must be WIDTHxHEIGHT, at least 3x3")
end

------------------------------------------------------------------------------------------------
-- Pipeline
------------------------------------------------------------------------------------------------

-- The dice of record id, as the producer's comment specifies them (splitmix64 of the id).
local function dice(id)
  local x = id * -7046029254386353131
  x = (x ~ (x >> 30)) * -4658895280553007687
  x = (x ~ (x >> 27)) * -7723592293110705685
  x = (x ~ (x >> 31)) >> 8
  return x % 6 + 1, x // 6 % 6 + 1, x // 36 % 6 + 1
end

TestPipeline = {}

function TestPipeline:test_histogram_and_totals_are_exact()
  local n, batch, t = 20011, 333, 3
  local out = run({}, "pipeline.lua", n, batch, t)
  local hist, sum = {}, 0
  for s = 3, 18 do hist[s] = 0 end
  for id = 1, n do
    local a, b, c = dice(id)
    hist[a + b + c] = hist[a + b + c] + 1
    sum = sum + a + b + c
  end
  local batches = (n + batch - 1) // batch
  lu.assertStrContains(out, ("produce.lua       %d records in %d batches"):format(n, batches))
  lu.assertStrContains(out, ("reduce.lua        %d records, sum of scores %d"):format(n, sum))
  local handled = 0
  for k in out:gmatch("transform.lua #%d  (%d+) batches") do handled = handled + tonumber(k) end
  lu.assertEquals(handled, batches)
  local got = {}
  for s, count in out:gmatch("\n%s*(%d+)%s+(%d+)%s+[%d.]+%%") do got[tonumber(s)] = tonumber(count) end
  lu.assertEquals(got, hist)
end

-- Runs the pipeline on a copy of its scripts in which stage script has pattern replaced:
-- asserts that the job failed and left no block; returns its output and how long it took.
local function broken_pipeline(script, pattern, replacement)
  local dir = os.tmpname()
  os.remove(dir)
  assert(os.execute("mkdir -p " .. dir .. "/pipeline && cp " .. EX .. "pipeline.lua " .. dir ..
    " && cp " .. EX .. "pipeline/*.lua " .. dir .. "/pipeline"))
  local src = slurp(dir .. "/pipeline/" .. script)
  local f = assert(io.open(dir .. "/pipeline/" .. script, "w"))
  f:write((src:gsub(pattern, replacement, 1)))
  f:close()
  local before, t0 = H.shm_names(), os.time()
  local out, ok = H.sh("timeout 60 " .. H.shell_quote(H.host) .. " " .. dir ..
    "/pipeline.lua 100000 100 2 2>&1")
  os.execute("rm -r " .. dir)
  lu.assertNotEquals(ok, true)
  lu.assertNotStrContains(out, "tracker: unlinked") -- the manager unlinked everything
  for name in pairs(H.shm_names()) do lu.assertTrue(before[name], "left block " .. name) end
  return out, os.time() - t0
end

-- Every transformer fails at once: the producer then waits forever for a free array, so the
-- host must not wait for the stages in a fixed order. It names the stage and cleans up.
function TestPipeline:test_a_failing_stage_stops_the_job()
  local out = broken_pipeline("transform.lua", "\nlocal batches = 0\n",
    "\nlocal batches = 0\nerror('broken stage')\n")
  lu.assertStrMatches(out, ".*pipeline: transform.lua #%d failed: .*broken stage.*")
end

-- The consumer dies (a SIGKILL, say the OOM killer): the producer would wait for ever for a
-- free array, and a fixed join order with it. shm.wait sees the death first and stops the job.
function TestPipeline:test_a_dying_consumer_is_detected_at_once()
  local out, seconds = broken_pipeline("reduce.lua", "\n  free:send%(a%)\n",
    "\n  os.execute('kill -9 ' .. io.open('/proc/self/stat'):read('n'))\n")
  lu.assertTrue(seconds < 30, "the job hung until the timeout")
  lu.assertStrMatches(out, ".*pipeline: reduce.lua failed: .*killed by signal 9.*")
end

function TestPipeline:test_no_records()
  local out = run({}, "pipeline.lua", 0, 10, 2)
  lu.assertStrContains(out, "produce.lua       0 records in 0 batches")
  lu.assertStrContains(out, "reduce.lua        0 records, sum of scores 0")
end

------------------------------------------------------------------------------------------------
-- NumPy bridge
------------------------------------------------------------------------------------------------

TestNumpyBridge = {}

local function psm_names()
  local set = {}
  for n in H.sh("ls /dev/shm"):gmatch("[^\n]+") do
    if n:match("^psm_") then set[n] = true end
  end
  return set
end

function TestNumpyBridge:test_lua_and_numpy_agree_both_ways()
  local before = psm_names()
  local out = run({ j = 2 }, "numpy_bridge.lua", 5000)
  local rows = {}
  for label, lua, np in out:gmatch("\n([%w-]+)%s+(%S+)%s+(%S+)") do rows[label] = { lua, np } end
  lu.assertEquals(rows.n, { "5000", "5000" })
  for _, k in ipairs({ "mean", "std", "min", "max", "median", "p99", "mid-mean" }) do
    lu.assertAlmostEquals(tonumber(rows[k][1]), tonumber(rows[k][2]), 1e-9)
  end
  lu.assertAlmostEquals(tonumber(rows.mean[1]), 10, 0.2)
  lu.assertAlmostEquals(tonumber(rows.std[1]), 2, 0.2)
  lu.assertAlmostEquals(tonumber(rows.median[1]), 10, 0.2)
  -- Python wrote its figures into the list Lua made, and made no block of its own kind.
  lu.assertStrMatches(out, '.*\nShareableList%({"numpy [%d.]+", 5000, .*}, name=\'luashm_%x+\'%)\n.*')
  lu.assertEquals(psm_names(), before)
  lu.assertStrContains(out, "Lua and NumPy agree")
  -- The histogram NumPy made in a luashm.array block, read by Lua: N samples in all.
  local counts, total = out:match("read by Lua from luashm_%x+:\n  ([%d ]+)  %((%d+) in all%)")
  local sum = 0
  for c in counts:gmatch("%d+") do sum = sum + tonumber(c) end
  lu.assertEquals(total, "5000")
  lu.assertTrue(sum > 4900 and sum <= 5000, "histogram counts " .. counts)
  -- NumPy's in-place standardisation was seen by Lua.
  local mean = tonumber(out:match("Lua reads mean (%S+),"))
  lu.assertTrue(math.abs(mean) < 1e-9)
end

------------------------------------------------------------------------------------------------
-- Word count
------------------------------------------------------------------------------------------------

-- Counts by the shell: {word = count}, total, distinct.
local function shell_counts(files)
  local quoted = {}
  for i, f in ipairs(files) do quoted[i] = H.shell_quote(f) end
  local out = H.sh("cat " .. table.concat(quoted, " ") ..
    " | LC_ALL=C tr -cs A-Za-z '\\n' | LC_ALL=C tr A-Z a-z | grep -v '^$' | LC_ALL=C sort | uniq -c")
  local counts, total, distinct = {}, 0, 0
  for n, w in out:gmatch("(%d+) (%a+)") do
    counts[w] = tonumber(n)
    total, distinct = total + tonumber(n), distinct + 1
  end
  return counts, total, distinct
end

-- The example's table: {word = count}, and the header's totals.
local function parse_wordcount(out)
  local counts = {}
  for w, n in out:gmatch("\n%s*%d+%s+(%a+)%s+(%d+)") do counts[w] = tonumber(n) end
  local total, distinct = out:match("(%d+) words, (%d+) distinct")
  return counts, tonumber(total), tonumber(distinct)
end

TestWordcount = {}

function TestWordcount:test_real_file_in_small_chunks_matches_tr_sort_uniq()
  local files = { "/usr/share/common-licenses/GPL-3", "/usr/share/common-licenses/Apache-2.0" }
  local out = run({ j = 2 }, "wordcount.lua", "-n", 100000, "-c", 300,
    files[1], files[2])
  local counts, total, distinct = parse_wordcount(out)
  local want, want_total, want_distinct = shell_counts(files)
  lu.assertEquals(total, want_total)
  lu.assertEquals(distinct, want_distinct)
  lu.assertEquals(counts, want)
  lu.assertStrMatches(out, "2 files, %d+ bytes, %d+ chunks: .*")
end

function TestWordcount:test_top_words_files_column_and_words_across_chunk_edges()
  local dir = os.tmpname()
  os.remove(dir)
  assert(os.execute("mkdir " .. dir))
  local texts = {
    ("Alpha beta, BETA gamma!\n"):rep(50),
    ("beta-delta 42 beta_Gamma "):rep(40),
    ("x"):rep(5000) .. " beta", -- a word longer than a chunk
  }
  local files = {}
  for i, t in ipairs(texts) do
    files[i] = dir .. "/" .. i .. ".txt"
    local f = assert(io.open(files[i], "w"))
    f:write(t)
    f:close()
  end
  local out = run({ j = 2 }, "wordcount.lua", "-n", 3, "-c", 64, table.unpack(files))
  local want = shell_counts(files)
  os.execute("rm -r " .. dir)
  lu.assertEquals(want.beta, 100 + 80 + 1)
  local rows = {}
  for r, w, n, files_in in out:gmatch("\n%s*(%d+)%s+(%a+)%s+(%d+)%s+[%d.]+%%%s+(%d+)") do
    rows[tonumber(r)] = { w, tonumber(n), tonumber(files_in) }
  end
  lu.assertEquals(rows, { { "beta", 181, 3 }, { "gamma", 90, 2 }, { "alpha", 50, 1 } })
  local _, total, distinct = parse_wordcount(out)
  lu.assertEquals(total, 50 * 4 + 40 * 4 + 2)
  lu.assertEquals(distinct, 5)
end

------------------------------------------------------------------------------------------------
-- Monte Carlo
------------------------------------------------------------------------------------------------

TestMonteCarlo = {}

local function montecarlo(j, ...)
  local out = run({ j = j }, "montecarlo.lua", ...)
  local counts = {}
  for c in out:gmatch("rank %d+  (%d+) of") do counts[#counts + 1] = tonumber(c) end
  return out, counts, tonumber(out:match("pi ~ ([%d.]+)"))
end

function TestMonteCarlo:test_fresh_streams_give_a_plausible_pi_from_distinct_darts()
  local n = 400000
  local _, counts, pi = montecarlo(4, n)
  lu.assertEquals(#counts, 4)
  local seen = {}
  for _, c in ipairs(counts) do
    lu.assertNil(seen[c], "two ranks threw the same darts: " .. table.concat(counts, " "))
    seen[c] = true
  end
  -- 6 standard errors: 4 * sqrt(p (1 - p) / n) with p = pi / 4
  lu.assertTrue(math.abs(pi - math.pi) < 6 * 4 * math.sqrt(0.1686 / n), pi)
  local _, again = montecarlo(4, n)
  lu.assertNotEquals(again, counts) -- another run, other streams
end

function TestMonteCarlo:test_a_seed_reproduces_the_run()
  local out1, counts = montecarlo(3, 300000, 2024)
  local out2 = montecarlo(3, 300000, 2024)
  local strip = function(s) return (s:gsub(", [%d.]+ s\n", "\n", 1)) end -- the time differs
  lu.assertEquals(strip(out1), strip(out2))
  lu.assertStrContains(out1, "seed 2024")
  -- rank r ran math.randomseed(2024, r): the count is computable here
  local lo, hi = shm.partition(300000, 3, 2)
  math.randomseed(2024, 2)
  local inside = 0
  for _ = lo, hi do
    local x, y = math.random(), math.random()
    if x * x + y * y <= 1.0 then inside = inside + 1 end
  end
  lu.assertEquals(counts[2], inside)
  local _, other = montecarlo(3, 300000, 2025)
  lu.assertNotEquals(other, counts)
end

------------------------------------------------------------------------------------------------
-- Group-by with a shared dict
------------------------------------------------------------------------------------------------

TestGroupby = {}

function TestGroupby:test_three_ways_agree_with_tr_sort_uniq()
  local files = { "/usr/share/common-licenses/GPL-3", "/usr/share/common-licenses/Apache-2.0" }
  local out = run({ j = 2 }, "groupby.lua", "-n", 100000, "-r", 3, files[1], files[2])
  local counts, total, distinct = parse_wordcount(out)
  local want, want_total, want_distinct = shell_counts(files)
  for w, n in pairs(want) do want[w] = 3 * n end
  lu.assertEquals(total, 3 * want_total)
  lu.assertEquals(distinct, want_distinct)
  lu.assertEquals(counts, want)
  lu.assertStrMatches(out, "2 files, %d+ bytes x 3 rounds: .* 2 workers\n.*")
  for _, way in ipairs({ "dict: ", "combined: ", "tables: " }) do
    lu.assertStrMatches(out, ".*\n" .. way .. "[^\n]+ [%d.]+ s\n.*")
  end
end

function TestGroupby:test_a_dict_too_small_for_the_words_is_reported_not_wrong()
  -- 30,000 distinct words do not fit a 1 MiB dict: it evicts, and the script must say so.
  local file = os.tmpname()
  local f = assert(io.open(file, "w"))
  for i = 0, 29999 do
    local w, n = {}, i
    for k = 1, 4 do
      w[k] = string.char(97 + n % 26)
      n = n // 26
    end
    f:write(table.concat(w), i % 10 == 9 and "\n" or " ")
  end
  f:close()
  local out, ok = H.sh(H.shell_quote(H.host) .. " -j 2 " .. H.shell_quote(EX .. "groupby.lua")
    .. " -r 1 -c 1 " .. file .. " 2>&1")
  os.remove(file)
  lu.assertTrue(not ok, out)
  lu.assertStrContains(out, "groupby: the dict lost counts (")
  lu.assertStrContains(out, "it was too small, make it larger with -c MIB")
end

------------------------------------------------------------------------------------------------
-- The small ones
------------------------------------------------------------------------------------------------

TestSmallExamples = {}

function TestSmallExamples:test_lost_updates_none_with_a_lock_or_atomics()
  local out = run({}, "lost_updates.lua", 2, 3000)
  local rows = 0
  for method, expected, got, lost in out:gmatch("\n(%S[^\n]-)%s+(%d+)%s+(%d+)%s+(%d+)%s+[%d.]+") do
    lu.assertEquals(expected, "6000")
    if method ~= "no synchronization" then
      lu.assertEquals({ got, lost }, { "6000", "0" }, method)
    end
    rows = rows + 1
  end
  lu.assertEquals(rows, 4)
end

function TestSmallExamples:test_hello_python_reads_the_squares()
  local out = run({}, "hello_python.lua", 5)
  lu.assertStrContains(out, "read by Python from luashm_")
  lu.assertStrContains(out, "   4    16\n   5    25\n")
end

os.exit(lu.LuaUnit.run())
