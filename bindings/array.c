/*
** The Array: an N-d strided view (NumPy's ndarray) of a Block's bytes or of private memory.
** This file holds the type itself: shm.array, shm.load, the "array" kind of shm.open and of
** travel (by name for a shared array, by value for a private one), element access, properties
** and lifetime. Element access is the hot path: every dtype has its own metatable, whose
** __index/__newindex take the integer 1-d case first with that dtype's load or store inlined.
** Views are in array_view.c, elementwise operations in array_ops.c, reductions in
** array_reduce.c; the computing itself in core/kernels.h.
*/
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "array.h"

unsigned char *const luashm_array_closed = NULL;

/* The registry keys of the per-dtype metatables. */
static const char metatables[LUASHM_NDTYPES] = {0};
#define MEMORY "luashm.ArrayMem" /* private memory's metatable */

/* ---------------------------------------------------------------------------------------
** The gate and messages
** ------------------------------------------------------------------------------------- */

const char *luashm_array_label(lua_State *L, const array *a) {
  if (a->head.b == NULL) return lua_pushliteral(L, "(private)");
  return lua_pushfstring(L, "'%s'", a->head.b->name);
}

int luashm_array_closed_error(lua_State *L, const array *a) {
  if (a->head.b != NULL && a->datap != &luashm_array_closed)
    return luashm_closed(L, a->head.b, "array");
  return luashm_error(L, "array %s is closed", luashm_array_label(L, a));
}

const char *luashm_array_pushshape(lua_State *L, int ndim, const size_t *shape) {
  luaL_Buffer b;
  int i;
  luaL_buffinit(L, &b);
  luaL_addchar(&b, '(');
  for (i = 0; i < ndim; i++) {
    if (i) luaL_addstring(&b, ", ");
    lua_pushfstring(L, "%I", (lua_Integer)shape[i]);
    luaL_addvalue(&b);
  }
  if (ndim == 1) luaL_addchar(&b, ',');
  luaL_addchar(&b, ')');
  luaL_pushresult(&b);
  return lua_tostring(L, -1);
}

/* ---------------------------------------------------------------------------------------
** Making arrays
** ------------------------------------------------------------------------------------- */

void luashm_array_cstrides(int ndim, const size_t *shape, size_t itemsize, ptrdiff_t *strides) {
  size_t s = itemsize;
  int k;
  for (k = ndim - 1; k >= 0; k--) {
    size_t d = shape[k] ? shape[k] : 1;
    strides[k] = (ptrdiff_t)s;
    if (k > 0 && s > (size_t)PTRDIFF_MAX / d) { /* only an empty array gets here: (0, 2^62) */
      for (k = 0; k < ndim; k++) strides[k] = 0;
      return;
    }
    s *= d;
  }
}

int luashm_array_contiguous(const array *a) {
  const ptrdiff_t *st = array_strides(a);
  ptrdiff_t s = a->itemsize;
  int k;
  if (a->count == 0) return 1;
  for (k = a->ndim - 1; k >= 0; k--) {
    if (a->shape[k] == 1) continue;
    if (st[k] != s) return 0;
    s *= (ptrdiff_t)a->shape[k];
  }
  return 1;
}

size_t luashm_array_count(lua_State *L, int ndim, const size_t *shape, size_t itemsize) {
  size_t n = 1;
  int k;
  for (k = 0; k < ndim; k++)
    if (shape[k] == 0) return 0;
  for (k = 0; k < ndim; k++) {
    if (n > (size_t)PTRDIFF_MAX / shape[k]) luashm_error(L, "array: shape is too large");
    n *= shape[k];
  }
  if (n > (size_t)PTRDIFF_MAX / itemsize) luashm_error(L, "array: shape is too large");
  return n;
}

/* Pushes an Array over the storage at storeidx (a Block, or an array_mem when b is NULL).
   strides NULL: C order. The caller has checked that every element lies in the storage. */
static array *push_array(lua_State *L, int storeidx, luashm_block *b, unsigned char *const *datap,
                         int dt, int ndim, const size_t *shape, const ptrdiff_t *strides,
                         size_t offset, int flags) {
  array *a;
  int k;
  storeidx = lua_absindex(L, storeidx);
  a = (array *)lua_newuserdatauv(L, sizeof(array) + 2 * (size_t)ndim * sizeof(size_t), 1);
  a->head.kind = &luashm_kind_array;
  a->head.b = b;
  a->datap = datap;
  a->offset = offset;
  a->dtype = (unsigned char)dt;
  a->itemsize = luashm_dtype_sizes[dt];
  a->ndim = (unsigned char)ndim;
  a->flags = (unsigned char)flags;
  a->count = 1;
  for (k = 0; k < ndim; k++) {
    a->shape[k] = shape[k];
    a->count *= shape[k];
  }
  if (strides != NULL)
    memcpy(array_strides(a), strides, (size_t)ndim * sizeof *strides);
  else
    luashm_array_cstrides(ndim, shape, a->itemsize, array_strides(a));
  lua_pushvalue(L, storeidx);
  lua_setiuservalue(L, -2, 1);
  lua_rawgetp(L, LUA_REGISTRYINDEX, &metatables[dt]);
  lua_setmetatable(L, -2);
  return a;
}

