"""Tracking (oscar_edge.track, ``oscar-edge run --track``): identities through crossings and
drop-outs, M-of-N confirmation against flicker, bad input, time stamps, camera motion, the
runtime stage with two backends, and the CLI."""
import io
import itertools
import json
import math

import numpy as np
import pytest

from oscar_edge.io.synthetic import SyntheticScene
from oscar_edge.latency import frame_durations
from oscar_edge.track import (CameraMotion, ClutterMap, Tracker, TrackerConfig, assign,
                              parse_confirm)
from run_helpers import needs_onnx, one_line_error, read_jsonl, read_jsonl_header, run_tool

FPS = 30.0


def box(x: float, y: float, half: float = 3.0):
    return [x - half, y - half, x + half, y + half]


def feed(tracker: Tracker, t: float, points, score: float = 0.5):
    """Update with detections centred on ``points``; the confirmed tracks."""
    b = np.array([box(x, y) for x, y in points], np.float32).reshape(-1, 4)
    reps = tracker.update(t, b, np.full(len(b), score, np.float32), frame_size=(640, 512))
    return [r for r in reps if r.state == "confirmed"]


def nearest(reps, p, within: float = 4.0):
    best = min(reps, key=lambda r: math.dist(r.centre, p), default=None)
    return best if best is not None and math.dist(best.centre, p) <= within else None


# -- identities -------------------------------------------------------------------------------
def test_a_target_crossing_another_keeps_its_id():
    """Two targets cross at 35 degrees; around the crossing the detector sees one merged blob
    for 3 frames. Without the velocity prediction the tracks would pick each other's
    target half the time."""
    tr = Tracker(TrackerConfig(), fps=FPS)
    meet = np.array([300.0, 250.0])
    va, vb = np.array([60.0, 0.0]), np.array([49.0, -34.0])
    ids_a, ids_b = set(), set()
    for k in range(60):
        t = k / FPS
        a, b = meet + va * (t - 1.0), meet + vb * (t - 1.0)
        pts = [(a + b) / 2] if abs(k - 30) <= 1 else [a, b]
        reps = feed(tr, t, pts)
        if k >= 5 and abs(k - 30) > 6:
            ra, rb = nearest(reps, a), nearest(reps, b)
            assert ra is not None and rb is not None, k
            ids_a.add(ra.id)
            ids_b.add(rb.id)
    assert len(ids_a) == 1 and len(ids_b) == 1 and ids_a != ids_b, (ids_a, ids_b)


def test_a_five_frame_dropout_coasts_and_recovers_with_the_same_id():
    tr = Tracker(TrackerConfig(), fps=FPS)
    v = np.array([45.0, 20.0])
    seen = []
    for k in range(40):
        p = np.array([100.0, 100.0]) + v * k / FPS
        reps = feed(tr, k / FPS, [] if 20 <= k < 25 else [p])
        if k >= 3:
            r = nearest(reps, p, within=2.0)
            assert r is not None, f"frame {k}: no confirmed track within 2 px"
            assert (r.since_hit_s > 0) == (20 <= k < 25)
            seen.append(r.id)
    assert len(set(seen)) == 1
    assert np.allclose(r.velocity, v, atol=3.0)


def _dropout_ids(cfg: TrackerConfig, gap: range, shift=(0.0, 0.0), frames: int = 90):
    """A target at 45, 20 px/s unseen in the frames of ``gap``, back ``shift`` px off its line:
    the IDs of its confirmed track per frame (None where none is within 3 px of it), and every
    confirmed report's centre (what a user would see, without IDs)."""
    tr = Tracker(cfg, fps=FPS)
    ids, centres, lost = [], [], []
    for k in range(frames):
        p = np.array([100.0, 100.0]) + np.array([45.0, 20.0]) * k / FPS
        if k >= gap.stop:
            p = p + np.array(shift)
        b = np.array([box(*p)], np.float32).reshape(-1, 4)[:0 if k in gap else 1]
        reps = tr.update(k / FPS, b, np.full(len(b), 0.5, np.float32), frame_size=(640, 512))
        lost += [r.id for r in reps if r.state == "lost"]
        conf = [r for r in reps if r.state == "confirmed"]
        centres.append([r.centre for r in conf])
        r = nearest(conf, p, within=3.0)
        ids.append(None if r is None else r.id)
    return ids, centres, lost, tr


