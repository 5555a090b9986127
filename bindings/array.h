/*
** What the Array's files share: array.c (the type: constructors, element access, properties,
** lifetime, travel), array_view.c (views, copies and conversions), array_ops.c (elementwise
** operations) and array_reduce.c (reductions, sorting, atomics). One Lua type, one metatable
** per dtype, methods registered from each file.
*/
#ifndef LUASHM_ARRAY_H
#define LUASHM_ARRAY_H

#include <stddef.h>
#include <stdint.h>

#include "kernels.h"
#include "kinds.h"

/* a:close closes the block (the array attached or created it) or frees the private memory,
   and so every view of it; without it a:close closes only that view. */
#define AF_OWNS 1
/* The whole self-describing array of its block: it travels by name alone. */
#define AF_WHOLE 2

/* An N-d strided view (NumPy's ndarray) of a Block's bytes or of private memory. */
typedef struct array {
  luashm_object head;          /* head.b: the Block, or NULL for private memory (user value 1
                                  holds either: the Block, or the array_mem) */
  unsigned char *const *datap; /* where the storage's base pointer lives (the Block's data, the
                                  memory's data, or luashm_array_closed for a closed view):
                                  NULL there means closed */
  size_t offset;               /* bytes from the base to element (1, ..., 1) */
  size_t count;                /* elements */
  unsigned char dtype, itemsize, ndim, flags;
  size_t shape[]; /* ndim sizes, then ndim byte strides (array_strides) */
} array;

/* Private memory (a userdata with a __gc that frees it). data is NULL once freed by close. */
typedef struct array_mem {
  unsigned char *data;
  size_t size;
} array_mem;

/* The base pointer of every closed view. */
extern unsigned char *const luashm_array_closed;

static inline ptrdiff_t *array_strides(const array *a) {
  return (ptrdiff_t *)(a->shape + a->ndim);
}

/* The first element (the view must be open). */
static inline unsigned char *array_data(const array *a) {
  return *a->datap + a->offset;
}

/* ---------------------------------------------------------------------------------------
** The gate and messages (array.c)
** ------------------------------------------------------------------------------------- */

/* Raises the error for a closed array. */
int luashm_array_closed_error(lua_State *L, const array *a);

/* The Array at index i whatever its state (a type error if it is none): the kind's tag, much
   cheaper than luaL_checkudata (a:get in a loop is measured against an empty C method). */
static inline __attribute__((always_inline)) array *luashm_array_to(lua_State *L, int i) {
  return (array *)luashm_tokind(L, i, &luashm_kind_array);
}

/* The open Array at index i, raising "... is closed" otherwise. */
static inline __attribute__((always_inline)) array *luashm_array_check(lua_State *L, int i) {
  array *a = luashm_array_to(L, i);
  if (LUASHM_UNLIKELY(*a->datap == NULL)) luashm_array_closed_error(L, a);
  return a;
}

/* Pushes "'NAME'" (a shared array) or "(private)" and returns it. */
const char *luashm_array_label(lua_State *L, const array *a);
/* Pushes "(3, 4)" (or "(3,)") and returns it. */
const char *luashm_array_pushshape(lua_State *L, int ndim, const size_t *shape);

/* ---------------------------------------------------------------------------------------
** Values (array.c)
** ------------------------------------------------------------------------------------- */

/* Per dtype: push the element at p (u64 as two's complement, bool as a boolean); store the
   value at idx into p when it is the dtype's common case (returns 1), else do nothing (0:
   luashm_array_store decides). */
typedef void (*luashm_array_pushfn)(lua_State *L, const void *p);
typedef int (*luashm_array_storefn)(lua_State *L, int idx, void *p);
extern const luashm_array_pushfn luashm_array_pushers[LUASHM_NDTYPES];
extern const luashm_array_storefn luashm_array_fast[LUASHM_NDTYPES];
#define luashm_array_push(L, dt, p) luashm_array_pushers[dt]((L), (p))
/* Stores the Lua value at idx into p by dt's value rules: LUASHM_OK or why not. */
int luashm_array_store(lua_State *L, int idx, int dt, void *p);
/* Raises the error for a value that could not be stored: where says where ("at index 3"). */
int luashm_array_value_error(lua_State *L, const array *a, int code, int idx, const char *where);
/* Raises "array '...': value ... at index <flat + 1> ...". */
int luashm_array_flat_error(lua_State *L, const array *a, int code, int idx, size_t flat);

/* ---------------------------------------------------------------------------------------
** Making arrays (array.c)
** ------------------------------------------------------------------------------------- */

/* C-order strides for shape. */
void luashm_array_cstrides(int ndim, const size_t *shape, size_t itemsize, ptrdiff_t *strides);
/* 1 when the view is C-contiguous (NumPy's flag: length-1 dimensions do not count). */
int luashm_array_contiguous(const array *a);
/* Elements of a shape, raising when the byte count overflows. */
size_t luashm_array_count(lua_State *L, int ndim, const size_t *shape, size_t itemsize);

/* Pushes a view of the storage of the array at aidx: dtype dt (same itemsize or the same
   bytes reinterpreted by the caller), shape, strides and offset (checked by the caller). */
array *luashm_array_view(lua_State *L, int aidx, int ndim, const size_t *shape,
                         const ptrdiff_t *strides, size_t offset);
/* Pushes a new C-contiguous private array (zero-filled when zero is set). */
array *luashm_array_private(lua_State *L, int dt, int ndim, const size_t *shape, int zero);
/* Pushes a new C-contiguous shared self-describing array (opts at optidx, 0 for none: name,
   track, mode), zero-filled. */
array *luashm_array_shared(lua_State *L, int dt, int ndim, const size_t *shape, int optidx);

/* Reads a dtype argument. */
int luashm_array_checkdtype(lua_State *L, int idx);
/* Reads a shape (an integer or a table); -1 entries allowed when wildcard (as SIZE_MAX). */
int luashm_array_checkshape(lua_State *L, int idx, size_t *shape, int wildcard);

/* ---------------------------------------------------------------------------------------
** Iteration helpers (array_view.c)
** ------------------------------------------------------------------------------------- */

/* Starts it over a's shape with nop operands, operand 0 being a itself (the others for the
   caller to set, usually with luashm_array_operand). */
void luashm_array_iter(luashm_iter *it, int nop, const array *a);
/* Operand k of it: the array a broadcast to it's shape (it->ndim set), or -1 when its shape
   does not broadcast. */
int luashm_array_operand(luashm_iter *it, int k, const array *a);
/* Copies src into dst elementwise (same shape, raw bytes of the same itemsize). */
void luashm_array_copyraw(const array *dst, const array *src);
/* Copies a Lua table, flat or nested, into a (open). */
void luashm_array_copytable(lua_State *L, const array *a, int idx);
/* The first and one-past-last byte the view touches (lo == hi for an empty view). */
void luashm_array_extent(const array *a, const unsigned char **lo, const unsigned char **hi);

/* An axis argument (1-based, negative from the end) as a 0-based axis, or raises naming op. */
int luashm_array_axis(lua_State *L, const array *a, lua_Integer ax, const char *op);
/* __tostring. */
int luashm_array_tostring(lua_State *L);

/* Method lists of the other files, added to the Array's method table by array.c. */
extern const luaL_Reg luashm_array_view_methods[];
extern const luaL_Reg luashm_array_ops_methods[];
extern const luaL_Reg luashm_array_reduce_methods[];

#endif
