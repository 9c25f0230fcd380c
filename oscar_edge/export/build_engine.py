"""Checkpoint (or raw-head ONNX) -> end-to-end ONNX with the decode / NMS plugins -> TensorRT
engine + JSON sidecar, in one command.

    python export/build_engine.py [--checkpoint X.pt | --onnx raw.onnx] --precision fp16 \
        --calib-data ../shared/data/sirst-v2 --out model.engine

The chain (each stage reuses the package's own code):

1. export: ``oscar_edge.export.onnx_export.export_onnx`` (TorchScript export, onnxsim, checker,
   ONNX Runtime vs PyTorch check); with ``--onnx`` the given FP32 raw-head graph is checked and
   simplified with the same ``simplify`` (an INT8 / FP16 graph from ``export/quantize.py``
   whose ``precision`` metadata equals ``--precision`` is taken as it is);
2. precision: ``oscar_edge.export.quantize`` (INT8: ModelOpt PTQ, Q/DQ; FP16: ModelOpt AutoCast
   with FP32 I/O), calibrated on the CPU *before* the plugin nodes exist;
3. plugin graph: ``oscar_edge.export.plugin_graph.add_plugin_nodes`` -> ``<out>.onnx`` (beside the
   engine; with ``--peak-refine on``, the default, it ends in OscarPeakRefine and has the second
   input ``letterbox`` [B, 4]), checked (:func:`~oscar_edge.export.plugin_graph.check_end_to_end`)
   and run once on the CPU with the plugin nodes executed by the native CPU library, against the
   raw graph + the same CPU decode / NMS (+ peak refinement) (``--no-verify`` skips this);
4. TensorRT (``oscar_edge.export.trt_build``): strongly typed network, OnnxParser, one
   optimization profile, workspace limit, timing cache, optional DLA core with GPU fallback;
   writes the engine and ``<out>.json``.

The equivalent ``trtexec`` command is printed. Without TensorRT the command stops after stage 3
with one line on stderr (exit code 2) that names the written ONNX and the trtexec command to run
on the Jetson.

Plugin library: ``--plugin-lib``, else ``$OSCAR_EDGE_TRT_PLUGINS``, else
``build/plugins/liboscar_edge_trt_plugins.so`` of the checkout (or of the current folder). A
library given explicitly, or the default one when it exists, is loaded with ctypes *before*
anything else runs and before ``tensorrt`` is imported: a library that does not load fails at
once (exit 2), with or without TensorRT. A missing default library is an error only where
TensorRT is installed (checked before the export, so nothing is wasted).
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shlex
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from .. import __version__
from ..errors import UserError, run_cli
from ..preprocess import FIT_SIZE, IN_CHANNELS, MEAN, SIZE_DIVISOR, STD
from ..sizes import parse_size

PROG = "build_engine"
PRECISIONS = ("fp32", "fp16", "int8")
INPUT_NAME = "image"
LETTERBOX_NAME = "letterbox"  # plugin_graph.LETTERBOX_NAME (kept import-free here)
ON_OFF = ("on", "off")
DEFAULT_MIN_SHAPE = (1, IN_CHANNELS, 256, 320)
DEFAULT_OPT_SHAPE = (1, IN_CHANNELS, 512, 640)
DEFAULT_MAX_SHAPE = (4, IN_CHANNELS, 1088, 1920)
DEFAULT_WORKSPACE_MB = 1024
PLUGIN_ENV = "OSCAR_EDGE_TRT_PLUGINS"
PLUGIN_RELPATH = Path("build") / "plugins" / "liboscar_edge_trt_plugins.so"
VERIFY_MAX_BATCH = 2

Shape = Tuple[int, int, int, int]


# ------------------------------------------------------------------------------ arguments
def parse_shape(text: str, flag: str) -> Shape:
    """'1x3x512x640' -> (1, 3, 512, 640); UserError unless N >= 1, C == 3 and H, W are
    positive multiples of 32 (the HxW part through ``oscar_edge.sizes.parse_size``, whose
    messages quote that part)."""
    parts = str(text).lower().split("x")
    try:
        if len(parts) != 4:
            raise ValueError(text)
        n, c = int(parts[0]), int(parts[1])
    except ValueError:
        raise UserError(f"{flag} must look like 1x3x512x640 (NxCxHxW), got {text!r}") from None
    if n < 1:
        raise UserError(f"{flag} {text}: batch must be >= 1")
    if c != IN_CHANNELS:
        raise UserError(f"{flag} {text}: the network takes {IN_CHANNELS} channels")
    try:
        h, w = parse_size(f"{parts[2]}x{parts[3]}", text_order="HxW", order="hw_out",
                          multiple=SIZE_DIVISOR, name=flag)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    return n, c, h, w


def check_profile(mn: Shape, opt: Shape, mx: Shape) -> None:
    for i, axis in enumerate(("batch", "channels", "height", "width")):
        if not mn[i] <= opt[i] <= mx[i]:
            raise UserError(f"shape profile: {axis} must satisfy min <= opt <= max, got "
                            f"{mn[i]} / {opt[i]} / {mx[i]}")


def shape_str(shape: Sequence[int]) -> str:
    return "x".join(str(int(d)) for d in shape)


def default_plugin_library() -> Tuple[Path, bool]:
    """(path, explicit): ``$OSCAR_EDGE_TRT_PLUGINS`` (explicit), else the checkout's
    build/plugins library, else build/plugins of the current folder (not explicit)."""
    env = os.environ.get(PLUGIN_ENV)
    if env:
        return Path(env), True
    repo = Path(__file__).resolve().parents[2]
    if (repo / "cpp_plugins").is_dir():
        return repo / PLUGIN_RELPATH, False
    return Path.cwd() / PLUGIN_RELPATH, False


def display_path(path: Path) -> str:
    """``path`` relative to the current folder when it lies below it (shorter commands)."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def letterbox_profile(mn: Shape, opt: Shape, mx: Shape) -> Tuple[Tuple[int, int], ...]:
    """(min, opt, max) shapes of the ``letterbox`` input [B, 4] for an image profile."""
    return tuple((int(s[0]), 4) for s in (mn, opt, mx))


