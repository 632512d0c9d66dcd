/* l_train.c: Lua bindings of the training part: the bertlab.AdamW optimizer, gradient clipping,
 * bl.parameter (attach a gradient to a tensor), and bl.isatty for the progress bar. A list that is
 * exactly all of one model's parameters (model:parameters(), in any order) goes through the model's
 * flat buffers on its device (one AdamW kernel, moments in the model; one norm reduction); other
 * lists are host tensors updated through runtime/optim.c. Schedules, metrics and progress bars are pure Lua (lua/bertlab/). */
#include "lbl.h"
#include "../runtime/bert.h"
#include "../runtime/device.h"
#include "../runtime/error.h"
#include "../runtime/optim.h"
#include "../runtime/safetensors.h"
#include <lualib.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define LBL_ADAMW "bertlab.AdamW"

typedef struct {
    adamw_t *o;    /* NULL once freed */
    float **p, **g; /* [nparams] scratch pointer arrays, reused every step */
    int model;     /* 1: the list is all of one model's parameters (uservalue 2 is the model) */
} ladamw_t;

/* The model whose parameters are exactly the n tensors of the list at idx (each once, any order),
 * with their own .grad when need_grad; NULL otherwise. */
static bert_t *model_of(lua_State *L, int list, lua_Integer n, int need_grad, int *owner_idx) {
    bert_t *m = NULL;
    int top = lua_gettop(L);
    for (lua_Integer i = 1; i <= n; i++) {
        lua_geti(L, list, i);
        tensor_t *t = lbl_totensor(L, -1);
        if (!t || lbl_getattr(L, -1, "_owner") == LUA_TNIL) goto no;
        bert_t *mi = lbl_tomodel(L, -1);
        if (!mi || (m && mi != m)) goto no;
        if (!m) {
            m = mi;
            if (n != m->num_tensors) goto no;
        }
        lua_pop(L, 2);
    }
    if (!m) return NULL;
    {
        char *seen = lua_newuserdatauv(L, (size_t)m->num_tensors, 0);
        memset(seen, 0, (size_t)m->num_tensors);
        for (lua_Integer i = 1; i <= n; i++) {
            lua_geti(L, list, i);
            tensor_t *t = lbl_totensor(L, -1);
            int k = -1;
            for (int j = 0; j < m->num_tensors && k < 0; j++)
                if (t->data == m->params_memory + m->info[j].offset && (size_t)t->numel == m->info[j].numel) k = j;
            if (k < 0 || seen[k]) goto no;
            seen[k] = 1;
            if (need_grad) {
                lbl_getattr(L, -1, "grad");
                tensor_t *g = lbl_totensor(L, -1);
                if (!g || g->data != m->grads_memory + m->info[k].offset) goto no;
                lua_pop(L, 1);
            }
            lua_pop(L, 1);
        }
    }
    lua_settop(L, top);
    if (owner_idx) { /* the model userdata, left on the stack */
        lua_geti(L, list, 1);
        lbl_getattr(L, -1, "_owner");
        lua_remove(L, -2);
        *owner_idx = lua_gettop(L);
    }
    return m;
no:
    lua_settop(L, top);
    return NULL;
}

/* ---- parameters and their gradients ------------------------------------------------------------ */

/* Pushes (and returns) a description of parameter i (1-based) of the list at idx:
 * "parameter 3 ('bert.pooler.dense.weight')". Used only on the way to an error. */
static const char *param_label(lua_State *L, int list_idx, lua_Integer i) {
    lua_geti(L, list_idx, i);
    if (lbl_totensor(L, -1) && lbl_getattr(L, -1, "name") == LUA_TSTRING)
        return lua_pushfstring(L, "parameter %d ('%s')", (int)i, lua_tostring(L, -1));
    return lua_pushfstring(L, "parameter %d", (int)i);
}

/* The float32 tensor at position i of the list at idx, or an error naming it. */
static tensor_t *check_param(lua_State *L, const char *fn, int list_idx, lua_Integer i) {
    lua_geti(L, list_idx, i);
    tensor_t *t = lbl_totensor(L, -1);
    lua_pop(L, 1);
    if (!t) {
        lua_geti(L, list_idx, i);
        const char *tn = luaL_typename(L, -1);
        lua_pop(L, 1);
        luaL_error(L, "%s: parameter %d is a %s, expected a bertlab.Tensor (freed or missing?)", fn, (int)i, tn);
    }
    if (t->dtype != DT_F32) {
        const char *lab = param_label(L, list_idx, i);
        luaL_error(L, "%s: %s is %s, expected float32", fn, lab, dtype_name(t->dtype));
    }
    return t;
}

