"""oscar-edge packaging.

Runtime dependencies are what a Jetson needs (numpy, OpenCV); training needs torch
(`pip install .[train]`), export needs the ONNX tool chain (`pip install .[export]`).
torch is pinned to the 2.13 series so that pip takes the CPU build where one lies on disk.

The package carries one native part: the CPU decode + NMS library
``oscar_edge/liboscar_postprocess.so`` (plain C ABI, loaded with ctypes by
``oscar_edge.native``; no Python C-API), compiled from ``cpp_plugins/cpu`` by every
``pip install .`` / ``pip install -e .`` / ``python setup.py build_ext --inplace``. It needs a
C++17 compiler (g++ or clang++); set ``OSCAR_EDGE_NO_NATIVE=1`` to install without it (the
package then uses the numpy reference).
"""
import os
import sys

from setuptools import Extension, find_packages, setup
from setuptools.command.build_ext import build_ext

NATIVE_NAME = "liboscar_postprocess"
NATIVE_SUFFIX = ".dll" if sys.platform == "win32" else ".so"


class BuildNative(build_ext):
    """build_ext for a ctypes library: plain file name, and a clear error without a compiler."""

    def get_ext_filename(self, fullname: str) -> str:
        if fullname.split(".")[-1] == NATIVE_NAME:
            return os.path.join(*fullname.split(".")) + NATIVE_SUFFIX
        return super().get_ext_filename(fullname)

    def get_export_symbols(self, ext):  # no PyInit_ function: it is not a Python module
        return ext.export_symbols

    def build_extension(self, ext) -> None:
        try:
            super().build_extension(ext)
        except Exception as exc:  # CompileError, LinkError, missing executable (OSError)
            raise SystemExit(
                f"oscar-edge: could not build its native CPU library {NATIVE_NAME}{NATIVE_SUFFIX} "
                f"from cpp_plugins/cpu/oscar_postprocess_cpu.cpp ({type(exc).__name__}: {exc}). "
                "It needs a C++17 compiler: install one (Debian/Ubuntu/JetPack: "
                "`apt-get install g++`) or point CC/CXX at it, or set OSCAR_EDGE_NO_NATIVE=1 to "
                "install without the library (oscar_edge then uses the numpy post-processing)."
            ) from None


def native_extensions() -> list:
    if os.environ.get("OSCAR_EDGE_NO_NATIVE", "") not in ("", "0"):
        return []
    flags = [] if sys.platform == "win32" else [
        "-std=c++17", "-O3", "-Wall", "-Wextra",
        "-ffp-contract=off", "-fno-fast-math",  # the shared float32 arithmetic (oscar_math.h)
        "-fvisibility=hidden",
    ]
    return [Extension(
        f"oscar_edge.{NATIVE_NAME}",
        sources=["cpp_plugins/cpu/oscar_postprocess_cpu.cpp"],
        depends=["cpp_plugins/cpu/oscar_postprocess.h", "cpp_plugins/common/oscar_math.h"],
        extra_compile_args=flags,
        language="c++",
    )]


setup(
    name="oscar-edge",
    version="0.1.0",
    description="OSCAR infrared small-target detection from PyTorch to TensorRT on Jetson",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.9",
    packages=find_packages(include=["oscar_edge", "oscar_edge.*"]),
    package_data={"oscar_edge": ["weights/*.pt", "weights/*.onnx", "weights/*.json"]},
    install_requires=[
        "numpy>=1.24,<3",
        "opencv-python-headless>=4.8,<6",
        "tqdm>=4.60,<5",
    ],
    extras_require={
        # The CPU runtime's default backend. Not a base requirement: a Jetson runs TensorRT
        # (JetPack's python3-libnvinfer + cuda-python) and may carry onnxruntime-gpu, which
        # must never sit beside onnxruntime.
        "ort": ["onnxruntime>=1.20,<2"],
        # The fastest CPU path on x86 (README, "Backends and precision"): OpenVINO runs the
        # INT8 Q/DQ graph with integer kernels. Not a base requirement: 180 MB installed, and
        # a Jetson runs TensorRT.
        "openvino": ["openvino~=2026.4"],
        "jetson": ["cuda-python>=12.6,<14"],
        "train": ["torch==2.13.*", "matplotlib>=3.7,<4"],
        "test": ["pytest>=7,<10", "hypothesis>=6.80,<7"],
        # The tracking benchmarks only (benchmarks/tracker_choice.py, tracking_*.py): the
        # metrics library and the tracker library they compare against. `--track` itself
        # needs neither (oscar_edge/track.py: numpy + OpenCV).
        "track-bench": ["motrics~=0.3.0", "norfair-enough~=2.4.3"],
        # Many cameras, one Triton server (README, "Many cameras"). The client side: numpy 2
        # is fine; 2.60-2.69 because 2.70+ caps ml-dtypes below what the export extra needs.
        "triton-client": ["tritonclient[grpc,http]>=2.60,<2.70"],
        # The server side, in its own environment: nvidia-pytriton bundles tritonserver 2.51
        # and the Python backend, whose stub needs numpy < 2 (pytriton pins it); the model
        # runs ONNX Runtime there (add [openvino] for OpenVINO).
        "serve": ["nvidia-pytriton==0.7.0", "onnxruntime>=1.20,<2",
                  "tritonclient[grpc,http]>=2.60,<2.70"],
        # ONNX export, INT8 PTQ / FP16 AutoCast and ONNX Runtime (CPU) checks. One ONNX Runtime
        # only: nvidia-modelopt without its [onnx] extra (that extra pulls onnxruntime-gpu and
        # cupy) plus what modelopt.onnx.quantization / .autocast import; versions as its extra.
        "export": [
            "torch==2.13.*", "nvidia-modelopt~=0.47.0", "onnx~=1.21.0", "onnxsim~=0.8.1",
            "onnxruntime~=1.24.4", "onnx-graphsurgeon~=0.6.1", "onnxslim~=0.1.98",
            "onnxscript~=0.7.2", "polygraphy~=0.53.6", "lief~=1.0.0", "ml_dtypes~=0.6.0",
            "onnxruntime-extensions~=0.15.2",
        ],
    },
    entry_points={"console_scripts": ["oscar-edge=oscar_edge.cli:main"]},
    ext_modules=native_extensions(),
    cmdclass={"build_ext": BuildNative},
)
