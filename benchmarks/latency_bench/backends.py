"""The ``--backends`` keys and what each runs: the models (shipped, random-init or
``--checkpoint`` weights, exported to ONNX), the INT8 / FP16 graphs and TensorRT engines made on
the fly and cached in ``--work-dir``, and the handle (one timed call, its label, its settings)
of every key.

Adding a key is one entry in ``BACKEND_TABLE`` (see ``BackendSpec``): its builder (a function
returning a ``Handle``), its precision, optionally what has to be made before the first timed
call (``prepare``), whether that is per input size, why the key cannot run here
(``unavailable``) and whether a trtexec command applies.
"""
from __future__ import annotations

import argparse
import contextlib
import hashlib
import importlib
import importlib.util
import os
import shlex
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from oscar_edge.errors import UserError
from oscar_edge.hashing import file_sha256

from .common import SHIPPED_PRESET, first_line, log, pkg_version, size_label
from .machine import tensorrt_version

DEFAULT_BACKENDS = "torch,ort,ort-int8"
RANDOM_CLS_BIAS = -10.0


def default_work_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "oscar-edge" / "bench"


# ============================================================================ models
def _key(*parts: object) -> str:
    return hashlib.sha256("\n".join(str(p) for p in parts).encode()).hexdigest()[:12]


@dataclass
class ModelSource:
    preset: str
    checkpoint: Path
    fp32_onnx: Path
    weights: str            # "shipped (trained)", "random init (seed 0)", "checkpoint X"
    notes: List[str] = field(default_factory=list)
    # precision -> a ready graph of this model (the shipped FP16 / INT8 Q/DQ graphs of the
    # shipped model: the files --precision picks, so no ModelOpt run is needed, e.g. on a Jetson)
    graphs: Dict[str, Path] = field(default_factory=dict)


def _random_checkpoint(preset: str, seed: int, work: Path) -> Path:
    """Random-init weights of ``preset`` (torch default init, head classification biases
    RANDOM_CLS_BIAS), saved once per (preset, seed) so that every backend runs the same."""
    path = work / f"{preset}-random-seed{seed}-bias{RANDOM_CLS_BIAS:g}.pt"
    if path.is_file():
        return path
    import torch

    from oscar_edge.checkpoint import model_checkpoint, save
    from oscar_edge.models import build_model

    torch.manual_seed(seed)
    model = build_model(preset)
    with torch.no_grad():
        for conv in (model.head.refine_cls, model.head.coarse_cls):
            conv.bias.fill_(RANDOM_CLS_BIAS)
    save(model_checkpoint(model, {"note": f"random init for latency only (seed {seed})"}), path)
    return path


def _export(checkpoint: Path, work: Path, log_fn=log) -> Path:
    from oscar_edge import models
    from oscar_edge.export import onnx_export

    # the graph depends on the exporter and on the model code (a changed layer, same weights)
    model_code = sorted(Path(models.__file__).parent.glob("*.py"))
    key = _key(file_sha256(checkpoint), file_sha256(onnx_export.__file__),
               *(file_sha256(p) for p in model_code))
    out = work / f"{checkpoint.stem}-{key}.fp32.onnx"
    if out.is_file():
        return out
    log_fn(f"exporting {checkpoint.name} to ONNX ({out.name}) ...")
    with contextlib.redirect_stdout(sys.stderr):
        onnx_export.export_onnx(checkpoint, out)
    return out


def model_source(args: argparse.Namespace, work: Path) -> ModelSource:
    from oscar_edge.backends.factory import SHIPPED_ONNX
    from oscar_edge.checkpoint import SHIPPED_WEIGHTS, read

    if args.checkpoint:
        ckpt = Path(args.checkpoint)
        preset = str(read(ckpt)["preset"])  # its preset wins over --preset (run.py notes it)
        return ModelSource(preset, ckpt, _export(ckpt, work), f"checkpoint {ckpt}")
    from oscar_edge.presets import get_preset

    get_preset(args.preset)  # KeyError listing the presets
    if args.preset == SHIPPED_PRESET:
        if not SHIPPED_WEIGHTS.is_file() or not SHIPPED_ONNX.is_file():
            raise UserError(f"the shipped model is missing ({SHIPPED_WEIGHTS}, {SHIPPED_ONNX})")
        from oscar_edge.backends.factory import SHIPPED_MODELS

        graphs = {k: v for k, v in SHIPPED_MODELS.items() if k != "fp32" and v.is_file()}
        return ModelSource(SHIPPED_PRESET, SHIPPED_WEIGHTS, SHIPPED_ONNX, "shipped (trained)",
                           graphs=graphs)
    ckpt = _random_checkpoint(args.preset, args.seed, work)
    note = (f"{args.preset} has no trained weights: random-init weights (seed {args.seed}; head "
            f"classification biases {RANDOM_CLS_BIAS:g} so that few locations pass the score "
            "threshold, as with a trained model). Latency only: its detections mean nothing, "
            "and its post-processing time is a lower bound (few candidates)")
    return ModelSource(args.preset, ckpt, _export(ckpt, work), f"random init (seed {args.seed})",
                       [note])


