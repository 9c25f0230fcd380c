"""TensorRT engine backend (Jetson): an engine that ends in the OscarDecode / OscarNMS plugins.

    backend = TrtBackend("model.engine")          # reads model.engine.json, loads the plugins
    num, boxes, scores = backend(x)               # x (1, 3, H, W) float32
    detector = Detector(backend)                  # clamps to the image, maps back to pixels

Written against the TensorRT 10.x / 11.x Python API, tensor-name calls only
(``num_io_tensors``, ``get_tensor_name``, ``get_tensor_mode``, ``get_tensor_dtype``,
``set_input_shape``, ``get_tensor_shape``, ``set_tensor_address``, ``execute_async_v3``), and
cuda-python's runtime bindings (``cuda.bindings.runtime``; ``from cuda import cudart`` for
cuda-python releases before 12.6) for pinned host buffers, device buffers and one stream, as
NVIDIA's ``samples/python/common_runtime.py`` does. Neither is importable on the project's
build machine (no GPU, no TensorRT): **this file has not run against real TensorRT**; the tests
check its call sequence and data flow with a test double of both modules
(``tests/test_run_backends.py``).

Per call: copy the input into pinned memory, one ``cudaMemcpyAsync`` host->device, set every
tensor address, ``execute_async_v3`` on the stream, ``cudaMemcpyAsync`` device->host for the
three outputs, ``cudaStreamSynchronize``. Buffers are allocated for the first shape seen and
grown (never shrunk) when a larger one comes.

The engine's JSON sidecar (``<engine>.json``, e.g. ``model.engine.json``, written by
``export/build_engine.py``) says how to prepare frames; the fields read here:

    {"format": "oscar-edge TensorRT engine sidecar v1", "precision": "fp16",
     "input": {"name": "image", "min_shape": [1,3,256,320], "opt_shape": [1,3,512,640],
               "max_shape": [4,3,1088,1920], "size_divisor": 32},
     "preprocess": {"mean": 111.89, "std": 27.62, "channels": 3, "fit_size": [1000, 600]},
     "outputs": {"num_detections": {...}, "boxes": {"shape": ["B", 100, 4]}, "scores": {...}},
     "plugins": {"library": "...", "namespace": "", "OscarDecode": {"version": "1", ...},
                 "OscarNMS": {"version": "1", ...}}, "tensorrt_version": "10.3.0"}

A sidecar without mean / std, or whose mean / std / channels / size divisor differ from
``oscar_edge.preprocess``, is refused. A static profile (min = max height and width) fixes the
network input: frames are letterboxed into it. A dynamic one takes the keep-ratio fit of
``fit_size`` as on the CPU, and the shape must lie inside the profile.

The plugin library must be loaded before the engine is deserialised: ``plugins`` argument, else
``$OSCAR_EDGE_TRT_PLUGINS``, else the sidecar's ``plugins.library`` when that file exists, else
``build/plugins/liboscar_edge_trt_plugins.so`` of the checkout. It is loaded with
``ctypes.CDLL`` (its static initialiser registers the creators with TensorRT's plugin registry);
the creators named in the sidecar are then looked up in the registry, so a wrong library fails
with a clear message instead of a failed deserialisation.
"""
from __future__ import annotations

import ctypes
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np

from ..errors import UserError
from ..preprocess import FIT_SIZE, IN_CHANNELS, MEAN, SIZE_DIVISOR, STD

PLUGIN_ENV = "OSCAR_EDGE_TRT_PLUGINS"
PLUGIN_FILENAME = "liboscar_edge_trt_plugins.so"
SIDECAR_FORMAT = "oscar-edge TensorRT engine sidecar v1"
OUTPUT_ROLES = ("num_detections", "boxes", "scores")
LETTERBOX_INPUT = "letterbox"  # oscar_edge.export.plugin_graph.LETTERBOX_NAME
_REPO = Path(__file__).resolve().parents[2]


class TrtEngineError(UserError):
    """The engine, its sidecar, the plugins, TensorRT or CUDA are missing or do not fit."""


