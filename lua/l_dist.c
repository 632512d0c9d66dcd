/* l_dist.c: the processes of a data-parallel run (runtime/dist.c) as bl.dist_* functions:
 * bl.dist_init() (raises when mpirun/srun launched several tasks of a build without MPI),
 * bl.dist_rank(), bl.dist_size(), bl.dist_have_mpi(), bl.dist_have_nccl(), bl.dist_env_size(), and the collectives the
 * epoch loop needs: bl.dist_allreduce(list) (sums, identical on every rank), bl.dist_allgather(list)
 * (every rank's list in rank order), bl.dist_bcast(s) (rank 0's string), bl.dist_barrier(),
 * bl.dist_bytes_sent(). model:allreduce_grads is in l_model.c. */
#include "lbl.h"
#include "../runtime/bert.h"
#include "../runtime/dist.h"
#include "../runtime/error.h"
#include <stdlib.h>

static int l_dist_init(lua_State *L) {
    lbl_check(L, dist_init(), "dist_init");
    lua_pushinteger(L, dist_size());
    return 1;
}
static int l_dist_rank(lua_State *L) { lua_pushinteger(L, dist_rank()); return 1; }
static int l_dist_size(lua_State *L) { lua_pushinteger(L, dist_size()); return 1; }
static int l_dist_have_mpi(lua_State *L) { lua_pushboolean(L, dist_have_mpi()); return 1; }
static int l_dist_have_nccl(lua_State *L) { lua_pushboolean(L, bert_nccl_available()); return 1; }
static int l_dist_env_size(lua_State *L) { lua_pushinteger(L, dist_env_size()); return 1; }
static int l_dist_bytes_sent(lua_State *L) { lua_pushinteger(L, (lua_Integer)dist_bytes_sent()); return 1; }
static int l_dist_allreduce_seconds(lua_State *L) { lua_pushnumber(L, dist_allreduce_seconds()); return 1; }

/* a Lua list of numbers -> malloc'd doubles */
static double *check_numbers(lua_State *L, int idx, const char *fn, size_t *n) {
    luaL_checktype(L, idx, LUA_TTABLE);
    size_t k = (size_t)luaL_len(L, idx);
    double *v = malloc(sizeof(double) * (k ? k : 1));
    if (!v) luaL_error(L, "%s: out of memory", fn);
    for (size_t i = 0; i < k; i++) {
        lua_geti(L, idx, (lua_Integer)i + 1);
        int ok = 0;
        v[i] = lua_tonumberx(L, -1, &ok);
        lua_pop(L, 1);
        if (!ok) { free(v); luaL_error(L, "%s: element %d of the list is not a number", fn, (int)i + 1); }
    }
    *n = k;
    return v;
}

static void push_numbers(lua_State *L, const double *v, size_t n) {
    lua_createtable(L, (int)n, 0);
    for (size_t i = 0; i < n; i++) {
        lua_Integer iv = (lua_Integer)v[i];
        if ((double)iv == v[i] && v[i] > -9e15 && v[i] < 9e15) lua_pushinteger(L, iv);
        else lua_pushnumber(L, v[i]);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
}

static int l_dist_allreduce(lua_State *L) {
    size_t n;
    double *v = check_numbers(L, 1, "dist_allreduce", &n);
    double *o = malloc(sizeof(double) * (n ? n : 1));
    int rc = o ? dist_allreduce_sum_f64(v, o, n) : bl_fail("out of memory");
    free(v);
    if (rc < 0) { free(o); lbl_check(L, -1, "dist_allreduce"); }
    push_numbers(L, o, n);
    free(o);
    return 1;
}

static int l_dist_allgather(lua_State *L) {
    size_t n, tot = 0;
    double *v = check_numbers(L, 1, "dist_allgather", &n), *o = NULL;
    int rc = dist_allgather_f64(v, n, &o, &tot);
    free(v);
    lbl_check(L, rc, "dist_allgather");
    push_numbers(L, o, tot);
    free(o);
    return 1;
}

static int l_dist_bcast(lua_State *L) {
    size_t n = 0;
    const char *s = dist_rank() == 0 ? luaL_checklstring(L, 1, &n) : luaL_optlstring(L, 1, "", NULL);
    char *buf = (char *)s;
    lbl_check(L, dist_bcast_bytes(&buf, &n), "dist_bcast");
    lua_pushlstring(L, buf, n);
    if (buf != s) free(buf);
    return 1;
}

static int l_dist_barrier(lua_State *L) {
    lbl_check(L, dist_barrier(), "dist_barrier");
    return 0;
}

void bl_open_dist(lua_State *L) {
    static const luaL_Reg fns[] = {
        {"dist_init", l_dist_init},       {"dist_rank", l_dist_rank},         {"dist_size", l_dist_size},
        {"dist_have_mpi", l_dist_have_mpi}, {"dist_env_size", l_dist_env_size}, {"dist_allreduce", l_dist_allreduce},
        {"dist_allgather", l_dist_allgather}, {"dist_bcast", l_dist_bcast},   {"dist_barrier", l_dist_barrier},
        {"dist_bytes_sent", l_dist_bytes_sent}, {"dist_have_nccl", l_dist_have_nccl},
        {"dist_allreduce_seconds", l_dist_allreduce_seconds}, {NULL, NULL}};
    luaL_setfuncs(L, fns, 0);
}
