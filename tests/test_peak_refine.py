"""Peak-centred localization (README.md, "Peak-centred localization"): rule 6 of
oscar_edge.postprocess (``peak_refine``), its
CPU twin (``oscar_peak_refine`` / ``oscar_postprocess`` with an image, oscar_edge.native), the
``Letterbox`` row it needs, and the ``--peak-refine`` switch of ``oscar-edge evaluate``.

The CUDA kernel (g++-compiled in the emulation harness) and the golden vectors are checked in
tests/test_tensorrt_plugins.py; the end-to-end graph's OscarPeakRefine node in
tests/test_plugin_graph.py.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from oscar_edge import postprocess as pp
from oscar_edge.native import NativePostprocessor
from oscar_edge.preprocess import Letterbox, prepare, read_grey
from test_native_postprocess import make_outputs  # the raw-output generator of those tests

HYPO = settings(max_examples=300, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module")
def native() -> NativePostprocessor:
    return NativePostprocessor()


def centres(boxes: np.ndarray) -> np.ndarray:
    """(N, 2) box centres (x, y) in float64."""
    b = np.asarray(boxes, np.float64)
    return np.stack([(b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2], axis=1)


def bits(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=np.float32).view(np.uint32)


def blob_image(h: int, w: int, peaks, sigma: float = 1.0, base: float = -1.0) -> np.ndarray:
    """(3, h, w) float32 network input: a flat background and Gaussian blobs at (y, x)."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    img = np.full((h, w), base)
    for y, x, amp in peaks:
        img += amp * np.exp(-((yy - y) ** 2 + (xx - x) ** 2) / (2 * sigma ** 2))
    return np.broadcast_to(img.astype(np.float32), (3, h, w)).copy()


# ------------------------------------------------------------------ the rule on synthetic cases
@pytest.mark.parametrize("centroid", [True, False])
def test_off_centre_target_is_moved_onto_its_peak(native, centroid):
    img = blob_image(64, 96, [(20, 33, 5.0)])
    boxes = np.float32([[27, 13, 37, 23], [30.4, 17.2, 35.9, 25.6]])  # centred off the peak
    for fn in (pp.peak_refine, native.peak_refine):
        out = fn(boxes, img, (64, 96), (1.0, 1.0), centroid)
        assert out.dtype == np.float32 and out.shape == boxes.shape
        np.testing.assert_allclose(centres(out), [[33, 20], [33, 20]], atol=1e-5)  # on the peak
        np.testing.assert_allclose(out[:, 2:] - out[:, :2], boxes[:, 2:] - boxes[:, :2],
                                   atol=1e-5)  # the size is kept
    assert pp.peak_refine(boxes, img, (64, 96)).base is None  # a new array
    assert boxes[0, 0] == 27  # the input is untouched


@pytest.mark.parametrize("scale", [0.6, 1.0, 1.7, 2.5, 3.9])
def test_exact_mapping_of_the_letterbox_scale(scale):
    """Network pixel j is original coordinate (j + 0.5) / s - 0.5: the refined box, mapped back
    by Letterbox.to_original (a division by s), has its centre there (centroid off: no
    sub-pixel shift)."""
    img = blob_image(64, 96, [(30, 41, 5.0)])
    out = pp.peak_refine(np.float32([[35, 25, 50, 33]]), img, (64, 96), (scale, scale), False)
    box = Letterbox(original=(0, 0), resized=(64, 96), padded=(64, 96), scale_x=scale,
                    scale_y=scale)
    np.testing.assert_allclose(centres(box.to_original(out)),
                               [[(41 + 0.5) / scale - 0.5, (30 + 0.5) / scale - 0.5]], atol=1e-4)
    # scale 1 puts the centre on the pixel index, scale 0 on the pixel's lower edge + 0.5
    np.testing.assert_array_equal(centres(pp.peak_refine(out, img, (64, 96), (1, 1), False)),
                                  [[41, 30]])
    np.testing.assert_array_equal(centres(pp.peak_refine(out, img, (64, 96), (0, 0), False)),
                                  [[41.5, 30.5]])


