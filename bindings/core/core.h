/*
** What every luashm type shares: the error helper, the Block that every view stands on, the
** registry of block kinds that shm.open consults, and each type's open function.
*/
#ifndef LUASHM_CORE_H
#define LUASHM_CORE_H

#include <stddef.h>
#include <stdint.h>

#include "lauxlib.h"
#include "lua.h"
#include "posix.h"

/* The symbols a program or the stock interpreter may link against; everything else is hidden. */
#define LUASHM_EXPORT __attribute__((visibility("default")))

#if defined(__GNUC__)
#define LUASHM_LIKELY(x) __builtin_expect(!!(x), 1)
#define LUASHM_UNLIKELY(x) __builtin_expect(!!(x), 0)
#else
#define LUASHM_LIKELY(x) (x)
#define LUASHM_UNLIKELY(x) (x)
#endif

/* Raises "luashm: <formatted message>" (lua_pushfstring formats), never returns. */
int luashm_error(lua_State *L, const char *fmt, ...);

/* ---------------------------------------------------------------------------------------
** Blocks
** ------------------------------------------------------------------------------------- */

#define LUASHM_BLOCK "luashm.Block"

/* A mapping of a named block. data is NULL once closed: every view holds the Block (as its
   user value) and checks data before each access, so close invalidates them all. */
typedef struct luashm_block {
  unsigned char *data;
  size_t size;
  int tracked; /* recorded with the tracker by this process */
  char name[LUASHM_NAME_MAX + 1];
} luashm_block;

/* The Block at index i, raising "luashm: block '<name>' is closed" when closed. */
luashm_block *luashm_checkblock(lua_State *L, int i);

/* The Block at index i whether open or not (a type error if it is no Block). */
luashm_block *luashm_toblock(lua_State *L, int i);

/* Raises "luashm: <what> '<name>': block is closed" unless b is open; the views' gate. */
#define luashm_checkopen(L, b, what) \
  ((void)(LUASHM_UNLIKELY((b)->data == NULL) ? luashm_closed((L), (b), (what)) : 0))
int luashm_closed(lua_State *L, const luashm_block *b, const char *what);

/* Creates a block (generated name when name is NULL) and pushes it. opts at index optidx
   (0 for none) may carry name, track, mode. */
luashm_block *luashm_block_new(lua_State *L, size_t size, int optidx);

/* Removes b's name and un-records it from the tracker, in the order that cannot leak (see
   luashm_tracker_unlink); b's mapping keeps working. 0, or -1 with err. */
int luashm_block_unlink(luashm_block *b, char *err);

/* Attaches an existing block by name and pushes it. */
luashm_block *luashm_block_attach(lua_State *L, const char *name);

/* Reads an optional boolean field of the table at idx (absent or nil: def). */
int luashm_optboolfield(lua_State *L, int idx, const char *field, int def);

/* Checks a name argument at idx with luashm_name_check, raising with op in the message. */
const char *luashm_checkname(lua_State *L, int idx, const char *op);

/* ---------------------------------------------------------------------------------------
** Kinds of block, for shm.open
** ------------------------------------------------------------------------------------- */

/* A kind recognises its bytes (probe: 1 yes, 0 no) and wraps the Block at the top of the stack
   into its object (wrap: replaces it with the object, or raises on a malformed layout). */
typedef struct luashm_kind {
  const char *name;
  int (*probe)(const unsigned char *p, size_t size);
  int (*wrap)(lua_State *L);
} luashm_kind;

/* Blocks that hold one of luashm's own objects (lock, barrier, channel, progress counter,
   manager record...) start with this 64-byte header, so that shm.open and the block tool can
   tell them apart; the object's own data starts at LUASHM_HEADER_SIZE. */
#define LUASHM_MAGIC "\x93LUASHM" /* 7 bytes + NUL */
#define LUASHM_HEADER_SIZE 64
typedef struct luashm_header {
  char magic[8];    /* LUASHM_MAGIC */
  char kind[16];    /* "lock", "barrier", "channel"...: NUL-padded */
  uint32_t version; /* layout version of that kind, starting at 1 */
  uint32_t reserved;
  int64_t creator; /* pid of the creating process, for the block tool */
} luashm_header;

/* Writes the header for kind at p (the block's first bytes). */
void luashm_header_init(unsigned char *p, const char *kind, uint32_t version);

/* 1 when the block (p, size) is at least LUASHM_HEADER_SIZE bytes and starts with the header of
   kind at this version; 0 otherwise. Untrusted bytes: it only compares. */
int luashm_header_is(const unsigned char *p, size_t size, const char *kind, uint32_t version);

/* Every kind luashm knows, most specific first, terminated by a NULL name (open.c). */
extern const luashm_kind luashm_kinds[];

/* The lock kind (lock.c): probe and wrap, for luashm_kinds. */
int luashm_lock_probe(const unsigned char *p, size_t size);
int luashm_lock_wrap(lua_State *L);

/* The barrier kind (barrier.c): probe and wrap, for luashm_kinds. */
int luashm_barrier_probe(const unsigned char *p, size_t size);
int luashm_barrier_wrap(lua_State *L);

/* The manager record kind (manager.c): probe and wrap, for luashm_kinds. */
int luashm_manager_probe(const unsigned char *p, size_t size);
int luashm_manager_wrap(lua_State *L);

