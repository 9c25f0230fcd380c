"""ONNX Runtime backend (no torch): runs an exported raw-head graph (FP32, INT8 Q/DQ or FP16).

    backend = OrtBackend("model.onnx")              # CPU provider, ORT's default thread count
    outputs = backend(x)                             # x (B, 3, H, W) float32, H and W % 32 == 0
    detector = Detector(backend)                     # same decode + NMS as every backend

The graph is the one written by ``export/export_onnx.py``: input ``image`` and the five outputs
of ``oscar_edge.postprocess.OUTPUT_NAMES``. A graph whose input is float16 (AutoCast without
kept I/O types) is fed float16; outputs are always returned as float32 numpy arrays.
"""
from __future__ import annotations

import os
from typing import Dict, Optional, Sequence, Tuple

import numpy as np

from ..errors import UserError
from ..postprocess import OUTPUT_NAMES
from .onnx_meta import check_input_batch, check_normalisation

INPUT_NAME = "image"
_NP_TYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16}


class OnnxModelError(UserError):
    """An ONNX file is missing, corrupt, or not an oscar-edge raw-head graph."""


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class OrtBackend:
    """An InferFn over an ONNX Runtime session: (B, 3, H, W) float32 -> five numpy outputs.

    Args:
        path: the .onnx file.
        threads: intra-op threads (None: ONNX Runtime's default, one per physical core).
        providers: execution providers in priority order (default ``["CPUExecutionProvider"]``);
            each must be one this ONNX Runtime build offers.
    """

    name = "onnxruntime"
    output_kind = "raw"   # the five raw head outputs (oscar_edge.backends.base.RAW_OUTPUTS)

    def __init__(self, path: str | os.PathLike, threads: Optional[int] = None,
                 providers: Optional[Sequence[str]] = None) -> None:
        import onnxruntime as ort  # the export extra, or onnxruntime-gpu on a GPU host

        self.path = os.fspath(path)
        if not os.path.isfile(self.path):
            raise OnnxModelError(f"ONNX model not found: {self.path}")
        if os.path.getsize(self.path) == 0:
            raise OnnxModelError(f"empty ONNX file: {self.path}")
        if threads is not None and threads < 0:
            raise OnnxModelError(f"threads must be >= 0 (0 = ONNX Runtime default), got {threads}")
        providers = list(providers) if providers else ["CPUExecutionProvider"]
        available = ort.get_available_providers()
        missing = [p for p in providers if p not in available]
        if missing:
            raise OnnxModelError(f"execution provider(s) {', '.join(missing)} not available in "
                                 f"this onnxruntime (available: {', '.join(available)})")
        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = int(threads)
        opts.log_severity_level = 3  # errors only: no optimizer chatter on stderr
        try:
            self.session = ort.InferenceSession(self.path, sess_options=opts, providers=providers)
        except Exception as exc:  # InvalidProtobuf, Fail, InvalidGraph, NotImplemented ...
            raise OnnxModelError(f"cannot load ONNX model {self.path}: {_first_line(exc)}") from None
        self.providers = self.session.get_providers()
        self._check_signature()
        self.metadata: Dict[str, str] = dict(self.session.get_modelmeta().custom_metadata_map)
        self._check_normalisation()

    def _check_signature(self) -> None:
        inputs = self.session.get_inputs()
        outputs = [o.name for o in self.session.get_outputs()]
        if len(inputs) != 1 or inputs[0].name != INPUT_NAME or set(OUTPUT_NAMES) - set(outputs):
            raise OnnxModelError(
                f"{self.path} is not an oscar-edge raw-head graph: expected input {INPUT_NAME!r} "
                f"and outputs {', '.join(OUTPUT_NAMES)}; it has inputs "
                f"{', '.join(i.name for i in inputs)} and outputs {', '.join(outputs)}")
        if inputs[0].type not in _NP_TYPES:
            raise OnnxModelError(f"{self.path}: unsupported input type {inputs[0].type}")
        self.input_dtype = _NP_TYPES[inputs[0].type]
        self.input_shape = tuple(inputs[0].shape)  # ints for static dims, names for dynamic

    def _check_normalisation(self) -> None:
        """An exported graph records the preprocessing it was trained with; refuse a mismatch."""
        check_normalisation(self.metadata, self.path, OnnxModelError)

    @property
    def input_size(self) -> Optional[Tuple[int, int]]:
        """(height, width) of a graph exported with a static input shape, else None."""
        h, w = self.input_shape[2:4] if len(self.input_shape) == 4 else (None, None)
        if isinstance(h, int) and isinstance(w, int) and h > 0 and w > 0:
            return h, w
        return None

    @property
    def preset(self) -> str:
        return self.metadata.get("preset", "unknown")

    @property
    def precision(self) -> str:
        return self.metadata.get("precision", "unknown")

    def close(self) -> None:
        """Drop the session (its threads and memory go with it)."""
        self.session = None

    def __call__(self, x: np.ndarray) -> Tuple[np.ndarray, ...]:
        x = check_input_batch(x, self.input_shape, self.path)
        feed = np.ascontiguousarray(x, dtype=self.input_dtype)
        outs = self.session.run(list(OUTPUT_NAMES), {INPUT_NAME: feed})
        return tuple(np.asarray(o, dtype=np.float32) for o in outs)
