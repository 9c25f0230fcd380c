"""benchmarks/latency.py (package benchmarks/latency_bench): statistics, the unstable-spread
rule, the Jetson parsers (tegrastats, nvpmodel, jetson_clocks), the table of backend keys,
TensorRT reported unavailable without TensorRT, and a tiny end-to-end run (torch + ort +
trt-fp16 at 160x128, 5 runs) in forced Jetson mode with fake Jetson tools, checking the Markdown
and JSON it writes."""
from __future__ import annotations

import importlib.util
import json
import os
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "latency.py"
sys.path.insert(0, str(REPO / "benchmarks"))
from latency_bench import backends, cli, common, goals, jetson, machine, stats  # noqa: E402
from oscar_edge.presets import SHIPPED_PRESET  # noqa: E402


# ------------------------------------------------------------------------------ real lines
# Jetson Orin Nano devkit, JetPack 6 (L4T R36), `nvpmodel -q` said MAXN_SUPER / 2: copied from a
# published terminal session (public lab notes). VDD_IN is the module input.
ORIN_NANO_JP6 = (
    "07-14-2025 10:29:36 RAM 2147/7620MB (lfb 2x4MB) SWAP 1476/3810MB (cached 1MB) "
    "CPU [0%@729,0%@729,0%@729,0%@729,0%@729,0%@729] GR3D_FREQ 0% cpu@47.687C soc2@46.718C "
    "soc0@47.468C gpu@48.625C tj@48.625C soc1@48.25C VDD_IN 4556mW/4556mW "
    "VDD_CPU_GPU_CV 483mW/483mW VDD_SOC 1451mW/1451mW")
# Jetson AGX Orin devkit, JetPack 7.2 (L4T R39.2): jetson_stats' test fixture of a real line;
# power is cur/avg/max, temperatures cur/max, GR3D_FREQ a per-GPC array.
AGX_ORIN_JP7 = (
    "07-25-2026 09:08:28 RAM 20642/62817MB (lfb 1x2MB) "
    "CPU [23%@2201,10%@2201,4%@2201,14%@2201,30%@2201,18%@2201,10%@2201,10%@2201,33%@2201,"
    "7%@2201,5%@2201,27%@2201] "
    "EMC_FREQ 3%@3199 GR3D_FREQ 12%@[1300,1300] NVENC0 off NVDEC0 off NVJPG0 off NVJPG1 off "
    "VIC off OFA off NVDLA0 off NVDLA1 off PVA0_FREQ off APE 174 "
    "cpu@52.968C/52.968C soc2@48.406C/48.406C soc0@49.531C/49.531C gpu@47.625C/47.625C "
    "VDD_GPU_SOC 5139mW/5139mW/5139mW VDD_CPU_CV 3268mW/3268mW/3268mW "
    "VIN_SYS_5V0 5500mW/5500mW/5500mW")
# Orin NX 16GB, JetPack 6.2 style: 4 cores off, GPU frequency array, a sensor at -256 C (off).
ORIN_NX_JP6 = (
    "RAM 1224/15368MB (lfb 8x4MB) SWAP 0/7684MB (cached 0MB) "
    "CPU [1%@729,0%@729,0%@729,0%@729,off,off,off,off] EMC_FREQ 0% GR3D_FREQ 0%@[305] "
    "CPU@43.5C GPU@42.5C tj@43.5C SOC0@42.906C SOC1@42.156C CV0@-256C "
    "VDD_IN 4319mW/4319mW VDD_CPU_GPU_CV 499mW/499mW VDD_SOC 1200mW/1200mW")
# JetPack 4 era (TX2 / Xavier form, jetson_stats' emulator): rails without a unit, in mW.
XAVIER_OLD = (
    "RAM 4722/7844MB (lfb 1x512kB) CPU [55%@2035,14%@2034,27%@2034,55%@2035,47%@2035,45%@2035] "
    "SWAP 149/1024MB (cached 7MB) EMC_FREQ 2%@1866 GR3D_FREQ 51%@1300 APE 150 MTS fg 0% bg 0% "
    "BCPU@-45C MCPU@-45C GPU@-51C PLL@45C AO@47.5C Tboard@37C Tdiode@46.75C PMIC@100C "
    "thermal@46.4C VDD_IN 14025/14416 VDD_CPU 2209/2538 VDD_GPU 6854/6903 VDD_SOC 1371/1370 "
    "VDD_WIFI 19/19 NVENC 716 NVDEC 716 VDD_DDR 2702/2702")
# Jetson Nano (JetPack 4): POM_5V_IN is the module input.
NANO_OLD = (
    "RAM 1180/3965MB (lfb 1x2MB) SWAP 149/1024MB (cached 7MB) IRAM 0/252kB(lfb 252kB) "
    "CPU [30%@1036,33%@1036,28%@1036,26%@1036] EMC_FREQ 10%@1600 GR3D_FREQ 0%@76 NVENC 716 "
    "NVDEC 716 APE 25 PLL@57C CPU@60.5C PMIC@100C GPU@59C AO@65C thermal@59.75C "
    "POM_5V_IN 4520/4680 POM_5V_GPU 0/0 POM_5V_CPU 1078/1205")
# AGX Orin, JetPack 6 form (two cores off, GR3D array).
AGX_ORIN_JP6 = (
    "10-13-2026 12:00:00 RAM 4023/30536MB (lfb 5555x4MB) SWAP 0/15268MB (cached 0MB) "
    "CPU [0%@1190,0%@1190,off,off] EMC_FREQ 0%@2133 GR3D_FREQ 0%@[0,0] "
    "cpu@45.5C tj@45.5C VDD_GPU_SOC 3188mW/3188mW VDD_CPU_CV 1195mW/1195mW "
    "VIN_SYS_5V0 3229mW/3229mW")


