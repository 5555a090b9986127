/*
** The Manager (Python's SharedMemoryManager): shm.manager() and its methods. Its record of
** the blocks created through it lives in a block of its own (kind "manager"), so that workers
** that inherited the manager by fork record their blocks in the same place, and the owner
** unlinks them all at shutdown.
**
** Record layout after the luashm header: a robust process-shared mutex, the state (open or
** shut down), the record's size as last grown, the bytes of entries in use, then the entries
** to the end of the block, packed: [live u8][len u8][dev u64][ino u64][name, len bytes]. An
** entry is appended whole before `used` moves past it, so a holder that dies mid-append leaves
** the record consistent. The record has no fixed capacity: when the entries fill it, the holder
** of the lock grows the block (the file grows, its new pages reserved) and maps it again; a
** process that then finds `size` past its own mapping maps it again too. Every field is read
** as untrusted bytes, each time: `used` is checked against the mapping, every entry's length
** and name, the mutex by the sync core.
*/
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kinds.h"
#include "sync.h"
#include "tracker.h"

#define LUASHM_MANAGER "luashm.Manager"
#define REC_VERSION 2
#define REC_ENTRIES (LUASHM_HEADER_SIZE + 128) /* the entry area starts here */
#define ENTRY_HEAD 18
#define REC_INITIAL 4096            /* bytes: about 95 generated names */
#define REC_MAX ((uint64_t)1 << 34) /* 16 GiB of record, some 400 M names: a bound, not a goal */

typedef struct rec_head {
  pthread_mutex_t mu;
  uint32_t state; /* 0 open, anything else shut down */
  uint32_t reserved;
  uint64_t size; /* bytes of the block as last grown: a mapping smaller than this maps again */
  uint64_t used; /* bytes of entry area in use */
} rec_head;

_Static_assert(sizeof(rec_head) <= REC_ENTRIES - LUASHM_HEADER_SIZE, "record head too big");

typedef struct manager {
  luashm_object head; /* head.b: the record's Block as last mapped here (user value 1) */
  long owner;         /* pid of the process that unlinks at shutdown */
  int shut;           /* shut down as seen from this process */
} manager;

/* Every function below that touches the record has the Manager at stack index 1. */
#define SELF 1

static rec_head *head_of(manager *m) {
  return (rec_head *)(m->head.b->data + LUASHM_HEADER_SIZE);
}

static unsigned char *area_of(manager *m) {
  return m->head.b->data + REC_ENTRIES;
}

/* Bytes of entry area in this process's mapping (wrap checked that the block holds a head). */
static uint64_t area_size(manager *m) {
  return (uint64_t)m->head.b->size - REC_ENTRIES;
}

/* ---------------------------------------------------------------------------------------
** Entries: untrusted bytes, checked each time they are read
** ------------------------------------------------------------------------------------- */

/* Copies the len bytes of the entry e's name into out, NUL-terminated. */
static void entry_name(const unsigned char *e, size_t len, char out[LUASHM_NAME_MAX + 1]) {
  memcpy(out, e + ENTRY_HEAD, len);
  out[len] = '\0';
}

/* The name length of the entry at off among used bytes of a, or 0 when no well-formed entry
   starts there (cut short, a length out of range, a name with '/' or NUL). */
static size_t entry_len(const unsigned char *a, uint64_t used, uint64_t off) {
  char err[LUASHM_ERRLEN], name[LUASHM_NAME_MAX + 1];
  size_t len;
  if (off + ENTRY_HEAD > used) return 0;
  len = a[off + 1];
  if (a[off] > 1 || len == 0 || len > LUASHM_NAME_MAX || off + ENTRY_HEAD + len > used) return 0;
  entry_name(a + off, len, name); /* the check's message quotes it: NUL-terminated */
  if (luashm_name_check("manager", name, len, err) != 0) return 0;
  return len;
}

/* The bytes of well-formed entries from the start of a (at most used). */
static uint64_t valid_prefix(const unsigned char *a, uint64_t used) {
  uint64_t off = 0;
  size_t len;
  while ((len = entry_len(a, used, off)) != 0) off += ENTRY_HEAD + len;
  return off;
}

/* Whether the entry's name still names the file that was recorded. */
static int entry_current(const unsigned char *e, size_t len) {
  char name[LUASHM_NAME_MAX + 1];
  uint64_t dev, ino;
  struct stat st;
  memcpy(&dev, e + 2, 8);
  memcpy(&ino, e + 10, 8);
  entry_name(e, len, name);
  if (luashm_shm_lstat(name, &st) != 0) return 0;
  return (uint64_t)st.st_dev == dev && (uint64_t)st.st_ino == ino;
}

