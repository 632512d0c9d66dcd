/* lbl.c: shared binding helpers: tensor userdata boxing, runtime error propagation, option tables. */
#include "lbl.h"
#include "../runtime/error.h"
#include <string.h>

tensor_t *lbl_boxtensor(ltensor_t *u) {
    if (u->t && u->ready) u->ready(u->ready_ctx);
    return u->t;
}

tensor_t *lbl_totensor(lua_State *L, int idx) {
    ltensor_t *u = luaL_testudata(L, idx, LBL_TENSOR);
    return u ? lbl_boxtensor(u) : NULL;
}

tensor_t *lbl_checktensor(lua_State *L, int idx) {
    ltensor_t *u = luaL_checkudata(L, idx, LBL_TENSOR);
    if (!u->t) luaL_argerror(L, idx, "tensor was freed");
    return lbl_boxtensor(u);
}

tensor_t *lbl_checkhost(lua_State *L, int idx) {
    tensor_t *t = lbl_checktensor(L, idx);
    if (t->device == DEV_CPU) return t;
    tensor_t *h = tensor_on_host(t);
    lbl_pushtensor(L, h); /* raises when the copy failed */
    return h;
}

static ltensor_t *newbox(lua_State *L) {
    ltensor_t *u = lua_newuserdatauv(L, sizeof *u, 1);
    u->t = NULL; /* safe, empty state before anything can fail */
    u->ready = NULL;
    u->ready_ctx = NULL;
    luaL_setmetatable(L, LBL_TENSOR);
    lua_newtable(L);
    lua_setiuservalue(L, -2, 1);
    return u;
}

void lbl_pushtensor(lua_State *L, tensor_t *t) {
    if (!t) lbl_error(L);
    ltensor_t *u = newbox(L);
    u->t = t;
}

void lbl_pushview_ready(lua_State *L, tensor_t *t, int owner_idx, void (*ready)(void *ctx), void *ctx) {
    owner_idx = lua_absindex(L, owner_idx);
    if (!t) lbl_error(L);
    ltensor_t *u = newbox(L);
    u->t = t;
    u->ready = ready;
    u->ready_ctx = ctx;
    lua_pushvalue(L, owner_idx);
    lbl_setattr(L, -2, "_owner");
}

void lbl_pushview(lua_State *L, tensor_t *t, int owner_idx) { lbl_pushview_ready(L, t, owner_idx, NULL, NULL); }

void lbl_setattr(lua_State *L, int tensor_idx, const char *key) {
    tensor_idx = lua_absindex(L, tensor_idx);
    lua_getiuservalue(L, tensor_idx, 1);
    lua_insert(L, -2);
    lua_setfield(L, -2, key);
    lua_pop(L, 1);
}

int lbl_getattr(lua_State *L, int tensor_idx, const char *key) {
    tensor_idx = lua_absindex(L, tensor_idx);
    if (lua_getiuservalue(L, tensor_idx, 1) != LUA_TTABLE) {
        lua_pop(L, 1);
        lua_pushnil(L);
        return LUA_TNIL;
    }
    int ty = lua_getfield(L, -1, key);
    lua_remove(L, -2);
    return ty;
}

int lbl_error(lua_State *L) { return luaL_error(L, "%s", bl_errmsg()); }

void lbl_check(lua_State *L, int rc, const char *what) {
    if (rc == 0) return;
    if (what) luaL_error(L, "%s: %s", what, bl_errmsg());
    luaL_error(L, "%s", bl_errmsg());
}

static int getopt(lua_State *L, int idx, const char *key) {
    if (idx == 0 || lua_isnoneornil(L, idx)) return 0;
    luaL_checktype(L, idx, LUA_TTABLE);
    if (lua_getfield(L, idx, key) == LUA_TNIL) {
        lua_pop(L, 1);
        return 0;
    }
    return 1;
}

