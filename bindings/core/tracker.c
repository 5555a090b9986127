/*
** The tracker, the tree's side. The first tracked create of a process tree starts a watchdog
** (watchdog.c) that holds one end of a SOCK_SEQPACKET socket pair; every process of the tree
** holds the other end (inherited by fork, close-on-exec so that an exec'd program is a tree of
** its own) and sends the records of tracker.h's protocol. When the last process of the tree is
** gone, however it died, the watchdog reads end-of-file and unlinks what is left. A socket
** rather than a pipe: send(MSG_NOSIGNAL) turns a vanished watchdog into an error instead of a
** SIGPIPE, and each record arrives as one message. Also here: reading the watchdogs' indexes
** for the block tool.
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
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define INDEX_MAX (64u << 20) /* an index larger than this is not one a watchdog wrote */

/* Process-level state, shared with forked children on purpose: a child is part of the tree.
   tree_fd is close-on-exec, so exec'd programs are not. Set once under start_lock; read
   without it (atomically) on every create. */
static int tree_fd = -1;
static long tree_pid = 0;
static pthread_mutex_t start_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t handler_once = PTHREAD_ONCE_INIT;

static int tree_socket(void) {
  return __atomic_load_n(&tree_fd, __ATOMIC_ACQUIRE);
}

/* A fork while another thread starts the watchdog must not give the child a held lock: the
   handler takes it around every fork (POSIX's own use case for pthread_atfork). */
static void fork_prepare(void) {
  pthread_mutex_lock(&start_lock);
}

static void fork_release(void) {
  pthread_mutex_unlock(&start_lock);
}

/* This process's pid, for the records: glibc no longer caches getpid, and a tracked create
   sends three records. A forked child forgets it (the handler below runs in every child that
   glibc's fork makes; the records' pid only informs the block tool). */
static pid_t self_pid = 0;

static void fork_child(void) {
  self_pid = 0;
  pthread_mutex_unlock(&start_lock);
}

static pid_t self(void) {
  if (self_pid == 0) self_pid = getpid();
  return self_pid;
}

static void install_handler(void) {
  pthread_atfork(fork_prepare, fork_release, fork_child);
}

/* Forks the watchdog: twice, so that it is nobody's child in the tree (no zombie, and no
   waitpid(-1) of a worker pool ever reaps it); it announces its pid once it is ready. _Fork
   rather than fork: no fork handler of the program runs, and the children only make
   async-signal-safe calls (the middle one closes, forks and exits; the watchdog, see
   watchdog.c), so a program with threads is safe. Called with start_lock held. */
static int start_locked(char *err) {
  int sv[2], st = 0, e;
  long pid = 0;
  pid_t mid;
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0)
    return luashm_fail(err, "tracker", NULL, strerror(errno));
  mid = _Fork();
  if (mid == 0) {
    pid_t dog;
    close(sv[1]);
    dog = _Fork();
    if (dog == 0) luashm_watchdog(sv[0]);
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
    while ((n = recv(sv[1], &pid, sizeof pid, 0)) < 0 && errno == EINTR) {
    }
    if (n == (ssize_t)sizeof pid) {
      tree_pid = pid;
      __atomic_store_n(&tree_fd, sv[1], __ATOMIC_RELEASE);
      return 0;
    }
  }
  close(sv[1]);
  return luashm_fail(err, "tracker", NULL, "cannot start the watchdog process");
}

int luashm_tracker_start(char *err) {
  int rc = 0;
  if (tree_socket() >= 0) return 0;
  pthread_once(&handler_once, install_handler);
  pthread_mutex_lock(&start_lock);
  if (tree_socket() < 0) rc = start_locked(err);
  pthread_mutex_unlock(&start_lock);
  return rc;
}

void luashm_tracker_prefork(void) {
  char err[LUASHM_ERRLEN];
  luashm_tracker_start(err);
}

long luashm_tracker_pid(void) {
  return tree_socket() >= 0 ? tree_pid : 0;
}

/* Sends one record; -1 when the watchdog is gone. */
static int tracker_send(int op, const char *name, const char *target, uint64_t size,
                        const luashm_fileid *id) {
  luashm_trackmsg m;
  size_t n = strlen(name), tn = target != NULL ? strlen(target) : 0;
  memset(&m, 0, LUASHM_TRACKMSG_HEAD);
  m.op = (uint8_t)op;
  m.namelen = (uint8_t)n;
  m.targetlen = (uint8_t)tn;
  m.creator = (int64_t)self();
  if (id != NULL) m.id = *id;
  m.id.size = size;
  memcpy(m.names, name, n);
  if (tn > 0) memcpy(m.names + n, target, tn);
  while (send(tree_socket(), &m, LUASHM_TRACKMSG_HEAD + n + tn, MSG_NOSIGNAL) < 0) {
    if (errno != EINTR) return -1;
  }
  return 0;
}

