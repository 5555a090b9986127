/*
** The block tool, `luashm --blocks`: lists luashm's blocks in /dev/shm (generated luashm_*
** names, any block that starts with a luashm header, any name a tracker recorded) with their
** size, what they hold, whether a live tracker records them and whether their creator is alive;
** removes named blocks (--rm) or every stale one (--rm-stale). Block bytes are untrusted: they
** are only mapped read-only and parsed by the kinds' own probes, under a SIGBUS guard in case
** another program truncates a block while it is read.
*/
#include "blocktool.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kinds.h"
#include "npy.h"
#include "tracker.h"

#define SHM_DIR "/dev/shm/"

typedef struct entry {
  char name[LUASHM_NAME_MAX + 1];
  long long size;
  char kind[96];
  long creator;      /* 0: unknown */
  long tracker;      /* 0: no tracker records it */
  int tracker_alive; /* of the tracker that records it */
} entry;

typedef struct listing {
  entry *e;
  size_t n, cap;
} listing;

static entry *listing_find(listing *l, const char *name) {
  for (size_t i = 0; i < l->n; i++)
    if (strcmp(l->e[i].name, name) == 0) return &l->e[i];
  return NULL;
}

static entry *listing_add(listing *l, const char *name) {
  entry *e = listing_find(l, name);
  if (e != NULL) return e;
  if (l->n == l->cap) {
    size_t cap = l->cap ? 2 * l->cap : 64;
    entry *more = realloc(l->e, cap * sizeof *more);
    if (more == NULL) return NULL;
    l->e = more;
    l->cap = cap;
  }
  e = &l->e[l->n++];
  memset(e, 0, sizeof *e);
  snprintf(e->name, sizeof e->name, "%s", name);
  e->size = -1;
  return e;
}

/* ---------------------------------------------------------------------------------------
** What a block holds
** ------------------------------------------------------------------------------------- */

static sigjmp_buf bus_jump;

static void on_sigbus(int sig) {
  (void)sig;
  siglongjmp(bus_jump, 1);
}

/* Fills the kind (the registry's description) and, for luashm's own kinds, the creator from
   the header. */
static void describe(entry *e, const unsigned char *p, size_t size) {
  const luashm_kind *k = luashm_kind_of(p, size);
  luashm_header h;
  if (k->describe != NULL)
    k->describe(p, size, e->kind, sizeof e->kind);
  else
    snprintf(e->kind, sizeof e->kind, "%s", k->name);
  if (size >= LUASHM_HEADER_SIZE && memcmp(p, LUASHM_MAGIC, 8) == 0) {
    memcpy(&h, p, sizeof h);
    if (h.creator > 0 && h.creator < (int64_t)1 << 31) e->creator = (long)h.creator;
  }
}

/* Maps the block read-only and describes it; 0 if it is luashm's (or may be), -1 if not. */
static int inspect(entry *e, int want_any) {
  char path[sizeof SHM_DIR + LUASHM_NAME_MAX];
  struct sigaction sa, old;
  struct stat st;
  void *p;
  int fd, ours = -1;
  snprintf(path, sizeof path, SHM_DIR "%s", e->name);
  fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    if (fd >= 0) close(fd);
    snprintf(e->kind, sizeof e->kind, "%s", fd < 0 ? "unreadable" : "not a block");
    return want_any ? 0 : -1;
  }
  e->size = (long long)st.st_size;
  if (st.st_size == 0) {
    close(fd);
    snprintf(e->kind, sizeof e->kind, "empty");
    return want_any ? 0 : -1;
  }
  p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
  close(fd);
  if (p == MAP_FAILED) {
    snprintf(e->kind, sizeof e->kind, "unreadable");
    return want_any ? 0 : -1;
  }
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_sigbus;
  sigaction(SIGBUS, &sa, &old);
  if (sigsetjmp(bus_jump, 1) == 0) {
    describe(e, p, (size_t)st.st_size);
    ours = want_any || (st.st_size >= 8 && memcmp(p, LUASHM_MAGIC, 8) == 0) ||
                   strncmp(e->name, "luashm_", 7) == 0
               ? 0
               : -1;
  } else {
    snprintf(e->kind, sizeof e->kind, "unreadable (truncated meanwhile)");
    ours = want_any ? 0 : -1;
  }
  sigaction(SIGBUS, &old, NULL);
  munmap(p, (size_t)st.st_size);
  return ours;
}

/* ---------------------------------------------------------------------------------------
** Listing
** ------------------------------------------------------------------------------------- */

static void on_tracked(void *ud, const char *name, long creator, long tracker, int alive) {
  entry *e = listing_add((listing *)ud, name);
  if (e == NULL) return;
  /* A live tracker's record wins over a dead one's (a name can outlive its first tree). */
  if (e->tracker != 0 && e->tracker_alive && !alive) return;
  e->tracker = tracker;
  e->tracker_alive = alive;
  if (e->creator == 0) e->creator = creator;
}

static int by_name(const void *a, const void *b) {
  return strcmp(((const entry *)a)->name, ((const entry *)b)->name);
}

