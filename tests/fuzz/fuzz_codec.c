/*
** libFuzzer target for the value codec: the input is a message as another process could have
** written it into a channel or a worker's pipe. It decodes a heap copy of exactly the input's
** size (so ASan sees any read past the end); whatever decodes must encode again and decode to
** the same number of values. Objects sent by name reopen through the registry of kinds: a
** fuzzed name attaches nothing that does not exist (the names a fuzzer can find are not those
** of luashm's blocks, 23 random characters), and a kind's wrap only validates what it reads.
*/
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "core.h"
#include "lualib.h"

/* Decodes (p, len), re-encodes what came out and decodes that again. */
static int roundtrip(lua_State *L) {
  const unsigned char *p = (const unsigned char *)lua_touserdata(L, 1);
  size_t len = (size_t)lua_tointeger(L, 2);
  luaL_Buffer b;
  int n, top;
  lua_settop(L, 0);
  n = luashm_decode(L, p, len, "fuzz");
  luaL_buffinit(L, &b);
  luashm_encode(L, 1, n, &b, "fuzz");
  luaL_pushresult(&b);
  top = lua_gettop(L);
  if (luashm_decode(L, (const unsigned char *)lua_tostring(L, top), lua_rawlen(L, top), "fuzz") !=
      n)
    abort();
  return 0;
}

static lua_State *fuzz_state(void) {
  static lua_State *L = NULL;
  if (L == NULL) {
    L = luaL_newstate();
    luashm_openlibs(L);
  }
  return L;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  lua_State *L = fuzz_state();
  unsigned char *copy = (unsigned char *)malloc(size ? size : 1);
  memcpy(copy, data, size);
  lua_pushcfunction(L, roundtrip);
  lua_pushlightuserdata(L, copy);
  lua_pushinteger(L, (lua_Integer)size);
  if (lua_pcall(L, 2, 0, 0) != LUA_OK) {
    const char *msg = lua_tostring(L, -1);
    if (msg == NULL || strncmp(msg, "luashm: ", 8) != 0) abort();
  }
  lua_settop(L, 0);
  free(copy);
  return 0;
}
