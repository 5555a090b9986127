/*
** libFuzzer target for a channel's shared state: the input is what another process could have
** left in the block's indexes (offsets 64..127: capacity, head, tail, flags, counts) and ring.
** One real channel (unlinked at once, so nothing leaks) gets the input written over those
** bytes, never over its mutex, then is opened again from its bytes and used from Lua: receives,
** a send, tostring, its length. Every outcome must be a value or a luashm error. Timeouts of 0
** keep every call from sleeping.
*/
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core.h"
#include "lualib.h"

#define FIELDS_OFF 64
#define FIELDS_LEN 64 /* up to the mutex at 128 */
#define RING_OFF 256

static const char *exercise =
    "local ch = ...\n"
    "tostring(ch); local _ = #ch\n"
    "for _ = 1, 4 do pcall(ch.recv, ch, 0) end\n"
    "pcall(ch.send, ch, 'fuzz', 0)\n"
    "pcall(ch.recv, ch, 0)\n"
    "local reopened = shm.open(ch.name)\n"
    "pcall(reopened.recv, reopened, 0)\n"
    "reopened.block:close()\n";

static lua_State *fuzz_state(void) {
  static lua_State *L = NULL;
  if (L == NULL) {
    L = luaL_newstate();
    luashm_openlibs(L);
    if (luaL_dostring(L,
                      "local ch = shm.channel({capacity = 256, track = false})\n"
                      "ch:unlink()\n"
                      "return ch") != LUA_OK)
      abort();
    lua_setfield(L, LUA_REGISTRYINDEX, "fuzz_channel.ch");
    if (luaL_loadstring(L, exercise) != LUA_OK) abort();
    lua_setfield(L, LUA_REGISTRYINDEX, "fuzz_channel.exercise");
  }
  return L;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  lua_State *L = fuzz_state();
  luashm_block *b;
  size_t n;
  lua_getfield(L, LUA_REGISTRYINDEX, "fuzz_channel.exercise");
  lua_getfield(L, LUA_REGISTRYINDEX, "fuzz_channel.ch");
  lua_getfield(L, -1, "block");
  b = luashm_checkblock(L, -1);
  lua_pop(L, 1);
  n = size < FIELDS_LEN ? size : FIELDS_LEN;
  memcpy(b->data + FIELDS_OFF, data, n);
  memset(b->data + RING_OFF, 0, b->size - RING_OFF);
  if (size > n) memcpy(b->data + RING_OFF, data + n, size - n < 256 ? size - n : 256);
  if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
    /* shm.open itself may refuse a lying capacity; that must be a luashm error too. */
    const char *msg = lua_tostring(L, -1);
    if (msg == NULL || strstr(msg, "luashm: ") == NULL) abort();
  }
  lua_settop(L, 0);
  return 0;
}
