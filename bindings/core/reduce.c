/*
** Reductions (kernels.h): whole-run reductions into a running accumulator (sum, prod, min, max,
** argmin, argmax, nonzero count, squared deviations), the accumulating loops that reduce along
** an axis one slice at a time, running sums, and the dot product. Integer sums and products wrap
** in 64 bits (NumPy's int64 accumulator); float sums use eight independent double accumulators,
** which vectorise without reassociating and are about as accurate as NumPy's pairwise sum;
** NaN propagates through min and max, and the first NaN wins argmin and argmax, as in NumPy.
*/
#include <math.h>
#include <string.h>

#include "kernels.h"

static inline float h2f(uint16_t h) {
  return luashm_half_to_float(h);
}

/* Element to accumulator: V to double, I to the 64-bit integer accumulator (two's complement). */
#define AS_D(N, x) AS_D_##N(x)
#define AS_D_i8(x) ((double)(x))
#define AS_D_u8(x) ((double)(x))
#define AS_D_i16(x) ((double)(x))
#define AS_D_u16(x) ((double)(x))
#define AS_D_i32(x) ((double)(x))
#define AS_D_u32(x) ((double)(x))
#define AS_D_i64(x) ((double)(x))
#define AS_D_u64(x) ((double)(x))
#define AS_D_f32(x) ((double)(x))
#define AS_D_f64(x) ((double)(x))
#define AS_D_bool(x) ((double)((x) != 0))
#define AS_D_f16(x) ((double)h2f(x))
#define AS_U(x) ((uint64_t)(int64_t)(x))
#define NZ(N, x) NZ_##N(x)
#define NZ_i8(x) ((x) != 0)
#define NZ_u8(x) ((x) != 0)
#define NZ_i16(x) ((x) != 0)
#define NZ_u16(x) ((x) != 0)
#define NZ_i32(x) ((x) != 0)
#define NZ_u32(x) ((x) != 0)
#define NZ_i64(x) ((x) != 0)
#define NZ_u64(x) ((x) != 0)
#define NZ_f32(x) ((x) != 0)
#define NZ_f64(x) ((x) != 0)
#define NZ_bool(x) ((x) != 0)
#define NZ_f16(x) (((x)&0x7fffu) != 0)
/* Ordering: the value compared (halves as floats), and NaN (never for integers). */
#define KEY(N, x) KEY_##N(x)
#define KEY_i8(x) (x)
#define KEY_u8(x) (x)
#define KEY_i16(x) (x)
#define KEY_u16(x) (x)
#define KEY_i32(x) (x)
#define KEY_u32(x) (x)
#define KEY_i64(x) (x)
#define KEY_u64(x) (x)
#define KEY_f32(x) (x)
#define KEY_f64(x) (x)
#define KEY_bool(x) ((x) != 0)
#define KEY_f16(x) h2f(x)

#define BLOCK 8192 /* elements per block of argmin/argmax: a vectorised pass, then a short scan */

/* ---------------------------------------------------------------------------------------
** Whole-run reductions, one set per dtype
** ------------------------------------------------------------------------------------- */

/* The best (max or min) of a block; *nan set when a NaN is in it. Integers vectorise as they
   are; f32 and f64 have their own below (the compiler will not turn a float max into one
   without -ffast-math). */
#define BEST(N, T)                                                                           \
  static LUASHM_KERNEL T best_##N(const unsigned char *p, size_t n, ptrdiff_t step, int max, \
                                  int *nan) {                                                \
    T m = *(const T *)p;                                                                     \
    int bad = 0;                                                                             \
    size_t i;                                                                                \
    if (step == (ptrdiff_t)sizeof(T)) {                                                      \
      const T *q = (const T *)p;                                                             \
      if (max)                                                                               \
        for (i = 0; i < n; i++) {                                                            \
          bad |= KEY(N, q[i]) != KEY(N, q[i]);                                               \
          m = KEY(N, q[i]) > KEY(N, m) ? q[i] : m;                                           \
        }                                                                                    \
      else                                                                                   \
        for (i = 0; i < n; i++) {                                                            \
          bad |= KEY(N, q[i]) != KEY(N, q[i]);                                               \
          m = KEY(N, q[i]) < KEY(N, m) ? q[i] : m;                                           \
        }                                                                                    \
    } else {                                                                                 \
      for (i = 0; i < n; i++, p += step) {                                                   \
        T x = *(const T *)p;                                                                 \
        bad |= KEY(N, x) != KEY(N, x);                                                       \
        m = (max ? KEY(N, x) > KEY(N, m) : KEY(N, x) < KEY(N, m)) ? x : m;                   \
      }                                                                                      \
    }                                                                                        \
    *nan = bad;                                                                              \
    return m;                                                                                \
  }
