"""Frame -> detections: preprocessing, a backend's raw outputs, decode + NMS, back-mapping.

The same object serves ``oscar-edge evaluate`` and the runtime, so both use one
preprocessing and one decode. No torch here: backends are plain callables.

Two kinds of backend fit (``oscar_edge.backends.base``): those returning the five raw head
outputs (ONNX Runtime, PyTorch: decode + NMS run here) and those whose model already ends in
decode + NMS (a TensorRT engine with the OscarDecode/OscarNMS plugins: ``(num_detections,
boxes, scores)`` in network pixels; here they are only clamped to the image content and mapped
back). The runtime calls the three steps (:meth:`Detector.preprocess`, :meth:`Detector.run`,
:meth:`Detector.postprocess`) from different threads; ``__call__`` chains them.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Sequence, Tuple

import numpy as np

from . import postprocess as pp
from .backends.base import (FINAL_DETECTIONS, FRAME_DETECTIONS, RAW_OUTPUTS, fixed_input_size,
                            output_kind)
from .preprocess import FIT_SIZE, Letterbox, frame_input_size, letterbox_for, prepare

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


def select_peak_refine(kind: str = "auto") -> Callable:
    """The peak refinement with the signature of ``postprocess.peak_refine``: the native
    library's (``kind`` "native", or "auto" when it loads) or the numpy reference; same results."""
    name, fn = select_postprocess(kind)
    return fn.__self__.peak_refine if name == "native" else pp.peak_refine


@dataclass
class Detections:
    """Detections of one frame in original pixels: boxes (N, 4) xyxy, scores (N,), best first."""

    boxes: np.ndarray
    scores: np.ndarray
    letterbox: Letterbox


