"""OSCAR losses (spec section 4) on the raw outputs of ``Oscar``.

* coarse / refine classification: sigmoid focal loss (gamma 3, alpha 0.25), weight 2,
  summed over all points and divided by the number of positives of that level (>= 1);
* coarse / refine boxes: DIoU loss, weight 1, averaged over the positives. Refine anchors are
  the coarse boxes and are not detached;
* NoCo: dense quality-focal style loss ``BCEWithLogits(p, t) * |sigmoid(p) - t| ** 2`` over
  the whole P2 map, mean, weight 1000, t = ground-truth NoCo map sampled nearest-exact on P2.

Optional, off by default (named deviation, README "Training and the shipped model"):
``small_target_weight`` K > 1 multiplies the focal term of every positive point by
``small_target_weights``: K for a point whose real box is at most SMALL_TARGET_SIDES[0]
pixels (geometric mean side, input pixels), 1 from SMALL_TARGET_SIDES[1] pixels up, linear in
between. The normalisation (number of positives) is unchanged.
"""
from __future__ import annotations

from typing import Dict, List, Sequence, Tuple

import torch
import torch.nn.functional as F

from ..postprocess import COARSE_STRIDE, REFINE_STRIDE
from .assigner import COARSE_PSEUDO_SIZE, REFINE_PSEUDO_SIZE, assign_level, grid_points

FOCAL_GAMMA = 3.0
FOCAL_ALPHA = 0.25
CLS_WEIGHT = 2.0
BOX_WEIGHT = 1.0
NOCO_WEIGHT = 1000.0
SMALL_TARGET_SIDES = (5.0, 10.0)  # full extra weight at or below, none at or above (pixels)


def small_target_weights(gt_boxes: torch.Tensor, k: float,
                         sides: Tuple[float, float] = SMALL_TARGET_SIDES) -> torch.Tensor:
    """(P, 4) xyxy real boxes of positive points -> (P,) weights in [1, k]: k at a geometric
    mean side <= sides[0], 1 at >= sides[1], linear in the side between."""
    w = (gt_boxes[:, 2] - gt_boxes[:, 0]).clamp(min=0)
    h = (gt_boxes[:, 3] - gt_boxes[:, 1]).clamp(min=0)
    side = (w * h).sqrt()
    lo, hi = sides
    frac = ((hi - side) / (hi - lo)).clamp(0.0, 1.0)
    return 1.0 + (k - 1.0) * frac


def sigmoid_focal_loss(logits: torch.Tensor, targets: torch.Tensor,
                       gamma: float = FOCAL_GAMMA, alpha: float = FOCAL_ALPHA) -> torch.Tensor:
    """Element-wise sigmoid focal loss (same shape as ``logits``)."""
    p = torch.sigmoid(logits)
    ce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    pt = (1 - p) * targets + p * (1 - targets)
    weight = (alpha * targets + (1 - alpha) * (1 - targets)) * pt.pow(gamma)
    return ce * weight


def diou_loss(pred: torch.Tensor, target: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """Element-wise DIoU loss 1 - IoU + d^2 / c^2 of (N, 4) xyxy boxes -> (N,)."""
    lt = torch.max(pred[:, :2], target[:, :2])
    rb = torch.min(pred[:, 2:], target[:, 2:])
    wh = (rb - lt).clamp(min=0)
    inter = wh[:, 0] * wh[:, 1]
    area_p = (pred[:, 2] - pred[:, 0]).clamp(min=0) * (pred[:, 3] - pred[:, 1]).clamp(min=0)
    area_t = (target[:, 2] - target[:, 0]) * (target[:, 3] - target[:, 1])
    iou = inter / (area_p + area_t - inter + eps)
    enc_lt = torch.min(pred[:, :2], target[:, :2])
    enc_rb = torch.max(pred[:, 2:], target[:, 2:])
    c2 = ((enc_rb - enc_lt) ** 2).sum(dim=1) + eps
    d2 = (((pred[:, :2] + pred[:, 2:]) - (target[:, :2] + target[:, 2:])) ** 2).sum(dim=1) / 4
    return 1 - iou + d2 / c2


def decode_coarse(coarse_bbox: torch.Tensor) -> torch.Tensor:
    """(B, 4, H8, W8) log-distances -> (B, 4, H8, W8) boxes xyxy (torch twin of postprocess
    rule 1: distances = exp(coarse_bbox))."""
    _, _, h, w = coarse_bbox.shape
    pts = grid_points(h, w, COARSE_STRIDE, coarse_bbox.device)
    px = pts[:, 0].view(1, h, w)
    py = pts[:, 1].view(1, h, w)
    l, t, r, b = coarse_bbox.exp().unbind(dim=1)
    return torch.stack([px - l, py - t, px + r, py + b], dim=1)


def decode_refine(coarse_boxes: torch.Tensor, refine_bbox: torch.Tensor) -> torch.Tensor:
    """Anchors (nearest-exact x2 of the coarse boxes) + REFINE_STRIDE * deltas -> (B, 4, H4, W4)."""
    anchors = coarse_boxes.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)
    return anchors + REFINE_STRIDE * refine_bbox


