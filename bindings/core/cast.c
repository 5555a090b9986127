/*
** Conversions between dtypes (kernels.h): the kinds, IEEE half precision, loading and storing one
** element by the exact value rules, and the cast loops: unsafe (NumPy's astype, except that
** floats saturate into integers), exact (copy's rules, stopping at the first value that does
** not fit) and raw strided copies.
*/
#include <math.h>
#include <string.h>

#include "kernels.h"

const unsigned char luashm_dtype_kinds[LUASHM_NDTYPES] = {
    LUASHM_KIND_INT,   LUASHM_KIND_UINT,  LUASHM_KIND_INT,  LUASHM_KIND_UINT,
    LUASHM_KIND_INT,   LUASHM_KIND_UINT,  LUASHM_KIND_INT,  LUASHM_KIND_UINT,
    LUASHM_KIND_FLOAT, LUASHM_KIND_FLOAT, LUASHM_KIND_BOOL, LUASHM_KIND_FLOAT};

/* ---------------------------------------------------------------------------------------
** Half precision: NumPy's halffloat.c algorithms, so that the bits agree with NumPy's
** ------------------------------------------------------------------------------------- */

float luashm_half_to_float(uint16_t h) {
  uint32_t sign = (uint32_t)(h & 0x8000u) << 16, exp = (h >> 10) & 0x1fu, man = h & 0x3ffu, f;
  float r;
  if (exp == 0) {
    if (man == 0) {
      f = sign;
    } else { /* subnormal: normalise */
      exp = 113;
      do {
        man <<= 1;
        exp--;
      } while (!(man & 0x400u));
      f = sign | (exp << 23) | ((man & 0x3ffu) << 13);
    }
  } else if (exp == 0x1f) {
    f = sign | 0x7f800000u | (man << 13);
  } else {
    f = sign | ((exp + 112) << 23) | (man << 13);
  }
  memcpy(&r, &f, sizeof r);
  return r;
}

uint16_t luashm_float_to_half(float v) {
  uint32_t f, f_exp, f_sig;
  uint16_t h_sgn, h_exp, h_sig;
  memcpy(&f, &v, sizeof f);
  h_sgn = (uint16_t)((f & 0x80000000u) >> 16);
  f_exp = f & 0x7f800000u;
  if (f_exp >= 0x47800000u) { /* overflow, inf, NaN */
    f_sig = f & 0x007fffffu;
    if (f_exp == 0x7f800000u && f_sig != 0) {
      uint16_t ret = (uint16_t)(0x7c00u + (f_sig >> 13));
      return (uint16_t)(h_sgn + (ret == 0x7c00u ? ret + 1 : ret));
    }
    return (uint16_t)(h_sgn + 0x7c00u);
  }
  if (f_exp <= 0x38000000u) { /* a subnormal half or a signed zero */
    if (f_exp < 0x33000000u) return h_sgn;
    f_exp >>= 23;
    f_sig = 0x00800000u + (f & 0x007fffffu);
    f_sig >>= (113 - f_exp);
    if (((f_sig & 0x00003fffu) != 0x00001000u) || (f & 0x000007ffu)) f_sig += 0x00001000u;
    return (uint16_t)(h_sgn + (uint16_t)(f_sig >> 13));
  }
  h_exp = (uint16_t)((f_exp - 0x38000000u) >> 13);
  f_sig = f & 0x007fffffu;
  if ((f_sig & 0x00003fffu) != 0x00001000u) f_sig += 0x00001000u;
  h_sig = (uint16_t)((uint16_t)(f_sig >> 13) + h_exp); /* a carry into the exponent is right */
  return (uint16_t)(h_sgn + h_sig);
}

uint16_t luashm_double_to_half(double v) {
  uint64_t d, d_exp, d_sig;
  uint16_t h_sgn, h_exp, h_sig;
  memcpy(&d, &v, sizeof d);
  h_sgn = (uint16_t)((d & 0x8000000000000000ull) >> 48);
  d_exp = d & 0x7ff0000000000000ull;
  if (d_exp >= 0x40f0000000000000ull) {
    d_sig = d & 0x000fffffffffffffull;
    if (d_exp == 0x7ff0000000000000ull && d_sig != 0) {
      uint16_t ret = (uint16_t)(0x7c00u + (d_sig >> 42));
      return (uint16_t)(h_sgn + (ret == 0x7c00u ? ret + 1 : ret));
    }
    return (uint16_t)(h_sgn + 0x7c00u);
  }
  if (d_exp <= 0x3f00000000000000ull) {
    if (d_exp < 0x3e60000000000000ull) return h_sgn;
    d_exp >>= 52;
    d_sig = 0x0010000000000000ull + (d & 0x000fffffffffffffull);
    d_sig <<= (d_exp - 998);
    if ((d_sig & 0x003fffffffffffffull) != 0x0010000000000000ull) d_sig += 0x0010000000000000ull;
    return (uint16_t)(h_sgn + (uint16_t)(d_sig >> 53));
  }
  h_exp = (uint16_t)((d_exp - 0x3f00000000000000ull) >> 42);
  d_sig = d & 0x000fffffffffffffull;
  if ((d_sig & 0x000007ffffffffffull) != 0x0000020000000000ull) d_sig += 0x0000020000000000ull;
  h_sig = (uint16_t)((uint16_t)(d_sig >> 42) + h_exp);
  return (uint16_t)(h_sgn + h_sig);
}