/* The progress counter kind (progress.c): probe and wrap, for luashm_kinds. */
int luashm_progress_probe(const unsigned char *p, size_t size);
int luashm_progress_wrap(lua_State *L);

/* The channel kind (channel.c): probe and wrap, for luashm_kinds. */
int luashm_channel_probe(const unsigned char *p, size_t size);
int luashm_channel_wrap(lua_State *L);

/* The ShareableList kind (list.c): probe and wrap, for luashm_kinds (last: it has no magic). */
int luashm_list_probe(const unsigned char *p, size_t size);
int luashm_list_wrap(lua_State *L);

/* Validates a ShareableList layout in (p, size) as untrusted bytes: 0 when every count,
   offset, format and code is consistent with the size, else -1 with the cause in err
   (LUASHM_ERRLEN bytes). The fuzz target's entry point. */
int luashm_list_check(const unsigned char *p, size_t size, char *err);

/* The kind name of a block's bytes ("array", "list", ..., or "block"). */
const char *luashm_kind_of(const unsigned char *p, size_t size);

/* ---------------------------------------------------------------------------------------
** Sending objects by name (channels, worker arguments and results, managers)
** ------------------------------------------------------------------------------------- */

/* Every shareable type's metatable has this field: a C function that takes the object and
   returns its block name, its kind (a key of the reopeners table) and, for views that the
   block alone does not describe, a plain table (numbers, strings, tables) describing the view. */
#define LUASHM_REF_FIELD "__luashm_ref"

/* Registry table kind -> function(name, view) that reopens, in another process, an object
   described by LUASHM_REF_FIELD. Each type adds its entry in its luashm_open_<type>. */
#define LUASHM_REOPENERS "luashm.reopeners"

/* Adds the function at the top of the stack as the reopener of kind (pops it). */
void luashm_set_reopener(lua_State *L, const char *kind);

/* ---------------------------------------------------------------------------------------
** Arrays (array.c; the dtypes and the NPY format are in npy.h)
** ------------------------------------------------------------------------------------- */

#define LUASHM_ARRAY "luashm.Array"

/* What C code outside array.c (the value codec, collectives) may know of an Array. data and
   shape stay valid while the Array is reachable and its block open. */
typedef struct luashm_arrayinfo {
  unsigned char *data; /* the first element */
  int dtype;           /* LUASHM_I8 ... LUASHM_F64 (npy.h) */
  size_t itemsize;     /* bytes per element */
  size_t count;        /* elements, C (row-major) order, contiguous */
  int ndim;
  const size_t *shape; /* ndim entries */
} luashm_arrayinfo;

/* 1 and *info filled when the value at index i is an Array (raising "block is closed" when it
   is closed); 0 when it is no Array. */
int luashm_toarray(lua_State *L, int i, luashm_arrayinfo *info);

/* shm.open's "array" kind: an NPY header (probe), wrapped into an Array that owns the Block at
   the top of the stack (wrap; a malformed header is an error naming the block). */
int luashm_array_probe(const unsigned char *p, size_t size);
int luashm_array_wrap(lua_State *L);

/* The balanced split of 1..len into n parts that shm.partition returns (and MPI's gather and
   scatter use): rank's part (1-based) is lo..hi, the first len % n parts one longer; an empty
   part has hi = lo - 1. Arguments are checked by the callers. */
static inline void luashm_partition(int64_t len, int64_t n, int64_t rank, int64_t *lo,
                                    int64_t *hi) {
  int64_t base = len / n, extra = len % n;
  *lo = (rank - 1) * base + (rank - 1 < extra ? rank - 1 : extra) + 1;
  *hi = *lo + base + (rank <= extra ? 1 : 0) - 1;
}

/* ---------------------------------------------------------------------------------------
** The core's C API for separately built modules (luashm/mpi.so), which cannot link the
** core's hidden symbols: luaopen_luashm stores a pointer to this table in the registry.
** ------------------------------------------------------------------------------------- */

#define LUASHM_CAPI "luashm.capi"
typedef struct luashm_capi {
  int (*error)(lua_State *L, const char *fmt, ...);
  int (*toarray)(lua_State *L, int i, luashm_arrayinfo *info);
  const char *const *dtype_names;
} luashm_capi;

/* ---------------------------------------------------------------------------------------
** Module pieces: each adds its functions to the module table at the top of the stack.
** ------------------------------------------------------------------------------------- */

void luashm_open_block(lua_State *L);
void luashm_open_array(lua_State *L);
void luashm_open_codec(lua_State *L);    /* shm.encode, shm.decode (codec.c) */
void luashm_open_channel(lua_State *L);  /* shm.channel (channel.c) */
void luashm_open_lock(lua_State *L);     /* shm.lock (lock.c) */
void luashm_open_barrier(lua_State *L);  /* shm.barrier (barrier.c) */
void luashm_open_manager(lua_State *L);  /* shm.manager (manager.c) */
void luashm_open_list(lua_State *L);     /* shm.list (list.c) */
void luashm_open_worker(lua_State *L);   /* shm.spawn, shm.cpus, shm.partition (worker.c) */
void luashm_open_progress(lua_State *L); /* shm.progress (progress.c) */

/* Redraws this process's progress bar if one is running and due (progress.c); returns 1 when
   a bar is running, so that a wait should come back to it every ~100 ms. */
int luashm_progress_tick(lua_State *L);
int luaopen_luashm(lua_State *L);
void luashm_openlibs(lua_State *L);
void luashm_open_kinds(lua_State *L);

#endif
