/*
** What zone.c and zone_check.c share: the zone's layout, the operation context (txn), the
** checked readers of entries and free blocks. Not for other files: zone.h is the interface.
**
** Layout (offsets in bytes; the zone starts after the block's 64-byte luashm header):
**
**   zone header (64 bytes): u64 capacity, u32 nshards, u32 stripe bytes, u32 buckets per
**     stripe, u32 heap offset, u64 hash seed, u64 flush generation
**   stripes, each `stripe bytes` long, 64-aligned; inside a stripe (stripe-relative offsets,
**   x86-64 figures: the mutex's size sets the first two):
**     0     pthread_mutex_t (robust, process-shared)
**     40    u64 undo records in use
**     48    undo log: {u64 offset, u64 old value} [LOG_MAX]
**     2112  u64 generation applied, u64 entries, u64 free bytes, u32 LRU head, u32 LRU tail,
**           u64 recovered, u64 evicted, u64[2] free-list map
**     2240  u32 free-list heads [NCLASS]
**     2752  u32 buckets [nbuckets] (offset of the first entry of each chain, 0 = none)
**     heap  blocks to the end of the stripe: a used block is an entry
**             +0 u32 size | flags, +4 u32 type | used, +8 u32 chain next, +12 u32 hash (low 32
*bits),
**             +16 u32 LRU prev, +20 u32 LRU next, +24 i64 expiry (monotonic ns, 0 = never),
**             +32 u32 key length, +36 u32 value length, +40 key, padded to 8, then value;
**           a free block: +0 u32 size | flags, +8 u32 next, +12 u32 prev, last 8 bytes its size.
*/
#ifndef LUASHM_ZONE_IMPL_H
#define LUASHM_ZONE_IMPL_H

#include <pthread.h>
#include <string.h>

#include "zone.h"

#define LIKELY(x) __builtin_expect(!!(x), 1)
#define UNLIKELY(x) __builtin_expect(!!(x), 0)

/* A compiler barrier: stores stay in program order, which is all a killed process's successor
   needs (the kernel's robust-futex release orders the dead thread's stores before its own). */
#define BARRIER() __atomic_signal_fence(__ATOMIC_SEQ_CST)

#define HEAD_SIZE 64
#define H_CAPACITY 0
#define H_NSHARDS 8
#define H_SHARD_BYTES 12
#define H_NBUCKETS 16
#define H_HEAP_OFF 20
#define H_SEED 24
#define H_GEN 32

#define SHARD_TARGET (512u * 1024) /* bytes per stripe, about: a value may take most of one */
#define SHARD_MAX 64
#define LOG_MAX 128
#define NCLASS 128
#define LAST_EXACT 28 /* classes 0..28 hold one size each: 32..256 bytes */

/* The stripe's first cache line holds what every operation writes: the mutex, the count of
   undo records and the first record (an increment logs one); the rest follows. */
#define S_LOGN ((sizeof(pthread_mutex_t) + 7) & ~(size_t)7)
#define S_LOG (S_LOGN + 8)
#define S_FIELDS ((S_LOG + LOG_MAX * 16 + 63) & ~(size_t)63)
#define S_GEN (S_FIELDS + 0)
#define S_ENTRIES (S_FIELDS + 8)
#define S_FREE (S_FIELDS + 16)
#define S_LRU (S_FIELDS + 24)
#define S_LRU_HEAD (S_FIELDS + 24)
#define S_LRU_TAIL (S_FIELDS + 28)
#define S_RECOVERED (S_FIELDS + 32)
#define S_EVICTED (S_FIELDS + 40)
#define S_MAP (S_FIELDS + 48)
#define S_FREELIST (S_FIELDS + 128)
#define S_BUCKETS (S_FREELIST + NCLASS * 4)
#define SHARD_FIXED S_BUCKETS

#define F_INUSE 1u
#define F_PREVFREE 2u
#define F_NEXT 8
#define F_PREV 12
#define E_TYPE 4
#define E_USED (1u << 8) /* in the type word: used since the eviction walk last passed */
#define E_HNEXT 8
#define E_HASH 12
#define E_PREV 16
#define E_NEXT 20
#define E_EXPIRES 24
#define E_KLEN 32
#define E_VLEN 36
#define ENTRY_HEAD 40
#define ENTRY_MIN 48
#define MIN_FREE 32
#define MIN_HEAP 1024
#define INPLACE_MAX 256  /* a new value up to this size may be rewritten in place... */
#define INPLACE_SLACK 64 /* ...when it leaves less than this unused in the entry's block */

#define PAD8(n) (((n) + 7) & ~(uint64_t)7)
#define SHARD(z, i) ((z)->base + HEAD_SIZE + (size_t)(i) * (z)->shard_bytes)
#define MAX_BLOCKS(z) ((uint64_t)((z)->heap_end - (z)->heap_off) / MIN_FREE)

