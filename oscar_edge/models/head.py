"""OSCAR cascade head: coarse level on P3, refine level on P2 (spec section 2).

Outputs, for input (B, 3, H, W):
    refine_score (B, 1, H/4, W/4)  modulated refine logit
    refine_bbox  (B, 4, H/4, W/4)  deltas (dx1, dy1, dx2, dy2) in units of the refine stride
    refine_noco  (B, 1, H/4, W/4)  NoCo logit
    coarse_score (B, 1, H/8, W/8)  modulated coarse logit
    coarse_bbox  (B, 4, H/8, W/8)  log-distances: log of (l, t, r, b) in input pixels

Deviation (named): in the spec the head itself applies exp() to the scaled coarse regression
and ``coarse_bbox`` holds distances. Here exp() is the first step of the decode (spec section 2
"the cascade", postprocess rule 1, ``losses.decode_coarse``; the C++/CUDA decode through
``oscar_decode_point``), exactly like the sigmoids of the score outputs, which are logits. The
network, its weights and its boxes are the same; what changes is which side of the graph
boundary the exp sits on. Reasons: exp() multiplies any arithmetic difference in its argument
by the distance itself, so two correct float32 runtimes (PyTorch/oneDNN vs ONNX Runtime/MLAS,
or an FP16/INT8 engine) disagree on distances by up to ~3e-4 px while they agree on the
log-distances to ~4e-6; and the decode evaluates exp() only for the kept candidates, with the
same bit-exact float32 exp on CPU and GPU.

Decoding these into boxes is not part of the network: see ``oscar_edge.postprocess`` (numpy
reference) and ``oscar_edge.models.boxes`` (the same rules in torch, for the losses).
"""
from __future__ import annotations

from typing import Tuple

import torch
from torch import nn

from .resample import resize_like

# Deviation (named): the released head computes exp() of the scaled coarse regression without
# a bound. We clamp the log-distance at 10 (22026 px, far beyond any input) so that an early
# training spike or an FP16 engine cannot produce inf.
MAX_LOG_DISTANCE: float = 10.0


class Scale(nn.Module):
    """A learnable scalar multiplier (init 1.0)."""

    def __init__(self, init: float = 1.0) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(float(init)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale


def tower(cin: int, channels: int, depth: int, groups: int, norm: str = "gn") -> nn.Sequential:
    """``depth`` x [3x3 conv (no bias) + GroupNorm(groups) or BatchNorm + ReLU].

    Deviation (named), ``norm="bn"`` (preset ``oscar-edge-v2``): the spec's towers use
    GroupNorm; BatchNorm can be folded into the convolution at export, so the deployed graph
    has no normalisation op (GroupNorm costs layout changes on CPUs and cannot be fused by INT8
    runtimes). The towers are per level (P3 / P2), so BatchNorm statistics are never shared
    between scales."""
    if norm not in ("gn", "bn"):
        raise ValueError(f"norm must be 'gn' or 'bn', got {norm!r}")
    layers = []
    for i in range(depth):
        layers += [
            nn.Conv2d(cin if i == 0 else channels, channels, 3, padding=1, bias=False),
            nn.GroupNorm(groups, channels) if norm == "gn" else nn.BatchNorm2d(channels),
            nn.ReLU(inplace=True),
        ]
    return nn.Sequential(*layers)


def _resize(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return resize_like(x, like, "bilinear")


class OscarHead(nn.Module):
    """Coarse (P3) and refine (P2) towers, NoCo tower and mutual classifier modulation.

    Args:
        in_channels: F, FPN width.
        channels: H, tower width.
        coarse_depth / refine_depth: convs per tower on P3 / P2.
        groups: GroupNorm groups.
        norm: "gn" (GroupNorm) or "bn" (BatchNorm, folded at export).
    """

    def __init__(self, in_channels: int, channels: int, coarse_depth: int = 4,
                 refine_depth: int = 4, groups: int = 32, norm: str = "gn") -> None:
        super().__init__()
        f, h = in_channels, channels
        self.coarse_cls_tower = tower(f, h, coarse_depth, groups, norm)
        self.coarse_reg_tower = tower(f, h, coarse_depth, groups, norm)
        self.coarse_cls = nn.Conv2d(h, 1, 3, padding=1)
        self.coarse_reg = nn.Conv2d(h, 4, 3, padding=1)
        self.coarse_scale = Scale()
        self.refine_reg_tower = tower(f + h, h, refine_depth, groups, norm)
        self.refine_cls_tower = tower(f, h, refine_depth, groups, norm)
        self.refine_noco_tower = tower(f, h, refine_depth, groups, norm)
        self.refine_reg = nn.Conv2d(h, 4, 3, padding=1)
        self.refine_cls = nn.Conv2d(h, 1, 3, padding=1)
        self.refine_noco = nn.Conv2d(h, 1, 3, padding=1)
        self.refine_scale = Scale()
        self.coarse_mod = nn.Conv2d(h, 1, 3, padding=1)
        self.refine_mod = nn.Conv2d(h, 1, 3, padding=1)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, std=0.01)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, p2: torch.Tensor, p3: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        """(P2, P3) -> (refine_score, refine_bbox, refine_noco, coarse_score, coarse_bbox)."""
        c_cls_feat = self.coarse_cls_tower(p3)
        c_reg_feat = self.coarse_reg_tower(p3)
        c_logit = self.coarse_cls(c_cls_feat)
        c_bbox = self.coarse_scale(self.coarse_reg(c_reg_feat)).clamp(max=MAX_LOG_DISTANCE)  # exp in decode

        r_reg_feat = self.refine_reg_tower(torch.cat([p2, _resize(c_reg_feat, p2)], dim=1))
        r_bbox = self.refine_scale(self.refine_reg(r_reg_feat))
        r_cls_feat = self.refine_cls_tower(p2)
        r_logit = self.refine_cls(r_cls_feat)
        r_noco = self.refine_noco(self.refine_noco_tower(p2))

        # Mutual modulation (both from the unmodulated features).
        r_score = r_logit * torch.sigmoid(_resize(self.coarse_mod(c_cls_feat), p2))
        c_score = c_logit * torch.sigmoid(_resize(self.refine_mod(r_cls_feat), p3))
        return r_score, r_bbox, r_noco, c_score, c_bbox
