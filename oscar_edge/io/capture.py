"""The capture thread: reads a VideoSource on its own thread and hands frames downstream.

* Live sources (cameras, streams): only the newest frame is kept (:class:`LatestSlot`); a frame
  replaced before anyone took it counts as dropped, so a slow pipeline never builds up lag.
  A failed read (SourceDisconnected) closes the source and reopens it with exponential backoff
  (0.1 s doubling to 5 s), for ever or until ``reconnect_timeout`` seconds; the run goes on.
* Finite sources (files, folders, synthetic): every frame, through a bounded queue (the thread
  waits when the pipeline is busy, nothing is dropped).
* CorruptFrame (empty frame, undecodable image) is counted and skipped.

Each frame is stamped with ``time.perf_counter_ns()`` when its read returned (the capture time
of the latency report) and with the wall clock (``time.time()``, for the JSONL timestamp).
Its time for motion (``t_source``, seconds, what the tracker uses) is the source's own
time stamp where it has one (files, folders, synthetic scenes: index / fps), else the capture
time (cameras, streams: frames a camera delivered but the pipeline dropped leave a gap).
"""
from __future__ import annotations

import queue
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, Optional

import numpy as np

from .sources import CorruptFrame, SourceDisconnected, SourceError, VideoSource

END = object()  # end-of-stream marker passed down the pipeline


@dataclass
class FrameRecord:
    """One frame on its way through the pipeline; stages fill in their fields and times."""

    index: int
    image: Optional[np.ndarray]
    t_capture: int                 # perf_counter_ns() when the read returned
    wall_time: float               # time.time() at the same moment
    name: Optional[str] = None
    truth: Optional[np.ndarray] = None
    truth_ids: Optional[np.ndarray] = None
    t_source: float = float("nan")  # seconds: the source's time stamp, else the capture time
    grey: Optional[np.ndarray] = None
    x: Optional[np.ndarray] = None
    letterbox: object = None
    outputs: object = None
    detections: object = None
    tracks: Optional[list] = None  # TrackReport list when tracking is on
    tracks_tentative: int = 0      # tentative tracks after this frame (not in ``tracks``)
    marks: Dict[str, int] = field(default_factory=dict)  # stage -> perf_counter_ns stamps


class LatestSlot:
    """A one-frame mailbox: ``put`` replaces an unread frame (returns True when it did)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._item = None
        self._has = False
        self._closed = False

    def put(self, item) -> bool:
        with self._cond:
            replaced = self._has
            self._item, self._has = item, True
            self._cond.notify_all()
            return replaced

    def pending(self) -> bool:
        """A frame is waiting to be taken."""
        with self._cond:
            return self._has

    def wait_empty(self, timeout: float) -> None:
        """Wait (at most ``timeout`` s) until the waiting frame has been taken."""
        with self._cond:
            if self._has:
                self._cond.wait(timeout)

    def close(self) -> None:
        """No more frames: ``get`` returns END once the slot is empty."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def get(self, timeout: Optional[float] = None):
        """The newest frame, END after close, or None on timeout."""
        with self._cond:
            if not self._has and not self._closed:
                self._cond.wait(timeout)
            if self._has:
                item, self._item, self._has = self._item, None, False
                self._cond.notify_all()  # wake wait_empty()
                return item
            return END if self._closed else None


@dataclass
class CaptureCounters:
    captured: int = 0       # frames read and handed on
    dropped: int = 0        # live: replaced in the newest-frame slot before being taken
    corrupt: int = 0        # empty / undecodable frames skipped
    disconnects: int = 0    # live: read failures (drop-outs)
    reconnects: int = 0     # live: successful reopenings


