/*
** The tracker (watchdog). The first tracked create of a process tree forks a watchdog that
** holds one end of a SOCK_SEQPACKET socket pair; every process of the tree holds the other end
** (inherited by fork, close-on-exec so that an exec'd program is a tree of its own) and sends
** one record per create ("+dev ino pid name") and per unlink ("-name"). When the last process of
** the tree is gone, however it died, the watchdog reads end-of-file, unlinks each recorded
** name that is still the very file that was created (same device and inode), prints one line
** naming them and exits. A socket rather than a pipe: send(MSG_NOSIGNAL) turns a vanished
** watchdog into an error instead of a SIGPIPE, and each record arrives as one message.
*/
#include "tracker.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "posix.h"

#define SHM_DIR "/dev/shm/"
#define INDEX_PREFIX ".luashm-tracker-"
#define RECORD_MAX (LUASHM_NAME_MAX + 80)
#define INDEX_DELAY_MS 20

/* Process-level state, shared with forked children on purpose: a child is part of the tree.
   tree_fd is close-on-exec, so exec'd programs are not. */
static int tree_fd = -1;
static long tree_pid = 0;

/* =======================================================================================
** The watchdog process
** ===================================================================================== */

typedef struct record {
  struct record *next;
  unsigned long long dev, ino;
  long creator;
  char name[];
} record;

typedef struct table {
  record **bucket;
  size_t nbucket, count;
} table;

static size_t hash(const char *s) {
  size_t h = 1469598103934665603u;
  for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211u;
  return h;
}

static record **table_find(table *t, const char *name) {
  record **p = &t->bucket[hash(name) % t->nbucket];
  while (*p != NULL && strcmp((*p)->name, name) != 0) p = &(*p)->next;
  return p;
}

static void table_grow(table *t) {
  size_t n = t->nbucket * 2, i;
  record **b = calloc(n, sizeof *b);
  if (b == NULL) return; /* longer chains, still correct */
  for (i = 0; i < t->nbucket; i++) {
    record *r = t->bucket[i], *next;
    for (; r != NULL; r = next) {
      next = r->next;
      r->next = b[hash(r->name) % n];
      b[hash(r->name) % n] = r;
    }
  }
  free(t->bucket);
  t->bucket = b;
  t->nbucket = n;
}

/* "+dev ino pid name": a name created again replaces the old record. */
static void table_add(table *t, const char *rec) {
  unsigned long long dev, ino;
  long creator;
  int off = 0;
  record **p, *r;
  if (sscanf(rec, "%llu %llu %ld %n", &dev, &ino, &creator, &off) != 3 || off == 0) return;
  rec += off;
  if (*rec == '\0' || strlen(rec) > LUASHM_NAME_MAX) return;
  p = table_find(t, rec);
  if (*p == NULL) {
    r = malloc(sizeof *r + strlen(rec) + 1);
    if (r == NULL) return;
    strcpy(r->name, rec);
    r->next = NULL;
    *p = r;
    t->count++;
  }
  (*p)->dev = dev;
  (*p)->ino = ino;
  (*p)->creator = creator;
  if (t->count > 2 * t->nbucket) table_grow(t);
}

static void table_remove(table *t, const char *name) {
  record **p = table_find(t, name), *r = *p;
  if (r == NULL) return;
  *p = r->next;
  free(r);
  t->count--;
}

static void index_path(char *out, size_t n, long pid, const char *suffix) {
  snprintf(out, n, SHM_DIR INDEX_PREFIX "%ld%s", pid, suffix);
}

/* The index the block tool reads: written beside, then renamed over, so a reader never sees
   half of it. Best effort: a tree works the same without it. */
static void index_write(table *t) {
  char path[128], tmp[128];
  size_t i;
  FILE *f;
  int fd;
  index_path(path, sizeof path, (long)getpid(), "");
  index_path(tmp, sizeof tmp, (long)getpid(), ".tmp");
  fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return;
  f = fdopen(fd, "w");
  if (f == NULL) {
    close(fd);
    unlink(tmp);
    return;
  }
  fprintf(f, "luashm-tracker 1 %ld\n", (long)getpid());
  for (i = 0; i < t->nbucket; i++)
    for (record *r = t->bucket[i]; r != NULL; r = r->next)
      fprintf(f, "%ld %s\n", r->creator, r->name);
  if (fclose(f) != 0 || rename(tmp, path) != 0) unlink(tmp);
}

