"""The runtime's detections (JSON lines) equal `oscar_edge.evaluate.detect_split` on the same
validation images, for the same model and backend: one preprocessing, one decode."""
import shutil

import numpy as np
import pytest

from oscar_edge.backends.factory import SHIPPED_ONNX
from oscar_edge.pipeline import Detector
from run_helpers import read_jsonl, run_tool

N_IMAGES = 3


@pytest.fixture(scope="module")
def val_folder(tmp_path_factory, sirst_root):
    """A temporary folder with copies of the first validation images (never in the repo)."""
    from oscar_edge.data.annotations import load_samples

    samples = load_samples(str(sirst_root), "val_full")[:N_IMAGES]
    folder = tmp_path_factory.mktemp("val_images")
    for s in samples:
        shutil.copy(s.image_path, folder)
    return folder, samples


def runtime_detections(folder, tmp_path, *backend_args):
    jl = tmp_path / "d.jsonl"
    p = run_tool("--source", folder, "--jsonl", jl, "--score-thr", "0", "--threads", "1",
                 "--report-every", "0", *backend_args, timeout=300)
    assert p.returncode == 0, p.stderr
    return {line["source"]: line for line in read_jsonl(jl)}


def compare(lines, samples, dets):
    import os

    assert len(lines) == len(samples)
    total = 0
    for s, (boxes, scores) in zip(samples, dets):
        line = lines[os.path.basename(s.image_path)]
        got_b = np.asarray(line["boxes"], np.float32).reshape(-1, 4)
        got_s = np.asarray(line["scores"], np.float32)
        assert got_b.shape == boxes.shape and np.array_equal(got_b, boxes), s.image_path
        assert np.array_equal(got_s, scores), s.image_path
        total += len(scores)
    assert total > 0


def test_onnxruntime_runtime_equals_detect_split(val_folder, tmp_path):
    if not SHIPPED_ONNX.is_file():
        pytest.skip(f"shipped ONNX model missing: {SHIPPED_ONNX}")
    from oscar_edge.backends.ort_backend import OrtBackend
    from oscar_edge.evaluate import detect_split

    folder, samples = val_folder
    lines = runtime_detections(folder, tmp_path, "--backend", "onnxruntime")
    dets, _ = detect_split(Detector(OrtBackend(SHIPPED_ONNX, threads=1)), samples,
                           progress=False)
    compare(lines, samples, dets)


def test_torch_runtime_equals_detect_split(val_folder, tmp_path):
    torch = pytest.importorskip("torch", reason="the PyTorch backend needs torch")
    from oscar_edge.backends.torch_backend import TorchBackend
    from oscar_edge.checkpoint import load_model
    from oscar_edge.evaluate import detect_split

    folder, samples = val_folder
    lines = runtime_detections(folder, tmp_path, "--backend", "torch")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the runtime ran (--threads 1)
    try:
        model, _ = load_model()
        dets, _ = detect_split(Detector(TorchBackend(model)), samples, progress=False)
    finally:
        torch.set_num_threads(threads)
    compare(lines, samples, dets)


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_openvino_runtime_equals_detect_split(val_folder, tmp_path, precision):
    pytest.importorskip("openvino", reason="the OpenVINO backend needs the openvino extra")
    from oscar_edge.backends.factory import create_backend
    from oscar_edge.evaluate import detect_split

    folder, samples = val_folder
    lines = runtime_detections(folder, tmp_path, "--backend", "openvino", "--precision",
                               precision)
    choice = create_backend("openvino", precision=precision, threads=1)
    dets, _ = detect_split(Detector(choice.backend), samples, progress=False)
    compare(lines, samples, dets)
