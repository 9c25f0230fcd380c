"""PyTorch backend (reference; needs torch)."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from ..errors import UserError
from ..models import Oscar


def check_device(device: str) -> "torch.device":
    """``device`` as a torch.device, or a UserError (one line) when this PyTorch cannot use it
    (e.g. ``cuda`` with a CPU-only build, or no GPU)."""
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError) as exc:
        raise UserError(f"unknown PyTorch device {device!r}: {exc}") from None
    if dev.type == "cuda":
        if not torch.backends.cuda.is_built():
            raise UserError(f"--device {device}: this PyTorch ({torch.__version__}) is a CPU-only "
                            "build; install a CUDA build of PyTorch or use --device cpu")
        if not torch.cuda.is_available():
            raise UserError(f"--device {device}: no usable CUDA GPU (torch.cuda.is_available() "
                            "is False)")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise UserError(f"--device {device}: only {torch.cuda.device_count()} CUDA "
                            "device(s)")
    return dev


class TorchBackend:
    """Wrap an Oscar model as an InferFn (eval mode, no grad, CPU or CUDA)."""

    name = "torch"
    output_kind = "raw"   # the five raw head outputs (oscar_edge.backends.base.RAW_OUTPUTS)
    input_size = None

    def __init__(self, model: Oscar, device: str = "cpu", half: bool = False) -> None:
        self.device = check_device(device)
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
