/*
** The Channel: a multi-producer multi-consumer FIFO of encoded values (codec.h) in its own
** self-describing block. shm.channel, the Channel's methods and metatable, and its kind.
**
** Block layout (after the 64-byte luashm header, kind "channel", version 1):
**   64  u64 capacity     bytes of ring, a multiple of 8; the block is RING_OFF + capacity bytes
**   72  u64 head         bytes ever received (monotonic; head % capacity is the read offset)
**   80  u64 tail         bytes ever sent
**   88  u32 shutdown     set by ch:shutdown()
**   92  u32 recovered    times a process died holding the lock and the channel was recovered
**   96  u32 not_empty    futex sequence that receivers sleep on
**  100  u32 not_full     futex sequence that senders sleep on
**  104  u32 recv_waiting receivers asleep (so senders only make a syscall when someone waits)
**  108  u32 send_waiting senders asleep
**  112  u64 count        messages queued
**  128  pthread_mutex_t  process-shared, robust
**  256  ring: records of [u32 len][u32 ~len][len bytes, padded to 8]
**
** Every field is untrusted: the object keeps the capacity it validated at open time, and each
** operation checks head, tail and the record it reads against it before copying a byte.
** Sleeping uses futexes rather than process-shared condition variables: glibc's condition
** variables can hang every later signaller when a waiter is killed, and a killed waiter here
** only leaves a stale recv_waiting/send_waiting count (a spare wake syscall, never a hang).
**
** A message is committed by the single store that advances tail after its bytes are in the
** ring, so a sender killed mid-copy leaves no trace: the next process to lock gets EOWNERDEAD,
** marks the mutex consistent and carries on; the partial message is simply never seen. It is
** taken off by the single store that advances head, made only after a receiver decoded it and
** found it still at the head (the delivery contract: see channel_take_value). Waiters spin
** on the other side's index before they sleep (sync.h), uncounted as waiters.
*/
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>

#include "codec.h"
#include "kinds.h"
#include "npy.h"
#include "sync.h"

#define LUASHM_CHANNEL "luashm.Channel"
#define CHANNEL_VERSION 1
#define RING_OFF 256
#define DEFAULT_CAPACITY (64 * 1024)
#define RECORD_HEAD 8
#define SMALL_MESSAGE 1024 /* received into the C stack; larger ones into a userdata */

typedef struct chan_shared {
  uint64_t capacity;
  uint64_t head;
  uint64_t tail;
  uint32_t shutdown;
  uint32_t recovered;
  uint32_t not_empty;
  uint32_t not_full;
  uint32_t recv_waiting;
  uint32_t send_waiting;
  uint64_t count;
  uint64_t reserved;
  pthread_mutex_t mu;
} chan_shared;

_Static_assert(sizeof(chan_shared) + LUASHM_HEADER_SIZE <= RING_OFF, "channel layout");
_Static_assert(offsetof(chan_shared, mu) == 64, "channel layout: mutex at block offset 128");

typedef struct channel {
  luashm_object head;
  chan_shared *s;
  unsigned char *ring;
  uint64_t cap;
  luashm_spin recv_spin, send_spin; /* this handle's adaptive spin budgets (sync.h) */
} channel;

/* Outcomes of the locked operations; errors are raised only after the lock is released. */
enum { CH_OK, CH_TIMEOUT, CH_SHUTDOWN, CH_TOOBIG, CH_CORRUPT, CH_LOCKFAIL, CH_INTR, CH_TAKEN };

/* ---------------------------------------------------------------------------------------
** The ring (used locked; every index checked against the capacity kept at open)
** ------------------------------------------------------------------------------------- */

static int ring_sane(const channel *ch, uint64_t head, uint64_t tail) {
  return tail - head <= ch->cap && head % 8 == 0 && tail % 8 == 0;
}

static uint64_t record_size(size_t len) {
  return RECORD_HEAD + (((uint64_t)len + 7) & ~(uint64_t)7);
}

