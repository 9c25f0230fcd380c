"""Detection metrics: NoCo maps, NoCoAP / mNoCoAP, VOC box AP50, Pd / Fa (numpy only).

Implements spec section 7 literally. Conventions used throughout:

* Ground-truth boxes are (N, 4) xyxy in 0-based original-image pixels, i.e. the VOC corners
  minus 1 (what :func:`oscar_edge.data.annotations.parse_voc` returns), in annotation order.
* Detections for one image are ``(boxes, scores)`` with boxes (N, 4) xyxy in original-image
  coordinates (after NMS) and scores (N,); an (N, 5) array ``[x1, y1, x2, y2, score]`` is
  accepted too. A split is a sequence of those, one per image, aligned with the ground truth.
* A detection's centre is ``((x1 + x2) / 2, (y1 + y2) / 2)``; "box contains centre" uses
  inclusive bounds ``x1 <= cx <= x2 and y1 <= cy <= y2``.
* Ties in score keep their input order (stable sorts): within an image, the order the
  detections were given; across images, the image order of the split. The spec does not fix
  a tie rule; this one makes results independent of the platform's sort implementation.
"""
from __future__ import annotations

import os
from typing import Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from .preprocess import read_grey

DetectionsLike = Union[Tuple[np.ndarray, np.ndarray], np.ndarray]
NOCO_THRESHOLDS: Tuple[float, ...] = tuple(k / 10 for k in range(1, 10))  # 0.1 .. 0.9
# Operating point for Pd / false alarms (and the runtime's drawn / logged detections). The final
# score is a product of three sigmoids (spec section 6), so it runs lower than a plain
# classifier score: on val_full the shipped oscar-edge model gives Pd 0.76 at 0.04 false alarms
# per image here, against Pd 0.17 at 0.5 (table in the README).
DEFAULT_SCORE_THR: float = 0.1
CONTRAST_EPS: float = 0.01
NORM_EPS: float = 0.001


def noco_key(thr: float) -> str:
    """Result key of one NoCoAP threshold: 0.1 -> 'NoCoAP10'."""
    return f"NoCoAP{int(round(thr * 100))}"


# ----------------------------------------------------------------------------- NoCo map

