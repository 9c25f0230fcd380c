"""Runtime sources: URIs, synthetic scenes, folders, video files, the capture thread (newest
frame only for live sources, every frame otherwise, reconnect with backoff, corrupt frames)."""
import threading
import time

import cv2
import numpy as np
import pytest

from oscar_edge.io import sources as S
from oscar_edge.io.capture import END, CaptureThread
from oscar_edge.io.synthetic import SIGMA_RANGE, SyntheticScene
from oscar_edge.preprocess import to_grey_u8
from run_helpers import FlakyLiveSource, ScriptedSource, frame


# -- URIs -----------------------------------------------------------------------------------
@pytest.mark.parametrize("uri, cls, attr, value", [
    ("/dev/video0", S.V4L2Source, "device", "/dev/video0"),
    ("v4l2:///dev/video2", S.V4L2Source, "device", "/dev/video2"),
    ("v4l2://1", S.V4L2Source, "device", "/dev/video1"),
    ("csi://1", S.CSISource, "sensor_id", 1),
    ("rtsp://user:pw@10.0.0.2:8554/ir?x=1", S.NetworkSource, "target",
     "rtsp://user:pw@10.0.0.2:8554/ir?x=1"),
    ("clip.mp4", S.VideoFileSource, "path", "clip.mp4"),
    ("file://clip.mp4", S.VideoFileSource, "path", "clip.mp4"),
    ("file:///data/clip.avi", S.VideoFileSource, "path", "/data/clip.avi"),
    ("images/*.png", S.ImageFolderSource, "pattern", "images/*.png"),
    ("one.png", S.ImageFolderSource, "pattern", "one.png"),
])
def test_uri_selects_the_source(uri, cls, attr, value):
    src = S.open_source(uri)
    assert type(src) is cls and getattr(src, attr) == value
    assert src.live == (cls in (S.V4L2Source, S.CSISource, S.NetworkSource))


def test_camera_argument_and_v4l2_options():
    assert S.camera_uri("0") == "v4l2:///dev/video0"
    assert S.camera_uri("/dev/video3") == "v4l2:///dev/video3"
    assert S.camera_uri("csi://0") == "csi://0"
    src = S.open_source("v4l2:///dev/video0?width=640&height=512&fps=60&format=Y16")
    assert (src.width, src.height, src.req_fps, src.fourcc) == (640, 512, 60.0, "Y16")
    assert "rtsp://user:***@host" in S.NetworkSource("rtsp://user:pw@host/x").describe()


def test_csi_pipeline_string():
    src = S.open_source("csi://1?width=1920&height=1080&fps=30&flip=2")
    p = src.pipeline
    assert p.startswith("nvarguscamerasrc sensor-id=1 ! video/x-raw(memory:NVMM)")
    assert "width=(int)1920, height=(int)1080" in p and "framerate=(fraction)30/1" in p
    assert "nvvidconv flip-method=2" in p and "format=(string)BGR !" in p
    assert p.endswith("appsink drop=true max-buffers=1 sync=false")
    assert src.api == cv2.CAP_GSTREAMER
    grey = S.csi_pipeline(0, fmt="GRAY8")
    assert "format=(string)GRAY8 ! appsink" in grey and "videoconvert" not in grey


@pytest.mark.parametrize("uri, words", [
    ("synthetic://?bogus=1", "unknown option 'bogus'"),
    ("synthetic://?frames=x", "frames='x' is not a valid int"),
    ("synthetic://?size=640", "must look like 640x512"),
    ("synthetic://?depth=12", "depth must be 8 or 16"),
    ("gopher://x", "unknown source scheme 'gopher'"),
    ("csi://front", "sensor id must be a number"),
])
def test_bad_uris_are_one_line_errors(uri, words):
    with pytest.raises(S.SourceError, match=words.replace("(", r"\(").replace("?", r"\?")):
        S.open_source(uri)


def test_missing_camera_says_so():
    src = S.open_source("/dev/video9")
    with pytest.raises(S.SourceError, match="cannot open camera /dev/video9: no such device"):
        src.open()


