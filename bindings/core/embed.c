/*
** The C embedding API (luashm.h): luashm_mem handles over the POSIX layer, and the Lua-side
** helpers, which call the module's own functions through the Lua API rather than copy them.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core.h"
#include "luashm.h"
#include "npy.h"
#include "tracker.h"

struct luashm_mem {
  unsigned char *base; /* the whole mapping */
  size_t mapsize;
  size_t offset; /* where the data luashm_mem_data shows starts: an array's NPY header size */
  char name[LUASHM_NAME_MAX + 1];
};

/* Copies "luashm: " + msg into the caller's buffer. */
static void set_err(char *err, size_t errlen, const char *msg) {
  if (err != NULL && errlen > 0) snprintf(err, errlen, "luashm: %s", msg);
}

/* Checks a user-given name: 0, or -1 with the message in ebuf. */
static int check_name(const char *op, const char *name, char *ebuf) {
  if (name == NULL) return luashm_fail(ebuf, op, NULL, "name is NULL");
  return luashm_name_check(op, name, strlen(name), ebuf);
}

/* A new handle over a block created exclusively (under a generated name when name is NULL),
   recorded with the tracker unless LUASHM_UNTRACKED. */
static luashm_mem *mem_new(size_t size, const char *name, int flags, char *ebuf) {
  int track = !(flags & LUASHM_UNTRACKED);
  luashm_mem *m;
  void *data;
  if (size == 0) return luashm_fail(ebuf, "create", name, "size 0 is not positive"), NULL;
  if (size > PTRDIFF_MAX) return luashm_fail(ebuf, "create", name, "size is too large"), NULL;
  if (name != NULL && check_name("create", name, ebuf) != 0) return NULL;
  m = (luashm_mem *)calloc(1, sizeof *m);
  if (m == NULL) return luashm_fail(ebuf, "create", name, "out of memory"), NULL;
  if (luashm_tracker_create(name, size, 0600, track, m->name, &data, ebuf) != 0) goto fail;
  m->base = (unsigned char *)data;
  m->mapsize = size;
  return m;
fail:
  free(m);
  return NULL;
}

LUASHM_API luashm_mem *luashm_mem_create(size_t size, const char *name, int flags, char *err,
                                         size_t errlen) {
  char ebuf[LUASHM_ERRLEN];
  luashm_mem *m = mem_new(size, name, flags, ebuf);
  if (m == NULL) set_err(err, errlen, ebuf);
  return m;
}

/* The NPY header comes from npy.c, shm.array's own writer, so NumPy and shm.open read a block
   made here exactly as one made from Lua. */
LUASHM_API luashm_mem *luashm_mem_array(const char *dtype, int ndim, const size_t *shape,
                                        const char *name, int flags, char *err, size_t errlen) {
  char ebuf[LUASHM_ERRLEN];
  size_t hlen, nbytes;
  luashm_mem *m;
  int dt = dtype != NULL ? luashm_dtype_lookup(dtype) : -1, i;
  if (dt < 0) {
    luashm_fail(ebuf, "array", NULL, "unknown dtype (use i8 u8 i16 u16 i32 u32 i64 u64 f32 f64)");
    goto fail;
  }
  /* 1 to 32 dimensions, as shm.array and shm.open accept. */
  if (ndim < 1 || ndim > LUASHM_MAXDIMS || shape == NULL) {
    luashm_fail(ebuf, "array", NULL, "ndim must be from 1 to 32, with a shape of ndim sizes");
    goto fail;
  }
  nbytes = luashm_dtype_sizes[dt];
  for (i = 0; i < ndim; i++) {
    if (shape[i] != 0 && nbytes > PTRDIFF_MAX / shape[i]) {
      luashm_fail(ebuf, "array", NULL, "shape is too large");
      goto fail;
    }
    nbytes *= shape[i];
  }
  hlen = luashm_npy_header_len(dt, ndim, shape);
  m = mem_new(hlen + nbytes, name, flags, ebuf);
  if (m == NULL) goto fail;
  luashm_npy_write(m->base, dt, ndim, shape);
  m->offset = hlen;
  return m;
fail:
  set_err(err, errlen, ebuf);
  return NULL;
}

