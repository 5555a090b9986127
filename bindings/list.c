/*
** The List: a fixed-length list of integers, floats, booleans, strings and nils stored in one
** block with CPython's ShareableList layout (Lib/multiprocessing/shared_memory.py, unchanged
** from 3.8 to today), so Python's ShareableList(name=...) reads what we write and back:
**
**   0                 int64 n, the item count
**   8                 int64 offsets[n + 1] of each slot from the data start (8-byte multiples)
**   8(n + 2)          the data area: one slot per item, offsets[n] bytes in all
**   fmt = data + offsets[n]   8 bytes per item: its struct format, NUL-padded ("q", "d",
**                     "xxxxxxx?" bool, "xxxxxx?x" None, "<k>s" str/bytes)
**   codes = fmt + 8n  1 byte per item: 0 number or bool, 1 str, 2 bytes, 3 None
**
** CPython strips trailing NULs from strings (gh-106939). Lists made here add, past the end of
** that layout where CPython never looks, an 8-byte-aligned area: LIST_MAGIC, then per item the
** exact length of a string that ends in NULs and a hash of the (code, stripped bytes) it was
** written with. A reader uses the exact length only while the slot still holds those bytes, so
** a value that a CPython process wrote meanwhile reads back as CPython wrote it.
**
** The layout is untrusted input: it is validated in full when a list is opened, the slot
** offsets are then kept in the List (they never change after creation), and each access
** re-reads and re-checks only its item's format and code, which other processes may change.
*/
#include <stdio.h>
#include <string.h>

#include "kinds.h"

#define LUASHM_LIST "luashm.List"
#define LIST_MAGIC "\x93LUASHL" /* 7 bytes + NUL: the exact-length area of lists made here */
#define FMT_LEN 8
#define MAX_STR_SLOT 9999992 /* the largest multiple of 8 whose "<k>s" fits 8 bytes */
#define MAX_STR_COUNT 9999999

enum { K_INT, K_FLOAT, K_BOOL, K_NIL, K_STR, K_BAD };
enum { CODE_PLAIN = 0, CODE_STR = 1, CODE_BYTES = 2, CODE_NONE = 3 };

static const char fmt_int[FMT_LEN] = "q";
static const char fmt_float[FMT_LEN] = "d";
static const char fmt_bool[FMT_LEN] = {'x', 'x', 'x', 'x', 'x', 'x', 'x', '?'};
static const char fmt_nil[FMT_LEN] = {'x', 'x', 'x', 'x', 'x', 'x', '?', 'x'};

typedef struct list {
  luashm_object head; /* head.kind is set once the list is built */
  lua_Integer n;
  size_t fmt, codes; /* offsets of the formats and of the codes in the block */
  size_t extra;      /* offset of the exact-length records, 0 when the list has none */
  size_t slot[];     /* n + 1 absolute slot offsets; slot[n] == fmt */
} list;

/* What the header says, once validated against the block's size. */
typedef struct layout {
  uint64_t n;
  size_t data, fmt, codes, extra;
} layout;

/* ---------------------------------------------------------------------------------------
** The layout: parsing untrusted bytes, classifying a slot
** ------------------------------------------------------------------------------------- */

static uint64_t load64(const unsigned char *p) {
  uint64_t v;
  memcpy(&v, p, sizeof v);
  return v;
}

static size_t align8(size_t x) {
  return (x + 7) & ~(size_t)7;
}

/* The kind of a slot from its 8 format bytes and its code; *count is the byte count of a
   "<k>s" format. Anything CPython does not write is K_BAD. */
static int slot_kind(const unsigned char *f, int code, size_t *count) {
  size_t k = 0;
  int i = 0;
  if (code == CODE_PLAIN) {
    if (memcmp(f, fmt_int, FMT_LEN) == 0) return K_INT;
    if (memcmp(f, fmt_float, FMT_LEN) == 0) return K_FLOAT;
    if (memcmp(f, fmt_bool, FMT_LEN) == 0) return K_BOOL;
    return K_BAD;
  }
  if (code == CODE_NONE) return memcmp(f, fmt_nil, FMT_LEN) == 0 ? K_NIL : K_BAD;
  if (code != CODE_STR && code != CODE_BYTES) return K_BAD;
  while (i < FMT_LEN - 1 && f[i] >= '0' && f[i] <= '9') k = k * 10 + (size_t)(f[i++] - '0');
  if (i == 0 || f[i] != 's') return K_BAD;
  for (i++; i < FMT_LEN; i++)
    if (f[i] != 0) return K_BAD;
  *count = k;
  return K_STR;
}

