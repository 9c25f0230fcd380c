#!/usr/bin/env python
"""Latency benchmark of every backend on the same real frames: model only and frame to detections.

    python benchmarks/latency.py --backends torch,ort,ort-int8 --preset oscar-edge \\
        --size 640x512 --batch 1 --runs 300 --warmup 50 [--threads 2] \\
        [--json out.json] [--plot out.png] [--sizes 320x256,640x512,1280x1024]

Backends (``--backends``, comma separated):

| name | what runs |
|---|---|
| ``torch`` | PyTorch eager FP32 (the reference every ratio is taken against), ``--torch-device`` |
| ``ort`` | ONNX Runtime CPU, FP32 raw-head graph |
| ``ort-int8`` | ONNX Runtime CPU, INT8 Q/DQ graph (ModelOpt PTQ, ``oscar_edge.export.quantize``) |
| ``ort-int8-ortq`` | ONNX Runtime CPU, INT8 graph from ONNX Runtime's own quantizer \
(``quantize.py --int8-target onnxruntime``: Q/DQ around every op, u8 activations, s8 per-channel \
weights, fused into integer kernels by ORT; the same calibration images) |
| ``ort-fp16`` | ONNX Runtime CPU, FP16 graph (ModelOpt AutoCast, FP32 I/O) |
| ``trt-fp32`` / ``trt-fp16`` / ``trt-int8`` | TensorRT engine ending in the decode + NMS plugins, \
static shape, built with ``export/build_engine.py``'s code; "not available: TensorRT not \
installed" where TensorRT is absent |

Models: for ``oscar-edge`` the shipped ``oscar_edge/weights/oscar-edge.pt`` / ``.onnx``; other
presets (no trained weights) use random-init weights (``--seed``; classification biases set to
-10 so that, as with a trained model, few locations pass the score threshold and decode + NMS is
not flooded with every grid point) exported to ONNX on the fly; ``--checkpoint`` uses given
weights. INT8 / FP16 graphs and TensorRT engines are made on the fly and cached in
``--work-dir`` (default ``$XDG_CACHE_HOME/oscar-edge/bench`` or ``~/.cache/oscar-edge/bench``),
keyed by the SHA-256 of the FP32 graph and of the recipe (the quantize module's source, the
calibration images, the ModelOpt / ONNX Runtime versions; for engines also the shape, the
TensorRT version and the plugin library), so a changed recipe makes a new file.

Frames: ``--frames`` images of the SIRST-V2 ``--split`` (default ``val_full``, in split order)
under ``--data`` (default ``oscar_edge.data.default_data_root()``), decoded once to 8-bit grey
(``read_grey``) before any timing. Every backend sees the same frames in the same order:

* **model only**: the frames letterboxed with ``prepare(grey, input_size=(H, W))`` beforehand
  (batch ``--batch``); timed: one backend call, (B, 3, H, W) float32 in -> outputs as numpy
  arrays out (host to host: for TensorRT the host<->device copies and the decode + NMS plugins
  are inside, as the engine ends in them);
* **frame to detections**: timed per iteration from the decoded grey frame to detections in
  frame pixels, with three stages: ``preprocess`` (``Detector.preprocess``: resize, normalise,
  pad), ``inference`` (the backend call), ``postprocess`` (``Detector.postprocess``: decode +
  NMS by the native C++ library ``liboscar_postprocess.so``, mapping back to frame pixels).

Statistics (``time.perf_counter_ns`` around each call, ``--warmup`` untimed calls first): min,
mean, p50, p90, p95, p99, max, standard deviation and CV over the ``--runs`` timed calls; the
percentiles are ``numpy.percentile`` (linear interpolation) through ``oscar_edge.latency``'s
Reservoir, as the runtime reports them. Throughput = frames / wall time of the timed loop.
Unstable-spread warning (stated in every report): CV (population std / mean) > ``--cv-limit``
(10 %) or p99 / p50 > ``--tail-limit`` (1.5). trtexec warns above 1 % CV of GPU compute time
(``kUNSTABLE_PERF_REPORTING_THRESHOLD`` in samples/common/sampleReporting.cpp); host-side Python
timings on a shared CPU carry scheduler noise, hence the wider limits here.

Ratios: each backend's p50 speed relative to PyTorch eager FP32 in the same run (``torch`` p50 /
backend p50), and achieved GFLOP/s = ``count_gflops`` of the preset at the size (1 MAC = 1 FLOP,
convolutions only, the paper's MMCV convention) x batch / model-only p50; the same with
2 FLOP per MAC is given in a separate, labelled column.

Goals (printed at the end): ONNX Runtime FP32 >= 2.5x PyTorch eager (model only, p50); INT8 Q/DQ
>= 1.7x FP32 (``ort-int8`` and ``ort-int8-ortq`` vs ``ort``, ``trt-int8`` vs ``trt-fp32``); oscar-edge frame to
detections < 10 ms p50 at 640x512; post-processing < 5 % of that path (stage p50 / total p50).
A missed goal names the stage that holds it back (stage p50s of the full path).

Jetson mode (auto: ``/etc/nv_tegra_release`` or a Jetson ``/proc/device-tree/model``; force with
``--jetson``, turn off with ``--no-jetson``): records ``nvpmodel -q`` and whether
``jetson_clocks`` is on (``jetson_clocks --show``, ``sudo -n`` if needed, else the cpufreq /
devfreq min = max rule read from sysfs), samples ``tegrastats --interval`` in a thread during the
whole run (plus an idle baseline of ``--idle-s`` before the first backend) and reports, per
backend and phase, average power of the total rail (VDD_IN; VIN; POM_5V_IN; on AGX Orin
VDD_GPU_SOC + VDD_CPU_CV + VIN_SYS_5V0), every rail, GPU / CPU clocks, temperatures and energy
per frame (mJ = average mW x wall s / frames, also above idle). The equivalent ``trtexec``
command of every TensorRT backend is printed with the flags chosen explicitly (CUDA graph,
spin-wait and no data transfers ON = the trtexec 11 defaults), so 10.x and 11.x runs compare.

Output: Markdown on stdout (progress on stderr), ``--json`` (machine, versions, thread settings,
command line, every sample), ``--plot`` PNG (latency distribution per backend; latency vs input
area with ``--sizes``). Exit code 0, also when a backend is not available here (it is listed as
such); 1 when a backend failed (its reason is in the report); 2 for bad arguments or data.
A phase is also flagged when other processes used more than 10 % of the CPUs meanwhile
(``/proc/stat`` busy time minus this process's CPU time). CPU figures from one machine say
nothing about another (a Jetson's Arm cores least of all): the JSON records what ran where.
"""
from __future__ import annotations

import argparse
import contextlib
import datetime
import hashlib
import importlib
import importlib.util
import json
import math
import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple

_REPO = Path(__file__).resolve().parents[1]
if (_REPO / "oscar_edge" / "__init__.py").is_file():  # run from a checkout: use its package
    sys.path.insert(0, str(_REPO))

import numpy as np  # noqa: E402

from oscar_edge.errors import UserError, run_cli  # noqa: E402

PROG = "latency"
FORMAT = "oscar-edge latency benchmark v1"
BACKENDS = ("torch", "ort", "ort-int8", "ort-int8-ortq", "ort-fp16", "trt-fp32", "trt-fp16",
            "trt-int8")
ORT_REDUCED = ("ort-int8", "ort-int8-ortq", "ort-fp16")
DEFAULT_BACKENDS = "torch,ort,ort-int8"
SHIPPED_PRESET = "oscar-edge"
STAGES = ("preprocess", "inference", "postprocess")
CV_LIMIT_PCT = 10.0
TAIL_LIMIT = 1.5
TRTEXEC_CV_LIMIT_PCT = 1.0          # trtexec's kUNSTABLE_PERF_REPORTING_THRESHOLD (GPU compute)
RANDOM_CLS_BIAS = -10.0
BUSY_OTHERS_PCT = 10.0              # other processes' share of all CPUs that flags a phase
GOAL_ORT_VS_TORCH = 2.5
GOAL_INT8_VS_FP32 = 1.7
GOAL_FULL_P50_MS = 10.0
GOAL_POST_SHARE = 0.05
GOAL_SIZE = (512, 640)              # (height, width): "640x512"
TRTEXEC_WARMUP_MS = 500
ISA_FLAGS_X86 = ("sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl",
                 "avx512_vnni", "avx512_bf16", "avx512_fp16", "avx_vnni", "amx_tile", "amx_int8",
                 "amx_bf16")
ISA_FLAGS_ARM = ("fp", "asimd", "fphp", "asimdhp", "asimddp", "i8mm", "bf16", "sve", "sve2")
INT8_DOT_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8", "asimddp", "i8mm")
TOTAL_RAILS = ("VDD_IN", "VIN", "POM_5V_IN")
AGX_ORIN_RAILS = ("VDD_GPU_SOC", "VDD_CPU_CV", "VIN_SYS_5V0")
NOT_RAILS = {"RAM", "SWAP", "IRAM", "NC", "EMC_FREQ", "GR3D_FREQ", "APE"}
UNSTABLE_RULE = ("unstable when CV (population std / mean) > {cv:g} % or p99 / p50 > {tail:g} "
                 "(trtexec warns above {trt:g} % CV of GPU compute time)")


