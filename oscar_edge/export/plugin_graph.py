"""Raw-head ONNX graph -> end-to-end graph: the OscarDecode + OscarNMS (+ OscarPeakRefine)
TensorRT plugin nodes appended with onnx-graphsurgeon.

    raw = onnx.load("model.int8.onnx")           # FP32, FP16 (AutoCast) or INT8 (Q/DQ) raw head
    e2e = add_plugin_nodes(raw)                   # attributes default to the header's defaults
    check_end_to_end(e2e)                         # wiring + ONNX checker (see below)
    onnx.save(e2e, "model.e2e.onnx")

The precision stage runs *before* this (ModelOpt cannot calibrate through custom nodes on the
CPU: with plugin nodes in the graph it switches to the TensorRT execution provider).

The end-to-end graph
--------------------
* input ``image`` [B, 3, H, W] float32 (unchanged; H, W multiples of 32);
* ``OscarDecode`` (node ``oscar_decode``): the five raw outputs -> ``decode_boxes`` [B, K, 4],
  ``decode_scores`` [B, K] float32, ``decode_count`` [B] int32 (K = ``topk``);
* ``OscarNMS`` (node ``oscar_nms``) -> the graph outputs ``num_detections`` [B] int32,
  ``boxes`` [B, M, 4] float32 and ``scores`` [B, M] float32 (M = ``max_detections``), in
  network-input pixels; the plugin clamps boxes to the input size 4*H4 x 4*W4;
* with the peak refinement (cpp_plugins/README.md, "OscarPeakRefine (rule 6)";
  ``PostprocessAttrs.peak_refine``, on by default): a second
  graph input ``letterbox`` [B, 4] float32 (content height, content width, scale_y, scale_x of
  each frame: ``oscar_edge.preprocess.Letterbox.tensor()``), OscarNMS writes ``nms_boxes``
  instead of ``boxes``, and ``OscarPeakRefine`` (node ``oscar_peak_refine``) takes ``image``
  (the same network input the backbone reads), ``nms_boxes``, ``num_detections`` and
  ``letterbox`` and writes the graph output ``boxes`` (each kept box moved onto the image peak
  inside it, clamped to the content; ``oscar_edge.postprocess.peak_refine``).

Every plugin name, version, namespace and attribute name comes from
``cpp_plugins/common/oscar_plugin_names.h`` (:mod:`oscar_edge.export.plugin_names`). The ONNX
parser of TensorRT maps a node it does not know to a plugin: plugin name = ``op_type``, version =
attribute ``plugin_version``, namespace = attribute ``plugin_namespace`` (here ``""``); the
attributes named like the creator's fields become PluginFields (ONNX float -> kFLOAT32, int ->
kINT32; onnx-tensorrt ``FallbackPluginImporter`` / ``loadFields``). The nodes keep the default
domain ``""`` (TensorRT >= 10.10 may also read the namespace from a node's domain, and the
namespace is ``""``).

The ONNX checker and the plugin nodes
-------------------------------------
``onnx.checker.check_model`` rejects the deployed graph as it is, with or without
``full_check``: a node in the default domain must be a registered ONNX op ("No Op registered
for OscarDecode with domain_version of 17"), and a node in another domain needs that domain in
``opset_import`` ("No opset import for domain ..."). :func:`check_end_to_end` therefore checks
a *copy* whose two plugin nodes are moved to a private domain (``oscar.trt_plugins``) listed in
``opset_import``: the checker then skips their schema and checks everything else, and
``full_check=True`` (strict shape inference) passes; the plugin nodes themselves are checked
here (op types, attributes and their ONNX types, inputs, outputs, types of the graph outputs).

Running the graph on the CPU
----------------------------
:func:`cpu_session` runs the end-to-end graph in ONNX Runtime with the two plugin nodes executed
by the native CPU library (``oscar_edge.native``, the same arithmetic as the plugins) through
``onnxruntime-extensions`` custom Python ops. Those ops must live in the domain
``ai.onnx.contrib``, so the session is built from a copy whose plugin nodes are moved there
(:func:`with_plugin_domain`); the file on disk keeps the default domain.
"""
from __future__ import annotations