static int tracker_gone(char *err, const char *name) {
  return luashm_fail(err, "create", name,
                     "the tracker of this process tree is gone (was it killed?): no block can "
                     "be tracked in this tree any more; restart the program, or make blocks "
                     "that need no tracker (opts.track = false where a constructor takes it)");
}

/* The record says which file went: another process of the tree may have made the name again
   in between, and its record, which may reach the watchdog before this one, must stay. */
int luashm_tracker_unlink(const char *name, char *err) {
  luashm_fileid id = {0, 0, 0};
  struct stat st;
  int rc;
  if (tree_socket() >= 0 && luashm_shm_lstat(name, &st) == 0) {
    id.dev = (uint64_t)st.st_dev;
    id.ino = (uint64_t)st.st_ino;
  }
  rc = luashm_shm_unlink(name, err);
  if (tree_socket() >= 0) tracker_send(LUASHM_REC_UNLINK, name, NULL, 0, &id);
  return rc;
}

/* An untracked block: created in place, under a generated name drawn again on a collision. */
static int create_untracked(const char *name, size_t size, mode_t mode, char *out, void **data,
                            char *err) {
  int tries = 0;
  if (name != NULL) {
    strcpy(out, name);
    return luashm_shm_create(out, NULL, size, mode, data, NULL, err);
  }
  for (;;) {
    if (luashm_name_new(out, err) != 0) return -1;
    if (luashm_shm_create(out, NULL, size, mode, data, NULL, err) == 0) return 0;
    if (errno != EEXIST || ++tries > 8) return -1;
  }
}

/* Drops a block made under the temporary name gen: unmapped, unlinked, un-recorded. */
static void discard(const char *gen, void *data, size_t size) {
  char ignored[LUASHM_ERRLEN];
  luashm_shm_unmap(data, size);
  luashm_tracker_unlink(gen, ignored);
}

