/*
** The Worker: a forked Lua process (shm.spawn) and what its parent does with it (join, kill,
** running, shm.wait for the first of many to end), plus shm.cpus and shm.partition, and the
** private pieces that shm.parallel and shm.pool (scripts/lib) are built from: ranked and
** seeded spawns, serving workers, waits on many.
**
** Each worker is linked to its parent by one socketpair (core/link.h: frames, reading,
** waiting); what the child does is in core/child.c. Only the process that forked a worker may
** read, wait on or signal it.
*/
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "child.h"
#include "codec.h"
#include "core.h"
#include "link.h"
#include "sync.h"
#include "tracker.h"

#define LUASHM_WORKER "luashm.Worker"
#define WORKERS_LIVE "luashm.workers.live" /* registry: unreaped workers of this process, weak */
#define TICK_MS 100                        /* progress redraw period while waiting */
#define REAP_CHECK_MS 1000
#define FRAME_LIMIT_ENV "LUASHM_FRAME_LIMIT" /* tests: a lower frame limit (link.h) */

typedef struct worker {
  luashm_link link;
  pid_t pid;
  pid_t owner; /* the process that forked it: only that one may read, wait or signal */
  int rank;    /* 0 when it has none */
  int reaped;  /* waitpid has collected it: the pid may belong to someone else now */
  int status;  /* waitpid status, once reaped */
  int joined;  /* its outcome was reported (join or shm.wait): shm.wait passes it over */
} worker;

/* ---------------------------------------------------------------------------------------
** The parent's side: reaping, reading, describing how a worker ended
** ------------------------------------------------------------------------------------- */

static void reap(worker *w, int block) {
  int st;
  pid_t r;
  if (w->reaped) return;
  do r = waitpid(w->pid, &st, block ? 0 : WNOHANG);
  while (r < 0 && errno == EINTR);
  if (r == w->pid || (r < 0 && errno == ECHILD)) {
    w->reaped = 1;
    w->status = r == w->pid ? st : 0;
  }
}

/* Reads what the link holds; at its end the child is gone: reap it. -1 when out of memory. */
static int pump(worker *w) {
  int r = luashm_link_pump(&w->link);
  if (r > 0) reap(w, 1);
  return r < 0 ? -1 : 0;
}

/* The worker has ended when it is reaped; a child whose EOF never comes (a stray process
   holding its link) is still noticed by the periodic non-blocking reap. */
static int ended(worker *w) {
  if (!w->reaped && w->link.fd < 0) reap(w, 1);
  return w->reaped;
}

static void unregister_live(lua_State *L, int idx) {
  idx = lua_absindex(L, idx);
  lua_getfield(L, LUA_REGISTRYINDEX, WORKERS_LIVE);
  lua_pushvalue(L, idx);
  lua_pushnil(L);
  lua_rawset(L, -3);
  lua_pop(L, 1);
}

/* Pushes "worker <pid> (rank r)". */
static void push_who(lua_State *L, const worker *w) {
  if (w->rank > 0)
    lua_pushfstring(L, "worker %d (rank %d)", (int)w->pid, w->rank);
  else
    lua_pushfstring(L, "worker %d", (int)w->pid);
}

/* Pushes the error of a worker: "luashm: <who>: <message>"; a message that already carries
   the luashm prefix loses it, so the prefix is said once. */
static void push_failure(lua_State *L, const worker *w, const char *msg, size_t len) {
  if (len >= 8 && memcmp(msg, "luashm: ", 8) == 0) msg += 8, len -= 8;
  lua_pushliteral(L, "luashm: ");
  push_who(L, w);
  lua_pushliteral(L, ": ");
  lua_pushlstring(L, msg, len);
  lua_concat(L, 4);
}

/* Pushes why a worker that sent no final frame ended. */
static void push_death(lua_State *L, const worker *w) {
  char what[160];
  if (WIFSIGNALED(w->status))
    snprintf(what, sizeof what, "killed by signal %d (%s)", WTERMSIG(w->status),
             strsignal(WTERMSIG(w->status)));
  else if (WIFEXITED(w->status))
    snprintf(what, sizeof what, "exited with status %d without returning results",
             WEXITSTATUS(w->status));
  else
    snprintf(what, sizeof what, "ended with wait status %d", w->status);
  push_failure(L, w, what, strlen(what));
}

