/*
** The Worker: a forked Lua process (shm.spawn) and what its parent does with it (join, kill,
** running), plus shm.cpus and shm.partition, and the private pieces that shm.parallel and
** shm.pool (scripts/lib) are built from: ranked spawns, serving workers and waiting on many.
**
** Each worker is linked to its parent by one socketpair. The child writes frames to it
** (a 4-byte little-endian length, a tag byte, the payload): 'R' final results and 'E' a final
** error for a spawned function or script; 'M' a result and 'F' a failed job for a serving (pool)
** worker, which reads its jobs as frames from the same socket. Values go through the one codec
** (codec.h). The parent reads while it waits, so results larger than the socket buffer flow.
*/
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "codec.h"
#include "core.h"

#define LUASHM_WORKER "luashm.Worker"
#define WORKERS_LIVE "luashm.workers.live" /* registry: set of unreaped workers of this process */
#define INTERRUPT_POINT "luashm.workers.interrupt"
#define FRAME_HEAD 5
#define TICK_MS 100 /* progress redraw period while waiting */
#define REAP_CHECK_MS 1000

typedef struct worker {
  pid_t pid;
  pid_t owner;        /* the process that forked it: only that one may read, wait or signal */
  int fd;             /* our end of the socketpair; -1 once closed */
  int rank;           /* 0 when it has none */
  int reaped;         /* waitpid has collected it: the pid may belong to someone else now */
  int status;         /* waitpid status, once reaped */
  unsigned char *buf; /* bytes received and not yet consumed */
  size_t len, cap;
} worker;

/* ---------------------------------------------------------------------------------------
** Links this process holds open. A forked child closes all of them (its parent's other
** workers are none of its business, and a sibling holding a link open would hide its EOF).
** Process-level state on purpose: it describes file descriptors, which fork copies.
** ------------------------------------------------------------------------------------- */

static int *held_fds;
static size_t held_n, held_cap;

static int hold_fd(int fd) {
  if (held_n == held_cap) {
    size_t cap = held_cap ? held_cap * 2 : 16;
    int *p = (int *)realloc(held_fds, cap * sizeof *p);
    if (p == NULL) return -1;
    held_fds = p;
    held_cap = cap;
  }
  held_fds[held_n++] = fd;
  return 0;
}

static void release_fd(int fd) {
  size_t i;
  for (i = 0; i < held_n; i++)
    if (held_fds[i] == fd) {
      held_fds[i] = held_fds[--held_n];
      break;
    }
  close(fd);
}

/* ---------------------------------------------------------------------------------------
** Frames
** ------------------------------------------------------------------------------------- */

/* Writes a whole frame; blocking. 0, or -1 with errno (EPIPE when the peer is gone). */
static int send_frame(int fd, char tag, const char *p, size_t len) {
  unsigned char head[FRAME_HEAD];
  uint32_t n = (uint32_t)(len + 1);
  struct iovec iov[2];
  struct msghdr msg;
  head[0] = (unsigned char)n;
  head[1] = (unsigned char)(n >> 8);
  head[2] = (unsigned char)(n >> 16);
  head[3] = (unsigned char)(n >> 24);
  head[4] = (unsigned char)tag;
  iov[0].iov_base = head;
  iov[0].iov_len = FRAME_HEAD;
  iov[1].iov_base = (void *)p;
  iov[1].iov_len = len;
  memset(&msg, 0, sizeof msg);
  msg.msg_iov = iov;
  msg.msg_iovlen = 2;
  while (msg.msg_iovlen > 0) {
    ssize_t w = sendmsg(fd, &msg, MSG_NOSIGNAL);
    if (w < 0) {
      struct pollfd pfd = {fd, POLLOUT, 0};
      if (errno == EINTR) continue;
      if (errno != EAGAIN) return -1;
      poll(&pfd, 1, -1);
      continue;
    }
    while (w > 0 && msg.msg_iovlen > 0) {
      size_t step = (size_t)w < msg.msg_iov->iov_len ? (size_t)w : msg.msg_iov->iov_len;
      msg.msg_iov->iov_base = (char *)msg.msg_iov->iov_base + step;
      msg.msg_iov->iov_len -= step;
      w -= (ssize_t)step;
      if (msg.msg_iov->iov_len == 0) {
        msg.msg_iov++;
        msg.msg_iovlen--;
      }
    }
  }
  return 0;
}