/* The gradient of parameter i (a float32 tensor of the same size), or an error naming it. */
static tensor_t *check_grad(lua_State *L, const char *fn, int list_idx, lua_Integer i, const tensor_t *p) {
    lua_geti(L, list_idx, i);
    int ty = lbl_getattr(L, -1, "grad");
    tensor_t *g = lbl_totensor(L, -1);
    lua_pop(L, 2);
    if (!g) {
        const char *lab = param_label(L, list_idx, i);
        luaL_error(L, "%s: %s has no gradient (.grad is %s; attach one with bl.parameter)", fn, lab,
                   ty == LUA_TNIL ? "nil" : "not a tensor");
    }
    if (g->dtype != DT_F32 || g->numel != p->numel) {
        char s1[96], s2[96];
        const char *lab = param_label(L, list_idx, i);
        luaL_error(L, "%s: the gradient of %s is %s %s, expected float32 %s", fn, lab, dtype_name(g->dtype),
                   tensor_shape_str(g, s1, sizeof s1), tensor_shape_str(p, s2, sizeof s2));
    }
    return g;
}

/* bl.parameter(t[, grad]): attaches `grad` (default: zeros of t's shape) as t.grad; returns t. */
static int l_parameter(lua_State *L) {
    tensor_t *t = lbl_checktensor(L, 1);
    if (t->dtype != DT_F32) luaL_argerror(L, 1, "parameters must be float32 tensors");
    if (lua_isnoneornil(L, 2)) {
        lbl_pushtensor(L, tensor_new(DT_F32, t->ndim, t->shape));
    } else {
        tensor_t *g = lbl_checktensor(L, 2);
        if (g->dtype != DT_F32 || g->numel != t->numel) {
            char s1[96], s2[96];
            lua_pushfstring(L, "gradient is %s %s, expected float32 %s", dtype_name(g->dtype),
                            tensor_shape_str(g, s1, sizeof s1), tensor_shape_str(t, s2, sizeof s2));
            luaL_argerror(L, 2, lua_tostring(L, -1));
        }
        lua_pushvalue(L, 2);
    }
    lbl_setattr(L, 1, "grad");
    lua_settop(L, 1);
    return 1;
}

/* ---- AdamW ------------------------------------------------------------------------------------ */

static ladamw_t *check_adamw(lua_State *L, int idx) {
    ladamw_t *u = luaL_checkudata(L, idx, LBL_ADAMW);
    if (!u->o) luaL_argerror(L, idx, "optimizer was freed");
    return u;
}

static int adamw_gc(lua_State *L) {
    ladamw_t *u = luaL_checkudata(L, 1, LBL_ADAMW);
    adamw_free(u->o);
    free(u->p);
    free(u->g);
    u->o = NULL;
    u->p = u->g = NULL;
    return 0;
}

/* bl.AdamW(params, {lr=1e-3, betas={0.9,0.999}, eps=1e-6, weight_decay=0 (0.01 for torch),
 *                   correct_bias=true, variant="transformers"|"torch"}) */
