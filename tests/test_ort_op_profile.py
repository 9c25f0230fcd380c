"""benchmarks/ort_op_profile.py: aggregation of ORT profile events, and one real profile."""
from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "ort_op_profile.py"

spec = importlib.util.spec_from_file_location("ort_op_profile", SCRIPT)
prof = importlib.util.module_from_spec(spec)
spec.loader.exec_module(prof)


def _run(ts, dur):
    return {"cat": "Session", "name": "model_run", "ts": ts, "dur": dur}


def _node(name, op, ts, dur):
    return {"cat": "Node", "name": f"{name}_kernel_time", "ts": ts, "dur": dur,
            "args": {"op_name": op}}


def test_aggregate_skips_warmup_and_sums_per_op():
    events = [
        _run(0, 100), _node("conv1", "Conv", 10, 1000),          # warm-up run: ignored
        _run(200, 100), _node("conv1", "Conv", 210, 30), _node("conv2", "Conv", 240, 10),
        _node("gn", "InstanceNormalization", 260, 20),
        {"cat": "Node", "name": "conv1_fence_before", "ts": 211, "dur": 5},  # not a kernel
        _run(400, 100), _node("conv1", "Conv", 410, 50), _node("gn", "InstanceNormalization", 470, 20),
    ]
    by_op, slow, runs = prof.aggregate(events, warmup=1)
    assert runs == 2
    assert by_op["Conv"] == {"us": 90.0, "nodes": 2}
    assert by_op["InstanceNormalization"] == {"us": 40.0, "nodes": 1}
    assert slow[0] == ("conv1", "Conv", 80.0)
    with pytest.raises(ValueError, match="warm-up"):
        prof.aggregate(events, warmup=3)


def test_parse_size_rejects_non_multiples_of_32():
    from latency_bench.common import parse_size  # the latency benchmark's (sys.path: benchmarks/)

    assert prof.parse_size is parse_size        # one --size parser for the benchmarks
    assert prof.parse_size("640x512") == (512, 640)
    with pytest.raises(Exception, match="multiples of 32"):
        prof.parse_size("641x512")


def test_profile_of_the_shipped_model_names_its_convolutions(tmp_path):
    pytest.importorskip("onnxruntime", reason="needs the export extra")
    out = tmp_path / "p.json"
    p = subprocess.run([sys.executable, str(SCRIPT), "--size", "96x64", "--runs", "2",
                        "--warmup", "1", "--threads", "1", "--json", str(out)],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    import json

    rep = json.loads(out.read_text())
    ops = {r["op"]: r for r in rep["ops"]}
    assert "Conv" in ops and ops["Conv"]["nodes"] >= 20
    assert rep["runs"] == 2 and rep["kernel_ms_per_run"] > 0
    assert sum(r["share_pct"] for r in rep["ops"]) == pytest.approx(100.0, abs=1e-6)
    assert "| Conv |" in p.stdout


def test_missing_model_is_one_line_exit_2(tmp_path):
    p = subprocess.run([sys.executable, str(SCRIPT), "--onnx", str(tmp_path / "nope.onnx")],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and p.stderr.strip().count("\n") == 0
    assert "not found" in p.stderr