static uint32_t frame_len(const unsigned char *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* A complete frame at the start of w's buffer: its tag, or 0 when none is complete yet. */
static int frame_ready(const worker *w) {
  if (w->len < FRAME_HEAD) return 0;
  if (w->len - 4 < frame_len(w->buf)) return 0;
  return w->buf[4];
}

static void frame_consume(worker *w) {
  size_t n = 4 + (size_t)frame_len(w->buf);
  memmove(w->buf, w->buf + n, w->len - n);
  w->len -= n;
}

/* Blocking read of exactly len bytes; 1 done, 0 EOF before any byte, -1 error/short. */
static int read_exact(int fd, unsigned char *p, size_t len) {
  size_t got = 0;
  while (got < len) {
    ssize_t r = read(fd, p + got, len - got);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return got == 0 && r == 0 ? 0 : -1;
    got += (size_t)r;
  }
  return 1;
}

/* ---------------------------------------------------------------------------------------
** The parent's side: reading, reaping, describing how a worker ended
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

/* Reads what the socket holds without blocking; at EOF the child is gone: reap it. Returns
   -1 only when out of memory. */
static int pump(worker *w) {
  for (;;) {
    ssize_t r;
    if (w->fd < 0) return 0;
    if (w->cap - w->len < 65536) {
      size_t cap = w->cap ? w->cap * 2 : 65536 * 2;
      unsigned char *p = (unsigned char *)realloc(w->buf, cap);
      if (p == NULL) return -1;
      w->buf = p;
      w->cap = cap;
    }
    r = read(w->fd, w->buf + w->len, w->cap - w->len);
    if (r > 0) {
      w->len += (size_t)r;
      continue;
    }
    if (r < 0 && errno == EINTR) continue;
    if (r < 0 && errno == EAGAIN) return 0;
    release_fd(w->fd); /* EOF (or a broken link): the child has exited or is exiting */
    w->fd = -1;
    reap(w, 1);
    return 0;
  }
}

/* The worker has ended when it is reaped; a child whose EOF never comes (a stray process
   holding its link) is still noticed by the periodic non-blocking reap. */
static int ended(worker *w) {
  if (!w->reaped && w->fd < 0) reap(w, 1);
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

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* A signal interrupted poll: run one Lua call, so that a hook the host's SIGINT handler set
   fires now and raises "interrupted!" through the wait. */
static void interrupt_point(lua_State *L) {
  lua_getfield(L, LUA_REGISTRYINDEX, INTERRUPT_POINT);
  lua_call(L, 0, 0);
}

/* Is w ready: a complete frame (when frames count) or ended. */
static int ready(worker *w, int frames) {
  return (frames && frame_ready(w)) || ended(w);
}

/* Waits until one of ws[0..n) is ready, for at most timeout seconds (negative: forever).
   Returns its index or -1 on timeout. frames: a complete frame counts as ready (serving
   workers); otherwise only the end does (results are read whole at the end). */
static int wait_any(lua_State *L, worker **ws, int n, double timeout, int frames) {
  double deadline = timeout < 0 ? -1 : now_s() + timeout, next_reap = now_s() + 1;
  struct pollfd *pfd = (struct pollfd *)lua_newuserdatauv(L, sizeof *pfd * (size_t)(n + 1), 0);
  int i, k;
  for (;;) {
    int ms = REAP_CHECK_MS, np = 0;
    for (i = 0; i < n; i++)
      if (ready(ws[i], frames)) {
        lua_pop(L, 1);
        return i;
      }
    if (deadline >= 0) {
      double left = deadline - now_s();
      if (left <= 0) break;
      if (left * 1000 < ms) ms = (int)(left * 1000) + 1;
    }
    if (luashm_progress_tick(L) && ms > TICK_MS) ms = TICK_MS;
    for (i = 0; i < n; i++)
      if (ws[i]->fd >= 0) pfd[np++] = (struct pollfd){ws[i]->fd, POLLIN, 0};
    k = poll(pfd, (nfds_t)np, ms);
    if (k < 0 && errno == EINTR) interrupt_point(L);
    for (i = 0; i < n; i++)
      if (pump(ws[i]) != 0) luashm_error(L, "wait: out of memory reading results");
    if (now_s() >= next_reap) {
      for (i = 0; i < n; i++) reap(ws[i], 0);
      next_reap = now_s() + 1;
    }
  }
  lua_pop(L, 1);
  return -1;
}

/* ---------------------------------------------------------------------------------------
** The child's side
** ------------------------------------------------------------------------------------- */

/* Right after fork: die with the parent, default signals, none of the parent's links, output
   line by line (the parent flushed before forking, so nothing is printed twice). */
static void child_setup(lua_State *L, pid_t parent, int fd) {
  sigset_t none;
  size_t i;
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() != parent) _exit(111); /* the parent died before the line above */
  /* Signals are blocked since before the fork: a Ctrl-C now waits for the default action
     instead of running the host's handler in this copy of its state. */
  signal(SIGINT, SIG_DFL);
  signal(SIGTERM, SIG_DFL);
  signal(SIGPIPE, SIG_DFL);
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, NULL);
  for (i = 0; i < held_n; i++)
    if (held_fds[i] != fd) close(held_fds[i]);
  held_n = 0;
  if (hold_fd(fd) != 0) _exit(112);
  setvbuf(stdout, NULL, _IOLBF, 0);
  /* The parent's workers are not this process's children. */
  lua_newtable(L);
  lua_setfield(L, LUA_REGISTRYINDEX, WORKERS_LIVE);
}

