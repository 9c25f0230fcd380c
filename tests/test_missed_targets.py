"""benchmarks/missed_targets.py: per-target rows by hand, and the command on the mini split."""
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from oscar_edge.metrics import pd_fa
from run_helpers import needs_onnx

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "missed_targets.py"


def _module():
    spec = importlib.util.spec_from_file_location("missed_targets", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_target_rows_by_hand():
    mt = _module()
    gt = np.array([[10, 10, 13, 13], [50, 50, 52, 52], [80, 80, 90, 90]], dtype=float)
    boxes = np.array([[10, 10, 12, 12],      # centre (11, 11): inside box 0, score 0.3
                      [49, 49, 53, 53],      # centre (51, 51): inside box 1, score 0.06
                      [100, 100, 104, 104]])  # centre (102, 102): inside nothing
    scores = np.array([0.3, 0.06, 0.5])
    rows = mt.target_rows(boxes, scores, gt, 0.1)
    assert [r["best_score_inside"] for r in rows] == pytest.approx([0.3, 0.06, 0.0])
    assert (rows[1]["w"], rows[1]["h"]) == (2.0, 2.0)
    # kept detections (score >= 0.1) are at (11, 11) and (102, 102): nearest to each centre
    assert rows[1]["nearest_px"] == pytest.approx(np.hypot(40, 40))
    assert rows[2]["nearest_px"] == pytest.approx(np.hypot(17, 17))
    # found targets are exactly Pd's hits at the same threshold
    found = sum(r["best_score_inside"] >= 0.1 for r in rows)
    assert found == pd_fa([(boxes, scores)], [gt], 0.1)["num_detected"] == 1
    none = mt.target_rows(np.zeros((0, 4)), np.zeros(0), gt[:1], 0.1)
    assert none[0]["best_score_inside"] == 0.0 and none[0]["nearest_px"] is None


def test_side_bins_by_hand():
    mt = _module()
    rows = [{"net_side": 3.9, "best_score_inside": 0.5},   # 0-4, found
            {"net_side": 4.0, "best_score_inside": 0.05},  # 4-6 (lower edge inclusive), missed
            {"net_side": 7.5, "best_score_inside": 0.2},   # 6-8, found
            {"net_side": 40.0, "best_score_inside": 0.0}]  # open last bin, missed
    bins = {b["net_side_px"]: (b["targets"], b["found"]) for b in mt.side_bin_rows(rows, 0.1)}
    assert bins == {"0-4": (1, 1), "4-6": (1, 0), "6-8": (1, 1), "8-12": (0, 0),
                    "12-16": (0, 0), ">= 16": (1, 0)}


@needs_onnx
def test_missed_targets_command(tmp_path, sirst_root):
    out = tmp_path / "rows.json"
    onnx = REPO / "oscar_edge" / "weights" / "oscar-edge.onnx"
    p = subprocess.run([sys.executable, str(SCRIPT), "--onnx", str(onnx), "--data",
                        str(sirst_root), "--split", "mini_test", "--threads", "1",
                        "--json", str(out)],
                       capture_output=True, text=True, cwd=str(REPO), timeout=300)
    assert p.returncode == 0, p.stderr
    rows = json.loads(out.read_text())
    from oscar_edge.data.annotations import load_samples

    assert len(rows) == sum(len(s.boxes) for s in load_samples(sirst_root, "mini_test"))
    missed = sum(r["best_score_inside"] < 0.1 for r in rows)
    assert f": {missed} of {len(rows)} targets missed" in p.stdout
    # a fixed letterbox: every row's scale is that letterbox's (640x512 for the mini images)
    from oscar_edge.preprocess import read_grey

    fixed = tmp_path / "fixed.json"
    p = subprocess.run([sys.executable, str(SCRIPT), "--onnx", str(onnx), "--data",
                        str(sirst_root), "--split", "mini_test", "--threads", "1",
                        "--input-size", "640x512", "--json", str(fixed)],
                       capture_output=True, text=True, cwd=str(REPO), timeout=300)
    assert p.returncode == 0, p.stderr
    assert "input 640x512 fixed" in p.stdout
    shapes = {Path(s.image_path).name: read_grey(s.image_path).shape
              for s in load_samples(sirst_root, "mini_test")}
    fixed_rows = json.loads(fixed.read_text())
    assert fixed_rows
    for r in fixed_rows:
        h, w = shapes[r["image"]]
        assert r["scale"] == pytest.approx(min(512 / h, 640 / w), rel=0.02)
        assert r["net_side"] == pytest.approx((r["w"] * r["h"]) ** 0.5 * r["scale"])
    bad_size = subprocess.run([sys.executable, str(SCRIPT), "--onnx", str(onnx),
                               "--input-size", "640x500"],
                              capture_output=True, text=True, cwd=str(REPO), timeout=120)
    assert bad_size.returncode == 2 and "--input-size" in bad_size.stderr
    bad = subprocess.run([sys.executable, str(SCRIPT), "--onnx", str(tmp_path / "no.onnx")],
                         capture_output=True, text=True, cwd=str(REPO), timeout=120)
    assert bad.returncode == 2 and "file not found" in bad.stderr
    assert bad.stderr.strip().count("\n") == 0
