"""Video sources by URI: one small interface, one class per kind of input.

    source = open_source("synthetic://?frames=300&size=640x512&targets=5&seed=0&fps=30")
    source.open()                  # SourceError (one line, exit 2 in the CLI) when it cannot
    while (f := source.read()) is not None:
        ...                        # f.image: the frame as delivered (grey, BGR or 16-bit)
    source.close()

URIs (the resource-URI scheme of jetson-inference's videoSource, written anew here):

| URI | source | live |
|---|---|---|
| ``/dev/video0``, ``v4l2:///dev/video0``, ``--camera 0`` | V4L2 camera through OpenCV (``cv2.CAP_V4L2``) | yes |
| ``csi://0`` | Jetson MIPI CSI camera: GStreamer ``nvarguscamerasrc`` pipeline (``cv2.CAP_GSTREAMER``) | yes |
| ``rtsp://host:port/path`` (also ``rtsps``, ``rtmp``, ``http(s)``, ``udp``, ``rtp``) | network stream through OpenCV's FFmpeg backend | yes |
| ``video.mp4``, ``file://video.mp4`` | video file | no |
| ``images/``, ``'images/*.png'``, ``image.png`` | image folder / glob / one image, natural name order | no |
| ``synthetic://?frames=300&size=640x512&targets=5&seed=0&fps=30`` | procedural IR scene with ground truth | no (``live=1``: yes) |

Query options: ``v4l2``: ``width``, ``height``, ``fps``, ``format`` (a V4L2 FOURCC such as
``GREY``, ``Y16``, ``YUYV``, ``MJPG``; GREY and Y16 are delivered unconverted, 8 / 16 bit).
``csi``: ``width``, ``height``, ``fps``, ``flip`` (nvvidconv flip-method 0-7), ``format``
(``BGR`` default, ``GRAY8``). ``synthetic``: ``frames`` (0 = endless), ``size`` (WxH),
``targets``, ``seed``, ``fps``, ``noise`` (grey levels), ``drift`` (px/frame),
``depth`` (8 or 16), ``channels`` (1 or 3), ``pan`` (px/frame, peak speed of a camera sweep),
``shake`` (px, per-frame camera jitter), ``live`` (0/1: pace at fps and behave as a camera).
Network URLs are passed to FFmpeg unchanged (their query belongs to the server).

Live sources (cameras, streams, ``synthetic://?live=1``) are read by the capture thread as fast
as they deliver and only the newest frame is kept (``oscar_edge.io.capture``); a failed read
raises :class:`SourceDisconnected` and the capture thread reopens the source with backoff.
Files, folders and synthetic scenes deliver every frame; ``read()`` returns None at the end.
A frame that cannot be used raises :class:`CorruptFrame` (counted and skipped).
"""
from __future__ import annotations

import glob as globmod
import os
import re
import time
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple
from urllib.parse import parse_qs, urlsplit

import cv2
import numpy as np

from ..errors import UserError
from ..preprocess import ImageReadError, read_grey
from ..sizes import parse_size as _parse_size

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".pgm", ".ppm", ".webp")
NETWORK_SCHEMES = ("rtsp", "rtsps", "rtmp", "http", "https", "udp", "rtp")
NETWORK_TIMEOUT_MS = 5000


class SourceError(UserError):
    """A source cannot be opened (missing camera, bad URI, unreadable file): one line."""


class SourceDisconnected(Exception):
    """A live source stopped delivering frames (unplugged camera, network drop-out)."""


class CorruptFrame(Exception):
    """One frame is empty or cannot be decoded; the stream goes on."""


@dataclass
class SourceFrame:
    """A frame as read: the image as delivered, its index in the stream (0-based, counting
    corrupt frames too), and for some sources a name (image file), ground truth (N, 4) with
    target ids (N,), and the frame's time on the source's own clock in seconds (files,
    folders and synthetic scenes: index / fps; None for live cameras and streams, whose
    frames are timed when the read returns)."""

    image: np.ndarray
    index: int
    name: Optional[str] = None
    truth: Optional[np.ndarray] = None
    truth_ids: Optional[np.ndarray] = None
    timestamp: Optional[float] = None


