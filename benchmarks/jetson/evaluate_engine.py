#!/usr/bin/env python
"""mNoCoAP, AP50 and Pd / Fa of a TensorRT engine on a SIRST-V2 split, computed as
``oscar-edge evaluate`` computes them for its other backends:

    python benchmarks/jetson/evaluate_engine.py --engine build/jetson-check/oscar-edge.fp16.engine \
        [--plugin-lib build/plugins/liboscar_edge_trt_plugins.so] [--data DIR] \
        [--split val_full] [--json metrics.json]

``oscar-edge evaluate`` runs PyTorch, ONNX Runtime and OpenVINO only; this script gives the
engine the same treatment: the TensorRT backend of ``oscar_edge.backends.factory`` (engine +
its JSON sidecar + the plugin library), the same detector (``oscar_edge.evaluate.make_detector``:
keep-ratio fit of every frame, peak refinement as the pipeline's default, inside the engine when
it ends in OscarPeakRefine) and the same metrics (``oscar_edge.evaluate.evaluate_model``). The
JSON has evaluate's keys plus the engine's facts. ``make jetson-check`` runs it per engine
(benchmarks/jetson/README.md, "One command: make jetson-check").
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Optional, Sequence

_REPO = Path(__file__).resolve().parents[2]
if (_REPO / "oscar_edge" / "__init__.py").is_file():  # run from a checkout: use its package
    sys.path.insert(0, str(_REPO))

from oscar_edge.errors import UserError, run_cli  # noqa: E402

PROG = "evaluate_engine"


def build_parser() -> argparse.ArgumentParser:
    """The command line (see the module docstring)."""
    from oscar_edge.data import default_data_root
    from oscar_edge.metrics import DEFAULT_SCORE_THR

    p = argparse.ArgumentParser(prog="evaluate_engine.py",
                                description="Accuracy of a TensorRT engine on a SIRST-V2 split, "
                                            "as oscar-edge evaluate reports it.")
    p.add_argument("--engine", required=True,
                   help="engine from export/build_engine.py (its <engine>.json sidecar beside)")
    p.add_argument("--plugin-lib", default=None,
                   help="plugin library (default as the TensorRT backend: "
                        "$OSCAR_EDGE_TRT_PLUGINS, the sidecar's, build/plugins)")
    p.add_argument("--data", default=default_data_root(), help="SIRST-V2 root")
    p.add_argument("--split", default="val_full")
    p.add_argument("--score-thr", type=float, default=DEFAULT_SCORE_THR,
                   help="score threshold for Pd / false alarms (default %(default)s)")
    p.add_argument("--peak-refine", choices=("on", "off"), default=None,
                   help="as oscar-edge evaluate; an engine that ends in OscarPeakRefine "
                        "refines in any case")
    p.add_argument("--json", help="write the metrics as JSON here")
    p.add_argument("--no-progress", action="store_true")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    return run_cli(lambda: _main(args), prog=PROG)


def _main(args: argparse.Namespace) -> int:
    from oscar_edge.backends.base import close_backend
    from oscar_edge.backends.factory import create_backend
    from oscar_edge.data.annotations import load_samples
    from oscar_edge.evaluate import evaluate_model, format_metrics, make_detector

    if args.json and not Path(args.json).resolve().parent.is_dir():
        raise UserError(f"output folder does not exist: {Path(args.json).resolve().parent}")
    samples = load_samples(args.data, args.split)  # a missing split fails before TensorRT
    choice = create_backend("tensorrt", engine=args.engine, plugins=args.plugin_lib)
    backend = choice.backend
    try:
        try:
            detector = make_detector(backend, args.peak_refine)
        except ValueError as exc:  # peak refinement off for an engine that refines
            raise UserError(str(exc)) from None
        m = evaluate_model(detector, samples, args.score_thr, progress=not args.no_progress)
    finally:
        close_backend(backend)
    m.pop("curves", None)
    sidecar = getattr(getattr(backend, "sidecar", None), "raw", {}) or {}
    refine = bool(getattr(detector, "peak_refine", False))
    print(f"engine {Path(args.engine).name} ({choice.label}) on {args.split}; input keep-ratio "
          f"fit {detector.fit[0]}x{detector.fit[1]}; peak refinement {'on' if refine else 'off'}"
          f"{' (in the engine)' if getattr(backend, 'peak_refine', False) else ''}")
    print(format_metrics(m))
    if args.json:
        m.update(**choice.info(), engine=str(args.engine), preset=sidecar.get("preset", "unknown"),
                 split=args.split, peak_refine=refine,
                 peak_refine_in_engine=bool(getattr(backend, "peak_refine", False)),
                 tensorrt_version=sidecar.get("tensorrt_version"),
                 plugin_library=str(getattr(backend, "plugin_library", "") or ""))
        Path(args.json).write_text(json.dumps(m, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
