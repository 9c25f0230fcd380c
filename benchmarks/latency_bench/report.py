"""The report: Markdown on stdout, the JSON record, the PNG plot (latency distribution per
backend; latency vs input area for a size sweep)."""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Dict, List, Optional

from .common import row_name, size_label  # noqa: F401  (row_name re-exported)
from .goals import FULL_GOAL
from .machine import BUSY_OTHERS_PCT



def _row_groups(ok: List[Dict[str, object]]) -> Dict[str, List[Dict[str, object]]]:
    """The measured rows grouped by row name (backend key and OpenVINO hint), in run order:
    one group per line of a size sweep."""
    groups: Dict[str, List[Dict[str, object]]] = {}
    for r in ok:
        groups.setdefault(row_name(r), []).append(r)
    return groups


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
             f"onnxruntime {v['onnxruntime']}, OpenVINO {v.get('openvino')}, "
             f"ModelOpt {v['nvidia-modelopt']}, TensorRT "
             f"{v['tensorrt']}, oscar_edge {v['oscar_edge']} ({v.get('git', '?')})")
    torch_t = th["torch"] or {}
    L.append(f"- Threads: requested {th['requested'] or 'default'}; PyTorch intra-op "
             f"{torch_t.get('intra_op', '-')}, inter-op {torch_t.get('inter_op', '-')}; ONNX "
             f"Runtime intra-op {th['onnxruntime']['intra_op']}"
             + (f"; OpenVINO {th['openvino']['inference_num_threads']} inference threads, "
                f"hint {th['openvino']['precision_hint']}" if th.get("openvino") else ""))
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
            L.append(f"| {row_name(r)}{flag} | {_f(s['min_ms'])} | {_f(s['mean_ms'])} | "
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
            L.append(f"| {row_name(r)}{flag} | {_f(s['min_ms'])} | {_f(s['mean_ms'])} | "
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
                    L.append(f"| {row_name(r)} | {phase} | {p['samples']} | "
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
        for b, rows in _row_groups(ok).items():
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
    if record.get("baseline"):
        b = record["baseline"]
        L.append(f"### vs baseline (`{b['preset']}`, {b['checkpoint']})")
        L.append("")
        L.append("Each backend timed the baseline right after the main model (same frames, "
                 "size, threads); ratio = main p50 / baseline p50 (below 1: the main model is "
                 "faster).")
        L.append("")
        L.append("| backend | size | main model only p50 | baseline model only p50 | ratio | "
                 "main frame to detections p50 | baseline | ratio |")
        L.append("|---|---|---:|---:|---:|---:|---:|---:|")
        for r in ok:
            rt = r.get("ratios", {})
            if "model_only_vs_baseline" not in rt:
                continue
            t = next(x for x in ok if x.get("baseline_of") == r["backend"]
                     and x.get("ov_hint") == r.get("ov_hint") and x["size"] == r["size"])
            L.append(f"| {row_name(r)} | {r['size']} | {_f(r['model_only']['stats']['p50_ms'])} "
                     f"| {_f(t['model_only']['stats']['p50_ms'])} | "
                     f"{rt['model_only_vs_baseline']:.2f}x | "
                     f"{_f(r['full_path']['total']['p50_ms'])} | "
                     f"{_f(t['full_path']['total']['p50_ms'])} | "
                     f"{rt['full_path_vs_baseline']:.2f}x |")
        L.append("")
    others = [r for r in results if r["status"] != "ok"]
    if others:
        L.append("### Not measured")
        L.append("")
        for r in others:
            L.append(f"- {row_name(r)} @ {r['size']}: {r['reason']}")
        L.append("")
    warnings = []
    for r in ok:
        for key, phase in (("model_only", "model only"), ("full_path", "frame to detections")):
            if r[key].get("warning"):
                warnings.append(f"{row_name(r)} @ {r['size']}, {phase}: unstable timings "
                                f"({r[key]['warning']})")
            if r[key].get("busy"):
                warnings.append(f"{row_name(r)} @ {r['size']}, {phase}: busy machine: "
                                f"{r[key]['busy']}")
    L.append("### Stability")
    L.append("")
    L.append(f"Rule: {st['unstable_rule']}; a phase is flagged busy when other processes "
             f"used more than {BUSY_OTHERS_PCT:g} % of the CPUs meanwhile (/proc/stat busy time "
             "minus this process's CPU time, steal included).")
    L.append("")
    shares = [f"{row_name(r)} {r['size']} {_f(r['model_only'].get('other_cpu_pct'), 0)} / "
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
            names.append(row_name(r))
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
        for i, (b, rows) in enumerate(_row_groups(ok).items()):
            area = [r["input_hw"][0] * r["input_hw"][1] / 1e6 for r in rows]
            color = f"C{i}"
            ax.plot(area, [r["model_only"]["stats"]["p50_ms"] for r in rows], "o-", color=color,
                    label=f"{b} model only")
            ax.plot(area, [r["full_path"]["total"]["p50_ms"] for r in rows], "s--", color=color,
                    alpha=0.7, label=f"{b} frame to detections")
        first = next((rows[0] for rows in _row_groups(ok).values()), None)
        if first is not None:  # what latency proportional to area would look like
            a0 = first["input_hw"][0] * first["input_hw"][1] / 1e6
            y0 = first["model_only"]["stats"]["p50_ms"]
            xs = sorted({r["input_hw"][0] * r["input_hw"][1] / 1e6 for r in ok})
            ax.plot(xs, [y0 * x / a0 for x in xs], ":", color="grey",
                    label=f"proportional to area (from {row_name(first)})")
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