# ------------------------------------------------------------------------------ statistics
def test_percentiles_match_numpy():
    ms = np.arange(1, 101, dtype=np.float64)              # 1 .. 100 ms
    s = stats.summarize((ms * 1e6).astype(np.int64))
    assert s["count"] == 100
    assert s["min_ms"] == 1.0 and s["max_ms"] == 100.0
    assert s["mean_ms"] == pytest.approx(50.5)
    for p in (50, 90, 95, 99):
        assert s[f"p{p}_ms"] == pytest.approx(np.percentile(ms, p), rel=1e-12)
    assert s["p50_ms"] == pytest.approx(50.5)
    rng = np.random.default_rng(1)
    ns = (rng.lognormal(1.5, 0.4, 777) * 1e6).astype(np.int64)
    s = stats.summarize(ns, batch=2, wall_ns=int(ns.sum()))
    ref = ns / 1e6
    for p in (50, 90, 95, 99):
        assert s[f"p{p}_ms"] == pytest.approx(np.percentile(ref, p), rel=1e-9)
    assert s["std_ms"] == pytest.approx(ref.std(), rel=1e-9)
    assert s["cv_pct"] == pytest.approx(100 * ref.std() / ref.mean(), rel=1e-9)
    assert s["throughput_fps"] == pytest.approx(2 * 777 / (ns.sum() / 1e9), rel=1e-9)
    with pytest.raises(ValueError):
        stats.summarize([])


def test_unstable_spread_warning_bimodal_not_tight():
    bimodal = np.r_[np.full(270, 10.0), np.full(30, 30.0)] * 1e6       # 10 % of calls at 3x
    s = stats.summarize(bimodal.astype(np.int64))
    assert s["cv_pct"] == pytest.approx(50.0)
    w = stats.spread_warning(s)
    assert w and "CV 50.0 %" in w and "p99/p50 3.00" in w
    tight = np.random.default_rng(0).normal(10.0, 0.1, 300) * 1e6
    s = stats.summarize(tight.astype(np.int64))
    assert s["cv_pct"] < 2 and s["p99_over_p50"] < 1.1
    assert stats.spread_warning(s) is None
    # only the tail: a few slow calls, small CV
    tail = np.r_[np.full(295, 10.0), np.full(5, 20.0)] * 1e6
    s = stats.summarize(tail.astype(np.int64))
    assert stats.spread_warning(s, cv_limit=50) == f"p99/p50 {s['p99_over_p50']:.2f} > 1.5"


def test_other_processes_cpu_share():
    a = machine.CpuSnapshot(busy_s=100.0, own_s=10.0, wall_s=0.0)
    b = machine.CpuSnapshot(busy_s=104.0, own_s=12.0, wall_s=2.0)     # 4 s busy, 2 s of it ours
    assert machine.others_cpu_pct(a, b, cpus=2) == pytest.approx(50.0)
    assert machine.others_cpu_pct(a, machine.CpuSnapshot(102.0, 12.0, 2.0), 2) == 0.0
    assert machine.others_cpu_pct(machine.CpuSnapshot(None, 0.0, 0.0), b, 2) is None
    snap = machine.cpu_snapshot()
    assert snap.own_s > 0 and (snap.busy_s is None or snap.busy_s > 0)


def test_sizes_and_backends_parse():
    assert common.parse_size("640x512") == (512, 640)
    assert common.size_label((512, 640)) == "640x512"
    for bad in ("640", "641x512", "0x32", "axb"):
        with pytest.raises(common.UserError):
            common.parse_size(bad)
    assert backends.parse_backends("torch, ort,torch") == ["torch", "ort"]
    with pytest.raises(common.UserError, match="unknown backend"):
        backends.parse_backends("ort,tensorflow")


def test_backend_table_keys_and_roles():
    keys = ("torch", "ort", "ort-int8", "ort-int8-ortq", "ort-fp16", "trt-fp32", "trt-fp16",
            "trt-int8")
    assert backends.BACKENDS[:len(keys)] == keys == tuple(backends.BACKEND_TABLE)[:len(keys)]
    assert backends.ORT_REDUCED == ("ort-int8", "ort-int8-ortq", "ort-fp16")
    table = backends.BACKEND_TABLE
    for key in keys:
        spec = table[key]
        trt = key.startswith("trt-")
        assert spec.key == key
        assert spec.per_size == trt and spec.trtexec == trt
        assert (spec.unavailable is not None) == trt
        assert (spec.prepare is not None) == (trt or key in backends.ORT_REDUCED)
        assert spec.precision == ("fp32" if key in ("torch", "ort") else key.split("-", 1)[1])
    args = cli.build_parser().parse_args([])
    with pytest.raises(common.UserError, match="unknown backend bogus"):
        backends.make_handle("bogus", None, args, Path("."), Path("."), 1, (512, 640))


def test_cpuinfo_isa_flags():
    x86 = textwrap.dedent("""\
        processor\t: 0
        vendor_id\t: GenuineIntel
        model name\t: Intel(R) Xeon(R) Platinum 8480+
        physical id\t: 0
        core id\t\t: 0
        flags\t\t: fpu sse4_2 avx avx2 fma avx512f avx512_vnni amx_tile amx_int8 hypervisor

        processor\t: 1
        vendor_id\t: GenuineIntel
        model name\t: Intel(R) Xeon(R) Platinum 8480+
        physical id\t: 0
        core id\t\t: 1
        flags\t\t: fpu sse4_2 avx avx2 fma avx512f avx512_vnni amx_tile amx_int8 hypervisor
        """)
    info = machine.parse_cpuinfo(x86)
    assert info["model"] == "Intel(R) Xeon(R) Platinum 8480+"
    assert info["logical_cpus"] == 2 and info["physical_cores"] == 2
    isa = machine.isa_summary(info["flags"], "x86_64")
    assert {"avx512_vnni", "amx_int8", "amx_tile"} <= set(isa["present"])
    assert "avx512_bf16" in isa["absent"] and isa["virtualized"]
    assert isa["int8_dot_product"] == ["avx512_vnni", "amx_int8"]
    arm = "processor\t: 0\nFeatures\t: fp asimd evtstrm aes asimdhp asimddp\nCPU part\t: 0xd42\n"
    isa = machine.isa_summary(machine.parse_cpuinfo(arm)["flags"], "aarch64")
    assert "asimddp" in isa["present"] and "i8mm" in isa["absent"]