/* Unlinks what is left, when it is still the file that was recorded; one line on stderr. */
static void cleanup(table *t) {
  size_t i, len = 0, cap = 256;
  int n = 0;
  char *names = malloc(cap), *line;
  if (names == NULL) return;
  names[0] = '\0';
  for (i = 0; i < t->nbucket; i++) {
    for (record *r = t->bucket[i]; r != NULL; r = r->next) {
      char path[sizeof SHM_DIR + LUASHM_NAME_MAX + 1], err[LUASHM_ERRLEN];
      struct stat st;
      size_t nl = strlen(r->name);
      snprintf(path, sizeof path, SHM_DIR "%s", r->name);
      if (stat(path, &st) != 0) continue;
      if (r->ino != 0 &&
          ((unsigned long long)st.st_dev != r->dev || (unsigned long long)st.st_ino != r->ino))
        continue; /* someone else's block now carries the name */
      if (luashm_shm_unlink(r->name, err) != 0) continue;
      if (len + nl + 3 > cap) {
        char *more = realloc(names, cap = 2 * (len + nl + 3));
        if (more == NULL) continue;
        names = more;
      }
      len += (size_t)sprintf(names + len, "%s%s", n > 0 ? ", " : "", r->name);
      n++;
    }
  }
  if (n > 0) {
    line = malloc(len + 96);
    if (line != NULL) {
      int ll = sprintf(line, "luashm: tracker: unlinked %d leaked block%s: %s\n", n,
                       n == 1 ? "" : "s", names);
      ssize_t w = write(STDERR_FILENO, line, (size_t)ll);
      (void)w;
      free(line);
    }
  }
  free(names);
}

/* The tracker must not keep the tree's blocks alive: drop every shared-memory mapping the fork
   copied (the first block is mapped when its create starts the tracker). */
static void unmap_blocks(void) {
  size_t len = 0, cap = 1 << 16;
  char *buf = malloc(cap), *line, *save;
  int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
  ssize_t n;
  if (buf == NULL || fd < 0) goto done;
  while ((n = read(fd, buf + len, cap - len - 1)) > 0) {
    len += (size_t)n;
    if (cap - len < 4096) {
      char *more = realloc(buf, cap *= 2);
      if (more == NULL) goto done;
      buf = more;
    }
  }
  buf[len] = '\0';
  for (line = strtok_r(buf, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save)) {
    unsigned long lo, hi;
    char *path = strchr(line, '/');
    if (path != NULL && strncmp(path, SHM_DIR, sizeof SHM_DIR - 1) == 0 &&
        sscanf(line, "%lx-%lx", &lo, &hi) == 2)
      munmap((void *)lo, hi - lo);
  }
done:
  if (fd >= 0) close(fd);
  free(buf);
}

/* Detaches from the tree's terminal and signals, keeps only stderr and the socket (moved to
   fd 3), and drops the tree's mappings. Returns the socket's fd. */
static int watchdog_detach(int rfd) {
  sigset_t none;
  int fd, devnull;
  setsid();
  prctl(PR_SET_NAME, "luashm-tracker"); /* what ps and top show, beside the host's command line */
  signal(SIGINT, SIG_IGN);
  signal(SIGTERM, SIG_IGN);
  signal(SIGHUP, SIG_IGN);
  signal(SIGPIPE, SIG_IGN);
  signal(SIGQUIT, SIG_IGN);
  signal(SIGCHLD, SIG_DFL);
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, NULL);
  fd = rfd == 3 ? 3 : dup2(rfd, 3);
  if (fd != 3) _exit(1);
  if (close_range(4, ~0U, 0) != 0)
    for (int i = 4; i < 65536; i++) close(i);
  devnull = open("/dev/null", O_RDWR);
  if (devnull >= 0) {
    dup2(devnull, STDIN_FILENO);
    dup2(devnull, STDOUT_FILENO);
    if (devnull > 3) close(devnull);
  }
  if (chdir("/") != 0) _exit(1);
  unmap_blocks();
  return fd;
}

static long now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Applies records until end-of-file. The index is rewritten at most every INDEX_DELAY_MS
   while records come in, so a burst of creates costs the tree no rewrite per block. */
