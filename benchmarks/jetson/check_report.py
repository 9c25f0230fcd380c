"""The machine facts and the report files of ``jetson_check.py`` (``make jetson-check``).

``machine_facts`` reads what a bug report about the TensorRT path needs: the module
(/proc/device-tree/model), the L4T release (/etc/nv_tegra_release), JetPack (dpkg), TensorRT
(the Python package, as a subprocess so that a broken install cannot stop the check, and
trtexec), CUDA (nvcc), the nvpmodel mode and jetson_clocks state (through
``latency_bench.jetson.query_jetson``), the Python environment and the checkout's commit.
Nothing here raises: a fact that cannot be read is recorded as missing, with the reason.

``render_markdown`` turns the report dictionary (``jetson_check.report_dict``) into report.md.
"""
from __future__ import annotations

import json
import os
import platform
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

TRTEXEC_DEFAULT = Path("/usr/src/tensorrt/bin/trtexec")   # where JetPack puts it
PACKAGES = ("cuda-python", "cuda-bindings", "onnxruntime", "onnxruntime-gpu", "torch", "numpy",
            "onnx", "onnxruntime-extensions", "nvidia-modelopt", "pytest", "oscar-edge")

# Run with the checked Python: what the steps will see (tensorrt import, package versions).
_PROBE = r"""
import json
out = {"packages": {}}
try:
    import tensorrt
    out["tensorrt"] = str(getattr(tensorrt, "__version__", "unknown"))
    out["tensorrt_file"] = str(getattr(tensorrt, "__file__", ""))
except Exception as exc:
    out["tensorrt_error"] = (type(exc).__name__ + ": " + str(exc)).splitlines()[0]
from importlib import metadata
for name in NAMES:
    try:
        out["packages"][name] = metadata.version(name)
    except Exception:
        out["packages"][name] = None
try:
    import onnxruntime
    out["onnxruntime_providers"] = list(onnxruntime.get_available_providers())
except Exception as exc:
    out["onnxruntime_error"] = (type(exc).__name__ + ": " + str(exc)).splitlines()[0]
print("PROBE " + json.dumps(out))
"""


def run_text(cmd: Sequence[str], env: Mapping[str, str], timeout: float = 30.0
             ) -> Tuple[int, str]:
    """(exit code, stdout + stderr); 127 and the reason when it cannot run."""
    try:
        p = subprocess.run(list(cmd), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           stdin=subprocess.DEVNULL, text=True, errors="replace", env=dict(env),
                           timeout=timeout)
    except FileNotFoundError:
        return 127, f"{cmd[0]}: not found"
    except (OSError, subprocess.TimeoutExpired) as exc:
        return 127, f"{cmd[0]}: {exc}"
    return p.returncode, p.stdout


def read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def l4t_release(text: str) -> Optional[str]:
    """'# R36 (release), REVISION: 4.3, GCID: ...' -> 'R36.4.3' (None when not found)."""
    m = re.search(r"R(\d+)\s*\(release\),\s*REVISION:\s*([\d.]+)", text)
    return f"R{m.group(1)}.{m.group(2)}" if m else None


def trtexec_version(text: str) -> Optional[str]:
    """'[TensorRT v100300]' in trtexec's first line -> '10.3.0'."""
    m = re.search(r"TensorRT v(\d{5,})", text)
    if not m:
        return None
    n = int(m.group(1))
    return f"{n // 10000}.{(n // 100) % 100}.{n % 100}"


def nvcc_version(text: str) -> Optional[str]:
    """'Cuda compilation tools, release 12.6, V12.6.68' -> '12.6.68'."""
    m = re.search(r"release [\d.]+, V([\d.]+)", text)
    return m.group(1) if m else None


def venv_facts() -> Dict[str, object]:
    """Whether this Python is a venv, and whether it sees the system site-packages (where
    JetPack puts the tensorrt module)."""
    in_venv = sys.prefix != getattr(sys, "base_prefix", sys.prefix)
    system_site = None
    if in_venv:
        cfg = read_text(Path(sys.prefix) / "pyvenv.cfg")
        m = re.search(r"include-system-site-packages\s*=\s*(\w+)", cfg)
        system_site = bool(m and m.group(1).lower() == "true")
    return {"executable": sys.executable, "version": platform.python_version(),
            "prefix": sys.prefix, "venv": in_venv, "system_site_packages": system_site}


def git_facts(repo: Path, env: Mapping[str, str]) -> Dict[str, object]:
    rc, head = run_text(["git", "-C", str(repo), "rev-parse", "HEAD"], env, 10)
    if rc != 0:
        return {"commit": None}
    rc2, status = run_text(["git", "-C", str(repo), "status", "--porcelain",
                            "--untracked-files=no"], env, 10)
    return {"commit": head.strip(), "uncommitted_changes": rc2 == 0 and bool(status.strip())}


