/*
 * OscarNMS TensorRT plugin (IPluginV3, V3One capabilities) and its creator.
 */
#include "oscar_nms_plugin.h"

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
constexpr char const* kName = OSCAR_NMS_PLUGIN_NAME;

bool validParameters(NMSParameters const& p) noexcept
{
    return p.maxDetections >= 1;
}
} // namespace

OscarNMSPlugin::OscarNMSPlugin(NMSParameters const& params)
    : mParams(params)
{
}

IPluginCapability* OscarNMSPlugin::getCapabilityInterface(PluginCapabilityType type) noexcept
{
    switch (type)
    {
    case PluginCapabilityType::kCORE: return static_cast<IPluginV3OneCore*>(this);
    case PluginCapabilityType::kBUILD: return static_cast<IPluginV3OneBuild*>(this);
    case PluginCapabilityType::kRUNTIME: return static_cast<IPluginV3OneRuntime*>(this);
    }
    return nullptr;
}

IPluginV3* OscarNMSPlugin::clone() noexcept
{
    try
    {
        return new OscarNMSPlugin(mParams);
    }
    catch (std::exception const& e)
    {
        reportError(kName, e.what());
    }
    return nullptr;
}

char const* OscarNMSPlugin::getPluginName() const noexcept
{
    return OSCAR_NMS_PLUGIN_NAME;
}

char const* OscarNMSPlugin::getPluginVersion() const noexcept
{
    return OSCAR_NMS_PLUGIN_VERSION;
}

char const* OscarNMSPlugin::getPluginNamespace() const noexcept
{
    return OSCAR_PLUGIN_NAMESPACE;
}

int32_t OscarNMSPlugin::getNbOutputs() const noexcept
{
    return kNbOutputs;
}

int32_t OscarNMSPlugin::configurePlugin(
    DynamicPluginTensorDesc const* in, int32_t nbInputs, DynamicPluginTensorDesc const* out, int32_t nbOutputs) noexcept
{
    if (in == nullptr || out == nullptr || nbInputs != kNbInputs || nbOutputs != kNbOutputs)
    {
        reportError(kName, "expects 3 inputs and 3 outputs");
        return 1;
    }
    Dims const& boxes = in[0].desc.dims;
    Dims const& scores = in[1].desc.dims;
    Dims const& count = in[2].desc.dims;
    if (boxes.nbDims != 3 || scores.nbDims != 2 || count.nbDims != 1 || (boxes.d[2] >= 0 && boxes.d[2] != 4))
    {
        reportError(kName, "inputs must be boxes [B,K,4], scores [B,K], count [B]");
        return 1;
    }
    if (in[0].max.nbDims == 3 && in[0].max.d[1] > kMaxSortKeys)
    {
        reportError(kName, "at most 4096 candidates per image (K)");
        return 1;
    }
    return validParameters(mParams) ? 0 : 1;
}

int32_t OscarNMSPlugin::getOutputDataTypes(
    DataType* outputTypes, int32_t nbOutputs, DataType const* inputTypes, int32_t nbInputs) const noexcept
{
    if (outputTypes == nullptr || inputTypes == nullptr || nbOutputs != kNbOutputs || nbInputs != kNbInputs)
    {
        return 1;
    }
    outputTypes[0] = DataType::kINT32; // num_detections
    outputTypes[1] = DataType::kFLOAT; // boxes
    outputTypes[2] = DataType::kFLOAT; // scores
    return 0;
}

int32_t OscarNMSPlugin::getOutputShapes(DimsExprs const* inputs, int32_t nbInputs, DimsExprs const* /*shapeInputs*/,
    int32_t /*nbShapeInputs*/, DimsExprs* outputs, int32_t nbOutputs, IExprBuilder& exprBuilder) noexcept
{
    if (inputs == nullptr || outputs == nullptr || nbInputs != kNbInputs || nbOutputs != kNbOutputs
        || inputs[0].nbDims != 3)
    {
        return 1;
    }
    IDimensionExpr const* batch = inputs[0].d[0];
    IDimensionExpr const* m = exprBuilder.constant(mParams.maxDetections);
    outputs[0].nbDims = 1; // num_detections [B]
    outputs[0].d[0] = batch;
    outputs[1].nbDims = 3; // boxes [B, M, 4]
    outputs[1].d[0] = batch;
    outputs[1].d[1] = m;
    outputs[1].d[2] = exprBuilder.constant(4);
    outputs[2].nbDims = 2; // scores [B, M]
    outputs[2].d[0] = batch;
    outputs[2].d[1] = m;
    return 0;
}

bool OscarNMSPlugin::supportsFormatCombination(
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
    switch (pos)
    {
    case 0: return d.type == DataType::kFLOAT || d.type == DataType::kHALF; // boxes
    case 1: return d.type == inOut[0].desc.type;                          // scores, as boxes
    case 2: return d.type == DataType::kINT32;                            // count
    case 3: return d.type == DataType::kINT32;                            // num_detections
    default: return d.type == DataType::kFLOAT;                           // boxes, scores out
    }
}

