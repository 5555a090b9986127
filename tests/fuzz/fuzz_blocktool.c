/*
** libFuzzer target for the block tool (`luashm --blocks`, `--rm-stale`) over a hostile
** /dev/shm: the input describes entries any local user could put there (regular files with any
** bytes and names, luashm-headed blocks, FIFOs, symbolic links out of /dev/shm, directories,
** tracker indexes with any text, and indexes whose records name the other entries by their
** real device and inode), owned by this user or another, with any mode. It runs in a private
** /dev/shm (a tmpfs in a mount namespace of its own; without root it says so and tests nothing).
** For each input the entries are made, the listing must finish (a FIFO must not hang it) and
** print only printable bytes in rows of six columns (a name must not forge a row or drive the
** terminal), then --rm-stale must leave every FIFO, link, directory and other user's block, and
** the file outside /dev/shm, where they were.
*/
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "blocktool.h"
#include "watchdog.h"

#define MAX_ENTRIES 16
#define OTHER_UID 65534

enum { E_FILE, E_FIFO, E_LINK, E_DIR, E_INDEX, E_HEADED, E_INDEX_OF, E_KINDS };

typedef struct made {
  char name[LUASHM_NAME_MAX + 1];
  int type;
  uid_t owner;
} made;

static int usable = 0;
static char sentinel[64];

static const char *const headed_kinds[] = {"lock",     "barrier", "channel",
                                           "progress", "manager", "bogus"};

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  FILE *f;
  (void)argc;
  (void)argv;
  if (unshare(CLONE_NEWNS) != 0 || mount("none", "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0 ||
      mount("tmpfs", "/dev/shm", "tmpfs", 0, "mode=1777,size=64m") != 0) {
    fprintf(stderr, "fuzz_blocktool: needs root for a private /dev/shm (%s): testing nothing\n",
            strerror(errno));
    return 0;
  }
  snprintf(sentinel, sizeof sentinel, "/tmp/luashm-fuzz-outside-%ld", (long)getpid());
  f = fopen(sentinel, "w");
  if (f == NULL) return 0;
  fputs("outside /dev/shm", f);
  fclose(f);
  usable = 1;
  return 0;
}

typedef struct reader {
  const uint8_t *p;
  size_t n;
} reader;

static int take(reader *r) {
  if (r->n == 0) return -1;
  r->n--;
  return *r->p++;
}

static size_t take_bytes(reader *r, char *out, size_t want) {
  size_t n = want < r->n ? want : r->n;
  memcpy(out, r->p, n);
  r->p += n;
  r->n -= n;
  return n;
}

/* A name from the input: any bytes but '/' and NUL, never "." or ".." or empty. */
static void take_name(reader *r, char *name) {
  int len = take(r);
  size_t n = take_bytes(r, name, len < 0 ? 0 : (size_t)len % 48);
  for (size_t i = 0; i < n; i++)
    if (name[i] == '/' || name[i] == '\0') name[i] = '_';
  name[n] = '\0';
  if (n == 0 || strcmp(name, ".") == 0 || strcmp(name, "..") == 0) strcat(name, "e");
}

static int write_file(const char *path, const char *p, size_t n) {
  int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) return -1;
  if (write(fd, p, n) < 0) {
  }
  return close(fd);
}

/* An index whose records name earlier entries by their real identity (or as pending). */
static size_t index_of(reader *r, const made *m, size_t count, long pid, char *out, size_t cap) {
  size_t len = (size_t)snprintf(out, cap, "luashm-tracker 2 %ld\n", pid);
  int which = take(r), how = take(r);
  for (size_t i = 0; i < count && len + 600 < cap; i++) {
    char path[300];
    struct stat st;
    if (!(which & (1 << (i % 8)))) continue;
    snprintf(path, sizeof path, "/dev/shm/%s", m[i].name);
    if (lstat(path, &st) != 0) memset(&st, 0, sizeof st);
    len += (size_t)snprintf(out + len, cap - len, "%ld %lld %llu %llu ",
                            how & 1 ? 2147480000L : (long)getpid(), (long long)st.st_size,
                            how & 2 ? 0ULL : (unsigned long long)st.st_dev,
                            how & 2 ? 0ULL : (unsigned long long)st.st_ino);
    for (const char *c = m[i].name; *c; c++) len += (size_t)sprintf(out + len, "%02x", (uint8_t)*c);
    len += (size_t)snprintf(out + len, cap - len, " -\n");
  }
  return len;
}