def machine_facts(repo: Path, env: Mapping[str, str], root: Path = Path("/")
                  ) -> Dict[str, object]:
    """Every fact of the report's "Machine" section (see the module docstring)."""
    from latency_bench.jetson import query_jetson

    path = env.get("PATH", "")
    out: Dict[str, object] = {
        "hostname": platform.node(), "arch": platform.machine(), "kernel": platform.release(),
        "cpus": os.cpu_count(), "python": venv_facts(), "repository": git_facts(repo, env),
    }
    mem = re.search(r"MemTotal:\s+(\d+) kB", read_text(Path("/proc/meminfo")))
    out["memory_gb"] = round(int(mem.group(1)) / 2 ** 20, 1) if mem else None
    try:
        jet = query_jetson(lambda cmd: run_text(cmd, env, 20), str(root))
    except Exception as exc:  # never stop the check for a fact
        jet = {"error": f"{type(exc).__name__}: {exc}"}
    out["model"] = jet.get("model")
    out["l4t_release_line"] = jet.get("l4t_release")
    out["l4t"] = l4t_release(str(jet.get("l4t_release") or ""))
    out["jetpack"] = jet.get("jetpack")
    nvp = jet.get("nvpmodel") or {}
    out["nvpmodel"] = {k: nvp.get(k) for k in ("mode_name", "mode_id", "source", "error")}
    clocks = jet.get("jetson_clocks") or {}
    out["jetson_clocks"] = {"on": clocks.get("on"), "source": clocks.get("source")}

    rc, text = run_text([sys.executable, "-c", "NAMES = %r\n" % (PACKAGES,) + _PROBE], env, 180)
    probe: Dict[str, object] = {}
    for line in text.splitlines():
        if line.startswith("PROBE "):
            probe = json.loads(line[6:])
    if not probe:
        probe = {"error": f"probe exit code {rc}: {text.strip().splitlines()[-1:]}"}
    out["tensorrt"] = {"python": probe.get("tensorrt"), "module": probe.get("tensorrt_file"),
                       "import_error": probe.get("tensorrt_error")}
    out["packages"] = probe.get("packages", {})
    out["onnxruntime_providers"] = probe.get("onnxruntime_providers")
    exe = shutil.which("trtexec", path=path) or (str(TRTEXEC_DEFAULT)
                                                if TRTEXEC_DEFAULT.is_file() else None)
    out["tensorrt"]["trtexec"] = exe
    if exe:
        out["tensorrt"]["trtexec_version"] = trtexec_version(run_text([exe, "--help"], env, 30)[1])
    nvcc = shutil.which("nvcc", path=path)
    out["cuda"] = {"nvcc": nvcc,
                   "version": nvcc_version(run_text([nvcc, "--version"], env)[1]) if nvcc else None}
    cmake = shutil.which("cmake", path=path)
    out["cmake"] = (run_text([cmake, "--version"], env)[1].strip().splitlines() or [None])[0] \
        if cmake else None
    out["warnings"] = fact_warnings(out)
    return out


def fact_warnings(f: Mapping[str, object]) -> List[str]:
    """What in the facts alone predicts trouble."""
    w = []
    py = f["python"]
    if not py["venv"]:
        w.append(f"{py['executable']} is not a venv: benchmarks/jetson/README.md makes one with "
                 "python3 -m venv --system-site-packages")
    elif py["system_site_packages"] is False:
        w.append(f"the venv {py['prefix']} does not see the system site-packages, where JetPack "
                 "puts tensorrt: recreate it with --system-site-packages")
    if f["tensorrt"]["python"] is None:
        w.append(f"tensorrt does not import: {f['tensorrt']['import_error']}")
    pk = f.get("packages") or {}
    if not (pk.get("cuda-python") or pk.get("cuda-bindings")):
        w.append("cuda-python is not installed: the TensorRT backend and tests need it "
                 "(benchmarks/jetson/README.md)")
    if pk.get("onnxruntime") and pk.get("onnxruntime-gpu"):
        w.append("onnxruntime and onnxruntime-gpu are both installed: keep one")
    if f["cuda"]["nvcc"] is None:
        w.append("nvcc is not on PATH nor in /usr/local/cuda/bin: the plugins need the CUDA "
                 "toolkit")
    if f["model"] is None:
        w.append("not a Jetson (no /proc/device-tree/model, no /etc/nv_tegra_release)")
    return w