class VideoSource:
    """Base class: ``open()``, ``read()``, ``close()``; ``live``, ``fps``, ``uri``."""

    live: bool = False
    scheme: str = ""

    def __init__(self, uri: str) -> None:
        self.uri = uri
        self.fps: Optional[float] = None
        self.frame_count: Optional[int] = None  # known length (files, folders, synthetic)

    def open(self) -> None:
        """Open (or reopen) the source; raise SourceError with a one-line reason."""

    def read(self) -> Optional[SourceFrame]:
        """The next frame; None at the end of a finite source. Live sources raise
        SourceDisconnected when a read fails; any source may raise CorruptFrame."""
        raise NotImplementedError

    def close(self) -> None:
        """Release the device / file; safe to call twice."""

    def describe(self) -> str:
        return f"{self.scheme or 'source'} {self.uri}"

    def __enter__(self) -> "VideoSource":
        self.open()
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _check_frame(image, index: int, what: str) -> np.ndarray:
    if image is None or not isinstance(image, np.ndarray) or image.size == 0:
        raise CorruptFrame(f"{what}: frame {index} is empty")
    return image


# --------------------------------------------------------------------------------------------
# OpenCV VideoCapture: V4L2 cameras, CSI cameras (GStreamer), network streams, video files
# --------------------------------------------------------------------------------------------
class OpenCVSource(VideoSource):
    """A cv2.VideoCapture over ``target`` with backend ``api`` (and open ``params``)."""

    def __init__(self, uri: str, target: str, api: int = cv2.CAP_ANY, live: bool = False,
                 params: Sequence[int] = ()) -> None:
        super().__init__(uri)
        self.target, self.api, self.live, self.params = target, api, live, list(params)
        self.cap: Optional[cv2.VideoCapture] = None
        self._index = 0

    def _capture(self) -> cv2.VideoCapture:
        if self.params:
            return cv2.VideoCapture(self.target, self.api, self.params)
        return cv2.VideoCapture(self.target, self.api)

    def _why_not_open(self) -> str:
        return f"cannot open {self.describe()}"

    def _configure(self, cap: cv2.VideoCapture) -> None:
        """Set properties after opening (camera size, rate, format)."""

    def open(self) -> None:
        self.close()
        try:
            cap = self._capture()
        except cv2.error as exc:
            raise SourceError(f"{self._why_not_open()} ({str(exc).strip().splitlines()[-1]})") \
                from None
        if not cap.isOpened():
            cap.release()
            raise SourceError(self._why_not_open())
        self._configure(cap)
        fps = cap.get(cv2.CAP_PROP_FPS)
        self.fps = float(fps) if fps and 0 < fps < 1000 else self.fps
        self.cap = cap

    def read(self) -> Optional[SourceFrame]:
        if self.cap is None:
            if self.live:
                raise SourceDisconnected(f"{self.describe()} is not open")
            return None
        try:
            ok, image = self.cap.read()
        except cv2.error as exc:
            ok, image = False, None
            if not self.live:  # a decoder error inside a file: skip that frame
                index = self._index
                self._index += 1
                raise CorruptFrame(f"{self.describe()}: frame {index}: "
                                   f"{str(exc).strip().splitlines()[-1]}") from None
        if not ok:
            if self.live:
                raise SourceDisconnected(f"{self.describe()}: read failed")
            return None  # end of file
        index = self._index
        self._index += 1
        stamp = None if self.live else index / (self.fps or 30.0)
        return SourceFrame(_check_frame(image, index, self.describe()), index, timestamp=stamp)

    def close(self) -> None:
        if self.cap is not None:
            self.cap.release()
            self.cap = None