def test_revival_gives_a_target_back_its_id_after_a_long_dropout():
    """Unseen for 1 s (longer than the 0.5 s coast): lost, then a new ID without revival; the
    old ID with it. Positions and report counts are the same either way: only IDs change."""
    gap = range(30, 60)
    off, c_off, lost_off, _ = _dropout_ids(TrackerConfig(revive_s=0.0), gap)
    on, c_on, lost_on, tr = _dropout_ids(TrackerConfig(revive_s=2.0), gap)
    before = {i for i in off[:30] if i is not None}
    assert len(before) == 1 and lost_off == lost_on == list(before)  # lost once, either way
    assert {i for i in off[64:] if i is not None} - before          # a new ID without revival
    assert {i for i in on[64:] if i is not None} == before          # the old one with it
    assert tr.revived == 1
    assert all(None not in (a, b) for a, b in zip(off[64:], on[64:]))
    assert all(np.allclose(a, b) for a, b in zip(c_off, c_on) if a or b)
    assert [len(a) for a in c_off] == [len(b) for b in c_on]


def test_revival_needs_the_prediction_and_the_time_window():
    gap = range(30, 60)
    # back 60 px off its line: beyond the widest gate (4 x 12 px), a new target
    far, _, _, _ = _dropout_ids(TrackerConfig(revive_s=2.0), gap, shift=(0.0, 60.0))
    assert far[70] is not None and far[70] != far[20]
    # 1 s away is longer than 0.5 s coast + 0.3 s revival: forgotten
    late, _, _, tr = _dropout_ids(TrackerConfig(revive_s=0.3), gap)
    assert late[70] is not None and late[70] != late[20] and tr.revived == 0
    # a time jump (longer than the coast) ends every track and forgets them
    tr = Tracker(TrackerConfig(revive_s=5.0), fps=FPS)
    for k in range(10):
        feed(tr, k / FPS, [(100.0, 100.0)])
    first = feed(tr, 9 / FPS, [(100.0, 100.0)])[0].id
    for k in range(10):
        reps = feed(tr, 10.0 + k / FPS, [(100.0, 100.0)])
    assert reps and reps[0].id != first and tr.revived == 0
    with pytest.raises(ValueError, match="revival"):
        TrackerConfig(revive_s=-1).check()


def test_revival_takes_the_nearest_of_two_remembered_ids():
    """Two parallel targets 30 px apart vanish together and come back: each gets its own ID."""
    tr = Tracker(TrackerConfig(revive_s=2.0), fps=FPS)
    rows = {}
    for k in range(100):
        pts = [] if 30 <= k < 60 else [(100.0 + 1.5 * k, 100.0), (100.0 + 1.5 * k, 130.0)]
        for r in feed(tr, k / FPS, pts):
            if k in (25, 95):
                rows.setdefault(k, {})[round(r.centre[1] / 30.0)] = r.id
    assert rows[25] == rows[95] and len(set(rows[95].values())) == 2 and tr.revived == 2


def test_a_one_frame_false_alarm_never_becomes_confirmed():
    tr = Tracker(TrackerConfig(), fps=FPS)
    flicker = (500.0, 400.0)
    for k in range(30):
        target = (100.0 + k, 100.0)
        pts = [target] + ([flicker] if k in (10, 20, 21) else [])  # once, then twice in a row
        reps = feed(tr, k / FPS, pts)
        assert nearest(reps, flicker, within=20) is None, k
    assert nearest(reps, target) is not None


