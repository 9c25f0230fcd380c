"""One benchmark run: every backend at every size on the same frames, model only and frame to
detections, with machine, versions, threads, power and goals in one JSON-ready record."""
from __future__ import annotations

import argparse
import datetime
import os
import shlex
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from oscar_edge.errors import UserError

from .backends import (BACKEND_TABLE, OPENVINO_KEYS, Handle, ModelSource, Unavailable,
                       default_work_dir, make_handle, model_source, parse_backends,
                       plugin_library, prepare_artifacts)
from .common import first_line, log, parse_hints, parse_size, script_path, shown, size_label
from .goals import add_ratios, goals
from .jetson import (TRTEXEC_FLAGS, TegrastatsSampler, detect_jetson, power_summary,
                     query_jetson, tegrastats_command, trtexec_command)
from .machine import (BUSY_OTHERS_PCT, compute_peaks, cpu_snapshot, load_average, machine_info,
                      others_cpu_pct, versions)
from .stats import (STAGES, TRTEXEC_CV_LIMIT_PCT, UNSTABLE_RULE, letterboxed_batches,
                    list_frames, load_frames, spread_warning, summarize, time_full_path,
                    time_model_only)

FORMAT = "oscar-edge latency benchmark v1"


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

    backends = parse_backends(args.backends, getattr(args, "precision", None))
    hints = parse_hints(getattr(args, "ov_hint", "f32"))
    # (key, OpenVINO hint or None): every openvino key once per hint, in --ov-hint's order
    rows = [(name, hint) for name in backends
            for hint in (hints if name in OPENVINO_KEYS else (None,))]
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
                                         for a in [script_path()] + list(args._argv)),
        "date_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine_info(),
        "versions": versions(),
        "load_average_start": load_average(),
    }
    m = record["machine"]
    used = min(int(args.threads or m.get("physical_cores") or m.get("cpus_usable") or 1),
               int(m.get("physical_cores") or m.get("cpus_usable") or 1))
    m["peaks"] = compute_peaks(m.get("cpu_flags", []), used, m.get("cpu_ghz_reported"),
                               str(m.get("cpu_vendor") or ""), m.get("cpu_family"))
    src = model_source(args, work)
    if args.checkpoint and src.preset != args.preset:
        log(f"note: --checkpoint holds preset {src.preset}; --preset {args.preset} ignored")
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
        "openvino": {"inference_num_threads": args.threads or "default (all cores)",
                     "performance_hint": "LATENCY",
                     "precision_hint": ",".join(hints)},
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
    base = baseline_source(args, work)
    base_handles: Dict[str, Handle] = {}
    base_failed = prepare_artifacts(backends, sizes, base, args, data, work) if base else {}
    if base is not None:
        record["baseline"] = {"checkpoint": str(base.checkpoint), "preset": base.preset,
                              "fp32_onnx": str(base.fp32_onnx),
                              **model_complexity(base.preset, sizes)}
    try:
        for hw in sizes:
            batches = letterboxed_batches(greys, args.batch, hw)
            for name, hint in rows:
                results.append(measure_one(name, hw, batches, greys, src, args, data, work,
                                           handles, sampler, idle_mw, trtexec,
                                           failed.get((name, size_label(hw))), hint))
                # Only the measured model is alive while it is timed: an idle session of an
                # earlier row keeps thread pools (ONNX Runtime's spin, OpenVINO's streams) that
                # slowed the next rows by up to 45 % on a 2-core machine.
                close_all(handles)
                if base is not None:  # the baseline model right after, same backend and size
                    r = measure_one(name, hw, batches, greys, base, args, data, work,
                                    base_handles, sampler, idle_mw, {},
                                    base_failed.get((name, size_label(hw))), hint)
                    r["backend"] = f"{name} {BASELINE_TAG}"
                    r["baseline_of"] = name
                    results.append(r)
                    close_all(base_handles)
    finally:
        for h in list(handles.values()) + list(base_handles.values()):
            h.close()
        if sampler is not None:
            sampler.stop()
            record["jetson"]["tegrastats_lines"] = sampler.lines
    record["load_average_end"] = load_average()
    add_ratios(results, record["model"])
    if base is not None:
        add_baseline_ratios(results, record["baseline"])
    record["results"] = results
    record["goals"] = goals(results, src.preset, record["machine"])
    if any(BACKEND_TABLE[b].trtexec for b in backends) or jetson_mode:
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


BASELINE_TAG = "[baseline]"


def _handle_key(name: str, hint: Optional[str]) -> str:
    return name if hint is None else f"{name}|{hint}"


