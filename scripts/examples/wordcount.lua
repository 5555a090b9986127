-- Word frequencies of real text files, counted by a pool of workers.
--
--   luashm [-j WORKERS] scripts/examples/wordcount.lua [-n TOP] [-c CHUNK_BYTES] [FILE...]
--
-- Default files: the licences Debian ships in /usr/share/common-licenses (links skipped).
-- A word is a run of ASCII letters, case folded: what `tr -cs A-Za-z '\n' | tr A-Z a-z` makes.
--
-- The files are cut into chunks of about CHUNK_BYTES (1 MiB), each ending between words, so
-- one big file spreads over every worker as well as many small ones do. Each pool worker counts
-- a chunk and puts its counts in a ShareableList made through the manager that it inherited;
-- the list comes back to the host by name and the host merges the counts. The manager unlinks
-- every list at the end of the script.
local TOP, CHUNK, files = 20, 1 << 20, {}
local i = 1
while arg[i] do
  if arg[i] == "-n" or arg[i] == "-c" then
    local v = math.tointeger(tonumber(arg[i + 1]))
    assert(v and v > 0, "wordcount: " .. arg[i] .. " wants a positive integer")
    if arg[i] == "-n" then TOP = v else CHUNK = v end
    i = i + 2
  else
    files[#files + 1] = arg[i]
    i = i + 1
  end
end
if #files == 0 then
  local find = io.popen("find /usr/share/common-licenses -maxdepth 1 -type f | sort")
  for path in find:lines() do files[#files + 1] = path end
  find:close()
end
assert(#files > 0, "wordcount: no files to count")

-- The chunks of a file: {path, offset, length}, each boundary moved forward to the first
-- byte that is not a letter, so that no word is cut in two.
local function chunks_of(path, list)
  local f = assert(io.open(path, "rb"))
  local size = f:seek("end")
  local lo = 0
  while lo < size do
    local hi = math.min(lo + CHUNK, size)
    f:seek("set", hi)
    while hi < size do
      local s = f:read(64)
      local k = s:find("[^A-Za-z]")
      if k then
        hi = hi + k - 1
        break
      end
      hi = hi + #s
    end
    list[#list + 1] = { path, lo, hi - lo }
    lo = hi
  end
  f:close()
  return size
end

local chunks, bytes = {}, 0
for _, path in ipairs(files) do bytes = bytes + chunks_of(path, chunks) end

local m <close> = shm.manager()

-- A worker's job: count one chunk, return the counts as a shared list {word, n, word, n, ...}.
local function count_chunk(c)
  local f = assert(io.open(c[1], "rb"))
  f:seek("set", c[2])
  local text = f:read(c[3]) or ""
  f:close()
  local counts, flat = {}, {}
  for w in text:lower():gmatch("[a-z]+") do counts[w] = (counts[w] or 0) + 1 end
  for w, n in pairs(counts) do
    flat[#flat + 1] = w
    flat[#flat + 1] = n
  end
  return m:list(flat) -- recorded by the host's manager; travels back by name
end

local t0 = shm.now()
local pool <close> = shm.pool()
local lists = pool:map(count_chunk, chunks, { progress = true, label = "chunks" })

-- Merge; also count the files each word occurs in (a file's chunks come one after another).
local counts, in_files, last_file, total = {}, {}, {}, 0
for k, l in ipairs(lists) do
  local path = chunks[k][1]
  for j = 1, #l, 2 do
    local w, n = l[j], l[j + 1]
    counts[w] = (counts[w] or 0) + n
    total = total + n
    if last_file[w] ~= path then
      last_file[w], in_files[w] = path, (in_files[w] or 0) + 1
    end
  end
  l:close()
end
local seconds = shm.now() - t0

local words = {}
for w in pairs(counts) do words[#words + 1] = w end
table.sort(words, function(a, b)
  if counts[a] ~= counts[b] then return counts[a] > counts[b] end
  return a < b
end)

print(string.format("%d files, %d bytes, %d chunks: %d words, %d distinct, in %.2f s by %d workers",
  #files, bytes, #chunks, total, #words, seconds, pool.size))
print(string.format("%4s  %-16s %9s %7s %6s", "rank", "word", "count", "share", "files"))
for r = 1, math.min(TOP, #words) do
  local w = words[r]
  print(string.format("%4d  %-16s %9d %6.2f%% %6d", r, w, counts[w], 100 * counts[w] / total,
    in_files[w]))
end
