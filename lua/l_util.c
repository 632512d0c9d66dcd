/* l_util.c: small OS helpers for scripts that record their runs and draw progress: bl.sha256_file,
 * bl.sha256 (runtime/sha256.c) and bl.terminal_width (runtime/term.c). */
#include "lbl.h"
#include "../runtime/sha256.h"
#include "../runtime/term.h"
#include <stdio.h>

/* bl.sha256_file(path) -> 64 hex digits; a missing or unreadable file raises an error naming it. */
static int util_sha256_file(lua_State *L) {
    const char *path = luaL_checkstring(L, 1);
    char hex[65];
    lbl_check(L, sha256_file(path, hex), "sha256_file");
    lua_pushstring(L, hex);
    return 1;
}

/* bl.sha256(s) -> 64 hex digits of the bytes of string s. */
static int util_sha256(lua_State *L) {
    size_t n;
    const char *s = luaL_checklstring(L, 1, &n);
    sha256_t st;
    uint8_t d[32];
    char hex[65];
    sha256_init(&st);
    sha256_update(&st, s, n);
    sha256_final(&st, d);
    sha256_hex(d, hex);
    lua_pushstring(L, hex);
    return 1;
}

/* bl.terminal_width([f]) -> columns of the terminal behind f (an io file or a descriptor number;
 * default io.stderr), asked at each call; nil when f is not a terminal. */
static int util_terminal_width(lua_State *L) {
    int fd = 2;
    if (lua_type(L, 1) == LUA_TNUMBER) {
        fd = (int)luaL_checkinteger(L, 1);
    } else if (!lua_isnoneornil(L, 1)) {
        luaL_Stream *s = luaL_testudata(L, 1, LUA_FILEHANDLE);
        if (!s) return luaL_argerror(L, 1, "file handle or descriptor number expected");
        if (!s->closef || !s->f) return luaL_argerror(L, 1, "file is closed");
        fd = fileno(s->f);
    }
    int w = term_width(fd);
    if (w < 0) lua_pushnil(L); else lua_pushinteger(L, w);
    return 1;
}

static const luaL_Reg util_funcs[] = {
    {"sha256_file", util_sha256_file}, {"sha256", util_sha256}, {"terminal_width", util_terminal_width},
    {NULL, NULL}};

void bl_open_util(lua_State *L) { luaL_setfuncs(L, util_funcs, 0); }