static int l_adamw(lua_State *L) {
    static const char *const accepted[] = {"lr", "eps", "betas", "weight_decay", "correct_bias", "variant", NULL};
    luaL_checktype(L, 1, LUA_TTABLE);
    if (!lua_isnoneornil(L, 2)) luaL_checktype(L, 2, LUA_TTABLE);
    lbl_checkoptions(L, lua_isnoneornil(L, 2) ? 0 : 2, "AdamW", accepted);
    adamw_config_t cfg;
    const char *variant = lbl_optfield_str(L, 2, "variant", "transformers");
    if (!strcmp(variant, "transformers")) cfg.variant = ADAMW_TRANSFORMERS;
    else if (!strcmp(variant, "torch")) cfg.variant = ADAMW_TORCH;
    else return luaL_error(L, "AdamW: option 'variant' must be \"transformers\" or \"torch\", got \"%s\"", variant);
    cfg.lr = lbl_optfield_num(L, 2, "lr", 1e-3);
    cfg.eps = lbl_optfield_num(L, 2, "eps", cfg.variant == ADAMW_TORCH ? 1e-8 : 1e-6);
    cfg.weight_decay = lbl_optfield_num(L, 2, "weight_decay", cfg.variant == ADAMW_TORCH ? 1e-2 : 0.0);
    cfg.correct_bias = lbl_optfield_bool(L, 2, "correct_bias", 1);
    if (cfg.variant == ADAMW_TORCH && !cfg.correct_bias)
        return luaL_error(L, "AdamW: correct_bias=false exists only in the transformers variant");
    cfg.beta1 = 0.9;
    cfg.beta2 = 0.999;
    if (!lua_isnoneornil(L, 2) && lua_getfield(L, 2, "betas") != LUA_TNIL) {
        int bi = lua_gettop(L);
        if (!lua_istable(L, bi) || luaL_len(L, bi) != 2)
            return luaL_error(L, "AdamW: option 'betas' must be a table of two numbers, e.g. {0.9, 0.999}");
        for (int k = 1; k <= 2; k++) {
            lua_geti(L, bi, k);
            int ok;
            double b = lua_tonumberx(L, -1, &ok);
            if (!ok) return luaL_error(L, "AdamW: betas[%d] must be a number, got %s", k, luaL_typename(L, -1));
            if (k == 1) cfg.beta1 = b; else cfg.beta2 = b;
            lua_pop(L, 1);
        }
        lua_pop(L, 1);
    } else if (!lua_isnoneornil(L, 2)) {
        lua_pop(L, 1);
    }
    if (adamw_config_check(&cfg)) return luaL_error(L, "AdamW: %s", bl_errmsg());

    lua_Integer n = luaL_len(L, 1);
    if (n == 0) return luaL_error(L, "AdamW: the parameter list is empty");
    if (n > 1000000) return luaL_error(L, "AdamW: too many parameters (%d)", (int)n);
    /* the optimizer keeps its own copy of the list, so later edits to the caller's table don't matter */
    lua_createtable(L, (int)n, 0);
    int list = lua_gettop(L);
    for (lua_Integer i = 1; i <= n; i++) {
        check_param(L, "AdamW", 1, i);
        lua_geti(L, 1, i);
        lua_rawseti(L, list, i);
    }
    ladamw_t *u = lua_newuserdatauv(L, sizeof *u, 2);
    int ui = lua_gettop(L);
    u->o = NULL;
    u->p = u->g = NULL;
    u->model = 0;
    luaL_setmetatable(L, LBL_ADAMW);
    lua_pushvalue(L, list);
    lua_setiuservalue(L, -2, 1);
    int64_t *numel = lua_newuserdatauv(L, (size_t)n * sizeof *numel, 0);
    u->p = calloc((size_t)n, sizeof *u->p);
    u->g = calloc((size_t)n, sizeof *u->g);
    if (!u->p || !u->g) return luaL_error(L, "AdamW: out of memory");
    for (lua_Integer i = 1; i <= n; i++) {
        tensor_t *t = check_param(L, "AdamW", list, i);
        numel[i - 1] = t->numel;
        u->p[i - 1] = t->data;
    }
    /* the same tensor twice would be updated twice per step */
    for (lua_Integer i = 0; i < n; i++)
        for (lua_Integer j = 0; j < i; j++)
            if (u->p[i] == u->p[j] && numel[i] > 0)
                return luaL_error(L, "AdamW: parameters %d and %d are the same tensor", (int)j + 1, (int)i + 1);
    int owner = 0;
    bert_t *m = model_of(L, list, n, 0, &owner);
    if (m) {
        /* all of one model's parameters: the moments live in the model, in its layout */
        lua_pushvalue(L, owner);
        lua_setiuservalue(L, ui, 2);
        lua_pop(L, 1);
        lbl_check(L, bert_moments_reset(m), "AdamW");
        u->o = adamw_new_external(&cfg, (int)n, numel);
        u->model = 1;
    } else {
        for (lua_Integer i = 1; i <= n; i++) {
            tensor_t *t = check_param(L, "AdamW", list, i);
            if (t->device != DEV_CPU) {
                const char *lab = param_label(L, list, i);
                return luaL_error(L, "AdamW: %s is on %s; only a model's whole parameter list "
                                     "(model:parameters()) is updated on a device", lab, device_label(t->device));
            }
        }
        u->o = adamw_new(&cfg, (int)n, numel, u->p);
    }
    if (!u->o) return luaL_error(L, "AdamW: %s", bl_errmsg());
    lua_settop(L, ui);
    return 1;
}

/* The optimizer's model, checked to still own exactly the listed parameters and gradients. */
static bert_t *adamw_model(lua_State *L, ladamw_t *u, int list, const char *fn) {
    lua_getiuservalue(L, 1, 2);
    bert_t *m = lbl_tomodel(L, -1);
    lua_pop(L, 1);
    if (!m) luaL_error(L, "%s: the model of these parameters was freed", fn);
    if (model_of(L, list, u->o->nparams, 1, NULL) != m)
        luaL_error(L, "%s: the parameter list (or a .grad) no longer matches its model's", fn);
    return m;
}

