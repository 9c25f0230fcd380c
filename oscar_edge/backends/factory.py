"""Choosing and building a backend by name (no torch unless the PyTorch backend is chosen).

| ``--backend`` | model | output |
|---|---|---|
| ``tensorrt`` | ``--engine x.engine`` (+ ``x.engine.json``, plugin library) | final detections (plugins) |
| ``openvino`` | an ONNX graph: ``--model x.onnx`` or the shipped graph of ``--precision`` | raw heads; decode + NMS by the native CPU library |
| ``onnxruntime`` | same ONNX graphs as ``openvino`` | raw heads; decode + NMS by the native CPU library |
| ``torch`` | ``--model x.pt`` (default: the shipped ``oscar-edge.pt``) | raw heads (reference) |
| ``auto`` | in this order: TensorRT when ``--engine`` is given and TensorRT + cuda-python import; PyTorch for a ``--model *.pt``; OpenVINO when installed; ONNX Runtime | |

``--precision {fp32,fp16,int8}`` picks one of the shipped graphs (``SHIPPED_MODELS``) when no
``--model`` is given: the FP32 export, the FP16 AutoCast graph, or the ModelOpt INT8 Q/DQ graph
(INT8 weights; the very file TensorRT INT8 engines are built from). With ``--model`` or
``--engine`` it must agree with what that file says it is.
"""
from __future__ import annotations

import importlib.util
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

from ..errors import UserError

BACKEND_CHOICES = ("auto", "tensorrt", "openvino", "onnxruntime", "torch")
PRECISIONS = ("fp32", "fp16", "int8")
DEFAULT_PRECISION = "fp32"
WEIGHTS_DIR = Path(__file__).resolve().parents[1] / "weights"
# The shipped graphs of the shipped model, by precision (README, "Export"). All three are
# written by export/quantize.py from oscar-edge.onnx; tests check they match its weights.
SHIPPED_MODELS: Dict[str, Path] = {
    "fp32": WEIGHTS_DIR / "oscar-edge.onnx",
    "fp16": WEIGHTS_DIR / "oscar-edge.fp16.onnx",
    "int8": WEIGHTS_DIR / "oscar-edge.int8.onnx",
}
SHIPPED_ONNX = SHIPPED_MODELS["fp32"]
# OpenVINO's precision hint per precision when --ov-hint is not given, on a CPU with bf16
# (AVX512_BF16 or AMX); a CPU without bf16 gets f32, explicitly (README, "Export": every
# precision stays within 0.7 mNoCoAP points of ONNX Runtime FP32 in bf16, and runs 2.6-3x faster
# than in f32 on such a CPU).
DEFAULT_OV_HINTS = {"fp32": "bf16", "fp16": "bf16", "int8": "bf16"}


def default_ov_hint(precision: str) -> Tuple[str, Optional[str]]:
    """(the hint for a graph of this precision when --ov-hint is not given, a note or None):
    ``DEFAULT_OV_HINTS``, where a bf16 default becomes f32 on a CPU without bf16."""
    from .openvino_backend import DEFAULT_HINT, cpu_has_bf16

    hint = DEFAULT_OV_HINTS.get(precision, DEFAULT_HINT)
    if hint == "bf16" and not cpu_has_bf16():
        return "f32", "default OpenVINO hint f32: this CPU has no bf16 (AVX512_BF16 or AMX)"
    return hint, None


@dataclass
class BackendChoice:
    backend: object
    kind: str
    label: str          # long description (reports)
    short: str = ""     # a few words (status line on the video)
    notes: List[str] = field(default_factory=list)
    fit_size: Optional[tuple] = None
    precision: str = "unknown"      # fp32 / fp16 / int8 (what the model says it is)
    hint: Optional[str] = None      # OpenVINO precision hint as asked, else None
    hint_effective: Optional[str] = None  # ... and as the CPU runs it (bf16 needs CPU support)

    def info(self) -> Dict[str, object]:
        """What reports, JSONL headers and statistics files record about the backend."""
        out: Dict[str, object] = {"backend": self.kind, "backend_label": self.label,
                                  "precision": self.precision}
        if self.hint is not None:
            out["ov_hint"] = self.hint
            out["ov_hint_effective"] = self.hint_effective
        return out