# ------------------------------------------------------------------------------ tegrastats
def test_tegrastats_orin_nano_jp6():
    s = jetson.parse_tegrastats_line(ORIN_NANO_JP6)
    assert s["rails"] == {"VDD_IN": {"cur_mw": 4556.0, "avg_mw": 4556.0},
                          "VDD_CPU_GPU_CV": {"cur_mw": 483.0, "avg_mw": 483.0},
                          "VDD_SOC": {"cur_mw": 1451.0, "avg_mw": 1451.0}}
    assert s["temps_c"]["tj"] == 48.625 and s["temps_c"]["gpu"] == 48.625
    assert s["cpu"] == {"load_pct": [0] * 6, "freq_mhz": [729] * 6, "online": 6}
    assert s["gpu"] == {"util_pct": 0, "freq_mhz": None}
    assert s["ram_mb"] == [2147, 7620]
    assert jetson.total_power_mw(s["rails"]) == (4556.0, "VDD_IN")


def test_tegrastats_agx_orin_jp7_triple_values():
    s = jetson.parse_tegrastats_line(AGX_ORIN_JP7)
    assert set(s["rails"]) == {"VDD_GPU_SOC", "VDD_CPU_CV", "VIN_SYS_5V0"}  # not RAM / APE
    assert s["rails"]["VDD_GPU_SOC"] == {"cur_mw": 5139.0, "avg_mw": 5139.0, "max_mw": 5139.0}
    assert s["temps_c"] == {"cpu": 52.968, "soc2": 48.406, "soc0": 49.531, "gpu": 47.625}
    assert s["gpu"] == {"util_pct": 12, "freq_mhz": 1300}
    assert s["emc"] == {"util_pct": 3, "freq_mhz": 3199}
    assert s["cpu"]["online"] == 12 and s["cpu"]["freq_mhz"][0] == 2201
    total, rule = jetson.total_power_mw(s["rails"])
    assert total == 5139 + 3268 + 5500 and rule == "VDD_GPU_SOC+VDD_CPU_CV+VIN_SYS_5V0"


def test_tegrastats_other_formats():
    nx = jetson.parse_tegrastats_line(ORIN_NX_JP6)
    assert "cv0" not in nx["temps_c"] and nx["temps_c"]["soc0"] == 42.906   # -256 C dropped
    assert nx["cpu"]["online"] == 4 and nx["cpu"]["load_pct"][4:] == [None] * 4
    assert nx["gpu"] == {"util_pct": 0, "freq_mhz": 305}
    assert nx["emc"] == {"util_pct": 0, "freq_mhz": None}
    assert jetson.total_power_mw(nx["rails"]) == (4319.0, "VDD_IN")
    old = jetson.parse_tegrastats_line(XAVIER_OLD)
    assert old["rails"]["VDD_IN"] == {"cur_mw": 14025.0, "avg_mw": 14416.0}
    assert set(old["rails"]) == {"VDD_IN", "VDD_CPU", "VDD_GPU", "VDD_SOC", "VDD_WIFI", "VDD_DDR"}
    assert old["gpu"] == {"util_pct": 51, "freq_mhz": 1300} and old["temps_c"]["bcpu"] == -45.0
    nano = jetson.parse_tegrastats_line(NANO_OLD)
    assert "IRAM" not in nano["rails"] and jetson.total_power_mw(nano["rails"]) == (4520.0,
                                                                                 "POM_5V_IN")
    agx = jetson.parse_tegrastats_line(AGX_ORIN_JP6)
    assert jetson.total_power_mw(agx["rails"])[0] == 3188 + 1195 + 3229
    assert agx["cpu"]["online"] == 2 and agx["gpu"] == {"util_pct": 0, "freq_mhz": 0}
    thor = jetson.parse_tegrastats_line("RAM 4722/7844MB (lfb 1x512kB) EMC_FREQ 2%@1866 "
                                     "GR3D_FREQ @[1000,1000,1000] APE 150 VIN 21000mW/20000mW")
    assert thor["gpu"] == {"util_pct": None, "freq_mhz": 1000}
    assert jetson.total_power_mw(thor["rails"]) == (21000.0, "VIN")
    watts = jetson.parse_tegrastats_line("VDD_IN 4.5W VDD_CPU_GPU_CV 1.25W/1.5W")
    assert watts["rails"]["VDD_IN"]["cur_mw"] == 4500.0
    assert watts["rails"]["VDD_CPU_GPU_CV"] == {"cur_mw": 1250.0, "avg_mw": 1500.0}
    assert jetson.parse_tegrastats_line("\n") is None
    assert jetson.parse_tegrastats_line("tegrastats: permission denied") is None


