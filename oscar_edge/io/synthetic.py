"""Procedural infrared scenes: small moving hot spots over drifting cloud clutter, with truth.

    scene = SyntheticScene(width=640, height=512, targets=5, seed=0)
    frame = scene.frame(12)            # (512, 640) uint8 (or uint16 / BGR, see depth/channels)
    truth = scene.ground_truth(12)     # (n, 4) float32 xyxy boxes in frame pixels
    ids = scene.ground_truth_ids(12)   # (n,) int64 target ids of those boxes (stable over time)

Everything is a pure function of (parameters, seed, frame index): ``frame(t)`` can be asked in
any order and gives the same pixels every time. numpy + OpenCV only.

The picture:
* Clutter: two periodic fractal textures (power-law spectrum, 1/f**beta: smooth at large
  scales, detailed at small ones, i.e. noise smoothed at many scales at once) made once from
  the seed. Each drifts slowly in its own direction (two cloud layers), sampled with
  sub-pixel bilinear shifts and wrap-around, so a stream can run forever.
* Targets: Gaussian hot spots (sigma 1.5-3.0 px, so about 6-12 px across, the size range of
  SIRST-V2 targets, median 7x6 px) with contrasts from
  faint (6x the noise, 12 grey levels at least) to saturating (170), moving in straight lines at
  0.3-1.5 px per frame and bouncing off a margin at the frame border.
* Sensor noise: white Gaussian noise, a fresh draw per frame (seeded by (seed, t)).
* Camera motion (off by default): ``pan`` px/frame, the peak speed of a slow sweep (a sine of
  4 s period across, 6.8 s up and down, half as far), and ``shake`` px, a fresh Gaussian
  jitter of the whole picture per frame (seeded by (seed, t)). The whole scene moves (clutter
  and targets); a target is in the ground truth of a frame only while its centre is inside it.

Ground truth box of a target: centre +- max(1.5, 2 sigma) pixels (the spot's visible extent),
pixel (i, j) covering [j, j+1) x [i, i+1).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import List, Tuple

import cv2
import numpy as np

BACKGROUND = 85.0       # grey level of the mean sky
CLUTTER_GAIN = 38.0     # grey levels per unit of clutter
BORDER_MARGIN = 12.0    # targets bounce this many pixels inside the frame
# Spot sigma range (pixels). Measured with the shipped model at 640x512 (ONNX Runtime, score >=
# 0.1, 64 targets over 4 seeds): sigma 0.7-2.0 -> 16 found, 1.5-3.0 -> 39 found; sub-2-px
# spots are smaller than what SIRST-V2 trains it on.
SIGMA_RANGE = (1.5, 3.0)


def fractal_texture(height: int, width: int, beta: float, rng: np.random.Generator) -> np.ndarray:
    """A periodic (tileable) float32 texture, zero mean and unit std, with a 1/f**beta power
    spectrum: white noise shaped in the Fourier domain."""
    noise = rng.standard_normal((height, width)).astype(np.float64)
    spec = np.fft.rfft2(noise)
    fy = np.fft.fftfreq(height)[:, None]
    fx = np.fft.rfftfreq(width)[None, :]
    f = np.sqrt(fx * fx + fy * fy)
    f[0, 0] = 1.0
    spec *= f ** (-beta / 2.0)
    spec[0, 0] = 0.0
    tex = np.fft.irfft2(spec, s=(height, width))
    tex -= tex.mean()
    tex /= tex.std() + 1e-12
    return tex.astype(np.float32)


@dataclass(frozen=True)
class Target:
    x0: float        # position at t = 0 (pixels)
    y0: float
    vx: float        # pixels per frame
    vy: float
    sigma: float     # Gaussian spot sigma (pixels)
    contrast: float  # peak grey levels above the local background (8-bit scale)


def _bounce(p0: float, v: float, t: int, lo: float, hi: float) -> float:
    """Position of a point moving at v from p0 that reflects off lo and hi (triangle wave)."""
    span = hi - lo
    if span <= 0:
        return lo
    u = (p0 - lo + v * t) % (2 * span)
    return lo + (u if u <= span else 2 * span - u)


class SyntheticScene:
    """Deterministic synthetic infrared sequence (see the module docstring)."""

    def __init__(self, width: int = 640, height: int = 512, targets: int = 5, seed: int = 0,
                 noise: float = 2.0, drift: float = 0.25, depth: int = 8,
                 channels: int = 1, pan: float = 0.0, shake: float = 0.0) -> None:
        if width < 32 or height < 32:
            raise ValueError(f"synthetic frame size must be at least 32x32, got {width}x{height}")
        if targets < 0:
            raise ValueError(f"targets must be >= 0, got {targets}")
        if depth not in (8, 16):
            raise ValueError(f"depth must be 8 or 16, got {depth}")
        if channels not in (1, 3):
            raise ValueError(f"channels must be 1 (grey) or 3 (BGR), got {channels}")
        if noise < 0:
            raise ValueError(f"noise must be >= 0, got {noise}")
        if not (pan >= 0 and shake >= 0):
            raise ValueError(f"pan and shake must be >= 0, got {pan} and {shake}")
        self.pan, self.shake = float(pan), float(shake)
        self.width, self.height = int(width), int(height)
        self.seed, self.noise, self.drift = int(seed), float(noise), float(drift)
        self.depth, self.channels = depth, channels
        rng = np.random.default_rng([self.seed, 0x5CE7E])
        # Two cloud layers: broad and soft (beta 3.2), finer and weaker (beta 2.4).
        self._layers: List[Tuple[np.ndarray, float, float, float]] = []
        for beta, gain in ((3.2, 1.0), (2.4, 0.45)):
            tex = fractal_texture(self.height, self.width, beta, rng)
            angle = rng.uniform(0, 2 * math.pi)
            speed = self.drift * rng.uniform(0.6, 1.4)
            self._layers.append((tex, gain, speed * math.cos(angle), speed * math.sin(angle)))
        self.targets: List[Target] = []
        for _ in range(int(targets)):
            angle = rng.uniform(0, 2 * math.pi)
            speed = rng.uniform(0.3, 1.5)
            self.targets.append(Target(
                x0=float(rng.uniform(BORDER_MARGIN, self.width - BORDER_MARGIN)),
                y0=float(rng.uniform(BORDER_MARGIN, self.height - BORDER_MARGIN)),
                vx=speed * math.cos(angle), vy=speed * math.sin(angle),
                sigma=float(rng.uniform(SIGMA_RANGE[0], SIGMA_RANGE[1])),
                contrast=float(rng.uniform(max(12.0, 6.0 * self.noise), 170.0)),
            ))

    # -- truth -------------------------------------------------------------------------------
    def camera_offset(self, t: int) -> Tuple[float, float]:
        """(dx, dy) px: how far the picture of frame t is moved by the camera (0, 0 without
        ``pan`` and ``shake``)."""
        dx = dy = 0.0
        if self.pan > 0:
            period = 120.0  # frames: 4 s at 30 FPS
            amp = self.pan * period / (2 * math.pi)  # peak speed ``pan`` px/frame
            dx = amp * math.sin(2 * math.pi * t / period)
            dy = 0.5 * amp * math.sin(2 * math.pi * t / (1.7 * period))
        if self.shake > 0:
            jx, jy = np.random.default_rng([self.seed, 2, int(t)]).standard_normal(2)
            dx, dy = dx + self.shake * float(jx), dy + self.shake * float(jy)
        return dx, dy

    def centres(self, t: int) -> np.ndarray:
        """(targets, 2) float32 centres (x, y) of all targets at frame t in frame pixels
        (with camera motion some may lie outside the frame)."""
        lo_x, hi_x = BORDER_MARGIN, self.width - BORDER_MARGIN
        lo_y, hi_y = BORDER_MARGIN, self.height - BORDER_MARGIN
        dx, dy = self.camera_offset(t)
        return np.array([[_bounce(g.x0, g.vx, t, lo_x, hi_x) + dx,
                          _bounce(g.y0, g.vy, t, lo_y, hi_y) + dy]
                         for g in self.targets], dtype=np.float32).reshape(-1, 2)

    def ground_truth_ids(self, t: int) -> np.ndarray:
        """(n,) int64 ids (index in ``targets``) of the targets in frame t, in the order of
        :meth:`ground_truth`: all of them unless camera motion moves some out of the frame."""
        c = self.centres(t)
        inside = (c[:, 0] >= 0) & (c[:, 0] < self.width) & (c[:, 1] >= 0) & (c[:, 1] < self.height)
        return np.flatnonzero(inside).astype(np.int64)

    def ground_truth(self, t: int) -> np.ndarray:
        """(n, 4) float32 xyxy boxes of the targets in frame t (see
        :meth:`ground_truth_ids`), in frame pixels."""
        ids = self.ground_truth_ids(t)
        c = self.centres(t)[ids]
        half = np.array([max(1.5, 2.0 * self.targets[i].sigma) for i in ids], np.float32)
        return np.stack([c[:, 0] - half, c[:, 1] - half, c[:, 0] + half, c[:, 1] + half],
                        axis=1).astype(np.float32).reshape(-1, 4)

    # -- pixels ------------------------------------------------------------------------------
    def clutter(self, t: int) -> np.ndarray:
        """(H, W) float32 background grey levels (8-bit scale) at frame t, without noise."""
        acc = np.zeros((self.height, self.width), np.float32)
        dx, dy = self.camera_offset(t)
        for tex, gain, vx, vy in self._layers:
            m = np.float32([[1, 0, -vx * t + dx], [0, 1, -vy * t + dy]])
            shifted = cv2.warpAffine(tex, m, (self.width, self.height), flags=cv2.INTER_LINEAR,
                                     borderMode=cv2.BORDER_WRAP)
            acc += np.float32(gain) * shifted
        # Bright, sparse clouds: soft-plus shape of the summed layers.
        acc = np.log1p(np.exp(np.clip(1.6 * acc, -20, 20))) / np.float32(1.6)
        return np.float32(BACKGROUND) + np.float32(CLUTTER_GAIN) * acc.astype(np.float32) \
            - np.float32(20.0)

    def frame_float(self, t: int) -> np.ndarray:
        """(H, W) float32 frame at t on the 8-bit grey scale (before rounding)."""
        img = self.clutter(t)
        for g, (cx, cy) in zip(self.targets, self.centres(t)):
            r = int(math.ceil(3.0 * g.sigma)) + 1
            j0, j1 = max(0, int(cx) - r), min(self.width, int(cx) + r + 1)
            i0, i1 = max(0, int(cy) - r), min(self.height, int(cy) + r + 1)
            if j0 >= j1 or i0 >= i1:
                continue
            xs = np.arange(j0, j1, dtype=np.float32) + np.float32(0.5) - np.float32(cx)
            ys = np.arange(i0, i1, dtype=np.float32) + np.float32(0.5) - np.float32(cy)
            k = np.float32(-0.5 / (g.sigma * g.sigma))
            spot = np.exp(k * ys[:, None] ** 2) * np.exp(k * xs[None, :] ** 2)
            img[i0:i1, j0:j1] += np.float32(g.contrast) * spot
        if self.noise > 0:
            rng = np.random.default_rng([self.seed, 1, int(t)])
            img += rng.standard_normal(img.shape, dtype=np.float32) * np.float32(self.noise)
        return img

    def frame(self, t: int) -> np.ndarray:
        """Frame t as the sensor would deliver it: (H, W) uint8 by default, uint16 for
        depth 16 (8-bit scale x 257), (H, W, 3) BGR for channels 3."""
        img = self.frame_float(t)
        if self.depth == 16:
            out = np.clip(img * np.float32(257.0) + np.float32(0.5), 0, 65535).astype(np.uint16)
        else:
            out = np.clip(img + np.float32(0.5), 0, 255).astype(np.uint8)
        if self.channels == 3:
            out = cv2.cvtColor(out, cv2.COLOR_GRAY2BGR)
        return out
