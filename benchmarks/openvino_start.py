#!/usr/bin/env python
"""How long the OpenVINO backend takes to start, with an empty and with a filled model cache.

    python benchmarks/openvino_start.py [--precision int8] [--size 640x512] [--threads 2] \
        [--repeats 3] [--json start.json]

Each start runs in a fresh Python process (nothing warm in memory) and times, in that process:
``import openvino``, reading the ONNX graph, reshaping and compiling it for 1x3xHxW (or loading
the compiled blob from the cache), and the first inference. Start 1 of each repeat uses a new,
empty cache folder ("cold"); start 2 uses the folder start 1 filled ("cached"). Prints a
Markdown table (median over the repeats) and the machine.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Dict, List, Optional, Sequence

_REPO = Path(__file__).resolve().parents[1]
if (_REPO / "oscar_edge" / "__init__.py").is_file():
    sys.path.insert(0, str(_REPO))

from oscar_edge.errors import UserError, run_cli  # noqa: E402
from oscar_edge.sizes import argparse_type  # noqa: E402

# The child: one start, timed phase by phase; prints one JSON line.
CHILD = r"""
import json, sys, time
t0 = time.perf_counter()
import openvino
t1 = time.perf_counter()
import numpy as np
from oscar_edge.backends.openvino_backend import OpenVinoBackend
path, cache, h, w, threads, hint = sys.argv[1], sys.argv[2], int(sys.argv[3]), \
    int(sys.argv[4]), int(sys.argv[5]), sys.argv[6]
t2 = time.perf_counter()
b = OpenVinoBackend(path, threads=threads, hint=hint, cache_dir=cache)
t3 = time.perf_counter()
rec = b.prepare((1, 3, h, w))
t4 = time.perf_counter()
b(np.zeros((1, 3, h, w), np.float32))
t5 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "read_s": t3 - t2, "compile_s": t4 - t3,
                  "first_inference_s": t5 - t4, "total_s": t5 - t0,
                  "from_cache": rec.from_cache}))
"""
PHASES = ("import_s", "read_s", "compile_s", "first_inference_s", "total_s")


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def one_start(model: str, cache: str, hw, threads: int, hint: str = "f32") -> Dict[str, object]:
    p = subprocess.run([sys.executable, "-c", CHILD, model, cache, str(hw[0]), str(hw[1]),
                        str(threads), hint], capture_output=True, text=True, cwd=str(_REPO),
                       env={**os.environ, "PYTHONPATH": str(_REPO)})
    if p.returncode != 0:
        lines = (p.stderr.strip() or p.stdout.strip() or "no output").splitlines()
        raise UserError(f"a start failed: {lines[-1]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="openvino_start.py", description=__doc__.splitlines()[0])
    p.add_argument("--precision", choices=("fp32", "fp16", "int8"), default="int8",
                   help="which shipped graph (default %(default)s)")
    p.add_argument("--model", help="another ONNX graph instead of a shipped one")
    p.add_argument("--size", type=argparse_type(name="--size", multiple=32, order="hw_out"),
                   default=(512, 640), metavar="WxH", help="network input (default 640x512)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--ov-hint", choices=("f32", "bf16"), default="f32",
                   help="OpenVINO precision hint (default %(default)s)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--json", help="write every start as JSON here")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    return run_cli(lambda: _main(args), prog="openvino_start")


def _main(args: argparse.Namespace) -> int:
    from oscar_edge.backends.factory import onnx_model_path
    from oscar_edge.backends.openvino_backend import import_openvino

    ov = import_openvino()
    if args.repeats < 1:
        raise UserError("--repeats must be >= 1")
    model = str(onnx_model_path(args.model, None if args.model else args.precision))
    runs: Dict[str, List[Dict[str, object]]] = {"cold": [], "cached": []}
    for _ in range(args.repeats):
        with tempfile.TemporaryDirectory(prefix="ov-cache-") as cache:
            runs["cold"].append(one_start(model, cache, args.size, args.threads,
                                                args.ov_hint))
            runs["cached"].append(one_start(model, cache, args.size, args.threads,
                                                args.ov_hint))
    h, w = args.size
    print(f"OpenVINO {ov.get_version().split('-')[0]}, {Path(model).name}, 1x3x{h}x{w}, "
          f"{args.threads} threads, hint {args.ov_hint}; {cpu_name()} ({os.cpu_count()} CPUs), "
          f"median of {args.repeats} starts, each in a fresh process\n")
    print("| start | cache | import openvino (s) | read ONNX (s) | reshape + compile / load (s) "
          "| first inference (s) | total (s) |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for name, rs in runs.items():
        hits = {r["from_cache"] for r in rs}
        med = {k: statistics.median(float(r[k]) for r in rs) for k in PHASES}
        print(f"| {'first (empty cache)' if name == 'cold' else 'second (same cache)'} "
              f"| {'loaded' if hits == {True} else 'compiled' if hits == {False} else hits} "
              + "".join(f"| {med[k]:.3f} " for k in PHASES) + "|")
    if args.json:
        Path(args.json).write_text(json.dumps({"model": model, "size": [h, w],
                                               "threads": args.threads,
                                               "ov_hint": args.ov_hint, "runs": runs},
                                              indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
