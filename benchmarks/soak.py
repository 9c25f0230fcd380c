#!/usr/bin/env python
"""Soak test of the field runtime: many synthetic frames through the whole pipeline, memory and
threads watched, and a video-file run that checks that no frame is lost.

    python benchmarks/soak.py                                  # 10,000 frames, 320x256
    python benchmarks/soak.py --frames 10000 --size 640x512    # full-size frames (slower)
    python benchmarks/soak.py --frames 300                     # a quick check

Phase 1: ``synthetic://?frames=N&size=WxH`` (every frame processed, the network input the
frame size rounded up to multiples of 32, i.e. no upscaling) with JSON lines written; RSS
(``VmRSS`` of /proc/self/status) sampled every ``--sample-every`` frames; threads counted
after a 20-frame warm-up run (thread pools exist from then on), during and after the soak
(Python threads and the OS threads of the process): both must be back to the warm-up counts.
Phase 2: a video file of ``--file-frames`` synthetic frames is written (mp4v) and run; every
frame index must appear exactly once in the JSON lines.

Prints a Markdown summary; exit code 1 when a frame is lost, a thread is left behind, or RSS
grows by more than ``--max-rss-growth-mb`` after the warm-up (first 10 % of the frames).
In-process (one Python process), CPU only by default (ONNX Runtime, shipped model).
"""
from __future__ import annotations

import argparse
import io
import math
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

_REPO = Path(__file__).resolve().parents[1]
if (_REPO / "oscar_edge" / "__init__.py").is_file():
    sys.path.insert(0, str(_REPO))

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from oscar_edge.backends.base import close_backend  # noqa: E402
from oscar_edge.backends.factory import create_backend  # noqa: E402
from oscar_edge.io.outputs import JsonlOutput, Output  # noqa: E402
from oscar_edge.io.sources import open_source, parse_size  # noqa: E402
from oscar_edge.io.synthetic import SyntheticScene  # noqa: E402
from oscar_edge.pipeline import Detector  # noqa: E402
from oscar_edge.runtime import Runtime, RuntimeOptions  # noqa: E402


def proc_status() -> dict:
    """VmRSS (kB) and Threads of this process from /proc/self/status (Linux)."""
    out = {}
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM", "Threads"):
                out[key] = int(value.split()[0])
    except OSError:
        pass
    return out


class Sampler(Output):
    """An output that samples RSS and thread counts every ``every`` frames."""

    def __init__(self, every: int) -> None:
        self.every = max(1, every)
        self.n = 0
        self.samples = []  # (frame count, rss kB, os threads, python threads)

    def write(self, record, canvas, line) -> None:
        self.n += 1
        if self.n == 1 or self.n % self.every == 0:
            st = proc_status()
            self.samples.append((self.n, st.get("VmRSS", 0), st.get("Threads", 0),
                                 threading.active_count()))


def mib(kb: float) -> str:
    return f"{kb / 1024:.1f} MiB"


def lost_frames(jsonl: Path, expected: int):
    from oscar_edge.io.outputs import read_jsonl

    seen = [line["frame"] for line in read_jsonl(str(jsonl))[1]]
    missing = sorted(set(range(expected)) - set(seen))
    duplicates = len(seen) - len(set(seen))
    return len(seen), missing, duplicates


