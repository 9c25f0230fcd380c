"""Backends behind one interface: the factory's choice, the Detector with raw-output and
final-detection backends, and the TensorRT backend against a TEST DOUBLE of tensorrt and
cuda-python (tests/trt_test_double.py: call sequence and data flow only, not TensorRT)."""
import ctypes
import json

import numpy as np
import pytest

from oscar_edge.backends import factory
from oscar_edge.backends import trt_backend as tb
from oscar_edge.backends.base import FINAL_DETECTIONS, RAW_OUTPUTS, output_kind
from oscar_edge.errors import UserError
from oscar_edge.io.synthetic import SyntheticScene
from oscar_edge.native import NativePostprocessor, is_available
from oscar_edge.pipeline import Detector
from oscar_edge.preprocess import MEAN, STD
from run_helpers import needs_onnx
from trt_test_double import FakeCudart, FakeTensorRT

needs_native = pytest.mark.skipif(not is_available(), reason="native CPU library not built")


# -- factory --------------------------------------------------------------------------------
def test_auto_backend_choice(monkeypatch):
    monkeypatch.setattr(factory, "tensorrt_available", lambda: False)
    monkeypatch.setattr(factory, "openvino_available", lambda: False)
    assert factory.resolve_kind("auto", None, None) == ("onnxruntime", None)
    kind, note = factory.resolve_kind("auto", None, "m.engine")
    assert kind == "onnxruntime" and "TensorRT" in note and "ONNX Runtime" in note
    assert factory.resolve_kind("auto", "x.pt", None)[0] == "torch"
    # order: TensorRT (given an engine), OpenVINO (installed), ONNX Runtime
    monkeypatch.setattr(factory, "openvino_available", lambda: True)
    assert factory.resolve_kind("auto", None, None) == ("openvino", None)
    kind, note = factory.resolve_kind("auto", None, "m.engine")
    assert kind == "openvino" and "TensorRT" in note and "OpenVINO" in note
    assert factory.resolve_kind("auto", "x.pt", None)[0] == "torch"
    monkeypatch.setattr(factory, "tensorrt_available", lambda: True)
    assert factory.resolve_kind("auto", None, "m.engine") == ("tensorrt", None)
    assert factory.resolve_kind("torch", None, "m.engine")[0] == "torch"
    with pytest.raises(UserError, match="unknown backend"):
        factory.resolve_kind("tflite", None, None)


def test_factory_errors_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="needs --engine"):
        factory.create_backend("tensorrt")
    with pytest.raises(UserError, match="use --backend torch"):
        factory.create_backend("onnxruntime", model="x.pt")
    with pytest.raises(UserError, match="ONNX model not found"):
        factory.create_backend("onnxruntime", model=str(tmp_path / "none.onnx"))


@needs_onnx
def test_onnxruntime_is_the_default_without_openvino(monkeypatch):
    monkeypatch.setattr(factory, "openvino_available", lambda: False)
    choice = factory.create_backend(threads=1)
    assert choice.kind == "onnxruntime" and output_kind(choice.backend) == RAW_OUTPUTS
    assert "oscar-edge.onnx" in choice.label and choice.backend.input_size is None


# -- Detector with a backend whose model ends in NMS ----------------------------------------
class PluginLikeBackend:
    """Raw ONNX Runtime outputs + the native decode/NMS with the plugins' clamp (whole network
    input): what an engine with OscarDecode/OscarNMS returns."""

    output_kind = FINAL_DETECTIONS

    def __init__(self, raw, input_size=None):
        self.raw, self.input_size = raw, input_size
        self.native = NativePostprocessor()

    def __call__(self, x):
        num, boxes, scores = self.native.postprocess_batch_padded(self.raw(x), clamp_hw=None)
        return num.copy(), boxes.copy(), scores.copy()


@needs_onnx
@needs_native
def test_detector_accepts_final_detections_backends():
    from oscar_edge.backends.ort_backend import OrtBackend

    raw = OrtBackend(factory.SHIPPED_ONNX, threads=1)
    grey = SyntheticScene(160, 128, targets=4, seed=2).frame(3)
    ref = Detector(raw, input_size=(128, 160))(grey)       # frame fills the input: no padding
    final = Detector(PluginLikeBackend(raw, input_size=(128, 160)))
    assert final.input_size == (128, 160) and final.postprocess_backend == "in-model"
    got = final(grey)
    assert len(ref.scores) > 0
    assert np.array_equal(got.boxes, ref.boxes) and np.array_equal(got.scores, ref.scores)
    # letterboxed (padding below): boxes come back clamped to the image, in frame pixels
    wide = Detector(PluginLikeBackend(raw, input_size=(160, 160)))(grey)
    assert (wide.boxes[:, 1::2] <= 128).all() and (wide.boxes[:, 0::2] <= 160).all()
    with pytest.raises(ValueError, match="fixed 128x160"):
        Detector(PluginLikeBackend(raw, input_size=(128, 160)), input_size=(64, 64))