def calibration_paths(args: argparse.Namespace, data: Path) -> List[str]:
    from oscar_edge.export.quantize import select_calibration_images

    return select_calibration_images(data, args.calib_split, args.calib_images, args.seed)


def reduced_graph(fp32: Path, precision: str, args: argparse.Namespace, data: Path,
                  work: Path) -> Path:
    """INT8 (``quantize_int8``; ``int8-ortq``: ``quantize_int8_ort``) or FP16
    (``convert_fp16``) version of ``fp32``, cached."""
    from oscar_edge.export import quantize

    paths = calibration_paths(args, data)
    recipe = _key(precision, file_sha256(quantize.__file__), "\n".join(Path(p).stem for p in paths),
                  args.calib_split, args.seed, pkg_version("nvidia-modelopt"),
                  pkg_version("onnxruntime"), pkg_version("onnx"))
    stem = fp32.stem.replace(".fp32", "")
    out = work / f"{stem}-{file_sha256(fp32)[:12]}.{precision}-{recipe}.onnx"
    if out.is_file():
        return out
    how = {"int8": "ModelOpt PTQ", "int8-ortq": "ONNX Runtime quantize_static",
           "fp16": "ModelOpt AutoCast"}[precision]
    log(f"{precision}: {how} of "
        f"{fp32.name} on {len(paths)} calibration images -> {out} ...")
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(sys.stderr):
        if precision == "int8":
            quantize.quantize_int8(fp32, out, paths, split=args.calib_split, seed=args.seed)
        elif precision == "int8-ortq":
            quantize.quantize_int8_ort(fp32, out, paths, split=args.calib_split, seed=args.seed)
        else:
            quantize.convert_fp16(fp32, out, paths, split=args.calib_split, seed=args.seed)
    log(f"{precision} graph ready in {time.perf_counter() - t0:.0f} s")
    return out


def trt_unavailable_reason() -> Optional[str]:
    """Why the TensorRT backends cannot run here, or None."""
    if importlib.util.find_spec("tensorrt") is None:
        return "not available: TensorRT not installed"
    try:
        importlib.import_module("tensorrt")
    except Exception as exc:
        return f"not available: TensorRT does not import ({first_line(exc)})"
    try:
        has_cuda = importlib.util.find_spec("cuda") is not None
    except (ImportError, ValueError):
        has_cuda = False
    if not has_cuda:
        return "not available: cuda-python not installed (pip install cuda-python)"
    return None


def plugin_library(args: argparse.Namespace) -> Path:
    from oscar_edge.export.build_engine import default_plugin_library

    return Path(args.plugin_lib) if args.plugin_lib else default_plugin_library()[0]


def trt_engine(fp32: Path, precision: str, batch: int, hw: Tuple[int, int],
               args: argparse.Namespace, data: Path, work: Path) -> Path:
    """A static-shape engine (B, 3, H, W) of ``fp32`` + decode/NMS plugins, cached; peak
    refinement off, like the CPU path of ``Detector``. Built with build_engine's own code."""
    from oscar_edge.export import build_engine

    lib = plugin_library(args)
    shape = f"{batch}x3x{hw[0]}x{hw[1]}"
    key = _key(file_sha256(fp32), precision, shape, tensorrt_version(),
               file_sha256(lib) if lib.is_file() else lib, file_sha256(build_engine.__file__),
               args.calib_images, args.calib_split, args.seed)
    out = work / f"{fp32.stem.replace('.fp32', '')}.{precision}.{shape}-{key}.engine"
    if out.is_file() and Path(str(out) + ".json").is_file():
        return out
    argv = ["--onnx", str(fp32), "--precision", precision, "--out", str(out),
            "--min-shape", shape, "--opt-shape", shape, "--max-shape", shape,
            "--peak-refine", "off", "--plugin-lib", str(lib),
            "--timing-cache", str(work / "trt-timing.cache"),
            "--calib-data", str(data), "--calib-split", args.calib_split,
            "--calib-images", str(args.calib_images), "--seed", str(args.seed)]
    log(f"building TensorRT engine {out.name} (python export/build_engine.py "
        f"{' '.join(shlex.quote(a) for a in argv)}) ...")
    with contextlib.redirect_stdout(sys.stderr):
        rc = build_engine.main(argv)
    if rc != 0 or not out.is_file():
        raise RuntimeError(f"engine build failed (build_engine exit code {rc}; its log is above "
                           "on stderr)")
    return out


