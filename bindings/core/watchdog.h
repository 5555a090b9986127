/*
** What the tree's side of the tracker (tracker.c), the watchdog (watchdog.c) and the block tool
** share: the records the tree sends, the rule that says whether a file is the one a record
** stands for, and the index file the watchdog keeps in /dev/shm.
*/
#ifndef LUASHM_WATCHDOG_H
#define LUASHM_WATCHDOG_H

#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "posix.h"

/* The records, one SOCK_SEQPACKET message each (see tracker.h for the protocol). */
enum {
  LUASHM_REC_PENDING = 'P', /* name (generated) is about to be created, for target if any */
  LUASHM_REC_CONFIRM = 'C', /* name exists now, with identity id */
  LUASHM_REC_MOVED = 'M',   /* name was renamed to its target: the record moves with it */
  LUASHM_REC_UNLINK = 'U'   /* name is gone (the file with id, when known): forget it */
};

typedef struct luashm_trackmsg {
  uint8_t op, namelen, targetlen, pad[5];
  int64_t creator;
  luashm_fileid id;                /* the size asked, and once confirmed the device and inode */
  char names[2 * LUASHM_NAME_MAX]; /* name then target, namelen + targetlen bytes, no NULs */
} luashm_trackmsg;

#define LUASHM_TRACKMSG_HEAD offsetof(luashm_trackmsg, names)

/* A record as the index holds it. target is NULL when there is none; id.size is the size
   asked, id.dev and id.ino are 0 while the name is pending (created but not yet confirmed, or
   not even created). */
typedef struct luashm_trackrec {
  const char *name, *target;
  long creator;
  luashm_fileid id;
} luashm_trackrec;

/* Whether st (an lstat of name, a record's name) is the file the record stands for, uid being
   the tree's user. Confirmed: that very file (device and inode). Pending: only a generated
   name may be, one that no process outside the tree can have learnt yet, so a regular file of
   the tree's user with size 0 (before fallocate) or the size asked is ours. The watchdog and
   the block tool decide with this one rule. Async-signal-safe. */
int luashm_track_owns(const char *name, const luashm_fileid *id, uid_t uid, const struct stat *st);

/* Whether st (an lstat of a record's target) is the file the record's name was renamed to. */
int luashm_track_owns_target(const luashm_fileid *id, const struct stat *st);

/* The index: /dev/shm/.luashm-tracker-<pid>, written by watchdog <pid>. */
#define LUASHM_INDEX_PREFIX ".luashm-tracker-"

/* Parses an index (len bytes of untrusted text): a header "luashm-tracker 2 <pid>" (the pid
   goes to *tracker) and one line per record, "<creator> <size> <dev> <ino> <name> <target>"
   with the names in hex (so that any byte a name may hold round-trips) and "-" for no target.
   Calls fn for every well-formed line whose names pass the name rules and skips the others.
   Returns the number of records passed to fn, or -1 when the header is not an index's. */
long luashm_index_parse(const char *text, size_t len, long *tracker,
                        void (*fn)(void *ud, const luashm_trackrec *r), void *ud);

/* Runs the watchdog on the socket rfd (the tree's records arrive there) and never returns.
   Called in the child of _Fork: async-signal-safe all through. */
void luashm_watchdog(int rfd) __attribute__((noreturn));

#endif
