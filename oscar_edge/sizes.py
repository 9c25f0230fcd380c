"""Image and network sizes written as text: the one parser of the project (no torch).

Users write sizes as ``WIDTHxHEIGHT`` (``640x512``, the way cameras are specified); a few
options that predate that convention take ``HEIGHTxWIDTH`` and say so in their help. Both go
through :func:`parse_size`, which returns the pair in the order the caller asks for:

    parse_size("640x512")                      -> (640, 512)   # (width, height)
    parse_size("640x512", order="hw_out")      -> (512, 640)   # (height, width)
    parse_size("512x640", text_order="HxW")    -> (640, 512)   # text is height x width
    parse_size("640x500", multiple=32)         -> ValueError (not multiples of 32)

Errors are ``ValueError`` with a one-line message naming the text; command-line tools wrap it
in their own error type (``argparse_type`` does so for argparse).
"""
from __future__ import annotations

import argparse
import re
from typing import Callable, Optional, Sequence, Tuple

_SIZE_RE = re.compile(r"\s*(\d+)\s*[xX*]\s*(\d+)\s*")
TEXT_ORDERS = ("WxH", "HxW")
OUT_ORDERS = ("wh_out", "hw_out")


def parse_size(text: str, text_order: str = "WxH", order: str = "wh_out",
               multiple: Optional[int] = None, name: str = "size") -> Tuple[int, int]:
    """Parse ``"AxB"`` into a positive integer pair.

    Args:
        text: the size as written, e.g. ``"640x512"`` (``x``, ``X`` or ``*`` between).
        text_order: how the text is written, ``"WxH"`` (default) or ``"HxW"``.
        order: what is returned, ``"wh_out"`` -> (width, height) or ``"hw_out"`` ->
            (height, width).
        multiple: when given, both sides must be multiples of it (network inputs: 32).
        name: how the value is called in error messages (``"--input-size"``).
    """
    if text_order not in TEXT_ORDERS or order not in OUT_ORDERS:
        raise ValueError(f"text_order must be one of {TEXT_ORDERS} and order one of {OUT_ORDERS}")
    m = _SIZE_RE.fullmatch(str(text))
    example = "640x512 (width x height)" if text_order == "WxH" else "512x640 (height x width)"
    if not m:
        raise ValueError(f"{name} must look like {example}, got {text!r}")
    a, b = int(m.group(1)), int(m.group(2))
    w, h = (a, b) if text_order == "WxH" else (b, a)
    if w <= 0 or h <= 0:
        raise ValueError(f"{name} {text}: width and height must be positive")
    if multiple and (w % multiple or h % multiple):
        raise ValueError(f"{name} {text}: width and height must be positive multiples of "
                         f"{multiple}")
    return (w, h) if order == "wh_out" else (h, w)


def size_label(hw: Sequence[int]) -> str:
    """(height, width) -> ``"WxH"`` (the way sizes are printed everywhere)."""
    return f"{int(hw[1])}x{int(hw[0])}"


def argparse_type(**kwargs) -> Callable[[str], Tuple[int, int]]:
    """An argparse ``type=`` that parses with :func:`parse_size` (same keyword arguments) and
    turns its ValueError into argparse's one-line usage error."""
    def convert(text: str) -> Tuple[int, int]:
        try:
            return parse_size(text, **kwargs)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    return convert
