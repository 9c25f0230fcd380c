"""ResNet-style backbone: deep-stem ResNet-18 (released OSCAR) or a light variant (oscar-edge).

Input (B, 3, H, W) -> C2..C5 at strides 4, 8, 16, 32. Trained from scratch, plain BatchNorm.
"""
from __future__ import annotations

from typing import List, Sequence

import torch
from torch import nn


def conv_bn_relu(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    """3x3 conv (no bias) + BatchNorm + ReLU."""
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class BasicBlock(nn.Module):
    """ResNet BasicBlock: two 3x3 convs with BatchNorm and an identity / 1x1 shortcut."""

    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class ResNetBackbone(nn.Module):
    """Stem + four BasicBlock stages (strides 1, 2, 2, 2 after the stride-4 stem).

    Args:
        stem_channels: three entries = the released deep stem (3x3 s2, 3x3, 3x3, max-pool s2);
            two entries = light stem (3x3 s2, 3x3 s2), used by oscar-edge.
        stem_fine_convs: light stem only: this many extra 3x3 stride-1 convs (width
            stem_channels[0]) at stride 2, between its two stride-2 convs.
        stage_channels: channels of C2..C5.
        stage_depths: BasicBlocks per stage.
    """

    def __init__(
        self,
        stem_channels: Sequence[int],
        stage_channels: Sequence[int],
        stage_depths: Sequence[int],
        in_channels: int = 3,
        stem_fine_convs: int = 0,
    ) -> None:
        super().__init__()
        if stem_fine_convs and len(stem_channels) != 2:
            raise ValueError("stem_fine_convs is for the light (two-entry) stem")
        if len(stem_channels) == 3:
            c1, c2, c3 = stem_channels
            self.stem = nn.Sequential(
                conv_bn_relu(in_channels, c1, 2), conv_bn_relu(c1, c2), conv_bn_relu(c2, c3),
                nn.MaxPool2d(3, stride=2, padding=1),
            )
        elif len(stem_channels) == 2:
            c1, c3 = stem_channels
            fine = [conv_bn_relu(c1, c1) for _ in range(stem_fine_convs)]
            self.stem = nn.Sequential(conv_bn_relu(in_channels, c1, 2), *fine,
                                      conv_bn_relu(c1, c3, 2))
        else:
            raise ValueError("stem_channels must have 2 or 3 entries")
        cin = stem_channels[-1]
        self.stages = nn.ModuleList()
        for i, (cout, depth) in enumerate(zip(stage_channels, stage_depths)):
            stride = 1 if i == 0 else 2
            blocks: List[nn.Module] = [BasicBlock(cin, cout, stride)]
            blocks += [BasicBlock(cout, cout) for _ in range(depth - 1)]
            self.stages.append(nn.Sequential(*blocks))
            cin = cout
        self.out_channels = tuple(stage_channels)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> List[torch.Tensor]:
        """(B, 3, H, W) -> [C2 (B, c2, H/4, W/4), C3 (H/8), C4 (H/16), C5 (H/32)]."""
        x = self.stem(x)
        feats = []
        for stage in self.stages:
            x = stage(x)
            feats.append(x)
        return feats
