/*
** The Dict's engine: a hash table of string keys and scalar values in a zone of fixed size
** (the bytes of one shared block after its luashm header), addressed by offsets only, shared by
** every process that maps it. Plain C, no Lua (bindings/dict.c is the Lua type; the fuzz target
** drives this through it).
**
** The zone is cut into stripes (1 to 64, a power of two, about 512 KiB each); a key's hash picks
** its stripe, and a stripe is a complete small table with its own robust mutex (the sync core),
** hash index, LRU list (second chance), allocator, free-space count and undo log, so that
** workers touching keys of different stripes never wait for each other. Every change to a
** stripe's shared words is logged (the word's offset and old value) before it is made; the log
** is emptied when the operation is complete (its commit). A process killed inside an operation leaves its log
** behind: the next process to lock the stripe gets the mutex's owner-died report and undoes the
** log in reverse, so the stripe is as it was before the half-done operation. flush_all is one
** store (the zone's generation); a stripe whose generation is behind is emptied (a redo that can
** be repeated) by whoever locks it next. Bytes copied without the log (a new entry's key and
** value) only ever go into a block that was free when the operation began: an operation never
** allocates after it frees (the entry a set replaces is unlinked in the same step and freed
** last). Room-making steps (evictions) commit on their own, so a set killed after evicting
** leaves those entries evicted.
**
** A key's 64-bit hash (seeded per dict from the kernel's random source) picks its stripe by its
** top bits and its bucket by its low ones. Everything in the zone is a 32-bit offset inside its
** stripe (the block maps at a different address in each process). A stripe's heap blocks carry
** boundary tags, so that freeing coalesces neighbours; allocation takes the smallest free list
** whose blocks all fit. The byte layout is in zone_impl.h.
**
** Every byte of the zone is untrusted: the geometry is computed from the block's size and
** checked against the zone's header once, at open; every offset, size, length and link read from
** the zone is validated before it is followed, and every loop is bounded by the geometry. A
** forged zone gives ZONE_CORRUPT, never a wild access.
*/
#ifndef LUASHM_ZONE_H
#define LUASHM_ZONE_H

#include <stddef.h>
#include <stdint.h>

#define ZONE_KEY_MAX 65535             /* bytes */
#define ZONE_CAPACITY_MAX (1ULL << 36) /* bytes: stripes stay under 2^31 (32-bit offsets) */
#define ZONE_NEVER 0                   /* expires: never */

/* Outcomes. Every locked operation releases its locks before it returns. */
enum {
  ZONE_OK = 0,
  ZONE_NOTFOUND, /* no live entry */
  ZONE_EXISTS,   /* add: a live entry is there */
  ZONE_NOMEM,    /* safe_set: no room without evicting a live entry */
  ZONE_SMALLBUF, /* the caller's buffer is too small: *need says how much; nothing changed */
  ZONE_NOTNUM,   /* incr: the value is not a number (its type in out->type) */
  ZONE_CORRUPT,  /* the zone's bytes are inconsistent: z->why says where */
  ZONE_LOCKFAIL, /* a stripe's mutex is not a valid mutex */
  ZONE_INTR      /* an interrupt is pending (sync.h) */
};

/* Value types, as stored. */
enum { ZONE_NIL = 0, ZONE_BOOL, ZONE_INT, ZONE_FLOAT, ZONE_STR };

typedef struct zone_value {
  int type;
  int64_t i;     /* ZONE_BOOL (0/1), ZONE_INT */
  double f;      /* ZONE_FLOAT */
  const char *s; /* ZONE_STR: the bytes (in: the caller's; out: the caller's buffer) */
  size_t len;
} zone_value;

/* A process's handle on a zone: its geometry, computed from the size and checked at open, so
   that nothing in it is read from the shared bytes again. */
typedef struct zone {
  unsigned char *base; /* the zone's first byte */
  uint64_t capacity;   /* bytes of the zone */
  uint32_t nshards, shard_bits;
  uint32_t shard_bytes;
  uint32_t nbuckets;
  uint32_t heap_off, heap_end; /* stripe-relative */
  uint64_t seed;               /* the hash's seed (fixed at creation) */
  const char *why;             /* the cause of the last ZONE_CORRUPT */
  int shard;                   /* the stripe of the last ZONE_LOCKFAIL or ZONE_CORRUPT */
} zone;

/* The smallest zone that holds its own index and a useful heap, in bytes. */
uint64_t zone_min_capacity(void);

/* The largest string value (bytes) that a key of klen bytes can ever hold in z. */
uint64_t zone_max_value(const zone *z, size_t klen);

