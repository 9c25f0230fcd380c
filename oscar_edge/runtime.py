"""The streaming pipeline: capture, pre-process, inference, post-process and output overlap.

    runtime = Runtime(source, detector, [VideoOutput("out.mp4"), JsonlOutput("d.jsonl")],
                      RuntimeOptions(max_frames=300, stats_path="stats.json"))
    summary = runtime.run()     # blocks; Ctrl-C / SIGTERM stop it cleanly

Threads, one per stage, joined by hand-offs::

    capture --> pre-process --> inference --> post-process [--> track] --> output
                                                   (this thread: drawing, video, window,
                                                    JSON lines, reports)

With ``RuntimeOptions.track`` (``--track``) a fourth stage runs the tracker
(``oscar_edge.track``) on every frame's detections, in frame order, timed by each frame's
``t_source`` (docs/tracking.md).

A stage works on frame n while the next one works on frame n-1, so the frame rate is set by
the slowest stage, not by the sum of the stages.

* Finite sources (files, folders, synthetic): the hand-offs are bounded queues and every frame
  is processed; at most ``depth`` frames (default 4, one per stage) are in flight, and the
  capture thread reads a frame only when one may enter. Frames wait in front of the slowest
  stage, so end-to-end latency here is a throughput-mode figure.
* Live sources (cameras, streams, ``synthetic://?live=1``): every hand-off is a newest-frame
  slot, from the camera on: a stage always takes the newest frame its predecessor finished and
  older unprocessed ones are dropped (counted), so no queue of stale frames builds up and the
  end-to-end latency stays near the sum of the stage times.

The output stage runs on the calling thread (OpenCV windows and signal handlers want the main
thread).

Stopping: the end of a finite source, ``max_frames``, ``q``/Esc in the window, or SIGINT /
SIGTERM. A stop lets the frames in flight finish (at most ``drain_timeout`` seconds), then the
outputs are closed (video finalised, JSON lines flushed), the final report is printed and the
statistics JSON written. A second signal aborts the frames in flight but still closes the
outputs. Every JSONL line is written and flushed as soon as its frame is done.
"""
from __future__ import annotations

import collections
import json
import os
import platform
import queue
import signal
import sys
import threading
import time
from dataclasses import dataclass
from typing import Callable, List, Optional, Sequence, TextIO

import numpy as np

from .backends.base import FrameDropped
from .io.capture import END, CaptureThread, FrameRecord, LatestSlot
from .io.outputs import Output
from .io.render import draw_detections, draw_tracks, status_line
from .io.sources import VideoSource
from .latency import LatencyStats, format_report, frame_durations
from .pipeline import Detector
from .preprocess import to_grey_u8
from .track import CameraMotion, Tracker, TrackerConfig

STAGE_NAMES = ("preprocess", "inference", "postprocess")
# Detections drawn and written (JSON lines) have score >= this by default. Scores are the
# product of three sigmoids (refine x coarse x NoCo) and run low: on SIRST-V2 val_full the
# shipped model gives Pd 0.76 with 0.04 false alarms per image at 0.1, Pd 0.83 / 0.07 at 0.05,
# but Pd 0.17 at 0.5 (the Pd / Fa operating point of oscar-edge evaluate). NMS itself keeps
# candidates down to the decode threshold 0.05 (at most 100 per frame): --score-thr 0 writes
# all of them.
DEFAULT_SCORE_THR = 0.1


def track_settings(cfg: TrackerConfig) -> dict:
    """The user-facing tracker settings (JSONL header, statistics)."""
    return {"gate_px": cfg.gate_px, "confirm": f"{cfg.confirm_m}/{cfg.confirm_n}",
            "coast_s": cfg.coast_s, "min_score": cfg.min_score,
            "min_hit_rate": cfg.min_hit_rate, "min_move_px": cfg.min_move_px,
            "clutter_s": cfg.clutter_s, "clutter_cell_px": cfg.clutter_cell_px,
            "clutter_max": cfg.clutter_max, "revive_s": cfg.revive_s,
            "motion": "on" if cfg.motion else "off"}


class SkipFrame(Exception):
    """A frame that cannot be processed (empty, unsupported format): counted and skipped."""


