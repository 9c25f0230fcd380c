#!/usr/bin/env python
"""Which ground-truth targets a model misses, and by how much: one row per target.

    python benchmarks/missed_targets.py --onnx oscar_edge/weights/oscar-edge.onnx \
        --split val_full --threads 2 [--score-thr 0.1] [--peak-refine off] \
        [--input-size 640x512] [--json rows.json]

A target counts as found, as in Pd (``oscar_edge.metrics.pd_fa``), when a detection of score
>= ``--score-thr`` has its centre inside the box (inclusive bounds). For every target the rows
give its size in image pixels, the highest score of any detection whose centre lies inside it
(0 when none) and the distance from its centre to the nearest detection at the threshold
(None when the image has none), and its side in network pixels (geometric mean side times the
letterbox scale).
Prints the missed targets, worst first, counts of small (geometric mean side <= 6 px) and
near-threshold (score >= half the threshold) misses, and the share of targets found by their
side in network pixels: the table that shows whether a model's accuracy across input sizes
follows the targets' size in its input. Runs on ONNX Runtime's CPU provider with the
runtime's default keep-ratio fit, or a fixed letterbox with ``--input-size WxH``.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

_REPO = Path(__file__).resolve().parents[1]
if (_REPO / "oscar_edge" / "__init__.py").is_file():
    sys.path.insert(0, str(_REPO))

from oscar_edge.errors import UserError, run_cli  # noqa: E402
from oscar_edge.metrics import _centres, _contains  # noqa: E402  (Pd's centre-in-box rule)
from oscar_edge.sizes import argparse_type, size_label  # noqa: E402

SMALL_SIDE_PX = 6.0
# Bins of a target's geometric mean side in network pixels (lower edges; the last is open).
NET_SIDE_BINS = (0.0, 4.0, 6.0, 8.0, 12.0, 16.0)


def side_bin_rows(rows: List[Dict[str, float]], score_thr: float) -> List[Dict[str, object]]:
    """Found / total targets per ``NET_SIDE_BINS`` bin of ``net_side`` (found: Pd's rule)."""
    out = []
    for i, lo in enumerate(NET_SIDE_BINS):
        hi = NET_SIDE_BINS[i + 1] if i + 1 < len(NET_SIDE_BINS) else None
        sel = [r for r in rows if r["net_side"] >= lo and (hi is None or r["net_side"] < hi)]
        label = f"{lo:g}-{hi:g}" if hi is not None else f">= {lo:g}"
        out.append({"net_side_px": label, "targets": len(sel),
                    "found": sum(r["best_score_inside"] >= score_thr for r in sel)})
    return out


def target_rows(boxes: np.ndarray, scores: np.ndarray, gt: np.ndarray,
                score_thr: float) -> List[Dict[str, float]]:
    """One row per ground-truth box (G, 4) xyxy against detections (N, 4) / (N,); "inside" is
    Pd's rule (``oscar_edge.metrics``: detection centre in the box, inclusive bounds)."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    gt = np.asarray(gt, dtype=np.float64).reshape(-1, 4)
    cx, cy = _centres(boxes)
    inside = _contains(gt, cx, cy)                                  # (N, G)
    gx, gy = _centres(gt)
    dist = np.hypot(cx[:, None] - gx[None, :], cy[:, None] - gy[None, :])  # (N, G)
    kept = scores >= score_thr
    rows = []
    for j, g in enumerate(gt):
        hit = inside[:, j]
        rows.append({"w": float(g[2] - g[0]), "h": float(g[3] - g[1]),
                     "best_score_inside": float(scores[hit].max()) if hit.any() else 0.0,
                     "nearest_px": float(dist[kept, j].min()) if kept.any() else None})
    return rows


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="missed_targets.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--onnx", required=True, help="exported raw-head graph")
    p.add_argument("--data", default=None, help="SIRST-V2 root")
    p.add_argument("--split", default="val_full")
    p.add_argument("--score-thr", type=float, default=0.1)
    p.add_argument("--peak-refine", choices=("on", "off"), default="on")
    p.add_argument("--input-size", default=None, metavar="WxH",
                   type=argparse_type(name="--input-size", multiple=32, order="hw_out"),
                   help="a fixed letterbox input, as the runtime's --input-size (default: the "
                        "keep-ratio fit)")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--json", default=None, help="write every target's row here")
    return p


def _main(args: argparse.Namespace) -> int:
    from oscar_edge.backends.factory import create_backend
    from oscar_edge.data import default_data_root
    from oscar_edge.data.annotations import load_samples
    from oscar_edge.evaluate import make_detector
    from oscar_edge.preprocess import read_grey

    if not Path(args.onnx).is_file():
        raise UserError(f"--onnx: file not found: {args.onnx}")
    if not 0.0 < args.score_thr < 1.0:
        raise UserError(f"--score-thr must be in (0, 1), got {args.score_thr}")
    hw = args.input_size  # (height, width) or None
    samples = load_samples(args.data or default_data_root(), args.split)
    backend = create_backend("onnxruntime", model=args.onnx, threads=args.threads).backend
    detector = make_detector(backend, args.peak_refine, hw)
    rows = []
    for s in samples:
        d = detector(read_grey(s.image_path))
        scale = (d.letterbox.scale_x * d.letterbox.scale_y) ** 0.5
        for r in target_rows(d.boxes, d.scores, s.boxes, args.score_thr):
            rows.append({"image": Path(s.image_path).name, **r, "scale": float(scale),
                         "net_side": float((r["w"] * r["h"]) ** 0.5 * scale)})
    missed = sorted((r for r in rows if r["best_score_inside"] < args.score_thr),
                    key=lambda r: r["best_score_inside"])
    small = [r for r in missed if (r["w"] * r["h"]) ** 0.5 <= SMALL_SIDE_PX]
    near = [r for r in missed if r["best_score_inside"] >= args.score_thr / 2]
    size = f"input {size_label(hw)} fixed" if hw else "keep-ratio fit"
    print(f"{Path(args.onnx).name} on {args.split}, {size}, peak refinement {args.peak_refine}, "
          f"score >= {args.score_thr:g}: {len(missed)} of {len(rows)} targets missed; "
          f"{len(small)} of them <= {SMALL_SIDE_PX:g} px (geometric mean side), {len(near)} "
          f"scored >= {args.score_thr / 2:g}")
    print("\n| image | box (px) | best score inside | nearest kept detection (px) |")
    print("|---|---|---:|---:|")
    for r in missed:
        near_px = "-" if r["nearest_px"] is None else f"{r['nearest_px']:.1f}"
        print(f"| {r['image']} | {r['w']:g} x {r['h']:g} | {r['best_score_inside']:.3f} | "
              f"{near_px} |")
    print("\n| target side in the network input (px) | targets | found |")
    print("|---|---:|---:|")
    for b in side_bin_rows(rows, args.score_thr):
        print(f"| {b['net_side_px']} | {b['targets']} | {b['found']} |")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1) + "\n")
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    return run_cli(lambda: _main(args), prog="missed_targets.py")


if __name__ == "__main__":
    sys.exit(main())
