/* l_tensor.c: the bertlab.Tensor userdata: creation from Lua tables and factories, inspection,
 * row indexing, argmax, elementwise arithmetic, PyTorch-style printing, deterministic freeing. */
#include "lbl.h"
#include "../runtime/device.h"
#include "../runtime/error.h"
#include "../runtime/rng.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- shapes and dtypes from Lua arguments ------------------------------------------------------ */

/* Reads a shape given as a table {2,3} at idx, or as integers idx..top. Returns ndim. */
static int check_shape_args(lua_State *L, int idx, int64_t *shape) {
    int ndim = 0;
    if (lua_istable(L, idx)) {
        lua_Integer n = luaL_len(L, idx);
        if (n > TENSOR_MAXDIM) luaL_argerror(L, idx, "too many dimensions");
        for (lua_Integer i = 1; i <= n; i++) {
            lua_geti(L, idx, i);
            int ok;
            lua_Integer v = lua_tointegerx(L, -1, &ok);
            if (!ok || v < 0)
                luaL_error(L, "bad shape: element %d must be a non-negative integer, got %s", (int)i,
                           ok ? "a negative number" : luaL_typename(L, -1));
            shape[ndim++] = v;
            lua_pop(L, 1);
        }
        return ndim;
    }
    int top = lua_gettop(L);
    for (int i = idx; i <= top && lua_type(L, i) == LUA_TNUMBER; i++) {
        if (ndim == TENSOR_MAXDIM) luaL_argerror(L, i, "too many dimensions");
        lua_Integer v = luaL_checkinteger(L, i);
        if (v < 0) luaL_argerror(L, i, "size must be non-negative");
        shape[ndim++] = v;
    }
    return ndim;
}

/* dtype from a string or an options table {dtype=...} at idx; default `def`. */
static dtype_t opt_dtype(lua_State *L, int idx, dtype_t def) {
    const char *name = NULL;
    if (lua_type(L, idx) == LUA_TSTRING) name = lua_tostring(L, idx);
    else if (lua_istable(L, idx)) name = lbl_optfield_str(L, idx, "dtype", NULL);
    if (!name) return def;
    dtype_t dt;
    if (dtype_from_name(name, &dt)) luaL_argerror(L, idx, bl_errmsg());
    if (dt == DT_BF16) luaL_argerror(L, idx, "bfloat16 tensors are only created on the GPU");
    return dt;
}

/* The position after the shape arguments, where an optional dtype may follow. */
static int after_shape(lua_State *L, int idx) {
    if (lua_istable(L, idx)) return idx + 1;
    while (lua_type(L, idx) == LUA_TNUMBER) idx++;
    return idx;
}

/* A Lua number stored into an int64 tensor: integers as they are, floats only when finite and in
 * range (a NaN would otherwise become INT64_MIN); `fn` and the 1-based element name the error. */
static int64_t check_int64_value(lua_State *L, int idx, const char *fn, int64_t elem) {
    if (lua_isinteger(L, idx)) return (int64_t)lua_tointeger(L, idx);
    double v = lua_tonumber(L, idx);
    if (!(v >= -9223372036854775808.0 && v < 9223372036854775808.0))
        luaL_error(L, "%s: element %I is %f, which is not an int64 value (NaN, infinite or out of range)", fn,
                   (LUAI_UACINT)(elem + 1), v);
    return (int64_t)v;
}

static int fill_factory(lua_State *L, double value) {
    int64_t shape[TENSOR_MAXDIM];
    int ndim = check_shape_args(L, 1, shape);
    dtype_t dt = opt_dtype(L, after_shape(L, 1), DT_F32);
    tensor_t *t = tensor_new(dt, ndim, shape);
    if (t && value != 0)
        for (int64_t i = 0; i < t->numel; i++) tensor_set(t, i, value);
    lbl_pushtensor(L, t);
    return 1;
}

static int l_zeros(lua_State *L) { return fill_factory(L, 0); }
static int l_ones(lua_State *L) { return fill_factory(L, 1); }

