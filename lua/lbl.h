/* lbl.h: helpers shared by the Lua bindings (the only layer that includes lauxlib.h).
 * Every bertlab userdata has a registry name that becomes its __name, so type errors print it. */
#ifndef BL_LBL_H
#define BL_LBL_H
#include <lauxlib.h>
#include <lua.h>
#include "../runtime/tensor.h"

#define LBL_TENSOR "bertlab.Tensor"

typedef struct {
    tensor_t *t; /* NULL once freed */
    /* called before the tensor's data is used (lbl_totensor, lbl_checktensor, lbl_boxtensor), or
     * NULL: a model's gradient views bring the gradients up to date (bert_grads_ready) */
    void (*ready)(void *ctx);
    void *ready_ctx;
} ltensor_t;

/* The box's tensor (NULL once freed), its ready hook run first. */
tensor_t *lbl_boxtensor(ltensor_t *u);

/* The tensor at `idx`; raises "bad argument #idx (bertlab.Tensor expected, got X)" or "tensor was freed". */
tensor_t *lbl_checktensor(lua_State *L, int idx);
/* The tensor at idx as a host tensor: itself, or a host copy owned by a new userdata pushed on the
 * stack (a device tensor is never read on the host); raises like lbl_checktensor. */
tensor_t *lbl_checkhost(lua_State *L, int idx);
/* NULL when the value at idx is not a tensor. */
tensor_t *lbl_totensor(lua_State *L, int idx);
/* Pushes a new userdata that owns `t`; if t is NULL raises the runtime error (bl_errmsg). */
void lbl_pushtensor(lua_State *L, tensor_t *t);
/* Pushes a view that keeps the value at `owner_idx` alive (a model owning the memory). */
void lbl_pushview(lua_State *L, tensor_t *t, int owner_idx);
/* The same, with `ready(ctx)` run before every use of the view's data (ctx lives as long as the
 * owner). */
void lbl_pushview_ready(lua_State *L, tensor_t *t, int owner_idx, void (*ready)(void *ctx), void *ctx);
/* Sets field `key` of the tensor's attribute table to the value on top of the stack (pops it).
 * Attributes are readable as t.key (used for .name, .grad, and the backward hook). */
void lbl_setattr(lua_State *L, int tensor_idx, const char *key);
/* Pushes attribute `key` of the tensor at idx (nil when absent); returns its Lua type. */
int lbl_getattr(lua_State *L, int tensor_idx, const char *key);

/* Raises the runtime's current error as a Lua error (with the script position prefix). */
int lbl_error(lua_State *L);
/* Raises the runtime's error prefixed by `what: ` unless rc == 0. */
void lbl_check(lua_State *L, int rc, const char *what);

/* Reads an optional field of the options table at `idx` (which may be absent/nil). */
lua_Integer lbl_optfield_int(lua_State *L, int idx, const char *key, lua_Integer def);
lua_Number lbl_optfield_num(lua_State *L, int idx, const char *key, lua_Number def);
int lbl_optfield_bool(lua_State *L, int idx, const char *key, int def);
const char *lbl_optfield_str(lua_State *L, int idx, const char *key, const char *def);

/* A safetensors metadata table at idx ({string = string|number}) as JSON text (malloc'd; the caller
 * frees it); raises "bad argument #3 to 'fn' (...)" on a bad entry (l_io.c). */
char *lbl_metadata_json(lua_State *L, int idx, const char *fn);

/* The one options checker of the bindings: every key of the options table at `idx` (0 or nil:
 * none) must be one of `accepted` (NULL-terminated); raises "fn: unknown option 'x' (options: a,
 * b, c)" otherwise. The _hint form gives a known wrong key (torch's `shuffle`) its own advice. */
void lbl_checkoptions(lua_State *L, int idx, const char *fn, const char *const *accepted);
void lbl_checkoptions_hint(lua_State *L, int idx, const char *fn, const char *const *accepted,
                          const char *hint_key, const char *hint);

/* The model (runtime/bert.h) of the BertForSequenceClassification userdata at idx, or NULL (not a
 * model, or freed). */
struct bert;
struct bert *lbl_tomodel(lua_State *L, int idx);

/* Creates the metatable `name` with methods, metamethods and __index pointing at the methods. */
void lbl_newclass(lua_State *L, const char *name, const luaL_Reg *methods, const luaL_Reg *meta);

/* Each binding file registers its functions into the module table on top of the stack. */
void bl_open_tensor(lua_State *L);
void bl_open_data(lua_State *L);
void bl_open_tokenizer(lua_State *L);
void bl_open_io(lua_State *L);
void bl_open_model(lua_State *L);
void bl_open_train(lua_State *L);
void bl_open_util(lua_State *L);
void bl_open_dist(lua_State *L);

int luaopen_bertlab_core(lua_State *L);

#endif
