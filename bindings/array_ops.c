/*
** The Array's elementwise methods, destination first: fill, copy, astype, apply, the binary
** operations (add sub mul div idiv mod pow minimum maximum), comparisons into masks, unary
** functions, clip and where. Each resolves the dtype it computes in as NumPy 1.24 would for
** np.op(x, y, out=dst, casting="unsafe"), broadcasts its operands to dst's shape, copies an
** operand first only when its bytes really overlap dst's (NumPy's overlap rule), and hands the
** rest to the engine (core/kernels.h).
*/
#include <math.h>
#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "array.h"

/* ---------------------------------------------------------------------------------------
** Operands
** ------------------------------------------------------------------------------------- */

typedef struct operand {
  int idx;          /* its stack index */
  const char *name; /* "x", "y", "mask", "lo", "hi" */
  array *a;         /* NULL for a number */
  luashm_optype t;
  int ctype;      /* the dtype the loop reads it as (-1: the computation dtype) */
  uint64_t bytes; /* a number in that dtype */
} operand;

static void get_operand(lua_State *L, operand *o, int idx, const char *name) {
  luashm_object *obj;
  memset(o, 0, sizeof *o);
  o->idx = idx;
  o->name = name;
  o->ctype = -1;
  if (lua_type(L, idx) == LUA_TNUMBER) {
    o->t.scalar = 1;
    o->t.isint = lua_isinteger(L, idx);
    if (o->t.isint)
      o->t.i = (int64_t)lua_tointeger(L, idx);
    else
      o->t.d = (double)lua_tonumber(L, idx);
    return;
  }
  obj = luashm_toobject(L, idx);
  if (obj == NULL || obj->kind != &luashm_kind_array) luaL_typeerror(L, idx, "number or Array");
  o->a = luashm_array_check(L, idx);
  o->t.dtype = o->a->dtype;
}

/* An integer (or bool) dst takes integer operands only; an integral float number counts as the
   integer it is. */
static void int_operand(lua_State *L, const char *op, const array *dst, operand *o) {
  const char *dn = luashm_dtype_names[dst->dtype];
  if (o->a != NULL) {
    if (LUASHM_ISFLOAT(o->a->dtype))
      luashm_error(L,
                   "%s %s: cannot cast %s (%s) to the integer dst (%s): convert it with "
                   "copy(src, \"unsafe\") first",
                   op, luashm_array_label(L, dst), o->name, luashm_dtype_names[o->a->dtype], dn);
    return;
  }
  if (o->t.isint) return;
  if (o->t.d == floor(o->t.d) && o->t.d >= -0x1p63 && o->t.d < 0x1p63) {
    o->t.isint = 1;
    o->t.i = (int64_t)o->t.d;
    return;
  }
  lua_pushnumber(L, (lua_Number)o->t.d);
  luashm_error(L, "%s %s: cannot cast %s %s to the integer dst (%s): it is not an integer", op,
               luashm_array_label(L, dst), o->name, luaL_tolstring(L, -1, NULL), dn);
}

/* The number of o as dtype ct (NumPy's value-based resolution made ct able to hold it, or
   the conversion is what NumPy's would be). */
static void scalar_bytes(operand *o, int ct) {
  int64_t v;
  o->bytes = 0;
  if (LUASHM_ISFLOAT(ct)) {
    luashm_store_double(ct, &o->bytes, o->t.isint ? (double)o->t.i : o->t.d);
    return;
  }
  if (ct == LUASHM_BOOL) {
    o->bytes = o->t.isint ? o->t.i != 0 : o->t.d != 0;
    return;
  }
  v = o->t.isint ? o->t.i : (int64_t)o->t.d;
  memcpy(&o->bytes, &v, sizeof v); /* little-endian: the low bytes are the wrapped value */
}

/* Operand k of the engine: an Array broadcast to dst's shape, or a number (stride 0). A u8
   array read as bool is taken as it is (the loops test for nonzero). */
