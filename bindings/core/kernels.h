/*
** The dtype kernels and the iteration engine: how an Array computes, in plain C (no Lua).
**
** The split follows NumPy's: one engine (iter.c) walks any number of N-d strided operands of the
** same shape (broadcast operands have stride 0), after merging the dimensions it can, dropping
** length-1 ones and putting the smallest strides innermost; it hands each innermost run to an
** inner loop, a typed function that sees only pointers, a length and byte steps, and that
** takes a contiguous fast path the compiler vectorises (kernels.c). When an operand's dtype is
** not the one the loop computes in, the engine casts it through a small buffer, chunk by chunk
** (NumPy's buffered nditer). Type resolution is NumPy 1.24's (value-based for Lua numbers).
** Reductions, cumulative sums and dot are in reduce.c, sorting in sort.c, conversions and the
** half-precision float in cast.c.
*/
#ifndef LUASHM_KERNELS_H
#define LUASHM_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include "npy.h"

/* For the kernel files. Loops over big arrays are memory-bound, and -O2 does not vectorise loops
   of unknown length while the baseline x86-64 target has 16-byte vectors only: kernels are
   built at -O3 with AVX-512F and AVX2 clones picked at load time where the CPU has them (NumPy
   dispatches at run time too; an in-place a:add(x) on 100 MB of shared memory took 20% longer
   with 32-byte vectors than NumPy's 64-byte ones). LUASHM_IVDEP tells the compiler that a loop has no dependence between
   iterations: its operands are either the same elements (in place) or disjoint, which the
   callers guarantee by copying operands that overlap otherwise. (Clang, the fuzz build's
   compiler, builds them plainly.) */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define LUASHM_KERNEL __attribute__((optimize("O3"), target_clones("avx512f", "avx2", "default")))
#define LUASHM_IVDEP _Pragma("GCC ivdep")
#elif defined(__GNUC__) && !defined(__clang__)
#define LUASHM_KERNEL __attribute__((optimize("O3")))
#define LUASHM_IVDEP _Pragma("GCC ivdep")
#else
#define LUASHM_KERNEL
#define LUASHM_IVDEP
#endif

/* ---------------------------------------------------------------------------------------
** dtypes (cast.c)
** ------------------------------------------------------------------------------------- */

/* NumPy's kinds in the order its promotion ranks them: bool < integers < floats. */
enum { LUASHM_KIND_BOOL, LUASHM_KIND_INT, LUASHM_KIND_UINT, LUASHM_KIND_FLOAT };
extern const unsigned char luashm_dtype_kinds[LUASHM_NDTYPES];

#define LUASHM_ISFLOAT(dt) (luashm_dtype_kinds[dt] == LUASHM_KIND_FLOAT)
#define LUASHM_ISINTLIKE(dt) (luashm_dtype_kinds[dt] != LUASHM_KIND_FLOAT) /* bool counts */

/* IEEE half precision: to float exactly; from float or double rounded to nearest even (from a
   double directly, never through a float: NumPy's npy_double_to_half). */
float luashm_half_to_float(uint16_t h);
uint16_t luashm_float_to_half(float f);
uint16_t luashm_double_to_half(double d);

/* An element as a double (u64 as unsigned), or as an integer (bool and integers; u64 as two's
   complement). */
double luashm_load_double(int dt, const void *p);
int64_t luashm_load_int(int dt, const void *p);

/* Why a value cannot be stored by the exact value rules (an Array's `a[i] = v` and `copy`). */
enum { LUASHM_OK, LUASHM_ETYPE, LUASHM_ENOTINT, LUASHM_ERANGE };

/* Stores v (a double) / i (an integer) into p by the exact value rules of dt: integer dtypes
   take integral values in range (u64 any integer as two's complement, floats in [0, 2^64)),
   bool 0 or 1, floats anything (rounded). LUASHM_OK or why not; nothing is written then. */
int luashm_store_double(int dt, void *p, double v);
int luashm_store_int(int dt, void *p, int64_t i);

/* ---------------------------------------------------------------------------------------
** Type resolution (iter.c): NumPy 1.24's, so that `dst:op(x, y)` computes in the dtype that
** np.op(x, y, out=dst, casting="unsafe") would
** ------------------------------------------------------------------------------------- */

/* One operand for type resolution: an Array (dtype), or a Lua number (scalar set; isint tells
   an integer from a float). */
