#!/usr/bin/env python
"""How steadily confirmed tracks hold the labelled target of real infrared video.

    python benchmarks/track_stability_ir.py --threads 2 --out docs/results/track_stability_DATE
    python benchmarks/track_stability_ir.py --videos IR_DRONE_005 --max-frames 90 --out /tmp/s

``benchmarks/tracking_ir.py`` asks how often a confirmed track sits on the target, at what rate
of false alarms. This asks whether it is the *same* track: a user who hands a track ID to a
gimbal or an alarm wants one ID per target for as long as the target is seen. Same data, same
detector pass and the same detection cache as tracking_ir.py (a run of either fills it for the
other, for the same ``--backend``, ``--threads``, ``--floor`` and graph). The tracker is fed
each video's cached detections at each score of ``--feed``, in each of ``--variants`` (the
syntax of tracking_ir.py), and scored on the labelled frames:

- **covered**: a confirmed track (coasting included) lies within max(8 px, half the label
  box's diagonal) of the label's centre; the nearest such track is *the target's track* in that
  frame. covered / labelled frames is tracking_ir.py's track Pd.
- **IDs per target**: distinct IDs that were the target's track over the video (1 is ideal).
- **ID switches**: covered frames whose target's track differs from that of the last covered
  frame (the MOT "ID switch" for one target).
- **identity recall (IDR)**: the frames held by the target's most frequent ID / labelled frames:
  IDF1's recall for one target (one ID may claim only one target). IDR = Pd when no ID ever
  changes.
- **longest hold**: the longest run of consecutive labelled frames with the same ID, / labelled
  frames.
- **acquisition**: seconds from the first labelled frame to the first covered frame.
- **breaks**: covered-to-uncovered changes while the target is still labelled (a track lost or
  let go while the target stays in view).
- **false alarms per frame**: confirmed tracks farther than that from the label, as in
  tracking_ir.py (unlabelled real objects count too).

Pooled over all videos and per class: Pd, IDR and longest hold weighted by labelled frames; ID
switches and breaks per minute of labelled video; the median acquisition over the videos where
the target is covered at all. Writes ``summary.md`` and ``results.json`` to ``--out``.
"""
from __future__ import annotations

import argparse
import functools
import json
import os
import shlex
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

_HERE = Path(__file__).resolve().parent
_REPO = _HERE.parent
sys.path.insert(0, str(_REPO))
sys.path.insert(0, str(_HERE))

import numpy as np  # noqa: E402

from tracking_ir import (FPS, cache_tag, cached_detections, confirmed_tracks,  # noqa: E402
                         load_labels, parse_variants, score_frames, split)

KEYS = ("labelled", "covered", "ids", "switches", "best_id_frames", "longest_hold", "breaks",
        "false_alarms")


def target_track_ids(reports: Sequence[Sequence], centres: np.ndarray,
                     radii: np.ndarray) -> List[Optional[int]]:
    """Per frame: None where unlabelled, -1 where labelled but not covered, else the ID of the
    confirmed track nearest to the label centre within its radius. ``reports[i]``: (id, x, y)
    of frame i's confirmed tracks."""
    out: List[Optional[int]] = []
    for reps, c, r in zip(reports, centres, radii):
        if not np.isfinite(r):
            out.append(None)
            continue
        best, best_d = -1, np.inf
        for tid, x, y in reps:
            d = float(np.hypot(x - c[0], y - c[1]))
            if d <= r and d < best_d:
                best, best_d = int(tid), d
        out.append(best)
    return out


