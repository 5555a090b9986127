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
#include <string.h>
#include <unistd.h>

#include "kinds.h"
#include "sync.h"

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
  luashm_object head;
  shared *s;
  uint32_t n;     /* parties, as checked against the block's size when opened: the shared
                     copy is not trusted after that */
  int slot;       /* registered slot, -1 for none */
  pid_t slot_pid; /* the process that registered it: a forked copy of the handle did not */
  luashm_spin spin; /* this handle's adaptive spin budget (sync.h) */
} barrier;

#define BARRIER_SIZE(n) (LUASHM_HEADER_SIZE + sizeof(shared) + (size_t)(n) * sizeof(party))

static barrier *tobarrier(lua_State *L, int i) {
  return (barrier *)luashm_tokind(L, i, &luashm_kind_barrier);
}

static barrier *checkbarrier(lua_State *L, int i) {
  barrier *bar = tobarrier(L, i);
  if (bar->head.b->data == NULL) luashm_error(L, "barrier '%s' is closed", bar->head.b->name);
  return bar;
}

/* Locks the state (until the deadline d, NULL: forever). A party that died holding it left
   the state half-updated: the barrier is broken. Returns 0, or the sync core's ETIMEDOUT,
   EINTR or EINVAL (forged mutex bytes). */
static int state_lock(shared *s, const luashm_deadline *d) {
  int rc = luashm_mutex_lock(&s->mu, d);
  if (rc == LUASHM_OWNER_DIED) {
    if (s->broken == 0) s->broken = s->holder > 0 ? s->holder : -1;
  } else if (rc != 0) {
    return rc;
  }
  s->holder = (int32_t)getpid();
  return 0;
}

static void state_unlock(shared *s) {
  luashm_mutex_unlock(&s->mu);
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
    rc = luashm_mutex_trylock(&p->mu);
    if (rc == EBUSY) continue; /* alive */
    if (rc == LUASHM_OWNER_DIED) {
      if (s->broken == 0 && (all_dead_break || (p->waiting && p->waiting_gen == s->gen)))
        s->broken = p->pid;
    } else if (rc != 0) {
      continue;
    }
    /* dead, or closed without getting the state lock: the slot is free again */
    luashm_mutex_unlock(&p->mu);
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
    rc = luashm_mutex_trylock(&p->mu);
    if (rc != 0 && rc != LUASHM_OWNER_DIED) continue;
    p->pid = (int32_t)me;
    p->waiting = 0;
    bar->slot = (int)i;
    bar->slot_pid = me;
    bar->head.b->held_lock = &p->mu; /* closing the mapping releases it first */
    return;
  }
  state_unlock(s);
  luashm_error(L, "wait '%s': more than %d processes wait on it", bar->head.b->name, (int)bar->n);
}

static int broken_error(lua_State *L, barrier *bar) {
  return luashm_error(L, "wait '%s': a party died (pid %d)", bar->head.b->name,
                      (int)__atomic_load_n(&bar->s->broken, __ATOMIC_ACQUIRE));
}

/* Wakes every waiter: the round is over, or the barrier is broken. */
static void wake_all(shared *s) {
  luashm_futex_wake(&s->gen, INT_MAX);
}

/* Leaves the slot (close, or the handle's collection), releasing its presence mutex while the
   mapping is still there. */
static void leave(barrier *bar) {
  shared *s = bar->s;
  luashm_deadline d;
  party *p;
  if (bar->slot < 0 || bar->slot_pid != getpid() || bar->head.b->data == NULL) return;
  p = &s->slot[bar->slot];
  luashm_deadline_in(&d, 1);
  if (state_lock(s, &d) == 0) {
    p->pid = 0;
    p->waiting = 0;
    luashm_mutex_unlock(&p->mu);
    state_unlock(s);
  } else {
    luashm_mutex_unlock(&p->mu); /* the next scan frees the slot */
  }
  bar->head.b->held_lock = NULL;
  bar->slot = -1;
}

/* ---------------------------------------------------------------------------------------
** Constructor and shm.open
** ------------------------------------------------------------------------------------- */

