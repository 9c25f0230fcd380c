/*
 * oscar_decode_kernels.cuh -- CUDA kernels of OscarDecode (spec section 6, rules 1-4).
 *
 *  1. decodeScoreKernel: one thread per P2 point: s = sigmoid(refine logit); key = order-
 *     preserving uint32 of s when s > score_threshold, else 0; per-image candidate count.
 *  2. decodeSelectKernel: one block per image, parallel top-K:
 *     a. radix select (4 passes of 8 bits, shared-memory histograms) finds the K-th largest
 *        key T and how many candidates equal to T are needed (only when count > K);
 *     b. an ordered compaction (block scan over contiguous chunks of points) keeps every key
 *        > T and the lowest-index keys == T: exactly the K best by (score desc, index asc);
 *     c. a bitonic sort of the <= K 64-bit rank keys (score key, ~index) in shared memory;
 *     d. decode of the K boxes and final scores with oscar_math.h, zero padding.
 * Equal scores: the lower flat index wins (the reference's stable sort), by construction of
 * the rank key.
 */
#ifndef OSCAR_DECODE_KERNELS_CUH
#define OSCAR_DECODE_KERNELS_CUH

#include "../common/oscar_math.h"
#include "oscar_block_utils.cuh"
#include "oscar_kernels.h"

#include <cstdint>

