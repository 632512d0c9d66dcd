/* bert.h: BertForSequenceClassification (Hugging Face's layout) in C, on one device through its
 * backend (kernels/backend.h): one allocation per category on that device (parameters, gradients
 * with the same layout, AdamW moments with the same layout, activations grown to the largest batch,
 * a small scratch for the loss, the gradient norm and the batch's ids). Forward, backward (every
 * parameter), dropout in train mode, the optimizer step and clipping over the flat buffers; load and
 * save as HF safetensors folders are in bert_io.c. The host touches device memory only through the
 * backend's copies: per training step the batch in and the loss out.
 * Not here: other heads (MLM, token classification), regression (num_labels == 1), relative position
 * embeddings.
 * Dimension letters: B batch, T tokens, C hidden, NH heads, I intermediate, NL layers, V vocabulary,
 * P max positions, TV token types, L labels, N = B*T. */
#ifndef BL_BERT_H
#define BL_BERT_H
#include <stddef.h>
#include <stdint.h>
#include "../kernels/backend.h"
#include "bert_config.h"
#include "optim.h"
#include "tensor.h"

/* Parameters (and, with the same layout, gradients). Per-layer tensors are stacked over NL layers,
 * as llm.c does; q,k,v of a layer are one [3C,C] block (rows 0..C-1 query, C..2C-1 key, 2C..3C-1
 * value) so a single linear produces qkv. */
typedef struct {
    float *wte;      /* [V,C]  embeddings.word_embeddings.weight */
    float *wpe;      /* [P,C]  embeddings.position_embeddings.weight */
    float *wtt;      /* [TV,C] embeddings.token_type_embeddings.weight */
    float *emb_lnw;  /* [C]    embeddings.LayerNorm.weight */
    float *emb_lnb;  /* [C]    embeddings.LayerNorm.bias */
    float *qkvw;     /* [NL,3C,C] attention.self.{query,key,value}.weight */
    float *qkvb;     /* [NL,3C]   attention.self.{query,key,value}.bias */
    float *attprojw; /* [NL,C,C]  attention.output.dense.weight */
    float *attprojb; /* [NL,C]    attention.output.dense.bias */
    float *ln1w;     /* [NL,C]    attention.output.LayerNorm.weight */
    float *ln1b;     /* [NL,C]    attention.output.LayerNorm.bias */
    float *fcw;      /* [NL,I,C]  intermediate.dense.weight */
    float *fcb;      /* [NL,I]    intermediate.dense.bias */
    float *fcprojw;  /* [NL,C,I]  output.dense.weight */
    float *fcprojb;  /* [NL,C]    output.dense.bias */
    float *ln2w;     /* [NL,C]    output.LayerNorm.weight */
    float *ln2b;     /* [NL,C]    output.LayerNorm.bias */
    float *poolw;    /* [C,C]  pooler.dense.weight */
    float *poolb;    /* [C]    pooler.dense.bias */
    float *clsw;     /* [L,C]  classifier.weight */
    float *clsb;     /* [L]    classifier.bias */
} bert_params_t;

/* Activations of the last forward, sized for (B,T) = (act_B, act_T) at most; also the scratch the
 * backward needs. Per-layer buffers are stacked over NL. */
typedef struct {
    float *mask_add;   /* [B,T] 0 for real tokens, -FLT_MAX for padding */
    float *emb;        /* [N,C] word + position + type */
    float *emb_ln;     /* [N,C] after LayerNorm */
    float *emb_mean;   /* [N] */
    float *emb_rstd;   /* [N] */
    float *x0;         /* [N,C] after dropout: the input of layer 0 */
    float *qkv;        /* [NL,N,3C] */
    float *att;        /* [NL,B,NH,T,T] attention probabilities (before dropout) */
    float *atty;       /* [NL,N,C] attention output (heads concatenated) */
    /* res1 .. ln2_rstd: the last layer's slot holds its B [CLS] rows only (unless full_last), its
     * output going to cls */
    float *res1;       /* [NL,N,C] dropout(attention dense) + layer input (computed in place) */
    float *ln1;        /* [NL,N,C] */
    float *ln1_mean;   /* [NL,N] */
    float *ln1_rstd;   /* [NL,N] */
    float *fch;        /* [NL,N,I] intermediate dense */
    float *fch_gelu;   /* [NL,N,I] */
    float *res2;       /* [NL,N,C] dropout(output dense) + ln1 (computed in place) */
    float *ln2;        /* [NL,N,C] the layer's output */
    float *ln2_mean;   /* [NL,N] */
    float *ln2_rstd;   /* [NL,N] */
    float *cls;        /* [B,C] hidden state of [CLS] (the last layer's output, see full_last) */
    float *last_att;   /* [B,C] the last layer's attention output at [CLS] (its dense's input) */
    float *last_x;     /* [B,C] the last layer's input at [CLS] (its first residual) */
    float *pool_pre;   /* [B,C] pooler dense */
    float *pooled;     /* [B,C] tanh */
    float *pooled_d;   /* [B,C] dropout */
    float *logits;     /* [B,L] */
    float *probs;      /* [B,L] */
    /* backward scratch */
    float *d_res;      /* [N,C] gradient of the residual stream */
    float *d_a;        /* [N,C] */
    float *d_b;        /* [N,C] */
    float *d_qkv;      /* [N,3C] */
    float *d_i1;       /* [N,I] */
    float *d_i2;       /* [N,I] (none where the backend has gelu_backward_set) */
    float *d_att;      /* [B,NH,T,T] */
    float *d_bc1;      /* [B,C] */
    float *d_bc2;      /* [B,C] */
    float *d_logits;   /* [B,L] */
} bert_acts_t;

