/*
** The REPL of the luashm host: lua.c's read-eval-print loop ("return <line>" first, incomplete
** chunks continue) with readline line editing, a persistent history (~/.luashm_history), tab
** completion of globals, fields, methods and properties, and results printed by the pretty
** printer of scripts/lib/pretty.lua ("luashm.pretty"), which also keeps the session: chunks run
** in its environment, where top-level locals last. At the end of input the session ends: its
** <close> locals are closed, its workers stopped and its tracked blocks unlinked, in one line.
** Without readline, or when stdin is no terminal, lines are read with fgets and there is no
** history or completion.
*/
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/select.h>
#include <time.h>
#include <unistd.h>

#include "core.h"
#include "host.h"
#include "lauxlib.h"
#include "repl.h"
#include "tracker.h"

#if LUASHM_USE_READLINE
#include <readline/history.h>
#include <readline/readline.h>
#endif

#define PROMPT "> "
#define PROMPT2 ">> "
#define PRETTY "luashm.pretty"
#define HISTORY_FILE ".luashm_history"
#define HISTORY_MAX 1000 /* entries kept in the history file */
#define LINE_MAX_FGETS 4096

/* Ctrl-C while a line is being read: the reader sees the flag and cancels the line. The
   running Lua code is stopped by the host's own handler instead (luashm_host_docall). */
static volatile sig_atomic_t interrupted = 0;

static void on_sigint(int sig) {
  (void)sig;
  interrupted = 1;
}

/* Without SA_RESTART, so that a blocked read returns EINTR and the line can be cancelled. */
static void catch_sigint(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_sigint;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, NULL);
}

enum { READ_LINE, READ_EOF, READ_CANCELLED };

/* Pushes the luashm.pretty module (required at the first call: it is a lazy part), or returns
   0 having pushed nothing when it cannot be had. */
static int push_pretty_module(lua_State *L) {
  int top = lua_gettop(L);
  lua_getglobal(L, "require");
  lua_pushliteral(L, PRETTY);
  if (lua_pcall(L, 1, 1, 0) == LUA_OK && lua_istable(L, -1)) return 1;
  lua_settop(L, top);
  return 0;
}

/* Pushes luashm.pretty's function called name, or returns 0 having pushed nothing. */
static int push_pretty(lua_State *L, const char *name) {
  int top = lua_gettop(L);
  if (push_pretty_module(L) && lua_getfield(L, -1, name) == LUA_TFUNCTION) {
    lua_replace(L, top + 1);
    lua_settop(L, top + 1);
    return 1;
  }
  lua_settop(L, top);
  return 0;
}

/* Readline only on a terminal: `luashm -i script < file` reads plain lines. */
static int use_readline(void) {
#if LUASHM_USE_READLINE
  return isatty(STDIN_FILENO);
#else
  return 0;
#endif
}

/* ---------------------------------------------------------------------------------------
** Reading lines: readline on a terminal
** ------------------------------------------------------------------------------------- */

#if LUASHM_USE_READLINE

/* Readline's callbacks carry no user data: the interpreter that completion runs in. The
   REPL is one per process, so a static is the honest place for it. */
static lua_State *completion_state = NULL;
static char history_path[4096];
static char *line_read;
static int line_done;

static void on_line(char *line) {
  line_read = line;
  line_done = 1;
  rl_callback_handler_remove();
}

/* The longest prefix that all n matches share, as readline wants in matches[0]. */
static char *common_prefix(char **m, int n) {
  size_t len = strlen(m[0]);
  int i;
  for (i = 1; i < n; i++) {
    size_t j = 0;
    while (j < len && m[i][j] == m[0][j]) j++;
    len = j;
  }
  return strndup(m[0], len);
}

/* The Lua list of words at the top as readline's matches (matches[0] their common prefix),
   or NULL when it is empty or memory runs out. */
