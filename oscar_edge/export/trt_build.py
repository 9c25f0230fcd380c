"""The TensorRT-facing part of ``build_engine``: load the plugin library, parse the end-to-end
ONNX graph into a strongly typed network, build and serialize the engine. Kept thin on purpose.

Written against the TensorRT Python API as published for 10.x (JetPack 6: 10.3) and 11.x
(strongly typed only), tensor-name API only:

* ``trt.Builder(logger).create_network(1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED))``
  (the flag is required for typed graphs on 10.x; on 11.x it is deprecated and ignored, every
  network is strongly typed);
* ``trt.OnnxParser(network, logger).parse_from_file(path)``; errors from ``parser.get_error(i)``;
* ``config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, bytes)``;
* one optimization profile: ``profile.set_shape("image", min, opt, max)`` (and
  ``profile.set_shape("letterbox", (Bmin, 4), (Bopt, 4), (Bmax, 4))`` for a graph ending in
  OscarPeakRefine);
* timing cache: ``config.create_timing_cache(bytes)``, ``config.set_timing_cache(cache,
  ignore_mismatch=False)``, after the build ``config.get_timing_cache().serialize()``;
* DLA (Orin, TensorRT 10.x): ``config.default_device_type = trt.DeviceType.DLA``,
  ``config.DLA_core = n``, ``config.set_flag(trt.BuilderFlag.GPU_FALLBACK)`` (the plugins and
  the layers DLA cannot run stay on the GPU); ``builder.num_DLA_cores`` is checked first;
* ``builder.build_serialized_network(network, config)`` -> the plan (None on failure).

No precision builder flags are used (``BuilderFlag.FP16`` / ``INT8`` and calibrators are gone in
TensorRT 11): the precision is in the graph (ModelOpt AutoCast / Q/DQ), see deploy-notes.

The plugin library registers its creators when it is loaded (``REGISTER_TENSORRT_PLUGIN``,
static registration; cpp_plugins/README.md), so :func:`load_plugin_library` is a plain
``ctypes.CDLL`` and needs no TensorRT import: ``build_engine`` loads it before importing
``tensorrt`` (a library that does not load fails early, and can be tested without TensorRT).
NOT verified here: this module has never run against a real TensorRT (none on the build
machine); ``tests/test_build_engine.py`` checks the call sequence with a test double, and the
``tensorrt``-marked test builds real engines where TensorRT and a GPU exist.
"""
from __future__ import annotations

import ctypes
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from ..errors import UserError
from .plugin_names import PluginNames

Shape = Tuple[int, ...]


class TensorRTUnavailable(RuntimeError):
    """``import tensorrt`` failed (not installed, or its libraries do not load)."""


class EngineBuildError(RuntimeError):
    """TensorRT ran but produced no engine (its log says why)."""


def import_tensorrt():
    """The ``tensorrt`` module, or TensorRTUnavailable with the import error's first line."""
    try:
        import tensorrt as trt  # noqa: F401
    except Exception as exc:  # ImportError, OSError from a broken libnvinfer, ...
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise TensorRTUnavailable(text) from None
    return trt


_LOADED: Dict[str, ctypes.CDLL] = {}


def load_plugin_library(path: os.PathLike | str) -> ctypes.CDLL:
    """``ctypes.CDLL`` the plugin library (registers its creators); once per path.

    Raises:
        UserError: missing file or a library the dynamic loader rejects (one line, with the
            loader's reason, e.g. a missing libnvinfer.so.10 or a file that is not a library).
    """
    path = Path(path)
    key = str(path.resolve()) if path.exists() else str(path)
    if key in _LOADED:
        return _LOADED[key]
    how = ("build it with `cmake -S cpp_plugins -B build/plugins && cmake --build build/plugins` "
           "on a machine with TensorRT, or pass --plugin-lib / set OSCAR_EDGE_TRT_PLUGINS")
    if not path.is_file():
        raise UserError(f"TensorRT plugin library not found: {path}; {how}")
    try:
        lib = ctypes.CDLL(str(path.resolve()))  # a bare name would search the loader's path
    except OSError as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else "unknown reason"
        raise UserError(f"TensorRT plugin library {path} could not be loaded ({reason}); "
                        f"{how}") from None
    _LOADED[key] = lib
    return lib


def check_plugin_creators(trt, names: PluginNames, library: str = "") -> None:
    """Both creators must be registered under (name, version, namespace) of the header."""
    registry = trt.get_plugin_registry()
    missing = []
    for name, version in names.plugins().items():
        if registry.get_creator(name, version, names.namespace) is None:
            missing.append(f"{name}/{version}")
    if missing:
        listed = []
        for c in getattr(registry, "all_creators", []) or []:
            listed.append(f"{getattr(c, 'name', '?')}/{getattr(c, 'plugin_version', '?')}"
                          f"@{getattr(c, 'plugin_namespace', '?')!r}")
        oscar = [c for c in listed if c.startswith("Oscar")]
        raise UserError(f"TensorRT has no plugin creator {', '.join(missing)} in namespace "
                        f"{names.namespace!r} after loading {library or 'the plugin library'} "
                        f"(registered Oscar* creators: {oscar or 'none'}; "
                        f"{len(listed)} creators in all)")


