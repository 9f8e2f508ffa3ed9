/* Fused skip-gram negative-sampling SGD over a chunk of pairs, for the CPU.
 *
 * The maths is SGNSStep's (w2v/model.py): within a batch every score is computed from the
 * weights before the batch and the per-pair updates are summed, as torch's index_add_
 * would; batches run one after the other. A batch is done in two phases separated by
 * barriers:
 *
 *   1. scores and gradients: groups of pairs are split among the threads; each writes every
 *      row update of its pairs to buffers (input rows, center output rows, and the group's
 *      summed negative-row updates), reading the tables only;
 *   2. updates: thread t adds the buffered updates of the rows it owns (row % T == t) to
 *      both tables, in pair order, reading the buffers only.
 *
 * Every row is written by one thread, in an order that does not depend on the number of
 * threads, so the result is bitwise identical for any thread count and any run: the
 * parallel path is deterministic, unlike Hogwild. Plain C (no torch headers) keeps the
 * build to a second; rows are addressed through flat row indices of one buffer per table.
 */
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct {
    float *win, *wout;
    const int64_t *ctx, *tgt, *neg; /* flat rows: (P,), (P,), (P / G, K) */
    int64_t n_pairs;
    int dim, group, k, batch;
    const float *lrs;           /* one per batch */
    const uint8_t *measure;     /* one per batch: compute the loss */
    double *losses;             /* one per batch (summed loss) */
    int nthreads;
    float *d_in;                /* (batch, dim): input-row updates */
    float *d_out;               /* (batch, dim): center output-row updates */
    float *d_neg;               /* (batch / G, K, dim) */
    double *group_loss;         /* (batch / G,) */
    double *phase_seconds;      /* 3 wall-clock totals, kept by thread 0 (may be NULL) */
    pthread_barrier_t barrier;
    pthread_mutex_t gate;
} job_t;

typedef struct {
    job_t *job;
    int t;
} arg_t;

/* Rows are walked in blocks of W floats with GCC/Clang vector types (one AVX-512
 * register, or two AVX2 ones); each row of a pair is read once per pass. */
#define W 16
#define KB 16 /* negatives handled per pass */
typedef float vf __attribute__((vector_size(W * sizeof(float))));

static inline vf ld(const float *p) { vf v; memcpy(&v, p, sizeof v); return v; }
static inline void st(float *p, vf v) { memcpy(p, &v, sizeof v); }
static inline float hsum(vf v) {
    float s = 0.f;
    for (int i = 0; i < W; i++) s += v[i];
    return s;
}

/* out[c] = x . rows[c] for c < n (n <= KB), in one pass over x. */
static void dots(const float *x, const float *const *rows, int n, int D, float *out) {
    vf acc[KB];
    for (int c = 0; c < n; c++) acc[c] = (vf){0};
    int d = 0;
    for (; d + W <= D; d += W) {
        const vf xv = ld(x + d);
        for (int c = 0; c < n; c++) acc[c] += xv * ld(rows[c] + d);
    }
    for (int c = 0; c < n; c++) {
        float s = hsum(acc[c]);
        for (int e = d; e < D; e++) s += x[e] * rows[c][e];
        out[c] = s;
    }
}

/* dx += sum_c g[c] rows[c];  acc[c] += g[c] x   for c < n (n <= KB), in one pass. */
static void spread(float *dx, const float *x, const float *const *rows, const float *g, float *const *acc, int n, int D) {
    int d = 0;
    for (; d + W <= D; d += W) {
        const vf xv = ld(x + d);
        vf a = ld(dx + d);
        for (int c = 0; c < n; c++) {
            a += g[c] * ld(rows[c] + d);
            st(acc[c] + d, ld(acc[c] + d) + g[c] * xv);
        }
        st(dx + d, a);
    }
    for (; d < D; d++)
        for (int c = 0; c < n; c++) {
            dx[d] += g[c] * rows[c][d];
            acc[c][d] += g[c] * x[d];
        }
}

/* Rows are random accesses into tables larger than the cache: ask for a row a few pairs
 * ahead of its use (measured: the first read of each row was a third of the time). */