static int l_full(lua_State *L) {
    int64_t shape[TENSOR_MAXDIM];
    luaL_checktype(L, 1, LUA_TTABLE);
    int ndim = check_shape_args(L, 1, shape);
    lua_Number v = luaL_checknumber(L, 2);
    dtype_t dt = opt_dtype(L, 3, lua_isinteger(L, 2) ? DT_I64 : DT_F32);
    if (dt == DT_I64) check_int64_value(L, 2, "full", 0);
    tensor_t *t = tensor_new(dt, ndim, shape);
    if (t)
        for (int64_t i = 0; i < t->numel; i++) tensor_set(t, i, v);
    lbl_pushtensor(L, t);
    return 1;
}

static int l_randn(lua_State *L) {
    int64_t shape[TENSOR_MAXDIM];
    int ndim = check_shape_args(L, 1, shape);
    lbl_pushtensor(L, tensor_randn(ndim, shape));
    return 1;
}

/* bl.arange(stop) / bl.arange(start, stop[, step][, dtype]); integers give int64 as in torch. */
static int l_arange(lua_State *L) {
    int nnum = 0;
    while (lua_type(L, nnum + 1) == LUA_TNUMBER && nnum < 3) nnum++;
    if (nnum == 0) luaL_argerror(L, 1, "number expected");
    double start = 0, stop, step = 1;
    int all_int = 1;
    for (int i = 1; i <= nnum; i++) all_int &= lua_isinteger(L, i);
    if (nnum == 1) stop = lua_tonumber(L, 1);
    else {
        start = lua_tonumber(L, 1);
        stop = lua_tonumber(L, 2);
        if (nnum == 3) step = lua_tonumber(L, 3);
    }
    dtype_t dt = opt_dtype(L, nnum + 1, all_int ? DT_I64 : DT_F32);
    lbl_pushtensor(L, tensor_arange(dt, start, stop, step));
    return 1;
}

/* Nested Lua tables → shape, checking that the nesting is rectangular. */
static void table_shape(lua_State *L, int idx, int depth, int64_t *shape, int *ndim, int *all_int) {
    lua_Integer n = luaL_len(L, idx);
    if (depth >= TENSOR_MAXDIM) luaL_error(L, "bl.tensor: nesting deeper than %d", TENSOR_MAXDIM);
    if (depth == *ndim) {
        shape[depth] = n;
        (*ndim)++;
    } else if (shape[depth] != n) {
        luaL_error(L, "bl.tensor: ragged nested table (a row of length %d where %d was expected)", (int)n,
                   (int)shape[depth]);
    }
    for (lua_Integer i = 1; i <= n; i++) {
        int ty = lua_geti(L, idx, i);
        if (ty == LUA_TTABLE) {
            if (depth + 1 < *ndim || (depth + 1 == *ndim && i == 1))
                table_shape(L, lua_gettop(L), depth + 1, shape, ndim, all_int);
            else
                luaL_error(L, "bl.tensor: ragged nested table (a table where a number was expected at depth %d)", depth + 1);
        } else if (ty != LUA_TNUMBER) {
            luaL_error(L, "bl.tensor: element %d at depth %d is %s, expected a number", (int)i, depth + 1,
                       luaL_typename(L, -1));
        } else if (depth + 1 < *ndim) {
            luaL_error(L, "bl.tensor: ragged nested table (a number where a table was expected at depth %d)", depth + 1);
        } else if (!lua_isinteger(L, -1)) {
            *all_int = 0;
        }
        lua_pop(L, 1);
    }
}

static void table_fill(lua_State *L, int idx, int depth, int ndim, tensor_t *t, int64_t *pos) {
    lua_Integer n = luaL_len(L, idx);
    for (lua_Integer i = 1; i <= n; i++) {
        lua_geti(L, idx, i);
        if (depth + 1 < ndim) table_fill(L, lua_gettop(L), depth + 1, ndim, t, pos);
        else {
            if (t->dtype == DT_I64) {
                ((int64_t *)t->data)[*pos] = check_int64_value(L, -1, "tensor", *pos);
                (*pos)++;
            } else
                tensor_set(t, (*pos)++, lua_tonumber(L, -1));
        }
        lua_pop(L, 1);
    }
}

