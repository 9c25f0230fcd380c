/*
 * OscarDecode TensorRT plugin (IPluginV3, V3One capabilities) and its creator.
 */
#include "oscar_decode_plugin.h"

#include "../common/oscar_plugin_names.h"
#include "../cuda/oscar_kernels.h"
#include "oscar_plugin_utils.h"

#include <exception>
#include <new>

using namespace nvinfer1;

namespace oscar
{
namespace plugin
{
namespace
{
constexpr char const* kName = OSCAR_DECODE_PLUGIN_NAME;

bool validParameters(DecodeParameters const& p) noexcept
{
    return p.topk >= 1 && p.topk <= kMaxSortKeys;
}
} // namespace

OscarDecodePlugin::OscarDecodePlugin(DecodeParameters const& params)
    : mParams(params)
{
}

IPluginCapability* OscarDecodePlugin::getCapabilityInterface(PluginCapabilityType type) noexcept
{
    switch (type)
    {
    case PluginCapabilityType::kCORE: return static_cast<IPluginV3OneCore*>(this);
    case PluginCapabilityType::kBUILD: return static_cast<IPluginV3OneBuild*>(this);
    case PluginCapabilityType::kRUNTIME: return static_cast<IPluginV3OneRuntime*>(this);
    }
    return nullptr;
}

IPluginV3* OscarDecodePlugin::clone() noexcept
{
    try
    {
        return new OscarDecodePlugin(mParams);
    }
    catch (std::exception const& e)
    {
        reportError(kName, e.what());
    }
    return nullptr;
}

char const* OscarDecodePlugin::getPluginName() const noexcept
{
    return OSCAR_DECODE_PLUGIN_NAME;
}

char const* OscarDecodePlugin::getPluginVersion() const noexcept
{
    return OSCAR_DECODE_PLUGIN_VERSION;
}

char const* OscarDecodePlugin::getPluginNamespace() const noexcept
{
    return OSCAR_PLUGIN_NAMESPACE;
}

int32_t OscarDecodePlugin::getNbOutputs() const noexcept
{
    return kNbOutputs;
}

int32_t OscarDecodePlugin::configurePlugin(
    DynamicPluginTensorDesc const* in, int32_t nbInputs, DynamicPluginTensorDesc const* out, int32_t nbOutputs) noexcept
{
    if (in == nullptr || out == nullptr || nbInputs != kNbInputs || nbOutputs != kNbOutputs)
    {
        reportError(kName, "expects 5 inputs and 3 outputs");
        return 1;
    }
    int64_t const channels[kNbInputs] = {1, 4, 1, 1, 4};
    for (int32_t i = 0; i < kNbInputs; ++i)
    {
        Dims const& d = in[i].desc.dims;
        if (d.nbDims != 4 || (d.d[1] >= 0 && d.d[1] != channels[i]))
        {
            reportError(kName, "inputs must be [B,1,H4,W4], [B,4,H4,W4], [B,1,H4,W4], [B,1,H8,W8], [B,4,H8,W8]");
            return 1;
        }
    }
    // Static extents (>= 0) must satisfy H4 = 2*H8, W4 = 2*W8; dynamic ones are checked in enqueue.
    Dims const& p2 = in[0].desc.dims;
    Dims const& p3 = in[3].desc.dims;
    for (int32_t axis = 2; axis < 4; ++axis)
    {
        if (p2.d[axis] >= 0 && p3.d[axis] >= 0 && p2.d[axis] != 2 * p3.d[axis])
        {
            reportError(kName, "the P2 grid (refine_*) must be twice the P3 grid (coarse_*)");
            return 1;
        }
    }
    return validParameters(mParams) ? 0 : 1;
}

int32_t OscarDecodePlugin::getOutputDataTypes(
    DataType* outputTypes, int32_t nbOutputs, DataType const* inputTypes, int32_t nbInputs) const noexcept
{
    if (outputTypes == nullptr || inputTypes == nullptr || nbOutputs != kNbOutputs || nbInputs != kNbInputs)
    {
        return 1;
    }
    outputTypes[0] = DataType::kFLOAT; // boxes
    outputTypes[1] = DataType::kFLOAT; // scores
    outputTypes[2] = DataType::kINT32; // count
    return 0;
}

int32_t OscarDecodePlugin::getOutputShapes(DimsExprs const* inputs, int32_t nbInputs, DimsExprs const* /*shapeInputs*/,
    int32_t /*nbShapeInputs*/, DimsExprs* outputs, int32_t nbOutputs, IExprBuilder& exprBuilder) noexcept
{
    if (inputs == nullptr || outputs == nullptr || nbInputs != kNbInputs || nbOutputs != kNbOutputs
        || inputs[0].nbDims != 4)
    {
        return 1;
    }
    IDimensionExpr const* batch = inputs[0].d[0];
    IDimensionExpr const* k = exprBuilder.constant(mParams.topk);
    IDimensionExpr const* four = exprBuilder.constant(4);
    outputs[0].nbDims = 3; // boxes [B, K, 4]
    outputs[0].d[0] = batch;
    outputs[0].d[1] = k;
    outputs[0].d[2] = four;
    outputs[1].nbDims = 2; // scores [B, K]
    outputs[1].d[0] = batch;
    outputs[1].d[1] = k;
    outputs[2].nbDims = 1; // count [B]
    outputs[2].d[0] = batch;
    return 0;
}

bool OscarDecodePlugin::supportsFormatCombination(
    int32_t pos, DynamicPluginTensorDesc const* inOut, int32_t nbInputs, int32_t nbOutputs) noexcept
{
    if (inOut == nullptr || nbInputs != kNbInputs || nbOutputs != kNbOutputs || pos < 0 || pos >= nbInputs + nbOutputs)
    {
        return false;
    }
    PluginTensorDesc const& d = inOut[pos].desc;
    if (!isLinear(d))
    {
        return false;
    }
    if (pos == 0)
    {
        return d.type == DataType::kFLOAT || d.type == DataType::kHALF;
    }
    if (pos < kNbInputs)
    {
        return d.type == inOut[0].desc.type; // all five raw tensors share FP32 or FP16
    }
    return d.type == (pos == kNbInputs + 2 ? DataType::kINT32 : DataType::kFLOAT);
}

size_t OscarDecodePlugin::getWorkspaceSize(DynamicPluginTensorDesc const* inputs, int32_t nbInputs,
    DynamicPluginTensorDesc const* /*outputs*/, int32_t /*nbOutputs*/) const noexcept
{
    if (inputs == nullptr || nbInputs != kNbInputs || inputs[0].max.nbDims != 4)
    {
        return 0;
    }
    Dims const& m = inputs[0].max; // upper bounds of the profile
    DecodeShape const shape{static_cast<int32_t>(m.d[0]), static_cast<int32_t>(m.d[2]), static_cast<int32_t>(m.d[3]),
        static_cast<int32_t>(m.d[2] / 2), static_cast<int32_t>(m.d[3] / 2)};
    return decodeWorkspaceLayout(shape).bytes;
}

int32_t OscarDecodePlugin::onShapeChange(
    PluginTensorDesc const* in, int32_t nbInputs, PluginTensorDesc const* out, int32_t nbOutputs) noexcept
{
    if (in == nullptr || out == nullptr || nbInputs != kNbInputs || nbOutputs != kNbOutputs)
    {
        return 1;
    }
    DecodeShape const shape{static_cast<int32_t>(in[0].dims.d[0]), static_cast<int32_t>(in[0].dims.d[2]),
        static_cast<int32_t>(in[0].dims.d[3]), static_cast<int32_t>(in[3].dims.d[2]), static_cast<int32_t>(in[3].dims.d[3])};
    if (!decodeSupported(shape, mParams))
    {
        reportError(kName, "unsupported shape: the P2 grid must be twice the P3 grid, batch <= 65535");
        return 1;
    }
    return 0;
}

int32_t OscarDecodePlugin::enqueue(PluginTensorDesc const* inputDesc, PluginTensorDesc const* /*outputDesc*/,
    void const* const* inputs, void* const* outputs, void* workspace, cudaStream_t stream) noexcept
{
    if (inputDesc == nullptr || inputs == nullptr || outputs == nullptr)
    {
        return 1;
    }
    DecodeInputs in{};
    if (!toTensorType(inputDesc[0].type, in.type))
    {
        reportError(kName, "inputs must be FP32 or FP16");
        return 1;
    }
    in.refineScore = inputs[0];
    in.refineBbox = inputs[1];
    in.refineNoco = inputs[2];
    in.coarseScore = inputs[3];
    in.coarseBbox = inputs[4];
    in.clampHw = nullptr; // clamp to the network input, 4*H4 x 4*W4
    DecodeShape const shape{static_cast<int32_t>(inputDesc[0].dims.d[0]), static_cast<int32_t>(inputDesc[0].dims.d[2]),
        static_cast<int32_t>(inputDesc[0].dims.d[3]), static_cast<int32_t>(inputDesc[3].dims.d[2]),
        static_cast<int32_t>(inputDesc[3].dims.d[3])};
    DecodeOutputs const out{static_cast<float*>(outputs[0]), static_cast<float*>(outputs[1]),
        static_cast<int32_t*>(outputs[2])};
    cudaError_t const status
        = decodeLaunch(in, shape, mParams, out, workspace, decodeWorkspaceLayout(shape).bytes, stream);
    if (status != cudaSuccess)
    {
        reportError(kName, cudaGetErrorString(status));
        return 1;
    }
    return 0;
}

IPluginV3* OscarDecodePlugin::attachToContext(IPluginResourceContext* /*context*/) noexcept
{
    return clone(); // no per-context resources
}

PluginFieldCollection const* OscarDecodePlugin::getFieldsToSerialize() noexcept
{
    try
    {
        mSerialFields.clear();
        mSerialFields.emplace_back(
            OSCAR_DECODE_ATTR_SCORE_THRESHOLD, &mParams.scoreThreshold, PluginFieldType::kFLOAT32, 1);
        mSerialFields.emplace_back(OSCAR_DECODE_ATTR_TOPK, &mParams.topk, PluginFieldType::kINT32, 1);
        mSerialFC.nbFields = static_cast<int32_t>(mSerialFields.size());
        mSerialFC.fields = mSerialFields.data();
        return &mSerialFC;
    }
    catch (std::exception const& e)
    {
        reportError(kName, e.what());
    }
    return nullptr;
}

// ---- creator ----------------------------------------------------------------------------------

OscarDecodePluginCreator::OscarDecodePluginCreator()
{
    mFields.emplace_back(OSCAR_DECODE_ATTR_SCORE_THRESHOLD, nullptr, PluginFieldType::kFLOAT32, 1);
    mFields.emplace_back(OSCAR_DECODE_ATTR_TOPK, nullptr, PluginFieldType::kINT32, 1);
    mFC.nbFields = static_cast<int32_t>(mFields.size());
    mFC.fields = mFields.data();
}

char const* OscarDecodePluginCreator::getPluginName() const noexcept
{
    return OSCAR_DECODE_PLUGIN_NAME;
}

char const* OscarDecodePluginCreator::getPluginVersion() const noexcept
{
    return OSCAR_DECODE_PLUGIN_VERSION;
}

char const* OscarDecodePluginCreator::getPluginNamespace() const noexcept
{
    return OSCAR_PLUGIN_NAMESPACE;
}

PluginFieldCollection const* OscarDecodePluginCreator::getFieldNames() noexcept
{
    return &mFC;
}

IPluginV3* OscarDecodePluginCreator::createPlugin(
    char const* /*name*/, PluginFieldCollection const* fc, TensorRTPhase /*phase*/) noexcept
{
    // The same fields come from the ONNX node / add_plugin_v3 (build) and from
    // getFieldsToSerialize (runtime); a missing field keeps its default.
    DecodeParameters params{};
    if (fc != nullptr && fc->fields != nullptr)
    {
        for (int32_t i = 0; i < fc->nbFields; ++i)
        {
            PluginField const& f = fc->fields[i];
            bool ok = true;
            if (fieldIs(f, OSCAR_DECODE_ATTR_SCORE_THRESHOLD))
            {
                ok = readFloatField(f, params.scoreThreshold);
            }
            else if (fieldIs(f, OSCAR_DECODE_ATTR_TOPK))
            {
                ok = readIntField(f, params.topk);
            }
            if (!ok)
            {
                reportError(kName, "attribute score_threshold must be a float, topk an int");
                return nullptr;
            }
        }
    }
    if (!validParameters(params))
    {
        reportError(kName, "topk must be in [1, 4096]");
        return nullptr;
    }
    try
    {
        return new OscarDecodePlugin(params);
    }
    catch (std::exception const& e)
    {
        reportError(kName, e.what());
    }
    return nullptr;
}

REGISTER_TENSORRT_PLUGIN(OscarDecodePluginCreator);

} // namespace plugin
} // namespace oscar
