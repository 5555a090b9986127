/*
** Sorting (kernels.h): every dtype is mapped to unsigned keys of its own width whose order is
** the value order (signed integers flip the sign bit, floats flip all bits when negative, every
** NaN becomes the largest key so NaN sorts last), sorted by an LSD radix sort one byte per pass
** (a pass whose byte is the same for every key is skipped), then mapped back. Radix sorting is
** stable, so argsort gives equal values in their original order. Short runs use an insertion
** sort on the same keys.
*/
#include <stdlib.h>
#include <string.h>

#include "kernels.h"

#define SHORT 64 /* below this, insertion sort */

/* ---------------------------------------------------------------------------------------
** Keys
** ------------------------------------------------------------------------------------- */

/* Key of the element bits v (width W bytes) of dtype dt, and back. */
#define KEY_FNS(W, K, SIGN, EXPMASK)                                                    \
  static inline K to_key##W(int dt, K v) {                                              \
    int kind = luashm_dtype_kinds[dt];                                                  \
    if (kind == LUASHM_KIND_UINT) return v;                                             \
    if (kind == LUASHM_KIND_BOOL) return (K)(v != 0);                                   \
    if (kind == LUASHM_KIND_INT) return (K)(v ^ SIGN);                                  \
    if ((v & EXPMASK) == EXPMASK && (v & ~(SIGN | EXPMASK)) != 0) /* NaN: last */       \
      return (K)(v | SIGN);                                                             \
    return (v & SIGN) ? (K)~v : (K)(v | SIGN);                                          \
  }                                                                                     \
  /* For argsort: every zero and every NaN the same key, as they compare equal (NumPy's \
     stable argsort keeps them in their order). */                                      \
  static inline K canon##W(int dt, K v) {                                               \
    if (luashm_dtype_kinds[dt] != LUASHM_KIND_FLOAT) return v;                          \
    if ((v & (K)~SIGN) == 0) return 0;                                                  \
    if ((v & EXPMASK) == EXPMASK && (v & (K) ~(SIGN | EXPMASK)) != 0) return (K)~SIGN;  \
    return v;                                                                           \
  }                                                                                     \
  static inline K from_key##W(int dt, K k) {                                            \
    int kind = luashm_dtype_kinds[dt];                                                  \
    if (kind == LUASHM_KIND_UINT || kind == LUASHM_KIND_BOOL) return k;                 \
    if (kind == LUASHM_KIND_INT) return (K)(k ^ SIGN);                                  \
    return (k & SIGN) ? (K)(k & (K)~SIGN) : (K)~k;                                      \
  }
KEY_FNS(1, uint8_t, 0x80u, 0)
KEY_FNS(2, uint16_t, 0x8000u, 0x7c00u)
KEY_FNS(4, uint32_t, 0x80000000u, 0x7f800000u)
KEY_FNS(8, uint64_t, 0x8000000000000000ull, 0x7ff0000000000000ull)

/* ---------------------------------------------------------------------------------------
** Radix sorts of keys, optionally carrying 1-based positions
** ------------------------------------------------------------------------------------- */

/* Sorts n keys at k (with positions at ix when ix is not NULL), using tk/tix as scratch of the
   same sizes; the result ends in k/ix. */
