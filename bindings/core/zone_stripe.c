/*
** The Dict's storage layer (see zone.h and zone_impl.h): a stripe's undo log (every store to its
** shared words is logged first, and undone after a holder died), its locking and recovery, its
** reset, the checked readers of entries and free blocks, and the allocator of its heap. Plain C.
*/
#include <errno.h>
#include <signal.h>
#include <string.h>

#include "sync.h"
#include "zone_impl.h"

/* ---------------------------------------------------------------------------------------
** Crash points (fault injection for the tests)
** ------------------------------------------------------------------------------------- */

long zone_crash_countdown = 0;
static long crash_passed = 0;

void zone_crash_point(void) {
  crash_passed++;
  if (--zone_crash_countdown == 0) raise(SIGKILL);
}

long zone_crash_after(long n) {
  long passed = crash_passed;
  zone_crash_countdown = n > 0 ? n : 0;
  crash_passed = 0;
  return passed;
}

/* ---------------------------------------------------------------------------------------
** The undo log: every store to a stripe's shared words goes through zset, which records the
** word's old value first. Only the bytes of a block just allocated (a key, a value) are copied
** without logging: after an undo that block is free again and those bytes mean nothing, as long
** as the block was free when the step began (a step never allocates after it frees).
** ------------------------------------------------------------------------------------- */

int zone_bad(txn *t, const char *why) {
  if (t->bad == NULL) t->bad = why;
  return -1;
}

void zset(txn *t, uint32_t off, uint64_t v) {
  unsigned char *rec;
  /* The last line of defence: never a store outside the stripe's fields and heap, nor into
     the mutex or the log itself, whatever an offset read from the zone said. */
  if (LIKELY(t->bad == NULL) &&
      UNLIKELY(off % 8 != 0 || off < S_FIELDS || off > t->z->shard_bytes - 8))
    zone_bad(t, "a store outside the stripe");
  if (UNLIKELY(t->n >= LOG_MAX)) zone_bad(t, "an operation outgrew the undo log");
  if (UNLIKELY(t->bad != NULL)) return;
  rec = t->s + S_LOG + (size_t)t->n * 16;
  st64(rec, off);
  st64(rec + 8, ld64(t->s + off));
  BARRIER();
  st64(t->s + S_LOGN, ++t->n);
  BARRIER();
  CRASH_POINT();
  st64(t->s + off, v);
  BARRIER();
}

void zset32(txn *t, uint32_t off, uint32_t v) {
  unsigned char w[8];
  uint64_t nw;
  memcpy(w, t->s + (off & ~7u), 8);
  memcpy(w + (off & 7u), &v, 4);
  memcpy(&nw, w, 8);
  zset(t, off & ~7u, nw);
}

/* Records a word that a raw copy is about to overwrite (the footer of a free block taken
   whole), so that an undo puts it back. */
static void zlog(txn *t, uint32_t off) {
  zset(t, off, ld64(t->s + off));
}

/* Undoes the log in reverse (each word gets its oldest recorded value back), then empties it.
   Repeating an interrupted undo gives the same result. The records are checked first, all of
   them: a forged log changes nothing. */
static int undo(zone *z, unsigned char *s) {
  uint64_t n = ld64(s + S_LOGN), i;
  if (n > LOG_MAX) return -1;
  for (i = 0; i < n; i++) {
    uint64_t off = ld64(s + S_LOG + i * 16);
    if (off % 8 != 0 || off < S_FIELDS || off > z->shard_bytes - 8) return -1;
  }
  for (i = n; i-- > 0;) {
    st64(s + ld64(s + S_LOG + i * 16), ld64(s + S_LOG + i * 16 + 8));
    BARRIER();
    CRASH_POINT();
  }
  st64(s + S_LOGN, 0);
  BARRIER();
  return 0;
}

/* The commit: the operation's changes are all in place; forgetting the log makes them final. */
void zone_commit(txn *t) {
  if (t->n == 0) return; /* nothing to forget: no store into the shared line */
  BARRIER();
  CRASH_POINT();
  st64(t->s + S_LOGN, 0);
  BARRIER();
  t->n = 0;
}

/* Puts back what the operation changed so far (it could not finish). */
static void rollback(txn *t) {
  undo(t->z, t->s);
  t->n = 0;
  t->bad = NULL;
}

/* ---------------------------------------------------------------------------------------
** Stripes: locking, recovery, reset
** ------------------------------------------------------------------------------------- */

