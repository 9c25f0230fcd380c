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
    bad = subprocess.run([sys.executable, str(REPO / "benchmarks" / "input_size_study.py"),
                          "--model", "novalue", "--split", "mini_test"],
                         capture_output=True, text=True, cwd=str(REPO), timeout=120)
    assert bad.returncode == 2 and "NAME=path.onnx" in bad.stderr
    assert bad.stderr.strip().count("\n") == 0
