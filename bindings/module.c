/*
** luaopen_luashm: the module table, built from each type's open function, then the Lua parts
** of the library (scripts/lib/ files, compiled in), each called with the module table.
*/
#include "core.h"
#include "kinds.h"
#include "sync.h"
#include "parts.h"
#include "lualib.h"
#include "npy.h"
#include "tracker.h"

#include <time.h>

/* shm.now(): seconds on the monotonic clock, for timing jobs and benchmarks. */
static int module_now(lua_State *L) {
  lua_pushnumber(L, (lua_Number)luashm_now());
  return 1;
}

/* package.preload's loader of a lazy part (upvalue 1: the part, 2: the module table): runs it
   with its name and the module table, as require would run a module (plus the table). */
static int load_lazy_part(lua_State *L) {
  const luashm_lua_part *p = (const luashm_lua_part *)lua_touserdata(L, lua_upvalueindex(1));
  if (luaL_loadbufferx(L, p->source, p->len, p->module, "t") != LUA_OK) return lua_error(L);
  lua_pushstring(L, p->module);
  lua_pushvalue(L, lua_upvalueindex(2));
  lua_call(L, 2, 1);
  return 1;
}

/* shm.help([x]): luashm.help's show, loaded at the first call (the reference's reader and the
   reference are lazy parts: no require of luashm pays for them). */
static int module_help(lua_State *L) {
  lua_settop(L, 1);
  lua_getglobal(L, "require");
  lua_pushliteral(L, "luashm.help");
  lua_call(L, 1, 1);
  lua_getfield(L, -1, "show");
  lua_pushvalue(L, 1);
  lua_call(L, 1, 0);
  return 0;
}

/* Each part runs with the module table as its argument; a part that returns a value becomes
   requireable as "luashm.<file name>". A lazy part (the REPL's printer, help and the
   reference) only becomes requireable, through package.preload. */
static void open_lua_parts(lua_State *L) {
  const luashm_lua_part *p;
  int module = lua_gettop(L);
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  for (p = luashm_lua_parts; p->module != NULL; p++) {
    if (p->lazy) {
      lua_pushlightuserdata(L, (void *)p);
      lua_pushvalue(L, module);
      lua_pushcclosure(L, load_lazy_part, 2);
      lua_setfield(L, -3, p->module);
      continue;
    }
    if (luaL_loadbufferx(L, p->source, p->len, p->module, "t") != LUA_OK) lua_error(L);
    lua_pushvalue(L, module);
    lua_call(L, 1, 1);
    if (!lua_isnil(L, -1))
      lua_setfield(L, -2, p->module);
    else
      lua_pop(L, 1);
  }
  lua_pop(L, 2);
}

/* shm.tracker(): the pid of this process tree's watchdog, or nil before the first tracked
   create (diagnostics and tests). */
static int module_tracker(lua_State *L) {
  long pid = luashm_tracker_pid();
  if (pid == 0)
    lua_pushnil(L);
  else
    lua_pushinteger(L, (lua_Integer)pid);
  return 1;
}

static const luashm_capi capi = {luashm_error, luashm_toarray, luashm_dtype_names};

LUASHM_EXPORT int luaopen_luashm(lua_State *L) {
  lua_pushlightuserdata(L, (void *)&capi);
  lua_setfield(L, LUA_REGISTRYINDEX, LUASHM_CAPI);
  lua_newtable(L);
  lua_pushliteral(L, LUASHM_VERSION);
  lua_setfield(L, -2, "version");
  lua_pushcfunction(L, module_now);
  lua_setfield(L, -2, "now");
  lua_pushcfunction(L, module_tracker);
  lua_setfield(L, -2, "tracker");
  lua_pushcfunction(L, module_help);
  lua_setfield(L, -2, "help");
  luashm_open_kinds(L);
  luashm_open_codec(L);
  luashm_open_worker(L);
  open_lua_parts(L);
  return 1;
}

/* Opens the standard libraries and luashm into L, with luashm also the global `shm`: what every
   luashm interpreter (the host's, a fresh worker's) starts with. */
LUASHM_EXPORT void luashm_openlibs(lua_State *L) {
  luaL_openlibs(L);
  luaL_requiref(L, "luashm", luaopen_luashm, 0);
  lua_setglobal(L, "shm");
}
