/*
** The Array: a typed, C-ordered view of a Block's bytes (a NumPy ndarray over shm.buf).
** shm.array, shm.load, the "array" kind of shm.open, and the Array's methods and metatable.
** Element access is the hot path: __index/__newindex take the integer 1-d case first and go
** through per-dtype function tables; reductions and bulk operations are per-dtype C loops.
*/
#include <math.h>
#include <stdlib.h>
#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "kinds.h"
#include "npy.h"

/* a:close closes the block (the array attached or created it), not only the view. */
#define AF_OWNS 1
/* A view closed by a:close while its block stays open. */
#define AF_CLOSED 2
/* The whole self-describing array of its block: it travels by name alone. */
#define AF_WHOLE 4

typedef struct array {
  luashm_object head; /* head.b: the Block, kept alive as user value 1 */
  size_t offset;      /* bytes from the start of the block to the first element */
  size_t count;       /* elements */
  size_t rowlen;      /* elements under one index of the first dimension */
  unsigned char dtype, itemsize, ndim, flags;
  size_t shape[]; /* ndim entries */
} array;

/* Loops over big arrays are memory-bound; -O2 does not vectorize loops of unknown length, and
   the baseline x86-64 target has only 16-byte vectors: the kernels are built at -O3, with an
   AVX2 clone picked at load time where the CPU has it (as NumPy dispatches at run time). */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define KERNEL __attribute__((optimize("O3"), target_clones("avx2", "default")))
#elif defined(__GNUC__) && !defined(__clang__)
#define KERNEL __attribute__((optimize("O3")))
#else
#define KERNEL
#endif

/* ---------------------------------------------------------------------------------------
** Per-dtype operations
** ------------------------------------------------------------------------------------- */

/* Why a value cannot be stored. */
enum { E_OK, E_TYPE, E_NOTINT, E_RANGE };

static int store_slow(lua_State *L, int idx, int dt, void *p);

typedef struct dtype_ops {
  void (*push)(lua_State *L, const void *p);
  int (*store)(lua_State *L, int idx, void *p); /* the value at idx: E_OK or why not */
  int (*store_int)(void *p, lua_Integer v);     /* E_OK or E_RANGE */
  int (*store_num)(void *p, lua_Number d);      /* E_OK, E_NOTINT or E_RANGE */
  lua_Number (*load_num)(const void *p);        /* u64 as unsigned */
  lua_Integer (*load_int)(const void *p);       /* integer dtypes only; u64 as two's complement */
  void (*fill)(void *p, size_t n, const void *x);
  uint64_t (*sumi)(const void *p, size_t n); /* wrapping; integer dtypes only */
  double (*sumd)(const void *p, size_t n);
  int (*minmax)(const void *p, size_t n, int max, void *out); /* 1 when NaN was seen */
  void (*add)(void *p, size_t n, const void *x);
  void (*mul)(void *p, size_t n, const void *x);
  void (*addv)(void *p, const void *q, size_t n);
  void (*mulv)(void *p, const void *q, size_t n);
} dtype_ops;

static int num_to_int(lua_Number d, lua_Integer *v) {
  if (!(d == floor(d))) return E_NOTINT;
  if (d >= -0x1p63 && d < 0x1p63) {
    *v = (lua_Integer)d;
    return E_OK;
  }
  return E_RANGE;
}

/* Eight accumulators: the adds are independent, so they vectorize without reassociating. */
#define SUMD(N, T)                                                                            \
  static KERNEL double sumd_##N(const void *p, size_t n) {                                    \
    const T *q = (const T *)p;                                                                \
    double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};                                                 \
    size_t i = 0;                                                                             \
    int k;                                                                                    \
    for (; i + 8 <= n; i += 8)                                                                \
      for (k = 0; k < 8; k++) acc[k] += (double)q[i + k];                                     \
    for (; i < n; i++) acc[0] += (double)q[i];                                                \
    return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7])); \
  }

#define COMMON(N, T)                                              \
  static lua_Number load_num_##N(const void *p) {                 \
    return (lua_Number) * (const T *)p;                           \
  }                                                               \
  static KERNEL void fill_##N(void *p, size_t n, const void *x) { \
    T v = *(const T *)x, *q = (T *)p;                             \
    size_t i;                                                     \
    for (i = 0; i < n; i++) q[i] = v;                             \
  }                                                               \
  SUMD(N, T)

/* Integer dtypes: arithmetic on the unsigned type of the same width wraps (two's complement). */
#define INT_OPS(N, T, U)                                                      \
  COMMON(N, T)                                                                \
  static lua_Integer load_int_##N(const void *p) {                            \
    return (lua_Integer) * (const T *)p;                                      \
  }                                                                           \
  static void push_##N(lua_State *L, const void *p) {                         \
    lua_pushinteger(L, (lua_Integer) * (const T *)p);                         \
  }                                                                           \
  static KERNEL uint64_t sumi_##N(const void *p, size_t n) {                  \
    const T *q = (const T *)p;                                                \
    uint64_t s = 0;                                                           \
    size_t i;                                                                 \
    for (i = 0; i < n; i++) s += (uint64_t)(int64_t)q[i];                     \
    return s;                                                                 \
  }                                                                           \
  static KERNEL int minmax_##N(const void *p, size_t n, int max, void *out) { \
    const T *q = (const T *)p;                                                \
    T m = q[0];                                                               \
    size_t i;                                                                 \
    if (max)                                                                  \
      for (i = 1; i < n; i++) m = q[i] > m ? q[i] : m;                        \
    else                                                                      \
      for (i = 1; i < n; i++) m = q[i] < m ? q[i] : m;                        \
    *(T *)out = m;                                                            \
    return 0;                                                                 \
  }                                                                           \
  static KERNEL void add_##N(void *p, size_t n, const void *x) {              \
    U v = *(const U *)x, *q = (U *)p;                                         \
    size_t i;                                                                 \
    for (i = 0; i < n; i++) q[i] = (U)(q[i] + v);                             \
  }                                                                           \
  static KERNEL void mul_##N(void *p, size_t n, const void *x) {              \
    U v = *(const U *)x, *q = (U *)p;                                         \
    size_t i;                                                                 \
    for (i = 0; i < n; i++) q[i] = (U)((uint64_t)q[i] * v);                   \
  }                                                                           \
  static KERNEL void addv_##N(void *p, const void *r, size_t n) {             \
    U *q = (U *)p;                                                            \
    const U *s = (const U *)r;                                                \
    size_t i;                                                                 \
    for (i = 0; i < n; i++) q[i] = (U)(q[i] + s[i]);                          \
  }                                                                           \
  static KERNEL void mulv_##N(void *p, const void *r, size_t n) {             \
    U *q = (U *)p;                                                            \
    const U *s = (const U *)r;                                                \
    size_t i;                                                                 \
    for (i = 0; i < n; i++) q[i] = (U)((uint64_t)q[i] * s[i]);                \
  }

/* Narrow integers: range-checked stores. The fast path is one API call: integers, and floats
   with an integer value; store_slow says why anything else fails. */
#define NARROW_OPS(N, T, U, LO, HI)                       \
  INT_OPS(N, T, U)                                        \
  static int store_##N(lua_State *L, int idx, void *p) {  \
    int isint;                                            \
    lua_Integer v = lua_tointegerx(L, idx, &isint);       \
    if (LUASHM_LIKELY(isint && v >= (LO) && v <= (HI))) { \
      *(T *)p = (T)v;                                     \
      return E_OK;                                        \
    }                                                     \
    return store_slow(L, idx, LUASHM_##N, p);             \
  }                                                       \
  static int store_int_##N(void *p, lua_Integer v) {      \
    if (v < (LO) || v > (HI)) return E_RANGE;             \
    *(T *)p = (T)v;                                       \
    return E_OK;                                          \
  }                                                       \
  static int store_num_##N(void *p, lua_Number d) {       \
    lua_Integer v;                                        \
    int e = num_to_int(d, &v);                            \
    return e != E_OK ? e : store_int_##N(p, v);           \
  }

