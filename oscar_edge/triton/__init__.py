"""oscar-edge behind NVIDIA Triton Inference Server (docs/many-cameras.md).

* ``oscar-edge export-triton --out repo/`` (:mod:`.repository`) writes a model repository: for
  CPU servers a Python-backend model that runs the whole detector (pre-processing, ONNX Runtime
  or OpenVINO, decode, NMS, peak refinement: the code of ``oscar-edge run``); with ``--gpu`` an
  ensemble of Python pre-processing, the TensorRT engine (``tensorrt_plan``, our plugin library
  loaded by the server) and Python back-mapping.
* ``oscar-edge serve repo/`` (:mod:`.server`) starts the ``tritonserver`` bundled with
  nvidia-pytriton on a CPU repository and stops it cleanly.
* ``oscar-edge run --backend triton://HOST:PORT/MODEL`` (``oscar_edge.backends.triton_backend``)
  sends uint8 grey frames and gets detections back.

Both repositories have the same interface, so one client serves both (the names below). No
torch and no tritonclient are imported here.
"""
from __future__ import annotations

MODEL_NAME = "oscar-edge"          # the model clients ask for (the ensemble on a GPU server)
INPUT_FRAMES = "FRAMES"            # UINT8 [batch, H, W]: grey frames, any size
OUTPUT_DETECTIONS = "DETECTIONS"   # FP32 [batch, M, 5]: x1, y1, x2, y2 (original pixels), score
OUTPUT_COUNT = "NUM_DETECTIONS"    # INT32 [batch, 1]: valid rows of DETECTIONS per frame
DEFAULT_MAX_BATCH = 8              # cameras whose frames one execution may take together
DEFAULT_QUEUE_DELAY_US = 2000      # dynamic batching: wait at most this long for more frames
DEFAULT_PORTS = {"http": 8000, "grpc": 8001, "metrics": 8002}  # Triton's own defaults

# Model config parameters (string values) the Python models read; written by .repository.
PARAM_ROLE = "oscar_edge_role"     # detect (CPU model) | preprocess | postprocess (GPU ensemble)
