/*
 * oscar_gpu_runner.cu -- a plain C API around the OSCAR CUDA kernels, for the GPU check
 * (tests/gpu/device_check.sh, tests/gpu/gpu_kernels.py). No TensorRT.
 *
 * Every entry point takes host arrays, copies them to device buffers, calls the launchers of
 * ../../cuda/oscar_kernels.h exactly as the plugins' enqueue() does (same shapes, same
 * parameters, clampHw = nullptr for OscarDecode unless a clamp is given, a workspace of
 * decodeWorkspaceLayout / nmsWorkspaceLayout bytes, a non-default stream), synchronises and
 * copies the outputs back. Outputs and workspaces are first filled with garbage bytes, as
 * TensorRT hands over uninitialised memory: a kernel that leaves a byte unwritten shows up.
 * Return value: a cudaError_t (0 = success); oscar_gpu_status_string names it.
 *
 *   nvcc -std=c++17 -O3 -shared -Xcompiler=-fPIC,-ffp-contract=off -arch=sm_XX \
 *       ../../cuda/oscar_{decode,nms,refine}_kernels.cu oscar_gpu_runner.cu -o liboscar_gpu_runner.so
 *
 * (tests/gpu/gpu_kernels.py builds it with the project's warning flags.)
 */
#include "../../cuda/oscar_kernels.h"

#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <vector>

#define OSCAR_GPU_API extern "C" __attribute__((visibility("default")))

namespace
{

using oscar::TensorType;

constexpr int kGarbageOutput = 0x7F;    //!< float 3.39e38, int 0x7F7F7F7F
constexpr int kGarbageWorkspace = 0xA5; //!< what an earlier layer may have left
constexpr int32_t kRunnerAbiVersion = 1;

#define OSCAR_TRY(expr)                                                                                                \
    do                                                                                                                 \
    {                                                                                                                  \
        cudaError_t const status_ = (expr);                                                                            \
        if (status_ != cudaSuccess)                                                                                    \
        {                                                                                                              \
            return static_cast<int32_t>(status_);                                                                      \
        }                                                                                                              \
    } while (0)

//! One device allocation (at least 256 bytes, so that empty tensors still have an address).
class DeviceBuffer
{
public:
    DeviceBuffer() = default;
    DeviceBuffer(DeviceBuffer const&) = delete;
    DeviceBuffer& operator=(DeviceBuffer const&) = delete;
    ~DeviceBuffer()
    {
        if (mPtr != nullptr)
        {
            cudaFree(mPtr);
        }
    }

    cudaError_t allocate(size_t bytes)
    {
        mBytes = bytes;
        return cudaMalloc(&mPtr, std::max<size_t>(bytes, 256));
    }

    //! Allocate and copy `bytes` from the host (nothing to copy when host is null).
    cudaError_t upload(void const* host, size_t bytes)
    {
        cudaError_t st = allocate(bytes);
        if (st == cudaSuccess && host != nullptr && bytes > 0)
        {
            st = cudaMemcpy(mPtr, host, bytes, cudaMemcpyHostToDevice);
        }
        return st;
    }

    cudaError_t download(void* host) const
    {
        return mBytes == 0 ? cudaSuccess : cudaMemcpy(host, mPtr, mBytes, cudaMemcpyDeviceToHost);
    }

    cudaError_t fill(int value, cudaStream_t stream) const
    {
        return cudaMemsetAsync(mPtr, value, std::max<size_t>(mBytes, 256), stream);
    }

