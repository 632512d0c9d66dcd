/* dist.c: data-parallel collectives over MPI (see dist.h). Only this file includes mpi.h; it is
 * compiled with -DBL_WITH_MPI and mpicc's flags where mpicc exists (Makefile). */
#include "dist.h"
#include "error.h"
#include <stdlib.h>
#include <string.h>
#include <time.h>
#ifdef BL_WITH_MPI
#include <mpi.h>
#endif

static int g_init, g_rank, g_size = 1;
static uint64_t g_sent;
static double g_reduce_s; /* seconds spent in dist_allreduce_sum_f32 */

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
double dist_allreduce_seconds(void) { return g_reduce_s; }

int dist_env_size(void) {
    const char *vars[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE", "MPI_LOCALNRANKS", NULL};
    for (int i = 0; vars[i]; i++) {
        const char *v = getenv(vars[i]);
        if (v && atoi(v) > 0) return atoi(v);
    }
    /* srun: one task per process (SLURM_NTASKS is also set inside sbatch scripts, where
     * SLURM_STEP_ID is absent: a batch script's own shell is no task of a step) */
    const char *st = getenv("SLURM_STEP_NUM_TASKS"), *step = getenv("SLURM_STEP_ID");
    if (st && step && atoi(st) > 0) return atoi(st);
    return 1;
}

int dist_have_mpi(void) {
#ifdef BL_WITH_MPI
    return 1;
#else
    return 0;
#endif
}

#ifdef BL_WITH_MPI
static void finalize_at_exit(void) {
    int fin = 0;
    MPI_Finalized(&fin);
    if (!fin) MPI_Finalize();
}
#endif

int dist_init(void) {
    if (g_init) return 0;
    int want = dist_env_size();
#ifdef BL_WITH_MPI
    if (want > 1) {
        int done = 0;
        MPI_Initialized(&done);
        if (!done && MPI_Init(NULL, NULL) != MPI_SUCCESS) return bl_fail("MPI_Init failed");
        MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
        MPI_Comm_size(MPI_COMM_WORLD, &g_size);
        atexit(finalize_at_exit);
    }
#else
    if (want > 1)
        return bl_fail("launched as %d tasks (mpirun or srun), but this bertlab was built without MPI: "
                       "install Open MPI (apt-get install libopenmpi-dev openmpi-bin), then run `make` again (it rebuilds with MPI)",
                       want);
#endif
    g_init = 1;
    return 0;
}

int dist_rank(void) { return g_rank; }
int dist_size(void) { return g_size; }
uint64_t dist_bytes_sent(void) { return g_sent; }

#ifdef BL_WITH_MPI
static float *g_mine;
static size_t g_mine_n;
static int *g_counts, *g_displs;

int dist_allreduce_sum_f32(float *buf, size_t n) {
    if (g_size <= 1 || n == 0) return 0;
    if (n > (size_t)INT32_MAX) return bl_fail("dist: a buffer of %zu floats is too large for one all-reduce", n);
    double t0 = now_s();
    if (!g_counts) {
        g_counts = malloc(sizeof(int) * (size_t)g_size);
        g_displs = malloc(sizeof(int) * (size_t)g_size);
        if (!g_counts || !g_displs) return bl_fail("dist: out of memory");
    }
    /* block r (n/size elements, one more for the first n%size ranks) is reduced once, on rank r;
     * the gather then copies the same bits to every rank */
    size_t base = n / (size_t)g_size, extra = n % (size_t)g_size, off = 0;
    for (int r = 0; r < g_size; r++) {
        g_counts[r] = (int)(base + ((size_t)r < extra));
        g_displs[r] = (int)off;
        off += (size_t)g_counts[r];
    }
    size_t mine = (size_t)g_counts[g_rank];
    if (g_mine_n < mine + 1) {
        free(g_mine);
        g_mine = malloc(sizeof(float) * (mine + 1));
        if (!g_mine) { g_mine_n = 0; return bl_fail("dist: out of memory for a %zu-float block", mine + 1); }
        g_mine_n = mine + 1;
    }
    if (MPI_Reduce_scatter(buf, g_mine, g_counts, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD) != MPI_SUCCESS)
        return bl_fail("dist: MPI_Reduce_scatter failed");
    if (MPI_Allgatherv(g_mine, (int)mine, MPI_FLOAT, buf, g_counts, g_displs, MPI_FLOAT, MPI_COMM_WORLD) != MPI_SUCCESS)
        return bl_fail("dist: MPI_Allgatherv failed");
    g_sent += 2 * (uint64_t)(n - mine) * sizeof(float);
    g_reduce_s += now_s() - t0;
    return 0;
}

int dist_allgather_f64(const double *in, size_t n_in, double **out, size_t *n_out) {
    int *counts = malloc(sizeof(int) * (size_t)g_size), *displs = malloc(sizeof(int) * (size_t)g_size);
    if (!counts || !displs) { free(counts); free(displs); return bl_fail("dist: out of memory"); }
    int mine = (int)n_in;
    MPI_Allgather(&mine, 1, MPI_INT, counts, 1, MPI_INT, MPI_COMM_WORLD);
    size_t tot = 0;
    for (int r = 0; r < g_size; r++) { displs[r] = (int)tot; tot += (size_t)counts[r]; }
    double *o = malloc(sizeof(double) * (tot ? tot : 1));
    if (!o) { free(counts); free(displs); return bl_fail("dist: out of memory"); }
    int rc = MPI_Allgatherv(in, mine, MPI_DOUBLE, o, counts, displs, MPI_DOUBLE, MPI_COMM_WORLD);
    free(counts); free(displs);
    if (rc != MPI_SUCCESS) { free(o); return bl_fail("dist: MPI_Allgatherv failed"); }
    g_sent += (uint64_t)n_in * sizeof(double) * (uint64_t)(g_size - 1);
    *out = o; *n_out = tot;
    return 0;
}

int dist_bcast_bytes(char **buf, size_t *n) {
    if (g_size <= 1) return 0;
    long long len = g_rank == 0 ? (long long)*n : 0;
    MPI_Bcast(&len, 1, MPI_LONG_LONG, 0, MPI_COMM_WORLD);
    if (g_rank != 0) {
        *buf = malloc((size_t)len + 1);
        if (!*buf) return bl_fail("dist: out of memory");
        (*buf)[len] = 0;
        *n = (size_t)len;
    }
    if (MPI_Bcast(*buf, (int)len, MPI_CHAR, 0, MPI_COMM_WORLD) != MPI_SUCCESS) return bl_fail("dist: MPI_Bcast failed");
    return 0;
}

int dist_barrier(void) {
    if (g_size > 1 && MPI_Barrier(MPI_COMM_WORLD) != MPI_SUCCESS) return bl_fail("dist: MPI_Barrier failed");
    return 0;
}

void dist_abort(int status) {
    if (g_size > 1) MPI_Abort(MPI_COMM_WORLD, status);
}
#else
int dist_allreduce_sum_f32(float *buf, size_t n) { (void)buf; (void)n; return 0; }
int dist_allgather_f64(const double *in, size_t n_in, double **out, size_t *n_out) {
    double *o = malloc(sizeof(double) * (n_in ? n_in : 1));
    if (!o) return bl_fail("dist: out of memory");
    if (n_in) memcpy(o, in, sizeof(double) * n_in);
    *out = o; *n_out = n_in;
    return 0;
}
int dist_bcast_bytes(char **buf, size_t *n) { (void)buf; (void)n; return 0; }
int dist_barrier(void) { return 0; }
void dist_abort(int status) { (void)status; }
#endif

int dist_allreduce_sum_f64(const double *in, double *out, size_t n) {
    if (g_size <= 1) { memmove(out, in, sizeof(double) * n); return 0; }
    double *all; size_t tot;
    if (dist_allgather_f64(in, n, &all, &tot) < 0) return -1;
    if (tot != n * (size_t)g_size) { free(all); return bl_fail("dist: ranks disagree on a reduction's length"); }
    for (size_t i = 0; i < n; i++) {
        double s = 0.0;
        for (int r = 0; r < g_size; r++) s += all[(size_t)r * n + i];
        out[i] = s;
    }
    free(all);
    return 0;
}