/* Validates the count, the sizes and the trailing area; fills lay. 0, or -1 with err. */
static int layout_head(const unsigned char *p, size_t size, layout *lay, char *err) {
  uint64_t n, end;
  size_t need;
  if (size < 16) {
    snprintf(err, LUASHM_ERRLEN, "%zu bytes is too small for a list", size);
    return -1;
  }
  n = load64(p);
  if (n > (size - 16) / 17) {
    snprintf(err, LUASHM_ERRLEN, "item count %lld does not fit in %zu bytes", (long long)n, size);
    return -1;
  }
  lay->n = n;
  lay->data = 8 * ((size_t)n + 2);
  end = load64(p + 8 + 8 * n);
  if (end > size - lay->data - 9 * n) {
    snprintf(err, LUASHM_ERRLEN, "data area of %llu bytes runs past the end of the block",
             (unsigned long long)end);
    return -1;
  }
  lay->fmt = lay->data + (size_t)end;
  lay->codes = lay->fmt + 8 * (size_t)n;
  need = lay->codes + (size_t)n;
  lay->extra = 0;
  if (size == need) return 0;
  if (size == align8(need) + 8 + 8 * (size_t)n && memcmp(p + align8(need), LIST_MAGIC, 8) == 0) {
    lay->extra = align8(need) + 8;
    return 0;
  }
  snprintf(err, LUASHM_ERRLEN, "the layout of %llu items needs %zu bytes, the block has %zu",
           (unsigned long long)n, need, size);
  return -1;
}

/* Validates every offset, format and code (after layout_head); fills slot[0..n] with the
   absolute slot offsets when slot is not NULL. 0, or -1 with err. */
static int layout_items(const unsigned char *p, const layout *lay, size_t *slot, char *err) {
  uint64_t i, prev = 0;
  if (load64(p + 8) != 0) {
    snprintf(err, LUASHM_ERRLEN, "the first item's offset is not 0");
    return -1;
  }
  for (i = 1; i <= lay->n; i++) {
    uint64_t off = load64(p + 8 + 8 * i), room;
    size_t count;
    int kind;
    if (off <= prev || off % 8 != 0 || off > lay->fmt - lay->data) {
      snprintf(err, LUASHM_ERRLEN, "item %llu: bad slot end offset %llu", (unsigned long long)i,
               (unsigned long long)off);
      return -1;
    }
    room = off - prev;
    kind = slot_kind(p + lay->fmt + 8 * (i - 1), (signed char)p[lay->codes + i - 1], &count);
    if (kind == K_BAD || (kind == K_STR && count > room)) {
      snprintf(err, LUASHM_ERRLEN, "item %llu: bad format or type code", (unsigned long long)i);
      return -1;
    }
    if (slot) slot[i - 1] = lay->data + (size_t)prev;
    prev = off;
  }
  if (prev != lay->fmt - lay->data) {
    snprintf(err, LUASHM_ERRLEN, "the last offset does not end the data area");
    return -1;
  }
  if (slot) slot[lay->n] = lay->fmt;
  return 0;
}

int luashm_list_check(const unsigned char *p, size_t size, char *err) {
  layout lay;
  if (layout_head(p, size, &lay, err) != 0) return -1;
  return layout_items(p, &lay, NULL, err);
}

/* shm.open's test: a consistent layout, and not an all-zero block (which reads as a CPython
   list of no items; only our own empty lists, with their trailing area, are recognised). */
static int list_probe(const unsigned char *p, size_t size) {
  char err[LUASHM_ERRLEN];
  layout lay;
  if (layout_head(p, size, &lay, err) != 0 || (lay.n == 0 && lay.extra == 0)) return 0;
  return layout_items(p, &lay, NULL, err) == 0;
}

/* ---------------------------------------------------------------------------------------
** Strings: UTF-8 (str or bytes for CPython), the exact-length records
** ------------------------------------------------------------------------------------- */

