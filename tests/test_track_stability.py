"""benchmarks/track_stability_ir.py: one ID per target on real video, scored per labelled frame."""
from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest

from run_helpers import needs_onnx, write_labelled_video

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
import track_stability_ir as ts  # noqa: E402
import tracking_ir  # noqa: E402


def test_target_track_is_the_nearest_confirmed_track_within_the_radius():
    centres = np.array([[10.0, 10.0], [10.0, 10.0], [np.nan, np.nan], [10.0, 10.0]])
    radii = np.array([8.0, 8.0, np.nan, 8.0])
    reports = [[(4, 15.0, 10.0), (9, 12.0, 10.0)],   # both near: 9 is nearer
               [(4, 30.0, 10.0)],                    # too far: not covered
               [(4, 10.0, 10.0)],                    # unlabelled frame
               []]
    assert ts.target_track_ids(reports, centres, radii) == [9, -1, None, -1]
    assert ts.far_reports(reports, centres, radii) == 1


def test_stability_counts_by_hand():
    #        0     1   2  3  4     5  6   7  8  9
    ids = [None, -1, 3, 3, None, 3, -1, 5, 5, 3]
    s = ts.stability(ids, false_alarms=4)
    assert s["labelled"] == 8 and s["covered"] == 6
    assert s["ids"] == 2 and s["best_id_frames"] == 4
    assert s["switches"] == 2            # 3 -> 5 and 5 -> 3
    assert s["breaks"] == 1              # 3 -> uncovered at frame 6; frame 1 was never covered
    assert s["longest_hold"] == 3        # frames 2, 3, 5: the unlabelled frame 4 does not cut it
    assert s["acquisition_frames"] == 1  # first label at 1, first cover at 2
    assert s["false_alarms"] == 4
    never = ts.stability([-1, -1, None])
    assert never["covered"] == 0 and never["ids"] == 0 and math.isnan(never["acquisition_frames"])
    steady = ts.stability([7] * 30)
    assert (steady["ids"], steady["switches"], steady["breaks"], steady["longest_hold"]) == \
        (1, 0, 0, 30)


def test_switch_events_say_whether_the_old_track_was_still_there():
    centres = np.array([[10.0, 10.0], [12.0, 10.0], [14.0, 10.0], [100.0, 10.0], [102.0, 10.0],
                        [104.0, 10.0]])
    ids = [1, -1, 2, 3, None, 1]
    reports = [[(1, 10, 10)], [], [(2, 14, 10)], [(2, 40, 10), (3, 100, 10)], [], [(1, 104, 10)]]
    ev = ts.switch_events(reports, ids, centres)
    assert [(e["frame"], e["from"], e["to"], e["old_alive"]) for e in ev] == [
        (2, 1, 2, False), (3, 2, 3, True), (5, 3, 1, False)]
    assert ev[0]["label_move_px"] == pytest.approx(4.0) and ev[0]["gap_s"] == pytest.approx(2 / 30)
    assert ev[1]["label_move_px"] == pytest.approx(86.0)
    assert len(ev) == ts.stability(ids)["switches"]


def test_pooled_weights_by_frames_and_rates_per_minute():
    a = ts.stability([1] * 1800)                   # one minute held by one ID
    b = ts.stability([-1] * 900 + [2] * 450 + [3] * 450)
    p = ts.pooled([a, b])
    assert p["labelled"] == 3600
    assert p["Pd"] == pytest.approx(2700 / 3600)
    assert p["IDR"] == pytest.approx((1800 + 450) / 3600)
    assert p["switches_per_min"] == pytest.approx(1 / 2.0)   # one switch in two minutes
    assert p["breaks_per_min"] == 0.0
    assert p["ids_per_target"] == pytest.approx(1.5) and p["one_id_videos"] == 1
    assert p["acquisition_s_median"] == pytest.approx(np.median([0.0, 900 / 30.0]))


def test_covered_frames_and_false_alarms_agree_with_tracking_ir():
    """The same tracker on the same detections: covered frames are tracking_ir's detected
    frames and the far tracks its false alarms."""
    from oscar_edge.track import TrackerConfig

    rng = np.random.default_rng(3)
    frames = 120
    centres = np.stack([40 + 1.5 * np.arange(frames), 100 + 0.5 * np.arange(frames)], axis=1)
    radii = np.full(frames, 8.0)
    radii[50:55] = np.nan
    boxes, scores = [], []
    for i in range(frames):
        pts = [centres[i] + rng.normal(0, 0.7, 2)] if rng.random() < 0.8 else []
        pts += [rng.uniform(0, 320, 2) for _ in range(rng.integers(0, 3))]
        pts += [np.array([250.0, 30.0]) + rng.normal(0, 0.5, 2)]   # a steady clutter point
        b = np.array([[x - 2, y - 2, x + 2, y + 2] for x, y in pts], np.float32)
        boxes.append(b)
        scores.append(rng.uniform(0.05, 0.3, len(b)).astype(np.float32))
    motion = np.full((frames, 2, 3), np.nan)
    cfg = TrackerConfig(min_score=0.1).check()
    reps = ts.run_tracker(boxes, scores, motion, cfg, (320, 256))
    s = ts.stability(ts.target_track_ids(reps, centres, radii), ts.far_reports(reps, centres,
                                                                                radii))
    centres_only, _ = tracking_ir.track_reports(boxes, scores, motion, cfg, (320, 256))
    labelled, detected, fa = tracking_ir.score_frames(centres_only, centres, radii)
    assert (s["labelled"], s["covered"], s["false_alarms"]) == (labelled, detected, fa)
    assert 0 < s["covered"] < s["labelled"] and s["false_alarms"] > 0


@needs_onnx
def test_track_stability_end_to_end(tmp_path, capsys):
    data = tmp_path / "ir"
    write_labelled_video(data, "IR_DRONE_001", "drone", seed=5)
    write_labelled_video(data, "IR_BIRD_002", "bird", seed=6)
    out = tmp_path / "out"
    args = ["--data", str(data), "--backend", "onnxruntime", "--feed", "0.05,0.1",
            "--variants", "default;min_move=2", "--cache", str(tmp_path / "cache"),
            "--out", str(out)]
    assert ts.main(args) == 0
    res = json.loads((out / "results.json").read_text())
    assert set(res["pooled"]) == {f"{v}|{f}" for v in ("default", "min_move=2")
                                  for f in ("0.05", "0.1")}
    overall = res["pooled"]["default|0.05"]["overall"]
    assert overall["labelled"] == 38 and overall["videos"] == 2   # 2 x 20 frames, 1 unlabelled
    assert 0.0 <= overall["IDR"] <= overall["Pd"] <= 1.0
    assert set(res["pooled"]["default|0.05"]) == {"overall", "bird", "drone"}
    text = (out / "summary.md").read_text()
    assert "| default, 0.05 |" in text and "| drone | 1 |" in text
    for rows in res["per_video"].values():
        for row in rows.values():
            assert len(row["switch_events"]) == row["switches"]
    # the detections were cached: tracking_ir.py reads the same files for the same settings
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 2
    assert tracking_ir.main(["--data", str(data), "--input-sizes", "640x512", "--backend",
                             "onnxruntime", "--variants", "default", "--cache",
                             str(tmp_path / "cache"), "--out", str(tmp_path / "o2")]) == 0
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 2
    for bad, text in ((["--feed", "x"], "--feed must be numbers"), (["--feed", ","], "empty"),
                      (["--input-size", "333x250"], "32")):
        with pytest.raises(SystemExit, match=text):
            ts.main(args + bad)
    capsys.readouterr()
