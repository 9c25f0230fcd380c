"""export/build_engine.py: checkpoint / raw ONNX -> end-to-end ONNX -> TensorRT engine + sidecar.

What runs here (no TensorRT, no GPU on the build machine):
* the no-TensorRT path through the real script: the end-to-end ONNX is written and valid, the
  trtexec command is printed, one line on stderr, exit code 2 (FP32 from the shipped model;
  INT8 and FP16 from a raw ONNX);
* bad inputs: one line, exit code 2, nothing written;
* the TensorRT call sequence against ``FakeTensorRT``, a TEST DOUBLE of the ``tensorrt`` module
  put into ``sys.modules``. It records which API calls build_engine makes (strongly typed
  network, profile, workspace, timing cache, DLA) and returns a fake plan. It is NOT TensorRT:
  passing says nothing about whether TensorRT accepts the graph or builds a working engine.

The ``tensorrt``-marked test builds real FP32 and FP16 engines from the shipped model, runs them
with cuda-python on a real image and compares with the CPU pipeline; it skips (saying why)
without TensorRT, cuda-python, a GPU or the built plugin library.
"""
from __future__ import annotations

import enum
import hashlib
import importlib.machinery
import importlib.util
import json
import os
import subprocess
import sys
import types
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx", reason="needs the export extra: pip install '.[export]'")
pytest.importorskip("onnxruntime", reason="needs the export extra: pip install '.[export]'")
pytest.importorskip("onnxsim", reason="needs the export extra: pip install '.[export]'")
pytest.importorskip("onnx_graphsurgeon", reason="needs the export extra: pip install '.[export]'")
pytest.importorskip("torch", reason="export needs torch: pip install '.[export]'")

from oscar_edge import __version__  # noqa: E402
from oscar_edge.export import build_engine as be  # noqa: E402
from oscar_edge.export import plugin_graph as pg  # noqa: E402
from oscar_edge.export import trt_build  # noqa: E402
from oscar_edge.export.plugin_names import plugin_names  # noqa: E402
from oscar_edge.native import default_library_path  # noqa: E402
from oscar_edge.preprocess import FIT_SIZE, MEAN, STD  # noqa: E402
from oscar_edge.presets import SHIPPED_PRESET  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "export" / "build_engine.py"
CALIB = ["--calib-split", "mini_trainval", "--calib-images", "2", "--seed", "0"]
HAVE_TRT = importlib.util.find_spec("tensorrt") is not None


def run_script(*args, env=None) -> subprocess.CompletedProcess:
    full_env = dict(os.environ)
    full_env.pop("OSCAR_EDGE_TRT_PLUGINS", None)
    full_env.update(env or {})
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True,
                          text=True, cwd=str(REPO), timeout=600, env=full_env)


def assert_one_line_exit_2(p: subprocess.CompletedProcess, *fragments: str) -> str:
    assert p.returncode == 2, (p.returncode, p.stdout, p.stderr)
    err = p.stderr.strip()
    assert err.count("\n") == 0 and "Traceback" not in err, err
    for f in fragments:
        assert f in err, (f, err)
    return err


@pytest.fixture(scope="module")
def raw_onnx(tmp_path_factory) -> Path:
    from oscar_edge.export.onnx_export import export_onnx

    out = tmp_path_factory.mktemp("raw") / "raw.onnx"
    export_onnx(None, out, verify=False)  # verified against PyTorch in test_export
    return out


def _check_written_graph(path: Path, precision: str) -> None:
    model = pg.load_end_to_end(path)  # plugin nodes + ONNX checker (private-domain copy)
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta["precision"] == precision and meta["preset"] == SHIPPED_PRESET
    assert [o.name for o in model.graph.output] == list(pg.E2E_OUTPUTS)