/* ---------------------------------------------------------------------------------------
** Waiting on several workers at once, interruptibly, redrawing the progress bar
** ------------------------------------------------------------------------------------- */

/* Is w ready: a complete frame (when frames count) or ended. */
static int ready(worker *w, int frames) {
  return (frames && luashm_frame_ready(&w->link)) || ended(w);
}

/* Reads what every link holds (without blocking): 0, or ENOMEM. */
static int pump_all(worker **ws, int n) {
  int i;
  for (i = 0; i < n; i++)
    if (pump(ws[i]) != 0) return ENOMEM;
  return 0;
}

/* One slice of a wait: sleeps until a link stirs (at most ms), then reads them all. Returns
   0, EINTR (an interrupt is pending) or ENOMEM. */
static int wait_slice(worker **ws, int n, luashm_link **ks, struct pollfd *pfd, int ms) {
  int i, rc;
  for (i = 0; i < n; i++) ks[i] = &ws[i]->link;
  rc = luashm_link_poll(ks, n, pfd, ms);
  return pump_all(ws, n) != 0 ? ENOMEM : rc;
}

/* Waits until one of ws[0..n) is ready, for at most timeout seconds (negative: forever).
   Returns its index or -1 on timeout; raises "luashm: interrupted" on SIGINT. frames: a
   complete frame counts as ready (serving workers); otherwise only the end does (results are
   read whole at the end). */
static int wait_any(lua_State *L, worker **ws, int n, double timeout, int frames) {
  luashm_deadline d;
  luashm_sigint g = {0, 0};
  double next_reap = luashm_now() + REAP_CHECK_MS * 1e-3;
  luashm_link **ks =
      (luashm_link **)lua_newuserdatauv(L, (sizeof *ks + sizeof(struct pollfd)) * (size_t)n, 0);
  struct pollfd *pfd = (struct pollfd *)(ks + n);
  int i, rc, found = -1;
  luashm_deadline_in(&d, timeout);
  /* What already came (an end not yet seen, too): a timeout of 0 still finds it. */
  for (rc = pump_all(ws, n); rc == 0;) {
    int64_t left = luashm_deadline_left(&d);
    int ms = REAP_CHECK_MS;
    for (i = 0; i < n && found < 0; i++)
      if (ready(ws[i], frames)) found = i;
    if (found >= 0 || left == 0) break;
    if (left / 1000000 < ms) ms = (int)(left / 1000000) + 1;
    if (luashm_progress_tick(L) && ms > TICK_MS) ms = TICK_MS;
    if (!g.tried) luashm_sigint_begin(&g);
    if ((rc = wait_slice(ws, n, ks, pfd, ms)) != 0) break;
    if (luashm_now() >= next_reap) {
      for (i = 0; i < n; i++) reap(ws[i], 0);
      next_reap = luashm_now() + REAP_CHECK_MS * 1e-3;
    }
  }
  luashm_sigint_end(&g);
  lua_pop(L, 1);
  if (rc == EINTR) luashm_interrupted(L);
  if (rc == ENOMEM) luashm_error(L, "wait: out of memory reading results");
  return found;
}

/* ---------------------------------------------------------------------------------------
** Spawning
** ------------------------------------------------------------------------------------- */

/* Makes this process's set of live workers, empty. It holds them weakly: a handle the program
   dropped is collected, and its __gc kills and reaps the worker. */
static void new_live_set(lua_State *L) {
  lua_newtable(L);
  lua_createtable(L, 0, 1);
  lua_pushliteral(L, "k");
  lua_setfield(L, -2, "__mode");
  lua_setmetatable(L, -2);
  lua_setfield(L, LUA_REGISTRYINDEX, WORKERS_LIVE);
}

enum { RUN_FUNCTION, RUN_PATH, RUN_SERVE };

