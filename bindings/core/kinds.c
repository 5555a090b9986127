/*
** The registry of kinds (kinds.h) and what it serves: shm.open, reopening by name, the object
** contract's shared fields and methods, each kind's metatable, and the luashm header.
*/
#include "kinds.h"

#include <string.h>
#include <unistd.h>

#define KIND_FIELD "__luashm_kind" /* in every kind's metatable: the kind, a light userdata */

#define LUASHM_KIND_ADDRESS(k) &luashm_kind_##k,
const luashm_kind *const luashm_kinds[] = {LUASHM_KINDS(LUASHM_KIND_ADDRESS) NULL};

const luashm_kind *luashm_kind_of(const unsigned char *p, size_t size) {
  const luashm_kind *const *k;
  for (k = luashm_kinds; k[1] != NULL; k++)
    if ((*k)->probe(p, size)) return *k;
  return *k; /* the Block, last, takes anything */
}

const luashm_kind *luashm_kind_named(const char *name, size_t len) {
  const luashm_kind *const *k;
  for (k = luashm_kinds; *k != NULL; k++)
    if (strlen((*k)->name) == len && memcmp((*k)->name, name, len) == 0) return *k;
  return NULL;
}

/* ---------------------------------------------------------------------------------------
** Objects
** ------------------------------------------------------------------------------------- */

luashm_object *luashm_toobject(lua_State *L, int i) {
  luashm_object *o = NULL;
  if (lua_type(L, i) != LUA_TUSERDATA || !lua_getmetatable(L, i)) return NULL;
  lua_pushliteral(L, KIND_FIELD);
  if (lua_rawget(L, -2) == LUA_TLIGHTUSERDATA) {
    o = (luashm_object *)lua_touserdata(L, i);
    if (lua_rawlen(L, i) < sizeof *o || o->kind != lua_touserdata(L, -1)) o = NULL;
  }
  lua_pop(L, 2);
  return o;
}

void luashm_newkind(lua_State *L, const luashm_kind *k, const luaL_Reg *meth,
                    const luaL_Reg *metameth, lua_CFunction index) {
  luaL_newmetatable(L, k->tname);
  luaL_setfuncs(L, metameth, 0);
  lua_pushboolean(L, 0); /* getmetatable(x) must not hand out the methods */
  lua_setfield(L, -2, "__metatable");
  lua_pushlightuserdata(L, (void *)k);
  lua_setfield(L, -2, KIND_FIELD);
  lua_newtable(L);
  luaL_setfuncs(L, meth, 0);
  if (index != NULL) lua_pushcclosure(L, index, 1);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
}

int luashm_object_field(lua_State *L, int idx, const char *key) {
  luashm_object *o = (luashm_object *)lua_touserdata(L, idx);
  if (strcmp(key, "name") == 0) {
    if (o->b == NULL) return lua_pushnil(L), 1;
    lua_pushstring(L, o->b->name);
  } else if (strcmp(key, "block") == 0) {
    if (o->b == NULL) return lua_pushnil(L), 1;
    if ((void *)o->b == (void *)o)
      lua_pushvalue(L, idx);
    else
      lua_getiuservalue(L, idx, 1);
  } else if (strcmp(key, "closed") == 0) {
    lua_pushboolean(L, o->b != NULL && o->b->data == NULL); /* private memory: its own state */
  } else {
    return 0;
  }
  return 1;
}

int luashm_object_index(lua_State *L) {
  const char *k;
  lua_pushvalue(L, 2);
  if (lua_rawget(L, lua_upvalueindex(1)) != LUA_TNIL) return 1;
  k = lua_tostring(L, 2);
  if (k == NULL || lua_type(L, 2) != LUA_TSTRING) return 1;
  if (luashm_toobject(L, 1) == NULL) return luaL_typeerror(L, 1, "luashm object");
  if (!luashm_object_field(L, 1, k)) lua_pushnil(L);
  return 1;
}

int luashm_object_unlink(lua_State *L) {
  luashm_object *o = luashm_toobject(L, 1);
  char err[LUASHM_ERRLEN];
  if (o == NULL) return luaL_typeerror(L, 1, "luashm object");
  if (o->b == NULL) return luashm_error(L, "unlink: a private %s has no name", o->kind->name);
  if (luashm_block_unlink(o->b, err) != 0) return luashm_error(L, "%s", err);
  return 0;
}

/* No probe first: the kind's wrap validates everything and says what is wrong. */
void luashm_reopen(lua_State *L, const luashm_kind *k, const char *name, int view) {
  if (view != 0) view = lua_absindex(L, view);
  luashm_block_attach(L, name);
  k->wrap(L, view);
}

/* shm.open(name): the block as the object of whatever kind its bytes hold. */
static int kinds_open(lua_State *L) {
  luashm_block *b = luashm_block_attach(L, luashm_checkname(L, 1, "open"));
  return luashm_kind_of(b->data, b->size)->wrap(L, 0);
}

void luashm_open_kinds(lua_State *L) {
  const luashm_kind *const *k;
  for (k = luashm_kinds; *k != NULL; k++) (*k)->open(L);
  lua_pushcfunction(L, kinds_open);
  lua_setfield(L, -2, "open");
}

/* ---------------------------------------------------------------------------------------
** The header of luashm's own blocks
** ------------------------------------------------------------------------------------- */

void luashm_header_init(unsigned char *p, const char *kind, uint32_t version) {
  luashm_header h;
  memset(&h, 0, sizeof h);
  memcpy(h.magic, LUASHM_MAGIC, sizeof h.magic);
  strncpy(h.kind, kind, sizeof h.kind - 1);
  h.version = version;
  h.creator = (int64_t)getpid();
  __atomic_thread_fence(__ATOMIC_RELEASE);
  memcpy(p, &h, sizeof h);
}

int luashm_header_is(const unsigned char *p, size_t size, const char *kind, uint32_t version) {
  luashm_header h;
  if (size < LUASHM_HEADER_SIZE) return 0;
  memcpy(&h, p, sizeof h);
  return memcmp(h.magic, LUASHM_MAGIC, sizeof h.magic) == 0 &&
         strncmp(h.kind, kind, sizeof h.kind) == 0 && h.version == version;
}
