"""ONNX-parser conformance of the end-to-end graph: what TensorRT's ONNX parser will hand the
OSCAR plugin creators, checked without TensorRT.

* Every attribute of every plugin node (OscarDecode, OscarNMS, OscarPeakRefine) of the graphs
  ``oscar_edge.export.plugin_graph.add_plugin_nodes`` builds from the shipped raw-head graphs
  (FP32, FP16, INT8; with and without the peak refinement) has a type the parser maps to a
  PluginField (tests/parser_conformance.py: FLOAT, INT, STRING, FLOATS, INTS, TENSOR of an
  accepted element type).
* The creators' ``getFieldNames()`` tables, read from the plugin sources compiled with g++ against
  the API stub (cpp_plugins/tests/trt_api_stub) and run (no GPU: the kernels are never called),
  declare exactly the node's attributes with exactly the mapped types; a field the node lacks
  would only be a warning in TensorRT's log, an attribute the table lacks would never be read.
* The creator each node selects (op type, ``plugin_version``, ``plugin_namespace``) exists, and
  node and creator agree with cpp_plugins/common/oscar_plugin_names.h.
* Negative cases: an INT64 tensor attribute, a float where the table wants an int, a missing
  and an extra attribute, a wrong version, and a creator (compiled from a small C++ source)
  whose table declares a wrong type are all reported.

What this does not show: that the parser of a given TensorRT release behaves as the rule table
says (it is taken from onnx-tensorrt's source, deploy-notes.md), nor anything about the plugins'
arithmetic (tests/test_tensorrt_plugins.py).
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Dict, List

import numpy as np
import pytest

onnx = pytest.importorskip("onnx", reason="needs the export extra: pip install '.[export]'")
pytest.importorskip("onnx_graphsurgeon", reason="needs the export extra: pip install '.[export]'")

import parser_conformance as pc  # noqa: E402
from oscar_edge.backends.factory import SHIPPED_MODELS  # noqa: E402
from oscar_edge.export import plugin_graph as pg  # noqa: E402
from oscar_edge.export.plugin_names import PluginNames, plugin_names  # noqa: E402

HEADER = pc.REPO / "cpp_plugins" / "common" / "oscar_plugin_names.h"


@pytest.fixture(scope="module")
def names() -> PluginNames:
    return plugin_names(HEADER)


@pytest.fixture(scope="module")
def graphs(names) -> Dict[str, object]:
    """label -> end-to-end ModelProto, for each shipped precision, peak refinement on / off."""
    out = {}
    for precision, path in SHIPPED_MODELS.items():
        if not Path(path).is_file():
            pytest.skip(f"shipped graph {path} missing")
        raw = onnx.load(str(path))
        for peak in (True, False):
            attrs = dataclasses.replace(pg.PostprocessAttrs.defaults(names), peak_refine=peak)
            out[f"{precision}, peak refine {'on' if peak else 'off'}"] = \
                pg.add_plugin_nodes(raw, attrs, names)
    return out


@pytest.fixture(scope="module")
def creators(tmp_path_factory) -> List[pc.Creator]:
    why = pc.missing_tools()
    if why:
        pytest.skip(why)
    return pc.dump_creators(tmp_path_factory.mktemp("field-tables"))


def plugin_nodes(model, names: PluginNames):
    return [n for n in model.graph.node if n.op_type in names.plugins()]


def check_graph(model, creators: List[pc.Creator], names: PluginNames) -> List[str]:
    """Every plugin node selects a registered creator and matches its field table."""
    problems = []
    nodes = plugin_nodes(model, names)
    if not nodes:
        problems.append("no plugin node in the graph")
    for node in nodes:
        version = pc.attribute_value(node, "plugin_version", "1")
        namespace = pc.attribute_value(node, "plugin_namespace", "")
        found = [c for c in creators
                 if (c.name, c.version, c.namespace) == (node.op_type, version, namespace)]
        if not found:
            problems.append(f"{node.op_type} node {node.name!r}: no creator {node.op_type} "
                            f"version {version!r} namespace {namespace!r} (TensorRT: \"Plugin not "
                            "found, are the plugin name, version, and namespace correct?\")")
            continue
        problems += pc.compare_node(node, found[0])
    return problems


# ------------------------------------------------------------------ the shipped graphs
def test_parser_conformance_attribute_types(graphs, names):
    seen = set()
    for label, model in graphs.items():
        nodes = plugin_nodes(model, names)
        assert len(nodes) == (3 if "on" in label else 2), label
        for node in nodes:
            fields, problems = pc.parser_fields(node)
            assert not problems, f"{label}: {problems}"
            seen.update((node.op_type, f.name, f.type) for f in fields.values())
    assert (names.decode_name, names.attr_topk, "kINT32") in seen
    assert (names.nms_name, names.attr_iou_threshold, "kFLOAT32") in seen


def test_parser_conformance_field_tables(graphs, creators, names):
    assert sorted(c.name for c in creators) == sorted(names.plugins())
    for c in creators:
        assert c.interface == "PLUGIN CREATOR_V3ONE", c
        assert c.fields, f"{c.name}: empty getFieldNames()"
    for label, model in graphs.items():
        problems = check_graph(model, creators, names)
        assert not problems, f"{label}:\n" + "\n".join(problems)


def test_parser_conformance_selectors_match_the_header(graphs, creators, names):
    for label, model in graphs.items():
        for node in plugin_nodes(model, names):
            assert pc.attribute_value(node, "plugin_version") == \
                names.plugins()[node.op_type], (label, node.name)
            assert pc.attribute_value(node, "plugin_namespace") == names.namespace, label
            assert node.domain == "", (label, node.name)  # TensorRT >= 10.10 reads it as namespace
    for c in creators:
        assert c.version == names.plugins()[c.name], c
        # REGISTER_TENSORRT_PLUGIN registers under "": only the empty namespace is found both
        # by the parser and by the registry lookup without a custom registrar.
        assert c.namespace == names.namespace == c.registered_namespace, c


# ------------------------------------------------------------------ negative cases
def _default_graph(graphs):
    return graphs["fp32, peak refine on"]


def _with(model, op_type: str, edit) -> object:
    out = onnx.ModelProto()
    out.CopyFrom(model)
    node = next(n for n in out.graph.node if n.op_type == op_type)
    edit(node)
    return out


def _set_attr(node, attr) -> None:
    kept = [a for a in node.attribute if a.name != attr.name]
    del node.attribute[:]
    node.attribute.extend(kept + [attr])


def test_parser_conformance_rejects_int64_tensor_attribute(graphs, names):
    int64 = onnx.helper.make_attribute("offsets",
                                       onnx.numpy_helper.from_array(np.arange(4, dtype=np.int64)))
    model = _with(_default_graph(graphs), names.nms_name, lambda n: n.attribute.append(int64))
    node = next(n for n in model.graph.node if n.op_type == names.nms_name)
    _, problems = pc.parser_fields(node)
    assert problems == [f"node {pg.NMS_NODE!r} attribute 'offsets': TENSOR of INT64, which "
                        "TensorRT's ONNX parser rejects for plugin fields"]
    # the same attribute as a float32 tensor maps to kFLOAT32 with one value per element
    _set_attr(node, onnx.helper.make_attribute(
        "offsets", onnx.numpy_helper.from_array(np.ones(3, dtype=np.float32))))
    fields, problems = pc.parser_fields(node)
    assert not problems and fields["offsets"] == pc.Field("offsets", "kFLOAT32", 3)


def test_parser_conformance_reports_node_faults(graphs, creators, names):
    base = _default_graph(graphs)
    float_topk = _with(base, names.decode_name, lambda n: _set_attr(
        n, onnx.helper.make_attribute(names.attr_topk, 1000.0)))
    list_iou = _with(base, names.nms_name, lambda n: _set_attr(n, onnx.helper.make_attribute(
        names.attr_iou_threshold, [0.5, 0.6])))
    missing = _with(base, names.peak_name, lambda n: n.attribute.remove(
        next(a for a in n.attribute if a.name == names.attr_centroid)))
    extra = _with(base, names.decode_name, lambda n: n.attribute.append(
        onnx.helper.make_attribute("score_treshold", 0.1)))
    wrong_version = _with(base, names.nms_name, lambda n: _set_attr(
        n, onnx.helper.make_attribute("plugin_version", "2")))
    cases = {
        "float topk": (float_topk, f"attribute {names.attr_topk!r} reaches the creator as "
                                   f"kFLOAT32, {names.decode_name}'s getFieldNames() declares "
                                   "kINT32"),
        "list iou": (list_iou, f"attribute {names.attr_iou_threshold!r} has 2 value(s)"),
        "missing": (missing, f"no attribute {names.attr_centroid!r}, which "
                             f"{names.peak_name}'s getFieldNames() lists as kINT32"),
        "extra": (extra, "attribute 'score_treshold' is not in OscarDecode's getFieldNames()"),
        "version": (wrong_version, "no creator OscarNMS version '2'"),
    }
    for label, (model, fragment) in cases.items():
        problems = check_graph(model, creators, names)
        assert len(problems) == 1 and fragment in problems[0], (label, problems)


def test_parser_conformance_reports_a_wrong_field_table(tmp_path, graphs, creators, names):
    """A creator compiled from C++ that declares topk as kFLOAT32: the dump reads it, the
    comparison reports it."""
    if pc.missing_tools():
        pytest.skip(pc.missing_tools())
    source = tmp_path / "wrong_decode_creator.cpp"
    source.write_text(WRONG_CREATOR.replace("@TOPK@", names.attr_topk)
                      .replace("@SCORE@", names.attr_score_threshold))
    (wrong,) = pc.dump_creators(tmp_path, [source])
    assert [f.type for f in wrong.fields] == ["kFLOAT32", "kFLOAT32"]
    others = [c for c in creators if c.name != names.decode_name]
    problems = check_graph(_default_graph(graphs), others + [wrong], names)
    assert problems == [f"{names.decode_name} node {pg.DECODE_NODE!r}: attribute "
                        f"{names.attr_topk!r} reaches the creator as kINT32, "
                        f"{names.decode_name}'s getFieldNames() declares kFLOAT32"]


WRONG_CREATOR = r"""
#include "NvInferRuntime.h"

#include <vector>

class WrongDecodeCreator final : public nvinfer1::IPluginCreatorV3One
{
public:
    WrongDecodeCreator()
    {
        mFields.emplace_back("@SCORE@", nullptr, nvinfer1::PluginFieldType::kFLOAT32, 1);
        mFields.emplace_back("@TOPK@", nullptr, nvinfer1::PluginFieldType::kFLOAT32, 1);
        mFC.nbFields = static_cast<int32_t>(mFields.size());
        mFC.fields = mFields.data();
    }
    char const* getPluginName() const noexcept override { return "OscarDecode"; }
    char const* getPluginVersion() const noexcept override { return "1"; }
    char const* getPluginNamespace() const noexcept override { return ""; }
    nvinfer1::PluginFieldCollection const* getFieldNames() noexcept override { return &mFC; }
    nvinfer1::IPluginV3* createPlugin(char const*, nvinfer1::PluginFieldCollection const*,
        nvinfer1::TensorRTPhase) noexcept override
    {
        return nullptr;
    }

private:
    std::vector<nvinfer1::PluginField> mFields;
    nvinfer1::PluginFieldCollection mFC{};
};

REGISTER_TENSORRT_PLUGIN(WrongDecodeCreator);
"""