# --------------------------------------------------------------------------------------------
# Sidecar
# --------------------------------------------------------------------------------------------
@dataclass
class EngineSidecar:
    input_name: str = "image"
    input_size: Optional[Tuple[int, int]] = None       # static profile: (height, width)
    min_hw: Optional[Tuple[int, int]] = None            # dynamic profile bounds
    max_hw: Optional[Tuple[int, int]] = None
    fit_size: Tuple[int, int] = FIT_SIZE
    output_names: Tuple[str, str, str] = OUTPUT_ROLES
    precision: str = "unknown"
    plugin_library: Optional[str] = None
    plugin_versions: Dict[str, str] = field(default_factory=dict)
    plugin_namespace: str = ""
    raw: Dict[str, object] = field(default_factory=dict)


def sidecar_path(engine_path: str | os.PathLike) -> Path:
    """``model.engine`` -> ``model.engine.json``."""
    p = Path(engine_path)
    return p.with_name(p.name + ".json")


def _close(a: float, b: float) -> bool:
    return abs(a - b) <= 1e-6 * max(1.0, abs(b))


def _shape(value, what: str, path: Path) -> Tuple[int, ...]:
    try:
        shape = tuple(int(v) for v in value)
    except (TypeError, ValueError):
        raise TrtEngineError(f"engine sidecar {path}: {what} {value!r} is not a shape") from None
    if len(shape) != 4:
        raise TrtEngineError(f"engine sidecar {path}: {what} {list(shape)} is not NCHW")
    return shape


def read_sidecar(path: str | os.PathLike) -> EngineSidecar:
    """Parse and check an engine sidecar; TrtEngineError names the problem."""
    path = Path(path)
    if not path.is_file():
        raise TrtEngineError(f"engine sidecar not found: {path} (export/build_engine.py writes "
                             "it beside the engine; it records the preprocessing the engine "
                             "expects)")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise TrtEngineError(f"cannot read engine sidecar {path}: {exc}") from None
    if not isinstance(raw, dict):
        raise TrtEngineError(f"engine sidecar {path} is not a JSON object")
    fmt = raw.get("format")
    if fmt != SIDECAR_FORMAT:
        raise TrtEngineError(f"engine sidecar {path} has format {fmt!r}; expected "
                             f"{SIDECAR_FORMAT!r}")
    pre = raw.get("preprocess") or {}
    inp = raw.get("input") or {}
    for key, mine in (("mean", MEAN), ("std", STD)):
        if key not in pre:
            raise TrtEngineError(f"engine sidecar {path} does not record the normalisation "
                                 f"preprocess.{key}; refusing to guess")
        try:
            theirs = float(pre[key])
        except (TypeError, ValueError):
            raise TrtEngineError(f"engine sidecar {path}: preprocess.{key} {pre[key]!r} is not "
                                 "a number") from None
        if not _close(theirs, mine):
            raise TrtEngineError(f"engine {path.name[:-5]} was built for {key} {theirs}, but "
                                 f"this oscar_edge preprocesses with {key} {mine}")
    for where, key, mine in ((pre, "channels", IN_CHANNELS), (inp, "size_divisor", SIZE_DIVISOR)):
        if key in where and int(where[key]) != mine:
            raise TrtEngineError(f"engine sidecar {path}: {key} {where[key]} differs from this "
                                 f"oscar_edge's {mine}")
    if "min_shape" not in inp or "max_shape" not in inp:
        raise TrtEngineError(f"engine sidecar {path} has no input.min_shape / max_shape")
    mn = _shape(inp["min_shape"], "input.min_shape", path)
    mx = _shape(inp["max_shape"], "input.max_shape", path)
    input_size = mx[2:] if mn[2:] == mx[2:] else None
    fit = pre.get("fit_size", list(FIT_SIZE))
    outputs = raw.get("outputs") or {}
    missing = [r for r in OUTPUT_ROLES if r not in outputs]
    if missing:
        raise TrtEngineError(f"engine sidecar {path}: no output(s) {', '.join(missing)}; the "
                             "runtime needs an engine ending in the OscarNMS plugin")
    plugins = raw.get("plugins") or {}
    versions = {k: str(v.get("version", "1")) for k, v in plugins.items()
                if isinstance(v, dict) and "version" in v}
    return EngineSidecar(
        input_name=str(inp.get("name", "image")), input_size=input_size,
        min_hw=(mn[2], mn[3]), max_hw=(mx[2], mx[3]), fit_size=(int(fit[0]), int(fit[1])),
        output_names=OUTPUT_ROLES, precision=str(raw.get("precision", "unknown")),
        plugin_library=plugins.get("library"), plugin_versions=versions,
        plugin_namespace=str(plugins.get("namespace", "")), raw=raw)


