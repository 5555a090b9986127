/*
** The registry of kinds: every kind of object that lives in a block (an array, a list, a lock...)
** is described once, by a luashm_kind in its own file, and listed once, in LUASHM_KINDS below.
** shm.open, the codec's by-name travel, the Manager's m:<maker> methods, the block tool and the
** module's setup all walk this registry; none of them keeps a list of its own.
*/
#ifndef LUASHM_KINDS_H
#define LUASHM_KINDS_H

#include <stddef.h>
#include <stdint.h>

#include "core.h"

typedef struct luashm_kind {
  const char *name;  /* "lock": the header's kind word, the codec's and the block tool's */
  const char *tname; /* "luashm.Lock": the metatable's registry name and __name */
  const char *maker; /* the shm.<maker> constructor a Manager offers as m:<maker>, or NULL */
  /* 1 when size bytes at p (untrusted: another process wrote them) hold this kind. */
  int (*probe)(const unsigned char *p, size_t size);
  /* Replaces the Block at the top of the stack with an object of this kind over it. view is
     the stack index of what view() gave on the sending side (0: none). The bytes are
     validated again here: a malformed block raises "luashm: open '<name>': <cause>". For an
     object that travelled by value (no block), nil is at the top in place of a Block. */
  int (*wrap)(lua_State *L, int view);
  /* For travel: pushes what the name alone does not say (a view's offset, shape and strides)
     and returns 1, or returns 0. For an object with no block (a private array), it pushes
     the whole object's value (the codec sends it by value). NULL: the name always says all. */
  int (*view)(lua_State *L, int idx);
  /* The block tool's "what it holds" ("array f64 (3, 4)"), at most n bytes into out; NULL: the
     kind's name. Untrusted bytes, as for probe. */
  void (*describe)(const unsigned char *p, size_t size, char *out, size_t n);
  /* Builds the kind's metatable (luashm_newkind) and adds its functions to the module table
     at the top of the stack. */
  void (*open)(lua_State *L);
} luashm_kind;

/* THE REGISTRY: one line per kind, in the order shm.open tries them (formats with a magic
   first; the ShareableList, recognised by its layout alone, then the plain Block, which takes
   anything). A kind X is defined in its own file as `const luashm_kind luashm_kind_X`. */
#define LUASHM_KINDS(X) \
  X(array)              \
  X(lock)               \
  X(barrier)            \
  X(manager)            \
  X(progress)           \
  X(channel)            \
  X(dict)               \
  X(list)               \
  X(block)

#define LUASHM_KIND_DECLARE(k) extern const luashm_kind luashm_kind_##k;
LUASHM_KINDS(LUASHM_KIND_DECLARE)
#undef LUASHM_KIND_DECLARE

/* Every kind, in the registry's order, then NULL. */
extern const luashm_kind *const luashm_kinds[];

/* The kind of a block's bytes (the Block kind when no other recognises them). */
const luashm_kind *luashm_kind_of(const unsigned char *p, size_t size);

/* The kind called name (len bytes), or NULL. */
const luashm_kind *luashm_kind_named(const char *name, size_t len);

/* ---------------------------------------------------------------------------------------
** Objects
** ------------------------------------------------------------------------------------- */

/* The object of kind k at index i, or a type error: a cheap check (no registry lookup) for hot
   methods. A full userdata large enough for the head whose head names k is taken as one: only
   k's own file puts that address into a userdata. */
static inline void *luashm_tokind(lua_State *L, int i, const luashm_kind *k) {
  luashm_object *o = (luashm_object *)lua_touserdata(L, i);
  if (LUASHM_UNLIKELY(o == NULL || lua_rawlen(L, i) < sizeof *o || o->kind != k))
    luaL_typeerror(L, i, k->tname);
  return o;
}

/* The object of any kind at index i, or NULL when it is none. */
luashm_object *luashm_toobject(lua_State *L, int i);

/* Builds kind k's metatable: __name, a hidden __metatable, k itself (for luashm_toobject), the
   metamethods, and __index: the method table, or, when index is given, index as a closure
   whose upvalue 1 is the method table (for kinds with fields). Leaves nothing on the stack. */
void luashm_newkind(lua_State *L, const luashm_kind *k, const luaL_Reg *meth,
                    const luaL_Reg *metameth, lua_CFunction index);

/* The fields of the object contract, for a kind's __index: for key "name", "block" or "closed"
   of the object at idx, pushes the value and returns 1; 0 for any other key. */
int luashm_object_field(lua_State *L, int idx, const char *key);

/* The __index of a kind whose only fields are the contract's (for luashm_newkind): methods
   first, from upvalue 1, then luashm_object_field. */
int luashm_object_index(lua_State *L);

/* x:unlink(): removes the name of the object's Block (the same as x.block:unlink()); every
   kind that lives in a block lists it among its methods. */
int luashm_object_unlink(lua_State *L);

/* Attaches the block called name and wraps it as kind k (view: a stack index or 0); the wrap
   raises "luashm: open '<name>': <cause>" when the bytes are not k's. Pushes the object. */
void luashm_reopen(lua_State *L, const luashm_kind *k, const char *name, int view);

/* ---------------------------------------------------------------------------------------
** The header of luashm's own blocks
** ------------------------------------------------------------------------------------- */

/* Blocks that hold one of luashm's own objects (lock, barrier, channel, progress counter,
   manager record...) start with this 64-byte header, so that shm.open and the block tool can
   tell them apart; the object's own data starts at LUASHM_HEADER_SIZE. */
#define LUASHM_MAGIC "\x93LUASHM" /* 7 bytes + NUL */
#define LUASHM_HEADER_SIZE 64
typedef struct luashm_header {
  char magic[8];    /* LUASHM_MAGIC */
  char kind[16];    /* "lock", "barrier", "channel"...: NUL-padded */
  uint32_t version; /* layout version of that kind, starting at 1 */
  uint32_t reserved;
  int64_t creator; /* pid of the creating process, for the block tool */
} luashm_header;

/* Writes the header of kind at p (the block's first bytes), after a release fence: the object
   is made first and the header last, so that a process opening the name before the object is
   complete sees a plain Block. */
void luashm_header_init(unsigned char *p, const char *kind, uint32_t version);

/* 1 when the block (p, size) is at least LUASHM_HEADER_SIZE bytes and starts with the header of
   kind at this version; 0 otherwise. Untrusted bytes: it only compares. */
int luashm_header_is(const unsigned char *p, size_t size, const char *kind, uint32_t version);

/* shm.open and every kind's functions (the module table at the top of the stack). */
void luashm_open_kinds(lua_State *L);

/* Validates a ShareableList layout in (p, size) as untrusted bytes: 0 when every count,
   offset, format and code is consistent with the size, else -1 with the cause in err
   (LUASHM_ERRLEN bytes). The list fuzz target's entry point (list.c). */
int luashm_list_check(const unsigned char *p, size_t size, char *err);

#endif
