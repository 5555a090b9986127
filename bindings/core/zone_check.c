/*
** The Dict's consistency check (zone_check, see zone.h): with every stripe locked (and so
** recovered), walks each heap block by block and each free list, hash chain and LRU list link by
** link, and verifies every invariant the operations keep. The robustness tests run it after
** killing processes inside operations; it is d:_check() in Lua.
*/
#include <stdlib.h>

#include "zone_impl.h"

/* What was seen of each 8-byte slot of the heap that starts a block. */
enum { M_USED = 1, M_FREE = 2, M_LISTED = 4, M_CHAINED = 8, M_LRU = 16 };

typedef struct walk {
  txn t;
  unsigned char *mark; /* one byte per 8 heap bytes */
  uint64_t used, free, free_bytes;
} walk;

static unsigned char *mark_of(walk *w, uint32_t off) {
  return &w->mark[(off - w->t.z->heap_off) / 8];
}

/* The blocks must tile the heap exactly, each flag telling the truth about its neighbour, no
   two free blocks side by side, every used block a well-formed entry. */
static int check_heap(walk *w) {
  txn *t = &w->t;
  uint32_t off = t->z->heap_off, prev_free = 0;
  while (off < t->z->heap_end) {
    uint32_t h, size;
    if (off > t->z->heap_end - MIN_FREE) return zone_bad(t, "the last block is cut short");
    h = ld32(t->s + off);
    size = h & ~7u;
    if (size < MIN_FREE || size > t->z->heap_end - off)
      return zone_bad(t, "a block's size runs past the heap");
    if (((h & F_PREVFREE) != 0) != prev_free)
      return zone_bad(t, "a block's previous-free flag is wrong");
    if (h & F_INUSE) {
      ent e;
      if (zone_ent(t, off, &e) < 0) return -1;
      *mark_of(w, off) = M_USED;
      w->used++;
    } else {
      fblk f;
      if (prev_free) return zone_bad(t, "two free blocks are adjacent");
      if (zone_free_block(t, off, &f) < 0) return -1;
      *mark_of(w, off) = M_FREE;
      w->free++;
      w->free_bytes += size;
    }
    prev_free = !(h & F_INUSE);
    off += size;
  }
  if (off != t->z->heap_end) return zone_bad(t, "the blocks do not end where the heap ends");
  if (w->free_bytes != ld64(t->s + S_FREE)) return zone_bad(t, "the free-space count is wrong");
  if (w->used != ld64(t->s + S_ENTRIES)) return zone_bad(t, "the entry count is wrong");
  return 0;
}

/* Every free block in exactly one list, the list of its size, with consistent links; the map
   says which lists are not empty. */
static int check_lists(walk *w) {
  txn *t = &w->t;
  uint64_t listed = 0;
  unsigned c;
  for (c = 0; c < NCLASS; c++) {
    uint32_t off = ld32(t->s + S_FREELIST + 4 * c), prev = 0;
    int bit = (ld64(t->s + S_MAP + 8 * (c / 64)) >> (c % 64)) & 1;
    if ((off != 0) != bit) return zone_bad(t, "the free-list map disagrees with a list");
    while (off != 0) {
      fblk f;
      if (zone_free_block(t, off, &f) < 0) return -1;
      if (class_of(f.size) != c) return zone_bad(t, "a free block is in the wrong list");
      if (f.prev != prev) return zone_bad(t, "a free list's links disagree");
      if (*mark_of(w, off) != M_FREE) return zone_bad(t, "a free block is listed twice");
      *mark_of(w, off) |= M_LISTED;
      listed++;
      prev = off;
      off = f.next;
    }
  }
  if (listed != w->free) return zone_bad(t, "a free block is in no list");
  return 0;
}

