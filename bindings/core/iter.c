/*
** The iteration engine (kernels.h): N-d strided operands simplified into as few, as long
** innermost runs as possible, then walked with an odometer; the buffered runner that casts
** operands whose dtype differs from the loop's; NumPy 1.24's type promotion.
*/
#include <string.h>

#include "kernels.h"

/* ---------------------------------------------------------------------------------------
** Type resolution
** ------------------------------------------------------------------------------------- */

#define I8 LUASHM_I8
#define U8 LUASHM_U8
#define I16 LUASHM_I16
#define U16 LUASHM_U16
#define I32 LUASHM_I32
#define U32 LUASHM_U32
#define I64 LUASHM_I64
#define U64 LUASHM_U64
#define F32 LUASHM_F32
#define F64 LUASHM_F64
#define BOOL LUASHM_BOOL
#define F16 LUASHM_F16

/* np.promote_types, generated from NumPy 1.24 in this dtype order. */
static const unsigned char promotion[LUASHM_NDTYPES][LUASHM_NDTYPES] = {
    {I8, I16, I16, I32, I32, I64, I64, F64, F32, F64, I8, F16},
    {I16, U8, I16, U16, I32, U32, I64, U64, F32, F64, U8, F16},
    {I16, I16, I16, I32, I32, I64, I64, F64, F32, F64, I16, F32},
    {I32, U16, I32, U16, I32, U32, I64, U64, F32, F64, U16, F32},
    {I32, I32, I32, I32, I32, I64, I64, F64, F64, F64, I32, F64},
    {I64, U32, I64, U32, I64, U32, I64, U64, F64, F64, U32, F64},
    {I64, I64, I64, I64, I64, I64, I64, F64, F64, F64, I64, F64},
    {F64, U64, F64, U64, F64, U64, F64, U64, F64, F64, U64, F64},
    {F32, F32, F32, F32, F64, F64, F64, F64, F32, F64, F32, F32},
    {F64, F64, F64, F64, F64, F64, F64, F64, F64, F64, F64, F64},
    {I8, U8, I16, U16, I32, U32, I64, U64, F32, F64, BOOL, F16},
    {F16, F16, F32, F32, F64, F64, F64, F64, F32, F64, F16, F16},
};

int luashm_promote(int a, int b) {
  return promotion[a][b];
}

/* NumPy's ordering of kinds for value-based casting: bool 0, integers 1, floats 2. */
static int rank(int dt) {
  switch (luashm_dtype_kinds[dt]) {
    case LUASHM_KIND_BOOL: return 0;
    case LUASHM_KIND_FLOAT: return 2;
    default: return 1;
  }
}

/* np.min_scalar_type of a Lua number; *small is set for a non-negative integer that also fits
   the signed type of the same size (NumPy's "small unsigned"). */
static int min_scalar(const luashm_optype *o, int *small) {
  *small = 0;
  if (!o->isint) {
    double v = o->d;
    if ((v > -65000 && v < 65000) || !(v - v == 0)) return F16;
    return v > -3.4e38 && v < 3.4e38 ? F32 : F64;
  }
  if (o->i >= 0) {
    int64_t v = o->i;
    *small = 1;
    if (v <= UINT8_MAX) return *small = v <= INT8_MAX, U8;
    if (v <= UINT16_MAX) return *small = v <= INT16_MAX, U16;
    if (v <= (int64_t)UINT32_MAX) return *small = v <= INT32_MAX, U32;
    return U64;
  }
  if (o->i >= INT8_MIN) return I8;
  if (o->i >= INT16_MIN) return I16;
  return o->i >= INT32_MIN ? I32 : I64;
}

static int to_signed(int dt) {
  switch (dt) {
    case U8: return I8;
    case U16: return I16;
    case U32: return I32;
    case U64: return I64;
    default: return dt;
  }
}

/* NumPy's promote_types with "small unsigned" scalars: such a scalar meets a signed or float
   dtype as the signed type of its size. */
static int promote_small(int t1, int t2, int small1, int small2) {
  if (small1 && luashm_dtype_kinds[t2] != LUASHM_KIND_BOOL &&
      luashm_dtype_kinds[t2] != LUASHM_KIND_UINT)
    return promotion[to_signed(t1)][t2];
  if (small2 && luashm_dtype_kinds[t1] != LUASHM_KIND_BOOL &&
      luashm_dtype_kinds[t1] != LUASHM_KIND_UINT)
    return promotion[t1][to_signed(t2)];
  return promotion[t1][t2];
}

