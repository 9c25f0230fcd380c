"""FP32 ONNX raw-head graph -> INT8 Q/DQ graph (ModelOpt PTQ) or FP16 graph (ModelOpt AutoCast).

    python export/quantize.py --onnx model.onnx --precision int8 \
        --calib-data ../shared/data/sirst-v2 --calib-split train_full \
        [--calib-images 64] [--seed 0] [--calib-size HxW] --out model.int8.onnx
    python export/quantize.py --onnx model.onnx --precision fp16 ... --out model.fp16.onnx

Reduced precision is put into the graph (TensorRT 11 builds strongly typed networks only; the
same graphs build on TensorRT 10.x): see ``shared/docs/deploy-notes.md``.

INT8: ``modelopt.onnx.quantization.quantize(quantize_mode="int8")``, max calibration by default
(measured on val_full with 64 train_full images: entropy lost 5.8 mNoCoAP points against FP32,
max none; ``--calib-method entropy`` remains) on ONNX Runtime's CPU provider, ``high_precision_dtype="fp32"`` so the
non-quantized parts stay FP32 and ONNX Runtime CPU can run the result (TensorRT picks its own
kernels for them). The raw-head graph has no custom nodes, so calibration never needs TensorRT.

FP16: ``modelopt.onnx.autocast.convert_to_mixed_precision(low_precision_type="fp16",
keep_io_types=True)``: graph input and outputs stay float32, so every backend is fed the same
tensors; AutoCast keeps in FP32 the nodes whose values exceed its ``data_max`` on the
calibration images (reference run on the CPU provider).

Calibration images (both precisions):
* ``--calib-data`` is a SIRST-V2 root (``splits/<split>.txt`` + ``mixed/<name>.png``) or, when
  it has no ``splits`` folder, a folder of image files.
* ``--calib-images`` images are drawn without replacement with ``numpy.random.default_rng(seed)``
  from the split's list (file order), so the same seed gives the same images in the same order;
  their names are recorded in the output's ``metadata_props`` (``calib_images``).
* Each image goes through ``oscar_edge.preprocess.read_grey`` + ``prepare`` exactly as at
  inference: by default the keep-ratio (1000, 600) fit padded to a multiple of 32 (the size
  ``oscar-edge evaluate`` and the Detector use, so the calibrated activation ranges are those
  of the measured and deployed path; shapes differ per image, batch 1). ``--calib-size HxW``
  letterboxes every image into one fixed size instead (for a static-shape engine that runs at
  that size); H and W must be multiples of 32.
"""
from __future__ import annotations

import argparse
import contextlib
import hashlib
import logging
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..errors import UserError, run_cli
from ..postprocess import OUTPUT_NAMES
from ..preprocess import FIT_SIZE, SIZE_DIVISOR, prepare, read_grey
from ..sizes import parse_size as _parse_size

INPUT_NAME = "image"
PRECISIONS = ("int8", "fp16")
# Who runs the INT8 graph: TensorRT (ModelOpt, Q/DQ on the inputs of quantizable layers, what
# TensorRT fuses) or ONNX Runtime's CPU provider (its own quantizer, Q/DQ around every op, what
# its QDQ transformer fuses into QLinearConv / QLinearAdd ... integer kernels).
INT8_TARGETS = ("tensorrt", "onnxruntime")
CALIB_METHODS = ("entropy", "max")
DEFAULT_CALIB_IMAGES = 64
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


# --------------------------------------------------------------------------- calibration data
def parse_size(text: Optional[str]) -> Optional[Tuple[int, int]]:
    """'512x640' (height x width, multiples of 32) -> (512, 640); None -> None."""
    if text is None:
        return None
    try:
        return _parse_size(text, text_order="HxW", order="hw_out", multiple=SIZE_DIVISOR,
                           name="--calib-size")
    except ValueError as exc:
        raise UserError(str(exc)) from None