/* Strict UTF-8 as CPython decodes it: no overlongs, no surrogates, nothing past U+10FFFF. */
static int utf8_valid(const unsigned char *s, size_t len) {
  size_t i = 0;
  while (i < len) {
    unsigned c = s[i], lo = 0x80, hi = 0xBF;
    size_t need, k;
    if (c < 0x80) {
      i++;
      continue;
    }
    if (c >= 0xC2 && c <= 0xDF)
      need = 1;
    else if (c >= 0xE0 && c <= 0xEF) {
      need = 2;
      if (c == 0xE0) lo = 0xA0;
      if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      need = 3;
      if (c == 0xF0) lo = 0x90;
      if (c == 0xF4) hi = 0x8F;
    } else
      return 0;
    if (len - i - 1 < need) return 0;
    for (k = 1; k <= need; k++) {
      unsigned d = s[i + k];
      if (d < (k == 1 ? lo : 0x80) || d > (k == 1 ? hi : 0xBF)) return 0;
    }
    i += need + 1;
  }
  return 1;
}

/* FNV-1a over the code and the stripped bytes: tells our value from one another writer put in
   the slot since (a different value or type), not from a byte-identical one. */
static uint32_t str_hash(int code, const unsigned char *s, size_t len) {
  uint32_t h = 2166136261u;
  size_t i;
  h = (h ^ (uint32_t)code) * 16777619u;
  for (i = 0; i < len; i++) h = (h ^ s[i]) * 16777619u;
  return h;
}

/* ---------------------------------------------------------------------------------------
** Reading and writing one slot
** ------------------------------------------------------------------------------------- */

static list *tolist(lua_State *L, int i) {
  return (list *)luashm_tokind(L, i, &luashm_kind_list);
}

static list *checklist(lua_State *L, int i) {
  list *l = tolist(L, i);
  if (LUASHM_UNLIKELY(l->head.b->data == NULL))
    luashm_error(L, "list '%s' is closed", l->head.b->name);
  return l;
}

static int bad_slot(lua_State *L, const list *l, lua_Integer i) {
  return luashm_error(L, "list '%s': item %I has a bad format or type code", l->head.b->name, i);
}

/* Pushes item i (0-based, in range, block open). */
static void slot_push(lua_State *L, const list *l, size_t i) {
  const unsigned char *d = l->head.b->data, *p = d + l->slot[i];
  int code = (signed char)d[l->codes + i];
  size_t count = 0, len;
  uint64_t v;
  switch (slot_kind(d + l->fmt + FMT_LEN * i, code, &count)) {
    case K_INT:
      v = __atomic_load_n((const uint64_t *)p, __ATOMIC_RELAXED);
      lua_pushinteger(L, (lua_Integer)v);
      return;
    case K_FLOAT: {
      double x;
      v = __atomic_load_n((const uint64_t *)p, __ATOMIC_RELAXED);
      memcpy(&x, &v, sizeof x);
      lua_pushnumber(L, (lua_Number)x);
      return;
    }
    case K_BOOL: lua_pushboolean(L, p[7] != 0); return;
    case K_NIL: lua_pushnil(L); return;
    case K_STR:
      if (count > l->slot[i + 1] - l->slot[i]) break;
      len = count; /* CPython's rstrip(b'\x00'), a word at a time over the padding */
      while (len >= 8 && len % 8 == 0 && load64(p + len - 8) == 0) len -= 8;
      while (len > 0 && p[len - 1] == 0) len--;
      if (l->extra != 0 && len < count) {
        uint32_t rec[2];
        memcpy(rec, d + l->extra + 8 * i, sizeof rec);
        if (rec[0] > len && rec[0] <= count && rec[1] == str_hash(code, p, len)) len = rec[0];
      }
      lua_pushlstring(L, (const char *)p, len);
      return;
    default: break;
  }
  bad_slot(L, l, (lua_Integer)i + 1);
}

/* Sets the format and code of item i (untouched when already right, so that rewriting a
   number of the same type is one 8-byte store and nothing else). */
static void slot_settype(const list *l, size_t i, const char *fmt, int code) {
  unsigned char *d = l->head.b->data;
  if (memcmp(d + l->fmt + FMT_LEN * i, fmt, FMT_LEN) != 0)
    memcpy(d + l->fmt + FMT_LEN * i, fmt, FMT_LEN);
  if (d[l->codes + i] != (unsigned char)code) d[l->codes + i] = (unsigned char)code;
}