def run_once(uri: str, detector: Detector, outputs, label: str):
    text = io.StringIO()
    src = open_source(uri)
    src.open()
    summary = Runtime(src, detector, outputs, RuntimeOptions(score_thr=0.5, report_every=0,
                                                             label=label, short_label=label),
                      log=lambda m: print(m, file=sys.stderr), out=text).run()
    return summary, text.getvalue()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--frames", type=int, default=10_000)
    p.add_argument("--size", default="320x256", help="synthetic frame WxH (default %(default)s)")
    p.add_argument("--targets", type=int, default=5)
    p.add_argument("--file-frames", type=int, default=300,
                   help="frames of the video-file phase (0 skips it)")
    p.add_argument("--backend", default="auto")
    p.add_argument("--model")
    p.add_argument("--engine")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--sample-every", type=int, default=100)
    p.add_argument("--max-rss-growth-mb", type=float, default=50.0)
    p.add_argument("--workdir", help="keep the JSON lines and video here (default: a temp dir)")
    args = p.parse_args(argv)
    w, h = parse_size(args.size)
    input_size = (int(math.ceil(h / 32) * 32), int(math.ceil(w / 32) * 32))

    work = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="oscar-soak-"))
    work.mkdir(parents=True, exist_ok=True)
    py_threads_0, os_threads_0 = threading.active_count(), proc_status().get("Threads", 0)
    choice = create_backend(args.backend, model=args.model, engine=args.engine,
                            threads=args.threads)
    detector = Detector(choice.backend, input_size=input_size)
    # A short warm-up run first: thread pools that OpenCV / ONNX Runtime create on first use
    # and keep exist from here on, so a thread left behind by the soak itself shows.
    run_once(f"synthetic://?frames=20&size={w}x{h}&seed=9", detector, [], choice.short)
    st = proc_status()
    py_threads_1, os_threads_1 = threading.active_count(), st.get("Threads", 0)

    # Phase 1: synthetic soak
    jl = work / "soak.jsonl"
    sampler = Sampler(args.sample_every)
    uri = f"synthetic://?frames={args.frames}&size={w}x{h}&targets={args.targets}&seed=0"
    t0 = time.monotonic()
    summary, report = run_once(uri, detector, [sampler, JsonlOutput(str(jl))], choice.short)
    wall = time.monotonic() - t0
    st = proc_status()
    py_threads_2, os_threads_2 = threading.active_count(), st.get("Threads", 0)
    n_lines, missing, dups = lost_frames(jl, args.frames)
    samples = sampler.samples
    warm = [s for s in samples if s[0] >= max(1, args.frames // 10)] or samples
    rss_warm, rss_end = warm[0][1], samples[-1][1]
    rss_peak = max(s[1] for s in samples)
    if len(warm) >= 3:
        x = np.array([s[0] for s in warm], float)
        y = np.array([s[1] for s in warm], float)
        slope = float(np.polyfit(x, y, 1)[0]) * 1000  # kB per 1000 frames
    else:
        slope = float("nan")
    growth_kb = rss_end - rss_warm
    peak_threads = max(s[2] for s in samples)

    # Phase 2: a video file, every frame must come out
    file_ok, file_line = True, "skipped"
    if args.file_frames:
        video = work / "soak_source.mp4"
        scene = SyntheticScene(w, h, targets=args.targets, seed=1)
        vw = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 30, (w, h))
        for t in range(args.file_frames):
            vw.write(cv2.cvtColor(scene.frame(t), cv2.COLOR_GRAY2BGR))
        vw.release()
        cap = cv2.VideoCapture(str(video))
        decodable = 0
        while cap.read()[0]:
            decodable += 1
        cap.release()
        fjl = work / "file.jsonl"
        fsum, _ = run_once(str(video), detector, [JsonlOutput(str(fjl))], choice.short)
        f_lines, f_missing, f_dups = lost_frames(fjl, decodable)
        file_ok = (decodable == args.file_frames and not f_missing and not f_dups
                   and f_lines == decodable)
        file_line = (f"{args.file_frames} frames written, {decodable} decodable, {f_lines} in "
                     f"the JSON lines, {len(f_missing)} lost, {f_dups} duplicated")
    close_backend(choice.backend)
    del detector, choice
    st = proc_status()
    py_threads_3, os_threads_3 = threading.active_count(), st.get("Threads", 0)

    frames_ok = n_lines == args.frames and not missing and not dups
    threads_ok = py_threads_2 == py_threads_1 and os_threads_2 == os_threads_1
    rss_ok = growth_kb / 1024 <= args.max_rss_growth_mb
    s = summary["stages"]

    def ms(stage, key):
        return f"{s[stage].get(key, float('nan')):.1f}"

    print(f"## oscar-edge soak: {args.frames} synthetic frames {w}x{h}\n")
    print(f"Backend: {summary['backend'] or 'default'}; network input {input_size[1]}x"
          f"{input_size[0]}; {os.cpu_count()} CPUs; wall {wall:.0f} s. Machine load is not "
          "controlled: read the figures as this machine at this time.\n")
    print("| check | result | |")
    print("|---|---|---|")
    print(f"| frames processed (synthetic) | {summary['frames']['processed']} / {args.frames} | |")
    print(f"| frames lost in the JSON lines | {len(missing)} missing, {dups} duplicated | "
          f"{'ok' if frames_ok else 'FAIL'} |")
    print(f"| throughput | {summary['fps']:.1f} FPS | |")
    print(f"| end-to-end p50 / p99 / max | {ms('end_to_end', 'p50_ms')} / "
          f"{ms('end_to_end', 'p99_ms')} / {ms('end_to_end', 'max_ms')} ms | throughput mode |")
    print(f"| inference p50 / p99 / max | {ms('inference', 'p50_ms')} / "
          f"{ms('inference', 'p99_ms')} / {ms('inference', 'max_ms')} ms | |")
    print(f"| RSS after warm-up ({warm[0][0]} frames) / end / peak | {mib(rss_warm)} / "
          f"{mib(rss_end)} / {mib(rss_peak)} | |")
    print(f"| RSS growth after warm-up | {growth_kb / 1024:+.1f} MiB ({slope / 1024:+.2f} MiB "
          f"per 1000 frames, linear fit) | {'ok' if rss_ok else 'FAIL'} (limit "
          f"{args.max_rss_growth_mb:g} MiB) |")
    print(f"| Python threads: start / after warm-up / after run / after close | {py_threads_0} / "
          f"{py_threads_1} / {py_threads_2} / {py_threads_3} | {'ok' if threads_ok else 'FAIL'} |")
    print(f"| OS threads: start / after warm-up / peak during run / after run / after close | "
          f"{os_threads_0} / {os_threads_1} / {peak_threads} / {os_threads_2} / {os_threads_3} | |")
    print(f"| video-file source | {file_line} | {'ok' if file_ok else 'FAIL'} |")
    print("\n```")
    print(report.strip())
    print("```")
    ok = frames_ok and threads_ok and rss_ok and file_ok
    print(f"\nresult: {'PASS' if ok else 'FAIL'} (files in {work})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