import copy
import os
import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Dict, Optional, Sequence, Tuple, Union

import numpy as np

from ..errors import UserError
from ..postprocess import OUTPUT_NAMES, PEAK_CENTROID_DEFAULT, PEAK_REFINE_DEFAULT
from .plugin_names import PluginNames, plugin_names

INPUT_NAME = "image"
DECODE_NODE = "oscar_decode"
NMS_NODE = "oscar_nms"
PEAK_NODE = "oscar_peak_refine"
DECODE_OUTPUTS = ("decode_boxes", "decode_scores", "decode_count")
E2E_OUTPUTS = ("num_detections", "boxes", "scores")
LETTERBOX_NAME = "letterbox"      # second graph input when the peak refinement is in the graph
NMS_BOXES = "nms_boxes"           # OscarNMS boxes before OscarPeakRefine
ORT_CONTRIB_DOMAIN = "ai.onnx.contrib"   # the domain onnxruntime-extensions' Python ops live in
CHECK_DOMAIN = "oscar.trt_plugins"       # private domain of the copy given to the ONNX checker
ATTR_VERSION = "plugin_version"
ATTR_NAMESPACE = "plugin_namespace"
_RAW_CHANNELS = {"refine_score": 1, "refine_bbox": 4, "refine_noco": 1, "coarse_score": 1,
                 "coarse_bbox": 4}


@dataclass(frozen=True)
class PostprocessAttrs:
    """The plugin attributes: decode threshold / top-K, NMS IoU threshold / max detections, and
    whether the graph ends in OscarPeakRefine (with its ``centroid`` attribute)."""

    score_threshold: float
    topk: int
    iou_threshold: float
    max_detections: int
    peak_refine: bool = PEAK_REFINE_DEFAULT
    centroid: bool = PEAK_CENTROID_DEFAULT

    @classmethod
    def defaults(cls, names: Optional[PluginNames] = None) -> "PostprocessAttrs":
        n = names or plugin_names()
        return cls(n.default_score_threshold, n.default_topk, n.default_iou_threshold,
                   n.default_max_detections, PEAK_REFINE_DEFAULT, bool(n.default_centroid))

    def validate(self, names: Optional[PluginNames] = None) -> "PostprocessAttrs":
        """Raise UserError for values the plugins reject; returns self."""
        n = names or plugin_names()
        if not 0.0 <= float(self.score_threshold) < 1.0:
            raise UserError(f"--score-threshold must be in [0, 1), got {self.score_threshold}")
        if not 1 <= int(self.topk) <= n.max_topk:
            raise UserError(f"--topk must be in 1..{n.max_topk} (the plugins' in-block sort), "
                            f"got {self.topk}")
        if not 0.0 <= float(self.iou_threshold) <= 1.0:
            raise UserError(f"--iou-threshold must be in [0, 1], got {self.iou_threshold}")
        if int(self.max_detections) < 1:
            raise UserError(f"--max-detections must be >= 1, got {self.max_detections}")
        return self

    def to_dict(self) -> Dict[str, Union[float, int]]:
        return asdict(self)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _node_attrs(attrs: PostprocessAttrs, names: PluginNames) -> Tuple[dict, dict, dict]:
    decode = {
        names.attr_score_threshold: float(attrs.score_threshold),   # ONNX FLOAT
        names.attr_topk: int(attrs.topk),                           # ONNX INT
        ATTR_VERSION: names.decode_version,
        ATTR_NAMESPACE: names.namespace,
    }
    nms = {
        names.attr_iou_threshold: float(attrs.iou_threshold),
        names.attr_max_detections: int(attrs.max_detections),
        ATTR_VERSION: names.nms_version,
        ATTR_NAMESPACE: names.namespace,
    }
    peak = {
        names.attr_centroid: int(bool(attrs.centroid)),               # ONNX INT
        ATTR_VERSION: names.peak_version,
        ATTR_NAMESPACE: names.namespace,
    }
    return decode, nms, peak


