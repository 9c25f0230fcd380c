"""``oscar-edge``: one entry point with a subcommand per tool.

    oscar-edge info | train | evaluate | soup | run | export-triton | serve [options]

Each tool also runs as ``python -m oscar_edge.<tool>``.
"""
from __future__ import annotations

import importlib
import sys
from typing import Optional, Sequence

TOOLS = {
    "info": "parameters and GFLOPs of every preset",
    "train": "train a preset on SIRST-V2",
    "evaluate": "mNoCoAP / AP50 / Pd-Fa of a checkpoint on a split",
    "soup": "average checkpoints fine-tuned from the same weights (a model soup)",
    "run": "live detection on a camera, stream, video, images or synthetic:// (latency report)",
    "export-triton": "write a Triton Inference Server model repository (CPU or GPU)",
    "serve": "serve a CPU model repository with the Triton server of nvidia-pytriton",
}
MODULES = {"export-triton": "triton.repository", "serve": "triton.server"}


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: oscar-edge {" + ",".join(TOOLS) + "} [options]\n")
        for name, text in TOOLS.items():
            print(f"  {name:<14} {text}")
        print("\n'oscar-edge TOOL --help' describes a tool.")
        return 0 if argv else 2
    if argv[0] in ("-V", "--version"):
        from . import __version__
        print(f"oscar-edge {__version__}")
        return 0
    tool = argv[0]
    if tool not in TOOLS:
        print(f"oscar-edge: error: unknown command {tool!r}; choose from {', '.join(TOOLS)}",
              file=sys.stderr)
        return 2
    return importlib.import_module(f"oscar_edge.{MODULES.get(tool, tool)}").main(argv[1:])


if __name__ == "__main__":
    sys.exit(main())