class V4L2Source(OpenCVSource):
    """A V4L2 camera (``/dev/videoN``) through OpenCV's V4L2 backend."""

    scheme = "v4l2"
    OPTIONS = ("width", "height", "fps", "format")

    def __init__(self, uri: str, device: str, width: int = 0, height: int = 0,
                 fps: float = 0.0, fourcc: str = "") -> None:
        super().__init__(uri, device, cv2.CAP_V4L2, live=True)
        self.device, self.width, self.height = device, width, height
        self.req_fps, self.fourcc = fps, fourcc.upper()

    def describe(self) -> str:
        return f"camera {self.device}"

    def _why_not_open(self) -> str:
        if not os.path.exists(self.device):
            return f"cannot open camera {self.device}: no such device"
        return (f"cannot open camera {self.device}: OpenCV's V4L2 backend could not open it "
                "(in use by another program, no permission, or not a capture device)")

    def _configure(self, cap: cv2.VideoCapture) -> None:
        if self.fourcc:
            cap.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter_fourcc(*self.fourcc.ljust(4)[:4]))
            if self.fourcc in ("GREY", "Y8", "Y16", "Y10", "Y12"):
                cap.set(cv2.CAP_PROP_CONVERT_RGB, 0)  # deliver 8 / 16-bit grey as is
        if self.width:
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.width)
        if self.height:
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.height)
        if self.req_fps:
            cap.set(cv2.CAP_PROP_FPS, self.req_fps)


def opencv_has_gstreamer() -> bool:
    for line in cv2.getBuildInformation().splitlines():
        if line.strip().startswith("GStreamer:"):
            return "YES" in line.split(":", 1)[1]
    return False


def csi_pipeline(sensor_id: int = 0, width: int = 1280, height: int = 720, fps: int = 30,
                 flip: int = 0, fmt: str = "BGR") -> str:
    """GStreamer pipeline for a Jetson CSI camera (Argus) ending in an appsink for OpenCV.

    ``fmt`` "BGR" (converted on the CPU by videoconvert) or "GRAY8" (nvvidconv writes grey
    directly: cheaper on the CPU, what an infrared runtime needs). The appsink keeps one
    buffer and drops the rest, so OpenCV always reads a recent frame."""
    fmt = fmt.upper()
    if fmt not in ("BGR", "GRAY8"):
        raise ValueError(f"csi format must be BGR or GRAY8, got {fmt}")
    head = (f"nvarguscamerasrc sensor-id={int(sensor_id)} ! "
            f"video/x-raw(memory:NVMM), width=(int){int(width)}, height=(int){int(height)}, "
            f"framerate=(fraction){int(round(fps))}/1, format=(string)NV12 ! "
            f"nvvidconv flip-method={int(flip)} ! ")
    if fmt == "GRAY8":
        body = "video/x-raw, format=(string)GRAY8 ! "
    else:
        body = ("video/x-raw, format=(string)BGRx ! videoconvert ! "
                "video/x-raw, format=(string)BGR ! ")
    return head + body + "appsink drop=true max-buffers=1 sync=false"


class CSISource(OpenCVSource):
    """A Jetson MIPI CSI camera: nvarguscamerasrc pipeline through OpenCV's GStreamer backend."""

    scheme = "csi"
    OPTIONS = ("width", "height", "fps", "flip", "format")

    def __init__(self, uri: str, sensor_id: int = 0, width: int = 1280, height: int = 720,
                 fps: float = 30, flip: int = 0, fmt: str = "BGR") -> None:
        self.pipeline = csi_pipeline(sensor_id, width, height, int(round(fps)), flip, fmt)
        super().__init__(uri, self.pipeline, cv2.CAP_GSTREAMER, live=True)
        self.sensor_id = sensor_id
        self.fps = float(fps)

    def describe(self) -> str:
        return f"CSI camera {self.sensor_id}"

    def open(self) -> None:
        if not opencv_has_gstreamer():
            raise SourceError(
                f"{self.uri} needs OpenCV built with GStreamer, and this OpenCV "
                f"({cv2.__version__}) has none (the PyPI opencv-python wheels never do); on a "
                "Jetson use JetPack's OpenCV (apt install python3-opencv) in this environment")
        super().open()

    def _why_not_open(self) -> str:
        return (f"cannot open CSI camera {self.sensor_id}: the GStreamer pipeline did not start "
                "(camera not connected, nvargus-daemon not running, or the size/fps is not a "
                f"sensor mode): {self.pipeline}")