    template <typename T = void>
    T* get() const
    {
        return static_cast<T*>(mPtr);
    }

private:
    void* mPtr{nullptr};
    size_t mBytes{0};
};

class Stream
{
public:
    Stream() = default;
    Stream(Stream const&) = delete;
    Stream& operator=(Stream const&) = delete;
    ~Stream()
    {
        if (mStream != nullptr)
        {
            cudaStreamDestroy(mStream);
        }
    }
    cudaError_t create()
    {
        return cudaStreamCreateWithFlags(&mStream, cudaStreamNonBlocking);
    }
    cudaStream_t get() const
    {
        return mStream;
    }

private:
    cudaStream_t mStream{nullptr};
};

class Events
{
public:
    Events() = default;
    Events(Events const&) = delete;
    Events& operator=(Events const&) = delete;
    ~Events()
    {
        for (cudaEvent_t e : mEvents)
        {
            cudaEventDestroy(e);
        }
    }
    cudaError_t create(size_t n)
    {
        mEvents.reserve(n);
        for (size_t i = 0; i < n; ++i)
        {
            cudaEvent_t e{};
            cudaError_t const st = cudaEventCreate(&e);
            if (st != cudaSuccess)
            {
                return st;
            }
            mEvents.push_back(e);
        }
        return cudaSuccess;
    }
    cudaEvent_t operator[](size_t i) const
    {
        return mEvents[i];
    }

private:
    std::vector<cudaEvent_t> mEvents;
};

size_t elementBytes(int32_t half)
{
    return half != 0 ? 2 : 4;
}

TensorType tensorType(int32_t half)
{
    return half != 0 ? TensorType::kFLOAT16 : TensorType::kFLOAT32;
}

size_t count(std::initializer_list<int32_t> dims)
{
    size_t n = 1;
    for (int32_t d : dims)
    {
        n *= static_cast<size_t>(std::max(d, 0));
    }
    return n;
}

//! The device buffers of one decode -> NMS -> peak refine chain, as one TensorRT engine with the
//! three plugins holds them (decode outputs feed NMS, NMS outputs feed the refinement).
struct Chain
{
    // shapes and attributes
    oscar::DecodeShape decodeShape{};
    oscar::DecodeParameters decodeParams{};
    oscar::NMSShape nmsShape{};
    oscar::NMSParameters nmsParams{};
    oscar::PeakRefineShape refineShape{};
    oscar::PeakRefineParameters refineParams{};
    TensorType rawType{TensorType::kFLOAT32};
    TensorType imageType{TensorType::kFLOAT32};
    bool hasLetterbox{false};
    // buffers
    DeviceBuffer raw[5];
    DeviceBuffer decodeBoxes, decodeScores, decodeCount, decodeWorkspace;
    DeviceBuffer nmsNum, nmsBoxes, nmsScores, nmsWorkspace;
    DeviceBuffer image, letterbox, refineBoxes;

    cudaError_t setUp(int32_t half, void const* const* rawHost, int32_t batch, int32_t h4, int32_t w4, int32_t h8,
        int32_t w8, float scoreThreshold, int32_t topk, float iouThreshold, int32_t maxDetections, int32_t imageHalf,
        void const* imageHost, int32_t channels, int32_t height, int32_t width, float const* letterboxHost,
        int32_t centroid)
    {
        decodeShape = {batch, h4, w4, h8, w8};
        decodeParams.scoreThreshold = scoreThreshold;
        decodeParams.topk = topk;
        nmsShape = {batch, topk};
        nmsParams.iouThreshold = iouThreshold;
        nmsParams.maxDetections = maxDetections;
        refineShape = {batch, channels, height, width, maxDetections};
        refineParams.centroid = centroid;
        rawType = tensorType(half);
        imageType = tensorType(imageHalf);
        hasLetterbox = letterboxHost != nullptr;
        if (!oscar::decodeSupported(decodeShape, decodeParams) || !oscar::nmsSupported(nmsShape, nmsParams)
            || !oscar::peakRefineSupported(refineShape))
        {
            return cudaErrorInvalidValue;
        }
        size_t const e = elementBytes(half);
        int32_t const rawChannels[5] = {1, 4, 1, 1, 4};
        for (int i = 0; i < 5; ++i)
        {
            size_t const n = i < 3 ? count({batch, rawChannels[i], h4, w4}) : count({batch, rawChannels[i], h8, w8});
            cudaError_t const st = raw[i].upload(rawHost[i], n * e);
            if (st != cudaSuccess)
            {
                return st;
            }
        }
        cudaError_t st = cudaSuccess;
        auto const step = [&st](cudaError_t s) {
            if (st == cudaSuccess)
            {
                st = s;
            }
        };
        step(decodeBoxes.allocate(count({batch, topk, 4}) * sizeof(float)));
        step(decodeScores.allocate(count({batch, topk}) * sizeof(float)));
        step(decodeCount.allocate(count({batch}) * sizeof(int32_t)));
        step(decodeWorkspace.allocate(oscar::decodeWorkspaceLayout(decodeShape).bytes));
        step(nmsNum.allocate(count({batch}) * sizeof(int32_t)));
        step(nmsBoxes.allocate(count({batch, maxDetections, 4}) * sizeof(float)));
        step(nmsScores.allocate(count({batch, maxDetections}) * sizeof(float)));
        step(nmsWorkspace.allocate(oscar::nmsWorkspaceLayout(nmsShape).bytes));
        step(image.upload(imageHost, count({batch, channels, height, width}) * elementBytes(imageHalf)));
        step(letterbox.upload(letterboxHost, hasLetterbox ? count({batch, 4}) * sizeof(float) : 0));
        step(refineBoxes.allocate(count({batch, maxDetections, 4}) * sizeof(float)));
        return st;
    }

