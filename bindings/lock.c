/*
** The Lock: a process-shared, robust, error-checking pthread mutex in its own block (kind
** "lock"), so that a holder that dies does not deadlock the others and any process can open it
** by name. shm.lock, the Lock's methods and metatable, and its guard (the value that
** `local g <close> = lk:guard()` releases at scope exit).
*/
#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <time.h>

#include "core.h"

#define LUASHM_LOCK "luashm.Lock"
#define LUASHM_GUARD "luashm.LockGuard"
#define LOCK_VERSION 1
#define LOCK_SIZE (LUASHM_HEADER_SIZE + sizeof(pthread_mutex_t))

/* One handle on a lock block. The Block is user value 1 (it owns the mapping), the guard user
   value 2 (made at the first guard()). */
typedef struct lock {
  const void *tag;     /* &lock_tag: the fast type check of the hot methods */
  pthread_mutex_t *mu; /* in the block; NULL once closed */
  luashm_block *b;
  int held; /* acquired through this handle: close must release before unmapping, since the
               thread's robust list points into this mapping */
} lock;

/* The guard only points back at its lock, which its user value keeps alive. */
typedef struct guard {
  lock *lk;
} guard;

/* The attributes every lock is made with; also what a block must hold to open as a lock. */
static int lock_attr(pthread_mutexattr_t *a) {
  if (pthread_mutexattr_init(a) != 0) return -1;
  if (pthread_mutexattr_setpshared(a, PTHREAD_PROCESS_SHARED) != 0 ||
      pthread_mutexattr_setrobust(a, PTHREAD_MUTEX_ROBUST) != 0 ||
      pthread_mutexattr_settype(a, PTHREAD_MUTEX_ERRORCHECK) != 0) {
    pthread_mutexattr_destroy(a);
    return -1;
  }
  return 0;
}

/* glibc's kind bits of a mutex made by lock_attr: a cheap check of untrusted bytes before any
   pthread call reads them. */
static int lock_kind(void) {
  pthread_mutexattr_t a;
  pthread_mutex_t m;
  if (lock_attr(&a) != 0) return -1;
  pthread_mutex_init(&m, &a);
  pthread_mutexattr_destroy(&a);
  return m.__data.__kind;
}

static const char lock_tag = 0;

/* The gate of every method. acquire and release cost little more than two C calls, so instead
   of luaL_checkudata's metatable lookup (a third of that cost) a userdata of exactly our size
   whose first word is the address of lock_tag is taken as a Lock: only this file can write that
   address into a userdata, and reading sizeof(lock) bytes of a userdata that large is safe. */
static lock *checklock(lua_State *L, int i) {
  lock *lk = (lock *)lua_touserdata(L, i);
  if (LUASHM_UNLIKELY(lk == NULL || lua_rawlen(L, i) != sizeof(lock) || lk->tag != &lock_tag))
    lk = (lock *)luaL_checkudata(L, i, LUASHM_LOCK);
  if (LUASHM_UNLIKELY(lk->mu == NULL)) luashm_error(L, "lock '%s' is closed", lk->b->name);
  return lk;
}

static int lock_release_handle(lock *lk) {
  int rc = pthread_mutex_unlock(lk->mu);
  if (rc == 0) lk->held = 0;
  return rc;
}

static void lock_close_handle(lock *lk) {
  if (lk->mu == NULL) return;
  if (lk->held && lk->b->data != NULL) lock_release_handle(lk);
  lk->mu = NULL;
  luashm_shm_unmap(lk->b->data, lk->b->size);
  lk->b->data = NULL;
}

/* Replaces the Block at the top of the stack with a Lock on it. */
static lock *lock_wrap_block(lua_State *L) {
  luashm_block *b = luashm_toblock(L, -1);
  lock *lk = (lock *)lua_newuserdatauv(L, sizeof(lock), 2);
  lk->tag = &lock_tag;
  lk->mu = NULL;
  lk->b = b;
  lk->held = 0;
  luaL_setmetatable(L, LUASHM_LOCK);
  lua_insert(L, -2);
  lua_setiuservalue(L, -2, 1);
  return lk;
}

/* ---------------------------------------------------------------------------------------
** Constructors and shm.open
** ------------------------------------------------------------------------------------- */

static int lock_new(lua_State *L) {
  pthread_mutexattr_t a;
  luashm_block *b;
  lock *lk;
  int rc;
  if (!lua_isnoneornil(L, 1)) luaL_checktype(L, 1, LUA_TTABLE);
  b = luashm_block_new(L, LOCK_SIZE, lua_isnoneornil(L, 1) ? 0 : 1);
  lk = lock_wrap_block(L);
  if (lock_attr(&a) != 0) return luashm_error(L, "lock '%s': cannot set mutex attributes", b->name);
  rc = pthread_mutex_init((pthread_mutex_t *)(b->data + LUASHM_HEADER_SIZE), &a);
  pthread_mutexattr_destroy(&a);
  if (rc != 0) return luashm_error(L, "lock '%s': %s", b->name, strerror(rc));
  /* The header last: a process that opens the name before this point sees a plain Block. */
  __atomic_thread_fence(__ATOMIC_RELEASE);
  luashm_header_init(b->data, "lock", LOCK_VERSION);
  lk->mu = (pthread_mutex_t *)(b->data + LUASHM_HEADER_SIZE);
  return 1;
}

