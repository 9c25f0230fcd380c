"""CPU decode + NMS latency for one 640x512 frame: native library vs numpy reference; and the
peak refinement (README.md, "Peak-centred localization") of 100 boxes on that frame.

Synthetic but realistic raw head outputs: a 640x512 input (P2 grid 160x128, P3 80x64) with 30
small targets (logit blobs of a few P2 points with boxes of 4-16 px), background logits well
below the 0.05 threshold. Each variant runs WARMUP times, then RUNS timed calls
(time.perf_counter_ns around each call); the table gives median and p99 in milliseconds.
Allocation: tracemalloc over the timed calls of the buffer-keeping native variant shows the
peak of Python-visible allocation per call (numpy arrays included); the C++ library itself
never allocates (caller-provided buffers and workspace).

Peak refinement: a 640x512 network input (3 channels, normalised grey with 30 bright targets)
and 100 kept boxes of 4-40 px (SIRST-V2's target sizes: 3 to 42 px) at random places, half of
them around the targets; also 100 boxes of 64x64 px as a heavier case. Timed: the native
``peak_refine`` (one ctypes call, the C++ loop over the boxes), the numpy reference, and decode
+ NMS + refinement in one native call against decode + NMS alone (the refinement's share of the
combined call).

    python benchmarks/postprocess_cpu.py [--runs 1000] [--warmup 100]

Prints a Markdown table. CPU figures from an x86 build machine say nothing about a Jetson.
"""
from __future__ import annotations

import argparse
import os
import platform
import time
import tracemalloc
from typing import Callable, List, Tuple

import numpy as np

try:
    import oscar_edge  # noqa: F401  (installed, or run from the repository root with -m)
except ImportError:  # `python benchmarks/postprocess_cpu.py` from a checkout
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from oscar_edge import postprocess as pp  # noqa: E402
from oscar_edge.native import NativePostprocessor  # noqa: E402

INPUT_HW = (512, 640)  # network input (height, width)
TARGETS = 30


def synthetic_outputs(seed: int = 0, targets: int = TARGETS) -> Tuple[np.ndarray, ...]:
    """Five raw outputs (no batch axis) for one frame with ``targets`` small targets."""
    rng = np.random.default_rng(seed)
    h, w = INPUT_HW
    h4, w4, h8, w8 = h // 4, w // 4, h // 8, w // 8
    refine = rng.normal(-7.0, 1.0, (1, h4, w4))
    noco = rng.normal(-4.0, 1.0, (1, h4, w4))
    coarse = rng.normal(-6.0, 1.0, (1, h8, w8))
    deltas = rng.normal(0.0, 0.3, (4, h4, w4))
    dist = rng.uniform(2.0, 6.0, (4, h8, w8))
    yy4, xx4 = np.mgrid[0:h4, 0:w4]
    yy8, xx8 = np.mgrid[0:h8, 0:w8]
    for _ in range(targets):
        cy, cx = rng.uniform(8, h - 8), rng.uniform(8, w - 8)
        size = rng.uniform(4.0, 16.0, 2)
        peak = rng.uniform(1.0, 6.0)
        d4 = ((yy4 + 0.5) * 4 - cy) ** 2 + ((xx4 + 0.5) * 4 - cx) ** 2
        d8 = ((yy8 + 0.5) * 8 - cy) ** 2 + ((xx8 + 0.5) * 8 - cx) ** 2
        blob4 = np.exp(-d4 / (2 * 5.0 ** 2))
        blob8 = np.exp(-d8 / (2 * 8.0 ** 2))
        refine = np.maximum(refine, -7.0 + (peak + 7.0) * blob4)
        noco = np.maximum(noco, -4.0 + (peak + 5.0) * blob4)
        coarse = np.maximum(coarse, -6.0 + (peak + 6.0) * blob8)
        near = blob8 > 0.2
        px, py = (xx8 + 0.5) * 8, (yy8 + 0.5) * 8
        dist[0][near] = (px - (cx - size[1] / 2))[near]
        dist[1][near] = (py - (cy - size[0] / 2))[near]
        dist[2][near] = ((cx + size[1] / 2) - px)[near]
        dist[3][near] = ((cy + size[0] / 2) - py)[near]
    f32 = lambda a: np.ascontiguousarray(a, dtype=np.float32)  # noqa: E731
    # the network's coarse_bbox output holds log-distances (the decode applies exp)
    return f32(refine), f32(deltas), f32(noco), f32(coarse), f32(np.log(np.maximum(dist, 0.25)))


