"""Metrics and annotation parsing on cases whose answers are known by hand."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from oscar_edge.data.annotations import (AnnotationError, Sample, load_samples, parse_voc,
                                         read_split)
from oscar_edge.metrics import (box_ap50, evaluate_detections, mnoco_ap, noco_ap, noco_key,
                                noco_map, pd_fa, plot_pr_curves, voc_ap)
from oscar_edge.preprocess import ImageReadError, read_grey

# ----------------------------------------------------------------------------- fixtures

BLOB_CENTRE = (30, 20)  # (row, col) of the synthetic target's brightest pixel
BLOB_BOX = np.array([[17, 27, 23, 33]], dtype=np.float32)  # xyxy, h = w = 6, centre (20, 30)


def blob_image(shape=(64, 64), centre=BLOB_CENTRE, background=20, amplitude=200,
               sigma=1.5) -> np.ndarray:
    """(H, W) uint8: flat background with a Gaussian blob peaking at ``centre``."""
    rows, cols = np.mgrid[:shape[0], :shape[1]]
    d2 = (rows - centre[0]) ** 2 + (cols - centre[1]) ** 2
    return np.round(background + amplitude * np.exp(-d2 / (2 * sigma ** 2))).astype(np.uint8)


def box_map(shape, boxes) -> np.ndarray:
    """(H, W) float32 hand 'NoCo map': 1.0 on every pixel of each box (inclusive), else 0."""
    m = np.zeros(shape, dtype=np.float32)
    for x1, y1, x2, y2 in np.asarray(boxes, dtype=int):
        m[y1:y2 + 1, x1:x2 + 1] = 1.0
    return m


# ----------------------------------------------------------------------------- NoCo map

def test_noco_map_of_blob_peaks_at_centre_and_is_zero_outside_window():
    grey = blob_image()
    m = noco_map(grey, BLOB_BOX)
    assert m.shape == grey.shape and m.dtype == np.float32
    assert np.unravel_index(int(np.argmax(m)), m.shape) == BLOB_CENTRE
    assert m[BLOB_CENTRE] > 0.99
    # Window: rows y1-h .. y2+h-1 = 21..38, cols x1-w .. x2+w-1 = 11..28.
    outside = np.ones_like(m, dtype=bool)
    outside[21:39, 11:29] = False
    assert np.all(m[outside] == 0.0)
    assert m[21:39, 11:29].min() == 0.0  # min-max normalised within the window
    assert m[21:39, 11:29].max() < 1.0   # ... with +0.001 in the denominator


def test_noco_map_gaussian_is_cropped_by_clip_offset():
    # Box at the top-left corner: (0, 0, 4, 4), h = w = 4, window rows/cols -4..7 clipped to
    # 0..7, so the surviving Gaussian is rows/cols 4..11 of linspace(-1.5, 1.5, 12).
    # Window pixels are all 100 except one 0 at (7, 7): contrast is 100 / 100.01 everywhere
    # but there, so the map is proportional to the cropped Gaussian (ratios are exact).
    grey = np.full((20, 20), 100, dtype=np.uint8)
    grey[7, 7] = 0
    m = noco_map(grey, np.array([[0, 0, 4, 4]]))
    axis = np.linspace(-1.5, 1.5, 12)[4:12]
    g = np.exp(-(axis[:, None] ** 2 + axis[None, :] ** 2) / 2)
    assert m[7, 7] == 0.0
    assert m[0, 0] / m[0, 1] == pytest.approx(g[0, 0] / g[0, 1], rel=1e-5)
    assert m[3, 2] / m[0, 0] == pytest.approx(g[3, 2] / g[0, 0], rel=1e-5)
    assert np.all(m[8:, :] == 0) and np.all(m[:, 8:] == 0)


def test_noco_map_later_boxes_overwrite():
    grey = blob_image(shape=(64, 64))
    b1 = np.array([17, 27, 23, 33])
    b2 = np.array([20, 30, 26, 36])  # overlapping windows
    both = noco_map(grey, np.stack([b1, b2]))
    only2 = noco_map(grey, b2[None])
    np.testing.assert_array_equal(both[24:42, 14:32], only2[24:42, 14:32])


def test_noco_map_degenerate_boxes_are_safe():
    grey = blob_image()
    # Zero width / height: widened to one pixel, map still peaks at the target.
    m = noco_map(grey, np.array([[20, 30, 20, 30]]))
    assert np.unravel_index(int(np.argmax(m)), m.shape) == BLOB_CENTRE
    # The one-pixel box (20, 30, 21, 31) has a 3 x 3 window: rows 29..31, cols 19..21.
    outside = np.ones_like(m, dtype=bool)
    outside[29:32, 19:22] = False
    assert np.all(m[outside] == 0.0) and m[BLOB_CENTRE] > 0.9
    # Inverted or fully outside boxes are ignored; no boxes -> all zero.
    assert not noco_map(grey, np.array([[30, 30, 20, 20]])).any()
    assert not noco_map(grey, np.array([[100, 100, 110, 110]])).any()
    assert not noco_map(grey, np.zeros((0, 4))).any()


# ----------------------------------------------------------------------------- voc_ap

@pytest.mark.parametrize("recall, precision, expected", [
    ([0.5, 1.0], [1.0, 0.5], 0.5 * 1.0 + 0.5 * 0.5),
    # Envelope: precision 0.4 at recall 0.5 is raised to the later 0.8.
    ([0.5, 1.0], [0.4, 0.8], 0.8),
    # A repeated recall (FP) step: envelope 1 on [0, .5], 2/3 on [.5, 1].
    ([0.5, 0.5, 1.0], [1.0, 0.5, 2 / 3], 0.5 + 0.5 * 2 / 3),
    ([0.5], [1.0], 0.5),   # recall never reaches 1: the sentinel adds no area
    ([0.0, 0.0], [0.0, 0.0], 0.0),
    ([], [], 0.0),
])
def test_voc_ap_hand_curves(recall, precision, expected):
    assert voc_ap(np.array(recall), np.array(precision)) == pytest.approx(expected, abs=1e-12)


# ----------------------------------------------------------------------------- NoCoAP

def test_perfect_detection_scores_one():
    grey = blob_image()
    maps = [noco_map(grey, BLOB_BOX), np.zeros((48, 40), np.float32)]
    gts = [BLOB_BOX, np.zeros((0, 4), np.float32)]  # second image: background, no detection
    dets = [(BLOB_BOX.copy(), np.array([0.9])), (np.zeros((0, 4)), np.zeros(0))]
    r = mnoco_ap(dets, gts, maps)
    assert r["mNoCoAP"] == 1.0
    assert all(r[noco_key(t / 10)] == 1.0 for t in range(1, 10))
    assert box_ap50(dets, gts) == 1.0


def test_only_false_positives_score_zero():
    grey = blob_image()
    maps = [noco_map(grey, BLOB_BOX), np.zeros((48, 40), np.float32)]
    gts = [BLOB_BOX, np.zeros((0, 4))]
    dets = [
        (np.array([[40, 40, 46, 46]]), np.array([0.9])),  # far from the target
        (np.array([[5, 5, 10, 10]]), np.array([0.95])),   # on an image without targets
    ]
    assert mnoco_ap(dets, gts, maps)["mNoCoAP"] == 0.0
    assert box_ap50(dets, gts) == 0.0


def test_centre_inside_box_but_low_noco_is_false_positive():
    # The box's top-left corner pixel has NoCo 0 (window minimum region), so a detection
    # centred there is inside the box (inclusive bounds) but fails every threshold.
    grey = blob_image()
    m = noco_map(grey, BLOB_BOX)
    assert m[27, 17] < 0.1
    dets = [(np.array([[16, 26, 18, 28]]), np.array([0.9]))]  # centre (17, 27)
    assert noco_ap(dets, [BLOB_BOX], [m], 0.1) == 0.0


def test_two_images_hand_ap():
    # Image A has GTs g1, g2; image B has g3: 3 GTs in all. Detections by score:
    #   0.9 on g1 (TP), 0.8 in B's background (FP), 0.7 on g3 (TP).
    # Cumulative: R = 1/3, 1/3, 2/3; P = 1, 1/2, 2/3. Envelope: 1 on (0, 1/3], 2/3 on
    # (1/3, 2/3], nothing beyond. AP = 1/3 * 1 + 1/3 * 2/3 = 5/9.
    g_a = np.array([[5, 5, 11, 11], [25, 25, 31, 31]], dtype=np.float32)
    g_b = np.array([[10, 20, 16, 26]], dtype=np.float32)
    dets = [
        (np.array([[5, 5, 11, 11]]), np.array([0.9])),
        (np.array([[10, 20, 16, 26], [30, 2, 36, 8]]), np.array([0.7, 0.8])),
    ]
    maps = [box_map((40, 40), g_a), box_map((40, 40), g_b)]
    assert noco_ap(dets, [g_a, g_b], maps, 0.5) == pytest.approx(5 / 9)
    assert box_ap50(dets, [g_a, g_b]) == pytest.approx(5 / 9)


def test_duplicates_and_first_containing_box_rule():
    # Two GT boxes that both contain (15, 15); g1 is first in annotation order.
    g = np.array([[10, 10, 20, 20], [12, 12, 22, 22]], dtype=np.float32)
    m = np.ones((40, 40), dtype=np.float32)
    # Det 1 (0.9) centre (15, 15) matches g1. Det 2 (0.8) has the same centre: its first
    # containing box g1 is taken, so it is FP even though g2 also contains it and is free.
    # Det 3 (0.7) centre (21, 21) lies only in g2: TP.
    dets = [(np.array([[14, 14, 16, 16], [13, 13, 17, 17], [20, 20, 22, 22]]),
             np.array([0.9, 0.8, 0.7]))]
    # R = 1/2, 1/2, 1; P = 1, 1/2, 2/3 -> AP = 1/2 * 1 + 1/2 * 2/3 = 5/6.
    assert noco_ap(dets, [g], [m], 0.5) == pytest.approx(5 / 6)


def test_centre_rounding_half_to_even_and_edge_clamp():
    # NoCo map 1 only on row 10 / column 12; detection centres at .5 use numpy's round
    # (half to even): 10.5 -> 10, 11.5 -> 12.
    m = np.zeros((20, 20), dtype=np.float32)
    m[10, :] = 1.0
    g = np.array([[0, 0, 19, 19]], dtype=np.float32)
    det_105 = [(np.array([[5, 10, 6, 11]]), np.array([1.0]))]  # cy = 10.5 -> row 10
    det_95 = [(np.array([[5, 9, 6, 10]]), np.array([1.0]))]    # cy = 9.5  -> row 10
    det_115 = [(np.array([[5, 11, 6, 12]]), np.array([1.0]))]  # cy = 11.5 -> row 12
    assert noco_ap(det_105, [g], [m], 0.5) == 1.0
    assert noco_ap(det_95, [g], [m], 0.5) == 1.0
    assert noco_ap(det_115, [g], [m], 0.5) == 0.0
    # A centre equal to the height / width reads the last row / column.
    m2 = np.zeros((20, 20), dtype=np.float32)
    m2[19, 19] = 1.0
    g2 = np.array([[15, 15, 20, 20]], dtype=np.float32)
    det_edge = [(np.array([[19, 19, 21, 21]]), np.array([1.0]))]  # centre (20, 20)
    assert noco_ap(det_edge, [g2], [m2], 0.5) == 1.0


def test_mnoco_ap_is_mean_of_thresholds():
    m = np.full((20, 20), 0.55, dtype=np.float32)  # passes T = 0.1 .. 0.5 only
    g = np.array([[5, 5, 10, 10]], dtype=np.float32)
    dets = [(g.copy(), np.array([1.0]))]
    r = mnoco_ap(dets, [g], [m])
    assert [r[noco_key(t / 10)] for t in range(1, 10)] == [1.0] * 5 + [0.0] * 4
    assert r["mNoCoAP"] == pytest.approx(5 / 9)


# ----------------------------------------------------------------------------- box AP50, Pd/Fa

def test_box_ap50_iou_threshold_without_plus_one():
    g = [np.array([[0, 0, 10, 10]], dtype=np.float32)]
    # IoU exactly 0.5 (50 / 100): TP (>=).
    assert box_ap50([(np.array([[0, 0, 10, 5]]), np.array([1.0]))], g) == 1.0
    # IoU 0.46 continuous; the legacy +1 convention would give 11*5.6/121 = 0.51 (TP).
    assert box_ap50([(np.array([[0, 0, 10, 4.6]]), np.array([1.0]))], g) == 0.0


def test_box_ap50_duplicate_and_order():
    g = [np.array([[0, 0, 10, 10]], dtype=np.float32)]
    # FP (0.9, no overlap) ranked above the TP (0.8): R = 0, 1; P = 0, 1/2 -> AP 0.5.
    dets = [(np.array([[30, 30, 40, 40], [0, 0, 10, 10]]), np.array([0.9, 0.8]))]
    assert box_ap50(dets, g) == pytest.approx(0.5)
    # Duplicate after the TP: R = 1, 1; P = 1, 1/2 -> AP 1.0.
    dets = [(np.array([[0, 0, 10, 10], [1, 0, 10, 10]]), np.array([0.9, 0.8]))]
    assert box_ap50(dets, g) == pytest.approx(1.0)


def test_pd_fa_hand_counts():
    gts = [np.array([[10, 10, 20, 20], [50, 50, 60, 60]], dtype=np.float32),
           np.zeros((0, 4), dtype=np.float32)]
    dets = [
        (np.array([[12, 12, 16, 16],    # centre (14, 14) in A, 0.9
                   [18, 18, 22, 22],    # centre (20, 20) on A's corner (inclusive), 0.8
                   [70, 70, 74, 74],    # centre in no box: false alarm, 0.7
                   [53, 53, 57, 57]]),  # in B but below the threshold, 0.2
         np.array([0.9, 0.8, 0.7, 0.2])),
        (np.array([[1, 1, 3, 3]]), np.array([0.6])),  # background image: false alarm
    ]
    sizes = [(100, 100), (50, 200)]  # 0.02 megapixels in all
    r = pd_fa(dets, gts, 0.5, sizes)
    assert r["Pd"] == pytest.approx(0.5)
    assert r["num_false_alarms"] == 2
    assert r["Fa_per_image"] == pytest.approx(1.0)
    assert r["Fa_per_MP"] == pytest.approx(100.0)
    assert pd_fa(dets, gts, 0.1, sizes)["Pd"] == pytest.approx(1.0)


def test_pd_at_fa_picks_the_best_point_within_the_false_alarm_budget():
    from oscar_edge.metrics import pd_at_fa

    gts = [np.array([[10, 10, 20, 20]], np.float32), np.array([[50, 50, 60, 60]], np.float32),
           np.zeros((0, 4), np.float32), np.zeros((0, 4), np.float32)]
    dets = [(np.array([[12, 12, 16, 16]]), np.array([0.9])),      # hit at 0.9
            (np.array([[53, 53, 57, 57]]), np.array([0.3])),      # hit at 0.3
            (np.array([[1, 1, 3, 3]]), np.array([0.5])),          # false alarm at 0.5
            (np.array([[1, 1, 3, 3]]), np.array([0.2]))]          # false alarm at 0.2
    # budget 0.25 FA/image = 1 false alarm over 4 images: down to 0.3 (Pd 1.0, FA 0.25)
    r = pd_at_fa(dets, gts, 0.25, grid=(0.1, 0.25, 0.4, 0.6, 0.95))
    assert r == {"Pd": 1.0, "Fa_per_image": 0.25, "score_thr": 0.25}
    # budget 0: only thresholds above 0.5 -> Pd 0.5
    r = pd_at_fa(dets, gts, 0.0, grid=(0.1, 0.25, 0.4, 0.6, 0.95))
    assert r["Pd"] == 0.5 and r["score_thr"] == 0.6 and r["Fa_per_image"] == 0.0
    # no threshold meets it
    assert np.isnan(pd_at_fa(dets, gts, 0.0, grid=(0.1,))["score_thr"])


def test_evaluate_detections_keys_and_plot(tmp_path):
    grey = blob_image()
    gts = [BLOB_BOX, np.zeros((0, 4), np.float32)]
    maps = [noco_map(grey, BLOB_BOX), np.zeros((48, 40), np.float32)]
    dets = [(BLOB_BOX.copy(), np.array([0.9])), (np.array([[1, 1, 3, 3]]), np.array([0.3]))]
    r = evaluate_detections(dets, gts, maps, score_thr=0.5)
    expected = {"mNoCoAP", "AP50", "Pd", "Fa_per_image", "Fa_per_MP", "score_thr",
                "num_images", "num_boxes", "num_detections", "curves", "Pd_at_max_fa",
                "Fa_at_max_fa", "score_thr_at_max_fa", "max_fa_per_image"}
    expected |= {noco_key(t / 10) for t in range(1, 10)}
    assert set(r) == expected
    assert r["mNoCoAP"] == 1.0 and r["AP50"] == 1.0 and r["Pd"] == 1.0
    assert r["Fa_per_image"] == 0.0 and r["num_images"] == 2 and r["num_boxes"] == 1
    assert r["Fa_per_MP"] == 0.0
    assert set(r["curves"]) == {noco_key(t / 10) for t in range(1, 10)} | {"AP50"}
    out = tmp_path / "pr.png"
    plot_pr_curves(r["curves"], out)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_evaluate_detections_reads_images_from_samples(tmp_path):
    import cv2

    path = tmp_path / "img.png"
    cv2.imwrite(str(path), blob_image())
    samples = [Sample(name="img", image_path=str(path), boxes=BLOB_BOX)]
    r = evaluate_detections([(BLOB_BOX.copy(), np.array([0.9]))], samples)
    assert r["mNoCoAP"] == 1.0 and r["Fa_per_MP"] == 0.0


def test_mismatched_lengths_raise():
    with pytest.raises(ValueError, match="length"):
        noco_ap([(np.zeros((0, 4)), np.zeros(0))], [], [], 0.5)


# ----------------------------------------------------------------------------- annotations

VOC_TWO = """<annotation><filename>a.png</filename>
  <object><name>Target</name><bndbox><xmin>5</xmin><ymin>6</ymin><xmax>10</xmax><ymax>12</ymax></bndbox></object>
  <object><name>Bird</name><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>3</xmax><ymax>3</ymax></bndbox></object>
  <object><name>Target</name><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>1</xmax><ymax>4</ymax></bndbox></object>
