/*
** The Barrier: n processes wait until all n have arrived, round after round, in a block of kind
** "barrier". A robust mutex guards the state; waiters sleep on a futex (the round counter)
** rather than a pthread condition variable, whose waiter bookkeeping a killed waiter would
** leave behind and hang the next broadcast. Each party registers at its first wait by taking
** a robust "presence" mutex of its own slot and holding it until its handle closes: when the
** party dies, the kernel marks that mutex, which is how the others learn of the death.
*/
#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "core.h"

#define LUASHM_BARRIER "luashm.Barrier"
#define BARRIER_VERSION 1
#define BARRIER_MAX 4096
#define SLICE_NS 50000000L /* how often a waiter looks for dead parties */

typedef struct party {
  pthread_mutex_t mu; /* held by the registered party while its handle is open */
  int32_t pid;        /* 0: free slot */
  uint32_t waiting;   /* 1 while waiting in round waiting_gen */
  uint32_t waiting_gen;
  uint32_t pad;
} party;

typedef struct shared {
  pthread_mutex_t mu; /* guards everything below except the futex reads of gen */
  uint32_t gen;       /* futex word: the round, bumped when it completes */
  uint32_t parties;
  uint32_t count; /* arrived in this round */
  int32_t broken; /* pid of a party that died, 0 while sound */
  int32_t holder; /* pid holding mu, for EOWNERDEAD */
  uint32_t pad[3];
  party slot[];
} shared;

typedef struct barrier {
  shared *s; /* NULL once closed */
  luashm_block *b;
  uint32_t n;     /* parties, as checked against the block's size when opened: the shared
                     copy is not trusted after that */
  int slot;       /* registered slot, -1 for none */
  pid_t slot_pid; /* the process that registered it: a forked copy of the handle did not */
} barrier;

#define BARRIER_SIZE(n) (LUASHM_HEADER_SIZE + sizeof(shared) + (size_t)(n) * sizeof(party))

static int mutex_init(pthread_mutex_t *m) {
  pthread_mutexattr_t a;
  int rc;
  if (pthread_mutexattr_init(&a) != 0) return -1;
  rc = pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED) ||
       pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST) ||
       pthread_mutexattr_settype(&a, PTHREAD_MUTEX_ERRORCHECK) || pthread_mutex_init(m, &a);
  pthread_mutexattr_destroy(&a);
  return rc ? -1 : 0;
}

static int mutex_kind(void) {
  pthread_mutex_t m;
  return mutex_init(&m) == 0 ? m.__data.__kind : -1;
}

static barrier *checkbarrier(lua_State *L, int i) {
  barrier *bar = (barrier *)luaL_checkudata(L, i, LUASHM_BARRIER);
  if (bar->s == NULL) luashm_error(L, "barrier '%s' is closed", bar->b->name);
  return bar;
}

static long futex(uint32_t *word, int op, uint32_t val, const struct timespec *rel) {
  return syscall(SYS_futex, word, op, val, rel, NULL, 0);
}

static struct timespec mono_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts;
}

static long long ns_until(const struct timespec *t) {
  struct timespec n = mono_now();
  return (long long)(t->tv_sec - n.tv_sec) * 1000000000LL + (t->tv_nsec - n.tv_nsec);
}

/* Locks the state (until the deadline when one is given). A party that died holding it left
   the state half-updated: the barrier is broken. Returns 0 or ETIMEDOUT. */
static int state_lock(shared *s, const struct timespec *dl) {
  int rc = dl ? pthread_mutex_clocklock(&s->mu, CLOCK_MONOTONIC, dl) : pthread_mutex_lock(&s->mu);
  if (rc == EOWNERDEAD) {
    pthread_mutex_consistent(&s->mu);
    if (s->broken == 0) s->broken = s->holder > 0 ? s->holder : -1;
  } else if (rc != 0) {
    return ETIMEDOUT;
  }
  s->holder = (int32_t)getpid();
  return 0;
}

static void state_unlock(shared *s) {
  pthread_mutex_unlock(&s->mu);
}

/* Looks at every other registered party, the state locked. A dead one's slot is freed; it
   breaks the barrier when all_dead_break, or when it died waiting in this round (its arrival
   was counted but it will never leave); otherwise (it ended between rounds, e.g. a finished
   worker that exited without closing) a new party may take its place. */