# ============================================================================ backends
@dataclass
class Handle:
    name: str
    label: str
    infer: Callable
    close: Callable[[], None]
    model_file: Optional[str] = None
    info: Dict[str, object] = field(default_factory=dict)


class Unavailable(Exception):
    """A backend that cannot run here (reported, not an error)."""


# ============================================================================ keys
# A builder: (spec, model source, args, data root, work dir, batch, (H, W)) -> Handle
Builder = Callable[["BackendSpec", ModelSource, argparse.Namespace, Path, Path, int,
                    Tuple[int, int]], Handle]
# A prepare step: (spec, model source, args, data root, work dir, (H, W) or None) -> the file
# made (or found in the cache); raises when it cannot be made
Prepare = Callable[["BackendSpec", ModelSource, argparse.Namespace, Path, Path,
                    Optional[Tuple[int, int]]], Path]


@dataclass(frozen=True)
class BackendSpec:
    """One ``--backends`` key.

    build: returns the key's ``Handle`` (its ``label`` says what runs, with versions);
    precision: the precision the builder and ``prepare`` make ("fp32", "int8", "int8-ortq",
        "fp16"; free text for a new runtime);
    what: one line on what runs (as in the table of the module docstring);
    prepare: makes what the key needs before the first timed call (a graph, an engine), so that
        no quantization or build runs between two keys' measurements; None: nothing to make;
    per_size: ``prepare`` and the handle are per input size (static-shape engines): the handle
        is closed after each size of a sweep, and a failed ``prepare`` fails that size only;
    unavailable: why the key cannot run here ("not available: ..."), or None; reported, not an
        error; None for keys that always can;
    trtexec: a TensorRT engine: the report prints the equivalent trtexec command.
    """
    key: str
    precision: str
    build: Builder
    what: str
    prepare: Optional[Prepare] = None
    per_size: bool = False
    unavailable: Optional[Callable[[], Optional[str]]] = None
    trtexec: bool = False


def _torch_handle(spec: BackendSpec, src: ModelSource, args: argparse.Namespace, data: Path,
                  work: Path, batch: int, hw: Tuple[int, int]) -> Handle:
    import torch

    from oscar_edge.backends.torch_backend import TorchBackend
    from oscar_edge.checkpoint import load_model

    if args.threads:
        torch.set_num_threads(int(args.threads))
    model, _ = load_model(src.checkpoint)
    b = TorchBackend(model, args.torch_device)
    return Handle(spec.key, f"PyTorch {torch.__version__} eager FP32 ({args.torch_device})", b,
                  lambda: None, str(src.checkpoint),
                  {"torch_threads": torch.get_num_threads(),
                   "torch_interop_threads": torch.get_num_interop_threads()})


def _ort_graph(spec: BackendSpec, src: ModelSource, args: argparse.Namespace, data: Path,
               work: Path, hw: Optional[Tuple[int, int]] = None) -> Path:
    """The graph an ONNX Runtime key runs: the FP32 export, or its INT8 / FP16 version (the
    shipped one for the shipped model, else made by export/quantize.py's code)."""
    if spec.precision == "fp32":
        return src.fp32_onnx
    if spec.precision in src.graphs:
        return src.graphs[spec.precision]
    return reduced_graph(src.fp32_onnx, spec.precision, args, data, work)


def _ort_handle(spec: BackendSpec, src: ModelSource, args: argparse.Namespace, data: Path,
                work: Path, batch: int, hw: Tuple[int, int]) -> Handle:
    from oscar_edge.backends.base import close_backend
    from oscar_edge.backends.ort_backend import OrtBackend

    path = _ort_graph(spec, src, args, data, work)
    b = OrtBackend(path, threads=args.threads or None)
    import onnxruntime

    meta = {k: v for k, v in b.metadata.items()
            if k.startswith(("calib_", "int8_", "modelopt", "precision"))
            and k != "calib_images"}
    return Handle(spec.key, f"ONNX Runtime {onnxruntime.__version__} CPU {b.precision}", b,
                  lambda: close_backend(b), str(path),
                  {"precision": b.precision, "providers": b.providers,
                   "intra_op_threads": args.threads or "default (one per physical core)",
                   "graph_metadata": meta})