def _script_path() -> str:
    """This script's path as typed from the current folder (relative when below it)."""
    here = Path(__file__).resolve()
    try:
        return str(here.relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(here)


def log(msg: str) -> None:
    print(f"[{PROG}] {msg}", file=sys.stderr, flush=True)


# ============================================================================ arguments
def parse_size(text: str) -> Tuple[int, int]:
    """'640x512' (width x height, multiples of 32) -> (height, width) = (512, 640)."""
    m = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", str(text))
    if not m:
        raise UserError(f"size must look like 640x512 (width x height), got {text!r}")
    w, h = int(m.group(1)), int(m.group(2))
    if w <= 0 or h <= 0 or w % 32 or h % 32:
        raise UserError(f"size {text}: width and height must be positive multiples of 32")
    return h, w


def size_label(hw: Sequence[int]) -> str:
    """(height, width) -> 'WxH'."""
    return f"{int(hw[1])}x{int(hw[0])}"


def parse_backends(text: str) -> List[str]:
    names = [b.strip() for b in str(text).split(",") if b.strip()]
    if not names:
        raise UserError("--backends is empty")
    bad = [b for b in names if b not in BACKENDS]
    if bad:
        raise UserError(f"unknown backend(s) {', '.join(bad)}; choose from {', '.join(BACKENDS)}")
    seen: List[str] = []
    for b in names:
        if b not in seen:
            seen.append(b)
    return seen


def default_work_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "oscar-edge" / "bench"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="latency.py",
        description="Latency of each backend (model only, and frame to detections) on the same "
                    "real SIRST-V2 frames; Markdown on stdout, optional JSON and PNG.")
    p.add_argument("--backends", default=DEFAULT_BACKENDS,
                   help=f"comma list of {', '.join(BACKENDS)} (default %(default)s)")
    p.add_argument("--preset", default=SHIPPED_PRESET,
                   help="architecture (default %(default)s: the shipped trained model; other "
                        "presets run random-init weights)")
    p.add_argument("--checkpoint", help="use these weights (.pt) instead of the shipped / "
                                        "random-init ones (its preset wins over --preset)")
    p.add_argument("--size", default="640x512",
                   help="network input WIDTHxHEIGHT, multiples of 32 (default %(default)s)")
    p.add_argument("--sizes", help="comma list of WIDTHxHEIGHT: a size sweep (overrides --size)")
    p.add_argument("--batch", type=int, default=1, help="frames per call (default 1)")
    p.add_argument("--runs", type=int, default=300, help="timed calls per phase (default 300)")
    p.add_argument("--warmup", type=int, default=50, help="untimed calls first (default 50)")
    p.add_argument("--threads", type=int, default=None,
                   help="CPU threads of PyTorch (intra-op) and ONNX Runtime (intra-op); default: "
                        "each runtime's own default")
    p.add_argument("--torch-device", default="cpu", help="PyTorch device (default cpu)")
    p.add_argument("--data", default=None, help="SIRST-V2 root (default: "
                                                 "oscar_edge.data.default_data_root())")
    p.add_argument("--split", default="val_full", help="split whose frames are timed "
                                                       "(default %(default)s)")
    p.add_argument("--frames", type=int, default=32,
                   help="number of frames cycled through (default %(default)s)")
    p.add_argument("--calib-split", default="train_full",
                   help="split for INT8 / FP16 calibration (default %(default)s)")
    p.add_argument("--calib-images", type=int, default=16,
                   help="calibration images (default %(default)s; does not change latency)")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of random-init weights and of the calibration draw (default 0)")
    p.add_argument("--work-dir", default=None,
                   help=f"cache of exported / quantized models and engines (default "
                        f"{default_work_dir()})")
    p.add_argument("--plugin-lib", default=None, help="TensorRT plugin library (default as "
                                                      "export/build_engine.py)")
    p.add_argument("--cv-limit", type=float, default=CV_LIMIT_PCT,
                   help="unstable-spread warning above this CV in %% (default %(default)s)")
    p.add_argument("--tail-limit", type=float, default=TAIL_LIMIT,
                   help="unstable-spread warning above this p99/p50 (default %(default)s)")
    p.add_argument("--json", dest="json_out", default=None, help="write the JSON record here")
    p.add_argument("--plot", default=None, help="write the PNG plot here")
    jet = p.add_argument_group("Jetson")
    mode = jet.add_mutually_exclusive_group()
    mode.add_argument("--jetson", action="store_true",
                      help="Jetson mode even when not detected (nvpmodel, jetson_clocks, "
                           "tegrastats power)")
    mode.add_argument("--no-jetson", action="store_true", help="no Jetson mode even on a Jetson")
    jet.add_argument("--tegrastats-interval", type=int, default=100,
                     help="tegrastats sampling interval in ms (default %(default)s)")
    jet.add_argument("--idle-s", type=float, default=2.0,
                     help="idle power baseline before the first backend, s (default %(default)s)")
    return p


# ============================================================================ statistics
def summarize(samples_ns: Sequence[int], batch: int = 1,
              wall_ns: Optional[int] = None) -> Dict[str, float]:
    """Latency statistics in ms of one phase: count, min, mean, p50, p90, p95, p99, max, std
    (population), cv_pct, p99_over_p50, throughput_fps (``batch`` frames per call over the wall
    time of the loop; the sum of the samples when ``wall_ns`` is not given).

    min / mean / max / p50 / p90 / p99 come from ``oscar_edge.latency.Reservoir`` (the runtime's
    statistics: exact, ``numpy.percentile`` with linear interpolation), the rest from numpy."""
    from oscar_edge.latency import Reservoir

    arr = np.asarray(samples_ns, dtype=np.int64).reshape(-1)
    if arr.size == 0:
        raise ValueError("no samples")
    res = Reservoir(capacity=int(arr.size))
    for v in arr.tolist():
        res.add(v)
    s: Dict[str, float] = dict(res.summary())
    ms = arr.astype(np.float64) / 1e6
    s["p95_ms"] = float(np.percentile(ms, 95))
    s["std_ms"] = float(ms.std())
    s["cv_pct"] = 100.0 * s["std_ms"] / s["mean_ms"] if s["mean_ms"] > 0 else 0.0
    s["p99_over_p50"] = s["p99_ms"] / s["p50_ms"] if s["p50_ms"] > 0 else float("inf")
    wall = float(wall_ns) if wall_ns else float(arr.sum())
    s["throughput_fps"] = batch * arr.size / (wall / 1e9) if wall > 0 else 0.0
    return s


def spread_warning(stats: Dict[str, float], cv_limit: float = CV_LIMIT_PCT,
                   tail_limit: float = TAIL_LIMIT) -> Optional[str]:
    """The reason the spread of ``stats`` counts as unstable, or None."""
    reasons = []
    if stats["cv_pct"] > cv_limit:
        reasons.append(f"CV {stats['cv_pct']:.1f} % > {cv_limit:g} %")
    if stats["p99_over_p50"] > tail_limit:
        reasons.append(f"p99/p50 {stats['p99_over_p50']:.2f} > {tail_limit:g}")
    return "; ".join(reasons) or None


# ============================================================================ machine
def _read(path: str, default: str = "") -> str:
    try:
        with open(path, "r", encoding="utf-8", errors="replace") as fh:
            return fh.read()
    except OSError:
        return default


def run_cmd(cmd: Sequence[str], timeout: float = 15.0) -> Tuple[int, str]:
    """(exit code, stdout + stderr); (127, reason) when it cannot run."""
    try:
        p = subprocess.run(list(cmd), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           stdin=subprocess.DEVNULL, text=True, timeout=timeout)
    except FileNotFoundError:
        return 127, f"{cmd[0]}: not found"
    except (OSError, subprocess.TimeoutExpired) as exc:
        return 127, f"{cmd[0]}: {exc}"
    return p.returncode, p.stdout


def parse_cpuinfo(text: str) -> Dict[str, object]:
    """Model name, vendor, flags (x86 ``flags`` / Arm ``Features``) and core counts of a
    /proc/cpuinfo text."""
    model = vendor = ""
    flags: set = set()
    logical = 0
    cores = set()
    phys = core = None
    arm_parts = set()
    for line in text.splitlines():
        if ":" not in line:
            if not line.strip() and phys is not None and core is not None:
                cores.add((phys, core))
                phys = core = None
            continue
        key, _, value = line.partition(":")
        key, value = key.strip().lower(), value.strip()
        if key == "processor":
            logical += 1
        elif key in ("model name", "hardware") and not model:
            model = value
        elif key == "vendor_id" and not vendor:
            vendor = value
        elif key == "cpu implementer" and not vendor:
            vendor = f"Arm implementer {value}"
        elif key == "cpu part":
            arm_parts.add(value)
        elif key in ("flags", "features"):
            flags.update(value.split())
        elif key == "physical id":
            phys = value
        elif key == "core id":
            core = value
    if phys is not None and core is not None:
        cores.add((phys, core))
    if not model and arm_parts:
        model = "Arm CPU part " + "/".join(sorted(arm_parts))
    return {"model": model or platform.processor() or platform.machine(), "vendor": vendor,
            "flags": sorted(flags), "logical_cpus": logical or os.cpu_count(),
            "physical_cores": len(cores) or None}


def isa_summary(flags: Iterable[str], machine: str = "") -> Dict[str, object]:
    """The ISA flags that matter for INT8 / FP16 inference: which are there, which are not."""
    flags = set(flags)
    arm = machine.lower().startswith(("aarch64", "arm")) or ("asimd" in flags)
    wanted = ISA_FLAGS_ARM if arm else ISA_FLAGS_X86
    return {"present": [f for f in wanted if f in flags],
            "absent": [f for f in wanted if f not in flags],
            "int8_dot_product": [f for f in INT8_DOT_FLAGS if f in flags],
            "virtualized": "hypervisor" in flags}


def _pkg_version(name: str) -> Optional[str]:
    try:
        from importlib.metadata import version

        return version(name)
    except Exception:
        return None


def tensorrt_version() -> str:
    if importlib.util.find_spec("tensorrt") is None:
        return "not installed"
    try:
        import tensorrt

        return str(getattr(tensorrt, "__version__", "unknown"))
    except Exception as exc:  # broken libnvinfer ...
        return f"does not import ({_first_line(exc)})"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def versions() -> Dict[str, Optional[str]]:
    import cv2

    import oscar_edge

    out: Dict[str, Optional[str]] = {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "torch": _pkg_version("torch"),
        "onnxruntime": _pkg_version("onnxruntime") or _pkg_version("onnxruntime-gpu"),
        "onnx": _pkg_version("onnx"),
        "nvidia-modelopt": _pkg_version("nvidia-modelopt"),
        "opencv": cv2.__version__,
        "tensorrt": tensorrt_version(),
        "cuda-python": _pkg_version("cuda-python") or _pkg_version("cuda-bindings"),
        "oscar_edge": oscar_edge.__version__,
        "matplotlib": _pkg_version("matplotlib"),
    }
    rc, head = run_cmd(["git", "-C", str(_REPO), "rev-parse", "--short", "HEAD"], 5)
    if rc == 0:
        rc2, status = run_cmd(["git", "-C", str(_REPO), "status", "--porcelain",
                               "--untracked-files=no"], 5)
        dirty = rc2 == 0 and bool(status.strip())
        out["git"] = head.strip() + (" (uncommitted changes)" if dirty else "")
    return out


def os_info() -> Dict[str, str]:
    pretty = ""
    for line in _read("/etc/os-release").splitlines():
        if line.startswith("PRETTY_NAME="):
            pretty = line.split("=", 1)[1].strip().strip('"')
    return {"platform": platform.platform(), "kernel": platform.release(),
            "distribution": pretty, "machine": platform.machine()}


def machine_info() -> Dict[str, object]:
    cpu = parse_cpuinfo(_read("/proc/cpuinfo"))
    info: Dict[str, object] = {
        "cpu_model": cpu["model"], "cpu_vendor": cpu["vendor"],
        "logical_cpus": cpu["logical_cpus"], "physical_cores": cpu["physical_cores"],
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
        else os.cpu_count(),
        "isa": isa_summary(cpu["flags"], platform.machine()),
        "cpu_flags": cpu["flags"],
        "governor": _read("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor").strip() or None,
        "memory_total_mb": None,
        "os": os_info(),
    }
    for line in _read("/proc/meminfo").splitlines():
        if line.startswith("MemTotal:"):
            info["memory_total_mb"] = int(line.split()[1]) // 1024
    return info


@dataclass
class CpuSnapshot:
    busy_s: Optional[float]   # CPU time of the whole machine (all CPUs, /proc/stat), s
    own_s: float              # CPU time of this process (all its threads), s
    wall_s: float


def cpu_snapshot() -> CpuSnapshot:
    busy = None
    fields = _read("/proc/stat").split("\n", 1)[0].split()
    if len(fields) >= 8 and fields[0] == "cpu":
        v = [int(x) for x in fields[1:]]
        # user nice system idle iowait irq softirq steal (guest time is inside user)
        busy = (v[0] + v[1] + v[2] + v[5] + v[6] + (v[7] if len(v) > 7 else 0)) \
            / os.sysconf("SC_CLK_TCK")
    t = os.times()
    return CpuSnapshot(busy, t.user + t.system, time.monotonic())


def others_cpu_pct(a: CpuSnapshot, b: CpuSnapshot, cpus: int) -> Optional[float]:
    """Share (%) of all CPUs that other processes (and the hypervisor's steal) used between
    two snapshots: machine busy time minus this process's CPU time, over wall x CPUs."""
    if a.busy_s is None or b.busy_s is None or b.wall_s <= a.wall_s:
        return None
    other = (b.busy_s - a.busy_s) - (b.own_s - a.own_s)
    return max(0.0, 100.0 * other / ((b.wall_s - a.wall_s) * max(1, cpus)))