def noco_map(grey: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Ground-truth normalized-contrast map of one image (spec section 7).

    Args:
        grey: (H, W) uint8 (or any real dtype) grey image, the original resolution.
        boxes: (N, 4) xyxy, VOC corners minus 1; converted to integers with ``int()``
            (truncation, exact for the integer corners of the annotations).

    Returns:
        (H, W) float32 map, zero outside every box's 3h x 3w window, values in [0, 1).

    Per box, with h = y2 - y1 and w = x2 - x1:
    target cell rows y1..y2-1, cols x1..x2-1; window rows y1-h..y2+h-1, cols x1-w..x2+w-1,
    clipped to the image; Gaussian G over a 3h x 3w grid with axes linspace(-1.5, 1.5, 3h) /
    linspace(-1.5, 1.5, 3w), cropped by the clip offset; C = (I - min window) /
    (max target cell - min window + 0.01); NoCo = G * C min-max normalised within the window
    with +0.001, written over the window (later boxes overwrite earlier ones).

    Cases the spec leaves open (safe choices, none occurs in SIRST-V2):
    * a zero extent (h == 0 or w == 0, a VOC box with xmin == xmax) is widened to 1 pixel
      (y2 = y1 + 1 / x2 = x1 + 1), so a one-pixel-wide target still gets a map;
    * a negative extent (inverted box) is ignored;
    * the target cell is clipped to the image too; a box whose target cell or window lies
      entirely outside the image is ignored (it leaves the map untouched).
    """
    grey = np.asarray(grey)
    if grey.ndim != 2:
        raise ValueError(f"noco_map expects an (H, W) grey image, got shape {grey.shape}")
    img = grey.astype(np.float64)
    height, width = img.shape
    out = np.zeros((height, width), dtype=np.float32)
    for box in np.asarray(boxes, dtype=np.float64).reshape(-1, 4):
        x1, y1, x2, y2 = (int(v) for v in box)
        h, w = y2 - y1, x2 - x1
        if h < 0 or w < 0:
            continue
        if h == 0:
            y2, h = y1 + 1, 1
        if w == 0:
            x2, w = x1 + 1, 1
        # Window (3h x 3w, half-open) and its part inside the image.
        r0, c0 = y1 - h, x1 - w
        wr0, wr1 = max(r0, 0), min(y2 + h, height)
        wc0, wc1 = max(c0, 0), min(x2 + w, width)
        # Target cell (half-open), clipped.
        tr0, tr1 = max(y1, 0), min(y2, height)
        tc0, tc1 = max(x1, 0), min(x2, width)
        if wr1 <= wr0 or wc1 <= wc0 or tr1 <= tr0 or tc1 <= tc0:
            continue
        gy = np.linspace(-1.5, 1.5, 3 * h)
        gx = np.linspace(-1.5, 1.5, 3 * w)
        gauss = np.exp(-(gy[:, None] ** 2 + gx[None, :] ** 2) / 2.0)
        gauss = gauss[wr0 - r0:wr1 - r0, wc0 - c0:wc1 - c0]
        window = img[wr0:wr1, wc0:wc1]
        wmin = window.min()
        cmax = img[tr0:tr1, tc0:tc1].max()
        contrast = (window - wmin) / (cmax - wmin + CONTRAST_EPS)
        noco = gauss * contrast
        nmin, nmax = noco.min(), noco.max()
        out[wr0:wr1, wc0:wc1] = (noco - nmin) / (nmax - nmin + NORM_EPS)
    return out


def noco_maps_for(samples: Sequence) -> List[np.ndarray]:
    """NoCo maps of samples (objects with ``image_path`` and ``boxes``): list of (H, W) float32.

    Images are read with :func:`oscar_edge.preprocess.read_grey` (OpenCV grey read), so a
    corrupt image raises ``ImageReadError`` naming the file.
    """
    return [noco_map(read_grey(s.image_path), s.boxes) for s in samples]


# ----------------------------------------------------------------------------- helpers

def _split_dets(det: DetectionsLike) -> Tuple[np.ndarray, np.ndarray]:
    """One image's detections -> ((N, 4) float64 boxes, (N,) float64 scores)."""
    if isinstance(det, np.ndarray):
        arr = np.asarray(det, dtype=np.float64).reshape(-1, 5) if det.size else np.zeros((0, 5))
        return arr[:, :4], arr[:, 4]
    boxes, scores = det
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    if len(boxes) != len(scores):
        raise ValueError(f"{len(boxes)} boxes but {len(scores)} scores")
    return boxes, scores


def _gt_boxes(gt) -> np.ndarray:
    """A Sample (anything with ``.boxes``) or an array -> (G, 4) float64 boxes."""
    boxes = getattr(gt, "boxes", gt)
    return np.asarray(boxes, dtype=np.float64).reshape(-1, 4)


def _check_lengths(**seqs: Optional[Sequence]) -> int:
    """All given sequences have one entry per image; returns that number."""
    lengths = {k: len(v) for k, v in seqs.items() if v is not None}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"per-image inputs differ in length: {lengths}")
    return next(iter(lengths.values()), 0)


