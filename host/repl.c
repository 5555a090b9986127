/*
** The REPL: lua.c's read-eval-print loop ("return <line>" first, incomplete chunks continue).
** Line editing, history, pretty printing and completion come with the REPL issue (#9).
*/
#include <stdio.h>
#include <string.h>

#include "lauxlib.h"
#include "repl.h"

static int incomplete(lua_State *L, int status) {
  size_t lmsg;
  const char *msg;
  if (status != LUA_ERRSYNTAX) return 0;
  msg = lua_tolstring(L, -1, &lmsg);
  return lmsg >= 5 && strcmp(msg + lmsg - 5, "<eof>") == 0;
}

/* Pushes the next line without its newline; 0 at end of input. */
static int pushline(lua_State *L, const char *prompt) {
  char line[4096];
  fputs(prompt, stdout);
  fflush(stdout);
  if (fgets(line, sizeof line, stdin) == NULL) return 0;
  line[strcspn(line, "\n")] = '\0';
  lua_pushstring(L, line);
  return 1;
}

static int loadline(lua_State *L) {
  int status;
  if (!pushline(L, "> ")) return -1;
  lua_pushfstring(L, "return %s;", lua_tostring(L, -1));
  status = luaL_loadbuffer(L, lua_tostring(L, -1), lua_rawlen(L, -1), "=stdin");
  lua_remove(L, -2);
  if (status == LUA_OK) {
    lua_remove(L, -2);
    return LUA_OK;
  }
  lua_pop(L, 1);
  for (;;) {
    status = luaL_loadbuffer(L, lua_tostring(L, -1), lua_rawlen(L, -1), "=stdin");
    if (!incomplete(L, status)) break;
    lua_pop(L, 1);
    lua_pushliteral(L, "\n");
    if (!pushline(L, ">> ")) return -1;
    lua_concat(L, 3);
  }
  lua_remove(L, -2);
  return status;
}

void luashm_repl(lua_State *L) {
  int status;
  while ((status = loadline(L)) != -1) {
    int base = lua_gettop(L) - 1;
    if (status == LUA_OK) status = lua_pcall(L, 0, LUA_MULTRET, 0);
    if (status == LUA_OK && lua_gettop(L) > base) {
      int i, n = lua_gettop(L) - base;
      for (i = 1; i <= n; i++) {
        if (i > 1) fputs("\t", stdout);
        fputs(luaL_tolstring(L, base + i, NULL), stdout);
        lua_pop(L, 1);
      }
      fputs("\n", stdout);
    } else if (status != LUA_OK) {
      fprintf(stderr, "%s\n", lua_tostring(L, -1));
    }
    lua_settop(L, base);
  }
  lua_settop(L, 0);
  fputs("\n", stdout);
}
