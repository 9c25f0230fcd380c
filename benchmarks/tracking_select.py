"""Held-out judgement of a tuned tracker setting: nested cross-validation over videos.

Picking the best of many tracker settings on the same videos that score it flatters the
winner. ``benchmarks/tracking_ir.py --select GRID`` therefore also answers the question a
user with new videos asks: *if I tune the tracker on videos like these, what gain do I get on
videos I did not tune on?*

- The videos are dealt into K folds, round-robin within each class after a seeded shuffle
  (every class is spread over the folds).
- For each fold, the setting with the best goal gain on the other K - 1 folds is picked
  (tracking_ir's goal: the tracks' best Pd at no more false alarms per frame than
  single-frame detection at score 0.1, minus that detection's Pd, on the pooled frames of
  those videos).
- Each held-out video is then scored with the setting picked without it; the held-out
  counts of all folds are pooled and judged against single-frame detection at 0.1 on all
  videos. Repeating with other shuffles gives the spread of that estimate.

Counts are tracking_ir's ``[labelled frames, detected frames, false alarms]``.
"""
from __future__ import annotations

import itertools
import random
import statistics
from typing import Dict, List, Mapping, Sequence, Tuple

Counts = Sequence[int]
# per video: {"single": counts at score 0.1, "<variant>": {feed: counts}}
PerVideo = Mapping[str, Mapping[str, object]]


def expand_grid(text: str) -> str:
    """Variant text with ``a|b|c`` alternatives -> every combination, ``;``-separated.

    ``"clutter=3|5,clutter_max=0.2|0.3;min_move=2|3;default"`` ->
    ``"clutter=3,clutter_max=0.2;clutter=3,clutter_max=0.3;...;min_move=3;default"``.
    """
    out: List[str] = []
    for part in (p.strip() for p in text.split(";")):
        if not part:
            continue
        options = []
        for item in part.split(","):
            key, eq, values = item.partition("=")
            options.append([f"{key}{eq}{v}" for v in values.split("|")] if eq else [key])
        out.extend(",".join(combo) for combo in itertools.product(*options))
    return ";".join(dict.fromkeys(out))  # keep order, drop repeats


def class_folds(classes: Mapping[str, str], k: int, seed: int) -> Dict[str, int]:
    """Video -> fold in 0..k-1, round-robin within each class after a seeded shuffle."""
    if k < 2:
        raise ValueError(f"cross-validation needs at least 2 folds, got {k}")
    rng = random.Random(seed)
    folds: Dict[str, int] = {}
    start = 0
    for cls in sorted(set(classes.values())):
        names = sorted(n for n, c in classes.items() if c == cls)
        rng.shuffle(names)
        for i, n in enumerate(names):
            folds[n] = (start + i) % k
        start += len(names)  # the next class continues the deal: folds stay balanced
    return folds


def _pool(rows: Sequence[Counts]) -> List[int]:
    acc = [0, 0, 0]
    for c in rows:
        for i in range(3):
            acc[i] += int(c[i])
    return acc


def rates(c: Counts) -> Tuple[float, float]:
    """(Pd, false alarms per labelled frame) of counts."""
    return (c[1] / c[0], c[2] / c[0]) if c[0] else (float("nan"), float("nan"))


def pd_at(curve: Sequence[Tuple[float, float, str]], fa_max: float) -> Tuple[float, str]:
    """(best Pd, its label) of a curve's points (pd, fa, label) with fa <= fa_max; the goal's
    rule for "at no more false alarms". (NaN, "none") when no point is that quiet."""
    ok = [(pd, lab) for pd, fa, lab in curve if fa <= fa_max + 1e-12]
    return max(ok) if ok else (float("nan"), "none")


def gain(ref: Counts, curve: Mapping[object, Counts]) -> float:
    """Goal gain in Pd points: the best Pd of the feed points whose false alarms per frame
    do not exceed those of ``ref`` (single-frame detection at 0.1), minus ``ref``'s Pd;
    NaN when no feed point is that quiet."""
    pd0, fa0 = rates(ref)
    pd, _ = pd_at([(*rates(c), str(f)) for f, c in curve.items()], fa0)
    return 100.0 * (pd - pd0)


def _pooled_curve(per: PerVideo, names: Sequence[str], pick: Mapping[str, str]
                  ) -> Dict[object, List[int]]:
    feeds = list(per[names[0]][pick[names[0]]])
    return {f: _pool([per[n][pick[n]][f] for n in names]) for f in feeds}


def select(per: PerVideo, names: Sequence[str], candidates: Sequence[str]) -> Tuple[str, float]:
    """(the candidate with the best gain on ``names``' pooled frames, that gain); ties go to
    the earlier candidate."""
    ref = _pool([per[n]["single"] for n in names])
    best, best_gain = candidates[0], float("-inf")
    for v in candidates:
        g = gain(ref, _pooled_curve(per, names, {n: v for n in names}))
        if g == g and g > best_gain:  # NaN never wins
            best, best_gain = v, g
    return best, best_gain


def nested_cv(per: PerVideo, classes: Mapping[str, str], candidates: Sequence[str],
              k: int = 5, repeats: int = 10) -> dict:
    """Held-out gain of "pick the best candidate on the other folds" (module docstring).

    Returns ``{"gains": [one per repeat], "mean", "min", "max", "picks": {candidate: times
    picked}, "folds": k, "repeats": repeats, "in_sample": {candidate: gain on all videos}}``.
    """
    names = sorted(per)
    if k > len(names):
        raise ValueError(f"{k} folds need at least {k} videos, got {len(names)}")
    ref_all = _pool([per[n]["single"] for n in names])
    gains: List[float] = []
    picks: Dict[str, int] = {}
    for rep in range(repeats):
        fold = class_folds({n: classes[n] for n in names}, k, seed=rep)
        pick: Dict[str, str] = {}
        for f in range(k):
            train = [n for n in names if fold[n] != f]
            best, _ = select(per, train, candidates)
            picks[best] = picks.get(best, 0) + 1
            pick.update({n: best for n in names if fold[n] == f})
        gains.append(gain(ref_all, _pooled_curve(per, names, pick)))
    finite = [g for g in gains if g == g]
    return {"folds": k, "repeats": repeats, "gains": gains,
            "mean": statistics.mean(finite) if finite else float("nan"),
            "min": min(finite) if finite else float("nan"),
            "max": max(finite) if finite else float("nan"),
            "picks": dict(sorted(picks.items(), key=lambda kv: -kv[1])),
            "in_sample": {v: gain(ref_all, _pooled_curve(per, names, {n: v for n in names}))
                          for v in candidates}}
