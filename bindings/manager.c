/*
** The Manager (Python's SharedMemoryManager): shm.manager() and its methods. Its record of
** the blocks created through it lives in a block of its own (kind "manager"), so that workers
** that inherited the manager by fork record their blocks in the same place, and the owner
** unlinks them all at shutdown.
**
** Record layout after the luashm header: a robust process-shared mutex, the state (open or
** shut down), the size of the entry area and the bytes used, then the entries, packed:
** [live u8][len u8][dev u64][ino u64][name, len bytes]. An entry is appended whole before
** `used` moves past it, so a holder that dies mid-append leaves the record consistent.
*/
#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core.h"
#include "tracker.h"

#define LUASHM_MANAGER "luashm.Manager"
#define REC_VERSION 1
#define REC_ENTRIES (LUASHM_HEADER_SIZE + 128) /* the entry area starts here */
#define ENTRY_HEAD 18
#define DEFAULT_CAPACITY 1024 /* blocks with generated names */

typedef struct rec_head {
  pthread_mutex_t mu;
  uint32_t state; /* 0 open, 1 shut down */
  uint32_t area;  /* bytes of entry area */
  uint64_t used;  /* bytes of entry area in use */
} rec_head;

_Static_assert(sizeof(rec_head) <= REC_ENTRIES - LUASHM_HEADER_SIZE, "record head too big");

typedef struct manager {
  luashm_block *rec; /* the record's Block, kept alive as user value 1 */
  long owner;        /* pid of the process that unlinks at shutdown */
  int shut;          /* shut down as seen from this process */
} manager;

static rec_head *head_of(manager *m) {
  return (rec_head *)(m->rec->data + LUASHM_HEADER_SIZE);
}

static unsigned char *area_of(manager *m) {
  return m->rec->data + REC_ENTRIES;
}

/* ---------------------------------------------------------------------------------------
** The shared record
** ------------------------------------------------------------------------------------- */

/* Keeps the entries up to the first malformed one: what a holder killed mid-compaction can
   leave behind. */
static void rec_repair(manager *m) {
  rec_head *h = head_of(m);
  unsigned char *a = area_of(m);
  uint64_t off = 0;
  while (off + ENTRY_HEAD <= h->used) {
    unsigned len = a[off + 1];
    if (len == 0 || len > LUASHM_NAME_MAX || off + ENTRY_HEAD + len > h->used) break;
    off += ENTRY_HEAD + len;
  }
  h->used = off;
}

static void rec_lock(manager *m) {
  rec_head *h = head_of(m);
  if (pthread_mutex_lock(&h->mu) == EOWNERDEAD) {
    rec_repair(m);
    pthread_mutex_consistent(&h->mu);
  }
}

static void rec_unlock(manager *m) {
  pthread_mutex_unlock(&head_of(m)->mu);
}

/* Whether the entry's name still names the file that was recorded. */
static int entry_current(const unsigned char *e) {
  char path[16 + LUASHM_NAME_MAX];
  uint64_t dev, ino;
  struct stat st;
  memcpy(&dev, e + 2, 8);
  memcpy(&ino, e + 10, 8);
  snprintf(path, sizeof path, "/dev/shm/%.*s", (int)e[1], (const char *)e + ENTRY_HEAD);
  if (stat(path, &st) != 0) return 0;
  return ino == 0 || ((uint64_t)st.st_dev == dev && (uint64_t)st.st_ino == ino);
}

/* Drops entries that are dead or whose block is gone. Under the lock. */
static void rec_compact(manager *m) {
  rec_head *h = head_of(m);
  unsigned char *a = area_of(m);
  uint64_t off = 0, to = 0;
  while (off < h->used) {
    size_t sz = ENTRY_HEAD + a[off + 1];
    if (a[off] && entry_current(a + off)) {
      memmove(a + to, a + off, sz);
      to += sz;
    }
    off += sz;
  }
  h->used = to;
}

