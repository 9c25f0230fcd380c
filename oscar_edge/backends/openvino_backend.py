"""OpenVINO backend (no torch): the exported raw-head graph on OpenVINO's CPU plugin.

    backend = OpenVinoBackend("oscar-edge.int8.onnx", threads=2, hint="f32")
    backend.prepare((1, 3, 512, 640))     # compile for the run's input size (optional)
    outputs = backend(x)                   # x (B, 3, H, W) float32 -> the five raw outputs

It reads the same ONNX files as the ONNX Runtime backend: FP32, the ModelOpt INT8 Q/DQ graph
(the file TensorRT engines are built from; OpenVINO runs its convolutions as integer kernels)
and the FP16 AutoCast graph. Decode + NMS stay on the CPU (``pipeline.Detector``), as for ONNX
Runtime.

* Fixed shapes. OpenVINO compiles fastest code for a static shape, so the model is reshaped to
  the shape of the input it is given (the run's fixed input size, or each new keep-ratio fit
  size in an evaluation) and compiled once per shape; compiled shapes are kept (at most
  ``max_shapes``, least recently used dropped).
* Model cache. Compiled blobs go to ``cache_dir`` (default ``$OSCAR_EDGE_OV_CACHE`` or
  ``~/.cache/oscar-edge/openvino``; ``None`` or "off" disables it), so a second start with the
  same model, shape, hint and threads loads instead of compiling. ``compile_log`` records
  every compilation: shape, seconds, and whether it came from the cache.
* Precision hint. OpenVINO's CPU plugin silently runs an FP32 model in bf16 on CPUs with
  AVX512_BF16 or AMX (logits then differ from FP32 by up to ~0.2). So the hint is always set
  explicitly: ``"f32"`` (this class's default) or ``"bf16"``; the runtime's default per CPU is
  ``factory.default_ov_hint``. ``effective_hint`` is what the compiled model reports; on a CPU
  without bf16 a ``"bf16"`` request runs f32 and ``notes`` says so.
"""
from __future__ import annotations

import collections
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..errors import UserError
from ..postprocess import OUTPUT_NAMES
from .onnx_meta import OnnxFormatError, check_input_batch, check_normalisation, read_metadata

INPUT_NAME = "image"
HINTS = ("f32", "bf16")
DEFAULT_HINT = "f32"
CACHE_ENV = "OSCAR_EDGE_OV_CACHE"
# OpenVINO element types -> our hint names (what a compiled model reports back).
_HINT_NAMES = {"f32": "f32", "float32": "f32", "bf16": "bf16", "bfloat16": "bf16",
               "f16": "f16", "float16": "f16"}


class OpenVinoError(UserError):
    """OpenVINO missing, an unknown hint, a corrupt model, or a shape the model cannot take."""


def default_cache_dir() -> Optional[str]:
    """``$OSCAR_EDGE_OV_CACHE`` ("off" / "" disables), else ``~/.cache/oscar-edge/openvino``."""
    env = os.environ.get(CACHE_ENV)
    if env is not None:
        return None if env.strip().lower() in ("", "off", "none", "0") else env
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "oscar-edge", "openvino")


def check_hint(hint: str) -> str:
    """The hint, validated (OpenVinoError names the choices)."""
    if hint not in HINTS:
        raise OpenVinoError(f"unknown OpenVINO precision hint {hint!r}; choose from "
                            f"{', '.join(HINTS)}")
    return hint


def cpu_capabilities(core) -> List[str]:
    """The CPU plugin's ``OPTIMIZATION_CAPABILITIES`` (``BF16`` where AVX512_BF16 or AMX)."""
    try:
        return list(core.get_property("CPU", "OPTIMIZATION_CAPABILITIES"))
    except Exception:  # pragma: no cover - very old OpenVINO
        return []


def cpu_has_bf16() -> bool:
    """Whether OpenVINO's CPU plugin can run bf16 here (``BF16`` in ``cpu_capabilities``)."""
    return "BF16" in cpu_capabilities(import_openvino().Core())


def import_openvino():
    """``openvino`` or OpenVinoError with the install line."""
    try:
        import openvino
    except ImportError as exc:
        raise OpenVinoError("the OpenVINO backend needs the 'openvino' package: "
                            f"pip install 'oscar-edge[openvino]' ({_first_line(exc)})") from None
    return openvino