def test_power_summary_energy_per_frame():
    samples = [jetson.parse_tegrastats_line(ORIN_NANO_JP6.replace("VDD_IN 4556mW", f"VDD_IN {v}mW"))
               for v in (5000, 7000)]
    p = jetson.power_summary(samples, wall_s=2.0, frames=400, idle_mw=4000.0)
    assert p["avg_total_mw"] == 6000.0 and p["total_rule"] == "VDD_IN"
    assert p["energy_mj_per_frame"] == pytest.approx(6000.0 * 2.0 / 400)       # 30 mJ
    assert p["energy_above_idle_mj_per_frame"] == pytest.approx(2000.0 * 2.0 / 400)
    assert p["rails_avg_mw"]["VDD_SOC"] == 1451.0 and p["temps_c_max"]["tj"] == 48.625
    assert "only 2 tegrastats samples" in p["note"]
    assert jetson.power_summary([], 1.0, 10)["samples"] == 0


def test_tegrastats_sampler_with_fake_process():
    script = (f"import time\nfor i in range(6):\n    print({ORIN_NANO_JP6!r}, flush=True)\n"
              "    time.sleep(0.02)\nprint('garbage', flush=True)\n")
    sampler = jetson.TegrastatsSampler([sys.executable, "-c", script]).start()
    deadline = time.time() + 20
    while sampler.lines < 7 and time.time() < deadline:
        time.sleep(0.05)
    sampler.stop()
    assert sampler.lines == 7 and len(sampler.samples) == 6
    assert len(sampler.window(-1e18, 1e18)) == 6
    assert sampler.window(1e18, 2e18) == []
    bad = jetson.TegrastatsSampler(["/nonexistent/tegrastats"]).start()
    assert bad.error and "cannot start" in bad.error
    bad.stop()


# ------------------------------------------------------------------------------ nvpmodel etc.
JC_ON = """SOC family:tegra234  Machine:NVIDIA Jetson AGX Orin Developer Kit
Online CPUs: 0-11
cpu0: Online=1 Governor=schedutil MinFreq=2201600 MaxFreq=2201600 CurrentFreq=2201600 IdleStates: WFI=0 c7=0
cpu1: Online=1 Governor=schedutil MinFreq=2201600 MaxFreq=2201600 CurrentFreq=2201600 IdleStates: WFI=0 c7=0
cpu2: Online=0 Governor=schedutil MinFreq=115200 MaxFreq=2201600 CurrentFreq=729600 IdleStates: WFI=0 c7=0
GPU MinFreq=1300500000 MaxFreq=1300500000 CurrentFreq=1300500000
EMC MinFreq=204000000 MaxFreq=3199000000 CurrentFreq=3199000000 FreqOverride=1
NV Power Mode: MAXN
"""
JC_OFF = JC_ON.replace("MinFreq=2201600 MaxFreq", "MinFreq=115200 MaxFreq", 1)


def test_nvpmodel_and_jetson_clocks_parsers():
    assert jetson.parse_nvpmodel("NV Power Mode: MAXN_SUPER\n2\n") == {"mode_name": "MAXN_SUPER",
                                                                    "mode_id": 2}
    assert jetson.parse_nvpmodel("NVPM WARN: fan mode is not set!\nNV Power Mode: 15W\n1\n") == \
        {"mode_name": "15W", "mode_id": 1}
    assert jetson.parse_nvpmodel("nvpmodel: command not found") == {"mode_name": None,
                                                                 "mode_id": None}
    on = jetson.parse_jetson_clocks(JC_ON)
    assert on["on"] is True and on["power_mode"] == "MAXN"          # offline cpu2 ignored
    assert on["emc"]["FreqOverride"] == "1" and on["gpu"]["MaxFreq"] == "1300500000"
    assert jetson.parse_jetson_clocks(JC_OFF)["on"] is False
    gpu_free = JC_ON.replace("GPU MinFreq=1300500000", "GPU MinFreq=306000000")
    assert jetson.parse_jetson_clocks(gpu_free)["on"] is False
    assert jetson.parse_jetson_clocks("Please run as root")["on"] is None


def test_query_jetson_with_fakes(tmp_path):
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "nv_tegra_release").write_text("# R36 (release), REVISION: 4.3\n")
    for i, (lo, hi) in enumerate([("1984000", "1984000"), ("1984000", "1984000")]):
        d = tmp_path / "sys" / "devices" / "system" / "cpu" / f"cpu{i}" / "cpufreq"
        d.mkdir(parents=True)
        (d / "scaling_min_freq").write_text(lo)
        (d / "scaling_max_freq").write_text(hi)
    g = tmp_path / "sys" / "class" / "devfreq" / "17000000.ga10b"
    g.mkdir(parents=True)
    (g / "min_freq").write_text("306000000")
    (g / "max_freq").write_text("1020000000")
    calls = []

    def runner(cmd):
        calls.append(tuple(cmd))
        if cmd[:2] == ["nvpmodel", "-q"]:
            return 0, "NV Power Mode: MAXN_SUPER\n2\n"
        if "jetson_clocks" in cmd:
            return 1, "Please run as root"
        return 127, f"{cmd[0]}: not found"

    info = jetson.query_jetson(runner, root=str(tmp_path))
    assert info["l4t_release"] == "# R36 (release), REVISION: 4.3"
    assert info["nvpmodel"]["mode_name"] == "MAXN_SUPER" and info["nvpmodel"]["mode_id"] == 2
    assert ("sudo", "-n", "jetson_clocks", "--show") in calls
    jc = info["jetson_clocks"]
    assert jc["source"].startswith("sysfs") and jc["on"] is False   # GPU min != max
    assert info["jetpack"] is None

    def runner_root(cmd):
        if cmd == ["jetson_clocks", "--show"]:
            return 0, JC_ON
        return runner(cmd)

    jc = jetson.query_jetson(runner_root, root=str(tmp_path))["jetson_clocks"]
    assert jc["on"] is True and jc["source"] == "jetson_clocks --show"
    assert jetson.detect_jetson(str(tmp_path)) == "NVIDIA Jetson (model unknown)"
    assert jetson.detect_jetson(str(tmp_path / "nothing")) is None