#define LUASHM_i8 LUASHM_I8
#define LUASHM_u8 LUASHM_U8
#define LUASHM_i16 LUASHM_I16
#define LUASHM_u16 LUASHM_U16
#define LUASHM_i32 LUASHM_I32
#define LUASHM_u32 LUASHM_U32
NARROW_OPS(i8, int8_t, uint8_t, INT8_MIN, INT8_MAX)
NARROW_OPS(u8, uint8_t, uint8_t, 0, UINT8_MAX)
NARROW_OPS(i16, int16_t, uint16_t, INT16_MIN, INT16_MAX)
NARROW_OPS(u16, uint16_t, uint16_t, 0, UINT16_MAX)
NARROW_OPS(i32, int32_t, uint32_t, INT32_MIN, INT32_MAX)
NARROW_OPS(u32, uint32_t, uint32_t, 0, UINT32_MAX)
INT_OPS(i64, int64_t, uint64_t)
INT_OPS(u64, uint64_t, uint64_t)

static int store_i64(lua_State *L, int idx, void *p) {
  int isint;
  lua_Integer v = lua_tointegerx(L, idx, &isint);
  if (LUASHM_LIKELY(isint)) {
    *(int64_t *)p = (int64_t)v;
    return E_OK;
  }
  return store_slow(L, idx, LUASHM_I64, p);
}

static int store_u64(lua_State *L, int idx, void *p) {
  int isint;
  lua_Integer v = lua_tointegerx(L, idx, &isint);
  /* A negative float is out of range, a negative integer is two's complement. */
  if (LUASHM_LIKELY(isint && (v >= 0 || lua_isinteger(L, idx)))) {
    *(uint64_t *)p = (uint64_t)v;
    return E_OK;
  }
  return store_slow(L, idx, LUASHM_U64, p);
}

static int store_int_i64(void *p, lua_Integer v) {
  *(int64_t *)p = (int64_t)v;
  return E_OK;
}

static int store_num_i64(void *p, lua_Number d) {
  lua_Integer v;
  int e = num_to_int(d, &v);
  if (e == E_OK) *(int64_t *)p = (int64_t)v;
  return e;
}

/* u64 takes any Lua integer as two's complement, and floats in [0, 2^64). */
static int store_int_u64(void *p, lua_Integer v) {
  *(uint64_t *)p = (uint64_t)v;
  return E_OK;
}

static int store_num_u64(void *p, lua_Number d) {
  if (!(d == floor(d))) return E_NOTINT;
  if (!(d >= 0 && d < 0x1p64)) return E_RANGE;
  *(uint64_t *)p = (uint64_t)d;
  return E_OK;
}

#define FLOAT_OPS(N, T)                                                       \
  COMMON(N, T)                                                                \
  static void push_##N(lua_State *L, const void *p) {                         \
    lua_pushnumber(L, (lua_Number) * (const T *)p);                           \
  }                                                                           \
  static int store_##N(lua_State *L, int idx, void *p) {                      \
    int isnum;                                                                \
    lua_Number d = lua_tonumberx(L, idx, &isnum);                             \
    if (LUASHM_UNLIKELY(!isnum)) return E_TYPE;                               \
    *(T *)p = (T)d;                                                           \
    return E_OK;                                                              \
  }                                                                           \
  static int store_int_##N(void *p, lua_Integer v) {                          \
    *(T *)p = (T)v;                                                           \
    return E_OK;                                                              \
  }                                                                           \
  static int store_num_##N(void *p, lua_Number d) {                           \
    *(T *)p = (T)d;                                                           \
    return E_OK;                                                              \
  }                                                                           \
  /* NaN propagates, as in NumPy. */                                          \
  static KERNEL int minmax_##N(const void *p, size_t n, int max, void *out) { \
    const T *q = (const T *)p;                                                \
    T m = q[0];                                                               \
    int nan = 0;                                                              \
    size_t i;                                                                 \
    if (max)                                                                  \
      for (i = 0; i < n; i++) {                                               \
        nan |= q[i] != q[i];                                                  \
        m = q[i] > m ? q[i] : m;                                              \
      }                                                                       \
    else                                                                      \
      for (i = 0; i < n; i++) {                                               \
        nan |= q[i] != q[i];                                                  \
        m = q[i] < m ? q[i] : m;                                              \
      }                                                                       \
    *(T *)out = m;                                                            \
    return nan;                                                               \
  }                                                                           \
  static KERNEL void add_##N(void *p, size_t n, const void *x) {              \
    T v = *(const T *)x, *q = (T *)p;                                         \
    size_t i;                                                                 \
    for (i = 0; i < n; i++) q[i] += v;                                        \
  }                                                                           \
  static KERNEL void mul_##N(void *p, size_t n, const void *x) {              \
    T v = *(const T *)x, *q = (T *)p;                                         \
    size_t i;                                                                 \
    for (i = 0; i < n; i++) q[i] *= v;                                        \
  }                                                                           \
  static KERNEL void addv_##N(void *p, const void *r, size_t n) {             \
    T *q = (T *)p;                                                            \
    const T *s = (const T *)r;                                                \
    size_t i;                                                                 \
    for (i = 0; i < n; i++) q[i] += s[i];                                     \
  }                                                                           \
  static KERNEL void mulv_##N(void *p, const void *r, size_t n) {             \
    T *q = (T *)p;                                                            \
    const T *s = (const T *)r;                                                \
    size_t i;                                                                 \
    for (i = 0; i < n; i++) q[i] *= s[i];                                     \
  }

FLOAT_OPS(f32, float)
FLOAT_OPS(f64, double)

#define OPS(N, LOADI, SUMI)                                                                 \
  {                                                                                         \
    push_##N, store_##N, store_int_##N, store_num_##N, load_num_##N, LOADI, fill_##N, SUMI, \
        sumd_##N, minmax_##N, add_##N, mul_##N, addv_##N, mulv_##N                          \
  }
#define IOPS(N) OPS(N, load_int_##N, sumi_##N)

static const dtype_ops ops[LUASHM_NDTYPES] = {IOPS(i8),
                                              IOPS(u8),
                                              IOPS(i16),
                                              IOPS(u16),
                                              IOPS(i32),
                                              IOPS(u32),
                                              IOPS(i64),
                                              IOPS(u64),
                                              OPS(f32, NULL, NULL),
                                              OPS(f64, NULL, NULL)};

static const char *const ranges[LUASHM_NDTYPES] = {
    "-128..127", "0..255",        "-32768..32767", "0..65535",   "-2^31..2^31-1",
    "0..2^32-1", "-2^63..2^63-1", "0..2^64-1",     "any number", "any number"};

#define IS_FLOAT(dt) ((dt) >= LUASHM_F32)

/* Stores the Lua value at idx into p by the value rules of dtype dt: E_OK or why not. Numbers,
   and strings that Lua's arithmetic would convert. */
static int store_value(lua_State *L, int idx, int dt, void *p) {
  return ops[dt].store(L, idx, p);
}

/* An integer dtype's value that is not an in-range integer: u64's floats in [2^63, 2^64), or
   the reason it fails. */
static int store_slow(lua_State *L, int idx, int dt, void *p) {
  int isnum;
  lua_Number d;
  if (lua_isinteger(L, idx)) return ops[dt].store_int(p, lua_tointeger(L, idx));
  d = lua_tonumberx(L, idx, &isnum);
  if (!isnum) return E_TYPE;
  return ops[dt].store_num(p, d);
}

/* ---------------------------------------------------------------------------------------
** The userdata, its gate and its errors
** ------------------------------------------------------------------------------------- */

static unsigned char *base(const array *a) {
  return a->head.b->data + a->offset;
}

static int is_closed(const array *a) {
  return a->head.b->data == NULL || (a->flags & AF_CLOSED);
}