int luashm_result_type(int n, const luashm_optype *ops) {
  int k, max_array = -1, max_scalar = -1, use_min, ret = -1, ret_small = 0;
  for (k = 0; k < n; k++) {
    if (ops[k].scalar) {
      int r = ops[k].isint ? 1 : 2;
      if (r > max_scalar) max_scalar = r;
    } else if (rank(ops[k].dtype) > max_array) {
      max_array = rank(ops[k].dtype);
    }
  }
  use_min = max_array >= 0 && max_array >= max_scalar;
  for (k = 0; k < n; k++) {
    int dt, small = 0;
    if (!ops[k].scalar)
      dt = ops[k].dtype;
    else if (use_min)
      dt = min_scalar(&ops[k], &small);
    else
      dt = ops[k].isint ? I64 : F64;
    if (ret < 0) {
      ret = dt;
      ret_small = small;
    } else {
      ret = promote_small(dt, ret, small, ret_small);
      ret_small = small && ret_small;
    }
  }
  return ret;
}

/* ---------------------------------------------------------------------------------------
** The engine
** ------------------------------------------------------------------------------------- */

size_t luashm_iter_size(const luashm_iter *it) {
  size_t n = 1;
  int d;
  for (d = 0; d < it->ndim; d++) n *= it->shape[d];
  return n;
}

static void drop_dim(luashm_iter *it, int d) {
  int k, e;
  for (e = d; e + 1 < it->ndim; e++) {
    it->shape[e] = it->shape[e + 1];
    for (k = 0; k < it->nop; k++) it->strides[k][e] = it->strides[k][e + 1];
  }
  it->ndim--;
}

/* The memory-order key of dimension d: the first operand's nonzero stride (broadcast operands
   have none to give). */
static size_t order_key(const luashm_iter *it, int d) {
  int k;
  for (k = 0; k < it->nop; k++) {
    ptrdiff_t s = it->strides[k][d];
    if (s != 0) return (size_t)(s < 0 ? -s : s);
  }
  return 0;
}

static void swap_dims(luashm_iter *it, int a, int b) {
  size_t n = it->shape[a];
  int k;
  it->shape[a] = it->shape[b];
  it->shape[b] = n;
  for (k = 0; k < it->nop; k++) {
    ptrdiff_t s = it->strides[k][a];
    it->strides[k][a] = it->strides[k][b];
    it->strides[k][b] = s;
  }
}

void luashm_iter_prepare(luashm_iter *it, int flags) {
  int d, k;
  if (luashm_iter_size(it) == 0) return;
  for (d = it->ndim - 1; d >= 0; d--)
    if (it->shape[d] == 1) drop_dim(it, d);
  if (!(flags & LUASHM_ITER_KEEPORDER)) {
    /* Walk backwards along a dimension where no operand goes forwards. */
    for (d = 0; d < it->ndim; d++) {
      int neg = 0, pos = 0;
      for (k = 0; k < it->nop; k++) {
        neg |= it->strides[k][d] < 0;
        pos |= it->strides[k][d] > 0;
      }
      if (!neg || pos) continue;
      for (k = 0; k < it->nop; k++) {
        it->data[k] += it->strides[k][d] * (ptrdiff_t)(it->shape[d] - 1);
        it->strides[k][d] = -it->strides[k][d];
      }
    }
    /* Smallest strides innermost (a stable insertion sort, largest key first). */
    for (d = 1; d < it->ndim; d++) {
      int e;
      for (e = d; e > 0 && order_key(it, e - 1) < order_key(it, e); e--) swap_dims(it, e - 1, e);
    }
  }
  /* Merge an outer dimension into the next inner one where every operand allows it. */
  for (d = it->ndim - 2; d >= 0; d--) {
    for (k = 0; k < it->nop; k++)
      if (it->strides[k][d] != it->strides[k][d + 1] * (ptrdiff_t)it->shape[d + 1]) break;
    if (k < it->nop) continue;
    it->shape[d + 1] *= it->shape[d];
    drop_dim(it, d);
  }
}

