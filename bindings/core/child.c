/*
** The worker's side of a link (see child.h): setup after fork, seeding, and the three modes.
*/
#include "child.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "codec.h"
#include "core.h"
#include "link.h"

/* ---------------------------------------------------------------------------------------
** Setup
** ------------------------------------------------------------------------------------- */

void luashm_child_setup(pid_t parent, int fd) {
  sigset_t none;
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() != parent) _exit(111); /* the parent died before the line above */
  /* Signals are blocked since before the fork: a Ctrl-C now waits for the default action
     instead of running the host's handler in this copy of its state. */
  signal(SIGINT, SIG_DFL);
  signal(SIGTERM, SIG_DFL);
  signal(SIGPIPE, SIG_DFL);
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, NULL);
  if (luashm_link_keep_only(fd) != 0) _exit(112);
  setvbuf(stdout, NULL, _IOLBF, 0);
}

void luashm_child_reseed(lua_State *L, const luashm_seed *s) {
  int top = lua_gettop(L);
  lua_Integer x = s->seed, y = s->rank;
  if (!s->fixed) {
    uint64_t r[2];
    if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r) {
      /* no kernel randomness (seccomp...): the pid and the clock still differ per worker */
      struct timespec ts;
      clock_gettime(CLOCK_MONOTONIC, &ts);
      r[0] = (uint64_t)getpid() * 0x9e3779b97f4a7c15u;
      r[1] = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 30);
    }
    x = (lua_Integer)r[0];
    y = (lua_Integer)r[1];
  }
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  if (lua_getfield(L, -1, "math") == LUA_TTABLE &&
      lua_getfield(L, -1, "randomseed") == LUA_TFUNCTION) {
    lua_pushinteger(L, x);
    lua_pushinteger(L, y);
    lua_pcall(L, 2, 0, 0);
  }
  lua_settop(L, top);
}

static _Noreturn void child_exit(int code) {
  fflush(stdout);
  fflush(stderr);
  _exit(code);
}

/* ---------------------------------------------------------------------------------------
** Running and replying
** ------------------------------------------------------------------------------------- */

/* Pushes onto L "<message>\n<traceback>" of the error at the top of co, from level on. */
static void push_traceback(lua_State *L, lua_State *co, int level) {
  const char *msg = lua_tostring(co, -1);
  if (msg == NULL) msg = lua_pushfstring(co, "(error object is a %s value)", luaL_typename(co, -1));
  luaL_traceback(L, co, msg, level);
}

/* Runs the function below its nargs arguments on a fresh thread. Leaves its results on L and
   returns their count, or pushes "<message>\n<traceback>" and returns -1. */
static int run_traced(lua_State *L, int nargs) {
  lua_State *co;
  int nres, status, base = lua_gettop(L) - nargs - 1;
  co = lua_newthread(L);
  lua_insert(L, base + 1);
  lua_xmove(L, co, nargs + 1);
  status = lua_resume(co, L, nargs, &nres);
  if (status == LUA_OK) {
    lua_remove(L, base + 1);
    luaL_checkstack(L, nres + 8, "too many results");
    lua_xmove(co, L, nres);
    return nres;
  }
  if (status == LUA_YIELD) {
    lua_settop(L, base);
    lua_pushliteral(L, "the worker's function yielded outside a coroutine");
    return -1;
  }
  push_traceback(L, co, 0);
  lua_remove(L, base + 1);
  return -1;
}

static int encode_values(lua_State *L) {
  const char *op = lua_tostring(L, lua_upvalueindex(2));
  int n = (int)lua_tointeger(L, lua_upvalueindex(1));
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  luashm_encode(L, 1, n, &b, op);
  luaL_pushresult(&b);
  return 1;
}

/* Encodes the n values on top of the stack, protected (a value the codec refuses is the
   worker's error). Leaves the encoding or the error message on top; returns 1 / 0. */
static int encode_top(lua_State *L, int n, const char *op) {
  lua_pushinteger(L, n);
  lua_pushstring(L, op);
  lua_pushcclosure(L, encode_values, 2);
  lua_insert(L, -n - 1);
  return lua_pcall(L, n, 1, 0) == LUA_OK;
}

/* Sends a frame: 0, or -1 when it is too big to frame (nothing sent, too_big says why). Leaves
   the process when the parent is gone. */
static int send_reply(int fd, char tag, const char *p, size_t len) {
  if (luashm_frame_send(fd, tag, p, len, 0) == 0) return 0;
  if (errno != E2BIG) child_exit(113);
  return -1;
}

/* Why a reply of len bytes was not sent, into out (n bytes). */
static void too_big(char *out, size_t n, size_t len) {
  snprintf(out, n,
           "the reply is %zu bytes: more than a worker link's frame holds (%zu bytes); return a "
           "Block or an Array instead, it travels by name",
           len, luashm_frame_limit());
}