def load_average() -> Optional[List[float]]:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


# ============================================================================ Jetson
def detect_jetson(root: str = "/") -> Optional[str]:
    """A description of the Jetson this runs on, or None."""
    model = _read(os.path.join(root, "proc/device-tree/model")).replace("\x00", "").strip()
    release = _read(os.path.join(root, "etc/nv_tegra_release")).strip()
    if release or "jetson" in model.lower() or "nvidia" in model.lower():
        return model or "NVIDIA Jetson (model unknown)"
    return None


def parse_nvpmodel(text: str) -> Dict[str, object]:
    """``nvpmodel -q`` -> {"mode_name", "mode_id"} (None where missing). The output is
    ``NV Power Mode: MAXN`` and the mode id on the next line (warning lines may come first)."""
    name = mode_id = None
    m = re.search(r"NV Power Mode\s*:\s*(\S+)", text)
    if m:
        name = m.group(1)
        after = text[m.end():].splitlines()[1:]
        for line in after:
            if line.strip():
                if re.fullmatch(r"\s*\d+\s*", line):
                    mode_id = int(line)
                break
    return {"mode_name": name, "mode_id": mode_id}


_FREQ_KV = re.compile(r"(\w+)=(\S+)")


def parse_jetson_clocks(text: str) -> Dict[str, object]:
    """``jetson_clocks --show`` -> per-CPU / GPU / EMC min, max and current frequencies and
    whether jetson_clocks is on. Rule: on when every online CPU and the GPU run with
    MinFreq == MaxFreq (what jetson_clocks sets); None when the text has no CPU lines."""
    cpus: Dict[str, Dict[str, str]] = {}
    gpu: Dict[str, str] = {}
    emc: Dict[str, str] = {}
    power_mode = None
    for line in text.splitlines():
        s = line.strip()
        m = re.match(r"(cpu\d+):\s*(.*)", s)
        if m:
            cpus[m.group(1)] = dict(_FREQ_KV.findall(m.group(2)))
        elif s.startswith("GPU ") and "MinFreq=" in s:
            gpu = dict(_FREQ_KV.findall(s))
        elif s.startswith("EMC ") and "MinFreq=" in s:
            emc = dict(_FREQ_KV.findall(s))
        elif s.startswith("NV Power Mode"):
            power_mode = s.split(":", 1)[1].strip() if ":" in s else None
    return {"cpus": cpus, "gpu": gpu, "emc": emc, "power_mode": power_mode,
            "on": clocks_locked(cpus, gpu)}


def clocks_locked(cpus: Dict[str, Dict[str, str]], gpu: Dict[str, str]) -> Optional[bool]:
    online = [c for c in cpus.values() if c.get("Online", "1") == "1"]
    if not online:
        return None
    locked = all(c.get("MinFreq") == c.get("MaxFreq") and c.get("MinFreq") is not None
                 for c in online)
    if gpu:
        locked = locked and gpu.get("MinFreq") == gpu.get("MaxFreq")
    return locked


def jetson_clocks_from_sysfs(root: str = "/") -> Dict[str, object]:
    """The same min == max rule read from cpufreq and the GPU's devfreq (no root needed)."""
    import glob

    cpus: Dict[str, Dict[str, str]] = {}
    for d in sorted(glob.glob(os.path.join(root, "sys/devices/system/cpu/cpu[0-9]*"))):
        name = os.path.basename(d)
        online = _read(os.path.join(d, "online"), "1").strip() or "1"
        lo = _read(os.path.join(d, "cpufreq/scaling_min_freq")).strip()
        hi = _read(os.path.join(d, "cpufreq/scaling_max_freq")).strip()
        cur = _read(os.path.join(d, "cpufreq/scaling_cur_freq")).strip()
        if lo or hi:
            cpus[name] = {"Online": online, "MinFreq": lo, "MaxFreq": hi, "CurrentFreq": cur}
    gpu: Dict[str, str] = {}
    for d in sorted(glob.glob(os.path.join(root, "sys/class/devfreq/*"))):
        base = os.path.basename(d).lower()
        if any(k in base for k in ("gpu", "ga10b", "gv11b", "gp10b", "gb10b")):
            gpu = {"MinFreq": _read(os.path.join(d, "min_freq")).strip(),
                   "MaxFreq": _read(os.path.join(d, "max_freq")).strip(),
                   "CurrentFreq": _read(os.path.join(d, "cur_freq")).strip()}
            break
    return {"cpus": cpus, "gpu": gpu, "emc": {}, "power_mode": None,
            "on": clocks_locked(cpus, gpu)}


def query_jetson(runner: Callable[[Sequence[str]], Tuple[int, str]] = run_cmd,
                 root: str = "/") -> Dict[str, object]:
    """nvpmodel mode, jetson_clocks state, L4T release and model; never raises."""
    out: Dict[str, object] = {
        "model": detect_jetson(root),
        "l4t_release": (_read(os.path.join(root, "etc/nv_tegra_release")).strip().splitlines()
                        or [None])[0],
    }
    for cmd in (["nvpmodel", "-q"], ["sudo", "-n", "nvpmodel", "-q"]):
        rc, text = runner(cmd)
        out["nvpmodel"] = dict(parse_nvpmodel(text), raw=text.strip()[-500:], exit_code=rc,
                               source=" ".join(cmd))
        if rc == 0 and out["nvpmodel"]["mode_name"]:
            break
    if rc != 0 or not out["nvpmodel"]["mode_name"]:
        out["nvpmodel"]["error"] = text.strip().splitlines()[-1] if text.strip() else f"exit {rc}"
    clocks = None
    for cmd in (["jetson_clocks", "--show"], ["sudo", "-n", "jetson_clocks", "--show"]):
        rc, text = runner(cmd)
        parsed = parse_jetson_clocks(text) if rc == 0 else None
        if parsed and parsed["on"] is not None:
            clocks = dict(parsed, source=" ".join(cmd))
            break
    if clocks is None:
        clocks = dict(jetson_clocks_from_sysfs(root),
                      source="sysfs (cpufreq scaling_min/max_freq, devfreq min/max_freq): "
                             "`jetson_clocks --show` needs root")
    out["jetson_clocks"] = clocks
    rc, text = runner(["dpkg-query", "-W", "-f=${Version}", "nvidia-jetpack"])
    out["jetpack"] = text.strip() if rc == 0 and text.strip() else None
    return out


_RAIL_RE = re.compile(
    r"(?<![\w@])([A-Za-z][A-Za-z0-9_]*) (\d+(?:\.\d+)?)(mW|W)?/(\d+(?:\.\d+)?)(mW|W)?"
    r"(?:/(\d+(?:\.\d+)?)(mW|W)?)?(?=\s|$)")
_RAIL_ONE_RE = re.compile(r"(?<![\w@])([A-Za-z][A-Za-z0-9_]*) (\d+(?:\.\d+)?)(mW|W)(?=\s|$)")
_TEMP_RE = re.compile(r"(?<![\w%])([A-Za-z][A-Za-z0-9_]*)@(-?\d+(?:\.\d+)?)C(?=[/\s]|$)")
_CPU_RE = re.compile(r"\bCPU \[([^\]]*)\](?:@(\d+))?")
_GPU_RE = re.compile(r"\bGR3D_FREQ (?:(\d+)%)?(?:@\[?([\d,]+)\]?)?")
_EMC_RE = re.compile(r"\bEMC_FREQ (\d+)%(?:@(\d+))?")
_RAM_RE = re.compile(r"\bRAM (\d+)/(\d+)MB")


def _mw(value: str, unit: Optional[str]) -> float:
    v = float(value)
    return v * 1000.0 if unit == "W" else v


def parse_tegrastats_line(line: str) -> Optional[Dict[str, object]]:
    """One tegrastats line -> {"rails": {NAME: {"cur_mw", "avg_mw"[, "max_mw"]}}, "temps_c",
    "cpu": {"load_pct", "freq_mhz", "online"}, "gpu": {"util_pct", "freq_mhz"}, "emc", "ram_mb"}.

    Formats handled: JetPack 5/6 Orin (``VDD_IN 4556mW/4556mW``, ``GR3D_FREQ 0%@[305]``,
    ``cpu@47.687C``), JetPack 7 (``5139mW/5139mW/5139mW`` cur/avg/max, ``cpu@52.968C/52.968C``,
    Thor ``GR3D_FREQ @[1000,1000,1000]``), older Jetsons without units (``VDD_IN 14025/14416``
    in mW, ``POM_5V_IN 4520/4680``) and single readings with a unit (``VDD_IN 4.5W``).
    Temperatures of -256 C (sensor off) are dropped. None for a line with nothing known."""
    rails: Dict[str, Dict[str, float]] = {}
    for m in _RAIL_RE.finditer(line):
        name = m.group(1)
        if name in NOT_RAILS:
            continue
        entry = {"cur_mw": _mw(m.group(2), m.group(3)), "avg_mw": _mw(m.group(4), m.group(5))}
        if m.group(6) is not None:
            entry["max_mw"] = _mw(m.group(6), m.group(7))
        rails[name] = entry
    for m in _RAIL_ONE_RE.finditer(line):
        name = m.group(1)
        if name not in NOT_RAILS and name not in rails:
            v = _mw(m.group(2), m.group(3))
            rails[name] = {"cur_mw": v, "avg_mw": v}
    temps = {}
    for m in _TEMP_RE.finditer(line):
        v = float(m.group(2))
        if v > -200:
            temps[m.group(1).lower()] = v
    out: Dict[str, object] = {"rails": rails, "temps_c": temps}
    m = _CPU_RE.search(line)
    if m:
        loads, freqs = [], []
        common = int(m.group(2)) if m.group(2) else None
        for part in m.group(1).split(","):
            part = part.strip()
            pm = re.fullmatch(r"(\d+)%(?:@(\d+))?", part)
            if pm:
                loads.append(int(pm.group(1)))
                f = pm.group(2)
                freqs.append(int(f) if f else common)
            else:  # "off"
                loads.append(None)
                freqs.append(None)
        out["cpu"] = {"load_pct": loads, "freq_mhz": freqs,
                      "online": sum(v is not None for v in loads)}
    m = _GPU_RE.search(line)
    if m and (m.group(1) or m.group(2)):
        fl = [int(v) for v in m.group(2).split(",") if v] if m.group(2) else []
        out["gpu"] = {"util_pct": int(m.group(1)) if m.group(1) else None,
                      "freq_mhz": max(fl) if fl else None}
    m = _EMC_RE.search(line)
    if m:
        out["emc"] = {"util_pct": int(m.group(1)),
                      "freq_mhz": int(m.group(2)) if m.group(2) else None}
    m = _RAM_RE.search(line)
    if m:
        out["ram_mb"] = [int(m.group(1)), int(m.group(2))]
    if not rails and not temps and len(out) == 2:
        return None
    return out


def total_power_mw(rails: Dict[str, Dict[str, float]]) -> Tuple[Optional[float], Optional[str]]:
    """(instantaneous total power in mW, the rule used). The module input rail where the board
    reports one (VDD_IN on Orin Nano / NX, VIN, POM_5V_IN on Nano); on AGX Orin the sum
    VDD_GPU_SOC + VDD_CPU_CV + VIN_SYS_5V0 (VDDQ_VDD2_1V8AO is inside VIN_SYS_5V0); otherwise
    the sum of every rail reported."""
    for r in TOTAL_RAILS:
        if r in rails:
            return rails[r]["cur_mw"], r
    if all(r in rails for r in AGX_ORIN_RAILS):
        return sum(rails[r]["cur_mw"] for r in AGX_ORIN_RAILS), "+".join(AGX_ORIN_RAILS)
    if rails:
        return sum(v["cur_mw"] for v in rails.values()), "sum of all reported rails"
    return None, None


