#!/usr/bin/env python
"""Checkpoint or raw-head ONNX -> end-to-end ONNX (OscarDecode + OscarNMS plugins) -> TensorRT
engine + JSON sidecar.

    python export/build_engine.py [--checkpoint X.pt | --onnx raw.onnx] --precision fp16 \
        --calib-data ../shared/data/sirst-v2 --out model.engine

Without TensorRT it writes and checks <out>.onnx, prints the trtexec command to run on the
Jetson and exits with code 2. The logic lives in ``oscar_edge.export.build_engine``.
"""
import sys
from pathlib import Path

_REPO = Path(__file__).resolve().parents[1]
if (_REPO / "oscar_edge" / "__init__.py").is_file():  # run from a checkout: use its package
    sys.path.insert(0, str(_REPO))

from oscar_edge.export.build_engine import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
