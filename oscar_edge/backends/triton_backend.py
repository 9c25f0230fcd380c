"""``--backend triton://HOST:PORT/MODEL``: the detector runs on a Triton Inference Server.

| URI | protocol |
|---|---|
| ``triton://127.0.0.1:8001/oscar-edge`` | gRPC (default) |
| ``triton+grpc://HOST:PORT/MODEL`` | gRPC |
| ``triton+http://HOST:8000/MODEL`` | HTTP |

Frames travel as uint8 grey (327 KB at 640x512), detections come back (a few hundred bytes):
the server runs the pre-processing, network, decode, NMS and peak refinement of the model it
was given (``oscar-edge export-triton``), whose settings (fit / input size, refinement,
precision) this backend reads from the model's config and reports.

Faults (docs/many-cameras.md):

* server not reachable, unknown model, a model that does not take oscar-edge's FRAMES: one-line
  ``UserError`` at start (exit 2);
* server gone mid-stream, or a request slower than ``timeout_s``: the frame is dropped
  (``FrameDropped``, counted by the runtime) and the run goes on; while the server is away,
  frames are dropped without a request until the next retry (backoff 0.25 s doubling to 5 s);
  the first success after a fault is logged with the gap and the frames dropped in it;
* a request the server refuses for its content (``INVALID_ARG``: wrong frame shape): an error
  that ends the run in one line.

Needs the ``tritonclient`` package (``pip install 'oscar-edge[triton-client]'``); no torch.
"""
from __future__ import annotations

import sys
import threading
import time
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Tuple
from urllib.parse import urlsplit

import numpy as np

from ..errors import UserError
from ..triton import INPUT_FRAMES, MODEL_NAME, OUTPUT_COUNT, OUTPUT_DETECTIONS
from ..triton.python_model import fit_param, input_size_param, unpack
from .base import FRAME_DETECTIONS, FrameDropped

SCHEMES = {"triton": "grpc", "triton+grpc": "grpc", "triton+http": "http"}
DEFAULT_TIMEOUT_S = 5.0
BACKOFF_START_S, BACKOFF_MAX_S = 0.25, 5.0
# gRPC status codes (tritonclient's InferenceServerException.status()) of a passing fault.
# NOT_FOUND too: the model was there at start, so it is being unloaded (a server stopping or
# restarting) and comes back with the server.
TRANSIENT = ("UNAVAILABLE", "DEADLINE_EXCEEDED", "CANCELLED", "RESOURCE_EXHAUSTED", "ABORTED",
             "INTERNAL", "UNKNOWN", "NOT_FOUND")


def is_triton_uri(text: Optional[str]) -> bool:
    return bool(text) and str(text).split("://", 1)[0].lower() in SCHEMES


@dataclass(frozen=True)
class TritonUri:
    protocol: str   # grpc | http
    host: str
    port: int
    model: str

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def __str__(self) -> str:
        return f"triton+{self.protocol}://{self.address}/{self.model}"


def parse_uri(text: str) -> TritonUri:
    """``triton[+grpc|+http]://HOST:PORT/MODEL`` (port default 8001 gRPC / 8000 HTTP; model
    default oscar-edge)."""
    parts = urlsplit(text)
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise UserError(f"--backend {text}: not a Triton URI (triton://HOST:PORT/MODEL)")
    protocol = SCHEMES[scheme]
    try:
        port = parts.port or (8001 if protocol == "grpc" else 8000)
    except ValueError:
        raise UserError(f"--backend {text}: bad port") from None
    if not parts.hostname:
        raise UserError(f"--backend {text}: no host (triton://HOST:PORT/MODEL)")
    model = parts.path.strip("/") or MODEL_NAME
    if "/" in model:
        raise UserError(f"--backend {text}: the path must be one model name")
    return TritonUri(protocol, parts.hostname, port, model)


def _exception_types():
    from tritonclient.utils import InferenceServerException

    return InferenceServerException


def _status(exc: BaseException) -> str:
    status = getattr(exc, "status", None)
    text = str(status() if callable(status) else status or "")
    return text.replace("StatusCode.", "").upper()