static void add_operand(lua_State *L, const char *op, const array *dst, luashm_iter *it,
                        luashm_ufunc *u, int k, operand *o, int ct) {
  int c = o->ctype >= 0 ? o->ctype : ct;
  u->ctype[k] = c;
  if (o->a == NULL) {
    int d;
    scalar_bytes(o, c);
    it->data[k] = (unsigned char *)&o->bytes;
    for (d = 0; d < it->ndim; d++) it->strides[k][d] = 0;
    u->dtype[k] = c;
    return;
  }
  u->dtype[k] = o->a->dtype == LUASHM_U8 && c == LUASHM_BOOL ? LUASHM_BOOL : o->a->dtype;
  if (luashm_array_operand(it, k, o->a) != 0) {
    const char *label = luashm_array_label(L, dst);
    const char *ds = luashm_array_pushshape(L, dst->ndim, dst->shape);
    luashm_error(L, "%s %s: shapes %s and %s do not broadcast (%s)", op, label, ds,
                 luashm_array_pushshape(L, o->a->ndim, o->a->shape), o->name);
  }
}

/* NumPy's overlap rule: when o's bytes overlap dst's without being the same elements, o is
   replaced (on the stack too) by a private copy, unless both walk the same bytes in the same
   direction with o ahead of dst, which reading before writing makes safe in order (*keep). */
static void unalias(lua_State *L, const array *dst, operand *o, int *keep) {
  const unsigned char *dlo, *dhi, *lo, *hi;
  luashm_iter it;
  array *c;
  int d, same = 1;
  if (o->a == NULL || o->a->count == 0 || dst->count == 0) return;
  luashm_array_extent(dst, &dlo, &dhi);
  luashm_array_extent(o->a, &lo, &hi);
  if (hi <= dlo || dhi <= lo) return;
  luashm_array_iter(&it, 2, dst);
  if (luashm_array_operand(&it, 1, o->a) != 0) return; /* the broadcast error comes later */
  for (d = 0; d < it.ndim; d++)
    if (it.shape[d] > 1 && it.strides[0][d] != it.strides[1][d]) same = 0;
  if (same && it.data[0] == it.data[1]) return;
  luashm_iter_prepare(&it, LUASHM_ITER_KEEPORDER);
  if (it.ndim == 1 && it.strides[0][0] == it.strides[1][0] && it.strides[0][0] != 0 &&
      (it.strides[0][0] > 0 ? it.data[1] >= it.data[0] : it.data[1] <= it.data[0])) {
    *keep = 1;
    return;
  }
  c = luashm_array_private(L, o->a->dtype, o->a->ndim, o->a->shape, 0);
  luashm_array_copyraw(c, o->a);
  lua_replace(L, o->idx);
  o->a = c;
}

/* Runs loop over dst (operand 0: the loop writes out_ctype, stored as dst's dtype or as
   out_dtype) and the operands (read as ct unless they say otherwise); raises the loop's error;
   leaves dst at the top, the call's result. */
static int run(lua_State *L, const char *op, const array *dst, luashm_loop loop, int out_dtype,
               int out_ctype, operand *ops, int nops, int ct) {
  luashm_ufunc u;
  luashm_iter it;
  int k, rc, keep = 0;
  memset(&u, 0, sizeof u);
  u.loop = loop;
  u.dtype[0] = out_dtype;
  u.ctype[0] = out_ctype;
  for (k = 0; k < nops; k++) unalias(L, dst, &ops[k], &keep);
  u.flags = keep ? LUASHM_ITER_KEEPORDER : 0;
  luashm_array_iter(&it, nops + 1, dst);
  for (k = 0; k < nops; k++) add_operand(L, op, dst, &it, &u, k + 1, &ops[k], ct);
  rc = luashm_ufunc_run(&it, &u);
  if (rc == LUASHM_EDIVZERO)
    luashm_error(L, "%s %s: integer division by zero", op, luashm_array_label(L, dst));
  if (rc == LUASHM_ENEGPOW)
    luashm_error(L, "%s %s: integers to negative integer powers are not allowed", op,
                 luashm_array_label(L, dst));
  lua_settop(L, 1);
  return 1;
}

/* The operands of dst:op(x [, y]): (dst, x) or (x, y). */
static void two_operands(lua_State *L, operand *o) {
  luaL_checkany(L, 2);
  if (!lua_isnoneornil(L, 3)) {
    get_operand(L, &o[0], 2, "x");
    get_operand(L, &o[1], 3, "y");
  } else {
    get_operand(L, &o[0], 1, "dst");
    get_operand(L, &o[1], 2, "x");
  }
}

static int types(const operand *o, int n) {
  luashm_optype t[LUASHM_MAXOPS];
  int k;
  for (k = 0; k < n; k++) t[k] = o[k].t;
  return luashm_result_type(n, t);
}

