"""Helpers of tests/test_parser_conformance.py: how TensorRT's ONNX parser turns a plugin node
into PluginFields, and the field tables the OSCAR plugin creators declare.

The parser rule (onnx-tensorrt ``onnxOpImporters.cpp``, ``loadFields``; deploy-notes.md, "Real
TensorRT artefacts reachable without a GPU"): a node whose op type no importer knows becomes a
plugin; ``op_type``, the attributes ``plugin_version`` (default "1") and ``plugin_namespace``
select the creator; for every name in the creator's ``getFieldNames()`` the node attribute of
that name is handed over as

    FLOAT -> kFLOAT32, INT -> kINT32, STRING -> kCHAR, FLOATS -> kFLOAT32 x n, INTS -> kINT32 x n,
    TENSOR -> by element type; INT64, UINT8 and BOOL tensors are rejected.

A field the node lacks is only a warning in TensorRT's log (the plugin silently keeps its
default), and an attribute the table does not list is never read; so both are errors here.
The accepted TENSOR element types below are the ones this project is sure of; any other is
reported as not accepted (conservative).

The field tables come from the plugin sources themselves: :func:`dump_creators` compiles
``cpp_plugins/plugins/*.cpp`` with g++ against the API stub
``cpp_plugins/tests/trt_api_stub/NvInferRuntime.h`` together with a small ``main`` that stands in
for TensorRT's plugin registry (``getPluginRegistry``): ``REGISTER_TENSORRT_PLUGIN`` registers
each creator at start-up, and ``main`` prints every creator's name, version, namespace and
``getFieldNames()`` table as JSON. The kernels are never called (the link leaves their symbols
unresolved, bound lazily), so no GPU and no CUDA library are needed, only the CUDA headers.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

REPO = Path(__file__).resolve().parents[1]
PLUGIN_SOURCES = sorted((REPO / "cpp_plugins" / "plugins").glob("oscar_*_plugin.cpp"))
STUB_DIR = REPO / "cpp_plugins" / "tests" / "trt_api_stub"
SELECTORS = ("plugin_version", "plugin_namespace")  # select the creator, are not fields

# onnx.AttributeProto.AttributeType -> PluginFieldType (scalar: length 1, list: length n)
ATTRIBUTE_FIELDS = {"FLOAT": "kFLOAT32", "INT": "kINT32", "STRING": "kCHAR",
                    "FLOATS": "kFLOAT32", "INTS": "kINT32"}
# onnx.TensorProto.DataType of a TENSOR attribute -> PluginFieldType
TENSOR_FIELDS = {"FLOAT": "kFLOAT32", "FLOAT16": "kFLOAT16", "INT8": "kINT8", "INT32": "kINT32"}
TENSOR_REJECTED = ("INT64", "UINT8", "BOOL")


@dataclass(frozen=True)
class Field:
    name: str
    type: str     # PluginFieldType enumerator, e.g. "kFLOAT32"
    length: int


@dataclass(frozen=True)
class Creator:
    name: str
    version: str
    namespace: str
    registered_namespace: str   # the namespace REGISTER_TENSORRT_PLUGIN passed to the registry
    interface: str              # getInterfaceInfo().kind
    fields: Tuple[Field, ...]


def parser_fields(node) -> Tuple[Dict[str, Field], List[str]]:
    """The PluginFields TensorRT's parser would make of ``node``'s attributes (all of them, as
    if the creator listed every one), and one problem line per attribute it cannot map."""
    import onnx

    kinds = onnx.AttributeProto.AttributeType
    dtypes = onnx.TensorProto.DataType
    fields: Dict[str, Field] = {}
    problems: List[str] = []
    for attr in node.attribute:
        if attr.name in SELECTORS:
            continue
        kind = kinds.Name(attr.type)
        where = f"node {node.name or node.op_type!r} attribute {attr.name!r}"
        if kind in ATTRIBUTE_FIELDS:
            n = len(attr.floats) if kind == "FLOATS" else len(attr.ints) if kind == "INTS" \
                else len(attr.s) if kind == "STRING" else 1
            fields[attr.name] = Field(attr.name, ATTRIBUTE_FIELDS[kind], n)
        elif kind == "TENSOR":
            elem = dtypes.Name(attr.t.data_type)
            if elem in TENSOR_FIELDS:
                n = 1
                for d in attr.t.dims:
                    n *= int(d)
                fields[attr.name] = Field(attr.name, TENSOR_FIELDS[elem], n)
            elif elem in TENSOR_REJECTED:
                problems.append(f"{where}: TENSOR of {elem}, which TensorRT's ONNX parser "
                                "rejects for plugin fields")
            else:
                problems.append(f"{where}: TENSOR of {elem}, not an element type known to map "
                                "to a plugin field")
        else:
            problems.append(f"{where}: ONNX type {kind}, which TensorRT's ONNX parser does not "
                            "hand to plugin creators")
    return fields, problems


def compare_node(node, creator: Creator) -> List[str]:
    """Problems between a plugin node and the creator it selects: each creator field must be an
    attribute of the node with the mapped type (and length, where the table fixes one), and
    each attribute must be a creator field."""
    fields, problems = parser_fields(node)
    label = f"{node.op_type} node {node.name!r}"
    table = {f.name: f for f in creator.fields}
    for name, want in table.items():
        got = fields.get(name)
        unmapped = any(f"attribute {name!r}" in p for p in problems)
        if got is None and not unmapped:
            problems.append(f"{label}: no attribute {name!r}, which {creator.name}'s "
                            f"getFieldNames() lists as {want.type} (TensorRT would only warn and "
                            "the plugin would keep its default)")
        elif got is not None and got.type != want.type:
            problems.append(f"{label}: attribute {name!r} reaches the creator as {got.type}, "
                            f"{creator.name}'s getFieldNames() declares {want.type}")
        elif got is not None and want.length > 0 and got.length != want.length:
            problems.append(f"{label}: attribute {name!r} has {got.length} value(s), "
                            f"{creator.name}'s getFieldNames() declares {want.length}")
    for name in fields:
        if name not in table:
            problems.append(f"{label}: attribute {name!r} is not in {creator.name}'s "
                            "getFieldNames(); TensorRT's parser would never pass it")
    return problems


def attribute_value(node, name: str, default=None):
    for attr in node.attribute:
        if attr.name == name:
            import onnx

            value = onnx.helper.get_attribute_value(attr)
            return value.decode() if isinstance(value, bytes) else value
    return default


# ------------------------------------------------------------------------------ C++ side
DUMP_MAIN = r"""
// Stands in for TensorRT's plugin registry and prints what each registered creator declares.
#include "NvInferRuntime.h"