size_t OscarNMSPlugin::getWorkspaceSize(DynamicPluginTensorDesc const* inputs, int32_t nbInputs,
    DynamicPluginTensorDesc const* /*outputs*/, int32_t /*nbOutputs*/) const noexcept
{
    if (inputs == nullptr || nbInputs != kNbInputs || inputs[0].max.nbDims != 3)
    {
        return 0;
    }
    NMSShape const shape{static_cast<int32_t>(inputs[0].max.d[0]), static_cast<int32_t>(inputs[0].max.d[1])};
    return nmsWorkspaceLayout(shape).bytes;
}

int32_t OscarNMSPlugin::onShapeChange(
    PluginTensorDesc const* in, int32_t nbInputs, PluginTensorDesc const* out, int32_t nbOutputs) noexcept
{
    if (in == nullptr || out == nullptr || nbInputs != kNbInputs || nbOutputs != kNbOutputs)
    {
        return 1;
    }
    NMSShape const shape{static_cast<int32_t>(in[0].dims.d[0]), static_cast<int32_t>(in[0].dims.d[1])};
    if (!nmsSupported(shape, mParams))
    {
        reportError(kName, "unsupported shape: K <= 4096, batch <= 65535");
        return 1;
    }
    return 0;
}

int32_t OscarNMSPlugin::enqueue(PluginTensorDesc const* inputDesc, PluginTensorDesc const* /*outputDesc*/,
    void const* const* inputs, void* const* outputs, void* workspace, cudaStream_t stream) noexcept
{
    if (inputDesc == nullptr || inputs == nullptr || outputs == nullptr)
    {
        return 1;
    }
    NMSInputs in{};
    if (!toTensorType(inputDesc[0].type, in.type))
    {
        reportError(kName, "boxes and scores must be FP32 or FP16");
        return 1;
    }
    in.boxes = inputs[0];
    in.scores = inputs[1];
    in.count = static_cast<int32_t const*>(inputs[2]);
    NMSShape const shape{static_cast<int32_t>(inputDesc[0].dims.d[0]), static_cast<int32_t>(inputDesc[0].dims.d[1])};
    NMSOutputs const out{static_cast<int32_t*>(outputs[0]), static_cast<float*>(outputs[1]),
        static_cast<float*>(outputs[2])};
    cudaError_t const status = nmsLaunch(in, shape, mParams, out, workspace, nmsWorkspaceLayout(shape).bytes, stream);
    if (status != cudaSuccess)
    {
        reportError(kName, cudaGetErrorString(status));
        return 1;
    }
    return 0;
}

IPluginV3* OscarNMSPlugin::attachToContext(IPluginResourceContext* /*context*/) noexcept
{
    return clone(); // no per-context resources
}

PluginFieldCollection const* OscarNMSPlugin::getFieldsToSerialize() noexcept
{
    try
    {
        mSerialFields.clear();
        mSerialFields.emplace_back(OSCAR_NMS_ATTR_IOU_THRESHOLD, &mParams.iouThreshold, PluginFieldType::kFLOAT32, 1);
        mSerialFields.emplace_back(OSCAR_NMS_ATTR_MAX_DETECTIONS, &mParams.maxDetections, PluginFieldType::kINT32, 1);
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

OscarNMSPluginCreator::OscarNMSPluginCreator()
{
    mFields.emplace_back(OSCAR_NMS_ATTR_IOU_THRESHOLD, nullptr, PluginFieldType::kFLOAT32, 1);
    mFields.emplace_back(OSCAR_NMS_ATTR_MAX_DETECTIONS, nullptr, PluginFieldType::kINT32, 1);
    mFC.nbFields = static_cast<int32_t>(mFields.size());
    mFC.fields = mFields.data();
}

char const* OscarNMSPluginCreator::getPluginName() const noexcept
{
    return OSCAR_NMS_PLUGIN_NAME;
}

char const* OscarNMSPluginCreator::getPluginVersion() const noexcept
{
    return OSCAR_NMS_PLUGIN_VERSION;
}

char const* OscarNMSPluginCreator::getPluginNamespace() const noexcept
{
    return OSCAR_PLUGIN_NAMESPACE;
}

PluginFieldCollection const* OscarNMSPluginCreator::getFieldNames() noexcept
{
    return &mFC;
}

IPluginV3* OscarNMSPluginCreator::createPlugin(
    char const* /*name*/, PluginFieldCollection const* fc, TensorRTPhase /*phase*/) noexcept
{
    NMSParameters params{};
    if (fc != nullptr && fc->fields != nullptr)
    {
        for (int32_t i = 0; i < fc->nbFields; ++i)
        {
            PluginField const& f = fc->fields[i];
            bool ok = true;
            if (fieldIs(f, OSCAR_NMS_ATTR_IOU_THRESHOLD))
            {
                ok = readFloatField(f, params.iouThreshold);
            }
            else if (fieldIs(f, OSCAR_NMS_ATTR_MAX_DETECTIONS))
            {
                ok = readIntField(f, params.maxDetections);
            }
            if (!ok)
            {
                reportError(kName, "attribute iou_threshold must be a float, max_detections an int");
                return nullptr;
            }
        }
    }
    if (!validParameters(params))
    {
        reportError(kName, "max_detections must be >= 1");
        return nullptr;
    }
    try
    {
        return new OscarNMSPlugin(params);
    }
    catch (std::exception const& e)
    {
        reportError(kName, e.what());
    }
    return nullptr;
}

REGISTER_TENSORRT_PLUGIN(OscarNMSPluginCreator);

} // namespace plugin
} // namespace oscar
