/*
** libFuzzer target for the NPY header parser: the input is a block's (or a file's) bytes, as
** any other program could have written them. It parses them over a heap copy of exactly the
** input's size (so ASan sees any read past the end), checks that an accepted header describes
** data inside the input and that luashm's own header for the same dtype and shape parses back
** to the same thing, then wraps the bytes into an Array from Lua and reads, reduces, prints and
** writes it.
*/
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core.h"
#include "fuzz.h"
#include "kinds.h"
#include "lualib.h"
#include "npy.h"

static const char *exercise =
    "local a = ...\n"
    "tostring(a)\n"
    "a:sum(); a:mean()\n"
    "if a.size > 0 then a:min(); a:max(); a:argmax() end\n"
    "local cells = 1.0 -- the tables totable makes, the rows a reduction walks (a float: no wrap)\n"
    "for _, d in ipairs(a.shape) do cells = cells * math.max(d, 1.0) end\n"
    "local small = cells <= 65536\n"
    "if a.ndim > 1 and small then a:sum(1); a:sum(-1) end\n"
    "if a.size <= 4096 and small then a:totable() end\n"
    "local flat = a:reshape(a.size)\n"
    "for i = 1, math.min(a.size, 64) do\n"
    "  local v = flat[i]\n"
    "  flat[i] = v\n"
    "  assert(flat[i] == v or v ~= v, 'read back differs at ' .. i)\n"
    "end\n"
    "assert(flat[a.size + 1] == nil)\n";

/* luashm's own header for what h says must parse back to the same description. */
static void roundtrip(const luashm_npy *h) {
  char err[LUASHM_ERRLEN];
  unsigned char buf[2048];
  luashm_npy back;
  size_t hl = luashm_npy_header_len(h->dtype, h->ndim, h->shape);
  if (hl > sizeof buf || hl % 64 != 0) abort();
  luashm_npy_write(buf, h->dtype, h->ndim, h->shape);
  if (luashm_npy_parse(buf, hl, hl + h->count * luashm_dtype_sizes[h->dtype], &back, err) != 0)
    abort();
  if (back.dtype != h->dtype || back.ndim != h->ndim || back.count != h->count ||
      back.data_offset != hl || memcmp(back.shape, h->shape, sizeof h->shape) != 0)
    abort();
}

/* The "array" kind's wrap of the whole self-describing array, as shm.open does it. */
static int wrap(lua_State *L) {
  return luashm_kind_array.wrap(L, 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char err[LUASHM_ERRLEN];
  lua_State *L = fuzz_state_with("fuzz_npy.exercise", exercise);
  unsigned char *p = malloc(size ? size : 1);
  luashm_block *b;
  luashm_npy h;
  int ok;
  memcpy(p, data, size);
  ok = luashm_npy_parse(p, size, size, &h, err) == 0;
  if (ok) {
    if (h.data_offset > size || h.count * luashm_dtype_sizes[h.dtype] > size - h.data_offset)
      abort(); /* accepted data outside the input */
    roundtrip(&h);
  }
  if (!luashm_npy_probe(p, size)) {
    free(p);
    return 0;
  }
  b = fuzz_push_block(L, p, size);
  lua_pushcfunction(L, wrap);
  lua_pushvalue(L, -2);
  if (lua_pcall(L, 1, 1, 0) == LUA_OK) {
    if (!ok) abort(); /* the Array accepted what the parser refused */
    lua_getfield(L, LUA_REGISTRYINDEX, "fuzz_npy.exercise");
    lua_insert(L, -2);
    if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
      const char *msg = lua_tostring(L, -1);
      if (msg != NULL && strstr(msg, "read back differs") != NULL) abort();
    }
  }
  b->data = NULL; /* the heap copy is not a mapping: the Block's __gc must not unmap it */
  lua_settop(L, 0);
  lua_gc(L, LUA_GCCOLLECT);
  free(p);
  return 0;
}
