/*
** The sync core: what every object that other processes wait on shares. Robust process-shared
** mutexes (made one way, checked before every use, recovered after a holder died), futex waits
** against a deadline, and the one checker of timeout arguments. Lock, Barrier, Channel, Manager
** and Dict are built on it; nothing else calls pthread_mutex_* on shared memory.
*/
#ifndef LUASHM_SYNC_H
#define LUASHM_SYNC_H

#include <pthread.h>
#include <stdint.h>
#include <time.h>

#include "lua.h"

/* ---------------------------------------------------------------------------------------
** Deadlines
** ------------------------------------------------------------------------------------- */

/* A point on CLOCK_MONOTONIC, or none (wait forever). */
typedef struct luashm_deadline {
  int forever;
  struct timespec at;
} luashm_deadline;

/* The longest timeout taken as a time: anything longer (and math.huge) waits forever. */
#define LUASHM_TIMEOUT_MAX 1e9

/* Seconds on CLOCK_MONOTONIC (shared by every process of the machine): shm.now, and the
   periods of the progress bar and the worker waits. */
double luashm_now(void);

/* Sets d to timeout seconds from now; a negative timeout (or > LUASHM_TIMEOUT_MAX) is forever. */
void luashm_deadline_in(luashm_deadline *d, double timeout);

/* 1 once the deadline has passed (never for forever). */
int luashm_deadline_passed(const luashm_deadline *d);

/* Nanoseconds left before the deadline (0 when passed, INT64_MAX for forever). */
int64_t luashm_deadline_left(const luashm_deadline *d);

/* A timeout argument at idx: absent or nil gives -1 (forever); else a number of seconds >= 0.
   NaN, negative numbers and non-numbers raise "luashm: <op> '<name>': timeout must be a number
   of seconds >= 0, not <v>" (no quoted name when name is NULL). The one checker of every
   timeout luashm takes. */
double luashm_opttimeout(lua_State *L, int idx, const char *op, const char *name);

/* ---------------------------------------------------------------------------------------
** Interrupts
** ------------------------------------------------------------------------------------- */

/* Asks every wait of this process to stop: the waits below then return EINTR within a slice
   (about 50 ms). Async-signal-safe: a SIGINT handler calls it. */
void luashm_interrupt(void);

/* 1 while an interrupt is pending. */
int luashm_interrupt_pending(void);

/* Forgets a pending interrupt (once it has been reported). */
void luashm_interrupt_clear(void);

/* Reports a pending interrupt: clears it and raises "luashm: interrupted". */
int luashm_interrupted(lua_State *L);

/* Says that the program's own SIGINT handler calls luashm_interrupt (the luashm host's does):
   waits then need no temporary handler (below). */
void luashm_interrupt_hosted(void);

/* Around a wait that may sleep, so that SIGINT interrupts it in any program: when SIGINT is
   handled by a function that does not call luashm_interrupt (stock lua5.4's lua.c, an
   embedder's), begin installs a temporary handler that calls luashm_interrupt and then that
   function; end restores it unless the function changed the disposition meanwhile (lua.c resets
   it to the default, so that a second Ctrl-C kills). Nothing for SIG_DFL or SIG_IGN (Ctrl-C
   still kills, or is still ignored), nor in the luashm host. One thread of the process at a
   time. */
typedef struct luashm_sigint {
  int tried, installed; /* zero-initialise before begin */
} luashm_sigint;
void luashm_sigint_begin(luashm_sigint *g);
void luashm_sigint_end(luashm_sigint *g);

/* ---------------------------------------------------------------------------------------
** Futexes (process-shared: the words live in blocks)
** ------------------------------------------------------------------------------------- */

/* Sleeps while *word == val, until woken or the deadline. Returns 0 (woken, or the word had
   already moved, or a stray signal: callers re-check their condition), ETIMEDOUT, or EINTR
   (an interrupt is pending). */
int luashm_futex_wait(uint32_t *word, uint32_t val, const luashm_deadline *d);

/* Wakes up to n sleepers of word. */
void luashm_futex_wake(uint32_t *word, int n);

/* ---------------------------------------------------------------------------------------
** Spinning before sleeping
**
** A wake-up through the kernel (futex wake, then the sleeper scheduled again) costs several
** microseconds, more than a whole message round trip when both processes have a CPU. So a
** waiter first watches the shared word without writing it, for an adaptive budget: the full
** budget after a wait that the spin ended (a hit), half the last one after a miss, and the
** full budget again every 16th wait (every 32nd, 64th... up to 1024th while these probes
** miss) to notice that the peer got fast again. A peer that is slow, or that waits for a
** CPU (a loaded machine, or a peer on the spinner's own CPU), thus costs little spinning. A
** spinning process is not a sleeper: it must not be counted as waiting, so the waker skips
** the wake syscall. Spinning is never what makes a wait correct: the caller re-checks its condition
** under its lock and sleeps after a miss.
** ------------------------------------------------------------------------------------- */

/* One waiter's adaptive budget (process-local: a handle's, never in shared memory). */
typedef struct luashm_spin {
  int64_t budget_ns; /* -1: not used yet (the full budget) */
  uint32_t waits;    /* since the last probe at full budget */
  uint32_t probe;    /* waits between probes: doubles while probes miss */
} luashm_spin;

#define LUASHM_SPIN_INIT \
  { -1, 0, 0 }

/* The full budget in nanoseconds: LUASHM_SPIN_US (microseconds, 0 turns spinning off) as the
   process found it at its first wait, else the default. */
int64_t luashm_spin_full(void);

/* Spins while *word == val, for at most sp's budget and what is left of the deadline d (NULL:
   no deadline), stopping at once when an interrupt is pending. Returns 1 when the word moved
   (a hit), 0 otherwise; adapts sp's budget either way. */
int luashm_spin_while64(luashm_spin *sp, const uint64_t *word, uint64_t val,
                        const luashm_deadline *d);
int luashm_spin_while32(luashm_spin *sp, const uint32_t *word, uint32_t val,
                        const luashm_deadline *d);

/* ---------------------------------------------------------------------------------------
** Robust mutexes
** ------------------------------------------------------------------------------------- */

/* Returned by luashm_mutex_lock when the previous holder died holding the mutex: the caller
   now holds it, it is marked consistent, and what it protects may be half-updated. */
#define LUASHM_OWNER_DIED (-2)

/* Initialises m (in shared memory) process-shared, robust and error-checking. 0 or -1. */
int luashm_mutex_init(pthread_mutex_t *m);

/* 1 when the bytes at m look like a mutex made by luashm_mutex_init; 0 when they cannot be
   handed to pthread_mutex_* (forged or torn bytes would make glibc abort). */
int luashm_mutex_valid(const pthread_mutex_t *m);

/* Locks m until the deadline d (NULL: forever), spinning briefly before it sleeps. Returns 0,
   LUASHM_OWNER_DIED, ETIMEDOUT, EINTR (an interrupt is pending), EDEADLK (this thread holds
   it), or EINVAL (not a valid mutex: see luashm_mutex_valid). */
int luashm_mutex_lock(pthread_mutex_t *m, const luashm_deadline *d);

/* One attempt: 0, LUASHM_OWNER_DIED, EBUSY, EDEADLK or EINVAL. */
int luashm_mutex_trylock(pthread_mutex_t *m);

/* Unlocks: 0, EPERM (not held by this thread) or EINVAL. */
int luashm_mutex_unlock(pthread_mutex_t *m);

/* 1 when some thread holds m (a racy look, for __tostring and the block tool). */
int luashm_mutex_held(const pthread_mutex_t *m);

#endif