static void ring_copy_in(channel *ch, uint64_t pos, const void *src, size_t len) {
  uint64_t off = pos % ch->cap, first = ch->cap - off;
  if (first >= len) {
    memcpy(ch->ring + off, src, len);
  } else {
    memcpy(ch->ring + off, src, (size_t)first);
    memcpy(ch->ring, (const unsigned char *)src + first, len - (size_t)first);
  }
}

static void ring_copy_out(const channel *ch, uint64_t pos, void *dst, size_t len) {
  uint64_t off = pos % ch->cap, first = ch->cap - off;
  if (first >= len) {
    memcpy(dst, ch->ring + off, len);
  } else {
    memcpy(dst, ch->ring + off, (size_t)first);
    memcpy((unsigned char *)dst + first, ch->ring, len - (size_t)first);
  }
}

/* ---------------------------------------------------------------------------------------
** Locking and sleeping
** ------------------------------------------------------------------------------------- */

/* Locks (CH_OK, CH_INTR or CH_LOCKFAIL), recovering from a holder that died: its half-done
   work is invisible (see the top of the file), so the state is consistent once the mutex is
   marked so; everyone asleep is woken in case the dead process was about to wake them. */
static int chan_lock(channel *ch) {
  chan_shared *s = ch->s;
  int rc = luashm_mutex_lock(&s->mu, NULL);
  uint64_t pos, n = 0;
  if (LUASHM_LIKELY(rc == 0)) return CH_OK;
  if (rc == EINTR) return CH_INTR;
  if (rc != LUASHM_OWNER_DIED) return CH_LOCKFAIL;
  s->recovered++;
  /* The dead holder may have moved head or tail without fixing count: count the records. */
  for (pos = s->head; ring_sane(ch, s->head, s->tail) && pos != s->tail; n++) {
    uint32_t hdr[2];
    ring_copy_out(ch, pos, hdr, sizeof hdr);
    if (hdr[1] != ~hdr[0] || record_size(hdr[0]) > s->tail - pos) break;
    pos += record_size(hdr[0]);
  }
  s->count = n;
  __atomic_add_fetch(&s->not_empty, 1, __ATOMIC_SEQ_CST);
  __atomic_add_fetch(&s->not_full, 1, __ATOMIC_SEQ_CST);
  luashm_futex_wake(&s->not_empty, INT_MAX);
  luashm_futex_wake(&s->not_full, INT_MAX);
  return CH_OK;
}

static void chan_unlock(chan_shared *s) {
  luashm_mutex_unlock(&s->mu);
}

/* Called locked; sleeps on word (counted in *waiting) until it moves past the value it had
   here or the deadline passes, then relocks (CH_OK), or returns unlocked (CH_INTR,
   CH_LOCKFAIL). */
static int chan_sleep(channel *ch, uint32_t *word, uint32_t *waiting, const luashm_deadline *d) {
  chan_shared *s = ch->s;
  uint32_t seq = __atomic_load_n(word, __ATOMIC_SEQ_CST);
  int rc;
  (*waiting)++;
  chan_unlock(s);
  rc = luashm_futex_wait(word, seq, d);
  /* Relocks even when interrupted, to take this waiter off the count (if that fails too, the
     count stays one high: a spare wake syscall later, never a hang). */
  if (chan_lock(ch) != CH_OK) return rc == EINTR ? CH_INTR : CH_LOCKFAIL;
  (*waiting)--;
  if (rc == EINTR) {
    chan_unlock(s);
    return CH_INTR;
  }
  return CH_OK;
}

/* Called locked when what the caller waits for is not there: the first time (*spun 0) it
   spins unlocked while the peer's index keeps its value (sync.h: a spinner is not counted as
   waiting, so the peer makes no wake syscall), later times it sleeps on word. Returns locked
   (CH_OK: look again) or unlocked (CH_INTR, CH_LOCKFAIL). */
static int chan_wait(channel *ch, luashm_spin *sp, uint64_t *index, uint32_t *word,
                     uint32_t *waiting, const luashm_deadline *d, int *spun) {
  uint64_t seen = *index;
  if (*spun || luashm_spin_full() == 0) return chan_sleep(ch, word, waiting, d);
  *spun = 1;
  chan_unlock(ch->s);
  luashm_spin_while64(sp, index, seen, d);
  return chan_lock(ch);
}

