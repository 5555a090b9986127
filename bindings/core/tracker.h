/*
** The tracker: one watchdog process per process tree that unlinks the tracked blocks still
** there when every process of the tree has exited, however it exited.
**
** The protocol (records are SOCK_SEQPACKET messages to the watchdog, watchdog.h):
**
** - A record is sent BEFORE the file it describes exists, so that a SIGKILL at any instant
**   leaves no block the watchdog does not know of. Every block is first created under a fresh
**   generated name G (64 random bits, exclusive create): "pending G" (with the size asked),
**   create G, "confirm G" with G's device and inode. A pending G is ours if it is a regular file
**   of the tree's user with size 0 or the size asked: nobody outside the tree can have learnt
**   the name before it was confirmed. A confirmed G is ours only while it is that very file.
** - A chosen name N is never created in place (a name someone else may create at any moment
**   cannot be proven ours): "pending G for N", create and confirm G as above, then rename G to N
**   without replacing (renameat2 RENAME_NOREPLACE: an existing N is "already exists" and G is
**   removed), then "moved G". The file keeps its inode across the rename, so until the moved
**   record arrives the watchdog recognises N as the confirmed G's file; after it, the record is
**   N's, with that identity.
** - unlink removes the name first and sends "unlink N" after, with the identity of the file it
**   removed: a SIGKILL in between leaves a record of a file that is gone (or of a name someone
**   else re-made: another inode), which the watchdog skips; and the record of a process of the
**   tree that made N again meanwhile (and whose record may arrive first) is not forgotten.
** - At the end the watchdog unlinks exactly the recorded files that are still the files it
**   recorded; a name someone else made meanwhile, for any kind of name, is left alone.
*/
#ifndef LUASHM_TRACKER_H
#define LUASHM_TRACKER_H

#include <stddef.h>
#include <sys/types.h>

#include "watchdog.h"

/* Creates a block under name, or under a fresh generated name when name is NULL, mapped into
   *data, following the protocol above when track is set; out (LUASHM_NAME_MAX + 1 bytes)
   receives the name. Returns 0, or -1 with err; on failure nothing is left behind. */
int luashm_tracker_create(const char *name, size_t size, mode_t mode, int track, char *out,
                          void **data, char *err);

/* Unlinks name, then un-records it (in that order, see above). 0 or -1 with err. */
int luashm_tracker_unlink(const char *name, char *err);

/* Starts this process tree's watchdog now if it is not running yet (a no-op when it is), and
   installs the fork handler that keeps the tracker's state consistent in a forked child (only
   then: a program that never tracks a block keeps its fork() untouched). Thread-safe. Returns
   0, or -1 with a message in err. */
int luashm_tracker_start(char *err);

/* Called by luashm's own forks (shm.spawn and the workers built on it) just before fork(): the
   watchdog starts first, so that the worker is in its parent's tree and what it creates
   outlives it while its parent runs. On failure the worker starts a tree of its own at its
   first tracked create. */
void luashm_tracker_prefork(void);

/* The pid of this tree's watchdog, or 0 when this process belongs to no tree yet. */
long luashm_tracker_pid(void);

/* Whether process pid exists and is not a zombie (a SIGKILLed process whose parent has not
   reaped it yet is dead). A pid reused by another process reads as alive: the safe side. */
int luashm_pid_alive(long pid);

/* For the block tool: calls fn once per record of every index in /dev/shm that can be read
   safely (a regular file, not through a symbolic link, writable by its owner only), with the
   watchdog's pid and liveness and the index's owner: a record speaks only for files of that
   user. A SIGKILLed watchdog leaves its index behind, which then reports alive = 0. Returns
   the number of indexes read. */
int luashm_tracker_scan(void (*fn)(void *ud, const luashm_trackrec *r, long tracker, int alive,
                                   uid_t owner),
                        void *ud);

/* Which file a record read from an index of owner's stands for now: its target when the block
   was renamed before the watchdog moved the record, else its name; only if that name holds the
   very file recorded (luashm_track_owns) and it is owner's. Fills *st (an lstat) and returns
   the name, or NULL when neither does (gone, or someone else's file now). */
const char *luashm_tracker_resolve(const luashm_trackrec *r, uid_t owner, struct stat *st);

/* Removes the indexes of watchdogs that are gone (only those scan would read); returns how
   many. */
int luashm_tracker_prune(void);

#endif
