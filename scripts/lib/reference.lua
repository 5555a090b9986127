-- The reference of luashm's public Lua API: every function, method, property and option, once.
-- Three readers come from it: shm.help(x) (and `help` in the REPL), which loads this file on its
-- first call; the man page luashm(3) (host/luashm.3); and scripts/REFERENCE.md, which the
-- README links to. Both files are generated: after editing this one, run
--
--   build/luashm scripts/gen_reference.lua        (or: cmake --build build --target reference)
--
-- tests/test_help.lua fails when a public name (found at run time: the module table, every
-- kind's methods and properties, luashm.pretty and luashm.help) has no entry here, when an
-- option a function accepts is missing from its entry, when an example does not run or prints
-- something else than its `-->` comment says, or when a generated file is out of date.
--
-- The format: a sequence of topics, each followed by its entries.
--
--   { topic = "Arrays", kind = "Array", var = "a", contract = true, [[intro]] }
--     kind: the metatable name without "luashm." whose methods and properties the topic
--     documents; var: the receiver in signatures; contract: the kind has the object contract
--     (name, block, closed, close, unlink), documented once under the "Object" topic.
--
--   { "Array:sum", "a:sum()", [[what it does, what it returns]],
--     opts = { { "name", [[what the option does]] }, ... },     -- optional
--     errors = [[when it raises, and the message]],               -- optional
--     example = [[print(shm.array("i32", 3, {values = {1, 2, 3}}):sum()) --> 6]] }
--
--   The name: "shm.f" (a module function or value), "Kind:m" (a method), "Kind.p" (a property),
--   "luashm.pretty.f" (another module's function); a list of names for one entry that covers
--   several. The signature: one line per form. Text: paragraphs separated by blank lines,
--   "- " items, `code`. The example runs in a fresh luashm host; when it has `--> v`, what it
--   prints must be v (tab-separated values).
return {
{ topic = "Overview", [[
The `luashm` module: named shared-memory blocks and the objects made of them (arrays, lists,
locks, barriers, channels, dicts, progress counters), a manager, and forked workers.
`local shm = require "luashm"` (in the `luashm` host it is preloaded as the global `shm`).
Every object that lives in a shared-memory block (Block, Array, List, Lock, Barrier, Channel,
Dict, Progress) is reachable by its name from any process: `shm.open(name)` returns the right
kind of object. Indexes are 1-based (elements, items, ranks); byte offsets are 0-based.

Errors are raised as strings that start with `luashm: `, name the operation and the object
(`luashm: attach 'foo': no such block`), or take Lua's own form for a wrong argument type
(`bad argument #1 to 'create' (number expected, got nil)`). An option table with a key the
function does not know is an error naming the key. Misuse never crashes the process.

Garbage collection and `close` never remove a name from the system: only `unlink`, a
manager's shutdown, or the tracker (which unlinks the tracked blocks a process tree leaves
behind when it ends) do.]] },

{ "shm.version", "shm.version", [[
The version of luashm, a string such as `"0.2.0"` (the same as `luashm -v` and the
pkg-config version).]],
  example = [[print(type(shm.version)) --> string]] },

{ "shm.now", "shm.now()", [[
Seconds on the monotonic clock, as a float: for timing jobs and benchmarks (only differences
mean something).]],
  example = [[local t = shm.now(); print(shm.now() >= t) --> true]] },

{ "shm.tracker", "shm.tracker()", [[
The pid of this process tree's tracker (the watchdog that unlinks the tracked blocks left
when the whole tree has exited), or `nil` before the tree's first tracked create.]],
  example = [[shm.create(8); print(math.type(shm.tracker())) --> integer]] },

{ "shm.help", "shm.help([x])", [[
Prints the reference entry of `x`: a luashm function or method (`shm.help(shm.array)`,
`shm.help(a.sum)`), an object (its kind's methods and properties), or a name as a string
(`"shm.array"`, `"Array:sum"`, `"array"`, `"sum"`, a topic such as `"channels"`).
Without an argument it lists the topics. It writes to the default output (`io.output()`).
In the REPL it is also the global `help`. The reference is loaded at the first call.]],
  errors = [[Never raises: an unknown name prints what comes closest.]],
  example = [[shm.help("shm.exists")]] },
{ topic = "Object", var = "x", [[
The contract that every object living in a block shares (Block, Array, List, Lock, Barrier,
Channel, Dict, Progress; a Manager has its fields): the fields `name`, `block` and `closed`, and the
methods `close` and `unlink`. Every object also has a useful `tostring`, closes its handle at
scope exit when held in a `local x <close>` variable, and refuses use after close with an
error such as `luashm: lock 'NAME' is closed`.]] },

{ "Object.name", "x.name", [[
The name of the object's block, a string: what `shm.open` and Python's
`SharedMemory(name=...)` take, and what `ls /dev/shm` shows. Still readable after close.]],
  example = [[print(shm.lock().name:match("^luashm_%x+$") ~= nil) --> true]] },

{ "Object.block", "x.block", [[
The object's Block (a Block's is itself): its bytes, size and name.]],
  example = [[local ch = shm.channel(); print(ch.block.size > 0) --> true]] },

{ "Object.closed", "x.closed", [[
`true` once this process's handle is released (by `close`, `<close>`, or closing its Block).]],
  example = [[local lk = shm.lock(); lk:close(); print(lk.closed) --> true]] },

{ "Object:close", "x:close()", [[
Releases this process's handle (unmaps the block). Idempotent, the same as `<close>` and
garbage collection, and it never unlinks: the block stays for every other process and for
`shm.open`.]],
  example = [[local lk = shm.lock(); lk:close(); print(shm.exists(lk.name)) --> true]] },

{ "Object:unlink", "x:unlink()", [[
Removes the block's name from the system (the same as `x.block:unlink()`). Processes that have
it mapped keep working; nobody can open it by name any more. The tracker forgets it.]],
  errors = [[A second unlink: `luashm: unlink 'NAME': no such block`.]],
  example = [[local lk = shm.lock(); lk:unlink(); print(shm.exists(lk.name)) --> false]] },
{ topic = "Blocks", kind = "Block", var = "b", contract = true, [[
A named POSIX shared-memory block mapped into this process: Python's `SharedMemory`. Its
bytes are what every other kind is made of. `#b` is its size; `tostring(b)` shows the name and
size. Fields are read-only.]] },

{ "shm.create", "shm.create(size [, opts])", [[
A new block of `size` bytes (an integer > 0), zero-filled, created exclusively (`O_EXCL`) with
mode 0600 under a generated name (`luashm_` and 16 random hex digits) unless `opts.name` is
given. Its pages are reserved at once, so a full `/dev/shm` is an error here, never a SIGBUS
later. Returns the Block.]],
  opts = {
    { "name", [[a chosen name (no `/`, 1 to 250 bytes); an error if it exists]] },
    { "track", [[`true` (default): the tracker unlinks the block when this process tree has ended
and the block is still there; `false`: it outlives the tree]] },
    { "mode", [[permission bits, an integer from 0 to 0777 (default 0600)]] },
  },
  errors = [[`luashm: create: size 0 is not positive`;
`luashm: create 'NAME': a block with this name already exists`;
`luashm: create 'NAME': cannot reserve N bytes: /dev/shm has M bytes free`.]],
  example = [[local b <close> = shm.create(1024); print(b.size) --> 1024]] },

{ "shm.attach", "shm.attach(name)", [[
Maps the existing block called `name` as a plain Block (whatever it holds); its size comes
from the system. Attaching never registers the block for cleanup and never unlinks anything.
A block this process already maps (the same file: device, inode and size) shares that mapping
behind a handle of its own (the mapping cache: see `shm.flush_cache`).]],
  errors = [[`luashm: attach 'NAME': no such block`; a bad name (empty, longer than 250 bytes,
containing `/` or NUL) is an error too.]],
  example = [[local b = shm.create(16); print(shm.attach(b.name).size) --> 16]] },

{ "shm.flush_cache", "shm.flush_cache()", [[
Unmaps the mappings this process keeps for blocks no handle uses any more and returns how many.
A process keeps the last 8 such mappings (`LUASHM_MAP_CACHE=N` sets how many, `0` turns the
cache off), so that attaching the same block again costs no `mmap`; a block unlinked by another
process keeps its pages alive in such a mapping until it is evicted, found stale by a later
attach, or flushed.]],
  example = [[local b = shm.create(64); shm.attach(b.name):close(); print(shm.flush_cache()) --> 1]] },

{ "shm.exists", "shm.exists(name)", [[
`true` when a block called `name` exists, else `false`. Never raises (a bad name or a
non-string is `false`).]],
  example = [[print(shm.exists("no_such_block")) --> false]] },

{ "shm.open", "shm.open(name)", [[
Attaches the block called `name` and returns the object its bytes hold: an Array for an NPY
header, a List for a ShareableList layout (CPython's or ours), a Lock, Barrier, Channel, Dict,
Progress or Manager for one of luashm's own, else a Block. A malformed header is an error,
never a crash.]],
  errors = [[`luashm: attach 'NAME': no such block`;
`luashm: open 'NAME': bad NPY header: ...` (and likewise for the other kinds).]],
  example = [[local a = shm.array("f64", 3); print(shm.open(a.name).dtype) --> f64]] },

{ "Block.size", { "b.size", "#b" }, [[
The size of the block in bytes (an integer), as mapped by this handle.]],
  example = [[print(#shm.create(100)) --> 100]] },

{ "Block:read", "b:read([offset [, length]])", [[
The bytes from `offset` (default 0) for `length` bytes (default: to the end), as a Lua string
(a copy).]],
  errors = [[Past the end is an error, not a clamp:
`luashm: read 'NAME': offset 8 + length 16 is past the end of the block (size 16)`.]],
  example = [[local b = shm.create(8); b:write(2, "hi"); print(b:read(2, 2)) --> hi]] },

{ "Block:write", "b:write(offset, s)", [[
Copies the string `s` into the block at `offset`.]],
  errors = [[`luashm: write 'NAME': offset O + length L is past the end of the block (size S)`.]],
  example = [[local b = shm.create(8); b:write(0, "abc"); print(b:read(0, 3)) --> abc]] },

{ "Block:pack", "b:pack(offset, fmt, ...)", [[
`string.pack(fmt, ...)` written straight into the block at `offset`. Returns the offset just
past what it wrote.]],
  errors = [[A bad format: `luashm: pack 'NAME': invalid format option ...`; past the end as for
`write`.]],
  example = [[local b = shm.create(16); print(b:pack(0, "<i4d", 7, 2.5)) --> 12]] },

{ "Block:unpack", "b:unpack(offset, fmt)", [[
`string.unpack(fmt, ...)` read straight from the block at `offset`, copying only the bytes the
format needs. Returns the values (not the next position).]],
  errors = [[`luashm: unpack 'NAME': format 'FMT' at offset O runs past the end of the block`.]],
  example = [[local b = shm.create(16); b:pack(0, "<i4d", 7, 2.5); print(b:unpack(0, "<i4d")) --> 7	2.5]] },

{ "Block:close", "b:close()", [[
Releases this process's mapping. Idempotent; never unlinks. Every Array or List view of this
block then raises `block is closed`, and a Lock this handle held is released first.]],
  example = [[local b = shm.create(8); b:close(); print(b.closed) --> true]] },
{ topic = "Arrays", kind = "Array", var = "a", contract = true, [[
A typed N-dimensional array over a block (or private memory): a NumPy ndarray over `shm.buf`.
dtypes: `i8 u8 i16 u16 i32 u32 i64 u64 f32 f64 bool f16` (aliases `int8` ... `float64`, `bool_`,
`float16`), native little-endian; every array has byte strides (`a.strides`), like NumPy's.
A block made by `shm.array` is self-describing (its bytes are an NPY file), so `shm.open(name)`
and Python's `numpy.load("/dev/shm/" .. name, mmap_mode="r+")` find the dtype and shape.

`a[i]` reads element `i` of a 1-d array (`nil` outside `1..#a`, as a table) and `a[i] = v`
writes it (outside is an error); for N-d, `a[i]` is a view of row `i` (so `a[i][j]` works) and
`a[i] = v` fills or copies that row. `#a` is `shape[1]`; `ipairs(a)` walks a 1-d array;
`tostring(a)` shows dtype, shape, name and the values (elided in the middle when large).
Integer dtypes take integers and floats with an exact integer value in range (else an error
naming the index and the dtype); `u64` reads and writes two's complement; float dtypes take
any number; `bool` reads as a boolean and takes `true`, `false`, 0 and 1; `f16` rounds to
nearest even. Views (`a[i]`, `slice`, `view`, `transpose`, `reshape`) share the bytes, and
every operation works on every view.

Whole-array calls run their loops in C, at NumPy's speed: prefer them to per-element Lua loops
(an `a[i]` is a C call, slower than a table's `t[i]`). Elementwise operations are destination
first (`dst:op(x [, y])`), broadcast their operands to `dst`'s shape, compute in the dtype NumPy
1.24 would for `np.op(x, y, out=dst, casting="unsafe")`, and give the result NumPy's overlap
rule gives when operands share `dst`'s bytes. Results a call allocates are private arrays (no
name, no block), which travel by value; a shared array travels by name.]] },

{ "shm.array", { "shm.array(dtype, shape [, opts])", "shm.array(dtype, shape, {block = b [, offset = n]})" }, [[
A new zero-filled array of `dtype` and `shape` (an integer or a table of 1 to 32 integers) in
a new self-describing block. With `opts.block`, instead a raw view on part of an existing Block
(no header is written: NumPy's `np.ndarray(shape, dtype, buffer=shm.buf, offset=n)`). With
`opts.private`, an array over this process's memory: no name and no block, never tracked, freed
by `close` or the collector, sent by value.]],
  opts = {
    { "name", [[a chosen name for the new block (as `shm.create`)]] },
    { "track", [[as `shm.create` (default `true`)]] },
    { "mode", [[as `shm.create`]] },
    { "values", [[initial values: a Lua table, flat or nested like the shape, or an Array to
copy (a shared copy of a private result)]] },
    { "private", [[`true` for private memory instead of a block (no `name`, `track`, `mode`,
`block` or `offset` with it)]] },
    { "block", [[a Block to view instead of making one]] },
    { "offset", [[with `block`: the byte offset of the first element (default 0), aligned for
the dtype]] },
  },
  errors = [[`luashm: array: unknown dtype 'x' (i8 u8 ... f64 bool f16)`;
`luashm: array: N bytes at offset O do not fit in block 'NAME' (size S)`;
`luashm: array: offset 3 is misaligned for f64 (a multiple of 8)`.]],
  example = [[local a = shm.array("f64", {2, 3}, {values = {{1, 2, 3}, {4, 5, 6}}}); print(a:get(2, 3)) --> 6.0]] },

{ "shm.load", "shm.load(path [, opts])", [[
Reads the `.npy` file at `path` into a new self-describing shared array (the NPY header is
parsed as untrusted input). Returns the Array.]],
  opts = {
    { "name", [[as `shm.create`]] },
    { "track", [[as `shm.create`]] },
    { "mode", [[as `shm.create`]] },
  },
  errors = [[`luashm: load 'PATH': ...` for a missing file or a bad header; a failed load leaves
no block behind.]],
  example = [[local p = os.tmpname(); shm.array("i32", 2, {values = {4, 5}}):save(p); print(shm.load(p)[2]); os.remove(p) --> 5]] },

{ "Array.dtype", "a.dtype", [[
The dtype's short name: `"i8"` ... `"u64"`, `"f32"`, `"f64"`.]],
  example = [[print(shm.array("float64", 1).dtype) --> f64]] },

{ "Array.shape", "a.shape", [[
The shape, a fresh table of integers.]],
  example = [[print(table.concat(shm.array("u8", {2, 5}).shape, "x")) --> 2x5]] },

{ "Array.ndim", "a.ndim", [[
The number of dimensions.]],
  example = [[print(shm.array("u8", {2, 5}).ndim) --> 2]] },

{ "Array.size", "a.size", [[
The number of elements (the product of the shape).]],
  example = [[print(shm.array("u8", {2, 5}).size) --> 10]] },

{ "Array.nbytes", "a.nbytes", [[
The bytes of the elements (`size` times the item size).]],
  example = [[print(shm.array("f32", 10).nbytes) --> 40]] },

{ "Array.offset", "a.offset", [[
The byte offset of the first element in the block (the NPY header comes first in a
self-described array, so 128 for short shapes); of a view, its first element's.]],
  example = [[print(shm.array("f64", 4).offset) --> 128]] },

{ "Array.strides", "a.strides", [[
The byte strides, one per dimension (a fresh table): NumPy's numbers, negative for a view that
walks backwards. Python sees the same view with
`np.ndarray(a.shape, dtype, buffer=mmap_of_the_block, offset=a.offset, strides=a.strides)`.]],
  example = [[local m = shm.array("f64", {3, 4}); print(table.concat(m:transpose().strides, " ")) --> 8 32]] },

{ "Array.contiguous", "a.contiguous", [[
`true` when the view is C-contiguous (length-1 dimensions do not count, as in NumPy).]],
  example = [[local m = shm.array("f64", {3, 4}); print(m.contiguous, m:view({}, 2).contiguous) --> true	false]] },

{ "Array:get", "a:get(i, j, ...)", [[
The element at the full N-d index (one index per dimension): the fast path for N-d access.]],
  errors = [[`luashm: array 'NAME': get: index (3, 1) is out of range for shape (2, 3)`;
`luashm: array 'NAME': get needs 2 indexes, got 1`.]],
  example = [[local m = shm.array("i32", {2, 2}, {values = {1, 2, 3, 4}}); print(m:get(2, 1)) --> 3]] },

{ "Array:set", "a:set(i, j, ..., v)", [[
Writes `v` at the full N-d index.]],
  errors = [[Out of range as for `get`; a value the dtype cannot hold:
`luashm: array 'NAME': value 300 at index (1, 1) is out of range for u8 (0..255)`.]],
  example = [[local m = shm.array("u8", {2, 2}); m:set(1, 2, 9); print(m[1][2]) --> 9]] },

{ "Array:slice", "a:slice(i, j)", [[
A view of rows `i..j` (inclusive) of the first dimension, zero-copy. Negative indexes count
from the end and the range clamps as `string.sub` does; an empty slice has first dimension 0.]],
  example = [[local a = shm.array("i32", 5, {values = {1, 2, 3, 4, 5}}); print(a:slice(2, -2):sum()) --> 9]] },

{ "Array:view", "a:view(s1, s2, ...)", [[
A strided view sharing the bytes, one spec per leading dimension (the others are taken whole):
an integer `i` picks one index and drops the dimension (negative from the end); a table
`{first, last [, step]}` a range (inclusive, negatives from the end, clamped like `string.sub`,
`step` nonzero, negative to walk backwards; an empty range is a dimension of 0); `{}` or nil
the whole dimension. `img:view({2, -2}, {2, -2})` is an image's interior, `m:view({}, 3)` a
column, `a:view({-1, 1, -1})` reversed. A strided view travels by name with its offset, shape
and strides.]],
  errors = [[`luashm: view 'NAME': index 4 is out of range for dimension 1 of size 3`;
`luashm: view 'NAME': spec 2 has step 0`; `... 3 specs for 2 dimensions`.]],
  example = [[local a = shm.array("i32", 5, {values = {1, 2, 3, 4, 5}}); print(table.concat(a:view({-1, 1, -2}):totable(), " ")) --> 5 3 1]] },

{ "Array:transpose", "a:transpose([perm])", [[
A view with permuted axes: `perm` a table of 1-based axes (default: reversed).]],
  errors = [[`luashm: transpose 'NAME': axis 1 is repeated in perm`.]],
  example = [[local m = shm.array("i32", {2, 3}); print(table.concat(m:transpose().shape, "x")) --> 3x2]] },

{ "Array:clone", "a:clone([opts])", [[
A C-contiguous copy of the view: a new shared self-describing array, or with
`{private = true}` a private one.]],
  opts = {
    { "name", [[as `shm.create`]] },
    { "track", [[as `shm.create`]] },
    { "mode", [[as `shm.create`]] },
    { "private", [[`true` for a private copy]] },
  },
  example = [[local m = shm.array("i32", {2, 3}); print(m:view({}, 2):clone({private = true}).contiguous) --> true]] },

{ "Array:reshape", "a:reshape(shape)", [[
A view with a new shape and the same number of elements; one dimension may be `-1` (inferred).
Only of a contiguous view (`clone` a strided one first).]],
  errors = [[`luashm: array 'NAME': reshape: cannot reshape 6 elements into shape (4, 2)`;
`luashm: reshape 'NAME': the view is not contiguous (clone it first)`.]],
  example = [[print(shm.array("u8", 6):reshape({2, -1}).shape[2]) --> 3]] },

{ "Array:fill", "a:fill(v)", [[
Writes `v` into every element, in C. Returns `a`.]],
  example = [[local a = shm.array("f64", 3); a:fill(1.5); print(a:sum()) --> 4.5]] },

{ "Array:copy", { "a:copy(src)", "a:copy(src, \"unsafe\")" }, [[
Copies `src` into the array: an Array broadcast to its shape, or with the same number of
elements in C order (any dtype; overlapping views are handled), or a Lua table, flat or
nested. By the exact value rules (a value the dtype cannot hold is an error, and the elements
before it are written); with `"unsafe"`, NumPy's `astype` conversion, except that floats into
integers truncate and saturate (NaN to 0) and integers into narrower ones wrap. Returns `a`.]],
  errors = [[`luashm: array 'NAME': copy: source has 4 elements, the array 3`;
`luashm: array 'NAME': value 1.5 at index 1 is not an integer (dtype i32)`.]],
  example = [[local a = shm.array("i64", 3); a:copy({7, 8, 9}); print(a[3]) --> 9]] },

{ "Array:totable", "a:totable()", [[
A plain Lua table of the values (nested for N-d).]],
  example = [[print(#shm.array("u8", {2, 3}):totable()[2]) --> 3]] },

{ "Array:astype", "a:astype(dtype [, \"unsafe\"])", [[
A private converted copy (as `copy`, by the exact value rules or, with `"unsafe"`, NumPy's
`astype` with saturating floats).]],
  example = [[print(shm.array("f64", 2, {values = {1.9, -300}}):astype("i8", "unsafe"):totable()[2]) --> -128]] },

{ "Array:sum", { "a:sum()", "a:sum(axis [, out])" }, [[
The sum of all elements, in C: a Lua integer for integer dtypes (64-bit, wrapping like NumPy's
int64 accumulator), a float otherwise. With `axis` (1-based, negative from the end), an Array of
the reduced shape (integers as `i64`/`u64`, floats in their dtype) written into `out` or a new
private array; the reduction of a 1-d array along its axis is the number. The other reductions
take `axis` and `out` the same way.]],
  errors = [[`luashm: sum 'NAME': axis 3 is out of range for 2 dimensions`;
`luashm: sum 'NAME': out has shape (3,), the result (4,)`.]],
  example = [[local m = shm.array("i32", {2, 3}, {values = {1, 2, 3, 4, 5, 6}}); print(m:sum(), table.concat(m:sum(1):totable(), " ")) --> 21	5 7 9]] },

{ "Array:prod", { "a:prod()", "a:prod(axis [, out])" }, [[
The product (integers wrap in 64 bits).]],
  example = [[print(shm.array("i32", 3, {values = {2, 3, 4}}):prod()) --> 24]] },

{ "Array:min", { "a:min()", "a:min(axis [, out])" }, [[
The smallest element (NaN propagates, as in NumPy).]],
  errors = [[`luashm: min 'NAME': min of an empty array`.]],
  example = [[print(shm.array("i32", 3, {values = {5, -2, 9}}):min()) --> -2]] },

{ "Array:max", { "a:max()", "a:max(axis [, out])" }, [[
The largest element (NaN propagates, as in NumPy).]],
  errors = [[`luashm: max 'NAME': max of an empty array`.]],
  example = [[print(shm.array("i32", 3, {values = {5, -2, 9}}):max()) --> 9]] },

{ "Array:mean", { "a:mean()", "a:mean(axis [, out])" }, [[
The mean, computed in f64 (a float; NaN for an empty array; along an axis, `f64` for integer
dtypes).]],
  example = [[print(shm.array("i32", 4, {values = {1, 2, 3, 4}}):mean()) --> 2.5]] },

{ { "Array:var", "Array:std" }, { "a:var([axis [, out [, ddof]]])", "a:std([axis [, out [, ddof]]])" }, [[
The variance and standard deviation, in f64, two passes; divided by `n - ddof` (default 0).]],
  example = [[print(shm.array("f64", 4, {values = {1, 2, 3, 4}}):var()) --> 1.25]] },

{ { "Array:argmin", "Array:argmax" }, { "a:argmin([axis [, out]])", "a:argmax([axis [, out]])" }, [[
The 1-based flat index of the first smallest / largest element (along an axis, an `i64` Array
of 1-based positions); the first NaN wins, as in NumPy.]],
  example = [[print(shm.array("f64", 4, {values = {3, 9, 1, 9}}):argmax()) --> 2]] },

{ { "Array:any", "Array:all", "Array:count" }, { "a:any([axis [, out]])", "a:all([axis [, out]])", "a:count([axis [, out]])" }, [[
Whether any / every element is nonzero (true), and how many are (NaN counts as nonzero).]],
  example = [[local b = shm.array("bool", 3, {values = {true, false, true}}); print(b:any(), b:all(), b:count()) --> true	false	2]] },

{ { "Array:add", "Array:sub", "Array:mul", "Array:div", "Array:idiv", "Array:mod", "Array:pow", "Array:minimum", "Array:maximum" },
  { "dst:op(x)", "dst:op(x, y)" }, [[
`dst:op(x)` is `dst = dst op x`, `dst:op(x, y)` is `dst = x op y`, for `op` in `add sub mul div
idiv mod pow minimum maximum`; both return `dst`. Operands are numbers or Arrays of any dtype,
broadcast to `dst`'s shape by NumPy's rules; operands may overlap `dst` in any way (the result
is as if they had been copied first). The computation is NumPy 1.24's
`np.op(x, y, out=dst, casting="unsafe")`: its type promotion (value-based for numbers), integers
wrapping; `div` is true division; `idiv` and `mod` are floored like Lua's `//` and `%`;
`minimum`/`maximum` propagate NaN. An integer dst takes integer operands only, no `div`, and an
integer `idiv`/`mod` by zero or `pow` to a negative power is an error.]],
  errors = [[`luashm: add 'NAME': shapes (3, 4) and (5,) do not broadcast (x)`;
`luashm: sub 'NAME': cannot cast x (f64) to the integer dst (i32): convert it with copy(src, "unsafe") first`;
`luashm: div 'NAME': true division into an integer array (i32): use idiv`;
`luashm: idiv 'NAME': integer division by zero`.]],
  example = [[local a = shm.array("i32", 4, {values = {7, -7, 9, 3}}); a:idiv(2); print(table.concat(a:totable(), " ")) --> 3 -4 4 1]] },

{ { "Array:lt", "Array:le", "Array:gt", "Array:ge", "Array:eq", "Array:ne" },
  { "mask:lt(x, y)", "mask:le(x, y)", "mask:gt(x, y)", "mask:ge(x, y)", "mask:eq(x, y)", "mask:ne(x, y)" }, [[
Elementwise comparisons into a `bool` (or `u8`) mask, broadcast as the other operations (NaN
compares false, except for `ne`). Return the mask.]],
  errors = [[`luashm: lt 'NAME': a comparison writes a bool or u8 mask, not i32`.]],
  example = [[local x = shm.array("f64", 3, {values = {1, 5, 3}}); local m = shm.array("bool", 3); print(m:gt(x, 2):count()) --> 2]] },

{ { "Array:abs", "Array:neg", "Array:sqrt", "Array:exp", "Array:log", "Array:floor", "Array:ceil", "Array:round" },
  { "dst:f()", "dst:f(x)" }, [[
`abs neg sqrt exp log floor ceil round`, in place or from `x` (broadcast). `round` is half to
even, as NumPy's; `sqrt`, `exp` and `log` need a float dst; `floor`, `ceil` and `round` leave
integers as they are. Return `dst`.]],
  errors = [[`luashm: sqrt 'NAME': needs a float dst (f16, f32 or f64), not i32`.]],
  example = [[local a = shm.array("f64", 4, {values = {0.5, 1.5, 2.5, -0.5}}); print(table.concat(a:round():totable(), " ")) --> 0.0 2.0 2.0 -0.0]] },

{ "Array:clip", "dst:clip(lo, hi)", [[
`dst = min(max(dst, lo), hi)`, either bound nil for none; bounds are numbers or Arrays
(broadcast). Returns `dst`.]],
  example = [[local a = shm.array("i16", 3, {values = {-5, 3, 900}}); print(table.concat(a:clip(0, 255):totable(), " ")) --> 0 3 255]] },

{ "Array:where", "dst:where(mask, x, y)", [[
`dst = mask ? x : y`, elementwise, all three broadcast (any mask dtype: nonzero is true).
Returns `dst`.]],
  example = [[local m = shm.array("bool", 3, {values = {true, false, true}}); print(table.concat(shm.array("i32", 3):where(m, 1, -1):totable(), " ")) --> 1 -1 1]] },

{ "Array:cumsum", "a:cumsum([axis])", [[
The running sum in place, along `axis` or over the flat C order (integers wrap, floats add in
their own precision). Returns `a`.]],
  example = [[print(table.concat(shm.array("i32", 4, {values = {1, 2, 3, 4}}):cumsum():totable(), " ")) --> 1 3 6 10]] },

{ "Array:sort", "a:sort([axis])", [[
Sorts in place, ascending, along `axis` (default: the last), NaN last. Returns `a`.]],
  example = [[local s = shm.array("f64", 4, {values = {3, 0/0, -1, 2}}):sort(); print(s[1], s[3], s[4] ~= s[4]) --> -1.0	3.0	true]] },

{ "Array:argsort", "a:argsort([axis])", [[
A private `i64` array of the 1-based positions that sort the array along `axis` (default: the
last), stable: equal values keep their order.]],
  example = [[print(table.concat(shm.array("i32", 4, {values = {30, 10, 20, 10}}):argsort():totable(), " ")) --> 2 4 3 1]] },

{ "Array:dot", "a:dot(b)", [[
The dot product of two 1-d arrays of the same length, in NumPy's result dtype (a number, or a
boolean for two bool arrays).]],
  example = [[print(shm.array("i32", 3, {values = {1, 2, 3}}):dot(shm.array("f64", 3, {values = {1, 1, 2}}))) --> 9.0]] },

{ "Array:apply", "a:apply(fn)", [[
`a[i] = fn(a[i], i)` over every element (flat 1-based index `i`), for the odd job no built-in
covers. Returns `a`.]],
  example = [[print(shm.array("i32", 3):apply(function(v, i) return i * i end):sum()) --> 14]] },

{ "Array:atomic_add", "a:atomic_add(i, v)", [[
Atomically adds `v` to element `i` (flat index) and returns the old value: sequentially
consistent across processes, on `i32 u32 i64 u64` (wrapping) and `f32 f64` (a
compare-and-swap loop).]],
  errors = [[`luashm: array 'NAME': atomic_add needs dtype i32, u32, i64 or u64, f32 or f64, not i8`.]],
  example = [[local c = shm.array("i64", 1); c:atomic_add(1, 5); print(c:atomic_add(1, 1)) --> 5]] },

{ "Array:cas", "a:cas(i, expected, new)", [[
Compare-and-swap on element `i`: when it holds `expected`, stores `new` and returns `true`;
else returns `false` and the current value. Integer dtypes as `atomic_add`.]],
  example = [[local c = shm.array("i32", 1); print(c:cas(1, 0, 7), c:cas(1, 0, 8)) --> true	false	7]] },

{ "Array:atomic_load", "a:atomic_load(i)", [[
Atomically reads element `i` (sequentially consistent).]],
  example = [[local c = shm.array("u32", 1, {values = {3}}); print(c:atomic_load(1)) --> 3]] },

{ "Array:atomic_store", "a:atomic_store(i, v)", [[
Atomically writes `v` into element `i` (sequentially consistent).]],
  example = [[local c = shm.array("u32", 1); c:atomic_store(1, 4); print(c[1]) --> 4]] },

{ "Array:save", "a:save(path)", [[
Writes the array to the file at `path` as an `.npy` (header and data), for `numpy.load` or
`shm.load`.]],
  errors = [[`luashm: save 'PATH': ...` (the system's reason).]],
  example = [[local p = os.tmpname(); shm.array("u8", 2):save(p); print(io.open(p, "rb"):read(6) == "\x93NUMPY"); os.remove(p) --> true]] },

{ "Array:close", "a:close()", [[
Releases this handle. An array that made or attached its block (`shm.array`, `shm.open`,
`shm.load`, one that arrived by name) closes the block, and so every view of it; a view (a row,
a slice, a reshape, a `{block = b}` array) closes only itself. Never unlinks; `dtype`, `shape`,
`name` and `tostring` stay readable.]],
  example = [[local a = shm.array("u8", 2); a:close(); print(a.closed) --> true]] },
{ topic = "Lists", kind = "List", var = "l", contract = true, [[
A fixed-length list of integers (64-bit), floats, booleans, strings and `nil` in one block,
byte for byte CPython's `ShareableList` layout: Python's `ShareableList(name=...)` reads a list
made here, and `shm.open` opens one Python made. `l[i]` reads item `i` (`nil` outside
`1..#l`), `l[i] = v` writes it (a slot may change type; outside is an error); `#l` is the
length; `ipairs(l)` stops at the first `nil`, `pairs(l)` visits every item;
`tostring(l)` is `ShareableList({...}, name='...')`. Strings are stored as Python `str` when
valid UTF-8, as `bytes` otherwise, and read back exactly, trailing NUL bytes included (CPython
strips them: gh-106939). Writing a string longer than its slot is an error that leaves the
old value. Only one numeric slot is written atomically: guard multi-item updates with a Lock.]] },

{ "shm.list", "shm.list(values [, opts])", [[
A new list holding the sequence `values` (`values.n` is honoured, so
`table.pack(1, nil, 3)` keeps the hole). String slots are sized by encoded bytes, at least
`opts.slot_bytes`.]],
  opts = {
    { "name", [[as `shm.create`]] },
    { "track", [[as `shm.create`]] },
    { "mode", [[as `shm.create`]] },
    { "slot_bytes", [[bytes reserved for each string slot, so that strings can grow later
(rounded up to a multiple of 8)]] },
  },
  errors = [[`luashm: list: value at index 2 is a table (expected integer, float, boolean, string or nil)`.]],
  example = [[local l = shm.list(table.pack(1, 2.5, "x", nil)); print(#l, l[3]) --> 4	x]] },

{ "List.format", "l.format", [[
The struct format of the stored values, as CPython's `ShareableList.format` reports it.]],
  example = [[print(shm.list({1, 2.5}).format) --> qd]] },

{ "List:count", "l:count(v)", [[
The number of items equal to `v`.]],
  example = [[print(shm.list({1, 2, 1}):count(1)) --> 2]] },

{ "List:index", "l:index(v)", [[
The index of the first item equal to `v`, or `nil` when there is none.]],
  example = [[print(shm.list({"a", "b"}):index("b")) --> 2]] },

{ "List:totable", "l:totable()", [[
A plain table of the items, with the length in field `n` (items may be `nil`).]],
  example = [[local t = shm.list(table.pack(1, nil)):totable(); print(t.n, t[2]) --> 2	nil]] },

{ "List:close", "l:close()", [[
Closes the list's Block, so every handle on it (this one too) refuses further use. Never
unlinks.]],
  example = [[local l = shm.list({1}); l:close(); print(l.closed) --> true]] },
{ topic = "Manager", kind = "Manager", var = "m", contract = true, [[
Python's `SharedMemoryManager`: it records the blocks created through it and unlinks them
all at shutdown. `local m <close> = shm.manager()` shuts down at scope exit, by return or by
error; garbage collection shuts down too, but only in the owner process. Workers that
inherited the manager (fork) may create through it: their blocks are recorded in the same
place, and only the owner ever unlinks. `m.name` is the name of its record block.]] },

{ "shm.manager", "shm.manager()", [[
A Manager owned by the calling process. Its record has no fixed size: it grows as blocks are
recorded (contract v1's `capacity` option is gone).]],
  errors = [[`luashm: manager: unknown option 'capacity' (a manager's record grows by itself:
there is no capacity to give)`.]],
  example = [[local m <close> = shm.manager(); local a = m:array("f64", 4); print(#m:names()) --> 1]] },

{ { "Manager:create", "Manager:array", "Manager:list", "Manager:lock", "Manager:barrier",
    "Manager:channel", "Manager:progress", "Manager:dict" },
  { "m:create(size [, opts])", "m:array(dtype, shape [, opts])", "m:list(values [, opts])",
    "m:lock([opts])", "m:barrier(n [, opts])", "m:channel([opts])", "m:progress(total [, label])",
    "m:dict([opts])" }, [[
As the `shm.` function of the same name, and the manager records the new block, which its
shutdown unlinks.]],
  errors = [[`luashm: manager 'NAME' is shut down`; a record another program rewrote:
`luashm: manager 'NAME': its record is malformed at byte N of its entries`.]],
  example = [[local m <close> = shm.manager(); local b = m:create(64); m:shutdown(); print(shm.exists(b.name)) --> false]] },

{ "Manager:names", "m:names()", [[
A table of the names the manager currently owns (blocks it recorded that still exist); `{}`
after shutdown.]],
  example = [[local m <close> = shm.manager(); local l = m:list({1}); print(m:names()[1] == l.name) --> true]] },

{ "Manager:shutdown", "m:shutdown()", [[
Unlinks (and closes here) every block the manager recorded, skipping those someone else
already unlinked, then its own record. Idempotent; creating through it afterwards is an error.
Only the owner unlinks: a forked worker's copy forgets when collected, and an explicit
shutdown there is an error.]],
  errors = [[`luashm: shutdown 'NAME': pid P does not own this manager (owner Q)` when called
explicitly in another process.]],
  example = [[local m = shm.manager(); m:lock(); m:shutdown(); print(#m:names()) --> 0]] },
{ topic = "Locks", kind = "Lock", var = "lk", contract = true, [[
A process-shared, robust mutex in its own block, openable by name (`shm.open`) and sent by
name through channels. Robust: when the holder's process dies holding it, the next `acquire`
gets it with the note `"owner died"` instead of waiting for ever. Not recursive: acquiring it
again in the process that holds it is an error, not a deadlock. Ownership is per process: a
forked child does not own a lock its parent held. Closing a handle that holds the lock releases
it first. `tostring(lk)` shows `(locked)`, `(unlocked)` or `(closed)`.]] },

{ "shm.lock", "shm.lock([opts])", [[
A new unlocked Lock in its own block.]],
  opts = {
    { "name", [[as `shm.create`]] },
    { "track", [[as `shm.create`]] },
    { "mode", [[as `shm.create`]] },
  },
  example = [[local lk = shm.lock(); print(lk:acquire()) --> true]] },

{ "Lock:acquire", "lk:acquire([timeout_s])", [[
Acquires the lock, waiting at most `timeout_s` seconds (`0`: only try; none: wait as long as it
takes). Returns `true`, plus a second value `"owner died"` when the previous holder died holding
it (the lock is made usable again, but the data it guards may be half-updated), or `false` on
timeout.]],
  errors = [[`luashm: acquire 'NAME': lock is already held by this process`.]],
  example = [[local lk = shm.lock(); print(lk:acquire(0.5)) --> true]] },

{ "Lock:release", "lk:release()", [[
Releases the lock.]],
  errors = [[`luashm: release 'NAME': lock is not held by this process`.]],
  example = [[local lk = shm.lock(); lk:acquire(); lk:release(); print(lk:acquire(0)) --> true]] },

{ "Lock:guard", "lk:guard()", [[
Acquires the lock and returns a guard whose `__close` releases it:
`local g <close> = lk:guard()` holds the lock to the end of the scope, by return or by error.
Returns `"owner died"` as a second value like `acquire`.]],
  example = [[local lk = shm.lock(); do local g <close> = lk:guard() end; print(lk:acquire(0)) --> true]] },

{ topic = "Barriers", kind = "Barrier", var = "bar", contract = true, [[
A process-shared barrier for `n` parties in its own block, openable by name, reusable round
after round. A registered party that dies breaks the barrier: every current and later `wait`
raises (within about 50 ms) rather than hanging. `tostring(bar)` shows the parties and how
many wait now.]] },

{ "shm.barrier", "shm.barrier(n [, opts])", [[
A new Barrier for `n` parties (1 to 4096).]],
  opts = {
    { "name", [[as `shm.create`]] },
    { "track", [[as `shm.create`]] },
    { "mode", [[as `shm.create`]] },
  },
  errors = [[`luashm: barrier: parties 0 is not between 1 and 4096`.]],
  example = [[print(shm.barrier(3):parties()) --> 3]] },

{ "Barrier:wait", "bar:wait([timeout_s])", [[
Waits until all `n` parties have called `wait`: returns `true, serial`, with `serial` true for
exactly one party per round (the last to arrive). With a timeout, returns `false` when it runs
out, and withdraws this party's arrival so that the barrier stays usable.]],
  errors = [[`luashm: wait 'NAME': a party died (pid P)`;
`luashm: wait 'NAME': more than N processes wait on it`.]],
  example = [[print(shm.barrier(1):wait()) --> true	true]] },

{ "Barrier:parties", "bar:parties()", [[
The number of parties `n`.]],
  example = [[print(shm.barrier(2):parties()) --> 2]] },
{ topic = "Channels", kind = "Channel", var = "ch", contract = true, [[
A multi-producer multi-consumer FIFO of Lua values in its own block, openable by name. Values
travel through the value codec (see `shm.encode`): nil, booleans, numbers (integer and float
kept apart), strings, tables (nested, no cycles, without metatables), and luashm objects, which
travel **by name** (tens of bytes whatever their size) and arrive attached. A message is
delivered exactly once; a receiver killed inside `recv` loses nothing. `#ch` is the number of
messages queued; `tostring(ch)` shows the messages, the bytes used and whether it is shut
down. `ch:close()` only releases this handle: `ch:shutdown()` ends the stream.]] },

{ "shm.channel", "shm.channel([opts])", [[
A new empty Channel.]],
  opts = {
    { "capacity", [[bytes of buffer, 64 to 2^40 (default 65536); every message must fit whole]] },
    { "name", [[as `shm.create`]] },
    { "track", [[as `shm.create`]] },
    { "mode", [[as `shm.create`]] },
  },
  errors = [[`luashm: channel: opts.capacity must be an integer from 64 to 2^40 (bytes of buffer)`.]],
  example = [[print(shm.channel({capacity = 4096}).capacity) --> 4096]] },

{ "Channel:send", "ch:send(v [, timeout_s])", [[
Sends the value `v`, waiting for room at most `timeout_s` seconds (none: as long as it takes).
Returns `true`, or `false, "timeout"`.]],
  errors = [[`luashm: channel 'NAME' is shut down`;
`luashm: send 'NAME': a message of N bytes does not fit the channel's capacity of C bytes ...`;
`luashm: send: value at [2].f is a function ...` (what cannot be sent, and where it sits).]],
  example = [[local ch = shm.channel(); ch:send({x = 1}); print(ch:recv().x) --> 1]] },

{ "Channel:recv", "ch:recv([timeout_s])", [[
The next value, waiting at most `timeout_s` seconds: or `nil, "timeout"`, or `nil, "shutdown"`
once the channel is shut down and drained. A message that cannot be decoded is an error naming
the cause, never dropped silently: after a transient failure (no file descriptors left) it
stays queued for the next `recv`, after a permanent one (a block in it was unlinked) it is taken
off, and the error says which. A receiver killed inside `recv` leaves the message to the next.]],
  example = [[local ch = shm.channel(); print(ch:recv(0)) --> nil	timeout]] },

{ "Channel:shutdown", "ch:shutdown()", [[
Ends the stream for every process (Python 3.13's `Queue.shutdown`): later sends raise, senders
blocked on a full channel wake with that error, receivers drain what is left and then get
`nil, "shutdown"`. Idempotent.]],
  example = [[local ch = shm.channel(); ch:send(1); ch:shutdown(); print(ch:recv(), ch:recv()) --> 1	nil	shutdown]] },

{ "Channel:iter", "ch:iter()", [[
An iterator for `for v in ch:iter() do ... end`, which receives until the channel is shut down
and drained (messages holding `nil` are skipped, since a `nil` would end the loop).]],
  example = [[local ch = shm.channel(); ch:send(1); ch:send(2); ch:shutdown(); local s = 0; for v in ch:iter() do s = s + v end; print(s) --> 3]] },

{ "Channel.capacity", "ch.capacity", [[
Bytes of buffer (what `opts.capacity` asked for, rounded up to a multiple of 8).]],
  example = [[print(shm.channel().capacity) --> 65536]] },

{ "Channel.recovered", "ch.recovered", [[
How many times a process found the channel's lock held by a process that had died, and
recovered it (the half-written message of the dead sender is never seen).]],
  example = [[print(shm.channel().recovered) --> 0]] },
{ topic = "Dicts", kind = "Dict", var = "d", contract = true, [[
OpenResty's `lua_shared_dict` for forked workers: a hash table of string keys (1 to 65535
bytes, any bytes) and scalar values (booleans, integers and floats kept apart, strings) in its
own block of fixed size, openable by name, travelling by name. Every operation is atomic, and
a process killed at any point inside one leaves the dict consistent: the next caller undoes
the half-done operation, as a robust lock recovers.

Keys hash to stripes (about one per 512 KiB of capacity, up to 64), each with its own lock,
so workers on different keys rarely wait for each other. When a stripe is full, entries not
used lately are evicted (second-chance LRU: a read marks an entry, eviction skips marked
entries once); `safe_set` never evicts. Expiry times run on the monotonic clock. An entry
holds at most about capacity / stripes bytes. `pairs(d)` iterates over a snapshot;
`tostring(d)` shows the keys and the bytes used.]] },

{ "shm.dict", "shm.dict([opts])", [[
A new empty Dict in its own self-describing block.]],
  opts = {
    { "capacity", [[bytes of the zone (the dict's whole memory, index included): from a few
KiB to 2^36, default 1 MiB]] },
    { "name", [[as `shm.create`]] },
    { "track", [[as `shm.create`]] },
    { "mode", [[as `shm.create`]] },
  },
  errors = [[`luashm: dict: capacity 1000 bytes is too small for the dict's own index (at least
N bytes)`; `luashm: dict: opts.capacity must be a positive integer (bytes of the zone), not x`.]],
  example = [[local d = shm.dict({capacity = 65536}); print(d:capacity()) --> 65536]] },

{ "Dict:get", "d:get(k)", [[
The value of key `k`, or `nil`; when an expired entry was found (and removed), `nil, true`.
Marks the entry used (it then survives the next eviction pass).]],
  errors = [[`luashm: get 'NAME': key must be a string, not number`; `... key is empty`;
`... key of N bytes is longer than 65535 bytes`.]],
  example = [[local d = shm.dict(); d:set("n", 1); print(d:get("n"), math.type(d:get("n")), d:get("x")) --> 1	integer	nil]] },

{ "Dict:set", "d:set(k, v [, ttl_s])", [[
Stores `v` (boolean, integer, float or string) under `k`, to expire after `ttl_s` seconds
(absent or 0: never; beyond 10^9 seconds, math.huge included: never). `nil` deletes. When
the stripe is full, entries not used lately are evicted: returns `true`, and `true` as a
second value when it evicted live entries.]],
  errors = [[`luashm: set 'NAME': value of key 'k' is a table (a dict holds booleans, numbers
and strings)`; `... ttl for key 'k' must be a number of seconds >= 0 (0: never expires), not
-1`; `... key 'k' with a value of N bytes can never fit (an entry of this key holds at most M
bytes; make the dict larger with opts.capacity)`.]],
  example = [[local d = shm.dict(); print(d:set("a", "x", 60), d:get("a")) --> true	x]] },

{ "Dict:safe_set", "d:safe_set(k, v [, ttl_s])", [[
As `set`, but never evicts a live entry: `nil, "no memory"` when there is no room (expired
entries do make room).]],
  example = [[local d = shm.dict(); print(d:safe_set("a", 1)) --> true]] },

{ { "Dict:add", "Dict:replace" }, { "d:add(k, v [, ttl_s])", "d:replace(k, v [, ttl_s])" }, [[
`add` stores only when `k` has no live entry, `replace` only when it has one: `true`, or
`false, "exists"` / `false, "not found"`. As `set` otherwise (they evict when full).]],
  example = [[local d = shm.dict(); d:add("a", 1); print(d:add("a", 2)) --> false	exists]] },

{ "Dict:incr", "d:incr(k, n [, init [, ttl_s]])", [[
Adds the number `n` to the number under `k`, atomically, and returns the new value: integers
stay integers (wrapping), anything with a float gives a float. When `k` has no live entry it
starts from `init` (stored with `ttl_s`), or, without `init`, the result is `nil, "not found"`.
The expiry of an existing entry is left as it is.]],
  errors = [[`luashm: incr 'NAME': value of key 'k' is a string, not a number`;
`... increment for key 'k' must be a number, not nil`.]],
  example = [[local d = shm.dict(); d:incr("hits", 1, 0); print(d:incr("hits", 2)) --> 3]] },

{ "Dict:delete", "d:delete(k)", [[
Removes `k` (the same as `d:set(k, nil)`); returns `true`.]],
  example = [[local d = shm.dict(); d:set("a", 1); d:delete("a"); print(d:get("a")) --> nil]] },

{ "Dict:flush_all", "d:flush_all()", [[
Removes every entry, at once for every process (one store commits it; the stripes are emptied
as they are next used).]],
  example = [[local d = shm.dict(); d:set("a", 1); d:flush_all(); print(d:count()) --> 0]] },

{ "Dict:flush_expired", "d:flush_expired([max])", [[
Removes up to `max` expired entries (absent or 0: all) and frees their memory; returns how many
it removed.]],
  example = [[local d = shm.dict(); print(d:flush_expired()) --> 0]] },

{ "Dict:ttl", "d:ttl(k)", [[
Seconds left before `k` expires (a float), `0` when it never expires, or `nil, "not found"`.]],
  example = [[local d = shm.dict(); d:set("a", 1); print(d:ttl("a"), d:ttl("b")) --> 0	nil	not found]] },

{ "Dict:expire", "d:expire(k, ttl_s)", [[
Sets the expiry of `k` to `ttl_s` seconds from now, or clears it (`0`): `true`, or
`nil, "not found"`.]],
  example = [[local d = shm.dict(); d:set("a", 1); d:expire("a", 100); print(d:ttl("a") > 99) --> true]] },

{ "Dict:keys", "d:keys([max])", [[
A sequence of up to `max` live keys (absent or 0: all), from one snapshot taken with every
stripe locked, in no particular order.]],
  example = [[local d = shm.dict(); d:set("a", 1); print(#d:keys()) --> 1]] },

{ "Dict:count", "d:count()", [[
The number of live keys (expired entries not yet removed are not counted).]],
  example = [[local d = shm.dict(); d:set("a", 1); d:set("b", 2); print(d:count()) --> 2]] },

{ "Dict:totable", "d:totable()", [[
A plain table of every live key and its value, from one snapshot (what `pairs(d)` iterates).]],
  example = [[local d = shm.dict(); d:set("a", 1); print(d:totable().a) --> 1]] },

{ "Dict:capacity", "d:capacity()", [[
Bytes of the zone (`opts.capacity`).]],
  example = [[print(shm.dict():capacity()) --> 1048576]] },

{ "Dict:free_space", "d:free_space()", [[
Bytes free now, in all stripes (the index is not counted: an empty dict has a little less than
its capacity). Free bytes may be split: the largest entry that fits can be smaller.]],
  example = [[local d = shm.dict(); local f = d:free_space(); d:set("k", ("x"):rep(100)); print(f - d:free_space()) --> 152]] },
{ topic = "Workers", kind = "Worker", var = "w", [[
Forked Lua processes that run a function or a script and hand back their results. Values
cross through the value codec (see `shm.encode`), so Arrays, Lists, Blocks, Locks and Channels
travel by name and arrive attached. Every forked worker starts with `math.random` reseeded from
the kernel's random source (no two workers share a stream; `shm.parallel` and `shm.pool` take
`{seed = S}` for reproducible runs). A worker still running when its handle is collected or
closed (the end of the host included) is killed and reaped, and an ended one is reaped: no
worker outlives its host, none stays a zombie. SIGINT (Ctrl-C) interrupts every blocking call
(`join`, `shm.wait`, `map`, a channel's `recv` and `send`, a lock's `acquire`, a barrier's
`wait`) with `luashm: interrupted`, leaving the object usable. `tostring(w)` shows the pid and
whether it runs.]] },

{ "shm.spawn", { "shm.spawn(fn, ...)", "shm.spawn(path, ...)" }, [[
Forks a worker that runs `fn(...)` in a copy of the parent's state as of the fork (closures,
upvalues and globals work), or, given a path, a **fresh** interpreter with luashm preloaded
that runs the script at `path` with `...` (its return values are the results). Returns the
Worker.]],
  errors = [[`luashm: spawn 'PATH': No such file or directory`; arguments the codec cannot send.]],
  example = [[print(shm.spawn(function(x) return x * 2 end, 21):join()) --> true	42]] },

{ "Worker:join", "w:join([timeout_s])", [[
Waits for the worker to end (at most `timeout_s` seconds) and returns `true, results...`, or
`false, err` where `err` names the worker (pid, rank when it has one) and carries the Lua
traceback, the signal that killed it, or its exit status; `nil, "timeout"` when it still
runs.]],
  errors = [[`luashm: join: timeout must be a number of seconds >= 0, not -1`;
`luashm: join: worker P is not a child of this process`; `luashm: interrupted` (SIGINT).]],
  example = [[print(shm.spawn(function() error("boom") end):join() == false) --> true]] },

{ "Worker:kill", "w:kill([signal])", [[
Sends `signal` (a number or a name: `"TERM"` (default), `"KILL"`, `"INT"`, `"HUP"`, `"QUIT"`,
`"USR1"`, `"USR2"`, `"STOP"`, `"CONT"`, `"ALRM"`, with or without `SIG`). Returns `true`, or
`false` when the worker had already ended (its pid is then never signalled).]],
  errors = [[`luashm: kill: unknown signal 'X'`.]],
  example = [[local w = shm.spawn(function() while true do end end); w:kill("KILL"); print((w:join())) --> false]] },

{ "Worker:running", "w:running()", [[
`true` while the worker's process runs.]],
  example = [[local w = shm.spawn(function() end); w:join(); print(w:running()) --> false]] },

{ "Worker:close", "w:close()", [[
Kills (SIGKILL) and reaps the worker if it still runs, and releases the handle's link. The
same as `<close>` and garbage collection.]],
  example = [[local w = shm.spawn(function() while true do end end); w:close(); print(w:running()) --> false]] },

{ "shm.wait", "shm.wait(workers [, timeout_s])", [[
Waits for **any** of a sequence of Workers: returns `w, true, results...` or `w, false, err`
for the first one that ends, or `nil, "timeout"`. Each Worker is reported once and then counts
as joined (its `join` still gives the outcome); the next call reports the next one. A pipeline
waits for its stages with it and stops at the first failure.]],
  errors = [[`luashm: wait: expected a non-empty sequence of Workers`;
`luashm: wait: every worker of the sequence was already joined`;
`luashm: wait: item 2 of the sequence is a table, not a Worker`; `luashm: interrupted`.]],
  example = [[local ws = {shm.spawn(function() return "a" end)}; local w, ok, v = shm.wait(ws); print(ok, v) --> true	a]] },

{ "shm.default_workers", "shm.default_workers()", [[
The worker count `shm.parallel` and `shm.pool` use when none is given: the host's `-j N`,
else the environment's `LUASHM_WORKERS`, else `shm.cpus()`.]],
  errors = [[`luashm: LUASHM_WORKERS='x' is not a worker count from 1 to 4096`.]],
  example = [[print(shm.default_workers() >= 1) --> true]] },

{ "Worker.pid", "w.pid", [[
The worker's process id.]],
  example = [[print(shm.spawn(function() end).pid > 0) --> true]] },

{ "Worker.rank", "w.rank", [[
The worker's rank in a `shm.parallel` or `shm.pool`, else `nil`.]],
  example = [[print(shm.spawn(function() end).rank) --> nil]] },

{ "shm.parallel", { "shm.parallel(n, fn, ...)", "shm.parallel{n = n, fn = fn, args = {...}}",
    "shm.parallel(opts, fn, ...)" }, [[
Runs `fn(rank, n, ...)` in `n` forked workers (ranks 1 to `n`; `nil`: `shm.default_workers()`),
waits for all and returns a table of their first results by rank. If any fails, the others are
stopped and the error names every rank that failed.]],
  opts = {
    { "n", [[the worker count]] },
    { "fn", [[the function (the option-table form: then nothing follows the table)]] },
    { "args", [[the arguments after `rank, n` (`args.n` keeps trailing nils)]] },
    { "progress", [[`true`: a progress bar of the ranks done (on stderr, when it is a terminal)]] },
    { "label", [[the bar's label (default `"parallel"`)]] },
    { "seed", [[an integer: rank `r` runs `math.randomseed(seed, r)` first, so that a run is
reproducible (without it every worker is seeded from the kernel)]] },
  },
  errors = [[`luashm: parallel: rank 2 failed (the other workers were stopped)` followed by each
failure.]],
  example = [[print(shm.parallel(2, function(rank, n) return rank * 10 end)[2]) --> 20]] },

{ "shm.partition", "shm.partition(len, n, rank)", [[
`lo, hi`: the part of `1..len` (1-based, inclusive) that `rank` of `n` gets in a balanced
split (the first `len % n` parts are one longer). An empty part has `hi = lo - 1`.]],
  errors = [[`luashm: partition: rank 4 is not in 1..3`.]],
  example = [[print(shm.partition(10, 3, 1)) --> 1	4]] },

{ "shm.cpus", "shm.cpus()", [[
The number of CPUs this process may run on (online CPUs within its affinity mask).]],
  example = [[print(shm.cpus() >= 1) --> true]] },

{ topic = "Pools", kind = "Pool", var = "p", [[
A pool of persistent forked workers with dynamic scheduling: each idle worker takes the next
item. The workers are forked at the first `map` and run `fn` in their copy of the parent's
state; they stay up for later maps with the same `fn`. `local p <close> = shm.pool(n)` closes
at scope exit. `tostring(p)` shows the size and the state.]] },

{ "shm.pool", "shm.pool([n [, opts]])", [[
A Pool of `n` workers (default `shm.default_workers()`); no process starts before the first
`map`.]],
  opts = {
    { "seed", [[an integer: slot `r` runs `math.randomseed(seed, r)` each time its worker is
forked]] },
  },
  errors = [[`luashm: pool: worker count 0 is not an integer from 1 to 4096`.]],
  example = [[local p <close> = shm.pool(2); print(p.size) --> 2]] },

{ "Pool:map", { "p:map(fn, items [, opts])", "p:map(fn, count [, opts])" }, [[
Calls `fn(item)` for every item of the sequence `items` (or `fn(i)` for `i = 1..count`) on the
pool's workers and returns the first results, in item order. Items go to the workers in
chunks; each idle worker takes the next chunk. Calling `map` on a pool from inside its own
`map` (an item's metamethod, or `fn` in a worker) is an error.]],
  opts = {
    { "chunksize", [[items per round trip to a worker (default, as Python's `Pool.map`:
`ceil(#items / (4 * workers))`; at most 131072)]] },
    { "progress", [[`true`: a progress bar of the items done]] },
    { "label", [[the bar's label (default `"map"`)]] },
  },
  errors = [[`luashm: map: item 3 failed: ...` (the workers are then restarted at the next map);
`luashm: map: this pool is already running a map (map is not re-entrant)`;
`luashm: map: opts.chunksize must be a positive integer, not 0`; `luashm: pool is closed`;
`luashm: interrupted`.]],
  example = [[local p <close> = shm.pool(2); print(table.concat(p:map(function(i) return i * i end, 4), " ")) --> 1 4 9 16]] },

{ "Pool:close", "p:close()", [[
Ends the workers. Idempotent; the same as `<close>`.]],
  example = [[local p = shm.pool(1); p:close(); print(p.closed) --> true]] },

{ "Pool.size", "p.size", [[
The number of workers.]],
  example = [[print(shm.pool(3).size) --> 3]] },

{ "Pool.closed", "p.closed", [[
`true` once the pool is closed.]],
  example = [[print(shm.pool(1).closed) --> false]] },

{ topic = "Progress", kind = "Progress", var = "p", contract = true, [[
A shared counter in its own block that any worker adds to (inherited by fork, or sent by name),
and one progress bar (rate, ETA) that the creating process draws on stderr when stderr is a
terminal, and nothing otherwise. `tostring(p)` shows `count/total`.]] },

{ "shm.progress", "shm.progress(total [, label])", [[
A new Progress counting towards `total` (an integer >= 0), with a `label` of at most 47 bytes.]],
  errors = [[`luashm: progress: total -1 is negative`.]],
  example = [[local p = shm.progress(10, "rows"); p:add(4); print(p.count) --> 4]] },

{ "Progress:add", "p:add([k])", [[
Adds `k` (default 1) to the count, atomically, from any process; returns the new count.]],
  example = [[print(shm.progress(5):add(2)) --> 2]] },

{ "Progress.count", "p.count", [[
The count so far.]],
  example = [[print(shm.progress(5).count) --> 0]] },

{ "Progress.total", "p.total", [[
The total it counts towards.]],
  example = [[print(shm.progress(5).total) --> 5]] },

{ "Progress.label", "p.label", [[
The label.]],
  example = [[print(shm.progress(5, "rows").label) --> rows]] },
{ topic = "Values", [[
The value codec that channels and workers share, exposed for keeping structured values in a
Block or a file in the same form.]] },

{ "shm.encode", "shm.encode(...)", [[
The values `...` as one binary string: nil, booleans, integers and floats (kept apart),
strings, tables (nested up to 128 levels, copied without metatables; a table reachable twice is
copied twice) and luashm objects by name.]],
  errors = [[A cycle, or a value that cannot travel, names its path:
`luashm: encode: value at [2].f is a function ...`.]],
  example = [[print(#shm.encode(1, "x") > 0) --> true]] },

{ "shm.decode", "shm.decode(s)", [[
The values that `shm.encode` put in `s`; luashm objects are attached by name. The bytes are
untrusted input.]],
  errors = [[`luashm: decode: malformed message at byte N: ...`.]],
  example = [[print(shm.decode(shm.encode(1, "x", true))) --> 1	x	true]] },

{ topic = "MPI", run_examples = false, [[
`shm.mpi`: the collectives a data job needs, straight on Arrays' memory, for a script started
as `mpirun -n N luashm job.lua`. Ranks are 1-based, like `shm.parallel`'s. The MPI module
(`luashm_mpi.so`, built when CMake finds an MPI) is loaded at the first use of `shm.mpi`;
without it every call says how to get it. Errors read `luashm: mpi.<op>: ...`. Arrays given to
one collective must have the same dtype and size on every rank.]] },

{ "shm.mpi.launched", "shm.mpi.launched()", [[
`true` when this process was started by `mpirun`/`mpiexec` (MPICH, Open MPI, Slurm).]],
  example = [[if shm.mpi.launched() then print(shm.mpi.rank()) end]] },

{ "shm.mpi.available", "shm.mpi.available()", [[
`true` when the MPI module can be loaded here.]],
  example = [[print(shm.mpi.available())]] },

{ "shm.mpi.rank", "shm.mpi.rank()", [[
This process's rank, 1 to `size()`.]],
  example = [[print(shm.mpi.rank())]] },

{ "shm.mpi.size", "shm.mpi.size()", [[
The number of ranks.]],
  example = [[print(shm.mpi.size())]] },

{ "shm.mpi.barrier", "shm.mpi.barrier()", [[
Waits until every rank has called it.]],
  example = [[shm.mpi.barrier()]] },

{ "shm.mpi.bcast", "shm.mpi.bcast(a [, root])", [[
Copies the elements of `root`'s Array `a` (default rank 1) into every rank's `a`, in place.]],
  example = [[local a = shm.array("f64", 3); shm.mpi.bcast(a, 1)]] },

{ "shm.mpi.reduce", "shm.mpi.reduce(src, dst [, op [, root]])", [[
Elementwise `op` (`"sum"` (default), `"min"` or `"max"`) over every rank's `src`, into `root`'s
`dst` only (`dst` may be `src`).]],
  example = [[local a = shm.array("f64", 3); shm.mpi.reduce(a, a, "sum", 1)]] },

{ "shm.mpi.allreduce", "shm.mpi.allreduce(src, dst [, op])", [[
Like `reduce`, into every rank's `dst`.]],
  errors = [[`luashm: mpi.allreduce: arrays differ (f64[3] and f64[4]): give the same dtype and size`.]],
  example = [[local a = shm.array("f64", 3); shm.mpi.allreduce(a, a, "max")]] },

{ "shm.mpi.gather", "shm.mpi.gather(part, whole [, root])", [[
Every rank's `part` into `root`'s `whole`, where rank r's part is rows
`shm.partition(#whole, size, r)` of `whole`.]],
  example = [[-- local whole = shm.array("f64", {n, 3}); shm.mpi.gather(my_rows, whole)]] },

{ "shm.mpi.scatter", "shm.mpi.scatter(whole, part [, root])", [[
The inverse of `gather`: `root`'s `whole`, row ranges to every rank's `part`.]],
  example = [[-- shm.mpi.scatter(whole, my_rows)]] },

{ "shm.mpi.send", "shm.mpi.send(a, to [, tag])", [[
Sends the elements of `a` to rank `to` (tag 0 to the MPI's upper bound, default 0).]],
  errors = [[`luashm: mpi.send: rank 3 is not in 1..2`; `luashm: mpi.send: tag -1 is not in 0..N`.]],
  example = [[shm.mpi.send(shm.array("i32", 4), 2)]] },

{ "shm.mpi.recv", "shm.mpi.recv(a, from [, tag])", [[
Receives into `a` what rank `from` sent.]],
  example = [[shm.mpi.recv(shm.array("i32", 4), 1)]] },

{ "shm.mpi.node", "shm.mpi.node()", [[
This process's rank among the ranks on the same machine (1-based), and their count.]],
  example = [[print(shm.mpi.node())]] },

{ "shm.mpi.node_bcast", "shm.mpi.node_bcast(s)", [[
The string `s` of the node's first rank, returned on every rank of the node (collective).]],
  example = [[print(shm.mpi.node_bcast("from the first rank"))]] },

{ "shm.mpi.shared_array", "shm.mpi.shared_array(dtype, shape)", [[
One Array per machine, shared by name by every rank on it (collective): the node's first rank
creates an ordinary self-describing luashm array, the others open it by name.]],
  example = [[local a = shm.mpi.shared_array("f64", 1000)]] },

{ "shm.mpi.free", "shm.mpi.free(a)", [[
Unlinks (on the node's first rank) and closes an array from `shared_array` (collective).]],
  example = [[shm.mpi.free(shm.mpi.shared_array("f64", 10))]] },
{ topic = "REPL", [[
`luashm` alone on a terminal is an interactive Lua with `shm` preloaded: line editing and
history (`~/.luashm_history`), multi-line input, expressions printed automatically (tables,
Arrays and Lists pretty-printed), Tab completion of globals, fields, methods and the
properties of luashm objects (`a.sh<Tab>` gives `a.shape`), and the global `help`
(`shm.help`). A `local` declared at the prompt lasts for the rest of the session: the REPL keeps
the session's locals in a table of its own, so `local a = shm.array("f64", 10)` on one line
and `a:sum()` on the next works; a `<close>` local is closed when the session ends. Ctrl-C
cancels the line being typed or interrupts the running chunk. At Ctrl-D the session's workers
are stopped and the tracked blocks it made are unlinked, in one line that names them.
Scripts can use the printer: `local P = require "luashm.pretty"`.]] },

{ "luashm.pretty.format", "P.format(v [, opts])", [[
The value `v` as a string, as the REPL prints it: nested tables with sorted keys (cycles shown,
depth and width limited), strings quoted, luashm objects and values with a `__tostring` in that
form.]],
  opts = {
    { "depth", [[levels of nested tables shown (default 4)]] },
    { "items", [[entries shown per table (default 50)]] },
    { "width", [[columns before a table breaks into lines (default 80)]] },
    { "indent", [[the indent of a nested level (default two spaces)]] },
  },
  example = [[print(require("luashm.pretty").format({3, x = {1, 2}})) --> {3, x = {1, 2}}]] },

{ "luashm.pretty.print", "P.print(...)", [[
Prints each value as `format` shows it: on one line separated by tabs when every value fits
on a line, else one after another.]],
  example = [[require("luashm.pretty").print("a", {1}) --> "a"	{1}]] },

{ "luashm.pretty.quote", "P.quote(s)", [[
The string `s` as Lua source writes it, on one line (control bytes escaped).]],
  example = [[print(require("luashm.pretty").quote("a\nb")) --> "a\nb"]] },

{ "luashm.pretty.complete", "P.complete(text [, env])", [[
The REPL's Tab completion: the sorted words that complete `text` (names joined by `.`, at
most one final `:`), evaluated in `env` (default: the globals). Methods of luashm objects end
with `(`; their properties come from this reference. Never raises.]],
  example = [[print(require("luashm.pretty").complete("string.fo")[1]) --> string.format]] },

{ "luashm.pretty.defaults", "P.defaults", [[
The default options of `format` (`depth`, `items`, `width`, `indent`); the REPL sets `width`
to the terminal's before each print.]],
  example = [[print(require("luashm.pretty").defaults.depth) --> 4]] },

{ "luashm.pretty.keywords", "P.keywords", [[
The set of Lua's reserved words (keys), which completion offers and `format` never writes as a
bare key.]],
  example = [[print(require("luashm.pretty").keywords["end"]) --> true]] },

{ "luashm.pretty.session", "P.session()", [[
The REPL's session environment (made at the first call): a table whose reads go through to the
globals, which holds the names that top-level `local`s declared at the prompt, and sends every
other assignment to the globals. The REPL runs each chunk with it as `_ENV`. A session local
that holds `nil` reads the global of the same name.]],
  example = [[local env = require("luashm.pretty").session(); print(env.print == print) --> true]] },

{ "luashm.pretty.rewrite_locals", "P.rewrite_locals(chunk)", [[
The chunk with its top-level `local` statements turned into declarations in the session
(`local a, b = 1, 2` becomes `__luashm_local({"a", "b"}, {}, 1, 2)`), line numbers kept; `nil`
when it has none.]],
  example = [[print(require("luashm.pretty").rewrite_locals("local x = 1")) --> __luashm_local({"x"}, {}, 1);]] },

{ "luashm.pretty.session_load", "P.session_load(fn, chunk)", [[
The function the REPL runs for `chunk`, which compiled as `fn`: the rewritten chunk when it has
top-level locals, else `fn`, in both cases with the session as `_ENV`.]],
  example = [[local P = require "luashm.pretty"; P.session_load(load("local y = 2"), "local y = 2")(); print(P.session().y) --> 2]] },

{ "luashm.pretty.session_end", "P.session_end()", [[
Closes the `<close>` locals declared at the prompt, the last first (the REPL calls it at the
end of input); returns the error messages of those that failed to close.]],
  example = [[print(#require("luashm.pretty").session_end()) --> 0]] },

{ "luashm.help.show", "H.show([x])", [[
What `shm.help(x)` does: writes `H.text(x)` and a newline to the default output
(`io.output()`, as `io.write` does).]],
  example = [[require("luashm.help").show("shm.now")]] },

{ "luashm.help.text", "H.text([x])", [[
The text that `shm.help(x)` prints, as a string (`H = require "luashm.help"`).]],
  example = [[print(require("luashm.help").text("shm.now"):match("^shm.now%(%)") ~= nil) --> true]] },

{ "luashm.help.topics", "H.topics()", [[
The parsed reference: a sequence of topics `{title, kind, var, contract, text, entries}`, each
entry `{names, sigs, text, opts, errors, example, topic}` (what `scripts/gen_reference.lua`
renders).]],
  example = [[print(require("luashm.help").topics()[1].title) --> Overview]] },

{ "luashm.help.entry", "H.entry(name)", [[
The entry of a canonical name (`"shm.create"`, `"Array:sum"`, `"Array.shape"`), with the object
contract's entries for a kind that has it; `nil` when there is none.]],
  example = [[print(require("luashm.help").entry("Lock:close").names[1]) --> Object:close]] },

{ "luashm.help.fields", "H.fields(v)", [[
The property names of the luashm object `v` (what completion offers after `.`), sorted.]],
  example = [[print(table.concat(require("luashm.help").fields(shm.progress(1)), " ")) --> block closed count label name total]] },

{ "luashm.help.paragraphs", "H.paragraphs(text)", [[
The paragraphs of a reference text, each joined into one line: a sequence of
`{kind = "para" or "item", text = ...}` ("- " items are paragraphs of their own).]],
  example = [[print(#require("luashm.help").paragraphs("One\ntwo.\n\n- item")) --> 2]] },

{ "luashm.help.anchor", "H.anchor(heading)", [[
GitHub's anchor of a Markdown heading, what a link to it puts after `#`: lower case, only
letters, digits, spaces, `-` and `_` kept, spaces as `-` (the links of `scripts/REFERENCE.md`).]],
  example = [[print(require("luashm.help").anchor("Scaling out (MPI)")) --> scaling-out-mpi]] },

{ "luashm.help.summary", "H.summary(text [, markup])", [[
The first sentence of a reference text, without its markup unless `markup` is true.]],
  example = [[print(require("luashm.help").summary("One `x`. Two.")) --> One x.]] },
}
