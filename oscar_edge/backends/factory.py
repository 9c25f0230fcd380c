"""Choosing and building a backend by name (no torch unless the PyTorch backend is chosen).

| ``--backend`` | model | output |
|---|---|---|
| ``onnxruntime`` | ``--model x.onnx`` (default: the shipped ``oscar_edge/weights/oscar-edge.onnx``) | raw heads; decode + NMS by the native CPU library |
| ``tensorrt`` | ``--engine x.engine`` (+ ``x.engine.json``, plugin library) | final detections (plugins) |
| ``torch`` | ``--model x.pt`` (default: the shipped ``oscar-edge.pt``) | raw heads (reference) |
| ``auto`` | TensorRT when ``--engine`` is given and TensorRT + cuda-python import; else PyTorch for a ``--model *.pt``; else ONNX Runtime | |
"""
from __future__ import annotations

import importlib.util
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, List, Optional

from ..errors import UserError

BACKEND_CHOICES = ("auto", "onnxruntime", "tensorrt", "torch")
WEIGHTS_DIR = Path(__file__).resolve().parents[1] / "weights"
SHIPPED_ONNX = WEIGHTS_DIR / "oscar-edge.onnx"


@dataclass
class BackendChoice:
    backend: object
    kind: str
    label: str          # long description (reports)
    short: str = ""     # a few words (status line on the video)
    notes: List[str] = field(default_factory=list)
    fit_size: Optional[tuple] = None


def tensorrt_available() -> bool:
    """True when ``tensorrt`` and cuda-python can be found (not imported here)."""
    try:
        has_trt = importlib.util.find_spec("tensorrt") is not None
        has_cuda = importlib.util.find_spec("cuda") is not None
    except (ImportError, ValueError):
        return False
    return has_trt and has_cuda


def resolve_kind(kind: str, model: Optional[str], engine: Optional[str]) -> tuple:
    """(backend kind, note) for ``--backend kind``; auto rules in the module docstring."""
    if kind not in BACKEND_CHOICES:
        raise UserError(f"unknown backend {kind!r}; choose from {', '.join(BACKEND_CHOICES)}")
    if kind != "auto":
        return kind, None
    if engine:
        if tensorrt_available():
            return "tensorrt", None
        return "onnxruntime", (f"TensorRT / cuda-python not found here: --engine {engine} not "
                               "used, running ONNX Runtime on the CPU")
    if model and str(model).endswith(".pt"):
        return "torch", None
    return "onnxruntime", None


def create_backend(kind: str = "auto", model: Optional[str] = None, engine: Optional[str] = None,
                   plugins: Optional[str] = None, threads: Optional[int] = None,
                   device: str = "cpu",
                   log: Callable[[str], None] = lambda m: print(m, file=sys.stderr)
                   ) -> BackendChoice:
    """Build the backend; UserError (one line) when the model or a package is missing."""
    resolved, note = resolve_kind(kind, model, engine)
    notes = [note] if note else []
    if threads is not None and threads < 0:
        raise UserError(f"--threads must be >= 0, got {threads}")
    if resolved == "tensorrt":
        if not engine:
            raise UserError("--backend tensorrt needs --engine model.engine")
        from .trt_backend import TrtBackend

        b = TrtBackend(engine, plugins=plugins)
        size = f"{b.input_size[0]}x{b.input_size[1]}" if b.input_size else "dynamic"
        return BackendChoice(b, resolved, f"TensorRT engine {Path(engine).name} ({b.precision}, "
                             f"input {size}, decode+NMS plugins)", f"TensorRT {b.precision}",
                             notes, b.fit_size)
    if engine and kind != "auto":
        raise UserError(f"--engine is for --backend tensorrt (or auto), not {resolved}")
    if resolved == "torch":
        path = model
        if path is not None and not str(path).endswith(".pt"):
            raise UserError(f"--backend torch takes a PyTorch checkpoint (.pt), got {path}")
        from ..checkpoint import load_model  # imports torch
        import torch

        from .torch_backend import TorchBackend

        if threads:
            torch.set_num_threads(int(threads))
        net, _ = load_model(path)
        b = TorchBackend(net, device)
        name = Path(path).name if path else "shipped oscar-edge.pt"
        return BackendChoice(b, resolved, f"PyTorch {torch.__version__} {device} ({name}, "
                             f"{net.preset.name})", f"PyTorch {device}", notes)
    # ONNX Runtime
    path = Path(model) if model else SHIPPED_ONNX
    if str(path).endswith(".pt"):
        raise UserError(f"{path} is a PyTorch checkpoint: use --backend torch, or an .onnx model")
    if model is None and not path.is_file():
        raise UserError(f"the shipped ONNX model is missing: {path}; create it with `python "
                        f"export/export_onnx.py --out {os.path.relpath(path)}` (export extra), "
                        "or pass --model model.onnx")
    if importlib.util.find_spec("onnxruntime") is None:
        raise UserError("the ONNX Runtime backend needs the 'onnxruntime' package: "
                        "pip install onnxruntime")
    import onnxruntime

    from .ort_backend import OrtBackend

    b = OrtBackend(path, threads=threads or None)
    thr = f"{threads} thread{'s' if threads != 1 else ''}" if threads else "default threads"
    return BackendChoice(b, "onnxruntime", f"ONNX Runtime {onnxruntime.__version__} CPU "
                         f"({path.name}, {b.precision}, {thr})", f"ONNX Runtime CPU {b.precision}",
                         notes)
