"""The OpenVINO backend (oscar_edge/backends/openvino_backend.py): agreement with ONNX Runtime
on real validation images, the three shipped graphs, the explicit precision hint, the model
cache, the precision switch, and one-line failures."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

from oscar_edge.backends import factory
from oscar_edge.backends.onnx_meta import OnnxFormatError, read_metadata
from oscar_edge.errors import UserError
from oscar_edge.postprocess import OUTPUT_NAMES
from oscar_edge.preprocess import prepare, read_grey
from run_helpers import read_jsonl, read_jsonl_header, run_tool

ov = pytest.importorskip("openvino", reason="the OpenVINO backend needs the openvino extra")

from oscar_edge.backends.openvino_backend import (OpenVinoBackend, OpenVinoError,  # noqa: E402
                                                  default_cache_dir)
from oscar_edge.presets import SHIPPED_PRESET  # noqa: E402

SHIPPED = factory.SHIPPED_MODELS


def one_line_exit_2(p, *fragments):
    assert p.returncode == 2, (p.returncode, p.stdout, p.stderr)
    err = p.stderr.strip()
    assert err.count("\n") == 0 and "Traceback" not in err, err
    for f in fragments:
        assert f in err, (f, err)


@pytest.fixture(scope="module")
def val_greys(sirst_root):
    from oscar_edge.data.annotations import load_samples

    samples = load_samples(str(sirst_root), "val_full")
    # a few images of different sizes (the fit gives different network inputs)
    picked, sizes = [], set()
    for s in samples:
        g = read_grey(s.image_path)
        if g.shape not in sizes:
            sizes.add(g.shape)
            picked.append(g)
        if len(picked) == 3:
            break
    return picked


# -- agreement -------------------------------------------------------------------------------
def test_f32_matches_onnxruntime_on_every_raw_output(val_greys, tmp_path):
    """OpenVINO FP32 with hint f32 == ONNX Runtime within 1e-4 absolute on every raw output,
    real val images at two kinds of size: the keep-ratio fit and a fixed 640x512 letterbox."""
    from oscar_edge.backends.ort_backend import OrtBackend

    ort = OrtBackend(SHIPPED["fp32"], threads=2)
    ovb = OpenVinoBackend(SHIPPED["fp32"], threads=2, hint="f32", cache_dir=str(tmp_path))
    shapes = set()
    for g in val_greys:
        for size in (None, (512, 640)):
            x, _ = prepare(g, input_size=size)
            shapes.add(x.shape)
            a, b = ort(x[None]), ovb(x[None])
            assert len(b) == len(OUTPUT_NAMES)
            for name, u, v in zip(OUTPUT_NAMES, a, b):
                assert u.shape == v.shape and v.dtype == np.float32, name
                assert np.abs(u - v).max() <= 1e-4, (name, x.shape, np.abs(u - v).max())
    assert len(shapes) >= 2 and ovb.effective_hint == "f32"
    # one compilation per distinct shape, reused afterwards
    assert sorted(r.shape[2:] for r in ovb.compile_log) == sorted(s[1:] for s in shapes)


@pytest.mark.parametrize("precision", ["int8", "fp16"])
def test_shipped_reduced_graphs_load_and_track_fp32(precision, val_greys, tmp_path):
    """The shipped INT8 Q/DQ and FP16 graphs run on OpenVINO and stay close to FP32 at the
    runtime's fit: the score maps correlate and, on the image with the strongest FP32 peak
    (a detected target), the reduced graph's peak is on the same target: the same cell of the
    stride-4 map or its neighbour (a target two cells wide can tip to its other cell under
    INT8; peak refinement then moves the box onto the image's hot spot either way). On a faint
    image the top background logits can swap places under INT8, so those are not compared."""
    ref = OpenVinoBackend(SHIPPED["fp32"], threads=2, cache_dir=str(tmp_path))
    red = OpenVinoBackend(SHIPPED[precision], threads=2, cache_dir=str(tmp_path))
    assert red.precision == precision and red.preset == SHIPPED_PRESET
    pairs = []
    for grey in val_greys:
        x, _ = prepare(grey)
        a, b = ref(x[None]), red(x[None])
        score_a, score_b = a[0].ravel(), b[0].ravel()  # refine_score logits
        assert np.corrcoef(score_a, score_b)[0, 1] > 0.75
        assert not np.array_equal(score_a, score_b)  # it really is another graph
        pairs.append((float(score_a.max()), score_a, score_b, a[0].shape[2:]))
    peak, score_a, score_b, hw = max(pairs, key=lambda t: t[0])
    assert peak > 0.0  # a target the FP32 graph scores above 0.5
    ya, xa = np.unravel_index(int(np.argmax(score_a)), hw)
    yb, xb = np.unravel_index(int(np.argmax(score_b)), hw)
    assert max(abs(int(ya) - int(yb)), abs(int(xa) - int(xb))) <= 1, ((ya, xa), (yb, xb))


def test_shipped_graphs_come_from_the_shipped_weights():
    metas = {p: read_metadata(path) for p, path in SHIPPED.items()}
    sha = {m["source_checkpoint_sha256"] for m in metas.values()}
    assert len(sha) == 1
    for p, m in metas.items():
        assert m["precision"] == p and m["preset"] == SHIPPED_PRESET
    assert metas["int8"]["int8_target"] == "tensorrt"       # the file TensorRT builds from
    assert metas["int8"]["int8_weights"] == "int8+DQ"       # --dq-only: INT8 weights
    assert SHIPPED["int8"].stat().st_size < 2e6 < SHIPPED["fp32"].stat().st_size


# -- hint and cache --------------------------------------------------------------------------
def test_hint_is_set_explicitly_and_read_back(tmp_path):
    b = OpenVinoBackend(SHIPPED["fp32"], threads=1, hint="f32", cache_dir=None)
    b.prepare((1, 3, 64, 96))
    compiled = b._compiled[(1, 3, 64, 96)][0]
    assert str(compiled.get_property("INFERENCE_PRECISION_HINT")) in ("<Type: 'float32'>", "f32")
    assert compiled.get_property("INFERENCE_NUM_THREADS") == 1
    caps = ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    b16 = OpenVinoBackend(SHIPPED["fp32"], threads=1, hint="bf16", cache_dir=None)
    b16.prepare((1, 3, 64, 96))
    if "BF16" in caps:
        assert b16.effective_hint == "bf16" and not b16.notes
    else:  # a bf16 request on a CPU without bf16 runs f32, and says so
        assert b16.effective_hint == "f32" and "no bf16" in b16.notes[0]
        assert b16.describe_hint().startswith("bf16 (runs f32")


def test_model_cache_makes_the_second_start_a_load(tmp_path):
    cache = tmp_path / "cache"
    first = OpenVinoBackend(SHIPPED["int8"], threads=1, cache_dir=str(cache))
    r1 = first.prepare((1, 3, 128, 160))
    assert r1.from_cache is False and any(cache.iterdir())
    second = OpenVinoBackend(SHIPPED["int8"], threads=1, cache_dir=str(cache))
    r2 = second.prepare((1, 3, 128, 160))
    assert r2.from_cache is True
    other = OpenVinoBackend(SHIPPED["int8"], threads=1, cache_dir=str(cache))
    assert other.prepare((1, 3, 160, 160)).from_cache is False  # another shape compiles
    off = OpenVinoBackend(SHIPPED["int8"], threads=1, cache_dir="off")
    assert off.cache_dir is None and off.prepare((1, 3, 128, 160)).from_cache is False


def test_default_cache_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("OSCAR_EDGE_OV_CACHE", "off")
    assert default_cache_dir() is None
    monkeypatch.delenv("OSCAR_EDGE_OV_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert default_cache_dir() == os.path.join(str(tmp_path), "oscar-edge", "openvino")


# -- precision switch ------------------------------------------------------------------------
def test_precision_picks_the_shipped_graph():
    from oscar_edge.backends.openvino_backend import cpu_has_bf16

    default = "bf16" if cpu_has_bf16() else "f32"   # README, "Backends and precision"
    for p in ("fp32", "fp16", "int8"):
        c = factory.create_backend("openvino", precision=p, threads=1, ov_cache="off")
        assert c.precision == p and c.backend.path == str(SHIPPED[p])
        assert c.info()["ov_hint"] == default and f"hint {default}" in c.label
        assert c.info()["ov_hint_effective"] == default
        c = factory.create_backend("openvino", precision=p, threads=1, ov_cache="off",
                                   ov_hint="f32")
        assert c.info()["ov_hint"] == "f32"
    c = factory.create_backend("onnxruntime", precision="int8", threads=1)
    assert c.precision == "int8" and c.info().get("ov_hint") is None
    with pytest.raises(UserError, match="--precision fp16, but oscar-edge.onnx is fp32"):
        factory.create_backend("openvino", model=str(SHIPPED["fp32"]), precision="fp16")
    with pytest.raises(UserError, match="--ov-hint is for --backend openvino"):
        factory.create_backend("onnxruntime", ov_hint="bf16")


def test_default_hint_is_bf16_only_where_the_cpu_has_it(monkeypatch):
    import oscar_edge.backends.openvino_backend as ovm

    monkeypatch.setattr(ovm, "cpu_has_bf16", lambda: False)
    hint, note = factory.default_ov_hint("int8")
    assert hint == "f32" and "no bf16" in note
    c = factory.create_backend("openvino", precision="fp32", threads=1, ov_cache="off")
    assert c.info()["ov_hint"] == "f32" and any("no bf16" in n for n in c.notes)
    monkeypatch.setattr(ovm, "cpu_has_bf16", lambda: True)
    assert factory.default_ov_hint("fp32") == ("bf16", None)
    assert factory.default_ov_hint("unknown") == ("f32", None)


def test_auto_falls_back_to_onnxruntime_when_openvino_is_broken(monkeypatch):
    import oscar_edge.backends.openvino_backend as ovm

    def broken():
        raise OpenVinoError("the OpenVINO backend needs the 'openvino' package (test)")
    monkeypatch.setattr(ovm, "import_openvino", broken)
    monkeypatch.setattr(factory, "openvino_available", lambda: True)
    c = factory.create_backend("auto", threads=1)
    assert c.kind == "onnxruntime" and "not usable" in c.notes[0]
    with pytest.raises(OpenVinoError, match="needs the 'openvino' package"):
        factory.create_backend("openvino", threads=1)


# -- runtime ---------------------------------------------------------------------------------
def test_run_names_backend_precision_and_hint(tmp_path):
    jl, stats = tmp_path / "d.jsonl", tmp_path / "s.json"
    p = run_tool("--source", "synthetic://?frames=4&size=160x128&targets=2", "--backend",
                 "openvino", "--precision", "int8", "--ov-hint", "f32", "--input-size",
                 "160x128", "--threads", "1", "--jsonl", jl, "--stats", stats,
                 "--report-every", "0")
    assert p.returncode == 0, p.stderr
    head = read_jsonl_header(jl)
    assert (head["backend"], head["precision"], head["ov_hint"]) == ("openvino", "int8", "f32")
    assert head["input_size"] == "160x128" and len(read_jsonl(jl)) == 4
    s = json.loads(stats.read_text())
    assert (s["backend_kind"], s["precision"], s["ov_hint"]) == ("openvino", "int8", "f32")
    assert "hint f32" in s["backend"] and "hint f32" in p.stdout  # the report names it too
    assert "OpenVINO model for 1x3x128x160" in p.stderr


# -- one-line failures -----------------------------------------------------------------------
def test_openvino_not_installed_is_one_line(tmp_path):
    fake = tmp_path / "fake" / "openvino"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('No module named openvino (test)')\n")
    p = run_tool("--source", "synthetic://?frames=2&size=64x64", "--backend", "openvino",
                 env={"PYTHONPATH": f"{tmp_path / 'fake'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"})
    # run_tool puts the repository first on PYTHONPATH; the fake package still shadows the
    # real one (site-packages comes after PYTHONPATH)
    one_line_exit_2(p, "pip install 'oscar-edge[openvino]'")


def test_unknown_hint_is_one_line():
    one_line_exit_2(run_tool("--source", "synthetic://?frames=2&size=64x64", "--backend",
                             "openvino", "--ov-hint", "fp8"),
                    "unknown OpenVINO precision hint 'fp8'", "f32, bf16")
    one_line_exit_2(run_tool("--split", "mini_test", "--backend", "openvino", "--ov-hint",
                             "int4", tool="oscar_edge.evaluate"), "precision hint 'int4'")


def test_corrupt_model_is_one_line(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(np.random.RandomState(0).bytes(4096))
    one_line_exit_2(run_tool("--source", "synthetic://?frames=2&size=64x64", "--backend",
                             "openvino", "--model", bad), "cannot load ONNX model")
    half = tmp_path / "half.onnx"
    data = SHIPPED["fp32"].read_bytes()
    half.write_bytes(data[: len(data) // 2])  # truncated in the middle of the weights
    one_line_exit_2(run_tool("--source", "synthetic://?frames=2&size=64x64", "--backend",
                             "openvino", "--model", half), "cannot load ONNX model")
    with pytest.raises(OnnxFormatError):
        read_metadata(bad)


def test_input_size_the_model_cannot_take_is_one_line(tmp_path):
    onnx = pytest.importorskip("onnx")
    m = onnx.load(str(SHIPPED["fp32"]))
    dims = m.graph.input[0].type.tensor_type.shape.dim
    for d, v in zip(dims, (1, 3, 64, 96)):
        d.ClearField("dim_param")
        d.dim_value = v
    static = tmp_path / "static.onnx"
    onnx.save(m, str(static))
    b = OpenVinoBackend(static, threads=1, cache_dir=None)
    assert b.input_size == (64, 96)
    with pytest.raises(OpenVinoError, match="static input shape"):
        b.prepare((1, 3, 128, 160))
    one_line_exit_2(run_tool("--source", "synthetic://?frames=2&size=160x128", "--backend",
                             "openvino", "--model", static, "--input-size", "160x128"),
                    "fixed 64x96 input")
    # without --input-size the runtime letterboxes into the model's own size
    p = run_tool("--source", "synthetic://?frames=2&size=160x128", "--backend", "openvino",
                 "--model", static, "--threads", "1", "--report-every", "0")
    assert p.returncode == 0, p.stderr


def test_start_benchmark_second_start_loads_from_cache(tmp_path):
    import subprocess
    import sys

    from run_helpers import REPO

    out = tmp_path / "start.json"
    p = subprocess.run([sys.executable, str(REPO / "benchmarks" / "openvino_start.py"),
                        "--size", "160x128", "--threads", "1", "--repeats", "1", "--ov-hint",
                        "bf16", "--json", out],
                       capture_output=True, text=True, cwd=str(REPO), timeout=300)
    assert p.returncode == 0, p.stderr
    assert "hint bf16" in p.stdout
    rec = json.loads(out.read_text())
    assert rec["ov_hint"] == "bf16"
    runs = rec["runs"]
    assert [r["from_cache"] for r in runs["cold"]] == [False]
    assert [r["from_cache"] for r in runs["cached"]] == [True]
    assert "| second (same cache) | loaded |" in p.stdout
