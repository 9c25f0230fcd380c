/*
 * Launcher of the OscarDecode kernels (see oscar_decode_kernels.cuh and oscar_kernels.h).
 */
#include "oscar_decode_kernels.cuh"
#include "oscar_kernels.h"

#include <cuda_fp16.h>
#include <cuda_runtime.h>

namespace oscar
{
namespace
{

template <typename T>
cudaError_t launchDecode(DecodeInputs const& in, DecodeShape const& shape, DecodeParameters const& params,
    DecodeOutputs const& out, char* workspace, DecodeWorkspace const& layout, cudaStream_t stream)
{
    device::DecodeArgs<T> const a = device::makeDecodeArgs<T>(in, shape, params, out, workspace, layout);

    cudaError_t st = cudaMemsetAsync(a.counts, 0, static_cast<size_t>(shape.batch) * sizeof(int32_t), stream);
    if (st != cudaSuccess)
    {
        return st;
    }
    int64_t const hw4 = static_cast<int64_t>(shape.h4) * shape.w4;
    if (hw4 > 0)
    {
        dim3 const grid(static_cast<unsigned>((hw4 + device::kScoreBlock - 1) / device::kScoreBlock),
            static_cast<unsigned>(shape.batch));
        device::decodeScoreKernel<T><<<grid, device::kScoreBlock, 0, stream>>>(a);
    }
    size_t const shmem = static_cast<size_t>(a.sortCap) * sizeof(uint64_t);
    device::decodeSelectKernel<T>
        <<<static_cast<unsigned>(shape.batch), device::kSelectBlock, shmem, stream>>>(a);
    return cudaGetLastError();
}

} // namespace

bool decodeSupported(DecodeShape const& s, DecodeParameters const& p)
{
    return s.batch >= 0 && s.batch <= 65535 && s.h8 >= 0 && s.w8 >= 0 && s.h4 == 2 * s.h8 && s.w4 == 2 * s.w8
        && p.topk >= 1 && p.topk <= kMaxSortKeys;
}

cudaError_t decodeLaunch(DecodeInputs const& in, DecodeShape const& shape, DecodeParameters const& params,
    DecodeOutputs const& out, void* workspace, size_t workspaceBytes, cudaStream_t stream)
{
    if (!decodeSupported(shape, params))
    {
        return cudaErrorInvalidValue;
    }
    if (shape.batch == 0)
    {
        return cudaSuccess;
    }
    DecodeWorkspace const layout = decodeWorkspaceLayout(shape);
    if (workspace == nullptr || workspaceBytes < layout.bytes)
    {
        return cudaErrorInvalidValue;
    }
    char* ws = static_cast<char*>(workspace);
    switch (in.type)
    {
    case TensorType::kFLOAT32: return launchDecode<float>(in, shape, params, out, ws, layout, stream);
    case TensorType::kFLOAT16: return launchDecode<__half>(in, shape, params, out, ws, layout, stream);
    }
    return cudaErrorInvalidValue;
}

} // namespace oscar