/* What a spawn needs besides the stack: its mode, rank, seed, and for RUN_PATH the script. */
typedef struct spawn_spec {
  int mode, rank, nargs;
  luashm_seed seed;
  const char *path, *args;
  size_t arglen;
} spawn_spec;

/* Forks a worker. For RUN_FUNCTION and RUN_SERVE the function and its nargs arguments are
   on top of the stack (the child uses them in its copy of the state). Pushes the Worker. */
static worker *spawn_worker(lua_State *L, const spawn_spec *sp) {
  int sv[2], e;
  sigset_t all, old;
  pid_t parent = getpid(), pid;
  worker *w = (worker *)lua_newuserdatauv(L, sizeof(worker), 0);
  memset(w, 0, sizeof *w);
  w->link.fd = -1;
  w->rank = sp->rank;
  w->owner = parent;
  w->reaped = 1; /* nothing to reap until the fork succeeds */
  luaL_setmetatable(L, LUASHM_WORKER);
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
    luashm_error(L, "spawn: socketpair: %s", strerror(errno));
  if (luashm_link_hold(sv[0]) != 0 || luashm_link_hold(sv[1]) != 0) {
    luashm_link_release(sv[0]);
    luashm_link_release(sv[1]);
    luashm_error(L, "spawn: out of memory");
  }
  luashm_tracker_prefork(); /* the worker is in this process's tree */
  fflush(NULL);             /* or the child would print the parent's pending output again */
  sigfillset(&all);
  sigprocmask(SIG_SETMASK, &all, &old);
  pid = fork();
  e = errno;
  if (pid != 0) sigprocmask(SIG_SETMASK, &old, NULL);
  if (pid < 0) {
    luashm_link_release(sv[0]);
    luashm_link_release(sv[1]);
    luashm_error(L, "spawn: fork: %s", strerror(e));
  }
  if (pid == 0) {
    luashm_child_setup(parent, sv[1]);
    lua_pop(L, 1);   /* the Worker */
    new_live_set(L); /* the parent's workers are not this process's children */
    if (sp->mode == RUN_PATH)
      luashm_child_run_path(sp->path, sp->args, sp->arglen, sv[1], &sp->seed);
    luashm_child_reseed(L, &sp->seed);
    if (sp->mode == RUN_SERVE) luashm_child_serve(L, sv[1]);
    luashm_child_run_function(L, sv[1], sp->nargs);
  }
  luashm_link_release(sv[1]);
  w->pid = pid;
  w->link.fd = sv[0];
  w->reaped = 0;
  fcntl(w->link.fd, F_SETFL, fcntl(w->link.fd, F_GETFL) | O_NONBLOCK);
  lua_getfield(L, LUA_REGISTRYINDEX, WORKERS_LIVE);
  lua_pushvalue(L, -2);
  lua_pushboolean(L, 1);
  lua_rawset(L, -3);
  lua_pop(L, 1);
  return w;
}

/* Collects workers that ended unjoined, so none stays a zombie for long. */
static void sweep(lua_State *L) {
  lua_getfield(L, LUA_REGISTRYINDEX, WORKERS_LIVE);
  lua_pushnil(L);
  while (lua_next(L, -2)) {
    worker *w = (worker *)lua_touserdata(L, -2);
    lua_pop(L, 1);
    if (w->link.fd >= 0) pump(w);
    reap(w, 0);
    if (w->reaped) {
      lua_pushvalue(L, -1);
      lua_pushnil(L);
      lua_rawset(L, -4); /* clearing the current key during lua_next is allowed */
    }
  }
  lua_pop(L, 1);
}

