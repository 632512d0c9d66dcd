/* l_model.c: Lua bindings of the model (runtime/bert.h): bl.BertForSequenceClassification and the
 * model userdata's methods. Parameter tensors handed to Lua are views into the model's one
 * allocation on its device, cached in the userdata so that model:free() can empty them before the
 * memory goes and model:to() can repoint them. */
#include <stdlib.h>
#include <string.h>
#include "../runtime/bert.h"
#include "../runtime/device.h"
#include "../runtime/error.h"
#include "lbl.h"

#define LBL_MODEL "bertlab.BertForSequenceClassification"

typedef struct {
    bert_t *m; /* NULL once freed */
    uint64_t backward_of; /* 1 + the forward_count of the last forward backpropagated, 0: none */
} lmodel_t;

/* uservalue slots of the model userdata */
enum { UV_PARAMS = 1 };

static lmodel_t *checkbox(lua_State *L, int idx) { return luaL_checkudata(L, idx, LBL_MODEL); }

static bert_t *checkmodel(lua_State *L, int idx) {
    lmodel_t *u = checkbox(L, idx);
    if (!u->m) luaL_error(L, "the model was freed");
    return u->m;
}

bert_t *lbl_tomodel(lua_State *L, int idx) {
    lmodel_t *u = luaL_testudata(L, idx, LBL_MODEL);
    return u ? u->m : NULL;
}

/* The device named by string argument/option value at idx (raises naming `what`). */
static int check_device(lua_State *L, const char *what, const char *name) {
    int dev;
    if (device_parse(name, &dev) != 0) luaL_error(L, "%s: %s", what, bl_errmsg());
    return dev;
}

/* ------------------------------------------------------------------------------------------------
 * construction */

/* Reads opts.id2label (a {[0]=...} table or a 1-based list) into a malloc'd array of n names. */
static const char **read_id2label(lua_State *L, int opts, int *n_out) {
    *n_out = 0;
    if (lua_isnoneornil(L, opts)) return NULL;
    if (lua_getfield(L, opts, "id2label") == LUA_TNIL) {
        lua_pop(L, 1);
        return NULL;
    }
    if (!lua_istable(L, -1))
        luaL_error(L, "from_pretrained: option 'id2label' must be a table, got %s",
                   luaL_typename(L, -1));
    int tbl = lua_gettop(L);
    int base = lua_geti(L, tbl, 0) != LUA_TNIL ? 0 : 1;
    lua_pop(L, 1);
    int n = 0;
    while (lua_geti(L, tbl, base + n) != LUA_TNIL) {
        lua_pop(L, 1);
        n++;
    }
    lua_pop(L, 1);
    if (n == 0) luaL_error(L, "from_pretrained: option 'id2label' is empty");
    if (n > BERT_MAX_LABELS) luaL_error(L, "from_pretrained: too many labels (%d)", n);
    const char **names = lua_newuserdatauv(L, sizeof(char *) * (size_t)n, 0); /* GC-owned */
    for (int i = 0; i < n; i++) {
        lua_geti(L, tbl, base + i);
        if (lua_type(L, -1) != LUA_TSTRING)
            luaL_error(L, "from_pretrained: id2label[%d] must be a string, got %s", base + i,
                       luaL_typename(L, -1));
        names[i] = lua_tostring(L, -1);
        lua_pop(L, 1); /* the string stays alive: the options table holds it */
    }
    /* the names userdata stays on the stack until the call returns */
    *n_out = n;
    return names;
}