/* Appends name; returns 0, or "shut" / "full" (under no lock on return). */
static const char *rec_add(manager *m, const char *name, const struct stat *st) {
  rec_head *h = head_of(m);
  unsigned char *a = area_of(m);
  size_t len = strlen(name);
  uint64_t dev = (uint64_t)st->st_dev, ino = (uint64_t)st->st_ino;
  rec_lock(m);
  if (h->state != 0) {
    rec_unlock(m);
    return "shut";
  }
  if (h->used + ENTRY_HEAD + len > h->area) rec_compact(m);
  if (h->used + ENTRY_HEAD + len > h->area) {
    rec_unlock(m);
    return "full";
  }
  a[h->used + 1] = (unsigned char)len;
  memcpy(a + h->used + 2, &dev, 8);
  memcpy(a + h->used + 10, &ino, 8);
  memcpy(a + h->used + ENTRY_HEAD, name, len);
  a[h->used] = 1;
  h->used += ENTRY_HEAD + len;
  rec_unlock(m);
  return NULL;
}

/* Pushes a sequence of the recorded names whose blocks are still there; with unlink, also
   marks the record shut down and unlinks each of them. */
static void rec_names(lua_State *L, manager *m, int unlink) {
  rec_head *h = head_of(m);
  unsigned char *a = area_of(m);
  uint64_t off = 0;
  int n = 0;
  lua_newtable(L);
  rec_lock(m);
  if (unlink) h->state = 1;
  for (; off < h->used; off += ENTRY_HEAD + a[off + 1]) {
    char name[LUASHM_NAME_MAX + 1], err[LUASHM_ERRLEN];
    if (!a[off] || !entry_current(a + off)) continue;
    memcpy(name, a + off + ENTRY_HEAD, a[off + 1]);
    name[a[off + 1]] = '\0';
    if (unlink) {
      luashm_tracker_unlink(name, err); /* gone meanwhile: someone else unlinked it, fine */
      a[off] = 0;
    }
    lua_pushstring(L, name);
    lua_rawseti(L, -2, ++n);
  }
  rec_unlock(m);
}

/* ---------------------------------------------------------------------------------------
** The Manager
** ------------------------------------------------------------------------------------- */

static manager *tomanager(lua_State *L, int i) {
  return (manager *)luaL_checkudata(L, i, LUASHM_MANAGER);
}

static int is_shut(manager *m) {
  return m->shut || m->rec->data == NULL || head_of(m)->state != 0;
}

/* The gate of every creating method. */
static manager *checkmanager(lua_State *L, int i) {
  manager *m = tomanager(L, i);
  if (is_shut(m)) luashm_error(L, "manager '%s' is shut down", m->rec->name);
  return m;
}

/* Wraps the record Block at the top of the stack into a Manager owned by owner. */
static manager *manager_push(lua_State *L, long owner) {
  luashm_block *rec = luashm_toblock(L, -1);
  manager *m = (manager *)lua_newuserdatauv(L, sizeof(manager), 2);
  m->rec = rec;
  m->owner = owner;
  m->shut = 1;
  lua_rotate(L, -2, 1);
  lua_setiuservalue(L, -2, 1);
  lua_newtable(L); /* the objects created through it in this process, weakly */
  lua_newtable(L);
  lua_pushliteral(L, "k");
  lua_setfield(L, -2, "__mode");
  lua_setmetatable(L, -2);
  lua_setiuservalue(L, -2, 2);
  luaL_setmetatable(L, LUASHM_MANAGER);
  return m;
}

static int manager_new(lua_State *L) {
  lua_Integer cap = DEFAULT_CAPACITY;
  pthread_mutexattr_t attr;
  rec_head *h;
  manager *m;
  luashm_block *rec;
  size_t area;
  if (!lua_isnoneornil(L, 1)) {
    luaL_checktype(L, 1, LUA_TTABLE);
    if (lua_getfield(L, 1, "capacity") != LUA_TNIL) {
      int isint;
      cap = lua_tointegerx(L, -1, &isint);
      if (!isint || cap < 1 || cap > (1 << 24))
        luashm_error(L, "manager: opts.capacity must be an integer from 1 to %d", 1 << 24);
    }
    lua_pop(L, 1);
  }
  area = (size_t)cap * (ENTRY_HEAD + LUASHM_GEN_NAME_LEN);
  lua_settop(L, 0);
  rec = luashm_block_new(L, REC_ENTRIES + area, 0);
  luashm_header_init(rec->data, "manager", REC_VERSION);
  h = (rec_head *)(rec->data + LUASHM_HEADER_SIZE);
  pthread_mutexattr_init(&attr);
  pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
  pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
  pthread_mutex_init(&h->mu, &attr);
  pthread_mutexattr_destroy(&attr);
  h->area = (uint32_t)area;
  m = manager_push(L, (long)getpid());
  m->shut = 0;
  return 1;
}