/* opt:step(): one update of every parameter from its .grad. */
static int adamw_step_l(lua_State *L) {
    ladamw_t *u = check_adamw(L, 1);
    lua_getiuservalue(L, 1, 1);
    int list = lua_gettop(L);
    /* every parameter is checked, on either path, so errors name the one at fault */
    for (int i = 0; i < u->o->nparams; i++) {
        tensor_t *p = check_param(L, "AdamW:step", list, i + 1);
        if (p->numel != u->o->numel[i]) {
            const char *lab = param_label(L, list, i + 1);
            return luaL_error(L, "AdamW:step: %s changed size since the optimizer was created", lab);
        }
        tensor_t *g = check_grad(L, "AdamW:step", list, i + 1, p);
        u->p[i] = p->data;
        u->g[i] = g->data;
    }
    if (u->model) { /* one kernel over the model's flat buffers, moments in the model */
        bert_t *m = adamw_model(L, u, list, "AdamW:step");
        u->o->t++;
        lbl_check(L, bert_adamw_step(m, &u->o->cfg, u->o->t), NULL);
        return 0;
    }
    adamw_step(u->o, u->p, (const float *const *)u->g);
    return 0;
}

static int l_clip_grad_norm(lua_State *L);

/* The arguments both clippers share: max_norm at 2, the options {return_norm=} at 3. Returns
 * max_norm; *want_norm: whether the norm is returned. */
static double clip_args(lua_State *L, const char *fn, int *want_norm) {
    double max_norm = luaL_checknumber(L, 2);
    if (!(max_norm >= 0.0)) luaL_argerror(L, 2, "max_norm must be >= 0");
    static const char *const accepted[] = {"return_norm", NULL};
    int opts = lua_isnoneornil(L, 3) ? 0 : 3;
    if (opts) luaL_checktype(L, 3, LUA_TTABLE);
    lbl_checkoptions(L, opts, fn, accepted);
    *want_norm = lbl_optfield_bool(L, opts, "return_norm", 1);
    return max_norm;
}

/* One norm reduction over a model's flat gradients, on its device (the scaling then, or left to
 * the next step: defer); pushes the norm when wanted. */
static int clip_model(lua_State *L, bert_t *m, double max_norm, int defer, int want_norm, const char *fn) {
    double norm = 0;
    double *out = want_norm ? &norm : NULL;
    lbl_check(L, defer ? bert_clip_grad_norm_deferred(m, max_norm, out) : bert_clip_grad_norm(m, max_norm, out), fn);
    if (!want_norm) return 0;
    lua_pushnumber(L, norm);
    return 1;
}

/* opt:clip_grad_norm(max_norm[, {return_norm=true}]) → the norm before clipping: the same as
 * bl.clip_grad_norm(opt:params(), max_norm, ...), and the same parameters after opt:step() bit for
 * bit. For an optimizer over all of a model's parameters on the CPU the scaling is left to this
 * optimizer's next step, which scales each gradient as it reads it (one pass fewer over the
 * gradients): until then the .grad tensors keep their values before clipping, and
 * model:zero_grad() drops the pending scaling. Elsewhere it clips at once. */
static int adamw_clip_grad_norm(lua_State *L) {
    ladamw_t *u = check_adamw(L, 1);
    int want_norm;
    double max_norm = clip_args(L, "AdamW:clip_grad_norm", &want_norm);
    lua_settop(L, 3); /* the options (or nil) at 3, the parameter list above them */
    lua_getiuservalue(L, 1, 1);
    int list = lua_gettop(L);
    if (u->model && model_of(L, list, u->o->nparams, 1, NULL))
        return clip_model(L, adamw_model(L, u, list, "AdamW:clip_grad_norm"), max_norm, 1, want_norm,
                          "AdamW:clip_grad_norm");
    int base = lua_gettop(L);
    lua_pushcfunction(L, l_clip_grad_norm);
    lua_pushvalue(L, list);
    lua_pushvalue(L, 2);
    lua_pushvalue(L, 3);
    lua_call(L, 3, LUA_MULTRET);
    return lua_gettop(L) - base;
}

