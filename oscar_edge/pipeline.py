"""Frame -> detections: preprocessing, a backend's raw outputs, decode + NMS, back-mapping.

The same object serves ``oscar-edge evaluate`` and the runtime, so both use one
preprocessing and one decode. No torch here: backends are plain callables.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Sequence, Tuple

import numpy as np

from . import postprocess as pp
from .preprocess import FIT_SIZE, Letterbox, prepare

# A backend maps a (1, 3, H, W) float32 batch to the five raw outputs (numpy, batch axis kept).
InferFn = Callable[[np.ndarray], Sequence[np.ndarray]]
POSTPROCESS_CHOICES = ("auto", "numpy", "native")


def select_postprocess(kind: str = "auto") -> Tuple[str, Callable]:
    """(name, function with the signature of ``postprocess.postprocess_image``) for ``kind``:
    "native" the C++ library (oscar_edge.native; raises NativeLibraryError when it cannot be
    loaded), "numpy" the reference, "auto" the native library if it loads, else the reference.
    Both give the same detections."""
    if kind not in POSTPROCESS_CHOICES:
        raise ValueError(f"postprocess must be one of {POSTPROCESS_CHOICES}, got {kind!r}")
    if kind != "numpy":
        from .native import NativeLibraryError, NativePostprocessor

        try:
            return "native", NativePostprocessor().postprocess_image
        except NativeLibraryError:
            if kind == "native":
                raise
    return "numpy", pp.postprocess_image


@dataclass
class Detections:
    """Detections of one frame in original pixels: boxes (N, 4) xyxy, scores (N,), best first."""

    boxes: np.ndarray
    scores: np.ndarray
    letterbox: Letterbox


class Detector:
    """Run a backend on grey frames with the spec's pre- and post-processing."""

    def __init__(self, infer: InferFn, fit: Tuple[int, int] = FIT_SIZE,
                 input_size: Optional[Tuple[int, int]] = None, score_thr: float = pp.SCORE_THR,
                 topk: int = pp.PRE_NMS_TOPK, iou_thr: float = pp.IOU_THR,
                 max_det: int = pp.MAX_DET, postprocess: str = "auto") -> None:
        self.infer = infer
        self.fit = fit
        self.input_size = input_size
        self.post = dict(score_thr=score_thr, topk=topk, iou_thr=iou_thr, max_det=max_det)
        # Decode + NMS: "auto" (native C++ library if it loads, else numpy), "numpy", "native".
        self.postprocess_backend, self._postprocess_image = select_postprocess(postprocess)

    def preprocess(self, grey: np.ndarray) -> Tuple[np.ndarray, Letterbox]:
        return prepare(grey, fit=self.fit, input_size=self.input_size)

    def postprocess(self, outputs: Sequence[np.ndarray], box: Letterbox) -> Detections:
        """Outputs of one image (batch axis 1) -> detections in original pixels."""
        single = tuple(np.asarray(o)[0] for o in outputs)
        boxes, scores = self._postprocess_image(single, clamp_hw=box.resized, **self.post)
        return Detections(box.to_original(boxes), scores, box)

    def __call__(self, grey: np.ndarray) -> Detections:
        x, box = self.preprocess(grey)
        return self.postprocess(self.infer(x[None]), box)
