"""The OSCAR CUDA kernels on a real GPU against the C++ CPU twin, bit for bit, and their timing.

Part of the GPU check (tests/gpu/device_check.sh; README of tests/gpu). The kernels of
``cpp_plugins/cuda`` are built with nvcc together with
``cpp_plugins/tests/gpu_runner/oscar_gpu_runner.cu`` (a plain C API that calls the launchers as
the TensorRT plugins' enqueue() does) into one shared library, loaded here with ctypes.

    python tests/gpu/gpu_kernels.py build --arch sm_90 --out build/gpu-check/liboscar_gpu_runner.so
    python tests/gpu/gpu_kernels.py check --runner build/gpu-check/liboscar_gpu_runner.so \\
        --data ../shared/data/sirst-v2 --step-json out/steps/03-kernels.json
    python tests/gpu/gpu_kernels.py time --runner ... --launches 1000 --step-json ...

``check`` replays every golden vector (cpp_plugins/golden) and raw head outputs of the shipped
model on SIRST-V2 val_full images, kernel by kernel (each on the CPU twin's inputs) and chained
(decode -> NMS -> peak refine on the device), and compares every output with the CPU twin
(``oscar_edge.native``): same counts, same kept candidate rows, boxes / scores with equal
float32 bits. ``time`` measures each kernel and the chain at 640x512 with CUDA events.

A runner is any object with the methods of :class:`CpuTwinRunner` (``decode``, ``nms``,
``peak_refine``, ``chain``): :class:`GpuRunner` on a GPU, :class:`CpuTwinRunner` (the
reference) in the tests of this harness.
"""
from __future__ import annotations

import argparse
import ctypes
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
if str(REPO) not in sys.path:  # a checkout that is not pip-installed
    sys.path.insert(0, str(REPO))
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import gpu_report  # noqa: E402
from oscar_edge import postprocess as pp  # noqa: E402

CUDA_DIR = REPO / "cpp_plugins" / "cuda"
RUNNER_SRC = REPO / "cpp_plugins" / "tests" / "gpu_runner" / "oscar_gpu_runner.cu"
KERNEL_SRCS = tuple(CUDA_DIR / f"oscar_{k}_kernels.cu" for k in ("decode", "nms", "refine"))
GOLDEN_DIR = REPO / "cpp_plugins" / "golden"
RUNNER_ABI = 1  # kRunnerAbiVersion in oscar_gpu_runner.cu
STEP_JSON_ENV = "OSCAR_GPU_STEP_JSON"  # set by device_check.sh for each step

RAW_NAMES = pp.OUTPUT_NAMES  # refine_score, refine_bbox, refine_noco, coarse_score, coarse_bbox
DECODE_OUT = ("decode_boxes", "decode_scores", "decode_count")
NMS_OUT = ("nms_num", "nms_boxes", "nms_scores")
REFINE_OUT = ("refine_boxes",)
ALL_OUT = DECODE_OUT + NMS_OUT + REFINE_OUT
ATTRS = ("score_threshold", "topk", "iou_threshold", "max_detections", "centroid")
STAGES = ("decode", "nms", "refine", "chain")  # oscar_gpu_time's stage 0..3
TIMING_HW = (512, 640)  # network input (height, width) of the timing: 640x512
# The project's flags (cpp_plugins/CMakeLists.txt): no FMA contraction nor fast math on the
# host, warnings as errors. Not -warn-spills: a spill is a performance note, not a failure.
NVCC_FLAGS = ("-std=c++17", "-O3", "-shared",
              "-Xcompiler=-fPIC,-Wall,-Wextra,-Wshadow,-ffp-contract=off,-fno-fast-math",
              "--Werror=all-warnings")


class GpuRunnerError(RuntimeError):
    """The runner library is missing, of another version, or a CUDA call failed."""


# -- build -------------------------------------------------------------------------------------
def arch_flags(archs: Sequence[str]) -> List[str]:
    """nvcc -gencode flags for SASS of every arch ('sm_90', '90', '9.0' -> sm_90)."""
    flags = []
    for arch in archs:
        digits = str(arch).lower().replace("sm_", "").replace(".", "")
        if not digits.isdigit() or len(digits) < 2:
            raise ValueError(f"not a compute capability: {arch!r} (e.g. sm_90, 9.0, 87)")
        flags.append(f"-gencode=arch=compute_{digits},code=sm_{digits}")
    if not flags:
        raise ValueError("at least one arch is needed")
    return flags


