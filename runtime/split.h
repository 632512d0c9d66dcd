/* split.h: scikit-learn's train_test_split, index for index: NumPy's legacy RandomState (MT19937
 * seeded as RandomState(int) does, with its bounded-integer, shuffle and choice draws), ShuffleSplit,
 * StratifiedShuffleSplit (with _approximate_mode) and the unshuffled split. Indices are 0-based here;
 * the Lua layer adds 1. Not covered: RandomState(None/array) seeding, n_splits > 1, 2-D stratify. */
#ifndef BL_SPLIT_H
#define BL_SPLIT_H
#include <stdint.h>

/* ---- NumPy's legacy RandomState ---------------------------------------------------------------- */

typedef struct randomstate {
    uint32_t key[624];
    int pos;
} randomstate_t;

/* np.random.RandomState(seed) for an integer seed (MT19937 init_genrand). */
void randomstate_seed(randomstate_t *rs, uint32_t seed);
/* The next 32-bit word of MT19937 (genrand_int32); 64 bits are two words, high first. */
uint32_t randomstate_u32(randomstate_t *rs);
uint64_t randomstate_u64(randomstate_t *rs);
/* random_sample(): 53-bit double in [0, 1). */
double randomstate_double(randomstate_t *rs);
/* Uniform in [0, max] by masked rejection (numpy's random_interval, used by shuffle). */
uint64_t randomstate_interval(randomstate_t *rs, uint64_t max);
/* randint(low, high) for the default int64 dtype: [low, high) by masked rejection; high > low. */
int64_t randomstate_randint(randomstate_t *rs, int64_t low, int64_t high);
/* shuffle(a) of a 1-D array of n elements (Fisher-Yates from the end, as numpy). */
void randomstate_shuffle(randomstate_t *rs, int64_t *a, int64_t n);
/* permutation(n): out[n] = a shuffled arange(n). */
void randomstate_permutation(randomstate_t *rs, int64_t n, int64_t *out);
/* choice(pop, size, replace): out[size] in [0, pop); without replacement permutation(pop)[:size].
 * Returns -1 (bl_fail) when size > pop without replacement or pop == 0. */
int randomstate_choice(randomstate_t *rs, int64_t pop, int64_t size, int replace, int64_t *out);

/* ---- train_test_split -------------------------------------------------------------------------- */

typedef enum { SPLIT_SIZE_NONE = 0, SPLIT_SIZE_FRACTION = 1, SPLIT_SIZE_COUNT = 2 } split_size_kind_t;

typedef struct split_opts {
    split_size_kind_t test_kind, train_kind;
    double test_size, train_size; /* a fraction in (0, 1) or a count, per its kind */
    uint32_t random_state;
    int shuffle;
    /* [n] class of each sample as its rank among the sorted distinct labels (0..nclasses-1), as
     * np.unique(y, return_inverse=True) numbers them; NULL for no stratification. */
    const int64_t *stratify;
} split_opts_t;

/* scikit-learn's _validate_shuffle_split (default test fraction 0.25 when both sizes are unset):
 * the train and test sizes, or -1 with sklearn's message on invalid sizes. */
int split_sizes(int64_t n, const split_opts_t *o, int64_t *n_train, int64_t *n_test);

/* train_test_split(np.arange(n), ...): fills train[n_train] and test[n_test] (sizes from
 * split_sizes) with 0-based indices. Returns 0, or -1 with sklearn's message. */
int split_train_test(int64_t n, const split_opts_t *o, int64_t *train, int64_t *test);

/* _approximate_mode(class_counts, n_draws, rng): out[k] draws per class, ties broken by rng. */
int split_approximate_mode(const int64_t *counts, int k, int64_t n_draws, randomstate_t *rs, int64_t *out);

/* ---- StratifiedKFold ------------------------------------------------------------------------------ */

/* scikit-learn's StratifiedKFold(n_splits, shuffle, random_state)._make_test_folds: fold[n] gets the
 * test fold (0..n_splits-1) of each sample. y[n] holds any class codes (equal codes = one class);
 * classes are numbered by first appearance, each class's fold labels are the round-robin
 * allocation over the sorted labels in blocks, shuffled per class (in that order) by
 * RandomState(random_state).shuffle when `shuffle`. *min_members gets the smallest class's size
 * (sklearn warns when it is below n_splits). Returns 0, or -1 with sklearn's message. */
int split_stratified_kfold(int64_t n, const int64_t *y, int n_splits, int shuffle, uint32_t random_state,
                           int64_t *fold, int64_t *min_members);

#endif
