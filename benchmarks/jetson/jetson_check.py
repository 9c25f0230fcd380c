#!/usr/bin/env python
"""``make jetson-check``: the whole TensorRT path on a Jetson in one command, into one report
bundle to attach to a bug report.

    python benchmarks/jetson/jetson_check.py [--out jetson-report] [--data DIR] [--quick] \
        [--skip STEP[,STEP]] [--plugin-build-dir build/plugins] [--engine-dir build/jetson-check]

Run from the venv of benchmarks/jetson/README.md (``python3 -m venv --system-site-packages``, so
that JetPack's ``tensorrt`` imports). The steps, in order, each a subprocess whose whole output
goes to ``<out>/logs/<step>.log``:

1. ``plugins``: ``cmake -S cpp_plugins -B <plugin-build-dir> -DTENSORRT_ROOT=/usr`` and
   ``cmake --build`` -> ``liboscar_edge_trt_plugins.so``;
2. ``pytest``: ``python -m pytest -m tensorrt`` on the test files that hold TensorRT tests
   (``$OSCAR_EDGE_TRT_PLUGINS`` = that library); a run in which no test passed fails;
3. ``engine-fp16``, ``engine-int8``: ``export/build_engine.py`` from the shipped FP16 (AutoCast)
   and INT8 (ModelOpt Q/DQ) graphs as they are (no calibration, no ModelOpt needed), a dynamic
   profile that holds the keep-ratio fit of every frame, peak refinement in the engine (the
   default); engines in ``--engine-dir``, their sidecars copied into the bundle;
4. ``evaluate-ort-fp32`` (``oscar-edge evaluate``, ONNX Runtime FP32), ``evaluate-trt-fp16``,
   ``evaluate-trt-int8`` (``benchmarks/jetson/evaluate_engine.py``, same metrics code) on
   ``--split`` (val_full) when the data is there;
5. ``latency``: ``benchmarks/latency.py --jetson`` (tegrastats power, nvpmodel, jetson_clocks)
   for torch, ort, ort-int8 and each TensorRT precision whose engine step passed.

A step that fails is reported with the last lines of its log; the steps that need it are
skipped and say why, the others still run. The report is rewritten after every step. Exit code
0 when no step failed, 1 otherwise, 2 for bad options, 130 when interrupted (Ctrl-C stops the
running step; the report says so). An existing ``--out`` folder is moved aside to
``<out>.<its time stamp>`` first, never overwritten.
Not run on a Jetson yet (benchmarks/jetson/README.md, "One command: make jetson-check").
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
for _p in (HERE, REPO / "benchmarks", REPO):  # this folder, latency_bench, the checkout
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

import check_report  # noqa: E402

PROG = "jetson-check"
FORMAT = "oscar-edge jetson-check report v1"
DEFAULT_OUT = "jetson-report"
DEFAULT_PLUGIN_BUILD = Path("build") / "plugins"
DEFAULT_ENGINE_DIR = Path("build") / "jetson-check"
PLUGIN_FILENAME = "liboscar_edge_trt_plugins.so"
PRECISIONS = ("fp16", "int8")
SHIPPED_GRAPHS = {p: Path("oscar_edge") / "weights" / f"oscar-edge.{p}.onnx" for p in PRECISIONS}
# min / opt / max of input 'image': the keep-ratio fit into 1000x600 padded to 32 is at most
# 1024 on either side (608x768 is the most common val_full shape); batch 1 as evaluate runs.
ENGINE_PROFILE = ("1x3x256x256", "1x3x608x768", "1x3x1024x1024")
LATENCY_BACKENDS = ("torch", "ort", "ort-int8", "trt-fp32", "trt-fp16", "trt-int8")
LATENCY_NEEDS = {"trt-fp32": "plugins", "trt-fp16": "engine-fp16", "trt-int8": "engine-int8"}
LATENCY_RUNS = {False: ("300", "50", "2"), True: ("50", "10", "1")}  # runs, warmup, idle s
STEP_KEYS = ("plugins", "pytest", "engine-fp16", "engine-int8", "evaluate-ort-fp32",
             "evaluate-trt-fp16", "evaluate-trt-int8", "latency")
SKIP_GROUPS = {"engines": ("engine-fp16", "engine-int8"),
               "evaluate": ("evaluate-ort-fp32", "evaluate-trt-fp16", "evaluate-trt-int8")}
TAIL_LINES = 40
HOUR = 3600.0


class UsageError(Exception):
    """A bad option: one line on stderr, exit code 2."""


@dataclass
class Context:
    """Everything the steps are built from."""

    out: Path
    data: Path
    split: str
    plugin_build_dir: Path
    engine_dir: Path
    quick: bool
    jobs: int
    python: str = sys.executable
    env: Dict[str, str] = field(default_factory=dict)
    artefacts: Dict[str, Optional[Path]] = field(default_factory=dict)  # step key -> its file

    @property
    def plugin_lib(self) -> Path:
        return self.plugin_build_dir / PLUGIN_FILENAME

    def engine(self, precision: str) -> Path:
        return self.engine_dir / f"oscar-edge.{precision}.engine"

    def data_problem(self) -> Optional[str]:
        split = self.data / "splits" / f"{self.split}.txt"
        return None if split.is_file() else f"no SIRST-V2 data: {split} not found (--data)"


@dataclass
class Result:
    """What happened to one step (report.json's ``steps`` entries)."""

    key: str
    title: str
    status: str = "not run"          # passed / failed / skipped / not run
    reason: str = ""
    duration_s: float = 0.0
    commands: List[Dict[str, object]] = field(default_factory=list)
    log: Optional[str] = None        # relative to the bundle
    log_tail: List[str] = field(default_factory=list)
    figures: Dict[str, object] = field(default_factory=dict)
    notes: List[str] = field(default_factory=list)


Figures = Callable[["Step", Result, Context], Dict[str, object]]
Check = Callable[["Step", Result, Context], Optional[str]]
Adapt = Callable[["Step", Dict[str, Result], Context], List[str]]


@dataclass
class Step:
    """One row of the step table. ``commands`` run in order (the first that fails ends the
    step); ``needs``: steps whose failure skips this one (a skipped one is enough when its
    ``artefact`` exists); ``output``: the JSON the step writes (its key figures);
    ``check``: why a run that exited 0 still failed, or None;
    ``adapt``: edits ``commands`` from the results so far, returns notes; ``note``: shown in
    the report (e.g. what a test substituted)."""

    key: str
    title: str
    commands: List[List[str]]
    needs: Tuple[str, ...] = ()
    needs_data: bool = False
    artefact: Optional[Path] = None
    output: Optional[Path] = None
    timeout_s: float = HOUR
    figures: Optional[Figures] = None
    check: Optional[Check] = None
    adapt: Optional[Adapt] = None
    note: str = ""


# ------------------------------------------------------------------------------------ figures
def _read_json(path: Optional[Path]) -> Optional[dict]:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8")) if path else None
    except (OSError, ValueError):
        return None


def _log_text(res: Result, ctx: Context) -> str:
    return check_report.read_text(ctx.out / res.log) if res.log else ""


def plugins_figures(step: Step, res: Result, ctx: Context) -> Dict[str, object]:
    lib = ctx.plugin_lib  # a library left by an earlier build says nothing about a failed one
    fresh = res.status == "passed" and lib.is_file()
    fig: Dict[str, object] = {"library": str(lib),
                              "library_bytes": lib.stat().st_size if fresh else None}
    lines = [ln.strip() for ln in _log_text(res, ctx).splitlines() if "oscar:" in ln]
    if lines:
        fig["cmake_messages"] = lines[-5:]
    return fig


def plugins_check(step: Step, res: Result, ctx: Context) -> Optional[str]:
    if ctx.plugin_lib.is_file():
        return None
    why = " (CMake did not find TensorRT)" if any(
        "TensorRT not found" in m for m in res.figures.get("cmake_messages", [])) else ""
    return f"cmake exited 0 but {ctx.plugin_lib} was not built{why}"


_PYTEST_COUNT = re.compile(r"(\d+) (passed|failed|skipped|errors?|xfailed|xpassed|deselected)")


def pytest_figures(step: Step, res: Result, ctx: Context) -> Dict[str, object]:
    text = _log_text(res, ctx)
    counts: Dict[str, int] = {}
    for line in reversed(text.splitlines()):
        if re.search(r" in [\d.]+s", line) and _PYTEST_COUNT.search(line):
            for n, kind in _PYTEST_COUNT.findall(line):
                counts["error" if kind.startswith("error") else kind] = int(n)
            break
    skips = [ln.strip() for ln in text.splitlines() if ln.startswith("SKIPPED [")]
    return {"counts": counts, "skip_reasons": skips[:10]}


def pytest_check(step: Step, res: Result, ctx: Context) -> Optional[str]:
    counts = res.figures.get("counts", {})
    if counts.get("passed", 0) == 0:
        return (f"no TensorRT test ran ({counts.get('skipped', 0)} skipped; the reasons are in "
                "the log)")
    return None


def engine_figures(step: Step, res: Result, ctx: Context) -> Dict[str, object]:
    engine = step.artefact
    assert engine is not None
    notes = [ln.strip() for ln in _log_text(res, ctx).splitlines() if ln.startswith("note:")]
    if res.status != "passed":  # an engine there now is an earlier run's
        return {"notes": notes[:10]}
    side = _read_json(Path(str(engine) + ".json")) or {}
    onnx = Path(str(engine) + ".onnx")
    fig: Dict[str, object] = {
        "engine": str(engine),
        "engine_mb": engine.stat().st_size / 1e6 if engine.is_file() else None,
        "onnx_mb": onnx.stat().st_size / 1e6 if onnx.is_file() else None,
        "tensorrt_version": side.get("tensorrt_version"), "precision": side.get("precision"),
        "peak_refine": side.get("peak_refine"), "notes": notes[:10],
    }
    if side and engine.is_file():  # the sidecar (small) travels with the bundle
        dest = ctx.out / "engines" / (engine.name + ".json")
        dest.parent.mkdir(exist_ok=True)
        shutil.copyfile(str(engine) + ".json", dest)
        fig["sidecar"] = str(dest.relative_to(ctx.out))
    return fig


def engine_check(step: Step, res: Result, ctx: Context) -> Optional[str]:
    assert step.artefact is not None
    if not step.artefact.is_file() or not Path(str(step.artefact) + ".json").is_file():
        return f"exited 0 but {step.artefact} (and its .json sidecar) were not written"
    return None


def evaluate_figures(step: Step, res: Result, ctx: Context) -> Dict[str, object]:
    m = _read_json(step.output)
    if m is None:
        return {}
    keys = ("mNoCoAP", "AP50", "Pd", "Fa_per_image", "num_images", "num_boxes", "split",
            "backend_label", "peak_refine", "tensorrt_version")
    return {k: m.get(k) for k in keys if k in m}


def output_check(step: Step, res: Result, ctx: Context) -> Optional[str]:
    path = step.output
    return None if path is None or path.is_file() else f"exited 0 but did not write {path}"


def latency_figures(step: Step, res: Result, ctx: Context) -> Dict[str, object]:
    rec = _read_json(step.output)
    fig: Dict[str, object] = {"left_out": [n for n in res.notes if "left out" in n]}
    if rec is None:
        return fig
    rows = []
    for r in rec.get("results", []):
        row = {"backend": r.get("backend"), "size": r.get("size"), "status": r.get("status"),
               "reason": r.get("reason")}
        if r.get("status") == "ok":
            fp = r.get("full_path", {})
            power = fp.get("power") or {}
            row.update(model_only_p50_ms=r["model_only"]["stats"]["p50_ms"],
                       full_path_p50_ms=fp["total"]["p50_ms"],
                       power_mw=power.get("avg_total_mw"),
                       energy_mj=power.get("energy_mj_per_frame"),
                       warning=fp.get("warning") or r["model_only"].get("warning"))
        rows.append(row)
    fig["rows"] = rows
    jet = rec.get("jetson") or {}
    if jet:
        fig["jetson"] = {"tegrastats": jet.get("tegrastats"),
                         "tegrastats_lines": jet.get("tegrastats_lines"),
                         "nvpmodel": (jet.get("nvpmodel") or {}).get("mode_name"),
                         "jetson_clocks_on": (jet.get("jetson_clocks") or {}).get("on"),
                         "idle_mw": (jet.get("idle") or {}).get("avg_total_mw")}
    fig["trtexec_commands"] = (rec.get("trtexec") or {}).get("commands", {})
    return fig


def latency_adapt(step: Step, results: Dict[str, Result], ctx: Context) -> List[str]:
    """Leave out of ``--backends`` each TensorRT key whose engine step did not pass."""
    cmd = step.commands[-1]
    if "--backends" not in cmd[:-1]:
        return []
    i = cmd.index("--backends") + 1
    keep, notes = [], []
    for b in cmd[i].split(","):
        why = blocked_by((LATENCY_NEEDS[b],), results, ctx.artefacts) if b in LATENCY_NEEDS \
            else None
        if why:
            notes.append(f"{b} left out: {why}")
        else:
            keep.append(b)
    cmd[i] = ",".join(keep)
    return notes


# --------------------------------------------------------------------------------- step table
def tensorrt_test_files(repo: Path = REPO) -> List[str]:
    """The test files that hold ``@pytest.mark.tensorrt`` tests (not the whole suite: a
    collection error in an unrelated file must not stop them)."""
    files = sorted(p for p in (repo / "tests").glob("test_*.py")
                   if "mark.tensorrt" in check_report.read_text(p))
    return [str(p.relative_to(repo)) for p in files] or ["tests"]


def build_steps(ctx: Context) -> List[Step]:
    """The step table (module docstring); a test may edit it before it runs."""
    py, lib, data, out = ctx.python, str(ctx.plugin_lib), str(ctx.data), ctx.out
    steps = [Step("plugins", "TensorRT plugins (CMake)", [
        ["cmake", "-S", "cpp_plugins", "-B", str(ctx.plugin_build_dir), "-DTENSORRT_ROOT=/usr"],
        ["cmake", "--build", str(ctx.plugin_build_dir), "-j", str(ctx.jobs)]],
        artefact=ctx.plugin_lib, timeout_s=HOUR, figures=plugins_figures, check=plugins_check)]
    steps.append(Step("pytest", "TensorRT tests (pytest -m tensorrt)", [
        [py, "-m", "pytest", "-m", "tensorrt", "-v", "-rs", "-p", "no:cacheprovider"]
        + tensorrt_test_files()], needs=("plugins",), timeout_s=2 * HOUR,
        figures=pytest_figures, check=pytest_check))
    for p in PRECISIONS:
        mn, opt, mx = ENGINE_PROFILE
        steps.append(Step(f"engine-{p}", f"{p.upper()} engine from {SHIPPED_GRAPHS[p]}", [
            [py, "export/build_engine.py", "--onnx", str(SHIPPED_GRAPHS[p]), "--precision", p,
             "--min-shape", mn, "--opt-shape", opt, "--max-shape", mx, "--plugin-lib", lib,
             "--timing-cache", str(ctx.engine_dir / "timing.cache"),
             "--out", str(ctx.engine(p))]], needs=("plugins",), artefact=ctx.engine(p),
            timeout_s=2 * HOUR, figures=engine_figures, check=engine_check))
    ev = out / "evaluate"
    steps.append(Step("evaluate-ort-fp32", "ONNX Runtime FP32 (CPU), the reference", [
        [py, "-m", "oscar_edge", "evaluate", "--precision", "fp32", "--backend", "onnxruntime",
         "--data", data, "--split", ctx.split, "--json", str(ev / "ort-fp32.json"),
         "--no-progress"]], needs_data=True, output=ev / "ort-fp32.json", timeout_s=2 * HOUR,
        figures=evaluate_figures, check=output_check))
    for p in PRECISIONS:
        steps.append(Step(f"evaluate-trt-{p}", f"TensorRT {p.upper()} engine", [
            [py, "benchmarks/jetson/evaluate_engine.py", "--engine", str(ctx.engine(p)),
             "--plugin-lib", lib, "--data", data, "--split", ctx.split,
             "--json", str(ev / f"trt-{p}.json"), "--no-progress"]],
            needs=(f"engine-{p}",), needs_data=True, output=ev / f"trt-{p}.json",
            timeout_s=2 * HOUR, figures=evaluate_figures, check=output_check))
    runs, warmup, idle = LATENCY_RUNS[ctx.quick]
    steps.append(Step("latency", "latency and power (benchmarks/latency.py --jetson)", [
        [py, "benchmarks/latency.py", "--backends", ",".join(LATENCY_BACKENDS),
         "--size", "640x512", "--batch", "1", "--runs", runs,  # the shipped model
         "--warmup", warmup, "--threads", str(os.cpu_count() or 1), "--data", data,
         "--split", ctx.split, "--plugin-lib", lib, "--jetson", "--idle-s", idle,
         "--json", str(out / "latency" / "latency.json")]], needs_data=True,
        output=out / "latency" / "latency.json", timeout_s=2 * HOUR, figures=latency_figures,
        check=output_check, adapt=latency_adapt))
    return steps


# ------------------------------------------------------------------------------------ running
def blocked_by(needs: Sequence[str], results: Dict[str, Result],
               artefacts: Optional[Dict[str, Optional[Path]]] = None) -> Optional[str]:
    """Why ``needs`` stop a step, or None. A need skipped by ``--skip`` (or for a missing
    input) is fine when what it makes already exists."""
    for need in needs:
        r = results.get(need)
        if r is None or r.status == "passed":
            continue
        art = (artefacts or {}).get(need)
        if r.status == "skipped" and art is not None and art.exists():
            continue
        return f"{need} failed" if r.status == "failed" else f"{need} was skipped ({r.reason})"
    return None


def _kill_group(proc: subprocess.Popen) -> None:
    """Stop the step's process group (its own session: only what this step started)."""
    for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def run_command(argv: Sequence[str], log, env: Dict[str, str], timeout: float
                ) -> Dict[str, object]:
    """One command, stdout and stderr into ``log``; its record for the report."""
    text = shlex.join(argv)
    log.write(f"$ {text}\n")
    log.flush()
    rec: Dict[str, object] = {"command": text, "exit_code": None, "duration_s": 0.0,
                              "error": None}
    t0 = time.monotonic()
    try:
        proc = subprocess.Popen(list(argv), stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, cwd=str(REPO), env=env,
                                start_new_session=True)
    except OSError as exc:
        rec["error"] = f"cannot start {argv[0]}: {exc.strerror or exc}"
    else:
        try:
            rec["exit_code"] = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            rec["error"] = f"timed out after {timeout:.0f} s"
        except KeyboardInterrupt:
            _kill_group(proc)
            raise
    rec["duration_s"] = round(time.monotonic() - t0, 2)
    log.write(f"# {rec['error'] or 'exit code %s' % rec['exit_code']} after "
              f"{rec['duration_s']:.1f} s\n\n")
    log.flush()
    return rec


def run_step(step: Step, ctx: Context, res: Result) -> None:
    """Run the commands of ``step`` into its log and fill ``res``."""
    log_path = ctx.out / "logs" / f"{step.key}.log"
    res.log = str(log_path.relative_to(ctx.out))
    t0 = time.monotonic()
    with open(log_path, "w", encoding="utf-8", errors="replace") as log:
        for cmd in step.commands:
            rec = run_command(cmd, log, ctx.env, step.timeout_s)
            res.commands.append(rec)
            if rec["error"] or rec["exit_code"] != 0:
                res.status, res.reason = "failed", str(rec["error"] or
                                                       f"exit code {rec['exit_code']}")
                break
        else:
            res.status = "passed"
    res.duration_s = round(time.monotonic() - t0, 2)
    if step.figures is not None:
        try:
            res.figures = step.figures(step, res, ctx)
        except Exception as exc:  # a figure that cannot be read must not hide the step
            res.notes.append(f"key figures not read: {type(exc).__name__}: {exc}")
    if res.status == "passed" and step.check is not None:
        why = step.check(step, res, ctx)
        if why:
            res.status, res.reason = "failed", why
    elif res.status == "failed":  # a latency run: name the backends that failed
        bad = [str(r["backend"]) for r in res.figures.get("rows", []) if r["status"] == "failed"]
        if bad:
            res.reason += f" (failed: {', '.join(bad)})"
    if res.status == "failed":
        lines = check_report.read_text(log_path).splitlines()
        res.log_tail = lines[-TAIL_LINES:]
        line = error_line(lines)
        if line and res.reason.startswith("exit code"):
            res.reason += f": {line}"


_ERROR = re.compile(r"error|FAILED|Traceback|not found|No such file", re.IGNORECASE)


def error_line(lines: Sequence[str], width: int = 200) -> Optional[str]:
    """The last line of a log that reads like the error (for the step's one-line reason)."""
    for ln in reversed(lines):
        text = ln.strip()
        if text and not text.startswith(("# exit code", "$ ")) and _ERROR.search(text):
            return text if len(text) <= width else text[:width - 3] + "..."
    return None


def run_steps(steps: List[Step], ctx: Context, skip: Sequence[str],
              echo: Callable[[str], None],
              progress: Callable[[List[Result]], None] = lambda results: None) -> List[Result]:
    """Every step in order; dependencies, data and ``--skip`` decide what runs.
    ``progress(results)`` after each step (the report is rewritten: a board that hangs or
    reboots mid-way leaves the steps done so far)."""
    results = {s.key: Result(s.key, s.title, reason="not reached: still running, or stopped before",
                             notes=[s.note] if s.note else []) for s in steps}
    artefacts = ctx.artefacts = {s.key: s.artefact for s in steps}
    data_problem = ctx.data_problem()
    interrupted = False
    for i, step in enumerate(steps, 1):
        progress(list(results.values()))
        res = results[step.key]
        res.reason = ""
        why = ("interrupted" if interrupted else "with --skip" if step.key in skip
               else blocked_by(step.needs, results, artefacts)
               or (data_problem if step.needs_data else None))
        if why:
            res.status, res.reason = "skipped", why
            echo(f"[{i}/{len(steps)}] {step.key}: skipped ({why})")
            continue
        for need in step.needs:
            if results.get(need) and results[need].status == "skipped":
                res.notes.append(f"uses the existing {artefacts[need]} ({need} was skipped)")
        if step.adapt is not None:
            res.notes += step.adapt(step, results, ctx)
        shown = " && ".join(shlex.join(c) for c in step.commands)
        echo(f"[{i}/{len(steps)}] {step.key}: {shown[:160]}{'...' if len(shown) > 160 else ''}"
             f" (log: {ctx.out / 'logs' / (step.key + '.log')})")
        try:
            run_step(step, ctx, res)
        except KeyboardInterrupt:
            res.status, res.reason, interrupted = "failed", "interrupted", True
        echo(f"      {res.status}" + (f": {res.reason}" if res.reason else "")
             + f" ({res.duration_s:.1f} s)")
    return list(results.values())


# -------------------------------------------------------------------------------- the bundle
def move_aside(out: Path) -> Optional[Path]:
    """Rename an existing ``out`` to ``<out>.<YYYYmmdd-HHMMSS of its last change>`` (never
    overwritten: ``-1``, ``-2``, ... when that name is taken). Returns the new name."""
    if not (out.exists() or out.is_symlink()):
        return None
    stamp = datetime.datetime.fromtimestamp(out.lstat().st_mtime).strftime("%Y%m%d-%H%M%S")
    dest, n = out.with_name(f"{out.name}.{stamp}"), 0
    while dest.exists() or dest.is_symlink():
        n += 1
        dest = out.with_name(f"{out.name}.{stamp}-{n}")
    os.rename(out, dest)
    return dest


def step_env(ctx: Context, base: Optional[Dict[str, str]] = None) -> Dict[str, str]:
    """The environment of every step: CUDA's bin folder on PATH when nvcc is not already there
    (as the README's ``export PATH=/usr/local/cuda/bin:$PATH``), the plugin library and the
    data for the tests, unbuffered Python output (complete logs)."""
    env = dict(os.environ if base is None else base)
    cuda_bin = "/usr/local/cuda/bin"
    if shutil.which("nvcc", path=env.get("PATH", "")) is None and os.path.isdir(cuda_bin):
        env["PATH"] = cuda_bin + os.pathsep + env.get("PATH", "")
    env.update(OSCAR_EDGE_TRT_PLUGINS=str(ctx.plugin_lib), OSCAR_DATA=str(ctx.data),
               PYTHONUNBUFFERED="1")
    return env


def report_dict(ctx: Context, results: Sequence[Result], facts: Dict[str, object],
                argv: Sequence[str], previous: Optional[Path], created: str,
                note: str = "") -> Dict[str, object]:
    """report.json's content."""
    counts = {s: sum(r.status == s for r in results)
              for s in ("passed", "failed", "skipped", "not run")}
    return {
        "format": FORMAT, "created": created,
        "command": shlex.join(["python", "benchmarks/jetson/jetson_check.py", *argv]),
        "exit_code": None if counts["not run"] else 1 if counts["failed"] else 0,
        "summary": counts, "note": note,
        "previous_report": str(previous) if previous else None,
        "options": {"out": str(ctx.out), "data": str(ctx.data), "split": ctx.split,
                    "plugin_build_dir": str(ctx.plugin_build_dir),
                    "engine_dir": str(ctx.engine_dir), "quick": ctx.quick, "jobs": ctx.jobs},
        "machine": facts, "steps": [asdict(r) for r in results],
    }


def write_report(rep: Dict[str, object], out: Path) -> None:
    (out / "report.json").write_text(json.dumps(rep, indent=2, default=str) + "\n")
    (out / "report.md").write_text(check_report.render_markdown(rep))


# ------------------------------------------------------------------------------- command line
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="jetson_check.py",
        description="On a Jetson: build the TensorRT plugins, run the TensorRT tests, build FP16 "
                    "and INT8 engines of the shipped model, evaluate them beside ONNX Runtime "
                    "FP32, time every backend with tegrastats; one report bundle "
                    "(benchmarks/jetson/README.md, \"One command: make jetson-check\").")
    p.add_argument("--out", default=DEFAULT_OUT,
                   help="report folder (default %(default)s); an existing one is moved aside to "
                        "<out>.<time stamp>")
    p.add_argument("--data", default=None, help="SIRST-V2 root (default: $OSCAR_DATA or "
                   "../shared/data/sirst-v2); without it the evaluate and latency steps are "
                   "skipped")
    p.add_argument("--split", default="val_full",
                   help="split evaluated and timed (default %(default)s)")
    p.add_argument("--skip", action="append", default=[], metavar="STEP[,STEP]",
                   help=f"skip these steps: {', '.join(STEP_KEYS)}, or the groups "
                        f"{', '.join(SKIP_GROUPS)}; later steps use what a skipped one made "
                        "before (plugin library, engines) when it exists")
    p.add_argument("--plugin-build-dir", default=None,
                   help=f"CMake build folder of the plugins (default {DEFAULT_PLUGIN_BUILD} of "
                        "the checkout)")
    p.add_argument("--engine-dir", default=None,
                   help=f"where the engines are written (default {DEFAULT_ENGINE_DIR} of the "
                        "checkout; not in the bundle, only their .json sidecars are)")
    p.add_argument("--quick", action="store_true",
                   help="latency with 50 timed runs and 10 warm-up calls instead of 300 / 50")
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                   help="parallel jobs of cmake --build (default: the CPU count)")
    p.add_argument("--sysroot", default="/", help=argparse.SUPPRESS)  # tests: a fake /proc, /etc
    return p


