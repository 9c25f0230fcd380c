"""Peak-centred localization (README.md, "Peak-centred localization"): accuracy of the variants
of the peak refinement on a split.

Runs the model once over the split (PyTorch on the CPU, the spec's fit-size inputs, decode + NMS
of ``oscar_edge.postprocess``), caches the kept boxes in network pixels, then evaluates every
variant of the refinement on the same detections (mNoCoAP, NoCoAP10..90, AP50):

* ``off``: no refinement (the NMS output);
* ``(a) centre = j``: the peak's pixel index (``postprocess.peak_refine`` with scale 1);
* ``(b) centre = j + 0.5``: pixel-edge convention (``peak_refine`` with scale 0: o = -0.5);
* ``(c) exact``: centre = j + 0.5 - 0.5 s with the image's letterbox scale (s_y, s_x);
* ``+ 3x3 centroid``: the peak point moved to the intensity-weighted centroid of the peak
  pixel's 3x3 neighbourhood (``centroid=True``); ``(c) + 3x3 centroid`` is the shipped rule;
* two other choices for the shipped rule's details, for comparison (``refine_general``): the
  first maximum in row-major order instead of the midpoint of the tied maxima, and the pixels
  whose extent meets the box instead of those whose centre lies in it;
* ``original resolution``: the same rule (scale 1) on the original grey image inside the
  back-mapped box (only the CPU path could do this; no engine has the original image): a bound;
* ``GT boxes`` and ``GT boxes, centre = brightest pixel`` (the spec's 0.696 / 0.987), and the GT
  boxes scaled into the network frame and refined there (the rule with perfect boxes).

    python benchmarks/peak_refine_val.py [--checkpoint X.pt] [--split val_full] [--threads 1]
        [--input-size 640x512] [--cache /tmp/oscar_peak_refine_cache.npz] [--json out.json]

``--input-size WxH`` letterboxes every image into that fixed network input (as the runtime's
``--input-size``) instead of the keep-ratio fit. The cache is keyed by the checkpoint's bytes
(sha256), the split and the input size: re-running with another one recomputes it. Prints a
Markdown table.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np

_REPO = Path(__file__).resolve().parents[1]
if (_REPO / "oscar_edge" / "__init__.py").is_file():
    sys.path.insert(0, str(_REPO))

from oscar_edge import postprocess as pp  # noqa: E402
from oscar_edge.hashing import file_sha256  # noqa: E402
from oscar_edge.metrics import evaluate_detections, noco_key, noco_map  # noqa: E402
from oscar_edge.preprocess import Letterbox, prepare, read_grey  # noqa: E402
from oscar_edge.sizes import argparse_type, size_label  # noqa: E402

KEYS = ["mNoCoAP"] + [noco_key(t / 10) for t in range(1, 10)] + ["AP50"]


def run_model(checkpoint, samples, threads: int, input_size=None) -> Dict[str, object]:
    """Kept boxes (network pixels) and scores per image, with each image's letterbox."""
    import torch

    from oscar_edge.backends.torch_backend import TorchBackend
    from oscar_edge.checkpoint import load_model

    torch.set_num_threads(threads)
    model, _ = load_model(checkpoint)
    backend = TorchBackend(model)
    boxes, scores, lb = [], [], []
    t0 = time.time()
    for i, s in enumerate(samples):
        grey = read_grey(s.image_path)
        x, box = prepare(grey, input_size=input_size)
        outs = backend(x[None])
        b, sc = pp.postprocess_image(tuple(o[0] for o in outs), clamp_hw=box.resized)
        boxes.append(b)
        scores.append(sc)
        lb.append([*box.original, *box.resized, *box.padded, box.scale_x, box.scale_y])
        if (i + 1) % 32 == 0:
            print(f"  {i + 1}/{len(samples)} images, {time.time() - t0:.0f} s", file=sys.stderr)
    return {"boxes": boxes, "scores": scores, "letterbox": np.array(lb, dtype=np.float64)}