def _first_line(exc: BaseException) -> str:
    lines = [ln.strip() for ln in str(exc).strip().splitlines() if ln.strip()]
    # OpenVINO prefixes its messages with "Exception from src/...:NNN:"; keep the reason.
    for ln in lines:
        if not ln.startswith("Exception from") and not ln.startswith("Check '"):
            return ln[:300]
    return lines[0][:300] if lines else type(exc).__name__


@dataclass
class CompileRecord:
    shape: Tuple[int, ...]
    seconds: float
    from_cache: Optional[bool]


class OpenVinoBackend:
    """An InferFn over OpenVINO's CPU plugin: (B, 3, H, W) float32 -> five numpy outputs.

    Args:
        path: the .onnx file (FP32, INT8 Q/DQ or FP16 raw-head graph).
        threads: ``INFERENCE_NUM_THREADS`` (None or 0: OpenVINO's default, all cores).
        hint: ``INFERENCE_PRECISION_HINT``, "f32" or "bf16" (always passed explicitly).
        cache_dir: OpenVINO model cache folder; "default" = :func:`default_cache_dir`, None or
            "off" = no cache.
        max_shapes: compiled shapes kept at once.
    """

    name = "openvino"
    output_kind = "raw"   # the five raw head outputs (oscar_edge.backends.base.RAW_OUTPUTS)

    def __init__(self, path: str | os.PathLike, threads: Optional[int] = None,
                 hint: str = DEFAULT_HINT, cache_dir: Optional[str] = "default",
                 max_shapes: int = 8) -> None:
        ov = import_openvino()
        self.hint = check_hint(hint)
        self.path = os.fspath(path)
        if not os.path.isfile(self.path):
            raise OpenVinoError(f"ONNX model not found: {self.path}")
        if os.path.getsize(self.path) == 0:
            raise OpenVinoError(f"empty ONNX file: {self.path}")
        if threads is not None and threads < 0:
            raise OpenVinoError(f"threads must be >= 0 (0 = OpenVINO default), got {threads}")
        try:
            self.metadata: Dict[str, str] = read_metadata(self.path)
        except (OnnxFormatError, OSError) as exc:
            raise OpenVinoError(f"cannot load ONNX model {self.path}: not an ONNX file "
                                f"({exc})") from None
        check_normalisation(self.metadata, self.path, OpenVinoError)
        self.core = ov.Core()
        self.version = ov.get_version().split("-")[0]
        try:
            self.model = self.core.read_model(self.path)
        except Exception as exc:  # RuntimeError from the ONNX frontend
            raise OpenVinoError(f"cannot load ONNX model {self.path}: {_first_line(exc)}") \
                from None
        self._check_signature()
        self.threads = int(threads) if threads else None
        if cache_dir == "default":
            cache_dir = default_cache_dir()
        if cache_dir is not None and str(cache_dir).strip().lower() == "off":
            cache_dir = None
        self.cache_dir = cache_dir
        self.notes: List[str] = []
        caps = cpu_capabilities(self.core)
        if self.hint == "bf16" and "BF16" not in caps:
            self.notes.append("precision hint bf16 asked, but this CPU has no bf16 support "
                              "(AVX512_BF16 or AMX): OpenVINO runs f32")
        self.compile_log: List[CompileRecord] = []
        self._compiled: "collections.OrderedDict[tuple, tuple]" = collections.OrderedDict()
        self.max_shapes = max(1, int(max_shapes))
        # What the compiled model will run (read back from it after each compilation).
        self.effective_hint: str = self.hint if self.hint == "f32" or "BF16" in caps else "f32"

    # -- model checks ------------------------------------------------------------------------
    def _check_signature(self) -> None:
        inputs = self.model.inputs
        in_names = [i.get_any_name() for i in inputs]
        out_names = set()
        for o in self.model.outputs:
            out_names |= set(o.get_names())
        if len(inputs) != 1 or in_names[0] != INPUT_NAME or set(OUTPUT_NAMES) - out_names:
            raise OpenVinoError(
                f"{self.path} is not an oscar-edge raw-head graph: expected input "
                f"{INPUT_NAME!r} and outputs {', '.join(OUTPUT_NAMES)}; it has inputs "
                f"{', '.join(in_names)} and outputs {', '.join(sorted(out_names))}")
        pshape = inputs[0].get_partial_shape()
        if pshape.rank.is_dynamic or pshape.rank.get_length() != 4:
            raise OpenVinoError(f"{self.path}: input {INPUT_NAME!r} must be 4-D (B, 3, H, W), "
                                f"got {pshape}")
        # Static dimensions as ints, dynamic ones as None.
        self.input_shape = tuple(d.get_length() if d.is_static else None for d in pshape)
        self.input_dtype = np.float16 if inputs[0].get_element_type().get_type_name() == "f16" \
            else np.float32

    # -- properties --------------------------------------------------------------------------
    @property
    def input_size(self) -> Optional[Tuple[int, int]]:
        """(height, width) of a graph with a static input shape, else None."""
        h, w = self.input_shape[2:4]
        return (h, w) if h and w else None

    @property
    def preset(self) -> str:
        return self.metadata.get("preset", "unknown")

    @property
    def precision(self) -> str:
        return self.metadata.get("precision", "unknown")

    def describe_hint(self) -> str:
        """``"f32"``, or ``"bf16 (runs f32: no bf16 on this CPU)"`` when they differ."""
        if self.effective_hint == self.hint:
            return self.hint
        return f"{self.hint} (runs {self.effective_hint}: no {self.hint} on this CPU)"

    # -- compilation -------------------------------------------------------------------------
    def _config(self) -> Dict[str, object]:
        cfg: Dict[str, object] = {"INFERENCE_PRECISION_HINT": self.hint,
                                  "PERFORMANCE_HINT": "LATENCY"}
        if self.threads:
            cfg["INFERENCE_NUM_THREADS"] = self.threads
        if self.cache_dir:
            cfg["CACHE_DIR"] = str(self.cache_dir)
        return cfg

    def prepare(self, shape: Sequence[int]) -> CompileRecord:
        """Reshape to ``shape`` (B, 3, H, W) and compile (or load from the cache); returns the
        record of this compilation. A shape the model cannot take raises OpenVinoError."""
        shape = tuple(int(v) for v in shape)
        if shape in self._compiled:
            self._compiled.move_to_end(shape)
            return next(r for r in reversed(self.compile_log) if r.shape == shape)
        if len(shape) != 4 or shape[1] != self.input_shape[1]:
            raise OpenVinoError(f"{self.path}: expected a (B, {self.input_shape[1]}, H, W) input, "
                                f"got {shape}")
        for axis, dim in enumerate(self.input_shape):
            if dim is not None and shape[axis] != dim:
                raise OpenVinoError(
                    f"{self.path} has a static input shape "
                    f"{tuple(d if d is not None else '?' for d in self.input_shape)}; it cannot "
                    f"take {shape[0]}x{shape[1]}x{shape[2]}x{shape[3]}")
        if self.cache_dir:
            try:
                Path(self.cache_dir).mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise OpenVinoError(f"cannot create the OpenVINO cache folder {self.cache_dir}: "
                                    f"{exc.strerror or exc}") from None
        t0 = time.perf_counter()
        try:
            model = self.model.clone()
            model.reshape({INPUT_NAME: list(shape)})
            compiled = self.core.compile_model(model, "CPU", self._config())
        except Exception as exc:
            raise OpenVinoError(f"{self.path}: OpenVINO cannot compile the model for input "
                                f"{shape[0]}x{shape[1]}x{shape[2]}x{shape[3]}: "
                                f"{_first_line(exc)}") from None
        seconds = time.perf_counter() - t0
        try:
            from_cache: Optional[bool] = bool(compiled.get_property("LOADED_FROM_CACHE"))
        except Exception:  # pragma: no cover - property missing in an old release
            from_cache = None
        hint = compiled.get_property("INFERENCE_PRECISION_HINT")
        name = getattr(hint, "get_type_name", lambda: str(hint))()
        self.effective_hint = _HINT_NAMES.get(str(name), str(name))
        ports = [next(o for o in compiled.outputs if n in o.get_names()) for n in OUTPUT_NAMES]
        self._compiled[shape] = (compiled, compiled.create_infer_request(), ports)
        while len(self._compiled) > self.max_shapes:
            self._compiled.popitem(last=False)
        record = CompileRecord(shape, seconds, from_cache)
        self.compile_log.append(record)
        return record

    def close(self) -> None:
        """Drop compiled models and requests (threads and memory go with them)."""
        self._compiled.clear()

    def __call__(self, x: np.ndarray) -> Tuple[np.ndarray, ...]:
        x = check_input_batch(x, self.input_shape, self.path)
        _, request, ports = self._compiled[tuple(x.shape)] if tuple(x.shape) in self._compiled \
            else (None, None, None)
        if request is None:
            self.prepare(x.shape)
            _, request, ports = self._compiled[tuple(x.shape)]
        feed = np.ascontiguousarray(x, dtype=self.input_dtype)
        result = request.infer({0: feed})
        return tuple(np.array(result[p], dtype=np.float32) for p in ports)