def test_confirmation_is_m_of_n():
    # (M, N), hits (1) and misses (0) frame by frame, (first frame reported, its track id)
    for (m, n), pattern, expected in (((3, 5), "1101", (3, 1)), ((3, 5), "10011", (4, 1)),
                                      ((4, 6), "110101", (5, 1)), ((3, 5), "10001", None),
                                      ((3, 5), "1000111", (6, 2))):  # dropped at the 3rd miss
        tr = Tracker(TrackerConfig(confirm_m=m, confirm_n=n), fps=FPS)
        first = None
        for k, hit in enumerate(pattern):
            reps = feed(tr, k / FPS, [(200.0, 200.0)] if hit == "1" else [])
            if reps and first is None:
                first = (k, reps[0].id)
        assert first == expected, (m, n, pattern, first)


# -- bad input --------------------------------------------------------------------------------
def test_nan_and_empty_detection_lists():
    tr = Tracker(TrackerConfig(), fps=FPS)
    for k in range(5):
        feed(tr, k / FPS, [(50.0 + k, 60.0)])
    bad = np.array([[np.nan, 1, 2, 3], [54, 59, 56, 61], [10, 10, 5, 5], [0, 0, np.inf, 1]],
                   np.float32)
    scores = np.array([0.9, np.nan, 0.9, 0.9], np.float32)
    for t, b, s in ((5, bad, scores), (6, np.zeros((0, 4)), np.zeros(0)), (7, [], []),
                    (8, np.zeros(0), np.zeros(0))):
        reps = [r for r in tr.update(t / FPS, b, s) if r.state == "confirmed"]
        assert len(tr) == 1 and tr.tentative == 0  # no track started from a bad row
        assert len(reps) == 1 and reps[0].since_hit_s > 0
        assert all(np.isfinite(reps[0].centre)) and all(np.isfinite(reps[0].velocity))
    assert len(tr) == 1
    with pytest.raises(ValueError, match="2 boxes but 1 scores"):
        tr.update(1.0, np.zeros((2, 4)), np.zeros(1))


def test_a_timestamp_jump_loses_the_tracks_without_a_huge_velocity():
    cfg = TrackerConfig()
    tr = Tracker(cfg, fps=FPS)
    v = np.array([30.0, 0.0])
    for k in range(10):
        reps = feed(tr, k / FPS, [np.array([100.0, 100.0]) + v * k / FPS])
    old = reps[0].id
    t1 = 9 / FPS + 10.0  # the source stalls for 10 s; the target moved 300 px meanwhile
    p = np.array([100.0, 100.0]) + v * t1
    reps = tr.update(t1, np.array([box(*p)]), np.array([0.5]))
    assert [(r.id, r.state) for r in reps] == [(old, "lost")]
    assert tr.jumps == 1 and len(tr) == 1 and np.allclose(tr.x[0, 2:], 0)
    for k in range(1, 6):
        reps = feed(tr, t1 + k / FPS, [p + v * k / FPS])
    assert len(reps) == 1 and reps[0].id != old
    assert np.hypot(*reps[0].velocity) < 60  # not 300 px / 10 s folded into one step
    # time going backwards also ends every track; a NaN time is one nominal frame later
    reps = tr.update(0.0, np.zeros((0, 4)), np.zeros(0))
    assert [r.state for r in reps] == ["lost"] and len(tr) == 0
    tr.update(float("nan"), np.zeros((0, 4)), np.zeros(0))
    assert tr._t == pytest.approx(1 / FPS)