static char **to_matches(lua_State *L) {
  int n = (int)lua_rawlen(L, -1), i;
  char **m;
  if (n <= 0 || (m = calloc((size_t)n + 2, sizeof *m)) == NULL) return NULL;
  for (i = 1; i <= n; i++) {
    lua_rawgeti(L, -1, i);
    m[i] = strdup(lua_isstring(L, -1) ? lua_tostring(L, -1) : "");
    lua_pop(L, 1);
    if (m[i] == NULL) break;
  }
  if (i > n) m[0] = common_prefix(m + 1, n);
  if (m[0] == NULL) {
    for (i = 1; i <= n; i++) free(m[i]);
    free(m);
    return NULL;
  }
  return m;
}

/* Asks luashm.pretty's complete() for the words that complete text; readline frees the
   array and its strings. */
static char **complete(const char *text, int start, int end) {
  lua_State *L = completion_state;
  int top = lua_gettop(L);
  char **m = NULL;
  (void)start;
  (void)end;
  rl_attempted_completion_over = 1;      /* never fall back to file names */
  rl_completion_append_character = '\0'; /* readline resets it before each attempt */
  if (push_pretty(L, "complete")) {
    lua_pushstring(L, text);
    if (lua_pcall(L, 1, 1, 0) == LUA_OK && lua_istable(L, -1)) m = to_matches(L);
  }
  lua_settop(L, top);
  return m;
}

