"""`oscar-edge evaluate --input-size` and benchmarks/input_size_study.py on the mini split."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

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


def _study(*args, timeout=300):
    return subprocess.run([sys.executable, str(REPO / "benchmarks" / "input_size_study.py"),
                           *map(str, args)], capture_output=True, text=True, cwd=str(REPO),
                          timeout=timeout)


@needs_onnx
def test_input_size_study_pools_folds_like_one_split(tmp_path, sirst_root):
    """Folds of one NAME (``@SPLIT``) are pooled: the same graph on two splits gives the figures
    of one run on the joined split, and the per-fold lines equal single runs on each part."""
    root = tmp_path / "root"
    (root / "splits").mkdir(parents=True)
    for name in ("mixed", "annotations"):
        (root / name).symlink_to(Path(sirst_root) / name, target_is_directory=True)
    part1 = (Path(sirst_root) / "splits" / "mini_test.txt").read_text().split()
    part2 = (Path(sirst_root) / "splits" / "mini_trainval.txt").read_text().split()
    (root / "splits" / "p1.txt").write_text("\n".join(part1) + "\n")
    (root / "splits" / "p2.txt").write_text("\n".join(part2) + "\n")
    (root / "splits" / "both.txt").write_text("\n".join(part1 + part2) + "\n")
    onnx = REPO / "oscar_edge" / "weights" / "oscar-edge.onnx"
    int8 = REPO / "oscar_edge" / "weights" / "oscar-edge.int8.onnx"
    out = tmp_path / "cv.json"
    common = ("--sizes", "320x256", "--data", root, "--threads", "1", "--no-progress",
              "--bootstrap", "100")
    p = _study("--model", f"whole={onnx}@both", "--model", f"cv={onnx}@p1",
               "--model", f"cv={onnx}@p2", "--model", f"mixed={onnx}@p1",
               "--model", f"mixed={int8}@p2", *common, "--json", out)
    assert p.returncode == 0, p.stderr
    res = json.loads(out.read_text())
    rows = {(r["model"], r["peak_refine"]): r for r in res["rows"]}
    for refine in (True, False):
        whole, cv = rows[("whole", refine)], rows[("cv", refine)]
        assert cv["split"] == "p1,p2" and cv["num_images"] == len(part1) + len(part2)
        for key in ("mNoCoAP", "AP50", "Pd", "Fa_per_image", "num_boxes"):
            assert cv[key] == whole[key], key
    # pooled over the same images in the same order: paired, and identical in every draw
    assert res["model_minus_first"]["cv minus whole, refinement off"] == {
        "320x256": [0.0, 0.0, 0.0]}
    # the per-fold figures are those of a plain run on each part
    single = tmp_path / "single.json"
    p2 = _study("--model", f"q={int8}", "--split", "p2", *common, "--json", single)
    assert p2.returncode == 0, p2.stderr
    plain = {r["peak_refine"]: r["mNoCoAP"] for r in json.loads(single.read_text())["rows"]}
    folds = {(f["split"], f["peak_refine"]): f["mNoCoAP"] for f in res["folds"]
             if f["model"] == "mixed"}
    assert folds[("p2", True)] == pytest.approx(plain[True])
    assert folds[("p2", False)] == pytest.approx(plain[False])
    assert "  - fold `p2`: 320x256" in p.stdout
    # a single graph is not a fold: it has no per-fold lines
    assert not any(f["model"] == "whole" for f in res["folds"])


def test_input_size_study_rejects_bad_folds(tmp_path, sirst_root):
    onnx = tmp_path / "m.onnx"
    onnx.write_bytes(b"not read")
    for models, text in (((f"cv={onnx}", f"cv={onnx}@mini_test"), "need their split"),
                         ((f"cv={onnx}@mini_test", f"cv={onnx}@mini_test"), "given twice"),
                         ((f"cv={onnx}@",), "empty split"),
                         ((f"cv={tmp_path / 'gone.onnx'}@mini_test",), "file not found")):
        args = [a for m in models for a in ("--model", m)]
        p = _study(*args, "--data", sirst_root, "--no-progress", timeout=60)
        assert p.returncode == 2, (models, p.stderr)
        assert text in p.stderr and "Traceback" not in p.stderr, p.stderr


def test_cv_folds_writes_balanced_halves_without_copying(tmp_path, sirst_root):
    from oscar_edge.data.annotations import load_samples, read_split

    out = tmp_path / "cv"
    p = subprocess.run([sys.executable, str(REPO / "benchmarks" / "cv_folds.py"), "--data",
                        str(sirst_root), "--out", str(out)], capture_output=True, text=True,
                       cwd=str(REPO), timeout=120)
    assert p.returncode == 0, p.stderr
    assert (out / "mixed").is_symlink() and (out / "annotations").is_symlink()
    train = load_samples(str(sirst_root), "train_full")
    val = read_split(str(sirst_root), "val_full")
    a, b = read_split(str(out), "cv_halfA"), read_split(str(out), "cv_halfB")
    assert not set(a) & set(b) and sorted(a + b) == sorted(s.name for s in train)
    with_targets = {s.name for s in train if len(s.boxes)}
    na, nb = len(set(a) & with_targets), len(set(b) & with_targets)
    assert abs(na - nb) <= 1 and abs(len(a) - len(b)) <= 2
    assert read_split(str(out), "cv_train_notA") == val + b
    assert read_split(str(out), "cv_train_notB") == val + a
    # the original splits are still there, and a second run never overwrites the root
    assert read_split(str(out), "val_full") == val
    again = subprocess.run([sys.executable, str(REPO / "benchmarks" / "cv_folds.py"), "--data",
                            str(sirst_root), "--out", str(out)], capture_output=True, text=True,
                           cwd=str(REPO), timeout=120)
    assert again.returncode == 2 and "not overwritten" in again.stderr
    # another seed deals other halves
    other = tmp_path / "cv1"
    subprocess.run([sys.executable, str(REPO / "benchmarks" / "cv_folds.py"), "--data",
                    str(sirst_root), "--out", str(other), "--seed", "1"], check=True,
                   capture_output=True, cwd=str(REPO), timeout=120)
    assert read_split(str(other), "cv_halfA") != a
