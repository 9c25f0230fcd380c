#!/usr/bin/env python3
"""Where ONNX Runtime's CPU inference time goes, per operator type (and the slowest nodes).

``benchmarks/latency.py`` says which *stage* of the frame-to-detections path holds a goal back
(preprocess, inference, post-processing). When it is inference, this script says which
*operators* inside the network take the time, from ONNX Runtime's own profiler:

    python benchmarks/ort_op_profile.py --onnx oscar_edge/weights/oscar-edge.onnx \\
        --size 640x512 --threads 2 --runs 50 --warmup 10 [--json out.json]

Output: a Markdown table (op type, nodes, mean ms per run, share of the summed kernel time)
and the ten slowest nodes. Kernel times are ORT's per-node ``kernel_time`` events of the timed
runs (after ``--warmup`` untimed ones); their sum is a little below the wall time of a run
(session overhead, thread hand-off). Profiling adds overhead of its own: use latency.py for
the latency figures and this for the shares. Inputs are random normal tensors: the network's
arithmetic does not depend on the pixel values.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from latency_bench.common import parse_size  # noqa: E402  (the benchmarks' --size parser)
from oscar_edge.errors import UserError  # noqa: E402  (latency_bench put the checkout on sys.path)

REPO = HERE.parent
DEFAULT_ONNX = REPO / "oscar_edge" / "weights" / "oscar-edge.onnx"


def aggregate(events: Sequence[dict], warmup: int) -> Tuple[Dict[str, Dict[str, float]],
                                                           List[Tuple[str, str, float]], int]:
    """ORT profile events -> ({op type: {"us": total, "nodes": n}}, [(node, op, us)], runs).

    Only node kernel events that start after the end of the ``warmup``-th ``model_run`` count.
    """
    runs = sorted((e for e in events if e.get("cat") == "Session" and e.get("name") == "model_run"),
                  key=lambda e: e["ts"])
    if len(runs) <= warmup:
        raise ValueError(f"the profile holds {len(runs)} runs, not more than the {warmup} warm-up runs")
    start = runs[warmup - 1]["ts"] + runs[warmup - 1]["dur"] if warmup > 0 else -1
    by_op: Dict[str, Dict[str, float]] = defaultdict(lambda: {"us": 0.0, "nodes": 0})
    by_node: Dict[Tuple[str, str], float] = defaultdict(float)
    for e in events:
        if e.get("cat") != "Node" or not str(e.get("name", "")).endswith("_kernel_time"):
            continue
        if e["ts"] < start:
            continue
        op = e.get("args", {}).get("op_name", "?")
        node = e["name"][: -len("_kernel_time")]
        by_op[op]["us"] += float(e["dur"])
        by_node[(node, op)] += float(e["dur"])
    for (node, op) in by_node:
        by_op[op]["nodes"] += 1
    slow = sorted(((n, o, us) for (n, o), us in by_node.items()), key=lambda t: -t[2])
    return dict(by_op), slow, len(runs) - warmup


def profile(onnx_path: Path, hw: Tuple[int, int], threads: Optional[int], runs: int,
            warmup: int, batch: int = 1) -> dict:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.enable_profiling = True
    if threads:
        so.intra_op_num_threads = threads
    with tempfile.TemporaryDirectory() as tmp:
        so.profile_file_prefix = os.path.join(tmp, "ort")
        sess = ort.InferenceSession(str(onnx_path), so, providers=["CPUExecutionProvider"])
        name = sess.get_inputs()[0].name
        x = np.random.default_rng(0).normal(0, 1, (batch, 3) + tuple(hw)).astype(np.float32)
        for _ in range(warmup + runs):
            sess.run(None, {name: x})
        with open(sess.end_profiling()) as f:
            events = json.load(f)
    by_op, slow, n = aggregate(events, warmup)
    total = sum(v["us"] for v in by_op.values())
    return {
        "onnx": str(onnx_path), "size": f"{hw[1]}x{hw[0]}", "batch": batch, "threads": threads,
        "runs": n, "onnxruntime": ort.__version__, "kernel_ms_per_run": total / n / 1000.0,
        "ops": sorted(({"op": op, "nodes": int(v["nodes"]), "ms": v["us"] / n / 1000.0,
                        "share_pct": 100.0 * v["us"] / total if total else 0.0}
                       for op, v in by_op.items()), key=lambda r: -r["ms"]),
        "slowest_nodes": [{"node": nd, "op": op, "ms": us / n / 1000.0} for nd, op, us in slow[:10]],
    }


def markdown(rep: dict) -> str:
    lines = [f"ONNX Runtime {rep['onnxruntime']} CPU, {Path(rep['onnx']).name}, "
             f"{rep['size']} batch {rep['batch']}, {rep['threads'] or 'default'} threads, "
             f"{rep['runs']} profiled runs: {rep['kernel_ms_per_run']:.2f} ms of kernel time per run",
             "", "| op type | nodes | ms / run | share |", "|---|---:|---:|---:|"]
    lines += [f"| {r['op']} | {r['nodes']} | {r['ms']:.3f} | {r['share_pct']:.1f} % |"
              for r in rep["ops"]]
    lines += ["", "| slowest nodes | op | ms / run |", "|---|---|---:|"]
    lines += [f"| {r['node']} | {r['op']} | {r['ms']:.3f} |" for r in rep["slowest_nodes"]]
    return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--onnx", type=Path, default=DEFAULT_ONNX,
                    help="ONNX model (default: the shipped oscar-edge.onnx)")
    ap.add_argument("--size", default="640x512", help="WIDTHxHEIGHT, multiples of 32 (640x512)")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--threads", type=int, default=None, help="intra-op threads (ORT default)")
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--json", type=Path, default=None, help="also write the report here")
    args = ap.parse_args(argv)
    try:
        hw = parse_size(args.size)
    except UserError as exc:
        print(f"ort_op_profile: {exc}", file=sys.stderr)
        return 2
    if not args.onnx.is_file():
        print(f"ort_op_profile: ONNX file not found: {args.onnx}", file=sys.stderr)
        return 2
    if args.runs < 1 or args.warmup < 0 or args.batch < 1:
        print("ort_op_profile: --runs and --batch must be >= 1, --warmup >= 0", file=sys.stderr)
        return 2
    try:
        rep = profile(args.onnx, hw, args.threads, args.runs, args.warmup, args.batch)
    except ImportError:
        print("ort_op_profile: needs onnxruntime (pip install '.[export]')", file=sys.stderr)
        return 2
    except Exception as exc:  # a corrupt model, an input the graph rejects
        print(f"ort_op_profile: {args.onnx}: {str(exc).splitlines()[0] if str(exc) else exc!r}",
              file=sys.stderr)
        return 2
    print(markdown(rep))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(rep, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
