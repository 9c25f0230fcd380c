"""FP32 vs INT8 vs FP16 accuracy of the exported graphs, through ONNX Runtime's CPU provider.

    python export/accuracy.py --fp32 model.onnx --int8 model.int8.onnx --fp16 model.fp16.onnx \
        [--int8-ort model.int8-ort.onnx] --data ../shared/data/sirst-v2 --split val_full \
        [--json acc.json]

Every graph runs through the same ``Detector`` (preprocessing, decode + NMS) and the same
metrics as ``oscar-edge evaluate``; the result is a Markdown table (precision, backend,
mNoCoAP, AP50, delta mNoCoAP vs FP32, model file size in MB = 10^6 bytes).

If ONNX Runtime's CPU provider cannot load or run the FP16 graph, that row falls back to the
PyTorch model in half precision (``--checkpoint``, default the shipped weights) and the
table says so. ``--fp16-backend torch`` forces that path.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

from ..data import default_data_root
from ..errors import UserError, run_cli


def _row(precision: str, backend: str, path: Optional[str], metrics: Dict, note: str = "") -> Dict:
    return {
        "precision": precision,
        "backend": backend,
        "model": str(path) if path else "",
        "size_mb": Path(path).stat().st_size / 1e6 if path else float("nan"),
        "mNoCoAP": float(metrics["mNoCoAP"]),
        "AP50": float(metrics["AP50"]),
        "num_images": int(metrics["num_images"]),
        "note": note,
    }


def _evaluate(infer, samples, progress: bool) -> Dict:
    from ..evaluate import evaluate_model
    from ..pipeline import Detector

    m = evaluate_model(Detector(infer), samples, progress=progress)
    m.pop("curves", None)
    return m


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


def compare(fp32: str, int8: Optional[str], fp16: Optional[str], data: str, split: str,
            checkpoint: Optional[str] = None, fp16_backend: str = "auto",
            progress: bool = True, int8_ort: Optional[str] = None) -> List[Dict]:
    """Evaluate each given graph on ``split``; rows in the order FP32, INT8 (TensorRT-style
    ModelOpt Q/DQ), INT8 (ONNX Runtime quantizer), FP16."""
    from ..backends.ort_backend import OrtBackend
    from ..data.annotations import load_samples

    for p in (fp32, int8, fp16, int8_ort):
        if p and not Path(p).is_file():
            raise UserError(f"ONNX model not found: {p}")
    samples = load_samples(data, split)
    rows = [_row("fp32", "onnxruntime CPU", fp32, _evaluate(OrtBackend(fp32), samples, progress))]
    if int8:
        rows.append(_row("int8 (Q/DQ)", "onnxruntime CPU", int8,
                         _evaluate(OrtBackend(int8), samples, progress)))
    if int8_ort:
        rows.append(_row("int8 (ORT quantizer)", "onnxruntime CPU", int8_ort,
                         _evaluate(OrtBackend(int8_ort), samples, progress)))
    if fp16:
        backend, reason = (None, "forced by --fp16-backend torch") if fp16_backend == "torch" \
            else _ort_or_reason(fp16)
        if backend is not None:
            rows.append(_row("fp16", "onnxruntime CPU", fp16, _evaluate(backend, samples, progress)))
        else:
            note = f"PyTorch half-precision fallback: ONNX Runtime CPU did not run {fp16} ({reason})"
            print(f"accuracy: note: {note}", file=sys.stderr)
            rows.append(_row("fp16", "PyTorch half (fallback)", fp16,
                             _evaluate(_torch_half(checkpoint), samples, progress), note))
    base = rows[0]["mNoCoAP"]
    for r in rows:
        r["delta_mNoCoAP"] = r["mNoCoAP"] - base
    return rows


def markdown(rows: Sequence[Dict], split: str) -> str:
    n = rows[0]["num_images"] if rows else 0
    lines = [
        f"Accuracy on `{split}` ({n} images), same preprocessing, decode + NMS and metrics:",
        "",
        "| precision | backend | mNoCoAP | AP50 | Δ mNoCoAP vs FP32 | model size (MB) |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(f"| {r['precision']} | {r['backend']} | {r['mNoCoAP']:.4f} | {r['AP50']:.4f} "
                     f"| {r['delta_mNoCoAP']:+.4f} | {r['size_mb']:.2f} |")
    notes = [r["note"] for r in rows if r["note"]]
    if notes:
        lines += [""] + [f"Note: {t}" for t in notes]
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="accuracy.py", description=__doc__.splitlines()[0])
    p.add_argument("--fp32", required=True, help="FP32 graph from export/export_onnx.py")
    p.add_argument("--int8", help="INT8 Q/DQ graph from export/quantize.py")
    p.add_argument("--fp16", help="FP16 graph from export/quantize.py")
    p.add_argument("--int8-ort", help="INT8 graph from quantize.py --int8-target onnxruntime")
    p.add_argument("--data", default=default_data_root(), help="SIRST-V2 root")
    p.add_argument("--split", default="val_full")
    p.add_argument("--checkpoint", help="weights for the PyTorch FP16 fallback (default: shipped)")
    p.add_argument("--fp16-backend", choices=("auto", "torch"), default="auto",
                   help="auto: ONNX Runtime CPU, PyTorch half if it cannot run the graph")
    p.add_argument("--json", help="also write the rows as JSON here")
    p.add_argument("--no-progress", action="store_true")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    return run_cli(lambda: _main(args), prog="accuracy")


def _main(args: argparse.Namespace) -> int:
    if args.json and not Path(args.json).resolve().parent.is_dir():
        raise UserError(f"output folder does not exist: {Path(args.json).resolve().parent}")
    rows = compare(args.fp32, args.int8, args.fp16, args.data, args.split, args.checkpoint,
                   args.fp16_backend, progress=not args.no_progress, int8_ort=args.int8_ort)
    print(markdown(rows, args.split))
    if args.json:
        Path(args.json).write_text(json.dumps({"split": args.split, "rows": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
