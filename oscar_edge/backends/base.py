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
    - ``FRAME_DETECTIONS`` ("frames"): the whole detector runs elsewhere (a Triton server,
      ``oscar_edge.backends.triton_backend``): the call takes a (B, H, W) uint8 batch of grey
      frames, not a prepared input, and returns one (N, 5) float32 array per frame
      (x1, y1, x2, y2 in original pixels, score), best first. Such a backend says its
      ``fit_size`` / ``input_size`` and ``peak_refine`` (what the server does) as attributes.
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
FRAME_DETECTIONS = "frames"
OUTPUT_KINDS = (RAW_OUTPUTS, FINAL_DETECTIONS, FRAME_DETECTIONS)


class FrameDropped(Exception):
    """A backend could not process this frame for a passing reason (its server is unreachable
    or too slow) and goes on with the next one; the runtime counts the frame as dropped."""


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