def _trt_engine(spec: BackendSpec, src: ModelSource, args: argparse.Namespace, data: Path,
                work: Path, hw: Optional[Tuple[int, int]]) -> Path:
    assert hw is not None  # per-size
    return trt_engine(src.graphs.get(spec.precision, src.fp32_onnx), spec.precision, args.batch,
                      hw, args, data, work)


def _trt_handle(spec: BackendSpec, src: ModelSource, args: argparse.Namespace, data: Path,
                work: Path, batch: int, hw: Tuple[int, int]) -> Handle:
    from oscar_edge.backends.base import close_backend
    from oscar_edge.backends.trt_backend import TrtBackend

    engine = trt_engine(src.graphs.get(spec.precision, src.fp32_onnx), spec.precision, batch, hw,
                        args, data, work)
    b = TrtBackend(engine, plugins=str(plugin_library(args)))
    return Handle(spec.key, f"TensorRT {tensorrt_version()} {b.precision} engine (decode + NMS "
                            "plugins inside, host<->device copies included)", b,
                  lambda: close_backend(b), str(engine), {"precision": b.precision})


def openvino_unavailable_reason() -> Optional[str]:
    """Why the OpenVINO backends cannot run here, or None."""
    if importlib.util.find_spec("openvino") is None:
        return "not available: OpenVINO not installed (pip install 'oscar-edge[openvino]')"
    return None


def _ov_handle(spec: BackendSpec, src: ModelSource, args: argparse.Namespace, data: Path,
               work: Path, batch: int, hw: Tuple[int, int]) -> Handle:
    """OpenVINO on the same graph as the ONNX Runtime key of this precision, compiled for the
    run's static shape before timing (model cache in the work dir), hint --ov-hint."""
    from oscar_edge.backends.base import close_backend
    from oscar_edge.backends.openvino_backend import OpenVinoBackend

    path = _ort_graph(spec, src, args, data, work)
    b = OpenVinoBackend(path, threads=args.threads or None, hint=args.ov_hint,
                        cache_dir=str(work / "openvino-cache"))
    rec = b.prepare((batch, 3) + tuple(hw))
    return Handle(spec.key, f"OpenVINO {b.version} CPU {b.precision}, hint "
                            f"{b.describe_hint()}", b, lambda: close_backend(b), str(path),
                  {"precision": b.precision, "ov_hint": b.hint,
                   "ov_hint_effective": b.effective_hint,
                   "inference_num_threads": args.threads or "default (all cores)",
                   "compile_s": round(rec.seconds, 3), "compile_from_cache": rec.from_cache})


def _trt(precision: str) -> BackendSpec:
    return BackendSpec(f"trt-{precision}", precision, _trt_handle,
                       f"TensorRT {precision.upper()} engine ending in the decode + NMS plugins, "
                       "static shape", prepare=_trt_engine, per_size=True,
                       unavailable=trt_unavailable_reason, trtexec=True)


