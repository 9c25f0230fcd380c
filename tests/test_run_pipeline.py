"""The streaming pipeline in one process: stages overlap, live sources drop instead of lagging,
latency statistics, faults (drop-out and reconnect, corrupt frames), the JSON lines."""
import io
import json

import numpy as np
import pytest

from oscar_edge.io.outputs import JsonlOutput
from oscar_edge.io.sources import open_source
from oscar_edge.latency import LatencyStats, Reservoir, format_report, frame_durations
from oscar_edge.pipeline import Detector
from oscar_edge.runtime import Runtime, RuntimeOptions
from run_helpers import (FlakyLiveSource, ScriptedSource, SleepyDetector, SleepyOutput, frame,
                         needs_onnx, read_jsonl)


def run(source, detector, outputs=(), **opts):
    opts.setdefault("report_every", 0)
    out = io.StringIO()
    summary = Runtime(source, detector, list(outputs), RuntimeOptions(**opts),
                      log=lambda m: None, out=out).run()
    return summary, out.getvalue()


def test_throughput_is_set_by_the_slowest_stage_not_the_sum():
    # four stages of 25 ms each: serial would be 100 ms per frame (10 FPS)
    det = SleepyDetector(pre=0.025, infer=0.025, post=0.025)
    out = SleepyOutput(0.025)
    n = 24
    summary, report = run(ScriptedSource([frame(i) for i in range(n)]), det, [out])
    assert summary["frames"]["processed"] == n == out.frames
    st = summary["stages"]
    for stage in ("preprocess", "inference", "postprocess", "render"):
        assert st[stage]["mean_ms"] == pytest.approx(25, abs=12)
    serial_fps = 1000 / sum(st[s]["mean_ms"] for s in ("preprocess", "inference", "postprocess",
                                                        "render"))
    assert summary["fps"] > 2.0 * serial_fps, (summary["fps"], serial_fps)
    assert "end-to-end" in report and "p99" in report and "FPS" in report


def test_live_source_drops_frames_instead_of_building_lag():
    # camera at ~200 FPS, inference 30 ms: most frames must be dropped, latency stays flat
    src = ScriptedSource([frame(i) for i in range(150)], live=True, delay=0.005)
    det = SleepyDetector(pre=0.004, infer=0.03)
    summary, _ = run(src, det)
    f = summary["frames"]
    assert f["captured"] == 150 and f["dropped"] > 60
    assert f["processed"] + f["dropped"] == f["captured"]
    e2e = summary["stages"]["end_to_end"]
    assert e2e["p50_ms"] < 2 * 30 and e2e["max_ms"] < 5 * 30  # no queue of stale frames
    # frames are pre-processed just in time for inference, not every camera frame
    assert det.preprocessed <= f["processed"] + 3


def test_reservoir_exact_then_sampled():
    r = Reservoir(capacity=1000)
    values = np.arange(1, 801) * 1_000_000  # 1..800 ms
    for v in values:
        r.add(int(v))
    s = r.summary()
    assert r.exact and s["count"] == 800 and s["max_ms"] == 800 and s["min_ms"] == 1
    assert s["p50_ms"] == pytest.approx(np.percentile(values, 50) / 1e6)
    assert s["p99_ms"] == pytest.approx(np.percentile(values, 99) / 1e6)
    small = Reservoir(capacity=500)
    for v in range(20_000):
        small.add(v * 1_000_000)
    s = small.summary()
    assert not small.exact and s["count"] == 20_000 and s["max_ms"] == 19_999
    assert s["mean_ms"] == pytest.approx(9999.5)                 # exact whatever the capacity
    assert s["p50_ms"] == pytest.approx(10_000, rel=0.15)        # estimated from 500 samples
    stats = LatencyStats(capacity=500)
    for i in range(600):
        stats.add({"inference": 1_000_000}, 0, i)
    assert "reservoir of 500" in stats.summary()["percentiles_over"]


def test_frame_durations_and_report_format():
    marks = {"preprocess_start": 15, "preprocess_end": 20, "inference_start": 22,
             "inference_end": 40, "postprocess_start": 41, "postprocess_end": 45,
             "render_start": 46, "render_end": 50}
    d = frame_durations(marks, t_capture=10)
    assert d == {"capture_age": 5, "preprocess": 5, "inference": 18, "postprocess": 4,
                 "render": 4, "end_to_end": 35}
    st = LatencyStats()
    st.add({k: v * 1_000_000 for k, v in d.items()}, 0, 10)
    text = format_report(st.summary(), {"processed": 1, "captured": 2, "dropped": 1,
                                        "corrupt": 0}, "test")
    for word in ("capture age", "pre-process", "inference", "post-process", "render/output",
                 "end-to-end", "mean", "p50", "p90", "p99", "max", "FPS", "dropped 1"):
        assert word in text


def test_live_drop_out_is_reopened_and_the_run_goes_on(tmp_path):
    src = FlakyLiveSource(good=5, failed_opens=2, total=20, period=0.01)
    jl = tmp_path / "d.jsonl"
    summary, report = run(src, SleepyDetector(), [JsonlOutput(str(jl))])
    f = summary["frames"]
    assert f["disconnects"] == 1 and f["reconnects"] == 1
    lines = read_jsonl(jl)
    assert lines[-1]["frame"] == 19 and f["processed"] == len(lines) >= 10
    assert "drop-outs 1 (reopened 1)" in report