BEST(i8, int8_t)
BEST(u8, uint8_t)
BEST(i16, int16_t)
BEST(u16, uint16_t)
BEST(i32, int32_t)
BEST(u32, uint32_t)
BEST(i64, int64_t)
BEST(u64, uint64_t)
BEST(bool, uint8_t)
BEST(f16, uint16_t)

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
/* f32 and f64 on AVX2: vmaxpd/vminpd per lane (which returns the lane when x is NaN, as the
   scalar `x > m ? x : m` does), four chains to hide latency, and a running sum of the
   elements, which becomes NaN if any element is one (or in the rare overflow inf - inf: the
   caller then looks again, element by element). As fast as a sum: NumPy's argmax is SIMD. */
#define AVX_BEST(N, T, V, SET1, LOADU, MAXF, MINF, ADD, STOREU, LANES)                        \
  __attribute__((target("avx2"))) static T avx_best_##N(const T *q, size_t n, int max,        \
                                                        int *maybe_nan) {                     \
    V l0 = SET1(q[0]), l1 = l0, l2 = l0, l3 = l0, s0 = SET1(0), s1 = s0;                      \
    T lanes[4 * (LANES)], sums[LANES], m = q[0], s = 0;                                       \
    size_t i = 0;                                                                             \
    int k;                                                                                    \
    for (; i + 4 * (LANES) <= n; i += 4 * (LANES)) {                                          \
      V a = LOADU(q + i), b = LOADU(q + i + (LANES)), c = LOADU(q + i + 2 * (LANES)),         \
        d = LOADU(q + i + 3 * (LANES));                                                       \
      if (max) {                                                                              \
        l0 = MAXF(a, l0), l1 = MAXF(b, l1), l2 = MAXF(c, l2), l3 = MAXF(d, l3);               \
      } else {                                                                                \
        l0 = MINF(a, l0), l1 = MINF(b, l1), l2 = MINF(c, l2), l3 = MINF(d, l3);               \
      }                                                                                       \
      s0 = ADD(s0, ADD(a, b));                                                                \
      s1 = ADD(s1, ADD(c, d));                                                                \
    }                                                                                         \
    STOREU(lanes, l0);                                                                        \
    STOREU(lanes + (LANES), l1);                                                              \
    STOREU(lanes + 2 * (LANES), l2);                                                          \
    STOREU(lanes + 3 * (LANES), l3);                                                          \
    STOREU(sums, ADD(s0, s1));                                                                \
    for (k = 0; k < 4 * (LANES); k++) m = (max ? lanes[k] > m : lanes[k] < m) ? lanes[k] : m; \
    for (k = 0; k < (LANES); k++) s += sums[k];                                               \
    for (; i < n; i++) {                                                                      \
      s += q[i];                                                                              \
      m = (max ? q[i] > m : q[i] < m) ? q[i] : m;                                             \
    }                                                                                         \
    *maybe_nan = s != s;                                                                      \
    return m;                                                                                 \
  }
AVX_BEST(f64, double, __m256d, _mm256_set1_pd, _mm256_loadu_pd, _mm256_max_pd, _mm256_min_pd,
         _mm256_add_pd, _mm256_storeu_pd, 4)
AVX_BEST(f32, float, __m256, _mm256_set1_ps, _mm256_loadu_ps, _mm256_max_ps, _mm256_min_ps,
         _mm256_add_ps, _mm256_storeu_ps, 8)
#define HAVE_AVX_BEST 1
#else
#define HAVE_AVX_BEST 0
#endif