static int closed_error(lua_State *L, const array *a) {
  if (a->flags & AF_CLOSED) return luashm_error(L, "array '%s' is closed", a->head.b->name);
  return luashm_closed(L, a->head.b, "array");
}

/* The type gate of the methods, cheaper than luaL_checkudata's registry lookup (a:get in a
   loop is measured against an empty C method). */
static inline __attribute__((always_inline)) array *toarray(lua_State *L, int i) {
  return (array *)luashm_tokind(L, i, &luashm_kind_array);
}

static inline __attribute__((always_inline)) array *checkarray(lua_State *L, int i) {
  array *a = toarray(L, i);
  if (LUASHM_UNLIKELY(is_closed(a))) closed_error(L, a);
  return a;
}

/* Pushes "(3, 4)" (or "(3,)"). */
static const char *push_shape(lua_State *L, int ndim, const size_t *shape) {
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

/* Raises the error for the value at idx that could not be stored; where says where ("at
   index 3", "for fill"). */
static int value_error(lua_State *L, const array *a, int code, int idx, const char *where) {
  const char *name = a->head.b->name, *dt = luashm_dtype_names[a->dtype], *v;
  if (code == E_TYPE)
    return luashm_error(L, "array '%s': value %s is a %s, not a number (dtype %s)", name, where,
                        luaL_typename(L, idx), dt);
  lua_pushvalue(L, idx);
  v = luaL_tolstring(L, -1, NULL);
  if (code == E_NOTINT)
    return luashm_error(L, "array '%s': value %s %s is not an integer (dtype %s)", name, v, where,
                        dt);
  return luashm_error(L, "array '%s': value %s %s is out of range for %s (%s)", name, v, where, dt,
                      ranges[a->dtype]);
}

static int flat_value_error(lua_State *L, const array *a, int code, int idx, lua_Integer i) {
  idx = lua_absindex(L, idx);
  lua_pushfstring(L, "at index %I", i);
  return value_error(L, a, code, idx, lua_tostring(L, -1));
}

/* Pushes a new Array over the Block at blkidx. The caller has checked that it fits. */
static array *push_array(lua_State *L, int blkidx, int dtype, int ndim, const size_t *shape,
                         size_t offset, int flags) {
  array *a;
  int i;
  blkidx = lua_absindex(L, blkidx);
  a = (array *)lua_newuserdatauv(L, sizeof(array) + (size_t)ndim * sizeof(size_t), 1);
  a->head.kind = &luashm_kind_array;
  a->head.b = luashm_toblock(L, blkidx);
  a->offset = offset;
  a->dtype = (unsigned char)dtype;
  a->itemsize = luashm_dtype_sizes[dtype];
  a->ndim = (unsigned char)ndim;
  a->flags = (unsigned char)flags;
  a->rowlen = 1;
  for (i = 0; i < ndim; i++) {
    a->shape[i] = shape[i];
    if (i > 0) a->rowlen *= shape[i];
  }
  a->count = a->rowlen * shape[0];
  lua_pushvalue(L, blkidx);
  lua_setiuservalue(L, -2, 1);
  luaL_setmetatable(L, LUASHM_ARRAY);
  return a;
}

/* Pushes the view a[i] (0-based i) of an N-d array. */
static void push_row(lua_State *L, int aidx, const array *a, size_t i) {
  lua_getiuservalue(L, aidx, 1);
  push_array(L, -1, a->dtype, a->ndim - 1, a->shape + 1, a->offset + i * a->rowlen * a->itemsize,
             0);
  lua_remove(L, -2);
}

/* ---------------------------------------------------------------------------------------
** Arguments: dtype, shape, values
** ------------------------------------------------------------------------------------- */

static int check_dtype(lua_State *L, int idx) {
  const char *name = luaL_checkstring(L, idx);
  int dt = luashm_dtype_lookup(name);
  if (dt < 0)
    luashm_error(L, "array: unknown dtype '%s' (i8 u8 i16 u16 i32 u32 i64 u64 f32 f64)", name);
  return dt;
}

static size_t check_dim(lua_State *L, int idx, int k) {
  int isint;
  lua_Integer n = lua_tointegerx(L, idx, &isint);
  if (!isint || lua_type(L, idx) != LUA_TNUMBER || n < 0)
    luashm_error(L, "array: shape[%d] must be a non-negative integer", k);
  return (size_t)n;
}

/* Reads a shape (an integer or a table of them) into shape[]; returns ndim. A -1 entry is
   allowed when wildcard is set (reshape) and comes back as SIZE_MAX. */
static int check_shape(lua_State *L, int idx, size_t *shape, int wildcard) {
  int ndim, k;
  if (lua_type(L, idx) == LUA_TNUMBER) {
    shape[0] = wildcard && lua_tointeger(L, idx) == -1 ? SIZE_MAX : check_dim(L, idx, 1);
    return 1;
  }
  if (!lua_istable(L, idx)) luaL_typeerror(L, idx, "integer or table of integers");
  ndim = (int)luaL_len(L, idx);
  if (ndim < 1 || ndim > LUASHM_MAXDIMS)
    luashm_error(L, "array: shape must have 1 to %d dimensions, not %d", LUASHM_MAXDIMS, ndim);
  for (k = 0; k < ndim; k++) {
    lua_geti(L, idx, k + 1);
    shape[k] = wildcard && lua_isinteger(L, -1) && lua_tointeger(L, -1) == -1
                   ? SIZE_MAX
                   : check_dim(L, -1, k + 1);
    lua_pop(L, 1);
  }
  return ndim;
}

/* Elements of a shape, or raises when the byte count overflows. */
static size_t shape_count(lua_State *L, int ndim, const size_t *shape, int itemsize) {
  size_t n = 1;
  int k;
  for (k = 0; k < ndim; k++)
    if (shape[k] == 0) return 0;
  for (k = 0; k < ndim; k++) {
    if (n > (size_t)PTRDIFF_MAX / shape[k]) luashm_error(L, "array: shape is too large");
    n *= shape[k];
  }
  if (n > (size_t)PTRDIFF_MAX / (size_t)itemsize) luashm_error(L, "array: shape is too large");
  return n;
}

/* Copies the nested table at idx (dimension d) into p. */
static void copy_nested(lua_State *L, const array *a, int idx, int d, unsigned char *p,
                        size_t *flat) {
  size_t n = a->shape[d], k;
  if (lua_type(L, idx) != LUA_TTABLE)
    luashm_error(L, "array '%s': copy: expected a table at depth %d, got a %s", a->head.b->name,
                 d + 1, luaL_typename(L, idx));
  if (lua_rawlen(L, idx) != n)
    luashm_error(L, "array '%s': copy: a table at depth %d has %I items, the shape needs %I",
                 a->head.b->name, d + 1, (lua_Integer)lua_rawlen(L, idx), (lua_Integer)n);
  luaL_checkstack(L, 4, "array nested too deep");
  for (k = 0; k < n; k++) {
    lua_rawgeti(L, idx, (lua_Integer)k + 1);
    if (d + 1 < a->ndim) {
      size_t stride = a->itemsize;
      int j;
      for (j = d + 1; j < a->ndim; j++) stride *= a->shape[j];
      copy_nested(L, a, lua_gettop(L), d + 1, p + k * stride, flat);
    } else {
      int e = store_value(L, -1, a->dtype, p + k * a->itemsize);
      if (e != E_OK) flat_value_error(L, a, e, lua_gettop(L), (lua_Integer)*flat + 1);
      (*flat)++;
    }
    lua_pop(L, 1);
  }
}

/* Copies a Lua table, flat or nested, into a (open, checked by the caller). Only raw reads:
   no Lua code runs, so the block cannot close underneath. */
static void copy_table(lua_State *L, const array *a, int idx) {
  unsigned char *p = base(a);
  size_t n = lua_rawlen(L, idx), i = 0;
  int nested = a->ndim > 1 && lua_rawgeti(L, idx, 1) == LUA_TTABLE;
  if (a->ndim > 1) lua_pop(L, 1);
  if (nested || (a->ndim > 1 && n == a->shape[0] && n != a->count)) {
    copy_nested(L, a, idx, 0, p, &i);
    return;
  }
  if (n != a->count)
    luashm_error(L, "array '%s': copy: the table has %I values, the array %I", a->head.b->name,
                 (lua_Integer)n, (lua_Integer)a->count);
  for (i = 0; i < n; i++) {
    int e;
    lua_rawgeti(L, idx, (lua_Integer)i + 1);
    e = store_value(L, -1, a->dtype, p + i * a->itemsize);
    if (e != E_OK) flat_value_error(L, a, e, lua_gettop(L), (lua_Integer)i + 1);
    lua_pop(L, 1);
  }
}

/* ---------------------------------------------------------------------------------------
** Constructors
** ------------------------------------------------------------------------------------- */

/* A view of (dtype, shape) at offset of the Block at blkidx, checked to fit and be aligned. */
static array *make_view(lua_State *L, int blkidx, int dtype, int ndim, const size_t *shape,
                        lua_Integer offset, int flags) {
  luashm_block *b = luashm_checkblock(L, blkidx);
  size_t isz = luashm_dtype_sizes[dtype], n = shape_count(L, ndim, shape, (int)isz);
  if (offset < 0) luashm_error(L, "array: offset %I is negative", offset);
  if ((size_t)offset % isz != 0)
    luashm_error(L, "array: offset %I is misaligned for %s (a multiple of %d)", offset,
                 luashm_dtype_names[dtype], (int)isz);
  if ((lua_Unsigned)offset > b->size || n * isz > b->size - (size_t)offset)
    luashm_error(L, "array: %I bytes at offset %I do not fit in block '%s' (size %I)",
                 (lua_Integer)(n * isz), offset, b->name, (lua_Integer)b->size);
  return push_array(L, blkidx, dtype, ndim, shape, (size_t)offset, flags);
}

/* Runs on a protected call: copy opts.values (arg 2) into the array (arg 1). */
static int fill_values(lua_State *L) {
  array *a = (array *)lua_touserdata(L, 1);
  luaL_checktype(L, 2, LUA_TTABLE);
  copy_table(L, a, 2);
  return 0;
}

/* Calls method `m` of the Block at idx, ignoring errors (cleanup on a failure path). */
static void block_call(lua_State *L, int idx, const char *m) {
  idx = lua_absindex(L, idx);
  lua_getfield(L, idx, m);
  lua_pushvalue(L, idx);
  if (lua_pcall(L, 1, 0, 0) != LUA_OK) lua_pop(L, 1);
}

/* With the new Array on top and its new Block below it: copies opts.values (at optidx, if
   any); on failure the block is unlinked and closed before the error goes on. */
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
      block_call(L, -4, "unlink");
      block_call(L, -4, "close");
    }
    lua_error(L);
  }
  lua_pop(L, 1);
}

