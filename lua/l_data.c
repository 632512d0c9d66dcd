/* l_data.c: Lua bindings of the data part: bl.read_csv (data frames of string columns),
 * bl.train_test_split and bl.RandomState (scikit-learn / NumPy legacy parity), bl.TensorDataset and
 * bl.DataLoader (batches collated in C by runtime/loader.c). */
#include "lbl.h"
#include "../runtime/csv.h"
#include "../runtime/error.h"
#include "../runtime/loader.h"
#include "../runtime/rng.h"
#include "../runtime/split.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LBL_DATAFRAME "bertlab.DataFrame"
#define LBL_RANDOMSTATE "bertlab.RandomState"
#define LBL_DATASET "bertlab.TensorDataset"
#define LBL_LOADER "bertlab.DataLoader"
#define LBL_SKFOLD "bertlab.StratifiedKFold"

/* ---- bl.read_csv ------------------------------------------------------------------------------- */
/* A data frame is a table {_path=, _names={...}, _cols={name = {strings}}, _nrows=} whose metatable
 * resolves df.<Column> and the methods; an unknown column is an error naming the file. */

static void push_column(lua_State *L, int df, const char *name) {
    lua_getfield(L, df, "_cols");
    if (lua_getfield(L, -1, name) != LUA_TNIL) {
        lua_remove(L, -2);
        return;
    }
    lua_pop(L, 2);
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    lua_getfield(L, df, "_path");
    luaL_addstring(&b, lua_tostring(L, -1) ? lua_tostring(L, -1) : "data frame");
    lua_pop(L, 1);
    luaL_addstring(&b, ": no column '");
    luaL_addstring(&b, name);
    luaL_addstring(&b, "' (columns: ");
    lua_getfield(L, df, "_names");
    lua_Integer n = luaL_len(L, -1);
    for (lua_Integer i = 1; i <= n; i++) {
        lua_geti(L, -1, i);
        const char *s = lua_tostring(L, -1);
        lua_pop(L, 1);
        if (i > 1) luaL_addstring(&b, ", ");
        luaL_addstring(&b, s ? s : "?");
    }
    lua_pop(L, 1);
    luaL_addstring(&b, ")");
    luaL_pushresult(&b);
    lua_error(L);
}

static int df_column(lua_State *L) {
    luaL_checktype(L, 1, LUA_TTABLE);
    push_column(L, 1, luaL_checkstring(L, 2));
    return 1;
}

static int df_nrows(lua_State *L) {
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_getfield(L, 1, "_nrows");
    return 1;
}

static int df_columns(lua_State *L) {
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_getfield(L, 1, "_names");
    lua_Integer n = luaL_len(L, -1);
    lua_createtable(L, (int)n, 0);
    for (lua_Integer i = 1; i <= n; i++) {
        lua_geti(L, -2, i);
        lua_rawseti(L, -2, i);
    }
    return 1;
}

static int df_tostring(lua_State *L) {
    lua_getfield(L, 1, "_path");
    lua_getfield(L, 1, "_nrows");
    lua_pushfstring(L, "DataFrame(%s: %d rows)", lua_tostring(L, -2), (int)lua_tointeger(L, -1));
    return 1;
}

static int df_index(lua_State *L) {
    if (lua_type(L, 2) != LUA_TSTRING) {
        lua_pushnil(L);
        return 1;
    }
    lua_getmetatable(L, 1);
    lua_getfield(L, -1, "methods");
    if (lua_getfield(L, -1, lua_tostring(L, 2)) != LUA_TNIL) return 1;
    lua_pop(L, 3);
    push_column(L, 1, lua_tostring(L, 2));
    return 1;
}

static const luaL_Reg df_methods[] = {
    {"column", df_column}, {"nrows", df_nrows}, {"columns", df_columns}, {NULL, NULL}};
static const luaL_Reg df_meta[] = {{"__index", df_index}, {"__tostring", df_tostring}, {NULL, NULL}};

static int l_read_csv(lua_State *L) {
    const char *path = luaL_checkstring(L, 1);
    csv_table_t *t = csv_table_read(path);
    if (!t) return lbl_error(L);
    /* pushes can raise only on memory errors; the table is freed before any Lua error below */
    if (!lua_checkstack(L, 8)) {
        csv_table_free(t);
        return luaL_error(L, "read_csv: Lua stack overflow");
    }
    lua_createtable(L, 0, 4);
    lua_pushstring(L, path);
    lua_setfield(L, -2, "_path");
    lua_pushinteger(L, t->nrows);
    lua_setfield(L, -2, "_nrows");
    lua_createtable(L, t->ncols, 0);
    lua_createtable(L, 0, t->ncols);
    for (int c = 0; c < t->ncols; c++) {
        size_t len;
        const char *name = csv_table_field(t, -1, c, &len);
        lua_pushlstring(L, name, len);
        lua_rawseti(L, -3, c + 1);
        lua_createtable(L, (int)t->nrows, 0);
        for (int64_t r = 0; r < t->nrows; r++) {
            const char *s = csv_table_field(t, r, c, &len);
            lua_pushlstring(L, s, len);
            lua_rawseti(L, -2, r + 1);
        }
        lua_setfield(L, -2, name);
    }
    csv_table_free(t);
    lua_setfield(L, -3, "_cols");
    lua_setfield(L, -2, "_names");
    luaL_setmetatable(L, LBL_DATAFRAME);
    return 1;
}

/* ---- labels → class ranks (np.unique(y, return_inverse=True)) ------------------------------------ */

