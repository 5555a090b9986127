/*
** The Array's reductions (sum prod min max mean var std argmin argmax any all count, over all
** elements or along an axis into `out` or a new private array), running sums, sorting, dot,
** and atomics. Along an axis, the walk follows memory: when the axis is the innermost in
** memory each output element reduces one row; otherwise whole slices are combined into an
** accumulator elementwise (NumPy's way for an outer axis), so that every pass reads memory in
** order and vectorises.
*/
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "array.h"

/* The reductions as the user names them. */
enum { SUM, PROD, MIN, MAX, MEAN, VAR, STD, ARGMIN, ARGMAX, ANY, ALL, COUNT };
static const char *const reduce_names[] = {"sum", "prod",   "min",    "max", "mean", "var",
                                           "std", "argmin", "argmax", "any", "all",  "count"};
/* The kernel reduction each uses. */
static const int kernel_op[] = {LUASHM_RSUM,    LUASHM_RPROD,  LUASHM_RMIN,   LUASHM_RMAX,
                                LUASHM_RSUMF,   LUASHM_RSUMF,  LUASHM_RSUMF,  LUASHM_RARGMIN,
                                LUASHM_RARGMAX, LUASHM_RCOUNT, LUASHM_RCOUNT, LUASHM_RCOUNT};

/* ---------------------------------------------------------------------------------------
** Over every element
** ------------------------------------------------------------------------------------- */

typedef struct whole {
  int op, dt;
  double mean;
  luashm_acc acc;
  double ssd;
} whole;

static int whole_loop(unsigned char *const *args, size_t n, const ptrdiff_t *steps, void *ctx) {
  whole *w = (whole *)ctx;
  luashm_reduce(w->op, w->dt, args[0], n, steps[0], &w->acc);
  return 0;
}

static int sqdev_loop(unsigned char *const *args, size_t n, const ptrdiff_t *steps, void *ctx) {
  whole *w = (whole *)ctx;
  w->ssd += luashm_sqdev(w->dt, args[0], n, steps[0], w->mean);
  return 0;
}

static void walk(const array *a, luashm_loop loop, whole *w, int flags) {
  luashm_iter it;
  luashm_array_iter(&it, 1, a);
  luashm_iter_prepare(&it, flags);
  luashm_iter_run(&it, loop, w);
}

/* var = ssd / max(n - ddof, 0), as NumPy divides. */
static double variance(double ssd, size_t n, lua_Number ddof) {
  double d = (double)n - (double)ddof;
  return ssd / (d > 0 ? d : 0);
}

/* Pushes the reduction of every element of a as a Lua value. */
static int reduce_all(lua_State *L, const array *a, int kind, lua_Number ddof) {
  whole w;
  memset(&w, 0, sizeof w);
  w.op = kernel_op[kind];
  w.dt = a->dtype;
  if (a->count == 0 && (kind == MIN || kind == MAX || kind == ARGMIN || kind == ARGMAX))
    return luashm_error(L, "%s %s: %s of an empty array", reduce_names[kind],
                        luashm_array_label(L, a), reduce_names[kind]);
  walk(a, whole_loop, &w, kind == ARGMIN || kind == ARGMAX ? LUASHM_ITER_KEEPORDER : 0);
  switch (kind) {
    case SUM:
    case PROD:
      if (LUASHM_ISFLOAT(a->dtype))
        lua_pushnumber(L, (lua_Number)w.acc.d);
      else
        lua_pushinteger(L, (lua_Integer)w.acc.u);
      break;
    case MIN:
    case MAX: luashm_array_push(L, a->dtype, &w.acc.best); break;
    case MEAN: lua_pushnumber(L, (lua_Number)(a->count ? w.acc.d / (double)a->count : NAN)); break;
    case VAR:
    case STD:
      w.mean = a->count ? w.acc.d / (double)a->count : NAN;
      walk(a, sqdev_loop, &w, 0);
      w.ssd = a->count ? variance(w.ssd, a->count, ddof) : NAN;
      lua_pushnumber(L, (lua_Number)(kind == STD ? sqrt(w.ssd) : w.ssd));
      break;
    case ARGMIN:
    case ARGMAX: lua_pushinteger(L, (lua_Integer)w.acc.idx + 1); break;
    case ANY: lua_pushboolean(L, w.acc.u > 0); break;
    case ALL: lua_pushboolean(L, w.acc.u == a->count); break;
    default: lua_pushinteger(L, (lua_Integer)w.acc.u);
  }
  return 1;
}