# ------------------------------------------------------------------ no TensorRT here
@pytest.mark.skipif(HAVE_TRT, reason="TensorRT is installed: the no-TensorRT path cannot run")
def test_without_tensorrt_writes_checked_onnx_and_prints_trtexec(tmp_path):
    engine = tmp_path / "model.engine"
    p = run_script("--out", engine)  # the shipped model, FP32, default profile
    err = assert_one_line_exit_2(p, "needs TensorRT", str(engine) + ".onnx", "trtexec --onnx=")
    assert not engine.exists() and not Path(str(engine) + ".json").exists()
    _check_written_graph(Path(str(engine) + ".onnx"), "fp32")
    assert "checked on the CPU" in p.stdout  # the graph ran with the CPU twin of the plugins
    lines = p.stdout.splitlines()
    command = lines[[ln.startswith("trtexec equivalent") for ln in lines].index(True) + 1]
    assert command.startswith("trtexec ")
    assert command in err  # the same command on stderr's one line
    for flag in ("--stronglyTyped", f"--onnx={engine}.onnx", f"--saveEngine={engine}",
                 "--staticPlugins=build/plugins/liboscar_edge_trt_plugins.so",
                 "--minShapes=image:1x3x256x320", "--optShapes=image:1x3x512x640",
                 "--maxShapes=image:4x3x1088x1920", "--memPoolSize=workspace:1024M",
                 "--skipInference"):
        assert flag in command, flag
    for absent in ("--fp16", "--int8", "--best", "--calib", "--useDLACore"):
        assert absent not in command
    assert "--minShapes=image:1x3x256x320,letterbox:1x4" in command  # peak refinement (default)


@pytest.mark.skipif(HAVE_TRT, reason="TensorRT is installed: the no-TensorRT path cannot run")
@pytest.mark.parametrize("precision", ["int8", "fp16"])
def test_without_tensorrt_reduced_precision_from_raw_onnx(tmp_path, raw_onnx, sirst_root,
                                                          precision):
    engine = tmp_path / f"{precision}.engine"
    cache = tmp_path / "timing.cache"
    p = run_script("--onnx", raw_onnx, "--precision", precision, "--calib-data", sirst_root,
                   *CALIB, "--out", engine, "--timing-cache", cache, "--workspace-mb", 512)
    assert p.returncode == 2, p.stderr
    last = p.stderr.strip().splitlines()[-1]  # ModelOpt may log warnings before it
    assert last.startswith("build_engine: error: the engine step needs TensorRT"), last
    _check_written_graph(Path(str(engine) + ".onnx"), precision)
    model = onnx.load(str(engine) + ".onnx")
    ops = {n.op_type for n in model.graph.node}
    if precision == "int8":
        assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    else:
        assert any(t.data_type == onnx.TensorProto.FLOAT16 for t in model.graph.initializer)
    assert "checked on the CPU" in p.stdout
    assert f"--timingCacheFile={cache}" in last and "--memPoolSize=workspace:512M" in last
    assert not cache.exists()  # nothing but the ONNX is written without TensorRT


# ------------------------------------------------------------------ bad inputs
@pytest.fixture()
def bad_files(tmp_path):
    bad_pt = tmp_path / "bad.pt"
    bad_pt.write_bytes(b"\x00garbage" * 50)
    bad_onnx = tmp_path / "bad.onnx"
    bad_onnx.write_bytes(b"not a protobuf \xff\xfe" * 10)
    bad_so = tmp_path / "libbad.so"
    bad_so.write_bytes(b"this is not an ELF shared object" * 4)
    empty = tmp_path / "empty"
    empty.mkdir()
    return {"pt": bad_pt, "onnx": bad_onnx, "so": bad_so, "empty": empty,
            "none_pt": tmp_path / "none.pt"}


@pytest.mark.parametrize("case, args, fragments", [
    ("missing checkpoint", ["--checkpoint", "{none_pt}"], ["checkpoint not found", "none.pt"]),
    ("corrupt checkpoint", ["--checkpoint", "{pt}"], ["bad.pt"]),
    ("corrupt onnx", ["--onnx", "{onnx}"], ["cannot read ONNX model", "bad.onnx"]),
    ("height not multiple of 32", ["--max-shape", "4x3x1000x1920"], ["--max-shape", "multiples of 32"]),
    ("width not multiple of 32", ["--opt-shape", "1x3x512x650"], ["--opt-shape", "multiples of 32"]),
    ("malformed shape", ["--min-shape", "1x3x256"], ["--min-shape", "NxCxHxW"]),
    ("profile order", ["--min-shape", "1x3x512x640", "--opt-shape", "1x3x256x320"], ["min <= opt <= max"]),
    ("empty calibration folder", ["--precision", "int8", "--calib-data", "{empty}"], ["no calibration images"]),
    ("no calibration data", ["--precision", "fp16"], ["needs --calib-data"]),
    ("plugin library does not load", ["--plugin-lib", "{so}"], ["plugin library", "could not be loaded", "libbad.so"]),
    ("plugin library missing", ["--plugin-lib", "{empty}/none.so"], ["plugin library not found"]),
    ("dla with fp32", ["--dla-core", "0"], ["--dla-core", "FP16 and INT8"]),
    ("topk too large", ["--topk", "5000"], ["--topk"]),
])
def test_bad_inputs_one_line_exit_2(tmp_path, bad_files, case, args, fragments):
    engine = tmp_path / "out" / "model.engine"
    p = run_script(*[a.format(**bad_files) for a in args], "--out", engine)
    assert_one_line_exit_2(p, *fragments)
    assert not Path(str(engine) + ".onnx").exists() and not engine.exists()


