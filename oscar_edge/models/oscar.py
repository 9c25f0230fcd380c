"""The OSCAR detector: backbone + FPN (P2, P3) + cascade head, built from a preset."""
from __future__ import annotations

from typing import Tuple

import torch
from torch import nn

from ..presets import Preset, get_preset
from .backbone import ResNetBackbone
from .head import OscarHead
from .neck import FPN


class Oscar(nn.Module):
    """(B, 3, H, W) normalised input, H and W multiples of 32 -> the five raw outputs.

    See ``oscar_edge.models.head`` for the output layout.
    """

    def __init__(self, preset: Preset) -> None:
        super().__init__()
        self.preset = preset
        self.backbone = ResNetBackbone(preset.stem_channels, preset.stage_channels,
                                       preset.stage_depths,
                                       stem_fine_convs=preset.stem_fine_convs)
        self.neck = FPN(preset.stage_channels, preset.fpn_channels)
        self.head = OscarHead(preset.fpn_channels, preset.head_channels,
                              preset.coarse_tower_depth, preset.refine_tower_depth,
                              preset.gn_groups, preset.norm)

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        p2, p3 = self.neck(self.backbone(x))
        return self.head(p2, p3)


def build_model(preset: str | Preset) -> Oscar:
    """Build an untrained model from a preset name or object."""
    return Oscar(get_preset(preset) if isinstance(preset, str) else preset)