static array *push_block_array(lua_State *L, int blkidx, int dt, int ndim, const size_t *shape,
                               const ptrdiff_t *strides, size_t offset, int flags) {
  luashm_block *b = luashm_toblock(L, blkidx);
  return push_array(L, blkidx, b, (unsigned char *const *)&b->data, dt, ndim, shape, strides,
                    offset, flags);
}

array *luashm_array_view(lua_State *L, int aidx, int ndim, const size_t *shape,
                         const ptrdiff_t *strides, size_t offset) {
  array *a = luashm_array_to(L, aidx), *v;
  aidx = lua_absindex(L, aidx);
  lua_getiuservalue(L, aidx, 1);
  v = push_array(L, -1, a->head.b, a->datap, a->dtype, ndim, shape, strides, offset, 0);
  lua_remove(L, -2);
  return v;
}

/* Small private arrays come from malloc; large ones from their own anonymous mapping, which
   the kernel zero-fills lazily and munmap gives back at once (and whose failure is a plain
   error under every allocator, the sanitizers' included). */
#define MAP_MIN (1u << 20)

static void memory_free(array_mem *m) {
  if (m->data != NULL && m->size >= MAP_MIN)
    munmap(m->data, m->size);
  else
    free(m->data);
  m->data = NULL;
}

static int memory_gc(lua_State *L) {
  memory_free((array_mem *)lua_touserdata(L, 1));
  return 0;
}

array *luashm_array_private(lua_State *L, int dt, int ndim, const size_t *shape, int zero) {
  size_t bytes =
      luashm_array_count(L, ndim, shape, luashm_dtype_sizes[dt]) * luashm_dtype_sizes[dt];
  array_mem *m = (array_mem *)lua_newuserdatauv(L, sizeof *m, 0);
  array *a;
  m->data = NULL;
  m->size = bytes;
  luaL_setmetatable(L, MEMORY);
  /* Lua's collector does not see this memory: a step for every MiB keeps a loop that makes
     large private results from outgrowing the machine before a collection. */
  if (bytes >= (1u << 20)) lua_gc(L, LUA_GCSTEP, (int)(bytes >> 20 < 1024 ? bytes >> 10 : 1 << 20));
  if (bytes >= MAP_MIN) {
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    m->data = p == MAP_FAILED ? NULL : (unsigned char *)p;
#ifdef MADV_HUGEPAGE
    /* Transparent huge pages where the system gives them on request (NumPy asks too): fewer
       TLB misses on every pass over a large array. */
    if (m->data != NULL && bytes >= (4u << 20)) madvise(p, bytes, MADV_HUGEPAGE);
#endif
  } else {
    m->data = (unsigned char *)(zero ? calloc(bytes ? bytes : 1, 1) : malloc(bytes ? bytes : 1));
  }
  if (m->data == NULL)
    luashm_error(L, "array: out of memory for a private array of %I bytes", (lua_Integer)bytes);
  a = push_array(L, -1, NULL, (unsigned char *const *)&m->data, dt, ndim, shape, NULL, 0, AF_OWNS);
  lua_remove(L, -2);
  return a;
}

array *luashm_array_shared(lua_State *L, int dt, int ndim, const size_t *shape, int optidx) {
  size_t n = luashm_array_count(L, ndim, shape, luashm_dtype_sizes[dt]);
  size_t hl = luashm_npy_header_len(dt, ndim, shape);
  luashm_block *b = luashm_block_new(L, hl + n * luashm_dtype_sizes[dt], optidx);
  array *a;
  luashm_npy_write(b->data, dt, ndim, shape);
  a = push_block_array(L, -1, dt, ndim, shape, NULL, hl, AF_OWNS | AF_WHOLE);
  lua_remove(L, -2);
  return a;
}

/* ---------------------------------------------------------------------------------------
** Constructors
** ------------------------------------------------------------------------------------- */

/* A raw view of (dtype, shape, strides) at offset of the Block at blkidx, checked to lie in
   the block and to be aligned (its bytes may come from a message: untrusted). */