static void slot_clear_record(const list *l, size_t i) {
  static const unsigned char zero[8];
  unsigned char *r = l->head.b->data + l->extra + 8 * i;
  if (l->extra != 0 && memcmp(r, zero, 8) != 0) memset(r, 0, 8);
}

static void slot_store(const list *l, size_t i, uint64_t v, const char *fmt, int code) {
  __atomic_store_n((uint64_t *)(l->head.b->data + l->slot[i]), v, __ATOMIC_RELAXED);
  slot_settype(l, i, fmt, code);
  slot_clear_record(l, i);
}

/* The bytes a string stored in a slot of `room` bytes may have ("<k>s" has at most 7 digits). */
static size_t str_room(size_t room) {
  return room < MAX_STR_COUNT ? room : MAX_STR_COUNT;
}

/* Writes string s into item i (0-based); the caller has checked that it fits. */
static void slot_store_str(const list *l, size_t i, const char *s, size_t len) {
  unsigned char *d = l->head.b->data, *p = d + l->slot[i];
  size_t count = str_room(l->slot[i + 1] - l->slot[i]);
  int code = utf8_valid((const unsigned char *)s, len) ? CODE_STR : CODE_BYTES;
  size_t have = 0;
  memcpy(p, s, len);
  memset(p + len, 0, count - len);
  if (slot_kind(d + l->fmt + FMT_LEN * i, (signed char)d[l->codes + i], &have) == K_STR &&
      have == count) {
    if (d[l->codes + i] != code) d[l->codes + i] = (unsigned char)code; /* str <-> bytes */
  } else {
    char fmt[FMT_LEN + 1] = {0};
    snprintf(fmt, sizeof fmt, "%zus", count);
    slot_settype(l, i, fmt, code);
  }
  if (len > 0 && s[len - 1] == 0) {
    size_t m = len;
    uint32_t rec[2];
    while (m > 0 && s[m - 1] == 0) m--;
    rec[0] = (uint32_t)len;
    rec[1] = str_hash(code, (const unsigned char *)s, m);
    memcpy(d + l->extra + 8 * i, rec, sizeof rec);
  } else {
    slot_clear_record(l, i);
  }
}

/* Writes the value at vidx, of Lua type `type`, into item i (1-based, in range, block open);
   errors before any byte changes, so a failed write keeps the old value (gh-84510). */
static void slot_set(lua_State *L, const list *l, lua_Integer i, int vidx, int type) {
  size_t k = (size_t)i - 1, len, room;
  const char *s;
  double x;
  uint64_t v;
  switch (type) {
    case LUA_TNUMBER:
      if (lua_isinteger(L, vidx)) {
        slot_store(l, k, (uint64_t)lua_tointeger(L, vidx), fmt_int, CODE_PLAIN);
      } else {
        x = (double)lua_tonumber(L, vidx);
        memcpy(&v, &x, sizeof v);
        slot_store(l, k, v, fmt_float, CODE_PLAIN);
      }
      return;
    case LUA_TBOOLEAN:
      v = 0; /* CPython's "xxxxxxx?": the flag is the slot's last byte */
      ((unsigned char *)&v)[7] = (unsigned char)lua_toboolean(L, vidx);
      slot_store(l, k, v, fmt_bool, CODE_PLAIN);
      return;
    case LUA_TNIL: slot_store(l, k, 0, fmt_nil, CODE_NONE); return;
    case LUA_TSTRING:
      s = lua_tolstring(L, vidx, &len);
      room = str_room(l->slot[k + 1] - l->slot[k]);
      if (len > room)
        luashm_error(L, "list '%s': a string of %I bytes does not fit item %I (%I bytes)",
                     l->head.b->name, (lua_Integer)len, i, (lua_Integer)room);
      if (len > 0 && s[len - 1] == 0 && l->extra == 0)
        luashm_error(L,
                     "list '%s': item %I: a string ending in NUL bytes cannot be kept exactly in "
                     "a list made by CPython (it has no room to record the length)",
                     l->head.b->name, i);
      slot_store_str(l, k, s, len);
      return;
    default:
      luashm_error(L,
                   "list '%s': value for item %I is a %s (expected integer, float, boolean, "
                   "string or nil)",
                   l->head.b->name, i, luaL_typename(L, vidx));
  }
}

