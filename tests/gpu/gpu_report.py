"""Step records and the summary report of the GPU check (tests/gpu/device_check.sh).

Each step of the check writes, or has written for it, one JSON record
``<out>/steps/NN-<name>.json``::

    {"name": ..., "status": "pass" | "fail", "seconds": ..., "message": ..., "figures": {...}}

A Python step writes its own record (:func:`write_step`) with its figures; the shell then
settles it (``step`` command): the exit code, the time taken and a timeout decide the status,
and a step that died before writing anything gets a record from its log. ``finish`` gathers
the records and the machine's description (:func:`environment`) into ``report.json`` and
``report.md`` and exits 1 when any step failed.

    python tests/gpu/gpu_report.py step --out DIR --index 3 --name kernels --rc 0 \\
        --seconds 41.2 --log DIR/logs/kernels.log --timeout 120
    python tests/gpu/gpu_report.py finish --out DIR

Standard library only: it must report even when numpy or torch could not be set up.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

PASS = "pass"
FAIL = "fail"
STEPS_DIR = "steps"
REPORT_JSON = "report.json"
REPORT_MD = "report.md"
TIMEOUT_CODES = (124, 137)  # timeout(1): the limit was reached / the step was killed


def step_path(out: Path, index: int, name: str) -> Path:
    """Where step ``name`` (the ``index``-th of the check) keeps its record."""
    if not re.fullmatch(r"[A-Za-z0-9_-]+", name):
        raise ValueError(f"step names are letters, digits, '-' and '_': got {name!r}")
    return Path(out) / STEPS_DIR / f"{index:02d}-{name}.json"


def write_step(path: Path, name: str, ok: bool, message: str,
               figures: Optional[Dict[str, Any]] = None) -> Path:
    """Write one step's own record (status, one-line message, figures) to ``path``."""
    record = {"name": name, "status": PASS if ok else FAIL, "message": one_line(message),
              "figures": figures or {}}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2, default=_json_default) + "\n")
    return path


def _json_default(value: Any) -> Any:
    """numpy scalars and arrays, paths: as plain JSON values."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def one_line(text: str, limit: int = 300) -> str:
    """``text`` on one line, at most ``limit`` characters."""
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def last_line(log: Optional[Path]) -> str:
    """The last non-empty line of a log file ('' when there is none)."""
    if log is None or not Path(log).is_file():
        return ""
    lines = [ln.strip() for ln in Path(log).read_text(errors="replace").splitlines() if ln.strip()]
    return lines[-1] if lines else ""


def settle_step(path: Path, name: str, rc: int, seconds: float, log: Optional[Path] = None,
                timeout_s: Optional[float] = None, figures: Optional[Dict[str, Any]] = None
                ) -> Dict[str, Any]:
    """Final record of a step from its own record (if it wrote one) and its exit code.

    The step passes only when it exited 0 and its own record, if any, says pass. A timeout
    (exit 124 / 137) or a missing record is named in the message."""
    record: Dict[str, Any] = {"name": name, "status": PASS, "message": "", "figures": {}}
    own = Path(path).is_file()
    if own:
        try:
            record.update(json.loads(Path(path).read_text()))
        except (OSError, ValueError) as exc:
            record.update(status=FAIL, message=f"unreadable step record {path}: {exc}")
    record["figures"] = {**record.get("figures", {}), **(figures or {})}
    if rc in TIMEOUT_CODES and timeout_s is not None:
        record["status"] = FAIL
        record["message"] = one_line(f"timed out after {timeout_s:.0f} s (exit {rc}); "
                                     f"last output: {last_line(log) or 'none'}")
    elif rc != 0:
        if record["status"] == PASS or not record.get("message"):
            record["message"] = one_line(f"exit {rc}: {last_line(log) or 'no output'}")
        record["status"] = FAIL
    elif not own and not record["message"]:
        record["message"] = one_line(last_line(log) or "ok")
    record["rc"] = int(rc)
    record["seconds"] = round(float(seconds), 2)
    if log is not None:
        record["log"] = str(log)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2) + "\n")
    return record


def read_steps(out: Path) -> List[Dict[str, Any]]:
    """Every step record under ``out``, in step order."""
    records = []
    for path in sorted((Path(out) / STEPS_DIR).glob("*.json")):
        try:
            records.append(json.loads(path.read_text()))
        except (OSError, ValueError) as exc:
            records.append({"name": path.stem, "status": FAIL,
                            "message": f"unreadable step record: {exc}", "figures": {}})
    return records


def _run(cmd: Sequence[str], timeout: float = 20.0) -> str:
    """stdout of a command, '' when it is missing or fails."""
    if shutil.which(cmd[0]) is None:
        return ""
    try:
        res = subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.SubprocessError):
        return ""
    return res.stdout.strip() if res.returncode == 0 else ""


def environment() -> Dict[str, Any]:
    """GPU, driver, CUDA, nvcc, Python, torch and commit of the machine the check ran on."""
    env: Dict[str, Any] = {"host": platform.node(), "platform": platform.platform(),
                           "python": sys.version.split()[0], "python_executable": sys.executable}
    query = _run(["nvidia-smi", "--query-gpu=name,driver_version,compute_cap,memory.total",
                  "--format=csv,noheader"])
    if query:
        fields = [f.strip() for f in query.splitlines()[0].split(",")]
        env.update(zip(("gpu", "driver", "compute_capability", "gpu_memory"), fields))
        env["gpu_count"] = len(query.splitlines())
    smi = _run(["nvidia-smi"])
    cuda = re.search(r"CUDA Version:\s*([0-9.]+)", smi)
    if cuda:
        env["driver_cuda"] = cuda.group(1)
    nvcc = _run([os.environ.get("NVCC", "nvcc"), "--version"])
    release = re.search(r"release ([0-9.]+), (V[0-9.]+)", nvcc)
    if release:
        env["nvcc"] = f"{release.group(1)} ({release.group(2)})"
    torch_info = _run([sys.executable, "-c",
                       "import json, torch; c = torch.cuda.is_available(); print(json.dumps("
                       "{'torch': torch.__version__, 'torch_cuda': torch.version.cuda, "
                       "'torch_cuda_available': c, 'cudnn': torch.backends.cudnn.version() if c "
                       "else None}))"], timeout=120)
    if torch_info:
        env.update(json.loads(torch_info.splitlines()[-1]))
    commit = _run(["git", "-C", str(Path(__file__).resolve().parents[2]), "rev-parse",
                   "--short", "HEAD"])
    if commit:
        env["commit"] = commit
    return env


def _flatten(value: Any, prefix: str = "") -> List[tuple]:
    """Nested dicts -> [(dotted key, value)], lists of scalars kept as one value."""
    if isinstance(value, dict):
        rows = []
        for key, sub in value.items():
            rows += _flatten(sub, f"{prefix}.{key}" if prefix else str(key))
        return rows
    return [(prefix, value)]


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, list) and len(value) > 24:
        shown = ", ".join(_cell(v) for v in value[:24])
        return f"[{shown}, ... ({len(value)} values)]"
    if isinstance(value, list):
        return "[" + ", ".join(_cell(v) for v in value) + "]"
    return str(value).replace("|", "\\|")


def render_markdown(report: Dict[str, Any]) -> str:
    """The Markdown summary: verdict, machine, one row per step, then every step's figures."""
    env = report.get("environment", {})
    lines = ["# oscar-edge GPU check", "",
             f"**{report['result'].upper()}**: {report['passed']} of {len(report['steps'])} "
             f"steps passed, {report.get('total_seconds', 0):.0f} s "
             f"({report['created']}).", "", "## Machine", "", "| | |", "|---|---|"]
    lines += [f"| {k} | {_cell(v)} |" for k, v in env.items()]
    lines += ["", "## Steps", "", "| step | result | seconds | message |", "|---|---|---:|---|"]
    for s in report["steps"]:
        lines.append(f"| {s['name']} | {s['status']} | {s.get('seconds', 0):.1f} | "
                     f"{_cell(s.get('message', ''))} |")
    for s in report["steps"]:
        rows = _flatten(s.get("figures", {}))
        if not rows:
            continue
        lines += ["", f"## {s['name']}", "", "| figure | value |", "|---|---|"]
        lines += [f"| {k} | {_cell(v)} |" for k, v in rows]
    return "\n".join(lines) + "\n"