def tegrastats_command(interval_ms: int) -> Optional[List[str]]:
    exe = shutil.which("tegrastats") or ("/usr/bin/tegrastats"
                                         if os.path.isfile("/usr/bin/tegrastats") else None)
    if exe is None:
        return None
    cmd = [exe, "--interval", str(int(interval_ms))]
    stdbuf = shutil.which("stdbuf")
    return ([stdbuf, "-oL"] + cmd) if stdbuf else cmd  # line-buffered through the pipe


class TegrastatsSampler:
    """Runs a tegrastats command and keeps (arrival time ``time.perf_counter()``, parsed line)."""

    def __init__(self, command: Sequence[str], clock: Callable[[], float] = time.perf_counter):
        self.command = list(command)
        self.clock = clock
        self.samples: List[Tuple[float, Dict[str, object]]] = []
        self.lines = 0
        self.error: Optional[str] = None
        self._lock = threading.Lock()
        self._proc: Optional[subprocess.Popen] = None
        self._thread: Optional[threading.Thread] = None

    def start(self) -> "TegrastatsSampler":
        try:
            self._proc = subprocess.Popen(self.command, stdout=subprocess.PIPE,
                                          stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
                                          text=True, bufsize=1)
        except OSError as exc:
            self.error = f"cannot start {self.command[0]}: {exc}"
            return self
        self._thread = threading.Thread(target=self._read, name="tegrastats", daemon=True)
        self._thread.start()
        return self

    def _read(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        for line in self._proc.stdout:
            t = self.clock()
            parsed = parse_tegrastats_line(line)
            with self._lock:
                self.lines += 1
                if parsed is not None:
                    self.samples.append((t, parsed))

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=3)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(timeout=3)
        if self._thread is not None:
            self._thread.join(timeout=3)

    def window(self, t0: float, t1: float) -> List[Dict[str, object]]:
        with self._lock:
            return [p for t, p in self.samples if t0 <= t <= t1]


def _mean(values: Iterable[Optional[float]]) -> Optional[float]:
    vals = [float(v) for v in values if v is not None]
    return sum(vals) / len(vals) if vals else None


def power_summary(samples: Sequence[Dict[str, object]], wall_s: float, frames: int,
                  idle_mw: Optional[float] = None) -> Dict[str, object]:
    """Average power of a phase's tegrastats samples and energy per frame (mJ)."""
    if not samples:
        return {"samples": 0, "note": "no tegrastats sample inside this phase (run more --runs, "
                                      "or a shorter --tegrastats-interval)"}
    totals, rule = [], None
    for s in samples:
        v, r = total_power_mw(s["rails"])
        if v is not None:
            totals.append(v)
            rule = rule or r
    rails: Dict[str, float] = {}
    for name in sorted({n for s in samples for n in s["rails"]}):
        rails[name] = _mean(s["rails"][name]["cur_mw"] for s in samples if name in s["rails"])
    temps: Dict[str, float] = {}
    for name in sorted({n for s in samples for n in s["temps_c"]}):
        temps[name] = max(s["temps_c"][name] for s in samples if name in s["temps_c"])
    out: Dict[str, object] = {
        "samples": len(samples),
        "total_rule": rule,
        "avg_total_mw": _mean(totals),
        "rails_avg_mw": rails,
        "gpu_freq_mhz_avg": _mean(s.get("gpu", {}).get("freq_mhz") for s in samples),
        "gpu_util_pct_avg": _mean(s.get("gpu", {}).get("util_pct") for s in samples),
        "cpu_freq_mhz_avg": _mean(f for s in samples for f in s.get("cpu", {}).get("freq_mhz", [])),
        "cpu_load_pct_avg": _mean(v for s in samples for v in s.get("cpu", {}).get("load_pct", [])),
        "emc_freq_mhz_avg": _mean(s.get("emc", {}).get("freq_mhz") for s in samples),
        "temps_c_max": temps,
    }
    avg = out["avg_total_mw"]
    if avg is not None and frames > 0:
        out["energy_mj_per_frame"] = avg * wall_s / frames
        if idle_mw is not None:
            out["idle_mw"] = idle_mw
            out["energy_above_idle_mj_per_frame"] = (avg - idle_mw) * wall_s / frames
    if len(samples) < 5:
        out["note"] = f"only {len(samples)} tegrastats samples in this phase: power is rough"
    return out


TRTEXEC_FLAGS = {
    "--useCudaGraph": "CUDA graph launch: ON (trtexec 11 default; off by default in 10.x)",
    "--useSpinWait": "spin-wait synchronisation: ON (trtexec 11 default; off in 10.x)",
    "--noDataTransfers": "no H2D / D2H copies: ON (trtexec 11 default; copies on in 10.x); "
                         "GPU compute time only",
    "--duration=0": "iteration-bound run (10.x default is at least 3 s)",
    "--percentile=90,95,99": "tail percentiles (trtexec also prints min / max / mean / median)",
}


def trtexec_command(engine: str, plugin_lib: str, batch: int, hw: Tuple[int, int], runs: int,
                    warmup_ms: int = TRTEXEC_WARMUP_MS, times_file: Optional[str] = None) -> str:
    """The trtexec run of one engine with every timing flag explicit (values of
    ``TRTEXEC_FLAGS``): the same command measures the same thing on TensorRT 10.x and 11.x."""
    h, w = hw
    parts = ["trtexec", f"--loadEngine={shlex.quote(engine)}",
             f"--staticPlugins={shlex.quote(plugin_lib)}",
             f"--shapes=image:{batch}x3x{h}x{w}", f"--warmUp={int(warmup_ms)}",
             f"--iterations={int(runs)}"]
    parts += list(TRTEXEC_FLAGS)
    if times_file:
        parts.append(f"--exportTimes={shlex.quote(times_file)}")
    return " ".join(parts)


