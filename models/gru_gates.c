/* The element-wise part of one GRU step, for models/fast_rnn.py's inference path (loaded by models/native.py).

   torch runs it as five passes over a [rows, 4H] block (two sigmoids, the r-product, 2s - 1, the lerp), each
   sigmoid through an exp accurate to 1 ulp; here it is one pass, with an exp within 2 ulp (Cephes' expf
   polynomial after a range reduction) that the compiler vectorises. Each child reads its parent's row of the
   recurrent product, so the product runs once per parent (siblings share it). Probabilities move by less than
   1e-6 (tests/test_speed.py). Plain C, no headers but the standard ones, so that any C compiler builds it in
   a fraction of a second. */
#include <stdint.h>
#include <string.h>

static inline float exp_approx(float x) {
    x = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x);  /* the float range; NaN passes through as NaN */
    float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;  /* round(x / ln 2) */
    float r = x - n * 0.693359375f;  /* x - n ln 2, with ln 2 in two parts */
    r = r - n * -2.12194440e-4f;
    float p = 1.9875691500e-4f;  /* exp(r) on [-ln 2 / 2, ln 2 / 2] */
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    int32_t bits = ((int32_t)n + 127) << 23;  /* 2^n */
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

static inline float sigmoid(float x) { return 1.0f / (1.0f + exp_approx(-x)); }

enum { CHUNK = 64 };  /* hidden units at a time: r and z wait on the stack for the n pass */

/* The states of `rows` children, each one letter on from its parent (a prefix one letter shorter): parent_states
   [P, H] the parents' states, recurrent [P, 3H] their W_hr h, W_hz h, 2 W_hn h (no biases; computed once per parent,
   shared by its children); slot [rows] each child's parent, first_slot..first_slot + P - 1; letter [rows] each child's
   row of table [letters, 4H], its input terms with the biases (r, z; 2 b_hn; 2 (W_in x + b_in)). Writes the new
   states to out [rows, H]. All arrays contiguous. tanh(x) is 2 sigmoid(2x) - 1, the 2 folded into the n gate's
   weights. */
void gru_children(const float *restrict recurrent, const float *restrict parent_states, const int64_t *restrict slot,
                  int64_t first_slot, const float *restrict table, const int64_t *restrict letter,
                  float *restrict out, int64_t rows, int64_t h) {
    float r[CHUNK], z[CHUNK];
    for (int64_t i = 0; i < rows; i++) {
        const float *restrict g = recurrent + (slot[i] - first_slot) * 3 * h;
        const float *restrict p = parent_states + (slot[i] - first_slot) * h;
        const float *restrict x = table + letter[i] * 4 * h;
        float *restrict o = out + i * h;
        for (int64_t j0 = 0; j0 < h; j0 += CHUNK) {
            int64_t m = h - j0 < CHUNK ? h - j0 : CHUNK;
            for (int64_t j = 0; j < m; j++) {
                r[j] = sigmoid(g[j0 + j] + x[j0 + j]);
                z[j] = sigmoid(g[h + j0 + j] + x[h + j0 + j]);
            }
            for (int64_t j = 0; j < m; j++) {  /* n, then h' = n + z (h - n) */
                float n = 2.0f * sigmoid(x[3 * h + j0 + j] + r[j] * (g[2 * h + j0 + j] + x[2 * h + j0 + j])) - 1.0f;
                o[j0 + j] = n + z[j] * (p[j0 + j] - n);
            }
        }
    }
}