#include <cstdio>
#include <cstring>
#include <vector>

namespace
{
struct Entry
{
    nvinfer1::IPluginCreatorInterface* creator;
    char const* ns;
};

class RecordingRegistry final : public nvinfer1::IPluginRegistry
{
public:
    bool registerCreator(nvinfer1::IPluginCreatorInterface& creator,
        nvinfer1::AsciiChar const* const pluginNamespace) noexcept override
    {
        entries.push_back(Entry{&creator, pluginNamespace});
        return true;
    }
    std::vector<Entry> entries;
};

RecordingRegistry& registry()
{
    static RecordingRegistry instance;
    return instance;
}

void str(char const* s)
{
    std::putchar('"');
    for (; s != nullptr && *s != '\0'; ++s)
    {
        unsigned char const c = static_cast<unsigned char>(*s);
        if (c == '"' || c == '\\')
            std::printf("\\%c", c);
        else if (c < 0x20)
            std::printf("\\u%04x", c);
        else
            std::putchar(c);
    }
    std::putchar('"');
}

char const* typeName(nvinfer1::PluginFieldType t)
{
    using T = nvinfer1::PluginFieldType;
    switch (t)
    {
    case T::kFLOAT16: return "kFLOAT16";
    case T::kFLOAT32: return "kFLOAT32";
    case T::kFLOAT64: return "kFLOAT64";
    case T::kINT8: return "kINT8";
    case T::kINT16: return "kINT16";
    case T::kINT32: return "kINT32";
    case T::kCHAR: return "kCHAR";
    case T::kDIMS: return "kDIMS";
    case T::kUNKNOWN: return "kUNKNOWN";
    case T::kBF16: return "kBF16";
    case T::kINT64: return "kINT64";
    case T::kFP8: return "kFP8";
    case T::kINT4: return "kINT4";
    }
    return "?";
}
} // namespace

extern "C" nvinfer1::IPluginRegistry* getPluginRegistry() noexcept
{
    return &registry();
}

