/* bertlab.c: the `bertlab.core` module: one table that each binding file fills in. */
#include "lbl.h"
#include "../kernels/kernels.h"

#ifndef BERTLAB_VERSION
#define BERTLAB_VERSION "0.0.0"
#endif

static int l_cuda_available(lua_State *L) {
    lua_pushboolean(L, k_cuda_available());
    return 1;
}

static int l_cuda_describe(lua_State *L) {
    lua_pushstring(L, k_cuda_describe());
    return 1;
}

int luaopen_bertlab_core(lua_State *L) {
    lua_newtable(L);
    lua_pushstring(L, BERTLAB_VERSION);
    lua_setfield(L, -2, "version");
    lua_pushcfunction(L, l_cuda_available);
    lua_setfield(L, -2, "cuda_available");
    lua_pushcfunction(L, l_cuda_describe);
    lua_setfield(L, -2, "cuda_describe");
    bl_open_tensor(L);
    bl_open_data(L);
    bl_open_tokenizer(L);
    bl_open_io(L);
    bl_open_model(L);
    bl_open_train(L);
    return 1;
}