def parse_skip(values: Sequence[str]) -> List[str]:
    keys: List[str] = []
    for v in values:
        for k in filter(None, (s.strip() for s in v.split(","))):
            if k in SKIP_GROUPS:
                keys += SKIP_GROUPS[k]
            elif k in STEP_KEYS:
                keys.append(k)
            else:
                raise UsageError(f"--skip {k}: unknown step; choose from "
                                 f"{', '.join(STEP_KEYS + tuple(SKIP_GROUPS))}")
    return keys


def make_context(args: argparse.Namespace) -> Context:
    from oscar_edge.data import default_data_root

    if args.jobs < 1:
        raise UsageError(f"--jobs must be >= 1, got {args.jobs}")
    absolute = lambda p: Path(p) if Path(p).is_absolute() else Path.cwd() / p  # noqa: E731
    out = absolute(args.out)  # given paths: from the current folder; defaults: the checkout
    if out.resolve() == REPO.resolve() or out.resolve() in REPO.resolve().parents:
        raise UsageError(f"--out {args.out} would move the checkout aside; give a new folder")
    ctx = Context(out=out, data=absolute(args.data or default_data_root()), split=args.split,
                  plugin_build_dir=absolute(args.plugin_build_dir or REPO / DEFAULT_PLUGIN_BUILD),
                  engine_dir=absolute(args.engine_dir or REPO / DEFAULT_ENGINE_DIR),
                  quick=args.quick, jobs=args.jobs)
    ctx.env = step_env(ctx)
    return ctx


