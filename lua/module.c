/* module.c: luaopen_bertlab, the entry point of build/bertlab.so, so that stock `lua5.4` can
 * `require("bertlab")` (package.cpath finding the .so). It returns the same table as inside `bertlab`:
 * the C core (bertlab.core, compiled into the .so) extended by the pure-Lua parts (bertlab/init.lua).
 * When package.path does not reach those Lua files, the folders next to the .so are tried: the checkout
 * (build/bertlab.so -> lua/) and an installed tree (PREFIX/lib/lua/5.4 -> PREFIX/share/lua/5.4). */
#define _GNU_SOURCE /* dladdr */
#include "lbl.h"
#include <dlfcn.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* Folders (relative to the .so's folder) whose bertlab/init.lua is the Lua part of this build. */
static const char *const module_lua_dirs[] = {"../lua", "../../../share/lua/5.4", NULL};

/* Prepends <dir>/?.lua to package.path for the first folder next to the .so that holds
 * bertlab/init.lua; does nothing when package.path already finds it or none is found. */
static void module_add_path(lua_State *L) {
    lua_getglobal(L, "package");
    lua_getfield(L, -1, "path");
    const char *path = lua_tostring(L, -1);
    lua_getfield(L, -2, "searchpath");
    lua_pushliteral(L, "bertlab.init");
    lua_pushstring(L, path ? path : "");
    lua_call(L, 2, 1);
    int found = !lua_isnil(L, -1);
    lua_pop(L, 1);
    Dl_info info;
    char sodir[PATH_MAX];
    if (!found && dladdr((void *)module_add_path, &info) && info.dli_fname) {
        snprintf(sodir, sizeof sodir, "%s", info.dli_fname);
        char *slash = strrchr(sodir, '/');
        if (slash) *slash = 0; else snprintf(sodir, sizeof sodir, ".");
        for (int i = 0; module_lua_dirs[i]; i++) {
            char init[2 * PATH_MAX];
            snprintf(init, sizeof init, "%s/%s/bertlab/init.lua", sodir, module_lua_dirs[i]);
            if (access(init, R_OK) == 0) {
                lua_pushfstring(L, "%s/%s/?.lua;%s", sodir, module_lua_dirs[i], path ? path : "");
                lua_setfield(L, -3, "path");
                break;
            }
        }
    }
    lua_pop(L, 2);
}

int luaopen_bertlab(lua_State *L) {
    luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
    lua_pushcfunction(L, luaopen_bertlab_core);
    lua_setfield(L, -2, "bertlab.core");
    lua_pop(L, 1);
    module_add_path(L);
    lua_getglobal(L, "require");
    lua_pushliteral(L, "bertlab.init");
    lua_call(L, 1, 1); /* an error lists the folders searched for bertlab/init.lua */
    return 1;
}
