"""SIRST-V2 split lists and Pascal-VOC box annotations (numpy only, no torch).

Layout (the upstream ``open-sirst-v2`` repository)::

    <root>/mixed/<name>.png                 image
    <root>/annotations/bboxes/<name>.xml    Pascal-VOC XML, class ``Target``
    <root>/splits/<split>.txt               one image name per line

Box convention (spec sections 3.5 and 7): VOC corners are 1-based, so every box returned
here is ``(xmin - 1, ymin - 1, xmax - 1, ymax - 1)`` as float32 xyxy in 0-based pixel
coordinates of the original image. Width and height are ``x2 - x1`` and ``y2 - y1`` (no +1).
"""
from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import List, Union

import numpy as np

PathLike = Union[str, "os.PathLike[str]"]

CLASS_NAME: str = "Target"
IMAGE_DIR: str = "mixed"
BOX_DIR: str = os.path.join("annotations", "bboxes")
SPLIT_DIR: str = "splits"


class AnnotationError(ValueError):
    """An annotation file is malformed; the message names the file."""


def _strip_png(name: str) -> str:
    """'abc.png' -> 'abc'; any other name is returned unchanged (names may contain dots)."""
    return name[:-4] if name.lower().endswith(".png") else name


def read_split(root: PathLike, split: str) -> List[str]:
    """Image names listed in ``root/splits/<split>.txt``, in file order.

    Lines are stripped, blank lines skipped, and a trailing ``.png`` removed, so the result is
    a list of stems. ``split`` may be given with or without ``.txt``.

    Raises:
        FileNotFoundError: the split file is missing; the message lists the splits available.
    """
    split = split[:-4] if split.endswith(".txt") else split
    split_dir = os.path.join(os.fspath(root), SPLIT_DIR)
    path = os.path.join(split_dir, split + ".txt")
    if not os.path.isfile(path):
        available = []
        if os.path.isdir(split_dir):
            available = sorted(f[:-4] for f in os.listdir(split_dir) if f.endswith(".txt"))
        listing = ", ".join(available) if available else f"none (no split files in {split_dir})"
        raise FileNotFoundError(f"split file not found: {path}; available splits: {listing}")
    with open(path, "r", encoding="utf-8") as fh:
        return [_strip_png(line.strip()) for line in fh if line.strip()]


def _coord(bndbox: ET.Element, tag: str, xml_path: str) -> float:
    """One finite numeric coordinate of a ``<bndbox>``; AnnotationError otherwise."""
    node = bndbox.find(tag)
    if node is None or node.text is None or not node.text.strip():
        raise AnnotationError(f"{xml_path}: <bndbox> has no <{tag}>")
    try:
        value = float(node.text.strip())
    except ValueError:
        raise AnnotationError(
            f"{xml_path}: non-numeric <{tag}> {node.text.strip()!r}") from None
    if not np.isfinite(value):
        raise AnnotationError(f"{xml_path}: non-finite <{tag}> {node.text.strip()!r}")
    return value


def parse_voc(xml_path: PathLike) -> np.ndarray:
    """Boxes of class ``Target`` in a Pascal-VOC XML file.

    Returns:
        (N, 4) float32 xyxy, VOC corners minus 1 (0-based). Objects of other classes and
        objects without ``<bndbox>`` (how SIRST-V2 marks a background image) are skipped, so
        a background image gives a (0, 4) array. Order is the file's object order (the
        NoCoAP matching rule depends on it).

    Raises:
        FileNotFoundError: the file does not exist.
        AnnotationError: XML parse error, missing / non-numeric / non-finite coordinate, or
            xmax < xmin / ymax < ymin. The message names the file.
    """
    xml_path = os.fspath(xml_path)
    if not os.path.isfile(xml_path):
        raise FileNotFoundError(f"annotation file not found: {xml_path}")
    try:
        tree = ET.parse(xml_path)
    except ET.ParseError as exc:
        raise AnnotationError(f"{xml_path}: malformed XML ({exc})") from None
    boxes = []
    for obj in tree.getroot().iter("object"):
        name = obj.findtext("name", default="").strip()
        bndbox = obj.find("bndbox")
        if name != CLASS_NAME or bndbox is None:
            continue
        x1, y1, x2, y2 = (_coord(bndbox, t, xml_path) for t in ("xmin", "ymin", "xmax", "ymax"))
        if x2 < x1 or y2 < y1:
            raise AnnotationError(
                f"{xml_path}: inverted box (xmin={x1:g}, ymin={y1:g}, xmax={x2:g}, ymax={y2:g})")
        boxes.append((x1 - 1.0, y1 - 1.0, x2 - 1.0, y2 - 1.0))
    return np.asarray(boxes, dtype=np.float32).reshape(-1, 4)


@dataclass
class Sample:
    """One annotated image: its name (stem), image path and (N, 4) float32 xyxy boxes."""

    name: str
    image_path: str
    boxes: np.ndarray = field(repr=False)


def load_samples(root: PathLike, split: str) -> List[Sample]:
    """Samples of a split in split-file order, boxes parsed with :func:`parse_voc`.

    Raises:
        FileNotFoundError: missing split file, image or annotation (the path is named).
        AnnotationError: a malformed annotation (the file is named).
    """
    root = os.fspath(root)
    samples = []
    for name in read_split(root, split):
        image_path = os.path.join(root, IMAGE_DIR, name + ".png")
        if not os.path.isfile(image_path):
            raise FileNotFoundError(f"image listed in split {split!r} not found: {image_path}")
        boxes = parse_voc(os.path.join(root, BOX_DIR, name + ".xml"))
        samples.append(Sample(name=name, image_path=image_path, boxes=boxes))
    return samples