/* ---------------------------------------------------------------------------------------
** The shared record. Nothing that can raise runs while its lock is held (a live process that
** holds a robust mutex for ever is no owner that died): errors are raised after unlocking.
** ------------------------------------------------------------------------------------- */

/* [manager] -> the record's Block attached afresh */
static int attach_record(lua_State *L) {
  manager *m = (manager *)lua_touserdata(L, 1);
  luashm_block_attach(L, m->head.b->name);
  return 1;
}

/* When the record has grown past this process's mapping, maps it again: the new Block becomes
   the Manager's, the old one stays on the stack (the lock was taken through it, and is
   released through it). Returns 0, or -1 with the error on the stack. */
static int rec_remap(lua_State *L, manager *m) {
  uint64_t size = __atomic_load_n(&head_of(m)->size, __ATOMIC_RELAXED);
  luashm_block *b;
  if (size <= m->head.b->size) return 0;
  if (!lua_checkstack(L, 4)) return lua_pushliteral(L, "luashm: manager: no stack space"), -1;
  lua_pushcfunction(L, attach_record);
  lua_pushlightuserdata(L, m);
  if (lua_pcall(L, 1, 1, 0) != LUA_OK) return -1;
  b = (luashm_block *)lua_touserdata(L, -1);
  if (b->size <= m->head.b->size || !luashm_header_is(b->data, b->size, "manager", REC_VERSION)) {
    lua_pop(L, 1); /* a size field that lies (or a file replaced): keep what is mapped */
    return 0;
  }
  lua_getiuservalue(L, SELF, 1);
  lua_insert(L, -2);
  lua_setiuservalue(L, SELF, 1);
  m->head.b = b;
  return 0;
}

/* Keeps the entries up to the first malformed one: what a holder killed mid-compaction can
   leave behind. */
static void rec_repair(manager *m) {
  rec_head *h = head_of(m);
  uint64_t used = h->used;
  h->used = valid_prefix(area_of(m), used < area_size(m) ? used : area_size(m));
}

/* Locks the record and maps all of it (the holder before may have grown it), repairing it
   after a holder that died. Returns the mutex as locked: unlock through that pointer. */
static pthread_mutex_t *rec_lock(lua_State *L, manager *m) {
  pthread_mutex_t *mu = &head_of(m)->mu;
  int rc = luashm_mutex_lock(mu, NULL);
  if (rc == EINTR) luashm_interrupted(L);
  if (rc != 0 && rc != LUASHM_OWNER_DIED)
    luashm_error(L, "manager '%s': its record no longer holds a valid mutex", m->head.b->name);
  if (rec_remap(L, m) != 0) {
    luashm_mutex_unlock(mu);
    lua_error(L);
  }
  if (rc == LUASHM_OWNER_DIED) rec_repair(m);
  return mu;
}

static void rec_unlock(pthread_mutex_t *mu) {
  luashm_mutex_unlock(mu);
}

/* Raises the error for a record whose bytes make no sense (after unlocking). */
static int rec_malformed(lua_State *L, manager *m, uint64_t at) {
  return luashm_error(L, "manager '%s': its record is malformed at byte %I of its entries",
                      m->head.b->name, (lua_Integer)at);
}

/* Drops entries that are dead or whose block is gone, and whatever follows a malformed one.
   Under the lock; used is checked. */
static void rec_compact(manager *m, uint64_t used) {
  rec_head *h = head_of(m);
  unsigned char *a = area_of(m);
  uint64_t off = 0, to = 0;
  size_t len;
  while ((len = entry_len(a, used, off)) != 0) {
    size_t sz = ENTRY_HEAD + len;
    if (a[off] && entry_current(a + off, len)) {
      memmove(a + to, a + off, sz);
      to += sz;
    }
    off += sz;
  }
  h->used = to;
}

/* Grows the record so that want bytes of entries fit, with room to spare (sizes double, so
   that appends stay cheap). Under the lock: 0, or -1 with the error on the stack. */
