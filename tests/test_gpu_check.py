"""The GPU check (tests/gpu/device_check.sh) without a GPU: the runner library compiles with nvcc
for sm_87 and sm_90, the harness's comparisons, golden loading, training / evaluation helpers and
report writer work (with the C++ CPU twin standing in for the GPU runner), and the script stops
with one line when there is no GPU. What needs a GPU is only run by device_check.sh itself."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
GPU_DIR = REPO / "tests" / "gpu"
sys.path.insert(0, str(GPU_DIR))

import gpu_kernels as gk  # noqa: E402
import gpu_report  # noqa: E402
import gpu_train_eval as gte  # noqa: E402

SCRIPT = GPU_DIR / "device_check.sh"
FETCH = GPU_DIR / "fetch_wheels.sh"


# -- the runner library ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def runner_lib(tmp_path_factory) -> Path:
    if shutil.which("nvcc") is None:
        pytest.skip("nvcc is needed to compile the GPU runner")
    out = tmp_path_factory.mktemp("runner") / "liboscar_gpu_runner.so"
    return gk.build_runner(["sm_87", "sm_90"], out, timeout=240)


def test_runner_compiles_for_sm87_and_sm90_with_both_cubins(runner_lib):
    assert runner_lib.stat().st_size > 100_000
    if shutil.which("cuobjdump"):
        listing = subprocess.run(["cuobjdump", "--list-elf", str(runner_lib)],
                                 capture_output=True, text=True, timeout=60).stdout
        assert "sm_87" in listing and "sm_90" in listing, listing


def test_runner_library_exports_the_c_api_and_reports_cuda_errors(runner_lib):
    import ctypes

    lib = ctypes.CDLL(str(runner_lib))
    for name in ("oscar_gpu_decode", "oscar_gpu_nms", "oscar_gpu_peak_refine", "oscar_gpu_chain",
                 "oscar_gpu_time", "oscar_gpu_device_info"):
        assert hasattr(lib, name), name
    assert lib.oscar_gpu_abi_version() == gk.RUNNER_ABI
    try:
        runner = gk.GpuRunner(runner_lib)
    except gk.GpuRunnerError as exc:  # no GPU here: the CUDA error is named, not a crash
        assert "device query: CUDA error" in str(exc)
        return
    # On a machine with a GPU this is the real check, on the golden vectors.
    res = gk.run_checks(runner, gk.CpuTwinRunner(), gk.golden_cases())
    assert res["failed"] == [], res["results"]


def test_nvcc_command_keeps_the_project_arithmetic_flags():
    cmd = gk.nvcc_command(["sm_90"], Path("/tmp/x.so"))
    joined = " ".join(cmd)
    assert "-ffp-contract=off" in joined and "--Werror=all-warnings" in joined
    assert "fast_math" not in joined.replace("-fno-fast-math", "")
    assert "-gencode=arch=compute_90,code=sm_90" in cmd
    for src in gk.KERNEL_SRCS + (gk.RUNNER_SRC,):
        assert str(src) in cmd and src.is_file()


@pytest.mark.parametrize("arch, want", [("sm_90", "90"), ("9.0", "90"), ("87", "87"),
                                        ("SM_100", "100")])
def test_arch_flags_accept_the_usual_spellings(arch, want):
    assert gk.arch_flags([arch]) == [f"-gencode=arch=compute_{want},code=sm_{want}"]


@pytest.mark.parametrize("bad", [["sm_x"], ["9"], []])
def test_arch_flags_reject_nonsense(bad):
    with pytest.raises(ValueError):
        gk.arch_flags(bad)


def test_missing_runner_library_is_one_clear_error(tmp_path):
    with pytest.raises(gk.GpuRunnerError, match="runner library not found"):
        gk.GpuRunner(tmp_path / "nope.so")


# -- bit-for-bit comparison --------------------------------------------------------------------
def test_bit_mismatch_catches_one_ulp():
    a = np.float32([[1.5, 2.25], [3.0, 100.0]])
    assert gk.bit_mismatch("x", a, a.copy()) is None
    b = a.copy()
    b[1, 1] = np.nextafter(b[1, 1], np.float32(np.inf))
    msg = gk.bit_mismatch("x", b, a)
    assert msg is not None and "1 of 4 elements differ" in msg and "[1, 1]" in msg


def test_bit_mismatch_tells_signed_zeros_apart_and_matches_equal_nans():
    assert gk.bit_mismatch("z", np.float32([-0.0]), np.float32([0.0])) is not None
    nan = np.float32([np.nan])
    assert gk.bit_mismatch("n", nan, nan.copy()) is None


def test_bit_mismatch_on_shape_dtype_and_ints():
    assert "shape" in gk.bit_mismatch("s", np.zeros(3, np.float32), np.zeros(4, np.float32))
    assert "dtype" in gk.bit_mismatch("d", np.zeros(3, np.int32), np.zeros(3, np.float32))
    assert gk.bit_mismatch("i", np.int32([1, 2]), np.int64([1, 2])) is None
    assert gk.bit_mismatch("i", np.int32([1, 2]), np.int32([1, 3])) is not None


def test_compare_outputs_reports_missing_outputs():
    got = {"decode_count": np.int32([1])}
    want = {"decode_count": np.int32([1]), "nms_num": np.int32([0])}
    out = gk.compare_outputs(got, want, ("decode_count", "nms_num"))
    assert out == ["nms_num: missing from the runner"]


# -- golden vectors ----------------------------------------------------------------------------
def test_golden_cases_load_every_file_with_its_types():
    cases = gk.golden_cases()
    files = sorted(p.stem for p in gk.GOLDEN_DIR.glob("*.npz"))
    assert [c.name for c in cases] == files and len(cases) >= 5
    fp16 = [c for c in cases if c.name.startswith("fp16")]
    assert fp16 and all(r.dtype == np.float16 for r in fp16[0].raw)
    assert fp16[0].image.dtype == np.float16
    for c in cases:
        assert set(c.attrs) == set(gk.ATTRS) and set(c.expected) == set(gk.ALL_OUT)
        assert c.image.shape[0] == c.raw[0].shape[0] == c.letterbox.shape[0]


def test_golden_loading_rejects_other_files(tmp_path):
    np.savez(tmp_path / "other.npz", a=np.zeros(3))
    with pytest.raises(ValueError, match="not a golden file"):
        gk.load_golden(tmp_path / "other.npz")
    with pytest.raises(ValueError, match="no golden vectors"):
        gk.golden_cases(tmp_path / "empty")


# -- the harness with the CPU twin standing in for the GPU -------------------------------------
class OneUlpRunner(gk.CpuTwinRunner):
    """The twin, with one refined coordinate of the chain one ulp off."""

    def chain(self, raw, image, letterbox, attrs):
        out = super().chain(raw, image, letterbox, attrs)
        b = int(np.argmax(out["nms_num"]))
        if out["nms_num"][b] > 0:
            out["refine_boxes"][b, 0, 2] = np.nextafter(out["refine_boxes"][b, 0, 2],
                                                        np.float32(np.inf))
        return out


class ExtraCandidateRunner(gk.CpuTwinRunner):
    """The twin, with a decode that claims one candidate more."""

    def decode(self, raw, score_threshold, topk, clamp_hw=None):
        boxes, scores, count = super().decode(raw, score_threshold, topk, clamp_hw)
        return boxes, scores, count + 1


class BrokenRunner(gk.CpuTwinRunner):
    def nms(self, *args, **kwargs):
        raise gk.GpuRunnerError("NMS: CUDA error 700 (an illegal memory access)")


@pytest.fixture(scope="module")
def twin():
    return gk.CpuTwinRunner()


def test_harness_passes_the_twin_against_itself(twin):
    res = gk.run_checks(twin, twin, gk.golden_cases())
    assert res["failed"] == [] and res["cases"] >= 5
    kept = {r["name"]: r["kept"] for r in res["results"]}
    assert kept["fp32_empty_64x64"] == [0] and sum(kept["fp32_b2_96x160"]) > 0


def test_harness_fails_on_one_ulp_in_a_refined_box(twin):
    res = gk.run_checks(OneUlpRunner(), twin, gk.golden_cases())
    assert "fp32_b2_96x160" in res["failed"] and "fp32_empty_64x64" not in res["failed"]
    lines = [m for r in res["results"] for m in r["mismatches"]]
    assert any(m.startswith("chain: refine_boxes: 1 of") for m in lines), lines


def test_harness_fails_on_a_wrong_count_and_keeps_going_after_an_error(twin):
    res = gk.run_checks(ExtraCandidateRunner(), twin, gk.golden_cases())
    assert len(res["failed"]) == res["cases"]
    assert all(any(m.startswith("decode: decode_count") for m in r["mismatches"])
               for r in res["results"])
    res = gk.run_checks(BrokenRunner(), twin, gk.golden_cases())
    assert len(res["results"]) == res["cases"] >= 5
    assert all("illegal memory access" in r["mismatches"][0] for r in res["results"])


def test_harness_flags_a_golden_file_the_twin_does_not_reproduce(twin):
    case = gk.load_golden(gk.GOLDEN_DIR / "fp32_topk64_128x128.npz")
    case.expected["nms_scores"][0, 0] = np.nextafter(case.expected["nms_scores"][0, 0],
                                                     np.float32(0))
    res = gk.check_case(twin, twin, case)
    assert [m for m in res["mismatches"] if m.startswith("cpu-twin vs golden: nms_scores")]


def test_kept_rows_recover_the_twins_own_indices(twin):
    for case in gk.golden_cases():
        a = case.attrs
        dec = twin.decode(case.raw, a["score_threshold"], a["topk"])
        num, boxes, scores = twin.nms(*dec, a["iou_threshold"], a["max_detections"])
        want = twin.nms_index(*dec, a["iou_threshold"], a["max_detections"])
        np.testing.assert_array_equal(gk.kept_rows(*dec, boxes, scores, num), want)
        if num[0] >= 2:  # two kept rows swapped: other indices
            boxes[0, [0, 1]] = boxes[0, [1, 0]]
            scores[0, [0, 1]] = scores[0, [1, 0]]
            assert not np.array_equal(gk.kept_rows(*dec, boxes, scores, num), want)


def test_pick_samples_takes_targets_and_one_background():
    class S:
        def __init__(self, n):
            self.boxes = np.zeros((n, 4))

    samples = [S(0), S(1), S(2), S(0), S(3)]
    picked = gk.pick_samples(samples, 3)
    assert picked == [samples[1], samples[2], samples[0]]
    # one image (the timing input): one with targets, never the background
    assert gk.pick_samples(samples, 1) == [samples[1]]


def test_real_val_cases_on_cpu_match_the_twin(twin, sirst_root):
    cases = gk.real_cases(sirst_root, "mini_test", 2, device="cpu", fit_cases=False)
    names = [c.name for c in cases]
    assert names[0] == "val_640x512_b2_fp32" and names[1] == "val_640x512_b2_fp16"
    assert cases[0].image.shape == (2, 3, 512, 640) and cases[1].raw[0].dtype == np.float16
    res = gk.run_checks(twin, twin, cases)
    assert len(cases) == 2 and res["failed"] == []


# -- training and evaluation helpers -----------------------------------------------------------
def test_loss_trend():
    assert gte.loss_trend([9, 8, 7, 6, 5, 4, 3, 2, 1, 0.5])[0]
    ok, msg, fig = gte.loss_trend([1, 1, 1, 1, 1, 1, 1, 1, 1, 1.2])
    assert not ok and "did not fall" in msg and fig["mean_last_5"] > fig["mean_first_5"]
    assert not gte.loss_trend([9, 8, 7, 6, 5, 4, 3, float("nan"), 1, 0.5])[0]
    assert not gte.loss_trend([3, 2, 1])[0]


def test_compare_maps():
    src = {"on": "cpu", "off": "cpu"}
    ok, lines = gte.compare_maps({"on": 0.8650, "off": 0.7200}, {"on": 0.8648, "off": 0.7203},
                                 0.002, src)
    assert ok and len(lines) == 2
    ok, lines = gte.compare_maps({"on": 0.8600}, {"on": 0.8648}, 0.002, src)
    assert not ok and "> 0.002" in lines[0]
    assert not gte.compare_maps({"on": 0.86}, {}, 0.002, {})[0]


def test_train_smoke_runs_the_training_step_on_cpu(sirst_root):
    res = gte.train_smoke(str(sirst_root), "cpu", iters=2, batch_size=2, crop=(64, 64),
                          split="mini_trainval", warmup=1)
    assert res["iters"] == 2 and res["amp"] is False and res["skipped"] == 0
    assert all(np.isfinite(res["losses"])) and res["losses"][0] > 0


def test_evaluate_cli_on_cpu_and_its_failure(sirst_root, tmp_path):
    m = gte.evaluate_cli("cpu", "on", str(sirst_root), "mini_test", tmp_path / "m.json", 120)
    assert 0.0 <= m["mNoCoAP"] <= 1.0 and m["num_images"] == 4 and m["peak_refine"] is True
    with pytest.raises(RuntimeError, match="exited 2: .*output folder does not exist"):
        gte.evaluate_cli("cpu", "on", str(sirst_root), "mini_test", tmp_path / "no" / "x.json",
                         120)


def test_evaluate_step_fails_when_the_device_run_fails(sirst_root, tmp_path):
    import argparse

    args = argparse.Namespace(out=tmp_path, device="nodevice", reference_device="cpu",
                              refine=["on"], data=str(sirst_root), split="mini_test",
                              tolerance=0.002, timeout=120)
    ok, msg, figures = gte.evaluate_step(args)
    assert not ok
    # an unknown device is a user error: one line, exit 2 (oscar_edge.backends.torch_backend)
    assert "refine on: evaluate --device nodevice --peak-refine on exited 2" in msg
    assert "unknown PyTorch device" in msg
    assert "cpu_refine_on" not in figures  # the reference run was stopped, nothing compared


# -- report ------------------------------------------------------------------------------------
def test_step_records_settle_by_exit_code(tmp_path):
    log = tmp_path / "a.log"
    log.write_text("starting\nlast words here\n\n")
    p = gpu_report.step_path(tmp_path, 1, "kernels")
    gpu_report.write_step(p, "kernels", True, "all equal", {"n": 3})
    assert gpu_report.settle_step(p, "kernels", 0, 1.0, log)["status"] == "pass"
    rec = gpu_report.settle_step(p, "kernels", 1, 1.0, log)
    assert rec["status"] == "fail" and rec["message"] == "exit 1: last words here"
    assert rec["figures"] == {"n": 3}
    q = gpu_report.step_path(tmp_path, 2, "build")
    rec = gpu_report.settle_step(q, "build", 124, 60.0, log, timeout_s=60)
    assert rec["status"] == "fail" and rec["message"].startswith("timed out after 60 s")
    r = gpu_report.step_path(tmp_path, 3, "env")
    assert gpu_report.settle_step(r, "env", 0, 2.0, log)["message"] == "last words here"
    with pytest.raises(ValueError):
        gpu_report.step_path(tmp_path, 4, "bad name")


def test_report_json_and_markdown(tmp_path):
    assert gpu_report.write_report(tmp_path, {"gpu": "none"}) == 1  # no steps: not a pass
    gpu_report.write_step(gpu_report.step_path(tmp_path, 1, "timing"), "timing", True, "ok",
                          {"fp32": {"decode": {"median_us": 12.5}}})
    gpu_report.settle_step(gpu_report.step_path(tmp_path, 1, "timing"), "timing", 0, 3.0)
    assert gpu_report.write_report(tmp_path, {"gpu": "NVIDIA H200", "driver": "580"}) == 0
    gpu_report.write_step(gpu_report.step_path(tmp_path, 2, "train"), "train", False,
                          "loss did not fall")
    assert gpu_report.write_report(tmp_path, {"gpu": "NVIDIA H200"}, 42.0) == 1
    rep = json.loads((tmp_path / "report.json").read_text())
    assert rep["result"] == "fail" and rep["passed"] == 1 and rep["failed"] == 1
    assert [s["name"] for s in rep["steps"]] == ["timing", "train"]
    md = (tmp_path / "report.md").read_text()
    assert "**FAIL**: 1 of 2 steps passed, 42 s" in md
    assert "| gpu | NVIDIA H200 |" in md and "| fp32.decode.median_us | 12.5 |" in md
    assert "| train | fail |" in md and "loss did not fall" in md


def test_report_command_line(tmp_path):
    log = tmp_path / "x.log"
    log.write_text("ok: built\n")
    run = subprocess.run([sys.executable, str(GPU_DIR / "gpu_report.py"), "step", "--out",
                          str(tmp_path), "--index", "1", "--name", "gpu_runner", "--rc", "0",
                          "--seconds", "4", "--log", str(log), "--figure", "arch=sm_90"],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0 and "[pass] gpu_runner" in run.stdout
    rec = json.loads(gpu_report.step_path(tmp_path, 1, "gpu_runner").read_text())
    assert rec["figures"] == {"arch": "sm_90"} and rec["message"] == "ok: built"


def test_kernels_command_without_runner_writes_a_failed_record(tmp_path):
    rec = tmp_path / "k.json"
    run = subprocess.run([sys.executable, str(GPU_DIR / "gpu_kernels.py"), "check", "--runner",
                          str(tmp_path / "none.so"), "--step-json", str(rec)],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 1 and run.stdout.startswith("FAILED: runner library not found")
    assert "Traceback" not in run.stderr
    assert json.loads(rec.read_text())["status"] == "fail"


# -- the scripts -------------------------------------------------------------------------------
def test_scripts_parse():
    for script in (SCRIPT, FETCH):
        res = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
        assert res.returncode == 0, res.stderr


def _bin_with(tmp_path: Path, smi: str = None) -> str:
    """A PATH of only `dirname`, `grep`, `timeout` and, when given, a fake nvidia-smi."""
    b = tmp_path / "bin"
    b.mkdir()
    for tool in ("dirname", "grep", "timeout"):
        os.symlink(shutil.which(tool), b / tool)
    if smi is not None:
        (b / "nvidia-smi").write_text("#!/bin/sh\n" + smi)
        (b / "nvidia-smi").chmod(0o755)
    return str(b)


@pytest.mark.parametrize("smi, want", [
    (None, "device_check: no NVIDIA GPU: nvidia-smi not found"),
    ("echo 'NVIDIA-SMI has failed because it could not communicate with the NVIDIA driver.'\n"
     "echo 'Make sure that the latest NVIDIA driver is installed'\nexit 9\n",
     "device_check: no NVIDIA GPU: nvidia-smi failed: NVIDIA-SMI has failed because it could "
     "not communicate with the NVIDIA driver."),
    ("exit 0\n", "device_check: no NVIDIA GPU: nvidia-smi lists none"),
])
def test_device_check_without_gpu_says_so_in_one_line(tmp_path, smi, want):
    env = {"PATH": _bin_with(tmp_path, smi), "OUT": str(tmp_path / "report"),
           "HOME": str(tmp_path)}
    res = subprocess.run([shutil.which("bash"), str(SCRIPT)], capture_output=True, text=True,
                         env=env, timeout=120)
    assert res.returncode == 2
    assert res.stderr.splitlines() == [want] and res.stdout == ""
    assert not (tmp_path / "report").exists()


def test_fetch_wheels_rejects_bad_arguments_without_downloading(tmp_path):
    env = {**os.environ, "WHEELS_DIR": str(tmp_path / "w")}
    for args, want in ((["--python", "2.7"], "not a CPython version: 2.7"),
                       (["--frobnicate"], "unknown option --frobnicate")):
        res = subprocess.run(["bash", str(FETCH), *args], capture_output=True, text=True,
                             env=env, timeout=60)
        assert res.returncode == 2 and want in res.stderr
    assert not (tmp_path / "w").exists()


def test_wheels_and_report_folders_are_git_ignored():
    lines = (REPO / ".gitignore").read_text().splitlines()
    assert "tests/gpu/wheels/" in lines and "gpu-check-report/" in lines