typedef struct {
    int is_str, is_int;
    lua_Integer i;
    double d;
    const char *s;
    size_t len;
    int64_t pos;
} label_t;

static int label_cmp(const label_t *a, const label_t *b) {
    if (a->is_str) {
        size_t n = a->len < b->len ? a->len : b->len;
        int c = memcmp(a->s, b->s, n);
        if (c) return c;
        return (a->len > b->len) - (a->len < b->len);
    }
    if (a->is_int && b->is_int) return (a->i > b->i) - (a->i < b->i);
    return (a->d > b->d) - (a->d < b->d);
}

static int label_qcmp(const void *x, const void *y) {
    const label_t *a = x, *b = y;
    int c = label_cmp(a, b);
    return c ? c : (a->pos > b->pos) - (a->pos < b->pos);
}

/* Reads the labels at idx (a Lua array of strings or numbers, or a 1-D tensor) into ranks[n];
 * the stack keeps the strings alive. Raises errors naming the option. */
static void labels_to_ranks_as(lua_State *L, int idx, int64_t n, int64_t *ranks, const char *fname,
                               const char *what, int check_single) {
    tensor_t *t = lbl_totensor(L, idx);
    if (t) t = lbl_checkhost(L, idx);
    label_t *lab = lua_newuserdatauv(L, sizeof(label_t) * (size_t)(n ? n : 1), 0);
    if (t) {
        if (t->numel != n || t->ndim != 1)
            luaL_error(L, "%s: %s has %d labels, expected %d (one per sample)", fname, what, (int)t->numel, (int)n);
        for (int64_t i = 0; i < n; i++) {
            lab[i] = (label_t){.is_int = t->dtype == DT_I64, .pos = i};
            if (t->dtype == DT_I64) lab[i].i = ((int64_t *)t->data)[i];
            lab[i].d = tensor_get(t, i);
        }
    } else {
        luaL_checktype(L, idx, LUA_TTABLE);
        lua_Integer m = luaL_len(L, idx);
        if (m != n) luaL_error(L, "%s: %s has %d labels, expected %d (one per sample)", fname, what, (int)m, (int)n);
        int kind = -1;
        for (int64_t i = 0; i < n; i++) {
            int ty = lua_geti(L, idx, i + 1);
            if (ty != LUA_TSTRING && ty != LUA_TNUMBER)
                luaL_error(L, "%s: %s[%d] is %s, expected a string or a number", fname, what, (int)i + 1, luaL_typename(L, -1));
            if (kind >= 0 && kind != ty)
                luaL_error(L, "%s: %s mixes strings and numbers (%s[%d] is a %s)", fname, what, what, (int)i + 1, luaL_typename(L, -1));
            kind = ty;
            lab[i] = (label_t){.is_str = ty == LUA_TSTRING, .pos = i};
            if (ty == LUA_TSTRING) lab[i].s = lua_tolstring(L, -1, &lab[i].len);
            else {
                lab[i].is_int = lua_isinteger(L, -1);
                lab[i].i = lua_tointeger(L, -1);
                lab[i].d = lua_tonumber(L, -1);
                if (lab[i].d != lab[i].d) luaL_error(L, "%s: %s[%d] is NaN", fname, what, (int)i + 1);
            }
            lua_pop(L, 1); /* the string stays alive in the table */
        }
    }
    qsort(lab, (size_t)n, sizeof *lab, label_qcmp);
    int64_t rank = -1;
    for (int64_t i = 0; i < n; i++) {
        if (i == 0 || label_cmp(&lab[i], &lab[i - 1]) != 0) rank++;
        ranks[lab[i].pos] = rank;
    }
    if (!check_single) {
        lua_pop(L, 1); /* lab */
        return;
    }
    /* sklearn's message for a class with a single member, naming it */
    luaL_Buffer b;
    int nbad = 0;
    for (int64_t i = 0; i < n; i++) {
        int single = (i == 0 || label_cmp(&lab[i], &lab[i - 1]) != 0) &&
                     (i == n - 1 || label_cmp(&lab[i], &lab[i + 1]) != 0);
        if (!single) continue;
        if (nbad++ == 0) {
            luaL_buffinit(L, &b);
            luaL_addstring(&b, "The least populated classes in y have only 1 member, which is too few. The minimum "
                               "number of groups for any class cannot be less than 2. Classes with too few members are: [");
        } else {
            luaL_addstring(&b, ", ");
        }
        if (lab[i].is_str) {
            luaL_addchar(&b, '\'');
            luaL_addlstring(&b, lab[i].s, lab[i].len);
            luaL_addchar(&b, '\'');
        } else if (lab[i].is_int) {
            lua_pushfstring(L, "%I", (LUAI_UACINT)lab[i].i);
            luaL_addvalue(&b);
        } else {
            lua_pushfstring(L, "%f", lab[i].d);
            luaL_addvalue(&b);
        }
    }
    if (nbad) {
        luaL_addstring(&b, "]");
        luaL_pushresult(&b);
        luaL_error(L, "%s: %s", fname, lua_tostring(L, -1));
    }
    lua_pop(L, 1); /* lab */
}

static void labels_to_ranks(lua_State *L, int idx, int64_t n, int64_t *ranks, const char *fname) {
    labels_to_ranks_as(L, idx, n, ranks, fname, "stratify", 1);
}

/* ---- bl.train_test_split ---------------------------------------------------------------------------- */