# --------------------------------------------------------------------------------------------
# Imports and the plugin library
# --------------------------------------------------------------------------------------------
def import_tensorrt():
    try:
        import tensorrt  # noqa: F401  (JetPack: python3-libnvinfer; desktop: pip tensorrt)
    except ImportError as exc:
        raise TrtEngineError(f"the TensorRT backend needs the 'tensorrt' Python package ({exc}); "
                             "on a Jetson it comes with JetPack (python3-libnvinfer), or use "
                             "--backend onnxruntime") from None
    return tensorrt


def import_cudart():
    try:
        from cuda.bindings import runtime as cudart  # cuda-python >= 12.6
    except ImportError:
        try:
            from cuda import cudart  # type: ignore[no-redef]  # older cuda-python 12.x
        except ImportError:
            raise TrtEngineError("the TensorRT backend needs cuda-python (pip install "
                                 "'cuda-python>=12.6,<13' on JetPack 6, 13.x on JetPack 7)") \
                from None
    return cudart


def default_plugin_path(sidecar_library: Optional[str] = None) -> Path:
    """``$OSCAR_EDGE_TRT_PLUGINS``, else the sidecar's library when it exists, else the
    checkout's ``build/plugins`` library (or one beside the package)."""
    env = os.environ.get(PLUGIN_ENV)
    if env:
        return Path(env)
    if sidecar_library and Path(sidecar_library).is_file():
        return Path(sidecar_library)
    for candidate in (_REPO / "build" / "plugins" / PLUGIN_FILENAME,
                      Path(__file__).resolve().parents[1] / PLUGIN_FILENAME):
        if candidate.is_file():
            return candidate
    return _REPO / "build" / "plugins" / PLUGIN_FILENAME


def load_plugin_library(path: Optional[str | os.PathLike] = None,
                        sidecar_library: Optional[str] = None) -> ctypes.CDLL:
    """Load the OscarDecode / OscarNMS plugin library (registers the plugin creators)."""
    lib = Path(path) if path is not None else default_plugin_path(sidecar_library)
    if not lib.is_file():
        raise TrtEngineError(f"TensorRT plugin library not found: {lib} (build cpp_plugins with "
                             f"CMake on the target, or set {PLUGIN_ENV})")
    try:
        return ctypes.CDLL(str(lib), mode=ctypes.RTLD_GLOBAL)
    except OSError as exc:
        raise TrtEngineError(f"cannot load TensorRT plugin library {lib}: {exc}") from None


# --------------------------------------------------------------------------------------------
# CUDA helpers
# --------------------------------------------------------------------------------------------
def _cuda_check(cudart, result, what: str):
    """cuda-python calls return (error, *values): raise on error, return the value(s)."""
    err, rest = result[0], result[1:]
    if err != cudart.cudaError_t.cudaSuccess:
        try:
            name = cudart.cudaGetErrorName(err)[1]
            name = name.decode() if isinstance(name, bytes) else str(name)
        except Exception:  # pragma: no cover - best effort message
            name = str(err)
        raise TrtEngineError(f"CUDA error in {what}: {name}")
    if not rest:
        return None
    return rest[0] if len(rest) == 1 else rest


