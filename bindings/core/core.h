/*
** What every luashm type shares: the error helper, option checking, the head of every object
** (the object contract), the Block that every object stands on, what C code outside array.c may
** know of an Array, and the module's open functions.
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

/* Raises "luashm: <formatted message>" (lua_pushfstring formats), never returns. The error
   form everywhere: "luashm: <op> '<name>': <cause>", where op is the function or method the
   user called (attach, acquire, reshape, send...), or the object's kind when the cause is the
   object's state ("luashm: channel 'x' is shut down", "luashm: lock 'x' is closed"). */
int luashm_error(lua_State *L, const char *fmt, ...);

/* Checks the option table at idx: absent or nil is fine (returns 0); a table must have only
   string keys from valid (NULL-terminated), else raises "luashm: <op>: unknown option 'nmae'
   (valid: name, track, ...)"; a value of another type is a type error. Returns 1 for a table. */
int luashm_checkoptions(lua_State *L, int idx, const char *op, const char *const valid[]);

/* Reads an optional boolean field of the table at idx (idx 0, absent or nil: def). */
int luashm_optboolfield(lua_State *L, int idx, const char *field, int def);

/* Checks a name argument at idx with luashm_name_check, raising with op in the message. */
const char *luashm_checkname(lua_State *L, int idx, const char *op);

/* ---------------------------------------------------------------------------------------
** The head of every object of a kind (kinds.h)
** ------------------------------------------------------------------------------------- */

struct luashm_kind;
struct luashm_block;

/* Every object userdata of a kind starts with this: its kind, which is also its fast type tag
   (only the kind's own file puts that address there: see luashm_tokind), and its Block, held
   as the object's user value 1 (a Block's head points at itself; a private array has none). */
typedef struct luashm_object {
  const struct luashm_kind *kind;
  struct luashm_block *b;
} luashm_object;

/* ---------------------------------------------------------------------------------------
** Blocks (block.c)
** ------------------------------------------------------------------------------------- */

#define LUASHM_BLOCK "luashm.Block"

/* A mapping of a named block. data is NULL once closed: every object over it holds the Block
   and checks data before each access, so closing the Block invalidates them all. */
typedef struct luashm_block {
  luashm_object head; /* head.b is this Block */
  unsigned char *data;
  size_t size;
  int tracked;     /* recorded with the tracker by this process */
  void *held_lock; /* the robust mutex of this mapping that this process holds through a Lock,
                      or NULL: closing the mapping releases it first (glibc's list of held
                      robust mutexes must never point into unmapped memory) */
  struct luashm_mapping *map; /* this handle's reference to a cached mapping (mapcache.h), or
                                 NULL for a mapping of its own (created, or uncached) */
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

/* The options every constructor that makes a block takes (and lists among its valid ones). */
#define LUASHM_BLOCK_OPTIONS "name", "track", "mode"

/* Creates a block (a generated name unless opts.name) and pushes it. The option table at
   optidx (0 for none) is read for LUASHM_BLOCK_OPTIONS only: its caller checks its keys. */
luashm_block *luashm_block_new(lua_State *L, size_t size, int optidx);

/* Attaches an existing block by name and pushes it: a Block handle of its own over the
   process's cached mapping of that block when there is one (mapcache.h). */
luashm_block *luashm_block_attach(lua_State *L, const char *name);

/* luashm_block_attach given the identity a sender saw (a luashm_fileid, mapcache.h; NULL:
   none), which lets a cached mapping be found with no syscall. */
struct luashm_fileid;
luashm_block *luashm_block_attach_id(lua_State *L, const char *name,
                                     const struct luashm_fileid *id);

/* The errno of the failure when luashm_block_attach last raised in this process, 0 when it
   did not: tells a transient failure (EMFILE, ENFILE, ENOMEM, ENOSPC) from a permanent one. A
   caller that classifies a failure resets it first. */
extern int luashm_attach_errno;

/* Releases b's mapping (and the lock held in it); idempotent. What close means for every
   object over a Block. */
void luashm_block_close(luashm_block *b);

/* Removes b's name and un-records it from the tracker, in the order that cannot leak (see
   luashm_tracker_unlink); b's mapping keeps working. 0, or -1 with err. */
int luashm_block_unlink(luashm_block *b, char *err);

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

/* The balanced split of 1..len into n parts that shm.partition returns (and MPI's gather and
   scatter use): rank's part (1-based) is lo..hi, the first len % n parts one longer; an empty
   part has hi = lo - 1. Arguments are checked by the callers. Every intermediate stays within
   0..len + 1 (so len = math.maxinteger does not overflow). */
static inline void luashm_partition(int64_t len, int64_t n, int64_t rank, int64_t *lo,
                                    int64_t *hi) {
  int64_t base = len / n, extra = len % n;
  *lo = (rank - 1) * base + (rank - 1 < extra ? rank - 1 : extra) + 1;
  *hi = *lo - 1 + base + (rank <= extra ? 1 : 0);
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
** Module pieces that are not kinds (the kinds open through the registry: kinds.h). Each
** adds its functions to the module table at the top of the stack.
** ------------------------------------------------------------------------------------- */

void luashm_open_codec(lua_State *L);  /* shm.encode, shm.decode (codec.c) */
void luashm_open_worker(lua_State *L); /* shm.spawn, shm.cpus, shm.partition (worker.c) */

/* Redraws this process's progress bar if one is running and due (progress.c); returns 1 when
   a bar is running, so that a wait should come back to it every ~100 ms. */
int luashm_progress_tick(lua_State *L);

int luaopen_luashm(lua_State *L);
void luashm_openlibs(lua_State *L);

#endif
