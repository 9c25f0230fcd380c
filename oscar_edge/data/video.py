"""Labelled infrared video: folders in the layout of ``../shared/data/ir-video`` (numpy and
OpenCV only).

Layout (README "Training and the shipped model", fine-tuning on video)::

    <root>/videos/<NAME>.mp4     any format OpenCV decodes; grey or grey-in-3-channels
    <root>/labels/<NAME>.json    {"class": ..., "boxes": [[x, y, w, h] | null, ...]}

``boxes`` holds one entry per frame, in frame order, in MATLAB's convention (1-based; the
top-left pixel spans 0.5..1.5) and ``null`` where nothing is labelled; a labelled frame holds
exactly one target. :func:`read_video_labels` converts them to the project's box convention:
xyxy in pixel-index coordinates (pixel j's centre at j, as the SIRST-V2 boxes after
``annotations.parse_voc``), i.e. ``(x - 1, y - 1, x - 1 + w, y - 1 + h)``.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterable, List, Mapping, Sequence, Tuple

import numpy as np

from .annotations import AnnotationError

PathLike = os.PathLike | str
HALF_NAMES: Tuple[str, str] = ("A", "B")


@dataclass
class VideoLabels:
    """One video's labels: name, class, and (F, 4) float64 ``xywh`` as written in the file
    (MATLAB ``[x, y, w, h]``, 1-based; NaN rows: unlabelled)."""

    name: str
    cls: str
    xywh: np.ndarray = field(repr=False)

    @property
    def boxes(self) -> np.ndarray:
        """(F, 4) float64 xyxy in pixel-index coordinates, ``(x - 1, y - 1, x - 1 + w,
        y - 1 + h)`` (NaN rows: unlabelled)."""
        x, y, w, h = self.xywh.T
        return np.stack([x - 1.0, y - 1.0, x - 1.0 + w, y - 1.0 + h], axis=1)

    @property
    def labelled(self) -> np.ndarray:
        """Indices of the frames that carry a label."""
        return np.flatnonzero(np.isfinite(self.xywh[:, 0]))


def read_video_labels(path: PathLike) -> VideoLabels:
    """Parse ``labels/<NAME>.json``. AnnotationError (naming the file) when it is malformed."""
    path = Path(path)
    try:
        d = json.loads(path.read_text())
        entries = d["boxes"]
        cls = str(d.get("class", "target"))
    except FileNotFoundError:
        raise
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise AnnotationError(f"{path}: not a video label file ({type(exc).__name__}: {exc})"
                              ) from None
    if not isinstance(entries, list):
        raise AnnotationError(f"{path}: 'boxes' must be a list, one entry per frame")
    xywh = np.full((len(entries), 4), np.nan)
    for i, b in enumerate(entries):
        if b is None:
            continue
        try:
            x, y, w, h = (float(v) for v in b)
        except (TypeError, ValueError):
            raise AnnotationError(f"{path}: frame {i}: box must be [x, y, w, h] or null, "
                                  f"got {b!r}") from None
        if not (np.isfinite([x, y, w, h]).all() and w >= 0 and h >= 0):
            raise AnnotationError(f"{path}: frame {i}: bad box {b!r}")
        xywh[i] = (x, y, w, h)
    return VideoLabels(path.stem, cls, xywh)


def video_names(root: PathLike) -> List[str]:
    """Names (file stems) of the labelled videos under ``root``, sorted."""
    labels = Path(root) / "labels"
    if not labels.is_dir():
        raise FileNotFoundError(f"no labels folder: {labels}")
    return sorted(p.stem for p in labels.glob("*.json"))


def halves(classes: Mapping[str, str]) -> Dict[str, str]:
    """Video name -> "A" / "B", alternately within each class (names sorted), so that each
    half holds about half of every class: train on one, judge on the other."""
    out: Dict[str, str] = {}
    for cls in sorted(set(classes.values())):
        for i, n in enumerate(sorted(n for n, c in classes.items() if c == cls)):
            out[n] = HALF_NAMES[i % 2]
    return out


def select_videos(root: PathLike, spec: str) -> List[str]:
    """Video names from a ``--videos`` value: ``all``, ``half:A`` / ``half:B`` (see
    :func:`halves`) or comma-separated names. FileNotFoundError for an unknown name."""
    names = video_names(root)
    spec = spec.strip()
    if spec in ("", "all"):
        return names
    if spec.startswith("half:"):
        want = spec[5:].strip().upper()
        if want not in HALF_NAMES:
            raise ValueError(f"--videos {spec!r}: the halves are half:A and half:B")
        classes = {n: read_video_labels(Path(root) / "labels" / f"{n}.json").cls for n in names}
        return [n for n, h in halves(classes).items() if h == want]
    wanted = [v.strip() for v in spec.split(",") if v.strip()]
    missing = [n for n in wanted if n not in names]
    if missing:
        raise FileNotFoundError(f"no label file for video(s) {', '.join(missing)} under "
                                f"{Path(root) / 'labels'}")
    return wanted


def read_frames(path: PathLike, indices: Iterable[int]) -> Dict[int, np.ndarray]:
    """Decode ``path`` once and keep the wanted frames as (H, W) uint8 grey.

    Raises FileNotFoundError / ValueError (naming the file) when it is missing, cannot be
    decoded, or ends before a wanted frame."""
    import cv2

    from ..preprocess import to_grey_u8

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"video not found: {path}")
    want = sorted(set(int(i) for i in indices))
    out: Dict[int, np.ndarray] = {}
    if not want:
        return out
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise ValueError(f"cannot decode video {path}")
    try:
        i = 0
        for target in want:
            while i <= target:
                ok, img = cap.read()
                if not ok:
                    raise ValueError(f"{path}: ends at frame {i}, frame {target} is labelled")
                if i == target:
                    out[i] = to_grey_u8(img)
                i += 1
    finally:
        cap.release()
    return out


def training_frames(root: PathLike, names: Sequence[str], every: int
                    ) -> List[Tuple[str, np.ndarray, np.ndarray]]:
    """Every ``every``-th labelled frame of each video: (``name#index``, grey (H, W) uint8,
    (1, 4) float32 xyxy box). Unlabelled frames are not used (the target may be there)."""
    if every < 1:
        raise ValueError(f"every must be >= 1, got {every}")
    root = Path(root)
    out = []
    for n in names:
        lab = read_video_labels(root / "labels" / f"{n}.json")
        idx = lab.labelled[::every]
        frames = read_frames(root / "videos" / f"{n}.mp4", idx)
        boxes = lab.boxes.astype(np.float32)
        out.extend((f"{n}#{i}", frames[int(i)], boxes[i:i + 1]) for i in idx)
    return out
