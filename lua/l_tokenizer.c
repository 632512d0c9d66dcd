/* l_tokenizer.c: the bertlab.BertTokenizer userdata over runtime/wordpiece.c: from_pretrained, tokenize,
 * encode, decode, token/id conversion and batch_encode_plus (the whole batch in one C call).
 * Token ids are 0-based vocabulary ids, as in transformers. */
#include "lbl.h"
#include "../runtime/error.h"
#include "../runtime/wordpiece.h"
#include <stdlib.h>
#include <string.h>

#define LBL_TOKENIZER "bertlab.BertTokenizer"

typedef struct {
    wordpiece_t *wp; /* NULL once freed */
    wp_ids_t ids;    /* scratch reused by every call (no per-call allocation) */
    int do_lower_case;
} ltok_t;

static ltok_t *checktok(lua_State *L, int idx) {
    ltok_t *u = luaL_checkudata(L, idx, LBL_TOKENIZER);
    if (!u->wp) luaL_argerror(L, idx, "tokenizer was freed");
    return u;
}

/* A string argument, not a number coerced to one. */
static const char *checkstr(lua_State *L, int idx, size_t *len) {
    if (lua_type(L, idx) != LUA_TSTRING) luaL_typeerror(L, idx, "string");
    return lua_tolstring(L, idx, len);
}

/* ---- construction ------------------------------------------------------------------------------ */

/* BertTokenizer.from_pretrained(dir_or_vocab_txt[, {do_lower_case=true, strip_accents=nil,
 * tokenize_chinese_chars=true}]); options not given come from the folder's tokenizer_config.json if any */
static int l_from_pretrained(lua_State *L) {
    static const char *const known[] = {"do_lower_case", "strip_accents", "tokenize_chinese_chars", NULL};
    const char *path = checkstr(L, 1, NULL);
    lbl_checkoptions(L, 2, "from_pretrained", known);
    wordpiece_opts_t o = wordpiece_default_opts();
    o.do_lower_case = lbl_optfield_bool(L, 2, "do_lower_case", -1);
    o.tokenize_chinese_chars = lbl_optfield_bool(L, 2, "tokenize_chinese_chars", -1);
    o.strip_accents = lbl_optfield_bool(L, 2, "strip_accents", -1);
    ltok_t *u = lua_newuserdatauv(L, sizeof *u, 0);
    memset(u, 0, sizeof *u); /* safe, empty state before anything can fail */
    luaL_setmetatable(L, LBL_TOKENIZER);
    u->wp = wordpiece_load(path, &o);
    if (!u->wp) return luaL_error(L, "BertTokenizer.from_pretrained: %s", bl_errmsg());
    u->do_lower_case = wordpiece_get_opts(u->wp).do_lower_case;
    return 1;
}

static int tok_free(lua_State *L) {
    ltok_t *u = luaL_checkudata(L, 1, LBL_TOKENIZER);
    wordpiece_free(u->wp);
    u->wp = NULL;
    wp_ids_free(&u->ids);
    return 0;
}

static int tok_tostring(lua_State *L) {
    ltok_t *u = luaL_checkudata(L, 1, LBL_TOKENIZER);
    if (!u->wp) lua_pushstring(L, "BertTokenizer(<freed>)");
    else
        lua_pushfstring(L, "BertTokenizer(vocab_size=%d, do_lower_case=%s)", (int)wordpiece_vocab_size(u->wp),
                        u->do_lower_case ? "true" : "false");
    return 1;
}

static int tok_vocab_size(lua_State *L) {
    lua_pushinteger(L, wordpiece_vocab_size(checktok(L, 1)->wp));
    return 1;
}

/* ---- single texts ------------------------------------------------------------------------------ */