class NetworkSource(OpenCVSource):
    """An RTSP / RTMP / HTTP / UDP stream through OpenCV's FFmpeg backend."""

    scheme = "rtsp"

    def __init__(self, uri: str) -> None:
        params: List[int] = []
        for name, value in (("CAP_PROP_OPEN_TIMEOUT_MSEC", NETWORK_TIMEOUT_MS),
                            ("CAP_PROP_READ_TIMEOUT_MSEC", NETWORK_TIMEOUT_MS)):
            if hasattr(cv2, name):
                params += [getattr(cv2, name), value]
        super().__init__(uri, uri, cv2.CAP_FFMPEG, live=True, params=params)
        self.scheme = urlsplit(uri).scheme.lower()

    def describe(self) -> str:
        return f"stream {_redact(self.uri)}"

    def _why_not_open(self) -> str:
        return (f"cannot open stream {_redact(self.uri)} (no answer within "
                f"{NETWORK_TIMEOUT_MS / 1000:g} s, refused, or not a video stream)")


def _redact(url: str) -> str:
    """The URL without a password (rtsp://user:pass@host -> rtsp://user:***@host)."""
    return re.sub(r"(//[^/:@]+):[^/@]*@", r"\1:***@", url)


class VideoFileSource(OpenCVSource):
    """A video file, every frame in order."""

    scheme = "file"

    def __init__(self, uri: str, path: str) -> None:
        super().__init__(uri, path, cv2.CAP_ANY, live=False)
        self.path = path

    def describe(self) -> str:
        return f"video {self.path}"

    def open(self) -> None:
        if not os.path.isfile(self.path):
            raise SourceError(f"video file not found: {self.path}")
        super().open()
        n = int(self.cap.get(cv2.CAP_PROP_FRAME_COUNT)) if self.cap is not None else 0
        self.frame_count = n if n > 0 else None
        self._index = 0

    def _why_not_open(self) -> str:
        return f"cannot decode video file {self.path} (not a video, or a codec OpenCV lacks)"


# --------------------------------------------------------------------------------------------
# Image folders, globs, single images
# --------------------------------------------------------------------------------------------
def natural_key(path: str) -> Tuple:
    """Sort key: digits compare as numbers (img2 before img10)."""
    return tuple(int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", path))


class ImageFolderSource(VideoSource):
    """Images of a folder, a glob or one file, read as 8-bit grey with ``read_grey`` (the same
    read as ``oscar-edge evaluate``), in natural name order. A corrupt or empty image is
    reported as CorruptFrame (counted and skipped) and the next one follows."""

    scheme = "images"

    def __init__(self, uri: str, pattern: str, fps: float = 10.0) -> None:
        super().__init__(uri)
        self.pattern = pattern
        self.fps = fps
        self.paths: List[str] = []
        self._next = 0

    def describe(self) -> str:
        return f"images {self.pattern}"

    def open(self) -> None:
        p = self.pattern
        if os.path.isdir(p):
            files = [os.path.join(p, f) for f in os.listdir(p)]
        elif any(ch in p for ch in "*?["):
            files = globmod.glob(p)
        elif os.path.isfile(p):
            files = [p]
        else:
            raise SourceError(f"no such file or folder: {p}")
        self.paths = sorted((f for f in files if os.path.isfile(f)
                             and f.lower().endswith(IMAGE_EXTENSIONS)), key=natural_key)
        if not self.paths:
            raise SourceError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) in {p}")
        self.frame_count = len(self.paths)
        self._next = 0

    def read(self) -> Optional[SourceFrame]:
        if self._next >= len(self.paths):
            return None
        index, path = self._next, self.paths[self._next]
        self._next += 1
        try:
            image = read_grey(path)
        except ImageReadError as exc:
            raise CorruptFrame(str(exc)) from None
        return SourceFrame(image, index, name=os.path.basename(path), timestamp=index / self.fps)