static int rec_grow(lua_State *L, manager *m, uint64_t want) {
  char err[LUASHM_ERRLEN];
  uint64_t size = m->head.b->size;
  while (size - REC_ENTRIES < 2 * want && size <= REC_MAX) size *= 2;
  if (size > REC_MAX) {
    lua_pushfstring(L, "luashm: manager '%s': its record would pass %I bytes", m->head.b->name,
                    (lua_Integer)REC_MAX);
    return -1;
  }
  if (luashm_shm_grow(m->head.b->name, (size_t)size, err) != 0) {
    lua_pushfstring(L, "luashm: manager '%s': %s", m->head.b->name, err);
    return -1;
  }
  __atomic_store_n(&head_of(m)->size, size, __ATOMIC_RELAXED);
  return rec_remap(L, m);
}

/* Appends an entry for name (its file's identity in st); returns NULL, or "shut" when the
   record is shut down. Raises when the record is malformed or cannot grow. */
static const char *rec_add(lua_State *L, manager *m, const char *name, const struct stat *st) {
  size_t len = strlen(name);
  uint64_t dev = (uint64_t)st->st_dev, ino = (uint64_t)st->st_ino, used;
  pthread_mutex_t *mu = rec_lock(L, m);
  unsigned char *e;
  if (head_of(m)->state != 0) {
    rec_unlock(mu);
    return "shut";
  }
  used = head_of(m)->used;
  if (used > area_size(m)) {
    rec_unlock(mu);
    rec_malformed(L, m, area_size(m));
  }
  if (used + ENTRY_HEAD + len > area_size(m)) {
    rec_compact(m, used);
    used = head_of(m)->used;
    /* Grown when still more than half full, so that the next appends do not compact again. */
    if ((used + ENTRY_HEAD + len > area_size(m) || used > area_size(m) / 2) &&
        rec_grow(L, m, used + ENTRY_HEAD + len) != 0) {
      rec_unlock(mu);
      lua_error(L);
    }
  }
  e = area_of(m) + used;
  e[1] = (unsigned char)len;
  memcpy(e + 2, &dev, 8);
  memcpy(e + 10, &ino, 8);
  memcpy(e + ENTRY_HEAD, name, len);
  e[0] = 1;
  head_of(m)->used = used + ENTRY_HEAD + len;
  rec_unlock(mu);
  return NULL;
}

/* [record bytes (a userdata), used] -> the names, after the walk below */
static uint64_t push_names(lua_State *L, const unsigned char *a, uint64_t used, int unlink) {
  uint64_t off = 0;
  size_t len;
  int n = 0;
  lua_newtable(L);
  while ((len = entry_len(a, used, off)) != 0) {
    char name[LUASHM_NAME_MAX + 1], err[LUASHM_ERRLEN];
    if (a[off] && entry_current(a + off, len)) {
      entry_name(a + off, len, name);
      /* gone meanwhile: someone else unlinked it, fine */
      if (unlink) luashm_tracker_unlink(name, err);
      lua_pushstring(L, name);
      lua_rawseti(L, -2, ++n);
    }
    off += ENTRY_HEAD + len;
  }
  return off;
}

/* Pushes the sequence of the recorded names whose blocks are still there; with unlink, first
   marks the record shut down, then unlinks each of them. The entries are copied under the
   lock and read after it. Returns 0, or the byte of the entries where the record stops making
   sense (the names before it are pushed) plus one. */
