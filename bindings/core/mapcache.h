/*
** The mapping cache: one mapping per block per process. Attaching a block this process already
** maps (the same file: device, inode and size, looked up with one lstat of its name) shares
** that mapping instead of making another; closing drops a reference, and the last few
** mappings nobody references stay mapped (least recently used first out), so that a worker
** handed the same arrays again and again pays neither mmap, nor the page faults, nor munmap.
** Plain C, no Lua: the Block (block.c) holds one reference per handle.
*/
#ifndef LUASHM_MAPCACHE_H
#define LUASHM_MAPCACHE_H

#include <stddef.h>
#include <stdint.h>

#include "posix.h" /* luashm_fileid: what the cache matches, what a sender passes with a name */

typedef struct luashm_mapping luashm_mapping;

/* Attaches name: the cached mapping of the file the name holds now (one reference more), or
   a new mapping, cached when its identity could be established (a new mapping also unmaps
   the unreferenced ones whose block was unlinked or replaced meanwhile, looking at most
   every 10 ms). Fills *data and *size, and
   *m with the reference to give back to luashm_mapcache_release (NULL when the mapping is not
   cached: then the caller unmaps it itself). 0, or -1 with err (LUASHM_ERRLEN bytes) and
   errno set to the failing call's. */
int luashm_mapcache_attach(const char *name, luashm_mapping **m, void **data, size_t *size,
                           char *err);

/* luashm_mapcache_attach with the identity the sender saw (hint, untrusted): when this process
   has a mapping of that very file, attached by that name, it is shared with no syscall at all
   (a live mapping pins its inode: the identity cannot have passed to another file); otherwise
   as luashm_mapcache_attach. */
int luashm_mapcache_attach_hint(const char *name, const luashm_fileid *hint, luashm_mapping **m,
                                void **data, size_t *size, char *err);

/* The reference of a mapping this process created (data, size): never shared, unmapped with
   its last handle, but able to tell its block's identity, for the messages that send the
   block. NULL when out of memory. */
luashm_mapping *luashm_mapcache_own(const char *name, void *data, size_t size);

/* Fills id with the identity of m's block and returns 1, or returns 0 when it cannot be known
   (a created block's is looked up, with one lstat, the first time it is asked for: at its
   first send; a name unlinked or made again since then gives an identity a receiver will
   find no mapping of, or the one its name would give it anyway). */
int luashm_mapcache_id(luashm_mapping *m, luashm_fileid *id);

/* Drops one reference; a mapping nobody references joins the unreferenced ones, of which the
   oldest are unmapped past the cache's size (LUASHM_MAP_CACHE, default 8; 0: none kept). */
void luashm_mapcache_release(luashm_mapping *m);

/* This process unlinked name: the mappings attached by that name are unmapped as soon as no
   handle references them (at once for the unreferenced ones), so that the cache never keeps
   the pages of a block its own process removed. */
void luashm_mapcache_forget(const char *name);

/* Unmaps every unreferenced mapping; returns how many. */
int luashm_mapcache_flush(void);

#endif
