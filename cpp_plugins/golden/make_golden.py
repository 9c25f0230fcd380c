"""Write the golden vectors of the OscarDecode / OscarNMS plugins (deterministic).

Each ``<case>.npz`` holds the five raw inputs with their batch axis (float32, or float16 for
the FP16 case), the plugin attributes, and the expected plugin outputs computed by the CPU twin
(``oscar_edge.native``), which is first checked against the numpy reference
(``oscar_edge.postprocess``). The TensorRT test replays them on a GPU.

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
                "nms_num", "nms_boxes", "nms_scores")


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
            np.round(rng.uniform(0.0, box, (batch, 4, h8, w8)) * 4).astype(np.float32) / 4)


def cases() -> Iterator[Tuple[str, Tuple[np.ndarray, ...], Dict[str, float]]]:
    """(name, inputs, attributes) of every golden case."""
    default = dict(score_threshold=pp.SCORE_THR, topk=pp.PRE_NMS_TOPK, iou_threshold=pp.IOU_THR,
                   max_detections=pp.MAX_DET)
    # A 96x160 input (P2 24x40, P3 12x20: not a multiple of 64), batch 2, many equal scores.
    yield "fp32_b2_96x160", _inputs(1, 2, (96, 160), -1.0, 2.0, quant=0.5, saturate=0.02), default
    # More candidates than K: K = 64, M = 20.
    yield "fp32_topk64_128x128", _inputs(2, 1, (128, 128), 1.0, 1.5, quant=0.25), dict(
        default, topk=64, max_detections=20)
    # Nothing above the threshold.
    yield "fp32_empty_64x64", _inputs(3, 1, (64, 64), -9.0, 0.5), default
    # All refine scores equal: candidate order = flat index order; other thresholds.
    eq = list(_inputs(4, 1, (64, 96), 0.0, 1.0))
    eq[0] = np.full_like(eq[0], 0.75)
    yield "fp32_ties_64x96", tuple(eq), dict(default, score_threshold=0.3, topk=200,
                                             iou_threshold=0.3, max_detections=50)
    # FP16 inputs (values exactly representable in half precision), batch 3.
    half = tuple(a.astype(np.float16) for a in _inputs(5, 3, (64, 128), -0.5, 2.0, quant=0.125))
    yield "fp16_b3_64x128", half, default


def expected(native: NativePostprocessor, inputs, attrs) -> Dict[str, np.ndarray]:
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
    return dict(decode_boxes=boxes, decode_scores=scores, decode_count=count, nms_num=num,
                nms_boxes=nb, nms_scores=ns)


def arrays_of_case(native, name, inputs, attrs) -> Dict[str, np.ndarray]:
    out = {k: v for k, v in zip(INPUT_NAMES, inputs)}
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