static const char *const array_options[] = {LUASHM_BLOCK_OPTIONS, "values", "block", "offset",
                                            NULL};

/* shm.array(dtype, shape [, opts]) */
static int array_new(lua_State *L) {
  size_t shape[LUASHM_MAXDIMS], n, hl;
  int dtype = check_dtype(L, 1), ndim = check_shape(L, 2, shape, 0), isz;
  luashm_checkoptions(L, 3, "array", array_options);
  isz = luashm_dtype_sizes[dtype];
  if (lua_istable(L, 3) && lua_getfield(L, 3, "block") != LUA_TNIL) {
    lua_Integer off = 0;
    if (lua_getfield(L, 3, "offset") != LUA_TNIL) {
      int isint;
      off = lua_tointegerx(L, -1, &isint);
      if (!isint) luashm_error(L, "array: opts.offset must be an integer");
    }
    lua_pop(L, 1);
    if (luaL_testudata(L, -1, LUASHM_BLOCK) == NULL)
      return luashm_error(L, "array: opts.block must be a Block, not a %s", luaL_typename(L, -1));
    make_view(L, -1, dtype, ndim, shape, off, 0);
    init_values(L, 3, 0);
    return 1;
  }
  lua_settop(L, 3);
  n = shape_count(L, ndim, shape, isz);
  hl = luashm_npy_header_len(dtype, ndim, shape);
  luashm_block *b = luashm_block_new(L, hl + n * (size_t)isz, lua_istable(L, 3) ? 3 : 0);
  luashm_npy_write(b->data, dtype, ndim, shape);
  push_array(L, -1, dtype, ndim, shape, hl, AF_OWNS | AF_WHOLE);
  init_values(L, lua_istable(L, 3) ? 3 : 0, 1);
  return 1;
}

static int array_probe(const unsigned char *p, size_t size) {
  return luashm_npy_probe(p, size);
}

/* The whole self-describing array of the Block at the top of the stack (which it replaces). */
static int array_wrap_whole(lua_State *L) {
  char err[LUASHM_ERRLEN];
  luashm_npy h;
  luashm_block *b = luashm_checkblock(L, -1);
  if (luashm_npy_parse(b->data, b->size, b->size, &h, err) != 0)
    return luashm_error(L, "open '%s': %s", b->name, err);
  if (h.ndim == 0) return luashm_error(L, "open '%s': 0-d arrays are not supported", b->name);
  if (h.data_offset % luashm_dtype_sizes[h.dtype] != 0)
    return luashm_error(L, "open '%s': data at offset %I is misaligned for %s", b->name,
                        (lua_Integer)h.data_offset, luashm_dtype_names[h.dtype]);
  push_array(L, -1, h.dtype, h.ndim, h.shape, h.data_offset, AF_OWNS | AF_WHOLE);
  lua_remove(L, -2);
  return 1;
}

static const char *const load_options[] = {LUASHM_BLOCK_OPTIONS, NULL};

/* shm.load(path [, opts]): a new self-describing block holding the file's array. */
static int array_load(lua_State *L) {
  char err[LUASHM_ERRLEN];
  const char *path = luaL_checkstring(L, 1);
  luashm_npy h;
  size_t hl, n;
  luashm_block *b;
  luashm_checkoptions(L, 2, "load", load_options);
  if (luashm_npy_read_header(path, &h, err) != 0) return luashm_error(L, "%s", err);
  if (h.ndim == 0) return luashm_error(L, "load '%s': 0-d arrays are not supported", path);
  n = h.count * luashm_dtype_sizes[h.dtype];
  hl = luashm_npy_header_len(h.dtype, h.ndim, h.shape);
  b = luashm_block_new(L, hl + n, lua_istable(L, 2) ? 2 : 0);
  luashm_npy_write(b->data, h.dtype, h.ndim, h.shape);
  if (luashm_npy_read_data(path, &h, b->data + hl, n, err) != 0) {
    block_call(L, -1, "unlink");
    block_call(L, -1, "close");
    return luashm_error(L, "%s", err);
  }
  push_array(L, -1, h.dtype, h.ndim, h.shape, hl, AF_OWNS | AF_WHOLE);
  return 1;
}

/* ---------------------------------------------------------------------------------------
** Element access: the hot path
** ------------------------------------------------------------------------------------- */

static int index_slow(lua_State *L, int t);

/* a[i] for integer i on a 1-d array first: out of range reads give nil, like a table. */
static int array_index(lua_State *L) {
  /* The type first: a method name must not pay for a string-to-number attempt. */
  int t = lua_type(L, 2);
  if (LUASHM_LIKELY(t == LUA_TNUMBER)) {
    array *a = (array *)lua_touserdata(L, 1);
    int isint;
    lua_Unsigned i = (lua_Unsigned)lua_tointegerx(L, 2, &isint) - 1;
    unsigned char *data = a->head.b->data;
    if (LUASHM_LIKELY(isint && a->ndim == 1)) {
      if (LUASHM_UNLIKELY(data == NULL || (a->flags & AF_CLOSED))) return closed_error(L, a);
      if (LUASHM_UNLIKELY(i >= a->shape[0])) return 0;
      ops[a->dtype].push(L, data + a->offset + i * a->itemsize);
      return 1;
    }
  }
  return index_slow(L, t);
}

