/*
 * oscar_nms_kernels.cuh -- CUDA kernels of OscarNMS (spec section 6, rule 5), bitmask NMS.
 *
 *  1. nmsSortKernel: one block per image; rank keys (final score, ~candidate row) sorted
 *     descending in shared memory (bitonic) -> sorted rows and their boxes (float).
 *  2. nmsMaskKernel: 64x64 tiles of the upper triangle; bit c of word w of row r is set when
 *     sorted box r (the earlier, higher-ranked one, in the role of the kept box) has IoU >
 *     iou_threshold with sorted box 64*w + c > r.
 *  3. nmsGatherKernel: one block per image walks the sorted rows in order, keeping a row when
 *     its bit is not yet set and OR-ing its mask row into the removed set, until
 *     max_detections are kept; writes the outputs with zero padding.
 * This is the reference's greedy NMS exactly: a box is suppressed iff an earlier kept box has
 * IoU > threshold with it; equal final scores keep the lower candidate row first.
 */
#ifndef OSCAR_NMS_KERNELS_CUH
#define OSCAR_NMS_KERNELS_CUH

#include "../common/oscar_math.h"
#include "oscar_block_utils.cuh"
#include "oscar_kernels.h"

#include <cstdint>

namespace oscar
{
namespace device
{

constexpr int32_t kNmsSortBlock = 512;
constexpr int32_t kNmsTile = 64;
constexpr int32_t kNmsGatherBlock = 64;

template <typename T>
struct NMSArgs
{
    T const* boxes;         // [B, K, 4]
    T const* scores;        // [B, K]
    int32_t const* count;   // [B]
    int32_t k;
    int32_t sortCap;        // power of two >= K
    float iouThreshold;
    int32_t maxDetections;
    int32_t maskWords;      // ceil(K / 64)
    int32_t* sortedIndex;   // [B, K]
    float* sortedBoxes;     // [B, K, 4]
    int32_t* sortedCount;   // [B]
    int32_t* keep;          // [B, K] kept sorted positions
    uint64_t* mask;         // [B, K, maskWords]
    int32_t* outNum;        // [B]
    float* outBoxes;        // [B, M, 4]
    float* outScores;       // [B, M]
};

template <typename T>
__global__ void __launch_bounds__(kNmsSortBlock) nmsSortKernel(NMSArgs<T> a)
{
    OSCAR_DYNAMIC_SHARED(uint64_t, sKeys); // [sortCap]
    int32_t const tid = static_cast<int32_t>(threadIdx.x);
    int32_t const nthreads = static_cast<int32_t>(blockDim.x);
    int32_t const b = static_cast<int32_t>(blockIdx.x);
    int64_t const base = static_cast<int64_t>(b) * a.k;
    int32_t m = a.count[b];
    m = m < 0 ? 0 : (m > a.k ? a.k : m);
    for (int32_t r = tid; r < a.sortCap; r += nthreads)
    {
        sKeys[r] = r < m ? oscar_rank_key(oscar_score_key(loadF(a.scores, base + r)), static_cast<uint32_t>(r)) : 0ull;
    }
    __syncthreads();
    blockBitonicSortDesc(sKeys, a.sortCap);
    for (int32_t r = tid; r < m; r += nthreads)
    {
        int32_t const row = static_cast<int32_t>(oscar_rank_key_index(sKeys[r]));
        a.sortedIndex[base + r] = row;
        for (int32_t c = 0; c < 4; ++c)
        {
            a.sortedBoxes[(base + r) * 4 + c] = loadF(a.boxes, (base + row) * 4 + c);
        }
    }
    if (tid == 0)
    {
        a.sortedCount[b] = m;
    }
}

template <typename T>
__global__ void __launch_bounds__(kNmsTile) nmsMaskKernel(NMSArgs<T> a)
{
    __shared__ float sCols[kNmsTile * 4];
    int32_t const b = static_cast<int32_t>(blockIdx.z);
    int32_t const rowTile = static_cast<int32_t>(blockIdx.y);
    int32_t const colTile = static_cast<int32_t>(blockIdx.x);
    int32_t const m = a.sortedCount[b];
    int32_t const rowStart = rowTile * kNmsTile;
    int32_t const colStart = colTile * kNmsTile;
    if (colTile < rowTile || rowStart >= m || colStart >= m)
    {
        return; // uniform for the block
    }
    int32_t const tid = static_cast<int32_t>(threadIdx.x);
    int32_t const rows = m - rowStart < kNmsTile ? m - rowStart : kNmsTile;
    int32_t const cols = m - colStart < kNmsTile ? m - colStart : kNmsTile;
    int64_t const base = static_cast<int64_t>(b) * a.k;
    if (tid < cols)
    {
        for (int32_t c = 0; c < 4; ++c)
        {
            sCols[tid * 4 + c] = a.sortedBoxes[(base + colStart + tid) * 4 + c];
        }
    }
    __syncthreads();
    if (tid < rows)
    {
        int32_t const row = rowStart + tid;
        float const* rb = a.sortedBoxes + (base + row) * 4;
        float const kept[4] = {rb[0], rb[1], rb[2], rb[3]};
        uint64_t bits = 0ull;
        int32_t const first = rowTile == colTile ? tid + 1 : 0;
        for (int32_t c = first; c < cols; ++c)
        {
            if (oscar_suppresses(kept, sCols + c * 4, a.iouThreshold))
            {
                bits |= 1ull << c;
            }
        }
        a.mask[(base + row) * a.maskWords + colTile] = bits;
    }
}

template <typename T>
__global__ void __launch_bounds__(kNmsGatherBlock) nmsGatherKernel(NMSArgs<T> a)
{
    __shared__ uint64_t sRemoved[(kMaxSortKeys + 63) / 64];
    __shared__ int32_t sKept;
    int32_t const tid = static_cast<int32_t>(threadIdx.x);
    int32_t const nthreads = static_cast<int32_t>(blockDim.x);
    int32_t const b = static_cast<int32_t>(blockIdx.x);
    int64_t const base = static_cast<int64_t>(b) * a.k;
    int32_t const m = a.sortedCount[b];
    int32_t const words = (m + 63) / 64;
    for (int32_t w = tid; w < words; w += nthreads)
    {
        sRemoved[w] = 0ull;
    }
    if (tid == 0)
    {
        sKept = 0;
    }
    __syncthreads();
    for (int32_t i = 0; i < m && sKept < a.maxDetections; ++i)
    {
        bool const removed = ((sRemoved[i >> 6] >> (i & 63)) & 1ull) != 0ull;
        if (!removed) // the same decision in every thread
        {
            __syncthreads(); // everyone has read sRemoved[i >> 6] before it changes
            uint64_t const* row = a.mask + (base + i) * a.maskWords;
            for (int32_t w = (i >> 6) + tid; w < words; w += nthreads)
            {
                sRemoved[w] |= row[w];
            }
            if (tid == 0)
            {
                a.keep[base + sKept] = i;
                sKept = sKept + 1;
            }
            __syncthreads();
        }
    }
    int32_t const kept = sKept;
    float* outBoxes = a.outBoxes + static_cast<int64_t>(b) * a.maxDetections * 4;
    float* outScores = a.outScores + static_cast<int64_t>(b) * a.maxDetections;
    for (int32_t r = tid; r < a.maxDetections; r += nthreads)
    {
        if (r < kept)
        {
            int32_t const s = a.keep[base + r];
            float const* sb = a.sortedBoxes + (base + s) * 4;
            outBoxes[4 * r + 0] = sb[0];
            outBoxes[4 * r + 1] = sb[1];
            outBoxes[4 * r + 2] = sb[2];
            outBoxes[4 * r + 3] = sb[3];
            outScores[r] = loadF(a.scores, base + a.sortedIndex[base + s]);
        }
        else
        {
            outBoxes[4 * r + 0] = 0.0f;
            outBoxes[4 * r + 1] = 0.0f;
            outBoxes[4 * r + 2] = 0.0f;
            outBoxes[4 * r + 3] = 0.0f;
            outScores[r] = 0.0f;
        }
    }
    if (tid == 0)
    {
        a.outNum[b] = kept;
    }
}

//! Kernel arguments for one launch (shared by the launcher and the host emulation in the tests).
template <typename T>
NMSArgs<T> makeNMSArgs(NMSInputs const& in, NMSShape const& shape, NMSParameters const& params,
    NMSOutputs const& out, char* workspace, NMSWorkspace const& layout)
{
    NMSArgs<T> a{};
    a.boxes = static_cast<T const*>(in.boxes);
    a.scores = static_cast<T const*>(in.scores);
    a.count = in.count;
    a.k = shape.k;
    a.sortCap = sortCapacity(shape.k);
    a.iouThreshold = params.iouThreshold;
    a.maxDetections = params.maxDetections;
    a.maskWords = layout.maskWords;
    a.sortedIndex = reinterpret_cast<int32_t*>(workspace + layout.sortedIndexOffset);
    a.sortedBoxes = reinterpret_cast<float*>(workspace + layout.sortedBoxesOffset);
    a.sortedCount = reinterpret_cast<int32_t*>(workspace + layout.sortedCountOffset);
    a.keep = reinterpret_cast<int32_t*>(workspace + layout.keepOffset);
    a.mask = reinterpret_cast<uint64_t*>(workspace + layout.maskOffset);
    a.outNum = out.num;
    a.outBoxes = out.boxes;
    a.outScores = out.scores;
    return a;
}

} // namespace device
} // namespace oscar

#endif /* OSCAR_NMS_KERNELS_CUH */
