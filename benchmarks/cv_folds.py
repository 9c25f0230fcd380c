#!/usr/bin/env python
"""Write a SIRST-V2 root for two-fold cross-validation of train_full, without copying images.

    python benchmarks/cv_folds.py --data ../shared/data/sirst-v2 --out cv-data [--seed 0]

The new root links ``mixed/`` and ``annotations/`` to ``--data`` (symbolic links, so no image is
copied) and holds its own ``splits/``: the original split files, plus

| split | images |
|---|---|
| `cv_halfA`, `cv_halfB` | train_full cut in two halves, each with half of its images with targets and half of its background images (a seeded shuffle of the names) |
| `cv_train_notA`, `cv_train_notB` | val_full plus the other half: the training split of the fold that holds the named half out |

Train the recipe once per fold (``oscar-edge train --data cv-data --train-split cv_train_notA
...``), then measure every held-out image at once with ``benchmarks/input_size_study.py
--model recipe=shipped.onnx@val_full --model recipe=notA.onnx@cv_halfA --model
recipe=notB.onnx@cv_halfB`` (the shipped model was trained on train_full and never saw
val_full). The halves were training images of every recipe compared on val_full, never the
images it was judged on, so the two folds are free of that choice (README, "Deploy-first v2").
"""
from __future__ import annotations

import argparse
import os
import random
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence

_REPO = Path(__file__).resolve().parents[1]
if (_REPO / "oscar_edge" / "__init__.py").is_file():
    sys.path.insert(0, str(_REPO))

from oscar_edge.errors import UserError, run_cli  # noqa: E402

LINKED = ("mixed", "annotations")


def halves(samples: Sequence, seed: int) -> Dict[str, List[str]]:
    """Two halves of ``samples``' names: the images with targets and the background images are
    each sorted by name, shuffled with one ``random.Random(seed)`` (targets first) and dealt
    alternately, so each half gets half of both kinds."""
    rng = random.Random(seed)
    out: Dict[str, List[str]] = {"A": [], "B": []}
    for kind in (True, False):
        names = sorted(s.name for s in samples if (len(s.boxes) > 0) == kind)
        rng.shuffle(names)
        out["A"] += names[0::2]
        out["B"] += names[1::2]
    return {k: sorted(v) for k, v in out.items()}


def write_root(data: str, out: str, seed: int = 0) -> Dict[str, List[str]]:
    """Create ``out`` (it must not exist) as described in the module text; returns the written
    splits (name -> image names)."""
    from oscar_edge.data.annotations import SPLIT_DIR, load_samples, read_split

    src = Path(data).resolve()
    dst = Path(out)
    if dst.exists():
        raise UserError(f"--out exists, not overwritten: {dst}")
    if not dst.resolve().parent.is_dir():
        raise UserError(f"output folder does not exist: {dst.resolve().parent}")
    for name in LINKED:
        if not (src / name).is_dir():
            raise UserError(f"not a SIRST-V2 root (no {name}/): {src}")
    try:
        train = load_samples(str(src), "train_full")
        val = read_split(str(src), "val_full")
    except FileNotFoundError as exc:
        raise UserError(str(exc)) from None
    half = halves(train, seed)
    splits = {"cv_halfA": half["A"], "cv_halfB": half["B"],
              "cv_train_notA": val + half["B"], "cv_train_notB": val + half["A"]}
    (dst / SPLIT_DIR).mkdir(parents=True)
    for name in LINKED:
        os.symlink(src / name, dst / name, target_is_directory=True)
    for f in sorted((src / SPLIT_DIR).glob("*.txt")):
        (dst / SPLIT_DIR / f.name).write_text(f.read_text())
    for name, names in splits.items():
        (dst / SPLIT_DIR / f"{name}.txt").write_text("\n".join(names) + "\n")
    return splits


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="cv_folds.py", description=__doc__.splitlines()[0])
    p.add_argument("--data", default=None, help="SIRST-V2 root (default: as oscar-edge train)")
    p.add_argument("--out", required=True, help="the new root (must not exist)")
    p.add_argument("--seed", type=int, default=0, help="seed of the halves (default 0)")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    return run_cli(lambda: _main(args), prog="cv_folds")


def _main(args: argparse.Namespace) -> int:
    from oscar_edge.data import default_data_root

    splits = write_root(args.data or default_data_root(), args.out, args.seed)
    for name, names in splits.items():
        print(f"{name}: {len(names)} images")
    return 0


if __name__ == "__main__":
    sys.exit(main())
