/*
** The block tool, `luashm --blocks`: lists luashm's blocks in /dev/shm (generated luashm_*
** names, any block that starts with a luashm header, any file a tracker recorded) with their
** size, what they hold, whether a live tracker records them and whether their creator is alive;
** removes named blocks (--rm) or every stale one (--rm-stale).
**
** /dev/shm is shared with every local user and program, so nothing in it is trusted: only
** regular files are looked at (never opened through a symbolic link, never a FIFO that would
** block), names are printed escaped, a tracker's index speaks only for files of its own owner
** and only for the very files (device and inode) it recorded, and a block some live process
** maps is never stale. Block bytes are mapped read-only and parsed by the kinds' own probes,
** under a SIGBUS guard in case another program truncates a block while it is read.
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
#include <sys/sysmacros.h>
#include <unistd.h>

#include "kinds.h"
#include "npy.h"
#include "tracker.h"

typedef struct entry {
  char name[LUASHM_NAME_MAX + 1];
  luashm_fileid id; /* the file listed under the name */
  long long size;
  char kind[96];
  long creator;      /* 0: unknown */
  long tracker;      /* 0: no tracker records it */
  int tracker_alive; /* of the tracker that records it */
  int stale;         /* by what is recorded: see judge() */
  long user;         /* a live process that maps it (looked for only when it looks stale) */
} entry;

typedef struct listing {
  entry *e;
  size_t n, cap;
  int dir; /* /dev/shm */
} listing;

static entry *listing_find(listing *l, const char *name) {
  for (size_t i = 0; i < l->n; i++)
    if (strcmp(l->e[i].name, name) == 0) return &l->e[i];
  return NULL;
}

/* The entry for name (a regular file, st), made if new. */
static entry *listing_add(listing *l, const char *name, const struct stat *st) {
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
  e->id.dev = (uint64_t)st->st_dev;
  e->id.ino = (uint64_t)st->st_ino;
  e->size = (long long)st->st_size;
  return e;
}

