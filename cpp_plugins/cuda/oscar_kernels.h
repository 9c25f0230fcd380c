/*
 * oscar_kernels.h -- host API of the OSCAR decode and NMS CUDA kernels (no TensorRT).
 *
 * Plain C++ (compiles with g++ against the CUDA runtime headers): the TensorRT plugins call
 * these launchers from enqueue(); the kernels live in oscar_decode_kernels.cu[h],
 * oscar_nms_kernels.cu[h] and oscar_refine_kernels.cu[h]. All pointers are device pointers; layouts are those of
 * cpp_plugins/README.md. Every launcher only enqueues work on `stream` (no allocation, no
 * synchronisation) and returns the launch status.
 */
#ifndef OSCAR_KERNELS_H
#define OSCAR_KERNELS_H

#include "../common/oscar_params.h"

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

namespace oscar
{

//! Element type of the raw inputs.
enum class TensorType : int32_t
{
    kFLOAT32 = 0,
    kFLOAT16 = 1
};

//! Largest K the in-block sorts handle (keys in shared memory).
constexpr int32_t kMaxSortKeys = 4096;

//! Alignment of the sub-buffers carved from a workspace.
constexpr size_t kWorkspaceAlign = 256;

inline size_t alignWorkspace(size_t n)
{
    return (n + kWorkspaceAlign - 1) / kWorkspaceAlign * kWorkspaceAlign;
}

// ---- OscarDecode ------------------------------------------------------------------------------

struct DecodeShape
{
    int32_t batch; //!< B
    int32_t h4;    //!< P2 grid height, = 2 * h8
    int32_t w4;    //!< P2 grid width, = 2 * w8
    int32_t h8;    //!< P3 grid height
    int32_t w8;    //!< P3 grid width
};

struct DecodeInputs
{
    void const* refineScore; //!< [B,1,H4,W4]
    void const* refineBbox;  //!< [B,4,H4,W4]
    void const* refineNoco;  //!< [B,1,H4,W4]
    void const* coarseScore; //!< [B,1,H8,W8]
    void const* coarseBbox;  //!< [B,4,H8,W8]
    TensorType type;         //!< of all five
    float const* clampHw;    //!< [B,2] (height, width) to clamp to, or nullptr for (4*H4, 4*W4)
};

struct DecodeOutputs
{
    float* boxes;   //!< [B,K,4]
    float* scores;  //!< [B,K]
    int32_t* count; //!< [B]
};

//! Workspace layout: per-point score keys [B*H4*W4] uint32, then candidate counts [B] int32.
struct DecodeWorkspace
{
    size_t keysOffset;
    size_t countsOffset;
    size_t bytes;
};

inline DecodeWorkspace decodeWorkspaceLayout(DecodeShape const& s)
{
    DecodeWorkspace w{};
    size_t const points = static_cast<size_t>(s.batch) * static_cast<size_t>(s.h4) * static_cast<size_t>(s.w4);
    w.keysOffset = 0;
    w.countsOffset = alignWorkspace(points * sizeof(uint32_t));
    w.bytes = w.countsOffset + alignWorkspace(static_cast<size_t>(s.batch) * sizeof(int32_t));
    return w;
}

//! True when the shape and parameters are supported (H4 = 2*H8, W4 = 2*W8, 1 <= topk <= 4096).
bool decodeSupported(DecodeShape const& shape, DecodeParameters const& params);

//! Enqueue the decode. Returns cudaErrorInvalidValue for unsupported arguments or a small
//! workspace, else the status of the launches.
cudaError_t decodeLaunch(DecodeInputs const& in, DecodeShape const& shape, DecodeParameters const& params,
    DecodeOutputs const& out, void* workspace, size_t workspaceBytes, cudaStream_t stream);

// ---- OscarNMS ---------------------------------------------------------------------------------

struct NMSShape
{
    int32_t batch; //!< B
    int32_t k;     //!< K candidates per image
};

struct NMSInputs
{
    void const* boxes;    //!< [B,K,4]
    void const* scores;   //!< [B,K]
    int32_t const* count; //!< [B], clamped to [0, K]
    TensorType type;      //!< of boxes and scores
};

struct NMSOutputs
{
    int32_t* num;   //!< [B]
    float* boxes;   //!< [B,M,4]
    float* scores;  //!< [B,M]
};

//! Workspace layout: sorted candidate rows [B*K] int32, their boxes [B*K*4] float, sorted
//! counts [B] int32, kept sorted positions [B*K] int32, IoU bitmask [B*K*ceil(K/64)] uint64.
struct NMSWorkspace
{
    size_t sortedIndexOffset;
    size_t sortedBoxesOffset;
    size_t sortedCountOffset;
    size_t keepOffset;
    size_t maskOffset;
    int32_t maskWords; //!< ceil(K / 64)
    size_t bytes;
};

inline NMSWorkspace nmsWorkspaceLayout(NMSShape const& s)
{
    NMSWorkspace w{};
    size_t const bk = static_cast<size_t>(s.batch) * static_cast<size_t>(s.k);
    w.maskWords = (s.k + 63) / 64;
    w.sortedIndexOffset = 0;
    w.sortedBoxesOffset = w.sortedIndexOffset + alignWorkspace(bk * sizeof(int32_t));
    w.sortedCountOffset = w.sortedBoxesOffset + alignWorkspace(bk * 4 * sizeof(float));
    w.keepOffset = w.sortedCountOffset + alignWorkspace(static_cast<size_t>(s.batch) * sizeof(int32_t));
    w.maskOffset = w.keepOffset + alignWorkspace(bk * sizeof(int32_t));
    w.bytes = w.maskOffset + alignWorkspace(bk * static_cast<size_t>(w.maskWords) * sizeof(uint64_t));
    return w;
}

//! True when 0 <= K <= 4096 and maxDetections >= 1.
bool nmsSupported(NMSShape const& shape, NMSParameters const& params);

//! Enqueue the NMS. Returns cudaErrorInvalidValue for unsupported arguments or a small
//! workspace, else the status of the launches.
cudaError_t nmsLaunch(NMSInputs const& in, NMSShape const& shape, NMSParameters const& params,
    NMSOutputs const& out, void* workspace, size_t workspaceBytes, cudaStream_t stream);

// ---- OscarPeakRefine ---------------------------------------------------------------------------

struct PeakRefineShape
{
    int32_t batch;    //!< B
    int32_t channels; //!< C of the image (channel 0 is used)
    int32_t height;   //!< H of the image (the network input)
    int32_t width;    //!< W
    int32_t m;        //!< M boxes per image (OscarNMS max_detections)
};

struct PeakRefineInputs
{
    void const* image;      //!< [B,C,H,W]
    TensorType imageType;   //!< FP32 or FP16
    float const* boxes;     //!< [B,M,4] (OscarNMS boxes)
    int32_t const* num;     //!< [B] (OscarNMS num_detections), clamped to [0, M]
    float const* letterbox; //!< [B,4] content height, content width, scale_y, scale_x; or nullptr
};

struct PeakRefineOutputs
{
    float* boxes; //!< [B,M,4]; zero rows past num
};

//! True when B <= 65535, M >= 0 and C, H, W >= 1. No workspace is needed.
bool peakRefineSupported(PeakRefineShape const& shape);

//! Enqueue the refinement (one block of 128 threads per box). Returns cudaErrorInvalidValue for
//! an unsupported shape, else the status of the launch.
cudaError_t peakRefineLaunch(PeakRefineInputs const& in, PeakRefineShape const& shape,
    PeakRefineParameters const& params, PeakRefineOutputs const& out, cudaStream_t stream);

} // namespace oscar

#endif /* OSCAR_KERNELS_H */