static int newindex_slow(lua_State *L, array *a);

/* One API call for the key (an integral float or numeric string key is taken as the integer;
   anything else is an error anyway), one for the value. */
static int array_newindex(lua_State *L) {
  array *a = (array *)lua_touserdata(L, 1);
  int isint;
  lua_Unsigned i = (lua_Unsigned)lua_tointegerx(L, 2, &isint) - 1;
  if (LUASHM_LIKELY(isint && a->ndim == 1)) {
    unsigned char *data = a->head.b->data;
    int e;
    if (LUASHM_UNLIKELY(data == NULL || (a->flags & AF_CLOSED))) return closed_error(L, a);
    if (LUASHM_UNLIKELY(i >= a->shape[0]))
      return luashm_error(L, "array '%s': index %I is out of range (1..%I)", a->head.b->name,
                          (lua_Integer)(i + 1), (lua_Integer)a->shape[0]);
    e = ops[a->dtype].store(L, 3, data + a->offset + i * a->itemsize);
    if (LUASHM_UNLIKELY(e != E_OK)) return flat_value_error(L, a, e, 3, (lua_Integer)i + 1);
    return 0;
  }
  return newindex_slow(L, a);
}

/* An integral key (integer, or float with an integer value, as a table normalises it). */
static int int_key(lua_State *L, int idx, lua_Integer *i) {
  int isint;
  if (lua_type(L, idx) != LUA_TNUMBER) return 0;
  *i = lua_tointegerx(L, idx, &isint);
  return isint;
}

static int push_property(lua_State *L, array *a, const char *k) {
  int i;
  if (strcmp(k, "dtype") == 0) {
    lua_pushstring(L, luashm_dtype_names[a->dtype]);
  } else if (strcmp(k, "shape") == 0) {
    lua_createtable(L, a->ndim, 0);
    for (i = 0; i < a->ndim; i++) {
      lua_pushinteger(L, (lua_Integer)a->shape[i]);
      lua_rawseti(L, -2, i + 1);
    }
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
    lua_pushboolean(L, is_closed(a));
  } else {
    return 0;
  }
  return 1;
}

/* Methods (upvalue 1), then properties, then N-d rows and integral float keys. */
static int index_slow(lua_State *L, int t) {
  array *a;
  lua_Integer i;
  if (t != LUA_TNUMBER) {
    if (t != LUA_TSTRING) return 0;
    lua_pushvalue(L, 2);
    if (lua_rawget(L, lua_upvalueindex(1)) != LUA_TNIL) return 1;
    return push_property(L, (array *)lua_touserdata(L, 1), lua_tostring(L, 2));
  }
  a = (array *)lua_touserdata(L, 1);
  if (!int_key(L, 2, &i)) return 0;
  if (is_closed(a)) return closed_error(L, a);
  if (i < 1 || (lua_Unsigned)i > a->shape[0]) return 0;
  if (a->ndim == 1) {
    ops[a->dtype].push(L, base(a) + (size_t)(i - 1) * a->itemsize);
    return 1;
  }
  push_row(L, 1, a, (size_t)(i - 1));
  return 1;
}

static int array_fill(lua_State *L);
static int array_copy(lua_State *L);

/* Integral float keys; N-d rows take a number (fill), a table or an Array (copy). */
static int newindex_slow(lua_State *L, array *a) {
  lua_Integer i;
  if (!int_key(L, 2, &i))
    return luashm_error(L, "array '%s': fields are read-only", a->head.b->name);
  if (is_closed(a)) return closed_error(L, a);
  if (i < 1 || (lua_Unsigned)i > a->shape[0])
    return luashm_error(L, "array '%s': index %I is out of range (1..%I)", a->head.b->name, i,
                        (lua_Integer)a->shape[0]);
  if (a->ndim == 1) {
    int e = store_value(L, 3, a->dtype, base(a) + (size_t)(i - 1) * a->itemsize);
    return e == E_OK ? 0 : flat_value_error(L, a, e, 3, i);
  }
  lua_pushcfunction(L, lua_type(L, 3) == LUA_TNUMBER ? array_fill : array_copy);
  push_row(L, 1, a, (size_t)(i - 1));
  lua_pushvalue(L, 3);
  lua_call(L, 2, 0);
  return 0;
}

/* The flat 0-based position of the full index at args first..first+ndim-1, or raises. */
static size_t full_index(lua_State *L, const array *a, int first, int nargs, const char *op) {
  size_t flat = 0;
  int k, bad = 0;
  if (nargs != a->ndim)
    luashm_error(L, "array '%s': %s needs %d indexes, got %d", a->head.b->name, op, a->ndim, nargs);
  for (k = 0; k < a->ndim; k++) {
    lua_Integer i = luaL_checkinteger(L, first + k);
    if (i < 1 || (lua_Unsigned)i > a->shape[k]) bad = 1;
    flat = flat * a->shape[k] + (size_t)(i - 1);
  }
  if (bad) {
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    for (k = 0; k < a->ndim; k++) {
      lua_pushfstring(L, k ? ", %I" : "(%I", lua_tointeger(L, first + k));
      luaL_addvalue(&b);
    }
    luaL_addchar(&b, ')');
    luaL_pushresult(&b);
    push_shape(L, a->ndim, a->shape);
    luashm_error(L, "array '%s': %s: index %s is out of range for shape %s", a->head.b->name, op,
                 lua_tostring(L, -2), lua_tostring(L, -1));
  }
  return flat;
}

static int array_get(lua_State *L) {
  array *a = checkarray(L, 1);
  int top = lua_gettop(L), isint;
  lua_Unsigned i = (lua_Unsigned)lua_tointegerx(L, 2, &isint) - 1;
  if (LUASHM_LIKELY(top == 2 && a->ndim == 1 && isint)) {
    if (LUASHM_LIKELY(i < a->shape[0])) {
      ops[a->dtype].push(L, base(a) + i * a->itemsize);
      return 1;
    }
  }
  ops[a->dtype].push(L, base(a) + full_index(L, a, 2, top - 1, "get") * a->itemsize);
  return 1;
}

static int array_set(lua_State *L) {
  array *a = checkarray(L, 1);
  int top = lua_gettop(L), e, isint;
  size_t flat;
  lua_Unsigned i = (lua_Unsigned)lua_tointegerx(L, 2, &isint) - 1;
  if (LUASHM_LIKELY(top == 3 && a->ndim == 1 && isint)) {
    if (LUASHM_LIKELY(i < a->shape[0])) {
      e = ops[a->dtype].store(L, 3, base(a) + i * a->itemsize);
      if (LUASHM_LIKELY(e == E_OK)) return 0;
      return flat_value_error(L, a, e, 3, (lua_Integer)i + 1);
    }
  }
  if (top < 2) luaL_checkany(L, 2);
  flat = full_index(L, a, 2, top - 2, "set");
  e = store_value(L, top, a->dtype, base(a) + flat * a->itemsize);
  if (e != E_OK) {
    int k;
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    for (k = 2; k < top; k++) {
      lua_pushfstring(L, k > 2 ? ", %I" : "at index (%I", lua_tointeger(L, k));
      luaL_addvalue(&b);
    }
    luaL_addchar(&b, ')');
    luaL_pushresult(&b);
    return value_error(L, a, e, top, lua_tostring(L, -1));
  }
  return 0;
}

static int array_len(lua_State *L) {
  array *a = (array *)lua_touserdata(L, 1);
  lua_pushinteger(L, (lua_Integer)a->shape[0]);
  return 1;
}

/* ---------------------------------------------------------------------------------------
** Views
** ------------------------------------------------------------------------------------- */

