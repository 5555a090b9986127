"""luashm.py: luashm's blocks from Python, without Python's resource tracker.

    import luashm
    a = luashm.open("luashm_0123456789abcdef")  # an array block: a live NumPy array
    l = luashm.open(name)                       # a list block: a ShareableList
    b = luashm.open(name)                       # anything else: a SharedMemory
    x = luashm.array("f64", (3, 4))             # a new array block; in Lua: shm.open(x.name)

Python's resource tracker unlinks, when a Python process exits, every block that process
created *or attached* with SharedMemory or ShareableList (CPython gh-82300; 3.13 added
SharedMemory(track=False), never for ShareableList): a Python reader would delete a Lua job's
block under it. Nothing here registers a block with the tracker, so a Python process never
unlinks a block it did not unlink itself, however it ends (SIGKILL included): arrays are
memory-mapped from /dev/shm/NAME by NumPy, and lists and other blocks are attached with the
tracker's registration skipped for that one name, in that one call.

Pure Python; NumPy is imported only for arrays. Linux (POSIX shared memory in /dev/shm).
"""

import contextlib
import mmap
import os
import secrets
import struct
import threading
from multiprocessing import resource_tracker, shared_memory

# open() is luashm.open: not exported by "from luashm import *", where it would hide the builtin.
__all__ = ["array", "kind", "unlink", "DTYPES", "SharedMemory"]

SHM_DIR = "/dev/shm/"

# luashm's dtype names (and their aliases) as NumPy type strings. Note that luashm's "i8" is
# one byte (NumPy's "i1"), not NumPy's "i8" (eight bytes).
DTYPES = {
    "i8": "|i1", "u8": "|u1", "i16": "<i2", "u16": "<u2", "i32": "<i4", "u32": "<u4",
    "i64": "<i8", "u64": "<u8", "f16": "<f2", "f32": "<f4", "f64": "<f8", "bool": "|b1",
    "int8": "|i1", "uint8": "|u1", "int16": "<i2", "uint16": "<u2", "int32": "<i4",
    "uint32": "<u4", "int64": "<i8", "uint64": "<u8", "float16": "<f2", "float32": "<f4",
    "float64": "<f8",
}

_NPY_MAGIC = b"\x93NUMPY"
_LUASHM_MAGIC = b"\x93LUASHM\x00"  # the header of luashm's own kinds (lock, channel...)


def _path(name):
    if not isinstance(name, str) or not name or "/" in name or "\0" in name or len(name) > 250:
        raise ValueError("luashm: bad block name %r" % (name,))
    return SHM_DIR + name


# ----------------------------------------------------------------------------------------
# Attaching without the resource tracker
# ----------------------------------------------------------------------------------------

_lock = threading.Lock()
_tracked = set()  # blocks this process registered on purpose: luashm.array(track=True)


@contextlib.contextmanager
def _untracked(name):
    """While in this block, resource_tracker.register skips the one block called name: what
    SharedMemory(name) and ShareableList(name=name) register on attach. Other names and
    other resource types pass through."""
    with _lock:
        register = resource_tracker.register

        def skip(rname, rtype):
            if rtype == "shared_memory" and rname.lstrip("/") == name:
                return
            register(rname, rtype)

        resource_tracker.register = skip
        try:
            yield
        finally:
            resource_tracker.register = register


class SharedMemory(shared_memory.SharedMemory):
    """A SharedMemory this process never registered: unlink() removes the name without
    telling the tracker (which would print an error about a name it never had)."""

    def unlink(self):
        os.unlink(_path(self.name))


def _attach(name):
    """SharedMemory(name) without registering it with the resource tracker."""
    with _untracked(name):
        shm = shared_memory.SharedMemory(name)
    shm.__class__ = SharedMemory
    return shm


# ----------------------------------------------------------------------------------------
# What a block holds
# ----------------------------------------------------------------------------------------

