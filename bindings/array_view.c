/*
** The Array's values and views: the value rules of an element store and their errors, the
** dtype and shape arguments, full-index get/set, slice, view (index, range and step specs),
** transpose, reshape, clone, totable, tostring and save, all on any strided view; and the
** helpers the other Array files iterate with (an operand broadcast to a shape, a raw strided
** copy, a view's byte extent, copying a Lua table in).
*/
#include <stdlib.h>
#include <string.h>

#include "array.h"

/* ---------------------------------------------------------------------------------------
** Values (element stores and their errors)
** ------------------------------------------------------------------------------------- */

int luashm_array_store(lua_State *L, int idx, int dt, void *p) {
  int isnum;
  lua_Number d;
  if (dt == LUASHM_BOOL && lua_type(L, idx) == LUA_TBOOLEAN) {
    *(uint8_t *)p = (uint8_t)lua_toboolean(L, idx);
    return LUASHM_OK;
  }
  if (lua_isinteger(L, idx)) return luashm_store_int(dt, p, (int64_t)lua_tointeger(L, idx));
  d = lua_tonumberx(L, idx, &isnum);
  if (!isnum) return LUASHM_ETYPE;
  if (!LUASHM_ISFLOAT(dt) && lua_type(L, idx) == LUA_TSTRING) {
    lua_Integer i = lua_tointegerx(L, idx, &isnum); /* "7" as the integer 7, exactly */
    if (isnum) return luashm_store_int(dt, p, (int64_t)i);
  }
  return luashm_store_double(dt, p, (double)d);
}

static const char *const ranges[LUASHM_NDTYPES] = {
    "-128..127",     "0..255",     "-32768..32767",       "0..65535",
    "-2^31..2^31-1", "0..2^32-1",  "-2^63..2^63-1",       "0..2^64-1",
    "any number",    "any number", "true, false, 0 or 1", "any number"};

int luashm_array_value_error(lua_State *L, const array *a, int code, int idx, const char *where) {
  const char *dt = luashm_dtype_names[a->dtype], *v, *label;
  idx = lua_absindex(L, idx);
  label = luashm_array_label(L, a);
  if (code == LUASHM_ETYPE)
    return luashm_error(L, "array %s: value %s is a %s, not a %s (dtype %s)", label, where,
                        luaL_typename(L, idx),
                        a->dtype == LUASHM_BOOL ? "boolean or 0/1" : "number", dt);
  lua_pushvalue(L, idx);
  v = luaL_tolstring(L, -1, NULL);
  if (code == LUASHM_ENOTINT && a->dtype != LUASHM_BOOL)
    return luashm_error(L, "array %s: value %s %s is not an integer (dtype %s)", label, v, where,
                        dt);
  return luashm_error(L, "array %s: value %s %s is out of range for %s (%s)", label, v, where, dt,
                      ranges[a->dtype]);
}

int luashm_array_flat_error(lua_State *L, const array *a, int code, int idx, size_t flat) {
  idx = lua_absindex(L, idx);
  lua_pushfstring(L, "at index %I", (lua_Integer)flat + 1);
  return luashm_array_value_error(L, a, code, idx, lua_tostring(L, -1));
}

/* ---------------------------------------------------------------------------------------
** Arguments (dtype, shape)
** ------------------------------------------------------------------------------------- */

int luashm_array_checkdtype(lua_State *L, int idx) {
  const char *name = luaL_checkstring(L, idx);
  int dt = luashm_dtype_lookup(name);
  if (dt < 0)
    luashm_error(L, "array: unknown dtype '%s' (i8 u8 i16 u16 i32 u32 i64 u64 f32 f64 bool f16)",
                 name);
  return dt;
}

static size_t check_dim(lua_State *L, int idx, int k) {
  int isint;
  lua_Integer n = lua_tointegerx(L, idx, &isint);
  if (!isint || lua_type(L, idx) != LUA_TNUMBER || n < 0)
    luashm_error(L, "array: shape[%d] must be a non-negative integer", k);
  return (size_t)n;
}

