#!/usr/bin/env python
"""Cost of the track stage: time per frame with 30 live tracks (goal: p50 < 1 ms).

    python benchmarks/tracking_cost.py                 # 2000 timed frames
    python benchmarks/tracking_cost.py --frames 300    # quicker

Detections: the simulator of benchmarks/tracking_common.py, 30 targets at 640x512 (Pd 0.9
with drop-out bursts, ~2 uniform false alarms and 3 flickering clutter spots per frame), every
frame at 30 FPS. The first 60 frames warm up (tracks confirmed); then each call of
``Tracker.update`` (what the runtime's ``track`` stage runs, camera motion off) is timed with
perf_counter, and separately the JSON-lines form of its reports (done in the output stage).
Camera-motion estimation (``--track-motion on``) is timed on synthetic 640x512 frames with a
camera pan. Single process, single thread; the machine is shared (see the printed load).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

_HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(_HERE.parent))
sys.path.insert(0, str(_HERE))

import numpy as np  # noqa: E402

from oscar_edge.io.synthetic import SyntheticScene  # noqa: E402
from oscar_edge.track import CameraMotion, Tracker, TrackerConfig  # noqa: E402
from tracking_common import machine, simulate  # noqa: E402


def pct(ms) -> str:
    a = np.asarray(ms)
    return (f"{np.percentile(a, 50):.3f} | {np.percentile(a, 90):.3f} | "
            f"{np.percentile(a, 99):.3f} | {a.max():.3f}")


CLUTTER_S = 5.0  # the clutter-map setting the README recommends for fixed cameras


def timed_updates(frames, cfg: TrackerConfig, warm: int):
    """(tracker, update ms, JSON ms, confirmed tracks, detections) per timed frame."""
    tr = Tracker(cfg, fps=30.0)
    upd, js, live, dets = [], [], [], []
    for k, f in enumerate(frames):
        t0 = time.perf_counter()
        reps = tr.update(f.t, f.boxes, f.scores, frame_size=(640, 512))
        t1 = time.perf_counter()
        [r.to_json(30.0) for r in reps]
        t2 = time.perf_counter()
        if k >= warm:
            upd.append((t1 - t0) * 1e3)
            js.append((t2 - t1) * 1e3)
            live.append(sum(r.state == "confirmed" for r in reps))
            dets.append(len(f.boxes))
    return tr, upd, js, live, dets


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--frames", type=int, default=2000)
    p.add_argument("--targets", type=int, default=30)
    p.add_argument("--motion-frames", type=int, default=100)
    args = p.parse_args(argv)
    warm = 60
    frames = simulate(targets=args.targets, frames=args.frames + warm, seed=7)
    tr, upd, js, live, dets = timed_updates(frames, TrackerConfig(), warm)
    clutter_cfg = TrackerConfig(clutter_s=CLUTTER_S)
    tr_c, upd_c, _, live_c, _ = timed_updates(frames, clutter_cfg, warm)
    scene = SyntheticScene(640, 512, targets=5, seed=1, pan=4.0, shake=1.0)
    cm = CameraMotion()
    cm.estimate(scene.frame(0))
    greys = [scene.frame(t) for t in range(1, args.motion_frames + 1)]
    mot = []
    for g in greys:
        t0 = time.perf_counter()
        cm.estimate(g)
        mot.append((time.perf_counter() - t0) * 1e3)
    print(f"# Track stage cost ({time.strftime('%Y-%m-%d %H:%M %Z')})\n")
    print(f"Machine: {machine()} (timings are this machine at this load).")
    print(f"Command: `python benchmarks/tracking_cost.py {' '.join(sys.argv[1:])}`".rstrip())
    print(f"\n{len(upd)} timed frames; confirmed tracks per frame: mean {np.mean(live):.1f} "
          f"(min {min(live)}, max {max(live)}), tracks alive incl. tentative at the end "
          f"{len(tr)}; detections fed per frame: mean {np.mean(dets):.1f}.\n")
    print("| what | p50 ms | p90 ms | p99 ms | max ms |")
    print("|---|---:|---:|---:|---:|")
    print(f"| Tracker.update (the track stage, camera motion off) | {pct(upd)} |")
    print(f"| Tracker.update with the clutter map (`--track-clutter {CLUTTER_S:g}`; "
          f"{np.mean(live_c):.1f} confirmed tracks per frame, {tr_c.clutter_dropped} "
          f"detections dropped, {tr_c.clutter.grid.size} map cells at the end) | {pct(upd_c)} |")
    print(f"| JSON-lines form of the reports (output stage) | {pct(js)} |")
    print(f"| camera-motion estimate, 640x512 frame ({args.motion_frames} frames, "
          f"{cm.failures} without an estimate) | {pct(mot)} |")
    ok = np.percentile(upd, 50) < 1.0
    print(f"\nGoal track stage p50 < 1 ms with {args.targets} live tracks: "
          f"{'met' if ok else 'missed'} ({np.percentile(upd, 50):.3f} ms).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
