/*
** The tracker: one watchdog process per process tree that unlinks the tracked blocks still
** there when every process of the tree has exited, however it exited.
*/
#ifndef LUASHM_TRACKER_H
#define LUASHM_TRACKER_H

/* Records a block this tree created, starting the watchdog at the first call. Returns 0, or -1
   with a message in err (LUASHM_ERRLEN bytes). */
int luashm_tracker_add(const char *name, char *err);

/* Un-records a name (after unlink). Unknown names are ignored. */
void luashm_tracker_remove(const char *name);

#endif