def test_dropped_frames_keep_velocity_in_px_per_second():
    """A live source delivering irregularly (gaps of 1-5 camera frames): velocity from the
    capture times."""
    tr = Tracker(TrackerConfig(), fps=FPS)
    v = np.array([60.0, -24.0])
    frame = 0
    for gap in [1, 3, 2, 5, 1, 4, 2, 3, 1, 2, 5, 3, 2, 1, 4]:
        frame += gap
        t = frame / FPS
        reps = feed(tr, t, [np.array([200.0, 300.0]) + v * t])
    assert len(reps) == 1 and np.allclose(reps[0].velocity, v, rtol=0.05, atol=1.0)
    j = reps[0].to_json(FPS)
    assert j["velocity_px_per_frame"] == pytest.approx([2.0, -0.8], abs=0.05)
    assert set(j) >= {"id", "state", "age_s", "hits", "box", "centre", "velocity_px_per_frame",
                      "velocity_px_per_s", "score"}


def test_min_move_keeps_stationary_clutter_unconfirmed():
    tr = Tracker(TrackerConfig(min_move_px=3.0), fps=FPS)
    for k in range(30):
        reps = feed(tr, k / FPS, [(400.0, 300.0), (100.0 + 2 * k, 100.0)])
    assert nearest(reps, (400.0, 300.0)) is None
    assert nearest(reps, (158.0, 100.0)) is not None


# -- clutter map ------------------------------------------------------------------------------
CLUTTER = TrackerConfig(clutter_s=1.0, clutter_cell_px=6.0, clutter_max=0.3)


def test_clutter_map_ends_a_spot_that_fires_all_the_time_but_keeps_a_mover():
    """A glint fires in every frame at one spot; a target flies across it at 60 px/s."""
    tr = Tracker(CLUTTER, fps=FPS)
    glint = (400.0, 300.0)
    glint_seen = []
    for k in range(150):
        t = k / FPS
        mover = (100.0 + 60.0 * t, 300.0)
        reps = feed(tr, t, [glint, mover])
        glint_seen.append(nearest(reps, glint) is not None and k < 110)  # mover passes ~k 150
        if k >= 5:
            assert nearest(reps, mover) is not None, k
    # The glint is confirmed at first (the map starts empty), then dropped for good: the map
    # passes 0.3 after about -ln(0.7) * 1 s = 0.36 s, the track coasts 0.5 s, then is lost.
    assert any(glint_seen[:12])
    assert not any(glint_seen[40:])
    assert tr.clutter_dropped > 60
    ids = {r.id for r in feed(tr, 150 / FPS, [(100.0 + 60.0 * 5.0, 300.0)])}
    assert len(ids) == 1


def test_clutter_map_off_keeps_the_glint_and_a_mover_is_never_dropped():
    tr = Tracker(TrackerConfig(), fps=FPS)
    for k in range(60):
        reps = feed(tr, k / FPS, [(400.0, 300.0)])
    assert nearest(reps, (400.0, 300.0)) is not None and tr.clutter_dropped == 0
    tr = Tracker(CLUTTER, fps=FPS)
    for k in range(120):  # 2 px per frame: a new 6-px cell every 3 frames
        reps = feed(tr, k / FPS, [(50.0 + 2.0 * k, 200.0)])
    assert nearest(reps, (50.0 + 2.0 * 119, 200.0)) is not None and tr.clutter_dropped == 0


def test_clutter_map_uses_time_not_frame_counts():
    """The same glint seen at 30 FPS and at 10 FPS (frames dropped) builds the map equally."""
    values = []
    for step in (1, 3):
        cm = ClutterMap(1.0, 6.0, 0.3)
        for k in range(0, 30, step):
            cm.add(np.array([[100.0, 100.0]]), step / FPS)
        values.append(cm.value(np.array([[101.0, 101.0]]))[0])
    assert values[0] == pytest.approx(values[1], rel=1e-9)
    assert values[0] == pytest.approx(1 - math.exp(-1.0), rel=1e-9)  # 1 s at tau 1 s