static void scan(shared *s, uint32_t n, int mine, int all_dead_break) {
  uint32_t i;
  for (i = 0; i < n; i++) {
    party *p = &s->slot[i];
    int rc;
    if (p->pid == 0 || (int)i == mine) continue;
    rc = pthread_mutex_trylock(&p->mu);
    if (rc == EBUSY) continue; /* alive */
    if (rc == EOWNERDEAD) {
      pthread_mutex_consistent(&p->mu);
      if (s->broken == 0 && (all_dead_break || (p->waiting && p->waiting_gen == s->gen)))
        s->broken = p->pid;
    } else if (rc != 0) {
      continue;
    }
    /* dead, or closed without getting the state lock: the slot is free again */
    pthread_mutex_unlock(&p->mu);
    p->pid = 0;
    p->waiting = 0;
  }
}

/* Registers this process as a party, the state locked. Raises when every slot is taken. */
static void enlist(lua_State *L, barrier *bar) {
  shared *s = bar->s;
  pid_t me = getpid();
  uint32_t i;
  if (bar->slot >= 0 && bar->slot_pid == me) return;
  scan(s, bar->n, -1, 0);
  if (s->broken) return;
  for (i = 0; i < bar->n; i++) {
    party *p = &s->slot[i];
    int rc;
    if (p->pid != 0) continue;
    rc = pthread_mutex_trylock(&p->mu);
    if (rc == EOWNERDEAD)
      pthread_mutex_consistent(&p->mu);
    else if (rc != 0)
      continue;
    p->pid = (int32_t)me;
    p->waiting = 0;
    bar->slot = (int)i;
    bar->slot_pid = me;
    return;
  }
  state_unlock(s);
  luashm_error(L, "barrier '%s': more than %d processes wait on it", bar->b->name, (int)bar->n);
}

static int broken_error(lua_State *L, barrier *bar) {
  return luashm_error(L, "barrier '%s': party died (pid %d)", bar->b->name,
                      (int)__atomic_load_n(&bar->s->broken, __ATOMIC_ACQUIRE));
}

/* Wakes every waiter: the round is over, or the barrier is broken. */
static void wake_all(shared *s) {
  futex(&s->gen, FUTEX_WAKE, INT_MAX, NULL);
}

/* Leaves the slot (close), releasing its presence mutex before the mapping goes. */
static void leave(barrier *bar) {
  shared *s = bar->s;
  struct timespec dl = mono_now();
  party *p;
  if (bar->slot < 0 || bar->slot_pid != getpid()) return;
  p = &s->slot[bar->slot];
  dl.tv_sec += 1;
  if (state_lock(s, &dl) == 0) {
    p->pid = 0;
    p->waiting = 0;
    pthread_mutex_unlock(&p->mu);
    state_unlock(s);
  } else {
    pthread_mutex_unlock(&p->mu); /* the next scan frees the slot */
  }
  bar->slot = -1;
}

/* ---------------------------------------------------------------------------------------
** Constructor and shm.open
** ------------------------------------------------------------------------------------- */

/* Replaces the Block at the top of the stack with a Barrier on it. */
static barrier *barrier_wrap_block(lua_State *L) {
  luashm_block *b = luashm_toblock(L, -1);
  barrier *bar = (barrier *)lua_newuserdatauv(L, sizeof(barrier), 1);
  bar->s = NULL;
  bar->b = b;
  bar->n = 0;
  bar->slot = -1;
  bar->slot_pid = 0;
  luaL_setmetatable(L, LUASHM_BARRIER);
  lua_insert(L, -2);
  lua_setiuservalue(L, -2, 1);
  return bar;
}

static int barrier_new(lua_State *L) {
  lua_Integer n = luaL_checkinteger(L, 1);
  luashm_block *b;
  barrier *bar;
  shared *s;
  uint32_t i;
  if (n < 1 || n > BARRIER_MAX)
    return luashm_error(L, "barrier: parties %I is not between 1 and %d", n, BARRIER_MAX);
  if (!lua_isnoneornil(L, 2)) luaL_checktype(L, 2, LUA_TTABLE);
  b = luashm_block_new(L, BARRIER_SIZE(n), lua_isnoneornil(L, 2) ? 0 : 2);
  bar = barrier_wrap_block(L);
  s = (shared *)(b->data + LUASHM_HEADER_SIZE);
  s->parties = (uint32_t)n;
  if (mutex_init(&s->mu) != 0)
    return luashm_error(L, "barrier '%s': cannot make its mutex", b->name);
  for (i = 0; i < s->parties; i++)
    if (mutex_init(&s->slot[i].mu) != 0)
      return luashm_error(L, "barrier '%s': cannot make its mutex", b->name);
  __atomic_thread_fence(__ATOMIC_RELEASE);
  luashm_header_init(b->data, "barrier", BARRIER_VERSION);
  bar->n = s->parties;
  bar->s = s;
  return 1;
}