/* Appends one message, waiting for room until the deadline. */
static int chan_put(channel *ch, const char *msg, size_t len, double timeout, int die_midway) {
  chan_shared *s = ch->s;
  uint64_t need = record_size(len), head, tail;
  uint32_t hdr[2];
  luashm_deadline d;
  int wake, rc, spun = 0;
  luashm_deadline_in(&d, timeout);
  if ((rc = chan_lock(ch)) != CH_OK) return rc;
  for (;;) {
    head = s->head;
    tail = s->tail;
    if (!ring_sane(ch, head, tail)) {
      chan_unlock(s);
      return CH_CORRUPT;
    }
    if (s->shutdown) {
      chan_unlock(s);
      return CH_SHUTDOWN;
    }
    if (ch->cap - (tail - head) >= need) break;
    if (luashm_deadline_passed(&d)) {
      chan_unlock(s);
      return CH_TIMEOUT;
    }
    rc = chan_wait(ch, &ch->send_spin, &s->head, &s->not_full, &s->send_waiting, &d, &spun);
    if (rc != CH_OK) return rc;
  }
  hdr[0] = (uint32_t)len;
  hdr[1] = ~(uint32_t)len;
  ring_copy_in(ch, tail, hdr, sizeof hdr);
  if (die_midway) { /* fault injection: die holding the lock with the message half written */
    ring_copy_in(ch, tail + RECORD_HEAD, msg, len / 2);
    raise(SIGKILL);
  }
  ring_copy_in(ch, tail + RECORD_HEAD, msg, len);
  __atomic_store_n(&s->tail, tail + need, __ATOMIC_RELEASE); /* the commit */
  s->count++;
  wake = s->recv_waiting > 0;
  if (wake) __atomic_add_fetch(&s->not_empty, 1, __ATOMIC_SEQ_CST);
  chan_unlock(s);
  if (wake) luashm_futex_wake(&s->not_empty, 1);
  return CH_OK;
}

/* Copies the next message into buf (bufcap bytes) WITHOUT taking it, waiting until the
   deadline; *at is the head it was found at, for chan_settle. CH_TOOBIG sets *len to its size,
   so the caller can find room and come back. */
static int chan_peek(channel *ch, unsigned char *buf, size_t bufcap, size_t *len, uint64_t *at,
                     const luashm_deadline *d) {
  chan_shared *s = ch->s;
  uint64_t head, tail;
  uint32_t hdr[2];
  int rc, spun = 0;
  if ((rc = chan_lock(ch)) != CH_OK) return rc;
  for (;;) {
    head = s->head;
    tail = s->tail;
    if (!ring_sane(ch, head, tail)) {
      chan_unlock(s);
      return CH_CORRUPT;
    }
    if (tail != head) break;
    if (s->shutdown) {
      chan_unlock(s);
      return CH_SHUTDOWN;
    }
    if (luashm_deadline_passed(d)) {
      chan_unlock(s);
      return CH_TIMEOUT;
    }
    rc = chan_wait(ch, &ch->recv_spin, &s->tail, &s->not_empty, &s->recv_waiting, d, &spun);
    if (rc != CH_OK) return rc;
  }
  ring_copy_out(ch, head, hdr, sizeof hdr);
  if (hdr[1] != ~hdr[0] || record_size(hdr[0]) > tail - head) {
    chan_unlock(s);
    return CH_CORRUPT;
  }
  *len = hdr[0];
  *at = head;
  if (hdr[0] > bufcap) {
    chan_unlock(s);
    return CH_TOOBIG;
  }
  ring_copy_out(ch, head + RECORD_HEAD, buf, hdr[0]);
  chan_unlock(s);
  return CH_OK;
}

/* After a peek at head `at` (len bytes of message): when the message is still the head, takes
   it off the ring if take (first adding one to *counted, when given: the fault soak's count,
   made in the same critical section as the commit) and returns CH_OK; returns CH_TAKEN when
   another receiver took it meanwhile. head only grows, so an equal head is the same message. */