/* opt:zero_grad(): sets every parameter's gradient to zero (parameters without one are skipped). */
static int adamw_zero_grad(lua_State *L) {
    ladamw_t *u = check_adamw(L, 1);
    lua_getiuservalue(L, 1, 1);
    int list = lua_gettop(L);
    if (u->model && model_of(L, list, u->o->nparams, 1, NULL)) {
        bert_zero_grad(adamw_model(L, u, list, "AdamW:zero_grad"));
        return 0;
    }
    for (int i = 1; i <= u->o->nparams; i++) {
        lua_geti(L, list, i);
        lbl_getattr(L, -1, "grad");
        tensor_t *g = lbl_totensor(L, -1);
        const bl_backend_t *be = g ? device_backend(g->device) : NULL;
        if (g && g->data && be) be->memzero(g->data, (size_t)g->numel * dtype_size(g->dtype));
        lua_pop(L, 2);
    }
    return 0;
}

static double check_lr(lua_State *L, int idx) {
    double lr = luaL_checknumber(L, idx);
    if (!(lr >= 0.0) || lr == HUGE_VAL) luaL_argerror(L, idx, "learning rate must be finite and >= 0");
    return lr;
}

static int adamw_set_lr(lua_State *L) {
    ladamw_t *u = check_adamw(L, 1);
    u->o->cfg.lr = check_lr(L, 2);
    return 0;
}

static int adamw_get_lr(lua_State *L) {
    lua_pushnumber(L, check_adamw(L, 1)->o->cfg.lr);
    return 1;
}

/* opt:params(): the parameter list (a copy of the table given to bl.AdamW). */
static int adamw_params(lua_State *L) {
    check_adamw(L, 1);
    lua_getiuservalue(L, 1, 1);
    int src = lua_gettop(L);
    lua_Integer n = luaL_len(L, src);
    lua_createtable(L, (int)n, 0);
    for (lua_Integer i = 1; i <= n; i++) {
        lua_geti(L, src, i);
        lua_rawseti(L, -2, i);
    }
    return 1;
}

/* The model's tensor index (m->info) of entry i (0-based) of the parameter list at `list`, which
 * adamw_model has checked is exactly the model's parameters. */
static int list_tensor(lua_State *L, const bert_t *m, int list, int i) {
    lua_geti(L, list, i + 1);
    tensor_t *t = lbl_totensor(L, -1);
    lua_pop(L, 1);
    int k = 0;
    while (k < m->num_tensors && t->data != m->params_memory + m->info[k].offset) k++;
    return k;
}

/* The moments in list order into mo and vo (total floats each), from the model's moments (any
 * backend) or the optimizer's own. list: the parameter list's stack index (model-bound only). */
static void moments_to(lua_State *L, ladamw_t *u, bert_t *m, int list, float *mo, float *vo) {
    adamw_t *o = u->o;
    int64_t pos = 0; /* list order, whatever the internal layout */
    for (int i = 0; i < o->nparams; i++) {
        if (m) {
            lbl_check(L, bert_moments_get(m, list_tensor(L, m, list, i), mo + pos, vo + pos), NULL);
        } else {
            adamw_get_state(o, i, mo + pos, vo + pos);
        }
        pos += o->numel[i];
    }
}

/* The moments as pieces in list order, where they lie in host memory: ms[i], vs[i] for list
 * entry i, and 1; 0 where they are not on the host (a model on a GPU, or one without moments yet):
 * the model's moments on the CPU, or the optimizer's own (laid out in address order,
 * runtime/optim.c). */
static int moments_spans(lua_State *L, ladamw_t *u, bert_t *m, int list, st_span_t *ms, st_span_t *vs) {
    adamw_t *o = u->o;
    if (m && (m->be->device != BL_DEVICE_CPU || !m->moments_memory)) return 0;
    for (int i = 0; i < o->nparams; i++) {
        size_t bytes = (size_t)o->numel[i] * sizeof(float);
        const float *mp, *vp;
        if (m) {
            int k = list_tensor(L, m, list, i);
            mp = m->moments_memory + m->info[k].offset;
            vp = m->moments_memory + m->num_parameters + m->info[k].offset;
        } else {
            mp = o->m + o->offset[i];
            vp = o->v + o->offset[i];
        }
        ms[i] = (st_span_t){mp, bytes};
        vs[i] = (st_span_t){vp, bytes};
    }
    return 1;
}

/* opt:state_dict([{moments = false}]): {step=, lr=, ..., exp_avg=Tensor[total],
 * exp_avg_sq=Tensor[total]} (copies); moments = false leaves the two tensors out (the
 * hyper-parameters and the step count alone, for a caller that writes the moments with
 * opt:save_moments). */