class CaptureThread(threading.Thread):
    """Read ``source`` (already opened) until it ends, ``stop`` is set or ``max_frames``."""

    def __init__(self, source: VideoSource, stop: threading.Event,
                 abort: Optional[threading.Event] = None, max_frames: Optional[int] = None,
                 queue_size: int = 2,
                 reconnect_timeout: float = 0.0, backoff_initial: float = 0.1,
                 backoff_max: float = 5.0,
                 log: Callable[[str], None] = lambda m: print(m, file=sys.stderr),
                 admission: Optional[threading.Semaphore] = None) -> None:
        super().__init__(name="oscar-capture", daemon=True)
        self.source, self.stop = source, stop
        self.abort = abort if abort is not None else threading.Event()
        self.live = bool(source.live)
        self.max_frames = max_frames
        self.reconnect_timeout = reconnect_timeout
        self.backoff_initial, self.backoff_max = backoff_initial, backoff_max
        self.log = log
        self.counters = CaptureCounters()
        self.error: Optional[BaseException] = None
        # Finite sources: read a frame only when the pipeline can take one (a token of
        # ``admission``, released by the consumer when the frame leaves the pipeline), so a
        # frame's capture age does not include waiting for room. Live sources never wait.
        self.admission = None if self.live else admission
        self._slot = LatestSlot() if self.live else None
        self._queue: Optional[queue.Queue] = None if self.live else queue.Queue(max(1, queue_size))
        self._warned = 0

    # -- consumer side -----------------------------------------------------------------------
    def get(self, timeout: float = 0.1):
        """Next frame (FrameRecord), END at the end of the stream, None on timeout."""
        if self._slot is not None:
            return self._slot.get(timeout)
        try:
            return self._queue.get(timeout=timeout)
        except queue.Empty:
            return None

    # -- producer side -----------------------------------------------------------------------
    def _hand_on(self, item) -> bool:
        """Pass a frame (or END) on; False when stopped while waiting for room."""
        if self._slot is not None:
            if item is END:
                self._slot.close()
            elif self._slot.put(item):
                self.counters.dropped += 1
            return True
        while not self.abort.is_set():
            if self.stop.is_set() and item is not END:
                return False  # stopping: no new frames, but END still goes (after the queue)
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _warn(self, message: str) -> None:
        self._warned += 1
        if self._warned <= 10:
            self.log(f"oscar-edge run: warning: {message}")
        elif self._warned == 11:
            self.log("oscar-edge run: warning: more skipped frames; the report counts them")

    def _reconnect(self, reason: str) -> None:
        """Close and reopen a live source with exponential backoff."""
        self.counters.disconnects += 1
        self.log(f"oscar-edge run: {self.source.describe()} lost ({reason}); reopening")
        delay = self.backoff_initial
        start = time.monotonic()
        attempt = 0
        while not self.stop.is_set():
            self.source.close()
            if self.stop.wait(delay):
                return
            attempt += 1
            try:
                self.source.open()
            except SourceError as exc:
                waited = time.monotonic() - start
                if self.reconnect_timeout and waited >= self.reconnect_timeout:
                    raise SourceError(f"{self.source.describe()} lost and not back after "
                                      f"{waited:.0f} s: {exc}") from None
                delay = min(delay * 2, self.backoff_max)
                if attempt <= 3 or attempt % 10 == 0:
                    self.log(f"oscar-edge run: reopen attempt {attempt} failed ({exc}); "
                             f"next in {delay:.1f} s")
                continue
            self.counters.reconnects += 1
            self.log(f"oscar-edge run: {self.source.describe()} back after "
                     f"{time.monotonic() - start:.1f} s ({attempt} attempt(s))")
            return

    def _admit(self) -> bool:
        if self.admission is None:
            return True
        while not (self.stop.is_set() or self.abort.is_set()):
            if self.admission.acquire(timeout=0.1):
                return True
        return False

    def _unadmit(self) -> None:
        if self.admission is not None:
            self.admission.release()

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                if not self._admit():
                    break
                try:
                    frame = self.source.read()
                except CorruptFrame as exc:
                    self._unadmit()
                    self.counters.corrupt += 1
                    self._warn(f"skipped a corrupt frame: {exc}")
                    continue
                except SourceDisconnected as exc:
                    self._unadmit()
                    if not self.live:
                        break
                    self._reconnect(str(exc))
                    continue
                if frame is None:
                    self._unadmit()
                    break
                t_capture = time.perf_counter_ns()
                record = FrameRecord(index=frame.index, image=frame.image,
                                     t_capture=t_capture, wall_time=time.time(),
                                     name=frame.name, truth=frame.truth,
                                     truth_ids=frame.truth_ids,
                                     t_source=(t_capture / 1e9 if frame.timestamp is None
                                               else float(frame.timestamp)))
                if not self._hand_on(record):
                    self._unadmit()
                    break
                self.counters.captured += 1
                if self.max_frames and self.counters.captured >= self.max_frames:
                    break
        except BaseException as exc:  # reported by the runtime after a clean shutdown
            self.error = exc
        finally:
            self._hand_on(END)