/* ---------------------------------------------------------------------------------------
** Wrapping a block, creating a list
** ------------------------------------------------------------------------------------- */

/* Replaces the Block at the top of the stack with a List over it; op names the caller in the
   error when the layout is malformed. */
/* A List over the Block at the top of the stack (which it replaces); head.kind is set last,
   so that a List whose building failed is no List to any method. */
static list *list_push(lua_State *L, lua_Integer n) {
  list *l = (list *)lua_newuserdatauv(L, sizeof(list) + ((size_t)n + 1) * sizeof(size_t), 1);
  l->head.kind = NULL;
  l->head.b = luashm_toblock(L, -2);
  l->n = n;
  luaL_setmetatable(L, LUASHM_LIST);
  lua_pushvalue(L, -2);
  lua_setiuservalue(L, -2, 1);
  return l;
}

static int list_wrap(lua_State *L, int view) {
  char err[LUASHM_ERRLEN];
  luashm_block *b = luashm_checkblock(L, -1);
  layout lay = {0}; /* GCC cannot tell that luashm_error does not return */
  list *l;
  (void)view;
  if (layout_head(b->data, b->size, &lay, err) != 0)
    luashm_error(L, "open '%s': not a list: %s", b->name, err);
  l = list_push(L, (lua_Integer)lay.n);
  if (layout_items(b->data, &lay, l->slot, err) != 0)
    luashm_error(L, "open '%s': not a list: %s", b->name, err);
  l->fmt = lay.fmt;
  l->codes = lay.codes;
  l->extra = lay.extra;
  l->head.kind = &luashm_kind_list;
  lua_replace(L, -2);
  return 1;
}

/* The slot size a new item (at idx, of Lua type `type`) needs: 8, or for a string CPython's 8 *
   (len // 8 + 1) counted in encoded bytes (gh-145261), at least cap. 0 for an unsupported type. */
static size_t new_slot(lua_State *L, int idx, int type, size_t cap) {
  size_t len, room;
  switch (type) {
    case LUA_TNUMBER:
    case LUA_TBOOLEAN:
    case LUA_TNIL: return 8;
    case LUA_TSTRING:
      lua_tolstring(L, idx, &len);
      if (len >= MAX_STR_SLOT) return (size_t)-1;
      room = 8 * (len / 8 + 1);
      return room < cap ? cap : room;
    default: return 0;
  }
}

static lua_Integer opt_count(lua_State *L) {
  lua_Integer n;
  int isint;
  if (lua_getfield(L, 1, "n") == LUA_TNIL) {
    lua_pop(L, 1);
    return (lua_Integer)lua_rawlen(L, 1);
  }
  n = lua_tointegerx(L, -1, &isint);
  if (!isint || n < 0 || lua_type(L, -1) != LUA_TNUMBER)
    luashm_error(L, "list: values.n must be a non-negative integer");
  lua_pop(L, 1);
  return n;
}

static const char *const list_options[] = {LUASHM_BLOCK_OPTIONS, "slot_bytes", NULL};

/* opts.slot_bytes: the bytes reserved for each string slot (contract v1 called it capacity). */
static size_t opt_slot_bytes(lua_State *L) {
  lua_Integer cap = 0;
  int isint;
  if (lua_istable(L, 2) && lua_getfield(L, 2, "capacity") != LUA_TNIL)
    luashm_error(L, "list: unknown option 'capacity' (contract v2 calls it slot_bytes)");
  lua_settop(L, 2);
  if (!luashm_checkoptions(L, 2, "list", list_options)) return 0;
  if (lua_getfield(L, 2, "slot_bytes") != LUA_TNIL) {
    cap = lua_tointegerx(L, -1, &isint);
    if (!isint || cap < 0 || cap > MAX_STR_SLOT || lua_type(L, -1) != LUA_TNUMBER)
      luashm_error(L, "list: opts.slot_bytes must be an integer from 0 to %d", MAX_STR_SLOT);
  }
  lua_pop(L, 1);
  return align8((size_t)cap);
}

