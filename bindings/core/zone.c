/*
** The Dict's engine (see zone.h): the geometry, the hash, the chains and the LRU list of each
** stripe, values, and the operations. The storage layer under it (undo log, locking and
** recovery, allocator) is zone_stripe.c; the checker zone_check.c; what they share zone_impl.h.
*/
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "sync.h"
#include "zone_impl.h"

/* ---------------------------------------------------------------------------------------
** Geometry: everything a process needs is computed from the capacity alone
** ------------------------------------------------------------------------------------- */

int zone_geometry(uint64_t capacity, zone *z) {
  uint64_t avail;
  memset(z, 0, sizeof *z);
  if (capacity < HEAD_SIZE + SHARD_FIXED || capacity > ZONE_CAPACITY_MAX) return -1;
  z->capacity = capacity;
  z->nshards = 1;
  while (z->nshards < SHARD_MAX && capacity / (z->nshards * 2u) >= SHARD_TARGET) {
    z->nshards *= 2;
    z->shard_bits++;
  }
  z->shard_bytes = (uint32_t)(((capacity - HEAD_SIZE) / z->nshards) & ~(uint64_t)63);
  if (z->shard_bytes < SHARD_FIXED) return -1;
  avail = z->shard_bytes - SHARD_FIXED;
  z->nbuckets = 1;
  while ((uint64_t)z->nbuckets * 2 * 64 <= avail) z->nbuckets *= 2;
  z->heap_off = (uint32_t)((SHARD_FIXED + 4 * (uint64_t)z->nbuckets + 63) & ~(uint64_t)63);
  z->heap_end = z->shard_bytes;
  return z->heap_end >= z->heap_off && z->heap_end - z->heap_off >= MIN_HEAP ? 0 : -1;
}

uint64_t zone_min_capacity(void) {
  static uint64_t min = 0;
  zone z;
  if (min == 0) {
    uint64_t c = HEAD_SIZE + SHARD_FIXED;
    while (zone_geometry(c, &z) != 0) c += 64;
    min = c;
  }
  return min;
}

uint64_t zone_max_value(const zone *z, size_t klen) {
  uint64_t heap = z->heap_end - z->heap_off, head = ENTRY_HEAD + PAD8((uint64_t)klen);
  return heap > head ? heap - head : 0;
}

int64_t zone_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* A 64-bit hash of the key with the zone's seed (murmur3's finaliser over 8-byte words): the
   top bits pick the stripe, the low 32 bits the bucket and are kept in the entry. */
static uint64_t fmix(uint64_t k) {
  k ^= k >> 33;
  k *= 0xff51afd7ed558ccdULL;
  k ^= k >> 33;
  k *= 0xc4ceb9fe1a85ec53ULL;
  k ^= k >> 33;
  return k;
}

uint64_t zone_hash(const zone *z, const char *k, size_t n) {
  const unsigned char *p = (const unsigned char *)k;
  uint64_t h = z->seed ^ ((uint64_t)n * 0x9e3779b97f4a7c15ULL), w = 0;
  for (; n >= 8; p += 8, n -= 8) {
    memcpy(&w, p, 8);
    h = (h ^ fmix(w)) * 0x9e3779b97f4a7c15ULL + 0x52dce729;
    h = (h << 27) | (h >> 37);
  }
  w = 0;
  memcpy(&w, p, n);
  return fmix(h ^ fmix(w ^ ((uint64_t)n << 56)));
}

/* Locks the stripe of a key and begins an operation on it. */
static int begin_key(txn *t, zone *z, const char *k, size_t klen, uint32_t *hash) {
  uint64_t h = zone_hash(z, k, klen);
  uint32_t i = z->shard_bits == 0 ? 0 : (uint32_t)(h >> (64 - z->shard_bits));
  int rc = zone_lock_shard(z, i);
  *hash = (uint32_t)h;
  if (rc == ZONE_OK) zone_begin(t, z, i);
  return rc;
}

/* The chain walk: 1 and *e when the key is there (*prev: its predecessor in the chain, 0 for
   the bucket), 0 when not, -1 when the chain is malformed. */