def nvcc_command(archs: Sequence[str], out: Path, nvcc: str = "nvcc") -> List[str]:
    """The nvcc command that builds the runner library for ``archs`` into ``out``."""
    return [nvcc, *NVCC_FLAGS, *arch_flags(archs), *map(str, KERNEL_SRCS), str(RUNNER_SRC),
            "-o", str(out)]


def build_runner(archs: Sequence[str], out: Path, nvcc: Optional[str] = None,
                 timeout: float = 300.0) -> Path:
    """Compile the kernels and the runner into the shared library ``out``.

    Raises:
        GpuRunnerError: nvcc missing or failing (with the end of its output).
    """
    nvcc = nvcc or os.environ.get("NVCC") or shutil.which("nvcc")
    if not nvcc:
        raise GpuRunnerError("nvcc not found: put the CUDA toolkit's bin on PATH or set NVCC")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    cmd = nvcc_command(archs, out, nvcc)
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if res.returncode != 0 or not out.is_file():
        raise GpuRunnerError(f"nvcc failed (exit {res.returncode}): {' '.join(cmd)}\n"
                             f"{(res.stdout + res.stderr)[-4000:]}")
    return out


# -- runners -----------------------------------------------------------------------------------
def _f32(a) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=np.float32)


def _i32(a) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=np.int32)


def _raw(raw: Sequence[np.ndarray]) -> Tuple[List[np.ndarray], int]:
    """The five raw tensors, C-contiguous, all FP32 or all FP16; and the half flag."""
    arrays = [np.ascontiguousarray(a) for a in raw]
    if len(arrays) != 5:
        raise ValueError(f"expected the five raw outputs {RAW_NAMES}, got {len(arrays)}")
    dtype = arrays[0].dtype
    if dtype not in (np.float32, np.float16) or any(a.dtype != dtype for a in arrays):
        raise ValueError(f"raw outputs must all be float32 or all float16, got "
                         f"{[str(a.dtype) for a in arrays]}")
    return arrays, int(dtype == np.float16)


def _grid(raw: Sequence[np.ndarray]) -> Tuple[int, int, int, int, int]:
    b, _, h4, w4 = raw[0].shape
    h8, w8 = raw[3].shape[2:]
    return int(b), int(h4), int(w4), int(h8), int(w8)


def _ptr(a: Optional[np.ndarray]):
    return None if a is None else a.ctypes.data


class CpuTwinRunner:
    """The C++ CPU twin (``oscar_edge.native``) with the plugins' semantics: the reference of
    every comparison. Inputs of any float type are taken as float32 (an FP16 input's values)."""

    name = "cpu-twin"

    def __init__(self, library: Optional[str] = None) -> None:
        from oscar_edge.native import NativePostprocessor

        self.native = NativePostprocessor(library)

    def decode(self, raw: Sequence[np.ndarray], score_threshold: float, topk: int,
               clamp_hw: Optional[np.ndarray] = None):
        """OscarDecode: boxes [B,K,4], scores [B,K], count [B]. clamp_hw None = the plugin's
        clamp to the network input; [B,2] = the CPU pipeline's clamp to the content."""
        return self.native.decode_batch(tuple(_f32(a) for a in raw), clamp_hw,
                                        float(score_threshold), int(topk))

    def nms(self, boxes, scores, count, iou_threshold: float, max_detections: int):
        """OscarNMS: num [B], boxes [B,M,4], scores [B,M]."""
        return self.native.nms_batch(_f32(boxes), _f32(scores), count, float(iou_threshold),
                                     int(max_detections))[:3]

    def nms_index(self, boxes, scores, count, iou_threshold: float, max_detections: int):
        """The candidate row of every kept box [B,M] (-1 past num): the twin's own record."""
        return self.native.nms_batch(_f32(boxes), _f32(scores), count, float(iou_threshold),
                                     int(max_detections))[3]

    def peak_refine(self, image, boxes, num, letterbox, centroid: int):
        """OscarPeakRefine: refined boxes [B,M,4]."""
        return self.native.peak_refine_batch(_f32(image), _f32(boxes), _i32(num), letterbox,
                                             bool(centroid))

    def chain(self, raw, image, letterbox, attrs: Dict[str, Any]) -> Dict[str, np.ndarray]:
        """The three plugins one after the other: every output by name (ALL_OUT)."""
        dec = self.decode(raw, attrs["score_threshold"], attrs["topk"])
        nms = self.nms(*dec, attrs["iou_threshold"], attrs["max_detections"])
        ref = self.peak_refine(image, nms[1], nms[0], letterbox, attrs["centroid"])
        return dict(zip(ALL_OUT, (*dec, *nms, ref)))


