/*
 * The sequential part of recurrent layers, for seqcast._native (binding.py, stack.py, step.py).
 *
 * A recurrent layer is two kinds of work: products over all time steps at once (the input
 * projection, the weight gradients), which PyTorch does well as a few large matrix products,
 * and the recurrence itself, a chain of tiny (B, H) x (H, G) products that must run one step
 * after another. On a CPU the chain costs far more in per-operation overhead than in
 * arithmetic when PyTorch runs it step by step. This file runs the whole chain of one layer
 * and direction in one call: tanh RNN, GRU and LSTM, forward and backward. It also has the
 * output layer and loss of the compiled training step, and a one-pass Adam.
 *
 * Layout: a sequence argument is a float32 array with time step t of row b at
 * `p + t * step + b * ld`. A negative `step` (pointer at the last step) runs a layer backwards
 * in time; slicing the rows gives a thread its share of a batch.
 *
 * The small products use an AVX2/FMA kernel where the CPU has one (checked at run time), plain
 * C otherwise. Results are deterministic: the summation order depends only on the shapes.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define SEQ_X86 1
#endif

typedef long long index_t;

/* ---------------------------------------------------------------- small dense kernels */

/* C[r, 0:n] = init + A[r, 0:k] @ M[0:k, 0:n] for r < rows, where init is the row vector
 * `init` (n,) when given, else C's own row (an accumulation). A[r, i] is at a[r·lda + i·ka]
 * (ka = 1 for a row-major A, lda = 1 for a transposed one); M has row stride n (a multiple
 * of 8); C row stride ldc. */
static void gemm_plain(int rows, int k, int n, const float *a, index_t lda, index_t ka,
                       const float *m, float *c, index_t ldc, const float *init) {
    for (int r = 0; r < rows; r++) {
        float *cr = c + r * ldc;
        const float *ar = a + r * lda;
        if (init) memcpy(cr, init, (size_t)n * sizeof(float));
        for (int i = 0; i < k; i++) {
            const float v = ar[i * ka];
            const float *mi = m + (index_t)i * n;
            for (int j = 0; j < n; j++) cr[j] += v * mi[j];
        }
    }
}

static void tanh_plain(float *x, index_t count) {
    for (index_t i = 0; i < count; i++) x[i] = tanhf(x[i]);
}

static float sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }

/* ---------------------------------------------------------------- one step's elementwise part
 *
 * These read and write the layer's tensors in place: a step of a sequence for a block of rows
 * is a pointer and a row stride (`ld`). Only the pre-activations and the gradients with
 * respect to them live in scratch, gate by gate with each gate padded to hp columns (hp = h
 * rounded up to 8, the padding zero). */

/* LSTM step forward for `rows` rows: pre (rows, 4·hp) holds the gate pre-activations (i, f,
 * g, o) (the vector kernel activates them in place); writes c_t = σ(f)·c_{t-1} + σ(i)·tanh(g)
 * to c, h_t = σ(o)·tanh(c_t) to out and, when act is given, the activated gates (rows, 4h) to
 * act. c_prev NULL: c_{t-1} = 0 (c_prev may be c itself). */
static void lstm_forward_plain(int rows, int h, int hp, float *pre, float *act,
                               index_t act_ld, const float *c_prev, index_t cp_ld, float *c,
                               index_t c_ld, float *out, index_t out_ld) {
    for (int r = 0; r < rows; r++) {
        const float *a = pre + (index_t)r * 4 * hp;
        for (int j = 0; j < h; j++) {
            const float i = sigmoid(a[j]), f = sigmoid(a[hp + j]), g = tanhf(a[2 * hp + j]);
            const float o = sigmoid(a[3 * hp + j]);
            const float cell = f * (c_prev ? c_prev[r * cp_ld + j] : 0.0f) + i * g;
            c[r * c_ld + j] = cell;
            out[r * out_ld + j] = o * tanhf(cell);
            if (act) {
                float *ar = act + r * act_ld;
                ar[j] = i, ar[h + j] = f, ar[2 * h + j] = g, ar[3 * h + j] = o;
            }
        }
    }
}

/* tanh RNN step forward: out = tanh(pre), pre (rows, hp). */
static void rnn_forward_plain(int rows, int h, int hp, const float *pre, float *out,
                              index_t out_ld) {
    for (int r = 0; r < rows; r++)
        for (int j = 0; j < h; j++) out[r * out_ld + j] = tanhf(pre[(index_t)r * hp + j]);
}

/* LSTM step backward: from the activated gates act (rows, 4h), c_t, c_{t-1} (NULL: zero),
 * dL/dh_t from outside (dh, NULL: zero) and from step t + 1 (carry_h, (rows, hp)), and dL/dc_t
 * from step t + 1 (carry_c (rows, hp), updated to dL/dc_{t-1}), writes dL/d(gate
 * pre-activations) to delta (rows, 4·hp), padding columns zero. */
static void lstm_backward_plain(int rows, int h, int hp, const float *act, index_t act_ld,
                                const float *c, index_t c_ld, const float *c_prev,
                                index_t cp_ld, const float *dh, index_t dh_ld,
                                const float *carry_h, float *carry_c, float *delta) {
    for (int r = 0; r < rows; r++) {
        const float *a = act + r * act_ld;
        float *d = delta + (index_t)r * 4 * hp;
        const index_t s = (index_t)r * hp;
        for (int j = 0; j < h; j++) {
            const float i = a[j], f = a[h + j], g = a[2 * h + j], o = a[3 * h + j];
            const float tc = tanhf(c[r * c_ld + j]);
            const float grad_h = (dh ? dh[r * dh_ld + j] : 0.0f) + carry_h[s + j];
            const float grad_c = carry_c[s + j] + grad_h * o * (1.0f - tc * tc);
            d[j] = grad_c * g * i * (1.0f - i);
            d[hp + j] = grad_c * (c_prev ? c_prev[r * cp_ld + j] : 0.0f) * f * (1.0f - f);
            d[2 * hp + j] = grad_c * i * (1.0f - g * g);
            d[3 * hp + j] = grad_h * tc * o * (1.0f - o);
            carry_c[s + j] = grad_c * f;
        }
    }
}

/* tanh RNN step backward: delta = (dh + carry) · (1 − h_t²), h_t read from out. */
static void rnn_backward_plain(int rows, int h, int hp, const float *out, index_t out_ld,
                               const float *dh, index_t dh_ld, const float *carry,
                               float *delta) {
    for (int r = 0; r < rows; r++)
        for (int j = 0; j < h; j++) {
            const float value = out[r * out_ld + j];
            const float grad = (dh ? dh[r * dh_ld + j] : 0.0f) + carry[(index_t)r * hp + j];
            delta[(index_t)r * hp + j] = grad * (1.0f - value * value);
        }
}