static array *checked_view(lua_State *L, int blkidx, int dt, int ndim, const size_t *shape,
                           const ptrdiff_t *strides, lua_Integer offset, int flags) {
  luashm_block *b = luashm_checkblock(L, blkidx);
  size_t isz = luashm_dtype_sizes[dt], n = luashm_array_count(L, ndim, shape, isz);
  lua_Integer lo = offset, hi = offset;
  ptrdiff_t given[LUASHM_MAXDIMS];
  int k;
  /* The stride of a dimension of length 1 never moves: any value is NumPy's, 0 is ours (a
     huge one would still be added once after the only element by the loops). */
  for (k = 0; strides != NULL && k < ndim; k++) given[k] = shape[k] > 1 ? strides[k] : 0;
  if (strides != NULL) strides = given;
  if (offset < 0) luashm_error(L, "array: offset %I is negative", offset);
  if ((lua_Unsigned)offset > b->size)
    luashm_error(L, "array: offset %I is past the end of block '%s' (size %I)", offset, b->name,
                 (lua_Integer)b->size);
  if ((size_t)offset % isz != 0)
    luashm_error(L, "array: offset %I is misaligned for %s (a multiple of %d)", offset,
                 luashm_dtype_names[dt], (int)isz);
  if (n == 0) strides = NULL; /* an empty view's strides mean nothing: C order, bounded */
  /* No view made here ever has more bytes of elements than its block: one that claims more
     (elements repeated by zero or overlapping strides) comes from elsewhere, and is refused
     before a reduction sizes anything by it. */
  if (n * isz > b->size)
    luashm_error(L, "array: %I elements of %s are more than block '%s' holds (size %I)",
                 (lua_Integer)n, luashm_dtype_names[dt], b->name, (lua_Integer)b->size);
  /* Every term is checked against the block's size first: the sums cannot overflow. */
  for (k = 0; strides != NULL && k < ndim && n > 0; k++) {
    ptrdiff_t s = strides[k];
    size_t reach = s < 0 ? (size_t)0 - (size_t)s : (size_t)s;
    if (s % (ptrdiff_t)isz != 0)
      luashm_error(L, "array: stride %I is misaligned for %s", (lua_Integer)s,
                   luashm_dtype_names[dt]);
    if (shape[k] > 1 && reach > b->size / (shape[k] - 1))
      luashm_error(L, "array: stride %I of dimension %d reaches outside block '%s'", (lua_Integer)s,
                   k + 1, b->name);
    if (s < 0)
      lo -= (lua_Integer)(reach * (shape[k] - 1));
    else
      hi += (lua_Integer)(reach * (shape[k] - 1));
  }
  if (strides == NULL) hi = offset + (lua_Integer)(n * isz) - (n > 0 ? (lua_Integer)isz : 0);
  if (n > 0) hi += (lua_Integer)isz;
  if (strides == NULL && (lua_Unsigned)hi > b->size)
    luashm_error(L, "array: %I bytes at offset %I do not fit in block '%s' (size %I)",
                 (lua_Integer)(n * isz), offset, b->name, (lua_Integer)b->size);
  if (lo < 0 || (lua_Unsigned)hi > b->size)
    luashm_error(L, "array: the view's bytes %I..%I do not fit in block '%s' (size %I)", lo, hi,
                 b->name, (lua_Integer)b->size);
  return push_block_array(L, blkidx, dt, ndim, shape, strides, (size_t)offset, flags);
}

/* Runs on a protected call: copies opts.values (arg 2: a table or an Array) into arg 1. */
static int fill_values(lua_State *L) {
  if (lua_istable(L, 2)) {
    luashm_array_copytable(L, (const array *)lua_touserdata(L, 1), 2);
    return 0;
  }
  lua_getfield(L, 1, "copy");
  lua_insert(L, 1);
  lua_call(L, 2, 0);
  return 0;
}

/* Calls method m of the Block at idx, ignoring errors (cleanup on a failure path). */
static void block_call(lua_State *L, int idx, const char *m) {
  idx = lua_absindex(L, idx);
  lua_getfield(L, idx, m);
  lua_pushvalue(L, idx);
  if (lua_pcall(L, 1, 0, 0) != LUA_OK) lua_pop(L, 1);
}

/* With the new Array on top: copies opts.values (opts at optidx, if any); on failure a block
   it created is unlinked and closed before the error goes on. */
static void init_values(lua_State *L, int optidx, int created) {
  if (optidx == 0 || !lua_istable(L, optidx)) return;
  if (lua_getfield(L, optidx, "values") == LUA_TNIL) {
    lua_pop(L, 1);
    return;
  }
  lua_pushcfunction(L, fill_values);
  lua_pushvalue(L, -3);
  lua_pushvalue(L, -3);
  if (lua_pcall(L, 2, 0, 0) != LUA_OK) {
    if (created) {
      lua_getiuservalue(L, -3, 1);
      block_call(L, -1, "unlink");
      block_call(L, -1, "close");
      lua_pop(L, 1);
    }
    lua_error(L);
  }
  lua_pop(L, 1);
}

static const char *const array_options[] = {
    LUASHM_BLOCK_OPTIONS, "values", "block", "offset", "private", NULL};

