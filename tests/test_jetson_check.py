"""``make jetson-check`` (benchmarks/jetson/jetson_check.py) on this machine, with FAKES.

What is fake here, and what these tests therefore prove (the plumbing) and do not (the
hardware):

* executables on PATH, all shell scripts written below: ``cmake`` (configure / build: copies a
  loadable library to liboscar_edge_trt_plugins.so; ``FAKE_CMAKE_FAIL=1`` makes it fail like an
  old CMake), ``nvcc``, ``trtexec``, ``tegrastats`` (an Orin Nano line every 50 ms),
  ``nvpmodel``, ``jetson_clocks``, ``dpkg-query``;
* ``/proc/device-tree/model`` and ``/etc/nv_tegra_release`` under a fake root (``--sysroot``);
* a ``tensorrt`` Python package that only has ``__version__`` (NOT TensorRT);
* steps substituted through ``main(plan_hook=...)`` where the real one needs TensorRT or takes
  minutes: ``pytest -m tensorrt`` -> pytest on a small test file; engine builds -> a script that
  writes an engine file + sidecar; TensorRT evaluation -> a script that writes a metrics JSON;
  in some tests the latency benchmark -> a script that writes its JSON. Each substitution is
  named in the report's note (``plan_hook`` return value).

Real in these tests: the orchestrator, its dependency / skip / failure rules, the report files,
``oscar-edge evaluate`` (ONNX Runtime FP32, split mini_test), ``benchmarks/latency.py --jetson``
(ort at 320x256, a few runs, with the fake tegrastats / nvpmodel), ``export/build_engine.py``
failing for want of TensorRT, and ``evaluate_engine.py`` through the TensorRT test double of
tests/trt_test_double.py.
"""
from __future__ import annotations

import datetime
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks" / "jetson"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import evaluate_engine  # noqa: E402
import jetson_check as jc  # noqa: E402

MODEL = "NVIDIA Jetson Orin Nano Engineering Reference Developer Kit Super"
RELEASE = "# R36 (release), REVISION: 4.3, GCID: 38968081, BOARD: generic, EABI: aarch64"
TEGRA_LINE = ("12-02-2026 10:00:00 RAM 2011/7620MB (lfb 5x4MB) SWAP 0/3810MB (cached 0MB) "
              "CPU [5%@1510,3%@1510,0%@1510,1%@1510,off,off] GR3D_FREQ 0%@[305] cpu@47.687C "
              "gpu@47.218C tj@47.687C VDD_IN 4556mW/4556mW VDD_CPU_GPU_CV 482mW/482mW "
              "VDD_SOC 1446mW/1446mW")