def check_raw_head(model) -> int:
    """The graph must be an oscar-edge raw head (input ``image``, the five outputs, one float
    type for all five). Returns that ONNX element type. UserError otherwise."""
    import onnx

    inputs = [i.name for i in model.graph.input]
    outputs = {o.name: o for o in model.graph.output}
    if inputs != [INPUT_NAME] or set(OUTPUT_NAMES) - set(outputs):
        if set(E2E_OUTPUTS) <= set(outputs):
            raise UserError("the graph already ends in the decode / NMS plugins; give the raw-head "
                            "graph (export/export_onnx.py or export/quantize.py output)")
        raise UserError(f"not an oscar-edge raw-head graph (inputs {inputs}, outputs "
                        f"{list(outputs)}); export one with export/export_onnx.py")
    types = {outputs[n].type.tensor_type.elem_type for n in OUTPUT_NAMES}
    allowed = {onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16}
    if len(types) != 1 or not types <= allowed:
        raise UserError("the five raw outputs must share one type, float32 or float16 (the "
                        f"plugins' inputs), got {sorted(types)}")
    return types.pop()


def add_plugin_nodes(model, attrs: Optional[PostprocessAttrs] = None,
                     names: Optional[PluginNames] = None):
    """Return a new ModelProto: ``model`` (a raw-head graph, any precision) followed by
    OscarDecode + OscarNMS (+ OscarPeakRefine and the ``letterbox`` input when
    ``attrs.peak_refine``), with the outputs ``num_detections``, ``boxes``, ``scores``."""
    import onnx
    import onnx_graphsurgeon as gs

    names = names or plugin_names()
    attrs = (attrs or PostprocessAttrs.defaults(names)).validate(names)
    check_raw_head(model)

    graph = gs.import_onnx(model)
    tensors = graph.tensors()
    raw = [tensors[n] for n in OUTPUT_NAMES]
    batch = raw[0].shape[0] if raw[0].shape else "batch"
    k, m = int(attrs.topk), int(attrs.max_detections)
    dec_out = [gs.Variable(DECODE_OUTPUTS[0], np.float32, [batch, k, 4]),
               gs.Variable(DECODE_OUTPUTS[1], np.float32, [batch, k]),
               gs.Variable(DECODE_OUTPUTS[2], np.int32, [batch])]
    e2e_out = [gs.Variable(E2E_OUTPUTS[0], np.int32, [batch]),
               gs.Variable(E2E_OUTPUTS[1], np.float32, [batch, m, 4]),
               gs.Variable(E2E_OUTPUTS[2], np.float32, [batch, m])]
    decode_attrs, nms_attrs, peak_attrs = _node_attrs(attrs, names)
    graph.nodes.append(gs.Node(op=names.decode_name, name=DECODE_NODE, attrs=decode_attrs,
                               inputs=raw, outputs=dec_out))
    if attrs.peak_refine:
        image = tensors[INPUT_NAME]
        letterbox = gs.Variable(LETTERBOX_NAME, np.float32, [batch, 4])
        nms_boxes = gs.Variable(NMS_BOXES, np.float32, [batch, m, 4])
        graph.nodes.append(gs.Node(op=names.nms_name, name=NMS_NODE, attrs=nms_attrs,
                                   inputs=list(dec_out),
                                   outputs=[e2e_out[0], nms_boxes, e2e_out[2]]))
        graph.nodes.append(gs.Node(op=names.peak_name, name=PEAK_NODE, attrs=peak_attrs,
                                   inputs=[image, nms_boxes, e2e_out[0], letterbox],
                                   outputs=[e2e_out[1]]))
        graph.inputs = list(graph.inputs) + [letterbox]
    else:
        graph.nodes.append(gs.Node(op=names.nms_name, name=NMS_NODE, attrs=nms_attrs,
                                   inputs=list(dec_out), outputs=e2e_out))
    graph.outputs = e2e_out
    graph.cleanup().toposort()
    out = gs.export_onnx(graph)

    # graphsurgeon does not carry the model-level metadata: copy it, then describe the tail.
    del out.metadata_props[:]
    for p in model.metadata_props:
        out.metadata_props.add(key=p.key, value=p.value)
    from .onnx_export import set_metadata

    set_metadata(out, {
        "output_names": ",".join(E2E_OUTPUTS),
        "raw_output_names": ",".join(OUTPUT_NAMES),
        "end_to_end": "+".join(_used_plugins(names, attrs.peak_refine)) + " TensorRT plugins",
        "plugins": ",".join(f"{n}:{v}" for n, v in names.plugins().items()
                            if n in _used_plugins(names, attrs.peak_refine)),
        "plugin_namespace": names.namespace,
        "score_threshold": repr(float(attrs.score_threshold)),
        "topk": str(int(attrs.topk)),
        "iou_threshold": repr(float(attrs.iou_threshold)),
        "max_detections": str(int(attrs.max_detections)),
        "peak_refine": "on" if attrs.peak_refine else "off",
        "peak_centroid": "on" if attrs.centroid else "off",
        "boxes": ("xyxy in network-input pixels; peak-refined (OscarPeakRefine), inside the "
                  "content given by the letterbox input" if attrs.peak_refine else
                  "xyxy in network-input pixels, clamped to the input size"),
    })
    out.doc_string = (model.doc_string + " + " if model.doc_string else "") + \
        " + ".join(_used_plugins(names, attrs.peak_refine)) + " plugins"
    out.ir_version = model.ir_version
    out.producer_name = model.producer_name or "oscar-edge"
    onnx.checker.check_model(with_plugin_domain(out, CHECK_DOMAIN, names))  # cheap sanity check
    return out


