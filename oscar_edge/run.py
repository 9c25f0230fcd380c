"""``oscar-edge run``: live small-target detection with a latency report.

Runs on a camera, a stream, video / image files or a synthetic scene.

    oscar-edge run --source synthetic:// --headless --save demo.mp4
    python -m oscar_edge.run --camera /dev/video0 --display
    oscar-edge run --source csi://0 --backend tensorrt --engine model.engine --jsonl dets.jsonl
    oscar-edge run --source 'images/*.png' --jsonl dets.jsonl --score-thr 0 --stats stats.json
    oscar-edge run --source rtsp://cam/stream --track --jsonl tracks.jsonl   # IDs, velocities

Sources (``--source URI``, ``--camera DEV`` or a positional URI) are described in
``oscar_edge/io/sources.py``: ``/dev/video0`` / ``v4l2:///dev/video0``, ``csi://0``,
``rtsp://...``, a video file, a folder or glob of images, ``synthetic://?frames=300&size=640x512
&targets=5&seed=0&fps=30``. Default model: the shipped ``oscar_edge/weights/oscar-edge.onnx`` on
ONNX Runtime's CPU provider, decode + NMS by the native C++ library. Only numpy, OpenCV and
ONNX Runtime are imported (TensorRT + cuda-python with --backend tensorrt, torch with
--backend torch). ``--track`` adds a tracking stage after post-processing (oscar_edge.track,
numpy + OpenCV only; docs/tracking.md).

Exit codes: 0 after a normal end, ``--max-frames``, a closed window or SIGINT / SIGTERM (outputs
are finalised in every case); 2 with one line on stderr for a user error (missing camera or
model, unwritable output, no display, ...).
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import List, Optional, Sequence

from .errors import UserError, run_cli
from .runtime import DEFAULT_SCORE_THR
from .sizes import argparse_type
from .track import TrackerConfig

_TC = TrackerConfig()  # the tracker's defaults, for the help texts
_TRACK_OPTIONS = ("track_gate", "track_confirm", "track_coast", "track_score",
                  "track_min_hit_rate", "track_min_move", "track_motion", "track_clutter",
                  "track_clutter_cell", "track_clutter_max", "track_revive")

PROG = "oscar-edge run"
EPILOG = """examples:
  oscar-edge run --source synthetic:// --headless --save demo.mp4
  oscar-edge run --source 'synthetic://?frames=0&size=640x512&targets=8&live=1' --display
  python -m oscar_edge.run --camera /dev/video0 --jsonl dets.jsonl --stats stats.json
  oscar-edge run --source csi://0 --backend tensorrt --engine oscar-edge.engine
  oscar-edge run --source val_images/ --jsonl dets.jsonl --score-thr 0
  oscar-edge run --source 'synthetic://?pan=3' --track --track-motion on --save tracks.mp4
