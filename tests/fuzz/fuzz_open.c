/*
** libFuzzer target for shm.open's kind detection: the input is a block's bytes, as any other
** process or program could have written them. Two paths, each input through both:
**   - exact: luashm_kind_of and every kind's probe over a heap copy of exactly the input's
**     size (so ASan sees any read past the end), then the recognised kind's wrap over a Block
**     that points at that copy, and a few reads of the object from Lua;
**   - real: a real block of the input's size (shm.create, tracked: a crash leaves nothing in
**     /dev/shm), the bytes written in, shm.open(name) from Lua in a pcall, the same reads, then
**     close and unlink.
** Both must agree: shm.open returns the kind luashm_kind_of names, or raises a "luashm: "
** error (a malformed layout), and never anything else.
*/
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "lualib.h"

/* Reads that every kind's parser of untrusted bytes must survive. Nothing that takes a mutex
   in the block: no lock acquired, no channel received from, no manager's names or tostring
   (both lock its record), no dict operation. A forged mutex word that looks held makes those
   wait for ever: a hang, not a crash, and a documented limitation (README, Hardening). The
   kind is the metatable's name ("luashm.Array" is "array"). */
static const char *exercise =
    "local o, tname = ...\n"
    "local kind = tname:match('^luashm%.(%a+)$'):lower()\n"
    "if kind ~= 'manager' then tostring(o) end\n"
    "if kind == 'array' then\n"
    "  o:sum()\n"
    "  local n = o.size\n"
    "  if n > 0 then local flat = o:reshape(n); local v = flat[n]; flat[1] = flat[1] end\n"
    "elseif kind == 'list' then\n"
    "  for i = 0, #o + 1 do local v = o[i] end\n"
    "  local f = o.format\n"
    "elseif kind == 'channel' then\n"
    "  local n, c = #o, o.closed\n"
    "elseif kind == 'barrier' then\n"
    "  o:parties()\n"
    "elseif kind == 'progress' then\n"
    "  local c, t, l = o.count, o.total, o.label\n"
    "end\n";

/* The real path, from Lua: bytes into a fresh block, shm.open, the reads, close, unlink.
   Returns the metatable name of what shm.open produced, or raises shm.open's error. */
static const char *real_path =
    "local shm, exercise, bytes = ...\n"
    "local b = shm.create(#bytes)\n"
    "b:write(0, bytes)\n"
    "local ok, o = pcall(shm.open, b.name)\n"
    "b:unlink()\n"
    "b:close()\n"
    "if not ok then error(o, 0) end\n"
    "local mt = debug.getmetatable(o)\n"
    "pcall(exercise, o, mt.__name)\n"
    "if mt.__close then mt.__close(o) end\n"
    "return mt.__name\n";

static lua_State *fuzz_state(void) {
  static lua_State *L = NULL;
  if (L == NULL) {
    L = luaL_newstate();
    luaL_openlibs(L);
    luaL_requiref(L, "luashm", luaopen_luashm, 0);
    lua_setfield(L, LUA_REGISTRYINDEX, "fuzz_open.shm");
    if (luaL_loadstring(L, exercise) != LUA_OK) abort();
    lua_setfield(L, LUA_REGISTRYINDEX, "fuzz_open.exercise");
    if (luaL_loadstring(L, real_path) != LUA_OK) abort();
    lua_setfield(L, LUA_REGISTRYINDEX, "fuzz_open.real");
  }
  return L;
}

/* A raised error must be a "luashm: " string: anything else is a parser's bug. */
static void check_error(lua_State *L) {
  const char *msg = lua_tostring(L, -1);
  if (msg == NULL || strncmp(msg, "luashm: ", 8) != 0) abort();
}

static int wrap(lua_State *L) {
  const luashm_kind *k = (const luashm_kind *)lua_touserdata(L, lua_upvalueindex(1));
  return k->wrap(L, 0);
}

/* The exact path: kind_of, every probe, the wrap and the reads over a heap copy. Returns the
   kind's metatable name, or NULL when the wrap refused the bytes. */
static const char *exact_path(lua_State *L, const uint8_t *data, size_t size) {
  unsigned char *p = malloc(size ? size : 1);
  const luashm_kind *const *each;
  const luashm_kind *k;
  const char *result;
  luashm_block *b;
  memcpy(p, data, size);
  k = luashm_kind_of(p, size);
  for (each = luashm_kinds; *each != NULL; each++) (*each)->probe(p, size);
  result = k->tname;
  b = fuzz_push_block(L, p, size);
  lua_pushlightuserdata(L, (void *)k);
  lua_pushcclosure(L, wrap, 1);
  lua_pushvalue(L, -2);
  if (lua_pcall(L, 1, 1, 0) == LUA_OK) {
    lua_getfield(L, LUA_REGISTRYINDEX, "fuzz_open.exercise");
    lua_insert(L, -2);
    lua_pushstring(L, k->tname);
    if (lua_pcall(L, 2, 0, 0) != LUA_OK) check_error(L);
  } else {
    check_error(L);
    result = NULL;
  }
  /* The heap copy is no mapping: nothing may unmap it. Collect before freeing it, since a
     Barrier's close still touches its state. */
  b->data = NULL;
  lua_settop(L, 0);
  lua_gc(L, LUA_GCCOLLECT);
  free(p);
  return result;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  lua_State *L = fuzz_state();
  const char *exact = exact_path(L, data, size);
  if (size == 0) return 0; /* a block has at least one byte */
  lua_getfield(L, LUA_REGISTRYINDEX, "fuzz_open.real");
  lua_getfield(L, LUA_REGISTRYINDEX, "fuzz_open.shm");
  lua_getfield(L, LUA_REGISTRYINDEX, "fuzz_open.exercise");
  lua_pushlstring(L, (const char *)data, size);
  if (lua_pcall(L, 3, 1, 0) == LUA_OK) {
    /* shm.open made what kind_of named, which the exact path's wrap accepted too */
    const char *real = lua_tostring(L, -1);
    if (real == NULL || exact == NULL || strcmp(real, exact) != 0) abort();
  } else {
    const char *msg = lua_tostring(L, -1);
    check_error(L);
    /* A refusal must be the wrap's (the same bytes refused on the exact path), not create's. */
    if (exact != NULL && strstr(msg, "create") == NULL) abort();
  }
  lua_settop(L, 0);
  lua_gc(L, LUA_GCCOLLECT);
  return 0;
}