@dataclass
class BuildSpec:
    onnx_path: Path
    input_name: str
    min_shape: Shape
    opt_shape: Shape
    max_shape: Shape
    workspace_bytes: int
    expected_outputs: Sequence[str]
    timing_cache: Optional[Path] = None
    dla_core: Optional[int] = None
    verbose: bool = False
    # further inputs after input_name, in graph order: name -> (min, opt, max) shapes (the
    # ``letterbox`` [B, 4] input of a graph ending in OscarPeakRefine)
    extra_inputs: Dict[str, Tuple[Tuple[int, ...], Tuple[int, ...], Tuple[int, ...]]] = \
        field(default_factory=dict)


@dataclass
class BuildResult:
    plan: bytes
    tensorrt_version: str
    inputs: List[str] = field(default_factory=list)
    outputs: List[str] = field(default_factory=list)
    timing_cache_saved: bool = False
    notes: List[str] = field(default_factory=list)


def _parser_errors(parser) -> str:
    errors = []
    for i in range(int(parser.num_errors)):
        text = str(parser.get_error(i)).strip()
        errors.append(" ".join(text.split()))
    return "; ".join(errors) if errors else "no error reported"


def _read_timing_cache(config, path: Optional[Path], notes: List[str]):
    data = b""
    if path is not None and path.is_file() and path.stat().st_size > 0:
        data = path.read_bytes()
    cache = config.create_timing_cache(data)
    if cache is None and data:
        notes.append(f"timing cache {path} was not usable (another TensorRT version or device?); "
                     "starting an empty one")
        cache = config.create_timing_cache(b"")
    if cache is None:
        raise EngineBuildError("TensorRT could not create a timing cache")
    config.set_timing_cache(cache, ignore_mismatch=False)
    return cache


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def build_engine(trt, spec: BuildSpec, names: PluginNames, plugin_library: str = "") -> BuildResult:
    """Parse ``spec.onnx_path`` into a strongly typed network and build the serialized engine.

    The plugin library must already be loaded (:func:`load_plugin_library`).

    Raises:
        UserError: parser errors (e.g. "Plugin not found"), missing creators, a DLA core that
            does not exist, unexpected network I/O.
        EngineBuildError: the builder returned no engine.
    """
    notes: List[str] = []
    logger = trt.Logger(trt.Logger.VERBOSE if spec.verbose else trt.Logger.WARNING)
    check_plugin_creators(trt, names, plugin_library)

    builder = trt.Builder(logger)
    typed = getattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED", None)
    flags = 1 << int(typed) if typed is not None else 0  # 11.x: deprecated, always typed
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(spec.onnx_path)):
        raise UserError(f"TensorRT's ONNX parser rejected {spec.onnx_path}: "
                        f"{_parser_errors(parser)}")

    inputs = [network.get_input(i).name for i in range(network.num_inputs)]
    outputs = [network.get_output(i).name for i in range(network.num_outputs)]
    want_inputs = [spec.input_name] + list(spec.extra_inputs)
    if inputs != want_inputs or list(outputs) != list(spec.expected_outputs):
        raise UserError(f"parsed network has inputs {inputs} and outputs {outputs}; expected "
                        f"{want_inputs} and {list(spec.expected_outputs)}")

    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(spec.workspace_bytes))

    profile = builder.create_optimization_profile()
    profile.set_shape(spec.input_name, tuple(spec.min_shape), tuple(spec.opt_shape),
                      tuple(spec.max_shape))
    for name, (mn, opt, mx) in spec.extra_inputs.items():
        profile.set_shape(name, tuple(mn), tuple(opt), tuple(mx))
    if config.add_optimization_profile(profile) < 0:
        raise UserError(f"TensorRT rejected the optimization profile min {spec.min_shape} / opt "
                        f"{spec.opt_shape} / max {spec.max_shape}")

    if spec.timing_cache is not None:
        _read_timing_cache(config, spec.timing_cache, notes)

    if spec.dla_core is not None:
        available = int(getattr(builder, "num_DLA_cores", 0))
        if not 0 <= spec.dla_core < available:
            raise UserError(f"--dla-core {spec.dla_core}: this device has {available} DLA "
                            "core(s) for this TensorRT (Orin: 0 or 1, TensorRT 10.x)")
        config.default_device_type = trt.DeviceType.DLA
        config.DLA_core = int(spec.dla_core)
        config.set_flag(trt.BuilderFlag.GPU_FALLBACK)

    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise EngineBuildError("TensorRT could not build the engine (see its log above)")
    result = BuildResult(plan=bytes(plan), tensorrt_version=str(trt.__version__),
                         inputs=inputs, outputs=list(outputs), notes=notes)

    if spec.timing_cache is not None:
        cache = config.get_timing_cache()
        if cache is not None:
            _write_atomic(spec.timing_cache, bytes(cache.serialize()))
            result.timing_cache_saved = True
    return result