# ============================================================================ models
def file_sha256(path: os.PathLike | str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _key(*parts: object) -> str:
    return hashlib.sha256("\n".join(str(p) for p in parts).encode()).hexdigest()[:12]


@dataclass
class ModelSource:
    preset: str
    checkpoint: Path
    fp32_onnx: Path
    weights: str            # "shipped (trained)", "random init (seed 0)", "checkpoint X"
    notes: List[str] = field(default_factory=list)


def _random_checkpoint(preset: str, seed: int, work: Path) -> Path:
    """Random-init weights of ``preset`` (torch default init, head classification biases
    RANDOM_CLS_BIAS), saved once per (preset, seed) so that every backend runs the same."""
    path = work / f"{preset}-random-seed{seed}-bias{RANDOM_CLS_BIAS:g}.pt"
    if path.is_file():
        return path
    import torch

    from oscar_edge.checkpoint import model_checkpoint, save
    from oscar_edge.models import build_model

    torch.manual_seed(seed)
    model = build_model(preset)
    with torch.no_grad():
        for conv in (model.head.refine_cls, model.head.coarse_cls):
            conv.bias.fill_(RANDOM_CLS_BIAS)
    save(model_checkpoint(model, {"note": f"random init for latency only (seed {seed})"}), path)
    return path


def _export(checkpoint: Path, work: Path, log_fn=log) -> Path:
    from oscar_edge.export import onnx_export

    key = _key(file_sha256(checkpoint), file_sha256(onnx_export.__file__))
    out = work / f"{checkpoint.stem}-{key}.fp32.onnx"
    if out.is_file():
        return out
    log_fn(f"exporting {checkpoint.name} to ONNX ({out.name}) ...")
    with contextlib.redirect_stdout(sys.stderr):
        onnx_export.export_onnx(checkpoint, out)
    return out


def model_source(args: argparse.Namespace, work: Path) -> ModelSource:
    from oscar_edge.backends.factory import SHIPPED_ONNX
    from oscar_edge.checkpoint import SHIPPED_WEIGHTS, read

    if args.checkpoint:
        ckpt = Path(args.checkpoint)
        preset = str(read(ckpt)["preset"])
        if preset != args.preset:
            log(f"note: --checkpoint holds preset {preset}; --preset {args.preset} ignored")
        return ModelSource(preset, ckpt, _export(ckpt, work), f"checkpoint {ckpt}")
    from oscar_edge.presets import get_preset

    get_preset(args.preset)  # KeyError listing the presets
    if args.preset == SHIPPED_PRESET:
        if not SHIPPED_WEIGHTS.is_file() or not SHIPPED_ONNX.is_file():
            raise UserError(f"the shipped model is missing ({SHIPPED_WEIGHTS}, {SHIPPED_ONNX})")
        return ModelSource(SHIPPED_PRESET, SHIPPED_WEIGHTS, SHIPPED_ONNX, "shipped (trained)")
    ckpt = _random_checkpoint(args.preset, args.seed, work)
    note = (f"{args.preset} has no trained weights: random-init weights (seed {args.seed}; head "
            f"classification biases {RANDOM_CLS_BIAS:g} so that few locations pass the score "
            "threshold, as with a trained model). Latency only: its detections mean nothing, "
            "and its post-processing time is a lower bound (few candidates)")
    return ModelSource(args.preset, ckpt, _export(ckpt, work), f"random init (seed {args.seed})",
                       [note])


def calibration_paths(args: argparse.Namespace, data: Path) -> List[str]:
    from oscar_edge.export.quantize import select_calibration_images

    return select_calibration_images(data, args.calib_split, args.calib_images, args.seed)


def reduced_graph(fp32: Path, precision: str, args: argparse.Namespace, data: Path,
                  work: Path) -> Path:
    """INT8 (``quantize_int8``; ``int8-ortq``: ``quantize_int8_ort``) or FP16
    (``convert_fp16``) version of ``fp32``, cached."""
    from oscar_edge.export import quantize

    paths = calibration_paths(args, data)
    recipe = _key(precision, file_sha256(quantize.__file__), "\n".join(Path(p).stem for p in paths),
                  args.calib_split, args.seed, _pkg_version("nvidia-modelopt"),
                  _pkg_version("onnxruntime"), _pkg_version("onnx"))
    stem = fp32.stem.replace(".fp32", "")
    out = work / f"{stem}-{file_sha256(fp32)[:12]}.{precision}-{recipe}.onnx"
    if out.is_file():
        return out
    how = {"int8": "ModelOpt PTQ", "int8-ortq": "ONNX Runtime quantize_static",
           "fp16": "ModelOpt AutoCast"}[precision]
    log(f"{precision}: {how} of "
        f"{fp32.name} on {len(paths)} calibration images -> {out} ...")
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(sys.stderr):
        if precision == "int8":
            quantize.quantize_int8(fp32, out, paths, split=args.calib_split, seed=args.seed)
        elif precision == "int8-ortq":
            quantize.quantize_int8_ort(fp32, out, paths, split=args.calib_split, seed=args.seed)
        else:
            quantize.convert_fp16(fp32, out, paths, split=args.calib_split, seed=args.seed)
    log(f"{precision} graph ready in {time.perf_counter() - t0:.0f} s")
    return out


def trt_unavailable_reason() -> Optional[str]:
    """Why the TensorRT backends cannot run here, or None."""
    if importlib.util.find_spec("tensorrt") is None:
        return "not available: TensorRT not installed"
    try:
        importlib.import_module("tensorrt")
    except Exception as exc:
        return f"not available: TensorRT does not import ({_first_line(exc)})"
    try:
        has_cuda = importlib.util.find_spec("cuda") is not None
    except (ImportError, ValueError):
        has_cuda = False
    if not has_cuda:
        return "not available: cuda-python not installed (pip install cuda-python)"
    return None


def plugin_library(args: argparse.Namespace) -> Path:
    from oscar_edge.export.build_engine import default_plugin_library

    return Path(args.plugin_lib) if args.plugin_lib else default_plugin_library()[0]


def _shown(path: os.PathLike | str) -> str:
    """``path`` relative to the current folder when it lies below it (shorter commands)."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def trt_engine(fp32: Path, precision: str, batch: int, hw: Tuple[int, int],
               args: argparse.Namespace, data: Path, work: Path) -> Path:
    """A static-shape engine (B, 3, H, W) of ``fp32`` + decode/NMS plugins, cached; peak
    refinement off, like the CPU path of ``Detector``. Built with build_engine's own code."""
    from oscar_edge.export import build_engine

    lib = plugin_library(args)
    shape = f"{batch}x3x{hw[0]}x{hw[1]}"
    key = _key(file_sha256(fp32), precision, shape, tensorrt_version(),
               file_sha256(lib) if lib.is_file() else lib, file_sha256(build_engine.__file__),
               args.calib_images, args.calib_split, args.seed)
    out = work / f"{fp32.stem.replace('.fp32', '')}.{precision}.{shape}-{key}.engine"
    if out.is_file() and Path(str(out) + ".json").is_file():
        return out
    argv = ["--onnx", str(fp32), "--precision", precision, "--out", str(out),
            "--min-shape", shape, "--opt-shape", shape, "--max-shape", shape,
            "--peak-refine", "off", "--plugin-lib", str(lib),
            "--timing-cache", str(work / "trt-timing.cache"),
            "--calib-data", str(data), "--calib-split", args.calib_split,
            "--calib-images", str(args.calib_images), "--seed", str(args.seed)]
    log(f"building TensorRT engine {out.name} (python export/build_engine.py "
        f"{' '.join(shlex.quote(a) for a in argv)}) ...")
    with contextlib.redirect_stdout(sys.stderr):
        rc = build_engine.main(argv)
    if rc != 0 or not out.is_file():
        raise RuntimeError(f"engine build failed (build_engine exit code {rc}; its log is above "
                           "on stderr)")
    return out


# ============================================================================ backends
@dataclass
class Handle:
    name: str
    label: str
    infer: Callable
    close: Callable[[], None]
    model_file: Optional[str] = None
    info: Dict[str, object] = field(default_factory=dict)


class Unavailable(Exception):
    """A backend that cannot run here (reported, not an error)."""


def make_handle(name: str, src: ModelSource, args: argparse.Namespace, data: Path, work: Path,
                batch: int, hw: Tuple[int, int]) -> Handle:
    from oscar_edge.backends.base import close_backend

    if name == "torch":
        import torch

        from oscar_edge.backends.torch_backend import TorchBackend
        from oscar_edge.checkpoint import load_model

        if args.threads:
            torch.set_num_threads(int(args.threads))
        model, _ = load_model(src.checkpoint)
        b = TorchBackend(model, args.torch_device)
        return Handle(name, f"PyTorch {torch.__version__} eager FP32 ({args.torch_device})", b,
                      lambda: None, str(src.checkpoint),
                      {"torch_threads": torch.get_num_threads(),
                       "torch_interop_threads": torch.get_num_interop_threads()})
    if name.startswith("ort"):
        from oscar_edge.backends.ort_backend import OrtBackend

        path = src.fp32_onnx if name == "ort" else \
            reduced_graph(src.fp32_onnx, name[len("ort-"):], args, data, work)
        b = OrtBackend(path, threads=args.threads or None)
        import onnxruntime

        meta = {k: v for k, v in b.metadata.items()
                if k.startswith(("calib_", "int8_", "modelopt", "precision"))
                and k != "calib_images"}
        return Handle(name, f"ONNX Runtime {onnxruntime.__version__} CPU {b.precision}", b,
                      lambda: close_backend(b), str(path),
                      {"precision": b.precision, "providers": b.providers,
                       "intra_op_threads": args.threads or "default (one per physical core)",
                       "graph_metadata": meta})
    if name.startswith("trt-"):
        reason = trt_unavailable_reason()
        if reason:
            raise Unavailable(reason)
        from oscar_edge.backends.trt_backend import TrtBackend

        engine = trt_engine(src.fp32_onnx, name.split("-")[1], batch, hw, args, data, work)
        b = TrtBackend(engine, plugins=str(plugin_library(args)))
        return Handle(name, f"TensorRT {tensorrt_version()} {b.precision} engine (decode + NMS "
                            "plugins inside, host<->device copies included)", b,
                      lambda: close_backend(b), str(engine), {"precision": b.precision})
    raise UserError(f"unknown backend {name}")


# ============================================================================ frames
def list_frames(data: Path, split: str, count: int) -> List[Path]:
    from oscar_edge.data.annotations import IMAGE_DIR, SPLIT_DIR, read_split

    if not data.is_dir():
        raise UserError(f"data folder not found: {data} (pass --data, e.g. "
                        "../shared/data/sirst-v2)")
    if (data / SPLIT_DIR).is_dir():
        paths = [data / IMAGE_DIR / f"{n}.png" for n in read_split(data, split)]
    else:
        paths = sorted(p for p in data.iterdir()
                       if p.suffix.lower() in (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"))
    if not paths:
        raise UserError(f"no frames in {data} (split {split})")
    return paths[:max(1, count)]


def load_frames(paths: Sequence[Path]) -> List[np.ndarray]:
    from oscar_edge.preprocess import read_grey

    return [read_grey(str(p)) for p in paths]


def letterboxed_batches(greys: Sequence[np.ndarray], batch: int,
                        hw: Tuple[int, int]) -> List[np.ndarray]:
    """The model-only inputs: frame i*B .. i*B+B-1 letterboxed to ``hw`` and stacked, for as
    many batches as it takes to use every frame once (at least one)."""
    from oscar_edge.preprocess import prepare

    xs = [prepare(g, input_size=hw)[0] for g in greys]
    n = max(1, math.ceil(len(xs) / batch))
    return [np.ascontiguousarray(np.stack([xs[(i * batch + b) % len(xs)] for b in range(batch)]))
            for i in range(n)]


# ============================================================================ timing
def time_model_only(infer: Callable, batches: Sequence[np.ndarray], runs: int,
                    warmup: int) -> Tuple[np.ndarray, int]:
    """(per-call ns, wall ns of the timed loop)."""
    n = len(batches)
    for i in range(warmup):
        infer(batches[i % n])
    pc = time.perf_counter_ns
    samples = np.empty(runs, dtype=np.int64)
    start = pc()
    for i in range(runs):
        x = batches[i % n]
        t0 = pc()
        infer(x)
        samples[i] = pc() - t0
    return samples, pc() - start


def time_full_path(detector, greys: Sequence[np.ndarray], batch: int, runs: int,
                   warmup: int) -> Tuple[Dict[str, np.ndarray], int, float]:
    """Grey frames -> detections: ({stage: ns per iteration, "total": ns}, wall ns, mean
    detections per frame)."""
    n = len(greys)
    pc = time.perf_counter_ns
    out = {k: np.empty(runs, dtype=np.int64) for k in STAGES + ("total",)}
    dets = 0

    def one(i: int):
        frames = [greys[(i * batch + b) % n] for b in range(batch)]
        t0 = pc()
        prepared = [detector.preprocess(g) for g in frames]
        x = prepared[0][0][None] if batch == 1 else np.stack([p[0] for p in prepared])
        t1 = pc()
        outs = detector.infer(x)
        t2 = pc()
        # the prepared input goes along: the default pipeline's peak refinement reads it
        if batch == 1:
            found = [detector.postprocess(outs, prepared[0][1], prepared[0][0])]
        else:
            found = [detector.postprocess(tuple(np.asarray(o)[b:b + 1] for o in outs),
                                          prepared[b][1], prepared[b][0]) for b in range(batch)]
        t3 = pc()
        return (t0, t1, t2, t3), found

    for i in range(warmup):
        one(i)
    start = pc()
    for i in range(runs):
        (t0, t1, t2, t3), found = one(i)
        out["preprocess"][i] = t1 - t0
        out["inference"][i] = t2 - t1
        out["postprocess"][i] = t3 - t2
        out["total"][i] = t3 - t0
        dets += sum(len(d.scores) for d in found)
    return out, pc() - start, dets / (runs * batch)


# ============================================================================ GFLOPs
def model_complexity(preset: str, sizes: Sequence[Tuple[int, int]]) -> Dict[str, object]:
    try:
        from oscar_edge.models import build_model
        from oscar_edge.models.complexity import count_gflops, count_params
    except ImportError as exc:
        return {"error": f"torch not importable ({exc}): no FLOP count"}
    model = build_model(preset)
    return {"params_M": count_params(model) / 1e6,
            "gflop_mac": {size_label(hw): count_gflops(model, hw[0], hw[1]) for hw in sizes}}


# ============================================================================ the run
def run_benchmark(args: argparse.Namespace) -> Dict[str, object]:
    from oscar_edge.data import default_data_root

    backends = parse_backends(args.backends)
    sizes = [parse_size(s) for s in args.sizes.split(",") if s.strip()] if args.sizes \
        else [parse_size(args.size)]
    if args.batch < 1 or args.runs < 1 or args.warmup < 0 or args.frames < 1:
        raise UserError("--batch, --runs and --frames must be >= 1, --warmup >= 0")
    if args.threads is not None and args.threads < 1:
        raise UserError(f"--threads must be >= 1, got {args.threads}")
    data = Path(args.data or default_data_root())
    work = Path(args.work_dir) if args.work_dir else default_work_dir()
    work.mkdir(parents=True, exist_ok=True)
    frame_paths = list_frames(data, args.split, args.frames)
    greys = load_frames(frame_paths)
    log(f"{len(greys)} frames of {data} ({args.split}) decoded to grey")

    jetson_desc = None if args.no_jetson else detect_jetson()
    jetson_mode = bool(args.jetson or jetson_desc)
    record: Dict[str, object] = {
        "format": FORMAT,
        "command": "python " + " ".join(shlex.quote(a)
                                         for a in [_script_path()] + list(args._argv)),
        "date_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine_info(),
        "versions": versions(),
        "load_average_start": load_average(),
    }
    src = model_source(args, work)
    torch_threads = None
    try:  # the FLOP count needs torch as well
        import torch

        if args.threads:
            torch.set_num_threads(int(args.threads))
        torch_threads = {"intra_op": torch.get_num_threads(),
                         "inter_op": torch.get_num_interop_threads()}
    except ImportError:
        pass
    record["threads"] = {
        "requested": args.threads,
        "torch": torch_threads,
        "onnxruntime": {"intra_op": args.threads or "default (one per physical core)",
                        "inter_op": "default", "spin_wait": "default (on)"},
        "env": {k: os.environ[k] for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS",
                                           "OPENBLAS_NUM_THREADS", "ORT_NUM_THREADS")
                if k in os.environ},
        "gc": "Python default (enabled)",
    }
    record["settings"] = {
        "preset": src.preset, "weights": src.weights, "checkpoint": str(src.checkpoint),
        "fp32_onnx": str(src.fp32_onnx), "backends": backends,
        "sizes_wxh": [size_label(s) for s in sizes], "batch": args.batch, "runs": args.runs,
        "warmup": args.warmup, "data": str(data), "split": args.split,
        "frames": [p.stem for p in frame_paths],
        "frame_shapes": sorted({f"{g.shape[1]}x{g.shape[0]}" for g in greys}),
        "calibration": {"split": args.calib_split, "images": args.calib_images,
                        "seed": args.seed},
        "work_dir": str(work),
        "postprocess": "native C++ library (liboscar_postprocess.so) through "
                       "pipeline.Detector; peak refinement as Detector runs it (no image passed "
                       "-> off); TensorRT engines end in the decode + NMS plugins",
        "unstable_rule": UNSTABLE_RULE.format(cv=args.cv_limit, tail=args.tail_limit,
                                              trt=TRTEXEC_CV_LIMIT_PCT),
        "flop_convention": "GFLOP = multiply-accumulates of the convolutions x 1e-9 (1 MAC = "
                           "1 FLOP, MMCV / the OSCAR paper); 2xMAC columns count 2 FLOP per MAC",
        "notes": list(src.notes),
    }
    record["model"] = dict(model_complexity(src.preset, sizes), preset=src.preset)

    sampler = None
    idle_mw = None
    if jetson_mode:
        record["jetson"] = query_jetson()
        cmd = tegrastats_command(args.tegrastats_interval)
        if cmd is None:
            record["jetson"]["tegrastats"] = "not found: no power figures"
        else:
            sampler = TegrastatsSampler(cmd).start()
            record["jetson"]["tegrastats"] = " ".join(cmd)
            if sampler.error:
                record["jetson"]["tegrastats"] = sampler.error
                sampler = None
        if sampler is not None and args.idle_s > 0:
            log(f"idle power baseline ({args.idle_s:g} s) ...")
            t0 = time.perf_counter()
            time.sleep(args.idle_s)
            idle = power_summary(sampler.window(t0, time.perf_counter()), args.idle_s, 1)
            idle_mw = idle.get("avg_total_mw")
            record["jetson"]["idle"] = idle
    else:
        record["jetson"] = None

    results: List[Dict[str, object]] = []
    handles: Dict[str, Handle] = {}
    trtexec: Dict[str, str] = {}
    # Every graph and engine is made before the first timed call: no quantization or engine
    # build runs between two backends' measurements (it would heat the chip and load the CPU).
    failed = prepare_artifacts(backends, sizes, src, args, data, work)
    try:
        for hw in sizes:
            batches = letterboxed_batches(greys, args.batch, hw)
            for name in backends:
                results.append(measure_one(name, hw, batches, greys, src, args, data, work,
                                           handles, sampler, idle_mw, trtexec,
                                           failed.get((name, size_label(hw)))))
            for name in [n for n in handles if n.startswith("trt-")]:  # engines are per size
                handles.pop(name).close()
    finally:
        for h in handles.values():
            h.close()
        if sampler is not None:
            sampler.stop()
            record["jetson"]["tegrastats_lines"] = sampler.lines
    record["load_average_end"] = load_average()
    add_ratios(results, record["model"])
    record["results"] = results
    record["goals"] = goals(results, src.preset, record["machine"])
    if any(b.startswith("trt-") for b in backends) or jetson_mode:
        record["trtexec"] = {
            "flags": TRTEXEC_FLAGS,
            "commands": trtexec,
            "note": "every timing flag is given explicitly: trtexec 11 turns CUDA graphs, "
                    "spin-wait and no data transfers on by default, 10.x leaves them off, so "
                    "default runs of the two do not compare. These commands set the 11.x "
                    "defaults on both. GPU compute time of trtexec excludes the host<->device "
                    "copies and the Python overhead that the trt-* rows above include.",
        }
    return record


def prepare_artifacts(backends: Sequence[str], sizes: Sequence[Tuple[int, int]],
                      src: ModelSource, args: argparse.Namespace, data: Path,
                      work: Path) -> Dict[Tuple[str, str], Exception]:
    """Make (or find in the cache) the INT8 / FP16 graphs and the TensorRT engines up front.
    Returns {(backend, size): the exception} of what could not be made (reported per row)."""
    failed: Dict[Tuple[str, str], Exception] = {}
    trt_reason = trt_unavailable_reason() if any(b.startswith("trt-") for b in backends) \
        else None
    for name in backends:
        try:
            if name in ORT_REDUCED:
                reduced_graph(src.fp32_onnx, name[len("ort-"):], args, data, work)
        except Exception as exc:
            log(f"{name}: could not make its graph: {_first_line(exc)}")
            for hw in sizes:
                failed[(name, size_label(hw))] = exc
        if name.startswith("trt-") and trt_reason is None:
            for hw in sizes:
                try:
                    trt_engine(src.fp32_onnx, name.split("-")[1], args.batch, hw, args, data,
                               work)
                except Exception as exc:
                    log(f"{name} @ {size_label(hw)}: {_first_line(exc)}")
                    failed[(name, size_label(hw))] = exc
    return failed


def measure_one(name: str, hw: Tuple[int, int], batches, greys, src: ModelSource,
                args: argparse.Namespace, data: Path, work: Path, handles: Dict[str, Handle],
                sampler: Optional[TegrastatsSampler], idle_mw: Optional[float],
                trtexec: Dict[str, str],
                prepare_error: Optional[Exception] = None) -> Dict[str, object]:
    from oscar_edge.pipeline import Detector

    label = size_label(hw)
    res: Dict[str, object] = {"backend": name, "size": label, "input_hw": list(hw),
                              "batch": args.batch}
    if prepare_error is not None:
        return dict(res, status="failed", reason=f"failed: {_first_line(prepare_error)}")
    try:
        if name not in handles:
            handles[name] = make_handle(name, src, args, data, work, args.batch, hw)
        h = handles[name]
    except Unavailable as exc:
        log(f"{name} @ {label}: {exc}")
        if name.startswith("trt-"):
            trtexec.setdefault(f"{name} {label}", trtexec_command(
                f"<{name} engine>", _shown(plugin_library(args)), args.batch, hw, args.runs))
        return dict(res, status="unavailable", reason=str(exc))
    except Exception as exc:  # a model / package problem: report it, go on with the others
        log(f"{name} @ {label}: failed: {_first_line(exc)}")
        return dict(res, status="failed", reason=f"failed: {_first_line(exc)}")
    if name.startswith("trt-") and h.model_file:
        trtexec[f"{name} {label}"] = trtexec_command(_shown(h.model_file),
                                                     _shown(plugin_library(args)), args.batch,
                                                     hw, args.runs,
                                                     times_file=_shown(h.model_file)
                                                     + ".times.json")
    res.update(status="ok", label=h.label, model_file=h.model_file, info=h.info)
    cpus = os.cpu_count() or 1
    try:
        # ---- model only
        log(f"{name} @ {label}: model only, {args.warmup} warm-up + {args.runs} timed calls")
        load0 = load_average()
        c0 = cpu_snapshot()
        t0 = time.perf_counter()
        samples, wall = time_model_only(h.infer, batches, args.runs, args.warmup)
        t1 = time.perf_counter()
        stats = summarize(samples, args.batch, wall)
        mo: Dict[str, object] = {"stats": stats, "load_average_before": load0,
                                 "other_cpu_pct": others_cpu_pct(c0, cpu_snapshot(), cpus),
                                 "samples_ms": [round(v / 1e6, 4) for v in samples.tolist()]}
        w = spread_warning(stats, args.cv_limit, args.tail_limit)
        if w:
            mo["warning"] = w
        if sampler is not None:
            mo["power"] = power_summary(sampler.window(t0, t1), wall / 1e9,
                                        args.runs * args.batch, idle_mw)
        res["model_only"] = mo
        # ---- frame to detections
        log(f"{name} @ {label}: frame to detections, {args.warmup} warm-up + {args.runs} timed")
        det = Detector(h.infer, input_size=hw, postprocess="native")
        load1 = load_average()
        c0 = cpu_snapshot()
        t0 = time.perf_counter()
        stage_ns, wall, dets = time_full_path(det, greys, args.batch, args.runs, args.warmup)
        t1 = time.perf_counter()
        other = others_cpu_pct(c0, cpu_snapshot(), cpus)
        fp: Dict[str, object] = {
            "total": summarize(stage_ns["total"], args.batch, wall),
            "stages": {k: summarize(stage_ns[k], args.batch) for k in STAGES},
            "postprocess_backend": det.postprocess_backend,
            "detections_per_frame": dets,
            "load_average_before": load1,
            "other_cpu_pct": other,
            "samples_ms": {k: [round(v / 1e6, 4) for v in stage_ns[k].tolist()]
                           for k in STAGES + ("total",)},
        }
        w = spread_warning(fp["total"], args.cv_limit, args.tail_limit)
        if w:
            fp["warning"] = w
        if sampler is not None:
            fp["power"] = power_summary(sampler.window(t0, t1), wall / 1e9,
                                        args.runs * args.batch, idle_mw)
        res["full_path"] = fp
        for key in ("model_only", "full_path"):
            pct = res[key]["other_cpu_pct"]
            if pct is not None and pct > BUSY_OTHERS_PCT:
                res[key]["busy"] = (f"other processes used {pct:.0f} % of the {cpus} CPUs "
                                    f"(> {BUSY_OTHERS_PCT:g} %)")
    except Exception as exc:
        log(f"{name} @ {label}: failed while timing: {_first_line(exc)}")
        res.update(status="failed", reason=f"failed while timing: {_first_line(exc)}")
    return res


def add_ratios(results: List[Dict[str, object]], model: Dict[str, object]) -> None:
    """Speed vs PyTorch eager (same size, same run) and achieved GFLOP/s, in place."""
    gflop = model.get("gflop_mac", {}) if isinstance(model, dict) else {}
    ok = [r for r in results if r["status"] == "ok"]
    for r in ok:
        ref = next((t for t in ok if t["backend"] == "torch" and t["size"] == r["size"]), None)
        p50 = r["model_only"]["stats"]["p50_ms"]
        full = r["full_path"]["total"]["p50_ms"]
        ratios = {}
        if ref is not None:
            ratios["model_only_vs_torch"] = ref["model_only"]["stats"]["p50_ms"] / p50
            ratios["full_path_vs_torch"] = ref["full_path"]["total"]["p50_ms"] / full
        r["ratios"] = ratios
        g = gflop.get(r["size"])
        if g is not None:
            r["gflop_mac_per_image"] = g
            r["achieved_gflops"] = g * r["batch"] / (p50 / 1e3)
            r["achieved_gflops_2mac"] = 2 * r["achieved_gflops"]


# ============================================================================ goals
def _res(results, backend: str, size: str):
    return next((r for r in results if r["backend"] == backend and r["size"] == size
                 and r["status"] == "ok"), None)


def _stage_breakdown(r: Dict[str, object]) -> str:
    fp = r["full_path"]
    total = fp["total"]["p50_ms"]
    parts = []
    for k in STAGES:
        v = fp["stages"][k]["p50_ms"]
        parts.append(f"{k} {v:.2f} ms ({100 * v / total:.0f} %)")
    return ", ".join(parts)


def _largest_stage(r: Dict[str, object]) -> str:
    st = r["full_path"]["stages"]
    k = max(STAGES, key=lambda s: st[s]["p50_ms"])
    return k


FULL_GOAL = (f"{SHIPPED_PRESET} frame to detections < {GOAL_FULL_P50_MS:g} ms p50 at "
             f"{size_label(GOAL_SIZE)}")
POST_GOAL = f"post-processing < {100 * GOAL_POST_SHARE:g} % of that path (p50)"


def goals(results: List[Dict[str, object]], preset: str,
          machine: Dict[str, object]) -> List[Dict[str, object]]:
    """One row per (goal, size, backend where it applies): value, target, status, why."""
    rows: List[Dict[str, object]] = []
    sizes = []
    for r in results:
        if r["size"] not in sizes:
            sizes.append(r["size"])
    isa = machine.get("isa", {}) if isinstance(machine, dict) else {}
    goal_measured = False
    for size in sizes:
        torch_r, ort_r = _res(results, "torch", size), _res(results, "ort", size)
        g = {"goal": f"ONNX Runtime FP32 >= {GOAL_ORT_VS_TORCH:g}x faster than PyTorch eager "
                     "(model only, p50)", "size": size, "backend": "ort",
             "target": f">= {GOAL_ORT_VS_TORCH:g}x"}
        if torch_r and ort_r:
            t50 = torch_r["model_only"]["stats"]["p50_ms"]
            o50 = ort_r["model_only"]["stats"]["p50_ms"]
            ratio = t50 / o50
            g.update(value=f"{ratio:.2f}x", status="PASS" if ratio >= GOAL_ORT_VS_TORCH else "MISS")
            if ratio < GOAL_ORT_VS_TORCH:
                g["why"] = f"inference itself: ORT p50 {o50:.2f} ms vs PyTorch {t50:.2f} ms"
        else:
            g.update(value="-", status="n/a", why="needs torch and ort in --backends")
        rows.append(g)
        for int8, fp32 in (("ort-int8", "ort"), ("ort-int8-ortq", "ort"), ("trt-int8", "trt-fp32")):
            a, b = _res(results, int8, size), _res(results, fp32, size)
            # ort-int8 always gets a row; ort-int8-ortq only when it ran; trt-int8 when either ran
            if a is None and (int8 == "ort-int8-ortq" or (int8 == "trt-int8" and b is None)):
                continue
            g = {"goal": f"INT8 Q/DQ >= {GOAL_INT8_VS_FP32:g}x faster than FP32 (model only, "
                         f"p50: {int8} vs {fp32})", "size": size, "backend": int8,
                 "target": f">= {GOAL_INT8_VS_FP32:g}x"}
            if a and b:
                ratio = b["model_only"]["stats"]["p50_ms"] / a["model_only"]["stats"]["p50_ms"]
                g.update(value=f"{ratio:.2f}x",
                         status="PASS" if ratio >= GOAL_INT8_VS_FP32 else "MISS")
                if ratio < GOAL_INT8_VS_FP32:
                    why = (f"inference: {int8} p50 {a['model_only']['stats']['p50_ms']:.2f} ms vs "
                           f"{fp32} {b['model_only']['stats']['p50_ms']:.2f} ms")
                    if int8 == "ort-int8":
                        why += ("; ONNX Runtime has no integer kernel for ModelOpt's TensorRT-style "
                                "Q/DQ (Q/DQ on layer inputs only): it runs FP32 Conv plus the "
                                "Q/DQ arithmetic (benchmarks/ort_op_profile.py); "
                                "ort-int8-ortq measures ONNX Runtime's own INT8 graph")
                    if int8.startswith("ort-int8") and isa and not isa.get("int8_dot_product"):
                        why += ("; this CPU has no INT8 dot-product instructions (none of "
                                f"{', '.join(INT8_DOT_FLAGS)} in its flags)")
                    g["why"] = why
            else:
                g.update(value="-", status="n/a", why=f"needs {int8} and {fp32} measured")
            rows.append(g)
        if not (preset == SHIPPED_PRESET and size == size_label(GOAL_SIZE)):
            continue
        goal_measured = True
        for r in [r for r in results if r["size"] == size and r["status"] == "ok"]:
            fp = r["full_path"]
            total = fp["total"]["p50_ms"]
            g = {"goal": FULL_GOAL, "size": size, "backend": r["backend"],
                 "target": f"< {GOAL_FULL_P50_MS:g} ms", "value": f"{total:.2f} ms",
                 "status": "PASS" if total < GOAL_FULL_P50_MS else "MISS",
                 "breakdown": _stage_breakdown(r)}
            if total >= GOAL_FULL_P50_MS:
                g["why"] = f"held back by {_largest_stage(r)}: {_stage_breakdown(r)}"
            rows.append(g)
            post = fp["stages"]["postprocess"]["p50_ms"]
            share = post / total if total > 0 else 0.0
            g = {"goal": POST_GOAL, "size": size, "backend": r["backend"],
                 "target": f"< {100 * GOAL_POST_SHARE:g} %",
                 "value": f"{100 * share:.1f} % ({post:.3f} ms)",
                 "status": "PASS" if share < GOAL_POST_SHARE else "MISS",
                 "breakdown": _stage_breakdown(r)}
            if share >= GOAL_POST_SHARE:
                g["why"] = (f"post-processing p50 {post:.3f} ms of {total:.2f} ms "
                            f"({fp['postprocess_backend']}, "
                            f"{fp['detections_per_frame']:.1f} detections per frame)")
            rows.append(g)
    if not goal_measured:
        why = (f"set for {SHIPPED_PRESET} at {size_label(GOAL_SIZE)}; this run: {preset} at "
               f"{', '.join(sizes)} (the post share of every run is in the tables)")
        for goal, target in ((FULL_GOAL, f"< {GOAL_FULL_P50_MS:g} ms"),
                             (POST_GOAL, f"< {100 * GOAL_POST_SHARE:g} %")):
            rows.append({"goal": goal, "size": "-", "backend": "-", "target": target,
                         "value": "-", "status": "n/a", "why": why})
    return rows


# ============================================================================ report
def _f(v: Optional[float], digits: Optional[int] = None) -> str:
    if v is None or (isinstance(v, float) and (math.isnan(v) or math.isinf(v))):
        return "-"
    if digits is not None:
        return f"{v:.{digits}f}"
    return f"{v:.2f}" if abs(v) >= 1 else f"{v:.3f}"


def _on_off(v: Optional[bool]) -> str:
    return "ON" if v else "OFF" if v is False else "unknown"


def markdown(record: Dict[str, object]) -> str:
    st = record["settings"]
    m = record["machine"]
    v = record["versions"]
    th = record["threads"]
    results = record["results"]
    L: List[str] = []
    sizes = st["sizes_wxh"]
    L.append(f"## Latency: `{st['preset']}` ({st['weights']}), "
             f"{'sizes ' + ', '.join(sizes) if len(sizes) > 1 else sizes[0]} (W x H), "
             f"batch {st['batch']}")
    L.append("")
    isa = m["isa"]
    L.append(f"- Machine: {m['cpu_model']}, {m['cpus_usable']} usable CPUs "
             f"({m['physical_cores'] or '?'} physical cores)"
             f"{', virtualized' if isa['virtualized'] else ''}; ISA: "
             f"{' '.join(isa['present']) or '-'}; absent: {' '.join(isa['absent']) or '-'}; "
             f"{m['os']['distribution'] or m['os']['platform']}")
    L.append(f"- Versions: Python {v['python']}, numpy {v['numpy']}, torch {v['torch']}, "
             f"onnxruntime {v['onnxruntime']}, ModelOpt {v['nvidia-modelopt']}, TensorRT "
             f"{v['tensorrt']}, oscar_edge {v['oscar_edge']} ({v.get('git', '?')})")
    torch_t = th["torch"] or {}
    L.append(f"- Threads: requested {th['requested'] or 'default'}; PyTorch intra-op "
             f"{torch_t.get('intra_op', '-')}, inter-op {torch_t.get('inter_op', '-')}; ONNX "
             f"Runtime intra-op {th['onnxruntime']['intra_op']}")
    L.append(f"- Frames: {len(st['frames'])} SIRST-V2 `{st['split']}` images "
             f"({', '.join(st['frame_shapes'])} px) letterboxed to each size; {st['runs']} timed "
             f"calls after {st['warmup']} warm-up calls per backend and phase; load average "
             f"{record['load_average_start']} at the start, {record['load_average_end']} at "
             "the end")
    L.append(f"- Date {record['date_utc']}; command: `{record['command']}`")
    for note in st["notes"]:
        L.append(f"- Note: {note}")
    if record.get("jetson"):
        j = record["jetson"]
        nv = j.get("nvpmodel", {})
        jc = j.get("jetson_clocks", {})
        L.append(f"- Jetson: {j.get('model') or 'not detected (forced with --jetson)'}; "
                 f"L4T {j.get('l4t_release')}; JetPack "
                 f"{j.get('jetpack') or '?'}; nvpmodel {nv.get('mode_name')} (id "
                 f"{nv.get('mode_id')}){' - ' + nv['error'] if nv.get('error') else ''}; "
                 f"jetson_clocks {_on_off(jc.get('on'))} (from {jc.get('source')}); "
                 f"tegrastats: {j.get('tegrastats')}")
        idle = j.get("idle")
        if idle and idle.get("avg_total_mw") is not None:
            L.append(f"- Idle power: {idle['avg_total_mw']:.0f} mW ({idle.get('total_rule')}, "
                     f"{idle['samples']} samples)")
    L.append("")
    ok = [r for r in results if r["status"] == "ok"]
    for size in sizes:
        rows = [r for r in ok if r["size"] == size]
        if not rows:
            continue
        gflop = (record["model"].get("gflop_mac") or {}).get(size)
        L.append(f"### {size}: model only (prepared float32 batch in, outputs out)")
        L.append("")
        per = (f"ms per call of {st['batch']} frames" if st["batch"] > 1 else "ms per frame")
        L.append(f"Latency in {per}; FPS = frames / s over the timed loop; vs torch = PyTorch "
                 "eager p50 / this p50."
                 + (f" {gflop:.3f} GFLOP per image (1 MAC = 1 FLOP, convolutions); GFLOP/s = "
                    "GFLOP x batch / p50." if gflop is not None else ""))
        L.append("")
        L.append("| backend | min | mean | p50 | p90 | p99 | max | CV % | p99/p50 | FPS | "
                 "vs torch | GFLOP/s (MAC) | GFLOP/s (2xMAC) |")
        L.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for r in rows:
            s = r["model_only"]["stats"]
            flag = " ⚠" if r["model_only"].get("warning") else ""
            vs = r.get("ratios", {}).get("model_only_vs_torch")
            L.append(f"| {r['backend']}{flag} | {_f(s['min_ms'])} | {_f(s['mean_ms'])} | "
                     f"{_f(s['p50_ms'])} | {_f(s['p90_ms'])} | {_f(s['p99_ms'])} | "
                     f"{_f(s['max_ms'])} | {s['cv_pct']:.1f} | {s['p99_over_p50']:.2f} | "
                     f"{s['throughput_fps']:.1f} | {_f(vs) + 'x' if vs else '-'} | "
                     f"{_f(r.get('achieved_gflops'), 1)} | "
                     f"{_f(r.get('achieved_gflops_2mac'), 1)} |")
        L.append("")
        L.append(f"### {size}: frame to detections (grey frame -> preprocess -> inference -> "
                 "decode + NMS)")
        L.append("")
        L.append("| backend | min | mean | p50 | p90 | p99 | max | CV % | FPS | vs torch | "
                 "pre p50 | infer p50 | post p50 | post share | dets/frame |")
        L.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for r in rows:
            fp = r["full_path"]
            s = fp["total"]
            stg = fp["stages"]
            flag = " ⚠" if fp.get("warning") else ""
            vs = r.get("ratios", {}).get("full_path_vs_torch")
            share = stg["postprocess"]["p50_ms"] / s["p50_ms"] if s["p50_ms"] else 0
            L.append(f"| {r['backend']}{flag} | {_f(s['min_ms'])} | {_f(s['mean_ms'])} | "
                     f"{_f(s['p50_ms'])} | {_f(s['p90_ms'])} | {_f(s['p99_ms'])} | "
                     f"{_f(s['max_ms'])} | {s['cv_pct']:.1f} | {s['throughput_fps']:.1f} | "
                     f"{_f(vs) + 'x' if vs else '-'} | {_f(stg['preprocess']['p50_ms'])} | "
                     f"{_f(stg['inference']['p50_ms'])} | {_f(stg['postprocess']['p50_ms'])} | "
                     f"{100 * share:.1f} % | {fp['detections_per_frame']:.1f} |")
        L.append("")
        powered = [r for r in rows if "power" in r["model_only"] or "power" in r["full_path"]]
        if powered:
            L.append(f"### {size}: power (tegrastats)")
            L.append("")
            L.append("| backend | phase | samples | avg total mW | mJ / frame | mJ / frame above "
                     "idle | GPU MHz | CPU MHz | max temp C |")
            L.append("|---|---|---:|---:|---:|---:|---:|---:|---:|")
            for r in powered:
                for phase, key in (("model only", "model_only"), ("frame to detections",
                                                                  "full_path")):
                    p = r[key].get("power")
                    if not p:
                        continue
                    temps = p.get("temps_c_max") or {}
                    L.append(f"| {r['backend']} | {phase} | {p['samples']} | "
                             f"{_f(p.get('avg_total_mw'), 0)} | "
                             f"{_f(p.get('energy_mj_per_frame'))} | "
                             f"{_f(p.get('energy_above_idle_mj_per_frame'))} | "
                             f"{_f(p.get('gpu_freq_mhz_avg'), 0)} | "
                             f"{_f(p.get('cpu_freq_mhz_avg'), 0)} | "
                             f"{_f(max(temps.values()) if temps else None, 1)} |")
            L.append("")
    if len(sizes) > 1:
        L.append("### Size sweep: latency vs input area")
        L.append("")
        L.append("| backend | size | Mpx | GFLOP (MAC) | model p50 ms | ms / Mpx | x smallest "
                 "(area x) | full p50 ms | GFLOP/s (MAC) |")
        L.append("|---|---|---:|---:|---:|---:|---:|---:|---:|")
        for b in st["backends"]:
            rows = [r for r in ok if r["backend"] == b]
            if not rows:
                continue
            base = rows[0]
            base_area = base["input_hw"][0] * base["input_hw"][1]
            for r in rows:
                area = r["input_hw"][0] * r["input_hw"][1]
                p50 = r["model_only"]["stats"]["p50_ms"]
                grow = p50 / base["model_only"]["stats"]["p50_ms"]
                L.append(f"| {b} | {r['size']} | {area / 1e6:.3f} | "
                         f"{_f(r.get('gflop_mac_per_image'), 3)} | {_f(p50)} | "
                         f"{_f(p50 / (area / 1e6))} | {grow:.2f}x ({area / base_area:.2f}x) | "
                         f"{_f(r['full_path']['total']['p50_ms'])} | "
                         f"{_f(r.get('achieved_gflops'), 1)} |")
        L.append("")
    others = [r for r in results if r["status"] != "ok"]
    if others:
        L.append("### Not measured")
        L.append("")
        for r in others:
            L.append(f"- {r['backend']} @ {r['size']}: {r['reason']}")
        L.append("")
    warnings = []
    for r in ok:
        for key, phase in (("model_only", "model only"), ("full_path", "frame to detections")):
            if r[key].get("warning"):
                warnings.append(f"{r['backend']} @ {r['size']}, {phase}: unstable timings "
                                f"({r[key]['warning']})")
            if r[key].get("busy"):
                warnings.append(f"{r['backend']} @ {r['size']}, {phase}: busy machine: "
                                f"{r[key]['busy']}")
    L.append("### Stability")
    L.append("")
    L.append(f"Rule: {st['unstable_rule']}; a phase is flagged busy when other processes "
             f"used more than {BUSY_OTHERS_PCT:g} % of the CPUs meanwhile (/proc/stat busy time "
             "minus this process's CPU time, steal included).")
    L.append("")
    shares = [f"{r['backend']} {r['size']} {_f(r['model_only'].get('other_cpu_pct'), 0)} / "
              f"{_f(r['full_path'].get('other_cpu_pct'), 0)}" for r in ok]
    if shares:
        L.append("Other processes' CPU use, % of all CPUs (model only / frame to detections): "
                 + "; ".join(shares) + ".")
        L.append("")
    if warnings:
        for w in warnings:
            L.append(f"- ⚠ {w}")
    else:
        L.append("- every phase within the limits")
    L.append("")
    if record.get("trtexec"):
        t = record["trtexec"]
        L.append("### trtexec equivalents")
        L.append("")
        L.append("Timing flags chosen explicitly (trtexec 11 defaults, set by hand on 10.x): "
                 + "; ".join(f"`{k}` {v}" for k, v in t["flags"].items()) + ".")
        L.append("")
        if t["commands"]:
            for k, cmd in t["commands"].items():
                L.append(f"- {k}: `{cmd}`")
        else:
            L.append("- no TensorRT backend requested (add trt-fp16 / trt-int8 to --backends)")
        L.append("")
        L.append(t["note"])
        L.append("")
    L.append("### Goals")
    L.append("")
    L.append("| goal | size | backend | measured | target | status | held back by / note |")
    L.append("|---|---|---|---|---|---|---|")
    for g in record["goals"]:
        L.append(f"| {g['goal']} | {g['size']} | {g['backend']} | {g.get('value', '-')} | "
                 f"{g['target']} | {g['status']} | {g.get('why', '')} |")
    L.append("")
    counted = [g for g in record["goals"] if g["status"] in ("PASS", "MISS")]
    passed = sum(g["status"] == "PASS" for g in counted)
    L.append(f"{passed} of {len(counted)} applicable goal checks met.")
    full = [g for g in record["goals"] if g["goal"] == FULL_GOAL and g["status"] != "n/a"]
    if full:
        L.append("Frame to detections breakdown (p50) per backend: "
                 + "; ".join(f"{g['backend']}: {g['breakdown']}" for g in full) + ".")
    return "\n".join(L) + "\n"


# ============================================================================ plot
def _plain_ticks(axis) -> None:
    """Log axis labelled 20, 50, 0.3 rather than 2x10^1."""
    from matplotlib.ticker import FuncFormatter

    fmt = FuncFormatter(lambda v, _: f"{v:g}")
    axis.set_major_formatter(fmt)
    axis.set_minor_formatter(fmt)


def write_plot(record: Dict[str, object], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    st = record["settings"]
    sizes = st["sizes_wxh"]
    ok = [r for r in record["results"] if r["status"] == "ok"]
    sweep = len(sizes) > 1
    ncols = len(sizes) + (1 if sweep else 0)
    fig, axes = plt.subplots(1, ncols, figsize=(max(6.5, 5.2 * ncols), 5.0), squeeze=False)
    colors = {"model": "#4C72B0", "full": "#DD8452"}
    for ax, size in zip(axes[0], sizes):
        rows = [r for r in ok if r["size"] == size]
        ticks, names = [], []
        for i, r in enumerate(rows):
            for j, (key, data) in enumerate((("model", r["model_only"]["samples_ms"]),
                                             ("full", r["full_path"]["samples_ms"]["total"]))):
                bp = ax.boxplot([data], positions=[3 * i + 1 + j], widths=0.8, whis=(1, 99),
                                patch_artist=True, showfliers=True,
                                flierprops={"markersize": 2, "alpha": 0.5},
                                medianprops={"color": "black"})
                for patch in bp["boxes"]:
                    patch.set_facecolor(colors[key])
            ticks.append(3 * i + 1.5)
            names.append(r["backend"])
        ax.set_xticks(ticks)
        ax.set_xticklabels(names, rotation=30, ha="right")
        ax.set_yscale("log")
        _plain_ticks(ax.yaxis)
        ax.set_ylabel("latency (ms)")
        ax.set_title(f"{size} (W x H), batch {st['batch']}")
        ax.grid(True, axis="y", which="both", alpha=0.3)
        ax.plot([], [], "s", color=colors["model"], label="model only")
        ax.plot([], [], "s", color=colors["full"], label="frame to detections")
        ax.legend(fontsize=8, loc="best")
    if sweep:
        ax = axes[0][-1]
        for i, b in enumerate(st["backends"]):
            rows = [r for r in ok if r["backend"] == b]
            if not rows:
                continue
            area = [r["input_hw"][0] * r["input_hw"][1] / 1e6 for r in rows]
            color = f"C{i}"
            ax.plot(area, [r["model_only"]["stats"]["p50_ms"] for r in rows], "o-", color=color,
                    label=f"{b} model only")
            ax.plot(area, [r["full_path"]["total"]["p50_ms"] for r in rows], "s--", color=color,
                    alpha=0.7, label=f"{b} frame to detections")
        first = next((r for b in st["backends"] for r in ok if r["backend"] == b), None)
        if first is not None:  # what latency proportional to area would look like
            a0 = first["input_hw"][0] * first["input_hw"][1] / 1e6
            y0 = first["model_only"]["stats"]["p50_ms"]
            xs = sorted({r["input_hw"][0] * r["input_hw"][1] / 1e6 for r in ok})
            ax.plot(xs, [y0 * x / a0 for x in xs], ":", color="grey",
                    label=f"proportional to area (from {first['backend']})")
        ax.set_xscale("log")
        ax.set_yscale("log")
        _plain_ticks(ax.xaxis)
        _plain_ticks(ax.yaxis)
        # x ticks only at the measured sizes (minor log labels would overlap there)
        from matplotlib.ticker import NullFormatter

        sizes = sorted({(r["input_hw"][0] * r["input_hw"][1] / 1e6, size_label(r["input_hw"]))
                        for r in ok})
        ax.set_xticks([a for a, _ in sizes])
        ax.set_xticklabels([f"{lbl}\n{a:.2f}" for a, lbl in sizes], fontsize=7)
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("input size (W x H) and area (Mpx)")
        ax.set_ylabel("p50 latency (ms)")
        ax.set_title("latency vs input area (p50)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(f"{st['preset']} ({st['weights']}) on {record['machine']['cpu_model']}; box "
                 "p25-p75, line p50, whiskers p1-p99", fontsize=9)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_json(record: Dict[str, object], path: str) -> None:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(p.name + ".tmp")
    tmp.write_text(json.dumps(record, indent=1, default=str) + "\n", encoding="utf-8")
    os.replace(tmp, p)


# ============================================================================ main
def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args._argv = argv
    return run_cli(lambda: _main(args), prog=PROG)


def _main(args: argparse.Namespace) -> int:
    record = run_benchmark(args)
    sys.stdout.write(markdown(record))
    sys.stdout.flush()
    if args.json_out:
        write_json(record, args.json_out)
        log(f"wrote {args.json_out}")
    if args.plot:
        write_plot(record, args.plot)
        log(f"wrote {args.plot}")
    failed = [f"{r['backend']} @ {r['size']}" for r in record["results"]
              if r["status"] == "failed"]
    if failed:
        log(f"failed: {', '.join(failed)} (reasons in the report); exit code 1")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