/* f32 and f64: lanes of a GCC/Clang vector, each keeping its own max or min (a compare and a
   bitwise select per lane, which is the IEEE max the scalar code computes: a NaN never wins
   a lane; it is counted apart), then the lanes and the tail combined in order. */
#define VBEST(N, T, VT, VI, LANES)                                                           \
  static LUASHM_KERNEL T best_##N(const unsigned char *p, size_t n, ptrdiff_t step, int max, \
                                  int *nan) {                                                \
    const T *q = (const T *)p;                                                               \
    T m = q[0];                                                                              \
    int bad = 0, k;                                                                          \
    size_t i = 0;                                                                            \
    if (HAVE_AVX_BEST && step == (ptrdiff_t)sizeof(T) && __builtin_cpu_supports("avx2")) {   \
      m = AVX_##N(q, n, max, &bad);                                                          \
      if (bad) /* a NaN, or an overflow of the check sum: look again */                      \
        for (bad = 0, i = 0; i < n; i++) bad |= q[i] != q[i];                                \
      *nan = bad;                                                                            \
      return m;                                                                              \
    }                                                                                        \
    if (step == (ptrdiff_t)sizeof(T) && n >= 4 * (LANES)) {                                  \
      VT lane[4], x;                                                                         \
      VI any = {0}, pick;                                                                    \
      int c;                                                                                 \
      for (c = 0; c < 4; c++)                                                                \
        for (k = 0; k < (LANES); k++) lane[c][k] = m;                                        \
      /* four independent chains: the compare-and-select latency is hidden */                \
      for (; i + 4 * (LANES) <= n; i += 4 * (LANES)) {                                       \
        for (c = 0; c < 4; c++) {                                                            \
          memcpy(&x, q + i + c * (LANES), sizeof x);                                         \
          pick = max ? (VI)(x > lane[c]) : (VI)(x < lane[c]);                                \
          lane[c] = (VT)(((VI)x & pick) | ((VI)lane[c] & ~pick));                            \
          any |= (VI)(x != x);                                                               \
        }                                                                                    \
      }                                                                                      \
      for (c = 0; c < 4; c++)                                                                \
        for (k = 0; k < (LANES); k++) {                                                      \
          bad |= any[k] != 0;                                                                \
          m = (max ? lane[c][k] > m : lane[c][k] < m) ? lane[c][k] : m;                      \
        }                                                                                    \
    }                                                                                        \
    for (; i < n; i++) {                                                                     \
      T v = *(const T *)(p + (ptrdiff_t)i * step);                                           \
      bad |= v != v;                                                                         \
      m = (max ? v > m : v < m) ? v : m;                                                     \
    }                                                                                        \
    *nan = bad;                                                                              \
    return m;                                                                                \
  }
#if HAVE_AVX_BEST
#define AVX_f32 avx_best_f32
#define AVX_f64 avx_best_f64
#else
#define AVX_f32(q, n, max, bad) (q)[0]
#define AVX_f64(q, n, max, bad) (q)[0]
#endif
typedef float vf32 __attribute__((vector_size(32)));
typedef int32_t vi32 __attribute__((vector_size(32)));
typedef double vf64 __attribute__((vector_size(32)));
typedef int64_t vi64 __attribute__((vector_size(32)));
VBEST(f32, float, vf32, vi32, 8)
VBEST(f64, double, vf64, vi64, 4)