def test_trtexec_command_flags():
    cmd = jetson.trtexec_command("m.engine", "build/plugins/lib.so", 1, (512, 640), 300,
                              times_file="m.times.json")
    assert cmd.startswith("trtexec --loadEngine=m.engine --staticPlugins=build/plugins/lib.so "
                          "--shapes=image:1x3x512x640 --warmUp=500 --iterations=300 ")
    for flag in ("--useCudaGraph", "--useSpinWait", "--noDataTransfers", "--duration=0",
                 "--percentile=90,95,99", "--exportTimes=m.times.json"):
        assert f" {flag}" in cmd
    assert "--fp16" not in cmd and "--int8" not in cmd          # gone in TensorRT 11


def test_trt_backends_unavailable_without_tensorrt(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "tensorrt" else real(name, *a))
    assert backends.trt_unavailable_reason() == "not available: TensorRT not installed"
    args = cli.build_parser().parse_args([])
    for name in ("trt-fp32", "trt-fp16", "trt-int8"):
        with pytest.raises(backends.Unavailable, match="TensorRT not installed"):
            backends.make_handle(name, None, args, Path("."), Path("."), 1, (512, 640))


def _fake_result(backend, size, model_p50, pre, inf, post):
    def st(p50):
        return {"p50_ms": p50}
    total = pre + inf + post
    return {"backend": backend, "size": size, "status": "ok", "batch": 1,
            "model_only": {"stats": st(model_p50)},
            "full_path": {"total": st(total), "postprocess_backend": "native",
                          "detections_per_frame": 3.0,
                          "stages": {"preprocess": st(pre), "inference": st(inf),
                                     "postprocess": st(post)}}}


def test_goals_name_the_stage_that_holds_back():
    res = [_fake_result("torch", "640x512", 30.0, 1.0, 30.0, 0.3),
           _fake_result("ort", "640x512", 15.0, 1.0, 15.0, 0.3),
           _fake_result("ort-int8", "640x512", 5.0, 1.0, 5.0, 0.9)]
    rows = goals.goals(res, SHIPPED_PRESET, {"isa": {"int8_dot_product": []}})
    by = {(r["goal"].split(" ")[0], r["backend"]): r for r in rows}
    g1 = by[("ONNX", "ort")]
    assert g1["status"] == "MISS" and g1["value"] == "2.00x" and "inference" in g1["why"]
    g2 = by[("INT8", "ort-int8")]
    assert g2["status"] == "PASS" and g2["value"] == "3.00x"
    full = {r["backend"]: r for r in rows if r["goal"] == goals.FULL_GOAL}
    assert full["ort"]["status"] == "MISS" and full["ort"]["why"].startswith(
        "held back by inference: preprocess 1.00 ms (6 %), inference 15.00 ms (92 %)")
    assert full["ort-int8"]["status"] == "PASS"
    post = {r["backend"]: r for r in rows if r["goal"].startswith("post-processing")}
    assert post["ort"]["status"] == "PASS" and post["ort-int8"]["status"] == "MISS"
    assert "post-processing p50 0.900 ms" in post["ort-int8"]["why"]
    other = goals.goals(res, "oscar-r18-p2-128", {})
    assert all(r["status"] == "n/a" for r in other if r["goal"] == goals.FULL_GOAL)
    # a --baseline-checkpoint row (another model) is not judged against the shipped model's goals
    base = dict(_fake_result("ort [baseline]", "640x512", 40.0, 1.0, 40.0, 0.3),
                baseline_of="ort")
    with_base = goals.goals(res + [base], SHIPPED_PRESET, {"isa": {"int8_dot_product": []}})
    judged = {r["backend"] for r in with_base if r["goal"] in (goals.FULL_GOAL, goals.POST_GOAL)}
    assert judged == {"torch", "ort", "ort-int8"}


# ------------------------------------------------------------------------------ end to end
# a shell script (starts faster than Python on a busy machine); ignores --interval: 50 ms
FAKE_TEGRASTATS = """#!/bin/sh
while true; do
    echo '{line}'
    sleep 0.05
done
"""


def _write_exe(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)


