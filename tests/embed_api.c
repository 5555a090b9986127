/*
** Tests of the C embedding API (luashm.h), linked against libluashm.so as an embedding program
** would be: blocks and arrays made and attached from C, shared with Lua by name, the errors.
** Exit status 0 when every check passes; each failure is printed.
*/
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lauxlib.h"
#include "lualib.h"
#include "embed_check.h"
#include "luashm.h"

static int contains(const char *s, const char *frag) {
  return s && strstr(s, frag) != NULL;
}

/* Runs a Lua chunk with the string s as its `...`; returns its one result as a string copy. */
static char *lua_eval(lua_State *L, const char *code, const char *s) {
  char *out = NULL;
  if (luaL_loadstring(L, code) != LUA_OK) return NULL;
  lua_pushstring(L, s);
  if (lua_pcall(L, 1, 1, 0) == LUA_OK && lua_tostring(L, -1) != NULL)
    out = strdup(lua_tostring(L, -1));
  else
    fprintf(stderr, "lua: %s\n", lua_tostring(L, -1));
  lua_pop(L, 1);
  return out;
}

static void test_create_attach_unlink(void) {
  char err[LUASHM_ERRLEN], name[300];
  luashm_mem *m = luashm_mem_create(4096, NULL, 0, err, sizeof err), *a;
  unsigned char *p, zero[4096] = {0};
  CHECK(m != NULL);
  if (m == NULL) return;
  snprintf(name, sizeof name, "%s", luashm_mem_name(m));
  CHECK(strlen(name) == 23 && strncmp(name, "luashm_", 7) == 0);
  CHECK(strspn(name + 7, "0123456789abcdef") == 16);
  CHECK(luashm_mem_size(m) == 4096);
  p = (unsigned char *)luashm_mem_data(m);
  CHECK(memcmp(p, zero, sizeof zero) == 0);
  memcpy(p, "hello", 5);
  a = luashm_mem_attach(name, err, sizeof err);
  CHECK(a != NULL);
  if (a != NULL) {
    CHECK(luashm_mem_size(a) == 4096);
    CHECK(memcmp(luashm_mem_data(a), "hello", 5) == 0);
    CHECK(strcmp(luashm_mem_name(a), name) == 0);
  }
  CHECK(luashm_mem_unlink(m, err, sizeof err) == 0);
  CHECK(!in_shm(name));
  /* Mappings outlive the name. */
  p[5] = '!';
  CHECK(a != NULL && ((unsigned char *)luashm_mem_data(a))[5] == '!');
  CHECK(luashm_mem_unlink(m, err, sizeof err) == -1);
  CHECK(contains(err, "luashm: unlink '") && contains(err, "': no such block"));
  luashm_mem_close(a);
  luashm_mem_close(m);
  luashm_mem_close(NULL);
}

static void test_close_never_unlinks(void) {
  char err[LUASHM_ERRLEN];
  luashm_mem *m =
      luashm_mem_create(100, "luashm_embed_test_close", LUASHM_UNTRACKED, err, sizeof err);
  CHECK(m != NULL);
  if (m == NULL) return;
  luashm_mem_close(m);
  CHECK(in_shm("luashm_embed_test_close"));
  m = luashm_mem_attach("luashm_embed_test_close", err, sizeof err);
  CHECK(m != NULL && luashm_mem_size(m) == 100);
  if (m == NULL) return;
  CHECK(luashm_mem_unlink(m, err, sizeof err) == 0);
  luashm_mem_close(m);
  CHECK(!in_shm("luashm_embed_test_close"));
}