static int find(txn *t, uint32_t hash, const char *k, size_t klen, ent *e, uint32_t *prev) {
  uint32_t off = ld32(t->s + S_BUCKETS + 4 * (hash & (t->z->nbuckets - 1))), before = 0;
  uint64_t steps;
  for (steps = 0; off != 0; steps++) {
    if (steps > MAX_BLOCKS(t->z)) return zone_bad(t, "a hash chain loops");
    TRY(zone_ent(t, off, e));
    if (e->hash == hash && e->klen == klen && memcmp(e->p + ENTRY_HEAD, k, klen) == 0) {
      *prev = before;
      return 1;
    }
    before = off;
    off = e->hnext;
  }
  return 0;
}

/* The chain predecessor of an entry reached otherwise (through the LRU list). */
static int chain_prev(txn *t, const ent *e, uint32_t *prev) {
  uint32_t off = ld32(t->s + S_BUCKETS + 4 * (e->hash & (t->z->nbuckets - 1))), before = 0;
  uint64_t steps;
  ent x;
  for (steps = 0; off != 0 && steps <= MAX_BLOCKS(t->z); steps++) {
    if (off == e->off) {
      *prev = before;
      return 0;
    }
    TRY(zone_ent(t, off, &x));
    before = off;
    off = x.hnext;
  }
  return zone_bad(t, "an entry is missing from its hash chain");
}

static int64_t now_of(txn *t) {
  if (t->now == 0) t->now = zone_now();
  return t->now;
}

static int expired(txn *t, const ent *e) {
  return e->expires != ZONE_NEVER && now_of(t) >= e->expires;
}

/* ---------------------------------------------------------------------------------------
** The LRU list (newest and second-chanced at the head) and removing an entry
** ------------------------------------------------------------------------------------- */

/* One side of unlinking e: its neighbour at (its link at field) or, at an end of the list, the
   list's end word, which must point at e, is pointed at to instead. */
static int lru_relink(txn *t, const ent *e, uint32_t at, uint32_t field, uint32_t end,
                      uint32_t to) {
  ent x;
  if (at == 0) {
    if (ld32(t->s + end) != e->off) return zone_bad(t, "the LRU list's ends are wrong");
    zset32(t, end, to);
    return 0;
  }
  TRY(zone_ent(t, at, &x));
  if ((field == E_NEXT ? x.next : x.prev) != e->off)
    return zone_bad(t, "the LRU list's links disagree");
  zset32(t, at + field, to);
  return 0;
}

static int lru_unlink(txn *t, const ent *e) {
  TRY(lru_relink(t, e, e->prev, E_NEXT, S_LRU_HEAD, e->next));
  return lru_relink(t, e, e->next, E_PREV, S_LRU_TAIL, e->prev);
}

static int lru_push(txn *t, uint32_t off) {
  uint32_t head = ld32(t->s + S_LRU_HEAD);
  ent x;
  zset32(t, off + E_PREV, 0);
  zset32(t, off + E_NEXT, head);
  if (head != 0) {
    TRY(zone_ent(t, head, &x));
    zset32(t, head + E_PREV, off);
  } else {
    zset32(t, S_LRU_TAIL, off);
  }
  zset32(t, S_LRU_HEAD, off);
  return 0;
}

/* A use of e: the eviction walk will give it a second chance. Nothing is written when it is
   marked already, so repeated reads store nothing shared but the lock. */
static void touch(txn *t, const ent *e) {
  if (!e->used) zset32(t, e->off + E_TYPE, (uint32_t)e->type | E_USED);
}

/* Unlinks e (whose chain predecessor is prev) from its chain and the LRU list; its block stays
   allocated (see remove_ent). */
static int unlink_ent(txn *t, const ent *e, uint32_t prev) {
  if (prev != 0) {
    ent x;
    TRY(zone_ent(t, prev, &x));
    if (x.hnext != e->off) return zone_bad(t, "a hash chain's links disagree");
    zset32(t, prev + E_HNEXT, e->hnext);
  } else {
    uint32_t b = S_BUCKETS + 4 * (e->hash & (t->z->nbuckets - 1));
    if (ld32(t->s + b) != e->off) return zone_bad(t, "an entry is not where its chain starts");
    zset32(t, b, e->hnext);
  }
  TRY(lru_unlink(t, e));
  zset(t, S_ENTRIES, ld64(t->s + S_ENTRIES) - 1);
  return 0;
}

/* Unlinks e and frees its block. Within one logged step nothing may be allocated after a
   free: the new block could overlap the freed one, and its key and value, copied without the
   log, would overwrite bytes (the freed entry's, a neighbour's header) that an undo must find
   intact. So a step that frees ends there, or only unlinks and frees last. */