#define REDUCE_FNS(N, T, FLOATY)                                                              \
  static LUASHM_KERNEL double sum_d_##N(const unsigned char *p, size_t n, ptrdiff_t step) {   \
    double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};                                                 \
    size_t i = 0;                                                                             \
    int k;                                                                                    \
    if (step == (ptrdiff_t)sizeof(T)) {                                                       \
      const T *q = (const T *)p;                                                              \
      for (; i + 8 <= n; i += 8)                                                              \
        for (k = 0; k < 8; k++) acc[k] += AS_D(N, q[i + k]);                                  \
      for (; i < n; i++) acc[0] += AS_D(N, q[i]);                                             \
    } else {                                                                                  \
      for (; i < n; i++, p += step) acc[i & 7] += AS_D(N, *(const T *)p);                     \
    }                                                                                         \
    return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7])); \
  }                                                                                           \
  static LUASHM_KERNEL uint64_t sum_u_##N(const unsigned char *p, size_t n, ptrdiff_t step) { \
    uint64_t s = 0;                                                                           \
    size_t i;                                                                                 \
    if (step == (ptrdiff_t)sizeof(T)) {                                                       \
      const T *q = (const T *)p;                                                              \
      for (i = 0; i < n; i++) s += AS_U(q[i]);                                                \
    } else {                                                                                  \
      for (i = 0; i < n; i++, p += step) s += AS_U(*(const T *)p);                            \
    }                                                                                         \
    return s;                                                                                 \
  }                                                                                           \
  static LUASHM_KERNEL uint64_t count_##N(const unsigned char *p, size_t n, ptrdiff_t step) { \
    uint64_t c = 0;                                                                           \
    size_t i;                                                                                 \
    if (step == (ptrdiff_t)sizeof(T)) {                                                       \
      const T *q = (const T *)p;                                                              \
      for (i = 0; i < n; i++) c += NZ(N, q[i]);                                               \
    } else {                                                                                  \
      for (i = 0; i < n; i++, p += step) c += NZ(N, *(const T *)p);                           \
    }                                                                                         \
    return c;                                                                                 \
  }                                                                                           \
  static void prod_##N(const unsigned char *p, size_t n, ptrdiff_t step, luashm_acc *acc) {   \
    size_t i;                                                                                 \
    for (i = 0; i < n; i++, p += step) {                                                      \
      T x = *(const T *)p;                                                                    \
      if (FLOATY)                                                                             \
        acc->d *= AS_D(N, x);                                                                 \
      else                                                                                    \
        acc->u *= AS_U(x);                                                                    \
    }                                                                                         \
  }                                                                                           \
  static void extreme_##N(const unsigned char *p, size_t n, ptrdiff_t step, int max, int arg, \
                          luashm_acc *acc) {                                                  \
    size_t off, i, len;                                                                       \
    T best;                                                                                   \
    if (acc->nan) return;                                                                     \
    for (off = 0; off < n; off += len) {                                                      \
      int nan;                                                                                \
      const unsigned char *q = p + (ptrdiff_t)off * step;                                     \
      T m;                                                                                    \
      len = n - off < BLOCK ? n - off : BLOCK;                                                \
      m = best_##N(q, len, step, max, &nan);                                                  \
      memcpy(&best, &acc->best, sizeof best);                                                 \
      if (nan) { /* the first NaN is the answer from now on */                                \
        for (i = 0; KEY(N, *(const T *)(q + (ptrdiff_t)i * step)) ==                          \
                    KEY(N, *(const T *)(q + (ptrdiff_t)i * step));                            \
             i++) {                                                                           \
        }                                                                                     \
        memcpy(&acc->best, q + (ptrdiff_t)i * step, sizeof(T));                               \
        acc->idx = acc->n + off + i;                                                          \
        acc->nan = 1;                                                                         \
        return;                                                                               \
      }                                                                                       \
      if (acc->n + off > 0 && !(max ? KEY(N, m) > KEY(N, best) : KEY(N, m) < KEY(N, best)))   \
        continue;                                                                             \
      memcpy(&acc->best, &m, sizeof m);                                                       \
      if (!arg) continue;                                                                     \
      for (i = 0; KEY(N, *(const T *)(q + (ptrdiff_t)i * step)) != KEY(N, m); i++) {          \
      }                                                                                       \
      acc->idx = acc->n + off + i;                                                            \
    }                                                                                         \
  }                                                                                           \
  static void reduce_##N(int op, const unsigned char *p, size_t n, ptrdiff_t step,            \
                         luashm_acc *acc) {                                                   \
    switch (op) {                                                                             \
      case LUASHM_RSUM:                                                                       \
        if (FLOATY)                                                                           \
          acc->d += sum_d_##N(p, n, step);                                                    \
        else                                                                                  \
          acc->u += sum_u_##N(p, n, step);                                                    \
        break;                                                                                \
      case LUASHM_RPROD: prod_##N(p, n, step, acc); break;                                    \
      case LUASHM_RCOUNT: acc->u += count_##N(p, n, step); break;                             \
      case LUASHM_RSUMF: acc->d += sum_d_##N(p, n, step); break;                              \
      default:                                                                                \
        extreme_##N(p, n, step, op == LUASHM_RMAX || op == LUASHM_RARGMAX,                    \
                    op == LUASHM_RARGMIN || op == LUASHM_RARGMAX, acc);                       \
    }                                                                                         \
  }                                                                                           \
  static double sqdev_##N(const unsigned char *p, size_t n, ptrdiff_t step, double mean) {    \
    double acc[4] = {0, 0, 0, 0};                                                             \
    size_t i;                                                                                 \
    for (i = 0; i < n; i++, p += step) {                                                      \
      double dv = AS_D(N, *(const T *)p) - mean;                                              \
      acc[i & 3] += dv * dv;                                                                  \
    }                                                                                         \
    return (acc[0] + acc[1]) + (acc[2] + acc[3]);                                             \
  }