static void test_errors(void) {
  char err[LUASHM_ERRLEN], longname[300], small[16];
  luashm_mem *m;
  CHECK(luashm_mem_create(0, NULL, 0, err, sizeof err) == NULL);
  CHECK(strcmp(err, "luashm: create: size 0 is not positive") == 0);
  CHECK(luashm_mem_create(SIZE_MAX, NULL, 0, err, sizeof err) == NULL);
  CHECK(strcmp(err, "luashm: create: size is too large") == 0);
  CHECK(luashm_mem_create(10, "a/b", 0, err, sizeof err) == NULL);
  CHECK(contains(err, "luashm: create 'a/b': names may not contain '/'"));
  CHECK(luashm_mem_create(10, "", 0, err, sizeof err) == NULL);
  CHECK(contains(err, "empty name"));
  memset(longname, 'x', 251);
  longname[251] = '\0';
  CHECK(luashm_mem_attach(longname, err, sizeof err) == NULL);
  CHECK(contains(err, "longer than 250"));
  CHECK(luashm_mem_attach(NULL, err, sizeof err) == NULL);
  CHECK(contains(err, "luashm: attach: name is NULL"));
  CHECK(luashm_mem_attach("luashm_embed_test_none", err, sizeof err) == NULL);
  CHECK(strcmp(err, "luashm: attach 'luashm_embed_test_none': no such block") == 0);
  /* err may be NULL or short: the message is dropped or cut, never overrun. */
  CHECK(luashm_mem_attach("luashm_embed_test_none", NULL, 0) == NULL);
  CHECK(luashm_mem_attach("luashm_embed_test_none", small, sizeof small) == NULL);
  CHECK(strlen(small) == sizeof small - 1);
  m = luashm_mem_create(10, "luashm_embed_test_dup", LUASHM_UNTRACKED, err, sizeof err);
  CHECK(m != NULL);
  CHECK(luashm_mem_create(10, "luashm_embed_test_dup", 0, err, sizeof err) == NULL);
  CHECK(contains(err, "create 'luashm_embed_test_dup': a block with this name already exists"));
  if (m != NULL) CHECK(luashm_mem_unlink(m, err, sizeof err) == 0);
  luashm_mem_close(m);
  CHECK(luashm_mem_array("f65", 1, (size_t[]){3}, NULL, 0, err, sizeof err) == NULL);
  CHECK(contains(err, "luashm: array: unknown dtype"));
  CHECK(luashm_mem_array("f64", 33, (size_t[33]){0}, NULL, 0, err, sizeof err) == NULL);
  CHECK(contains(err, "ndim must be from 1 to 32"));
  CHECK(luashm_mem_array("f64", 2, (size_t[]){(size_t)1 << 40, (size_t)1 << 40}, NULL, 0, err,
                         sizeof err) == NULL);
  CHECK(contains(err, "shape is too large"));
}

/* Issue 16 (hygiene): a 0-d array was made from C that shm.open then refused; now C refuses it
   as shm.array does, and leaves nothing behind. */
static void test_0d_array_is_refused_as_in_lua(void) {
  char err[LUASHM_ERRLEN];
  size_t one = 1;
  CHECK(luashm_mem_array("f64", 0, &one, NULL, 0, err, sizeof err) == NULL);
  CHECK(contains(err, "luashm: array: ndim must be from 1 to 32"));
  CHECK(luashm_mem_array("f64", 1, NULL, NULL, 0, err, sizeof err) == NULL);
  CHECK(contains(err, "ndim must be from 1 to 32, with a shape of ndim sizes"));
}

