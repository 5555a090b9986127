/*
** The value codec shared by channels and workers (see codec.h for the contract).
**
** Format (native byte order: both ends are on this machine):
**   message = version:u8 count:varint value*count
**   value   = NIL | FALSE | TRUE | INT zigzag-varint | FLOAT f64 | STR varint bytes
**           | TABLE narr:varint value*narr (key value)* NIL     array part t[1..narr], then the
**                                                              other pairs, ended by a NIL key
**           | REF name:str kind:str view:value                 a luashm object by name
**           | REFID name:str kind:str dev ino size:varint view  the same, with the identity of
**                                                              the sender's block (mapcache.h)
**           | VAL kind:str view:value                          a private object (no block), by
**                                                              value: all of it is in view
** Tables are copied without metatables; a table reachable twice (not a cycle) is copied twice,
** up to LUASHM_CODEC_MAXREPEAT repeated copies per message: a few shared tables nested in each
** other would otherwise make a copy exponential in their number.
*/
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "codec.h"
#include "kinds.h"
#include "mapcache.h"

#define CODEC_VERSION 1
#define CODEC_INIT 512 /* bytes encoded on the C stack before a growable box is needed */
#define SET_INIT 64    /* tables seen, tracked on the C stack before a growable set is needed */

enum { T_NIL, T_FALSE, T_TRUE, T_INT, T_FLOAT, T_STR, T_TABLE, T_REF, T_REFID, T_VAL };

/* ---------------------------------------------------------------------------------------
** Encoding
** ------------------------------------------------------------------------------------- */

/* Where the encoder is inside the values, for error messages: per table level, the key being
   encoded (a stack index, or an array index when keyidx is 0), or the key itself (iskey). */
typedef struct enc_level {
  int keyidx;
  int iskey;
  lua_Integer ikey;
  const void *table; /* the table of this level, for cycle detection */
} enc_level;

typedef struct enc {
  lua_State *L;
  const char *op;
  unsigned char *p; /* init, or the box at boxidx once it grew */
  size_t n, cap;
  size_t max; /* the caller's limit on n */
  size_t lim; /* min(cap, max): the one bound the hot path compares with */
  luashm_toobig toobig;
  void *ud;
  int boxidx;
  int nvals, argi; /* how many top-level values; which one is being encoded */
  int depth;
  /* The tables met so far (an open-addressing set of their addresses: setinit, or the
     userdata at setidx once it grew) and how many times one was met again. */
  const void **set;
  size_t setcap, setn, repeats;
  int setidx;
  enc_level lvl[LUASHM_CODEC_MAXDEPTH];
  unsigned char init[CODEC_INIT];
  const void *setinit[SET_INIT];
} enc;

/* Anchors the grown box while it is copied into the caller's buffer (no Lua code runs then, so
   one key serves every state). */
static const char box_anchor = 0;

/* Grows the buffer to hold k more bytes, or stops the encoding once it would pass the
   caller's limit: a new userdata replaces the old one at boxidx, so an error anywhere leaves
   only garbage for the collector, never a leak. */
static void enc_grow(enc *e, size_t k) {
  size_t cap = e->cap;
  unsigned char *np;
  if (k > e->max - e->n) {
    if (e->toobig != NULL) e->toobig(e->L, e->n + k, e->ud);
    luashm_error(e->L, "%s: message is larger than %I bytes", e->op, (lua_Integer)e->max);
  }
  if (k > SIZE_MAX / 2 - e->n) luashm_error(e->L, "%s: message is too large", e->op);
  if (e->cap - e->n < k) {
    while (cap - e->n < k) cap *= 2;
    np = (unsigned char *)lua_newuserdatauv(e->L, cap, 0);
    memcpy(np, e->p, e->n);
    lua_replace(e->L, e->boxidx);
    e->p = np;
    e->cap = cap;
  }
  e->lim = e->cap < e->max ? e->cap : e->max;
}

static inline void enc_need(enc *e, size_t k) {
  if (LUASHM_UNLIKELY(e->lim - e->n < k)) enc_grow(e, k);
}

static inline void enc_byte(enc *e, unsigned char c) {
  enc_need(e, 1);
  e->p[e->n++] = c;
}