def test_clutter_map_moves_with_the_camera():
    """The camera pans 3 px per frame (half a cell): the glint moves in the picture but stays
    clutter (compensated), while without the warp the map would not follow it."""
    shift = np.array([[1.0, 0.0, 3.0], [0.0, 1.0, 0.0]])
    for warp in (True, False):
        tr = Tracker(TrackerConfig(clutter_s=1.0, motion=True), fps=FPS)
        for k in range(60):
            x = 100.0 + 3.0 * k
            b = np.array([box(x, 200.0)], np.float32)
            tr.update(k / FPS, b, np.array([0.5], np.float32),
                      motion=shift if warp else None, frame_size=(640, 512))
        busy = tr.clutter.busy(np.array([[100.0 + 3.0 * 60, 200.0]]))[0]
        assert busy == warp


def test_clutter_map_resets_when_time_goes_back_and_decays_when_quiet():
    cm = ClutterMap(1.0, 6.0, 0.3)
    for k in range(30):
        cm.add(np.array([[-700.0, 10.0]]), 1 / FPS)  # anywhere, even off the frame
    # cells of 6 px: -700 is in cell -117, -705 in -118 (a neighbour), -715 in -120
    assert cm.busy(np.array([[-701.0, 11.0], [-705.0, 10.0], [-715.0, 10.0], [10.0, 10.0]])
                   ).tolist() == [True, True, False, False]
    for k in range(30):
        cm.add(np.zeros((0, 2)), 1 / FPS)  # one quiet second: the share falls by e
    assert cm.value(np.array([[-700.0, 10.0]]))[0] == pytest.approx((1 - math.exp(-1)) *
                                                                    math.exp(-1), rel=1e-9)
    cm = ClutterMap(1.0, 6.0, 0.3)
    cm.add(np.array([[1.0, 1.0], [2.0, 2.0]]), 1.0)  # two detections in one cell count once
    assert cm.value(np.array([[3.0, 3.0]]))[0] == pytest.approx(1 - math.exp(-1), rel=1e-9)
    far = 6.0 * (ClutterMap.MAX_SIDE + 10)  # a pan too long for one grid: it starts again
    cm.add(np.array([[far, 1.0]]), 1 / FPS)
    assert cm.value(np.array([[3.0, 3.0]]))[0] == 0.0 and cm.value(np.array([[far, 1.0]]))[0] > 0
    assert max(cm.grid.shape) <= ClutterMap.MAX_SIDE
    tr = Tracker(CLUTTER, fps=FPS)
    for k in range(30):
        feed(tr, k / FPS, [(50.0, 50.0)])
    assert tr.clutter.value(np.array([[50.0, 50.0]]))[0] > 0.3
    feed(tr, 0.0, [])  # time went backwards: a new stream, a new map
    assert tr.clutter.value(np.array([[50.0, 50.0]]))[0] == 0.0 and tr.clutter.grid.size == 0


# -- assignment -------------------------------------------------------------------------------
def brute_force(cost, allowed):
    """Most pairs, then least cost, over every partial matching (the oracle)."""
    r, c = cost.shape
    best = (0, 0.0)
    for k in range(min(r, c), 0, -1):
        for rows in itertools.combinations(range(r), k):
            for cols in itertools.permutations(range(c), k):
                if all(allowed[i, j] for i, j in zip(rows, cols)):
                    total = sum(cost[i, j] for i, j in zip(rows, cols))
                    if best[0] < k or total < best[1]:
                        best = (k, total)
        if best[0]:
            return best
    return best


def test_assignment_is_optimal_against_brute_force():
    rng = np.random.default_rng(3)
    for _ in range(300):
        r, c = rng.integers(1, 6, 2)
        cost = rng.uniform(0, 10, (r, c))
        allowed = rng.random((r, c)) < 0.6
        pairs = assign(cost, allowed)
        assert len({p[0] for p in pairs}) == len(pairs) == len({p[1] for p in pairs})
        assert all(allowed[i, j] for i, j in pairs)
        k, total = brute_force(cost, allowed)
        assert len(pairs) == k
        assert sum(cost[i, j] for i, j in pairs) == pytest.approx(total)


