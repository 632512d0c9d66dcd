/* dist.h: the processes of one data-parallel run (MPI: Open MPI's mpirun, or Slurm's srun).
 * Built with MPI where `mpicc` exists (BL_WITH_MPI); without it every call sees one process, and a
 * launch by mpirun/srun with more than one task is an error that says so.
 * Collectives are deterministic: every rank receives the same bits (the gradient sum is reduced
 * once per element, by one rank, then gathered), so replicas stay bit-identical. */
#ifndef BL_DIST_H
#define BL_DIST_H
#include <stddef.h>
#include <stdint.h>

/* Starts MPI when the environment says this process is one of several (OMPI_COMM_WORLD_SIZE,
 * PMI_SIZE, PMIX_RANK with a size, SLURM_NTASKS under srun); idempotent. -1 with an error when
 * launched as several tasks by a build without MPI. */
int dist_init(void);
int dist_rank(void);          /* 0 .. size-1 (0 without MPI) */
int dist_size(void);          /* processes in the run (1 without MPI) */
int dist_have_mpi(void);      /* 1 if this build has MPI */
/* The task count the launcher's environment announces (1 when none). */
int dist_env_size(void);

/* buf[n] (host memory) becomes the sum over ranks, the same bits on every rank. */
int dist_allreduce_sum_f32(float *buf, size_t n);
/* in[n] from every rank, summed in rank order: out[n] identical on every rank (small vectors). */
int dist_allreduce_sum_f64(const double *in, double *out, size_t n);
/* Concatenation in rank order of every rank's in[n_in]; out: malloc'd (caller frees), n_out: its length. */
int dist_allgather_f64(const double *in, size_t n_in, double **out, size_t *n_out);
/* Rank 0's bytes to every rank: on rank 0 buf and n are read; elsewhere buf gets a malloc'd copy. */
int dist_bcast_bytes(char **buf, size_t *n);
int dist_barrier(void);
/* Ends the run on every rank (a rank that failed): MPI_Abort with this status. */
void dist_abort(int status);
/* Bytes this rank has sent through the collectives so far (for the benchmarks). */
uint64_t dist_bytes_sent(void);
/* Seconds this rank has spent in dist_allreduce_sum_f32 (the gradient sums) so far. */
double dist_allreduce_seconds(void);

#endif
