"""PyTorch checkpoint -> simplified ONNX raw-head graph with dynamic batch / height / width.

    python export/export_onnx.py [--checkpoint runs/x/best.pt] --out model.onnx [--opset 17]

The graph:
* input ``image``: (N, 3, H, W) float32, the output of ``oscar_edge.preprocess.prepare``
  (grey replicated to 3 channels, (x - MEAN) / STD, zero-padded). N, H and W are dynamic;
  H and W must be multiples of 32 (the backbone downsamples by 32 and the FPN adds the
  upsampled level to the finer one, so other sizes fail inside the graph or misalign).
* outputs ``oscar_edge.postprocess.OUTPUT_NAMES``: refine_score / refine_bbox / refine_noco
  on the stride-4 grid (N, c, H/4, W/4), coarse_score / coarse_bbox on the stride-8 grid
  (N, c, H/8, W/8). No decode and no NMS in the graph (the raw head, so INT8 / FP16 tools can
  work on it and a decode/NMS plugin can be appended later).
* ``metadata_props``: preset, precision, mean, std, size divisor, fit size, channels, output
  names, oscar-edge version, opset and the source checkpoint's SHA-256.

Export uses the TorchScript exporter (``dynamo=False``), then onnxsim with fixed *test*
shapes only (the dims stay symbolic), then ``onnx.checker.check_model``, then an ONNX
Runtime vs PyTorch comparison at a size different from the traced one.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from .. import __version__
from ..errors import UserError, run_cli
from ..hashing import file_sha256
from ..postprocess import COARSE_STRIDE, OUTPUT_NAMES, REFINE_STRIDE
from ..preprocess import FIT_SIZE, IN_CHANNELS, MEAN, SIZE_DIVISOR, STD

INPUT_NAME = "image"
DEFAULT_OPSET = 17
MIN_OPSET, MAX_OPSET = 13, 20  # 13: AutoCast's minimum; 20: torch's TorchScript exporter max
TRACE_SHAPE = (2, IN_CHANNELS, 256, 320)   # batch 2 and H != W so nothing gets specialised
SIMPLIFY_TEST_SHAPE = (1, IN_CHANNELS, 512, 640)
VERIFY_SHAPE = (1, IN_CHANNELS, 320, 448)  # neither the traced nor the simplify size
VERIFY_ATOL = 1e-4
_P2_OUTPUTS = ("refine_score", "refine_bbox", "refine_noco")


@dataclass
class ExportResult:
    path: Path
    preset: str
    opset: int
    metadata: Dict[str, str]
    simplified: bool
    max_abs_diff: Dict[str, float] = field(default_factory=dict)


def dynamic_axes() -> Dict[str, Dict[int, str]]:
    """Symbolic dims: batch, height, width of the input and the two output grids."""
    axes = {INPUT_NAME: {0: "batch", 2: "height", 3: "width"}}
    for name in OUTPUT_NAMES:
        s = REFINE_STRIDE if name in _P2_OUTPUTS else COARSE_STRIDE
        axes[name] = {0: "batch", 2: f"height_div{s}", 3: f"width_div{s}"}
    return axes


def export_metadata(preset: str, opset: int, checkpoint_sha256: str,
                    precision: str = "fp32") -> Dict[str, str]:
    """The ``metadata_props`` of an exported graph (all strings)."""
    return {
        "preset": preset,
        "precision": precision,
        "mean": repr(float(MEAN)),
        "std": repr(float(STD)),
        "size_divisor": str(SIZE_DIVISOR),
        "fit_size": f"{FIT_SIZE[0]},{FIT_SIZE[1]}",
        "in_channels": str(IN_CHANNELS),
        "input_name": INPUT_NAME,
        "input_layout": "NCHW float32; grey replicated to 3 channels, (x - mean) / std, "
                        "zero-padded bottom/right to multiples of size_divisor",
        "output_names": ",".join(OUTPUT_NAMES),
        "oscar_edge_version": __version__,
        "opset": str(opset),
        "source_checkpoint_sha256": checkpoint_sha256,
    }


def set_metadata(model, props: Dict[str, str]) -> None:
    """Set (replace) ``metadata_props`` entries of an onnx.ModelProto in place."""
    keep = [p for p in model.metadata_props if p.key not in props]
    del model.metadata_props[:]
    for p in keep:
        model.metadata_props.add(key=p.key, value=p.value)
    for k, v in props.items():
        model.metadata_props.add(key=k, value=str(v))


def get_metadata(model) -> Dict[str, str]:
    return {p.key: p.value for p in model.metadata_props}


def is_dynamic(model, name: str = INPUT_NAME) -> Tuple[bool, List]:
    """(all of N, H, W symbolic, the dims) for graph input ``name``."""
    for vi in model.graph.input:
        if vi.name == name:
            dims = [d.dim_param if d.dim_param else d.dim_value
                    for d in vi.type.tensor_type.shape.dim]
            return all(isinstance(dims[i], str) and dims[i] for i in (0, 2, 3)), dims
    return False, []


def _torch_to_onnx_bytes(model, opset: int) -> Tuple[bytes, Dict[str, int]]:
    """TorchScript export at TRACE_SHAPE; also returns each output's channel count."""
    import torch

    g = torch.Generator().manual_seed(0)
    dummy = torch.randn(*TRACE_SHAPE, generator=g)
    buf = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings():
        # resize_like compares the two grids in Python while tracing; the 2x branch it records
        # holds for every input that is a multiple of 32, which the graph requires anyway.
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning,
                                module=r"oscar_edge\.models\.resample")
        channels = {n: int(o.shape[1]) for n, o in zip(OUTPUT_NAMES, model(dummy))}
        torch.onnx.export(
            model, (dummy,), buf, input_names=[INPUT_NAME], output_names=list(OUTPUT_NAMES),
            opset_version=opset, dynamic_axes=dynamic_axes(), do_constant_folding=True,
            dynamo=False,
        )
    return buf.getvalue(), channels