def stability(ids: Sequence[Optional[int]], false_alarms: int = 0) -> Dict[str, float]:
    """The per-video counts of the module text from :func:`target_track_ids`' output; also
    ``acquisition_frames`` (NaN when never covered)."""
    labelled = covered = switches = breaks = longest = run = 0
    counts: Dict[int, int] = {}
    last_id: Optional[int] = None   # the target's track in the last covered frame
    prev: Optional[int] = None      # the previous labelled frame's value
    first_label = first_cover = None
    for i, tid in enumerate(ids):
        if tid is None:             # unlabelled: the runs go on across it, nothing is scored
            continue
        labelled += 1
        first_label = i if first_label is None else first_label
        if tid >= 0:
            covered += 1
            first_cover = i if first_cover is None else first_cover
            counts[tid] = counts.get(tid, 0) + 1
            switches += last_id is not None and tid != last_id
            run = run + 1 if prev == tid else 1
            longest = max(longest, run)
            last_id = tid
        else:
            breaks += prev is not None and prev >= 0
            run = 0
        prev = tid
    acq = float(first_cover - first_label) if first_cover is not None else float("nan")
    return {"labelled": labelled, "covered": covered, "ids": len(counts), "switches": switches,
            "best_id_frames": max(counts.values()) if counts else 0, "longest_hold": longest,
            "breaks": breaks, "false_alarms": int(false_alarms), "acquisition_frames": acq}


def switch_events(reports: Sequence[Sequence], ids: Sequence[Optional[int]],
                  centres: np.ndarray) -> List[Dict[str, float]]:
    """Each ID switch of :func:`stability`: its frame, the old and new ID, whether the old ID
    was still a confirmed track then (another track took the target over, or the label moved
    to another object), how far the label's centre moved since the last covered frame (px) and
    how long that was (s)."""
    out: List[Dict[str, float]] = []
    last = last_frame = None
    for i, tid in enumerate(ids):
        if tid is None or tid < 0:
            continue
        if last is not None and tid != last:
            out.append({"frame": i, "from": last, "to": tid,
                        "old_alive": any(r[0] == last for r in reports[i]),
                        "label_move_px": float(np.hypot(*(centres[i] - centres[last_frame]))),
                        "gap_s": (i - last_frame) / FPS})
        last, last_frame = tid, i
    return out


def pooled(rows: Sequence[Dict[str, float]]) -> Dict[str, float]:
    """Pool per-video :func:`stability` rows (see the module text)."""
    tot = {k: float(sum(r[k] for r in rows)) for k in KEYS}
    lab = max(tot["labelled"], 1.0)
    minutes = tot["labelled"] / FPS / 60.0
    acq = [r["acquisition_frames"] / FPS for r in rows if np.isfinite(r["acquisition_frames"])]
    seen = [r for r in rows if r["covered"]]
    return {"videos": len(rows), "labelled": int(tot["labelled"]), "Pd": tot["covered"] / lab,
            "IDR": tot["best_id_frames"] / lab, "longest_hold": tot["longest_hold"] / lab,
            "ids_per_target": float(np.mean([r["ids"] for r in seen])) if seen else float("nan"),
            "one_id_videos": sum(r["ids"] == 1 for r in seen),
            "switches_per_min": tot["switches"] / minutes if minutes else float("nan"),
            "breaks_per_min": tot["breaks"] / minutes if minutes else float("nan"),
            "acquisition_s_median": float(np.median(acq)) if acq else float("nan"),
            "fa_per_frame": tot["false_alarms"] / lab}


def run_tracker(boxes, scores, motion: np.ndarray, cfg, size) -> List[List[tuple]]:
    """(id, x, y) of the confirmed tracks after each frame (tracking_ir.confirmed_tracks)."""
    frames, _ = confirmed_tracks(boxes, scores, motion, cfg, size)
    return [[(r.id, r.centre[0], r.centre[1]) for r in reps] for reps in frames]


def far_reports(reports: Sequence[Sequence], centres: np.ndarray, radii: np.ndarray) -> int:
    """Confirmed tracks on labelled frames farther than the radius from the label: the false
    alarms of tracking_ir.score_frames."""
    positions = [np.array([(x, y) for _, x, y in reps], np.float64).reshape(-1, 2)
                 for reps in reports]
    return score_frames(positions, centres, radii)[2]