/* ---------------------------------------------------------------------------------------
** Binary operations, comparisons, unary functions, where, clip
** ------------------------------------------------------------------------------------- */

static const char *const binary_names[LUASHM_NBINARY] = {"add", "sub", "mul",     "div",    "idiv",
                                                         "mod", "pow", "minimum", "maximum"};

static int binary_op(lua_State *L, int op) {
  array *dst = luashm_array_check(L, 1);
  const char *name = binary_names[op];
  operand o[2];
  luashm_loop loop;
  int ct;
  two_operands(L, o);
  if (LUASHM_ISINTLIKE(dst->dtype)) {
    if (op == LUASHM_DIV)
      return luashm_error(L, "div %s: true division into an integer array (%s): use idiv",
                          luashm_array_label(L, dst), luashm_dtype_names[dst->dtype]);
    int_operand(L, name, dst, &o[0]);
    int_operand(L, name, dst, &o[1]);
  }
  ct = types(o, 2);
  if (op == LUASHM_DIV && LUASHM_ISINTLIKE(ct)) ct = LUASHM_F64;
  if ((op == LUASHM_IDIV || op == LUASHM_MOD || op == LUASHM_POW) && ct == LUASHM_BOOL)
    ct = LUASHM_I8;
  if ((loop = luashm_binary_loop(op, ct)) == NULL)
    return luashm_error(L, "%s %s: %s has no %s (NumPy's has none either)", name,
                        luashm_array_label(L, dst), luashm_dtype_names[ct], name);
  return run(L, name, dst, loop, dst->dtype, ct, o, 2, ct);
}

static const char *const compare_names[LUASHM_NCOMPARE] = {"lt", "le", "gt", "ge", "eq", "ne"};

static int compare_op(lua_State *L, int op) {
  array *dst = luashm_array_check(L, 1);
  const char *name = compare_names[op];
  operand o[2];
  int ct;
  if (dst->dtype != LUASHM_BOOL && dst->dtype != LUASHM_U8)
    return luashm_error(L, "%s %s: a comparison writes a bool or u8 mask, not %s", name,
                        luashm_array_label(L, dst), luashm_dtype_names[dst->dtype]);
  two_operands(L, o);
  ct = types(o, 2);
  /* written as bool: a u8 mask holds the same bytes */
  return run(L, name, dst, luashm_compare_loop(op, ct), LUASHM_BOOL, LUASHM_BOOL, o, 2, ct);
}

static const char *const unary_names[LUASHM_NUNARY] = {"abs", "neg",   "sqrt", "exp",
                                                       "log", "floor", "ceil", "round"};

static int unary_op(lua_State *L, int op) {
  array *dst = luashm_array_check(L, 1);
  const char *name = unary_names[op];
  int transcendental = op == LUASHM_SQRT || op == LUASHM_EXP || op == LUASHM_LOG, ct;
  operand x;
  luashm_loop loop;
  if (lua_isnoneornil(L, 2))
    get_operand(L, &x, 1, "dst");
  else
    get_operand(L, &x, 2, "x");
  if (LUASHM_ISINTLIKE(dst->dtype)) {
    if (transcendental)
      return luashm_error(L, "%s %s: needs a float dst (f16, f32 or f64), not %s", name,
                          luashm_array_label(L, dst), luashm_dtype_names[dst->dtype]);
    int_operand(L, name, dst, &x);
  }
  ct = types(&x, 1);
  /* NumPy computes these of integers in the smallest float that holds them exactly. */
  if (transcendental && LUASHM_ISINTLIKE(ct))
    ct = luashm_dtype_sizes[ct] == 1   ? LUASHM_F16
         : luashm_dtype_sizes[ct] == 2 ? LUASHM_F32
                                       : LUASHM_F64;
  if ((loop = luashm_unary_loop(op, ct)) == NULL)
    return luashm_error(L, "%s %s: %s has no %s (NumPy's has none either)", name,
                        luashm_array_label(L, dst), luashm_dtype_names[ct], name);
  return run(L, name, dst, loop, dst->dtype, ct, &x, 1, ct);
}