/* The block name of the object at idx, through its type's __luashm_ref. */
static const char *object_name(lua_State *L, int idx, const char *fn) {
  const char *name;
  if (!lua_getmetatable(L, idx) || lua_getfield(L, -1, LUASHM_REF_FIELD) != LUA_TFUNCTION)
    luashm_error(L, "manager: shm.%s returned a %s, not a luashm object", fn,
                 luaL_typename(L, idx));
  lua_pushvalue(L, idx);
  lua_call(L, 1, 1);
  name = lua_tostring(L, -1);
  if (name == NULL) luashm_error(L, "manager: shm.%s returned an object without a name", fn);
  lua_replace(L, -2); /* keep the name string on the stack in place of the metatable */
  return name;
}

/* Closes the object at idx through its own __close, ignoring errors (used from __gc). */
static void object_close(lua_State *L, int idx) {
  int top = lua_gettop(L);
  if (lua_getmetatable(L, idx) && lua_getfield(L, -1, "__close") == LUA_TFUNCTION) {
    lua_pushvalue(L, idx);
    lua_pushnil(L);
    lua_pcall(L, 2, 0, 0);
  }
  lua_settop(L, top);
}

/* m:create, m:array, ...: calls shm.<fn> (looked up now: upvalue 1 is fn, 2 the module), then
   records the new object's block. */
static int manager_make(lua_State *L) {
  manager *m = checkmanager(L, 1);
  const char *fn = lua_tostring(L, lua_upvalueindex(1)), *name, *why;
  char path[16 + LUASHM_NAME_MAX], err[LUASHM_ERRLEN];
  struct stat st;
  int nargs = lua_gettop(L) - 1, obj;
  if (lua_getfield(L, lua_upvalueindex(2), fn) != LUA_TFUNCTION)
    return luashm_error(L, "manager '%s': shm.%s is not available", m->rec->name, fn);
  lua_rotate(L, 2, 1);
  lua_call(L, nargs, 1);
  obj = lua_gettop(L);
  name = object_name(L, obj, fn);
  snprintf(path, sizeof path, "/dev/shm/%s", name);
  if (stat(path, &st) != 0) memset(&st, 0, sizeof st);
  /* shm.<fn> ran Lua code (an opts metamethod...) that may have shut the manager down. */
  why = is_shut(m) ? "shut" : rec_add(m, name, &st);
  if (why != NULL) {
    luashm_tracker_unlink(name, err);
    object_close(L, obj);
    if (why[0] == 's') return luashm_error(L, "manager '%s' is shut down", m->rec->name);
    return luashm_error(L,
                        "manager '%s': record is full (%d bytes of names); "
                        "shm.manager{capacity = n} makes room for n blocks",
                        m->rec->name, (int)head_of(m)->area);
  }
  lua_getiuservalue(L, 1, 2);
  lua_pushvalue(L, obj);
  lua_pushboolean(L, 1);
  lua_rawset(L, -3);
  lua_settop(L, obj);
  return 1;
}

static int manager_names(lua_State *L) {
  manager *m = tomanager(L, 1);
  if (is_shut(m))
    lua_newtable(L);
  else
    rec_names(L, m, 0);
  return 1;
}

/* Unlinks every recorded block, closes the objects made here, unlinks and closes the record.
   Only the owner: a forked copy just forgets. */
static void shutdown(lua_State *L, manager *m) {
  char err[LUASHM_ERRLEN];
  if (m->shut) return;
  m->shut = 1;
  if (m->owner != (long)getpid() || m->rec->data == NULL) return;
  rec_names(L, m, 1);
  lua_pop(L, 1);
  lua_getiuservalue(L, 1, 2);
  lua_pushnil(L);
  while (lua_next(L, -2) != 0) {
    lua_pop(L, 1);
    object_close(L, lua_gettop(L));
  }
  lua_pop(L, 1);
  luashm_tracker_unlink(m->rec->name, err);
  luashm_shm_unmap(m->rec->data, m->rec->size);
  m->rec->data = NULL;
}