#define AHEAD 6
static inline void prefetch_row(const float *p, int D, int write) {
    for (int d = 0; d < D; d += 16) {
        if (write) __builtin_prefetch(p + d, 1, 3);
        else __builtin_prefetch(p + d, 0, 3);
    }
}

static inline void axpy(float *restrict y, float a, const float *restrict x, int n) {
    for (int d = 0; d < n; d++) y[d] += a * x[d];
}

static inline float sigmoid(float z) { return 1.f / (1.f + expf(-z)); }

/* log(sigmoid(z)) without overflow. */
static inline double log_sigmoid(float z) {
    return z >= 0 ? -log1p(exp(-(double)z)) : (double)z - log1p(exp((double)z));
}

static void sync(job_t *j) {
    if (j->nthreads > 1) pthread_barrier_wait(&j->barrier);
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

/* Thread 0 adds the time since *mark to phase p (waits at the barrier included). */
static void lap(job_t *j, int t, int p, double *mark) {
    if (t != 0 || !j->phase_seconds) return;
    const double x = now();
    j->phase_seconds[p] += x - *mark;
    *mark = x;
}

static void run(job_t *j, int t) {
    double mark = (t == 0 && j->phase_seconds) ? now() : 0.0;
    const int D = j->dim, G = j->group, K = j->k, T = j->nthreads;
    const int64_t P = j->n_pairs;
    for (int64_t start = 0, b = 0; start < P; start += j->batch, b++) {
        const int64_t stop = start + j->batch < P ? start + j->batch : P;
        const int64_t groups = (stop - start) / G, g0 = start / G;
        const float lr = j->lrs[b];
        const int want_loss = j->measure[b];
        /* Phase 1: scores and gradients, groups split into contiguous ranges per thread. */
        for (int64_t m = groups * t / T; m < groups * (t + 1) / T; m++) {
            const int64_t *negs = j->neg + (g0 + m) * K;
            float *dn = j->d_neg + m * K * D;
            memset(dn, 0, sizeof(float) * K * D);
            double loss = 0.0;
            const float *rows[KB];
            float *acc[KB];
            float sc[KB], gn[KB];
            const int64_t last = groups * (t + 1) / T * G + start; /* this thread's end */
            for (int64_t i = start + m * G; i < start + (m + 1) * G; i++) {
                if (i + AHEAD < last) {
                    prefetch_row(j->win + j->ctx[i + AHEAD] * D, D, 0);
                    prefetch_row(j->wout + j->tgt[i + AHEAD] * D, D, 0);
                }
                const float *x = j->win + j->ctx[i] * D;
                const float *y = j->wout + j->tgt[i] * D;
                float *dx = j->d_in + (i - start) * D;
                rows[0] = y;
                dots(x, rows, 1, D, sc);
                const float gp = lr * (1.f - sigmoid(sc[0]));
                float *dy = j->d_out + (i - start) * D;
                for (int d = 0; d < D; d++) dy[d] = gp * x[d];
                if (want_loss) loss -= log_sigmoid(sc[0]);
                for (int d = 0; d < D; d++) dx[d] = gp * y[d];
                for (int c0 = 0; c0 < K; c0 += KB) {
                    const int n = K - c0 < KB ? K - c0 : KB;
                    for (int c = 0; c < n; c++) {
                        rows[c] = j->wout + negs[c0 + c] * D;
                        acc[c] = dn + (c0 + c) * D;
                    }
                    dots(x, rows, n, D, sc);
                    for (int c = 0; c < n; c++) {
                        gn[c] = -lr * sigmoid(sc[c]);
                        if (want_loss) loss -= log_sigmoid(-sc[c]);
                    }
                    spread(dx, x, rows, gn, acc, n, D);
                }
            }
            j->group_loss[m] = loss;
        }
        sync(j);
        lap(j, t, 0, &mark);
        /* Phase 2: every row by its owner, from the buffers only: output rows in pair order
           then group order, input rows in pair order. */
        for (int64_t i = start; i < stop; i++) {
            if (i + AHEAD < stop) {
                if (j->tgt[i + AHEAD] % T == t) prefetch_row(j->wout + j->tgt[i + AHEAD] * D, D, 1);
                if (j->ctx[i + AHEAD] % T == t) prefetch_row(j->win + j->ctx[i + AHEAD] * D, D, 1);
            }
            const int64_t r = j->tgt[i], q = j->ctx[i];
            if (r % T == t) axpy(j->wout + r * D, 1.f, j->d_out + (i - start) * D, D);
            if (q % T == t) axpy(j->win + q * D, 1.f, j->d_in + (i - start) * D, D);
        }
        for (int64_t m = 0; m < groups; m++) {
            const int64_t *negs = j->neg + (g0 + m) * K;
            for (int c = 0; c < K; c++)
                if (negs[c] % T == t) axpy(j->wout + negs[c] * D, 1.f, j->d_neg + (m * K + c) * D, D);
        }
        if (t == 0 && want_loss) {
            double loss = 0.0;
            for (int64_t m = 0; m < groups; m++) loss += j->group_loss[m];
            j->losses[b] = loss;
        }
        sync(j);
        lap(j, t, 1, &mark);
    }
}

static void *thread_main(void *p) {
    arg_t *a = (arg_t *)p;
    pthread_mutex_lock(&a->job->gate); /* released once the team size is final */
    pthread_mutex_unlock(&a->job->gate);
    run(a->job, a->t);
    return NULL;
}

/* Train on pairs [0, n_pairs) in batches of `batch` pairs (a multiple of `group`; n_pairs
 * too). `phase_seconds`, when given, accumulates the wall time of the two phases.
 * Returns 0, or -1 when the buffers could not be allocated. */
int w2v_sgns_train(float *win, float *wout, int dim,
                   const int64_t *ctx, const int64_t *tgt, const int64_t *neg,
                   int64_t n_pairs, int group, int k, int batch,
                   const float *lrs, const uint8_t *measure, double *losses, int nthreads,
                   double *phase_seconds) {
    job_t j;
    memset(&j, 0, sizeof j);
    j.win = win; j.wout = wout; j.ctx = ctx; j.tgt = tgt; j.neg = neg;
    j.n_pairs = n_pairs; j.dim = dim; j.group = group; j.k = k; j.batch = batch;
    j.lrs = lrs; j.measure = measure; j.losses = losses; j.phase_seconds = phase_seconds;
    j.nthreads = nthreads < 1 ? 1 : nthreads;
    pthread_mutex_init(&j.gate, NULL);
    const int64_t m = batch / group;
    j.d_in = malloc(sizeof(float) * (size_t)batch * dim);
    j.d_neg = malloc(sizeof(float) * (size_t)m * k * dim);
    j.d_out = malloc(sizeof(float) * (size_t)batch * dim);
    j.group_loss = malloc(sizeof(double) * (size_t)m);
    int rc = 0;
    if (!j.d_in || !j.d_out || !j.d_neg || !j.group_loss) { rc = -1; goto done; }
    if (j.nthreads == 1) {
        run(&j, 0);
        goto done;
    }
    /* Threads wait on `gate` until the team size is final, so that a thread that could
       not be created shrinks the team instead of leaving a barrier that never opens. */
    if (j.nthreads > 64) j.nthreads = 64;
    pthread_t threads[64];
    arg_t args[64];
    pthread_mutex_lock(&j.gate);
    int team = 1;
    for (int t = 1; t < j.nthreads; t++) {
        args[t].job = &j; args[t].t = t;
        if (pthread_create(&threads[t], NULL, thread_main, &args[t]) != 0) break;
        team++;
    }
    j.nthreads = team;
    pthread_barrier_init(&j.barrier, NULL, (unsigned)team);
    pthread_mutex_unlock(&j.gate);
    run(&j, 0);
    for (int t = 1; t < team; t++) pthread_join(threads[t], NULL);
    pthread_barrier_destroy(&j.barrier);
done:
    pthread_mutex_destroy(&j.gate);
    free(j.d_in); free(j.d_out); free(j.d_neg); free(j.group_loss);
    return rc;
}