int luashm_lock_probe(const unsigned char *p, size_t size) {
  return luashm_header_is(p, size, "lock", LOCK_VERSION) && size >= LOCK_SIZE;
}

int luashm_lock_wrap(lua_State *L) {
  luashm_block *b = luashm_toblock(L, -1);
  pthread_mutex_t *mu = (pthread_mutex_t *)(b->data + LUASHM_HEADER_SIZE);
  if (!luashm_lock_probe(b->data, b->size) || mu->__data.__kind != lock_kind())
    return luashm_error(L, "open '%s': not a valid lock block", b->name);
  lock_wrap_block(L)->mu = mu;
  return 1;
}

static int lock_reopen(lua_State *L) {
  luashm_block_attach(L, luashm_checkname(L, 1, "open"));
  return luashm_lock_wrap(L);
}

/* ---------------------------------------------------------------------------------------
** Methods
** ------------------------------------------------------------------------------------- */

/* The absolute CLOCK_MONOTONIC time timeout seconds from now. */
static struct timespec deadline(lua_Number timeout) {
  struct timespec ts;
  lua_Number whole = (lua_Number)(time_t)timeout;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  ts.tv_sec += (time_t)whole;
  ts.tv_nsec += (long)((timeout - whole) * 1e9);
  if (ts.tv_nsec >= 1000000000L) {
    ts.tv_sec++;
    ts.tv_nsec -= 1000000000L;
  }
  return ts;
}

/* A timeout argument: nil (block), or a non-negative number of seconds (capped at a year so
   the deadline cannot overflow). */
static lua_Number checktimeout(lua_State *L, int i, const char *op, const char *name) {
  lua_Number t = luaL_checknumber(L, i);
  if (!(t >= 0)) luashm_error(L, "%s '%s': timeout must be a non-negative number", op, name);
  return t > 31536000 ? 31536000 : t;
}

#define SPINS 200 /* about 5 us here (a pause is ~27 ns): longer than most Lua critical sections \
                   */

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  __asm__ __volatile__("yield");
#endif
}

/* Locks mu, until the deadline dl when not NULL. glibc's robust mutexes never spin: a waiter
   sleeps in the kernel at once and every release then pays a futex wake, about a microsecond
   per handoff. Critical sections from Lua are short, so a waiter first spins briefly, watching
   the lock word without writing it, and only then sleeps. */
static int lock_wait(pthread_mutex_t *mu, const struct timespec *dl) {
  int rc = pthread_mutex_trylock(mu), i;
  for (i = 0; rc == EBUSY && i < SPINS; i++) {
    if (__atomic_load_n(&mu->__data.__lock, __ATOMIC_RELAXED) == 0)
      rc = pthread_mutex_trylock(mu);
    else
      cpu_relax();
  }
  if (rc != EBUSY) return rc;
  return dl ? pthread_mutex_clocklock(mu, CLOCK_MONOTONIC, dl) : pthread_mutex_lock(mu);
}

/* The slow outcomes of a lock call that did not time out: EOWNERDEAD means we hold it now, and
   the data it protects may be half-updated (the caller is told); anything else raises. */
static void lock_taken(lua_State *L, lock *lk, int rc) {
  if (rc == EOWNERDEAD) {
    pthread_mutex_consistent(lk->mu);
    lk->held = 1;
  } else if (rc == EDEADLK) {
    luashm_error(L, "acquire '%s': lock is already held by this process", lk->b->name);
  } else {
    luashm_error(L, "acquire '%s': %s", lk->b->name, strerror(rc));
  }
}

static int lock_acquire(lua_State *L) {
  lock *lk = checklock(L, 1);
  int rc;
  if (lua_gettop(L) < 2 || lua_isnil(L, 2)) {
    rc = lock_wait(lk->mu, NULL);
  } else {
    lua_Number t = checktimeout(L, 2, "acquire", lk->b->name);
    if (t == 0) {
      rc = pthread_mutex_trylock(lk->mu);
    } else {
      struct timespec ts = deadline(t);
      rc = lock_wait(lk->mu, &ts);
    }
  }
  if (LUASHM_LIKELY(rc == 0)) {
    lk->held = 1;
    lua_pushboolean(L, 1);
    return 1;
  }
  if (rc == EBUSY || rc == ETIMEDOUT) {
    lua_pushboolean(L, 0);
    return 1;
  }
  lock_taken(L, lk, rc);
  lua_pushboolean(L, 1);
  lua_pushliteral(L, "owner died");
  return 2;
}

static int release_error(lua_State *L, lock *lk, int rc) {
  if (rc == EPERM)
    return luashm_error(L, "release '%s': lock is not held by this process", lk->b->name);
  return luashm_error(L, "release '%s': %s", lk->b->name, strerror(rc));
}

