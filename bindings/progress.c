/*
** The Progress counter (shm.progress): a shared count in its own self-describing block that
** any worker adds to (inherited by fork, or sent by name), and the one bar that the creating
** process draws on stderr, only when stderr is a terminal: from p:add in that process and from
** every wait of a join, shm.parallel or pool:map (luashm_progress_tick), never from a thread.
*/
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "kinds.h"
#include "sync.h"

#define LUASHM_PROGRESS "luashm.Progress"
#define PROGRESS_ACTIVE "luashm.progress.active" /* registry: the bar this process draws */
#define PROGRESS_VERSION 1
#define LABEL_MAX 48
#define DRAW_PERIOD 0.1 /* seconds between redraws */
#define BAR_WIDTH 30

/* The block's bytes after the common header. */
typedef struct progress_data {
  int64_t total;
  int64_t count; /* atomic */
  double start;  /* CLOCK_MONOTONIC seconds, shared by every process of the machine */
  char label[LABEL_MAX];
} progress_data;

#define PROGRESS_SIZE (LUASHM_HEADER_SIZE + sizeof(progress_data))

typedef struct progress {
  luashm_object head;
  pid_t owner; /* the creating process: only it draws; 0 when attached */
  int tty;     /* stderr was a terminal at creation */
  int drawn;   /* a line is on the screen without its final newline */
  int finished;
  double last; /* when it last drew */
} progress;

static progress_data *data_of(progress *p) {
  return (progress_data *)(p->head.b->data + LUASHM_HEADER_SIZE);
}

static progress *toprogress(lua_State *L, int i) {
  return (progress *)luashm_tokind(L, i, &luashm_kind_progress);
}

static progress *checkprogress(lua_State *L, int i) {
  progress *p = toprogress(L, i);
  if (p->head.b->data == NULL) luashm_error(L, "progress '%s' is closed", p->head.b->name);
  return p;
}

