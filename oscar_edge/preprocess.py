"""Image reading and preprocessing: the one place for resize, normalisation and padding.

Every backend (PyTorch, ONNX Runtime, TensorRT), the dataset, calibration and the runtime
call these functions, so a frame is prepared the same way everywhere. numpy + OpenCV only.

Conventions (spec section 5, with one named deviation):
* Images are read as 8-bit grey (OpenCV's grey conversion for RGB / RGBA / palette PNGs,
  16-bit frames scaled to 8 bits). The released recipe feeds colour PNGs as colour; infrared
  sensors are grey, so this project reduces every image to grey and replicates it to three
  channels (deviation, named here).
* Keep-ratio resize to fit (1000, 600): scale = min(1000 / long side, 600 / short side),
  as MMDetection's ``Resize(keep_ratio=True)``.
* Normalise with mean 111.89 and std 27.62 on all three channels.
* Pad bottom/right with zeros (after normalisation) to a multiple of 32.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Optional, Tuple

import cv2
import numpy as np

MEAN: float = 111.89
STD: float = 27.62
FIT_SIZE: Tuple[int, int] = (1000, 600)  # (long side limit, short side limit)
# The runtime (not evaluation) letterboxes small frames, both sides within SMALL_FRAME_MAX
# (width, height), into the fixed SMALL_FRAME_INPUT (height, width) instead of the keep-ratio fit
# when no input size is given. Measured on the 71 real 320x256 IR videos with the shipped model
# (docs/tracking.md, "Real IR video with the shipped model"): at equal false alarms per frame
# 640x512 and the fit's 768x608 find the same share of targets (Pd 0.813 vs 0.821 at 0.05, 0.900
# vs 0.877 at 0.1; every difference within its bootstrap interval) and 640x512 costs 25 % less
# time; the native 320x256 finds 5-10 points fewer at 3.5x less time.
SMALL_FRAME_MAX: Tuple[int, int] = (320, 256)
SMALL_FRAME_INPUT: Tuple[int, int] = (512, 640)
SIZE_DIVISOR: int = 32
IN_CHANNELS: int = 3


class ImageReadError(ValueError):
    """An image file is missing, empty or corrupt."""


def to_grey_u8(image: np.ndarray) -> np.ndarray:
    """Reduce a decoded frame to 8-bit grey, (H, W) uint8.

    Accepts (H, W), (H, W, 1), (H, W, 3) BGR and (H, W, 4) BGRA arrays of uint8 or uint16.
    16-bit frames are scaled by 1/257 (full range to full range).
    """
    if image is None or image.size == 0:
        raise ValueError("empty frame")
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.dtype == np.uint16:
        image = (image.astype(np.float32) / 257.0 + 0.5).astype(np.uint8)
    elif image.dtype != np.uint8:
        raise ValueError(f"unsupported frame dtype {image.dtype}")
    if image.ndim == 2:
        return image
    if image.ndim == 3 and image.shape[2] == 3:
        return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    if image.ndim == 3 and image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2GRAY)
    raise ValueError(f"unsupported frame shape {image.shape}")


def read_grey(path: str) -> np.ndarray:
    """Read an image file as 8-bit grey (H, W) uint8; raise ImageReadError naming the file.

    Uses OpenCV's grey read (``IMREAD_GRAYSCALE``), which is also what the NoCo metric uses,
    so the network input and the metric see the same pixels.
    """
    if not os.path.isfile(path):
        raise ImageReadError(f"image not found: {path}")
    data = np.fromfile(path, dtype=np.uint8)
    if data.size == 0:
        raise ImageReadError(f"empty image file: {path}")
    image = cv2.imdecode(data, cv2.IMREAD_GRAYSCALE)
    if image is None or image.size == 0:
        raise ImageReadError(f"corrupt or unsupported image file: {path}")
    return image


def fit_scale(height: int, width: int, fit: Tuple[int, int] = FIT_SIZE) -> float:
    """Keep-ratio scale that fits (height, width) into ``fit`` = (long, short) limits."""
    long_side, short_side = max(height, width), min(height, width)
    return min(max(fit) / long_side, min(fit) / short_side)


def resized_shape(height: int, width: int, scale: float) -> Tuple[int, int]:
    """(height, width) after scaling, rounded as MMCV's ``rescale_size`` does."""
    return int(height * scale + 0.5), int(width * scale + 0.5)