/* Sends a final frame ('R' results or 'E' an error), or the error that it was too big. */
static void final_reply(int fd, char tag, const char *p, size_t len) {
  char msg[200];
  if (send_reply(fd, tag, p, len) == 0) return;
  too_big(msg, sizeof msg, len);
  if (send_reply(fd, 'E', msg, strlen(msg)) != 0) child_exit(113);
}

/* Sends the outcome of a run_traced (count or -1) as a final frame. */
static void child_reply(lua_State *L, int fd, int n) {
  size_t len;
  const char *p;
  char tag = 'E';
  if (n >= 0 && encode_top(L, n, "result")) tag = 'R';
  p = lua_tolstring(L, -1, &len);
  if (p == NULL) p = "(error object is not a string)", len = strlen(p);
  final_reply(fd, tag, p, len);
  lua_pop(L, 1);
}

void luashm_child_run_function(lua_State *L, int fd, int nargs) {
  int n = run_traced(L, nargs);
  child_reply(L, fd, n);
  child_exit(n >= 0 ? 0 : 1);
}

/* [path, args, len, seed] -> the encoded results, or raises the error with its traceback */
static int path_main(lua_State *L) {
  const char *path = lua_tostring(L, 1);
  const unsigned char *args = (const unsigned char *)lua_touserdata(L, 2);
  size_t len = (size_t)lua_tointeger(L, 3);
  const luashm_seed *seed = (const luashm_seed *)lua_touserdata(L, 4);
  int i, n;
  lua_settop(L, 1);
  luashm_openlibs(L);
  /* A fresh state's own seed comes from the clock and an address, which every sibling forked
     from the same parent shares. */
  luashm_child_reseed(L, seed);
  if (luaL_loadfile(L, path) != LUA_OK) return lua_error(L);
  n = luashm_decode(L, args, len, "spawn");
  lua_createtable(L, n, 1); /* arg, as the host gives a script */
  lua_pushvalue(L, 1);
  lua_rawseti(L, -2, 0);
  for (i = 1; i <= n; i++) {
    lua_pushvalue(L, -n - 2 + i);
    lua_rawseti(L, -2, i);
  }
  lua_setglobal(L, "arg");
  n = run_traced(L, n);
  if (n < 0) return lua_error(L);
  if (!encode_top(L, n, "result")) return lua_error(L);
  return 1;
}

void luashm_child_run_path(const char *path, const char *args, size_t len, int fd,
                           const luashm_seed *s) {
  lua_State *L = luaL_newstate();
  int ok;
  size_t n;
  const char *p;
  char *copy;
  if (L == NULL) {
    static const char msg[] = "cannot create a Lua state: not enough memory";
    luashm_frame_send(fd, 'E', msg, sizeof msg - 1, 0);
    child_exit(1);
  }
  lua_pushcfunction(L, path_main);
  lua_pushstring(L, path);
  lua_pushlightuserdata(L, (void *)args);
  lua_pushinteger(L, (lua_Integer)len);
  lua_pushlightuserdata(L, (void *)s);
  ok = lua_pcall(L, 4, 1, 0) == LUA_OK;
  p = lua_tolstring(L, -1, &n);
  if (p == NULL) p = "(error object is not a string)", n = strlen(p);
  copy = (char *)malloc(n + 1);
  if (copy != NULL) memcpy(copy, p, n);
  lua_close(L); /* the script's own objects are finalised before its outcome is sent */
  if (copy == NULL) child_exit(1);
  final_reply(fd, ok ? 'R' : 'E', copy, n);
  child_exit(ok ? 0 : 1);
}

/* ---------------------------------------------------------------------------------------
** The serving worker
**
** Jobs run on a thread of their own, co, whose stack holds only the message handler and fn:
** a traceback then shows the item's frames, not the parent's as of the fork.
** ------------------------------------------------------------------------------------- */

#define CO_MSGH 1 /* on co's stack: the message handler, then serve_job closed over fn */
#define CO_JOB 2

static int serve_msgh(lua_State *co) {
  push_traceback(co, co, 1); /* from the frame that raised, not this handler's */
  return 1;
}

/* [payload, len] -> first, results... Runs on co, under the message handler; upvalues: fn and
   the index of the item being run (a lua_Integer box: 0 while none is, so that an error says
   which item raised it). A job is (first, n, items...): fn(item) for each of the n items, or
   fn(first + k - 1) for k = 1..n when no items follow. The results are pushed in order: no
   table is built on either side. One protected call for the whole job: a pcall per item would
   cost more than a trivial item's work. */
