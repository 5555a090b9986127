/*
** The Dict (shm.dict): OpenResty's lua_shared_dict for forked workers, a hash table of string
** keys and scalar values in its own self-describing block (kind "dict"). The engine is plain C
** in core/zone.c (stripes, undo log, allocator, LRU, expiry); this file is the Lua type: argument
** checks, values in and out, errors, the kind. No Lua call is ever made while a stripe is locked:
** the engine locks and unlocks inside each call, and values are copied out before they are
** pushed.
*/
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "kinds.h"
#include "sync.h"
#include "zone.h"

#define LUASHM_DICT "luashm.Dict"
#define DICT_VERSION 1
#define DEFAULT_CAPACITY (1 << 20)
#define SMALL_VALUE 512     /* a string value up to this is read into the C stack */
#define SMALL_SNAPSHOT 4096 /* keys and totable start with this much C stack */
#define KEYTEXT_MAX 40      /* bytes of a key quoted in an error */

typedef struct dict {
  luashm_object head;
  zone z; /* the geometry, checked at open; z.base is valid while the Block is open */
} dict;

static dict *todict(lua_State *L, int i) {
  return (dict *)luashm_tokind(L, i, &luashm_kind_dict);
}

/* The gate of every method: a dict whose Block is open. */
static dict *checkdict(lua_State *L, int i) {
  dict *d = todict(L, i);
  if (LUASHM_UNLIKELY(d->head.b->data == NULL))
    luashm_error(L, "dict '%s' is closed", d->head.b->name);
  return d;
}

/* ---------------------------------------------------------------------------------------
** Arguments
** ------------------------------------------------------------------------------------- */

/* Pushes a key as an error shows it: printable bytes as they are, others as \xNN, at most
   KEYTEXT_MAX bytes of it. */
static const char *keytext(lua_State *L, const char *k, size_t len) {
  luaL_Buffer b;
  size_t i, n = len > KEYTEXT_MAX ? KEYTEXT_MAX : len;
  luaL_buffinit(L, &b);
  for (i = 0; i < n; i++) {
    unsigned char c = (unsigned char)k[i];
    if (c >= 32 && c < 127 && c != '\\' && c != '\'') {
      luaL_addchar(&b, (char)c);
    } else {
      char esc[8];
      snprintf(esc, sizeof esc, "\\x%02x", c);
      luaL_addstring(&b, esc);
    }
  }
  if (n < len) luaL_addstring(&b, "...");
  luaL_pushresult(&b);
  return lua_tostring(L, -1);
}

/* How an argument shows in an error: a number as itself, anything else by its type. */
static const char *argtext(lua_State *L, int i) {
  if (lua_type(L, i) == LUA_TNUMBER) return luaL_tolstring(L, i, NULL);
  return lua_isnone(L, i) ? "nil" : luaL_typename(L, i);
}

/* The key at i: a string of 1..ZONE_KEY_MAX bytes. */
static const char *checkkey(lua_State *L, dict *d, int i, const char *op, size_t *len) {
  const char *k;
  if (lua_type(L, i) != LUA_TSTRING)
    luashm_error(L, "%s '%s': key must be a string, not %s", op, d->head.b->name,
                 lua_isnone(L, i) ? "nil" : luaL_typename(L, i));
  k = lua_tolstring(L, i, len);
  if (*len == 0) luashm_error(L, "%s '%s': key is empty", op, d->head.b->name);
  if (*len > ZONE_KEY_MAX)
    luashm_error(L, "%s '%s': key of %I bytes is longer than %d bytes", op, d->head.b->name,
                 (lua_Integer)*len, ZONE_KEY_MAX);
  return k;
}

/* The number at i (checked by the caller) as a value: integers and floats kept apart. */
static void number_value(lua_State *L, int i, zone_value *v) {
  if (lua_isinteger(L, i)) {
    v->type = ZONE_INT;
    v->i = (int64_t)lua_tointeger(L, i);
  } else {
    v->type = ZONE_FLOAT;
    v->f = (double)lua_tonumber(L, i);
  }
}

