/* The default tokenizer ([^\W\d_]+, optionally lowercased) and the provisional word ids of
 * w2v/token_cache.py in C, for the runs of text that are ASCII; the rest is Python's.
 *
 * Text is UTF-8. It is cut into runs of bytes that may belong to a token, or touch one through
 * lowercasing: ASCII letters, the ASCII characters Python's str.lower() skips when it decides
 * on a final sigma (' . : ^ `) and every byte of a non-ASCII character. The bytes between runs
 * are ASCII characters that are neither letters nor case-ignorable, so they end every token
 * and every final-sigma context: each run can be tokenized alone. A run of ASCII bytes is
 * tokenized here (its letter runs, A-Z lowercased when asked); a run holding a non-ASCII byte
 * goes to Python's regex (w2v/native_tokens.py), whose tokens come back in a blob. Each new
 * word gets the next id, in the order the words are met, as TypeIds does in Python.
 *
 * Words are kept in one byte arena with an offset per id; an open-addressing table (linear
 * probing, at most half full) maps them to ids: ~20 bytes a word beside its bytes.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

enum { BOUNDARY = 0, LETTER = 1, IGNORABLE = 2, WIDE = 3 };

/* The kind of each byte: 1 A-Z a-z, 2 ' . : ^ `, 3 0x80-0xff, 0 the other ASCII bytes. */
static const uint8_t kinds[256] = {
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0,
    0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 2, 0,
    2, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0,
    3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3,
    3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3,
    3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3,
    3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3,
};

#define kind_of(c) (kinds[(uint8_t)(c)])

typedef struct {
    uint64_t *slot;  /* the word's hash << 32 | its id + 1; 0: empty */
    uint64_t mask;   /* slots - 1 */
    uint64_t n;      /* words */
    uint64_t *off;   /* word i is bytes[off[i] .. off[i + 1]) */
    int64_t *count;  /* how often word i was met */
    uint64_t off_cap;
    uint8_t *bytes;
    uint64_t used, bytes_cap;
} table;

void *w2v_tok_new(void) {
    table *t = calloc(1, sizeof(table));
    if (!t) return NULL;
    t->mask = (1u << 16) - 1;
    t->slot = calloc(t->mask + 1, sizeof(uint64_t));
    t->off_cap = 1 << 15;
    t->off = malloc(t->off_cap * sizeof(uint64_t));
    t->count = malloc(t->off_cap * sizeof(int64_t));
    t->bytes_cap = 1 << 18;
    t->bytes = malloc(t->bytes_cap);
    if (!t->slot || !t->off || !t->count || !t->bytes) {
        free(t->slot), free(t->off), free(t->count), free(t->bytes), free(t);
        return NULL;
    }
    t->off[0] = 0;
    return t;
}

void w2v_tok_free(void *p) {
    table *t = p;
    if (!t) return;
    free(t->slot), free(t->off), free(t->count), free(t->bytes), free(t);
}

int64_t w2v_tok_size(void *p) { return (int64_t)((table *)p)->n; }

static int grow_slots(table *t) {
    const uint64_t size = 2 * (t->mask + 1);
    uint64_t *slot = calloc(size, sizeof(uint64_t));
    if (!slot) return -1;
    for (uint64_t i = 0; i <= t->mask; i++) {
        if (!t->slot[i]) continue;
        uint64_t j = (t->slot[i] >> 32) & (size - 1);
        while (slot[j]) j = (j + 1) & (size - 1);
        slot[j] = t->slot[i];
    }
    free(t->slot);
    t->slot = slot, t->mask = size - 1;
    return 0;
}

/* Bytes p[0 .. n), n <= 8, as the low bytes of a word. */
static inline uint64_t tail(const uint8_t *p, int64_t n) {
    uint64_t v = 0;
    for (int64_t k = 0; k < n; k++) v |= (uint64_t)p[k] << (8 * k);
    return v;
}