/* bl.tensor(data[, dtype | {dtype=}]): numbers or nested tables; Lua integers give int64. */
static int l_tensor(lua_State *L) {
    int64_t shape[TENSOR_MAXDIM];
    int ndim = 0, all_int = 1;
    if (lua_type(L, 1) == LUA_TNUMBER) {
        dtype_t dt = opt_dtype(L, 2, lua_isinteger(L, 1) ? DT_I64 : DT_F32);
        if (dt == DT_I64) check_int64_value(L, 1, "tensor", 0);
        tensor_t *t = tensor_new(dt, 0, shape);
        if (t && dt == DT_I64) ((int64_t *)t->data)[0] = check_int64_value(L, 1, "tensor", 0);
        else if (t) tensor_set(t, 0, lua_tonumber(L, 1));
        lbl_pushtensor(L, t);
        return 1;
    }
    luaL_checktype(L, 1, LUA_TTABLE);
    table_shape(L, 1, 0, shape, &ndim, &all_int);
    dtype_t dt = opt_dtype(L, 2, all_int ? DT_I64 : DT_F32);
    tensor_t *t = tensor_new(dt, ndim, shape);
    if (!t) return lbl_error(L);
    lbl_pushtensor(L, t);
    int64_t pos = 0;
    table_fill(L, 1, 0, ndim, t, &pos);
    return 1;
}

/* ---- methods --------------------------------------------------------------------------------- */

static int t_shape(lua_State *L) {
    tensor_t *t = lbl_checktensor(L, 1);
    lua_createtable(L, t->ndim, 0);
    for (int i = 0; i < t->ndim; i++) {
        lua_pushinteger(L, t->shape[i]);
        lua_rawseti(L, -2, i + 1);
    }
    return 1;
}

/* Resolves a 1-based dimension, negative counting from the end (-1 the last), as a 0-based index. */
static int check_dim(lua_State *L, int arg, const tensor_t *t) {
    lua_Integer d = luaL_checkinteger(L, arg);
    lua_Integer nd = t->ndim;
    if (d < 0) d = nd + 1 + d;
    if (d < 1 || d > nd)
        luaL_error(L, "dimension %d out of range (tensor has %d dimensions)", (int)luaL_checkinteger(L, arg), (int)nd);
    return (int)d - 1;
}

static int t_size(lua_State *L) {
    tensor_t *t = lbl_checktensor(L, 1);
    if (lua_isnoneornil(L, 2)) return t_shape(L);
    lua_pushinteger(L, t->shape[check_dim(L, 2, t)]);
    return 1;
}

static int t_dim(lua_State *L) {
    lua_pushinteger(L, lbl_checktensor(L, 1)->ndim);
    return 1;
}

static int t_numel(lua_State *L) {
    lua_pushinteger(L, lbl_checktensor(L, 1)->numel);
    return 1;
}

static int t_dtype(lua_State *L) {
    lua_pushstring(L, dtype_name(lbl_checktensor(L, 1)->dtype));
    return 1;
}

static int t_device(lua_State *L) {
    lua_pushstring(L, device_name(lbl_checktensor(L, 1)->device));
    return 1;
}

static void push_elem(lua_State *L, const tensor_t *t, int64_t i) {
    if (t->dtype == DT_I64) lua_pushinteger(L, ((const int64_t *)t->data)[i]);
    else lua_pushnumber(L, tensor_get(t, i));
}

static int t_item(lua_State *L) {
    tensor_t *t = lbl_checkhost(L, 1);
    if (t->numel != 1) {
        char s[128];
        return luaL_error(L, "item: tensor of shape %s has %d elements, expected exactly 1",
                          tensor_shape_str(t, s, sizeof s), (int)t->numel);
    }
    push_elem(L, t, 0);
    return 1;
}

static void totable_rec(lua_State *L, const tensor_t *t, int dim, int64_t off) {
    int64_t n = t->shape[dim], stride = 1;
    for (int d = dim + 1; d < t->ndim; d++) stride *= t->shape[d];
    luaL_checkstack(L, 4, "totable");
    lua_createtable(L, (int)n, 0);
    for (int64_t i = 0; i < n; i++) {
        if (dim == t->ndim - 1) push_elem(L, t, off + i);
        else totable_rec(L, t, dim + 1, off + i * stride);
        lua_rawseti(L, -2, i + 1);
    }
}

static int t_totable(lua_State *L) {
    tensor_t *t = lbl_checkhost(L, 1);
    if (t->ndim == 0) push_elem(L, t, 0);
    else totable_rec(L, t, 0, 0);
    return 1;
}