static void watchdog(int rfd) {
  table t = {calloc(64, sizeof(record *)), 64, 0};
  char rec[RECORD_MAX + 1], path[128];
  int dirty = 0, fd = watchdog_detach(rfd);
  long me = (long)getpid(), written = 0;
  if (t.bucket == NULL || send(fd, &me, sizeof me, MSG_NOSIGNAL) != (ssize_t)sizeof me) _exit(1);
  for (;;) {
    struct pollfd p = {fd, POLLIN, 0};
    long wait = dirty ? written + INDEX_DELAY_MS - now_ms() : -1;
    ssize_t n;
    int r = poll(&p, 1, dirty && wait < 0 ? 0 : (int)wait);
    if (r == 0) {
      index_write(&t);
      dirty = 0;
      written = now_ms();
      continue;
    }
    if (r < 0 && errno != EINTR) break;
    n = recv(fd, rec, RECORD_MAX, MSG_DONTWAIT);
    if (n < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)) continue;
    if (n <= 0) break;
    rec[n] = '\0';
    if (rec[0] == '+')
      table_add(&t, rec + 1);
    else if (rec[0] == '-')
      table_remove(&t, rec + 1);
    dirty = 1;
  }
  cleanup(&t);
  index_path(path, sizeof path, me, "");
  unlink(path);
  _exit(0);
}

/* =======================================================================================
** The tree's side
** ===================================================================================== */

int luashm_tracker_start(char *err) {
  int sv[2], st = 0, e;
  pid_t mid;
  if (tree_fd >= 0) return 0;
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0)
    return luashm_fail(err, "tracker", NULL, strerror(errno));
  /* Forked twice, so that the watchdog is nobody's child in the tree: no zombie, and no
     waitpid(-1) of a worker pool ever reaps it. It announces its pid once it is ready.
     _Fork, because this may run inside the fork handler below. */
  mid = _Fork();
  if (mid == 0) {
    pid_t dog;
    close(sv[1]);
    dog = _Fork();
    if (dog == 0) watchdog(sv[0]);
    _exit(dog < 0 ? 1 : 0);
  }
  e = errno;
  close(sv[0]);
  if (mid < 0) {
    close(sv[1]);
    return luashm_fail(err, "tracker", NULL, strerror(e));
  }
  while (waitpid(mid, &st, 0) < 0 && errno == EINTR) {
  }
  if (WIFEXITED(st) && WEXITSTATUS(st) == 0) {
    ssize_t n;
    while ((n = recv(sv[1], &tree_pid, sizeof tree_pid, 0)) < 0 && errno == EINTR) {
    }
    if (n == (ssize_t)sizeof tree_pid) {
      tree_fd = sv[1];
      return 0;
    }
  }
  close(sv[1]);
  tree_pid = 0;
  return luashm_fail(err, "tracker", NULL, "cannot start the watchdog process");
}

/* A process that forks before its first tracked create starts the watchdog first, so that
   the child is in the parent's tree and not the root of a tree of its own (whose end would
   unlink what the child made while its parent still uses it). posix_spawn, which os.execute
   and io.popen use, runs no fork handler: programs they start are trees of their own anyway. */
static void on_fork(void) {
  char err[LUASHM_ERRLEN];
  luashm_tracker_start(err); /* on failure the child starts its own at its first create */
}

void luashm_tracker_init(void) {
  static int done = 0;
  if (!done && pthread_atfork(on_fork, NULL, NULL) == 0) done = 1;
}

long luashm_tracker_pid(void) {
  return tree_fd >= 0 ? tree_pid : 0;
}

static int tracker_send(const char *rec, size_t len) {
  while (send(tree_fd, rec, len, MSG_NOSIGNAL) < 0) {
    if (errno != EINTR) return -1;
  }
  return 0;
}

/* Sends "+dev ino creator name"; with_inode 0 records a name that does not exist yet (dev and
   ino 0: the watchdog trusts the name). */
static int tracker_record(const char *name, int with_inode, char *err) {
  char rec[RECORD_MAX + 1], path[sizeof SHM_DIR + LUASHM_NAME_MAX + 1];
  struct stat st;
  int n;
  if (luashm_tracker_start(err) != 0) return -1;
  memset(&st, 0, sizeof st);
  snprintf(path, sizeof path, SHM_DIR "%s", name);
  if (with_inode && stat(path, &st) != 0) memset(&st, 0, sizeof st); /* no /dev/shm: trust it */
  n = snprintf(rec, sizeof rec, "+%llu %llu %ld %s", (unsigned long long)st.st_dev,
               (unsigned long long)st.st_ino, (long)getpid(), name);
  if (tracker_send(rec, (size_t)n) != 0)
    return luashm_fail(err, "create", name,
                       "the tracker of this process tree is gone (pass track = false to create "
                       "untracked blocks)");
  return 0;
}

