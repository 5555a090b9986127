/*
** shm.open: attach by name alone and return the right object. Each kind of block (an NPY
** array, a ShareableList, a lock...) registers a probe and a wrapper in luashm_kinds; a block
** no kind recognises opens as a plain Block.
*/
#include <string.h>
#include <unistd.h>

#include "core.h"

void luashm_header_init(unsigned char *p, const char *kind, uint32_t version) {
  luashm_header h;
  memset(&h, 0, sizeof h);
  memcpy(h.magic, LUASHM_MAGIC, sizeof h.magic);
  strncpy(h.kind, kind, sizeof h.kind - 1);
  h.version = version;
  h.creator = (int64_t)getpid();
  memcpy(p, &h, sizeof h);
}

int luashm_header_is(const unsigned char *p, size_t size, const char *kind, uint32_t version) {
  luashm_header h;
  if (size < LUASHM_HEADER_SIZE) return 0;
  memcpy(&h, p, sizeof h);
  return memcmp(h.magic, LUASHM_MAGIC, sizeof h.magic) == 0 &&
         strncmp(h.kind, kind, sizeof h.kind) == 0 && h.version == version;
}

/* Order matters: formats with a magic first, the ShareableList (recognised by layout alone)
   last. */
const luashm_kind luashm_kinds[] = {{"array", luashm_array_probe, luashm_array_wrap},
                                    {"lock", luashm_lock_probe, luashm_lock_wrap},
                                    {"barrier", luashm_barrier_probe, luashm_barrier_wrap},
                                    {"manager", luashm_manager_probe, luashm_manager_wrap},
                                    {"progress", luashm_progress_probe, luashm_progress_wrap},
                                    {"channel", luashm_channel_probe, luashm_channel_wrap},
                                    {"list", luashm_list_probe, luashm_list_wrap},
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
