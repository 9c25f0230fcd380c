"""Write the golden vectors of the OscarDecode / OscarNMS / OscarPeakRefine plugins
(deterministic).

Each ``<case>.npz`` holds the five raw inputs with their batch axis (float32, or float16 for
the FP16 case), the plugin attributes, and the expected plugin outputs computed by the CPU twin
(``oscar_edge.native``), which is first checked against the numpy reference
(``oscar_edge.postprocess``). The TensorRT test replays them on a GPU.

Peak refinement (cpp_plugins/README.md, "OscarPeakRefine (rule 6)"): each case also holds an
``image`` [B, 1, H, W] (the network input of the decode grid's size, one channel to keep the
files small: the plugin reads channel 0 of any C; normalised 8-bit grey with bright and
saturated targets, so there are tied maxima), a ``letterbox`` [B, 4] (content height, content
width, scale_y, scale_x; contents smaller than the input and scales from 0.52 to 3.9), the
``centroid`` attribute and ``refine_boxes`` [B, M, 4]: OscarPeakRefine applied to
``nms_boxes`` / ``nms_num``.

    python cpp_plugins/golden/make_golden.py            # (re)write cpp_plugins/golden/*.npz
    python cpp_plugins/golden/make_golden.py --check    # compare the files with a fresh run

The files are byte-for-byte reproducible (fixed seeds, zip entries with a fixed date).
"""
from __future__ import annotations

import argparse
import io
import sys
import zipfile
from pathlib import Path
from typing import Dict, Iterator, Tuple

import numpy as np

HERE = Path(__file__).resolve().parent
try:
    from oscar_edge import postprocess as pp
    from oscar_edge.native import NativePostprocessor
except ImportError:  # run from a checkout without an installed package
    sys.path.insert(0, str(HERE.parents[1]))
    from oscar_edge import postprocess as pp
    from oscar_edge.native import NativePostprocessor

INPUT_NAMES = pp.OUTPUT_NAMES  # refine_score, refine_bbox, refine_noco, coarse_score, coarse_bbox
OUTPUT_NAMES = ("decode_boxes", "decode_scores", "decode_count",
                "nms_num", "nms_boxes", "nms_scores", "refine_boxes")


def _image(seed: int, batch: int, hw: Tuple[int, int], dtype=np.float32) -> np.ndarray:
    """[B, 1, H, W] normalised grey: a smooth background, noise, bright and saturated blobs."""
    from oscar_edge.preprocess import MEAN, STD

    rng = np.random.default_rng(1000 + seed)
    h, w = hw
    yy, xx = np.mgrid[0:h, 0:w]
    out = np.empty((batch, 1, h, w), np.float32)
    for b in range(batch):
        grey = 60 + 40 * np.sin(yy / 17.0 + b) * np.cos(xx / 23.0) + rng.normal(0, 3, (h, w))
        for _ in range(12):
            cy, cx = rng.uniform(0, h), rng.uniform(0, w)
            amp, sig = rng.uniform(40, 260), rng.uniform(0.6, 3.0)
            grey += amp * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * sig ** 2))
        grey = np.clip(np.round(grey), 0, 255)  # 8-bit: saturated plateaus give tied maxima
        out[b, 0] = (grey.astype(np.float32) - np.float32(MEAN)) / np.float32(STD)
    return out.astype(dtype)


def _inputs(seed: int, batch: int, hw: Tuple[int, int], mean: float, std: float, quant: float = 0.0,
            saturate: float = 0.0, box: float = 16.0) -> Tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    h4, w4, h8, w8 = hw[0] // 4, hw[1] // 4, hw[0] // 8, hw[1] // 8

    def logits(shape):
        x = rng.normal(mean, std, (batch,) + shape)
        if quant:
            x = np.round(x / quant) * quant
        if saturate:
            x = np.where(rng.random(x.shape) < saturate, 20.0, x)
        return x.astype(np.float32)

    return (logits((1, h4, w4)),
            np.round(rng.normal(0.0, 1.0, (batch, 4, h4, w4)) * 8).astype(np.float32) / 8,
            logits((1, h4, w4)),
            logits((1, h8, w8)),
            # log-distances (the decode applies exp); quarter steps of the log
            np.round(np.log(rng.uniform(box / 64, box, (batch, 4, h8, w8))) * 4).astype(np.float32) / 4)


