/* Float tables as %.8e text lines, as w2v/float_text.py's numpy formatter writes them.
 *
 * The same float64 operations on each value give the same characters: the mantissa is
 * m = rint(|x| * 10^(8 - e)) for the exponent e that puts it in [1e8, 1e9) (the powers of
 * ten are the caller's table). The search for e starts from the binary exponent, at most one
 * below floor(log10 |x|), and steps up; numpy's formatter starts from log10 and may step
 * either way. Both stop at the same e: two exponents could both qualify only for a value
 * within 5e-9 (relative) below a power of ten, where log10 is exact enough to start at the
 * lower one, which is also where this search stops first. One pass over the values, no
 * (n, D) arrays, no log10 call. Built without reassociation or contraction (w2v.native.EXACT).
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

static const char PAIRS[] =
    "00010203040506070809101112131415161718192021222324252627282930313233343536373839"
    "40414243444546474849505152535455565758596061626364656667686970717273747576777879"
    "8081828384858687888990919293949596979899";

/* One row of dim finite values as "-1.23456789e-01 2.50000000e+00\n" at p; returns the end. */
static char *format_row(const float *row, int64_t dim, const double *pow10, int zero, char *p) {
    for (int64_t c = 0; c < dim; c++) {
        const float v = row[c];
        const double a = fabs((double)v);
        int e = 0;
        double m = 0.0;
        if (a > 0) {
            uint64_t bits;
            memcpy(&bits, &a, sizeof bits);
            const int e2 = (int)(bits >> 52) - 1023; /* a in [2^e2, 2^(e2 + 1)): every float32 is a normal double */
            e = (int)floor(e2 * 0.30102999566398120);
            m = rint(a * pow10[zero + 8 - e]);
            for (int pass = 0; pass < 2; pass++) { /* log10 may be off by one next to a power of ten; rounding may carry */
                const int over = m >= 1e9, under = m < 1e8;
                if (!over && !under) break;
                e += over - under;
                m = rint(a * pow10[zero + 8 - e]);
            }
        }
        uint32_t digits = (uint32_t)m;
        if (signbit(v)) *p++ = '-';
        *p++ = (char)('0' + digits / 100000000u);
        *p++ = '.';
        digits %= 100000000u;
        memcpy(p, PAIRS + 2 * (digits / 1000000u), 2);
        memcpy(p + 2, PAIRS + 2 * (digits / 10000u % 100u), 2);
        memcpy(p + 4, PAIRS + 2 * (digits / 100u % 100u), 2);
        memcpy(p + 6, PAIRS + 2 * (digits % 100u), 2);
        p += 8;
        *p++ = 'e';
        *p++ = e < 0 ? '-' : '+';
        const int ae = e < 0 ? -e : e;
        memcpy(p, PAIRS + 2 * (ae > 99 ? 99 : ae), 2);
        p += 2;
        *p++ = c + 1 < dim ? ' ' : '\n';
    }
    if (dim == 0) *p++ = '\n';
    return p;
}

/* Write the n x dim finite values of x as text lines ("-1.23456789e-01 2.50000000e+00\n")
 * into out (room for n * dim * 16 bytes), the offset just past each line's newline into
 * ends; pow10[zero + k] is 10^k. Returns the bytes written. */
int64_t w2v_scientific(const float *x, int64_t n, int64_t dim, const double *pow10, int zero, char *out,
                       int64_t *ends) {
    char *p = out;
    for (int64_t r = 0; r < n; r++) {
        p = format_row(x + r * dim, dim, pow10, zero, p);
        ends[r] = p - out;
    }
    return p - out;
}

/* The word2vec text format's lines: word r (words[word_ends[r - 1] .. word_ends[r]), UTF-8),
 * a space, then row r of x as w2v_scientific writes it, into out (room for the words' bytes
 * plus n * (dim * 16 + 1)). Returns the bytes written. */
int64_t w2v_word2vec_lines(const float *x, int64_t n, int64_t dim, const double *pow10, int zero, const char *words,
                           const int64_t *word_ends, char *out) {
    char *p = out;
    for (int64_t r = 0; r < n; r++) {
        const int64_t from = r ? word_ends[r - 1] : 0;
        memcpy(p, words + from, (size_t)(word_ends[r] - from));
        p += word_ends[r] - from;
        *p++ = ' ';
        p = format_row(x + r * dim, dim, pow10, zero, p);
    }
    return p - out;
}
