#!/usr/bin/env python
"""INT8 (ModelOpt PTQ, Q/DQ) or FP16 (ModelOpt AutoCast) version of an exported FP32 graph.

    python export/quantize.py --onnx model.onnx --precision int8 \
        --calib-data ../shared/data/sirst-v2 --calib-split train_full \
        [--calib-images 64] [--seed 0] [--calib-size HxW] --out model.int8.onnx

The logic (and the calibration choices) live in ``oscar_edge.export.quantize``.
"""
import sys
from pathlib import Path

_REPO = Path(__file__).resolve().parents[1]
if (_REPO / "oscar_edge" / "__init__.py").is_file():  # run from a checkout: use its package
    sys.path.insert(0, str(_REPO))

from oscar_edge.export.quantize import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
