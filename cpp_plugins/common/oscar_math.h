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
 * Also the arithmetic of the peak refinement (rule 6: OscarPeakRefine, the
 * postprocess.peak_refine of the reference), whose only float operations are +, -, *, / and an
 * exact floor/ceil.
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
 * px = (j/2 + 0.5) * 8, py = (i/2 + 0.5) * 8 as (px - l, py - t, px + r, py + b) with
 * (l, t, r, b) = oscar_expf(coarse); box = anchor + 4 * delta; x clamped to [0, clamp_w],
 * y to [0, clamp_h].
 *   coarse = log-distances (log l, log t, log r, log b) at (i/2, j/2) (the network's
 *   coarse_bbox output; the exp() of spec section 2 happens here, see models/head.py),
 *   delta = (dx1, dy1, dx2, dy2) at (i, j).
 */
OSCAR_HD void oscar_decode_point(int32_t i, int32_t j, float const coarse[4], float const delta[4],
    float clamp_h, float clamp_w, float out[4])
{
    float const stride_c = (float)OSCAR_COARSE_STRIDE;
    float const stride_r = (float)OSCAR_REFINE_STRIDE;
    float const px = oscar_fmul(oscar_fadd((float)(j >> 1), 0.5f), stride_c);
    float const py = oscar_fmul(oscar_fadd((float)(i >> 1), 0.5f), stride_c);
    float const a0 = oscar_fsub(px, oscar_expf(coarse[0]));
    float const a1 = oscar_fsub(py, oscar_expf(coarse[1]));
    float const a2 = oscar_fadd(px, oscar_expf(coarse[2]));
    float const a3 = oscar_fadd(py, oscar_expf(coarse[3]));
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

/* ---- peak refinement (rule 6) -------------------------------------------------------------
 * Each kept box is moved so that its centre sits on the brightest pixel of channel 0 of the
 * network input inside it (postprocess.peak_refine, cpp_plugins/README.md "OscarPeakRefine").
 * The pieces below are shared by the CPU twin (oscar_peak_refine_box, sequential) and the CUDA
 * kernel (parallel search, then the same centroid and placement). The search only compares
 * values (exact); the arithmetic is the float32 sequence of the reference. */

/* floor / ceil of a float32, exact, without libm (|x| >= 2^23, inf and NaN are returned as
 * they are; the sign of a zero result may differ from floorf, which no caller sees). */
OSCAR_HD float oscar_floorf(float x)
{
    if (!(x > -8388608.0f && x < 8388608.0f))
    {
        return x;
    }
    float const t = (float)(int32_t)x; /* truncation toward zero, exact here */
    return t > x ? oscar_fsub(t, 1.0f) : t;
}

OSCAR_HD float oscar_ceilf(float x)
{
    if (!(x > -8388608.0f && x < 8388608.0f))
    {
        return x;
    }
    float const t = (float)(int32_t)x;
    return t < x ? oscar_fadd(t, 1.0f) : t;
}

/* -inf from its bit pattern (no INFINITY macro: plain C99 without math.h). */
OSCAR_HD float oscar_neg_inf(void)
{
    return oscar_bits_to_float(0xFF800000u);
}

/* The value a pixel has in the peak search: a NaN counts as -inf (it never wins). */
OSCAR_HD float oscar_peak_value(float v)
{
    return v == v ? v : oscar_neg_inf();
}

/* Pixel-index offset of box coordinates for letterbox scale s: o = (s - 1) * 0.5 (box
 * coordinate v is network pixel-index coordinate v + o). */
OSCAR_HD float oscar_peak_offset(float scale)
{
    return oscar_fmul(oscar_fsub(scale, 1.0f), 0.5f);
}

/* Content pixels along one axis: min(floor(clamp), size), at least 1 (NaN clamp -> 1). */
OSCAR_HD int32_t oscar_peak_pixel_count(float clamp, int32_t size)
{
    float const f = oscar_floorf(clamp);
    if (f >= (float)size)
    {
        return size;
    }
    return f >= 1.0f ? (int32_t)f : 1;
}

/* Clamp a float pixel index to [0, n - 1] (NaN -> 0) and convert it. */
OSCAR_HD int32_t oscar_peak_index(float v, int32_t n)
{
    float const top = (float)(n - 1);
    v = v >= 0.0f ? v : 0.0f;
    v = v > top ? top : v;
    return (int32_t)v;
}

/*
 * Search window along one axis for box coordinates v1 <= v2 and offset o: the pixels whose
 * centre lies in [v1 + o, v2 + o], lo = ceil(v1 + o), hi = floor(v2 + o); when there is none,
 * the pixel nearest to the box centre, floor(((v1 + o) + (v2 + o)) * 0.5 + 0.5). Clamped to
 * [0, n - 1], hi >= lo: at least one pixel, never outside the content.
 */
OSCAR_HD void oscar_peak_window(float v1, float v2, float o, int32_t n, int32_t* lo, int32_t* hi)
{
    float const p1 = oscar_fadd(v1, o);
    float const p2 = oscar_fadd(v2, o);
    float a = oscar_ceilf(p1);
    float b = oscar_floorf(p2);
    if (a > b)
    {
        a = oscar_floorf(oscar_fadd(oscar_fmul(oscar_fadd(p1, p2), 0.5f), 0.5f));
        b = a;
    }
    *lo = oscar_peak_index(a, n);
    *hi = oscar_peak_index(b, n);
    if (*hi < *lo)
    {
        *hi = *lo;
    }
}

/*
 * Running state of the peak search: the maximum so far and the bounding rows / columns of the
 * pixels equal to it (the tied maxima). Start from oscar_peak_init; pixels may be added and
 * states merged in any order (the result is order-independent).
 */
typedef struct OscarPeakState
{
    float best;
    int32_t r0, r1, c0, c1;
} OscarPeakState;

OSCAR_HD void oscar_peak_init(OscarPeakState* s)
{
    s->best = oscar_neg_inf();
    s->r0 = 0x7FFFFFFF;
    s->r1 = -1;
    s->c0 = 0x7FFFFFFF;
    s->c1 = -1;
}

OSCAR_HD void oscar_peak_add(OscarPeakState* s, float value, int32_t r, int32_t c)
{
    float const v = oscar_peak_value(value);
    if (v > s->best)
    {
        s->best = v;
        s->r0 = r;
        s->r1 = r;
        s->c0 = c;
        s->c1 = c;
    }
    else if (v == s->best)
    {
        s->r0 = r < s->r0 ? r : s->r0;
        s->r1 = r > s->r1 ? r : s->r1;
        s->c0 = c < s->c0 ? c : s->c0;
        s->c1 = c > s->c1 ? c : s->c1;
    }
}

OSCAR_HD void oscar_peak_merge(OscarPeakState* s, OscarPeakState const* o)
{
    if (o->best > s->best)
    {
        *s = *o;
    }
    else if (o->best == s->best)
    {
        s->r0 = o->r0 < s->r0 ? o->r0 : s->r0;
        s->r1 = o->r1 > s->r1 ? o->r1 : s->r1;
        s->c0 = o->c0 < s->c0 ? o->c0 : s->c0;
        s->c1 = o->c1 > s->c1 ? o->c1 : s->c1;
    }
}

/*
 * 3x3 intensity-weighted centroid around the peak pixel. nb[(dy + 1) * 3 + (dx + 1)] is the value
 * at offset (dy, dx) from the peak pixel; only the offsets dy0 <= dy <= dy1, dx0 <= dx <= dx1
 * (the neighbourhood clipped to the content) are read. With all of them finite: mn = their
 * minimum, w = v - mn, summed in row-major order sw += w, sx += w * dx, sy += w * dy; the offsets
 * are (sy / sw, sx / sw) when sw > 0, else (0, 0) (also when a value is not finite). Fixed trip
 * counts, so nvcc keeps nb in registers.
 */
OSCAR_HD void oscar_peak_centroid(float const nb[9], int32_t dy0, int32_t dy1, int32_t dx0, int32_t dx1,
    float* off_y, float* off_x)
{
    float mn = oscar_bits_to_float(0x7F800000u); /* +inf */
    float sw = 0.0f;
    float sx = 0.0f;
    float sy = 0.0f;
    int32_t finite = 1;
    int32_t i;
    *off_y = 0.0f;
    *off_x = 0.0f;
    for (i = 0; i < 9; ++i)
    {
        int32_t const dy = i / 3 - 1;
        int32_t const dx = i % 3 - 1;
        if (dy >= dy0 && dy <= dy1 && dx >= dx0 && dx <= dx1)
        {
            float const v = nb[i];
            finite = oscar_fsub(v, v) == 0.0f ? finite : 0; /* inf - inf, NaN - NaN: NaN */
            mn = v < mn ? v : mn;
        }
    }
    if (!finite)
    {
        return;
    }
    for (i = 0; i < 9; ++i)
    {
        int32_t const dy = i / 3 - 1;
        int32_t const dx = i % 3 - 1;
        if (dy >= dy0 && dy <= dy1 && dx >= dx0 && dx <= dx1)
        {
            float const w = oscar_fsub(nb[i], mn);
            sw = oscar_fadd(sw, w);
            sx = oscar_fadd(sx, oscar_fmul(w, (float)dx));
            sy = oscar_fadd(sy, oscar_fmul(w, (float)dy));
        }
    }
    if (sw > 0.0f)
    {
        *off_y = oscar_fdiv(sy, sw);
        *off_x = oscar_fdiv(sx, sw);
    }
}

/*
 * New extent along one axis: centre c = clamp(peak - o, 0, clamp); half = min((v2 - v1) * 0.5,
 * c, clamp - c), then max(half, 0); (c - half, c + half). The size is kept unless the box would
 * cross the content border, where it shrinks symmetrically around the peak.
 */
OSCAR_HD void oscar_peak_place(float v1, float v2, float peak, float o, float clamp, float* n1, float* n2)
{
    float const c = oscar_clampf(oscar_fsub(peak, o), clamp);
    float half = oscar_fmul(oscar_fsub(v2, v1), 0.5f);
    half = oscar_minf(half, c);
    half = oscar_minf(half, oscar_fsub(clamp, c));
    half = oscar_maxf(half, 0.0f);
    *n1 = oscar_fsub(c, half);
    *n2 = oscar_fadd(c, half);
}

/* Rows (or columns) lo..hi of the 3x3 neighbourhood of pixel p, clipped to [0, n - 1]. */
OSCAR_HD void oscar_peak_bounds(int32_t p, int32_t n, int32_t* lo, int32_t* hi)
{
    *lo = p > 0 ? p - 1 : 0;
    *hi = p + 1 < n ? p + 1 : n - 1;
}

/*
 * The peak point of a finished search (float32 plane): without `centroid`, the midpoint of
 * the tied maxima ((r0 + r1) * 0.5, (c0 + c1) * 0.5); with it, the peak pixel
 * (py, px) = ((r0 + r1) >> 1, (c0 + c1) >> 1) plus the oscar_peak_centroid offsets of its 3x3
 * neighbourhood clipped to the content (ny x nx pixels of `plane`, row stride `width`).
 */
OSCAR_HD void oscar_peak_point_f32(float const* plane, int32_t width, int32_t ny, int32_t nx,
    OscarPeakState const* st, int32_t centroid, float* peak_y, float* peak_x)
{
    if (centroid)
    {
        int32_t const py = (st->r0 + st->r1) >> 1;
        int32_t const px = (st->c0 + st->c1) >> 1;
        int32_t ra, rb, ca, cb, i;
        float nb[9];
        float off_y, off_x;
        oscar_peak_bounds(py, ny, &ra, &rb);
        oscar_peak_bounds(px, nx, &ca, &cb);
        for (i = 0; i < 9; ++i)
        {
            int32_t const r = py + i / 3 - 1;
            int32_t const c = px + i % 3 - 1;
            nb[i] = (r >= ra && r <= rb && c >= ca && c <= cb) ? plane[(int64_t)r * width + c] : 0.0f;
        }
        oscar_peak_centroid(nb, ra - py, rb - py, ca - px, cb - px, &off_y, &off_x);
        *peak_y = oscar_fadd((float)py, off_y);
        *peak_x = oscar_fadd((float)px, off_x);
    }
    else
    {
        *peak_y = oscar_fmul((float)(st->r0 + st->r1), 0.5f);
        *peak_x = oscar_fmul((float)(st->c0 + st->c1), 0.5f);
    }
}

/*
 * The search of a window rows wy0..wy1, columns wx0..wx1 of a float32 plane (row stride `width`)
 * for the CPU: the same result as oscar_peak_add over every pixel (the maximum, NaN as -inf, and
 * the bounds of the pixels equal to it), computed as row maxima (four independent accumulators;
 * `v > m ? v : m` never takes a NaN) and then a scan of the rows between the first and the last
 * row holding the maximum for its first and last column: about one read per pixel.
 */
OSCAR_HD void oscar_peak_scan_f32(float const* plane, int32_t width, int32_t wy0, int32_t wy1, int32_t wx0,
    int32_t wx1, OscarPeakState* st)
{
    float const ninf = oscar_neg_inf();
    float best;
    int32_t r, c, d;
    oscar_peak_init(st);
    for (r = wy0; r <= wy1; ++r)
    {
        float const* row = plane + (int64_t)r * width;
        float m0 = ninf, m1 = ninf, m2 = ninf, m3 = ninf;
        for (c = wx0; c + 3 <= wx1; c += 4)
        {
            float const v0 = row[c], v1 = row[c + 1], v2 = row[c + 2], v3 = row[c + 3];
            m0 = v0 > m0 ? v0 : m0;
            m1 = v1 > m1 ? v1 : m1;
            m2 = v2 > m2 ? v2 : m2;
            m3 = v3 > m3 ? v3 : m3;
        }
        for (; c <= wx1; ++c)
        {
            float const v = row[c];
            m0 = v > m0 ? v : m0;
        }
        m0 = m1 > m0 ? m1 : m0;
        m2 = m3 > m2 ? m3 : m2;
        m0 = m2 > m0 ? m2 : m0;
        if (m0 > st->best)
        {
            st->best = m0;
            st->r0 = r;
            st->r1 = r;
        }
        else if (m0 == st->best)
        {
            st->r0 = r < st->r0 ? r : st->r0;
            st->r1 = r;
        }
    }
    best = st->best;
    for (r = st->r0; r <= st->r1; ++r)
    {
        float const* row = plane + (int64_t)r * width;
        c = wx0;
        while (c <= wx1 && oscar_peak_value(row[c]) != best)
        {
            ++c;
        }
        if (c > wx1)
        {
            continue; /* a row between the first and the last without the maximum */
        }
        d = wx1;
        while (oscar_peak_value(row[d]) != best)
        {
            --d;
        }
        st->c0 = c < st->c0 ? c : st->c0;
        st->c1 = d > st->c1 ? d : st->c1;
    }
}

/*
 * The whole refinement of one box on a float32 plane [height, width] (row-major, channel 0 of
 * the network input), sequentially (the CPU twin; the CUDA kernel runs the same steps with a
 * parallel search). box / out are xyxy; out may alias box.
 */
OSCAR_HD void oscar_peak_refine_box(float const* plane, int32_t height, int32_t width, float clamp_h,
    float clamp_w, float scale_y, float scale_x, int32_t centroid, float const box[4], float out[4])
{
    float const oy = oscar_peak_offset(scale_y);
    float const ox = oscar_peak_offset(scale_x);
    int32_t const ny = oscar_peak_pixel_count(clamp_h, height);
    int32_t const nx = oscar_peak_pixel_count(clamp_w, width);
    int32_t wy0, wy1, wx0, wx1;
    float peak_x = 0.0f, peak_y = 0.0f;
    float const b0 = box[0], b1 = box[1], b2 = box[2], b3 = box[3];
    OscarPeakState st;
    oscar_peak_window(b1, b3, oy, ny, &wy0, &wy1);
    oscar_peak_window(b0, b2, ox, nx, &wx0, &wx1);
    oscar_peak_scan_f32(plane, width, wy0, wy1, wx0, wx1, &st);
    oscar_peak_point_f32(plane, width, ny, nx, &st, centroid, &peak_y, &peak_x);
    oscar_peak_place(b0, b2, peak_x, ox, clamp_w, &out[0], &out[2]);
    oscar_peak_place(b1, b3, peak_y, oy, clamp_h, &out[1], &out[3]);
}

#endif /* OSCAR_MATH_H */