/* lstat of /dev/shm/name; 0 only for a regular file. */
static int stat_regular(int dir, const char *name, struct stat *st) {
  return fstatat(dir, name, st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st->st_mode) ? 0 : -1;
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

/* Maps the listed file read-only (if it is still that file) and describes it. Returns whether
   it carries a luashm header. */
static int inspect(int dir, entry *e) {
  struct sigaction sa, old;
  struct stat st;
  void *p;
  int fd, header = 0;
  fd = openat(dir, e->name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || (uint64_t)st.st_ino != e->id.ino ||
      (uint64_t)st.st_dev != e->id.dev) {
    if (fd >= 0) close(fd);
    snprintf(e->kind, sizeof e->kind, "unreadable");
    return 0;
  }
  e->size = (long long)st.st_size;
  if (st.st_size == 0) {
    close(fd);
    snprintf(e->kind, sizeof e->kind, "empty");
    return 0;
  }
  p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
  close(fd);
  if (p == MAP_FAILED) {
    snprintf(e->kind, sizeof e->kind, "unreadable");
    return 0;
  }
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_sigbus;
  sigaction(SIGBUS, &sa, &old);
  if (sigsetjmp(bus_jump, 1) == 0) {
    describe(e, p, (size_t)st.st_size);
    header = st.st_size >= 8 && memcmp(p, LUASHM_MAGIC, 8) == 0;
  } else {
    snprintf(e->kind, sizeof e->kind, "unreadable (truncated meanwhile)");
  }
  sigaction(SIGBUS, &old, NULL);
  munmap(p, (size_t)st.st_size);
  return header;
}

/* ---------------------------------------------------------------------------------------
** Listing
** ------------------------------------------------------------------------------------- */

/* Lists the file a tracker's record stands for (luashm_tracker_resolve: nobody's index can
   vouch for, or condemn, another user's file or another file than the one it recorded). */
static void on_tracked(void *ud, const luashm_trackrec *r, long tracker, int alive, uid_t owner) {
  listing *l = (listing *)ud;
  struct stat st;
  const char *name = luashm_tracker_resolve(r, owner, &st);
  entry *e;
  if (name == NULL || (e = listing_add(l, name, &st)) == NULL) return;
  /* A live tracker's record wins over a dead one's (a name can outlive its first tree). */
  if (e->tracker != 0 && e->tracker_alive && !alive) return;
  e->tracker = tracker;
  e->tracker_alive = alive;
  e->creator = r->creator;
}

static int by_name(const void *a, const void *b) {
  return strcmp(((const entry *)a)->name, ((const entry *)b)->name);
}

/* Every block of ours, sorted by name: files a tracker recorded, generated names, blocks with a
   luashm header. Arrays and lists under names of their own that no tracker records are not
   told apart from other programs' NPY files and ShareableLists, so they are not listed. */
static void collect(listing *l) {
  DIR *d = fdopendir(dup(l->dir));
  struct dirent *de;
  size_t tracked, i, j;
  luashm_tracker_scan(on_tracked, l);
  tracked = l->n;
  while (d != NULL && (de = readdir(d)) != NULL) {
    struct stat st;
    if (de->d_name[0] == '.' || strlen(de->d_name) > LUASHM_NAME_MAX ||
        stat_regular(l->dir, de->d_name, &st) != 0 || listing_find(l, de->d_name) != NULL)
      continue;
    if (listing_add(l, de->d_name, &st) == NULL) break;
  }
  if (d != NULL) closedir(d);
  for (i = j = 0; i < l->n; i++) {
    entry *e = &l->e[i];
    int header = inspect(l->dir, e); /* a header's creator wins over a record's */
    /* A stranger's file: neither tracked, nor named like ours, nor headed like ours. */
    if (i >= tracked && !header && strncmp(e->name, "luashm_", 7) != 0) continue;
    l->e[j++] = *e;
  }
  l->n = j;
  if (l->n > 0) qsort(l->e, l->n, sizeof *l->e, by_name); /* e is NULL when empty */
}

/* Stale by what is recorded: no live tracker records it and its creator is known to be dead.
   Unknown creators (raw blocks nobody tracks) are never stale: the tool does not guess.
   Returns how many look stale. */
static size_t judge(listing *l) {
  size_t n = 0;
  for (size_t i = 0; i < l->n; i++) {
    entry *e = &l->e[i];
    e->stale =
        !(e->tracker != 0 && e->tracker_alive) && e->creator != 0 && !luashm_pid_alive(e->creator);
    n += (size_t)e->stale;
  }
  return n;
}

/* Finds, for each block that looks stale, a live process that maps it, as fuser does: by the
   device and inode of each mapping in /proc/<pid>/maps (every process's as root, one's own
   user's otherwise). */
static void find_users(listing *l) {
  DIR *d;
  struct dirent *de;
  size_t i, cap = 1 << 16;
  char *text = NULL;
  long self = (long)getpid();
  if (judge(l) == 0 || (d = opendir("/proc")) == NULL) return;
  if ((text = malloc(cap)) == NULL) {
    closedir(d);
    return;
  }
  while ((de = readdir(d)) != NULL) {
    char path[300], *line, *save;
    long pid = strtol(de->d_name, &line, 10);
    size_t len = 0;
    ssize_t n;
    int fd;
    if (*line != '\0' || pid <= 0 || pid == self) continue;
    snprintf(path, sizeof path, "/proc/%ld/maps", pid);
    if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) continue;
    while ((n = read(fd, text + len, cap - len - 1)) > 0) {
      len += (size_t)n;
      if (cap - len < 4096) {
        char *more = realloc(text, 2 * cap);
        if (more == NULL) break; /* what was read is still looked at */
        text = more;
        cap *= 2;
      }
    }
    close(fd);
    text[len] = '\0';
    for (line = strtok_r(text, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save)) {
      unsigned major, minor;
      unsigned long long ino;
      if (sscanf(line, "%*x-%*x %*s %*x %x:%x %llu", &major, &minor, &ino) != 3 || ino == 0)
        continue;
      for (i = 0; i < l->n; i++) {
        entry *e = &l->e[i];
        if (e->stale && e->user == 0 && e->id.ino == ino &&
            e->id.dev == (uint64_t)makedev(major, minor))
          e->user = pid;
      }
    }
  }
  closedir(d);
  free(text);
}

static int is_stale(const entry *e) {
  return e->stale && e->user == 0;
}

