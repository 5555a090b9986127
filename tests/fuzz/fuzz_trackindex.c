/*
** libFuzzer target for the tracker index parser (luashm_index_parse): the input is the text of
** a /dev/shm/.luashm-tracker-<pid> file, which any local user can write. The parser reads a
** heap copy of exactly the input's size (so ASan sees any read past the end); every record it
** accepts must carry names that pass the name rules (so no path ever leaves /dev/shm) and
** counts that agree with what it returned. An accepted record is written back in the index
** format and must parse to the same record.
*/
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "watchdog.h"

typedef struct seen {
  long count;
  int roundtrip; /* parsing a record's own line again */
  luashm_trackrec first;
  char name[LUASHM_NAME_MAX + 1], target[LUASHM_NAME_MAX + 1];
} seen;

static void hex(char *out, const char *s) {
  for (; *s; s++, out += 2) sprintf(out, "%02x", (unsigned char)*s);
  *out = '\0';
}

static void check_name(const char *name) {
  if (name == NULL || luashm_name_invalid(name, strlen(name)) != NULL ||
      strchr(name, '/') != NULL || strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
    abort();
}

static void on_record(void *ud, const luashm_trackrec *r) {
  seen *s = (seen *)ud;
  check_name(r->name);
  if (r->target != NULL) check_name(r->target);
  if (r->creator < 0 || r->creator > INT32_MAX) abort();
  if (s->roundtrip) {
    if (strcmp(r->name, s->name) != 0 || (r->target == NULL) != (s->target[0] == '\0') ||
        (r->target != NULL && strcmp(r->target, s->target) != 0) ||
        r->creator != s->first.creator || r->id.size != s->first.id.size ||
        r->id.dev != s->first.id.dev || r->id.ino != s->first.id.ino)
      abort();
  } else if (s->count == 0) {
    s->first = *r;
    strcpy(s->name, r->name);
    strcpy(s->target, r->target != NULL ? r->target : "");
  }
  s->count++;
}

/* The first accepted record, written as the watchdog writes it, parses back the same. */
static void roundtrip(seen *s) {
  char line[64 + 4 * LUASHM_NAME_MAX + 200], hn[2 * LUASHM_NAME_MAX + 1],
      ht[2 * LUASHM_NAME_MAX + 1];
  long tracker;
  hex(hn, s->name);
  hex(ht, s->target);
  snprintf(line, sizeof line, "luashm-tracker 2 7\n%ld %llu %llu %llu %s %s\n", s->first.creator,
           (unsigned long long)s->first.id.size, (unsigned long long)s->first.id.dev,
           (unsigned long long)s->first.id.ino, hn, s->target[0] ? ht : "-");
  s->roundtrip = 1;
  s->count = 0;
  if (luashm_index_parse(line, strlen(line), &tracker, on_record, s) != 1 || s->count != 1 ||
      tracker != 7)
    abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *text = malloc(size ? size : 1);
  seen s;
  long tracker = 0, n;
  memcpy(text, data, size);
  memset(&s, 0, sizeof s);
  n = luashm_index_parse(text, size, &tracker, on_record, &s);
  if (n < 0 ? n != -1 || s.count != 0 : n != s.count || tracker <= 0 || tracker > INT32_MAX)
    abort();
  if (n > 0) roundtrip(&s);
  free(text);
  return 0;
}