class GpuRunner:
    """The kernels on the GPU through liboscar_gpu_runner.so (same methods as CpuTwinRunner)."""

    name = "gpu"

    def __init__(self, library: Path) -> None:
        library = Path(library)
        if not library.is_file():
            raise GpuRunnerError(f"runner library not found: {library} (build it with "
                                 f"`python tests/gpu/gpu_kernels.py build`)")
        try:
            lib = ctypes.CDLL(str(library))
        except OSError as exc:
            raise GpuRunnerError(f"cannot load {library}: {exc}") from None
        p, i, f = ctypes.c_void_p, ctypes.c_int32, ctypes.c_float
        ip = ctypes.POINTER(ctypes.c_int32)
        sig = {
            "oscar_gpu_abi_version": ([], i),
            "oscar_gpu_status_string": ([i], ctypes.c_char_p),
            "oscar_gpu_device_info": ([ctypes.c_char_p, i, ip, ip, ip, ip], i),
            "oscar_gpu_decode": ([i] + [p] * 5 + [i] * 5 + [p, f, i, p, p, p], i),
            "oscar_gpu_nms": ([i, p, p, p, i, i, f, i, p, p, p], i),
            "oscar_gpu_peak_refine": ([i, p, i, i, i, i, p, p, i, p, i, p], i),
            "oscar_gpu_chain": ([i, p] + [i] * 5 + [f, i, f, i] + [i, p, i, i, i, p, i]
                                + [p] * 7, i),
            "oscar_gpu_time": ([i, i, p] + [i] * 5 + [f, i, f, i] + [i, p, i, i, i, p, i]
                               + [i, i, p, p], i),
        }
        for name, (argtypes, restype) in sig.items():
            if not hasattr(lib, name):
                raise GpuRunnerError(f"{library} lacks {name}: rebuild it")
            getattr(lib, name).argtypes = argtypes
            getattr(lib, name).restype = restype
        if lib.oscar_gpu_abi_version() != RUNNER_ABI:
            raise GpuRunnerError(f"{library} has runner ABI {lib.oscar_gpu_abi_version()}, "
                                 f"expected {RUNNER_ABI}: rebuild it")
        self.lib = lib
        self.info = self.device_info()

    def _check(self, status: int, what: str) -> None:
        if status != 0:
            raise GpuRunnerError(f"{what}: CUDA error {status} "
                                 f"({self.lib.oscar_gpu_status_string(status).decode()})")

    def device_info(self) -> Dict[str, Any]:
        """name, compute capability, CUDA runtime and driver versions of device 0."""
        name = ctypes.create_string_buffer(256)
        vals = [ctypes.c_int32() for _ in range(4)]
        self._check(self.lib.oscar_gpu_device_info(name, 256, *map(ctypes.byref, vals)),
                    "device query")
        major, minor, runtime, driver = (v.value for v in vals)
        return {"name": name.value.decode(), "compute_capability": f"{major}.{minor}",
                "cuda_runtime": runtime, "cuda_driver": driver}

    def decode(self, raw, score_threshold: float, topk: int, clamp_hw=None):
        arrays, half = _raw(raw)
        b, h4, w4, h8, w8 = _grid(arrays)
        clamp = None if clamp_hw is None else _f32(clamp_hw).reshape(b, 2)
        boxes = np.empty((b, int(topk), 4), np.float32)
        scores = np.empty((b, int(topk)), np.float32)
        count = np.empty((b,), np.int32)
        self._check(self.lib.oscar_gpu_decode(
            half, *map(_ptr, arrays), b, h4, w4, h8, w8, _ptr(clamp), float(score_threshold),
            int(topk), _ptr(boxes), _ptr(scores), _ptr(count)), "decode")
        return boxes, scores, count

    def nms(self, boxes, scores, count, iou_threshold: float, max_detections: int):
        half = int(np.asarray(boxes).dtype == np.float16)
        dtype = np.float16 if half else np.float32
        boxes = np.ascontiguousarray(boxes, dtype=dtype)
        scores = np.ascontiguousarray(scores, dtype=dtype)
        count = _i32(count)
        b, k = scores.shape
        m = int(max_detections)
        num = np.empty((b,), np.int32)
        out_boxes = np.empty((b, m, 4), np.float32)
        out_scores = np.empty((b, m), np.float32)
        self._check(self.lib.oscar_gpu_nms(
            half, _ptr(boxes), _ptr(scores), _ptr(count), b, k, float(iou_threshold), m,
            _ptr(num), _ptr(out_boxes), _ptr(out_scores)), "NMS")
        return num, out_boxes, out_scores

    def peak_refine(self, image, boxes, num, letterbox, centroid: int):
        image = np.ascontiguousarray(image)
        half = int(image.dtype == np.float16)
        image = image if half else _f32(image)
        boxes, num = _f32(boxes), _i32(num)
        lb = None if letterbox is None else _f32(letterbox)
        b, c, h, w = image.shape
        out = np.empty(boxes.shape, np.float32)
        self._check(self.lib.oscar_gpu_peak_refine(
            half, _ptr(image), b, c, h, w, _ptr(boxes), _ptr(num), boxes.shape[1], _ptr(lb),
            int(centroid), _ptr(out)), "peak refine")
        return out

    def _chain_args(self, raw, image, letterbox, attrs):
        arrays, half = _raw(raw)
        b, h4, w4, h8, w8 = _grid(arrays)
        image = np.ascontiguousarray(image)
        image_half = int(image.dtype == np.float16)
        image = image if image_half else _f32(image)
        lb = None if letterbox is None else _f32(letterbox)
        raw_ptrs = (ctypes.c_void_p * 5)(*map(_ptr, arrays))
        keep = (arrays, image, lb, raw_ptrs)  # alive until the call returned
        args = [half, raw_ptrs, b, h4, w4, h8, w8, float(attrs["score_threshold"]),
                int(attrs["topk"]), float(attrs["iou_threshold"]), int(attrs["max_detections"]),
                image_half, _ptr(image), *image.shape[1:], _ptr(lb), int(attrs["centroid"])]
        return keep, args, b

    def chain(self, raw, image, letterbox, attrs: Dict[str, Any]) -> Dict[str, np.ndarray]:
        keep, args, b = self._chain_args(raw, image, letterbox, attrs)
        k, m = int(attrs["topk"]), int(attrs["max_detections"])
        out = {"decode_boxes": np.empty((b, k, 4), np.float32),
               "decode_scores": np.empty((b, k), np.float32),
               "decode_count": np.empty((b,), np.int32), "nms_num": np.empty((b,), np.int32),
               "nms_boxes": np.empty((b, m, 4), np.float32),
               "nms_scores": np.empty((b, m), np.float32),
               "refine_boxes": np.empty((b, m, 4), np.float32)}
        self._check(self.lib.oscar_gpu_chain(*args, *(_ptr(out[n]) for n in ALL_OUT)), "chain")
        del keep
        return out

    def time(self, stage: str, raw, image, letterbox, attrs: Dict[str, Any],
             launches: int = 1000, warmup: int = 50) -> Tuple[np.ndarray, float]:
        """Device milliseconds of each of ``launches`` back-to-back launches of ``stage``, and
        the mean host microseconds of one enqueue."""
        keep, args, _ = self._chain_args(raw, image, letterbox, attrs)
        ms = np.empty((int(launches),), np.float32)
        host_us = ctypes.c_float()
        self._check(self.lib.oscar_gpu_time(STAGES.index(stage), *args, int(warmup),
                                            int(launches), _ptr(ms), ctypes.byref(host_us)),
                    f"timing {stage}")
        del keep
        return ms, float(host_us.value)


