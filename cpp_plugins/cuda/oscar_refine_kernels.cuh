/*
 * oscar_refine_kernels.cuh -- CUDA kernel of OscarPeakRefine (rule 6; cpp_plugins/README.md).
 *
 * One block per (kept box, image): the block's threads scan the box's search window of channel
 * 0 of the image (strided over the window pixels), each keeping an OscarPeakState (maximum and
 * the bounds of the pixels equal to it); a shared-memory tree merges the states (max and
 * min/max merges are order-independent, so the result does not depend on the schedule); thread
 * 0 then computes the peak point (3x3 centroid or midpoint of the tied maxima) and places the
 * box with the shared arithmetic of oscar_math.h. Rows past num_detections are written as
 * zeros. Exactly the steps of oscar_peak_refine_box (the CPU twin) and postprocess.peak_refine.
 */
#ifndef OSCAR_REFINE_KERNELS_CUH
#define OSCAR_REFINE_KERNELS_CUH

#include "../common/oscar_math.h"
#include "oscar_block_utils.cuh"
#include "oscar_kernels.h"

#include <cstdint>

namespace oscar
{
namespace device
{

constexpr int32_t kPeakBlock = 128; // a power of two (tree merge)

template <typename T>
struct PeakRefineArgs
{
    T const* image;         // [B, C, H, W], channel 0 used
    float const* boxes;     // [B, M, 4]
    int32_t const* num;     // [B]
    float const* letterbox; // [B, 4] (content h, content w, scale_y, scale_x) or nullptr
    int32_t channels;
    int32_t height;
    int32_t width;
    int32_t m;
    int32_t centroid;
    float* out;             // [B, M, 4]
};

template <typename T>
__global__ void __launch_bounds__(kPeakBlock) peakRefineKernel(PeakRefineArgs<T> a)
{
    __shared__ float sBest[kPeakBlock];
    __shared__ int32_t sR0[kPeakBlock];
    __shared__ int32_t sR1[kPeakBlock];
    __shared__ int32_t sC0[kPeakBlock];
    __shared__ int32_t sC1[kPeakBlock];
    int32_t const tid = static_cast<int32_t>(threadIdx.x);
    int32_t const nthreads = static_cast<int32_t>(blockDim.x);
    int32_t const row = static_cast<int32_t>(blockIdx.x);
    int32_t const b = static_cast<int32_t>(blockIdx.y);
    int64_t const at = (static_cast<int64_t>(b) * a.m + row) * 4;
    int32_t n = a.num[b];
    n = n < 0 ? 0 : (n > a.m ? a.m : n);
    if (row >= n) // uniform for the block
    {
        if (tid < 4)
        {
            a.out[at + tid] = 0.0f;
        }
        return;
    }
    float const b0 = a.boxes[at + 0];
    float const b1 = a.boxes[at + 1];
    float const b2 = a.boxes[at + 2];
    float const b3 = a.boxes[at + 3];
    float clampH = static_cast<float>(a.height);
    float clampW = static_cast<float>(a.width);
    float scaleY = 1.0f;
    float scaleX = 1.0f;
    if (a.letterbox != nullptr)
    {
        clampH = a.letterbox[4 * b + 0];
        clampW = a.letterbox[4 * b + 1];
        scaleY = a.letterbox[4 * b + 2];
        scaleX = a.letterbox[4 * b + 3];
    }
    float const oy = oscar_peak_offset(scaleY);
    float const ox = oscar_peak_offset(scaleX);
    int32_t const ny = oscar_peak_pixel_count(clampH, a.height);
    int32_t const nx = oscar_peak_pixel_count(clampW, a.width);
    int32_t wy0 = 0;
    int32_t wy1 = 0;
    int32_t wx0 = 0;
    int32_t wx1 = 0;
    oscar_peak_window(b1, b3, oy, ny, &wy0, &wy1);
    oscar_peak_window(b0, b2, ox, nx, &wx0, &wx1);
    int32_t const ww = wx1 - wx0 + 1;
    int64_t const count = static_cast<int64_t>(wy1 - wy0 + 1) * ww;
    T const* plane = a.image + static_cast<int64_t>(b) * a.channels * a.height * a.width;

    OscarPeakState st;
    oscar_peak_init(&st);
    for (int64_t i = tid; i < count; i += nthreads)
    {
        int32_t const r = wy0 + static_cast<int32_t>(i / ww);
        int32_t const c = wx0 + static_cast<int32_t>(i % ww);
        oscar_peak_add(&st, loadF(plane, static_cast<int64_t>(r) * a.width + c), r, c);
    }
    sBest[tid] = st.best;
    sR0[tid] = st.r0;
    sR1[tid] = st.r1;
    sC0[tid] = st.c0;
    sC1[tid] = st.c1;
    __syncthreads();
    for (int32_t half = nthreads >> 1; half > 0; half >>= 1)
    {
        if (tid < half)
        {
            OscarPeakState other;
            other.best = sBest[tid + half];
            other.r0 = sR0[tid + half];
            other.r1 = sR1[tid + half];
            other.c0 = sC0[tid + half];
            other.c1 = sC1[tid + half];
            OscarPeakState mine;
            mine.best = sBest[tid];
            mine.r0 = sR0[tid];
            mine.r1 = sR1[tid];
            mine.c0 = sC0[tid];
            mine.c1 = sC1[tid];
            oscar_peak_merge(&mine, &other);
            sBest[tid] = mine.best;
            sR0[tid] = mine.r0;
            sR1[tid] = mine.r1;
            sC0[tid] = mine.c0;
            sC1[tid] = mine.c1;
        }
        __syncthreads();
    }
    if (tid == 0)
    {
        float peakY = oscar_fmul(static_cast<float>(sR0[0] + sR1[0]), 0.5f);
        float peakX = oscar_fmul(static_cast<float>(sC0[0] + sC1[0]), 0.5f);
        if (a.centroid != 0)
        {
            int32_t const py = (sR0[0] + sR1[0]) >> 1;
            int32_t const px = (sC0[0] + sC1[0]) >> 1;
            int32_t ra = 0;
            int32_t rb = 0;
            int32_t ca = 0;
            int32_t cb = 0;
            oscar_peak_bounds(py, ny, &ra, &rb);
            oscar_peak_bounds(px, nx, &ca, &cb);
            float nb[9];
#if defined(__CUDACC__)
#pragma unroll
#endif
            for (int32_t i = 0; i < 9; ++i)
            {
                int32_t const r = py + i / 3 - 1;
                int32_t const c = px + i % 3 - 1;
                nb[i] = (r >= ra && r <= rb && c >= ca && c <= cb) ? loadF(plane, static_cast<int64_t>(r) * a.width + c)
                                                                   : 0.0f;
            }
            float offY = 0.0f;
            float offX = 0.0f;
            oscar_peak_centroid(nb, ra - py, rb - py, ca - px, cb - px, &offY, &offX);
            peakY = oscar_fadd(static_cast<float>(py), offY);
            peakX = oscar_fadd(static_cast<float>(px), offX);
        }
        float o0 = 0.0f;
        float o1 = 0.0f;
        float o2 = 0.0f;
        float o3 = 0.0f;
        oscar_peak_place(b0, b2, peakX, ox, clampW, &o0, &o2);
        oscar_peak_place(b1, b3, peakY, oy, clampH, &o1, &o3);
        a.out[at + 0] = o0;
        a.out[at + 1] = o1;
        a.out[at + 2] = o2;
        a.out[at + 3] = o3;
    }
}

//! Kernel arguments for one launch (shared by the launcher and the host emulation in the tests).
template <typename T>
PeakRefineArgs<T> makePeakRefineArgs(PeakRefineInputs const& in, PeakRefineShape const& shape,
    PeakRefineParameters const& params, PeakRefineOutputs const& out)
{
    PeakRefineArgs<T> a{};
    a.image = static_cast<T const*>(in.image);
    a.boxes = in.boxes;
    a.num = in.num;
    a.letterbox = in.letterbox;
    a.channels = shape.channels;
    a.height = shape.height;
    a.width = shape.width;
    a.m = shape.m;
    a.centroid = params.centroid != 0 ? 1 : 0;
    a.out = out.boxes;
    return a;
}

} // namespace device
} // namespace oscar

#endif /* OSCAR_REFINE_KERNELS_CUH */
