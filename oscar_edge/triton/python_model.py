"""The Python-backend models of an oscar-edge Triton repository.

Triton loads ``<repo>/<model>/1/model.py`` (written by :mod:`.repository`), which imports
:class:`TritonPythonModel` from here. The model's ``oscar_edge_role`` parameter picks the work:

| role | inputs | outputs |
|---|---|---|
| ``detect`` (CPU repository) | FRAMES uint8 [b, H, W] | DETECTIONS fp32 [b, M, 5], NUM_DETECTIONS int32 [b, 1] |
| ``preprocess`` (GPU ensemble) | FRAMES | image fp32 [b, 3, Hp, Wp], letterbox fp32 [b, 4] |
| ``postprocess`` (GPU ensemble) | num_detections, boxes, scores (engine), letterbox | DETECTIONS, NUM_DETECTIONS |

``detect`` runs ``oscar_edge.pipeline.Detector`` with a backend of
``oscar_edge.backends.factory`` (ONNX Runtime or OpenVINO): the pre-processing, decode, NMS and
peak refinement of ``oscar-edge run``. Frames of the same size from several requests (dynamic
batching) go through the network as one batch. The roles are plain classes over numpy arrays
(tested without a server); only :class:`TritonPythonModel` touches ``triton_python_backend_utils``.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from . import INPUT_FRAMES, OUTPUT_COUNT, OUTPUT_DETECTIONS, PARAM_ROLE

ENGINE_INPUT = "image"              # oscar_edge.export.plugin_graph.INPUT_NAME
ENGINE_LETTERBOX = "letterbox"      # oscar_edge.export.plugin_graph.LETTERBOX_NAME
ENGINE_OUTPUTS = ("num_detections", "boxes", "scores")  # plugin_graph.E2E_OUTPUTS

Arrays = Dict[str, np.ndarray]


def fit_param(text: str) -> Tuple[int, int]:
    """The ``fit`` parameter (and the ONNX ``fit_size`` metadata): "1000,600" -> (1000, 600);
    "" -> ``preprocess.FIT_SIZE``."""
    from ..preprocess import FIT_SIZE

    return tuple(int(v) for v in text.split(",")) if text else FIT_SIZE


def input_size_param(text: str) -> Optional[Tuple[int, int]]:
    """The ``input_size`` parameter: "640x512" (W x H) -> (512, 640); "" / "fit" -> None."""
    from ..sizes import parse_size

    text = (text or "").strip().lower()
    return None if text in ("", "fit") else parse_size(text, order="hw_out", multiple=32)


def pack(rows: Sequence[np.ndarray]) -> Arrays:
    """Per-frame (N, 5) detections -> DETECTIONS [b, M, 5] (zero padded, M >= 1) and
    NUM_DETECTIONS [b, 1]."""
    m = max([1] + [len(r) for r in rows])
    det = np.zeros((len(rows), m, 5), np.float32)
    num = np.zeros((len(rows), 1), np.int32)
    for i, r in enumerate(rows):
        det[i, :len(r)] = r
        num[i, 0] = len(r)
    return {OUTPUT_DETECTIONS: det, OUTPUT_COUNT: num}


def unpack(det: np.ndarray, num: np.ndarray) -> List[np.ndarray]:
    """The inverse of :func:`pack`: one (N, 5) array per frame."""
    det = np.asarray(det, np.float32).reshape(len(num), -1, 5)
    return [det[i, :int(n)] for i, n in enumerate(np.asarray(num).reshape(-1))]


def _frames(inputs: Arrays) -> np.ndarray:
    f = np.asarray(inputs[INPUT_FRAMES])
    if f.dtype != np.uint8 or f.ndim != 3 or min(f.shape[1:]) < 1:
        raise ValueError(f"{INPUT_FRAMES} must be uint8 [batch, height, width] grey frames, got "
                         f"{f.dtype} {list(f.shape)}")
    return f


class DetectRole:
    """The whole detector on the CPU: frames in, detections in original pixels out."""

    inputs = (INPUT_FRAMES,)

    def __init__(self, params: Mapping[str, str], version_dir: Path) -> None:
        from ..backends.factory import create_backend
        from ..pipeline import Detector

        model = version_dir / params.get("model_file", "model.onnx")
        threads = int(params.get("threads", "0") or 0) or None
        self.choice = create_backend(params.get("backend", "onnxruntime"), model=str(model),
                                     threads=threads, ov_hint=params.get("ov_hint") or None,
                                     log=lambda m: None)
        self.detector = Detector(
            self.choice.backend, fit=fit_param(params.get("fit", "")),
            input_size=input_size_param(params.get("input_size", "")),
            score_thr=float(params["score_thr"]), topk=int(params["topk"]),
            iou_thr=float(params["iou_thr"]), max_det=int(params["max_det"]),
            peak_refine=params.get("peak_refine", "on") == "on",
            small_input=params.get("small_input", "on") == "on")

    def run(self, requests: Sequence[Arrays]) -> List[Arrays]:
        """One response dict per request; frames of one size across requests run as one
        batch. ValueError for a request whose input is wrong (the others still run)."""
        frames = [_frames(r) for r in requests]
        groups: Dict[Tuple[int, int], List[Tuple[int, int]]] = {}
        for i, f in enumerate(frames):
            for j in range(f.shape[0]):
                groups.setdefault(f.shape[1:], []).append((i, j))
        rows: List[List[Optional[np.ndarray]]] = [[None] * f.shape[0] for f in frames]
        for members in groups.values():
            prepared = [self.detector.preprocess(frames[i][j]) for i, j in members]
            xs = np.stack([x for x, _ in prepared])
            raw = self.choice.backend(xs)
            for k, ((i, j), (x, box)) in enumerate(zip(members, prepared)):
                one = [np.asarray(o)[k:k + 1] for o in raw]
                d = self.detector.postprocess(one, box, x)
                rows[i][j] = np.concatenate([d.boxes, d.scores[:, None]], axis=1)
        return [pack(r) for r in rows]

    def close(self) -> None:
        from ..backends.base import close_backend

        close_backend(self.choice.backend)


class PreprocessRole:
    """GPU ensemble, step 1: frames -> the engine's network input and the letterbox rows."""

    inputs = (INPUT_FRAMES,)

    def __init__(self, params: Mapping[str, str], version_dir: Path) -> None:
        self.fit = fit_param(params.get("fit", ""))
        self.input_size = input_size_param(params.get("input_size", ""))
        self.small_input = params.get("small_input", "on") == "on"

    def run(self, requests: Sequence[Arrays]) -> List[Arrays]:
        from ..preprocess import frame_input_size, prepare

        out = []
        for r in requests:
            f3 = _frames(r)
            size = frame_input_size(*f3.shape[1:], self.input_size, self.small_input)
            pairs = [prepare(f, fit=self.fit, input_size=size) for f in f3]
            out.append({ENGINE_INPUT: np.stack([x for x, _ in pairs]),
                        ENGINE_LETTERBOX: np.stack([b.tensor() for _, b in pairs])})
        return out