def trtexec_command(onnx_path: Path, engine_path: Path, mn: Shape, opt: Shape, mx: Shape,
                    workspace_mb: int, plugin_lib: Path, timing_cache: Optional[Path] = None,
                    dla_core: Optional[int] = None, letterbox: bool = False) -> str:
    """The trtexec call that builds the same engine (TensorRT 10.x flags; see export/README.md
    for 11.x). Flags checked against trtexec --help of TensorRT 10.5 (samples/trtexec).
    ``letterbox``: the graph has the ``letterbox`` [B, 4] input (peak refinement)."""
    q = lambda p: shlex.quote(display_path(p))  # noqa: E731
    lb = letterbox_profile(mn, opt, mx) if letterbox else None
    extra = (lambda i: f",{LETTERBOX_NAME}:{shape_str(lb[i])}") if lb else (lambda i: "")
    parts = ["trtexec", f"--onnx={q(onnx_path)}", f"--saveEngine={q(engine_path)}",
             "--stronglyTyped", f"--staticPlugins={q(plugin_lib)}",
             f"--minShapes={INPUT_NAME}:{shape_str(mn)}{extra(0)}",
             f"--optShapes={INPUT_NAME}:{shape_str(opt)}{extra(1)}",
             f"--maxShapes={INPUT_NAME}:{shape_str(mx)}{extra(2)}",
             f"--memPoolSize=workspace:{int(workspace_mb)}M"]
    if timing_cache is not None:
        parts.append(f"--timingCacheFile={q(timing_cache)}")
    if dla_core is not None:
        parts += [f"--useDLACore={int(dla_core)}", "--allowGPUFallback"]
    parts.append("--skipInference")
    return " ".join(parts)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="build_engine.py",
        description="Build a TensorRT engine of the whole detector (network + OscarDecode + "
                    "OscarNMS plugins) from a checkpoint or a raw-head ONNX graph. Without "
                    "TensorRT it writes and checks the end-to-end ONNX graph and prints the "
                    "trtexec command to run on the Jetson (exit code 2).")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--checkpoint", help="model checkpoint (.pt); default: the shipped model")
    src.add_argument("--onnx", help="raw-head ONNX graph (export/export_onnx.py, or a "
                                    "quantize.py output of the requested precision)")
    p.add_argument("--precision", choices=PRECISIONS, default="fp32",
                   help="fp32, fp16 (ModelOpt AutoCast) or int8 (ModelOpt PTQ, Q/DQ); "
                        "default %(default)s")
    p.add_argument("--out", default="model.engine",
                   help="engine file (default %(default)s); <out>.onnx and <out>.json are "
                        "written beside it")
    cal = p.add_argument_group("calibration (fp16 / int8)")
    cal.add_argument("--calib-data", help="SIRST-V2 root (splits/ + mixed/) or a folder of images")
    cal.add_argument("--calib-split", default="train_full", help="split (default %(default)s)")
    cal.add_argument("--calib-images", type=int, default=64,
                     help="number of images, drawn with --seed (default %(default)s)")
    cal.add_argument("--seed", type=int, default=0, help="image selection seed (default 0)")
    shp = p.add_argument_group("optimization profile of input 'image' (NxCxHxW, H and W "
                               "multiples of 32)")
    shp.add_argument("--min-shape", default=shape_str(DEFAULT_MIN_SHAPE),
                     help="default %(default)s")
    shp.add_argument("--opt-shape", default=shape_str(DEFAULT_OPT_SHAPE),
                     help="default %(default)s")
    shp.add_argument("--max-shape", default=shape_str(DEFAULT_MAX_SHAPE),
                     help="default %(default)s")
    trt = p.add_argument_group("TensorRT")
    trt.add_argument("--workspace-mb", type=int, default=DEFAULT_WORKSPACE_MB,
                     help="workspace memory pool limit in MiB (default %(default)s)")
    trt.add_argument("--timing-cache", help="timing cache file: read if it exists, written "
                                            "after the build")
    trt.add_argument("--dla-core", type=int, help="build for this DLA core (Orin, TensorRT "
                                                  "10.x) with GPU fallback; needs fp16/int8 "
                                                  "and a static profile (min = opt = max)")
    trt.add_argument("--plugin-lib", help=f"plugin library (default ${PLUGIN_ENV} or "
                                          f"{PLUGIN_RELPATH})")
    post = p.add_argument_group("plugin attributes (defaults: cpp_plugins/common/"
                                "oscar_plugin_names.h)")
    post.add_argument("--score-threshold", type=float)
    post.add_argument("--topk", type=int)
    post.add_argument("--iou-threshold", type=float)
    post.add_argument("--max-detections", type=int)
    post.add_argument("--peak-refine", choices=ON_OFF, default=None,
                      help="end the graph in OscarPeakRefine: every kept box moved so that its "
                           "centre sits on the image peak inside it (cpp_plugins/README.md, "
                           "\"OscarPeakRefine (rule 6)\"; adds the input "
                           "'letterbox' [B,4] = content h, w, scale_y, scale_x per frame); "
                           "default on (oscar_edge.postprocess.PEAK_REFINE_DEFAULT)")
    p.add_argument("--no-verify", action="store_true",
                   help="skip the CPU run of the end-to-end graph")
    p.add_argument("--verbose", action="store_true", help="ModelOpt and TensorRT logs")
    return p


