"""Expected failures: one clear line on stderr and exit code 2, no traceback."""
from __future__ import annotations

import sys
from typing import Callable


class UserError(Exception):
    """A problem with the user's input or environment, reported in one line."""


EXIT_USER_ERROR = 2
# Packages that only some tools need, and the extra that installs them.
OPTIONAL_MODULES = {"torch": "train", "matplotlib": "train", "onnx": "export",
                    "onnxruntime": "export", "onnxsim": "export", "modelopt": "export",
                    "onnx_graphsurgeon": "export", "onnxruntime_extensions": "export",
                    "openvino": "openvino", "tritonclient": "triton-client",
                    "pytriton": "serve"}


def _expected() -> tuple:
    from .data.annotations import AnnotationError
    from .preprocess import ImageReadError

    kinds = [UserError, AnnotationError, ImageReadError, FileNotFoundError, PermissionError]
    ckpt = sys.modules.get(__package__ + ".checkpoint")  # loaded only by torch tools
    if ckpt is not None:
        kinds.append(ckpt.CheckpointError)
    return tuple(kinds)


def run_cli(fn: Callable[[], int], prog: str = "oscar-edge") -> int:
    """Run ``fn``; turn expected errors into one line on stderr and exit code 2."""
    try:
        return fn()
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except ModuleNotFoundError as exc:
        extra = OPTIONAL_MODULES.get((exc.name or "").split(".")[0])
        if extra is None:
            raise
        print(f"{prog}: error: this command needs the '{exc.name}' package: "
              f"pip install 'oscar-edge[{extra}]'", file=sys.stderr)
        return EXIT_USER_ERROR
    except Exception as exc:
        if isinstance(exc, _expected()) or (isinstance(exc, KeyError) and "preset" in str(exc)):
            msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
            print(f"{prog}: error: {msg}", file=sys.stderr)
            return EXIT_USER_ERROR
        raise