/* ---------------------------------------------------------------------------------------
** Along an axis
** ------------------------------------------------------------------------------------- */

/* The dtype of the result along an axis (NumPy's), and of the accumulator it is built in. */
static int result_dtype(int kind, int dt) {
  switch (kind) {
    case SUM:
    case PROD:
      if (LUASHM_ISFLOAT(dt)) return dt;
      return luashm_dtype_kinds[dt] == LUASHM_KIND_UINT ? LUASHM_U64 : LUASHM_I64;
    case MIN:
    case MAX: return dt;
    case MEAN:
    case VAR:
    case STD: return LUASHM_ISFLOAT(dt) ? dt : LUASHM_F64;
    case ANY:
    case ALL: return LUASHM_BOOL;
    default: return LUASHM_I64;
  }
}

static int acc_dtype(int kind, int dt) {
  switch (kind) {
    case SUM:
    case PROD: return LUASHM_ISFLOAT(dt) ? LUASHM_F64 : LUASHM_I64;
    case MIN:
    case MAX: return dt;
    case MEAN:
    case VAR:
    case STD: return LUASHM_F64;
    case ANY:
    case ALL: return LUASHM_BOOL;
    default: return LUASHM_I64;
  }
}

typedef struct axis_job {
  const array *a;
  int kind, ax;
  size_t n;       /* length of the axis */
  ptrdiff_t step; /* its stride */
  lua_Number ddof;
  const unsigned char *mean; /* var/std along slices: the means (f64, like the accumulator) */
} axis_job;

/* An iterator over the reduced shape: operand 0 the accumulator (contiguous, itemsize accsz),
   operand 1 the input at its first element along the axis; more operands set by the caller. */
static void reduced_iter(luashm_iter *it, const axis_job *j, unsigned char *acc, size_t accsz,
                         int nop) {
  const array *a = j->a;
  ptrdiff_t cs[LUASHM_MAXDIMS];
  int d, e = 0;
  it->nop = nop;
  it->ndim = a->ndim - 1;
  for (d = 0; d < a->ndim; d++) {
    if (d == j->ax) continue;
    it->shape[e] = a->shape[d];
    it->strides[1][e] = array_strides(a)[d];
    e++;
  }
  luashm_array_cstrides(it->ndim, it->shape, accsz, cs);
  for (d = 0; d < it->ndim; d++) it->strides[0][d] = cs[d];
  it->data[0] = acc;
  it->data[1] = array_data(a);
}

/* Rows: each output element reduces its row along the axis. */
static int row_loop(unsigned char *const *args, size_t n, const ptrdiff_t *steps, void *ctx) {
  const axis_job *j = (const axis_job *)ctx;
  int dt = j->a->dtype;
  size_t i;
  for (i = 0; i < n; i++) {
    unsigned char *out = args[0] + (ptrdiff_t)i * steps[0];
    const unsigned char *row = args[1] + (ptrdiff_t)i * steps[1];
    luashm_acc acc;
    double m;
    memset(&acc, 0, sizeof acc);
    luashm_reduce(kernel_op[j->kind], dt, row, j->n, j->step, &acc);
    switch (j->kind) {
      case SUM:
      case PROD:
        if (LUASHM_ISFLOAT(dt))
          memcpy(out, &acc.d, 8);
        else
          memcpy(out, &acc.u, 8);
        break;
      case MIN:
      case MAX: memcpy(out, &acc.best, luashm_dtype_sizes[dt]); break;
      case MEAN:
        m = j->n ? acc.d / (double)j->n : NAN;
        memcpy(out, &m, 8);
        break;
      case VAR:
      case STD:
        m = j->n ? acc.d / (double)j->n : NAN;
        m = j->n ? variance(luashm_sqdev(dt, row, j->n, j->step, m), j->n, j->ddof) : NAN;
        if (j->kind == STD) m = sqrt(m);
        memcpy(out, &m, 8);
        break;
      case ARGMIN:
      case ARGMAX: *(int64_t *)out = (int64_t)acc.idx + 1; break;
      case ANY: *out = acc.u > 0; break;
      case ALL: *out = acc.u == j->n; break;
      default: *(int64_t *)out = (int64_t)acc.u;
    }
  }
  return 0;
}