/* A 32-bit hash of w[0 .. len), 8 bytes a step (splitmix64's mixing). */
static inline uint64_t tag_of(const uint8_t *w, int64_t len) {
    uint64_t h = 0x9e3779b97f4a7c15ull ^ (uint64_t)len, v;
    int64_t i = 0;
    for (; i + 8 <= len; i += 8) {
        memcpy(&v, w + i, 8);
        h = (h ^ v) * 0xbf58476d1ce4e5b9ull;
        h ^= h >> 31;
    }
    h = (h ^ tail(w + i, len - i)) * 0x94d049bb133111ebull;
    h ^= h >> 29;
    return (h ^ (h >> 32)) & 0xffffffffull;
}

static inline int same(const uint8_t *a, const uint8_t *b, int64_t len) {
    uint64_t x, y;
    int64_t i = 0;
    for (; i + 8 <= len; i += 8) {
        memcpy(&x, a + i, 8), memcpy(&y, b + i, 8);
        if (x != y) return 0;
    }
    return tail(a + i, len - i) == tail(b + i, len - i);
}

/* The id of the word w[0 .. len), a new one if it is new; -1: out of memory. */
static int64_t id_of_exact(table *t, const uint8_t *w, int64_t len) {
    const uint64_t tag = tag_of(w, len);
    uint64_t j = tag & t->mask;
    for (; t->slot[j]; j = (j + 1) & t->mask) {
        if (t->slot[j] >> 32 != tag) continue;
        const uint64_t id = (t->slot[j] & 0xffffffffull) - 1, start = t->off[id];
        if ((int64_t)(t->off[id + 1] - start) == len && same(t->bytes + start, w, len)) {
            t->count[id]++;
            return (int64_t)id;
        }
    }
    if (t->n >= UINT32_MAX - 1) return -1;
    if (t->n + 2 > t->off_cap) {
        uint64_t *off = realloc(t->off, 2 * t->off_cap * sizeof(uint64_t));
        if (!off) return -1;
        t->off = off;
        int64_t *count = realloc(t->count, 2 * t->off_cap * sizeof(int64_t));
        if (!count) return -1;
        t->count = count, t->off_cap *= 2;
    }
    if (t->used + (uint64_t)len > t->bytes_cap) {
        uint64_t cap = 2 * t->bytes_cap;
        while (cap < t->used + (uint64_t)len) cap *= 2;
        uint8_t *bytes = realloc(t->bytes, cap);
        if (!bytes) return -1;
        t->bytes = bytes, t->bytes_cap = cap;
    }
    memcpy(t->bytes + t->used, w, (size_t)len);
    t->used += len;
    const uint64_t id = t->n++;
    t->off[t->n] = t->used;
    t->count[id] = 1;
    t->slot[j] = tag << 32 | (id + 1);
    if (2 * t->n > t->mask && grow_slots(t) != 0) return -1;
    return (int64_t)id;
}

/* The id of the word s[0 .. len) with A-Z lowercased when asked. */
static int64_t id_of(table *t, const uint8_t *s, int64_t len, int lowercase) {
    if (!lowercase) return id_of_exact(t, s, len);
    uint8_t small[64];
    uint8_t *w = len <= 64 ? small : malloc((size_t)len);
    if (!w) return -1;
    for (int64_t i = 0; i < len; i++) w[i] = s[i] >= 'A' && s[i] <= 'Z' ? s[i] + 32 : s[i];
    const int64_t id = id_of_exact(t, w, len);
    if (w != small) free(w);
    return id;
}

/* The end of the run that starts at s[i] (a non-boundary byte), and whether it holds a non-ASCII byte. */
static inline int64_t run_end(const uint8_t *s, int64_t len, int64_t i, int *wide) {
    *wide = 0;
    for (; i < len; i++) {
        const uint8_t k = kind_of(s[i]);
        if (k == BOUNDARY) break;
        if (k == WIDE) *wide = 1;
    }
    return i;
}

/* The next run of s from *i on: it starts at *start and ends at the new *i; *wide says whether
 * it holds a non-ASCII byte. 0 when no run is left. The one definition of a run, for both
 * w2v_tok_wide_runs and w2v_tok_encode, which must agree on it. */
