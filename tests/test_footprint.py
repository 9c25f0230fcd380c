"""Deployment footprint: the runtime path imports neither torch nor the export tools."""
import subprocess
import sys
from pathlib import Path

import pytest

RUNTIME_MODULES = [
    "oscar_edge.preprocess", "oscar_edge.postprocess", "oscar_edge.pipeline",
    "oscar_edge.metrics", "oscar_edge.data", "oscar_edge.data.annotations",
    "oscar_edge.errors", "oscar_edge.presets", "oscar_edge.cli",
    # the field runtime (oscar-edge run): numpy, OpenCV, OpenVINO / ONNX Runtime (+ TensorRT on a
    # Jetson)
    "oscar_edge.run", "oscar_edge.runtime", "oscar_edge.latency", "oscar_edge.native",
    "oscar_edge.track",
    "oscar_edge.io", "oscar_edge.io.sources", "oscar_edge.io.synthetic", "oscar_edge.io.capture",
    "oscar_edge.io.outputs", "oscar_edge.io.render", "oscar_edge.backends",
    "oscar_edge.backends.base", "oscar_edge.backends.factory", "oscar_edge.backends.ort_backend",
    "oscar_edge.backends.trt_backend", "oscar_edge.backends.openvino_backend",
    "oscar_edge.backends.onnx_meta", "oscar_edge.sizes",
    # many cameras: the Triton client backend and what runs inside the server
    "oscar_edge.backends.triton_backend", "oscar_edge.triton", "oscar_edge.triton.python_model",
    "oscar_edge.triton.server", "oscar_edge.triton.repository",
]
FORBIDDEN = ["torch", "onnx", "onnxsim", "modelopt", "oscar_edge.export"]


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