def _used_plugins(names: PluginNames, peak_refine: bool) -> Tuple[str, ...]:
    return (names.decode_name, names.nms_name) + ((names.peak_name,) if peak_refine else ())


def peak_node(model, names: Optional[PluginNames] = None):
    """The OscarPeakRefine node of an end-to-end graph, or None; UserError if more than one."""
    names = names or plugin_names()
    found = [n for n in model.graph.node if n.op_type == names.peak_name]
    if len(found) > 1:
        raise UserError(f"more than one {names.peak_name} node in the graph")
    return found[0] if found else None


def plugin_nodes(model, names: Optional[PluginNames] = None):
    """(OscarDecode node, OscarNMS node) of an end-to-end graph; UserError if not exactly one
    each."""
    names = names or plugin_names()
    found = {}
    for node in model.graph.node:
        if node.op_type in (names.decode_name, names.nms_name):
            if node.op_type in found:
                raise UserError(f"more than one {node.op_type} node in the graph")
            found[node.op_type] = node
    missing = [n for n in (names.decode_name, names.nms_name) if n not in found]
    if missing:
        raise UserError(f"no {' / '.join(missing)} node in the graph (not an end-to-end graph)")
    return found[names.decode_name], found[names.nms_name]


def with_plugin_domain(model, domain: str, names: Optional[PluginNames] = None):
    """A copy of ``model`` whose plugin nodes are in ``domain`` (registered in opset_import,
    version 1); ``""`` moves them back to the default domain."""
    import onnx

    names = names or plugin_names()
    out = copy.deepcopy(model)
    for node in out.graph.node:
        if node.op_type in (names.decode_name, names.nms_name, names.peak_name):
            node.domain = domain
    if domain and not any(o.domain == domain for o in out.opset_import):
        out.opset_import.append(onnx.helper.make_opsetid(domain, 1))
    return out


def _attr_value(attr):
    import onnx

    return onnx.helper.get_attribute_value(attr)


