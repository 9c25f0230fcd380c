"""Decode and NMS: the numpy reference of spec section 6 (no torch).

This module defines the post-processing semantics once. The C++ CPU library and the CUDA
kernels in ``cpp_plugins/`` implement the same rules and are tested against this file.

Raw head outputs for one image (the model's five outputs without the batch axis):
    refine_score (1, H4, W4)  modulated refine logit
    refine_bbox  (4, H4, W4)  deltas (dx1, dy1, dx2, dy2) in units of REFINE_STRIDE
    refine_noco  (1, H4, W4)  NoCo logit
    coarse_score (1, H8, W8)  modulated coarse logit
    coarse_bbox  (4, H8, W8)  log-distances: log of (l, t, r, b) in input pixels (the exp() of
                              spec section 2 is done here, rule 1; see models/head.py)
with H4 = 2 * H8 and W4 = 2 * W8 (inputs are multiples of 32).

Rules (all arithmetic in float32):
1. Anchor of P2 point (i, j): the coarse box of P3 point (i // 2, j // 2) (nearest-exact
   resize by 2), decoded at px = (j // 2 + 0.5) * 8, py = (i // 2 + 0.5) * 8 as
   (px - l, py - t, px + r, py + b), where (l, t, r, b) = exp_f32(coarse_bbox).
2. Candidate score = sigmoid(refine logit); keep points with score > SCORE_THR, then the
   first PRE_NMS_TOPK by that score. Tie rule: equal scores keep the lower flat index
   (i * W4 + j) first (a stable descending sort).
3. Box = anchor + 4 * delta, each coordinate clamped to [0, width] / [0, height] of the
   clamp size (the image content inside the network input).
4. Final score = sigmoid(refine) * sigmoid(coarse logit at (i // 2, j // 2)) * sigmoid(noco).
5. NMS: candidates in descending final score (ties: lower candidate rank first); a box is
   suppressed when its IoU with an already kept box is > IOU_THR; at most MAX_DET kept.
   IoU uses continuous coordinates (no +1); a pair whose union is 0 has IoU 0.
6. Peak refinement (optional, after NMS; :func:`peak_refine`; README.md, "Peak-centred
   localization"): each kept box is
   moved so that its centre sits on the brightest pixel of channel 0 of the network input
   inside it, keeping its size (shrunk symmetrically only where it would cross the image
   content). Exact rules in :func:`peak_refine` and cpp_plugins/README.md (OscarPeakRefine).
"""
from __future__ import annotations

from typing import Optional, Tuple

import numpy as np

COARSE_STRIDE: int = 8
REFINE_STRIDE: int = 4
SCORE_THR: float = 0.05
PRE_NMS_TOPK: int = 1000
IOU_THR: float = 0.5
MAX_DET: int = 100
# Rule 6 (peak refinement, README.md "Peak-centred localization"): on by default, with the
# 3x3 centroid (chosen on val_full:
# cpp_plugins/README.md "OscarPeakRefine", benchmarks/peak_refine_val.py).
PEAK_REFINE_DEFAULT: bool = True
PEAK_CENTROID_DEFAULT: bool = True

OUTPUT_NAMES: Tuple[str, ...] = (
    "refine_score", "refine_bbox", "refine_noco", "coarse_score", "coarse_bbox",
)


# exp() in float32 from IEEE +, -, * and exact power-of-two scaling only, the same operation
# sequence as oscar_expf in cpp_plugins/common/oscar_math.h (np.exp is a SIMD implementation
# that differs by an ULP between CPUs, so equal-score ties and the threshold could otherwise
# differ between this reference, the C++ library and the CUDA kernels).
_F = np.float32
_EXP_LOG2E = _F(float.fromhex("0x1.715476p+0"))
_EXP_ROUND = _F(float.fromhex("0x1.8p+23"))
_EXP_LN2_HI = _F(float.fromhex("0x1.63p-1"))
_EXP_LN2_LO = _F(float.fromhex("-0x1.bd0106p-13"))
_EXP_POLY = tuple(_F(float.fromhex(h)) for h in (  # 1/7! ... 1/2!, 1, 1 (Horner order)
    "0x1.a01a02p-13", "0x1.6c16c2p-10", "0x1.111112p-7", "0x1.555556p-5", "0x1.555556p-3",
    "0x1.0p-1", "0x1.0p+0", "0x1.0p+0"))


