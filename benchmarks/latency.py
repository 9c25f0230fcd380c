#!/usr/bin/env python
"""Latency benchmark of every backend on the same real frames: model only and frame to detections.

    python benchmarks/latency.py --backends torch,ort,ort-int8 --preset oscar-edge \\
        --size 640x512 --batch 1 --runs 300 --warmup 50 [--threads 2] \\
        [--json out.json] [--plot out.png] [--sizes 320x256,640x512,1280x1024]

The script of the package ``benchmarks/latency_bench``: what is measured and how, the backends,
goals, Jetson mode and output are described in its docstring (``latency_bench/__init__.py``).
"""
from __future__ import annotations

import sys
from pathlib import Path

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:  # imported from elsewhere (a test): the package lies beside it
    sys.path.insert(0, _HERE)

from latency_bench.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