def test_tiny_run_markdown_json_plot_in_fake_jetson_mode(tmp_path, sirst_root):
    pytest.importorskip("torch")
    pytest.importorskip("onnxruntime")
    pytest.importorskip("matplotlib")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    _write_exe(bin_dir / "tegrastats", FAKE_TEGRASTATS.format(line=ORIN_NANO_JP6))
    _write_exe(bin_dir / "nvpmodel", "#!/bin/sh\necho 'NV Power Mode: MAXN'\necho 0\n")
    _write_exe(bin_dir / "jetson_clocks", "#!/bin/sh\ncat <<'EOF'\n" + JC_ON + "EOF\n")
    env = dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
               OSCAR_DATA=str(sirst_root))
    out_json, out_png = tmp_path / "out.json", tmp_path / "out.png"
    cmd = [sys.executable, str(SCRIPT), "--backends", "torch,ort,trt-fp16", "--size", "160x128",
           "--runs", "5", "--warmup", "1", "--frames", "3", "--threads", "2", "--jetson",
           "--idle-s", "1.5", "--tegrastats-interval", "50", "--work-dir", str(tmp_path / "w"),
           "--json", str(out_json), "--plot", str(out_png)]
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=240)
    assert p.returncode == 0, p.stderr[-3000:]
    md = p.stdout
    for text in (f"## Latency: `{SHIPPED_PRESET}` (shipped (trained)), 160x128 (W x H), batch 1",
                 "### 160x128: model only", "### 160x128: frame to detections",
                 "| backend | min | mean | p50 | p90 | p99 | max | CV % | p99/p50 | FPS | vs torch",
                 "| torch", "| ort", "### 160x128: power (tegrastats)",
                 "- trt-fp16 @ 160x128: not available: TensorRT not installed",
                 "### Stability", "Rule: unstable when CV", "### trtexec equivalents",
                 "--useCudaGraph --useSpinWait --noDataTransfers", "### Goals",
                 "nvpmodel MAXN (id 0)", "jetson_clocks ON"):
        assert text in md, text
    rec = json.loads(out_json.read_text())
    assert rec["format"] == "oscar-edge latency benchmark v1"
    assert rec["command"].startswith("python ")
    assert "--backends torch,ort,trt-fp16" in rec["command"]
    for key in ("cpu_model", "logical_cpus", "isa", "os", "cpu_flags"):
        assert key in rec["machine"]
    for key in ("python", "numpy", "torch", "onnxruntime", "tensorrt"):
        assert key in rec["versions"]
    assert rec["threads"]["requested"] == 2 and rec["threads"]["torch"]["intra_op"] == 2
    assert rec["date_utc"].endswith("+00:00")
    by = {r["backend"]: r for r in rec["results"]}
    assert by["trt-fp16"]["status"] == "unavailable"
    assert by["trt-fp16"]["reason"] == "not available: TensorRT not installed"
    for name in ("torch", "ort"):
        r = by[name]
        assert r["status"] == "ok", r
        assert len(r["model_only"]["samples_ms"]) == 5
        for k in ("min_ms", "mean_ms", "p50_ms", "p90_ms", "p99_ms", "max_ms", "throughput_fps",
                  "cv_pct"):
            assert k in r["model_only"]["stats"] and k in r["full_path"]["total"]
        assert set(r["full_path"]["stages"]) == {"preprocess", "inference", "postprocess"}
        assert r["full_path"]["postprocess_backend"] == "native"
        assert "power" in r["model_only"] and "power" in r["full_path"]
        assert r["achieved_gflops"] > 0 and r["gflop_mac_per_image"] > 0
    assert by["torch"]["ratios"]["model_only_vs_torch"] == pytest.approx(1.0)
    assert by["ort"]["ratios"]["model_only_vs_torch"] > 0
    j = rec["jetson"]
    assert j["nvpmodel"]["mode_name"] == "MAXN" and j["jetson_clocks"]["on"] is True
    assert j["idle"]["samples"] > 0 and j["idle"]["avg_total_mw"] == 4556.0
    assert "--useCudaGraph" in rec["trtexec"]["commands"]["trt-fp16 160x128"]
    assert {g["status"] for g in rec["goals"]} <= {"PASS", "MISS", "n/a"}
    assert out_png.stat().st_size > 10_000 and out_png.read_bytes()[:4] == b"\x89PNG"


def test_openvino_keys_and_precision_switch():
    table = backends.BACKEND_TABLE
    for key, precision in (("openvino", "fp32"), ("openvino-int8", "int8"),
                           ("openvino-fp16", "fp16")):
        spec = table[key]
        assert spec.precision == precision and not spec.per_size and not spec.trtexec
        assert spec.unavailable is backends.openvino_unavailable_reason
        # the INT8 / FP16 keys run the very graph of the ONNX Runtime key of that precision
        assert (spec.prepare is not None) == (precision != "fp32")
    assert backends.parse_backends("torch,ort,openvino", "int8") == \
        ["torch", "ort-int8", "openvino-int8"]
    assert backends.parse_backends("ort,openvino,trt", "fp32") == ["ort", "openvino", "trt-fp32"]
    assert backends.parse_backends("ort,openvino", "fp16") == ["ort-fp16", "openvino-fp16"]
    with pytest.raises(common.UserError, match="unknown backend"):
        backends.parse_backends("trt")  # the plain key needs --precision
    args = cli.build_parser().parse_args(["--precision", "int8", "--ov-hint", "bf16"])
    assert args.precision == "int8" and args.ov_hint == "bf16"


def test_peak_arithmetic():
    from latency_bench.machine import compute_peaks, cpu_ghz

    assert cpu_ghz("cpu MHz\t\t: 2445.404\ncpu MHz\t\t: 3000.0\n") == pytest.approx(3.0)
    assert cpu_ghz("nothing") is None
    zen3 = compute_peaks(["avx2", "fma"], 2, 2.5, "AuthenticAMD", 25)
    assert zen3["int8_mac_per_cycle"] == 32 and zen3["fp32_mac_per_cycle"] == 16
    assert zen3["int8_peak_gmacs"] == pytest.approx(160.0)
    assert zen3["int8_arithmetic"] == "2 cores x 2.50 GHz x 32 INT8 MAC/cycle/core = 160 GMAC/s"
    zen4 = compute_peaks(["avx2", "fma", "avx512f", "avx512_vnni"], 2, 2.0, "AuthenticAMD", 25)
    assert zen4["int8_mac_per_cycle"] == 64 and zen4["fp32_mac_per_cycle"] == 16
    xeon = compute_peaks(["avx2", "fma", "avx512f", "avx512_vnni"], 4, 2.0, "GenuineIntel", 6)
    assert xeon["int8_mac_per_cycle"] == 128 and xeon["fp32_peak_gmacs"] == pytest.approx(256)
    assert compute_peaks(["avx2", "fma", "amx_int8"], 1, 2.0)["int8_mac_per_cycle"] == 1024
    assert "int8_peak_gmacs" not in compute_peaks(["avx2"], 2, None)


def _ok(backend, size, p50, gmac=3.22, info=None):
    stats = {"p50_ms": p50}
    return {"backend": backend, "size": size, "status": "ok", "batch": 1,
            "gflop_mac_per_image": gmac, "info": info or {},
            "model_only": {"stats": stats},
            "full_path": {"total": {"p50_ms": p50 + 1}, "postprocess_backend": "native",
                          "detections_per_frame": 1.0,
                          "stages": {k: {"p50_ms": v} for k, v in
                                     (("preprocess", 0.5), ("inference", p50),
                                      ("postprocess", 0.5))}}}