@pytest.mark.parametrize("scale", [0.6, 1.0, 2.5])
def test_peak_lands_on_the_original_pixel_through_prepare(scale):
    """End to end through the real letterbox: an original frame with a bright 3x3 target, resized
    by prepare(); a network-frame box around it, off-centre; refined with the exact mapping and
    mapped back, its centre rounds (np.round, as the NoCo metric) to the target's pixel."""
    h, w = int(round(600 / scale)), int(round(1000 / scale))
    grey = np.full((h, w), 40, np.uint8)
    ty, tx = h // 2 + 3, w // 3 + 5
    grey[ty - 1:ty + 2, tx - 1:tx + 2] = 180
    grey[ty, tx] = 250
    x, box = prepare(grey)
    sy, sx = box.scale_y, box.scale_x
    cx, cy = tx * sx + 2.7, ty * sy - 1.9  # off-centre by a few network pixels
    net = np.float32([[cx - 6, cy - 5, cx + 6, cy + 5]])
    out = pp.peak_refine(net, x, box.resized, (sy, sx))
    c = centres(box.to_original(out))[0]
    assert (np.round(c[0]), np.round(c[1])) == (tx, ty), (c, (tx, ty))


def test_tied_maxima_give_their_midpoint(native):
    """A saturated plateau: the peak point is the middle of the tied maxima (the first maximum
    in row-major order would be its top-left corner)."""
    img = np.full((1, 40, 40), -2.0, np.float32)
    img[0, 10:14, 20:26] = 5.0  # rows 10..13, cols 20..25
    boxes = np.float32([[15, 5, 33, 19]])
    for fn in (pp.peak_refine, native.peak_refine):
        np.testing.assert_array_equal(centres(fn(boxes, img, (40, 40), (1, 1), False)),
                                      [[22.5, 11.5]])
        # centroid: around pixel (11, 22): the 3x3 rows 10..12 are inside the plateau (all
        # weights equal after the minimum is removed: the neighbourhood is flat -> the pixel)
        np.testing.assert_array_equal(centres(fn(boxes, img, (40, 40), (1, 1), True)),
                                      [[22, 11]])


def test_window_is_the_pixel_centres_inside_the_box():
    """Pixels count when their centre (pixel-index coordinate j + ... ) lies in [v1 + o, v2 + o];
    a brighter pixel just outside is ignored; a box narrower than a pixel takes the nearest."""
    img = np.zeros((1, 20, 20), np.float32)
    img[0, 10, 14] = 9.0  # just right of the box below
    img[0, 10, 12] = 3.0
    out = pp.peak_refine(np.float32([[10.0, 8.0, 13.9, 12.0]]), img, (20, 20), (1, 1), False)
    np.testing.assert_array_equal(centres(out), [[12, 10]])
    # sub-pixel box between pixel centres 12 and 13: nearest pixel to its centre (12.7 -> 13)
    img[0, 10, 13] = 1.0
    out = pp.peak_refine(np.float32([[12.6, 10.1, 12.8, 10.2]]), img, (20, 20), (1, 1), False)
    np.testing.assert_array_equal(centres(out), [[13, 10]])
    # an inverted box: the pixel nearest to its centre, and a zero-size box there
    out = pp.peak_refine(np.float32([[15.0, 10.0, 11.0, 10.0]]), img, (20, 20), (1, 1), False)
    np.testing.assert_array_equal(out, [[13, 10, 13, 10]])


def test_non_finite_pixels(native):
    """NaN never wins (it counts as -inf); an all-NaN window gives its middle; +inf wins and a
    non-finite 3x3 neighbourhood skips the centroid."""
    img = np.full((1, 12, 12), np.nan, np.float32)
    boxes = np.float32([[2, 2, 6, 8]])  # window rows 2..8, columns 2..6
    for fn in (pp.peak_refine, native.peak_refine):
        np.testing.assert_array_equal(centres(fn(boxes, img, (12, 12))), [[4, 5]])
    img[0, 3, 5] = -1.0  # the only number
    img[0, 7, 2] = -np.inf
    for fn in (pp.peak_refine, native.peak_refine):
        np.testing.assert_array_equal(centres(fn(boxes, img, (12, 12), (1, 1), False)), [[5, 3]])
        np.testing.assert_array_equal(centres(fn(boxes, img, (12, 12), (1, 1), True)), [[5, 3]])
    img[0, 6, 3] = np.inf
    for fn in (pp.peak_refine, native.peak_refine):
        np.testing.assert_array_equal(centres(fn(boxes, img, (12, 12))), [[3, 6]])


