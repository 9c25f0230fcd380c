"""The one file hash of the package: SHA-256 of a file's bytes, read in 1 MiB blocks.

Standard library only, so the runtime, the export tools and the benchmarks can all use it.
"""
from __future__ import annotations

import hashlib
import os


def file_sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of the file at ``path``."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