_Static_assert(S_MAP + 16 <= S_FREELIST && S_BUCKETS % 64 == 0, "stripe layout");

/* A place where the tests may kill this process (zone_crash_after). */
extern long zone_crash_countdown;
void zone_crash_point(void);
#define CRASH_POINT()                                            \
  do {                                                           \
    if (UNLIKELY(zone_crash_countdown != 0)) zone_crash_point(); \
  } while (0)

/* All shared bytes are read and written through these (no aliasing, no alignment traps). */
static inline uint64_t ld64(const unsigned char *p) {
  uint64_t v;
  memcpy(&v, p, 8);
  return v;
}
static inline uint32_t ld32(const unsigned char *p) {
  uint32_t v;
  memcpy(&v, p, 4);
  return v;
}
static inline void st64(unsigned char *p, uint64_t v) {
  memcpy(p, &v, 8);
}
static inline void st32(unsigned char *p, uint32_t v) {
  memcpy(p, &v, 4);
}
/* The word whose bytes 0..3 hold a and 4..7 hold b. */
static inline uint64_t pack2(uint32_t a, uint32_t b) {
  unsigned char w[8];
  memcpy(w, &a, 4);
  memcpy(w + 4, &b, 4);
  return ld64(w);
}

/* The class of a free block of size bytes (a multiple of 8, at least MIN_FREE). */
static inline unsigned class_of(uint32_t size) {
  unsigned f;
  if (size <= 256) return size / 8 - 4;
  f = 31u - (unsigned)__builtin_clz(size);
  return LAST_EXACT + 1 + (f - 8) * 4 + ((size >> (f - 2)) & 3);
}

/* An operation on one locked stripe. */
typedef struct txn {
  zone *z;
  unsigned char *s; /* the stripe */
  uint32_t i;       /* its index */
  uint32_t n;       /* undo records written */
  int64_t now;      /* monotonic ns, read at first need */
  const char *bad;  /* the first inconsistency found: the operation is undone */
} txn;

/* An entry's fields, read once and checked. */
typedef struct ent {
  unsigned char *p;
  uint32_t off, size, hnext, hash, prev, next, klen, vlen;
  int type, used;
  int64_t expires;
} ent;

typedef struct fblk {
  uint32_t off, size, next, prev;
} fblk;

/* Returns -1 from the calling function when x is negative (a check failed: t->bad says why). */
#define TRY(x)              \
  do {                      \
    if ((x) < 0) return -1; \
  } while (0)

/* zone.c: the geometry of a capacity (0, or -1 when it cannot hold a dict); a key's hash. */
int zone_geometry(uint64_t capacity, zone *z);
uint64_t zone_hash(const zone *z, const char *k, size_t n);

/* zone_stripe.c: the undo log. zset stores v at a stripe-relative offset (8-aligned) after
   logging the word's old value; zset32 does so for 4 bytes of a word. zone_commit forgets the
   log (the step is done). zone_bad records the first inconsistency and returns -1: the step
   goes no further, its stores are skipped and zone_finish undoes it. */
void zset(txn *t, uint32_t off, uint64_t v);
void zset32(txn *t, uint32_t off, uint32_t v);
void zone_commit(txn *t);
int zone_bad(txn *t, const char *why);

/* zone_stripe.c: locking. zone_lock_shard locks stripe i and recovers it (undoes a dead
   holder's log, applies a pending flush); ZONE_OK or an error, unlocked. zone_begin starts a
   step on a locked stripe; zone_finish commits it (or undoes it when t->bad) and unlocks,
   returning rc (ZONE_CORRUPT when undone). zone_reset_shard empties a locked stripe (a redo:
   its last store records the zone's generation). */
int zone_lock_shard(zone *z, uint32_t i);
void zone_unlock_shard(zone *z, uint32_t i);
int zone_lock_all(zone *z);
void zone_unlock_all(zone *z);
void zone_begin(txn *t, zone *z, uint32_t i);
int zone_finish(txn *t, int rc);
void zone_reset_shard(zone *z, unsigned char *s);

/* zone_stripe.c: the checked readers (0, or -1 via zone_bad). */
int zone_ent(txn *t, uint32_t off, ent *e);
int zone_free_block(txn *t, uint32_t off, fblk *f);

/* zone_stripe.c: the allocator. zone_alloc: a block of need bytes (a multiple of 8) from the
   free lists, its offset (*got: its size), 0 when none is large enough, -1. zone_free: frees a
   used block, coalescing. zone_room: the size of the free block that freeing e would make. */
int64_t zone_alloc(txn *t, uint32_t need, uint32_t *got);
int zone_free(txn *t, uint32_t off, uint32_t size);
int64_t zone_room(txn *t, const ent *e);

#endif