/* Exactly the bytes the varint takes, so that the limit is exact too. */
static inline void enc_varint(enc *e, uint64_t u) {
  enc_need(e, (size_t)(63 - __builtin_clzll(u | 1)) / 7 + 1);
  while (u >= 0x80) {
    e->p[e->n++] = (unsigned char)(u | 0x80);
    u >>= 7;
  }
  e->p[e->n++] = (unsigned char)u;
}

static void enc_bytes(enc *e, const char *s, size_t len) {
  enc_varint(e, len);
  enc_need(e, len);
  memcpy(e->p + e->n, s, len);
  e->n += len;
}

/* Pushes the path fragment of one table level: ".name", "[3]", "[\"a b\"]", "[<key>]". */
static void push_fragment(lua_State *L, const enc_level *lv) {
  size_t len, i;
  const char *s;
  if (lv->iskey) {
    lua_pushliteral(L, "[<key>]");
    return;
  }
  if (lv->keyidx == 0) {
    lua_pushfstring(L, "[%I]", lv->ikey);
    return;
  }
  switch (lua_type(L, lv->keyidx)) {
    case LUA_TSTRING:
      s = lua_tolstring(L, lv->keyidx, &len);
      for (i = 0; i < len; i++)
        if (!(s[i] == '_' || (s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
              (i > 0 && s[i] >= '0' && s[i] <= '9')))
          break;
      if (len > 0 && i == len)
        lua_pushfstring(L, ".%s", s);
      else
        lua_pushfstring(L, "[\"%s\"]", s);
      break;
    case LUA_TNUMBER:
      if (lua_isinteger(L, lv->keyidx))
        lua_pushfstring(L, "[%I]", lua_tointeger(L, lv->keyidx));
      else
        lua_pushfstring(L, "[%f]", lua_tonumber(L, lv->keyidx));
      break;
    case LUA_TBOOLEAN:
      lua_pushstring(L, lua_toboolean(L, lv->keyidx) ? "[true]" : "[false]");
      break;
    default: lua_pushfstring(L, "[%s]", luaL_typename(L, lv->keyidx));
  }
}

/* Raises "luashm: <op>: value[ #i][ at <path>] <what>". */
static void enc_fail(enc *e, const char *what) {
  lua_State *L = e->L;
  int i;
  luaL_checkstack(L, 8, "error message");
  lua_pushfstring(L, "luashm: %s: value", e->op);
  if (e->nvals > 1) {
    lua_pushfstring(L, " #%d", e->argi);
    lua_concat(L, 2);
  }
  if (e->depth > 0) {
    lua_pushliteral(L, " at ");
    lua_concat(L, 2);
  }
  for (i = 0; i < e->depth; i++) {
    if (e->depth > 12 && i == 6) { /* a path through a deep nest: its ends say enough */
      lua_pushliteral(L, "...");
      lua_concat(L, 2);
      i = e->depth - 4;
    }
    push_fragment(L, &e->lvl[i]);
    lua_concat(L, 2);
  }
  lua_pushfstring(L, " %s", what);
  lua_concat(L, 2);
  lua_error(L);
}

static void enc_value(enc *e, int idx);

static inline size_t set_slot(const void *t, size_t cap) {
  return (size_t)(((uintptr_t)t >> 4) * 0x9E3779B97F4A7C15ULL >> 32) & (cap - 1);
}

/* Doubles the set of tables met (a new userdata at setidx, as the buffer grows). */
static void set_grow(enc *e) {
  size_t cap = e->setcap * 2, i, j;
  const void **ns = (const void **)lua_newuserdatauv(e->L, cap * sizeof *ns, 0);
  memset(ns, 0, cap * sizeof *ns);
  for (i = 0; i < e->setcap; i++) {
    if (e->set[i] == NULL) continue;
    for (j = set_slot(e->set[i], cap); ns[j] != NULL; j = (j + 1) & (cap - 1)) continue;
    ns[j] = e->set[i];
  }
  lua_replace(e->L, e->setidx);
  e->set = ns;
  e->setcap = cap;
}

/* Records table t as met; a table met before is a repeated copy, and too many are an error. */
static void enc_seen(enc *e, const void *t) {
  size_t i;
  if (e->setcap == 0) { /* the first table: most messages have none, and pay nothing */
    memset(e->setinit, 0, sizeof e->setinit);
    e->setcap = SET_INIT;
  }
  for (i = set_slot(t, e->setcap); e->set[i] != NULL; i = (i + 1) & (e->setcap - 1)) {
    if (e->set[i] != t) continue;
    if (++e->repeats > LUASHM_CODEC_MAXREPEAT)
      enc_fail(e, lua_pushfstring(e->L,
                                  "repeats shared tables too often (more than %d copies of "
                                  "tables reachable more than once; each reference is copied)",
                                  LUASHM_CODEC_MAXREPEAT));
    return;
  }
  e->set[i] = t;
  if (++e->setn * 2 > e->setcap) set_grow(e);
}

static void enc_table(enc *e, int idx) {
  lua_State *L = e->L;
  const void *t = lua_topointer(L, idx);
  lua_Integer narr, i;
  int d;
  for (d = 0; d < e->depth; d++)
    if (e->lvl[d].table == t) enc_fail(e, "is a cycle (a table that contains itself)");
  enc_seen(e, t);
  if (e->depth >= LUASHM_CODEC_MAXDEPTH)
    enc_fail(e, lua_pushfstring(L, "is nested too deep (more than %d levels of tables)",
                                LUASHM_CODEC_MAXDEPTH));
  luaL_checkstack(L, 8, "value codec");
  d = e->depth++;
  e->lvl[d].table = t;
  e->lvl[d].iskey = 0;
  enc_byte(e, T_TABLE);
  for (narr = 0; lua_rawgeti(L, idx, narr + 1) != LUA_TNIL; narr++) lua_pop(L, 1);
  lua_pop(L, 1);
  enc_varint(e, (uint64_t)narr);
  e->lvl[d].keyidx = 0;
  for (i = 1; i <= narr; i++) {
    lua_rawgeti(L, idx, i);
    e->lvl[d].ikey = i;
    enc_value(e, lua_gettop(L));
    lua_pop(L, 1);
  }
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    int top = lua_gettop(L);
    if (lua_isinteger(L, top - 1)) {
      lua_Integer k = lua_tointeger(L, top - 1);
      if (k >= 1 && k <= narr) {
        lua_pop(L, 1);
        continue;
      }
    }
    e->lvl[d].iskey = 1;
    enc_value(e, top - 1);
    e->lvl[d].iskey = 0;
    e->lvl[d].keyidx = top - 1;
    enc_value(e, top);
    lua_pop(L, 1);
  }
  enc_byte(e, T_NIL);
  e->depth--;
}

