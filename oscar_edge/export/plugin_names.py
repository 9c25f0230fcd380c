"""The OSCAR TensorRT plugins' names, version, namespace, attribute names and defaults, read from
``cpp_plugins/common/oscar_plugin_names.h`` (the ONE place they are written; the C++ plugins
include that header). The ONNX plugin graph, ``build_engine`` and the tests all use this parser.

The header keeps one value per line::

    #define OSCAR_<NAME> "string"        ->  str
    #define OSCAR_<NAME> 1000            ->  int
    #define OSCAR_<NAME> 0.05F           ->  float

The header is found in the repository checkout this package is imported from
(``<repo>/cpp_plugins/common/oscar_plugin_names.h``), or where ``$OSCAR_EDGE_PLUGIN_NAMES_H``
points (an installed wheel does not carry the C++ sources). Only the standard library here.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Optional, Union

from ..errors import UserError

ENV_VAR = "OSCAR_EDGE_PLUGIN_NAMES_H"
HEADER_RELPATH = Path("cpp_plugins") / "common" / "oscar_plugin_names.h"
_DEFINE = re.compile(r'^[ \t]*#define[ \t]+(OSCAR_\w+)[ \t]+(.+?)[ \t]*$', re.M)
_STRING = re.compile(r'^"((?:[^"\\]|\\.)*)"$')
_INT = re.compile(r"^[-+]?\d+$")
_FLOAT = re.compile(r"^[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?[fF]?$")

Value = Union[str, int, float]


def default_header_path() -> Path:
    """``$OSCAR_EDGE_PLUGIN_NAMES_H``, else the header of the checkout holding this package."""
    override = os.environ.get(ENV_VAR)
    if override:
        return Path(override)
    return Path(__file__).resolve().parents[2] / HEADER_RELPATH


def _value(name: str, text: str, path: Path) -> Value:
    m = _STRING.match(text)
    if m:
        return m.group(1)
    if _INT.match(text):
        return int(text)
    if _FLOAT.match(text):
        return float(text.rstrip("fF"))
    raise UserError(f"{path}: cannot parse the value of {name}: {text!r} (expected \"string\", "
                    "an integer or a float literal on one line)")


def parse_header(path: Union[str, os.PathLike, None] = None) -> Dict[str, Value]:
    """Every ``#define OSCAR_* value`` of the header: strings as str, integer literals as int,
    float literals (``0.05F``) as float.

    Raises:
        UserError: the header is missing, or a value is not on one line in a known form.
    """
    path = Path(path) if path is not None else default_header_path()
    if not path.is_file():
        raise UserError(f"plugin names header not found: {path} (it lives in the repository at "
                        f"{HEADER_RELPATH}; run from a checkout or set {ENV_VAR})")
    text = path.read_text(encoding="utf-8")
    out: Dict[str, Value] = {}
    for m in _DEFINE.finditer(text):
        if m.group(1) == "OSCAR_PLUGIN_NAMES_H":  # the include guard
            continue
        out[m.group(1)] = _value(m.group(1), m.group(2), path)
    return out


@dataclass(frozen=True)
class PluginNames:
    """The header's values, typed. ``decode_*`` belong to OscarDecode, ``nms_*`` to OscarNMS,
    ``peak_*`` to OscarPeakRefine (cpp_plugins/README.md, "OscarPeakRefine (rule 6)")."""

    namespace: str
    decode_name: str
    decode_version: str
    attr_score_threshold: str
    attr_topk: str
    default_score_threshold: float
    default_topk: int
    max_topk: int
    nms_name: str
    nms_version: str
    attr_iou_threshold: str
    attr_max_detections: str
    default_iou_threshold: float
    default_max_detections: int
    max_candidates: int
    peak_name: str
    peak_version: str
    attr_centroid: str
    default_centroid: int
    header: str = ""

    @classmethod
    def load(cls, path: Union[str, os.PathLike, None] = None) -> "PluginNames":
        path = Path(path) if path is not None else default_header_path()
        raw = parse_header(path)
        spec = {  # field: (macro, type)
            "namespace": ("OSCAR_PLUGIN_NAMESPACE", str),
            "decode_name": ("OSCAR_DECODE_PLUGIN_NAME", str),
            "decode_version": ("OSCAR_DECODE_PLUGIN_VERSION", str),
            "attr_score_threshold": ("OSCAR_DECODE_ATTR_SCORE_THRESHOLD", str),
            "attr_topk": ("OSCAR_DECODE_ATTR_TOPK", str),
            "default_score_threshold": ("OSCAR_DECODE_DEFAULT_SCORE_THRESHOLD", float),
            "default_topk": ("OSCAR_DECODE_DEFAULT_TOPK", int),
            "max_topk": ("OSCAR_DECODE_MAX_TOPK", int),
            "nms_name": ("OSCAR_NMS_PLUGIN_NAME", str),
            "nms_version": ("OSCAR_NMS_PLUGIN_VERSION", str),
            "attr_iou_threshold": ("OSCAR_NMS_ATTR_IOU_THRESHOLD", str),
            "attr_max_detections": ("OSCAR_NMS_ATTR_MAX_DETECTIONS", str),
            "default_iou_threshold": ("OSCAR_NMS_DEFAULT_IOU_THRESHOLD", float),
            "default_max_detections": ("OSCAR_NMS_DEFAULT_MAX_DETECTIONS", int),
            "max_candidates": ("OSCAR_NMS_MAX_CANDIDATES", int),
            "peak_name": ("OSCAR_PEAK_REFINE_PLUGIN_NAME", str),
            "peak_version": ("OSCAR_PEAK_REFINE_PLUGIN_VERSION", str),
            "attr_centroid": ("OSCAR_PEAK_REFINE_ATTR_CENTROID", str),
            "default_centroid": ("OSCAR_PEAK_REFINE_DEFAULT_CENTROID", int),
        }
        values = {}
        for field_name, (macro, kind) in spec.items():
            if macro not in raw:
                raise UserError(f"{path}: {macro} is not defined")
            v = raw[macro]
            if kind is float and isinstance(v, int):
                v = float(v)
            if not isinstance(v, kind):
                raise UserError(f"{path}: {macro} should be a {kind.__name__}, got {v!r}")
            values[field_name] = v
        return cls(header=str(path), **values)

    def plugins(self) -> Dict[str, str]:
        """{plugin name: version} of the three plugins (all in the one plugin library)."""
        return {self.decode_name: self.decode_version, self.nms_name: self.nms_version,
                self.peak_name: self.peak_version}


_CACHE: Dict[str, PluginNames] = {}


def plugin_names(path: Optional[Union[str, os.PathLike]] = None) -> PluginNames:
    """:class:`PluginNames` of the header (parsed once per path)."""
    key = str(Path(path) if path is not None else default_header_path())
    if key not in _CACHE:
        _CACHE[key] = PluginNames.load(key)
    return _CACHE[key]
