"""``oscar-edge serve repo/``: the Triton server of nvidia-pytriton on a CPU model repository.

    oscar-edge serve repo/                         # 127.0.0.1, gRPC 8001, HTTP 8000, metrics 8002
    oscar-edge serve repo/ --python ~/triton-env/bin/python --grpc-port 9001 --http-port 9000

nvidia-pytriton bundles a real ``tritonserver`` (2.51) with the Python backend. This command
starts that binary on the repository of ``oscar-edge export-triton``, waits until it is ready,
prints the endpoints, and on Ctrl-C or SIGTERM stops it (Triton's own graceful shutdown, then
the process group), removing its shared-memory segments and its work folder.

The server's Python environment (``--python``, default: this interpreter) is where the model
runs. Two traps are handled (docs/many-cameras.md):

* the Python-backend stub links ``libpython3.X`` by name: the interpreter's own ``LIBDIR`` goes
  first on ``LD_LIBRARY_PATH`` (else a pyenv / venv Python would get the system's library with
  its own standard library);
* the stub is built against the NumPy 1.x ABI: with numpy 2 in the model's environment every
  output comes back empty without an error, so a numpy >= 2 there is refused with one line.
  Make the server environment with ``pip install 'oscar-edge[serve]'`` (numpy < 2); clients can
  stay on numpy 2.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from ..errors import UserError, run_cli
from . import DEFAULT_PORTS

SHM_DIR = Path("/dev/shm")
PROBE = r"""
import importlib.util, json, os, sys, sysconfig
out = {"version": "%d.%d" % sys.version_info[:2], "executable": sys.executable,
       "libdir": sysconfig.get_config_var("LIBDIR") or "",
       "ldlibrary": sysconfig.get_config_var("LDLIBRARY") or "",
       "site": sorted({sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]})}
try:
    import numpy
    out["numpy"] = numpy.__version__
except Exception as exc:
    out["numpy"] = None
for mod in ("pytriton", "oscar_edge"):
    spec = importlib.util.find_spec(mod)
    out[mod] = list(spec.submodule_search_locations)[0] if spec else None
print(json.dumps(out))
"""


@dataclass
class ServerPython:
    """What the server's Python environment offers (probed by running that interpreter)."""

    executable: str
    version: str
    libdir: str
    ldlibrary: str
    site: List[str]
    numpy: Optional[str]
    pytriton: Optional[str]
    oscar_edge: Optional[str]

    @property
    def dist(self) -> Path:
        return Path(self.pytriton) / "tritonserver"

    @property
    def libs(self) -> Path:  # the shared libraries of the pytriton wheel (auditwheel)
        return Path(self.pytriton).parent / "nvidia_pytriton.libs"


