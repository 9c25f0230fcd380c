/*
 * Launcher of the OscarPeakRefine kernel (see oscar_refine_kernels.cuh and oscar_kernels.h).
 */
#include "oscar_kernels.h"
#include "oscar_refine_kernels.cuh"

#include <cuda_fp16.h>
#include <cuda_runtime.h>

namespace oscar
{
namespace
{

template <typename T>
cudaError_t launchPeakRefine(PeakRefineInputs const& in, PeakRefineShape const& shape,
    PeakRefineParameters const& params, PeakRefineOutputs const& out, cudaStream_t stream)
{
    device::PeakRefineArgs<T> const a = device::makePeakRefineArgs<T>(in, shape, params, out);
    dim3 const grid(static_cast<unsigned>(shape.m), static_cast<unsigned>(shape.batch));
    device::peakRefineKernel<T><<<grid, device::kPeakBlock, 0, stream>>>(a);
    return cudaGetLastError();
}

} // namespace

bool peakRefineSupported(PeakRefineShape const& s)
{
    return s.batch >= 0 && s.batch <= 65535 && s.m >= 0 && s.channels >= 1 && s.height >= 1 && s.width >= 1;
}

cudaError_t peakRefineLaunch(PeakRefineInputs const& in, PeakRefineShape const& shape,
    PeakRefineParameters const& params, PeakRefineOutputs const& out, cudaStream_t stream)
{
    if (!peakRefineSupported(shape))
    {
        return cudaErrorInvalidValue;
    }
    if (shape.batch == 0 || shape.m == 0)
    {
        return cudaSuccess;
    }
    switch (in.imageType)
    {
    case TensorType::kFLOAT32: return launchPeakRefine<float>(in, shape, params, out, stream);
    case TensorType::kFLOAT16: return launchPeakRefine<__half>(in, shape, params, out, stream);
    }
    return cudaErrorInvalidValue;
}

} // namespace oscar