def build_parser() -> argparse.ArgumentParser:
    default_data = os.environ.get("OSCAR_IR_VIDEO", str(_REPO.parent / "shared" / "data" /
                                                       "ir-video"))
    p = argparse.ArgumentParser(prog="track_stability_ir.py",
                                description=__doc__.splitlines()[0])
    p.add_argument("--data", default=default_data)
    p.add_argument("--videos", default="all", help="all, half:A, half:B or names")
    p.add_argument("--max-frames", type=int, default=0, help="first N frames per video (0: all)")
    p.add_argument("--input-size", default="640x512",
                   help="fit or WxH (default %(default)s: what oscar-edge run uses for these "
                        "320x256 videos)")
    p.add_argument("--backend", default="auto")
    p.add_argument("--model", default=None, help="ONNX graph instead of the shipped model")
    p.add_argument("--precision", default=None)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--floor", type=float, default=0.02, help="lowest score cached")
    p.add_argument("--feed", default="0.1,0.2",
                   help="comma-separated scores at which detections are fed to the tracker")
    p.add_argument("--variants", default="default;min_move=3;clutter=5",
                   help="tracker variants, as tracking_ir.py (default %(default)s)")
    p.add_argument("--cache", default=str(Path.home() / ".cache" / "oscar-edge" / "tracking_ir"))
    p.add_argument("--out", required=True, help="folder for summary.md and results.json")
    return p


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else [str(a) for a in argv]
    args = build_parser().parse_args(argv)
    from oscar_edge.backends.base import close_backend
    from oscar_edge.backends.factory import create_backend
    from oscar_edge.data.video import select_videos
    from oscar_edge.pipeline import Detector
    from oscar_edge.sizes import parse_size
    from oscar_edge.track import TrackerConfig
    from tracking_common import machine

    try:
        feeds = [float(v) for v in args.feed.split(",") if v.strip()]
    except ValueError:
        raise SystemExit(f"track_stability_ir: --feed must be numbers, got {args.feed!r}")
    if not feeds:
        raise SystemExit("track_stability_ir: --feed is empty")
    data = Path(args.data)
    try:
        names = select_videos(data, args.videos)
        input_size = None if args.input_size == "fit" else parse_size(
            args.input_size, order="hw_out", multiple=32, name="--input-size")
    except (FileNotFoundError, ValueError) as exc:
        raise SystemExit(f"track_stability_ir: {exc}")
    if not names:
        raise SystemExit(f"track_stability_ir: no labels in {data / 'labels'}")
    variants = parse_variants(args.variants)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    choice = create_backend(args.backend, model=args.model, threads=args.threads,
                            precision=args.precision)
    tag = cache_tag(choice, args.model, args.precision)
    make_detector = functools.cache(  # built on the first cache miss only
        lambda: Detector(choice.backend, input_size=input_size, score_thr=min(0.05, args.floor)))

    base = TrackerConfig()
    per_video: Dict[str, Dict[str, dict]] = {}
    classes: Dict[str, str] = {}
    for n in names:
        cls, centres, radii = load_labels(data / "labels" / f"{n}.json")
        classes[n] = cls
        cached = cached_detections(cache, data, n, args.input_size, tag, args.floor,
                                   args.max_frames, make_detector)
        boxes, scores = split(cached)
        k = min(len(boxes), len(centres))
        size = tuple(int(v) for v in cached["frame_size"])
        per_video[n] = {}
        for vname, kw in variants:
            for feed in feeds:
                cfg = TrackerConfig(**{**base.__dict__, **kw, "min_score": feed}).check()
                reps = run_tracker(boxes[:k], scores[:k], cached["motion"][:k], cfg, size)
                ids = target_track_ids(reps, centres[:k], radii[:k])
                row = stability(ids, far_reports(reps, centres[:k], radii[:k]))
                row["switch_events"] = switch_events(reps, ids, centres[:k])
                per_video[n][f"{vname}|{feed:g}"] = row
    close_backend(choice.backend)
    keys = [f"{v}|{f:g}" for v, _ in variants for f in feeds]
    table = {}
    for key in keys:
        table[key] = {"overall": pooled([per_video[n][key] for n in names])}
        for cls in sorted(set(classes.values())):
            table[key][cls] = pooled([per_video[n][key] for n in names if classes[n] == cls])
    events = {key: [dict(e, video=n) for n in names for e in per_video[n][key]["switch_events"]]
              for key in keys}
    write_summary(out, table, keys, names, args, argv, choice.label, machine(),
                  time.monotonic() - started, events)
    (out / "results.json").write_text(json.dumps(
        {"videos": names, "input_size": args.input_size, "backend": choice.label,
         "feeds": feeds, "variants": [v for v, _ in variants], "pooled": table,
         "per_video": per_video}, indent=1) + "\n")
    print((out / "summary.md").read_text())
    return 0


