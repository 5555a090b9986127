/*
** Embedding luashm in a C program: C creates a shared f64 array, a Lua script run as a worker
** fills it with its own workers (shm.parallel), and C reads the result straight from the
** shared pages. Build: cc embed_example.c $(pkg-config --cflags --libs luashm)
** Usage: embed_example SCRIPT [N [WORKERS]]   (SCRIPT: tests/embed_example.lua)
*/
#include <stdio.h>
#include <stdlib.h>

#include "lauxlib.h"
#include "luashm.h"

int main(int argc, char **argv) {
  char err[LUASHM_ERRLEN];
  size_t n = argc > 2 ? strtoul(argv[2], NULL, 10) : 1000000, i;
  lua_Integer workers = argc > 3 ? atoi(argv[3]) : 2;
  luashm_mem *a;
  lua_State *L;
  double *x, sum = 0;
  int ok = 1;
  if (argc < 2 || n == 0 || workers < 1) {
    fprintf(stderr, "usage: %s SCRIPT [N [WORKERS]]\n", argv[0]);
    return 2;
  }
  /* The array's block is tracked: should this program die before it unlinks, the tracker
     removes it once the program and its workers are gone. */
  a = luashm_mem_array("f64", 1, &n, NULL, 0, err, sizeof err);
  if (a == NULL) {
    fprintf(stderr, "%s\n", err);
    return 1;
  }
  L = luaL_newstate();
  luashm_openlibs(L);
  /* The script receives the Array itself (it travels by name and arrives attached). */
  if (luashm_pushopen(L, luashm_mem_name(a)) != LUA_OK) goto lua_failed;
  lua_pushinteger(L, workers);
  if (luashm_run(L, argv[1], 2, 1) != LUA_OK) goto lua_failed;
  x = (double *)luashm_mem_data(a);
  for (i = 0; i < n; i++) {
    sum += x[i];
    ok = ok && x[i] == (double)(i + 1) * 0.5;
  }
  printf("%s: %zu f64 filled by %d workers, sum %.1f (the script says %.1f), %s\n",
         luashm_mem_name(a), n, (int)workers, sum, lua_tonumber(L, -1),
         ok && sum == lua_tonumber(L, -1) ? "ok" : "WRONG");
  ok = ok && sum == lua_tonumber(L, -1);
  lua_close(L);
  if (luashm_mem_unlink(a, err, sizeof err) != 0) {
    fprintf(stderr, "%s\n", err);
    ok = 0;
  }
  luashm_mem_close(a);
  return ok ? 0 : 1;
lua_failed:
  fprintf(stderr, "%s\n", lua_tostring(L, -1));
  lua_close(L);
  luashm_mem_unlink(a, err, sizeof err);
  luashm_mem_close(a);
  return 1;
}
