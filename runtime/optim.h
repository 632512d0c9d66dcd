/* optim.h: the AdamW optimizer (transformers v4 and torch.optim variants) and global-norm gradient
 * clipping, on float32 parameter arrays. Pure C: the Lua layer hands in the data pointers of each
 * parameter and its gradient every step. Non-goals: parameter groups, sparse gradients, AMSGrad. */
#ifndef BL_OPTIM_H
#define BL_OPTIM_H
#include <stdint.h>
#include "../kernels/optim_kernels.h"

typedef enum { ADAMW_TRANSFORMERS = 0, ADAMW_TORCH = 1 } adamw_variant_t;

typedef struct {
    double lr, beta1, beta2, eps, weight_decay;
    int correct_bias;         /* transformers only: scale the step by sqrt(1-b2^t)/(1-b1^t) */
    adamw_variant_t variant;
} adamw_config_t;

typedef struct {
    adamw_config_t cfg;       /* cfg.lr may change between steps (schedules) */
    int64_t t;                /* steps taken */
    int nparams;
    int64_t *numel;           /* [nparams] element count of each parameter */
    int64_t *offset;          /* [nparams] where each parameter's state starts in m and v */
    int *order;               /* [nparams] update order (by memory address at creation), so that
                                 parameters adjacent in memory have adjacent state */
    int64_t total;            /* sum of numel */
    float *state;             /* [2, total]: m then v, one allocation */
    float *m, *v;             /* state and state + total */
} adamw_t;

/* Checks the hyperparameters like torch does ("Invalid learning rate: -1"); 0 or -1 with bl_errmsg. */
int adamw_config_check(const adamw_config_t *cfg);
/* A new optimizer for nparams float32 parameters of the given sizes, state zeroed; NULL on error.
 * `params` (may be NULL) are their current data pointers: the state is laid out in address order,
 * so a model's parameters (one allocation, listed in another order) become one contiguous run. */
adamw_t *adamw_new(const adamw_config_t *cfg, int nparams, const int64_t *numel, float *const *params);
/* An optimizer whose state lives elsewhere (a model's moments, bert_adamw_step): it keeps the
 * configuration, the step count and the sizes; adamw_step and adamw_get_state must not be called. */
adamw_t *adamw_new_external(const adamw_config_t *cfg, int nparams, const int64_t *numel);
/* One update: params[i] and grads[i] point at numel[i] floats. Runs of parameters that are adjacent
 * in memory (with adjacent gradients and state) go through the kernel in one call. Returns 0. */
int adamw_step(adamw_t *opt, float *const *params, const float *const *grads);
/* The kernel's scalars for step t (1-based) of `cfg`, computed in double and rounded as Python does. */
k_adamw_hparams_t adamw_hparams(const adamw_config_t *cfg, int64_t t);
/* Copies the state of parameter i (list order) into m_out / v_out (numel[i] floats each). */
void adamw_get_state(const adamw_t *opt, int i, float *m_out, float *v_out);
/* The reverse: sets the state of parameter i from m_in / v_in (resuming a training state). */
void adamw_set_state(adamw_t *opt, int i, const float *m_in, const float *v_in);
/* Frees the optimizer and its state; accepts NULL. */
void adamw_free(adamw_t *opt);

/* Global L2 norm of all gradients (accumulated in double), as torch.nn.utils.clip_grad_norm_:
 * coef = max_norm / (norm + 1e-6), and when coef < 1 every gradient is multiplied by coef.
 * Gradients adjacent in memory are processed as one run. Returns the norm before clipping, or -1
 * (bl_errmsg) when out of memory. */
double clip_grad_norm(float *const *grads, const int64_t *numel, int n, double max_norm);

#endif