static int remove_ent(txn *t, const ent *e, uint32_t prev) {
  TRY(unlink_ent(t, e, prev));
  return zone_free(t, e->off, e->size);
}

/* ---------------------------------------------------------------------------------------
** Values
** ------------------------------------------------------------------------------------- */

static uint32_t value_len(const zone_value *v) {
  return v->type == ZONE_STR ? (uint32_t)v->len : v->type == ZONE_BOOL ? 1 : 8;
}

/* The bytes of a value as stored (numbers in native order). */
static const void *value_bytes(const zone_value *v, unsigned char *tmp) {
  if (v->type == ZONE_STR) return v->s;
  if (v->type == ZONE_BOOL) {
    tmp[0] = v->i != 0;
  } else if (v->type == ZONE_INT) {
    memcpy(tmp, &v->i, 8);
  } else {
    memcpy(tmp, &v->f, 8);
  }
  return tmp;
}

/* Reads e's value into *out (a string into buf: the caller made sure it fits). */
static void value_read(const ent *e, zone_value *out, char *buf) {
  const unsigned char *v = e->p + ENTRY_HEAD + PAD8(e->klen);
  out->type = e->type;
  if (e->type == ZONE_STR) {
    memcpy(buf, v, e->vlen);
    out->s = buf;
    out->len = e->vlen;
  } else if (e->type == ZONE_BOOL) {
    out->i = v[0] != 0;
  } else if (e->type == ZONE_INT) {
    memcpy(&out->i, v, 8);
  } else {
    memcpy(&out->f, v, 8);
  }
}

/* Stores a word (4 bytes) through the log only when it changes. */
static void zput(txn *t, uint32_t off, uint64_t v) {
  if (ld64(t->s + off) != v) zset(t, off, v);
}
static void zput32(txn *t, uint32_t off, uint32_t v) {
  if (ld32(t->s + off) != v) zset32(t, off, v);
}

/* Rewrites e's value where it is, word by word through the log, when the new one needs the
   same block (give or take a little slack) and is small: numbers always are. An increment
   logs one word. */
static int rewrite_in_place(txn *t, const ent *e, const zone_value *v, int64_t expires) {
  uint32_t vlen = value_len(v), words = (uint32_t)PAD8(vlen) / 8, i,
           voff = e->off + ENTRY_HEAD + (uint32_t)PAD8(e->klen);
  uint64_t need = ENTRY_HEAD + PAD8((uint64_t)e->klen) + PAD8(vlen);
  unsigned char tmp[8];
  const unsigned char *src;
  if (need > e->size || e->size - need >= INPLACE_SLACK || PAD8(vlen) > INPLACE_MAX) return 0;
  src = (const unsigned char *)value_bytes(v, tmp);
  for (i = 0; i < words; i++) {
    unsigned char w[8] = {0};
    memcpy(w, src + 8 * i, vlen - 8 * i < 8 ? vlen - 8 * i : 8);
    zput(t, voff + 8 * i, ld64(w));
  }
  zput32(t, e->off + E_TYPE, (uint32_t)v->type | E_USED);
  zput32(t, e->off + E_VLEN, vlen);
  zput(t, e->off + E_EXPIRES, (uint64_t)expires);
  return 1;
}

/* Writes a new entry into the block at off (size bytes) and links it at the head of its chain
   and of the LRU list. */
static int insert(txn *t, uint32_t off, uint32_t size, uint32_t hash, const char *k, size_t klen,
                  const zone_value *v, int64_t expires) {
  uint32_t b = S_BUCKETS + 4 * (hash & (t->z->nbuckets - 1)), vlen = value_len(v);
  unsigned char tmp[8], *p = t->s + off;
  zset(t, off, pack2(size | F_INUSE, (uint32_t)v->type));
  zset(t, off + E_HNEXT, pack2(ld32(t->s + b), hash));
  zset(t, off + E_PREV, 0);
  zset(t, off + E_EXPIRES, (uint64_t)expires);
  zset(t, off + E_KLEN, pack2((uint32_t)klen, vlen));
  if (UNLIKELY(t->bad != NULL)) return -1;
  memcpy(p + ENTRY_HEAD, k, klen);
  CRASH_POINT();
  memcpy(p + ENTRY_HEAD + PAD8(klen), value_bytes(v, tmp), vlen);
  zset32(t, b, off);
  TRY(lru_push(t, off));
  zset(t, S_ENTRIES, ld64(t->s + S_ENTRIES) + 1);
  return 0;
}