static int adamw_state_dict(lua_State *L) {
    ladamw_t *u = check_adamw(L, 1);
    adamw_t *o = u->o;
    int with_moments = 1;
    if (!lua_isnoneornil(L, 2)) {
        static const char *const accepted[] = {"moments", NULL};
        luaL_checktype(L, 2, LUA_TTABLE);
        lbl_checkoptions(L, 2, "AdamW:state_dict", accepted);
        with_moments = lbl_optfield_bool(L, 2, "moments", 1);
    }
    lua_settop(L, 1);
    bert_t *m = NULL;
    if (u->model && with_moments) {
        lua_getiuservalue(L, 1, 1);
        m = adamw_model(L, u, lua_gettop(L), "AdamW:state_dict");
        lua_pop(L, 1);
    }
    lua_createtable(L, 0, 10);
    lua_pushinteger(L, o->t); lua_setfield(L, -2, "step");
    lua_pushnumber(L, o->cfg.lr); lua_setfield(L, -2, "lr");
    lua_pushnumber(L, o->cfg.eps); lua_setfield(L, -2, "eps");
    lua_pushnumber(L, o->cfg.weight_decay); lua_setfield(L, -2, "weight_decay");
    lua_pushboolean(L, o->cfg.correct_bias); lua_setfield(L, -2, "correct_bias");
    lua_pushstring(L, o->cfg.variant == ADAMW_TORCH ? "torch" : "transformers"); lua_setfield(L, -2, "variant");
    lua_createtable(L, 2, 0);
    lua_pushnumber(L, o->cfg.beta1); lua_rawseti(L, -2, 1);
    lua_pushnumber(L, o->cfg.beta2); lua_rawseti(L, -2, 2);
    lua_setfield(L, -2, "betas");
    if (!with_moments) return 1;
    int64_t shape[1] = {o->total};
    lbl_pushtensor(L, tensor_new(DT_F32, 1, shape));
    tensor_t *mt = lbl_checktensor(L, -1);
    lbl_pushtensor(L, tensor_new(DT_F32, 1, shape));
    tensor_t *vt = lbl_checktensor(L, -1);
    if (m) lua_getiuservalue(L, 1, 1);
    moments_to(L, u, m, lua_gettop(L), (float *)mt->data, (float *)vt->data);
    if (m) lua_pop(L, 1);
    lua_setfield(L, -3, "exp_avg_sq");
    lua_setfield(L, -2, "exp_avg");
    return 1;
}

/* opt:save_moments(path[, metadata]): writes the safetensors file that
 * bl.save_safetensors(path, {exp_avg = sd.exp_avg, exp_avg_sq = sd.exp_avg_sq}, metadata) writes
 * for sd = opt:state_dict() (the same bytes), without state_dict's two copies where the moments lie
 * on the host: each parameter's piece is written from where it lies (moments_spans), in list
 * order. A MiniLM state's 180 MB (bert-base's 880 MB) were allocated, zeroed and copied for every
 * training state saved. Elsewhere (a model on a GPU) they are gathered into one host buffer first.
 * The file is written as safetensors_save writes (a temporary file renamed into place). */
static int adamw_save_moments(lua_State *L) {
    ladamw_t *u = check_adamw(L, 1);
    adamw_t *o = u->o;
    const char *path = luaL_checkstring(L, 2);
    if (!lua_isnoneornil(L, 3)) luaL_checktype(L, 3, LUA_TTABLE);
    lua_settop(L, 3);
    bert_t *m = NULL;
    int list = 0;
    if (u->model) {
        lua_getiuservalue(L, 1, 1);
        list = lua_gettop(L); /* 4 */
        m = adamw_model(L, u, list, "AdamW:save_moments");
    }
    /* Lua owns every buffer here, so an error anywhere leaks nothing */
    st_span_t *ms = lua_newuserdatauv(L, 2 * (size_t)o->nparams * sizeof(st_span_t), 0), *vs = ms + o->nparams;
    int64_t shape[1] = {o->total};
    st_write_t w[2] = {{"exp_avg", DT_F32, 1, shape, NULL, ms, o->nparams},
                       {"exp_avg_sq", DT_F32, 1, shape, NULL, vs, o->nparams}};
    if (!moments_spans(L, u, m, list, ms, vs)) { /* one host buffer, written whole */
        float *buf = lua_newuserdatauv(L, 2 * (size_t)o->total * sizeof(float), 0);
        moments_to(L, u, m, list, buf, buf + o->total);
        w[0].data = buf;
        w[1].data = buf + o->total;
        w[0].nspans = w[1].nspans = 0;
    }
    /* last, so nothing can raise between its malloc and its free */
    char *meta = lua_isnil(L, 3) ? NULL : lbl_metadata_json(L, 3, "AdamW:save_moments");
    int rc = safetensors_save(path, w, 2, meta);
    free(meta);
    if (rc != 0) return lbl_error(L);
    return 0;
}