def _is_list(buf):
    """Whether buf holds a ShareableList layout consistent with its size (CPython's, or
    luashm's with its exact-length area): the test shm.open makes (bindings/list.c)."""
    size = len(buf)
    if size < 16:
        return False
    (n,) = struct.unpack_from("<q", buf, 0)
    if n < 0 or n > (size - 16) // 17:
        return False
    data = 8 * (n + 2)
    (end,) = struct.unpack_from("<q", buf, 8 + 8 * n)
    if end < 0 or end > size - data - 9 * n:
        return False
    fmt = data + end
    codes = fmt + 8 * n
    need = codes + n
    aligned = (need + 7) & ~7
    if size != need and not (size == aligned + 8 + 8 * n and
                             bytes(buf[aligned:aligned + 8]) == b"\x93LUASHL\x00"):
        return False
    if n == 0 and size == need:
        return False  # an all-zero block reads as an empty CPython list: a plain block
    prev = 0
    if struct.unpack_from("<q", buf, 8)[0] != 0:
        return False
    for i in range(1, n + 1):
        (off,) = struct.unpack_from("<q", buf, 8 + 8 * i)
        if off <= prev or off % 8 or off > end:
            return False
        f = bytes(buf[fmt + 8 * (i - 1):fmt + 8 * i])
        code = struct.unpack_from("b", buf, codes + i - 1)[0]
        if code == 0:
            ok = f in (b"q" + b"\0" * 7, b"d" + b"\0" * 7, b"xxxxxxx?")
        elif code == 3:
            ok = f == b"xxxxxx?x"
        elif code in (1, 2):
            digits = f.split(b"s", 1)[0]
            ok = (digits.isdigit() and f[len(digits):len(digits) + 1] == b"s" and
                  f[len(digits) + 1:] == b"\0" * (7 - len(digits)) and int(digits) <= off - prev)
        else:
            ok = False
        if not ok:
            return False
        prev = off
    return prev == end


def _kind_of(buf):
    if bytes(buf[:6]) == _NPY_MAGIC:
        return "array"
    if len(buf) >= 64 and bytes(buf[:8]) == _LUASHM_MAGIC:
        word = bytes(buf[8:24]).split(b"\0", 1)[0]
        return word.decode("ascii", "replace") or "block"
    return "list" if _is_list(buf) else "block"