/* Slices: the input's slices first..n-1 along the axis combined into acc one after another
   by loop (operands acc, in; or acc, extra, in when extra is given: the argmin/argmax
   positions, or the means of var/std). */
static void by_slices(const axis_job *j, luashm_loop loop, unsigned char *acc, size_t accsz,
                      unsigned char *extra, size_t first) {
  size_t i;
  for (i = first; i < j->n; i++) {
    luashm_iter it;
    int64_t at = (int64_t)i + 1;
    reduced_iter(&it, j, acc, accsz, extra ? 3 : 2);
    it.data[1] += (ptrdiff_t)i * j->step;
    if (extra != NULL) {
      ptrdiff_t cs[LUASHM_MAXDIMS];
      int d;
      luashm_array_cstrides(it.ndim, it.shape, 8, cs);
      for (d = 0; d < it.ndim; d++) {
        it.strides[2][d] = it.strides[1][d];
        it.strides[1][d] = cs[d];
      }
      it.data[2] = it.data[1];
      it.data[1] = extra;
    }
    luashm_iter_prepare(&it, 0);
    luashm_iter_run(&it, loop, &at);
  }
}

/* A scratch buffer that the collector frees, whatever error comes. */
static unsigned char *scratch(lua_State *L, size_t n) {
  return (unsigned char *)lua_newuserdatauv(L, n ? n : 1, 0);
}

/* Computes along j->ax into a contiguous buffer of the reduced shape; returns its dtype. */
static int reduce_into(lua_State *L, const axis_job *j, unsigned char *buf, size_t m) {
  const array *a = j->a;
  int dt = a->dtype, kind = j->kind, adt = acc_dtype(kind, dt), d;
  size_t accsz = luashm_dtype_sizes[adt], i;
  int rows = j->n > 1;
  luashm_iter it;
  for (d = 0; d < a->ndim; d++) {
    ptrdiff_t s = array_strides(a)[d];
    if (d != j->ax && a->shape[d] > 1 && (s < 0 ? -s : s) < (j->step < 0 ? -j->step : j->step))
      rows = 0;
  }
  if (rows || j->n <= 1) {
    reduced_iter(&it, j, buf, accsz, 2);
    luashm_iter_prepare(&it, 0);
    luashm_iter_run(&it, row_loop, (void *)j);
    return adt;
  }
  switch (kind) {
    case MIN:
    case MAX:
      reduced_iter(&it, j, buf, accsz, 2); /* the first slice starts the running best */
      luashm_iter_prepare(&it, 0);
      luashm_iter_run(&it, luashm_copy_loop(accsz), NULL);
      by_slices(j, luashm_accum_loop(kernel_op[kind], dt), buf, accsz, NULL, 1);
      return adt;
    case ARGMIN:
    case ARGMAX: {
      unsigned char *best = scratch(L, m * a->itemsize);
      reduced_iter(&it, j, best, a->itemsize, 2);
      luashm_iter_prepare(&it, 0);
      luashm_iter_run(&it, luashm_copy_loop(a->itemsize), NULL);
      for (i = 0; i < m; i++) ((int64_t *)buf)[i] = 1;
      by_slices(j, luashm_accum_loop(kernel_op[kind], dt), best, a->itemsize, buf, 1);
      lua_pop(L, 1);
      return LUASHM_I64;
    }
    case VAR:
    case STD: {
      unsigned char *mean = scratch(L, m * 8);
      axis_job mj = *j;
      memset(mean, 0, m * 8);
      by_slices(j, luashm_accum_loop(LUASHM_RSUMF, dt), mean, 8, NULL, 0);
      for (i = 0; i < m; i++) ((double *)mean)[i] /= (double)j->n;
      mj.mean = mean;
      memset(buf, 0, m * 8);
      by_slices(&mj, luashm_sqdev_loop(dt), buf, 8, mean, 0);
      for (i = 0; i < m; i++) {
        double v = variance(((double *)buf)[i], j->n, j->ddof);
        ((double *)buf)[i] = kind == STD ? sqrt(v) : v;
      }
      lua_pop(L, 1);
      return LUASHM_F64;
    }
    case PROD:
      for (i = 0; i < m; i++) {
        if (adt == LUASHM_F64)
          ((double *)buf)[i] = 1;
        else
          ((int64_t *)buf)[i] = 1;
      }
      by_slices(j, luashm_accum_loop(LUASHM_RPROD, dt), buf, 8, NULL, 0);
      return adt;
    default: /* sum, mean, any, all, count */
      memset(buf, 0, m * 8);
      by_slices(j, luashm_accum_loop(kernel_op[kind], dt), buf, 8, NULL, 0);
      if (kind == MEAN)
        for (i = 0; i < m; i++) ((double *)buf)[i] /= (double)j->n;
      if (kind == ANY || kind == ALL)
        for (i = 0; i < m; i++)
          ((int64_t *)buf)[i] =
              kind == ANY ? ((int64_t *)buf)[i] > 0 : (size_t)((int64_t *)buf)[i] == j->n;
      return kind == MEAN ? LUASHM_F64 : kind == SUM ? adt : LUASHM_I64;
  }
}