static int chan_settle(channel *ch, uint64_t at, size_t len, int take, int64_t *counted) {
  chan_shared *s = ch->s;
  uint64_t head, tail, rec = record_size(len);
  int wake, rc;
  if ((rc = chan_lock(ch)) != CH_OK) return rc;
  head = s->head;
  tail = s->tail;
  if (head != at) {
    chan_unlock(s);
    return CH_TAKEN;
  }
  if (!ring_sane(ch, head, tail) || rec > tail - head) {
    chan_unlock(s);
    return CH_CORRUPT;
  }
  if (!take) {
    chan_unlock(s);
    return CH_OK;
  }
  if (counted != NULL) __atomic_add_fetch(counted, 1, __ATOMIC_SEQ_CST);
  __atomic_store_n(&s->head, head + rec, __ATOMIC_RELEASE); /* the commit */
  if (s->count > 0) s->count--;
  wake = s->send_waiting > 0;
  if (wake) __atomic_add_fetch(&s->not_full, 1, __ATOMIC_SEQ_CST);
  chan_unlock(s);
  if (wake) luashm_futex_wake(&s->not_full, INT_MAX); /* freed room may suit any of them */
  return CH_OK;
}

/* ---------------------------------------------------------------------------------------
** The object
** ------------------------------------------------------------------------------------- */

static channel *tochannel(lua_State *L, int i) {
  return (channel *)luashm_tokind(L, i, &luashm_kind_channel);
}

static channel *checkchannel(lua_State *L, int i) {
  channel *ch = tochannel(L, i);
  if (LUASHM_UNLIKELY(ch->head.b->data == NULL))
    luashm_error(L, "channel '%s' is closed", ch->head.b->name);
  return ch;
}

/* Raises the error for a failed locked operation (the lock is already released). */
static int channel_fail(lua_State *L, channel *ch, const char *op, int rc) {
  const char *name = ch->head.b->name;
  if (rc == CH_INTR) return luashm_interrupted(L);
  if (rc == CH_SHUTDOWN) return luashm_error(L, "channel '%s' is shut down", name);
  if (rc == CH_LOCKFAIL)
    return luashm_error(L, "%s '%s': the channel's lock is unusable (the block was overwritten)",
                        op, name);
  return luashm_error(L,
                      "%s '%s': channel is corrupted (its ring indexes or a record header "
                      "are inconsistent)",
                      op, name);
}

/* Replaces the Block at the top of the stack with a Channel over it, validating the layout. */
static int channel_wrap(lua_State *L, int view) {
  luashm_block *b = luashm_toblock(L, -1);
  chan_shared *s;
  channel *ch;
  uint64_t cap;
  (void)view;
  if (!luashm_header_is(b->data, b->size, "channel", CHANNEL_VERSION) || b->size <= RING_OFF)
    return luashm_error(L, "open '%s': not a channel", b->name);
  s = (chan_shared *)(b->data + LUASHM_HEADER_SIZE);
  cap = __atomic_load_n(&s->capacity, __ATOMIC_ACQUIRE);
  if (cap == 0 || cap % 8 != 0 || cap != b->size - RING_OFF)
    return luashm_error(L, "open '%s': malformed channel (capacity %I in a block of %I bytes)",
                        b->name, (lua_Integer)cap, (lua_Integer)b->size);
  if (!luashm_mutex_valid(&s->mu))
    return luashm_error(L, "open '%s': malformed channel (its lock is not a valid mutex)", b->name);
  ch = (channel *)lua_newuserdatauv(L, sizeof(channel), 1);
  ch->head.kind = &luashm_kind_channel;
  ch->head.b = b;
  ch->s = s;
  ch->ring = b->data + RING_OFF;
  ch->cap = cap;
  ch->recv_spin = ch->send_spin = (luashm_spin)LUASHM_SPIN_INIT;
  luaL_setmetatable(L, LUASHM_CHANNEL);
  lua_insert(L, -2);
  lua_setiuservalue(L, -2, 1);
  return 1;
}

static int channel_probe(const unsigned char *p, size_t size) {
  return luashm_header_is(p, size, "channel", CHANNEL_VERSION);
}

