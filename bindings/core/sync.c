/*
** The sync core (see sync.h): deadlines, interrupts, futex waits and robust mutexes.
*/
#include "sync.h"

#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "core.h"

#define SLICE_NS 50000000L  /* a wait looks at the interrupt flag at least this often */
#define SPINS 200           /* ~5 us of pause instructions: longer than most critical sections */
#define SPIN_US_DEFAULT 20  /* the full adaptive budget (chosen by measurement: BENCHMARKS.md) */
#define SPIN_MIN_NS 250     /* a budget halved below this is no spin at all */
#define SPIN_PROBE 16       /* every this many waits spin the full budget again... */
#define SPIN_PROBE_MAX 1024 /* ...or up to this many while those probes miss */
#define SPIN_CHECK 16       /* loads of the word between looks at the clock */

/* ---------------------------------------------------------------------------------------
** Deadlines
** ------------------------------------------------------------------------------------- */

static void mono_now(struct timespec *ts) {
  clock_gettime(CLOCK_MONOTONIC, ts);
}

double luashm_now(void) {
  struct timespec ts;
  mono_now(&ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void luashm_deadline_in(luashm_deadline *d, double timeout) {
  double whole;
  d->forever = !(timeout >= 0 && timeout <= LUASHM_TIMEOUT_MAX);
  if (d->forever) return;
  whole = floor(timeout);
  mono_now(&d->at);
  d->at.tv_sec += (time_t)whole;
  d->at.tv_nsec += (long)((timeout - whole) * 1e9);
  if (d->at.tv_nsec >= 1000000000L) {
    d->at.tv_sec++;
    d->at.tv_nsec -= 1000000000L;
  }
}

int64_t luashm_deadline_left(const luashm_deadline *d) {
  struct timespec now;
  int64_t left;
  if (d == NULL || d->forever) return INT64_MAX;
  mono_now(&now);
  left = (int64_t)(d->at.tv_sec - now.tv_sec) * 1000000000LL + (d->at.tv_nsec - now.tv_nsec);
  return left > 0 ? left : 0;
}

int luashm_deadline_passed(const luashm_deadline *d) {
  return luashm_deadline_left(d) == 0;
}

double luashm_opttimeout(lua_State *L, int idx, const char *op, const char *name) {
  lua_Number t;
  int isnum;
  if (lua_isnoneornil(L, idx)) return -1;
  t = lua_tonumberx(L, idx, &isnum);
  if (!isnum || !(t >= 0)) {
    const char *v = isnum && t != t ? "NaN" : luaL_tolstring(L, idx, NULL);
    if (name != NULL)
      luashm_error(L, "%s '%s': timeout must be a number of seconds >= 0, not %s", op, name, v);
    luashm_error(L, "%s: timeout must be a number of seconds >= 0, not %s", op, v);
  }
  return t > LUASHM_TIMEOUT_MAX ? -1 : (double)t;
}

/* ---------------------------------------------------------------------------------------
** Interrupts: process-level on purpose (a signal is delivered to the process)
** ------------------------------------------------------------------------------------- */

static volatile sig_atomic_t interrupt_flag = 0;

void luashm_interrupt(void) {
  interrupt_flag = 1;
}

int luashm_interrupt_pending(void) {
  return interrupt_flag != 0;
}

void luashm_interrupt_clear(void) {
  interrupt_flag = 0;
}

int luashm_interrupted(lua_State *L) {
  interrupt_flag = 0;
  return luashm_error(L, "interrupted");
}

static volatile sig_atomic_t hosted = 0;
static struct sigaction chained; /* the handler the temporary one stands in front of */

void luashm_interrupt_hosted(void) {
  hosted = 1;
}

static void chain_sigint(int sig, siginfo_t *info, void *ctx) {
  luashm_interrupt();
  if (chained.sa_flags & SA_SIGINFO)
    chained.sa_sigaction(sig, info, ctx);
  else if (chained.sa_handler != SIG_DFL && chained.sa_handler != SIG_IGN)
    chained.sa_handler(sig);
}

static int is_chain(const struct sigaction *sa) {
  return (sa->sa_flags & SA_SIGINFO) && sa->sa_sigaction == chain_sigint;
}

void luashm_sigint_begin(luashm_sigint *g) {
  struct sigaction cur, sa;
  g->tried = 1;
  g->installed = 0;
  if (hosted || sigaction(SIGINT, NULL, &cur) != 0 || is_chain(&cur)) return;
  if (!(cur.sa_flags & SA_SIGINFO) && (cur.sa_handler == SIG_DFL || cur.sa_handler == SIG_IGN))
    return;
  chained = cur;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = chain_sigint;
  sa.sa_mask = cur.sa_mask;
  sa.sa_flags = SA_SIGINFO; /* no SA_RESTART: a blocked call returns EINTR */
  g->installed = sigaction(SIGINT, &sa, NULL) == 0;
}

void luashm_sigint_end(luashm_sigint *g) {
  struct sigaction cur;
  if (!g->installed) return;
  g->installed = 0;
  if (sigaction(SIGINT, NULL, &cur) == 0 && is_chain(&cur)) sigaction(SIGINT, &chained, NULL);
}

/* ---------------------------------------------------------------------------------------
** Futexes
** ------------------------------------------------------------------------------------- */

static int futex_sleep(uint32_t *word, uint32_t val, const luashm_deadline *d, luashm_sigint *g) {
  for (;;) {
    int64_t left = luashm_deadline_left(d);
    struct timespec rel;
    if (interrupt_flag) return EINTR;
    if (__atomic_load_n(word, __ATOMIC_SEQ_CST) != val) return 0;
    if (left == 0) return ETIMEDOUT;
    if (!g->tried) luashm_sigint_begin(g);
    /* Always a timed sleep, in slices: an untimed FUTEX_WAIT is restarted after a signal
       handler installed with SA_RESTART, so an interrupt would go unseen. */
    if (left > SLICE_NS) left = SLICE_NS;
    rel.tv_sec = 0;
    rel.tv_nsec = (long)left;
    if (syscall(SYS_futex, word, FUTEX_WAIT, val, &rel, NULL, 0) == 0) return 0;
    if (errno == EAGAIN) return 0;
    /* ETIMEDOUT of a slice, EINTR of a stray signal: look again */
  }
}

int luashm_futex_wait(uint32_t *word, uint32_t val, const luashm_deadline *d) {
  luashm_sigint g = {0};
  int rc = futex_sleep(word, val, d, &g);
  luashm_sigint_end(&g);
  return rc;
}

void luashm_futex_wake(uint32_t *word, int n) {
  syscall(SYS_futex, word, FUTEX_WAKE, n, NULL, NULL, 0);
}

/* ---------------------------------------------------------------------------------------
** Spinning before sleeping
** ------------------------------------------------------------------------------------- */

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  __asm__ __volatile__("yield");
#endif
}

static int64_t mono_ns(void) {
  struct timespec ts;
  mono_now(&ts);
  return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int64_t luashm_spin_full(void) {
  static int64_t full = -1;
  if (full < 0) {
    const char *env = getenv("LUASHM_SPIN_US");
    char *end;
    double us = env != NULL ? strtod(env, &end) : SPIN_US_DEFAULT;
    if (env != NULL && (end == env || *end != '\0' || !(us >= 0) || us > 1e6))
      us = SPIN_US_DEFAULT; /* a malformed setting is ignored rather than fatal */
    full = (int64_t)(us * 1000);
  }
  return full;
}

/* The budget of this wait, 0 for none (spinning off, a budget halved to nothing between
   probes, no time left before the deadline). */
static int64_t spin_budget(luashm_spin *sp, const luashm_deadline *d) {
  int64_t full = luashm_spin_full(), b, left;
  if (full == 0) return 0;
  if (sp->budget_ns < 0) {
    sp->budget_ns = full;
    sp->probe = SPIN_PROBE;
  }
  if (++sp->waits >= sp->probe) {
    sp->waits = 0;
    b = full;
  } else {
    b = sp->budget_ns;
  }
  if (b < SPIN_MIN_NS) return 0;
  left = luashm_deadline_left(d);
  return b < left ? b : left;
}

/* Watches a 4- or 8-byte word (wide) while it holds val. A hit (the word moved within the
   budget) restores the full budget; a miss halves the smaller of the budget and this spin. A
   word seen moving only after the budget (this process was descheduled meanwhile, as when
   its peer shares its CPU) counts as a miss. */
static int spin_while(luashm_spin *sp, const void *word, int wide, uint64_t val,
                      const luashm_deadline *d) {
  int64_t b = spin_budget(sp, d), t0, spun;
  int i, moved = 0;
  if (b == 0) return 0;
  t0 = mono_ns();
  for (;;) {
    for (i = 0; i < SPIN_CHECK; i++) {
      moved = (wide ? __atomic_load_n((const uint64_t *)word, __ATOMIC_ACQUIRE)
                    : __atomic_load_n((const uint32_t *)word, __ATOMIC_ACQUIRE)) != val;
      if (moved) break;
      cpu_relax();
    }
    spun = mono_ns() - t0;
    if (moved || interrupt_flag || spun >= b) break;
  }
  if (moved && spun <= b) {
    sp->budget_ns = luashm_spin_full();
    sp->probe = SPIN_PROBE;
  } else {
    if (sp->waits == 0 && sp->probe < SPIN_PROBE_MAX) sp->probe *= 2; /* a probe missed */
    sp->budget_ns = (b < sp->budget_ns ? b : sp->budget_ns) / 2;
  }
  return moved;
}

int luashm_spin_while64(luashm_spin *sp, const uint64_t *word, uint64_t val,
                        const luashm_deadline *d) {
  return spin_while(sp, word, 1, val, d);
}

int luashm_spin_while32(luashm_spin *sp, const uint32_t *word, uint32_t val,
                        const luashm_deadline *d) {
  return spin_while(sp, word, 0, val, d);
}

/* ---------------------------------------------------------------------------------------
** Robust mutexes
** ------------------------------------------------------------------------------------- */

static int mutex_attr(pthread_mutexattr_t *a) {
  if (pthread_mutexattr_init(a) != 0) return -1;
  if (pthread_mutexattr_setpshared(a, PTHREAD_PROCESS_SHARED) != 0 ||
      pthread_mutexattr_setrobust(a, PTHREAD_MUTEX_ROBUST) != 0 ||
      pthread_mutexattr_settype(a, PTHREAD_MUTEX_ERRORCHECK) != 0) {
    pthread_mutexattr_destroy(a);
    return -1;
  }
  return 0;
}

int luashm_mutex_init(pthread_mutex_t *m) {
  pthread_mutexattr_t a;
  int rc;
  if (mutex_attr(&a) != 0) return -1;
  rc = pthread_mutex_init(m, &a);
  pthread_mutexattr_destroy(&a);
  return rc == 0 ? 0 : -1;
}

/* The only code that reads glibc's private fields of pthread_mutex_t, because no public call
   can tell a valid mutex from forged bytes: glibc trusts its kind bits and aborts (an
   assertion) on kinds it did not expect. The reference kind is read off a mutex made here with
   the same attributes, so no glibc constant is hard-coded; the owner word is only read. */
static int reference_kind = -1;

static int make_reference_kind(void) {
  pthread_mutex_t m;
  if (luashm_mutex_init(&m) == 0) reference_kind = m.__data.__kind;
  return reference_kind;
}

/* The check of every lock, trylock and unlock: one load and one compare once the reference
   kind is known. */
static inline int mutex_valid(const pthread_mutex_t *m) {
  int kind = __atomic_load_n(&m->__data.__kind, __ATOMIC_RELAXED);
  int ref = LUASHM_LIKELY(reference_kind != -1) ? reference_kind : make_reference_kind();
  return kind == ref && ref != -1;
}

int luashm_mutex_valid(const pthread_mutex_t *m) {
  return mutex_valid(m);
}

int luashm_mutex_held(const pthread_mutex_t *m) {
  return __atomic_load_n(&m->__data.__lock, __ATOMIC_RELAXED) != 0;
}

/* pthread's answer as ours: a dead holder's mutex is made consistent at once (the caller
   repairs what it protects before unlocking). */
static int taken(pthread_mutex_t *m, int rc) {
  if (rc == EOWNERDEAD) return pthread_mutex_consistent(m) == 0 ? LUASHM_OWNER_DIED : EINVAL;
  if (rc == ENOTRECOVERABLE) return EINVAL;
  return rc;
}

int luashm_mutex_trylock(pthread_mutex_t *m) {
  if (LUASHM_UNLIKELY(!mutex_valid(m))) return EINVAL;
  return taken(m, pthread_mutex_trylock(m));
}

/* Sleeps in slices until m is taken, so that a pending interrupt or a passed deadline is seen.
   Returns pthread's answer, ETIMEDOUT or EINTR. */
static int mutex_sleep(pthread_mutex_t *m, const luashm_deadline *d) {
  int rc = EBUSY;
  while (rc == EBUSY || rc == ETIMEDOUT) {
    struct timespec at;
    int64_t left = luashm_deadline_left(d);
    if (interrupt_flag) return EINTR;
    if (left == 0) return ETIMEDOUT;
    if (left > SLICE_NS) left = SLICE_NS;
    mono_now(&at);
    at.tv_nsec += (long)left;
    if (at.tv_nsec >= 1000000000L) {
      at.tv_sec++;
      at.tv_nsec -= 1000000000L;
    }
    rc = pthread_mutex_clocklock(m, CLOCK_MONOTONIC, &at);
  }
  return rc;
}

int luashm_mutex_lock(pthread_mutex_t *m, const luashm_deadline *d) {
  int rc, i;
  if (LUASHM_UNLIKELY(!mutex_valid(m))) return EINVAL;
  rc = pthread_mutex_trylock(m);
  /* glibc's robust mutexes never spin: a waiter sleeps in the kernel at once and every
     release then pays a futex wake. Critical sections are short, so a waiter first spins,
     watching the lock word without writing it. */
  for (i = 0; rc == EBUSY && i < SPINS; i++) {
    if (!luashm_mutex_held(m))
      rc = pthread_mutex_trylock(m);
    else
      cpu_relax();
  }
  if (rc == EBUSY) {
    luashm_sigint g = {0};
    luashm_sigint_begin(&g);
    rc = mutex_sleep(m, d);
    luashm_sigint_end(&g);
  }
  return taken(m, rc);
}

int luashm_mutex_unlock(pthread_mutex_t *m) {
  if (LUASHM_UNLIKELY(!mutex_valid(m))) return EINVAL;
  return pthread_mutex_unlock(m);
}
