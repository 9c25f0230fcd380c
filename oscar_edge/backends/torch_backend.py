"""PyTorch backend (reference; needs torch)."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from ..models import Oscar


class TorchBackend:
    """Wrap an Oscar model as an InferFn (eval mode, no grad, CPU or CUDA)."""

    name = "torch"
    output_kind = "raw"   # the five raw head outputs (oscar_edge.backends.base.RAW_OUTPUTS)
    input_size = None

    def __init__(self, model: Oscar, device: str = "cpu", half: bool = False) -> None:
        self.device = torch.device(device)
        self.half = half
        self.model = model.to(self.device).eval()
        if half:
            self.model.half()

    @torch.no_grad()
    def __call__(self, x: np.ndarray) -> Sequence[np.ndarray]:
        t = torch.from_numpy(np.ascontiguousarray(x)).to(self.device)
        if self.half:
            t = t.half()
        return tuple(o.float().cpu().numpy() for o in self.model(t))
