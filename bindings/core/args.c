/*
** The error helper and the argument checks every binding shares (core.h).
*/
#include <stdarg.h>
#include <string.h>

#include "core.h"

int luashm_error(lua_State *L, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  lua_pushstring(L, "luashm: ");
  lua_pushvfstring(L, fmt, ap);
  va_end(ap);
  lua_concat(L, 2);
  return lua_error(L);
}

/* Pushes "a, b, c" of the valid keys, for the unknown-option error. */
static const char *push_valid(lua_State *L, const char *const valid[]) {
  luaL_Buffer b;
  int i;
  luaL_buffinit(L, &b);
  for (i = 0; valid[i] != NULL; i++) {
    if (i) luaL_addstring(&b, ", ");
    luaL_addstring(&b, valid[i]);
  }
  luaL_pushresult(&b);
  return lua_tostring(L, -1);
}

int luashm_checkoptions(lua_State *L, int idx, const char *op, const char *const valid[]) {
  if (idx == 0 || lua_isnoneornil(L, idx)) return 0;
  idx = lua_absindex(L, idx);
  luaL_checktype(L, idx, LUA_TTABLE);
  lua_pushnil(L);
  while (lua_next(L, idx) != 0) {
    int i;
    const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : NULL;
    for (i = 0; k != NULL && valid[i] != NULL; i++)
      if (strcmp(k, valid[i]) == 0) break;
    if (k == NULL || valid[i] == NULL) {
      const char *key = luaL_tolstring(L, -2, NULL);
      if (valid[0] == NULL) luashm_error(L, "%s: unknown option '%s' (it takes none)", op, key);
      luashm_error(L, "%s: unknown option '%s' (valid: %s)", op, key, push_valid(L, valid));
    }
    lua_pop(L, 1);
  }
  return 1;
}

int luashm_optboolfield(lua_State *L, int idx, const char *field, int def) {
  int v = def;
  if (idx == 0 || lua_isnoneornil(L, idx)) return def;
  if (lua_getfield(L, idx, field) != LUA_TNIL) v = lua_toboolean(L, -1);
  lua_pop(L, 1);
  return v;
}

const char *luashm_checkname(lua_State *L, int idx, const char *op) {
  char err[LUASHM_ERRLEN];
  size_t len;
  const char *name = luaL_checklstring(L, idx, &len);
  if (luashm_name_check(op, name, len, err) != 0) luashm_error(L, "%s", err);
  return name;
}