/* t:get(i, j, ...): one element by 1-based indices. */
static int t_get(lua_State *L) {
    int n = lua_gettop(L) - 1;
    tensor_t *t = lbl_checkhost(L, 1);
    if (n != t->ndim) return luaL_error(L, "get: expected %d indices, got %d", t->ndim, n);
    int64_t off = 0;
    for (int d = 0; d < t->ndim; d++) {
        lua_Integer i = luaL_checkinteger(L, d + 2);
        if (i < 1 || i > t->shape[d])
            return luaL_error(L, "get: index %d out of range for dimension %d of size %d", (int)i, d + 1,
                              (int)t->shape[d]);
        off = off * t->shape[d] + (i - 1);
    }
    push_elem(L, t, off);
    return 1;
}

/* t:index(rows): rows (first dimension) by a list or int64 tensor of 1-based indices. */
static int t_index(lua_State *L) {
    tensor_t *t = lbl_checktensor(L, 1);
    int64_t n;
    int64_t *idx;
    tensor_t *it = lbl_totensor(L, 2);
    if (it) {
        if (it->dtype != DT_I64 || it->ndim != 1) luaL_argerror(L, 2, "expected a 1-D int64 tensor of indices");
        it = lbl_checkhost(L, 2);
        n = it->numel;
        idx = lua_newuserdatauv(L, (size_t)(n ? n : 1) * sizeof *idx, 0);
        for (int64_t i = 0; i < n; i++) idx[i] = ((int64_t *)it->data)[i] - 1;
    } else {
        luaL_checktype(L, 2, LUA_TTABLE);
        n = luaL_len(L, 2);
        idx = lua_newuserdatauv(L, (size_t)(n ? n : 1) * sizeof *idx, 0);
        for (int64_t i = 0; i < n; i++) {
            lua_geti(L, 2, i + 1);
            int ok;
            lua_Integer v = lua_tointegerx(L, -1, &ok);
            if (!ok) luaL_error(L, "index: element %d of the index list is %s, expected an integer", (int)i + 1, luaL_typename(L, -1));
            idx[i] = v - 1;
            lua_pop(L, 1);
        }
    }
    lbl_pushtensor(L, tensor_index_rows(t, idx, n));
    return 1;
}

static int t_argmax(lua_State *L) {
    tensor_t *t = lbl_checktensor(L, 1);
    if (lua_isnoneornil(L, 2)) {
        /* over all elements, as torch.argmax(t) */
        int64_t n = t->numel;
        tensor_t flat = *t;
        flat.ndim = 1;
        flat.shape[0] = n;
        lbl_pushtensor(L, tensor_argmax(&flat, 0));
    } else {
        lbl_pushtensor(L, tensor_argmax(t, check_dim(L, 2, t)));
    }
    /* values stay 0-based as in torch: argmax of logits is a class id, like the labels */
    return 1;
}

/* a + b where either side may be a Lua number (made a one-element tensor of the other's dtype). */
static int arith(lua_State *L, int mul) {
    tensor_t *a = lbl_totensor(L, 1), *b = lbl_totensor(L, 2);
    tensor_t tmp;
    int64_t i64;
    float f32;
    if (!a && !b) return luaL_error(L, "arithmetic on two non-tensors");
    if (!a || !b) {
        tensor_t *t = a ? a : b;
        int num_idx = a ? 2 : 1;
        if (!t->data) return luaL_error(L, "tensor was freed");
        lua_Number v = luaL_checknumber(L, num_idx);
        memset(&tmp, 0, sizeof tmp);
        tmp.ndim = 0;
        tmp.numel = 1;
        tmp.dtype = t->dtype;
        if (t->dtype == DT_I64) {
            if (!lua_isinteger(L, num_idx)) return luaL_error(L, "cannot combine an int64 tensor with the non-integer %f", v);
            i64 = lua_tointeger(L, num_idx);
            tmp.data = &i64;
        } else {
            f32 = (float)v;
            tmp.data = &f32;
        }
        if (t->device != DEV_CPU) { /* the scalar joins the tensor on its device */
            tensor_t *d = tensor_to(&tmp, t->device);
            if (!d) return lbl_error(L);
            tensor_t *r = mul ? tensor_mul(t, d) : tensor_add(t, d);
            tensor_free(d);
            lbl_pushtensor(L, r);
            return 1;
        }
        lbl_pushtensor(L, mul ? tensor_mul(t, &tmp) : tensor_add(t, &tmp));
        return 1;
    }
    if (!a->data) luaL_argerror(L, 1, "tensor was freed");
    if (!b->data) luaL_argerror(L, 2, "tensor was freed");
    lbl_pushtensor(L, mul ? tensor_mul(a, b) : tensor_add(a, b));
    return 1;
}

