"""Drawing detections on a frame: boxes, scores, tracks and a status line (OpenCV only).

Infrared small targets are a few pixels wide, so a box smaller than ``min_box`` pixels is drawn
as a ``min_box`` square around the detection's centre (the reported box is unchanged), every
score gets a label on a dark backing so it reads on bright clutter, and the status lines go in
a strip above the frame instead of over it. Tracks (``--track``) are drawn over that picture:
confirmed tracks in cyan with their ID under the box and a trail of their last centres, those
coasting through missed frames in magenta; tentative and lost tracks are not drawn.
"""
from __future__ import annotations

from typing import Optional, Sequence

import cv2
import numpy as np

BOX_COLOUR = (0, 255, 0)        # BGR green
TRUTH_COLOUR = (0, 170, 255)    # BGR orange
TRACK_COLOUR = (255, 255, 0)   # BGR cyan: confirmed track, hit in this frame
COAST_COLOUR = (255, 0, 255)   # BGR magenta: confirmed track coasting (missed this frame)
TEXT_COLOUR = (255, 255, 255)
BAR_COLOUR = (0, 0, 0)
FONT = cv2.FONT_HERSHEY_SIMPLEX


def _font_scale(width: int) -> float:
    return float(np.clip(width / 1150.0, 0.42, 1.2))


def _label(img: np.ndarray, text: str, x: int, y: int, scale: float, colour) -> None:
    """Text with its top-left corner near (x, y), on a filled dark box, kept inside the image."""
    thick = 1 if scale < 0.8 else 2
    (tw, th), base = cv2.getTextSize(text, FONT, scale, thick)
    h, w = img.shape[:2]
    x = int(min(max(0, x), max(0, w - tw - 2)))
    y = int(min(max(0, y), max(0, h - th - base - 2)))
    cv2.rectangle(img, (x, y), (x + tw + 2, y + th + base + 2), BAR_COLOUR, -1)
    cv2.putText(img, text, (x + 1, y + th + 1), FONT, scale, colour, thick, cv2.LINE_AA)


def to_bgr(grey: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR) if grey.ndim == 2 else grey.copy()


def draw_detections(grey: np.ndarray, boxes: np.ndarray, scores: np.ndarray,
                    status: Sequence[str] = (), truth: Optional[np.ndarray] = None,
                    min_box: int = 14) -> np.ndarray:
    """A BGR picture of ``grey`` with detection boxes (xyxy, frame pixels), their scores and
    optional ground-truth circles, under a status strip of ``len(status)`` text lines added
    above the frame (so no pixel of the scene is hidden; the picture is taller than the frame
    by a height that depends only on the frame width and the number of lines)."""
    img = to_bgr(grey)
    h, w = img.shape[:2]
    scale = _font_scale(w)
    if truth is not None:
        for x1, y1, x2, y2 in np.asarray(truth, dtype=np.float32).reshape(-1, 4):
            c = (int(round((x1 + x2) / 2)), int(round((y1 + y2) / 2)))
            r = int(max(min_box, (x2 - x1), (y2 - y1)))
            cv2.circle(img, c, r, TRUTH_COLOUR, 1, cv2.LINE_AA)
    for (x1, y1, x2, y2), s in zip(np.asarray(boxes, dtype=np.float32).reshape(-1, 4),
                                   np.asarray(scores, dtype=np.float32).reshape(-1)):
        cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
        half_w, half_h = max((x2 - x1) / 2, min_box / 2), max((y2 - y1) / 2, min_box / 2)
        p1 = (int(round(cx - half_w)), int(round(cy - half_h)))
        p2 = (int(round(cx + half_w)), int(round(cy + half_h)))
        cv2.rectangle(img, p1, p2, BOX_COLOUR, 1 if scale < 0.8 else 2, cv2.LINE_AA)
        _label(img, f"{float(s):.2f}", p2[0] + 2, p1[1] - 2, scale * 0.8, BOX_COLOUR)
    if isinstance(status, str):
        status = [status]
    if not status:
        return img
    thick = 1 if scale < 0.8 else 2
    (_, th), base = cv2.getTextSize("Ag", FONT, scale, thick)
    step = th + base + 5
    bar = np.full((step * len(status) + 4, w, 3), BAR_COLOUR, np.uint8)
    for i, line in enumerate(status):
        cv2.putText(bar, line, (6, 3 + th + i * step), FONT, scale, TEXT_COLOUR, thick,
                    cv2.LINE_AA)
    return np.vstack([bar, img])


def status_line(parts: Sequence[str]) -> str:
    return " | ".join(p for p in parts if p)


def draw_tracks(img: np.ndarray, tracks: Sequence, top: int = 0, min_box: int = 14) -> None:
    """Draw confirmed tracks (``oscar_edge.track.TrackReport``) on ``img`` in place: a box of
    at least ``min_box`` px, ``#ID`` under it and the trail; ``top`` px of status strip above
    the frame (the y offset of frame row 0 in ``img``)."""
    scale = _font_scale(img.shape[1]) * 0.8
    for r in tracks:
        if r.state != "confirmed":
            continue
        colour = TRACK_COLOUR if r.since_hit_s <= 0 else COAST_COLOUR
        trail = np.asarray(r.trail, np.float64).reshape(-1, 2)
        if len(trail) >= 2:
            pts = np.round(trail + (0.0, top)).astype(np.int32).reshape(-1, 1, 2)
            cv2.polylines(img, [pts], False, colour, 1, cv2.LINE_AA)
        cx, cy = r.centre
        x1, y1, x2, y2 = r.box
        half_w, half_h = max((x2 - x1) / 2, min_box / 2), max((y2 - y1) / 2, min_box / 2)
        p1 = (int(round(cx - half_w)), int(round(cy - half_h)) + top)
        p2 = (int(round(cx + half_w)), int(round(cy + half_h)) + top)
        cv2.rectangle(img, p1, p2, colour, 1, cv2.LINE_AA)
        _label(img, f"#{r.id}", p1[0], p2[1] + 2, scale, colour)
