/*
 * Launcher of the OscarNMS kernels (see oscar_nms_kernels.cuh and oscar_kernels.h).
 */
#include "oscar_kernels.h"
#include "oscar_nms_kernels.cuh"

#include <cuda_fp16.h>
#include <cuda_runtime.h>

namespace oscar
{
namespace
{

template <typename T>
cudaError_t launchNMS(NMSInputs const& in, NMSShape const& shape, NMSParameters const& params,
    NMSOutputs const& out, char* workspace, NMSWorkspace const& layout, cudaStream_t stream)
{
    device::NMSArgs<T> const a = device::makeNMSArgs<T>(in, shape, params, out, workspace, layout);

    unsigned const batch = static_cast<unsigned>(shape.batch);
    size_t const shmem = static_cast<size_t>(a.sortCap) * sizeof(uint64_t);
    device::nmsSortKernel<T><<<batch, device::kNmsSortBlock, shmem, stream>>>(a);
    if (layout.maskWords > 0)
    {
        dim3 const tiles(static_cast<unsigned>(layout.maskWords), static_cast<unsigned>(layout.maskWords), batch);
        device::nmsMaskKernel<T><<<tiles, device::kNmsTile, 0, stream>>>(a);
    }
    device::nmsGatherKernel<T><<<batch, device::kNmsGatherBlock, 0, stream>>>(a);
    return cudaGetLastError();
}

} // namespace

bool nmsSupported(NMSShape const& s, NMSParameters const& p)
{
    return s.batch >= 0 && s.batch <= 65535 && s.k >= 0 && s.k <= kMaxSortKeys && p.maxDetections >= 1;
}

cudaError_t nmsLaunch(NMSInputs const& in, NMSShape const& shape, NMSParameters const& params,
    NMSOutputs const& out, void* workspace, size_t workspaceBytes, cudaStream_t stream)
{
    if (!nmsSupported(shape, params))
    {
        return cudaErrorInvalidValue;
    }
    if (shape.batch == 0)
    {
        return cudaSuccess;
    }
    NMSWorkspace const layout = nmsWorkspaceLayout(shape);
    if (workspace == nullptr || workspaceBytes < layout.bytes)
    {
        return cudaErrorInvalidValue;
    }
    char* ws = static_cast<char*>(workspace);
    switch (in.type)
    {
    case TensorType::kFLOAT32: return launchNMS<float>(in, shape, params, out, ws, layout, stream);
    case TensorType::kFLOAT16: return launchNMS<__half>(in, shape, params, out, ws, layout, stream);
    }
    return cudaErrorInvalidValue;
}

} // namespace oscar