def build_report(out: Path, env: Dict[str, Any], total_seconds: float = 0.0
                 ) -> Dict[str, Any]:
    """The report dict of the step records under ``out``; a check without any step fails."""
    steps = read_steps(out)
    passed = sum(s.get("status") == PASS for s in steps)
    ok = bool(steps) and passed == len(steps)
    return {"created": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC"),
            "result": PASS if ok else FAIL, "passed": passed, "failed": len(steps) - passed,
            "total_seconds": round(float(total_seconds), 1), "environment": env,
            "steps": steps}


def write_report(out: Path, env: Dict[str, Any], total_seconds: float = 0.0) -> int:
    """Write report.json and report.md under ``out``; 0 when every step passed, else 1."""
    report = build_report(out, env, total_seconds)
    Path(out, REPORT_JSON).write_text(json.dumps(report, indent=2) + "\n")
    Path(out, REPORT_MD).write_text(render_markdown(report))
    return 0 if report["result"] == PASS else 1


def _figure(text: str) -> tuple:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"--figure wants KEY=VALUE, got {text!r}")
    return key, value


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    st = sub.add_parser("step", help="settle one step's record from its exit code")
    st.add_argument("--out", type=Path, required=True)
    st.add_argument("--index", type=int, required=True)
    st.add_argument("--name", required=True)
    st.add_argument("--rc", type=int, required=True)
    st.add_argument("--seconds", type=float, required=True)
    st.add_argument("--log", type=Path)
    st.add_argument("--timeout", type=float)
    st.add_argument("--figure", type=_figure, action="append", default=[])
    st.add_argument("--message", default="", help="the message when the step wrote no record")
    fin = sub.add_parser("finish", help="write report.json and report.md; exit 1 on a failure")
    fin.add_argument("--out", type=Path, required=True)
    fin.add_argument("--seconds", type=float, default=0.0, help="the whole check's duration")
    args = ap.parse_args(argv)
    if args.cmd == "step":
        path = step_path(args.out, args.index, args.name)
        if args.message and not path.is_file():
            write_step(path, args.name, args.rc == 0, args.message)
        rec = settle_step(path, args.name, args.rc, args.seconds, args.log, args.timeout,
                          dict(args.figure))
        print(f"[{rec['status']}] {rec['name']} ({rec['seconds']:.1f} s): {rec['message']}")
        return 0
    code = write_report(args.out, environment(), args.seconds)
    print(f"report: {args.out / REPORT_MD} and {args.out / REPORT_JSON}")
    return code


if __name__ == "__main__":
    sys.exit(main())
