/*
** luashm_mpi (shm.mpi): the collectives a data job needs, straight on shared Arrays' memory,
** for a script launched as `mpirun -n N luashm job.lua`. A separate module (luashm_mpi.so),
** built only when CMake finds an MPI, so that no other program pays for loading libmpi; it
** reaches the core through the LUASHM_CAPI table. Ranks are 1-based, like shm.parallel's.
*/
#include <limits.h>
#include <mpi.h>
#include <string.h>
#include <unistd.h>

#include "core.h"
#include "npy.h"

static const luashm_capi *capi;

#define luashm_error capi->error
#define luashm_toarray capi->toarray
#define luashm_dtype_names capi->dtype_names

/* f16 travels as its bits (MPI has no half precision): it moves, it does not reduce. */
static const MPI_Datatype mpi_types[LUASHM_NDTYPES] = {
    MPI_INT8_T,  MPI_UINT8_T,  MPI_INT16_T, MPI_UINT16_T, MPI_INT32_T, MPI_UINT32_T,
    MPI_INT64_T, MPI_UINT64_T, MPI_FLOAT,   MPI_DOUBLE,   MPI_C_BOOL,  MPI_UINT16_T};

/* Initialises MPI at the first collective, so that a script that never calls shm.mpi pays
   nothing and needs no mpirun. MPI_Finalize runs when the interpreter closes (see mpi_gc). */
static void mpi_ensure(lua_State *L) {
  int done;
  MPI_Initialized(&done);
  if (done) return;
  if (MPI_Init(NULL, NULL) != MPI_SUCCESS) luashm_error(L, "mpi: MPI_Init failed");
  /* MPI's default handler aborts the process on any error: return codes instead, which
     mpi_check turns into Lua errors. */
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  /* A finalizer in the registry: its __gc runs at lua_close, in this process only (forked
     workers leave with _exit). */
  lua_newuserdatauv(L, sizeof(pid_t), 0);
  *(pid_t *)lua_touserdata(L, -1) = getpid();
  luaL_setmetatable(L, "luashm.MPI");
  lua_setfield(L, LUA_REGISTRYINDEX, "luashm.mpi.finalizer");
}

static int mpi_gc(lua_State *L) {
  int init, fin;
  if (*(pid_t *)lua_touserdata(L, 1) != getpid()) return 0;
  MPI_Initialized(&init);
  MPI_Finalized(&fin);
  if (init && !fin) MPI_Finalize();
  return 0;
}

static int mpi_check(lua_State *L, int rc, const char *op) {
  char msg[MPI_MAX_ERROR_STRING];
  int len = 0;
  if (rc == MPI_SUCCESS) return 0;
  MPI_Error_string(rc, msg, &len);
  return luashm_error(L, "mpi.%s: %s", op, msg);
}

static int world_size(void) {
  int n;
  MPI_Comm_size(MPI_COMM_WORLD, &n);
  return n;
}

/* A 1-based rank argument, checked against the world, as MPI's 0-based rank. */
static int check_rank(lua_State *L, int idx, const char *op, int def) {
  lua_Integer r = luaL_optinteger(L, idx, def);
  int n = world_size();
  if (r < 1 || r > n) luashm_error(L, "mpi.%s: rank %I is not in 1..%d", op, r, n);
  return (int)r - 1;
}

/* A tag argument (default 0) in 0..MPI_TAG_UB: a negative tag is a wildcard (a recv that
   never ends) or an error, a tag past int would be truncated. */
static int check_tag(lua_State *L, int idx, const char *op) {
  lua_Integer t = luaL_optinteger(L, idx, 0);
  int *ub, flag = 0, max = 32767; /* the least MPI_TAG_UB the standard allows */
  MPI_Comm_get_attr(MPI_COMM_WORLD, MPI_TAG_UB, &ub, &flag);
  if (flag) max = *ub;
  if (t < 0 || t > max) luashm_error(L, "mpi.%s: tag %I is not in 0..%d", op, t, max);
  return (int)t;
}

static void check_array(lua_State *L, int idx, const char *op, luashm_arrayinfo *a) {
  if (!luashm_toarray(L, idx, a))
    luashm_error(L, "mpi.%s: argument #%d is a %s, not an Array", op, idx, luaL_typename(L, idx));
  if (a->count > (size_t)INT_MAX)
    luashm_error(L, "mpi.%s: array of %I elements is larger than MPI's int count", op,
                 (lua_Integer)a->count);
}

static void check_same(lua_State *L, const luashm_arrayinfo *a, const luashm_arrayinfo *b,
                       const char *op) {
  if (a->dtype != b->dtype || a->count != b->count)
    luashm_error(L, "mpi.%s: arrays differ (%s[%I] and %s[%I]): give the same dtype and size", op,
                 luashm_dtype_names[a->dtype], (lua_Integer)a->count, luashm_dtype_names[b->dtype],
                 (lua_Integer)b->count);
}

