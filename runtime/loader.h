/* loader.h: what bl.DataLoader does per batch, in C: the epoch order (sequential, or a Fisher-Yates
 * shuffle from the SAMPLER Philox stream), and collation: gathering a batch's rows of every dataset
 * tensor and trimming the padded ones to the longest real sequence in the batch (dynamic padding).
 * Dimension letters: N dataset rows, B batch rows, L padded length, T trimmed length (T <= L). */
#ifndef BL_LOADER_H
#define BL_LOADER_H
#include <stdint.h>
#include "tensor.h"

/* Number of batches of an epoch over n rows: ceil(n / batch_size), or floor with drop_last. */
int64_t loader_num_batches(int64_t n, int64_t batch_size, int drop_last);

/* Fills order[n] with 0..n-1, shuffled (Fisher-Yates, from rng_stream(RNG_STREAM_SAMPLER), so the
 * order is new at each call and reproducible after rng_set_seed) when `shuffle` is set. */
void loader_order(int64_t *order, int64_t n, int shuffle);

/* Fills order[m] with m row numbers drawn with replacement, row i with probability
 * weights[i] / sum(weights) (weights[n] finite, >= 0, not all 0), from the SAMPLER Philox stream:
 * what PyTorch's WeightedRandomSampler(weights, m, replacement=True) does, though not its draws
 * (torch.multinomial's generator is not Philox). Each draw takes two words of the stream (a 53-bit
 * uniform) and a binary search of the cumulative sums. Returns 0, or -1 naming the bad weight. */
int loader_weighted_order(int64_t *order, int64_t m, const double *weights, int64_t n);

/* Checks that the nt tensors can form a dataset: at least one, each on the CPU with at least one
 * dimension, all with the same first dimension N. Returns N, or -1 naming the tensor at fault
 * (by its 1-based position, and names[i] when not NULL). */
int64_t loader_check_dataset(const tensor_t *const *ts, int nt, const char *const *names);

/* The length of the longest real sequence among rows idx[B] of mask [N, L]: 1 + the last column
 * holding a nonzero value, over those rows; at least 1 so that a batch is never empty. */
int64_t loader_longest(const tensor_t *mask, const int64_t *idx, int64_t B);

/* out[i] = rows idx[B] of ts[i], for the nt tensors. When mask >= 0, each 2-D tensor whose width
 * equals that of ts[mask] ([N, L]) comes out trimmed to [B, T], T = loader_longest(ts[mask], idx, B).
 * Returns 0, or -1 (out[] all NULL) on a bad index or out of memory. */
int loader_collate(const tensor_t *const *ts, int nt, const int64_t *idx, int64_t B, int mask, tensor_t **out);

#endif
