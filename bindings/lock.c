/*
** The Lock: a process-shared, robust, error-checking mutex (the sync core's) in its own block
** (kind "lock"), so that a holder that dies does not deadlock the others and any process can
** open it by name. shm.lock, the Lock's methods and metatable, and its guard (the value that
** `local g <close> = lk:guard()` releases at scope exit).
*/
#include <errno.h>
#include <string.h>

#include "kinds.h"
#include "sync.h"

#define LUASHM_LOCK "luashm.Lock"
#define LUASHM_GUARD "luashm.LockGuard"
#define LOCK_VERSION 1
#define LOCK_SIZE (LUASHM_HEADER_SIZE + sizeof(pthread_mutex_t))

/* One handle on a lock block; its Block is user value 1, its guard user value 2 (made at the
   first guard()). Which mutex this process holds is the Block's held_lock: closing the Block,
   however it happens, releases it first. */
typedef struct lock {
  luashm_object head;
  pthread_mutex_t *mu; /* in the block */
} lock;

/* The guard only points back at its lock, which its user value keeps alive. Its first word is
   the address of guard_tag: the cheap check of its scope exit (as luashm_tokind does for
   kinds), which runs at the end of every guarded scope. */
static const char guard_tag = 0;

typedef struct guard {
  const char *tag;
  lock *lk;
} guard;

/* The gate of every method: the cheap kind check (acquire and release cost little more than
   two C calls), then open. */
static lock *checklock(lua_State *L, int i) {
  lock *lk = (lock *)luashm_tokind(L, i, &luashm_kind_lock);
  if (LUASHM_UNLIKELY(lk->head.b->data == NULL))
    luashm_error(L, "lock '%s' is closed", lk->head.b->name);
  return lk;
}

/* Replaces the Block at the top of the stack with a Lock on it. */
static lock *lock_push(lua_State *L) {
  luashm_block *b = luashm_toblock(L, -1);
  lock *lk = (lock *)lua_newuserdatauv(L, sizeof(lock), 2);
  lk->head.kind = &luashm_kind_lock;
  lk->head.b = b;
  lk->mu = (pthread_mutex_t *)(b->data + LUASHM_HEADER_SIZE);
  luaL_setmetatable(L, LUASHM_LOCK);
  lua_insert(L, -2);
  lua_setiuservalue(L, -2, 1);
  return lk;
}

/* ---------------------------------------------------------------------------------------
** Constructor and shm.open
** ------------------------------------------------------------------------------------- */

static const char *const lock_options[] = {LUASHM_BLOCK_OPTIONS, NULL};

static int lock_new(lua_State *L) {
  luashm_block *b;
  int hasopts = luashm_checkoptions(L, 1, "lock", lock_options);
  b = luashm_block_new(L, LOCK_SIZE, hasopts ? 1 : 0);
  if (luashm_mutex_init((pthread_mutex_t *)(b->data + LUASHM_HEADER_SIZE)) != 0) {
    char ignored[LUASHM_ERRLEN];
    luashm_block_unlink(b, ignored);
    return luashm_error(L, "lock '%s': cannot make its mutex", b->name);
  }
  luashm_header_init(b->data, "lock", LOCK_VERSION);
  lock_push(L);
  return 1;
}

static int lock_probe(const unsigned char *p, size_t size) {
  return luashm_header_is(p, size, "lock", LOCK_VERSION) && size >= LOCK_SIZE;
}

static int lock_wrap(lua_State *L, int view) {
  luashm_block *b = luashm_toblock(L, -1);
  (void)view;
  if (!lock_probe(b->data, b->size) ||
      !luashm_mutex_valid((pthread_mutex_t *)(b->data + LUASHM_HEADER_SIZE)))
    return luashm_error(L, "open '%s': not a valid lock block", b->name);
  lock_push(L);
  return 1;
}

/* ---------------------------------------------------------------------------------------
** Methods
** ------------------------------------------------------------------------------------- */

/* The outcome of a lock call: 1 acquired (plus "owner died" when the previous holder died
   holding it: what it protects may be half-updated), 0 timed out; anything else raises. */
static int lock_outcome(lua_State *L, lock *lk, int rc) {
  if (LUASHM_LIKELY(rc == 0 || rc == LUASHM_OWNER_DIED)) {
    lk->head.b->held_lock = lk->mu;
    return 1;
  }
  if (rc == EBUSY || rc == ETIMEDOUT) return 0;
  if (rc == EINTR) return luashm_interrupted(L);
  if (rc == EDEADLK)
    return luashm_error(L, "acquire '%s': lock is already held by this process", lk->head.b->name);
  if (rc == EINVAL)
    return luashm_error(L, "acquire '%s': the block no longer holds a valid mutex",
                        lk->head.b->name);
  return luashm_error(L, "acquire '%s': %s", lk->head.b->name, strerror(rc));
}