# -- comparison --------------------------------------------------------------------------------
def bit_mismatch(name: str, got: np.ndarray, want: np.ndarray) -> Optional[str]:
    """None when ``got`` and ``want`` have the same shape, kind and bits (floats as float32
    bits: -0.0 differs from 0.0, a NaN equals the same NaN); else a one-line description of
    the first difference and how many elements differ."""
    got, want = np.asarray(got), np.asarray(want)
    if got.shape != want.shape:
        return f"{name}: shape {got.shape} != {want.shape}"
    kinds = {got.dtype.kind, want.dtype.kind}
    if kinds <= {"f"}:
        g, w = (np.ascontiguousarray(a, np.float32).view(np.uint32) for a in (got, want))
    elif kinds <= {"i", "u"}:
        g, w = got.astype(np.int64), want.astype(np.int64)
    else:
        return f"{name}: dtype {got.dtype} vs {want.dtype}"
    diff = np.argwhere(g != w)
    if len(diff) == 0:
        return None
    idx = tuple(int(i) for i in diff[0])
    gv, wv = got[idx], want[idx]
    bits = ""
    if "f" in kinds:
        bits = f" (bits {int(g[idx]):#010x} vs {int(w[idx]):#010x})"
    return (f"{name}: {len(diff)} of {g.size} elements differ; first at {list(idx)}: "
            f"{gv!r} vs {wv!r}{bits}")