# -- synthetic ------------------------------------------------------------------------------
def test_synthetic_uri_options_and_determinism():
    src = S.open_source("synthetic://?frames=4&size=96x64&targets=3&seed=7&fps=25&noise=1")
    assert not src.live and src.fps == 25 and src.frame_count == 4
    src.open()
    frames = []
    while (f := src.read()) is not None:
        frames.append(f)
    assert [f.index for f in frames] == [0, 1, 2, 3]
    assert frames[0].image.shape == (64, 96) and frames[0].image.dtype == np.uint8
    assert frames[2].truth.shape == (3, 4)
    again = SyntheticScene(96, 64, targets=3, seed=7, noise=1)
    assert np.array_equal(again.frame(2), frames[2].image)           # random access, same pixels
    assert np.array_equal(again.ground_truth(2), frames[2].truth)
    other = SyntheticScene(96, 64, targets=3, seed=8, noise=1)
    assert not np.array_equal(other.frame(2), frames[2].image)
    assert not np.array_equal(again.frame(3), frames[2].image)        # it moves


def test_synthetic_truth_marks_hot_spots_over_clutter():
    scene = SyntheticScene(160, 128, targets=6, seed=3, noise=0.0)
    for t in (0, 17, 40):
        clutter = scene.clutter(t)
        img = scene.frame_float(t)
        for g, (x1, y1, x2, y2) in zip(scene.targets, scene.ground_truth(t)):
            assert 0 <= x1 < x2 <= 160 and 0 <= y1 < y2 <= 128
            assert 2 * SIGMA_RANGE[0] - 1e-3 <= (x2 - x1) / 2 <= 2 * SIGMA_RANGE[1] + 1e-3  # +-2 sigma
            cx, cy = int((x1 + x2) / 2), int((y1 + y2) / 2)
            added = img[cy - 1:cy + 2, cx - 1:cx + 2] - clutter[cy - 1:cy + 2, cx - 1:cx + 2]
            assert added.max() > 0.5 * g.contrast       # the spot sits where the truth says
    contrasts = [g.contrast for g in scene.targets]
    assert max(contrasts) - min(contrasts) > 20          # varied contrast
    speeds = [np.hypot(g.vx, g.vy) for g in scene.targets]
    assert all(0.3 <= s <= 1.5 for s in speeds)


def test_synthetic_16bit_and_bgr_frames_reduce_to_the_same_grey():
    grey = SyntheticScene(96, 64, seed=1).frame(5)
    deep = SyntheticScene(96, 64, seed=1, depth=16).frame(5)
    bgr = SyntheticScene(96, 64, seed=1, channels=3).frame(5)
    assert deep.dtype == np.uint16 and deep.max() > 255 and bgr.shape == (64, 96, 3)
    assert np.abs(to_grey_u8(deep).astype(int) - grey.astype(int)).max() <= 1
    assert np.array_equal(to_grey_u8(bgr), grey)


def test_synthetic_live_paces_at_its_fps():
    src = S.open_source("synthetic://?frames=8&size=64x48&fps=50&live=1")
    assert src.live
    src.open()
    t0 = time.monotonic()
    n = 0
    while src.read() is not None:
        n += 1
    assert n >= 7 and time.monotonic() - t0 >= 0.12


