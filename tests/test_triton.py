"""Triton: the repositories of ``oscar-edge export-triton``, the Python models' roles, and
``oscar-edge serve`` + ``--backend triton://`` against the real server (nvidia-pytriton's
tritonserver) on loopback, faults included (docs/many-cameras.md).

The server runs in its own environment (numpy < 2): ``OSCAR_EDGE_SERVE_PYTHON`` (set by
``make test``) or ``.venv-serve/bin/python``. Every server started here is stopped, and the
test checks that no process or shared-memory segment is left.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from oscar_edge.backends.factory import create_backend
from oscar_edge.pipeline import Detector
from oscar_edge.triton import python_model as pm
from oscar_edge.triton import repository as rp
from oscar_edge.triton.server import ServeProcess, free_ports

REPO = Path(__file__).resolve().parents[1]
MODELS = Path(__file__).resolve().parent / "triton_models"
SERVE_PY = os.environ.get("OSCAR_EDGE_SERVE_PYTHON") or str(REPO / ".venv-serve" / "bin" / "python")
pytest.importorskip("tritonclient.grpc", reason="needs the triton-client extra (make test has it)")


def cli(*args, timeout=180):
    return subprocess.run([sys.executable, "-m", "oscar_edge", *map(str, args)],
                          capture_output=True, text=True, timeout=timeout, cwd=REPO)


def frames(n=3, size=(512, 640), seed=0):
    from oscar_edge.io.synthetic import SyntheticScene

    scene = SyntheticScene(width=size[1], height=size[0], targets=5, seed=seed)
    return [scene.frame(t) for t in range(n)]


def grey(img):
    from oscar_edge.preprocess import to_grey_u8

    return to_grey_u8(img)


# -- repositories (no server) ----------------------------------------------------------------
def test_cpu_repository_is_written_and_parses_with_tritons_schema(tmp_path):
    r = cli("export-triton", "--out", tmp_path / "repo", "--instances", "2", "--threads", "1")
    assert r.returncode == 0, r.stderr
    cfg = rp.parse_config(tmp_path / "repo" / "oscar-edge" / "config.pbtxt")
    assert cfg.backend == "python" and cfg.max_batch_size == rp.DEFAULT_MAX_BATCH
    assert cfg.HasField("dynamic_batching") and cfg.instance_group[0].count == 2
    assert [(t.name, list(t.dims)) for t in cfg.input] == [("FRAMES", [-1, -1])]
    assert {t.name for t in cfg.output} == {"DETECTIONS", "NUM_DETECTIONS"}
    params = {k: v.string_value for k, v in cfg.parameters.items()}
    assert params["oscar_edge_role"] == "detect" and params["threads"] == "1"
    assert (tmp_path / "repo" / "oscar-edge" / "1" / "oscar-edge.onnx").stat().st_size > 1000
    assert "TritonPythonModel" in (tmp_path / "repo" / "oscar-edge" / "1" / "model.py").read_text()
    # nothing is overwritten without --force; a new version is fine
    again = cli("export-triton", "--out", tmp_path / "repo")
    assert again.returncode == 2 and "--force" in again.stderr and "Traceback" not in again.stderr
    assert cli("export-triton", "--out", tmp_path / "repo", "--version", "2").returncode == 0
    off = cli("export-triton", "--out", tmp_path / "r2", "--no-dynamic-batching")
    assert off.returncode == 0
    assert not rp.parse_config(tmp_path / "r2" / "oscar-edge" / "config.pbtxt").HasField(
        "dynamic_batching")


def test_gpu_repository_is_an_ensemble_with_consistent_names(tmp_path):
    engine = tmp_path / "m.engine"
    engine.write_bytes(b"not a real engine")
    side = {"input": {"min_shape": [1, 3, 512, 640], "max_shape": [8, 3, 512, 640]},
            "outputs": {"boxes": {"shape": ["B", 50, 4]}},
            "plugins": {"OscarDecode": {}, "OscarNMS": {}}}
    (tmp_path / "m.engine.json").write_text(json.dumps(side))
    lib = tmp_path / "lib.so"
    lib.write_bytes(b"\x7fELF")
    r = cli("export-triton", "--gpu", "--out", tmp_path / "g", "--engine", engine,
            "--plugin-lib", lib)
    assert r.returncode == 0, r.stderr
    assert "not served here" in r.stdout
    g = tmp_path / "g"
    trt = rp.parse_config(g / "oscar-edge-trt" / "config.pbtxt")
    assert trt.platform == "tensorrt_plan" and trt.max_batch_size == 8
    assert [t.name for t in trt.input] == ["image"]          # no OscarPeakRefine in the engine
    assert list(trt.input[0].dims) == [3, 512, 640]            # a static profile
    assert list(trt.output[1].dims) == [50, 4]
    assert (g / "oscar-edge-trt" / "1" / "model.plan").read_bytes() == b"not a real engine"
    assert (g / "plugins" / "liboscar_edge_trt_plugins.so").exists()
    ens = rp.parse_config(g / "oscar-edge" / "config.pbtxt")
    assert ens.platform == "ensemble" and len(ens.ensemble_scheduling.step) == 3
    assert "--backend-config=tensorrt,plugins=" in (g / "README.md").read_text()
    lines = rp.validate_repository(g)
    assert len(lines) == 4
    # a broken ensemble is caught: the engine step loses its input mapping
    text = (g / "oscar-edge" / "config.pbtxt").read_text()
    (g / "oscar-edge" / "config.pbtxt").write_text(
        text.replace('input_map { key: "image" value: "image" }', "", 1))
    with pytest.raises(rp.UserError, match="not mapped"):
        rp.validate_repository(g)
    # the refinement must agree with the engine
    bad = cli("export-triton", "--gpu", "--out", tmp_path / "g2", "--engine", engine,
              "--peak-refine", "on")
    assert bad.returncode == 2 and "OscarPeakRefine" in bad.stderr


def test_serve_refuses_what_it_cannot_serve(tmp_path):
    r = cli("serve", tmp_path)
    assert r.returncode == 2 and "not a model repository" in r.stderr
    assert cli("export-triton", "--out", tmp_path / "repo").returncode == 0
    # this (test) environment has numpy 2: the Python backend would return empty outputs
    import numpy

    if int(numpy.__version__.split(".")[0]) >= 2:
        r = cli("serve", tmp_path / "repo", "--python", sys.executable)
        assert r.returncode == 2 and "numpy" in r.stderr and len(r.stderr.splitlines()) == 1


# -- the Python models' work, without a server -----------------------------------------------
def test_pack_unpack_roundtrip():
    rows = [np.arange(10, dtype=np.float32).reshape(2, 5), np.zeros((0, 5), np.float32)]
    out = pm.pack(rows)
    assert out["DETECTIONS"].shape == (2, 2, 5) and out["NUM_DETECTIONS"].ravel().tolist() == [2, 0]
    back = pm.unpack(out["DETECTIONS"], out["NUM_DETECTIONS"])
    assert np.array_equal(back[0], rows[0]) and back[1].shape == (0, 5)


@pytest.fixture(scope="module")
def cpu_repo(tmp_path_factory):
    out = tmp_path_factory.mktemp("triton") / "repo"
    opt = rp.CpuOptions(threads=1)
    rp.write_cpu_repository(out, opt)
    return out


def test_detect_role_batches_requests_and_matches_the_local_detector(cpu_repo):
    cfg = rp.parse_config(cpu_repo / "oscar-edge" / "config.pbtxt")
    params = {k: v.string_value for k, v in cfg.parameters.items()}
    role = pm.DetectRole(params, cpu_repo / "oscar-edge" / "1")
    local = Detector(create_backend("onnxruntime", threads=1).backend, small_input=True)
    a = [grey(f) for f in frames(3, seed=1)]
    b = [grey(f) for f in frames(1, size=(256, 320), seed=2)]
    reqs = [{"FRAMES": np.stack(a[:2])}, {"FRAMES": b[0][None]}, {"FRAMES": a[2][None]}]
    res = role.run(reqs)
    got = [pm.unpack(r["DETECTIONS"], r["NUM_DETECTIONS"]) for r in res]
    want = [[a[0], a[1]], [b[0]], [a[2]]]
    for g_rows, w_frames in zip(got, want):
        assert len(g_rows) == len(w_frames)
        for row, f in zip(g_rows, w_frames):
            d = local(f)
            assert len(row) == len(d.scores) > 0
            np.testing.assert_allclose(row[:, :4], d.boxes, atol=1e-3)
            np.testing.assert_allclose(row[:, 4], d.scores, atol=1e-5)
    with pytest.raises(ValueError, match="uint8"):
        role.run([{"FRAMES": np.zeros((1, 8, 8), np.float32)}])
    role.close()


def test_gpu_roles_map_engine_outputs_like_the_runtime():
    from oscar_edge import native

    pre = pm.PreprocessRole({"fit": "1000,600", "input_size": "fit"}, Path("."))
    f = grey(frames(1, size=(256, 320), seed=4)[0])
    out = pre.run([{"FRAMES": f[None]}])[0]
    x, lb = out["image"], out["letterbox"]
    assert x.shape == (1, 3, 512, 640) and x.dtype == np.float32   # the small-source input
    # engine-like outputs (the CPU twin of OscarDecode + OscarNMS) from the shipped model
    raw = create_backend("onnxruntime", threads=1).backend(x)
    num, boxes, scores = (np.array(a) for a in
                          native.NativePostprocessor().postprocess_batch_padded(raw))
    post = pm.PostprocessRole({}, Path("."))
    res = post.run([{"num_detections": np.asarray(num).reshape(-1, 1), "boxes": boxes,
                     "scores": scores, "letterbox": lb}])[0]
    rows = pm.unpack(res["DETECTIONS"], res["NUM_DETECTIONS"])[0]
    local = Detector(create_backend("onnxruntime", threads=1).backend, peak_refine=False,
                     small_input=True)(f)
    assert len(rows) == len(local.scores) > 0
    np.testing.assert_allclose(rows[:, :4], local.boxes, atol=1e-3)


# -- the real server on loopback -------------------------------------------------------------
def Served(repo: Path, ports=None) -> ServeProcess:
    """``oscar-edge serve`` in a subprocess (the server environment of ``SERVE_PY``)."""
    return ServeProcess(repo, SERVE_PY, ports, wait_s=120, cwd=REPO)


def server_processes(repo: Path):
    out = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    return [ln for ln in out.splitlines() if "tritonserver" in ln and str(repo) in ln
            or "triton_python_backend_stub" in ln and str(repo) in ln]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    if not Path(SERVE_PY).exists():
        pytest.skip(f"no server environment at {SERVE_PY}: make .venv-serve/.oscar-edge-installed "
                    "(make test builds it)")
    repo = tmp_path_factory.mktemp("served") / "repo"
    rp.write_cpu_repository(repo, rp.CpuOptions(threads=1))
    for name, src, cfg in (
            ("slow", "slow_model.py",
             'name: "slow"\nbackend: "python"\nmax_batch_size: 8\n'
             'input [ { name: "FRAMES" data_type: TYPE_UINT8 dims: [ -1, -1 ] } ]\n'
             'output [ { name: "DETECTIONS" data_type: TYPE_FP32 dims: [ -1, 5 ] },\n'
             '  { name: "NUM_DETECTIONS" data_type: TYPE_INT32 dims: [ 1 ] } ]\n'
             'parameters: { key: "delay_s" value: { string_value: "1.5" } }\n'),
            ("plain", "plain_model.py",
             'name: "plain"\nbackend: "python"\nmax_batch_size: 0\n'
             'input [ { name: "IMAGE" data_type: TYPE_FP32 dims: [ 3, -1, -1 ] } ]\n'
             'output [ { name: "OUT" data_type: TYPE_FP32 dims: [ 1 ] } ]\n')):
        (repo / name / "1").mkdir(parents=True)
        shutil.copy(MODELS / src, repo / name / "1" / "model.py")
        (repo / name / "config.pbtxt").write_text(cfg)
    s = Served(repo)
    try:
        yield s
    finally:
        rc = s.stop()
    assert rc == 0, "".join(s.lines[-5:])
    assert any("stopped" in ln for ln in s.lines)
    time.sleep(0.5)
    assert server_processes(repo) == []
    assert not list(Path("/dev/shm").glob(f"oscar-edge-{s.proc.pid}-*"))


def run_jsonl(tmp_path, name, backend, *extra, source="synthetic://?frames=8&seed=5"):
    out = tmp_path / f"{name}.jsonl"
    r = cli("run", "--source", source, "--headless", "--backend", backend, "--jsonl", out,
            "--report-every", "0", *extra, timeout=240)
    lines = [json.loads(ln) for ln in out.read_text().splitlines()[1:]] if out.exists() else []
    return r, lines


@pytest.mark.parametrize("scheme,port", [("triton", "grpc"), ("triton+http", "http")])
def test_served_detections_equal_the_local_backend(served, tmp_path, scheme, port):
    uri = f"{scheme}://127.0.0.1:{getattr(served, port)}/oscar-edge"
    r_local, local = run_jsonl(tmp_path, "local", "onnxruntime", "--threads", "1")
    r_srv, srv = run_jsonl(tmp_path, "srv", uri)
    assert r_local.returncode == 0 and r_srv.returncode == 0, r_srv.stderr
    assert len(local) == len(srv) == 8
    for a, b in zip(local, srv):
        assert len(a["boxes"]) == len(b["boxes"])
        np.testing.assert_allclose(np.asarray(b["boxes"]).reshape(-1, 4),
                                   np.asarray(a["boxes"]).reshape(-1, 4), atol=1e-3)
        np.testing.assert_allclose(b["scores"], a["scores"], atol=1e-5)
    assert sum(len(a["scores"]) for a in local) > 0


def test_wrong_model_name_or_interface_is_one_line(served):
    for model, words in (("nope", "not ready"), ("plain", "does not take oscar-edge frames")):
        r = cli("run", "--source", "synthetic://?frames=2", "--headless", "--backend",
                f"triton://127.0.0.1:{served.grpc}/{model}", timeout=60)
        assert r.returncode == 2 and words in r.stderr, r.stderr
        assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr


def test_server_down_at_start_is_one_line():
    (port,) = free_ports(1)
    for scheme in ("triton", "triton+http"):
        r = cli("run", "--source", "synthetic://?frames=2", "--headless", "--backend",
                f"{scheme}://127.0.0.1:{port}/oscar-edge", timeout=60)
        assert r.returncode == 2 and "cannot reach Triton" in r.stderr, r.stderr
        assert len(r.stderr.strip().splitlines()) == 1


def test_slow_server_drops_frames_and_the_run_goes_on(served, tmp_path):
    stats = tmp_path / "stats.json"
    r = cli("run", "--source", "synthetic://?frames=4&seed=1", "--headless", "--backend",
            f"triton://127.0.0.1:{served.grpc}/slow", "--triton-timeout", "0.3",
            "--stats", stats, "--report-every", "0", timeout=120)
    assert r.returncode == 0, r.stderr
    frames_ = json.loads(stats.read_text())["frames"]
    assert frames_["dropped_by_backend"] == 4 and frames_["processed"] == 0
    assert "retrying" in r.stderr


def test_server_gone_mid_stream_reconnects_and_counts_the_gap(tmp_path):
    if not Path(SERVE_PY).exists():
        pytest.skip(f"no server environment at {SERVE_PY}")
    repo = tmp_path / "repo"
    rp.write_cpu_repository(repo, rp.CpuOptions(threads=1, input_size="320x256"))
    ports = free_ports()
    first = Served(repo, ports)
    stats = tmp_path / "stats.json"
    run = subprocess.Popen(
        [sys.executable, "-m", "oscar_edge", "run", "--source",
         "synthetic://?live=1&size=320x256&fps=20&frames=3000", "--headless", "--backend",
         f"triton://127.0.0.1:{ports[0]}/oscar-edge", "--max-frames", "150", "--stats", stats,
         "--report-every", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        cwd=REPO)
    second = None
    try:
        time.sleep(3)                     # frames flow
        assert first.stop(signal.SIGINT) == 0   # the server goes away (Ctrl-C) ...
        time.sleep(2)
        second = Served(repo, ports)      # ... and comes back on the same ports
        out, err = run.communicate(timeout=120)
    finally:
        if run.poll() is None:
            run.kill()
        for s in (first, second):         # never leave a server running
            if s is not None and s.proc.poll() is None:
                s.stop()
    assert second.proc.returncode == 0 and first.proc.returncode == 0
    assert run.returncode == 0, err
    f = json.loads(stats.read_text())["frames"]
    assert f["processed"] == 150 and f["dropped_by_backend"] > 0, (f, err)
    assert "back after" in err and "dropped in the gap" in err
    assert server_processes(repo) == []
