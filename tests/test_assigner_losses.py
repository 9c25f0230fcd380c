"""Label assignment and losses on hand-built cases (spec sections 3 and 4)."""
import math

import pytest
import torch

from oscar_edge.models import build_model
from oscar_edge.models.assigner import (COARSE_PSEUDO_SIZE, REFINE_PSEUDO_SIZE, assign_level,
                                        pseudo_boxes)
from oscar_edge.models.losses import diou_loss, noco_loss, oscar_loss, sigmoid_focal_loss


def positives(gt, grid, stride, size):
    t = assign_level(torch.tensor(gt, dtype=torch.float32), grid, stride, size)
    return sorted(map(tuple, torch.nonzero(t.positive.view(grid)).tolist())), t


def test_3x3_target_positive_points():
    # box x 10..13, y 10..13: centre (11.5, 11.5).
    # P2 (stride 4), pseudo 6x6 = (8.5, 14.5): points at 10 and 14 on each axis -> 4 positives.
    pos, _ = positives([[10, 10, 13, 13]], (8, 8), 4, REFINE_PSEUDO_SIZE)
    assert pos == [(2, 2), (2, 3), (3, 2), (3, 3)]
    # P3 (stride 8), pseudo 8x8 = (7.5, 15.5): only the point at 12 -> 1 positive.
    pos, t = positives([[10, 10, 13, 13]], (4, 4), 8, COARSE_PSEUDO_SIZE)
    assert pos == [(1, 1)]
    # coarse regression target is the pseudo box, refine target the real box
    p = 1 * 4 + 1
    assert t.pseudo_boxes[p].tolist() == [7.5, 7.5, 15.5, 15.5]
    assert t.gt_boxes[p].tolist() == [10, 10, 13, 13]


def test_large_box_uses_real_box():
    pb = pseudo_boxes(torch.tensor([[0.0, 0.0, 20.0, 10.0], [0.0, 0.0, 2.0, 2.0]]), 8.0)
    assert pb[0].tolist() == [0, 0, 20, 10]
    assert pb[1].tolist() == [-3, -3, 5, 5]


def test_overlapping_targets_resolve_to_smaller():
    big = [0, 0, 30, 30]     # area 900, real box used (larger than 6x6)
    small = [8, 8, 12, 12]   # area 16, pseudo 6x6 around (10, 10): points 10 -> (2, 2)
    pos, t = positives([big, small], (8, 8), 4, REFINE_PSEUDO_SIZE)
    idx = t.gt_index.view(8, 8)
    assert idx[2, 2] == 1           # contested point goes to the smaller box
    assert idx[1, 1] == 0 and idx[5, 5] == 0
    # order of the boxes does not matter
    _, t2 = positives([small, big], (8, 8), 4, REFINE_PSEUDO_SIZE)
    assert t2.gt_index.view(8, 8)[2, 2] == 0


def test_background_image_no_positives_finite_loss():
    _, t = positives(torch.zeros(0, 4).tolist(), (8, 8), 4, REFINE_PSEUDO_SIZE)
    assert not bool(t.positive.any())
    model = build_model("oscar-edge")
    outs = model(torch.randn(1, 3, 64, 64))
    loss, parts = oscar_loss(outs, [torch.zeros(0, 4)], torch.zeros(1, 1, 16, 16))
    assert math.isfinite(float(loss.detach()))
    assert parts["coarse_box"] == 0 and parts["refine_box"] == 0
    loss.backward()  # gradients exist for a background-only batch


def test_centre_on_cell_border_still_positive():
    # 8x8 pseudo box centred at (16, 16) on the coarse grid: the strict rule of the released
    # code finds no point strictly inside (points at 12 and 20 lie on its border).
    gt = torch.tensor([[14.0, 14.0, 18.0, 18.0]])
    pb = pseudo_boxes(gt, COARSE_PSEUDO_SIZE)[0]
    pts = torch.tensor([12.0, 20.0])
    assert not bool(((pts > pb[0]) & (pts < pb[2])).any())
    pos, _ = positives(gt.tolist(), (4, 4), 8, COARSE_PSEUDO_SIZE)
    assert pos == [(1, 1)]  # the nearest point (lowest index on ties) is taken


