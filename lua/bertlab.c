/* bertlab.c: the `bertlab.core` module: one table that each binding file fills in. */
#include "lbl.h"
#include "../runtime/device.h"
#include "../runtime/error.h"
#include <time.h>

#ifndef BERTLAB_VERSION
#define BERTLAB_VERSION "0.0.0"
#endif

static int l_cuda_available(lua_State *L) {
    lua_pushboolean(L, device_cuda_available());
    return 1;
}

static int l_cuda_describe(lua_State *L) {
    lua_pushstring(L, device_cuda_describe());
    return 1;
}

/* bl.device(): the device scripts use by default: "cuda" when it can be used, else "cpu". */
static int l_device(lua_State *L) {
    lua_pushstring(L, device_label(device_default()));
    return 1;
}

/* bl.cuda_memory() / bl.cpu_memory() → {current=, peak=} bytes allocated through that backend
 * (tensors, parameters, gradients, moments, activations). */
static int push_memory(lua_State *L, int dev, const char *fn) {
    size_t cur = 0, peak = 0;
    if (device_memory(dev, &cur, &peak) != 0) return luaL_error(L, "%s: %s", fn, bl_errmsg());
    lua_createtable(L, 0, 2);
    lua_pushinteger(L, (lua_Integer)cur);
    lua_setfield(L, -2, "current");
    lua_pushinteger(L, (lua_Integer)peak);
    lua_setfield(L, -2, "peak");
    return 1;
}

static int l_cuda_memory(lua_State *L) { return push_memory(L, BL_DEVICE_CUDA, "cuda_memory"); }
static int l_cpu_memory(lua_State *L) { return push_memory(L, BL_DEVICE_CPU, "cpu_memory"); }

/* bl.clock(): seconds on a monotonic wall clock (os.clock sums CPU time over threads). */
static int l_clock(lua_State *L) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    lua_pushnumber(L, (lua_Number)ts.tv_sec + (lua_Number)ts.tv_nsec * 1e-9);
    return 1;
}

/* bl.set_num_threads(n): threads for OpenBLAS and the OpenMP loops; bl.get_num_threads(). */
static int l_set_num_threads(lua_State *L) {
    lua_Integer n = luaL_checkinteger(L, 1);
    if (n < 1 || n > 1024) return luaL_argerror(L, 1, "thread count must be between 1 and 1024");
    device_set_num_threads((int)n);
    return 0;
}

static int l_get_num_threads(lua_State *L) {
    lua_pushinteger(L, device_get_num_threads());
    return 1;
}

static const luaL_Reg core_funcs[] = {
    {"cuda_available", l_cuda_available}, {"cuda_describe", l_cuda_describe}, {"device", l_device},
    {"cuda_memory", l_cuda_memory}, {"cpu_memory", l_cpu_memory}, {"clock", l_clock},
    {"set_num_threads", l_set_num_threads}, {"get_num_threads", l_get_num_threads}, {NULL, NULL}};

int luaopen_bertlab_core(lua_State *L) {
    lua_newtable(L);
    lua_pushstring(L, BERTLAB_VERSION);
    lua_setfield(L, -2, "version");
    luaL_setfuncs(L, core_funcs, 0);
    bl_open_tensor(L);
    bl_open_data(L);
    bl_open_tokenizer(L);
    bl_open_io(L);
    bl_open_model(L);
    bl_open_train(L);
    bl_open_util(L);
    bl_open_dist(L);
    return 1;
}
