/* What the host's main file (luashm.c) offers the REPL, so that both run chunks alike. */
#ifndef LUASHM_HOST_H
#define LUASHM_HOST_H

#include "lua.h"

/* lua.c's docall: calls the function below its narg arguments in protected mode with a
   traceback message handler, while Ctrl-C stops the running Lua code with "interrupted!"
   (a second Ctrl-C kills the process). Restores the SIGINT handler it found. Returns the
   lua_pcall status; on error the message is on the stack. */
int luashm_host_docall(lua_State *L, int narg, int nres);

/* 1 when Ctrl-C arrived during the last luashm_host_docall, else 0. */
int luashm_host_interrupted(void);

#endif
