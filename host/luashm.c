/*
** The luashm host: lua.c grown by a few features. Runs scripts as `lua` does (arg, ..., -e, -l,
** -i, -v, -), with luashm preloaded as the global `shm`, sets the default worker count (-j),
** and starts the REPL when run alone on a terminal.
*/
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "blocktool.h"
#include "core.h"
#include "host.h"
#include "lualib.h"
#include "repl.h"
#include "sync.h"

#define PROGNAME "luashm"

static lua_State *globalL = NULL;

static void print_usage(FILE *f) {
  fprintf(f, "usage: " PROGNAME
             " [options] [script [args]]\n"
             "Available options are:\n"
             "  -e stat   execute string 'stat'\n"
             "  -i        enter interactive mode after executing 'script'\n"
             "  -l mod    require library 'mod' into global 'mod'\n"
             "  -j N      default worker count for shm.parallel and shm.pool\n"
             "  -v        show version information\n"
             "  --help    show this help\n"
             "  --blocks [--rm NAME... | --rm-stale]\n"
             "            list luashm's blocks in /dev/shm, or remove named or stale ones\n"
             "  --        stop handling options\n"
             "  -         execute stdin and stop handling options\n"
             "Without a script, " PROGNAME
             " starts the REPL on a terminal and runs stdin otherwise.\n");
}

/* Errors that already carry the luashm prefix are printed as they are. */
static void report_message(const char *msg) {
  if (strncmp(msg, PROGNAME ": ", sizeof PROGNAME + 1) == 0)
    fprintf(stderr, "%s\n", msg);
  else
    fprintf(stderr, PROGNAME ": %s\n", msg);
  fflush(stderr);
}

static int report(lua_State *L, int status) {
  if (status != LUA_OK) {
    const char *msg = lua_tostring(L, -1);
    report_message(msg ? msg : "(error object is not a string)");
    lua_pop(L, 1);
  }
  return status;
}

/* SIGINT during a chunk (lua.c's approach, since only a hook may raise an error safely from a
   signal): the handler asks every blocking luashm call to stop (luashm_interrupt: it raises
   "luashm: interrupted" within ~50 ms) and sets a hook that stops Lua code at its next
   instruction, unless a blocking call has reported the interrupt already. A second Ctrl-C
   before either has happened kills the process (a C function that never returns); once one
   has, the handler is back for the next Ctrl-C. */
static volatile sig_atomic_t sigint_seen = 0; /* during the last docall */
static int calls = 0;                         /* docalls running (the REPL nests them) */

static void on_sigint(int sig);

static void stop_hook(lua_State *L, lua_Debug *ar) {
  (void)ar;
  lua_sethook(L, NULL, 0, 0);
  if (calls > 0) signal(SIGINT, on_sigint);
  if (!luashm_interrupt_pending()) return; /* a blocking call raised "luashm: interrupted" */
  luashm_interrupt_clear();
  luaL_error(L, "interrupted!");
}

static void on_sigint(int sig) {
  int flag = LUA_MASKCALL | LUA_MASKRET | LUA_MASKLINE | LUA_MASKCOUNT;
  signal(sig, SIG_DFL); /* a second Ctrl-C kills the process */
  sigint_seen = 1;
  luashm_interrupt();
  lua_sethook(globalL, stop_hook, flag, 1);
}

static int msghandler(lua_State *L) {
  const char *msg = lua_tostring(L, 1);
  if (msg == NULL) {
    if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING) return 1;
    msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
  }
  luaL_traceback(L, L, msg, 1);
  return 1;
}

/* Runs the function below its narg arguments, with a traceback and Ctrl-C handling. The
   SIGINT handler found is restored after: the REPL's, which cancels the line being typed. */
static int docall(lua_State *L, int narg, int nres) {
  int status, base = lua_gettop(L) - narg;
  struct sigaction previous;
  lua_pushcfunction(L, msghandler);
  lua_insert(L, base);
  globalL = L;
  sigint_seen = 0;
  luashm_interrupt_clear(); /* a Ctrl-C that came after the last chunk is not this one's */
  sigaction(SIGINT, NULL, &previous);
  signal(SIGINT, on_sigint);
  calls++;
  status = lua_pcall(L, narg, nres, base);
  calls--;
  sigaction(SIGINT, &previous, NULL);
  lua_remove(L, base);
  return status;
}

