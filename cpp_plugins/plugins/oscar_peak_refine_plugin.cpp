/*
 * OscarPeakRefine TensorRT plugin (IPluginV3, V3One capabilities) and its creator
 * (cpp_plugins/README.md, "OscarPeakRefine (rule 6)").
 */
#include "oscar_peak_refine_plugin.h"

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
constexpr char const* kName = OSCAR_PEAK_REFINE_PLUGIN_NAME;

bool validParameters(PeakRefineParameters const& p) noexcept
{
    return p.centroid == 0 || p.centroid == 1;
}

PeakRefineShape shapeOf(Dims const& image, Dims const& boxes) noexcept
{
    PeakRefineShape s{};
    s.batch = static_cast<int32_t>(image.d[0]);
    s.channels = static_cast<int32_t>(image.d[1]);
    s.height = static_cast<int32_t>(image.d[2]);
    s.width = static_cast<int32_t>(image.d[3]);
    s.m = static_cast<int32_t>(boxes.d[1]);
    return s;
}
} // namespace

OscarPeakRefinePlugin::OscarPeakRefinePlugin(PeakRefineParameters const& params)
    : mParams(params)
{
}

IPluginCapability* OscarPeakRefinePlugin::getCapabilityInterface(PluginCapabilityType type) noexcept
{
    switch (type)
    {
    case PluginCapabilityType::kCORE: return static_cast<IPluginV3OneCore*>(this);
    case PluginCapabilityType::kBUILD: return static_cast<IPluginV3OneBuild*>(this);
    case PluginCapabilityType::kRUNTIME: return static_cast<IPluginV3OneRuntime*>(this);
    }
    return nullptr;
}

IPluginV3* OscarPeakRefinePlugin::clone() noexcept
{
    try
    {
        return new OscarPeakRefinePlugin(mParams);
    }
    catch (std::exception const& e)
    {
        reportError(kName, e.what());
    }
    return nullptr;
}

char const* OscarPeakRefinePlugin::getPluginName() const noexcept
{
    return OSCAR_PEAK_REFINE_PLUGIN_NAME;
}

char const* OscarPeakRefinePlugin::getPluginVersion() const noexcept
{
    return OSCAR_PEAK_REFINE_PLUGIN_VERSION;
}

char const* OscarPeakRefinePlugin::getPluginNamespace() const noexcept
{
    return OSCAR_PLUGIN_NAMESPACE;
}

int32_t OscarPeakRefinePlugin::getNbOutputs() const noexcept
{
    return kNbOutputs;
}

int32_t OscarPeakRefinePlugin::configurePlugin(
    DynamicPluginTensorDesc const* in, int32_t nbInputs, DynamicPluginTensorDesc const* out, int32_t nbOutputs) noexcept
{
    if (in == nullptr || out == nullptr || nbInputs != kNbInputs || nbOutputs != kNbOutputs)
    {
        reportError(kName, "expects 4 inputs (image, boxes, num_detections, letterbox) and 1 output");
        return 1;
    }
    Dims const& image = in[0].desc.dims;
    Dims const& boxes = in[1].desc.dims;
    Dims const& num = in[2].desc.dims;
    Dims const& letterbox = in[3].desc.dims;
    if (image.nbDims != 4 || boxes.nbDims != 3 || num.nbDims != 1 || letterbox.nbDims != 2
        || (boxes.d[2] >= 0 && boxes.d[2] != 4) || (letterbox.d[1] >= 0 && letterbox.d[1] != 4))
    {
        reportError(kName, "inputs must be image [B,C,H,W], boxes [B,M,4], num_detections [B], letterbox [B,4]");
        return 1;
    }
    return validParameters(mParams) ? 0 : 1;
}

int32_t OscarPeakRefinePlugin::getOutputDataTypes(
    DataType* outputTypes, int32_t nbOutputs, DataType const* inputTypes, int32_t nbInputs) const noexcept
{
    if (outputTypes == nullptr || inputTypes == nullptr || nbOutputs != kNbOutputs || nbInputs != kNbInputs)
    {
        return 1;
    }
    outputTypes[0] = DataType::kFLOAT; // boxes
    return 0;
}

int32_t OscarPeakRefinePlugin::getOutputShapes(DimsExprs const* inputs, int32_t nbInputs,
    DimsExprs const* /*shapeInputs*/, int32_t /*nbShapeInputs*/, DimsExprs* outputs, int32_t nbOutputs,
    IExprBuilder& /*exprBuilder*/) noexcept
{
    if (inputs == nullptr || outputs == nullptr || nbInputs != kNbInputs || nbOutputs != kNbOutputs
        || inputs[1].nbDims != 3)
    {
        return 1;
    }
    outputs[0] = inputs[1]; // boxes [B, M, 4], as the input boxes
    return 0;
}

bool OscarPeakRefinePlugin::supportsFormatCombination(
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
    case 0: return d.type == DataType::kFLOAT || d.type == DataType::kHALF; // image
    case 2: return d.type == DataType::kINT32;                            // num_detections
    default: return d.type == DataType::kFLOAT;                           // boxes, letterbox, out
    }
}