/* The value at i (nil only when nil_ok: it deletes). */
static void checkvalue(lua_State *L, dict *d, int i, const char *op, const char *k, size_t klen,
                       int nil_ok, zone_value *v) {
  memset(v, 0, sizeof *v);
  switch (lua_type(L, i)) {
    case LUA_TBOOLEAN:
      v->type = ZONE_BOOL;
      v->i = lua_toboolean(L, i);
      return;
    case LUA_TNUMBER: number_value(L, i, v); return;
    case LUA_TSTRING:
      v->type = ZONE_STR;
      v->s = lua_tolstring(L, i, &v->len);
      return;
    case LUA_TNIL:
    case LUA_TNONE:
      if (nil_ok) return;
      luashm_error(L, "%s '%s': value of key '%s' is nil (%s needs a value; delete removes)", op,
                   d->head.b->name, keytext(L, k, klen), op);
      return;
    default: break;
  }
  luashm_error(L, "%s '%s': value of key '%s' is a %s (a dict holds booleans, numbers and strings)",
               op, d->head.b->name, keytext(L, k, klen), luaL_typename(L, i));
}

/* A number argument at i (an increment, an initial value). */
static void checknumber(lua_State *L, dict *d, int i, const char *op, const char *what,
                        const char *k, size_t klen, zone_value *v) {
  memset(v, 0, sizeof *v);
  if (lua_type(L, i) != LUA_TNUMBER)
    luashm_error(L, "%s '%s': %s for key '%s' must be a number, not %s", op, d->head.b->name, what,
                 keytext(L, k, klen), argtext(L, i));
  number_value(L, i, v);
}

/* A time to live at i, in nanoseconds: absent, nil or 0 for none; longer than
   LUASHM_TIMEOUT_MAX seconds (math.huge) is none too, as for a timeout. */
static int64_t checkttl(lua_State *L, dict *d, int i, const char *op, const char *k, size_t klen,
                        int required) {
  lua_Number t;
  if (!required && lua_isnoneornil(L, i)) return 0;
  t = lua_type(L, i) == LUA_TNUMBER ? lua_tonumber(L, i) : -1;
  if (!(t >= 0))
    luashm_error(L,
                 "%s '%s': ttl for key '%s' must be a number of seconds >= 0 (0: never "
                 "expires), not %s",
                 op, d->head.b->name, keytext(L, k, klen), argtext(L, i));
  if (t == 0 || t > LUASHM_TIMEOUT_MAX) return 0;
  t = ceil(t * 1e9);
  return t < 1 ? 1 : (int64_t)t;
}

/* An optional count at i: absent, nil or 0 for all. */
static uint64_t checkmax(lua_State *L, dict *d, int i, const char *op) {
  lua_Integer n;
  int isint;
  if (lua_isnoneornil(L, i)) return 0;
  n = lua_tointegerx(L, i, &isint);
  if (lua_type(L, i) != LUA_TNUMBER || !isint || n < 0)
    luashm_error(L, "%s '%s': max must be an integer >= 0 (0: all), not %s", op, d->head.b->name,
                 argtext(L, i));
  return (uint64_t)n;
}

/* ---------------------------------------------------------------------------------------
** Outcomes of the engine
** ------------------------------------------------------------------------------------- */

/* Raises the error of a failed engine call (its locks are already released). */
static int dict_fail(lua_State *L, dict *d, const char *op, int rc) {
  const char *name = d->head.b->name;
  if (rc == ZONE_INTR) return luashm_interrupted(L);
  if (rc == ZONE_LOCKFAIL)
    return luashm_error(L,
                        "%s '%s': the lock of stripe %d is not a valid mutex (the block was "
                        "overwritten)",
                        op, name, d->z.shard);
  if (rc == ZONE_CORRUPT)
    return luashm_error(L, "%s '%s': dict is corrupted (stripe %d: %s)", op, name, d->z.shard,
                        d->z.why ? d->z.why : "?");
  return luashm_error(L, "%s '%s': unexpected outcome %d", op, name, rc);
}

