/* main.c: the `bertlab` command: runs a Lua 5.4 script with the bertlab module preloaded.
 *   bertlab SCRIPT.lua [ARGS...]   bertlab -e CODE [SCRIPT [ARGS...]]   bertlab -   (script on stdin)
 * The script's arguments are in `arg` as the `lua` command sets them; an error prints the message
 * with a traceback and exits 1. */
#include "lbl.h"
#include <lualib.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef BERTLAB_VERSION
#define BERTLAB_VERSION "0.0.0"
#endif

static const char *progname = "bertlab";

static void usage(FILE *f) {
    fprintf(f,
            "usage: %s [options] [SCRIPT.lua [ARGS...]]\n"
            "Runs a Lua 5.4 script with the bertlab module preloaded (local bl = require(\"bertlab\")).\n"
            "options:\n"
            "  -e CODE      run CODE (before SCRIPT, if one is given)\n"
            "  -            read the script from standard input\n"
            "  --version    print the version and exit\n"
            "  --help       print this help and exit\n"
            "examples:\n"
            "  %s experiments/conference.lua --epochs 5\n"
            "  %s -e 'local bl=require\"bertlab\"; print(bl.zeros({2,3}))'\n",
            progname, progname, progname);
}

static int msghandler(lua_State *L) {
    const char *msg = lua_tostring(L, 1);
    if (msg == NULL) {
        if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING) return 1;
        msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
    }
    luaL_traceback(L, L, msg, 1);
    return 1;
}

static int report(lua_State *L, int status) {
    if (status != LUA_OK) {
        fprintf(stderr, "%s: %s\n", progname, lua_tostring(L, -1));
        fflush(stderr);
        lua_pop(L, 1);
    }
    return status;
}

static int docall(lua_State *L, int narg) {
    int base = lua_gettop(L) - narg;
    lua_pushcfunction(L, msghandler);
    lua_insert(L, base);
    int status = lua_pcall(L, narg, 0, base);
    lua_remove(L, base);
    return status;
}

/* package.path gains <root>/lua/?.lua (a checkout) and <root>/share/lua/5.4/?.lua (`make install`'s
 * folder for the Lua modules), root being the folder above bin/ (or $BERTLAB_HOME). */
static void set_paths(lua_State *L) {
    char root[PATH_MAX];
    const char *home = getenv("BERTLAB_HOME");
    if (home && *home) {
        snprintf(root, sizeof root, "%s", home);
    } else {
        char exe[PATH_MAX];
        ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
        if (n <= 0) return;
        exe[n] = 0;
        char *dir = dirname(exe); /* .../bin */
        snprintf(root, sizeof root, "%s", dirname(dir));
    }
    lua_getglobal(L, "package");
    lua_getfield(L, -1, "path");
    lua_pushfstring(L, "%s/lua/?.lua;%s/lua/?/init.lua;%s/share/lua/5.4/?.lua;%s/share/lua/5.4/?/init.lua;%s",
                    root, root, root, root, lua_tostring(L, -1));
    lua_setfield(L, -3, "path");
    lua_pop(L, 1);
    lua_pushstring(L, root);
    lua_setfield(L, -2, "bertlab_root");
    lua_pop(L, 1);
}

static void create_arg(lua_State *L, char **argv, int argc, int script) {
    lua_createtable(L, argc - script - 1, script + 1);
    for (int i = 0; i < argc; i++) {
        lua_pushstring(L, argv[i]);
        lua_rawseti(L, -2, i - script);
    }
    lua_setglobal(L, "arg");
}

int main(int argc, char **argv) {
    if (argc > 0 && argv[0]) progname = "bertlab";
    int script = 0; /* index of the script in argv, 0 if none */
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) { usage(stdout); return 0; }
        if (!strcmp(argv[i], "--version") || !strcmp(argv[i], "-v")) {
            printf("bertlab %s (%s)\n", BERTLAB_VERSION, LUA_RELEASE);
            return 0;
        }
        if (!strcmp(argv[i], "-e")) {
            if (i + 1 >= argc) { fprintf(stderr, "%s: '-e' needs an argument\n", progname); usage(stderr); return 1; }
            i++;
            continue;
        }
        if (!strcmp(argv[i], "--")) { if (i + 1 < argc) script = i + 1; break; }
        if (argv[i][0] == '-' && argv[i][1] != 0) {
            fprintf(stderr, "%s: unrecognized option '%s'\n", progname, argv[i]);
            usage(stderr);
            return 1;
        }
        script = i;
        break;
    }
    int has_e = 0;
    for (int i = 1; i < (script ? script : argc); i++) if (!strcmp(argv[i], "-e")) has_e = 1;
    if (!script && !has_e) { usage(stderr); return 1; }

    lua_State *L = luaL_newstate();
    if (!L) { fprintf(stderr, "%s: cannot create Lua state: not enough memory\n", progname); return 1; }
    luaL_openlibs(L);
    set_paths(L);
    luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
    lua_pushcfunction(L, luaopen_bertlab_core);
    lua_setfield(L, -2, "bertlab.core");
    lua_pop(L, 1);
    create_arg(L, argv, argc, script ? script : argc - 1);

    int status = LUA_OK;
    for (int i = 1; i < (script ? script : argc) && status == LUA_OK; i++) {
        if (!strcmp(argv[i], "-e")) {
            status = luaL_loadbuffer(L, argv[i + 1], strlen(argv[i + 1]), "=(command line)");
            if (status == LUA_OK) status = docall(L, 0);
            report(L, status);
            i++;
        }
    }
    if (status == LUA_OK && script) {
        const char *fname = strcmp(argv[script], "-") ? argv[script] : NULL;
        status = luaL_loadfile(L, fname);
        if (status == LUA_OK) {
            int n = argc - script - 1;
            luaL_checkstack(L, n + 3, "too many arguments to script");
            for (int i = script + 1; i < argc; i++) lua_pushstring(L, argv[i]);
            status = docall(L, n);
        }
        report(L, status);
    }
    lua_close(L);
    return status == LUA_OK ? 0 : 1;
}