def test_plugin_library_from_environment_is_loaded_first(tmp_path, bad_files):
    """$OSCAR_EDGE_TRT_PLUGINS counts as given explicitly: it is loaded before the export."""
    engine = tmp_path / "model.engine"
    p = run_script("--out", engine, env={"OSCAR_EDGE_TRT_PLUGINS": str(bad_files["so"])})
    assert_one_line_exit_2(p, "could not be loaded")
    assert "exported" not in p.stdout and not Path(str(engine) + ".onnx").exists()


def test_trtexec_command_flags():
    cmd = be.trtexec_command(Path("m.engine.onnx"), Path("m.engine"), (1, 3, 640, 640),
                             (1, 3, 640, 640), (1, 3, 640, 640), 256, Path("lib/x.so"),
                             Path("t.cache"), 1)
    assert cmd == ("trtexec --onnx=m.engine.onnx --saveEngine=m.engine --stronglyTyped "
                   "--staticPlugins=lib/x.so --minShapes=image:1x3x640x640 "
                   "--optShapes=image:1x3x640x640 --maxShapes=image:1x3x640x640 "
                   "--memPoolSize=workspace:256M --timingCacheFile=t.cache --useDLACore=1 "
                   "--allowGPUFallback --skipInference")
    # with the peak refinement the graph has the second input 'letterbox' [B, 4]
    cmd = be.trtexec_command(Path("m.onnx"), Path("m.engine"), (1, 3, 256, 320),
                             (2, 3, 512, 640), (4, 3, 1088, 1920), 256, Path("x.so"),
                             letterbox=True)
    for flag in ("--minShapes=image:1x3x256x320,letterbox:1x4",
                 "--optShapes=image:2x3x512x640,letterbox:2x4",
                 "--maxShapes=image:4x3x1088x1920,letterbox:4x4"):
        assert flag in cmd.split(), flag


