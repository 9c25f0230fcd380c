"""Model architecture: released parameter counts, output shapes, the edge preset's budget."""
import numpy as np
import pytest
import torch

from oscar_edge import postprocess as pp
from oscar_edge.models import build_model
from oscar_edge.models.head import MAX_LOG_DISTANCE
from oscar_edge.models.complexity import count_gflops, count_params
from oscar_edge.models.losses import decode_coarse, decode_refine
from oscar_edge.presets import PRESETS, get_preset


@pytest.mark.parametrize("name,expected", [("oscar-r18-p2-256", 16.48e6),
                                           ("oscar-r18-p2-128", 12.58e6)])
def test_released_parameter_counts(name, expected):
    n = count_params(build_model(name))
    assert abs(n - expected) / expected < 0.01, n
    assert n == pytest.approx(PRESETS[name].reference_params, rel=0.01)


@pytest.mark.parametrize("name,expected", [("oscar-r18-p2-256", 68.0), ("oscar-r18-p2-128", 25.0)])
def test_released_gflops_match_spec(name, expected):
    assert count_gflops(build_model(name), 512, 512) == pytest.approx(expected, rel=0.02)


def test_edge_preset_budget():
    model = build_model("oscar-edge")
    assert count_gflops(model, 512, 640) <= 4.0
    assert count_params(model) * 4 < 10e6  # float32 weights ship under 10 MB


@pytest.mark.parametrize("name", list(PRESETS))
def test_output_shapes_non_square(name):
    model = build_model(name).eval()
    h, w = 96, 160
    with torch.no_grad():
        outs = model(torch.randn(2, 3, h, w))
    expected = [(2, 1, h // 4, w // 4), (2, 4, h // 4, w // 4), (2, 1, h // 4, w // 4),
                (2, 1, h // 8, w // 8), (2, 4, h // 8, w // 8)]
    assert [tuple(o.shape) for o in outs] == expected
    assert bool((outs[4] <= MAX_LOG_DISTANCE).all())  # log-distances, clamped (exp in decode)


def test_unknown_preset_names_the_known_ones():
    with pytest.raises(KeyError, match="oscar-edge"):
        get_preset("nope")


def test_torch_box_decode_matches_numpy_reference():
    """The losses' torch decode and the numpy post-processing use the same cascade rules."""
    rng = np.random.default_rng(0)
    c_bbox = np.log(rng.uniform(0.5, 30, (1, 4, 6, 10))).astype(np.float32)  # log-distances
    r_bbox = rng.normal(0, 1, (1, 4, 12, 20)).astype(np.float32)
    torch_boxes = decode_refine(decode_coarse(torch.from_numpy(c_bbox)), torch.from_numpy(r_bbox))
    anchors = pp.coarse_anchors(c_bbox[0])
    np_boxes = anchors + pp.REFINE_STRIDE * r_bbox[0]
    np.testing.assert_allclose(torch_boxes[0].numpy(), np_boxes, atol=1e-5)
    # anchor of P2 point (3, 5) is the coarse box of P3 point (1, 2) decoded at (20, 12)
    l, t, r, b = np.exp(c_bbox[0, :, 1, 2].astype(np.float64))
    np.testing.assert_allclose(anchors[:, 3, 5], [20 - l, 12 - t, 20 + r, 12 + b], atol=1e-5)


@pytest.mark.parametrize("mode,src,dst", [("nearest", (5, 7), (10, 14)),
                                          ("bilinear", (5, 7), (10, 14)),
                                          ("bilinear", (10, 14), (5, 7)),
                                          ("nearest", (5, 7), (11, 13)),
                                          ("bilinear", (9, 7), (5, 7))])
def test_resize_like_equals_the_spec_resize(mode, src, dst):
    """The constant-scale forms (2x up, 2x2 average pool for 2x bilinear down) and the
    size-based fallback give the spec's size-based resize (spec section 2)."""
    from oscar_edge.models.resample import resize_like

    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, *src, generator=g)
    like = torch.zeros(1, 1, *dst)
    kw = {} if mode == "nearest" else {"align_corners": False}
    want = torch.nn.functional.interpolate(x, size=dst, mode=mode, **kw)
    got = resize_like(x, like, mode)
    assert got.shape == want.shape
    torch.testing.assert_close(got, want, rtol=0, atol=1e-6)
