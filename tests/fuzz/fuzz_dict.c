/*
** libFuzzer target for a dict's zone: the input is what another process could have left in the
** zone (the block's bytes after its luashm header: the zone header, the stripe's counters,
** free lists, undo log, buckets and heap), written over one real dict of ZONE_BYTES (unlinked
** at once, so nothing leaks) everywhere but the stripe's mutex (a forged mutex can only make a
** lock wait: a hang, documented). Then the block is wrapped again as a dict, as shm.open does
** (the kind's wrap checks the zone's header), and every operation runs on it from Lua: each
** must return or raise a "luashm: " error, never crash. Seeds (tests/fuzz/seeds/dict) are real
** zones after a few operations, crashed ones included.
*/
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kinds.h"
#include "lualib.h"

#define ZONE_BYTES 12288              /* one stripe */
#define HEADER 64                     /* the block's luashm header, kept */
#define STRIPE 128                    /* the stripe's first byte (its mutex) in the block */
#define MUTEX sizeof(pthread_mutex_t) /* bytes of the stripe kept: its mutex */

static const char *exercise =
    "local rewrap, block = ...\n"
    "local function clean(ok, err)\n"
    "  if not ok and not tostring(err):find('^luashm: ') then error('NOT CLEAN: ' .. "
    "tostring(err), 0) end\n"
    "end\n"
    "local ok, o = pcall(rewrap, block)\n"
    "clean(ok, o)\n"
    "if not ok then return end\n"
    "tostring(o)\n"
    "local calls = {\n"
    "  {'get', 'k1'}, {'get', 'a'}, {'set', 'k2', 'v'}, {'set', 'k3', ('x'):rep(700)},\n"
    "  {'set', 'n', 1.5, 10}, {'safe_set', 'k4', 1}, {'add', 'k5', true}, {'replace', 'k1', 3},\n"
    "  {'incr', 'c', 1, 0}, {'incr', 'k1', 1}, {'delete', 'k2'}, {'ttl', 'k3'},\n"
    "  {'expire', 'k3', 5}, {'keys'}, {'keys', 2}, {'count'}, {'totable'}, {'free_space'},\n"
    "  {'flush_expired'}, {'capacity'}, {'_check'}, {'set', 'k1', nil}, {'get', 'k3'},\n"
    "}\n"
    "for _, c in ipairs(calls) do clean(pcall(o[c[1]], o, table.unpack(c, 2))) end\n"
    "clean(pcall(function() for _ in pairs(o) do end end))\n"
    "for i = 1, 40 do clean(pcall(o.set, o, 'fill' .. i, ('f'):rep(i * 13))) end\n"
    "clean(pcall(o.flush_all, o))\n"
    "clean(pcall(o.set, o, 'after', 'flush'))\n"
    "clean(pcall(o._check, o))\n";

/* The Block at 1 as a Dict, through the kind's wrap (what shm.open runs). */
static int rewrap(lua_State *L) {
  lua_settop(L, 1);
  return luashm_kind_dict.wrap(L, 0);
}

static lua_State *fuzz_state(void) {
  static lua_State *L = NULL;
  if (L == NULL) {
    L = luaL_newstate();
    luashm_openlibs(L);
    lua_pushinteger(L, ZONE_BYTES);
    lua_setglobal(L, "ZONE_BYTES");
    if (luaL_dostring(L,
                      "local d = shm.dict({capacity = ZONE_BYTES, track = false})\n"
                      "d:unlink()\n"
                      "return d") != LUA_OK)
      abort();
    lua_setfield(L, LUA_REGISTRYINDEX, "fuzz_dict.d");
    if (luaL_loadstring(L, exercise) != LUA_OK) abort();
    lua_setfield(L, LUA_REGISTRYINDEX, "fuzz_dict.exercise");
  }
  return L;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  lua_State *L = fuzz_state();
  luashm_block *b;
  size_t i, n;
  lua_getfield(L, LUA_REGISTRYINDEX, "fuzz_dict.exercise");
  lua_pushcfunction(L, rewrap);
  lua_getfield(L, LUA_REGISTRYINDEX, "fuzz_dict.d");
  lua_getfield(L, -1, "block");
  lua_remove(L, -2);
  b = luashm_checkblock(L, -1);
  /* Input byte i goes to zone byte i (block byte HEADER + i), the mutex excepted; what the
     input does not cover is zero. */
  n = b->size - HEADER;
  for (i = 0; i < n; i++) {
    size_t at = HEADER + i;
    if (at >= STRIPE && at < STRIPE + MUTEX) continue;
    b->data[at] = i < size ? data[i] : 0;
  }
  if (lua_pcall(L, 2, 0, 0) != LUA_OK) {
    const char *msg = lua_tostring(L, -1);
    if (msg == NULL || strstr(msg, "luashm: ") != msg) abort();
  }
  lua_settop(L, 0);
  return 0;
}