/* The small device scratch, laid out per forward for its (B,T): scalars, then the batch staged in
 * by one copy (ids | types | labels | mask, int64, in this order, as bert_t.stage on the host). */
typedef struct {
    double *sumsq;     /* [1] sum of squares of the gradients (clipping) */
    float *loss;       /* [1] mean cross-entropy of the last forward */
    int64_t *ids;      /* [N] input_ids (the caller may free its tensor before backward) */
    int64_t *types;    /* [N] token_type_ids (zeros by default) */
    int64_t *labels;   /* [B] */
    int64_t *mask;     /* [N] attention_mask, turned into acts.mask_add on the device */
    float *class_weights; /* [L] the loss's class weights (staged with a labelled batch when set) */
} bert_scratch_t;

/* One parameter tensor under its Hugging Face name (without the "bert." prefix of the encoder). */
typedef struct {
    char name[96];
    int ndim;
    int64_t shape[2];
    size_t offset; /* in floats, into the parameter (and gradient) allocation */
    size_t numel;
} bert_param_info_t;

typedef struct bert {
    bert_config_t config;
    const bl_backend_t *be; /* the device everything below lives on (bl_backend_cpu() by default) */
    bert_params_t params;
    bert_params_t grads;
    float *params_memory; /* num_parameters floats (device) */
    float *grads_memory;  /* same layout (device) */
    float *moments_memory; /* [2, num_parameters] AdamW m then v, parameter layout (device); NULL
                              until an optimizer over all the parameters is made (bert_moments) */
    size_t num_parameters;
    bert_param_info_t *info; /* num_tensors entries, in HF's named_parameters() order */
    int num_tensors;
    bert_acts_t acts;
    float *acts_memory; /* device */
    size_t acts_floats;
    bert_scratch_t scratch;
    void *scratch_memory;  /* device: the scratch for (act_B, act_T) */
    int64_t *stage;        /* host: the last forward's batch as staged (ids | types | labels | mask) */
    int act_B, act_T; /* the activation allocation holds any batch with B <= act_B, T <= act_T */
    int act_layers;   /* ... and the activations of this many layers: all, or 1 (grad-free forwards) */
    int training;     /* 1: dropout on */
    int full_last;    /* 1: the last layer past its attention runs on every token, as transformers
                         does; 0 (default): on the [CLS] rows only, the one the classifier reads
                         (the same function: the other rows' outputs reach nothing) */
    float classifier_dropout; /* config's classifier_dropout, or hidden_dropout_prob when unset */
    /* the last forward, which backward differentiates */
    int B, T;
    int packed;       /* 1: its rows' real tokens were packed one after another (see bert.c) */
    size_t ntok;      /* tokens the per-token layers worked on: B*T, or the real ones when packed */
    size_t *seq;      /* host [3, act_B]: per row its first token, its length, its offset in att */
    int has_labels;
    int kept;         /* 1: it kept every layer's activations (0: a grad-free forward, see no_grad) */
    int weighted_forward;        /* its loss used class_weights (so its backward does too) */
    int cls_last;                /* its last layer ran past the attention on the [CLS] rows only
                                    (full_last off, at least one layer): acts' layout for backward */
    int cls_att;                 /* ... and its attention on the [CLS] queries alone (the backend's
                                    attention_forward_cls): the probabilities' layout for backward */
    float p_hidden, p_attn, p_cls; /* dropout used by that forward (0 in eval) */
    uint64_t drop_seed;          /* seed and first offset of its dropout masks */
    uint64_t drop_offset;
    int drop_first, drop_total;  /* that forward's rows within its global batch (dist.h) */
    uint64_t forward_count;      /* increments with every forward */
    char *source_dir;            /* folder the model came from (for vocab.txt on save), or NULL */
    float *class_weights;        /* host [L]: weights of the cross-entropy per class, or NULL (none) */
    unsigned char *wte_touched;  /* [V] rows of the word-embedding gradient written since zero_grad
                                    (host; marked from the host stage's ids) */
    unsigned char *wte_live;     /* [V] word-embedding rows whose AdamW moments may be non-zero (host;
                                    cleared with the moments; the CPU's AdamW skips the others) */
    int dw_unset;                /* bert_zero_grad left the linear layers' weight gradients unwritten
                                    (the backend has linear_backward_to): they read as zero, the next
                                    backward writes them, bert_grads_ready clears them for others */
    int grad_scale_pending;      /* bert_clip_grad_norm_deferred left its coefficient to the next */
    float grad_scale;            /* bert_adamw_step (CPU); bert_zero_grad drops it */
} bert_t;