def main(argv: Optional[Sequence[str]] = None,
         plan_hook: Optional[Callable[[List[Step], Context], str]] = None) -> int:
    """The command. ``plan_hook(steps, ctx)`` may edit the step table before anything runs
    (tests substitute cheap commands); the text it returns is printed at the top of the
    report."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    try:
        skip = parse_skip(args.skip)
        ctx = make_context(args)
    except UsageError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    echo = lambda msg: print(msg, flush=True)  # noqa: E731
    steps = build_steps(ctx)
    note = plan_hook(steps, ctx) if plan_hook is not None else ""
    previous = move_aside(ctx.out)
    (ctx.out / "logs").mkdir(parents=True)
    for d in ("evaluate", "latency"):
        (ctx.out / d).mkdir()
    ctx.engine_dir.mkdir(parents=True, exist_ok=True)
    created = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    echo(f"{PROG}: report in {ctx.out}"
         + (f" (the previous one moved to {previous})" if previous else ""))
    facts = check_report.machine_facts(REPO, ctx.env, Path(args.sysroot))
    for w in facts["warnings"]:
        echo(f"{PROG}: warning: {w}")
    progress = lambda rs: write_report(  # noqa: E731
        report_dict(ctx, rs, facts, argv, previous, created, note), ctx.out)
    results = run_steps(steps, ctx, skip, echo, progress)
    rep = report_dict(ctx, results, facts, argv, previous, created, note)
    write_report(rep, ctx.out)
    s = rep["summary"]
    failed = [r.key for r in results if r.status == "failed"]
    echo(f"{PROG}: {s['passed']} passed, {s['failed']} failed"
         + (f" ({', '.join(failed)})" if failed else "") + f", {s['skipped']} skipped; "
         f"report: {ctx.out / 'report.md'}")
    if any(r.reason == "interrupted" for r in results):
        return 130
    return int(rep["exit_code"])


if __name__ == "__main__":
    sys.exit(main())