def save_cache(path: Path, key: str, data) -> None:
    counts = np.array([len(b) for b in data["boxes"]], dtype=np.int64)
    np.savez(path, key=np.array(key), counts=counts,
             boxes=np.concatenate([b.reshape(-1, 4) for b in data["boxes"]]
                                  + [np.zeros((0, 4), np.float32)]),
             scores=np.concatenate(data["scores"] + [np.zeros(0, np.float32)]),
             letterbox=data["letterbox"])


def load_cache(path: Path, key: str):
    if not path.is_file():
        return None
    with np.load(path) as z:
        if str(z["key"]) != key:
            return None
        splits = np.cumsum(z["counts"])[:-1]
        return {"boxes": np.split(z["boxes"].astype(np.float32), splits),
                "scores": np.split(z["scores"].astype(np.float32), splits),
                "letterbox": z["letterbox"]}


def letterbox_of(row) -> Letterbox:
    oh, ow, rh, rw, ph, pw, sx, sy = row
    return Letterbox(original=(int(oh), int(ow)), resized=(int(rh), int(rw)),
                     padded=(int(ph), int(pw)), scale_x=float(sx), scale_y=float(sy))


# ------------------------------------------------------------------ variants outside the rule
def refine_general(boxes, img, clamp_hw, scale_yx, ties: str = "mid", window: str = "inside",
                   centroid: bool = True) -> np.ndarray:
    """postprocess.peak_refine with other choices for two of its rules (float64 arithmetic,
    for the measurement only): ``ties`` "mid" (the rule: midpoint of the tied maxima) or
    "first" (first maximum in row-major order); ``window`` "inside" (the rule: pixel centres
    inside the box) or "overlap" (pixels whose extent meets the box: floor(v + o + 0.5))."""
    b = np.asarray(boxes, np.float32).reshape(-1, 4)
    out = b.astype(np.float64).copy()
    h, w = img.shape
    n = (max(1, min(int(np.floor(clamp_hw[0])), h)), max(1, min(int(np.floor(clamp_hw[1])), w)))
    o = (0.5 * (float(np.float32(scale_yx[0])) - 1), 0.5 * (float(np.float32(scale_yx[1])) - 1))
    for k in range(len(b)):
        rng = []
        for ax, (a1, a2) in enumerate(((b[k, 1], b[k, 3]), (b[k, 0], b[k, 2]))):
            p1, p2 = float(a1) + o[ax], float(a2) + o[ax]
            if window == "inside":
                lo, hi = np.ceil(p1), np.floor(p2)
                if lo > hi:
                    lo = hi = np.floor((p1 + p2) * 0.5 + 0.5)
            else:
                lo, hi = np.floor(p1 + 0.5), np.floor(p2 + 0.5)
            lo, hi = (int(min(max(v, 0), n[ax] - 1)) for v in (lo, hi))
            rng.append((lo, max(hi, lo)))
        (y0, y1), (x0, x1) = rng
        win = img[y0:y1 + 1, x0:x1 + 1]
        if ties == "first":
            a = int(np.argmax(win))
            ty0 = ty1 = y0 + a // win.shape[1]
            tx0 = tx1 = x0 + a % win.shape[1]
        else:
            rows, cols = np.nonzero(win == win.max())
            ty0, ty1, tx0, tx1 = y0 + rows.min(), y0 + rows.max(), x0 + cols.min(), x0 + cols.max()
        py, px = (ty0 + ty1) / 2.0, (tx0 + tx1) / 2.0
        if centroid:
            iy, ix = (ty0 + ty1) >> 1, (tx0 + tx1) >> 1
            py, px = float(iy), float(ix)
            r0, r1 = max(iy - 1, 0), min(iy + 1, n[0] - 1)
            c0, c1 = max(ix - 1, 0), min(ix + 1, n[1] - 1)
            nb = img[r0:r1 + 1, c0:c1 + 1].astype(np.float64)
            wt = nb - nb.min()
            if wt.sum() > 0:
                yy, xx = np.mgrid[r0:r1 + 1, c0:c1 + 1]
                py, px = (wt * yy).sum() / wt.sum(), (wt * xx).sum() / wt.sum()
        for axis, p, oo, clamp in ((0, px, o[1], float(clamp_hw[1])),
                                   (1, py, o[0], float(clamp_hw[0]))):
            c = min(max(p - oo, 0.0), clamp)
            half = max(min(float(b[k, axis + 2] - b[k, axis]) * 0.5, c, clamp - c), 0.0)
            out[k, axis], out[k, axis + 2] = c - half, c + half
    return out.astype(np.float32)