/* C makes an array; Lua opens it by name alone and sees the dtype, shape and C's values. */
static void test_array_shared_with_lua(lua_State *L) {
  char err[LUASHM_ERRLEN];
  size_t shape[2] = {3, 4};
  luashm_mem *a = luashm_mem_array("i32", 2, shape, NULL, 0, err, sizeof err);
  int32_t *x;
  char *s;
  int i;
  CHECK(a != NULL);
  if (a == NULL) return;
  CHECK(luashm_mem_size(a) == 3 * 4 * sizeof(int32_t));
  x = (int32_t *)luashm_mem_data(a);
  CHECK(((uintptr_t)x & 63) == 0);
  for (i = 0; i < 12; i++) x[i] = i * 10;
  s = lua_eval(L,
               "local a = shm.open(...)\n"
               "a:set(3, 4, -7)\n"
               "return string.format('%s %s %d %d %d', a.dtype, table.concat(a.shape, 'x'),"
               " a:get(1, 2), a:get(2, 1), a:sum())",
               luashm_mem_name(a));
  CHECK(s != NULL && strcmp(s, "i32 3x4 10 40 543") == 0);
  free(s);
  CHECK(x[11] == -7);
  /* NumPy reads the same block as an .npy file: the header is shm.array's own. */
  {
    char cmd[400], out[100] = "";
    FILE *p;
    snprintf(cmd, sizeof cmd,
             "/usr/bin/python3 -c 'import numpy, sys; a = numpy.load(sys.argv[1], mmap_mode=\"r\");"
             " print(a.dtype, a.shape, int(a.sum()))' /dev/shm/%s",
             luashm_mem_name(a));
    p = popen(cmd, "r");
    CHECK(p != NULL && fgets(out, sizeof out, p) != NULL);
    CHECK(p != NULL && pclose(p) == 0);
    CHECK(strcmp(out, "int32 (3, 4) 543\n") == 0);
  }
  CHECK(luashm_mem_unlink(a, err, sizeof err) == 0);
  luashm_mem_close(a);
}

/* Writes code to a temporary script; returns its path (free it) or NULL. */
static char *script(const char *code) {
  char *path = strdup("/tmp/luashm-embed-XXXXXX");
  int fd = mkstemp(path);
  FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
  if (f == NULL) {
    free(path);
    return NULL;
  }
  fputs(code, f);
  fclose(f);
  return path;
}

static void test_run_worker_scripts(lua_State *L) {
  char *ok = script("local a, b = ...\nreturn a + b, shm ~= nil and 'fresh worker'\n");
  char *bad = script("local x = ...\nerror('boom ' .. x)\n");
  CHECK(ok != NULL && bad != NULL);
  if (ok == NULL || bad == NULL) goto done;
  lua_pushinteger(L, 2);
  lua_pushinteger(L, 3);
  CHECK(luashm_run(L, ok, 2, LUA_MULTRET) == LUA_OK);
  CHECK(lua_gettop(L) == 2 && lua_tointeger(L, 1) == 5);
  CHECK(contains(lua_tostring(L, 2), "fresh worker"));
  lua_settop(L, 0);
  lua_pushstring(L, "from C");
  CHECK(luashm_run(L, bad, 1, 0) == LUA_ERRRUN);
  CHECK(lua_gettop(L) == 1 && contains(lua_tostring(L, -1), "boom from C"));
  lua_settop(L, 0);
  /* spawn: the Worker is Lua's own; C may join it through the Lua API. */
  lua_pushinteger(L, 40);
  lua_pushinteger(L, 2);
  CHECK(luashm_spawn(L, ok, 2) == LUA_OK);
  CHECK(lua_gettop(L) == 1 && lua_getfield(L, 1, "pid") == LUA_TNUMBER && lua_tointeger(L, -1) > 0);
  lua_pop(L, 1);
  lua_getfield(L, 1, "join");
  lua_pushvalue(L, 1);
  CHECK(lua_pcall(L, 1, 2, 0) == LUA_OK && lua_toboolean(L, -2) && lua_tointeger(L, -1) == 42);
  lua_settop(L, 0);
  CHECK(luashm_run(L, "/nonexistent/luashm-embed.lua", 0, 0) != LUA_OK);
  CHECK(contains(lua_tostring(L, -1), "/nonexistent/luashm-embed.lua"));
  lua_settop(L, 0);
done:
  if (ok != NULL) unlink(ok);
  if (bad != NULL) unlink(bad);
  free(ok);
  free(bad);
}