    cudaError_t poison(cudaStream_t stream) const
    {
        DeviceBuffer const* outputs[] = {&decodeBoxes, &decodeScores, &decodeCount, &nmsNum, &nmsBoxes, &nmsScores,
            &refineBoxes};
        for (DeviceBuffer const* b : outputs)
        {
            cudaError_t const st = b->fill(kGarbageOutput, stream);
            if (st != cudaSuccess)
            {
                return st;
            }
        }
        cudaError_t const st = decodeWorkspace.fill(kGarbageWorkspace, stream);
        return st != cudaSuccess ? st : nmsWorkspace.fill(kGarbageWorkspace, stream);
    }

    //! OscarDecode::enqueue (clampHw = nullptr: the network input).
    cudaError_t decode(cudaStream_t stream) const
    {
        oscar::DecodeInputs in{};
        in.refineScore = raw[0].get();
        in.refineBbox = raw[1].get();
        in.refineNoco = raw[2].get();
        in.coarseScore = raw[3].get();
        in.coarseBbox = raw[4].get();
        in.type = rawType;
        in.clampHw = nullptr;
        oscar::DecodeOutputs const out{decodeBoxes.get<float>(), decodeScores.get<float>(), decodeCount.get<int32_t>()};
        return oscar::decodeLaunch(in, decodeShape, decodeParams, out, decodeWorkspace.get(),
            oscar::decodeWorkspaceLayout(decodeShape).bytes, stream);
    }

    //! OscarNMS::enqueue on the decode outputs (FP32, as OscarDecode always writes).
    cudaError_t nms(cudaStream_t stream) const
    {
        oscar::NMSInputs in{};
        in.boxes = decodeBoxes.get();
        in.scores = decodeScores.get();
        in.count = decodeCount.get<int32_t>();
        in.type = TensorType::kFLOAT32;
        oscar::NMSOutputs const out{nmsNum.get<int32_t>(), nmsBoxes.get<float>(), nmsScores.get<float>()};
        return oscar::nmsLaunch(in, nmsShape, nmsParams, out, nmsWorkspace.get(),
            oscar::nmsWorkspaceLayout(nmsShape).bytes, stream);
    }

    //! OscarPeakRefine::enqueue on the NMS outputs.
    cudaError_t refine(cudaStream_t stream) const
    {
        oscar::PeakRefineInputs in{};
        in.image = image.get();
        in.imageType = imageType;
        in.boxes = nmsBoxes.get<float>();
        in.num = nmsNum.get<int32_t>();
        in.letterbox = hasLetterbox ? letterbox.get<float>() : nullptr;
        oscar::PeakRefineOutputs const out{refineBoxes.get<float>()};
        return oscar::peakRefineLaunch(in, refineShape, refineParams, out, stream);
    }