static void history_open(void) {
  const char *home = getenv("HOME");
  int fd;
  using_history();
  stifle_history(HISTORY_MAX);
  /* Timestamps delimit the entries in the file, so that multi-line chunks come back whole. */
  history_comment_char = '#';
  history_write_timestamps = 1;
  history_multiline_entries = 1;
  history_path[0] = '\0';
  if (home == NULL || *home == '\0' ||
      snprintf(history_path, sizeof history_path, "%s/" HISTORY_FILE, home) >=
          (int)sizeof history_path) {
    history_path[0] = '\0';
    return;
  }
  /* append_history only appends to a file that exists. */
  fd = open(history_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (fd < 0) {
    history_path[0] = '\0';
    return;
  }
  close(fd);
  history_truncate_file(history_path, HISTORY_MAX);
  read_history(history_path);
}

/* Adds a chunk to the history and appends it to the file at once, so that a crash or a
   second REPL loses nothing. Skips blank lines and repeats of the last entry. */
static void history_save(const char *chunk) {
  HIST_ENTRY *last;
  if (chunk[strspn(chunk, " \t\n")] == '\0') return;
  last = history_length > 0 ? history_get(history_base + history_length - 1) : NULL;
  if (last != NULL && strcmp(last->line, chunk) == 0) return;
  add_history(chunk);
  if (history_path[0] != '\0') append_history(1, history_path);
}

static void saveline(const char *chunk) {
  if (use_readline()) history_save(chunk);
}

static void history_close(void) {
  if (history_path[0] != '\0') history_truncate_file(history_path, HISTORY_MAX);
}

/* Readline's callback interface, waiting in pselect with SIGINT unblocked only there, so
   that Ctrl-C reliably wakes the wait and cancels the line (readline's own signal handling
   would re-raise SIGINT at the process). */
static int read_terminal(const char *prompt, char **line) {
  sigset_t block, orig;
  int result = READ_LINE;
  sigemptyset(&block);
  sigaddset(&block, SIGINT);
  sigprocmask(SIG_BLOCK, &block, &orig);
  interrupted = 0;
  line_done = 0;
  line_read = NULL;
  rl_callback_handler_install(prompt, on_line);
  while (!line_done) {
    fd_set fds;
    FD_ZERO(&fds);
    FD_SET(STDIN_FILENO, &fds);
    if (pselect(STDIN_FILENO + 1, &fds, NULL, NULL, NULL, &orig) < 0) {
      if (errno != EINTR) {
        rl_callback_handler_remove();
        break;
      }
      if (interrupted) {
        rl_free_line_state();
        rl_callback_sigcleanup();
        rl_cleanup_after_signal();
        rl_callback_handler_remove();
        result = READ_CANCELLED;
        break;
      }
      continue;
    }
    rl_callback_read_char();
  }
  sigprocmask(SIG_SETMASK, &orig, NULL);
  if (result == READ_CANCELLED) {
    fputs("\n", stdout);
    fflush(stdout);
    return result;
  }
  *line = line_read;
  return line_read != NULL ? READ_LINE : READ_EOF;
}

#else

static void saveline(const char *chunk) {
  (void)chunk;
}

#endif

/* ---------------------------------------------------------------------------------------
** Reading lines: fgets otherwise
** ------------------------------------------------------------------------------------- */

static int read_plain(const char *prompt, char **line) {
  char buf[LINE_MAX_FGETS];
  interrupted = 0;
  fputs(prompt, stdout);
  fflush(stdout);
  if (fgets(buf, sizeof buf, stdin) == NULL) {
    if (ferror(stdin) && errno == EINTR && interrupted) {
      clearerr(stdin);
      fputs("\n", stdout);
      return READ_CANCELLED;
    }
    return READ_EOF;
  }
  buf[strcspn(buf, "\n")] = '\0';
  *line = strdup(buf);
  return *line != NULL ? READ_LINE : READ_EOF;
}

/* Pushes the next line (without its newline); READ_EOF and READ_CANCELLED push nothing. */
static int pushline(lua_State *L, const char *prompt) {
  char *line = NULL;
  int r;
  catch_sigint();
#if LUASHM_USE_READLINE
  if (use_readline())
    r = read_terminal(prompt, &line);
  else
#endif
    r = read_plain(prompt, &line);
  if (r == READ_LINE) {
    lua_pushstring(L, line);
    free(line);
  }
  return r;
}

/* ---------------------------------------------------------------------------------------
** The loop
** ------------------------------------------------------------------------------------- */

static int incomplete(lua_State *L, int status) {
  size_t lmsg;
  const char *msg;
  if (status != LUA_ERRSYNTAX) return 0;
  msg = lua_tolstring(L, -1, &lmsg);
  return lmsg >= 5 && strcmp(msg + lmsg - 5, "<eof>") == 0;
}

/* What loadline returns besides a load status. */
enum { INPUT_ENDED = -1, INPUT_CANCELLED = -2 };

/* The function at the top (loaded from the chunk just below it) becomes the one the session
   runs: pretty.session_load gives it the session's environment, rewriting top-level locals.
   Without the printer, or if that fails, the function stays as it is. */
static void session_load(lua_State *L) {
  if (!push_pretty(L, "session_load")) return;
  lua_pushvalue(L, -2);
  lua_pushvalue(L, -4);
  if (lua_pcall(L, 2, 1, 0) == LUA_OK && lua_isfunction(L, -1))
    lua_replace(L, -2);
  else
    lua_pop(L, 1);
}

/* Tries the chunk at the top as an expression ("return <chunk>;"), as lua.c does for a line:
   on success the function is pushed above the chunk. */
static int addreturn(lua_State *L) {
  const char *retline = lua_pushfstring(L, "return %s;", lua_tostring(L, -1));
  int status = luaL_loadbuffer(L, retline, strlen(retline), "=stdin");
  lua_remove(L, -2);
  if (status != LUA_OK) lua_pop(L, 1);
  return status;
}

/* Whether chunk is the start of an expression that more input may complete, such as "{" or
   "f(1," on a first line, which lua.c would reject at once as a statement. */
static int incomplete_expression(lua_State *L, const char *chunk) {
  const char *retline = lua_pushfstring(L, "return %s", chunk);
  int more = incomplete(L, luaL_loadbuffer(L, retline, strlen(retline), "=stdin"));
  lua_pop(L, 2);
  return more;
}

/* Loads the chunk at the top, as an expression when it is one (so that a call spread over
   several lines shows its results too), else as a statement, reading more lines while it is
   incomplete; pushes the function or the error above the (whole) chunk, which goes to the
   history. Ctrl-C drops the chunk. */
static int loadchunk(lua_State *L) {
  for (;;) {
    size_t len;
    const char *chunk = lua_tolstring(L, -1, &len);
    int status, r = READ_EOF;
    if (addreturn(L) == LUA_OK) {
      saveline(chunk);
      session_load(L);
      return LUA_OK;
    }
    status = luaL_loadbuffer(L, chunk, len, "=stdin");
    if ((!incomplete(L, status) && (status == LUA_OK || !incomplete_expression(L, chunk))) ||
        (r = pushline(L, PROMPT2)) == READ_EOF) {
      saveline(chunk);
      if (status == LUA_OK) session_load(L);
      return status;
    }
    if (r == READ_CANCELLED) {
      lua_pop(L, 2);
      return INPUT_CANCELLED;
    }
    lua_remove(L, -2);
    lua_pushliteral(L, "\n");
    lua_insert(L, -2);
    lua_concat(L, 3);
  }
}

/* Reads one chunk and loads it: LUA_OK with the function pushed, an error status with the
   message pushed, or INPUT_ENDED / INPUT_CANCELLED with nothing pushed. */
static int loadline(lua_State *L) {
  int status, r = pushline(L, PROMPT);
  if (r != READ_LINE) return r == READ_CANCELLED ? INPUT_CANCELLED : INPUT_ENDED;
  status = loadchunk(L);
  if (status != INPUT_CANCELLED) lua_remove(L, -2);
  return status;
}

/* ---------------------------------------------------------------------------------------
** Workers that an interrupted chunk started
** ------------------------------------------------------------------------------------- */

/* worker.c keeps this process's unreaped workers as the keys of this registry table. */
#define WORKERS_LIVE "luashm.workers.live"

/* Pushes a copy of the set of live workers (empty without worker support). */
static void push_live_workers(lua_State *L) {
  lua_newtable(L);
  if (lua_getfield(L, LUA_REGISTRYINDEX, WORKERS_LIVE) == LUA_TTABLE) {
    lua_pushnil(L);
    while (lua_next(L, -2)) {
      lua_pop(L, 1);
      lua_pushvalue(L, -1);
      lua_pushboolean(L, 1);
      lua_rawset(L, -5);
    }
  }
  lua_pop(L, 1);
}

/* Closes, with their __close (which kills and reaps a running worker), the live workers that
   are not in the set at index 1: those the interrupted chunk started. Workers started by
   earlier chunks keep running. */
static int stop_new_workers(lua_State *L) {
  push_live_workers(L);
  lua_pushnil(L);
  while (lua_next(L, 2)) {
    lua_pop(L, 1);
    lua_pushvalue(L, -1);
    if (lua_rawget(L, 1) == LUA_TNIL && luaL_callmeta(L, -2, "__close")) lua_pop(L, 1);
    lua_pop(L, 1);
  }
  return 0;
}

static void stop_workers(lua_State *L, int before) {
  lua_pushcfunction(L, stop_new_workers);
  lua_pushvalue(L, before);
  if (lua_pcall(L, 1, 0, 0) != LUA_OK) lua_pop(L, 1);
}

/* Tables break at the terminal's width, which may have changed since the last result. The
   luashm.pretty table is at index pretty. */
static void set_width(lua_State *L, int pretty) {
  struct winsize ws;
  if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) != 0 || ws.ws_col < 20) return;
  if (lua_getfield(L, pretty, "defaults") == LUA_TTABLE) {
    lua_pushinteger(L, ws.ws_col);
    lua_setfield(L, -2, "width");
  }
  lua_pop(L, 1);
}

