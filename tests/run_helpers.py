"""Helpers for the runtime tests (tests/test_run_*.py): test sources, a timed fake detector,
running ``python -m oscar_edge.run`` in a subprocess."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import List, Optional

import numpy as np
import pytest

from oscar_edge.backends.factory import SHIPPED_ONNX
from oscar_edge.io.sources import (CorruptFrame, SourceDisconnected, SourceError, SourceFrame,
                                   VideoSource)
from oscar_edge.pipeline import Detections
from oscar_edge.preprocess import prepare

REPO = Path(__file__).resolve().parents[1]

needs_onnx = pytest.mark.skipif(
    not SHIPPED_ONNX.is_file(),
    reason=f"shipped ONNX model missing: run `python export/export_onnx.py --out "
           f"{SHIPPED_ONNX.relative_to(REPO)}`")


def run_tool(*args, env: Optional[dict] = None, timeout: float = 120,
             tool: str = "oscar_edge.run") -> subprocess.CompletedProcess:
    full_env = dict(os.environ)
    full_env["PYTHONPATH"] = str(REPO) + os.pathsep + full_env.get("PYTHONPATH", "")
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", tool, *map(str, args)], capture_output=True,
                          text=True, cwd=str(REPO), env=full_env, timeout=timeout)


def read_jsonl(path) -> List[dict]:
    """The frame lines (every line must be one complete JSON object; a header line, when the
    file starts with one, is left out: see read_jsonl_header)."""
    lines = [json.loads(line) for line in Path(path).read_text().splitlines()]
    if lines and set(lines[0]) == {"header"}:
        lines = lines[1:]
    assert all("header" not in line for line in lines), "a header line after the first"
    return lines


def read_jsonl_header(path) -> dict:
    """The header line the runtime writes first."""
    first = json.loads(Path(path).read_text().splitlines()[0])
    assert set(first) == {"header"}, f"no header line in {path}: {first}"
    return first["header"]


def count_video_frames(path) -> int:
    import cv2

    cap = cv2.VideoCapture(str(path))
    assert cap.isOpened(), f"{path} is not readable"
    n = 0
    while True:
        ok, _ = cap.read()
        if not ok:
            break
        n += 1
    cap.release()
    return n


def one_line_error(proc: subprocess.CompletedProcess, *words: str) -> None:
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    err = proc.stderr.strip()
    assert err.count("\n") == 0, err
    assert "Traceback" not in err and err.startswith("oscar-edge run: error:"), err
    for w in words:
        assert w in err, err


def frame(i: int, size=(48, 64)) -> np.ndarray:
    img = np.full(size, 40, np.uint8)
    img[(3 * i) % size[0], (5 * i) % size[1]] = 255
    return img


class ScriptedSource(VideoSource):
    """A finite (or live) source playing a script: arrays are frames, ``"corrupt"`` raises
    CorruptFrame, ``"drop"`` raises SourceDisconnected (live)."""

    scheme = "test"

    def __init__(self, script, live: bool = False, fps: float = 30.0, delay: float = 0.0):
        super().__init__("test://scripted")
        self.script, self.live, self.fps, self.delay = list(script), live, fps, delay
        self.pos = 0
        self.index = 0
        self.opened = 0
        self.closed = 0

    def open(self):
        self.opened += 1

    def close(self):
        self.closed += 1

    def read(self):
        if self.delay:
            time.sleep(self.delay)
        if self.pos >= len(self.script):
            return None
        item = self.script[self.pos]
        self.pos += 1
        if isinstance(item, str) and item == "drop":
            raise SourceDisconnected("test drop-out")
        i = self.index
        self.index += 1
        if isinstance(item, str) and item == "corrupt":
            raise CorruptFrame(f"test frame {i} corrupt")
        return SourceFrame(item, i)


class FlakyLiveSource(VideoSource):
    """A live camera that delivers ``good`` frames, then fails every read (unplugged) and every
    reopen for ``failed_opens`` attempts, then works again; ends after ``total`` frames."""

    scheme = "test"
    live = True

    def __init__(self, good: int = 5, failed_opens: int = 2, total: int = 15,
                 period: float = 0.005):
        super().__init__("test://flaky")
        self.good, self.failed_opens, self.total, self.period = good, failed_opens, total, period
        self.state = "ok"
        self.delivered = 0
        self.open_calls = 0
        self.failed = 0

    def open(self):
        self.open_calls += 1
        if self.state == "lost":
            if self.failed < self.failed_opens:
                self.failed += 1
                raise SourceError("test camera still unplugged")
            self.state = "back"

    def read(self):
        time.sleep(self.period)
        if self.state == "lost":
            raise SourceDisconnected("test read failed")
        if self.delivered >= self.total:
            return None
        if self.state == "ok" and self.delivered == self.good:
            self.state = "lost"
            raise SourceDisconnected("test camera unplugged")
        i = self.delivered
        self.delivered += 1
        return SourceFrame(frame(i), i)


class SleepyDetector:
    """Duck-typed Detector whose three steps sleep (no CPU), to time the pipeline itself."""

    postprocess_backend = "fake"
    input_size = None
    fit = (1000, 600)

    def __init__(self, pre: float = 0.0, infer: float = 0.0, post: float = 0.0):
        self.t = (pre, infer, post)
        self.preprocessed = 0

    def preprocess(self, grey):
        self.preprocessed += 1
        time.sleep(self.t[0])
        return prepare(grey, input_size=(32, 32))

    def run(self, x, box=None):
        time.sleep(self.t[1])
        return (np.zeros(1, np.int32),)

    def postprocess(self, outputs, box, x=None):
        time.sleep(self.t[2])
        return Detections(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), box)


class SleepyOutput:
    """An output that takes ``delay`` seconds per frame (a slow display or encoder)."""

    needs_canvas = False
    stop_requested = False

    def __init__(self, delay: float):
        self.delay = delay
        self.frames = 0

    def write(self, record, canvas, line):
        time.sleep(self.delay)
        self.frames += 1

    def close(self):
        pass


def write_labelled_video(data: Path, name: str, cls: str, seed: int, frames: int = 20) -> None:
    """A synthetic 320x256 clip with one target, labelled as the IR videos are (frame 7
    unlabelled)."""
    import cv2

    from oscar_edge.io.synthetic import SyntheticScene

    (data / "videos").mkdir(parents=True, exist_ok=True)
    (data / "labels").mkdir(exist_ok=True)
    scene = SyntheticScene(320, 256, targets=1, seed=seed)
    writer = cv2.VideoWriter(str(data / "videos" / f"{name}.mp4"),
                             cv2.VideoWriter_fourcc(*"mp4v"), 30, (320, 256))
    boxes = []
    for t in range(frames):
        writer.write(cv2.cvtColor(scene.frame(t), cv2.COLOR_GRAY2BGR))
        x1, y1, x2, y2 = (float(v) for v in scene.ground_truth(t)[0])
        boxes.append([x1 + 0.5, y1 + 0.5, x2 - x1, y2 - y1] if t != 7 else None)
    writer.release()
    (data / "labels" / f"{name}.json").write_text(json.dumps({"class": cls, "boxes": boxes}))