/* Empties a stripe: one free block, no entries. Raw stores, no log: it is a redo, which whoever
   locks the stripe next repeats while the stripe's generation is behind the zone's (the last
   store below). */
void zone_reset_shard(zone *z, unsigned char *s) {
  uint32_t heap = z->heap_end - z->heap_off, c = class_of(heap);
  st64(s + S_ENTRIES, 0);
  st64(s + S_LRU, 0);
  st64(s + S_MAP, 0);
  st64(s + S_MAP + 8, 0);
  memset(s + S_FREELIST, 0, NCLASS * 4);
  memset(s + S_BUCKETS, 0, (size_t)z->nbuckets * 4);
  CRASH_POINT();
  st64(s + z->heap_off, pack2(heap, 0));
  st64(s + z->heap_off + 8, 0);
  st64(s + z->heap_end - 8, heap);
  st32(s + S_FREELIST + 4 * c, z->heap_off);
  st64(s + S_MAP + 8 * (c / 64), (uint64_t)1 << (c % 64));
  st64(s + S_FREE, heap);
  BARRIER();
  st64(s + S_GEN, ld64(z->base + H_GEN));
  BARRIER();
}

void zone_unlock_shard(zone *z, uint32_t i) {
  luashm_mutex_unlock((pthread_mutex_t *)SHARD(z, i));
}

/* Locks stripe i and makes it consistent: a log left by a process that died inside an
   operation is undone, a flush_all it has not applied yet is applied. */
int zone_lock_shard(zone *z, uint32_t i) {
  unsigned char *s = SHARD(z, i);
  int rc = luashm_mutex_lock((pthread_mutex_t *)s, NULL);
  if (UNLIKELY(rc != 0)) {
    if (rc == EINTR) return ZONE_INTR;
    if (rc != LUASHM_OWNER_DIED) {
      z->shard = (int)i;
      return ZONE_LOCKFAIL;
    }
    st64(s + S_RECOVERED, ld64(s + S_RECOVERED) + 1);
  }
  if (UNLIKELY(ld64(s + S_LOGN) != 0) && undo(z, s) != 0) {
    zone_unlock_shard(z, i);
    z->shard = (int)i;
    z->why = "its undo log is malformed";
    return ZONE_CORRUPT;
  }
  if (UNLIKELY(ld64(s + S_GEN) != ld64(z->base + H_GEN))) zone_reset_shard(z, s);
  return ZONE_OK;
}

int zone_lock_all(zone *z) {
  uint32_t i;
  for (i = 0; i < z->nshards; i++) {
    int rc = zone_lock_shard(z, i);
    if (rc != ZONE_OK) {
      while (i-- > 0) zone_unlock_shard(z, i);
      return rc;
    }
  }
  return ZONE_OK;
}

void zone_unlock_all(zone *z) {
  uint32_t i;
  for (i = 0; i < z->nshards; i++) zone_unlock_shard(z, i);
}

void zone_begin(txn *t, zone *z, uint32_t i) {
  t->z = z;
  t->s = SHARD(z, i);
  t->i = i;
  t->n = 0;
  t->now = 0;
  t->bad = NULL;
}

/* Ends the operation on stripe t->i and unlocks it: commits, or, when a check failed on the way,
   undoes and reports the zone as corrupt. */
int zone_finish(txn *t, int rc) {
  if (UNLIKELY(t->bad != NULL)) {
    t->z->why = t->bad;
    t->z->shard = (int)t->i;
    rollback(t);
    rc = ZONE_CORRUPT;
  } else {
    zone_commit(t);
  }
  zone_unlock_shard(t->z, t->i);
  return rc;
}

/* ---------------------------------------------------------------------------------------
** Entries and free blocks, read with every field checked
** ------------------------------------------------------------------------------------- */