def tensorrt_available() -> bool:
    """True when ``tensorrt`` and cuda-python can be found (not imported here)."""
    try:
        has_trt = importlib.util.find_spec("tensorrt") is not None
        has_cuda = importlib.util.find_spec("cuda") is not None
    except (ImportError, ValueError):
        return False
    return has_trt and has_cuda


def openvino_available() -> bool:
    """True when the ``openvino`` package can be found (not imported here)."""
    try:
        return importlib.util.find_spec("openvino") is not None
    except (ImportError, ValueError):
        return False


def resolve_kind(kind: str, model: Optional[str], engine: Optional[str]) -> tuple:
    """(backend kind, note) for ``--backend kind``; auto rules in the module docstring."""
    if kind not in BACKEND_CHOICES:
        raise UserError(f"unknown backend {kind!r}; choose from {', '.join(BACKEND_CHOICES)}")
    if kind != "auto":
        return kind, None
    note = None
    if engine:
        if tensorrt_available():
            return "tensorrt", None
        note = f"TensorRT / cuda-python not found here: --engine {engine} not used"
    if model and str(model).endswith(".pt") and not engine:
        return "torch", None
    if openvino_available():
        return "openvino", (note + ", running OpenVINO on the CPU") if note else None
    return "onnxruntime", (note + ", running ONNX Runtime on the CPU") if note else None


def onnx_model_path(model: Optional[str], precision: Optional[str]) -> Path:
    """The ONNX graph to run: ``--model`` or the shipped graph of ``precision``."""
    if precision is not None and precision not in PRECISIONS:
        raise UserError(f"unknown precision {precision!r}; choose from {', '.join(PRECISIONS)}")
    if model:
        path = Path(model)
        if str(path).endswith(".pt"):
            raise UserError(f"{path} is a PyTorch checkpoint: use --backend torch, or an .onnx "
                            "model")
        return path
    path = SHIPPED_MODELS[precision or DEFAULT_PRECISION]
    if not path.is_file():
        raise UserError(f"the shipped {precision or DEFAULT_PRECISION} ONNX model is missing: "
                        f"{path}; reinstall oscar-edge, or give your own graph (--model / --onnx)")
    return path


def _check_precision(asked: Optional[str], actual: str, what: str) -> None:
    if asked is not None and actual != "unknown" and asked != actual:
        raise UserError(f"--precision {asked}, but {what} is {actual}: drop --precision or "
                        f"give a {asked} model")


def _threads_text(threads: Optional[int]) -> str:
    return f"{threads} thread{'s' if threads != 1 else ''}" if threads else "default threads"