/* a:<kind>(axis [, out]): an Array of the reduced shape, in out or a new private array. */
static int reduce_axis(lua_State *L, array *a, int kind, int ax, int outidx, lua_Number ddof) {
  const char *name = reduce_names[kind];
  size_t shape[LUASHM_MAXDIMS], m = 1;
  int d, e = 0, rd = result_dtype(kind, a->dtype), fdt;
  axis_job j;
  array *out;
  unsigned char *buf;
  luashm_iter it;
  for (d = 0; d < a->ndim; d++)
    if (d != ax) m *= (shape[e++] = a->shape[d]);
  if (a->shape[ax] == 0 && m > 0 &&
      (kind == MIN || kind == MAX || kind == ARGMIN || kind == ARGMAX))
    return luashm_error(L, "%s %s: %s along an empty axis %d", name, luashm_array_label(L, a), name,
                        ax + 1);
  if (!lua_isnoneornil(L, outidx)) {
    luashm_object *o = luashm_toobject(L, outidx);
    if (o == NULL || o->kind != &luashm_kind_array) luaL_typeerror(L, outidx, "Array");
    out = luashm_array_check(L, outidx);
    if (out->ndim != a->ndim - 1 || memcmp(out->shape, shape, e * sizeof(size_t)) != 0) {
      const char *label = luashm_array_label(L, a);
      const char *want = luashm_array_pushshape(L, e, shape);
      return luashm_error(L, "%s %s: out has shape %s, the result %s", name, label,
                          luashm_array_pushshape(L, out->ndim, out->shape), want);
    }
    if (LUASHM_ISINTLIKE(out->dtype) && LUASHM_ISFLOAT(rd))
      return luashm_error(L, "%s %s: cannot cast the %s result to the integer out (%s)", name,
                          luashm_array_label(L, a), luashm_dtype_names[rd],
                          luashm_dtype_names[out->dtype]);
    lua_pushvalue(L, outidx);
  } else {
    out = luashm_array_private(L, rd, e, shape, 0);
  }
  j.a = a;
  j.kind = kind;
  j.ax = ax;
  j.n = a->shape[ax];
  j.step = array_strides(a)[ax];
  j.ddof = ddof;
  j.mean = NULL;
  buf = scratch(L, m * 8);
  fdt = reduce_into(L, &j, buf, m);
  /* The buffer (contiguous, fdt) into the output, cast as needed. */
  it.nop = 2;
  it.ndim = e;
  memcpy(it.shape, shape, e * sizeof(size_t));
  luashm_array_operand(&it, 0, out);
  it.data[1] = buf;
  luashm_array_cstrides(e, shape, luashm_dtype_sizes[fdt], it.strides[1]);
  luashm_iter_prepare(&it, 0);
  luashm_iter_run(
      &it, fdt == out->dtype ? luashm_copy_loop(out->itemsize) : luashm_cast_loop(out->dtype, fdt),
      NULL);
  lua_pop(L, 1);
  return 1;
}