def compare_outputs(got: Dict[str, np.ndarray], want: Dict[str, np.ndarray],
                    names: Sequence[str] = ALL_OUT, label: str = "") -> List[str]:
    """Mismatch lines for every output of ``names`` (a missing one is a mismatch too)."""
    out = []
    for n in names:
        key = f"{label}{n}"
        if n not in got or n not in want:
            out.append(f"{key}: missing from {'the runner' if n not in got else 'the reference'}")
            continue
        m = bit_mismatch(key, got[n], want[n])
        if m:
            out.append(m)
    return out


def kept_rows(decode_boxes, decode_scores, decode_count, nms_boxes, nms_scores, nms_num
              ) -> np.ndarray:
    """The candidate row of every kept box [B,M] (-1 past num or when no candidate has the
    kept box's bits): the first unused row among the first count with equal box and score
    bits. Gives the kept indices of a runner that does not output them."""
    db = _f32(decode_boxes).view(np.uint32)
    ds = _f32(decode_scores).view(np.uint32)
    nb = _f32(nms_boxes).view(np.uint32)
    ns = _f32(nms_scores).view(np.uint32)
    b, m = ns.shape
    rows = np.full((b, m), -1, np.int32)
    for i in range(b):
        n = min(max(int(nms_num[i]), 0), m)
        c = min(max(int(decode_count[i]), 0), db.shape[1])
        used = np.zeros(c, bool)
        for r in range(n):
            hit = np.flatnonzero((db[i, :c] == nb[i, r]).all(axis=1) & (ds[i, :c] == ns[i, r])
                                 & ~used)
            if len(hit):
                rows[i, r] = hit[0]
                used[hit[0]] = True
    return rows


# -- cases -------------------------------------------------------------------------------------
@dataclass
class Case:
    """One input set of the plugins: raw outputs [B,...] (FP32 or FP16), the network input image
    [B,C,H,W], letterbox [B,4], attributes; ``expected`` (golden files only) the stored
    outputs; ``clamp_hw`` [B,2] the content sizes (also checks OscarDecode's clamp input)."""

    name: str
    raw: Tuple[np.ndarray, ...]
    image: np.ndarray
    letterbox: Optional[np.ndarray]
    attrs: Dict[str, Any]
    expected: Dict[str, np.ndarray] = field(default_factory=dict)
    clamp_hw: Optional[np.ndarray] = None


def default_attrs() -> Dict[str, Any]:
    """The plugins' default attributes (oscar_edge.postprocess)."""
    return dict(score_threshold=pp.SCORE_THR, topk=pp.PRE_NMS_TOPK, iou_threshold=pp.IOU_THR,
                max_detections=pp.MAX_DET, centroid=int(pp.PEAK_CENTROID_DEFAULT))


def load_golden(path: Path) -> Case:
    """One golden file (cpp_plugins/golden/make_golden.py) as a Case."""
    with np.load(path) as data:
        g = {k: data[k] for k in data.files}
    missing = [k for k in RAW_NAMES + ("image", "letterbox") + ATTRS + ALL_OUT if k not in g]
    if missing:
        raise ValueError(f"{path}: not a golden file, missing {', '.join(missing)}")
    attrs = {k: g[k].item() for k in ATTRS}
    return Case(Path(path).stem, tuple(g[n] for n in RAW_NAMES), g["image"], g["letterbox"],
                attrs, {k: g[k] for k in ALL_OUT})


def golden_cases(folder: Path = GOLDEN_DIR) -> List[Case]:
    """Every golden file of ``folder``, sorted by name; ValueError when there is none."""
    paths = sorted(Path(folder).glob("*.npz"))
    if not paths:
        raise ValueError(f"no golden vectors (*.npz) in {folder}")
    return [load_golden(p) for p in paths]