int luashm_tracker_create(const char *name, size_t size, mode_t mode, int track, char *out,
                          void **data, char *err) {
  char gen[LUASHM_GEN_NAME_LEN + 1];
  luashm_fileid id;
  int tries = 0, e;
  if (!track) return create_untracked(name, size, mode, out, data, err);
  if (luashm_tracker_start(err) != 0) return -1;
  /* The real test is the rename below; this only spares a large create of a taken name. */
  if (name != NULL && luashm_shm_exists(name)) {
    errno = EEXIST;
    return luashm_fail(err, "create", name, "a block with this name already exists");
  }
  for (;;) {
    if (luashm_name_new(gen, err) != 0) return -1;
    if (tracker_send(LUASHM_REC_PENDING, gen, name, size, NULL) != 0)
      return tracker_gone(err, name != NULL ? name : gen);
    if (luashm_shm_create(gen, name, size, mode, data, &id, err) == 0) break;
    e = errno;
    tracker_send(LUASHM_REC_UNLINK, gen, NULL, 0, NULL);
    errno = e;
    /* A generated name that collides (2^-64 odds) is simply drawn again. */
    if (e != EEXIST || ++tries > 8) return -1;
  }
  if (tracker_send(LUASHM_REC_CONFIRM, gen, NULL, size, &id) != 0) {
    discard(gen, *data, size);
    return tracker_gone(err, name != NULL ? name : gen);
  }
  if (name == NULL) {
    strcpy(out, gen);
    return 0;
  }
  if (luashm_shm_rename(gen, name, err) != 0) {
    e = errno;
    discard(gen, *data, size);
    errno = e;
    return -1;
  }
  /* Sent even if the watchdog is gone meanwhile: the block exists and is the caller's. */
  tracker_send(LUASHM_REC_MOVED, gen, NULL, 0, NULL);
  strcpy(out, name);
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

/* The pid in ".luashm-tracker-<pid>" (tmp: followed by ".tmp"), or 0 for another name. */
static long index_pid(const char *entry, int tmp) {
  const char *p = entry + sizeof LUASHM_INDEX_PREFIX - 1;
  long pid = 0;
  if (strncmp(entry, LUASHM_INDEX_PREFIX, sizeof LUASHM_INDEX_PREFIX - 1) != 0) return 0;
  for (; *p >= '0' && *p <= '9' && pid <= INT32_MAX; p++) pid = pid * 10 + (*p - '0');
  if (pid > INT32_MAX || strcmp(p, tmp ? ".tmp" : "") != 0) return 0;
  return pid;
}

/* What a watchdog's index looks like: a regular file only its owner could have written. */
static int index_shape(const struct stat *st) {
  return S_ISREG(st->st_mode) && (st->st_mode & 022) == 0 && st->st_nlink == 1 &&
         st->st_size >= 0 && (uint64_t)st->st_size <= INDEX_MAX;
}

/* Reads the index entry of dir into a malloc'ed buffer (*len bytes), never through a symbolic
   link or from a FIFO, and only if it has an index's shape before and after opening. */
static char *index_read(int dir, const char *entry, size_t *len, uid_t *owner) {
  struct stat before, st;
  char *text = NULL;
  size_t got = 0;
  int fd;
  if (fstatat(dir, entry, &before, AT_SYMLINK_NOFOLLOW) != 0 || !index_shape(&before)) return NULL;
  fd = openat(dir, entry, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return NULL;
  if (fstat(fd, &st) != 0 || !index_shape(&st) || st.st_ino != before.st_ino ||
      st.st_dev != before.st_dev || (text = malloc((size_t)st.st_size + 1)) == NULL)
    goto fail;
  while (got < (size_t)st.st_size) {
    ssize_t n = read(fd, text + got, (size_t)st.st_size - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    got += (size_t)n;
  }
  close(fd);
  *len = got;
  *owner = st.st_uid;
  return text;
fail:
  close(fd);
  free(text);
  return NULL;
}

typedef struct scan_state {
  void (*fn)(void *ud, const luashm_trackrec *r, long tracker, int alive, uid_t owner);
  void *ud;
  long tracker;
  int alive;
  uid_t owner;
} scan_state;

static void scan_one(void *ud, const luashm_trackrec *r) {
  scan_state *s = (scan_state *)ud;
  s->fn(s->ud, r, s->tracker, s->alive, s->owner);
}

static void count_none(void *ud, const luashm_trackrec *r) {
  (void)ud;
  (void)r;
}

int luashm_tracker_scan(void (*fn)(void *ud, const luashm_trackrec *r, long tracker, int alive,
                                   uid_t owner),
                        void *ud) {
  DIR *d = opendir(LUASHM_SHM_DIR);
  struct dirent *e;
  int count = 0;
  if (d == NULL) return 0;
  while ((e = readdir(d)) != NULL) {
    scan_state s = {fn, ud, 0, 0, 0};
    long pid = index_pid(e->d_name, 0), tracker;
    size_t len;
    char *text;
    if (pid == 0 || (text = index_read(dirfd(d), e->d_name, &len, &s.owner)) == NULL) continue;
    /* The header must name the watchdog the file is named after. */
    if (luashm_index_parse(text, len, &tracker, count_none, NULL) >= 0 && tracker == pid) {
      s.tracker = pid;
      s.alive = luashm_pid_alive(pid);
      luashm_index_parse(text, len, &tracker, scan_one, &s);
      count++;
    }
    free(text);
  }
  closedir(d);
  return count;
}

const char *luashm_tracker_resolve(const luashm_trackrec *r, uid_t owner, struct stat *st) {
  if (r->target != NULL && luashm_shm_lstat(r->target, st) == 0 && st->st_uid == owner &&
      luashm_track_owns_target(&r->id, st))
    return r->target;
  if (luashm_shm_lstat(r->name, st) == 0 && st->st_uid == owner &&
      luashm_track_owns(r->name, &r->id, owner, st))
    return r->name;
  return NULL;
}

int luashm_tracker_prune(void) {
  DIR *d = opendir(LUASHM_SHM_DIR);
  struct dirent *e;
  int count = 0;
  if (d == NULL) return 0;
  while ((e = readdir(d)) != NULL) {
    long pid = index_pid(e->d_name, 0), tracker = 0;
    struct stat st;
    size_t len;
    uid_t owner = (uid_t)-1;
    char *text;
    int gone = 0;
    if (pid != 0 && !luashm_pid_alive(pid) &&
        (text = index_read(dirfd(d), e->d_name, &len, &owner)) != NULL) {
      gone = luashm_index_parse(text, len, &tracker, count_none, NULL) >= 0 && tracker == pid;
      free(text);
    } else if (pid == 0 && (pid = index_pid(e->d_name, 1)) != 0 && !luashm_pid_alive(pid)) {
      /* Half an index, left by a watchdog killed while it wrote it. */
      gone = fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && index_shape(&st);
      owner = st.st_uid;
    }
    if (gone && owner == geteuid() && unlinkat(dirfd(d), e->d_name, 0) == 0) count++;
  }
  closedir(d);
  return count;
}