def test_corrupt_and_empty_frames_are_counted_and_skipped(tmp_path):
    script = [frame(0), "corrupt", np.zeros((0, 0), np.uint8), frame(3),
              np.zeros((8, 8), np.float64), np.zeros((8, 8, 2), np.uint8), frame(6)]
    jl = tmp_path / "d.jsonl"
    summary, _ = run(ScriptedSource(script), SleepyDetector(), [JsonlOutput(str(jl))])
    assert [l["frame"] for l in read_jsonl(jl)] == [0, 3, 6]
    assert summary["frames"]["corrupt"] == 4 and summary["frames"]["processed"] == 3


def test_max_frames_and_stats_json(tmp_path):
    stats = tmp_path / "s.json"
    src = open_source("synthetic://?frames=0&size=64x48")  # endless
    summary, _ = run(src, SleepyDetector(), max_frames=7, stats_path=str(stats))
    saved = json.loads(stats.read_text())
    assert saved["frames"]["processed"] == 7 == summary["frames"]["processed"]
    assert saved["stop_reason"] == "max frames"
    for stage in ("capture_age", "preprocess", "inference", "postprocess", "render",
                  "end_to_end"):
        assert {"mean_ms", "p50_ms", "p90_ms", "p99_ms", "max_ms"} <= set(saved["stages"][stage])


@needs_onnx
def test_jsonl_lines_carry_boxes_in_frame_pixels_scores_and_times(tmp_path):
    from oscar_edge.backends.ort_backend import OrtBackend
    from oscar_edge.backends.factory import SHIPPED_ONNX

    det = Detector(OrtBackend(SHIPPED_ONNX, threads=1), input_size=(64, 96))
    jl = tmp_path / "d.jsonl"
    src = open_source("synthetic://?frames=3&size=120x80&targets=3")
    run(src, det, [JsonlOutput(str(jl))], score_thr=0.0)
    lines = read_jsonl(jl)
    assert [l["frame"] for l in lines] == [0, 1, 2]
    ref = Detector(OrtBackend(SHIPPED_ONNX, threads=1), input_size=(64, 96))
    from oscar_edge.io.synthetic import SyntheticScene

    scene = SyntheticScene(120, 80, targets=3)
    for line in lines:
        assert line["width"] == 120 and line["height"] == 80 and len(line["truth"]) == 3
        assert set(line["times_ms"]) == {"capture_age", "preprocess", "inference",
                                         "postprocess", "render", "end_to_end"}
        d = ref(scene.frame(line["frame"]))
        assert np.array_equal(np.asarray(line["boxes"], np.float32).reshape(-1, 4), d.boxes)
        assert np.array_equal(np.asarray(line["scores"], np.float32), d.scores)
        b = np.asarray(line["boxes"]).reshape(-1, 4)
        assert (b[:, 0::2] <= 120).all() and (b[:, 1::2] <= 80).all()


def test_periodic_reports_while_running():
    src = ScriptedSource([frame(i) for i in range(40)], delay=0.01)
    summary, report = run(src, SleepyDetector(infer=0.005), report_every=0.15)
    assert report.count("[oscar-edge] last 0.15 s") >= 2       # during the run
    assert report.rstrip().splitlines()[-1].startswith("  finite source")  # final notes
    assert "[oscar-edge] 40 frames" in report                   # and the final one


@needs_onnx
def test_bgr_and_16bit_sources_give_the_grey_results(tmp_path):
    from oscar_edge.backends.ort_backend import OrtBackend
    from oscar_edge.backends.factory import SHIPPED_ONNX

    det = Detector(OrtBackend(SHIPPED_ONNX, threads=1), input_size=(64, 96))
    results = {}
    for opts in ("", "&channels=3", "&depth=16", "&depth=16&channels=3"):
        jl = tmp_path / f"d{len(results)}.jsonl"
        src = open_source(f"synthetic://?frames=3&size=96x64&targets=4{opts}")
        run(src, det, [JsonlOutput(str(jl))], score_thr=0.0)
        results[opts] = read_jsonl(jl)
    grey = results[""]
    assert [l["boxes"] for l in results["&channels=3"]] == [l["boxes"] for l in grey]
    for key in ("&depth=16", "&depth=16&channels=3"):   # 16-bit: within one grey level
        assert [l["frame"] for l in results[key]] == [0, 1, 2]
        for a, b in zip(results[key], grey):
            if a["scores"] and b["scores"]:
                assert abs(a["scores"][0] - b["scores"][0]) < 0.05


def test_small_frames_get_the_small_source_input_only_in_the_runtime():
    """docs/tracking.md: frames up to 320x256 go into 640x512 (not the 768x608 fit) when the
    runtime has no --input-size; evaluation (small_input False) and fixed sizes keep theirs."""
    from oscar_edge.pipeline import Detector
    from oscar_edge.preprocess import SMALL_FRAME_INPUT

    def infer(x):
        return x

    small = np.zeros((256, 320), np.uint8)
    bigger = np.zeros((256, 330), np.uint8)
    rt = Detector(infer, small_input=True)
    assert rt.preprocess(small)[0].shape[1:] == SMALL_FRAME_INPUT == (512, 640)
    assert rt.preprocess(bigger)[0].shape[1:] == (608, 800)        # fit: 1000x600 limits
    assert Detector(infer).preprocess(small)[0].shape[1:] == (608, 768)   # evaluation: the fit
    fixed = Detector(infer, input_size=(256, 320), small_input=True)
    assert fixed.preprocess(small)[0].shape[1:] == (256, 320) and not fixed.small_input