extern "C" int oscar_dump_field_tables()
{
    for (Entry const& e : registry().entries)
    {
        auto* c = dynamic_cast<nvinfer1::IPluginCreatorV3One*>(e.creator);
        if (c == nullptr)
        {
            std::printf("{\"error\": \"a registered creator is not an IPluginCreatorV3One\"}\n");
            return 1;
        }
        nvinfer1::PluginFieldCollection const* fc = c->getFieldNames();
        std::printf("{\"name\": ");
        str(c->getPluginName());
        std::printf(", \"version\": ");
        str(c->getPluginVersion());
        std::printf(", \"namespace\": ");
        str(c->getPluginNamespace());
        std::printf(", \"registered_namespace\": ");
        str(e.ns);
        std::printf(", \"interface\": ");
        str(c->getInterfaceInfo().kind);
        std::printf(", \"fields\": [");
        for (int32_t i = 0; fc != nullptr && i < fc->nbFields; ++i)
        {
            nvinfer1::PluginField const& f = fc->fields[i];
            std::printf("%s{\"name\": ", i ? ", " : "");
            str(f.name);
            std::printf(", \"type\": \"%s\", \"length\": %d}", typeName(f.type), f.length);
        }
        std::printf("]}\n");
    }
    return 0;
}
"""


def cuda_include_dir() -> Optional[Path]:
    """A folder holding cuda_runtime_api.h (the plugins include it; no GPU needed), or None."""
    roots = [os.environ.get(v) for v in ("CUDA_HOME", "CUDA_PATH")]
    nvcc = shutil.which("nvcc")
    if nvcc:
        roots.append(str(Path(nvcc).resolve().parents[1]))
    roots += sorted((str(p) for p in Path("/usr/local").glob("cuda*")), reverse=True) + ["/usr"]
    for root in filter(None, roots):
        inc = Path(root) / "include"
        if (inc / "cuda_runtime_api.h").is_file():
            return inc
    return None


def missing_tools() -> Optional[str]:
    """Why :func:`dump_creators` cannot run here, or None."""
    if shutil.which(os.environ.get("CXX", "g++")) is None and shutil.which("g++") is None:
        return "g++ is not installed (it compiles the plugin sources against the API stub)"
    if cuda_include_dir() is None:
        return "the CUDA headers (cuda_runtime_api.h) are not installed"
    return None


def dump_creators(work: Path, sources: Sequence[Path] = tuple(PLUGIN_SOURCES),
                  timeout: float = 600) -> List[Creator]:
    """Compile ``sources`` + the registry stand-in, run it, parse its JSON lines."""
    cxx = shutil.which(os.environ.get("CXX", "g++")) or shutil.which("g++")
    inc = cuda_include_dir()
    if cxx is None or inc is None:
        raise RuntimeError(missing_tools() or "no compiler")
    main = work / "dump_field_tables.cpp"
    main.write_text(DUMP_MAIN)
    launcher = work / "launcher.cpp"
    launcher.write_text('extern "C" int oscar_dump_field_tables();\n'
                        "int main() { return oscar_dump_field_tables(); }\n")
    lib, exe = work / "libdump_field_tables.so", work / "dump_field_tables"
    # A shared library may keep undefined symbols (the kernels, cudaGetErrorString); bound
    # lazily, they are never looked up because nothing calls them.
    steps = [[cxx, "-std=c++17", "-O0", "-w", "-shared", "-fPIC", "-Wl,-z,lazy", f"-I{STUB_DIR}",
              f"-I{inc}", str(main), *map(str, sources), "-o", str(lib)],
             [cxx, str(launcher), f"-L{work}", "-ldump_field_tables", f"-Wl,-rpath,{work}",
              "-Wl,-z,lazy", "-Wl,--allow-shlib-undefined", "-o", str(exe)]]
    for cmd in steps:
        build = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        if build.returncode != 0:
            raise RuntimeError("compiling the field-table dump failed:\n" + " ".join(cmd) +
                               "\n" + build.stderr[-4000:])
    env = {k: v for k, v in os.environ.items() if k != "LD_BIND_NOW"}
    run = subprocess.run([str(exe)], capture_output=True, text=True, timeout=60, env=env)
    if run.returncode != 0:
        raise RuntimeError(f"the field-table dump failed ({run.returncode}): "
                           f"{(run.stdout + run.stderr)[-2000:]}")
    out = []
    for line in run.stdout.splitlines():
        d = json.loads(line)
        out.append(Creator(d["name"], d["version"], d["namespace"], d["registered_namespace"],
                           d["interface"], tuple(Field(**f) for f in d["fields"])))
    return out