static int worker_spawn(lua_State *L) {
  spawn_spec sp = {RUN_FUNCTION, 0, 0, {0, 0, 0}, NULL, NULL, 0};
  int t = lua_type(L, 1);
  if (t == LUA_TFUNCTION) {
    sp.nargs = lua_gettop(L) - 1;
    sweep(L);
    spawn_worker(L, &sp);
    return 1;
  }
  if (t == LUA_TSTRING) {
    luaL_Buffer b;
    FILE *f;
    sp.path = lua_tostring(L, 1);
    if ((f = fopen(sp.path, "r")) == NULL)
      return luashm_error(L, "spawn '%s': %s", sp.path, strerror(errno));
    fclose(f);
    luaL_buffinit(L, &b);
    luashm_encode(L, 2, lua_gettop(L) - 2, &b, "spawn");
    luaL_pushresult(&b);
    sp.mode = RUN_PATH;
    sp.args = lua_tolstring(L, -1, &sp.arglen);
    sweep(L);
    spawn_worker(L, &sp);
    return 1;
  }
  return luaL_typeerror(L, 1, "function or script path");
}

/* ---------------------------------------------------------------------------------------
** Methods
** ------------------------------------------------------------------------------------- */

static worker *toworker(lua_State *L, int i) {
  return (worker *)luaL_checkudata(L, i, LUASHM_WORKER);
}

/* The gate: a worker this process forked (a forked child's copy of its parent's handles is
   not its own). */
static worker *checkworker(lua_State *L, int i, const char *op) {
  worker *w = toworker(L, i);
  if (w->owner != getpid())
    luashm_error(L, "%s: worker %d is not a child of this process", op, (int)w->pid);
  return w;
}

/* Pushes the outcome of an ended function or script worker: true, results... or false, err. */
static int push_outcome(lua_State *L, worker *w) {
  int tag = luashm_frame_ready(&w->link);
  size_t len;
  const unsigned char *p = tag ? luashm_frame_payload(&w->link, &len) : NULL;
  if (tag == 'R') {
    lua_pushboolean(L, 1);
    return 1 + luashm_decode(L, p, len, "join");
  }
  if (tag == 'E') {
    lua_pushboolean(L, 0);
    push_failure(L, w, (const char *)p, len);
  } else if (WIFEXITED(w->status) && WEXITSTATUS(w->status) == 0) {
    lua_pushboolean(L, 1); /* os.exit(0) before returning: a success without results */
    return 1;
  } else {
    lua_pushboolean(L, 0);
    push_death(L, w);
  }
  return 2;
}

static int worker_join(lua_State *L) {
  worker *w = checkworker(L, 1, "join");
  double timeout = luashm_opttimeout(L, 2, "join", NULL);
  lua_settop(L, 1);
  if (wait_any(L, &w, 1, timeout, 0) < 0) {
    lua_pushnil(L);
    lua_pushliteral(L, "timeout");
    return 2;
  }
  w->joined = 1;
  unregister_live(L, 1);
  return push_outcome(L, w);
}

/* shm.wait(workers [, timeout]): the first of the sequence's unjoined workers to end, with
   its outcome (it counts as joined), or nil, "timeout". */
static int worker_wait(lua_State *L) {
  double timeout;
  lua_Integer k, len;
  int n = 0, i;
  worker **ws;
  luaL_checktype(L, 1, LUA_TTABLE);
  timeout = luashm_opttimeout(L, 2, "wait", NULL);
  lua_settop(L, 2);
  len = luaL_len(L, 1);
  if (len < 1 || len > 1 << 20)
    return luashm_error(L, "wait: expected a non-empty sequence of Workers");
  ws = (worker **)lua_newuserdatauv(L, sizeof *ws * (size_t)len, 0);
  for (k = 1; k <= len; k++) {
    worker *w;
    lua_rawgeti(L, 1, k);
    if (luaL_testudata(L, -1, LUASHM_WORKER) == NULL)
      return luashm_error(L, "wait: item %I of the sequence is a %s, not a Worker", k,
                          luaL_typename(L, -1));
    w = checkworker(L, -1, "wait");
    if (!w->joined) ws[n++] = w;
    lua_pop(L, 1);
  }
  if (n == 0) return luashm_error(L, "wait: every worker of the sequence was already joined");
  i = wait_any(L, ws, n, timeout, 0);
  if (i < 0) {
    lua_pushnil(L);
    lua_pushliteral(L, "timeout");
    return 2;
  }
  for (k = 1; k <= len; k++) /* the handle of ws[i], for the result and the live set */
    if (lua_rawgeti(L, 1, k) == LUA_TUSERDATA && lua_touserdata(L, -1) == ws[i])
      break;
    else
      lua_pop(L, 1);
  ws[i]->joined = 1;
  unregister_live(L, -1);
  return 1 + push_outcome(L, ws[i]);
}