static void push_id_list(lua_State *L, const int32_t *v, size_t n) {
    lua_createtable(L, (int)n, 0);
    for (size_t i = 0; i < n; i++) {
        lua_pushinteger(L, v[i]);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
}

/* tok:tokenize(s) → list of token strings */
static int tok_tokenize(lua_State *L) {
    ltok_t *u = checktok(L, 1);
    size_t len;
    const char *s = checkstr(L, 2, &len);
    u->ids.n = 0;
    if (wordpiece_encode(u->wp, s, len, &u->ids)) return luaL_error(L, "tokenize: %s", bl_errmsg());
    lua_createtable(L, (int)u->ids.n, 0);
    for (size_t i = 0; i < u->ids.n; i++) {
        size_t tl;
        const char *t = wordpiece_id_token(u->wp, u->ids.v[i], &tl);
        lua_pushlstring(L, t, tl);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    return 1;
}

static wp_padding_t opt_padding(lua_State *L, int idx, wp_padding_t def) {
    if (lua_isnoneornil(L, idx)) return def;
    int ty = lua_getfield(L, idx, "padding");
    wp_padding_t p = def;
    if (ty == LUA_TBOOLEAN) p = lua_toboolean(L, -1) ? WP_PAD_LONGEST : WP_PAD_NONE;
    else if (ty == LUA_TSTRING && !strcmp(lua_tostring(L, -1), "max_length")) p = WP_PAD_MAX_LENGTH;
    else if (ty == LUA_TSTRING && !strcmp(lua_tostring(L, -1), "longest")) p = WP_PAD_LONGEST;
    else if (ty == LUA_TSTRING && !strcmp(lua_tostring(L, -1), "do_not_pad")) p = WP_PAD_NONE;
    else if (ty != LUA_TNIL)
        luaL_error(L, "option 'padding' must be \"max_length\", \"longest\" or false, got %s",
                   luaL_tolstring(L, -1, NULL));
    lua_pop(L, 1);
    return p;
}

/* max_length: an integer, or false for none; `def` when absent (-1 = none). */
static int64_t opt_max_length(lua_State *L, int idx, int64_t def) {
    if (lua_isnoneornil(L, idx)) return def;
    int ty = lua_getfield(L, idx, "max_length");
    int64_t v = def;
    if (ty == LUA_TBOOLEAN && !lua_toboolean(L, -1)) v = -1;
    else if (ty != LUA_TNIL) {
        int ok;
        v = lua_tointegerx(L, -1, &ok);
        if (!ok || v < 0) luaL_error(L, "option 'max_length' must be a non-negative integer or false, got %s",
                                     luaL_tolstring(L, -1, NULL));
    }
    lua_pop(L, 1);
    return v;
}

/* Reads the encode options shared by encode and batch_encode_plus. */
static wp_batch_opts_t read_encode_opts(lua_State *L, int idx, const char *fname, int is_batch) {
    static const char *const known_batch[] = {"add_special_tokens", "return_attention_mask", "return_token_type_ids",
                                              "padding", "max_length", "truncation", "pad_to_max_length",
                                              "return_tensors", NULL};
    static const char *const known_single[] = {"add_special_tokens", "padding", "max_length", "truncation", NULL};
    lbl_checkoptions(L, idx, fname, is_batch ? known_batch : known_single);
    wp_batch_opts_t o;
    o.add_special_tokens = lbl_optfield_bool(L, idx, "add_special_tokens", 1);
    o.padding = opt_padding(L, idx, is_batch ? WP_PAD_MAX_LENGTH : WP_PAD_NONE);
    if (is_batch) {
        /* the tutorial's spelling (transformers 2/3): pad_to_max_length=true, return_tensors="pt" */
        int ptml = lbl_optfield_bool(L, idx, "pad_to_max_length", -1);
        if (ptml >= 0) {
            int has_padding = lua_getfield(L, idx, "padding") != LUA_TNIL;
            lua_pop(L, 1);
            if (has_padding) luaL_error(L, "%s: give either 'padding' or 'pad_to_max_length', not both", fname);
            o.padding = ptml ? WP_PAD_MAX_LENGTH : WP_PAD_NONE;
        }
        const char *rt = lbl_optfield_str(L, idx, "return_tensors", "pt");
        if (strcmp(rt, "pt"))
            luaL_error(L, "%s: return_tensors must be \"pt\" (bertlab always returns its own tensors), got \"%s\"",
                       fname, rt);
    }
    o.max_length = opt_max_length(L, idx, is_batch ? 256 : -1);
    /* as transformers: a max_length without an explicit truncation (and without padding) truncates */
    int def_trunc = is_batch ? o.max_length >= 0 : (o.max_length >= 0 && o.padding == WP_PAD_NONE);
    o.truncation = lbl_optfield_bool(L, idx, "truncation", def_trunc);
    if (o.truncation && o.max_length < 0 && !is_batch) o.truncation = 0;
    if (o.truncation && o.max_length < 0)
        luaL_error(L, "%s: truncation=true needs max_length (got max_length=false)", fname);
    if (o.padding == WP_PAD_MAX_LENGTH && o.max_length < 0)
        luaL_error(L, "%s: padding=\"max_length\" needs max_length", fname);
    return o;
}

/* tok:encode(s[, {add_special_tokens=true, max_length=nil, truncation=, padding=false}]) → ids */
static int tok_encode(lua_State *L) {
    lua_settop(L, 3); /* options stay at index 3 while buffers are pushed */
    ltok_t *u = checktok(L, 1);
    size_t len;
    const char *s = checkstr(L, 2, &len);
    wp_batch_opts_t o = read_encode_opts(L, 3, "encode", 0);
    int64_t off[2];
    wp_batch_opts_t enc = o;
    enc.padding = WP_PAD_NONE; /* as transformers: a longer text without truncation stays longer */
    u->ids.n = 0;
    if (wordpiece_encode_batch(u->wp, 1, &s, &len, &enc, &u->ids, off)) {
        const char *m = bl_errmsg();
        if (!strncmp(m, "text 1: ", 8)) m += 8;
        return luaL_error(L, "encode: %s", m);
    }
    if (o.padding == WP_PAD_MAX_LENGTH) {
        int32_t pad = wordpiece_special_id(u->wp, WP_PAD);
        if (pad < 0 && (int64_t)u->ids.n < o.max_length)
            return luaL_error(L, "encode: the vocabulary has no '[PAD]' token (padding)");
        while ((int64_t)u->ids.n < o.max_length)
            if (wp_ids_push(&u->ids, pad)) return luaL_error(L, "encode: %s", bl_errmsg());
    }
    push_id_list(L, u->ids.v, u->ids.n);
    return 1;
}

/* Reads a list of integer ids (or one integer) at idx into an int64 userdata buffer on the stack. */
static int64_t *check_id_list(lua_State *L, int idx, const char *fname, size_t *n, int *single) {
    tensor_t *t = lbl_totensor(L, idx);
    if (t || luaL_testudata(L, idx, LBL_TENSOR)) {
        t = lbl_checkhost(L, idx);
        if (t->dtype != DT_I64 || t->ndim != 1)
            luaL_argerror(L, idx, "a 1-D int64 tensor of ids expected (use batch_decode for 2-D)");
        *single = 0;
        *n = (size_t)t->numel;
        int64_t *v = lua_newuserdatauv(L, (*n ? *n : 1) * sizeof *v, 0);
        if (*n) memcpy(v, t->data, *n * sizeof *v);
        return v;
    }
    *single = lua_type(L, idx) == LUA_TNUMBER;
    if (*single) {
        int64_t *v = lua_newuserdatauv(L, sizeof *v, 0);
        int ok;
        v[0] = lua_tointegerx(L, idx, &ok);
        if (!ok) luaL_argerror(L, idx, "an integer id expected");
        *n = 1;
        return v;
    }
    if (lua_type(L, idx) != LUA_TTABLE) luaL_typeerror(L, idx, "table or tensor of ids");
    *n = (size_t)luaL_len(L, idx);
    int64_t *v = lua_newuserdatauv(L, (*n ? *n : 1) * sizeof *v, 0);
    for (size_t i = 0; i < *n; i++) {
        lua_geti(L, idx, (lua_Integer)i + 1);
        int ok;
        v[i] = lua_tointegerx(L, -1, &ok);
        if (!ok) luaL_error(L, "%s: element %d of the list is %s, expected an integer id", fname, (int)i + 1,
                            luaL_typename(L, -1));
        lua_pop(L, 1);
    }
    return v;
}

/* tok:decode(ids[, {skip_special_tokens=false, clean_up_tokenization_spaces=true}]) → string */
static int tok_decode(lua_State *L) {
    static const char *const known[] = {"skip_special_tokens", "clean_up_tokenization_spaces", NULL};
    lua_settop(L, 3); /* options stay at index 3 while buffers are pushed */
    ltok_t *u = checktok(L, 1);
    size_t n;
    int single;
    int64_t *ids = check_id_list(L, 2, "decode", &n, &single);
    lbl_checkoptions(L, 3, "decode", known);
    int skip = lbl_optfield_bool(L, 3, "skip_special_tokens", 0);
    int clean = lbl_optfield_bool(L, 3, "clean_up_tokenization_spaces", 1);
    size_t len;
    char *s = wordpiece_decode(u->wp, ids, n, skip, clean, &len);
    if (!s) return luaL_error(L, "decode: %s", bl_errmsg());
    lua_pushlstring(L, s, len);
    free(s);
    return 1;
}

/* tok:convert_tokens_to_ids(list | token) → list | id; unknown tokens give [UNK]'s id */
static int tok_tokens_to_ids(lua_State *L) {
    ltok_t *u = checktok(L, 1);
    int32_t unk = wordpiece_special_id(u->wp, WP_UNK);
    if (lua_type(L, 2) == LUA_TSTRING) {
        size_t tl;
        const char *t = lua_tolstring(L, 2, &tl);
        int32_t id = wordpiece_token_id(u->wp, t, tl);
        lua_pushinteger(L, id >= 0 ? id : unk);
        return 1;
    }
    if (lua_type(L, 2) != LUA_TTABLE) return luaL_typeerror(L, 2, "table of tokens or string");
    lua_Integer n = luaL_len(L, 2);
    lua_createtable(L, (int)n, 0);
    for (lua_Integer i = 1; i <= n; i++) {
        if (lua_geti(L, 2, i) != LUA_TSTRING)
            return luaL_error(L, "convert_tokens_to_ids: element %d of the list is %s, expected a string", (int)i,
                              luaL_typename(L, -1));
        size_t tl;
        const char *t = lua_tolstring(L, -1, &tl);
        int32_t id = wordpiece_token_id(u->wp, t, tl);
        lua_pop(L, 1);
        lua_pushinteger(L, id >= 0 ? id : unk);
        lua_rawseti(L, -2, i);
    }
    return 1;
}

/* tok:convert_ids_to_tokens(list | id[, {skip_special_tokens=false}]) → list | token */
static int tok_ids_to_tokens(lua_State *L) {
    static const char *const known[] = {"skip_special_tokens", NULL};
    lua_settop(L, 3); /* options stay at index 3 while buffers are pushed */
    ltok_t *u = checktok(L, 1);
    size_t n;
    int single;
    int64_t *ids = check_id_list(L, 2, "convert_ids_to_tokens", &n, &single);
    lbl_checkoptions(L, 3, "convert_ids_to_tokens", known);
    int skip = lbl_optfield_bool(L, 3, "skip_special_tokens", 0);
    lua_createtable(L, (int)n, 0);
    lua_Integer k = 0;
    for (size_t i = 0; i < n; i++) {
        size_t tl;
        const char *t = wordpiece_id_token(u->wp, ids[i], &tl);
        if (!t)
            return luaL_error(L, "convert_ids_to_tokens: id %I at position %d is out of range [0, %d)",
                              (lua_Integer)ids[i], (int)i + 1, (int)wordpiece_num_ids(u->wp));
        if (skip && wordpiece_is_special_id(u->wp, ids[i])) continue;
        lua_pushlstring(L, t, tl);
        lua_rawseti(L, -2, ++k);
    }
    if (single) lua_geti(L, -1, 1);
    return 1;
}

/* ---- batches ------------------------------------------------------------------------------------ */

/* Pushes a list of lists from an encoded batch: value(row, j) for j < row length. */
static void push_ragged(lua_State *L, int64_t n, const wp_ids_t *ids, const int64_t *off, int what) {
    lua_createtable(L, (int)n, 0);
    for (int64_t i = 0; i < n; i++) {
        int64_t len = off[i + 1] - off[i];
        lua_createtable(L, (int)len, 0);
        for (int64_t j = 0; j < len; j++) {
            lua_pushinteger(L, what == 0 ? ids->v[off[i] + j] : what == 1 ? 1 : 0);
            lua_rawseti(L, -2, j + 1);
        }
        lua_rawseti(L, -2, i + 1);
    }
}

/* tok:batch_encode_plus(list[, {add_special_tokens=true, return_attention_mask=true,
 * return_token_type_ids=true, padding="max_length", max_length=256, truncation=true}])
 * → {input_ids=, attention_mask=, token_type_ids=}: int64 tensors [N,L], or lists of lists when
 * padding=false leaves rows of unequal length. */
static int tok_batch_encode_plus(lua_State *L) {
    lua_settop(L, 3); /* options stay at index 3 while buffers are pushed */
    ltok_t *u = checktok(L, 1);
    if (lua_type(L, 2) != LUA_TTABLE) return luaL_typeerror(L, 2, "table of strings");
    wp_batch_opts_t o = read_encode_opts(L, 3, "batch_encode_plus", 1);
    int want_mask = lbl_optfield_bool(L, 3, "return_attention_mask", 1);
    int want_types = lbl_optfield_bool(L, 3, "return_token_type_ids", 1);
    int64_t n = (int64_t)luaL_len(L, 2);
    /* GC-owned buffers: freed even when an error unwinds */
    const char **texts = lua_newuserdatauv(L, (size_t)(n ? n : 1) * sizeof *texts, 0);
    size_t *lens = lua_newuserdatauv(L, (size_t)(n ? n : 1) * sizeof *lens, 0);
    int64_t *off = lua_newuserdatauv(L, (size_t)(n + 1) * sizeof *off, 0);
    for (int64_t i = 0; i < n; i++) {
        if (lua_geti(L, 2, i + 1) != LUA_TSTRING)
            return luaL_error(L, "batch_encode_plus: element %d of the list is %s, expected a string", (int)i + 1,
                              luaL_typename(L, -1));
        texts[i] = lua_tolstring(L, -1, &lens[i]); /* stays alive: the list holds it */
        lua_pop(L, 1);
    }
    u->ids.n = 0;
    if (wordpiece_encode_batch(u->wp, n, texts, lens, &o, &u->ids, off))
        return luaL_error(L, "batch_encode_plus: %s", bl_errmsg());
    int ragged = 0;
    if (o.padding == WP_PAD_NONE)
        for (int64_t i = 1; i < n; i++)
            if (off[i + 1] - off[i] != off[1] - off[0]) ragged = 1;
    lua_createtable(L, 0, 3);
    if (ragged) {
        push_ragged(L, n, &u->ids, off, 0);
        lua_setfield(L, -2, "input_ids");
        if (want_mask) {
            push_ragged(L, n, &u->ids, off, 1);
            lua_setfield(L, -2, "attention_mask");
        }
        if (want_types) {
            push_ragged(L, n, &u->ids, off, 2);
            lua_setfield(L, -2, "token_type_ids");
        }
        return 1;
    }
    tensor_t *ids = NULL, *mask = NULL, *types = NULL;
    if (wordpiece_pad_batch(u->wp, n, &u->ids, off, &o, &ids, want_mask ? &mask : NULL, want_types ? &types : NULL))
        return luaL_error(L, "batch_encode_plus: %s", bl_errmsg());
    lbl_pushtensor(L, ids);
    lua_setfield(L, -2, "input_ids");
    if (want_mask) {
        lbl_pushtensor(L, mask);
        lua_setfield(L, -2, "attention_mask");
    }
    if (want_types) {
        lbl_pushtensor(L, types);
        lua_setfield(L, -2, "token_type_ids");
    }
    return 1;
}

/* ---- registration ------------------------------------------------------------------------------- */

static const luaL_Reg tok_methods[] = {
    {"tokenize", tok_tokenize}, {"encode", tok_encode}, {"decode", tok_decode},
    {"convert_tokens_to_ids", tok_tokens_to_ids}, {"convert_ids_to_tokens", tok_ids_to_tokens},
    {"vocab_size", tok_vocab_size}, {"batch_encode_plus", tok_batch_encode_plus}, {"free", tok_free},
    {NULL, NULL}};

static const luaL_Reg tok_meta[] = {
    {"__gc", tok_free}, {"__close", tok_free}, {"__tostring", tok_tostring}, {NULL, NULL}};

void bl_open_tokenizer(lua_State *L) {
    lbl_newclass(L, LBL_TOKENIZER, tok_methods, tok_meta);
    /* bl.BertTokenizer = {from_pretrained = f, methods = <the method table>} so that
     * lua/bertlab/tokenizer.lua can add pure-Lua methods */
    lua_newtable(L);
    lua_pushcfunction(L, l_from_pretrained);
    lua_setfield(L, -2, "from_pretrained");
    luaL_getmetatable(L, LBL_TOKENIZER);
    lua_getfield(L, -1, "__index");
    lua_setfield(L, -3, "methods");
    lua_pop(L, 1);
    lua_setfield(L, -2, "BertTokenizer");
}
