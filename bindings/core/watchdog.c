/*
** The watchdog: the process that unlinks what a process tree leaked (tracker.c starts it and
** sends it the records), and the format of the index it keeps in /dev/shm for the block tool.
**
** It is forked with _Fork from a process that may have threads, whose locks (malloc's, stdio's)
** another thread may have held at that instant and which nobody will ever release in the child.
** So from its first instruction to _exit the watchdog makes only async-signal-safe calls: no
** malloc (memory comes from mmap), no stdio (numbers and names are formatted here), no opendir
** (files are reached through a descriptor of /dev/shm with the *at calls). Exec'ing a helper
** program would be the other way out, but the library cannot know where such a program is:
** luashm.so is loaded by a stock lua5.4 or by any embedding program, not only by the host.
*/
#include "watchdog.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h> /* renameat only: no stream is used */
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#define INDEX_DELAY_MS 20 /* the index is rewritten at most this often */
#define CHUNK (1u << 20)  /* records are carved from mmap'ed chunks of this size */
#define NCLASS 16         /* record sizes, in steps of 64 bytes */

/* =======================================================================================
** Rules shared with the block tool
** ===================================================================================== */

int luashm_track_owns(const char *name, const luashm_fileid *id, uid_t uid, const struct stat *st) {
  if (!S_ISREG(st->st_mode)) return 0;
  if (id->ino != 0) return (uint64_t)st->st_dev == id->dev && (uint64_t)st->st_ino == id->ino;
  return luashm_name_is_generated(name, strlen(name)) && st->st_uid == uid &&
         (st->st_size == 0 || (uint64_t)st->st_size == id->size);
}

int luashm_track_owns_target(const luashm_fileid *id, const struct stat *st) {
  return id->ino != 0 && S_ISREG(st->st_mode) && (uint64_t)st->st_dev == id->dev &&
         (uint64_t)st->st_ino == id->ino;
}

/* =======================================================================================
** Memory and text without malloc or stdio
** ===================================================================================== */

static void *map_anon(size_t n) {
  void *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  return p == MAP_FAILED ? NULL : p;
}

/* A growable text buffer in an anonymous mapping. */
typedef struct buf {
  char *p;
  size_t len, cap;
  int failed; /* some text was dropped for want of memory: the buffer is not to be used */
} buf;

static int buf_reserve(buf *b, size_t more) {
  size_t cap = b->cap ? b->cap : 1u << 16;
  void *q;
  if (b->len + more <= b->cap) return 0;
  while (cap < b->len + more) cap *= 2;
  q = b->p ? mremap(b->p, b->cap, cap, MREMAP_MAYMOVE) : map_anon(cap);
  if (q == NULL || q == MAP_FAILED) {
    b->failed = 1;
    return -1;
  }
  b->p = (char *)q;
  b->cap = cap;
  return 0;
}

static void buf_put(buf *b, const char *s, size_t n) {
  if (buf_reserve(b, n) != 0) return;
  memcpy(b->p + b->len, s, n);
  b->len += n;
}

static void buf_str(buf *b, const char *s) {
  buf_put(b, s, strlen(s));
}

static void buf_num(buf *b, uint64_t v) {
  char d[24];
  size_t i = sizeof d;
  do d[--i] = (char)('0' + v % 10);
  while ((v /= 10) != 0);
  buf_put(b, d + i, sizeof d - i);
}

static void buf_hex(buf *b, const char *s, size_t n) {
  static const char hex[] = "0123456789abcdef";
  if (buf_reserve(b, 2 * n) != 0) return;
  for (size_t i = 0; i < n; i++) {
    b->p[b->len++] = hex[(unsigned char)s[i] >> 4];
    b->p[b->len++] = hex[(unsigned char)s[i] & 15];
  }
}

static void buf_free(buf *b) {
  if (b->p != NULL) munmap(b->p, b->cap);
  b->p = NULL;
  b->len = b->cap = 0;
}