typedef struct luashm_optype {
  int dtype;
  int scalar, isint;
  int64_t i;
  double d;
} luashm_optype;

/* np.promote_types(a, b). */
int luashm_promote(int a, int b);

/* np.result_type of the operands, with NumPy 1.24's value-based rules for scalars (a scalar
   whose kind is not above every array's counts by the smallest dtype that holds its value). */
int luashm_result_type(int n, const luashm_optype *ops);

/* ---------------------------------------------------------------------------------------
** The iteration engine (iter.c)
** ------------------------------------------------------------------------------------- */

#define LUASHM_MAXOPS 4

/* nop operands over one shape: operand k's element at index (i1..in) is at
   data[k] + sum(i_d * strides[k][d]). */
typedef struct luashm_iter {
  int nop, ndim;
  size_t shape[LUASHM_MAXDIMS];
  unsigned char *data[LUASHM_MAXOPS];
  ptrdiff_t strides[LUASHM_MAXOPS][LUASHM_MAXDIMS];
} luashm_iter;

/* An inner loop: n elements, operand k from args[k] by steps[k] bytes. Returns 0, or a nonzero
   code that stops the iteration (luashm_iter_run returns it). */
typedef int (*luashm_loop)(unsigned char *const *args, size_t n, const ptrdiff_t *steps, void *ctx);

/* Loop error codes. */
enum { LUASHM_EDIVZERO = 1, LUASHM_ENEGPOW, LUASHM_EBAD };

/* Keep C order: no reordering or flipping of dimensions (only merging and dropping length-1
   ones), for loops whose result depends on the order (flat indexes, running sums). */
#define LUASHM_ITER_KEEPORDER 1

/* Simplifies it in place for speed without changing what it visits. */
void luashm_iter_prepare(luashm_iter *it, int flags);

/* Elements it visits. */
size_t luashm_iter_size(const luashm_iter *it);

/* Calls loop over every innermost run, in order; 0 or the first nonzero code of the loop. */
int luashm_iter_run(const luashm_iter *it, luashm_loop loop, void *ctx);

/* A loop over computation dtypes, and the dtypes the operands have in memory: where they
   differ, luashm_ufunc_run casts (unsafe, NumPy's astype) through buffers. Operand 0 is the
   output: written, never read through its cast. */
typedef struct luashm_ufunc {
  luashm_loop loop;
  void *ctx;
  int dtype[LUASHM_MAXOPS]; /* in memory */
  int ctype[LUASHM_MAXOPS]; /* as the loop takes them */
  int flags;                /* for luashm_iter_prepare */
} luashm_ufunc;

/* Runs u over it (prepared here); 0 or the loop's code. */
int luashm_ufunc_run(luashm_iter *it, const luashm_ufunc *u);

/* ---------------------------------------------------------------------------------------
** Elementwise inner loops (kernels.c); NULL when the dtype has no such loop
** ------------------------------------------------------------------------------------- */

enum {
  LUASHM_ADD,
  LUASHM_SUB,
  LUASHM_MUL,
  LUASHM_DIV,
  LUASHM_IDIV,
  LUASHM_MOD,
  LUASHM_POW,
  LUASHM_MINIMUM,
  LUASHM_MAXIMUM,
  LUASHM_NBINARY
};
enum { LUASHM_LT, LUASHM_LE, LUASHM_GT, LUASHM_GE, LUASHM_EQ, LUASHM_NE, LUASHM_NCOMPARE };
enum {
  LUASHM_ABS,
  LUASHM_NEG,
  LUASHM_SQRT,
  LUASHM_EXP,
  LUASHM_LOG,
  LUASHM_FLOOR,
  LUASHM_CEIL,
  LUASHM_ROUND,
  LUASHM_NUNARY
};

/* out, x, y (all dtype dt). Integer idiv/mod by zero write 0 and return LUASHM_EDIVZERO at the
   end of the run; integer pow by a negative exponent returns LUASHM_ENEGPOW. */
