"""The end-to-end ONNX graph: raw head + OscarDecode + OscarNMS (+ OscarPeakRefine) plugin nodes.

* The nodes' op types, ``plugin_version``, ``plugin_namespace``, attribute names, ONNX attribute
  types and defaults are checked against ``cpp_plugins/common/oscar_plugin_names.h`` through
  the one parser (``oscar_edge.export.plugin_names``), never against literals.
* The graph runs on the CPU in ONNX Runtime, the plugin nodes executed by the native CPU library
  (``onnxruntime-extensions`` Python ops; the session uses a copy whose plugin nodes are in the
  domain ``ai.onnx.contrib``), and must give the PyTorch pipeline's detections (PyTorch raw
  outputs + ``oscar_edge.postprocess.postprocess_image`` with clamp = the padded input size) on
  real val images: same count, boxes within 1e-4, scores within 1e-5; also as a batch of 2
  (graph without the peak refinement).
* With the peak refinement (the default graph: input ``letterbox``, node ``OscarPeakRefine``
  fed by the network input ``image``), the graph's boxes are exactly
  ``oscar_edge.postprocess.peak_refine`` of the same graph's NMS boxes, with each image's
  letterbox (real val images, one by one and as a batch of 2 with different letterboxes).

This checks the graph and its wiring with the CPU twin of the plugins; it says nothing about the
plugins on a GPU (tests/test_tensorrt_plugins.py -m tensorrt, and the tensorrt test of
tests/test_build_engine.py).
"""
from __future__ import annotations

import copy
import dataclasses
from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx", reason="needs the export extra: pip install '.[export]'")
pytest.importorskip("onnxruntime", reason="needs the export extra: pip install '.[export]'")
pytest.importorskip("onnxsim", reason="needs the export extra: pip install '.[export]'")
pytest.importorskip("onnx_graphsurgeon", reason="needs the export extra: pip install '.[export]'")
torch = pytest.importorskip("torch", reason="export needs torch: pip install '.[export]'")

from oscar_edge.errors import UserError  # noqa: E402
from oscar_edge.export import plugin_graph as pg  # noqa: E402
from oscar_edge.export.plugin_names import (PluginNames, parse_header,  # noqa: E402
                                            plugin_names)
from oscar_edge.postprocess import OUTPUT_NAMES, postprocess_image  # noqa: E402
from oscar_edge.preprocess import prepare, read_grey  # noqa: E402
from oscar_edge.presets import SHIPPED_PRESET  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
HEADER = REPO / "cpp_plugins" / "common" / "oscar_plugin_names.h"
A = onnx.AttributeProto
T = onnx.TensorProto


def needs_ort_extensions():
    pytest.importorskip("onnxruntime_extensions",
                        reason="running plugin nodes on the CPU needs onnxruntime-extensions "
                               "(pip install '.[export]')")


@pytest.fixture(scope="module")
def names() -> PluginNames:
    return plugin_names(HEADER)


@pytest.fixture(scope="module")
def raw_path(tmp_path_factory) -> Path:
    from oscar_edge.export.onnx_export import export_onnx

    out = tmp_path_factory.mktemp("raw") / "model.onnx"
    export_onnx(None, out)  # the shipped weights, verified against PyTorch by the exporter
    return out


@pytest.fixture(scope="module")
def e2e(raw_path, names):
    """The default graph: with the peak refinement."""
    return pg.add_plugin_nodes(onnx.load(str(raw_path)), names=names)


@pytest.fixture(scope="module")
def e2e_off(raw_path, names):
    """The graph without the peak refinement (outputs straight from OscarNMS)."""
    attrs = dataclasses.replace(pg.PostprocessAttrs.defaults(names), peak_refine=False)
    return pg.add_plugin_nodes(onnx.load(str(raw_path)), attrs, names)


@pytest.fixture(scope="module")
def torch_model():
    from oscar_edge.checkpoint import load_model

    return load_model(None)[0].eval()


@pytest.fixture(scope="module")
def val_greys(sirst_root):
    """Two val images whose fit-size inputs differ in shape."""
    from oscar_edge.data.annotations import load_samples

    greys, shapes = [], set()
    for s in load_samples(sirst_root, "val_full"):
        grey = read_grey(s.image_path)
        shape = prepare(grey)[0].shape
        if shape not in shapes:
            shapes.add(shape)
            greys.append(grey)
        if len(greys) == 2:
            break
    assert len(greys) == 2
    return greys


def _attrs(node) -> dict:
    return {a.name: a for a in node.attribute}


