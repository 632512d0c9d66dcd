/* l_io.c: Lua bindings for checkpoint I/O: bl.load_safetensors / bl.save_safetensors.
 * Everything allocated in C while Lua may raise an error is owned by a userdata with __gc, so a
 * failing call leaks nothing. */
#include "lbl.h"
#include "../runtime/error.h"
#include "../runtime/safetensors.h"
#include <jansson.h>
#include <string.h>

#define LBL_STFILE "bertlab.SafetensorsFile"
#define LBL_SCRATCH "bertlab.SaveScratch"

static int stfile_gc(lua_State *L) {
    safetensors_close(luaL_checkudata(L, 1, LBL_STFILE));
    return 0;
}

/* bl.load_safetensors(path) -> {name = Tensor}, {key = value} */
static int io_load_safetensors(lua_State *L) {
    const char *path = luaL_checkstring(L, 1);
    safetensors_t *st = lua_newuserdatauv(L, sizeof *st, 0);
    memset(st, 0, sizeof *st); /* safe, empty state before anything can fail */
    luaL_setmetatable(L, LBL_STFILE);
    if (safetensors_open(st, path) != 0) return lbl_error(L);
    lua_createtable(L, 0, st->n);
    for (int i = 0; i < st->n; i++) {
        lbl_pushtensor(L, safetensors_read_tensor(st, &st->entries[i]));
        lua_setfield(L, -2, st->entries[i].name);
    }
    lua_newtable(L);
    if (st->metadata_json) {
        json_t *meta = json_loads(st->metadata_json, 0, NULL);
        const char *k;
        json_t *v;
        json_object_foreach(meta, k, v) {
            lua_pushstring(L, json_string_value(v));
            lua_setfield(L, -2, k);
        }
        json_decref(meta);
    }
    safetensors_close(st); /* the tensors own copies; free the file's bytes now, not at the next GC */
    return 2;
}

/* Scratch owned by a userdata: the write list and the metadata JSON text. */
typedef struct {
    st_write_t *w;
    char *meta;
} save_scratch_t;

static void scratch_free(save_scratch_t *s) {
    free(s->w);
    free(s->meta);
    s->w = NULL;
    s->meta = NULL;
}

static int scratch_gc(lua_State *L) {
    scratch_free(lua_touserdata(L, 1));
    return 0;
}

/* Metadata table {string = string|number} -> JSON text (malloc'd); raises on a bad entry, naming
 * argument #3 of fn (lbl.h). */
char *lbl_metadata_json(lua_State *L, int idx, const char *fn) {
    /* check everything first, so no Lua error can interrupt the jansson building below */
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        if (lua_type(L, -2) != LUA_TSTRING)
            luaL_error(L, "bad argument #3 to '%s' (metadata keys must be strings, got %s)", fn,
                       luaL_typename(L, -2));
        if (lua_type(L, -1) != LUA_TSTRING && lua_type(L, -1) != LUA_TNUMBER)
            luaL_error(L, "bad argument #3 to '%s' (metadata '%s' must be a string, got %s)", fn,
                       lua_tostring(L, -2), luaL_typename(L, -1));
        lua_pop(L, 1);
    }
    json_t *obj = json_object();
    int ok = obj != NULL;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        const char *k = lua_tostring(L, -2);
        const char *v = lua_tostring(L, -1); /* converts a number in place: the key stays a string */
        if (ok) ok = json_object_set_new(obj, k, json_string(v)) == 0;
        lua_pop(L, 1);
    }
    char *text = ok ? json_dumps(obj, JSON_COMPACT) : NULL;
    json_decref(obj);
    if (!text) luaL_error(L, "bad argument #3 to '%s' (metadata is not valid UTF-8 text)", fn);
    return text;
}

/* bl.save_safetensors(path, {name = Tensor}[, metadata]) */
static int io_save_safetensors(lua_State *L) {
    const char *path = luaL_checkstring(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    if (!lua_isnoneornil(L, 3)) luaL_checktype(L, 3, LUA_TTABLE);
    lua_settop(L, 3);
    save_scratch_t *s = lua_newuserdatauv(L, sizeof *s, 0); /* index 4 */
    s->w = NULL;
    s->meta = NULL;
    luaL_setmetatable(L, LBL_SCRATCH);
    int n = 0;
    lua_pushnil(L);
    while (lua_next(L, 2)) {
        if (lua_type(L, -2) != LUA_TSTRING)
            luaL_error(L, "bad argument #2 to 'save_safetensors' (tensor names must be strings, got %s)",
                       luaL_typename(L, -2));
        ltensor_t *box = luaL_testudata(L, -1, LBL_TENSOR);
        if (!box)
            luaL_error(L, "bad argument #2 to 'save_safetensors' (entry '%s' is %s, expected %s)",
                       lua_tostring(L, -2), luaL_typename(L, -1), LBL_TENSOR);
        tensor_t *t = lbl_boxtensor(box);
        if (!t || (!t->data && t->numel > 0))
            luaL_error(L, "bad argument #2 to 'save_safetensors' (tensor '%s' was freed)", lua_tostring(L, -2));
        if (t->device != DEV_CPU)
            luaL_error(L, "save_safetensors: tensor '%s' is on %s; move it to the CPU first", lua_tostring(L, -2),
                       device_name(t->device));
        n++;
        lua_pop(L, 1);
    }
    s->w = calloc(n ? (size_t)n : 1, sizeof *s->w);
    if (!s->w) luaL_error(L, "save_safetensors: out of memory");
    int i = 0;
    lua_pushnil(L);
    while (lua_next(L, 2)) {
        tensor_t *t = lbl_totensor(L, -1);
        /* the name string stays alive: it is a key of the table at index 2 */
        s->w[i++] = (st_write_t){lua_tostring(L, -2), t->dtype, t->ndim, t->shape, t->data, NULL, 0};
        lua_pop(L, 1);
    }
    if (!lua_isnil(L, 3)) s->meta = lbl_metadata_json(L, 3, "save_safetensors");
    if (safetensors_save(path, s->w, n, s->meta) != 0) lbl_error(L);
    scratch_free(s); /* free now rather than at the next collection */
    return 0;
}

static const luaL_Reg io_funcs[] = {
    {"load_safetensors", io_load_safetensors}, {"save_safetensors", io_save_safetensors}, {NULL, NULL}};

void bl_open_io(lua_State *L) {
    if (luaL_newmetatable(L, LBL_STFILE)) {
        lua_pushcfunction(L, stfile_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_pop(L, 1);
    if (luaL_newmetatable(L, LBL_SCRATCH)) {
        lua_pushcfunction(L, scratch_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_pop(L, 1);
    luaL_setfuncs(L, io_funcs, 0);
}
