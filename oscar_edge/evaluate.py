"""``oscar-edge evaluate``: mNoCoAP, NoCoAP10..90, AP50 and Pd / Fa of a model on a split.

    python -m oscar_edge.evaluate --checkpoint runs/x/best.pt --data ../shared/data/sirst-v2 \
        --split val_full --json metrics.json --plot pr.png
    python -m oscar_edge.evaluate --onnx model.int8.onnx --split val_full   # ONNX Runtime CPU
    python -m oscar_edge.evaluate --backend openvino --precision int8 --ov-hint f32

Without --checkpoint, --onnx or --precision the shipped model is evaluated with PyTorch; an
ONNX graph (--onnx, or the shipped graph of --precision) runs on ONNX Runtime unless
--backend openvino is given.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from .data import default_data_root
from .errors import UserError, run_cli
from .metrics import DEFAULT_SCORE_THR, evaluate_detections, noco_key, noco_map, plot_pr_curves
from .pipeline import Detector
from .preprocess import read_grey
from .sizes import argparse_type


def detect_split(detector: Detector, samples: Sequence, progress: bool = True
                 ) -> Tuple[List[Tuple[np.ndarray, np.ndarray]], List[np.ndarray]]:
    """Run ``detector`` on every sample. Returns detections and ground-truth NoCo maps."""
    from tqdm import tqdm

    dets, maps = [], []
    for s in tqdm(samples, desc="evaluating", unit="img", disable=not progress, leave=False):
        grey = read_grey(s.image_path)
        d = detector(grey)
        dets.append((d.boxes, d.scores))
        maps.append(noco_map(grey, s.boxes))
    return dets, maps


def evaluate_model(detector: Detector, samples: Sequence, score_thr: float = DEFAULT_SCORE_THR,
                   progress: bool = True) -> Dict[str, object]:
    """All metrics of ``detector`` on ``samples`` (curves included under 'curves')."""
    dets, maps = detect_split(detector, samples, progress)
    return evaluate_detections(dets, samples, noco_maps=maps, score_thr=score_thr)


def mnoco_interval(dets: Sequence, samples: Sequence, maps: Sequence,
                   num_resamples: int, seed: int = 0) -> Dict[str, object]:
    """The 5 and 95 % points of mNoCoAP over ``num_resamples`` draws of the images with
    replacement (seeded): how much the figure depends on which images the split holds."""
    from .metrics import bootstrap_draws, mnoco_ap_resampled

    boot = mnoco_ap_resampled([dets], samples, maps,
                              bootstrap_draws(len(samples), num_resamples, seed))[:, 0]
    lo, hi = np.percentile(boot, (5, 95))
    return {"mNoCoAP_p5": float(lo), "mNoCoAP_p95": float(hi),
            "bootstrap_resamples": int(num_resamples), "bootstrap_seed": int(seed)}


def format_metrics(m: Dict[str, object]) -> str:
    """A short human-readable report."""
    keys = [noco_key(t / 10) for t in range(1, 10)]
    lines = [
        f"images {m['num_images']}  boxes {m['num_boxes']}  detections {m['num_detections']}",
        f"mNoCoAP {m['mNoCoAP']:.4f}   AP50 {m['AP50']:.4f}"
        + (f"   (mNoCoAP 90 % interval over the split's images {m['mNoCoAP_p5']:.4f}-"
           f"{m['mNoCoAP_p95']:.4f}, {m['bootstrap_resamples']} bootstrap draws)"
           if "mNoCoAP_p5" in m else ""),
        "  ".join(f"{k} {m[k]:.3f}" for k in keys),
        f"at score >= {m['score_thr']:.2f}: Pd {m['Pd']:.4f}  false alarms/image "
        f"{m['Fa_per_image']:.3f}  per megapixel {m['Fa_per_MP']:.3f}",
    ]
    if "Pd_at_max_fa" in m:
        lines.append(f"best Pd with <= {m['max_fa_per_image']:g} false alarms/image: "
                     f"Pd {m['Pd_at_max_fa']:.4f} at score >= {m['score_thr_at_max_fa']:.2f} "
                     f"(false alarms/image {m['Fa_at_max_fa']:.3f})")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="oscar-edge evaluate", description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", help="model checkpoint (.pt); default: the shipped model")
    p.add_argument("--data", default=default_data_root(), help="SIRST-V2 root")
    p.add_argument("--split", default="val_full")
    p.add_argument("--score-thr", type=float, default=DEFAULT_SCORE_THR,
                   help="score threshold for Pd / false alarms (default %(default)s)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--half", action="store_true", help="run the PyTorch model in FP16")
    p.add_argument("--onnx", help="evaluate this exported ONNX graph (FP32, INT8 or FP16) with "
                                  "ONNX Runtime's CPU provider (or --backend openvino) instead "
                                  "of a checkpoint")
    p.add_argument("--backend", choices=("auto", "torch", "onnxruntime", "openvino"),
                   default="auto", help="auto (default): PyTorch for a checkpoint, ONNX Runtime "
                   "for an ONNX graph")
    p.add_argument("--precision", choices=("fp32", "fp16", "int8"), default=None,
                   help="evaluate the shipped model's FP32, FP16 or INT8 (Q/DQ) ONNX graph; with "
                        "--onnx it must match that graph")
    p.add_argument("--ov-hint", default=None, metavar="{f32,bf16}",
                   help="OpenVINO precision hint (default: bf16 on a CPU with AVX512_BF16 or "
                        "AMX, else f32)")
    p.add_argument("--ov-cache", default="default", metavar="DIR",
                   help="OpenVINO model cache folder, 'off' for none")
    p.add_argument("--threads", type=int, default=None,
                   help="CPU threads of ONNX Runtime / OpenVINO (default: their own)")
    p.add_argument("--peak-refine", choices=("on", "off"), default=None,
                   help="move every detection's box so that its centre sits on the image peak "
                        "inside it (README, \"Peak-centred localization\"; "
                        "oscar_edge.postprocess.peak_refine); default: the pipeline's default "
                        "(on)")
    p.add_argument("--input-size", type=argparse_type(name="--input-size", multiple=32),
                   metavar="WxH", help="letterbox every image into this fixed network input, "
                   "as the runtime's --input-size does (default: keep-ratio fit to 1000x600)")
    p.add_argument("--bootstrap", type=int, default=1000, metavar="B",
                   help="image bootstrap draws for the 90 %% interval of mNoCoAP (0: off; "
                        "default %(default)s)")
    p.add_argument("--json", help="write the metrics as JSON here")
    p.add_argument("--plot", help="write the precision-recall curves as PNG here")
    p.add_argument("--no-progress", action="store_true")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    return run_cli(lambda: _main(args))


def _main(args: argparse.Namespace) -> int:
    from .data.annotations import load_samples

    for out in (args.json, args.plot):
        if out:
            _check_writable(out)
    graph = bool(args.onnx or args.precision or args.backend in ("onnxruntime", "openvino"))
    if graph and args.backend == "torch":
        raise UserError("--backend torch evaluates a checkpoint: drop --onnx / --precision")
    if graph:  # an ONNX graph on ONNX Runtime or OpenVINO, no torch
        if args.checkpoint or args.half:
            raise UserError("--onnx / --precision evaluate an exported graph: drop --checkpoint "
                            "/ --half")
        from .backends.factory import create_backend

        kind = "onnxruntime" if args.backend == "auto" else args.backend
        choice = create_backend(kind, model=args.onnx, threads=args.threads,
                                precision=args.precision, ov_hint=args.ov_hint,
                                ov_cache=args.ov_cache)
        for note in choice.notes:
            print(f"oscar-edge evaluate: note: {note}", file=sys.stderr)
        backend = choice.backend
        source = {"onnx": str(getattr(backend, "path", args.onnx)), **choice.info()}
        preset = backend.preset
        label = f"{Path(backend.path).name} ({preset}, {choice.label})"
    else:
        if args.ov_hint:
            raise UserError("--ov-hint is for --backend openvino")
        from .backends.torch_backend import TorchBackend
        from .checkpoint import load_model

        model, meta = load_model(args.checkpoint)
        backend = TorchBackend(model, args.device, args.half)
        source, preset = {"checkpoint": str(args.checkpoint or "shipped")}, model.preset.name
        label = f"{args.checkpoint or 'shipped'} ({preset})"
    samples = load_samples(args.data, args.split)
    input_size = (args.input_size[1], args.input_size[0]) if args.input_size else None
    try:
        detector = make_detector(backend, args.peak_refine, input_size)
    except ValueError as exc:  # a fixed-size model and another --input-size
        raise UserError(str(exc)) from None
    if args.bootstrap < 0:
        raise UserError("--bootstrap must be 0 (off) or a positive number of draws")
    dets, maps = detect_split(detector, samples, progress=not args.no_progress)
    m = evaluate_detections(dets, samples, noco_maps=maps, score_thr=args.score_thr)
    curves = m.pop("curves")
    if args.bootstrap and m["num_boxes"]:
        m.update(mnoco_interval(dets, samples, maps, args.bootstrap))
    refine = getattr(detector, "peak_refine", None)
    size = (f"input {args.input_size[0]}x{args.input_size[1]} fixed" if args.input_size
            else f"input keep-ratio fit {detector.fit[0]}x{detector.fit[1]}")
    print(f"model {label} on {args.split}; {size}"
          + ("" if refine is None else f"; peak refinement {'on' if refine else 'off'}"))
    print(format_metrics(m))
    if args.json:
        m.update(**source, preset=preset, split=args.split)
        if refine is not None:
            m["peak_refine"] = bool(refine)
        m["input_size"] = (f"{args.input_size[0]}x{args.input_size[1]}" if args.input_size
                           else None)
        Path(args.json).write_text(json.dumps(m, indent=2) + "\n")
    if args.plot:
        plot_pr_curves(curves, args.plot, title=f"{preset} on {args.split}")
    return 0


def make_detector(backend, peak_refine: Optional[str] = None,
                  input_size: Optional[Tuple[int, int]] = None) -> Detector:
    """``Detector(backend)`` with peak refinement "on" / "off" (None: the pipeline's default)
    and, when given, a fixed (height, width) letterbox input."""
    kwargs = {} if peak_refine is None else {"peak_refine": peak_refine == "on"}
    return Detector(backend, input_size=input_size, **kwargs)


def _check_writable(path: str) -> None:
    parent = Path(path).resolve().parent
    if not parent.is_dir():
        raise UserError(f"output folder does not exist: {parent}")


if __name__ == "__main__":
    sys.exit(main())