def _dims(vi):
    return [d.dim_param or d.dim_value for d in vi.type.tensor_type.shape.dim]


# ------------------------------------------------------------------ the header, one parser
def test_header_parser_types_and_typed_view(names):
    raw = parse_header(HEADER)
    assert "OSCAR_PLUGIN_NAMES_H" not in raw  # the include guard has no value
    assert raw["OSCAR_PLUGIN_NAMESPACE"] == ""
    assert isinstance(raw["OSCAR_DECODE_DEFAULT_TOPK"], int)
    assert isinstance(raw["OSCAR_DECODE_DEFAULT_SCORE_THRESHOLD"], float)
    assert isinstance(raw["OSCAR_DECODE_PLUGIN_NAME"], str)
    assert names.decode_name == raw["OSCAR_DECODE_PLUGIN_NAME"]
    assert names.nms_name == raw["OSCAR_NMS_PLUGIN_NAME"]
    assert names.attr_topk == raw["OSCAR_DECODE_ATTR_TOPK"]
    assert names.default_max_detections == raw["OSCAR_NMS_DEFAULT_MAX_DETECTIONS"]
    assert names.plugins() == {raw["OSCAR_DECODE_PLUGIN_NAME"]: raw["OSCAR_DECODE_PLUGIN_VERSION"],
                               raw["OSCAR_NMS_PLUGIN_NAME"]: raw["OSCAR_NMS_PLUGIN_VERSION"],
                               raw["OSCAR_PEAK_REFINE_PLUGIN_NAME"]:
                                   raw["OSCAR_PEAK_REFINE_PLUGIN_VERSION"]}
    assert names.peak_name == raw["OSCAR_PEAK_REFINE_PLUGIN_NAME"]
    assert names.attr_centroid == raw["OSCAR_PEAK_REFINE_ATTR_CENTROID"]
    assert names.default_centroid == raw["OSCAR_PEAK_REFINE_DEFAULT_CENTROID"]


def test_header_parser_errors(tmp_path):
    with pytest.raises(UserError, match="not found"):
        parse_header(tmp_path / "none.h")
    bad = tmp_path / "bad.h"
    bad.write_text('#define OSCAR_THING foo(1)\n')
    with pytest.raises(UserError, match="OSCAR_THING"):
        parse_header(bad)
    partial = tmp_path / "partial.h"
    partial.write_text('#define OSCAR_PLUGIN_NAMESPACE ""\n#define OSCAR_DECODE_DEFAULT_TOPK 7\n')
    assert parse_header(partial) == {"OSCAR_PLUGIN_NAMESPACE": "", "OSCAR_DECODE_DEFAULT_TOPK": 7}
    with pytest.raises(UserError, match="is not defined"):
        PluginNames.load(partial)


