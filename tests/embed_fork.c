/*
** Fork safety of the embedding API (issue 16, luashm.h's "Threads and fork"), linked against
** libluashm.so as an embedding program is:
**   - a program with a thread that loads luashm and forks starts no watchdog, and nothing
**     deadlocks;
**   - the watchdog starts safely in a program whose other thread holds malloc's and stdio's
**     locks all the time (it used to call calloc and fopen after _Fork, and could hang for
**     ever, and its creator with it);
**   - a process forked after a tracked block exists is in its parent's tree.
** Exit status 0 when every check passes; each failure is printed.
*/
#include <malloc.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lauxlib.h"
#include "lualib.h"
#include "embed_check.h"
#include "luashm.h"

#define TRIALS 20

/* ---------------------------------------------------------------------------------------
** A thread that holds malloc's lock (one arena for all threads: see main) and stdio's list
** lock as often as it can
** ------------------------------------------------------------------------------------- */

static volatile int hammering = 1;

static void *hammer(void *arg) {
  size_t n = 0;
  (void)arg;
  while (hammering) {
    /* Sizes past the per-thread cache, so that every call takes the arena's lock. */
    void *p = malloc(4096 + (n++ % 64) * 64);
    free(p);
    if (n % 64 == 0) {
      FILE *f = fopen("/dev/null", "r");
      if (f != NULL) fclose(f);
    }
  }
  return NULL;
}

/* shm.tracker() in L: the watchdog's pid, or 0 when there is none. */
static long tracker_of(lua_State *L) {
  long pid = 0;
  if (luaL_dostring(L, "return shm.tracker()") == LUA_OK) {
    pid = (long)lua_tointeger(L, -1);
    lua_pop(L, 1);
  }
  return pid;
}

/* Reads a line from fd into buf within ms milliseconds; 0, or -1 when nothing came. */
static int read_line(int fd, char *buf, size_t n, int ms) {
  struct pollfd p = {fd, POLLIN, 0};
  ssize_t got;
  if (poll(&p, 1, ms) != 1 || (got = read(fd, buf, n - 1)) <= 0) return -1;
  buf[got] = '\0';
  return 0;
}

/* Waits for child within ms milliseconds; its exit status, or -1 (then it is killed). */
static int wait_child(pid_t child, int ms) {
  int st;
  for (int i = 0; i < ms / 10; i++) {
    if (waitpid(child, &st, WNOHANG) == child) return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
    usleep(10000);
  }
  kill(child, SIGKILL);
  waitpid(child, &st, 0);
  return -1;
}

/* Whether pid runs: a zombie (an orphan whose reaper has not come yet) does not. */
static int alive(long pid) {
  char path[64], buf[512] = "", *state;
  FILE *f;
  snprintf(path, sizeof path, "/proc/%ld/stat", pid);
  if ((f = fopen(path, "r")) == NULL) return 0;
  if (fgets(buf, sizeof buf, f) == NULL) buf[0] = '\0';
  fclose(f);
  state = strrchr(buf, ')');
  return state != NULL && state[1] == ' ' && state[2] != 'Z' && state[2] != 'X';
}

/* ---------------------------------------------------------------------------------------
** The tests
** ------------------------------------------------------------------------------------- */

/* Loading luashm and forking starts no watchdog, in the parent or the child. */
static void test_loading_and_forking_starts_no_watchdog(void) {
  lua_State *L = luaL_newstate();
  pid_t child;
  luashm_openlibs(L);
  CHECK(tracker_of(L) == 0);
  child = fork();
  if (child == 0) _exit(tracker_of(L) == 0 ? 0 : 1);
  CHECK(child > 0 && wait_child(child, 10000) == 0);
  CHECK(tracker_of(L) == 0);
  lua_close(L);
}

/* In each trial a child with a busy thread creates its first tracked block (which starts the
   watchdog), reports the watchdog's pid and the block's name, and exits; the watchdog must
   then unlink the block and exit. A watchdog stuck on a lock copied held hangs the create. */