/* Replaces the Block at the top of the stack with a Barrier of n parties on it. */
static barrier *barrier_push(lua_State *L, uint32_t n) {
  luashm_block *b = luashm_toblock(L, -1);
  barrier *bar = (barrier *)lua_newuserdatauv(L, sizeof(barrier), 1);
  bar->head.kind = &luashm_kind_barrier;
  bar->head.b = b;
  bar->s = (shared *)(b->data + LUASHM_HEADER_SIZE);
  bar->n = n;
  bar->slot = -1;
  bar->slot_pid = 0;
  bar->spin = (luashm_spin)LUASHM_SPIN_INIT;
  luaL_setmetatable(L, LUASHM_BARRIER);
  lua_insert(L, -2);
  lua_setiuservalue(L, -2, 1);
  return bar;
}

static const char *const barrier_options[] = {LUASHM_BLOCK_OPTIONS, NULL};

static int barrier_new(lua_State *L) {
  lua_Integer n = luaL_checkinteger(L, 1);
  int hasopts = luashm_checkoptions(L, 2, "barrier", barrier_options);
  luashm_block *b;
  shared *s;
  uint32_t i;
  if (n < 1 || n > BARRIER_MAX)
    return luashm_error(L, "barrier: parties %I is not between 1 and %d", n, BARRIER_MAX);
  b = luashm_block_new(L, BARRIER_SIZE(n), hasopts ? 2 : 0);
  s = (shared *)(b->data + LUASHM_HEADER_SIZE);
  s->parties = (uint32_t)n;
  for (i = 0; i <= s->parties; i++) {
    if (luashm_mutex_init(i == 0 ? &s->mu : &s->slot[i - 1].mu) != 0) {
      char ignored[LUASHM_ERRLEN];
      luashm_block_unlink(b, ignored);
      return luashm_error(L, "barrier '%s': cannot make its mutexes", b->name);
    }
  }
  luashm_header_init(b->data, "barrier", BARRIER_VERSION);
  barrier_push(L, (uint32_t)n);
  return 1;
}

static int barrier_probe(const unsigned char *p, size_t size) {
  uint32_t n;
  if (!luashm_header_is(p, size, "barrier", BARRIER_VERSION) || size < BARRIER_SIZE(0)) return 0;
  memcpy(&n, p + LUASHM_HEADER_SIZE + offsetof(shared, parties), sizeof n);
  return n >= 1 && n <= BARRIER_MAX && size >= BARRIER_SIZE(n);
}

static int barrier_wrap(lua_State *L, int view) {
  luashm_block *b = luashm_toblock(L, -1);
  shared *s = (shared *)(b->data + LUASHM_HEADER_SIZE);
  uint32_t i, n = __atomic_load_n(&s->parties, __ATOMIC_RELAXED);
  (void)view;
  if (!barrier_probe(b->data, b->size) || n != s->parties || !luashm_mutex_valid(&s->mu))
    return luashm_error(L, "open '%s': not a valid barrier block", b->name);
  for (i = 0; i < n; i++)
    if (!luashm_mutex_valid(&s->slot[i].mu))
      return luashm_error(L, "open '%s': not a valid barrier block", b->name);
  barrier_push(L, n);
  return 1;
}