static int t_add(lua_State *L) { return arith(L, 0); }
static int t_mul(lua_State *L) { return arith(L, 1); }

static int t_clone(lua_State *L) {
    lbl_pushtensor(L, tensor_clone(lbl_checktensor(L, 1)));
    return 1;
}

/* t:to(device | dtype): on "cpu" / "cuda" (a copy there; the tensor itself when already there,
 * as torch), or converted to "float32" / "int64" (a copy, on the same device). */
static int t_to(lua_State *L) {
    tensor_t *t = lbl_checktensor(L, 1);
    const char *name = luaL_checkstring(L, 2);
    int dev;
    if (!strcmp(name, "cpu") || !strncmp(name, "cuda", 4)) {
        if (device_parse(name, &dev) != 0) return luaL_argerror(L, 2, bl_errmsg());
        if ((int)t->device == dev) {
            lua_settop(L, 1);
            return 1;
        }
        tensor_t *r = tensor_to(t, (device_t)dev);
        if (!r) return luaL_error(L, "to('%s'): %s", name, bl_errmsg());
        lbl_pushtensor(L, r);
        return 1;
    }
    dtype_t dt;
    if (dtype_from_name(name, &dt)) return luaL_argerror(L, 2, bl_errmsg());
    tensor_t *h = lbl_checkhost(L, 1);
    tensor_t *r = tensor_new(dt, h->ndim, h->shape);
    if (r)
        for (int64_t i = 0; i < h->numel; i++) tensor_set(r, i, tensor_get(h, i));
    if (r && t->device != DEV_CPU) { /* back to the tensor's device */
        tensor_t *d = tensor_to(r, t->device);
        tensor_free(r);
        r = d;
    }
    lbl_pushtensor(L, r);
    return 1;
}

static int t_free(lua_State *L) {
    ltensor_t *u = luaL_checkudata(L, 1, LBL_TENSOR);
    tensor_free(u->t);
    u->t = NULL;
    return 0;
}

static int t_tostring(lua_State *L) {
    ltensor_t *u = luaL_checkudata(L, 1, LBL_TENSOR);
    if (!lbl_boxtensor(u)) {
        lua_pushstring(L, "tensor(<freed>)");
        return 1;
    }
    char *s = tensor_format(u->t);
    if (!s) return luaL_error(L, "out of memory formatting a tensor");
    lua_pushstring(L, s);
    free(s);
    return 1;
}

static int t_len(lua_State *L) {
    tensor_t *t = lbl_checktensor(L, 1);
    lua_pushinteger(L, t->ndim ? t->shape[0] : 0);
    return 1;
}

/* t:backward(): runs the hook a loss tensor carries (set by model:forward). */
static int t_backward(lua_State *L) {
    lbl_checktensor(L, 1);
    if (lbl_getattr(L, 1, "_backward") != LUA_TFUNCTION)
        return luaL_error(L, "backward: this tensor has no gradient function (only the loss returned by model:forward can be backpropagated)");
    lua_pushvalue(L, 1);
    lua_call(L, 1, 0);
    return 0;
}

static const luaL_Reg tensor_methods[] = {
    {"shape", t_shape}, {"size", t_size}, {"dim", t_dim}, {"numel", t_numel}, {"dtype", t_dtype},
    {"device", t_device}, {"item", t_item}, {"totable", t_totable}, {"get", t_get}, {"index", t_index},
    {"argmax", t_argmax}, {"add", t_add}, {"mul", t_mul}, {"clone", t_clone}, {"to", t_to},
    {"free", t_free}, {"backward", t_backward}, {NULL, NULL}};