class PostprocessRole:
    """GPU ensemble, step 3: the engine's (num_detections, boxes, scores) in network pixels ->
    detections in original pixels, as ``Detector`` maps a TensorRT engine's output."""

    inputs = ENGINE_OUTPUTS + (ENGINE_LETTERBOX,)

    def __init__(self, params: Mapping[str, str], version_dir: Path) -> None:
        pass

    def run(self, requests: Sequence[Arrays]) -> List[Arrays]:
        from ..pipeline import Detector
        from ..preprocess import Letterbox

        out = []
        for r in requests:
            num, boxes, scores = (np.asarray(r[n]) for n in ENGINE_OUTPUTS)
            rows = []
            for i, (h, w, sy, sx) in enumerate(np.asarray(r[ENGINE_LETTERBOX], np.float32)):
                box = Letterbox(original=(0, 0), resized=(int(h), int(w)), padded=(0, 0),
                                scale_x=float(sx), scale_y=float(sy))
                d = Detector._final_detections((num[i:i + 1], boxes[i:i + 1],
                                                scores[i:i + 1]), box)
                rows.append(np.concatenate([d.boxes, d.scores[:, None]], axis=1))
            out.append(pack(rows))
        return out


ROLES = {"detect": DetectRole, "preprocess": PreprocessRole, "postprocess": PostprocessRole}


def model_parameters(model_config: Mapping) -> Dict[str, str]:
    """The ``parameters`` of a model config (as Triton gives it, JSON) as plain strings."""
    return {k: str(v.get("string_value", "")) for k, v in
            (model_config.get("parameters") or {}).items()}


class TritonPythonModel:
    """Triton's entry point (the Python backend instantiates it once per model instance)."""

    def initialize(self, args: Mapping[str, str]) -> None:
        import triton_python_backend_utils as pb_utils  # only inside the server

        self.pb = pb_utils
        params = model_parameters(json.loads(args["model_config"]))
        role = params.get(PARAM_ROLE, "detect")
        if role not in ROLES:
            raise ValueError(f"unknown {PARAM_ROLE} {role!r}; one of {', '.join(ROLES)}")
        version_dir = Path(args["model_repository"]) / str(args["model_version"])
        threads = params.get("threads", "")
        if threads:  # also for the numpy / OpenCV work of this instance
            os.environ.setdefault("OMP_NUM_THREADS", threads)
        self.role = ROLES[role](params, version_dir)

    def execute(self, requests):
        pb = self.pb
        arrays = [{n: pb.get_input_tensor_by_name(r, n).as_numpy() for n in self.role.inputs}
                  for r in requests]
        try:
            results = self.role.run(arrays)
        except Exception:  # one bad request must not fail the others: run them one by one
            results = []
            for a in arrays:
                try:
                    results.append(self.role.run([a])[0])
                except Exception as exc:  # noqa: BLE001 - reported to that request's client
                    results.append(exc)
        responses = []
        for res in results:
            if isinstance(res, Exception):
                responses.append(pb.InferenceResponse(
                    output_tensors=[], error=pb.TritonError(f"oscar-edge: {res}")))
            else:
                responses.append(pb.InferenceResponse(
                    output_tensors=[pb.Tensor(k, np.ascontiguousarray(v))
                                    for k, v in res.items()]))
        return responses

    def finalize(self) -> None:
        close = getattr(getattr(self, "role", None), "close", None)
        if callable(close):
            close()