/* ---------------------------------------------------------------------------------------
** One element
** ------------------------------------------------------------------------------------- */

double luashm_load_double(int dt, const void *p) {
  switch (dt) {
    case LUASHM_I8: return *(const int8_t *)p;
    case LUASHM_U8: return *(const uint8_t *)p;
    case LUASHM_I16: return *(const int16_t *)p;
    case LUASHM_U16: return *(const uint16_t *)p;
    case LUASHM_I32: return *(const int32_t *)p;
    case LUASHM_U32: return *(const uint32_t *)p;
    case LUASHM_I64: return (double)*(const int64_t *)p;
    case LUASHM_U64: return (double)*(const uint64_t *)p;
    case LUASHM_F32: return *(const float *)p;
    case LUASHM_F64: return *(const double *)p;
    case LUASHM_BOOL: return *(const uint8_t *)p != 0;
    default: return luashm_half_to_float(*(const uint16_t *)p);
  }
}

int64_t luashm_load_int(int dt, const void *p) {
  switch (dt) {
    case LUASHM_I8: return *(const int8_t *)p;
    case LUASHM_U8: return *(const uint8_t *)p;
    case LUASHM_I16: return *(const int16_t *)p;
    case LUASHM_U16: return *(const uint16_t *)p;
    case LUASHM_I32: return *(const int32_t *)p;
    case LUASHM_U32: return *(const uint32_t *)p;
    case LUASHM_I64: return *(const int64_t *)p;
    case LUASHM_U64: return (int64_t) * (const uint64_t *)p;
    case LUASHM_BOOL: return *(const uint8_t *)p != 0;
    default: return (int64_t)luashm_load_double(dt, p);
  }
}

static const int64_t int_lo[LUASHM_NDTYPES] = {INT8_MIN,  0, INT16_MIN, 0, INT32_MIN, 0,
                                               INT64_MIN, 0, 0,         0, 0,         0};
static const int64_t int_hi[LUASHM_NDTYPES] = {
    INT8_MAX, UINT8_MAX, INT16_MAX, UINT16_MAX, INT32_MAX, UINT32_MAX, INT64_MAX, -1, 0, 0, 1, 0};

int luashm_store_int(int dt, void *p, int64_t i) {
  if (LUASHM_ISFLOAT(dt)) return luashm_store_double(dt, p, (double)i);
  if (dt != LUASHM_I64 && dt != LUASHM_U64 && (i < int_lo[dt] || i > int_hi[dt]))
    return LUASHM_ERANGE;
  memcpy(p, &i, luashm_dtype_sizes[dt]); /* little-endian: the low bytes */
  return LUASHM_OK;
}

int luashm_store_double(int dt, void *p, double v) {
  uint64_t u;
  switch (dt) {
    case LUASHM_F32: *(float *)p = (float)v; return LUASHM_OK;
    case LUASHM_F64: *(double *)p = v; return LUASHM_OK;
    case LUASHM_F16: *(uint16_t *)p = luashm_double_to_half(v); return LUASHM_OK;
    default: break;
  }
  if (!(v == floor(v))) return LUASHM_ENOTINT; /* NaN and the infinities too */
  if (dt == LUASHM_U64) {
    if (!(v >= 0 && v < 0x1p64)) return LUASHM_ERANGE;
    u = (uint64_t)v;
    memcpy(p, &u, sizeof u);
    return LUASHM_OK;
  }
  if (!(v >= -0x1p63 && v < 0x1p63)) return LUASHM_ERANGE;
  return luashm_store_int(dt, p, (int64_t)v);
}

/* ---------------------------------------------------------------------------------------
** Unsafe casts: one loop per pair of dtypes
** ------------------------------------------------------------------------------------- */

/* Floats into integers: truncation toward zero, saturated, NaN to 0. */
#define SAT(N, T, LO, HI)               \
  static inline T sat_##N(double v) {   \
    if (v != v) return 0;               \
    if (v <= (double)(LO)) return (LO); \
    if (v >= (double)(HI)) return (HI); \
    return (T)v;                        \
  }
