"""Shared test helpers: where the SIRST-V2 data lives."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import pytest


@pytest.fixture(scope="session", autouse=True)
def openvino_cache_in_tmp(tmp_path_factory):
    """OpenVINO's model cache of every test (and the tools they start) in a temporary folder,
    never the user's ~/.cache."""
    if "OSCAR_EDGE_OV_CACHE" not in os.environ:
        os.environ["OSCAR_EDGE_OV_CACHE"] = str(tmp_path_factory.mktemp("ov-cache"))
    yield


def find_sirst_root() -> Optional[Path]:
    """SIRST-V2 root from env ``OSCAR_DATA``, else ``../shared/data/sirst-v2`` beside the
    repository; None when it has no ``splits`` folder."""
    default = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "sirst-v2"
    root = Path(os.environ.get("OSCAR_DATA", str(default)))
    return root if (root / "splits").is_dir() else None


@pytest.fixture(scope="session")
def sirst_root() -> Path:
    """Path of the SIRST-V2 data; skips the test when it is not there."""
    root = find_sirst_root()
    if root is None:
        pytest.skip("SIRST-V2 data not found: set OSCAR_DATA or place it at "
                    "../shared/data/sirst-v2 beside the repository")
    return root