/* opt:load_state_dict(sd): the reverse of state_dict for the same parameter list: sets the step
 * count, the lr and the moments (exp_avg, exp_avg_sq: float32 [total], list order). The other
 * hyper-parameters must match the optimizer's (a resumed run uses the same recipe). */
static int adamw_load_state_dict(lua_State *L) {
    ladamw_t *u = check_adamw(L, 1);
    adamw_t *o = u->o;
    luaL_checktype(L, 2, LUA_TTABLE);
    int ok;
    lua_getfield(L, 2, "step");
    lua_Integer step = lua_tointegerx(L, -1, &ok);
    if (!ok || step < 0) return luaL_error(L, "AdamW:load_state_dict: 'step' must be a non-negative integer");
    lua_getfield(L, 2, "lr");
    double lr = lua_tonumberx(L, -1, &ok);
    if (!ok) return luaL_error(L, "AdamW:load_state_dict: 'lr' must be a number");
    lua_pop(L, 2);
    if (!(lr >= 0.0) || lr == HUGE_VAL) return luaL_error(L, "AdamW:load_state_dict: invalid lr %f", lr);
    tensor_t *mv[2];
    const char *keys[2] = {"exp_avg", "exp_avg_sq"};
    for (int j = 0; j < 2; j++) {
        lua_getfield(L, 2, keys[j]);
        mv[j] = lbl_totensor(L, -1);
        if (!mv[j] || mv[j]->dtype != DT_F32 || mv[j]->device != DEV_CPU || mv[j]->numel != o->total)
            return luaL_error(L, "AdamW:load_state_dict: '%s' must be a float32 CPU tensor of %I elements "
                                 "(the optimizer's parameters)", keys[j], (LUAI_UACINT)o->total);
    }
    bert_t *m = NULL;
    lua_getiuservalue(L, 1, 1);
    int list = lua_gettop(L);
    if (u->model) m = adamw_model(L, u, list, "AdamW:load_state_dict");
    int64_t pos = 0;
    for (int i = 0; i < o->nparams; i++) {
        const float *mi = (const float *)mv[0]->data + pos, *vi = (const float *)mv[1]->data + pos;
        if (m) {
            lbl_check(L, bert_moments_set(m, list_tensor(L, m, list, i), mi, vi), NULL);
        } else {
            adamw_set_state(o, i, mi, vi);
        }
        pos += o->numel[i];
    }
    o->t = step;
    o->cfg.lr = lr;
    return 0;
}

static int adamw_tostring(lua_State *L) {
    ladamw_t *u = luaL_checkudata(L, 1, LBL_ADAMW);
    if (!u->o) { lua_pushstring(L, "AdamW(<freed>)"); return 1; }
    adamw_config_t *c = &u->o->cfg;
    lua_pushfstring(L, "AdamW(variant=%s, lr=%f, betas=(%f, %f), eps=%f, weight_decay=%f, params=%d, step=%d)",
                    c->variant == ADAMW_TORCH ? "torch" : "transformers", c->lr, c->beta1, c->beta2, c->eps,
                    c->weight_decay, u->o->nparams, (int)u->o->t);
    return 1;
}

static const luaL_Reg adamw_methods[] = {
    {"step", adamw_step_l}, {"zero_grad", adamw_zero_grad}, {"clip_grad_norm", adamw_clip_grad_norm},
    {"set_lr", adamw_set_lr},
    {"get_lr", adamw_get_lr}, {"params", adamw_params}, {"state_dict", adamw_state_dict}, {"save_moments", adamw_save_moments},
    {"load_state_dict", adamw_load_state_dict},
    {"free", adamw_gc}, {NULL, NULL}};

/* opt.key: methods, then the read-only fields lr, eps, weight_decay, betas, variant, num_steps. */
static int adamw_index(lua_State *L) {
    luaL_checkudata(L, 1, LBL_ADAMW);
    lua_getmetatable(L, 1);
    lua_getfield(L, -1, "methods");
    lua_pushvalue(L, 2);
    if (lua_rawget(L, -2) != LUA_TNIL) return 1;
    lua_settop(L, 2);
    const char *k = lua_tostring(L, 2);
    if (!k) return 0;
    adamw_t *o = check_adamw(L, 1)->o;
    if (!strcmp(k, "lr")) lua_pushnumber(L, o->cfg.lr);
    else if (!strcmp(k, "eps")) lua_pushnumber(L, o->cfg.eps);
    else if (!strcmp(k, "weight_decay")) lua_pushnumber(L, o->cfg.weight_decay);
    else if (!strcmp(k, "correct_bias")) lua_pushboolean(L, o->cfg.correct_bias);
    else if (!strcmp(k, "variant")) lua_pushstring(L, o->cfg.variant == ADAMW_TORCH ? "torch" : "transformers");
    else if (!strcmp(k, "num_steps")) lua_pushinteger(L, o->t);
    else if (!strcmp(k, "betas")) {
        lua_createtable(L, 2, 0);
        lua_pushnumber(L, o->cfg.beta1); lua_rawseti(L, -2, 1);
        lua_pushnumber(L, o->cfg.beta2); lua_rawseti(L, -2, 2);
    } else lua_pushnil(L);
    return 1;
}

