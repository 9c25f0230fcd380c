"""Shared by the latency benchmark's modules: paths, the progress log, subprocess and file
helpers, the ``--size`` parser (``oscar_edge.sizes``)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Optional, Sequence, Tuple

from oscar_edge.errors import UserError
from oscar_edge.presets import SHIPPED_PRESET  # noqa: F401  (re-exported)
from oscar_edge.sizes import parse_size as _parse_size
from oscar_edge.sizes import size_label  # noqa: F401  (re-exported: (height, width) -> "WxH")

BENCH_DIR = Path(__file__).resolve().parents[1]     # benchmarks/
REPO = BENCH_DIR.parent
SCRIPT = BENCH_DIR / "latency.py"                    # the command line's script
PROG = "latency"


def script_path() -> str:
    """The script's path as typed from the current folder (relative when below it)."""
    here = SCRIPT.resolve()
    try:
        return str(here.relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(here)


def log(msg: str) -> None:
    print(f"[{PROG}] {msg}", file=sys.stderr, flush=True)


def parse_size(text: str) -> Tuple[int, int]:
    """'640x512' (width x height, multiples of 32) -> (height, width) = (512, 640)."""
    try:
        return _parse_size(text, text_order="WxH", order="hw_out", multiple=32, name="size")
    except ValueError as exc:
        raise UserError(str(exc)) from None


def read_text(path: str, default: str = "") -> str:
    try:
        with open(path, "r", encoding="utf-8", errors="replace") as fh:
            return fh.read()
    except OSError:
        return default


def run_cmd(cmd: Sequence[str], timeout: float = 15.0) -> Tuple[int, str]:
    """(exit code, stdout + stderr); (127, reason) when it cannot run."""
    try:
        p = subprocess.run(list(cmd), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           stdin=subprocess.DEVNULL, text=True, timeout=timeout)
    except FileNotFoundError:
        return 127, f"{cmd[0]}: not found"
    except (OSError, subprocess.TimeoutExpired) as exc:
        return 127, f"{cmd[0]}: {exc}"
    return p.returncode, p.stdout


def pkg_version(name: str) -> Optional[str]:
    try:
        from importlib.metadata import version

        return version(name)
    except Exception:
        return None


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def shown(path: os.PathLike | str) -> str:
    """``path`` relative to the current folder when it lies below it (shorter commands)."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def row_name(r) -> str:
    """The backend key, with the OpenVINO precision hint it ran (``openvino-int8 (f32)``;
    ``openvino (bf16 -> f32)`` where the CPU ran another precision than asked)."""
    info = r.get("info") or {}
    hint = (info.get("ov_hint") if isinstance(info, dict) else None) or r.get("ov_hint")
    if not hint:
        return str(r["backend"])
    eff = info.get("ov_hint_effective") if isinstance(info, dict) else None
    return f"{r['backend']} ({hint}{'' if not eff or eff == hint else ' -> ' + str(eff)})"


def parse_hints(text: str) -> Tuple[str, ...]:
    """``--ov-hint``: one hint or a comma list (``f32,bf16``): every openvino key runs once per
    hint, in this order. ``default``: the runtime's default hint on this CPU
    (``oscar_edge.backends.factory.default_ov_hint``)."""
    from oscar_edge.backends.openvino_backend import check_hint

    if str(text).strip() == "default":
        try:
            from oscar_edge.backends.factory import default_ov_hint

            return (default_ov_hint("fp32")[0],)
        except UserError:   # OpenVINO not installed: the openvino rows say so
            return ("f32",)
    hints = []
    for h in str(text).split(","):
        h = h.strip()
        if h and check_hint(h) not in hints:
            hints.append(h)
    if not hints:
        raise UserError("--ov-hint is empty; give f32, bf16 or f32,bf16")
    return tuple(hints)