static int worker_running(lua_State *L) {
  worker *w = checkworker(L, 1, "running");
  if (pump(w) != 0) return luashm_error(L, "running: out of memory reading results");
  reap(w, 0);
  lua_pushboolean(L, !w->reaped);
  return 1;
}

static const struct {
  const char *name;
  int sig;
} signames[] = {{"HUP", SIGHUP},   {"INT", SIGINT},   {"QUIT", SIGQUIT}, {"KILL", SIGKILL},
                {"USR1", SIGUSR1}, {"USR2", SIGUSR2}, {"TERM", SIGTERM}, {"STOP", SIGSTOP},
                {"CONT", SIGCONT}, {"ALRM", SIGALRM}, {NULL, 0}};

static int check_signal(lua_State *L, int i) {
  int k;
  const char *s;
  if (lua_isnoneornil(L, i)) return SIGTERM;
  if (lua_type(L, i) == LUA_TNUMBER) {
    lua_Integer sig = luaL_checkinteger(L, i);
    if (sig < 0 || sig >= NSIG) luashm_error(L, "kill: %I is not a signal number", sig);
    return (int)sig;
  }
  s = luaL_checkstring(L, i);
  if (strncmp(s, "SIG", 3) == 0) s += 3;
  for (k = 0; signames[k].name != NULL; k++)
    if (strcmp(s, signames[k].name) == 0) return signames[k].sig;
  return luashm_error(L, "kill: unknown signal '%s'", lua_tostring(L, i));
}

/* true when the signal was sent; false when the worker had already ended (and been reaped:
   its pid may belong to another process now, so it is never signalled). */
static int worker_kill(lua_State *L) {
  worker *w = checkworker(L, 1, "kill");
  int sig = check_signal(L, 2);
  reap(w, 0);
  if (w->reaped) {
    lua_pushboolean(L, 0);
    return 1;
  }
  if (kill(w->pid, sig) != 0)
    return luashm_error(L, "kill: worker %d: %s", (int)w->pid, strerror(errno));
  lua_pushboolean(L, 1);
  return 1;
}

/* close, __close and __gc: a worker still running when its handle goes (collected, or at the
   host's exit) is killed and reaped, and an ended one is reaped: no worker outlives its host,
   none stays a zombie. A forked copy of the handle does nothing (its link number may be reused
   in that process). */
static int worker_close(lua_State *L) {
  worker *w = toworker(L, 1);
  if (w->owner != getpid()) return 0;
  if (!w->reaped) {
    reap(w, 0);
    if (!w->reaped) {
      kill(w->pid, SIGKILL);
      reap(w, 1);
    }
  }
  luashm_link_close(&w->link);
  return 0;
}

static int worker_gc(lua_State *L) {
  worker_close(L);
  luashm_link_free(&toworker(L, 1)->link);
  return 0;
}

static int worker_tostring(lua_State *L) {
  worker *w = toworker(L, 1);
  const char *state = w->reaped ? "ended" : "running";
  if (w->owner != getpid()) state = "not a child of this process";
  push_who(L, w);
  lua_pushfstring(L, "luashm.Worker: %s, %s", lua_tostring(L, -1), state);
  return 1;
}

static int worker_index(lua_State *L) {
  worker *w = toworker(L, 1);
  const char *k = lua_tostring(L, 2);
  if (k != NULL && lua_type(L, 2) == LUA_TSTRING) {
    if (strcmp(k, "pid") == 0) {
      lua_pushinteger(L, w->pid);
      return 1;
    }
    if (strcmp(k, "rank") == 0) {
      if (w->rank > 0)
        lua_pushinteger(L, w->rank);
      else
        lua_pushnil(L);
      return 1;
    }
  }
  lua_pushvalue(L, 2);
  lua_rawget(L, lua_upvalueindex(1));
  return 1;
}