/* opt.lr = x is the only writable field. */
static int adamw_newindex(lua_State *L) {
    ladamw_t *u = check_adamw(L, 1);
    const char *k = luaL_checkstring(L, 2);
    if (strcmp(k, "lr")) return luaL_error(L, "AdamW: field '%s' cannot be set (only 'lr' can)", k);
    u->o->cfg.lr = check_lr(L, 3);
    return 0;
}

static const luaL_Reg adamw_meta[] = {
    {"__index", adamw_index}, {"__newindex", adamw_newindex}, {"__gc", adamw_gc},
    {"__close", adamw_gc}, {"__tostring", adamw_tostring}, {NULL, NULL}};

/* ---- clipping ----------------------------------------------------------------------------------- */

/* bl.clip_grad_norm(params, max_norm[, {return_norm=true}]) → total norm before clipping (as torch's
 * clip_grad_norm_). For all of a model's parameters the work is on the model's device, and the
 * norm is copied out (8 bytes) only when returned: {return_norm=false} keeps the step copy-free. */
static int l_clip_grad_norm(lua_State *L) {
    luaL_checktype(L, 1, LUA_TTABLE);
    int want_norm;
    double max_norm = clip_args(L, "clip_grad_norm", &want_norm);
    lua_Integer n = luaL_len(L, 1);
    bert_t *m = model_of(L, 1, n, 1, NULL);
    if (m) return clip_model(L, m, max_norm, 0, want_norm, "clip_grad_norm");
    float **g = lua_newuserdatauv(L, (size_t)(n ? n : 1) * sizeof *g, 0);
    int64_t *numel = lua_newuserdatauv(L, (size_t)(n ? n : 1) * sizeof *numel, 0);
    lua_Integer k = 0;
    for (lua_Integer i = 1; i <= n; i++) {
        tensor_t *p = check_param(L, "clip_grad_norm", 1, i);
        lua_geti(L, 1, i);
        int ty = lbl_getattr(L, -1, "grad");
        lua_pop(L, 2);
        if (ty == LUA_TNIL) continue; /* torch skips parameters without a gradient */
        tensor_t *gt = check_grad(L, "clip_grad_norm", 1, i, p);
        if (gt->device != DEV_CPU)
            return luaL_error(L, "clip_grad_norm: the gradient of parameter %d is on %s; only a model's "
                                 "whole parameter list is clipped on a device", (int)i, device_label(gt->device));
        g[k] = gt->data;
        numel[k] = gt->numel;
        k++;
    }
    double norm = clip_grad_norm(g, numel, (int)k, max_norm);
    if (norm < 0) return luaL_error(L, "%s", bl_errmsg());
    lua_pushnumber(L, norm);
    return 1;
}

/* ---- OS helpers for progress reporting ------------------------------------------------------------ */

/* bl.isatty(f): f an io file handle or a file descriptor number; true when it is a terminal. */
static int l_isatty(lua_State *L) {
    int fd;
    if (lua_type(L, 1) == LUA_TNUMBER) {
        fd = (int)luaL_checkinteger(L, 1);
    } else {
        luaL_Stream *s = luaL_testudata(L, 1, LUA_FILEHANDLE);
        if (!s) return luaL_argerror(L, 1, "file handle or descriptor number expected");
        if (!s->closef || !s->f) return luaL_argerror(L, 1, "file is closed");
        fd = fileno(s->f);
    }
    lua_pushboolean(L, fd >= 0 && isatty(fd));
    return 1;
}

static const luaL_Reg train_funcs[] = {
    {"AdamW", l_adamw}, {"parameter", l_parameter}, {"clip_grad_norm", l_clip_grad_norm},
    {"isatty", l_isatty}, {NULL, NULL}};

void bl_open_train(lua_State *L) {
    lbl_newclass(L, LBL_ADAMW, adamw_methods, adamw_meta);
    luaL_setfuncs(L, train_funcs, 0);
}