/* A luashm object travels as (name, kind, view): its Block's name, its kind's name, and what
   the kind's view() adds (a view's shape...) or nil; any other userdata is an error naming its
   type. The metatable is read raw: luashm's metatables hide themselves with __metatable. */
static void enc_userdata(enc *e, int idx) {
  lua_State *L = e->L;
  const char *tname = NULL;
  luashm_object *o;
  luaL_checkstack(L, 8, "value codec");
  if (lua_type(L, idx) == LUA_TLIGHTUSERDATA) enc_fail(e, "is a light userdata and cannot be sent");
  o = luashm_toobject(L, idx);
  if (o != NULL && o->b != NULL) {
    luashm_fileid id;
    int withid = o->b->map != NULL && luashm_mapcache_id(o->b->map, &id);
    enc_byte(e, withid ? T_REFID : T_REF);
    enc_bytes(e, o->b->name, strlen(o->b->name));
    enc_bytes(e, o->kind->name, strlen(o->kind->name));
    if (withid) {
      enc_varint(e, id.dev);
      enc_varint(e, id.ino);
      enc_varint(e, id.size);
    }
    if (o->kind->view == NULL || !o->kind->view(L, idx)) lua_pushnil(L);
    enc_value(e, lua_gettop(L));
    lua_pop(L, 1);
    return;
  }
  if (o != NULL && o->kind->view != NULL && o->kind->view(L, idx)) { /* private: by value */
    enc_byte(e, T_VAL);
    enc_bytes(e, o->kind->name, strlen(o->kind->name));
    enc_value(e, lua_gettop(L));
    lua_pop(L, 1);
    return;
  }
  if (lua_getmetatable(L, idx)) {
    lua_pushliteral(L, "__name");
    if (lua_rawget(L, -2) == LUA_TSTRING) tname = lua_tostring(L, -1);
  }
  if (tname != NULL)
    lua_pushfstring(L, "is a userdata (%s); only luashm objects can be sent", tname);
  else
    lua_pushliteral(L, "is a userdata; only luashm objects can be sent");
  enc_fail(e, lua_tostring(L, -1));
}

