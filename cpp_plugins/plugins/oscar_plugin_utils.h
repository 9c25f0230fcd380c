/*
 * oscar_plugin_utils.h -- small helpers shared by the OSCAR TensorRT plugins: error reporting,
 * PluginField parsing and the TensorRT -> kernel type mapping.
 */
#ifndef OSCAR_PLUGIN_UTILS_H
#define OSCAR_PLUGIN_UTILS_H

#include "../common/oscar_plugin_names.h"
#include "../cuda/oscar_kernels.h"

#include "NvInferRuntime.h"

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>

namespace oscar
{
namespace plugin
{

//! One line on stderr: TensorRT's logger is not reachable from a self-registering library.
inline void reportError(char const* plugin, char const* message) noexcept
{
    std::fprintf(stderr, "[oscar_edge plugin %s] error: %s\n", plugin, message);
}

inline bool isLinear(nvinfer1::PluginTensorDesc const& d) noexcept
{
    return d.format == nvinfer1::TensorFormat::kLINEAR;
}

inline bool toTensorType(nvinfer1::DataType t, TensorType& out) noexcept
{
    switch (t)
    {
    case nvinfer1::DataType::kFLOAT: out = TensorType::kFLOAT32; return true;
    case nvinfer1::DataType::kHALF: out = TensorType::kFLOAT16; return true;
    default: return false;
    }
}

//! A float attribute (ONNX float -> kFLOAT32; kFLOAT64 accepted too).
inline bool readFloatField(nvinfer1::PluginField const& f, float& out) noexcept
{
    if (f.data == nullptr || f.length < 1)
    {
        return false;
    }
    switch (f.type)
    {
    case nvinfer1::PluginFieldType::kFLOAT32: out = *static_cast<float const*>(f.data); return true;
    case nvinfer1::PluginFieldType::kFLOAT64: out = static_cast<float>(*static_cast<double const*>(f.data)); return true;
    default: return false;
    }
}

//! An int attribute (ONNX int -> kINT32; kINT64 accepted when it fits).
inline bool readIntField(nvinfer1::PluginField const& f, int32_t& out) noexcept
{
    if (f.data == nullptr || f.length < 1)
    {
        return false;
    }
    switch (f.type)
    {
    case nvinfer1::PluginFieldType::kINT32: out = *static_cast<int32_t const*>(f.data); return true;
    case nvinfer1::PluginFieldType::kINT64:
    {
        int64_t const v = *static_cast<int64_t const*>(f.data);
        if (v < std::numeric_limits<int32_t>::min() || v > std::numeric_limits<int32_t>::max())
        {
            return false;
        }
        out = static_cast<int32_t>(v);
        return true;
    }
    default: return false;
    }
}

inline bool fieldIs(nvinfer1::PluginField const& f, char const* name) noexcept
{
    return f.name != nullptr && std::strcmp(f.name, name) == 0;
}

} // namespace plugin
} // namespace oscar

#endif /* OSCAR_PLUGIN_UTILS_H */
