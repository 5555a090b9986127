/*
** The value codec: the one encoding of Lua values that channels, worker arguments and worker
** results share. Plain data is copied; luashm objects travel by name and are reopened on the
** other side through the registry of kinds (kinds.h).
*/
#ifndef LUASHM_CODEC_H
#define LUASHM_CODEC_H

#include <stddef.h>

#include "lauxlib.h"
#include "lua.h"

/* Tables nested deeper than this are refused when encoding and rejected when decoding (the
   view carried by an object sent by name counts as a level too). */
#define LUASHM_CODEC_MAXDEPTH 128

/* A table reachable more than once is copied each time; a message may hold this many such
   repeated copies, which bounds the blow-up of tables shared in nests ({t, t} forty deep). */
#define LUASHM_CODEC_MAXREPEAT (1 << 20)

/* Called when an encoding would pass the caller's limit (atleast: its size so far, over the
   limit); raises the caller's error and does not return. */
typedef void (*luashm_toobig)(lua_State *L, size_t atleast, void *ud);

/* Appends the encoding of the n values at stack indexes first..first+n-1 (the count included) to
   b. op names the operation in errors ("send", "spawn", "join"...). Raises luashm errors like
   "luashm: send: value at [2].sock is a userdata (FILE*) ..." / "... is a function ..." /
   "... is a cycle ..." / "... is nested too deep ...".
   Buffer contract: b was opened with luaL_buffinit and its slot is the top of the stack at the
   call, as every luaL_add* requires; the values lie below that slot (first is taken as an
   absolute index). Encoding pushes its temporaries above the slot and pops them all before the
   single luaL_addlstring at the end, so the caller finds the stack as it left it. The values'
   kinds' view functions are called; nothing else runs Lua code. */
void luashm_encode(lua_State *L, int first, int n, luaL_Buffer *b, const char *op);

/* luashm_encode with a limit: the encoding stops as soon as it would pass max bytes, calling
   toobig(L, size so far, ud) (NULL: raises "luashm: <op>: message is larger than <max>
   bytes"), so a value far larger than the limit costs no more than the limit to refuse. */
void luashm_encode_max(lua_State *L, int first, int n, luaL_Buffer *b, const char *op, size_t max,
                       luashm_toobig toobig, void *ud);

/* Decodes what luashm_encode wrote from p[0..len), pushes the values, returns how many. The
   bytes are untrusted: malformed input raises "luashm: <op>: malformed message at byte N: ...",
   and nothing is read outside p[0..len). Objects sent by name are reopened by calling
   luashm_reopen (kinds.h), whose errors (e.g. no such block) propagate. p must stay
   valid while Lua allocates (a Lua string on the stack, or C memory: not a buffer the GC can
   free). */
int luashm_decode(lua_State *L, const unsigned char *p, size_t len, const char *op);

#endif
