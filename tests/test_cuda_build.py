"""The CUDA kernels compile with nvcc for Orin (sm_87) and a desktop GPU (sm_86), warnings as
errors, and the plugin sources compile against the IPluginV3 API (stub headers here, real ones
with -DTENSORRT_ROOT). Nothing here runs the kernels: this machine has no GPU."""
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(
    shutil.which("nvcc") is None or shutil.which("cmake") is None,
    reason="nvcc and cmake are needed to compile the CUDA kernels")


def test_cuda_kernels_and_plugins_compile_with_werror(tmp_path):
    build = tmp_path / "build"
    cfg = subprocess.run(
        ["cmake", "-S", str(REPO / "cpp_plugins"), "-B", str(build), "-DOSCAR_BUILD_CUDA=ON",
         "-DOSCAR_TRT_API_CHECK=ON", "-DCMAKE_EXPORT_COMPILE_COMMANDS=ON"],
        capture_output=True, text=True)
    assert cfg.returncode == 0, cfg.stdout + cfg.stderr
    assert "87-real;86" in cfg.stdout
    res = subprocess.run(["cmake", "--build", str(build), "-j2"], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-4000:]
    assert (build / "liboscar_cuda_kernels.a").is_file()
    commands = (build / "compile_commands.json").read_text()
    assert "--Werror=all-warnings" in commands and "sm_87" in commands
