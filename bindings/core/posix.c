/*
** The POSIX layer (see posix.h): names, exclusive create with reserved pages, attach, map,
** rename, unlink. The mapping cache, the manager and the tracker also stat /dev/shm/NAME to
** learn a block's identity, and the watchdog and the block tool reach /dev/shm through a
** directory descriptor.
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

#define SHM_PATH_MAX (sizeof LUASHM_SHM_DIR + 1 + LUASHM_NAME_MAX)

int luashm_fail(char *err, const char *op, const char *name, const char *what) {
  int e = errno;
  if (name != NULL)
    snprintf(err, LUASHM_ERRLEN, "%s '%s': %s", op, name, what);
  else
    snprintf(err, LUASHM_ERRLEN, "%s: %s", op, what);
  errno = e;
  return -1;
}

const char *luashm_strerror(int e) {
  if (e == ENOENT) return "no such block";
  if (e == EEXIST) return "a block with this name already exists";
  return strerror(e);
}

static int fail_errno(char *err, const char *op, const char *name, int e) {
  luashm_fail(err, op, name, luashm_strerror(e));
  errno = e;
  return -1;
}

/* shm_open wants a leading '/'. */
static void slash_name(char *out, const char *name) {
  out[0] = '/';
  strcpy(out + 1, name);
}

/* /dev/shm/name, for the calls shm_open has no counterpart of (fstatat, rename). */
static void shm_path(char *out, const char *name) {
  memcpy(out, LUASHM_SHM_DIR "/", sizeof LUASHM_SHM_DIR);
  strcpy(out + sizeof LUASHM_SHM_DIR, name);
}

/* ---------------------------------------------------------------------------------------
** Names
** ------------------------------------------------------------------------------------- */

static const char hex[] = "0123456789abcdef";

int luashm_name_new(char *out, char *err) {
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

int luashm_name_is_generated(const char *name, size_t len) {
  if (len != LUASHM_GEN_NAME_LEN || memcmp(name, "luashm_", 7) != 0) return 0;
  for (size_t i = 7; i < len; i++)
    if (!((name[i] >= '0' && name[i] <= '9') || (name[i] >= 'a' && name[i] <= 'f'))) return 0;
  return 1;
}

const char *luashm_name_invalid(const char *name, size_t len) {
  if (len == 0) return "empty name";
  if (len > LUASHM_NAME_MAX) return "too long";
  if (memchr(name, '\0', len) != NULL) return "names may not contain NUL bytes";
  if (memchr(name, '/', len) != NULL)
    return "names may not contain '/' (give it without the leading '/')";
  /* /dev/shm/. and /dev/shm/.. are directories: no block can have these names. */
  if ((len == 1 && name[0] == '.') || (len == 2 && name[0] == '.' && name[1] == '.'))
    return "invalid name ('.' and '..' are directories, not blocks)";
  return NULL;
}

int luashm_name_check(const char *op, const char *name, size_t len, char *err) {
  const char *why = luashm_name_invalid(name, len);
  if (why == NULL) return 0;
  errno = EINVAL;
  if (len == 0) return luashm_fail(err, op, "", why);
  if (len > LUASHM_NAME_MAX) {
    char what[96];
    snprintf(what, sizeof what, "name is %zu bytes, longer than %d", len, LUASHM_NAME_MAX);
    return luashm_fail(err, op, "(too long)", what);
  }
  if (memchr(name, '\0', len) != NULL) return luashm_fail(err, op, "(contains NUL)", why);
  {
    /* name is len bytes, not necessarily NUL-terminated (a name read from a message) */
    char quoted[LUASHM_NAME_MAX + 1];
    memcpy(quoted, name, len);
    quoted[len] = '\0';
    return luashm_fail(err, op, quoted, why);
  }
}

void luashm_name_escape(char *out, size_t outlen, const char *name) {
  size_t o = 0;
  for (; *name != '\0'; name++) {
    unsigned char c = (unsigned char)*name;
    if (c > ' ' && c < 0x7f && c != '\\') {
      if (o + 1 >= outlen) break;
      out[o++] = (char)c;
    } else {
      if (o + 4 >= outlen) break;
      out[o++] = '\\';
      out[o++] = 'x';
      out[o++] = hex[c >> 4];
      out[o++] = hex[c & 15];
    }
  }
  out[o] = '\0';
}

/* ---------------------------------------------------------------------------------------
** Blocks
** ------------------------------------------------------------------------------------- */

static int reserve_failed(char *err, const char *op, const char *name, size_t size, int e) {
  char what[200];
  struct statvfs vfs;
  if (e == ENOSPC && statvfs(LUASHM_SHM_DIR, &vfs) == 0)
    snprintf(what, sizeof what, "cannot reserve %zu bytes: /dev/shm has %llu bytes free", size,
             (unsigned long long)vfs.f_bavail * vfs.f_frsize);
  else
    snprintf(what, sizeof what, "cannot reserve %zu bytes: %s", size, strerror(e));
  luashm_fail(err, op, name, what);
  errno = e;
  return -1;
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

int luashm_shm_create(const char *name, const char *shown, size_t size, mode_t mode, void **data,
                      luashm_fileid *id, char *err) {
  char path[LUASHM_NAME_MAX + 2];
  struct stat st;
  int fd, e;
  void *p;
  if (shown == NULL) shown = name;
  slash_name(path, name);
  fd = shm_open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, mode);
  if (fd < 0) return fail_errno(err, "create", shown, errno);
  /* The umask may have narrowed the mode; the caller asked for exactly these bits. */
  if ((mode & process_umask()) != 0 && fchmod(fd, mode) != 0) goto fail;
  if (id != NULL) {
    if (fstat(fd, &st) != 0) goto fail;
    id->dev = (uint64_t)st.st_dev;
    id->ino = (uint64_t)st.st_ino;
    id->size = (uint64_t)size;
  }
  /* posix_fallocate sizes the file and reserves its pages: a full /dev/shm fails here rather
     than with SIGBUS on first touch. */
  e = posix_fallocate(fd, 0, (off_t)size);
  if (e != 0) {
    close(fd);
    shm_unlink(path);
    return reserve_failed(err, "create", shown, size, e);
  }
  p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) goto fail;
  close(fd);
  *data = p;
  return 0;
fail:
  e = errno;
  close(fd);
  shm_unlink(path);
  return fail_errno(err, "create", shown, e);
}