# --------------------------------------------------------------------------------------------
# Synthetic scenes
# --------------------------------------------------------------------------------------------
class SyntheticSource(VideoSource):
    """``synthetic://``: a procedural IR scene (oscar_edge.io.synthetic) with ground truth."""

    scheme = "synthetic"
    OPTIONS = ("frames", "size", "targets", "seed", "fps", "noise", "drift", "depth",
               "channels", "pan", "shake", "live")

    def __init__(self, uri: str, frames: int = 300, size: Tuple[int, int] = (640, 512),
                 targets: int = 5, seed: int = 0, fps: float = 30.0, noise: float = 2.0,
                 drift: float = 0.25, depth: int = 8, channels: int = 1,
                 live: bool = False, pan: float = 0.0, shake: float = 0.0) -> None:
        from .synthetic import SyntheticScene

        super().__init__(uri)
        if frames < 0:
            raise SourceError(f"{uri}: frames must be >= 0 (0 = endless), got {frames}")
        if fps <= 0:
            raise SourceError(f"{uri}: fps must be > 0, got {fps}")
        try:
            self.scene = SyntheticScene(width=size[0], height=size[1], targets=targets,
                                        seed=seed, noise=noise, drift=drift, depth=depth,
                                        channels=channels, pan=pan, shake=shake)
        except ValueError as exc:
            raise SourceError(f"{uri}: {exc}") from None
        self.frames, self.fps, self.live = frames, float(fps), bool(live)
        self.frame_count = frames or None
        self._next = 0
        self._t0: Optional[float] = None

    def describe(self) -> str:
        s = self.scene
        n = self.frames or "endless"
        return (f"synthetic {s.width}x{s.height}, {len(s.targets)} targets, seed {s.seed}, "
                f"{n} frames @ {self.fps:g} fps{' (live)' if self.live else ''}")

    def open(self) -> None:
        self._t0 = None

    def read(self) -> Optional[SourceFrame]:
        if self.frames and self._next >= self.frames:
            return None
        t = self._next
        if self.live:  # behave like a camera: frame t exists at t / fps after the start
            now = time.monotonic()
            if self._t0 is None:
                self._t0 = now
            due = self._t0 + t / self.fps
            if due > now:
                time.sleep(due - now)
            else:  # late: a camera would have moved on; skip to the frame due now
                t = max(t, int((now - self._t0) * self.fps))
                if self.frames and t >= self.frames:
                    return None
        self._next = t + 1
        return SourceFrame(self.scene.frame(t), t, truth=self.scene.ground_truth(t),
                           truth_ids=self.scene.ground_truth_ids(t), timestamp=t / self.fps)


# --------------------------------------------------------------------------------------------
# URI parsing
# --------------------------------------------------------------------------------------------
def _options(uri: str, query: str, allowed: Sequence[str]) -> Dict[str, str]:
    opts: Dict[str, str] = {}
    for key, values in parse_qs(query, keep_blank_values=True).items():
        if key not in allowed:
            raise SourceError(f"{uri}: unknown option {key!r} (known: {', '.join(allowed)})")
        opts[key] = values[-1]
    return opts


def _num(uri: str, opts: Dict[str, str], key: str, kind, default):
    if key not in opts:
        return default
    try:
        return kind(opts[key])
    except ValueError:
        raise SourceError(f"{uri}: option {key}={opts[key]!r} is not a valid "
                          f"{kind.__name__}") from None


