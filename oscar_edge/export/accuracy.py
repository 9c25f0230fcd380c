"""FP32 vs INT8 vs FP16 accuracy of the exported graphs, through ONNX Runtime and OpenVINO.

    python export/accuracy.py --fp32 model.onnx --int8 model.int8.onnx --fp16 model.fp16.onnx \
        [--int8-ort model.int8-ort.onnx] --data ../shared/data/sirst-v2 --split val_full \
        [--backends onnxruntime,openvino] [--ov-hints f32,bf16] [--peak-refine on,off] \
        [--json acc.json]

Every graph runs through the same ``Detector`` (preprocessing, decode + NMS) and the same
metrics as ``oscar-edge evaluate``; the result is a Markdown table (precision, backend,
OpenVINO hint, peak refinement, mNoCoAP, AP50, delta mNoCoAP vs ONNX Runtime FP32 with the same
peak refinement, model file size in MB = 10^6 bytes). Each graph runs once per image; the
peak refinement settings share those raw outputs. ``--fp32`` / ``--int8`` / ``--fp16`` default
to nothing except ``--fp32``, which defaults to the shipped FP32 graph.

OpenVINO rows with a bf16 hint on a CPU without bf16 (AVX512_BF16 or AMX) are listed as not
measurable there, since OpenVINO would run them in f32.

If ONNX Runtime's CPU provider cannot load or run the FP16 graph, that row falls back to the
PyTorch model in half precision (``--checkpoint``, default the shipped weights) and the
table says so. ``--fp16-backend torch`` forces that path.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..data import default_data_root
from ..errors import UserError, run_cli


def _row(precision: str, backend: str, path: Optional[str], metrics: Optional[Dict],
         note: str = "", hint: Optional[str] = None, refine: Optional[bool] = True) -> Dict:
    return {
        "precision": precision,
        "backend": backend,
        "ov_hint": hint,
        "peak_refine": refine,
        "model": str(path) if path else "",
        "size_mb": Path(path).stat().st_size / 1e6 if path else float("nan"),
        "mNoCoAP": float(metrics["mNoCoAP"]) if metrics else None,
        "AP50": float(metrics["AP50"]) if metrics else None,
        "Pd": float(metrics["Pd"]) if metrics else None,
        "Fa_per_image": float(metrics["Fa_per_image"]) if metrics else None,
        "num_images": int(metrics["num_images"]) if metrics else None,
        "note": note,
    }


def evaluate_settings(infer, samples, progress: bool = True, refines: Sequence[bool] = (True,),
                      input_size=None) -> List[Dict]:
    """Public name of :func:`_evaluate`."""
    return _evaluate(infer, samples, progress, refines, input_size)


def collect_detections(infer, samples, progress: bool = True,
                       refines: Sequence[bool] = (True,),
                       input_size=None) -> Tuple[List[List], List[np.ndarray]]:
    """Run ``infer`` once per image of ``samples`` and post-process the raw outputs once per
    peak refinement setting. ``input_size`` (height, width): a fixed letterbox input instead of
    the keep-ratio fit.

    Returns:
        (detections, noco_maps): per setting a list with per image ``(boxes (N, 4), scores
        (N,))`` in original image coordinates, and per image its (H, W) NoCo map.
    """
    from tqdm import tqdm

    from ..metrics import noco_map
    from ..pipeline import Detector
    from ..preprocess import read_grey

    detectors = [Detector(infer, peak_refine=r, input_size=input_size) for r in refines]
    dets: List[List] = [[] for _ in refines]
    maps = []
    for s in tqdm(samples, desc="evaluating", unit="img", disable=not progress, leave=False):
        grey = read_grey(s.image_path)
        x, box = detectors[0].preprocess(grey)
        outputs = detectors[0].run(x, box)
        for d, out in zip(detectors, dets):
            r = d.postprocess(outputs, box, x)
            out.append((r.boxes, r.scores))
        maps.append(noco_map(grey, s.boxes))
    return dets, maps


def _evaluate(infer, samples, progress: bool, refines: Sequence[bool] = (True,),
              input_size=None) -> List[Dict]:
    """Metrics of ``infer`` on ``samples``, one dict per peak refinement setting
    (:func:`collect_detections`, then the metrics of ``oscar-edge evaluate``)."""
    from ..metrics import evaluate_detections

    dets, maps = collect_detections(infer, samples, progress, refines, input_size)
    results = []
    for out in dets:
        m = evaluate_detections(out, samples, noco_maps=maps)
        m.pop("curves", None)
        results.append(m)
    return results


def _torch_half(checkpoint: Optional[str]):
    from ..backends.torch_backend import TorchBackend
    from ..checkpoint import load_model

    model, _ = load_model(checkpoint)
    return TorchBackend(model, "cpu", half=True)


def _ort_or_reason(path: str, probe_hw=(64, 64)):
    """(OrtBackend, '') if ORT CPU loads and runs ``path`` on a small probe input, else
    (None, one-line reason)."""
    from ..backends.ort_backend import OrtBackend

    try:
        backend = OrtBackend(path)
        backend(np.zeros((1, 3) + tuple(probe_hw), dtype=np.float32))
        return backend, ""
    except Exception as exc:  # NOT_IMPLEMENTED kernels for float16 and the like
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return None, text


BACKENDS = ("onnxruntime", "openvino")
BACKEND_LABELS = {"onnxruntime": "onnxruntime CPU", "openvino": "OpenVINO CPU"}


def _openvino(path: str, hint: str, threads: Optional[int]):
    from ..backends.openvino_backend import OpenVinoBackend

    return OpenVinoBackend(path, threads=threads, hint=hint)


def _bf16_missing() -> bool:
    from ..backends.openvino_backend import import_openvino

    ov = import_openvino()
    caps = list(ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"))
    return "BF16" not in caps


def compare(fp32: Optional[str], int8: Optional[str], fp16: Optional[str], data: str, split: str,
            checkpoint: Optional[str] = None, fp16_backend: str = "auto",
            progress: bool = True, int8_ort: Optional[str] = None,
            backends: Sequence[str] = ("onnxruntime",), ov_hints: Sequence[str] = ("f32",),
            refines: Sequence[bool] = (True,), threads: Optional[int] = None) -> List[Dict]:
    """Evaluate each given graph on ``split`` with each backend (OpenVINO: each hint) and each
    peak refinement setting; rows in the order backend, FP32, INT8 (TensorRT-style ModelOpt
    Q/DQ), INT8 (ONNX Runtime quantizer), FP16. ``delta_mNoCoAP`` is against ONNX Runtime FP32
    with the same peak refinement (or the first FP32 row with it when ONNX Runtime is not
    among the backends)."""
    from ..backends.factory import SHIPPED_ONNX
    from ..backends.ort_backend import OrtBackend
    from ..data.annotations import load_samples

    fp32 = fp32 or str(SHIPPED_ONNX)
    for p in (fp32, int8, fp16, int8_ort):
        if p and not Path(p).is_file():
            raise UserError(f"ONNX model not found: {p}")
    for b in backends:
        if b not in BACKENDS:
            raise UserError(f"unknown backend {b!r}; choose from {', '.join(BACKENDS)}")
    if "openvino" in backends:
        from ..backends.openvino_backend import check_hint

        for h in ov_hints:
            check_hint(h)
    samples = load_samples(data, split)
    graphs = [("fp32", fp32), ("int8 (Q/DQ)", int8), ("int8 (ORT quantizer)", int8_ort),
              ("fp16", fp16)]
    rows: List[Dict] = []
    for backend in backends:
        for precision, path in graphs:
            if not path:
                continue
            if backend == "openvino":
                for hint in ov_hints:
                    if hint == "bf16" and _bf16_missing():
                        for r in refines:
                            rows.append(_row(precision, BACKEND_LABELS[backend], path, None,
                                             "not measurable here: this CPU has no bf16 "
                                             "(AVX512_BF16 or AMX), OpenVINO would run f32",
                                             hint, r))
                        continue
                    ms = _evaluate(_openvino(path, hint, threads), samples, progress, refines)
                    rows += [_row(precision, BACKEND_LABELS[backend], path, m, "", hint, r)
                             for m, r in zip(ms, refines)]
                continue
            label, note, infer = BACKEND_LABELS[backend], "", None
            if precision == "fp16":
                infer, reason = (None, "forced by --fp16-backend torch") \
                    if fp16_backend == "torch" else _ort_or_reason(path)
                if infer is None:
                    note = (f"PyTorch half-precision fallback: ONNX Runtime CPU did not run "
                            f"{path} ({reason})")
                    print(f"accuracy: note: {note}", file=sys.stderr)
                    label, infer = "PyTorch half (fallback)", _torch_half(checkpoint)
            else:
                infer = OrtBackend(path, threads=threads)
            ms = _evaluate(infer, samples, progress, refines)
            rows += [_row(precision, label, path, m, note, None, r) for m, r in zip(ms, refines)]
    for r in rows:
        base = next((b for b in rows if b["precision"] == "fp32" and b["mNoCoAP"] is not None
                     and b["peak_refine"] == r["peak_refine"]
                     and b["backend"] == BACKEND_LABELS["onnxruntime"]), None) \
            or next((b for b in rows if b["precision"] == "fp32" and b["mNoCoAP"] is not None
                     and b["peak_refine"] == r["peak_refine"]), None)
        r["delta_mNoCoAP"] = (r["mNoCoAP"] - base["mNoCoAP"]) \
            if base is not None and r["mNoCoAP"] is not None else None
    return rows


def markdown(rows: Sequence[Dict], split: str) -> str:
    n = next((r["num_images"] for r in rows if r["num_images"]), 0)
    lines = [
        f"Accuracy on `{split}` ({n} images), same preprocessing, decode + NMS and metrics "
        "(Δ against ONNX Runtime FP32 with the same peak refinement):",
        "",
        "| precision | backend | OpenVINO hint | peak refinement | mNoCoAP | AP50 "
        "| Δ mNoCoAP vs FP32 | model size (MB) |",
        "|---|---|---|---|---:|---:|---:|---:|",
    ]

    def num(v, fmt):
        return "—" if v is None else format(v, fmt)

    for r in rows:
        refine = {True: "on", False: "off", None: ""}[r["peak_refine"]]
        lines.append(f"| {r['precision']} | {r['backend']} | {r['ov_hint'] or ''} | {refine} "
                     f"| {num(r['mNoCoAP'], '.4f')} | {num(r['AP50'], '.4f')} "
                     f"| {num(r['delta_mNoCoAP'], '+.4f')} | {r['size_mb']:.2f} |")
    notes = sorted({r["note"] for r in rows if r["note"]})
    if notes:
        lines += [""] + [f"Note: {t}" for t in notes]
    return "\n".join(lines)


def _csv(text: str) -> List[str]:
    return [t.strip() for t in str(text).split(",") if t.strip()]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="accuracy.py", description=__doc__.splitlines()[0])
    p.add_argument("--fp32", help="FP32 graph from export/export_onnx.py (default: the shipped "
                                   "one)")
    p.add_argument("--int8", help="INT8 Q/DQ graph from export/quantize.py")
    p.add_argument("--fp16", help="FP16 graph from export/quantize.py")
    p.add_argument("--int8-ort", help="INT8 graph from quantize.py --int8-target onnxruntime")
    p.add_argument("--data", default=default_data_root(), help="SIRST-V2 root")
    p.add_argument("--split", default="val_full")
    p.add_argument("--checkpoint", help="weights for the PyTorch FP16 fallback (default: shipped)")
    p.add_argument("--fp16-backend", choices=("auto", "torch"), default="auto",
                   help="auto: ONNX Runtime CPU, PyTorch half if it cannot run the graph")
    p.add_argument("--backends", type=_csv, default=["onnxruntime"],
                   help="comma-separated: onnxruntime, openvino (default onnxruntime)")
    p.add_argument("--ov-hints", type=_csv, default=["f32"],
                   help="OpenVINO precision hints to evaluate, comma-separated: f32, bf16 "
                        "(default f32)")
    p.add_argument("--peak-refine", type=_csv, default=["on"],
                   help="peak refinement settings, comma-separated: on, off (default on)")
    p.add_argument("--threads", type=int, default=None,
                   help="CPU threads of each backend (default: its own)")
    p.add_argument("--json", help="also write the rows as JSON here")
    p.add_argument("--no-progress", action="store_true")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    return run_cli(lambda: _main(args), prog="accuracy")


def _main(args: argparse.Namespace) -> int:
    if args.json and not Path(args.json).resolve().parent.is_dir():
        raise UserError(f"output folder does not exist: {Path(args.json).resolve().parent}")
    bad = [v for v in args.peak_refine if v not in ("on", "off")]
    if bad or not args.peak_refine:
        raise UserError(f"--peak-refine takes on and/or off, got {','.join(args.peak_refine)}")
    rows = compare(args.fp32, args.int8, args.fp16, args.data, args.split, args.checkpoint,
                   args.fp16_backend, progress=not args.no_progress, int8_ort=args.int8_ort,
                   backends=args.backends, ov_hints=args.ov_hints,
                   refines=[v == "on" for v in args.peak_refine], threads=args.threads)
    print(markdown(rows, args.split))
    if args.json:
        Path(args.json).write_text(json.dumps({"split": args.split, "rows": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