"""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description="Detect small infrared targets live on "
                                "a camera, a stream, video / image files or synthetic://, with "
                                "per-stage latency statistics.",
                                epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    g = p.add_argument_group("input")
    g.add_argument("input", nargs="?", help="source URI (same as --source)")
    g.add_argument("--source", help="source URI: synthetic://, /dev/video0, v4l2:///dev/video0, "
                                    "csi://0, rtsp://..., video file, image folder or glob")
    g.add_argument("--camera", help="camera: /dev/video0, 0 (= /dev/video0), csi://0")
    g.add_argument("--reconnect-timeout", type=float, default=0.0, metavar="S",
                   help="live sources: give up when a lost source is not back after S seconds "
                        "(default 0: keep trying, backoff 0.1 s doubling to 5 s)")
    g = p.add_argument_group("model")
    g.add_argument("--backend", default="auto", type=_backend_arg,
                   help="auto, tensorrt, openvino, onnxruntime, torch, or a Triton server "
                        "triton://HOST:PORT/MODEL (gRPC; triton+http:// for HTTP). auto: "
                        "TensorRT when --engine is given and TensorRT is installed, "
                        "PyTorch for a --model *.pt, else OpenVINO when installed, else ONNX "
                        "Runtime (README, \"Backends and precision\", \"Many cameras\")")
    g.add_argument("--triton-timeout", type=float, default=5.0, metavar="S",
                   help="Triton backend: a request slower than S seconds drops its frame "
                        "(default %(default)s)")
    g.add_argument("--precision", choices=("fp32", "fp16", "int8"), default=None,
                   help="run the shipped model's FP32, FP16 or INT8 (Q/DQ) graph (default "
                        "fp32); with --model / --engine it must match that file")
    g.add_argument("--model", help="ONNX graph (openvino, onnxruntime) or checkpoint .pt "
                                   "(torch); default: the shipped oscar-edge model")
    g.add_argument("--engine", help="TensorRT engine (with its JSON sidecar ENGINE.json)")
    g.add_argument("--plugins", help="TensorRT plugin library (default: $OSCAR_EDGE_TRT_PLUGINS "
                                     "or build/plugins/liboscar_edge_trt_plugins.so)")
    g.add_argument("--threads", type=int, default=None,
                   help="CPU threads of OpenVINO / ONNX Runtime / PyTorch (default: their own "
                        "default)")
    g.add_argument("--ov-hint", default=None, metavar="{f32,bf16}",
                   help="OpenVINO precision hint, always passed to OpenVINO explicitly and "
                        "named in every report (default: bf16 on a CPU with AVX512_BF16 or AMX, "
                        "else f32; README 'Backends and precision')")
    g.add_argument("--ov-cache", default="default", metavar="DIR",
                   help="OpenVINO model cache folder, 'off' for none (default: "
                        "$OSCAR_EDGE_OV_CACHE or ~/.cache/oscar-edge/openvino)")
    g.add_argument("--device", default="cpu", help="PyTorch device (torch backend)")
    g.add_argument("--input-size", type=_input_size_arg, metavar="WxH|fit",
                   help="letterbox frames into this fixed network input (multiples of 32, e.g. "
                        "640x512), or 'fit': the keep-ratio fit to 1000x600 of evaluation for "
                        "every frame; default: the fit, except 640x512 for frames up to 320x256 "
                        "(README, \"Tracking\"), or the engine's size")
    g.add_argument("--postprocess", default="auto", choices=("auto", "native", "numpy"),
                   help="decode + NMS for raw-output backends (default: native C++ if built)")
    g.add_argument("--peak-refine", default=None, choices=("on", "off"),
                   help="move every box so that its centre sits on the image peak inside it "
                        "(README, \"Peak-centred localization\"; inside an engine built with it, "
                        "else after NMS on the CPU; default on, with a Triton backend the "
                        "server's setting)")
    g = p.add_argument_group("output")
    g.add_argument("--display", action="store_true", help="show a window (q / Esc: stop)")
    g.add_argument("--headless", action="store_true", help="no window (the default)")
    g.add_argument("--save", metavar="OUT.mp4", help="annotated video (mp4v)")
    g.add_argument("--jsonl", metavar="DETS.jsonl",
                   help="one JSON line per frame: frame index, timestamp, boxes (frame pixels), "
                        "scores, per-stage times in ms")
    g.add_argument("--stats", metavar="STATS.json", help="latency statistics as JSON")
    g.add_argument("--snapshot", metavar="STILL.png", help="one annotated frame as an image")
    g.add_argument("--snapshot-frame", type=int, default=30, metavar="N",
                   help="which processed frame --snapshot keeps (default 30; the last one if "
                        "the stream is shorter)")
    g.add_argument("--score-thr", type=float, default=DEFAULT_SCORE_THR,
                   help="draw and write detections with score >= this (default %(default)s: "
                        "on SIRST-V2 val_full Pd 0.76 at 0.04 false alarms per image with the "
                        "shipped model; 0 keeps all that NMS keeps, at most 100 per frame)")
    g.add_argument("--show-truth", action="store_true",
                   help="draw the source's ground truth (synthetic://) as circles")
    g = p.add_argument_group("tracking (README, \"Tracking\")")
    g.add_argument("--track", action="store_true",
                   help="track the detections: IDs, velocities, coasting through missed frames, "
                        "M-of-N confirmation; JSON lines gain 'tracks', drawings IDs and trails")
    g.add_argument("--track-gate", type=float, default=None, metavar="PX",
                   help=f"a detection joins a track within PX pixels of its predicted centre "
                        f"(wider for new and coasting tracks; default {_TC.gate_px:g})")
    g.add_argument("--track-confirm", default=None, metavar="M/N",
                   help=f"a track is confirmed (reported) once hit in M of its last N frames "
                        f"(default {_TC.confirm_m}/{_TC.confirm_n})")
    g.add_argument("--track-coast", type=float, default=None, metavar="S",
                   help=f"a confirmed track without a detection is kept on its prediction for "
                        f"up to S seconds, then lost (default {_TC.coast_s:g})")
    g.add_argument("--track-revive", type=float, default=None, metavar="S",
                   help=f"a lost track's ID is remembered for S seconds: a track confirmed near "
                        f"its predicted position takes the ID back (docs/tracking.md; default "
                        f"{_TC.revive_s:g}; 0: off)")
    g.add_argument("--track-score", type=float, default=None, metavar="S",
                   help=f"detections with score >= S feed the tracker (default "
                        f"{_TC.min_score:g}; independent of --score-thr)")
    g.add_argument("--track-min-hit-rate", type=float, default=None, metavar="R",
                   help=f"a confirmed track is also lost when hit in fewer than this share of "
                        f"its last 16 frames (default {_TC.min_hit_rate:g}; 0: off)")
    g.add_argument("--track-min-move", type=float, default=None, metavar="PX",
                   help=f"moving-target indication: confirm a track only once it has moved PX "
                        f"pixels from where it started (default {_TC.min_move_px:g}: off)")
    g.add_argument("--track-clutter", type=float, default=None, metavar="S",
                   help=f"clutter map: skip detections on spots that held a detection for more "
                        f"than --track-clutter-max of the last ~S seconds (fixed cameras; "
                        f"default {_TC.clutter_s:g}: off)")
    g.add_argument("--track-clutter-cell", type=float, default=None, metavar="PX",
                   help=f"clutter map cell size (default {_TC.clutter_cell_px:g})")
    g.add_argument("--track-clutter-max", type=float, default=None, metavar="R",
                   help=f"clutter map share of time above which a spot is clutter "
                        f"(default {_TC.clutter_max:g})")
    g.add_argument("--track-motion", choices=("off", "on"), default=None,
                   help=f"compensate camera motion (sparse optical flow) before association "
                        f"(default {'on' if _TC.motion else 'off'})")
    g = p.add_argument_group("run")
    g.add_argument("--max-frames", type=int, default=0, metavar="N",
                   help="stop after N processed frames (default 0: until the source ends)")
    g.add_argument("--report-every", type=float, default=10.0, metavar="S",
                   help="print a latency report every S seconds (0: only at exit)")
    g.add_argument("--verbose", action="store_true",
                   help="keep OpenCV's and FFmpeg's own warnings on stderr")
    return p


def _quiet_opencv() -> None:
    """OpenCV / FFmpeg print their own warnings (e.g. for a missing camera) next to ours."""
    import cv2

    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET, read when used
    try:
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
    except AttributeError:  # pragma: no cover - very old OpenCV
        pass


def _source_uri(args: argparse.Namespace) -> str:
    from .io.sources import camera_uri

    given = [(n, v) for n, v in (("input", args.input), ("--source", args.source),
                                 ("--camera", args.camera)) if v]
    if not given:
        raise UserError("no input: give --source URI, --camera DEVICE or a path "
                        "(try --source synthetic://)")
    if len(given) > 1:
        raise UserError(f"give one input, not {' and '.join(n for n, _ in given)}")
    name, value = given[0]
    return camera_uri(value) if name == "--camera" else value


def _check_args(args: argparse.Namespace) -> None:
    args.peak_refine_default = args.peak_refine is None
    if args.peak_refine is None:
        args.peak_refine = "on"
    if args.display and args.headless:
        raise UserError("--display and --headless exclude each other")
    if not 0.0 <= args.score_thr <= 1.0:
        raise UserError(f"--score-thr must be in [0, 1], got {args.score_thr}")
    for name in ("max_frames", "snapshot_frame"):
        if getattr(args, name) < 0:
            raise UserError(f"--{name.replace('_', '-')} must be >= 0")
    if args.report_every < 0 or args.reconnect_timeout < 0:
        raise UserError("--report-every and --reconnect-timeout must be >= 0")
    if args.input_size is not None and args.input_size != "fit":
        w, h = args.input_size
        if w <= 0 or h <= 0 or w % 32 or h % 32:
            raise UserError(f"--input-size {w}x{h}: width and height must be positive "
                            "multiples of 32")


def tracker_config(args: argparse.Namespace) -> Optional[TrackerConfig]:
    """The tracker settings of ``--track`` and its options (None without ``--track``);
    UserError for a bad value or a ``--track-*`` option without ``--track``."""
    from .track import config_from_options

    given = [n for n in _TRACK_OPTIONS if getattr(args, n) is not None]
    if not args.track:
        if given:
            raise UserError(f"--{given[0].replace('_', '-')} needs --track")
        return None
    try:
        return config_from_options(args)
    except ValueError as exc:
        raise UserError(str(exc)) from None


def _input_size_arg(text: str):
    """WxH -> (W, H); 'fit' -> 'fit' (the keep-ratio fit for every frame)."""
    if text.strip().lower() == "fit":
        return "fit"
    return argparse_type(name="--input-size")(text)


def _backend_arg(text: str) -> str:
    from .backends.factory import BACKEND_CHOICES
    from .backends.triton_backend import is_triton_uri

    if text in BACKEND_CHOICES or is_triton_uri(text):
        return text
    raise argparse.ArgumentTypeError(f"invalid choice: {text!r} (choose from "
                                     f"{', '.join(BACKEND_CHOICES)}, or triton://HOST:PORT/MODEL)")


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    return run_cli(lambda: _main(args), prog=PROG)


def _main(args: argparse.Namespace) -> int:
    from .backends.base import close_backend
    from .backends.factory import create_backend
    from .io.outputs import (DisplayOutput, JsonlOutput, Output, SnapshotOutput, VideoOutput,
                             check_writable)
    from .io.sources import open_source
    from .pipeline import Detector
    from .postprocess import SCORE_THR
    from .preprocess import FIT_SIZE, SMALL_FRAME_INPUT, SMALL_FRAME_MAX
    from .runtime import Runtime, RuntimeOptions

    _check_args(args)
    track = tracker_config(args)
    if not args.verbose:
        _quiet_opencv()
    uri = _source_uri(args)
    source = open_source(uri)  # parses the URI (SourceError for a bad one)
    # 1. Output paths, before anything starts (no file is left behind by this check).
    for path, what in ((args.save, "video"), (args.jsonl, "JSON lines"),
                       (args.stats, "statistics"), (args.snapshot, "snapshot")):
        if path:
            check_writable(path, what)
    # 2. Model.
    choice = create_backend(args.backend, model=args.model, engine=args.engine,
                            plugins=args.plugins, threads=args.threads, device=args.device,
                            precision=args.precision, ov_hint=args.ov_hint,
                            ov_cache=args.ov_cache, triton_timeout=args.triton_timeout)
    outputs: List[Output] = []
    opened = False
    try:
        for note in choice.notes:
            print(f"{PROG}: note: {note}", file=sys.stderr)
        fit_all = args.input_size == "fit"
        input_size = (args.input_size[1], args.input_size[0]) \
            if args.input_size and not fit_all else None
        # Decode keeps candidates whose refine score is > 0.05 (a final score, a product of
        # three sigmoids, is never above it); a lower --track-score lowers that floor so that
        # every detection it asks for reaches the tracker (not inside a TensorRT engine, whose
        # decode plugin has its own).
        floor = SCORE_THR if track is None else min(SCORE_THR, track.min_score)
        refine = args.peak_refine == "on"
        if choice.kind == "triton" and args.peak_refine_default:  # the server's setting
            refine = bool(choice.backend.peak_refine)
        try:
            detector = Detector(choice.backend, fit=choice.fit_size or FIT_SIZE,
                                input_size=input_size, postprocess=args.postprocess,
                                peak_refine=refine, score_thr=floor,
                                small_input=not fit_all and getattr(choice.backend,
                                                                    "small_input", True))
        except ValueError as exc:  # a fixed-size model and another --input-size, ...
            raise UserError(str(exc)) from None
        # 3. Source (a missing camera ends here, exit 2), then the outputs that need it.
        source.open()
        opened = True
        if args.display:
            outputs.append(DisplayOutput(f"oscar-edge: {uri}"))
        if args.save:
            outputs.append(VideoOutput(args.save, fps=source.fps))
        if args.snapshot:
            outputs.append(SnapshotOutput(args.snapshot, at=args.snapshot_frame or 1))
        if args.jsonl:
            outputs.append(JsonlOutput(args.jsonl, header=run_info(uri, choice, detector,
                                                                    args.score_thr, track)))
        _compile_fixed(choice, detector)  # after every check that can refuse the run
        size = (f"{detector.input_size[1]}x{detector.input_size[0]} fixed" if detector.input_size
                else f"keep-ratio fit {detector.fit[0]}x{detector.fit[1]}")
        if detector.small_input:
            size += (f" ({SMALL_FRAME_INPUT[1]}x{SMALL_FRAME_INPUT[0]} fixed for frames up to "
                     f"{SMALL_FRAME_MAX[0]}x{SMALL_FRAME_MAX[1]})")
        tracking = ""
        if track is not None:
            tracking = (f"; tracking score >= {track.min_score:g}, gate {track.gate_px:g} px, "
                        f"confirm {track.confirm_m}/{track.confirm_n}, coast "
                        f"{track.coast_s:g} s"
                        + (f", revive {track.revive_s:g} s" if track.revive_s else "")
                        + f", camera motion {'on' if track.motion else 'off'}")
        print(f"{PROG}: {source.describe()} -> {choice.label}, input {size}, decode+NMS "
              f"{detector.postprocess_backend}; draw/write score >= {args.score_thr:g}"
              f"{tracking}", file=sys.stderr, flush=True)
        runtime = Runtime(source, detector, outputs, RuntimeOptions(
            max_frames=args.max_frames or None, score_thr=args.score_thr,
            report_every=args.report_every, stats_path=args.stats,
            reconnect_timeout=args.reconnect_timeout, show_truth=args.show_truth,
            label=choice.label, short_label=choice.short, info=choice.info(), track=track))
        outputs = []  # the runtime owns and closes them now
        opened = False
        runtime.run()
    finally:
        for o in outputs:
            o.close()
        if opened:
            source.close()
        close_backend(choice.backend)
    return 0


def run_info(uri: str, choice, detector, score_thr: float,
             track: Optional[TrackerConfig] = None) -> dict:
    """What the JSONL header records about a run (statistics files carry the same keys)."""
    from .preprocess import SMALL_FRAME_INPUT, SMALL_FRAME_MAX
    from .runtime import track_settings

    info = {"source": uri, **choice.info(),
            "input_size": (f"{detector.input_size[1]}x{detector.input_size[0]}"
                           if detector.input_size else None),
            "fit": None if detector.input_size else f"{detector.fit[0]}x{detector.fit[1]}",
            "small_frame_input": (f"{SMALL_FRAME_INPUT[1]}x{SMALL_FRAME_INPUT[0]} for frames up "
                                  f"to {SMALL_FRAME_MAX[0]}x{SMALL_FRAME_MAX[1]}"
                                  if getattr(detector, "small_input", False) else None),
            "postprocess": detector.postprocess_backend,
            "peak_refine": detector.peak_refine, "score_thr": score_thr,
            "track": track_settings(track) if track is not None else None}
    return info


def _compile_fixed(choice, detector) -> None:
    """OpenVINO compiles per input shape: with a fixed input size, do it before the source
    starts (and say how long it took, and whether the model cache served it)."""
    prepare = getattr(choice.backend, "prepare", None)
    if detector.input_size is None or not callable(prepare):
        return
    rec = prepare((1, 3) + tuple(detector.input_size))
    cache = {True: "from the model cache", False: "compiled", None: "compiled"}[rec.from_cache]
    print(f"{PROG}: OpenVINO model for 1x3x{detector.input_size[0]}x{detector.input_size[1]} "
          f"{cache} in {rec.seconds:.2f} s", file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