SAT(i8, int8_t, INT8_MIN, INT8_MAX)
SAT(u8, uint8_t, 0, UINT8_MAX)
SAT(i16, int16_t, INT16_MIN, INT16_MAX)
SAT(u16, uint16_t, 0, UINT16_MAX)
SAT(i32, int32_t, INT32_MIN, INT32_MAX)
SAT(u32, uint32_t, 0, UINT32_MAX)

/* (double)INT64_MAX rounds up to 2^63, so the upper bounds are compared as such. */
static inline int64_t sat_i64(double v) {
  if (v != v) return 0;
  if (v < -0x1p63) return INT64_MIN;
  if (v >= 0x1p63) return INT64_MAX;
  return (int64_t)v;
}

static inline uint64_t sat_u64(double v) {
  if (v != v || v <= 0) return 0;
  if (v >= 0x1p64) return UINT64_MAX;
  return (uint64_t)v;
}

static inline double half_in(uint16_t h) {
  return luashm_half_to_float(h);
}

/* The conversion of x (dtype FN of class FC) to dtype TN (C type TT, class TC). Classes: I
   integers (bool included as a source), B bool, F f32/f64, H f16. */
#define CVT(TN, TT, TC, FN, FC, x) CVT_##TC##FC(TN, TT, FN, x)
#define CVT_II(TN, TT, FN, x) ((TT)(x))
#define CVT_IF(TN, TT, FN, x) sat_##TN((double)(x))
#define CVT_IH(TN, TT, FN, x) sat_##TN((double)half_in(x))
#define CVT_BI(TN, TT, FN, x) ((TT)((x) != 0))
#define CVT_BF(TN, TT, FN, x) ((TT)((x) != 0))
#define CVT_BH(TN, TT, FN, x) ((TT)(((x)&0x7fffu) != 0))
#define CVT_FI(TN, TT, FN, x) ((TT)(x))
#define CVT_FF(TN, TT, FN, x) ((TT)(x))
#define CVT_FH(TN, TT, FN, x) ((TT)half_in(x))
#define CVT_HI(TN, TT, FN, x) luashm_float_to_half((float)(x))
#define CVT_HF(TN, TT, FN, x) HALF_FROM_##FN(x)
#define CVT_HH(TN, TT, FN, x) (x)
#define HALF_FROM_f32(x) luashm_float_to_half(x)
#define HALF_FROM_f64(x) luashm_double_to_half(x)

/* bool as a source behaves as the integer it holds (0 or 1; any nonzero byte counts as 1). */
#define SRC_bool(x) ((uint8_t)((x) != 0))
#define SRC_any(x) (x)

#define CAST_FN(TN, TT, TC, FN, FT, FC, SRC)                                                       \
  static LUASHM_KERNEL int cast_##FN##_##TN(unsigned char *const *a, size_t n, const ptrdiff_t *s, \
                                            void *ctx) {                                           \
    size_t i;                                                                                      \
    (void)ctx;                                                                                     \
    if (s[0] == (ptrdiff_t)sizeof(TT) && s[1] == (ptrdiff_t)sizeof(FT)) {                          \
      TT *o = (TT *)a[0];                                                                          \
      const FT *x = (const FT *)a[1];                                                              \
      for (i = 0; i < n; i++) o[i] = CVT(TN, TT, TC, FN, FC, SRC(x[i]));                           \
    } else {                                                                                       \
      unsigned char *o = a[0];                                                                     \
      const unsigned char *x = a[1];                                                               \
      for (i = 0; i < n; i++, o += s[0], x += s[1])                                                \
        *(TT *)o = CVT(TN, TT, TC, FN, FC, SRC(*(const FT *)x));                                   \
    }                                                                                              \
    return 0;                                                                                      \
  }

/* The dtypes, in enum order: name, C type, class as a target, class as a source, how a source
   value is read. Two copies, so that one can expand inside the other. */
#define DTYPES_A(X, ...)                        \
  X(i8, int8_t, I, I, SRC_any, __VA_ARGS__)     \
  X(u8, uint8_t, I, I, SRC_any, __VA_ARGS__)    \
  X(i16, int16_t, I, I, SRC_any, __VA_ARGS__)   \
  X(u16, uint16_t, I, I, SRC_any, __VA_ARGS__)  \
  X(i32, int32_t, I, I, SRC_any, __VA_ARGS__)   \
  X(u32, uint32_t, I, I, SRC_any, __VA_ARGS__)  \
  X(i64, int64_t, I, I, SRC_any, __VA_ARGS__)   \
  X(u64, uint64_t, I, I, SRC_any, __VA_ARGS__)  \
  X(f32, float, F, F, SRC_any, __VA_ARGS__)     \
  X(f64, double, F, F, SRC_any, __VA_ARGS__)    \
  X(bool, uint8_t, B, I, SRC_bool, __VA_ARGS__) \
  X(f16, uint16_t, H, H, SRC_any, __VA_ARGS__)