def synthetic_frame(seed: int = 0, boxes: int = 100, size: Tuple[float, float] = (4.0, 40.0),
                    targets: int = TARGETS) -> Tuple[np.ndarray, np.ndarray]:
    """(3, 512, 640) float32 network input and (boxes, 4) float32 boxes for the refinement."""
    from oscar_edge.preprocess import MEAN, STD

    rng = np.random.default_rng(100 + seed)
    h, w = INPUT_HW
    yy, xx = np.mgrid[0:h, 0:w]
    grey = 70 + 25 * np.sin(yy / 41.0) * np.cos(xx / 57.0) + rng.normal(0, 4, (h, w))
    centres = rng.uniform((8, 8), (h - 8, w - 8), (targets, 2))
    for cy, cx in centres:
        grey += rng.uniform(40, 200) * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2)
                                              / (2 * rng.uniform(0.7, 2.5) ** 2))
    grey = np.clip(np.round(grey), 0, 255).astype(np.float32)
    image = np.broadcast_to((grey - np.float32(MEAN)) / np.float32(STD), (3, h, w)).copy()
    wh = rng.uniform(size[0], size[1], (boxes, 2))
    c = rng.uniform((0, 0), (w, h), (boxes, 2))
    c[: boxes // 2] = centres[rng.integers(0, targets, boxes // 2)][:, ::-1] + \
        rng.normal(0, 3, (boxes // 2, 2))
    b = np.concatenate([c - wh / 2, c + wh / 2], axis=1)
    b[:, 0::2] = np.clip(b[:, 0::2], 0, w)
    b[:, 1::2] = np.clip(b[:, 1::2], 0, h)
    return image.astype(np.float32), b.astype(np.float32)


def time_calls(fn: Callable[[], object], runs: int, warmup: int) -> np.ndarray:
    for _ in range(warmup):
        fn()
    out = np.empty(runs, dtype=np.int64)
    for i in range(runs):
        t0 = time.perf_counter_ns()
        fn()
        out[i] = time.perf_counter_ns() - t0
    return out / 1e6


def peak_alloc_per_call(fn: Callable[[], object], runs: int) -> Tuple[int, int]:
    """(peak bytes above the start, bytes still held at the end) over ``runs`` calls."""
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        for _ in range(runs):
            fn()
        current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak - base, current - base


def main(argv: List[str] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=1000)
    ap.add_argument("--warmup", type=int, default=100)
    args = ap.parse_args(argv)

    outs = synthetic_outputs()
    clamp = INPUT_HW
    native = NativePostprocessor()
    ref_boxes, ref_scores = pp.postprocess_image(outs, clamp)
    nat_boxes, nat_scores = native.postprocess_image(outs, clamp)
    assert np.array_equal(ref_boxes, nat_boxes) and np.array_equal(ref_scores, nat_scores)
    n_cand = int((pp.sigmoid(outs[0]) > pp.SCORE_THR).sum())

    variants = [
        ("native `postprocess_image_views` (kept buffers)",
         lambda: native.postprocess_image_views(outs, clamp)),
        ("native `postprocess_image` (copies the kept rows)",
         lambda: native.postprocess_image(outs, clamp)),
        ("numpy reference `postprocess.postprocess_image`",
         lambda: pp.postprocess_image(outs, clamp)),
    ]
    # Long warm-up of the views variant past CPython's 20-tuple free list (see the tests).
    for _ in range(2100):
        native.postprocess_image_views(outs, clamp)
    peak, held = peak_alloc_per_call(variants[0][1], args.runs)

    rows = []
    for name, fn in variants:
        ms = time_calls(fn, args.runs, args.warmup)
        rows.append((name, np.median(ms), np.percentile(ms, 99), ms.min()))

    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    print(f"### CPU decode + NMS, one {INPUT_HW[1]}x{INPUT_HW[0]} frame "
          f"(P2 {INPUT_HW[1] // 4}x{INPUT_HW[0] // 4}), {TARGETS} targets\n")
    print(f"{n_cand} candidates above {pp.SCORE_THR}, {len(ref_boxes)} detections kept; "
          f"{args.runs} timed runs after {args.warmup} warm-up runs.  ")
    print(f"Machine: {platform.machine()} {platform.processor() or ''} {os.cpu_count()} CPUs, "
          f"load average {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f} (1/5/15 min), "
          f"numpy {np.__version__}, Python {platform.python_version()}.\n")
    print("| variant | median ms | p99 ms | min ms |")
    print("|---|---:|---:|---:|")
    for name, med, p99, lo in rows:
        print(f"| {name} | {med:.3f} | {p99:.3f} | {lo:.3f} |")
    print(f"\nAllocation over {args.runs} calls of the kept-buffer variant (tracemalloc, numpy "
          f"arrays included): peak {peak} B above the start, {held} B held at the end "
          "(transient ctypes/view objects only; no array or workspace is allocated per call).")
    speedup = rows[2][1] / rows[0][1]
    print(f"\nNative is {speedup:.1f}x faster than the numpy reference (median).")

    # -- peak refinement ---------------------------------------------------------------------
    image, boxes = synthetic_frame()
    _, big = synthetic_frame(size=(64.0, 64.0))
    clamp, scale = INPUT_HW, (1.0, 1.0)
    for b in (boxes, big):
        assert np.array_equal(native.peak_refine(b, image, clamp, scale),
                              pp.peak_refine(b, image, clamp, scale))
    assert np.array_equal(native.postprocess_image(outs, clamp, image=image)[0],
                          pp.postprocess_image(outs, clamp, image=image)[0])
    peak_variants = [
        ("native `peak_refine`, 100 boxes of 4-40 px (3x3 centroid on)",
         lambda: native.peak_refine(boxes, image, clamp, scale)),
        ("native `peak_refine`, 100 boxes of 4-40 px, centroid off",
         lambda: native.peak_refine(boxes, image, clamp, scale, False)),
        ("native `peak_refine`, 100 boxes of 64x64 px",
         lambda: native.peak_refine(big, image, clamp, scale)),
        ("numpy reference `postprocess.peak_refine`, 100 boxes of 4-40 px",
         lambda: pp.peak_refine(boxes, image, clamp, scale)),
        ("native decode + NMS (`postprocess_image_views`, as above)",
         lambda: native.postprocess_image_views(outs, clamp)),
        ("native decode + NMS + refinement in one call (`image=` given)",
         lambda: native.postprocess_image_views(outs, clamp, image=image)),
    ]
    rows = []
    for name, fn in peak_variants:
        runs = max(args.runs // 10, 20) if "numpy" in name else args.runs
        ms = time_calls(fn, runs, min(args.warmup, runs))
        rows.append((name, np.median(ms), np.percentile(ms, 99), ms.min()))
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    print(f"\n### Peak refinement, one {INPUT_HW[1]}x{INPUT_HW[0]} frame, 100 boxes\n")
    print(f"{len(ref_boxes)} boxes kept by NMS in the combined call; load average now "
          f"{load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f}.\n")
    print("| variant | median ms | p99 ms | min ms |")
    print("|---|---:|---:|---:|")
    for name, med, p99, lo in rows:
        print(f"| {name} | {med:.4f} | {p99:.4f} | {lo:.4f} |")
    print(f"\nRefinement inside the combined call: {rows[5][1] - rows[4][1]:.4f} ms (median "
          f"difference, {len(ref_boxes)} boxes); standalone call for 100 boxes "
          f"{rows[0][1]:.4f} ms (goal < 0.1 ms).")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
