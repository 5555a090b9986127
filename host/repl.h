/* The interactive REPL of the luashm host. */
#ifndef LUASHM_REPL_H
#define LUASHM_REPL_H

#include "lua.h"

/* Reads, evaluates and prints until end of input. Returns when the user leaves. */
void luashm_repl(lua_State *L);

#endif