/* t.key: methods first, then attributes (name, grad, ...). */
static int t_index_meta(lua_State *L) {
    luaL_checkudata(L, 1, LBL_TENSOR);
    lua_getmetatable(L, 1);
    lua_getfield(L, -1, "methods");
    lua_pushvalue(L, 2);
    if (lua_rawget(L, -2) != LUA_TNIL) return 1;
    lua_pop(L, 3);
    if (lua_type(L, 2) == LUA_TSTRING && lua_tostring(L, 2)[0] != '_') {
        lbl_getattr(L, 1, lua_tostring(L, 2));
        return 1;
    }
    lua_pushnil(L);
    return 1;
}

static const luaL_Reg tensor_meta[] = {
    {"__index", t_index_meta}, {"__gc", t_free}, {"__close", t_free}, {"__tostring", t_tostring},
    {"__add", t_add}, {"__mul", t_mul}, {"__len", t_len}, {NULL, NULL}};

static int l_is_tensor(lua_State *L) {
    lua_pushboolean(L, lbl_totensor(L, 1) != NULL || luaL_testudata(L, 1, LBL_TENSOR) != NULL);
    return 1;
}

static int l_seed(lua_State *L) {
    lua_Integer s = luaL_checkinteger(L, 1);
    if (s < 0) luaL_argerror(L, 1, "seed must be non-negative");
    rng_set_seed((uint64_t)s);
    return 0;
}

/* bl.rand_u32(stream, index): the raw Philox word, for tests comparing with cuRAND. */
static int l_philox(lua_State *L) {
    lua_Integer seed = luaL_checkinteger(L, 1), sub = luaL_checkinteger(L, 2), idx = luaL_checkinteger(L, 3);
    lua_pushinteger(L, rng_word_at((uint64_t)seed, (uint64_t)sub, (uint64_t)idx));
    return 1;
}

/* bl.rng_state() -> {seed=, dropout=, sampler=, randn=, init=}: the global seed and the positions of
 * its streams (what a training state saves); bl.set_rng_state(t) restores them (after bl.seed). */
static const struct { const char *name; uint64_t sub; } rng_streams[] = {
    {"init", RNG_STREAM_INIT}, {"dropout", RNG_STREAM_DROPOUT}, {"sampler", RNG_STREAM_SAMPLER},
    {"randn", RNG_STREAM_RANDN}, {NULL, 0}};

static int l_rng_state(lua_State *L) {
    lua_createtable(L, 0, 5);
    lua_pushinteger(L, (lua_Integer)rng_global_seed());
    lua_setfield(L, -2, "seed");
    for (int i = 0; rng_streams[i].name; i++) {
        lua_pushinteger(L, (lua_Integer)rng_stream_offset(rng_streams[i].sub));
        lua_setfield(L, -2, rng_streams[i].name);
    }
    return 1;
}

static int l_set_rng_state(lua_State *L) {
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_getfield(L, 1, "seed");
    int ok;
    lua_Integer seed = lua_tointegerx(L, -1, &ok);
    if (!ok || seed < 0) return luaL_error(L, "set_rng_state: 'seed' must be a non-negative integer");
    lua_pop(L, 1);
    uint64_t off[8];
    for (int i = 0; rng_streams[i].name; i++) {
        lua_getfield(L, 1, rng_streams[i].name);
        lua_Integer v = lua_tointegerx(L, -1, &ok);
        if (!ok || v < 0) return luaL_error(L, "set_rng_state: '%s' must be a non-negative integer", rng_streams[i].name);
        off[i] = (uint64_t)v;
        lua_pop(L, 1);
    }
    if ((uint64_t)seed != rng_global_seed()) rng_set_seed((uint64_t)seed);
    for (int i = 0; rng_streams[i].name; i++) rng_stream_set_offset(rng_streams[i].sub, off[i]);
    return 0;
}

static const luaL_Reg tensor_funcs[] = {
    {"rng_state", l_rng_state}, {"set_rng_state", l_set_rng_state},
    {"tensor", l_tensor}, {"zeros", l_zeros}, {"ones", l_ones}, {"full", l_full}, {"randn", l_randn},
    {"arange", l_arange}, {"is_tensor", l_is_tensor}, {"seed", l_seed}, {"philox", l_philox},
    {NULL, NULL}};

void bl_open_tensor(lua_State *L) {
    lbl_newclass(L, LBL_TENSOR, tensor_methods, tensor_meta);
    luaL_setfuncs(L, tensor_funcs, 0);
}
