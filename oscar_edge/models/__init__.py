"""PyTorch model parts (torch needed: ``pip install .[train]``)."""
from .oscar import Oscar, build_model

__all__ = ["Oscar", "build_model"]
