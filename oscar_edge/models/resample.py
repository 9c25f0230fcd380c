"""Resampling between the pyramid grids (neck upsample-and-add, head resizes; spec section 2).

Every network input is a multiple of 32 (``oscar_edge.preprocess.SIZE_DIVISOR``), so
neighbouring levels differ by exactly 2x. There the resize is written as a constant-scale op
instead of a resize to a size read from the other tensor. The values are the same (up to float
rounding), but the exported graph is simpler: no Shape / Gather / Concat chain computes the
target size, and ONNX Runtime's blocked-layout (NCHWc) pass can keep the tensor blocked
through the resize instead of reordering it out and back.

* nearest or bilinear (half-pixel) upsample by 2: ``Resize`` with scales (1, 1, 2, 2);
* bilinear (half-pixel) downsample by 2: output pixel i samples input 2i + 0.5, the mean of
  inputs 2i and 2i + 1 in each axis, which is 2x2 average pooling (``AveragePool``).

Grids that are not exactly 2x apart (training crops of other sizes, direct calls) fall back
to the size-based resize of the spec.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def resize_like(x: torch.Tensor, like: torch.Tensor, mode: str) -> torch.Tensor:
    """x (B, C, h, w) resized to like's grid (H, W); mode "nearest" or "bilinear"
    (``align_corners=False``)."""
    h, w = x.shape[-2:]
    H, W = like.shape[-2:]
    kw = {} if mode == "nearest" else {"align_corners": False}
    if H == 2 * h and W == 2 * w:
        return F.interpolate(x, scale_factor=2.0, mode=mode, **kw)
    if mode == "bilinear" and h == 2 * H and w == 2 * W:
        return F.avg_pool2d(x, 2)
    return F.interpolate(x, size=(H, W), mode=mode, **kw)
