/*
** The NPY format (NumPy's .npy files), the one home of its header writer and parser, and the
** dtype table every Array shares. Plain C, no Lua: shm.array, shm.open, shm.load, a:save and
** the fuzzer all call it. Functions that can fail return 0, or -1 with a message in err
** (LUASHM_ERRLEN bytes, "<what>: <cause>" without the "luashm: " prefix).
*/
#ifndef LUASHM_NPY_H
#define LUASHM_NPY_H

#include <stddef.h>
#include <stdint.h>

/* The twelve dtypes, in this order everywhere (tables are indexed by it; bool and f16 came
   last so that the first ten keep their numbers). */
enum {
  LUASHM_I8,
  LUASHM_U8,
  LUASHM_I16,
  LUASHM_U16,
  LUASHM_I32,
  LUASHM_U32,
  LUASHM_I64,
  LUASHM_U64,
  LUASHM_F32,
  LUASHM_F64,
  LUASHM_BOOL, /* NumPy's |b1: one byte, 0 or 1 */
  LUASHM_F16,  /* NumPy's <f2: IEEE 754 half precision */
  LUASHM_NDTYPES
};

/* NumPy's own limit on dimensions (NPY_MAXDIMS). */
#define LUASHM_MAXDIMS 32

/* "i8", "u8", ..., "f64", "bool", "f16". */
extern const char *const luashm_dtype_names[LUASHM_NDTYPES];
/* 1, 1, 2, 2, 4, 4, 8, 8, 4, 8, 1, 2. */
extern const unsigned char luashm_dtype_sizes[LUASHM_NDTYPES];

/* The dtype of a short ("i32") or long ("int32", "float16", "bool_") name, or -1. */
int luashm_dtype_lookup(const char *name);

/* What an NPY header says. */
typedef struct luashm_npy {
  int dtype;
  int ndim;
  size_t shape[LUASHM_MAXDIMS];
  size_t count;       /* product of shape (1 for ndim 0) */
  size_t data_offset; /* bytes from the start of the file to the first element */
} luashm_npy;

/* The NPY magic present: 1 (the parser then judges the rest), else 0. Reads at most 6 bytes. */
int luashm_npy_probe(const unsigned char *p, size_t avail);

/* Bytes of the header luashm_npy_write writes for this dtype and shape: a multiple of 64. */
size_t luashm_npy_header_len(int dtype, int ndim, const size_t *shape);

/* Writes the version 1.0 header, byte for byte what NumPy's write_array writes, into out
   (luashm_npy_header_len bytes). */
void luashm_npy_write(unsigned char *out, int dtype, int ndim, const size_t *shape);

/* Parses an untrusted header. p holds avail bytes (never read beyond); total is the size of
   the whole file or block, which must hold data_offset + count * itemsize bytes. Fills *h. */
int luashm_npy_parse(const unsigned char *p, size_t avail, size_t total, luashm_npy *h, char *err);

/* Reads the header of the .npy file at path into *h (checked against the file's size). */
int luashm_npy_read_header(const char *path, luashm_npy *h, char *err);

/* Reads n bytes of data at h->data_offset of the file at path into dst. */
int luashm_npy_read_data(const char *path, const luashm_npy *h, void *dst, size_t n, char *err);

/* Writes a .npy file at path: the header for (dtype, ndim, shape), then n bytes of data. */
int luashm_npy_save(const char *path, int dtype, int ndim, const size_t *shape, const void *data,
                    size_t n, char *err);

#endif
