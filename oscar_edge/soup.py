"""Uniform weight average ("model soup") of checkpoints fine-tuned from the same weights.

    oscar-edge soup a.pt b.pt [c.pt ...] --out soup.pt

Every floating-point tensor of the state dicts (weights and BatchNorm running statistics) is
the mean of the inputs; integer buffers (BatchNorm's batch counters) are the first input's.
This is meaningful only for checkpoints that share a starting point, e.g. fine-tunes of one
model with different scale ranges (``oscar-edge train --init``): independently trained seeds
do not average into a working model. The inputs must have the same preset; ``--out`` must not
exist (nothing already written is replaced). The output records its sources and their SHA-256
in its metadata. Loading uses ``torch.load(weights_only=True)`` (``oscar_edge.checkpoint``).
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from .errors import UserError, run_cli
from .hashing import file_sha256


def average(paths: Sequence[str | Path]) -> Dict[str, Any]:
    """The checkpoint dict whose floating-point tensors are the mean over ``paths``."""
    from .checkpoint import read

    if len(paths) < 2:
        raise UserError("soup: give at least two checkpoints to average")
    objs = [read(p) for p in paths]
    preset = objs[0]["preset"]
    for p, o in zip(paths[1:], objs[1:]):
        if o["preset"] != preset:
            raise UserError(f"soup: {p} is preset {o['preset']}, {paths[0]} is {preset}")
        if set(o["state_dict"]) != set(objs[0]["state_dict"]):
            raise UserError(f"soup: {p} has other tensors than {paths[0]}")
    state = {}
    for k, first in objs[0]["state_dict"].items():
        tensors = [o["state_dict"][k] for o in objs]
        if any(t.shape != first.shape for t in tensors):
            raise UserError(f"soup: tensor {k} differs in shape between the checkpoints")
        if first.is_floating_point():
            state[k] = sum(t.float() for t in tensors) / len(tensors)
        else:
            state[k] = first.clone()
    meta = {"note": f"uniform weight average of {len(paths)} checkpoints (oscar-edge soup)",
            "soup_of": [{"path": str(p), "sha256": file_sha256(p)} for p in paths]}
    return {"preset": preset, "state_dict": state, "meta": meta}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="oscar-edge soup", description=__doc__.split("\n\n")[0])
    p.add_argument("checkpoints", nargs="+", metavar="CHECKPOINT",
                   help="two or more .pt files of one preset, fine-tuned from the same weights")
    p.add_argument("--out", required=True, help="the averaged checkpoint (must not exist)")
    return p


def _main(args: argparse.Namespace) -> int:
    from .checkpoint import save

    out = Path(args.out)
    if out.exists():
        raise UserError(f"soup: {out} exists; choose another --out (nothing is replaced)")
    soup = average(args.checkpoints)
    save(soup, out)
    print(f"wrote {out}: {soup['preset']}, mean of {len(args.checkpoints)} checkpoints")
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    args = _parser().parse_args(argv)
    return run_cli(lambda: _main(args), prog="oscar-edge soup")


if __name__ == "__main__":
    raise SystemExit(main())
