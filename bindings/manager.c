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
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kinds.h"
#include "sync.h"
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
  luashm_object head; /* head.b: the record's Block */
  long owner;         /* pid of the process that unlinks at shutdown */
  int shut;           /* shut down as seen from this process */
} manager;

static rec_head *head_of(manager *m) {
  return (rec_head *)(m->head.b->data + LUASHM_HEADER_SIZE);
}

static unsigned char *area_of(manager *m) {
  return m->head.b->data + REC_ENTRIES;
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

/* Locks the record, repairing it after a holder that died; raises when the record's mutex is
   forged or the wait is interrupted. */
static void rec_lock(lua_State *L, manager *m) {
  rec_head *h = head_of(m);
  int rc = luashm_mutex_lock(&h->mu, NULL);
  if (rc == LUASHM_OWNER_DIED) rc = (rec_repair(m), 0);
  if (rc == EINTR) luashm_interrupted(L);
  if (rc != 0)
    luashm_error(L, "manager '%s': its record no longer holds a valid mutex", m->head.b->name);
}

static void rec_unlock(manager *m) {
  luashm_mutex_unlock(&head_of(m)->mu);
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
static const char *rec_add(lua_State *L, manager *m, const char *name, const struct stat *st) {
  rec_head *h = head_of(m);
  unsigned char *a = area_of(m);
  size_t len = strlen(name);
  uint64_t dev = (uint64_t)st->st_dev, ino = (uint64_t)st->st_ino;
  rec_lock(L, m);
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
  rec_lock(L, m);
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
  return (manager *)luashm_tokind(L, i, &luashm_kind_manager);
}

static int is_shut(manager *m) {
  return m->shut || m->head.b->data == NULL || head_of(m)->state != 0;
}

/* The gate of every creating method. */
static manager *checkmanager(lua_State *L, int i) {
  manager *m = tomanager(L, i);
  if (is_shut(m)) luashm_error(L, "manager '%s' is shut down", m->head.b->name);
  return m;
}

/* Wraps the record Block at the top of the stack into a Manager owned by owner. */
static manager *manager_push(lua_State *L, long owner) {
  luashm_block *rec = luashm_toblock(L, -1);
  manager *m = (manager *)lua_newuserdatauv(L, sizeof(manager), 2);
  m->head.kind = &luashm_kind_manager;
  m->head.b = rec;
  m->owner = owner;
  m->shut = 0;
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

static const char *const manager_options[] = {"capacity", NULL};

static int manager_new(lua_State *L) {
  lua_Integer cap = DEFAULT_CAPACITY;
  rec_head *h;
  luashm_block *rec;
  size_t area;
  if (luashm_checkoptions(L, 1, "manager", manager_options) &&
      lua_getfield(L, 1, "capacity") != LUA_TNIL) {
    int isint;
    cap = lua_tointegerx(L, -1, &isint);
    if (!isint || cap < 1 || cap > (1 << 24))
      luashm_error(L, "manager: opts.capacity must be an integer from 1 to %d", 1 << 24);
  }
  area = (size_t)cap * (ENTRY_HEAD + LUASHM_GEN_NAME_LEN);
  lua_settop(L, 0);
  rec = luashm_block_new(L, REC_ENTRIES + area, 0);
  h = (rec_head *)(rec->data + LUASHM_HEADER_SIZE);
  if (luashm_mutex_init(&h->mu) != 0) {
    char ignored[LUASHM_ERRLEN];
    luashm_block_unlink(rec, ignored);
    return luashm_error(L, "manager '%s': cannot make its mutex", rec->name);
  }
  h->area = (uint32_t)area;
  luashm_header_init(rec->data, "manager", REC_VERSION);
  manager_push(L, (long)getpid());
  return 1;
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

/* m:create, m:array, ...: calls shm.<maker> (looked up now: upvalue 1 is the kind, 2 the
   module), then records the new object's block. */
static int manager_make(lua_State *L) {
  manager *m = checkmanager(L, 1);
  const luashm_kind *k = (const luashm_kind *)lua_touserdata(L, lua_upvalueindex(1));
  const char *name, *why;
  char path[16 + LUASHM_NAME_MAX], err[LUASHM_ERRLEN];
  struct stat st;
  luashm_object *o;
  int nargs = lua_gettop(L) - 1, obj;
  if (lua_getfield(L, lua_upvalueindex(2), k->maker) != LUA_TFUNCTION)
    return luashm_error(L, "manager '%s': shm.%s is not available", m->head.b->name, k->maker);
  lua_rotate(L, 2, 1);
  lua_call(L, nargs, 1);
  obj = lua_gettop(L);
  o = luashm_toobject(L, obj);
  if (o == NULL || o->b == NULL)
    return luashm_error(L, "manager: shm.%s returned no object in a block", k->maker);
  name = o->b->name;
  snprintf(path, sizeof path, "/dev/shm/%s", name);
  if (stat(path, &st) != 0) memset(&st, 0, sizeof st);
  /* shm.<maker> ran Lua code (an opts metamethod...) that may have shut the manager down. */
  why = is_shut(m) ? "shut" : rec_add(L, m, name, &st);
  if (why != NULL) {
    luashm_tracker_unlink(name, err);
    object_close(L, obj);
    if (why[0] == 's') return luashm_error(L, "manager '%s' is shut down", m->head.b->name);
    return luashm_error(L,
                        "manager '%s': record is full (%d bytes of names); "
                        "shm.manager{capacity = n} makes room for n blocks",
                        m->head.b->name, (int)head_of(m)->area);
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
  if (m->owner != (long)getpid() || m->head.b->data == NULL) return;
  rec_names(L, m, 1);
  lua_pop(L, 1);
  lua_getiuservalue(L, 1, 2);
  lua_pushnil(L);
  while (lua_next(L, -2) != 0) {
    lua_pop(L, 1);
    object_close(L, lua_gettop(L));
  }
  lua_pop(L, 1);
  luashm_tracker_unlink(m->head.b->name, err);
  luashm_block_close(m->head.b);
}

static int manager_shutdown(lua_State *L) {
  manager *m = tomanager(L, 1);
  if (!m->shut && m->owner != (long)getpid())
    return luashm_error(L, "shutdown '%s': pid %d does not own this manager (owner %d)",
                        m->head.b->name, (int)getpid(), (int)m->owner);
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
    lua_pushfstring(L, "luashm.Manager '%s' (shut down)", m->head.b->name);
  else {
    luashm_header hd;
    int n;
    memcpy(&hd, m->head.b->data, sizeof hd);
    rec_names(L, m, 0);
    n = (int)lua_rawlen(L, -1);
    lua_pushfstring(L, "luashm.Manager '%s' (%d block%s, owner pid %d)", m->head.b->name, n,
                    n == 1 ? "" : "s", (int)hd.creator);
  }
  return 1;
}

/* ---------------------------------------------------------------------------------------
** The kind
** ------------------------------------------------------------------------------------- */

static int manager_probe(const unsigned char *p, size_t size) {
  rec_head h;
  if (!luashm_header_is(p, size, "manager", REC_VERSION) || size < REC_ENTRIES) return 0;
  memcpy(&h, p + LUASHM_HEADER_SIZE, sizeof h);
  return h.area <= size - REC_ENTRIES && h.used <= h.area;
}

/* A Manager opened by name elsewhere is never its owner: it records, and never unlinks. */
static int manager_wrap(lua_State *L, int view) {
  luashm_block *b = luashm_toblock(L, -1);
  (void)view;
  if (!manager_probe(b->data, b->size) ||
      !luashm_mutex_valid(&((rec_head *)(b->data + LUASHM_HEADER_SIZE))->mu))
    return luashm_error(L, "open '%s': not a valid manager record", b->name);
  manager_push(L, -1);
  return 1;
}

static const luaL_Reg manager_meth[] = {
    {"names", manager_names}, {"shutdown", manager_shutdown}, {NULL, NULL}};

static const luaL_Reg manager_metameth[] = {
    {"__gc", manager_gc}, {"__close", manager_gc}, {"__tostring", manager_tostring}, {NULL, NULL}};

/* The methods table gets m:<maker> for every kind that has a maker. */
static void manager_open(lua_State *L) {
  const luashm_kind *const *k;
  luashm_newkind(L, &luashm_kind_manager, manager_meth, manager_metameth, luashm_object_index);
  luaL_getmetatable(L, LUASHM_MANAGER);
  lua_getfield(L, -1, "__index");
  lua_getupvalue(L, -1, 1);
  for (k = luashm_kinds; *k != NULL; k++) {
    if ((*k)->maker == NULL) continue;
    lua_pushlightuserdata(L, (void *)*k);
    lua_pushvalue(L, -5); /* the module table */
    lua_pushcclosure(L, manager_make, 2);
    lua_setfield(L, -2, (*k)->maker);
  }
  lua_pop(L, 3);
  lua_pushcfunction(L, manager_new);
  lua_setfield(L, -2, "manager");
}

const luashm_kind luashm_kind_manager = {"manager",    LUASHM_MANAGER, NULL, manager_probe,
                                         manager_wrap, NULL,           NULL, manager_open};
