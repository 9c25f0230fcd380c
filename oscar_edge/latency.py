"""Latency statistics of the runtime: per stage and end to end, mean and tails.

Stages of one frame (all from ``time.perf_counter_ns()``):

| key | from | to |
|---|---|---|
| ``capture_age`` | the frame's read returned (capture) | preprocessing starts |
| ``preprocess`` | grey conversion, resize, normalise, pad | |
| ``inference`` | the backend call (host->device->host included for TensorRT) | |
| ``postprocess`` | decode + NMS (or the engine's NMS output) and mapping back to frame pixels | |
| ``track`` | with ``--track`` only: camera motion (if on) and the tracker's update | |
| ``render`` | drawing, video / display / snapshot writing | |
| ``end_to_end`` | capture | detections ready in frame pixels (post-processing done; with ``--track``, tracks ready) |

The time between stages (waiting in the bounded queues) is in ``end_to_end`` but in no stage.

Percentiles: exact over all frames up to ``capacity`` samples per stage (default 100,000, i.e.
about an hour at 30 FPS); beyond that over a uniform reservoir sample of ``capacity`` frames
(Vitter's algorithm R, fixed seed). Count, mean, min and max are always exact.
"""
from __future__ import annotations

import math
import random
from typing import Dict, Iterable, List, Mapping, Optional

import numpy as np

STAGES = ("capture_age", "preprocess", "inference", "postprocess", "track", "render",
          "end_to_end")
STAGE_LABELS = {
    "capture_age": "capture age",
    "preprocess": "pre-process",
    "inference": "inference",
    "postprocess": "post-process",
    "track": "track",
    "render": "render/output",
    "end_to_end": "end-to-end",
}
PERCENTILES = (50, 90, 99)
DEFAULT_CAPACITY = 100_000


class Reservoir:
    """Exact count / sum / min / max, and the samples for percentiles (all of them up to
    ``capacity``, then a uniform reservoir)."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY, seed: int = 0) -> None:
        if capacity < 1:
            raise ValueError("capacity must be >= 1")
        self.capacity = capacity
        self._samples = np.zeros(min(capacity, 1024), dtype=np.int64)
        self._n_kept = 0
        self.count = 0
        self.total = 0
        self.min: Optional[int] = None
        self.max: Optional[int] = None
        self._rng = random.Random(seed)

    def add(self, value_ns: int) -> None:
        v = int(value_ns)
        self.count += 1
        self.total += v
        self.min = v if self.min is None else min(self.min, v)
        self.max = v if self.max is None else max(self.max, v)
        if self._n_kept < self.capacity:
            if self._n_kept == self._samples.size:
                grown = np.zeros(min(self.capacity, self._samples.size * 2), dtype=np.int64)
                grown[:self._n_kept] = self._samples[:self._n_kept]
                self._samples = grown
            self._samples[self._n_kept] = v
            self._n_kept += 1
        else:
            j = self._rng.randrange(self.count)
            if j < self.capacity:
                self._samples[j] = v

    @property
    def exact(self) -> bool:
        return self.count <= self.capacity

    def summary(self) -> Dict[str, float]:
        """mean / p50 / p90 / p99 / max / min in milliseconds, and count."""
        if self.count == 0:
            return {"count": 0}
        kept = self._samples[:self._n_kept].astype(np.float64)
        out = {"count": self.count, "mean_ms": self.total / self.count / 1e6}
        for p in PERCENTILES:
            out[f"p{p}_ms"] = float(np.percentile(kept, p)) / 1e6
        out["max_ms"] = self.max / 1e6
        out["min_ms"] = self.min / 1e6
        return out


class LatencyStats:
    """One Reservoir per stage; ``add`` takes a frame's stage durations in nanoseconds."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        self.capacity = capacity
        self.stages = {name: Reservoir(capacity, seed=i) for i, name in enumerate(STAGES)}
        self.frames = 0
        self.first_capture_ns: Optional[int] = None
        self.last_done_ns: Optional[int] = None

    def add(self, durations_ns: Mapping[str, int], t_capture_ns: Optional[int] = None,
            t_done_ns: Optional[int] = None) -> None:
        self.frames += 1
        for name, value in durations_ns.items():
            if name in self.stages and value is not None:
                self.stages[name].add(value)
        if t_capture_ns is not None and (self.first_capture_ns is None
                                         or t_capture_ns < self.first_capture_ns):
            self.first_capture_ns = t_capture_ns
        if t_done_ns is not None:
            self.last_done_ns = t_done_ns

    def fps(self) -> float:
        """Frames per second from the first frame's capture to the last frame's output."""
        if self.frames < 2 or self.first_capture_ns is None or self.last_done_ns is None:
            return 0.0
        span = (self.last_done_ns - self.first_capture_ns) / 1e9
        return self.frames / span if span > 0 else 0.0

    def summary(self) -> Dict[str, object]:
        exact = all(r.exact for r in self.stages.values())
        return {
            "frames": self.frames,
            "fps": self.fps(),
            "percentiles_over": ("all frames" if exact else
                                 f"a uniform reservoir of {self.capacity} frames per stage"),
            "stages": {name: r.summary() for name, r in self.stages.items()},
        }