static void enc_value(enc *e, int idx) {
  lua_State *L = e->L;
  size_t len;
  const char *s;
  switch (lua_type(L, idx)) {
    case LUA_TNIL: enc_byte(e, T_NIL); break;
    case LUA_TBOOLEAN: enc_byte(e, lua_toboolean(L, idx) ? T_TRUE : T_FALSE); break;
    case LUA_TNUMBER:
      if (lua_isinteger(L, idx)) {
        uint64_t u = (uint64_t)lua_tointeger(L, idx);
        enc_byte(e, T_INT);
        enc_varint(e, (u << 1) ^ (uint64_t) - (int64_t)(u >> 63));
      } else {
        double f = (double)lua_tonumber(L, idx);
        enc_need(e, 1 + sizeof f);
        e->p[e->n++] = T_FLOAT;
        memcpy(e->p + e->n, &f, sizeof f);
        e->n += sizeof f;
      }
      break;
    case LUA_TSTRING:
      s = lua_tolstring(L, idx, &len);
      enc_byte(e, T_STR);
      enc_bytes(e, s, len);
      break;
    case LUA_TTABLE: enc_table(e, idx); break;
    case LUA_TUSERDATA:
    case LUA_TLIGHTUSERDATA: enc_userdata(e, idx); break;
    case LUA_TFUNCTION:
      enc_fail(e,
               "is a function; functions cannot be sent (send data, or give spawn a script path)");
      break;
    case LUA_TTHREAD: enc_fail(e, "is a thread (a coroutine) and cannot be sent"); break;
    default: enc_fail(e, "has a type that cannot be sent");
  }
}

void luashm_encode_max(lua_State *L, int first, int n, luaL_Buffer *b, const char *op, size_t max,
                       luashm_toobig toobig, void *ud) {
  enc e;
  int i;
  first = lua_absindex(L, first);
  e.L = L;
  e.op = op;
  e.p = e.init;
  e.n = 0;
  e.cap = sizeof e.init;
  e.max = max;
  e.lim = e.cap < max ? e.cap : max;
  e.toobig = toobig;
  e.ud = ud;
  e.nvals = n;
  e.depth = 0;
  e.set = e.setinit;
  e.setcap = e.setn = e.repeats = 0;
  luaL_checkstack(L, 8, "value codec");
  lua_pushnil(L); /* the box slot, above the caller's buffer slot */
  e.boxidx = lua_gettop(L);
  lua_pushnil(L); /* the set's slot */
  e.setidx = lua_gettop(L);
  enc_byte(&e, CODEC_VERSION);
  enc_varint(&e, (uint64_t)n);
  for (i = 0; i < n; i++) {
    e.argi = i + 1;
    enc_value(&e, first + i);
  }
  lua_pop(L, 1); /* the set */
  if (e.p == e.init) {
    lua_pop(L, 1);
    luaL_addlstring(b, (const char *)e.p, e.n);
  } else {
    /* The buffer's slot must be the top for luaL_addlstring: anchor the box elsewhere. */
    lua_rawsetp(L, LUA_REGISTRYINDEX, &box_anchor);
    luaL_addlstring(b, (const char *)e.p, e.n);
    lua_pushnil(L);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &box_anchor);
  }
}

void luashm_encode(lua_State *L, int first, int n, luaL_Buffer *b, const char *op) {
  luashm_encode_max(L, first, n, b, op, SIZE_MAX, NULL, NULL);
}

/* ---------------------------------------------------------------------------------------
** Decoding (untrusted bytes)
** ------------------------------------------------------------------------------------- */

