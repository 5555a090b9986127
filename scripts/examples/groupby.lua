-- A group-by over real text: the count of every word of some files, by shm.parallel workers,
-- three ways side by side, timed, and checked against each other:
--
--   dict      every worker adds each word it reads to one shared dict: d:incr(word, 1, 0).
--             The result is in the dict when the workers end: nothing to send, nothing to merge.
--   combined  the same dict, but each worker first counts a chunk in a private table and then
--             adds each of the chunk's distinct words once: d:incr(word, n, 0).
--   tables    no shared structure: every worker counts its chunks in a private table and returns
--             it; the host merges the tables (how a job does a group-by without a dict).
--
--   luashm [-j WORKERS] scripts/examples/groupby.lua [-n TOP] [-r ROUNDS] [-c MIB] [FILE...]
--
-- Default files: the licences Debian ships in /usr/share/common-licenses (links skipped); the
-- text is counted ROUNDS times (default 20) so that the timings mean something. A word is a run
-- of ASCII letters, case folded (what `tr -cs A-Za-z '\n' | tr A-Z a-z` makes). The dict's
-- capacity is MIB MiB (default 8): a dict evicts when full, so the script checks that the counts
-- add up to the number of words read and says so when the dict was too small.
local TOP, ROUNDS, MIB, files = 10, 20, 8, {}
local i = 1
while arg[i] do
  local flag = arg[i]
  if flag == "-n" or flag == "-r" or flag == "-c" then
    local v = math.tointeger(tonumber(arg[i + 1]))
    assert(v and v > 0, "groupby: " .. flag .. " wants a positive integer")
    if flag == "-n" then TOP = v elseif flag == "-r" then ROUNDS = v else MIB = v end
    i = i + 2
  else
    files[#files + 1] = flag
    i = i + 1
  end
end
if #files == 0 then
  local find = io.popen("find /usr/share/common-licenses -maxdepth 1 -type f | sort")
  for path in find:lines() do files[#files + 1] = path end
  find:close()
end
assert(#files > 0, "groupby: no files to count")

-- The text, case folded, cut into chunks of about 64 KiB that end between words; the workers
-- inherit it (fork), so no worker reads a file.
local chunks, bytes = {}, 0
for _, path in ipairs(files) do
  local f = assert(io.open(path, "rb"))
  local text = f:read("a"):lower()
  f:close()
  bytes = bytes + #text
  local lo = 1
  while lo <= #text do
    local hi = text:find("[^a-z]", math.min(lo + 65535, #text)) or #text
    chunks[#chunks + 1] = text:sub(lo, hi)
    lo = hi + 1
  end
end
local jobs = {} -- the chunks, ROUNDS times over
for _ = 1, ROUNDS do
  for _, c in ipairs(chunks) do jobs[#jobs + 1] = c end
end
local workers -- the default (-j N, else LUASHM_WORKERS, else the CPUs): parallel's count

local m <close> = shm.manager()

-- Each way runs job(rank, n) in every worker (rank takes jobs rank, rank + n, ...) and returns
-- the counts (word -> n), the number of words read, and the seconds it took.
local function dict_way(per_chunk)
  local d = m:dict({ capacity = MIB << 20 })
  local t0 = shm.now()
  local read = shm.parallel(nil, function(rank, n)
    local words = 0
    for j = rank, #jobs, n do
      if per_chunk then
        local c = {}
        for w in jobs[j]:gmatch("[a-z]+") do c[w] = (c[w] or 0) + 1 end
        for w, k in pairs(c) do
          d:incr(w, k, 0)
          words = words + k
        end
      else
        for w in jobs[j]:gmatch("[a-z]+") do
          d:incr(w, 1, 0)
          words = words + 1
        end
      end
    end
    return words
  end)
  local counts = d:totable()
  local seconds = shm.now() - t0
  local total = 0
  workers = #read
  for _, r in ipairs(read) do total = total + r end
  return counts, total, seconds
end

local function tables_way()
  local t0 = shm.now()
  local parts = shm.parallel(nil, function(rank, n)
    local c = {}
    for j = rank, #jobs, n do
      for w in jobs[j]:gmatch("[a-z]+") do c[w] = (c[w] or 0) + 1 end
    end
    return c
  end)
  local counts, total = {}, 0
  for _, c in ipairs(parts) do
    for w, k in pairs(c) do
      counts[w] = (counts[w] or 0) + k
      total = total + k
    end
  end
  return counts, total, shm.now() - t0
end

local ways = {
  { "dict: d:incr(word, 1, 0) for every word", dict_way(false) },
  { "combined: d:incr(word, n, 0) per chunk", dict_way(true) },
  { "tables: private tables merged by the host", tables_way() },
}

-- The three must agree, and a dict's counts must add up to the words read (else it evicted).
local counts, total = ways[3][2], ways[3][3]
for k = 1, 2 do
  local c, read, sum = ways[k][2], ways[k][3], 0
  for _, n in pairs(c) do sum = sum + n end
  if sum ~= read then
    error(("groupby: the dict lost counts (%d of %d words): it was too small, make it larger "
      .. "with -c MIB"):format(read - sum, read), 0)
  end
  for w, n in pairs(counts) do
    assert(c[w] == n, ("groupby: %s counts %s %s times, tables %d"):format(ways[k][1], w,
      tostring(c[w]), n))
  end
end

local words = {}
for w in pairs(counts) do words[#words + 1] = w end
table.sort(words, function(a, b)
  if counts[a] ~= counts[b] then return counts[a] > counts[b] end
  return a < b
end)

print(string.format("%d files, %d bytes x %d rounds: %d words, %d distinct, %d workers", #files,
  bytes, ROUNDS, total, #words, workers))
for _, w in ipairs(ways) do print(string.format("%-46s %8.3f s", w[1], w[4])) end
print(string.format("%4s  %-16s %9s", "rank", "word", "count"))
for r = 1, math.min(TOP, #words) do
  print(string.format("%4d  %-16s %9d", r, words[r], counts[words[r]]))
end