def check_end_to_end(model, names: Optional[PluginNames] = None,
                     attrs: Optional[PostprocessAttrs] = None) -> None:
    """Validate an end-to-end graph; UserError (one line) naming the first problem.

    Checks the plugin nodes against the header (op type, ``plugin_version``,
    ``plugin_namespace``, attribute names and ONNX types, and values when ``attrs`` is given),
    their wiring (raw outputs -> decode -> NMS -> graph outputs), the graph's I/O names and
    types, and runs ``onnx.checker.check_model(full_check=True)`` on a copy with the plugin
    nodes in a private domain (the module docstring says why)."""
    import onnx

    names = names or plugin_names()
    decode, nms = plugin_nodes(model, names)
    peak = peak_node(model, names)
    A = onnx.AttributeProto
    want = {
        decode.name or names.decode_name: (decode, names.decode_version, {
            names.attr_score_threshold: A.FLOAT, names.attr_topk: A.INT}),
        nms.name or names.nms_name: (nms, names.nms_version, {
            names.attr_iou_threshold: A.FLOAT, names.attr_max_detections: A.INT}),
    }
    if peak is not None:
        want[peak.name or names.peak_name] = (peak, names.peak_version,
                                              {names.attr_centroid: A.INT})
    for label, (node, version, typed) in want.items():
        got = {a.name: a for a in node.attribute}
        if node.domain not in ("", "ai.onnx"):
            raise UserError(f"plugin node {label} is in domain {node.domain!r}; TensorRT's "
                            "parser expects the default domain here")
        for key, value in ((ATTR_VERSION, version), (ATTR_NAMESPACE, names.namespace)):
            if key not in got or got[key].type != A.STRING or \
                    _attr_value(got[key]).decode() != value:
                raise UserError(f"plugin node {label}: attribute {key} must be the string "
                                f"{value!r} (cpp_plugins/common/oscar_plugin_names.h)")
        for key, kind in typed.items():
            if key not in got:
                raise UserError(f"plugin node {label}: attribute {key} is missing")
            if got[key].type != kind:
                raise UserError(f"plugin node {label}: attribute {key} must be an ONNX "
                                f"{A.AttributeType.Name(kind)}")
        extra = set(got) - set(typed) - {ATTR_VERSION, ATTR_NAMESPACE}
        if extra:
            raise UserError(f"plugin node {label}: unexpected attributes {sorted(extra)}")
    if list(decode.input) != list(OUTPUT_NAMES):
        raise UserError(f"{names.decode_name} inputs are {list(decode.input)}, expected the raw "
                        f"outputs {list(OUTPUT_NAMES)} in that order")
    if list(nms.input) != list(decode.output) or len(decode.output) != 3:
        raise UserError(f"{names.nms_name} inputs {list(nms.input)} are not the three "
                        f"{names.decode_name} outputs {list(decode.output)}")
    outputs = [o.name for o in model.graph.output]
    T = onnx.TensorProto
    inputs = [i.name for i in model.graph.input]
    if peak is None:
        if outputs != list(E2E_OUTPUTS) or list(nms.output) != list(E2E_OUTPUTS):
            raise UserError(f"graph outputs are {outputs}, expected {list(E2E_OUTPUTS)} from "
                            f"{names.nms_name}")
        want_inputs = [INPUT_NAME]
    else:
        num, nms_boxes, scores = (list(nms.output) + [None] * 3)[:3]
        if outputs != list(E2E_OUTPUTS) or len(nms.output) != 3 or \
                [num, scores] != [E2E_OUTPUTS[0], E2E_OUTPUTS[2]] or \
                list(peak.output) != [E2E_OUTPUTS[1]]:
            raise UserError(f"graph outputs are {outputs} ({names.nms_name} writes "
                            f"{list(nms.output)}, {names.peak_name} {list(peak.output)}); "
                            f"expected {list(E2E_OUTPUTS)} with boxes from {names.peak_name}")
        if list(peak.input) != [INPUT_NAME, nms_boxes, num, LETTERBOX_NAME]:
            raise UserError(f"{names.peak_name} inputs are {list(peak.input)}, expected "
                            f"{[INPUT_NAME, nms_boxes, num, LETTERBOX_NAME]} (the network "
                            f"input, the {names.nms_name} boxes and count, the letterbox)")
        want_inputs = [INPUT_NAME, LETTERBOX_NAME]
    types = [o.type.tensor_type.elem_type for o in model.graph.output]
    if types != [T.INT32, T.FLOAT, T.FLOAT]:
        raise UserError(f"graph output types are {types}, expected int32, float32, float32")
    if inputs != want_inputs or \
            any(i.type.tensor_type.elem_type != T.FLOAT for i in model.graph.input):
        raise UserError(f"the graph inputs are {inputs}, expected {want_inputs} (float32)")
    if attrs is not None:
        if bool(attrs.peak_refine) != (peak is not None):
            raise UserError(f"the graph {'has' if peak is not None else 'has no'} "
                            f"{names.peak_name} node, expected peak refinement "
                            f"{'on' if attrs.peak_refine else 'off'}")
        nodes = [decode, nms] + ([peak] if peak is not None else [])
        values = {a.name: _attr_value(a) for node in nodes for a in node.attribute}
        expect = {names.attr_score_threshold: float(np.float32(attrs.score_threshold)),
                  names.attr_topk: int(attrs.topk),
                  names.attr_iou_threshold: float(np.float32(attrs.iou_threshold)),
                  names.attr_max_detections: int(attrs.max_detections)}
        if peak is not None:
            expect[names.attr_centroid] = int(bool(attrs.centroid))
        for key, value in expect.items():
            if float(np.float32(values[key])) != value:
                raise UserError(f"plugin attribute {key} is {values[key]}, expected {value}")
    try:
        onnx.checker.check_model(with_plugin_domain(model, CHECK_DOMAIN, names), full_check=True)
    except Exception as exc:  # ValidationError, InferenceError
        raise UserError(f"the end-to-end graph fails the ONNX checker: "
                        f"{_first_line(exc)}") from None


