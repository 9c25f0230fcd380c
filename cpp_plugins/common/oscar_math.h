/*
 * oscar_math.h -- the one arithmetic of OSCAR decode + NMS (spec section 6).
 *
 * Included by the C++ CPU library (cpp_plugins/cpu), the CUDA kernels (cpp_plugins/cuda) and,
 * through them, the TensorRT plugins. It mirrors oscar_edge/postprocess.py operation by
 * operation, in float32, so that all three give bit-identical candidate scores, boxes and IoU
 * decisions:
 *
 *  - every float operation is a single IEEE-754 float32 operation with round-to-nearest-even.
 *    On the device the explicit __fadd_rn/__fmul_rn/... intrinsics are used because nvcc
 *    contracts a*b+c into an FMA by default; on the host the code MUST be compiled with
 *    -ffp-contract=off (GCC contracts by default on aarch64, e.g. on a Jetson) and without
 *    -ffast-math. The CMake and setup.py builds pass these flags.
 *  - exp() is NOT the C library's expf nor CUDA's expf (both may differ by an ULP between
 *    platforms, and numpy uses yet another SIMD implementation): oscar_expf below uses only
 *    +, -, * and exact power-of-two scaling, and postprocess.py implements the very same
 *    sequence in numpy.
 *
 * Compiles as C99, C++ (g++/clang++) and CUDA (nvcc). No allocation, no libm calls.
 */
#ifndef OSCAR_MATH_H
#define OSCAR_MATH_H

#include <stdint.h>
#include <string.h>

#if defined(__CUDACC__)
#define OSCAR_HD static __host__ __device__ __forceinline__
#else
#define OSCAR_HD static inline
#endif

#if defined(__CUDA_ARCH__) && defined(__USE_FAST_MATH__)
#error "oscar_math.h must not be compiled with --use_fast_math (it changes rounding and denormals)"
#endif
#if defined(__FAST_MATH__)
#error "oscar_math.h must not be compiled with -ffast-math (it allows reassociation)"
#endif

/* Strides of the two pyramid levels (spec: COARSE_STRIDE, REFINE_STRIDE). */
#define OSCAR_COARSE_STRIDE 8
#define OSCAR_REFINE_STRIDE 4

/* ---- single float32 operations that are never fused or reassociated ---------------------- */

OSCAR_HD float oscar_fadd(float a, float b)
{
#if defined(__CUDA_ARCH__)
    return __fadd_rn(a, b);
#else
    return a + b;
#endif
}

OSCAR_HD float oscar_fsub(float a, float b)
{
#if defined(__CUDA_ARCH__)
    return __fsub_rn(a, b);
#else
    return a - b;
#endif
}

OSCAR_HD float oscar_fmul(float a, float b)
{
#if defined(__CUDA_ARCH__)
    return __fmul_rn(a, b);
#else
    return a * b;
#endif
}

OSCAR_HD float oscar_fdiv(float a, float b)
{
#if defined(__CUDA_ARCH__)
    return __fdiv_rn(a, b);
#else
    return a / b;
#endif
}

OSCAR_HD float oscar_bits_to_float(uint32_t u)
{
#if defined(__CUDA_ARCH__)
    return __uint_as_float(u);
#else
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
#endif
}

OSCAR_HD uint32_t oscar_float_to_bits(float f)
{
#if defined(__CUDA_ARCH__)
    return __float_as_uint(f);
#else
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
#endif
}

/* max/min as numpy's maximum/minimum for non-NaN inputs. */
OSCAR_HD float oscar_maxf(float a, float b)
{
    return a < b ? b : a;
}

OSCAR_HD float oscar_minf(float a, float b)
{
    return b < a ? b : a;
}

/* Clamp to [0, hi] like np.clip(v, 0, hi); a NaN stays NaN. */
OSCAR_HD float oscar_clampf(float v, float hi)
{
    v = v < 0.0f ? 0.0f : v;
    return v > hi ? hi : v;
}

/* ---- exp and sigmoid ---------------------------------------------------------------------- */