def cases() -> Iterator[Tuple[str, Tuple[np.ndarray, ...], Dict[str, float]]]:
    """(name, inputs, attributes) of every golden case. inputs = the five raw tensors, the
    image and the letterbox; attributes include the OscarPeakRefine ``centroid``."""
    default = dict(score_threshold=pp.SCORE_THR, topk=pp.PRE_NMS_TOPK, iou_threshold=pp.IOU_THR,
                   max_detections=pp.MAX_DET, centroid=int(pp.PEAK_CENTROID_DEFAULT))
    f32 = np.float32
    # A 96x160 input (P2 24x40, P3 12x20: not a multiple of 64), batch 2, many equal scores.
    yield "fp32_b2_96x160", _inputs(1, 2, (96, 160), -1.0, 2.0, quant=0.5, saturate=0.02) + (
        _image(1, 2, (96, 160)), f32([[96, 160, 1.0, 1.0], [77, 131, 2.6875, 2.6875]])), default
    # More candidates than K: K = 64, M = 20.
    yield "fp32_topk64_128x128", _inputs(2, 1, (128, 128), 1.0, 1.5, quant=0.25) + (
        _image(2, 1, (128, 128)), f32([[128, 120, 0.521, 0.5215]])), dict(
        default, topk=64, max_detections=20)
    # Nothing above the threshold.
    yield "fp32_empty_64x64", _inputs(3, 1, (64, 64), -9.0, 0.5) + (
        _image(3, 1, (64, 64)), f32([[64, 64, 1.0, 1.0]])), default
    # All refine scores equal: candidate order = flat index order; other thresholds; the peak
    # refinement without the centroid (midpoint of the tied maxima).
    eq = list(_inputs(4, 1, (64, 96), 0.0, 1.0))
    eq[0] = np.full_like(eq[0], 0.75)
    yield "fp32_ties_64x96", tuple(eq) + (_image(4, 1, (64, 96)), f32([[60, 90, 1.17, 1.17]])), \
        dict(default, score_threshold=0.3, topk=200, iou_threshold=0.3, max_detections=50,
             centroid=0)
    # FP16 inputs (values exactly representable in half precision), batch 3; FP16 image.
    half = tuple(a.astype(np.float16) for a in _inputs(5, 3, (64, 128), -0.5, 2.0, quant=0.125))
    yield "fp16_b3_64x128", half + (_image(5, 3, (64, 128), np.float16), f32(
        [[64, 128, 3.896, 3.896], [50, 128, 1.0, 1.0], [64, 100, 0.586, 0.586]])), default


def expected(native: NativePostprocessor, inputs, attrs) -> Dict[str, np.ndarray]:
    image, letterbox = inputs[5:7]
    inputs = inputs[:5]
    f32 = tuple(np.asarray(a, dtype=np.float32) for a in inputs)
    boxes, scores, count = native.decode_batch(f32, None, attrs["score_threshold"],
                                               int(attrs["topk"]))
    num, nb, ns, _ = native.nms_batch(boxes, scores, count, attrs["iou_threshold"],
                                      int(attrs["max_detections"]))
    hw = (4 * f32[0].shape[2], 4 * f32[0].shape[3])
    for b in range(f32[0].shape[0]):  # the CPU twin agrees with the numpy reference
        rb, rs = pp.postprocess_image(tuple(a[b] for a in f32), hw, attrs["score_threshold"],
                                      int(attrs["topk"]), attrs["iou_threshold"],
                                      int(attrs["max_detections"]))
        n = int(num[b])
        assert n == len(rb) and np.array_equal(nb[b, :n], rb) and np.array_equal(ns[b, :n], rs)
    centroid = bool(attrs["centroid"])
    img32 = np.asarray(image, dtype=np.float32)
    refined = native.peak_refine_batch(img32, nb, num, letterbox, centroid)
    for b in range(f32[0].shape[0]):  # the CPU twin agrees with the numpy reference
        n = int(num[b])
        lb = letterbox[b]
        want = pp.peak_refine(nb[b, :n], img32[b], lb[:2], lb[2:], centroid)
        assert np.array_equal(refined[b, :n].view(np.uint32), want.view(np.uint32))
        assert not refined[b, n:].any()
    return dict(decode_boxes=boxes, decode_scores=scores, decode_count=count, nms_num=num,
                nms_boxes=nb, nms_scores=ns, refine_boxes=refined)


def arrays_of_case(native, name, inputs, attrs) -> Dict[str, np.ndarray]:
    out = {k: v for k, v in zip(INPUT_NAMES + ("image", "letterbox"), inputs)}
    out["centroid"] = np.int32(attrs["centroid"])
    out["score_threshold"] = np.float32(attrs["score_threshold"])
    out["topk"] = np.int32(attrs["topk"])
    out["iou_threshold"] = np.float32(attrs["iou_threshold"])
    out["max_detections"] = np.int32(attrs["max_detections"])
    out.update(expected(native, inputs, attrs))
    return out


def npz_bytes(arrays: Dict[str, np.ndarray]) -> bytes:
    """An .npz (np.load reads it) with fixed zip metadata, so equal arrays give equal bytes."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for key in sorted(arrays):
            info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            one = io.BytesIO()
            np.lib.format.write_array(one, np.asanyarray(arrays[key]), allow_pickle=False)
            zf.writestr(info, one.getvalue())
    return buf.getvalue()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="compare with the files, write nothing")
    ap.add_argument("--out", type=Path, default=HERE)
    args = ap.parse_args(argv)
    native = NativePostprocessor()
    stale = []
    total = 0
    for name, inputs, attrs in cases():
        data = npz_bytes(arrays_of_case(native, name, inputs, attrs))
        path = args.out / f"{name}.npz"
        total += len(data)
        if args.check:
            if not path.is_file() or path.read_bytes() != data:
                stale.append(path.name)
        else:
            path.write_bytes(data)
            print(f"wrote {path} ({len(data)} bytes)")
    if args.check:
        if stale:
            print(f"golden files differ from a fresh run: {', '.join(stale)}", file=sys.stderr)
            return 1
        print(f"golden files up to date ({total} bytes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
