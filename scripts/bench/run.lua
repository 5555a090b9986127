-- Runs every scripts/bench/bench_*.lua with the luashm host, prints a table of ratios and
-- rewrites BENCHMARKS.md. Usage: luashm scripts/bench/run.lua [pattern]
local top = assert(os.getenv("LUASHM_TOP"), "run through scripts/bench/run.sh")
local host = assert(os.getenv("LUASHM_HOST"))
local pattern = arg[1]

local files = {}
for f in io.popen("ls " .. top .. "/scripts/bench/bench_*.lua"):lines() do
  if not pattern or f:find(pattern, 1, true) then files[#files + 1] = f end
end

local rows, failed = {}, {}
for _, f in ipairs(files) do
  io.stderr:write("bench: ", f:match("[^/]+$"), "\n")
  local p = io.popen(host .. " " .. f)
  for line in p:lines() do
    local g, what, ours, pn, peer, goal, unit =
      line:match("^ROW\t(.-)\t(.-)\t(.-)\t(.-)\t(.-)\t(.-)\t(.-)$")
    if g then
      rows[#rows + 1] = { group = g, what = what, ours = tonumber(ours), peer_name = pn,
        peer = tonumber(peer), goal = tonumber(goal), unit = unit }
    else
      io.stderr:write(line, "\n")
    end
  end
  if not p:close() then failed[#failed + 1] = f end
end

local function fmt(v, unit)
  if unit == "ns" then
    if v >= 1e9 then return string.format("%.2f s", v / 1e9) end
    if v >= 1e6 then return string.format("%.2f ms", v / 1e6) end
    if v >= 1e3 then return string.format("%.2f µs", v / 1e3) end
    return string.format("%.1f ns", v)
  end
  return string.format("%.4g %s", v, unit)
end

local lines = {}
local function out(s) lines[#lines + 1] = s end
out("| group | what | luashm | peer | peer's | ratio | goal | met |")
out("|---|---|---|---|---|---|---|---|")
local group
for _, r in ipairs(rows) do
  local ratio = r.ours / r.peer
  local met = r.goal and (ratio <= r.goal and "yes" or "**no**") or "-"
  out(string.format("| %s | %s | %s | %s | %s | %.3g | %s | %s |", r.group ~= group and r.group or "",
    r.what, fmt(r.ours, r.unit), r.peer_name, fmt(r.peer, r.unit), ratio,
    r.goal and ("≤ " .. r.goal) or "-", met))
  group = r.group
end
local table_text = table.concat(lines, "\n")
print(table_text)

if pattern then
  io.stderr:write("(a filtered run does not rewrite BENCHMARKS.md)\n")
else
  local cpu = io.popen("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2"):read("l") or "?"
  local f = assert(io.open(top .. "/BENCHMARKS.md", "w"))
  f:write("# Benchmarks\n\n",
    "Produced by `sh scripts/bench/run.sh` (every figure below comes from one run, luashm and its\n",
    "peer measured side by side, so the ratios survive a noisy machine). Ratio is luashm's time\n",
    "over the peer's: below 1 luashm is faster. `goal` is the largest ratio the issue accepts.\n\n",
    "Machine: ", (cpu:gsub("^%s+", "")), ", ", io.popen("nproc"):read("l"), " cores. Date: ",
    os.date("!%Y-%m-%d"), ".\n\n", table_text, "\n")
  local notes = io.open(top .. "/scripts/bench/NOTES.md")
  if notes then
    f:write("\n", notes:read("a"))
    notes:close()
  end
  f:close()
end
if #failed > 0 then
  io.stderr:write("failed: ", table.concat(failed, " "), "\n")
  os.exit(1)
end