int luashm_array_checkshape(lua_State *L, int idx, size_t *shape, int wildcard) {
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

/* ---------------------------------------------------------------------------------------
** Helpers for the other files
** ------------------------------------------------------------------------------------- */

int luashm_array_operand(luashm_iter *it, int k, const array *a) {
  const ptrdiff_t *st = array_strides(a);
  int d, lead = it->ndim - a->ndim;
  if (lead < 0) return -1;
  for (d = 0; d < it->ndim; d++) {
    int ad = d - lead;
    if (ad < 0 || a->shape[ad] == 1)
      it->strides[k][d] = 0;
    else if (a->shape[ad] == it->shape[d])
      it->strides[k][d] = st[ad];
    else
      return -1;
  }
  it->data[k] = array_data(a);
  return 0;
}

void luashm_array_iter(luashm_iter *it, int nop, const array *a) {
  it->nop = nop;
  it->ndim = a->ndim;
  memcpy(it->shape, a->shape, a->ndim * sizeof(size_t));
  luashm_array_operand(it, 0, a);
}

void luashm_array_copyraw(const array *dst, const array *src) {
  luashm_iter it;
  luashm_array_iter(&it, 2, dst);
  luashm_array_operand(&it, 1, src);
  luashm_iter_prepare(&it, 0);
  luashm_iter_run(&it, luashm_copy_loop(dst->itemsize), NULL);
}

void luashm_array_extent(const array *a, const unsigned char **lo, const unsigned char **hi) {
  const ptrdiff_t *st = array_strides(a);
  const unsigned char *p = array_data(a);
  ptrdiff_t down = 0, up = 0;
  int k;
  if (a->count == 0) {
    *lo = *hi = p;
    return;
  }
  for (k = 0; k < a->ndim; k++) {
    ptrdiff_t reach = st[k] * (ptrdiff_t)(a->shape[k] - 1);
    if (reach < 0)
      down += reach;
    else
      up += reach;
  }
  *lo = p + down;
  *hi = p + up + a->itemsize;
}

/* Element (i1..in) at p, 0-based. */
static unsigned char *element(const array *a, const size_t *idx) {
  unsigned char *p = array_data(a);
  int k;
  for (k = 0; k < a->ndim; k++) p += (ptrdiff_t)idx[k] * array_strides(a)[k];
  return p;
}

/* Copies the nested table at idx (dimension d) into the elements at p. */
static void copy_nested(lua_State *L, const array *a, int idx, int d, unsigned char *p,
                        size_t *flat) {
  size_t n = a->shape[d], k;
  if (lua_type(L, idx) != LUA_TTABLE)
    luashm_error(L, "array %s: copy: expected a table at depth %d, got a %s",
                 luashm_array_label(L, a), d + 1, luaL_typename(L, idx));
  if (lua_rawlen(L, idx) != n)
    luashm_error(L, "array %s: copy: a table at depth %d has %I items, the shape needs %I",
                 luashm_array_label(L, a), d + 1, (lua_Integer)lua_rawlen(L, idx), (lua_Integer)n);
  luaL_checkstack(L, 4, "array nested too deep");
  for (k = 0; k < n; k++) {
    unsigned char *q = p + (ptrdiff_t)k * array_strides(a)[d];
    lua_rawgeti(L, idx, (lua_Integer)k + 1);
    if (d + 1 < a->ndim) {
      copy_nested(L, a, lua_gettop(L), d + 1, q, flat);
    } else {
      int e = luashm_array_store(L, -1, a->dtype, q);
      if (e != LUASHM_OK) luashm_array_flat_error(L, a, e, -1, *flat);
      (*flat)++;
    }
    lua_pop(L, 1);
  }
}

/* Copies the flat table at idx into the elements of dimension d at p, in C order. */
static void copy_flat(lua_State *L, const array *a, int idx, int d, unsigned char *p,
                      size_t *flat) {
  size_t k;
  for (k = 0; k < a->shape[d]; k++) {
    unsigned char *q = p + (ptrdiff_t)k * array_strides(a)[d];
    if (d + 1 < a->ndim) {
      copy_flat(L, a, idx, d + 1, q, flat);
    } else {
      int e;
      lua_rawgeti(L, idx, (lua_Integer)++ * flat);
      e = luashm_array_store(L, -1, a->dtype, q);
      if (e != LUASHM_OK) luashm_array_flat_error(L, a, e, -1, *flat - 1);
      lua_pop(L, 1);
    }
  }
}

/* Only raw reads: no Lua code runs, so the storage cannot close underneath. */
void luashm_array_copytable(lua_State *L, const array *a, int idx) {
  size_t n = lua_rawlen(L, idx), flat = 0;
  int nested = a->ndim > 1 && lua_rawgeti(L, idx, 1) == LUA_TTABLE;
  if (a->ndim > 1) lua_pop(L, 1);
  if (nested || (a->ndim > 1 && n == a->shape[0] && n != a->count)) {
    copy_nested(L, a, idx, 0, array_data(a), &flat);
    return;
  }
  if (n != a->count)
    luashm_error(L, "array %s: copy: the table has %I values, the array %I",
                 luashm_array_label(L, a), (lua_Integer)n, (lua_Integer)a->count);
  if (n > 0) copy_flat(L, a, idx, 0, array_data(a), &flat);
}

/* ---------------------------------------------------------------------------------------
** Element access by full index
** ------------------------------------------------------------------------------------- */

/* The element of the full index at args first..first+ndim-1, or raises. */
static unsigned char *full_index(lua_State *L, const array *a, int first, int nargs,
                                 const char *op) {
  size_t idx[LUASHM_MAXDIMS];
  int k, bad = 0;
  if (nargs != a->ndim)
    luashm_error(L, "array %s: %s needs %d indexes, got %d", luashm_array_label(L, a), op, a->ndim,
                 nargs);
  for (k = 0; k < a->ndim; k++) {
    lua_Integer i = luaL_checkinteger(L, first + k);
    if (i < 1 || (lua_Unsigned)i > a->shape[k]) bad = 1;
    idx[k] = (size_t)i - 1;
  }
  if (bad) {
    luaL_Buffer b;
    const char *label = luashm_array_label(L, a);
    luaL_buffinit(L, &b);
    for (k = 0; k < a->ndim; k++) {
      lua_pushfstring(L, k ? ", %I" : "(%I", lua_tointeger(L, first + k));
      luaL_addvalue(&b);
    }
    luaL_addchar(&b, ')');
    luaL_pushresult(&b);
    luashm_array_pushshape(L, a->ndim, a->shape);
    luashm_error(L, "array %s: %s: index %s is out of range for shape %s", label, op,
                 lua_tostring(L, -2), lua_tostring(L, -1));
  }
  return element(a, idx);
}

static int array_get(lua_State *L) {
  array *a = luashm_array_check(L, 1);
  int top = lua_gettop(L), isint;
  lua_Unsigned i = (lua_Unsigned)lua_tointegerx(L, 2, &isint) - 1;
  if (LUASHM_LIKELY(top == 2 && a->ndim == 1 && isint && i < a->shape[0])) {
    luashm_array_push(L, a->dtype, array_data(a) + (ptrdiff_t)i * array_strides(a)[0]);
    return 1;
  }
  luashm_array_push(L, a->dtype, full_index(L, a, 2, top - 1, "get"));
  return 1;
}

static int array_set(lua_State *L) {
  array *a = luashm_array_check(L, 1);
  int top = lua_gettop(L), e, isint, k;
  lua_Unsigned i = (lua_Unsigned)lua_tointegerx(L, 2, &isint) - 1;
  luaL_Buffer b;
  if (LUASHM_LIKELY(top == 3 && a->ndim == 1 && isint && i < a->shape[0])) {
    unsigned char *p = array_data(a) + (ptrdiff_t)i * array_strides(a)[0];
    if (LUASHM_LIKELY(luashm_array_fast[a->dtype](L, 3, p))) return 0;
    e = luashm_array_store(L, 3, a->dtype, p);
    if (e == LUASHM_OK) return 0;
    return luashm_array_flat_error(L, a, e, 3, (size_t)i);
  }
  if (top < 2) luaL_checkany(L, 2);
  e = luashm_array_store(L, top, a->dtype, full_index(L, a, 2, top - 2, "set"));
  if (e == LUASHM_OK) return 0;
  luaL_buffinit(L, &b);
  for (k = 2; k < top; k++) {
    lua_pushfstring(L, k > 2 ? ", %I" : "at index (%I", lua_tointeger(L, k));
    luaL_addvalue(&b);
  }
  luaL_addchar(&b, ')');
  luaL_pushresult(&b);
  return luashm_array_value_error(L, a, e, top, lua_tostring(L, -1));
}

/* ---------------------------------------------------------------------------------------
** Views
** ------------------------------------------------------------------------------------- */

/* A range first..last by step of a dimension of n, string.sub's clamping: the first index
   (0-based) and the count. */
static size_t clamp_range(lua_Integer n, lua_Integer first, lua_Integer last, lua_Integer step,
                          lua_Integer *start) {
  size_t count;
  if (first < 0) first += n + 1;
  if (last < 0) last += n + 1;
  if (step > 0) {
    if (first < 1) first = 1;
    if (last > n) last = n;
    count = last >= first ? (size_t)((last - first) / step + 1) : 0;
  } else {
    if (first > n) first = n;
    if (last < 1) last = 1;
    count =
        first >= last ? (size_t)((lua_Unsigned)(first - last) / (0 - (lua_Unsigned)step) + 1) : 0;
  }
  *start = count > 0 ? first - 1 : 0; /* an empty range starts at the first element */
  return count;
}

/* a:slice(i [, j]): rows i..j of the first dimension, clamped like string.sub. */
static int array_slice(lua_State *L) {
  array *a = luashm_array_check(L, 1);
  lua_Integer i = luaL_checkinteger(L, 2), j = luaL_optinteger(L, 3, -1), start;
  size_t shape[LUASHM_MAXDIMS];
  memcpy(shape, a->shape, a->ndim * sizeof(size_t));
  shape[0] = clamp_range((lua_Integer)a->shape[0], i, j, 1, &start);
  luashm_array_view(L, 1, a->ndim, shape, array_strides(a),
                    a->offset + (size_t)(start * array_strides(a)[0]));
  return 1;
}

static lua_Integer spec_int(lua_State *L, const array *a, int t, int field, int d) {
  int isint;
  lua_Integer v;
  lua_rawgeti(L, t, field);
  v = lua_tointegerx(L, -1, &isint);
  if (!isint)
    luashm_error(L, "view %s: spec %d: item %d must be an integer, not a %s",
                 luashm_array_label(L, a), d + 1, field, luaL_typename(L, -1));
  lua_pop(L, 1);
  return v;
}

/* a:view(s1, s2, ...): an integer drops a dimension; {first, last [, step]} or {} ranges. */
static int array_view(lua_State *L) {
  array *a = luashm_array_check(L, 1);
  int nspec = lua_gettop(L) - 1, d, nd = 0;
  size_t shape[LUASHM_MAXDIMS];
  ptrdiff_t strides[LUASHM_MAXDIMS];
  const ptrdiff_t *st = array_strides(a);
  ptrdiff_t off = (ptrdiff_t)a->offset;
  if (nspec > a->ndim)
    return luashm_error(L, "view %s: %d specs for %d dimensions", luashm_array_label(L, a), nspec,
                        a->ndim);
  for (d = 0; d < a->ndim; d++) {
    lua_Integer n = (lua_Integer)a->shape[d], start = 0, step = 1;
    int arg = d + 2;
    if (d < nspec && lua_type(L, arg) == LUA_TNUMBER) {
      int isint;
      lua_Integer i = lua_tointegerx(L, arg, &isint);
      if (!isint)
        return luashm_error(L, "view %s: spec %d is not an integer", luashm_array_label(L, a),
                            d + 1);
      if (i < 0) i += n + 1;
      if (i < 1 || i > n)
        return luashm_error(L, "view %s: index %I is out of range for dimension %d of size %I",
                            luashm_array_label(L, a), lua_tointeger(L, arg), d + 1, n);
      off += (ptrdiff_t)(i - 1) * st[d];
      continue;
    }
    shape[nd] = a->shape[d];
    if (d < nspec && !lua_isnil(L, arg)) {
      size_t len;
      if (!lua_istable(L, arg))
        return luashm_error(L, "view %s: spec %d must be an integer or a table, not a %s",
                            luashm_array_label(L, a), d + 1, luaL_typename(L, arg));
      len = lua_rawlen(L, arg);
      if (len == 1 || len > 3)
        return luashm_error(L, "view %s: spec %d must be {}, {first, last} or {first, last, step}",
                            luashm_array_label(L, a), d + 1);
      if (len == 3 && (step = spec_int(L, a, arg, 3, d)) == 0)
        return luashm_error(L, "view %s: spec %d has step 0", luashm_array_label(L, a), d + 1);
      if (len >= 2)
        shape[nd] =
            clamp_range(n, spec_int(L, a, arg, 1, d), spec_int(L, a, arg, 2, d), step, &start);
    }
    /* A step only matters (and only fits) when it reaches a second element. */
    strides[nd] = shape[nd] > 1 ? st[d] * (ptrdiff_t)step : st[d];
    off += (ptrdiff_t)start * st[d];
    nd++;
  }
  if (nd == 0)
    return luashm_error(L, "view %s: every dimension is indexed (use get for one element)",
                        luashm_array_label(L, a));
  luashm_array_view(L, 1, nd, shape, strides, (size_t)off);
  return 1;
}

/* An axis argument: 1-based, negative from the end. */
int luashm_array_axis(lua_State *L, const array *a, lua_Integer ax, const char *op) {
  lua_Integer k = ax < 0 ? ax + a->ndim + 1 : ax;
  if (k < 1 || k > a->ndim)
    luashm_error(L, "%s %s: axis %I is out of range for %d dimensions", op,
                 luashm_array_label(L, a), ax, a->ndim);
  return (int)k - 1;
}

/* a:transpose([perm]): permuted axes (default reversed). */
static int array_transpose(lua_State *L) {
  array *a = luashm_array_check(L, 1);
  size_t shape[LUASHM_MAXDIMS];
  ptrdiff_t strides[LUASHM_MAXDIMS];
  int perm[LUASHM_MAXDIMS], seen[LUASHM_MAXDIMS] = {0}, d;
  if (lua_isnoneornil(L, 2)) {
    for (d = 0; d < a->ndim; d++) perm[d] = a->ndim - 1 - d;
  } else {
    luaL_checktype(L, 2, LUA_TTABLE);
    if (luaL_len(L, 2) != a->ndim)
      return luashm_error(L, "transpose %s: perm has %I axes for %d dimensions",
                          luashm_array_label(L, a), (lua_Integer)luaL_len(L, 2), a->ndim);
    for (d = 0; d < a->ndim; d++) {
      int isint;
      lua_Integer ax;
      lua_geti(L, 2, d + 1);
      ax = lua_tointegerx(L, -1, &isint);
      if (!isint)
        return luashm_error(L, "transpose %s: perm[%d] is not an integer", luashm_array_label(L, a),
                            d + 1);
      perm[d] = luashm_array_axis(L, a, ax, "transpose");
      if (seen[perm[d]]++)
        return luashm_error(L, "transpose %s: axis %d is repeated in perm",
                            luashm_array_label(L, a), perm[d] + 1);
      lua_pop(L, 1);
    }
  }
  for (d = 0; d < a->ndim; d++) {
    shape[d] = a->shape[perm[d]];
    strides[d] = array_strides(a)[perm[d]];
  }
  luashm_array_view(L, 1, a->ndim, shape, strides, a->offset);
  return 1;
}

/* a:reshape(shape): one dimension may be -1 (inferred), as in NumPy; contiguous views only. */
static int array_reshape(lua_State *L) {
  array *a = luashm_array_check(L, 1);
  size_t shape[LUASHM_MAXDIMS], known = 1;
  int ndim = luashm_array_checkshape(L, 2, shape, 1), k, wild = -1, ok = 1;
  if (!luashm_array_contiguous(a))
    return luashm_error(L, "reshape %s: the view is not contiguous (clone it first)",
                        luashm_array_label(L, a));
  for (k = 0; k < ndim; k++) {
    if (shape[k] == SIZE_MAX) {
      if (wild >= 0)
        luashm_error(L, "array %s: reshape: more than one -1", luashm_array_label(L, a));
      wild = k;
    } else if (shape[k] != 0 && known > a->count / shape[k]) {
      ok = 0; /* the product already exceeds the element count */
    } else {
      known *= shape[k];
    }
  }
  ok = wild >= 0 ? ok && known != 0 && a->count % known == 0 : ok && known == a->count;
  if (!ok) {
    const char *label = luashm_array_label(L, a);
    return luashm_error(L, "array %s: reshape: cannot reshape %I elements into shape %s", label,
                        (lua_Integer)a->count, luashm_array_pushshape(L, ndim, shape));
  }
  if (wild >= 0) shape[wild] = a->count / known;
  luashm_array_view(L, 1, ndim, shape, NULL, a->offset);
  return 1;
}

static const char *const clone_options[] = {LUASHM_BLOCK_OPTIONS, "private", NULL};

/* a:clone([opts]): a C-contiguous copy, shared (opts: name, track, mode) or private. */
static int array_clone(lua_State *L) {
  array *a = luashm_array_check(L, 1), *c;
  int hasopts = luashm_checkoptions(L, 2, "clone", clone_options);
  if (hasopts && luashm_optboolfield(L, 2, "private", 0))
    c = luashm_array_private(L, a->dtype, a->ndim, a->shape, 0);
  else
    c = luashm_array_shared(L, a->dtype, a->ndim, a->shape, hasopts ? 2 : 0);
  luashm_array_copyraw(c, a);
  return 1;
}

/* ---------------------------------------------------------------------------------------
** Out to Lua and files
** ------------------------------------------------------------------------------------- */

static void push_nested(lua_State *L, const array *a, int d, const unsigned char *p) {
  size_t n = a->shape[d], k;
  luaL_checkstack(L, 3, "array nested too deep");
  lua_createtable(L, (int)(n < INT32_MAX ? n : 0), 0);
  for (k = 0; k < n; k++) {
    const unsigned char *q = p + (ptrdiff_t)k * array_strides(a)[d];
    if (d + 1 < a->ndim)
      push_nested(L, a, d + 1, q);
    else
      luashm_array_push(L, a->dtype, q);
    lua_rawseti(L, -2, (lua_Integer)k + 1);
  }
}

static int array_totable(lua_State *L) {
  array *a = luashm_array_check(L, 1);
  push_nested(L, a, 0, array_data(a));
  return 1;
}

static int array_save(lua_State *L) {
  char err[LUASHM_ERRLEN];
  array *a = luashm_array_check(L, 1);
  const char *path = luaL_checkstring(L, 2);
  if (!luashm_array_contiguous(a)) {
    array *c = luashm_array_private(L, a->dtype, a->ndim, a->shape, 0);
    luashm_array_copyraw(c, a);
    a = c;
  }
  if (luashm_npy_save(path, a->dtype, a->ndim, a->shape, array_data(a), a->count * a->itemsize,
                      err) != 0)
    return luashm_error(L, "%s", err);
  return 0;
}

/* NumPy prints at most 1000 elements, 3 at each end of every dimension beyond that. */
#define PRINT_THRESHOLD 1000
#define EDGE 3

static void add_values(lua_State *L, luaL_Buffer *b, const array *a, int d, const unsigned char *p,
                       int elide) {
  size_t n = a->shape[d], k;
  luaL_addchar(b, '[');
  for (k = 0; k < n; k++) {
    const unsigned char *q = p + (ptrdiff_t)k * array_strides(a)[d];
    if (elide && n > 2 * EDGE && k == EDGE) {
      luaL_addstring(b, ", ...");
      k = n - EDGE - 1;
      continue;
    }
    if (k) luaL_addstring(b, ", ");
    if (d + 1 < a->ndim) {
      add_values(L, b, a, d + 1, q, elide);
    } else {
      luashm_array_push(L, a->dtype, q);
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

int luashm_array_tostring(lua_State *L) {
  array *a = luashm_array_to(L, 1);
  const char *label = luashm_array_label(L, a);
  luaL_Buffer b;
  lua_pushfstring(L, "luashm.Array %s %s %s ", luashm_dtype_names[a->dtype],
                  luashm_array_pushshape(L, a->ndim, a->shape), label);
  luaL_buffinit(L, &b);
  if (*a->datap == NULL)
    luaL_addstring(&b, "(closed)");
  else
    add_values(L, &b, a, 0, array_data(a), elide(a));
  luaL_pushresult(&b);
  lua_concat(L, 2);
  return 1;
}

const luaL_Reg luashm_array_view_methods[] = {{"get", array_get},
                                              {"set", array_set},
                                              {"slice", array_slice},
                                              {"view", array_view},
                                              {"transpose", array_transpose},
                                              {"reshape", array_reshape},
                                              {"clone", array_clone},
                                              {"totable", array_totable},
                                              {"save", array_save},
                                              {NULL, NULL}};