def _centres(boxes: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """(N, 4) xyxy -> (cx (N,), cy (N,)) box centres."""
    return (boxes[:, 0] + boxes[:, 2]) / 2.0, (boxes[:, 1] + boxes[:, 3]) / 2.0


def _contains(gt: np.ndarray, cx: np.ndarray, cy: np.ndarray) -> np.ndarray:
    """(N, G) bool: GT box g contains centre n, inclusive bounds."""
    return ((gt[None, :, 0] <= cx[:, None]) & (cx[:, None] <= gt[None, :, 2])
            & (gt[None, :, 1] <= cy[:, None]) & (cy[:, None] <= gt[None, :, 3]))


def _noco_at(nmap: np.ndarray, cx: np.ndarray, cy: np.ndarray) -> np.ndarray:
    """NoCo values (N,) float64 of the (H, W) map under the centres (N,) ``cx``, ``cy``.

    np.round rounds half to even (as Python's round does). The released evaluation is numpy code
    and most likely used np.round, so half-to-even is kept: a centre at 10.5 reads row 10, one at
    11.5 reads row 12. A value equal to the height / width moves to the last row / column
    (spec); clipping to [0, size - 1] additionally guards against centres outside the image
    (boxes are clamped, so never in practice).
    """
    if len(cx) == 0:
        return np.zeros(0)
    height, width = nmap.shape
    rows = np.clip(np.round(cy).astype(np.int64), 0, height - 1)
    cols = np.clip(np.round(cx).astype(np.int64), 0, width - 1)
    return nmap[rows, cols].astype(np.float64)


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N, 4) x (G, 4) xyxy -> (N, G) IoU, continuous coordinates (area = (x2-x1)*(y2-y1),
    no +1); a pair with zero union has IoU 0."""
    ix = np.clip(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    iy = np.clip(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    inter = ix * iy
    area_a = np.clip(a[:, 2] - a[:, 0], 0, None) * np.clip(a[:, 3] - a[:, 1], 0, None)
    area_b = np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def _pr_curve(scores: Sequence[np.ndarray], tps: Sequence[np.ndarray],
              num_gt: int) -> Tuple[np.ndarray, np.ndarray]:
    """Pool per-image (scores, TP flags), sort by score (stable), -> (recall, precision) (M,)."""
    all_scores = np.concatenate([np.zeros(0)] + list(scores))
    all_tp = np.concatenate([np.zeros(0)] + list(tps)).astype(np.float64)
    order = np.argsort(-all_scores, kind="stable")
    return _sorted_pr(all_tp[order], np.ones(len(order)), num_gt)


def _sorted_pr(tp: np.ndarray, weights: np.ndarray,
               num_gt: float) -> Tuple[np.ndarray, np.ndarray]:
    """(recall, precision) (M,) of score-sorted TP flags (M,), detection i counting
    ``weights[i]`` times (an image drawn k times by a bootstrap counts k times)."""
    eps = np.finfo(np.float64).eps
    tps = np.cumsum(weights * tp)
    fps = np.cumsum(weights * (1.0 - tp))
    return tps / max(num_gt, eps), tps / np.maximum(tps + fps, eps)


def voc_ap(recall: np.ndarray, precision: np.ndarray) -> float:
    """VOC2010+ 'area' average precision of one (M,) recall / (M,) precision curve.

    Sentinels recall 0 / 1 and precision 0 / 0 are added at the ends, precision is replaced by
    its envelope (running maximum from the right), and the area under the stepped curve is
    summed over the points where recall changes. An empty curve gives 0.0.
    """
    recall = np.asarray(recall, dtype=np.float64).reshape(-1)
    precision = np.asarray(precision, dtype=np.float64).reshape(-1)
    if recall.shape != precision.shape:
        raise ValueError(f"recall {recall.shape} and precision {precision.shape} differ")
    if recall.size == 0:
        return 0.0
    mrec = np.concatenate(([0.0], recall, [1.0]))
    mpre = np.concatenate(([0.0], precision, [0.0]))
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    idx = np.nonzero(mrec[1:] != mrec[:-1])[0]
    return float(np.sum((mrec[idx + 1] - mrec[idx]) * mpre[idx + 1]))


# ----------------------------------------------------------------------------- NoCoAP

class _NocoInputs:
    """Per-image, threshold-independent parts of the NoCoAP matching.

    For each image, detections in descending score order (stable): scores (N,), the NoCo
    value under each centre (N,) and the index of the first GT box containing the centre
    ((N,) int, -1 for none).
    """

    def __init__(self, detections: Sequence[DetectionsLike], gts: Sequence,
                 noco_maps: Sequence[np.ndarray]) -> None:
        _check_lengths(detections=detections, gts=gts, noco_maps=noco_maps)
        self.num_gt = 0
        self.per_image: List[Tuple[np.ndarray, np.ndarray, np.ndarray, int]] = []
        for det, gt, nmap in zip(detections, gts, noco_maps):
            boxes, scores = _split_dets(det)
            gt_boxes = _gt_boxes(gt)
            nmap = np.asarray(nmap)
            if nmap.ndim != 2:
                raise ValueError(f"NoCo map must be (H, W), got shape {nmap.shape}")
            self.num_gt += len(gt_boxes)
            order = np.argsort(-scores, kind="stable")
            boxes, scores = boxes[order], scores[order]
            cx, cy = _centres(boxes)
            values = _noco_at(nmap, cx, cy)
            inside = _contains(gt_boxes, cx, cy)
            first = np.where(inside.any(axis=1), inside.argmax(axis=1), -1) if len(gt_boxes) \
                else np.full(len(boxes), -1)
            self.per_image.append((scores, values, first, len(gt_boxes)))

    def curve(self, thr: float) -> Tuple[np.ndarray, np.ndarray]:
        """(recall, precision) at NoCo threshold ``thr``."""
        return _pr_curve([s for s, _, _, _ in self.per_image], self.image_tps(thr), self.num_gt)

    def image_tps(self, thr: float) -> List[np.ndarray]:
        """Per image, the TP flags (N,) of its score-sorted detections at NoCo threshold
        ``thr``; matching never crosses images, so these can be pooled in any selection."""
        tps_all = []
        for scores, values, first, num_gt in self.per_image:
            matched = np.zeros(num_gt, dtype=bool)
            tp = np.zeros(len(scores))
            for i in range(len(scores)):
                g = first[i]
                # Literal reading of the spec: only the FIRST GT box (annotation order) that
                # contains the centre is considered. If it is already matched, the detection is
                # a false positive; no second containing box is searched. A detection failing
                # the NoCo test does not consume its box.
                if values[i] > thr and g >= 0 and not matched[g]:
                    matched[g] = True
                    tp[i] = 1.0
            tps_all.append(tp)
        return tps_all


def noco_ap(detections: Sequence[DetectionsLike], gts: Sequence,
            noco_maps: Sequence[np.ndarray], thr: float) -> float:
    """NoCoAP of a split at one NoCo threshold ``thr`` (spec section 7).

    Args:
        detections: per image ``(boxes (N, 4), scores (N,))`` in original coordinates.
        gts: per image (G, 4) GT boxes (VOC minus 1, annotation order) or Samples.
        noco_maps: per image (H, W) NoCo map from :func:`noco_map`.

    Returns:
        VOC 'area' AP in [0, 1]; 0.0 when the split has no GT box.
    """
    return voc_ap(*_NocoInputs(detections, gts, noco_maps).curve(thr))


def mnoco_ap(detections: Sequence[DetectionsLike], gts: Sequence,
             noco_maps: Sequence[np.ndarray],
             thresholds: Sequence[float] = NOCO_THRESHOLDS) -> Dict[str, float]:
    """NoCoAP at each threshold (keys 'NoCoAP10' .. 'NoCoAP90') and their mean ('mNoCoAP')."""
    inputs = _NocoInputs(detections, gts, noco_maps)
    out = {noco_key(t): voc_ap(*inputs.curve(t)) for t in thresholds}
    return {"mNoCoAP": float(np.mean(list(out.values()))), **out}


def target_centring(detections: Sequence[DetectionsLike], gts: Sequence,
                    noco_maps: Sequence[np.ndarray],
                    score_thr: float) -> Tuple[np.ndarray, np.ndarray]:
    """How well each found target is centred, independent of the ranking that AP measures.

    For each GT box: among the detections with score >= ``score_thr`` whose centre lies in
    the box (the containment test of NoCoAP), the highest-scoring one, and the NoCo value under
    its centre (1 on the target's intensity centroid, falling towards the box edge).

    Returns:
        values (G,) float64, NaN for a target no such detection finds; image (G,) int64, the
        index of each target's image (targets in image, then annotation, order).
    """
    _check_lengths(detections=detections, gts=gts, noco_maps=noco_maps)
    values, image = [], []
    for i, (det, gt, nmap) in enumerate(zip(detections, gts, noco_maps)):
        boxes, scores = _split_dets(det)
        gt_boxes = _gt_boxes(gt)
        keep = scores >= score_thr
        boxes, scores = boxes[keep], scores[keep]
        cx, cy = _centres(boxes)
        noco = _noco_at(np.asarray(nmap), cx, cy)
        inside = _contains(gt_boxes, cx, cy)  # (N, G)
        for g in range(len(gt_boxes)):
            cand = np.nonzero(inside[:, g])[0]
            values.append(float(noco[cand[np.argmax(scores[cand])]]) if len(cand) else np.nan)
            image.append(i)
    return np.array(values, dtype=np.float64), np.array(image, dtype=np.int64)


def bootstrap_draws(num_images: int, num_resamples: int = 1000, seed: int = 0) -> np.ndarray:
    """(B, n) image indices: B draws of n images with replacement (seeded)."""
    if num_images <= 0:
        raise ValueError("bootstrap needs at least one image")
    rng = np.random.default_rng(seed)
    return rng.integers(0, num_images, size=(max(int(num_resamples), 0), num_images))


def draw_counts(draws: np.ndarray, num_images: int) -> np.ndarray:
    """(B, n) image indices -> (B, n) float64: how often each image is in each draw."""
    return np.stack([np.bincount(d, minlength=num_images) for d in draws]).astype(np.float64) \
        if len(draws) else np.zeros((0, num_images))


def mnoco_ap_resampled(detection_sets: Sequence[Sequence[DetectionsLike]], gts: Sequence,
                       noco_maps: Sequence[np.ndarray], draws: np.ndarray,
                       thresholds: Sequence[float] = NOCO_THRESHOLDS) -> np.ndarray:
    """mNoCoAP of several settings of the same images on the same image draws (a paired
    bootstrap when ``draws`` comes from :func:`bootstrap_draws`).

    Args:
        detection_sets: S lists, each with per image ``(boxes (N, 4), scores (N,))`` of one
            setting (an input size, peak refinement on / off) on the same n images.
        gts: per image (G, 4) GT boxes or Samples.
        noco_maps: per image (H, W) NoCo maps.
        draws: (B, n) image indices per draw.

    Returns:
        (B, S) mNoCoAP. An image drawn k times counts k times, exactly as if its detections and
        targets were listed k times, so a draw of every image once gives :func:`mnoco_ap`.
    """
    n = len(gts)
    draws = np.asarray(draws, dtype=np.int64).reshape(-1, n) if n else np.zeros((0, 0), int)
    if n == 0 or (draws.size and (draws.min() < 0 or draws.max() >= n)):
        raise ValueError(f"draws must index the {n} images")
    counts = draw_counts(draws, n)
    num_gt = counts @ np.array([len(_gt_boxes(g)) for g in gts], dtype=np.float64)
    out = np.zeros((len(counts), len(detection_sets)))
    for s, dets in enumerate(detection_sets):
        inputs = _NocoInputs(dets, gts, noco_maps)
        scores = np.concatenate([np.zeros(0)] + [p[0] for p in inputs.per_image])
        image = np.concatenate([np.zeros(0, dtype=np.int64)]
                               + [np.full(len(p[0]), i) for i, p in enumerate(inputs.per_image)])
        order = np.argsort(-scores, kind="stable")
        image = image[order]
        for t in thresholds:
            tp = np.concatenate([np.zeros(0)] + inputs.image_tps(t))[order]
            for b in range(len(counts)):
                out[b, s] += voc_ap(*_sorted_pr(tp, counts[b, image], num_gt[b]))
    return out / len(thresholds)


# ----------------------------------------------------------------------------- box AP, Pd/Fa

def _box_ap50_curve(detections: Sequence[DetectionsLike], gts: Sequence,
                    iou_thr: float) -> Tuple[np.ndarray, np.ndarray]:
    """(recall, precision) of VOC-style box matching at ``iou_thr``."""
    _check_lengths(detections=detections, gts=gts)
    scores_all, tps_all, num_gt = [], [], 0
    for det, gt in zip(detections, gts):
        boxes, scores = _split_dets(det)
        gt_boxes = _gt_boxes(gt)
        num_gt += len(gt_boxes)
        order = np.argsort(-scores, kind="stable")
        boxes, scores = boxes[order], scores[order]
        tp = np.zeros(len(boxes))
        if len(gt_boxes) and len(boxes):
            iou = _iou(boxes, gt_boxes)
            matched = np.zeros(len(gt_boxes), dtype=bool)
            for i in range(len(boxes)):
                g = int(iou[i].argmax())
                # VOC rule: the best-overlapping GT only; if it is taken the detection is FP.
                if iou[i, g] >= iou_thr and not matched[g]:
                    matched[g] = True
                    tp[i] = 1.0
        scores_all.append(scores)
        tps_all.append(tp)
    return _pr_curve(scores_all, tps_all, num_gt)


def box_ap50(detections: Sequence[DetectionsLike], gts: Sequence,
             iou_thr: float = 0.5) -> float:
    """VOC-style box AP at IoU ``iou_thr``.

    Detections are matched greedily in descending score order (pooled over the split; since
    matching is per image this equals per-image greedy matching) to the GT box of highest IoU
    in the same image; TP when that IoU >= ``iou_thr`` (MMDetection's ``>=``; VOC devkit uses
    ``>``) and the box is not matched yet, each GT box matched at most once. IoU uses
    continuous coordinates without the legacy +1 (as MMDetection 2.x ``eval_map``). VOC
    'area' AP; 0.0 when there is no GT box.
    """
    return voc_ap(*_box_ap50_curve(detections, gts, iou_thr))


def pd_fa(detections: Sequence[DetectionsLike], gts: Sequence, score_thr: float,
          image_sizes: Optional[Sequence[Tuple[int, int]]] = None) -> Dict[str, float]:
    """Probability of detection and false alarms at a fixed score threshold.

    Only detections with score >= ``score_thr`` count. Pd = fraction of GT boxes that contain
    (inclusive bounds) the centre of at least one such detection (NaN when there is no GT
    box). A false alarm is such a detection whose centre lies in no GT box of its image.

    Args:
        image_sizes: per image (height, width), for false alarms per megapixel (NaN without).

    Returns:
        dict with Pd, Fa_per_image, Fa_per_MP, num_detected (GT boxes hit), num_false_alarms.
    """
    n = _check_lengths(detections=detections, gts=gts, image_sizes=image_sizes)
    num_gt = num_hit = num_fa = 0
    for det, gt in zip(detections, gts):
        boxes, scores = _split_dets(det)
        boxes = boxes[scores >= score_thr]
        gt_boxes = _gt_boxes(gt)
        cx, cy = _centres(boxes)
        inside = _contains(gt_boxes, cx, cy)  # (N, G)
        num_gt += len(gt_boxes)
        num_hit += int(inside.any(axis=0).sum())
        num_fa += int((~inside.any(axis=1)).sum()) if len(gt_boxes) else len(boxes)
    megapixels = (sum(int(h) * int(w) for h, w in image_sizes) / 1e6
                  if image_sizes is not None else 0.0)
    return {
        "Pd": num_hit / num_gt if num_gt else float("nan"),
        "Fa_per_image": num_fa / n if n else float("nan"),
        "Fa_per_MP": num_fa / megapixels if megapixels > 0 else float("nan"),
        "num_detected": num_hit,
        "num_false_alarms": num_fa,
    }


PD_FA_GRID = tuple(round(0.01 * i, 2) for i in range(1, 100))   # score thresholds swept
DEFAULT_MAX_FA = 0.05                                            # false alarms per image


def pd_at_fa(detections: Sequence[DetectionsLike], gts: Sequence,
             max_fa_per_image: float = DEFAULT_MAX_FA,
             grid: Sequence[float] = PD_FA_GRID) -> Dict[str, float]:
    """The operating point with the highest Pd whose false alarms per image stay at or below
    ``max_fa_per_image``, over the score thresholds of ``grid`` (``pd_fa`` at each).

    Returns:
        dict with Pd, Fa_per_image and score_thr of that point (Pd 0 and score_thr NaN when
        no threshold of the grid gets that few false alarms).
    """
    best = {"Pd": 0.0, "Fa_per_image": float("nan"), "score_thr": float("nan")}
    for thr in sorted(grid):
        pf = pd_fa(detections, gts, thr)
        if pf["Fa_per_image"] <= max_fa_per_image and pf["Pd"] > best["Pd"]:
            best = {"Pd": pf["Pd"], "Fa_per_image": pf["Fa_per_image"], "score_thr": float(thr)}
    return best


# ----------------------------------------------------------------------------- all together

def evaluate_detections(
    detections: Sequence[DetectionsLike],
    samples_or_gts: Sequence,
    noco_maps: Optional[Sequence[np.ndarray]] = None,
    image_sizes: Optional[Sequence[Tuple[int, int]]] = None,
    score_thr: float = DEFAULT_SCORE_THR,
    thresholds: Sequence[float] = NOCO_THRESHOLDS,
) -> Dict[str, object]:
    """All metrics of a split.

    Args:
        detections: per image ``(boxes (N, 4), scores (N,))`` in original image coordinates.
        samples_or_gts: per image a Sample (``image_path``, ``boxes``) or a (G, 4) box array.
        noco_maps: per image (H, W) NoCo maps; computed from the images when omitted (needs
            Samples).
        image_sizes: per image (height, width); taken from the NoCo maps when omitted.
        score_thr: score threshold for Pd / Fa.

    Returns:
        JSON-friendly floats / ints: mNoCoAP, NoCoAP10 .. NoCoAP90, AP50, Pd, Fa_per_image,
        Fa_per_MP, score_thr, the best operating point with at most ``DEFAULT_MAX_FA`` false
        alarms per image (Pd_at_max_fa, Fa_at_max_fa, score_thr_at_max_fa: ``pd_at_fa``),
        num_images, num_boxes, num_detections; and under 'curves' (drop
        it before writing JSON) a dict name -> {'recall': (M,), 'precision': (M,)} arrays for
        every NoCoAP threshold and AP50.
    """
    if noco_maps is None:
        if not all(hasattr(s, "image_path") for s in samples_or_gts):
            raise ValueError("noco_maps are needed when ground truth is given as box arrays")
        noco_maps = noco_maps_for(samples_or_gts)
    if image_sizes is None:
        image_sizes = [tuple(np.asarray(m).shape[:2]) for m in noco_maps]
    n = _check_lengths(detections=detections, gts=samples_or_gts, noco_maps=noco_maps,
                       image_sizes=image_sizes)
    gts = [_gt_boxes(g) for g in samples_or_gts]

    inputs = _NocoInputs(detections, gts, noco_maps)
    result: Dict[str, object] = {}
    curves: Dict[str, Dict[str, np.ndarray]] = {}
    aps = []
    for t in thresholds:
        rec, prec = inputs.curve(t)
        curves[noco_key(t)] = {"recall": rec, "precision": prec}
        aps.append(voc_ap(rec, prec))
        result[noco_key(t)] = aps[-1]
    result = {"mNoCoAP": float(np.mean(aps)), **result}
    rec, prec = _box_ap50_curve(detections, gts, 0.5)
    curves["AP50"] = {"recall": rec, "precision": prec}
    result["AP50"] = voc_ap(rec, prec)
    pf = pd_fa(detections, gts, score_thr, image_sizes)
    result.update(Pd=pf["Pd"], Fa_per_image=pf["Fa_per_image"], Fa_per_MP=pf["Fa_per_MP"])
    op = pd_at_fa(detections, gts, DEFAULT_MAX_FA)
    result.update({"Pd_at_max_fa": op["Pd"], "Fa_at_max_fa": op["Fa_per_image"],
                   "score_thr_at_max_fa": op["score_thr"], "max_fa_per_image": DEFAULT_MAX_FA})
    result.update(
        score_thr=float(score_thr),
        num_images=n,
        num_boxes=int(sum(len(g) for g in gts)),
        num_detections=int(sum(len(_split_dets(d)[1]) for d in detections)),
        curves=curves,
    )
    return result


def plot_pr_curves(curves: Mapping[str, Mapping[str, np.ndarray]], path: Union[str, "os.PathLike[str]"],
                   title: str = "Precision-recall") -> None:
    """Write a PNG with one precision-recall line per curve (name -> {'recall', 'precision'}).

    matplotlib is imported here, with the non-interactive Agg backend, so the runtime does not
    need it.
    """
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.0, 5.0))
    try:
        for name, curve in curves.items():
            rec = np.asarray(curve["recall"], dtype=np.float64)
            prec = np.asarray(curve["precision"], dtype=np.float64)
            ax.step(rec, prec, where="post", label=f"{name} (AP {voc_ap(rec, prec):.3f})")
        ax.set_xlabel("recall")
        ax.set_ylabel("precision")
        ax.set_xlim(0.0, 1.0)
        ax.set_ylim(0.0, 1.02)
        ax.set_title(title)
        ax.grid(True, alpha=0.3)
        if curves:
            ax.legend(fontsize="small", loc="lower left")
        parent = os.path.dirname(os.fspath(path))
        if parent:
            os.makedirs(parent, exist_ok=True)
        fig.savefig(path, dpi=120, bbox_inches="tight")
    finally:
        plt.close(fig)
