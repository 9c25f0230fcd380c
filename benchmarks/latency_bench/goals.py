"""The goals a run is checked against (printed at the end of the report) and the speed ratios
they read: each backend vs PyTorch eager, achieved GFLOP/s."""
from __future__ import annotations

from typing import Dict, List

from .common import SHIPPED_PRESET, row_name, size_label
from .machine import INT8_DOT_FLAGS
from .stats import STAGES

GOAL_ORT_VS_TORCH = 2.5
GOAL_INT8_VS_FP32 = 1.7
GOAL_FULL_P50_MS = 10.0
GOAL_POST_SHARE = 0.05
GOAL_SIZE = (512, 640)              # (height, width): "640x512"
GOAL_OV_INT8_VS_ORT = 2.5           # OpenVINO INT8 model only vs ONNX Runtime FP32


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


def _openvino_rows(results, size: str, machine: Dict[str, object]) -> List[Dict[str, object]]:
    """OpenVINO INT8 vs ONNX Runtime FP32, and the achieved INT8 GMAC/s against the CPU's
    nominal INT8 peak (``machine["peaks"]``, arithmetic written out): one pair of rows per
    precision hint that openvino-int8 ran with."""
    rows: List[Dict[str, object]] = []
    ort = _res(results, "ort", size)
    for ov in [r for r in results if r["backend"] == "openvino-int8" and r["size"] == size
               and r["status"] == "ok"]:
        rows += _openvino_pair(ov, ort, size, machine)
    return rows


def _openvino_pair(ov: Dict[str, object], ort, size: str,
                   machine: Dict[str, object]) -> List[Dict[str, object]]:
    peaks = machine.get("peaks", {}) if isinstance(machine, dict) else {}
    name = row_name(ov)
    p50 = ov["model_only"]["stats"]["p50_ms"]
    rows = []
    g = {"goal": f"OpenVINO INT8 >= {GOAL_OV_INT8_VS_ORT:g}x faster than ONNX Runtime FP32 "
                 f"(model only, p50: {name} vs ort)", "size": size,
         "backend": name, "target": f">= {GOAL_OV_INT8_VS_ORT:g}x"}
    if ort is None:
        g.update(value="-", status="n/a", why="needs openvino-int8 and ort measured")
    else:
        o50 = ort["model_only"]["stats"]["p50_ms"]
        ratio = o50 / p50
        g.update(value=f"{ratio:.2f}x", status="PASS" if ratio >= GOAL_OV_INT8_VS_ORT else "MISS")
        if ratio < GOAL_OV_INT8_VS_ORT:
            why = f"inference: {name} p50 {p50:.2f} ms vs ort {o50:.2f} ms"
            gmac = ov.get("gflop_mac_per_image")
            i8, f32 = peaks.get("int8_peak_gmacs"), peaks.get("fp32_peak_gmacs")
            if gmac and i8 and f32:
                ort_rate = gmac * ort["batch"] / (o50 / 1e3)
                need = GOAL_OV_INT8_VS_ORT * ort_rate
                why += (f"; ort FP32 already runs at {ort_rate:.0f} GMAC/s "
                        f"({100 * ort_rate / f32:.0f} % of the FP32 peak {f32:.0f}), so "
                        f"{GOAL_OV_INT8_VS_ORT:g}x needs {need:.0f} GMAC/s in INT8 against an "
                        f"INT8 peak of {i8:.0f} GMAC/s ({i8 / f32:.1f}x the FP32 peak: "
                        f"{peaks.get('int8_how')})")
            g["why"] = why
    rows.append(g)
    gmac = ov.get("gflop_mac_per_image")
    i8 = peaks.get("int8_peak_gmacs")
    if gmac and i8:
        rate = gmac * ov["batch"] / (p50 / 1e3)
        rows.append({"goal": "achieved INT8 GMAC/s against the CPU's nominal INT8 peak "
                             f"({name}, model only, p50)", "size": size,
                     "backend": name, "target": "report",
                     "value": f"{rate:.0f} GMAC/s = {100 * rate / i8:.0f} % of {i8:.0f}",
                     "status": "info",
                     "why": f"peak: {peaks.get('int8_arithmetic')} ({peaks.get('int8_how')})"})
    return rows


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
        rows += _openvino_rows(results, size, machine)
        if not (preset == SHIPPED_PRESET and size == size_label(GOAL_SIZE)):
            continue
        goal_measured = True
        # the goals are set for the shipped model: a --baseline-checkpoint row is not judged
        for r in [r for r in results if r["size"] == size and r["status"] == "ok"
                  and not r.get("baseline_of")]:
            fp = r["full_path"]
            total = fp["total"]["p50_ms"]
            g = {"goal": FULL_GOAL, "size": size, "backend": row_name(r),
                 "target": f"< {GOAL_FULL_P50_MS:g} ms", "value": f"{total:.2f} ms",
                 "status": "PASS" if total < GOAL_FULL_P50_MS else "MISS",
                 "breakdown": _stage_breakdown(r)}
            if total >= GOAL_FULL_P50_MS:
                g["why"] = f"held back by {_largest_stage(r)}: {_stage_breakdown(r)}"
            rows.append(g)
            post = fp["stages"]["postprocess"]["p50_ms"]
            share = post / total if total > 0 else 0.0
            g = {"goal": POST_GOAL, "size": size, "backend": row_name(r),
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