FAKE_TOOLS = {
    "cmake": r"""
if [ "$1" = "--version" ]; then echo "cmake version 3.28.3"; exit 0; fi
echo "fake cmake $*"
if [ -n "$FAKE_CMAKE_FAIL" ]; then
  echo "CMake Error at CMakeLists.txt:1 (cmake_minimum_required):"
  echo "  CMake 3.24 or higher is required.  You are running version 3.22.1"
  exit 1
fi
if [ "$1" = "-S" ]; then mkdir -p "$4"; fi
if [ "$1" = "--build" ]; then
  cp "$FAKE_PLUGIN_SRC" "$2/liboscar_edge_trt_plugins.so"
  echo "[100%] Built target oscar_edge_trt_plugins"
fi
""",
    "nvcc": 'echo "nvcc: NVIDIA (R) Cuda compiler driver"\n'
            'echo "Cuda compilation tools, release 12.6, V12.6.68"\n',
    "trtexec": 'echo "&&&& RUNNING TensorRT.trtexec [TensorRT v100300] [b17] # trtexec $*"\n',
    "tegrastats": f'while :; do echo "{TEGRA_LINE}"; sleep 0.05; done\n',
    "nvpmodel": 'echo "NV Power Mode: MAXN_SUPER"\necho "2"\n',
    "jetson_clocks": "\n".join(
        f'echo "cpu{i}: Online=1 Governor=schedutil MinFreq=1510400 MaxFreq=1510400 '
        f'CurrentFreq=1510400"' for i in range(4))
    + '\necho "GPU MinFreq=1020000000 MaxFreq=1020000000 CurrentFreq=1020000000"\n',
    "dpkg-query": 'case "$*" in *nvidia-jetpack*) printf "6.2.1+b38";; *) exit 1;; esac\n',
}
FAKE_ENGINE = r"""
import json, sys
engine, precision = sys.argv[1], sys.argv[2]
open(engine, "wb").write(b"\0" * 123456)
open(engine + ".onnx", "wb").write(b"\0" * 1000)
json.dump({"format": "oscar-edge TensorRT engine sidecar v1", "precision": precision,
           "tensorrt_version": "10.3.0", "peak_refine": True}, open(engine + ".json", "w"))
print("note: FAKE engine build (test double)")
"""
FAKE_EVAL = r"""
import json, sys
json.dump({"mNoCoAP": float(sys.argv[2]), "AP50": 0.9, "Pd": 0.8, "Fa_per_image": 0.25,
           "num_images": 4}, open(sys.argv[1], "w"))
"""
FAKE_LATENCY = r"""
import json, sys
a = sys.argv
backends = a[a.index("--backends") + 1].split(",")
rows = [{"backend": b, "size": "640x512", "status": "ok",
         "model_only": {"stats": {"p50_ms": 1.5}}, "full_path": {"total": {"p50_ms": 2.5}}}
        for b in backends]
json.dump({"results": rows}, open(a[a.index("--json") + 1], "w"))
"""
PYTEST_FILE = """
import pytest
def test_a(): pass
def test_b(): pass
@pytest.mark.skip(reason="FAKE: no GPU here")
def test_c(): pass
"""
ALL_SKIPPED_FILE = """
import pytest
@pytest.mark.skip(reason="TensorRT's Python package (tensorrt) is not installed")
def test_plugins(): pass
"""


@pytest.fixture
def fake_jetson(tmp_path, monkeypatch):
    """Fake tools on PATH, a fake root, caches in tmp; returns the folders."""
    from oscar_edge.native import default_library_path

    lib = default_library_path()
    if not lib.is_file():
        pytest.skip("native CPU library not built (pip install -e .)")
    bins = tmp_path / "bin"
    bins.mkdir()
    for name, body in FAKE_TOOLS.items():
        p = bins / name
        p.write_text(f"#!/bin/sh\n# FAKE {name} (test double of tests/test_jetson_check.py)\n"
                     + body)
        p.chmod(0o755)
    root = tmp_path / "root"
    (root / "proc" / "device-tree").mkdir(parents=True)
    (root / "proc" / "device-tree" / "model").write_bytes(MODEL.encode() + b"\0")
    (root / "etc").mkdir()
    (root / "etc" / "nv_tegra_release").write_text(RELEASE + "\n")
    trt = tmp_path / "pyfake" / "tensorrt"
    trt.mkdir(parents=True)
    (trt / "__init__.py").write_text('"""TEST DOUBLE: a version only, NOT TensorRT."""\n'
                                     '__version__ = "10.3.0.30"\n')
    monkeypatch.setenv("PATH", f"{bins}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_PLUGIN_SRC", str(lib))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("FAKE_CMAKE_FAIL", raising=False)
    return tmp_path


def base_args(tmp: Path, sirst: Path, *extra: str) -> list:
    return ["--out", str(tmp / "jetson-report"), "--data", str(sirst), "--split", "mini_test",
            "--plugin-build-dir", str(tmp / "plugins"), "--engine-dir", str(tmp / "engines"),
            "--sysroot", str(tmp / "root"), "--jobs", "1", *extra]


def step(steps, key):
    return next(s for s in steps if s.key == key)


def set_flag(cmd: list, flag: str, value: str) -> None:
    if flag in cmd:
        cmd[cmd.index(flag) + 1] = value
    else:
        cmd += [flag, value]


