/*
** bench_null: the floor that stock Lua 5.4 sets for any userdata, for the Array benchmarks.
** new() gives a userdata whose C __index returns a constant (an empty C function, so that
** u:nop(i) is the empty C method call) and whose C __newindex does nothing; newt() gives one
** whose __index is a plain method table (the cheapest method call a userdata can have).
** Built as bench_null.so, bench only.
*/
#include "lauxlib.h"
#include "lua.h"

static int null_nop(lua_State *L) {
  (void)L;
  return 0;
}

static int null_index(lua_State *L) {
  lua_pushvalue(L, lua_upvalueindex(1));
  return 1;
}

static int null_newindex(lua_State *L) {
  (void)L;
  return 0;
}

static int null_new(lua_State *L) {
  lua_newuserdatauv(L, 16, 0);
  luaL_setmetatable(L, "bench_null.ud");
  return 1;
}

static int null_newt(lua_State *L) {
  lua_newuserdatauv(L, 16, 0);
  luaL_setmetatable(L, "bench_null.udt");
  return 1;
}

__attribute__((visibility("default"))) int luaopen_bench_null(lua_State *L) {
  luaL_newmetatable(L, "bench_null.ud");
  lua_pushcfunction(L, null_nop);
  lua_pushcclosure(L, null_index, 1);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, null_newindex);
  lua_setfield(L, -2, "__newindex");
  luaL_newmetatable(L, "bench_null.udt");
  lua_newtable(L);
  lua_pushcfunction(L, null_nop);
  lua_setfield(L, -2, "nop");
  lua_setfield(L, -2, "__index");
  lua_pop(L, 2);
  lua_newtable(L);
  lua_pushcfunction(L, null_new);
  lua_setfield(L, -2, "new");
  lua_pushcfunction(L, null_newt);
  lua_setfield(L, -2, "newt");
  return 1;
}