static int manager_shutdown(lua_State *L) {
  manager *m = tomanager(L, 1);
  if (!m->shut && m->owner != (long)getpid())
    return luashm_error(L, "manager '%s': shutdown in pid %d, which does not own it (owner %d)",
                        m->rec->name, (int)getpid(), (int)m->owner);
  shutdown(L, m);
  return 0;
}

static int manager_gc(lua_State *L) {
  lua_settop(L, 1);
  shutdown(L, tomanager(L, 1));
  return 0;
}

static int manager_tostring(lua_State *L) {
  manager *m = tomanager(L, 1);
  if (is_shut(m))
    lua_pushfstring(L, "luashm.Manager '%s' (shut down)", m->rec->name);
  else {
    luashm_header hd;
    memcpy(&hd, m->rec->data, sizeof hd);
    rec_names(L, m, 0);
    int n = (int)lua_rawlen(L, -1);
    lua_pushfstring(L, "luashm.Manager '%s' (%d block%s, owner pid %d)", m->rec->name, n,
                    n == 1 ? "" : "s", (int)hd.creator);
  }
  return 1;
}

/* shm.tracker(): the pid of this process tree's watchdog, or nil before the first tracked
   create (diagnostics and tests). */
static int manager_tracker(lua_State *L) {
  long pid = luashm_tracker_pid();
  if (pid == 0)
    lua_pushnil(L);
  else
    lua_pushinteger(L, (lua_Integer)pid);
  return 1;
}

static int manager_ref(lua_State *L) {
  lua_pushstring(L, tomanager(L, 1)->rec->name);
  lua_pushliteral(L, "manager");
  return 2;
}

/* ---------------------------------------------------------------------------------------
** Kind registration (shm.open and the block tool) and reopening by name
** ------------------------------------------------------------------------------------- */

int luashm_manager_probe(const unsigned char *p, size_t size) {
  rec_head h;
  if (!luashm_header_is(p, size, "manager", REC_VERSION) || size < REC_ENTRIES) return 0;
  memcpy(&h, p + LUASHM_HEADER_SIZE, sizeof h);
  return h.area <= size - REC_ENTRIES && h.used <= h.area;
}

/* A Manager opened by name elsewhere is never its owner: it records, and never unlinks. */
int luashm_manager_wrap(lua_State *L) {
  manager *m = manager_push(L, -1);
  m->shut = 0;
  return 1;
}

static int manager_reopen(lua_State *L) {
  luashm_block *b = luashm_block_attach(L, luashm_checkname(L, 1, "attach"));
  if (!luashm_manager_probe(b->data, b->size))
    return luashm_error(L, "attach '%s': not a manager record", b->name);
  return luashm_manager_wrap(L);
}

static const char *const makers[] = {"create", "array", "list", "lock", "barrier", "channel", NULL};

static const luaL_Reg manager_meth[] = {
    {"names", manager_names}, {"shutdown", manager_shutdown}, {NULL, NULL}};

static const luaL_Reg manager_metameth[] = {{"__gc", manager_gc},
                                            {"__close", manager_gc},
                                            {"__tostring", manager_tostring},
                                            {LUASHM_REF_FIELD, manager_ref},
                                            {NULL, NULL}};

void luashm_open_manager(lua_State *L) {
  int i;
  luashm_tracker_init();
  luaL_newmetatable(L, LUASHM_MANAGER);
  luaL_setfuncs(L, manager_metameth, 0);
  lua_pushliteral(L, LUASHM_MANAGER);
  lua_setfield(L, -2, "__name");
  lua_pushboolean(L, 0);
  lua_setfield(L, -2, "__metatable");
  luaL_newlib(L, manager_meth);
  for (i = 0; makers[i] != NULL; i++) {
    lua_pushstring(L, makers[i]);
    lua_pushvalue(L, -4); /* the module table */
    lua_pushcclosure(L, manager_make, 2);
    lua_setfield(L, -2, makers[i]);
  }
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
  lua_pushcfunction(L, manager_new);
  lua_setfield(L, -2, "manager");
  lua_pushcfunction(L, manager_tracker);
  lua_setfield(L, -2, "tracker");
  lua_pushcfunction(L, manager_reopen);
  luashm_set_reopener(L, "manager");
}