REDUCE_FNS(i8, int8_t, 0)
REDUCE_FNS(u8, uint8_t, 0)
REDUCE_FNS(i16, int16_t, 0)
REDUCE_FNS(u16, uint16_t, 0)
REDUCE_FNS(i32, int32_t, 0)
REDUCE_FNS(u32, uint32_t, 0)
REDUCE_FNS(i64, int64_t, 0)
REDUCE_FNS(u64, uint64_t, 0)
REDUCE_FNS(f32, float, 1)
REDUCE_FNS(f64, double, 1)
REDUCE_FNS(bool, uint8_t, 0)
REDUCE_FNS(f16, uint16_t, 1)

#define EACH(P) \
  { P##i8, P##u8, P##i16, P##u16, P##i32, P##u32, P##i64, P##u64, P##f32, P##f64, P##bool, P##f16 }

typedef void (*reduce_fn)(int, const unsigned char *, size_t, ptrdiff_t, luashm_acc *);
static const reduce_fn reducers[LUASHM_NDTYPES] = EACH(reduce_);
typedef double (*sqdev_fn)(const unsigned char *, size_t, ptrdiff_t, double);
static const sqdev_fn sqdevs[LUASHM_NDTYPES] = EACH(sqdev_);

void luashm_reduce(int op, int dt, const unsigned char *p, size_t n, ptrdiff_t step,
                   luashm_acc *acc) {
  if (acc->n == 0 && op == LUASHM_RPROD) {
    acc->u = 1;
    acc->d = 1;
  }
  if (n == 0) return;
  reducers[dt](op, p, n, step, acc);
  acc->n += n;
}

double luashm_sqdev(int dt, const unsigned char *p, size_t n, ptrdiff_t step, double mean) {
  return sqdevs[dt](p, n, step, mean);
}

/* ---------------------------------------------------------------------------------------
** Accumulating loops (one slice at a time along an axis)
** ------------------------------------------------------------------------------------- */

#define ACCUM(NAME, TA, T, STMT)                                                          \
  static LUASHM_KERNEL int NAME(unsigned char *const *args, size_t n, const ptrdiff_t *s, \
                                void *ctx) {                                              \
    size_t i;                                                                             \
    (void)ctx;                                                                            \
    if (s[0] == (ptrdiff_t)sizeof(TA) && s[1] == (ptrdiff_t)sizeof(T)) {                  \
      TA *acc = (TA *)args[0];                                                            \
      const T *in = (const T *)args[1];                                                   \
      LUASHM_IVDEP for (i = 0; i < n; i++) {                                              \
        TA *a = &acc[i];                                                                  \
        T x = in[i];                                                                      \
        STMT;                                                                             \
      }                                                                                   \
    } else {                                                                              \
      unsigned char *pa = args[0];                                                        \
      const unsigned char *pi = args[1];                                                  \
      for (i = 0; i < n; i++, pa += s[0], pi += s[1]) {                                   \
        TA *a = (TA *)pa;                                                                 \
        T x = *(const T *)pi;                                                             \
        STMT;                                                                             \
      }                                                                                   \
    }                                                                                     \
    return 0;                                                                             \
  }

/* Running best of a slice: 1 when x beats b (first NaN wins). */
#define BEATS(N, x, b, max)                                  \
  ((max) ? KEY(N, x) > KEY(N, b) : KEY(N, x) < KEY(N, b)) || \
      (KEY(N, x) != KEY(N, x) && KEY(N, b) == KEY(N, b))

#define ACCUM_FNS(N, T, FLOATY)                                                                 \
  ACCUM(asum_##N, double, T, *a += AS_D(N, x))                                                  \
  ACCUM(aprod_##N, double, T, *a *= AS_D(N, x))                                                 \
  ACCUM(isum_##N, uint64_t, T, *a += AS_U(x))                                                   \
  ACCUM(iprod_##N, uint64_t, T, *a *= AS_U(x))                                                  \
  ACCUM(amin_##N, T, T, *a = (BEATS(N, x, *a, 0)) ? x : *a)                                     \
  ACCUM(amax_##N, T, T, *a = (BEATS(N, x, *a, 1)) ? x : *a)                                     \
  ACCUM(acount_##N, int64_t, T, *a += NZ(N, x))                                                 \
  static int aarg_##N(unsigned char *const *args, size_t n, const ptrdiff_t *s, int max,        \
                      int64_t at) {                                                             \
    unsigned char *pb = args[0], *pi = args[1];                                                 \
    const unsigned char *px = args[2];                                                          \
    size_t i;                                                                                   \
    for (i = 0; i < n; i++, pb += s[0], pi += s[1], px += s[2]) {                               \
      T x = *(const T *)px, b = *(const T *)pb;                                                 \
      if (BEATS(N, x, b, max)) {                                                                \
        *(T *)pb = x;                                                                           \
        *(int64_t *)pi = at;                                                                    \
      }                                                                                         \
    }                                                                                           \
    return 0;                                                                                   \
  }                                                                                             \
  static int aargmin_##N(unsigned char *const *args, size_t n, const ptrdiff_t *s, void *ctx) { \
    return aarg_##N(args, n, s, 0, *(const int64_t *)ctx);                                      \
  }                                                                                             \
  static int aargmax_##N(unsigned char *const *args, size_t n, const ptrdiff_t *s, void *ctx) { \
    return aarg_##N(args, n, s, 1, *(const int64_t *)ctx);                                      \
  }                                                                                             \
  static int asqdev_##N(unsigned char *const *args, size_t n, const ptrdiff_t *s, void *ctx) {  \
    unsigned char *pa = args[0];                                                                \
    const unsigned char *pm = args[1], *px = args[2];                                           \
    size_t i;                                                                                   \
    (void)ctx;                                                                                  \
    for (i = 0; i < n; i++, pa += s[0], pm += s[1], px += s[2]) {                               \
      double dv = AS_D(N, *(const T *)px) - *(const double *)pm;                                \
      *(double *)pa += dv * dv;                                                                 \
    }                                                                                           \
    return 0;                                                                                   \
  }                                                                                             \
  static const luashm_loop accums_##N[LUASHM_NREDUCE] = {FLOATY ? asum_##N : isum_##N,          \
                                                         FLOATY ? aprod_##N : iprod_##N,        \
                                                         amin_##N,                              \
                                                         amax_##N,                              \
                                                         aargmin_##N,                           \
                                                         aargmax_##N,                           \
                                                         acount_##N,                            \
                                                         asum_##N};

ACCUM_FNS(i8, int8_t, 0)
ACCUM_FNS(u8, uint8_t, 0)
ACCUM_FNS(i16, int16_t, 0)
ACCUM_FNS(u16, uint16_t, 0)
ACCUM_FNS(i32, int32_t, 0)
ACCUM_FNS(u32, uint32_t, 0)
ACCUM_FNS(i64, int64_t, 0)
ACCUM_FNS(u64, uint64_t, 0)
ACCUM_FNS(f32, float, 1)
ACCUM_FNS(f64, double, 1)
ACCUM_FNS(bool, uint8_t, 0)
ACCUM_FNS(f16, uint16_t, 1)

static const luashm_loop *const accums[LUASHM_NDTYPES] = EACH(accums_);
static const luashm_loop sqdev_loops[LUASHM_NDTYPES] = EACH(asqdev_);

luashm_loop luashm_accum_loop(int op, int dt) {
  return accums[dt][op];
}

luashm_loop luashm_sqdev_loop(int dt) {
  return sqdev_loops[dt];
}

/* ---------------------------------------------------------------------------------------
** Running sums
** ------------------------------------------------------------------------------------- */

#define CUMSUM(N, T, ADD)                                                               \
  static void cumsum_##N(unsigned char *p, size_t n, ptrdiff_t step, uint64_t *carry) { \
    T c;                                                                                \
    size_t i;                                                                           \
    memcpy(&c, carry, sizeof c);                                                        \
    for (i = 0; i < n; i++, p += step) *(T *)p = c = (T)(ADD(c, *(T *)p));              \
    memcpy(carry, &c, sizeof c);                                                        \
  }
#define WADD(c, x) ((uint64_t)(c) + (uint64_t)(x))
#define FADD(c, x) ((c) + (x))
#define HADD(c, x) luashm_float_to_half(h2f(c) + h2f(x))
#define BADD(c, x) ((c) != 0 || (x) != 0)
CUMSUM(i8, int8_t, WADD)
CUMSUM(u8, uint8_t, WADD)
CUMSUM(i16, int16_t, WADD)
CUMSUM(u16, uint16_t, WADD)
CUMSUM(i32, int32_t, WADD)
CUMSUM(u32, uint32_t, WADD)
CUMSUM(i64, int64_t, WADD)
CUMSUM(u64, uint64_t, WADD)
CUMSUM(f32, float, FADD)
CUMSUM(f64, double, FADD)
CUMSUM(bool, uint8_t, BADD)
CUMSUM(f16, uint16_t, HADD)

typedef void (*cumsum_fn)(unsigned char *, size_t, ptrdiff_t, uint64_t *);
static const cumsum_fn cumsums[LUASHM_NDTYPES] = EACH(cumsum_);

void luashm_cumsum(int dt, unsigned char *p, size_t n, ptrdiff_t step, uint64_t *carry) {
  cumsums[dt](p, n, step, carry);
}

/* ---------------------------------------------------------------------------------------
** Dot product
** ------------------------------------------------------------------------------------- */

static LUASHM_KERNEL double dot_f64(const double *x, const double *y, size_t n) {
  double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  size_t i = 0;
  int k;
  for (; i + 8 <= n; i += 8)
    for (k = 0; k < 8; k++) acc[k] += x[i + k] * y[i + k];
  for (; i < n; i++) acc[0] += x[i] * y[i];
  return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

int luashm_dot(int ct, int dx, const unsigned char *x, ptrdiff_t sx, int dy, const unsigned char *y,
               ptrdiff_t sy, size_t n, int64_t *iv, double *dv) {
  size_t i;
  if (LUASHM_ISFLOAT(ct)) {
    double s = 0;
    if (dx == LUASHM_F64 && dy == LUASHM_F64 && sx == 8 && sy == 8) {
      s = dot_f64((const double *)x, (const double *)y, n);
    } else {
      for (i = 0; i < n; i++, x += sx, y += sy)
        s += luashm_load_double(dx, x) * luashm_load_double(dy, y);
    }
    if (ct == LUASHM_F32) s = (float)s;
    if (ct == LUASHM_F16) s = h2f(luashm_double_to_half(s));
    *dv = s;
    return 1;
  } else {
    uint64_t s = 0;
    unsigned char low[8];
    for (i = 0; i < n; i++, x += sx, y += sy)
      s += (uint64_t)luashm_load_int(dx, x) * (uint64_t)luashm_load_int(dy, y);
    if (ct == LUASHM_BOOL) {
      *iv = s != 0;
      return 0;
    }
    /* Wrapped into ct: its low bytes, sign- or zero-extended as the dtype reads them. */
    memcpy(low, &s, sizeof low);
    *iv = luashm_load_int(ct, low);
    return 0;
  }
}
