"""Fold BatchNorm into the convolution before it (eval mode), for export.

Every ``Conv2d`` directly followed by a ``BatchNorm2d`` (inside an ``nn.Sequential``, or as the
``convN`` / ``bnN`` pairs of ``backbone.BasicBlock``) becomes one convolution with a bias:

    w' = w * gamma / sqrt(var + eps)        b' = (b - mean) * gamma / sqrt(var + eps) + beta

and the BatchNorm becomes ``nn.Identity``. The folded model computes the same function (to
float32 rounding) and exports without a BatchNormalization node, whatever the exporter does.
GroupNorm cannot be folded (its statistics depend on the input): a model that still holds one
is reported by :func:`normalisation_layers`.
"""
from __future__ import annotations

import copy
from typing import List

import torch
from torch import nn

NORM_TYPES = (nn.BatchNorm2d, nn.GroupNorm, nn.InstanceNorm2d, nn.LayerNorm)


def fold_conv_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    """A new Conv2d equal to ``bn(conv(x))`` in eval mode."""
    fused = copy.deepcopy(conv)
    with torch.no_grad():
        std = torch.sqrt(bn.running_var + bn.eps)
        gamma = bn.weight if bn.affine else torch.ones_like(std)
        beta = bn.bias if bn.affine else torch.zeros_like(std)
        factor = gamma / std
        fused.weight.copy_(conv.weight * factor.reshape(-1, 1, 1, 1))
        bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
        new_bias = (bias - bn.running_mean) * factor + beta
        fused.bias = nn.Parameter(new_bias.detach().clone())
    return fused


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """A copy of ``model`` (put in eval mode) with every Conv2d + BatchNorm2d pair folded."""
    model = copy.deepcopy(model).eval()
    for module in model.modules():
        if isinstance(module, nn.Sequential):
            names = list(module._modules)
            for a, b in zip(names, names[1:]):
                conv, bn = module._modules[a], module._modules[b]
                if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
                    module._modules[a] = fold_conv_bn(conv, bn)
                    module._modules[b] = nn.Identity()
        for i in range(1, 10):  # BasicBlock style: conv1/bn1, conv2/bn2
            conv, bn = getattr(module, f"conv{i}", None), getattr(module, f"bn{i}", None)
            if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
                setattr(module, f"conv{i}", fold_conv_bn(conv, bn))
                setattr(module, f"bn{i}", nn.Identity())
    return model


def normalisation_layers(model: nn.Module) -> List[str]:
    """Names of the normalisation modules left in ``model``."""
    return [name for name, m in model.named_modules() if isinstance(m, NORM_TYPES)]