# ------------------------------------------------------------------ TensorRT call sequence (TEST DOUBLE)
class FakeTensorRT(types.ModuleType):
    """TEST DOUBLE of the ``tensorrt`` Python module, NOT TensorRT.

    It exposes only the names build_engine may use on TensorRT 10.3 / 11.x (no ``BuilderFlag.FP16``
    / ``INT8``, no calibrators: touching them raises AttributeError), records every call in
    ``calls``, "parses" the ONNX file by reading its graph I/O with the onnx package, and
    returns a fixed fake plan. Passing tests against it prove the call sequence only."""

    class Logger:
        WARNING, VERBOSE = 2, 4

        def __init__(self, severity):
            self.severity = severity

    class NetworkDefinitionCreationFlag(enum.IntEnum):
        STRONGLY_TYPED = 1

    class MemoryPoolType(enum.IntEnum):
        WORKSPACE = 0

    class DeviceType(enum.IntEnum):
        GPU, DLA = 0, 1

    class BuilderFlag(enum.IntEnum):
        GPU_FALLBACK = 1

    PLAN = b"FAKE-TENSORRT-PLAN"

    def __init__(self, creators=None, parse_ok=True, dla_cores=2, plan=PLAN):
        super().__init__("tensorrt")
        self.__spec__ = importlib.machinery.ModuleSpec("tensorrt", None)
        self.__version__ = "10.3.0-test-double"
        self._calls = []
        self.creators = creators
        self._parse_ok, self._dla_cores, self._plan = parse_ok, dla_cores, plan
        fake = self

        class Registry:
            @property
            def all_creators(self):
                return [types.SimpleNamespace(name=n, plugin_version=v, plugin_namespace=s)
                        for n, v, s in fake.creators]

            def get_creator(self, name, version, namespace):
                fake._calls.append(("get_creator", name, version, namespace))
                return object() if (name, version, namespace) in fake.creators else None

        self._registry = Registry()

        class Tensor:
            def __init__(self, name):
                self.name = name

        class Network:
            def __init__(self, flags):
                self.flags, self.inputs, self.outputs = flags, [], []

            num_inputs = property(lambda s: len(s.inputs))
            num_outputs = property(lambda s: len(s.outputs))

            def get_input(self, i):
                return Tensor(self.inputs[i])

            def get_output(self, i):
                return Tensor(self.outputs[i])

        class Parser:
            num_errors = property(lambda s: 0 if fake._parse_ok else 1)

            def __init__(self, network, logger):
                self.network = network

            def parse_from_file(self, path):
                fake._calls.append(("parse_from_file", path))
                model = onnx.load(path)
                self.network.inputs = [i.name for i in model.graph.input]
                self.network.outputs = [o.name for o in model.graph.output]
                return fake._parse_ok

            def get_error(self, i):
                return "In node 0 (oscar_decode): Plugin not found, are the plugin name, " \
                       "version, and namespace correct?"

        class Cache:
            def __init__(self, data):
                self.data = data

            def serialize(self):
                return self.data + b"+timings"

        class Profile:
            def set_shape(self, name, shape_min, opt, shape_max, /):
                fake._calls.append(("set_shape", name, tuple(shape_min), tuple(opt),
                                    tuple(shape_max)))

        class Config:
            def __init__(self):
                self.cache = None
                self.default_device_type = fake.DeviceType.GPU
                self.DLA_core = -1
                self._ready = True  # record attribute writes from here on

            def __setattr__(self, key, value):
                if key in ("default_device_type", "DLA_core") and getattr(self, "_ready", False):
                    fake._calls.append((key, value))
                object.__setattr__(self, key, value)

            def set_memory_pool_limit(self, pool, size):
                fake._calls.append(("set_memory_pool_limit", pool, size))

            def add_optimization_profile(self, profile):
                fake._calls.append(("add_optimization_profile",))
                return 0

            def create_timing_cache(self, data):
                fake._calls.append(("create_timing_cache", bytes(data)))
                return Cache(bytes(data))

            def set_timing_cache(self, cache, ignore_mismatch):
                fake._calls.append(("set_timing_cache", cache.data, ignore_mismatch))
                self.cache = cache

            def get_timing_cache(self):
                return self.cache

            def set_flag(self, flag):
                fake._calls.append(("set_flag", flag))

        class Builder:
            def __init__(self, logger):
                fake._calls.append(("Builder",))

            num_DLA_cores = property(lambda s: fake._dla_cores)

            def create_network(self, flags):
                fake._calls.append(("create_network", flags))
                return Network(flags)

            def create_builder_config(self):
                return Config()

            def create_optimization_profile(self):
                return Profile()

            def build_serialized_network(self, network, config):
                fake._calls.append(("build_serialized_network",))
                return fake._plan

        self.Builder, self.OnnxParser = Builder, Parser

    def get_plugin_registry(self):
        return self._registry

    def names(self):
        return [c[0] for c in self._calls]


@pytest.fixture()
def fake_trt(monkeypatch):
    names = plugin_names()
    fake = FakeTensorRT(creators={(n, v, names.namespace) for n, v in names.plugins().items()})
    monkeypatch.setitem(sys.modules, "tensorrt", fake)
    return fake


@pytest.fixture(scope="module")
def stand_in_plugin_lib() -> Path:
    """A shared library that loads (the CPU post-processing library) standing in for the
    plugin library; the test double's registry provides the creators."""
    path = default_library_path()
    if not path.is_file():
        pytest.skip("the native CPU library is not built (pip install -e .)")
    return path


