"""`oscar-edge evaluate --input-size` and benchmarks/input_size_study.py on the mini split."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from run_helpers import REPO, needs_onnx, run_tool


@needs_onnx
def test_evaluate_input_size_letterboxes_and_records_it(tmp_path, sirst_root):
    out = tmp_path / "m.json"
    p = run_tool("--split", "mini_test", "--data", sirst_root, "--backend", "onnxruntime",
                 "--input-size", "320x256", "--no-progress", "--json", out,
                 tool="oscar_edge.evaluate")
    assert p.returncode == 0, p.stderr
    assert "input 320x256 fixed" in p.stdout
    fixed = json.loads(out.read_text())
    assert fixed["input_size"] == "320x256"
    p = run_tool("--split", "mini_test", "--data", sirst_root, "--backend", "onnxruntime",
                 "--no-progress", "--json", out, tool="oscar_edge.evaluate")
    fit = json.loads(out.read_text())
    assert fit["input_size"] is None and "keep-ratio fit 1000x600" in p.stdout
    # a much smaller input sees the targets differently: the detections change
    assert (fixed["num_detections"], fixed["AP50"]) != (fit["num_detections"], fit["AP50"])
    p = run_tool("--split", "mini_test", "--input-size", "320x250", tool="oscar_edge.evaluate")
    assert p.returncode == 2 and "multiples of 32" in p.stderr


@needs_onnx
def test_input_size_study_table(tmp_path, sirst_root):
    out = tmp_path / "s.json"
    onnx = REPO / "oscar_edge" / "weights" / "oscar-edge.onnx"
    p = subprocess.run([sys.executable, str(REPO / "benchmarks" / "input_size_study.py"),
                        "--model", f"v1={onnx}", "--sizes", "320x256,fit", "--data",
                        str(sirst_root), "--split", "mini_test", "--threads", "1",
                        "--no-progress", "--json", str(out)],
                       capture_output=True, text=True, cwd=str(REPO), timeout=300)
    assert p.returncode == 0, p.stderr
    rows = json.loads(out.read_text())["rows"]
    assert [(r["size"], r["peak_refine"]) for r in rows] == [
        ("320x256", True), ("320x256", False), ("fit 1000x600", True), ("fit 1000x600", False)]
    assert "| v1 | 320x256 | on |" in p.stdout and "spread across sizes" in p.stdout
    # the paired bootstrap: ordered percentiles; with two sizes the spread of a draw is the
    # size of its difference, so the difference's median is no larger than the spread's
    boot = json.loads(out.read_text())["bootstrap"]
    assert set(boot) == {"v1, refinement on", "v1, refinement off"}
    for b in boot.values():
        lo, mid, hi = b["spread_points_p5_p50_p95"]
        assert b["resamples"] == 1000 and 0.0 <= lo <= mid <= hi
        assert b["best_size"] in ("320x256", "fit 1000x600")
        (diff,) = b["minus_best_points_p5_p50_p95"].values()
        assert diff[0] <= diff[1] <= diff[2] and abs(diff[1]) <= mid + 1e-6
        assert max(abs(diff[0]), abs(diff[2])) <= hi + 1e-6
    assert "bootstrap 5-95 %" in p.stdout
    assert "; v1: ONNX Runtime" in p.stdout.splitlines()[0]  # each model names its backend
    for r in rows:  # centring: mean NoCo under the found targets' best detections
        assert 0 < r["found"] <= r["num_boxes"] and 0.0 < r["centring"] <= 1.0
    for b in boot.values():
        (c,) = b["centring_minus_best_p5_p50_p95"].values()
        assert -1.0 <= c[0] <= c[1] <= c[2] <= 1.0
    bad = subprocess.run([sys.executable, str(REPO / "benchmarks" / "input_size_study.py"),
                          "--model", "novalue", "--split", "mini_test"],
                         capture_output=True, text=True, cwd=str(REPO), timeout=120)
    assert bad.returncode == 2 and "NAME=path.onnx" in bad.stderr
    assert bad.stderr.strip().count("\n") == 0
    neg = subprocess.run([sys.executable, str(REPO / "benchmarks" / "input_size_study.py"),
                          "--model", f"v1={onnx}", "--bootstrap", "-1", "--split", "mini_test",
                          "--data", str(sirst_root)],
                         capture_output=True, text=True, cwd=str(REPO), timeout=120)
    assert neg.returncode == 2 and "--bootstrap must be 0" in neg.stderr


@needs_onnx
def test_input_size_study_native_size_keeps_only_that_camera_shape(tmp_path, sirst_root):
    """--native-size keeps the images of one native size (mini_test: one image is 338x251, with
    one target); a size no image has is a one-line error."""
    out = tmp_path / "n.json"
    onnx = REPO / "oscar_edge" / "weights" / "oscar-edge.onnx"
    cmd = [sys.executable, str(REPO / "benchmarks" / "input_size_study.py"), "--model",
           f"m={onnx}", "--sizes", "fit", "--data", str(sirst_root), "--split", "mini_test",
           "--threads", "1", "--no-progress"]
    p = subprocess.run(cmd + ["--native-size", "338x251", "--json", str(out)],
                       capture_output=True, text=True, cwd=str(REPO), timeout=300)
    assert p.returncode == 0, p.stderr
    data = json.loads(out.read_text())
    assert data["native_size"] == "338x251"
    assert [r["num_boxes"] for r in data["rows"]] == [1, 1]
    assert "(1 images, native size 338x251 only, 1 targets)" in p.stdout
    assert all(0.0 <= r["Pd_at_max_fa"] <= 1.0 for r in data["rows"])
    bad = subprocess.run(cmd + ["--native-size", "640x512"], capture_output=True, text=True,
                         cwd=str(REPO), timeout=300)
    assert bad.returncode == 2 and "no image of native size 640x512" in bad.stderr
    assert bad.stderr.strip().count("\n") == 0


def test_input_size_study_table_without_targets_reports_only_false_alarms(monkeypatch, capsys,
                                                                          tmp_path):
    """Background images only (num_boxes 0): the metric columns say n/a, not 0.0000 or nan."""
    import importlib.util
    import types

    spec = importlib.util.spec_from_file_location("iss",
                                                  REPO / "benchmarks" / "input_size_study.py")
    iss = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(iss)
    import oscar_edge.backends.factory as factory
    import oscar_edge.data.annotations as ann
    import oscar_edge.export.accuracy as acc

    class _Choice:
        backend, label = object(), "fake backend"

    import numpy as np

    # four background images, one false alarm above the 0.1 score threshold: 0.25 per image
    dets = [(np.array([[1.0, 1, 4, 4]]), np.array([0.5]))] + [(np.zeros((0, 4)), np.zeros(0))] * 3
    maps = [np.zeros((32, 32), np.float32)] * 4
    monkeypatch.setattr(factory, "create_backend", lambda *a, **k: _Choice())
    monkeypatch.setattr(ann, "load_samples",
                        lambda *a, **k: [types.SimpleNamespace(image_path="img", boxes=[])] * 4)
    monkeypatch.setattr(acc, "collect_detections", lambda *a, **k: ([dets, dets], maps))
    onnx = tmp_path / "m.onnx"
    onnx.write_bytes(b"x")
    assert iss.main(["--model", f"bg={onnx}", "--sizes", "fit", "--data", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "| bg | fit 1000x600 | on | n/a | n/a | n/a | 0.250 | n/a | n/a |" in out
    assert "nan" not in out and "no targets in these images" in out


@needs_onnx
def test_input_size_study_pairs_models_on_the_same_draws(tmp_path, sirst_root):
    """Two models: each one's mNoCoAP minus the first's on the same image draws. The same graph
    twice differs by exactly zero in every draw; the INT8 graph is compared size by size."""
    out = tmp_path / "p.json"
    w = REPO / "oscar_edge" / "weights"
    p = subprocess.run([sys.executable, str(REPO / "benchmarks" / "input_size_study.py"),
                        "--model", f"a={w / 'oscar-edge.onnx'}", "--model",
                        f"same={w / 'oscar-edge.onnx'}", "--model",
                        f"q={w / 'oscar-edge.int8.onnx'}", "--sizes", "320x256",
                        "--data", str(sirst_root), "--split", "mini_test", "--threads", "1",
                        "--no-progress", "--bootstrap", "200", "--json", str(out)],
                       capture_output=True, text=True, cwd=str(REPO), timeout=300)
    assert p.returncode == 0, p.stderr
    between = json.loads(out.read_text())["model_minus_first"]
    assert set(between) == {f"{m} minus a, refinement {r}" for m in ("same", "q")
                            for r in ("on", "off")}
    assert between["same minus a, refinement on"] == {"320x256": [0.0, 0.0, 0.0]}
    assert between["same minus a, refinement off"] == {"320x256": [0.0, 0.0, 0.0]}
    lo, mid, hi = between["q minus a, refinement off"]["320x256"]
    assert lo <= mid <= hi
    assert "q minus a, refinement off, paired on the same draws" in p.stdout