static void bad_value(lua_State *L, lua_Integer i, int idx, size_t slot) {
  if (slot == (size_t)-1)
    luashm_error(L, "list: the string at index %I is longer than a slot can hold (%d bytes)", i,
                 MAX_STR_SLOT - 1);
  luashm_error(L,
               "list: value at index %I is a %s (expected integer, float, boolean, string or nil)",
               i, luaL_typename(L, idx));
}

/* The data area's size: 8 bytes per item plus what strings need beyond that. A dense table
   (n <= #values) is walked by index; a sparse one only over the entries present (lua_next), so
   values.n = 2^40 fails at create, not after 2^40 steps. Either way the work is bounded by the
   table's real size, and the lowest bad index is the one reported. */
static size_t data_size(lua_State *L, lua_Integer n, size_t cap) {
  size_t extra = 0, badsize = 0, s;
  lua_Integer bad = 0, i;
  if ((lua_Unsigned)n <= lua_rawlen(L, 1)) {
    for (i = 1; i <= n && bad == 0; i++) {
      s = new_slot(L, -1, lua_rawgeti(L, 1, i), cap);
      lua_pop(L, 1);
      if (s == 0 || s == (size_t)-1) {
        bad = i;
        badsize = s;
      } else {
        extra += s - 8;
      }
    }
  } else {
    lua_pushnil(L);
    while (lua_next(L, 1) != 0) {
      if (lua_isinteger(L, -2) && (i = lua_tointeger(L, -2)) >= 1 && i <= n) {
        s = new_slot(L, -1, lua_type(L, -1), cap);
        if ((s == 0 || s == (size_t)-1) && (bad == 0 || i < bad)) {
          bad = i;
          badsize = s;
        } else if (s > 8) {
          extra += s - 8;
        }
      }
      lua_pop(L, 1);
    }
  }
  if (bad != 0) {
    lua_rawgeti(L, 1, bad);
    bad_value(L, bad, lua_gettop(L), badsize);
  }
  return extra;
}

/* Writes a new list into the zero-filled block at the top of the stack and replaces it with
   the List: count, offsets, the exact-length area's magic, then each value through slot_set,
   the code behind l[i] = v. The slot sizes are recomputed from the values table, which no Lua
   code could change since data_size except a metamethod of opts: a mismatch is an error, never
   an overflow. */
static void list_fill(lua_State *L, lua_Integer n, size_t cap, size_t datasize) {
  luashm_block *b = luashm_toblock(L, -1);
  unsigned char *p = b->data;
  size_t data = 8 * ((size_t)n + 2), off = 0;
  lua_Integer i;
  list *l = list_push(L, n);
  l->fmt = data + datasize;
  l->codes = l->fmt + 8 * (size_t)n;
  l->extra = align8(l->codes + (size_t)n) + 8;
  l->slot[0] = data;
  memcpy(p, &n, 8);
  memcpy(p + l->extra - 8, LIST_MAGIC, 8);
  for (i = 1; i <= n; i++) {
    int type = lua_rawgeti(L, 1, i);
    size_t s = new_slot(L, -1, type, cap);
    if (s == 0 || s == (size_t)-1 || s > datasize - off)
      luashm_error(L, "list '%s': the values changed while the list was made", b->name);
    memcpy(p + 8 * i, &off, 8);
    off += s;
    l->slot[i] = data + off;
    slot_set(L, l, i, lua_gettop(L), type);
    lua_pop(L, 1);
  }
  if (off != datasize)
    luashm_error(L, "list '%s': the values changed while the list was made", b->name);
  memcpy(p + 8 * (n + 1), &off, 8);
  l->head.kind = &luashm_kind_list;
  lua_replace(L, -2);
}

static int list_new(lua_State *L) {
  lua_Integer n;
  size_t cap, strextra, datasize, need, total;
  luaL_checktype(L, 1, LUA_TTABLE);
  if (!lua_isnoneornil(L, 2)) luaL_checktype(L, 2, LUA_TTABLE);
  lua_settop(L, 2);
  n = opt_count(L);
  cap = opt_slot_bytes(L);
  if ((lua_Unsigned)n > (lua_Unsigned)(PTRDIFF_MAX / 64))
    return luashm_error(L, "list: %I items is too many", n);
  strextra = data_size(L, n, cap);
  datasize = 8 * (size_t)n + strextra;
  need = 8 * ((size_t)n + 2) + 9 * (size_t)n;
  if (strextra > (size_t)PTRDIFF_MAX / 2 || datasize > (size_t)PTRDIFF_MAX / 2 - need)
    return luashm_error(L, "list: %I items need too many bytes", n);
  total = align8(need + datasize) + 8 + 8 * (size_t)n;
  luashm_block_new(L, total, 2);
  list_fill(L, n, cap, datasize);
  return 1;
}