static void test_lua_side(void) {
  char err[LUASHM_ERRLEN];
  lua_State *L = luaL_newstate();
  luashm_mem *m;
  char *s;
  /* Before luashm is open: a clear error, no crash. */
  CHECK(luashm_pushopen(L, "luashm_embed_test_none") != LUA_OK);
  CHECK(contains(lua_tostring(L, -1), "luashm is not open in this state"));
  lua_pop(L, 1);
  /* Without the standard libraries luashm cannot open: an error status, not a panic. */
  CHECK(luashm_open(L) != LUA_OK && lua_type(L, -1) == LUA_TSTRING);
  lua_settop(L, 0);
  /* luashm_open into a state the program has set up (here without the global io): it adds
     shm and changes nothing else. */
  luaL_openlibs(L);
  lua_pushnil(L);
  lua_setglobal(L, "io");
  CHECK(luashm_open(L) == LUA_OK && lua_istable(L, -1));
  lua_pop(L, 1);
  CHECK(lua_getglobal(L, "shm") == LUA_TTABLE);
  CHECK(lua_getglobal(L, "io") == LUA_TNIL);
  lua_pop(L, 2);

  m = luashm_mem_create(64, NULL, 0, err, sizeof err);
  CHECK(m != NULL);
  if (m != NULL) {
    memcpy(luashm_mem_data(m), "from C", 6);
    CHECK(luashm_pushopen(L, luashm_mem_name(m)) == LUA_OK);
    lua_getfield(L, -1, "size");
    CHECK(lua_tointeger(L, -1) == 64);
    lua_pop(L, 2);
    s = lua_eval(L, "local b = shm.attach(...) b:write(6, ' and Lua') return b:read(0, 14)",
                 luashm_mem_name(m));
    CHECK(s != NULL && strcmp(s, "from C and Lua") == 0);
    free(s);
    CHECK(memcmp(luashm_mem_data(m), "from C and Lua", 14) == 0);
    CHECK(luashm_mem_unlink(m, err, sizeof err) == 0);
    luashm_mem_close(m);
  }
  CHECK(luashm_pushopen(L, "luashm_embed_test_none") == LUA_ERRRUN);
  CHECK(contains(lua_tostring(L, -1), "luashm_embed_test_none"));
  lua_pop(L, 1);
  CHECK(luashm_pushopen(L, NULL) == LUA_ERRRUN);
  lua_pop(L, 1);

  test_array_shared_with_lua(L);
  test_run_worker_scripts(L);
  CHECK(lua_gettop(L) == 0);
  lua_close(L);
}

/* The child of test_tracker: a program of its own (exec'd, so a process tree of its own) that
   creates a tracked and an untracked block, prints their names and closes them, which never
   unlinks. */
static int leak_and_exit(void) {
  char err[LUASHM_ERRLEN];
  luashm_mem *t = luashm_mem_create(10, NULL, 0, err, sizeof err);
  luashm_mem *u = luashm_mem_create(10, NULL, LUASHM_UNTRACKED, err, sizeof err);
  if (t != NULL && u != NULL) printf("%s %s\n", luashm_mem_name(t), luashm_mem_name(u));
  fflush(stdout);
  luashm_mem_close(t);
  luashm_mem_close(u);
  return t != NULL && u != NULL ? 0 : 1;
}

/* When a program's process tree is gone, its tracked blocks go too; untracked ones stay. */
static void test_tracker(const char *self) {
  char cmd[600], tracked[64] = "", untracked[64] = "", err[LUASHM_ERRLEN];
  FILE *p;
  luashm_mem *m;
  int i;
  snprintf(cmd, sizeof cmd, "'%s' leak", self);
  p = popen(cmd, "r");
  CHECK(p != NULL && fscanf(p, "%63s %63s", tracked, untracked) == 2);
  CHECK(p != NULL && pclose(p) == 0);
  for (i = 0; i < 100 && in_shm(tracked); i++) usleep(50000);
  CHECK(tracked[0] != '\0' && !in_shm(tracked));
  CHECK(untracked[0] != '\0' && in_shm(untracked));
  m = luashm_mem_attach(untracked, err, sizeof err);
  CHECK(m != NULL && luashm_mem_unlink(m, err, sizeof err) == 0);
  luashm_mem_close(m);
}

int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "leak") == 0) return leak_and_exit();
  test_tracker(argv[0]);
  test_create_attach_unlink();
  test_close_never_unlinks();
  test_errors();
  test_0d_array_is_refused_as_in_lua();
  test_lua_side();
  return verdict("embed_api");
}