luashm_loop luashm_binary_loop(int op, int dt);
/* out (bool), x, y (dt). */
luashm_loop luashm_compare_loop(int op, int dt);
/* out, x (dt). */
luashm_loop luashm_unary_loop(int op, int dt);
/* out, mask (bool), x, y (dt). */
luashm_loop luashm_where_loop(int dt);
/* out, x, lo, hi (dt): min(max(x, lo), hi), NaN propagating. */
luashm_loop luashm_clip_loop(int dt);
/* out (to), in (from): NumPy's astype, except that floats to integers saturate (NaN to 0). */
luashm_loop luashm_cast_loop(int to, int from);
/* out, in (same itemsize): a strided copy of raw elements. */
luashm_loop luashm_copy_loop(size_t itemsize);

/* The exact value rules as a loop (out: to, in: from); ctx is a luashm_exact. Stops with
   LUASHM_EBAD at the first value that does not fit (nothing of that element written). */
typedef struct luashm_exact {
  int to, from;
  size_t done; /* elements before the current run (C order when run with KEEPORDER) */
  size_t bad;  /* the failing element's position: done + its place in the run */
  int why;     /* LUASHM_ENOTINT or LUASHM_ERANGE */
} luashm_exact;
int luashm_exact_loop(unsigned char *const *args, size_t n, const ptrdiff_t *steps, void *ctx);

/* ---------------------------------------------------------------------------------------
** Reductions, cumulative sums, dot (reduce.c)
** ------------------------------------------------------------------------------------- */

enum {
  LUASHM_RSUM,
  LUASHM_RPROD,
  LUASHM_RMIN,
  LUASHM_RMAX,
  LUASHM_RARGMIN,
  LUASHM_RARGMAX,
  LUASHM_RCOUNT, /* nonzero elements: any, all and count */
  LUASHM_RSUMF,  /* the sum in double of any dtype (mean, var, std of integers) */
  LUASHM_NREDUCE
};

/* A running reduction over runs of one dtype. Start it zeroed. */
typedef struct luashm_acc {
  uint64_t u;    /* integer sum or product (wrapping), or the nonzero count */
  double d;      /* float sum or product */
  uint64_t best; /* min/max/argmin/argmax: the best element's bytes, in the dtype */
  size_t idx;    /* argmin/argmax: its position */
  size_t n;      /* elements seen */
  int nan;       /* a NaN was seen (it is then the best) */
} luashm_acc;

/* Feeds n elements of dtype dt at p by step bytes into acc. */
void luashm_reduce(int op, int dt, const unsigned char *p, size_t n, ptrdiff_t step,
                   luashm_acc *acc);

/* Sum of (x - mean)^2 over n elements, in double. */
double luashm_sqdev(int dt, const unsigned char *p, size_t n, ptrdiff_t step, double mean);

/* Accumulating loops for reductions along an axis, one slice at a time:
   sum/prod: acc (f64 for float dt, i64 for integers and bool) op= in (dt); sumf: acc (f64)
   += in (dt);
   min/max: acc (dt) = min/max(acc, in), NaN propagating;
   count: acc (i64) += in != 0;
   argmin/argmax: best (dt), idx (i64), in (dt): where in beats best, best = in and idx = the
   i64 at ctx (the slice's 1-based index). */
luashm_loop luashm_accum_loop(int op, int dt);
/* acc (f64) += (in (dt) - mean (f64))^2. */
luashm_loop luashm_sqdev_loop(int dt);

/* Running sum in place over n elements by step, continuing from *carry (the dtype's bytes;
   zero to start); integers wrap, floats add in their own precision as NumPy does. */
void luashm_cumsum(int dt, unsigned char *p, size_t n, ptrdiff_t step, uint64_t *carry);

/* Dot product of n elements (x: dtype dx by sx, y: dy by sy) computed in dtype ct (NumPy's
   result type): an integer (wrapping in ct) into *i, or a double into *d. Returns 1 for a
   float result. */
int luashm_dot(int ct, int dx, const unsigned char *x, ptrdiff_t sx, int dy, const unsigned char *y,
               ptrdiff_t sy, size_t n, int64_t *i, double *d);

/* ---------------------------------------------------------------------------------------
** Sorting (sort.c): ascending, NaN last. 0, or -1 when out of memory.
** ------------------------------------------------------------------------------------- */

/* Sorts n contiguous elements of dtype dt in place. */
int luashm_sort(int dt, void *p, size_t n);

/* The 1-based positions that sort n elements at p (by step bytes) into out, stable. */
int luashm_argsort(int dt, const unsigned char *p, size_t n, ptrdiff_t step, int64_t *out);

#endif