static split_size_kind_t opt_size(lua_State *L, int idx, const char *key, double *v) {
    if (lua_isnoneornil(L, idx)) return SPLIT_SIZE_NONE;
    int ty = lua_getfield(L, idx, key);
    split_size_kind_t kind = SPLIT_SIZE_NONE;
    if (ty == LUA_TNUMBER) {
        kind = lua_isinteger(L, -1) ? SPLIT_SIZE_COUNT : SPLIT_SIZE_FRACTION;
        *v = lua_tonumber(L, -1);
    } else if (ty != LUA_TNIL) {
        luaL_error(L, "train_test_split: option '%s' must be a number (a fraction like 0.15 or a count like 300), got %s",
                   key, luaL_typename(L, -1));
    }
    lua_pop(L, 1);
    return kind;
}

static void push_index_list(lua_State *L, const int64_t *idx, int64_t n) {
    lua_createtable(L, (int)n, 0);
    for (int64_t i = 0; i < n; i++) {
        lua_pushinteger(L, idx[i] + 1);
        lua_rawseti(L, -2, i + 1);
    }
}

static uint32_t check_seed(lua_State *L, int idx, const char *what) {
    int ok;
    lua_Integer s = lua_tointegerx(L, idx, &ok);
    if (!ok || s < 0 || s > (lua_Integer)0xffffffffu)
        luaL_error(L, "%s: Seed must be between 0 and 2**32 - 1, got %s", what,
                   lua_type(L, idx) == LUA_TNUMBER ? lua_tostring(L, idx) : luaL_typename(L, idx));
    return (uint32_t)s;
}

static int l_train_test_split(lua_State *L) {
    static const char *const keys[] = {"test_size", "train_size", "random_state", "stratify", "shuffle", NULL};
    const char *fname = "train_test_split";
    lua_settop(L, 2); /* the options stay at 2 whatever is pushed later */
    int64_t n;
    tensor_t *t = lbl_totensor(L, 1);
    if (lua_isinteger(L, 1)) n = lua_tointeger(L, 1);
    else if (t) n = t->ndim ? t->shape[0] : 1;
    else if (lua_istable(L, 1)) n = luaL_len(L, 1);
    else return luaL_argerror(L, 1, "number of samples, Lua array or tensor expected");
    if (n < 0) return luaL_argerror(L, 1, "number of samples must be non-negative");
    if (n == 0) return luaL_error(L, "%s: With n_samples=0, the resulting train set will be empty.", fname);
    lbl_checkoptions(L, 2, fname, keys);
    split_opts_t o = {0};
    o.test_kind = opt_size(L, 2, "test_size", &o.test_size);
    o.train_kind = opt_size(L, 2, "train_size", &o.train_size);
    o.shuffle = lbl_optfield_bool(L, 2, "shuffle", 1);
    if (!lua_isnoneornil(L, 2) && lua_getfield(L, 2, "random_state") != LUA_TNIL) {
        o.random_state = check_seed(L, -1, fname);
        lua_pop(L, 1);
    } else {
        if (!lua_isnoneornil(L, 2)) lua_pop(L, 1);
        o.random_state = rng_u32(rng_stream(RNG_STREAM_SPLIT));
    }
    int64_t n_train, n_test;
    if (split_sizes(n, &o, &n_train, &n_test)) return luaL_error(L, "%s: %s", fname, bl_errmsg());
    int64_t *buf = lua_newuserdatauv(L, sizeof(int64_t) * (size_t)(2 * n + 1), 0);
    int64_t *ranks = buf, *train = buf + n, *test = train + n_train;
    if (!lua_isnoneornil(L, 2) && lua_getfield(L, 2, "stratify") != LUA_TNIL) {
        int sidx = lua_gettop(L);
        if (o.shuffle) labels_to_ranks(L, sidx, n, ranks, fname);
        o.stratify = ranks;
    }
    if (split_train_test(n, &o, train, test)) return luaL_error(L, "%s: %s", fname, bl_errmsg());
    push_index_list(L, train, n_train);
    push_index_list(L, test, n_test);
    return 2;
}

/* ---- bl.StratifiedKFold ----------------------------------------------------------------------------- */

typedef struct {
    int n_splits, shuffle, has_seed;
    uint32_t random_state;
} lskf_t;

/* bl.StratifiedKFold(n_splits=5, {shuffle=false, random_state=}): scikit-learn's, fold for fold. */
static int l_stratified_kfold(lua_State *L) {
    static const char *const keys[] = {"shuffle", "random_state", NULL};
    const char *fname = "StratifiedKFold";
    lua_settop(L, 2);
    lua_Integer k = 5;
    if (!lua_isnil(L, 1)) {
        if (!lua_isinteger(L, 1))
            return luaL_error(L, "%s: The number of folds must be of Integral type. %s of type %s was passed.", fname,
                              luaL_tolstring(L, 1, NULL), luaL_typename(L, 1));
        k = lua_tointeger(L, 1);
    }
    if (k <= 1)
        return luaL_error(L, "%s: k-fold cross-validation requires at least one train/test split by setting "
                             "n_splits=2 or more, got n_splits=%I.", fname, (LUAI_UACINT)k);
    if (k > 0x7fffffff) return luaL_error(L, "%s: n_splits=%I is too large", fname, (LUAI_UACINT)k);
    lbl_checkoptions(L, 2, fname, keys);
    if (lua_istable(L, 2)) {
        int ty = lua_getfield(L, 2, "shuffle");
        if (ty != LUA_TNIL && ty != LUA_TBOOLEAN)
            return luaL_error(L, "%s: shuffle must be either True or False, got %s.", fname, luaL_typename(L, -1));
        lua_pop(L, 1);
    }
    int shuffle = lbl_optfield_bool(L, 2, "shuffle", 0);
    int has_seed = 0;
    uint32_t seed = 0;
    if (lua_istable(L, 2) && lua_getfield(L, 2, "random_state") != LUA_TNIL) {
        seed = check_seed(L, -1, fname);
        has_seed = 1;
        lua_pop(L, 1);
        if (!shuffle)
            return luaL_error(L, "%s: Setting a random_state has no effect since shuffle is False. You should leave "
                                 "random_state to its default (None), or set shuffle=True.", fname);
    }
    if (shuffle && !has_seed) seed = rng_u32(rng_stream(RNG_STREAM_SPLIT)); /* RandomState(None): from bl.seed */
    lskf_t *u = lua_newuserdatauv(L, sizeof *u, 0);
    u->n_splits = (int)k;
    u->shuffle = shuffle;
    u->has_seed = has_seed;
    u->random_state = seed;
    luaL_setmetatable(L, LBL_SKFOLD);
    return 1;
}