class TritonBackend:
    """A backend whose whole detector is a model on a Triton server (module docstring)."""

    name = "triton"
    output_kind = FRAME_DETECTIONS

    def __init__(self, uri: str, timeout_s: float = DEFAULT_TIMEOUT_S,
                 log: Callable[[str], None] = lambda m: print(m, file=sys.stderr, flush=True)
                 ) -> None:
        self.uri = parse_uri(uri)
        self.timeout_s = float(timeout_s)
        if self.timeout_s <= 0:
            raise UserError(f"--triton-timeout must be > 0, got {timeout_s}")
        self.log = log
        try:
            if self.uri.protocol == "grpc":
                import tritonclient.grpc as tc
            else:
                import tritonclient.http as tc
        except ImportError as exc:
            raise UserError(f"--backend {uri} needs tritonclient ({exc.name} missing): pip "
                            "install 'oscar-edge[triton-client]'") from None
        self._tc = tc
        self._local = threading.local()
        self._lock = threading.Lock()
        self._down_since: Optional[float] = None
        self._retry_at = 0.0
        self._backoff = BACKOFF_START_S
        self._dropped_in_gap = 0
        self.params = self._check_model()
        self.peak_refine = self.params.get("peak_refine", "on") == "on"
        self.fit_size = fit_param(self.params["fit"]) if self.params.get("fit") else None
        self.input_size: Optional[Tuple[int, int]] = input_size_param(
            self.params.get("input_size", ""))
        self.precision = self.params.get("precision", "unknown")
        self.small_input = self.params.get("small_input", "off") == "on"  # as the server does

    # -- connection ------------------------------------------------------------------------
    def _client(self):
        """One client per thread (tritonclient's HTTP client is not thread safe)."""
        c = getattr(self._local, "client", None)
        if c is None:
            if self.uri.protocol == "grpc":
                c = self._tc.InferenceServerClient(self.uri.address)
            else:
                c = self._tc.InferenceServerClient(self.uri.address,
                                                   connection_timeout=self.timeout_s,
                                                   network_timeout=self.timeout_s)
            self._local.client = c
        return c

    def _check_model(self) -> Dict[str, str]:
        err = _exception_types()
        where = f"Triton at {self.uri.address} ({self.uri.protocol.upper()})"
        c = self._client()
        try:
            live = c.is_server_live(**self._timeout_kw())
        except (err, OSError, ConnectionError) as exc:
            raise UserError(f"cannot reach {where}: {_one_line(exc)}") from None
        if not live:
            raise UserError(f"{where} is not live")
        try:
            ready = c.is_model_ready(self.uri.model, **self._timeout_kw())
        except (err, OSError) as exc:
            raise UserError(f"{where}: {_one_line(exc)}") from None
        if not ready:
            try:
                index = c.get_model_repository_index(**self._json_kw())
                models = index.get("models", index) if isinstance(index, dict) else index
                names = sorted({m["name"] for m in models})
            except (err, OSError, KeyError, TypeError):
                names = []
            raise UserError(f"model {self.uri.model!r} is not ready on {where} (it serves: "
                            f"{', '.join(names) or 'nothing'})")
        meta = c.get_model_metadata(self.uri.model, **self._json_kw())
        ins = {t["name"]: t for t in meta["inputs"]}
        outs = {t["name"] for t in meta["outputs"]}
        frames = ins.get(INPUT_FRAMES)
        if (frames is None or len(ins) != 1 or frames["datatype"] != "UINT8"
                or len(frames["shape"]) != 3 or {OUTPUT_DETECTIONS, OUTPUT_COUNT} - outs):
            got = ", ".join(f"{t['name']} {t['datatype']} {t['shape']}" for t in meta["inputs"])
            raise UserError(f"model {self.uri.model!r} on {where} does not take oscar-edge "
                            f"frames (want {INPUT_FRAMES} UINT8 [batch, H, W] -> "
                            f"{OUTPUT_DETECTIONS}, {OUTPUT_COUNT}; it takes {got})")
        cfg = c.get_model_config(self.uri.model, **self._json_kw())
        cfg = cfg.get("config", cfg)
        return {k: str(v.get("string_value", "")) for k, v in
                (cfg.get("parameters") or {}).items()}

    def _timeout_kw(self) -> dict:
        return {"client_timeout": self.timeout_s} if self.uri.protocol == "grpc" else {}

    def _json_kw(self) -> dict:
        return {"as_json": True, **self._timeout_kw()} if self.uri.protocol == "grpc" else {}

    def describe(self) -> str:
        p = self.params
        return (f"Triton {self.uri} ({p.get('backend', '?')} {p.get('precision', '?')} on the "
                f"server, peak refinement {p.get('peak_refine', '?')})")

    # -- inference -------------------------------------------------------------------------
    def __call__(self, frames: np.ndarray) -> List[np.ndarray]:
        """(B, H, W) uint8 grey frames -> one (N, 5) array per frame; FrameDropped while the
        server is away or slow."""
        frames = np.ascontiguousarray(frames, dtype=np.uint8)
        if frames.ndim == 2:
            frames = frames[None]
        now = time.monotonic()
        with self._lock:
            if self._down_since is not None and now < self._retry_at:
                self._dropped_in_gap += 1
                raise FrameDropped(f"Triton at {self.uri.address} unreachable; next try in "
                                   f"{self._retry_at - now:.2f} s")
        err = _exception_types()
        inp = self._tc.InferInput(INPUT_FRAMES, list(frames.shape), "UINT8")
        inp.set_data_from_numpy(frames)
        outs = [self._tc.InferRequestedOutput(OUTPUT_DETECTIONS),
                self._tc.InferRequestedOutput(OUTPUT_COUNT)]
        try:
            res = self._client().infer(self.uri.model, [inp], outputs=outs,
                                       **self._timeout_kw())
        except err as exc:
            status, text = _status(exc), _one_line(exc)
            if "INVALID_ARG" in status or ("unexpected shape" in text.lower()):
                raise UserError(f"Triton refused the frame {list(frames.shape[1:])}: {text}") \
                    from None
            if (any(s in status for s in TRANSIENT) or not status or "timed out" in text.lower()
                    or "unknown model" in text.lower()):
                self._fault(text)
                raise FrameDropped(f"Triton at {self.uri.address}: {text}") from None
            raise UserError(f"Triton at {self.uri.address}: {text}") from None
        except (OSError, ConnectionError, TimeoutError) as exc:  # HTTP transport
            self._fault(_one_line(exc))
            self._local.client = None  # a fresh connection next time
            raise FrameDropped(f"Triton at {self.uri.address}: {_one_line(exc)}") from None
        except Exception as exc:  # noqa: BLE001 - gevent's Timeout is no OSError
            if type(exc).__name__ != "Timeout":
                raise
            self._fault("timed out")
            self._local.client = None
            raise FrameDropped(f"Triton at {self.uri.address}: timed out after "
                               f"{self.timeout_s:g} s") from None
        self._recovered()
        return unpack(res.as_numpy(OUTPUT_DETECTIONS), res.as_numpy(OUTPUT_COUNT))

    def _fault(self, text: str) -> None:
        now = time.monotonic()
        with self._lock:
            if self._down_since is None:
                self._down_since = now
                self._backoff = BACKOFF_START_S
                self._dropped_in_gap = 0
                self.log(f"oscar-edge run: Triton at {self.uri.address}: {text}; dropping "
                         f"frames and retrying (backoff {BACKOFF_START_S:g} s doubling to "
                         f"{BACKOFF_MAX_S:g} s)")
            else:
                self._backoff = min(BACKOFF_MAX_S, self._backoff * 2)
            self._dropped_in_gap += 1
            self._retry_at = now + self._backoff

    def _recovered(self) -> None:
        with self._lock:
            if self._down_since is None:
                return
            gap = time.monotonic() - self._down_since
            self.log(f"oscar-edge run: Triton at {self.uri.address} back after {gap:.1f} s; "
                     f"{self._dropped_in_gap} frames dropped in the gap")
            self._down_since = None

    def close(self) -> None:
        c = getattr(self._local, "client", None)
        if c is not None:
            try:
                c.close()
            except Exception:  # noqa: BLE001 - closing a dead connection
                pass
            self._local.client = None


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:300]