def load_report(tmp: Path):
    rep = json.loads((tmp / "jetson-report" / "report.json").read_text())
    return rep, {s["key"]: s for s in rep["steps"]}, (tmp / "jetson-report" / "report.md"
                                                      ).read_text()


def run_main(argv, hook, capsys):
    rc = jc.main(argv, plan_hook=hook)
    out, err = capsys.readouterr()
    return rc, out, err


# ------------------------------------------------------------------------------------- tests
def test_all_steps_pass_plumbing(fake_jetson, sirst_root, monkeypatch, capsys):
    """Every step passes: report.md / report.json hold each step, the machine facts, the key
    figures. Real: cmake's command (fake tool), ORT evaluate, latency.py --jetson; faked:
    pytest's test file, the engine builds, the TensorRT evaluations (module docstring)."""
    tmp = fake_jetson
    monkeypatch.setenv("PYTHONPATH", str(tmp / "pyfake"))
    (tmp / "test_fake_trt.py").write_text(PYTEST_FILE)
    fake_map = {"fp16": 0.95, "int8": 0.9}

    def hook(steps, ctx):
        step(steps, "pytest").commands = [[ctx.python, "-m", "pytest", "-v", "-rs", "-p",
                                           "no:cacheprovider", str(tmp / "test_fake_trt.py")]]
        for p, m in fake_map.items():
            step(steps, f"engine-{p}").commands = [[ctx.python, "-c", FAKE_ENGINE,
                                                   str(ctx.engine(p)), p]]
            s = step(steps, f"evaluate-trt-{p}")
            s.commands = [[ctx.python, "-c", FAKE_EVAL, str(s.output), str(m)]]
        cmd = step(steps, "latency").commands[-1]
        for flag, value in (("--backends", "ort,trt-fp16,trt-int8"), ("--size", "320x256"),
                            ("--runs", "5"), ("--warmup", "1"), ("--frames", "2"),
                            ("--idle-s", "0.5"), ("--threads", "1")):
            set_flag(cmd, flag, value)
        return "TEST RUN with fakes: pytest, engines and TensorRT evaluations substituted"

    rc, out, err = run_main(base_args(tmp, sirst_root), hook, capsys)
    rep, steps, md = load_report(tmp)
    assert rc == 0, out
    assert [s["key"] for s in rep["steps"]] == list(jc.STEP_KEYS)
    assert {k: s["status"] for k, s in steps.items()} == {k: "passed" for k in jc.STEP_KEYS}
    for s in rep["steps"]:
        assert (tmp / "jetson-report" / s["log"]).is_file()
        assert s["commands"] and all(c["exit_code"] == 0 for c in s["commands"])
        assert f"| {s['key']} | passed |" in md
    assert "TEST RUN with fakes" in md and rep["exit_code"] == 0

    m = rep["machine"]
    assert m["model"] == MODEL and m["l4t"] == "R36.4.3" and m["jetpack"] == "6.2.1+b38"
    assert m["tensorrt"]["python"] == "10.3.0.30" and m["tensorrt"]["trtexec_version"] == "10.3.0"
    assert m["cuda"]["version"] == "12.6.68" and m["cmake"] == "cmake version 3.28.3"
    assert m["nvpmodel"]["mode_name"] == "MAXN_SUPER" and m["nvpmodel"]["mode_id"] == 2
    assert m["jetson_clocks"]["on"] is True
    assert MODEL in md and "MAXN_SUPER (id 2)" in md

    assert steps["plugins"]["commands"][0]["command"].startswith("cmake -S cpp_plugins -B ")
    assert steps["plugins"]["figures"]["library_bytes"] == Path(
        os.environ["FAKE_PLUGIN_SRC"]).stat().st_size
    assert steps["pytest"]["figures"]["counts"] == {"passed": 2, "skipped": 1}
    assert "FAKE: no GPU here" in steps["pytest"]["figures"]["skip_reasons"][0]
    for p in fake_map:
        fig = steps[f"engine-{p}"]["figures"]
        assert fig["engine_mb"] == pytest.approx(123456 / 1e6)
        assert fig["tensorrt_version"] == "10.3.0" and fig["precision"] == p
        assert (tmp / "jetson-report" / fig["sidecar"]).is_file()

    ort = json.loads((tmp / "jetson-report" / "evaluate" / "ort-fp32.json").read_text())
    assert ort["split"] == "mini_test" and ort["backend"] == "onnxruntime"
    assert steps["evaluate-ort-fp32"]["figures"]["mNoCoAP"] == ort["mNoCoAP"]
    for p, m_ in fake_map.items():
        assert f"| {m_:.4f} | {(m_ - ort['mNoCoAP']) * 100:+.2f} |" in md

    lat = steps["latency"]["figures"]
    rows = {r["backend"]: r for r in lat["rows"]}
    assert rows["ort"]["status"] == "ok" and rows["ort"]["model_only_p50_ms"] > 0
    assert rows["trt-fp16"]["status"] == "unavailable" and "cuda-python" in rows["trt-fp16"][
        "reason"]
    assert "tegrastats" in lat["jetson"]["tegrastats"] and lat["jetson"]["tegrastats_lines"] > 0
    assert lat["jetson"]["idle_mw"] == pytest.approx(4556.0)
    assert lat["jetson"]["nvpmodel"] == "MAXN_SUPER"
    assert f"| ort | 320x256 | ok | {rows['ort']['model_only_p50_ms']:.2f} |" in md


