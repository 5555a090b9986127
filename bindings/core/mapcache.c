/*
** The mapping cache (see mapcache.h). Identity is what makes sharing safe: a name can be
** unlinked and made again for another block, so a mapping is found by the device, inode and
** size of the file the name holds now, never by the name. A mapping pins its file's inode, so
** an inode number that matches a live mapping is that very file. A new mapping is cached only
** when the name held the same file just before and just after the attach opened it.
**
** An idle mapping keeps its block's pages alive even once the block is unlinked, so idle
** mappings whose name no longer holds their file are unmapped when this process makes a new
** mapping (looking at most every 10 ms), when it unlinks the name itself, or flushes.
**
** Process-level state on purpose (a mapping belongs to the process, whatever Lua state holds
** it), guarded by a private mutex for embedders that run states in several threads. A forked
** child starts with its parent's mappings, and the references its copies of the parent's
** objects hold; it unmaps the unreferenced ones at once, so that it never keeps pages alive
** that its parent may have let go.
*/
#include "mapcache.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "posix.h"

#define BUCKETS 256
#define IDLE_DEFAULT 8
#define IDLE_MAX 4096
#define SWEEP_NS 10000000 /* new mappings look for stale idle ones at most this often */

struct luashm_mapping {
  dev_t dev;
  ino_t ino;
  size_t size;
  void *data;
  int refs;
  int doomed;           /* out of the buckets: unmapped when its last reference goes */
  int unknown;          /* dev and ino not known yet (a created block's, until it is first sent) */
  luashm_mapping *next; /* in its bucket */
  luashm_mapping *older, *newer;  /* in the idle list, while refs == 0 */
  char name[LUASHM_NAME_MAX + 1]; /* the name it was attached by (luashm_mapcache_forget) */
};

static struct {
  pthread_mutex_t mu;
  luashm_mapping *bucket[BUCKETS];
  luashm_mapping *oldest, *newest; /* the idle list */
  int idle;
  int found; /* mappings in the buckets */
  int forks_handled;
  int64_t swept; /* when the last sweep_stale ran (CLOCK_MONOTONIC ns) */
} cache = {PTHREAD_MUTEX_INITIALIZER, {NULL}, NULL, NULL, 0, 0, 0, 0};

/* How many unreferenced mappings to keep: LUASHM_MAP_CACHE as the process found it at its
   first attach; 0 turns the cache off (every attach maps, every close unmaps). */
static int idle_max(void) {
  static int max = -1;
  if (max < 0) {
    const char *env = getenv("LUASHM_MAP_CACHE");
    char *end;
    long v = env != NULL ? strtol(env, &end, 10) : IDLE_DEFAULT;
    if (env != NULL && (end == env || *end != '\0' || v < 0 || v > IDLE_MAX)) v = IDLE_DEFAULT;
    max = (int)v;
  }
  return max;
}

static luashm_mapping **bucket_of(dev_t dev, ino_t ino) {
  uint64_t h = ((uint64_t)ino ^ ((uint64_t)dev << 32)) * 0x9E3779B97F4A7C15ULL;
  return &cache.bucket[h >> 56];
}

/* The rest: called with cache.mu held. */

static void idle_remove(luashm_mapping *e) {
  if (e->older != NULL)
    e->older->newer = e->newer;
  else
    cache.oldest = e->newer;
  if (e->newer != NULL)
    e->newer->older = e->older;
  else
    cache.newest = e->older;
  e->older = e->newer = NULL;
  cache.idle--;
}

static void idle_append(luashm_mapping *e) {
  e->older = cache.newest;
  e->newer = NULL;
  if (cache.newest != NULL)
    cache.newest->newer = e;
  else
    cache.oldest = e;
  cache.newest = e;
  cache.idle++;
}

static void bucket_remove(luashm_mapping *e) {
  luashm_mapping **p = bucket_of(e->dev, e->ino);
  while (*p != e) p = &(*p)->next;
  *p = e->next;
  cache.found--;
}

/* Unmaps an idle mapping and forgets it. */
static void evict(luashm_mapping *e) {
  bucket_remove(e);
  idle_remove(e);
  luashm_shm_unmap(e->data, e->size);
  free(e);
}

static int flush_locked(void) {
  int n = 0;
  while (cache.oldest != NULL) {
    evict(cache.oldest);
    n++;
  }
  return n;
}

static void on_fork_prepare(void) {
  pthread_mutex_lock(&cache.mu);
}

static void on_fork_parent(void) {
  pthread_mutex_unlock(&cache.mu);
}

static void on_fork_child(void) {
  flush_locked();
  pthread_mutex_unlock(&cache.mu);
}

/* Unmaps the idle mappings whose name no longer holds their file (unlinked, or made again for
   another block, by any process): their pages must not stay alive for a cache that can never
   hit them again. An lstat each, so only on a miss, and at most every SWEEP_NS: a worker
   mapping a new block every few microseconds must not pay eight lstats for each. */
static void sweep_stale(void) {
  luashm_mapping *e, *newer;
  struct stat st;
  struct timespec now;
  int64_t t;
  clock_gettime(CLOCK_MONOTONIC, &now);
  t = (int64_t)now.tv_sec * 1000000000 + now.tv_nsec;
  if (cache.oldest == NULL || t - cache.swept < SWEEP_NS) return;
  cache.swept = t;
  for (e = cache.oldest; e != NULL; e = newer) {
    newer = e->newer;
    if (luashm_shm_lstat(e->name, &st) != 0 || st.st_dev != e->dev || st.st_ino != e->ino) evict(e);
  }
}