static void channel_describe(const unsigned char *p, size_t size, char *out, size_t n) {
  chan_shared s;
  if (size < LUASHM_HEADER_SIZE + sizeof s) {
    snprintf(out, n, "channel (malformed)");
    return;
  }
  memcpy(&s, p + LUASHM_HEADER_SIZE, sizeof s);
  snprintf(out, n, "channel, %llu messages%s", (unsigned long long)s.count,
           s.shutdown ? ", shut down" : "");
}

static const char *const channel_options[] = {LUASHM_BLOCK_OPTIONS, "capacity", NULL};

static int channel_new(lua_State *L) {
  lua_Integer cap = DEFAULT_CAPACITY;
  int hasopts = luashm_checkoptions(L, 1, "channel", channel_options);
  luashm_block *b;
  chan_shared *s;
  if (hasopts && lua_getfield(L, 1, "capacity") != LUA_TNIL) {
    int isint;
    cap = lua_tointegerx(L, -1, &isint);
    if (!isint || cap < 64 || cap > ((lua_Integer)1 << 40))
      return luashm_error(L,
                          "channel: opts.capacity must be an integer from 64 to 2^40 (bytes "
                          "of buffer)");
  }
  lua_settop(L, 1);
  cap = (cap + 7) & ~(lua_Integer)7;
  b = luashm_block_new(L, (size_t)(RING_OFF + cap), hasopts ? 1 : 0);
  s = (chan_shared *)(b->data + LUASHM_HEADER_SIZE);
  s->capacity = (uint64_t)cap;
  if (luashm_mutex_init(&s->mu) != 0) {
    char ignored[LUASHM_ERRLEN];
    luashm_block_unlink(b, ignored);
    return luashm_error(L, "channel '%s': cannot make its lock", b->name);
  }
  luashm_header_init(b->data, "channel", CHANNEL_VERSION);
  return channel_wrap(L, 0);
}

/* ---------------------------------------------------------------------------------------
** Methods
** ------------------------------------------------------------------------------------- */

/* The encoder's limit, reached: the message cannot fit, whatever the rest of it holds. */
static void channel_toobig(lua_State *L, size_t atleast, void *ud) {
  channel *ch = (channel *)ud;
  if (atleast > UINT32_MAX && ch->cap - RECORD_HEAD > UINT32_MAX)
    luashm_error(L, "send '%s': a message larger than 4 GiB cannot be sent", ch->head.b->name);
  luashm_error(L,
               "send '%s': a message of at least %I bytes does not fit the channel's capacity "
               "of %I bytes (make it larger with opts.capacity, or send a Block by name)",
               ch->head.b->name, (lua_Integer)atleast, (lua_Integer)ch->cap);
}

static int channel_put_value(lua_State *L, int die_midway) {
  channel *ch = checkchannel(L, 1);
  double timeout = luashm_opttimeout(L, 3, "send", ch->head.b->name);
  uint64_t max = ch->cap - RECORD_HEAD; /* record_size(len) <= cap */
  luaL_Buffer buf;
  size_t len;
  int rc;
  lua_settop(L, 2);
  luaL_buffinit(L, &buf);
  /* The encoder stops as soon as the message passes what can fit: a huge value (or a nest of
     shared tables) costs no more than the capacity to refuse. */
  luashm_encode_max(L, 2, 1, &buf, "send", max < UINT32_MAX ? (size_t)max : UINT32_MAX,
                    channel_toobig, ch);
  len = luaL_bufflen(&buf);
  ch = checkchannel(L, 1); /* a kind's view function ran during encoding */
  rc = chan_put(ch, luaL_buffaddr(&buf), len, timeout, die_midway);
  if (rc == CH_OK) {
    lua_pushboolean(L, 1);
    return 1;
  }
  if (rc != CH_TIMEOUT) return channel_fail(L, ch, "send", rc);
  lua_pushboolean(L, 0);
  lua_pushliteral(L, "timeout");
  return 2;
}

static int channel_send(lua_State *L) {
  return channel_put_value(L, 0);
}

