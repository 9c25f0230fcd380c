"""Decode and NMS: the numpy reference of spec section 6 (no torch).

This module defines the post-processing semantics once. The C++ CPU library and the CUDA
kernels in ``cpp_plugins/`` implement the same rules and are tested against this file.

Raw head outputs for one image (the model's five outputs without the batch axis):
    refine_score (1, H4, W4)  modulated refine logit
    refine_bbox  (4, H4, W4)  deltas (dx1, dy1, dx2, dy2) in units of REFINE_STRIDE
    refine_noco  (1, H4, W4)  NoCo logit
    coarse_score (1, H8, W8)  modulated coarse logit
    coarse_bbox  (4, H8, W8)  distances (l, t, r, b) in input pixels
with H4 = 2 * H8 and W4 = 2 * W8 (inputs are multiples of 32).

Rules (all arithmetic in float32):
1. Anchor of P2 point (i, j): the coarse box of P3 point (i // 2, j // 2) (nearest-exact
   resize by 2), decoded at px = (j // 2 + 0.5) * 8, py = (i // 2 + 0.5) * 8 as
   (px - l, py - t, px + r, py + b).
2. Candidate score = sigmoid(refine logit); keep points with score > SCORE_THR, then the
   first PRE_NMS_TOPK by that score. Tie rule: equal scores keep the lower flat index
   (i * W4 + j) first (a stable descending sort).
3. Box = anchor + 4 * delta, each coordinate clamped to [0, width] / [0, height] of the
   clamp size (the image content inside the network input).
4. Final score = sigmoid(refine) * sigmoid(coarse logit at (i // 2, j // 2)) * sigmoid(noco).
5. NMS: candidates in descending final score (ties: lower candidate rank first); a box is
   suppressed when its IoU with an already kept box is > IOU_THR; at most MAX_DET kept.
   IoU uses continuous coordinates (no +1); a pair whose union is 0 has IoU 0.
"""
from __future__ import annotations

from typing import Tuple

import numpy as np

COARSE_STRIDE: int = 8
REFINE_STRIDE: int = 4
SCORE_THR: float = 0.05
PRE_NMS_TOPK: int = 1000
IOU_THR: float = 0.5
MAX_DET: int = 100

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
    """(4, H8, W8) distances -> (4, H4, W4) anchor boxes xyxy on the P2 grid."""
    _, h8, w8 = coarse_bbox.shape
    py = ((np.arange(h8, dtype=np.float32) + np.float32(0.5)) * np.float32(COARSE_STRIDE))
    px = ((np.arange(w8, dtype=np.float32) + np.float32(0.5)) * np.float32(COARSE_STRIDE))
    d = coarse_bbox.astype(np.float32)
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
) -> Tuple[np.ndarray, np.ndarray]:
    """Decode + NMS for one image's five raw outputs (no batch axis).

    Returns boxes (N, 4) float32 in network pixels and scores (N,) float32, best first.
    """
    boxes, scores = decode_image(*outputs, clamp_hw=clamp_hw, score_thr=score_thr, topk=topk)
    keep = nms(boxes, scores, iou_thr, max_det)
    return boxes[keep], scores[keep]