/* GRU step forward, as nn.GRU: pre (rows, 3·hp) holds x_t W_ihᵀ + b_ih and hid (rows, 3·hp)
 * h_{t-1} W_hhᵀ + b_hh, gates (r, z, n): r = σ(pre_r + hid_r), z = σ(pre_z + hid_z),
 * n = tanh(pre_n + r·hid_n), h_t = (h_{t-1} − n)·z + n. h_prev NULL: h_{t-1} = 0. Writes h_t to
 * out and, when act is given, (r, z, n, hid_n) (rows, 4h) for the backward pass. */
static void gru_forward_plain(int rows, int h, int hp, const float *pre, const float *hid,
                              const float *h_prev, index_t prev_ld, float *act, index_t act_ld,
                              float *out, index_t out_ld) {
    for (int r = 0; r < rows; r++) {
        const float *a = pre + (index_t)r * 3 * hp, *q = hid + (index_t)r * 3 * hp;
        for (int j = 0; j < h; j++) {
            const float reset = sigmoid(q[j] + a[j]), update = sigmoid(q[hp + j] + a[hp + j]);
            const float hn = q[2 * hp + j], fresh = tanhf(a[2 * hp + j] + hn * reset);
            const float previous = h_prev ? h_prev[r * prev_ld + j] : 0.0f;
            out[r * out_ld + j] = (previous - fresh) * update + fresh;
            if (act) {
                float *ar = act + r * act_ld;
                ar[j] = reset, ar[h + j] = update, ar[2 * h + j] = fresh, ar[3 * h + j] = hn;
            }
        }
    }
}

/* GRU step backward: from act (r, z, n, hid_n) (rows, 4h), h_{t-1} (NULL: zero), dL/dh_t from
 * outside (dh, NULL: zero) and from step t + 1 (carry (rows, hp), replaced by the part of
 * dL/dh_{t-1} that bypasses the products, z·dL/dh_t), writes dL/d(input pre-activations) to
 * delta (rows, 3·hp) and dL/d(hidden pre-activations) to delta_h (rows, 3·hp); they differ in
 * the n gate only, where the hidden one is scaled by r. */
static void gru_backward_plain(int rows, int h, int hp, const float *act, index_t act_ld,
                               const float *h_prev, index_t prev_ld, const float *dh,
                               index_t dh_ld, float *carry, float *delta, float *delta_h) {
    for (int r = 0; r < rows; r++) {
        const float *a = act + r * act_ld;
        float *d = delta + (index_t)r * 3 * hp, *e = delta_h + (index_t)r * 3 * hp;
        float *c = carry + (index_t)r * hp;
        for (int j = 0; j < h; j++) {
            const float reset = a[j], update = a[h + j], fresh = a[2 * h + j];
            const float hn = a[3 * h + j];
            const float previous = h_prev ? h_prev[r * prev_ld + j] : 0.0f;
            const float grad = (dh ? dh[r * dh_ld + j] : 0.0f) + c[j];
            const float grad_n = grad * (1.0f - update) * (1.0f - fresh * fresh);
            d[j] = e[j] = grad_n * hn * reset * (1.0f - reset);
            d[hp + j] = e[hp + j] = grad * (previous - fresh) * update * (1.0f - update);
            d[2 * hp + j] = grad_n;
            e[2 * hp + j] = grad_n * reset;
            c[j] = grad * update;
        }
    }
}

#ifdef SEQ_X86
#define AVX2 __attribute__((target("avx2,fma")))

#define START(row, col) (init ? _mm256_loadu_ps(init + (col)) : _mm256_loadu_ps((row) + (col)))

AVX2 static void gemm_avx2(int rows, int k, int n, const float *a, index_t lda, index_t ka,
                           const float *m, float *c, index_t ldc, const float *init) {
    int r = 0;
    for (; r + 4 <= rows; r += 4) {
        const float *a0 = a + r * lda, *a1 = a0 + lda, *a2 = a1 + lda, *a3 = a2 + lda;
        float *c0 = c + r * ldc, *c1 = c0 + ldc, *c2 = c1 + ldc, *c3 = c2 + ldc;
        int j = 0;
        for (; j + 16 <= n; j += 16) {
            __m256 s00 = START(c0, j), s01 = START(c0, j + 8);
            __m256 s10 = START(c1, j), s11 = START(c1, j + 8);
            __m256 s20 = START(c2, j), s21 = START(c2, j + 8);
            __m256 s30 = START(c3, j), s31 = START(c3, j + 8);
            for (int i = 0; i < k; i++) {
                const float *mi = m + (index_t)i * n + j;
                const __m256 m0 = _mm256_loadu_ps(mi), m1 = _mm256_loadu_ps(mi + 8);
                __m256 v = _mm256_broadcast_ss(a0 + i * ka);
                s00 = _mm256_fmadd_ps(v, m0, s00);
                s01 = _mm256_fmadd_ps(v, m1, s01);
                v = _mm256_broadcast_ss(a1 + i * ka);
                s10 = _mm256_fmadd_ps(v, m0, s10);
                s11 = _mm256_fmadd_ps(v, m1, s11);
                v = _mm256_broadcast_ss(a2 + i * ka);
                s20 = _mm256_fmadd_ps(v, m0, s20);
                s21 = _mm256_fmadd_ps(v, m1, s21);
                v = _mm256_broadcast_ss(a3 + i * ka);
                s30 = _mm256_fmadd_ps(v, m0, s30);
                s31 = _mm256_fmadd_ps(v, m1, s31);
            }
            _mm256_storeu_ps(c0 + j, s00), _mm256_storeu_ps(c0 + j + 8, s01);
            _mm256_storeu_ps(c1 + j, s10), _mm256_storeu_ps(c1 + j + 8, s11);
            _mm256_storeu_ps(c2 + j, s20), _mm256_storeu_ps(c2 + j + 8, s21);
            _mm256_storeu_ps(c3 + j, s30), _mm256_storeu_ps(c3 + j + 8, s31);
        }
        for (; j < n; j += 8) {
            __m256 s0 = START(c0, j), s1 = START(c1, j), s2 = START(c2, j), s3 = START(c3, j);
            for (int i = 0; i < k; i++) {
                const __m256 mi = _mm256_loadu_ps(m + (index_t)i * n + j);
                s0 = _mm256_fmadd_ps(_mm256_broadcast_ss(a0 + i * ka), mi, s0);
                s1 = _mm256_fmadd_ps(_mm256_broadcast_ss(a1 + i * ka), mi, s1);
                s2 = _mm256_fmadd_ps(_mm256_broadcast_ss(a2 + i * ka), mi, s2);
                s3 = _mm256_fmadd_ps(_mm256_broadcast_ss(a3 + i * ka), mi, s3);
            }
            _mm256_storeu_ps(c0 + j, s0), _mm256_storeu_ps(c1 + j, s1);
            _mm256_storeu_ps(c2 + j, s2), _mm256_storeu_ps(c3 + j, s3);
        }
    }
    for (; r < rows; r++) {
        const float *ar = a + r * lda;
        float *cr = c + r * ldc;
        for (int j = 0; j < n; j += 8) {
            __m256 s = START(cr, j);
            for (int i = 0; i < k; i++)
                s = _mm256_fmadd_ps(_mm256_broadcast_ss(ar + i * ka),
                                    _mm256_loadu_ps(m + (index_t)i * n + j), s);
            _mm256_storeu_ps(cr + j, s);
        }
    }
}
#undef START