def test_openvino_goal_rows_name_what_holds_them_back():
    from latency_bench.machine import compute_peaks

    machine = {"peaks": compute_peaks(["avx2", "fma"], 2, 2.5, "AuthenticAMD", 25)}
    res = [_ok("ort", "640x512", 50.0), _ok("openvino-int8", "640x512", 35.0)]
    rows = goals.goals(res, SHIPPED_PRESET, machine)
    ov = next(r for r in rows if r["backend"] == "openvino-int8" and r["target"] != "report")
    assert ov["status"] == "MISS" and ov["value"] == f"{50 / 35:.2f}x"
    assert "INT8 peak of 160 GMAC/s" in ov["why"] and "no VNNI" in ov["why"]
    eff = next(r for r in rows if r["target"] == "report")
    rate = 3.22 / 0.035
    assert eff["value"] == f"{rate:.0f} GMAC/s = {100 * rate / 160:.0f} % of 160"
    assert "2 cores x 2.50 GHz x 32" in eff["why"]
    fast = goals.goals([_ok("ort", "640x512", 50.0), _ok("openvino-int8", "640x512", 19.0)],
                       SHIPPED_PRESET, machine)
    assert next(r for r in fast if r["backend"] == "openvino-int8"
                and r["target"] != "report")["status"] == "PASS"
    full = [r for r in rows if r["goal"] == goals.FULL_GOAL]
    assert {r["backend"] for r in full} == {"ort", "openvino-int8"}
    assert all(r["status"] == "MISS" and "inference" in r["why"] for r in full)


def test_openvino_goal_rows_one_per_hint():
    from latency_bench.machine import compute_peaks

    machine = {"peaks": compute_peaks(["avx2", "fma", "avx512f", "avx512_vnni"], 2, 2.5,
                                      "AuthenticAMD", 26)}
    res = [_ok("ort", "640x512", 50.0),
           dict(_ok("openvino-int8", "640x512", 25.0, info={"ov_hint": "f32"}), ov_hint="f32"),
           dict(_ok("openvino-int8", "640x512", 16.0, info={"ov_hint": "bf16"}),
                ov_hint="bf16")]
    rows = goals.goals(res, SHIPPED_PRESET, machine)
    ratio = [r for r in rows if r["goal"].startswith("OpenVINO INT8")]
    assert [(r["backend"], r["status"], r["value"]) for r in ratio] == [
        ("openvino-int8 (f32)", "MISS", "2.00x"), ("openvino-int8 (bf16)", "PASS", "3.12x")]
    full = {r["backend"] for r in rows if r["goal"] == goals.FULL_GOAL}
    assert full == {"ort", "openvino-int8 (f32)", "openvino-int8 (bf16)"}


def test_ov_hint_list_parsing():
    from latency_bench.common import parse_hints

    assert parse_hints("f32") == ("f32",)
    if importlib.util.find_spec("openvino") is not None:
        from oscar_edge.backends.openvino_backend import cpu_has_bf16

        assert parse_hints("default") == (("bf16",) if cpu_has_bf16() else ("f32",))
    assert parse_hints("bf16, f32,bf16") == ("bf16", "f32")
    with pytest.raises(common.UserError):
        parse_hints(" , ")
    with pytest.raises(common.UserError, match="fp8"):
        parse_hints("f32,fp8")


def test_row_name_carries_the_hint():
    from latency_bench.report import row_name

    assert row_name({"backend": "ort", "info": {}}) == "ort"
    assert row_name({"backend": "openvino-int8", "info": {"ov_hint": "f32",
                                                          "ov_hint_effective": "f32"}}) == \
        "openvino-int8 (f32)"
    assert row_name({"backend": "openvino", "info": {"ov_hint": "bf16",
                                                     "ov_hint_effective": "f32"}}) == \
        "openvino (bf16 -> f32)"


def test_tiny_run_with_openvino_int8_names_the_hint(tmp_path, sirst_root):
    pytest.importorskip("openvino")
    pytest.importorskip("modelopt")
    env = dict(os.environ, OSCAR_DATA=str(sirst_root))
    out_json = tmp_path / "out.json"
    cmd = [sys.executable, str(SCRIPT), "--backends", "ort,openvino", "--precision", "int8",
           "--ov-hint", "f32,bf16", "--size", "160x128", "--runs", "3", "--warmup", "1",
           "--frames", "2", "--threads", "2", "--calib-images", "4", "--no-jetson",
           "--work-dir", str(tmp_path / "w"), "--json", str(out_json)]
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=400)
    assert p.returncode == 0, p.stderr[-3000:]
    assert "| openvino-int8 (f32)" in p.stdout   # " ⚠" may follow under load
    # the bf16 row: "(bf16)" on a bf16 CPU, "(bf16 -> f32)" where the CPU has none
    assert "| openvino-int8 (bf16" in p.stdout
    rec = json.loads(out_json.read_text())
    assert [(r["backend"], r.get("ov_hint")) for r in rec["results"]] == \
        [("ort-int8", None), ("openvino-int8", "f32"), ("openvino-int8", "bf16")]
    by = {(r["backend"], r.get("ov_hint")): r for r in rec["results"]}
    ov = by[("openvino-int8", "f32")]
    assert ov["status"] == "ok" and ov["info"]["ov_hint"] == "f32"
    assert "hint f32" in ov["label"]
    assert by[("openvino-int8", "bf16")]["info"]["ov_hint"] == "bf16"
    # the same INT8 Q/DQ file for both runtimes and both hints
    assert ov["model_file"] == by[("ort-int8", None)]["model_file"] == \
        by[("openvino-int8", "bf16")]["model_file"]
    # the shipped model: the shipped INT8 graph, the file --precision int8 picks
    assert Path(ov["model_file"]).name == "oscar-edge.int8.onnx"
    assert rec["threads"]["openvino"]["precision_hint"] == "f32,bf16"
    # one goal row per hint
    ratio_goals = [g["backend"] for g in rec["goals"] if g["goal"].startswith("OpenVINO INT8")]
    assert ratio_goals[0] == "openvino-int8 (f32)" and ratio_goals[1].startswith(
        "openvino-int8 (bf16") and len(ratio_goals) == 2
    assert rec["machine"]["peaks"]["cores"] >= 1