/* shm.array(dtype, shape [, opts]) */
static int array_new(lua_State *L) {
  size_t shape[LUASHM_MAXDIMS];
  int dt = luashm_array_checkdtype(L, 1), ndim = luashm_array_checkshape(L, 2, shape, 0);
  int hasopts = luashm_checkoptions(L, 3, "array", array_options);
  lua_settop(L, 3);
  if (hasopts && luashm_optboolfield(L, 3, "private", 0)) {
    static const char *const shared_only[] = {"name", "track", "mode", "block", "offset", NULL};
    int k;
    for (k = 0; shared_only[k] != NULL; k++)
      if (lua_getfield(L, 3, shared_only[k]) != LUA_TNIL)
        return luashm_error(L, "array: a private array takes no opts.%s", shared_only[k]);
    luashm_array_private(L, dt, ndim, shape, 1);
    init_values(L, 3, 0);
    return 1;
  }
  if (hasopts && lua_getfield(L, 3, "block") != LUA_TNIL) {
    lua_Integer off = 0;
    if (lua_getfield(L, 3, "offset") != LUA_TNIL) {
      int isint;
      off = lua_tointegerx(L, -1, &isint);
      if (!isint) luashm_error(L, "array: opts.offset must be an integer");
    }
    lua_pop(L, 1);
    if (luaL_testudata(L, -1, LUASHM_BLOCK) == NULL)
      return luashm_error(L, "array: opts.block must be a Block, not a %s", luaL_typename(L, -1));
    checked_view(L, -1, dt, ndim, shape, NULL, off, 0);
    init_values(L, 3, 0);
    return 1;
  }
  luashm_array_shared(L, dt, ndim, shape, hasopts ? 3 : 0);
  init_values(L, hasopts ? 3 : 0, 1);
  return 1;
}

static int array_probe(const unsigned char *p, size_t size) {
  return luashm_npy_probe(p, size);
}

/* The whole self-describing array of the Block at the top of the stack (which it replaces). */
static int wrap_whole(lua_State *L) {
  char err[LUASHM_ERRLEN];
  luashm_npy h;
  luashm_block *b = luashm_checkblock(L, -1);
  if (luashm_npy_parse(b->data, b->size, b->size, &h, err) != 0)
    return luashm_error(L, "open '%s': %s", b->name, err);
  if (h.ndim == 0) return luashm_error(L, "open '%s': 0-d arrays are not supported", b->name);
  if (h.data_offset % luashm_dtype_sizes[h.dtype] != 0)
    return luashm_error(L, "open '%s': data at offset %I is misaligned for %s", b->name,
                        (lua_Integer)h.data_offset, luashm_dtype_names[h.dtype]);
  push_block_array(L, -1, h.dtype, h.ndim, h.shape, NULL, h.data_offset, AF_OWNS | AF_WHOLE);
  lua_remove(L, -2);
  return 1;
}

static const char *const load_options[] = {LUASHM_BLOCK_OPTIONS, NULL};

/* shm.load(path [, opts]): a new self-describing block holding the file's array. */
static int array_load(lua_State *L) {
  char err[LUASHM_ERRLEN];
  const char *path = luaL_checkstring(L, 1);
  luashm_npy h;
  array *a;
  luashm_checkoptions(L, 2, "load", load_options);
  if (luashm_npy_read_header(path, &h, err) != 0) return luashm_error(L, "%s", err);
  if (h.ndim == 0) return luashm_error(L, "load '%s': 0-d arrays are not supported", path);
  a = luashm_array_shared(L, h.dtype, h.ndim, h.shape, lua_istable(L, 2) ? 2 : 0);
  if (luashm_npy_read_data(path, &h, array_data(a), a->count * a->itemsize, err) != 0) {
    lua_getiuservalue(L, -1, 1);
    block_call(L, -1, "unlink");
    block_call(L, -1, "close");
    return luashm_error(L, "%s", err);
  }
  return 1;
}

/* ---------------------------------------------------------------------------------------
** Element access: the hot path, one pair of metamethods per dtype
** ------------------------------------------------------------------------------------- */

static int index_slow(lua_State *L, int t);
static int newindex_slow(lua_State *L);

/* Each dtype's element: push_N pushes it, fast_N stores the value at idx when it is the
   dtype's common case (1) and leaves anything else (0) to luashm_array_store. */
#define PUSHER(N, T, PUSH)                                   \
  static inline void push_##N(lua_State *L, const void *p) { \
    PUSH(L, *(const T *)p);                                  \
  }
#define PUSH_INT(L, v) lua_pushinteger(L, (lua_Integer)(v))
#define PUSH_NUM(L, v) lua_pushnumber(L, (lua_Number)(v))
#define PUSH_BOOL(L, v) lua_pushboolean(L, (v) != 0)
#define PUSH_HALF(L, v) lua_pushnumber(L, (lua_Number)luashm_half_to_float(v))
PUSHER(i8, int8_t, PUSH_INT)
PUSHER(u8, uint8_t, PUSH_INT)
PUSHER(i16, int16_t, PUSH_INT)
PUSHER(u16, uint16_t, PUSH_INT)
PUSHER(i32, int32_t, PUSH_INT)
PUSHER(u32, uint32_t, PUSH_INT)
PUSHER(i64, int64_t, PUSH_INT)
PUSHER(u64, uint64_t, PUSH_INT)
PUSHER(f32, float, PUSH_NUM)
PUSHER(f64, double, PUSH_NUM)
PUSHER(bool, uint8_t, PUSH_BOOL)
PUSHER(f16, uint16_t, PUSH_HALF)

