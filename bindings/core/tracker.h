/*
** The tracker: one watchdog process per process tree that unlinks the tracked blocks still
** there when every process of the tree has exited, however it exited.
*/
#ifndef LUASHM_TRACKER_H
#define LUASHM_TRACKER_H

#include <stddef.h>
#include <sys/types.h>

/* Records a block this tree created, starting the watchdog at the first call. Returns 0, or -1
   with a message in err (LUASHM_ERRLEN bytes). */
int luashm_tracker_add(const char *name, char *err);

/* Un-records a name (after unlink). Unknown names are ignored. */
void luashm_tracker_remove(const char *name);

/* Unlinks name, then un-records it: in that order, a SIGKILL in between leaves a record of a
   name that is gone (which the watchdog skips), never an unrecorded block. 0 or -1 with err. */
int luashm_tracker_unlink(const char *name, char *err);

/* Creates a block (posix.h's luashm_shm_create) under name, or under a fresh generated name when
   name is NULL, recording it when track is set; out (LUASHM_NAME_MAX + 1 bytes) receives the
   name. The one home of the protocol: a generated name is recorded once, before it exists (an
   unguessable name cannot be someone else's block), so a SIGKILL between create and record
   cannot leak it; a chosen name only once it is ours, with the file's device and inode, so
   that the watchdog never removes a file someone else made under that name later. Returns 0,
   or -1 with err; on failure nothing is left behind. */
int luashm_tracker_create(const char *name, size_t size, mode_t mode, int track, char *out,
                          void **data, char *err);

/* Starts this process tree's watchdog now if it is not running yet (a no-op when it is).
   Returns 0, or -1 with a message in err. */
int luashm_tracker_start(char *err);

/* Registers the fork handler that starts the watchdog when a process forks (shm.spawn...)
   before its first tracked create, so that every forked worker is in its parent's tree. Called
   when the module is opened; idempotent. */
void luashm_tracker_init(void);

/* The pid of this tree's watchdog, or 0 when this process belongs to no tree yet. */
long luashm_tracker_pid(void);

/* Whether process pid exists and is not a zombie (a SIGKILLed process whose parent has not
   reaped it yet is dead). A pid reused by another process reads as alive: the safe side. */
int luashm_pid_alive(long pid);

/* For the block tool: calls fn once per name recorded by a watchdog, with the pid of the
   process that created it and the watchdog's pid and liveness (every watchdog keeps an index of
   its names in /dev/shm/.luashm-tracker-<pid>; a SIGKILLed watchdog leaves its index behind,
   which then reports alive = 0). Returns the number of indexes read. */
int luashm_tracker_scan(void (*fn)(void *ud, const char *name, long creator, long tracker,
                                   int alive),
                        void *ud);

/* Removes the indexes of watchdogs that are gone; returns how many. */
int luashm_tracker_prune(void);

#endif