# ------------------------------------------------------------------ graph structure
@pytest.mark.parametrize("refine", [True, False], ids=["peak-refine", "no-refine"])
def test_plugin_nodes_wiring_and_attributes_follow_the_header(e2e, e2e_off, names, refine):
    e2e = e2e if refine else e2e_off
    decode, nms = pg.plugin_nodes(e2e, names)
    peak = pg.peak_node(e2e, names)
    assert (peak is not None) == refine
    assert (decode.op_type, nms.op_type) == (names.decode_name, names.nms_name)
    assert decode.domain == "" and nms.domain == ""  # default domain, as TensorRT's parser wants
    nodes = [
        (decode, names.decode_version, {names.attr_score_threshold: (A.FLOAT, names.default_score_threshold),
                                        names.attr_topk: (A.INT, names.default_topk)}),
        (nms, names.nms_version, {names.attr_iou_threshold: (A.FLOAT, names.default_iou_threshold),
                                  names.attr_max_detections: (A.INT, names.default_max_detections)})]
    if refine:
        assert peak.op_type == names.peak_name and peak.domain == ""
        nodes.append((peak, names.peak_version, {names.attr_centroid: (A.INT, names.default_centroid)}))
    for node, version, fields in nodes:
        got = _attrs(node)
        assert set(got) == set(fields) | {"plugin_version", "plugin_namespace"}
        assert got["plugin_version"].type == A.STRING and got["plugin_version"].s.decode() == version
        assert got["plugin_namespace"].type == A.STRING
        assert got["plugin_namespace"].s.decode() == names.namespace
        for key, (kind, default) in fields.items():
            assert got[key].type == kind, key
            value = got[key].f if kind == A.FLOAT else got[key].i
            assert np.float32(value) == np.float32(default), key
    assert list(decode.input) == list(OUTPUT_NAMES)
    assert list(nms.input) == list(decode.output) == list(pg.DECODE_OUTPUTS)
    assert [o.name for o in e2e.graph.output] == list(pg.E2E_OUTPUTS)
    if refine:  # NMS -> (num_detections, nms_boxes, scores); OscarPeakRefine -> boxes
        assert list(nms.output) == ["num_detections", pg.NMS_BOXES, "scores"]
        assert list(peak.input) == ["image", pg.NMS_BOXES, "num_detections", pg.LETTERBOX_NAME]
        assert list(peak.output) == ["boxes"]
        # the backbone and the refinement read the same network input
        readers = [n.op_type for n in e2e.graph.node if "image" in n.input]
        assert names.peak_name in readers and len(readers) >= 2
    else:
        assert list(nms.output) == list(pg.E2E_OUTPUTS)
    # graph I/O: input unchanged (+ letterbox), outputs typed and shaped as the plugin tables say
    assert [i.name for i in e2e.graph.input] == ["image"] + ([pg.LETTERBOX_NAME] if refine else [])
    assert all(i.type.tensor_type.elem_type == T.FLOAT for i in e2e.graph.input)
    assert _dims(e2e.graph.input[0])[1] == 3
    if refine:
        lb = _dims(e2e.graph.input[1])
        assert lb[1] == 4 and lb[0] == _dims(e2e.graph.input[0])[0]  # [B, 4], the same batch
    out = {o.name: o for o in e2e.graph.output}
    m = names.default_max_detections
    assert out["num_detections"].type.tensor_type.elem_type == T.INT32
    assert out["boxes"].type.tensor_type.elem_type == T.FLOAT
    assert out["scores"].type.tensor_type.elem_type == T.FLOAT
    batch = _dims(out["num_detections"])[0]
    assert isinstance(batch, str) and batch  # dynamic batch
    assert _dims(out["boxes"]) == [batch, m, 4] and _dims(out["scores"]) == [batch, m]
    inner = {vi.name: vi for vi in e2e.graph.value_info}
    if "decode_count" in inner:  # shape inference may or may not have kept them
        assert inner["decode_count"].type.tensor_type.elem_type == T.INT32
    meta = {p.key: p.value for p in e2e.metadata_props}
    assert meta["preset"] == SHIPPED_PRESET and meta["precision"] == "fp32"
    assert meta["output_names"] == "num_detections,boxes,scores"
    plugins = f"{names.decode_name}:{names.decode_version},{names.nms_name}:{names.nms_version}"
    if refine:
        plugins += f",{names.peak_name}:{names.peak_version}"
    assert meta["plugins"] == plugins and meta["peak_refine"] == ("on" if refine else "off")


def test_onnx_checker_on_the_plugin_graph(e2e, names):
    """The deployed graph (plugin nodes in the default domain) fails the plain checker, by
    design of the checker; check_end_to_end checks a private-domain copy with full_check."""
    with pytest.raises(onnx.checker.ValidationError, match="No Op registered for"):
        onnx.checker.check_model(e2e)
    pg.check_end_to_end(e2e, names)
    private = pg.with_plugin_domain(e2e, pg.CHECK_DOMAIN, names)
    onnx.checker.check_model(private, full_check=True)
    assert any(o.domain == pg.CHECK_DOMAIN for o in private.opset_import)
    assert all(n.domain == "" for n in e2e.graph.node)  # the original is untouched


def _mutated(e2e, names, fn):
    model = copy.deepcopy(e2e)
    decode, nms = pg.plugin_nodes(model, names)
    fn(decode, nms)
    return model


def _set_attr(node, name, value):
    keep = [a for a in node.attribute if a.name != name]
    del node.attribute[:]
    node.attribute.extend(keep)
    if value is not None:
        node.attribute.append(onnx.helper.make_attribute(name, value))


@pytest.mark.parametrize("case, fn, message", [
    ("version", lambda d, n: _set_attr(d, "plugin_version", "2"), "plugin_version"),
    ("namespace", lambda d, n: _set_attr(n, "plugin_namespace", "oscar"), "plugin_namespace"),
    ("missing", lambda d, n: _set_attr(n, "max_detections", None), "missing"),
    ("type", lambda d, n: _set_attr(d, "topk", 1000.0), "INT"),
    ("domain", lambda d, n: setattr(d, "domain", "trt"), "domain"),
    ("wiring", lambda d, n: n.input.__setitem__(0, "decode_scores"), "inputs"),
    ("peak-wiring", lambda d, n: n.output.__setitem__(1, "other_boxes"), "inputs"),
])
def test_check_end_to_end_rejects_broken_graphs(e2e, names, case, fn, message):
    with pytest.raises(UserError, match=message):
        pg.check_end_to_end(_mutated(e2e, names, fn), names)


