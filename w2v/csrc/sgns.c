/* Fused skip-gram negative-sampling SGD over a chunk of pairs, for the CPU.
 *
 * The maths is SGNSStep's (w2v/model.py): within a batch every score is computed from the
 * weights before the batch and the per-pair updates are summed, as torch's index_add_
 * would; batches run one after the other. A batch is done in three steps separated by
 * barriers:
 *
 *   1. scores and gradients: threads take groups of pairs from a shared counter (so a
 *      thread slowed by another process does less of the work); a group writes its
 *      input-row updates, its summed negative-row updates and each pair's scaled center
 *      gradient to buffers of its own, reading the tables only;
 *   2. output rows: thread t adds the updates of the output rows it owns (owner(row) == t)
 *      in pair order, then group order: center rows as gradient x input row (the input
 *      table is still the one before the batch, so no buffer of center-row updates is
 *      needed), negative rows from the buffers;
 *   3. input rows: the same for the input rows it owns, from the buffers.
 *
 * Every row is written by one thread, in an order that does not depend on the number of
 * threads, and a group's buffers do not depend on which thread computed them, so the
 * result is bitwise identical for any thread count and any run: the parallel path is
 * deterministic, unlike Hogwild. Plain C (no torch headers) keeps the build to a second;
 * rows are addressed through flat row indices of one buffer per table.
 */
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* A barrier that spins briefly before sleeping (see SPINS): the steps of a batch take
 * tens of microseconds, and waking a thread that slept costs about as much. */
typedef struct {
    atomic_int count;   /* threads arrived at the current barrier */
    atomic_uint phase;  /* barriers passed */
    pthread_mutex_t lock;
    pthread_cond_t wake;
} barrier_t;

/* One thread's working memory. */
typedef struct {
    const float **x, **y; /* (G,): input and center output row of each pair of the group */
    float **dx;           /* (G,): their input-row update buffers */
    const float **rows;   /* (K + 1,): the center row of the pair at hand, then the negatives */
    float **dn;           /* (K,): the negatives' update buffers */
    float *g;             /* (G, K + 1), padded to whole vectors: scores, then scaled gradients */
    float *label;         /* the same shape: 1 in the center column, else 0 */
    int32_t *own;         /* (batch + batch / G * K,): the entries this thread owns */
} scratch_t;

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
    float *g_out;               /* (batch,): scaled center gradient of each pair */
    float *d_neg;               /* (batch / G, K, dim) */
    double *group_loss;         /* (batch / G,) */
    scratch_t *scratch;         /* one per thread */
    double *phase_seconds;      /* 2 wall-clock totals, kept by thread 0 (may be NULL) */
    atomic_llong next;          /* step 1: the next group of the batch to take */
    barrier_t barrier;
    pthread_mutex_t gate;
} job_t;

typedef struct {
    job_t *job;
    int t;
} arg_t;

/* Rows are walked in blocks of W floats with GCC/Clang vector types (one AVX-512
 * register, or two AVX2 ones), then blocks of 4 and single floats for the rest of a row
 * (dim 100 = 6 x 16 + 4), widened to W lanes with zeros so that one code path serves all. */
#define W 16
typedef float vf __attribute__((vector_size(W * sizeof(float))));
typedef float vf4 __attribute__((vector_size(4 * sizeof(float))));
typedef float vf8 __attribute__((vector_size(8 * sizeof(float))));
typedef int32_t vi __attribute__((vector_size(W * sizeof(int32_t))));
#define INLINE static inline __attribute__((always_inline))

static inline vf ld(const float *p) { vf v; memcpy(&v, p, sizeof v); return v; }
static inline void st(float *p, vf v) { memcpy(p, &v, sizeof v); }
static inline vf4 ld4(const float *p) { vf4 v; memcpy(&v, p, sizeof v); return v; }
static inline void st4(float *p, vf4 v) { memcpy(p, &v, sizeof v); }

