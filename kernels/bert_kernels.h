/* bert_kernels.h: the layer kernels of BERT, as forward/backward pairs (llm.c's shape).
 * Dimension letters: B batch, T tokens, C hidden channels, NH heads (head size HS = C/NH),
 * OC output channels, N rows (= B*T where a layer works per token), L labels, V vocabulary.
 * All float buffers are float32, row-major, contiguous. Backward functions ACCUMULATE (+=) into
 * every gradient they write (dinp, dweight, dbias), so the model zeroes gradients once per step;
 * a NULL gradient pointer means "not needed" and is skipped.
 * Dropout draws from Philox (kernels/philox.h): an element keeps iff
 * uniform(seed, RNG_STREAM_DROPOUT, offset + idx) > p, kept values are scaled by 1/(1-p), where idx
 * is the element's index in the tensor padded to P tokens (P = max_position_embeddings, a bound on T
 * that does not depend on how a batch is padded):
 *   hidden states [B,T,C]:            (b,t,c)   -> idx = (b*P + t)*C + c,          a call spans B*P*C;
 *   attention probabilities [B,NH,T,T]: (b,h,i,j) -> idx = ((b*NH + h)*P + i)*P + j, spans B*NH*P*P.
 * So a mask element depends on its logical coordinates only, never on the padded width T: a batch
 * trimmed to its longest sequence draws, for every real token, the masks of the same batch padded to
 * any wider T, and training gives the same results under both. The caller advances its offset by the
 * span, whatever T is. Each row of C (hidden, T*C per b) or T (attention) elements is contiguous in
 * the stream. Backward regenerates the same mask from (seed, offset), so no mask is stored, except
 * in the CPU's attention: there the forward marks the dropped probabilities in att (below) and the
 * backward reads them. p == 0 means no dropout. */
#ifndef BL_BERT_KERNELS_H
#define BL_BERT_KERNELS_H
#include <stddef.h>
#include <stdint.h>

/* ---- embeddings -------------------------------------------------------------------------------- */
/* out[B,T,C] = wte[ids[b,t]] + wpe[t] + wtt[types[b,t]]; types may be NULL (all 0). Ids are checked
 * by the caller. */
void k_embeddings_forward(float *out, const int64_t *ids, const int64_t *types, const float *wte,
                          const float *wpe, const float *wtt, int B, int T, int C);
void k_embeddings_backward(float *dwte, float *dwpe, float *dwtt, const float *dout,
                           const int64_t *ids, const int64_t *types, int B, int T, int C);

/* ---- layer normalisation over the last dimension ------------------------------------------------ */
/* out[N,C] = (inp - mean) * rstd * weight + bias; caches mean[N] and rstd[N] (1/sqrt(var + eps),
 * biased variance as torch). */
void k_layernorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *weight,
                         const float *bias, int N, int C, float eps);
void k_layernorm_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                          const float *inp, const float *mean, const float *rstd, const float *weight,
                          int N, int C);
/* res[N,C] = a + b (res may be a or b), then out = k_layernorm_forward of res: the bits of
 * k_residual_forward and k_layernorm_forward, a row at a time. */
void k_residual_layernorm_forward(float *res, float *out, float *mean, float *rstd, const float *a, const float *b,
                                  const float *weight, const float *bias, int N, int C, float eps);
/* The same with dinp written, whatever it held (dweight and dbias still add): the bits of
 * k_layernorm_backward on a zero dinp. */
void k_layernorm_backward_set(float *dinp, float *dweight, float *dbias, const float *dout,
                              const float *inp, const float *mean, const float *rstd, const float *weight,
                              int N, int C);

/* ---- linear (torch.nn.Linear layout: weight[OC,C]) --------------------------------------------- */
/* out[N,OC] = inp[N,C] @ weight[OC,C]^T + bias[OC] (bias may be NULL). */
void k_linear_forward(float *out, const float *inp, const float *weight, const float *bias, int N,
                      int C, int OC);