/* one fold per call: train, test (1-based, ascending); upvalues: fold[n] (userdata), n, n_splits, next */
static int skf_step(lua_State *L) {
    const int64_t *fold = lua_touserdata(L, lua_upvalueindex(1));
    int64_t n = lua_tointeger(L, lua_upvalueindex(2));
    int k = (int)lua_tointeger(L, lua_upvalueindex(3));
    int f = (int)lua_tointeger(L, lua_upvalueindex(4));
    if (f >= k) return 0;
    lua_pushinteger(L, f + 1);
    lua_replace(L, lua_upvalueindex(4));
    lua_newtable(L);
    lua_newtable(L);
    lua_Integer ntr = 0, nte = 0;
    for (int64_t i = 0; i < n; i++) {
        lua_pushinteger(L, (lua_Integer)i + 1);
        if (fold[i] == f) lua_rawseti(L, -2, ++nte);
        else lua_rawseti(L, -3, ++ntr);
    }
    return 2;
}

/* skf:split(y) -> an iterator over the n_splits folds: `for train, test in skf:split(y) do`. y: the
 * labels (a Lua array of strings or numbers, or a 1-D tensor). */
static int skf_split(lua_State *L) {
    lskf_t *u = luaL_checkudata(L, 1, LBL_SKFOLD);
    const char *fname = "StratifiedKFold:split";
    int64_t n;
    tensor_t *t = lbl_totensor(L, 2);
    if (t) n = t->numel;
    else if (lua_istable(L, 2)) n = luaL_len(L, 2);
    else return luaL_argerror(L, 2, "labels (a Lua array or a 1-D tensor) expected");
    if (n < u->n_splits)
        return luaL_error(L, "%s: Cannot have number of splits n_splits=%d greater than the number of samples: "
                             "n_samples=%I.", fname, u->n_splits, (LUAI_UACINT)n);
    int64_t *ranks = lua_newuserdatauv(L, sizeof(int64_t) * (size_t)n, 0);
    labels_to_ranks_as(L, 2, n, ranks, fname, "y", 0);
    int64_t *fold = lua_newuserdatauv(L, sizeof(int64_t) * (size_t)n, 0);
    int64_t mn = 0;
    if (split_stratified_kfold(n, ranks, u->n_splits, u->shuffle, u->random_state, fold, &mn))
        return luaL_error(L, "%s: %s", fname, bl_errmsg());
    if (mn < u->n_splits)
        fprintf(stderr, "warning: %s: The least populated class in y has only %lld members, which is less than "
                        "n_splits=%d.\n", fname, (long long)mn, u->n_splits);
    lua_pushinteger(L, (lua_Integer)n);
    lua_pushinteger(L, u->n_splits);
    lua_pushinteger(L, 0);
    lua_pushcclosure(L, skf_step, 4);
    return 1;
}

static int skf_get_n_splits(lua_State *L) {
    lskf_t *u = luaL_checkudata(L, 1, LBL_SKFOLD);
    lua_pushinteger(L, u->n_splits);
    return 1;
}

static int skf_tostring(lua_State *L) {
    lskf_t *u = luaL_checkudata(L, 1, LBL_SKFOLD);
    if (u->has_seed)
        lua_pushfstring(L, "StratifiedKFold(n_splits=%d, random_state=%I, shuffle=%s)", u->n_splits,
                        (LUAI_UACINT)u->random_state, u->shuffle ? "True" : "False");
    else
        lua_pushfstring(L, "StratifiedKFold(n_splits=%d, random_state=None, shuffle=%s)", u->n_splits,
                        u->shuffle ? "True" : "False");
    return 1;
}

static const luaL_Reg skf_methods[] = {{"split", skf_split}, {"get_n_splits", skf_get_n_splits}, {NULL, NULL}};
static const luaL_Reg skf_meta[] = {{"__tostring", skf_tostring}, {NULL, NULL}};

/* ---- bl.RandomState --------------------------------------------------------------------------------- */

#define check_rs(L) ((randomstate_t *)luaL_checkudata(L, 1, LBL_RANDOMSTATE))

static int l_randomstate(lua_State *L) {
    uint32_t seed = check_seed(L, 1, "RandomState");
    randomstate_t *rs = lua_newuserdatauv(L, sizeof *rs, 0);
    randomstate_seed(rs, seed);
    luaL_setmetatable(L, LBL_RANDOMSTATE);
    return 1;
}