static void push_value(lua_State *L, const zone_value *v) {
  switch (v->type) {
    case ZONE_BOOL: lua_pushboolean(L, (int)v->i); break;
    case ZONE_INT: lua_pushinteger(L, (lua_Integer)v->i); break;
    case ZONE_FLOAT: lua_pushnumber(L, (lua_Number)v->f); break;
    case ZONE_STR: lua_pushlstring(L, v->s, v->len); break;
    default: lua_pushnil(L); break;
  }
}

static const char *type_name(int type) {
  static const char *const names[] = {"nil", "a boolean", "an integer", "a float", "a string"};
  return type >= ZONE_NIL && type <= ZONE_STR ? names[type] : "?";
}

/* ---------------------------------------------------------------------------------------
** Constructor, shm.open, the block tool
** ------------------------------------------------------------------------------------- */

/* Replaces the Block at the top of the stack with a Dict over it, checking its geometry. */
static int dict_wrap(lua_State *L, int view) {
  luashm_block *b = luashm_toblock(L, -1);
  const char *why = NULL;
  dict *d;
  zone z;
  (void)view;
  if (!luashm_header_is(b->data, b->size, "dict", DICT_VERSION))
    return luashm_error(L, "open '%s': not a dict", b->name);
  if (zone_open(&z, b->data + LUASHM_HEADER_SIZE, b->size - LUASHM_HEADER_SIZE, &why) != 0)
    return luashm_error(L, "open '%s': malformed dict (%s)", b->name, why);
  d = (dict *)lua_newuserdatauv(L, sizeof(dict), 1);
  d->head.kind = &luashm_kind_dict;
  d->head.b = b;
  d->z = z;
  luaL_setmetatable(L, LUASHM_DICT);
  lua_insert(L, -2);
  lua_setiuservalue(L, -2, 1);
  return 1;
}

/* A block with the dict header is a dict, whatever its size: a truncated or forged one is then
   an error at open (dict_wrap), not a plain Block. */
static int dict_probe(const unsigned char *p, size_t size) {
  return luashm_header_is(p, size, "dict", DICT_VERSION);
}

static void dict_describe(const unsigned char *p, size_t size, char *out, size_t n) {
  uint64_t entries, used;
  if (zone_peek((unsigned char *)p + LUASHM_HEADER_SIZE, size - LUASHM_HEADER_SIZE, &entries,
                &used) != 0)
    snprintf(out, n, "dict (malformed)");
  else
    snprintf(out, n, "dict, %llu keys, %llu of %llu bytes used", (unsigned long long)entries,
             (unsigned long long)used, (unsigned long long)(size - LUASHM_HEADER_SIZE));
}

static const char *const dict_options[] = {LUASHM_BLOCK_OPTIONS, "capacity", NULL};

static int dict_new(lua_State *L) {
  lua_Integer cap = DEFAULT_CAPACITY, min = (lua_Integer)zone_min_capacity();
  int hasopts = luashm_checkoptions(L, 1, "dict", dict_options);
  luashm_block *b;
  if (hasopts && lua_getfield(L, 1, "capacity") != LUA_TNIL) {
    int isint;
    cap = lua_tointegerx(L, -1, &isint);
    if (lua_type(L, -1) != LUA_TNUMBER || !isint || cap <= 0)
      return luashm_error(L,
                          "dict: opts.capacity must be a positive integer (bytes of the zone), "
                          "not %s",
                          luaL_tolstring(L, -1, NULL));
    if (cap < min)
      return luashm_error(L,
                          "dict: capacity %I bytes is too small for the dict's own index "
                          "(at least %I bytes)",
                          cap, min);
    if ((uint64_t)cap > ZONE_CAPACITY_MAX)
      return luashm_error(L, "dict: capacity %I bytes is larger than %I bytes", cap,
                          (lua_Integer)ZONE_CAPACITY_MAX);
  }
  lua_settop(L, 1);
  b = luashm_block_new(L, (size_t)cap + LUASHM_HEADER_SIZE, hasopts ? 1 : 0);
  if (zone_format(b->data + LUASHM_HEADER_SIZE, (uint64_t)cap) != 0) {
    char ignored[LUASHM_ERRLEN];
    luashm_block_unlink(b, ignored);
    return luashm_error(L, "dict '%s': cannot make its locks", b->name);
  }
  luashm_header_init(b->data, "dict", DICT_VERSION);
  return dict_wrap(L, 0);
}

