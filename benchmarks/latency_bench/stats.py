"""Timing and statistics: the frames (decoded, letterboxed), the timed loops (model only,
frame to detections), the latency statistics of a phase and the unstable-spread rule."""
from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from oscar_edge.errors import UserError

STAGES = ("preprocess", "inference", "postprocess")
CV_LIMIT_PCT = 10.0
TAIL_LIMIT = 1.5
TRTEXEC_CV_LIMIT_PCT = 1.0          # trtexec's kUNSTABLE_PERF_REPORTING_THRESHOLD (GPU compute)
UNSTABLE_RULE = ("unstable when CV (population std / mean) > {cv:g} % or p99 / p50 > {tail:g} "
                 "(trtexec warns above {trt:g} % CV of GPU compute time)")


def summarize(samples_ns: Sequence[int], batch: int = 1,
              wall_ns: Optional[int] = None) -> Dict[str, float]:
    """Latency statistics in ms of one phase: count, min, mean, p50, p90, p95, p99, max, std
    (population), cv_pct, p99_over_p50, throughput_fps (``batch`` frames per call over the wall
    time of the loop; the sum of the samples when ``wall_ns`` is not given).

    min / mean / max / p50 / p90 / p99 come from ``oscar_edge.latency.Reservoir`` (the runtime's
    statistics: exact, ``numpy.percentile`` with linear interpolation), the rest from numpy."""
    from oscar_edge.latency import Reservoir

    arr = np.asarray(samples_ns, dtype=np.int64).reshape(-1)
    if arr.size == 0:
        raise ValueError("no samples")
    res = Reservoir(capacity=int(arr.size))
    for v in arr.tolist():
        res.add(v)
    s: Dict[str, float] = dict(res.summary())
    ms = arr.astype(np.float64) / 1e6
    s["p95_ms"] = float(np.percentile(ms, 95))
    s["std_ms"] = float(ms.std())
    s["cv_pct"] = 100.0 * s["std_ms"] / s["mean_ms"] if s["mean_ms"] > 0 else 0.0
    s["p99_over_p50"] = s["p99_ms"] / s["p50_ms"] if s["p50_ms"] > 0 else float("inf")
    wall = float(wall_ns) if wall_ns else float(arr.sum())
    s["throughput_fps"] = batch * arr.size / (wall / 1e9) if wall > 0 else 0.0
    return s


def spread_warning(stats: Dict[str, float], cv_limit: float = CV_LIMIT_PCT,
                   tail_limit: float = TAIL_LIMIT) -> Optional[str]:
    """The reason the spread of ``stats`` counts as unstable, or None."""
    reasons = []
    if stats["cv_pct"] > cv_limit:
        reasons.append(f"CV {stats['cv_pct']:.1f} % > {cv_limit:g} %")
    if stats["p99_over_p50"] > tail_limit:
        reasons.append(f"p99/p50 {stats['p99_over_p50']:.2f} > {tail_limit:g}")
    return "; ".join(reasons) or None


# ============================================================================ frames
def list_frames(data: Path, split: str, count: int) -> List[Path]:
    from oscar_edge.data.annotations import IMAGE_DIR, SPLIT_DIR, read_split

    if not data.is_dir():
        raise UserError(f"data folder not found: {data} (pass --data, e.g. "
                        "../shared/data/sirst-v2)")
    if (data / SPLIT_DIR).is_dir():
        paths = [data / IMAGE_DIR / f"{n}.png" for n in read_split(data, split)]
    else:
        paths = sorted(p for p in data.iterdir()
                       if p.suffix.lower() in (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"))
    if not paths:
        raise UserError(f"no frames in {data} (split {split})")
    return paths[:max(1, count)]


def load_frames(paths: Sequence[Path]) -> List[np.ndarray]:
    from oscar_edge.preprocess import read_grey

    return [read_grey(str(p)) for p in paths]


def letterboxed_batches(greys: Sequence[np.ndarray], batch: int,
                        hw: Tuple[int, int]) -> List[np.ndarray]:
    """The model-only inputs: frame i*B .. i*B+B-1 letterboxed to ``hw`` and stacked, for as
    many batches as it takes to use every frame once (at least one)."""
    from oscar_edge.preprocess import prepare

    xs = [prepare(g, input_size=hw)[0] for g in greys]
    n = max(1, math.ceil(len(xs) / batch))
    return [np.ascontiguousarray(np.stack([xs[(i * batch + b) % len(xs)] for b in range(batch)]))
            for i in range(n)]


# ============================================================================ timing
def time_model_only(infer: Callable, batches: Sequence[np.ndarray], runs: int,
                    warmup: int) -> Tuple[np.ndarray, int]:
    """(per-call ns, wall ns of the timed loop)."""
    n = len(batches)
    for i in range(warmup):
        infer(batches[i % n])
    pc = time.perf_counter_ns
    samples = np.empty(runs, dtype=np.int64)
    start = pc()
    for i in range(runs):
        x = batches[i % n]
        t0 = pc()
        infer(x)
        samples[i] = pc() - t0
    return samples, pc() - start


def time_full_path(detector, greys: Sequence[np.ndarray], batch: int, runs: int,
                   warmup: int) -> Tuple[Dict[str, np.ndarray], int, float]:
    """Grey frames -> detections: ({stage: ns per iteration, "total": ns}, wall ns, mean
    detections per frame)."""
    n = len(greys)
    pc = time.perf_counter_ns
    out = {k: np.empty(runs, dtype=np.int64) for k in STAGES + ("total",)}
    dets = 0

    def one(i: int):
        frames = [greys[(i * batch + b) % n] for b in range(batch)]
        t0 = pc()
        prepared = [detector.preprocess(g) for g in frames]
        x = prepared[0][0][None] if batch == 1 else np.stack([p[0] for p in prepared])
        t1 = pc()
        outs = detector.infer(x)
        t2 = pc()
        # the prepared input goes along: the default pipeline's peak refinement reads it
        if batch == 1:
            found = [detector.postprocess(outs, prepared[0][1], prepared[0][0])]
        else:
            found = [detector.postprocess(tuple(np.asarray(o)[b:b + 1] for o in outs),
                                          prepared[b][1], prepared[b][0]) for b in range(batch)]
        t3 = pc()
        return (t0, t1, t2, t3), found

    for i in range(warmup):
        one(i)
    start = pc()
    for i in range(runs):
        (t0, t1, t2, t3), found = one(i)
        out["preprocess"][i] = t1 - t0
        out["inference"][i] = t2 - t1
        out["postprocess"][i] = t3 - t2
        out["total"][i] = t3 - t0
        dets += sum(len(d.scores) for d in found)
    return out, pc() - start, dets / (runs * batch)