/* Inputs of one forward; types, mask and labels may be NULL. */
typedef struct {
    const tensor_t *input_ids;      /* int64 [B,T] */
    const tensor_t *attention_mask; /* int64 [B,T] 1 = real token, 0 = padding (default all 1) */
    const tensor_t *token_type_ids; /* int64 [B,T] (default all 0) */
    const tensor_t *labels;         /* int64 [B], 0..L-1 */
    /* data parallel: this batch is rows batch_first .. batch_first+B-1 of a global batch of
     * batch_total rows (0: the batch is the whole batch), so each row gets the dropout masks it
     * would get in one process training on the global batch */
    int batch_first, batch_total;
    /* 1: this forward will not be differentiated (evaluation). Every layer then works in the same
     * activation slots, the allocation holds one layer's instead of all of them (bert-base at
     * 32 x 128 tokens: ~0.25 GB instead of ~3 GB), and a backward of it is an error. A forward
     * without labels is one whatever this says: it has no loss to differentiate. */
    int no_grad;
} bert_inputs_t;

/* Options of bert_from_pretrained: num_labels 0 keeps the config's; names may be NULL. */
typedef struct {
    int num_labels;
    const char *const *id2label; /* num_labels names or NULL */
    int quiet;                   /* 1: no stderr report of missing/unexpected tensors */
    int strict;                  /* 1: every tensor present, none extra (a trained checkpoint,
                                    for evaluation); 0: the head may be missing (fine-tuning) */
} bert_load_opts_t;

/* Data parallel (runtime/bert_dist.c): gradients *= scale, then summed over the run's processes
 * (dist.h; the same bits on every rank). -1 with an error for a device without a collective. */
int bert_allreduce_grads(bert_t *m, float scale);
/* 1 when this build can sum gradients on a GPU (NCCL). */
int bert_nccl_available(void);

/* Allocates a model for `cfg` (taken over: the model frees it) on backend `be` (NULL: the CPU),
 * parameters zero; -1 on failure. */
int bert_init(bert_t *m, bert_config_t *cfg, const bl_backend_t *be);
/* Initialises every parameter as transformers' _init_weights does (normal(0, initializer_range)
 * from RNG_STREAM_INIT for linear and embedding weights, zero biases, LayerNorm 1/0): generated on
 * the host, one copy to the device. */
int bert_init_weights(bert_t *m);
/* The same for parameter tensor k (m->info[k]) alone; -1 when out of host memory. */
int bert_init_param(bert_t *m, int k);
/* Loads a Hugging Face folder (config.json + model.safetensors) or a .safetensors file with a
 * config.json beside it. A missing pooler/classifier is initialised as HF does and reported on
 * stderr; other missing tensors are an error; unexpected ones are ignored with a note. */
int bert_from_pretrained(bert_t *m, const char *path, const bert_load_opts_t *opts);
/* The same, the model made on `device` (BL_DEVICE_*): tensors go from the file to the device. */
int bert_from_pretrained_on(bert_t *m, const char *path, const bert_load_opts_t *opts, int device);
/* Loads a checkpoint's tensors into an existing model (names with or without "bert.", shapes
 * checked). strict: every parameter must be present; otherwise missing ones keep their values. */