/* ---------------------------------------------------------------------------------------
** Methods
** ------------------------------------------------------------------------------------- */

static int dict_get(lua_State *L) {
  dict *d = checkdict(L, 1);
  size_t klen, cap = SMALL_VALUE, need = 0;
  const char *k = checkkey(L, d, 2, "get", &klen);
  char small[SMALL_VALUE], *buf = small;
  zone_value v;
  int stale, rc;
  lua_settop(L, 2);
  /* A string larger than the buffer: a buffer of its size, and again (it may have grown). */
  while ((rc = zone_get(&d->z, k, klen, &v, buf, cap, &need, &stale)) == ZONE_SMALLBUF) {
    lua_settop(L, 2);
    buf = (char *)lua_newuserdatauv(L, need, 0);
    cap = need;
    d = checkdict(L, 1);
  }
  if (rc == ZONE_OK) {
    push_value(L, &v);
    return 1;
  }
  if (rc != ZONE_NOTFOUND) return dict_fail(L, d, "get", rc);
  lua_pushnil(L);
  if (!stale) return 1;
  lua_pushboolean(L, 1);
  return 2;
}

/* set, safe_set, add, replace. */
static int dict_store(lua_State *L, int how, const char *op) {
  dict *d = checkdict(L, 1);
  size_t klen;
  const char *k = checkkey(L, d, 2, op, &klen);
  zone_value v;
  int64_t ttl;
  int evicted, rc;
  checkvalue(L, d, 3, op, k, klen, how == ZONE_SET || how == ZONE_SAFE_SET, &v);
  ttl = checkttl(L, d, 4, op, k, klen, 0);
  if (v.type != ZONE_NIL && (v.type == ZONE_STR ? v.len : 8) > zone_max_value(&d->z, klen))
    return luashm_error(L,
                        "%s '%s': key '%s' with a value of %I bytes can never fit (an entry of "
                        "this key holds at most %I bytes; make the dict larger with "
                        "opts.capacity)",
                        op, d->head.b->name, keytext(L, k, klen),
                        (lua_Integer)(v.type == ZONE_STR ? v.len : 8),
                        (lua_Integer)zone_max_value(&d->z, klen));
  rc = zone_store(&d->z, how, k, klen, &v, ttl, &evicted);
  if (rc == ZONE_OK) {
    lua_pushboolean(L, 1);
    if (!evicted) return 1;
    lua_pushboolean(L, 1);
    return 2;
  }
  if (rc == ZONE_EXISTS || rc == ZONE_NOTFOUND) {
    lua_pushboolean(L, 0);
    lua_pushstring(L, rc == ZONE_EXISTS ? "exists" : "not found");
    return 2;
  }
  if (rc == ZONE_NOMEM && how == ZONE_SAFE_SET) {
    lua_pushnil(L);
    lua_pushliteral(L, "no memory");
    return 2;
  }
  if (rc == ZONE_NOMEM)
    return luashm_error(L, "%s '%s': no room for key '%s' even after evicting every entry", op,
                        d->head.b->name, keytext(L, k, klen));
  return dict_fail(L, d, op, rc);
}

static int dict_set(lua_State *L) {
  return dict_store(L, ZONE_SET, "set");
}

static int dict_safe_set(lua_State *L) {
  return dict_store(L, ZONE_SAFE_SET, "safe_set");
}

static int dict_add(lua_State *L) {
  return dict_store(L, ZONE_ADD, "add");
}

static int dict_replace(lua_State *L) {
  return dict_store(L, ZONE_REPLACE, "replace");
}