static int model_from_pretrained(lua_State *L) {
    static const char *const accepted[] = {"num_labels", "id2label", "quiet", "device", "strict", NULL};
    luaL_checktype(L, 1, LUA_TSTRING);
    const char *path = lua_tostring(L, 1);
    if (!lua_isnoneornil(L, 2)) luaL_checktype(L, 2, LUA_TTABLE);
    int opts = lua_isnoneornil(L, 2) ? 0 : 2;
    lbl_checkoptions(L, opts, "from_pretrained", accepted);
    lua_Integer nl = lbl_optfield_int(L, opts, "num_labels", -1); /* -1: not given, keep the config's */
    if (nl != -1 && (nl < 2 || nl > BERT_MAX_LABELS))
        luaL_error(L, "from_pretrained: num_labels must be between 2 and %d, got %I", BERT_MAX_LABELS, (LUAI_UACINT)nl);
    int num_labels = nl == -1 ? 0 : (int)nl;
    int quiet = lbl_optfield_bool(L, opts, "quiet", 0);
    int strict = lbl_optfield_bool(L, opts, "strict", 0);
    int device = check_device(L, "from_pretrained", lbl_optfield_str(L, opts, "device", "cpu"));
    int n_names = 0;
    const char **names = opts ? read_id2label(L, opts, &n_names) : NULL;
    if (num_labels < 0 || num_labels == 1 || num_labels > BERT_MAX_LABELS)
        luaL_error(L, "from_pretrained: num_labels must be between 2 and %d, got %d",
                   BERT_MAX_LABELS, num_labels);
    if (names && num_labels && num_labels != n_names)
        luaL_error(L, "from_pretrained: num_labels is %d but id2label has %d names", num_labels,
                   n_names);
    if (names) num_labels = n_names;

    lmodel_t *u = lua_newuserdatauv(L, sizeof *u, 1);
    u->m = NULL; /* safe, empty state before anything can fail */
    u->backward_of = 0;
    luaL_setmetatable(L, LBL_MODEL);
    bert_t *m = calloc(1, sizeof *m);
    if (!m) return luaL_error(L, "from_pretrained: out of memory");
    bert_load_opts_t lo = {num_labels, names, quiet, strict};
    if (bert_from_pretrained_on(m, path, &lo, device) != 0) {
        free(m);
        return luaL_error(L, "from_pretrained: %s", bl_errmsg());
    }
    u->m = m;
    return 1;
}

/* ------------------------------------------------------------------------------------------------
 * forward / backward */

/* The tensor in field `key` of the table at idx, or NULL when absent. */
static const tensor_t *opt_tensor_field(lua_State *L, int idx, const char *key, int required) {
    int ty = lua_getfield(L, idx, key);
    if (ty == LUA_TNIL) {
        lua_pop(L, 1);
        if (required) luaL_error(L, "forward: %s is required", key);
        return NULL;
    }
    ltensor_t *box = luaL_testudata(L, -1, LBL_TENSOR);
    if (!box) luaL_error(L, "forward: %s must be a tensor, got %s", key, luaL_typename(L, -1));
    tensor_t *t = lbl_boxtensor(box);
    if (!t || (!t->data && t->numel > 0)) luaL_error(L, "forward: %s is a tensor that was freed", key);
    lua_pop(L, 1); /* the input table keeps it alive */
    return t;
}

/* loss:backward() hook; upvalues: the model userdata and the forward it belongs to. */
static int model_loss_backward(lua_State *L) {
    lmodel_t *u = luaL_checkudata(L, lua_upvalueindex(1), LBL_MODEL);
    if (!u->m) return luaL_error(L, "backward: the model was freed");
    lua_Integer id = lua_tointeger(L, lua_upvalueindex(2));
    if ((uint64_t)id != u->m->forward_count)
        return luaL_error(L, "backward: the model ran another forward since this loss was "
                             "computed; call backward before the next forward");
    if (u->backward_of == (uint64_t)id + 1)
        return luaL_error(L, "backward: this loss was already backpropagated (gradients would be added "
                             "twice); run a new forward first");
    lbl_check(L, bert_backward(u->m, 1.0f), NULL);
    u->backward_of = (uint64_t)id + 1;
    return 0;
}

/* Host copies of device tensors among the inputs (freed by free_host_inputs). */
static void host_inputs(lua_State *L, bert_inputs_t *in, tensor_t *tmp[4]) {
    const tensor_t **f[4] = {&in->input_ids, &in->attention_mask, &in->token_type_ids, &in->labels};
    for (int i = 0; i < 4; i++) {
        tmp[i] = NULL;
        if (*f[i] && (*f[i])->device != DEV_CPU) {
            tmp[i] = tensor_on_host(*f[i]);
            if (!tmp[i]) {
                for (int j = 0; j < i; j++) tensor_free(tmp[j]);
                lbl_check(L, -1, "forward");
            }
            *f[i] = tmp[i];
        }
    }
}