def fix_output_channels(model, channels: Dict[str, int]) -> None:
    """Write the known channel counts into the output shapes (shape inference leaves a
    symbol where a score is the product of a logit and a broadcast modulation map)."""
    for vi in model.graph.output:
        if vi.name in channels:
            dim = vi.type.tensor_type.shape.dim[1]
            dim.ClearField("dim_param")
            dim.dim_value = channels[vi.name]


def drop_tool_metadata(model, prefix: str = "onnxsim.") -> None:
    """Remove the diagnostic ``metadata_props`` a tool leaves (onnxsim lists removed nodes)."""
    keep = [(p.key, p.value) for p in model.metadata_props if not p.key.startswith(prefix)]
    del model.metadata_props[:]
    for k, v in keep:
        model.metadata_props.add(key=k, value=v)


def simplify(model):
    """onnxsim with fixed test shapes; the graph's dims stay symbolic. Returns (model, ok)."""
    import onnxsim

    shape = list(SIMPLIFY_TEST_SHAPE)
    with open(os.devnull, "w") as null, contextlib.redirect_stdout(null):  # "Checking 0/1..."
        simplified, ok = onnxsim.simplify(model, check_n=1, test_input_shapes={INPUT_NAME: shape},
                                          certify=False)
    return simplified, bool(ok)


def onnx_outputs(path: str | os.PathLike, x: np.ndarray) -> Tuple[np.ndarray, ...]:
    from ..backends.ort_backend import OrtBackend

    return OrtBackend(path)(x)


def torch_outputs(model, x: np.ndarray) -> Tuple[np.ndarray, ...]:
    import torch

    with torch.no_grad():
        return tuple(o.float().numpy() for o in model.eval()(torch.from_numpy(x)))


def max_abs_diffs(a: Sequence[np.ndarray], b: Sequence[np.ndarray]) -> Dict[str, float]:
    """Per output name, max |a - b| (inf on a shape mismatch)."""
    out = {}
    for name, x, y in zip(OUTPUT_NAMES, a, b):
        out[name] = (float(np.max(np.abs(x.astype(np.float64) - y.astype(np.float64))))
                     if x.shape == y.shape else float("inf"))
    return out