/* ---------------------------------------------------------------------------------------
** Methods
** ------------------------------------------------------------------------------------- */

static int list_count(lua_State *L) {
  list *l = checklist(L, 1);
  lua_Integer i, c = 0;
  lua_settop(L, 2);
  for (i = 0; i < l->n; i++) {
    slot_push(L, l, (size_t)i);
    c += lua_rawequal(L, 2, 3);
    lua_pop(L, 1);
  }
  lua_pushinteger(L, c);
  return 1;
}

static int list_find(lua_State *L) {
  list *l = checklist(L, 1);
  lua_Integer i;
  lua_settop(L, 2);
  for (i = 0; i < l->n; i++) {
    slot_push(L, l, (size_t)i);
    if (lua_rawequal(L, 2, 3)) {
      lua_pushinteger(L, i + 1);
      return 1;
    }
    lua_pop(L, 1);
  }
  lua_pushnil(L);
  return 1;
}

static int list_totable(lua_State *L) {
  list *l = checklist(L, 1);
  lua_Integer i;
  lua_createtable(L, l->n > INT32_MAX ? 0 : (int)l->n, 1);
  for (i = 0; i < l->n; i++) {
    slot_push(L, l, (size_t)i);
    lua_rawseti(L, -2, i + 1);
  }
  lua_pushinteger(L, l->n);
  lua_setfield(L, -2, "n");
  return 1;
}

/* Closes the Block, so every view of it (this one too) refuses further use. */
static int list_close(lua_State *L) {
  luashm_block_close(tolist(L, 1)->head.b);
  return 0;
}

static int list_len(lua_State *L) {
  lua_pushinteger(L, checklist(L, 1)->n);
  return 1;
}

/* Replaces the string at the top of the stack with a quoted, escaped copy. */
static void quote_top(lua_State *L) {
  size_t len, i;
  const char *s = lua_tolstring(L, -1, &len);
  luaL_Buffer B;
  luaL_buffinit(L, &B);
  luaL_addchar(&B, '"');
  for (i = 0; i < len; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c == '"' || c == '\\') {
      luaL_addchar(&B, '\\');
      luaL_addchar(&B, (char)c);
    } else if (c == '\n') {
      luaL_addstring(&B, "\\n");
    } else if (c < 0x20 || c == 0x7F) {
      char esc[8];
      snprintf(esc, sizeof esc, "\\%03d", c);
      luaL_addstring(&B, esc);
    } else {
      luaL_addchar(&B, (char)c);
    }
  }
  luaL_addchar(&B, '"');
  luaL_pushresult(&B);
  lua_remove(L, -2);
}

/* ShareableList({1, 2.5, "a", nil}, name='...'), like CPython's repr; a long list is elided in
   the middle. The pieces pile up on the stack and are joined once. */
static int list_tostring(lua_State *L) {
  list *l = tolist(L, 1);
  lua_Integer i;
  int pieces = 1;
  if (l->head.b->data == NULL) {
    lua_pushfstring(L, "luashm.List '%s' (closed)", l->head.b->name);
    return 1;
  }
  luaL_checkstack(L, 64, NULL);
  lua_pushliteral(L, "ShareableList({");
  for (i = 0; i < l->n; i++) {
    if (l->n > 20 && i == 10) {
      lua_pushfstring(L, "... (%I more) ..., ", l->n - 20);
      pieces++;
      i = l->n - 10;
    }
    slot_push(L, l, (size_t)i);
    if (lua_type(L, -1) == LUA_TSTRING)
      quote_top(L);
    else {
      luaL_tolstring(L, -1, NULL);
      lua_remove(L, -2);
    }
    lua_pushstring(L, i + 1 < l->n ? ", " : "");
    pieces += 2;
  }
  lua_pushfstring(L, "}, name='%s')", l->head.b->name);
  lua_concat(L, pieces + 1);
  return 1;
}