/* a:<kind>([axis [, out [, ddof]]]) */
static int reduce_method(lua_State *L, int kind) {
  array *a = luashm_array_check(L, 1);
  lua_Number ddof = kind == VAR || kind == STD ? luaL_optnumber(L, 4, 0) : 0;
  int ax;
  if (lua_isnoneornil(L, 2)) {
    if (!lua_isnoneornil(L, 3))
      return luashm_error(L, "%s %s: out needs an axis", reduce_names[kind],
                          luashm_array_label(L, a));
    return reduce_all(L, a, kind, ddof);
  }
  ax = luashm_array_axis(L, a, luaL_checkinteger(L, 2), reduce_names[kind]);
  if (a->ndim == 1) {
    if (!lua_isnoneornil(L, 3))
      return luashm_error(L, "%s %s: the reduction of a 1-d array is a number; it takes no out",
                          reduce_names[kind], luashm_array_label(L, a));
    return reduce_all(L, a, kind, ddof);
  }
  return reduce_axis(L, a, kind, ax, 3, ddof);
}

/* ---------------------------------------------------------------------------------------
** Running sums, sorting, dot
** ------------------------------------------------------------------------------------- */

/* Calls fn on every row along axis ax of a (each output position of the other dimensions). */
typedef struct row_job {
  const array *a;
  size_t n;
  ptrdiff_t step;
  int64_t *idx; /* argsort: the result's rows */
  ptrdiff_t istep;
  unsigned char *tmp; /* a contiguous row, for strided rows */
  int failed;
} row_job;

static void each_row(const array *a, int ax, luashm_loop fn, row_job *r, unsigned char *second,
                     const ptrdiff_t *second_strides) {
  luashm_iter it;
  int d, e = 0;
  it.nop = second ? 2 : 1;
  for (d = 0; d < a->ndim; d++) {
    if (d == ax) continue;
    it.shape[e] = a->shape[d];
    it.strides[0][e] = array_strides(a)[d];
    if (second) it.strides[1][e] = second_strides[d];
    e++;
  }
  it.ndim = e;
  it.data[0] = array_data(a);
  it.data[1] = second;
  r->a = a;
  r->n = a->shape[ax];
  r->step = array_strides(a)[ax];
  luashm_iter_prepare(&it, 0);
  luashm_iter_run(&it, fn, r);
}

static int cumsum_row(unsigned char *const *args, size_t n, const ptrdiff_t *steps, void *ctx) {
  row_job *r = (row_job *)ctx;
  size_t i;
  for (i = 0; i < n; i++) {
    uint64_t carry = 0;
    luashm_cumsum(r->a->dtype, args[0] + (ptrdiff_t)i * steps[0], r->n, r->step, &carry);
  }
  return 0;
}

static int cumsum_flat(unsigned char *const *args, size_t n, const ptrdiff_t *steps, void *ctx) {
  luashm_cumsum(*(const int *)((const void **)ctx)[0], args[0], n, steps[0],
                (uint64_t *)((void **)ctx)[1]);
  return 0;
}

/* a:cumsum([axis]): in place; without an axis over the flat C order. */
static int array_cumsum(lua_State *L) {
  array *a = luashm_array_check(L, 1);
  row_job r;
  int ax;
  memset(&r, 0, sizeof r);
  if (lua_isnoneornil(L, 2)) {
    luashm_iter it;
    uint64_t carry = 0;
    int dt = a->dtype;
    void *ctx[2] = {&dt, &carry};
    luashm_array_iter(&it, 1, a);
    luashm_iter_prepare(&it, LUASHM_ITER_KEEPORDER);
    luashm_iter_run(&it, cumsum_flat, ctx);
  } else {
    ax = luashm_array_axis(L, a, luaL_checkinteger(L, 2), "cumsum");
    each_row(a, ax, cumsum_row, &r, NULL, NULL);
  }
  lua_settop(L, 1);
  return 1;
}