/* Constants as exact float32 values (hex literals; postprocess.py uses the same hex strings). */
#define OSCAR_EXP_LOG2E 0x1.715476p+0f  /* float32(1 / ln 2) */
#define OSCAR_EXP_ROUND 0x1.8p+23f      /* 1.5 * 2^23: (t + R) - R rounds t to an integer */
#define OSCAR_EXP_LN2_HI 0x1.63p-1f     /* 0.693359375, 9 significant bits */
#define OSCAR_EXP_LN2_LO -0x1.bd0106p-13f /* float32(ln 2 - LN2_HI) */
#define OSCAR_EXP_C7 0x1.a01a02p-13f    /* float32(1 / 7!) */
#define OSCAR_EXP_C6 0x1.6c16c2p-10f    /* float32(1 / 6!) */
#define OSCAR_EXP_C5 0x1.111112p-7f     /* float32(1 / 5!) */
#define OSCAR_EXP_C4 0x1.555556p-5f     /* float32(1 / 4!) */
#define OSCAR_EXP_C3 0x1.555556p-3f     /* float32(1 / 3!) */
#define OSCAR_EXP_C2 0x1.0p-1f          /* 1 / 2 */
#define OSCAR_EXP_X_MIN -104.0f         /* exp(x) rounds to 0 below this */
#define OSCAR_EXP_X_MAX 89.0f           /* exp(x) overflows to +inf above about 88.72 */

/* 2^k for k in [-126, 127] from its bit pattern. */
OSCAR_HD float oscar_pow2i(int32_t k)
{
    return oscar_bits_to_float((uint32_t)(k + 127) << 23);
}

/*
 * exp(x) in float32, about 1 ULP, reproducible bit for bit on every IEEE-754 platform:
 *   n = rint(x / ln2) by the 1.5*2^23 trick, r = x - n*ln2 (Cody-Waite, two steps),
 *   p = degree-7 Taylor polynomial of e^r (Horner), result = p * 2^(n >> 1) * 2^(n - (n >> 1)).
 * x is clamped to [-104, 89] first (results there are 0 / +inf anyway); NaN gives NaN.
 */
OSCAR_HD float oscar_expf(float x)
{
    if (x != x)
    {
        return x;
    }
    x = x < OSCAR_EXP_X_MIN ? OSCAR_EXP_X_MIN : x;
    x = x > OSCAR_EXP_X_MAX ? OSCAR_EXP_X_MAX : x;
    float const n = oscar_fsub(oscar_fadd(oscar_fmul(x, OSCAR_EXP_LOG2E), OSCAR_EXP_ROUND), OSCAR_EXP_ROUND);
    float r = oscar_fsub(x, oscar_fmul(n, OSCAR_EXP_LN2_HI));
    r = oscar_fsub(r, oscar_fmul(n, OSCAR_EXP_LN2_LO));
    float p = OSCAR_EXP_C7;
    p = oscar_fadd(oscar_fmul(p, r), OSCAR_EXP_C6);
    p = oscar_fadd(oscar_fmul(p, r), OSCAR_EXP_C5);
    p = oscar_fadd(oscar_fmul(p, r), OSCAR_EXP_C4);
    p = oscar_fadd(oscar_fmul(p, r), OSCAR_EXP_C3);
    p = oscar_fadd(oscar_fmul(p, r), OSCAR_EXP_C2);
    p = oscar_fadd(oscar_fmul(p, r), 1.0f);
    p = oscar_fadd(oscar_fmul(p, r), 1.0f);
    int32_t const ni = (int32_t)n; /* exact: n is an integer in [-150, 129] */
    int32_t const n1 = ni >> 1;    /* arithmetic shift: floor(n / 2), as numpy's >> */
    int32_t const n2 = ni - n1;
    return oscar_fmul(oscar_fmul(p, oscar_pow2i(n1)), oscar_pow2i(n2));
}

/* Logistic function 1 / (1 + exp(-x)) in float32 (postprocess.sigmoid). */
OSCAR_HD float oscar_sigmoid(float x)
{
    return oscar_fdiv(1.0f, oscar_fadd(1.0f, oscar_expf(-x)));
}

/* Final score (rule 4): sigmoid(refine) * sigmoid(coarse) * sigmoid(noco), left to right. */
OSCAR_HD float oscar_score_product(float s_refine, float s_coarse, float s_noco)
{
    return oscar_fmul(oscar_fmul(s_refine, s_coarse), s_noco);
}

/*
 * Order-preserving map of a float score to uint32 (a < b  <=>  key(a) < key(b) for non-NaN
 * floats; -0.0 and +0.0 map to the same key). Sorting (key desc, index asc) is the stable
 * descending sort of the reference.
 */