def list_calibration_images(root: str | os.PathLike, split: str) -> List[str]:
    """Every candidate image path, in a fixed order (split file order, else sorted names)."""
    from ..data.annotations import IMAGE_DIR, SPLIT_DIR, read_split

    root = Path(root)
    if not root.is_dir():
        raise UserError(f"calibration data folder not found: {root}")
    if (root / SPLIT_DIR).is_dir():
        names = read_split(root, split)  # FileNotFoundError lists the splits there
        if not names:
            raise UserError(f"no calibration images: split {split!r} in {root} lists no images")
        return [str(root / IMAGE_DIR / f"{n}.png") for n in names]
    files = sorted(str(p) for p in root.iterdir()
                   if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise UserError(f"no calibration images in {root}: expected {SPLIT_DIR}/{split}.txt "
                        f"(SIRST-V2 layout) or image files ({', '.join(IMAGE_SUFFIXES)})")
    return files


def select_calibration_images(root: str | os.PathLike, split: str, count: int = DEFAULT_CALIB_IMAGES,
                              seed: int = 0) -> List[str]:
    """``count`` paths drawn without replacement by ``default_rng(seed)`` (reproducible)."""
    if count < 1:
        raise UserError(f"--calib-images must be >= 1, got {count}")
    paths = list_calibration_images(root, split)
    rng = np.random.default_rng(seed)
    idx = rng.choice(len(paths), size=min(count, len(paths)), replace=False)
    return [paths[i] for i in idx]


def calibration_input(path: str, size: Optional[Tuple[int, int]] = None) -> np.ndarray:
    """(1, 3, H, W) float32 network input of one image, prepared as at inference."""
    x, _ = prepare(read_grey(path), input_size=size)
    return x[None]


def _progress(total: int, desc: str):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="img", leave=False, file=sys.stderr)


def make_reader(paths: Sequence[str], size: Optional[Tuple[int, int]] = None, desc: str = "calibrating"):
    """An ``onnxruntime.quantization.CalibrationDataReader`` that prepares one image per step
    (nothing is cached: memory stays at one image whatever the count) and shows progress."""
    from onnxruntime.quantization import CalibrationDataReader

    class _Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.paths = list(paths)
            self.pos = 0
            self.bar = None

        def __len__(self) -> int:
            return len(self.paths)

        def get_first(self) -> Dict[str, np.ndarray]:
            return {INPUT_NAME: calibration_input(self.paths[0], size)}

        def get_next(self) -> Optional[Dict[str, np.ndarray]]:
            if self.bar is None:
                self.bar = _progress(len(self.paths), desc)
            if self.pos >= len(self.paths):
                self.bar.close()
                return None
            item = {INPUT_NAME: calibration_input(self.paths[self.pos], size)}
            self.pos += 1
            self.bar.update(1)
            return item

        def rewind(self) -> None:
            self.pos = 0
            if self.bar is not None:
                self.bar.close()
            self.bar = None

    return _Reader()


# --------------------------------------------------------------------------- ONNX in / out
def load_fp32_graph(path: str | os.PathLike):
    """Load and check the input graph; UserError (one line) for a missing / corrupt / foreign /
    already reduced-precision file."""
    import onnx

    path = Path(path)
    if not path.is_file():
        raise UserError(f"ONNX model not found: {path}")
    try:
        model = onnx.load(str(path))
        onnx.checker.check_model(model)
    except Exception as exc:  # DecodeError, ValidationError, ...
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"cannot read ONNX model {path}: {text}") from None
    inputs = [i.name for i in model.graph.input]
    outputs = [o.name for o in model.graph.output]
    if inputs != [INPUT_NAME] or set(OUTPUT_NAMES) - set(outputs):
        raise UserError(f"{path} is not an oscar-edge raw-head graph (inputs {inputs}, outputs "
                        f"{outputs}); export one with export/export_onnx.py")
    if model.graph.input[0].type.tensor_type.elem_type != onnx.TensorProto.FLOAT:
        raise UserError(f"{path}: input {INPUT_NAME!r} is not float32")
    if _reduced_precision(model):
        raise UserError(f"{path} is already a reduced-precision graph "
                        f"({_reduced_precision(model)}); quantize the FP32 export")
    return model