namespace oscar
{
namespace device
{

constexpr int32_t kScoreBlock = 256;
constexpr int32_t kSelectBlock = 512;

template <typename T>
struct DecodeArgs
{
    T const* refineScore;
    T const* refineBbox;
    T const* refineNoco;
    T const* coarseScore;
    T const* coarseBbox;
    float const* clampHw;
    int32_t h4, w4, h8, w8;
    float scoreThreshold;
    int32_t topk;
    int32_t sortCap;   // power of two >= topk: shared keys
    uint32_t* keys;    // [B, h4*w4]
    int32_t* counts;   // [B], zeroed before decodeScoreKernel
    float* boxes;      // [B, topk, 4]
    float* scores;     // [B, topk]
    int32_t* count;    // [B]
};

template <typename T>
__global__ void __launch_bounds__(kScoreBlock) decodeScoreKernel(DecodeArgs<T> a)
{
    __shared__ int32_t sCount;
    int32_t const b = static_cast<int32_t>(blockIdx.y);
    int64_t const hw4 = static_cast<int64_t>(a.h4) * a.w4;
    int64_t const p = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
    if (threadIdx.x == 0)
    {
        sCount = 0;
    }
    __syncthreads();
    if (p < hw4)
    {
        float const s = oscar_sigmoid(loadF(a.refineScore, b * hw4 + p));
        uint32_t const key = s > a.scoreThreshold ? oscar_score_key(s) : 0u;
        a.keys[b * hw4 + p] = key;
        if (key != 0u)
        {
            atomicAdd(&sCount, 1);
        }
    }
    __syncthreads();
    if (threadIdx.x == 0 && sCount > 0)
    {
        atomicAdd(&a.counts[b], sCount);
    }
}

template <typename T>
__global__ void __launch_bounds__(kSelectBlock) decodeSelectKernel(DecodeArgs<T> a)
{
    OSCAR_DYNAMIC_SHARED(uint64_t, sKeys); // [sortCap]
    __shared__ uint32_t sHist[256];
    __shared__ int32_t sScanA[kSelectBlock];
    __shared__ int32_t sScanB[kSelectBlock];
    __shared__ uint32_t sPrefix;
    __shared__ int32_t sNeed;

    int32_t const tid = static_cast<int32_t>(threadIdx.x);
    int32_t const nthreads = static_cast<int32_t>(blockDim.x);
    int32_t const b = static_cast<int32_t>(blockIdx.x);
    int64_t const hw4 = static_cast<int64_t>(a.h4) * a.w4;
    int64_t const hw8 = static_cast<int64_t>(a.h8) * a.w8;
    uint32_t const* keys = a.keys + b * hw4;
    int32_t const n = a.counts[b];
    int32_t const k = a.topk;

    // a. threshold key T: take keys > T, and `need` keys == T (lowest indices first).
    uint32_t thr = 0u;
    int32_t need = 0;
    if (n > k)
    {
        uint32_t prefix = 0u;
        uint32_t mask = 0u;
        int32_t remaining = k;
        for (int32_t shift = 24; shift >= 0; shift -= 8)
        {
            for (int32_t i = tid; i < 256; i += nthreads)
            {
                sHist[i] = 0u;
            }
            __syncthreads();
            for (int64_t p = tid; p < hw4; p += nthreads)
            {
                uint32_t const key = keys[p];
                if (key != 0u && (key & mask) == prefix)
                {
                    atomicAdd(&sHist[(key >> shift) & 0xFFu], 1u);
                }
            }
            __syncthreads();
            if (tid == 0)
            {
                int32_t above = 0;
                for (int32_t bin = 255; bin >= 0; --bin)
                {
                    int32_t const c = static_cast<int32_t>(sHist[bin]);
                    if (above + c >= remaining)
                    {
                        sPrefix = prefix | (static_cast<uint32_t>(bin) << shift);
                        sNeed = remaining - above;
                        break;
                    }
                    above += c;
                }
            }
            __syncthreads();
            prefix = sPrefix;
            remaining = sNeed;
            mask |= 0xFFu << shift;
            __syncthreads();
        }
        thr = prefix;
        need = remaining;
    }

    // b. ordered compaction over contiguous chunks of points (chunk order = index order).
    int64_t const chunk = (hw4 + nthreads - 1) / nthreads;
    int64_t const begin = static_cast<int64_t>(tid) * chunk;
    int64_t const end = begin + chunk < hw4 ? begin + chunk : hw4;
    int32_t greater = 0;
    int32_t equal = 0;
    for (int64_t p = begin; p < end; ++p)
    {
        uint32_t const key = keys[p];
        greater += key > thr ? 1 : 0;
        equal += (need > 0 && key == thr) ? 1 : 0;
    }
    int32_t gOff = 0;
    int32_t eOff = 0;
    int32_t gTotal = 0;
    int32_t eTotal = 0;
    blockExclusiveScan2(greater, equal, sScanA, sScanB, gOff, eOff, gTotal, eTotal);
    (void) eTotal;
    for (int64_t p = begin; p < end; ++p)
    {
        uint32_t const key = keys[p];
        if (key > thr)
        {
            sKeys[gOff++] = oscar_rank_key(key, static_cast<uint32_t>(p));
        }
        else if (need > 0 && key == thr)
        {
            if (eOff < need)
            {
                sKeys[gTotal + eOff] = oscar_rank_key(key, static_cast<uint32_t>(p));
            }
            ++eOff;
        }
    }
    int32_t const m = gTotal + need; // == min(n, k)
    for (int32_t i = m + tid; i < a.sortCap; i += nthreads)
    {
        sKeys[i] = 0ull; // below every real key
    }
    __syncthreads();

    // c. sort (score desc, index asc).
    blockBitonicSortDesc(sKeys, a.sortCap);

    // d. decode the kept points; zero the padding rows.
    float const clampH = a.clampHw != nullptr ? a.clampHw[2 * b] : static_cast<float>(OSCAR_REFINE_STRIDE * a.h4);
    float const clampW = a.clampHw != nullptr ? a.clampHw[2 * b + 1] : static_cast<float>(OSCAR_REFINE_STRIDE * a.w4);
    float* outBoxes = a.boxes + static_cast<int64_t>(b) * k * 4;
    float* outScores = a.scores + static_cast<int64_t>(b) * k;
    for (int32_t r = tid; r < k; r += nthreads)
    {
        float* const box = outBoxes + 4 * r;
        if (r < m)
        {
            uint64_t const rk = sKeys[r];
            int64_t const p = oscar_rank_key_index(rk);
            int32_t const i = static_cast<int32_t>(p / a.w4);
            int32_t const j = static_cast<int32_t>(p % a.w4);
            int64_t const q = static_cast<int64_t>(i >> 1) * a.w8 + (j >> 1);
            T const* cb = a.coarseBbox + b * 4 * hw8;
            T const* rb = a.refineBbox + b * 4 * hw4;
            float const coarse[4] = {loadF(cb, q), loadF(cb, hw8 + q), loadF(cb, 2 * hw8 + q), loadF(cb, 3 * hw8 + q)};
            float const delta[4] = {loadF(rb, p), loadF(rb, hw4 + p), loadF(rb, 2 * hw4 + p), loadF(rb, 3 * hw4 + p)};
            oscar_decode_point(i, j, coarse, delta, clampH, clampW, box); // writes the output row
            float const sRefine = oscar_score_from_key(static_cast<uint32_t>(rk >> 32));
            float const sCoarse = oscar_sigmoid(loadF(a.coarseScore, b * hw8 + q));
            float const sNoco = oscar_sigmoid(loadF(a.refineNoco, b * hw4 + p));
            outScores[r] = oscar_score_product(sRefine, sCoarse, sNoco);
        }
        else
        {
            box[0] = 0.0f;
            box[1] = 0.0f;
            box[2] = 0.0f;
            box[3] = 0.0f;
            outScores[r] = 0.0f;
        }
    }
    if (tid == 0)
    {
        a.count[b] = m;
    }
}

//! Kernel arguments for one launch (shared by the launcher and the host emulation in the tests).
template <typename T>
DecodeArgs<T> makeDecodeArgs(DecodeInputs const& in, DecodeShape const& shape, DecodeParameters const& params,
    DecodeOutputs const& out, char* workspace, DecodeWorkspace const& layout)
{
    DecodeArgs<T> a{};
    a.refineScore = static_cast<T const*>(in.refineScore);
    a.refineBbox = static_cast<T const*>(in.refineBbox);
    a.refineNoco = static_cast<T const*>(in.refineNoco);
    a.coarseScore = static_cast<T const*>(in.coarseScore);
    a.coarseBbox = static_cast<T const*>(in.coarseBbox);
    a.clampHw = in.clampHw;
    a.h4 = shape.h4;
    a.w4 = shape.w4;
    a.h8 = shape.h8;
    a.w8 = shape.w8;
    a.scoreThreshold = params.scoreThreshold;
    a.topk = params.topk;
    a.sortCap = sortCapacity(params.topk);
    a.keys = reinterpret_cast<uint32_t*>(workspace + layout.keysOffset);
    a.counts = reinterpret_cast<int32_t*>(workspace + layout.countsOffset);
    a.boxes = out.boxes;
    a.scores = out.scores;
    a.count = out.count;
    return a;
}

} // namespace device
} // namespace oscar

#endif /* OSCAR_DECODE_KERNELS_CUH */