static MPI_Op check_op(lua_State *L, int idx, const char *op, int dtype) {
  static const char *const names[] = {"sum", "min", "max", NULL};
  static const MPI_Op ops[] = {MPI_SUM, MPI_MIN, MPI_MAX};
  int i = luaL_checkoption(L, idx, "sum", names);
  if (dtype == LUASHM_BOOL || dtype == LUASHM_F16)
    luashm_error(L, "mpi.%s: MPI has no %s of %s (convert it with a:astype first)", op, names[i],
                 luashm_dtype_names[dtype]);
  return ops[i];
}

static int mpi_rank(lua_State *L) {
  int r;
  mpi_ensure(L);
  MPI_Comm_rank(MPI_COMM_WORLD, &r);
  lua_pushinteger(L, r + 1);
  return 1;
}

static int mpi_size(lua_State *L) {
  mpi_ensure(L);
  lua_pushinteger(L, world_size());
  return 1;
}

static int mpi_barrier(lua_State *L) {
  mpi_ensure(L);
  mpi_check(L, MPI_Barrier(MPI_COMM_WORLD), "barrier");
  return 0;
}

/* mpi.bcast(a [, root]): root's elements into every rank's a, in place. */
static int mpi_bcast(lua_State *L) {
  luashm_arrayinfo a;
  int root;
  mpi_ensure(L);
  check_array(L, 1, "bcast", &a);
  root = check_rank(L, 2, "bcast", 1);
  mpi_check(L, MPI_Bcast(a.data, (int)a.count, mpi_types[a.dtype], root, MPI_COMM_WORLD), "bcast");
  lua_settop(L, 1);
  return 1;
}

/* mpi.allreduce(src, dst [, op]): elementwise op over every rank's src into every dst (dst may
   be src: reduced in place). */
static int mpi_allreduce(lua_State *L) {
  luashm_arrayinfo s, d;
  MPI_Op op;
  mpi_ensure(L);
  check_array(L, 1, "allreduce", &s);
  check_array(L, 2, "allreduce", &d);
  check_same(L, &s, &d, "allreduce");
  op = check_op(L, 3, "allreduce", d.dtype);
  mpi_check(L,
            MPI_Allreduce(s.data == d.data ? MPI_IN_PLACE : s.data, d.data, (int)d.count,
                          mpi_types[d.dtype], op, MPI_COMM_WORLD),
            "allreduce");
  lua_settop(L, 2);
  return 1;
}

/* mpi.reduce(src, dst [, op [, root]]): like allreduce, but only root's dst is written. */
static int mpi_reduce(lua_State *L) {
  luashm_arrayinfo s, d;
  MPI_Op op;
  int root, me;
  mpi_ensure(L);
  check_array(L, 1, "reduce", &s);
  check_array(L, 2, "reduce", &d);
  check_same(L, &s, &d, "reduce");
  op = check_op(L, 3, "reduce", d.dtype);
  root = check_rank(L, 4, "reduce", 1);
  MPI_Comm_rank(MPI_COMM_WORLD, &me);
  mpi_check(L,
            MPI_Reduce(me == root && s.data == d.data ? MPI_IN_PLACE : s.data, d.data, (int)d.count,
                       mpi_types[d.dtype], op, root, MPI_COMM_WORLD),
            "reduce");
  lua_settop(L, 2);
  return 1;
}

/* Counts and displacements (in elements) of a partition of whole's first dimension over the
   world, the same split as shm.partition. */
static void partition_counts(lua_State *L, const luashm_arrayinfo *whole, int *counts, int *displs,
                             const char *op) {
  int n = world_size(), r;
  size_t rows = whole->ndim > 0 ? whole->shape[0] : 1;
  size_t row = rows ? whole->count / rows : 0;
  for (r = 0; r < n; r++) {
    int64_t lo, hi;
    luashm_partition((int64_t)rows, n, r + 1, &lo, &hi);
    if ((size_t)hi * row > (size_t)INT_MAX) luashm_error(L, "mpi.%s: array too large for MPI", op);
    counts[r] = (int)((size_t)(hi - lo + 1) * row);
    displs[r] = (int)((size_t)(lo - 1) * row);
  }
}

/* mpi.gather(part, whole [, root]) / mpi.scatter(whole, part [, root]): rank r's part is rows
   shm.partition(#whole, size, r) of whole, on root. */
static int mpi_gatherscatter(lua_State *L, int gather) {
  const char *op = gather ? "gather" : "scatter";
  luashm_arrayinfo part, whole;
  int n, me, root, *counts, rc;
  mpi_ensure(L);
  check_array(L, gather ? 1 : 2, op, &part);
  check_array(L, gather ? 2 : 1, op, &whole);
  root = check_rank(L, 3, op, 1);
  n = world_size();
  MPI_Comm_rank(MPI_COMM_WORLD, &me);
  if (part.dtype != whole.dtype)
    luashm_error(L, "mpi.%s: dtypes differ (%s and %s)", op, luashm_dtype_names[part.dtype],
                 luashm_dtype_names[whole.dtype]);
  counts = (int *)lua_newuserdatauv(L, 2 * (size_t)n * sizeof(int), 0);
  partition_counts(L, &whole, counts, counts + n, op);
  if ((size_t)counts[me] != part.count)
    luashm_error(L, "mpi.%s: rank %d's part has %I elements, its partition wants %d", op, me + 1,
                 (lua_Integer)part.count, counts[me]);
  if (gather)
    rc = MPI_Gatherv(part.data, (int)part.count, mpi_types[part.dtype], whole.data, counts,
                     counts + n, mpi_types[whole.dtype], root, MPI_COMM_WORLD);
  else
    rc = MPI_Scatterv(whole.data, counts, counts + n, mpi_types[whole.dtype], part.data,
                      (int)part.count, mpi_types[part.dtype], root, MPI_COMM_WORLD);
  mpi_check(L, rc, op);
  lua_settop(L, 2);
  return 1;
}

