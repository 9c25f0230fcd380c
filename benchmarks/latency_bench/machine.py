"""The machine a run measures: CPU model and ISA flags (/proc/cpuinfo), OS, package versions,
and the CPU time other processes take meanwhile (/proc/stat snapshots, load average)."""
from __future__ import annotations

import importlib.util
import os
import platform
import time
from dataclasses import dataclass
from typing import Dict, Iterable, List, Optional

import numpy as np

from .common import REPO, first_line, pkg_version, read_text, run_cmd

ISA_FLAGS_X86 = ("sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl",
                 "avx512_vnni", "avx512_bf16", "avx512_fp16", "avx_vnni", "amx_tile", "amx_int8",
                 "amx_bf16")
ISA_FLAGS_ARM = ("fp", "asimd", "fphp", "asimdhp", "asimddp", "i8mm", "bf16", "sve", "sve2")
INT8_DOT_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8", "asimddp", "i8mm")
BUSY_OTHERS_PCT = 10.0              # other processes' share of all CPUs that flags a phase


def parse_cpuinfo(text: str) -> Dict[str, object]:
    """Model name, vendor, flags (x86 ``flags`` / Arm ``Features``) and core counts of a
    /proc/cpuinfo text."""
    model = vendor = ""
    family: Optional[int] = None
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
        elif key == "cpu family" and family is None and value.isdigit():
            family = int(value)
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
            "family": family,
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


def tensorrt_version() -> str:
    if importlib.util.find_spec("tensorrt") is None:
        return "not installed"
    try:
        import tensorrt

        return str(getattr(tensorrt, "__version__", "unknown"))
    except Exception as exc:  # broken libnvinfer ...
        return f"does not import ({first_line(exc)})"


def versions() -> Dict[str, Optional[str]]:
    import cv2

    import oscar_edge

    out: Dict[str, Optional[str]] = {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "torch": pkg_version("torch"),
        "onnxruntime": pkg_version("onnxruntime") or pkg_version("onnxruntime-gpu"),
        "onnx": pkg_version("onnx"),
        "openvino": pkg_version("openvino"),
        "nvidia-modelopt": pkg_version("nvidia-modelopt"),
        "opencv": cv2.__version__,
        "tensorrt": tensorrt_version(),
        "cuda-python": pkg_version("cuda-python") or pkg_version("cuda-bindings"),
        "oscar_edge": oscar_edge.__version__,
        "matplotlib": pkg_version("matplotlib"),
    }
    rc, head = run_cmd(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], 5)
    if rc == 0:
        rc2, status = run_cmd(["git", "-C", str(REPO), "status", "--porcelain",
                               "--untracked-files=no"], 5)
        dirty = rc2 == 0 and bool(status.strip())
        out["git"] = head.strip() + (" (uncommitted changes)" if dirty else "")
    return out


def os_info() -> Dict[str, str]:
    pretty = ""
    for line in read_text("/etc/os-release").splitlines():
        if line.startswith("PRETTY_NAME="):
            pretty = line.split("=", 1)[1].strip().strip('"')
    return {"platform": platform.platform(), "kernel": platform.release(),
            "distribution": pretty, "machine": platform.machine()}


def machine_info() -> Dict[str, object]:
    cpu = parse_cpuinfo(read_text("/proc/cpuinfo"))
    info: Dict[str, object] = {
        "cpu_model": cpu["model"], "cpu_vendor": cpu["vendor"], "cpu_family": cpu["family"],
        "cpu_ghz_reported": cpu_ghz(),
        "logical_cpus": cpu["logical_cpus"], "physical_cores": cpu["physical_cores"],
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
        else os.cpu_count(),
        "isa": isa_summary(cpu["flags"], platform.machine()),
        "cpu_flags": cpu["flags"],
        "governor": read_text("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor").strip() or None,
        "memory_total_mb": None,
        "os": os_info(),
    }
    for line in read_text("/proc/meminfo").splitlines():
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
    fields = read_text("/proc/stat").split("\n", 1)[0].split()
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


def cpu_ghz(text: Optional[str] = None) -> Optional[float]:
    """The highest "cpu MHz" of /proc/cpuinfo in GHz (in a VM: the clock the host reports,
    usually the nominal one), or None."""
    text = read_text("/proc/cpuinfo") if text is None else text
    mhz = [float(line.split(":", 1)[1]) for line in text.splitlines()
           if line.lower().startswith("cpu mhz") and ":" in line]
    return max(mhz) / 1000.0 if mhz else None


def compute_peaks(flags: Iterable[str], cores: int, ghz: Optional[float],
                  vendor: str = "", family: Optional[int] = None) -> Dict[str, object]:
    """Nominal peak INT8 and FP32 multiply-accumulates per second of ``cores`` cores, with the
    arithmetic written out. A model, not a measurement: one instruction per vector unit and
    cycle, two vector units per core (AMD Zen 4, family 25 with AVX-512, runs 512-bit
    instructions on 256-bit units: one per cycle), clock as reported."""
    flags = set(flags)
    zen4_512 = "AMD" in vendor.upper() and family == 25 and "avx512f" in flags
    units512 = 1 if zen4_512 else 2
    if "amx_int8" in flags:
        int8, how = 1024, "AMX TMUL: 1024 INT8 MAC per cycle"
    elif "avx512_vnni" in flags:
        int8 = 64 * units512
        how = f"AVX-512 VNNI vpdpbusd: 64 INT8 MAC per instruction x {units512} per cycle"
    elif "avx_vnni" in flags:
        int8, how = 64, "AVX-VNNI vpdpbusd (256-bit): 32 INT8 MAC per instruction x 2 per cycle"
    elif "avx2" in flags:
        int8 = 32
        how = ("no VNNI: AVX2 vpmaddubsw (32 u8 x s8 products into 16-bit pairs) + vpmaddwd "
               "(pairs into 32-bit) per 32 MAC, 2 multiply instructions per cycle: 32 INT8 MAC "
               "per cycle")
    else:
        int8, how = None, "no x86 INT8 vector instructions known to this model"
    if "avx512f" in flags:
        fp32, fhow = 16 * units512, f"AVX-512 FMA: 16 FP32 MAC per instruction x {units512}"
    elif "fma" in flags and "avx2" in flags:
        fp32, fhow = 16, "AVX2 FMA: 8 FP32 MAC per instruction x 2 per cycle"
    else:
        fp32, fhow = None, "unknown"
    out: Dict[str, object] = {"cores": cores, "ghz": ghz, "int8_mac_per_cycle": int8,
                              "int8_how": how, "fp32_mac_per_cycle": fp32, "fp32_how": fhow}
    for key, per in (("int8", int8), ("fp32", fp32)):
        if per and ghz:
            peak = cores * ghz * per
            out[f"{key}_peak_gmacs"] = peak
            out[f"{key}_arithmetic"] = (f"{cores} cores x {ghz:.2f} GHz x {per} {key.upper()} "
                                        f"MAC/cycle/core = {peak:.0f} GMAC/s")
    return out
