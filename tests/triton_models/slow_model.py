"""Test model for the Triton loopback tests: oscar-edge's interface, no detections, after a
delay (parameter delay_s): a server too slow for the client's --triton-timeout."""
import json
import time

import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        cfg = json.loads(args["model_config"])
        self.delay = float(cfg["parameters"]["delay_s"]["string_value"])

    def execute(self, requests):
        time.sleep(self.delay)
        out = []
        for r in requests:
            b = pb_utils.get_input_tensor_by_name(r, "FRAMES").as_numpy().shape[0]
            out.append(pb_utils.InferenceResponse(output_tensors=[
                pb_utils.Tensor("DETECTIONS", np.zeros((b, 1, 5), np.float32)),
                pb_utils.Tensor("NUM_DETECTIONS", np.zeros((b, 1), np.int32))]))
        return out
