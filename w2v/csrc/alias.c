/* Vose's alias table (w2v/sampling.py's alias_table) in C: the same steps in the same order,
 * so the same table bit for bit, without a Python loop over the vocabulary (3M words: ~4 s
 * in Python). Built without reassociation or contraction (w2v.native.EXACT).
 */
#include <stdint.h>
#include <stdlib.h>

/* scaled: (n,) probabilities times n, consumed; accept: (n,) ones; alias: (n,) 0..n-1.
 * Returns 0, or -1 when the work lists cannot be allocated. */
int w2v_alias_table(double *scaled, int64_t n, double *accept, int64_t *alias) {
    int64_t *small = malloc(sizeof(int64_t) * (n > 0 ? n : 1)), *large = malloc(sizeof(int64_t) * (n > 0 ? n : 1));
    if (!small || !large) {
        free(small);
        free(large);
        return -1;
    }
    int64_t ns = 0, nl = 0;
    for (int64_t i = 0; i < n; i++) {
        if (scaled[i] < 1.0) small[ns++] = i;
        else large[nl++] = i;
    }
    while (ns > 0 && nl > 0) {
        const int64_t s = small[--ns], l = large[--nl];
        accept[s] = scaled[s];
        alias[s] = l;
        scaled[l] -= 1.0 - scaled[s];
        if (scaled[l] < 1.0) small[ns++] = l;
        else large[nl++] = l;
    }
    free(small);
    free(large);
    return 0;
}