int bert_load_weights(bert_t *m, const char *path, int strict);
/* Saves all parameters under HF names ("bert." prefix) as safetensors, plus config.json (and the
 * source folder's vocab.txt) when `path` is a folder; just the file when it ends in .safetensors. */
int bert_save(const bert_t *m, const char *path);
/* Frees everything; accepts a zeroed or already-freed model. */
void bert_free(bert_t *m);
/* Moves every category (parameters, gradients, moments) to backend `be`; activations and scratch
 * are freed and made again by the next forward. On failure the model stays where it was. */
int bert_to(bert_t *m, const bl_backend_t *be);
/* Fails with "<backend>: <operation>: <reason>" when the backend kept an error; 0 otherwise. */
int bert_check_device(const bert_t *m, const char *what);

/* Runs the model on a batch; logits are left in m->acts.logits [B,L] (device) and, with labels, the
 * mean cross-entropy in *loss (copied to the host; pass NULL to leave it in m->scratch.loss).
 * The inputs are host (CPU) tensors: they are validated there, naming the tensor at fault, and
 * staged to the device in one copy. */
int bert_forward(bert_t *m, const bert_inputs_t *in, float *loss);
/* Backpropagates the last forward's loss (scaled by dloss) into the gradients (accumulating). */
int bert_backward(bert_t *m, float dloss);
/* Sets the loss's class weights (w[n], n = num_labels, finite, >= 0, not all 0; copied), as
 * CrossEntropyLoss(weight=w): every later labelled forward's loss is the weighted mean
 * sum w[y_b] * loss_b / sum w[y_b], and its backward follows. w NULL: back to the plain mean. */
int bert_set_class_weights(bert_t *m, const float *w, int n);
/* Sets every gradient to 0 (only the touched rows of the word-embedding gradient need clearing:
 * nothing but bert_backward writes there, scaling such as gradient clipping keeps zeros zero). */
void bert_zero_grad(bert_t *m);
/* Makes the gradient block hold what the gradients are: where bert_zero_grad left the linear layers'
 * weight gradients (qkv, attention output, both feed-forward weights: ~97% of the gradients past
 * the word embeddings) for the next backward to write, instead of clearing them, this clears them
 * now. Every reader of the gradients but the backward calls it first (clipping, the AdamW step, the
 * all-reduce, bert_to, the Lua views of the gradients). */
void bert_grads_ready(bert_t *m);
void bert_set_training(bert_t *m, int training);

/* ---- optimizer over the flat buffers (an optimizer over exactly all of the model's parameters) --- */
/* Makes (first call) or re-zeroes the AdamW moments; -1 when out of device memory. */
int bert_moments_reset(bert_t *m);
/* One AdamW update of every parameter: one kernel over num_parameters. */
int bert_adamw_step(bert_t *m, const adamw_config_t *cfg, int64_t t);
/* Copies the moments of parameter tensor k to the host (info[k].numel floats each). */
int bert_moments_get(const bert_t *m, int k, float *m_out, float *v_out);
/* The reverse: sets the moments of parameter tensor k from the host (resuming a training state);
 * allocates the moments when there are none yet. */
int bert_moments_set(bert_t *m, int k, const float *m_in, const float *v_in);
/* The sum of squares of every parameter (double, on the device; one 8-byte copy out): NaN or Inf
 * when any weight is, so a caller can refuse to save a broken model. */
int bert_params_sumsq(bert_t *m, double *out);
/* Clips the global gradient norm: one sum of squares and one scaling over the flat gradient
 * buffer, on the device. With norm_out (host), also copies the sum of squares out and stores the
 * norm before clipping there (sqrt in double, as clip_grad_norm); NULL: no copy. */
int bert_clip_grad_norm(bert_t *m, double max_norm, double *norm_out);
/* The same clipping with the scaling left to the next bert_adamw_step, which multiplies each
 * gradient by the coefficient as it reads it (one pass fewer over the gradients; the same
 * parameters and moments bit for bit). Until then the gradients keep their unclipped values;
 * bert_zero_grad drops the pending coefficient, and a backward, another clipping or the all-reduce
 * applies it first (bert_flush_grad_scale). Only where the gradients are host memory (the CPU
 * backend); elsewhere it scales at once, as bert_clip_grad_norm. */
int bert_clip_grad_norm_deferred(bert_t *m, double max_norm, double *norm_out);
/* Applies a coefficient bert_clip_grad_norm_deferred left pending, now (backward, clipping and the
 * all-reduce call it first, so they see the gradients an eager clipping would have left). */
void bert_flush_grad_scale(bert_t *m);

#endif
