/*
** The Block: a named shared-memory block mapped into this process (Python's SharedMemory).
** shm.create, shm.attach, shm.exists, and the Block's methods and metatable.
*/
#include <errno.h>
#include <string.h>

#include "kinds.h"
#include "lualib.h"
#include "mapcache.h"
#include "sync.h"
#include "tracker.h"

int luashm_closed(lua_State *L, const luashm_block *b, const char *what) {
  return luashm_error(L, "%s '%s': block is closed", what, b->name);
}

luashm_block *luashm_toblock(lua_State *L, int i) {
  return (luashm_block *)luashm_tokind(L, i, &luashm_kind_block);
}

luashm_block *luashm_checkblock(lua_State *L, int i) {
  luashm_block *b = luashm_toblock(L, i);
  if (b->data == NULL) luashm_error(L, "block '%s' is closed", b->name);
  return b;
}

/* A userdata marked closed, so that an error before the mapping is made leaves an object that
   __gc can handle. */
static luashm_block *block_push(lua_State *L, const char *name) {
  luashm_block *b = (luashm_block *)lua_newuserdatauv(L, sizeof(luashm_block), 0);
  b->head.kind = &luashm_kind_block;
  b->head.b = b;
  b->data = NULL;
  b->size = 0;
  b->tracked = 0;
  b->held_lock = NULL;
  b->map = NULL;
  strcpy(b->name, name);
  luaL_setmetatable(L, LUASHM_BLOCK);
  return b;
}

static const char *opt_name(lua_State *L, int optidx) {
  const char *name = NULL;
  if (optidx == 0 || lua_isnoneornil(L, optidx)) return NULL;
  if (lua_getfield(L, optidx, "name") != LUA_TNIL) {
    if (lua_type(L, -1) != LUA_TSTRING) luashm_error(L, "create: opts.name must be a string");
    name = luashm_checkname(L, lua_gettop(L), "create");
  }
  lua_pop(L, 1); /* the string stays referenced by the opts table */
  return name;
}

static mode_t opt_mode(lua_State *L, int optidx) {
  lua_Integer mode = 0600;
  if (optidx == 0 || lua_isnoneornil(L, optidx)) return (mode_t)mode;
  if (lua_getfield(L, optidx, "mode") != LUA_TNIL) {
    int isint;
    mode = lua_tointegerx(L, -1, &isint);
    if (!isint || mode < 0 || mode > 0777)
      luashm_error(L, "create: opts.mode must be an integer from 0 to 0777 (e.g. 384 for 0600)");
  }
  lua_pop(L, 1);
  return (mode_t)mode;
}

luashm_block *luashm_block_new(lua_State *L, size_t size, int optidx) {
  char err[LUASHM_ERRLEN];
  const char *name;
  luashm_block *b;
  void *data;
  int track;
  mode_t mode;
  if (optidx != 0 && !lua_isnoneornil(L, optidx)) luaL_checktype(L, optidx, LUA_TTABLE);
  name = opt_name(L, optidx);
  track = luashm_optboolfield(L, optidx, "track", 1);
  mode = opt_mode(L, optidx);
  b = block_push(L, "");
  if (luashm_tracker_create(name, size, mode, track, b->name, &data, err) != 0)
    luashm_error(L, "%s", err);
  b->data = (unsigned char *)data;
  b->size = size;
  b->tracked = track;
  b->map = luashm_mapcache_own(b->name, data, size); /* knows its identity, for messages */
  return b;
}

int luashm_attach_errno = 0;

luashm_block *luashm_block_attach(lua_State *L, const char *name) {
  return luashm_block_attach_id(L, name, NULL);
}

luashm_block *luashm_block_attach_id(lua_State *L, const char *name, const luashm_fileid *id) {
  char err[LUASHM_ERRLEN];
  void *data;
  size_t size;
  luashm_block *b = block_push(L, name);
  if (luashm_mapcache_attach_hint(name, id, &b->map, &data, &size, err) != 0) {
    luashm_attach_errno = errno != 0 ? errno : EINVAL;
    luashm_error(L, "%s", err);
  }
  luashm_attach_errno = 0;
  b->data = (unsigned char *)data;
  b->size = size;
  return b;
}

/* ---------------------------------------------------------------------------------------
** Module functions
** ------------------------------------------------------------------------------------- */

static const char *const create_options[] = {LUASHM_BLOCK_OPTIONS, NULL};

static int block_create(lua_State *L) {
  lua_Integer size = luaL_checkinteger(L, 1);
  luashm_checkoptions(L, 2, "create", create_options);
  if (size <= 0) return luashm_error(L, "create: size %I is not positive", size);
  if ((lua_Unsigned)size > (lua_Unsigned)PTRDIFF_MAX)
    return luashm_error(L, "create: size %I is too large", size);
  luashm_block_new(L, (size_t)size, 2);
  return 1;
}