def write_summary(out: Path, table, keys, names, args, argv: Sequence[str], label: str,
                  host: str, seconds: float, events: Dict[str, List[dict]]) -> None:
    cmd = "python benchmarks/track_stability_ir.py " + shlex.join(argv)
    lines = [f"# Track stability on real IR video ({time.strftime('%Y-%m-%d', time.gmtime())})",
             "", f"Command: `{cmd}`", "",
             f"Machine: {host}. Videos: {len(names)}, input {args.input_size}. Detector: "
             f"{label}. Wall time {seconds / 60:.1f} min. Measures: "
             "benchmarks/track_stability_ir.py (module text).", "",
             "| tracker, fed at | Pd | identity recall | longest hold | IDs per target "
             "| videos with one ID | ID switches / min | breaks / min | acquisition, median s "
             "| false alarms / frame |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for key in keys:
        m = table[key]["overall"]
        vname, feed = key.split("|")
        seen = f"{m['one_id_videos']} of {m['videos']}"
        lines.append(f"| {vname}, {feed} | {m['Pd']:.3f} | {m['IDR']:.3f} | "
                     f"{m['longest_hold']:.3f} | {m['ids_per_target']:.2f} | {seen} | "
                     f"{m['switches_per_min']:.2f} | {m['breaks_per_min']:.2f} | "
                     f"{m['acquisition_s_median']:.2f} | {m['fa_per_frame']:.3f} |")
    lines += ["", "Per class, first row's setting (" + keys[0].replace("|", ", fed at ") + "):",
              "", "| class | videos | Pd | identity recall | longest hold | IDs per target "
              "| ID switches / min | breaks / min |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for cls, m in table[keys[0]].items():
        if cls == "overall":
            continue
        lines.append(f"| {cls} | {m['videos']} | {m['Pd']:.3f} | {m['IDR']:.3f} | "
                     f"{m['longest_hold']:.3f} | {m['ids_per_target']:.2f} | "
                     f"{m['switches_per_min']:.2f} | {m['breaks_per_min']:.2f} |")
    ev = events[keys[0]]
    if ev:
        alive = [e for e in ev if e["old_alive"]]
        lines += ["", f"ID switches of the first row's setting: {len(ev)}. "
                  f"{len(alive)} with the old ID still confirmed (another track took the target "
                  f"over, or the label moved to another object), {len(ev) - len(alive)} after "
                  "it was lost. Each: video, frame, label move since the last covered frame, "
                  "time since then.", ""]
        lines += [f"- {e['video']} frame {e['frame']}: old ID "
                  f"{'still confirmed' if e['old_alive'] else 'lost'}, label moved "
                  f"{e['label_move_px']:.0f} px in {e['gap_s']:.2f} s" for e in ev]
    (out / "summary.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    sys.exit(main())
