"""TEST DOUBLES of the ``tensorrt`` module and of cuda-python's ``cuda.bindings.runtime``.

They are NOT TensorRT and NOT CUDA. They implement only the calls TrtBackend makes, with the
signatures of the TensorRT 10.x / 11.x Python API (tensor-name API, no binding indices) and of
cuda-python (every call returns ``(error, *values)``), and they record every call in order so
that a test can check the sequence. "Device" memory is host memory here (ctypes buffers), so the
data path (host -> device copy, execute, device -> host copy) can be checked end to end: the
fake execution context reads the input from its tensor address, computes the outputs with a
Python function (in the tests: ONNX Runtime + the native CPU decode/NMS library, i.e. what the
OscarDecode / OscarNMS plugins compute) and writes them to the output addresses.
Passing tests with these doubles says nothing about real TensorRT's behaviour; that the
TensorRT double offers only names real releases have is checked by
tests/test_trt_conformance.py.
"""
from __future__ import annotations

import ctypes
import enum
from typing import Callable, Dict, List, Tuple

import numpy as np


class FakeCudart:
    """Stand-in for ``cuda.bindings.runtime`` (cuda-python)."""

    class cudaError_t(enum.IntEnum):  # noqa: N801 - the real name
        cudaSuccess = 0
        cudaErrorMemoryAllocation = 2

    class cudaMemcpyKind(enum.IntEnum):  # noqa: N801
        cudaMemcpyHostToDevice = 1
        cudaMemcpyDeviceToHost = 2

    class cudaStream_t:  # noqa: N801
        def __init__(self, handle: int) -> None:
            self.handle = handle

        def __int__(self) -> int:
            return self.handle

    def __init__(self, calls: List[Tuple]) -> None:
        self.calls = calls
        self.memory: Dict[int, ctypes.Array] = {}
        self.host: set = set()
        self.freed: List[int] = []

    def _ok(self, *values):
        return (self.cudaError_t.cudaSuccess, *values)

    def _alloc(self, nbytes: int) -> int:
        buf = ctypes.create_string_buffer(int(nbytes))
        ptr = ctypes.addressof(buf)
        self.memory[ptr] = buf
        return ptr

    def cudaMallocHost(self, nbytes):  # noqa: N802
        ptr = self._alloc(nbytes)
        self.host.add(ptr)
        self.calls.append(("cudaMallocHost", nbytes))
        return self._ok(ptr)

    def cudaMalloc(self, nbytes):  # noqa: N802
        self.calls.append(("cudaMalloc", nbytes))
        return self._ok(self._alloc(nbytes))

    def cudaFree(self, ptr):  # noqa: N802
        self.calls.append(("cudaFree", ptr))
        assert ptr in self.memory and ptr not in self.host, "cudaFree of a non-device pointer"
        self.freed.append(ptr)
        return self._ok()

    def cudaFreeHost(self, ptr):  # noqa: N802
        self.calls.append(("cudaFreeHost", ptr))
        assert ptr in self.host, "cudaFreeHost of a non-pinned pointer"
        self.freed.append(ptr)
        return self._ok()

    def cudaStreamCreate(self):  # noqa: N802
        self.calls.append(("cudaStreamCreate",))
        return self._ok(self.cudaStream_t(77))

    def cudaStreamDestroy(self, stream):  # noqa: N802
        self.calls.append(("cudaStreamDestroy",))
        return self._ok()

    def cudaStreamSynchronize(self, stream):  # noqa: N802
        assert isinstance(stream, self.cudaStream_t)
        self.calls.append(("cudaStreamSynchronize",))
        return self._ok()

    def cudaMemcpyAsync(self, dst, src, nbytes, kind, stream):  # noqa: N802
        assert isinstance(stream, self.cudaStream_t), "copies must go on the stream"
        name = "H2D" if kind == self.cudaMemcpyKind.cudaMemcpyHostToDevice else "D2H"
        if name == "H2D":
            assert src in self.host and dst in self.memory and dst not in self.host
        else:
            assert dst in self.host and src in self.memory and src not in self.host
        ctypes.memmove(dst, src, int(nbytes))
        self.calls.append(("cudaMemcpyAsync", name, int(nbytes)))
        return self._ok()

    def cudaGetErrorName(self, err):  # noqa: N802
        return self._ok(str(err).encode())


