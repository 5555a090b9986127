/*
** libFuzzer target for the ShareableList layout: the input is a block's bytes, as another
** process (or another program) could have written them. It runs the layout check, shm.open's
** probe, and the whole List from Lua over a heap copy of exactly the input's size (so ASan
** sees any read or write past the block): open, read every item, format, tostring, count,
** then writes of every type, each read back.
*/
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "lualib.h"

/* Reads everything, then writes one value of each kind into every item and checks that what
   reads back is what was written (a failed write must be an error, never a partial value). */
static const char *exercise =
    "local l = ...\n"
    "local n = #l\n"
    "for i = 0, n + 1 do pcall(function() return l[i] end) end\n"
    "pcall(function() return l.format end)\n"
    "pcall(tostring, l)\n"
    "pcall(l.count, l, 1)\n"
    "pcall(l.totable, l)\n"
    "local values = {1, -2.5, true, false, 'str', 'b\\xff', 'nul\\0', '', ('w'):rep(40), '\\0'}\n"
    "for i = 1, n do\n"
    "  for _, v in ipairs(values) do\n"
    "    local ok = pcall(function() l[i] = v end)\n"
    "    if ok then assert(l[i] == v, 'read back differs at ' .. i) end\n"
    "  end\n"
    "  l[i] = nil\n"
    "  assert(l[i] == nil)\n"
    "end\n";

/* Wraps the Block at the top of the stack through the list kind (pcall'd: a malformed layout
   raises). */
static int wrap(lua_State *L) {
  return luashm_kind_list.wrap(L, 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char err[LUASHM_ERRLEN];
  lua_State *L = fuzz_state_with("fuzz_list.exercise", exercise);
  unsigned char *p = malloc(size ? size : 1);
  luashm_block *b;
  int ok, probe;
  memcpy(p, data, size);
  ok = luashm_list_check(p, size, err) == 0;
  probe = luashm_kind_list.probe(p, size);
  if (probe && !ok) abort(); /* shm.open must never take a block the check refuses */

  b = fuzz_push_block(L, p, size);
  lua_pushcfunction(L, wrap);
  lua_pushvalue(L, -2);
  if (lua_pcall(L, 1, 1, 0) == LUA_OK) {
    if (!ok) abort(); /* the List accepted what the check refused */
    lua_getfield(L, LUA_REGISTRYINDEX, "fuzz_list.exercise");
    lua_insert(L, -2);
    if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
      const char *msg = lua_tostring(L, -1);
      /* Errors are fine (a slot's format may be bad); a wrong read-back is not. */
      if (msg != NULL && strstr(msg, "read back differs") != NULL) abort();
    }
  } else if (ok) {
    abort(); /* the check accepted what the List refused */
  }
  b->data = NULL; /* the heap copy is not a mapping: the Block's __gc must not unmap it */
  lua_settop(L, 0);
  lua_gc(L, LUA_GCCOLLECT);
  free(p);
  return 0;
}
