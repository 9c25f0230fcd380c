#!/usr/bin/env python
"""Single-frame detection vs confirmed tracks on real infrared video: Pd and false alarms.

    python benchmarks/tracking_ir.py --out docs/results/tracking_ir_DATE     # all 71 videos
    python benchmarks/tracking_ir.py --videos IR_DRONE_005,IR_BIRD_010 --max-frames 60 \\
        --out /tmp/ir-check                                                   # a quick check

Data: ``--data`` (default ``../shared/data/ir-video`` beside the repository, or
``$OSCAR_IR_VIDEO``): 320x256 30 FPS videos ``videos/IR_<CLASS>_<NNN>.mp4`` with one labelled
target per frame in ``labels/<name>.json`` (MATLAB [x, y, w, h], 1-based: the 0-based box is
[x - 0.5, y - 0.5, w, h]; ``null`` where nothing is labelled).

1. **Detector pass, cached.** Each video is decoded once per input size (``--input-sizes``:
   ``fit`` = the evaluation's keep-ratio fit to 1000x600, i.e. 750x600 for these frames, or WxH
   fixed sizes) and run through the shipped model (``--backend``); every detection whose final
   score is >= ``--floor`` and the camera motion between frames (oscar_edge.track.CameraMotion)
   go to ``--cache`` (one .npz per video, input size and backend). Later runs read the cache.
2. **Sweeps from the cache.** Single-frame detection at each score of THRESHOLDS; the tracker
   (oscar_edge.track, docs/tracking.md defaults) fed with detections at each score of FEED,
   each frame at time index / 30 s, in each of ``--variants`` (``default``, or settings that
   differ from it: ``motion=on``, ``min_move=3`` (px, moving-target indication),
   ``confirm=4/6``, ``coast=1``, ``gate=16``, ``min_hit_rate=0.25``, ``clutter=5`` (the
   clutter map's time constant in s), ``clutter_cell=6``, ``clutter_max=0.3``, ``revive=2``
   (s, ID revival); ``;`` between variants, ``,`` between the settings of one); confirmed
   tracks (coasting ones included) are what it reports.
3. **Scoring, per labelled frame.** The frame's target is detected when a reported position
   (detection or track centre) lies within max(8 px, half the label box's diagonal) of the
   label box's centre; every reported position farther than that is a false alarm. Pd =
   detected labelled frames / labelled frames, false alarms per labelled frame; per class and
   overall (frames pooled). Frames without a label are tracked through but not scored.

Goal: at the false-alarm rate of single-frame detection at score 0.1, confirmed tracks reach a
Pd at least 10 points higher (overall). The goal check is also given on each half of the videos
(alternate videos of each class), each against its own single-frame rate: a tracker setting
picked on one half can be judged on the other. ``--select GRID`` adds a held-out check at the
headline size: nested cross-validation over videos, each fold scored with the setting of GRID
that is best on the other folds (benchmarks/tracking_select.py). Writes ``summary.md``,
``results.json`` and ``pd_fa.png`` (Pd vs false alarms per frame) to ``--out``.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

_HERE = Path(__file__).resolve().parent
_REPO = _HERE.parent
sys.path.insert(0, str(_REPO))
sys.path.insert(0, str(_HERE))

import numpy as np  # noqa: E402

from tracking_select import expand_grid, nested_cv, pd_at, rates  # noqa: E402

# Single-frame thresholds of the tables and plots (dense up to 0.3, where the shipped model's
# scores end). Comparisons at equal false alarms use the exact sweep (exact_pd_at) instead.
THRESHOLDS = (0.02, 0.03, 0.05, 0.07, 0.1, 0.12, 0.15, 0.17, 0.2, 0.22, 0.25, 0.27, 0.3, 0.4,
              0.5, 0.6)
FEED = (0.02, 0.03, 0.05, 0.07, 0.1, 0.15, 0.2, 0.25, 0.3)
VARIANT_KEYS = {"motion": ("motion", lambda v: v == "on"), "min_move": ("min_move_px", float),
                "confirm": (None, None), "coast": ("coast_s", float),
                "gate": ("gate_px", float), "min_hit_rate": ("min_hit_rate", float),
                "clutter": ("clutter_s", float), "clutter_cell": ("clutter_cell_px", float),
                "clutter_max": ("clutter_max", float), "revive": ("revive_s", float)}


def parse_variants(text: str) -> List[Tuple[str, dict]]:
    """'default;motion=on;min_move=3,confirm=4/6' -> [(name, TrackerConfig overrides)]."""
    from oscar_edge.track import parse_confirm

    out = []
    for part in (v.strip() for v in text.split(";")):
        if not part:
            continue
        kw: dict = {}
        if part != "default":
            for item in part.split(","):
                key, _, value = item.partition("=")
                if key not in VARIANT_KEYS:
                    raise SystemExit(f"tracking_ir: unknown variant setting {key!r} "
                                     f"(known: {', '.join(VARIANT_KEYS)})")
                if key == "confirm":
                    kw["confirm_m"], kw["confirm_n"] = parse_confirm(value)
                else:
                    field, conv = VARIANT_KEYS[key]
                    kw[field] = conv(value)
        out.append((part, kw))
    return out
MIN_RADIUS = 8.0
FPS = 30.0


# --------------------------------------------------------------------------------------------
# Labels and scoring
# --------------------------------------------------------------------------------------------
def load_labels(path: Path) -> Tuple[str, np.ndarray, np.ndarray]:
    """(class, centres (F, 2) px 0-based with NaN where unlabelled, radii (F,) px) of a label
    file (read by oscar_edge.data.video.read_video_labels); radius = max(8 px, half the box
    diagonal)."""
    from oscar_edge.data.video import read_video_labels

    lab = read_video_labels(path)
    x, y, w, h = lab.xywh.T
    centres = np.stack([x - 0.5 + w / 2.0, y - 0.5 + h / 2.0], axis=1)
    # math.hypot, not np.hypot: the two differ in the last bit, and the recorded figures used it
    radii = np.array([max(MIN_RADIUS, 0.5 * math.hypot(a, b)) if math.isfinite(a) else math.nan
                      for a, b in zip(w, h)])
    return lab.cls, centres, radii


def score_frames(reports: Sequence[np.ndarray], centres: np.ndarray,
                 radii: np.ndarray) -> Tuple[int, int, int]:
    """(labelled frames, detected frames, false alarms) of per-frame reported positions
    ``reports[i]`` (K, 2) against the labels (see the module docstring)."""
    labelled = detected = fa = 0
    for pos, c, r in zip(reports, centres, radii):
        if not np.isfinite(r):
            continue
        labelled += 1
        pos = np.asarray(pos, np.float64).reshape(-1, 2)
        if len(pos) == 0:
            continue
        near = np.hypot(pos[:, 0] - c[0], pos[:, 1] - c[1]) <= r
        detected += bool(near.any())
        fa += int((~near).sum())
    return labelled, detected, fa


def frame_scores(boxes, scores, centres: np.ndarray, radii: np.ndarray
                 ) -> Tuple[np.ndarray, np.ndarray]:
    """Single-frame detection at every threshold at once: per labelled frame the best score
    of a detection near the label (-inf when none), and the scores of all other detections
    of labelled frames (each a false alarm at thresholds up to its score)."""
    best, fa = [], []
    for b, s, c, r in zip(boxes, scores, centres, radii):
        if not np.isfinite(r):
            continue
        pos = (b[:, :2] + b[:, 2:]) * 0.5
        near = np.hypot(pos[:, 0] - c[0], pos[:, 1] - c[1]) <= r
        best.append(float(s[near].max()) if near.any() else -np.inf)
        fa.append(s[~near])
    return (np.asarray(best, np.float64),
            np.concatenate(fa).astype(np.float64) if fa else np.zeros(0))


def exact_pd_at(best: np.ndarray, fa: np.ndarray, budget: float) -> Tuple[float, float]:
    """(Pd, threshold) of single-frame detection at the lowest score threshold whose false
    alarms per labelled frame stay within ``budget``: the exact curve, not a grid. The
    threshold is the score a detection must exceed (-inf: every cached detection)."""
    frames = len(best)
    if frames == 0:
        return float("nan"), float("nan")
    allowed = int(math.floor(budget * frames + 1e-9))
    if len(fa) <= allowed:
        thr = -np.inf
    else:
        k = len(fa) - 1 - allowed  # the (allowed + 1)-th largest: `allowed` lie above it
        thr = float(np.partition(fa, k)[k])
    return float((best > thr).sum()) / frames, thr


# --------------------------------------------------------------------------------------------
# Detector pass with a cache
# --------------------------------------------------------------------------------------------
def cache_tag(choice, model: Optional[str], precision: Optional[str]) -> str:
    """The detector's part of the cache key: the backend's label and the graph's content, not
    its name (the shipped graph changes with the shipped weights, and a --model file of the same
    name may hold other weights)."""
    from oscar_edge.backends.factory import onnx_model_path

    tag = f"{choice.label}"
    if choice.kind in ("onnxruntime", "openvino"):
        graph = onnx_model_path(model, precision)
        tag += "|" + hashlib.sha1(graph.read_bytes()).hexdigest()[:16]
    elif model:
        tag += "|" + hashlib.sha1(Path(model).read_bytes()).hexdigest()[:16]
    return tag


def cache_path(cache: Path, video: str, size: str, tag: str, floor: float,
               max_frames: int) -> Path:
    key = hashlib.sha1(f"{tag}|{floor}|{max_frames}".encode()).hexdigest()[:10]
    return cache / f"{video}_{size}_{key}.npz"


def detect_video(path: Path, detector, max_frames: int, floor: float) -> Dict[str, np.ndarray]:
    """Decode ``path``, run ``detector`` on every frame: boxes / scores (concatenated, with
    per-frame counts), camera motion (F, 2, 3), NaN where none."""
    import cv2

    from oscar_edge.preprocess import to_grey_u8
    from oscar_edge.track import CameraMotion

    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise SystemExit(f"tracking_ir: cannot decode {path}")
    cm = CameraMotion()
    boxes, scores, counts, motion, ms = [], [], [], [], []
    shape = (0, 0)
    while not max_frames or len(counts) < max_frames:
        ok, img = cap.read()
        if not ok:
            break
        grey = to_grey_u8(img)
        shape = grey.shape
        t0 = time.perf_counter()
        d = detector(grey)
        ms.append((time.perf_counter() - t0) * 1e3)
        keep = d.scores >= floor
        boxes.append(d.boxes[keep])
        scores.append(d.scores[keep])
        counts.append(int(keep.sum()))
        m = cm.estimate(grey)
        motion.append(np.full((2, 3), np.nan) if m is None else m)
    cap.release()
    return {"boxes": np.concatenate(boxes).reshape(-1, 4).astype(np.float32) if boxes else
            np.zeros((0, 4), np.float32),
            "scores": np.concatenate(scores).astype(np.float32) if scores else
            np.zeros(0, np.float32),
            "counts": np.array(counts, np.int64), "motion": np.array(motion).reshape(-1, 2, 3),
            "detector_ms": np.array(ms), "frame_size": np.array([shape[1], shape[0]])}


def cached_detections(cache: Path, data: Path, video: str, size: str, tag: str, floor: float,
                      max_frames: int, detector) -> Dict[str, np.ndarray]:
    """The cached detector pass of ``video`` at ``size`` (:func:`cache_path`); on a miss, run
    ``detector()`` (a callable that returns the detector, so it is built only when needed) with
    :func:`detect_video` and cache the result."""
    cp = cache_path(cache, video, size, tag, floor, max_frames)
    if cp.is_file():
        return dict(np.load(cp))
    cached = detect_video(data / "videos" / f"{video}.mp4", detector(), max_frames, floor)
    np.savez_compressed(cp, **cached)
    return cached


def split(cached: Dict[str, np.ndarray]) -> Tuple[List[np.ndarray], List[np.ndarray]]:
    """Per-frame (boxes, scores) lists of a cached video."""
    ends = np.cumsum(cached["counts"])
    starts = ends - cached["counts"]
    return ([cached["boxes"][a:b] for a, b in zip(starts, ends)],
            [cached["scores"][a:b] for a, b in zip(starts, ends)])


# --------------------------------------------------------------------------------------------
# Sweeps
# --------------------------------------------------------------------------------------------
def single_frame_reports(boxes, scores, thr: float) -> List[np.ndarray]:
    return [((b[:, :2] + b[:, 2:]) * 0.5)[s >= thr] for b, s in zip(boxes, scores)]


def confirmed_tracks(boxes, scores, motion: np.ndarray, cfg, size: Tuple[int, int]
                     ) -> Tuple[List[list], List[float]]:
    """The tracker fed a cached video frame by frame at time index / FPS (camera motion where
    ``cfg.motion`` and estimated): per frame its confirmed tracks (TrackReport), and the ms of
    each update."""
    from oscar_edge.track import Tracker

    tr = Tracker(cfg, fps=FPS)
    out, ms = [], []
    for i, (b, s) in enumerate(zip(boxes, scores)):
        m = motion[i] if cfg.motion and np.isfinite(motion[i]).all() else None
        t0 = time.perf_counter()
        reps = tr.update(i / FPS, b, s, motion=m, frame_size=size)
        ms.append((time.perf_counter() - t0) * 1e3)
        out.append([r for r in reps if r.state == "confirmed"])
    return out, ms


def track_reports(boxes, scores, motion: np.ndarray, cfg, size: Tuple[int, int]
                  ) -> Tuple[List[np.ndarray], float]:
    """Confirmed track centres per frame, and the tracker's median ms per frame."""
    frames, ms = confirmed_tracks(boxes, scores, motion, cfg, size)
    out = [np.array([r.centre for r in reps], np.float64).reshape(-1, 2) for reps in frames]
    return out, float(np.median(ms)) if ms else float("nan")


