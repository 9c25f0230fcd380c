#!/usr/bin/env python
"""Pool runs of benchmarks/tracking_ir.py over disjoint sets of videos, and compare detectors.

    python benchmarks/tracking_ir_pool.py \\
        --pool "shipped=runs/trk-A-v1,runs/trk-B-v1" \\
        --pool "fine-tuned on the other half=runs/trk-A-ft,runs/trk-B-ft" --out DIR

Each ``--pool NAME=DIR[,DIR...]`` sums the per-frame counts (labelled frames, detected frames,
false alarms) of those runs at their headline input size: the runs must hold disjoint videos
and the same headline size. This is how a two-fold experiment is read, for example a detector
fine-tuned on half A of the videos and judged on half B, plus one fine-tuned on B and judged
on A (README, "Fine-tuning on video"): every video is then judged by a detector that never saw
it. For each pool: single-frame Pd and false alarms per frame over the score thresholds, the
goal check of every tracker variant the runs share (tracks' best Pd at no more false alarms than
single frames at score 0.1, as tracking_ir.py), and the held-out gains each run reported.
Writes ``summary.md``, ``results.json`` and ``pd_fa.png`` to ``--out``.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Dict, List, Tuple

_HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(_HERE.parent))
sys.path.insert(0, str(_HERE))

from tracking_ir import FEED, THRESHOLDS, add, curve, goal_gain  # noqa: E402


def parse_pool(text: str) -> Tuple[str, List[Path]]:
    name, sep, dirs = text.partition("=")
    paths = [Path(d.strip()) for d in dirs.split(",") if d.strip()]
    if not sep or not name.strip() or not paths:
        raise SystemExit(f"tracking_ir_pool: --pool {text!r}: expected NAME=DIR[,DIR...]")
    return name.strip(), paths


def pool(paths: List[Path]) -> dict:
    """Sum the headline-size counts of tracking_ir runs over disjoint videos."""
    counts: Dict[str, List[int]] = {}
    videos: List[str] = []
    sizes, held = set(), []
    for p in paths:
        f = p / "results.json"
        if not f.is_file():
            raise SystemExit(f"tracking_ir_pool: no results.json in {p}")
        r = json.loads(f.read_text())
        size = r["input_sizes"][0]
        sizes.add(size)
        overlap = sorted(set(videos) & set(r["videos"]))
        if overlap:
            raise SystemExit(f"tracking_ir_pool: {p} repeats videos of an earlier run "
                             f"({', '.join(overlap[:3])}...): pool disjoint runs only")
        videos += r["videos"]
        for key, c in r["counts"][size].items():
            if not key.startswith("half "):  # a run's own halves mean nothing once pooled
                add(counts, key, c)
        if r.get("held_out"):
            held.append({"run": str(p), "mean": r["held_out"]["mean"],
                         "min": r["held_out"]["min"], "max": r["held_out"]["max"]})
    if len(sizes) != 1:
        raise SystemExit(f"tracking_ir_pool: runs of one pool must share their headline input "
                         f"size, got {sorted(sizes)}")
    return {"runs": [str(p) for p in paths], "videos": videos, "input_size": sizes.pop(),
            "counts": counts, "held_out": held}


def variants_of(counts: Dict[str, list]) -> List[str]:
    return sorted({k.split("|")[1][len("tracks "):] for k in counts
                   if k.startswith("overall|tracks ")})


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pool", action="append", required=True, metavar="NAME=DIR[,DIR...]")
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    pools = dict(parse_pool(t) for t in args.pool)
    results = {name: pool(paths) for name, paths in pools.items()}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    lines = [f"# Pooled tracking_ir runs ({time.strftime('%Y-%m-%d %H:%M %Z')})", "",
             f"Command: `python benchmarks/tracking_ir_pool.py {' '.join(sys.argv[1:])}`", ""]
    for name, r in results.items():
        c = r["counts"]
        lines += [f"## {name}", "", f"Runs: {', '.join(r['runs'])}; {len(r['videos'])} videos, "
                  f"input {r['input_size']}.", "",
                  "| score | " + " | ".join(f"{t:g}" for t in THRESHOLDS) + " |",
                  "|---|" + "---:|" * len(THRESHOLDS)]
        pts = {lab: (pd, fa) for pd, fa, lab in curve(c, "overall", "single", THRESHOLDS)}
        lines.append("| single-frame Pd | " + " | ".join(
            f"{pts[f'{t:g}'][0]:.3f}" if f"{t:g}" in pts else "" for t in THRESHOLDS) + " |")
        lines.append("| false alarms / frame | " + " | ".join(
            f"{pts[f'{t:g}'][1]:.3f}" if f"{t:g}" in pts else "" for t in THRESHOLDS) + " |")
        lines.append("")
        goal = {}
        for v in variants_of(c):
            pd0, fa0, pd, lab = goal_gain(c, "overall", v)
            goal[v] = {"single_pd": pd0, "single_fa": fa0, "tracks_pd": pd, "feed": lab,
                       "gain_points": 100 * (pd - pd0)}
            lines.append(f"- tracks {v}: Pd {pd:.3f} (fed at {lab}) at no more than "
                         f"{fa0:.3f} false alarms per frame, against single frames' {pd0:.3f} "
                         f"at 0.1: {100 * (pd - pd0):+.1f} points (goal +10)")
        classes = sorted({k.split("|")[0] for k in c} - {"overall"})
        per_class = []
        for cls in classes:
            v = c.get(f"{cls}|single|0.1")
            if v and v[0]:
                per_class.append(f"{cls} {v[1] / v[0]:.3f} / {v[2] / v[0]:.3f}")
        lines += ["", "Single frames at 0.1 per class (Pd / false alarms per frame): "
                  + ", ".join(per_class) + "."]
        for h in r["held_out"]:
            lines.append(f"- held-out tracker choice in {h['run']}: {h['mean']:+.1f} "
                         f"({h['min']:+.1f} to {h['max']:+.1f})")
        lines.append("")
        r["goal"] = goal
    (out / "summary.md").write_text("\n".join(lines) + "\n")
    (out / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    plot(out / "pd_fa.png", results)
    print((out / "summary.md").read_text())
    return 0


def plot(path: Path, results: dict) -> None:
    """Pd against false alarms per frame: each pool's single-frame curve (solid) and its
    default tracker's curve (dashed)."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("tracking_ir_pool: matplotlib missing: no plot", file=sys.stderr)
        return
    fig, ax = plt.subplots(figsize=(7, 5), dpi=110)
    colours = ["tab:blue", "tab:red", "tab:green", "tab:purple"]
    for j, (name, r) in enumerate(results.items()):
        col = colours[j % len(colours)]
        for kind, values, style in (("single", THRESHOLDS, "-"), ("tracks default", FEED, "--")):
            pts = curve(r["counts"], "overall", kind, values)
            if not pts:
                continue
            pd, fa, _ = zip(*sorted(pts, key=lambda q: q[1]))
            what = "single frames" if kind == "single" else "tracks, default settings"
            ax.plot(fa, pd, style, color=col, marker="o", ms=3, label=f"{name}: {what}")
    ax.set_xscale("symlog", linthresh=0.01)
    ax.set_xlabel("false alarms per labelled frame")
    ax.set_ylabel("Pd (labelled frames with the target found)")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    n = max(len(r["videos"]) for r in results.values())
    ax.set_title(f"IR video, {n} clips, pooled runs", fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