/* The first w floats at p (w = W, 4 or 1), zeros in the other lanes; and the way back. */
INLINE vf ldp(const float *p, int w) {
    if (w == W) return ld(p);
    if (w == 4) { /* widened in two steps: GCC 12 keeps that in registers, not one step */
        const vf8 h = __builtin_shufflevector(ld4(p), (vf4){0}, 0, 1, 2, 3, 4, 5, 6, 7);
        return __builtin_shufflevector(h, (vf8){0}, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    }
    vf v = {0};
    v[0] = *p;
    return v;
}
INLINE void stp(float *p, vf v, int w) {
    if (w == W) st(p, v);
    else if (w == 4) st4(p, __builtin_shufflevector(v, v, 0, 1, 2, 3));
    else *p = v[0];
}
static inline float hsum(vf v) {
    float s = 0.f;
    for (int i = 0; i < W; i++) s += v[i];
    return s;
}

/* Run STEP(w) for the blocks of a row of D floats, `d` being the block's first float. */
#define BLOCKS(D, STEP)                      \
    {                                        \
        int d = 0;                           \
        for (; d + W <= (D); d += W) STEP(W) \
        for (; d + 4 <= (D); d += 4) STEP(4) \
        for (; d < (D); d++) STEP(1)         \
    }

/* Rows handled per pass. The _n functions below take the row count as a constant (the
 * dispatchers switch on it) so that the compiler keeps one register per row: with a
 * variable count, the accumulators lived on the stack and cost a load and a store each. */
#define NB 8

/* sc[c] = x . rows[c] for c < n <= NB, in one pass over x. */
INLINE void dots_n(const float *x, const float *const *rows, float *sc, int D, const int n) {
    vf acc[NB];
    for (int c = 0; c < n; c++) acc[c] = (vf){0};
#define STEP(w)                                                                 \
    {                                                                           \
        const vf xv = ldp(x + d, w);                                            \
        for (int c = 0; c < n; c++) acc[c] += xv * ldp(rows[c] + d, w);         \
    }
    BLOCKS(D, STEP)
#undef STEP
    for (int c = 0; c < n; c++) sc[c] = hsum(acc[c]);
}

static void dots(const float *x, const float *const *rows, float *sc, int n, int D) {
    for (; n >= NB; n -= NB, rows += NB, sc += NB) dots_n(x, rows, sc, D, NB);
    switch (n) {
    case 1: dots_n(x, rows, sc, D, 1); break;
    case 2: dots_n(x, rows, sc, D, 2); break;
    case 3: dots_n(x, rows, sc, D, 3); break;
    case 4: dots_n(x, rows, sc, D, 4); break;
    case 5: dots_n(x, rows, sc, D, 5); break;
    case 6: dots_n(x, rows, sc, D, 6); break;
    case 7: dots_n(x, rows, sc, D, 7); break;
    }
}

/* The row updates of a group of G pairs for its negatives [c0, c0 + n), n <= NB, with
 * g the scaled gradients (G, gs): column 0 the center, 1 + c negative c. Block by block
 * across the pairs, so that these negative rows and their summed updates stay in
 * registers while each pair's rows are read once:
 *     dx_i = g_i0 y_i + sum_c g_ic neg_c   (first pass; later passes add to dx_i)
 *     dn_c = sum_i g_ic x_i                (in pair order)                         */
INLINE void updates_n(const scratch_t *s, const float *g, int gs, int G, int D, int c0, const int n,
                      const int first) {
    /* Locals: the vector stores may alias anything, so fields of s would be reloaded. */
    const float *const *xs = s->x, *const *ys = s->y, *const *negs = s->rows + 1 + c0;
    float *const *dxs = s->dx, *const *dn = s->dn + c0;
    vf nv[NB], sum[NB];
#define STEP(w)                                                                 \
    {                                                                           \
        for (int c = 0; c < n; c++) {                                           \
            nv[c] = ldp(negs[c] + d, w);                                        \
            sum[c] = (vf){0};                                                   \
        }                                                                       \
        const float *gi = g + 1 + c0;                                           \
        for (int i = 0; i < G; i++, gi += gs) {                                 \
            const vf xv = ldp(xs[i] + d, w);                                    \
            vf a = first ? gi[-1] * ldp(ys[i] + d, w) : ldp(dxs[i] + d, w);     \
            for (int c = 0; c < n; c++) {                                       \
                a += gi[c] * nv[c];                                             \
                sum[c] += gi[c] * xv;                                           \
            }                                                                   \
            stp(dxs[i] + d, a, w);                                              \
        }                                                                       \
        for (int c = 0; c < n; c++) stp(dn[c] + d, sum[c], w);                  \
    }
    BLOCKS(D, STEP)
#undef STEP
}

/* All K negatives in passes of up to NB; the first pass also does the center rows (and
 * is the only one, with no negatives, when K = 0). */
static void updates(const scratch_t *s, const float *g, int gs, int G, int D, int K) {
    int c0 = 0, first = 1;
    do {
        const int n = K - c0 < NB ? K - c0 : NB;
        switch (n * 2 + first) {
#define CASE(k)                                                          \
    case 2 * k: updates_n(s, g, gs, G, D, c0, k, 0); break;              \
    case 2 * k + 1: updates_n(s, g, gs, G, D, c0, k, 1); break;
            CASE(0) CASE(1) CASE(2) CASE(3) CASE(4) CASE(5) CASE(6) CASE(7) CASE(8)
#undef CASE
        }
        c0 += n;
        first = 0;
    } while (c0 < K);
}

/* exp(u) for u in [-87, 88], to about 1 ulp like expf but W at a time (Cephes expf:
 * u = n ln2 + r with |r| <= ln2 / 2, a degree-6 polynomial for exp(r), and 2^n built in
 * the exponent bits). */
static inline vf vexp(vf u) {
    const vf t = u * 1.44269504088896341f + 0.5f;
    vi n = __builtin_convertvector(t, vi);         /* truncates towards zero ... */
    n += (vi)(__builtin_convertvector(n, vf) > t); /* ... so take 1 (true is -1) where that rounded up */
    const vf nf = __builtin_convertvector(n, vf);
    vf r = u - nf * 0.693359375f;
    r = r - nf * -2.12194440e-4f;
    vf p = (vf){0} + 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * (r * r) + r + 1.f;
    return p * (vf)((n + 127) << 23);
}

static inline vf vsel(vi m, vf a, vf b) { return (vf)(((vi)a & m) | ((vi)b & ~m)); }

/* 1 / (1 + exp(-z)), W at a time: a call of expf per score was a tenth of the time. The
 * argument of exp is clamped where exp would leave the normal floats (the sigmoid is 0 or
 * 1 there to float precision); NaN stays NaN, so a diverging run is still seen. */
static inline vf vsigmoid(vf z) {
    vf u = -z;
    u = vsel(u > 88.f, (vf){0} + 88.f, u);
    u = vsel(u < -87.f, (vf){0} - 87.f, u);
    return 1.f / (1.f + vexp(u));
}

/* log(sigmoid(z)) without overflow. */
static inline double log_sigmoid(float z) {
    return z >= 0 ? -log1p(exp(-(double)z)) : (double)z - log1p(exp((double)z));
}

/* Rows are random accesses into tables larger than the cache: ask for a row a few pairs
 * ahead of its use (measured: 11% of the time without; 3 to 16 pairs ahead all alike). */
#define AHEAD 6
static inline void prefetch_row(const float *p, int D, int write) {
    for (int d = 0; d < D; d += 16) {
        if (write) __builtin_prefetch(p + d, 1, 3);
        else __builtin_prefetch(p + d, 0, 3);
    }
}

/* The thread that writes a row in steps 2 and 3. Any fixed function of the row gives the
 * same result; a multiplicative hash (Knuth's) scaled onto [0, T) costs two
 * multiplications where row % T cost a division. */
static inline int owner(int64_t row, int T) {
    return (int)(((uint64_t)(uint32_t)((uint64_t)row * 2654435761u) * (uint64_t)T) >> 32);
}

/* The entries e < n whose row rows[e] this thread owns, in order, into own; returns how
 * many. Branch-free: with T threads a branch here would be mispredicted 1 - 1/T of the time. */
static int owned(const int64_t *rows, int n, int t, int T, int32_t *own) {
    int k = 0;
    for (int e = 0; e < n; e++) {
        own[k] = e;
        k += owner(rows[e], T) == t;
    }
    return k;
}

/* table[rows[e]] += buf[e] for e in own[0..n), in that order (rows walked in blocks as in
 * step 1: 3% faster than the compiler's own vectorisation of the loop). */
static void apply(float *table, const int64_t *rows, const int32_t *own, int n, const float *buf, int D) {
    for (int k = 0; k < n; k++) {
        if (k + AHEAD < n) prefetch_row(table + rows[own[k + AHEAD]] * D, D, 1);
        float *restrict y = table + rows[own[k]] * D;
        const float *restrict x = buf + (size_t)own[k] * D;
#define STEP(w) stp(y + d, ldp(y + d, w) + ldp(x + d, w), w);
        BLOCKS(D, STEP)
#undef STEP
    }
}

/* table[rows[e]] += gain[e] src[src_rows[e]] for e in own[0..n), in that order. */
static void apply_scaled(float *table, const int64_t *rows, const int32_t *own, int n, const float *gain,
                         const float *src, const int64_t *src_rows, int D) {
    for (int k = 0; k < n; k++) {
        if (k + AHEAD < n) {
            prefetch_row(table + rows[own[k + AHEAD]] * D, D, 1);
            prefetch_row(src + src_rows[own[k + AHEAD]] * D, D, 0);
        }
        float *restrict y = table + rows[own[k]] * D;
        const float *restrict x = src + src_rows[own[k]] * D;
        const float a = gain[own[k]];
#define STEP(w) stp(y + d, ldp(y + d, w) + a * ldp(x + d, w), w);
        BLOCKS(D, STEP)
#undef STEP
    }
}

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ volatile("yield");
#endif
}

