"""Jetson power: detection, ``nvpmodel -q`` and ``jetson_clocks --show`` (or sysfs), tegrastats
lines parsed and sampled in a thread, average power and energy per frame of a phase, and the
equivalent ``trtexec`` command of a TensorRT engine."""
from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import threading
import time
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple

from .common import read_text, run_cmd

TOTAL_RAILS = ("VDD_IN", "VIN", "POM_5V_IN")
AGX_ORIN_RAILS = ("VDD_GPU_SOC", "VDD_CPU_CV", "VIN_SYS_5V0")
NOT_RAILS = {"RAM", "SWAP", "IRAM", "NC", "EMC_FREQ", "GR3D_FREQ", "APE"}
TRTEXEC_WARMUP_MS = 500


def detect_jetson(root: str = "/") -> Optional[str]:
    """A description of the Jetson this runs on, or None."""
    model = read_text(os.path.join(root, "proc/device-tree/model")).replace("\x00", "").strip()
    release = read_text(os.path.join(root, "etc/nv_tegra_release")).strip()
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
        online = read_text(os.path.join(d, "online"), "1").strip() or "1"
        lo = read_text(os.path.join(d, "cpufreq/scaling_min_freq")).strip()
        hi = read_text(os.path.join(d, "cpufreq/scaling_max_freq")).strip()
        cur = read_text(os.path.join(d, "cpufreq/scaling_cur_freq")).strip()
        if lo or hi:
            cpus[name] = {"Online": online, "MinFreq": lo, "MaxFreq": hi, "CurrentFreq": cur}
    gpu: Dict[str, str] = {}
    for d in sorted(glob.glob(os.path.join(root, "sys/class/devfreq/*"))):
        base = os.path.basename(d).lower()
        if any(k in base for k in ("gpu", "ga10b", "gv11b", "gp10b", "gb10b")):
            gpu = {"MinFreq": read_text(os.path.join(d, "min_freq")).strip(),
                   "MaxFreq": read_text(os.path.join(d, "max_freq")).strip(),
                   "CurrentFreq": read_text(os.path.join(d, "cur_freq")).strip()}
            break
    return {"cpus": cpus, "gpu": gpu, "emc": {}, "power_mode": None,
            "on": clocks_locked(cpus, gpu)}


def query_jetson(runner: Callable[[Sequence[str]], Tuple[int, str]] = run_cmd,
                 root: str = "/") -> Dict[str, object]:
    """nvpmodel mode, jetson_clocks state, L4T release and model; never raises."""
    out: Dict[str, object] = {
        "model": detect_jetson(root),
        "l4t_release": (read_text(os.path.join(root, "etc/nv_tegra_release")).strip().splitlines()
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
