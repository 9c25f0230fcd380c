"""Nested cross-validation over videos (benchmarks/tracking_select.py) on hand-made counts
whose held-out answer is worked out by hand."""
from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import tracking_select as ts  # noqa: E402


def test_expand_grid_makes_every_combination_once():
    assert ts.expand_grid("clutter=3|5,clutter_max=0.2|0.3;min_move=2|3;default;min_move=2") == (
        "clutter=3,clutter_max=0.2;clutter=3,clutter_max=0.3;clutter=5,clutter_max=0.2;"
        "clutter=5,clutter_max=0.3;min_move=2;min_move=3;default")
    assert ts.expand_grid("confirm=4/6") == "confirm=4/6"  # '/' is a value, not a choice


def test_class_folds_spread_every_class_and_follow_the_seed():
    classes = {f"{c}{i}": c for c in "ab" for i in range(5)}
    folds = ts.class_folds(classes, 5, seed=0)
    assert sorted(folds) == sorted(classes)
    for c in "ab":  # five videos of a class land in five different folds
        assert sorted(f for n, f in folds.items() if classes[n] == c) == [0, 1, 2, 3, 4]
    assert ts.class_folds(classes, 5, seed=0) == folds
    assert any(ts.class_folds(classes, 5, seed=s) != folds for s in range(1, 6))
    with pytest.raises(ValueError, match="at least 2 folds"):
        ts.class_folds(classes, 1, seed=0)


def test_gain_is_the_best_quiet_point_minus_the_reference():
    ref = [100, 50, 10]  # Pd 0.5 at 0.1 false alarms per frame
    curve = {0.05: [100, 80, 20], 0.1: [100, 62, 10], 0.2: [100, 55, 5]}
    assert ts.gain(ref, curve) == pytest.approx(12.0)  # 0.05 is too noisy
    assert math.isnan(ts.gain(ref, {0.05: [100, 90, 30]}))


def _videos():
    """Four videos, two classes, single-frame Pd 0.5 at 0.1 false alarms each.
    Setting A lifts every video to Pd 0.6. Setting B is perfect on v1 only and 0.45 elsewhere."""
    single = [100, 50, 10]
    per = {}
    for n in ("v1", "v2", "v3", "v4"):
        per[n] = {"single": single, "A": {0.1: [100, 60, 10]},
                  "B": {0.1: [100, 100, 0] if n == "v1" else [100, 45, 10]},
                  "loud": {0.1: [100, 99, 50]}}
    return per, {"v1": "a", "v2": "a", "v3": "b", "v4": "b"}


def test_nested_cv_judges_each_video_with_a_setting_picked_without_it():
    per, classes = _videos()
    out = ts.nested_cv(per, classes, ["A", "B", "loud"], k=4, repeats=3)
    # in sample: A +10 (Pd 0.6); B (100 + 3 * 45) / 400 = 0.5875 -> +8.75; loud never quiet
    assert out["in_sample"]["A"] == pytest.approx(10.0)
    assert out["in_sample"]["B"] == pytest.approx(8.75)
    assert math.isnan(out["in_sample"]["loud"])
    # 4 folds of 4 videos = leave one out. Without v1, A wins (+10 vs -10); with v1 among the
    # three training videos, B wins ((100 + 90) / 300 = 0.633 -> +13.3 vs +10). So v1 is
    # judged with A (60) and v2-v4 with B (45 each): (60 + 135) / 400 = 0.4875 -> -1.25.
    assert out["gains"] == pytest.approx([-1.25] * 3)
    assert out["mean"] == pytest.approx(-1.25)
    assert out["picks"] == {"B": 9, "A": 3}
    with pytest.raises(ValueError, match="5 folds need at least 5 videos"):
        ts.nested_cv(per, classes, ["A"], k=5)