typedef struct dec {
  lua_State *L;
  const char *op;
  const unsigned char *start, *p, *end;
  int depth;
} dec;

static void dec_fail(dec *d, const char *what) {
  luashm_error(d->L, "%s: malformed message at byte %I: %s", d->op, (lua_Integer)(d->p - d->start),
               what);
}

static inline size_t dec_left(const dec *d) {
  return (size_t)(d->end - d->p);
}

static uint64_t dec_varint(dec *d) {
  uint64_t u = 0;
  int shift;
  for (shift = 0; shift < 64; shift += 7) {
    unsigned char c;
    if (d->p == d->end) dec_fail(d, "truncated number");
    c = *d->p++;
    if (shift == 63 && c > 1) dec_fail(d, "number overflows 64 bits");
    u |= (uint64_t)(c & 0x7f) << shift;
    if (c < 0x80) return u;
  }
  dec_fail(d, "number overflows 64 bits");
  return 0;
}

/* A length-prefixed byte string, checked against what is left. */
static const char *dec_bytes(dec *d, size_t *len) {
  const char *s;
  uint64_t u = dec_varint(d);
  if (u > dec_left(d)) dec_fail(d, "string runs past the end");
  s = (const char *)d->p;
  d->p += u;
  *len = (size_t)u;
  return s;
}

static void dec_value(dec *d);

static void dec_table(dec *d) {
  lua_State *L = d->L;
  uint64_t narr, i;
  if (d->depth >= LUASHM_CODEC_MAXDEPTH) dec_fail(d, "tables nested too deep");
  narr = dec_varint(d);
  if (narr > dec_left(d)) dec_fail(d, "array part longer than the message");
  d->depth++;
  lua_createtable(L, narr > INT32_MAX ? INT32_MAX : (int)narr, 0);
  for (i = 1; i <= narr; i++) {
    dec_value(d);
    lua_rawseti(L, -2, (lua_Integer)i);
  }
  for (;;) {
    if (d->p == d->end) dec_fail(d, "unterminated table");
    if (*d->p == T_NIL) break;
    dec_value(d);
    if (lua_type(L, -1) == LUA_TNUMBER && !lua_isinteger(L, -1) && isnan(lua_tonumber(L, -1)))
      dec_fail(d, "table key is NaN");
    dec_value(d);
    lua_rawset(L, -3);
  }
  d->p++;
  d->depth--;
}

/* A luashm object by name (with the identity of the sender's block when withid): reopened
   through its kind as luashm_reopen does, the identity letting the mapping cache find this
   process's mapping of that block with no syscall; the errors (no such block, not that kind)
   propagate. */
static void dec_ref(dec *d, int withid) {
  lua_State *L = d->L;
  size_t nlen, klen;
  const char *name = dec_bytes(d, &nlen);
  const char *kind = dec_bytes(d, &klen);
  const luashm_kind *k = luashm_kind_named(kind, klen);
  char cname[LUASHM_NAME_MAX + 1];
  char err[LUASHM_ERRLEN];
  luashm_fileid id;
  int view;
  if (k == NULL) {
    lua_pushlstring(L, kind, klen);
    dec_fail(d, lua_pushfstring(L, "unknown kind of object '%s'", lua_tostring(L, -1)));
  }
  /* The check may quote the name: give it a terminated copy, never the message's bytes (in a
     ring they are not terminated; elsewhere the quote would run into the next value). */
  if (nlen <= LUASHM_NAME_MAX) memcpy(cname, name, nlen);
  cname[nlen <= LUASHM_NAME_MAX ? nlen : 0] = '\0';
  if (luashm_name_check(d->op, cname, nlen, err) != 0) dec_fail(d, err);
  if (withid) {
    id.dev = dec_varint(d);
    id.ino = dec_varint(d);
    id.size = dec_varint(d);
  }
  /* The view is a value like any other, and counts as a level: a REF whose view is a REF...
     must not recurse past the limit (crafted messages would overflow the C stack). */
  if (d->depth >= LUASHM_CODEC_MAXDEPTH) dec_fail(d, "objects nested too deep in views");
  d->depth++;
  dec_value(d); /* the view */
  d->depth--;
  view = lua_isnil(L, -1) ? 0 : lua_gettop(L);
  luashm_block_attach_id(L, cname, withid ? &id : NULL);
  k->wrap(L, view);
  lua_remove(L, -2);
}

