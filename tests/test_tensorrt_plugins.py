"""TensorRT plugins OscarDecode / OscarNMS / OscarPeakRefine against the CPU twin and the golden
vectors.

The tests marked ``tensorrt`` build a tiny engine holding only the plugins (network inputs = the
five raw head tensors, and for OscarPeakRefine the image and the letterbox; dynamic batch and
spatial size), run it with cuda-python and compare with the CPU library; they skip, saying why,
without TensorRT, cuda-python, a GPU or the built plugin library. On a Jetson (see
cpp_plugins/README.md):

    PATH=/usr/local/cuda/bin:$PATH && pip install -e '.[test]' && \\
        cmake -S cpp_plugins -B build/plugins && cmake --build build/plugins -j4 && \\
        python -m pytest tests/test_tensorrt_plugins.py -m tensorrt -v

The plugin library is ``$OSCAR_EDGE_TRT_PLUGINS`` or build/plugins/liboscar_edge_trt_plugins.so.
The tests without the marker run everywhere: the golden files are replayed through the CPU
library and must match a fresh ``make_golden.py`` run; and the CUDA kernels, compiled by g++
in a host emulation (cpp_plugins/tests/cuda_emulation; needs g++ and the CUDA headers, not a
GPU), must give bit-identical outputs to the CPU library.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from oscar_edge import postprocess as pp
from oscar_edge.export.plugin_names import parse_header
from oscar_edge.native import NativePostprocessor

REPO = Path(__file__).resolve().parents[1]
GOLDEN = sorted((REPO / "cpp_plugins" / "golden").glob("*.npz"))
NAMES_HEADER = REPO / "cpp_plugins" / "common" / "oscar_plugin_names.h"
PLUGIN_LIB = Path(os.environ.get("OSCAR_EDGE_TRT_PLUGINS",
                                 REPO / "build" / "plugins" / "liboscar_edge_trt_plugins.so"))
INPUTS = pp.OUTPUT_NAMES
DECODE_OUT = ("decode_boxes", "decode_scores", "decode_count")
NMS_OUT = ("nms_num", "nms_boxes", "nms_scores")
REFINE_IN = ("image", "letterbox")
REFINE_OUT = ("refine_boxes",)


def plugin_names() -> dict:
    """The #define strings and numbers of cpp_plugins/common/oscar_plugin_names.h (the one
    parser: oscar_edge.export.plugin_names)."""
    return parse_header(NAMES_HEADER)


def load_golden(path: Path) -> dict:
    with np.load(path) as data:
        return {k: data[k] for k in data.files}


# -- everywhere: goldens vs the CPU library ----------------------------------------------------
def test_golden_files_exist_and_are_small():
    assert len(GOLDEN) >= 5
    assert sum(p.stat().st_size for p in GOLDEN) < 1_000_000


@pytest.mark.parametrize("path", GOLDEN, ids=[p.stem for p in GOLDEN])
def test_golden_vectors_replay_on_cpu_library(path):
    g = load_golden(path)
    native = NativePostprocessor()
    inputs = tuple(g[name].astype(np.float32) for name in INPUTS)
    boxes, scores, count = native.decode_batch(inputs, None, float(g["score_threshold"]),
                                               int(g["topk"]))
    np.testing.assert_array_equal(count, g["decode_count"])
    np.testing.assert_array_equal(boxes, g["decode_boxes"])
    np.testing.assert_array_equal(scores, g["decode_scores"])
    num, nb, ns, _ = native.nms_batch(boxes, scores, count, float(g["iou_threshold"]),
                                      int(g["max_detections"]))
    np.testing.assert_array_equal(num, g["nms_num"])
    np.testing.assert_array_equal(nb, g["nms_boxes"])
    np.testing.assert_array_equal(ns, g["nms_scores"])
    refined = native.peak_refine_batch(g["image"].astype(np.float32), nb, num, g["letterbox"],
                                       bool(g["centroid"]))
    np.testing.assert_array_equal(refined, g["refine_boxes"])


def test_golden_files_are_up_to_date():
    script = REPO / "cpp_plugins" / "golden" / "make_golden.py"
    run = subprocess.run([sys.executable, str(script), "--check"], capture_output=True, text=True,
                         cwd=REPO, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr


# -- everywhere with g++ and the CUDA headers: the CUDA kernels emulated on the CPU -------------
EMULATOR_SRC = REPO / "cpp_plugins" / "tests" / "cuda_emulation" / "oscar_kernels_emulated.cpp"


def cuda_include_dir():
    """A folder with cuda_runtime.h and cuda_fp16.h (no GPU needed), or None."""
    roots = [os.environ.get(v) for v in ("CUDA_HOME", "CUDA_PATH")]
    roots += sorted((str(p) for p in Path("/usr/local").glob("cuda*")), reverse=True) + ["/usr"]
    for root in filter(None, roots):
        inc = Path(root) / "include"
        if (inc / "cuda_runtime.h").is_file() and (inc / "cuda_fp16.h").is_file():
            return inc
    return None


class EmulatedKernels:
    """cpp_plugins/tests/cuda_emulation: the .cuh kernels compiled by g++, one std::thread per
    CUDA thread, std::barrier for __syncthreads (see the file's header)."""

    def __init__(self, lib_path: Path) -> None:
        import ctypes

        p, i = ctypes.c_void_p, ctypes.c_int
        self.lib = ctypes.CDLL(str(lib_path))
        f = ctypes.c_float
        self.lib.oscar_emu_decode.argtypes = [i] + [p] * 5 + [i] * 5 + [p, f, i, p, p, p]
        self.lib.oscar_emu_nms.argtypes = [i, p, p, p, i, i, f, i, p, p, p]
        self.lib.oscar_emu_peak_refine.argtypes = [i, p, i, i, i, i, p, p, i, p, i, p]

    def decode(self, inputs, score_threshold, topk):
        ins = [np.ascontiguousarray(a) for a in inputs]
        b, _, h4, w4 = ins[0].shape
        h8, w8 = ins[3].shape[2:]
        boxes = np.full((b, topk, 4), 7.0, np.float32)  # garbage that must be overwritten
        scores = np.full((b, topk), 7.0, np.float32)
        count = np.full((b,), -1, np.int32)
        rc = self.lib.oscar_emu_decode(
            int(ins[0].dtype == np.float16), *[a.ctypes.data for a in ins], b, h4, w4, h8, w8, None,
            score_threshold, topk, boxes.ctypes.data, scores.ctypes.data, count.ctypes.data)
        assert rc == 0
        return boxes, scores, count

    def nms(self, boxes, scores, count, iou_threshold, max_detections):
        boxes, scores = np.ascontiguousarray(boxes), np.ascontiguousarray(scores)
        count = np.ascontiguousarray(count, dtype=np.int32)
        b, k = scores.shape
        num = np.full((b,), -1, np.int32)
        out_boxes = np.full((b, max_detections, 4), 7.0, np.float32)
        out_scores = np.full((b, max_detections), 7.0, np.float32)
        rc = self.lib.oscar_emu_nms(
            int(boxes.dtype == np.float16), boxes.ctypes.data, scores.ctypes.data,
            count.ctypes.data, b, k, iou_threshold, max_detections, num.ctypes.data,
            out_boxes.ctypes.data, out_scores.ctypes.data)
        assert rc == 0
        return num, out_boxes, out_scores

    def peak_refine(self, image, boxes, num, letterbox, centroid):
        image = np.ascontiguousarray(image)
        boxes = np.ascontiguousarray(boxes, dtype=np.float32)
        num = np.ascontiguousarray(num, dtype=np.int32)
        lb = None if letterbox is None else np.ascontiguousarray(letterbox, dtype=np.float32)
        b, c, h, w = image.shape
        out = np.full(boxes.shape, 7.0, np.float32)  # garbage that must be overwritten
        rc = self.lib.oscar_emu_peak_refine(
            int(image.dtype == np.float16), image.ctypes.data, b, c, h, w, boxes.ctypes.data,
            num.ctypes.data, boxes.shape[1], None if lb is None else lb.ctypes.data,
            int(centroid), out.ctypes.data)
        assert rc == 0
        return out


@pytest.fixture(scope="module")
def emulated(tmp_path_factory) -> EmulatedKernels:
    import shutil

    cxx = shutil.which(os.environ.get("CXX", "g++")) or shutil.which("g++")
    inc = cuda_include_dir()
    if cxx is None or inc is None:
        pytest.skip("kernel emulation needs g++ and the CUDA headers (cuda_runtime.h, cuda_fp16.h)")
    out = tmp_path_factory.mktemp("emu") / "liboscar_kernels_emulated.so"
    cmd = [cxx, "-std=c++20", "-O2", "-pthread", "-shared", "-fPIC", "-ffp-contract=off", "-Wall",
           "-Wextra", "-Werror", f"-I{inc}", str(EMULATOR_SRC), "-o", str(out)]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, " ".join(cmd) + "\n" + run.stderr[-4000:]
    return EmulatedKernels(out)


def as_outputs(decoded, nms, refined=None) -> dict:
    out = dict(zip(DECODE_OUT + NMS_OUT, tuple(decoded) + tuple(nms)[:3]))
    if refined is not None:
        out["refine_boxes"] = refined
    return out


def reference_outputs(inputs, attrs) -> dict:
    """The plugins' expected outputs, from the CPU library (inputs cast to float32). With seven
    inputs (the five raw tensors, image, letterbox) and a ``centroid`` attribute, also
    OscarPeakRefine's."""
    native = NativePostprocessor()
    f32 = tuple(np.asarray(a, np.float32) for a in inputs)
    decoded = native.decode_batch(f32[:5], None, attrs["score_threshold"], int(attrs["topk"]))
    nms = native.nms_batch(*decoded, attrs["iou_threshold"], int(attrs["max_detections"]))
    refined = None
    if len(inputs) == 7 and "centroid" in attrs:
        refined = native.peak_refine_batch(f32[5], nms[1], nms[0], f32[6], bool(attrs["centroid"]))
    return as_outputs(decoded, nms, refined)


def run_emulated(emulated: EmulatedKernels, inputs, attrs) -> dict:
    decoded = emulated.decode(inputs[:5], attrs["score_threshold"], int(attrs["topk"]))
    nms = emulated.nms(*decoded, attrs["iou_threshold"], int(attrs["max_detections"]))
    refined = None
    if len(inputs) == 7 and "centroid" in attrs:
        refined = emulated.peak_refine(inputs[5], nms[1], nms[0], inputs[6], attrs["centroid"])
    return as_outputs(decoded, nms, refined)


def assert_bit_equal(got: dict, want: dict) -> None:
    for name in DECODE_OUT + NMS_OUT + REFINE_OUT:
        if name in want or name in got:
            np.testing.assert_array_equal(got[name], want[name], err_msg=name)


ATTRS = ("score_threshold", "topk", "iou_threshold", "max_detections", "centroid")


@pytest.mark.parametrize("path", GOLDEN, ids=[p.stem for p in GOLDEN])
def test_emulated_kernels_replay_golden_vectors(emulated, path):
    g = load_golden(path)
    attrs = {k: g[k].item() for k in ATTRS}
    got = run_emulated(emulated, tuple(g[name] for name in INPUTS + REFINE_IN), attrs)
    assert "refine_boxes" in got
    assert_bit_equal(got, {k: g[k] for k in DECODE_OUT + NMS_OUT + REFINE_OUT})


@pytest.mark.parametrize("seed, batch, channels, hw, m, centroid, dtype", [
    (0, 1, 3, (64, 96), 100, 1, np.float32),     # channel 0 of a 3-channel input
    (1, 3, 1, (96, 160), 37, 0, np.float32),     # midpoint of the tied maxima, batch 3
    (2, 2, 3, (128, 128), 100, 1, np.float16),   # FP16 image
    (3, 1, 3, (512, 640), 100, 1, np.float32),   # a 640x512 frame, large boxes too
])
def test_emulated_peak_refine_matches_cpu_library(emulated, seed, batch, channels, hw, m,
                                                  centroid, dtype):
    """The OscarPeakRefine kernel (g++-compiled, emulated) against the CPU twin, bit for bit:
    random boxes (inside, across the border, inverted, sub-pixel, whole image), quantised
    images (ties), contents smaller than the input, scales 0.5..4, counts below M."""
    rng = np.random.default_rng(seed)
    h, w = hw
    image = (np.round(rng.normal(0, 1, (batch, channels, h, w)) * 2) / 2).astype(dtype)
    image[:, 0, : h // 3] = np.asarray(2.5, dtype)  # a plateau of tied maxima
    boxes = rng.uniform(-20, max(h, w) + 20, (batch, m, 4)).astype(np.float32)
    boxes[..., 2:] = boxes[..., :2] + rng.uniform(-3, 40, (batch, m, 2)).astype(np.float32)
    boxes[:, :3] = np.float32([[-5, -5, w + 5, h + 5], [3.2, 4.1, 3.3, 4.15], [10, 10, 2, 3]])
    num = rng.integers(0, m + 1, batch).astype(np.int32)
    num[0] = m
    letterbox = np.stack([rng.integers(h // 2, h + 1, batch), rng.integers(w // 2, w + 1, batch),
                          rng.uniform(0.5, 4.0, batch), rng.uniform(0.5, 4.0, batch)],
                         axis=1).astype(np.float32)
    native = NativePostprocessor()
    for lb in (letterbox, None):
        want = native.peak_refine_batch(image.astype(np.float32), boxes, num, lb, bool(centroid))
        got = emulated.peak_refine(image, boxes, num, lb, centroid)
        np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))


def test_emulated_nms_with_fp16_candidates(emulated):
    """OscarNMS accepts FP16 boxes/scores: same result as the CPU library on the same values."""
    g = load_golden(REPO / "cpp_plugins" / "golden" / "fp32_b2_96x160.npz")
    boxes = g["decode_boxes"].astype(np.float16)
    scores = g["decode_scores"].astype(np.float16)
    got = emulated.nms(boxes, scores, g["decode_count"], 0.5, 100)
    want = NativePostprocessor().nms_batch(boxes.astype(np.float32), scores.astype(np.float32),
                                           g["decode_count"], 0.5, 100)
    for a, b in zip(got, want[:3]):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("seed, batch, hw, mean, quant, topk, iou, max_det", [
    (0, 1, (64, 96), -1.0, 0.0, 1000, 0.5, 100),     # fewer candidates than K
    (1, 2, (96, 160), 0.5, 0.5, 64, 0.5, 100),       # more than K, many equal scores at the cut
    (4, 1, (128, 128), 2.0, 1.0, 1000, 0.3, 500),    # radix select + ties, long NMS walk
    (5, 1, (64, 64), 3.0, 1.0, 7, 0.5, 100),         # all scores equal
    (6, 1, (1024, 1280), -1.5, 0.0, 1000, 0.5, 100), # K = 1000 on a 320x256 P2 grid
])
def test_emulated_kernels_match_cpu_library(emulated, seed, batch, hw, mean, quant, topk, iou,
                                            max_det):
    rng = np.random.default_rng(seed)
    h4, w4, h8, w8 = hw[0] // 4, hw[1] // 4, hw[0] // 8, hw[1] // 8

    def logits(shape):
        x = rng.normal(mean, 2.0 if quant == 0 or mean < 3 else 0.01, (batch,) + shape)
        return (np.round(x / quant) * quant if quant else x).astype(np.float32)

    inputs = (logits((1, h4, w4)), rng.normal(0, 1, (batch, 4, h4, w4)).astype(np.float32),
              logits((1, h4, w4)), logits((1, h8, w8)),
              np.log(rng.uniform(0.25, 24, (batch, 4, h8, w8))).astype(np.float32))
    attrs = dict(score_threshold=pp.SCORE_THR, topk=topk, iou_threshold=iou, max_detections=max_det)
    want = reference_outputs(inputs, attrs)
    assert_bit_equal(run_emulated(emulated, inputs, attrs), want)


# -- TensorRT ----------------------------------------------------------------------------------
class Gpu:
    """TensorRT + cuda-python + the plugin library, loaded once."""

    def __init__(self) -> None:
        try:
            import tensorrt as trt
        except ImportError:
            pytest.skip("TensorRT's Python package (tensorrt) is not installed")
        try:
            from cuda.bindings import runtime as cudart
        except ImportError:
            try:
                from cuda import cudart
            except ImportError:
                pytest.skip("cuda-python is not installed (pip install cuda-python)")
        err, n = cudart.cudaGetDeviceCount()
        if int(err) != 0 or n < 1:
            pytest.skip(f"no usable CUDA GPU (cudaGetDeviceCount: {err}, {n} devices)")
        if not PLUGIN_LIB.is_file():
            pytest.skip(f"plugin library {PLUGIN_LIB} not built (cmake -S cpp_plugins -B "
                        "build/plugins && cmake --build build/plugins) or set "
                        "OSCAR_EDGE_TRT_PLUGINS")
        self.trt, self.cudart = trt, cudart
        self.logger = trt.Logger(trt.Logger.WARNING)
        # The library registers its creators when it is loaded (static registration, as
        # REGISTER_TENSORRT_PLUGIN; NVIDIA's onnx_custom_plugin sample loads it the same way).
        # registry.load_library() is the *dynamic* plugin path (exported getCreators /
        # setLoggerFinder), which this library does not implement (see cpp_plugins/README.md).
        import ctypes

        self.plugin_lib = ctypes.CDLL(str(PLUGIN_LIB))
        registry = trt.get_plugin_registry()
        names = plugin_names()
        self.ns = names["OSCAR_PLUGIN_NAMESPACE"]
        self.decode_creator = registry.get_creator(names["OSCAR_DECODE_PLUGIN_NAME"],
                                                   names["OSCAR_DECODE_PLUGIN_VERSION"], self.ns)
        self.nms_creator = registry.get_creator(names["OSCAR_NMS_PLUGIN_NAME"],
                                                names["OSCAR_NMS_PLUGIN_VERSION"], self.ns)
        self.peak_creator = registry.get_creator(names["OSCAR_PEAK_REFINE_PLUGIN_NAME"],
                                                 names["OSCAR_PEAK_REFINE_PLUGIN_VERSION"], self.ns)
        if self.decode_creator is None or self.nms_creator is None or self.peak_creator is None:
            keys = ("name", "plugin_version", "plugin_namespace")
            listed = [tuple(getattr(c, k, "?") for k in keys)
                      for c in getattr(registry, "all_creators", [])]
            pytest.fail(f"plugin creators not found in namespace {self.ns!r} after loading "
                        f"{PLUGIN_LIB}; registered: {listed}")
        self.names = names

    def check(self, result):
        err = result[0] if isinstance(result, tuple) else result
        if int(err) != 0:
            raise RuntimeError(f"CUDA error {err}")
        return result[1] if isinstance(result, tuple) and len(result) == 2 else result

    def build(self, dtype, max_batch, max_hw, attrs, image=None) -> bytes:
        """Decode + NMS on the five raw inputs; with ``image`` (an example [B, C, H, W] array:
        its dtype and channels) and ``attrs["centroid"]`` also OscarPeakRefine on the inputs
        ``image`` and ``letterbox``."""
        trt = self.trt
        flags = 0
        if hasattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED"):
            flags |= 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
        builder = trt.Builder(self.logger)
        network = builder.create_network(flags)
        ttype = trt.float16 if dtype == np.float16 else trt.float32
        chans = (1, 4, 1, 1, 4)
        tensors = []
        profile = builder.create_optimization_profile()
        for name, c, level in zip(INPUTS, chans, (4, 4, 4, 8, 8)):
            tensors.append(network.add_input(name, ttype, (-1, c, -1, -1)))
            mx = (max_batch, c, max_hw[0] // level, max_hw[1] // level)
            profile.set_shape(name, (1, c, 32 // level, 32 // level), mx, mx)
        f = lambda name, value, t: trt.PluginField(name, np.array([value], dtype=t),  # noqa: E731
                                                   trt.PluginFieldType.FLOAT32 if t == np.float32
                                                   else trt.PluginFieldType.INT32)
        n = self.names
        decode = self.decode_creator.create_plugin("oscar_decode", trt.PluginFieldCollection([
            f(n["OSCAR_DECODE_ATTR_SCORE_THRESHOLD"], attrs["score_threshold"], np.float32),
            f(n["OSCAR_DECODE_ATTR_TOPK"], attrs["topk"], np.int32)]), trt.TensorRTPhase.BUILD)
        nms = self.nms_creator.create_plugin("oscar_nms", trt.PluginFieldCollection([
            f(n["OSCAR_NMS_ATTR_IOU_THRESHOLD"], attrs["iou_threshold"], np.float32),
            f(n["OSCAR_NMS_ATTR_MAX_DETECTIONS"], attrs["max_detections"], np.int32)]),
            trt.TensorRTPhase.BUILD)
        assert decode is not None and nms is not None
        dl = network.add_plugin_v3(tensors, [], decode)
        nl = network.add_plugin_v3([dl.get_output(0), dl.get_output(1), dl.get_output(2)], [], nms)
        layers = [(dl, DECODE_OUT), (nl, NMS_OUT)]
        if image is not None:
            itype = trt.float16 if image.dtype == np.float16 else trt.float32
            c = image.shape[1]
            img = network.add_input("image", itype, (-1, c, -1, -1))
            lbt = network.add_input("letterbox", trt.float32, (-1, 4))
            mx = (max_batch, c, max_hw[0], max_hw[1])
            profile.set_shape("image", (1, c, 32, 32), mx, mx)
            profile.set_shape("letterbox", (1, 4), (max_batch, 4), (max_batch, 4))
            peak = self.peak_creator.create_plugin("oscar_peak_refine", trt.PluginFieldCollection([
                f(n["OSCAR_PEAK_REFINE_ATTR_CENTROID"], attrs["centroid"], np.int32)]),
                trt.TensorRTPhase.BUILD)
            assert peak is not None
            pl = network.add_plugin_v3([img, nl.get_output(1), nl.get_output(0), lbt], [], peak)
            layers.append((pl, REFINE_OUT))
        for layer, names in layers:
            for i, name in enumerate(names):
                out = layer.get_output(i)
                out.name = name
                network.mark_output(out)
        config = builder.create_builder_config()
        config.add_optimization_profile(profile)
        plan = builder.build_serialized_network(network, config)
        assert plan is not None, "engine build failed (see the TensorRT log above)"
        return bytes(plan)

    def run(self, plan: bytes, inputs) -> dict:
        """inputs: the five raw tensors (+ image, letterbox for an engine with the refinement)."""
        trt, cudart = self.trt, self.cudart
        # Deserializing calls createPlugin(kRUNTIME) with the getFieldsToSerialize fields.
        runtime = trt.Runtime(self.logger)  # kept alive while the engine is used
        engine = runtime.deserialize_cuda_engine(plan)
        assert engine is not None, "engine deserialization failed (see the TensorRT log)"
        ctx = engine.create_execution_context()
        stream = self.check(cudart.cudaStreamCreate())
        buffers, host_out = [], {}
        try:
            in_names = INPUTS + (REFINE_IN if len(inputs) == 7 else ())
            out_names = DECODE_OUT + NMS_OUT + (REFINE_OUT if len(inputs) == 7 else ())
            for name, arr in zip(in_names, inputs):
                arr = np.ascontiguousarray(arr)
                ctx.set_input_shape(name, arr.shape)
                ptr = self.check(cudart.cudaMalloc(max(arr.nbytes, 1)))
                buffers.append(ptr)
                self.check(cudart.cudaMemcpy(ptr, arr.ctypes.data, arr.nbytes,
                                             cudart.cudaMemcpyKind.cudaMemcpyHostToDevice))
                ctx.set_tensor_address(name, ptr)
            for name in out_names:
                shape = tuple(ctx.get_tensor_shape(name))
                dtype = np.int32 if name in ("decode_count", "nms_num") else np.float32
                host_out[name] = np.zeros(shape, dtype)
                ptr = self.check(cudart.cudaMalloc(max(host_out[name].nbytes, 1)))
                buffers.append(ptr)
                ctx.set_tensor_address(name, ptr)
            assert ctx.execute_async_v3(int(stream))
            self.check(cudart.cudaStreamSynchronize(stream))
            for name in out_names:
                arr = host_out[name]
                d2h = cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
                self.check(cudart.cudaMemcpy(arr.ctypes.data, ctx.get_tensor_address(name),
                                             arr.nbytes, d2h))
        finally:
            for ptr in buffers:
                cudart.cudaFree(ptr)
            cudart.cudaStreamDestroy(stream)
        return host_out


@pytest.fixture(scope="module")
def gpu() -> Gpu:
    return Gpu()


def assert_outputs_equal(got: dict, want: dict) -> None:
    for name in ("decode_count", "nms_num"):
        np.testing.assert_array_equal(got[name], want[name], err_msg=name)
    floats = ("decode_boxes", "decode_scores", "nms_boxes", "nms_scores") + \
        (REFINE_OUT if "refine_boxes" in want else ())
    for name in floats:
        np.testing.assert_allclose(got[name], want[name], rtol=0, atol=1e-5, err_msg=name)
    # Same arithmetic by construction (oscar_math.h): expect bit equality, report it if not.
    for name in ("decode_scores", "nms_scores") + (REFINE_OUT if "refine_boxes" in want else ()):
        assert np.array_equal(got[name], want[name]), f"{name} equal to 1e-5 but not bit-identical"


@pytest.mark.tensorrt
@pytest.mark.parametrize("path", GOLDEN, ids=[p.stem for p in GOLDEN])
def test_plugins_replay_golden_vectors(gpu, path):
    g = load_golden(path)
    inputs = tuple(g[name] for name in INPUTS + REFINE_IN)
    attrs = {k: g[k].item() for k in ATTRS}
    b, _, h4, w4 = inputs[0].shape
    plan = gpu.build(inputs[0].dtype.type, max(b, 4), (4 * h4 + 64, 4 * w4 + 64), attrs,
                     image=g["image"])
    assert_outputs_equal(gpu.run(plan, inputs), g)


@pytest.mark.tensorrt
@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_plugins_match_cpu_library_on_a_320x256_grid(gpu, dtype):
    """K = 1000 on the largest grid the brief names (P2 320x256, a 1280x1024 input), batch 2,
    and the same engine again at another batch and spatial size (dynamic shapes)."""
    rng = np.random.default_rng(11)
    attrs = dict(score_threshold=pp.SCORE_THR, topk=1000, iou_threshold=pp.IOU_THR,
                 max_detections=100)
    plan = gpu.build(dtype, 2, (1024, 1280), attrs)
    for batch, hw in ((2, (1024, 1280)), (1, (96, 160))):
        h4, w4, h8, w8 = hw[0] // 4, hw[1] // 4, hw[0] // 8, hw[1] // 8
        inputs = tuple(a.astype(dtype) for a in (
            rng.normal(-1.5, 2.0, (batch, 1, h4, w4)), rng.normal(0, 1, (batch, 4, h4, w4)),
            rng.normal(0, 2, (batch, 1, h4, w4)), rng.normal(0, 2, (batch, 1, h8, w8)),
            np.log(rng.uniform(0.25, 24, (batch, 4, h8, w8)))))
        want = reference_outputs(inputs, attrs)
        if hw[0] == 1024:
            assert (want["decode_count"] == 1000).all()  # more candidates than K
        assert_outputs_equal(gpu.run(plan, inputs), want)


@pytest.mark.tensorrt
def test_plugin_fields_round_trip(gpu):
    """getFieldsToSerialize -> createPlugin(kRUNTIME) keeps the attributes (through run())."""
    g = load_golden(GOLDEN[0])
    attrs = dict(score_threshold=0.3, topk=17, iou_threshold=0.2, max_detections=7,
                 centroid=1 - int(g["centroid"]))
    inputs = tuple(g[name].astype(np.float32) for name in INPUTS + REFINE_IN)
    b, _, h4, w4 = inputs[0].shape
    got = gpu.run(gpu.build(np.float32, b, (4 * h4, 4 * w4), attrs, image=inputs[5]), inputs)
    assert got["decode_boxes"].shape == (b, 17, 4) and got["nms_boxes"].shape == (b, 7, 4)
    assert got["refine_boxes"].shape == (b, 7, 4)
    assert_outputs_equal(got, reference_outputs(inputs, attrs))