static int lock_acquire(lua_State *L) {
  lock *lk = checklock(L, 1);
  int rc;
  if (lua_gettop(L) < 2) {
    rc = luashm_mutex_lock(lk->mu, NULL);
  } else {
    double t = luashm_opttimeout(L, 2, "acquire", lk->head.b->name);
    luashm_deadline d;
    if (t == 0) {
      rc = luashm_mutex_trylock(lk->mu);
    } else {
      luashm_deadline_in(&d, t);
      rc = luashm_mutex_lock(lk->mu, &d);
    }
  }
  lua_pushboolean(L, lock_outcome(L, lk, rc));
  if (LUASHM_UNLIKELY(rc == LUASHM_OWNER_DIED)) {
    lua_pushliteral(L, "owner died");
    return 2;
  }
  return 1;
}

static int lock_unlock(lua_State *L, lock *lk) {
  int rc = luashm_mutex_unlock(lk->mu);
  if (LUASHM_LIKELY(rc == 0)) {
    lk->head.b->held_lock = NULL;
    return 0;
  }
  if (rc == EPERM)
    return luashm_error(L, "release '%s': lock is not held by this process", lk->head.b->name);
  return luashm_error(L, "release '%s': %s", lk->head.b->name,
                      rc == EINVAL ? "the block no longer holds a valid mutex" : strerror(rc));
}

static int lock_release(lua_State *L) {
  return lock_unlock(L, checklock(L, 1));
}

/* acquire(), then the lock's one guard object, whose __close releases (plus "owner died" as
   acquire says it). Reusing one guard per lock keeps guard() free of allocation; guards of one
   lock cannot nest anyway (the mutex is not recursive). */
static int lock_guard(lua_State *L) {
  lock *lk = checklock(L, 1);
  int rc = luashm_mutex_lock(lk->mu, NULL);
  lua_settop(L, 1);
  lock_outcome(L, lk, rc);
  if (LUASHM_UNLIKELY(lua_getiuservalue(L, 1, 2) == LUA_TNIL)) {
    guard *g = (guard *)lua_newuserdatauv(L, sizeof(guard), 1);
    g->tag = &guard_tag;
    g->lk = lk;
    luaL_setmetatable(L, LUASHM_GUARD);
    lua_pushvalue(L, 1);
    lua_setiuservalue(L, -2, 1);
    lua_pushvalue(L, -1);
    lua_setiuservalue(L, 1, 2);
  }
  if (LUASHM_UNLIKELY(rc == LUASHM_OWNER_DIED)) {
    lua_pushliteral(L, "owner died");
    return 2;
  }
  return 1;
}

static guard *toguard(lua_State *L, int i) {
  guard *g = (guard *)lua_touserdata(L, i);
  if (LUASHM_UNLIKELY(g == NULL || lua_rawlen(L, i) < sizeof *g || g->tag != &guard_tag))
    luaL_typeerror(L, i, LUASHM_GUARD);
  return g;
}

/* A guard's scope exit. If the lock was closed inside the scope, closing released it. */
static int guard_close(lua_State *L) {
  lock *lk = toguard(L, 1)->lk;
  if (lk->head.b->data == NULL) return 0;
  return lock_unlock(L, lk);
}

static int guard_tostring(lua_State *L) {
  lock *lk = toguard(L, 1)->lk;
  lua_pushfstring(L, "luashm.LockGuard '%s'", lk->head.b->name);
  return 1;
}

/* Releases this handle (and the lock, if this process holds it through this handle); the
   lock itself stays for the others. Idempotent. */
static int lock_close(lua_State *L) {
  lock *lk = (lock *)luashm_tokind(L, 1, &luashm_kind_lock);
  luashm_block_close(lk->head.b);
  return 0;
}

static int lock_tostring(lua_State *L) {
  lock *lk = (lock *)luashm_tokind(L, 1, &luashm_kind_lock);
  if (lk->head.b->data == NULL)
    lua_pushfstring(L, "luashm.Lock '%s' (closed)", lk->head.b->name);
  else
    lua_pushfstring(L, "luashm.Lock '%s' (%s)", lk->head.b->name,
                    luashm_mutex_held(lk->mu) ? "locked" : "unlocked");
  return 1;
}

static const luaL_Reg lock_meth[] = {
    {"acquire", lock_acquire}, {"release", lock_release},        {"guard", lock_guard},
    {"close", lock_close},     {"unlink", luashm_object_unlink}, {NULL, NULL}};

static const luaL_Reg lock_metameth[] = {
    {"__close", lock_close}, {"__tostring", lock_tostring}, {NULL, NULL}};

static const luaL_Reg guard_metameth[] = {
    {"__close", guard_close}, {"__tostring", guard_tostring}, {NULL, NULL}};

static void lock_open(lua_State *L) {
  luashm_newkind(L, &luashm_kind_lock, lock_meth, lock_metameth, luashm_object_index);
  luaL_newmetatable(L, LUASHM_GUARD);
  luaL_setfuncs(L, guard_metameth, 0);
  lua_pushboolean(L, 0);
  lua_setfield(L, -2, "__metatable");
  lua_pop(L, 1);
  lua_pushcfunction(L, lock_new);
  lua_setfield(L, -2, "lock");
}

const luashm_kind luashm_kind_lock = {"lock",    LUASHM_LOCK, "lock", lock_probe,
                                      lock_wrap, NULL,        NULL,   lock_open};