    //! stage 0 decode, 1 NMS, 2 peak refine, 3 all three in order.
    cudaError_t run(int32_t stage, cudaStream_t stream) const
    {
        cudaError_t st = cudaSuccess;
        if (stage == 0 || stage == 3)
        {
            st = decode(stream);
        }
        if (st == cudaSuccess && (stage == 1 || stage == 3))
        {
            st = nms(stream);
        }
        if (st == cudaSuccess && (stage == 2 || stage == 3))
        {
            st = refine(stream);
        }
        return st;
    }
};

} // namespace

OSCAR_GPU_API int32_t oscar_gpu_abi_version()
{
    return kRunnerAbiVersion;
}

OSCAR_GPU_API char const* oscar_gpu_status_string(int32_t status)
{
    return cudaGetErrorString(static_cast<cudaError_t>(status));
}

//! Device 0: name, compute capability, CUDA runtime and driver versions (e.g. 13000).
OSCAR_GPU_API int32_t oscar_gpu_device_info(char* name, int32_t nameBytes, int32_t* major, int32_t* minor,
    int32_t* runtimeVersion, int32_t* driverVersion)
{
    if (name == nullptr || nameBytes < 1 || major == nullptr || minor == nullptr || runtimeVersion == nullptr
        || driverVersion == nullptr)
    {
        return static_cast<int32_t>(cudaErrorInvalidValue);
    }
    name[0] = '\0';
    OSCAR_TRY(cudaRuntimeGetVersion(runtimeVersion));
    OSCAR_TRY(cudaDriverGetVersion(driverVersion));
    int device = 0;
    OSCAR_TRY(cudaGetDevice(&device));
    cudaDeviceProp prop{};
    OSCAR_TRY(cudaGetDeviceProperties(&prop, device));
    std::strncpy(name, prop.name, static_cast<size_t>(nameBytes) - 1);
    name[nameBytes - 1] = '\0';
    *major = prop.major;
    *minor = prop.minor;
    return 0;
}

//! OscarDecode on host arrays. clampHw [B,2] or null (the plugin's choice: the network input).
OSCAR_GPU_API int32_t oscar_gpu_decode(int32_t half, void const* refineScore, void const* refineBbox,
    void const* refineNoco, void const* coarseScore, void const* coarseBbox, int32_t batch, int32_t h4, int32_t w4,
    int32_t h8, int32_t w8, float const* clampHw, float scoreThreshold, int32_t topk, float* boxes, float* scores,
    int32_t* countOut)
{
    oscar::DecodeShape const shape{batch, h4, w4, h8, w8};
    oscar::DecodeParameters params{};
    params.scoreThreshold = scoreThreshold;
    params.topk = topk;
    if (boxes == nullptr || scores == nullptr || countOut == nullptr || !oscar::decodeSupported(shape, params))
    {
        return static_cast<int32_t>(cudaErrorInvalidValue);
    }
    Stream stream;
    OSCAR_TRY(stream.create());
    size_t const e = elementBytes(half);
    DeviceBuffer in[5], clamp, outBoxes, outScores, outCount, workspace;
    void const* host[5] = {refineScore, refineBbox, refineNoco, coarseScore, coarseBbox};
    int32_t const channels[5] = {1, 4, 1, 1, 4};
    for (int i = 0; i < 5; ++i)
    {
        size_t const n = i < 3 ? count({batch, channels[i], h4, w4}) : count({batch, channels[i], h8, w8});
        OSCAR_TRY(in[i].upload(host[i], n * e));
    }
    if (clampHw != nullptr)
    {
        OSCAR_TRY(clamp.upload(clampHw, count({batch, 2}) * sizeof(float)));
    }
    OSCAR_TRY(outBoxes.allocate(count({batch, topk, 4}) * sizeof(float)));
    OSCAR_TRY(outScores.allocate(count({batch, topk}) * sizeof(float)));
    OSCAR_TRY(outCount.allocate(count({batch}) * sizeof(int32_t)));
    size_t const wsBytes = oscar::decodeWorkspaceLayout(shape).bytes;
    OSCAR_TRY(workspace.allocate(wsBytes));
    OSCAR_TRY(outBoxes.fill(kGarbageOutput, stream.get()));
    OSCAR_TRY(outScores.fill(kGarbageOutput, stream.get()));
    OSCAR_TRY(outCount.fill(kGarbageOutput, stream.get()));
    OSCAR_TRY(workspace.fill(kGarbageWorkspace, stream.get()));

    oscar::DecodeInputs din{};
    din.refineScore = in[0].get();
    din.refineBbox = in[1].get();
    din.refineNoco = in[2].get();
    din.coarseScore = in[3].get();
    din.coarseBbox = in[4].get();
    din.type = tensorType(half);
    din.clampHw = clampHw != nullptr ? clamp.get<float>() : nullptr;
    oscar::DecodeOutputs const dout{outBoxes.get<float>(), outScores.get<float>(), outCount.get<int32_t>()};
    OSCAR_TRY(oscar::decodeLaunch(din, shape, params, dout, workspace.get(), wsBytes, stream.get()));
    OSCAR_TRY(cudaStreamSynchronize(stream.get()));
    OSCAR_TRY(outBoxes.download(boxes));
    OSCAR_TRY(outScores.download(scores));
    OSCAR_TRY(outCount.download(countOut));
    return 0;
}