/* Pauses before sleeping, about 10 us here (a pause is about 25 ns). Measured on 2 cores
 * against 100 and 4000: shorter waits sleep through imbalances that a wake-up costs more
 * than (0 was 30% slower, 100 was 14% slower), longer ones burn the core that the batch
 * generation thread or another process needs (4000 was 12% slower with a 40% CPU hog). */
#define SPINS 400

static void sync(job_t *j) {
    if (j->nthreads == 1) return;
    barrier_t *b = &j->barrier;
    const unsigned phase = atomic_load_explicit(&b->phase, memory_order_acquire);
    if (atomic_fetch_add_explicit(&b->count, 1, memory_order_acq_rel) == j->nthreads - 1) {
        /* The last to arrive opens the barrier; the lock makes the wake-up race-free. */
        atomic_store_explicit(&b->count, 0, memory_order_relaxed);
        pthread_mutex_lock(&b->lock);
        atomic_store_explicit(&b->phase, phase + 1, memory_order_release);
        pthread_cond_broadcast(&b->wake);
        pthread_mutex_unlock(&b->lock);
        return;
    }
    for (int i = 0; i < SPINS; i++) {
        if (atomic_load_explicit(&b->phase, memory_order_acquire) != phase) return;
        cpu_relax();
    }
    pthread_mutex_lock(&b->lock);
    while (atomic_load_explicit(&b->phase, memory_order_acquire) == phase) pthread_cond_wait(&b->wake, &b->lock);
    pthread_mutex_unlock(&b->lock);
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

/* Groups taken from the shared counter at a time: few enough trips to its cache line,
 * small enough to even out the threads. */
#define CHUNK 4

/* Step 1 for group m of the batch starting at pair `start`; pairs up to `last` are this
 * thread's to prefetch. Returns the group's loss (0 when not measured). */
static double group(job_t *j, scratch_t *s, int64_t start, int64_t m, int64_t last, float lr, int want_loss) {
    const int D = j->dim, G = j->group, K = j->k, gs = K + 1;
    const int ng = (G * gs + W - 1) / W * W;
    const int64_t *negs = j->neg + (start / G + m) * K;
    for (int c = 0; c < K; c++) {
        s->rows[1 + c] = j->wout + negs[c] * D;
        s->dn[c] = j->d_neg + (m * K + c) * D;
    }
    double loss = 0.0;
    for (int i = 0; i < G; i++) {
        const int64_t p = start + m * G + i;
        if (p + AHEAD < last) {
            prefetch_row(j->win + j->ctx[p + AHEAD] * D, D, 0);
            prefetch_row(j->wout + j->tgt[p + AHEAD] * D, D, 0);
        }
        s->x[i] = j->win + j->ctx[p] * D;
        s->y[i] = s->rows[0] = j->wout + j->tgt[p] * D;
        s->dx[i] = j->d_in + (p - start) * D;
        float *sc = s->g + (size_t)i * gs;
        dots(s->x[i], s->rows, sc, gs, D);
        if (want_loss) {
            loss -= log_sigmoid(sc[0]);
            for (int c = 1; c <= K; c++) loss -= log_sigmoid(-sc[c]);
        }
    }
    /* Scores to scaled gradients lr (label - sigmoid), the whole group at once. */
    for (int e = 0; e < ng; e += W) st(s->g + e, lr * (ld(s->label + e) - vsigmoid(ld(s->g + e))));
    for (int i = 0; i < G; i++) j->g_out[m * G + i] = s->g[(size_t)i * gs];
    updates(s, s->g, gs, G, D, K);
    return loss;
}

static void run(job_t *j, int t) {
    double mark = (t == 0 && j->phase_seconds) ? now() : 0.0;
    const int D = j->dim, G = j->group, K = j->k, T = j->nthreads;
    const int64_t P = j->n_pairs;
    scratch_t *s = &j->scratch[t];
    for (int64_t start = 0, b = 0; start < P; start += j->batch, b++) {
        const int64_t stop = start + j->batch < P ? start + j->batch : P;
        const int64_t groups = (stop - start) / G;
        const int want_loss = j->measure[b];
        /* Step 1: groups from the shared counter, CHUNK at a time. */
        for (;;) {
            const int64_t m0 = atomic_fetch_add_explicit(&j->next, CHUNK, memory_order_relaxed);
            if (m0 >= groups) break;
            const int64_t m1 = m0 + CHUNK < groups ? m0 + CHUNK : groups;
            for (int64_t m = m0; m < m1; m++)
                j->group_loss[m] = group(j, s, start, m, start + m1 * G, j->lrs[b], want_loss);
        }
        sync(j);
        lap(j, t, 0, &mark);
        /* Step 2: output rows, centers in pair order then negatives in group order. */
        const int bs = (int)(stop - start), ne = (int)groups * K;
        const int64_t *tgt = j->tgt + start, *ctx = j->ctx + start, *neg = j->neg + start / G * K;
        int n = owned(tgt, bs, t, T, s->own);
        apply_scaled(j->wout, tgt, s->own, n, j->g_out, j->win, ctx, D);
        n = owned(neg, ne, t, T, s->own);
        apply(j->wout, neg, s->own, n, j->d_neg, D);
        sync(j);
        /* Step 3: input rows in pair order. */
        n = owned(ctx, bs, t, T, s->own);
        apply(j->win, ctx, s->own, n, j->d_in, D);
        if (t == 0) {
            atomic_store_explicit(&j->next, 0, memory_order_relaxed); /* nobody takes groups until the barrier */
            if (want_loss) {
                double loss = 0.0;
                for (int64_t m = 0; m < groups; m++) loss += j->group_loss[m];
                j->losses[b] = loss;
            }
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

/* Allocates a thread's scratch in one block (freed through s->x); returns 0 or -1. */
static int scratch_init(scratch_t *s, int G, int K, int batch) {
    const size_t ng = ((size_t)G * (K + 1) + W - 1) / W * W, own = (size_t)batch + (size_t)(batch / G) * K;
    char *p = malloc(sizeof(float *) * (3 * (size_t)G + 2 * (size_t)K + 1) + sizeof(float) * 2 * ng + sizeof(int32_t) * own);
    if (!p) return -1;
    s->x = (const float **)p; p += sizeof(float *) * G;
    s->y = (const float **)p; p += sizeof(float *) * G;
    s->dx = (float **)p; p += sizeof(float *) * G;
    s->rows = (const float **)p; p += sizeof(float *) * (K + 1);
    s->dn = (float **)p; p += sizeof(float *) * K;
    s->g = (float *)p; p += sizeof(float) * ng;
    s->label = (float *)p; p += sizeof(float) * ng;
    s->own = (int32_t *)p;
    for (size_t e = 0; e < ng; e++) {
        s->g[e] = 0.f; /* the padding is read (and its result unused) */
        s->label[e] = e % (size_t)(K + 1) == 0;
    }
    return 0;
}

/* Train on pairs [0, n_pairs) in batches of `batch` pairs (a multiple of `group`; n_pairs
 * too). `phase_seconds`, when given, accumulates the wall time of step 1 and of steps 2-3.
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
    j.nthreads = nthreads < 1 ? 1 : nthreads > 64 ? 64 : nthreads;
    atomic_init(&j.next, 0);
    atomic_init(&j.barrier.count, 0);
    atomic_init(&j.barrier.phase, 0);
    pthread_mutex_init(&j.gate, NULL);
    pthread_mutex_init(&j.barrier.lock, NULL);
    pthread_cond_init(&j.barrier.wake, NULL);
    const int64_t m = batch / group;
    j.d_in = malloc(sizeof(float) * (size_t)batch * dim);
    j.g_out = malloc(sizeof(float) * (size_t)batch);
    j.d_neg = malloc(sizeof(float) * ((size_t)m * k * dim + 1)); /* + 1: k may be 0 */
    j.group_loss = malloc(sizeof(double) * (size_t)m);
    const int slots = j.nthreads; /* the team may come out smaller */
    j.scratch = calloc((size_t)slots, sizeof(scratch_t));
    int rc = 0;
    if (!j.d_in || !j.g_out || !j.d_neg || !j.group_loss || !j.scratch) { rc = -1; goto done; }
    for (int t = 0; t < slots; t++)
        if (scratch_init(&j.scratch[t], group, k, batch) != 0) { rc = -1; goto done; }
    if (j.nthreads == 1) {
        run(&j, 0);
        goto done;
    }
    /* Threads wait on `gate` until the team size is final, so that a thread that could
       not be created shrinks the team instead of leaving a barrier that never opens. */
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
    pthread_mutex_unlock(&j.gate);
    run(&j, 0);
    for (int t = 1; t < team; t++) pthread_join(threads[t], NULL);
done:
    if (j.scratch)
        for (int t = 0; t < slots; t++) free((void *)j.scratch[t].x);
    free(j.scratch);
    pthread_cond_destroy(&j.barrier.wake);
    pthread_mutex_destroy(&j.barrier.lock);
    pthread_mutex_destroy(&j.gate);
    free(j.d_in); free(j.g_out); free(j.d_neg); free(j.group_loss);
    return rc;
}

/* Skip-gram pairs of a chunk with word2vec's dynamic window, in w2v.batching.window_pairs's
 * order: for each offset o = 1..window, the pairs (i, i + o) of the positions whose window
 * reach[i] >= o, then the pairs (i, i - o). The same pairs as the torch version, about 10x
 * faster (one branch-free pass per offset and side instead of masks, nonzero and gathers).
 * centers and contexts hold 2 * min(window, n - 1) * n entries; returns the pair count. */
int64_t w2v_window_pairs(const int64_t *tok, const int64_t *reach, int64_t n, int window,
                         int64_t *centers, int64_t *contexts) {
    int64_t p = 0;
    int64_t top = window < n - 1 ? window : n - 1;
    for (int64_t o = 1; o <= top; o++) {
        for (int64_t i = 0; i + o < n; i++) { /* i sees i + o */
            centers[p] = tok[i];
            contexts[p] = tok[i + o];
            p += reach[i] >= o;
        }
        for (int64_t i = o; i < n; i++) { /* i sees i - o */
            centers[p] = tok[i];
            contexts[p] = tok[i - o];
            p += reach[i] >= o;
        }
    }
    return p;
}