static int write_all(int fd, const char *p, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return -1;
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

/* =======================================================================================
** The table of records: a hash table over records carved from mmap'ed chunks
** ===================================================================================== */

typedef struct rec {
  struct rec *next;
  luashm_fileid id; /* the size asked; device and inode 0 while pending */
  int64_t creator;
  uint8_t namelen, targetlen, gone; /* gone: 1 name, 2 target unlinked at the end */
  char s[];                         /* name '\0' target '\0' */
} rec;

typedef struct table {
  rec **bucket;
  size_t nbucket, count;
  unsigned char *chunk;
  size_t used;
  rec *free[NCLASS + 1];
} table;

static size_t rec_class(size_t namelen, size_t targetlen) {
  return (sizeof(rec) + namelen + targetlen + 2 + 63) / 64;
}

static const char *rec_target(const rec *r) {
  return r->s + r->namelen + 1;
}

static size_t hash(const char *s, size_t n) {
  size_t h = 1469598103934665603u;
  for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 1099511628211u;
  return h;
}

static rec **table_find(table *t, const char *name, size_t n) {
  rec **p = &t->bucket[hash(name, n) & (t->nbucket - 1)];
  while (*p != NULL && ((*p)->namelen != n || memcmp((*p)->s, name, n) != 0)) p = &(*p)->next;
  return p;
}

static void table_grow(table *t) {
  size_t n = t->nbucket * 2;
  rec **b = (rec **)map_anon(n * sizeof *b);
  if (b == NULL) return; /* longer chains, still correct */
  for (size_t i = 0; i < t->nbucket; i++) {
    rec *r = t->bucket[i], *next;
    for (; r != NULL; r = next) {
      rec **slot = &b[hash(r->s, r->namelen) & (n - 1)];
      next = r->next;
      r->next = *slot;
      *slot = r;
    }
  }
  munmap(t->bucket, t->nbucket * sizeof *b);
  t->bucket = b;
  t->nbucket = n;
}

static void table_remove(table *t, const char *name, size_t n) {
  rec **p = table_find(t, name, n), *r = *p;
  size_t c;
  if (r == NULL) return;
  *p = r->next;
  c = rec_class(r->namelen, r->targetlen);
  r->next = t->free[c];
  t->free[c] = r;
  t->count--;
}

/* Records name (replacing a record of the same name) and returns it, or NULL without memory. */
static rec *table_put(table *t, const char *name, size_t n, const char *target, size_t tn) {
  size_t c = rec_class(n, tn);
  rec *r;
  table_remove(t, name, n);
  if (t->free[c] != NULL) {
    r = t->free[c];
    t->free[c] = r->next;
  } else {
    if (t->chunk == NULL || t->used + c * 64 > CHUNK) {
      unsigned char *chunk = (unsigned char *)map_anon(CHUNK);
      if (chunk == NULL) return NULL;
      t->chunk = chunk;
      t->used = 0;
    }
    r = (rec *)(t->chunk + t->used);
    t->used += c * 64;
  }
  memset(r, 0, sizeof *r);
  r->namelen = (uint8_t)n;
  r->targetlen = (uint8_t)tn;
  memcpy(r->s, name, n);
  r->s[n] = '\0';
  memcpy(r->s + n + 1, target, tn);
  r->s[n + 1 + tn] = '\0';
  {
    rec **slot = &t->bucket[hash(name, n) & (t->nbucket - 1)];
    r->next = *slot;
    *slot = r;
  }
  if (++t->count > 2 * t->nbucket) table_grow(t);
  return r;
}

/* Applies one message from the tree; a malformed one is ignored. */
static void table_apply(table *t, const luashm_trackmsg *m, size_t len) {
  const char *name = m->names, *target = m->names + m->namelen;
  rec *r;
  if (len < LUASHM_TRACKMSG_HEAD || len != LUASHM_TRACKMSG_HEAD + m->namelen + m->targetlen ||
      luashm_name_invalid(name, m->namelen) != NULL ||
      (m->targetlen > 0 && luashm_name_invalid(target, m->targetlen) != NULL))
    return;
  switch (m->op) {
    case LUASHM_REC_PENDING:
      /* Only a generated name may be pending: luashm_track_owns trusts it on that ground. */
      if (!luashm_name_is_generated(name, m->namelen)) return;
      r = table_put(t, name, m->namelen, target, m->targetlen);
      if (r == NULL) return;
      r->id.size = m->id.size;
      r->creator = m->creator;
      break;
    case LUASHM_REC_CONFIRM:
      r = *table_find(t, name, m->namelen);
      if (r != NULL && m->id.ino != 0) {
        r->id.dev = m->id.dev;
        r->id.ino = m->id.ino;
      }
      break;
    case LUASHM_REC_MOVED: {
      rec old;
      char to[LUASHM_NAME_MAX];
      r = *table_find(t, name, m->namelen);
      if (r == NULL || r->targetlen == 0 || r->id.ino == 0) return;
      old = *r;
      memcpy(to, rec_target(r), r->targetlen);
      table_remove(t, name, m->namelen);
      r = table_put(t, to, old.targetlen, "", 0);
      if (r == NULL) return;
      r->id = old.id;
      r->creator = old.creator;
      break;
    }
    case LUASHM_REC_UNLINK:
      /* Not if the file that went is another than the one recorded now under that name. */
      r = *table_find(t, name, m->namelen);
      if (r != NULL && m->id.ino != 0 && r->id.ino != 0 &&
          (r->id.ino != m->id.ino || r->id.dev != m->id.dev))
        return;
      table_remove(t, name, m->namelen);
      break;
    default: break;
  }
}

/* =======================================================================================
** The index
** ===================================================================================== */

/* ".luashm-tracker-<pid>" and its ".tmp". */
static void index_name(buf *b, long pid, int tmp) {
  b->len = 0;
  buf_str(b, LUASHM_INDEX_PREFIX);
  buf_num(b, (uint64_t)pid);
  if (tmp) buf_str(b, ".tmp");
  buf_put(b, "", 1);
}

/* Written beside, then renamed over, so a reader never sees half of it; created exclusively
   and never through a symbolic link. Best effort: a tree works the same without it. */
static void index_write(table *t, int dir, long me) {
  buf text = {0}, path = {0}, tmp = {0};
  int fd;
  buf_str(&text, "luashm-tracker 2 ");
  buf_num(&text, (uint64_t)me);
  buf_str(&text, "\n");
  for (size_t i = 0; i < t->nbucket; i++) {
    for (rec *r = t->bucket[i]; r != NULL; r = r->next) {
      buf_num(&text, (uint64_t)r->creator);
      buf_str(&text, " ");
      buf_num(&text, r->id.size);
      buf_str(&text, " ");
      buf_num(&text, r->id.dev);
      buf_str(&text, " ");
      buf_num(&text, r->id.ino);
      buf_str(&text, " ");
      buf_hex(&text, r->s, r->namelen);
      buf_str(&text, " ");
      if (r->targetlen > 0)
        buf_hex(&text, rec_target(r), r->targetlen);
      else
        buf_str(&text, "-");
      buf_str(&text, "\n");
    }
  }
  index_name(&path, me, 0);
  index_name(&tmp, me, 1);
  if (text.failed || path.failed || tmp.failed) goto done;
  unlinkat(dir, tmp.p, 0);
  fd = openat(dir, tmp.p, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) goto done;
  if (write_all(fd, text.p, text.len) != 0 || close(fd) != 0 ||
      renameat(dir, tmp.p, dir, path.p) != 0)
    unlinkat(dir, tmp.p, 0);
done:
  buf_free(&text);
  buf_free(&path);
  buf_free(&tmp);
}

static int parse_num(const char **p, const char *end, uint64_t *out) {
  const char *s = *p;
  uint64_t v = 0;
  if (s == end || *s < '0' || *s > '9') return -1;
  for (; s < end && *s >= '0' && *s <= '9'; s++) {
    if (v > (UINT64_MAX - 9) / 10) return -1;
    v = v * 10 + (uint64_t)(*s - '0');
  }
  *p = s;
  *out = v;
  return 0;
}

static int hexval(char c) {
  return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* A hex field into out (NUL-terminated); the field must end at a space or at end. */
static int parse_hex(const char **p, const char *end, char *out) {
  const char *s = *p;
  size_t n = 0;
  for (; s < end && *s != ' '; s += 2) {
    int hi = hexval(s[0]), lo = s + 1 < end ? hexval(s[1]) : -1;
    if (hi < 0 || lo < 0 || n == LUASHM_NAME_MAX) return -1;
    out[n++] = (char)(hi << 4 | lo);
  }
  out[n] = '\0';
  *p = s;
  return luashm_name_invalid(out, n) == NULL ? 0 : -1;
}

static int expect(const char **p, const char *end, const char *lit) {
  size_t n = strlen(lit);
  if ((size_t)(end - *p) < n || memcmp(*p, lit, n) != 0) return -1;
  *p += n;
  return 0;
}

/* One record line (without its newline). */
static int parse_line(const char *s, const char *end, luashm_trackrec *r, char *name,
                      char *target) {
  uint64_t creator;
  if (parse_num(&s, end, &creator) != 0 || creator > INT32_MAX || expect(&s, end, " ") != 0 ||
      parse_num(&s, end, &r->id.size) != 0 || expect(&s, end, " ") != 0 ||
      parse_num(&s, end, &r->id.dev) != 0 || expect(&s, end, " ") != 0 ||
      parse_num(&s, end, &r->id.ino) != 0 || expect(&s, end, " ") != 0 ||
      parse_hex(&s, end, name) != 0 || expect(&s, end, " ") != 0)
    return -1;
  r->creator = (long)creator;
  r->name = name;
  r->target = NULL;
  if (expect(&s, end, "-") == 0) return s == end ? 0 : -1;
  if (parse_hex(&s, end, target) != 0 || s != end) return -1;
  r->target = target;
  return 0;
}

long luashm_index_parse(const char *text, size_t len, long *tracker,
                        void (*fn)(void *ud, const luashm_trackrec *r), void *ud) {
  const char *p = text, *end = text + len, *nl;
  char name[LUASHM_NAME_MAX + 1], target[LUASHM_NAME_MAX + 1];
  uint64_t pid;
  long count = 0;
  nl = memchr(p, '\n', len);
  if (nl == NULL || expect(&p, nl, "luashm-tracker 2 ") != 0 || parse_num(&p, nl, &pid) != 0 ||
      p != nl || pid == 0 || pid > INT32_MAX)
    return -1;
  *tracker = (long)pid;
  for (p = nl + 1; p < end; p = nl + 1) {
    luashm_trackrec r;
    nl = memchr(p, '\n', (size_t)(end - p));
    if (nl == NULL) break; /* a line without its newline was cut: not a record */
    if (parse_line(p, nl, &r, name, target) == 0) {
      fn(ud, &r);
      count++;
    }
  }
  return count;
}

/* =======================================================================================
** The watchdog process
** ===================================================================================== */

/* Unlinks name if it is still the file the record stands for (target: its renamed self). */
static int unlink_ours(int dir, const char *name, const rec *r, int target) {
  struct stat st;
  if (fstatat(dir, name, &st, AT_SYMLINK_NOFOLLOW) != 0) return 0;
  if (target ? !luashm_track_owns_target(&r->id, &st)
             : !luashm_track_owns(name, &r->id, geteuid(), &st))
    return 0; /* someone else's file carries the name now */
  return unlinkat(dir, name, 0) == 0;
}

/* Unlinks what is left that is still ours, then says so in one line on stderr, names escaped
   (a name may hold any byte but '/' and NUL: it must not drive the terminal). */
static void cleanup(table *t, int dir) {
  buf line = {0};
  char esc[4 * LUASHM_NAME_MAX + 1];
  size_t i;
  int n = 0, first = 1;
  for (i = 0; i < t->nbucket; i++)
    for (rec *r = t->bucket[i]; r != NULL; r = r->next) {
      if (r->targetlen > 0 && unlink_ours(dir, rec_target(r), r, 1)) r->gone |= 2;
      if (unlink_ours(dir, r->s, r, 0)) r->gone |= 1;
      n += (r->gone & 1) + (r->gone >> 1);
    }
  if (n == 0) return;
  buf_str(&line, "luashm: tracker: unlinked ");
  buf_num(&line, (uint64_t)n);
  buf_str(&line, n == 1 ? " leaked block: " : " leaked blocks: ");
  for (i = 0; i < t->nbucket; i++)
    for (rec *r = t->bucket[i]; r != NULL; r = r->next)
      for (int which = 1; which <= 2; which++) {
        if (!(r->gone & which)) continue;
        luashm_name_escape(esc, sizeof esc, which == 1 ? r->s : rec_target(r));
        if (!first) buf_str(&line, ", ");
        buf_str(&line, esc);
        first = 0;
      }
  buf_str(&line, "\n");
  if (!line.failed) write_all(STDERR_FILENO, line.p, line.len);
  buf_free(&line);
}

static const char *skip_field(const char *s, const char *end) {
  while (s < end && *s != ' ') s++;
  while (s < end && *s == ' ') s++;
  return s;
}

static int parse_hexnum(const char **p, const char *end, uint64_t *out) {
  const char *s = *p;
  uint64_t v = 0;
  if (s == end || hexval(*s) < 0) return -1;
  for (; s < end && hexval(*s) >= 0; s++) v = v << 4 | (uint64_t)hexval(*s);
  *p = s;
  *out = v;
  return 0;
}

/* The watchdog must not keep the tree's blocks alive: drop every mapping of a file of
   /dev/shm's file system that the fork copied (the first block is mapped when its create
   starts the watchdog). /proc/self/maps gives each mapping's device; the names are not
   parsed, since a name may hold any byte. */
static void unmap_blocks(int dir) {
  buf maps = {0};
  struct stat shm;
  int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
  ssize_t n;
  if (fd < 0 || fstat(dir, &shm) != 0) goto done;
  for (;;) {
    if (buf_reserve(&maps, 4096) != 0) break; /* what was read is still worth unmapping */
    n = read(fd, maps.p + maps.len, maps.cap - maps.len);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    maps.len += (size_t)n;
  }
  for (const char *s = maps.p, *end = maps.p + maps.len, *nl; s < end; s = nl + 1) {
    uint64_t lo, hi, major, minor;
    const char *f = s;
    nl = memchr(s, '\n', (size_t)(end - s));
    if (nl == NULL) break; /* a line cut short says nothing sure */
    if (parse_hexnum(&f, nl, &lo) != 0 || expect(&f, nl, "-") != 0 ||
        parse_hexnum(&f, nl, &hi) != 0)
      continue;
    f = skip_field(skip_field(skip_field(f, nl), nl), nl); /* range, perms, offset */
    if (parse_hexnum(&f, nl, &major) == 0 && expect(&f, nl, ":") == 0 &&
        parse_hexnum(&f, nl, &minor) == 0 && makedev(major, minor) == shm.st_dev && hi > lo)
      munmap((void *)(uintptr_t)lo, (size_t)(hi - lo));
  }
done:
  if (fd >= 0) close(fd);
  buf_free(&maps);
}

/* Detaches from the tree's terminal and signals, keeps only stderr, the socket (moved to fd 3)
   and a descriptor of /dev/shm, which it returns in *dir, and drops the tree's mappings.
   Returns the socket's fd. */
static int watchdog_detach(int rfd, int *dir) {
  struct sigaction dfl, ign;
  sigset_t none;
  int fd, devnull;
  setsid();
  prctl(PR_SET_NAME, "luashm-tracker"); /* what ps and top show, beside the host's command line */
  memset(&dfl, 0, sizeof dfl);
  memset(&ign, 0, sizeof ign);
  dfl.sa_handler = SIG_DFL;
  ign.sa_handler = SIG_IGN;
  /* The tree's handlers are the tree's business (they may call anything): none runs here. */
  for (int sig = 1; sig < NSIG; sig++) {
    int ignored =
        sig == SIGINT || sig == SIGTERM || sig == SIGHUP || sig == SIGPIPE || sig == SIGQUIT;
    sigaction(sig, ignored ? &ign : &dfl, NULL);
  }
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
  *dir = open(LUASHM_SHM_DIR, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (*dir < 0 || chdir("/") != 0) _exit(1);
  unmap_blocks(*dir);
  return fd;
}

static long now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Applies records until end-of-file, then cleans up. The index is rewritten at most every
   INDEX_DELAY_MS while records come in, so a burst of creates costs no rewrite per block. */
void luashm_watchdog(int rfd) {
  table t;
  luashm_trackmsg m;
  buf path = {0};
  int dirty = 0, dir, fd = watchdog_detach(rfd, &dir);
  long me = (long)getpid(), written = 0;
  memset(&t, 0, sizeof t);
  t.nbucket = 64;
  t.bucket = (rec **)map_anon(t.nbucket * sizeof *t.bucket);
  if (t.bucket == NULL || send(fd, &me, sizeof me, MSG_NOSIGNAL) != (ssize_t)sizeof me) _exit(1);
  for (;;) {
    struct pollfd p = {fd, POLLIN, 0};
    long wait = dirty ? written + INDEX_DELAY_MS - now_ms() : -1;
    ssize_t n;
    int r = poll(&p, 1, dirty && wait < 0 ? 0 : (int)wait);
    if (r == 0) {
      index_write(&t, dir, me);
      dirty = 0;
      written = now_ms();
      continue;
    }
    if (r < 0 && errno != EINTR) break;
    n = recv(fd, &m, sizeof m, MSG_DONTWAIT | MSG_TRUNC);
    if (n < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)) continue;
    if (n <= 0) break;
    if ((size_t)n <= sizeof m) table_apply(&t, &m, (size_t)n);
    dirty = 1;
  }
  cleanup(&t, dir);
  index_name(&path, me, 0);
  if (!path.failed) unlinkat(dir, path.p, 0);
  index_name(&path, me, 1);
  if (!path.failed) unlinkat(dir, path.p, 0);
  _exit(0);
}