static inline int next_run(const uint8_t *s, int64_t len, int64_t *i, int64_t *start, int *wide) {
    while (*i < len && kind_of(s[*i]) == BOUNDARY) (*i)++;
    if (*i >= len) return 0;
    *start = *i;
    *i = run_end(s, len, *i, wide);
    return 1;
}

/* Writes the runs of s that hold a non-ASCII byte into dst, each followed by '\n' (dst holds
 * len + 1 bytes); returns the bytes written. */
int64_t w2v_tok_wide_runs(const uint8_t *s, int64_t len, uint8_t *dst) {
    int64_t i = 0, start, k = 0;
    int wide;
    while (next_run(s, len, &i, &start, &wide)) {
        if (wide) {
            memcpy(dst + k, s + start, (size_t)(i - start));
            k += i - start;
            dst[k++] = '\n';
        }
    }
    return k;
}

/* The ids of the tokens of s, in order, into out (cap ids at most). blob holds the tokens of
 * the runs w2v_tok_wide_runs wrote, in order: words separated by ' ', each run's closed by a
 * "\n" word. Returns the number of ids, -1 when out of memory, -2 when out or blob is too short. */
int64_t w2v_tok_encode(void *p, const uint8_t *s, int64_t len, int lowercase, const uint8_t *blob, int64_t blob_len,
                       uint32_t *out, int64_t cap) {
    table *t = p;
    int64_t i = 0, start, k = 0, b = 0;
    int wide;
    while (next_run(s, len, &i, &start, &wide)) {
        if (wide) {
            for (;;) {
                int64_t e = b;
                while (e < blob_len && blob[e] != ' ') e++;
                if (e == b) return -2;
                const int closes = e - b == 1 && blob[b] == '\n';
                if (!closes) {
                    if (k >= cap) return -2;
                    const int64_t id = id_of(t, blob + b, e - b, 0);
                    if (id < 0) return -1;
                    out[k++] = (uint32_t)id;
                }
                b = e + 1;
                if (closes) break;
            }
        } else {
            for (int64_t j = start; j < i;) {
                if (kind_of(s[j]) != LETTER) {
                    j++;
                    continue;
                }
                int64_t e = j;
                while (e < i && kind_of(s[e]) == LETTER) e++;
                if (k >= cap) return -2;
                const int64_t id = id_of(t, s + j, e - j, lowercase);
                if (id < 0) return -1;
                out[k++] = (uint32_t)id;
                j = e;
            }
        }
    }
    return k;
}

/* The ids of the n words of blob, separated by single ' ', as they are; -1: out of memory. */
int64_t w2v_tok_words(void *p, const uint8_t *blob, int64_t blob_len, uint32_t *out, int64_t n) {
    table *t = p;
    int64_t b = 0;
    for (int64_t k = 0; k < n; k++) {
        int64_t e = b;
        while (e < blob_len && blob[e] != ' ') e++;
        const int64_t id = id_of(t, blob + b, e - b, 0);
        if (id < 0) return -1;
        out[k] = (uint32_t)id;
        b = e + 1;
    }
    return n;
}

/* The count of each word into out (size words). */
void w2v_tok_counts(void *p, int64_t *out) {
    table *t = p;
    memcpy(out, t->count, t->n * sizeof(int64_t));
}

/* Bytes of the words first.. joined by '\n' (w2v_tok_dump's size). */
int64_t w2v_tok_dump_size(void *p, int64_t first) {
    table *t = p;
    return (int64_t)(t->used - t->off[first] + (t->n - (uint64_t)first));
}

void w2v_tok_dump(void *p, int64_t first, uint8_t *dst) {
    table *t = p;
    int64_t k = 0;
    for (uint64_t i = (uint64_t)first; i < t->n; i++) {
        const uint64_t len = t->off[i + 1] - t->off[i];
        memcpy(dst + k, t->bytes + t->off[i], len);
        k += (int64_t)len;
        dst[k++] = '\n';
    }
}