//! OscarNMS on host arrays: boxes [B,K,4], scores [B,K] (FP32 or FP16), count [B].
OSCAR_GPU_API int32_t oscar_gpu_nms(int32_t half, void const* boxes, void const* scores, int32_t const* countIn,
    int32_t batch, int32_t k, float iouThreshold, int32_t maxDetections, int32_t* num, float* outBoxes,
    float* outScores)
{
    oscar::NMSShape const shape{batch, k};
    oscar::NMSParameters params{};
    params.iouThreshold = iouThreshold;
    params.maxDetections = maxDetections;
    if (num == nullptr || outBoxes == nullptr || outScores == nullptr || !oscar::nmsSupported(shape, params))
    {
        return static_cast<int32_t>(cudaErrorInvalidValue);
    }
    Stream stream;
    OSCAR_TRY(stream.create());
    size_t const e = elementBytes(half);
    DeviceBuffer inBoxes, inScores, inCount, dNum, dBoxes, dScores, workspace;
    OSCAR_TRY(inBoxes.upload(boxes, count({batch, k, 4}) * e));
    OSCAR_TRY(inScores.upload(scores, count({batch, k}) * e));
    OSCAR_TRY(inCount.upload(countIn, count({batch}) * sizeof(int32_t)));
    OSCAR_TRY(dNum.allocate(count({batch}) * sizeof(int32_t)));
    OSCAR_TRY(dBoxes.allocate(count({batch, maxDetections, 4}) * sizeof(float)));
    OSCAR_TRY(dScores.allocate(count({batch, maxDetections}) * sizeof(float)));
    size_t const wsBytes = oscar::nmsWorkspaceLayout(shape).bytes;
    OSCAR_TRY(workspace.allocate(wsBytes));
    OSCAR_TRY(dNum.fill(kGarbageOutput, stream.get()));
    OSCAR_TRY(dBoxes.fill(kGarbageOutput, stream.get()));
    OSCAR_TRY(dScores.fill(kGarbageOutput, stream.get()));
    OSCAR_TRY(workspace.fill(kGarbageWorkspace, stream.get()));

    oscar::NMSInputs in{};
    in.boxes = inBoxes.get();
    in.scores = inScores.get();
    in.count = inCount.get<int32_t>();
    in.type = tensorType(half);
    oscar::NMSOutputs const out{dNum.get<int32_t>(), dBoxes.get<float>(), dScores.get<float>()};
    OSCAR_TRY(oscar::nmsLaunch(in, shape, params, out, workspace.get(), wsBytes, stream.get()));
    OSCAR_TRY(cudaStreamSynchronize(stream.get()));
    OSCAR_TRY(dNum.download(num));
    OSCAR_TRY(dBoxes.download(outBoxes));
    OSCAR_TRY(dScores.download(outScores));
    return 0;
}