/* dinp[N,C] += dout @ weight; dweight[OC,C] += dout^T @ inp; dbias[OC] += column sums of dout. */
void k_linear_backward(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                       const float *weight, int N, int C, int OC);
/* The same with dweight = dout^T @ inp written, whatever it held (dinp and dbias still add): the
 * bits k_linear_backward gives on a zero dweight. */
void k_linear_backward_set(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                           const float *weight, int N, int C, int OC);
/* Either: dinp = dout @ weight written, whatever it held, where set_dinp; dweight where set_dweight
 * (dbias always adds): the bits k_linear_backward gives on a zero dinp or dweight. */
void k_linear_backward_to(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                          const float *weight, int N, int C, int OC, int set_dinp, int set_dweight);

/* ---- self-attention core ----------------------------------------------------------------------- */
/* qkv[B,T,3C] holds q | k | v along the last dimension (head h at columns h*HS..h*HS+HS-1 of each).
 * att[B,NH,T,T]: |att| = softmax_j(q_i . k_j / sqrt(HS) + mask_add[b,j])  (cached, before dropout),
 *   with the sign bit set on exactly the elements dropout drops (-0 for a dropped 0; none at p = 0),
 *   so the backward reads the mask instead of drawing its uniforms again (twice, past T = 128);
 * out[B,T,C]: out[b,i,h*HS+d] = sum_j dropout(att)[b,h,i,j] * v[b,j,h*HS+d].
 * mask_add[B,T] is 0 for real tokens and -FLT_MAX (torch.finfo(float32).min) for padding, as
 * Hugging Face extends attention_mask. Dropout on att with (p, seed, offset): att[b,h,i,j] uses
 * stream index offset + ((b*NH + h)*P + i)*P + j (T <= P); the call spans B*NH*P*P indices. */
void k_attention_forward(float *out, float *att, const float *qkv, const float *mask_add, int B, int T,
                         int C, int NH, int P, float p, uint64_t seed, uint64_t offset);
/* The same out, to the bit, without att (for a forward that no backward follows): the probabilities
 * stay in the cache a block of rows at a time. */
void k_attention_forward_nokeep(float *out, const float *qkv, const float *mask_add, int B, int T,
                                int C, int NH, int P, float p, uint64_t seed, uint64_t offset);
/* The attention's softmax as its kernels run it, for tests: R rows of T scores in place, each times
 * scale plus ma[j] (ma NULL: none; one rounding), then softmax over j (a row's maximum and sum in 16
 * lanes over j mod 16, the lanes then added in order, then the tail; each element times 1/sum). And
 * the scalar exp that defines it: the CPU's vector code must give its bits for every float. */
void k_scores_softmax(float *a, int R, float scale, const float *ma, int T);
float k_expf(float x);
/* dqkv[B,T,3C] += gradient, from att as the forward left it (its marks); scratch[B,NH,T,T] is work
 * space, used only where a thread's own T x T buffer cannot be allocated. */
void k_attention_backward(float *dqkv, float *scratch, const float *dout, const float *qkv,
                          const float *att, int B, int T, int C, int NH, int P, float p,
                          uint64_t seed, uint64_t offset);
/* The same with dqkv = the gradient written, whatever it held: the bits of k_attention_backward on
 * a zero dqkv. */
void k_attention_backward_set(float *dqkv, float *scratch, const float *dout, const float *qkv,
                              const float *att, int B, int T, int C, int NH, int P, float p,
                              uint64_t seed, uint64_t offset);
/* A packed batch, its rows laid one after another without padding: rows[s] is row s's first token
 * (row of the [tokens, C] activations), rows[n + s] its length, rows[2n + s] the start of its
 * probabilities in att (host memory, n rows). Each row is what a batch of one would be, row s at
 * stream offset + s * NH*P*P: the same bits as n calls of the padded kernels, one parallel region
 * instead of n (the threads take (row, head) pairs). att NULL: attention_forward_nokeep's. */