/* Makes room by removing one entry other than avoid, walking the list from its oldest end
   (the clock's hand): an expired entry goes at once. With keep_live (safe_set) nothing else may
   go and the walk covers the list looking for an expired one. Otherwise the first entry not
   used since the walk last passed it goes; one used meanwhile gets its second chance: it is
   marked unused and moved to the head (a step committed on its own, so the log never fills),
   and the walk goes on. Returns 2 when a live entry went, 1 an expired one, 0 when nothing
   could go, -1 when malformed. */
static int evict_one(txn *t, int keep_live, uint32_t avoid) {
  uint32_t off = ld32(t->s + S_LRU_TAIL), prev = 0;
  uint64_t steps;
  ent e;
  for (steps = 0; off != 0; steps++) {
    if (steps > 2 * MAX_BLOCKS(t->z) + 2) return zone_bad(t, "the LRU list loops");
    TRY(zone_ent(t, off, &e));
    off = e.prev;
    if (expired(t, &e)) {
      TRY(chain_prev(t, &e, &prev));
      TRY(remove_ent(t, &e, prev));
      return 1;
    }
    if (keep_live || e.off == avoid) continue;
    if (e.used) {
      zset32(t, e.off + E_TYPE, (uint32_t)e.type);
      if (e.prev != 0) {
        TRY(lru_unlink(t, &e));
        TRY(lru_push(t, e.off));
      }
      if (UNLIKELY(t->bad != NULL)) return -1;
      zone_commit(t);
      continue;
    }
    TRY(chain_prev(t, &e, &prev));
    TRY(remove_ent(t, &e, prev));
    zset(t, S_EVICTED, ld64(t->s + S_EVICTED) + 1);
    return 2;
  }
  return 0;
}

/* The body of set/safe_set/add/replace on a locked stripe (and of incr's first store). The
   new entry goes into a block that was free before the step began; the entry it replaces is
   unlinked in the same step and freed last. When no free block is large enough, a step of its
   own makes room (committed alone, as an eviction may happen at any time): an expired entry
   goes first, then the entry being replaced when its own room will do (a process killed right
   after that leaves the key absent, as if evicted), then (set, add, replace) an entry not used
   lately (evict_one); and the store starts again. */
static int store_locked(txn *t, int how, uint32_t hash, const char *k, size_t klen,
                        const zone_value *v, int64_t ttl_ns, int *evicted) {
  uint64_t need = ENTRY_HEAD + PAD8((uint64_t)klen) + PAD8(value_len(v)), round;
  if (v->type != ZONE_NIL && need > t->z->heap_end - t->z->heap_off) return ZONE_NOMEM;
  for (round = 0; round <= MAX_BLOCKS(t->z) + 1; round++) {
    ent e;
    uint32_t prev = 0, got = 0;
    int found = find(t, hash, k, klen, &e, &prev), r;
    int64_t off, room = 0, expires;
    TRY(found);
    if (found && expired(t, &e)) {
      TRY(remove_ent(t, &e, prev));
      zone_commit(t);
      continue;
    }
    if (how == ZONE_ADD && found) return ZONE_EXISTS;
    if (how == ZONE_REPLACE && !found) return ZONE_NOTFOUND;
    if (v->type == ZONE_NIL) {
      if (found) TRY(remove_ent(t, &e, prev));
      return ZONE_OK;
    }
    expires = ttl_ns > 0 ? now_of(t) + ttl_ns : ZONE_NEVER;
    if (found) {
      TRY(r = rewrite_in_place(t, &e, v, expires));
      if (r) return ZONE_OK;
    }
    TRY(off = zone_alloc(t, (uint32_t)need, &got));
    if (off > 0) {
      if (found) TRY(unlink_ent(t, &e, prev));
      TRY(insert(t, (uint32_t)off, got, hash, k, klen, v, expires));
      if (found) TRY(zone_free(t, e.off, e.size));
      return ZONE_OK;
    }
    if (found) TRY(room = zone_room(t, &e));
    if (found && (uint64_t)room >= need) {
      TRY(remove_ent(t, &e, prev));
    } else {
      TRY(r = evict_one(t, how == ZONE_SAFE_SET, found ? e.off : 0));
      if (r == 0) return ZONE_NOMEM;
      if (r == 2) *evicted = 1;
    }
    zone_commit(t);
  }
  return zone_bad(t, "making room does not end");
}

