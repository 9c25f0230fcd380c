#!/usr/bin/env python
"""Export an oscar-edge checkpoint to an ONNX raw-head graph.

    python export/export_onnx.py [--checkpoint runs/x/best.pt] --out model.onnx [--opset 17]

Dynamic batch / height / width; height and width must be multiples of 32. The logic lives in
``oscar_edge.export.onnx_export``.
"""
import sys
from pathlib import Path

_REPO = Path(__file__).resolve().parents[1]
if (_REPO / "oscar_edge" / "__init__.py").is_file():  # run from a checkout: use its package
    sys.path.insert(0, str(_REPO))

from oscar_edge.export.onnx_export import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
