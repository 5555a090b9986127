/*
** shm.open: attach by name alone and return the right object. Each kind of block (an NPY
** array, a ShareableList, a lock...) registers a probe and a wrapper in luashm_kinds; a block
** no kind recognises opens as a plain Block.
*/
#include "core.h"

const luashm_kind luashm_kinds[] = {
    {NULL, NULL, NULL}};

const char *luashm_kind_of(const unsigned char *p, size_t size) {
  const luashm_kind *k;
  for (k = luashm_kinds; k->name != NULL; k++)
    if (k->probe(p, size)) return k->name;
  return "block";
}

static int open_open(lua_State *L) {
  const luashm_kind *k;
  luashm_block *b = luashm_block_attach(L, luashm_checkname(L, 1, "open"));
  for (k = luashm_kinds; k->name != NULL; k++)
    if (k->probe(b->data, b->size)) return k->wrap(L);
  return 1;
}

void luashm_open_kinds(lua_State *L) {
  lua_pushcfunction(L, open_open);
  lua_setfield(L, -2, "open");
}