static int dict_incr(lua_State *L) {
  dict *d = checkdict(L, 1);
  size_t klen;
  const char *k = checkkey(L, d, 2, "incr", &klen);
  zone_value n, init, out;
  int64_t ttl;
  int has_init = !lua_isnoneornil(L, 4), evicted, rc;
  checknumber(L, d, 3, "incr", "increment", k, klen, &n);
  if (has_init) checknumber(L, d, 4, "incr", "init", k, klen, &init);
  ttl = checkttl(L, d, 5, "incr", k, klen, 0);
  rc = zone_incr(&d->z, k, klen, &n, has_init ? &init : NULL, ttl, &out, &evicted);
  if (rc == ZONE_OK) {
    push_value(L, &out);
    return 1;
  }
  if (rc == ZONE_NOTFOUND) {
    lua_pushnil(L);
    lua_pushliteral(L, "not found");
    return 2;
  }
  if (rc == ZONE_NOTNUM)
    return luashm_error(L, "incr '%s': value of key '%s' is %s, not a number", d->head.b->name,
                        keytext(L, k, klen), type_name(out.type));
  return dict_fail(L, d, "incr", rc);
}

static int dict_delete(lua_State *L) {
  dict *d = checkdict(L, 1);
  size_t klen;
  const char *k = checkkey(L, d, 2, "delete", &klen);
  zone_value nil;
  int evicted, rc;
  memset(&nil, 0, sizeof nil);
  rc = zone_store(&d->z, ZONE_SET, k, klen, &nil, 0, &evicted);
  if (rc != ZONE_OK) return dict_fail(L, d, "delete", rc);
  lua_pushboolean(L, 1);
  return 1;
}

static int dict_flush_all(lua_State *L) {
  dict *d = checkdict(L, 1);
  int rc = zone_flush_all(&d->z);
  if (rc != ZONE_OK) return dict_fail(L, d, "flush_all", rc);
  return 0;
}

static int dict_flush_expired(lua_State *L) {
  dict *d = checkdict(L, 1);
  uint64_t max = checkmax(L, d, 2, "flush_expired"), n;
  int rc = zone_flush_expired(&d->z, max, &n);
  if (rc != ZONE_OK) return dict_fail(L, d, "flush_expired", rc);
  lua_pushinteger(L, (lua_Integer)n);
  return 1;
}

static int dict_ttl(lua_State *L) {
  dict *d = checkdict(L, 1);
  size_t klen;
  const char *k = checkkey(L, d, 2, "ttl", &klen);
  int64_t left;
  int rc = zone_ttl(&d->z, k, klen, &left);
  if (rc == ZONE_NOTFOUND) {
    lua_pushnil(L);
    lua_pushliteral(L, "not found");
    return 2;
  }
  if (rc != ZONE_OK) return dict_fail(L, d, "ttl", rc);
  if (left == 0)
    lua_pushinteger(L, 0);
  else
    lua_pushnumber(L, (lua_Number)(left > 0 ? left : 1) / 1e9);
  return 1;
}

static int dict_expire(lua_State *L) {
  dict *d = checkdict(L, 1);
  size_t klen;
  const char *k = checkkey(L, d, 2, "expire", &klen);
  int64_t ttl = checkttl(L, d, 3, "expire", k, klen, 1);
  int rc = zone_expire(&d->z, k, klen, ttl);
  if (rc == ZONE_NOTFOUND) {
    lua_pushnil(L);
    lua_pushliteral(L, "not found");
    return 2;
  }
  if (rc != ZONE_OK) return dict_fail(L, d, "expire", rc);
  lua_pushboolean(L, 1);
  return 1;
}

/* Pushes a table of the live entries (keys as a sequence, or key -> value) from a snapshot
   taken with every stripe locked, into a buffer sized by a first try. */
