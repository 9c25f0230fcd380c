"""oscar-edge: OSCAR infrared small-target detection, from PyTorch to TensorRT on Jetson."""
__version__ = "0.1.0"
