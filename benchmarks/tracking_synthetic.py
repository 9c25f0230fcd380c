#!/usr/bin/env python
"""Tracking on synthetic infrared video with the shipped model: MOTA, IDF1, HOTA (motrics).

    python benchmarks/tracking_synthetic.py                        # the recorded run
    python benchmarks/tracking_synthetic.py --frames 100 --seeds 0  # a quick look

Scenes: ``synthetic://`` (oscar_edge.io.synthetic: Gaussian hot spots of 6-12 px over drifting
cloud clutter, straight-line motion that bounces off the border, so targets cross) at
``--size`` with ``--targets`` targets, one per seed in ``--seeds``, in two settings:

* ``static``: the camera does not move (tracked with compensation off and on: it must not hurt);
* ``pan``: the hard one, a camera sweep of ``--pan`` px/frame peak speed plus a per-frame shake
  of ``--shake`` px (targets leave and re-enter the view), tracked with camera-motion
  compensation off and on.

Each frame goes through the shipped detector once (``--backend``, ``--input-size``; default
the runtime's keep-ratio fit, 750x600 for 640x512 frames); its detections and the camera
motion estimated on the frame are kept; the tracker
(oscar_edge.track, docs/tracking.md defaults unless ``--track-*`` says otherwise) then runs
on them with each frame's time t / fps, as ``oscar-edge run --track`` does.

Scoring: reported tracks are the confirmed ones; matching by centre distance (similarity
1 - d / (2 R), matched at d <= R = ``--radius`` px) against the scene's ground-truth ids, by
motrics (benchmarks/tracking_common.py). Rows: every visible target ("all"), and the targets
the detector finds at all (a detection within R at score >= 0.05 in at least half of the
frames they are visible in, "detectable"), which separates detector misses from tracking
errors. For reference, single-frame detection at ``--score-thr``: Pd and false alarms per
frame. The machine is shared with other jobs: timings are this machine at this time.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Dict, List

_HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(_HERE.parent))
sys.path.insert(0, str(_HERE))

import numpy as np  # noqa: E402

from oscar_edge.backends.base import close_backend  # noqa: E402
from oscar_edge.backends.factory import create_backend  # noqa: E402
from oscar_edge.io.sources import parse_size  # noqa: E402
from oscar_edge.io.synthetic import SyntheticScene  # noqa: E402
from oscar_edge.pipeline import Detector  # noqa: E402
from oscar_edge.track import CameraMotion, Tracker, TrackerConfig  # noqa: E402
from tracking_common import machine, score  # noqa: E402


def detect_scene(scene: SyntheticScene, frames: int, detector: Detector) -> Dict[str, list]:
    """Detector pass: per frame the detections, the camera motion and the truth."""
    cm = CameraMotion()
    out: Dict[str, list] = {k: [] for k in ("boxes", "scores", "motion", "ids", "centres")}
    det_ms, cm_ms = [], []
    for t in range(frames):
        grey = scene.frame(t)
        t0 = time.perf_counter()
        d = detector(grey)
        t1 = time.perf_counter()
        out["motion"].append(cm.estimate(grey))
        t2 = time.perf_counter()
        det_ms.append((t1 - t0) * 1e3)
        cm_ms.append((t2 - t1) * 1e3)
        out["boxes"].append(d.boxes)
        out["scores"].append(d.scores)
        gt = scene.ground_truth(t)
        out["ids"].append(scene.ground_truth_ids(t))
        out["centres"].append((gt[:, :2] + gt[:, 2:]) / 2)
    out["detector_ms"] = [float(np.median(det_ms))]
    out["motion_ms"] = [float(np.median(cm_ms[1:])) if frames > 1 else float("nan")]
    out["motion_failures"] = [cm.failures]
    return out


def track(cache: Dict[str, list], cfg: TrackerConfig, fps: float, size) -> Dict[str, list]:
    tr = Tracker(cfg, fps=fps)
    ids, centres, ms = [], [], []
    for t, (b, s, m) in enumerate(zip(cache["boxes"], cache["scores"], cache["motion"])):
        t0 = time.perf_counter()
        reps = tr.update(t / fps, b, s, motion=m if cfg.motion else None, frame_size=size)
        ms.append((time.perf_counter() - t0) * 1e3)
        reps = [r for r in reps if r.state == "confirmed"]
        ids.append(np.array([r.id for r in reps], np.int64))
        centres.append(np.array([r.centre for r in reps], np.float64).reshape(-1, 2))
    return {"ids": ids, "centres": centres, "ms": ms}


def detectable(cache: Dict[str, list], radius: float) -> set:
    """Target ids found by the detector (score >= 0.05 within ``radius``) in >= half of the
    frames they are visible in."""
    seen: Dict[int, List[int]] = {}
    for ids, cs, b, s in zip(cache["ids"], cache["centres"], cache["boxes"], cache["scores"]):
        dc = ((b[:, :2] + b[:, 2:]) / 2)[s >= 0.05]
        for i, c in zip(ids.tolist(), cs):
            hit = len(dc) > 0 and bool((np.hypot(*(dc - c).T) <= radius).any())
            seen.setdefault(i, []).append(hit)
    return {i for i, v in seen.items() if np.mean(v) >= 0.5}


def single_frame(cache: Dict[str, list], thr: float, radius: float):
    """Pd and false alarms per frame of single-frame detections at score >= thr."""
    found = total = fa = 0
    for ids, cs, b, s in zip(cache["ids"], cache["centres"], cache["boxes"], cache["scores"]):
        dc = ((b[:, :2] + b[:, 2:]) / 2)[s >= thr]
        total += len(cs)
        if len(dc) and len(cs):
            d = np.sqrt(((cs[:, None] - dc[None]) ** 2).sum(-1))
            found += int((d.min(1) <= radius).sum())
            fa += int((d.min(0) > radius).sum())
        else:
            fa += len(dc)
    return found / max(total, 1), fa / len(cache["boxes"])


def subset(cache, res, keep: set, radius: float):
    """Ground truth of the ``keep`` targets only, and the reported tracks less those within
    ``radius`` of another (not kept) target."""
    gi, gc, pi, pc = [], [], [], []
    for ids, cs, rid, rc in zip(cache["ids"], cache["centres"], res["ids"], res["centres"]):
        m = np.array([i in keep for i in ids.tolist()], bool).reshape(-1)
        gi.append(ids[m])
        gc.append(cs[m])
        other = cs[~m]
        near = np.zeros(len(rc), bool)
        if len(other) and len(rc):
            near = (np.sqrt(((rc[:, None] - other[None]) ** 2).sum(-1)) <= radius).any(1)
        pi.append(rid[~near])
        pc.append(rc[~near])
    return gi, gc, pi, pc


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--frames", type=int, default=300)
    p.add_argument("--size", default="640x512")
    p.add_argument("--targets", type=int, default=12)
    p.add_argument("--seeds", default="0,1", help="comma-separated scene seeds")
    p.add_argument("--fps", type=float, default=30.0)
    p.add_argument("--pan", type=float, default=4.0, help="pan setting: peak px/frame")
    p.add_argument("--shake", type=float, default=1.5, help="pan setting: jitter px")
    p.add_argument("--backend", default="auto")
    p.add_argument("--precision", default=None)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--input-size", default=None,
                   help="WxH fixed network input (default: the runtime's keep-ratio fit)")
    p.add_argument("--radius", type=float, default=6.0, help="match radius R in px")
    p.add_argument("--score-thr", type=float, default=0.1,
                   help="single-frame reference threshold")
    p.add_argument("--track-gate", type=float, default=None)
    p.add_argument("--track-confirm", default=None)
    p.add_argument("--track-coast", type=float, default=None)
    p.add_argument("--track-score", type=float, default=None)
    p.add_argument("--track-min-hit-rate", type=float, default=None)
    p.add_argument("--track-min-move", type=float, default=None)
    p.add_argument("--track-clutter", type=float, default=None)
    p.add_argument("--track-revive", type=float, default=None)
    args = p.parse_args(argv)
    from oscar_edge.track import config_from_options

    w, h = parse_size(args.size)
    input_size = tuple(reversed(parse_size(args.input_size))) if args.input_size else None
    base = config_from_options(args)
    seeds = [int(v) for v in args.seeds.split(",") if v.strip()]
    choice = create_backend(args.backend, threads=args.threads, precision=args.precision)
    # decode floor: the runtime's 0.05, or the tracker's score when lower (as oscar-edge run)
    detector = Detector(choice.backend, input_size=input_size,
                        score_thr=min(0.05, base.min_score))
    size_text = (f"{input_size[1]}x{input_size[0]} fixed" if input_size else
                 f"keep-ratio fit {detector.fit[0]}x{detector.fit[1]} (the runtime default)")
    print(f"# Tracking on synthetic video ({time.strftime('%Y-%m-%d %H:%M %Z')})\n")
    print(f"Machine: {machine()} (timings are this machine at this load).")
    print(f"Command: `python benchmarks/tracking_synthetic.py {' '.join(sys.argv[1:])}`".rstrip()
          + "\n")
    print(f"Detector: {choice.label}, input {size_text}, peak refinement on. Scenes: "
          f"synthetic {w}x{h}, {args.targets} targets, {args.frames} frames at {args.fps:g} FPS, "
          f"seeds {args.seeds}. Tracker: gate {base.gate_px:g} px, confirm "
          f"{base.confirm_m}/{base.confirm_n}, coast {base.coast_s:g} s, score >= "
          f"{base.min_score:g}, min hit rate {base.min_hit_rate:g}, min move "
          f"{base.min_move_px:g} px, clutter map "
          f"{f'{base.clutter_s:g} s' if base.clutter_s > 0 else 'off'}, ID revival "
          f"{f'{base.revive_s:g} s' if base.revive_s > 0 else 'off'}. Match radius R = "
          f"{args.radius:g} px.\n")
    print("| setting | seed | targets | camera motion | MOTA | IDF1 | HOTA | ID switches | FP | FN "
          "| MOTA (detectable) | IDF1 (detectable) | HOTA (detectable) | track ms p50 | "
          f"single-frame Pd / FA per frame at {args.score_thr:g} |")
    print("|---|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    notes = []
    settings = [("static", 0.0, 0.0, (False, True)), ("pan", args.pan, args.shake, (False, True))]
    for name, pan, shake, motions in settings:
        for seed in seeds:
            scene = SyntheticScene(w, h, targets=args.targets, seed=seed, pan=pan, shake=shake)
            t0 = time.monotonic()
            cache = detect_scene(scene, args.frames, detector)
            notes.append(f"{name} seed {seed}: detector {cache['detector_ms'][0]:.1f} ms/frame "
                         f"p50, camera-motion estimate {cache['motion_ms'][0]:.2f} ms/frame p50 "
                         f"({cache['motion_failures'][0]} frames without an estimate), "
                         f"detector pass {time.monotonic() - t0:.0f} s")
            keep = detectable(cache, args.radius)
            pd, fa = single_frame(cache, args.score_thr, args.radius)
            for mot in motions:
                cfg = TrackerConfig(**{**base.__dict__, "motion": mot})
                res = track(cache, cfg, args.fps, (w, h))
                m = score(cache["ids"], cache["centres"], res["ids"], res["centres"],
                          args.radius)
                md = score(*subset(cache, res, keep, args.radius), args.radius)
                print(f"| {name} | {seed} | {len(keep)}/{args.targets} detectable | "
                      f"{'on' if mot else 'off'} | {m['MOTA']:.3f} | {m['IDF1']:.3f} | "
                      f"{m['HOTA']:.3f} | {m['IDsw']} | {m['FP']} | {m['FN']} | "
                      f"{md['MOTA']:.3f} | {md['IDF1']:.3f} | {md['HOTA']:.3f} | "
                      f"{np.median(res['ms']):.3f} | {pd:.3f} / {fa:.2f} |", flush=True)
    close_backend(choice.backend)
    print()
    for n in notes:
        print(f"- {n}")
    print("\n'detectable' columns score only the targets the detector finds in at least half of "
          "the frames they are visible in (tracks on the other targets left out).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
