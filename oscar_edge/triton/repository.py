"""``oscar-edge export-triton``: write a Triton model repository (docs/many-cameras.md).

    oscar-edge export-triton --out repo/                          # CPU: Python backend
    oscar-edge export-triton --out repo-gpu/ --gpu --engine oscar-edge.engine \\
        --plugin-lib build/plugins/liboscar_edge_trt_plugins.so     # GPU: TensorRT ensemble

CPU repository (served here by ``oscar-edge serve``)::

    repo/oscar-edge/config.pbtxt        backend "python", dynamic batching, CPU instances
    repo/oscar-edge/1/model.py          imports oscar_edge.triton.python_model
    repo/oscar-edge/1/oscar-edge.onnx   the graph it runs (ONNX Runtime or OpenVINO)

GPU repository (written and validated here, never served here: no GPU, no TensorRT)::

    repo-gpu/oscar-edge/                ensemble: pre -> trt -> post (same interface as the CPU model)
    repo-gpu/oscar-edge-pre/1/model.py  Python: frames -> network input + letterbox rows
    repo-gpu/oscar-edge-trt/1/model.plan  the engine of export/build_engine.py (platform tensorrt_plan)
    repo-gpu/oscar-edge-post/1/model.py Python: engine detections -> original pixels
    repo-gpu/plugins/liboscar_edge_trt_plugins.so  loaded by the server:
        tritonserver --model-repository=repo-gpu \\
            --backend-config=tensorrt,plugins=repo-gpu/plugins/liboscar_edge_trt_plugins.so

Both take FRAMES (uint8 [batch, H, W]) and return DETECTIONS / NUM_DETECTIONS. Nothing that
exists is overwritten without ``--force``; a new ``--version`` adds a version folder.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from .. import __version__
from ..errors import UserError, run_cli
from . import (DEFAULT_MAX_BATCH, DEFAULT_QUEUE_DELAY_US, INPUT_FRAMES, MODEL_NAME, OUTPUT_COUNT,
               OUTPUT_DETECTIONS, PARAM_ROLE)
from .python_model import ENGINE_INPUT, ENGINE_LETTERBOX, ENGINE_OUTPUTS, fit_param

PRE_NAME, TRT_NAME, POST_NAME = f"{MODEL_NAME}-pre", f"{MODEL_NAME}-trt", f"{MODEL_NAME}-post"
PLUGIN_FILENAME = "liboscar_edge_trt_plugins.so"  # backends.trt_backend.PLUGIN_FILENAME
CPU_BACKENDS = ("onnxruntime", "openvino")

MODEL_PY = '''"""{name}: written by `oscar-edge export-triton` (oscar-edge {version}). Triton's Python
backend loads this file; the work is in oscar_edge.triton.python_model (role: {role})."""
from oscar_edge.triton.python_model import TritonPythonModel  # noqa: F401
'''


# -- config.pbtxt text ---------------------------------------------------------------------
def _q(text: str) -> str:
    return json.dumps(str(text))


def _tensor(name: str, dtype: str, dims: Sequence[int], reshape: Optional[Sequence[int]] = None
            ) -> str:
    extra = f" reshape: {{ shape: [ {', '.join(map(str, reshape))} ] }}" if reshape is not None \
        else ""
    return (f"  {{ name: {_q(name)} data_type: {dtype} dims: [ {', '.join(map(str, dims))} ]"
            f"{extra} }}")


def _tensors(key: str, items: Sequence[str]) -> str:
    return f"{key} [\n" + ",\n".join(items) + "\n]\n"


def _parameters(params: Dict[str, str]) -> str:
    return "".join(f"parameters: {{ key: {_q(k)} value: {{ string_value: {_q(v)} }} }}\n"
                   for k, v in params.items())


FRAME_IN = _tensor(INPUT_FRAMES, "TYPE_UINT8", [-1, -1])
DETECTIONS_OUT = [_tensor(OUTPUT_DETECTIONS, "TYPE_FP32", [-1, 5]),
                  _tensor(OUTPUT_COUNT, "TYPE_INT32", [1])]


def _batching(max_batch: int, queue_delay_us: Optional[int]) -> str:
    """``max_batch_size`` and, unless ``queue_delay_us`` is None, dynamic batching."""
    text = f"max_batch_size: {max_batch}\n"
    if queue_delay_us is not None:
        text += f"dynamic_batching {{ max_queue_delay_microseconds: {queue_delay_us} }}\n"
    return text


def python_config(name: str, role: str, inputs: List[str], outputs: List[str], max_batch: int,
                  queue_delay_us: Optional[int], instances: int, params: Dict[str, str]) -> str:
    return (f"# written by oscar-edge export-triton {__version__}\n"
            f"name: {_q(name)}\nbackend: \"python\"\n" + _batching(max_batch, queue_delay_us)
            + _tensors("input", inputs) + _tensors("output", outputs)
            + f"instance_group [ {{ count: {instances} kind: KIND_CPU }} ]\n"
            + "version_policy: { latest: { num_versions: 1 } }\n"
            + _parameters({PARAM_ROLE: role, **params}))


# -- the CPU repository ----------------------------------------------------------------------
@dataclass
class CpuOptions:
    backend: str = "onnxruntime"
    model: Optional[str] = None      # ONNX graph; default: the shipped graph of precision
    precision: Optional[str] = None
    instances: int = 1
    threads: int = 0                 # per instance; 0 = the runtime's default
    max_batch: int = DEFAULT_MAX_BATCH
    queue_delay_us: Optional[int] = DEFAULT_QUEUE_DELAY_US   # None: no dynamic batching
    input_size: str = "fit"          # WxH or fit
    peak_refine: str = "on"
    ov_hint: str = ""


def post_params() -> Dict[str, str]:
    """Decode / NMS settings of the runtime's defaults (oscar_edge.postprocess)."""
    from .. import postprocess as pp

    return {"score_thr": repr(pp.SCORE_THR), "topk": str(pp.PRE_NMS_TOPK),
            "iou_thr": repr(pp.IOU_THR), "max_det": str(pp.MAX_DET)}