/* Formats h:mm:ss or m:ss. */
static void clock_text(char *out, size_t n, double s) {
  long t = s < 0 ? 0 : s > 3.6e6 ? 3600000 : (long)(s + 0.5);
  if (t >= 3600)
    snprintf(out, n, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
  else
    snprintf(out, n, "%ld:%02ld", t / 60, t % 60);
}

/* One line: label [=====>    ] 45% 450/1000 123.4/s ETA 0:04; the final one ends with a
   newline and says how long it took. */
static void draw(progress *p, int final) {
  progress_data *d = data_of(p);
  int64_t count = __atomic_load_n(&d->count, __ATOMIC_RELAXED), total = d->total;
  double elapsed = luashm_now() - d->start, frac, rate;
  char bar[BAR_WIDTH + 1], when[32];
  int i, fill;
  frac = total > 0 ? (double)count / (double)total : 1.0;
  if (frac > 1) frac = 1;
  if (frac < 0) frac = 0;
  fill = (int)(frac * BAR_WIDTH);
  for (i = 0; i < BAR_WIDTH; i++) bar[i] = i < fill ? '=' : i == fill ? '>' : ' ';
  bar[BAR_WIDTH] = '\0';
  rate = elapsed > 0 ? (double)count / elapsed : 0;
  if (final)
    clock_text(when, sizeof when, elapsed);
  else if (rate > 0)
    clock_text(when, sizeof when, (double)(total - count) / rate);
  else
    strcpy(when, "?");
  fprintf(stderr, "\r%s%s[%s] %3d%% %lld/%lld %.1f/s %s %s\033[K%s", d->label,
          d->label[0] ? " " : "", bar, (int)(frac * 100), (long long)count, (long long)total, rate,
          final ? "in" : "ETA", when, final ? "\n" : "");
  fflush(stderr);
  p->drawn = !final;
  p->last = luashm_now();
}

/* Redraws p when it is this process's bar and due; draws the final line once when done. */
static void maybe_draw(progress *p, int force) {
  progress_data *d;
  if (p->owner != getpid() || !p->tty || p->finished || p->head.b->data == NULL) return;
  d = data_of(p);
  if (__atomic_load_n(&d->count, __ATOMIC_RELAXED) >= d->total) {
    draw(p, 1);
    p->finished = 1;
    return;
  }
  if (force || luashm_now() - p->last >= DRAW_PERIOD) draw(p, 0);
}

int luashm_progress_tick(lua_State *L) {
  int active = 0;
  if (lua_getfield(L, LUA_REGISTRYINDEX, PROGRESS_ACTIVE) == LUA_TUSERDATA) {
    progress *p = (progress *)luaL_testudata(L, -1, LUASHM_PROGRESS);
    if (p != NULL) {
      maybe_draw(p, 0);
      active = p->owner == getpid() && p->tty && !p->finished && p->head.b->data != NULL;
    }
  }
  lua_pop(L, 1);
  return active;
}

/* Wraps the Block on top of the stack (replaced by the Progress). */
static progress *progress_push(lua_State *L, pid_t owner) {
  progress *p = (progress *)lua_newuserdatauv(L, sizeof(progress), 1);
  memset(p, 0, sizeof *p);
  p->head.kind = &luashm_kind_progress;
  p->head.b = luashm_toblock(L, -2);
  luaL_setmetatable(L, LUASHM_PROGRESS);
  lua_insert(L, -2);
  lua_setiuservalue(L, -2, 1);
  p->owner = owner;
  p->tty = owner != 0 && isatty(STDERR_FILENO);
  return p;
}

static int progress_new(lua_State *L) {
  lua_Integer total = luaL_checkinteger(L, 1);
  size_t len = 0;
  const char *label = luaL_optlstring(L, 2, "", &len);
  luashm_block *b;
  progress *p;
  progress_data *d;
  if (total < 0) return luashm_error(L, "progress: total %I is negative", total);
  if (len >= LABEL_MAX)
    return luashm_error(L, "progress: label is %d bytes, longer than %d", (int)len, LABEL_MAX - 1);
  lua_settop(L, 2);
  b = luashm_block_new(L, PROGRESS_SIZE, 0);
  d = (progress_data *)(b->data + LUASHM_HEADER_SIZE);
  d->total = total;
  d->start = luashm_now();
  memcpy(d->label, label, len);
  luashm_header_init(b->data, "progress", PROGRESS_VERSION);
  p = progress_push(L, getpid());
  lua_pushvalue(L, -1);
  lua_setfield(L, LUA_REGISTRYINDEX, PROGRESS_ACTIVE);
  maybe_draw(p, 1);
  return 1;
}

static int progress_add(lua_State *L) {
  progress *p = checkprogress(L, 1);
  lua_Integer k = luaL_optinteger(L, 2, 1);
  int64_t now = __atomic_add_fetch(&data_of(p)->count, (int64_t)k, __ATOMIC_SEQ_CST);
  maybe_draw(p, 0);
  lua_pushinteger(L, now);
  return 1;
}

/* Ends the line of a bar that never finished (in the creating process). */
static void progress_finish(progress *p) {
  if (p->owner == getpid() && p->head.b->data != NULL && p->tty && !p->finished) {
    maybe_draw(p, 1);
    if (p->drawn) fputc('\n', stderr);
  }
  p->finished = 1;
}

/* The handle's collection ends the bar's line (the Block, which the user may still hold, stays
   mapped); close ends it and releases the mapping. Neither unlinks. Both idempotent. */
static int progress_gc(lua_State *L) {
  progress_finish(toprogress(L, 1));
  return 0;
}

static int progress_close(lua_State *L) {
  progress *p = toprogress(L, 1);
  progress_finish(p);
  luashm_block_close(p->head.b);
  return 0;
}

static int progress_tostring(lua_State *L) {
  progress *p = toprogress(L, 1);
  if (p->head.b->data == NULL)
    lua_pushfstring(L, "luashm.Progress '%s' (closed)", p->head.b->name);
  else
    lua_pushfstring(L, "luashm.Progress '%s' (%I/%I)", p->head.b->name,
                    (lua_Integer)__atomic_load_n(&data_of(p)->count, __ATOMIC_SEQ_CST),
                    (lua_Integer)data_of(p)->total);
  return 1;
}

static int progress_index(lua_State *L) {
  const char *k = lua_tostring(L, 2);
  toprogress(L, 1);
  if (k != NULL && lua_type(L, 2) == LUA_TSTRING) {
    if (luashm_object_field(L, 1, k)) return 1;
    if (strcmp(k, "count") == 0 || strcmp(k, "total") == 0 || strcmp(k, "label") == 0) {
      progress_data *d = data_of(checkprogress(L, 1));
      if (k[0] == 'c')
        lua_pushinteger(L, (lua_Integer)__atomic_load_n(&d->count, __ATOMIC_SEQ_CST));
      else if (k[0] == 't')
        lua_pushinteger(L, (lua_Integer)d->total);
      else
        lua_pushlstring(L, d->label, strnlen(d->label, LABEL_MAX));
      return 1;
    }
  }
  lua_pushvalue(L, 2);
  lua_rawget(L, lua_upvalueindex(1));
  return 1;
}

static int progress_probe(const unsigned char *p, size_t size) {
  return size >= PROGRESS_SIZE && luashm_header_is(p, size, "progress", PROGRESS_VERSION);
}

/* shm.open's wrapper: the Block on top becomes a Progress that does not draw. */
static int progress_wrap(lua_State *L, int view) {
  luashm_block *b = luashm_toblock(L, -1);
  (void)view;
  if (!progress_probe(b->data, b->size))
    return luashm_error(L, "open '%s': not a progress counter", b->name);
  progress_push(L, 0);
  return 1;
}

static void progress_describe(const unsigned char *p, size_t size, char *out, size_t n) {
  progress_data d;
  (void)size;
  memcpy(&d, p + LUASHM_HEADER_SIZE, sizeof d);
  snprintf(out, n, "progress %lld/%lld", (long long)d.count, (long long)d.total);
}

static const luaL_Reg progress_meth[] = {{"add", progress_add},
                                         {"close", progress_close},
                                         {"unlink", luashm_object_unlink},
                                         {NULL, NULL}};

static const luaL_Reg progress_metameth[] = {{"__gc", progress_gc},
                                             {"__close", progress_close},
                                             {"__tostring", progress_tostring},
                                             {NULL, NULL}};

static void progress_open(lua_State *L) {
  luashm_newkind(L, &luashm_kind_progress, progress_meth, progress_metameth, progress_index);
  lua_pushcfunction(L, progress_new);
  lua_setfield(L, -2, "progress");
}

const luashm_kind luashm_kind_progress = {"progress",        LUASHM_PROGRESS, "progress",
                                          progress_probe,    progress_wrap,   NULL,
                                          progress_describe, progress_open};