static int list_format(lua_State *L, const list *l) {
  luaL_Buffer B;
  lua_Integer i;
  luaL_buffinit(L, &B);
  for (i = 0; i < l->n; i++) {
    const char *f = (const char *)l->head.b->data + l->fmt + FMT_LEN * i;
    size_t len = FMT_LEN;
    while (len > 0 && f[len - 1] == 0) len--;
    luaL_addlstring(&B, f, len);
  }
  luaL_pushresult(&B);
  return 1;
}

/* Integer keys first (the hot path), then methods (upvalue 1), then properties. */
static int list_index(lua_State *L) {
  list *l = tolist(L, 1);
  if (LUASHM_LIKELY(lua_type(L, 2) == LUA_TNUMBER)) {
    int isint;
    lua_Integer i = lua_tointegerx(L, 2, &isint);
    if (LUASHM_UNLIKELY(l->head.b->data == NULL)) checklist(L, 1); /* raises "is closed" */
    if (isint && i >= 1 && i <= l->n)
      slot_push(L, l, (size_t)i - 1);
    else
      lua_pushnil(L);
    return 1;
  }
  if (lua_type(L, 2) == LUA_TSTRING) {
    const char *k = lua_tostring(L, 2);
    lua_pushvalue(L, 2);
    if (lua_rawget(L, lua_upvalueindex(1)) != LUA_TNIL) return 1;
    if (luashm_object_field(L, 1, k)) return 1;
    if (strcmp(k, "format") == 0) list_format(L, checklist(L, 1));
    return 1;
  }
  lua_pushnil(L);
  return 1;
}

static int list_newindex(lua_State *L) {
  list *l = checklist(L, 1);
  int isint = 0;
  lua_Integer i = lua_type(L, 2) == LUA_TNUMBER ? lua_tointegerx(L, 2, &isint) : 0;
  if (LUASHM_UNLIKELY(!isint)) {
    if (lua_type(L, 2) == LUA_TNUMBER)
      return luashm_error(L, "list '%s': index %s is not an integer", l->head.b->name,
                          lua_tostring(L, 2));
    return luashm_error(L, "list '%s': fields are read-only", l->head.b->name);
  }
  if (i < 1 || i > l->n)
    return luashm_error(L, "list '%s': index %I is out of range (1..%I)", l->head.b->name, i, l->n);
  slot_set(L, l, i, 3, lua_type(L, 3));
  return 0;
}

static int list_next(lua_State *L) {
  list *l = checklist(L, 1);
  lua_Integer i = luaL_optinteger(L, 2, 0) + 1;
  if (i < 1 || i > l->n) return 0;
  lua_pushinteger(L, i);
  slot_push(L, l, (size_t)i - 1);
  return 2;
}

/* pairs(l) visits every item, nil ones too (ipairs stops at the first nil, as for tables). */
static int list_pairs(lua_State *L) {
  checklist(L, 1);
  lua_pushcfunction(L, list_next);
  lua_pushvalue(L, 1);
  lua_pushinteger(L, 0);
  return 3;
}

static const luaL_Reg list_meth[] = {{"count", list_count},
                                     {"index", list_find},
                                     {"totable", list_totable},
                                     {"close", list_close},
                                     {"unlink", luashm_object_unlink},
                                     {NULL, NULL}};

/* No __gc: the Block (the user value) unmaps itself when collected; closing it from the
   List's __gc would close a Block the program may still hold through l.block. */
static const luaL_Reg list_metameth[] = {{"__len", list_len},           {"__close", list_close},
                                         {"__tostring", list_tostring}, {"__pairs", list_pairs},
                                         {"__newindex", list_newindex}, {NULL, NULL}};

static void list_describe(const unsigned char *p, size_t size, char *out, size_t n) {
  int64_t count;
  (void)size;
  memcpy(&count, p, sizeof count);
  snprintf(out, n, "list of %lld", (long long)count);
}

static void list_open(lua_State *L) {
  luashm_newkind(L, &luashm_kind_list, list_meth, list_metameth, list_index);
  lua_pushcfunction(L, list_new);
  lua_setfield(L, -2, "list");
}

const luashm_kind luashm_kind_list = {"list",    LUASHM_LIST, "list",        list_probe,
                                      list_wrap, NULL,        list_describe, list_open};