# ------------------------------------------------------------------------------ stages
@dataclass
class Plan:
    """Everything decided from the arguments before any work."""

    precision: str
    out: Path
    onnx_out: Path
    sidecar: Path
    min_shape: Shape
    opt_shape: Shape
    max_shape: Shape
    workspace_mb: int
    timing_cache: Optional[Path]
    dla_core: Optional[int]
    plugin_lib: Path
    plugin_lib_explicit: bool
    attrs: object
    names: object
    calib_paths: List[str] = field(default_factory=list)
    source_precision: str = "fp32"


def _source_graph(path: Path, precision: str):
    """Load ``--onnx``: (model, its precision). UserError for a missing / corrupt / foreign
    graph or a reduced-precision graph of another precision."""
    import onnx

    from .onnx_export import get_metadata
    from .plugin_graph import check_raw_head
    from .plugin_names import plugin_names
    from .quantize import _reduced_precision

    if not path.is_file():
        raise UserError(f"ONNX model not found: {path}")
    try:
        model = onnx.load(str(path))
    except Exception as exc:  # DecodeError, ...
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"cannot read ONNX model {path}: {text}") from None
    names = plugin_names()
    if any(n.op_type in (names.decode_name, names.nms_name) for n in model.graph.node):
        raise UserError(f"{path} already holds the {names.decode_name} / {names.nms_name} "
                        "plugin nodes; give the raw-head graph (export/export_onnx.py or "
                        "export/quantize.py output)")
    try:
        onnx.checker.check_model(model)
    except Exception as exc:  # ValidationError, ...
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"ONNX model {path} fails the ONNX checker: {text}") from None
    try:
        check_raw_head(model)
    except UserError as exc:
        raise UserError(f"{path}: {exc}") from None
    reduced = _reduced_precision(model)
    if not reduced:
        return model, "fp32"
    props = get_metadata(model)
    meta = props.get("precision", "")
    if props.get("int8_target") == "onnxruntime":
        raise UserError(f"{path} is an INT8 graph made for ONNX Runtime's CPU provider "
                        "(quantize.py --int8-target onnxruntime); TensorRT engines are built from "
                        "the FP32 export or a ModelOpt INT8 graph (--int8-target tensorrt)")
    if meta in ("fp16", "int8") and meta == precision:
        return model, meta
    raise UserError(f"{path} is already a reduced-precision graph ({reduced}, precision "
                    f"{meta or 'unknown'}); give the FP32 export, or --precision {meta} to use "
                    "it as it is")


