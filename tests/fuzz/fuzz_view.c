/*
** libFuzzer target for strided views: the input is a value-codec message (as another process
** could have written it into a channel) whose first value is the view a strided Array reference
** carries (dtype, shape, offset, strides: untrusted), or a private array sent by value, and
** whose second is a list of view specs a script could pass to a:view. The view is wrapped over a
*Block of exactly 4 KiB of heap (so
** ASan sees any element outside it), the specs are applied, and the result is read, reduced,
** written, printed, transposed and sent by value; every error must be a clean Lua error.
*/
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "core.h"
#include "fuzz.h"
#include "kinds.h"
#include "lualib.h"

#define BLOCK_SIZE 4096

static const char *exercise =
    "local a, specs = ...\n"
    "tostring(a); a:sum(); a:mean()\n"
    "local v = a\n"
    "if type(specs) == 'table' then v = a:view(table.unpack(specs, 1, 8)) end\n"
    "tostring(v); v:sum(); v:count()\n"
    "if v.size > 0 then v:max(); v:argmin() end\n"
    "local cells = 1.0 -- the tables totable makes, the rows a reduction walks (a float: no wrap)\n"
    "for _, d in ipairs(v.shape) do cells = cells * math.max(d, 1.0) end\n"
    "local small = cells <= 65536\n"
    "if v.size <= 512 and small then v:totable(); v:clone({private = true}) end\n"
    "if v.ndim > 1 and small then v:sum(1); v:transpose():count(-1) end\n"
    "v:add(v)\n"
    "v:fill(0)\n"
    "assert(v:count() == 0, 'a filled view still has a nonzero element')\n"
    "if v.size <= 256 then shm.decode(shm.encode(v:astype('f64'))) end\n";

/* Decodes the message (arg 1: a light userdata, arg 2: its length) and wraps the Block (arg 3)
   as the view its first value describes; returns the Array and the specs. */
static int wrap(lua_State *L) {
  const unsigned char *p = (const unsigned char *)lua_touserdata(L, 1);
  size_t len = (size_t)lua_tointeger(L, 2);
  int n;
  lua_settop(L, 3);
  n = luashm_decode(L, p, len, "fuzz");
  if (n < 1) return 0;
  if (n < 2) lua_pushnil(L);
  lua_settop(L, 5);
  if (!lua_istable(L, 4)) { /* a private array that came by value, or nothing to use */
    luashm_object *o = luashm_toobject(L, 4);
    return o != NULL && o->kind == &luashm_kind_array ? 2 : 0;
  }
  lua_pushvalue(L, 3);
  luashm_kind_array.wrap(L, 4);
  lua_replace(L, 4);
  return 2;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  lua_State *L = fuzz_state_with("fuzz_view.exercise", exercise);
  unsigned char *msg = (unsigned char *)malloc(size ? size : 1);
  unsigned char *mem = (unsigned char *)calloc(BLOCK_SIZE, 1);
  luashm_block *b;
  memcpy(msg, data, size);
  b = fuzz_push_block(L, mem, BLOCK_SIZE); /* stays at 1: the collector must not take it */
  lua_getfield(L, LUA_REGISTRYINDEX, "fuzz_view.exercise");
  lua_pushcfunction(L, wrap);
  lua_pushlightuserdata(L, msg);
  lua_pushinteger(L, (lua_Integer)size);
  lua_pushvalue(L, 1);
  if (lua_pcall(L, 3, 2, 0) == LUA_OK && !lua_isnil(L, -2)) {
    if (lua_pcall(L, 2, 0, 0) != LUA_OK) {
      const char *err = lua_tostring(L, -1);
      if (err != NULL && strstr(err, "a filled view") != NULL) abort();
    }
  }
  b->data = NULL; /* the heap is not a mapping: the Block's __gc must not unmap it */
  lua_settop(L, 0);
  lua_gc(L, LUA_GCCOLLECT);
  free(mem);
  free(msg);
  return 0;
}