/* Every entry in the chain of its own hash, in its own stripe, once; no key twice. */
static int check_chains(walk *w) {
  txn *t = &w->t;
  const zone *z = t->z;
  uint64_t chained = 0;
  uint32_t b;
  for (b = 0; b < z->nbuckets; b++) {
    uint32_t off = ld32(t->s + S_BUCKETS + 4 * b), first = off;
    while (off != 0) {
      ent e, x;
      uint64_t h;
      uint32_t o;
      if (zone_ent(t, off, &e) < 0) return -1;
      h = zone_hash(z, (const char *)e.p + ENTRY_HEAD, e.klen);
      if ((uint32_t)h != e.hash || (e.hash & (z->nbuckets - 1)) != b ||
          (z->shard_bits != 0 && (uint32_t)(h >> (64 - z->shard_bits)) != t->i))
        return zone_bad(t, "an entry is in the wrong chain or stripe");
      if (*mark_of(w, off) != M_USED) return zone_bad(t, "an entry is chained twice");
      *mark_of(w, off) |= M_CHAINED;
      for (o = first; o != off; o = x.hnext) {
        if (zone_ent(t, o, &x) < 0) return -1;
        if (x.klen == e.klen && memcmp(x.p + ENTRY_HEAD, e.p + ENTRY_HEAD, e.klen) == 0)
          return zone_bad(t, "a key is stored twice");
      }
      chained++;
      off = e.hnext;
    }
  }
  if (chained != w->used) return zone_bad(t, "an entry is in no chain");
  return 0;
}

/* Every entry on the LRU list once, links consistent both ways, the tail the last. */
static int check_lru(walk *w) {
  txn *t = &w->t;
  uint32_t off = ld32(t->s + S_LRU_HEAD), prev = 0;
  uint64_t n = 0;
  while (off != 0) {
    ent e;
    if (zone_ent(t, off, &e) < 0) return -1;
    if (e.prev != prev) return zone_bad(t, "the LRU list's links disagree");
    if ((*mark_of(w, off) & (M_USED | M_LRU)) != M_USED)
      return zone_bad(t, "an entry is on the LRU list twice, or a free block is");
    *mark_of(w, off) |= M_LRU;
    n++;
    prev = off;
    off = e.next;
  }
  if (ld32(t->s + S_LRU_TAIL) != prev) return zone_bad(t, "the LRU list's tail is wrong");
  if (n != w->used) return zone_bad(t, "an entry is not on the LRU list");
  return 0;
}

static int check_shard(zone *z, uint32_t i, unsigned char *mark, zone_stats *st) {
  walk w;
  memset(&w, 0, sizeof w);
  w.t.z = z;
  w.t.s = SHARD(z, i);
  w.t.i = i;
  w.mark = mark;
  memset(mark, 0, (z->heap_end - z->heap_off) / 8);
  if (ld64(w.t.s + S_LOGN) != 0)
    zone_bad(&w.t, "the undo log is not empty");
  else if (ld64(w.t.s + S_GEN) != ld64(z->base + H_GEN))
    zone_bad(&w.t, "a flush was not applied");
  else if (check_heap(&w) == 0 && check_lists(&w) == 0 && check_chains(&w) == 0)
    check_lru(&w);
  if (w.t.bad != NULL) {
    z->why = w.t.bad;
    z->shard = (int)i;
    return -1;
  }
  st->entries += w.used;
  st->free_bytes += w.free_bytes;
  st->recovered += ld64(w.t.s + S_RECOVERED);
  st->evicted += ld64(w.t.s + S_EVICTED);
  return 0;
}

int zone_check(zone *z, zone_stats *st) {
  unsigned char *mark = (unsigned char *)malloc((z->heap_end - z->heap_off) / 8);
  uint32_t i;
  int rc;
  memset(st, 0, sizeof *st);
  st->shards = z->nshards;
  if (mark == NULL) {
    z->why = "no memory for the check";
    return ZONE_CORRUPT;
  }
  rc = zone_lock_all(z);
  if (rc == ZONE_OK) {
    for (i = 0; rc == ZONE_OK && i < z->nshards; i++)
      if (check_shard(z, i, mark, st) < 0) rc = ZONE_CORRUPT;
    zone_unlock_all(z);
  }
  free(mark);
  return rc;
}