static int sort_row(unsigned char *const *args, size_t n, const ptrdiff_t *steps, void *ctx) {
  row_job *r = (row_job *)ctx;
  size_t i, k, isz = r->a->itemsize;
  for (i = 0; i < n; i++) {
    unsigned char *row = args[0] + (ptrdiff_t)i * steps[0];
    if (r->step == (ptrdiff_t)isz) {
      r->failed |= luashm_sort(r->a->dtype, row, r->n);
      continue;
    }
    for (k = 0; k < r->n; k++) memcpy(r->tmp + k * isz, row + (ptrdiff_t)k * r->step, isz);
    r->failed |= luashm_sort(r->a->dtype, r->tmp, r->n);
    for (k = 0; k < r->n; k++) memcpy(row + (ptrdiff_t)k * r->step, r->tmp + k * isz, isz);
  }
  return 0;
}

static int argsort_row(unsigned char *const *args, size_t n, const ptrdiff_t *steps, void *ctx) {
  row_job *r = (row_job *)ctx;
  size_t i, k;
  for (i = 0; i < n; i++) {
    unsigned char *out = args[1] + (ptrdiff_t)i * steps[1];
    int64_t *idx = r->istep == 8 ? (int64_t *)out : (int64_t *)r->tmp;
    r->failed |= luashm_argsort(r->a->dtype, args[0] + (ptrdiff_t)i * steps[0], r->n, r->step, idx);
    if (r->istep != 8)
      for (k = 0; k < r->n; k++) *(int64_t *)(out + (ptrdiff_t)k * r->istep) = idx[k];
  }
  return 0;
}

/* a:sort([axis]): in place, ascending, NaN last; the last axis by default. */
static int array_sort(lua_State *L) {
  array *a = luashm_array_check(L, 1);
  int ax = luashm_array_axis(L, a, luaL_optinteger(L, 2, -1), "sort");
  row_job r;
  memset(&r, 0, sizeof r);
  r.tmp = scratch(L, a->shape[ax] * a->itemsize);
  each_row(a, ax, sort_row, &r, NULL, NULL);
  if (r.failed) return luashm_error(L, "sort %s: out of memory", luashm_array_label(L, a));
  lua_settop(L, 1);
  return 1;
}

/* a:argsort([axis]): a private i64 array of 1-based positions (stable). */
static int array_argsort(lua_State *L) {
  array *a = luashm_array_check(L, 1), *res;
  int ax = luashm_array_axis(L, a, luaL_optinteger(L, 2, -1), "argsort");
  row_job r;
  memset(&r, 0, sizeof r);
  res = luashm_array_private(L, LUASHM_I64, a->ndim, a->shape, 0);
  r.istep = array_strides(res)[ax];
  r.idx = (int64_t *)array_data(res);
  r.tmp = scratch(L, a->shape[ax] * 8);
  each_row(a, ax, argsort_row, &r, array_data(res), array_strides(res));
  if (r.failed) return luashm_error(L, "argsort %s: out of memory", luashm_array_label(L, a));
  lua_pop(L, 1);
  return 1;
}

/* a:dot(b): 1-d by 1-d, computed in NumPy's result type. */
static int array_dot(lua_State *L) {
  array *a = luashm_array_check(L, 1), *b;
  luashm_object *o = luashm_toobject(L, 2);
  luashm_optype t[2];
  int64_t iv;
  double dv;
  if (o == NULL || o->kind != &luashm_kind_array) luaL_typeerror(L, 2, "Array");
  b = luashm_array_check(L, 2);
  if (a->ndim != 1 || b->ndim != 1 || a->shape[0] != b->shape[0]) {
    const char *label = luashm_array_label(L, a);
    const char *sa = luashm_array_pushshape(L, a->ndim, a->shape);
    return luashm_error(L, "dot %s: needs two 1-d arrays of the same length, not %s and %s", label,
                        sa, luashm_array_pushshape(L, b->ndim, b->shape));
  }
  memset(t, 0, sizeof t);
  t[0].dtype = a->dtype;
  t[1].dtype = b->dtype;
  {
    int ct = luashm_result_type(2, t);
    if (luashm_dot(ct, a->dtype, array_data(a), array_strides(a)[0], b->dtype, array_data(b),
                   array_strides(b)[0], a->count, &iv, &dv))
      lua_pushnumber(L, (lua_Number)dv);
    else if (ct == LUASHM_BOOL)
      lua_pushboolean(L, iv != 0);
    else
      lua_pushinteger(L, (lua_Integer)iv);
  }
  return 1;
}

