"""`oscar-edge run` / `python -m oscar_edge.run` in a subprocess: the main command on a machine
without camera and GPU, one-line errors with exit code 2, and clean stops on SIGINT / SIGTERM
(video finalised, JSON lines complete, final report printed)."""
import json
import os
import signal
import subprocess
import sys
import time

import cv2
import pytest

from oscar_edge import cli
from run_helpers import (REPO, count_video_frames, frame, needs_onnx, one_line_error,
                         read_jsonl, run_tool)

SMALL = ["--threads", "1", "--input-size", "160x128", "--report-every", "0"]
SYN = "synthetic://?frames={n}&size=160x128&targets=3&seed=1"


def test_run_is_a_cli_subcommand(capsys):
    assert "run" in cli.TOOLS
    with pytest.raises(SystemExit) as exc:
        cli.main(["run", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for opt in ("--source", "--camera", "--backend", "--engine", "--display", "--headless",
                "--save", "--jsonl", "--stats", "--snapshot", "--max-frames", "--score-thr",
                "--threads", "--report-every"):
        assert opt in out


@needs_onnx
def test_main_command_synthetic_headless_save(tmp_path):
    """`oscar-edge run --source synthetic:// --headless --save demo.mp4` through the CLI entry
    point, checking that neither torch nor the export tools get imported."""
    demo, jl, st, snap = (tmp_path / n for n in ("demo.mp4", "d.jsonl", "s.json", "still.png"))
    code = (
        "import sys; from oscar_edge.cli import main; "
        f"rc = main(['run', '--source', {SYN.format(n=12)!r}, '--headless', '--save', "
        f"{str(demo)!r}, '--jsonl', {str(jl)!r}, '--stats', {str(st)!r}, '--snapshot', "
        f"{str(snap)!r}, '--snapshot-frame', '5'] + {SMALL!r}); "
        "bad = [m for m in ('torch', 'onnx', 'onnxsim', 'modelopt', 'oscar_edge.export', "
        "'tensorrt') if m in sys.modules]; "
        "assert not bad, bad; sys.exit(rc)")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       cwd=str(REPO), timeout=120)
    assert p.returncode == 0, p.stderr
    for word in ("capture age", "inference", "end-to-end", "p50", "p99", "max", "FPS",
                 "processed 12"):
        assert word in p.stdout
    # --backend auto: OpenVINO when installed, else ONNX Runtime; the line names the precision
    assert ("OpenVINO" in p.stderr or "ONNX Runtime" in p.stderr) and "fp32" in p.stderr
    assert "decode+NMS native" in p.stderr
    assert count_video_frames(demo) == 12
    assert [l["frame"] for l in read_jsonl(jl)] == list(range(12))
    stats = json.loads(st.read_text())
    assert stats["frames"]["processed"] == 12 and stats["stages"]["end_to_end"]["count"] == 12
    img = cv2.imread(str(snap))
    assert img is not None and img.shape[1:] == (160, 3) and img.shape[0] > 128  # + status strip


@needs_onnx
def test_python_m_with_a_video_file(tmp_path):
    """A video file source through `python -m oscar_edge.run`, every frame in the JSONL."""
    clip = tmp_path / "clip.mp4"
    w = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"mp4v"), 15, (160, 128))
    for i in range(9):
        w.write(cv2.cvtColor(cv2.resize(frame(i), (160, 128)), cv2.COLOR_GRAY2BGR))
    w.release()
    jl = tmp_path / "d.jsonl"
    p = run_tool(clip, "--jsonl", jl, *SMALL)
    assert p.returncode == 0, p.stderr
    assert [l["frame"] for l in read_jsonl(jl)] == list(range(9))


def test_missing_camera_is_one_line_and_exit_2():
    p = run_tool("--camera", "/dev/video9", "--headless")
    one_line_error(p, "cannot open camera /dev/video9", "no such device")


def test_csi_without_gstreamer_is_one_line_and_exit_2():
    from oscar_edge.io.sources import opencv_has_gstreamer

    if opencv_has_gstreamer():
        pytest.skip("this OpenCV has GStreamer")
    p = run_tool("--source", "csi://0")
    one_line_error(p, "csi://0 needs OpenCV built with GStreamer")


