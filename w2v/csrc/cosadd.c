/* 3CosAdd answers for many analogy questions, from the products G of their words with a tile
 * of the table (w2v/cosadd.py): question q scores word v as
 *
 *     s = (G[b_q][v] - G[a_q][v]) + G[c_q][v]
 *
 * in float32, in that order (the same IEEE operations as torch's sub_ then add_, so the same
 * bits: this file is built without -fassociative-math and without contraction), and keeps
 * its k best words, its own three left out. Nothing is written per score: the scores are
 * compared with the question's k-th best as they are formed, W at a time, and the few that
 * pass are inserted into its sorted list. The tile's words are walked SUB at a time for all
 * questions, so the rows of G being read stay in the cache while the questions that share
 * them (a section of questions-words.txt reuses a few dozen words) pass over them.
 */
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#if defined(__AVX512F__) || defined(__AVX__)
#include <immintrin.h>
#endif

#define W 16
typedef float vf __attribute__((vector_size(W * sizeof(float))));

static inline vf ld(const float *p) { vf v; memcpy(&v, p, sizeof v); return v; }

/* Whether any lane of a is greater than f: one mask instruction where the CPU has them. */
static inline int any_above(vf a, float f) {
#if defined(__AVX512F__)
    __m512 x;
    memcpy(&x, &a, sizeof x);
    return _mm512_cmp_ps_mask(x, _mm512_set1_ps(f), _CMP_GT_OQ) != 0;
#elif defined(__AVX__)
    __m256 lo, hi;
    memcpy(&lo, &a, sizeof lo);
    memcpy(&hi, (const char *)&a + sizeof lo, sizeof hi);
    const __m256 ff = _mm256_set1_ps(f);
    return (_mm256_movemask_ps(_mm256_cmp_ps(lo, ff, _CMP_GT_OQ)) | _mm256_movemask_ps(_mm256_cmp_ps(hi, ff, _CMP_GT_OQ))) != 0;
#else
    int any = 0;
    for (int e = 0; e < W; e++) any |= a[e] > f;
    return any;
#endif
}

/* Words of the tile scored for every question before the next ones (SUB x distinct words x
 * 4 bytes of G: 8 MB for 1,000 words, within a last-level cache). */
#define SUB 2048

typedef struct {
    const float *g;                       /* (m, t) row-major */
    int64_t t;                            /* words in the tile */
    const int64_t *ra, *rb, *rc;          /* (nq,) each question's rows of g */
    const int64_t *own;                   /* (nq, 3) each question's own word ids */
    int64_t first;                        /* id of the tile's first word */
    int64_t nq;
    int k;
    float *vals;                          /* (nq, k) best scores so far, descending */
    int64_t *ids;                         /* (nq, k) their word ids (-1: none yet) */
    int nthreads;
} job_t;

typedef struct {
    job_t *job;
    int64_t q0, q1;
} part_t;

/* Insert score s of word id into question q's sorted list unless it is one of its own. */
static inline void insert(job_t *j, int64_t q, float s, int64_t id) {
    const int64_t *own = j->own + 3 * q;
    if (id == own[0] || id == own[1] || id == own[2]) return;
    float *v = j->vals + q * j->k;
    int64_t *i = j->ids + q * j->k;
    int p = j->k - 1;
    if (!(s > v[p])) return;
    while (p > 0 && s > v[p - 1]) { /* ties keep the earlier word first */
        v[p] = v[p - 1];
        i[p] = i[p - 1];
        p--;
    }
    v[p] = s;
    i[p] = id;
}

static void score(job_t *j, int64_t q, int64_t v0, int64_t v1) {
    const float *ga = j->g + j->ra[q] * j->t, *gb = j->g + j->rb[q] * j->t, *gc = j->g + j->rc[q] * j->t;
    float *best = j->vals + q * j->k;
    int64_t v = v0;
    for (; v + W <= v1; v += W) {
        const vf s = (ld(gb + v) - ld(ga + v)) + ld(gc + v);
        if (!any_above(s, best[j->k - 1])) continue;
        for (int e = 0; e < W; e++)
            if (s[e] > best[j->k - 1]) insert(j, q, s[e], j->first + v + e);
    }
    for (; v < v1; v++) {
        const float s = (gb[v] - ga[v]) + gc[v];
        if (s > best[j->k - 1]) insert(j, q, s, j->first + v);
    }
}

static void *run(void *arg) {
    part_t *p = (part_t *)arg;
    job_t *j = p->job;
    for (int64_t v0 = 0; v0 < j->t; v0 += SUB) {
        const int64_t v1 = v0 + SUB < j->t ? v0 + SUB : j->t;
        for (int64_t q = p->q0; q < p->q1; q++) score(j, q, v0, v1);
    }
    return NULL;
}

/* Merge the tile's words into each question's k best (vals, ids: (nq, k), sorted descending,
 * -inf and -1 where empty), on up to nthreads threads (questions split between them). */
void w2v_cosadd_tile(const float *g, int64_t t, const int64_t *ra, const int64_t *rb, const int64_t *rc,
                     const int64_t *own, int64_t first, int64_t nq, int k, float *vals, int64_t *ids,
                     int nthreads) {
    job_t j = {g, t, ra, rb, rc, own, first, nq, k, vals, ids, nthreads};
    if (k <= 0 || nq <= 0 || t <= 0) return;
    int n = nthreads < 1 ? 1 : nthreads > 64 ? 64 : nthreads;
    if (n > nq) n = (int)nq;
    part_t parts[64];
    pthread_t threads[64];
    int started = 0;
    for (int i = 0; i < n; i++) parts[i] = (part_t){&j, nq * i / n, nq * (i + 1) / n};
    for (int i = 1; i < n; i++) {
        if (pthread_create(&threads[i], NULL, run, &parts[i]) != 0) break;
        started = i;
    }
    /* a thread that could not be created leaves its questions to this one */
    for (int i = started + 1; i < n; i++) run(&parts[i]);
    run(&parts[0]);
    for (int i = 1; i <= started; i++) pthread_join(threads[i], NULL);
}
