"""SIRST-V2 data: split lists, VOC annotations (numpy) and training datasets (torch)."""
from __future__ import annotations

import os
from pathlib import Path


def default_data_root() -> str:
    """Where SIRST-V2 is looked for when ``--data`` is not given.

    ``$OSCAR_DATA``, else ``../shared/data/sirst-v2`` from the current folder (a clone of
    this repository with the shared folder beside it), else the same path beside the source
    tree. The first that exists wins; otherwise the first candidate is returned and the tool
    reports it missing.
    """
    candidates = []
    if os.environ.get("OSCAR_DATA"):
        return os.environ["OSCAR_DATA"]
    candidates.append(Path.cwd().parent / "shared" / "data" / "sirst-v2")
    candidates.append(Path(__file__).resolve().parents[3] / "shared" / "data" / "sirst-v2")
    for c in candidates:
        if (c / "splits").is_dir():
            return str(c)
    return str(candidates[0])