def noco_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Dense quality-focal NoCo loss, mean over all elements (unweighted)."""
    ce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    return (ce * (torch.sigmoid(logits) - target).abs().pow(2)).mean()


def oscar_loss(outputs: Sequence[torch.Tensor], gt_boxes: List[torch.Tensor],
               noco_p2: torch.Tensor, small_target_weight: float = 1.0
               ) -> Tuple[torch.Tensor, Dict[str, float]]:
    """Total loss and its parts.

    Args:
        outputs: the five raw outputs for a batch of B images.
        gt_boxes: B tensors (N_b, 4) xyxy in input pixels.
        noco_p2: (B, 1, H4, W4) ground-truth NoCo map sampled on the P2 grid.
        small_target_weight: K of ``small_target_weights`` on positive focal terms (1 = spec).
    """
    r_score, r_bbox, r_noco, c_score, c_bbox = [o.float() for o in outputs]
    b, _, h4, w4 = r_score.shape
    h8, w8 = c_score.shape[-2:]
    coarse_boxes = decode_coarse(c_bbox)
    refine_boxes = decode_refine(coarse_boxes, r_bbox)

    parts = {"coarse_cls": [], "refine_cls": [], "coarse_box": [], "refine_box": []}
    n_pos = {"coarse": 0, "refine": 0}
    for i in range(b):
        gt = gt_boxes[i].to(r_score.device, torch.float32)
        for level, logits, boxes, grid, stride, size, use_pseudo in (
            ("coarse", c_score[i, 0], coarse_boxes[i], (h8, w8), COARSE_STRIDE,
             COARSE_PSEUDO_SIZE, True),
            ("refine", r_score[i, 0], refine_boxes[i], (h4, w4), REFINE_STRIDE,
             REFINE_PSEUDO_SIZE, False),
        ):
            t = assign_level(gt, grid, stride, size)
            pos = t.positive
            has_pos = bool(pos.any())
            labels = pos.float().view(grid)
            focal = sigmoid_focal_loss(logits, labels)
            if small_target_weight != 1.0 and has_pos:
                weights = torch.ones_like(labels).view(-1)
                weights[pos] = small_target_weights(t.gt_boxes[pos], small_target_weight)
                focal = focal * weights.view(grid)
            parts[f"{level}_cls"].append(focal.sum())
            n_pos[level] += int(pos.sum())
            if has_pos:
                pred = boxes.reshape(4, -1).t()[pos]
                target = (t.pseudo_boxes if use_pseudo else t.gt_boxes)[pos]
                parts[f"{level}_box"].append(diou_loss(pred, target).sum())
    losses = {}
    for level in ("coarse", "refine"):
        denom = max(n_pos[level], 1)
        losses[f"{level}_cls"] = CLS_WEIGHT * torch.stack(parts[f"{level}_cls"]).sum() / denom
        box_terms = parts[f"{level}_box"]
        losses[f"{level}_box"] = (BOX_WEIGHT * torch.stack(box_terms).sum() / denom
                                  if box_terms else r_score.sum() * 0.0)
    losses["noco"] = NOCO_WEIGHT * noco_loss(r_noco, noco_p2.to(r_noco.dtype))
    total = sum(losses.values())
    return total, {k: float(v.detach()) for k, v in losses.items()}