OSCAR_HD uint32_t oscar_score_key(float s)
{
    if (s == 0.0f)
    {
        s = 0.0f;
    }
    uint32_t const u = oscar_float_to_bits(s);
    return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

OSCAR_HD float oscar_score_from_key(uint32_t k)
{
    return oscar_bits_to_float((k & 0x80000000u) ? (k & 0x7FFFFFFFu) : ~k);
}

/*
 * 64-bit sort key of a candidate: score key in the high word, (0xFFFFFFFF - index) in the low
 * word, so that a DESCENDING sort of the keys orders by score descending, then index
 * ascending (the tie rule). Keys of real candidates are never 0 when the score is >= 0.
 */
OSCAR_HD uint64_t oscar_rank_key(uint32_t score_key, uint32_t index)
{
    return ((uint64_t)score_key << 32) | (uint64_t)(0xFFFFFFFFu - index);
}

OSCAR_HD uint32_t oscar_rank_key_index(uint64_t key)
{
    return 0xFFFFFFFFu - (uint32_t)(key & 0xFFFFFFFFu);
}

/* ---- decode of one P2 point (rules 1 and 3) ----------------------------------------------- */

/*
 * Box of P2 point (i, j): anchor = coarse box of P3 point (i/2, j/2) decoded at its centre
 * px = (j/2 + 0.5) * 8, py = (i/2 + 0.5) * 8 as (px - l, py - t, px + r, py + b); box =
 * anchor + 4 * delta; x clamped to [0, clamp_w], y to [0, clamp_h].
 *   coarse = (l, t, r, b) at (i/2, j/2), delta = (dx1, dy1, dx2, dy2) at (i, j).
 */
OSCAR_HD void oscar_decode_point(int32_t i, int32_t j, float const coarse[4], float const delta[4],
    float clamp_h, float clamp_w, float out[4])
{
    float const stride_c = (float)OSCAR_COARSE_STRIDE;
    float const stride_r = (float)OSCAR_REFINE_STRIDE;
    float const px = oscar_fmul(oscar_fadd((float)(j >> 1), 0.5f), stride_c);
    float const py = oscar_fmul(oscar_fadd((float)(i >> 1), 0.5f), stride_c);
    float const a0 = oscar_fsub(px, coarse[0]);
    float const a1 = oscar_fsub(py, coarse[1]);
    float const a2 = oscar_fadd(px, coarse[2]);
    float const a3 = oscar_fadd(py, coarse[3]);
    out[0] = oscar_clampf(oscar_fadd(a0, oscar_fmul(stride_r, delta[0])), clamp_w);
    out[1] = oscar_clampf(oscar_fadd(a1, oscar_fmul(stride_r, delta[1])), clamp_h);
    out[2] = oscar_clampf(oscar_fadd(a2, oscar_fmul(stride_r, delta[2])), clamp_w);
    out[3] = oscar_clampf(oscar_fadd(a3, oscar_fmul(stride_r, delta[3])), clamp_h);
}

/* ---- IoU (rule 5) --------------------------------------------------------------------------- */

/*
 * IoU of xyxy boxes a (the kept box) and b, continuous coordinates (no +1), 0 where the union
 * is not > 0; same operation order as postprocess.box_iou.
 */
OSCAR_HD float oscar_iou(float const a[4], float const b[4])
{
    float const ix1 = oscar_maxf(a[0], b[0]);
    float const iy1 = oscar_maxf(a[1], b[1]);
    float const ix2 = oscar_minf(a[2], b[2]);
    float const iy2 = oscar_minf(a[3], b[3]);
    float const inter
        = oscar_fmul(oscar_maxf(oscar_fsub(ix2, ix1), 0.0f), oscar_maxf(oscar_fsub(iy2, iy1), 0.0f));
    float const area_a = oscar_fmul(oscar_fsub(a[2], a[0]), oscar_fsub(a[3], a[1]));
    float const area_b = oscar_fmul(oscar_fsub(b[2], b[0]), oscar_fsub(b[3], b[1]));
    float const uni = oscar_fsub(oscar_fadd(area_a, area_b), inter);
    return uni > 0.0f ? oscar_fdiv(inter, uni) : 0.0f;
}

/* Rule 5's test: is b suppressed by the kept box a? */
OSCAR_HD int oscar_suppresses(float const a[4], float const b[4], float iou_threshold)
{
    return oscar_iou(a, b) > iou_threshold;
}

#endif /* OSCAR_MATH_H */
