"""All-scale pseudo-box label assignment (spec section 3), for one image and one level.

A grid point ((j + 0.5) * stride, (i + 0.5) * stride) is positive for a ground-truth box when
it lies strictly inside the box's pseudo box: an s x s square centred on the box (s = 8 on the
coarse level, 4 * 1.5 = 6 on the refine level), or the real box when its area exceeds s * s.
Among several candidates the box with the smallest real area wins.

Fix of a weakness of the released code (named deviation): with the strict inequality a box
whose centre sits exactly on a cell border (e.g. an 8 x 8 pseudo box centred on a multiple of
8 on the coarse level) gets no positive point at all. Here every box that ends up with no
positive point takes the grid point nearest its centre (ties: the lower flat index), unless
that point already belongs to a box with a smaller real area.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Tuple

import torch

COARSE_PSEUDO_SIZE: float = 8.0        # coarse stride
REFINE_PSEUDO_SIZE: float = 4.0 * 1.5  # refine stride x stride ratio


@dataclass
class LevelTargets:
    """Assignment of one level, flattened to P = H_l * W_l points.

    Attributes:
        gt_index: (P,) long, index of the assigned box or -1 for background.
        pseudo_boxes: (P, 4) xyxy pseudo box of the assigned box (zeros for background).
        gt_boxes: (P, 4) xyxy real box of the assigned box (zeros for background).
    """

    gt_index: torch.Tensor
    pseudo_boxes: torch.Tensor
    gt_boxes: torch.Tensor

    @property
    def positive(self) -> torch.Tensor:
        return self.gt_index >= 0


def grid_points(height: int, width: int, stride: int, device=None) -> torch.Tensor:
    """(H * W, 2) point coordinates (x, y) = ((j + 0.5) * stride, (i + 0.5) * stride)."""
    ys = (torch.arange(height, device=device, dtype=torch.float32) + 0.5) * stride
    xs = (torch.arange(width, device=device, dtype=torch.float32) + 0.5) * stride
    yy, xx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([xx.reshape(-1), yy.reshape(-1)], dim=1)


def pseudo_boxes(gt: torch.Tensor, size: float) -> torch.Tensor:
    """(N, 4) real boxes -> (N, 4) pseudo boxes: size x size squares, or the real box if larger."""
    w, h = gt[:, 2] - gt[:, 0], gt[:, 3] - gt[:, 1]
    cx, cy = (gt[:, 0] + gt[:, 2]) / 2, (gt[:, 1] + gt[:, 3]) / 2
    half = size / 2
    square = torch.stack([cx - half, cy - half, cx + half, cy + half], dim=1)
    large = (w * h > size * size)[:, None]
    return torch.where(large, gt, square)


def assign_level(gt: torch.Tensor, grid_hw: Tuple[int, int], stride: int,
                 pseudo_size: float) -> LevelTargets:
    """Assign points of one level to the boxes ``gt`` (N, 4) given in input pixels."""
    h, w = grid_hw
    pts = grid_points(h, w, stride, gt.device)
    num_points = pts.shape[0]
    index = torch.full((num_points,), -1, dtype=torch.long, device=gt.device)
    if gt.numel() == 0:
        zeros = torch.zeros(num_points, 4, device=gt.device)
        return LevelTargets(index, zeros, zeros.clone())
    pseudo = pseudo_boxes(gt, pseudo_size)
    area = (gt[:, 2] - gt[:, 0]) * (gt[:, 3] - gt[:, 1])
    x, y = pts[:, 0:1], pts[:, 1:2]
    inside = (x > pseudo[:, 0]) & (x < pseudo[:, 2]) & (y > pseudo[:, 1]) & (y < pseudo[:, 3])
    inf = torch.tensor(float("inf"), device=gt.device)
    cand_area = torch.where(inside, area[None, :].expand_as(inside), inf)
    best_area, best = cand_area.min(dim=1)
    index = torch.where(torch.isfinite(best_area), best, index)

    # Border fix: a box with no positive takes the point nearest its centre.
    centres = torch.stack([(gt[:, 0] + gt[:, 2]) / 2, (gt[:, 1] + gt[:, 3]) / 2], dim=1)
    for n in range(gt.shape[0]):
        if bool((index == n).any()):
            continue
        d2 = ((pts - centres[n]) ** 2).sum(dim=1)
        p = int(torch.argmin(d2))  # first minimum: lower flat index on ties
        owner = int(index[p])
        if owner < 0 or area[n] < area[owner]:
            index[p] = n
    pos = index >= 0
    safe = index.clamp(min=0)
    pseudo_t = torch.where(pos[:, None], pseudo[safe], torch.zeros_like(pseudo[safe]))
    gt_t = torch.where(pos[:, None], gt[safe], torch.zeros_like(gt[safe]))
    return LevelTargets(index, pseudo_t, gt_t)