static int lock_release(lua_State *L) {
  lock *lk = checklock(L, 1);
  int rc = lock_release_handle(lk);
  if (LUASHM_UNLIKELY(rc != 0)) return release_error(L, lk, rc);
  return 0;
}

/* acquire(), then the lock's one guard object, whose __close releases (plus "owner died" as
   acquire says it). Reusing one guard per lock keeps guard() free of allocation; guards of one
   lock cannot nest anyway (the mutex is not recursive). */
static int lock_guard(lua_State *L) {
  lock *lk = checklock(L, 1);
  int rc = lock_wait(lk->mu, NULL);
  lua_settop(L, 1);
  if (LUASHM_LIKELY(rc == 0))
    lk->held = 1;
  else
    lock_taken(L, lk, rc);
  if (LUASHM_UNLIKELY(lua_getiuservalue(L, 1, 2) == LUA_TNIL)) {
    guard *g = (guard *)lua_newuserdatauv(L, sizeof(guard), 1);
    g->lk = lk;
    luaL_setmetatable(L, LUASHM_GUARD);
    lua_pushvalue(L, 1);
    lua_setiuservalue(L, -2, 1);
    lua_pushvalue(L, -1);
    lua_setiuservalue(L, 1, 2);
  }
  if (LUASHM_UNLIKELY(rc != 0)) {
    lua_pushliteral(L, "owner died");
    return 2;
  }
  return 1;
}

/* A guard's scope exit. If the lock was closed inside the scope, close already released it. */
static int guard_close(lua_State *L) {
  lock *lk = ((guard *)luaL_checkudata(L, 1, LUASHM_GUARD))->lk;
  int rc;
  if (lk->mu == NULL) return 0;
  rc = lock_release_handle(lk);
  if (LUASHM_UNLIKELY(rc != 0)) return release_error(L, lk, rc);
  return 0;
}

static int guard_tostring(lua_State *L) {
  lock *lk = ((guard *)luaL_checkudata(L, 1, LUASHM_GUARD))->lk;
  lua_pushfstring(L, "luashm.LockGuard '%s'", lk->b->name);
  return 1;
}

static int lock_name(lua_State *L) {
  lock *lk = (lock *)luaL_checkudata(L, 1, LUASHM_LOCK);
  lua_pushstring(L, lk->b->name);
  return 1;
}

static int lock_close(lua_State *L) {
  lock_close_handle((lock *)luaL_checkudata(L, 1, LUASHM_LOCK));
  return 0;
}

/* Removes the name; handles (here and elsewhere) keep working. */
static int lock_unlink(lua_State *L) {
  lock *lk = (lock *)luaL_checkudata(L, 1, LUASHM_LOCK);
  char err[LUASHM_ERRLEN];
  if (luashm_block_unlink(lk->b, err) != 0) return luashm_error(L, "%s", err);
  return 0;
}

static int lock_tostring(lua_State *L) {
  lock *lk = (lock *)luaL_checkudata(L, 1, LUASHM_LOCK);
  if (lk->mu == NULL)
    lua_pushfstring(L, "luashm.Lock '%s' (closed)", lk->b->name);
  else
    lua_pushfstring(
        L, "luashm.Lock '%s' (%s)", lk->b->name,
        __atomic_load_n(&lk->mu->__data.__lock, __ATOMIC_RELAXED) ? "locked" : "unlocked");
  return 1;
}

/* __luashm_ref: a Lock travels as its name and reopens with shm.open's wrapper. */
static int lock_ref(lua_State *L) {
  lock *lk = (lock *)luaL_checkudata(L, 1, LUASHM_LOCK);
  lua_pushstring(L, lk->b->name);
  lua_pushliteral(L, "lock");
  return 2;
}

static const luaL_Reg lock_meth[] = {{"acquire", lock_acquire},
                                     {"release", lock_release},
                                     {"guard", lock_guard},
                                     {"name", lock_name},
                                     {"close", lock_close},
                                     {"unlink", lock_unlink},
                                     {NULL, NULL}};

static const luaL_Reg lock_metameth[] = {{"__gc", lock_close},
                                         {"__close", lock_close},
                                         {"__tostring", lock_tostring},
                                         {LUASHM_REF_FIELD, lock_ref},
                                         {NULL, NULL}};

static const luaL_Reg guard_metameth[] = {
    {"__close", guard_close}, {"__tostring", guard_tostring}, {NULL, NULL}};

static void new_metatable(lua_State *L, const char *tname, const luaL_Reg *metameth) {
  luaL_newmetatable(L, tname);
  luaL_setfuncs(L, metameth, 0);
  lua_pushboolean(L, 0);
  lua_setfield(L, -2, "__metatable");
}

void luashm_open_lock(lua_State *L) {
  new_metatable(L, LUASHM_LOCK, lock_metameth);
  luaL_newlib(L, lock_meth);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
  new_metatable(L, LUASHM_GUARD, guard_metameth);
  lua_pop(L, 1);
  lua_pushcfunction(L, lock_new);
  lua_setfield(L, -2, "lock");
  lua_pushcfunction(L, lock_reopen);
  luashm_set_reopener(L, "lock");
}