/* a:slice(i [, j]): rows i..j of the first dimension, clamped like string.sub. */
static int array_slice(lua_State *L) {
  array *a = checkarray(L, 1);
  lua_Integer n = (lua_Integer)a->shape[0];
  lua_Integer i = luaL_checkinteger(L, 2), j = luaL_optinteger(L, 3, -1);
  size_t shape[LUASHM_MAXDIMS];
  if (i < 0)
    i = n + i + 1 > 1 ? n + i + 1 : 1;
  else if (i == 0)
    i = 1;
  if (j < 0)
    j = n + j + 1;
  else if (j > n)
    j = n;
  if (i > n + 1) i = n + 1;
  memcpy(shape, a->shape, a->ndim * sizeof(size_t));
  shape[0] = j >= i ? (size_t)(j - i + 1) : 0;
  lua_getiuservalue(L, 1, 1);
  push_array(L, -1, a->dtype, a->ndim, shape, a->offset + (size_t)(i - 1) * a->rowlen * a->itemsize,
             0);
  return 1;
}

/* a:reshape(shape): one dimension may be -1 (inferred), as in NumPy. */
static int array_reshape(lua_State *L) {
  array *a = checkarray(L, 1);
  size_t shape[LUASHM_MAXDIMS], known = 1;
  int ndim = check_shape(L, 2, shape, 1), k, wild = -1, ok = 1;
  for (k = 0; k < ndim; k++) {
    if (shape[k] == SIZE_MAX) {
      if (wild >= 0) luashm_error(L, "array '%s': reshape: more than one -1", a->head.b->name);
      wild = k;
    } else if (shape[k] != 0 && known > a->count / shape[k]) {
      ok = 0; /* the product already exceeds the element count */
    } else {
      known *= shape[k];
    }
  }
  if (wild >= 0)
    ok = ok && known != 0 && a->count % known == 0;
  else
    ok = ok && known == a->count;
  if (!ok) {
    push_shape(L, ndim, shape); /* -1 prints as -1 */
    return luashm_error(L, "array '%s': reshape: cannot reshape %I elements into shape %s",
                        a->head.b->name, (lua_Integer)a->count, lua_tostring(L, -1));
  }
  if (wild >= 0) shape[wild] = a->count / known;
  lua_getiuservalue(L, 1, 1);
  push_array(L, -1, a->dtype, ndim, shape, a->offset, 0);
  return 1;
}

/* ---------------------------------------------------------------------------------------
** Bulk operations
** ------------------------------------------------------------------------------------- */

/* The scalar at idx converted for a's dtype into out (8 bytes): the value rules for fill and
   cas; for add/mul (wrap set) any integer, taken modulo 2^bits. */
static void check_scalar(lua_State *L, const array *a, int idx, void *out, int wrap,
                         const char *op) {
  int e = E_OK;
  if (lua_type(L, idx) != LUA_TNUMBER) luaL_typeerror(L, idx, "number");
  if (wrap && !IS_FLOAT(a->dtype)) {
    lua_Integer v = 0;
    if (lua_isinteger(L, idx)) {
      v = lua_tointeger(L, idx);
    } else {
      lua_Number d = lua_tonumber(L, idx);
      e = num_to_int(d, &v);
      if (e == E_RANGE && a->dtype == LUASHM_U64) e = store_num_u64(&v, d);
    }
    memcpy(out, &v, sizeof v); /* little-endian: the low bytes are the truncated value */
  } else {
    e = store_value(L, idx, a->dtype, out);
  }
  if (e != E_OK) {
    lua_pushfstring(L, "for %s", op);
    value_error(L, a, e, idx, lua_tostring(L, -1));
  }
}

#if defined(__SSE2__)
/* A fill bigger than the caches is pure store bandwidth: streaming stores skip reading every
   line before writing it (what an ordinary store does), which NumPy's fill pays for. */
#define STREAM_MIN (4u << 20)
static void fill_stream(unsigned char *p, size_t n, size_t isz, const void *x) {
  unsigned char pat[16];
  size_t i, per = 16 / isz;
  __m128i v;
  for (i = 0; i < 16; i += isz) memcpy(pat + i, x, isz);
  v = _mm_loadu_si128((const __m128i *)pat);
  for (; ((uintptr_t)p & 15) != 0 && n > 0; n--, p += isz) memcpy(p, x, isz);
  for (; n >= 4 * per; n -= 4 * per, p += 64) {
    _mm_stream_si128((__m128i *)p, v);
    _mm_stream_si128((__m128i *)(p + 16), v);
    _mm_stream_si128((__m128i *)(p + 32), v);
    _mm_stream_si128((__m128i *)(p + 48), v);
  }
  for (; n >= per; n -= per, p += 16) _mm_stream_si128((__m128i *)p, v);
  _mm_sfence();
  for (; n > 0; n--, p += isz) memcpy(p, x, isz);
}
#endif

static int array_fill(lua_State *L) {
  array *a = checkarray(L, 1);
  uint64_t x = 0;
  check_scalar(L, a, 2, &x, 0, "fill");
  if (x == 0) memset(base(a), 0, a->count * a->itemsize);
#if defined(__SSE2__)
  else if (a->count * a->itemsize >= STREAM_MIN)
    fill_stream(base(a), a->count, a->itemsize, &x);
#endif
  else
    ops[a->dtype].fill(base(a), a->count, &x);
  lua_settop(L, 1);
  return 1;
}

/* The source elements of src for an elementwise operation with a: if their bytes overlap a's
   without being the same, a copy (in *tmp, to free) so that no write is read back. */
static const unsigned char *source_bytes(lua_State *L, const array *a, const array *src,
                                         void **tmp) {
  const unsigned char *s = base(src), *d = base(a);
  size_t sn = src->count * src->itemsize, dn = a->count * a->itemsize;
  *tmp = NULL;
  if (s == d || s + sn <= d || d + dn <= s || sn == 0) return s;
  if ((*tmp = malloc(sn)) == NULL) luashm_error(L, "array '%s': out of memory", a->head.b->name);
  memcpy(*tmp, s, sn);
  return (const unsigned char *)*tmp;
}

/* Converts n elements of dtype sdt at s into a's dtype at d by the value rules (floats by
   value, integers into integers as a[i] = src[i] would). Returns E_OK, or the error and the
   flat 0-based index that failed in *bad. */
static int convert(const array *a, unsigned char *d, int sdt, const unsigned char *s, size_t n,
                   size_t *bad) {
  size_t i, ss = luashm_dtype_sizes[sdt], ds = a->itemsize;
  int by_num = IS_FLOAT(sdt) || IS_FLOAT(a->dtype);
  for (i = 0; i < n; i++) {
    int e = by_num ? ops[a->dtype].store_num(d + i * ds, ops[sdt].load_num(s + i * ss))
                   : ops[a->dtype].store_int(d + i * ds, ops[sdt].load_int(s + i * ss));
    if (e != E_OK) {
      *bad = i;
      return e;
    }
  }
  return E_OK;
}

static int array_copy(lua_State *L) {
  array *a = checkarray(L, 1);
  if (lua_istable(L, 2)) {
    copy_table(L, a, 2);
  } else {
    array *src = checkarray(L, 2);
    void *tmp;
    const unsigned char *s;
    size_t bad;
    int e;
    if (src->count != a->count)
      return luashm_error(L, "array '%s': copy: source has %I elements, the array %I",
                          a->head.b->name, (lua_Integer)src->count, (lua_Integer)a->count);
    if (src->dtype == a->dtype) {
      memmove(base(a), base(src), a->count * a->itemsize);
      lua_settop(L, 1);
      return 1;
    }
    s = source_bytes(L, a, src, &tmp);
    e = convert(a, base(a), src->dtype, s, a->count, &bad);
    free(tmp);
    if (e != E_OK) {
      ops[src->dtype].push(L, base(src) + bad * src->itemsize);
      return flat_value_error(L, a, e, lua_gettop(L), (lua_Integer)bad + 1);
    }
  }
  lua_settop(L, 1);
  return 1;
}

/* As convert, but an integer destination takes any integer modulo 2^bits (the operand of a
   wrapping add or mul), and integral floats. */