static int mpi_gather(lua_State *L) {
  return mpi_gatherscatter(L, 1);
}

static int mpi_scatter(lua_State *L) {
  return mpi_gatherscatter(L, 0);
}

/* mpi.send(a, to [, tag]) / mpi.recv(a, from [, tag]): a's elements between two ranks. */
static int mpi_send(lua_State *L) {
  luashm_arrayinfo a;
  int to;
  mpi_ensure(L);
  check_array(L, 1, "send", &a);
  to = check_rank(L, 2, "send", 0);
  mpi_check(L,
            MPI_Send(a.data, (int)a.count, mpi_types[a.dtype], to, check_tag(L, 3, "send"),
                     MPI_COMM_WORLD),
            "send");
  return 0;
}

static int mpi_recv(lua_State *L) {
  luashm_arrayinfo a;
  int from, got;
  MPI_Status st;
  mpi_ensure(L);
  check_array(L, 1, "recv", &a);
  from = check_rank(L, 2, "recv", 0);
  mpi_check(L,
            MPI_Recv(a.data, (int)a.count, mpi_types[a.dtype], from, check_tag(L, 3, "recv"),
                     MPI_COMM_WORLD, &st),
            "recv");
  MPI_Get_count(&st, mpi_types[a.dtype], &got);
  if ((size_t)got != a.count)
    luashm_error(L, "mpi.recv: got %d elements from rank %d, the array holds %I", got, from + 1,
                 (lua_Integer)a.count);
  lua_settop(L, 1);
  return 1;
}

/* mpi.node(): this process's rank among the ranks on the same machine and their count, for
   sharing one block per node by name (see shm.mpi.shared_array in scripts/lib/mpi.lua). */
static int mpi_node(lua_State *L) {
  MPI_Comm node;
  int r, n;
  mpi_ensure(L);
  mpi_check(L, MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node),
            "node");
  MPI_Comm_rank(node, &r);
  MPI_Comm_size(node, &n);
  MPI_Comm_free(&node);
  lua_pushinteger(L, r + 1);
  lua_pushinteger(L, n);
  return 2;
}

/* mpi.node_bcast(s): the string s of the node's first rank, on every rank of the node. */
static int mpi_node_bcast(lua_State *L) {
  MPI_Comm node;
  int r, len = 0;
  size_t slen;
  const char *s;
  char *buf;
  mpi_ensure(L);
  s = luaL_optlstring(L, 1, "", &slen);
  mpi_check(L, MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node),
            "node_bcast");
  MPI_Comm_rank(node, &r);
  if (r == 0) len = (int)slen;
  MPI_Bcast(&len, 1, MPI_INT, 0, node);
  buf = (char *)lua_newuserdatauv(L, (size_t)len + 1, 0);
  if (r == 0) memcpy(buf, s, (size_t)len);
  MPI_Bcast(buf, len, MPI_CHAR, 0, node);
  MPI_Comm_free(&node);
  lua_pushlstring(L, buf, (size_t)len);
  return 1;
}

static const luaL_Reg mpi_funcs[] = {{"rank", mpi_rank},
                                     {"size", mpi_size},
                                     {"barrier", mpi_barrier},
                                     {"bcast", mpi_bcast},
                                     {"reduce", mpi_reduce},
                                     {"allreduce", mpi_allreduce},
                                     {"gather", mpi_gather},
                                     {"scatter", mpi_scatter},
                                     {"send", mpi_send},
                                     {"recv", mpi_recv},
                                     {"node", mpi_node},
                                     {"node_bcast", mpi_node_bcast},
                                     {NULL, NULL}};

LUASHM_EXPORT int luaopen_luashm_mpi(lua_State *L) {
  lua_getglobal(L, "require"); /* loading luashm registers the core's C API */
  lua_pushliteral(L, "luashm");
  lua_call(L, 1, 0);
  if (lua_getfield(L, LUA_REGISTRYINDEX, LUASHM_CAPI) != LUA_TLIGHTUSERDATA)
    return luaL_error(L, "luashm: mpi: the luashm core did not register its C API");
  capi = (const luashm_capi *)lua_touserdata(L, -1);
  lua_pop(L, 1);
  luaL_newmetatable(L, "luashm.MPI");
  lua_pushcfunction(L, mpi_gc);
  lua_setfield(L, -2, "__gc");
  lua_pop(L, 1);
  luaL_newlib(L, mpi_funcs);
  return 1;
}