static int serve_job(lua_State *co) {
  const unsigned char *p = (const unsigned char *)lua_touserdata(co, 1);
  size_t len = (size_t)lua_tointeger(co, 2);
  lua_Integer *running = (lua_Integer *)lua_touserdata(co, lua_upvalueindex(2));
  lua_Integer first, n, k;
  int count, items;
  *running = 0;
  count = luashm_decode(co, p, len, "map");
  if (count < 2 || !lua_isinteger(co, 3) || !lua_isinteger(co, 4))
    return luashm_error(co, "map: malformed job");
  first = lua_tointeger(co, 3);
  n = lua_tointeger(co, 4);
  items = count > 2;
  if (n < 1 || n > LUASHM_CHUNK_MAX || first < 1 || first > LUA_MAXINTEGER - n ||
      (items && count - 2 != n))
    return luashm_error(co, "map: malformed job");
  luaL_checkstack(co, (int)n + 8, "map: too many items");
  lua_pushinteger(co, first); /* the results follow it, in order */
  for (k = 0; k < n; k++) {
    *running = first + k;
    lua_pushvalue(co, lua_upvalueindex(1));
    if (items)
      lua_pushvalue(co, 5 + (int)k);
    else
      lua_pushinteger(co, first + k);
    lua_call(co, 1, 1);
  }
  *running = 0;
  return (int)n + 1;
}

/* Sends an 'F' payload: the index of the item that failed (0: the job as a whole) and the
   message at msg_idx of co. */
static void send_failure(lua_State *co, int fd, lua_Integer index, int msg_idx) {
  size_t len;
  const char *p;
  if (lua_type(co, msg_idx) != LUA_TSTRING)
    lua_pushliteral(co, "(error object is not a string)");
  else
    lua_pushvalue(co, msg_idx);
  lua_pushinteger(co, index);
  lua_insert(co, -2);
  if (!encode_top(co, 2, "map")) child_exit(116); /* an integer and a string always encode */
  p = lua_tolstring(co, -1, &len);
  if (send_reply(fd, 'F', p, len) != 0) child_exit(117); /* a traceback of gigabytes */
  lua_pop(co, 1);
}

/* Encodes the n results at base and sends them as 'M'. 0, or -1 when the codec refused one
   (its message on top, the results still at base for send_unsendable: a result that can fail
   to encode, a table or a userdata, makes the encoder work on copies). */
static int send_results(lua_State *co, int fd, int base, int n) {
  int k, plain = 1;
  size_t len;
  const char *p;
  for (k = 0; k < n && plain; k++) {
    int t = lua_type(co, base + k);
    plain = t == LUA_TNIL || t == LUA_TBOOLEAN || t == LUA_TNUMBER || t == LUA_TSTRING;
  }
  if (!plain) {
    luaL_checkstack(co, n + 8, "map: too many results");
    for (k = 0; k < n; k++) lua_pushvalue(co, base + k);
  }
  if (!encode_top(co, n, "map")) {
    if (!plain) return -1;
    send_failure(co, fd, 0, lua_gettop(co)); /* plain values: out of memory */
    return 0;
  }
  p = lua_tolstring(co, -1, &len);
  if (send_reply(fd, 'M', p, len) != 0) {
    char msg[200];
    too_big(msg, sizeof msg, len);
    lua_pushstring(co, msg);
    send_failure(co, fd, 0, lua_gettop(co)); /* the chunk as a whole */
  }
  return 0;
}

/* The n results at base failed to encode (the codec's message on top): reports the first item
   whose result the codec refuses, first being the first item's index. */
static void send_unsendable(lua_State *co, int fd, int base, int n, lua_Integer first) {
  int whole = lua_gettop(co), k;
  for (k = 0; k < n; k++) {
    lua_pushvalue(co, base + k);
    if (!encode_top(co, 1, "map")) {
      send_failure(co, fd, first + k, lua_gettop(co));
      return;
    }
    lua_pop(co, 1);
  }
  send_failure(co, fd, first, whole);
}

/* Runs one job and replies; running is serve_job's box. */
static void serve_one(lua_State *co, int fd, const unsigned char *job, size_t len,
                      const lua_Integer *running) {
  int top = lua_gettop(co);
  lua_pushvalue(co, CO_JOB);
  lua_pushlightuserdata(co, (void *)job);
  lua_pushinteger(co, (lua_Integer)len);
  if (lua_pcall(co, 2, LUA_MULTRET, CO_MSGH) != LUA_OK)
    send_failure(co, fd, *running, top + 1); /* 0: the job itself is undecodable */
  else {
    int n = lua_gettop(co) - top - 1;
    if (send_results(co, fd, top + 2, n) != 0)
      send_unsendable(co, fd, top + 2, n, lua_tointeger(co, top + 1));
  }
  lua_settop(co, top);
}

void luashm_child_serve(lua_State *L, int fd) {
  lua_State *co = lua_newthread(L);
  lua_Integer *running;
  lua_pushcfunction(co, serve_msgh);
  lua_pushvalue(L, -2);
  lua_xmove(L, co, 1); /* fn */
  running = (lua_Integer *)lua_newuserdatauv(co, sizeof *running, 0);
  lua_pushcclosure(co, serve_job, 2);
  for (;;) {
    int tag;
    size_t len;
    unsigned char *job = luashm_frame_read(fd, &tag, &len);
    if (job == NULL) child_exit(len == 0 ? 0 : 114);
    if (tag != 'J') child_exit(115);
    serve_one(co, fd, job, len, running);
    free(job);
  }
}