def load_end_to_end(path: Union[str, os.PathLike], names: Optional[PluginNames] = None):
    """Load and check an end-to-end graph file (UserError for a missing / corrupt / wrong one)."""
    import onnx

    path = Path(path)
    if not path.is_file():
        raise UserError(f"ONNX model not found: {path}")
    try:
        model = onnx.load(str(path))
    except Exception as exc:
        raise UserError(f"cannot read ONNX model {path}: {_first_line(exc)}") from None
    check_end_to_end(model, names)
    return model


# ----------------------------------------------------------------------- CPU execution (ORT)
_REGISTER_LOCK = threading.Lock()
_REGISTERED: Dict[Tuple[str, ...], bool] = {}
_NATIVE = threading.local()


def _native():
    from ..native import NativePostprocessor

    if not hasattr(_NATIVE, "pp"):
        _NATIVE.pp = NativePostprocessor()
    return _NATIVE.pp


def register_cpu_plugin_ops(names: Optional[PluginNames] = None) -> str:
    """Register OscarDecode / OscarNMS / OscarPeakRefine as onnxruntime-extensions Python ops
    (domain ``ai.onnx.contrib``) that call the native CPU library; once per process. Returns the custom
    op library path to register in ``SessionOptions``. Needs ``onnxruntime-extensions``."""
    try:
        from onnxruntime_extensions import PyCustomOpDef, get_library_path, onnx_op
    except ImportError:
        raise UserError("running the plugin nodes on the CPU needs onnxruntime-extensions: "
                        "pip install 'oscar-edge[export]'") from None
    names = names or plugin_names()
    key = (names.decode_name, names.nms_name, names.attr_score_threshold, names.attr_topk,
           names.attr_iou_threshold, names.attr_max_detections, names.peak_name,
           names.attr_centroid)
    with _REGISTER_LOCK:
        if key in _REGISTERED:
            return get_library_path()
        f, i32, i64, s = (PyCustomOpDef.dt_float, PyCustomOpDef.dt_int32, PyCustomOpDef.dt_int64,
                          PyCustomOpDef.dt_string)
        meta = {ATTR_VERSION: s, ATTR_NAMESPACE: s}

        @onnx_op(op_type=names.decode_name, domain=ORT_CONTRIB_DOMAIN, inputs=[f] * 5,
                 outputs=[f, f, i32],
                 attrs={names.attr_score_threshold: f, names.attr_topk: i64, **meta})
        def _decode(rs, rb, rn, cs, cb, **kw):
            boxes, scores, count = _native().decode_batch(
                (rs, rb, rn, cs, cb), None, float(kw[names.attr_score_threshold]),
                int(kw[names.attr_topk]))
            return boxes, scores, count

        @onnx_op(op_type=names.nms_name, domain=ORT_CONTRIB_DOMAIN, inputs=[f, f, i32],
                 outputs=[i32, f, f],
                 attrs={names.attr_iou_threshold: f, names.attr_max_detections: i64, **meta})
        def _nms(boxes, scores, count, **kw):
            num, out_boxes, out_scores, _ = _native().nms_batch(
                boxes, scores, count, float(kw[names.attr_iou_threshold]),
                int(kw[names.attr_max_detections]))
            return num, out_boxes, out_scores

        @onnx_op(op_type=names.peak_name, domain=ORT_CONTRIB_DOMAIN, inputs=[f, f, i32, f],
                 outputs=[f], attrs={names.attr_centroid: i64, **meta})
        def _peak(image, boxes, num, letterbox, **kw):
            return _native().peak_refine_batch(image, boxes, num, letterbox,
                                               bool(int(kw[names.attr_centroid])))

        _REGISTERED[key] = True
        return get_library_path()