/* Optional count argument: returns -1 when absent (a single value is returned). */
static int64_t opt_count(lua_State *L, int idx) {
    if (lua_isnoneornil(L, idx)) return -1;
    lua_Integer n = luaL_checkinteger(L, idx);
    if (n < 0) luaL_argerror(L, idx, "size must be non-negative");
    return n;
}

static int rs_randint(lua_State *L) {
    randomstate_t *rs = check_rs(L);
    lua_Integer low = luaL_checkinteger(L, 2), high;
    int64_t size;
    if (lua_isnoneornil(L, 3)) { high = low; low = 0; size = -1; }
    else { high = luaL_checkinteger(L, 3); size = opt_count(L, 4); }
    if (high <= low) return luaL_error(L, "randint: low >= high (%I >= %I)", (LUAI_UACINT)low, (LUAI_UACINT)high);
    if (size < 0) {
        lua_pushinteger(L, randomstate_randint(rs, low, high));
        return 1;
    }
    lua_createtable(L, (int)size, 0);
    for (int64_t i = 0; i < size; i++) {
        lua_pushinteger(L, randomstate_randint(rs, low, high));
        lua_rawseti(L, -2, i + 1);
    }
    return 1;
}

static int rs_random(lua_State *L) {
    randomstate_t *rs = check_rs(L);
    int64_t size = opt_count(L, 2);
    if (size < 0) {
        lua_pushnumber(L, randomstate_double(rs));
        return 1;
    }
    lua_createtable(L, (int)size, 0);
    for (int64_t i = 0; i < size; i++) {
        lua_pushnumber(L, randomstate_double(rs));
        lua_rawseti(L, -2, i + 1);
    }
    return 1;
}

static int rs_permutation(lua_State *L) {
    randomstate_t *rs = check_rs(L);
    if (lua_istable(L, 2)) { /* permutation(list): the elements shuffled, as a new list */
        lua_Integer n = luaL_len(L, 2);
        int64_t *perm = lua_newuserdatauv(L, sizeof(int64_t) * (size_t)(n + 1), 0);
        for (lua_Integer i = 0; i < n; i++) perm[i] = i;
        randomstate_shuffle(rs, perm, n);
        lua_createtable(L, (int)n, 0);
        for (lua_Integer i = 0; i < n; i++) {
            lua_geti(L, 2, perm[i] + 1);
            lua_rawseti(L, -2, i + 1);
        }
        return 1;
    }
    lua_Integer n = luaL_checkinteger(L, 2);
    if (n < 0) return luaL_argerror(L, 2, "n must be non-negative");
    int64_t *perm = lua_newuserdatauv(L, sizeof(int64_t) * (size_t)(n + 1), 0);
    randomstate_permutation(rs, n, perm);
    lua_createtable(L, (int)n, 0);
    for (lua_Integer i = 0; i < n; i++) { /* numpy's values (0-based), not Lua positions */
        lua_pushinteger(L, perm[i]);
        lua_rawseti(L, -2, i + 1);
    }
    return 1;
}

static int rs_choice(lua_State *L) {
    randomstate_t *rs = check_rs(L);
    lua_Integer pop = luaL_checkinteger(L, 2);
    int64_t size = opt_count(L, 3);
    int replace = lua_isnoneornil(L, 4) ? 1 : lbl_optfield_bool(L, 4, "replace", 1);
    int64_t m = size < 0 ? 1 : size;
    int64_t *out = lua_newuserdatauv(L, sizeof(int64_t) * (size_t)(m + 1), 0);
    if (randomstate_choice(rs, pop, m, replace, out)) return lbl_error(L);
    if (size < 0) {
        lua_pushinteger(L, out[0]);
        return 1;
    }
    lua_createtable(L, (int)m, 0);
    for (int64_t i = 0; i < m; i++) {
        lua_pushinteger(L, out[i]);
        lua_rawseti(L, -2, i + 1);
    }
    return 1;
}

static int rs_u32(lua_State *L) {
    lua_pushinteger(L, randomstate_u32(check_rs(L)));
    return 1;
}

static const luaL_Reg rs_methods[] = {{"randint", rs_randint}, {"random_sample", rs_random},
                                      {"permutation", rs_permutation}, {"choice", rs_choice},
                                      {"u32", rs_u32}, {NULL, NULL}};

/* ---- bl.TensorDataset ------------------------------------------------------------------------------ */
/* A userdata holding the row count; its user value is the list of tensors. */

typedef struct {
    int64_t n;
    int nt;
} ldataset_t;

#define MAX_DATASET_TENSORS 64