static void barrier_describe(const unsigned char *p, size_t size, char *out, size_t n) {
  uint32_t parties;
  (void)size;
  memcpy(&parties, p + LUASHM_HEADER_SIZE + offsetof(shared, parties), sizeof parties);
  snprintf(out, n, "barrier of %u", (unsigned)parties);
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

/* The wait ended in round g without the round completing (deadline, interrupt): withdraw
   this party's arrival so that the round can still complete with a later arrival, unless the
   round completed meanwhile. rc is ETIMEDOUT (returns false) or EINTR (raises). */
static int withdraw(lua_State *L, barrier *bar, uint32_t g, int rc) {
  shared *s = bar->s;
  luashm_deadline d;
  /* The pending interrupt is this call's to report, once withdrawn: left pending, it would make
     the lock below give up at once if another party held it. */
  if (rc == EINTR) luashm_interrupt_clear();
  luashm_deadline_in(&d, 1);
  if (state_lock(s, &d) == 0) {
    if (s->gen != g) {
      state_unlock(s);
      return passed(L, bar, 0);
    }
    s->count--;
    s->slot[bar->slot].waiting = 0;
    state_unlock(s);
  }
  if (rc == EINTR) return luashm_interrupted(L);
  lua_pushboolean(L, 0);
  return 1;
}

/* A state_lock that failed: false on timeout, else an error. */
static int lock_failed(lua_State *L, barrier *bar, int rc) {
  if (rc == ETIMEDOUT) {
    lua_pushboolean(L, 0);
    return 1;
  }
  if (rc == EINTR) return luashm_interrupted(L);
  return luashm_error(L, "wait '%s': the block no longer holds a valid barrier", bar->head.b->name);
}

static int barrier_wait(lua_State *L) {
  barrier *bar = checkbarrier(L, 1);
  shared *s = bar->s;
  luashm_deadline d;
  uint32_t g;
  int rc;
  luashm_deadline_in(&d, luashm_opttimeout(L, 2, "wait", bar->head.b->name));
  if ((rc = state_lock(s, &d)) != 0) return lock_failed(L, bar, rc);
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
  /* The round often completes within microseconds: watch for it before sleeping. */
  luashm_spin_while32(&bar->spin, &s->gen, g, &d);
  for (;;) {
    /* Sleep a slice at most: between slices the waiter looks for parties that died. */
    luashm_deadline slice;
    luashm_deadline_in(&slice, SLICE_NS * 1e-9);
    if (luashm_deadline_left(&d) < luashm_deadline_left(&slice)) slice = d;
    rc = luashm_futex_wait(&s->gen, g, &slice);
    if (__atomic_load_n(&s->gen, __ATOMIC_ACQUIRE) != g) return passed(L, bar, 0);
    if (rc == EINTR || luashm_deadline_passed(&d))
      return withdraw(L, bar, g, rc == EINTR ? EINTR : ETIMEDOUT);
    if (__atomic_load_n(&s->broken, __ATOMIC_ACQUIRE) == 0) {
      if ((rc = state_lock(s, NULL)) != 0) return lock_failed(L, bar, rc);
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

/* The handle's collection leaves its slot (the Block, which the user may still hold, stays
   mapped); close leaves it and releases the mapping. Both idempotent. */
static int barrier_gc(lua_State *L) {
  leave(tobarrier(L, 1));
  return 0;
}

static int barrier_close(lua_State *L) {
  barrier *bar = tobarrier(L, 1);
  leave(bar);
  luashm_block_close(bar->head.b);
  return 0;
}

static int barrier_tostring(lua_State *L) {
  barrier *bar = tobarrier(L, 1);
  shared *s = bar->s;
  const char *name = bar->head.b->name;
  if (bar->head.b->data == NULL)
    lua_pushfstring(L, "luashm.Barrier '%s' (closed)", name);
  else if (__atomic_load_n(&s->broken, __ATOMIC_RELAXED) != 0)
    lua_pushfstring(L, "luashm.Barrier '%s' (%d parties, broken)", name, (int)bar->n);
  else
    lua_pushfstring(L, "luashm.Barrier '%s' (%d parties, %d waiting)", name, (int)bar->n,
                    (int)__atomic_load_n(&s->count, __ATOMIC_RELAXED));
  return 1;
}

static const luaL_Reg barrier_meth[] = {{"wait", barrier_wait},
                                        {"parties", barrier_parties},
                                        {"close", barrier_close},
                                        {"unlink", luashm_object_unlink},
                                        {NULL, NULL}};

static const luaL_Reg barrier_metameth[] = {{"__gc", barrier_gc},
                                            {"__close", barrier_close},
                                            {"__tostring", barrier_tostring},
                                            {NULL, NULL}};

static void barrier_open(lua_State *L) {
  luashm_newkind(L, &luashm_kind_barrier, barrier_meth, barrier_metameth, luashm_object_index);
  lua_pushcfunction(L, barrier_new);
  lua_setfield(L, -2, "barrier");
}

const luashm_kind luashm_kind_barrier = {"barrier",        LUASHM_BARRIER, "barrier",
                                         barrier_probe,    barrier_wrap,   NULL,
                                         barrier_describe, barrier_open};