#define FAST_RANGE(N, T, LO, HI)                               \
  static inline int fast_##N(lua_State *L, int idx, void *p) { \
    int isint;                                                 \
    lua_Integer v = lua_tointegerx(L, idx, &isint);            \
    if (!isint || v < (LO) || v > (HI)) return 0;              \
    *(T *)p = (T)v;                                            \
    return 1;                                                  \
  }
FAST_RANGE(i8, int8_t, INT8_MIN, INT8_MAX)
FAST_RANGE(u8, uint8_t, 0, UINT8_MAX)
FAST_RANGE(i16, int16_t, INT16_MIN, INT16_MAX)
FAST_RANGE(u16, uint16_t, 0, UINT16_MAX)
FAST_RANGE(i32, int32_t, INT32_MIN, INT32_MAX)
FAST_RANGE(u32, uint32_t, 0, UINT32_MAX)
/* i64 and u64 take any integer (u64 as two's complement); u64's floats in [2^63, 2^64) and
   everything else go the slow way. */
static inline int fast_i64(lua_State *L, int idx, void *p) {
  int isint;
  lua_Integer v = lua_tointegerx(L, idx, &isint);
  if (!isint) return 0;
  *(int64_t *)p = (int64_t)v;
  return 1;
}
static inline int fast_u64(lua_State *L, int idx, void *p) {
  int isint;
  lua_Integer v = lua_tointegerx(L, idx, &isint);
  if (!isint || (v < 0 && !lua_isinteger(L, idx))) return 0;
  *(uint64_t *)p = (uint64_t)v;
  return 1;
}
#define FAST_FLOAT(N, T, CONV)                                 \
  static inline int fast_##N(lua_State *L, int idx, void *p) { \
    int isnum;                                                 \
    lua_Number d = lua_tonumberx(L, idx, &isnum);              \
    if (!isnum) return 0;                                      \
    *(T *)p = CONV(d);                                         \
    return 1;                                                  \
  }
#define AS_FLOAT(d) ((float)(d))
#define AS_DOUBLE(d) ((double)(d))
FAST_FLOAT(f32, float, AS_FLOAT)
FAST_FLOAT(f64, double, AS_DOUBLE)
FAST_FLOAT(f16, uint16_t, luashm_double_to_half)
static inline int fast_bool(lua_State *L, int idx, void *p) {
  if (lua_type(L, idx) != LUA_TBOOLEAN) return 0;
  *(uint8_t *)p = (uint8_t)lua_toboolean(L, idx);
  return 1;
}