def _check_common(max_batch: int, queue_delay_us: Optional[int], instances: int) -> None:
    if max_batch < 1:
        raise UserError(f"--max-batch must be >= 1, got {max_batch}")
    if queue_delay_us is not None and queue_delay_us < 0:
        raise UserError(f"--queue-delay-us must be >= 0, got {queue_delay_us}")
    if instances < 1:
        raise UserError(f"--instances must be >= 1, got {instances}")


def _version_dir(model_dir: Path, version: int, force: bool) -> Path:
    if version < 1:
        raise UserError(f"--version must be >= 1, got {version}")
    vdir = model_dir / str(version)
    if vdir.exists() and any(vdir.iterdir()) and not force:
        raise UserError(f"{vdir} exists and is not empty: give --force to overwrite it, or a new "
                        "--version")
    vdir.mkdir(parents=True, exist_ok=True)
    return vdir


def write_cpu_repository(out: Path, opt: CpuOptions, version: int = 1, force: bool = False
                         ) -> List[Path]:
    """The CPU repository (module docstring); returns the files written."""
    from ..backends.factory import onnx_model_path
    from ..backends.onnx_meta import OnnxFormatError, read_metadata
    from ..sizes import parse_size

    if opt.backend not in CPU_BACKENDS:
        raise UserError(f"--backend {opt.backend}: a CPU repository runs one of "
                        f"{', '.join(CPU_BACKENDS)}")
    _check_common(opt.max_batch, opt.queue_delay_us, opt.instances)
    if opt.input_size != "fit":
        try:
            parse_size(opt.input_size, multiple=32, name="--input-size")
        except ValueError as exc:
            raise UserError(str(exc)) from None
    src = onnx_model_path(opt.model, opt.precision)
    if not src.is_file():
        raise UserError(f"model not found: {src}")
    try:
        meta = read_metadata(src)
    except (OnnxFormatError, OSError) as exc:
        raise UserError(f"{src}: not an oscar-edge ONNX graph ({exc})") from None
    precision = meta.get("precision", "unknown")
    if opt.precision and precision not in ("unknown", opt.precision):
        raise UserError(f"--precision {opt.precision}, but {src.name} is {precision}")
    model_dir = out / MODEL_NAME
    vdir = _version_dir(model_dir, version, force)
    graph = vdir / f"{MODEL_NAME}.onnx"
    shutil.copyfile(src, graph)
    params = {"backend": opt.backend, "model_file": graph.name, "precision": precision,
              "threads": str(opt.threads), "input_size": opt.input_size,
              "fit": ",".join(str(v) for v in fit_param(meta.get("fit_size", ""))),
              "small_input": "on", "peak_refine": opt.peak_refine, "ov_hint": opt.ov_hint,
              **post_params()}
    files = [graph, vdir / "model.py", model_dir / "config.pbtxt"]
    files[1].write_text(MODEL_PY.format(name=MODEL_NAME, version=__version__, role="detect"))
    files[2].write_text(python_config(MODEL_NAME, "detect", [FRAME_IN], DETECTIONS_OUT,
                                      opt.max_batch, opt.queue_delay_us, opt.instances, params))
    return files