/* ---------------------------------------------------------------------------------------
** Private pieces for scripts/lib (shm._worker): ranked and seeded spawns, serving workers,
** waits, option checks
** ------------------------------------------------------------------------------------- */

/* The rank at i and the seed at i + 1 (nil: from the kernel) into sp. */
static void check_rank_seed(lua_State *L, int i, spawn_spec *sp) {
  lua_Integer r = luaL_checkinteger(L, i);
  if (r < 1 || r > 1000000) luashm_error(L, "spawn: rank %I is out of range", r);
  sp->rank = (int)r;
  sp->seed.rank = r;
  sp->seed.fixed = !lua_isnoneornil(L, i + 1);
  if (sp->seed.fixed) sp->seed.seed = luaL_checkinteger(L, i + 1);
}

/* _worker.spawn(rank, seed, fn, ...) */
static int private_spawn(lua_State *L) {
  spawn_spec sp = {RUN_FUNCTION, 0, 0, {0, 0, 0}, NULL, NULL, 0};
  check_rank_seed(L, 1, &sp);
  luaL_checktype(L, 3, LUA_TFUNCTION);
  sp.nargs = lua_gettop(L) - 3;
  sweep(L);
  spawn_worker(L, &sp);
  return 1;
}

/* _worker.serve(rank, seed, fn): a worker that answers each job sent with w:_send (see
   child.h) until its link closes. */
static int private_serve(lua_State *L) {
  spawn_spec sp = {RUN_SERVE, 0, 0, {0, 0, 0}, NULL, NULL, 0};
  check_rank_seed(L, 1, &sp);
  luaL_checktype(L, 3, LUA_TFUNCTION);
  lua_settop(L, 3);
  sweep(L);
  spawn_worker(L, &sp);
  return 1;
}

/* _worker.wait(list [, timeout [, frames]]): the index of the first worker of list that is
   ready (ended, or with frames a reply waiting), or nil on timeout. */
static int private_wait(lua_State *L) {
  lua_Integer k, len;
  int i, frames = lua_toboolean(L, 3);
  double timeout = luashm_opttimeout(L, 2, "wait", NULL);
  worker **ws;
  luaL_checktype(L, 1, LUA_TTABLE);
  len = luaL_len(L, 1);
  if (len < 1 || len > 1 << 20) luashm_error(L, "wait: expected a non-empty list of workers");
  ws = (worker **)lua_newuserdatauv(L, sizeof *ws * (size_t)len, 0);
  for (k = 1; k <= len; k++) {
    lua_rawgeti(L, 1, k);
    ws[k - 1] = checkworker(L, -1, "wait");
    lua_pop(L, 1);
  }
  i = wait_any(L, ws, (int)len, timeout, frames);
  if (i < 0) return 0;
  lua_pushinteger(L, i + 1);
  return 1;
}

/* _worker.checkoptions(opts, op, valid...): luashm_checkoptions for the Lua parts. */
static int private_checkoptions(lua_State *L) {
  const char *op = luaL_checkstring(L, 2);
  int i, n = lua_gettop(L) - 2;
  const char **valid = (const char **)lua_newuserdatauv(L, sizeof *valid * (size_t)(n + 1), 0);
  for (i = 0; i < n; i++) valid[i] = luaL_checkstring(L, i + 3);
  valid[n] = NULL;
  lua_pushboolean(L, luashm_checkoptions(L, 1, op, valid));
  return 1;
}

/* _worker.job(first, n [, items]): the encoding of a job for a serving worker: the items
   items[first .. first + n - 1] (read with their metamethods) or, without items, the indexes
   themselves. Made apart from its sending, so that a pool encodes the next job while its
   workers compute. */