void k_attention_forward_rows(float *out, float *att, const float *qkv, const size_t *rows, int n, int C,
                              int NH, int P, float p, uint64_t seed, uint64_t offset);
/* scratch: as att (a row's heads at rows[2n + s]) */
void k_attention_backward_rows(float *dqkv, float *scratch, const float *dout, const float *qkv,
                               const float *att, const size_t *rows, int n, int C, int NH, int P, float p,
                               uint64_t seed, uint64_t offset);
/* dqkv written (every token of the rows'), as k_attention_backward_set */
void k_attention_backward_rows_set(float *dqkv, float *scratch, const float *dout, const float *qkv,
                                   const float *att, const size_t *rows, int n, int C, int NH, int P, float p,
                                   uint64_t seed, uint64_t offset);
/* The last layer's qkv [N, 3C] of a forward whose attention reads only each row's [CLS] query: K
 * and V of every token, Q of the n [CLS] tokens (their inputs gathered in x_cls [n, C]; q_cls [n, C]
 * scratch; rows NULL: the padded batch, [CLS] at s * T, else packed as below), the bits
 * k_linear_forward gives those elements; 0 when it cannot vouch for them (the caller then makes the
 * whole call). The other tokens' Q is left unwritten. */
int k_qkv_forward_cls(float *qkv, float *q_cls, const float *x, const float *x_cls, const size_t *rows, int n,
                      int T, const float *weight, const float *bias, int N, int C);
/* The attention of each row's first query ([CLS]) alone, for a last layer whose later work reads
 * only the [CLS] rows: out[n, C] row s = row s's token 0 of k_attention_forward's out, the same bits
 * with the head tiles (AVX-512 or AVX2: the same chains, softmax and dropout stream indices; sgemm
 * may round a one-row product otherwise); the rows as in k_attention_forward_rows
 * (rows NULL: the padded batch of n rows of T, mask_add [n, T] or NULL; else packed, mask_add
 * NULL). att NULL: nothing kept; else row s's head h keeps its T probabilities (with the dropout
 * marks) at att + NH * (row s's first token) + h * T (NH x the rows' tokens floats in all). */
void k_attention_forward_cls(float *out, float *att, const float *qkv, const float *mask_add, const size_t *rows,
                             int n, int T, int C, int NH, int P, float p, uint64_t seed, uint64_t offset);
/* Its backward from dout[n, C] (the [CLS] outputs' gradient; every other query's taken as zero):
 * dqkv written, every token of the rows (the queries' rows past [CLS] zero): the bits of
 * k_attention_backward(_rows) onto zero with that zero-padded gradient. */
void k_attention_backward_cls(float *dqkv, const float *dout, const float *qkv, const float *att,
                              const size_t *rows, int n, int T, int C, int NH, int P, float p, uint64_t seed,
                              uint64_t offset);

/* ---- pointwise ----------------------------------------------------------------------------------- */
/* GELU, erf form: 0.5 * x * (1 + erf(x / sqrt(2))). */
void k_gelu_forward(float *out, const float *inp, size_t n);
void k_gelu_backward(float *dinp, const float *inp, const float *dout, size_t n);
/* dinp = dout * gelu'(inp) written, whatever it held (dinp may be dout): the bits of k_gelu_backward
 * on a zero dinp. */
void k_gelu_backward_set(float *dinp, const float *inp, const float *dout, size_t n);
/* The feed-forward block of a forward that keeps nothing (evaluation): out [N, C] = b2 +
 * gelu(b1 + inp W1^T) W2^T, the intermediate never stored; the same bits as linear_forward, gelu_forward
 * and linear_forward. Returns 0 when it cannot (the caller then runs those three). */
int k_ffn_forward_nokeep(float *out, const float *inp, const float *w1, const float *b1, const float *w2,
                         const float *b2, int N, int C, int I);