/* Prints the values on the stack above base with luashm.pretty's print, or as lua.c does
   when the printer is gone. */
static void print_results(lua_State *L, int base) {
  int n = lua_gettop(L) - base;
  if (n <= 0) return;
  luaL_checkstack(L, LUA_MINSTACK, "too many results to print");
  if (push_pretty_module(L)) {
    set_width(L, lua_gettop(L));
    lua_getfield(L, -1, "print");
  }
  if (lua_gettop(L) == base + n || !lua_isfunction(L, -1)) {
    lua_settop(L, base + n);
    lua_getglobal(L, "print");
  } else {
    lua_replace(L, base + n + 1);
    lua_settop(L, base + n + 1);
  }
  lua_insert(L, base + 1);
  if (luashm_host_docall(L, n, 0) != LUA_OK) {
    fprintf(stderr, "error calling print (%s)\n", lua_tostring(L, -1));
    fflush(stderr);
  }
}

/* ---------------------------------------------------------------------------------------
** The end of the session
** ------------------------------------------------------------------------------------- */

/* The names this process tree's tracker records, from its index (luashm_tracker_scan). */
typedef struct tracked {
  long tracker;
  luaL_Buffer *names;
  int count;
} tracked;

static void unlink_tracked_name(void *ud, const luashm_trackrec *r, long tracker, int alive,
                                uid_t owner) {
  tracked *t = (tracked *)ud;
  char err[LUASHM_ERRLEN], esc[4 * LUASHM_NAME_MAX + 1];
  struct stat st;
  const char *name = luashm_tracker_resolve(r, owner, &st);
  (void)alive;
  if (tracker != t->tracker || name == NULL || luashm_tracker_unlink(name, err) != 0) return;
  if (t->count++ > 0) luaL_addstring(t->names, ", ");
  luashm_name_escape(esc, sizeof esc, name); /* a name must not drive the terminal */
  luaL_addstring(t->names, esc);
}