def test_failing_cmake_is_reported_and_later_steps_skip_or_run(fake_jetson, sirst_root,
                                                               monkeypatch, capsys):
    """Fake cmake exits 1: the plugins step fails with its log tail; the steps that need the
    library are skipped because of it; ORT evaluation still runs (real); the latency step
    (substituted by a script that records its --backends) runs without the TensorRT keys."""
    tmp = fake_jetson
    monkeypatch.setenv("FAKE_CMAKE_FAIL", "1")

    def hook(steps, ctx):
        (tmp / "fake_latency.py").write_text(FAKE_LATENCY)
        step(steps, "latency").commands[-1][1] = str(tmp / "fake_latency.py")
        return "TEST RUN: latency.py substituted"

    rc, out, err = run_main(base_args(tmp, sirst_root), hook, capsys)
    rep, steps, md = load_report(tmp)
    assert rc == 1 and rep["exit_code"] == 1
    plug = steps["plugins"]
    assert plug["status"] == "failed"
    assert plug["reason"] == ("exit code 1: CMake Error at CMakeLists.txt:1 "
                              "(cmake_minimum_required):")
    assert len(plug["commands"]) == 1  # the build command never ran
    log = (tmp / "jetson-report" / plug["log"]).read_text().splitlines()
    assert plug["log_tail"] == log[-len(plug["log_tail"]):]
    assert any("CMake 3.24 or higher is required" in ln for ln in plug["log_tail"])
    assert "CMake 3.24 or higher is required" in md
    for key in ("pytest", "engine-fp16", "engine-int8"):
        assert steps[key]["status"] == "skipped" and steps[key]["reason"] == "plugins failed"
    for p in ("fp16", "int8"):
        s = steps[f"evaluate-trt-{p}"]
        assert s["status"] == "skipped" and "plugins failed" in s["reason"]
        assert f"engine-{p}" in s["reason"]
    assert steps["evaluate-ort-fp32"]["status"] == "passed"
    assert steps["latency"]["status"] == "passed"
    ran = [r["backend"] for r in steps["latency"]["figures"]["rows"]]
    assert ran == ["torch", "ort", "ort-int8"]
    assert "trt-int8 left out: engine-int8 was skipped (plugins failed)" in md
    assert "1 failed (plugins)" in out