def baseline_source(args: argparse.Namespace, work: Path):
    """The ``--baseline-checkpoint`` model (exported to ONNX like the main one), or None."""
    path = getattr(args, "baseline_checkpoint", None)
    if not path:
        return None
    ns = argparse.Namespace(**vars(args))
    ns.checkpoint = path
    src = model_source(ns, work)
    src.weights = f"baseline checkpoint {path}"
    return src


def add_baseline_ratios(results: List[Dict[str, object]], baseline: Dict[str, object]) -> None:
    """Baseline rows: their own GFLOP/s; main rows: p50 / the baseline's p50 (same backend,
    size), model only and frame to detections, in place."""
    gflop = baseline.get("gflop_mac", {})
    ok = [r for r in results if r["status"] == "ok"]
    for r in ok:
        if r.get("baseline_of"):
            g = gflop.get(r["size"])
            p50 = r["model_only"]["stats"]["p50_ms"]
            if g is not None:
                r["gflop_mac_per_image"] = g
                r["achieved_gflops"] = g * r["batch"] / (p50 / 1e3)
                r["achieved_gflops_2mac"] = 2 * r["achieved_gflops"]
            continue
        b = next((t for t in ok if t.get("baseline_of") == r["backend"]
                  and t.get("ov_hint") == r.get("ov_hint") and t["size"] == r["size"]), None)
        if b is not None:
            r.setdefault("ratios", {})
            r["ratios"]["model_only_vs_baseline"] = (r["model_only"]["stats"]["p50_ms"]
                                                     / b["model_only"]["stats"]["p50_ms"])
            r["ratios"]["full_path_vs_baseline"] = (r["full_path"]["total"]["p50_ms"]
                                                    / b["full_path"]["total"]["p50_ms"])


def close_all(handles: Dict[str, Handle]) -> None:
    """Close and forget every open handle (its session, engine and threads)."""
    for key in list(handles):
        handles.pop(key).close()


def measure_one(name: str, hw: Tuple[int, int], batches, greys, src: ModelSource,
                args: argparse.Namespace, data: Path, work: Path, handles: Dict[str, Handle],
                sampler: Optional[TegrastatsSampler], idle_mw: Optional[float],
                trtexec: Dict[str, str], prepare_error: Optional[Exception] = None,
                hint: Optional[str] = None) -> Dict[str, object]:
    """One row: ``name`` at ``hw`` (with OpenVINO precision hint ``hint`` for openvino keys)."""
    from oscar_edge.pipeline import Detector

    label = size_label(hw)
    res: Dict[str, object] = {"backend": name, "size": label, "input_hw": list(hw),
                              "batch": args.batch}
    if hint is not None:
        res["ov_hint"] = hint
    if prepare_error is not None:
        return dict(res, status="failed", reason=f"failed: {first_line(prepare_error)}")
    key = _handle_key(name, hint)
    shown_name = name if hint is None else f"{name} ({hint})"
    try:
        if key not in handles:
            ns = args if hint is None else argparse.Namespace(**dict(vars(args), ov_hint=hint))
            handles[key] = make_handle(name, src, ns, data, work, args.batch, hw)
        h = handles[key]
    except Unavailable as exc:
        log(f"{shown_name} @ {label}: {exc}")
        if BACKEND_TABLE[name].trtexec:
            trtexec.setdefault(f"{name} {label}", trtexec_command(
                f"<{name} engine>", shown(plugin_library(args)), args.batch, hw, args.runs))
        return dict(res, status="unavailable", reason=str(exc))
    except Exception as exc:  # a model / package problem: report it, go on with the others
        log(f"{shown_name} @ {label}: failed: {first_line(exc)}")
        return dict(res, status="failed", reason=f"failed: {first_line(exc)}")
    if BACKEND_TABLE[name].trtexec and h.model_file:
        trtexec[f"{name} {label}"] = trtexec_command(shown(h.model_file),
                                                     shown(plugin_library(args)), args.batch,
                                                     hw, args.runs,
                                                     times_file=shown(h.model_file)
                                                     + ".times.json")
    res.update(status="ok", label=h.label, model_file=h.model_file, info=h.info)
    cpus = os.cpu_count() or 1
    try:
        # ---- model only
        log(f"{shown_name} @ {label}: model only, {args.warmup} warm-up + {args.runs} timed calls")
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
        log(f"{shown_name} @ {label}: frame to detections, {args.warmup} warm-up + {args.runs} timed")
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
        log(f"{shown_name} @ {label}: failed while timing: {first_line(exc)}")
        res.update(status="failed", reason=f"failed while timing: {first_line(exc)}")
    return res