int luashm_host_docall(lua_State *L, int narg, int nres) {
  return docall(L, narg, nres);
}

int luashm_host_interrupted(void) {
  return sigint_seen;
}

static int dochunk(lua_State *L, int status) {
  if (status == LUA_OK) status = docall(L, 0, 0);
  return report(L, status);
}

static int dostring(lua_State *L, const char *s, const char *name) {
  return dochunk(L, luaL_loadbuffer(L, s, strlen(s), name));
}

/* -l mod: global mod = require(mod); -l g=mod: global g = require(mod). */
static int dolibrary(lua_State *L, char *spec) {
  int status;
  char *eq = strchr(spec, '=');
  const char *mod = eq ? eq + 1 : spec;
  if (eq) *eq = '\0';
  lua_getglobal(L, "require");
  lua_pushstring(L, mod);
  status = docall(L, 1, 1);
  if (status == LUA_OK) lua_setglobal(L, spec);
  return report(L, status);
}

/* arg: script at index 0, its arguments after, the interpreter and options before. */
static void createargtable(lua_State *L, char **argv, int argc, int script) {
  int i;
  if (script == argc) script = 0;
  lua_createtable(L, argc - script - 1, script + 1);
  for (i = 0; i < argc; i++) {
    lua_pushstring(L, argv[i]);
    lua_rawseti(L, -2, i - script);
  }
  lua_setglobal(L, "arg");
}

static int pushargs(lua_State *L) {
  int i, n;
  if (lua_getglobal(L, "arg") != LUA_TTABLE) luaL_error(L, "'arg' is not a table");
  n = (int)luaL_len(L, -1);
  luaL_checkstack(L, n + 3, "too many arguments to script");
  for (i = 1; i <= n; i++) lua_rawgeti(L, -i, i);
  lua_remove(L, -i);
  return n;
}

static int handle_script(lua_State *L, char **argv) {
  const char *fname = argv[0];
  int status;
  if (strcmp(fname, "-") == 0 && strcmp(argv[-1], "--") != 0) fname = NULL;
  status = luaL_loadfile(L, fname);
  if (status == LUA_OK) {
    int n = pushargs(L);
    status = docall(L, n, 0);
  }
  return report(L, status);
}

enum { HAS_ERROR = 1, HAS_I = 2, HAS_V = 4, HAS_E = 8, HAS_HELP = 16 };

/* Scans the options; returns the flags, and in *script the index of the script (or argc). */
static int collectargs(char **argv, int *script) {
  int flags = 0, i;
  for (i = 1; argv[i] != NULL; i++) {
    *script = i;
    if (argv[i][0] != '-') return flags;
    if (strcmp(argv[i], "--help") == 0) return flags | HAS_HELP;
    switch (argv[i][1]) {
      case '-':
        if (argv[i][2] != '\0') return HAS_ERROR;
        *script = i + 1;
        return flags;
      case '\0': return flags;
      case 'i':
        flags |= HAS_I; /* -i implies -v */
        /* fall through */
      case 'v':
        if (argv[i][2] != '\0') return HAS_ERROR;
        flags |= HAS_V;
        break;
      case 'e':
        flags |= HAS_E;
        /* fall through */
      case 'l':
      case 'j':
        if (argv[i][2] == '\0') {
          i++;
          if (argv[i] == NULL || argv[i][0] == '-') return HAS_ERROR;
        }
        break;
      default: return HAS_ERROR;
    }
  }
  *script = i;
  return flags;
}

