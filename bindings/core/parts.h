/* The Lua parts of luashm (scripts/lib/ files), compiled in by scripts/embed.cmake. */
#ifndef LUASHM_PARTS_H
#define LUASHM_PARTS_H

#include <stddef.h>

typedef struct luashm_lua_part {
  const char *module; /* "luashm.<file name>" */
  const char *source;
  size_t len;
  int lazy; /* 1: loaded at its first require, not run at luaopen_luashm */
} luashm_lua_part;

/* Terminated by an entry whose module is NULL. */
extern const luashm_lua_part luashm_lua_parts[];

#endif
