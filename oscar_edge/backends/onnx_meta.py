"""Read an ONNX file's ``metadata_props`` without the ``onnx`` package (no torch, no onnx).

The exported graphs record their preset, precision and preprocessing constants as ONNX
metadata (``oscar_edge.export.onnx_export``). ONNX Runtime exposes them; OpenVINO does not, and
the runtime footprint has no ``onnx``. The file is a protobuf ``ModelProto``; its
``metadata_props`` are field 14, each a ``StringStringEntryProto`` (key = field 1, value =
field 2). This walks the top-level message with the protobuf wire format and skips every other
field, so it reads nothing but those strings.
"""
from __future__ import annotations

import os
from typing import Dict, Iterator, Sequence, Tuple

_METADATA_PROPS = 14
_VARINT, _I64, _LEN, _I32 = 0, 1, 2, 5


class OnnxFormatError(ValueError):
    """The bytes are not a well-formed protobuf message."""


def _varint(buf: bytes, pos: int) -> Tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise OnnxFormatError("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise OnnxFormatError("varint longer than 10 bytes")


def _fields(buf: bytes) -> Iterator[Tuple[int, int, object]]:
    """(field number, wire type, value) of one message; LEN values are bytes."""
    pos, end = 0, len(buf)
    while pos < end:
        key, pos = _varint(buf, pos)
        field, wire = key >> 3, key & 7
        if field == 0:
            raise OnnxFormatError("field number 0")
        if wire == _VARINT:
            value, pos = _varint(buf, pos)
        elif wire == _I64:
            value, pos = buf[pos:pos + 8], pos + 8
        elif wire == _I32:
            value, pos = buf[pos:pos + 4], pos + 4
        elif wire == _LEN:
            n, pos = _varint(buf, pos)
            value, pos = buf[pos:pos + n], pos + n
        else:
            raise OnnxFormatError(f"unsupported wire type {wire}")
        if pos > end:
            raise OnnxFormatError("truncated field")
        yield field, wire, value


def read_metadata(path: str | os.PathLike) -> Dict[str, str]:
    """The ``metadata_props`` of an ONNX file as a dict (empty when it has none).

    Raises OnnxFormatError when the file is not a protobuf message."""
    with open(path, "rb") as fh:
        buf = fh.read()
    meta: Dict[str, str] = {}
    for field, wire, value in _fields(buf):
        if field == _METADATA_PROPS and wire == _LEN:
            key = val = ""
            for f2, w2, v2 in _fields(value):  # type: ignore[arg-type]
                if w2 == _LEN and f2 == 1:
                    key = bytes(v2).decode("utf-8", "replace")
                elif w2 == _LEN and f2 == 2:
                    val = bytes(v2).decode("utf-8", "replace")
            meta[key] = val
    return meta


def check_normalisation(metadata: Dict[str, str], path: str, error: type) -> None:
    """An exported graph records the preprocessing it was trained with (``mean``, ``std``);
    raise ``error`` when it differs from ``oscar_edge.preprocess``'s constants."""
    from ..preprocess import MEAN, STD

    for key, value in (("mean", MEAN), ("std", STD)):
        if key in metadata:
            try:
                ok = abs(float(metadata[key]) - value) <= 1e-6 * max(1.0, abs(value))
            except ValueError:
                ok = False
            if not ok:
                raise error(f"{path} was exported for {key} {metadata[key]}, but this "
                            f"oscar_edge preprocesses with {key} {value}")


def check_input_batch(x, static_shape: Sequence, path: str):
    """``x`` as an array after checking it is a (B, 3, H, W) batch with H, W multiples of 32
    that fits the graph's static dimensions (ints in ``static_shape``; None / names are
    dynamic). ValueError otherwise."""
    import numpy as np

    from ..preprocess import IN_CHANNELS, SIZE_DIVISOR

    x = np.asarray(x)
    if x.ndim != 4 or x.shape[1] != IN_CHANNELS:
        raise ValueError(f"expected a (B, {IN_CHANNELS}, H, W) batch, got shape {x.shape}")
    if x.shape[2] % SIZE_DIVISOR or x.shape[3] % SIZE_DIVISOR:
        raise ValueError(f"input height and width must be multiples of {SIZE_DIVISOR}, "
                         f"got {x.shape[2]}x{x.shape[3]}")
    for axis, dim in enumerate(static_shape):
        if isinstance(dim, int) and dim > 0 and x.shape[axis] != dim:
            raise ValueError(f"{path} has a static input shape {tuple(static_shape)}; "
                             f"got {tuple(x.shape)}")
    return x
