"""``oscar-edge info``: parameters and GFLOPs of every preset (a Markdown table).

    python -m oscar_edge.info [--sizes 512x512,640x512]

GFLOPs = multiply-accumulates of the convolutions x 1e-9 (the MMCV convention of the paper).
"""
from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence

from .errors import UserError, run_cli
from .sizes import parse_size


def _sizes(text: str):
    """'640x512,512x512' (width x height, multiples of 32) -> [(512, 640), (512, 512)]."""
    try:
        return [parse_size(part, order="hw_out", multiple=32, name="--sizes")
                for part in text.split(",")]
    except ValueError as exc:
        raise UserError(str(exc)) from None


def table(sizes) -> str:
    """Markdown table: preset, params, GFLOPs at each (height, width)."""
    from .models.complexity import complexity_table
    from .presets import PRESETS

    rows = complexity_table(sizes)
    head = ["preset", "params (M)"] + [f"GFLOPs @ {w}x{h}" for h, w in sizes] + ["notes"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, row in rows.items():
        cells = [f"`{name}`", f"{row['params_M']:.2f}"]
        cells += [f"{row[f'gflops_{w}x{h}']:.2f}" for h, w in sizes]
        cells.append(PRESETS[name].notes)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="oscar-edge info", description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="512x512,640x512", help="WxH list (default %(default)s)")
    args = p.parse_args(argv)
    return run_cli(lambda: print(table(_sizes(args.sizes))) or 0)


if __name__ == "__main__":
    sys.exit(main())