static int private_job(lua_State *L) {
  lua_Integer first = luaL_checkinteger(L, 1), n = luaL_checkinteger(L, 2), k;
  int items = !lua_isnoneornil(L, 3);
  luaL_Buffer b;
  if (n < 1 || n > LUASHM_CHUNK_MAX)
    return luashm_error(L, "map: %I items in a chunk (1 to %d)", n, LUASHM_CHUNK_MAX);
  if (first < 1 || first > LUA_MAXINTEGER - n)
    return luashm_error(L, "map: a chunk from item %I is out of range", first);
  if (items) luaL_checktype(L, 3, LUA_TTABLE);
  lua_settop(L, 3);
  luaL_checkstack(L, (int)n + 8, "map: too many items");
  lua_pushvalue(L, 1);
  lua_pushvalue(L, 2);
  for (k = 0; items && k < n; k++) lua_geti(L, 3, first + k);
  luaL_buffinit(L, &b);
  luashm_encode(L, 4, items ? (int)n + 2 : 2, &b, "map");
  luaL_pushresult(&b);
  return 1;
}

/* _worker.results(n): an empty table with room for n results in its array part, so that
   storing chunks as they come back, in any order, never rehashes it. */
static int private_results(lua_State *L) {
  lua_Integer n = luaL_checkinteger(L, 1);
  lua_createtable(L, n > 0 && n < (1 << 26) ? (int)n : 0, 0);
  return 1;
}

/* w:_send(job): a job (from _worker.job) for a serving worker; false when the worker is gone.
   The worker is idle (its reply came in), so it reads the whole job at once. */
static int worker_send(lua_State *L) {
  worker *w = checkworker(L, 1, "send");
  size_t len;
  const char *p = luaL_checklstring(L, 2, &len);
  if (w->link.fd >= 0 && luashm_frame_send(w->link.fd, 'J', p, len, 1) != 0) {
    if (errno == E2BIG)
      return luashm_error(L,
                          "map: a chunk is %I bytes encoded: more than a worker link's frame "
                          "holds (%I bytes); pass a smaller chunksize",
                          (lua_Integer)len, (lua_Integer)luashm_frame_limit());
    if (errno == EINTR) return luashm_interrupted(L); /* the link is half-written: unusable */
    lua_pushboolean(L, 0);
    return 1;
  }
  lua_pushboolean(L, w->link.fd >= 0);
  return 1;
}

/* w:_take(results, lo): the next reply of a serving worker: true, its results stored into
   results[lo...] ('M'); false, err, index ('F': index 0 when the job as a whole failed);
   false, err, nil, "ended" when it ended without one; nothing when none is there yet. */
static int worker_take(lua_State *L) {
  worker *w = checkworker(L, 1, "take");
  int tag = luashm_frame_ready(&w->link), n, k;
  lua_Integer lo;
  size_t len;
  const unsigned char *p = tag ? luashm_frame_payload(&w->link, &len) : NULL;
  luaL_checktype(L, 2, LUA_TTABLE);
  lo = luaL_checkinteger(L, 3);
  lua_settop(L, 3);
  if (tag == 'M') {
    n = luashm_decode(L, p, len, "map");
    if (lo < 1 || lo > LUA_MAXINTEGER - n)
      return luashm_error(L, "take: index %I is out of range", lo);
    for (k = n; k >= 1; k--) lua_rawseti(L, 2, lo + k - 1);
    luashm_frame_consume(&w->link);
    lua_pushboolean(L, 1);
    return 1;
  }
  if (tag == 'F') {
    lua_pushboolean(L, 0);
    if (luashm_decode(L, p, len, "map") != 2 || !lua_isinteger(L, 5) || !lua_isstring(L, 6))
      return luashm_error(L, "map: malformed reply from worker %d", (int)w->pid);
    push_failure(L, w, lua_tostring(L, 6), lua_rawlen(L, 6));
    lua_replace(L, 6);
    lua_rotate(L, 5, 1);
    luashm_frame_consume(&w->link);
    return 3;
  }
  if (!ended(w)) return 0;
  unregister_live(L, 1);
  lua_pushboolean(L, 0);
  push_death(L, w);
  lua_pushnil(L);
  lua_pushliteral(L, "ended");
  return 4;
}

