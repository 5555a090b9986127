/*
** The sync core (see sync.h): deadlines, interrupts, futex waits and robust mutexes.
*/
#include "sync.h"

#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <math.h>
#include <signal.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "core.h"

#define SLICE_NS 50000000L /* a wait looks at the interrupt flag at least this often */
#define SPINS 200          /* ~5 us of pause instructions: longer than most critical sections */

/* ---------------------------------------------------------------------------------------
** Deadlines
** ------------------------------------------------------------------------------------- */

static void mono_now(struct timespec *ts) {
  clock_gettime(CLOCK_MONOTONIC, ts);
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
static int reference_kind(void) {
  static int kind = -1;
  if (kind == -1) {
    pthread_mutex_t m;
    if (luashm_mutex_init(&m) == 0) kind = m.__data.__kind;
  }
  return kind;
}

int luashm_mutex_valid(const pthread_mutex_t *m) {
  int kind = __atomic_load_n(&m->__data.__kind, __ATOMIC_RELAXED);
  return kind == reference_kind() && kind != -1;
}

int luashm_mutex_held(const pthread_mutex_t *m) {
  return __atomic_load_n(&m->__data.__lock, __ATOMIC_RELAXED) != 0;
}

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  __asm__ __volatile__("yield");
#endif
}

/* pthread's answer as ours: a dead holder's mutex is made consistent at once (the caller
   repairs what it protects before unlocking). */
static int taken(pthread_mutex_t *m, int rc) {
  if (rc == EOWNERDEAD) return pthread_mutex_consistent(m) == 0 ? LUASHM_OWNER_DIED : EINVAL;
  if (rc == ENOTRECOVERABLE) return EINVAL;
  return rc;
}

int luashm_mutex_trylock(pthread_mutex_t *m) {
  if (LUASHM_UNLIKELY(!luashm_mutex_valid(m))) return EINVAL;
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
  if (LUASHM_UNLIKELY(!luashm_mutex_valid(m))) return EINVAL;
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
  if (LUASHM_UNLIKELY(!luashm_mutex_valid(m))) return EINVAL;
  return pthread_mutex_unlock(m);
}