//! OscarPeakRefine on host arrays: image [B,C,H,W] (FP32 or FP16), boxes [B,M,4], num [B],
//! letterbox [B,4] or null.
OSCAR_GPU_API int32_t oscar_gpu_peak_refine(int32_t half, void const* image, int32_t batch, int32_t channels,
    int32_t height, int32_t width, float const* boxes, int32_t const* num, int32_t m, float const* letterbox,
    int32_t centroid, float* outBoxes)
{
    oscar::PeakRefineShape const shape{batch, channels, height, width, m};
    oscar::PeakRefineParameters params{};
    params.centroid = centroid;
    if (outBoxes == nullptr || !oscar::peakRefineSupported(shape))
    {
        return static_cast<int32_t>(cudaErrorInvalidValue);
    }
    Stream stream;
    OSCAR_TRY(stream.create());
    DeviceBuffer dImage, dBoxes, dNum, dLetterbox, dOut;
    OSCAR_TRY(dImage.upload(image, count({batch, channels, height, width}) * elementBytes(half)));
    OSCAR_TRY(dBoxes.upload(boxes, count({batch, m, 4}) * sizeof(float)));
    OSCAR_TRY(dNum.upload(num, count({batch}) * sizeof(int32_t)));
    if (letterbox != nullptr)
    {
        OSCAR_TRY(dLetterbox.upload(letterbox, count({batch, 4}) * sizeof(float)));
    }
    OSCAR_TRY(dOut.allocate(count({batch, m, 4}) * sizeof(float)));
    OSCAR_TRY(dOut.fill(kGarbageOutput, stream.get()));

    oscar::PeakRefineInputs in{};
    in.image = dImage.get();
    in.imageType = tensorType(half);
    in.boxes = dBoxes.get<float>();
    in.num = dNum.get<int32_t>();
    in.letterbox = letterbox != nullptr ? dLetterbox.get<float>() : nullptr;
    oscar::PeakRefineOutputs const out{dOut.get<float>()};
    OSCAR_TRY(oscar::peakRefineLaunch(in, shape, params, out, stream.get()));
    OSCAR_TRY(cudaStreamSynchronize(stream.get()));
    OSCAR_TRY(dOut.download(outBoxes));
    return 0;
}

//! Decode -> NMS -> peak refine chained on the device, as one engine with the three plugins.
//! raw: the five raw tensors (FP32, or FP16 when half); image [B,C,H,W] (FP16 when imageHalf);
//! letterbox [B,4] or null. Every output pointer receives its plugin's output.
OSCAR_GPU_API int32_t oscar_gpu_chain(int32_t half, void const* const* raw, int32_t batch, int32_t h4, int32_t w4,
    int32_t h8, int32_t w8, float scoreThreshold, int32_t topk, float iouThreshold, int32_t maxDetections,
    int32_t imageHalf, void const* image, int32_t channels, int32_t height, int32_t width, float const* letterbox,
    int32_t centroid, float* decodeBoxes, float* decodeScores, int32_t* decodeCount, int32_t* nmsNum,
    float* nmsBoxes, float* nmsScores, float* refineBoxes)
{
    if (raw == nullptr || decodeBoxes == nullptr || decodeScores == nullptr || decodeCount == nullptr
        || nmsNum == nullptr || nmsBoxes == nullptr || nmsScores == nullptr || refineBoxes == nullptr)
    {
        return static_cast<int32_t>(cudaErrorInvalidValue);
    }
    Stream stream;
    OSCAR_TRY(stream.create());
    Chain chain;
    OSCAR_TRY(chain.setUp(half, raw, batch, h4, w4, h8, w8, scoreThreshold, topk, iouThreshold, maxDetections,
        imageHalf, image, channels, height, width, letterbox, centroid));
    OSCAR_TRY(chain.poison(stream.get()));
    OSCAR_TRY(chain.run(3, stream.get()));
    OSCAR_TRY(cudaStreamSynchronize(stream.get()));
    OSCAR_TRY(chain.decodeBoxes.download(decodeBoxes));
    OSCAR_TRY(chain.decodeScores.download(decodeScores));
    OSCAR_TRY(chain.decodeCount.download(decodeCount));
    OSCAR_TRY(chain.nmsNum.download(nmsNum));
    OSCAR_TRY(chain.nmsBoxes.download(nmsBoxes));
    OSCAR_TRY(chain.nmsScores.download(nmsScores));
    OSCAR_TRY(chain.refineBoxes.download(refineBoxes));
    return 0;
}