lua_Integer lbl_optfield_int(lua_State *L, int idx, const char *key, lua_Integer def) {
    idx = idx ? lua_absindex(L, idx) : 0;
    if (!getopt(L, idx, key)) return def;
    int ok;
    lua_Integer v = lua_tointegerx(L, -1, &ok);
    if (!ok) luaL_error(L, "option '%s' must be an integer, got %s", key, luaL_typename(L, -1));
    lua_pop(L, 1);
    return v;
}

lua_Number lbl_optfield_num(lua_State *L, int idx, const char *key, lua_Number def) {
    idx = idx ? lua_absindex(L, idx) : 0;
    if (!getopt(L, idx, key)) return def;
    int ok;
    lua_Number v = lua_tonumberx(L, -1, &ok);
    if (!ok) luaL_error(L, "option '%s' must be a number, got %s", key, luaL_typename(L, -1));
    lua_pop(L, 1);
    return v;
}

int lbl_optfield_bool(lua_State *L, int idx, const char *key, int def) {
    idx = idx ? lua_absindex(L, idx) : 0;
    if (!getopt(L, idx, key)) return def;
    if (!lua_isboolean(L, -1))
        luaL_error(L, "option '%s' must be a boolean, got %s", key, luaL_typename(L, -1));
    int v = lua_toboolean(L, -1);
    lua_pop(L, 1);
    return v;
}

const char *lbl_optfield_str(lua_State *L, int idx, const char *key, const char *def) {
    idx = idx ? lua_absindex(L, idx) : 0;
    if (!getopt(L, idx, key)) return def;
    if (lua_type(L, -1) != LUA_TSTRING)
        luaL_error(L, "option '%s' must be a string, got %s", key, luaL_typename(L, -1));
    const char *s = lua_tostring(L, -1);
    lua_pop(L, 1); /* the string stays alive: the options table holds it */
    return s;
}

void lbl_checkoptions_hint(lua_State *L, int idx, const char *fn, const char *const *accepted,
                          const char *hint_key, const char *hint) {
    if (idx == 0 || lua_isnoneornil(L, idx)) return;
    idx = lua_absindex(L, idx);
    luaL_checktype(L, idx, LUA_TTABLE);
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pop(L, 1); /* the value */
        if (lua_type(L, -1) != LUA_TSTRING)
            luaL_error(L, "%s: option keys must be strings, got %s", fn, luaL_typename(L, -1));
        const char *k = lua_tostring(L, -1);
        int ok = 0;
        for (const char *const *a = accepted; *a && !ok; a++) ok = strcmp(k, *a) == 0;
        if (ok) continue;
        if (hint_key && strcmp(k, hint_key) == 0) luaL_error(L, "%s: unknown option '%s' (%s)", fn, k, hint);
        luaL_Buffer b;
        luaL_buffinit(L, &b);
        for (const char *const *a = accepted; *a; a++) {
            if (a != accepted) luaL_addstring(&b, ", ");
            luaL_addstring(&b, *a);
        }
        luaL_pushresult(&b);
        luaL_error(L, "%s: unknown option '%s' (options: %s)", fn, k, lua_tostring(L, -1));
    }
}

void lbl_checkoptions(lua_State *L, int idx, const char *fn, const char *const *accepted) {
    lbl_checkoptions_hint(L, idx, fn, accepted, NULL, NULL);
}

void lbl_newclass(lua_State *L, const char *name, const luaL_Reg *methods, const luaL_Reg *meta) {
    luaL_newmetatable(L, name);
    if (meta) luaL_setfuncs(L, meta, 0);
    lua_getfield(L, -1, "__index");
    int has_index = !lua_isnil(L, -1);
    lua_pop(L, 1);
    if (!has_index && methods) {
        lua_newtable(L);
        luaL_setfuncs(L, methods, 0);
        lua_setfield(L, -2, "__index");
    } else if (methods) {
        /* a custom __index: keep the methods reachable in field "methods" */
        lua_newtable(L);
        luaL_setfuncs(L, methods, 0);
        lua_setfield(L, -2, "methods");
    }
    lua_pop(L, 1);
}