def make_plan(args: argparse.Namespace) -> Plan:
    from .plugin_graph import PostprocessAttrs
    from .plugin_names import plugin_names

    mn = parse_shape(args.min_shape, "--min-shape")
    opt = parse_shape(args.opt_shape, "--opt-shape")
    mx = parse_shape(args.max_shape, "--max-shape")
    check_profile(mn, opt, mx)
    if args.workspace_mb < 1:
        raise UserError(f"--workspace-mb must be >= 1, got {args.workspace_mb}")
    if args.dla_core is not None:
        if args.dla_core < 0:
            raise UserError(f"--dla-core must be >= 0, got {args.dla_core}")
        if args.precision == "fp32":
            raise UserError("--dla-core: DLA runs FP16 and INT8 layers only; use --precision "
                            "fp16 or int8")
        if not mn == opt == mx:
            raise UserError("--dla-core: DLA does not support dynamic dimensions; give "
                            "--min-shape = --opt-shape = --max-shape")
    out = Path(args.out)
    if out.suffix.lower() == ".onnx":
        raise UserError(f"--out is the engine file (e.g. model.engine), got {out}")
    if out.is_dir():
        raise UserError(f"--out is a folder: {out}")
    names = plugin_names()
    defaults = PostprocessAttrs.defaults(names)
    peak = getattr(args, "peak_refine", None)
    attrs = PostprocessAttrs(
        defaults.score_threshold if args.score_threshold is None else args.score_threshold,
        defaults.topk if args.topk is None else args.topk,
        defaults.iou_threshold if args.iou_threshold is None else args.iou_threshold,
        defaults.max_detections if args.max_detections is None else args.max_detections,
        defaults.peak_refine if peak is None else peak == "on",
        defaults.centroid,
    ).validate(names)
    if args.plugin_lib:
        plugin_lib, explicit = Path(args.plugin_lib), True
    else:
        plugin_lib, explicit = default_plugin_library()
    return Plan(args.precision, out, Path(str(out) + ".onnx"), Path(str(out) + ".json"), mn, opt,
                mx, int(args.workspace_mb), Path(args.timing_cache) if args.timing_cache else None,
                args.dla_core, plugin_lib, explicit, attrs, names)


def _calibration_images(args: argparse.Namespace) -> List[str]:
    from ..preprocess import read_grey
    from .quantize import select_calibration_images

    if not args.calib_data:
        why = ("calibrates the INT8 ranges" if args.precision == "int8"
               else "AutoCast picks the nodes that stay FP32")
        raise UserError(f"--precision {args.precision} needs --calib-data (ModelOpt {why} on "
                        "real images), e.g. --calib-data ../shared/data/sirst-v2")
    paths = select_calibration_images(args.calib_data, args.calib_split, args.calib_images,
                                      args.seed)
    for p in paths:  # a corrupt image fails here, with its name, before any export work
        read_grey(p)
    return paths


def _simplified(model):
    from .onnx_export import drop_tool_metadata, simplify

    try:
        simple, ok = simplify(model)
    except Exception:
        return model, False
    if not ok:
        return model, False
    drop_tool_metadata(simple)
    return simple, True