def _reduced_precision(model) -> str:
    """'' for an FP32 graph, else what makes it INT8 / FP16."""
    import onnx

    ops = {n.op_type for n in model.graph.node}
    if ops & {"QuantizeLinear", "DequantizeLinear"}:
        return "Q/DQ nodes"
    half = (onnx.TensorProto.FLOAT16, onnx.TensorProto.BFLOAT16)
    if any(t.data_type in half for t in model.graph.initializer):
        return "16-bit weights"
    for n in model.graph.node:
        if n.op_type == "Cast" and any(a.name == "to" and a.i in half for a in n.attribute):
            return "casts to 16-bit"
    return ""


def _check_out(out: str | os.PathLike) -> Path:
    out = Path(out)
    if out.suffix.lower() != ".onnx":
        raise UserError(f"output file must end in .onnx: {out}")
    if out.is_dir():
        raise UserError(f"output path is a folder: {out}")
    out.parent.mkdir(parents=True, exist_ok=True)
    return out


def _stream_handlers() -> List[logging.StreamHandler]:
    """The StreamHandlers of ModelOpt's and Polygraphy's loggers (those that exist now)."""
    found = []
    for name in list(logging.Logger.manager.loggerDict):
        if name.split(".")[0] in ("modelopt", "polygraphy"):
            for h in getattr(logging.getLogger(name), "handlers", ()):
                if isinstance(h, logging.StreamHandler) and not isinstance(h, logging.FileHandler):
                    found.append(h)
    return found


@contextlib.contextmanager
def _quiet(verbose: bool):
    """Keep ModelOpt / ONNX Runtime chatter off the terminal unless --verbose: their loggers
    at WARNING, ONNX Runtime's calibration print()s dropped, and the per-tensor progress bar of
    ModelOpt's histogram collection (module attribute ``tqdm``) silenced; our own
    per-image bar stays (it writes to stderr)."""
    if verbose:
        yield
        return
    names = ("modelopt", "modelopt.onnx", "modelopt.onnx.autocast", "onnxruntime", "polygraphy")
    saved = {n: logging.getLogger(n).level for n in names}
    for n in names:
        logging.getLogger(n).setLevel(logging.WARNING)
    patched = sys.modules.get("modelopt.onnx.quantization.ort_patching")
    saved_tqdm = getattr(patched, "tqdm", None)
    if saved_tqdm is not None:
        patched.tqdm = lambda iterable=None, *a, **k: iterable
    null = open(os.devnull, "w")
    # ModelOpt creates its log handlers on first use, bound to whatever sys.stdout is then:
    # silence the existing ones for the block, and afterwards point every handler bound to the
    # null file back to stdout before closing it (otherwise its later warnings end in
    # "--- Logging error --- I/O operation on closed file").
    before = {h: h.setStream(null) for h in _stream_handlers()}
    try:
        with contextlib.redirect_stdout(null):
            yield
    finally:
        for h in _stream_handlers():
            if h in before:
                h.setStream(before[h])
            elif h.stream is null:
                h.setStream(sys.stdout)
        null.close()
        for n, lvl in saved.items():
            logging.getLogger(n).setLevel(lvl)
        if saved_tqdm is not None:
            patched.tqdm = saved_tqdm


def _modelopt_version() -> str:
    try:
        from importlib.metadata import version

        return version("nvidia-modelopt")
    except Exception:
        return "unknown"