# -- the GPU repository ----------------------------------------------------------------------
@dataclass
class GpuOptions:
    engine: Optional[str] = None     # export/build_engine.py output (+ its .json sidecar)
    plugin_lib: Optional[str] = None
    max_batch: int = 4               # the engine profile's max batch (build_engine default)
    queue_delay_us: Optional[int] = DEFAULT_QUEUE_DELAY_US
    instances: int = 1               # engine instances on the GPU
    cpu_instances: int = 2           # instances of the Python pre / post models
    peak_refine: Optional[str] = None  # in the engine (OscarPeakRefine); default: the sidecar's
    max_det: int = 100
    input_hw: Tuple[int, int] = (-1, -1)  # a static engine's input (height, width)


def read_sidecar(engine: Path) -> Dict:
    side = Path(str(engine) + ".json")
    if not side.is_file():
        raise UserError(f"{engine}: its sidecar {side.name} is missing (written beside the engine "
                        "by export/build_engine.py)")
    try:
        return json.loads(side.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise UserError(f"{side}: not readable JSON ({exc})") from None


def gpu_options_from_engine(opt: GpuOptions) -> GpuOptions:
    """Fill batch, input size, detections and refinement from the engine's sidecar."""
    if not opt.engine:
        return opt
    side = read_sidecar(Path(opt.engine))
    try:
        lo, hi = side["input"]["min_shape"], side["input"]["max_shape"]
        opt.max_batch = int(hi[0])
        opt.input_hw = (int(hi[2]), int(hi[3])) if lo[2:] == hi[2:] else (-1, -1)
        opt.max_det = int(side["outputs"]["boxes"]["shape"][1])
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        raise UserError(f"{opt.engine}.json: no input profile / outputs ({exc!r})") from None
    in_engine = "OscarPeakRefine" in (side.get("plugins") or {})
    if opt.peak_refine is not None and (opt.peak_refine == "on") != in_engine:
        raise UserError(f"--peak-refine {opt.peak_refine}, but {opt.engine} was built "
                        f"{'with' if in_engine else 'without'} OscarPeakRefine")
    opt.peak_refine = "on" if in_engine else "off"
    return opt


def write_gpu_repository(out: Path, opt: GpuOptions, version: int = 1, force: bool = False
                         ) -> List[Path]:
    """The GPU ensemble repository (module docstring); returns the files written."""
    _check_common(opt.max_batch, opt.queue_delay_us, opt.instances)
    opt = gpu_options_from_engine(opt)
    refine = (opt.peak_refine or "on") == "on"
    files: List[Path] = []
    h, w = opt.input_hw
    fit = ",".join(str(v) for v in fit_param(""))
    pre_params = {"fit": fit, "input_size": "fit" if h < 0 else f"{w}x{h}", "small_input": "on"}
    image = _tensor(ENGINE_INPUT, "TYPE_FP32", [3, h, w])
    letterbox = _tensor(ENGINE_LETTERBOX, "TYPE_FP32", [4])
    engine_out = [_tensor(ENGINE_OUTPUTS[0], "TYPE_INT32", [1], reshape=[]),
                  _tensor(ENGINE_OUTPUTS[1], "TYPE_FP32", [opt.max_det, 4]),
                  _tensor(ENGINE_OUTPUTS[2], "TYPE_FP32", [opt.max_det])]
    for name, role, ins, outs, params in (
            (PRE_NAME, "preprocess", [FRAME_IN], [image, letterbox], pre_params),
            (POST_NAME, "postprocess", [_tensor(ENGINE_OUTPUTS[0], "TYPE_INT32", [1]),
                                        engine_out[1], engine_out[2], letterbox],
             DETECTIONS_OUT, {})):
        vdir = _version_dir(out / name, version, force)
        (vdir / "model.py").write_text(MODEL_PY.format(name=name, version=__version__, role=role))
        cfg = out / name / "config.pbtxt"
        cfg.write_text(python_config(name, role, ins, outs, opt.max_batch, None,
                                     opt.cpu_instances, params))
        files += [vdir / "model.py", cfg]
    vdir = _version_dir(out / TRT_NAME, version, force)
    plan = vdir / "model.plan"
    if opt.engine:
        shutil.copyfile(opt.engine, plan)
        shutil.copyfile(str(opt.engine) + ".json", vdir / "model.plan.json")
        files += [plan, vdir / "model.plan.json"]
    trt_inputs = [image] + ([letterbox] if refine else [])
    cfg = out / TRT_NAME / "config.pbtxt"
    cfg.write_text(f"# written by oscar-edge export-triton {__version__}\n"
                   f"name: {_q(TRT_NAME)}\nplatform: \"tensorrt_plan\"\n"
                   + _batching(opt.max_batch, opt.queue_delay_us)
                   + _tensors("input", trt_inputs) + _tensors("output", engine_out)
                   + f"instance_group [ {{ count: {opt.instances} kind: KIND_GPU }} ]\n"
                   + "version_policy: { latest: { num_versions: 1 } }\n")
    files.append(cfg)
    ens = out / MODEL_NAME
    (ens / str(version)).mkdir(parents=True, exist_ok=True)  # an ensemble's version is empty
    pairs = lambda kind, names: "".join(  # noqa: E731
        f" {kind} {{ key: {_q(n)} value: {_q(n)} }}" for n in names)
    steps = [(PRE_NAME, [INPUT_FRAMES], [ENGINE_INPUT, ENGINE_LETTERBOX]),
             (TRT_NAME, [ENGINE_INPUT] + ([ENGINE_LETTERBOX] if refine else []),
              list(ENGINE_OUTPUTS)),
             (POST_NAME, list(ENGINE_OUTPUTS) + [ENGINE_LETTERBOX],
              [OUTPUT_DETECTIONS, OUTPUT_COUNT])]
    step_text = ",\n".join(f"  {{ model_name: {_q(m)} model_version: -1"
                           f"{pairs('input_map', i)}{pairs('output_map', o)} }}"
                           for m, i, o in steps)
    cfg = ens / "config.pbtxt"
    cfg.write_text(f"# written by oscar-edge export-triton {__version__}\n"
                   f"name: {_q(MODEL_NAME)}\nplatform: \"ensemble\"\n"
                   f"max_batch_size: {opt.max_batch}\n"
                   + _tensors("input", [FRAME_IN]) + _tensors("output", DETECTIONS_OUT)
                   + f"ensemble_scheduling {{ step [\n{step_text}\n] }}\n")
    files.append(cfg)
    if opt.plugin_lib:
        lib = Path(opt.plugin_lib)
        if not lib.is_file():
            raise UserError(f"--plugin-lib {lib}: no such file")
        (out / "plugins").mkdir(exist_ok=True)
        shutil.copyfile(lib, out / "plugins" / PLUGIN_FILENAME)
        files.append(out / "plugins" / PLUGIN_FILENAME)
    readme = out / "README.md"
    readme.write_text(GPU_README.format(version=__version__, engine=(
        "copied from " + str(opt.engine)) if opt.engine else
        f"NOT included: build it on the server's GPU and put it at {TRT_NAME}/{version}/model.plan",
        plugin=PLUGIN_FILENAME, refine="on" if refine else "off"))
    files.append(readme)
    return files


GPU_README = """# oscar-edge Triton repository for a GPU server (oscar-edge export-triton {version})

Interface: model `oscar-edge` (an ensemble), input FRAMES uint8 [batch, H, W] grey frames,
outputs DETECTIONS fp32 [batch, M, 5] (x1, y1, x2, y2 in frame pixels, score) and
NUM_DETECTIONS int32 [batch, 1]: the same as the CPU repository, so
`oscar-edge run --backend triton://HOST:8001/oscar-edge` works with both.

- `oscar-edge-pre` (Python, CPU): letterbox + normalisation of oscar_edge.preprocess
- `oscar-edge-trt` (TensorRT, GPU): the engine, {engine}; peak refinement in the engine: {refine}
- `oscar-edge-post` (Python, CPU): boxes back to frame pixels

The engine needs the OscarDecode / OscarNMS (/ OscarPeakRefine) plugins. Start the server with
the plugin library (Triton's TensorRT backend option `plugins`; LD_PRELOAD works too), on the
TensorRT version the engine was built with:

    tritonserver --model-repository=$PWD \\
        --backend-config=tensorrt,plugins=$PWD/plugins/{plugin}

The Python models need oscar-edge (numpy, OpenCV) importable by the server's Python backend, and
numpy < 2 there (the backend's stub is built against the NumPy 1.x ABI).

This repository was written and checked (config syntax, tensor names and shapes along the
ensemble) on a machine without a GPU; it has not been served there.
"""


# -- validation ------------------------------------------------------------------------------
def parse_config(path: Path):
    """The ``ModelConfig`` protobuf of a config.pbtxt (tritonclient's generated classes)."""
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2

    try:
        return text_format.Parse(path.read_text(), model_config_pb2.ModelConfig())
    except text_format.ParseError as exc:
        raise UserError(f"{path}: {exc}") from None


def validate_repository(repo: Path) -> List[str]:
    """Parse every config.pbtxt with Triton's own schema and check the names and shapes along
    each ensemble; returns one line per model. UserError on the first problem."""
    from tritonclient.grpc import model_config_pb2 as mc

    configs = {}
    for cfg in sorted(repo.glob("*/config.pbtxt")):
        c = parse_config(cfg)
        if c.name != cfg.parent.name:
            raise UserError(f"{cfg}: name {c.name!r} differs from its folder {cfg.parent.name!r}")
        if not any(p.is_dir() and p.name.isdigit() for p in cfg.parent.iterdir()):
            raise UserError(f"{cfg.parent}: no version folder")
        configs[c.name] = c
    if not configs:
        raise UserError(f"{repo}: no model (no */config.pbtxt)")

    def io(c):
        return ({t.name: (t.data_type, list(t.dims)) for t in c.input},
                {t.name: (t.data_type, list(t.dims)) for t in c.output})

    lines = []
    for c in configs.values():
        ins, outs = io(c)
        if c.platform == "ensemble":
            avail = dict(ins)
            for step in c.ensemble_scheduling.step:
                if step.model_name not in configs:
                    raise UserError(f"ensemble {c.name}: step model {step.model_name!r} missing")
                s_in, s_out = io(configs[step.model_name])
                if configs[step.model_name].max_batch_size < c.max_batch_size:
                    raise UserError(f"ensemble {c.name}: {step.model_name} batches fewer "
                                    f"than {c.max_batch_size}")
                for key, value in step.input_map.items():
                    if key not in s_in or value not in avail:
                        raise UserError(f"ensemble {c.name}: {step.model_name} input {key} <- "
                                        f"{value}: unknown name")
                    if avail[value][0] != s_in[key][0] or not _dims_fit(avail[value][1],
                                                                         s_in[key][1]):
                        raise UserError(f"ensemble {c.name}: {value} {avail[value]} does not fit "
                                        f"{step.model_name} input {key} {s_in[key]}")
                missing = set(s_in) - set(step.input_map)
                if missing:
                    raise UserError(f"ensemble {c.name}: {step.model_name} inputs {missing} "
                                    "not mapped")
                for key, value in step.output_map.items():
                    if key not in s_out:
                        raise UserError(f"ensemble {c.name}: {step.model_name} has no output "
                                        f"{key}")
                    avail[value] = s_out[key]
            for name in outs:
                if name not in avail:
                    raise UserError(f"ensemble {c.name}: output {name} is never produced")
        kind = c.platform or c.backend
        batching = "dynamic batching" if c.HasField("dynamic_batching") else "no dynamic batching"
        inst = ", ".join(f"{g.count}x {mc.ModelInstanceGroup.Kind.Name(g.kind)}"
                         for g in c.instance_group) or "-"
        lines.append(f"{c.name}: {kind}, max_batch_size {c.max_batch_size}, {batching}, "
                     f"instances {inst}, inputs {sorted(ins)}, outputs {sorted(outs)}")
    return lines


def _dims_fit(have: Sequence[int], want: Sequence[int]) -> bool:
    return len(have) == len(want) and all(a == b or a == -1 or b == -1
                                           for a, b in zip(have, want))


# -- command line ----------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    from ..backends.factory import PRECISIONS

    p = argparse.ArgumentParser(
        prog="oscar-edge export-triton",
        description="Write a Triton Inference Server model repository for oscar-edge (README, "
                    "\"Many cameras\"): a CPU model on the Python backend (default), or with "
                    "--gpu a TensorRT ensemble.")
    p.add_argument("--out", required=True, help="repository folder (created)")
    p.add_argument("--version", type=int, default=1, help="model version folder (default 1)")
    p.add_argument("--force", action="store_true", help="overwrite an existing version folder")
    p.add_argument("--max-batch", type=int, help="max_batch_size (default: CPU "
                   f"{DEFAULT_MAX_BATCH}, GPU the engine profile's max batch)")
    p.add_argument("--queue-delay-us", type=int, default=DEFAULT_QUEUE_DELAY_US,
                   help="dynamic batching: longest wait for more frames (default %(default)s)")
    p.add_argument("--no-dynamic-batching", action="store_true",
                   help="one execution per request (for comparison)")
    p.add_argument("--instances", type=int, default=1,
                   help="model instances (CPU processes, or engine copies on the GPU)")
    p.add_argument("--peak-refine", choices=("on", "off"), default=None,
                   help="peak refinement (default on; GPU: what the engine was built with)")
    cpu = p.add_argument_group("CPU repository")
    cpu.add_argument("--backend", choices=CPU_BACKENDS, default="onnxruntime",
                     help="inference inside the server (default %(default)s)")
    cpu.add_argument("--model", help="ONNX graph (default: the shipped graph of --precision)")
    cpu.add_argument("--precision", choices=PRECISIONS, help="shipped graph (default fp32)")
    cpu.add_argument("--threads", type=int, default=0,
                     help="inference threads per instance (default: the backend's own)")
    cpu.add_argument("--input-size", default="fit",
                     help="fixed network input WxH (multiples of 32), or fit (default)")
    cpu.add_argument("--ov-hint", choices=("f32", "bf16"), default="",
                     help="OpenVINO precision hint (default: as oscar-edge run chooses)")
    gpu = p.add_argument_group("GPU repository (--gpu)")
    gpu.add_argument("--gpu", action="store_true", help="write the TensorRT ensemble")
    gpu.add_argument("--engine", help="engine of export/build_engine.py (with its .json sidecar); "
                     "without it the repository is written without model.plan")
    gpu.add_argument("--plugin-lib", help="liboscar_edge_trt_plugins.so built for the server")
    gpu.add_argument("--cpu-instances", type=int, default=2,
                     help="instances of the Python pre / post models (default %(default)s)")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)

    def go() -> int:
        out = Path(args.out)
        delay = None if args.no_dynamic_batching else args.queue_delay_us
        if args.gpu:
            opt = GpuOptions(engine=args.engine, plugin_lib=args.plugin_lib, queue_delay_us=delay,
                             instances=args.instances, cpu_instances=args.cpu_instances,
                             peak_refine=args.peak_refine)
            if args.max_batch:
                opt.max_batch = args.max_batch
            files = write_gpu_repository(out, opt, args.version, args.force)
        else:
            if args.engine or args.plugin_lib:
                raise UserError("--engine / --plugin-lib are for --gpu")
            opt = CpuOptions(backend=args.backend, model=args.model, precision=args.precision,
                             instances=args.instances, threads=args.threads,
                             max_batch=args.max_batch or DEFAULT_MAX_BATCH, queue_delay_us=delay,
                             input_size=args.input_size, peak_refine=args.peak_refine or "on",
                             ov_hint=args.ov_hint)
            files = write_cpu_repository(out, opt, args.version, args.force)
        for f in files:
            print(f"wrote {f}")
        for line in validate_repository(out):
            print(f"checked {line}")
        if args.gpu:
            print("GPU repository: written and checked here, not served here (no GPU, no "
                  f"TensorRT); serve it with tritonserver as {out / 'README.md'} says")
        else:
            print(f"serve it: oscar-edge serve {out}")
        return 0

    return run_cli(go, prog="oscar-edge export-triton")


if __name__ == "__main__":
    sys.exit(main())