static int wrap_convert(const array *a, unsigned char *d, int sdt, const unsigned char *s, size_t n,
                        size_t *bad) {
  size_t i, ss = luashm_dtype_sizes[sdt], ds = a->itemsize;
  if (IS_FLOAT(a->dtype)) return convert(a, d, sdt, s, n, bad);
  for (i = 0; i < n; i++) {
    lua_Integer v = 0;
    if (IS_FLOAT(sdt)) {
      lua_Number x = ops[sdt].load_num(s + i * ss);
      int e = num_to_int(x, &v);
      if (e == E_RANGE && a->dtype == LUASHM_U64) e = store_num_u64(&v, x);
      if (e != E_OK) {
        *bad = i;
        return e;
      }
    } else {
      v = ops[sdt].load_int(s + i * ss);
    }
    memcpy(d + i * ds, &v, ds); /* little-endian: the low bytes */
  }
  return E_OK;
}

/* a:add(x) / a:mul(x): x a number or an Array of the same shape. */
static int elementwise(lua_State *L, int mul) {
  array *a = checkarray(L, 1);
  const dtype_ops *o = &ops[a->dtype];
  if (lua_type(L, 2) == LUA_TNUMBER) {
    uint64_t x = 0;
    check_scalar(L, a, 2, &x, 1, mul ? "mul" : "add");
    (mul ? o->mul : o->add)(base(a), a->count, &x);
  } else {
    array *b = checkarray(L, 2);
    void *tmp = NULL, *conv = NULL;
    const unsigned char *s;
    int k;
    if (b->ndim != a->ndim || memcmp(b->shape, a->shape, a->ndim * sizeof(size_t)) != 0) {
      push_shape(L, a->ndim, a->shape);
      push_shape(L, b->ndim, b->shape);
      return luashm_error(L, "array '%s': %s: shapes %s and %s differ", a->head.b->name,
                          mul ? "mul" : "add", lua_tostring(L, -2), lua_tostring(L, -1));
    }
    s = source_bytes(L, a, b, &tmp);
    if (b->dtype != a->dtype) {
      size_t bad;
      if (a->count > 0 && (conv = malloc(a->count * a->itemsize)) == NULL) {
        free(tmp);
        return luashm_error(L, "array '%s': out of memory", a->head.b->name);
      }
      k = wrap_convert(a, conv, b->dtype, s, a->count, &bad);
      if (k != E_OK) {
        free(conv);
        free(tmp);
        ops[b->dtype].push(L, base(b) + bad * b->itemsize);
        return flat_value_error(L, a, k, lua_gettop(L), (lua_Integer)bad + 1);
      }
      s = conv;
    }
    (mul ? o->mulv : o->addv)(base(a), s, a->count);
    free(conv);
    free(tmp);
  }
  lua_settop(L, 1);
  return 1;
}

static int array_add(lua_State *L) {
  return elementwise(L, 0);
}

static int array_mul(lua_State *L) {
  return elementwise(L, 1);
}

static int array_sum(lua_State *L) {
  array *a = checkarray(L, 1);
  if (IS_FLOAT(a->dtype))
    lua_pushnumber(L, ops[a->dtype].sumd(base(a), a->count));
  else
    lua_pushinteger(L, (lua_Integer)ops[a->dtype].sumi(base(a), a->count));
  return 1;
}

static int array_mean(lua_State *L) {
  array *a = checkarray(L, 1);
  lua_pushnumber(
      L, a->count ? ops[a->dtype].sumd(base(a), a->count) / (lua_Number)a->count : (lua_Number)NAN);
  return 1;
}

static int minmax(lua_State *L, int max) {
  array *a = checkarray(L, 1);
  uint64_t m;
  if (a->count == 0)
    return luashm_error(L, "array '%s': %s of an empty array", a->head.b->name,
                        max ? "max" : "min");
  if (ops[a->dtype].minmax(base(a), a->count, max, &m))
    lua_pushnumber(L, (lua_Number)NAN);
  else
    ops[a->dtype].push(L, &m);
  return 1;
}

static int array_min(lua_State *L) {
  return minmax(L, 0);
}

static int array_max(lua_State *L) {
  return minmax(L, 1);
}

/* a:apply(fn): a[i] = fn(a[i], i) over the flat index. fn may close the block: checked again
   before each store. */
static int array_apply(lua_State *L) {
  array *a = checkarray(L, 1);
  size_t i;
  luaL_checktype(L, 2, LUA_TFUNCTION);
  for (i = 0; i < a->count; i++) {
    int e;
    lua_pushvalue(L, 2);
    ops[a->dtype].push(L, base(a) + i * a->itemsize);
    lua_pushinteger(L, (lua_Integer)i + 1);
    lua_call(L, 2, 1);
    if (is_closed(a)) return closed_error(L, a);
    e = store_value(L, -1, a->dtype, base(a) + i * a->itemsize);
    if (e != E_OK) return flat_value_error(L, a, e, lua_gettop(L), (lua_Integer)i + 1);
    lua_pop(L, 1);
  }
  lua_settop(L, 1);
  return 1;
}

static void push_nested(lua_State *L, const array *a, int d, const unsigned char *p) {
  size_t n = a->shape[d], k, stride = a->itemsize;
  int j;
  luaL_checkstack(L, 3, "array nested too deep");
  for (j = d + 1; j < a->ndim; j++) stride *= a->shape[j];
  lua_createtable(L, (int)(n < INT32_MAX ? n : 0), 0);
  for (k = 0; k < n; k++) {
    if (d + 1 < a->ndim)
      push_nested(L, a, d + 1, p + k * stride);
    else
      ops[a->dtype].push(L, p + k * stride);
    lua_rawseti(L, -2, (lua_Integer)k + 1);
  }
}

static int array_totable(lua_State *L) {
  array *a = checkarray(L, 1);
  push_nested(L, a, 0, base(a));
  return 1;
}

static int array_save(lua_State *L) {
  char err[LUASHM_ERRLEN];
  array *a = checkarray(L, 1);
  const char *path = luaL_checkstring(L, 2);
  if (luashm_npy_save(path, a->dtype, a->ndim, a->shape, base(a), a->count * a->itemsize, err) != 0)
    return luashm_error(L, "%s", err);
  return 0;
}

/* ---------------------------------------------------------------------------------------
** Atomics (sequentially consistent, on i32 u32 i64 u64, flat index)
** ------------------------------------------------------------------------------------- */

static unsigned char *atomic_slot(lua_State *L, const array *a, const char *op) {
  lua_Integer i = luaL_checkinteger(L, 2);
  if (a->dtype < LUASHM_I32 || a->dtype > LUASHM_U64)
    luashm_error(L, "array '%s': %s needs dtype i32, u32, i64 or u64, not %s", a->head.b->name, op,
                 luashm_dtype_names[a->dtype]);
  if (i < 1 || (lua_Unsigned)i > a->count)
    luashm_error(L, "array '%s': %s: index %I is out of range (1..%I)", a->head.b->name, op, i,
                 (lua_Integer)a->count);
  return base(a) + (size_t)(i - 1) * a->itemsize;
}

static int array_atomic_load(lua_State *L) {
  array *a = checkarray(L, 1);
  unsigned char *p = atomic_slot(L, a, "atomic_load");
  uint64_t v = a->itemsize == 4 ? __atomic_load_n((uint32_t *)p, __ATOMIC_SEQ_CST)
                                : __atomic_load_n((uint64_t *)p, __ATOMIC_SEQ_CST);
  ops[a->dtype].push(L, &v);
  return 1;
}

static int array_atomic_store(lua_State *L) {
  array *a = checkarray(L, 1);
  unsigned char *p = atomic_slot(L, a, "atomic_store");
  uint64_t v = 0;
  check_scalar(L, a, 3, &v, 0, "atomic_store");
  if (a->itemsize == 4)
    __atomic_store_n((uint32_t *)p, (uint32_t)v, __ATOMIC_SEQ_CST);
  else
    __atomic_store_n((uint64_t *)p, v, __ATOMIC_SEQ_CST);
  return 0;
}