def test_tensorrt_call_sequence_with_test_double(tmp_path, raw_onnx, fake_trt,
                                                 stand_in_plugin_lib, capsys):
    engine = tmp_path / "model.engine"
    cache = tmp_path / "timing.cache"
    cache.write_bytes(b"previous-timings")
    rc = be.main(["--onnx", str(raw_onnx), "--out", str(engine), "--plugin-lib",
                  str(stand_in_plugin_lib), "--min-shape", "1x3x256x320", "--opt-shape",
                  "2x3x512x640", "--max-shape", "4x3x1024x1024", "--workspace-mb", "256",
                  "--timing-cache", str(cache), "--no-verify"])
    out = capsys.readouterr()
    assert rc == 0, out.err
    calls, names = fake_trt._calls, fake_trt.names()
    e2e_path = str(engine) + ".onnx"
    # creators looked up under the header's names, version and namespace, before parsing
    n = plugin_names()
    for plugin, version in n.plugins().items():
        assert ("get_creator", plugin, version, n.namespace) in calls
    assert names.index("get_creator") < names.index("parse_from_file")
    # strongly typed network, parsed from the written end-to-end graph
    assert ("create_network", 1 << int(FakeTensorRT.NetworkDefinitionCreationFlag.STRONGLY_TYPED)) in calls
    assert ("parse_from_file", e2e_path) in calls
    # one profile on input 'image', the workspace limit, the timing cache read and written
    assert ("set_shape", "image", (1, 3, 256, 320), (2, 3, 512, 640), (4, 3, 1024, 1024)) in calls
    # the peak refinement (default on): the second input 'letterbox' [B, 4] in the same profile
    assert ("set_shape", pg.LETTERBOX_NAME, (1, 4), (2, 4), (4, 4)) in calls
    assert names.count("add_optimization_profile") == 1
    assert ("set_memory_pool_limit", FakeTensorRT.MemoryPoolType.WORKSPACE, 256 << 20) in calls
    assert ("create_timing_cache", b"previous-timings") in calls
    assert ("set_timing_cache", b"previous-timings", False) in calls
    assert names.index("set_timing_cache") < names.index("build_serialized_network")
    assert cache.read_bytes() == b"previous-timings+timings"
    assert "set_flag" not in names and "DLA_core" not in names  # no DLA, no precision flags
    # the engine and its sidecar
    assert engine.read_bytes() == FakeTensorRT.PLAN
    side = json.loads(Path(str(engine) + ".json").read_text())
    assert side["precision"] == "fp32" and side["preset"] == SHIPPED_PRESET
    assert side["input"]["name"] == "image"
    assert side["input"]["min_shape"] == [1, 3, 256, 320]
    assert side["input"]["opt_shape"] == [2, 3, 512, 640]
    assert side["input"]["max_shape"] == [4, 3, 1024, 1024]
    assert side["preprocess"]["mean"] == MEAN and side["preprocess"]["std"] == STD
    assert side["preprocess"]["fit_size"] == list(FIT_SIZE)
    assert side["tensorrt_version"] == "10.3.0-test-double"
    assert side["plugins"]["namespace"] == n.namespace
    assert side["plugins"][n.decode_name]["version"] == n.decode_version
    assert side["plugins"][n.nms_name][n.attr_max_detections] == n.default_max_detections
    assert side["peak_refine"] is True and side["letterbox_input"]["shape"] == ["B", 4]
    assert side["plugins"][n.peak_name] == {"version": n.peak_version,
                                            n.attr_centroid: n.default_centroid}
    assert side["onnx_sha256"] == hashlib.sha256(Path(e2e_path).read_bytes()).hexdigest()
    assert side["oscar_edge_version"] == __version__
    assert side["strongly_typed"] is True and side["workspace_mb"] == 256
    datetime.fromisoformat(side["created"])
    assert f"wrote {engine}" in out.out and "trtexec equivalent" in out.out
    # the runtime's reader of the sidecar (TensorRT backend) accepts it, where it exists
    try:
        from oscar_edge.backends.trt_backend import read_sidecar
    except ImportError:
        return
    parsed = read_sidecar(Path(str(engine) + ".json"))
    assert parsed.min_hw == (256, 320) and parsed.max_hw == (1024, 1024)
    assert parsed.plugin_versions == n.plugins() and parsed.plugin_namespace == n.namespace


def _spec(path, **kw):
    base = dict(onnx_path=path, input_name="image", min_shape=(1, 3, 256, 256),
                opt_shape=(1, 3, 256, 256), max_shape=(1, 3, 256, 256), workspace_bytes=1 << 28,
                expected_outputs=pg.E2E_OUTPUTS,
                extra_inputs={pg.LETTERBOX_NAME: ((1, 4), (1, 4), (1, 4))})  # peak refinement
    base.update(kw)
    return trt_build.BuildSpec(**base)