#define DTYPES_B(X, ...)                        \
  X(i8, int8_t, I, I, SRC_any, __VA_ARGS__)     \
  X(u8, uint8_t, I, I, SRC_any, __VA_ARGS__)    \
  X(i16, int16_t, I, I, SRC_any, __VA_ARGS__)   \
  X(u16, uint16_t, I, I, SRC_any, __VA_ARGS__)  \
  X(i32, int32_t, I, I, SRC_any, __VA_ARGS__)   \
  X(u32, uint32_t, I, I, SRC_any, __VA_ARGS__)  \
  X(i64, int64_t, I, I, SRC_any, __VA_ARGS__)   \
  X(u64, uint64_t, I, I, SRC_any, __VA_ARGS__)  \
  X(f32, float, F, F, SRC_any, __VA_ARGS__)     \
  X(f64, double, F, F, SRC_any, __VA_ARGS__)    \
  X(bool, uint8_t, B, I, SRC_bool, __VA_ARGS__) \
  X(f16, uint16_t, H, H, SRC_any, __VA_ARGS__)

/* For target TN: one cast function from every source. */
#define CAST_FROM(FN, FT, FTC, FC, SRC, TN, TT, TC) CAST_FN(TN, TT, TC, FN, FT, FC, SRC)
#define CASTS_TO(TN, TT, TC, TSC, TSRC, unused) DTYPES_B(CAST_FROM, TN, TT, TC)
DTYPES_A(CASTS_TO, 0)

#define CAST_ENTRY(FN, FT, FTC, FC, SRC, TN) cast_##FN##_##TN,
#define CAST_ROW(TN, TT, TC, TSC, TSRC, unused) {DTYPES_B(CAST_ENTRY, TN)},
static const luashm_loop casts[LUASHM_NDTYPES][LUASHM_NDTYPES] = {DTYPES_A(CAST_ROW, 0)};

luashm_loop luashm_cast_loop(int to, int from) {
  return casts[to][from];
}

/* ---------------------------------------------------------------------------------------
** Exact casts and raw copies
** ------------------------------------------------------------------------------------- */

int luashm_exact_loop(unsigned char *const *args, size_t n, const ptrdiff_t *steps, void *ctx) {
  luashm_exact *x = (luashm_exact *)ctx;
  unsigned char *o = args[0];
  const unsigned char *s = args[1];
  int by_double = LUASHM_ISFLOAT(x->to) || LUASHM_ISFLOAT(x->from);
  size_t i;
  for (i = 0; i < n; i++, o += steps[0], s += steps[1]) {
    int e = by_double ? luashm_store_double(x->to, o, luashm_load_double(x->from, s))
                      : luashm_store_int(x->to, o, luashm_load_int(x->from, s));
    if (e != LUASHM_OK) {
      x->bad = x->done + i;
      x->why = e;
      return LUASHM_EBAD;
    }
  }
  x->done += n;
  return 0;
}

#define COPY_FN(N, T)                                                                      \
  static LUASHM_KERNEL int copy_##N(unsigned char *const *a, size_t n, const ptrdiff_t *s, \
                                    void *ctx) {                                           \
    size_t i;                                                                              \
    (void)ctx;                                                                             \
    if (s[0] == (ptrdiff_t)sizeof(T) && s[1] == (ptrdiff_t)sizeof(T)) {                    \
      memmove(a[0], a[1], n * sizeof(T));                                                  \
    } else if (s[0] == (ptrdiff_t)sizeof(T) && s[1] == 0) { /* a fill */                   \
      T v = *(const T *)a[1], *o = (T *)a[0];                                              \
      for (i = 0; i < n; i++) o[i] = v;                                                    \
    } else {                                                                               \
      unsigned char *o = a[0];                                                             \
      const unsigned char *x = a[1];                                                       \
      for (i = 0; i < n; i++, o += s[0], x += s[1]) *(T *)o = *(const T *)x;               \
    }                                                                                      \
    return 0;                                                                              \
  }
COPY_FN(1, uint8_t)
COPY_FN(2, uint16_t)
COPY_FN(4, uint32_t)
COPY_FN(8, uint64_t)

luashm_loop luashm_copy_loop(size_t itemsize) {
  switch (itemsize) {
    case 1: return copy_1;
    case 2: return copy_2;
    case 4: return copy_4;
    default: return copy_8;
  }
}