/* ch:_die_in_send(v): the fault-injection point of the robustness tests. The calling process
   kills itself with SIGKILL while holding the channel's lock, v's message half written. */
static int channel_die_in_send(lua_State *L) {
  return channel_put_value(L, 1);
}

/* The fault soak's additions to a receive (see channel_recv_counted), or none. */
typedef struct recv_hook {
  int counts; /* stack index of the i64 Array of counts */
  int die;
} recv_hook;

/* Decodes a message (light userdata 1, length 2) under lua_pcall, so that a failure leaves the
   message's fate to the caller. */
static int recv_decode(lua_State *L) {
  const unsigned char *p = (const unsigned char *)lua_touserdata(L, 1);
  if (luashm_decode(L, p, (size_t)lua_tointeger(L, 2), "recv") != 1)
    return luashm_error(L, "recv: malformed message (not one value)");
  return 1;
}

/* A message that did not decode (its error at the top): a transient failure (no file
   descriptors, memory or room in /dev/shm left) leaves it at the head for the next recv, any
   other takes it off, so that it cannot block the channel for ever; both raise an error that
   says which and names the cause. Returns CH_TAKEN, having popped the error, when another
   receiver took the message meanwhile: then it was never ours. */
static int recv_failed(lua_State *L, channel *ch, uint64_t at, size_t len, int status, int e) {
  int transient = status == LUA_ERRMEM || e == EMFILE || e == ENFILE || e == ENOMEM ||
                  e == ENOSPC || e == EAGAIN;
  int rc = chan_settle(ch, at, len, !transient, NULL);
  const char *cause;
  if (rc == CH_TAKEN) {
    lua_pop(L, 1);
    return rc;
  }
  if (rc != CH_OK) return channel_fail(L, ch, "recv", rc);
  cause = lua_tostring(L, -1);
  if (cause == NULL) cause = "an error object that is not a string";
  if (strncmp(cause, "luashm: ", 8) == 0) cause += 8;
  if (transient)
    return luashm_error(L, "recv '%s': cannot receive the next message now; it stays queued (%s)",
                        ch->head.b->name, cause);
  return luashm_error(L,
                      "recv '%s': the next message cannot be received and was taken off the "
                      "channel (%s)",
                      ch->head.b->name, cause);
}

/* The soak's count of the message at the top (an integer k, or a table whose [1] is k), or
   NULL when it has none. The Array is looked at again: finalizers run during the decode. */
static int64_t *hook_count(lua_State *L, const recv_hook *hook) {
  luashm_arrayinfo counts;
  lua_Integer k;
  int isint;
  if (!luashm_toarray(L, hook->counts, &counts)) return NULL;
  if (lua_type(L, -1) == LUA_TTABLE) {
    lua_rawgeti(L, -1, 1);
    k = lua_tointegerx(L, -1, &isint);
    lua_pop(L, 1);
  } else {
    k = lua_tointegerx(L, -1, &isint);
  }
  if (!isint || k < 1 || (size_t)k > counts.count) return NULL;
  return (int64_t *)counts.data + (k - 1);
}

/* Receives one message and pushes its value (returns 1), or returns 0 having pushed nothing
   with *rc CH_TIMEOUT or CH_SHUTDOWN. The delivery contract (API.md): the message is copied
   out without moving the head, decoded outside the lock, and taken off only if it is still
   the head (chan_settle), so a receiver killed anywhere before that commit leaves it to the
   next receiver, and one that lost the race to another receiver simply looks again. Messages
   too big for the C stack buffer are taken into a userdata on the stack, sized by a first
   look at the message. */