static uint64_t rec_names(lua_State *L, manager *m, int unlink) {
  pthread_mutex_t *mu = rec_lock(L, m);
  uint64_t used = head_of(m)->used, bad = 0, end;
  unsigned char *copy, *a;
  if (used > area_size(m)) bad = 1 + area_size(m), used = area_size(m);
  if (unlink) head_of(m)->state = 1;
  copy = (unsigned char *)malloc(used ? used : 1);
  if (copy != NULL) memcpy(copy, area_of(m), used);
  rec_unlock(mu);
  if (copy == NULL) return luashm_error(L, "manager '%s': out of memory", m->head.b->name);
  a = (unsigned char *)lua_newuserdatauv(L, used ? used : 1, 0);
  memcpy(a, copy, used);
  free(copy);
  end = push_names(L, a, used, unlink);
  lua_remove(L, -2);
  return bad ? bad : end < used ? end + 1 : 0;
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

/* The options a manager takes: none. Contract v1's capacity (a count of blocks) is gone: the
   record grows by itself. */
static const char *const manager_options[] = {NULL};

static int manager_new(lua_State *L) {
  rec_head *h;
  luashm_block *rec;
  if (lua_istable(L, 1) && lua_getfield(L, 1, "capacity") != LUA_TNIL)
    return luashm_error(L,
                        "manager: unknown option 'capacity' (a manager's record grows by "
                        "itself: there is no capacity to give)");
  luashm_checkoptions(L, 1, "manager", manager_options);
  lua_settop(L, 0);
  rec = luashm_block_new(L, REC_INITIAL, 0);
  h = (rec_head *)(rec->data + LUASHM_HEADER_SIZE);
  if (luashm_mutex_init(&h->mu) != 0) {
    char ignored[LUASHM_ERRLEN];
    luashm_block_unlink(rec, ignored);
    return luashm_error(L, "manager '%s': cannot make its mutex", rec->name);
  }
  h->size = REC_INITIAL;
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

/* [manager, name, stat] -> true when recorded, false when the record is shut down. */
static int record(lua_State *L) {
  manager *m = (manager *)lua_touserdata(L, SELF);
  lua_pushboolean(
      L, rec_add(L, m, lua_tostring(L, 2), (const struct stat *)lua_touserdata(L, 3)) == NULL);
  return 1;
}

/* m:create, m:array, ...: calls shm.<maker> (looked up now: upvalue 1 is the kind, 2 the
   module), then records the new object's block. */
static int manager_make(lua_State *L) {
  manager *m = checkmanager(L, 1);
  const luashm_kind *k = (const luashm_kind *)lua_touserdata(L, lua_upvalueindex(1));
  const char *name;
  char err[LUASHM_ERRLEN];
  struct stat st;
  luashm_object *o;
  int nargs = lua_gettop(L) - 1, obj, shut, status = LUA_OK;
  if (lua_getfield(L, lua_upvalueindex(2), k->maker) != LUA_TFUNCTION)
    return luashm_error(L, "manager '%s': shm.%s is not available", m->head.b->name, k->maker);
  lua_rotate(L, 2, 1);
  lua_call(L, nargs, 1);
  obj = lua_gettop(L);
  o = luashm_toobject(L, obj);
  if (o == NULL || o->b == NULL)
    return luashm_error(L, "manager: shm.%s returned no object in a block", k->maker);
  name = o->b->name;
  if (luashm_shm_lstat(name, &st) != 0) memset(&st, 0, sizeof st);
  /* shm.<maker> ran Lua code (an opts metamethod...) that may have shut the manager down. */
  shut = is_shut(m);
  if (!shut) {
    lua_pushcfunction(L, record);
    lua_pushvalue(L, 1);
    lua_pushstring(L, name);
    lua_pushlightuserdata(L, &st);
    status = lua_pcall(L, 3, 1, 0);
    shut = status == LUA_OK && !lua_toboolean(L, -1);
  }
  if (shut || status != LUA_OK) { /* not recorded: undone */
    luashm_tracker_unlink(name, err);
    object_close(L, obj);
    if (status != LUA_OK) return lua_error(L);
    return luashm_error(L, "manager '%s' is shut down", m->head.b->name);
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
  uint64_t bad;
  lua_settop(L, 1);
  if (is_shut(m)) {
    lua_newtable(L);
    return 1;
  }
  if ((bad = rec_names(L, m, 0)) != 0) return rec_malformed(L, m, bad - 1);
  return 1;
}

/* Unlinks every recorded block, closes the objects made here, unlinks and closes the record.
   Only the owner: a forked copy just forgets. */
static void shutdown(lua_State *L, manager *m) {
  char err[LUASHM_ERRLEN];
  if (m->shut) return;
  if (m->owner != (long)getpid() || m->head.b->data == NULL) {
    m->shut = 1;
    return;
  }
  rec_names(L, m, 1); /* a malformed record: the well-formed entries before it are unlinked */
  m->shut = 1;
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
  lua_settop(L, 1);
  if (is_shut(m))
    lua_pushfstring(L, "luashm.Manager '%s' (shut down)", m->head.b->name);
  else {
    luashm_header hd;
    int n;
    int bad = rec_names(L, m, 0) != 0;
    memcpy(&hd, m->head.b->data, sizeof hd);
    n = (int)lua_rawlen(L, -1);
    lua_pushfstring(L, "luashm.Manager '%s' (%d block%s%s, owner pid %d)", m->head.b->name, n,
                    n == 1 ? "" : "s", bad ? ", then a malformed record" : "", (int)hd.creator);
  }
  return 1;
}

/* ---------------------------------------------------------------------------------------
** The kind
** ------------------------------------------------------------------------------------- */

/* The header alone: the record's fields are checked where they are read. */
static int manager_probe(const unsigned char *p, size_t size) {
  return size >= REC_ENTRIES && luashm_header_is(p, size, "manager", REC_VERSION);
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