class _Buffer:
    """Pinned host memory (numpy view) + device memory of the same size."""

    def __init__(self, cudart, nbytes: int) -> None:
        self.cudart = cudart
        self.nbytes = int(max(nbytes, 1))
        self.host_ptr = int(_cuda_check(cudart, cudart.cudaMallocHost(self.nbytes),
                                        "cudaMallocHost"))
        self.device_ptr = int(_cuda_check(cudart, cudart.cudaMalloc(self.nbytes), "cudaMalloc"))

    def host_view(self, shape: Tuple[int, ...], dtype) -> np.ndarray:
        dtype = np.dtype(dtype)
        count = int(np.prod(shape)) if shape else 1
        raw = (ctypes.c_byte * (count * dtype.itemsize)).from_address(self.host_ptr)
        return np.frombuffer(raw, dtype=dtype, count=count).reshape(shape)

    def free(self) -> None:
        if self.device_ptr:
            self.cudart.cudaFree(self.device_ptr)
            self.device_ptr = 0
        if self.host_ptr:
            self.cudart.cudaFreeHost(self.host_ptr)
            self.host_ptr = 0


# --------------------------------------------------------------------------------------------
# The backend
# --------------------------------------------------------------------------------------------
class TrtBackend:
    """A TensorRT engine ending in OscarNMS: ``(B, 3, H, W)`` float32 ->
    ``(num_detections [B] int32, boxes [B, M, 4] float32, scores [B, M] float32)``.

    ``trt`` / ``cudart``: the modules to use (default: import ``tensorrt`` and cuda-python);
    the tests pass a test double here."""

    name = "tensorrt"
    output_kind = "detections"  # oscar_edge.backends.base.FINAL_DETECTIONS

    def __init__(self, engine_path: str | os.PathLike, plugins: Optional[str] = None,
                 sidecar: Optional[str | os.PathLike] = None, *, trt=None, cudart=None) -> None:
        self.engine_path = Path(engine_path)
        if not self.engine_path.is_file():
            raise TrtEngineError(f"TensorRT engine not found: {self.engine_path}")
        self.sidecar = read_sidecar(sidecar or sidecar_path(self.engine_path))
        self.input_size = self.sidecar.input_size
        self.fit_size = self.sidecar.fit_size
        self.precision = self.sidecar.precision
        self.trt = trt if trt is not None else import_tensorrt()
        self.cudart = cudart if cudart is not None else import_cudart()
        # The plugin library before anything is deserialised.
        self.plugin_library = load_plugin_library(plugins, self.sidecar.plugin_library)
        self._buffers: Dict[str, _Buffer] = {}
        self._stream = None
        self._in_shape: Optional[Tuple[int, ...]] = None
        self._out_shapes: Dict[str, Tuple[int, ...]] = {}
        self._closed = False
        trt_ = self.trt
        self.logger = trt_.Logger(trt_.Logger.WARNING)
        if hasattr(trt_, "init_libnvinfer_plugins"):
            trt_.init_libnvinfer_plugins(self.logger, "")
        self._check_creators()
        self.runtime = trt_.Runtime(self.logger)
        data = self.engine_path.read_bytes()
        self.engine = self.runtime.deserialize_cuda_engine(data)
        if self.engine is None:
            raise TrtEngineError(
                f"TensorRT could not deserialise {self.engine_path} (see its log above: an "
                "engine built by another TensorRT version or for another GPU, or a plugin that "
                "is not registered - is the plugin library the one it was built with?)")
        self.context = self.engine.create_execution_context()
        if self.context is None:
            raise TrtEngineError(f"cannot create an execution context for {self.engine_path} "
                                 "(out of GPU memory?)")
        self._inspect()
        self._stream = _cuda_check(self.cudart, self.cudart.cudaStreamCreate(),
                                   "cudaStreamCreate")

    def _check_creators(self) -> None:
        """The sidecar's plugins must be registered now (else deserialising fails with
        TensorRT's "Plugin not found" deep in its log)."""
        get_registry = getattr(self.trt, "get_plugin_registry", None)
        if get_registry is None or not self.sidecar.plugin_versions:
            return
        registry = get_registry()
        ns = self.sidecar.plugin_namespace
        missing = [f"{name}/{version}" for name, version in self.sidecar.plugin_versions.items()
                   if registry.get_creator(name, version, ns) is None]
        if missing:
            raise TrtEngineError(f"plugin creator(s) {', '.join(missing)} (namespace {ns!r}) not "
                                 "registered after loading the plugin library: is it the library "
                                 "the engine was built with?")

    # -- engine I/O --------------------------------------------------------------------------
    def _inspect(self) -> None:
        trt_ = self.trt
        names: List[str] = [self.engine.get_tensor_name(i)
                            for i in range(self.engine.num_io_tensors)]
        inputs = [n for n in names if self.engine.get_tensor_mode(n) == trt_.TensorIOMode.INPUT]
        outputs = [n for n in names if n not in inputs]
        want_in = self.sidecar.input_name
        # An engine ending in OscarPeakRefine (cpp_plugins/README.md, "OscarPeakRefine
        # (rule 6)") has a second input, the per-frame
        # letterbox row [B, 4] (Letterbox.tensor()); Detector then passes it to __call__.
        self.peak_refine = inputs == [want_in, LETTERBOX_INPUT]
        if inputs != [want_in] and not self.peak_refine:
            raise TrtEngineError(f"{self.engine_path}: expected the input {want_in!r} (and "
                                 f"{LETTERBOX_INPUT!r} for the peak refinement), the engine has "
                                 f"{inputs}")
        missing = [n for n in self.sidecar.output_names if n not in outputs]
        if missing:
            raise TrtEngineError(
                f"{self.engine_path}: no output(s) {', '.join(missing)} (engine outputs: "
                f"{', '.join(outputs)}); is it built with the OscarDecode / OscarNMS plugins at "
                "the end?")
        self.input_name = want_in
        self.output_names = list(self.sidecar.output_names)
        self.io_names = names
        self.dtypes = {n: np.dtype(trt_.nptype(self.engine.get_tensor_dtype(n))) for n in names}

    def _buffer(self, name: str, nbytes: int) -> _Buffer:
        buf = self._buffers.get(name)
        if buf is None or buf.nbytes < nbytes:
            if buf is not None:
                buf.free()
            buf = _Buffer(self.cudart, nbytes)
            self._buffers[name] = buf
        return buf

    def _set_shape(self, shape: Tuple[int, ...]) -> None:
        if self.context.set_input_shape(self.input_name, shape) is False:
            raise ValueError(f"{self.engine_path}: input shape {shape} is outside the engine's "
                             "optimisation profile")
        if self.peak_refine and \
                self.context.set_input_shape(LETTERBOX_INPUT, (shape[0], 4)) is False:
            raise ValueError(f"{self.engine_path}: letterbox batch {shape[0]} is outside the "
                             "engine's optimisation profile")
        self._in_shape = shape
        self._out_shapes = {}
        for n in self.output_names:
            s = tuple(int(d) for d in self.context.get_tensor_shape(n))
            if any(d < 0 for d in s):
                raise ValueError(f"{self.engine_path}: output {n} has an unresolved shape {s}")
            self._out_shapes[n] = s

    def __call__(self, x: np.ndarray, letterbox: Optional[np.ndarray] = None
                 ) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``letterbox`` [B, 4] (content height, content width, scale_y, scale_x per image) feeds
        an engine with the peak refinement; None there means the whole input at scale 1."""
        if self._closed:
            raise RuntimeError("TrtBackend is closed")
        x = np.asarray(x)
        if x.ndim != 4 or x.shape[1] != IN_CHANNELS:
            raise ValueError(f"expected a (B, {IN_CHANNELS}, H, W) batch, got shape {x.shape}")
        if self.input_size is not None and tuple(x.shape[2:]) != self.input_size:
            raise ValueError(f"{self.engine_path.name} takes {self.input_size[0]}x"
                             f"{self.input_size[1]} inputs, got {x.shape[2]}x{x.shape[3]}")
        lo, hi = self.sidecar.min_hw, self.sidecar.max_hw
        if lo and hi and not (lo[0] <= x.shape[2] <= hi[0] and lo[1] <= x.shape[3] <= hi[1]):
            raise TrtEngineError(
                f"input {x.shape[2]}x{x.shape[3]} (height x width) is outside the engine's "
                f"profile {lo[0]}x{lo[1]} .. {hi[0]}x{hi[1]}; rebuild the engine with a wider "
                "profile, or pass --input-size inside it")
        cudart = self.cudart
        shape = tuple(int(d) for d in x.shape)
        if shape != self._in_shape:
            self._set_shape(shape)
        lb_buf = None
        if self.peak_refine:
            lb = (np.tile(np.float32([shape[2], shape[3], 1.0, 1.0]), (shape[0], 1))
                  if letterbox is None else np.asarray(letterbox, np.float32).reshape(-1, 4))
            if lb.shape != (shape[0], 4):
                raise ValueError(f"letterbox must be [{shape[0]}, 4], got {lb.shape}")
            lb_buf = self._buffer(LETTERBOX_INPUT, lb.nbytes)
            np.copyto(lb_buf.host_view(lb.shape, np.float32), lb)
        in_dtype = self.dtypes[self.input_name]
        in_buf = self._buffer(self.input_name, math.prod(shape) * in_dtype.itemsize)
        np.copyto(in_buf.host_view(shape, in_dtype), x, casting="same_kind")
        out_bufs = {}
        for n in self.output_names:
            s = self._out_shapes[n]
            out_bufs[n] = self._buffer(n, math.prod(s) * self.dtypes[n].itemsize)
        for n in self.io_names:
            buf = in_buf if n == self.input_name else \
                lb_buf if n == LETTERBOX_INPUT and lb_buf is not None else out_bufs.get(n)
            if buf is None:  # an extra output the runtime does not read still needs memory
                s = tuple(int(d) for d in self.context.get_tensor_shape(n))
                buf = self._buffer(n, math.prod(s) * self.dtypes[n].itemsize)
            if self.context.set_tensor_address(n, buf.device_ptr) is False:
                raise TrtEngineError(f"set_tensor_address failed for {n}")
        h2d = cudart.cudaMemcpyKind.cudaMemcpyHostToDevice
        d2h = cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
        nbytes_in = math.prod(shape) * in_dtype.itemsize
        _cuda_check(cudart, cudart.cudaMemcpyAsync(in_buf.device_ptr, in_buf.host_ptr, nbytes_in,
                                                   h2d, self._stream), "cudaMemcpyAsync H2D")
        if lb_buf is not None:
            _cuda_check(cudart, cudart.cudaMemcpyAsync(lb_buf.device_ptr, lb_buf.host_ptr,
                                                       shape[0] * 16, h2d, self._stream),
                        "cudaMemcpyAsync H2D letterbox")
        if not self.context.execute_async_v3(stream_handle=self._stream):
            raise TrtEngineError(f"TensorRT execute_async_v3 failed on {self.engine_path.name}")
        for n in self.output_names:
            nbytes = math.prod(self._out_shapes[n]) * self.dtypes[n].itemsize
            _cuda_check(cudart, cudart.cudaMemcpyAsync(out_bufs[n].host_ptr,
                                                       out_bufs[n].device_ptr, nbytes, d2h,
                                                       self._stream), "cudaMemcpyAsync D2H")
        _cuda_check(cudart, cudart.cudaStreamSynchronize(self._stream), "cudaStreamSynchronize")
        num, boxes, scores = (out_bufs[n].host_view(self._out_shapes[n], self.dtypes[n]).copy()
                              for n in self.output_names)
        return (num.astype(np.int32).reshape(shape[0]),
                boxes.astype(np.float32).reshape(shape[0], -1, 4),
                scores.astype(np.float32).reshape(shape[0], -1))

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._stream is not None:
            self.cudart.cudaStreamSynchronize(self._stream)
        for buf in self._buffers.values():
            buf.free()
        self._buffers.clear()
        if self._stream is not None:
            self.cudart.cudaStreamDestroy(self._stream)
            self._stream = None
        self.context = None
        self.engine = None

    def __del__(self) -> None:  # best effort; close() is the way
        try:
            self.close()
        except Exception:
            pass
