/* What the libFuzzer harnesses share: a Block userdata over the fuzz input, so that a kind's
   wrap function parses those bytes as if they had been read from /dev/shm. */
#ifndef LUASHM_FUZZ_H
#define LUASHM_FUZZ_H

#include <string.h>

#include "core.h"

/* Pushes a Block named "fuzz" whose data is p (size bytes; the caller owns p). */
static inline luashm_block *fuzz_push_block(lua_State *L, unsigned char *p, size_t size) {
  luashm_block *b = (luashm_block *)lua_newuserdatauv(L, sizeof(luashm_block), 0);
  memset(b, 0, sizeof *b);
  strcpy(b->name, "fuzz");
  luaL_setmetatable(L, LUASHM_BLOCK);
  b->data = p;
  b->size = size;
  return b;
}

#endif