/* ---------------------------------------------------------------------------------------
** The operations
** ------------------------------------------------------------------------------------- */

/* Locks the stripe of k and looks for k's live entry: ZONE_OK with the stripe locked and
   *found (1 with *e and *prev, 0 when there is none, -1 when its chain is malformed: t->bad
   says why), or a locking error (unlocked). An expired entry it finds is removed in a step of
   its own (so that a store may follow) and *stale is set. */
static int lookup(txn *t, zone *z, const char *k, size_t klen, uint32_t *hash, ent *e,
                  uint32_t *prev, int *found, int *stale) {
  int rc = begin_key(t, z, k, klen, hash);
  *stale = 0;
  if (rc != ZONE_OK) return rc;
  *found = find(t, *hash, k, klen, e, prev);
  if (*found > 0 && expired(t, e)) {
    if (remove_ent(t, e, *prev) == 0) zone_commit(t);
    *found = 0;
    *stale = 1;
  }
  return ZONE_OK;
}

int zone_get(zone *z, const char *k, size_t klen, zone_value *out, char *buf, size_t cap,
             size_t *need, int *stale) {
  txn t;
  uint32_t hash, prev;
  ent e;
  int found, rc = lookup(&t, z, k, klen, &hash, &e, &prev, &found, stale);
  if (rc != ZONE_OK) return rc;
  if (found <= 0) return zone_finish(&t, ZONE_NOTFOUND);
  if (e.type == ZONE_STR && e.vlen > cap) {
    *need = e.vlen;
    return zone_finish(&t, ZONE_SMALLBUF);
  }
  value_read(&e, out, buf);
  touch(&t, &e);
  return zone_finish(&t, ZONE_OK);
}

int zone_store(zone *z, int how, const char *k, size_t klen, const zone_value *v, int64_t ttl_ns,
               int *evicted) {
  txn t;
  uint32_t hash;
  int rc = begin_key(&t, z, k, klen, &hash);
  *evicted = 0;
  if (rc != ZONE_OK) return rc;
  rc = store_locked(&t, how, hash, k, klen, v, ttl_ns, evicted);
  return zone_finish(&t, rc < 0 ? ZONE_CORRUPT : rc);
}

/* n added to the number v (both checked numbers): integers wrap, anything else is a float. */
static zone_value add_number(const zone_value *v, const zone_value *n) {
  zone_value r;
  memset(&r, 0, sizeof r);
  if (v->type == ZONE_INT && n->type == ZONE_INT) {
    r.type = ZONE_INT;
    r.i = (int64_t)((uint64_t)v->i + (uint64_t)n->i);
  } else {
    r.type = ZONE_FLOAT;
    r.f = (v->type == ZONE_INT ? (double)v->i : v->f) + (n->type == ZONE_INT ? (double)n->i : n->f);
  }
  return r;
}

int zone_incr(zone *z, const char *k, size_t klen, const zone_value *n, const zone_value *init,
              int64_t ttl_ns, zone_value *out, int *evicted) {
  txn t;
  uint32_t hash, prev;
  ent e;
  int found, stale, rc = lookup(&t, z, k, klen, &hash, &e, &prev, &found, &stale);
  *evicted = 0;
  if (rc != ZONE_OK) return rc;
  if (found < 0) return zone_finish(&t, ZONE_CORRUPT);
  if (found) {
    zone_value old;
    if (e.type != ZONE_INT && e.type != ZONE_FLOAT) {
      out->type = e.type;
      return zone_finish(&t, ZONE_NOTNUM);
    }
    value_read(&e, &old, (char[8]){0}); /* a number: GCC cannot tell no string is copied */
    *out = add_number(&old, n);
    /* A number always fits its own block: only a forged one does not. */
    if (rewrite_in_place(&t, &e, out, e.expires) == 0)
      zone_bad(&t, "a number's block has the wrong size");
    return zone_finish(&t, ZONE_OK);
  }
  if (init == NULL) return zone_finish(&t, ZONE_NOTFOUND);
  *out = add_number(init, n);
  rc = store_locked(&t, ZONE_SET, hash, k, klen, out, ttl_ns, evicted);
  return zone_finish(&t, rc < 0 ? ZONE_CORRUPT : rc);
}

