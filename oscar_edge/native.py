"""ctypes binding of the native CPU decode + NMS library (``liboscar_postprocess.so``).

The library is the C++ twin of :mod:`oscar_edge.postprocess` (spec section 6, and the peak
refinement: README.md, "Peak-centred localization") and of the TensorRT plugins ``OscarDecode`` /
``OscarNMS`` /
``OscarPeakRefine``: same rules, same float32 arithmetic
(``cpp_plugins/common/oscar_math.h``), same results. ``pip install .`` builds it into the
package; ``python setup.py build_ext --inplace`` builds it in a checkout. The environment
variable ``OSCAR_EDGE_NATIVE_LIB`` points at another build (e.g. one made by CMake).

Only ctypes and numpy here (no torch). :class:`NativePostprocessor` keeps its output buffers
and the library's scratch workspace between calls, so after the first call of a given size no
buffer is allocated (:meth:`NativePostprocessor.postprocess_image_views` returns views of those
buffers; :meth:`NativePostprocessor.postprocess_image` copies the few kept rows, like the
reference returns new arrays). One instance must not be used from two threads at once.
"""
from __future__ import annotations

import ctypes
import os
import sys
from pathlib import Path
from typing import List, Optional, Sequence, Tuple, Union

import numpy as np

from . import postprocess as pp
from .errors import UserError

ENV_VAR = "OSCAR_EDGE_NATIVE_LIB"
LIB_FILENAME = "liboscar_postprocess.dll" if os.name == "nt" else "liboscar_postprocess.so"
ABI_VERSION = 2  # OSCAR_ABI_VERSION in cpp_plugins/cpu/oscar_postprocess.h

_P = ctypes.c_void_p
_I32 = ctypes.c_int32
_F32 = ctypes.c_float
_SIZE = ctypes.c_size_t
_SIGNATURES = {
    "oscar_abi_version": ([], _I32),
    "oscar_status_string": ([_I32], ctypes.c_char_p),
    "oscar_workspace_size": ([_I32, _I32, _I32], _SIZE),
    "oscar_sigmoid": ([_P, _P, ctypes.c_int64], None),
    "oscar_decode": ([_P] * 5 + [_I32] * 5 + [_P, _F32, _I32, _P, _P, _P, _P, _SIZE], _I32),
    "oscar_nms": ([_P, _P, _P, _I32, _I32, _F32, _I32, _P, _P, _P, _P, _P, _SIZE], _I32),
    "oscar_peak_refine": ([_P, _I32, _I32, _I32, _I32, _P, _P, _I32, _P, _I32, _P], _I32),
    "oscar_postprocess": (
        [_P] * 5 + [_I32] * 5 + [_P, _F32, _I32, _F32, _I32]
        + [_P, _I32, _I32, _I32, _P, _I32]  # image, channels, height, width, scale_yx, flags
        + [_P, _P, _P, _P, _SIZE], _I32),
}
PEAK_REFINE = 1    # OSCAR_PEAK_REFINE
PEAK_CENTROID = 2  # OSCAR_PEAK_CENTROID
_LOADED: dict = {}

ClampHW = Union[Tuple[float, float], Sequence[Tuple[float, float]], np.ndarray, None]
ScaleYX = Union[Tuple[float, float], Sequence[Tuple[float, float]], np.ndarray, None]


class NativeLibraryError(UserError):
    """The native library is missing, cannot be loaded, or is of another ABI version."""


def default_library_path() -> Path:
    """Where the library is looked for: ``$OSCAR_EDGE_NATIVE_LIB`` if set, else inside this
    package, else in an ``oscar_edge`` folder on ``sys.path`` (a checkout imported with
    ``python -m pytest`` next to a ``pip install .`` of the same version)."""
    override = os.environ.get(ENV_VAR)
    if override:
        return Path(override)
    here = Path(__file__).resolve().parent / LIB_FILENAME
    if here.is_file():
        return here
    for entry in sys.path:
        other = Path(entry or ".") / "oscar_edge" / LIB_FILENAME
        if other.is_file():
            return other.resolve()
    return here