@pytest.mark.parametrize("scale", [1.0, 2.5])
def test_box_at_the_border_stays_inside(native, scale):
    """A target in the corner of the content: the centre sits on the peak, the box shrinks
    symmetrically instead of leaving the content; padding is never searched."""
    h, w, ch, cw = 64, 96, 50, 70
    img = np.full((3, h, w), -1.0, np.float32)
    img[:, :, cw:] = 8.0   # padding brighter than the content: must be ignored
    img[:, ch:, :] = 8.0
    img[:, 1, 1] = 4.0     # the target: row 1, column 1
    img[:, ch - 1, cw - 1] = 4.0
    boxes = np.float32([[0, 0, 12, 10], [cw - 9, ch - 7, cw + 20, ch + 20], [-30, -30, 200, 200]])
    for fn in (pp.peak_refine, native.peak_refine):
        out = fn(boxes, img, (ch, cw), (scale, scale))
        assert (out[:, 0::2] >= 0).all() and (out[:, 0::2] <= cw).all()
        assert (out[:, 1::2] >= 0).all() and (out[:, 1::2] <= ch).all()
        o = (scale - 1) / 2
        want = np.clip(np.float64([[1 - o, 1 - o], [cw - 1 - o, ch - 1 - o]]), 0, None)
        np.testing.assert_allclose(centres(out[:2]), want, atol=1e-5)
    np.testing.assert_array_equal(native.peak_refine(boxes, img, (ch, cw), (scale, scale)),
                                  pp.peak_refine(boxes, img, (ch, cw), (scale, scale)))


def test_empty_detections_and_batches(native):
    img = blob_image(32, 48, [(10, 10, 3.0)])
    empty = np.zeros((0, 4), np.float32)
    assert pp.peak_refine(empty, img, (32, 48)).shape == (0, 4)
    assert native.peak_refine(empty, img, (32, 48)).shape == (0, 4)
    # batch of three, counts 0 / 2 / 5 of M = 5, different letterboxes; rows past num are zero
    rng = np.random.default_rng(3)
    images = np.stack([blob_image(32, 48, [(rng.uniform(0, 32), rng.uniform(0, 48), 4.0)])
                       for _ in range(3)])
    boxes = rng.uniform(0, 40, (3, 5, 4)).astype(np.float32)
    boxes[..., 2:] += boxes[..., :2]
    num = np.int32([0, 2, 5])
    letterbox = np.float32([[32, 48, 1, 1], [30, 40, 2.5, 2.5], [32, 44, 0.6, 0.61]])
    out = native.peak_refine_batch(images, boxes, num, letterbox)
    assert out.shape == (3, 5, 4) and not out[0].any() and not out[1, 2:].any()
    for b in range(3):
        n = int(num[b])
        want = pp.peak_refine(boxes[b, :n], images[b], letterbox[b, :2], letterbox[b, 2:])
        np.testing.assert_array_equal(bits(out[b, :n]), bits(want))
    # no letterbox: the whole input at scale 1
    out = native.peak_refine_batch(images, boxes, num, None)
    np.testing.assert_array_equal(out[2], pp.peak_refine(boxes[2], images[2], (32, 48)))
    with pytest.raises(ValueError):
        native.peak_refine_batch(images, boxes, num[:2], None)


def test_letterbox_row():
    x, box = prepare(np.zeros((240, 320), np.uint8))
    row = box.tensor()
    assert row.dtype == np.float32 and row.shape == (4,)
    np.testing.assert_array_equal(row, np.float32([box.resized[0], box.resized[1], box.scale_y,
                                                   box.scale_x]))


# ------------------------------------------------------------------ CPU twin == numpy reference
@HYPO
@given(seed=st.integers(0, 2**32 - 1), h=st.integers(1, 40), w=st.integers(1, 40),
       n=st.integers(0, 30), channels=st.sampled_from([1, 3]),
       quant=st.sampled_from([0.0, 0.5, 4.0]), special=st.sampled_from([0.0, 0.0, 0.05]),
       clamp_frac=st.floats(0.05, 1.3), scale=st.sampled_from([0.0, 0.52, 1.0, 1.17, 2.69, 3.9]),
       aniso=st.floats(0.8, 1.25), spread=st.sampled_from([2.0, 10.0, 60.0]),
       centroid=st.booleans())
