"""Labelled video for training (oscar_edge.data.video), ``oscar-edge train --init`` and
``--video-data``, and benchmarks/tracking_ir.py's ``--videos`` / ``--model``."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from oscar_edge import train as train_tool
from oscar_edge.data.annotations import AnnotationError
from oscar_edge.data.video import (halves, read_frames, read_video_labels, select_videos,
                                   training_frames)
from oscar_edge.presets import SHIPPED_PRESET
from run_helpers import needs_onnx, write_labelled_video

REPO = Path(__file__).resolve().parents[1]


def _label(tmp_path, boxes, name="IR_X_001", cls="drone"):
    (tmp_path / "labels").mkdir(exist_ok=True)
    p = tmp_path / "labels" / f"{name}.json"
    p.write_text(json.dumps({"class": cls, "boxes": boxes}))
    return p


def test_labels_convert_matlab_boxes_to_pixel_index_corners(tmp_path):
    lab = read_video_labels(_label(tmp_path, [[11, 21, 4, 6], None, [1.5, 2.5, 3, 2]]))
    assert lab.name == "IR_X_001" and lab.cls == "drone"
    # MATLAB 1-based [x, y, w, h]: pixel x (1-based) is index x - 1; corners (x-1, y-1, +w, +h)
    np.testing.assert_allclose(lab.boxes[0], [10, 20, 14, 26])
    assert np.isnan(lab.boxes[1]).all()
    np.testing.assert_allclose(lab.boxes[2], [0.5, 1.5, 3.5, 3.5])
    assert lab.labelled.tolist() == [0, 2]


@pytest.mark.parametrize("content, words", [
    ("not json", "not a video label file"),
    (json.dumps({"class": "bird"}), "not a video label file"),
    (json.dumps({"boxes": {"0": [1, 2, 3, 4]}}), "must be a list"),
    (json.dumps({"boxes": [[1, 2, 3]]}), "frame 0"),
    (json.dumps({"boxes": [None, [1, 2, -3, 4]]}), "frame 1"),
])
def test_malformed_labels_name_the_file(tmp_path, content, words):
    p = tmp_path / "IR_BAD_001.json"
    p.write_text(content)
    with pytest.raises(AnnotationError, match=words) as info:
        read_video_labels(p)
    assert "IR_BAD_001.json" in str(info.value)


def test_halves_alternate_within_each_class():
    classes = {"a3": "plane", "a1": "plane", "a2": "plane", "b1": "bird", "b2": "bird",
               "c1": "heli"}
    assert halves(classes) == {"a1": "A", "a2": "B", "a3": "A", "b1": "A", "b2": "B",
                               "c1": "A"}


def test_select_videos_and_read_frames(tmp_path):
    for name, cls, seed in [("IR_DRONE_001", "drone", 1), ("IR_DRONE_002", "drone", 2),
                            ("IR_BIRD_001", "bird", 3)]:
        write_labelled_video(tmp_path, name, cls, seed, frames=12)
    assert select_videos(tmp_path, "all") == ["IR_BIRD_001", "IR_DRONE_001", "IR_DRONE_002"]
    a, b = select_videos(tmp_path, "half:A"), select_videos(tmp_path, "half:b")
    assert a == ["IR_BIRD_001", "IR_DRONE_001"] and b == ["IR_DRONE_002"]
    assert select_videos(tmp_path, "IR_DRONE_002, IR_BIRD_001") == ["IR_DRONE_002",
                                                                   "IR_BIRD_001"]
    with pytest.raises(FileNotFoundError, match="IR_NOPE_001"):
        select_videos(tmp_path, "IR_NOPE_001")
    with pytest.raises(ValueError, match="half:A and half:B"):
        select_videos(tmp_path, "half:C")
    with pytest.raises(FileNotFoundError, match="no labels folder"):
        select_videos(tmp_path / "nothing", "all")

    video = tmp_path / "videos" / "IR_DRONE_001.mp4"
    frames = read_frames(video, [5, 0, 11])
    assert sorted(frames) == [0, 5, 11]
    assert all(f.shape == (256, 320) and f.dtype == np.uint8 for f in frames.values())
    with pytest.raises(ValueError, match="ends at frame 12"):
        read_frames(video, [3, 12])
    with pytest.raises(FileNotFoundError, match="video not found"):
        read_frames(tmp_path / "videos" / "nope.mp4", [0])

    # every 2nd labelled frame (frame 7 carries no label): 0 2 4 6 9 11 -> 6 of 11 labelled
    got = training_frames(tmp_path, ["IR_DRONE_001"], every=2)
    lab = read_video_labels(tmp_path / "labels" / "IR_DRONE_001.json")
    assert [k for k, _, _ in got] == [f"IR_DRONE_001#{i}" for i in (0, 2, 4, 6, 9, 11)]
    for key, grey, box in got:
        i = int(key.split("#")[1])
        np.testing.assert_array_equal(box, lab.boxes[i:i + 1])
        # the labelled target is the bright spot of the synthetic frame
        x1, y1, x2, y2 = box[0]
        cy, cx = np.unravel_index(np.argmax(grey.astype(float)), grey.shape)
        assert x1 - 3 <= cx <= x2 + 3 and y1 - 3 <= cy <= y2 + 3
    with pytest.raises(ValueError, match="every"):
        training_frames(tmp_path, ["IR_DRONE_001"], every=0)


def test_video_frames_join_the_training_set_at_the_runtime_scale(sirst_root):
    from oscar_edge.data.dataset import SirstTrainDataset

    ds = SirstTrainDataset(str(sirst_root), "mini_trainval", crop=(128, 160), seed=0)
    n = len(ds)
    grey = np.zeros((256, 320), np.uint8)
    grey[100:104, 200:204] = 250
    box = np.array([[199.0, 99.0, 205.0, 105.0]], np.float32)
    assert ds.add_frames([(grey, box)]) == n + 1 == len(ds)
    # oscar-edge run letterboxes a 320x256 frame into 640x512: twice the size
    entry = ds.cache[-1]
    assert entry.grey.shape == (512, 640)
    np.testing.assert_allclose(entry.boxes, box * 2)
    assert float(entry.noco[200:208, 400:408].max()) > 0
    seen = False
    for epoch in range(4):
        ds.set_epoch(epoch)
        x, boxes, noco = ds[n]
        assert x.shape == (3, 128, 160)
        seen |= len(boxes) == 1
    assert seen


def _train_args(sirst_root, out, *extra):
    return ["--preset", SHIPPED_PRESET, "--data", str(sirst_root), "--train-split",
            "mini_trainval", "--val-split", "mini_test", "--out", str(out), "--batch-size", "2",
            "--crop", "128x128", "--max-iters-per-epoch", "1", "--val-every", "1",
            "--epochs", "1", *extra]


def test_train_fine_tunes_from_init_on_video(sirst_root, tmp_path, capsys):
    import torch

    data = tmp_path / "ir"
    write_labelled_video(data, "IR_DRONE_001", "drone", seed=4, frames=12)
    shipped = REPO / "oscar_edge" / "weights" / "oscar-edge.pt"
    out = tmp_path / "ft"
    assert train_tool.main(_train_args(sirst_root, out, "--init", str(shipped), "--video-data",
                                       str(data), "--video-every", "5", "--lr", "0")) == 0
    text = capsys.readouterr().out
    assert "added 3 labelled video frames" in text  # labelled frames 0, 5, 11 of 0..11
    # with lr 0 the weights are the initial ones: --init was loaded (BatchNorm statistics
    # still move in training mode, so only the learnt tensors are compared)
    init = torch.load(shipped, weights_only=True)["state_dict"]
    last = torch.load(out / "last.pt", weights_only=True)["state_dict"]
    learnt = [k for k in init if not any(b in k for b in ("running_", "num_batches"))]
    assert len(learnt) > 50 and all(torch.equal(init[k], last[k]) for k in learnt)


def test_train_init_and_video_errors_are_one_line(sirst_root, tmp_path, capsys):
    import torch

    other = tmp_path / "v2.pt"
    from oscar_edge.models import build_model
    torch.save({"preset": "oscar-edge-v2", "state_dict": build_model("oscar-edge-v2")
                .state_dict(), "meta": {}}, other)
    assert train_tool.main(_train_args(sirst_root, tmp_path / "a", "--init", str(other))) == 2
    err = capsys.readouterr().err
    assert "holds preset oscar-edge-v2" in err and "Traceback" not in err
    assert train_tool.main(_train_args(sirst_root, tmp_path / "b", "--video-data",
                                       str(tmp_path / "none"))) == 2
    err = capsys.readouterr().err
    assert "--video-data" in err and "no labels folder" in err and err.count("\n") == 1
    assert train_tool.main(_train_args(sirst_root, tmp_path / "c", "--video-data",
                                       str(tmp_path), "--video-every", "0")) == 2
    assert "--video-every" in capsys.readouterr().err


@needs_onnx
def test_tracking_ir_model_and_half_selection(tmp_path, capsys):
    sys.path.insert(0, str(REPO / "benchmarks"))
    import tracking_ir

    data = tmp_path / "ir"
    write_labelled_video(data, "IR_DRONE_001", "drone", seed=5, frames=10)
    write_labelled_video(data, "IR_DRONE_002", "drone", seed=6, frames=10)
    common = ["--data", str(data), "--input-sizes", "640x512", "--variants", "default",
              "--cache", str(tmp_path / "cache"), "--backend", "onnxruntime"]
    assert tracking_ir.main(common + ["--videos", "half:B", "--out", str(tmp_path / "o1")]) == 0
    res = json.loads((tmp_path / "o1" / "results.json").read_text())
    assert res["videos"] == ["IR_DRONE_002"]
    # the same graph given as --model is cached apart, keyed by its content
    onnx = tmp_path / "copy.onnx"
    onnx.write_bytes((REPO / "oscar_edge" / "weights" / "oscar-edge.onnx").read_bytes())
    assert tracking_ir.main(common + ["--videos", "half:B", "--model", str(onnx),
                                      "--out", str(tmp_path / "o2")]) == 0
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 2
    again = json.loads((tmp_path / "o2" / "results.json").read_text())
    assert again["counts"] == res["counts"]
    with pytest.raises(SystemExit, match="IR_NOPE"):
        tracking_ir.main(common + ["--videos", "IR_NOPE", "--out", str(tmp_path / "o3")])
    capsys.readouterr()
