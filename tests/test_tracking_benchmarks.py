"""The tracking benchmarks: the IR scoring rule on hand-made frames, benchmarks/tracking_ir.py
end to end on a tiny labelled video (cache reused on the second run), tracking_cost.py."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from run_helpers import needs_onnx, write_labelled_video

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
import tracking_ir  # noqa: E402


def test_ir_labels_and_scoring_rule(tmp_path):
    label = tmp_path / "IR_TEST_001.json"
    label.write_text(json.dumps({"class": "drone", "boxes": [
        [10.5, 20.5, 6, 8], None, [100, 100, 30, 40]]}))
    cls, centres, radii = tracking_ir.load_labels(label)
    assert cls == "drone"
    # MATLAB 1-based [x, y, w, h] -> 0-based centre (x - 0.5 + w / 2, y - 0.5 + h / 2)
    assert centres[0] == pytest.approx([13.0, 24.0]) and radii[0] == 8.0  # max(8, 5)
    assert np.isnan(centres[1]).all() and np.isnan(radii[1])
    assert centres[2] == pytest.approx([114.5, 119.5]) and radii[2] == 25.0  # half of 50
    reports = [np.array([[13.0, 31.9]]),              # 7.9 px away: detected
               np.array([[0.0, 0.0]]),                # unlabelled frame: not scored
               np.array([[114.5, 145.0], [0, 0]])]    # 25.5 px > 25: missed, 2 false alarms
    assert tracking_ir.score_frames(reports, centres, radii) == (2, 1, 2)


def test_exact_single_frame_sweep():
    # two labelled frames and one unlabelled; centre of box [x0, y0, x1, y1]
    box = lambda x, y: [x - 1, y - 1, x + 1, y + 1]  # noqa: E731
    boxes = [np.array([box(10, 10), box(50, 50)], np.float32),      # near (0.3), far (0.4)
             np.array([box(99, 99)], np.float32),                   # unlabelled frame
             np.array([box(20, 21), box(21, 20)], np.float32)]      # both near (0.1, 0.2)
    scores = [np.array([0.3, 0.4]), np.array([0.9]), np.array([0.1, 0.2])]
    centres = np.array([[10.0, 10.0], [np.nan, np.nan], [20.0, 20.0]])
    radii = np.array([8.0, np.nan, 8.0])
    best, fa = tracking_ir.frame_scores(boxes, scores, centres, radii)
    assert best.tolist() == pytest.approx([0.3, 0.2]) and fa.tolist() == pytest.approx([0.4])
    # no false alarm allowed: threshold above 0.4, nothing found
    assert tracking_ir.exact_pd_at(best, fa, 0.0) == (0.0, pytest.approx(0.4))
    # half a false alarm per frame allows the 0.4 one: every cached detection counts
    pd, thr = tracking_ir.exact_pd_at(best, fa, 0.5)
    assert pd == 1.0 and thr == -np.inf
    # the grid rule at any threshold never beats the exact sweep at the same false alarms
    rng = np.random.default_rng(0)
    n = 200
    centres = rng.uniform(20, 300, (n, 2))
    radii = np.full(n, 8.0)
    boxes, scores = [], []
    for c in centres:
        k = rng.integers(0, 4)
        pos = np.where(rng.random((k, 1)) < 0.4, c + rng.normal(0, 3, (k, 2)),
                       rng.uniform(0, 320, (k, 2)))
        boxes.append(np.hstack([pos - 1, pos + 1]).astype(np.float32))
        scores.append(rng.uniform(0.02, 0.3, k))
    best, fa = tracking_ir.frame_scores(boxes, scores, centres, radii)
    for thr in (0.02, 0.05, 0.1, 0.15, 0.2, 0.25):
        lab, det, nfa = tracking_ir.score_frames(
            tracking_ir.single_frame_reports(boxes, scores, thr), centres, radii)
        pd, t = tracking_ir.exact_pd_at(best, fa, nfa / lab)
        assert pd >= det / lab - 1e-12 and t <= thr


def test_sizes_compared_at_equal_false_alarms():
    # per size: best score near the label in each of 10 labelled frames, false-alarm scores
    a_best = np.array([0.3, 0.25, 0.2, 0.15, 0.12] + [-np.inf] * 5)
    # as two videos each (pooled by the table)
    sweeps = {"A": [(a_best[:4], np.array([0.28, 0.1])), (a_best[4:], np.array([0.18, 0.11]))],
              "B": [(np.full(4, 0.1), np.zeros(0)), (np.full(6, 0.1), np.array([0.01]))]}
    table = tracking_ir.sizes_at_equal_fa(sweeps, {"A": [8.0, 0.1], "B": [2.0, 0.1]},
                                          ["A", "B"])
    cells = {size: {c["fa_budget"]: (c["pd"], c["score_above"]) for c in row["budgets"]}
             for size, row in table.items()}
    assert table["A"]["detector_ms"] == 8.0
    assert cells["A"][0.05] == (0.1, 0.28)     # 0.5 false alarms allowed -> none: above 0.28
    assert cells["A"][0.1] == (0.3, 0.18)      # one allowed: above 0.18
    assert cells["A"][0.2] == (0.5, 0.11)      # two allowed: above 0.11
    assert cells["B"][0.01] == (1.0, 0.01)     # none allowed, but every target beats 0.01
    assert cells["B"][0.1] == (1.0, -np.inf)   # its one false alarm is allowed
    # paired video bootstrap: B minus A per budget, an interval around the pooled difference
    boot = tracking_ir.sizes_at_equal_fa(sweeps, {"A": [8.0, 0.1], "B": [2.0, 0.1]},
                                         ["A", "B"], draws=200, seed=1)
    assert all("minus_first_p5_p95_points" not in c for c in boot["A"]["budgets"])
    for c, a in zip(boot["B"]["budgets"], boot["A"]["budgets"]):
        lo, hi = c["minus_first_p5_p95_points"]
        assert lo <= hi and -100 <= lo and hi <= 100
        assert (c["pd"], a["pd"]) == (cells["B"][c["fa_budget"]][0], cells["A"][c["fa_budget"]][0])
    # identical sizes differ by exactly zero on every draw
    same = tracking_ir.sizes_at_equal_fa({"A": sweeps["A"], "A2": sweeps["A"]}, {"A": [1, 0],
                                         "A2": [1, 0]}, ["A", "A2"], draws=50)
    assert all(c["minus_first_p5_p95_points"] == [0.0, 0.0] for c in same["A2"]["budgets"])
    rows = tracking_ir.size_rows("B", boot["B"], boot["A"])
    assert len(rows) == 2 and rows[1].startswith("| (minus first) |")


@needs_onnx
def test_tracking_ir_end_to_end_with_cache(tmp_path, capsys):
    data = tmp_path / "ir"
    write_labelled_video(data, "IR_DRONE_001", "drone", seed=5)
    args = ["--data", str(data), "--input-sizes", "640x512", "--variants", "default;min_move=2",
            "--cache", str(tmp_path / "cache"), "--out", str(tmp_path / "out")]
    assert tracking_ir.main(args) == 0
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 1
    res = json.loads((tmp_path / "out" / "results.json").read_text())
    counts = res["counts"]["640x512"]
    assert counts["overall|single|0.1"][0] == 19  # 20 frames, one unlabelled
    assert counts["overall|single|0.1"] == counts["drone|single|0.1"]
    assert "overall|tracks min_move=2|0.05" in counts
    try:
        import matplotlib  # noqa: F401  (the plot needs it; the train extra has it)
        assert (tmp_path / "out" / "pd_fa.png").stat().st_size > 1000
    except ImportError:
        pass
    assert "Goal check" in (tmp_path / "out" / "summary.md").read_text()
    # the second run reads the cache: same counts
    assert tracking_ir.main(args) == 0
    again = json.loads((tmp_path / "out" / "results.json").read_text())["counts"]["640x512"]
    assert again == counts
    with pytest.raises(SystemExit, match="multiples of 32"):
        tracking_ir.main(args + ["--input-sizes", "640x512,333x250"])
    with pytest.raises(SystemExit, match="--bootstrap must be >= 0"):
        tracking_ir.main(args + ["--bootstrap", "-1"])
    # a held-out check needs at least as many videos as folds
    with pytest.raises(SystemExit, match="needs at least as many videos"):
        tracking_ir.main(args + ["--select", "default;min_move=1|2", "--select-folds", "2"])
    capsys.readouterr()


@needs_onnx
def test_tracking_ir_cache_follows_the_shipped_graph(tmp_path, monkeypatch, capsys):
    """New shipped weights under the same file name must not reuse the old detections."""
    import onnx

    from oscar_edge.backends import factory

    data = tmp_path / "ir"
    write_labelled_video(data, "IR_DRONE_001", "drone", seed=5, frames=4)
    graph = tmp_path / "oscar-edge.onnx"
    graph.write_bytes(factory.SHIPPED_ONNX.read_bytes())
    monkeypatch.setitem(factory.SHIPPED_MODELS, "fp32", graph)
    cache = tmp_path / "cache"
    args = ["--data", str(data), "--input-sizes", "640x512", "--variants", "default",
            "--backend", "onnxruntime", "--cache", str(cache), "--out", str(tmp_path / "out")]
    assert tracking_ir.main(args) == 0
    assert tracking_ir.main(args) == 0
    assert len(list(cache.glob("*.npz"))) == 1      # same graph: cache reused
    m = onnx.load(str(graph))
    m.doc_string = "other weights"
    onnx.save(m, str(graph))
    assert tracking_ir.main(args) == 0
    assert len(list(cache.glob("*.npz"))) == 2      # changed graph: detected again
    capsys.readouterr()


@needs_onnx
def test_tracking_ir_held_out_check(tmp_path, capsys):
    data = tmp_path / "ir"
    write_labelled_video(data, "IR_DRONE_001", "drone", seed=5)
    write_labelled_video(data, "IR_BIRD_001", "bird", seed=6)
    assert tracking_ir.main(["--data", str(data), "--input-sizes", "640x512,320x256",
                             "--variants", "default", "--select", "default;min_move=1|2",
                             "--select-folds", "2", "--select-repeats", "3",
                             "--cache", str(tmp_path / "cache"),
                             "--out", str(tmp_path / "out")]) == 0
    held = json.loads((tmp_path / "out" / "results.json").read_text())["held_out"]
    assert held["folds"] == 2 and held["repeats"] == 3 and len(held["gains"]) == 3
    assert set(held["in_sample"]) == {"default", "min_move=1", "min_move=2"}
    assert sum(held["picks"].values()) == 2 * 3  # one pick per fold and shuffle
    assert held["input_size"] == "640x512"
    summary = (tmp_path / "out" / "summary.md").read_text()
    assert "Held-out check at 640x512" in summary
    # two sizes: the summary compares them at equal false alarms, from the same counts
    assert "## Input sizes at equal false alarms" in summary
    res = json.loads((tmp_path / "out" / "results.json").read_text())
    table = res["goal"]["sizes_at_equal_fa"]
    assert list(table) == ["640x512", "320x256"]
    for size, row in table.items():
        single = res["counts"][size]["overall|single|0.1"]  # [frames, detected, FAs]
        for cell in row["budgets"]:  # the sweep is never worse than the 0.1 grid point
            if single[2] <= cell["fa_budget"] * single[0]:
                assert cell["pd"] >= single[1] / single[0] - 1e-12
    capsys.readouterr()


def test_tracking_cost_script_runs(capsys):
    import tracking_cost

    assert tracking_cost.main(["--frames", "40", "--targets", "10", "--motion-frames", "3"]) == 0
    out = capsys.readouterr().out
    assert "Tracker.update" in out and "Goal track stage p50 < 1 ms" in out


def _run_dir(path: Path, videos, counts, size="640x512", held=None):
    path.mkdir(parents=True)
    (path / "results.json").write_text(json.dumps({
        "videos": videos, "input_sizes": [size], "counts": {size: counts}, "held_out": held}))
    return path


def test_tracking_ir_pool_sums_disjoint_runs(tmp_path, capsys):
    import tracking_ir_pool

    # two halves; counts are [labelled frames, detected frames, false alarms]
    a = _run_dir(tmp_path / "a", ["V1"], {
        "overall|single|0.1": [100, 60, 10], "drone|single|0.1": [100, 60, 10],
        "overall|tracks default|0.05": [100, 80, 5], "overall|tracks default|0.1": [100, 70, 2],
        "half A|single|0.1": [50, 30, 5]},
        held={"mean": 3.0, "min": 1.0, "max": 5.0})
    b = _run_dir(tmp_path / "b", ["V2"], {
        "overall|single|0.1": [300, 240, 10], "bird|single|0.1": [300, 240, 10],
        "overall|tracks default|0.05": [300, 270, 40], "overall|tracks default|0.1": [300, 255, 8]})
    out = tmp_path / "out"
    assert tracking_ir_pool.main(["--pool", f"p={a},{b}", "--out", str(out)]) == 0
    res = json.loads((out / "results.json").read_text())["p"]
    assert res["videos"] == ["V1", "V2"]
    assert res["counts"]["overall|single|0.1"] == [400, 300, 20]
    assert "half A|single|0.1" not in res["counts"]
    # single frames at 0.1: Pd 0.75 at 0.05 false alarms per frame; tracks fed at 0.05 have
    # 45 / 400 = 0.1125 (too many), fed at 0.1: 10 / 400 = 0.025 with Pd 325 / 400 = 0.8125
    g = res["goal"]["default"]
    assert g["single_pd"] == pytest.approx(0.75) and g["single_fa"] == pytest.approx(0.05)
    assert g["tracks_pd"] == pytest.approx(0.8125) and g["feed"] == "0.1"
    assert g["gain_points"] == pytest.approx(6.25)
    text = (out / "summary.md").read_text()
    assert "+6.2 points" in text and "bird 0.800 / 0.033" in text and "+3.0 (+1.0 to +5.0)" in text
    with pytest.raises(SystemExit, match="repeats videos"):
        tracking_ir_pool.main(["--pool", f"p={a},{a}", "--out", str(out)])
    c = _run_dir(tmp_path / "c", ["V3"], {"overall|single|0.1": [1, 1, 0]}, size="fit")
    with pytest.raises(SystemExit, match="share their headline input size"):
        tracking_ir_pool.main(["--pool", f"p={a},{c}", "--out", str(out)])
    with pytest.raises(SystemExit, match="NAME=DIR"):
        tracking_ir_pool.main(["--pool", "nodirs", "--out", str(out)])
    capsys.readouterr()
