"""Shared parts of the tracking benchmarks (tracker_choice.py, tracking_cost.py,
tracking_synthetic.py): a simulator of point-target detections with ground truth, the
distance-based scoring through motrics, and the trackers under test behind one interface.

Simulated detections (:func:`simulate`): ``targets`` point targets (boxes 2-10 px) moving at
9-90 px/s in straight lines with occasional turns, bouncing off the frame border, so that some
cross each other; each frame a target is detected with probability ``pd`` and also vanishes in
bursts of 3-8 frames (about one burst per 200 frames); detection centres carry Gaussian noise
(``noise_px``); ``clutter`` false alarms per frame on average (Poisson), uniformly placed, plus
``hot_spots`` stationary clutter points that fire in 30 % of the frames. ``keep`` < 1 keeps
each frame of the 30 FPS camera with that probability (a live source that drops frames: the
time between processed frames is irregular).

Scoring (:func:`score`): py-motmetrics / TrackEval style with a distance similarity, computed
by motrics: similarity = max(0, 1 - d / (2 R)) between a ground-truth centre and a reported
centre d px apart, matched at similarity >= 0.5 (d <= R) for MOTA and IDF1; HOTA averages
over motrics' localisation thresholds on the same similarity.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Dict, List, Sequence, Tuple

import numpy as np


@dataclass
class SimFrame:
    t: float                    # capture time (s)
    gt_ids: np.ndarray          # (G,) int
    gt_centres: np.ndarray      # (G, 2) px
    boxes: np.ndarray           # (N, 4) xyxy px
    scores: np.ndarray          # (N,)


def simulate(targets: int = 30, frames: int = 1000, size: Tuple[int, int] = (640, 512),
             fps: float = 30.0, pd: float = 0.9, clutter: float = 2.0, hot_spots: int = 3,
             noise_px: float = 0.5, keep: float = 1.0, seed: int = 0) -> List[SimFrame]:
    """Detections of a simulated scene (see the module docstring); ``frames`` camera frames,
    fewer processed when ``keep`` < 1."""
    rng = np.random.default_rng(seed)
    w, h = size
    margin = 10.0
    pos = np.column_stack([rng.uniform(margin, w - margin, targets),
                           rng.uniform(margin, h - margin, targets)])
    speed = rng.uniform(9.0, 90.0, targets)
    ang = rng.uniform(0, 2 * np.pi, targets)
    vel = np.column_stack([speed * np.cos(ang), speed * np.sin(ang)])
    half = rng.uniform(1.0, 5.0, targets)             # boxes 2-10 px
    burst_left = np.zeros(targets, np.int64)
    spots = np.column_stack([rng.uniform(0, w, hot_spots), rng.uniform(0, h, hot_spots)])
    dt = 1.0 / fps
    out: List[SimFrame] = []
    for k in range(frames):
        if k:
            turn = rng.random(targets) < 0.01         # a turn about every 3 s
            if turn.any():
                a = rng.uniform(-1.2, 1.2, turn.sum())
                c, s = np.cos(a), np.sin(a)
                v = vel[turn]
                vel[turn] = np.column_stack([c * v[:, 0] - s * v[:, 1], s * v[:, 0] + c * v[:, 1]])
            pos += vel * dt
            for d, lim in ((0, w), (1, h)):
                lo, hi = pos[:, d] < margin, pos[:, d] > lim - margin
                pos[lo, d] = 2 * margin - pos[lo, d]
                pos[hi, d] = 2 * (lim - margin) - pos[hi, d]
                vel[lo | hi, d] *= -1
        start = (burst_left == 0) & (rng.random(targets) < 1 / 200)
        burst_left[start] = rng.integers(3, 9, start.sum())
        seen = (rng.random(targets) < pd) & (burst_left == 0)
        burst_left = np.maximum(burst_left - 1, 0)
        process = k == 0 or rng.random() < keep
        if not process:
            continue
        c = pos[seen] + rng.normal(0, noise_px, (seen.sum(), 2))
        hh = half[seen][:, None]
        det_boxes = [np.hstack([c - hh, c + hh])]
        det_scores = [rng.uniform(0.3, 0.9, seen.sum())]
        n_fa = rng.poisson(clutter)
        fa = np.column_stack([rng.uniform(0, w, n_fa), rng.uniform(0, h, n_fa)])
        fire = rng.random(hot_spots) < 0.3
        fa = np.vstack([fa, spots[fire] + rng.normal(0, 0.5, (fire.sum(), 2))])
        fh = rng.uniform(1.0, 5.0, (len(fa), 1))
        det_boxes.append(np.hstack([fa - fh, fa + fh]))
        det_scores.append(rng.uniform(0.05, 0.4, len(fa)))
        out.append(SimFrame(k * dt, np.arange(targets), pos.copy(),
                            np.vstack(det_boxes).astype(np.float32),
                            np.concatenate(det_scores).astype(np.float32)))
    return out


def crossings(frames: Sequence[SimFrame], within_px: float = 6.0) -> int:
    """Close encounters: pairs of targets that come within ``within_px`` (counted once per
    approach)."""
    close_prev: set = set()
    n = 0
    for f in frames:
        c = f.gt_centres
        d = np.sqrt(((c[:, None] - c[None]) ** 2).sum(-1))
        i, j = np.nonzero(np.triu(d < within_px, 1))
        now = set(zip(i.tolist(), j.tolist()))
        n += len(now - close_prev)
        close_prev = now
    return n


# --------------------------------------------------------------------------------------------
# Scoring (motrics)
# --------------------------------------------------------------------------------------------
def score(gt_ids: Sequence[np.ndarray], gt_centres: Sequence[np.ndarray],
          pred_ids: Sequence[np.ndarray], pred_centres: Sequence[np.ndarray],
          radius_px: float) -> Dict[str, float]:
    """MOTA, IDF1, HOTA (and parts) of a tracker's output against ground truth, matching by
    centre distance (see the module docstring). Per frame arrays: ids (G,), centres (G, 2)."""
    try:
        import motrics
    except ImportError:
        raise SystemExit("the tracking benchmarks score with motrics: "
                         "pip install 'oscar-edge[track-bench]'") from None

    sims = []
    for g, p in zip(gt_centres, pred_centres):
        g = np.asarray(g, np.float64).reshape(-1, 2)
        p = np.asarray(p, np.float64).reshape(-1, 2)
        d = np.sqrt(((g[:, None, :] - p[None, :, :]) ** 2).sum(-1))
        sims.append(np.maximum(0.0, 1.0 - d / (2.0 * radius_px)).tolist())
    gi = [np.asarray(a, np.int64).reshape(-1).tolist() for a in gt_ids]
    pi = [np.asarray(a, np.int64).reshape(-1).tolist() for a in pred_ids]
    clear = motrics.compute_clear_from_similarity(gi, pi, sims, threshold=0.5)
    ident = motrics.compute_identity_from_similarity(gi, pi, sims, threshold=0.5)
    hota = motrics.compute_hota_from_similarity(gi, pi, sims)
    return {"MOTA": clear.mota, "IDF1": ident.idf1, "HOTA": hota.hota, "DetA": hota.deta,
            "AssA": hota.assa, "IDsw": clear.num_switches, "FP": clear.num_false_positives,
            "FN": clear.num_misses, "GT": int(sum(len(a) for a in gi))}


# --------------------------------------------------------------------------------------------
# Trackers under test: step(t, boxes, scores) -> (ids (K,), centres (K, 2)) of reported tracks
# --------------------------------------------------------------------------------------------
StepFn = Callable[[float, np.ndarray, np.ndarray], Tuple[np.ndarray, np.ndarray]]


def own_tracker(fps: float = 30.0, **cfg) -> StepFn:
    """oscar_edge.track.Tracker; reports its confirmed tracks."""
    from oscar_edge.track import Tracker, TrackerConfig

    tr = Tracker(TrackerConfig(**cfg), fps=fps)

    def step(t, boxes, scores, motion=None, frame_size=None):
        reps = [r for r in tr.update(t, boxes, scores, motion=motion, frame_size=frame_size)
                if r.state == "confirmed"]
        return (np.array([r.id for r in reps], np.int64),
                np.array([r.centre for r in reps], np.float64).reshape(-1, 2))
    return step


def norfair_tracker(fps: float = 30.0, distance_threshold: float = 12.0,
                    hit_counter_max: int = 15, initialization_delay: int = 2,
                    min_score: float = 0.05, use_period: bool = True) -> StepFn:
    """norfair-enough: centre points, Euclidean distance, its default Kalman filter (one step
    per call). ``use_period``: pass the frames elapsed since the last call as ``period`` (what
    norfair offers for skipped frames: it scales the hit counters, not the motion model)."""
    try:
        from norfair import Detection, Tracker
    except ImportError:
        raise SystemExit("this benchmark compares against norfair-enough: "
                         "pip install 'oscar-edge[track-bench]'") from None

    tr = Tracker(distance_function="euclidean", distance_threshold=distance_threshold,
                 hit_counter_max=hit_counter_max, initialization_delay=initialization_delay)
    last = [None]

    def step(t, boxes, scores, motion=None, frame_size=None):
        keep = scores >= min_score
        c = (boxes[keep, :2] + boxes[keep, 2:]) * 0.5
        dets = [Detection(points=p[None, :].astype(np.float64),
                          scores=np.array([s], np.float64)) for p, s in zip(c, scores[keep])]
        period = 1
        if use_period and last[0] is not None:
            period = max(1, int(round((t - last[0]) * fps)))
        last[0] = t
        objs = tr.update(detections=dets, period=period)
        return (np.array([o.id for o in objs], np.int64),
                np.array([o.estimate[0] for o in objs], np.float64).reshape(-1, 2))
    return step


def run_tracker(step: StepFn, frames: Sequence[SimFrame], radius_px: float,
                warmup: int = 0) -> Dict[str, float]:
    """Feed every frame, time each step (perf_counter), score the output."""
    pids, pcs, times = [], [], []
    for f in frames:
        t0 = time.perf_counter()
        ids, cs = step(f.t, f.boxes, f.scores)
        times.append(time.perf_counter() - t0)
        pids.append(ids)
        pcs.append(cs)
    m = score([f.gt_ids for f in frames], [f.gt_centres for f in frames], pids, pcs, radius_px)
    ms = np.array(times[warmup:]) * 1e3
    m.update(p50_ms=float(np.percentile(ms, 50)), p90_ms=float(np.percentile(ms, 90)),
             p99_ms=float(np.percentile(ms, 99)), mean_ms=float(ms.mean()))
    return m


def machine() -> str:
    """'model name' of lscpu (or /proc/cpuinfo), CPUs and the load average now."""
    import os
    import subprocess

    model = "?"
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        for line in out.splitlines():
            if line.lower().startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except (OSError, subprocess.SubprocessError):
        pass
    family = ""
    try:
        info = {}
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                info.setdefault(key.strip(), value.strip())
        flags = set(info.get("flags", "").split())
        isa = [n for n in ("avx512_vnni", "avx512_bf16", "amx_tile") if n in flags]
        family = (f" (family {info.get('cpu family', '?')} model {info.get('model', '?')}"
                  f"{', ' + ' '.join(isa) if isa else ''})")
    except OSError:
        pass
    try:
        load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        load = "?"
    return f"{model}{family}, {os.cpu_count()} CPUs, load average {load}"


def fmt_row(name: str, m: Dict[str, float]) -> str:
    """A Markdown table row of the metrics."""
    return (f"| {name} | {m['MOTA']:.3f} | {m['IDF1']:.3f} | {m['HOTA']:.3f} | {m['IDsw']} | "
            f"{m['FP']} | {m['FN']} | {m['p50_ms']:.3f} | {m['p99_ms']:.3f} |")


TABLE_HEAD = ("| tracker | MOTA | IDF1 | HOTA | ID switches | FP | FN | ms/frame p50 | p99 |\n"
              "|---|---:|---:|---:|---:|---:|---:|---:|---:|")