# -- camera motion and the synthetic pan --------------------------------------------------------
def test_camera_motion_follows_the_synthetic_pan():
    scene = SyntheticScene(320, 256, targets=4, seed=2, drift=0.0, pan=3.0, shake=1.0)
    cm = CameraMotion()
    assert cm.estimate(scene.frame(10)) is None  # first frame
    for t in range(11, 16):
        m = cm.estimate(scene.frame(t))
        assert m is not None
        (x0, y0), (x1, y1) = scene.camera_offset(t - 1), scene.camera_offset(t)
        assert m[:, 2] == pytest.approx([x1 - x0, y1 - y0], abs=0.3), t
        assert m[:, :2] == pytest.approx(np.eye(2), abs=0.01)


def test_synthetic_pan_moves_targets_and_truth_together():
    still = SyntheticScene(320, 256, targets=6, seed=4)
    assert list(still.ground_truth_ids(0)) == list(range(6))
    pan = SyntheticScene(320, 256, targets=6, seed=4, pan=4.0, shake=1.0)
    seen_fewer = False
    for t in range(0, 240, 7):
        ids, gt = pan.ground_truth_ids(t), pan.ground_truth(t)
        assert len(ids) == len(gt)
        seen_fewer |= len(ids) < 6
        for i, (x1, y1, x2, y2) in zip(ids, gt):
            cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
            if 4 <= cx < 316 and 4 <= cy < 252 and pan.targets[i].contrast > 60:
                patch = pan.frame_float(t)[int(cy) - 3:int(cy) + 4, int(cx) - 3:int(cx) + 4]
                iy, ix = np.unravel_index(np.argmax(patch), patch.shape)
                assert abs(ix - 3) <= 1 and abs(iy - 3) <= 1, (t, i)
    assert seen_fewer  # the sweep takes some targets out of the view


# -- runtime --------------------------------------------------------------------------------------
def test_latency_end_to_end_includes_the_track_stage():
    marks = {"preprocess_start": 10, "preprocess_end": 20, "inference_start": 20,
             "inference_end": 50, "postprocess_start": 50, "postprocess_end": 60,
             "track_start": 61, "track_end": 64, "render_start": 64, "render_end": 70}
    d = frame_durations(marks, 0)
    assert d["track"] == 3 and d["end_to_end"] == 64
    del marks["track_start"], marks["track_end"]
    d = frame_durations(marks, 0)
    assert "track" not in d and d["end_to_end"] == 60


@needs_onnx
def test_two_backends_feed_the_tracker_the_same_way(tmp_path):
    """ONNX Runtime and OpenVINO (f32 hint) through the runtime's track stage: the same tracks
    (the stage sits after post-processing, so any backend feeds it the same way)."""
    pytest.importorskip("openvino")
    from oscar_edge.backends.base import close_backend
    from oscar_edge.backends.factory import create_backend
    from oscar_edge.io.outputs import JsonlOutput
    from oscar_edge.io.sources import open_source
    from oscar_edge.pipeline import Detector
    from oscar_edge.runtime import Runtime, RuntimeOptions

    out = {}
    for kind in ("onnxruntime", "openvino"):
        ov = dict(ov_hint="f32", ov_cache="off") if kind == "openvino" else {}
        choice = create_backend(kind, threads=1, **ov)
        jl = tmp_path / f"{kind}.jsonl"
        src = open_source("synthetic://?frames=15&size=320x256&targets=4&seed=3")
        src.open()
        Runtime(src, Detector(choice.backend, input_size=(256, 320)), [JsonlOutput(str(jl))],
                RuntimeOptions(report_every=0, track=TrackerConfig()), log=lambda m: None,
                out=io.StringIO()).run()
        close_backend(choice.backend)
        out[kind] = [[(t["id"], t["centre"]) for t in line["tracks"]] for line in read_jsonl(jl)]
    a, b = out["onnxruntime"], out["openvino"]
    assert sum(len(x) for x in a) > 10
    assert [[i for i, _ in f] for f in a] == [[i for i, _ in f] for f in b]
    for fa, fb in zip(a, b):
        for (_, ca), (_, cb) in zip(fa, fb):
            assert ca == pytest.approx(cb, abs=0.3)