def parse_size(text: str) -> Tuple[int, int]:
    """'640x512' -> (640, 512) (width, height); ValueError (``oscar_edge.sizes``)."""
    return _parse_size(text, text_order="WxH", order="wh_out", name="size")


def camera_uri(camera: str) -> str:
    """``--camera`` value -> URI: ``0`` -> v4l2:///dev/video0, ``/dev/video1`` ->
    v4l2:///dev/video1, URIs (``csi://0``, ``rtsp://...``) unchanged."""
    camera = camera.strip()
    if camera.isdigit():
        return f"v4l2:///dev/video{camera}"
    if camera.startswith("/dev/"):
        return f"v4l2://{camera}"
    return camera


def open_source(uri: str) -> VideoSource:
    """A VideoSource for ``uri`` (not yet opened). Raises SourceError for a bad URI."""
    if not uri or not uri.strip():
        raise SourceError("empty source URI")
    uri = uri.strip()
    parts = urlsplit(uri)
    scheme = parts.scheme.lower()
    if scheme in ("", "file") or len(scheme) == 1:  # plain path (or a drive letter)
        path = uri if scheme != "file" else (parts.netloc + parts.path)
        if path.startswith("/dev/video"):
            return V4L2Source(uri, path)
        if os.path.isdir(path) or any(ch in path for ch in "*?[") \
                or path.lower().endswith(IMAGE_EXTENSIONS):
            return ImageFolderSource(uri, path)
        return VideoFileSource(uri, path)
    if scheme == "v4l2":
        device = (parts.netloc + parts.path) or "/dev/video0"
        if device.isdigit():
            device = f"/dev/video{device}"
        opts = _options(uri, parts.query, V4L2Source.OPTIONS)
        return V4L2Source(uri, device, _num(uri, opts, "width", int, 0),
                          _num(uri, opts, "height", int, 0), _num(uri, opts, "fps", float, 0.0),
                          opts.get("format", ""))
    if scheme == "csi":
        sensor = parts.netloc or "0"
        if not sensor.isdigit():
            raise SourceError(f"{uri}: the CSI sensor id must be a number (csi://0)")
        opts = _options(uri, parts.query, CSISource.OPTIONS)
        try:
            return CSISource(uri, int(sensor), _num(uri, opts, "width", int, 1280),
                             _num(uri, opts, "height", int, 720),
                             _num(uri, opts, "fps", float, 30.0), _num(uri, opts, "flip", int, 0),
                             opts.get("format", "BGR"))
        except ValueError as exc:
            raise SourceError(f"{uri}: {exc}") from None
    if scheme in NETWORK_SCHEMES:
        return NetworkSource(uri)
    if scheme == "synthetic":
        opts = _options(uri, parts.query, SyntheticSource.OPTIONS)
        try:
            size = parse_size(opts["size"]) if "size" in opts else (640, 512)
        except ValueError as exc:
            raise SourceError(f"{uri}: {exc}") from None
        return SyntheticSource(
            uri, frames=_num(uri, opts, "frames", int, 300), size=size,
            targets=_num(uri, opts, "targets", int, 5), seed=_num(uri, opts, "seed", int, 0),
            fps=_num(uri, opts, "fps", float, 30.0), noise=_num(uri, opts, "noise", float, 2.0),
            drift=_num(uri, opts, "drift", float, 0.25), depth=_num(uri, opts, "depth", int, 8),
            channels=_num(uri, opts, "channels", int, 1),
            live=bool(_num(uri, opts, "live", int, 0)), pan=_num(uri, opts, "pan", float, 0.0),
            shake=_num(uri, opts, "shake", float, 0.0))
    known = ["v4l2", "csi", "synthetic", "file"] + list(NETWORK_SCHEMES)
    raise SourceError(f"unknown source scheme {scheme!r} in {uri} (known: {', '.join(known)}, "
                      "or a path to a video, an image, a folder or a glob)")