static void child_exit(int code) {
  fflush(stdout);
  fflush(stderr);
  _exit(code);
}

/* Runs the function below its nargs arguments on a fresh thread, so that a traceback shows
   the worker's frames only. Leaves its results on L and returns their count, or pushes
   "<message>\n<traceback>" and returns -1. */
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
  {
    const char *msg = lua_tostring(co, -1);
    if (msg == NULL)
      msg = lua_pushfstring(co, "(error object is a %s value)", luaL_typename(co, -1));
    luaL_traceback(L, co, msg, 0);
  }
  lua_remove(L, base + 1);
  return -1;
}

static int encode_values(lua_State *L) {
  int n = (int)lua_tointeger(L, lua_upvalueindex(1));
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  luashm_encode(L, 1, n, &b, "result");
  luaL_pushresult(&b);
  return 1;
}

/* Encodes the n values on top of the stack (protected: a value the codec refuses becomes the
   worker's error). Leaves the encoding or the error message on top; returns 1 / 0. */
static int encode_top(lua_State *L, int n) {
  lua_pushinteger(L, n);
  lua_pushcclosure(L, encode_values, 1);
  lua_insert(L, -n - 1);
  return lua_pcall(L, n, 1, 0) == LUA_OK;
}

/* Sends the outcome of a run_traced (count or -1) as a final or job frame and returns. */
static void child_reply(lua_State *L, int fd, int n, char ok_tag, char err_tag) {
  size_t len;
  const char *p;
  char tag = err_tag;
  if (n >= 0 && encode_top(L, n)) tag = ok_tag;
  p = lua_tolstring(L, -1, &len);
  if (p == NULL) p = "(error object is not a string)", len = strlen(p);
  if (send_frame(fd, tag, p, len) != 0) child_exit(113);
  lua_pop(L, 1);
}

/* The function worker: fn(...) in this copy of the parent's state, results to the parent. */
static void child_run_function(lua_State *L, int fd, int nargs) {
  int n = run_traced(L, nargs);
  child_reply(L, fd, n, 'R', 'E');
  child_exit(n >= 0 ? 0 : 1);
}

static int path_main(lua_State *L) {
  const char *path = lua_tostring(L, 1);
  const unsigned char *args = (const unsigned char *)lua_touserdata(L, 2);
  size_t len = (size_t)lua_tointeger(L, 3);
  int i, n;
  lua_settop(L, 1);
  luashm_openlibs(L);
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
  if (!encode_top(L, n)) return lua_error(L);
  return 1;
}

/* The script worker: a fresh interpreter runs path with the decoded arguments. The state is
   closed (its own objects finalised) before the outcome is sent. */
static void child_run_path(const char *path, const char *args, size_t len, int fd) {
  lua_State *L = luaL_newstate();
  int ok;
  size_t n;
  const char *p;
  char *copy;
  if (L == NULL) {
    static const char msg[] = "cannot create a Lua state: not enough memory";
    send_frame(fd, 'E', msg, sizeof msg - 1);
    child_exit(1);
  }
  lua_pushcfunction(L, path_main);
  lua_pushstring(L, path);
  lua_pushlightuserdata(L, (void *)args);
  lua_pushinteger(L, (lua_Integer)len);
  ok = lua_pcall(L, 3, 1, 0) == LUA_OK;
  p = lua_tolstring(L, -1, &n);
  if (p == NULL) p = "(error object is not a string)", n = strlen(p);
  copy = (char *)malloc(n + 1);
  if (copy != NULL) memcpy(copy, p, n);
  lua_close(L);
  if (copy == NULL) child_exit(1);
  if (send_frame(fd, ok ? 'R' : 'E', copy, n) != 0) child_exit(113);
  child_exit(ok ? 0 : 1);
}