def test_baseline_checkpoint_rows_and_ratios(tmp_path, sirst_root):
    """--baseline-checkpoint: every backend times the baseline right after the main model;
    the report gets '<key> [baseline]' rows and a 'vs baseline' table with p50 ratios."""
    pytest.importorskip("torch")
    pytest.importorskip("onnxruntime")
    env = dict(os.environ, OSCAR_DATA=str(sirst_root))
    out_json = tmp_path / "out.json"
    shipped = Path(__file__).resolve().parents[1] / "oscar_edge" / "weights" / "oscar-edge.pt"
    cmd = [sys.executable, str(SCRIPT), "--backends", "ort", "--preset", "oscar-edge",
           "--baseline-checkpoint", str(shipped), "--size", "160x128", "--runs", "3",
           "--warmup", "1", "--frames", "2", "--threads", "1", "--no-jetson",
           "--work-dir", str(tmp_path / "w"), "--json", str(out_json)]
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=400)
    assert p.returncode == 0, p.stderr[-3000:]
    rec = json.loads(out_json.read_text())
    by = {r["backend"]: r for r in rec["results"]}
    assert set(by) == {"ort", "ort [baseline]"}
    shipped_preset = rec["baseline"]["preset"]
    assert shipped_preset == SHIPPED_PRESET and rec["model"]["preset"] == "oscar-edge"
    main, base = by["ort"], by["ort [baseline]"]
    ratio = main["model_only"]["stats"]["p50_ms"] / base["model_only"]["stats"]["p50_ms"]
    assert main["ratios"]["model_only_vs_baseline"] == pytest.approx(ratio)
    # each row's GFLOP/s uses its own model's MACs (v1's 3.22 GMAC at 640x512 against 2.56)
    assert base["gflop_mac_per_image"] < main["gflop_mac_per_image"]
    assert f"### vs baseline (`{shipped_preset}`" in p.stdout and f"{ratio:.2f}x" in p.stdout
    # the baseline has its own preset: no "--checkpoint holds preset ...; --preset ignored" note
    assert "ignored" not in p.stderr


def test_checkpoint_preset_wins_over_preset_with_one_note(tmp_path, sirst_root):
    """--checkpoint of another preset than --preset: the checkpoint's preset is timed and the
    user is told once that --preset was ignored."""
    pytest.importorskip("torch")
    pytest.importorskip("onnxruntime")
    env = dict(os.environ, OSCAR_DATA=str(sirst_root))
    out_json = tmp_path / "out.json"
    shipped = Path(__file__).resolve().parents[1] / "oscar_edge" / "weights" / "oscar-edge.pt"
    cmd = [sys.executable, str(SCRIPT), "--backends", "ort", "--preset", "oscar-edge",
           "--checkpoint", str(shipped), "--size", "160x128", "--runs", "3", "--warmup", "1",
           "--frames", "2", "--threads", "1", "--no-jetson", "--work-dir", str(tmp_path / "w"),
           "--json", str(out_json)]
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=400)
    assert p.returncode == 0, p.stderr[-3000:]
    assert json.loads(out_json.read_text())["model"]["preset"] == SHIPPED_PRESET
    note = f"--checkpoint holds preset {SHIPPED_PRESET}; --preset oscar-edge ignored"
    assert p.stderr.count(note) == 1


def test_only_the_measured_model_is_alive_while_timed(tmp_path, sirst_root, monkeypatch):
    """Every row closes its sessions before the next row is timed: an idle session of an earlier
    row (its thread pools) must not share the CPU with the one being measured."""
    pytest.importorskip("torch")
    pytest.importorskip("onnxruntime")
    from latency_bench import run as run_mod

    monkeypatch.setenv("OSCAR_DATA", str(sirst_root))
    seen: list = []
    open_at_entry: list = []
    real = run_mod.measure_one

    def spy(name, hw, batches, greys, src, args, data, work, handles, *rest, **kw):
        if all(h is not handles for h in seen):
            seen.append(handles)
        open_at_entry.append(sum(len(h) for h in seen))
        return real(name, hw, batches, greys, src, args, data, work, handles, *rest, **kw)

    monkeypatch.setattr(run_mod, "measure_one", spy)
    shipped = Path(__file__).resolve().parents[1] / "oscar_edge" / "weights" / "oscar-edge.pt"
    rc = cli.main(["--backends", "ort,openvino", "--preset", "oscar-edge-v2",
                   "--baseline-checkpoint", str(shipped), "--sizes", "160x128,128x96",
                   "--runs", "2", "--warmup", "1", "--frames", "2", "--threads", "1",
                   "--no-jetson", "--work-dir", str(tmp_path / "w"),
                   "--json", str(tmp_path / "out.json")])
    assert rc == 0
    rows = json.loads((tmp_path / "out.json").read_text())["results"]
    assert len(open_at_entry) == len(rows) >= 4  # main and baseline rows, two sizes
    assert open_at_entry == [0] * len(rows)
    assert all(len(h) == 0 for h in seen)  # nothing left open at the end either