def test_engine_build_without_tensorrt_fails_and_all_skipped_tests_fail(fake_jetson,
                                                                       sirst_root, capsys):
    """Real build_engine.py without TensorRT (no fake tensorrt package): exit code 2, reported
    with its last lines; its evaluation is skipped, latency (substituted) leaves trt-int8 out
    but keeps trt-fp32 (the plugins built). A pytest run where every test skipped fails.
    engine-fp16 and the ORT evaluation are skipped with --skip."""
    tmp = fake_jetson
    (tmp / "test_all_skipped.py").write_text(ALL_SKIPPED_FILE)

    def hook(steps, ctx):
        step(steps, "pytest").commands = [[ctx.python, "-m", "pytest", "-rs", "-p",
                                           "no:cacheprovider", str(tmp / "test_all_skipped.py")]]
        (tmp / "fake_latency.py").write_text(FAKE_LATENCY)
        step(steps, "latency").commands[-1][1] = str(tmp / "fake_latency.py")
        return "TEST RUN: pytest file and latency.py substituted"

    stale = tmp / "engines" / "oscar-edge.int8.engine"  # an earlier run's engine: not used
    stale.parent.mkdir()
    stale.write_bytes(b"old")
    Path(str(stale) + ".json").write_text("{}")
    argv = base_args(tmp, sirst_root, "--skip", "engine-fp16", "--skip", "evaluate-ort-fp32")
    rc, out, err = run_main(argv, hook, capsys)
    rep, steps, md = load_report(tmp)
    assert rc == 1
    assert steps["plugins"]["status"] == "passed"
    assert steps["pytest"]["status"] == "failed"
    assert steps["pytest"]["reason"].startswith("no TensorRT test ran (1 skipped")
    eng = steps["engine-int8"]
    assert eng["status"] == "failed"
    assert eng["reason"].startswith("exit code 2: build_engine: error: the engine step needs "
                                    "TensorRT, which does not import here")
    assert len(eng["reason"]) <= 214
    assert "engine_mb" not in eng["figures"] and not (tmp / "jetson-report" / "engines").exists()
    assert "--onnx oscar_edge/weights/oscar-edge.int8.onnx --precision int8" in \
        eng["commands"][0]["command"]
    assert any("the engine step needs TensorRT" in ln for ln in eng["log_tail"])
    assert steps["engine-fp16"]["reason"] == "with --skip"
    assert steps["evaluate-ort-fp32"]["status"] == "skipped"
    assert steps["evaluate-trt-int8"]["reason"] == "engine-int8 failed"
    assert steps["evaluate-trt-fp16"]["reason"] == "engine-fp16 was skipped (with --skip)"
    assert [r["backend"] for r in steps["latency"]["figures"]["rows"]] == \
        ["torch", "ort", "ort-int8", "trt-fp32"]


def test_existing_report_is_moved_aside_never_overwritten(fake_jetson, sirst_root, capsys):
    """Two old reports with the same time stamp: both kept, the new one written fresh."""
    tmp = fake_jetson
    out = tmp / "jetson-report"
    (out / "logs").mkdir(parents=True)
    (out / "report.md").write_text("old report\n")
    (out / "logs" / "plugins.log").write_text("old log\n")
    when = datetime.datetime(2020, 1, 2, 3, 4, 5).timestamp()
    os.utime(out, (when, when))
    taken = tmp / "jetson-report.20200102-030405"  # a report moved aside before, same stamp
    taken.mkdir()
    (taken / "report.md").write_text("older report\n")
    argv = base_args(tmp, sirst_root, "--skip", "plugins,pytest,engines,evaluate,latency")
    rc, stdout, err = run_main(argv, None, capsys)
    assert rc == 0
    moved = tmp / "jetson-report.20200102-030405-1"
    assert (moved / "report.md").read_text() == "old report\n"
    assert (moved / "logs" / "plugins.log").read_text() == "old log\n"
    assert (taken / "report.md").read_text() == "older report\n"
    rep, steps, md = load_report(tmp)
    assert rep["previous_report"] == str(moved) and str(moved) in stdout
    assert all(s["status"] == "skipped" and s["reason"] == "with --skip" for s in rep["steps"])
    assert "old report" not in md