/* tanh (the pooler); backward uses the forward's output. */
void k_tanh_forward(float *out, const float *inp, size_t n);
void k_tanh_backward(float *dinp, const float *out, const float *dout, size_t n);
/* out[B,T,C] = dropout(inp) (out may equal inp); p == 0 copies. Element (b,t,c) uses stream index
 * offset + (b*P + t)*C + c (T <= P); the call spans B*P*C indices. A [B,C] tensor (the pooled
 * output) is B, 1, C, 1; a flat run of n elements at offset + i is 1, 1, n, 1. */
void k_dropout_forward(float *out, const float *inp, int B, int T, int C, int P, float p,
                       uint64_t seed, uint64_t offset);
/* dinp[B,T,C] += dout * the forward's mask / (1-p) */
void k_dropout_backward(float *dinp, const float *dout, int B, int T, int C, int P, float p,
                        uint64_t seed, uint64_t offset);
/* dinp = dout * the mask / (1-p) written, whatever it held (0 where dropped): the bits of
 * k_dropout_backward on a zero dinp */
void k_dropout_backward_set(float *dinp, const float *dout, int B, int T, int C, int P, float p,
                            uint64_t seed, uint64_t offset);
/* k_dropout_forward and _backward over a packed batch's rows (rows as for k_attention_forward_rows;
 * row s at stream offset + s*P*C): the same bits as a call per row, in one parallel region. */
void k_dropout_forward_rows(float *out, const float *inp, const size_t *rows, int n, int C, int P, float p,
                            uint64_t seed, uint64_t offset);
void k_dropout_backward_rows(float *dinp, const float *dout, const size_t *rows, int n, int C, int P, float p,
                             uint64_t seed, uint64_t offset);
void k_dropout_backward_rows_set(float *dinp, const float *dout, const size_t *rows, int n, int C, int P,
                                 float p, uint64_t seed, uint64_t offset);
/* out = a + b (the residual connections); out may equal a or b (the model adds in place, so a CUDA
 * launcher must allow that too); backward is two accumulations, done with k_accumulate. */
void k_residual_forward(float *out, const float *a, const float *b, size_t n);
/* dst += src */
void k_accumulate(float *dst, const float *src, size_t n);

/* ---- [CLS] gather ------------------------------------------------------------------------------ */
/* out[B,C] = inp[b,0,:] ; dinp[b,0,:] += dout[b,:] */
void k_cls_forward(float *out, const float *inp, int B, int T, int C);
void k_cls_backward(float *dinp, const float *dout, int B, int T, int C);

/* ---- classification loss ----------------------------------------------------------------------- */
/* probs[B,L] = softmax(logits); loss[0] = mean over b of -log probs[b, targets[b]]. Targets must lie
 * in [0, L): the caller checks them (the model does, naming the row). With class weights[L] (NULL:
 * none), the weighted mean sum_b w[t_b] * loss_b / sum_b w[t_b], as PyTorch's
 * CrossEntropyLoss(weight=w) with reduction "mean". */
void k_crossentropy_forward(float *loss, float *probs, const float *logits, const int64_t *targets,
                            const float *weights, int B, int L);
/* dlogits[B,L] += dloss * (probs - onehot(targets)) / B; with weights[L]:
 * dlogits[b] += dloss * w[t_b] * (probs - onehot) / sum_b w[t_b] */
void k_crossentropy_backward(float *dlogits, const float *probs, const int64_t *targets,
                             const float *weights, int B, int L, float dloss);
/* probs[B,L] = softmax over the last dimension of logits (the same arithmetic as the loss's). */
void k_softmax_rows(float *probs, const float *logits, int B, int L);

/* ---- attention mask ---------------------------------------------------------------------------- */
/* mask_add[n] = 0 where mask[n] != 0, -FLT_MAX where mask[n] == 0 (all 0 when mask is NULL). */
void k_mask_to_additive(float *mask_add, const int64_t *mask, size_t n);

#endif