/* Unlinks the tracked blocks the session's process tree made and left, which the tracker
   would otherwise unlink at exit with a line about leaked blocks, and says so in one line.
   The tracker's index lags its records by up to 20 ms: a name created within that time of
   the end is left to the tracker itself. */
static void unlink_tracked(lua_State *L) {
  struct timespec lag = {0, 40 * 1000 * 1000};
  luaL_Buffer names;
  tracked t = {luashm_tracker_pid(), &names, 0};
  if (t.tracker == 0) return;
  nanosleep(&lag, NULL);
  luaL_buffinit(L, &names);
  luashm_tracker_scan(unlink_tracked_name, &t);
  luaL_pushresult(&names);
  if (t.count > 0) {
    fprintf(stderr, "luashm: end of session: unlinked %d tracked block%s: %s\n", t.count,
            t.count == 1 ? "" : "s", lua_tostring(L, -1));
    fflush(stderr);
  }
  lua_pop(L, 1);
}

/* Closes the session's <close> locals (their errors are printed), stops every worker still
   running, and unlinks the session's tracked blocks. */
static void session_end(lua_State *L) {
  lua_settop(L, 0);
  if (push_pretty(L, "session_end") && lua_pcall(L, 0, 1, 0) == LUA_OK && lua_istable(L, -1)) {
    int i, n = (int)lua_rawlen(L, -1);
    for (i = 1; i <= n; i++) {
      lua_rawgeti(L, -1, i);
      fprintf(stderr, "luashm: closing a session local: %s\n", lua_tostring(L, -1));
      lua_pop(L, 1);
    }
  }
  lua_settop(L, 0);
  lua_newtable(L);
  stop_workers(L, 1);
  lua_settop(L, 0);
  unlink_tracked(L);
}

void luashm_repl(lua_State *L) {
  int status;
  int tty = use_readline();
#if LUASHM_USE_READLINE
  if (tty) {
    completion_state = L;
    rl_readline_name = "luashm";
    rl_catch_signals = 0;
    rl_attempted_completion_function = complete;
    /* '.' and ':' belong to the word, so that string.fo and a:su complete as a whole. */
    rl_basic_word_break_characters = " \t\n\"\\'`@$><=;|&{(,+-*/%^~#[]}";
    history_open();
  }
#endif
  (void)tty;
  while ((status = loadline(L)) != INPUT_ENDED) {
    int base, stopped = 0;
    if (status == INPUT_CANCELLED) continue;
    base = lua_gettop(L) - 1;
    if (status == LUA_OK) {
      push_live_workers(L);
      lua_insert(L, base + 1);
      status = luashm_host_docall(L, 0, LUA_MULTRET);
      stopped = status != LUA_OK && luashm_host_interrupted();
    }
    if (status == LUA_OK)
      print_results(L, base + 1);
    else {
      const char *msg = lua_tostring(L, -1);
      fprintf(stderr, "%s\n", msg ? msg : "(error object is not a string)");
      fflush(stderr);
    }
    if (stopped) stop_workers(L, base + 1);
    lua_settop(L, base);
  }
  fputs("\n", stdout);
  fflush(stdout);
  session_end(L);
#if LUASHM_USE_READLINE
  if (tty) history_close();
#endif
}
