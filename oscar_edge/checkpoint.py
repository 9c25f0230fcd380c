"""Saving and loading checkpoints safely (``torch.load(weights_only=True)``, atomic writes).

A model checkpoint is a dict: {"preset": str, "state_dict": {...}, "meta": {...}}; a training
checkpoint adds "optimizer", "scheduler", "epoch", "iteration", "best" and "history". Only
tensors, numbers, strings, lists and dicts are stored, so nothing executable is ever loaded.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Dict, Tuple

import torch

from .models import Oscar, build_model
from .presets import PRESETS

SHIPPED_WEIGHTS = Path(__file__).resolve().parent / "weights" / "oscar-edge.pt"


class CheckpointError(RuntimeError):
    """A checkpoint is missing, corrupt or does not fit the model."""


def save(obj: Dict[str, Any], path: str | os.PathLike) -> None:
    """Write ``obj`` with torch.save to a temporary file, then rename it over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def read(path: str | os.PathLike) -> Dict[str, Any]:
    """Load a checkpoint dict with ``weights_only=True``; CheckpointError names the file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a damaged file
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"cannot read checkpoint {path}: {first}") from None
    if not isinstance(obj, dict) or "state_dict" not in obj or "preset" not in obj:
        raise CheckpointError(f"{path} is not an oscar-edge checkpoint (no preset/state_dict)")
    if obj["preset"] not in PRESETS:
        raise CheckpointError(f"{path}: unknown preset {obj['preset']!r}")
    return obj


def load_model(path: str | os.PathLike | None = None) -> Tuple[Oscar, Dict[str, Any]]:
    """Build the checkpoint's preset and load its weights (eval mode). None = shipped model."""
    path = SHIPPED_WEIGHTS if path is None else Path(path)
    obj = read(path)
    model = build_model(obj["preset"])
    try:
        model.load_state_dict(obj["state_dict"])
    except RuntimeError as exc:
        raise CheckpointError(f"{path}: weights do not fit preset {obj['preset']}: "
                              f"{str(exc).splitlines()[0]}") from None
    model.eval()
    return model, dict(obj.get("meta", {}))


def model_checkpoint(model: Oscar, meta: Dict[str, Any]) -> Dict[str, Any]:
    """The dict that ships: preset name, float32 weights, metadata."""
    state = {k: v.detach().float().cpu().clone() if v.is_floating_point() else v.detach().cpu().clone()
             for k, v in model.state_dict().items()}
    return {"preset": model.preset.name, "state_dict": state, "meta": meta}
