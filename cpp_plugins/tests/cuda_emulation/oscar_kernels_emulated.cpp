/*
 * Host emulation of the OSCAR CUDA kernels, for tests on machines without a GPU.
 *
 * The kernel sources (cuda/ *.cuh) are compiled by g++ as plain C++: every CUDA thread of a block
 * is a std::thread, __syncthreads() is a std::barrier, __shared__ variables are function
 * statics (one block runs at a time), atomics are std::atomic_ref, and __half is the CUDA
 * header's own host type. Blocks of a grid run one after the other. This checks the kernels'
 * logic (block scans, radix select, bitonic sort, bitmask NMS) and their shared arithmetic
 * against the CPU library; it says nothing about GPU-only behaviour (warp scheduling, memory
 * coherence beyond barriers, performance).
 *
 *   g++ -std=c++20 -O2 -pthread -shared -fPIC -ffp-contract=off -I<cuda>/include \
 *       oscar_kernels_emulated.cpp -o liboscar_kernels_emulated.so
 */
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <atomic>
#include <barrier>
#include <cstdint>
#include <cstring>
#include <thread>
#include <vector>

namespace emu
{
inline thread_local dim3 threadIdx_;
inline dim3 blockIdx_;
inline dim3 blockDim_;
inline dim3 gridDim_;
inline std::barrier<>* barrier_ = nullptr;
inline unsigned char* dynamicShared_ = nullptr;

template <typename Kernel, typename Args>
void launch(dim3 grid, dim3 block, size_t sharedBytes, Kernel kernel, Args const& args)
{
    gridDim_ = grid;
    blockDim_ = block;
    unsigned const threads = block.x * block.y * block.z;
    std::vector<uint64_t> shared(sharedBytes / sizeof(uint64_t) + 1);
    for (unsigned z = 0; z < grid.z; ++z)
        for (unsigned y = 0; y < grid.y; ++y)
            for (unsigned x = 0; x < grid.x; ++x)
            {
                blockIdx_ = dim3(x, y, z);
                dynamicShared_ = reinterpret_cast<unsigned char*>(shared.data());
                std::barrier<> bar(threads);
                barrier_ = &bar;
                std::vector<std::thread> pool;
                pool.reserve(threads);
                for (unsigned t = 0; t < threads; ++t)
                {
                    pool.emplace_back([&, t] {
                        threadIdx_ = dim3(t % block.x, (t / block.x) % block.y, t / (block.x * block.y));
                        kernel(args);
                        bar.arrive_and_drop(); // an exited thread no longer takes part in barriers
                    });
                }
                for (auto& th : pool)
                    th.join();
            }
}
} // namespace emu

#undef __shared__
#define __shared__ static
#define threadIdx emu::threadIdx_
#define blockIdx emu::blockIdx_
#define blockDim emu::blockDim_
#define gridDim emu::gridDim_
#define __launch_bounds__(...)
#define OSCAR_DYNAMIC_SHARED(type, name) type* name = reinterpret_cast<type*>(emu::dynamicShared_)

inline void __syncthreads()
{
    emu::barrier_->arrive_and_wait();
}

inline int atomicAdd(int* p, int v)
{
    return std::atomic_ref<int>(*p).fetch_add(v);
}

inline unsigned atomicAdd(unsigned* p, unsigned v)
{
    return std::atomic_ref<unsigned>(*p).fetch_add(v);
}

#include "../../cuda/oscar_decode_kernels.cuh"
#include "../../cuda/oscar_nms_kernels.cuh"
#include "../../cuda/oscar_refine_kernels.cuh"

using namespace oscar;