def frame_durations(marks: Mapping[str, int], t_capture: int) -> Dict[str, int]:
    """Stage durations (ns) from a frame's time stamps ``<stage>_start`` / ``<stage>_end``
    (see the table above)."""
    d: Dict[str, int] = {}
    if "preprocess_start" in marks:
        d["capture_age"] = marks["preprocess_start"] - t_capture
    for stage in ("preprocess", "inference", "postprocess", "track", "render"):
        a, b = marks.get(f"{stage}_start"), marks.get(f"{stage}_end")
        if a is not None and b is not None:
            d[stage] = b - a
    ready = marks.get("track_end", marks.get("postprocess_end"))
    if ready is not None:
        d["end_to_end"] = ready - t_capture
    return d


def _fmt(v: Optional[float]) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    return f"{v:8.2f}"


def format_report(summary: Mapping[str, object], counters: Mapping[str, object],
                  title: str, notes: Iterable[str] = (), window: bool = False) -> str:
    """A fixed-width table in the spirit of jetson-inference's timing report, with tails."""
    lines: List[str] = [f"[oscar-edge] {title}"]
    lines.append(f"  {'stage':<15}{'mean':>8} {'p50':>8} {'p90':>8} {'p99':>8} {'max':>8}   "
                 "(ms)")
    stages = summary.get("stages", {})
    for name in STAGES:
        s = stages.get(name, {})
        if not s.get("count"):
            continue
        row = "".join(f" {_fmt(s.get(k))}" for k in ("mean_ms", "p50_ms", "p90_ms", "p99_ms",
                                                      "max_ms"))
        lines.append(f"  {STAGE_LABELS[name]:<14}{row}")
    fps = summary.get("fps", 0.0) or 0.0
    c = counters
    frame_bits = [f"processed {c.get('processed', 0)}", f"captured {c.get('captured', 0)}",
                  f"dropped {c.get('dropped', 0)}", f"corrupt {c.get('corrupt', 0)}"]
    if c.get("disconnects"):
        frame_bits.append(f"drop-outs {c.get('disconnects')} (reopened {c.get('reconnects', 0)})")
    lines.append(f"  throughput {fps:.1f} FPS{' in this interval' if window else ''}; "
                 f"frames{' so far' if window else ''}: " + ", ".join(frame_bits))
    ready = "tracks" if stages.get("track", {}).get("count") else "detections"
    lines.append(f"  end-to-end = frame captured -> {ready} ready; percentiles over "
                 f"{summary.get('percentiles_over', 'all frames')}")
    for note in notes:
        lines.append(f"  {note}")
    return "\n".join(lines)
