"""Many cameras, one Triton server: aggregate throughput and latency (docs/many-cameras.md).

    python benchmarks/serve.py --out docs/results/serve_DATE
    python benchmarks/serve.py --out /tmp/serve-check --cameras 1,2 --frames 20   # a quick look

What runs (all on this machine, loopback):

1. the in-process runtime: one ``oscar-edge run`` on a synthetic camera with the same backend
   and threads as the server's model (the reference);
2. for dynamic batching on and off: a CPU repository (``oscar-edge export-triton``) served by
   ``oscar-edge serve`` (the real tritonserver of nvidia-pytriton), then 1, 2, 4, 8 cameras at
   once, each a real ``oscar-edge run --backend triton://...`` process on its own synthetic
   source (uint8 frames travel, detections come back).

Every camera is a finite source read as fast as the pipeline takes frames (throughput mode):
aggregate FPS is the sum of the cameras' FPS, per-camera end-to-end p50 / p99 come from each
run's statistics. Server CPU is the CPU time of tritonserver and its Python-backend stubs over
the cameras' wall time (cores busy); the batch sizes Triton formed come from its statistics
API (executions per batch size). Results: summary.md and results.json in ``--out``.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Dict, List, Optional, Sequence

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from oscar_edge.triton.server import ServeProcess  # noqa: E402
CLK = os.sysconf("SC_CLK_TCK")


def tree_cpu_s(root: int) -> float:
    """User + system CPU seconds of ``root`` and all its descendants (from /proc)."""
    children: Dict[int, List[int]] = {}
    stats: Dict[int, float] = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            fields = (d / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ppid = int(fields[1])
        children.setdefault(ppid, []).append(int(d.name))
        stats[int(d.name)] = (int(fields[11]) + int(fields[12])) / CLK
    total, todo = 0.0, [root]
    while todo:
        pid = todo.pop()
        total += stats.get(pid, 0.0)
        todo += children.get(pid, [])
    return total


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def run_camera(backend: str, seed: int, frames: int, size: str, stats: Path,
               extra: Sequence[str] = ()) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "oscar_edge", "run", "--source",
           f"synthetic://?frames={frames}&size={size}&seed={seed}", "--headless", "--backend",
           backend, "--stats", str(stats), "--report-every", "0", *extra]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            cwd=REPO)


def camera_results(stats_files: List[Path]) -> Dict:
    per = []
    for f in stats_files:
        s = json.loads(f.read_text())
        e2e = s["stages"]["end_to_end"]
        per.append({"fps": round(s["fps"], 2), "processed": s["frames"]["processed"],
                    "dropped": s["frames"]["dropped"], "e2e_p50_ms": round(e2e["p50_ms"], 1),
                    "e2e_p99_ms": round(e2e["p99_ms"], 1),
                    "inference_p50_ms": round(s["stages"]["inference"]["p50_ms"], 1)})
    return {"aggregate_fps": round(sum(p["fps"] for p in per), 2), "per_camera": per,
            "e2e_p50_ms_median": sorted(p["e2e_p50_ms"] for p in per)[len(per) // 2],
            "e2e_p99_ms_max": max(p["e2e_p99_ms"] for p in per)}


def model_batches(http_port: int, model: str = "oscar-edge") -> Dict[int, int]:
    """Executions per batch size so far (Triton's statistics API)."""
    url = f"http://127.0.0.1:{http_port}/v2/models/{model}/stats"
    with urllib.request.urlopen(url, timeout=5) as r:
        st = json.loads(r.read().decode())["model_stats"][0]
    return {int(b["batch_size"]): int(b["compute_infer"]["count"])
            for b in st.get("batch_stats", [])}


def serve_round(repo: Path, python: str, cameras: Sequence[int], frames: int, size: str,
                work: Path, tag: str) -> List[Dict]:
    try:
        srv = ServeProcess(repo, python, wait_s=180, cwd=REPO)
    except RuntimeError as exc:
        raise SystemExit(f"serve.py: {exc}") from None
    rows = []
    try:
        # warm-up: one camera, a few frames (model load, first-run allocations)
        run_camera(f"triton://127.0.0.1:{srv.grpc}/oscar-edge", 99, 5, size,
                   work / f"{tag}-warm.json").wait(300)
        for n in cameras:
            before_b = model_batches(srv.http)
            cpu0, t0 = tree_cpu_s(srv.proc.pid), time.monotonic()
            files = [work / f"{tag}-{n}cam-{i}.json" for i in range(n)]
            procs = [run_camera(f"triton://127.0.0.1:{srv.grpc}/oscar-edge", i, frames, size,
                                f) for i, f in enumerate(files)]
            errs = [p.communicate(timeout=1800)[1] for p in procs]
            wall = time.monotonic() - t0
            cpu = tree_cpu_s(srv.proc.pid) - cpu0
            after_b = model_batches(srv.http)
            bad = [e.strip().splitlines()[-1] for p, e in zip(procs, errs) if p.returncode]
            if bad:
                raise SystemExit(f"serve.py: a camera failed: {bad[0]}")
            batches = {b: after_b.get(b, 0) - before_b.get(b, 0) for b in after_b}
            batches = {b: c for b, c in sorted(batches.items()) if c}
            execs = sum(batches.values())
            row = {"mode": tag, "cameras": n, **camera_results(files),
                   "server_cpu_cores": round(cpu / wall, 2), "wall_s": round(wall, 1),
                   "batches": batches,
                   "mean_batch": round(sum(b * c for b, c in batches.items()) / execs, 2)
                   if execs else None}
            rows.append(row)
            print(f"{tag:>12} {n} cameras: {row['aggregate_fps']:.1f} FPS, e2e p50 "
                  f"{row['e2e_p50_ms_median']} ms, server {row['server_cpu_cores']} cores, "
                  f"batches {batches}", flush=True)
    finally:
        srv.stop()
    return rows


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--cameras", default="1,2,4,8")
    ap.add_argument("--frames", type=int, default=150, help="frames per camera")
    ap.add_argument("--size", default="640x512", help="camera frame size WxH")
    ap.add_argument("--threads", type=int, default=2,
                    help="inference threads: the in-process run and each server instance")
    ap.add_argument("--backend", default="onnxruntime", choices=("onnxruntime", "openvino"))
    ap.add_argument("--server-python", default=os.environ.get("OSCAR_EDGE_SERVE_PYTHON")
                    or str(REPO / ".venv-serve" / "bin" / "python"))
    ap.add_argument("--modes", default="dynamic,none", help="dynamic batching on / off")
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cams = [int(v) for v in args.cameras.split(",")]
    work = Path(tempfile.mkdtemp(prefix="serve-bench-"))
    t_start = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    # 1. in-process reference
    ref_file = work / "inprocess.json"
    p = run_camera(args.backend, 0, args.frames, args.size, ref_file,
                   ["--threads", str(args.threads)])
    err = p.communicate(timeout=1800)[1]
    if p.returncode:
        raise SystemExit(f"serve.py: the in-process run failed: {err.strip().splitlines()[-1]}")
    ref = {"mode": "in-process", "cameras": 1, **camera_results([ref_file])}
    print(f"  in-process 1 camera: {ref['aggregate_fps']:.1f} FPS, e2e p50 "
          f"{ref['e2e_p50_ms_median']} ms", flush=True)
    rows = [ref]
    for mode in args.modes.split(","):
        repo = work / f"repo-{mode}"
        cmd = [sys.executable, "-m", "oscar_edge", "export-triton", "--out", str(repo),
               "--backend", args.backend, "--threads", str(args.threads)]
        if mode == "none":
            cmd.append("--no-dynamic-batching")
        subprocess.run(cmd, check=True, capture_output=True, cwd=REPO)
        rows += serve_round(repo, args.server_python, cams, args.frames, args.size, work,
                            "dynamic" if mode == "dynamic" else "no batching")
    info = {"date": t_start, "cpu": cpu_name(), "cpus": os.cpu_count(),
            "platform": platform.platform(), "command": " ".join(["python"] + sys.argv),
            "backend": args.backend, "threads": args.threads, "frame_size": args.size,
            "frames_per_camera": args.frames}
    (out / "results.json").write_text(json.dumps({"info": info, "rows": rows}, indent=2) + "\n")
    four = [r for r in rows if r["cameras"] == 4 and r["mode"] != "in-process"]
    lines = [f"# Many cameras, one Triton server ({t_start})", "",
             f"Machine: {info['cpu']}, {info['cpus']} CPUs ({info['platform']}). Command: "
             f"`{info['command']}`.", "",
             f"Each camera: `oscar-edge run` on a synthetic {args.size} source, "
             f"{args.frames} frames as fast as it goes; model: the shipped FP32 graph on "
             f"{args.backend}, {args.threads} threads (in-process and per server instance, one "
             "instance).", "",
             "| mode | cameras | aggregate FPS | vs in-process | e2e p50 (median camera) ms | "
             "e2e p99 (worst) ms | server CPU cores | batches (size: executions) | mean batch |",
             "|---|---:|---:|---:|---:|---:|---:|---|---:|"]
    for r in rows:
        lines.append(f"| {r['mode']} | {r['cameras']} | {r['aggregate_fps']:.1f} | "
                     f"{r['aggregate_fps'] / ref['aggregate_fps']:.2f}x | "
                     f"{r['e2e_p50_ms_median']} | {r['e2e_p99_ms_max']} | "
                     f"{r.get('server_cpu_cores', '-')} | "
                     f"{', '.join(f'{b}: {c}' for b, c in r.get('batches', {}).items()) or '-'} "
                     f"| {r.get('mean_batch') or '-'} |")
    for r in four:
        ratio = r["aggregate_fps"] / ref["aggregate_fps"]
        lines.append(f"\nGoal (4 cameras >= 0.8x in-process), {r['mode']}: {ratio:.2f}x, "
                     f"{'met' if ratio >= 0.8 else 'missed'}.")
    (out / "summary.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