@pytest.fixture(scope="module")
def e2e_file(raw_onnx, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("e2e") / "model.engine.onnx"
    onnx.save(pg.add_plugin_nodes(onnx.load(str(raw_onnx))), str(path))
    return path


def test_dla_configuration_with_test_double(e2e_file, fake_trt):
    result = trt_build.build_engine(fake_trt, _spec(e2e_file, dla_core=1), plugin_names())
    assert result.plan == FakeTensorRT.PLAN
    assert ("default_device_type", FakeTensorRT.DeviceType.DLA) in fake_trt._calls
    assert ("DLA_core", 1) in fake_trt._calls
    assert ("set_flag", FakeTensorRT.BuilderFlag.GPU_FALLBACK) in fake_trt._calls
    fake_trt._dla_cores = 0  # e.g. a desktop GPU, or TensorRT 11 on JetPack
    with pytest.raises(be.UserError, match="DLA"):
        trt_build.build_engine(fake_trt, _spec(e2e_file, dla_core=0), plugin_names())


def test_missing_creators_and_parser_errors_with_test_double(e2e_file, fake_trt):
    fake_trt.creators = set()
    with pytest.raises(be.UserError, match="no plugin creator OscarDecode/1"):
        trt_build.build_engine(fake_trt, _spec(e2e_file), plugin_names())
    assert "parse_from_file" not in fake_trt.names()
    names = plugin_names()
    fake_trt.creators = {(n, v, names.namespace) for n, v in names.plugins().items()}
    fake_trt._parse_ok = False
    with pytest.raises(be.UserError, match="Plugin not found"):
        trt_build.build_engine(fake_trt, _spec(e2e_file), names)
    fake_trt._parse_ok, fake_trt._plan = True, None
    with pytest.raises(trt_build.EngineBuildError):
        trt_build.build_engine(fake_trt, _spec(e2e_file), names)


# ------------------------------------------------------------------ real TensorRT (Jetson / GPU)
class RealTensorRT:
    """TensorRT, cuda-python, a GPU and the built plugin library, or a skip saying which."""

    def __init__(self):
        try:
            import tensorrt as trt
        except ImportError:
            pytest.skip("TensorRT's Python package (tensorrt) is not installed")
        if isinstance(trt, FakeTensorRT):
            pytest.skip("tensorrt is the test double here")
        try:
            from cuda.bindings import runtime as cudart
        except ImportError:
            try:
                from cuda import cudart
            except ImportError:
                pytest.skip("cuda-python is not installed (pip install cuda-python)")
        err, count = cudart.cudaGetDeviceCount()
        if int(err) != 0 or count < 1:
            pytest.skip(f"no usable CUDA GPU (cudaGetDeviceCount: {err}, {count} devices)")
        lib, _ = be.default_plugin_library()
        if not lib.is_file():
            pytest.skip(f"plugin library {lib} not built (cmake -S cpp_plugins -B build/plugins "
                        "&& cmake --build build/plugins) or set OSCAR_EDGE_TRT_PLUGINS")
        self.trt, self.cudart, self.lib = trt, cudart, lib

    def check(self, result):
        err = result[0] if isinstance(result, tuple) else result
        if int(err) != 0:
            raise RuntimeError(f"CUDA error {err}")
        return result[1] if isinstance(result, tuple) and len(result) == 2 else None

    def run(self, plan: bytes, x: np.ndarray, letterbox=None):
        trt, cudart = self.trt, self.cudart
        trt_build.load_plugin_library(self.lib)
        runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        engine = runtime.deserialize_cuda_engine(plan)
        assert engine is not None, "engine deserialization failed (see the TensorRT log)"
        ctx = engine.create_execution_context()
        feeds = {"image": np.ascontiguousarray(x, np.float32)}
        if letterbox is not None:  # the peak refinement's second input
            feeds[pg.LETTERBOX_NAME] = np.ascontiguousarray(letterbox, np.float32).reshape(-1, 4)
        for name, arr in feeds.items():
            ctx.set_input_shape(name, arr.shape)
        stream = self.check(cudart.cudaStreamCreate())
        host, buffers = {}, []
        try:
            for i in range(engine.num_io_tensors):
                name = engine.get_tensor_name(i)
                if engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT:
                    arr = feeds[name]
                else:
                    arr = np.zeros(tuple(ctx.get_tensor_shape(name)),
                                   trt.nptype(engine.get_tensor_dtype(name)))
                host[name] = arr
                ptr = self.check(cudart.cudaMalloc(max(arr.nbytes, 1)))
                buffers.append(ptr)
                ctx.set_tensor_address(name, ptr)
                if engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT:
                    self.check(cudart.cudaMemcpy(ptr, arr.ctypes.data, arr.nbytes,
                                                 cudart.cudaMemcpyKind.cudaMemcpyHostToDevice))
            assert ctx.execute_async_v3(int(stream))
            self.check(cudart.cudaStreamSynchronize(stream))
            for name in pg.E2E_OUTPUTS:
                arr = host[name]
                self.check(cudart.cudaMemcpy(arr.ctypes.data, ctx.get_tensor_address(name),
                                             arr.nbytes,
                                             cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost))
        finally:
            for ptr in buffers:
                cudart.cudaFree(ptr)
            cudart.cudaStreamDestroy(stream)
        return tuple(host[n] for n in pg.E2E_OUTPUTS)


def _iou(a, b):
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - ix * iy
    return ix * iy / union if union > 0 else 0.0


@pytest.mark.tensorrt
@pytest.mark.parametrize("precision, score_tol", [("fp32", 2e-3), ("fp16", 2e-2)])
def test_real_engine_matches_cpu_pipeline(tmp_path, sirst_root, precision, score_tol):
    """Builds the engine from the shipped model with the real TensorRT, runs it on a val image
    and compares with PyTorch + the numpy post-processing. TensorRT picks its own kernels (TF32
    for FP32 convolutions on Ampere/Orin), so: the 10 best detections must be found again
    (IoU >= 0.9, score within ``score_tol``) and the counts must be close."""
    gpu = RealTensorRT()
    import torch

    from oscar_edge.checkpoint import load_model
    from oscar_edge.data.annotations import load_samples
    from oscar_edge.postprocess import peak_refine, postprocess_image
    from oscar_edge.preprocess import prepare, read_grey

    sample = load_samples(sirst_root, "val_full")[0]
    x, box = prepare(read_grey(sample.image_path))
    engine = tmp_path / f"{precision}.engine"
    args = ["--precision", precision, "--out", str(engine), "--min-shape", "1x3x256x320",
            "--opt-shape", f"1x3x{x.shape[1]}x{x.shape[2]}", "--max-shape", "2x3x1024x1024",
            "--calib-data", str(sirst_root), "--calib-split", "mini_trainval",
            "--calib-images", "4"]
    assert be.main(args) == 0
    side = json.loads(Path(str(engine) + ".json").read_text())
    assert side["tensorrt_version"] == gpu.trt.__version__ and side["precision"] == precision
    assert side["peak_refine"] is True and side["letterbox_input"]["name"] == pg.LETTERBOX_NAME
    num, boxes, scores = gpu.run(engine.read_bytes(), x[None], box.tensor()[None])
    assert num.dtype == np.int32 and boxes.shape[1:] == (100, 4)
    got_b, got_s = boxes[0, :num[0]], scores[0, :num[0]]
    model = load_model(None)[0].eval()
    with torch.no_grad():
        outs = [o[0].numpy() for o in model(torch.from_numpy(x[None]))]
    # decode clamps to the whole input (as the plugin), the refinement to the content
    want_b, want_s = postprocess_image(outs, box.padded)
    want_b = peak_refine(want_b, x, box.resized, (box.scale_y, box.scale_x))
    assert abs(len(got_b) - len(want_b)) <= max(2, len(want_b) // 10), (len(got_b), len(want_b))
    assert np.all(got_b[:, 0::2] <= box.resized[1]) and np.all(got_b[:, 1::2] <= box.resized[0])
    for wb, ws in zip(want_b[:10], want_s[:10]):
        ious = [_iou(wb, gb) for gb in got_b]
        j = int(np.argmax(ious)) if ious else -1
        assert j >= 0 and ious[j] >= 0.9, (wb, ious[j] if ious else None)
        assert abs(float(got_s[j]) - float(ws)) <= score_tol, (float(got_s[j]), float(ws))