def test_custom_attributes_and_validation(raw_path, names):
    attrs = pg.PostprocessAttrs(0.3, 17, 0.2, 7)
    model = pg.add_plugin_nodes(onnx.load(str(raw_path)), attrs, names)
    pg.check_end_to_end(model, names, attrs)
    decode, nms = pg.plugin_nodes(model, names)
    assert _attrs(decode)[names.attr_topk].i == 17
    assert np.float32(_attrs(nms)[names.attr_iou_threshold].f) == np.float32(0.2)
    out = {o.name: _dims(o) for o in model.graph.output}
    assert out["boxes"][1:] == [7, 4]
    with pytest.raises(UserError, match="expected"):
        pg.check_end_to_end(model, names, pg.PostprocessAttrs(0.3, 18, 0.2, 7))
    for bad, flag in ((pg.PostprocessAttrs(0.05, names.max_topk + 1, 0.5, 100), "--topk"),
                      (pg.PostprocessAttrs(1.5, 10, 0.5, 100), "--score-threshold"),
                      (pg.PostprocessAttrs(0.05, 10, 0.5, 0), "--max-detections")):
        with pytest.raises(UserError, match=flag):
            bad.validate(names)


def test_add_plugin_nodes_rejects_other_graphs(e2e, names):
    with pytest.raises(UserError, match="already ends in the decode"):
        pg.add_plugin_nodes(e2e, names=names)
    x = onnx.helper.make_tensor_value_info("x", T.FLOAT, [1])
    y = onnx.helper.make_tensor_value_info("y", T.FLOAT, [1])
    g = onnx.helper.make_graph([onnx.helper.make_node("Relu", ["x"], ["y"])], "g", [x], [y])
    with pytest.raises(UserError, match="not an oscar-edge raw-head graph"):
        pg.add_plugin_nodes(onnx.helper.make_model(g), names=names)


def test_peak_node_checks(e2e, e2e_off, names):
    """check_end_to_end on the refinement: its attribute, its inputs, and attrs.peak_refine."""
    model = copy.deepcopy(e2e)
    peak = pg.peak_node(model, names)
    _set_attr(peak, names.attr_centroid, 1.0)
    with pytest.raises(UserError, match="INT"):
        pg.check_end_to_end(model, names)
    model = copy.deepcopy(e2e)
    pg.peak_node(model, names).input[0] = pg.NMS_BOXES
    with pytest.raises(UserError, match="inputs"):
        pg.check_end_to_end(model, names)
    on = pg.PostprocessAttrs.defaults(names)
    off = dataclasses.replace(on, peak_refine=False)
    pg.check_end_to_end(e2e, names, on)
    pg.check_end_to_end(e2e_off, names, off)
    with pytest.raises(UserError, match="peak refinement off"):
        pg.check_end_to_end(e2e, names, off)
    with pytest.raises(UserError, match="peak refinement on"):
        pg.check_end_to_end(e2e_off, names, on)
    with pytest.raises(UserError, match=names.attr_centroid):
        pg.check_end_to_end(e2e, names, dataclasses.replace(on, centroid=not on.centroid))


def test_ort_copy_moves_only_the_plugin_nodes(e2e, names):
    ort_copy = pg.with_plugin_domain(e2e, pg.ORT_CONTRIB_DOMAIN, names)
    moved = [n.op_type for n in ort_copy.graph.node if n.domain == pg.ORT_CONTRIB_DOMAIN]
    assert sorted(moved) == sorted([names.decode_name, names.nms_name, names.peak_name])
    assert (pg.ORT_CONTRIB_DOMAIN, 1) in [(o.domain, o.version) for o in ort_copy.opset_import]
    assert len(ort_copy.graph.node) == len(e2e.graph.node)


# ------------------------------------------------------------------ running it on the CPU
def _torch_detections(model, x, clamp_hw):
    with torch.no_grad():
        outs = [o.numpy() for o in model(torch.from_numpy(x))]
    return [postprocess_image(tuple(o[b] for o in outs), clamp_hw) for b in range(x.shape[0])]