def test_timeout_kills_the_step_and_fails_it(fake_jetson, sirst_root, capsys):
    tmp = fake_jetson

    def hook(steps, ctx):
        s = step(steps, "plugins")
        s.commands, s.timeout_s = [["sh", "-c", "echo started; sleep 30"]], 1
        return "TEST RUN: plugins step replaced by a command that hangs"

    argv = base_args(tmp, sirst_root, "--skip", "pytest,engines,evaluate,latency")
    rc, out, err = run_main(argv, hook, capsys)
    rep, steps, md = load_report(tmp)
    assert rc == 1
    assert steps["plugins"]["reason"] == "timed out after 1 s"
    assert steps["plugins"]["duration_s"] < 15
    assert "started" in steps["plugins"]["log_tail"][1]


PEEK = r"""
import json, sys
rep = json.load(open(sys.argv[1]))
print("PEEK", json.dumps([[s["key"], s["status"]] for s in rep["steps"]]), rep["exit_code"])
"""


def test_report_is_written_after_each_step(fake_jetson, sirst_root, capsys):
    """While a step runs, report.json already holds the steps before it (a board that hangs
    or reboots leaves them); the step itself and those after are 'not run'."""
    tmp = fake_jetson

    def hook(steps, ctx):
        s = step(steps, "pytest")
        s.commands, s.check = [[ctx.python, "-c", PEEK, str(ctx.out / "report.json")]], None
        return "TEST RUN: the pytest step reads the report written so far"

    argv = base_args(tmp, sirst_root, "--skip", "engines,evaluate,latency")
    rc, out, err = run_main(argv, hook, capsys)
    rep, steps, md = load_report(tmp)
    assert rc == 0 and steps["pytest"]["status"] == "passed"
    log = (tmp / "jetson-report" / "logs" / "pytest.log").read_text()
    peek = log.split("PEEK ", 1)[1].splitlines()[0]
    seen, code = peek.rsplit(" ", 1)[0], peek.split()[-1]
    assert json.loads(seen)[:2] == [["plugins", "passed"], ["pytest", "not run"]]
    assert {s for _, s in json.loads(seen)[2:]} == {"not run"} and code == "None"


@pytest.mark.parametrize("args, fragment", [
    (["--skip", "plugins,nope"], "--skip nope: unknown step"),
    (["--jobs", "0"], "--jobs must be >= 1"),
])
def test_bad_options_one_line_exit_2(tmp_path, args, fragment, capsys):
    rc, out, err = run_main(["--out", str(tmp_path / "r"), *args], None, capsys)
    assert rc == 2 and err.startswith("jetson-check: error: ")
    assert fragment in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "r").exists()


def test_make_target_needs_the_venv():
    """``make jetson-check`` refuses to run without an activated venv (one line, non-zero) and
    otherwise runs the script with that venv's Python, passing ARGS."""
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
    p = subprocess.run(["make", "-s", "jetson-check"], cwd=REPO, env=env, text=True,
                       capture_output=True)
    assert p.returncode != 0 and "activate the venv" in p.stderr
    dry = subprocess.run(["make", "-n", "jetson-check", "VIRTUAL_ENV=/opt/v", "ARGS=--quick"],
                         cwd=REPO, env=env, text=True, capture_output=True)
    assert dry.returncode == 0
    assert '"$VIRTUAL_ENV/bin/python" benchmarks/jetson/jetson_check.py --quick' in dry.stdout
    for path, ignored in (("jetson-report/report.md", True),
                          ("jetson-report.20200102-030405/report.md", True),
                          ("benchmarks/jetson/jetson_check.py", False)):
        rc = subprocess.run(["git", "check-ignore", "-q", "--no-index", path], cwd=REPO).returncode
        assert rc == (0 if ignored else 1), path


# ------------------------------------------------------------------ evaluate_engine.py
def write_sidecar_engine(tmp: Path) -> Path:
    engine = tmp / "model.engine"
    engine.write_bytes(b"not a real plan")
    side = {"format": "oscar-edge TensorRT engine sidecar v1", "precision": "fp16",
            "preset": "oscar-edge", "tensorrt_version": "10.3.0",
            "input": {"name": "image", "min_shape": [1, 3, 64, 64],
                      "opt_shape": [1, 3, 608, 768], "max_shape": [1, 3, 1024, 1024],
                      "size_divisor": 32},
            "preprocess": {"mean": 111.89, "std": 27.62, "channels": 3, "fit_size": [1000, 600]},
            "outputs": {"num_detections": {}, "boxes": {}, "scores": {}},
            "plugins": {"library": "", "namespace": "", "OscarDecode": {"version": "1"},
                        "OscarNMS": {"version": "1"}}}
    (tmp / "model.engine.json").write_text(json.dumps(side))
    return engine