LUASHM_API luashm_mem *luashm_mem_attach(const char *name, char *err, size_t errlen) {
  char ebuf[LUASHM_ERRLEN];
  luashm_mem *m = NULL;
  void *data;
  size_t size;
  if (check_name("attach", name, ebuf) != 0) goto fail;
  m = (luashm_mem *)calloc(1, sizeof *m);
  if (m == NULL) {
    luashm_fail(ebuf, "attach", name, "out of memory");
    goto fail;
  }
  if (luashm_shm_attach(name, &data, &size, NULL, ebuf) != 0) goto fail;
  strcpy(m->name, name);
  m->base = (unsigned char *)data;
  m->mapsize = size;
  return m;
fail:
  free(m);
  set_err(err, errlen, ebuf);
  return NULL;
}

LUASHM_API void *luashm_mem_data(const luashm_mem *m) {
  return m->base + m->offset;
}

LUASHM_API size_t luashm_mem_size(const luashm_mem *m) {
  return m->mapsize - m->offset;
}

LUASHM_API const char *luashm_mem_name(const luashm_mem *m) {
  return m->name;
}

LUASHM_API int luashm_mem_unlink(luashm_mem *m, char *err, size_t errlen) {
  char ebuf[LUASHM_ERRLEN];
  if (luashm_tracker_unlink(m->name, ebuf) == 0) return 0;
  set_err(err, errlen, ebuf);
  return -1;
}

LUASHM_API void luashm_mem_close(luashm_mem *m) {
  if (m == NULL) return;
  luashm_shm_unmap(m->base, m->mapsize);
  free(m);
}

/* ---------------------------------------------------------------------------------------
** Lua side
** ------------------------------------------------------------------------------------- */

static int do_luashm_open(lua_State *L) {
  luaL_requiref(L, "luashm", luaopen_luashm, 0);
  lua_pushvalue(L, -1);
  lua_setglobal(L, "shm");
  return 1;
}

LUASHM_API int luashm_open(lua_State *L) {
  lua_pushcfunction(L, do_luashm_open);
  return lua_pcall(L, 0, 1, 0);
}

/* Pushes the function shm.f of the module that L has loaded, or raises. */
static void module_field(lua_State *L, const char *f) {
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  if (lua_getfield(L, -1, "luashm") != LUA_TTABLE)
    luashm_error(L, "%s: luashm is not open in this state (call luashm_open first)", f);
  if (lua_getfield(L, -1, f) != LUA_TFUNCTION)
    luashm_error(L, "%s: shm.%s is not a function in this state", f, f);
  lua_replace(L, -3);
  lua_pop(L, 1);
}

/* [path, args...] -> shm.spawn(path, args...) */
static int do_spawn(lua_State *L) {
  module_field(L, "spawn");
  lua_insert(L, 1);
  lua_call(L, lua_gettop(L) - 1, 1);
  return 1;
}

/* [path, args...] -> the worker's results, or raises its error. */
static int do_run(lua_State *L) {
  int base;
  do_spawn(L);
  base = lua_gettop(L);
  lua_getfield(L, base, "join");
  lua_insert(L, base);
  lua_call(L, 1, LUA_MULTRET);
  if (!lua_toboolean(L, base)) {
    lua_settop(L, base + 1);
    return lua_error(L);
  }
  return lua_gettop(L) - base;
}

/* [name] -> shm.open(name) */
static int do_open(lua_State *L) {
  module_field(L, "open");
  lua_insert(L, 1);
  lua_call(L, 1, 1);
  return 1;
}

/* Calls f with the n values at the top of the stack, preceded by s; pcall's conventions. */
static int protected_call(lua_State *L, lua_CFunction f, const char *s, int n, int nresults) {
  lua_pushcfunction(L, f);
  lua_pushstring(L, s);
  lua_rotate(L, -n - 2, 2);
  return lua_pcall(L, n + 1, nresults, 0);
}

LUASHM_API int luashm_pushopen(lua_State *L, const char *name) {
  return protected_call(L, do_open, name, 0, 1);
}

LUASHM_API int luashm_spawn(lua_State *L, const char *path, int nargs) {
  return protected_call(L, do_spawn, path, nargs, 1);
}

LUASHM_API int luashm_run(lua_State *L, const char *path, int nargs, int nresults) {
  return protected_call(L, do_run, path, nargs, nresults);
}