size_t OscarPeakRefinePlugin::getWorkspaceSize(DynamicPluginTensorDesc const* /*inputs*/, int32_t /*nbInputs*/,
    DynamicPluginTensorDesc const* /*outputs*/, int32_t /*nbOutputs*/) const noexcept
{
    return 0;
}

int32_t OscarPeakRefinePlugin::onShapeChange(
    PluginTensorDesc const* in, int32_t nbInputs, PluginTensorDesc const* out, int32_t nbOutputs) noexcept
{
    if (in == nullptr || out == nullptr || nbInputs != kNbInputs || nbOutputs != kNbOutputs || in[0].dims.nbDims != 4
        || in[1].dims.nbDims != 3 || in[2].dims.nbDims != 1 || in[3].dims.nbDims != 2)
    {
        return 1;
    }
    int64_t const batch = in[0].dims.d[0];
    if (!peakRefineSupported(shapeOf(in[0].dims, in[1].dims)) || in[1].dims.d[0] != batch || in[1].dims.d[2] != 4
        || in[2].dims.d[0] != batch || in[3].dims.d[0] != batch || in[3].dims.d[1] != 4)
    {
        reportError(kName,
            "unsupported shape: batch <= 65535; image [B,C,H,W], boxes [B,M,4], num_detections [B], letterbox [B,4]");
        return 1;
    }
    return 0;
}

int32_t OscarPeakRefinePlugin::enqueue(PluginTensorDesc const* inputDesc, PluginTensorDesc const* /*outputDesc*/,
    void const* const* inputs, void* const* outputs, void* /*workspace*/, cudaStream_t stream) noexcept
{
    if (inputDesc == nullptr || inputs == nullptr || outputs == nullptr)
    {
        return 1;
    }
    PeakRefineInputs in{};
    if (!toTensorType(inputDesc[0].type, in.imageType))
    {
        reportError(kName, "the image must be FP32 or FP16");
        return 1;
    }
    in.image = inputs[0];
    in.boxes = static_cast<float const*>(inputs[1]);
    in.num = static_cast<int32_t const*>(inputs[2]);
    in.letterbox = static_cast<float const*>(inputs[3]);
    PeakRefineShape const shape = shapeOf(inputDesc[0].dims, inputDesc[1].dims);
    PeakRefineOutputs const out{static_cast<float*>(outputs[0])};
    cudaError_t const status = peakRefineLaunch(in, shape, mParams, out, stream);
    if (status != cudaSuccess)
    {
        reportError(kName, cudaGetErrorString(status));
        return 1;
    }
    return 0;
}

IPluginV3* OscarPeakRefinePlugin::attachToContext(IPluginResourceContext* /*context*/) noexcept
{
    return clone(); // no per-context resources
}

PluginFieldCollection const* OscarPeakRefinePlugin::getFieldsToSerialize() noexcept
{
    try
    {
        mSerialFields.clear();
        mSerialFields.emplace_back(OSCAR_PEAK_REFINE_ATTR_CENTROID, &mParams.centroid, PluginFieldType::kINT32, 1);
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

OscarPeakRefinePluginCreator::OscarPeakRefinePluginCreator()
{
    mFields.emplace_back(OSCAR_PEAK_REFINE_ATTR_CENTROID, nullptr, PluginFieldType::kINT32, 1);
    mFC.nbFields = static_cast<int32_t>(mFields.size());
    mFC.fields = mFields.data();
}

char const* OscarPeakRefinePluginCreator::getPluginName() const noexcept
{
    return OSCAR_PEAK_REFINE_PLUGIN_NAME;
}

char const* OscarPeakRefinePluginCreator::getPluginVersion() const noexcept
{
    return OSCAR_PEAK_REFINE_PLUGIN_VERSION;
}

char const* OscarPeakRefinePluginCreator::getPluginNamespace() const noexcept
{
    return OSCAR_PLUGIN_NAMESPACE;
}

PluginFieldCollection const* OscarPeakRefinePluginCreator::getFieldNames() noexcept
{
    return &mFC;
}

IPluginV3* OscarPeakRefinePluginCreator::createPlugin(
    char const* /*name*/, PluginFieldCollection const* fc, TensorRTPhase /*phase*/) noexcept
{
    PeakRefineParameters params{};
    if (fc != nullptr && fc->fields != nullptr)
    {
        for (int32_t i = 0; i < fc->nbFields; ++i)
        {
            PluginField const& f = fc->fields[i];
            if (fieldIs(f, OSCAR_PEAK_REFINE_ATTR_CENTROID) && !readIntField(f, params.centroid))
            {
                reportError(kName, "attribute centroid must be an int");
                return nullptr;
            }
        }
    }
    if (!validParameters(params))
    {
        reportError(kName, "centroid must be 0 or 1");
        return nullptr;
    }
    try
    {
        return new OscarPeakRefinePlugin(params);
    }
    catch (std::exception const& e)
    {
        reportError(kName, e.what());
    }
    return nullptr;
}

REGISTER_TENSORRT_PLUGIN(OscarPeakRefinePluginCreator);

} // namespace plugin
} // namespace oscar