# -- TensorRT backend with the test double --------------------------------------------------
def write_engine(tmp_path, mean=MEAN, std=STD, static=(128, 160), drop=()):
    engine = tmp_path / "model.engine"
    engine.write_bytes(b"not a real plan")
    h, w = static if static else (256, 320)
    side = {
        "format": "oscar-edge TensorRT engine sidecar v1", "precision": "fp16",
        "input": {"name": "image", "dtype": "float32", "layout": "NCHW",
                  "min_shape": [1, 3, h, w] if static else [1, 3, 64, 64],
                  "opt_shape": [1, 3, h, w], "max_shape": [1, 3, h, w] if static
                  else [4, 3, 1088, 1920], "size_divisor": 32},
        "preprocess": {"mean": mean, "std": std, "channels": 3, "fit_size": [1000, 600]},
        "outputs": {"num_detections": {}, "boxes": {}, "scores": {}},
        "plugins": {"library": "", "namespace": "", "OscarDecode": {"version": "1"},
                    "OscarNMS": {"version": "1"}},
    }
    for k in drop:
        side["preprocess"].pop(k, None)
    (tmp_path / "model.engine.json").write_text(json.dumps(side))
    return engine


@pytest.fixture
def plugin_lib():
    """Any loadable shared library stands in for the plugin library (the doubles do not need
    its contents); the native CPU library is one."""
    from oscar_edge.native import default_library_path

    path = default_library_path()
    if not path.is_file():
        pytest.skip("native CPU library not built")
    return str(path)


def make_doubles(compute, loaded):
    calls = []
    return calls, FakeTensorRT(calls, compute, plugin_loaded=lambda: loaded[0]), FakeCudart(calls)


def recording_cdll(monkeypatch, calls, loaded):
    real = ctypes.CDLL

    def cdll(path, *a, **k):
        calls.append(("CDLL", str(path)))
        loaded[0] = True
        return real(path, *a, **k)
    monkeypatch.setattr(tb.ctypes, "CDLL", cdll)


def test_trt_backend_call_sequence(tmp_path, plugin_lib, monkeypatch):
    engine = write_engine(tmp_path)
    m = 100

    def compute(x):
        b = x.shape[0]
        boxes = np.zeros((b, m, 4), np.float32)
        boxes[:, 0] = [10, 20, 30, 44]
        scores = np.zeros((b, m), np.float32)
        scores[:, 0] = float(x[0, 0, 0, 0])  # echo an input value: proves the data path
        return np.ones(b, np.int32), boxes, scores

    loaded = [False]
    calls, trt, cudart = make_doubles(compute, loaded)
    recording_cdll(monkeypatch, calls, loaded)
    backend = tb.TrtBackend(engine, plugins=plugin_lib, trt=trt, cudart=cudart)
    names = [c[0] for c in calls]
    order = ["CDLL", "init_libnvinfer_plugins", "get_creator", "Runtime",
             "deserialize_cuda_engine", "create_execution_context", "num_io_tensors",
             "cudaStreamCreate"]
    assert [names.index(n) for n in order] == sorted(names.index(n) for n in order)
    assert backend.input_size == (128, 160) and backend.output_kind == FINAL_DETECTIONS

    calls.clear()
    x = np.full((1, 3, 128, 160), 0.25, np.float32)
    num, boxes, scores = backend(x)
    assert num.tolist() == [1] and boxes[0, 0].tolist() == [10, 20, 30, 44]
    assert scores[0, 0] == np.float32(0.25) and boxes.shape == (1, m, 4)
    seq = [c[0] if c[0] != "cudaMemcpyAsync" else "memcpy_" + c[1] for c in calls]
    first = lambda n: seq.index(n)  # noqa: E731
    last = lambda n: len(seq) - 1 - seq[::-1].index(n)  # noqa: E731
    assert first("set_input_shape") < first("get_tensor_shape")
    assert last("set_tensor_address") < first("memcpy_H2D") < first("execute_async_v3")
    assert last("memcpy_D2H") > first("execute_async_v3")
    assert seq[-1] == "cudaStreamSynchronize"
    assert sorted(c[1] for c in calls if c[0] == "set_tensor_address") == \
        ["boxes", "image", "num_detections", "scores"]
    assert seq.count("memcpy_D2H") == 3 and seq.count("execute_async_v3") == 1

    calls.clear()
    backend(x)  # same shape: no new shape, no new buffers
    assert "set_input_shape" not in [c[0] for c in calls]
    assert not [c for c in calls if c[0] in ("cudaMalloc", "cudaMallocHost")]
    with pytest.raises(ValueError, match="takes 128x160"):
        backend(np.zeros((1, 3, 64, 64), np.float32))
    backend.close()
    assert len(cudart.freed) == 8 and ("cudaStreamDestroy",) in calls