def main(argv=None) -> int:
    from oscar_edge.checkpoint import SHIPPED_WEIGHTS
    from oscar_edge.data import default_data_root
    from oscar_edge.data.annotations import load_samples

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", help="default: the shipped model")
    ap.add_argument("--data", default=default_data_root())
    ap.add_argument("--split", default="val_full")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    ap.add_argument("--input-size", default=None, metavar="WxH",
                    type=argparse_type(name="--input-size", multiple=32, order="hw_out"),
                    help="a fixed letterbox input (default: the keep-ratio fit)")
    ap.add_argument("--cache", default="/tmp/oscar_peak_refine_cache.npz")
    ap.add_argument("--json", help="write the table as JSON here")
    args = ap.parse_args(argv)

    hw = args.input_size  # (height, width) or None
    ckpt = Path(args.checkpoint) if args.checkpoint else SHIPPED_WEIGHTS
    key = f"{file_sha256(ckpt)}:{args.split}:{Path(args.data).resolve()}:{hw}"
    samples = load_samples(args.data, args.split)
    cache = Path(args.cache)
    data = load_cache(cache, key)
    if data is None:
        print(f"running {ckpt} on {args.split} ({len(samples)} images) ...", file=sys.stderr)
        data = run_model(args.checkpoint, samples, args.threads, hw)
        save_cache(cache, key, data)
    else:
        print(f"using cached detections {cache}", file=sys.stderr)

    greys = [read_grey(s.image_path) for s in samples]
    maps = [noco_map(g, s.boxes) for g, s in zip(greys, samples)]
    lbs = [letterbox_of(r) for r in data["letterbox"]]
    nets = [prepare(g, input_size=hw)[0][0] for g in greys]
    scales = np.array([[lb.scale_y, lb.scale_x] for lb in lbs])
    nets_ok = all(n.shape == tuple(lb.padded) for n, lb in zip(nets, lbs))
    assert nets_ok, "prepare() gives other shapes than the cached run"

    def dets_for(fn):
        return [(lb.to_original(fn(b, net, lb)), s) for b, s, net, lb in
                zip(data["boxes"], data["scores"], nets, lbs)]

    def ref(scale, centroid):
        return lambda b, net, lb: pp.peak_refine(
            b, net, lb.resized, (lb.scale_y, lb.scale_x) if scale is None else scale, centroid)

    def gen(**kw):
        return lambda b, net, lb: refine_general(b, net, lb.resized, (lb.scale_y, lb.scale_x),
                                                 **kw)

    variants = {
        "off (no refinement)": lambda b, net, lb: b,
        "(a) centre = j (scale 1)": ref((1.0, 1.0), False),
        "(b) centre = j + 0.5 (scale 0)": ref((0.0, 0.0), False),
        "(c) exact: centre = j + 0.5 - 0.5 s": ref(None, False),
        "(a) + 3x3 centroid": ref((1.0, 1.0), True),
        "(c) + 3x3 centroid (shipped default)": ref(None, True),
        "(c) + centroid, ties = first maximum": gen(ties="first"),
        "(c) + centroid, window = pixels meeting the box": gen(window="overlap"),
        "(c), ties = first maximum, no centroid": gen(ties="first", centroid=False),
    }
    # The general function with the rule's choices is the reference (up to float64 rounding).
    for b, net, lb in list(zip(data["boxes"], nets, lbs))[:64]:
        want = pp.peak_refine(b, net, lb.resized, (lb.scale_y, lb.scale_x))
        got = refine_general(b, net, lb.resized, (lb.scale_y, lb.scale_x))
        assert np.allclose(want, got, atol=1e-3), "refine_general disagrees with peak_refine"

    rows: List[Tuple[str, Dict[str, float]]] = []
    for name, fn in variants.items():
        m = evaluate_detections(dets_for(fn), samples, noco_maps=maps)
        rows.append((name, m))
    # Upper bound: the peak searched in the original image (CPU path only), same rule, s = 1.
    for label, cen in (("original resolution + centroid (upper bound, CPU only)", True),
                       ("original resolution, no centroid (upper bound, CPU only)", False)):
        orig = [(pp.peak_refine(lb.to_original(b), g.astype(np.float32), lb.original,
                                (1.0, 1.0), cen), s)
                for b, s, lb, g in zip(data["boxes"], data["scores"], lbs, greys)]
        rows.append((label, evaluate_detections(orig, samples, noco_maps=maps)))
    # Sanity rows of the spec: GT boxes, and GT boxes centred on the brightest pixel; and the
    # GT boxes scaled into the network frame and refined there by the shipped rule (what the
    # rule gives with perfect boxes: the localisation limit of the network-input resolution).
    gt = [(s.boxes.astype(np.float32).reshape(-1, 4), np.ones(len(s.boxes), np.float32))
          for s in samples]
    rows.append(("GT boxes (spec: 0.696)", evaluate_detections(gt, samples, noco_maps=maps)))
    gtp = [(refine_general(b, g.astype(np.float32), g.shape, (1.0, 1.0), ties="first",
                           window="inside", centroid=False), s) for (b, s), g in zip(gt, greys)]
    rows.append(("GT boxes, centre = brightest pixel, original (spec: 0.987)",
                 evaluate_detections(gtp, samples, noco_maps=maps)))
    for label, cen in (("GT boxes in the network frame, (c) + centroid", True),
                       ("GT boxes in the network frame, (c) no centroid", False),
                       ("GT boxes in the network frame, (a) no centroid", None)):
        dets = []
        for (b, s), net, lb in zip(gt, nets, lbs):
            bn = b.copy()
            bn[:, 0::2] *= np.float32(lb.scale_x)
            bn[:, 1::2] *= np.float32(lb.scale_y)
            sc_ = (1.0, 1.0) if cen is None else (lb.scale_y, lb.scale_x)
            dets.append((lb.to_original(pp.peak_refine(bn, net, lb.resized, sc_, bool(cen))), s))
        rows.append((label, evaluate_detections(dets, samples, noco_maps=maps)))

    sc = scales.reshape(-1)
    size = f"input {size_label(hw)} fixed" if hw else "keep-ratio fit"
    print(f"### Peak refinement on {args.split}, {size}: {ckpt.name} (sha256 {key[:12]}), "
          f"{len(samples)} images, {sum(len(b) for b in data['boxes'])} detections, "
          f"letterbox scale {sc.min():.3f} .. {sc.max():.3f}\n")
    print("| variant | " + " | ".join(KEYS) + " |")
    print("|---|" + "---:|" * len(KEYS))
    for name, m in rows:
        print(f"| {name} | " + " | ".join(f"{m[k]:.4f}" for k in KEYS) + " |")
    if args.json:
        Path(args.json).write_text(json.dumps(
            {"checkpoint": str(ckpt), "split": args.split,
             "input_size": size_label(hw) if hw else None,
             "rows": [{"variant": n, **{k: m[k] for k in KEYS}} for n, m in rows]}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