def export_onnx(checkpoint: Optional[str | os.PathLike] = None,
                out: str | os.PathLike = "model.onnx", opset: int = DEFAULT_OPSET,
                do_simplify: bool = True, verify: bool = True) -> ExportResult:
    """Export ``checkpoint`` (None = the shipped weights) to ``out``; see the module docstring.

    Raises UserError / CheckpointError for bad arguments or checkpoints, RuntimeError when
    the exported graph disagrees with PyTorch by more than VERIFY_ATOL.
    """
    import onnx

    from ..checkpoint import SHIPPED_WEIGHTS, load_model

    if not (MIN_OPSET <= int(opset) <= MAX_OPSET):
        raise UserError(f"--opset must be between {MIN_OPSET} and {MAX_OPSET}, got {opset}")
    out = Path(out)
    if out.suffix.lower() != ".onnx":
        raise UserError(f"output file must end in .onnx: {out}")
    if out.exists() and out.is_dir():
        raise UserError(f"output path is a folder: {out}")
    ckpt_path = Path(checkpoint) if checkpoint is not None else SHIPPED_WEIGHTS
    model, _meta = load_model(ckpt_path)
    preset = model.preset.name

    from ..models.fuse import fold_batchnorm

    # BatchNorm folded into the convolutions here, not left to the exporter: the graph has no
    # BatchNormalization node whatever the torch / onnxsim versions do (GroupNorm stays).
    data, channels = _torch_to_onnx_bytes(fold_batchnorm(model), int(opset))
    graph = onnx.load_from_string(data)
    simplified = False
    if do_simplify:
        graph, simplified = simplify(graph)
        if not simplified:
            raise RuntimeError("onnxsim could not verify the simplified graph against the "
                               "original; re-run with --no-simplify to keep the raw export")
        drop_tool_metadata(graph)
    fix_output_channels(graph, channels)
    set_metadata(graph, export_metadata(preset, int(opset), file_sha256(ckpt_path)))
    graph.doc_string = f"oscar-edge {__version__} raw-head graph of preset {preset}"
    onnx.checker.check_model(graph, full_check=True)
    dyn, dims = is_dynamic(graph)
    if not dyn:
        raise RuntimeError(f"exported input {INPUT_NAME!r} lost its dynamic dims: {dims}")

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    onnx.save(graph, str(tmp))
    os.replace(tmp, out)

    result = ExportResult(out, preset, int(opset), get_metadata(graph), simplified)
    if verify:
        x = np.random.default_rng(0).standard_normal(VERIFY_SHAPE).astype(np.float32)
        result.max_abs_diff = max_abs_diffs(onnx_outputs(out, x), torch_outputs(model, x))
        worst = max(result.max_abs_diff.values())
        if not worst <= VERIFY_ATOL:
            raise RuntimeError(f"ONNX Runtime and PyTorch disagree on {out}: max abs diff "
                               f"{worst:.3g} > {VERIFY_ATOL:g} ({result.max_abs_diff})")
    return result


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="export_onnx.py",
        description="Export an oscar-edge checkpoint to an ONNX raw-head graph (dynamic "
                    "batch/height/width; height and width must be multiples of 32).")
    p.add_argument("--checkpoint", help="model checkpoint (.pt); default: the shipped model")
    p.add_argument("--out", default="model.onnx", help="output .onnx (default %(default)s)")
    p.add_argument("--opset", type=int, default=DEFAULT_OPSET,
                   help=f"ONNX opset, {MIN_OPSET}..{MAX_OPSET} (default %(default)s)")
    p.add_argument("--no-simplify", action="store_true", help="skip onnxsim")
    p.add_argument("--no-verify", action="store_true",
                   help="skip the ONNX Runtime vs PyTorch comparison")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    return run_cli(lambda: _main(args), prog="export_onnx")


def _main(args: argparse.Namespace) -> int:
    from ..checkpoint import CheckpointError

    try:
        r = export_onnx(args.checkpoint, args.out, args.opset,
                        do_simplify=not args.no_simplify, verify=not args.no_verify)
    except CheckpointError:
        raise  # run_cli: one line, exit 2
    except RuntimeError as exc:  # a graph that fails its own checks: exit 1
        print(f"export_onnx: error: {str(exc).splitlines()[0]}", file=sys.stderr)
        return 1
    size_mb = r.path.stat().st_size / 1e6
    print(f"wrote {r.path} ({size_mb:.2f} MB): preset {r.preset}, opset {r.opset}, "
          f"{'simplified' if r.simplified else 'not simplified'}, input {INPUT_NAME} "
          f"[N,3,H,W] float32 (H, W multiples of {SIZE_DIVISOR})")
    if r.max_abs_diff:
        print("ONNX Runtime vs PyTorch at {}x{}: max abs diff {}".format(
            VERIFY_SHAPE[2], VERIFY_SHAPE[3],
            json.dumps({k: float(f"{v:.3g}") for k, v in r.max_abs_diff.items()})))
    return 0


if __name__ == "__main__":
    sys.exit(main())