static void print_listing(const listing *l) {
  /* Columns are at least two spaces apart and no value holds two spaces in a row (names are
     escaped: no space at all), so a script can split rows on runs of two or more spaces. */
  printf("%-23s  %10s  %-22s  %-20s  %-14s  %s\n", "NAME", "SIZE", "KIND", "TRACKED", "CREATOR",
         "STATE");
  for (size_t i = 0; i < l->n; i++) {
    const entry *e = &l->e[i];
    char tracked[40], creator[40], state[40], name[4 * LUASHM_NAME_MAX + 1];
    luashm_name_escape(name, sizeof name, e->name);
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
    if (e->user != 0)
      snprintf(state, sizeof state, "in use by pid %ld", e->user);
    else
      snprintf(state, sizeof state, "%s",
               is_stale(e)                          ? "stale"
               : e->creator == 0 && e->tracker == 0 ? "unknown"
                                                    : "live");
    printf("%-23s  %10lld  %-22s  %-20s  %-14s  %s\n", name, e->size, e->kind, tracked, creator,
           state);
  }
}

/* ---------------------------------------------------------------------------------------
** Removing
** ------------------------------------------------------------------------------------- */

static int remove_named(int n, char **names) {
  int rc = 0;
  for (int i = 0; i < n; i++) {
    char err[LUASHM_ERRLEN], esc[4 * LUASHM_NAME_MAX + 1];
    const char *why = luashm_name_invalid(names[i], strlen(names[i]));
    /* Messages quote the name escaped, as every line of the tool does. */
    luashm_name_escape(esc, sizeof esc, names[i]);
    if (why != NULL || luashm_shm_unlink(names[i], err) != 0) {
      fprintf(stderr, "luashm: %s '%s': %s\n", why ? "rm" : "unlink", esc,
              why ? why : luashm_strerror(errno));
      rc = 1;
    } else
      printf("removed %s\n", esc);
  }
  return rc;
}

/* Unlinks each stale block of this user's, if the name still holds the file that was judged. */
static int remove_stale(listing *l) {
  int rc = 0;
  for (size_t i = 0; i < l->n; i++) {
    entry *e = &l->e[i];
    char esc[4 * LUASHM_NAME_MAX + 1];
    struct stat st;
    luashm_name_escape(esc, sizeof esc, e->name);
    if (e->user != 0) printf("kept %s: in use by pid %ld\n", esc, e->user);
    if (!is_stale(e) || stat_regular(l->dir, e->name, &st) != 0 ||
        (uint64_t)st.st_ino != e->id.ino || (uint64_t)st.st_dev != e->id.dev)
      continue;
    /* Only one's own: what another user left is theirs to remove (or named with --rm), and a
       header that says "dead creator" can be forged by whoever may write the block. */
    if (st.st_uid != geteuid()) {
      printf("kept %s: owned by uid %ld\n", esc, (long)st.st_uid);
      continue;
    }
    if (unlinkat(l->dir, e->name, 0) != 0) {
      fprintf(stderr, "luashm: unlink '%s': %s\n", esc, luashm_strerror(errno));
      rc = 1;
    } else
      printf("removed %s\n", esc);
  }
  luashm_tracker_prune();
  return rc;
}

static void usage(FILE *f) {
  fprintf(f,
          "usage: luashm --blocks                 list luashm's blocks in /dev/shm\n"
          "       luashm --blocks --rm NAME...    unlink the named blocks\n"
          "       luashm --blocks --rm-stale      unlink every stale block of yours (creator\n"
          "                                       dead, no live tracker records it, no process\n"
          "                                       maps it)\n");
}

int luashm_blocktool(int argc, char **argv) {
  listing l = {NULL, 0, 0, -1};
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
  l.dir = open(LUASHM_SHM_DIR, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (l.dir < 0) {
    fprintf(stderr, "luashm: blocks: " LUASHM_SHM_DIR ": %s\n", strerror(errno));
    return 1;
  }
  collect(&l);
  find_users(&l);
  if (argc == 2)
    rc = remove_stale(&l);
  else
    print_listing(&l);
  free(l.e);
  close(l.dir);
  fflush(stdout);
  return rc;
}