/* A private object by value: its kind builds it from the view alone (wrap with nil in place
   of a Block). */
static void dec_val(dec *d) {
  lua_State *L = d->L;
  size_t klen;
  const char *kind = dec_bytes(d, &klen);
  const luashm_kind *k = luashm_kind_named(kind, klen);
  if (k == NULL || k->view == NULL) {
    lua_pushlstring(L, kind, klen);
    dec_fail(d, lua_pushfstring(L, "kind '%s' does not travel by value", lua_tostring(L, -1)));
  }
  if (d->depth >= LUASHM_CODEC_MAXDEPTH) dec_fail(d, "objects nested too deep in views");
  d->depth++;
  dec_value(d); /* the view, a level as dec_ref's */
  d->depth--;
  lua_pushnil(L);
  k->wrap(L, lua_gettop(L) - 1);
  lua_remove(L, -2);
}

static void dec_value(dec *d) {
  lua_State *L = d->L;
  const char *s;
  size_t len;
  uint64_t u;
  double f;
  if (!lua_checkstack(L, 8)) dec_fail(d, "no stack space");
  if (d->p == d->end) dec_fail(d, "truncated value");
  switch (*d->p++) {
    case T_NIL: lua_pushnil(L); break;
    case T_FALSE: lua_pushboolean(L, 0); break;
    case T_TRUE: lua_pushboolean(L, 1); break;
    case T_INT:
      u = dec_varint(d);
      lua_pushinteger(L, (lua_Integer)((u >> 1) ^ (uint64_t) - (int64_t)(u & 1)));
      break;
    case T_FLOAT:
      if (dec_left(d) < sizeof f) dec_fail(d, "truncated float");
      memcpy(&f, d->p, sizeof f);
      d->p += sizeof f;
      lua_pushnumber(L, (lua_Number)f);
      break;
    case T_STR:
      s = dec_bytes(d, &len);
      lua_pushlstring(L, s, len);
      break;
    case T_TABLE: dec_table(d); break;
    case T_REF: dec_ref(d, 0); break;
    case T_REFID: dec_ref(d, 1); break;
    case T_VAL: dec_val(d); break;
    default: d->p--; dec_fail(d, "unknown value tag");
  }
}

int luashm_decode(lua_State *L, const unsigned char *p, size_t len, const char *op) {
  dec d;
  uint64_t count, i;
  d.L = L;
  d.op = op;
  d.start = d.p = p;
  d.end = p + len;
  d.depth = 0;
  if (len < 1 || p[0] != CODEC_VERSION) dec_fail(&d, "not a luashm message (bad version byte)");
  d.p++;
  count = dec_varint(&d);
  if (count > dec_left(&d)) dec_fail(&d, "more values than bytes");
  if (count > 1000000 || !lua_checkstack(L, (int)count + 8)) dec_fail(&d, "too many values");
  for (i = 0; i < count; i++) dec_value(&d);
  if (d.p != d.end) dec_fail(&d, "trailing bytes after the last value");
  return (int)count;
}

/* ---------------------------------------------------------------------------------------
** shm.encode(...) -> string, shm.decode(s) -> ...: the codec from Lua, to keep values in a
** Block or a file in the form channels use.
** ------------------------------------------------------------------------------------- */

static int codec_encode(lua_State *L) {
  luaL_Buffer b;
  int n = lua_gettop(L);
  luaL_buffinit(L, &b);
  luashm_encode(L, 1, n, &b, "encode");
  luaL_pushresult(&b);
  return 1;
}

static int codec_decode(lua_State *L) {
  size_t len;
  const char *s = luaL_checklstring(L, 1, &len);
  return luashm_decode(L, (const unsigned char *)s, len, "decode");
}

void luashm_open_codec(lua_State *L) {
  lua_pushcfunction(L, codec_encode);
  lua_setfield(L, -2, "encode");
  lua_pushcfunction(L, codec_decode);
  lua_setfield(L, -2, "decode");
}