/* One job of a serving worker: decode the job's values, call the handler on them. Returns
   true, results... or false, message. */
static int serve_job(lua_State *L) {
  const unsigned char *p = (const unsigned char *)lua_touserdata(L, 2);
  size_t len = (size_t)lua_tointeger(L, 3);
  int n;
  lua_settop(L, 1); /* the handler */
  n = run_traced(L, luashm_decode(L, p, len, "map"));
  lua_pushboolean(L, n >= 0);
  lua_insert(L, n >= 0 ? -n - 1 : -2);
  return n >= 0 ? n + 1 : 2;
}

/* The serving worker: reads job frames until its parent closes the link, each answered by
   one frame. The handler stays at the bottom of the stack. */
static void child_serve(lua_State *L, int fd) {
  int top = lua_gettop(L);
  for (;;) {
    unsigned char head[FRAME_HEAD];
    unsigned char *job;
    size_t len;
    int r = read_exact(fd, head, 4), n = -1;
    if (r == 0) child_exit(0);
    if (r < 0) child_exit(114);
    len = frame_len(head);
    job = (unsigned char *)malloc(len ? len : 1);
    if (job == NULL || read_exact(fd, job, len) != 1) child_exit(115);
    lua_pushcfunction(L, serve_job);
    lua_pushvalue(L, top);
    lua_pushlightuserdata(L, job + 1);
    lua_pushinteger(L, (lua_Integer)len - 1);
    if (lua_pcall(L, 3, LUA_MULTRET, 0) == LUA_OK) {
      int ok = lua_toboolean(L, top + 1);
      lua_remove(L, top + 1);
      if (ok) n = lua_gettop(L) - top;
    }
    free(job);
    child_reply(L, fd, n, 'M', 'F');
    lua_settop(L, top);
  }
}

/* ---------------------------------------------------------------------------------------
** Spawning
** ------------------------------------------------------------------------------------- */

enum { RUN_FUNCTION, RUN_PATH, RUN_SERVE };

/* Forks a worker. For RUN_FUNCTION and RUN_SERVE the function and its nargs arguments are
   on top of the stack (the child uses them in its copy of the state); for RUN_PATH, path and
   the encoded arguments. Pushes the Worker. */
static worker *spawn_worker(lua_State *L, int mode, int rank, int nargs, const char *path,
                            const char *args, size_t arglen) {
  int sv[2], e;
  sigset_t all, old;
  pid_t parent = getpid(), pid;
  worker *w = (worker *)lua_newuserdatauv(L, sizeof(worker), 0);
  memset(w, 0, sizeof *w);
  w->fd = -1;
  w->rank = rank;
  w->owner = parent;
  w->reaped = 1; /* nothing to reap until the fork succeeds */
  luaL_setmetatable(L, LUASHM_WORKER);
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
    luashm_error(L, "spawn: socketpair: %s", strerror(errno));
  if (hold_fd(sv[0]) != 0 || hold_fd(sv[1]) != 0) {
    release_fd(sv[0]);
    release_fd(sv[1]);
    luashm_error(L, "spawn: out of memory");
  }
  fflush(NULL); /* or the child would print the parent's pending output again */
  sigfillset(&all);
  sigprocmask(SIG_SETMASK, &all, &old);
  pid = fork();
  e = errno;
  if (pid != 0) sigprocmask(SIG_SETMASK, &old, NULL);
  if (pid < 0) {
    release_fd(sv[0]);
    release_fd(sv[1]);
    luashm_error(L, "spawn: fork: %s", strerror(e));
  }
  if (pid == 0) {
    child_setup(L, parent, sv[1]);
    lua_pop(L, 1); /* the Worker */
    if (mode == RUN_PATH) child_run_path(path, args, arglen, sv[1]);
    if (mode == RUN_SERVE) child_serve(L, sv[1]);
    child_run_function(L, sv[1], nargs);
  }
  release_fd(sv[1]);
  w->pid = pid;
  w->fd = sv[0];
  w->reaped = 0;
  {
    int fl = fcntl(w->fd, F_GETFL);
    fcntl(w->fd, F_SETFL, fl | O_NONBLOCK);
  }
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
    if (w->fd >= 0) pump(w);
    reap(w, 0);
    if (w->reaped) {
      lua_pushvalue(L, -1);
      lua_pushnil(L);
      lua_rawset(L, -4); /* clearing the current key during lua_next is allowed */
    }
  }
  lua_pop(L, 1);
}