def load_library(path: Union[str, Path, None] = None) -> ctypes.CDLL:
    """Load (once per path) and return the library, with argument types declared.

    Raises:
        NativeLibraryError: naming the missing file or the loader's error, and how to build it.
    """
    lib_path = Path(path) if path is not None else default_library_path()
    key = str(lib_path)
    if key in _LOADED:
        return _LOADED[key]
    source = ("given path" if path is not None
              else f"${ENV_VAR}" if os.environ.get(ENV_VAR) else "the installed package")
    how = ("build it with `pip install .` (or `python setup.py build_ext --inplace` in a "
           f"checkout), or set {ENV_VAR} to a built {LIB_FILENAME}")
    if not lib_path.is_file():
        raise NativeLibraryError(
            f"oscar-edge native library not found: {lib_path} (from {source}) does not exist; "
            f"{how}")
    try:
        lib = ctypes.CDLL(str(lib_path))
    except OSError as exc:
        raise NativeLibraryError(
            f"oscar-edge native library {lib_path} could not be loaded ({exc}); {how}") from None
    missing = [name for name in _SIGNATURES if not hasattr(lib, name)]
    if missing:
        raise NativeLibraryError(
            f"{lib_path} is not the oscar-edge native library (missing {', '.join(missing)}); "
            f"{how}")
    for name, (argtypes, restype) in _SIGNATURES.items():
        fn = getattr(lib, name)
        fn.argtypes = argtypes
        fn.restype = restype
    version = lib.oscar_abi_version()
    if version != ABI_VERSION:
        raise NativeLibraryError(
            f"{lib_path} has ABI version {version}, this oscar_edge expects {ABI_VERSION}; {how}")
    _LOADED[key] = lib
    return lib


def is_available(path: Union[str, Path, None] = None) -> bool:
    """True when :func:`load_library` succeeds."""
    try:
        load_library(path)
    except NativeLibraryError:
        return False
    return True


def _f32(a) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=np.float32)


def _ptr(a: np.ndarray) -> int:
    return a.ctypes.data


def _image_chw(image, batched: bool) -> Tuple[np.ndarray, int, int, int]:
    """The network input as a C-contiguous float32 array (no copy when it already is one) and
    its (channels, height, width); (H, W) / (B, H, W) count as one channel."""
    img = _f32(image)
    want = 4 if batched else 3
    if img.ndim == want - 1:
        img = img[:, None] if batched else img[None]
    if img.ndim != want or min(img.shape[-3:]) < 1:
        raise ValueError(f"image must be {'(B, C, H, W)' if batched else '(C, H, W) or (H, W)'}"
                         f", got shape {np.shape(image)}")
    c, h, w = img.shape[-3:]
    return img, int(c), int(h), int(w)


def _grid(outputs: Sequence[np.ndarray], batched: bool) -> Tuple[int, int, int, int]:
    if len(outputs) != 5:
        raise ValueError(f"expected the five raw outputs {pp.OUTPUT_NAMES}, got {len(outputs)}")
    lead = 1 if batched else 0
    rs, rb, rn, cs, cb = outputs
    h4, w4 = rs.shape[-2:]
    h8, w8 = cs.shape[-2:]
    want = [(1, h4, w4), (4, h4, w4), (1, h4, w4), (1, h8, w8), (4, h8, w8)]
    for name, arr, shape in zip(pp.OUTPUT_NAMES, outputs, want):
        if arr.ndim != 3 + lead or tuple(arr.shape[lead:]) != shape:
            raise ValueError(f"{name} has shape {arr.shape}, expected {'(B, ' if batched else '('}"
                             f"{', '.join(map(str, shape))})")
    if (h4, w4) != (2 * h8, 2 * w8):
        raise ValueError(f"P2 grid {h4}x{w4} is not twice the P3 grid {h8}x{w8}")
    return int(h4), int(w4), int(h8), int(w8)