# Every --backends key, in the order of the help text. To add one: write its builder (and its
# prepare step if it needs a file made first), then add a BackendSpec here; --backends, the
# help, the up-front preparation, the per-size handling and the report follow from this table.
BACKEND_TABLE: Dict[str, BackendSpec] = {s.key: s for s in (
    BackendSpec("torch", "fp32", _torch_handle,
                "PyTorch eager FP32 (the reference every ratio is taken against)"),
    BackendSpec("ort", "fp32", _ort_handle, "ONNX Runtime CPU, FP32 raw-head graph"),
    BackendSpec("ort-int8", "int8", _ort_handle,
                "ONNX Runtime CPU, INT8 Q/DQ graph (ModelOpt PTQ)", prepare=_ort_graph),
    BackendSpec("ort-int8-ortq", "int8-ortq", _ort_handle,
                "ONNX Runtime CPU, INT8 graph from ONNX Runtime's own quantizer",
                prepare=_ort_graph),
    BackendSpec("ort-fp16", "fp16", _ort_handle,
                "ONNX Runtime CPU, FP16 graph (ModelOpt AutoCast, FP32 I/O)", prepare=_ort_graph),
    _trt("fp32"),
    _trt("fp16"),
    _trt("int8"),
    BackendSpec("openvino", "fp32", _ov_handle,
                "OpenVINO CPU, FP32 raw-head graph, precision hint --ov-hint",
                unavailable=openvino_unavailable_reason),
    BackendSpec("openvino-int8", "int8", _ov_handle,
                "OpenVINO CPU, the INT8 Q/DQ graph of ort-int8 (the file TensorRT builds from), "
                "integer kernels", prepare=_ort_graph, unavailable=openvino_unavailable_reason),
    BackendSpec("openvino-fp16", "fp16", _ov_handle,
                "OpenVINO CPU, the FP16 graph of ort-fp16", prepare=_ort_graph,
                unavailable=openvino_unavailable_reason),
)}
# --precision P maps the plain runtime keys to that precision's key (torch stays the reference)
PRECISION_KEYS: Dict[str, Dict[str, str]] = {
    "fp32": {"ort": "ort", "openvino": "openvino", "trt": "trt-fp32"},
    "int8": {"ort": "ort-int8", "openvino": "openvino-int8", "trt": "trt-int8"},
    "fp16": {"ort": "ort-fp16", "openvino": "openvino-fp16", "trt": "trt-fp16"},
}
BACKENDS = tuple(BACKEND_TABLE)
# the keys that take an OpenVINO precision hint (run once per --ov-hint value)
OPENVINO_KEYS = tuple(k for k, s in BACKEND_TABLE.items() if s.build is _ov_handle)
# the ONNX Runtime keys whose graph is made on the fly (INT8 / FP16)
ORT_REDUCED = tuple(k for k, s in BACKEND_TABLE.items()
                    if s.build is _ort_handle and s.prepare is not None)


def parse_backends(text: str, precision: Optional[str] = None) -> List[str]:
    """The keys of ``--backends``; with ``precision``, the plain runtime keys (ort, openvino,
    trt) become that precision's key (``PRECISION_KEYS``)."""
    names = [b.strip() for b in str(text).split(",") if b.strip()]
    if not names:
        raise UserError("--backends is empty")
    if precision is not None:
        if precision not in PRECISION_KEYS:
            raise UserError(f"unknown precision {precision!r}; choose from "
                            f"{', '.join(PRECISION_KEYS)}")
        names = [PRECISION_KEYS[precision].get(b, b) for b in names]
    bad = [b for b in names if b not in BACKENDS]
    if bad:
        raise UserError(f"unknown backend(s) {', '.join(bad)}; choose from {', '.join(BACKENDS)}")
    seen: List[str] = []
    for b in names:
        if b not in seen:
            seen.append(b)
    return seen


def make_handle(name: str, src: ModelSource, args: argparse.Namespace, data: Path, work: Path,
                batch: int, hw: Tuple[int, int]) -> Handle:
    """The handle of key ``name``; ``Unavailable`` when it cannot run here."""
    spec = BACKEND_TABLE.get(name)
    if spec is None:
        raise UserError(f"unknown backend {name}")
    reason = spec.unavailable() if spec.unavailable is not None else None
    if reason:
        raise Unavailable(reason)
    return spec.build(spec, src, args, data, work, batch, hw)


def prepare_artifacts(backends: Sequence[str], sizes: Sequence[Tuple[int, int]],
                      src: ModelSource, args: argparse.Namespace, data: Path,
                      work: Path) -> Dict[Tuple[str, str], Exception]:
    """Make (or find in the cache) the INT8 / FP16 graphs and the TensorRT engines up front.
    Returns {(backend, size): the exception} of what could not be made (reported per row)."""
    failed: Dict[Tuple[str, str], Exception] = {}
    reasons: Dict[Callable[[], Optional[str]], Optional[str]] = {}
    for name in backends:
        spec = BACKEND_TABLE[name]
        if spec.prepare is None:
            continue
        if spec.unavailable is not None:  # asked once per check, not once per key
            if spec.unavailable not in reasons:
                reasons[spec.unavailable] = spec.unavailable()
            if reasons[spec.unavailable]:
                continue                   # reported as unavailable when measured
        if not spec.per_size:
            try:
                spec.prepare(spec, src, args, data, work, None)
            except Exception as exc:
                log(f"{name}: could not make its graph: {first_line(exc)}")
                for hw in sizes:
                    failed[(name, size_label(hw))] = exc
            continue
        for hw in sizes:
            try:
                spec.prepare(spec, src, args, data, work, hw)
            except Exception as exc:
                log(f"{name} @ {size_label(hw)}: {first_line(exc)}")
                failed[(name, size_label(hw))] = exc
    return failed