/* dst:where(mask, x, y): dst = mask ? x : y. */
static int array_where(lua_State *L) {
  array *dst = luashm_array_check(L, 1);
  operand o[3];
  int ct;
  get_operand(L, &o[0], 2, "mask");
  if (o[0].a == NULL) luaL_typeerror(L, 2, "Array");
  o[0].ctype = LUASHM_BOOL; /* a bool or u8 mask as it is, any other dtype cast */
  get_operand(L, &o[1], 3, "x");
  get_operand(L, &o[2], 4, "y");
  if (LUASHM_ISINTLIKE(dst->dtype)) {
    int_operand(L, "where", dst, &o[1]);
    int_operand(L, "where", dst, &o[2]);
  }
  ct = types(o + 1, 2);
  return run(L, "where", dst, luashm_where_loop(ct), dst->dtype, ct, o, 3, ct);
}

/* dst:clip(lo, hi): either bound may be nil (none). */
static int array_clip(lua_State *L) {
  array *dst = luashm_array_check(L, 1);
  operand o[3];
  int ct, k;
  if (lua_isnoneornil(L, 2) && lua_isnoneornil(L, 3))
    return luashm_error(L, "clip %s: give lo, hi or both", luashm_array_label(L, dst));
  get_operand(L, &o[0], 1, "dst");
  for (k = 1; k <= 2; k++) {
    if (lua_isnoneornil(L, k + 1)) {
      memset(&o[k], 0, sizeof o[k]);
      o[k].idx = -1; /* a missing bound: filled in below */
      o[k].ctype = -1;
      continue;
    }
    get_operand(L, &o[k], k + 1, k == 1 ? "lo" : "hi");
    if (o[k].a == NULL && !o[k].t.isint && o[k].t.d != o[k].t.d) { /* NaN: none, as NumPy's */
      o[k].idx = -1;
      continue;
    }
    if (LUASHM_ISINTLIKE(dst->dtype)) int_operand(L, "clip", dst, &o[k]);
  }
  {
    operand given[3];
    int n = 0;
    for (k = 0; k < 3; k++)
      if (o[k].idx != -1) given[n++] = o[k];
    ct = types(given, n);
  }
  for (k = 1; k <= 2; k++) { /* a missing bound is the widest: it changes nothing */
    if (o[k].idx != -1) continue;
    o[k].name = k == 1 ? "lo" : "hi";
    o[k].t.scalar = 1;
    if (LUASHM_ISFLOAT(ct)) {
      o[k].t.d = k == 1 ? -HUGE_VAL : HUGE_VAL;
    } else {
      unsigned char lim[8];
      memset(lim, k == 1 ? 0 : 0xff, sizeof lim);
      if (luashm_dtype_kinds[ct] == LUASHM_KIND_INT) lim[luashm_dtype_sizes[ct] - 1] ^= 0x80;
      if (ct == LUASHM_BOOL) lim[0] = k == 1 ? 0 : 1;
      o[k].t.isint = 1;
      o[k].t.i = luashm_load_int(ct, lim);
    }
  }
  return run(L, "clip", dst, luashm_clip_loop(ct), dst->dtype, ct, o, 3, ct);
}

/* ---------------------------------------------------------------------------------------
** fill, copy, astype, apply
** ------------------------------------------------------------------------------------- */

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
  array *a = luashm_array_check(L, 1);
  uint64_t x = 0;
  luashm_iter it;
  int e, d;
  if (lua_type(L, 2) != LUA_TNUMBER && !(a->dtype == LUASHM_BOOL && lua_isboolean(L, 2)))
    luaL_typeerror(L, 2, a->dtype == LUASHM_BOOL ? "boolean or number" : "number");
  if ((e = luashm_array_store(L, 2, a->dtype, &x)) != LUASHM_OK)
    return luashm_array_value_error(L, a, e, 2, "for fill");
  if (luashm_array_contiguous(a)) {
    if (x == 0) {
      memset(array_data(a), 0, a->count * a->itemsize);
      lua_settop(L, 1);
      return 1;
    }
#if defined(__SSE2__)
    if (a->count * a->itemsize >= STREAM_MIN) {
      fill_stream(array_data(a), a->count, a->itemsize, &x);
      lua_settop(L, 1);
      return 1;
    }
#endif
  }
  luashm_array_iter(&it, 2, a);
  it.data[1] = (unsigned char *)&x;
  for (d = 0; d < a->ndim; d++) it.strides[1][d] = 0;
  luashm_iter_prepare(&it, 0);
  luashm_iter_run(&it, luashm_copy_loop(a->itemsize), NULL);
  lua_settop(L, 1);
  return 1;
}