/* Runs -e, -l and -j in order. */
static int runargs(lua_State *L, char **argv, int n) {
  int i;
  for (i = 1; i < n; i++) {
    char opt = argv[i][1];
    char *extra;
    if (opt != 'e' && opt != 'l' && opt != 'j') continue;
    extra = argv[i][2] != '\0' ? argv[i] + 2 : argv[++i];
    if (opt == 'e' && dostring(L, extra, "=(command line)") != LUA_OK) return 0;
    if (opt == 'l' && dolibrary(L, extra) != LUA_OK) return 0;
    if (opt == 'j') {
      char *end;
      long j = strtol(extra, &end, 10);
      if (*end != '\0' || j < 1 || j > 4096) {
        report_message("-j wants a worker count from 1 to 4096");
        return 0;
      }
      setenv("LUASHM_WORKERS", extra, 1);
    }
  }
  return 1;
}

static int handle_luainit(lua_State *L) {
  const char *name = "=LUA_INIT_5_4";
  const char *init = getenv(name + 1);
  if (init == NULL) {
    name = "=LUA_INIT";
    init = getenv(name + 1);
  }
  if (init == NULL) return LUA_OK;
  if (init[0] == '@') return dochunk(L, luaL_loadfile(L, init + 1));
  return dostring(L, init, name);
}

static void print_version(void) {
  printf("luashm %s (%s)\n", LUASHM_VERSION, LUA_RELEASE);
  fflush(stdout);
}

/* The host's own directory goes first on package.cpath, so that modules built beside it
   (luashm_mpi.so in the build tree) load without setting LUA_CPATH. */
static void add_exe_dir_to_cpath(lua_State *L) {
  char exe[4096];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  char *slash;
  if (n <= 0) return;
  exe[n] = '\0';
  slash = strrchr(exe, '/');
  if (slash == NULL) return;
  *slash = '\0';
  lua_getglobal(L, "package");
  lua_pushfstring(L, "%s/?.so;", exe);
  lua_getfield(L, -2, "cpath");
  lua_concat(L, 2);
  lua_setfield(L, -2, "cpath");
  lua_pop(L, 1);
}

static int pmain(lua_State *L) {
  int argc = (int)lua_tointeger(L, 1);
  char **argv = (char **)lua_touserdata(L, 2);
  int script = argc, flags = collectargs(argv, &script);
  luaL_checkversion(L);
  if (flags & HAS_ERROR) {
    print_usage(stderr);
    return 0;
  }
  if (flags & HAS_HELP) {
    print_usage(stdout);
    lua_pushboolean(L, 1);
    return 1;
  }
  if (flags & HAS_V) print_version();
  luashm_openlibs(L);
  add_exe_dir_to_cpath(L);
  createargtable(L, argv, argc, script);
  lua_gc(L, LUA_GCRESTART);
  lua_gc(L, LUA_GCGEN, 0, 0);
  if (handle_luainit(L) != LUA_OK) return 0;
  if (!runargs(L, argv, script)) return 0;
  if (script < argc && handle_script(L, argv + script) != LUA_OK) return 0;
  if (flags & HAS_I)
    luashm_repl(L);
  else if (script == argc && !(flags & (HAS_E | HAS_V))) {
    if (isatty(STDIN_FILENO)) {
      print_version();
      luashm_repl(L);
    } else if (dochunk(L, luaL_loadfile(L, NULL)) != LUA_OK)
      return 0;
  }
  lua_pushboolean(L, 1);
  return 1;
}

int main(int argc, char **argv) {
  int status, result;
  lua_State *L;
  if (argc > 1 && strcmp(argv[1], "--blocks") == 0) return luashm_blocktool(argc - 1, argv + 1);
  luashm_interrupt_hosted(); /* on_sigint calls luashm_interrupt */
  L = luaL_newstate();
  if (L == NULL) {
    report_message("cannot create state: not enough memory");
    return EXIT_FAILURE;
  }
  lua_gc(L, LUA_GCSTOP);
  lua_pushcfunction(L, pmain);
  lua_pushinteger(L, argc);
  lua_pushlightuserdata(L, argv);
  status = lua_pcall(L, 2, 1, 0);
  result = lua_toboolean(L, -1);
  report(L, status);
  lua_close(L);
  return (result && status == LUA_OK) ? EXIT_SUCCESS : EXIT_FAILURE;
}