int luashm_barrier_probe(const unsigned char *p, size_t size) {
  uint32_t n;
  if (!luashm_header_is(p, size, "barrier", BARRIER_VERSION) || size < BARRIER_SIZE(0)) return 0;
  memcpy(&n, p + LUASHM_HEADER_SIZE + offsetof(shared, parties), sizeof n);
  return n >= 1 && n <= BARRIER_MAX && size >= BARRIER_SIZE(n);
}

int luashm_barrier_wrap(lua_State *L) {
  luashm_block *b = luashm_toblock(L, -1);
  shared *s = (shared *)(b->data + LUASHM_HEADER_SIZE);
  int kind = mutex_kind();
  uint32_t i, n = __atomic_load_n(&s->parties, __ATOMIC_RELAXED);
  barrier *bar;
  if (!luashm_header_is(b->data, b->size, "barrier", BARRIER_VERSION) || n < 1 || n > BARRIER_MAX ||
      b->size < BARRIER_SIZE(n) || s->mu.__data.__kind != kind)
    return luashm_error(L, "open '%s': not a valid barrier block", b->name);
  for (i = 0; i < n; i++)
    if (s->slot[i].mu.__data.__kind != kind)
      return luashm_error(L, "open '%s': not a valid barrier block", b->name);
  bar = barrier_wrap_block(L);
  bar->n = n;
  bar->s = s;
  return 1;
}

static int barrier_reopen(lua_State *L) {
  luashm_block_attach(L, luashm_checkname(L, 1, "open"));
  return luashm_barrier_wrap(L);
}

/* ---------------------------------------------------------------------------------------
** Methods
** ------------------------------------------------------------------------------------- */

/* The round ended (gen moved on): this party leaves it. */
static int passed(lua_State *L, barrier *bar, int serial) {
  __atomic_store_n(&bar->s->slot[bar->slot].waiting, 0, __ATOMIC_RELAXED);
  lua_pushboolean(L, 1);
  lua_pushboolean(L, serial);
  return 2;
}

/* The deadline has passed in round g: withdraw this party's arrival so that the round can
   still complete with a later arrival, unless the round completed meanwhile. */
static int withdraw(lua_State *L, barrier *bar, uint32_t g) {
  shared *s = bar->s;
  state_lock(s, NULL);
  if (s->gen != g) {
    state_unlock(s);
    return passed(L, bar, 0);
  }
  s->count--;
  s->slot[bar->slot].waiting = 0;
  state_unlock(s);
  lua_pushboolean(L, 0);
  return 1;
}

static int barrier_wait(lua_State *L) {
  barrier *bar = checkbarrier(L, 1);
  shared *s = bar->s;
  struct timespec dl;
  int timed = !lua_isnoneornil(L, 2);
  uint32_t g;
  if (timed) {
    lua_Number t = luaL_checknumber(L, 2);
    if (!(t >= 0))
      return luashm_error(L, "wait '%s': timeout must be a non-negative number", bar->b->name);
    if (t > 31536000) t = 31536000;
    dl = mono_now();
    dl.tv_sec += (time_t)t;
    dl.tv_nsec += (long)((t - (lua_Number)(time_t)t) * 1e9);
    if (dl.tv_nsec >= 1000000000L) {
      dl.tv_sec++;
      dl.tv_nsec -= 1000000000L;
    }
  }
  if (state_lock(s, timed ? &dl : NULL) != 0) {
    lua_pushboolean(L, 0);
    return 1;
  }
  enlist(L, bar);
  if (s->broken) {
    state_unlock(s);
    wake_all(s);
    return broken_error(L, bar);
  }
  g = s->gen;
  if (++s->count >= bar->n) {
    s->count = 0;
    __atomic_store_n(&s->gen, g + 1, __ATOMIC_RELEASE);
    state_unlock(s);
    wake_all(s);
    return passed(L, bar, 1);
  }
  s->slot[bar->slot].waiting_gen = g;
  s->slot[bar->slot].waiting = 1;
  state_unlock(s);
  for (;;) {
    struct timespec rel = {0, SLICE_NS};
    if (timed) {
      long long left = ns_until(&dl);
      if (left <= 0) return withdraw(L, bar, g);
      if (left < SLICE_NS) rel.tv_nsec = (long)left;
    }
    futex(&s->gen, FUTEX_WAIT, g, &rel);
    if (__atomic_load_n(&s->gen, __ATOMIC_ACQUIRE) != g) return passed(L, bar, 0);
    if (__atomic_load_n(&s->broken, __ATOMIC_ACQUIRE) == 0) {
      state_lock(s, NULL);
      if (s->gen != g) {
        state_unlock(s);
        return passed(L, bar, 0);
      }
      scan(s, bar->n, bar->slot, 1);
      state_unlock(s);
    }
    if (__atomic_load_n(&s->broken, __ATOMIC_ACQUIRE) != 0) {
      wake_all(s);
      return broken_error(L, bar);
    }
  }
}

