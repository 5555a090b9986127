/*
** The POSIX layer: shared-memory names, exclusive create with reserved pages, attach, map,
** unlink. Plain C, no Lua. Each function returns 0 on success, or -1 with a message
** ("<op> '<name>': <cause>") in err, which is LUASHM_ERRLEN bytes. Never unlinks on the attach
** path; only a block created in the same call is rolled back on failure.
*/
#ifndef LUASHM_POSIX_H
#define LUASHM_POSIX_H

#include <stddef.h>
#include <sys/types.h>

#define LUASHM_NAME_MAX 250    /* bytes, without the leading '/' */
#define LUASHM_GEN_NAME_LEN 23 /* "luashm_" + 16 hex digits */
#define LUASHM_ERRLEN 512

/* Fills out (LUASHM_GEN_NAME_LEN + 1 bytes) with a fresh name from the kernel's random source. */
int luashm_name_new(char *out, char *err);

/* Checks a user-given name: not empty, at most LUASHM_NAME_MAX bytes, no '/' or NUL. op names the
   calling operation in the message. */
int luashm_name_check(const char *op, const char *name, size_t len, char *err);

/* Creates name exclusively with the given mode, sizes it and reserves its pages (a full
   /dev/shm fails here, naming the size and the free space), and maps it. On failure nothing
   is left behind. */
int luashm_shm_create(const char *name, size_t size, mode_t mode, void **data, char *err);

/* Attaches an existing block read-write and maps all of it; its size comes from fstat. */
int luashm_shm_attach(const char *name, void **data, size_t *size, char *err);

/* Grows the block to at least size bytes and reserves the new pages (a full /dev/shm fails
   here); mappings made before keep their size. Never shrinks. */
int luashm_shm_grow(const char *name, size_t size, char *err);

/* Whether name exists (1), not (0). */
int luashm_shm_exists(const char *name);

/* Releases a mapping made by create or attach. */
void luashm_shm_unmap(void *data, size_t size);

/* Removes the name. Fails with "no such block" when it is not there. */
int luashm_shm_unlink(const char *name, char *err);

/* Formats "<op> '<name>': <what>" into err; a helper for the other layers. */
int luashm_fail(char *err, const char *op, const char *name, const char *what);

#endif
