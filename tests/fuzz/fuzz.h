/* What the libFuzzer harnesses share: a Block userdata over the fuzz input, so that a kind's
   wrap function parses those bytes as if they had been read from /dev/shm, and the one Lua
   state a harness keeps for every input. */
#ifndef LUASHM_FUZZ_H
#define LUASHM_FUZZ_H

#include <stdlib.h>
#include <string.h>

#include "core.h"
#include "kinds.h"
#include "lualib.h"

/* Pushes a Block named "fuzz" whose data is p (size bytes; the caller owns p). */
static inline luashm_block *fuzz_push_block(lua_State *L, unsigned char *p, size_t size) {
  luashm_block *b = (luashm_block *)lua_newuserdatauv(L, sizeof(luashm_block), 0);
  memset(b, 0, sizeof *b);
  b->head.kind = &luashm_kind_block; /* the tag luashm_checkblock looks for */
  b->head.b = b;
  strcpy(b->name, "fuzz");
  luaL_setmetatable(L, LUASHM_BLOCK);
  b->data = p;
  b->size = size;
  return b;
}

/* The harness's Lua state, made at the first call and kept (libFuzzer calls every input in
   one process): luashm opened, and the Lua chunk `exercise` compiled into the registry under
   key. */
static inline lua_State *fuzz_state_with(const char *key, const char *exercise) {
  static lua_State *L = NULL;
  if (L == NULL) {
    L = luaL_newstate();
    luashm_openlibs(L);
    if (luaL_loadstring(L, exercise) != LUA_OK) abort();
    lua_setfield(L, LUA_REGISTRYINDEX, key);
  }
  return L;
}

#endif
