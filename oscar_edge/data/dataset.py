"""SIRST-V2 datasets for training (random crops) and evaluation (whole images), plus labelled
video frames added with ``SirstTrainDataset.add_frames`` (``oscar-edge train --video-data``).
Needs torch.

Training pipeline per image (spec section 5, with CPU-speed crops: README, "Training and the
shipped model"):
read grey -> ground-truth NoCo map at the original resolution -> keep-ratio resize to fit
(1000, 600) (NoCo map nearest-exact) -> horizontal flip (p = 0.5) -> a ``crop`` window, most
of the time placed so that a random target lies inside it; with scale jitter (``scale_range``,
e.g. (0.5, 2.0)) the window is taken at a random scale s, log-uniform in the range: a
(crop / s) window of the fitted image resized to ``crop``, so targets appear s times their
inference size -> normalise (the constants of
``oscar_edge.preprocess``) -> the NoCo map sampled on the P2 grid (nearest-exact: pixel
4 i + 2).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Sequence, Tuple

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from ..metrics import noco_map
from ..postprocess import REFINE_STRIDE
from ..preprocess import (FIT_SIZE, fit_scale, frame_input_size, letterbox_for, normalize,
                          read_grey, resized_shape)
from .annotations import Sample, load_samples


@dataclass
class _Cached:
    grey: np.ndarray   # (H, W) uint8, resized
    noco: np.ndarray   # (H, W) float16, resized
    boxes: np.ndarray  # (N, 4) float32, resized coordinates


def _resize_entry(grey: np.ndarray, boxes: np.ndarray, rh: int, rw: int) -> _Cached:
    """NoCo map at the original resolution, then image (linear) and map (nearest-exact)
    resized to (rh, rw), boxes scaled with them."""
    noco = noco_map(grey, boxes)
    h, w = grey.shape
    grey_r = cv2.resize(grey, (rw, rh), interpolation=cv2.INTER_LINEAR)
    noco_r = cv2.resize(noco, (rw, rh), interpolation=cv2.INTER_NEAREST_EXACT)
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4).copy()
    boxes[:, 0::2] *= rw / w
    boxes[:, 1::2] *= rh / h
    return _Cached(grey_r, noco_r.astype(np.float16), boxes)


def _load_resized(sample: Sample, fit: Tuple[int, int]) -> _Cached:
    grey = read_grey(sample.image_path)
    h, w = grey.shape
    rh, rw = resized_shape(h, w, fit_scale(h, w, fit))
    return _resize_entry(grey, sample.boxes, rh, rw)


def _runtime_resized(grey: np.ndarray, boxes: np.ndarray) -> _Cached:
    """A frame resized as ``oscar-edge run`` resizes it (``letterbox_for`` with the runtime's
    small-source rule: 320x256 frames go to 640x512, larger ones to the fit)."""
    h, w = grey.shape
    rh, rw = letterbox_for(h, w, input_size=frame_input_size(h, w, None, True)).resized
    return _resize_entry(grey, boxes, rh, rw)


def noco_on_p2(noco: np.ndarray) -> np.ndarray:
    """(H, W) NoCo map at input resolution -> (H / 4, W / 4), nearest-exact (pixel 4 i + 2)."""
    off = REFINE_STRIDE // 2
    return noco[off::REFINE_STRIDE, off::REFINE_STRIDE]


class SirstTrainDataset(Dataset):
    """Random training crops of a SIRST-V2 split, cached in memory after the first read.

    Items: image (3, ch, cw) float32, boxes (N, 4) float32 in crop pixels,
    noco_p2 (1, ch / 4, cw / 4) float32. Call :meth:`set_epoch` so crops differ per epoch and
    are reproducible from (seed, epoch, index).
    """

    def __init__(self, root: str, split: str, crop: Tuple[int, int] = (320, 320),
                 fit: Tuple[int, int] = FIT_SIZE, target_crop_prob: float = 0.8,
                 flip_prob: float = 0.5, seed: int = 0, progress: bool = False,
                 scale_range: Tuple[float, float] = (1.0, 1.0)) -> None:
        if crop[0] % 32 or crop[1] % 32:
            raise ValueError(f"crop {crop} must be a multiple of 32")
        lo, hi = float(scale_range[0]), float(scale_range[1])
        if not 0 < lo <= hi:
            raise ValueError(f"scale_range must be 0 < low <= high, got {scale_range}")
        self.scale_range = (lo, hi)
        self.samples = load_samples(root, split)
        self.crop = crop
        self.target_crop_prob = target_crop_prob
        self.flip_prob = flip_prob
        self.seed = seed
        self.epoch = 0
        items = self.samples
        if progress:
            from tqdm import tqdm
            items = tqdm(items, desc=f"caching {split}", unit="img")
        self.cache: List[_Cached] = [_load_resized(s, fit) for s in items]

    def add_frames(self, frames: Sequence[Tuple[np.ndarray, np.ndarray]]) -> int:
        """Add (grey (H, W) uint8, (N, 4) xyxy boxes) frames, e.g. of labelled video
        (``oscar_edge.data.video.training_frames``), each resized as the runtime resizes a
        frame of its size; crops are then drawn from them like from the images. Returns the
        new length."""
        self.cache.extend(_runtime_resized(g, b) for g, b in frames)
        return len(self.cache)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.cache)

    def __getitem__(self, index: int):
        rng = np.random.default_rng((self.seed, self.epoch, index))
        c = self.cache[index]
        grey, noco, boxes = c.grey, c.noco, c.boxes.copy()
        h, w = grey.shape
        if rng.random() < self.flip_prob:
            grey, noco = grey[:, ::-1], noco[:, ::-1]
            boxes[:, [0, 2]] = w - boxes[:, [2, 0]]
        ch, cw = self.crop
        lo, hi = self.scale_range
        scale = 1.0 if lo == hi == 1.0 else float(np.exp(rng.uniform(np.log(lo), np.log(hi))))
        sh, sw = (ch, cw) if scale == 1.0 else (max(int(round(ch / scale)), 1),
                                                max(int(round(cw / scale)), 1))
        y0, x0 = self._origin(rng, boxes, h, w, (sh, sw))
        img = np.zeros((sh, sw), dtype=np.uint8)
        nmap = np.zeros((sh, sw), dtype=np.float32)
        ys, xs = max(y0, 0), max(x0, 0)
        ye, xe = min(y0 + sh, h), min(x0 + sw, w)
        img_valid = np.zeros((sh, sw), dtype=np.uint8)
        img[ys - y0:ye - y0, xs - x0:xe - x0] = grey[ys:ye, xs:xe]
        nmap[ys - y0:ye - y0, xs - x0:xe - x0] = noco[ys:ye, xs:xe]
        img_valid[ys - y0:ye - y0, xs - x0:xe - x0] = 1
        boxes[:, 0::2] -= x0
        boxes[:, 1::2] -= y0
        if (sh, sw) != (ch, cw):  # scale jitter: the window to the crop size
            img = cv2.resize(img, (cw, ch), interpolation=cv2.INTER_LINEAR)
            nmap = cv2.resize(nmap, (cw, ch), interpolation=cv2.INTER_NEAREST_EXACT)
            img_valid = cv2.resize(img_valid, (cw, ch), interpolation=cv2.INTER_NEAREST_EXACT)
            boxes[:, 0::2] *= cw / sw
            boxes[:, 1::2] *= ch / sh
        img_valid = img_valid.astype(bool)
        x = normalize(img)
        x[:, ~img_valid] = 0.0  # padding is 0 after normalisation, as at test time
        cx, cy = (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2
        keep = (cx >= 0) & (cx < cw) & (cy >= 0) & (cy < ch)
        boxes = boxes[keep]
        boxes[:, 0::2] = boxes[:, 0::2].clip(0, cw)
        boxes[:, 1::2] = boxes[:, 1::2].clip(0, ch)
        return (torch.from_numpy(x), torch.from_numpy(boxes),
                torch.from_numpy(np.ascontiguousarray(noco_on_p2(nmap)))[None])

    def _origin(self, rng: np.random.Generator, boxes: np.ndarray, h: int,
                w: int, window: Tuple[int, int]) -> Tuple[int, int]:
        ch, cw = window
        if len(boxes) and rng.random() < self.target_crop_prob:
            b = boxes[rng.integers(len(boxes))]
            lo_x, hi_x = int(np.ceil(b[2])) - cw, int(b[0])
            lo_y, hi_y = int(np.ceil(b[3])) - ch, int(b[1])
            x0 = int(rng.integers(min(lo_x, hi_x), max(lo_x, hi_x) + 1))
            y0 = int(rng.integers(min(lo_y, hi_y), max(lo_y, hi_y) + 1))
        else:
            x0 = int(rng.integers(0, max(w - cw, 0) + 1))
            y0 = int(rng.integers(0, max(h - ch, 0) + 1))
        # Keep the window on the image where the image is large enough.
        x0 = min(max(x0, 0), max(w - cw, 0)) if w >= cw else min(x0, 0)
        y0 = min(max(y0, 0), max(h - ch, 0)) if h >= ch else min(y0, 0)
        return y0, x0


def collate(batch):
    """Stack images and NoCo maps; keep boxes as a list (different counts per image)."""
    images, boxes, noco = zip(*batch)
    return torch.stack(images), list(boxes), torch.stack(noco)