/* ---------------------------------------------------------------------------------------
** Atomics (sequentially consistent, flat C-order index)
** ------------------------------------------------------------------------------------- */

static unsigned char *atomic_slot(lua_State *L, const array *a, const char *op, int floats) {
  lua_Integer i = luaL_checkinteger(L, 2);
  size_t flat;
  unsigned char *p = array_data(a);
  int d;
  if (!((a->dtype >= LUASHM_I32 && a->dtype <= LUASHM_U64) ||
        (floats && (a->dtype == LUASHM_F32 || a->dtype == LUASHM_F64))))
    luashm_error(L, "array %s: %s needs dtype i32, u32, i64 or u64%s, not %s",
                 luashm_array_label(L, a), op, floats ? ", f32 or f64" : "",
                 luashm_dtype_names[a->dtype]);
  if (i < 1 || (lua_Unsigned)i > a->count)
    luashm_error(L, "array %s: %s: index %I is out of range (1..%I)", luashm_array_label(L, a), op,
                 i, (lua_Integer)a->count);
  flat = (size_t)(i - 1);
  for (d = a->ndim - 1; d >= 0; d--) {
    p += (ptrdiff_t)(flat % a->shape[d]) * array_strides(a)[d];
    flat /= a->shape[d];
  }
  return p;
}

/* The number at idx for a's dtype (value rules); wrap: any integer, modulo 2^bits. */
static void atomic_value(lua_State *L, const array *a, int idx, uint64_t *out, int wrap,
                         const char *op) {
  int e = LUASHM_OK;
  if (lua_type(L, idx) != LUA_TNUMBER) luaL_typeerror(L, idx, "number");
  *out = 0;
  if (wrap && !LUASHM_ISFLOAT(a->dtype)) {
    int64_t v;
    if (lua_isinteger(L, idx)) {
      v = (int64_t)lua_tointeger(L, idx);
    } else {
      double d = (double)lua_tonumber(L, idx);
      if (!(d == floor(d)))
        e = LUASHM_ENOTINT;
      else if (!(d >= -0x1p63 && d < 0x1p64))
        e = LUASHM_ERANGE;
      v = e != LUASHM_OK ? 0 : d < 0x1p63 ? (int64_t)d : (int64_t)(uint64_t)d;
    }
    memcpy(out, &v, sizeof v);
  } else {
    e = luashm_array_store(L, idx, a->dtype, out);
  }
  if (e != LUASHM_OK) {
    lua_pushfstring(L, "for %s", op);
    luashm_array_value_error(L, a, e, idx, lua_tostring(L, -1));
  }
}

static int array_atomic_load(lua_State *L) {
  array *a = luashm_array_check(L, 1);
  unsigned char *p = atomic_slot(L, a, "atomic_load", 0);
  uint64_t v = a->itemsize == 4 ? __atomic_load_n((uint32_t *)p, __ATOMIC_SEQ_CST)
                                : __atomic_load_n((uint64_t *)p, __ATOMIC_SEQ_CST);
  luashm_array_push(L, a->dtype, &v);
  return 1;
}

static int array_atomic_store(lua_State *L) {
  array *a = luashm_array_check(L, 1);
  unsigned char *p = atomic_slot(L, a, "atomic_store", 0);
  uint64_t v;
  atomic_value(L, a, 3, &v, 0, "atomic_store");
  if (a->itemsize == 4)
    __atomic_store_n((uint32_t *)p, (uint32_t)v, __ATOMIC_SEQ_CST);
  else
    __atomic_store_n((uint64_t *)p, v, __ATOMIC_SEQ_CST);
  return 0;
}