/* tanh as a rational function of x (the minimax fit Eigen uses, within a few ulp of tanhf):
 * x·P(x²)/Q(x²) on |x| <= 7.9, where float32 tanh is already ±1 to the last bit beyond. */
AVX2 static inline __m256 tanh_avx2(__m256 x) {
    const __m256 bound = _mm256_set1_ps(7.90531110763549805f);
    /* max/min return their second operand when one is NaN: x goes second, so NaN stays NaN. */
    x = _mm256_min_ps(bound, _mm256_max_ps(_mm256_sub_ps(_mm256_setzero_ps(), bound), x));
    const __m256 z = _mm256_mul_ps(x, x);
    __m256 p = _mm256_set1_ps(-2.76076847742355e-16f);
    p = _mm256_fmadd_ps(p, z, _mm256_set1_ps(2.00018790482477e-13f));
    p = _mm256_fmadd_ps(p, z, _mm256_set1_ps(-8.60467152213735e-11f));
    p = _mm256_fmadd_ps(p, z, _mm256_set1_ps(5.12229709037114e-08f));
    p = _mm256_fmadd_ps(p, z, _mm256_set1_ps(1.48572235717979e-05f));
    p = _mm256_fmadd_ps(p, z, _mm256_set1_ps(6.37261928875436e-04f));
    p = _mm256_fmadd_ps(p, z, _mm256_set1_ps(4.89352455891786e-03f));
    p = _mm256_mul_ps(p, x);
    __m256 q = _mm256_set1_ps(1.19825839466702e-06f);
    q = _mm256_fmadd_ps(q, z, _mm256_set1_ps(1.18534705686654e-04f));
    q = _mm256_fmadd_ps(q, z, _mm256_set1_ps(2.26843463243900e-03f));
    q = _mm256_fmadd_ps(q, z, _mm256_set1_ps(4.89352518554385e-03f));
    return _mm256_div_ps(p, q);
}

/* σ(x) = (1 + tanh(x / 2)) / 2. */
AVX2 static inline __m256 sigmoid_avx2(__m256 x) {
    const __m256 half = _mm256_set1_ps(0.5f);
    return _mm256_fmadd_ps(tanh_avx2(_mm256_mul_ps(x, half)), half, half);
}

AVX2 static void tanh_avx2_array(float *x, index_t count) {
    index_t i = 0;
    for (; i + 32 <= count; i += 32) { /* four independent chains in flight */
        const __m256 a = tanh_avx2(_mm256_loadu_ps(x + i));
        const __m256 b = tanh_avx2(_mm256_loadu_ps(x + i + 8));
        const __m256 c = tanh_avx2(_mm256_loadu_ps(x + i + 16));
        const __m256 d = tanh_avx2(_mm256_loadu_ps(x + i + 24));
        _mm256_storeu_ps(x + i, a), _mm256_storeu_ps(x + i + 8, b);
        _mm256_storeu_ps(x + i + 16, c), _mm256_storeu_ps(x + i + 24, d);
    }
    for (; i + 8 <= count; i += 8) _mm256_storeu_ps(x + i, tanh_avx2(_mm256_loadu_ps(x + i)));
    for (; i < count; i++) x[i] = tanhf(x[i]);
}

/* Lanes j..j+7 of a row of h columns: all of them, or the first h − j (the rest read as 0
 * and never written). Masked loads and stores are slow on some CPUs (microcoded stores on
 * AMD Zen 1): plain ones wherever all 8 lanes are in the row. */
#define LANES(h, j) _mm256_cmpgt_epi32(_mm256_set1_epi32((h) - (j)), \
                                       _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7))
#define LOAD(p, mask) (full ? _mm256_loadu_ps(p) : _mm256_maskload_ps((p), (mask)))
#define STORE(p, mask, v) \
    (full ? _mm256_storeu_ps((p), (v)) : _mm256_maskstore_ps((p), (mask), (v)))

/* Activates the gates (i, f, g, o) of pre (rows, 4·hp) in place. Every vector is independent
 * of the others, so the core overlaps their long dependency chains (activating gate by gate
 * inside the cell update would wait on each chain in turn: twice the time). */
AVX2 static void activate_gates_avx2(int rows, int hp, float *pre) {
    for (int r = 0; r < rows; r++) {
        float *a = pre + (index_t)r * 4 * hp;
        for (int j = 0; j < hp; j += 8) {
            _mm256_storeu_ps(a + j, sigmoid_avx2(_mm256_loadu_ps(a + j)));
            _mm256_storeu_ps(a + hp + j, sigmoid_avx2(_mm256_loadu_ps(a + hp + j)));
            _mm256_storeu_ps(a + 2 * hp + j, tanh_avx2(_mm256_loadu_ps(a + 2 * hp + j)));
            _mm256_storeu_ps(a + 3 * hp + j, sigmoid_avx2(_mm256_loadu_ps(a + 3 * hp + j)));
        }
    }
}

AVX2 static void lstm_forward_avx2(int rows, int h, int hp, float *pre, float *act,
                                   index_t act_ld, const float *c_prev, index_t cp_ld, float *c,
                                   index_t c_ld, float *out, index_t out_ld) {
    activate_gates_avx2(rows, hp, pre);
    for (int r = 0; r < rows; r++) {
        const float *a = pre + (index_t)r * 4 * hp;
        for (int j = 0; j < h; j += 8) {
            const __m256i mask = LANES(h, j);
            const int full = j + 8 <= h;
            const __m256 i = _mm256_loadu_ps(a + j), f = _mm256_loadu_ps(a + hp + j);
            const __m256 g = _mm256_loadu_ps(a + 2 * hp + j);
            const __m256 o = _mm256_loadu_ps(a + 3 * hp + j);
            const __m256 previous =
                c_prev ? LOAD(c_prev + r * cp_ld + j, mask) : _mm256_setzero_ps();
            const __m256 cell = _mm256_fmadd_ps(f, previous, _mm256_mul_ps(i, g));
            STORE(c + r * c_ld + j, mask, cell);
            STORE(out + r * out_ld + j, mask, _mm256_mul_ps(o, tanh_avx2(cell)));
            if (act) {
                float *ar = act + r * act_ld + j;
                STORE(ar, mask, i), STORE(ar + h, mask, f);
                STORE(ar + 2 * h, mask, g), STORE(ar + 3 * h, mask, o);
            }
        }
    }
}