def pick_samples(samples: Sequence, n: int) -> List:
    """``n`` samples of a split: the first n - 1 with targets and the first background; for
    n = 1 the first with targets (a timing input that gives the NMS something to do)."""
    with_targets = [s for s in samples if len(s.boxes)]
    background = [s for s in samples if not len(s.boxes)]
    picked = with_targets[: max(n - 1, 1)] + (background[:1] if n > 1 else [])
    return (picked + [s for s in samples if s not in picked])[:n]


def real_cases(data_root: Path, split: str = "val_full", n_images: int = 4,
               device: str = "cuda", fit_cases: bool = True) -> List[Case]:
    """Raw outputs of the shipped PyTorch model on ``n_images`` images of ``split``: one batch
    letterboxed into the 640x512 input (FP32, and the same tensors in FP16), and with
    ``fit_cases`` each image alone at its keep-ratio fit size (evaluate's input); all with the
    default attributes."""
    from oscar_edge.backends.torch_backend import TorchBackend
    from oscar_edge.checkpoint import load_model
    from oscar_edge.data.annotations import load_samples
    from oscar_edge.preprocess import prepare, read_grey

    model, _ = load_model(None)
    backend = TorchBackend(model, device)
    samples = pick_samples(load_samples(str(data_root), split), n_images)
    attrs = default_attrs()
    fixed_x, fixed_lb, fixed_raw, fixed_clamp, cases = [], [], [], [], []
    for s in samples:
        grey = read_grey(s.image_path)
        x, box = prepare(grey, input_size=TIMING_HW)
        fixed_x.append(x)
        fixed_lb.append(box.tensor())
        fixed_clamp.append(box.resized)
        fixed_raw.append([_f32(o) for o in backend(x[None])])
        if not fit_cases:
            continue
        xf, boxf = prepare(grey)
        rawf = tuple(_f32(o) for o in backend(xf[None]))
        cases.append(Case(f"val_fit_{s.name}_{xf.shape[2]}x{xf.shape[1]}", rawf, xf[None],
                          boxf.tensor()[None], attrs, clamp_hw=_f32([boxf.resized])))
    raw = tuple(np.concatenate([r[i] for r in fixed_raw]) for i in range(5))
    image, lb, clamp = np.stack(fixed_x), np.stack(fixed_lb), _f32(fixed_clamp)
    tag = f"val_{TIMING_HW[1]}x{TIMING_HW[0]}_b{len(samples)}"
    return [Case(f"{tag}_fp32", raw, image, lb, attrs, clamp_hw=clamp),
            Case(f"{tag}_fp16", tuple(r.astype(np.float16) for r in raw),
                 image.astype(np.float16), lb, attrs, clamp_hw=clamp)] + cases


def synthetic_case(hw: Tuple[int, int] = TIMING_HW, seed: int = 7) -> Case:
    """A 640x512 input made like the golden vectors (when SIRST-V2 is not at hand)."""
    sys.path.insert(0, str(GOLDEN_DIR))
    import make_golden

    raw = make_golden._inputs(seed, 1, hw, -1.0, 2.0, quant=0.25)
    image = make_golden._image(seed, 1, hw)
    lb = _f32([[hw[0], hw[1], 1.0, 1.0]])
    return Case(f"synthetic_{hw[1]}x{hw[0]}", tuple(raw), image, lb, default_attrs())


