/*
 * The sequential part of recurrent layers, for seqcast.models.native.
 *
 * A recurrent layer is two kinds of work: products over all time steps at once (the input
 * projection, the weight gradients), which PyTorch does well as a few large matrix products,
 * and the recurrence itself, a chain of tiny (B, H) x (H, G) products that must run one step
 * after another. On a CPU the chain costs far more in per-operation overhead than in
 * arithmetic when PyTorch runs it step by step. This file runs the whole chain of one layer
 * and direction in one call: tanh RNN and LSTM, forward and backward.
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

static void lstm_cell_plain(int rows, int hp, float *act, float *c, float *h) {
    for (int r = 0; r < rows; r++) {
        float *a = act + (index_t)r * 4 * hp, *cr = c + (index_t)r * hp, *hr = h + (index_t)r * hp;
        for (int j = 0; j < hp; j++) {
            const float i = sigmoid(a[j]), f = sigmoid(a[hp + j]), g = tanhf(a[2 * hp + j]);
            const float o = sigmoid(a[3 * hp + j]);
            a[j] = i, a[hp + j] = f, a[2 * hp + j] = g, a[3 * hp + j] = o;
            cr[j] = f * cr[j] + i * g;
            hr[j] = o * tanhf(cr[j]);
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

/* One LSTM step's elementwise part for `rows` rows: act (rows, 4·hp) holds the gate
 * pre-activations (i, f, g, o) and becomes the activated gates; c (rows, hp) is updated in
 * place and h (rows, hp) receives σ(o)·tanh(c). hp is a multiple of 8. */
AVX2 static void lstm_cell_avx2(int rows, int hp, float *act, float *c, float *h) {
    for (int r = 0; r < rows; r++) {
        float *a = act + (index_t)r * 4 * hp, *cr = c + (index_t)r * hp, *hr = h + (index_t)r * hp;
        for (int j = 0; j < hp; j += 8) {
            const __m256 i = sigmoid_avx2(_mm256_loadu_ps(a + j));
            const __m256 f = sigmoid_avx2(_mm256_loadu_ps(a + hp + j));
            const __m256 g = tanh_avx2(_mm256_loadu_ps(a + 2 * hp + j));
            const __m256 o = sigmoid_avx2(_mm256_loadu_ps(a + 3 * hp + j));
            const __m256 cell = _mm256_fmadd_ps(f, _mm256_loadu_ps(cr + j), _mm256_mul_ps(i, g));
            _mm256_storeu_ps(a + j, i), _mm256_storeu_ps(a + hp + j, f);
            _mm256_storeu_ps(a + 2 * hp + j, g), _mm256_storeu_ps(a + 3 * hp + j, o);
            _mm256_storeu_ps(cr + j, cell);
            _mm256_storeu_ps(hr + j, _mm256_mul_ps(o, tanh_avx2(cell)));
        }
    }
}
#endif

/* One LSTM step backwards for `rows` rows: from the activated gates act (rows, 4·hp),
 * tanh(c_t) and c_{t-1} (rows, hp), dL/dh_t from outside (dh) and from step t + 1 (carry_h),
 * and dL/dc_t from step t + 1 (carry_c, updated to dL/dc_{t-1}), writes dL/d(gate
 * pre-activations) to delta (rows, 4·hp). */
static void lstm_cell_backward_plain(int rows, int hp, const float *act, const float *tanh_c,
                                     const float *c_prev, const float *dh, const float *carry_h,
                                     float *carry_c, float *delta) {
    for (int r = 0; r < rows; r++) {
        const float *a = act + (index_t)r * 4 * hp;
        float *d = delta + (index_t)r * 4 * hp;
        const index_t s = (index_t)r * hp;
        for (int j = 0; j < hp; j++) {
            const float i = a[j], f = a[hp + j], g = a[2 * hp + j], o = a[3 * hp + j];
            const float tc = tanh_c[s + j], grad_h = dh[s + j] + carry_h[s + j];
            const float grad_c = carry_c[s + j] + grad_h * o * (1.0f - tc * tc);
            d[j] = grad_c * g * i * (1.0f - i);
            d[hp + j] = grad_c * c_prev[s + j] * f * (1.0f - f);
            d[2 * hp + j] = grad_c * i * (1.0f - g * g);
            d[3 * hp + j] = grad_h * tc * o * (1.0f - o);
            carry_c[s + j] = grad_c * f;
        }
    }
}