AVX2 static void rnn_forward_avx2(int rows, int h, int hp, const float *pre, float *out,
                                  index_t out_ld) {
    for (int r = 0; r < rows; r++)
        for (int j = 0; j < h; j += 8) {
            const int full = j + 8 <= h;
            STORE(out + r * out_ld + j, LANES(h, j),
                  tanh_avx2(_mm256_loadu_ps(pre + (index_t)r * hp + j)));
        }
}

AVX2 static void lstm_backward_avx2(int rows, int h, int hp, const float *act, index_t act_ld,
                                    const float *c, index_t c_ld, const float *c_prev,
                                    index_t cp_ld, const float *dh, index_t dh_ld,
                                    const float *carry_h, float *carry_c, float *delta) {
    const __m256 one = _mm256_set1_ps(1.0f);
    for (int r = 0; r < rows; r++) {
        const float *a = act + r * act_ld;
        float *d = delta + (index_t)r * 4 * hp;
        const index_t s = (index_t)r * hp;
        for (int j = 0; j < h; j += 8) {
            /* Lanes past h read 0 everywhere, so every delta and carry there stays 0. */
            const __m256i mask = LANES(h, j);
            const int full = j + 8 <= h;
            const __m256 i = LOAD(a + j, mask), f = LOAD(a + h + j, mask);
            const __m256 g = LOAD(a + 2 * h + j, mask), o = LOAD(a + 3 * h + j, mask);
            const __m256 tc = tanh_avx2(LOAD(c + r * c_ld + j, mask));
            const __m256 previous =
                c_prev ? LOAD(c_prev + r * cp_ld + j, mask) : _mm256_setzero_ps();
            __m256 grad_h = _mm256_loadu_ps(carry_h + s + j);
            if (dh) grad_h = _mm256_add_ps(LOAD(dh + r * dh_ld + j, mask), grad_h);
            const __m256 grad_c = _mm256_fmadd_ps(
                _mm256_mul_ps(grad_h, o), _mm256_fnmadd_ps(tc, tc, one),
                _mm256_loadu_ps(carry_c + s + j));
            const __m256 gi = _mm256_mul_ps(grad_c, g);
            const __m256 gf = _mm256_mul_ps(grad_c, previous);
            _mm256_storeu_ps(d + j, _mm256_mul_ps(_mm256_mul_ps(gi, i), _mm256_sub_ps(one, i)));
            _mm256_storeu_ps(d + hp + j,
                             _mm256_mul_ps(_mm256_mul_ps(gf, f), _mm256_sub_ps(one, f)));
            _mm256_storeu_ps(d + 2 * hp + j,
                             _mm256_mul_ps(_mm256_mul_ps(grad_c, i), _mm256_fnmadd_ps(g, g, one)));
            const __m256 go = _mm256_mul_ps(_mm256_mul_ps(grad_h, tc), o);
            _mm256_storeu_ps(d + 3 * hp + j, _mm256_mul_ps(go, _mm256_sub_ps(one, o)));
            _mm256_storeu_ps(carry_c + s + j, _mm256_mul_ps(grad_c, f));
        }
    }
}

AVX2 static void rnn_backward_avx2(int rows, int h, int hp, const float *out, index_t out_ld,
                                   const float *dh, index_t dh_ld, const float *carry,
                                   float *delta) {
    const __m256 one = _mm256_set1_ps(1.0f);
    for (int r = 0; r < rows; r++)
        for (int j = 0; j < h; j += 8) {
            const __m256i mask = LANES(h, j);
            const int full = j + 8 <= h;
            const __m256 value = LOAD(out + r * out_ld + j, mask);
            __m256 grad = _mm256_loadu_ps(carry + (index_t)r * hp + j);
            if (dh) grad = _mm256_add_ps(LOAD(dh + r * dh_ld + j, mask), grad);
            _mm256_storeu_ps(delta + (index_t)r * hp + j,
                             _mm256_mul_ps(grad, _mm256_fnmadd_ps(value, value, one)));
        }
}

AVX2 static void gru_forward_avx2(int rows, int h, int hp, const float *pre, const float *hid,
                                  const float *h_prev, index_t prev_ld, float *act,
                                  index_t act_ld, float *out, index_t out_ld) {
    for (int r = 0; r < rows; r++) {
        const float *a = pre + (index_t)r * 3 * hp, *q = hid + (index_t)r * 3 * hp;
        for (int j = 0; j < h; j += 8) {
            const __m256i mask = LANES(h, j);
            const int full = j + 8 <= h;
            const __m256 reset = sigmoid_avx2(
                _mm256_add_ps(_mm256_loadu_ps(q + j), _mm256_loadu_ps(a + j)));
            const __m256 update = sigmoid_avx2(
                _mm256_add_ps(_mm256_loadu_ps(q + hp + j), _mm256_loadu_ps(a + hp + j)));
            const __m256 hn = _mm256_loadu_ps(q + 2 * hp + j);
            const __m256 fresh =
                tanh_avx2(_mm256_add_ps(_mm256_loadu_ps(a + 2 * hp + j), _mm256_mul_ps(hn, reset)));
            const __m256 previous =
                h_prev ? LOAD(h_prev + r * prev_ld + j, mask) : _mm256_setzero_ps();
            STORE(out + r * out_ld + j, mask,
                  _mm256_add_ps(_mm256_mul_ps(_mm256_sub_ps(previous, fresh), update), fresh));
            if (act) {
                float *ar = act + r * act_ld + j;
                STORE(ar, mask, reset), STORE(ar + h, mask, update);
                STORE(ar + 2 * h, mask, fresh), STORE(ar + 3 * h, mask, hn);
            }
        }
    }
}

