#!/usr/bin/env python
"""Accuracy against the network input size: fixed letterbox sizes and the keep-ratio fit, with
peak refinement on and off, for one or more models, on a SIRST-V2 split.

    python benchmarks/input_size_study.py --model v1=oscar_edge/weights/oscar-edge.onnx \
        --model v2=model-v2.onnx --sizes 640x512,fit,1280x1024 --split val_full --threads 2 \
        [--json study.json]

Each model runs on ONNX Runtime's CPU provider (``--backend openvino`` for OpenVINO), once per
image and size; both peak refinement settings post-process the same raw outputs, with the same
decode + NMS and metrics as ``oscar-edge evaluate --input-size WxH`` (a fixed letterbox, as the
runtime's ``--input-size``). Prints a Markdown table: mNoCoAP, AP50, Pd / false alarms per
image at score 0.1 and the best Pd with at most 0.05 false alarms per image, and per model the
spread of mNoCoAP across the sizes.

The spread of a few hundred targets is itself noisy. ``--bootstrap B`` (default 1000; 0 turns it
off) redraws the split's images B times with replacement and scores every size of a model on
the same draws (a paired bootstrap): it prints the 5-95 % interval of the spread and of each
size's difference to the best size, so a reader can tell a real loss at one size from the
noise of the split. With several models it also gives each model's mNoCoAP minus the first
model's at every size on the same draws, the fair way to compare two models on one split. All
are stated for this split; the spread's interval leans high, since the
largest minus the smallest of noisy figures is positive even when the sizes are equally good.

The "centring" column separates localisation from ranking: for each target found at score 0.1
(a detection's centre in its box), the NoCo value under the centre of the highest-scoring such
detection, averaged over the found targets (1.0: every found target hit on its intensity
centroid). The bootstrap line gives each size's centring minus the best size's over the
targets found at both, on the same draws.

For one camera, ``--native-size 640x512`` keeps only the split's images of that native size, so
``--sizes 640x512,fit`` compares the camera's native input with the keep-ratio fit on frames of
that camera's shape (README, "Deploy-first v2", the runtime's default input).

Cross-validation: ``--model NAME=ONNX@SPLIT`` scores that graph on that split instead of
``--split``, and several ``--model`` with the same NAME are the folds of one recipe: each image is
scored by the fold's graph, the detections of all folds are pooled into one set (one table row per
size, one bootstrap over the pooled images) and each fold's own mNoCoAP is printed beside it. So
a recipe trained k times, each time without one part of the data, is measured on every held-out
image at once (``benchmarks/cv_folds.py`` writes such splits). Pooling ranks the folds'
detections on one score scale, which assumes the folds' scores are alike; the per-fold lines show
how far they agree.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

_REPO = Path(__file__).resolve().parents[1]
if (_REPO / "oscar_edge" / "__init__.py").is_file():
    sys.path.insert(0, str(_REPO))

from oscar_edge.errors import UserError, run_cli  # noqa: E402
from oscar_edge.sizes import parse_size  # noqa: E402


def parse_sizes(text: str) -> List[Optional[tuple]]:
    """'640x512,fit' -> [(512, 640), None] ((height, width); None = keep-ratio fit)."""
    out: List[Optional[tuple]] = []
    for part in (p.strip() for p in str(text).split(",") if p.strip()):
        if part == "fit":
            out.append(None)
            continue
        try:
            out.append(parse_size(part, order="hw_out", multiple=32, name="--sizes"))
        except ValueError as exc:
            raise UserError(str(exc)) from None
    if not out:
        raise UserError("--sizes is empty")
    return out


def parse_model(text: str) -> tuple:
    """'NAME=path.onnx' -> (NAME, path, None); 'NAME=path.onnx@SPLIT' -> (NAME, path, SPLIT)."""
    name, sep, path = str(text).partition("=")
    if not sep or not name or not path:
        raise UserError(f"--model must look like NAME=path.onnx[@SPLIT], got {text!r}")
    split = None
    if not Path(path).is_file() and "@" in path:
        path, _, split = path.rpartition("@")
        if not split:
            raise UserError(f"--model {name}: empty split after '@' in {text!r}")
    if not Path(path).is_file():
        raise UserError(f"--model {name}: file not found: {path}")
    return name, path, split


def group_models(models: Sequence[tuple], default_split: str) -> Dict[str, List[tuple]]:
    """The ``--model`` entries by NAME, in order: NAME -> [(path, split), ...]. Several entries of
    one NAME are folds: each needs its own ``@SPLIT``, and no split twice."""
    groups: Dict[str, List[tuple]] = {}
    for name, path, split in models:
        groups.setdefault(name, []).append((path, split))
    out: Dict[str, List[tuple]] = {}
    for name, entries in groups.items():
        if len(entries) > 1:
            splits = [s for _, s in entries]
            if None in splits:
                raise UserError(f"--model {name} is given {len(entries)} times: folds of one "
                                f"model need their split, NAME=path.onnx@SPLIT")
            if len(set(splits)) != len(splits):
                raise UserError(f"--model {name}: a split is given twice ({', '.join(splits)})")
        out[name] = [(p, s or default_split) for p, s in entries]
    return out


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="input_size_study.py", description=__doc__.splitlines()[0])
    p.add_argument("--model", action="append", required=True, metavar="NAME=ONNX",
                   help="a model to study (repeat for more)")
    p.add_argument("--sizes", default="640x512,fit,1280x1024",
                   help="comma list of WxH and 'fit' (default %(default)s)")
    p.add_argument("--data", default=None, help="SIRST-V2 root")
    p.add_argument("--split", default="val_full")
    p.add_argument("--native-size", metavar="WxH", default=None,
                   help="only the images of this native size (a camera's resolution)")
    p.add_argument("--backend", choices=("onnxruntime", "openvino"), default="onnxruntime")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--json", help="write the rows as JSON here")
    p.add_argument("--bootstrap", type=int, default=1000, metavar="B",
                   help="paired image bootstrap draws for the spread's interval (0: off; "
                        "default %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="seed of the bootstrap draws")
    p.add_argument("--no-progress", action="store_true")
    return p


def bootstrap_summary(sets: Sequence, samples: Sequence, maps: Sequence, labels: Sequence[str],
                      draws, centring: Sequence,
                      full: Sequence[float]) -> Tuple[Dict[str, object], object]:
    """Paired bootstrap of one model and refinement setting over its sizes: the 5 / 50 / 95 %
    points of the spread (points), of each size's mNoCoAP minus the best size's, and of each
    size's mean centring minus the best size's over the targets found at both.

    ``centring``: per size the (values (G,), image (G,)) of ``metrics.target_centring``;
    ``full``: per size the mNoCoAP of the whole split, which names the best size.
    Returns the summary and the (B, sizes) mNoCoAP of the draws."""
    import numpy as np

    from oscar_edge.metrics import draw_counts, mnoco_ap_resampled

    boot = mnoco_ap_resampled(sets, samples, maps, draws)
    best = int(np.argmax(full))
    pct = (5, 50, 95)
    spread = 100 * (boot.max(axis=1) - boot.min(axis=1))
    diffs = {labels[i]: [float(v) for v in np.percentile(100 * (boot[:, i] - boot[:, best]), pct)]
             for i in range(len(labels)) if i != best}
    counts = draw_counts(draws, len(samples))
    ref, image = centring[best]
    centre_diffs = {}
    for i in range(len(labels)):
        both = ~np.isnan(centring[i][0]) & ~np.isnan(ref)
        if i == best or not both.any():
            continue
        w = counts[:, image[both]]  # (B, targets found at both): how often each is drawn
        total = w.sum(axis=1)
        d = (w @ (centring[i][0][both] - ref[both]))[total > 0] / total[total > 0]
        if len(d):
            centre_diffs[labels[i]] = [float(v) for v in np.percentile(d, pct)]
    return {"resamples": int(len(boot)), "best_size": labels[best],
            "spread_points_p5_p50_p95": [float(v) for v in np.percentile(spread, pct)],
            "minus_best_points_p5_p50_p95": diffs,
            "centring_minus_best_p5_p50_p95": centre_diffs}, boot


def model_differences(boots: Dict[tuple, object], names: Sequence[str],
                      labels: Sequence[str]) -> Dict[str, Dict[str, List[float]]]:
    """Each model's mNoCoAP minus the first model's, per refinement setting and size, on the
    same draws: the 5 / 50 / 95 % points in mNoCoAP points."""
    import numpy as np

    out: Dict[str, Dict[str, List[float]]] = {}
    for name in names[1:]:
        for refine in (True, False):
            a, b = boots[(name, refine)], boots[(names[0], refine)]
            out[f"{name} minus {names[0]}, refinement {'on' if refine else 'off'}"] = {
                label: [float(v) for v in np.percentile(100 * (a[:, i] - b[:, i]), (5, 50, 95))]
                for i, label in enumerate(labels)}
    return out


def native_filter(samples: Sequence, text: str) -> list:
    """The samples whose image is ``text`` = 'WxH' pixels (read from the files with the
    evaluation's own reader, so an unreadable file is its one-line error)."""
    from oscar_edge.preprocess import read_grey

    try:
        h, w = parse_size(text, order="hw_out", name="--native-size")
    except ValueError as exc:
        raise UserError(str(exc)) from None
    kept = [s for s in samples if read_grey(s.image_path).shape == (h, w)]
    if not kept:
        raise UserError(f"no image of native size {w}x{h} in the split")
    return kept


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    return run_cli(lambda: _main(args), prog="input_size_study")


def _main(args: argparse.Namespace) -> int:
    from oscar_edge.backends.factory import create_backend
    from oscar_edge.data import default_data_root
    from oscar_edge.data.annotations import load_samples
    from oscar_edge.export.accuracy import collect_detections
    import numpy as np

    from oscar_edge.metrics import (DEFAULT_SCORE_THR, bootstrap_draws, evaluate_detections,
                                    mnoco_ap, target_centring)
    from oscar_edge.preprocess import FIT_SIZE

    groups = group_models([parse_model(m) for m in args.model], args.split)
    sizes = parse_sizes(args.sizes)
    if args.bootstrap < 0:
        raise UserError("--bootstrap must be 0 (off) or a positive number of draws")
    if args.json and not Path(args.json).resolve().parent.is_dir():
        raise UserError(f"output folder does not exist: {Path(args.json).resolve().parent}")
    root = args.data or default_data_root()
    labels = ["fit %dx%d" % FIT_SIZE if hw is None else f"{hw[1]}x{hw[0]}" for hw in sizes]
    split_samples: Dict[str, list] = {}
    for entries in groups.values():
        for _, split in entries:
            if split not in split_samples:
                found = load_samples(root, split)
                split_samples[split] = native_filter(found, args.native_size) \
                    if args.native_size else found
    rows: List[Dict[str, object]] = []
    folds: List[Dict[str, object]] = []
    boot: Dict[str, Dict[str, object]] = {}
    boot_draws: Dict[tuple, object] = {}
    pooled: Dict[str, list] = {}
    for name, entries in groups.items():
        samples = [x for _, split in entries for x in split_samples[split]]
        pooled[name] = samples
        targets = sum(len(x.boxes) for x in samples)
        draws = bootstrap_draws(len(samples), args.bootstrap, args.seed) \
            if args.bootstrap and targets else None
        per_refine: Dict[bool, list] = {True: [], False: []}
        centring: Dict[bool, list] = {True: [], False: []}
        choices = {path: create_backend(args.backend, model=path, threads=args.threads)
                   for path, _ in entries}
        label = choices[entries[0][0]].label
        if len(entries) > 1:
            label += f" and {len(entries) - 1} more fold graph(s) like it"
        for hw, size in zip(sizes, labels):
            dets: Dict[bool, list] = {True: [], False: []}
            maps: list = []
            for path, split in entries:
                part, part_maps = collect_detections(choices[path].backend, split_samples[split],
                                                     not args.no_progress, (True, False), hw)
                for refine, d in zip((True, False), part):
                    dets[refine] += d
                    if len(entries) > 1:
                        folds.append({"model": name, "onnx": path, "split": split, "size": size,
                                      "peak_refine": refine,
                                      "mNoCoAP": mnoco_ap(d, split_samples[split],
                                                           part_maps)["mNoCoAP"]})
                maps += part_maps
            for refine in (True, False):
                d = dets[refine]
                per_refine[refine].append(d)
                centring[refine].append(target_centring(d, samples, maps, DEFAULT_SCORE_THR))
                found = centring[refine][-1][0][~np.isnan(centring[refine][-1][0])]
                m = evaluate_detections(d, samples, noco_maps=maps)
                rows.append({"model": name, "onnx": ",".join(p for p, _ in entries),
                             "split": ",".join(sp for _, sp in entries), "size": size,
                             "peak_refine": refine,
                             "mNoCoAP": m["mNoCoAP"], "AP50": m["AP50"], "Pd": m["Pd"],
                             "Fa_per_image": m["Fa_per_image"],
                             "Pd_at_max_fa": m["Pd_at_max_fa"], "Fa_at_max_fa": m["Fa_at_max_fa"],
                             "num_images": len(samples), "num_boxes": m["num_boxes"],
                             "found": int(len(found)),
                             "centring": float(found.mean()) if len(found) else None,
                             "backend": label})
        if draws is not None:
            for refine in (True, False):
                key = f"{name}, refinement {'on' if refine else 'off'}"
                boot[key], boot_draws[(name, refine)] = bootstrap_summary(
                    per_refine[refine], samples, maps, labels, draws, centring[refine],
                    [r["mNoCoAP"] for r in rows if r["model"] == name
                     and r["peak_refine"] == refine])
    names = list(groups)
    # models are paired on the same draws only where they score the same images
    same = [n for n in names if [x.image_path for x in pooled[n]]
            == [x.image_path for x in pooled[names[0]]]]
    between = model_differences(boot_draws, same, labels) \
        if all((n, True) in boot_draws for n in same) else {}
    native = f", native size {args.native_size} only" if args.native_size else ""
    backends = {}
    for r in rows:  # one label per model: each names its own graph file
        backends.setdefault(r["model"], r["backend"])
    where = {r["model"]: (r["split"], r["num_images"], r["num_boxes"]) for r in rows}
    if len(set(where.values())) == 1:
        split, n, t = next(iter(where.values()))
        head = f"`{split}` ({n} images{native}, {t} targets)"
    else:
        head = "; ".join(f"{m}: `{sp}` ({n} images, {t} targets)"
                         for m, (sp, n, t) in where.items()) + native
    print(f"Input size study on {head}; "
          + "; ".join(f"{name}: {label}" for name, label in backends.items()) + ":\n")
    print("| model | input | peak refinement | mNoCoAP | AP50 | Pd @ 0.1 | false alarms / image "
          "| best Pd at <= 0.05 false alarms / image | centring of found targets |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        if r["num_boxes"]:
            centre = "n/a" if r["centring"] is None else f"{r['centring']:.4f}"
            hits = (f"{r['mNoCoAP']:.4f} | {r['AP50']:.4f} | {r['Pd']:.3f} | "
                    f"{r['Fa_per_image']:.3f} | {r['Pd_at_max_fa']:.3f} at {r['Fa_at_max_fa']:.3f}"
                    f" | {centre}")
        else:  # background images only: false alarms are the one meaningful figure
            hits = f"n/a | n/a | n/a | {r['Fa_per_image']:.3f} | n/a | n/a"
        print(f"| {r['model']} | {r['size']} | {'on' if r['peak_refine'] else 'off'} | {hits} |")
    print()
    for name in names:
        if not where[name][2]:
            print(f"- {name}: no targets in these images, so no mNoCoAP spread")
            continue
        for refine in (True, False):
            vals = [r["mNoCoAP"] for r in rows if r["model"] == name and r["peak_refine"] == refine]
            key = f"{name}, refinement {'on' if refine else 'off'}"
            text = (f"- {key}: mNoCoAP spread across sizes "
                    f"{100 * (max(vals) - min(vals)):.2f} points")
            if key in boot:
                b = boot[key]
                lo, _, hi = b["spread_points_p5_p50_p95"]
                diffs = "; ".join(f"{size} {v[1]:+.2f} [{v[0]:+.2f}, {v[2]:+.2f}]"
                                  for size, v in b["minus_best_points_p5_p50_p95"].items())
                cdiffs = "; ".join(f"{size} {v[1]:+.4f} [{v[0]:+.4f}, {v[2]:+.4f}]"
                                   for size, v in b["centring_minus_best_p5_p50_p95"].items())
                text += (f" (bootstrap 5-95 %: {lo:.2f} to {hi:.2f}, {b['resamples']} draws); "
                         f"difference to the best size ({b['best_size']}), median [5 %, 95 %]: "
                         f"{diffs}; centring minus the best size's: {cdiffs or 'n/a'}")
            print(text)
            per_fold = [f for f in folds if f["model"] == name and f["peak_refine"] == refine]
            for split in dict.fromkeys(f["split"] for f in per_fold):
                v = [f["mNoCoAP"] for f in per_fold if f["split"] == split]
                print(f"  - fold `{split}`: " + ", ".join(
                    f"{f['size']} {f['mNoCoAP']:.4f}" for f in per_fold if f["split"] == split)
                    + f"; spread {100 * (max(v) - min(v)):.2f} points")
    for key, per_size in between.items():
        print(f"- {key}, paired on the same draws, median [5 %, 95 %]: "
              + "; ".join(f"{size} {v[1]:+.2f} [{v[0]:+.2f}, {v[2]:+.2f}]"
                          for size, v in per_size.items()))
    if len(same) < len(names):
        print("- not paired with " + names[0] + " (other images): "
              + ", ".join(n for n in names if n not in same))
    if args.json:
        Path(args.json).write_text(json.dumps({"split": args.split,
                                               "native_size": args.native_size, "rows": rows,
                                               "folds": folds,
                                               "bootstrap": boot, "bootstrap_seed": args.seed,
                                               "model_minus_first": between},
                                              indent=2)
                                   + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
