-- The misuse sweep (DESIGN.md invariant 1, "no crash from Lua"): every public function and
-- method of every type, metamethods included, called with every wrong kind of argument in each
-- position (the other positions valid), on fresh, closed and unlinked objects. Each call must
-- succeed or raise a string error in luashm's form ("luashm: ...") or luaL_check*'s ("bad
-- argument #n to 'f' (...)"). The sweep runs in a child host (this file with --sweep), so that
-- a crash is a failure that names the signal and the call, not a lost test run. The functions
-- and methods are discovered from the module table and the objects' method tables, and must
-- match the templates below: a new method cannot escape the sweep. Metamethods are swept from
-- their second argument (Lua only calls one with its own type as the receiver, and the
-- metatables are hidden). The channels' fault-injection hooks (ch:_die_in_send,
-- ch:_recv_counted), which SIGKILL their caller by design, are swept in forked workers.
--
-- What it found, each now a named regression test below: shm.mpi.send/recv with a negative tag
-- aborted the process (MPI's default error handler; -1 made recv wait for any tag); b:pack and
-- b:unpack with a bad format raised string.pack's bare message; shm.parallel and pool:map with
-- a label that is not a string failed inside the library naming 'progress'.
local SWEEP = arg and (arg[1] == "--sweep" or arg[1] == "--sweep-mpi") and arg[1]

-- ---------------------------------------------------------------------------------------
-- The child: the sweep itself
-- ---------------------------------------------------------------------------------------

local function child(mode)
  local shm = require "luashm"
  local out = io.stdout
  io.output("/dev/null") -- what shm.help prints: the sweep's own lines go to out
  local calls, unclean, leaks = 0, {}, {}

  -- Names that dispose must leave alone (the shared bad values and their blocks).
  local protected = {}

  local function mt_name(v)
    local mt = debug.getmetatable(v)
    return type(mt) == "table" and rawget(mt, "__name") or nil
  end

  local function is_ours(v)
    local n = mt_name(v)
    return type(n) == "string" and n:sub(1, 7) == "luashm."
  end

  local known = setmetatable({}, { __mode = "k" }) -- object -> its block name, seen open
  local function name_of(v)
    if known[v] then return known[v] end
    if not is_ours(v) then return nil end
    local ok, name = pcall(function() return v.name end)
    if ok and type(name) == "string" then
      known[v] = name
      return name
    end
  end

  -- Ends whatever a call returned or a template made: workers stopped and reaped, pools
  -- closed, managers shut down, every other object closed and its block unlinked.
  local shared = setmetatable({}, { __mode = "k" })
  local function dispose(v, depth)
    depth = depth or 0
    if shared[v] then return end
    if type(v) == "table" and not is_ours(v) and depth < 2 then
      for _, x in pairs(v) do dispose(x, depth + 1) end
      return
    end
    local tn = mt_name(v)
    if type(tn) ~= "string" or tn:sub(1, 7) ~= "luashm." then return end
    local mt = debug.getmetatable(v)
    if tn == "luashm.Worker" then
      pcall(v.kill, v, "KILL")
      pcall(v.join, v)
      pcall(mt.__close, v)
    elseif tn == "luashm.Pool" then
      pcall(v.close, v)
    elseif tn == "luashm.Manager" then
      pcall(v.shutdown, v)
    elseif tn == "luashm.LockGuard" then
      pcall(mt.__close, v)
    else
      local name = name_of(v)
      if name and protected[name] then return end
      if mt.__close then pcall(mt.__close, v) end
      if name then os.remove("/dev/shm/" .. name) end
    end
  end

  local function shm_names()
    local set = {}
    local p = io.popen("ls -A /dev/shm")
    for n in p:lines() do set[n] = true end
    p:close()
    return set
  end

  -- Removes (and reports) every name in /dev/shm that was not there in `before`.
  local function check_leaks(before, what)
    for n in pairs(shm_names()) do
      if not before[n] and not protected[n] and n:sub(1, 16) ~= ".luashm-tracker-" then
        leaks[#leaks + 1] = what .. ": " .. n
        os.remove("/dev/shm/" .. n)
      end
    end
  end

  -- A clean failure: a string with luashm's prefix or luaL_check*'s form; the form may carry
  -- the position of the caller (this file: a Lua-written function blaming its caller with
  -- error(msg, 2)), never a position inside luashm. The private pieces (shm._worker) need
  -- only fail with a string.
  local function clean(err, label)
    if type(err) ~= "string" then return false end
    if label:sub(1, 12) == "shm._worker." then return true end
    err = err:gsub("^[^\n]-test_misuse%.lua:%d+: ", "", 1)
    return err:sub(1, 8) == "luashm: " or err:match("^bad argument #%d+ to '.-' %(") ~= nil
  end

  -- Calls through a Lua frame, as a script would (so that error(msg, 2) blames this file).
  local function from_lua(f, ...)
    local r = table.pack(f(...))
    return table.unpack(r, 1, r.n)
  end

  local function describe(v)
    if type(v) == "string" then
      if #v > 200 then return ("%q.."):format(v:sub(1, 200)) end
      return ("%q"):format(v)
    end
    return tostring(v)
  end

  -- Methods that end their caller by design (the channel's fault-injection hooks SIGKILL
  -- their caller once their arguments pass; the dict's arms its crash points): each call runs
  -- in a forked worker, where that SIGKILL is the expected way to succeed and any other death
  -- is a crash.
  local forked = { ["Channel:_die_in_send"] = true, ["Channel:_recv_counted"] = true,
    ["Dict:_crash_after"] = true }

  local function call_forked(label, f, args, n)
    calls = calls + 1
    out:write("> ", label, "\n")
    out:flush()
    local w = shm.spawn(function()
      local ok, err = pcall(f, table.unpack(args, 1, n))
      return ok or clean(err, label), describe(err)
    end)
    local ok, verdict, msg = w:join(60)
    if ok and not verdict then
      unclean[#unclean + 1] = label .. " -> " .. tostring(msg)
    elseif not ok and not tostring(verdict):find("killed by signal 9 ", 1, true) then
      unclean[#unclean + 1] = label .. " -> the call's process died: " .. tostring(verdict)
    end
    return ok
  end

  -- One call: logged first (a crash names it), then judged.
  local function call(label, f, args, n)
    if forked[label:match("^[^#%s]+")] then return call_forked(label, f, args, n) end
    calls = calls + 1
    for i = 1, n do
      if type(args[i]) == "userdata" then name_of(args[i]) end
    end
    out:write("> ", label, "\n")
    out:flush()
    local res = table.pack(pcall(from_lua, f, table.unpack(args, 1, n)))
    if not res[1] and not clean(res[2], label) then
      unclean[#unclean + 1] = label .. " -> " .. describe(res[2])
    end
    for i = 2, res.n do dispose(res[i]) end
    return res[1]
  end

  -- ---------------------------------------------------------------------------------------
  -- Files the templates use (the child runs in a scratch directory)
  -- ---------------------------------------------------------------------------------------
  do
    local f = assert(io.open("script.lua", "w"))
    f:write("return ...\n")
    f:close()
    local a = shm.array("f64", 3)
    a:save("in.npy")
    dispose(a)
  end

  local quick = function() return 1 end

  -- ---------------------------------------------------------------------------------------
  -- Fresh objects of every type (and view)
  -- ---------------------------------------------------------------------------------------
  local make = {}
  make.Block = function() return shm.create(64) end
  make.Array1 = function() return shm.array("i64", 8) end
  make.Array2 = function() return shm.array("f32", { 3, 4 }) end
  make.ArrayRaw = function()
    local b = shm.create(64)
    return shm.array("u32", 8, { block = b, offset = 16 })
  end
  make.ArraySlice = function() return shm.array("u64", 10):slice(2, -2) end
  make.ArraySub = function() return shm.array("i32", { 3, 4 })[2] end
  make.ArrayPrivate = function() return shm.array("f64", { 2, 3 }, { private = true }) end
  make.ArrayStrided = function() return shm.array("i16", { 4, 6 }):view({ -1, 1, -2 }, { 2, -1, 2 }) end
  make.ArrayBool = function() return shm.array("bool", { 2, 3 }) end
  make.ArrayHalf = function() return shm.array("f16", 5):transpose() end
  make.List = function() return shm.list(table.pack(1, 2.5, "str", true, nil, "b\255")) end
  make.Lock = function() return shm.lock() end
  make.Guard = function()
    local lk = shm.lock()
    return lk:guard(), lk
  end
  make.Barrier = function() return shm.barrier(1) end
  make.Channel = function()
    local ch = shm.channel({ capacity = 4096 })
    ch:send("queued") -- so that a recv with any timeout returns at once
    return ch
  end
  make.Manager = function() return shm.manager() end
  make.Worker = function() return shm.spawn(quick) end
  make.Pool = function() return shm.pool(1) end
  make.Progress = function() return shm.progress(100, "sweep") end
  make.Dict = function()
    local d = shm.dict({ capacity = 8192 })
    d:set("k", "v")
    d:set("n", 1)
    return d
  end

  -- The metatable name each kind of object must carry.
  local tname = {
    Block = "luashm.Block", Array1 = "luashm.Array", Array2 = "luashm.Array",
    ArrayRaw = "luashm.Array", ArraySlice = "luashm.Array", ArraySub = "luashm.Array",
    ArrayPrivate = "luashm.Array", ArrayStrided = "luashm.Array", ArrayBool = "luashm.Array",
    ArrayHalf = "luashm.Array",
    List = "luashm.List", Lock = "luashm.Lock", Guard = "luashm.LockGuard",
    Barrier = "luashm.Barrier", Channel = "luashm.Channel", Manager = "luashm.Manager",
    Worker = "luashm.Worker", Pool = "luashm.Pool", Progress = "luashm.Progress",
    Dict = "luashm.Dict",
  }

  -- Ways to put an object in a used-up state: each must leave every method failing cleanly.
  local states = {
    Block = { closed = function(o) o:close() end, unlinked = function(o) o:unlink() end },
    Array = { closed = function(o) o:close() end, block_closed = function(o) o.block:close() end,
      unlinked = function(o) o.block:unlink() end },
    List = { closed = function(o) o:close() end, block_closed = function(o) o.block:close() end,
      unlinked = function(o) o.block:unlink() end },
    Lock = { closed = function(o) o:close() end, unlinked = function(o) o:unlink() end,
      held = function(o) o:acquire() end },
    Guard = { closed = function(o) debug.getmetatable(o).__close(o) end },
    Barrier = { closed = function(o) o:close() end, unlinked = function(o) o:unlink() end },
    Channel = { closed = function(o) o:close() end, released = function(o) o.block:close() end,
      drained = function(o) o:shutdown(); o:recv() end, unlinked = function(o) o:unlink() end },
    Manager = { shut = function(o) o:shutdown() end },
    Worker = { joined = function(o) o:join() end, closed = function(o) o:close() end },
    Pool = { closed = function(o) o:close() end,
      started = function(o) o:map(quick, 1) end },
    Progress = { closed = function(o) o:close() end, unlinked = function(o) o:unlink() end },
    Dict = { closed = function(o) o:close() end, block_closed = function(o) o.block:close() end,
      unlinked = function(o) o:unlink() end, flushed = function(o) o:flush_all() end },
  }

  -- ---------------------------------------------------------------------------------------
  -- The wrong values
  -- ---------------------------------------------------------------------------------------
  local bad = {
    { "nil", nil }, { "true", true }, { "false", false }, { '""', "" }, { '"x"', "x" },
    { '"a\\0b"', "a\0b" }, { "300 bytes", ("n"):rep(300) }, { "-1", -1 }, { "0", 0 },
    { "2^53", 2 ^ 53 }, { "1<<53", 1 << 53 }, { "2^63 (float)", 2.0 ^ 63 },
    { "math.mininteger", math.mininteger }, { "math.maxinteger", math.maxinteger },
    { "NaN", 0 / 0 }, { "math.huge", math.huge }, { "-math.huge", -math.huge }, { "1.5", 1.5 },
    { "{}", {} }, { "nested table", { { { 1, { "x" } } }, k = { {} } } },
    { "function", function() end }, { "coroutine", coroutine.create(function() end) },
    { "io.stdout", io.stdout },
  }
  do
    -- One object of each type, then closed and unlinked ones. Their names are protected.
    local objs = {}
    for _, k in ipairs({ "Block", "Array1", "List", "Lock", "Guard", "Barrier", "Channel",
      "Manager", "Worker", "Pool", "Progress", "Dict" }) do
      local o, extra = make[k]()
      objs[k], objs[k .. ".extra"] = o, extra
      shared[o] = true
      bad[#bad + 1] = { "a " .. tname[k], objs[k] }
    end
    objs.Worker:join()
    local closed = {
      { "a closed Block", make.Block(), function(o) o:close() end },
      { "an Array of a closed block", make.Array1(), function(o) o.block:close() end },
      { "a closed List", make.List(), function(o) o:close() end },
      { "a closed Lock", make.Lock(), function(o) o:close() end },
      { "a closed Barrier", make.Barrier(), function(o) o:close() end },
      { "a released Channel", make.Channel(), function(o) o.block:close() end },
      { "a shut Manager", make.Manager(), function(o) o:shutdown() end },
      { "a closed Pool", make.Pool(), function(o) o:close() end },
      { "a closed Progress", make.Progress(), function(o) o:close() end },
      { "a closed Dict", make.Dict(), function(o) o:close() end },
      { "an unlinked Block", make.Block(), function(o) o:unlink() end },
    }
    for _, c in ipairs(closed) do
      local name = name_of(c[2])
      if name then protected[name] = true end
      shared[c[2]] = true
      c[3](c[2])
      bad[#bad + 1] = { c[1], c[2] }
    end
    for _, o in pairs(objs) do
      local name = name_of(o)
      if name then protected[name] = true end
    end
    local g = objs.Guard
    bad.cleanup = function()
      for _, c in ipairs(closed) do
        local name = name_of(c[2])
        if name then os.remove("/dev/shm/" .. name) end
      end
      debug.getmetatable(g).__close(g)
      objs.Guard = nil
      for k, o in pairs(objs) do
        if k == "Worker" or k == "Pool" or k == "Manager" then
          shared[o] = nil
          dispose(o)
        else
          local name = name_of(o)
          if debug.getmetatable(o).__close then pcall(debug.getmetatable(o).__close, o) end
          if name then os.remove("/dev/shm/" .. name) end
        end
      end
    end
  end

  -- ---------------------------------------------------------------------------------------
  -- Templates: valid arguments for each function and method (receiver excluded), as a
  -- function of the receiver, and the option fields to sweep.
  -- ---------------------------------------------------------------------------------------
  local function fresh_name() return shm.create(16, { track = false }) end

  local mod = {
    create = { args = function() return { 64, { track = true } } end,
      opts = { 2, { "name", "track", "mode" } } },
    attach = { args = function() local b = fresh_name(); return { b.name }, b end },
    exists = { args = function() local b = fresh_name(); return { b.name }, b end },
    flush_cache = { args = function() return {} end },
    open = { args = function() local a = shm.array("u8", 3); return { a.name }, a end },
    array = { args = function() return { "f64", { 2, 3 }, { values = { 1, 2, 3, 4, 5, 6 } } } end,
      opts = { 3, { "name", "track", "mode", "values", "block", "offset", "private" } } },
    ["array(private)"] = { fn = "array",
      args = function() return { "f16", { 2, 2 }, { private = true, values = { 1, 2, 3, 4 } } } end,
      opts = { 3, { "private", "values" } } },
    ["array(view)"] = { fn = "array",
      args = function() local b = shm.create(64); return { "u16", 4, { block = b, offset = 8 } }, b end,
      opts = { 3, { "block", "offset" } } },
    load = { args = function() return { "in.npy", {} } end,
      opts = { 2, { "name", "track", "mode" } } },
    list = { args = function() return { { 1, "a", true }, {} } end,
      opts = { 2, { "name", "track", "mode", "slot_bytes" } } },
    lock = { args = function() return { {} } end, opts = { 1, { "name", "track", "mode" } } },
    barrier = { args = function() return { 2, {} } end,
      opts = { 2, { "name", "track", "mode" } } },
    channel = { args = function() return { { capacity = 256 } } end,
      opts = { 1, { "capacity", "name", "track", "mode" } } },
    manager = { args = function() return { { capacity = 4 } } end, opts = { 1, { "capacity" } } },
    encode = { args = function() return { 1, "x", { 2 } } end },
    decode = { args = function() return { shm.encode(1, "x") } end },
    spawn = { args = function() return { quick, 1 } end },
    ["spawn(path)"] = { fn = "spawn", args = function() return { "script.lua", 1 } end },
    parallel = { args = function() return { 1, quick } end },
    ["parallel(opts)"] = { fn = "parallel",
      args = function() return { { n = 1, progress = true, seed = 7 }, quick } end,
      opts = { 1, { "n", "progress", "label", "seed" } } },
    ["parallel(table)"] = { fn = "parallel",
      args = function() return { { n = 1, fn = quick, args = { 1, 2 }, seed = 7 } } end,
      opts = { 1, { "n", "fn", "args", "progress", "label", "seed" } } },
    pool = { args = function() return { 1, { seed = 3 } } end, opts = { 2, { "seed" } } },
    wait = { args = function() local w = shm.spawn(quick); return { { w }, 5 }, w end },
    default_workers = { args = function() return {} end },
    partition = { args = function() return { 10, 3, 2 } end },
    cpus = { args = function() return {} end },
    now = { args = function() return {} end },
    help = { args = function() return { "shm.create" } end },
    tracker = { args = function() return {} end },
    progress = { args = function() return { 10, "label" } end },
    dict = { args = function() return { { capacity = 8192 } } end,
      opts = { 1, { "capacity", "name", "track" } } },
  }
  -- The private pieces that scripts/lib builds on (shm._worker) are swept too: they are
  -- reachable from any script.
  local private = {
    spawn = { args = function() return { 1, quick } end },
    serve = { args = function() return { 1, quick } end },
    wait = { args = function() local w = shm.spawn(quick); return { { w }, 5 }, w end },
    default_workers = { args = function() return {} end },
    check_workers = { args = function() return { 2, "op" } end },
    check_seed = { args = function() return { 3, "op" } end },
    checkoptions = { args = function() return { { seed = 1 }, "op", "seed" } end },
    check_options = { args = function() return { { seed = 1 }, "op", 2, "seed" } end },
    strip = { args = function() return { "luashm: x" } end },
    job = { args = function() return { 1, 2, { 5, 6 } } end },
    results = { args = function() return { 10 } end },
    stop_all = { args = function() local w = shm.spawn(quick); return { { w } }, w end },
  }

  local arr = {
    get = function(a) return a.ndim == 1 and { 2 } or { 2, 3 } end,
    set = function(a) return a.ndim == 1 and { 2, 7 } or { 2, 3, 7 } end,
    slice = function() return { 1, 2 } end,
    reshape = function(a) return { { a.size } } end,
    fill = function() return { 3 } end,
    copy = function(a)
      local t = {}
      for i = 1, a.size do t[i] = i end
      return { t }
    end,
    totable = {}, sum = {}, min = {}, max = {}, mean = {},
    add = function() return { 2 } end,
    mul = function() return { 3 } end,
    sub = function(a) return { a, 1 } end,
    div = function() return { 2 } end,
    idiv = function() return { 2 } end,
    mod = function() return { 3 } end,
    pow = function() return { 2 } end,
    minimum = function(a) return { a, 0 } end,
    maximum = function() return { 1 } end,
    lt = function(a) return { a, 2 } end,
    le = function() return { 2, 3 } end,
    gt = function(a) return { a, a } end,
    ge = function() return { 1 } end,
    eq = function(a) return { a } end,
    ne = function() return { 0, 1 } end,
    abs = {}, neg = {}, sqrt = {}, exp = {}, log = {}, floor = {}, ceil = {}, round = {},
    clip = function() return { 0, 5 } end,
    where = function(a)
      return { shm.array("bool", a.shape, { private = true }), a, 2 }
    end,
    astype = function() return { "f32", "unsafe" } end,
    view = function(a) return a.ndim == 1 and { { -1, 1, -2 } } or { {}, 2 } end,
    transpose = {},
    clone = function() return { { private = true } } end,
    prod = function() return { 1 } end,
    var = function() return { 1, nil, 1 } end,
    std = {},
    argmin = function() return { -1 } end,
    argmax = {},
    any = function() return { 1 } end,
    all = {},
    count = function() return { 1 } end,
    cumsum = function() return { 1 } end,
    sort = function() return { -1 } end,
    argsort = {},
    dot = function(a) return { a } end,
    apply = function() return { function(v) return v end } end,
    atomic_add = function() return { 1, 1 } end,
    cas = function() return { 1, 0, 1 } end,
    atomic_load = function() return { 1 } end,
    atomic_store = function() return { 1, 5 } end,
    save = function() return { "out.npy" } end,
    close = {}, unlink = {},
    __index = function() return { 2 } end,
    __newindex = function(a) return { 2, a.ndim == 1 and 5 or a[2] } end,
    __len = {}, __close = {}, __tostring = {},
  }

  local meth = {
    Block = { read = { 0, 8 }, write = { 0, "ab" }, pack = { 0, "i4", 7 }, unpack = { 0, "i4" },
      close = {}, unlink = {}, __index = { "size" }, __newindex = { "size", 1 }, __len = {},
      __close = {}, __gc = {}, __tostring = {} },
    Array1 = arr, Array2 = arr, ArrayRaw = arr, ArraySlice = arr, ArraySub = arr,
    ArrayPrivate = arr, ArrayStrided = arr, ArrayBool = arr, ArrayHalf = arr,
    List = { count = { 1 }, index = { "str" }, totable = {}, close = {}, unlink = {},
      __index = { 2 }, __newindex = { 2, "new" }, __len = {}, __close = {}, __tostring = {},
      __pairs = {} },
    Lock = { acquire = { 1 }, release = {}, guard = {}, close = {}, unlink = {},
      __index = { "name" }, __close = {}, __tostring = {} },
    Guard = { __close = {}, __tostring = {} },
    Barrier = { wait = { 1 }, parties = {}, close = {}, unlink = {}, __index = { "name" },
      __close = {}, __gc = {}, __tostring = {} },
    Channel = { send = { "v", 1 }, recv = { 1 }, shutdown = {}, close = {}, iter = {},
      unlink = {}, _die_in_send = { "v" },
      _recv_counted = function(ch) -- counts in the ring's unused end: no block to dispose
        return { shm.array("i64", 4, { block = ch.block, offset = ch.block.size - 32 }), 0 }
      end,
      __index = { "capacity" }, __newindex = { "capacity", 1 }, __len = {}, __close = {},
      __tostring = {} },
    Manager = { create = { 64 }, array = { "u8", 4 }, list = { { 1 } }, lock = {},
      barrier = { 1 }, channel = {}, progress = { 10 }, dict = { { capacity = 8192 } },
      names = {}, shutdown = {}, __index = { "name" }, __close = {}, __gc = {}, __tostring = {} },
    Worker = { join = { 5 }, kill = { "TERM" }, running = {}, close = {}, _send = { "job" },
      _take = {}, _stop = { 0.5 }, _finish = {}, __index = { "pid" }, __close = {}, __gc = {},
      __tostring = {} },
    Pool = { map = { quick, { 1, 2 }, {} }, close = {}, __close = {},
      __gc = {}, __tostring = {} },
    Progress = { add = { 1 }, close = {}, unlink = {}, __index = { "count" }, __close = {},
      __gc = {}, __tostring = {} },
    Dict = { get = { "k" }, set = { "k", "v", 1 }, safe_set = { "k", 1 }, add = { "a", true },
      replace = { "k", 2.5 }, incr = { "n", 1, 0, 5 }, delete = { "k" }, flush_all = {},
      flush_expired = { 1 }, ttl = { "k" }, expire = { "k", 1 }, keys = { 2 }, count = {},
      totable = {}, capacity = {}, free_space = {}, close = {}, unlink = {}, _check = {},
      _crash_after = { 0 }, __index = { "name" }, __close = {}, __tostring = {}, __pairs = {} },
  }
  local reuse = { Worker = true, Pool = true }
  -- Option tables of methods: the argument's position (receiver excluded) and its fields.
  local meth_opts = {
    ["Pool:map"] = { 3, { "chunksize", "progress", "label" } },
    ["Manager:create"] = { 2, { "name", "track", "mode" } },
    ["Array:clone"] = { 1, { "name", "track", "mode", "private" } },
    ["Manager:list"] = { 2, { "name", "slot_bytes" } },
    ["Manager:channel"] = { 1, { "capacity", "name" } },
    ["Manager:dict"] = { 1, { "capacity", "name" } },
  }
  -- Values a function legitimately takes and would then run for ever: not misuse.
  local endless = {
    ["Pool:map#3"] = function(v) return math.type(v) == "integer" and v > 100 end,
  }

  -- ---------------------------------------------------------------------------------------
  -- Discovery: what exists must be exactly what the templates cover
  -- ---------------------------------------------------------------------------------------
  local missing = {}
  local function methods_of(o)
    local mt = debug.getmetatable(o)
    local set, idx = {}, rawget(mt, "__index")
    if type(idx) == "function" and debug.getinfo(idx, "S").what == "C" then
      local _, up = debug.getupvalue(idx, 1)
      idx = up
    end
    if type(idx) == "table" then
      for k, v in pairs(idx) do
        if type(v) == "function" then set[k] = v end
      end
    end
    for k, v in pairs(mt) do
      if type(v) == "function" then set[k] = v end
    end
    return set
  end
  local function compare(have, want, what)
    for k in pairs(have) do
      if want[k] == nil then missing[#missing + 1] = what .. "." .. k .. " has no template" end
    end
    for k in pairs(want) do
      if have[k] == nil then missing[#missing + 1] = what .. "." .. k .. " does not exist" end
    end
  end
  do
    local have, want = {}, {}
    for k, v in pairs(shm) do
      if type(v) == "function" then have[k] = true end
    end
    for k, t in pairs(mod) do want[t.fn or k] = true end
    compare(have, want, "shm")
    have = {}
    for k, v in pairs(shm._worker) do
      if type(v) == "function" then have[k] = true end
    end
    compare(have, private, "shm._worker")
  end

  -- ---------------------------------------------------------------------------------------
  -- The sweep
  -- ---------------------------------------------------------------------------------------
  local function unpack_template(t, o)
    if type(t) == "function" then return t(o) end
    local copy = {}
    for i, v in ipairs(t) do copy[i] = v end
    return copy
  end

  -- Calls f with args (n positions), each bad value in each position 1..n+1 and each bad
  -- value in each option field; fresh() gives new args (and things to dispose) each call.
  local function sweep(label, f, fresh, opts, skip)
    local before = shm_names()
    local probe, n, pextra = fresh()
    dispose(probe)
    dispose(pextra)
    for pos = 1, n + 1 do
      for _, bv in ipairs(bad) do
        local ok = not (skip and skip(pos, bv[2]))
        if ok then
          local args, np, extra = fresh()
          args[pos] = bv[2]
          call(("%s#%d=%s"):format(label, pos, bv[1]), f, args, math.max(np, pos))
          dispose(args)
          dispose(extra)
        end
      end
    end
    if opts then
      for _, field in ipairs(opts[2]) do
        for _, bv in ipairs(bad) do
          local args, np, extra = fresh()
          if type(args[opts[1]]) ~= "table" then args[opts[1]] = {} end
          args[opts[1]][field] = bv[2]
          call(("%s opts.%s=%s"):format(label, field, bv[1]), f, args, np)
          dispose(args)
          dispose(extra)
        end
      end
    end
    check_leaks(before, label)
  end

  local function sweep_module(tab, templates, prefix)
    local names = {}
    for k in pairs(templates) do names[#names + 1] = k end
    table.sort(names)
    for _, k in ipairs(names) do
      local t = templates[k]
      local f = tab[t.fn or k]
      if f then
        local function fresh()
          local args, extra = t.args()
          return args, #args, extra
        end
        sweep(prefix .. k, f, fresh, t.opts, t.skip)
      end
    end
  end

  local function sweep_type(kind)
    local probe = make[kind]()
    local ms = methods_of(probe)
    dispose(probe)
    local templates = meth[kind]
    compare(ms, templates, kind)
    local family = kind:match("^Array") and "Array" or kind
    local names = {}
    for k in pairs(ms) do
      if templates[k] then names[#names + 1] = k end
    end
    table.sort(names)
    for _, k in ipairs(names) do
      local f = ms[k]
      local label = kind .. ":" .. k
      -- Workers and pools cost a fork each: one receiver serves a whole method's sweep (and
      -- one each state's), whatever state the calls leave it in.
      local cached
      local function fresh()
        local o, extra
        if reuse[kind] then
          if not cached then
            cached = table.pack(make[kind]())
            shared[cached[1]] = true
          end
          o = cached[1]
        else
          o, extra = make[kind]()
        end
        local args = unpack_template(templates[k], o)
        table.insert(args, 1, o)
        return args, #args, { o, extra }
      end
      local function release()
        if cached then
          shared[cached[1]] = nil
          dispose(cached)
          cached = nil
        end
      end
      local skip
      local e = endless[family .. ":" .. k .. "#3"]
      if e then skip = function(pos, v) return pos == 3 and e(v) end end
      -- The receiver's own type in the receiver position is no misuse. A metamethod's
      -- receiver is always its own type when Lua invokes it (the metatables are hidden by
      -- __metatable = false: only the debug library can call one on something else), so
      -- metamethods are swept from their second argument on.
      local meta = k:sub(1, 2) == "__"
      local rskip = function(pos, v)
        return pos == 1 and (meta or mt_name(v) == tname[kind]) or (skip and skip(pos, v))
      end
      local mo = meth_opts[(kind:match("^Array") and "Array" or kind) .. ":" .. k]
      sweep(label, f, fresh, mo and { mo[1] + 1, mo[2] }, rskip)
      release()
      -- Used-up receivers: valid arguments, then each bad value in position 2.
      for sname, put in pairs(states[family] or {}) do
        local function used()
          local args, n, extra = fresh()
          pcall(put, args[1])
          return args, n, extra
        end
        local args, n, extra = used()
        call(("%s [%s]"):format(label, sname), f, args, n)
        dispose(args)
        dispose(extra)
        for _, bv in ipairs(bad) do
          if not (skip and skip(2, bv[2])) then
            args, n, extra = used()
            args[2] = bv[2]
            call(("%s [%s]#2=%s"):format(label, sname, bv[1]), f, args, math.max(n, 2))
            dispose(args)
            dispose(extra)
          end
        end
        release()
      end
    end
  end

  if mode == "--sweep-mpi" then
    local mpi = require "luashm_mpi"
    local function arr(n) return shm.array("f64", n or 4) end
    local tpl = {
      rank = { args = function() return {} end },
      size = { args = function() return {} end },
      barrier = { args = function() return {} end },
      node = { args = function() return {} end },
      node_bcast = { args = function() return { "s" } end },
      bcast = { args = function() local a = arr(); return { a, 1 }, a end },
      allreduce = { args = function() local a, b = arr(), arr(); return { a, b, "sum" }, { a, b } end },
      reduce = { args = function() local a, b = arr(), arr(); return { a, b, "sum", 1 }, { a, b } end },
      gather = { args = function() local a, b = arr(), arr(); return { a, b, 1 }, { a, b } end },
      scatter = { args = function() local a, b = arr(), arr(); return { a, b, 1 }, { a, b } end },
      send = { args = function() local a = arr(); return { a, 1, 3 }, a end },
      recv = { args = function() local a = arr(); return { a, 1, 3 }, a end },
    }
    -- With one rank, a send or recv that is accepted waits for ever for its match (MPI_Send
    -- may block): the values these take are skipped (an open Array first, tag 0 or nil, an
    -- extra argument); every other one must be refused.
    local function accepted(pos, v)
      return pos == 4 or (pos == 3 and (v == 0 or v == nil))
        or (pos == 1 and mt_name(v) == "luashm.Array" and pcall(function() return v[1] end))
    end
    tpl.send.skip, tpl.recv.skip = accepted, accepted
    local have = {}
    for k in pairs(mpi) do have[k] = true end
    compare(have, tpl, "mpi")
    sweep_module(mpi, tpl, "mpi.")
  else
    sweep_module(shm, mod, "shm.")
    sweep_module(shm._worker, private, "shm._worker.")
    local kinds = {}
    for k in pairs(make) do kinds[#kinds + 1] = k end
    table.sort(kinds)
    for _, k in ipairs(kinds) do sweep_type(k) end
  end

  bad.cleanup()
  for _, m in ipairs(missing) do out:write("MISSING ", m, "\n") end
  for _, u in ipairs(unclean) do out:write("UNCLEAN ", u, "\n") end
  for _, l in ipairs(leaks) do out:write("LEAK ", l, "\n") end
  out:write(("SWEEP DONE calls=%d unclean=%d missing=%d leaks=%d\n"):format(calls, #unclean,
    #missing, #leaks))
  out:flush()
end

if SWEEP then
  child(SWEEP)
  os.exit(0)
end

-- ---------------------------------------------------------------------------------------
-- The suite: runs the child and judges it
-- ---------------------------------------------------------------------------------------
local lu = require "luaunit"
local H = require "helper"

local signames = { [4] = "SIGILL", [6] = "SIGABRT", [7] = "SIGBUS", [8] = "SIGFPE", [9] = "SIGKILL",
  [11] = "SIGSEGV", [13] = "SIGPIPE", [15] = "SIGTERM" }

-- Runs the sweep in a child host inside a scratch directory, with a time limit; returns the
-- parsed outcome.
local function run_child(mode, prefix)
  local dir = H.sh("mktemp -d"):gsub("%s+$", "")
  local self = H.top .. "/tests/test_misuse.lua"
  if self:sub(1, 1) ~= "/" then self = H.sh("pwd"):gsub("%s+$", "") .. "/" .. self end
  local errfile = dir .. "/stderr"
  local cmd = ("cd %s && %s timeout -s KILL 280 %s %s %s 2>%s; echo \"EXIT $?\""):format(
    H.shell_quote(dir), prefix or "", H.shell_quote(H.host), H.shell_quote(self), mode,
    H.shell_quote(errfile))
  local p = io.popen(cmd)
  local last, status, result, lines = nil, nil, nil, {}
  for line in p:lines() do
    if line:sub(1, 2) == "> " then
      last = line:sub(3)
    elseif line:match("^EXIT ") then
      status = tonumber(line:match("^EXIT (%d+)"))
    elseif line:match("^SWEEP DONE") then
      result = line
    else
      lines[#lines + 1] = line
    end
  end
  p:close()
  local ef = io.open(errfile)
  local err = ef and ef:read("a") or ""
  if ef then ef:close() end
  H.sh("rm -rf " .. H.shell_quote(dir))
  return { status = status, last = last, result = result, lines = lines, stderr = err }
end

local function judge(r)
  local why
  if r.status and r.status > 128 then
    why = ("the sweep was killed by %s"):format(signames[r.status - 128] or ("signal " .. (r.status - 128)))
    if r.status - 128 == 9 then why = why .. " (time limit)" end
  elseif r.stderr:find("Sanitizer") or r.stderr:find("runtime error:") then
    why = "the sanitizers reported an error"
  elseif r.status ~= 0 or not r.result then
    why = ("the sweep exited with status %s before finishing"):format(tostring(r.status))
  end
  if why then
    lu.fail(("%s during the call %s\nstderr:\n%s"):format(why, tostring(r.last),
      r.stderr:sub(-3000)))
  end
  if #r.lines > 0 then lu.fail(table.concat(r.lines, "\n")) end
  lu.assertNotStrContains(r.stderr, "tracker: unlinked")
  local calls = tonumber(r.result:match("calls=(%d+)"))
  lu.assertTrue(calls > 1000)
  return calls
end

TestMisuse = {}

function TestMisuse:test_every_function_and_method_with_every_wrong_argument()
  local r = run_child("--sweep")
  local calls = judge(r)
  print(("misuse sweep: %d calls, none crashed, every error clean"):format(calls))
end

function TestMisuse:test_mpi_functions_with_every_wrong_argument()
  local mpirun = H.sh("command -v mpirun"):gsub("%s+$", "")
  local moddir = os.getenv("LUASHM_MODDIR") or "."
  if mpirun == "" or not H.sh("ls " .. H.shell_quote(moddir) .. "/luashm_mpi.so 2>/dev/null"):find("%S") then
    lu.skip("mpirun or luashm_mpi.so is missing")
  end
  local r = run_child("--sweep-mpi", "OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 "
    .. H.shell_quote(mpirun) .. " -n 1")
  local calls = judge(r)
  print(("misuse sweep (shm.mpi): %d calls"):format(calls))
end

-- Regressions the sweep found, each named.
local shm = require "luashm"

function TestMisuse:test_mpi_tag_out_of_range_is_an_error_not_an_abort()
  local mpirun = H.sh("command -v mpirun"):gsub("%s+$", "")
  local moddir = os.getenv("LUASHM_MODDIR") or "."
  if mpirun == "" or not H.sh("ls " .. H.shell_quote(moddir) .. "/luashm_mpi.so 2>/dev/null"):find("%S") then
    lu.skip("mpirun or luashm_mpi.so is missing")
  end
  local file = os.tmpname()
  local f = assert(io.open(file, "w"))
  -- -1 is MPI_ANY_TAG in MPICH (a recv that waited for ever), -5 made MPI abort the process.
  f:write([[
local a = shm.array("f64", 2)
a.block:unlink()
for _, case in ipairs({ { shm.mpi.send, -5 }, { shm.mpi.recv, -1 }, { shm.mpi.send, 1 << 40 } }) do
  print(select(2, pcall(case[1], a, 1, case[2])))
end
]])
  f:close()
  local out, ok = H.sh("OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 timeout 60 "
    .. H.shell_quote(mpirun) .. " -n 1 " .. H.shell_quote(H.host) .. " " .. file .. " 2>&1")
  os.remove(file)
  lu.assertTrue(ok, out)
  lu.assertStrMatches(out, "luashm: mpi.send: tag %-5 is not in 0..%d+\n"
    .. "luashm: mpi.recv: tag %-1 is not in 0..%d+\n"
    .. "luashm: mpi.send: tag 1099511627776 is not in 0..%d+\n")
end

function TestMisuse:test_pack_and_unpack_with_a_bad_format_name_the_block()
  local b <close> = shm.create(16)
  b:unlink()
  H.assert_error({ "luashm: pack '" .. b.name .. "': invalid format option '9'" }, b.pack, b, 0, 9, 1)
  H.assert_error({ "luashm: unpack '" .. b.name .. "': invalid format option '-'" }, b.unpack, b, 0, -1)
  lu.assertEquals(b:pack(0, "i4", 7), 4)
  lu.assertEquals(b:unpack(0, "i4"), 7)
end

function TestMisuse:test_a_label_that_is_not_a_string_is_a_luashm_error()
  H.assert_error({ "luashm: parallel: opts.label must be a string, not a boolean" }, shm.parallel,
    { n = 1, progress = true, label = true }, function() end)
  local p <close> = shm.pool(1)
  H.assert_error({ "luashm: map: opts.label must be a string, not a table" }, p.map, p,
    function() end, 1, { progress = true, label = {} })
end

os.exit(lu.LuaUnit.run())