int luashm_tracker_add(const char *name, char *err) {
  return tracker_record(name, 1, err);
}

void luashm_tracker_remove(const char *name) {
  char rec[RECORD_MAX + 1];
  int n;
  if (tree_fd < 0) return;
  n = snprintf(rec, sizeof rec, "-%s", name);
  tracker_send(rec, (size_t)n);
}

int luashm_tracker_unlink(const char *name, char *err) {
  int rc = luashm_shm_unlink(name, err);
  luashm_tracker_remove(name);
  return rc;
}

int luashm_tracker_create(const char *name, size_t size, mode_t mode, int track, char *out,
                          void **data, char *err) {
  int tries = 0;
  for (;;) {
    if (name != NULL)
      strcpy(out, name);
    else if (luashm_name_new(out, err) != 0)
      return -1;
    if (track && name == NULL && tracker_record(out, 0, err) != 0) return -1;
    if (luashm_shm_create(out, size, mode, data, err) == 0) break;
    if (track && name == NULL) luashm_tracker_remove(out);
    /* A generated name that collides (2^-64 odds) is simply drawn again. */
    if (name != NULL || ++tries > 8 || strstr(err, "already exists") == NULL) return -1;
  }
  /* A generated name's record stands as it is (no inode: no one else can re-create an
     unguessable name); a chosen name is recorded now, with the file's device and inode. */
  if (track && name != NULL && luashm_tracker_add(out, err) != 0) {
    char ignored[LUASHM_ERRLEN];
    luashm_shm_unmap(*data, size);
    luashm_tracker_unlink(out, ignored);
    return -1;
  }
  return 0;
}

/* =======================================================================================
** Reading the indexes (the block tool)
** ===================================================================================== */

int luashm_pid_alive(long pid) {
  char path[64], buf[256], *state;
  ssize_t n;
  int fd;
  if (pid <= 0 || pid > INT32_MAX || (kill((pid_t)pid, 0) != 0 && errno != EPERM)) return 0;
  snprintf(path, sizeof path, "/proc/%ld/stat", pid);
  fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 1;
  n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0) return 1;
  buf[n] = '\0';
  state = strrchr(buf, ')');
  return !(state != NULL && state[1] == ' ' && (state[2] == 'Z' || state[2] == 'X'));
}

int luashm_tracker_scan(void (*fn)(void *ud, const char *name, long creator, long tracker,
                                   int alive),
                        void *ud) {
  DIR *d = opendir(SHM_DIR);
  struct dirent *e;
  int count = 0;
  if (d == NULL) return 0;
  while ((e = readdir(d)) != NULL) {
    char path[sizeof SHM_DIR + 256], line[RECORD_MAX + 1];
    long tracker, creator;
    int alive, off;
    FILE *f;
    size_t len = strlen(e->d_name);
    if (strncmp(e->d_name, INDEX_PREFIX, sizeof INDEX_PREFIX - 1) != 0 ||
        (len > 4 && strcmp(e->d_name + len - 4, ".tmp") == 0))
      continue;
    snprintf(path, sizeof path, SHM_DIR "%s", e->d_name);
    f = fopen(path, "re");
    if (f == NULL) continue;
    if (fgets(line, sizeof line, f) == NULL ||
        sscanf(line, "luashm-tracker 1 %ld", &tracker) != 1) {
      fclose(f);
      continue;
    }
    alive = luashm_pid_alive(tracker);
    count++;
    while (fgets(line, sizeof line, f) != NULL) {
      line[strcspn(line, "\n")] = '\0';
      off = 0;
      if (sscanf(line, "%ld %n", &creator, &off) == 1 && off > 0 && line[off] != '\0')
        fn(ud, line + off, creator, tracker, alive);
    }
    fclose(f);
  }
  closedir(d);
  return count;
}

int luashm_tracker_prune(void) {
  DIR *d = opendir(SHM_DIR);
  struct dirent *e;
  int count = 0;
  if (d == NULL) return 0;
  while ((e = readdir(d)) != NULL) {
    char path[sizeof SHM_DIR + 256];
    long tracker;
    if (sscanf(e->d_name, INDEX_PREFIX "%ld", &tracker) != 1 || luashm_pid_alive(tracker)) continue;
    snprintf(path, sizeof path, SHM_DIR "%s", e->d_name);
    if (unlink(path) == 0) count++;
  }
  closedir(d);
  return count;
}