static lua_Integer opt_int_field(lua_State *L, int idx, const char *name, lua_Integer dflt) {
    lua_Integer v = dflt;
    if (lua_getfield(L, idx, name) != LUA_TNIL) {
        int isint = 0;
        v = lua_tointegerx(L, -1, &isint);
        if (!isint || v < 0 || v > INT32_MAX)
            luaL_error(L, "forward: %s must be a non-negative integer, got %s", name, luaL_tolstring(L, -1, NULL));
    }
    lua_pop(L, 1);
    return v;
}

static int model_forward(lua_State *L) {
    bert_t *m = checkmodel(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    static const char *const accepted[] = {"input_ids", "labels", "attention_mask", "token_type_ids",
                                           "grad", "batch_offset", "batch_total", NULL};
    lbl_checkoptions_hint(L, 2, "forward", accepted, "label", "did you mean labels?");
    bert_inputs_t in;
    in.input_ids = opt_tensor_field(L, 2, "input_ids", 1);
    in.attention_mask = opt_tensor_field(L, 2, "attention_mask", 0);
    in.token_type_ids = opt_tensor_field(L, 2, "token_type_ids", 0);
    in.labels = opt_tensor_field(L, 2, "labels", 0);
    /* data parallel: this batch's rows within the global batch (dropout masks follow the row) */
    in.batch_first = (int)opt_int_field(L, 2, "batch_offset", 0);
    in.batch_total = (int)opt_int_field(L, 2, "batch_total", 0);
    /* grad = false: an evaluation forward (one layer's activations, no backward; bert.h) */
    int t = lua_getfield(L, 2, "grad");
    if (t != LUA_TNIL && t != LUA_TBOOLEAN)
        luaL_error(L, "forward: grad must be a boolean, got %s", luaL_typename(L, -1));
    in.no_grad = t == LUA_TBOOLEAN && !lua_toboolean(L, -1);
    lua_pop(L, 1);
    /* the model takes host batches (validated there, staged in one copy); device batches come back */
    tensor_t *tmp[4];
    host_inputs(L, &in, tmp);
    float loss = 0.0f;
    int rc = bert_forward(m, &in, in.labels ? &loss : NULL);
    for (int i = 0; i < 4; i++) tensor_free(tmp[i]);
    lbl_check(L, rc, "forward");

    lua_createtable(L, 0, 2);
    /* the logits stay on the model's device (a copy: the activations are reused by the next forward) */
    int64_t shape[2] = {m->B, m->config.num_labels};
    tensor_t *logits = tensor_new_on((device_t)m->be->device, DT_F32, 2, shape);
    if (logits) m->be->copy_on_device(logits->data, m->acts.logits, sizeof(float) * (size_t)(shape[0] * shape[1]));
    lbl_pushtensor(L, logits);
    lua_setfield(L, -2, "logits");
    if (in.labels) {
        tensor_t *lt = tensor_new(DT_F32, 0, NULL);
        if (lt) ((float *)lt->data)[0] = loss;
        lbl_pushtensor(L, lt);
        lua_pushvalue(L, 1);
        lua_pushinteger(L, (lua_Integer)m->forward_count);
        lua_pushcclosure(L, model_loss_backward, 2);
        lbl_setattr(L, -2, "_backward");
        lua_setfield(L, -2, "loss");
    }
    return 1;
}

/* model:allreduce_grads([scale=1]) -> model: gradients *= scale, then summed over the processes
 * of a data-parallel run (bl.dist_size() of them; the same bits on every rank). */
static int model_allreduce_grads(lua_State *L) {
    bert_t *m = checkmodel(L, 1);
    float scale = (float)luaL_optnumber(L, 2, 1.0);
    lbl_check(L, bert_allreduce_grads(m, scale), "allreduce_grads");
    lua_settop(L, 1);
    return 1;
}

/* model:params_sumsq() -> the sum of squares of every weight (NaN/Inf when any weight is). */
static int model_params_sumsq(lua_State *L) {
    double ss = 0;
    lbl_check(L, bert_params_sumsq(checkmodel(L, 1), &ss), "params_sumsq");
    lua_pushnumber(L, ss);
    return 1;
}

static int model_zero_grad(lua_State *L) {
    bert_zero_grad(checkmodel(L, 1));
    return 0;
}

static int model_train(lua_State *L) {
    bert_t *m = checkmodel(L, 1);
    bert_set_training(m, lua_isnoneornil(L, 2) ? 1 : lua_toboolean(L, 2));
    lua_settop(L, 1);
    return 1;
}

static int model_eval(lua_State *L) {
    bert_set_training(checkmodel(L, 1), 0);
    lua_settop(L, 1);
    return 1;
}

/* ------------------------------------------------------------------------------------------------
 * parameters */

/* A gradient view's ready hook: bert_zero_grad may have left gradients to the next backward */
static void grads_ready(void *m) { bert_grads_ready((bert_t *)m); }

/* Pushes the cached list of parameter views (created on first use; the gradients' views bring
 * the gradients up to date before each use). */
static void push_param_cache(lua_State *L, int model_idx) {
    bert_t *m = checkmodel(L, model_idx);
    if (lua_getiuservalue(L, model_idx, UV_PARAMS) == LUA_TTABLE) return;
    lua_pop(L, 1);
    lua_createtable(L, m->num_tensors, 0);
    for (int i = 0; i < m->num_tensors; i++) {
        const bert_param_info_t *in = &m->info[i];
        device_t dev = (device_t)m->be->device;
        lbl_pushview(L, tensor_view_on(dev, DT_F32, in->ndim, in->shape, m->params_memory + in->offset),
                     model_idx);
        lua_pushstring(L, in->name);
        lbl_setattr(L, -2, "name");
        lbl_pushview_ready(L, tensor_view_on(dev, DT_F32, in->ndim, in->shape, m->grads_memory + in->offset),
                           model_idx, grads_ready, m);
        lua_pushstring(L, in->name);
        lbl_setattr(L, -2, "name");
        lbl_setattr(L, -2, "grad");
        lua_rawseti(L, -2, i + 1);
    }
    lua_pushvalue(L, -1);
    lua_setiuservalue(L, model_idx, UV_PARAMS);
}

static int model_parameters(lua_State *L) {
    checkmodel(L, 1);
    push_param_cache(L, 1);
    int n = (int)lua_rawlen(L, -1);
    lua_createtable(L, n, 0); /* a fresh list, so callers may edit it; same tensors each time */
    for (int i = 1; i <= n; i++) {
        lua_rawgeti(L, -2, i);
        lua_rawseti(L, -2, i);
    }
    return 1;
}

/* model:to(device): moves parameters, gradients and optimizer moments; returns the model. The
 * parameter views handed out are repointed, so optimizers made before keep working. */
static int model_to(lua_State *L) {
    bert_t *m = checkmodel(L, 1);
    int dev = check_device(L, "to", luaL_checkstring(L, 2));
    const bl_backend_t *be = device_backend(dev);
    if (!be) return luaL_error(L, "to: %s", bl_errmsg());
    lbl_check(L, bert_to(m, be), "to");
    if (lua_getiuservalue(L, 1, UV_PARAMS) == LUA_TTABLE) {
        for (int i = 0; i < m->num_tensors; i++) {
            lua_rawgeti(L, -1, i + 1);
            tensor_t *t = lbl_totensor(L, -1);
            if (t) {
                t->data = m->params_memory + m->info[i].offset;
                t->device = (device_t)dev;
                if (lbl_getattr(L, -1, "grad") != LUA_TNIL) {
                    tensor_t *g = lbl_totensor(L, -1);
                    if (g) {
                        g->data = m->grads_memory + m->info[i].offset;
                        g->device = (device_t)dev;
                    }
                }
                lua_pop(L, 1);
            }
            lua_pop(L, 1);
        }
    }
    lua_settop(L, 1);
    return 1;
}

static int model_device(lua_State *L) {
    lua_pushstring(L, device_label(checkmodel(L, 1)->be->device));
    return 1;
}

static int model_num_parameters(lua_State *L) {
    lua_pushinteger(L, (lua_Integer)checkmodel(L, 1)->num_parameters);
    return 1;
}

/* ------------------------------------------------------------------------------------------------
 * checkpoints and description */

static int model_save(lua_State *L) {
    bert_t *m = checkmodel(L, 1);
    luaL_checktype(L, 2, LUA_TSTRING);
    lbl_check(L, bert_save(m, lua_tostring(L, 2)), "save");
    return 0;
}

static int model_load(lua_State *L) {
    bert_t *m = checkmodel(L, 1);
    luaL_checktype(L, 2, LUA_TSTRING);
    const char *path = lua_tostring(L, 2);
    if (!lua_isnoneornil(L, 3)) luaL_checktype(L, 3, LUA_TTABLE);
    static const char *const accepted[] = {"strict", NULL};
    lbl_checkoptions(L, lua_isnoneornil(L, 3) ? 0 : 3, "load", accepted);
    int strict = lbl_optfield_bool(L, lua_isnoneornil(L, 3) ? 0 : 3, "strict", 1);
    lbl_check(L, bert_load_weights(m, path, strict), "load");
    lua_settop(L, 1);
    return 1;
}

static int model_config(lua_State *L) {
    const bert_config_t *c = &checkmodel(L, 1)->config;
    lua_createtable(L, 0, 16);
#define SETI(k) (lua_pushinteger(L, c->k), lua_setfield(L, -2, #k))
#define SETN(k) (lua_pushnumber(L, c->k), lua_setfield(L, -2, #k))
    SETI(vocab_size);
    SETI(hidden_size);
    SETI(num_hidden_layers);
    SETI(num_attention_heads);
    SETI(intermediate_size);
    SETI(max_position_embeddings);
    SETI(type_vocab_size);
    SETI(num_labels);
    SETN(layer_norm_eps);
    SETN(hidden_dropout_prob);
    SETN(attention_probs_dropout_prob);
    SETN(initializer_range);
#undef SETI
#undef SETN
    lua_pushnumber(L, checkmodel(L, 1)->classifier_dropout);
    lua_setfield(L, -2, "classifier_dropout");
    lua_pushstring(L, c->hidden_act);
    lua_setfield(L, -2, "hidden_act");
    lua_createtable(L, c->num_labels, 1);
    lua_createtable(L, 0, c->num_labels);
    for (int i = 0; i < c->num_labels; i++) {
        const char *nm = c->id2label ? c->id2label[i] : "";
        lua_pushstring(L, nm);
        lua_rawseti(L, -3, i);
        lua_pushinteger(L, i);
        lua_setfield(L, -2, nm);
    }
    lua_setfield(L, -3, "label2id");
    lua_setfield(L, -2, "id2label");
    return 1;
}

static int model_free(lua_State *L) {
    lmodel_t *u = checkbox(L, 1);
    if (!u->m) return 0;
    /* empty the parameter views handed out, so a stale one reads as a 0-element tensor */
    if (lua_getiuservalue(L, 1, UV_PARAMS) == LUA_TTABLE) {
        int n = (int)lua_rawlen(L, -1);
        for (int i = 1; i <= n; i++) {
            lua_rawgeti(L, -1, i);
            tensor_t *t = lbl_totensor(L, -1);
            if (t) {
                if (lbl_getattr(L, -1, "grad") != LUA_TNIL) {
                    tensor_t *g = lbl_totensor(L, -1);
                    if (g) tensor_release(g);
                }
                lua_pop(L, 1);
                tensor_release(t);
            }
            lua_pop(L, 1);
        }
    }
    lua_pop(L, 1);
    bert_free(u->m);
    free(u->m);
    u->m = NULL;
    return 0;
}

/* model:set_class_weights(w): w a list of num_labels numbers (or a float32 tensor [L]) weighting
 * the cross-entropy per class, as CrossEntropyLoss(weight=w); nil: the plain mean again. */
static int model_set_class_weights(lua_State *L) {
    bert_t *m = checkmodel(L, 1);
    if (lua_isnoneornil(L, 2)) {
        lbl_check(L, bert_set_class_weights(m, NULL, 0), "set_class_weights");
        return 0;
    }
    int L_ = m->config.num_labels;
    float *w = lua_newuserdatauv(L, sizeof(float) * (size_t)(L_ > 0 ? L_ : 1), 0);
    int n;
    tensor_t *t = lbl_totensor(L, 2);
    if (t) {
        if (t->dtype != DT_F32 || t->ndim != 1 || t->device != DEV_CPU)
            return luaL_argerror(L, 2, "expected a float32 tensor [num_labels] on the cpu");
        n = (int)t->shape[0];
        if (n == L_) memcpy(w, t->data, sizeof(float) * (size_t)n);
    } else {
        luaL_checktype(L, 2, LUA_TTABLE);
        n = (int)luaL_len(L, 2);
        for (int i = 1; i <= n && n == L_; i++) {
            lua_geti(L, 2, i);
            int ok;
            lua_Number v = lua_tonumberx(L, -1, &ok);
            if (!ok)
                return luaL_error(L, "set_class_weights: entry %d is a %s, not a number", i,
                                  luaL_typename(L, -1));
            w[i - 1] = (float)v;
            lua_pop(L, 1);
        }
    }
    lbl_check(L, bert_set_class_weights(m, w, n), "set_class_weights");
    return 0;
}

/* model:class_weights() -> the list set by set_class_weights, or nil. */
static int model_class_weights(lua_State *L) {
    bert_t *m = checkmodel(L, 1);
    if (!m->class_weights) return 0;
    lua_createtable(L, m->config.num_labels, 0);
    for (int i = 0; i < m->config.num_labels; i++) {
        lua_pushnumber(L, m->class_weights[i]);
        lua_rawseti(L, -2, i + 1);
    }
    return 1;
}

static int model_tostring(lua_State *L) {
    lmodel_t *u = checkbox(L, 1);
    if (!u->m) {
        lua_pushstring(L, "BertForSequenceClassification(<freed>)");
        return 1;
    }
    const bert_config_t *c = &u->m->config;
    lua_pushfstring(L,
                    "BertForSequenceClassification(layers=%d, hidden=%d, heads=%d, intermediate=%d, "
                    "vocab=%d, labels=%d, parameters=%I, %s)",
                    c->num_hidden_layers, c->hidden_size, c->num_attention_heads,
                    c->intermediate_size, c->vocab_size, c->num_labels,
                    (lua_Integer)u->m->num_parameters, u->m->training ? "train" : "eval");
    return 1;
}

static const luaL_Reg model_methods[] = {
    {"forward", model_forward},       {"zero_grad", model_zero_grad},
    {"train", model_train},           {"eval", model_eval},
    {"parameters", model_parameters}, {"num_parameters", model_num_parameters},
    {"save", model_save},             {"load", model_load},
    {"config", model_config},         {"free", model_free},
    {"to", model_to},                 {"device", model_device},
    {"params_sumsq", model_params_sumsq}, {"allreduce_grads", model_allreduce_grads},
    {"set_class_weights", model_set_class_weights}, {"class_weights", model_class_weights},
    {NULL, NULL}};

static const luaL_Reg model_meta[] = {
    {"__gc", model_free}, {"__close", model_free}, {"__tostring", model_tostring}, {NULL, NULL}};

void bl_open_model(lua_State *L) {
    lbl_newclass(L, LBL_MODEL, model_methods, model_meta);
    lua_createtable(L, 0, 1);
    lua_pushcfunction(L, model_from_pretrained);
    lua_setfield(L, -2, "from_pretrained");
    lua_setfield(L, -2, "BertForSequenceClassification");
}