def create_backend(kind: str = "auto", model: Optional[str] = None, engine: Optional[str] = None,
                   plugins: Optional[str] = None, threads: Optional[int] = None,
                   device: str = "cpu", precision: Optional[str] = None,
                   ov_hint: Optional[str] = None, ov_cache: Optional[str] = "default",
                   log: Callable[[str], None] = lambda m: print(m, file=sys.stderr),
                   triton_timeout: float = 5.0) -> BackendChoice:
    """Build the backend; UserError (one line) when the model or a package is missing.

    ``precision`` (fp32 / fp16 / int8, None = the model's own or fp32) chooses a shipped graph
    or checks the given one; ``ov_hint`` (f32 / bf16, None = ``DEFAULT_OV_HINTS``) and
    ``ov_cache`` (folder, "default", or None / "off") are for the OpenVINO backend.
    ``kind`` may also be a Triton URI (``triton://HOST:PORT/MODEL``, see triton_backend);
    ``triton_timeout`` is then each request's time limit in seconds."""
    from .triton_backend import is_triton_uri

    if is_triton_uri(kind):
        return _triton_choice(kind, model, engine, precision, ov_hint, triton_timeout, log)
    resolved, note = resolve_kind(kind, model, engine)
    notes = [note] if note else []
    if threads is not None and threads < 0:
        raise UserError(f"--threads must be >= 0, got {threads}")
    if precision is not None and precision not in PRECISIONS:
        raise UserError(f"unknown precision {precision!r}; choose from {', '.join(PRECISIONS)}")
    if ov_hint is not None and resolved != "openvino":
        if kind != "auto":
            raise UserError(f"--ov-hint is for --backend openvino, not {resolved}")
        notes.append(f"--ov-hint {ov_hint} not used: the backend is {resolved}")
    if resolved == "tensorrt":
        if not engine:
            raise UserError("--backend tensorrt needs --engine model.engine")
        from .trt_backend import TrtBackend

        b = TrtBackend(engine, plugins=plugins)
        _check_precision(precision, str(b.precision), f"engine {engine}")
        size = f"{b.input_size[0]}x{b.input_size[1]}" if b.input_size else "dynamic"
        return BackendChoice(b, resolved, f"TensorRT engine {Path(engine).name} ({b.precision}, "
                             f"input {size}, decode+NMS plugins)", f"TensorRT {b.precision}",
                             notes, b.fit_size, precision=str(b.precision))
    if engine and kind != "auto":
        raise UserError(f"--engine is for --backend tensorrt (or auto), not {resolved}")
    if resolved == "torch":
        path = model
        if path is not None and not str(path).endswith(".pt"):
            raise UserError(f"--backend torch takes a PyTorch checkpoint (.pt), got {path}")
        _check_precision(precision, "fp32", "the PyTorch backend")
        from ..checkpoint import load_model  # imports torch
        import torch

        from .torch_backend import TorchBackend

        if threads:
            torch.set_num_threads(int(threads))
        net, _ = load_model(path)
        b = TorchBackend(net, device)
        name = Path(path).name if path else "shipped oscar-edge.pt"
        return BackendChoice(b, resolved, f"PyTorch {torch.__version__} {device} ({name}, "
                             f"{net.preset.name})", f"PyTorch {device}", notes,
                             precision="fp32")
    path = onnx_model_path(model, precision)
    if resolved == "openvino" and kind == "auto":
        from .openvino_backend import OpenVinoError, import_openvino

        try:
            import_openvino()
        except OpenVinoError as exc:  # installed but broken: auto falls back to ONNX Runtime
            notes.append(f"OpenVINO found but not usable ({exc}); running ONNX Runtime")
            resolved = "onnxruntime"
    if resolved == "openvino":
        from .onnx_meta import OnnxFormatError, read_metadata
        from .openvino_backend import OpenVinoBackend, check_hint

        if ov_hint is None:  # the default hint depends on the model's precision and the CPU
            try:
                own = read_metadata(path).get("precision", "unknown")
            except (OnnxFormatError, OSError):
                own = "unknown"  # OpenVinoBackend reports the bad file in one line
            ov_hint, note = default_ov_hint(own)
            if note:
                notes.append(note)
        b = OpenVinoBackend(path, threads=threads or None, hint=check_hint(ov_hint),
                            cache_dir=ov_cache)
        _check_precision(precision, b.precision, path.name)
        notes.extend(b.notes)
        return BackendChoice(b, "openvino", f"OpenVINO {b.version} CPU ({path.name}, "
                             f"{b.precision}, hint {b.describe_hint()}, {_threads_text(threads)})",
                             f"OpenVINO CPU {b.precision}, hint {b.effective_hint}", notes,
                             precision=b.precision, hint=b.hint,
                             hint_effective=b.effective_hint)
    # ONNX Runtime
    if importlib.util.find_spec("onnxruntime") is None:
        raise UserError("the ONNX Runtime backend needs the 'onnxruntime' package: "
                        "pip install 'oscar-edge[ort]'")
    import onnxruntime

    from .ort_backend import OrtBackend

    b = OrtBackend(path, threads=threads or None)
    _check_precision(precision, b.precision, path.name)
    return BackendChoice(b, "onnxruntime", f"ONNX Runtime {onnxruntime.__version__} CPU "
                         f"({path.name}, {b.precision}, {_threads_text(threads)})",
                         f"ONNX Runtime CPU {b.precision}", notes, precision=b.precision)


def _triton_choice(uri: str, model: Optional[str], engine: Optional[str],
                   precision: Optional[str], ov_hint: Optional[str], timeout: float,
                   log: Callable[[str], None]) -> BackendChoice:
    """The Triton client backend: the model and its settings live on the server."""
    for flag, value in (("--model", model), ("--engine", engine), ("--ov-hint", ov_hint)):
        if value:
            raise UserError(f"{flag} is not used with a Triton backend: the server runs the model "
                            "it was given (oscar-edge export-triton)")
    from .triton_backend import TritonBackend

    b = TritonBackend(uri, timeout_s=timeout, log=log)
    _check_precision(precision, b.precision, f"the model on {b.uri.address}")
    return BackendChoice(b, "triton", b.describe(), f"Triton {b.uri.model}", [],
                         b.fit_size, precision=b.precision)