static int block_attach(lua_State *L) {
  luashm_block_attach(L, luashm_checkname(L, 1, "attach"));
  return 1;
}

static int block_exists(lua_State *L) {
  char err[LUASHM_ERRLEN];
  size_t len;
  const char *name = lua_tolstring(L, 1, &len);
  lua_pushboolean(L, lua_type(L, 1) == LUA_TSTRING &&
                         luashm_name_check("exists", name, len, err) == 0 &&
                         luashm_shm_exists(name));
  return 1;
}

/* ---------------------------------------------------------------------------------------
** Methods
** ------------------------------------------------------------------------------------- */

/* Checks that [off, off+len) lies inside b; op names the method in the error. */
static void block_range(lua_State *L, luashm_block *b, const char *op, lua_Integer off,
                        lua_Integer len) {
  if (off < 0) luashm_error(L, "%s '%s': offset %I is negative", op, b->name, off);
  if (len < 0) luashm_error(L, "%s '%s': length %I is negative", op, b->name, len);
  if ((lua_Unsigned)off > b->size || (lua_Unsigned)len > b->size - (size_t)off)
    luashm_error(L, "%s '%s': offset %I + length %I is past the end of the block (size %I)", op,
                 b->name, off, len, (lua_Integer)b->size);
}

static int block_read(lua_State *L) {
  luashm_block *b = luashm_checkblock(L, 1);
  lua_Integer off = luaL_optinteger(L, 2, 0);
  lua_Integer len;
  if (off < 0 || (lua_Unsigned)off > b->size) block_range(L, b, "read", off, 0);
  len = luaL_optinteger(L, 3, (lua_Integer)b->size - off);
  block_range(L, b, "read", off, len);
  lua_pushlstring(L, (const char *)b->data + off, (size_t)len);
  return 1;
}

static int block_write(lua_State *L) {
  luashm_block *b = luashm_checkblock(L, 1);
  lua_Integer off = luaL_checkinteger(L, 2);
  size_t len;
  const char *s = luaL_checklstring(L, 3, &len);
  block_range(L, b, "write", off, (lua_Integer)len);
  memcpy(b->data + off, s, len);
  return 0;
}

/* string.pack into a string, then one copy of just those bytes into the block. Returns the
   offset just past what was written. */
static int block_pack(lua_State *L) {
  luashm_block *b = luashm_checkblock(L, 1);
  lua_Integer off = luaL_checkinteger(L, 2);
  int n = lua_gettop(L);
  size_t len;
  const char *s;
  luaL_checkstring(L, 3);
  lua_pushvalue(L, lua_upvalueindex(1)); /* string.pack */
  lua_rotate(L, 3, 1);
  /* string.pack's own message ("invalid format option '9'") would not say who failed. */
  if (lua_pcall(L, n - 2, 1, 0) != LUA_OK)
    return luashm_error(L, "pack '%s': %s", b->name, lua_tostring(L, -1));
  s = lua_tolstring(L, -1, &len);
  block_range(L, b, "pack", off, (lua_Integer)len);
  b = luashm_checkblock(L, 1); /* string.pack ran Lua code (__tostring...): recheck */
  memcpy(b->data + off, s, len);
  lua_pushinteger(L, off + (lua_Integer)len);
  return 1;
}

/* string.unpack over a window of the block: the exact size for fixed formats, else a window
   that doubles, on any error, until the whole rest of the block was tried (no call copies more
   than twice what it reads); string.unpack's own message is reported then. Whether an error
   means "the data is short" is not guessed from its English text. */
static int block_unpack(lua_State *L) {
  luashm_block *b = luashm_checkblock(L, 1);
  lua_Integer off = luaL_checkinteger(L, 2);
  const char *fmt = luaL_checkstring(L, 3);
  size_t rest, win;
  int top;
  if (off < 0 || (lua_Unsigned)off > b->size) block_range(L, b, "unpack", off, 0);
  rest = b->size - (size_t)off;
  lua_pushvalue(L, lua_upvalueindex(2)); /* string.packsize */
  lua_pushstring(L, fmt);
  if (lua_pcall(L, 1, 1, 0) == LUA_OK) {
    lua_Integer need = lua_tointeger(L, -1);
    block_range(L, b, "unpack", off, need);
    win = (size_t)need;
  } else {
    win = rest < 64 ? rest : 64;
  }
  lua_settop(L, 3);
  for (;;) {
    lua_pushvalue(L, lua_upvalueindex(3)); /* string.unpack */
    lua_pushstring(L, fmt);
    lua_pushlstring(L, (const char *)b->data + off, win);
    if (lua_pcall(L, 2, LUA_MULTRET, 0) == LUA_OK) break;
    if (win == rest)
      return luashm_error(L, "unpack '%s': %s (format '%s' at offset %I, tried up to the end of "
                          "the block)", b->name, lua_tostring(L, -1), fmt, off);
    lua_settop(L, 3);
    win = rest / 2 < win ? rest : win * 2;
  }
  top = lua_gettop(L);
  lua_pop(L, 1); /* the next position */
  return top - 4;
}