/* Every block of ours, sorted by name: generated names, blocks with a luashm header, names a
   tracker recorded. Arrays and lists under names of their own that no tracker records are not
   told apart from other programs' NPY files and ShareableLists, so they are not listed. */
static void collect(listing *l) {
  DIR *d = opendir(SHM_DIR);
  struct dirent *de;
  size_t i, j;
  luashm_tracker_scan(on_tracked, l);
  for (i = 0; i < l->n; i++) l->e[i].size = -2; /* tracked: inspected below */
  if (d != NULL) {
    while ((de = readdir(d)) != NULL) {
      entry *e;
      if (de->d_name[0] == '.' || strlen(de->d_name) > LUASHM_NAME_MAX) continue;
      e = listing_add(l, de->d_name);
      if (e == NULL) break;
      if (e->size == -1 && inspect(e, 0) != 0) l->n--; /* a stranger's block */
    }
    closedir(d);
  }
  for (i = j = 0; i < l->n; i++) {
    entry *e = &l->e[i];
    if (e->size == -2) {
      int tracker_creator = (int)e->creator;
      e->creator = 0;
      if (inspect(e, 1) != 0 || e->size < 0) continue; /* tracked name that is gone */
      if (e->creator == 0) e->creator = tracker_creator;
    }
    l->e[j++] = *e;
  }
  l->n = j;
  qsort(l->e, l->n, sizeof *l->e, by_name);
}

/* Stale: no live tracker records it and its creator is known to be dead. Unknown creators
   (raw blocks nobody tracks) are never stale: the tool does not guess. */
static int is_stale(const entry *e) {
  return !(e->tracker != 0 && e->tracker_alive) && e->creator != 0 && !luashm_pid_alive(e->creator);
}

static void print_listing(const listing *l) {
  /* Columns are at least two spaces apart and no value holds two spaces in a row, so a script
     can split rows on runs of two or more spaces. */
  printf("%-23s  %10s  %-22s  %-20s  %-14s  %s\n", "NAME", "SIZE", "KIND", "TRACKED", "CREATOR",
         "STATE");
  for (size_t i = 0; i < l->n; i++) {
    const entry *e = &l->e[i];
    char tracked[40], creator[40];
    if (e->tracker == 0)
      snprintf(tracked, sizeof tracked, "no");
    else
      snprintf(tracked, sizeof tracked, "%s %ld",
               e->tracker_alive ? "yes, tracker" : "dead tracker", e->tracker);
    if (e->creator == 0)
      snprintf(creator, sizeof creator, "?");
    else
      snprintf(creator, sizeof creator, "%ld %s", e->creator,
               luashm_pid_alive(e->creator) ? "alive" : "dead");
    printf("%-23s  %10lld  %-22s  %-20s  %-14s  %s\n", e->name, e->size, e->kind, tracked, creator,
           is_stale(e)                          ? "stale"
           : e->creator == 0 && e->tracker == 0 ? "unknown"
                                                : "live");
  }
}

/* ---------------------------------------------------------------------------------------
** Removing
** ------------------------------------------------------------------------------------- */

static int remove_named(int n, char **names) {
  int rc = 0;
  for (int i = 0; i < n; i++) {
    char err[LUASHM_ERRLEN];
    if (luashm_name_check("rm", names[i], strlen(names[i]), err) != 0 ||
        luashm_shm_unlink(names[i], err) != 0) {
      fprintf(stderr, "luashm: %s\n", err);
      rc = 1;
    } else
      printf("removed %s\n", names[i]);
  }
  return rc;
}

static int remove_stale(listing *l) {
  int rc = 0;
  for (size_t i = 0; i < l->n; i++) {
    char err[LUASHM_ERRLEN];
    if (!is_stale(&l->e[i])) continue;
    if (luashm_shm_unlink(l->e[i].name, err) != 0) {
      fprintf(stderr, "luashm: %s\n", err);
      rc = 1;
    } else
      printf("removed %s\n", l->e[i].name);
  }
  luashm_tracker_prune();
  return rc;
}

static void usage(FILE *f) {
  fprintf(f,
          "usage: luashm --blocks                 list luashm's blocks in /dev/shm\n"
          "       luashm --blocks --rm NAME...    unlink the named blocks\n"
          "       luashm --blocks --rm-stale      unlink every stale block (creator dead, no\n"
          "                                       live tracker records it)\n");
}

int luashm_blocktool(int argc, char **argv) {
  listing l = {NULL, 0, 0};
  int rc = 0;
  if (argc >= 2 && strcmp(argv[1], "--rm") == 0) {
    if (argc < 3) {
      usage(stderr);
      return 2;
    }
    return remove_named(argc - 2, argv + 2);
  }
  if (argc > 2 || (argc == 2 && strcmp(argv[1], "--rm-stale") != 0)) {
    usage(argc == 2 && strcmp(argv[1], "--help") == 0 ? stdout : stderr);
    return argc == 2 && strcmp(argv[1], "--help") == 0 ? 0 : 2;
  }
  collect(&l);
  if (argc == 2)
    rc = remove_stale(&l);
  else
    print_listing(&l);
  free(l.e);
  fflush(stdout);
  return rc;
}
