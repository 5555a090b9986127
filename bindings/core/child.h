/*
** The worker's side of a link (link.h): what a forked child does, in each of its three modes.
** A function worker runs fn(...) in its copy of the parent's state; a script worker runs a
** script in a fresh interpreter; a serving (pool) worker answers jobs until its link closes.
** Each sends its outcome as frames and leaves with _exit: never the parent's atexit handlers
** or finalisers.
*/
#ifndef LUASHM_CHILD_H
#define LUASHM_CHILD_H

#include <stddef.h>
#include <sys/types.h>

#include "lua.h"

/* How a worker seeds math.random: from the kernel's random source (no two workers share a
   stream), or math.randomseed(seed, rank) for a reproducible run. */
typedef struct luashm_seed {
  int fixed;
  lua_Integer seed, rank;
} luashm_seed;

/* Right after fork, in the child: die with the parent, default signals, no link but fd,
   line-buffered output. */
void luashm_child_setup(pid_t parent, int fd);

/* Seeds L's math.random as s says (nothing when L has no math library). */
void luashm_child_reseed(lua_State *L, const luashm_seed *s);

/* The function worker: the function below its nargs arguments on L's stack, run on a fresh
   thread (so that a traceback shows the worker's frames only); 'R' results or 'E' error. */
_Noreturn void luashm_child_run_function(lua_State *L, int fd, int nargs);

/* The script worker: a fresh interpreter (luashm_openlibs) runs path with the decoded
   arguments (args, len: a codec message) and arg; closed before its outcome is sent. */
_Noreturn void luashm_child_run_path(const char *path, const char *args, size_t len, int fd,
                                     const luashm_seed *s);

/* The serving worker: fn is on top of L's stack. Each 'J' frame (first, n, item1..itemn) is
   answered by 'M' (the n first results of fn(item), in order), or, for a job (first, n) without
   items, of fn(first + k - 1); or by 'F' (the index of the item that failed, its error with
   the traceback). Exits when its parent closes the link. */
_Noreturn void luashm_child_serve(lua_State *L, int fd);

#endif