static size_t make_entries(reader *r, made *m) {
  size_t count = 0;
  while (count < MAX_ENTRIES && r->n > 0) {
    char path[300], content[4096];
    int type = take(r) % E_KINDS, flags = take(r), clen = take(r);
    size_t n = 0;
    int rc;
    made *e = &m[count];
    long pid = flags & 4 ? (flags & 8 ? 1 : (long)getpid()) : 2147480000L + (flags & 3);
    if (flags < 0) break;
    if (type == E_INDEX || type == E_INDEX_OF)
      snprintf(e->name, sizeof e->name, "%s%ld", LUASHM_INDEX_PREFIX, pid);
    else
      take_name(r, e->name);
    snprintf(path, sizeof path, "/dev/shm/%s", e->name);
    if (type == E_HEADED) {
      const char *k = headed_kinds[(flags >> 4) % 6];
      int64_t creator = flags & 1 ? 2147480000 : (int64_t)getpid();
      memset(content, 0, 64);
      memcpy(content, "\x93LUASHM\0", 8);
      memcpy(content + 8, k, strlen(k));
      memcpy(content + 32, &creator, sizeof creator);
      n = 64;
    }
    if (type == E_INDEX_OF)
      n = index_of(r, m, count, pid, content, sizeof content);
    else
      n += take_bytes(r, content + n, clen < 0 ? 0 : (size_t)clen * 4);
    switch (type) {
      case E_FIFO: rc = mkfifo(path, 0600); break;
      case E_DIR: rc = mkdir(path, 0700); break;
      case E_LINK:
        content[n < sizeof content ? n : sizeof content - 1] = '\0';
        rc = symlink(n > 0 && content[0] != '\0' ? content : sentinel, path);
        break;
      default: rc = write_file(path, content, n); break;
    }
    if (rc != 0) continue; /* the name was taken by an earlier entry */
    e->type = type;
    e->owner = flags & 0x10 ? OTHER_UID : 0;
    if (e->owner != 0) lchown(path, OTHER_UID, OTHER_UID);
    if (type != E_LINK) chmod(path, flags & 0x20 ? 0666 : 0600);
    count++;
  }
  return count;
}

/* Runs the tool with argv, its stdout captured into out (NUL-terminated), stderr dropped. */
static void run_tool(int argc, char **argv, char *out, size_t cap) {
  int mem = memfd_create("fuzz_blocktool", MFD_CLOEXEC), saved1 = dup(1), saved2 = dup(2);
  int null = open("/dev/null", O_WRONLY | O_CLOEXEC);
  ssize_t got;
  fflush(stdout);
  dup2(mem, 1);
  dup2(null, 2);
  luashm_blocktool(argc, argv);
  fflush(stdout);
  fflush(stderr);
  dup2(saved1, 1);
  dup2(saved2, 2);
  got = pread(mem, out, cap - 1, 0);
  out[got > 0 ? got : 0] = '\0';
  close(mem);
  close(null);
  close(saved1);
  close(saved2);
}

/* Every byte printable or a newline; every row six columns two or more spaces apart. */
static void check_listing(const char *out) {
  for (const char *line = out; *line; line = strchr(line, '\n') + 1) {
    const char *nl = strchr(line, '\n');
    int fields = 1;
    if (nl == NULL) abort(); /* rows end with a newline */
    for (const char *c = line; c < nl; c++) {
      if ((unsigned char)*c < 0x20 || (unsigned char)*c >= 0x7f) abort();
      if (c[0] == ' ' && c[1] == ' ' && c > line && c[-1] != ' ') fields++;
    }
    if (fields != 6) abort();
  }
}

/* Empties the private /dev/shm for the next input (entries are files or empty directories). */
static void clean(void) {
  DIR *d = opendir("/dev/shm");
  struct dirent *e;
  if (d == NULL) return;
  while ((e = readdir(d)) != NULL)
    if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0 &&
        unlinkat(dirfd(d), e->d_name, 0) != 0)
      unlinkat(dirfd(d), e->d_name, AT_REMOVEDIR);
  closedir(d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static char out[1 << 20];
  char *list[] = {"--blocks", NULL}, *stale[] = {"--blocks", "--rm-stale", NULL};
  reader r = {data, size};
  made m[MAX_ENTRIES];
  size_t count;
  if (!usable) return 0;
  count = make_entries(&r, m);
  run_tool(1, list, out, sizeof out);
  check_listing(out);
  run_tool(2, stale, out, sizeof out);
  for (size_t i = 0; i < count; i++) {
    char path[300];
    struct stat st;
    int kept = m[i].type == E_FIFO || m[i].type == E_LINK || m[i].type == E_DIR || m[i].owner != 0;
    snprintf(path, sizeof path, "/dev/shm/%s", m[i].name);
    if (kept && lstat(path, &st) != 0) abort(); /* removed what was not the tool's to remove */
  }
  if (access(sentinel, F_OK) != 0) abort();
  clean();
  return 0;
}