/* Formats capacity bytes at p (zero-filled) as an empty zone, with a random hash seed. 0, or -1
   when a mutex cannot be made. capacity must be zone_min_capacity()..ZONE_CAPACITY_MAX. */
int zone_format(unsigned char *p, uint64_t capacity);

/* Opens the zone of size bytes at p (untrusted): 0 and z filled, or -1 with the cause in why. */
int zone_open(zone *z, unsigned char *p, uint64_t size, const char **why);

/* Monotonic nanoseconds (CLOCK_MONOTONIC: one clock for every process of the machine). */
int64_t zone_now(void);

/* The operations. A key is 1..ZONE_KEY_MAX bytes (checked by the caller). ttl_ns is a time to
   live in nanoseconds, 0 for none. */

/* get: ZONE_OK with *out (a string copied into buf, cap bytes), ZONE_NOTFOUND (*stale 1 when an
   expired entry was found and removed), ZONE_SMALLBUF (*need). Marks the entry used (the
   eviction walk then gives it a second chance). */
int zone_get(zone *z, const char *k, size_t klen, zone_value *out, char *buf, size_t cap,
             size_t *need, int *stale);

/* How a store treats an existing entry and a full stripe. */
enum { ZONE_SET, ZONE_SAFE_SET, ZONE_ADD, ZONE_REPLACE };

/* set (v->type ZONE_NIL deletes), safe_set, add, replace: ZONE_OK (*evicted 1 when live entries
   were evicted to make room), ZONE_EXISTS, ZONE_NOTFOUND, ZONE_NOMEM. The caller has checked
   that the entry can fit (zone_max_value). */
int zone_store(zone *z, int how, const char *k, size_t klen, const zone_value *v, int64_t ttl_ns,
               int *evicted);

/* incr: adds n (ZONE_INT or ZONE_FLOAT) to the number at k; ZONE_OK with *out. An absent key
   starts from *init (then stored with ttl_ns) or gives ZONE_NOTFOUND when init is NULL. */
int zone_incr(zone *z, const char *k, size_t klen, const zone_value *n, const zone_value *init,
              int64_t ttl_ns, zone_value *out, int *evicted);

/* ttl: ZONE_OK with *left_ns (0: never expires) or ZONE_NOTFOUND. */
int zone_ttl(zone *z, const char *k, size_t klen, int64_t *left_ns);

/* expire: sets (ttl_ns > 0) or clears the expiry; ZONE_OK or ZONE_NOTFOUND. */
int zone_expire(zone *z, const char *k, size_t klen, int64_t ttl_ns);

/* flush_all: every entry goes, at once for every process (one store commits it). */
int zone_flush_all(zone *z);

/* flush_expired: removes up to max (0: all) expired entries; *n says how many. */
int zone_flush_expired(zone *z, uint64_t max, uint64_t *n);

/* A snapshot of up to max (0: all) live entries, taken with every stripe locked, written to buf
   as records: u32 klen, u8 type, u32 vlen (bytes that follow, native order), key, value (8
   bytes for numbers, 1 for booleans, the bytes of a string); without values, u32 klen and key.
   ZONE_OK with *used and *count, or ZONE_SMALLBUF with *need (nothing written is valid). */
int zone_snapshot(zone *z, int values, uint64_t max, unsigned char *buf, size_t cap, size_t *used,
                  size_t *need, uint64_t *count);

/* count: live entries; free_space: bytes in free blocks (every stripe locked). */
int zone_count(zone *z, uint64_t *n);
int zone_free_space(zone *z, uint64_t *n);

/* Statistics that the check reports. */
typedef struct zone_stats {
  uint64_t entries, free_bytes, recovered, evicted, shards;
} zone_stats;

/* Walks the whole zone with every stripe locked and verifies every invariant (blocks tile each
   heap, free lists and their map, coalescing, footers, hash chains, LRU links, counts, an empty
   undo log). ZONE_OK with *st, or ZONE_CORRUPT with the first violation in z->why. */
int zone_check(zone *z, zone_stats *st);

/* Entries and bytes in use, read without locking (the block tool and __tostring). p and size as
   for zone_open; -1 when the zone does not open. */
int zone_peek(unsigned char *p, uint64_t size, uint64_t *entries, uint64_t *used);

/* Fault injection for the tests: after n more crash points (each logged store, each commit,
   the middle of each copy and of each stripe reset), this process kills itself with SIGKILL.
   0 disarms. Returns the crash points passed since the previous call. Process-local (a
   forked child inherits the countdown, as it inherits everything). */
long zone_crash_after(long n);

#endif
