/*
** The POSIX layer: shared-memory names, exclusive create with reserved pages, attach, map,
** rename, unlink. Plain C, no Lua. Each function returns 0 on success, or -1 with a message
** ("<op> '<name>': <cause>") in err, which is LUASHM_ERRLEN bytes, and errno set to the cause.
** Never unlinks on the attach path; only a block created in the same call is rolled back on
** failure. Everything it opens in /dev/shm it refuses unless it is a regular file.
*/
#ifndef LUASHM_POSIX_H
#define LUASHM_POSIX_H

#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "luashm.h" /* LUASHM_ERRLEN: the public API's message size is the layers' too */

#define LUASHM_NAME_MAX 250       /* bytes, without the leading '/' */
#define LUASHM_GEN_NAME_LEN 23    /* "luashm_" + 16 hex digits */
#define LUASHM_SHM_DIR "/dev/shm" /* where glibc >= 2.34's shm_open puts every name */

/* A block's identity: a name can be unlinked and made again by anyone, a device and inode
   cannot be reused while the file is there. The size tells a shrunk or grown block apart (the
   mapping cache), or is the size a block was asked to have (the tracker's records). */
typedef struct luashm_fileid {
  uint64_t dev, ino, size;
} luashm_fileid;

/* Fills out (LUASHM_GEN_NAME_LEN + 1 bytes) with a fresh name from the kernel's random source. */
int luashm_name_new(char *out, char *err);

/* Whether name (len bytes) has the form luashm_name_new makes. Async-signal-safe. */
int luashm_name_is_generated(const char *name, size_t len);

/* The name rules, without a message: NULL when name (len bytes) is a valid block name, else
   why not. Async-signal-safe (the watchdog and the index reader use it). */
const char *luashm_name_invalid(const char *name, size_t len);

/* Checks a user-given name: not empty, at most LUASHM_NAME_MAX bytes, no '/' or NUL, not "."
   or "..". op names the calling operation in the message. */
int luashm_name_check(const char *op, const char *name, size_t len, char *err);

/* Writes name into out (outlen > 0 bytes, always NUL-terminated, cut if too short) with every
   byte that is not printable ASCII, the space and the backslash as \xHH, so that a name shown
   on a terminal can neither move the cursor nor forge a row or column. Four times the name's
   length plus one is always enough. Async-signal-safe. */
void luashm_name_escape(char *out, size_t outlen, const char *name);

/* Creates name exclusively with the given mode, sizes it and reserves its pages (a full
   /dev/shm fails here, naming the size and the free space), and maps it; id, when not NULL,
   receives the file's identity. Messages name `shown` (the name the caller will give the block,
   NULL: name). On failure nothing is left behind. */
int luashm_shm_create(const char *name, const char *shown, size_t size, mode_t mode, void **data,
                      luashm_fileid *id, char *err);

/* Attaches an existing block read-write and maps all of it; its size comes from fstat. A sparse
   block (made with ftruncate, as Python does) gets its pages reserved first, so that a full
   /dev/shm is an error here rather than a SIGBUS on first touch; a block whose pages are all
   there already costs no more than fstat. id, when not NULL, receives the identity of the file
   mapped (from that fstat). */
int luashm_shm_attach(const char *name, void **data, size_t *size, luashm_fileid *id, char *err);

/* Grows the block to at least size bytes and reserves the new pages (a full /dev/shm fails
   here); mappings made before keep their size. Never shrinks. */
int luashm_shm_grow(const char *name, size_t size, char *err);

/* Whether name is a regular file in /dev/shm (1) or not (0): never opens it, so a FIFO, a
   directory or a symbolic link is simply not a block. */
int luashm_shm_exists(const char *name);

/* What /dev/shm/name is, without following a link (shm_open does not follow one either): the
   one lstat of a name for the callers that check a name still holds the file they recorded
   (the tracker, the manager, the mapping cache). 0, or -1 with errno. */
int luashm_shm_lstat(const char *name, struct stat *st);

/* Releases a mapping made by create or attach. */
void luashm_shm_unmap(void *data, size_t size);

/* Gives the block `from` the name `to`, failing with "a block with this name already exists"
   (EEXIST) rather than replacing one. The file keeps its identity. */
int luashm_shm_rename(const char *from, const char *to, char *err);

/* Removes the name. Fails with "no such block" when it is not there. */
int luashm_shm_unlink(const char *name, char *err);

/* The cause an errno gives in messages about blocks: "no such block" for ENOENT, "a block with
   this name already exists" for EEXIST, else strerror's. */
const char *luashm_strerror(int e);

/* Formats "<op> '<name>': <what>" into err; a helper for the other layers. */
int luashm_fail(char *err, const char *op, const char *name, const char *what);

#endif