class FakeTensorRT:
    """Stand-in for the ``tensorrt`` module: an engine with input ``image`` and the OscarNMS
    outputs ``num_detections [B]``, ``boxes [B, M, 4]``, ``scores [B, M]``.

    It offers only names real TensorRT releases have (tests/test_trt_conformance.py checks every
    public name of the TensorRT classes here against the 10.3, 10.13 and 11.4 bindings): the
    test's own state is private (``_calls``, ...), and parameters are positional-only except
    those TrtBackend passes by keyword, which keep TensorRT's documented names
    (``execute_async_v3(stream_handle=...)``). So code that passes here cannot rely on a name
    or a keyword argument TensorRT lacks."""

    class Logger:
        WARNING = 2

        def __init__(self, min_severity, /) -> None:
            self._severity = min_severity

    class TensorIOMode(enum.Enum):
        INPUT = 0
        OUTPUT = 1

    class DataType(enum.Enum):
        FLOAT = 0
        INT32 = 3

    def __init__(self, calls: List[Tuple], compute: Callable[[np.ndarray], Tuple],
                 max_det: int = 100, plugin_loaded: Callable[[], bool] = lambda: True,
                 registered=("OscarDecode", "OscarNMS")) -> None:
        self._calls = calls
        self._compute = compute
        self._max_det = max_det
        self._plugin_loaded = plugin_loaded
        self._registered = set(registered)

    @staticmethod
    def nptype(trt_type, /):
        return {FakeTensorRT.DataType.FLOAT: np.float32,
                FakeTensorRT.DataType.INT32: np.int32}[trt_type]

    def init_libnvinfer_plugins(self, logger, namespace, /):
        self._calls.append(("init_libnvinfer_plugins", namespace))
        return True

    def get_plugin_registry(self):
        outer = self

        class Registry:
            def get_creator(self, plugin_type, version, plugin_namespace, /):
                outer._calls.append(("get_creator", plugin_type, version, plugin_namespace))
                return object() if outer._plugin_loaded() and plugin_type in outer._registered \
                    else None
        return Registry()

    def Runtime(self, logger, /):  # noqa: N802 - the real name
        self._calls.append(("Runtime",))
        return _FakeRuntime(self)


class _FakeRuntime:
    def __init__(self, trt: FakeTensorRT, /) -> None:
        self._trt = trt

    def deserialize_cuda_engine(self, serialized_engine: bytes, /):
        self._trt._calls.append(("deserialize_cuda_engine", len(serialized_engine)))
        if not self._trt._plugin_loaded():  # real TensorRT: "Plugin not found" -> None
            return None
        return _FakeEngine(self._trt)


class _FakeEngine:
    _NAMES = ["image", "num_detections", "boxes", "scores"]

    def __init__(self, trt: FakeTensorRT, /) -> None:
        self._trt = trt

    @property
    def num_io_tensors(self) -> int:
        self._trt._calls.append(("num_io_tensors",))
        return len(self._NAMES)

    def get_tensor_name(self, index: int, /) -> str:
        self._trt._calls.append(("get_tensor_name", index))
        return self._NAMES[index]

    def get_tensor_mode(self, name: str, /):
        self._trt._calls.append(("get_tensor_mode", name))
        m = FakeTensorRT.TensorIOMode
        return m.INPUT if name == "image" else m.OUTPUT

    def get_tensor_dtype(self, name: str, /):
        self._trt._calls.append(("get_tensor_dtype", name))
        d = FakeTensorRT.DataType
        return d.INT32 if name == "num_detections" else d.FLOAT

    def create_execution_context(self):
        self._trt._calls.append(("create_execution_context",))
        return _FakeContext(self._trt)


class _FakeContext:
    def __init__(self, trt: FakeTensorRT, /) -> None:
        self._trt = trt
        self._input_shape = None
        self._addresses: Dict[str, int] = {}
        self._executions = 0

    def set_input_shape(self, name: str, shape, /) -> bool:
        self._trt._calls.append(("set_input_shape", name, tuple(shape)))
        assert name == "image"
        self._input_shape = tuple(shape)
        return True

    def get_tensor_shape(self, name: str, /):
        self._trt._calls.append(("get_tensor_shape", name))
        b = self._input_shape[0] if self._input_shape else -1
        m = self._trt._max_det
        return {"image": self._input_shape or (-1, 3, -1, -1), "num_detections": (b,),
                "boxes": (b, m, 4), "scores": (b, m)}[name]

    def set_tensor_address(self, name: str, memory: int, /) -> bool:
        self._trt._calls.append(("set_tensor_address", name))
        self._addresses[name] = int(memory)
        return True

    def execute_async_v3(self, stream_handle) -> bool:
        self._trt._calls.append(("execute_async_v3",))
        assert self._input_shape is not None, "set_input_shape must come first"
        assert set(self._addresses) == set(_FakeEngine._NAMES), "every tensor needs an address"
        n = int(np.prod(self._input_shape))
        x = np.frombuffer((ctypes.c_float * n).from_address(self._addresses["image"]),
                          dtype=np.float32).reshape(self._input_shape).copy()
        num, boxes, scores = self._trt._compute(x)
        for name, arr, dtype in (("num_detections", num, np.int32), ("boxes", boxes, np.float32),
                                 ("scores", scores, np.float32)):
            a = np.ascontiguousarray(arr, dtype=dtype)
            ctypes.memmove(self._addresses[name], a.ctypes.data, a.nbytes)
        self._executions += 1
        return True
