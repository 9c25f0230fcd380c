"""The command line of ``benchmarks/latency.py`` (help text: this package's docstring)."""
from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence

from oscar_edge.errors import run_cli

from .backends import BACKENDS, DEFAULT_BACKENDS, default_work_dir
from .common import PROG, SHIPPED_PRESET, log
from .report import markdown, write_json, write_plot
from .run import run_benchmark
from .stats import CV_LIMIT_PCT, TAIL_LIMIT


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="latency.py",
        description="Latency of each backend (model only, and frame to detections) on the same "
                    "real SIRST-V2 frames; Markdown on stdout, optional JSON and PNG.")
    p.add_argument("--backends", default=DEFAULT_BACKENDS,
                   help=f"comma list of {', '.join(BACKENDS)} (default %(default)s)")
    p.add_argument("--precision", choices=("fp32", "fp16", "int8"), default=None,
                   help="run the plain runtime keys (ort, openvino, trt) at this precision: "
                        "--backends torch,ort,openvino --precision int8 = torch,ort-int8,"
                        "openvino-int8 (torch stays the FP32 reference)")
    p.add_argument("--ov-hint", default="default", metavar="{f32,bf16}[,...]",
                   help="OpenVINO precision hint of the openvino keys, always set explicitly; "
                        "a comma list (f32,bf16) runs every openvino key once per hint, each "
                        "row labelled with its hint (default: the runtime's, bf16 on a CPU with "
                        "AVX512_BF16 or AMX, else f32)")
    p.add_argument("--preset", default=SHIPPED_PRESET,
                   help="architecture (default %(default)s: the shipped trained model; other "
                        "presets run random-init weights)")
    p.add_argument("--checkpoint", help="use these weights (.pt) instead of the shipped / "
                                        "random-init ones (its preset wins over --preset)")
    p.add_argument("--baseline-checkpoint", metavar="PT",
                   help="also time this checkpoint (e.g. the previous shipped model) with every "
                        "backend, each row right after the main model's; rows '<key> "
                        "[baseline]' and a 'vs baseline' table (main p50 / baseline p50)")
    p.add_argument("--size", default="640x512",
                   help="network input WIDTHxHEIGHT, multiples of 32 (default %(default)s)")
    p.add_argument("--sizes", help="comma list of WIDTHxHEIGHT: a size sweep (overrides --size)")
    p.add_argument("--batch", type=int, default=1, help="frames per call (default 1)")
    p.add_argument("--runs", type=int, default=300, help="timed calls per phase (default 300)")
    p.add_argument("--warmup", type=int, default=50, help="untimed calls first (default 50)")
    p.add_argument("--threads", type=int, default=None,
                   help="CPU threads of PyTorch (intra-op) and ONNX Runtime (intra-op); default: "
                        "each runtime's own default")
    p.add_argument("--torch-device", default="cpu", help="PyTorch device (default cpu)")
    p.add_argument("--data", default=None, help="SIRST-V2 root (default: "
                                                 "oscar_edge.data.default_data_root())")
    p.add_argument("--split", default="val_full", help="split whose frames are timed "
                                                       "(default %(default)s)")
    p.add_argument("--frames", type=int, default=32,
                   help="number of frames cycled through (default %(default)s)")
    p.add_argument("--calib-split", default="train_full",
                   help="split for INT8 / FP16 calibration (default %(default)s)")
    p.add_argument("--calib-images", type=int, default=16,
                   help="calibration images (default %(default)s; does not change latency)")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of random-init weights and of the calibration draw (default 0)")
    p.add_argument("--work-dir", default=None,
                   help=f"cache of exported / quantized models and engines (default "
                        f"{default_work_dir()})")
    p.add_argument("--plugin-lib", default=None, help="TensorRT plugin library (default as "
                                                      "export/build_engine.py)")
    p.add_argument("--cv-limit", type=float, default=CV_LIMIT_PCT,
                   help="unstable-spread warning above this CV in %% (default %(default)s)")
    p.add_argument("--tail-limit", type=float, default=TAIL_LIMIT,
                   help="unstable-spread warning above this p99/p50 (default %(default)s)")
    p.add_argument("--json", dest="json_out", default=None, help="write the JSON record here")
    p.add_argument("--plot", default=None, help="write the PNG plot here")
    jet = p.add_argument_group("Jetson")
    mode = jet.add_mutually_exclusive_group()
    mode.add_argument("--jetson", action="store_true",
                      help="Jetson mode even when not detected (nvpmodel, jetson_clocks, "
                           "tegrastats power)")
    mode.add_argument("--no-jetson", action="store_true", help="no Jetson mode even on a Jetson")
    jet.add_argument("--tegrastats-interval", type=int, default=100,
                     help="tegrastats sampling interval in ms (default %(default)s)")
    jet.add_argument("--idle-s", type=float, default=2.0,
                     help="idle power baseline before the first backend, s (default %(default)s)")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args._argv = argv
    return run_cli(lambda: _main(args), prog=PROG)


def _main(args: argparse.Namespace) -> int:
    from .common import parse_hints

    args.ov_hint = ",".join(parse_hints(args.ov_hint))   # "default" -> this CPU's hint
    record = run_benchmark(args)
    sys.stdout.write(markdown(record))
    sys.stdout.flush()
    if args.json_out:
        write_json(record, args.json_out)
        log(f"wrote {args.json_out}")
    if args.plot:
        write_plot(record, args.plot)
        log(f"wrote {args.plot}")
    failed = [f"{r['backend']} @ {r['size']}" for r in record["results"]
              if r["status"] == "failed"]
    if failed:
        log(f"failed: {', '.join(failed)} (reasons in the report); exit code 1")
        return 1
    return 0