static int barrier_parties(lua_State *L) {
  barrier *bar = checkbarrier(L, 1);
  lua_pushinteger(L, (lua_Integer)bar->n);
  return 1;
}

static int barrier_name(lua_State *L) {
  barrier *bar = (barrier *)luaL_checkudata(L, 1, LUASHM_BARRIER);
  lua_pushstring(L, bar->b->name);
  return 1;
}

static int barrier_close(lua_State *L) {
  barrier *bar = (barrier *)luaL_checkudata(L, 1, LUASHM_BARRIER);
  if (bar->s == NULL) return 0;
  leave(bar);
  bar->s = NULL;
  luashm_shm_unmap(bar->b->data, bar->b->size);
  bar->b->data = NULL;
  return 0;
}

/* Removes the name; handles (here and elsewhere) keep working. */
static int barrier_unlink(lua_State *L) {
  barrier *bar = (barrier *)luaL_checkudata(L, 1, LUASHM_BARRIER);
  char err[LUASHM_ERRLEN];
  if (luashm_block_unlink(bar->b, err) != 0) return luashm_error(L, "%s", err);
  return 0;
}

static int barrier_tostring(lua_State *L) {
  barrier *bar = (barrier *)luaL_checkudata(L, 1, LUASHM_BARRIER);
  shared *s = bar->s;
  if (s == NULL)
    lua_pushfstring(L, "luashm.Barrier '%s' (closed)", bar->b->name);
  else if (__atomic_load_n(&s->broken, __ATOMIC_RELAXED) != 0)
    lua_pushfstring(L, "luashm.Barrier '%s' (%d parties, broken)", bar->b->name, (int)bar->n);
  else
    lua_pushfstring(L, "luashm.Barrier '%s' (%d parties, %d waiting)", bar->b->name, (int)bar->n,
                    (int)__atomic_load_n(&s->count, __ATOMIC_RELAXED));
  return 1;
}

static int barrier_ref(lua_State *L) {
  barrier *bar = (barrier *)luaL_checkudata(L, 1, LUASHM_BARRIER);
  lua_pushstring(L, bar->b->name);
  lua_pushliteral(L, "barrier");
  return 2;
}

static const luaL_Reg barrier_meth[] = {{"wait", barrier_wait},     {"parties", barrier_parties},
                                        {"name", barrier_name},     {"close", barrier_close},
                                        {"unlink", barrier_unlink}, {NULL, NULL}};

static const luaL_Reg barrier_metameth[] = {{"__gc", barrier_close},
                                            {"__close", barrier_close},
                                            {"__tostring", barrier_tostring},
                                            {LUASHM_REF_FIELD, barrier_ref},
                                            {NULL, NULL}};

void luashm_open_barrier(lua_State *L) {
  luaL_newmetatable(L, LUASHM_BARRIER);
  luaL_setfuncs(L, barrier_metameth, 0);
  lua_pushboolean(L, 0);
  lua_setfield(L, -2, "__metatable");
  luaL_newlib(L, barrier_meth);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
  lua_pushcfunction(L, barrier_new);
  lua_setfield(L, -2, "barrier");
  lua_pushcfunction(L, barrier_reopen);
  luashm_set_reopener(L, "barrier");
}
