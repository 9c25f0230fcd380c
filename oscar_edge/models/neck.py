"""Top-down FPN that outputs only P2 (stride 4) and P3 (stride 8), as OSCAR's head uses.

The released code also builds output convs for P4 and P5 and never uses them; they are left
out here (the reason the released parameter count is 17.66 M and ours 16.48 M).
"""
from __future__ import annotations

from typing import List, Sequence, Tuple

import torch
from torch import nn

from .resample import resize_like


class FPN(nn.Module):
    """1x1 laterals over C2..C5, nearest upsample-and-add, 3x3 output convs on P2 and P3.

    No norm, no activation (spec section 2).
    """

    def __init__(self, in_channels: Sequence[int], channels: int) -> None:
        super().__init__()
        self.laterals = nn.ModuleList(nn.Conv2d(c, channels, 1) for c in in_channels)
        self.out_p2 = nn.Conv2d(channels, channels, 3, padding=1)
        self.out_p3 = nn.Conv2d(channels, channels, 3, padding=1)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, feats: List[torch.Tensor]) -> Tuple[torch.Tensor, torch.Tensor]:
        """[C2..C5] -> (P2 (B, F, H/4, W/4), P3 (B, F, H/8, W/8))."""
        lat = [conv(f) for conv, f in zip(self.laterals, feats)]
        for i in range(len(lat) - 1, 0, -1):
            lat[i - 1] = lat[i - 1] + resize_like(lat[i], lat[i - 1], "nearest")
        return self.out_p2(lat[0]), self.out_p3(lat[1])