#ifdef SEQ_X86
AVX2 static void lstm_cell_backward_avx2(int rows, int hp, const float *act,
                                         const float *tanh_c, const float *c_prev,
                                         const float *dh, const float *carry_h, float *carry_c,
                                         float *delta) {
    const __m256 one = _mm256_set1_ps(1.0f);
    for (int r = 0; r < rows; r++) {
        const float *a = act + (index_t)r * 4 * hp;
        float *d = delta + (index_t)r * 4 * hp;
        const index_t s = (index_t)r * hp;
        for (int j = 0; j < hp; j += 8) {
            const __m256 i = _mm256_loadu_ps(a + j), f = _mm256_loadu_ps(a + hp + j);
            const __m256 g = _mm256_loadu_ps(a + 2 * hp + j), o = _mm256_loadu_ps(a + 3 * hp + j);
            const __m256 tc = _mm256_loadu_ps(tanh_c + s + j);
            const __m256 grad_h = _mm256_add_ps(_mm256_loadu_ps(dh + s + j),
                                                _mm256_loadu_ps(carry_h + s + j));
            const __m256 grad_c = _mm256_fmadd_ps(
                _mm256_mul_ps(grad_h, o), _mm256_fnmadd_ps(tc, tc, one),
                _mm256_loadu_ps(carry_c + s + j));
            const __m256 gi = _mm256_mul_ps(grad_c, g);
            const __m256 gf = _mm256_mul_ps(grad_c, _mm256_loadu_ps(c_prev + s + j));
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
#endif

typedef void (*cell_backward_fn)(int, int, const float *, const float *, const float *,
                                 const float *, const float *, float *, float *);

typedef void (*gemm_fn)(int, int, int, const float *, index_t, index_t, const float *, float *,
                        index_t, const float *);
typedef void (*map_fn)(float *, index_t);
typedef void (*cell_fn)(int, int, float *, float *, float *);

static gemm_fn gemm = gemm_plain;
static map_fn tanh_array = tanh_plain;
static cell_fn lstm_cell = lstm_cell_plain;
static cell_backward_fn lstm_cell_backward = lstm_cell_backward_plain;

/* 1 when the vector kernels are in use, 0 for plain C. */
int seq_select(int allow_vector) {
    gemm = gemm_plain, tanh_array = tanh_plain, lstm_cell = lstm_cell_plain;
    lstm_cell_backward = lstm_cell_backward_plain;
#ifdef SEQ_X86
    __builtin_cpu_init();
    if (allow_vector && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
        gemm = gemm_avx2, tanh_array = tanh_avx2_array, lstm_cell = lstm_cell_avx2;
        lstm_cell_backward = lstm_cell_backward_avx2;
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

/* Copies row block (rows, gates·h) of a sequence step into padded scratch, gate by gate. */
static void load_step(float *dst, const float *src, index_t ld, int rows, int gates, int h) {
    const int hp = padded(h);
    for (int r = 0; r < rows; r++)
        for (int g = 0; g < gates; g++)
            memcpy(dst + (index_t)r * gates * hp + g * hp, src + r * ld + g * h,
                   (size_t)h * sizeof(float));
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

static void free_all(float **arrays, int count) {
    for (int i = 0; i < count; i++) free(arrays[i]);
}

/* A layer of `gates` gates: 1 is a tanh RNN, h_t = tanh(x_t W_ihᵀ + h_{t-1} W_hhᵀ + b); 4 is
 * PyTorch's LSTM, gates (i, f, g, o) = x_t W_ihᵀ + h_{t-1} W_hhᵀ + b, c_t = σ(f) c_{t-1} +
 * σ(i) tanh(g), h_t = σ(o) tanh(c_t). h_{-1} = c_{-1} = 0; b = b_ih + b_hh.
 *
 * x: the layer's input (steps, rows, in); w_ih (gates·h, in), w_hh (gates·h, h) row-major.
 * Writes out (steps, rows, h); with `act` and `cell` (an LSTM in training) also the activated
 * gates (steps, rows, 4h) and c (steps, rows, h) that the backward pass needs.
 * Returns 0, or -1 when out of memory. */
int seq_layer_forward(int gates, int steps, int rows, int in, int h, const float *x,
                      index_t x_step, index_t x_ld, const float *w_ih, const float *w_hh,
                      const float *b_ih, const float *b_hh, float *out, index_t out_step,
                      index_t out_ld, float *act, index_t act_step, index_t act_ld,
                      float *cell, index_t cell_step, index_t cell_ld) {
    const int hp = padded(h), n = gates * hp;
    float *input_matrix = pack(w_ih, in, in, gates, h); /* W_ihᵀ (in, n) */
    float *state_matrix = pack(w_hh, h, hp, gates, h);  /* W_hhᵀ (hp, n) */
    float *bias = calloc((size_t)n, sizeof(float));
    float *work = calloc((size_t)STACK_BLOCK * (2 * n + 2 * hp), sizeof(float));
    if (!input_matrix || !state_matrix || !bias || !work) {
        free(input_matrix), free(state_matrix), free(bias), free(work);
        return -1;
    }
    for (int g = 0; g < gates; g++)
        for (int j = 0; j < h; j++) bias[g * hp + j] = b_ih[g * h + j] + b_hh[g * h + j];
    /* Two pre-activation buffers (a tanh layer's state is its activated pre-activation), and
     * for the LSTM the state h and the cell c. */
    float *buffers[2] = {work, work + STACK_BLOCK * n};
    float *lstm_h = buffers[1] + STACK_BLOCK * n, *c = lstm_h + STACK_BLOCK * hp;
    for (int r0 = 0; r0 < rows; r0 += STACK_BLOCK) {
        const int nb = rows - r0 < STACK_BLOCK ? rows - r0 : STACK_BLOCK;
        memset(c, 0, (size_t)STACK_BLOCK * hp * sizeof(float));
        for (int t = 0; t < steps; t++) {
            float *a = buffers[t & 1];
            const float *previous = gates == 1 ? buffers[(t & 1) ^ 1] : lstm_h;
            gemm(nb, in, n, x + t * x_step + r0 * x_ld, x_ld, 1, input_matrix, a, n, bias);
            if (t) gemm(nb, hp, n, previous, hp, 1, state_matrix, a, n, NULL);
            float *state = a;
            if (gates == 1) {
                tanh_array(a, (index_t)nb * n);
            } else {
                lstm_cell(nb, hp, a, c, lstm_h);
                state = lstm_h;
                if (act) store_step(act + t * act_step + r0 * act_ld, act_ld, a, nb, 4, h);
                if (cell) store_step(cell + t * cell_step + r0 * cell_ld, cell_ld, c, nb, 1, h);
            }
            store_step(out + t * out_step + r0 * out_ld, out_ld, state, nb, 1, h);
        }
    }
    free(input_matrix), free(state_matrix), free(bias), free(work);
    return 0;
}

/* Backward through one layer and direction of :c:func:`seq_layer_forward`, from the forward's
 * input x, outputs out (and for the LSTM act and cell) and grad = dL/dh_t from outside the
 * recurrence (the layer above or the output layer). Writes the weight gradients to grad_w_ih
 * (gates·h, in), grad_w_hh (gates·h, h) and grad_b (gates·h,) (also to grad_b_hh when given:
 * both biases have the same gradient), and dL/dx to grad_x (steps,
 * rows, in) when given: written, or added to it with `add_x` (the second direction). */
int seq_layer_backward(int gates, int steps, int rows, int in, int h, const float *x,
                       index_t x_step, index_t x_ld, const float *out, index_t out_step,
                       index_t out_ld, const float *act, index_t act_step, index_t act_ld,
                       const float *cell, index_t cell_step, index_t cell_ld, const float *grad,
                       index_t grad_step, index_t grad_ld, const float *w_ih, const float *w_hh,
                       float *grad_w_ih, float *grad_w_hh, float *grad_b, float *grad_b_hh,
                       float *grad_x,
                       index_t gx_step, index_t gx_ld, int add_x) {
    const int hp = padded(h), n = gates * hp, inp = padded(in), wide = hp + inp;
    const int b = STACK_BLOCK;
    /* [W_hh | W_ih] with rows packed gate by gate, (n, hp + inp): one product of dL/da_t
     * gives the carry to step t - 1 and dL/dx_t. */
    float *matrix = calloc((size_t)n * wide, sizeof(float));
    /* Weight gradients, (n, inp + hp): dL/da_tᵀ [x_t | h_{t-1}] summed over steps and rows. */
    float *total = calloc((size_t)n * (inp + hp), sizeof(float));
    float *bias_total = calloc((size_t)n, sizeof(float));
    float *work = calloc((size_t)b * (2 * n + 6 * hp + 2 * wide), sizeof(float));
    if (!matrix || !total || !bias_total || !work) {
        free(matrix), free(total), free(bias_total), free(work);
        return -1;
    }
    for (int g = 0; g < gates; g++)
        for (int j = 0; j < h; j++) {
            memcpy(matrix + (index_t)(g * hp + j) * wide, w_hh + (index_t)(g * h + j) * h,
                   (size_t)h * sizeof(float));
            memcpy(matrix + (index_t)(g * hp + j) * wide + hp, w_ih + (index_t)(g * h + j) * in,
                   (size_t)in * sizeof(float));
        }
    float *a = work, *delta = a + b * n, *carry_h = delta + b * n, *carry_c = carry_h + b * hp;
    float *c = carry_c + b * hp, *c_prev = c + b * hp, *dh = c_prev + b * hp;
    float *value = dh + b * hp, *product = value + b * hp, *z = product + b * wide;
    for (int r0 = 0; r0 < rows; r0 += b) {
        const int nb = rows - r0 < b ? rows - r0 : b;
        memset(carry_h, 0, (size_t)b * hp * sizeof(float));
        memset(carry_c, 0, (size_t)b * hp * sizeof(float));
        for (int t = steps - 1; t >= 0; t--) {
            memset(dh, 0, (size_t)b * hp * sizeof(float));
            if (grad) load_step(dh, grad + t * grad_step + r0 * grad_ld, grad_ld, nb, 1, h);
            if (gates == 1) {
                load_step(value, out + t * out_step + r0 * out_ld, out_ld, nb, 1, h);
                for (index_t i = 0; i < (index_t)nb * hp; i++)
                    delta[i] = (dh[i] + carry_h[i]) * (1.0f - value[i] * value[i]);
            } else {
                load_step(a, act + t * act_step + r0 * act_ld, act_ld, nb, 4, h);
                load_step(c, cell + t * cell_step + r0 * cell_ld, cell_ld, nb, 1, h);
                if (t)
                    load_step(c_prev, cell + (t - 1) * cell_step + r0 * cell_ld, cell_ld, nb, 1, h);
                else
                    memset(c_prev, 0, (size_t)b * hp * sizeof(float));
                tanh_array(c, (index_t)nb * hp); /* c now holds tanh(c_t) */
                lstm_cell_backward(nb, hp, a, c, c_prev, dh, carry_h, carry_c, delta);
            }
            /* The carry to step t - 1 and dL/dx_t in one product. */
            if (t || grad_x) {
                memset(product, 0, (size_t)nb * wide * sizeof(float));
                gemm(nb, n, wide, delta, n, 1, matrix, product, wide, NULL);
            }
            /* z = [x_t | h_{t-1}] (b, wide) for the weight gradients. */
            memset(z, 0, (size_t)b * (inp + hp) * sizeof(float));
            for (int r = 0; r < nb; r++)
                memcpy(z + (index_t)r * (inp + hp), x + t * x_step + (r0 + r) * x_ld,
                       (size_t)in * sizeof(float));
            if (t)
                for (int r = 0; r < nb; r++)
                    memcpy(z + (index_t)r * (inp + hp) + inp,
                           out + (t - 1) * out_step + (r0 + r) * out_ld, (size_t)h * sizeof(float));
            for (int r = 0; r < nb; r++)
                for (int j = 0; j < n; j++) bias_total[j] += delta[(index_t)r * n + j];
            /* total += deltaᵀ z: delta read transposed (row j, step r at delta[r·n + j]). */
            gemm(n, nb, inp + hp, delta, 1, n, z, total, inp + hp, NULL);
            if (t || grad_x) {
                for (int r = 0; r < nb; r++) {
                    const float *pr = product + (index_t)r * wide;
                    if (t) memcpy(carry_h + (index_t)r * hp, pr, (size_t)hp * sizeof(float));
                    if (grad_x) {
                        float *gx = grad_x + t * gx_step + (r0 + r) * gx_ld;
                        if (add_x)
                            for (int i = 0; i < in; i++) gx[i] += pr[hp + i];
                        else
                            memcpy(gx, pr + hp, (size_t)in * sizeof(float));
                    }
                }
            }
        }
    }
    for (int g = 0; g < gates; g++)
        for (int j = 0; j < h; j++) {
            const float *row = total + (index_t)(g * hp + j) * (inp + hp);
            float *gi = grad_w_ih + (index_t)(g * h + j) * in;
            float *gh = grad_w_hh + (index_t)(g * h + j) * h;
            memcpy(gi, row, (size_t)in * sizeof(float));
            memcpy(gh, row + inp, (size_t)h * sizeof(float));
            grad_b[g * h + j] = bias_total[g * hp + j];
            if (grad_b_hh) grad_b_hh[g * h + j] = bias_total[g * hp + j];
        }
    free(matrix), free(total), free(bias_total), free(work);
    return 0;
}

/* ---------------------------------------------------------------- tanh RNN stack, fused */

#define MAX_LAYERS 16

/* A stack of `layers` tanh RNN layers (nn.RNN's weights: w_ih[l] (h, in_l), w_hh[l] (h, h),
 * biases (h,)) run together step by step on blocks of rows, so that no layer's sequence has to
 * leave the cache between layers: forecasts without gradients. x: (steps, rows, features).
 * Writes the top layer's last output to `last` (rows, h). */
int seq_tanh_stack_forward(int steps, int rows, int features, int h, int layers,
                           const float *x, index_t x_step, index_t x_ld,
                           const float *const *w_ih, const float *const *w_hh,
                           const float *const *b_ih, const float *const *b_hh, float *last) {
    if (layers < 1 || layers > MAX_LAYERS) return -2;
    const int hp = padded(h);
    /* Per layer: W_ihᵀ (in, hp), W_hhᵀ (hp, hp), the summed bias (hp,) and two state buffers
     * (this step's and the last one's, STACK_BLOCK × hp each). */
    float *input_matrix[MAX_LAYERS] = {0}, *state_matrix[MAX_LAYERS] = {0};
    float *bias[MAX_LAYERS] = {0}, *states[MAX_LAYERS] = {0};
    int failed = 0;
    for (int l = 0; l < layers && !failed; l++) {
        const int in = l ? h : features;
        input_matrix[l] = pack(w_ih[l], in, l ? hp : in, 1, h);
        state_matrix[l] = pack(w_hh[l], h, hp, 1, h);
        bias[l] = calloc((size_t)hp, sizeof(float));
        states[l] = calloc((size_t)STACK_BLOCK * hp * 2, sizeof(float));
        failed = !input_matrix[l] || !state_matrix[l] || !bias[l] || !states[l];
        for (int j = 0; j < h && !failed; j++) bias[l][j] = b_ih[l][j] + b_hh[l][j];
    }
    if (!failed) {
        for (int r0 = 0; r0 < rows; r0 += STACK_BLOCK) {
            const int nb = rows - r0 < STACK_BLOCK ? rows - r0 : STACK_BLOCK;
            for (int t = 0; t < steps; t++) {
                for (int l = 0; l < layers; l++) {
                    float *current = states[l] + (t & 1) * STACK_BLOCK * hp;
                    const float *previous = states[l] + ((t & 1) ^ 1) * STACK_BLOCK * hp;
                    if (l)
                        gemm(nb, hp, hp, states[l - 1] + (t & 1) * STACK_BLOCK * hp, hp, 1,
                             input_matrix[l], current, hp, bias[l]);
                    else
                        gemm(nb, features, hp, x + t * x_step + r0 * x_ld, x_ld, 1,
                             input_matrix[0], current, hp, bias[0]);
                    if (t) gemm(nb, hp, hp, previous, hp, 1, state_matrix[l], current, hp, NULL);
                    tanh_array(current, (index_t)nb * hp);
                    if (l + 1 == layers && t + 1 == steps)
                        store_step(last + (index_t)r0 * h, h, current, nb, 1, h);
                }
            }
        }
    }
    free_all(input_matrix, layers), free_all(state_matrix, layers);
    free_all(bias, layers), free_all(states, layers);
    return failed ? -1 : 0;
}

/* ---------------------------------------------------------------- module */

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_recurrence",
                                    "Recurrences of tanh RNN and LSTM layers (called through "
                                    "ctypes by seqcast.models.native).",
                                    -1, NULL, NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__recurrence(void) { return PyModule_Create(&module); }