/* Returns the old value; the addition wraps modulo 2^bits. */
static int array_atomic_add(lua_State *L) {
  array *a = checkarray(L, 1);
  unsigned char *p = atomic_slot(L, a, "atomic_add");
  uint64_t v = 0, old;
  check_scalar(L, a, 3, &v, 1, "atomic_add");
  if (a->itemsize == 4)
    old = __atomic_fetch_add((uint32_t *)p, (uint32_t)v, __ATOMIC_SEQ_CST);
  else
    old = __atomic_fetch_add((uint64_t *)p, v, __ATOMIC_SEQ_CST);
  ops[a->dtype].push(L, &old);
  return 1;
}

/* a:cas(i, expected, new): true, or false and the current value. */
static int array_cas(lua_State *L) {
  array *a = checkarray(L, 1);
  unsigned char *p = atomic_slot(L, a, "cas");
  uint64_t want = 0, neu = 0;
  int ok;
  check_scalar(L, a, 3, &want, 0, "cas");
  check_scalar(L, a, 4, &neu, 0, "cas");
  if (a->itemsize == 4) {
    uint32_t w = (uint32_t)want;
    ok = __atomic_compare_exchange_n((uint32_t *)p, &w, (uint32_t)neu, 0, __ATOMIC_SEQ_CST,
                                     __ATOMIC_SEQ_CST);
    want = w;
  } else {
    ok = __atomic_compare_exchange_n((uint64_t *)p, &want, neu, 0, __ATOMIC_SEQ_CST,
                                     __ATOMIC_SEQ_CST);
  }
  lua_pushboolean(L, ok);
  if (ok) return 1;
  ops[a->dtype].push(L, &want);
  return 2;
}

/* ---------------------------------------------------------------------------------------
** Lifetime, printing, sending by name
** ------------------------------------------------------------------------------------- */

/* A raw view only closes itself; an array that attached or created its block closes it (and
   so every view of it). Idempotent. */
static int array_close(lua_State *L) {
  array *a = toarray(L, 1);
  if (a->flags & AF_OWNS) {
    luashm_block_close(a->head.b);
  } else {
    a->flags |= AF_CLOSED;
  }
  return 0;
}

/* NumPy prints at most 1000 elements, 3 at each end of every dimension beyond that. */
#define PRINT_THRESHOLD 1000
#define EDGE 3

static void add_values(lua_State *L, luaL_Buffer *b, const array *a, int d, const unsigned char *p,
                       int elide) {
  size_t n = a->shape[d], k, stride = a->itemsize;
  int j;
  for (j = d + 1; j < a->ndim; j++) stride *= a->shape[j];
  luaL_addchar(b, '[');
  for (k = 0; k < n; k++) {
    if (elide && n > 2 * EDGE && k == EDGE) {
      luaL_addstring(b, ", ...");
      k = n - EDGE - 1;
      continue;
    }
    if (k) luaL_addstring(b, ", ");
    if (d + 1 < a->ndim) {
      add_values(L, b, a, d + 1, p + k * stride, elide);
    } else {
      ops[a->dtype].push(L, p + k * stride);
      luaL_tolstring(L, -1, NULL);
      lua_remove(L, -2);
      luaL_addvalue(b);
    }
  }
  luaL_addchar(b, ']');
}

/* NumPy elides past 1000 elements; a long dimension of an empty array is elided too. */
static int elide(const array *a) {
  int d;
  for (d = 0; d < a->ndim; d++)
    if (a->shape[d] > PRINT_THRESHOLD) return 1;
  return a->count > PRINT_THRESHOLD;
}

static int array_tostring(lua_State *L) {
  array *a = toarray(L, 1);
  luaL_Buffer b;
  push_shape(L, a->ndim, a->shape);
  lua_pushfstring(L, "luashm.Array %s %s '%s' ", luashm_dtype_names[a->dtype], lua_tostring(L, -1),
                  a->head.b->name);
  luaL_buffinit(L, &b);
  if (is_closed(a))
    luaL_addstring(&b, "(closed)");
  else
    add_values(L, &b, a, 0, base(a), elide(a));
  luaL_pushresult(&b);
  lua_concat(L, 2);
  return 1;
}

/* For travel by name: nothing for the whole self-describing array; any other view also
   carries its dtype, shape and offset. */
static int array_view(lua_State *L, int idx) {
  array *a = toarray(L, idx);
  int k;
  if (a->flags & AF_WHOLE) return 0;
  lua_createtable(L, 0, 3);
  lua_pushstring(L, luashm_dtype_names[a->dtype]);
  lua_setfield(L, -2, "dtype");
  lua_createtable(L, a->ndim, 0);
  for (k = 0; k < a->ndim; k++) {
    lua_pushinteger(L, (lua_Integer)a->shape[k]);
    lua_rawseti(L, -2, k + 1);
  }
  lua_setfield(L, -2, "shape");
  lua_pushinteger(L, (lua_Integer)a->offset);
  lua_setfield(L, -2, "offset");
  return 1;
}

/* The Block at the top of the stack as an Array: the whole NPY array, or the view described by
   the value at view (what array_view gave; untrusted: it came from a message). */
static int array_wrap(lua_State *L, int view) {
  size_t shape[LUASHM_MAXDIMS];
  int dtype, ndim;
  lua_Integer off;
  if (view == 0) return array_wrap_whole(L);
  luaL_checktype(L, view, LUA_TTABLE);
  lua_getfield(L, view, "dtype");
  dtype = check_dtype(L, -1);
  lua_getfield(L, view, "shape");
  ndim = check_shape(L, -1, shape, 0);
  lua_getfield(L, view, "offset");
  off = luaL_checkinteger(L, -1);
  lua_pop(L, 3);
  make_view(L, -1, dtype, ndim, shape, off, AF_OWNS);
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
  array *a = (array *)luaL_testudata(L, i, LUASHM_ARRAY);
  if (a == NULL || a->head.kind != &luashm_kind_array) return 0;
  if (is_closed(a)) closed_error(L, a);
  info->data = base(a);
  info->dtype = a->dtype;
  info->itemsize = a->itemsize;
  info->count = a->count;
  info->ndim = a->ndim;
  info->shape = a->shape;
  return 1;
}

static const luaL_Reg array_meth[] = {{"get", array_get},
                                      {"set", array_set},
                                      {"slice", array_slice},
                                      {"reshape", array_reshape},
                                      {"fill", array_fill},
                                      {"copy", array_copy},
                                      {"totable", array_totable},
                                      {"sum", array_sum},
                                      {"min", array_min},
                                      {"max", array_max},
                                      {"mean", array_mean},
                                      {"add", array_add},
                                      {"mul", array_mul},
                                      {"apply", array_apply},
                                      {"atomic_add", array_atomic_add},
                                      {"cas", array_cas},
                                      {"atomic_load", array_atomic_load},
                                      {"atomic_store", array_atomic_store},
                                      {"save", array_save},
                                      {"close", array_close},
                                      {"unlink", luashm_object_unlink},
                                      {NULL, NULL}};

/* No __gc: views share the Block, whose own __gc unmaps it. */
static const luaL_Reg array_metameth[] = {{"__newindex", array_newindex},
                                          {"__len", array_len},
                                          {"__close", array_close},
                                          {"__tostring", array_tostring},
                                          {NULL, NULL}};

static const luaL_Reg array_funcs[] = {{"array", array_new}, {"load", array_load}, {NULL, NULL}};

static void array_open(lua_State *L) {
  luashm_newkind(L, &luashm_kind_array, array_meth, array_metameth, array_index);
  luaL_setfuncs(L, array_funcs, 0);
}

const luashm_kind luashm_kind_array = {"array",    LUASHM_ARRAY, "array",        array_probe,
                                       array_wrap, array_view,   array_describe, array_open};