static int dict_snapshot(lua_State *L, const char *op, int values, uint64_t max) {
  dict *d = checkdict(L, 1);
  unsigned char small[SMALL_SNAPSHOT], *buf = small;
  size_t cap = sizeof small, used = 0, need = 0, pos;
  uint64_t count = 0, i;
  int rc, top = lua_gettop(L);
  while ((rc = zone_snapshot(&d->z, values, max, buf, cap, &used, &need, &count)) ==
         ZONE_SMALLBUF) {
    lua_settop(L, top);
    cap = need + need / 4 + 64; /* room for what others add meanwhile */
    buf = (unsigned char *)lua_newuserdatauv(L, cap, 0);
    d = checkdict(L, 1);
  }
  if (rc != ZONE_OK) return dict_fail(L, d, op, rc);
  lua_createtable(L, values ? 0 : (int)count, values ? (int)count : 0);
  for (i = 0, pos = 0; i < count && pos + 4 <= used; i++) {
    uint32_t klen, vlen;
    zone_value v;
    memcpy(&klen, buf + pos, 4);
    lua_pushlstring(L, (const char *)buf + pos + 4, klen);
    pos += 4 + klen;
    if (!values) {
      lua_rawseti(L, -2, (lua_Integer)i + 1);
      continue;
    }
    memset(&v, 0, sizeof v);
    v.type = buf[pos];
    memcpy(&vlen, buf + pos + 1, 4);
    if (v.type == ZONE_STR) {
      v.s = (const char *)buf + pos + 5;
      v.len = vlen;
    } else if (v.type == ZONE_BOOL) {
      v.i = buf[pos + 5];
    } else if (v.type == ZONE_INT) {
      memcpy(&v.i, buf + pos + 5, 8);
    } else {
      memcpy(&v.f, buf + pos + 5, 8);
    }
    push_value(L, &v);
    lua_rawset(L, -3);
    pos += 5 + vlen;
  }
  if (lua_gettop(L) > top + 1) lua_replace(L, top + 1); /* over the buffer userdata */
  return 1;
}

static int dict_keys(lua_State *L) {
  dict *d = checkdict(L, 1);
  return dict_snapshot(L, "keys", 0, checkmax(L, d, 2, "keys"));
}

static int dict_totable(lua_State *L) {
  return dict_snapshot(L, "totable", 1, 0);
}

/* The iterator of pairs(d): next over the snapshot table. */
static int dict_next(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 2);
  if (lua_next(L, 1)) return 2;
  lua_pushnil(L);
  return 1;
}

/* pairs(d): iteration over a snapshot (the table totable makes). */
static int dict_pairs(lua_State *L) {
  checkdict(L, 1);
  lua_settop(L, 1);
  lua_pushcfunction(L, dict_next);
  dict_snapshot(L, "pairs", 1, 0);
  lua_pushnil(L);
  return 3;
}

/* count and free_space: a figure of the whole zone, every stripe locked. */
static int dict_figure(lua_State *L, const char *op, int (*figure)(zone *z, uint64_t *n)) {
  dict *d = checkdict(L, 1);
  uint64_t n;
  int rc = figure(&d->z, &n);
  if (rc != ZONE_OK) return dict_fail(L, d, op, rc);
  lua_pushinteger(L, (lua_Integer)n);
  return 1;
}

static int dict_count(lua_State *L) {
  return dict_figure(L, "count", zone_count);
}

static int dict_free_space(lua_State *L) {
  return dict_figure(L, "free_space", zone_free_space);
}

static int dict_capacity(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)checkdict(L, 1)->z.capacity);
  return 1;
}

/* d:_check(): walks the whole zone (every stripe locked, so recovered first) and verifies every
   invariant: true and a table of figures, or false and the first violation. For the tests. */
static int dict_check(lua_State *L) {
  dict *d = checkdict(L, 1);
  zone_stats st;
  int rc = zone_check(&d->z, &st);
  if (rc == ZONE_CORRUPT) {
    lua_pushboolean(L, 0);
    lua_pushfstring(L, "stripe %d: %s", d->z.shard, d->z.why ? d->z.why : "?");
    return 2;
  }
  if (rc != ZONE_OK) return dict_fail(L, d, "_check", rc);
  lua_pushboolean(L, 1);
  lua_createtable(L, 0, 5);
  lua_pushinteger(L, (lua_Integer)st.entries);
  lua_setfield(L, -2, "entries");
  lua_pushinteger(L, (lua_Integer)st.free_bytes);
  lua_setfield(L, -2, "free_bytes");
  lua_pushinteger(L, (lua_Integer)st.recovered);
  lua_setfield(L, -2, "recovered");
  lua_pushinteger(L, (lua_Integer)st.evicted);
  lua_setfield(L, -2, "evicted");
  lua_pushinteger(L, (lua_Integer)st.shards);
  lua_setfield(L, -2, "stripes");
  return 2;
}