def cpu_session(model_or_path, threads: Optional[int] = None,
                names: Optional[PluginNames] = None):
    """An ONNX Runtime CPU session of an end-to-end graph (ModelProto or path) whose plugin
    nodes run in the native CPU library (a copy moved to ``ai.onnx.contrib``)."""
    import onnx
    import onnxruntime as ort

    names = names or plugin_names()
    model = (onnx.load(str(model_or_path)) if isinstance(model_or_path, (str, os.PathLike))
             else model_or_path)
    lib = register_cpu_plugin_ops(names)
    opts = ort.SessionOptions()
    opts.register_custom_ops_library(lib)
    opts.log_severity_level = 3
    if threads:
        opts.intra_op_num_threads = int(threads)
    test_copy = with_plugin_domain(model, ORT_CONTRIB_DOMAIN, names)
    return ort.InferenceSession(test_copy.SerializeToString(), sess_options=opts,
                                providers=["CPUExecutionProvider"])


def default_letterbox(x: np.ndarray) -> np.ndarray:
    """[B, 4] float32 letterbox rows for a batch whose content is the whole input at scale 1:
    (H, W, 1, 1) per image."""
    b, _, h, w = np.shape(x)
    return np.tile(np.float32([h, w, 1.0, 1.0]), (b, 1))


def run_cpu(session, x: np.ndarray, letterbox: Optional[np.ndarray] = None
            ) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(num_detections [B] int32, boxes [B,M,4], scores [B,M]) for a batch (B,3,H,W).
    ``letterbox`` [B, 4] feeds the graph's ``letterbox`` input when it has one (default:
    :func:`default_letterbox`); a graph without it ignores it."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    feeds = {INPUT_NAME: x}
    if any(i.name == LETTERBOX_NAME for i in session.get_inputs()):
        lb = default_letterbox(x) if letterbox is None else letterbox
        feeds[LETTERBOX_NAME] = np.ascontiguousarray(lb, dtype=np.float32).reshape(-1, 4)
    num, boxes, scores = session.run(list(E2E_OUTPUTS), feeds)
    return np.asarray(num), np.asarray(boxes), np.asarray(scores)


def detections(num: np.ndarray, boxes: np.ndarray, scores: np.ndarray
               ) -> Sequence[Tuple[np.ndarray, np.ndarray]]:
    """Padded plugin outputs -> one (boxes (N,4), scores (N,)) pair per image."""
    return [(boxes[b, :n], scores[b, :n]) for b, n in enumerate(np.asarray(num).tolist())]
