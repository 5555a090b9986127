/*
** luashm.h: the C API for programs that embed luashm. Open the module into a lua_State, share
** memory with Lua from C (blocks and NPY arrays, by name), and run worker scripts.
**
** Link with `pkg-config --cflags --libs luashm`. The luashm_ functions that take a lua_State
** return LUA_OK or an error status with the message on the stack, like lua_pcall (only
** luashm_openlibs raises, like luaL_openlibs); the others return NULL or -1 and write
** "luashm: <op> '<name>': <cause>" into err (errlen bytes; err may be NULL).
**
** Threads and fork. A lua_State, and the luashm objects in it, belong to one thread at a time,
** as everything in Lua does; the luashm_mem_* functions may be called from any thread. Loading
** luashm starts nothing and installs nothing: a program that never creates a tracked block keeps
** its fork() as it was. The first tracked block of a process starts its tracker's watchdog
** (forked with _Fork; it makes only async-signal-safe calls, so threads holding locks at that
** instant are harmless) and installs a pthread_atfork handler that keeps the tracker's own lock
** consistent across fork. Every process forked after that is in the same tree: the blocks they
** all track are unlinked once the whole tree has exited. A process forked before that belongs
** to no tree until it tracks a block, and then starts a tree of its own (luashm_spawn and
** shm.spawn start the watchdog first, so their workers are always in the parent's tree). As
** POSIX says, the child of fork() in a program with threads may call only async-signal-safe
** functions, luashm's not among them, unless it execs.
*/
#ifndef LUASHM_H
#define LUASHM_H

#include <stddef.h>

#include "lua.h"

#ifdef __cplusplus
extern "C" {
#endif

#define LUASHM_API __attribute__((visibility("default")))

#define LUASHM_ERRLEN 512 /* enough for any message luashm writes, here and inside */

/* ---------------------------------------------------------------------------------------
** Lua side
** ------------------------------------------------------------------------------------- */

/* The module loader, for luaL_requiref(L, "luashm", luaopen_luashm, 0) or package.preload. */
LUASHM_API int luaopen_luashm(lua_State *L);

/* Opens the standard libraries and luashm, also as the global `shm`: what the luashm host and
   every fresh worker start with. */
LUASHM_API void luashm_openlibs(lua_State *L);

/* Requires luashm into a state whose standard libraries are open and sets the global `shm`,
   leaving the other globals alone (luashm_openlibs resets them); pushes the module table. */
LUASHM_API int luashm_open(lua_State *L);

/* Pushes shm.open(name): an Array for an NPY block, a List, Lock... for theirs, else a Block. */
LUASHM_API int luashm_pushopen(lua_State *L, const char *name);

/* Starts shm.spawn(path, ...): a forked worker with a fresh interpreter running the script at
   path with the nargs values on top of the stack (popped) as `...`. Pushes the Worker. */
LUASHM_API int luashm_spawn(lua_State *L, const char *path, int nargs);

/* luashm_spawn, then waits for the worker and pushes nresults of its script's return values
   (LUA_MULTRET: all). A failed worker's error carries its traceback, signal or exit status. */
LUASHM_API int luashm_run(lua_State *L, const char *path, int nargs, int nresults);

/* ---------------------------------------------------------------------------------------
** Shared memory from C
** ------------------------------------------------------------------------------------- */

/* A mapping of a named block, owned by the caller until luashm_mem_close. */
typedef struct luashm_mem luashm_mem;

/* Flags for the create functions. By default a block is tracked as shm.create's are: if the
   process tree ends with it still there, the tracker unlinks it. */
#define LUASHM_UNTRACKED 1 /* leave the block for processes outside this tree */

/* Creates a zero-filled block of size bytes (> 0), mode 0600, exclusively, with its pages
   reserved; named `name`, or "luashm_" + 16 random hex digits when name is NULL. */
LUASHM_API luashm_mem *luashm_mem_create(size_t size, const char *name, int flags, char *err,
                                         size_t errlen);

/* Creates a zero-filled array in a new self-describing block, as shm.array(dtype, shape) does:
   the block is an NPY 1.0 file that shm.open and numpy.load open by name alone. dtype is "f64",
   "i32"... (API.md's names); shape has ndim (1..32) entries, as for shm.array. */
LUASHM_API luashm_mem *luashm_mem_array(const char *dtype, int ndim, const size_t *shape,
                                        const char *name, int flags, char *err, size_t errlen);

/* Maps an existing block (any process's, Python's too) by name. Never registers it for cleanup. */
LUASHM_API luashm_mem *luashm_mem_attach(const char *name, char *err, size_t errlen);

/* The bytes: all of a block's, or, for luashm_mem_array, the elements (C order, native
   endianness) after the NPY header. Valid until luashm_mem_close. */
LUASHM_API void *luashm_mem_data(const luashm_mem *m);
LUASHM_API size_t luashm_mem_size(const luashm_mem *m);

/* The block's name, without the leading '/': what shm.attach, shm.open and Python accept. */
LUASHM_API const char *luashm_mem_name(const luashm_mem *m);

/* Removes the name (and un-records it from the tracker); mappings keep working. Returns 0, or -1
   when it fails (e.g. "no such block" for a second unlink). */
LUASHM_API int luashm_mem_unlink(luashm_mem *m, char *err, size_t errlen);

/* Releases the mapping and the handle; never unlinks. NULL is ignored. */
LUASHM_API void luashm_mem_close(luashm_mem *m);

#ifdef __cplusplus
}
#endif

#endif
