"""Parameter and FLOP counting.

GFLOPs follow the convention of MMCV's ``get_model_complexity_info`` used by the OSCAR paper
and spec section 1: one multiply-accumulate counts as one FLOP, convolutions only (norms,
activations and resizes are a fraction of a percent and are left out).
"""
from __future__ import annotations

from typing import Dict

import torch
from torch import nn


def count_params(model: nn.Module) -> int:
    """Number of parameters."""
    return sum(p.numel() for p in model.parameters())


@torch.no_grad()
def count_gflops(model: nn.Module, height: int, width: int) -> float:
    """Multiply-accumulates (x 1e-9) of the convolutions for one (1, 3, height, width) input."""
    total = [0]

    def hook(mod: nn.Conv2d, _inp, out: torch.Tensor) -> None:
        k = mod.kernel_size[0] * mod.kernel_size[1]
        total[0] += out.numel() * (mod.in_channels // mod.groups) * k

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, nn.Conv2d)]
    was_training = model.training
    model.eval()
    try:
        model(torch.zeros(1, 3, height, width))
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return total[0] / 1e9


def complexity_table(sizes=((512, 512), (512, 640))) -> Dict[str, Dict[str, float]]:
    """{preset: {"params_M": ..., "gflops_HxW": ...}} for every preset."""
    from ..presets import PRESETS
    from .oscar import build_model

    rows: Dict[str, Dict[str, float]] = {}
    for name in PRESETS:
        model = build_model(name)
        row = {"params_M": count_params(model) / 1e6}
        for h, w in sizes:
            row[f"gflops_{w}x{h}"] = count_gflops(model, h, w)
        rows[name] = row
    return rows