# -- folders and files ----------------------------------------------------------------------
def test_folder_natural_order_and_corrupt_images(tmp_path):
    for name, i in (("img10.png", 10), ("img2.png", 2), ("img1.png", 1)):
        cv2.imwrite(str(tmp_path / name), frame(i))
    (tmp_path / "img3.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    (tmp_path / "img4.png").write_bytes(b"")
    (tmp_path / "notes.txt").write_text("not an image")
    src = S.open_source(str(tmp_path))
    src.open()
    got, corrupt = [], 0
    while True:
        try:
            f = src.read()
        except S.CorruptFrame:
            corrupt += 1
            continue
        if f is None:
            break
        got.append((f.index, f.name))
        assert f.image.ndim == 2 and f.image.dtype == np.uint8
    assert got == [(0, "img1.png"), (1, "img2.png"), (4, "img10.png")] and corrupt == 2
    glob_src = S.open_source(str(tmp_path / "img1*.png"))
    glob_src.open()
    assert [p.split("/")[-1] for p in glob_src.paths] == ["img1.png", "img10.png"]
    with pytest.raises(S.SourceError, match="no images"):
        S.open_source(str(tmp_path / "*.jpg")).open()


def test_video_file_every_frame(tmp_path):
    path = str(tmp_path / "clip.mp4")
    w = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"mp4v"), 20, (64, 48))
    for i in range(12):
        w.write(cv2.cvtColor(frame(i), cv2.COLOR_GRAY2BGR))
    w.release()
    src = S.open_source(path)
    src.open()
    assert src.frame_count == 12 and src.fps == pytest.approx(20)
    idx = []
    while (f := src.read()) is not None:
        idx.append(f.index)
    assert idx == list(range(12))
    with pytest.raises(S.SourceError, match="video file not found"):
        S.open_source(str(tmp_path / "none.mp4")).open()


# -- capture thread -------------------------------------------------------------------------
def drain(cap, delay=0.0, limit=10_000):
    out = []
    while len(out) < limit:
        item = cap.get(1.0)
        if item is END:
            return out
        if item is not None:
            out.append(item)
            time.sleep(delay)
    return out


def test_capture_finite_source_delivers_every_frame_in_order():
    src = ScriptedSource([frame(i) for i in range(20)])
    cap = CaptureThread(src, threading.Event())
    cap.start()
    got = drain(cap, delay=0.005)  # a slow consumer: the reader waits, nothing is dropped
    cap.join(2)
    assert [r.index for r in got] == list(range(20))
    assert cap.counters.captured == 20 and cap.counters.dropped == 0
    assert all(r.t_capture > 0 and r.wall_time > 0 for r in got)


def test_capture_live_source_keeps_only_the_newest_frame():
    src = ScriptedSource([frame(i) for i in range(60)], live=True, delay=0.001)
    cap = CaptureThread(src, threading.Event())
    cap.start()
    got = drain(cap, delay=0.02)  # consumer much slower than the camera
    cap.join(2)
    idx = [r.index for r in got]
    assert idx == sorted(idx) and idx[-1] == 59           # in order, and the newest at the end
    assert cap.counters.captured == 60
    assert cap.counters.dropped == 60 - len(got) > 20      # the rest were replaced, counted


def test_capture_counts_and_skips_corrupt_frames():
    src = ScriptedSource([frame(0), "corrupt", frame(2), "corrupt", frame(4)])
    cap = CaptureThread(src, threading.Event(), log=lambda m: None)
    cap.start()
    got = drain(cap)
    assert [r.index for r in got] == [0, 2, 4] and cap.counters.corrupt == 2


def test_capture_reopens_a_lost_live_source_with_backoff():
    src = FlakyLiveSource(good=5, failed_opens=3, total=15)
    logs = []
    cap = CaptureThread(src, threading.Event(), backoff_initial=0.01, backoff_max=0.04,
                        log=logs.append)
    t0 = time.monotonic()
    cap.start()
    got = drain(cap)
    cap.join(2)
    c = cap.counters
    assert c.disconnects == 1 and c.reconnects == 1 and c.captured == 15
    assert src.open_calls == 4                              # 3 failed reopenings, then back
    assert got[-1].index == 14                             # the run went on after the drop-out
    assert time.monotonic() - t0 >= 0.01 + 0.02 + 0.04 + 0.04  # exponential backoff, capped
    assert any("lost" in m for m in logs) and any("back after" in m for m in logs)


def test_capture_gives_up_after_the_reconnect_timeout():
    src = FlakyLiveSource(good=2, failed_opens=10_000)
    cap = CaptureThread(src, threading.Event(), reconnect_timeout=0.2, backoff_initial=0.01,
                        backoff_max=0.05, log=lambda m: None)
    cap.start()
    drain(cap)
    cap.join(2)
    assert isinstance(cap.error, S.SourceError) and "not back after" in str(cap.error)
