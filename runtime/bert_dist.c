/* bert_dist.c: the model's side of data parallelism: its flat gradient buffer, scaled and summed
 * over the run's processes (dist.h). On the CPU the buffer is host memory and goes to MPI as it is;
 * other devices need a device collective (NCCL), which this build does not have. */
#include "bert.h"
#include "dist.h"
#include "error.h"
#include <string.h>

int bert_allreduce_grads(bert_t *m, float scale) {
    if (!m->grads_memory) return bl_fail("allreduce_grads: the model has no gradients (run forward and backward first)");
    if (dist_size() <= 1) {
        if (scale != 1.0f) m->be->scale_f32(m->grads_memory, m->num_parameters, scale);
        return 0;
    }
    if (m->be->device != 0)
        return bl_fail("allreduce_grads: data parallel on %s needs NCCL, which this build does not have (use --device cpu)",
                       m->be->name);
    if (scale != 1.0f) m->be->scale_f32(m->grads_memory, m->num_parameters, scale);
    if (dist_allreduce_sum_f32(m->grads_memory, m->num_parameters) < 0) return -1;
    /* every row of the word-embedding gradient may now hold another rank's sum: zero_grad must clear all */
    if (m->wte_touched) memset(m->wte_touched, 1, m->config.vocab_size);
    return 0;
}