int luashm_iter_run(const luashm_iter *it, luashm_loop loop, void *ctx) {
  size_t idx[LUASHM_MAXDIMS];
  unsigned char *ptr[LUASHM_MAXOPS];
  ptrdiff_t steps[LUASHM_MAXOPS];
  int nd = it->ndim, k, d, rc;
  if (luashm_iter_size(it) == 0) return 0;
  for (k = 0; k < it->nop; k++) {
    ptr[k] = it->data[k];
    steps[k] = nd > 0 ? it->strides[k][nd - 1] : 0;
  }
  if (nd <= 1) return loop(ptr, nd == 0 ? 1 : it->shape[0], steps, ctx);
  memset(idx, 0, sizeof idx);
  for (;;) {
    if ((rc = loop(ptr, it->shape[nd - 1], steps, ctx)) != 0) return rc;
    for (d = nd - 2; d >= 0; d--) {
      if (++idx[d] < it->shape[d]) {
        for (k = 0; k < it->nop; k++) ptr[k] += it->strides[k][d];
        break;
      }
      idx[d] = 0;
      for (k = 0; k < it->nop; k++) ptr[k] -= it->strides[k][d] * (ptrdiff_t)(it->shape[d] - 1);
    }
    if (d < 0) return 0;
  }
}

/* ---------------------------------------------------------------------------------------
** The buffered runner
** ------------------------------------------------------------------------------------- */

#define CHUNK 512 /* elements per buffer: 4 KiB of 8-byte elements, cache resident */

typedef struct buffered {
  const luashm_ufunc *u;
  int nop;
  luashm_loop in[LUASHM_MAXOPS]; /* the cast into the loop's dtype, or NULL */
  luashm_loop out;               /* the cast of the result into operand 0, or NULL */
} buffered;

static int run_buffered(unsigned char *const *args, size_t n, const ptrdiff_t *steps, void *ctx) {
  buffered *b = (buffered *)ctx;
  uint64_t buf[LUASHM_MAXOPS][CHUNK];
  unsigned char *a[LUASHM_MAXOPS];
  ptrdiff_t s[LUASHM_MAXOPS];
  size_t off, chunk;
  int k, rc = 0;
  for (off = 0; off < n; off += chunk) {
    chunk = n - off < CHUNK ? n - off : CHUNK;
    for (k = 0; k < b->nop; k++) {
      unsigned char *src = args[k] + (ptrdiff_t)off * steps[k];
      ptrdiff_t csize = luashm_dtype_sizes[b->u->ctype[k]];
      if (k == 0 ? b->out == NULL : b->in[k] == NULL) {
        a[k] = src;
        s[k] = steps[k];
      } else if (k == 0) {
        a[0] = (unsigned char *)buf[0];
        s[0] = csize;
      } else {
        unsigned char *cargs[2] = {(unsigned char *)buf[k], src};
        ptrdiff_t csteps[2] = {csize, steps[k]};
        b->in[k](cargs, steps[k] == 0 ? 1 : chunk, csteps, NULL);
        a[k] = (unsigned char *)buf[k];
        s[k] = steps[k] == 0 ? 0 : csize;
      }
    }
    rc |= b->u->loop(a, chunk, s, b->u->ctx);
    if (b->out != NULL) {
      unsigned char *cargs[2] = {args[0] + (ptrdiff_t)off * steps[0], (unsigned char *)buf[0]};
      ptrdiff_t csteps[2] = {steps[0], luashm_dtype_sizes[b->u->ctype[0]]};
      b->out(cargs, chunk, csteps, NULL);
    }
    if (rc != 0) return rc;
  }
  return 0;
}

int luashm_ufunc_run(luashm_iter *it, const luashm_ufunc *u) {
  buffered b;
  int k, cast = 0;
  b.u = u;
  b.nop = it->nop;
  b.out = NULL;
  for (k = 0; k < it->nop; k++) {
    b.in[k] = NULL;
    if (u->dtype[k] == u->ctype[k]) continue;
    cast = 1;
    if (k == 0)
      b.out = luashm_cast_loop(u->dtype[0], u->ctype[0]);
    else
      b.in[k] = luashm_cast_loop(u->ctype[k], u->dtype[k]);
  }
  luashm_iter_prepare(it, u->flags);
  if (!cast) return luashm_iter_run(it, u->loop, u->ctx);
  return luashm_iter_run(it, run_buffered, &b);
}