/* The cached mapping (dev, ino, size) attached by name (any name when NULL), its reference
   taken, or NULL. Called with cache.mu held. */
static luashm_mapping *take(uint64_t dev, uint64_t ino, uint64_t size, const char *name) {
  luashm_mapping *e;
  for (e = *bucket_of((dev_t)dev, (ino_t)ino); e != NULL; e = e->next) {
    if ((uint64_t)e->dev != dev || (uint64_t)e->ino != ino || (uint64_t)e->size != size ||
        (name != NULL && strcmp(e->name, name) != 0))
      continue;
    if (e->refs++ == 0) idle_remove(e);
    return e;
  }
  return NULL;
}

int luashm_mapcache_attach_hint(const char *name, const luashm_fileid *hint, luashm_mapping **m,
                                void **data, size_t *size, char *err) {
  luashm_mapping *e = NULL;
  if (hint != NULL && idle_max() > 0) {
    pthread_mutex_lock(&cache.mu);
    e = take(hint->dev, hint->ino, hint->size, name);
    pthread_mutex_unlock(&cache.mu);
  }
  if (e == NULL) return luashm_mapcache_attach(name, m, data, size, err);
  *m = e;
  *data = e->data;
  *size = e->size;
  return 0;
}

luashm_mapping *luashm_mapcache_own(const char *name, void *data, size_t size) {
  luashm_mapping *e = (luashm_mapping *)calloc(1, sizeof *e);
  if (e == NULL) return NULL;
  e->size = size;
  e->data = data;
  e->refs = 1;
  e->doomed = 1; /* in no bucket: found by nobody, unmapped with its last handle */
  e->unknown = 1;
  strcpy(e->name, name);
  return e;
}

int luashm_mapcache_id(luashm_mapping *m, luashm_fileid *id) {
  if (m->unknown) {
    struct stat st;
    if (luashm_shm_lstat(m->name, &st) != 0 || !S_ISREG(st.st_mode) ||
        (size_t)st.st_size != m->size)
      return 0; /* asked again next time */
    m->dev = st.st_dev;
    m->ino = st.st_ino;
    m->unknown = 0;
  }
  id->dev = (uint64_t)m->dev;
  id->ino = (uint64_t)m->ino;
  id->size = (uint64_t)m->size;
  return 1;
}

int luashm_mapcache_attach(const char *name, luashm_mapping **m, void **data, size_t *size,
                           char *err) {
  struct stat before;
  luashm_fileid id;
  luashm_mapping *e;
  int known;
  *m = NULL;
  if (idle_max() == 0) return luashm_shm_attach(name, data, size, NULL, err);
  known = luashm_shm_lstat(name, &before) == 0 && S_ISREG(before.st_mode) && before.st_size > 0;
  if (known) {
    pthread_mutex_lock(&cache.mu);
    e = take((uint64_t)before.st_dev, (uint64_t)before.st_ino, (uint64_t)before.st_size, NULL);
    pthread_mutex_unlock(&cache.mu);
    if (e != NULL) {
      *m = e;
      *data = e->data;
      *size = e->size;
      return 0;
    }
  }
  /* A miss: a new mapping, which errno and err describe if it fails. It is cached under the
     identity of the file it maps (attach's own fstat), and only when that is the file the name
     held at the lookup: otherwise the name changed hands meanwhile (an uncached mapping). */
  if (luashm_shm_attach(name, data, size, &id, err) != 0) return -1;
  if (!known || id.dev != (uint64_t)before.st_dev || id.ino != (uint64_t)before.st_ino ||
      id.size != (uint64_t)before.st_size)
    return 0;
  e = (luashm_mapping *)calloc(1, sizeof *e);
  if (e == NULL) return 0;
  e->dev = before.st_dev;
  e->ino = before.st_ino;
  e->size = *size;
  e->data = *data;
  e->refs = 1;
  strcpy(e->name, name);
  pthread_mutex_lock(&cache.mu);
  sweep_stale();
  if (!cache.forks_handled)
    cache.forks_handled = pthread_atfork(on_fork_prepare, on_fork_parent, on_fork_child) == 0;
  e->next = *bucket_of(e->dev, e->ino);
  *bucket_of(e->dev, e->ino) = e;
  cache.found++;
  pthread_mutex_unlock(&cache.mu);
  *m = e;
  return 0;
}

void luashm_mapcache_release(luashm_mapping *m) {
  pthread_mutex_lock(&cache.mu);
  if (--m->refs == 0) {
    if (m->doomed) {
      luashm_shm_unmap(m->data, m->size);
      free(m);
    } else {
      idle_append(m);
      while (cache.idle > idle_max()) evict(cache.oldest);
    }
  }
  pthread_mutex_unlock(&cache.mu);
}

void luashm_mapcache_forget(const char *name) {
  luashm_mapping *e, *next;
  int i;
  pthread_mutex_lock(&cache.mu);
  for (i = 0; i < BUCKETS && cache.found > 0; i++) {
    for (e = cache.bucket[i]; e != NULL; e = next) {
      next = e->next;
      if (strcmp(e->name, name) != 0) continue;
      if (e->refs == 0) {
        evict(e);
      } else {
        bucket_remove(e);
        e->doomed = 1;
      }
    }
  }
  pthread_mutex_unlock(&cache.mu);
}

int luashm_mapcache_flush(void) {
  int n;
  pthread_mutex_lock(&cache.mu);
  n = flush_locked();
  pthread_mutex_unlock(&cache.mu);
  return n;
}