def halves(names: Sequence[str], labels) -> Dict[str, str]:
    """Video -> "half A" / "half B" (oscar_edge.data.video.halves: alternately within each
    class), so that a setting picked on one half can be checked on the other."""
    from oscar_edge.data.video import halves as video_halves

    return {n: f"half {h}" for n, h in video_halves({n: labels[n][0] for n in names}).items()}


def single_frame_ref(res: Dict[str, list], group: str) -> Tuple[float, float]:
    """(Pd, false alarms per frame) of single-frame detection at score 0.1, the goal's
    reference, for one group of videos (NaN when absent)."""
    ref = {lab: (pd, fa) for pd, fa, lab in curve(res, group, "single", THRESHOLDS)}
    return ref.get("0.1", (float("nan"), float("nan")))


def goal_gain(res: Dict[str, list], group: str, vname: str) -> Tuple[float, float, float, str]:
    """(single-frame Pd at 0.1, its false alarms per frame, the tracks' best Pd at no more false
    alarms, the feed score of that point) for one group of videos."""
    pd0, fa0 = single_frame_ref(res, group)
    pd, lab = pd_at(curve(res, group, f"tracks {vname}", FEED), fa0)
    return pd0, fa0, pd, lab


def add(acc: Dict[str, List[int]], key: str, counts: Tuple[int, int, int]) -> None:
    a = acc.setdefault(key, [0, 0, 0])
    for i, v in enumerate(counts):
        a[i] += v