# ---------------------------------------------------------------------------------- Markdown
def _fmt(v: object, nd: int = 4) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{nd}f}"
    return str(v)


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _machine_rows(f: Mapping[str, object]) -> List[Tuple[str, str]]:
    trt = f["tensorrt"]
    nvp = f["nvpmodel"]
    py = f["python"]
    repo = f["repository"]
    pk = f.get("packages") or {}
    mode = (f"{nvp['mode_name']} (id {_fmt(nvp['mode_id'])})" if nvp.get("mode_name")
            else f"unknown ({nvp.get('error') or 'nvpmodel not found'})")
    clocks = {True: "on", False: "off", None: "unknown"}[f["jetson_clocks"]["on"]]
    return [
        ("model", _fmt(f["model"])),
        ("L4T", f"{_fmt(f['l4t'])} ({_fmt(f['l4t_release_line'])})"),
        ("JetPack (nvidia-jetpack)", _fmt(f["jetpack"])),
        ("TensorRT (Python)", trt["python"] or f"does not import: {trt['import_error']}"),
        ("trtexec", f"{trt['trtexec']} (TensorRT {_fmt(trt.get('trtexec_version'))})"
                    if trt.get("trtexec") else "not found"),
        ("CUDA (nvcc)", f"{_fmt(f['cuda']['version'])} ({_fmt(f['cuda']['nvcc'])})"),
        ("cuda-python", _fmt(pk.get("cuda-python") or pk.get("cuda-bindings"))),
        ("nvpmodel", mode),
        ("jetson_clocks", f"{clocks} ({_fmt(f['jetson_clocks']['source'])})"),
        ("CMake", _fmt(f["cmake"])),
        ("ONNX Runtime", f"{_fmt(pk.get('onnxruntime') or pk.get('onnxruntime-gpu'))} "
                         f"{f.get('onnxruntime_providers') or ''}"),
        ("PyTorch / ModelOpt", f"{_fmt(pk.get('torch'))} / {_fmt(pk.get('nvidia-modelopt'))}"),
        ("Python", f"{py['version']} {py['executable']} (venv: {py['venv']}, system "
                   f"site-packages: {py['system_site_packages']})"),
        ("machine", f"{f['arch']}, {f['cpus']} CPUs, {_fmt(f['memory_gb'], 1)} GB, kernel "
                    f"{f['kernel']}"),
        ("oscar-edge commit", f"{_fmt(repo.get('commit'))}"
                              + (" (uncommitted changes)" if repo.get("uncommitted_changes")
                                 else "")),
    ]


def _key_figure(step: Mapping[str, object]) -> str:
    fig = step.get("figures") or {}
    key = str(step["key"])
    if key == "pytest" and "counts" in fig:
        return ", ".join(f"{n} {k}" for k, n in fig["counts"].items()) or "no summary line"
    if key.startswith("engine-") and fig.get("engine_mb") is not None:
        return f"{fig['engine_mb']:.2f} MB, TensorRT {fig.get('tensorrt_version') or '?'}"
    if key.startswith("evaluate-") and fig.get("mNoCoAP") is not None:
        return f"mNoCoAP {fig['mNoCoAP']:.4f} ({fig.get('num_images')} images)"
    if key == "latency" and fig.get("rows"):
        ok = [r for r in fig["rows"] if r["status"] == "ok"]
        return f"{len(ok)} of {len(fig['rows'])} backends timed: " + ", ".join(
            f"{r['backend']} {r['full_path_p50_ms']:.1f} ms" for r in ok) + " (p50, frame to " \
            "detections)"
    if key == "plugins" and fig.get("library_bytes") is not None:
        return f"{Path(str(fig['library'])).name} ({fig['library_bytes'] / 1e6:.2f} MB)"
    return ""


def _accuracy_table(steps: Sequence[Mapping[str, object]]) -> List[str]:
    evals = [s for s in steps if str(s["key"]).startswith("evaluate-")]
    if not evals:
        return []
    ref = next((s for s in evals if s["key"] == "evaluate-ort-fp32"), None)
    ref_m = (ref or {}).get("figures", {}).get("mNoCoAP") if ref else None
    lines = ["## Accuracy (mNoCoAP beside ONNX Runtime FP32 on this machine)", "",
             "| model | status | mNoCoAP | vs ORT FP32 (points) | AP50 | Pd | false alarms / image "
             "| images |", "|---|---|---|---|---|---|---|---|"]
    for s in evals:
        fig = s.get("figures") or {}
        m = fig.get("mNoCoAP")
        delta = "reference" if s is ref else (
            f"{(m - ref_m) * 100:+.2f}" if m is not None and ref_m is not None else "-")
        status = s["status"] + (f": {s['reason']}" if s["status"] != "passed" else "")
        lines.append(f"| {_cell(s['title'])} | {_cell(status)} | {_fmt(m)} | {delta} | "
                     f"{_fmt(fig.get('AP50'))} | {_fmt(fig.get('Pd'))} | "
                     f"{_fmt(fig.get('Fa_per_image'), 3)} | {_fmt(fig.get('num_images'))} |")
    return lines + [""]


