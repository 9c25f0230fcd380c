/*
 * oscar_block_utils.cuh -- small block-level building blocks of the OSCAR kernels: typed
 * loads, a block-wide exclusive scan and a bitonic sort of 64-bit keys in shared memory.
 * Only __syncthreads() and shared memory (no warp intrinsics), so the code reads plainly.
 */
#ifndef OSCAR_BLOCK_UTILS_CUH
#define OSCAR_BLOCK_UTILS_CUH

#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

//! The block's dynamic shared memory as `type name[]` (a macro so that the host emulation of
//! the kernels used by the tests, cpp_plugins/tests/cuda_emulation, can provide it).
#ifndef OSCAR_DYNAMIC_SHARED
#define OSCAR_DYNAMIC_SHARED(type, name) extern __shared__ type name[]
#endif

namespace oscar
{
namespace device
{

__device__ __forceinline__ float loadF(float const* p, int64_t i)
{
    return p[i];
}

__device__ __forceinline__ float loadF(__half const* p, int64_t i)
{
    return __half2float(p[i]); // exact: every half is a float
}

//! Smallest power of two >= n (n >= 1), at least 2.
__host__ __device__ __forceinline__ int32_t sortCapacity(int32_t n)
{
    int32_t c = 2;
    while (c < n)
    {
        c <<= 1;
    }
    return c;
}

/*!
 * Exclusive prefix sums of two per-thread values over the block (Hillis-Steele in shared
 * memory). `scratchA`/`scratchB` hold blockDim.x ints. Returns the block totals. All threads of
 * the block must call it.
 */
__device__ __forceinline__ void blockExclusiveScan2(int32_t a, int32_t b, int32_t* scratchA, int32_t* scratchB,
    int32_t& exclA, int32_t& exclB, int32_t& totalA, int32_t& totalB)
{
    int32_t const tid = static_cast<int32_t>(threadIdx.x);
    int32_t const n = static_cast<int32_t>(blockDim.x);
    scratchA[tid] = a;
    scratchB[tid] = b;
    __syncthreads();
    for (int32_t offset = 1; offset < n; offset <<= 1)
    {
        int32_t const addA = tid >= offset ? scratchA[tid - offset] : 0;
        int32_t const addB = tid >= offset ? scratchB[tid - offset] : 0;
        __syncthreads();
        scratchA[tid] += addA;
        scratchB[tid] += addB;
        __syncthreads();
    }
    exclA = scratchA[tid] - a;
    exclB = scratchB[tid] - b;
    totalA = scratchA[n - 1];
    totalB = scratchB[n - 1];
    __syncthreads(); // the scratch arrays may be reused right after
}

/*!
 * Sort keys[0..n) DESCENDING in place (n a power of two), bitonic network. All threads of the
 * block must call it; keys are in shared memory.
 */
__device__ __forceinline__ void blockBitonicSortDesc(uint64_t* keys, int32_t n)
{
    int32_t const tid = static_cast<int32_t>(threadIdx.x);
    int32_t const threads = static_cast<int32_t>(blockDim.x);
    for (int32_t size = 2; size <= n; size <<= 1)
    {
        for (int32_t stride = size >> 1; stride > 0; stride >>= 1)
        {
            for (int32_t i = tid; i < n; i += threads)
            {
                int32_t const j = i ^ stride;
                if (j > i)
                {
                    uint64_t const a = keys[i];
                    uint64_t const b = keys[j];
                    bool const descending = (i & size) == 0;
                    if (descending ? (a < b) : (a > b))
                    {
                        keys[i] = b;
                        keys[j] = a;
                    }
                }
            }
            __syncthreads();
        }
    }
}

} // namespace device
} // namespace oscar

#endif /* OSCAR_BLOCK_UTILS_CUH */