def produce_graph(args: argparse.Namespace, plan: Plan, work: Path, log) -> Path:
    """Stages 1-2: the raw-head graph at the requested precision, as a file in ``work``."""
    import onnx

    from . import quantize
    from .onnx_export import export_onnx

    raw = work / "raw.onnx"
    if args.onnx:
        model, plan.source_precision = _source_graph(Path(args.onnx), plan.precision)
        if plan.source_precision == "fp32":
            model, ok = _simplified(model)
            log(f"input {args.onnx}: FP32 raw-head graph, "
                f"{'simplified with onnxsim' if ok else 'onnxsim could not verify; kept as given'}")
        else:
            log(f"input {args.onnx}: already {plan.source_precision}, precision stage skipped")
        onnx.save(model, str(raw))
    else:
        t0 = time.perf_counter()
        r = export_onnx(args.checkpoint, raw)
        log(f"exported {args.checkpoint or 'the shipped model'} (preset {r.preset}, opset "
            f"{r.opset}, simplified; ONNX Runtime vs PyTorch max abs diff "
            f"{max(r.max_abs_diff.values()):.2g}) in {time.perf_counter() - t0:.0f} s")
    if plan.precision == plan.source_precision:
        return raw
    out = work / f"{plan.precision}.onnx"
    t0 = time.perf_counter()
    if plan.precision == "int8":
        quantize.quantize_int8(raw, out, plan.calib_paths, None, "entropy", args.calib_split,
                               args.seed, args.verbose)
    else:
        quantize.convert_fp16(raw, out, plan.calib_paths, None, args.calib_split, args.seed,
                              args.verbose)
    log(f"{plan.precision}: ModelOpt {'PTQ (Q/DQ)' if plan.precision == 'int8' else 'AutoCast'} "
        f"on {len(plan.calib_paths)} calibration images from {args.calib_split} in "
        f"{time.perf_counter() - t0:.0f} s")
    return out


def write_end_to_end(src: Path, plan: Plan):
    """Stage 3: plugin graph -> ``plan.onnx_out`` (atomic), checked. Returns the model."""
    import onnx

    from .plugin_graph import add_plugin_nodes, check_end_to_end

    e2e = add_plugin_nodes(onnx.load(str(src)), plan.attrs, plan.names)
    check_end_to_end(e2e, plan.names, plan.attrs)
    plan.onnx_out.parent.mkdir(parents=True, exist_ok=True)
    tmp = plan.onnx_out.with_name(plan.onnx_out.name + ".tmp")
    onnx.save(e2e, str(tmp))
    os.replace(tmp, plan.onnx_out)
    return e2e


def verify_on_cpu(e2e, src: Path, plan: Plan) -> str:
    """Run the end-to-end graph (plugin nodes = native CPU library) and the raw graph + the
    same CPU decode / NMS on one deterministic batch at the profile's min size; they must agree.
    Returns a one-line summary; raises RuntimeError on a mismatch."""
    from ..backends.ort_backend import OrtBackend
    from ..native import NativePostprocessor
    from .plugin_graph import cpu_session, run_cpu

    n = max(plan.min_shape[0], min(VERIFY_MAX_BATCH, plan.max_shape[0]))
    shape = (n,) + tuple(plan.min_shape[1:])
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    # letterbox rows: the whole input at scale 1, then a smaller content at another scale
    h, w = shape[2], shape[3]
    letterbox = np.float32([[h, w, 1.0, 1.0], [h - 24, w - 40, 2.5, 0.75]] * n)[:n]
    num, boxes, scores = run_cpu(cpu_session(e2e), x, letterbox)
    a = plan.attrs
    native = NativePostprocessor()
    want_num, want_boxes, want_scores = native.postprocess_batch_padded(
        OrtBackend(src)(x), None, a.score_threshold, a.topk, a.iou_threshold, a.max_detections)
    if a.peak_refine:  # the graph's decode clamps to the input; the refinement to the content
        want_boxes = native.peak_refine_batch(x, want_boxes, want_num, letterbox, a.centroid)
    if not np.array_equal(num, want_num):
        raise RuntimeError(f"end-to-end graph on the CPU: num_detections {num.tolist()} != raw "
                           f"graph + CPU decode/NMS {want_num.tolist()}")
    db = float(np.abs(boxes - want_boxes).max()) if boxes.size else 0.0
    ds = float(np.abs(scores - want_scores).max()) if scores.size else 0.0
    if db > 1e-3 or ds > 1e-5:
        raise RuntimeError(f"end-to-end graph on the CPU differs from raw graph + CPU "
                           f"decode/NMS: boxes {db:.3g}, scores {ds:.3g}")
    return (f"checked on the CPU at {shape_str(shape)}: end-to-end graph (plugin nodes run by "
            f"the native CPU library) == raw graph + CPU decode/NMS"
            f"{' + peak refinement' if a.peak_refine else ''}, detections {num.tolist()}")