def test_random_inputs_cpu_twin_equals_reference(native, seed, h, w, n, channels, quant, special,
                                                 clamp_frac, scale, aniso, spread, centroid):
    rng = np.random.default_rng(seed)
    img = rng.normal(0, 2, (channels, h, w))
    if quant:
        img = np.round(img * quant) / quant  # few distinct values: tied maxima
    if special:  # NaN and +-inf pixels: NaN never wins; non-finite neighbourhoods skip centroid
        pick = rng.random(img.shape)
        img = np.where(pick < special / 3, np.nan, img)
        img = np.where((pick >= special / 3) & (pick < 2 * special / 3), np.inf, img)
        img = np.where((pick >= 2 * special / 3) & (pick < special), -np.inf, img)
    img = img.astype(np.float32)
    lo = -spread / 4
    boxes = rng.uniform(lo, max(h, w) + spread / 4, (n, 4)).astype(np.float32)
    boxes[:, 2:] = boxes[:, :2] + rng.uniform(-2, spread, (n, 2)).astype(np.float32)
    clamp = (float(np.float32(h * clamp_frac)), float(np.float32(w * clamp_frac * aniso)))
    sc = (scale, scale * aniso)
    want = pp.peak_refine(boxes, img, clamp, sc, centroid)
    got = native.peak_refine(boxes, img, clamp, sc, centroid)
    np.testing.assert_array_equal(bits(got), bits(want))
    if n and np.isfinite(want).all():  # valid outputs stay inside the content
        assert (want[:, 0::2] >= 0).all() and (want[:, 0::2] <= np.float32(clamp[1])).all()
        assert (want[:, 1::2] >= 0).all() and (want[:, 1::2] <= np.float32(clamp[0])).all()
        assert (want[:, 2:] >= want[:, :2]).all()


@HYPO
@given(seed=st.integers(0, 2**32 - 1), h8=st.integers(1, 12), w8=st.integers(1, 12),
       mean=st.floats(-3, 3), clamp_frac=st.floats(0.3, 1.0),
       scale=st.sampled_from([0.52, 1.0, 2.69]), centroid=st.booleans())
def test_postprocess_with_image_cpu_twin_equals_reference(native, seed, h8, w8, mean, clamp_frac,
                                                          scale, centroid):
    """decode + NMS + refinement in one call (oscar_postprocess with an image) == the numpy
    postprocess_image with the same image, bit for bit."""
    rng = np.random.default_rng(seed)
    outs = make_outputs(rng, h8, w8, mean=mean, std=2.0, box=16.0)
    image = np.round(rng.normal(0, 1, (3, 8 * h8, 8 * w8)) * 2).astype(np.float32) / 2
    clamp = (int(8 * h8 * clamp_frac), int(8 * w8 * clamp_frac))
    args = dict(clamp_hw=clamp, image=image, scale_yx=(scale, scale), centroid=centroid)
    rb, rs = pp.postprocess_image(outs, **args)
    nb, ns = native.postprocess_image(outs, **args)
    np.testing.assert_array_equal(bits(nb), bits(rb))
    np.testing.assert_array_equal(bits(ns), bits(rs))
    # == NMS output refined afterwards
    b0, s0 = pp.postprocess_image(outs, clamp)
    np.testing.assert_array_equal(rb, pp.peak_refine(b0, image, clamp, (scale, scale), centroid))
    # the batch API with per-image scales
    num, kb, _ = native.postprocess_batch_padded(tuple(o[None] for o in outs), [clamp],
                                                 image=image[None], scale_yx=[(scale, scale)],
                                                 centroid=centroid)
    np.testing.assert_array_equal(kb[0, :int(num[0])], rb)


# ------------------------------------------------------------------ real val images
@pytest.fixture(scope="module")
def val_frames(sirst_root):
    """Six val images (fit size), their raw outputs from the shipped model and ground truth."""
    torch = pytest.importorskip("torch")
    from oscar_edge.checkpoint import load_model
    from oscar_edge.data.annotations import load_samples

    model = load_model(None)[0].eval()
    samples = [s for s in load_samples(sirst_root, "val_full") if len(s.boxes)][:6]
    frames = []
    with torch.no_grad():
        for s in samples:
            grey = read_grey(s.image_path)
            x, box = prepare(grey)
            outs = tuple(o[0].numpy() for o in model(torch.from_numpy(x[None])))
            frames.append((grey, x, box, outs, s.boxes))
    return frames