def test_every_box_gets_a_positive_on_both_levels():
    g = torch.Generator().manual_seed(0)
    for _ in range(50):
        xy = torch.rand(5, 2, generator=g) * 100
        wh = 2 + torch.rand(5, 2, generator=g) * 10
        gt = torch.cat([xy, xy + wh], dim=1)
        for grid, stride, size in (((32, 32), 4, REFINE_PSEUDO_SIZE), ((16, 16), 8, COARSE_PSEUDO_SIZE)):
            t = assign_level(gt, grid, stride, size)
            assigned = set(t.gt_index[t.positive].tolist())
            # a box may lose all its points only to smaller boxes
            for n in set(range(5)) - assigned:
                assert any(((gt[m, 2] - gt[m, 0]) * (gt[m, 3] - gt[m, 1])) <=
                           ((gt[n, 2] - gt[n, 0]) * (gt[n, 3] - gt[n, 1])) for m in assigned)


def test_focal_loss_values():
    logits = torch.tensor([0.0, 0.0])
    targets = torch.tensor([1.0, 0.0])
    loss = sigmoid_focal_loss(logits, targets)
    # p = 0.5: pos 0.25 * 0.5^3 * ln 2, neg 0.75 * 0.5^3 * ln 2
    assert loss[0].item() == pytest.approx(0.25 * 0.125 * math.log(2), rel=1e-5)
    assert loss[1].item() == pytest.approx(0.75 * 0.125 * math.log(2), rel=1e-5)


def test_diou_loss_values():
    a = torch.tensor([[0.0, 0.0, 2.0, 2.0]])
    assert diou_loss(a, a).item() == pytest.approx(0.0, abs=1e-6)
    b = torch.tensor([[2.0, 0.0, 4.0, 2.0]])  # touching: IoU 0, centres 2 apart, enclosing diag^2 20
    assert diou_loss(a, b).item() == pytest.approx(1 + 4 / 20, rel=1e-5)


def test_noco_loss_zero_at_target_and_positive_elsewhere():
    t = torch.tensor([0.0, 1.0, 0.5])
    # |sigmoid(p) - t| is ~0 for all three (sigmoid(0) = 0.5 = t for the last one)
    assert noco_loss(torch.tensor([-30.0, 30.0, 0.0]), t).item() == pytest.approx(0, abs=1e-6)
    assert noco_loss(torch.tensor([3.0, -3.0, 2.0]), t).item() > 0.5


def test_small_target_weights_ramp():
    from oscar_edge.models.losses import SMALL_TARGET_SIDES, small_target_weights

    lo, hi = SMALL_TARGET_SIDES
    sides = [1.0, lo, (lo + hi) / 2, hi, 3 * hi]
    boxes = torch.tensor([[10.0, 10.0, 10.0 + s, 10.0 + s] for s in sides])
    w = small_target_weights(boxes, 3.0).tolist()
    assert w == pytest.approx([3.0, 3.0, 2.0, 1.0, 1.0])
    # a non-square box goes by its geometric mean side: 2 x 8 -> side 4 <= lo
    assert lo >= 4.0
    assert small_target_weights(torch.tensor([[0.0, 0.0, 2.0, 8.0]]), 3.0).item() == \
        pytest.approx(3.0)


def test_small_target_weight_scales_only_small_positive_terms():
    torch.manual_seed(0)
    model = build_model("oscar-edge").eval()
    with torch.no_grad():
        outs = model(torch.randn(1, 3, 64, 64))
    noco = torch.zeros(1, 1, 16, 16)
    small = [torch.tensor([[20.0, 20.0, 23.0, 23.0]])]   # 3 x 3: full weight K
    large = [torch.tensor([[8.0, 8.0, 40.0, 40.0]])]     # 32 x 32: weight 1
    _, base_small = oscar_loss(outs, small, noco)
    _, k1_small = oscar_loss(outs, small, noco, 1.0)
    _, k3_small = oscar_loss(outs, small, noco, 3.0)
    assert k1_small == base_small
    # the extra term is 2x the positives' focal loss: strictly larger, boxes and NoCo untouched
    for level in ("coarse", "refine"):
        assert k3_small[f"{level}_cls"] > base_small[f"{level}_cls"]
        assert k3_small[f"{level}_box"] == base_small[f"{level}_box"]
    assert k3_small["noco"] == base_small["noco"]
    _, base_large = oscar_loss(outs, large, noco)
    _, k3_large = oscar_loss(outs, large, noco, 3.0)
    assert k3_large == base_large