/* The element of src (broadcast to dst's shape) at dst's flat C-order position. */
static const unsigned char *broadcast_element(const array *dst, const array *src, size_t flat) {
  luashm_iter it;
  const unsigned char *p;
  int d;
  it.nop = 1;
  it.ndim = dst->ndim;
  memcpy(it.shape, dst->shape, dst->ndim * sizeof(size_t));
  luashm_array_operand(&it, 0, src);
  p = it.data[0];
  for (d = dst->ndim - 1; d >= 0; d--) {
    p += (ptrdiff_t)(flat % dst->shape[d]) * it.strides[0][d];
    flat /= dst->shape[d];
  }
  return p;
}

/* Copies the Array at srcidx into dst (at 1): broadcast to dst's shape, or, with the same
   number of elements, in C order; by the exact value rules, or as NumPy's astype (unsafe). */
static void copy_array(lua_State *L, array *dst, int srcidx, int unsafe) {
  operand o;
  luashm_iter it;
  get_operand(L, &o, srcidx, "src");
  if (o.a == NULL) luaL_typeerror(L, srcidx, "table or Array");
  it.ndim = dst->ndim;
  memcpy(it.shape, dst->shape, dst->ndim * sizeof(size_t));
  if (luashm_array_operand(&it, 0, o.a) != 0) {
    if (o.a->count != dst->count)
      luashm_error(L, "array %s: copy: source has %I elements, the array %I",
                   luashm_array_label(L, dst), (lua_Integer)o.a->count, (lua_Integer)dst->count);
    if (!luashm_array_contiguous(o.a)) { /* C order needs it contiguous: a copy */
      array *c = luashm_array_private(L, o.a->dtype, o.a->ndim, o.a->shape, 0);
      luashm_array_copyraw(c, o.a);
      lua_replace(L, srcidx);
    }
    luashm_array_view(L, srcidx, dst->ndim, dst->shape, NULL, luashm_array_to(L, srcidx)->offset);
    lua_replace(L, srcidx);
    o.a = luashm_array_to(L, srcidx);
  }
  if (o.a->dtype == dst->dtype || unsafe) {
    run(L, "copy", dst, luashm_copy_loop(o.a->itemsize), dst->dtype, o.a->dtype, &o, 1, o.a->dtype);
  } else {
    luashm_exact x;
    int keep = 0;
    unalias(L, dst, &o, &keep);
    memset(&x, 0, sizeof x);
    x.to = dst->dtype;
    x.from = o.a->dtype;
    it.nop = 2;
    luashm_array_operand(&it, 0, dst);
    luashm_array_operand(&it, 1, o.a);
    luashm_iter_prepare(&it, LUASHM_ITER_KEEPORDER);
    if (luashm_iter_run(&it, luashm_exact_loop, &x) != 0) {
      luashm_array_push(L, o.a->dtype, broadcast_element(dst, o.a, x.bad));
      luashm_array_flat_error(L, dst, x.why, -1, x.bad);
    }
  }
}

static int check_unsafe(lua_State *L, int idx, const char *op) {
  const char *mode;
  if (lua_isnoneornil(L, idx)) return 0;
  mode = luaL_checkstring(L, idx);
  if (strcmp(mode, "unsafe") != 0)
    luashm_error(L, "%s: unknown casting '%s' (only \"unsafe\", or none for exact values)", op,
                 mode);
  return 1;
}

/* dst:copy(src [, "unsafe"]): src a table (flat or nested) or an Array. */
static int array_copy(lua_State *L) {
  array *dst = luashm_array_check(L, 1);
  int unsafe = check_unsafe(L, 3, "copy");
  if (lua_istable(L, 2))
    luashm_array_copytable(L, dst, 2);
  else
    copy_array(L, dst, 2, unsafe);
  lua_settop(L, 1);
  return 1;
}

/* a:astype(dtype [, "unsafe"]): a private converted copy. */
static int array_astype(lua_State *L) {
  array *a = luashm_array_check(L, 1);
  int dt = luashm_array_checkdtype(L, 2), unsafe = check_unsafe(L, 3, "astype");
  array *c = luashm_array_private(L, dt, a->ndim, a->shape, 0);
  lua_replace(L, 2);
  lua_settop(L, 2);
  lua_insert(L, 1); /* the new array at 1, the source at 2 */
  copy_array(L, c, 2, unsafe);
  lua_settop(L, 1);
  return 1;
}