class Detector:
    """Run a backend on grey frames with the spec's pre- and post-processing.

    ``input_size`` (height, width): letterbox every frame into this fixed network input; by
    default the backend's own fixed size (a static engine), else the keep-ratio ``fit``.
    ``small_input`` (the runtime's default): without a fixed size, frames within
    ``preprocess.SMALL_FRAME_MAX`` go into ``SMALL_FRAME_INPUT`` instead of the fit.
    """

    def __init__(self, infer: InferFn, fit: Tuple[int, int] = FIT_SIZE,
                 input_size: Optional[Tuple[int, int]] = None, score_thr: float = pp.SCORE_THR,
                 topk: int = pp.PRE_NMS_TOPK, iou_thr: float = pp.IOU_THR,
                 max_det: int = pp.MAX_DET, postprocess: str = "auto",
                 peak_refine: bool = pp.PEAK_REFINE_DEFAULT, small_input: bool = False) -> None:
        self.infer = infer
        self.fit = fit
        self.output_kind = output_kind(infer)
        fixed = fixed_input_size(infer)
        if input_size is not None and fixed is not None and tuple(input_size) != fixed:
            raise ValueError(f"the model needs a fixed {fixed[0]}x{fixed[1]} input; "
                             f"got input_size {input_size[0]}x{input_size[1]}")
        self.input_size = tuple(input_size) if input_size is not None else fixed
        self.small_input = bool(small_input) and self.input_size is None
        self.post = dict(score_thr=score_thr, topk=topk, iou_thr=iou_thr, max_det=max_det)
        if self.output_kind == RAW_OUTPUTS:
            # Decode + NMS: "auto" (native C++ library if it loads, else numpy), "numpy",
            # "native".
            self.postprocess_backend, self._postprocess_image = select_postprocess(postprocess)
        elif self.output_kind == FRAME_DETECTIONS:  # everything runs on the server
            self.postprocess_backend, self._postprocess_image = "server", None
            served = bool(getattr(infer, "peak_refine", peak_refine))
            if bool(peak_refine) != served:
                raise ValueError(f"the server runs with the peak refinement "
                                 f"{'on' if served else 'off'}; set it when writing the "
                                 "repository (oscar-edge export-triton --peak-refine)")
            self.peak_refine = served
            self._refine_in_model = False
            self._peak_refine_cpu = None
            return
        else:  # decode + NMS are inside the model (TensorRT plugins)
            self.postprocess_backend, self._postprocess_image = "in-model", None
        # Peak refinement (README, "Peak-centred localization"): after decode + NMS here, or inside
        # an engine that ends in OscarPeakRefine (which then takes the letterbox input).
        self.peak_refine = bool(peak_refine)
        self._refine_in_model = bool(getattr(infer, "peak_refine", False))
        if self._refine_in_model and not self.peak_refine:
            raise ValueError("the engine ends in the OscarPeakRefine plugin (built with "
                             "--peak-refine on); rebuild it with --peak-refine off to run "
                             "without the peak refinement")
        self._peak_refine_cpu = None
        if self.peak_refine and self.output_kind == FINAL_DETECTIONS and not self._refine_in_model:
            self._peak_refine_cpu = select_peak_refine(postprocess)

    def preprocess(self, grey: np.ndarray) -> Tuple[np.ndarray, Letterbox]:
        size = frame_input_size(grey.shape[0], grey.shape[1], self.input_size, self.small_input)
        if self.output_kind == FRAME_DETECTIONS:  # the server prepares; the frame travels
            return grey, letterbox_for(grey.shape[0], grey.shape[1], self.fit, size)
        return prepare(grey, fit=self.fit, input_size=size)

    def run(self, x: np.ndarray, box: Optional[Letterbox] = None) -> Sequence[np.ndarray]:
        """The backend on one prepared (3, H, W) input; outputs keep the batch axis (1). An
        engine ending in OscarPeakRefine also gets the frame's letterbox row (``box``)."""
        if self.output_kind == FRAME_DETECTIONS:
            return self.infer(x[None])
        if self._refine_in_model:
            if box is None:
                raise ValueError("this engine refines on the image peak: run(x, box) needs the "
                                 "frame's Letterbox")
            return self.infer(x[None], letterbox=box.tensor()[None])
        return self.infer(x[None])

    def postprocess(self, outputs: Sequence[np.ndarray], box: Letterbox,
                    x: Optional[np.ndarray] = None) -> Detections:
        """Outputs of one image (batch axis 1) -> detections in original pixels. ``x`` (the
        prepared input) is needed when the peak refinement runs here, not in the model."""
        if self.output_kind == FRAME_DETECTIONS:
            det = np.asarray(outputs[0], dtype=np.float32).reshape(-1, 5)
            return Detections(det[:, :4].copy(), det[:, 4].copy(), box)
        refine_here = self.peak_refine and not self._refine_in_model
        if refine_here and x is None:
            raise ValueError("the peak refinement needs the prepared input: "
                             "postprocess(outputs, box, x)")
        if self.output_kind == FINAL_DETECTIONS:
            det = self._final_detections(outputs, box)
            if refine_here:  # an engine without OscarPeakRefine: refine its boxes here
                net = self._peak_refine_cpu(self._final_boxes(outputs, box), x, box.resized,
                                            (box.scale_y, box.scale_x))
                det = Detections(box.to_original(net), det.scores, box)
            return det
        single = tuple(np.asarray(o)[0] for o in outputs)
        extra = dict(image=x, scale_yx=(box.scale_y, box.scale_x)) if refine_here else {}
        boxes, scores = self._postprocess_image(single, clamp_hw=box.resized, **self.post,
                                                **extra)
        return Detections(box.to_original(boxes), scores, box)

    @staticmethod
    def _final_boxes(outputs: Sequence[np.ndarray], box: Letterbox) -> np.ndarray:
        """Kept boxes of (num_detections, boxes, scores) in network pixels, clamped to the
        image content (as _final_detections clamps them)."""
        n = int(np.asarray(outputs[0]).reshape(-1)[0])
        b = np.array(np.asarray(outputs[1])[0, :n], dtype=np.float32).reshape(-1, 4)
        h, w = box.resized
        b[:, 0::2] = np.clip(b[:, 0::2], np.float32(0), np.float32(w))
        b[:, 1::2] = np.clip(b[:, 1::2], np.float32(0), np.float32(h))
        return b

    @staticmethod
    def _final_detections(outputs: Sequence[np.ndarray], box: Letterbox) -> Detections:
        """(num_detections, boxes, scores) of a model that ends in NMS -> Detections.

        The plugins clamp boxes to the whole network input; here they are clamped to the image
        content (``box.resized``), as the CPU path clamps before NMS. Boxes that reach into the
        padding can therefore suppress slightly differently than on the CPU path."""
        if len(outputs) != 3:
            raise ValueError("a detections backend returns (num_detections, boxes, scores), "
                             f"got {len(outputs)} outputs")
        num, boxes, scores = (np.asarray(o) for o in outputs)
        n = int(num.reshape(-1)[0])
        b = np.array(boxes[0, :n], dtype=np.float32).reshape(-1, 4)
        s = np.array(scores[0, :n], dtype=np.float32).reshape(-1)
        h, w = box.resized
        b[:, 0::2] = np.clip(b[:, 0::2], np.float32(0), np.float32(w))
        b[:, 1::2] = np.clip(b[:, 1::2], np.float32(0), np.float32(h))
        return Detections(box.to_original(b), s, box)

    def __call__(self, grey: np.ndarray) -> Detections:
        x, box = self.preprocess(grey)
        return self.postprocess(self.run(x, box), box, x)
