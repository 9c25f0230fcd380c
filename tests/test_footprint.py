"""Deployment footprint: the runtime path imports neither torch nor the export tools."""
import subprocess
import sys
from pathlib import Path

import pytest

RUNTIME_MODULES = [
    "oscar_edge.preprocess", "oscar_edge.postprocess", "oscar_edge.pipeline",
    "oscar_edge.metrics", "oscar_edge.data", "oscar_edge.data.annotations",
    "oscar_edge.errors", "oscar_edge.presets", "oscar_edge.cli",
]
FORBIDDEN = ["torch", "onnx", "onnxsim", "modelopt"]


@pytest.mark.parametrize("module", RUNTIME_MODULES)
def test_runtime_module_imports_no_torch(module):
    code = (f"import sys, importlib; importlib.import_module({module!r}); "
            f"bad = [m for m in {FORBIDDEN!r} if m in sys.modules]; "
            "assert not bad, f'imported {bad}'")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=str(Path(__file__).resolve().parents[1]))
    assert proc.returncode == 0, proc.stderr


def test_the_check_itself_catches_torch():
    code = "import sys, oscar_edge.models; assert 'torch' not in sys.modules"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=str(Path(__file__).resolve().parents[1]))
    assert proc.returncode != 0