int zone_ent(txn *t, uint32_t off, ent *e) {
  const zone *z = t->z;
  unsigned char *p;
  uint32_t w;
  if (off % 8 != 0 || off < z->heap_off || off > z->heap_end - ENTRY_MIN)
    return zone_bad(t, "a link points outside the heap");
  p = t->s + off;
  w = ld32(p);
  e->off = off;
  e->p = p;
  e->size = w & ~7u;
  if (!(w & F_INUSE)) return zone_bad(t, "a link points at a free block");
  if (e->size < ENTRY_MIN || e->size > z->heap_end - off)
    return zone_bad(t, "an entry's size runs past the heap");
  w = ld32(p + E_TYPE);
  e->type = (int)(w & 0xff);
  e->used = (w & E_USED) != 0;
  if (w >> 9 != 0) return zone_bad(t, "an entry has no valid type");
  e->hnext = ld32(p + E_HNEXT);
  e->hash = ld32(p + E_HASH);
  e->prev = ld32(p + E_PREV);
  e->next = ld32(p + E_NEXT);
  e->expires = (int64_t)ld64(p + E_EXPIRES);
  e->klen = ld32(p + E_KLEN);
  e->vlen = ld32(p + E_VLEN);
  if (e->type < ZONE_BOOL || e->type > ZONE_STR) return zone_bad(t, "an entry has no valid type");
  if (e->klen == 0 || e->klen > ZONE_KEY_MAX ||
      ENTRY_HEAD + PAD8((uint64_t)e->klen) + PAD8((uint64_t)e->vlen) > e->size)
    return zone_bad(t, "an entry's key and value overrun its block");
  if ((e->type == ZONE_BOOL && e->vlen != 1) ||
      ((e->type == ZONE_INT || e->type == ZONE_FLOAT) && e->vlen != 8))
    return zone_bad(t, "an entry's value length does not match its type");
  return 0;
}

int zone_free_block(txn *t, uint32_t off, fblk *f) {
  const zone *z = t->z;
  uint32_t w;
  if (off % 8 != 0 || off < z->heap_off || off > z->heap_end - MIN_FREE)
    return zone_bad(t, "a free-list link points outside the heap");
  w = ld32(t->s + off);
  f->off = off;
  f->size = w & ~7u;
  if (w & (F_INUSE | F_PREVFREE)) return zone_bad(t, "a free-list link points at a used block");
  if (f->size < MIN_FREE || f->size > z->heap_end - off)
    return zone_bad(t, "a free block's size runs past the heap");
  if (ld64(t->s + off + f->size - 8) != f->size)
    return zone_bad(t, "a free block's footer disagrees with its header");
  f->next = ld32(t->s + off + F_NEXT);
  f->prev = ld32(t->s + off + F_PREV);
  return 0;
}

/* ---------------------------------------------------------------------------------------
** The allocator: blocks tile the heap, each with a header word (size, in use, previous block
** free); free blocks carry list links and a footer (their size), are never adjacent (freeing
** coalesces), and hang in NCLASS lists by size, with a bitmap of the lists not empty.
** ------------------------------------------------------------------------------------- */

static void map_set(txn *t, unsigned c, int on) {
  uint32_t off = S_MAP + 8 * (c / 64);
  uint64_t w = ld64(t->s + off), bit = (uint64_t)1 << (c % 64);
  zset(t, off, on ? w | bit : w & ~bit);
}

static int list_remove(txn *t, const fblk *f) {
  unsigned c = class_of(f->size);
  fblk x;
  if (f->prev != 0) {
    TRY(zone_free_block(t, f->prev, &x));
    if (x.next != f->off) return zone_bad(t, "a free list's links disagree");
    zset32(t, f->prev + F_NEXT, f->next);
  } else {
    if (ld32(t->s + S_FREELIST + 4 * c) != f->off)
      return zone_bad(t, "a free block is not where its list starts");
    zset32(t, S_FREELIST + 4 * c, f->next);
    if (f->next == 0) map_set(t, c, 0);
  }
  if (f->next != 0) {
    TRY(zone_free_block(t, f->next, &x));
    if (x.prev != f->off) return zone_bad(t, "a free list's links disagree");
    zset32(t, f->next + F_PREV, f->prev);
  }
  return 0;
}

static int list_push(txn *t, uint32_t off, uint32_t size) {
  unsigned c = class_of(size);
  uint32_t head = ld32(t->s + S_FREELIST + 4 * c);
  fblk x;
  zset32(t, off + F_NEXT, head);
  zset32(t, off + F_PREV, 0);
  if (head != 0) {
    TRY(zone_free_block(t, head, &x));
    zset32(t, head + F_PREV, off);
  } else {
    map_set(t, c, 1);
  }
  zset32(t, S_FREELIST + 4 * c, off);
  return 0;
}

/* The lowest list at or above class c that is not empty, or NCLASS. */
static unsigned map_find(txn *t, unsigned c) {
  for (; c < NCLASS; c = (c / 64 + 1) * 64) {
    uint64_t w = ld64(t->s + S_MAP + 8 * (c / 64)) >> (c % 64);
    if (w != 0) return c + (unsigned)__builtin_ctzll(w);
  }
  return NCLASS;
}