#define RADIX(W, K)                                                                               \
  static void insertion##W(K *k, int64_t *ix, size_t n) {                                         \
    size_t i, j;                                                                                  \
    for (i = 1; i < n; i++) {                                                                     \
      K v = k[i];                                                                                 \
      int64_t p = ix ? ix[i] : 0;                                                                 \
      for (j = i; j > 0 && k[j - 1] > v; j--) {                                                   \
        k[j] = k[j - 1];                                                                          \
        if (ix) ix[j] = ix[j - 1];                                                                \
      }                                                                                           \
      k[j] = v;                                                                                   \
      if (ix) ix[j] = p;                                                                          \
    }                                                                                             \
  }                                                                                               \
  static void radix##W(K *k, int64_t *ix, K *tk, int64_t *tix, size_t n) {                        \
    size_t hist[W][256];                                                                          \
    K *src = k, *dst = tk;                                                                        \
    int64_t *isrc = ix, *idst = tix;                                                              \
    size_t i;                                                                                     \
    int b;                                                                                        \
    memset(hist, 0, sizeof hist);                                                                 \
    for (i = 0; i < n; i++)                                                                       \
      for (b = 0; b < (W); b++) hist[b][(k[i] >> (8 * b)) & 0xff]++;                              \
    for (b = 0; b < (W); b++) {                                                                   \
      size_t sum = 0, c, *h = hist[b];                                                            \
      int d;                                                                                      \
      if (h[(src[0] >> (8 * b)) & 0xff] == n) continue; /* one digit: nothing to do */            \
      for (d = 0; d < 256; d++) {                                                                 \
        c = h[d];                                                                                 \
        h[d] = sum;                                                                               \
        sum += c;                                                                                 \
      }                                                                                           \
      if (isrc != NULL) {                                                                         \
        for (i = 0; i < n; i++) {                                                                 \
          size_t at = h[(src[i] >> (8 * b)) & 0xff]++;                                            \
          dst[at] = src[i];                                                                       \
          idst[at] = isrc[i];                                                                     \
        }                                                                                         \
        {                                                                                         \
          int64_t *t = isrc;                                                                      \
          isrc = idst;                                                                            \
          idst = t;                                                                               \
        }                                                                                         \
      } else {                                                                                    \
        for (i = 0; i < n; i++) dst[h[(src[i] >> (8 * b)) & 0xff]++] = src[i];                    \
      }                                                                                           \
      {                                                                                           \
        K *t = src;                                                                               \
        src = dst;                                                                                \
        dst = t;                                                                                  \
      }                                                                                           \
    }                                                                                             \
    if (src != k) {                                                                               \
      memcpy(k, src, n *(W));                                                                     \
      if (ix) memcpy(ix, isrc, n * sizeof *ix);                                                   \
    }                                                                                             \
  }                                                                                               \
  static int sort##W(int dt, K *v, size_t n) {                                                    \
    size_t i;                                                                                     \
    K *tmp = NULL;                                                                                \
    for (i = 0; i < n; i++) v[i] = to_key##W(dt, v[i]);                                           \
    if (n < SHORT) {                                                                              \
      insertion##W(v, NULL, n);                                                                   \
    } else {                                                                                      \
      if ((tmp = (K *)malloc(n * (W))) == NULL) {                                                 \
        for (i = 0; i < n; i++) v[i] = from_key##W(dt, v[i]);                                     \
        return -1;                                                                                \
      }                                                                                           \
      radix##W(v, NULL, tmp, NULL, n);                                                            \
      free(tmp);                                                                                  \
    }                                                                                             \
    for (i = 0; i < n; i++) v[i] = from_key##W(dt, v[i]);                                         \
    return 0;                                                                                     \
  }                                                                                               \
  static int argsort##W(int dt, const unsigned char *p, size_t n, ptrdiff_t step, int64_t *out) { \
    K *k = (K *)malloc((n ? n : 1) * 2 * (W));                                                    \
    int64_t *tix = n >= SHORT ? (int64_t *)malloc(n * sizeof *tix) : NULL;                        \
    size_t i;                                                                                     \
    if (k == NULL || (n >= SHORT && tix == NULL)) {                                               \
      free(k);                                                                                    \
      free(tix);                                                                                  \
      return -1;                                                                                  \
    }                                                                                             \
    for (i = 0; i < n; i++, p += step) {                                                          \
      K v;                                                                                        \
      memcpy(&v, p, sizeof v);                                                                    \
      k[i] = to_key##W(dt, canon##W(dt, v));                                                      \
      out[i] = (int64_t)i + 1;                                                                    \
    }                                                                                             \
    if (n < SHORT)                                                                                \
      insertion##W(k, out, n);                                                                    \
    else                                                                                          \
      radix##W(k, out, k + n, tix, n);                                                            \
    free(k);                                                                                      \
    free(tix);                                                                                    \
    return 0;                                                                                     \
  }
RADIX(1, uint8_t)
RADIX(2, uint16_t)
RADIX(4, uint32_t)
RADIX(8, uint64_t)

int luashm_sort(int dt, void *p, size_t n) {
  switch (luashm_dtype_sizes[dt]) {
    case 1: return sort1(dt, (uint8_t *)p, n);
    case 2: return sort2(dt, (uint16_t *)p, n);
    case 4: return sort4(dt, (uint32_t *)p, n);
    default: return sort8(dt, (uint64_t *)p, n);
  }
}

int luashm_argsort(int dt, const unsigned char *p, size_t n, ptrdiff_t step, int64_t *out) {
  switch (luashm_dtype_sizes[dt]) {
    case 1: return argsort1(dt, p, n, step, out);
    case 2: return argsort2(dt, p, n, step, out);
    case 4: return argsort4(dt, p, n, step, out);
    default: return argsort8(dt, p, n, step, out);
  }
}