/* w:_stop([grace_s]): SIGTERM, then SIGKILL after grace seconds (default 0.5); reaped. */
static int worker_stop(lua_State *L) {
  worker *w = checkworker(L, 1, "stop");
  double grace = luaL_optnumber(L, 2, 0.5), end = luashm_now() + grace;
  reap(w, 0);
  if (!w->reaped) kill(w->pid, SIGTERM);
  while (!w->reaped && luashm_now() < end) {
    struct timespec ts = {0, 2000000};
    nanosleep(&ts, NULL);
    reap(w, 0);
  }
  if (pump(w) != 0) return luashm_error(L, "stop: out of memory reading results");
  worker_close(L);
  unregister_live(L, 1);
  return 0;
}

/* w:_finish(): close the link of a serving worker (it exits at EOF) and reap it. */
static int worker_finish(lua_State *L) {
  worker *w = checkworker(L, 1, "finish");
  luashm_link_close(&w->link);
  reap(w, 1);
  unregister_live(L, 1);
  return 0;
}

/* ---------------------------------------------------------------------------------------
** cpus, partition
** ------------------------------------------------------------------------------------- */

/* Online CPUs, but no more than this process may run on (a container's or taskset's mask). */
static int worker_cpus(lua_State *L) {
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0 &&
      (n < 1 || CPU_COUNT(&set) < n))
    n = CPU_COUNT(&set);
  lua_pushinteger(L, n < 1 ? 1 : n);
  return 1;
}

/* lo, hi of rank's part of 1..len (core.h's luashm_partition: the first len % n parts are one
   longer; an empty part has hi = lo - 1). */
static int worker_partition(lua_State *L) {
  lua_Integer len = luaL_checkinteger(L, 1), n = luaL_checkinteger(L, 2);
  lua_Integer rank = luaL_checkinteger(L, 3);
  int64_t lo, hi;
  if (len < 0) return luashm_error(L, "partition: length %I is negative", len);
  if (n < 1) return luashm_error(L, "partition: %I parts (need at least 1)", n);
  if (rank < 1 || rank > n) return luashm_error(L, "partition: rank %I is not in 1..%I", rank, n);
  luashm_partition(len, n, rank, &lo, &hi);
  lua_pushinteger(L, lo);
  lua_pushinteger(L, hi);
  return 2;
}

static const luaL_Reg worker_meth[] = {
    {"join", worker_join},   {"kill", worker_kill},      {"running", worker_running},
    {"close", worker_close}, {"_send", worker_send},     {"_take", worker_take},
    {"_stop", worker_stop},  {"_finish", worker_finish}, {NULL, NULL}};

static const luaL_Reg worker_metameth[] = {
    {"__gc", worker_gc}, {"__close", worker_close}, {"__tostring", worker_tostring}, {NULL, NULL}};

static const luaL_Reg worker_funcs[] = {{"spawn", worker_spawn},
                                        {"wait", worker_wait},
                                        {"cpus", worker_cpus},
                                        {"partition", worker_partition},
                                        {NULL, NULL}};

static const luaL_Reg private_funcs[] = {{"spawn", private_spawn},
                                         {"serve", private_serve},
                                         {"wait", private_wait},
                                         {"checkoptions", private_checkoptions},
                                         {"job", private_job},
                                         {"results", private_results},
                                         {NULL, NULL}};

void luashm_open_worker(lua_State *L) {
  const char *limit = getenv(FRAME_LIMIT_ENV);
  if (limit != NULL && *limit != '\0') luashm_frame_set_limit((size_t)strtoull(limit, NULL, 10));
  luaL_newmetatable(L, LUASHM_WORKER);
  luaL_setfuncs(L, worker_metameth, 0);
  lua_pushliteral(L, LUASHM_WORKER);
  lua_setfield(L, -2, "__name");
  lua_pushboolean(L, 0);
  lua_setfield(L, -2, "__metatable");
  luaL_newlib(L, worker_meth);
  lua_pushcclosure(L, worker_index, 1);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
  new_live_set(L);
  luaL_setfuncs(L, worker_funcs, 0);
  luaL_newlib(L, private_funcs);
  lua_pushinteger(L, LUASHM_CHUNK_MAX);
  lua_setfield(L, -2, "chunk_max");
  lua_setfield(L, -2, "_worker");
}