/* A block of need bytes (a multiple of 8): its offset (its header still says free), 0 when no
   free block is large enough, -1 when the zone is malformed. Good fit: the smallest class
   whose blocks all fit, else the first fit in need's own class. Splits off what is left. */
int64_t zone_alloc(txn *t, uint32_t need, uint32_t *got) {
  unsigned c = class_of(need), k = map_find(t, c <= LAST_EXACT ? c : c + 1);
  uint32_t off;
  uint64_t steps = 0;
  fblk f;
  if (k < NCLASS) {
    TRY(zone_free_block(t, ld32(t->s + S_FREELIST + 4 * k), &f));
  } else {
    for (off = ld32(t->s + S_FREELIST + 4 * c);; off = f.next) {
      if (off == 0) return 0;
      if (++steps > MAX_BLOCKS(t->z)) return zone_bad(t, "a free list loops");
      TRY(zone_free_block(t, off, &f));
      if (f.size >= need) break;
    }
  }
  if (f.size < need) return zone_bad(t, "a free block is smaller than its list says");
  TRY(list_remove(t, &f));
  if (f.size - need >= MIN_FREE) {
    uint32_t r = f.off + need, rest = f.size - need;
    zset(t, r, pack2(rest, 0));
    zset(t, f.off + f.size - 8, rest);
    TRY(list_push(t, r, rest));
    *got = need;
  } else {
    uint32_t next = f.off + f.size;
    if (next < t->z->heap_end) {
      uint32_t w = ld32(t->s + next);
      if (!(w & F_INUSE) || !(w & F_PREVFREE))
        return zone_bad(t, "a free block's neighbour has the wrong flags");
      zset32(t, next, w & ~F_PREVFREE);
    }
    zlog(t, f.off + f.size - 8);
    *got = f.size;
  }
  zset(t, S_FREE, ld64(t->s + S_FREE) - *got);
  return f.off;
}

/* Frees the used block at off (size bytes), coalescing with free neighbours. */
int zone_free(txn *t, uint32_t off, uint32_t size) {
  uint32_t w = ld32(t->s + off), total = size, next;
  fblk f;
  if (w & F_PREVFREE) {
    uint64_t psize;
    if (off < t->z->heap_off + MIN_FREE)
      return zone_bad(t, "a block's previous-free flag is wrong");
    psize = ld64(t->s + off - 8);
    if (psize % 8 != 0 || psize < MIN_FREE || psize > off - t->z->heap_off)
      return zone_bad(t, "a free block's footer is out of bounds");
    TRY(zone_free_block(t, off - (uint32_t)psize, &f));
    if (f.size != psize) return zone_bad(t, "a free block's footer disagrees with its header");
    TRY(list_remove(t, &f));
    off = f.off;
    total += f.size;
  }
  next = off + total;
  if (next < t->z->heap_end) {
    if (next > t->z->heap_end - MIN_FREE) return zone_bad(t, "a block runs past the heap");
    w = ld32(t->s + next);
    if (w & F_INUSE) {
      zset32(t, next, w | F_PREVFREE);
    } else {
      TRY(zone_free_block(t, next, &f));
      TRY(list_remove(t, &f));
      total += f.size;
    }
  }
  zset(t, off, pack2(total, 0));
  zset(t, off + total - 8, total);
  TRY(list_push(t, off, total));
  zset(t, S_FREE, ld64(t->s + S_FREE) + size);
  return 0;
}

/* The size of the free block that freeing e would make (e and its free neighbours). */
int64_t zone_room(txn *t, const ent *e) {
  uint64_t room = e->size;
  uint32_t next = e->off + e->size;
  fblk f;
  if (ld32(e->p) & F_PREVFREE) {
    uint64_t psize = e->off >= t->z->heap_off + MIN_FREE ? ld64(e->p - 8) : 0;
    if (psize % 8 != 0 || psize < MIN_FREE || psize > e->off - t->z->heap_off)
      return zone_bad(t, "a free block's footer is out of bounds");
    TRY(zone_free_block(t, e->off - (uint32_t)psize, &f));
    room += f.size;
  }
  if (next < t->z->heap_end && !(ld32(t->s + next) & F_INUSE)) {
    TRY(zone_free_block(t, next, &f));
    room += f.size;
  }
  return (int64_t)room;
}