def _pow2(k: np.ndarray) -> np.ndarray:
    """2**k (int32 k in [-126, 127]) as float32, from the bit pattern."""
    return ((k + np.int32(127)) << np.int32(23)).astype(np.int32).view(np.float32)


def exp_f32(x: np.ndarray) -> np.ndarray:
    """float32 exp (about 1 ULP), bit-identical to oscar_expf of the C++/CUDA code."""
    x = np.asarray(x, dtype=np.float32)
    nan = np.isnan(x)
    xc = np.clip(np.where(nan, _F(0), x), _F(-104), _F(89))
    n = (xc * _EXP_LOG2E + _EXP_ROUND) - _EXP_ROUND
    r = (xc - n * _EXP_LN2_HI) - n * _EXP_LN2_LO
    p = _EXP_POLY[0]
    for c in _EXP_POLY[1:]:
        p = p * r + c
    ni = n.astype(np.int32)
    n1 = ni >> np.int32(1)
    with np.errstate(over="ignore", under="ignore"):
        y = (p * _pow2(n1)) * _pow2(ni - n1)
    return np.where(nan, x, y).astype(np.float32)


def sigmoid(x: np.ndarray) -> np.ndarray:
    """float32 logistic function, 1 / (1 + exp(-x)), with exp = :func:`exp_f32`."""
    x = np.asarray(x, dtype=np.float32)
    return (np.float32(1.0) / (np.float32(1.0) + exp_f32(-x))).astype(np.float32)


def coarse_anchors(coarse_bbox: np.ndarray) -> np.ndarray:
    """(4, H8, W8) log-distances -> (4, H4, W4) anchor boxes xyxy on the P2 grid."""
    _, h8, w8 = coarse_bbox.shape
    py = ((np.arange(h8, dtype=np.float32) + np.float32(0.5)) * np.float32(COARSE_STRIDE))
    px = ((np.arange(w8, dtype=np.float32) + np.float32(0.5)) * np.float32(COARSE_STRIDE))
    d = exp_f32(coarse_bbox)
    boxes = np.stack([
        px[None, :] - d[0], py[:, None] - d[1], px[None, :] + d[2], py[:, None] + d[3],
    ]).astype(np.float32)
    return boxes.repeat(2, axis=1).repeat(2, axis=2)