@pytest.mark.parametrize("flag, target, words", [
    ("--save", "{tmp}/no/such/dir/out.mp4", "folder"),
    ("--save", "{tmp}", "it is a folder"),
    ("--stats", "/proc/oscar-edge-stats.json", "cannot write statistics"),
    ("--jsonl", "{tmp}/missing/d.jsonl", "does not exist"),
])
def test_unwritable_output_fails_before_the_stream(tmp_path, flag, target, words):
    jl = tmp_path / "first.jsonl"
    args = ["--source", SYN.format(n=5), "--jsonl", str(jl), flag,
            target.format(tmp=tmp_path)] + SMALL
    if flag == "--jsonl":
        args = ["--source", SYN.format(n=5), flag, target.format(tmp=tmp_path)] + SMALL
    p = run_tool(*args)
    one_line_error(p, words)
    assert not jl.exists()  # nothing started, nothing written
    assert p.stdout == ""   # no report: the stream never started


def test_display_without_a_desktop_is_one_line_and_exit_2(tmp_path):
    env = {k: "" for k in ("DISPLAY", "WAYLAND_DISPLAY")}
    p = run_tool("--source", SYN.format(n=3), "--display", *SMALL, env=env)
    one_line_error(p, "--display needs a desktop session")
    # a desktop variable but an OpenCV without windows (opencv-python-headless)
    gui = [l.split(":", 1)[1].strip() for l in cv2.getBuildInformation().splitlines()
           if l.strip().startswith("GUI:")]
    if gui and gui[0] == "NONE":
        p = run_tool("--source", SYN.format(n=3), "--display", *SMALL, env={"DISPLAY": ":99"})
        one_line_error(p, "--display")


def test_bad_arguments_are_one_line_errors():
    one_line_error(run_tool("--headless"), "no input")
    one_line_error(run_tool("--source", SYN.format(n=2), "--display", "--headless"), "exclude")
    one_line_error(run_tool("--source", SYN.format(n=2), "--score-thr", "2"), "--score-thr")
    one_line_error(run_tool("--source", "synthetic://?size=12x12"), "at least 32x32")
    one_line_error(run_tool("--source", SYN.format(n=2), "--input-size", "100x100"),
                   "multiples of 32")


@needs_onnx
def test_folder_with_corrupt_images(tmp_path):
    imgs = tmp_path / "imgs"
    imgs.mkdir()
    for i in range(3):
        cv2.imwrite(str(imgs / f"f{i}.png"), cv2.resize(frame(i), (160, 128)))
    (imgs / "f1b.png").write_bytes(b"\x89PNG\r\n\x1a\nbroken")
    (imgs / "f2b.png").write_bytes(b"")
    jl, st = tmp_path / "d.jsonl", tmp_path / "s.json"
    p = run_tool("--source", imgs, "--jsonl", jl, "--stats", st, *SMALL)
    assert p.returncode == 0, p.stderr
    lines = read_jsonl(jl)
    assert [l["source"] for l in lines] == ["f0.png", "f1.png", "f2.png"]
    assert json.loads(st.read_text())["frames"]["corrupt"] == 2
    assert "corrupt 2" in p.stdout and "warning: skipped a corrupt frame" in p.stderr


@needs_onnx
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_stops_cleanly_with_outputs_finalised(tmp_path, sig):
    video, jl, st = tmp_path / "o.mp4", tmp_path / "d.jsonl", tmp_path / "s.json"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen(
        [sys.executable, "-m", "oscar_edge.run", "--source", SYN.format(n=0), "--save",
         str(video), "--jsonl", str(jl), "--stats", str(st), *SMALL],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=str(REPO), env=env)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # wait for a few frames
            if jl.exists() and jl.read_text().count("\n") >= 4:
                break
            time.sleep(0.05)
        else:
            pytest.fail("no frames within 60 s")
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    name = signal.Signals(sig).name
    assert f"stop: {name}" in out and "end-to-end" in out   # the final report
    lines = read_jsonl(jl)                                  # every line is valid JSON
    assert len(lines) >= 4 and [l["frame"] for l in lines] == list(range(len(lines)))
    assert count_video_frames(video) == len(lines)          # the video is finalised
    stats = json.loads(st.read_text())
    assert stats["stop_reason"] == name and stats["frames"]["processed"] == len(lines)


@pytest.mark.parametrize("size_arg,want", [(None, "640x512 for frames up to 320x256"),
                                           ("fit", None)])
def test_small_sources_default_to_640x512_unless_fit_is_asked(tmp_path, size_arg, want):
    from run_helpers import read_jsonl_header

    jl = tmp_path / "d.jsonl"
    extra = ["--input-size", size_arg] if size_arg else []
    p = run_tool("--source", "synthetic://?frames=2&size=320x256", "--headless", "--threads", "1",
                 "--jsonl", jl, "--report-every", "0", *extra)
    assert p.returncode == 0, p.stderr
    head = read_jsonl_header(jl)
    assert head["small_frame_input"] == want and head["input_size"] is None
    assert ("640x512 fixed for frames up to 320x256" in p.stderr) == (want is not None)