#define EACH_DTYPE(P) \
  { P##i8, P##u8, P##i16, P##u16, P##i32, P##u32, P##i64, P##u64, P##f32, P##f64, P##bool, P##f16 }
const luashm_array_pushfn luashm_array_pushers[LUASHM_NDTYPES] = EACH_DTYPE(push_);
const luashm_array_storefn luashm_array_fast[LUASHM_NDTYPES] = EACH_DTYPE(fast_);

/* Reads: the key's type first, so that a method name never pays for a number conversion;
   lua_tointegerx without isint, since a non-integral key gives 0, which is out of range (nil,
   as a table gives). Writes: one call for the key (a non-integral one gives 0 too: the slow
   path tells why), one for the value. */
#define ACCESS(N)                                                                                \
  static int index_##N(lua_State *L) {                                                           \
    int t = lua_type(L, 2);                                                                      \
    if (LUASHM_LIKELY(t == LUA_TNUMBER)) {                                                       \
      const array *a = (const array *)lua_touserdata(L, 1);                                      \
      lua_Unsigned i = (lua_Unsigned)lua_tointegerx(L, 2, NULL) - 1;                             \
      const unsigned char *data = *a->datap;                                                     \
      if (LUASHM_LIKELY(a->ndim == 1 && data != NULL)) {                                         \
        if (LUASHM_UNLIKELY(i >= a->shape[0])) return 0;                                         \
        push_##N(L, data + a->offset + (ptrdiff_t)i * (ptrdiff_t)a->shape[1]);                   \
        return 1;                                                                                \
      }                                                                                          \
    } else if (LUASHM_LIKELY(t == LUA_TSTRING)) { /* a method: upvalue 1 */                      \
      lua_pushvalue(L, 2);                                                                       \
      if (lua_rawget(L, lua_upvalueindex(1)) != LUA_TNIL) return 1;                              \
    }                                                                                            \
    return index_slow(L, t);                                                                     \
  }                                                                                              \
  static int newindex_##N(lua_State *L) {                                                        \
    const array *a = (const array *)lua_touserdata(L, 1);                                        \
    lua_Unsigned i = (lua_Unsigned)lua_tointegerx(L, 2, NULL) - 1;                               \
    unsigned char *data = *a->datap;                                                             \
    if (LUASHM_LIKELY(a->ndim == 1 && data != NULL && i < a->shape[0]) &&                        \
        LUASHM_LIKELY(fast_##N(L, 3, data + a->offset + (ptrdiff_t)i * (ptrdiff_t)a->shape[1]))) \
      return 0;                                                                                  \
    return newindex_slow(L);                                                                     \
  }
ACCESS(i8)
ACCESS(u8)
ACCESS(i16)
ACCESS(u16)
ACCESS(i32)
ACCESS(u32)
ACCESS(i64)
ACCESS(u64)
ACCESS(f32)
ACCESS(f64)
ACCESS(bool)
ACCESS(f16)

static const lua_CFunction indexes[LUASHM_NDTYPES] = EACH_DTYPE(index_);
static const lua_CFunction newindexes[LUASHM_NDTYPES] = EACH_DTYPE(newindex_);

/* An integral key (integer, or float with an integer value, as a table normalises it). */
static int int_key(lua_State *L, int idx, lua_Integer *i) {
  int isint;
  if (lua_type(L, idx) != LUA_TNUMBER) return 0;
  *i = lua_tointegerx(L, idx, &isint);
  return isint;
}

static void push_ints(lua_State *L, int n, const size_t *v) {
  int i;
  lua_createtable(L, n, 0);
  for (i = 0; i < n; i++) {
    lua_pushinteger(L, (lua_Integer)v[i]);
    lua_rawseti(L, -2, i + 1);
  }
}

static void push_strides(lua_State *L, const array *a) {
  int i;
  lua_createtable(L, a->ndim, 0);
  for (i = 0; i < a->ndim; i++) {
    lua_pushinteger(L, (lua_Integer)array_strides(a)[i]);
    lua_rawseti(L, -2, i + 1);
  }
}

static int push_property(lua_State *L, array *a, const char *k) {
  if (strcmp(k, "dtype") == 0) {
    lua_pushstring(L, luashm_dtype_names[a->dtype]);
  } else if (strcmp(k, "shape") == 0) {
    push_ints(L, a->ndim, a->shape);
  } else if (strcmp(k, "strides") == 0) {
    push_strides(L, a);
  } else if (strcmp(k, "ndim") == 0) {
    lua_pushinteger(L, a->ndim);
  } else if (strcmp(k, "size") == 0) {
    lua_pushinteger(L, (lua_Integer)a->count);
  } else if (strcmp(k, "nbytes") == 0) {
    lua_pushinteger(L, (lua_Integer)(a->count * a->itemsize));
  } else if (strcmp(k, "name") == 0 || strcmp(k, "block") == 0) {
    return luashm_object_field(L, 1, k);
  } else if (strcmp(k, "offset") == 0) {
    lua_pushinteger(L, (lua_Integer)a->offset);
  } else if (strcmp(k, "closed") == 0) {
    lua_pushboolean(L, *a->datap == NULL);
  } else if (strcmp(k, "contiguous") == 0) {
    lua_pushboolean(L, luashm_array_contiguous(a));
  } else {
    return 0;
  }
  return 1;
}

/* Properties (a string key that is no method), then N-d rows (t: the key's type). */
static int index_slow(lua_State *L, int t) {
  array *a;
  lua_Integer i;
  if (t == LUA_TSTRING) return push_property(L, (array *)lua_touserdata(L, 1), lua_tostring(L, 2));
  if (t != LUA_TNUMBER) return 0;
  a = (array *)lua_touserdata(L, 1);
  if (*a->datap == NULL) return luashm_array_closed_error(L, a);
  if (!int_key(L, 2, &i) || i < 1 || (lua_Unsigned)i > a->shape[0]) return 0;
  luashm_array_view(L, 1, a->ndim - 1, a->shape + 1, array_strides(a) + 1,
                    a->offset + (size_t)((i - 1) * array_strides(a)[0]));
  return 1;
}

/* Everything but an in-range 1-d element taking the dtype's common value: a key that is no
   integer, a closed view, an index out of range, a value that needs the slow rules or is
   refused; N-d rows take a number (fill), a table or an Array (copy). */
static int newindex_slow(lua_State *L) {
  array *a = (array *)lua_touserdata(L, 1);
  int isint, e;
  lua_Integer i = lua_tointegerx(L, 2, &isint);
  if (!isint) return luashm_error(L, "array %s: fields are read-only", luashm_array_label(L, a));
  if (*a->datap == NULL) return luashm_array_closed_error(L, a);
  if (i < 1 || (lua_Unsigned)i > a->shape[0])
    return luashm_error(L, "array %s: index %I is out of range (1..%I)", luashm_array_label(L, a),
                        i, (lua_Integer)a->shape[0]);
  if (a->ndim == 1) {
    e = luashm_array_store(L, 3, a->dtype, array_data(a) + (i - 1) * array_strides(a)[0]);
    return e == LUASHM_OK ? 0 : luashm_array_flat_error(L, a, e, 3, (size_t)(i - 1));
  }
  luashm_array_view(L, 1, a->ndim - 1, a->shape + 1, array_strides(a) + 1,
                    a->offset + (size_t)((i - 1) * array_strides(a)[0]));
  lua_getfield(L, -1, lua_type(L, 3) == LUA_TNUMBER ? "fill" : "copy");
  lua_insert(L, -2);
  lua_pushvalue(L, 3);
  lua_call(L, 2, 0);
  return 0;
}

static int array_len(lua_State *L) {
  array *a = (array *)lua_touserdata(L, 1);
  lua_pushinteger(L, (lua_Integer)a->shape[0]);
  return 1;
}

/* ---------------------------------------------------------------------------------------
** Lifetime
** ------------------------------------------------------------------------------------- */

/* An array that attached or created its block closes it (and so every view of it); one that
   owns private memory frees it (and so every view); any other view closes itself. */
static int array_close(lua_State *L) {
  array *a = luashm_array_to(L, 1);
  if (!(a->flags & AF_OWNS)) {
    a->datap = &luashm_array_closed;
  } else if (a->head.b != NULL) {
    luashm_block_close(a->head.b);
  } else {
    lua_getiuservalue(L, 1, 1);
    memory_free((array_mem *)lua_touserdata(L, -1));
  }
  return 0;
}

/* ---------------------------------------------------------------------------------------
** Travel: shared arrays by name, private ones by value
** ------------------------------------------------------------------------------------- */

/* What the name alone does not say: nothing for a whole self-describing array; dtype, shape,
   offset and strides for any other view of a block; dtype, shape and the bytes (C order) for
   a private array. */
static int array_view(lua_State *L, int idx) {
  array *a = luashm_array_to(L, idx);
  int t;
  idx = lua_absindex(L, idx);
  if (a->flags & AF_WHOLE) return 0;
  lua_createtable(L, 0, 4);
  t = lua_gettop(L);
  lua_pushstring(L, luashm_dtype_names[a->dtype]);
  lua_setfield(L, t, "dtype");
  push_ints(L, a->ndim, a->shape);
  lua_setfield(L, t, "shape");
  if (a->head.b == NULL) {
    luashm_array_check(L, idx);
    if (!luashm_array_contiguous(a)) { /* its bytes in C order */
      lua_getfield(L, idx, "clone");
      lua_pushvalue(L, idx);
      lua_createtable(L, 0, 1);
      lua_pushboolean(L, 1);
      lua_setfield(L, -2, "private");
      lua_call(L, 2, 1);
      a = luashm_array_to(L, -1);
    }
    lua_pushlstring(L, (const char *)array_data(a), a->count * a->itemsize);
    lua_setfield(L, t, "bytes");
    lua_settop(L, t);
    return 1;
  }
  lua_pushinteger(L, (lua_Integer)a->offset);
  lua_setfield(L, -2, "offset");
  push_strides(L, a);
  lua_setfield(L, -2, "strides");
  return 1;
}

/* The value at the top of the stack (a Block, or nil for an array that travelled by value) as
   an Array, with what array_view gave at view (untrusted: it came from a message). */
static int array_wrap(lua_State *L, int view) {
  size_t shape[LUASHM_MAXDIMS];
  ptrdiff_t strides[LUASHM_MAXDIMS];
  int dt, ndim, k;
  lua_Integer off;
  if (view == 0) return wrap_whole(L);
  luaL_checktype(L, view, LUA_TTABLE);
  lua_getfield(L, view, "dtype");
  dt = luashm_array_checkdtype(L, -1);
  lua_getfield(L, view, "shape");
  ndim = luashm_array_checkshape(L, -1, shape, 0);
  lua_pop(L, 2);
  if (lua_isnil(L, -1)) { /* by value */
    size_t len;
    const char *bytes;
    array *a;
    size_t n = luashm_array_count(L, ndim, shape, luashm_dtype_sizes[dt]);
    lua_getfield(L, view, "bytes");
    bytes = luaL_checklstring(L, -1, &len);
    if (len != n * luashm_dtype_sizes[dt])
      return luashm_error(L, "array: %I bytes for a private %s array of %I elements",
                          (lua_Integer)len, luashm_dtype_names[dt], (lua_Integer)n);
    a = luashm_array_private(L, dt, ndim, shape, 0);
    memcpy(array_data(a), bytes, len);
    lua_replace(L, -3);
    lua_pop(L, 1);
    return 1;
  }
  lua_getfield(L, view, "offset");
  off = luaL_checkinteger(L, -1);
  lua_getfield(L, view, "strides");
  if (!lua_istable(L, -1) || luaL_len(L, -1) != ndim)
    return luashm_error(L, "array: the view's strides do not match its shape");
  for (k = 0; k < ndim; k++) {
    lua_geti(L, -1, k + 1);
    strides[k] = (ptrdiff_t)luaL_checkinteger(L, -1);
    lua_pop(L, 1);
  }
  lua_pop(L, 2);
  checked_view(L, -1, dt, ndim, shape, strides, off, AF_OWNS);
  lua_remove(L, -2);
  return 1;
}

static void array_describe(const unsigned char *p, size_t size, char *out, size_t n) {
  char err[LUASHM_ERRLEN];
  luashm_npy h;
  int i, k;
  if (luashm_npy_parse(p, size, size, &h, err) != 0) {
    snprintf(out, n, "array (malformed header)");
    return;
  }
  k = snprintf(out, n, "array %s (", luashm_dtype_names[h.dtype]);
  for (i = 0; i < h.ndim && k > 0 && (size_t)k + 24 < n; i++)
    k += snprintf(out + k, n - (size_t)k, "%s%zu", i ? ", " : "", h.shape[i]);
  if (k > 0 && (size_t)k < n) snprintf(out + k, n - (size_t)k, "%s)", h.ndim == 1 ? "," : "");
}

int luashm_toarray(lua_State *L, int i, luashm_arrayinfo *info) {
  luashm_object *o = luashm_toobject(L, i);
  array *a = (array *)o;
  if (o == NULL || o->kind != &luashm_kind_array) return 0;
  if (*a->datap == NULL) luashm_array_closed_error(L, a);
  if (!luashm_array_contiguous(a))
    luashm_error(L, "array %s is a strided view, not contiguous: clone() it first",
                 luashm_array_label(L, a));
  info->data = array_data(a);
  info->dtype = a->dtype;
  info->itemsize = a->itemsize;
  info->count = a->count;
  info->ndim = a->ndim;
  info->shape = a->shape;
  return 1;
}

/* ---------------------------------------------------------------------------------------
** The metatables
** ------------------------------------------------------------------------------------- */

static const luaL_Reg array_meth[] = {
    {"close", array_close}, {"unlink", luashm_object_unlink}, {NULL, NULL}};

/* No __gc: views share the Block, whose own __gc unmaps it (private memory has its own). */
static const luaL_Reg array_metameth[] = {{"__len", array_len},
                                          {"__close", array_close},
                                          {"__tostring", luashm_array_tostring},
                                          {NULL, NULL}};

static const luaL_Reg array_funcs[] = {{"array", array_new}, {"load", array_load}, {NULL, NULL}};

/* The kind's metatable (luashm_newkind: __name, the kind tag, the methods) is the template of
   one metatable per dtype: presized, __index inserted first (the fastest slot to find), then
   every other field, then the dtype's own __newindex. */
static void array_open(lua_State *L) {
  int dt, n = 0;
  luashm_newkind(L, &luashm_kind_array, array_meth, array_metameth, NULL);
  luaL_getmetatable(L, LUASHM_ARRAY);
  lua_getfield(L, -1, "__index"); /* the method table */
  luaL_setfuncs(L, luashm_array_view_methods, 0);
  luaL_setfuncs(L, luashm_array_ops_methods, 0);
  luaL_setfuncs(L, luashm_array_reduce_methods, 0);
  /* The method table, copied into one with room to spare: fewer collisions, faster lookups. */
  lua_pushnil(L);
  while (lua_next(L, -2) != 0) {
    n++;
    lua_pop(L, 1);
  }
  lua_createtable(L, 0, 2 * n);
  lua_pushnil(L);
  while (lua_next(L, -3) != 0) {
    lua_pushvalue(L, -2);
    lua_insert(L, -2);
    lua_rawset(L, -4);
  }
  lua_replace(L, -2);
  n = 0;
  lua_pushnil(L);
  while (lua_next(L, -3) != 0) {
    n++;
    lua_pop(L, 1);
  }
  for (dt = 0; dt < LUASHM_NDTYPES; dt++) {
    lua_createtable(L, 0, n + 2);
    lua_pushvalue(L, -2);
    lua_pushcclosure(L, indexes[dt], 1);
    lua_setfield(L, -2, "__index");
    lua_pushnil(L);
    while (lua_next(L, -4) != 0) {
      if (lua_type(L, -2) == LUA_TSTRING && strcmp(lua_tostring(L, -2), "__index") == 0) {
        lua_pop(L, 1);
        continue;
      }
      lua_pushvalue(L, -2);
      lua_insert(L, -2);
      lua_rawset(L, -4);
    }
    lua_pushcfunction(L, newindexes[dt]);
    lua_setfield(L, -2, "__newindex");
    lua_rawsetp(L, LUA_REGISTRYINDEX, &metatables[dt]);
  }
  lua_pop(L, 2);
  luaL_newmetatable(L, MEMORY);
  lua_pushcfunction(L, memory_gc);
  lua_setfield(L, -2, "__gc");
  lua_pop(L, 1);
  luaL_setfuncs(L, array_funcs, 0);
}

const luashm_kind luashm_kind_array = {"array",    LUASHM_ARRAY, "array",        array_probe,
                                       array_wrap, array_view,   array_describe, array_open};