def _assert_same(got, want, label):
    (gb, gs), (wb, ws) = got, want
    assert len(gb) == len(wb), (label, len(gb), len(wb))
    if len(wb):
        # pixel coordinates up to ~1000: 1e-4 px plus a few float32 ulps of the coordinate
        # (ONNX Runtime and PyTorch round the exp() of the box decode differently)
        tol = 1e-4 + 4 * np.spacing(np.abs(wb).astype(np.float32))
        assert (np.abs(gb - wb) <= tol).all(), (label, float(np.abs(gb - wb).max()))
        assert np.abs(gs - ws).max() <= 1e-5, (label, float(np.abs(gs - ws).max()))


def test_end_to_end_graph_on_cpu_matches_pytorch_pipeline(e2e_off, names, torch_model, val_greys):
    needs_ort_extensions()
    session = pg.cpu_session(e2e_off, names=names)
    total = 0
    for i, grey in enumerate(val_greys):
        x, box = prepare(grey)  # fit size, padded to multiples of 32: shapes differ per image
        got = pg.detections(*pg.run_cpu(session, x[None]))
        want = _torch_detections(torch_model, x[None], box.padded)
        assert got[0][0].dtype == np.float32 and got[0][1].dtype == np.float32
        _assert_same(got[0], want[0], f"image {i} {x.shape}")
        total += len(want[0][0])
    assert total > 0  # the comparison saw detections


def test_end_to_end_graph_on_cpu_batch_of_two(e2e_off, names, torch_model, val_greys):
    needs_ort_extensions()
    session = pg.cpu_session(e2e_off, names=names)
    x = np.stack([prepare(g, input_size=(512, 640))[0] for g in val_greys])
    num, boxes, scores = pg.run_cpu(session, x)
    assert num.shape == (2,) and num.dtype == np.int32
    assert boxes.shape == (2, names.default_max_detections, 4)
    assert scores.shape == (2, names.default_max_detections)
    for b in range(2):  # zero padding past num_detections, as the plugin writes it
        assert not boxes[b, num[b]:].any() and not scores[b, num[b]:].any()
    got = pg.detections(num, boxes, scores)
    want = _torch_detections(torch_model, x, (512, 640))
    for b in range(2):
        _assert_same(got[b], want[b], f"batch item {b}")


def test_refine_node_on_cpu_matches_numpy_reference(e2e, e2e_off, names, val_greys):
    """OscarPeakRefine in the graph (run by the native CPU library through
    onnxruntime-extensions) == postprocess.peak_refine of the same graph's NMS boxes, with
    each image's letterbox (fit-size inputs: content = the resized image, scale = its own)."""
    from oscar_edge.postprocess import peak_refine

    needs_ort_extensions()
    on, off = pg.cpu_session(e2e, names=names), pg.cpu_session(e2e_off, names=names)
    moved = 0
    for i, grey in enumerate(val_greys):
        x, box = prepare(grey)
        num, boxes, scores = pg.run_cpu(on, x[None], box.tensor()[None])
        num0, boxes0, scores0 = pg.run_cpu(off, x[None])
        assert num.tolist() == num0.tolist() and np.array_equal(scores, scores0)
        n = int(num[0])
        want = peak_refine(boxes0[0, :n], x, box.resized, (box.scale_y, box.scale_x))
        np.testing.assert_array_equal(boxes[0, :n], want, err_msg=f"image {i}")
        assert not boxes[0, n:].any()
        assert (boxes[0, :n, 0::2] <= box.resized[1]).all()
        assert (boxes[0, :n, 1::2] <= box.resized[0]).all()
        moved += int((boxes[0, :n] != boxes0[0, :n]).any(axis=1).sum())
    assert moved > 0  # the refinement did move boxes


def test_refine_node_on_cpu_batch_of_two(e2e, e2e_off, names, val_greys):
    """A batch of two letterboxed frames with different letterbox rows."""
    from oscar_edge.postprocess import peak_refine

    needs_ort_extensions()
    prepared = [prepare(g, input_size=(512, 640)) for g in val_greys]
    x = np.stack([p[0] for p in prepared])
    letterbox = np.stack([p[1].tensor() for p in prepared])
    assert not np.array_equal(letterbox[0], letterbox[1])
    num, boxes, scores = pg.run_cpu(pg.cpu_session(e2e, names=names), x, letterbox)
    num0, boxes0, _ = pg.run_cpu(pg.cpu_session(e2e_off, names=names), x)
    assert num.tolist() == num0.tolist()
    for b, (_, box) in enumerate(prepared):
        n = int(num[b])
        want = peak_refine(boxes0[b, :n], x[b], box.resized, (box.scale_y, box.scale_x))
        np.testing.assert_array_equal(boxes[b, :n], want)
        assert not boxes[b, n:].any() and not scores[b, n:].any()
