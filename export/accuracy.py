#!/usr/bin/env python
"""FP32 vs INT8 vs FP16 accuracy (mNoCoAP, AP50, size) of the exported graphs, ONNX Runtime CPU.

    python export/accuracy.py --fp32 model.onnx --int8 model.int8.onnx --fp16 model.fp16.onnx \
        --split val_full [--json acc.json]

The logic lives in ``oscar_edge.export.accuracy``.
"""
import sys
from pathlib import Path

_REPO = Path(__file__).resolve().parents[1]
if (_REPO / "oscar_edge" / "__init__.py").is_file():  # run from a checkout: use its package
    sys.path.insert(0, str(_REPO))

from oscar_edge.export.accuracy import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