def _map(name, writable=False):
    fd = os.open(_path(name), os.O_RDWR if writable else os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        if size == 0:
            raise ValueError("luashm: block %r is empty" % name)
        return mmap.mmap(fd, size, prot=mmap.PROT_READ | (mmap.PROT_WRITE if writable else 0))
    finally:
        os.close(fd)


def kind(name):
    """What the block called name holds, as shm.open would open it: "array", "list", "block",
    or the kind word of one of luashm's own objects ("lock", "barrier", "channel",
    "progress", "manager"...). Raises FileNotFoundError when there is no such block."""
    m = _map(name)
    try:
        return _kind_of(memoryview(m))
    finally:
        m.close()


# ----------------------------------------------------------------------------------------
# Arrays
# ----------------------------------------------------------------------------------------

def _numpy():
    import numpy
    return numpy


def _dtype(dtype):
    np = _numpy()
    if isinstance(dtype, str) and dtype in DTYPES:
        return np.dtype(DTYPES[dtype])
    return np.dtype(dtype)


def _view(name, view):
    """A NumPy array over part of the block: view = {"offset": bytes from the block's start,
    "shape": (...), "strides": (...) (bytes; default C order), "dtype": ... (default the NPY
    header's)} as a luashm Array reports them (a.offset, a.shape, a.strides, a.dtype)."""
    np = _numpy()
    unknown = set(view) - {"offset", "shape", "strides", "dtype"}
    if unknown:
        raise ValueError("luashm: open %r: unknown view key(s) %s" % (name, sorted(unknown)))
    base = np.memmap(_path(name), dtype=np.uint8, mode="r+")
    dtype = view.get("dtype")
    if dtype is None:
        if bytes(base[:6]) != _NPY_MAGIC:
            raise ValueError("luashm: open %r: not an array block: the view needs a dtype" % name)
        dtype = np.load(_path(name), mmap_mode="r").dtype
    dtype = _dtype(dtype)
    shape = view["shape"]
    shape = (shape,) if isinstance(shape, int) else tuple(int(d) for d in shape)
    offset = int(view.get("offset", 0))
    strides = view.get("strides")
    if strides is None:
        strides, step = [], dtype.itemsize
        for d in reversed(shape):
            strides.insert(0, step)
            step *= max(d, 1)
    strides = tuple(int(s) for s in strides)
    if len(strides) != len(shape) or any(d < 0 for d in shape) or offset < 0:
        raise ValueError("luashm: open %r: bad view %r" % (name, view))
    if all(d > 0 for d in shape):
        lo = offset + sum(s * (d - 1) for s, d in zip(strides, shape) if s < 0)
        hi = offset + sum(s * (d - 1) for s, d in zip(strides, shape) if s > 0) + dtype.itemsize
        if lo < 0 or hi > base.size:
            raise ValueError("luashm: open %r: the view needs bytes %d..%d, the block has %d"
                             % (name, lo, hi, base.size))
    return np.ndarray(shape, dtype, buffer=base, offset=offset, strides=strides)


def array(dtype, shape, name=None, track=False):
    """A new zero-filled array in a new self-describing block (an NPY file, as shm.array
    makes: Lua opens it with shm.open(name), NumPy with numpy.load(path, mmap_mode="r+")):
    a numpy.memmap whose .name is the block's name. dtype: a luashm name ("f64", "i32"...,
    where "i8" is one byte) or a NumPy dtype; shape: an int or a tuple. The block is created
    exclusively with mode 0600 under a generated name (luashm_ and 16 hex digits) unless name
    is given. Python's tracker never unlinks it unless track=True; else it stays until
    someone unlinks it (luashm.unlink(name), or x:unlink() in Lua)."""
    np = _numpy()
    import io
    from numpy.lib import format as npy
    dt = _dtype(dtype)
    shape = (shape,) if isinstance(shape, int) else tuple(int(d) for d in shape)
    if not shape or any(d < 0 for d in shape):
        raise ValueError("luashm: array: shape %r is not 1 to 32 non-negative sizes" % (shape,))
    if dt.str not in DTYPES.values():
        raise ValueError("luashm: array: dtype %s is not one luashm opens" % dt)
    header = io.BytesIO()
    npy.write_array_header_1_0(header, {"descr": dt.str, "fortran_order": False, "shape": shape})
    header = header.getvalue()
    size = len(header) + dt.itemsize * int(np.prod(shape, dtype=np.int64))
    while True:
        block = name or "luashm_" + secrets.token_hex(8)
        try:
            fd = os.open(_path(block), os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
            break
        except FileExistsError:
            if name:
                raise
    try:
        os.posix_fallocate(fd, 0, size)  # reserved now: no SIGBUS on a full /dev/shm later
        os.pwrite(fd, header, 0)
    except BaseException:
        os.close(fd)
        os.unlink(_path(block))
        raise
    os.close(fd)
    if track:
        resource_tracker.register("/" + block, "shared_memory")
        _tracked.add(block)
    a = np.load(_path(block), mmap_mode="r+")
    a.name = block
    return a


# ----------------------------------------------------------------------------------------
# Opening by name
# ----------------------------------------------------------------------------------------

def open(name, view=None):
    """The block called name, as what it holds, never registered with Python's resource
    tracker:

    - an array block (made by shm.array or luashm.array): a live numpy.memmap over it (with
      .name); with view (a dict of offset, shape and optional strides and dtype, as a luashm
      Array reports them), a numpy.ndarray over exactly that view, for views sent by name;
    - a list block (shm.list, or a ShareableList): a ShareableList;
    - anything else (a raw block, or one of luashm's own: a lock, barrier, channel, progress
      counter, manager record, dict...): a SharedMemory (luashm.kind(name) says what it is).

    close() releases this process's mapping; nothing here unlinks the block unless asked
    (unlink() on the SharedMemory, luashm.unlink(name))."""
    if view is not None:
        return _view(name, view)
    what = kind(name)
    if what == "array":
        a = _numpy().load(_path(name), mmap_mode="r+")
        a.name = name
        return a
    if what == "list":
        with _untracked(name):
            sl = shared_memory.ShareableList(name=name)
        sl.shm.__class__ = SharedMemory
        return sl
    return _attach(name)


def unlink(name):
    """Removes the block called name (as shm's unlink does; processes that have it mapped keep
    working). A name registered with this process's tracker (luashm.array(track=True)) is
    unregistered too."""
    os.unlink(_path(name))
    if name in _tracked:
        _tracked.discard(name)
        resource_tracker.unregister("/" + name, "shared_memory")