@needs_onnx
@needs_native
def test_trt_backend_through_the_detector_matches_onnxruntime(tmp_path, plugin_lib,
                                                              monkeypatch):
    """The double computes what the plugins compute (ORT raw heads + native decode/NMS);
    through TrtBackend's buffers and the Detector the detections equal the CPU path's."""
    from oscar_edge.backends.ort_backend import OrtBackend

    raw = OrtBackend(factory.SHIPPED_ONNX, threads=1)
    native = NativePostprocessor()

    def compute(x):
        num, boxes, scores = native.postprocess_batch_padded(raw(x), clamp_hw=None)
        return num.copy(), boxes.copy(), scores.copy()

    loaded = [False]
    calls, trt, cudart = make_doubles(compute, loaded)
    recording_cdll(monkeypatch, calls, loaded)
    backend = tb.TrtBackend(write_engine(tmp_path), plugins=plugin_lib, trt=trt, cudart=cudart)
    scene = SyntheticScene(160, 128, targets=4, seed=5)
    trt_det, cpu_det = Detector(backend), Detector(raw, input_size=(128, 160))
    for t in (0, 9):
        a, b = trt_det(scene.frame(t)), cpu_det(scene.frame(t))
        assert len(b.scores) > 0
        assert np.array_equal(a.boxes, b.boxes) and np.array_equal(a.scores, b.scores)


def test_trt_sidecar_checks(tmp_path, plugin_lib):
    with pytest.raises(tb.TrtEngineError, match="was built for mean 100.0"):
        tb.TrtBackend(write_engine(tmp_path, mean=100.0), plugins=plugin_lib,
                      trt=object(), cudart=object())
    with pytest.raises(tb.TrtEngineError, match="std"):
        tb.TrtBackend(write_engine(tmp_path, std=1.0), plugins=plugin_lib,
                      trt=object(), cudart=object())
    with pytest.raises(tb.TrtEngineError, match="does not record the normalisation"):
        tb.TrtBackend(write_engine(tmp_path, drop=("mean",)), plugins=plugin_lib,
                      trt=object(), cudart=object())
    engine = write_engine(tmp_path)
    (tmp_path / "model.engine.json").unlink()
    with pytest.raises(tb.TrtEngineError, match="sidecar not found"):
        tb.TrtBackend(engine, plugins=plugin_lib)
    dyn = tb.read_sidecar(tb.sidecar_path(write_engine(tmp_path, static=None)))
    assert dyn.input_size is None and dyn.max_hw == (1088, 1920) and dyn.fit_size == (1000, 600)


def test_trt_plugins_must_load_before_the_engine(tmp_path, monkeypatch):
    loaded = [False]
    calls, trt, cudart = make_doubles(lambda x: None, loaded)
    with pytest.raises(tb.TrtEngineError, match="plugin library not found"):
        tb.TrtBackend(write_engine(tmp_path), plugins=str(tmp_path / "none.so"), trt=trt,
                      cudart=cudart)
    assert "deserialize_cuda_engine" not in [c[0] for c in calls]
    # a library that loads but does not register the creators: stopped before deserialising
    from oscar_edge.native import default_library_path

    if default_library_path().is_file():
        with pytest.raises(tb.TrtEngineError, match="OscarDecode/1"):
            tb.TrtBackend(write_engine(tmp_path), plugins=str(default_library_path()),
                          trt=trt, cudart=cudart)
        assert "deserialize_cuda_engine" not in [c[0] for c in calls]


def test_trt_backend_without_tensorrt_is_one_clear_error(tmp_path, plugin_lib):
    if factory.tensorrt_available():
        pytest.skip("TensorRT is installed here")
    with pytest.raises(tb.TrtEngineError, match="needs the 'tensorrt' Python package"):
        tb.TrtBackend(write_engine(tmp_path), plugins=plugin_lib)