static int worker_spawn_fn(lua_State *L, int first, int rank) {
  int nargs = lua_gettop(L) - first;
  sweep(L);
  spawn_worker(L, RUN_FUNCTION, rank, nargs, NULL, NULL, 0);
  return 1;
}

static int worker_spawn(lua_State *L) {
  int t = lua_type(L, 1);
  if (t == LUA_TFUNCTION) return worker_spawn_fn(L, 1, 0);
  if (t == LUA_TSTRING) {
    const char *path = lua_tostring(L, 1);
    luaL_Buffer b;
    size_t len;
    const char *args;
    FILE *f = fopen(path, "r");
    if (f == NULL) return luashm_error(L, "spawn '%s': %s", path, strerror(errno));
    fclose(f);
    luaL_buffinit(L, &b);
    luashm_encode(L, 2, lua_gettop(L) - 2, &b, "spawn");
    luaL_pushresult(&b);
    args = lua_tolstring(L, -1, &len);
    sweep(L);
    spawn_worker(L, RUN_PATH, 0, 0, path, args, len);
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
  int tag = frame_ready(w);
  size_t len;
  if (tag == 'R') {
    len = frame_len(w->buf) - 1;
    lua_pushboolean(L, 1);
    return 1 + luashm_decode(L, w->buf + FRAME_HEAD, len, "join");
  }
  lua_pushboolean(L, 0);
  if (tag == 'E')
    push_failure(L, w, (const char *)w->buf + FRAME_HEAD, frame_len(w->buf) - 1);
  else if (WIFEXITED(w->status) && WEXITSTATUS(w->status) == 0) {
    lua_pop(L, 1);
    lua_pushboolean(L, 1); /* os.exit(0) before returning: a success without results */
    return 1;
  } else
    push_death(L, w);
  return 2;
}

static int worker_join(lua_State *L) {
  worker *w = checkworker(L, 1, "join");
  double timeout = luaL_optnumber(L, 2, -1);
  if (!lua_isnoneornil(L, 2) && timeout < 0)
    return luashm_error(L, "join: timeout %f is negative", timeout);
  lua_settop(L, 1);
  if (wait_any(L, &w, 1, timeout, 0) < 0) {
    lua_pushnil(L);
    lua_pushliteral(L, "timeout");
    return 2;
  }
  unregister_live(L, 1);
  return push_outcome(L, w);
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

/* __gc and __close: a worker still running when its handle goes (the host's exit included)
   is killed and reaped: no worker outlives its host. A forked copy of the handle does
   nothing (its link number may be reused in that process). */
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
  if (w->fd >= 0) {
    release_fd(w->fd);
    w->fd = -1;
  }
  return 0;
}

static int worker_gc(lua_State *L) {
  worker *w = toworker(L, 1);
  worker_close(L);
  free(w->buf);
  w->buf = NULL;
  w->len = w->cap = 0;
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
** Private pieces for scripts/lib (shm._worker): ranked spawns, serving workers, waits
** ------------------------------------------------------------------------------------- */

static int check_rank(lua_State *L, int i) {
  lua_Integer r = luaL_checkinteger(L, i);
  if (r < 1 || r > 1000000) luashm_error(L, "spawn: rank %I is out of range", r);
  return (int)r;
}

/* _worker.spawn(rank, fn, ...) */
static int private_spawn(lua_State *L) {
  int rank = check_rank(L, 1);
  luaL_checktype(L, 2, LUA_TFUNCTION);
  return worker_spawn_fn(L, 2, rank);
}

/* _worker.serve(rank, handler): a worker that answers each job (i, ...) sent with w:_send by
   one reply frame holding handler(job...)'s results. */
static int private_serve(lua_State *L) {
  int rank = check_rank(L, 1);
  luaL_checktype(L, 2, LUA_TFUNCTION);
  lua_settop(L, 2);
  sweep(L);
  spawn_worker(L, RUN_SERVE, rank, 0, NULL, NULL, 0);
  return 1;
}

/* Collects the Workers of the sequence at i into a scratch array (left on the stack). */
static worker **check_list(lua_State *L, int i, int *n, const char *op) {
  lua_Integer k, len;
  worker **ws;
  luaL_checktype(L, i, LUA_TTABLE);
  len = luaL_len(L, i);
  if (len < 1 || len > 1 << 20) luashm_error(L, "%s: expected a non-empty list of workers", op);
  ws = (worker **)lua_newuserdatauv(L, sizeof *ws * (size_t)len, 0);
  for (k = 1; k <= len; k++) {
    lua_rawgeti(L, i, k);
    ws[k - 1] = checkworker(L, -1, op);
    lua_pop(L, 1);
  }
  *n = (int)len;
  return ws;
}

/* _worker.wait(list [, timeout [, frames]]): the index of the first worker of list that is
   ready (ended, or with frames a reply waiting), or nil on timeout. */
static int private_wait(lua_State *L) {
  int n, i;
  double timeout = luaL_optnumber(L, 2, -1);
  int frames = lua_toboolean(L, 3);
  worker **ws = check_list(L, 1, &n, "wait");
  i = wait_any(L, ws, n, timeout, frames);
  if (i < 0) return 0;
  lua_pushinteger(L, i + 1);
  return 1;
}

/* w:_send(...): a job for a serving worker. */
static int worker_send(lua_State *L) {
  worker *w = checkworker(L, 1, "send");
  luaL_Buffer b;
  size_t len;
  const char *p;
  int n = lua_gettop(L) - 1;
  luaL_buffinit(L, &b);
  luashm_encode(L, 2, n, &b, "map");
  luaL_pushresult(&b);
  p = lua_tolstring(L, -1, &len);
  if (w->fd < 0 || send_frame(w->fd, 'J', p, len) != 0) {
    lua_pushboolean(L, 0);
    return 1;
  }
  lua_pushboolean(L, 1);
  return 1;
}

/* w:_take(): the next reply of a serving worker: true, values... ('M'); false, err ('F');
   false, err, "ended" when it ended without one; nothing when none is there yet. */
static int worker_take(lua_State *L) {
  worker *w = checkworker(L, 1, "take");
  int tag = frame_ready(w), n;
  if (tag == 'M') {
    lua_pushboolean(L, 1);
    n = luashm_decode(L, w->buf + FRAME_HEAD, frame_len(w->buf) - 1, "map");
    frame_consume(w);
    return n + 1;
  }
  if (tag != 0) {
    lua_pushboolean(L, 0);
    push_failure(L, w, (const char *)w->buf + FRAME_HEAD, frame_len(w->buf) - 1);
    frame_consume(w);
    return 2;
  }
  if (!ended(w)) return 0;
  unregister_live(L, 1);
  lua_pushboolean(L, 0);
  push_death(L, w);
  lua_pushliteral(L, "ended");
  return 3;
}

/* w:_stop([grace_s]): SIGTERM, then SIGKILL after grace seconds (default 0.5); reaped.
   Closing the link first lets a serving worker end by itself. */
static int worker_stop(lua_State *L) {
  worker *w = checkworker(L, 1, "stop");
  double grace = luaL_optnumber(L, 2, 0.5), end = now_s() + grace;
  reap(w, 0);
  if (!w->reaped) kill(w->pid, SIGTERM);
  while (!w->reaped && now_s() < end) {
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
  if (w->fd >= 0) {
    release_fd(w->fd);
    w->fd = -1;
  }
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

static const luaL_Reg worker_funcs[] = {
    {"spawn", worker_spawn}, {"cpus", worker_cpus}, {"partition", worker_partition}, {NULL, NULL}};

static const luaL_Reg private_funcs[] = {
    {"spawn", private_spawn}, {"serve", private_serve}, {"wait", private_wait}, {NULL, NULL}};

void luashm_open_worker(lua_State *L) {
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
  lua_newtable(L);
  lua_setfield(L, LUA_REGISTRYINDEX, WORKERS_LIVE);
  luaL_loadbuffer(L, "return", 6, "=(wait)");
  lua_setfield(L, LUA_REGISTRYINDEX, INTERRUPT_POINT);
  luaL_setfuncs(L, worker_funcs, 0);
  luaL_newlib(L, private_funcs);
  lua_setfield(L, -2, "_worker");
}