void luashm_block_close(luashm_block *b) {
  if (b->held_lock != NULL) luashm_mutex_unlock((pthread_mutex_t *)b->held_lock);
  b->held_lock = NULL;
  if (b->map != NULL)
    luashm_mapcache_release(b->map);
  else
    luashm_shm_unmap(b->data, b->size);
  b->map = NULL;
  b->data = NULL;
}

static int block_close(lua_State *L) {
  luashm_block_close(luashm_toblock(L, 1));
  return 0;
}

int luashm_block_unlink(luashm_block *b, char *err) {
  b->tracked = 0;
  luashm_mapcache_forget(b->name); /* the name's pages must not outlive it in the cache */
  return luashm_tracker_unlink(b->name, err);
}

static int block_tostring(lua_State *L) {
  luashm_block *b = luashm_toblock(L, 1);
  if (b->data == NULL)
    lua_pushfstring(L, "luashm.Block '%s' (closed)", b->name);
  else
    lua_pushfstring(L, "luashm.Block '%s' (%I bytes)", b->name, (lua_Integer)b->size);
  return 1;
}

static int block_len(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)luashm_toblock(L, 1)->size);
  return 1;
}

/* Properties first, then methods (the method table is upvalue 1). */
static int block_index(lua_State *L) {
  luashm_block *b = luashm_toblock(L, 1);
  const char *k = lua_tostring(L, 2);
  if (k != NULL && lua_type(L, 2) == LUA_TSTRING) {
    if (strcmp(k, "size") == 0) {
      lua_pushinteger(L, (lua_Integer)b->size);
      return 1;
    }
    if (luashm_object_field(L, 1, k)) return 1;
  }
  lua_pushvalue(L, 2);
  lua_rawget(L, lua_upvalueindex(1));
  return 1;
}

static int block_newindex(lua_State *L) {
  luashm_block *b = luashm_toblock(L, 1);
  return luashm_error(L, "block '%s': fields are read-only", b->name);
}

static const luaL_Reg block_meth[] = {{"read", block_read},
                                      {"write", block_write},
                                      {"pack", block_pack},
                                      {"unpack", block_unpack},
                                      {"close", block_close},
                                      {"unlink", luashm_object_unlink},
                                      {NULL, NULL}};

static const luaL_Reg block_metameth[] = {{"__gc", block_close},          {"__close", block_close},
                                          {"__tostring", block_tostring}, {"__len", block_len},
                                          {"__newindex", block_newindex}, {NULL, NULL}};

/* shm.flush_cache(): unmaps the mappings this process keeps for blocks it no longer uses
   (mapcache.h); returns how many. */
static int block_flush_cache(lua_State *L) {
  lua_pushinteger(L, luashm_mapcache_flush());
  return 1;
}

static const luaL_Reg block_funcs[] = {{"create", block_create},
                                       {"attach", block_attach},
                                       {"exists", block_exists},
                                       {"flush_cache", block_flush_cache},
                                       {NULL, NULL}};

/* The Block takes any bytes (it is the registry's last kind) and wraps as itself. */
static int block_probe(const unsigned char *p, size_t size) {
  (void)p;
  (void)size;
  return 1;
}

static int block_wrap(lua_State *L, int view) {
  (void)view;
  luashm_toblock(L, -1);
  return 1;
}

static void block_describe(const unsigned char *p, size_t size, char *out, size_t n) {
  (void)p;
  (void)size;
  snprintf(out, n, "raw");
}

static void block_open(lua_State *L) {
  int i;
  luashm_newkind(L, &luashm_kind_block, block_meth, block_metameth, block_index);
  /* pack and unpack get string.pack, string.packsize and string.unpack as upvalues. */
  luaL_getmetatable(L, LUASHM_BLOCK);
  lua_getfield(L, -1, "__index");
  lua_getupvalue(L, -1, 1);
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  lua_getfield(L, -1, LUA_STRLIBNAME);
  lua_remove(L, -2);
  if (!lua_istable(L, -1)) luaL_error(L, "luashm needs the string library to be open");
  for (i = 0; block_meth[i].name != NULL; i++) {
    int pk = block_meth[i].func == block_pack, up = block_meth[i].func == block_unpack;
    if (!pk && !up) continue;
    lua_getfield(L, -1, "pack");
    if (up) {
      lua_getfield(L, -2, "packsize");
      lua_getfield(L, -3, "unpack");
    }
    lua_pushcclosure(L, block_meth[i].func, pk ? 1 : 3);
    lua_setfield(L, -3, block_meth[i].name);
  }
  lua_pop(L, 4);
  luaL_setfuncs(L, block_funcs, 0);
}

const luashm_kind luashm_kind_block = {"block",    LUASHM_BLOCK, "create",       block_probe,
                                       block_wrap, NULL,         block_describe, block_open};
