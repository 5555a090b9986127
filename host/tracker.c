/*
** The tracker (watchdog). Placeholder interface for the Manager/tracker issue (#7), which
** replaces this file with the watchdog process.
*/
#include "tracker.h"

int luashm_tracker_add(const char *name, char *err) {
  (void)name;
  (void)err;
  return 0;
}

void luashm_tracker_remove(const char *name) { (void)name; }