AVX2 static void gru_backward_avx2(int rows, int h, int hp, const float *act, index_t act_ld,
                                   const float *h_prev, index_t prev_ld, const float *dh,
                                   index_t dh_ld, float *carry, float *delta, float *delta_h) {
    const __m256 one = _mm256_set1_ps(1.0f);
    for (int r = 0; r < rows; r++) {
        const float *a = act + r * act_ld;
        float *d = delta + (index_t)r * 3 * hp, *e = delta_h + (index_t)r * 3 * hp;
        float *c = carry + (index_t)r * hp;
        for (int j = 0; j < h; j += 8) {
            /* Lanes past h read 0 everywhere, so every delta and carry there stays 0. */
            const __m256i mask = LANES(h, j);
            const int full = j + 8 <= h;
            const __m256 reset = LOAD(a + j, mask), update = LOAD(a + h + j, mask);
            const __m256 fresh = LOAD(a + 2 * h + j, mask), hn = LOAD(a + 3 * h + j, mask);
            const __m256 previous =
                h_prev ? LOAD(h_prev + r * prev_ld + j, mask) : _mm256_setzero_ps();
            __m256 grad = _mm256_loadu_ps(c + j);
            if (dh) grad = _mm256_add_ps(LOAD(dh + r * dh_ld + j, mask), grad);
            const __m256 grad_n = _mm256_mul_ps(_mm256_mul_ps(grad, _mm256_sub_ps(one, update)),
                                                _mm256_fnmadd_ps(fresh, fresh, one));
            const __m256 grad_r = _mm256_mul_ps(_mm256_mul_ps(_mm256_mul_ps(grad_n, hn), reset),
                                                _mm256_sub_ps(one, reset));
            const __m256 grad_z = _mm256_mul_ps(
                _mm256_mul_ps(_mm256_mul_ps(grad, _mm256_sub_ps(previous, fresh)), update),
                _mm256_sub_ps(one, update));
            _mm256_storeu_ps(d + j, grad_r), _mm256_storeu_ps(e + j, grad_r);
            _mm256_storeu_ps(d + hp + j, grad_z), _mm256_storeu_ps(e + hp + j, grad_z);
            _mm256_storeu_ps(d + 2 * hp + j, grad_n);
            _mm256_storeu_ps(e + 2 * hp + j, _mm256_mul_ps(grad_n, reset));
            _mm256_storeu_ps(c + j, _mm256_mul_ps(grad, update));
        }
    }
}
#undef LANES
#undef LOAD
#undef STORE
#endif

typedef void (*gemm_fn)(int, int, int, const float *, index_t, index_t, const float *, float *,
                        index_t, const float *);
typedef void (*map_fn)(float *, index_t);
typedef void (*lstm_forward_fn)(int, int, int, float *, float *, index_t, const float *,
                                index_t, float *, index_t, float *, index_t);
typedef void (*rnn_forward_fn)(int, int, int, const float *, float *, index_t);
typedef void (*lstm_backward_fn)(int, int, int, const float *, index_t, const float *, index_t,
                                 const float *, index_t, const float *, index_t, const float *,
                                 float *, float *);
typedef void (*rnn_backward_fn)(int, int, int, const float *, index_t, const float *, index_t,
                                const float *, float *);
typedef void (*gru_forward_fn)(int, int, int, const float *, const float *, const float *,
                               index_t, float *, index_t, float *, index_t);
typedef void (*gru_backward_fn)(int, int, int, const float *, index_t, const float *, index_t,
                                const float *, index_t, float *, float *, float *);

static gemm_fn gemm = gemm_plain;
static map_fn tanh_array = tanh_plain;
static lstm_forward_fn lstm_forward = lstm_forward_plain;
static rnn_forward_fn rnn_forward = rnn_forward_plain;
static lstm_backward_fn lstm_backward = lstm_backward_plain;
static rnn_backward_fn rnn_backward = rnn_backward_plain;
static gru_forward_fn gru_forward = gru_forward_plain;
static gru_backward_fn gru_backward = gru_backward_plain;

/* 1 when the vector kernels are in use, 0 for plain C. */
int seq_select(int allow_vector) {
    gemm = gemm_plain, tanh_array = tanh_plain;
    lstm_forward = lstm_forward_plain, rnn_forward = rnn_forward_plain;
    lstm_backward = lstm_backward_plain, rnn_backward = rnn_backward_plain;
    gru_forward = gru_forward_plain, gru_backward = gru_backward_plain;
#ifdef SEQ_X86
    __builtin_cpu_init();
    if (allow_vector && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
        gemm = gemm_avx2, tanh_array = tanh_avx2_array;
        lstm_forward = lstm_forward_avx2, rnn_forward = rnn_forward_avx2;
        lstm_backward = lstm_backward_avx2, rnn_backward = rnn_backward_avx2;
        gru_forward = gru_forward_avx2, gru_backward = gru_backward_avx2;
        return 1;
    }
#else
    (void)allow_vector;
#endif
    return 0;
}


/* ---------------------------------------------------------------- helpers */

static int padded(int n) { return (n + 7) / 8 * 8; }

/* The transpose of a row-major weight matrix (gates·h, k), packed gate by gate with each
 * gate's columns padded to hp: row i holds src[g·h + j, i] at g·hp + j, so that a product
 * with it yields every gate's pre-activation at once. Rows k.. up to kp are zero. */
static float *pack(const float *src, int k, int kp, int gates, int h) {
    const int hp = padded(h), n = gates * hp;
    float *out = calloc((size_t)kp * n, sizeof(float));
    if (!out) return NULL;
    for (int i = 0; i < k; i++)
        for (int g = 0; g < gates; g++)
            for (int j = 0; j < h; j++)
                out[(index_t)i * n + g * hp + j] = src[(index_t)(g * h + j) * k + i];
    return out;
}

static void store_step(float *dst, index_t ld, const float *src, int rows, int gates, int h) {
    const int hp = padded(h);
    for (int r = 0; r < rows; r++)
        for (int g = 0; g < gates; g++)
            memcpy(dst + r * ld + g * h, src + (index_t)r * gates * hp + g * hp,
                   (size_t)h * sizeof(float));
}

/* ---------------------------------------------------------------- one layer, one direction */

/* Rows per block: a block's states stay in L1/L2 cache through all steps. */
#define STACK_BLOCK 32
/* Steps whose gradients with respect to the pre-activations are gathered before the weight
 * gradients take them in one product (k = CHUNK_STEPS · rows instead of rows). */
#define CHUNK_STEPS 4

static void free_all(float **arrays, int count) {
    for (int i = 0; i < count; i++) free(arrays[i]);
}

