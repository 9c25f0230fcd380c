"""Test model for the Triton loopback tests: a model that is not oscar-edge's (FP32 image in)."""
import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        return [pb_utils.InferenceResponse(output_tensors=[
            pb_utils.Tensor("OUT", np.zeros((1,), np.float32))]) for _ in requests]