static int channel_take_value(lua_State *L, channel *ch, const luashm_deadline *d, int *rc,
                              const recv_hook *hook) {
  unsigned char small[SMALL_MESSAGE];
  unsigned char *buf = small;
  size_t cap = sizeof small, len = 0;
  uint64_t at = 0;
  int top = lua_gettop(L), status;
  for (;;) {
    *rc = chan_peek(ch, buf, cap, &len, &at, d);
    if (*rc == CH_TOOBIG) {
      lua_settop(L, top);
      buf = (unsigned char *)lua_newuserdatauv(L, len, 0);
      cap = len;
      continue;
    }
    if (*rc == CH_TIMEOUT || *rc == CH_SHUTDOWN) return 0;
    if (*rc != CH_OK) channel_fail(L, ch, "recv", *rc);
    luashm_attach_errno = 0;
    lua_pushcfunction(L, recv_decode);
    lua_pushlightuserdata(L, buf);
    lua_pushinteger(L, (lua_Integer)len);
    status = lua_pcall(L, 2, 1, 0);
    /* Finalizers may have run Lua code during the decode, and closed this handle. */
    ch = checkchannel(L, 1);
    if (status != LUA_OK) {
      if (recv_failed(L, ch, at, len, status, luashm_attach_errno) == CH_TAKEN) continue;
    }
    if (hook != NULL && hook->die) raise(SIGKILL); /* fault injection: decoded, not taken */
    *rc = chan_settle(ch, at, len, 1, hook != NULL ? hook_count(L, hook) : NULL);
    if (*rc == CH_TAKEN) {
      lua_pop(L, 1);
      continue;
    }
    if (*rc != CH_OK) channel_fail(L, ch, "recv", *rc);
    if (lua_gettop(L) > top + 1) lua_replace(L, top + 1); /* over the buffer userdata */
    return 1;
  }
}

/* recv's results: the value, or nil and why there is none. */
static int recv_results(lua_State *L, channel *ch, const luashm_deadline *d,
                        const recv_hook *hook) {
  int rc;
  if (channel_take_value(L, ch, d, &rc, hook)) return 1;
  lua_pushnil(L);
  lua_pushstring(L, rc == CH_SHUTDOWN ? "shutdown" : "timeout");
  return 2;
}

static int channel_recv(lua_State *L) {
  channel *ch = checkchannel(L, 1);
  luashm_deadline d;
  luashm_deadline_in(&d, luashm_opttimeout(L, 2, "recv", ch->head.b->name));
  lua_settop(L, 1);
  return recv_results(L, ch, &d, NULL);
}

/* ch:_recv_counted(counts, timeout [, die]): the fault soak's receive (tests/test_faults.lua).
   As recv, and when the message is an integer k (or a table whose [1] is k) and counts an i64
   or u64 Array, counts[k] grows by one in the critical section of the commit, so no SIGKILL
   can fall between the two. With die, the caller SIGKILLs itself once the message is
   decoded, before the commit: the fault-injection point of a receiver killed inside recv. */
static int channel_recv_counted(lua_State *L) {
  channel *ch = checkchannel(L, 1);
  luashm_arrayinfo counts;
  recv_hook hook;
  luashm_deadline d;
  if (!luashm_toarray(L, 2, &counts) || (counts.dtype != LUASHM_I64 && counts.dtype != LUASHM_U64))
    return luaL_typeerror(L, 2, "i64 Array");
  hook.counts = 2;
  luashm_deadline_in(&d, luashm_opttimeout(L, 3, "recv", ch->head.b->name));
  hook.die = lua_toboolean(L, 4);
  lua_settop(L, 2);
  return recv_results(L, ch, &d, &hook);
}

/* ch:shutdown(): end of stream for every process. Idempotent. */
static int channel_shutdown(lua_State *L) {
  channel *ch = checkchannel(L, 1);
  chan_shared *s = ch->s;
  int rc = chan_lock(ch);
  if (rc != CH_OK) return channel_fail(L, ch, "shutdown", rc);
  s->shutdown = 1;
  __atomic_add_fetch(&s->not_empty, 1, __ATOMIC_SEQ_CST);
  __atomic_add_fetch(&s->not_full, 1, __ATOMIC_SEQ_CST);
  chan_unlock(s);
  luashm_futex_wake(&s->not_empty, INT_MAX);
  luashm_futex_wake(&s->not_full, INT_MAX);
  return 0;
}

/* The iterator of ch:iter(): the next value, skipping nil messages (a nil would end the loop),
   and nil once the channel is shut down and drained. */
