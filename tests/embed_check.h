/* What the C tests of the embedding API share: a CHECK that counts failures and names the line,
   the verdict at the end, and whether a name is in /dev/shm. */
#ifndef LUASHM_EMBED_CHECK_H
#define LUASHM_EMBED_CHECK_H

#include <stdio.h>
#include <unistd.h>

static int failures = 0;

#define CHECK(cond)                                                            \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
      failures++;                                                              \
    }                                                                          \
  } while (0)

static inline int in_shm(const char *name) {
  char path[300];
  snprintf(path, sizeof path, "/dev/shm/%s", name);
  return access(path, F_OK) == 0;
}

/* Prints the verdict of program `prog` and returns its exit status. */
static inline int verdict(const char *prog) {
  if (failures > 0) {
    fprintf(stderr, "%s: %d check(s) failed\n", prog, failures);
    return 1;
  }
  printf("%s: all checks passed\n", prog);
  return 0;
}

#endif