/* ttl and expire: the live entry of k, or ZONE_NOTFOUND (an expired one is removed). */
static int find_live(txn *t, zone *z, const char *k, size_t klen, ent *e) {
  uint32_t hash, prev;
  int found, stale, rc = lookup(t, z, k, klen, &hash, e, &prev, &found, &stale);
  if (rc != ZONE_OK) return rc;
  if (found <= 0) return zone_finish(t, ZONE_NOTFOUND);
  return -1; /* found: the stripe stays locked */
}

int zone_ttl(zone *z, const char *k, size_t klen, int64_t *left_ns) {
  txn t;
  ent e;
  int rc = find_live(&t, z, k, klen, &e);
  if (rc >= 0) return rc;
  *left_ns = e.expires == ZONE_NEVER ? 0 : e.expires - now_of(&t);
  return zone_finish(&t, ZONE_OK);
}

int zone_expire(zone *z, const char *k, size_t klen, int64_t ttl_ns) {
  txn t;
  ent e;
  int rc = find_live(&t, z, k, klen, &e);
  if (rc >= 0) return rc;
  zset(&t, e.off + E_EXPIRES, ttl_ns > 0 ? (uint64_t)(now_of(&t) + ttl_ns) : ZONE_NEVER);
  return zone_finish(&t, ZONE_OK);
}

int zone_flush_all(zone *z) {
  uint32_t i;
  int rc = zone_lock_all(z);
  if (rc != ZONE_OK) return rc;
  /* The commit: from this store on, every stripe is behind and reads as empty. */
  st64(z->base + H_GEN, ld64(z->base + H_GEN) + 1);
  BARRIER();
  CRASH_POINT();
  for (i = 0; i < z->nshards; i++) zone_reset_shard(z, SHARD(z, i));
  zone_unlock_all(z);
  return ZONE_OK;
}

int zone_flush_expired(zone *z, uint64_t max, uint64_t *n) {
  uint32_t i;
  *n = 0;
  for (i = 0; i < z->nshards; i++) {
    txn t;
    uint32_t off, prev = 0;
    uint64_t steps;
    int rc = zone_lock_shard(z, i);
    if (rc != ZONE_OK) return rc;
    zone_begin(&t, z, i);
    off = ld32(t.s + S_LRU_TAIL);
    for (steps = 0; off != 0 && (max == 0 || *n < max); steps++) {
      ent e;
      if (steps > MAX_BLOCKS(z)) zone_bad(&t, "the LRU list loops");
      if (t.bad != NULL || zone_ent(&t, off, &e) < 0) break;
      off = e.prev;
      if (!expired(&t, &e)) continue;
      if (chain_prev(&t, &e, &prev) < 0 || remove_ent(&t, &e, prev) < 0) break;
      zone_commit(&t);
      (*n)++;
    }
    if ((rc = zone_finish(&t, ZONE_OK)) != ZONE_OK) return rc;
  }
  return ZONE_OK;
}

/* Visits the live entries of every stripe (the caller holds every lock), most recent first,
   until fn returns nonzero. -1 when a list is malformed (z->why). */
static int each_live(zone *z, int (*fn)(const ent *e, void *ud), void *ud) {
  uint32_t i;
  for (i = 0; i < z->nshards; i++) {
    txn t;
    uint32_t off;
    uint64_t steps;
    zone_begin(&t, z, i);
    off = ld32(t.s + S_LRU_HEAD);
    for (steps = 0; off != 0; steps++) {
      ent e;
      if (steps > MAX_BLOCKS(z)) zone_bad(&t, "the LRU list loops");
      if (t.bad != NULL || zone_ent(&t, off, &e) < 0) {
        z->why = t.bad;
        z->shard = (int)i;
        return -1;
      }
      off = e.next;
      if (!expired(&t, &e) && fn(&e, ud)) return 0;
    }
  }
  return 0;
}

typedef struct snap {
  int values;
  uint64_t max, count;
  unsigned char *buf;
  size_t cap, used;
} snap;

static int snap_one(const ent *e, void *ud) {
  snap *s = (snap *)ud;
  size_t rec = 4 + e->klen + (s->values ? 5 + (size_t)e->vlen : 0);
  if (s->used + rec <= s->cap) {
    unsigned char *p = s->buf + s->used;
    memcpy(p, &e->klen, 4);
    memcpy(p + 4, e->p + ENTRY_HEAD, e->klen);
    if (s->values) {
      p += 4 + e->klen;
      p[0] = (unsigned char)e->type;
      memcpy(p + 1, &e->vlen, 4);
      memcpy(p + 5, e->p + ENTRY_HEAD + PAD8(e->klen), e->vlen);
    }
  }
  s->used += rec;
  return ++s->count == s->max;
}