/* A layer of `gates` gates: 1 is a tanh RNN, h_t = tanh(x_t W_ihᵀ + h_{t-1} W_hhᵀ + b); 4 is
 * PyTorch's LSTM, gates (i, f, g, o) = x_t W_ihᵀ + h_{t-1} W_hhᵀ + b, c_t = σ(f) c_{t-1} +
 * σ(i) tanh(g), h_t = σ(o) tanh(c_t) (b = b_ih + b_hh); 3 is PyTorch's GRU (gru_forward).
 * h_{-1} = c_{-1} = 0.
 *
 * x: the layer's input (steps, rows, in); w_ih (gates·h, in), w_hh (gates·h, h) row-major.
 * Writes out (steps, rows, h); with `act` (an LSTM or GRU in training) also what the backward
 * pass needs: the activated gates (steps, rows, 4h), and for the LSTM c in `cell` (steps, rows,
 * h). h_{t-1} is read back from out and c_{t-1} from cell: no state is copied between steps.
 * Returns 0, or -1 when out of memory. */
int seq_layer_forward(int gates, int steps, int rows, int in, int h, const float *x,
                      index_t x_step, index_t x_ld, const float *w_ih, const float *w_hh,
                      const float *b_ih, const float *b_hh, float *out, index_t out_step,
                      index_t out_ld, float *act, index_t act_step, index_t act_ld,
                      float *cell, index_t cell_step, index_t cell_ld) {
    const int hp = padded(h), n = gates * hp, gru = gates == 3;
    float *input_matrix = pack(w_ih, in, in, gates, h); /* W_ihᵀ (in, n) */
    float *state_matrix = pack(w_hh, h, h, gates, h);   /* W_hhᵀ (h, n) */
    /* The input side's bias and (GRU, whose n gate keeps the two sides apart) the hidden's. */
    float *bias = calloc((size_t)2 * n, sizeof(float));
    /* The pre-activations of a block (the GRU's two sides), and an LSTM's c when not kept. */
    float *work = calloc((size_t)STACK_BLOCK * (2 * n + hp), sizeof(float));
    if (!input_matrix || !state_matrix || !bias || !work) {
        free(input_matrix), free(state_matrix), free(bias), free(work);
        return -1;
    }
    float *bias_h = bias + n;
    for (int g = 0; g < gates; g++)
        for (int j = 0; j < h; j++) {
            bias[g * hp + j] = gru ? b_ih[g * h + j] : b_ih[g * h + j] + b_hh[g * h + j];
            bias_h[g * hp + j] = b_hh[g * h + j];
        }
    float *pre = work, *hid = work + STACK_BLOCK * n, *own_c = hid + STACK_BLOCK * n;
    for (int r0 = 0; r0 < rows; r0 += STACK_BLOCK) {
        const int nb = rows - r0 < STACK_BLOCK ? rows - r0 : STACK_BLOCK;
        for (int t = 0; t < steps; t++) {
            float *out_t = out + t * out_step + r0 * out_ld;
            const float *previous = t ? out_t - out_step : NULL;
            float *act_t = act ? act + t * act_step + r0 * act_ld : NULL;
            gemm(nb, in, n, x + t * x_step + r0 * x_ld, x_ld, 1, input_matrix, pre, n, bias);
            if (gru) { /* k = 0 at the first step: the hidden side is its bias alone */
                gemm(nb, t ? h : 0, n, t ? previous : out_t, out_ld, 1, state_matrix, hid, n,
                     bias_h);
                gru_forward(nb, h, hp, pre, hid, previous, out_ld, act_t, act_ld, out_t, out_ld);
                continue;
            }
            if (t) gemm(nb, h, n, previous, out_ld, 1, state_matrix, pre, n, NULL);
            if (gates == 1) {
                rnn_forward(nb, h, hp, pre, out_t, out_ld);
            } else if (cell) {
                float *c_t = cell + t * cell_step + r0 * cell_ld;
                lstm_forward(nb, h, hp, pre, act_t, act_ld, t ? c_t - cell_step : NULL, cell_ld,
                             c_t, cell_ld, out_t, out_ld);
            } else {
                lstm_forward(nb, h, hp, pre, NULL, 0, t ? own_c : NULL, hp, own_c, hp, out_t,
                             out_ld);
            }
        }
    }
    free(input_matrix), free(state_matrix), free(bias), free(work);
    return 0;
}

/* Rows g·hp + j of a weight matrix (gates·h, k) row-major, padded to (gates·hp, kp): the
 * matrix a product of dL/d(pre-activations) takes. */
static float *rows_padded(const float *w, int k, int kp, int gates, int h) {
    const int hp = padded(h);
    float *out = calloc((size_t)gates * hp * kp, sizeof(float));
    if (!out) return NULL;
    for (int g = 0; g < gates; g++)
        for (int j = 0; j < h; j++)
            memcpy(out + (index_t)(g * hp + j) * kp, w + (index_t)(g * h + j) * k,
                   (size_t)k * sizeof(float));
    return out;
}

/* Backward through one layer and direction of :c:func:`seq_layer_forward`, from the forward's
 * input x, outputs out (and for the LSTM and GRU act, for the LSTM cell) and grad = dL/dh_t
 * from outside the recurrence (the layer above or the output layer; NULL: zero). Writes the
 * weight gradients to grad_w_ih (gates·h, in), grad_w_hh (gates·h, h), grad_b = dL/db_ih
 * (gates·h,) and, when given, grad_b_hh (the same as grad_b but for the GRU), and dL/dx to
 * grad_x (steps, rows, in) when given: written, or added to it with `add_x` (the second
 * direction).
 *
 * Only the chain dL/dh_t -> dL/dh_{t-1} runs step by step; the weight gradients and dL/dx
 * take CHUNK_STEPS steps at once. */