/* d:_crash_after(n): the fault-injection point of the robustness tests. This process kills
   itself with SIGKILL at the n-th crash point (a logged store, a commit, the middle of a
   copy...) of the dict operations it runs from now on; 0 disarms. Returns the crash points
   passed since the previous call (arm with a large n to count an operation's points). */
static int dict_crash_after(lua_State *L) {
  lua_Integer n;
  checkdict(L, 1);
  n = luaL_checkinteger(L, 2);
  if (n < 0) return luashm_error(L, "_crash_after: n must be >= 0, not %I", n);
  lua_pushinteger(L, (lua_Integer)zone_crash_after((long)n));
  return 1;
}

/* Releases this process's mapping (never the dict itself). Idempotent. */
static int dict_close(lua_State *L) {
  luashm_block_close(todict(L, 1)->head.b);
  return 0;
}

static int dict_tostring(lua_State *L) {
  dict *d = todict(L, 1);
  uint64_t entries, used;
  if (d->head.b->data == NULL)
    lua_pushfstring(L, "luashm.Dict '%s' (closed)", d->head.b->name);
  else if (zone_peek(d->z.base, d->z.capacity, &entries, &used) != 0)
    lua_pushfstring(L, "luashm.Dict '%s' (malformed)", d->head.b->name);
  else
    lua_pushfstring(L, "luashm.Dict '%s' (%I keys, %I of %I bytes used)", d->head.b->name,
                    (lua_Integer)entries, (lua_Integer)used, (lua_Integer)d->z.capacity);
  return 1;
}

/* Methods first (upvalue 1), then the contract's fields. */
static int dict_index(lua_State *L) {
  const char *k;
  lua_pushvalue(L, 2);
  if (lua_rawget(L, lua_upvalueindex(1)) != LUA_TNIL) return 1;
  k = lua_tostring(L, 2);
  if (k == NULL || lua_type(L, 2) != LUA_TSTRING) return 1;
  todict(L, 1);
  if (!luashm_object_field(L, 1, k)) lua_pushnil(L);
  return 1;
}

static const luaL_Reg dict_meth[] = {{"get", dict_get},
                                     {"set", dict_set},
                                     {"safe_set", dict_safe_set},
                                     {"add", dict_add},
                                     {"replace", dict_replace},
                                     {"incr", dict_incr},
                                     {"delete", dict_delete},
                                     {"flush_all", dict_flush_all},
                                     {"flush_expired", dict_flush_expired},
                                     {"ttl", dict_ttl},
                                     {"expire", dict_expire},
                                     {"keys", dict_keys},
                                     {"count", dict_count},
                                     {"totable", dict_totable},
                                     {"capacity", dict_capacity},
                                     {"free_space", dict_free_space},
                                     {"close", dict_close},
                                     {"unlink", luashm_object_unlink},
                                     {"_check", dict_check},
                                     {"_crash_after", dict_crash_after},
                                     {NULL, NULL}};

static const luaL_Reg dict_metameth[] = {
    {"__close", dict_close}, {"__tostring", dict_tostring}, {"__pairs", dict_pairs}, {NULL, NULL}};

static void dict_open(lua_State *L) {
  luashm_newkind(L, &luashm_kind_dict, dict_meth, dict_metameth, dict_index);
  lua_pushcfunction(L, dict_new);
  lua_setfield(L, -2, "dict");
}

const luashm_kind luashm_kind_dict = {"dict",    LUASHM_DICT, "dict",        dict_probe,
                                      dict_wrap, NULL,        dict_describe, dict_open};