//! Time one stage of the chain (0 decode, 1 NMS, 2 peak refine, 3 all three) with CUDA events.
//! The chain first runs once, so NMS and the refinement time on real decode / NMS outputs.
//! Then `warmup` untimed launches and `launches` timed ones, enqueued back to back on one
//! stream with an event before each and one after the last: deviceMs[i] is the device time of
//! launch i (event i to event i+1). hostUs: mean host time of one enqueue (the launcher calls).
OSCAR_GPU_API int32_t oscar_gpu_time(int32_t stage, int32_t half, void const* const* raw, int32_t batch, int32_t h4,
    int32_t w4, int32_t h8, int32_t w8, float scoreThreshold, int32_t topk, float iouThreshold, int32_t maxDetections,
    int32_t imageHalf, void const* image, int32_t channels, int32_t height, int32_t width, float const* letterbox,
    int32_t centroid, int32_t warmup, int32_t launches, float* deviceMs, float* hostUs)
{
    if (raw == nullptr || deviceMs == nullptr || hostUs == nullptr || stage < 0 || stage > 3 || warmup < 0
        || launches < 1)
    {
        return static_cast<int32_t>(cudaErrorInvalidValue);
    }
    Stream stream;
    OSCAR_TRY(stream.create());
    Chain chain;
    OSCAR_TRY(chain.setUp(half, raw, batch, h4, w4, h8, w8, scoreThreshold, topk, iouThreshold, maxDetections,
        imageHalf, image, channels, height, width, letterbox, centroid));
    OSCAR_TRY(chain.poison(stream.get()));
    OSCAR_TRY(chain.run(3, stream.get()));
    for (int32_t i = 0; i < warmup; ++i)
    {
        OSCAR_TRY(chain.run(stage, stream.get()));
    }
    OSCAR_TRY(cudaStreamSynchronize(stream.get()));
    Events events;
    OSCAR_TRY(events.create(static_cast<size_t>(launches) + 1));
    double hostSeconds = 0.0;
    for (int32_t i = 0; i < launches; ++i)
    {
        OSCAR_TRY(cudaEventRecord(events[static_cast<size_t>(i)], stream.get()));
        auto const t0 = std::chrono::steady_clock::now();
        OSCAR_TRY(chain.run(stage, stream.get()));
        hostSeconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    }
    OSCAR_TRY(cudaEventRecord(events[static_cast<size_t>(launches)], stream.get()));
    OSCAR_TRY(cudaEventSynchronize(events[static_cast<size_t>(launches)]));
    for (int32_t i = 0; i < launches; ++i)
    {
        OSCAR_TRY(cudaEventElapsedTime(
            &deviceMs[i], events[static_cast<size_t>(i)], events[static_cast<size_t>(i) + 1]));
    }
    *hostUs = static_cast<float>(hostSeconds * 1e6 / launches);
    return 0;
}