# -- checks ------------------------------------------------------------------------------------
def check_case(runner, reference: CpuTwinRunner, case: Case) -> Dict[str, Any]:
    """Every comparison of one case. Returns {"name", "mismatches": [...], figures}."""
    a = case.attrs
    ref = reference.chain(case.raw, case.image, case.letterbox, a)
    bad: List[str] = []
    if case.expected:  # the CPU twin of this machine reproduces the stored goldens
        bad += compare_outputs(ref, case.expected, label="cpu-twin vs golden: ")
    # each kernel alone, on the reference's inputs
    dec = dict(zip(DECODE_OUT, runner.decode(case.raw, a["score_threshold"], a["topk"])))
    bad += compare_outputs(dec, ref, DECODE_OUT, "decode: ")
    nms_in = tuple(ref[n] for n in DECODE_OUT)
    nms = dict(zip(NMS_OUT, runner.nms(*nms_in, a["iou_threshold"], a["max_detections"])))
    bad += compare_outputs(nms, ref, NMS_OUT, "nms: ")
    refined = runner.peak_refine(case.image, ref["nms_boxes"], ref["nms_num"], case.letterbox,
                                 a["centroid"])
    bad += compare_outputs({"refine_boxes": refined}, ref, REFINE_OUT, "refine: ")
    # FP16 candidates into OscarNMS (a plugin input type of its own)
    nms16_in = (nms_in[0].astype(np.float16), nms_in[1].astype(np.float16), nms_in[2])
    nms16 = dict(zip(NMS_OUT, runner.nms(*nms16_in, a["iou_threshold"], a["max_detections"])))
    ref16 = dict(zip(NMS_OUT, reference.nms(*nms16_in, a["iou_threshold"],
                                            a["max_detections"])))
    bad += compare_outputs(nms16, ref16, NMS_OUT, "nms fp16 inputs: ")
    # the three chained on the device
    got = runner.chain(case.raw, case.image, case.letterbox, a)
    bad += compare_outputs(got, ref, ALL_OUT, "chain: ")
    want_rows = reference.nms_index(*nms_in, a["iou_threshold"], a["max_detections"])
    rows = kept_rows(*(got[n] for n in DECODE_OUT), got["nms_boxes"], got["nms_scores"],
                     got["nms_num"])
    m = bit_mismatch("chain: kept candidate rows", rows, want_rows)
    if m:
        bad.append(m)
    if case.clamp_hw is not None:  # OscarDecode's clamp input (the CPU pipeline's clamp)
        dc = dict(zip(DECODE_OUT, runner.decode(case.raw, a["score_threshold"], a["topk"],
                                                case.clamp_hw)))
        rc = dict(zip(DECODE_OUT, reference.decode(case.raw, a["score_threshold"], a["topk"],
                                                   case.clamp_hw)))
        bad += compare_outputs(dc, rc, DECODE_OUT, "decode with clamp: ")
    return {"name": case.name, "dtype": str(case.raw[0].dtype),
            "shape": list(case.image.shape), "candidates": ref["decode_count"].tolist(),
            "kept": ref["nms_num"].tolist(), "mismatches": bad}


def run_checks(runner, reference: CpuTwinRunner, cases: Sequence[Case]) -> Dict[str, Any]:
    """check_case on every case; a case that raises is a failed case, the rest still run."""
    results = []
    for case in cases:
        try:
            results.append(check_case(runner, reference, case))
        except Exception as exc:  # a CUDA error in one case must not hide the others
            results.append({"name": case.name, "mismatches": [f"error: {exc}"]})
    failed = [r["name"] for r in results if r["mismatches"]]
    return {"cases": len(results), "failed": failed, "results": results}


def timing(runner: GpuRunner, case: Case, launches: int = 1000, warmup: int = 50
           ) -> Dict[str, Any]:
    """Per-stage device time of ``case`` (batch 1): median, p10, p90, mean (microseconds) of
    ``launches`` launches, and the mean host enqueue time."""
    out: Dict[str, Any] = {}
    for stage in STAGES:
        ms, host_us = runner.time(stage, case.raw, case.image, case.letterbox, case.attrs,
                                  launches, warmup)
        us = ms.astype(np.float64) * 1000.0
        out[stage] = {"median_us": round(float(np.median(us)), 2),
                      "p10_us": round(float(np.percentile(us, 10)), 2),
                      "p90_us": round(float(np.percentile(us, 90)), 2),
                      "mean_us": round(float(us.mean()), 2),
                      "host_enqueue_us": round(host_us, 2), "launches": int(launches)}
    return out


def _first_image(case: Case) -> Case:
    """Batch 1 of a case."""
    return Case(case.name.replace(f"_b{case.image.shape[0]}", "_b1"),
                tuple(r[:1] for r in case.raw), case.image[:1],
                None if case.letterbox is None else case.letterbox[:1], case.attrs)


# -- command line ------------------------------------------------------------------------------
def _check_command(args: argparse.Namespace) -> Tuple[bool, str, Dict[str, Any]]:
    runner = GpuRunner(args.runner)
    reference = CpuTwinRunner()
    cases = golden_cases(args.golden)
    notes = []
    try:
        cases += real_cases(args.data, args.split, args.images, args.model_device)
    except Exception as exc:  # no data, no model: the goldens still run, the step fails
        notes.append(f"real val outputs unavailable: {gpu_report.one_line(str(exc), 200)}")
    res = run_checks(runner, reference, cases)
    figures = {"device": runner.info, "cases": res["cases"],
               "golden_cases": len([c for c in cases if c.expected]),
               "real_cases": len([c for c in cases if not c.expected]),
               "failed_cases": res["failed"],
               "per_case": {r["name"]: {"candidates": r.get("candidates"), "kept": r.get("kept"),
                                        "mismatches": r["mismatches"][:5]}
                            for r in res["results"]}}
    ok = not res["failed"] and not notes
    if ok:
        msg = (f"{res['cases']} cases ({figures['golden_cases']} golden, "
               f"{figures['real_cases']} val_full) bit-identical to the CPU twin")
    else:
        first = next((r["mismatches"][0] for r in res["results"] if r["mismatches"]), "")
        msg = "; ".join(notes + ([f"{len(res['failed'])} of {res['cases']} cases differ: "
                                  f"{', '.join(res['failed'])}; {first}"] if res["failed"]
                                 else []))
    return ok, msg, figures