def _finish(src_model, produced: str | os.PathLike, out: Path, props: Dict[str, str]) -> None:
    """Copy the FP32 graph's metadata onto the produced graph, add ``props``, check, save."""
    import onnx

    from .onnx_export import get_metadata, set_metadata

    model = onnx.load(str(produced))
    meta = get_metadata(src_model)
    meta.update(props)
    meta["opset"] = str(max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")))
    set_metadata(model, meta)
    onnx.checker.check_model(model)
    tmp = out.with_name(out.name + ".tmp")
    onnx.save(model, str(tmp))
    os.replace(tmp, out)


def _calib_props(paths: Sequence[str], split: str, seed: int, size, method: str = "") -> Dict[str, str]:
    names = [Path(p).stem for p in paths]
    props = {
        "calib_split": split,
        "calib_seed": str(seed),
        "calib_count": str(len(paths)),
        "calib_size": f"fit {FIT_SIZE[0]},{FIT_SIZE[1]} padded to {SIZE_DIVISOR}" if size is None
                      else f"{size[0]}x{size[1]}",
        "calib_images": ",".join(names),
        "calib_images_sha256": hashlib.sha256("\n".join(names).encode()).hexdigest(),
        "modelopt_version": _modelopt_version(),
    }
    if method:
        props["calib_method"] = method
    return props


# --------------------------------------------------------------------------- INT8 / FP16
def quantize_int8(onnx_path: str | os.PathLike, out: str | os.PathLike, paths: Sequence[str],
                  size: Optional[Tuple[int, int]] = None, method: str = "entropy",
                  split: str = "", seed: int = 0, verbose: bool = False,
                  dq_only: bool = False) -> Path:
    """ModelOpt INT8 PTQ (explicit Q/DQ, FP32 elsewhere) calibrated on ``paths`` (CPU).

    ``dq_only``: store the weights as INT8 initializers + DequantizeLinear (ModelOpt's
    ``dq_only``; about 4x smaller file, the same outputs) instead of FP32 weights + Q/DQ."""
    if method not in CALIB_METHODS:
        raise UserError(f"--calib-method must be one of {CALIB_METHODS}, got {method!r}")
    src = load_fp32_graph(onnx_path)
    out = _check_out(out)
    from modelopt.onnx.quantization import quantize

    with tempfile.TemporaryDirectory(prefix="oscar-int8-") as tmp:
        # ModelOpt writes intermediate copies beside its input: work on a private copy.
        work_in = os.path.join(tmp, "fp32.onnx")
        shutil.copyfile(onnx_path, work_in)
        work_out = os.path.join(tmp, "int8.onnx")
        with _quiet(verbose):
            quantize(
                onnx_path=work_in,
                quantize_mode="int8",
                calibration_data_reader=make_reader(paths, size, "int8 calibration"),
                calibration_method=method,
                calibration_eps=["cpu"],
                high_precision_dtype="fp32",
                output_path=work_out,
                log_level="INFO" if verbose else "WARNING",
                dq_only=dq_only,
            )
        if not os.path.isfile(work_out):
            raise RuntimeError("ModelOpt wrote no quantized model")
        _finish(src, work_out, out, {"precision": "int8", "int8_target": "tensorrt",
                                     "int8_weights": "int8+DQ" if dq_only
                                     else "fp32+Q/DQ", **_calib_props(paths, split, seed, size,
                                                                       method)})
    return out


def _in_clean_process(kwargs: Dict[str, object]) -> None:
    """Run :func:`quantize_int8_ort` with ``kwargs`` in a fresh Python (same stderr)."""
    import json
    import subprocess

    code = ("import json, sys\n"
            "from oscar_edge.export.quantize import quantize_int8_ort\n"
            "kw = json.loads(sys.argv[1])\n"
            "kw['size'] = tuple(kw['size']) if kw['size'] else None\n"
            "quantize_int8_ort(**kw)\n")
    p = subprocess.run([sys.executable, "-c", code, json.dumps(kwargs)], stdout=subprocess.DEVNULL,
                       stderr=None if kwargs.get("verbose") else subprocess.PIPE, text=True)
    if p.returncode != 0:
        last = (p.stderr or "").strip().splitlines()[-1:] or [f"exit code {p.returncode}"]
        raise RuntimeError(f"ONNX Runtime quantization failed: {last[0]}")


def quantize_int8_ort(onnx_path: str | os.PathLike, out: str | os.PathLike, paths: Sequence[str],
                      size: Optional[Tuple[int, int]] = None, method: str = "max",
                      split: str = "", seed: int = 0, verbose: bool = False) -> Path:
    """INT8 for ONNX Runtime's CPU provider: ``onnxruntime.quantization.quantize_static``.

    QDQ format, per-channel symmetric INT8 weights, asymmetric UINT8 activations (the u8s8
    pair that MLAS's VNNI / AVX-512 integer kernels take), calibrated on ``paths`` with the
    same preprocessing and image list as the TensorRT graph. ModelOpt's graph puts Q/DQ only
    on layer inputs, as TensorRT wants; ONNX Runtime can fuse a node into an integer kernel
    only when its output is quantized too, so on the CPU it runs ModelOpt's graph as FP32
    layers plus Q/DQ arithmetic (slower than FP32; see README, latency). This graph is for
    ONNX Runtime only: build TensorRT engines from the ModelOpt one."""
    if method not in CALIB_METHODS:
        raise UserError(f"--calib-method must be one of {CALIB_METHODS}, got {method!r}")
    src = load_fp32_graph(onnx_path)
    out = _check_out(out)
    if "modelopt.onnx.quantization" in sys.modules:
        # ModelOpt patches onnxruntime.quantization's calibrators in place when it quantizes,
        # after which quantize_static loses the graph input's range ("Quantization parameters
        # are not specified for param image"): calibrate in a clean interpreter instead.
        _in_clean_process(dict(onnx_path=str(onnx_path), out=str(out), paths=list(paths),
                               size=list(size) if size else None, method=method, split=split,
                               seed=seed, verbose=verbose))
        return out
    from onnxruntime.quantization import (CalibrationMethod, QuantFormat, QuantType,
                                          quantize_static)
    from onnxruntime.quantization.shape_inference import quant_pre_process

    calib = {"max": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy}[method]
    with tempfile.TemporaryDirectory(prefix="oscar-int8-ort-") as tmp:
        pre = os.path.join(tmp, "fp32.pre.onnx")
        work_out = os.path.join(tmp, "int8.onnx")
        root = logging.getLogger()
        root_level = root.level
        if not verbose:  # the quantizer warns per GroupNorm constant on the root logger
            root.setLevel(logging.ERROR)
        try:
            with _quiet(verbose):
                # auto_merge: the symbolic shapes of an upsampled level (2 * floor(H / 64)...)
                # and of the finer level it is added to (floor(H / 32)...) are equal for the
                # graph's multiples of 32, which the inference cannot prove by itself
                quant_pre_process(str(onnx_path), pre, auto_merge=True)
                quantize_static(pre, work_out, make_reader(paths, size, "int8 (ORT) calibration"),
                                quant_format=QuantFormat.QDQ, per_channel=True,
                                activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                                calibrate_method=calib)
        finally:
            root.setLevel(root_level)
        if not os.path.isfile(work_out):
            raise RuntimeError("ONNX Runtime's quantizer wrote no model")
        props = _calib_props(paths, split, seed, size, method)
        props.pop("modelopt_version", None)
        import onnxruntime

        _finish(src, work_out, out, {"precision": "int8", "int8_target": "onnxruntime",
                                     "int8_weights": "int8+DQ",
                                     "onnxruntime_quantizer": onnxruntime.__version__, **props})
    return out


def convert_fp16(onnx_path: str | os.PathLike, out: str | os.PathLike, paths: Sequence[str],
                 size: Optional[Tuple[int, int]] = None, split: str = "", seed: int = 0,
                 verbose: bool = False) -> Path:
    """ModelOpt AutoCast FP16 with FP32 graph I/O; reference ranges from ``paths``."""
    import onnx

    src = load_fp32_graph(onnx_path)
    out = _check_out(out)
    from modelopt.onnx.autocast import convert_to_mixed_precision

    with tempfile.TemporaryDirectory(prefix="oscar-fp16-") as tmp:
        work_in = os.path.join(tmp, "fp32.onnx")
        shutil.copyfile(onnx_path, work_in)
        calib_dir = os.path.join(tmp, "calib")
        os.mkdir(calib_dir)
        bar = _progress(len(paths), "fp16 reference inputs")
        for i, p in enumerate(paths):  # one .npz per batch: AutoCast's multi-batch format
            np.savez(os.path.join(calib_dir, f"{i:05d}.npz"), **{INPUT_NAME: calibration_input(p, size)})
            bar.update(1)
        bar.close()
        with _quiet(verbose):
            if not verbose:
                from modelopt.onnx.autocast import configure_logging

                configure_logging("WARNING")
            model = convert_to_mixed_precision(
                onnx_path=work_in,
                low_precision_type="fp16",
                keep_io_types=True,
                calibration_data=calib_dir,
                providers=["cpu"],
            )
        work_out = os.path.join(tmp, "fp16.onnx")
        onnx.save(model, work_out)
        _finish(src, work_out, out, {"precision": "fp16", **_calib_props(paths, split, seed, size)})
    return out


# --------------------------------------------------------------------------- CLI
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="quantize.py",
                                description="INT8 (ModelOpt PTQ, Q/DQ) or FP16 (ModelOpt "
                                            "AutoCast) version of an exported FP32 ONNX graph.")
    p.add_argument("--onnx", required=True, help="FP32 graph from export/export_onnx.py")
    p.add_argument("--precision", required=True, choices=PRECISIONS)
    p.add_argument("--calib-data", required=True,
                   help="SIRST-V2 root (splits/ + mixed/) or a folder of images")
    p.add_argument("--calib-split", default="train_full",
                   help="split whose images calibrate (default %(default)s)")
    p.add_argument("--calib-images", type=int, default=DEFAULT_CALIB_IMAGES,
                   help="number of images, drawn with --seed (default %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="image selection seed (default 0)")
    p.add_argument("--calib-size", metavar="HxW",
                   help="letterbox every image into this fixed size (multiples of 32) instead "
                        "of the inference fit size (1000, 600)")
    p.add_argument("--calib-method", choices=CALIB_METHODS, default="max",
                   help="INT8 activation range method (default %(default)s)")
    p.add_argument("--int8-target", choices=INT8_TARGETS, default="tensorrt",
                   help="INT8: tensorrt (default; ModelOpt Q/DQ, what TensorRT engines are built "
                        "from) or onnxruntime (ONNX Runtime's quantizer: a graph its CPU "
                        "provider runs with integer kernels)")
    p.add_argument("--dq-only", action="store_true",
                   help="INT8: store weights as INT8 + DequantizeLinear (about 4x smaller file, "
                        "same outputs) instead of FP32 weights + Q/DQ (ModelOpt's default)")
    p.add_argument("--out", required=True, help="output .onnx")
    p.add_argument("--verbose", action="store_true", help="show ModelOpt's log")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    return run_cli(lambda: _main(args), prog="quantize")


def _main(args: argparse.Namespace) -> int:
    size = parse_size(args.calib_size)
    load_fp32_graph(args.onnx)  # fail fast, before reading images
    _check_out(args.out)
    paths = select_calibration_images(args.calib_data, args.calib_split, args.calib_images,
                                      args.seed)
    if len(paths) < args.calib_images:
        print(f"quantize: note: only {len(paths)} images available, using all of them",
              file=sys.stderr)
    for p in paths:  # a missing / corrupt image fails here with its name, not mid-calibration
        read_grey(p)
    t0 = time.perf_counter()
    if args.precision == "int8" and args.int8_target == "onnxruntime":
        if args.dq_only:
            raise UserError("--dq-only applies to --int8-target tensorrt (ONNX Runtime's "
                            "quantizer always stores INT8 weights)")
        out = quantize_int8_ort(args.onnx, args.out, paths, size, args.calib_method,
                                args.calib_split, args.seed, args.verbose)
    elif args.precision == "int8":
        out = quantize_int8(args.onnx, args.out, paths, size, args.calib_method,
                            args.calib_split, args.seed, args.verbose, args.dq_only)
    else:
        out = convert_fp16(args.onnx, args.out, paths, size, args.calib_split, args.seed,
                           args.verbose)
    mb = out.stat().st_size / 1e6
    what = f"fit {FIT_SIZE}" if size is None else f"{size[0]}x{size[1]}"
    target = f" for {args.int8_target}" if args.precision == "int8" else ""
    print(f"wrote {out} ({mb:.2f} MB): {args.precision}{target}, {len(paths)} calibration images from "
          f"{args.calib_split} (seed {args.seed}, {what}) in {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