static int channel_iter_next(lua_State *L) {
  luashm_deadline forever = {1, {0, 0}};
  int rc;
  lua_settop(L, 0);
  lua_pushvalue(L, lua_upvalueindex(1));
  for (;;) {
    channel *ch = checkchannel(L, 1);
    if (!channel_take_value(L, ch, &forever, &rc, NULL)) return 0;
    if (!lua_isnil(L, -1)) return 1;
    lua_pop(L, 1);
  }
}

static int channel_iter(lua_State *L) {
  checkchannel(L, 1);
  lua_settop(L, 1);
  lua_pushcclosure(L, channel_iter_next, 1);
  return 1;
}

/* Releases this process's mapping (never the channel itself: see shutdown). Idempotent. */
static int channel_close(lua_State *L) {
  luashm_block_close(tochannel(L, 1)->head.b);
  return 0;
}

static int channel_len(lua_State *L) {
  channel *ch = checkchannel(L, 1);
  lua_pushinteger(L, (lua_Integer)__atomic_load_n(&ch->s->count, __ATOMIC_RELAXED));
  return 1;
}

static int channel_tostring(lua_State *L) {
  channel *ch = tochannel(L, 1);
  if (ch->head.b->data == NULL) {
    lua_pushfstring(L, "luashm.Channel '%s' (closed)", ch->head.b->name);
  } else {
    chan_shared *s = ch->s;
    uint64_t used =
        __atomic_load_n(&s->tail, __ATOMIC_RELAXED) - __atomic_load_n(&s->head, __ATOMIC_RELAXED);
    lua_pushfstring(L, "luashm.Channel '%s' (%I messages, %I of %I bytes used%s)", ch->head.b->name,
                    (lua_Integer)__atomic_load_n(&s->count, __ATOMIC_RELAXED), (lua_Integer)used,
                    (lua_Integer)ch->cap,
                    __atomic_load_n(&s->shutdown, __ATOMIC_RELAXED) ? ", shut down" : "");
  }
  return 1;
}

/* Methods first (upvalue 1), then the read-only properties. */
static int channel_index(lua_State *L) {
  channel *ch;
  const char *k;
  lua_pushvalue(L, 2);
  if (lua_rawget(L, lua_upvalueindex(1)) != LUA_TNIL) return 1;
  k = lua_tostring(L, 2);
  if (k == NULL || lua_type(L, 2) != LUA_TSTRING) return 1;
  ch = tochannel(L, 1);
  if (luashm_object_field(L, 1, k)) return 1;
  if (strcmp(k, "capacity") == 0) {
    lua_pushinteger(L, (lua_Integer)ch->cap);
  } else if (strcmp(k, "recovered") == 0) {
    ch = checkchannel(L, 1);
    lua_pushinteger(L, (lua_Integer)__atomic_load_n(&ch->s->recovered, __ATOMIC_RELAXED));
  } else {
    lua_pushnil(L);
  }
  return 1;
}

static int channel_newindex(lua_State *L) {
  channel *ch = tochannel(L, 1);
  return luashm_error(L, "channel '%s': fields are read-only", ch->head.b->name);
}

static const luaL_Reg channel_meth[] = {{"send", channel_send},
                                        {"recv", channel_recv},
                                        {"shutdown", channel_shutdown},
                                        {"iter", channel_iter},
                                        {"close", channel_close},
                                        {"unlink", luashm_object_unlink},
                                        {"_die_in_send", channel_die_in_send},
                                        {"_recv_counted", channel_recv_counted},
                                        {NULL, NULL}};

static const luaL_Reg channel_metameth[] = {{"__close", channel_close},
                                            {"__tostring", channel_tostring},
                                            {"__len", channel_len},
                                            {"__newindex", channel_newindex},
                                            {NULL, NULL}};

static void channel_open(lua_State *L) {
  luashm_newkind(L, &luashm_kind_channel, channel_meth, channel_metameth, channel_index);
  lua_pushcfunction(L, channel_new);
  lua_setfield(L, -2, "channel");
}

const luashm_kind luashm_kind_channel = {"channel",        LUASHM_CHANNEL, "channel",
                                         channel_probe,    channel_wrap,   NULL,
                                         channel_describe, channel_open};