def sidecar(plan: Plan, e2e, trt_version: str, onnx_sha: str) -> Dict:
    from .onnx_export import get_metadata

    meta = get_metadata(e2e)
    names = plan.names
    return {
        "format": "oscar-edge TensorRT engine sidecar v1",
        "engine": plan.out.name,
        "onnx": plan.onnx_out.name,
        "onnx_sha256": onnx_sha,
        "preset": meta.get("preset", "unknown"),
        "precision": plan.precision,
        "input": {
            "name": INPUT_NAME, "dtype": "float32", "layout": "NCHW",
            "min_shape": list(plan.min_shape), "opt_shape": list(plan.opt_shape),
            "max_shape": list(plan.max_shape), "size_divisor": SIZE_DIVISOR,
        },
        "preprocess": {"mean": float(MEAN), "std": float(STD), "channels": IN_CHANNELS,
                       "fit_size": list(FIT_SIZE), "grey": True,
                       "pad": "zeros bottom/right to multiples of size_divisor"},
        "outputs": {"num_detections": {"dtype": "int32", "shape": ["B"]},
                    "boxes": {"dtype": "float32", "shape": ["B", plan.attrs.max_detections, 4],
                              "meaning": "x1,y1,x2,y2 in network-input pixels, " + (
                                  "peak-refined, inside the letterbox content"
                                  if plan.attrs.peak_refine else "clamped to the input size")
                              + "; rows past num_detections are zeros"},
                    "scores": {"dtype": "float32", "shape": ["B", plan.attrs.max_detections]}},
        "plugins": {
            "library": str(plan.plugin_lib),
            "namespace": names.namespace,
            names.decode_name: {"version": names.decode_version,
                                names.attr_score_threshold: plan.attrs.score_threshold,
                                names.attr_topk: plan.attrs.topk},
            names.nms_name: {"version": names.nms_version,
                             names.attr_iou_threshold: plan.attrs.iou_threshold,
                             names.attr_max_detections: plan.attrs.max_detections},
            **({names.peak_name: {"version": names.peak_version,
                                  names.attr_centroid: int(bool(plan.attrs.centroid))}}
               if plan.attrs.peak_refine else {}),
        },
        "peak_refine": bool(plan.attrs.peak_refine),
        "letterbox_input": ({
            "name": LETTERBOX_NAME, "dtype": "float32", "shape": ["B", 4],
            "meaning": "per frame: content height, content width, scale_y, scale_x of its "
                       "letterbox (oscar_edge.preprocess.Letterbox.tensor())",
        } if plan.attrs.peak_refine else None),
        "tensorrt_version": trt_version,
        "strongly_typed": True,
        "workspace_mb": plan.workspace_mb,
        "dla_core": plan.dla_core,
        "timing_cache": str(plan.timing_cache) if plan.timing_cache else None,
        "calibration": {k: v for k, v in meta.items() if k.startswith("calib_")} or None,
        "source_checkpoint_sha256": meta.get("source_checkpoint_sha256"),
        "oscar_edge_version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


# ------------------------------------------------------------------------------ main
def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    return run_cli(lambda: _main(args), prog=PROG)


def _main(args: argparse.Namespace) -> int:
    from . import trt_build
    from .onnx_export import file_sha256

    log = lambda msg: print(msg, flush=True)  # noqa: E731
    plan = make_plan(args)

    # The plugin library first: before any work and before `import tensorrt`.
    have_trt = importlib.util.find_spec("tensorrt") is not None
    if plan.plugin_lib_explicit or plan.plugin_lib.is_file() or have_trt:
        trt_build.load_plugin_library(plan.plugin_lib)
        plugin_loaded = True
    else:
        plugin_loaded = False

    if plan.precision != "fp32":
        source_is_reduced = False
        if args.onnx:  # a quantize.py output of this precision needs no calibration
            _, source_precision = _source_graph(Path(args.onnx), plan.precision)
            source_is_reduced = source_precision == plan.precision
        if not source_is_reduced:
            plan.calib_paths = _calibration_images(args)

    with tempfile.TemporaryDirectory(prefix="oscar-engine-") as tmp:
        try:
            src = produce_graph(args, plan, Path(tmp), log)
        except RuntimeError as exc:  # a stage that fails its own check (export_onnx's style)
            if type(exc).__name__ == "CheckpointError":
                raise  # run_cli: one line, exit 2
            print(f"{PROG}: error: {str(exc).splitlines()[0]}", file=sys.stderr)
            return 1
        e2e = write_end_to_end(src, plan)
        mb = plan.onnx_out.stat().st_size / 1e6
        peak = (f" + {plan.names.peak_name}/{plan.names.peak_version} (input letterbox)"
                if plan.attrs.peak_refine else "")
        log(f"wrote {plan.onnx_out} ({mb:.2f} MB): {plan.precision} end-to-end graph, "
            f"{plan.names.decode_name}/{plan.names.decode_version} + "
            f"{plan.names.nms_name}/{plan.names.nms_version}{peak} (namespace "
            f"{plan.names.namespace!r}), outputs num_detections / boxes / scores; ONNX checker "
            "passed (plugin nodes checked separately)")
        if not args.no_verify:
            if importlib.util.find_spec("onnxruntime_extensions") is None:
                log("note: onnxruntime-extensions is not installed, the CPU run of the "
                    "end-to-end graph is skipped (pip install 'oscar-edge[export]')")
            else:
                try:
                    log(verify_on_cpu(e2e, src, plan))
                except RuntimeError as exc:
                    print(f"{PROG}: error: {str(exc).splitlines()[0]}", file=sys.stderr)
                    return 1

    command = trtexec_command(plan.onnx_out, plan.out, plan.min_shape, plan.opt_shape,
                              plan.max_shape, plan.workspace_mb, plan.plugin_lib,
                              plan.timing_cache, plan.dla_core,
                              letterbox=bool(plan.attrs.peak_refine))
    log("trtexec equivalent (TensorRT 10.x flags; on 11.x --stronglyTyped is the default):")
    log(command)

    try:
        trt = trt_build.import_tensorrt()
    except trt_build.TensorRTUnavailable as exc:
        print(f"{PROG}: error: the engine step needs TensorRT, which does not import here "
              f"({exc}); wrote and checked {plan.onnx_out}; build the engine on the Jetson with: "
              f"{command}", file=sys.stderr)
        return 2
    if not plugin_loaded:
        trt_build.load_plugin_library(plan.plugin_lib)

    spec = trt_build.BuildSpec(
        onnx_path=plan.onnx_out, input_name=INPUT_NAME, min_shape=plan.min_shape,
        opt_shape=plan.opt_shape, max_shape=plan.max_shape,
        workspace_bytes=plan.workspace_mb * (1 << 20), expected_outputs=("num_detections",
                                                                         "boxes", "scores"),
        timing_cache=plan.timing_cache, dla_core=plan.dla_core, verbose=args.verbose,
        extra_inputs=({LETTERBOX_NAME: letterbox_profile(plan.min_shape, plan.opt_shape,
                                                         plan.max_shape)}
                      if plan.attrs.peak_refine else {}))
    t0 = time.perf_counter()
    try:
        result = trt_build.build_engine(trt, spec, plan.names, str(plan.plugin_lib))
    except trt_build.EngineBuildError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 1
    for note in result.notes:
        log(f"note: {note}")
    _write_atomic(plan.out, result.plan)
    info = sidecar(plan, e2e, result.tensorrt_version, file_sha256(plan.onnx_out))
    _write_atomic(plan.sidecar, (json.dumps(info, indent=2) + "\n").encode())
    log(f"wrote {plan.out} ({len(result.plan) / 1e6:.2f} MB, TensorRT "
        f"{result.tensorrt_version}, {plan.precision}, profile {shape_str(plan.min_shape)} / "
        f"{shape_str(plan.opt_shape)} / {shape_str(plan.max_shape)}) in "
        f"{time.perf_counter() - t0:.0f} s, and {plan.sidecar}"
        + (f"; timing cache {plan.timing_cache}" if result.timing_cache_saved else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
