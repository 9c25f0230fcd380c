"""Export tooling (needs the ``export`` extra and torch): PyTorch -> ONNX, INT8 / FP16 ONNX,
and the precision comparison. The scripts in the repository's ``export/`` folder are thin
wrappers around these modules.

Nothing in the runtime (``pipeline``, ``backends.ort_backend``, ``postprocess``, ...) imports
this package: it pulls in torch, onnxsim and NVIDIA ModelOpt.
"""