def decode_image(
    refine_score: np.ndarray,
    refine_bbox: np.ndarray,
    refine_noco: np.ndarray,
    coarse_score: np.ndarray,
    coarse_bbox: np.ndarray,
    clamp_hw: Tuple[int, int],
    score_thr: float = SCORE_THR,
    topk: int = PRE_NMS_TOPK,
) -> Tuple[np.ndarray, np.ndarray]:
    """Decode one image's raw outputs into candidates.

    Returns:
        boxes (K, 4) float32 xyxy in network pixels, scores (K,) float32 final scores,
        in candidate order (descending refine score, rule 2). K <= topk.
    """
    _, h4, w4 = refine_score.shape
    _, h8, w8 = coarse_score.shape
    if (h4, w4) != (2 * h8, 2 * w8):
        raise ValueError(f"P2 grid {h4}x{w4} is not twice the P3 grid {h8}x{w8}")
    s_ref = sigmoid(refine_score.reshape(-1))
    cand = np.flatnonzero(s_ref > np.float32(score_thr))
    order = np.argsort(-s_ref[cand], kind="stable")[:topk]
    idx = cand[order]
    ii, jj = idx // w4, idx % w4
    anchors = coarse_anchors(coarse_bbox)[:, ii, jj]
    deltas = refine_bbox.astype(np.float32)[:, ii, jj]
    boxes = (anchors + np.float32(REFINE_STRIDE) * deltas).T.astype(np.float32)
    h, w = clamp_hw
    boxes[:, 0::2] = np.clip(boxes[:, 0::2], np.float32(0), np.float32(w))
    boxes[:, 1::2] = np.clip(boxes[:, 1::2], np.float32(0), np.float32(h))
    s_coarse = sigmoid(coarse_score[0, ii // 2, jj // 2])
    s_noco = sigmoid(refine_noco.reshape(-1)[idx])
    scores = (s_ref[idx] * s_coarse * s_noco).astype(np.float32)
    return boxes, scores


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of one box a (4,) with boxes b (N, 4), float32, 0 where the union is 0."""
    ix1 = np.maximum(a[0], b[:, 0])
    iy1 = np.maximum(a[1], b[:, 1])
    ix2 = np.minimum(a[2], b[:, 2])
    iy2 = np.minimum(a[3], b[:, 3])
    inter = np.maximum(ix2 - ix1, np.float32(0)) * np.maximum(iy2 - iy1, np.float32(0))
    area_a = (a[2] - a[0]) * (a[3] - a[1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a + area_b - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = np.where(union > 0, inter / union, np.float32(0))
    return iou.astype(np.float32)


def nms(boxes: np.ndarray, scores: np.ndarray, iou_thr: float = IOU_THR,
        max_det: int = MAX_DET) -> np.ndarray:
    """Greedy NMS (rule 5). Returns the kept indices into ``boxes``, best first."""
    order = np.argsort(-scores, kind="stable")
    keep = []
    suppressed = np.zeros(len(order), dtype=bool)
    for r, i in enumerate(order):
        if suppressed[r]:
            continue
        keep.append(i)
        if len(keep) >= max_det:
            break
        rest = order[r + 1:]
        suppressed[r + 1:] |= box_iou(boxes[i], boxes[rest]) > np.float32(iou_thr)
    return np.asarray(keep, dtype=np.int64)


def postprocess_image(
    outputs: Tuple[np.ndarray, ...],
    clamp_hw: Tuple[int, int],
    score_thr: float = SCORE_THR,
    topk: int = PRE_NMS_TOPK,
    iou_thr: float = IOU_THR,
    max_det: int = MAX_DET,
    image: Optional[np.ndarray] = None,
    scale_yx: Tuple[float, float] = (1.0, 1.0),
    centroid: bool = PEAK_CENTROID_DEFAULT,
) -> Tuple[np.ndarray, np.ndarray]:
    """Decode + NMS for one image's five raw outputs (no batch axis); with ``image`` (the
    network input (C, H, W) or its channel 0) also the peak refinement (rule 6,
    :func:`peak_refine`, content = ``clamp_hw``, letterbox scale ``scale_yx``).

    Returns boxes (N, 4) float32 in network pixels and scores (N,) float32, best first.
    """
    boxes, scores = decode_image(*outputs, clamp_hw=clamp_hw, score_thr=score_thr, topk=topk)
    keep = nms(boxes, scores, iou_thr, max_det)
    boxes, scores = boxes[keep], scores[keep]
    if image is not None:
        boxes = peak_refine(boxes, image, clamp_hw, scale_yx, centroid)
    return boxes, scores


# ----------------------------------------------------------------------------- rule 6
def _minf(a, b):
    """oscar_minf: b < a ? b : a (elementwise, float32)."""
    return np.where(b < a, b, a).astype(np.float32)


def _maxf(a, b):
    """oscar_maxf: a < b ? b : a (elementwise, float32)."""
    return np.where(a < b, b, a).astype(np.float32)


def _clampf(v, hi):
    """oscar_clampf: v < 0 -> 0, then v > hi -> hi (a NaN stays NaN)."""
    v = np.where(v < 0, np.float32(0), v).astype(np.float32)
    return np.where(v > hi, hi, v).astype(np.float32)


def _pixel_count(clamp, size: int) -> int:
    """oscar_peak_pixel_count: content pixels along one axis, min(floor(clamp), size), >= 1."""
    f = np.floor(np.float32(clamp))
    if f >= np.float32(size):
        return int(size)
    return int(f) if f >= np.float32(1) else 1


def _window(v1: np.ndarray, v2: np.ndarray, o: np.float32, n: int
            ) -> Tuple[np.ndarray, np.ndarray]:
    """oscar_peak_window along one axis: first and last pixel index (int64) of the window."""
    f = np.float32
    p1 = (v1 + o).astype(f)
    p2 = (v2 + o).astype(f)
    lo = np.ceil(p1)
    hi = np.floor(p2)
    with np.errstate(over="ignore"):
        mid = np.floor(((p1 + p2).astype(f) * f(0.5) + f(0.5)).astype(f))
    empty = lo > hi
    lo = np.where(empty, mid, lo)
    hi = np.where(empty, mid, hi)
    out = []
    for v in (lo, hi):
        v = np.where(v >= f(0), v, f(0))  # NaN -> 0
        v = np.where(v > f(n - 1), f(n - 1), v)
        out.append(v.astype(np.int64))
    return out[0], np.maximum(out[1], out[0])


def peak_refine(boxes: np.ndarray, image: np.ndarray, clamp_hw: Tuple[float, float],
                scale_yx: Tuple[float, float] = (1.0, 1.0),
                centroid: bool = PEAK_CENTROID_DEFAULT) -> np.ndarray:
    """Rule 6 (README.md, "Peak-centred localization"): move every box so that its centre
    sits on the image peak inside it.

    Args:
        boxes: (N, 4) float32 xyxy in network-input pixels (the kept boxes of rule 5).
        image: the network input of this image, (C, H, W) (channel 0 is used: the normalised
            grey image) or (H, W); float32 (float16 / ints are converted exactly).
        clamp_hw: (height, width) of the image content inside the network input (the letterbox
            ``resized``); pixels outside it (padding) are never used.
        scale_yx: (scale_y, scale_x) of the letterbox (network pixels per original pixel);
            (1, 1) when the network input is the original image.
        centroid: refine the peak to the intensity-weighted centroid of its 3x3 neighbourhood.

    Returns:
        (N, 4) float32 refined boxes (a new array), same order.

    The rule (the same float32 operation sequence as oscar_peak_refine_box in
    cpp_plugins/common/oscar_math.h; per axis, x shown, y the same with rows):
    1. o = (s - 1) * 0.5. Box coordinates are original pixel indices times s (the training
       targets), and OpenCV's resize puts network pixel j at original coordinate
       (j + 0.5) / s - 0.5, so box coordinate v is network pixel-index coordinate v + o.
    2. Content columns: n = min(floor(clamp_w), W), at least 1.
    3. Window: the pixels whose centre lies in the box, lo = ceil(x1 + o), hi = floor(x2 + o);
       when that is empty (lo > hi), the pixel nearest to the box centre,
       lo = hi = floor(((x1 + o) + (x2 + o)) * 0.5 + 0.5). Both clamped to [0, n - 1]
       (NaN -> 0), hi = max(hi, lo): always at least one pixel, never in the padding.
    4. Peak: m = the maximum of channel 0 over the window (a NaN pixel counts as -inf); the
       tied maxima T = the window pixels equal to m; their bounding rows ty0..ty1 and columns
       tx0..tx1; the peak point is the midpoint ((ty0 + ty1) / 2, (tx0 + tx1) / 2), the peak
       pixel (py, px) = ((ty0 + ty1) >> 1, (tx0 + tx1) >> 1).
    5. Centroid (``centroid``): over the 3x3 neighbourhood of (py, px) clipped to the content,
       when all its values are finite: mn = its minimum, w = v - mn, in row-major order
       sw += w, sx += w * (col - px), sy += w * (row - py); if sw > 0 the peak point becomes
       (py + sy / sw, px + sx / sw), else (py, px).
    6. New centre c = clamp(peak_x - o, 0, clamp_w); half = min((x2 - x1) * 0.5, c,
       clamp_w - c), then max(half, 0); x1' = c - half, x2' = c + half. The box keeps its size
       unless that would cross the content border; there it shrinks symmetrically, so the
       centre stays on the peak and the box inside the content.
    """
    f = np.float32
    b = np.asarray(boxes, dtype=f).reshape(-1, 4)
    img = np.asarray(image)
    if img.ndim == 3:
        img = img[0]
    if img.ndim != 2:
        raise ValueError(f"image must be (C, H, W) or (H, W), got shape {img.shape}")
    img = img.astype(f, copy=False)
    height, width = img.shape
    if len(b) == 0:
        return b.copy()
    if height < 1 or width < 1:
        raise ValueError(f"empty image {img.shape}")
    clamp_h, clamp_w = f(clamp_hw[0]), f(clamp_hw[1])
    half_f = f(0.5)
    oy = ((f(scale_yx[0]) - f(1)) * half_f).astype(f)
    ox = ((f(scale_yx[1]) - f(1)) * half_f).astype(f)
    ny, nx = _pixel_count(clamp_h, height), _pixel_count(clamp_w, width)
    x_lo, x_hi = _window(b[:, 0], b[:, 2], ox, nx)
    y_lo, y_hi = _window(b[:, 1], b[:, 3], oy, ny)
    peak = np.empty((len(b), 2), dtype=f)  # (x, y)
    for k in range(len(b)):
        win = img[y_lo[k]:y_hi[k] + 1, x_lo[k]:x_hi[k] + 1]
        win = np.where(np.isnan(win), f(-np.inf), win)
        rows, cols = np.nonzero(win == win.max())
        ty0, ty1 = y_lo[k] + rows.min(), y_lo[k] + rows.max()
        tx0, tx1 = x_lo[k] + cols.min(), x_lo[k] + cols.max()
        if not centroid:
            peak[k] = (f(tx0 + tx1) * half_f, f(ty0 + ty1) * half_f)
            continue
        py, px = (ty0 + ty1) >> 1, (tx0 + tx1) >> 1
        peak[k] = (f(px), f(py))
        r0, r1 = max(py - 1, 0), min(py + 1, ny - 1)
        c0, c1 = max(px - 1, 0), min(px + 1, nx - 1)
        nb = img[r0:r1 + 1, c0:c1 + 1]
        if not np.isfinite(nb).all():
            continue
        w = (nb - nb.min()).astype(f)
        sw = sx = sy = f(0)
        for r in range(r0, r1 + 1):  # row-major accumulation, the C/CUDA order
            for c in range(c0, c1 + 1):
                wv = w[r - r0, c - c0]
                sw = f(sw + wv)
                sx = f(sx + f(wv * f(c - px)))
                sy = f(sy + f(wv * f(r - py)))
        if sw > f(0):
            peak[k] = (f(f(px) + f(sx / sw)), f(f(py) + f(sy / sw)))
    out = np.empty_like(b)
    for axis, (o, clamp) in enumerate(((ox, clamp_w), (oy, clamp_h))):
        c = _clampf((peak[:, axis] - o).astype(f), clamp)
        half = ((b[:, axis + 2] - b[:, axis]) * half_f).astype(f)
        half = _minf(half, c)
        half = _minf(half, (clamp - c).astype(f))
        half = _maxf(half, f(0))
        out[:, axis] = c - half
        out[:, axis + 2] = c + half
    return out