int seq_layer_backward(int gates, int steps, int rows, int in, int h, const float *x,
                       index_t x_step, index_t x_ld, const float *out, index_t out_step,
                       index_t out_ld, const float *act, index_t act_step, index_t act_ld,
                       const float *cell, index_t cell_step, index_t cell_ld, const float *grad,
                       index_t grad_step, index_t grad_ld, const float *w_ih, const float *w_hh,
                       float *grad_w_ih, float *grad_w_hh, float *grad_b, float *grad_b_hh,
                       float *grad_x, index_t gx_step, index_t gx_ld, int add_x) {
    const int hp = padded(h), n = gates * hp, inp = padded(in), gru = gates == 3;
    const int b = STACK_BLOCK, most = CHUNK_STEPS * STACK_BLOCK;
    float *state_rows = rows_padded(w_hh, h, hp, gates, h);                 /* (n, hp) */
    float *input_rows = grad_x ? rows_padded(w_ih, in, inp, gates, h) : NULL; /* (n, inp) */
    /* Weight gradients: dL/da_tᵀ x_t (n, inp) and dL/da_tᵀ h_{t-1} (n, hp) summed over steps
     * and rows, then the two biases' (the GRU's differ). */
    float *totals = calloc((size_t)n * (inp + hp + 2), sizeof(float));
    float *zeros = calloc((size_t)(n > inp ? n : inp), sizeof(float));
    /* dL/d(pre-activations) of a chunk's steps (a GRU's hidden side apart) and their x_t and
     * h_{t-1} rows. */
    float *deltas = calloc((size_t)most * n * (gru ? 2 : 1), sizeof(float));
    float *xs = calloc((size_t)most * (inp + hp), sizeof(float));
    float *carry = calloc((size_t)b * 2 * hp, sizeof(float)); /* dL/dh and dL/dc to t - 1 */
    float *gx = grad_x ? calloc((size_t)most * inp, sizeof(float)) : NULL;
    if (!state_rows || (grad_x && (!input_rows || !gx)) || !totals || !zeros || !deltas ||
        !xs || !carry) {
        free(state_rows), free(input_rows), free(totals), free(zeros), free(deltas), free(xs);
        free(carry), free(gx);
        return -1;
    }
    float *total_ih = totals, *total_hh = totals + (index_t)n * inp;
    float *bias_total = total_hh + (index_t)n * hp, *bias_total_h = bias_total + n;
    float *deltas_h = gru ? deltas + (index_t)most * n : deltas;
    float *hs = xs + (index_t)most * inp;
    float *carry_h = carry, *carry_c = carry + b * hp;
    for (int r0 = 0; r0 < rows; r0 += b) {
        const int nb = rows - r0 < b ? rows - r0 : b;
        memset(carry, 0, (size_t)b * 2 * hp * sizeof(float));
        int filled = 0;
        for (int t = steps - 1; t >= 0; t--) {
            float *delta = deltas + (index_t)filled * nb * n;
            float *delta_h = deltas_h + (index_t)filled * nb * n;
            const float *grad_t = grad ? grad + t * grad_step + r0 * grad_ld : NULL;
            const float *out_t = out + t * out_step + r0 * out_ld;
            const float *previous = t ? out_t - out_step : NULL;
            if (gates == 1) {
                rnn_backward(nb, h, hp, out_t, out_ld, grad_t, grad_ld, carry_h, delta);
            } else if (gru) {
                gru_backward(nb, h, hp, act + t * act_step + r0 * act_ld, act_ld, previous,
                             out_ld, grad_t, grad_ld, carry_h, delta, delta_h);
            } else {
                const float *c_t = cell + t * cell_step + r0 * cell_ld;
                lstm_backward(nb, h, hp, act + t * act_step + r0 * act_ld, act_ld, c_t, cell_ld,
                              t ? c_t - cell_step : NULL, cell_ld, grad_t, grad_ld, carry_h,
                              carry_c, delta);
            }
            /* dL/dh_{t-1}: the GRU's carry already holds its direct part z·dL/dh_t. */
            if (t) gemm(nb, n, hp, delta_h, n, 1, state_rows, carry_h, hp, gru ? NULL : zeros);
            float *xt = xs + (index_t)filled * nb * inp, *ht = hs + (index_t)filled * nb * hp;
            for (int r = 0; r < nb; r++) {
                memcpy(xt + (index_t)r * inp, x + t * x_step + (r0 + r) * x_ld,
                       (size_t)in * sizeof(float));
                if (t)
                    memcpy(ht + (index_t)r * hp, previous + r * out_ld, (size_t)h * sizeof(float));
                else
                    memset(ht + (index_t)r * hp, 0, (size_t)h * sizeof(float));
            }
            if (++filled < CHUNK_STEPS && t) continue;
            /* The chunk's steps t + filled - 1 down to t, in that order. */
            const int count = filled * nb;
            /* total += deltasᵀ rows: deltas read transposed (row j, k-th row at deltas[k·n + j]). */
            gemm(n, count, inp, deltas, 1, n, xs, total_ih, inp, NULL);
            gemm(n, count, hp, deltas_h, 1, n, hs, total_hh, hp, NULL);
            for (int k = 0; k < count; k++)
                for (int j = 0; j < n; j++) {
                    bias_total[j] += deltas[(index_t)k * n + j];
                    if (gru) bias_total_h[j] += deltas_h[(index_t)k * n + j];
                }
            if (grad_x) {
                gemm(count, n, inp, deltas, n, 1, input_rows, gx, inp, zeros);
                for (int s = 0; s < filled; s++)
                    for (int r = 0; r < nb; r++) {
                        const float *src = gx + (index_t)(s * nb + r) * inp;
                        float *dst = grad_x + (t + filled - 1 - s) * gx_step + (r0 + r) * gx_ld;
                        if (add_x)
                            for (int i = 0; i < in; i++) dst[i] += src[i];
                        else
                            memcpy(dst, src, (size_t)in * sizeof(float));
                    }
            }
            filled = 0;
        }
    }
    for (int g = 0; g < gates; g++)
        for (int j = 0; j < h; j++) {
            const index_t row = g * hp + j;
            memcpy(grad_w_ih + (index_t)(g * h + j) * in, total_ih + row * inp,
                   (size_t)in * sizeof(float));
            memcpy(grad_w_hh + (index_t)(g * h + j) * h, total_hh + row * hp,
                   (size_t)h * sizeof(float));
            grad_b[g * h + j] = bias_total[row];
            if (grad_b_hh) grad_b_hh[g * h + j] = gru ? bias_total_h[row] : bias_total[row];
        }
    free(state_rows), free(input_rows), free(totals), free(zeros), free(deltas), free(xs);
    free(carry), free(gx);
    return 0;
}

/* ---------------------------------------------------------------- output layer and loss */

/* The output layer and the mean loss of a training batch, forward and backward, for the compiled
 * training step: forecast = bias + in·Wᵀ, where the input row `in` (rows, width) is the
 * concatenation of `parts` strided pieces (piece k of row b at part[k] + b·part_ld[k], part_width[k]
 * floats); error = forecast − target, target (rows, outs) with row stride target_ld.
 * loss 0 is Huber (δ = 1), 1 the squared error, 2 the absolute error, averaged over rows·outs.
 * Writes dL/dW (outs, width) and dL/dbias (outs,), and dL/d(piece k) to grad_part[k] (row
 * stride grad_ld[k]) where that is not NULL. Returns the loss; `forecast` (rows·outs floats)
 * is scratch. Sums run in a fixed order: the same inputs give the same bits. */
