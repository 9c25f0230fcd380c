"""What every inference backend offers, and the two kinds of output a backend may return.

A backend is a callable ``backend(x)`` on a (B, 3, H, W) float32 batch (the output of
``oscar_edge.preprocess.prepare`` with a batch axis) with these attributes:

* ``name``: short label ("onnxruntime", "torch", "tensorrt").
* ``output_kind``: what the call returns --
    - ``RAW_OUTPUTS`` ("raw"): the five raw head outputs of ``postprocess.OUTPUT_NAMES``
      (batch axis kept); ``pipeline.Detector`` runs decode + NMS on them (native C++ library
      or the numpy reference). ONNX Runtime and PyTorch backends.
    - ``FINAL_DETECTIONS`` ("detections"): decode + NMS already done inside the model, as the
      OscarDecode/OscarNMS TensorRT plugins do: ``(num_detections [B] int32,
      boxes [B, M, 4] float32 xyxy in network-input pixels, scores [B, M] float32)``, zero
      padded past num_detections. ``Detector`` only clamps and maps boxes back.
  A plain callable without the attribute counts as "raw".
* ``input_size`` (optional): a fixed (height, width) network input the model needs (an engine
  built for a static shape); None or missing = any multiple of 32 (keep-ratio fit).
* ``close()`` (optional): release sessions / device memory.
No torch here.
"""
from __future__ import annotations

from typing import Optional, Protocol, Sequence, Tuple, runtime_checkable

import numpy as np

RAW_OUTPUTS = "raw"
FINAL_DETECTIONS = "detections"
OUTPUT_KINDS = (RAW_OUTPUTS, FINAL_DETECTIONS)


@runtime_checkable
class Backend(Protocol):
    name: str
    output_kind: str

    def __call__(self, x: np.ndarray) -> Sequence[np.ndarray]: ...


def output_kind(backend) -> str:
    """The backend's ``output_kind`` ("raw" for plain callables); ValueError if unknown."""
    kind = getattr(backend, "output_kind", RAW_OUTPUTS)
    if kind not in OUTPUT_KINDS:
        raise ValueError(f"backend output_kind must be one of {OUTPUT_KINDS}, got {kind!r}")
    return kind


def fixed_input_size(backend) -> Optional[Tuple[int, int]]:
    """The backend's fixed (height, width) network input, or None."""
    size = getattr(backend, "input_size", None)
    return None if size is None else (int(size[0]), int(size[1]))


def close_backend(backend) -> None:
    """Call ``backend.close()`` when it has one."""
    close = getattr(backend, "close", None)
    if callable(close):
        close()