def _time_command(args: argparse.Namespace) -> Tuple[bool, str, Dict[str, Any]]:
    runner = GpuRunner(args.runner)
    source, note = None, ""
    try:
        source = _first_image(real_cases(args.data, args.split, 1, args.model_device,
                                         fit_cases=False)[0])
    except Exception as exc:
        note = f"SIRST-V2 unavailable ({gpu_report.one_line(str(exc), 120)}): synthetic input"
        source = synthetic_case()
    figures: Dict[str, Any] = {"device": runner.info, "input": source.name,
                               "input_hw": list(source.image.shape[2:]),
                               "candidates": None, "kept": None}
    ref = CpuTwinRunner().chain(source.raw, source.image, source.letterbox, source.attrs)
    figures.update(candidates=int(ref["decode_count"][0]), kept=int(ref["nms_num"][0]))
    half = Case(source.name + "_fp16", tuple(r.astype(np.float16) for r in source.raw),
                source.image.astype(np.float16), source.letterbox, source.attrs)
    figures["fp32"] = timing(runner, source, args.launches, args.warmup)
    figures["fp16"] = timing(runner, half, args.launches, args.warmup)
    f = figures["fp32"]
    msg = (f"640x512 FP32 median of {args.launches}: decode {f['decode']['median_us']:.1f} us, "
           f"NMS {f['nms']['median_us']:.1f} us, refine {f['refine']['median_us']:.1f} us, "
           f"chain {f['chain']['median_us']:.1f} us" + (f"; {note}" if note else ""))
    return True, msg, figures


def _default_data() -> str:
    from oscar_edge.data import default_data_root

    return default_data_root()


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="compile the kernels and the runner with nvcc")
    b.add_argument("--arch", action="append", required=True, help="e.g. sm_90 (repeatable)")
    b.add_argument("--out", type=Path, required=True)
    for name, text in (("check", "golden + val_full outputs vs the CPU twin, bit for bit"),
                       ("time", "CUDA-event timing at 640x512")):
        p = sub.add_parser(name, help=text)
        p.add_argument("--runner", type=Path, required=True, help="liboscar_gpu_runner.so")
        p.add_argument("--data", type=Path, default=None, help="SIRST-V2 root")
        p.add_argument("--split", default="val_full")
        p.add_argument("--model-device", default="cuda", help="where the model makes the raw "
                       "outputs (default cuda)")
        p.add_argument("--step-json", type=Path, default=os.environ.get(STEP_JSON_ENV),
                       help=f"write the step record here (default: ${STEP_JSON_ENV})")
        if name == "check":
            p.add_argument("--images", type=int, default=4)
            p.add_argument("--golden", type=Path, default=GOLDEN_DIR)
        else:
            p.add_argument("--launches", type=int, default=1000)
            p.add_argument("--warmup", type=int, default=50)
    return ap


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    if args.cmd == "build":
        try:
            out = build_runner(args.arch, args.out)
        except (GpuRunnerError, ValueError) as exc:
            print(f"gpu_kernels: error: {exc}", file=sys.stderr)
            return 1
        print(f"built {out} ({out.stat().st_size} bytes) for {', '.join(args.arch)}")
        return 0
    if args.data is None:
        args.data = Path(_default_data())
    name = "kernels" if args.cmd == "check" else "timing"
    t0 = time.time()
    try:
        ok, msg, figures = (_check_command if args.cmd == "check" else _time_command)(args)
    except (GpuRunnerError, ValueError, OSError) as exc:
        ok, msg, figures = False, str(exc), {}
    figures["seconds"] = round(time.time() - t0, 2)
    if args.step_json:
        gpu_report.write_step(args.step_json, name, ok, msg, figures)
    print(("ok: " if ok else "FAILED: ") + gpu_report.one_line(msg, 2000))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
