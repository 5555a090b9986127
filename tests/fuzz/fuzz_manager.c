/*
** libFuzzer target for a manager's record (issue 18.6): the input is what another process could
** have left in the record after its mutex: the state, the size as last grown, the bytes used,
** and the entries. One real manager (its record unlinked and shut down at exit, so nothing
** leaks) gets the input written over those bytes, never over its header or mutex, then a copy
** opened by name (which never unlinks: a forged entry may name any file) reads it: m:names()
** and tostring (no create: a forged `used` near the end would grow the real record at every
** run). Every outcome must be a value or a luashm error; ASan watches every read of the record.
** Its first run found the record's name check quoting a name that was not NUL-terminated (an
** over-read), since fixed.
*/
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core.h"
#include "lualib.h"

#define FIELDS_OFF 104 /* after the 64-byte header and the 40-byte mutex */

static const char *exercise =
    "local m = ...\n"
    "local copy = shm.open(m.name)\n"
    "pcall(copy.names, copy)\n"
    "pcall(tostring, copy)\n";

static lua_State *L = NULL;

/* The record's block of the real manager, at index -1 (the manager below). */
static luashm_block *record_of(lua_State *L) {
  luashm_block *b;
  lua_getfield(L, -1, "block");
  b = luashm_checkblock(L, -1);
  lua_pop(L, 1);
  return b;
}

/* At exit: the last input's entries forgotten, then the owner's shutdown unlinks the record. */
static void close_state(void) {
  luashm_block *b;
  lua_getfield(L, LUA_REGISTRYINDEX, "fuzz_manager.m");
  b = record_of(L);
  memset(b->data + FIELDS_OFF, 0, b->size - FIELDS_OFF);
  lua_close(L);
}

static lua_State *fuzz_state(void) {
  if (L == NULL) {
    atexit(close_state);
    L = luaL_newstate();
    luashm_openlibs(L);
    if (luaL_dostring(L, "return shm.manager()") != LUA_OK) abort();
    lua_setfield(L, LUA_REGISTRYINDEX, "fuzz_manager.m");
    if (luaL_loadstring(L, exercise) != LUA_OK) abort();
    lua_setfield(L, LUA_REGISTRYINDEX, "fuzz_manager.exercise");
  }
  return L;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  luashm_block *b;
  size_t room;
  fuzz_state();
  lua_getfield(L, LUA_REGISTRYINDEX, "fuzz_manager.exercise");
  lua_getfield(L, LUA_REGISTRYINDEX, "fuzz_manager.m");
  b = record_of(L);
  room = b->size - FIELDS_OFF;
  memset(b->data + FIELDS_OFF, 0, room);
  memcpy(b->data + FIELDS_OFF, data, size < room ? size : room);
  if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
    const char *msg = lua_tostring(L, -1);
    if (msg == NULL || strstr(msg, "luashm: ") == NULL) abort();
  }
  lua_settop(L, 0);
  lua_gc(L, LUA_GCCOLLECT);
  return 0;
}