def padded_shape(height: int, width: int, divisor: int = SIZE_DIVISOR) -> Tuple[int, int]:
    """Smallest (height, width) >= the given one that are multiples of ``divisor``."""
    return (-(-height // divisor) * divisor, -(-width // divisor) * divisor)


@dataclass(frozen=True)
class Letterbox:
    """How a frame was mapped into the network input.

    ``scale_x``/``scale_y`` map original pixels to network pixels (x_net = x * scale_x);
    ``resized`` is the (height, width) of the image content inside the padded input.
    """

    original: Tuple[int, int]
    resized: Tuple[int, int]
    padded: Tuple[int, int]
    scale_x: float
    scale_y: float

    def tensor(self) -> np.ndarray:
        """(4,) float32 (content height, content width, scale_y, scale_x): this frame's row of
        the ``letterbox`` input of an end-to-end graph / engine with the OscarPeakRefine plugin
        (the peak refinement needs the content size and the scale, see
        ``oscar_edge.postprocess.peak_refine``)."""
        return np.array([self.resized[0], self.resized[1], self.scale_y, self.scale_x],
                        dtype=np.float32)

    def to_original(self, boxes: np.ndarray) -> np.ndarray:
        """Map (N, 4) xyxy boxes from network pixels back to original pixels."""
        out = np.asarray(boxes, dtype=np.float32).copy()
        out[:, 0::2] /= self.scale_x
        out[:, 1::2] /= self.scale_y
        return out


def normalize(grey: np.ndarray) -> np.ndarray:
    """(H, W) uint8 grey -> (3, H, W) float32, normalised and replicated to 3 channels."""
    x = (grey.astype(np.float32) - MEAN) / STD
    return np.broadcast_to(x, (IN_CHANNELS,) + x.shape).copy()


def prepare(
    grey: np.ndarray,
    fit: Optional[Tuple[int, int]] = FIT_SIZE,
    input_size: Optional[Tuple[int, int]] = None,
) -> Tuple[np.ndarray, Letterbox]:
    """Turn one grey frame into a network input.

    Args:
        grey: (H, W) uint8.
        fit: keep-ratio fit limits (long, short); used when ``input_size`` is None.
        input_size: fixed (height, width) network input, multiples of 32 (engines with a
            static shape): the frame is keep-ratio resized to fit inside it and padded.

    Returns:
        (3, Hp, Wp) float32 input and the Letterbox that maps boxes back.
    """
    box = letterbox_for(grey.shape[0], grey.shape[1], fit, input_size)
    (h, w), (rh, rw), (ph, pw) = box.original, box.resized, box.padded
    if (rh, rw) != (h, w):
        grey = cv2.resize(grey, (rw, rh), interpolation=cv2.INTER_LINEAR)
    x = np.zeros((IN_CHANNELS, ph, pw), dtype=np.float32)
    x[:, :rh, :rw] = normalize(grey)
    return x, box


def letterbox_for(height: int, width: int, fit: Optional[Tuple[int, int]] = FIT_SIZE,
                  input_size: Optional[Tuple[int, int]] = None) -> Letterbox:
    """The Letterbox ``prepare`` uses for a (height, width) frame (geometry only)."""
    h, w = int(height), int(width)
    if input_size is None:
        scale = fit_scale(h, w, fit or FIT_SIZE)
        rh, rw = resized_shape(h, w, scale)
        ph, pw = padded_shape(rh, rw)
    else:
        ph, pw = input_size
        if ph % SIZE_DIVISOR or pw % SIZE_DIVISOR:
            raise ValueError(f"input size {ph}x{pw} is not a multiple of {SIZE_DIVISOR}")
        scale = min(ph / h, pw / w)
        rh, rw = min(ph, int(h * scale + 0.5)), min(pw, int(w * scale + 0.5))
    return Letterbox(original=(h, w), resized=(rh, rw), padded=(ph, pw),
                     scale_x=rw / w, scale_y=rh / h)


def frame_input_size(height: int, width: int, input_size: Optional[Tuple[int, int]],
                     small_input: bool) -> Optional[Tuple[int, int]]:
    """The fixed network input (height, width) for a frame of this size, or None for the
    keep-ratio fit: ``input_size`` when given; else, with ``small_input`` (the runtime's
    small-source rule), ``SMALL_FRAME_INPUT`` for frames with both sides within
    ``SMALL_FRAME_MAX``."""
    if small_input and input_size is None and width <= SMALL_FRAME_MAX[0] \
            and height <= SMALL_FRAME_MAX[1]:
        return SMALL_FRAME_INPUT
    return input_size