def test_real_images_cpu_twin_equals_reference(native, val_frames):
    moved = 0
    for grey, x, box, outs, gt in val_frames:
        scale = (box.scale_y, box.scale_x)
        for centroid in (True, False):
            rb, rs = pp.postprocess_image(outs, box.resized, image=x, scale_yx=scale,
                                          centroid=centroid)
            nb, ns = native.postprocess_image(outs, box.resized, image=x, scale_yx=scale,
                                              centroid=centroid)
            np.testing.assert_array_equal(bits(nb), bits(rb))
            np.testing.assert_array_equal(bits(ns), bits(rs))
        b0, _ = pp.postprocess_image(outs, box.resized)
        moved += int((rb != b0).any(axis=1).sum())
        # the ground truth scaled into the network frame, and the original image at scale 1
        net_gt = gt.astype(np.float32).reshape(-1, 4).copy()
        net_gt[:, 0::2] *= np.float32(box.scale_x)
        net_gt[:, 1::2] *= np.float32(box.scale_y)
        np.testing.assert_array_equal(bits(native.peak_refine(net_gt, x, box.resized, scale)),
                                      bits(pp.peak_refine(net_gt, x, box.resized, scale)))
        g32 = grey.astype(np.float32)
        np.testing.assert_array_equal(
            bits(native.peak_refine(gt, g32, grey.shape, (1, 1), False)),
            bits(pp.peak_refine(gt, g32, grey.shape, (1, 1), False)))
    assert moved > 0


def test_ground_truth_centred_on_the_brightest_pixel(val_frames):
    """On the original image at scale 1 without the centroid, a GT box's centre moves onto the
    brightest grey pixel inside it (the middle of the tied maxima): the spec's 0.987 setting."""
    for grey, _, _, _, gt in val_frames:
        out = pp.peak_refine(gt, grey.astype(np.float32), grey.shape, (1, 1), False)
        for b, c in zip(np.asarray(gt, np.int64), centres(out)):
            win = grey[b[1]:b[3] + 1, b[0]:b[2] + 1]
            rows, cols = np.nonzero(win == win.max())
            want = (b[0] + (cols.min() + cols.max()) / 2, b[1] + (rows.min() + rows.max()) / 2)
            assert tuple(c) == want


def test_refinement_raises_noco_of_real_detections(val_frames):
    """On real detections, the refined centres read higher NoCo values (the metric's reason)."""
    from oscar_edge.metrics import noco_map

    before, after = [], []
    for grey, x, box, outs, gt in val_frames:
        nmap = noco_map(grey, gt)
        b0, s0 = pp.postprocess_image(outs, box.resized)
        b1 = pp.peak_refine(b0, x, box.resized, (box.scale_y, box.scale_x))
        keep = s0 >= 0.1
        for b, acc in ((b0, before), (b1, after)):
            c = centres(box.to_original(b[keep]))
            r = np.clip(np.round(c[:, 1]).astype(int), 0, grey.shape[0] - 1)
            q = np.clip(np.round(c[:, 0]).astype(int), 0, grey.shape[1] - 1)
            acc.extend(nmap[r, q].tolist())
    assert len(before) > 0 and np.mean(after) > np.mean(before)


# ------------------------------------------------------------------ arguments and the flag
def test_bad_arguments(native):
    img = np.zeros((3, 8, 8), np.float32)
    with pytest.raises(ValueError, match="image"):
        pp.peak_refine(np.zeros((1, 4), np.float32), np.zeros((2, 2, 8, 8)), (8, 8))
    with pytest.raises(ValueError, match="image"):
        native.peak_refine(np.zeros((1, 4), np.float32), np.zeros((2, 2, 8, 8)), (8, 8))
    # content larger than the image and non-positive clamps are clamped to the image / 1 pixel
    boxes = np.float32([[1, 1, 6, 6]])
    for clamp in ((100, 100), (0, 0), (-5, 3)):
        np.testing.assert_array_equal(native.peak_refine(boxes, img, clamp),
                                      pp.peak_refine(boxes, img, clamp))


def test_defaults_and_evaluate_flag(sirst_root):
    import inspect

    from oscar_edge.errors import UserError
    from oscar_edge.evaluate import build_parser, make_detector
    from oscar_edge.pipeline import Detector

    assert pp.PEAK_REFINE_DEFAULT is True and pp.PEAK_CENTROID_DEFAULT is True
    args = build_parser().parse_args(["--peak-refine", "off"])
    assert args.peak_refine == "off"
    assert build_parser().parse_args([]).peak_refine is None

    def backend(x):  # a raw-output backend that is never called here
        raise AssertionError

    assert isinstance(make_detector(backend, None), Detector)
    if "peak_refine" in inspect.signature(Detector).parameters:
        assert make_detector(backend, "off").peak_refine is False
        assert make_detector(backend, "on").peak_refine is True
    else:  # the pipeline has not integrated the switch yet
        with pytest.raises(UserError, match="peak_refine"):
            make_detector(backend, "on")
