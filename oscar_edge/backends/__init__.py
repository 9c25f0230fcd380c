"""Inference backends behind one interface (``base.py``): each turns a (B, 3, H, W) float32
array into either the five raw head outputs (ONNX Runtime, PyTorch) or final detections
(a TensorRT engine ending in the OscarDecode / OscarNMS plugins). ``factory.create_backend``
picks and builds one; only the chosen backend's packages are imported."""