@needs_onnx
def test_track_through_oscar_edge_run(tmp_path):
    jl, st = tmp_path / "d.jsonl", tmp_path / "s.json"
    p = run_tool("--source", "synthetic://?frames=24&size=320x256&targets=3&seed=1", "--track",
                 "--jsonl", jl, "--stats", st, "--threads", "1", "--report-every", "0")
    assert p.returncode == 0, p.stderr
    assert "track" in p.stdout and "tracks ready" in p.stdout
    lines = read_jsonl(jl)
    assert len(lines) == 24 and all("tracks" in line for line in lines)
    assert read_jsonl_header(jl)["track"]["confirm"] == "4/6"
    stats = json.loads(st.read_text())
    assert stats["stages"]["track"]["count"] == 24 and stats["track"]["settings"]["gate_px"] == 12
    confirmed = 0
    for line in lines:
        truth = np.asarray(line["truth"]).reshape(-1, 4)
        centres = (truth[:, :2] + truth[:, 2:]) / 2
        assert line["source_time"] == pytest.approx(line["frame"] / 30.0, abs=1e-6)
        for t in line["tracks"]:
            assert t["state"] in ("confirmed", "lost")
            assert np.hypot(*(centres - t["centre"]).T).min() < 6
            confirmed += t["state"] == "confirmed"
    assert confirmed >= 2 * 15  # at least two targets tracked from frame ~3 on


def test_track_clutter_through_oscar_edge_run(tmp_path):
    jl, st = tmp_path / "d.jsonl", tmp_path / "s.json"
    p = run_tool("--source", "synthetic://?frames=12&size=320x256&targets=2&seed=3", "--track",
                 "--track-clutter", "2", "--track-clutter-cell", "8", "--jsonl", jl,
                 "--stats", st, "--threads", "1", "--report-every", "0")
    assert p.returncode == 0, p.stderr
    header = read_jsonl_header(jl)["track"]
    assert (header["clutter_s"], header["clutter_cell_px"], header["clutter_max"]) == (2, 8, 0.3)
    track = json.loads(st.read_text())["track"]
    assert track["settings"]["clutter_s"] == 2 and isinstance(track["clutter_dropped"], int)
    assert track["settings"]["revive_s"] == 2 and track["ids_revived"] == 0


def test_track_option_errors_are_one_line():
    syn = "synthetic://?frames=2&size=64x64"
    one_line_error(run_tool("--source", syn, "--track", "--track-confirm", "5/3"),
                   "--track-confirm 5/3")
    one_line_error(run_tool("--source", syn, "--track", "--track-confirm", "x"), "M/N")
    one_line_error(run_tool("--source", syn, "--track-gate", "5"), "--track-gate needs --track")
    one_line_error(run_tool("--source", syn, "--track", "--track-gate", "-1"), "gate")
    one_line_error(run_tool("--source", syn, "--track", "--track-coast", "nan"), "coast")
    one_line_error(run_tool("--source", syn, "--track", "--track-clutter", "-1"), "clutter")
    one_line_error(run_tool("--source", syn, "--track", "--track-revive", "-2"), "revival")
    one_line_error(run_tool("--source", syn, "--track", "--track-revive", "inf"), "revival")
    one_line_error(run_tool("--source", syn, "--track-revive", "2"),
                   "--track-revive needs --track")
    one_line_error(run_tool("--source", syn, "--track", "--track-clutter", "2",
                            "--track-clutter-max", "1.5"), "clutter")
    with pytest.raises(ValueError):
        parse_confirm("3/17")