namespace
{
template <typename T>
void runDecode(DecodeInputs const& in, DecodeShape const& shape, DecodeParameters const& params, DecodeOutputs const& out)
{
    DecodeWorkspace const layout = decodeWorkspaceLayout(shape);
    std::vector<uint64_t> ws(layout.bytes / sizeof(uint64_t) + 1);
    char* w = reinterpret_cast<char*>(ws.data());
    device::DecodeArgs<T> const a = device::makeDecodeArgs<T>(in, shape, params, out, w, layout);
    std::memset(a.counts, 0, static_cast<size_t>(shape.batch) * sizeof(int32_t)); // cudaMemsetAsync
    int64_t const hw4 = static_cast<int64_t>(shape.h4) * shape.w4;
    if (hw4 > 0)
    {
        dim3 const grid(static_cast<unsigned>((hw4 + device::kScoreBlock - 1) / device::kScoreBlock),
            static_cast<unsigned>(shape.batch));
        emu::launch(grid, dim3(device::kScoreBlock), 0, device::decodeScoreKernel<T>, a);
    }
    emu::launch(dim3(static_cast<unsigned>(shape.batch)), dim3(device::kSelectBlock),
        static_cast<size_t>(a.sortCap) * sizeof(uint64_t), device::decodeSelectKernel<T>, a);
}

template <typename T>
void runNMS(NMSInputs const& in, NMSShape const& shape, NMSParameters const& params, NMSOutputs const& out)
{
    NMSWorkspace const layout = nmsWorkspaceLayout(shape);
    std::vector<uint64_t> ws(layout.bytes / sizeof(uint64_t) + 1, 0xDEADBEEFDEADBEEFull); // garbage, as cudaMalloc
    char* w = reinterpret_cast<char*>(ws.data());
    device::NMSArgs<T> const a = device::makeNMSArgs<T>(in, shape, params, out, w, layout);
    unsigned const batch = static_cast<unsigned>(shape.batch);
    emu::launch(dim3(batch), dim3(device::kNmsSortBlock), static_cast<size_t>(a.sortCap) * sizeof(uint64_t),
        device::nmsSortKernel<T>, a);
    if (layout.maskWords > 0)
    {
        unsigned const t = static_cast<unsigned>(layout.maskWords);
        emu::launch(dim3(t, t, batch), dim3(device::kNmsTile), 0, device::nmsMaskKernel<T>, a);
    }
    emu::launch(dim3(batch), dim3(device::kNmsGatherBlock), 0, device::nmsGatherKernel<T>, a);
}
template <typename T>
void runPeakRefine(PeakRefineInputs const& in, PeakRefineShape const& shape, PeakRefineParameters const& params,
    PeakRefineOutputs const& out)
{
    device::PeakRefineArgs<T> const a = device::makePeakRefineArgs<T>(in, shape, params, out);
    emu::launch(dim3(static_cast<unsigned>(shape.m), static_cast<unsigned>(shape.batch)), dim3(device::kPeakBlock), 0,
        device::peakRefineKernel<T>, a);
}
} // namespace

extern "C" {

// dtype: 0 float32, 1 float16. Same layouts as the plugins; clamp_hw may be NULL.
__attribute__((visibility("default"))) int oscar_emu_decode(int dtype, void const* rs, void const* rb, void const* rn,
    void const* cs, void const* cb, int batch, int h4, int w4, int h8, int w8, float const* clamp_hw, float thr,
    int topk, float* boxes, float* scores, int* count)
{
    DecodeInputs const in{rs, rb, rn, cs, cb, dtype == 1 ? TensorType::kFLOAT16 : TensorType::kFLOAT32, clamp_hw};
    DecodeShape const shape{batch, h4, w4, h8, w8};
    DecodeParameters params{};
    params.scoreThreshold = thr;
    params.topk = topk;
    if (h4 != 2 * h8 || w4 != 2 * w8 || topk < 1 || topk > kMaxSortKeys || batch < 1)
        return 1;
    DecodeOutputs const out{boxes, scores, count};
    if (dtype == 1)
        runDecode<__half>(in, shape, params, out);
    else
        runDecode<float>(in, shape, params, out);
    return 0;
}

__attribute__((visibility("default"))) int oscar_emu_nms(int dtype, void const* boxes, void const* scores,
    int const* count, int batch, int k, float iou, int max_det, int* num, float* out_boxes, float* out_scores)
{
    NMSInputs const in{boxes, scores, count, dtype == 1 ? TensorType::kFLOAT16 : TensorType::kFLOAT32};
    NMSShape const shape{batch, k};
    NMSParameters params{};
    params.iouThreshold = iou;
    params.maxDetections = max_det;
    if (k < 0 || k > kMaxSortKeys || max_det < 1 || batch < 1)
        return 1;
    NMSOutputs const out{num, out_boxes, out_scores};
    if (dtype == 1)
        runNMS<__half>(in, shape, params, out);
    else
        runNMS<float>(in, shape, params, out);
    return 0;
}

// dtype: 0 float32, 1 float16 (the image); letterbox may be NULL. Layouts of OscarPeakRefine.
__attribute__((visibility("default"))) int oscar_emu_peak_refine(int dtype, void const* image, int batch, int channels,
    int height, int width, float const* boxes, int const* num, int m, float const* letterbox, int centroid,
    float* out_boxes)
{
    PeakRefineInputs const in{image, dtype == 1 ? TensorType::kFLOAT16 : TensorType::kFLOAT32, boxes, num, letterbox};
    PeakRefineShape const shape{batch, channels, height, width, m};
    PeakRefineParameters params{};
    params.centroid = centroid;
    if (batch < 1 || m < 1 || channels < 1 || height < 1 || width < 1)
        return 1;
    PeakRefineOutputs const out{out_boxes};
    if (dtype == 1)
        runPeakRefine<__half>(in, shape, params, out);
    else
        runPeakRefine<float>(in, shape, params, out);
    return 0;
}

} // extern "C"
