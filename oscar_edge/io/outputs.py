"""Where results go: annotated video, a window, JSON lines, one still frame.

Every output checks its path (or display) when it is created, before the stream starts, and
raises OutputError (one line, exit code 2 in the CLI) when it cannot work. Then:

* :class:`VideoOutput` (``--save out.mp4``): annotated frames, ``mp4v`` fourcc, frame rate of
  the source; released on close, so the file is complete after Ctrl-C / SIGTERM too.
* :class:`DisplayOutput` (``--display``): ``cv2.imshow``; ``q`` / Esc or closing the window stops.
* :class:`JsonlOutput` (``--jsonl dets.jsonl``): one JSON object per frame, written and flushed
  as soon as the frame is done, so a run stopped any way leaves only complete lines behind.
* :class:`SnapshotOutput` (``--snapshot still.png``): one annotated frame (the n-th, or the last
  one when the stream is shorter).
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import List, Optional, Tuple

import cv2
import numpy as np

from ..errors import UserError

VIDEO_EXTENSIONS = (".mp4", ".m4v", ".mov", ".avi", ".mkv")
STILL_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp")


class OutputError(UserError):
    """An output path cannot be written, or there is no display."""


def check_writable(path: str, what: str) -> Path:
    """Fail now (OutputError) if ``path`` cannot be written; leaves no new file behind."""
    p = Path(path)
    if p.is_dir():
        raise OutputError(f"cannot write {what} {path}: it is a folder")
    parent = p.parent if str(p.parent) else Path(".")
    if not parent.is_dir():
        raise OutputError(f"cannot write {what} {path}: folder {parent} does not exist")
    existed = p.exists()
    try:
        with open(p, "ab"):
            pass
    except OSError as exc:
        raise OutputError(f"cannot write {what} {path}: {exc.strerror or exc}") from None
    finally:
        if not existed and p.exists():
            try:
                p.unlink()
            except OSError:
                pass
    return p


class Output:
    """Base class. ``needs_canvas``: wants the annotated frame; ``stop_requested``: the user
    asked to stop through this output (window closed)."""

    needs_canvas = False
    stop_requested = False

    def write(self, record, canvas: Optional[np.ndarray], line: dict) -> None:
        raise NotImplementedError

    def close(self) -> None:
        pass


def letterbox_to(img: np.ndarray, size: Tuple[int, int]) -> np.ndarray:
    """Fit ``img`` into (width, height) keeping its aspect ratio, black borders."""
    w, h = size
    ih, iw = img.shape[:2]
    if (iw, ih) == (w, h):
        return img
    s = min(w / iw, h / ih)
    nw, nh = max(1, int(round(iw * s))), max(1, int(round(ih * s)))
    out = np.zeros((h, w) + img.shape[2:], dtype=img.dtype)
    x0, y0 = (w - nw) // 2, (h - nh) // 2
    out[y0:y0 + nh, x0:x0 + nw] = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_AREA)
    return out


class VideoOutput(Output):
    """Annotated video file (mp4v). Frames of another size than the first are letterboxed."""

    needs_canvas = True
    FOURCC = "mp4v"

    def __init__(self, path: str, fps: Optional[float] = None) -> None:
        if not path.lower().endswith(VIDEO_EXTENSIONS):
            raise OutputError(f"--save {path}: use a video file name ending in "
                              f"{', '.join(VIDEO_EXTENSIONS)}")
        self.path = str(check_writable(path, "video"))
        self.fps = float(fps) if fps and fps > 0 else 30.0
        # Check that this OpenCV can encode here at all (codec present, container known).
        probe = cv2.VideoWriter(self.path, cv2.VideoWriter_fourcc(*self.FOURCC), self.fps,
                                (64, 64))
        ok = probe.isOpened()
        probe.release()
        try:
            os.unlink(self.path)
        except OSError:
            pass
        if not ok:
            raise OutputError(f"cannot write video {path}: OpenCV's writer refused the "
                              f"{self.FOURCC} codec for this file")
        self.writer: Optional[cv2.VideoWriter] = None
        self.size: Optional[Tuple[int, int]] = None
        self.frames = 0

    def write(self, record, canvas, line) -> None:
        if canvas is None:
            return
        if self.writer is None:
            h, w = canvas.shape[:2]
            self.size = (w, h)
            self.writer = cv2.VideoWriter(self.path, cv2.VideoWriter_fourcc(*self.FOURCC),
                                          self.fps, self.size)
            if not self.writer.isOpened():
                raise OutputError(f"cannot write video {self.path} at {w}x{h}")
        frame = letterbox_to(canvas, self.size)
        if frame.ndim == 2:
            frame = cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
        self.writer.write(frame)
        self.frames += 1

    def close(self) -> None:
        if self.writer is not None:
            self.writer.release()  # writes the index (moov atom): the file is complete
            self.writer = None


class DisplayOutput(Output):
    """An OpenCV window. Fails at creation where there is no display or no GUI support."""

    needs_canvas = True

    def __init__(self, title: str = "oscar-edge") -> None:
        self.title = title
        if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY")
                                                     or os.environ.get("WAYLAND_DISPLAY")):
            raise OutputError("--display needs a desktop session, and neither DISPLAY nor "
                              "WAYLAND_DISPLAY is set (use --headless with --save / --jsonl / "
                              "--snapshot)")
        try:
            cv2.namedWindow(self.title, cv2.WINDOW_NORMAL)
        except cv2.error:
            raise OutputError("--display: this OpenCV has no window support (the "
                              "opencv-python-headless wheel); install opencv-python, or use "
                              "--headless") from None

    def write(self, record, canvas, line) -> None:
        if canvas is None:
            return
        cv2.imshow(self.title, canvas)
        key = cv2.waitKey(1) & 0xFF
        if key in (27, ord("q")):
            self.stop_requested = True
        try:
            if cv2.getWindowProperty(self.title, cv2.WND_PROP_VISIBLE) < 1:
                self.stop_requested = True
        except cv2.error:
            self.stop_requested = True

    def close(self) -> None:
        try:
            cv2.destroyWindow(self.title)
            cv2.waitKey(1)
        except cv2.error:
            pass


JSONL_FORMAT = "oscar-edge detections v2"


class JsonlOutput(Output):
    """One JSON object per line and frame, flushed line by line.

    With ``header`` the first line is ``{"header": {...}}``: the format name and what the run
    was (source, backend, precision, OpenVINO hint, input size, ...); every later line is a
    frame. :func:`read_jsonl` splits such a file again."""

    wants_line = True  # gets the frame's JSON object (after drawing and the other outputs)

    def __init__(self, path: str, header: Optional[dict] = None) -> None:
        check_writable(path, "JSON lines")
        try:
            self.fh = open(path, "w", encoding="utf-8")
        except OSError as exc:
            raise OutputError(f"cannot write JSON lines {path}: {exc.strerror or exc}") from None
        self.path = path
        self.lines = 0
        if header is not None:
            self.fh.write(json.dumps({"header": {"format": JSONL_FORMAT, **header}},
                                     separators=(",", ":")) + "\n")
            self.fh.flush()

    def write(self, record, canvas, line) -> None:
        self.fh.write(json.dumps(line, separators=(",", ":")) + "\n")
        self.fh.flush()
        self.lines += 1

    def close(self) -> None:
        if not self.fh.closed:
            self.fh.flush()
            try:
                os.fsync(self.fh.fileno())
            except OSError:
                pass
            self.fh.close()


def read_jsonl(path: str) -> Tuple[Optional[dict], List[dict]]:
    """(header or None, frame lines) of a file written by :class:`JsonlOutput`."""
    header, frames = None, []
    with open(path, encoding="utf-8") as fh:
        for i, text in enumerate(fh):
            if not text.strip():
                continue
            obj = json.loads(text)
            if i == 0 and isinstance(obj, dict) and set(obj) == {"header"}:
                header = obj["header"]
            else:
                frames.append(obj)
    return header, frames


class SnapshotOutput(Output):
    """The annotated ``at``-th processed frame (1-based) as a still image; the last frame if
    the stream ends earlier."""

    @property
    def needs_canvas(self) -> bool:  # only until the still is written
        return not self.written

    def __init__(self, path: str, at: int = 30) -> None:
        if not path.lower().endswith(STILL_EXTENSIONS):
            raise OutputError(f"--snapshot {path}: use an image name ending in "
                              f"{', '.join(STILL_EXTENSIONS)}")
        self.path = str(check_writable(path, "snapshot"))
        self.at = max(1, int(at))
        self.count = 0
        self.written = False
        self._last: Optional[np.ndarray] = None

    def _save(self, canvas: np.ndarray) -> None:
        params = [cv2.IMWRITE_PNG_COMPRESSION, 9] if self.path.lower().endswith(".png") else []
        if not cv2.imwrite(self.path, canvas, params):
            raise OutputError(f"cannot write snapshot {self.path}")
        self.written = True

    def write(self, record, canvas, line) -> None:
        if canvas is None or self.written:
            return
        self.count += 1
        self._last = canvas
        if self.count >= self.at:
            self._save(canvas)
            self._last = None

    def close(self) -> None:
        if not self.written and self._last is not None:
            self._save(self._last)
        self._last = None