class NativePostprocessor:
    """Decode + NMS with the native library and buffers kept between calls.

    ``postprocess_image`` has the signature and results of
    :func:`oscar_edge.postprocess.postprocess_image`; the ``*_batch`` methods take the raw
    outputs with their batch axis and mirror the TensorRT plugins' outputs.
    """

    def __init__(self, library: Union[str, Path, None] = None) -> None:
        self.lib = load_library(library)
        self._ws = np.zeros(0, dtype=np.uint8)
        self._bufs: dict = {}

    # -- buffers -------------------------------------------------------------------------------
    def _workspace(self, h4: int, w4: int, topk: int) -> Tuple[int, int]:
        need = int(self.lib.oscar_workspace_size(h4, w4, topk))
        if need == 0:
            raise ValueError(f"invalid sizes for the native workspace: {h4}x{w4}, topk={topk}")
        if self._ws.nbytes < need:
            self._ws = np.zeros(need, dtype=np.uint8)
        return _ptr(self._ws), self._ws.nbytes

    def _buf(self, name: str, shape: Tuple[int, ...], dtype) -> np.ndarray:
        """A kept buffer of at least ``shape`` (grown, never shrunk), viewed as ``shape``."""
        size = int(np.prod(shape))
        buf = self._bufs.get(name)
        if buf is None or buf.size < size or buf.dtype != dtype:
            buf = np.zeros(max(size, 1), dtype=dtype)
            self._bufs[name] = buf
        return buf[:size].reshape(shape)

    def _check(self, status: int) -> None:
        if status != 0:
            message = self.lib.oscar_status_string(status).decode()
            raise ValueError(f"oscar native library: {message}")

    @staticmethod
    def _check_limits(topk: int, max_det: Optional[int] = None) -> None:
        if int(topk) < 1:
            raise ValueError(f"topk must be >= 1, got {topk}")
        if max_det is not None and int(max_det) < 1:
            raise ValueError(f"max_det must be >= 1, got {max_det}")

    def _clamp(self, clamp_hw: ClampHW, batch: int, h4: int, w4: int) -> np.ndarray:
        buf = self._buf("clamp", (batch, 2), np.float32)
        if clamp_hw is None:
            buf[:] = (pp.REFINE_STRIDE * h4, pp.REFINE_STRIDE * w4)
        else:
            buf[:] = np.asarray(clamp_hw, dtype=np.float32).reshape(-1, 2)
        return buf

    # -- one image ---------------------------------------------------------------------------
    def _peak_args(self, image, scale_yx, centroid, batch: int, batched: bool):
        """(image array to keep alive during the call, (image pointer, channels, height, width,
        scale pointer, flags) for oscar_postprocess)."""
        if image is None:
            return None, (None, 0, 0, 0, None, 0)
        img, c, h, w = _image_chw(image, batched)
        if batched and img.shape[0] != batch:
            raise ValueError(f"image has batch {img.shape[0]}, the outputs {batch}")
        scale = self._buf("scale", (batch, 2), np.float32)
        scale[:] = (1.0, 1.0) if scale_yx is None else \
            np.asarray(scale_yx, dtype=np.float32).reshape(-1, 2)
        flags = PEAK_REFINE | (PEAK_CENTROID if centroid else 0)
        return img, (_ptr(img), c, h, w, _ptr(scale), flags)

    def postprocess_image_views(
        self, outputs: Sequence[np.ndarray], clamp_hw: Tuple[float, float],
        score_thr: float = pp.SCORE_THR, topk: int = pp.PRE_NMS_TOPK,
        iou_thr: float = pp.IOU_THR, max_det: int = pp.MAX_DET,
        image: Optional[np.ndarray] = None, scale_yx: Tuple[float, float] = (1.0, 1.0),
        centroid: bool = pp.PEAK_CENTROID_DEFAULT,
    ) -> Tuple[np.ndarray, np.ndarray]:
        """As :meth:`postprocess_image`, returning views of kept buffers (valid until the next
        call on this object): no allocation of arrays once the buffers have their size."""
        self._check_limits(topk, max_det)
        rs, rb, rn, cs, cb = (_f32(o) for o in outputs)
        h4, w4, h8, w8 = _grid((rs, rb, rn, cs, cb), batched=False)
        ws, ws_size = self._workspace(h4, w4, topk)
        clamp = self._buf("clamp", (1, 2), np.float32)
        clamp[0, 0], clamp[0, 1] = clamp_hw
        img, peak = self._peak_args(image, scale_yx, centroid, 1, batched=False)
        num = self._buf("num", (1,), np.int32)
        boxes = self._buf("img_boxes", (max_det, 4), np.float32)
        scores = self._buf("img_scores", (max_det,), np.float32)
        self._check(self.lib.oscar_postprocess(
            _ptr(rs), _ptr(rb), _ptr(rn), _ptr(cs), _ptr(cb), 1, h4, w4, h8, w8, _ptr(clamp),
            score_thr, topk, iou_thr, max_det, *peak, _ptr(num), _ptr(boxes), _ptr(scores), ws,
            ws_size))
        del img  # (kept alive until the library returned)
        n = int(num[0])
        return boxes[:n], scores[:n]

    def postprocess_image(
        self, outputs: Sequence[np.ndarray], clamp_hw: Tuple[float, float],
        score_thr: float = pp.SCORE_THR, topk: int = pp.PRE_NMS_TOPK,
        iou_thr: float = pp.IOU_THR, max_det: int = pp.MAX_DET,
        image: Optional[np.ndarray] = None, scale_yx: Tuple[float, float] = (1.0, 1.0),
        centroid: bool = pp.PEAK_CENTROID_DEFAULT,
    ) -> Tuple[np.ndarray, np.ndarray]:
        """Decode + NMS (+ the peak refinement when ``image``, the network input (C, H, W), is
        given) for one image's five raw outputs (no batch axis), as
        :func:`oscar_edge.postprocess.postprocess_image`: boxes (N, 4) float32 in network
        pixels and scores (N,) float32, best first (new arrays)."""
        boxes, scores = self.postprocess_image_views(outputs, clamp_hw, score_thr, topk,
                                                     iou_thr, max_det, image, scale_yx, centroid)
        return boxes.copy(), scores.copy()

    def peak_refine(self, boxes: np.ndarray, image: np.ndarray, clamp_hw: Tuple[float, float],
                    scale_yx: Tuple[float, float] = (1.0, 1.0),
                    centroid: bool = pp.PEAK_CENTROID_DEFAULT) -> np.ndarray:
        """Rule 6 on one image, as :func:`oscar_edge.postprocess.peak_refine` (same arguments,
        same results): (N, 4) boxes in network pixels -> refined (N, 4) float32 (new array)."""
        b = _f32(boxes).reshape(-1, 4)
        img, c, h, w = _image_chw(image, batched=False)
        out = np.empty_like(b)
        lb = self._buf("peak_lb", (1, 4), np.float32)
        lb[0] = (clamp_hw[0], clamp_hw[1], scale_yx[0], scale_yx[1])
        num = self._buf("peak_num", (1,), np.int32)
        num[0] = len(b)
        self._check(self.lib.oscar_peak_refine(_ptr(img), 1, c, h, w, _ptr(b), _ptr(num), len(b),
                                               _ptr(lb), int(bool(centroid)), _ptr(out)))
        return out

    def peak_refine_batch(self, image: np.ndarray, boxes: np.ndarray, num: np.ndarray,
                          letterbox: Optional[np.ndarray] = None,
                          centroid: bool = pp.PEAK_CENTROID_DEFAULT) -> np.ndarray:
        """The OscarPeakRefine plugin's output (new array): image [B, C, H, W] (channel 0 is
        used), boxes [B, M, 4] and num_detections [B] (OscarNMS outputs), letterbox [B, 4]
        (content height, content width, scale_y, scale_x; None: (H, W, 1, 1)) -> refined boxes
        [B, M, 4] float32, zero rows past num_detections."""
        img, c, h, w = _image_chw(image, batched=True)
        b = _f32(boxes)
        n = np.ascontiguousarray(num, dtype=np.int32).reshape(-1)
        if b.ndim != 3 or b.shape[2] != 4 or b.shape[0] != img.shape[0] or n.shape != b.shape[:1]:
            raise ValueError(f"expected image [B,C,H,W], boxes [B,M,4], num [B]; got {img.shape}, "
                             f"{b.shape}, {n.shape}")
        lb = None
        if letterbox is not None:
            lb = _f32(letterbox).reshape(-1, 4)
            if lb.shape[0] != b.shape[0]:
                raise ValueError(f"letterbox must be [B, 4], got shape {np.shape(letterbox)}")
        out = np.empty_like(b)
        self._check(self.lib.oscar_peak_refine(
            _ptr(img), b.shape[0], c, h, w, _ptr(b), _ptr(n), b.shape[1],
            None if lb is None else _ptr(lb), int(bool(centroid)), _ptr(out)))
        return out

    # -- batches (plugin layouts) ------------------------------------------------------------
    def postprocess_batch(
        self, outputs: Sequence[np.ndarray], clamp_hw: ClampHW = None,
        score_thr: float = pp.SCORE_THR, topk: int = pp.PRE_NMS_TOPK,
        iou_thr: float = pp.IOU_THR, max_det: int = pp.MAX_DET,
        image: Optional[np.ndarray] = None, scale_yx: ScaleYX = None,
        centroid: bool = pp.PEAK_CENTROID_DEFAULT,
    ) -> List[Tuple[np.ndarray, np.ndarray]]:
        """Raw outputs with batch axis -> one (boxes, scores) pair per image (new arrays).
        ``clamp_hw``: one (h, w), one per image, or None for the network input size; ``image``
        [B, C, H, W] (the network input) turns the peak refinement on, with ``scale_yx`` one
        (scale_y, scale_x), one per image, or None for (1, 1)."""
        num, boxes, scores = self.postprocess_batch_padded(outputs, clamp_hw, score_thr, topk,
                                                           iou_thr, max_det, image, scale_yx,
                                                           centroid)
        return [(boxes[b, :n].copy(), scores[b, :n].copy()) for b, n in enumerate(num.tolist())]

    def postprocess_batch_padded(
        self, outputs: Sequence[np.ndarray], clamp_hw: ClampHW = None,
        score_thr: float = pp.SCORE_THR, topk: int = pp.PRE_NMS_TOPK,
        iou_thr: float = pp.IOU_THR, max_det: int = pp.MAX_DET,
        image: Optional[np.ndarray] = None, scale_yx: ScaleYX = None,
        centroid: bool = pp.PEAK_CENTROID_DEFAULT,
    ) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Decode + NMS (+ peak refinement with ``image``) with the end-to-end graph's outputs:
        num_detections [B] int32, boxes [B, max_det, 4], scores [B, max_det] float32 padded
        with zeros (views of kept buffers, valid until the next call)."""
        self._check_limits(topk, max_det)
        rs, rb, rn, cs, cb = (_f32(o) for o in outputs)
        h4, w4, h8, w8 = _grid((rs, rb, rn, cs, cb), batched=True)
        batch = rs.shape[0]
        ws, ws_size = self._workspace(h4, w4, topk)
        clamp = self._clamp(clamp_hw, batch, h4, w4)
        img, peak = self._peak_args(image, scale_yx, centroid, batch, batched=True)
        num = self._buf("b_num", (batch,), np.int32)
        boxes = self._buf("b_boxes", (batch, max_det, 4), np.float32)
        scores = self._buf("b_scores", (batch, max_det), np.float32)
        self._check(self.lib.oscar_postprocess(
            _ptr(rs), _ptr(rb), _ptr(rn), _ptr(cs), _ptr(cb), batch, h4, w4, h8, w8, _ptr(clamp),
            score_thr, topk, iou_thr, max_det, *peak, _ptr(num), _ptr(boxes), _ptr(scores), ws,
            ws_size))
        del img  # (kept alive until the library returned)
        return num, boxes, scores

    def decode_batch(
        self, outputs: Sequence[np.ndarray], clamp_hw: ClampHW = None,
        score_thr: float = pp.SCORE_THR, topk: int = pp.PRE_NMS_TOPK,
    ) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The OscarDecode plugin's outputs (new arrays): boxes [B, topk, 4] float32, scores
        [B, topk] float32 (final scores, in candidate order), count [B] int32; zero padded."""
        self._check_limits(topk)
        rs, rb, rn, cs, cb = (_f32(o) for o in outputs)
        h4, w4, h8, w8 = _grid((rs, rb, rn, cs, cb), batched=True)
        batch = rs.shape[0]
        ws, ws_size = self._workspace(h4, w4, topk)
        clamp = self._clamp(clamp_hw, batch, h4, w4)
        boxes = np.zeros((batch, topk, 4), np.float32)
        scores = np.zeros((batch, topk), np.float32)
        count = np.zeros((batch,), np.int32)
        self._check(self.lib.oscar_decode(
            _ptr(rs), _ptr(rb), _ptr(rn), _ptr(cs), _ptr(cb), batch, h4, w4, h8, w8, _ptr(clamp),
            score_thr, topk, _ptr(boxes), _ptr(scores), _ptr(count), ws, ws_size))
        return boxes, scores, count

    def nms_batch(
        self, boxes: np.ndarray, scores: np.ndarray, count: np.ndarray,
        iou_thr: float = pp.IOU_THR, max_det: int = pp.MAX_DET,
    ) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The OscarNMS plugin's outputs (new arrays) for candidates boxes [B, K, 4], scores
        [B, K], count [B]: num_detections [B] int32, boxes [B, max_det, 4], scores
        [B, max_det] float32 (zero padded) and the kept candidate rows [B, max_det] int32 (-1
        padded)."""
        self._check_limits(1, max_det)
        boxes = _f32(boxes)
        scores = _f32(scores)
        count = np.ascontiguousarray(count, dtype=np.int32)
        if boxes.ndim != 3 or boxes.shape[2] != 4 or scores.shape != boxes.shape[:2] \
                or count.shape != boxes.shape[:1]:
            raise ValueError(f"expected boxes [B,K,4], scores [B,K], count [B]; got {boxes.shape}, "
                             f"{scores.shape}, {count.shape}")
        batch, k = boxes.shape[:2]
        ws, ws_size = self._workspace(0, 0, max(k, 1))
        num = np.zeros((batch,), np.int32)
        out_boxes = np.zeros((batch, max_det, 4), np.float32)
        out_scores = np.zeros((batch, max_det), np.float32)
        index = np.full((batch, max_det), -1, np.int32)
        self._check(self.lib.oscar_nms(
            _ptr(boxes), _ptr(scores), _ptr(count), batch, k, iou_thr, max_det, _ptr(num),
            _ptr(out_boxes), _ptr(out_scores), _ptr(index), ws, ws_size))
        return num, out_boxes, out_scores, index

    def sigmoid(self, x: np.ndarray) -> np.ndarray:
        """The library's float32 sigmoid (bit-identical to ``postprocess.sigmoid``)."""
        x = _f32(x)
        y = np.empty_like(x)
        self.lib.oscar_sigmoid(_ptr(x), _ptr(y), x.size)
        return y
