/*
** The POSIX layer: every syscall on a shared-memory name goes through here.
*/
#include "posix.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

int luashm_fail(char *err, const char *op, const char *name, const char *what) {
  if (name != NULL)
    snprintf(err, LUASHM_ERRLEN, "%s '%s': %s", op, name, what);
  else
    snprintf(err, LUASHM_ERRLEN, "%s: %s", op, what);
  return -1;
}

static int fail_errno(char *err, const char *op, const char *name, int e) {
  const char *what = strerror(e);
  if (e == ENOENT)
    what = "no such block";
  else if (e == EEXIST)
    what = "a block with this name already exists";
  return luashm_fail(err, op, name, what);
}

/* shm_open wants a leading '/'. */
static void slash_name(char *out, const char *name) {
  out[0] = '/';
  strcpy(out + 1, name);
}

int luashm_name_new(char *out, char *err) {
  static const char hex[] = "0123456789abcdef";
  unsigned char r[8];
  size_t got = 0;
  while (got < sizeof r) {
    ssize_t n = getrandom(r + got, sizeof r - got, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      return fail_errno(err, "create", NULL, errno);
    }
    got += (size_t)n;
  }
  memcpy(out, "luashm_", 7);
  for (size_t i = 0; i < sizeof r; i++) {
    out[7 + 2 * i] = hex[r[i] >> 4];
    out[8 + 2 * i] = hex[r[i] & 15];
  }
  out[LUASHM_GEN_NAME_LEN] = '\0';
  return 0;
}

int luashm_name_check(const char *op, const char *name, size_t len, char *err) {
  if (len == 0) return luashm_fail(err, op, "", "empty name");
  if (len > LUASHM_NAME_MAX) {
    char what[96];
    snprintf(what, sizeof what, "name is %zu bytes, longer than %d", len, LUASHM_NAME_MAX);
    return luashm_fail(err, op, "(too long)", what);
  }
  if (memchr(name, '\0', len) != NULL)
    return luashm_fail(err, op, "(contains NUL)", "names may not contain NUL bytes");
  if (memchr(name, '/', len) != NULL)
    return luashm_fail(err, op, name,
                       "names may not contain '/' (give it without the leading '/')");
  return 0;
}

static int reserve_failed(char *err, const char *op, const char *name, size_t size, int e) {
  char what[200];
  struct statvfs vfs;
  if (e == ENOSPC && statvfs("/dev/shm", &vfs) == 0)
    snprintf(what, sizeof what, "cannot reserve %zu bytes: /dev/shm has %llu bytes free", size,
             (unsigned long long)vfs.f_bavail * vfs.f_frsize);
  else
    snprintf(what, sizeof what, "cannot reserve %zu bytes: %s", size, strerror(e));
  return luashm_fail(err, op, name, what);
}

/* The umask, read once: a create pays for fchmod only when the umask narrows its mode (no
   call of luashm changes the umask; if an embedding program narrows it later, a block gets
   fewer permission bits than asked, never more). */
static mode_t process_umask(void) {
  static int known = 0;
  static mode_t mask;
  if (!known) {
    mask = umask(077);
    umask(mask);
    known = 1;
  }
  return mask;
}

int luashm_shm_create(const char *name, size_t size, mode_t mode, void **data, char *err) {
  char path[LUASHM_NAME_MAX + 2];
  int fd, e;
  void *p;
  slash_name(path, name);
  fd = shm_open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, mode);
  if (fd < 0) return fail_errno(err, "create", name, errno);
  /* The umask may have narrowed the mode; the caller asked for exactly these bits. */
  if ((mode & process_umask()) != 0 && fchmod(fd, mode) != 0) {
    e = errno;
    goto fail;
  }
  /* posix_fallocate sizes the file and reserves its pages: a full /dev/shm fails here rather
     than with SIGBUS on first touch. */
  e = posix_fallocate(fd, 0, (off_t)size);
  if (e != 0) {
    close(fd);
    shm_unlink(path);
    return reserve_failed(err, "create", name, size, e);
  }
  p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) {
    e = errno;
    goto fail;
  }
  close(fd);
  *data = p;
  return 0;
fail:
  close(fd);
  shm_unlink(path);
  return fail_errno(err, "create", name, e);
}

int luashm_shm_attach(const char *name, void **data, size_t *size, char *err) {
  char path[LUASHM_NAME_MAX + 2];
  struct stat st;
  int fd, e;
  void *p;
  slash_name(path, name);
  fd = shm_open(path, O_RDWR | O_CLOEXEC, 0);
  if (fd < 0) return fail_errno(err, "attach", name, errno);
  if (fstat(fd, &st) != 0) {
    e = errno;
    close(fd);
    return fail_errno(err, "attach", name, e);
  }
  if (st.st_size <= 0) {
    close(fd);
    return luashm_fail(err, "attach", name, "block is empty (size 0)");
  }
  p = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  e = errno;
  close(fd);
  if (p == MAP_FAILED) return fail_errno(err, "attach", name, e);
  *data = p;
  *size = (size_t)st.st_size;
  return 0;
}

int luashm_shm_exists(const char *name) {
  char path[LUASHM_NAME_MAX + 2];
  int fd;
  slash_name(path, name);
  fd = shm_open(path, O_RDONLY | O_CLOEXEC, 0);
  if (fd >= 0) close(fd);
  return fd >= 0 || errno == EACCES;
}

void luashm_shm_unmap(void *data, size_t size) {
  if (data != NULL) munmap(data, size);
}

int luashm_shm_unlink(const char *name, char *err) {
  char path[LUASHM_NAME_MAX + 2];
  slash_name(path, name);
  if (shm_unlink(path) != 0) return fail_errno(err, "unlink", name, errno);
  return 0;
}

int luashm_shm_grow(const char *name, size_t size, char *err) {
  char path[LUASHM_NAME_MAX + 2];
  int fd, e;
  slash_name(path, name);
  fd = shm_open(path, O_RDWR | O_CLOEXEC, 0);
  if (fd < 0) return fail_errno(err, "grow", name, errno);
  e = posix_fallocate(fd, 0, (off_t)size); /* never shrinks; reserves the new pages */
  close(fd);
  return e == 0 ? 0 : reserve_failed(err, "grow", name, size, e);
}