/* Gathers the dataset's tensors (raising if one was freed or changed size) into ts[]. */
static int dataset_tensors(lua_State *L, int idx, const tensor_t **ts, const char *what) {
    ldataset_t *ds = luaL_checkudata(L, idx, LBL_DATASET);
    lua_getiuservalue(L, idx, 1);
    for (int i = 0; i < ds->nt; i++) {
        lua_geti(L, -1, i + 1);
        ts[i] = lbl_totensor(L, -1);
        if (!ts[i]) luaL_error(L, "%s: tensor %d of the dataset was freed", what, i + 1);
        if (ts[i]->ndim < 1 || ts[i]->shape[0] != ds->n)
            luaL_error(L, "%s: tensor %d of the dataset no longer has %d rows", what, i + 1, (int)ds->n);
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    return ds->nt;
}

static int l_tensor_dataset(lua_State *L) {
    int nt = lua_gettop(L);
    const tensor_t *ts[MAX_DATASET_TENSORS];
    const char *names[MAX_DATASET_TENSORS];
    if (nt == 0) return luaL_error(L, "TensorDataset: at least one tensor expected");
    if (nt > MAX_DATASET_TENSORS) return luaL_error(L, "TensorDataset: at most %d tensors", MAX_DATASET_TENSORS);
    for (int i = 0; i < nt; i++) {
        ts[i] = lbl_checktensor(L, i + 1);
        lbl_getattr(L, i + 1, "name");
        names[i] = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL; /* kept on the stack */
    }
    int64_t n = loader_check_dataset(ts, nt, names);
    if (n < 0) return luaL_error(L, "TensorDataset: %s", bl_errmsg());
    ldataset_t *ds = lua_newuserdatauv(L, sizeof *ds, 1);
    ds->n = n;
    ds->nt = nt;
    luaL_setmetatable(L, LBL_DATASET);
    lua_createtable(L, nt, 0);
    for (int i = 0; i < nt; i++) {
        lua_pushvalue(L, i + 1);
        lua_rawseti(L, -2, i + 1);
    }
    lua_setiuservalue(L, -2, 1);
    return 1;
}

static int ds_size(lua_State *L) {
    lua_pushinteger(L, ((ldataset_t *)luaL_checkudata(L, 1, LBL_DATASET))->n);
    return 1;
}

static int ds_tensors(lua_State *L) {
    ldataset_t *ds = luaL_checkudata(L, 1, LBL_DATASET);
    lua_getiuservalue(L, 1, 1);
    lua_createtable(L, ds->nt, 0);
    for (int i = 1; i <= ds->nt; i++) {
        lua_geti(L, -2, i);
        lua_rawseti(L, -2, i);
    }
    return 1;
}

static int ds_tostring(lua_State *L) {
    ldataset_t *ds = luaL_checkudata(L, 1, LBL_DATASET);
    lua_pushfstring(L, "TensorDataset(%d rows, %d tensors)", (int)ds->n, ds->nt);
    return 1;
}

static const luaL_Reg ds_methods[] = {{"size", ds_size}, {"tensors", ds_tensors}, {NULL, NULL}};
static const luaL_Reg ds_meta[] = {{"__len", ds_size}, {"__tostring", ds_tostring}, {NULL, NULL}};

/* ---- bl.DataLoader ----------------------------------------------------------------------------------- */

typedef struct {
    int64_t batch_size;
    int shuffle, drop_last;
    int mask; /* 0-based tensor number of the attention mask, or -1: no trimming */
    int weighted;        /* sampler="weighted": rows drawn with replacement by the weights */
    int64_t num_samples; /* rows per epoch (the dataset's size unless weighted) */
} lloader_t;

/* the weights of a weighted loader: uservalue 3, a full userdata of ds->n doubles */
enum { UV_LOADER_WEIGHTS = 3 };

#define check_loader(L, i) ((lloader_t *)luaL_checkudata(L, i, LBL_LOADER))

static int l_dataloader(lua_State *L) {
    static const char *const keys[] = {"batch_size", "sampler", "drop_last", "pad", "mask", "weights",
                                       "num_samples", NULL};
    const char *fname = "DataLoader";
    lua_settop(L, 2);
    ldataset_t *ds = luaL_checkudata(L, 1, LBL_DATASET);
    lbl_checkoptions_hint(L, 2, fname, keys, "shuffle", "use sampler=\"random\" or sampler=\"sequential\"");
    lua_Integer bs = lbl_optfield_int(L, 2, "batch_size", 1);
    if (bs < 1) return luaL_error(L, "%s: batch_size must be a positive integer, got %I", fname, (LUAI_UACINT)bs);
    const char *sampler = lbl_optfield_str(L, 2, "sampler", "sequential");
    int shuffle, weighted = 0;
    if (strcmp(sampler, "random") == 0) shuffle = 1;
    else if (strcmp(sampler, "sequential") == 0) shuffle = 0;
    else if (strcmp(sampler, "weighted") == 0) shuffle = 0, weighted = 1;
    else
        return luaL_error(L, "%s: sampler must be \"random\", \"sequential\" or \"weighted\", got \"%s\"", fname,
                          sampler);
    int has_w = 0;
    if (lua_istable(L, 2)) {
        has_w = lua_getfield(L, 2, "weights") != LUA_TNIL;
        lua_pop(L, 1);
    }
    if (has_w != weighted)
        return luaL_error(L, weighted ? "%s: sampler=\"weighted\" needs weights= (one number per row)"
                                      : "%s: weights= needs sampler=\"weighted\"", fname);
    lua_Integer num_samples = lbl_optfield_int(L, 2, "num_samples", ds->n);
    if (num_samples < 1) return luaL_error(L, "%s: num_samples must be a positive integer", fname);
    if (!weighted && num_samples != ds->n) return luaL_error(L, "%s: num_samples= needs sampler=\"weighted\"", fname);
    int drop_last = lbl_optfield_bool(L, 2, "drop_last", 0);
    const char *pad = lbl_optfield_str(L, 2, "pad", "none");
    lua_Integer mask = lbl_optfield_int(L, 2, "mask", 2);
    int trim;
    if (strcmp(pad, "longest") == 0) trim = 1;
    else if (strcmp(pad, "none") == 0) trim = 0;
    else return luaL_error(L, "%s: pad must be \"longest\" or \"none\", got \"%s\"", fname, pad);
    if (trim) {
        const tensor_t *ts[MAX_DATASET_TENSORS];
        dataset_tensors(L, 1, ts, fname);
        if (mask < 1 || mask > ds->nt)
            return luaL_error(L, "%s: mask=%I names no tensor of the dataset (it has %d)", fname, (LUAI_UACINT)mask, ds->nt);
        if (ts[mask - 1]->ndim != 2) {
            char s[96];
            return luaL_error(L, "%s: pad=\"longest\" needs tensor %d (the mask) to be 2-D [N, L], got shape %s", fname,
                              (int)mask, tensor_shape_str(ts[mask - 1], s, sizeof s));
        }
    }
    double *w = NULL;
    if (weighted) { /* checked here, once: each epoch's draw only reads them */
        lua_getfield(L, 2, "weights");
        if (!lua_istable(L, -1)) return luaL_error(L, "%s: weights must be a list of numbers, one per row", fname);
        if (luaL_len(L, -1) != ds->n)
            return luaL_error(L, "%s: weights has %I entries, the dataset %I rows", fname,
                              (LUAI_UACINT)luaL_len(L, -1), (LUAI_UACINT)ds->n);
        w = lua_newuserdatauv(L, sizeof(double) * (size_t)(ds->n ? ds->n : 1), 0);
        double total = 0.0;
        for (int64_t i = 0; i < ds->n; i++) {
            lua_geti(L, -2, (lua_Integer)i + 1);
            int ok;
            w[i] = lua_tonumberx(L, -1, &ok);
            if (!ok || !isfinite(w[i]) || w[i] < 0)
                return luaL_error(L, "%s: weights[%I] must be a finite number >= 0, got %s", fname,
                                  (LUAI_UACINT)(i + 1), luaL_tolstring(L, -1, NULL));
            total += w[i];
            lua_pop(L, 1);
        }
        if (!(total > 0)) return luaL_error(L, "%s: every weight is 0", fname);
    }
    int wi = lua_gettop(L);
    lloader_t *ld = lua_newuserdatauv(L, sizeof *ld, 3); /* 1: dataset, 2: the last iter()'s epoch, 3: weights */
    ld->batch_size = bs;
    ld->shuffle = shuffle;
    ld->drop_last = drop_last;
    ld->mask = trim ? (int)mask - 1 : -1;
    ld->weighted = weighted;
    ld->num_samples = (int64_t)num_samples;
    luaL_setmetatable(L, LBL_LOADER);
    lua_pushvalue(L, 1);
    lua_setiuservalue(L, -2, 1);
    if (w) {
        lua_pushvalue(L, wi);
        lua_setiuservalue(L, -2, UV_LOADER_WEIGHTS);
    }
    return 1;
}

static int loader_len(lua_State *L) {
    lloader_t *ld = check_loader(L, 1);
    lua_getiuservalue(L, 1, 1);
    ldataset_t *ds = luaL_checkudata(L, -1, LBL_DATASET);
    lua_pushinteger(L, loader_num_batches(ld->weighted ? ld->num_samples : ds->n, ld->batch_size, ld->drop_last));
    return 1;
}

/* The epoch state of one iter(): the order and the next position. */
typedef struct {
    int64_t n, pos, nbatches, done;
    int64_t order[];
} lepoch_t;

static int loader_step(lua_State *L) {
    lloader_t *ld = check_loader(L, lua_upvalueindex(1));
    lepoch_t *ep = lua_touserdata(L, lua_upvalueindex(2));
    if (ep->done >= ep->nbatches) return 0;
    lua_getiuservalue(L, lua_upvalueindex(1), 1);
    int dsi = lua_gettop(L);
    const tensor_t *ts[MAX_DATASET_TENSORS];
    tensor_t *out[MAX_DATASET_TENSORS];
    int nt = dataset_tensors(L, dsi, ts, "DataLoader");
    int64_t B = ep->n - ep->pos < ld->batch_size ? ep->n - ep->pos : ld->batch_size;
    if (loader_collate(ts, nt, ep->order + ep->pos, B, ld->mask, out)) return luaL_error(L, "DataLoader: %s", bl_errmsg());
    ep->pos += B;
    ep->done++;
    lua_createtable(L, nt, 0);
    for (int i = 0; i < nt; i++) {
        lbl_pushtensor(L, out[i]); /* raises only when Lua is out of memory */
        lua_rawseti(L, -2, i + 1);
    }
    return 1;
}

/* loader:iter([{order=, start=}]): the batches of one epoch. By default a new order (shuffled from
 * the SAMPLER stream for sampler="random"); `order` (a permutation of the 1-based rows, as
 * loader:position() gives) replays a recorded epoch without drawing, and `start` skips that many
 * batches (a resumed mid-epoch state). */
static int loader_iter(lua_State *L) {
    static const char *const keys[] = {"order", "start", NULL};
    lloader_t *ld = check_loader(L, 1);
    if (!lua_isnoneornil(L, 2)) luaL_checktype(L, 2, LUA_TTABLE);
    int opts = lua_isnoneornil(L, 2) ? 0 : 2;
    lbl_checkoptions(L, opts, "DataLoader:iter", keys);
    lua_getiuservalue(L, 1, 1);
    ldataset_t *ds = luaL_checkudata(L, -1, LBL_DATASET);
    lua_pop(L, 1);
    int64_t ns = ld->weighted ? ld->num_samples : ds->n; /* rows of this epoch */
    lepoch_t *ep = lua_newuserdatauv(L, sizeof *ep + sizeof(int64_t) * (size_t)ns, 0);
    int epi = lua_gettop(L);
    ep->n = ns;
    ep->pos = 0;
    ep->done = 0;
    ep->nbatches = loader_num_batches(ns, ld->batch_size, ld->drop_last);
    int has_order = opts && lua_getfield(L, opts, "order") != LUA_TNIL;
    if (!has_order && opts) lua_pop(L, 1);
    if (has_order) {
        if (!lua_istable(L, -1)) return luaL_error(L, "DataLoader:iter: option 'order' must be a list of rows");
        if (luaL_len(L, -1) != ep->n)
            return luaL_error(L, "DataLoader:iter: option 'order' has %I rows, the dataset %I",
                              (LUAI_UACINT)luaL_len(L, -1), (LUAI_UACINT)ep->n);
        char *seen = lua_newuserdatauv(L, (size_t)(ds->n ? ds->n : 1), 0);
        memset(seen, 0, (size_t)(ds->n ? ds->n : 1));
        for (int64_t i = 0; i < ep->n; i++) {
            lua_geti(L, -2, (lua_Integer)i + 1);
            int ok;
            lua_Integer r = lua_tointegerx(L, -1, &ok);
            if (!ok || r < 1 || r > ds->n || (seen[r - 1] && !ld->weighted)) /* weighted: repeats */
                return luaL_error(L, "DataLoader:iter: option 'order' is not a %s of rows 1..%I "
                                     "(entry %I)", ld->weighted ? "list" : "permutation",
                                  (LUAI_UACINT)ds->n, (LUAI_UACINT)(i + 1));
            seen[r - 1] = 1;
            ep->order[i] = r - 1;
            lua_pop(L, 1);
        }
        lua_pop(L, 2); /* seen, order */
    } else if (ld->weighted) {
        lua_getiuservalue(L, 1, UV_LOADER_WEIGHTS);
        const double *w = lua_touserdata(L, -1);
        if (loader_weighted_order(ep->order, ns, w, ds->n)) return luaL_error(L, "DataLoader: %s", bl_errmsg());
        lua_pop(L, 1);
    } else {
        loader_order(ep->order, ds->n, ld->shuffle);
    }
    lua_Integer start = lbl_optfield_int(L, opts, "start", 0);
    if (start < 0 || start > ep->nbatches)
        return luaL_error(L, "DataLoader:iter: option 'start' must be between 0 and %I, got %I",
                          (LUAI_UACINT)ep->nbatches, (LUAI_UACINT)start);
    for (lua_Integer b = 0; b < start; b++) {
        int64_t B = ep->n - ep->pos < ld->batch_size ? ep->n - ep->pos : ld->batch_size;
        ep->pos += B;
        ep->done++;
    }
    lua_pushvalue(L, epi);
    lua_setiuservalue(L, 1, 2);
    lua_pushvalue(L, 1);
    lua_pushvalue(L, epi);
    lua_pushcclosure(L, loader_step, 2);
    return 1;
}

/* loader:position() -> {order = 1-based rows of the last iter()'s epoch, batch = batches yielded,
 * batches = the epoch's number}, or nil before any iter(): what a training state records. */
static int loader_position(lua_State *L) {
    check_loader(L, 1);
    if (lua_getiuservalue(L, 1, 2) != LUA_TUSERDATA) return 0;
    lepoch_t *ep = lua_touserdata(L, -1);
    lua_createtable(L, 0, 3);
    lua_createtable(L, (int)ep->n, 0);
    for (int64_t i = 0; i < ep->n; i++) {
        lua_pushinteger(L, (lua_Integer)ep->order[i] + 1);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    lua_setfield(L, -2, "order");
    lua_pushinteger(L, (lua_Integer)ep->done);
    lua_setfield(L, -2, "batch");
    lua_pushinteger(L, (lua_Integer)ep->nbatches);
    lua_setfield(L, -2, "batches");
    return 1;
}

static int loader_dataset(lua_State *L) {
    check_loader(L, 1);
    lua_getiuservalue(L, 1, 1);
    return 1;
}

static int loader_tostring(lua_State *L) {
    lloader_t *ld = check_loader(L, 1);
    lua_pushfstring(L, "DataLoader(batch_size=%d, sampler=%s, drop_last=%s, pad=%s)", (int)ld->batch_size,
                    ld->weighted ? "weighted" : ld->shuffle ? "random" : "sequential", ld->drop_last ? "true" : "false",
                    ld->mask >= 0 ? "longest" : "none");
    return 1;
}

static const luaL_Reg loader_methods[] = {
    {"iter", loader_iter}, {"dataset", loader_dataset}, {"position", loader_position}, {NULL, NULL}};
static const luaL_Reg loader_meta[] = {{"__len", loader_len}, {"__tostring", loader_tostring}, {NULL, NULL}};

/* ---- registration ------------------------------------------------------------------------------------- */

static const luaL_Reg data_funcs[] = {
    {"read_csv", l_read_csv}, {"train_test_split", l_train_test_split}, {"RandomState", l_randomstate},
    {"TensorDataset", l_tensor_dataset}, {"DataLoader", l_dataloader}, {"StratifiedKFold", l_stratified_kfold},
    {NULL, NULL}};

void bl_open_data(lua_State *L) {
    lbl_newclass(L, LBL_DATAFRAME, df_methods, df_meta);
    lbl_newclass(L, LBL_RANDOMSTATE, rs_methods, NULL);
    lbl_newclass(L, LBL_DATASET, ds_methods, ds_meta);
    lbl_newclass(L, LBL_LOADER, loader_methods, loader_meta);
    lbl_newclass(L, LBL_SKFOLD, skf_methods, skf_meta);
    luaL_setfuncs(L, data_funcs, 0);
}