static void test_watchdog_starts_beside_busy_threads(void) {
  int stuck = 0;
  for (int i = 0; i < TRIALS; i++) {
    char line[300] = "", name[300] = "";
    long dog = 0;
    int fds[2];
    pid_t child;
    if (pipe(fds) != 0) return;
    child = fork();
    if (child == 0) {
      pthread_t t[3];
      lua_State *L;
      close(fds[0]);
      for (int k = 0; k < 3; k++) pthread_create(&t[k], NULL, hammer, NULL);
      usleep(1000);
      L = luaL_newstate();
      luashm_openlibs(L);
      if (luaL_dostring(L, "return shm.create(64).name") != LUA_OK) _exit(1);
      dprintf(fds[1], "%ld %s\n", tracker_of(L), lua_tostring(L, -1));
      _exit(0);
    }
    close(fds[1]);
    if (read_line(fds[0], line, sizeof line, 10000) != 0 ||
        sscanf(line, "%ld %299s", &dog, name) != 2) {
      stuck++;
      wait_child(child, 0);
      close(fds[0]);
      continue;
    }
    close(fds[0]);
    CHECK(wait_child(child, 10000) == 0);
    for (int ms = 0; ms < 10000 && (alive(dog) || in_shm(name)); ms += 10) usleep(10000);
    CHECK(!alive(dog));
    CHECK(!in_shm(name));
  }
  if (stuck > 0) fprintf(stderr, "embed_fork: %d of %d creates hung\n", stuck, TRIALS);
  CHECK(stuck == 0);
}

/* A plain fork after the first tracked block: the child is in the same tree, so what it
   creates outlives it while the parent runs. */
static void test_fork_after_a_tracked_block_joins_the_tree(void) {
  char err[LUASHM_ERRLEN], line[300] = "", name[300] = "";
  luashm_mem *mine = luashm_mem_create(64, NULL, 0, err, sizeof err), *theirs;
  lua_State *L = luaL_newstate();
  long dog = 0, parent_dog;
  int fds[2];
  pid_t child;
  CHECK(mine != NULL);
  luashm_openlibs(L);
  parent_dog = tracker_of(L);
  CHECK(parent_dog > 0);
  if (pipe(fds) != 0) return;
  child = fork();
  if (child == 0) {
    luashm_mem *m = luashm_mem_create(64, NULL, 0, err, sizeof err);
    if (m == NULL) _exit(1);
    dprintf(fds[1], "%ld %s\n", tracker_of(L), luashm_mem_name(m));
    _exit(0);
  }
  close(fds[1]);
  CHECK(read_line(fds[0], line, sizeof line, 10000) == 0);
  close(fds[0]);
  CHECK(sscanf(line, "%ld %299s", &dog, name) == 2);
  CHECK(wait_child(child, 10000) == 0);
  CHECK(dog == parent_dog);
  CHECK(in_shm(name));
  theirs = luashm_mem_attach(name, err, sizeof err);
  CHECK(theirs != NULL && luashm_mem_unlink(theirs, err, sizeof err) == 0);
  CHECK(mine != NULL && luashm_mem_unlink(mine, err, sizeof err) == 0);
  luashm_mem_close(theirs);
  luashm_mem_close(mine);
  lua_close(L);
}

int main(void) {
  pthread_t t;
  /* One malloc arena for every thread: the busy thread holds the very lock a child of _Fork
     would need. */
  mallopt(M_ARENA_MAX, 1);
  /* First, while this process has no tree its children could inherit. */
  test_watchdog_starts_beside_busy_threads();
  pthread_create(&t, NULL, hammer, NULL);
  test_loading_and_forking_starts_no_watchdog();
  hammering = 0;
  pthread_join(t, NULL);
  test_fork_after_a_tracked_block_joins_the_tree();
  return verdict("embed_fork");
}