/* a:apply(fn): a[i] = fn(a[i], i) over the flat C-order index. fn may close the storage:
   checked again before each store. */
static int array_apply(lua_State *L) {
  array *a = luashm_array_check(L, 1);
  size_t idx[LUASHM_MAXDIMS], i;
  int d;
  luaL_checktype(L, 2, LUA_TFUNCTION);
  memset(idx, 0, sizeof idx);
  for (i = 0; i < a->count; i++) {
    unsigned char *p;
    int e;
    if (*a->datap == NULL) return luashm_array_closed_error(L, a);
    p = array_data(a);
    for (d = 0; d < a->ndim; d++) p += (ptrdiff_t)idx[d] * array_strides(a)[d];
    lua_pushvalue(L, 2);
    luashm_array_push(L, a->dtype, p);
    lua_pushinteger(L, (lua_Integer)i + 1);
    lua_call(L, 2, 1);
    if (*a->datap == NULL) return luashm_array_closed_error(L, a);
    p = array_data(a);
    for (d = 0; d < a->ndim; d++) p += (ptrdiff_t)idx[d] * array_strides(a)[d];
    if ((e = luashm_array_store(L, -1, a->dtype, p)) != LUASHM_OK)
      return luashm_array_flat_error(L, a, e, -1, i);
    lua_pop(L, 1);
    for (d = a->ndim - 1; d >= 0 && ++idx[d] == a->shape[d]; d--) idx[d] = 0;
  }
  lua_settop(L, 1);
  return 1;
}

#define BINARY_METHOD(N, OP)           \
  static int array_##N(lua_State *L) { \
    return binary_op(L, OP);           \
  }
#define COMPARE_METHOD(N, OP)          \
  static int array_##N(lua_State *L) { \
    return compare_op(L, OP);          \
  }
#define UNARY_METHOD(N, OP)            \
  static int array_##N(lua_State *L) { \
    return unary_op(L, OP);            \
  }
BINARY_METHOD(add, LUASHM_ADD)
BINARY_METHOD(sub, LUASHM_SUB)
BINARY_METHOD(mul, LUASHM_MUL)
BINARY_METHOD(div, LUASHM_DIV)
BINARY_METHOD(idiv, LUASHM_IDIV)
BINARY_METHOD(mod, LUASHM_MOD)
BINARY_METHOD(pow, LUASHM_POW)
BINARY_METHOD(minimum, LUASHM_MINIMUM)
BINARY_METHOD(maximum, LUASHM_MAXIMUM)
COMPARE_METHOD(lt, LUASHM_LT)
COMPARE_METHOD(le, LUASHM_LE)
COMPARE_METHOD(gt, LUASHM_GT)
COMPARE_METHOD(ge, LUASHM_GE)
COMPARE_METHOD(eq, LUASHM_EQ)
COMPARE_METHOD(ne, LUASHM_NE)
UNARY_METHOD(abs, LUASHM_ABS)
UNARY_METHOD(neg, LUASHM_NEG)
UNARY_METHOD(sqrt, LUASHM_SQRT)
UNARY_METHOD(exp, LUASHM_EXP)
UNARY_METHOD(log, LUASHM_LOG)
UNARY_METHOD(floor, LUASHM_FLOOR)
UNARY_METHOD(ceil, LUASHM_CEIL)
UNARY_METHOD(round, LUASHM_ROUND)

const luaL_Reg luashm_array_ops_methods[] = {
    {"fill", array_fill},       {"copy", array_copy},   {"astype", array_astype},
    {"apply", array_apply},     {"add", array_add},     {"sub", array_sub},
    {"mul", array_mul},         {"div", array_div},     {"idiv", array_idiv},
    {"mod", array_mod},         {"pow", array_pow},     {"minimum", array_minimum},
    {"maximum", array_maximum}, {"lt", array_lt},       {"le", array_le},
    {"gt", array_gt},           {"ge", array_ge},       {"eq", array_eq},
    {"ne", array_ne},           {"abs", array_abs},     {"neg", array_neg},
    {"sqrt", array_sqrt},       {"exp", array_exp},     {"log", array_log},
    {"floor", array_floor},     {"ceil", array_ceil},   {"round", array_round},
    {"clip", array_clip},       {"where", array_where}, {NULL, NULL}};