</annotation>"""
VOC_BACKGROUND = """<annotation><filename>b.png</filename>
  <object><name>Target</name><difficult>0</difficult><pixels><id>0</id></pixels></object>
</annotation>"""


def test_parse_voc_subtracts_one_and_keeps_order(tmp_path):
    p = tmp_path / "a.xml"
    p.write_text(VOC_TWO)
    boxes = parse_voc(p)
    assert boxes.dtype == np.float32
    np.testing.assert_array_equal(boxes, [[4, 5, 9, 11], [0, 0, 0, 3]])


def test_parse_voc_background(tmp_path):
    p = tmp_path / "b.xml"
    p.write_text(VOC_BACKGROUND)
    assert parse_voc(p).shape == (0, 4)


@pytest.mark.parametrize("text, what", [
    ("<annotation><object><name>Target</name><bndbox><xmin>5", "malformed"),
    (VOC_TWO.replace("<xmin>5</xmin>", "<xmin>five</xmin>"), "non-numeric"),
    (VOC_TWO.replace("<xmax>10</xmax>", "<xmax>4</xmax>"), "inverted"),
    (VOC_TWO.replace("<ymax>12</ymax>", ""), "no <ymax>"),
])
def test_parse_voc_malformed_names_file(tmp_path, text, what):
    p = tmp_path / "bad.xml"
    p.write_text(text)
    with pytest.raises(AnnotationError) as info:
        parse_voc(p)
    assert str(p) in str(info.value) and what in str(info.value)
    assert isinstance(info.value, ValueError)


def test_parse_voc_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.xml"):
        parse_voc(tmp_path / "nope.xml")


def _make_dataset(root: Path) -> None:
    import cv2

    (root / "splits").mkdir(parents=True)
    (root / "mixed").mkdir()
    (root / "annotations" / "bboxes").mkdir(parents=True)
    (root / "splits" / "mini.txt").write_text("a.png\n\n  b  \n")
    (root / "splits" / "other.txt").write_text("a\n")
    for name in ("a", "b"):
        cv2.imwrite(str(root / "mixed" / f"{name}.png"), np.zeros((8, 8), np.uint8))
    (root / "annotations" / "bboxes" / "a.xml").write_text(VOC_TWO)
    (root / "annotations" / "bboxes" / "b.xml").write_text(VOC_BACKGROUND)


def test_read_split_and_load_samples(tmp_path):
    _make_dataset(tmp_path)
    assert read_split(tmp_path, "mini") == ["a", "b"]
    assert read_split(tmp_path, "mini.txt") == ["a", "b"]
    samples = load_samples(tmp_path, "mini")
    assert [s.name for s in samples] == ["a", "b"]
    assert samples[0].image_path == str(tmp_path / "mixed" / "a.png")
    assert samples[0].boxes.shape == (2, 4) and samples[1].boxes.shape == (0, 4)


def test_missing_split_lists_available(tmp_path):
    _make_dataset(tmp_path)
    with pytest.raises(FileNotFoundError) as info:
        read_split(tmp_path, "val_full")
    msg = str(info.value)
    assert str(tmp_path / "splits" / "val_full.txt") in msg
    assert "mini" in msg and "other" in msg


def test_corrupt_png_names_file(tmp_path):
    p = tmp_path / "broken.png"
    p.write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    with pytest.raises(ImageReadError, match="broken.png"):
        read_grey(str(p))


# ----------------------------------------------------------------------------- bootstrap

def _random_scene(rng, n_images=6):
    """Images with one blob target each (some without), detections near and far, all scores
    distinct so that pooling order has no ties."""
    dets, gts, maps = [], [], []
    scores = iter(rng.permutation(1000) / 1000.0 + 1e-4)
    for i in range(n_images):
        if i % 3 == 2:  # background image with a false alarm
            maps.append(np.zeros((48, 40), np.float32))
            gts.append(np.zeros((0, 4), np.float32))
            dets.append((np.array([[5.0, 5, 10, 10]]), np.array([next(scores)])))
            continue
        centre = (int(rng.integers(12, 40)), int(rng.integers(12, 40)))
        grey = blob_image(centre=centre)
        box = np.array([[centre[1] - 3, centre[0] - 3, centre[1] + 3, centre[0] + 3]], np.float32)
        shift = rng.uniform(-2.5, 2.5, size=(3, 2))  # three guesses of varying quality
        boxes = np.concatenate([box + np.tile(s, 2) for s in shift])
        maps.append(noco_map(grey, box))
        gts.append(box)
        dets.append((boxes, np.array([next(scores) for _ in range(3)])))
    return dets, gts, maps


def test_resampled_mnoco_ap_equals_mnoco_ap_of_the_listed_draw():
    """Weighting an image by how often it is drawn is the same as listing it that often."""
    from oscar_edge.metrics import bootstrap_draws, mnoco_ap_resampled

    rng = np.random.default_rng(3)
    dets, gts, maps = _random_scene(rng)
    other = [(b + 1.5, s) for b, s in dets]  # a second setting of the same images
    draws = np.concatenate([np.arange(len(gts))[None], bootstrap_draws(len(gts), 12, seed=5)])
    got = mnoco_ap_resampled([dets, other], gts, maps, draws)
    assert got.shape == (13, 2)
    for b, d in enumerate(draws):
        for s, setting in enumerate((dets, other)):
            want = mnoco_ap([setting[i] for i in d], [gts[i] for i in d], [maps[i] for i in d])
            assert got[b, s] == pytest.approx(want["mNoCoAP"], abs=1e-12)
    assert got[0, 0] == pytest.approx(mnoco_ap(dets, gts, maps)["mNoCoAP"], abs=1e-12)
    assert len(set(np.round(got[:, 0], 9))) > 3  # the draws differ, and so do the scores


def test_bootstrap_draws_hand_cases():
    from oscar_edge.metrics import bootstrap_draws, mnoco_ap_resampled

    grey = blob_image()
    maps = [noco_map(grey, BLOB_BOX), noco_map(grey, BLOB_BOX)]
    gts = [BLOB_BOX, BLOB_BOX]
    dets = [(BLOB_BOX.copy(), np.array([0.9])), (np.array([[40.0, 40, 46, 46]]), np.array([0.8]))]
    got = mnoco_ap_resampled([dets], gts, maps, np.array([[0, 0], [1, 1], [0, 1]]))
    assert got[:, 0].tolist() == pytest.approx([1.0, 0.0, 0.5])  # hit twice, miss twice, one each
    a, b = bootstrap_draws(5, 4, seed=1), bootstrap_draws(5, 4, seed=1)
    assert a.shape == (4, 5) and (a == b).all() and a.min() >= 0 and a.max() < 5
    with pytest.raises(ValueError, match="index the 2 images"):
        mnoco_ap_resampled([dets], gts, maps, np.array([[0, 2]]))
    with pytest.raises(ValueError, match="at least one image"):
        bootstrap_draws(0)


def test_target_centring_reads_the_best_scoring_detection_inside_each_target():
    from oscar_edge.metrics import target_centring

    grey = blob_image()
    m = noco_map(grey, BLOB_BOX)
    centred = BLOB_BOX.copy()                   # centre (20, 30): the blob's peak
    off = BLOB_BOX + np.array([2, 2, 2, 2])    # centre (22, 32): inside, off the peak
    far = np.array([[40.0, 40, 46, 46]])       # outside the box
    assert m[30, 20] > m[32, 22]                # the peak reads higher than the off-centre point
    dets = [
        (np.concatenate([centred, off]), np.array([0.3, 0.6])),  # the higher score wins
        (np.concatenate([centred, far]), np.array([0.05, 0.9])),  # centred one under threshold
        (centred, np.array([0.4])),
    ]
    gts = [BLOB_BOX, BLOB_BOX, np.concatenate([BLOB_BOX, far])]  # image 2: one target missed
    values, image = target_centring(dets, gts, [m, m, m], score_thr=0.1)
    assert image.tolist() == [0, 1, 2, 2]
    assert values[0] == pytest.approx(float(m[32, 22]))
    assert np.isnan(values[1])
    assert values[2] == pytest.approx(float(m[30, 20])) and np.isnan(values[3])