/* A float add by compare-and-swap on its bits (U: the unsigned type of T's size): the sum is
   stored only if no other process changed the element meanwhile, else it is tried again.
   Returns the old bits. v holds the addend's bits. */
#define CAS_ADD(N, T, U)                                                                          \
  static uint64_t cas_add_##N(unsigned char *p, uint64_t v) {                                     \
    T add, cur, sum;                                                                              \
    U want, neu;                                                                                  \
    memcpy(&add, &v, sizeof add);                                                                 \
    want = __atomic_load_n((U *)p, __ATOMIC_SEQ_CST);                                             \
    do {                                                                                          \
      memcpy(&cur, &want, sizeof cur);                                                            \
      sum = cur + add;                                                                            \
      memcpy(&neu, &sum, sizeof neu);                                                             \
    } while (                                                                                     \
        !__atomic_compare_exchange_n((U *)p, &want, neu, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)); \
    return want;                                                                                  \
  }
CAS_ADD(f64, double, uint64_t)
CAS_ADD(f32, float, uint32_t)

/* Returns the old value; integers wrap modulo 2^bits; floats add in a compare-and-swap loop. */
static int array_atomic_add(lua_State *L) {
  array *a = luashm_array_check(L, 1);
  unsigned char *p = atomic_slot(L, a, "atomic_add", 1);
  uint64_t v, old;
  atomic_value(L, a, 3, &v, 1, "atomic_add");
  if (a->dtype == LUASHM_F64) {
    old = cas_add_f64(p, v);
  } else if (a->dtype == LUASHM_F32) {
    old = cas_add_f32(p, v);
  } else if (a->itemsize == 4) {
    old = __atomic_fetch_add((uint32_t *)p, (uint32_t)v, __ATOMIC_SEQ_CST);
  } else {
    old = __atomic_fetch_add((uint64_t *)p, v, __ATOMIC_SEQ_CST);
  }
  luashm_array_push(L, a->dtype, &old);
  return 1;
}

/* a:cas(i, expected, new): true, or false and the current value. */
static int array_cas(lua_State *L) {
  array *a = luashm_array_check(L, 1);
  unsigned char *p = atomic_slot(L, a, "cas", 0);
  uint64_t want, neu;
  int ok;
  atomic_value(L, a, 3, &want, 0, "cas");
  atomic_value(L, a, 4, &neu, 0, "cas");
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
  luashm_array_push(L, a->dtype, &want);
  return 2;
}

#define REDUCE_METHOD(N, K)            \
  static int array_##N(lua_State *L) { \
    return reduce_method(L, K);        \
  }
REDUCE_METHOD(sum, SUM)
REDUCE_METHOD(prod, PROD)
REDUCE_METHOD(min, MIN)
REDUCE_METHOD(max, MAX)
REDUCE_METHOD(mean, MEAN)
REDUCE_METHOD(var, VAR)
REDUCE_METHOD(std, STD)
REDUCE_METHOD(argmin, ARGMIN)
REDUCE_METHOD(argmax, ARGMAX)
REDUCE_METHOD(any, ANY)
REDUCE_METHOD(all, ALL)
REDUCE_METHOD(count, COUNT)

const luaL_Reg luashm_array_reduce_methods[] = {{"sum", array_sum},
                                                {"prod", array_prod},
                                                {"min", array_min},
                                                {"max", array_max},
                                                {"mean", array_mean},
                                                {"var", array_var},
                                                {"std", array_std},
                                                {"argmin", array_argmin},
                                                {"argmax", array_argmax},
                                                {"any", array_any},
                                                {"all", array_all},
                                                {"count", array_count},
                                                {"cumsum", array_cumsum},
                                                {"sort", array_sort},
                                                {"argsort", array_argsort},
                                                {"dot", array_dot},
                                                {"atomic_add", array_atomic_add},
                                                {"cas", array_cas},
                                                {"atomic_load", array_atomic_load},
                                                {"atomic_store", array_atomic_store},
                                                {NULL, NULL}};