int zone_snapshot(zone *z, int values, uint64_t max, unsigned char *buf, size_t cap, size_t *used,
                  size_t *need, uint64_t *count) {
  snap s = {values, max, 0, buf, cap, 0};
  int rc = zone_lock_all(z);
  if (rc != ZONE_OK) return rc;
  rc = each_live(z, snap_one, &s) < 0 ? ZONE_CORRUPT : ZONE_OK;
  zone_unlock_all(z);
  if (rc != ZONE_OK) return rc;
  *count = s.count;
  *used = s.used;
  if (s.used > cap) {
    *need = s.used;
    return ZONE_SMALLBUF;
  }
  return ZONE_OK;
}

static int count_one(const ent *e, void *ud) {
  (void)e;
  ++*(uint64_t *)ud;
  return 0;
}

int zone_count(zone *z, uint64_t *n) {
  int rc = zone_lock_all(z);
  *n = 0;
  if (rc != ZONE_OK) return rc;
  rc = each_live(z, count_one, n) < 0 ? ZONE_CORRUPT : ZONE_OK;
  zone_unlock_all(z);
  return rc;
}

int zone_free_space(zone *z, uint64_t *n) {
  uint32_t i;
  int rc = zone_lock_all(z);
  *n = 0;
  if (rc != ZONE_OK) return rc;
  for (i = 0; i < z->nshards; i++) {
    uint64_t f = ld64(SHARD(z, i) + S_FREE), heap = z->heap_end - z->heap_off;
    *n += f < heap ? f : heap;
  }
  zone_unlock_all(z);
  return ZONE_OK;
}

/* ---------------------------------------------------------------------------------------
** Making and opening a zone
** ------------------------------------------------------------------------------------- */

int zone_format(unsigned char *p, uint64_t capacity) {
  zone z;
  uint64_t seed = 0;
  uint32_t i;
  if (zone_geometry(capacity, &z) != 0) return -1;
  if (getrandom(&seed, sizeof seed, GRND_NONBLOCK) != (ssize_t)sizeof seed)
    seed = (uint64_t)zone_now() ^ ((uint64_t)getpid() << 32);
  z.base = p;
  z.seed = seed;
  st64(p + H_CAPACITY, capacity);
  st32(p + H_NSHARDS, z.nshards);
  st32(p + H_SHARD_BYTES, z.shard_bytes);
  st32(p + H_NBUCKETS, z.nbuckets);
  st32(p + H_HEAP_OFF, z.heap_off);
  st64(p + H_SEED, seed);
  st64(p + H_GEN, 0);
  for (i = 0; i < z.nshards; i++) {
    if (luashm_mutex_init((pthread_mutex_t *)SHARD(&z, i)) != 0) return -1;
    zone_reset_shard(&z, SHARD(&z, i));
  }
  return 0;
}

int zone_open(zone *z, unsigned char *p, uint64_t size, const char **why) {
  if (zone_geometry(size, z) != 0) {
    *why = "its size cannot hold a dict";
    return -1;
  }
  if (ld64(p + H_CAPACITY) != size || ld32(p + H_NSHARDS) != z->nshards ||
      ld32(p + H_SHARD_BYTES) != z->shard_bytes || ld32(p + H_NBUCKETS) != z->nbuckets ||
      ld32(p + H_HEAP_OFF) != z->heap_off) {
    *why = "its header does not match its size";
    return -1;
  }
  z->base = p;
  z->seed = ld64(p + H_SEED);
  return 0;
}

int zone_peek(unsigned char *p, uint64_t size, uint64_t *entries, uint64_t *used) {
  zone z;
  const char *why;
  uint32_t i;
  uint64_t heap;
  if (zone_open(&z, p, size, &why) != 0) return -1;
  heap = z.heap_end - z.heap_off;
  *entries = 0;
  *used = 0;
  for (i = 0; i < z.nshards; i++) {
    const unsigned char *s = SHARD(&z, i);
    uint64_t n = ld64(s + S_ENTRIES), f = ld64(s + S_FREE);
    if (ld64(s + S_GEN) != ld64(p + H_GEN)) n = 0, f = heap;
    *entries += n < MAX_BLOCKS(&z) ? n : MAX_BLOCKS(&z);
    *used += heap - (f < heap ? f : heap);
  }
  return 0;
}