/* A sparse block's missing pages, reserved now (fallocate leaves the bytes alone). Only a lack
   of memory is an error: a file system that cannot reserve keeps the old behaviour. */
static int reserve_sparse(int fd, const struct stat *st, const char *name, char *err) {
  if ((uint64_t)st->st_blocks * 512 >= (uint64_t)st->st_size) return 0;
  while (fallocate(fd, 0, 0, st->st_size) != 0) {
    if (errno == EINTR) continue;
    if (errno == ENOSPC || errno == ENOMEM)
      return reserve_failed(err, "attach", name, (size_t)st->st_size, errno);
    break;
  }
  return 0;
}

int luashm_shm_attach(const char *name, void **data, size_t *size, luashm_fileid *id, char *err) {
  char path[LUASHM_NAME_MAX + 2];
  struct stat st;
  int fd, e;
  void *p;
  slash_name(path, name);
  /* O_NONBLOCK: opening a FIFO someone put in /dev/shm must not wait for a writer. */
  fd = shm_open(path, O_RDWR | O_NONBLOCK | O_CLOEXEC, 0);
  if (fd < 0) return fail_errno(err, "attach", name, errno);
  if (fstat(fd, &st) != 0) {
    e = errno;
    close(fd);
    return fail_errno(err, "attach", name, e);
  }
  if (!S_ISREG(st.st_mode)) {
    close(fd);
    errno = EINVAL;
    return luashm_fail(err, "attach", name, "not a block (not a regular file)");
  }
  if (st.st_size <= 0) {
    close(fd);
    errno = EINVAL;
    return luashm_fail(err, "attach", name, "block is empty (size 0)");
  }
  if (reserve_sparse(fd, &st, name, err) != 0) {
    e = errno;
    close(fd);
    errno = e;
    return -1;
  }
  p = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  e = errno;
  close(fd);
  if (p == MAP_FAILED) return fail_errno(err, "attach", name, e);
  *data = p;
  *size = (size_t)st.st_size;
  if (id != NULL) {
    id->dev = (uint64_t)st.st_dev;
    id->ino = (uint64_t)st.st_ino;
    id->size = (uint64_t)st.st_size;
  }
  return 0;
}

int luashm_shm_lstat(const char *name, struct stat *st) {
  char path[SHM_PATH_MAX];
  shm_path(path, name);
  return fstatat(AT_FDCWD, path, st, AT_SYMLINK_NOFOLLOW);
}

int luashm_shm_exists(const char *name) {
  struct stat st;
  return luashm_shm_lstat(name, &st) == 0 && S_ISREG(st.st_mode);
}

void luashm_shm_unmap(void *data, size_t size) {
  if (data != NULL) munmap(data, size);
}

int luashm_shm_rename(const char *from, const char *to, char *err) {
  char src[SHM_PATH_MAX], dst[SHM_PATH_MAX];
  shm_path(src, from);
  shm_path(dst, to);
  if (renameat2(AT_FDCWD, src, AT_FDCWD, dst, RENAME_NOREPLACE) == 0) return 0;
  if (errno != EINVAL && errno != ENOSYS) return fail_errno(err, "create", to, errno);
  /* A file system without RENAME_NOREPLACE: link fails on an existing name just the same. */
  if (link(src, dst) != 0) return fail_errno(err, "create", to, errno);
  unlink(src);
  return 0;
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
  fd = shm_open(path, O_RDWR | O_NONBLOCK | O_CLOEXEC, 0);
  if (fd < 0) return fail_errno(err, "grow", name, errno);
  e = posix_fallocate(fd, 0, (off_t)size); /* never shrinks; reserves the new pages */
  close(fd);
  return e == 0 ? 0 : reserve_failed(err, "grow", name, size, e);
}