def probe_python(python: str) -> ServerPython:
    exe = shutil.which(python) or python
    if not Path(exe).exists():
        raise UserError(f"--python {python}: not found")
    try:
        res = subprocess.run([exe, "-c", PROBE], capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise UserError(f"--python {python}: cannot run it ({exc})") from None
    if res.returncode != 0:
        last = (res.stderr.strip().splitlines() or ["no output"])[-1]
        raise UserError(f"--python {python}: {last}")
    return ServerPython(**json.loads(res.stdout.strip().splitlines()[-1]))


def check_python(sp: ServerPython) -> None:
    """One-line errors for an environment the Python backend cannot use."""
    fix = ("make the server's environment with pip install 'oscar-edge[serve]' and run serve "
           "from it, or give --python that environment's python")
    if sp.numpy is not None and int(sp.numpy.split(".")[0]) >= 2:
        raise UserError(f"numpy {sp.numpy} in the server's environment ({sp.executable}): "
                        "Triton's Python backend stub is built for numpy < 2 and would return "
                        f"empty outputs; {fix}")
    for what, have in (("nvidia-pytriton (the Triton server)", sp.pytriton),
                       ("oscar-edge", sp.oscar_edge), ("numpy", sp.numpy)):
        if have is None:
            raise UserError(f"{what} is not installed for {sp.executable}: {fix}")
    stub = sp.dist / "python_backend_stubs" / sp.version / "triton_python_backend_stub"
    if not stub.is_file():
        have = sorted(p.name for p in (sp.dist / "python_backend_stubs").glob("*"))
        raise UserError(f"no Triton Python backend stub for Python {sp.version} in nvidia-pytriton "
                        f"(it has {', '.join(have) or 'none'}): use one of those Pythons")
    if not (sp.dist / "bin" / "tritonserver").is_file():
        raise UserError(f"{sp.dist / 'bin' / 'tritonserver'} is missing: reinstall nvidia-pytriton")


def port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


class TritonServer:
    """One ``tritonserver`` process on a repository; :meth:`start`, :meth:`stop`."""

    def __init__(self, repo: Path, sp: ServerPython, host: str = "127.0.0.1",
                 ports: Optional[Dict[str, int]] = None, log_path: Optional[Path] = None,
                 exit_timeout_s: int = 10) -> None:
        self.repo, self.sp, self.host = repo.resolve(), sp, host
        self.ports = {**DEFAULT_PORTS, **(ports or {})}
        self.exit_timeout_s = exit_timeout_s
        self.work = Path(tempfile.mkdtemp(prefix="oscar-edge-triton-"))
        self.log_path = log_path or (self.work / "tritonserver.log")
        self.shm_prefix = f"oscar-edge-{os.getpid()}-{self.work.name[-8:]}-"
        self.proc: Optional[subprocess.Popen] = None
        self._log = None

    # -- set-up --------------------------------------------------------------------------
    def _backends(self) -> Path:
        """backends/python/ with the stub of the server Python's version (as pytriton does)."""
        dst = self.work / "backends" / "python"
        dst.mkdir(parents=True)
        src = self.sp.dist / "backends" / "python"
        for f in src.iterdir():
            if f.is_file():
                os.symlink(f, dst / f.name)
        shutil.copy(self.sp.dist / "python_backend_stubs" / self.sp.version /
                    "triton_python_backend_stub", dst / "triton_python_backend_stub")
        return self.work / "backends"

    def environment(self) -> Dict[str, str]:
        env = dict(os.environ)
        libs = [p for p in (self.sp.libdir, str(self.sp.libs)) if p]
        env["LD_LIBRARY_PATH"] = os.pathsep.join(libs + [p for p in env.get(
            "LD_LIBRARY_PATH", "").split(os.pathsep) if p])
        # the model's imports: oscar_edge and the server environment's packages (numpy < 2)
        # before anything of the interpreter's base installation
        paths = [str(Path(self.sp.oscar_edge).parent)] + list(self.sp.site)
        env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
        env["PATH"] = str(Path(self.sp.executable).parent) + os.pathsep + env.get("PATH", "")
        env.pop("PYTHONHOME", None)
        return env

    def command(self) -> List[str]:
        p = self.ports
        return [str(self.sp.dist / "bin" / "tritonserver"),
                f"--model-repository={self.repo}",
                f"--backend-directory={self._backends()}",
                f"--cache-directory={self.sp.dist / 'caches'}",
                f"--http-address={self.host}", f"--http-port={p['http']}",
                f"--grpc-address={self.host}", f"--grpc-port={p['grpc']}",
                f"--metrics-address={self.host}", f"--metrics-port={p['metrics']}",
                "--allow-metrics=true", "--allow-gpu-metrics=false",
                f"--backend-config=python,shm-region-prefix-name={self.shm_prefix}",
                f"--exit-timeout-secs={self.exit_timeout_s}", "--strict-readiness=true"]

    # -- life cycle ----------------------------------------------------------------------
    def start(self, ready_timeout_s: float = 120.0) -> None:
        for name, port in self.ports.items():
            if not port_free(self.host, port):
                self.cleanup()
                raise UserError(f"{name} port {port} on {self.host} is in use (another server?): "
                                f"choose another with --{name}-port")
        self._log = open(self.log_path, "ab")
        try:
            self.proc = subprocess.Popen(self.command(), env=self.environment(),
                                         stdout=self._log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True)
        except OSError as exc:
            self.cleanup()
            raise UserError(f"cannot start tritonserver: {exc}") from None
        deadline = time.monotonic() + ready_timeout_s
        while True:
            if self.proc.poll() is not None:
                msg = self.last_error()
                self.stop()
                raise UserError(f"tritonserver exited ({self.proc.returncode}) while starting: "
                                f"{msg}")
            if self.ready():
                return
            if time.monotonic() > deadline:
                msg = self.last_error()
                self.stop()
                raise UserError(f"tritonserver not ready after {ready_timeout_s:g} s: {msg}")
            time.sleep(0.2)

    def ready(self) -> bool:
        url = f"http://{self.host}:{self.ports['http']}/v2/health/ready"
        try:
            with urllib.request.urlopen(url, timeout=1.0) as r:
                return r.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def models(self) -> List[Dict]:
        req = urllib.request.Request(
            f"http://{self.host}:{self.ports['http']}/v2/repository/index", data=b"{}",
            method="POST")
        with urllib.request.urlopen(req, timeout=5.0) as r:
            return json.loads(r.read().decode())

    def last_error(self) -> str:
        """The most telling line of the server log (an error line, else the last line)."""
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return "no log"
        errors = [ln for ln in lines if ln[:1] == "E" or "error" in ln.lower()]
        line = (errors or lines or ["no output"])[-1]
        return line.strip()[:400]

    def stop(self) -> Optional[int]:
        """Graceful stop (SIGINT: Triton unloads the models), then the whole process group;
        shared memory and the work folder go too. Returns the server's exit code."""
        rc = None
        if self.proc is not None:
            if self.proc.poll() is None:
                try:
                    self.proc.send_signal(signal.SIGINT)
                    rc = self.proc.wait(timeout=self.exit_timeout_s + 10)
                except subprocess.TimeoutExpired:
                    pass
            try:  # stubs and anything the server left
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            rc = self.proc.wait() if rc is None else rc
        self.cleanup()
        return rc

    def cleanup(self) -> None:
        for seg in SHM_DIR.glob(self.shm_prefix + "*") if SHM_DIR.is_dir() else ():
            try:
                seg.unlink()
            except OSError:
                pass
        if self._log is not None:
            self._log.close()
            self._log = None
        shutil.rmtree(self.work, ignore_errors=True)  # a --log-file elsewhere stays


def free_ports(n: int = 3, host: str = "127.0.0.1") -> List[int]:
    """``n`` ports free on ``host`` right now (for a server started next: tests, benchmarks)."""
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind((host, 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


class ServeProcess:
    """``oscar-edge serve`` as a child process, ready on return (tests, benchmarks): its output
    lines in ``lines``, :meth:`stop` sends a signal and returns the exit code. RuntimeError
    when it is not ready in ``wait_s``."""

    def __init__(self, repo: Path, python: str, ports: Optional[Sequence[int]] = None,
                 wait_s: float = 120.0, cwd: Optional[Path] = None) -> None:
        self.repo = repo
        self.grpc, self.http, self.metrics = ports or free_ports()
        self.lines: List[str] = []
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "oscar_edge", "serve", str(repo), "--python", python,
             "--grpc-port", str(self.grpc), "--http-port", str(self.http),
             "--metrics-port", str(self.metrics), "--ready-timeout", str(max(1.0, wait_s - 30))],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=cwd)
        ready = threading.Event()

        def read() -> None:
            for line in self.proc.stdout:
                self.lines.append(line)
                if "ready in" in line:
                    ready.set()

        threading.Thread(target=read, daemon=True).start()
        if not ready.wait(wait_s) or self.proc.poll() is not None:
            self.proc.kill()
            raise RuntimeError("oscar-edge serve did not start: " + "".join(self.lines[-5:]))

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 60.0) -> int:
        self.proc.send_signal(sig)
        return self.proc.wait(timeout_s)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="oscar-edge serve",
        description="Serve a CPU model repository (oscar-edge export-triton) with the Triton "
                    "Inference Server bundled in nvidia-pytriton, until Ctrl-C / SIGTERM.")
    p.add_argument("repo", help="model repository folder")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default %(default)s; 0.0.0.0 for every interface)")
    p.add_argument("--grpc-port", type=int, default=DEFAULT_PORTS["grpc"])
    p.add_argument("--http-port", type=int, default=DEFAULT_PORTS["http"])
    p.add_argument("--metrics-port", type=int, default=DEFAULT_PORTS["metrics"])
    p.add_argument("--python", default=sys.executable,
                   help="Python of the server's environment (nvidia-pytriton, oscar-edge, "
                        "numpy < 2; default: this one)")
    p.add_argument("--ready-timeout", type=float, default=120.0,
                   help="seconds to wait for the server to be ready (default %(default)s)")
    p.add_argument("--log-file", help="keep the server's log here (default: discarded on exit)")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)

    def go() -> int:
        repo = Path(args.repo)
        if not repo.is_dir() or not any(repo.glob("*/config.pbtxt")):
            raise UserError(f"{repo}: not a model repository (no */config.pbtxt); write one with "
                            "oscar-edge export-triton --out DIR")
        if any("tensorrt_plan" in c.read_text() for c in repo.glob("*/config.pbtxt")):
            raise UserError(f"{repo} is a GPU repository (TensorRT): serve it with a GPU "
                            "tritonserver as its README.md says; serve takes CPU repositories")
        sp = probe_python(args.python)
        check_python(sp)
        ports = {"grpc": args.grpc_port, "http": args.http_port, "metrics": args.metrics_port}
        server = TritonServer(repo, sp, args.host, ports,
                              Path(args.log_file) if args.log_file else None)
        stop = threading.Event()
        old = {s: signal.signal(s, lambda *_: stop.set()) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            t0 = time.monotonic()
            server.start(args.ready_timeout)
            names = ", ".join(f"{m['name']} (version {m.get('version', '?')}, "
                              f"{m.get('state', '?')})" for m in server.models())
            print(f"oscar-edge serve: ready in {time.monotonic() - t0:.1f} s: gRPC "
                  f"{args.host}:{args.grpc_port}, HTTP {args.host}:{args.http_port}, metrics "
                  f"http://{args.host}:{args.metrics_port}/metrics; models: {names}; Python "
                  f"{sp.version} ({sp.executable}), numpy {sp.numpy}", flush=True)
            print(f"  client: oscar-edge run --backend triton://{args.host}:{args.grpc_port}/"
                  f"oscar-edge --source ...   (Ctrl-C stops the server)", flush=True)
            while not stop.is_set():
                if server.proc.poll() is not None:
                    raise UserError(f"tritonserver exited ({server.proc.returncode}): "
                                    f"{server.last_error()}")
                stop.wait(0.5)
            rc = server.stop()
            print(f"oscar-edge serve: stopped (tritonserver exit code {rc})", flush=True)
            return 0
        finally:
            server.stop()
            for s, h in old.items():
                signal.signal(s, h)

    return run_cli(go, prog="oscar-edge serve")


if __name__ == "__main__":
    sys.exit(main())