double seq_head_loss(int rows, int outs, int parts, const float *const *part,
                     const index_t *part_ld, const int *part_width, const float *weight,
                     const float *bias, const float *target, index_t target_ld, int loss,
                     float *forecast, float *grad_weight, float *grad_bias,
                     float *const *grad_part, const index_t *grad_ld) {
    int width = 0;
    for (int k = 0; k < parts; k++) width += part_width[k];
    const float scale = 1.0f / (float)((index_t)rows * outs);
    double total = 0.0;
    for (int b = 0; b < rows; b++)
        for (int o = 0; o < outs; o++) {
            const float *w = weight + (index_t)o * width;
            float sum = 0.0f;
            for (int k = 0; k < parts; k++) {
                const float *in = part[k] + b * part_ld[k];
                for (int i = 0; i < part_width[k]; i++) sum += w[i] * in[i];
                w += part_width[k];
            }
            const float error = bias[o] + sum - target[b * target_ld + o];
            const float size = fabsf(error);
            float grad;
            if (loss == 0) {
                total += size < 1.0f ? 0.5 * (double)error * error : (double)size - 0.5;
                grad = error < -1.0f ? -1.0f : (error > 1.0f ? 1.0f : error);
            } else if (loss == 1) {
                total += (double)error * error;
                grad = 2.0f * error;
            } else {
                total += size;
                grad = (float)((error > 0.0f) - (error < 0.0f));
            }
            forecast[(index_t)b * outs + o] = grad * scale; /* now dL/d(forecast) */
        }
    memset(grad_weight, 0, (size_t)outs * width * sizeof(float));
    memset(grad_bias, 0, (size_t)outs * sizeof(float));
    for (int k = 0; k < parts; k++)
        if (grad_part[k])
            for (int b = 0; b < rows; b++)
                memset(grad_part[k] + b * grad_ld[k], 0, (size_t)part_width[k] * sizeof(float));
    for (int b = 0; b < rows; b++)
        for (int o = 0; o < outs; o++) {
            const float g = forecast[(index_t)b * outs + o];
            const float *w = weight + (index_t)o * width;
            float *gw = grad_weight + (index_t)o * width;
            grad_bias[o] += g;
            for (int k = 0; k < parts; k++) {
                const float *in = part[k] + b * part_ld[k];
                for (int i = 0; i < part_width[k]; i++) gw[i] += g * in[i];
                if (grad_part[k]) {
                    float *gp = grad_part[k] + b * grad_ld[k];
                    for (int i = 0; i < part_width[k]; i++) gp[i] += g * w[i];
                }
                w += part_width[k], gw += part_width[k];
            }
        }
    return total / ((double)rows * outs);
}

/* ---------------------------------------------------------------- Adam */

/* One Adam (or AdamW, `decoupled`) step over n floats, with torch.optim.Adam's operations
 * in its order, fused where its kernels fuse them (the same bits but for the square root,
 * which torch takes from MKL within 1 ulp): m ← fma(w1, g − m, m); v ← fma(w2·g, g, β2·v);
 * p ← p + (step·m) / (√v / bias2_sqrt + eps), after p ← p·keep (AdamW) or g ← fma(p, decay,
 * g) (Adam). The caller computes the scalars in double precision as torch does: w1 = 1 − β1,
 * w2 = 1 − β2, step = −lr / (1 − β1^t), bias2_sqrt = √(1 − β2^t), keep = 1 − lr·decay.
 * One pass over the four arrays instead of eight operations that each stream them. */
static void adam_plain(index_t n, float *param, const float *grad, float *m, float *v, float w1,
                       float beta2, float w2, float eps, float step, float bias2_sqrt,
                       float decay, float keep, int decoupled) {
    for (index_t i = 0; i < n; i++) {
        float g = grad[i], p = param[i];
        if (decoupled)
            p *= keep;
        else if (decay != 0.0f)
            g = fmaf(p, decay, g);
        const float mi = fmaf(w1, g - m[i], m[i]);
        const float vi = fmaf(w2 * g, g, v[i] * beta2);
        m[i] = mi, v[i] = vi;
        param[i] = p + step * mi / (sqrtf(vi) / bias2_sqrt + eps);
    }
}

#ifdef SEQ_X86
AVX2 static void adam_avx2(index_t n, float *param, const float *grad, float *m, float *v,
                           float w1, float beta2, float w2, float eps, float step,
                           float bias2_sqrt, float decay, float keep, int decoupled) {
    const __m256 vw1 = _mm256_set1_ps(w1), vb2 = _mm256_set1_ps(beta2), vw2 = _mm256_set1_ps(w2);
    const __m256 veps = _mm256_set1_ps(eps), vstep = _mm256_set1_ps(step);
    const __m256 vbias = _mm256_set1_ps(bias2_sqrt), vdecay = _mm256_set1_ps(decay);
    const __m256 vkeep = _mm256_set1_ps(keep);
    index_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 g = _mm256_loadu_ps(grad + i), p = _mm256_loadu_ps(param + i);
        if (decoupled)
            p = _mm256_mul_ps(p, vkeep);
        else if (decay != 0.0f)
            g = _mm256_fmadd_ps(p, vdecay, g);
        const __m256 old = _mm256_loadu_ps(m + i);
        const __m256 mi = _mm256_fmadd_ps(vw1, _mm256_sub_ps(g, old), old);
        const __m256 vi =
            _mm256_fmadd_ps(_mm256_mul_ps(vw2, g), g, _mm256_mul_ps(_mm256_loadu_ps(v + i), vb2));
        _mm256_storeu_ps(m + i, mi), _mm256_storeu_ps(v + i, vi);
        const __m256 denom = _mm256_add_ps(_mm256_div_ps(_mm256_sqrt_ps(vi), vbias), veps);
        _mm256_storeu_ps(param + i,
                         _mm256_add_ps(p, _mm256_div_ps(_mm256_mul_ps(vstep, mi), denom)));
    }
    adam_plain(n - i, param + i, grad + i, m + i, v + i, w1, beta2, w2, eps, step, bias2_sqrt,
               decay, keep, decoupled);
}
#endif

void seq_adam(index_t n, float *param, const float *grad, float *m, float *v, float w1,
              float beta2, float w2, float eps, float step, float bias2_sqrt, float decay,
              float keep, int decoupled) {
#ifdef SEQ_X86
    if (gemm == gemm_avx2) {
        adam_avx2(n, param, grad, m, v, w1, beta2, w2, eps, step, bias2_sqrt, decay, keep,
                  decoupled);
        return;
    }
#endif
    adam_plain(n, param, grad, m, v, w1, beta2, w2, eps, step, bias2_sqrt, decay, keep,
               decoupled);
}

/* ---------------------------------------------------------------- module */

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_recurrence",
                                    "Recurrences of tanh RNN, GRU and LSTM layers (called through "
                                    "ctypes by seqcast._native).",
                                    -1, NULL, NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__recurrence(void) { return PyModule_Create(&module); }
