"""oscar-edge packaging.

Runtime dependencies are what a Jetson needs (numpy, OpenCV); training needs torch
(`pip install .[train]`), export needs the ONNX tool chain (`pip install .[export]`).
torch is pinned to the 2.13 series so that pip takes the CPU build where one lies on disk.
"""
from setuptools import find_packages, setup

setup(
    name="oscar-edge",
    version="0.1.0",
    description="OSCAR infrared small-target detection from PyTorch to TensorRT on Jetson",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.9",
    packages=find_packages(include=["oscar_edge", "oscar_edge.*"]),
    package_data={"oscar_edge": ["weights/*.pt", "weights/*.json"]},
    install_requires=[
        "numpy>=1.24,<3",
        "opencv-python-headless>=4.8,<6",
        "tqdm>=4.60,<5",
    ],
    extras_require={
        "train": ["torch==2.13.*", "matplotlib>=3.7,<4"],
        "test": ["pytest>=7,<10", "hypothesis>=6.80,<7"],
    },
    entry_points={"console_scripts": ["oscar-edge=oscar_edge.cli:main"]},
)