def _latency_table(steps: Sequence[Mapping[str, object]]) -> List[str]:
    lat = next((s for s in steps if s["key"] == "latency"), None)
    if lat is None:
        return []
    fig = lat.get("figures") or {}
    lines = ["## Latency (benchmarks/latency.py, p50 per backend)", ""]
    if not fig.get("rows"):
        return lines + [f"Not measured: {lat['status']}"
                        + (f" ({lat['reason']})" if lat.get("reason") else "") + ".", ""]
    lines += ["| backend | size | status | model only p50 (ms) | frame to detections p50 (ms) "
              "| power, frame to detections (mW) | energy / frame (mJ) |",
              "|---|---|---|---|---|---|---|"]
    for r in fig["rows"]:
        reason = str(r.get("reason") or "")
        status = (reason if reason.startswith("not available") else
                  r["status"] + (f": {reason}" if reason else ""))
        lines.append(f"| {r['backend']} | {r['size']} | {_cell(status)} | "
                     f"{_fmt(r.get('model_only_p50_ms'), 2)} | "
                     f"{_fmt(r.get('full_path_p50_ms'), 2)} | {_fmt(r.get('power_mw'), 0)} | "
                     f"{_fmt(r.get('energy_mj'), 2)} |")
    if fig.get("left_out"):
        lines += [""] + [f"- {note}" for note in fig["left_out"]]
    jet = fig.get("jetson") or {}
    if jet:
        clocks = {True: "on", False: "off"}.get(jet.get("jetson_clocks_on"), "unknown")
        lines += ["", f"tegrastats: {_fmt(jet.get('tegrastats'))} "
                      f"({_fmt(jet.get('tegrastats_lines'))} lines); nvpmodel "
                      f"{_fmt(jet.get('nvpmodel'))}; jetson_clocks {clocks}"]
    return lines + [""]


def render_markdown(rep: Mapping[str, object]) -> str:
    """report.md from the report dictionary."""
    f = rep["machine"]
    steps = rep["steps"]
    counts = rep["summary"]
    verdict = ("every step passed" if counts["passed"] == len(steps)
               else f"{counts['passed']} passed, {counts['failed']} failed, "
                    f"{counts['skipped']} skipped"
                    + (f", {counts['not run']} not run (incomplete)" if counts["not run"]
                       else ""))
    out = [f"# oscar-edge jetson-check: {verdict}", "",
           f"Created {rep['created']} by `{rep['command']}` ("
           + ("still running, or stopped before the end" if rep["exit_code"] is None
              else f"exit code {rep['exit_code']}") + "). "
           "Attach this folder (report.md, report.json, logs/) to the bug report.", ""]
    if rep.get("previous_report"):
        out += [f"The previous report was moved to `{rep['previous_report']}`.", ""]
    if rep.get("note"):
        out += [f"**Note:** {rep['note']}", ""]
    out += ["## Machine", "", "| fact | value |", "|---|---|"]
    out += [f"| {k} | {_cell(v)} |" for k, v in _machine_rows(f)]
    out += [""] + [f"- warning: {w}" for w in f.get("warnings", [])]
    out += ["", "## Steps", "", "| # | step | status | duration | key figures | log |",
            "|---|---|---|---|---|---|"]
    for i, s in enumerate(steps, 1):
        status = s["status"] + (f": {s['reason']}" if s.get("reason") else "")
        log = f"[{s['log']}]({s['log']})" if s.get("log") else "-"
        took = f"{s['duration_s']:.1f} s" if s["commands"] else "-"
        out.append(f"| {i} | {s['key']} | {_cell(status)} | {took} | "
                   f"{_cell(_key_figure(s))} | {log} |")
    out.append("")
    out += _accuracy_table(steps)
    out += _latency_table(steps)
    out += ["## Step details", ""]
    for i, s in enumerate(steps, 1):
        out += [f"### {i}. {s['key']}: {s['title']}", "", f"Status: **{s['status']}**"
                + (f" ({s['reason']})" if s.get("reason") else "")
                + (f", {s['duration_s']:.1f} s." if s["commands"] else "."), ""]
        for note in s.get("notes", []):
            out.append(f"- {note}")
        for c in s.get("commands", []):
            what = c.get("error") or f"exit code {c.get('exit_code')}"
            out.append(f"- `{c['command']}`: {what}, {c['duration_s']:.1f} s")
        if s.get("notes") or s.get("commands"):
            out.append("")
        if s.get("log_tail"):
            out += [f"Last {len(s['log_tail'])} lines of `{s['log']}`:", "", "```"]
            out += [line.replace("```", "'''") for line in s["log_tail"]]
            out += ["```", ""]
    return "\n".join(out) + "\n"