@dataclass
class RuntimeOptions:
    max_frames: Optional[int] = None     # stop after this many processed frames
    score_thr: float = DEFAULT_SCORE_THR  # drawing and JSON lines keep scores >= this
    report_every: float = 10.0           # seconds between periodic reports (0: only at exit)
    stats_path: Optional[str] = None     # final statistics as JSON (also at each report)
    reconnect_timeout: float = 0.0       # live sources: give up after this long (0: never)
    show_truth: bool = False             # draw the source's ground truth (synthetic)
    label: str = ""                      # backend description for the reports
    short_label: str = ""                # a few words for the status line on the frames
    info: Optional[dict] = None          # backend, precision, OpenVINO hint (statistics JSON)
    depth: int = 4                       # finite sources: frames in flight (one per stage)
    drain_timeout: float = 5.0           # seconds to finish frames in flight after a stop
    install_signal_handlers: bool = True
    track: Optional[TrackerConfig] = None  # run the tracker stage (None: no tracking)
    fps: Optional[float] = None          # nominal frame rate for px/frame (default: the source's)


class Runtime:
    def __init__(self, source: VideoSource, detector: Detector, outputs: Sequence[Output],
                 options: Optional[RuntimeOptions] = None,
                 log: Callable[[str], None] = lambda m: print(m, file=sys.stderr, flush=True),
                 out: Optional[TextIO] = None) -> None:
        self.source, self.detector = source, detector
        self.outputs: List[Output] = list(outputs)
        self.opt = options or RuntimeOptions()
        self.log = log
        self.out = out if out is not None else sys.stdout
        self.stop = threading.Event()
        self.abort = threading.Event()
        self.stop_reason: Optional[str] = None
        self.errors: List[BaseException] = []
        self.stats = LatencyStats()
        self.window = LatencyStats(capacity=20_000)
        self.processed = 0
        self.skipped = 0
        self.backend_dropped = 0
        self.discarded = 0
        self._err_lock = threading.Lock()
        self._recent_done = collections.deque(maxlen=30)
        self._started_wall = time.time()
        self._stop_ns: Optional[int] = None
        live = bool(source.live)
        self._live = live
        # Finite sources: bounded queues, every frame processed, at most ``depth`` frames in
        # flight (a token each; the capture thread takes it before reading a frame).
        # Live sources: every hand-off is a newest-frame slot: a stage always takes the newest
        # frame its predecessor finished, older ones are dropped (counted), so no queue of
        # stale frames builds up in front of the slowest stage.
        depth = max(1, int(self.opt.depth))
        names = STAGE_NAMES
        fns = [self._preprocess, self._inference, self._postprocess]
        self.fps = float(self.opt.fps or source.fps or 30.0)
        self.tracker: Optional[Tracker] = None
        self._motion: Optional[CameraMotion] = None
        if self.opt.track is not None:
            self.tracker = Tracker(self.opt.track, fps=self.fps)
            self._motion = CameraMotion() if self.opt.track.motion else None
            names = STAGE_NAMES + ("track",)
            fns.append(self._track)
            depth += 1
        self._tokens = threading.Semaphore(depth)
        self._handoffs = [LatestSlot() if live else queue.Queue(maxsize=depth)
                          for _ in names]
        self._stale = [0] * len(names)  # live: frames replaced in each hand-off slot
        self._busy_since: List[Optional[int]] = [None] * len(names)  # stage start (ns)
        self._ema: List[Optional[float]] = [None] * len(names)  # mean stage time (ns)
        self.capture = CaptureThread(
            source, self.stop, self.abort,
            max_frames=None if live else self.opt.max_frames, queue_size=1,
            reconnect_timeout=self.opt.reconnect_timeout, log=log,
            admission=None if live else self._tokens)
        gets = [self.capture.get] + [self._getter(h) for h in self._handoffs[:-1]]
        self._stages = [threading.Thread(target=self._stage_loop, name=f"oscar-{name}",
                                         args=(i, name, fn, get), daemon=True)
                        for i, (name, fn, get) in enumerate(zip(names, fns, gets))]

    # -- stage functions ---------------------------------------------------------------------
    def _preprocess(self, rec: FrameRecord) -> None:
        try:
            rec.grey = to_grey_u8(rec.image)
        except ValueError as exc:
            raise SkipFrame(f"frame {rec.index}: {exc}") from None
        rec.image = None
        rec.x, rec.letterbox = self.detector.preprocess(rec.grey)

    def _inference(self, rec: FrameRecord) -> None:
        rec.outputs = self.detector.run(rec.x, rec.letterbox)

    def _postprocess(self, rec: FrameRecord) -> None:
        rec.detections = self.detector.postprocess(rec.outputs, rec.letterbox, rec.x)
        rec.outputs = None
        rec.x = None

    def _track(self, rec: FrameRecord) -> None:
        """Camera motion (when on) and the tracker's update with every detection of the frame
        (the tracker keeps those with score >= its ``min_score``)."""
        motion = self._motion.estimate(rec.grey) if self._motion is not None else None
        h, w = rec.grey.shape[:2]
        det = rec.detections
        rec.tracks = self.tracker.update(rec.t_source, det.boxes, det.scores, motion=motion,
                                         frame_size=(w, h))
        rec.tracks_tentative = self.tracker.tentative

    # -- plumbing ----------------------------------------------------------------------------
    def _fail(self, exc: BaseException) -> None:
        with self._err_lock:
            self.errors.append(exc)
        self.stop_reason = self.stop_reason or "error"
        self.abort.set()
        self.stop.set()

    def _release(self) -> None:
        """A frame left the pipeline (output, skipped, discarded): free its token."""
        if not self._live:
            self._tokens.release()

    @staticmethod
    def _getter(handoff):
        if isinstance(handoff, LatestSlot):
            return handoff.get

        def get(timeout: float):
            try:
                return handoff.get(timeout=timeout)
            except queue.Empty:
                return None
        return get

    def _put(self, i: int, item) -> bool:
        handoff = self._handoffs[i]
        if isinstance(handoff, LatestSlot):
            if item is END:
                handoff.close()
            elif handoff.put(item):
                self._stale[i] += 1  # only stage i writes this slot
            return True
        while not self.abort.is_set():
            try:
                handoff.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _pace_preprocess(self) -> None:
        """Live sources: take the next camera frame just in time for the inference stage.

        Pre-processing every camera frame would waste CPU on frames that are dropped in front
        of a slower inference (and on a CPU-bound machine slow the inference down). So: wait
        while a prepared frame is still waiting for inference, and while inference is busy,
        until about one pre-processing time before it should finish (running means). The
        frame taken then is the newest one, so it is as fresh as it can be when inference
        takes it."""
        slot = self._handoffs[0]
        while slot.pending() and not self.abort.is_set():
            slot.wait_empty(0.05)
        started = self._busy_since[1]
        ema_inf, ema_pre = self._ema[1], self._ema[0]
        if started is not None and ema_inf is not None and ema_pre is not None:
            due = started + ema_inf - 1.25 * ema_pre - 1_000_000
            delay = (due - time.perf_counter_ns()) / 1e9
            if delay > 0:
                self.abort.wait(min(delay, 1.0))

    def _stage_loop(self, i: int, name: str, fn, get) -> None:
        try:
            while not self.abort.is_set():
                if i == 0 and self._live:
                    self._pace_preprocess()
                item = get(0.1)
                if item is None:
                    continue
                if item is END:
                    self._put(i, END)
                    return
                start = item.marks[f"{name}_start"] = time.perf_counter_ns()
                self._busy_since[i] = start
                try:
                    fn(item)
                except FrameDropped as exc:  # the backend's server is away or slow
                    self.backend_dropped += 1
                    self._release()
                    if self.backend_dropped <= 3:
                        self.log(f"oscar-edge run: warning: frame {item.index} dropped: {exc}")
                    continue
                except SkipFrame as exc:
                    self.skipped += 1
                    self._release()
                    if self.skipped <= 10:
                        self.log(f"oscar-edge run: warning: skipped {exc}")
                    continue
                finally:
                    self._busy_since[i] = None
                end = item.marks[f"{name}_end"] = time.perf_counter_ns()
                prev = self._ema[i]
                self._ema[i] = end - start if prev is None else 0.8 * prev + 0.2 * (end - start)
                if not self._put(i, item):
                    return
        except BaseException as exc:
            self._fail(exc)

    # -- signals -----------------------------------------------------------------------------
    def _on_signal(self, signum, _frame) -> None:
        name = signal.Signals(signum).name
        if not self.stop.is_set():
            self.stop_reason = self.stop_reason or name
            self.stop.set()
            self.log(f"oscar-edge run: {name}: stopping after the frames in flight "
                     "(again to stop at once)")
        else:
            self.abort.set()

    def _install_signals(self):
        if not self.opt.install_signal_handlers \
                or threading.current_thread() is not threading.main_thread():
            return {}
        old = {}
        for sig in (signal.SIGINT, signal.SIGTERM):
            old[sig] = signal.signal(sig, self._on_signal)
        return old

    # -- output stage (calling thread) -------------------------------------------------------
    def _status(self, rec: FrameRecord, n_shown: int, e2e_ms: float) -> List[str]:
        """Two lines for the strip above the drawn frame."""
        fps = 0.0
        if len(self._recent_done) >= 2:
            span = (self._recent_done[-1] - self._recent_done[0]) / 1e9
            fps = (len(self._recent_done) - 1) / span if span > 0 else 0.0
        truth = self.opt.show_truth and rec.truth is not None
        tracks = ""
        if rec.tracks is not None:
            n = sum(1 for r in rec.tracks if r.state == "confirmed")
            tracks = f"{n} track{'s' if n != 1 else ''}"
        return [status_line([self.opt.short_label or "oscar-edge", f"{fps:.1f} FPS",
                             f"latency {e2e_ms:.0f} ms"]),
                status_line([f"{n_shown} detection{'s' if n_shown != 1 else ''} >= "
                             f"{self.opt.score_thr:.2f}", tracks, f"frame {rec.index}",
                             "circles: truth" if truth else ""])]

    def _emit(self, rec: FrameRecord) -> None:
        rec.marks["render_start"] = time.perf_counter_ns()
        det = rec.detections
        keep = det.scores >= np.float32(self.opt.score_thr)
        boxes, scores = det.boxes[keep], det.scores[keep]
        ready = rec.marks.get("track_end", rec.marks["postprocess_end"])
        e2e_ms = (ready - rec.t_capture) / 1e6
        canvas = None
        if any(o.needs_canvas for o in self.outputs):
            truth = rec.truth if self.opt.show_truth else None
            canvas = draw_detections(rec.grey, boxes, scores,
                                     self._status(rec, len(scores), e2e_ms), truth)
            if rec.tracks:
                draw_tracks(canvas, rec.tracks, top=canvas.shape[0] - rec.grey.shape[0])
        for o in self.outputs:
            if not getattr(o, "wants_line", False):
                o.write(rec, canvas, None)
        rec.marks["render_end"] = done = time.perf_counter_ns()
        durations = frame_durations(rec.marks, rec.t_capture)
        if any(getattr(o, "wants_line", False) for o in self.outputs):
            line = {"frame": rec.index, "timestamp": round(rec.wall_time, 6),
                    "source_time": round(rec.t_source, 6)}
            if rec.name is not None:
                line["source"] = rec.name
            h, w = rec.grey.shape[:2]
            line.update(width=w, height=h,
                        boxes=[[float(v) for v in b] for b in boxes],
                        scores=[float(s) for s in scores],
                        times_ms={k: round(v / 1e6, 3) for k, v in durations.items()})
            if rec.truth is not None:
                line["truth"] = [[round(float(v), 2) for v in b] for b in rec.truth]
            if rec.truth_ids is not None:
                line["truth_ids"] = [int(i) for i in rec.truth_ids]
            if rec.tracks is not None:
                line["tracks"] = [r.to_json(self.fps) for r in rec.tracks]
                line["tracks_tentative"] = rec.tracks_tentative
            for o in self.outputs:
                if getattr(o, "wants_line", False):
                    o.write(rec, None, line)
        self.stats.add(durations, rec.t_capture, done)
        self.window.add(durations, rec.t_capture, done)
        self._recent_done.append(done)
        self.processed += 1

    def counters(self) -> dict:
        c = self.capture.counters
        return {"processed": self.processed, "captured": c.captured,
                "dropped": c.dropped + sum(self._stale) + self.backend_dropped,
                "dropped_at_capture": c.dropped, "dropped_between_stages": sum(self._stale),
                "dropped_by_backend": self.backend_dropped,
                "corrupt": c.corrupt + self.skipped, "disconnects": c.disconnects,
                "reconnects": c.reconnects, "discarded_after_stop": self.discarded}

    def summary(self) -> dict:
        s = self.stats.summary()
        return {
            "source": self.source.describe(),
            "backend": self.opt.label,
            **{("backend_kind" if k == "backend" else k): v
               for k, v in (self.opt.info or {}).items() if k != "backend_label"},
            "postprocess": getattr(self.detector, "postprocess_backend", "?"),
            "input_size": list(self.detector.input_size) if self.detector.input_size else None,
            "score_thr": self.opt.score_thr,
            "stop_reason": self.stop_reason or "end of stream",
            "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z",
                                        time.localtime(self._started_wall)),
            "elapsed_s": round(time.time() - self._started_wall, 3),
            "frames": self.counters(),
            "fps": s["fps"],
            "percentiles_over": s["percentiles_over"],
            "stages": s["stages"],
            **({"track": self.track_summary()} if self.tracker is not None else {}),
            "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                        "python": platform.python_version()},
        }

    def track_summary(self) -> dict:
        """The tracker's settings and counters (statistics JSON)."""
        tr = self.tracker
        return {"settings": track_settings(tr.cfg), "fps": self.fps,
                "tracks_started": tr.started, "time_jumps": tr.jumps,
                "clutter_dropped": tr.clutter_dropped, "ids_revived": tr.revived,
                "camera_motion_failures": self._motion.failures if self._motion else None}

    def _write_stats(self) -> None:
        if not self.opt.stats_path:
            return
        tmp = self.opt.stats_path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(self.summary(), fh, indent=2)
            fh.write("\n")
        os.replace(tmp, self.opt.stats_path)

    def _report(self, stats: LatencyStats, title: str, window: bool = False) -> None:
        notes = []
        if window:
            pass  # the notes come with the final report
        elif self.source.live:
            notes.append("live source: every stage takes the newest frame, older ones are "
                         "dropped (counted)")
        else:
            notes.append(f"finite source: every frame is processed, up to {self.opt.depth} in "
                         "flight; end-to-end includes waiting for the slowest stage "
                         "(throughput mode; live sources show camera latency)")
        print(format_report(stats.summary(), self.counters(), title, notes, window),
              file=self.out, flush=True)

    # -- main loop ---------------------------------------------------------------------------
    def run(self) -> dict:
        old_handlers = self._install_signals()
        next_report = time.monotonic() + self.opt.report_every if self.opt.report_every else None
        try:
            self.capture.start()
            for t in self._stages:
                t.start()
            last_get = self._getter(self._handoffs[-1])
            while not self.abort.is_set():
                if next_report is not None and time.monotonic() >= next_report:
                    self._report(self.window, f"last {self.opt.report_every:g} s "
                                 f"({self.source.describe()}, {self.opt.label})", window=True)
                    self.window = LatencyStats(capacity=20_000)
                    self._write_stats()
                    next_report = time.monotonic() + self.opt.report_every
                if self.stop.is_set():
                    if self._stop_ns is None:
                        self._stop_ns = time.perf_counter_ns()
                    elif (time.perf_counter_ns() - self._stop_ns) / 1e9 > self.opt.drain_timeout:
                        self.abort.set()
                        break
                item = last_get(0.1)
                if item is None:
                    continue
                if item is END:
                    break
                if self.opt.max_frames and self.processed >= self.opt.max_frames:
                    self.discarded += 1
                    self._release()
                    continue
                try:
                    self._emit(item)
                finally:
                    self._release()
                if self.opt.max_frames and self.processed >= self.opt.max_frames \
                        and not self.stop.is_set():
                    self.stop_reason = self.stop_reason or "max frames"
                    self.stop.set()
                if any(o.stop_requested for o in self.outputs) and not self.stop.is_set():
                    self.stop_reason = self.stop_reason or "window closed"
                    self.stop.set()
        except BaseException as exc:
            self._fail(exc)
        finally:
            self.stop.set()
            self.abort.set()
            self.capture.join(timeout=5.0)
            for t in self._stages:
                t.join(timeout=5.0)
            if self.capture.error is not None:
                self.errors.append(self.capture.error)
                self.stop_reason = self.stop_reason or "error"
            close_errors = []
            for o in self.outputs:
                try:
                    o.close()
                except BaseException as exc:  # close the others anyway
                    close_errors.append(exc)
            if not self.capture.is_alive():  # never release a capture a thread still reads
                self.source.close()
            for sig, handler in old_handlers.items():
                signal.signal(sig, handler)
            self._report(self.stats, f"{self.processed} frames, {self.source.describe()}, "
                         f"{self.opt.label}, stop: {self.stop_reason or 'end of stream'}")
            self._write_stats()
            self.errors.extend(close_errors)
        if self.errors:
            raise self.errors[0]
        return self.summary()