# --------------------------------------------------------------------------------------------
def main(argv=None) -> int:
    default_data = os.environ.get("OSCAR_IR_VIDEO", str(_REPO.parent / "shared" / "data" /
                                                       "ir-video"))
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=default_data)
    p.add_argument("--videos", default="all",
                   help="all, half:A, half:B (alternate videos of each class, as the halves "
                        "below) or comma-separated names (default %(default)s)")
    p.add_argument("--max-frames", type=int, default=0, help="first N frames per video (0: all)")
    p.add_argument("--input-sizes", default="640x512,fit,1280x1024,320x256",
                   help="comma-separated: fit (the evaluation's keep-ratio fit) or WxH; the "
                        "first one gives the headline figures (default: 640x512 first, what "
                        "oscar-edge run uses for these 320x256 videos)")
    p.add_argument("--backend", default="auto")
    p.add_argument("--model", default=None,
                   help="ONNX graph to run instead of the shipped model (e.g. one fine-tuned "
                        "with oscar-edge train --video-data); its cache is keyed by content")
    p.add_argument("--precision", default=None)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--floor", type=float, default=0.02, help="lowest score cached")
    p.add_argument("--variants", default="default;motion=on;min_move=3;clutter=5;"
                                         "clutter=5,min_move=2",
                   help="tracker variants (see the module docstring; default %(default)s)")
    p.add_argument("--select", default="",
                   help="held-out check at the headline size: tracker settings to tune among, "
                        "as --variants, with a|b|c for alternatives (e.g. "
                        "'default;min_move=2|3;clutter=3|5|10,clutter_max=0.2|0.3'); each "
                        "fold of videos is scored with the setting that is best on the other "
                        "folds (benchmarks/tracking_select.py)")
    p.add_argument("--select-folds", type=int, default=5, help="folds of videos (default 5)")
    p.add_argument("--select-repeats", type=int, default=10,
                   help="fold shuffles (default 10)")
    p.add_argument("--bootstrap", type=int, default=300,
                   help="with several --input-sizes: draws of whole videos for the 5-95 %% "
                        "interval of each size's Pd minus the first size's at equal false "
                        "alarms (0: off; default %(default)s)")
    p.add_argument("--cache", default=str(Path.home() / ".cache" / "oscar-edge" / "tracking_ir"))
    p.add_argument("--out", required=True, help="folder for summary.md, results.json, pd_fa.png")
    args = p.parse_args(argv)
    if args.bootstrap < 0:
        raise SystemExit(f"tracking_ir: --bootstrap must be >= 0, got {args.bootstrap}")

    from oscar_edge.backends.base import close_backend
    from oscar_edge.backends.factory import create_backend
    from oscar_edge.data.video import select_videos
    from oscar_edge.pipeline import Detector
    from oscar_edge.sizes import parse_size
    from oscar_edge.track import TrackerConfig
    from tracking_common import machine

    data = Path(args.data)
    try:
        names = select_videos(data, args.videos)
    except (FileNotFoundError, ValueError) as exc:
        raise SystemExit(f"tracking_ir: {exc}")
    if not names:
        raise SystemExit(f"tracking_ir: no labels in {data / 'labels'}")
    sizes = [v.strip() for v in args.input_sizes.split(",") if v.strip()]
    if not sizes:
        raise SystemExit("tracking_ir: --input-sizes is empty")
    try:
        shapes = {s: None if s == "fit" else parse_size(s, order="hw_out", multiple=32,
                                                        name="--input-sizes")
                  for s in sizes}
    except ValueError as exc:
        raise SystemExit(f"tracking_ir: {exc}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    base = TrackerConfig()
    variants = parse_variants(args.variants)
    candidates = parse_variants(expand_grid(args.select)) if args.select else []
    if candidates and args.select_folds > len(names):
        raise SystemExit(f"tracking_ir: --select-folds {args.select_folds} needs at least as "
                         f"many videos, got {len(names)}")
    choice = create_backend(args.backend, model=args.model, threads=args.threads,
                            precision=args.precision)
    tag = cache_tag(choice, args.model, args.precision)
    started = time.monotonic()
    labels = {n: load_labels(data / "labels" / f"{n}.json") for n in names}
    fold = halves(names, labels)

    results: Dict[str, dict] = {}
    sweeps: Dict[str, List[Tuple[np.ndarray, np.ndarray]]] = {}  # size -> frame_scores/video
    timing: Dict[str, List[float]] = {}
    per_video: Dict[str, Dict[str, object]] = {}  # headline size, for --select
    for size in sizes:
        detector = Detector(choice.backend, input_size=shapes[size],
                            score_thr=min(0.05, args.floor))
        acc: Dict[str, List[int]] = {}
        det_ms, trk_ms = [], []
        sweeps[size] = []
        for n in names:
            cls, centres, radii = labels[n]
            cached = cached_detections(cache, data, n, size, tag, args.floor, args.max_frames,
                                       lambda: detector)
            det_ms.extend(cached["detector_ms"].tolist())
            boxes, scores = split(cached)
            k = min(len(boxes), len(centres))
            boxes, scores, c, r = boxes[:k], scores[:k], centres[:k], radii[:k]
            pv: Dict[str, object] = {}
            sweeps[size].append(frame_scores(boxes, scores, c, r))
            for thr in THRESHOLDS:
                counts = score_frames(single_frame_reports(boxes, scores, thr), c, r)
                for group in (cls, "overall", fold[n]):
                    add(acc, f"{group}|single|{thr:g}", counts)
                if thr == 0.1:
                    pv["single"] = counts
            shown = {v for v, _ in variants}
            todo = variants + ([cv for cv in candidates if cv[0] not in shown]
                               if size == sizes[0] else [])
            for vname, kw in todo:
                pv[vname] = {}
                for feed in FEED:
                    cfg = TrackerConfig(**{**base.__dict__, **kw, "min_score": feed}).check()
                    reps, ms = track_reports(boxes, scores, cached["motion"][:k], cfg,
                                             tuple(int(v) for v in cached["frame_size"]))
                    counts = score_frames(reps, c, r)
                    pv[vname][feed] = counts
                    if vname in shown:
                        trk_ms.append(ms)
                        for group in (cls, "overall", fold[n]):
                            add(acc, f"{group}|tracks {vname}|{feed:g}", counts)
            if size == sizes[0]:
                per_video[n] = pv
        results[size] = {k: list(v) for k, v in acc.items()}
        timing[size] = [float(np.median(det_ms)) if det_ms else float("nan"),
                        float(np.median(trk_ms)) if trk_ms else float("nan")]
    close_backend(choice.backend)

    held_out = None
    if candidates:
        held_out = nested_cv(per_video, {n: labels[n][0] for n in names},
                             [v for v, _ in candidates], k=args.select_folds,
                             repeats=args.select_repeats)
        held_out["input_size"] = sizes[0]
    summary = write_summary(out, results, timing, sizes, names, labels, args, choice.label,
                            base, variants, machine(), time.monotonic() - started, held_out,
                            sweeps)
    (out / "results.json").write_text(json.dumps(
        {"videos": names, "max_frames": args.max_frames, "input_sizes": sizes,
         "backend": choice.label, "counts": results, "timing_ms": timing,
         "counts_format": "[labelled frames, detected frames, false alarms]",
         "goal": summary, "held_out": held_out}, indent=1) + "\n")
    plot(out / "pd_fa.png", results, sizes, variants, clips=len(names))
    print((out / "summary.md").read_text())
    return 0


def curve(res: Dict[str, list], group: str, kind: str, values) -> List[Tuple[float, float, str]]:
    pts = []
    for v in values:
        c = res.get(f"{group}|{kind}|{v:g}")
        if c:
            pd, fa = rates(c)
            pts.append((pd, fa, f"{v:g}"))
    return pts


def size_rows(size: str, row: dict, first: dict) -> List[str]:
    """Table rows of one size in the equal-false-alarm comparison (with its paired
    difference to the first size when bootstrapped)."""
    cells = row["budgets"]
    out = [f"| {size} | {row['detector_ms']:.1f} | " + " | ".join(
        f"{c['pd']:.3f} ({thr_text(c['score_above'])})" if math.isfinite(c["pd"]) else "-"
        for c in cells) + " |"]
    if any("minus_first_p5_p95_points" in c for c in cells):
        out.append("| (minus first) | | " + " | ".join(
            f"{100 * (c['pd'] - f['pd']):+.1f} [{c['minus_first_p5_p95_points'][0]:+.1f}, "
            f"{c['minus_first_p5_p95_points'][1]:+.1f}]"
            for c, f in zip(cells, first["budgets"])) + " |")
    return out


def thr_text(thr: float) -> str:
    return f"> {thr:.3f}" if math.isfinite(thr) else "all cached"


FA_BUDGETS = (0.01, 0.02, 0.05, 0.1, 0.2)


def pd_at_budgets(best: np.ndarray, fa: np.ndarray) -> List[float]:
    """exact_pd_at for every budget of FA_BUDGETS."""
    return [exact_pd_at(best, fa, b)[0] for b in FA_BUDGETS]


def pool_videos(per_video: Sequence[Tuple[np.ndarray, np.ndarray]],
                idx: Optional[Sequence[int]] = None) -> Tuple[np.ndarray, np.ndarray]:
    """frame_scores of several videos (``idx``: which, repeats allowed) as one."""
    chosen = [per_video[i] for i in (range(len(per_video)) if idx is None else idx)]
    if not chosen:
        return np.zeros(0), np.zeros(0)
    return np.concatenate([b for b, _ in chosen]), np.concatenate([f for _, f in chosen])


def sizes_at_equal_fa(sweeps, timing, sizes, draws: int = 0, seed: int = 0) -> Dict[str, dict]:
    """Per input size: detector p50 and, per false-alarm budget of FA_BUDGETS, single-frame
    Pd at the lowest threshold within that budget (exact_pd_at over all videos). With
    ``draws``: each size minus the first size, with the 5-95 % interval over draws of whole
    videos with replacement (the same videos for every size: paired; frames of one video are
    not independent, so videos are what is drawn)."""
    n = len(sweeps[sizes[0]])
    rng = np.random.default_rng(seed)
    picks = [rng.integers(0, n, n) for _ in range(draws)]
    boot = {size: np.array([pd_at_budgets(*pool_videos(sweeps[size], idx))
                            for idx in picks]).reshape(draws, len(FA_BUDGETS))
            for size in sizes}
    table = {}
    for size in sizes:
        best, fa = pool_videos(sweeps[size])
        cells = []
        for k, b in enumerate(FA_BUDGETS):
            pd, thr = exact_pd_at(best, fa, b)
            cell = {"fa_budget": b, "pd": pd, "score_above": thr}
            if draws and size != sizes[0]:
                d = 100 * (boot[size][:, k] - boot[sizes[0]][:, k])
                cell["minus_first_p5_p95_points"] = [float(np.percentile(d, 5)),
                                                     float(np.percentile(d, 95))]
            cells.append(cell)
        table[size] = {"detector_ms": timing[size][0], "budgets": cells}
    return table


def write_summary(out: Path, results, timing, sizes, names, labels, args, label, base,
                  variants, mach: str, wall: float, held_out, sweeps) -> dict:
    classes = sorted({labels[n][0] for n in names})
    frames_text = f"first {args.max_frames} frames each" if args.max_frames else "all frames"
    lines = [f"# Single-frame detection vs confirmed tracks, real IR video "
             f"({time.strftime('%Y-%m-%d %H:%M %Z')})", "",
             f"Machine: {mach}. Wall time {wall:.0f} s.",
             f"Command: `python benchmarks/tracking_ir.py {' '.join(sys.argv[1:])}`", "",
             f"Videos: {len(names)} ({', '.join(names) if len(names) <= 8 else 'see results.json'}"
             f"), {frames_text}. "
             f"Detector: {label}. Tracker: README \"Tracking\" defaults (gate {base.gate_px:g} px, "
             f"confirm {base.confirm_m}/{base.confirm_n}, coast {base.coast_s:g} s, min hit rate "
             f"{base.min_hit_rate:g}), fed at the score in the row.", ""]
    goal = {}
    header_end = len(lines)
    for size in sizes:
        res = results[size]
        det_ms, trk_ms = timing[size]
        lines += [f"## Input {size}" + (" (headline)" if size == sizes[0] else ""), "",
                  f"Detector {det_ms:.1f} ms/frame p50, tracker {trk_ms:.3f} ms/frame p50.", ""]
        pooled = pool_videos(sweeps[size])
        pd0, fa0 = single_frame_ref(res, "overall")
        g = {"single_frame_0.1": {"pd": pd0, "fa_per_frame": fa0}}
        for vname, _ in variants:
            _, _, pd, lab = goal_gain(res, "overall", vname)
            g[f"tracks {vname}"] = {"pd_at_fa0": pd, "feed": lab,
                                    "gain_points": 100 * (pd - pd0)}
            per_half = []
            for half in ("half A", "half B"):
                h_pd0, _, h_pd, _ = goal_gain(res, half, vname)
                g[f"tracks {vname}"][f"gain_points {half}"] = 100 * (h_pd - h_pd0)
                per_half.append(f"{half} {100 * (h_pd - h_pd0):+.1f}")
            lines.append(f"- Goal check, tracks {vname}: single-frame at 0.1: Pd {pd0:.3f} "
                         f"at {fa0:.3f} false alarms per frame; confirmed tracks at no more "
                         f"false alarms: Pd {pd:.3f} (fed at {lab}), "
                         f"{100 * (pd - pd0):+.1f} points (goal +10); on each half of the "
                         f"videos: {', '.join(per_half)}.")
        for vname, _ in variants:
            tc = curve(res, "overall", f"tracks {vname}", FEED)
            ok = [(fa, lab, pd) for pd, fa, lab in tc if pd >= pd0 - 1e-12]
            if ok and math.isfinite(pd0):
                fa, lab, pd = min(ok)
                lines.append(f"- Same Pd, tracks {vname}: the fewest false alarms with Pd >= "
                             f"{pd0:.3f}: {fa:.3f} per frame (fed at {lab}, Pd {pd:.3f}) vs "
                             f"{fa0:.3f} single-frame.")
                g[f"tracks {vname}"]["fa_at_pd0"] = fa
            best = None
            for pd_t, fa_t, lab in tc:  # the largest lead over single-frame at equal FA
                pd_s, thr = exact_pd_at(*pooled, fa_t)  # single frames' best threshold
                slab = thr_text(thr)
                lead = pd_t - (pd_s if math.isfinite(pd_s) else 0.0)
                if best is None or lead > best[0]:
                    best = (lead, pd_t, fa_t, lab, pd_s, slab)
            if best is not None:
                lead, pd_t, fa_t, lab, pd_s, slab = best
                lines.append(f"- Largest lead, tracks {vname}: fed at {lab}, Pd {pd_t:.3f} at "
                             f"{fa_t:.3f} false alarms per frame; single-frame at no more false "
                             f"alarms: Pd {pd_s:.3f} (score {slab}): {100 * lead:+.1f} points.")
                g[f"tracks {vname}"]["largest_lead_points"] = 100 * lead
        goal[size] = g
        lines += ["", "| group | curve | score | Pd | false alarms / frame | labelled frames |",
                  "|---|---|---:|---:|---:|---:|"]
        for group in classes + ["overall"]:
            for kind, values in [("single", THRESHOLDS)] + [(f"tracks {v}", FEED)
                                                            for v, _ in variants]:
                for v in values:
                    c = res.get(f"{group}|{kind}|{v:g}")
                    if c:
                        pd, fa = rates(c)
                        lines.append(f"| {group} | {kind} | {v:g} | {pd:.3f} | {fa:.3f} | "
                                     f"{c[0]} |")
        lines.append("")
    if len(sizes) > 1:
        table = sizes_at_equal_fa(sweeps, timing, sizes, draws=args.bootstrap)
        goal["sizes_at_equal_fa"] = table
        lines[header_end:header_end] = [
            "## Input sizes at equal false alarms (single frames)", "",
            "The score scale moves with the input size, so sizes are compared at the same "
            "false-alarm rate: each cell is the single-frame Pd at the lowest score threshold "
            "(in brackets: the score a detection must exceed) that keeps false alarms per "
            "frame within the column's budget, swept over every score, not a grid"
            + (f"; below each other size: its Pd minus {sizes[0]}'s in points, with the "
               f"5-95 % interval over {args.bootstrap} draws of whole videos (paired)"
               if args.bootstrap else "") + ".", "",
            "| input | detector p50 ms | " + " | ".join(f"<= {b:g} FA/frame" for b in FA_BUDGETS)
            + " |", "|---|---:|" + "---:|" * len(FA_BUDGETS)] + [
            line for size, row in table.items()
            for line in size_rows(size, row, table[sizes[0]])] + [""]
    if held_out is not None:
        best_in = max(held_out["in_sample"].items(), key=lambda kv: (kv[1] == kv[1], kv[1]))
        picks = ", ".join(f"{v} x{c}" for v, c in list(held_out["picks"].items())[:6])
        lines[header_end:header_end] = [
                  f"## Held-out check at {held_out['input_size']} (tuned on other videos)", "",
                  f"{len(held_out['in_sample'])} tracker settings (`--select`); each of "
                  f"{held_out['folds']} folds of videos (dealt within each class) is scored "
                  f"with the setting that has the best goal gain on the other folds; the "
                  f"held-out frames of all folds are pooled and judged against single-frame "
                  f"detection at 0.1 (benchmarks/tracking_select.py). Over "
                  f"{held_out['repeats']} shuffles of the folds the held-out gain is "
                  f"**{held_out['mean']:+.1f}** points on average ({held_out['min']:+.1f} to "
                  f"{held_out['max']:+.1f}; goal +10). For comparison, the best setting "
                  f"picked and scored on all videos: {best_in[0]} {best_in[1]:+.1f}. Picked "
                  f"most often: {picks}.", ""]
    lines += ["Scoring: a labelled frame is detected when a reported position lies within "
              "max(8 px, half the label box's diagonal) of the label box's centre; every "
              "other reported position is a false alarm. 'single': detections with score >= "
              "the row's score; 'tracks V': confirmed tracks (coasting ones included) of "
              "the tracker in variant V (README \"Tracking\" defaults, or those with the "
              "settings named) fed with detections >= the row's score.", ""]
    (out / "summary.md").write_text("\n".join(lines))
    return goal


def plot(path: Path, results, sizes, variants, clips: int = 71) -> None:
    """One panel per input size: Pd against false alarms per frame, single-frame detections
    and every tracker variant, one shared legend."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("tracking_ir: matplotlib missing (pip install 'oscar-edge[train]'): no plot",
              file=sys.stderr)
        return
    cols = min(2, len(sizes))
    rows = (len(sizes) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(6.2 * cols, 4.6 * rows + 0.8), dpi=110,
                             squeeze=False)
    colours = ["tab:red", "tab:orange", "tab:green", "tab:purple", "tab:brown", "tab:pink"]
    kinds = [("single", THRESHOLDS, "tab:blue", "single-frame detections (score threshold)")] + [
        (f"tracks {v}", FEED, colours[j % len(colours)], f"confirmed tracks, {v} (feed score)")
        for j, (v, _) in enumerate(variants)]
    for ax, size in zip(axes.flat, sizes):
        res = results[size]
        for kind, values, colour, name in kinds:
            pts = curve(res, "overall", kind, values)
            if not pts:
                continue
            pd, fa, lab = zip(*sorted(pts, key=lambda q: q[1]))
            ax.plot(fa, pd, "-" if kind == "single" else "--", color=colour, marker="o", ms=3,
                    lw=2.0 if kind == "single" else 1.2, label=name)
            for x, y, t in zip(fa, pd, lab):
                ax.annotate(t, (x, y), fontsize=5, xytext=(3, -7), textcoords="offset points",
                            color=colour)
        pd0, fa0 = single_frame_ref(res, "overall")
        if math.isfinite(fa0):
            ax.axvline(fa0, color="grey", lw=0.8, ls=":")
            ax.plot([fa0], [pd0 + 0.10], marker="_", ms=14, color="black")
            ax.annotate("goal", (fa0, pd0 + 0.10), fontsize=6, xytext=(4, 2),
                        textcoords="offset points")
        ax.set_xscale("symlog", linthresh=0.01)
        ax.set_xlabel("false alarms per labelled frame")
        ax.set_ylabel("Pd (labelled frames with the target found)")
        ax.set_ylim(0, 1)
        ax.grid(alpha=0.3)
        ax.set_title(f"input {size}" + (" (headline)" if size == sizes[0] else ""), fontsize=9)
    for ax in list(axes.flat)[len(sizes):]:
        ax.axis("off")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=2, fontsize=7, frameon=False)
    fig.suptitle(f"IR video, {clips} clips: single-frame detections vs confirmed tracks "
                 "(dotted line: false alarms of single-frame at 0.1; bar: +10 points)",
                 fontsize=9)
    fig.tight_layout(rect=(0, 0.04 + 0.025 * ((len(kinds) + 1) // 2) / rows, 1, 0.97))
    fig.savefig(path)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