class PluginLike:
    """Final detections straight from ``compute`` (no TrtBackend): the reference path."""

    output_kind = "detections"  # oscar_edge.backends.base.FINAL_DETECTIONS
    input_size = None

    def __init__(self, compute) -> None:
        self.compute = compute

    def __call__(self, x):
        return self.compute(x)


def test_evaluate_engine_matches_onnxruntime_with_trt_double(tmp_path, sirst_root,
                                                             monkeypatch, capsys):
    """evaluate_engine.py through TrtBackend with the TensorRT / cuda-python TEST DOUBLE (which
    computes what the plugins compute: ORT raw heads + native decode/NMS on the padded input)
    gives exactly the metrics of evaluate's own functions on those final detections, and the
    accuracy of oscar-edge evaluate on ONNX Runtime FP32 (decode clamped to the content there,
    so the detection count may differ by a box or so)."""
    from trt_test_double import FakeCudart, FakeTensorRT

    from oscar_edge import evaluate
    from oscar_edge.backends import trt_backend as tb
    from oscar_edge.data.annotations import load_samples
    from oscar_edge.backends.factory import SHIPPED_ONNX
    from oscar_edge.backends.ort_backend import OrtBackend
    from oscar_edge.native import NativePostprocessor, default_library_path

    raw, native = OrtBackend(SHIPPED_ONNX, threads=1), NativePostprocessor()

    def compute(x):
        num, boxes, scores = native.postprocess_batch_padded(raw(x), clamp_hw=None)
        return num.copy(), boxes.copy(), scores.copy()

    calls: list = []
    monkeypatch.setattr(tb, "import_tensorrt", lambda: FakeTensorRT(calls, compute))
    monkeypatch.setattr(tb, "import_cudart", lambda: FakeCudart(calls))
    engine = write_sidecar_engine(tmp_path)
    common = ["--data", str(sirst_root), "--split", "mini_test", "--no-progress"]
    assert evaluate_engine.main(["--engine", str(engine), "--plugin-lib",
                                 str(default_library_path()), "--json",
                                 str(tmp_path / "trt.json"), *common]) == 0
    assert evaluate.main(["--precision", "fp32", "--backend", "onnxruntime", "--json",
                          str(tmp_path / "ort.json"), *common]) == 0
    trt = json.loads((tmp_path / "trt.json").read_text())
    ort = json.loads((tmp_path / "ort.json").read_text())
    assert trt["backend"] == "tensorrt" and trt["engine"] == str(engine)
    assert trt["tensorrt_version"] == "10.3.0" and trt["peak_refine"] is True
    assert ("execute_async_v3",) in calls
    ref = evaluate.evaluate_model(evaluate.make_detector(PluginLike(compute)),
                                  load_samples(sirst_root, "mini_test"), progress=False)
    for key in ("num_images", "num_boxes", "num_detections", "mNoCoAP", "AP50", "Pd",
                "Fa_per_image", "NoCoAP50"):
        assert trt[key] == ref[key], key
    for key in ("num_images", "num_boxes", "mNoCoAP", "AP50", "Pd"):
        assert np.isclose(trt[key], ort[key], atol=0.01), key
    assert abs(trt["num_detections"] - ort["num_detections"]) <= 0.02 * ort["num_detections"]
    capsys.readouterr()

    (tmp_path / "model.engine.json").unlink()  # negative: no sidecar -> one line, exit 2
    assert evaluate_engine.main(["--engine", str(engine), *common]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("evaluate_engine: error: engine sidecar not found")
    assert len(err.splitlines()) == 1
