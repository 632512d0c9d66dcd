/* bert_dist.c: the model's side of data parallelism: its flat gradient buffer, scaled and summed
 * over the run's processes. On the CPU the buffer is host memory and goes to MPI (dist.h); on a GPU
 * it is summed on the device by NCCL (kernels/collective.h), whose communicator is made on the first
 * call from a unique id that rank 0 draws and MPI passes on. */
#include "bert.h"
#include "dist.h"
#include "error.h"
#include <stdlib.h>
#include <string.h>
#ifdef BL_WITH_CUDA
#include "../kernels/collective.h"
#endif

#ifdef BL_WITH_CUDA
static int g_nccl;

/* every rank joins the NCCL communicator (a failure on rank 0 is told to all, so none waits) */
static int nccl_join(void) {
    if (g_nccl) return 0;
    if (!bl_nccl_available()) return bl_fail("allreduce_grads: %s", bl_nccl_error());
    char msg[BL_NCCL_ID_BYTES + 1];
    memset(msg, 0, sizeof msg);
    if (dist_rank() == 0) msg[0] = bl_nccl_get_id((unsigned char *)msg + 1) < 0 ? 1 : 0;
    char *buf = msg;
    size_t n = sizeof msg;
    if (dist_bcast_bytes(&buf, &n) < 0) return -1;
    if (buf != msg) { memcpy(msg, buf, sizeof msg); free(buf); }
    if (msg[0]) return bl_fail("allreduce_grads: rank 0 could not make the NCCL id: %s",
                               dist_rank() == 0 ? bl_nccl_error() : "see rank 0's message");
    if (bl_nccl_init((const unsigned char *)msg + 1, dist_rank(), dist_size()) < 0)
        return bl_fail("allreduce_grads: %s", bl_nccl_error());
    g_nccl = 1;
    return 0;
}
#endif

/* On the CPU. The word-embedding gradient ([V,C], half of MiniLM's) is zero outside the rows of the
 * processes' token ids (bert.c marks them in wte_touched): the processes agree on the union of
 * their rows, and only those rows travel, packed, with the rest of the buffer summed in place.
 * Rows outside the union are zero everywhere, so the sum is the same as the whole buffer's. */
static float *g_rows;
static size_t g_rows_n;
static float *g_flags;

static int cpu_allreduce(bert_t *m, float scale) {
    const bl_backend_t *be = m->be;
    size_t C = m->config.hidden_size, V = m->config.vocab_size, wte = V * C;
    float *rest = m->grads_memory + wte;
    size_t nrest = m->num_parameters - wte;
    if (scale != 1.0f) be->scale_f32(rest, nrest, scale);
    if (!m->wte_touched) { /* no row marks: the whole table */
        if (scale != 1.0f) be->scale_f32(m->grads_memory, wte, scale);
        return dist_allreduce_sum_f32(m->grads_memory, m->num_parameters);
    }
    if (!g_flags && !(g_flags = malloc(sizeof(float) * V))) return bl_fail("allreduce_grads: out of memory");
    for (size_t v = 0; v < V; v++) g_flags[v] = m->wte_touched[v] ? 1.0f : 0.0f;
    if (dist_allreduce_sum_f32(g_flags, V) < 0) return -1;
    size_t rows = 0;
    for (size_t v = 0; v < V; v++) rows += g_flags[v] > 0.0f;
    if (g_rows_n < rows * C + 1) {
        free(g_rows);
        if (!(g_rows = malloc(sizeof(float) * (rows * C + 1)))) { g_rows_n = 0; return bl_fail("allreduce_grads: out of memory"); }
        g_rows_n = rows * C + 1;
    }
    size_t k = 0;
    for (size_t v = 0; v < V; v++)
        if (g_flags[v] > 0.0f) memcpy(g_rows + (k++) * C, m->grads_memory + v * C, sizeof(float) * C);
    if (scale != 1.0f) be->scale_f32(g_rows, rows * C, scale);
    if (dist_allreduce_sum_f32(g_rows, rows * C) < 0) return -1;
    if (dist_allreduce_sum_f32(rest, nrest) < 0) return -1;
    k = 0;
    for (size_t v = 0; v < V; v++)
        if (g_flags[v] > 0.0f) {
            memcpy(m->grads_memory + v * C, g_rows + (k++) * C, sizeof(float) * C);
            m->wte_touched[v] = 1; /* zero_grad clears the union's rows */
        }
    return 0;
}

int bert_allreduce_grads(bert_t *m, float scale) {
    if (!m->grads_memory) return bl_fail("allreduce_grads: the model has no gradients (run forward and backward first)");
    bert_grads_ready(m);
    bert_flush_grad_scale(m);
    if (dist_size() <= 1) {
        if (scale != 1.0f) m->be->scale_f32(m->grads_memory, m->num_parameters, scale);
        return 0;
    }
    if (m->be->device != 0) {
#ifdef BL_WITH_CUDA
        if (nccl_join() < 0) return -1;
        if (scale != 1.0f) m->be->scale_f32(m->grads_memory, m->num_parameters, scale);
        if (bl_nccl_allreduce_sum_f32(m->grads_memory, m->num_parameters) < 0)
            return bl_fail("allreduce_grads: %s", bl_nccl_error());
#else
        return bl_fail("allreduce_grads: data parallel on %s needs a CUDA build with NCCL", m->be->name);
#endif
    } else {
        if (cpu_allreduce(m, scale) < 0) return -1;
        return 0;
    }
    /* every row of the word-embedding gradient may now hold another rank's sum: zero_grad must clear all */
    if (m->wte_touched) memset(m->wte_touched, 1, m->config.vocab_size);
    return 0;
}

int bert_nccl_available(void) {
#ifdef BL_WITH_CUDA
    return bl_nccl_available();
#else
    return 0;
#endif
}
